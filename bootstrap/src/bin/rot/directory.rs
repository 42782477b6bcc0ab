//! `rot proxies` and `rot servers`, and finding the proxy the wallet commands ask: the
//! bootstrap list is verified against the pinned maintainer keys, refreshed from the given
//! mirrors and the proxies it names, and cached so it still works while they are down.

use std::time::Duration;

use rot_bootstrap::fetch::{FetchOptions, http_client};
use rot_bootstrap::{Follower, ProxyEntry, TrustStore, unix_now};
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
        None => listed_proxies(coin, args, timeout)
            .await?
            .into_iter()
            .map(|entry| entry.url)
            .collect(),
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
/// names for `coin` that proves it is the listed one: its signed `/v1/info` verifies under
/// the key the list names for its URL.
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
    for entry in listed_proxies(coin, args, timeout).await? {
        let candidate = Proxy::new(transport.clone(), &entry.url)?;
        match candidate.info().await.and_then(|info| info.verify()) {
            Ok(info) if info.proxy_key == entry.key => return Ok(candidate),
            Ok(info) => {
                let why = format!(
                    "proxy {} signs as {}, but the bootstrap list names {}",
                    entry.url, info.proxy_key, entry.key
                );
                eprintln!("warning: {why}");
                last_error = Some(Failure::Usage(why));
            }
            Err(error) => {
                eprintln!("warning: {error}");
                last_error = Some(error.into());
            }
        }
    }
    Err(last_error.unwrap_or_else(|| Failure::Usage(format!("no proxy to ask for {coin}"))))
}

/// The proxies the current bootstrap list names for `coin`.
async fn listed_proxies(
    coin: &str,
    args: &BootstrapArgs,
    timeout: Duration,
) -> Result<Vec<ProxyEntry>, Failure> {
    let (store, now) = load_list(args, timeout).await?;
    let proxies = store.proxies_for(coin, now)?.to_vec();
    if proxies.is_empty() {
        return Err(Failure::Usage(format!(
            "the bootstrap list names no proxy for {coin}; pass --proxy URL"
        )));
    }
    Ok(proxies)
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
    let cache = args.cache_path();
    let mut follower = Follower::open(pins, args.mirrors.clone(), cache.clone())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if let Err(error) = follower.load_cache() {
        eprintln!("warning: ignoring the cached list: {error}");
    }
    let now = unix_now();
    if args.offline {
        return Ok((follower.store().clone(), now));
    }
    if follower.mirrors(now).is_empty() && follower.store().cached().is_none() {
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
    let (report, cached) = follower
        .refresh(&http_client(&options)?, now, &options)
        .await;
    for mirror in &report.mirrors {
        if let Err(error) = &mirror.result {
            eprintln!("warning: mirror {}: {error}", mirror.url);
        }
    }
    if let (Err(error), Some(cache)) = (cached, &cache) {
        eprintln!(
            "warning: cannot cache the list in {}: {error}",
            cache.display()
        );
    }
    Ok((follower.store().clone(), now))
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
