//! The conformance suite (feature `client`): checks that run against any server's base URL
//! and say, per check, whether the server passed, with evidence. Proxies run it (or cheap
//! subsets of it, through [`Probe`]) before admitting a server and while relaying to it;
//! operators run it with `rot check`; other implementations of the server can run it to
//! prove themselves.
//!
//! A failed check says whether the server is at fault: "it answered, and wrongly" (a header
//! without its proof of work, a merkle proof that leads elsewhere, totals that contradict the
//! unspent outputs) is evidence against the server; "it did not answer" (refused, timed out,
//! busy) is not. Evidence names what was asked, what came back and what was expected, and
//! every random pick comes from [`Options::seed`], so anyone can replay it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Esplora;
use crate::probe::Probe;
use crate::transport::Transport;
use crate::{CoinProfile, Error, Hash256, PublicKey};

/// The names of the checks, as reported in [`CheckResult::name`] and in proxies' incidents.
pub mod check {
    /// `/rot/v1/info` is a valid signed envelope (and by the expected key, if one is given).
    pub const INFO_SIGNATURE: &str = "info-signature";
    /// `/rot/v1/challenge` signs a fresh nonce with the server's key, at the right time.
    pub const CHALLENGE_SIGNATURE: &str = "challenge-signature";
    /// The server serves the coin and chain asked for: its info and its block 0.
    pub const CHAIN_IDENTITY: &str = "chain-identity";
    /// `/blocks/tip/hash` is the block `/block-height/{tip height}` names.
    pub const TIP: &str = "tip";
    /// The last headers hash to their blocks, link, and meet their proof-of-work targets.
    pub const HEADERS: &str = "headers";
    /// Sampled transactions of recent blocks hash to their ids and their merkle proofs lead to
    /// their headers' merkle roots; recent blocks' txid lists lead to those roots too.
    pub const TRANSACTIONS: &str = "transactions";
    /// The outputs sampled transactions spend are reported spent by them.
    pub const SPENT_BY: &str = "spent-by";
    /// An address's unspent outputs add up to its funded minus spent totals.
    pub const ADDRESS_BALANCE: &str = "address-balance";
    /// Bad input gets the specified 4xx and the shared error body.
    pub const ERROR_ANSWERS: &str = "error-answers";
    /// Every check, in the order [`super::Conformance::run`] runs them.
    pub const ALL: [&str; 9] = [
        INFO_SIGNATURE,
        CHALLENGE_SIGNATURE,
        CHAIN_IDENTITY,
        TIP,
        HEADERS,
        TRANSACTIONS,
        SPENT_BY,
        ADDRESS_BALANCE,
        ERROR_ANSWERS,
    ];
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The server answered as specified.
    Pass,
    /// It did not: see [`CheckResult::at_fault`] for whether it answered wrongly or not at all.
    Fail,
    /// Nothing to check: a capability the server does not offer, nothing to sample, or a
    /// prerequisite that failed in another check.
    Skip,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name, one of [`check::ALL`].
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// For a failure: `true` when the server answered wrongly, `false` when it could not be
    /// asked (unreachable, timed out, busy). Always `false` unless `outcome` is `fail`.
    pub at_fault: bool,
    /// One line for people.
    pub summary: String,
    /// What was asked, what came back and what was expected (check-specific).
    pub evidence: Value,
}

impl CheckResult {
    /// Whether this is a failure the server is to blame for.
    pub fn is_server_fault(&self) -> bool {
        self.outcome == Outcome::Fail && self.at_fault
    }
}

/// What the suite checks and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How many of the newest headers to walk back from the tip.
    pub headers: usize,
    /// How many transactions of those blocks to verify.
    pub sampled_txs: usize,
    /// Seed of every random pick, so the evidence can be replayed.
    pub seed: u64,
    /// The key the server must sign with; without it, the key its info names.
    pub expected_key: Option<PublicKey>,
    /// Addresses to sample transactions from when the server cannot list a block's
    /// transactions, and to check balances of (otherwise one is taken from the sampled
    /// transactions' outputs).
    pub addresses: Vec<String>,
    /// How far a signed time may be from the local clock, in seconds.
    pub max_clock_skew_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            headers: 10,
            sampled_txs: 6,
            seed: 0,
            expected_key: None,
            addresses: Vec::new(),
            max_clock_skew_secs: 600,
        }
    }
}

/// The best block a server named, as the tip check saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipSeen {
    /// Its height.
    pub height: u32,
    /// Its hash.
    pub hash: Hash256,
}

/// What the suite concluded about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No check failed.
    Pass,
    /// At least one check failed by the server's fault.
    ServerFault,
    /// Checks failed only because the server could not be asked.
    Unreachable,
}

/// The results of a run against one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The base URL checked.
    pub base_url: String,
    /// The coin profile id checked against.
    pub coin: String,
    /// The seed of the random picks.
    pub seed: u64,
    /// The key the server's info is validly signed by, if it is.
    pub server_key: Option<PublicKey>,
    /// The tip, if the tip check passed.
    pub tip: Option<TipSeen>,
    /// Every check's result, in the order run.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The overall verdict: any failure by the server's fault makes it
    /// [`Verdict::ServerFault`].
    pub fn verdict(&self) -> Verdict {
        if self.checks.iter().any(CheckResult::is_server_fault) {
            Verdict::ServerFault
        } else if self.checks.iter().any(|c| c.outcome == Outcome::Fail) {
            Verdict::Unreachable
        } else {
            Verdict::Pass
        }
    }

    /// The result of the check named `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// The suite for one coin network.
#[derive(Debug, Clone)]
pub struct Conformance {
    transport: Transport,
    profile: CoinProfile,
}

impl Conformance {
    /// Checks servers of the coin of `profile` through `transport` (or a `reqwest::Client`).
    pub fn new(transport: impl Into<Transport>, profile: CoinProfile) -> Self {
        Self {
            transport: transport.into(),
            profile,
        }
    }

    /// A probe of the server at `base_url`, to run checks one by one (each fetches what it
    /// needs, once per probe).
    pub fn probe(&self, base_url: &str, options: Options) -> Result<Probe, Error> {
        let api = Esplora::new(self.transport.clone(), base_url, self.profile.clone())?;
        Ok(Probe::new(api, options))
    }

    /// Runs every check against the server at `base_url`; fails only on a malformed URL.
    pub async fn run(&self, base_url: &str, options: &Options) -> Result<Report, Error> {
        let mut probe = self.probe(base_url, options.clone())?;
        let checks = vec![
            probe.info_signature().await,
            probe.challenge_signature().await,
            probe.chain_identity().await,
            probe.tip().await,
            probe.headers().await,
            probe.transactions().await,
            probe.spent_by().await,
            probe.address_balance().await,
            probe.error_answers().await,
        ];
        Ok(probe.into_report(checks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome, at_fault: bool) -> CheckResult {
        CheckResult {
            name: check::TIP.to_owned(),
            outcome,
            at_fault,
            summary: String::new(),
            evidence: Value::Null,
        }
    }

    fn report(checks: Vec<CheckResult>) -> Report {
        Report {
            base_url: "http://127.0.0.1:1".to_owned(),
            coin: "ltc".to_owned(),
            seed: 0,
            server_key: None,
            tip: None,
            checks,
        }
    }

    #[test]
    fn a_fault_outweighs_unreachability_and_skips_pass() {
        let pass = result(Outcome::Pass, false);
        let skip = result(Outcome::Skip, false);
        let down = result(Outcome::Fail, false);
        let lie = result(Outcome::Fail, true);
        assert_eq!(
            report(vec![pass.clone(), skip.clone()]).verdict(),
            Verdict::Pass
        );
        assert_eq!(
            report(vec![pass.clone(), down.clone()]).verdict(),
            Verdict::Unreachable
        );
        assert_eq!(
            report(vec![down, lie, pass]).verdict(),
            Verdict::ServerFault
        );
    }

    #[test]
    fn reports_serialize_with_lowercase_outcomes() {
        let json = serde_json::to_value(report(vec![result(Outcome::Skip, false)])).unwrap();
        assert_eq!(json["checks"][0]["outcome"], "skip");
        assert_eq!(json["checks"][0]["name"], "tip");
    }
}
