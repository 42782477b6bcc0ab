//! `rot balance` and `rot utxo`: an address's totals and unspent outputs from one source or
//! cross-checked over several. Sources are servers asked directly (`--server`), or a proxy:
//! with `--cross-check N` the servers its directory publishes addresses of are asked
//! directly, and its relay makes up the rest (each relayed answer names its server).

use std::time::Duration;

use rot_proto::client::Esplora;
use rot_proto::cross_check::{AddressReport, CrossCheck, ProofStatus};
use rot_proto::message::ServerStatus;
use rot_proto::transport::Transport;
use rot_proto::{Address, CoinProfile, Error};

use crate::Exit;
use crate::args::{SourceArgs, transport};
use crate::directory::pick_proxy;
use crate::failure::Failure;

/// What to print.
#[derive(Debug, Clone, Copy)]
pub enum Show {
    /// Confirmed, unconfirmed and total balance.
    Balance,
    /// Every unspent output.
    Utxos,
}

/// Asks the sources about `address` and prints what `show` asks for, then any disagreement.
pub async fn run(
    address: &str,
    args: &SourceArgs,
    show: Show,
    timeout: Duration,
) -> Result<Exit, Failure> {
    let profile = args.coin.profile()?;
    let address = Address::parse(&profile, address)?;
    let transport = transport(timeout);
    let wanted = usize::from(args.cross_check);
    let sources = sources(args, &profile, &transport, wanted, timeout).await?;
    let report = CrossCheck::new(sources)?.address(&address).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        match show {
            Show::Balance => print_balance(&report, &profile),
            Show::Utxos => print_utxos(&report, &profile),
        }
        print_sources(&report);
        print_problems(&report);
    }
    Ok(exit(&report, wanted))
}

async fn sources(
    args: &SourceArgs,
    profile: &CoinProfile,
    transport: &Transport,
    wanted: usize,
    timeout: Duration,
) -> Result<Vec<Esplora>, Failure> {
    let esplora = |url: &str| Esplora::new(transport.clone(), url, profile.clone());
    if !args.servers.is_empty() {
        if args.servers.len() < wanted {
            return Err(Error::NotEnoughSources {
                wanted,
                available: args.servers.len(),
            }
            .into());
        }
        return Ok(args
            .servers
            .iter()
            .take(wanted)
            .map(|url| esplora(url))
            .collect::<Result<_, _>>()?);
    }
    let coin = profile.id();
    let proxy = pick_proxy(
        &coin,
        args.proxy.as_deref(),
        &args.bootstrap,
        transport,
        timeout,
    )
    .await?;
    let relay = proxy.esplora(profile.clone())?;
    if wanted == 1 {
        return Ok(vec![relay]);
    }
    let mut direct = match proxy.servers(&coin).await {
        Ok(entries) => entries,
        Err(error) => {
            eprintln!("warning: {error}; asking through the relay only");
            Vec::new()
        }
    };
    direct.retain(|entry| entry.status == ServerStatus::Admitted && entry.url.is_some());
    direct.sort_by_key(|entry| entry.latency_ms.unwrap_or(u64::MAX));
    let mut sources: Vec<Esplora> = direct
        .iter()
        .filter_map(|entry| esplora(entry.url.as_deref()?).ok())
        .take(wanted)
        .collect();
    while sources.len() < wanted {
        sources.push(relay.clone());
    }
    Ok(sources)
}

/// 1 when a source answered wrongly; 2 when a source could not be asked or fewer distinct
/// servers than asked for answered; else 0.
fn exit(report: &AddressReport, wanted: usize) -> Exit {
    let unverified = report
        .utxos
        .iter()
        .any(|u| matches!(u.proof, ProofStatus::Unverified { .. }));
    if report.has_wrong_answers() {
        Exit::ServerFault
    } else if unverified
        || report.sources.iter().any(|s| s.error.is_some())
        || report.distinct_servers < wanted
    {
        Exit::Unreachable
    } else {
        Exit::Ok
    }
}

/// `sat` in whole coins with 8 decimals.
fn coins(sat: u64) -> String {
    format!("{}.{:08}", sat / 100_000_000, sat % 100_000_000)
}

fn print_balance(report: &AddressReport, profile: &CoinProfile) {
    let ticker = &profile.ticker;
    println!("{} on {}", report.address, profile.id());
    let Some(stats) = report.stats() else {
        println!("  no source answered");
        return;
    };
    let (Some(confirmed), Some(total)) = (stats.confirmed_balance(), stats.balance()) else {
        println!("  the totals contradict themselves: {stats:?}");
        return;
    };
    let (sign, change) = if total >= confirmed {
        ('+', total - confirmed)
    } else {
        ('-', confirmed - total)
    };
    println!("  confirmed     {} {ticker}", coins(confirmed));
    println!("  unconfirmed  {sign}{} {ticker}", coins(change));
    println!("  total         {} {ticker}", coins(total));
    let confirmed_outputs = report.utxos.iter().filter(|u| u.utxo.status.confirmed);
    let proven: Vec<u64> = confirmed_outputs
        .clone()
        .filter(|u| matches!(u.proof, ProofStatus::Verified { .. }))
        .map(|u| u.utxo.value)
        .collect();
    if report.sources.len() > 1 {
        println!(
            "  proven        {} of {} confirmed output(s), {} {ticker}, against another \
             source's headers",
            proven.len(),
            confirmed_outputs.count(),
            coins(proven.iter().sum())
        );
    }
}

fn print_utxos(report: &AddressReport, profile: &CoinProfile) {
    let total: u64 = report.utxos.iter().map(|u| u.utxo.value).sum();
    println!(
        "{} unspent output(s) of {} on {}, {} {}",
        report.utxos.len(),
        report.address,
        profile.id(),
        coins(total),
        profile.ticker
    );
    for checked in &report.utxos {
        let utxo = &checked.utxo;
        let place = match utxo.status.block_height {
            Some(height) if utxo.status.confirmed => format!("height {height}"),
            _ => "unconfirmed".to_owned(),
        };
        let proof = match &checked.proof {
            ProofStatus::Verified { header_from, .. } => {
                format!("proven against {header_from}")
            }
            ProofStatus::Unconfirmed | ProofStatus::NotChecked => String::new(),
            ProofStatus::Unverified { .. } => "NOT VERIFIED (see below)".to_owned(),
            ProofStatus::Failed { .. } => "PROOF FAILED (see below)".to_owned(),
        };
        let line = format!(
            "  {}:{}  {}  {place}  {proof}",
            utxo.txid,
            utxo.vout,
            coins(utxo.value)
        );
        println!("{}", line.trim_end());
    }
}

fn print_sources(report: &AddressReport) {
    for source in &report.sources {
        match (&source.error, source.tip_height) {
            (Some(error), _) => println!("source {}: NO ANSWER: {error}", source.label()),
            (None, Some(tip)) => println!("source {}: tip {tip}", source.label()),
            (None, None) => println!("source {}", source.label()),
        }
    }
    if report.sources.len() > 1 && report.distinct_servers < report.sources.len() {
        println!(
            "only {} distinct server(s) answered {} request(s)",
            report.distinct_servers,
            report.sources.len()
        );
    }
}

fn print_problems(report: &AddressReport) {
    for checked in &report.utxos {
        let (what, reason) = match &checked.proof {
            ProofStatus::Failed { reason } => ("PROOF FAILED", reason),
            ProofStatus::Unverified { reason } => ("NOT VERIFIED", reason),
            _ => continue,
        };
        println!(
            "{what} for {}:{}: {reason}",
            checked.utxo.txid, checked.utxo.vout
        );
    }
    for disagreement in &report.disagreements {
        println!("DISAGREEMENT about {}:", disagreement.about);
        for (source, answer) in &disagreement.answers {
            println!("  {source}: {answer}");
        }
    }
}
