//! `rot check`: the conformance suite against one server, as a readable report.

use std::time::Duration;

use rot_bootstrap::random_u64;
use rot_proto::conformance::{Conformance, Options, Outcome, Report, Verdict};

use crate::Exit;
use crate::args::{CheckArgs, transport};
use crate::failure::Failure;

/// Runs the suite and prints the report; the exit status follows the verdict.
pub async fn run(args: &CheckArgs, timeout: Duration) -> Result<Exit, Failure> {
    let profile = args.coin.profile()?;
    let options = Options {
        headers: args.headers,
        sampled_txs: args.sampled_txs,
        seed: args.seed.unwrap_or_else(random_u64),
        expected_key: args.key,
        addresses: args.addresses.clone(),
        ..Options::default()
    };
    let report = Conformance::new(transport(timeout), profile)
        .run(&args.server_url, &options)
        .await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print(&report);
    }
    Ok(match report.verdict() {
        Verdict::Pass => Exit::Ok,
        Verdict::ServerFault => Exit::ServerFault,
        Verdict::Unreachable => Exit::Unreachable,
    })
}

fn print(report: &Report) {
    println!(
        "rot check {} ({}, seed {})",
        report.base_url, report.coin, report.seed
    );
    if let Some(key) = report.server_key {
        println!("server key {key}");
    }
    if let Some(tip) = report.tip {
        println!("tip {} {}", tip.height, tip.hash);
    }
    for check in &report.checks {
        let label = match (check.outcome, check.at_fault) {
            (Outcome::Pass, _) => "PASS",
            (Outcome::Skip, _) => "SKIP",
            (Outcome::Fail, true) => "FAIL",
            (Outcome::Fail, false) => "DOWN",
        };
        println!("{label:<5} {:<20} {}", check.name, check.summary);
        if check.outcome == Outcome::Fail {
            println!("      evidence: {}", check.evidence);
        }
    }
    let failed = |at_fault: bool| {
        report
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail && c.at_fault == at_fault)
            .count()
    };
    match report.verdict() {
        Verdict::Pass => println!("verdict: conforms"),
        Verdict::ServerFault => println!(
            "verdict: the server answered wrongly in {} check(s)",
            failed(true)
        ),
        Verdict::Unreachable => println!(
            "verdict: {} check(s) could not be run (server unreachable or busy); not its fault",
            failed(false)
        ),
    }
}
