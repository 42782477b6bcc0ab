//! `rot proxies` and `rot servers`, and finding the proxy the wallet commands ask: the
//! bootstrap list is verified against the pinned maintainer keys, refreshed from the given
//! mirrors and the proxies it names, and cached so it still works while they are down.

use std::time::Duration;

use rot_bootstrap::fetch::{FetchOptions, http_client, refresh};
use rot_bootstrap::{Accepted, MaintainerSet, TrustStore, unix_now};
use rot_proto::client::Proxy;
use rot_proto::message::DirectoryEntry;
use rot_proto::transport::Transport;

use crate::Exit;
use crate::args::{BootstrapArgs, transport};
use crate::failure::Failure;

/// Prints the proxies the bootstrap list names for `coin`.
pub async fn proxies(coin: &str, args: &BootstrapArgs, timeout: Duration) -> Result<Exit, Failure> {
    let (store, now) = load_list(args, timeout).await?;
    let list = store.current(now)?;
    let proxies = list.proxies_for(coin);
    println!(
        "bootstrap list serial {}: {} proxy(ies) for {coin}",
        list.serial(),
        proxies.len()
    );
    for proxy in proxies {
        println!("{}", proxy.url);
        println!("  key:     {}", proxy.key);
        println!("  team:    {}", proxy.team);
        println!("  contact: {}", proxy.contact);
    }
    Ok(Exit::Ok)
}

/// Prints `coin`'s servers from the directory of `proxy`, or of the first listed proxy that
/// answers.
pub async fn servers(
    coin: &str,
    proxy: Option<&str>,
    args: &BootstrapArgs,
    timeout: Duration,
) -> Result<Exit, Failure> {
    let transport = transport(timeout);
    let candidates = match proxy {
        Some(url) => vec![url.to_owned()],
        None => listed_proxies(coin, args, timeout).await?,
    };
    let mut last_error = None;
    for url in &candidates {
        match Proxy::new(transport.clone(), url)?.servers(coin).await {
            Ok(entries) => {
                print_servers(url, coin, &entries);
                return Ok(Exit::Ok);
            }
            Err(error) => {
                eprintln!("warning: {error}");
                last_error = Some(error);
            }
        }
    }
    Err(last_error.map_or_else(
        || Failure::Usage(format!("no proxy to ask for {coin}")),
        Failure::from,
    ))
}

/// The proxy a wallet command asks: `proxy` if given, else the first proxy the bootstrap list
/// names for `coin` whose directory answers.
pub async fn pick_proxy(
    coin: &str,
    proxy: Option<&str>,
    args: &BootstrapArgs,
    transport: &Transport,
    timeout: Duration,
) -> Result<Proxy, Failure> {
    if let Some(url) = proxy {
        return Ok(Proxy::new(transport.clone(), url)?);
    }
    let mut last_error = None;
    for url in listed_proxies(coin, args, timeout).await? {
        let candidate = Proxy::new(transport.clone(), &url)?;
        match candidate.coins().await {
            Ok(_) => return Ok(candidate),
            Err(error) => {
                eprintln!("warning: {error}");
                last_error = Some(error);
            }
        }
    }
    Err(last_error.map_or_else(
        || Failure::Usage(format!("no proxy to ask for {coin}")),
        Failure::from,
    ))
}

/// The base URLs of the proxies the current bootstrap list names for `coin`.
async fn listed_proxies(
    coin: &str,
    args: &BootstrapArgs,
    timeout: Duration,
) -> Result<Vec<String>, Failure> {
    let (store, now) = load_list(args, timeout).await?;
    let urls: Vec<String> = store
        .proxies_for(coin, now)?
        .iter()
        .map(|proxy| proxy.url.clone())
        .collect();
    if urls.is_empty() {
        return Err(Failure::Usage(format!(
            "the bootstrap list names no proxy for {coin}; pass --proxy URL"
        )));
    }
    Ok(urls)
}

/// The pinned keys and the newest valid list: the cached one, refreshed unless `offline`.
async fn load_list(args: &BootstrapArgs, timeout: Duration) -> Result<(TrustStore, u64), Failure> {
    let pins = args.pins.as_ref().ok_or_else(|| {
        Failure::Usage(
            "no pinned maintainer keys for the bootstrap list: pass --pins FILE or set \
             ROT_BOOTSTRAP_PINS"
                .to_owned(),
        )
    })?;
    let text = std::fs::read_to_string(pins)
        .map_err(|e| Failure::Usage(format!("pins file {}: {e}", pins.display())))?;
    let mut store = TrustStore::new(MaintainerSet::from_json(&text)?);
    let cache = args.cache_path();
    if let Some(cache) = &cache
        && let Err(error) = store.load_cache(cache)
    {
        eprintln!(
            "warning: ignoring the cached list {}: {error}",
            cache.display()
        );
    }
    let now = unix_now();
    if args.offline {
        return Ok((store, now));
    }
    let mut mirrors = args.mirrors.clone();
    if let Ok(list) = store.current(now) {
        mirrors.extend(list.mirror_urls());
    }
    mirrors.sort();
    mirrors.dedup();
    if mirrors.is_empty() && store.cached().is_none() {
        return Err(Failure::Usage(
            "nowhere to fetch the bootstrap list from: pass --mirror URL or set \
             ROT_BOOTSTRAP_URLS"
                .to_owned(),
        ));
    }
    let options = FetchOptions {
        timeout,
        ..FetchOptions::default()
    };
    let report = refresh(&mut store, &http_client(&options)?, &mirrors, now, &options).await;
    for mirror in &report.mirrors {
        if let Err(error) = &mirror.result {
            eprintln!("warning: mirror {}: {error}", mirror.url);
        }
    }
    if let (Some(Accepted::Updated { .. }), Some(cache)) = (report.accepted, &cache)
        && let Err(error) = store.save_cache(cache)
    {
        eprintln!(
            "warning: cannot cache the list in {}: {error}",
            cache.display()
        );
    }
    Ok((store, now))
}

fn print_servers(proxy: &str, coin: &str, entries: &[DirectoryEntry]) {
    println!("{} server(s) of {coin} at {proxy}", entries.len());
    for entry in entries {
        println!("{}", entry.server_key);
        println!(
            "  status {}, height {} ({}), heartbeat {}s ago, latency {}",
            wire_name(&entry.status),
            entry.height,
            entry.tip_hash,
            entry.last_heartbeat_age_secs,
            entry
                .latency_ms
                .map_or_else(|| "unmeasured".to_owned(), |ms| format!("{ms} ms"))
        );
        println!(
            "  {} ({} backend), {} warning(s), {} exclusion(s){}",
            entry.software,
            wire_name(&entry.backend),
            entry.warnings,
            entry.exclusions,
            entry
                .url
                .as_ref()
                .map_or_else(String::new, |url| format!(", at {url}"))
        );
    }
}

/// The JSON spelling of an enum value (`admitted`, `native`).
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}
