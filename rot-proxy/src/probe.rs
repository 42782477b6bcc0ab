//! The prober of one coin: cheap probes of every server every few seconds (its signed info:
//! reachable, its key, its tip, and the round trip), the full conformance suite at admission
//! and on a slower schedule, and cross-checks between servers (`cross_check.rs`).
//!
//! Only failures a server is responsible for count against it: a check it failed *at fault*
//! (it answered, wrongly) warns it; a check it could not be asked (refused, timed out, busy)
//! only keeps it out of rotation until it answers again. A pending server (new, or back from
//! an exclusion) is served from once it passes the whole suite.
//!
//! A round runs every probe interval, or at once when a heartbeat brings news (a new tip, a
//! tie between tips to resolve); suites and cross-checks run in the background, a bounded
//! number at a time.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rot_proto::conformance::{Conformance, Options, Report, Verdict};
use rot_proto::message::{Consequence, ServerInfo, ServerStatus};
use rot_proto::transport::Transport;
use rot_proto::{CoinProfile, Hash256, PublicKey, Signed};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cross_check;
use crate::directory::{AdminServer, Directory};
use crate::incidents::Incidents;
use crate::policy::Sanctions;
use crate::pool::{Agreement, Pool, ProbeSeen, Tip};

/// How the prober probes and checks, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    /// Pause between cheap probe rounds.
    pub probe_interval: Duration,
    /// Time limit of one cheap probe.
    pub probe_timeout: Duration,
    /// Pause between full suites of a server that passed.
    pub suite_interval: Duration,
    /// Time limit of one request of a suite or cross-check.
    pub check_timeout: Duration,
    /// Pause between cross-check rounds of a coin.
    pub cross_check_interval: Duration,
    /// Most servers asked the same cross-check question.
    pub cross_check_servers: usize,
    /// Most suites running at once per coin.
    pub suite_concurrency: usize,
    /// What runs.
    pub mode: CheckMode,
    /// Largest clock skew of signed times, in seconds.
    pub max_skew_secs: u64,
}

/// What the prober runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// Probes, conformance suites and cross-checks: new servers are served from once they
    /// pass the suite.
    Full,
    /// Probes only: servers are served from once admitted, while they answer probes.
    Health,
    /// Nothing: servers are served from once admitted, judged by heartbeats and relayed
    /// traffic alone.
    Off,
}

impl CheckSettings {
    /// Whether suites and cross-checks run.
    pub fn conformance(&self) -> bool {
        self.mode == CheckMode::Full
    }

    /// How soon a suite that did not pass is tried again.
    fn suite_retry(&self) -> Duration {
        (self.probe_interval * 5).min(self.suite_interval)
    }
}

/// When a server's next suite is due, and whether one runs.
#[derive(Debug, Clone, Copy, Default)]
struct SuiteState {
    running: bool,
    due_ms: u64,
    /// Whether the schedule was made for a pending server; `None` before the first.
    scheduled_as: Option<bool>,
}

/// What the prober shares with its suite and cross-check tasks.
#[derive(Debug)]
pub struct Prober {
    pub(crate) pool: Arc<Pool>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) incidents: Arc<Incidents>,
    pub(crate) sanctions: Sanctions,
    pub(crate) profile: CoinProfile,
    pub(crate) settings: CheckSettings,
    pub(crate) clock: Clock,
    probes: Transport,
    pub(crate) checks: Transport,
    suites: Mutex<HashMap<PublicKey, SuiteState>>,
    suite_slots: Arc<Semaphore>,
    cross_checking: AtomicBool,
    next_cross_check_ms: Mutex<u64>,
}

impl Prober {
    /// The prober of `pool`'s coin (of `profile`), over `http`.
    pub fn new(
        pool: Arc<Pool>,
        profile: CoinProfile,
        incidents: Arc<Incidents>,
        sanctions: Sanctions,
        settings: CheckSettings,
        http: reqwest::Client,
    ) -> Self {
        let directory = Arc::clone(pool.directory());
        let clock = directory.clock().clone();
        let first_cross_check = clock.now_millis() + millis(settings.cross_check_interval);
        Self {
            probes: Transport::new(http.clone())
                .with_timeout(settings.probe_timeout)
                .with_max_body_bytes(64 * 1024),
            checks: Transport::new(http).with_timeout(settings.check_timeout),
            suite_slots: Arc::new(Semaphore::new(settings.suite_concurrency.max(1))),
            pool,
            directory,
            incidents,
            sanctions,
            profile,
            settings,
            clock,
            suites: Mutex::new(HashMap::new()),
            cross_checking: AtomicBool::new(false),
            next_cross_check_ms: Mutex::new(first_cross_check),
        }
    }

    /// Probes every probe interval (or when woken) until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.round(&shutdown).await {
                tracing::warn!(coin = %self.pool.coin(), error = %e, "probe round failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.probe_interval) => {}
                _ = self.pool.woken() => {}
            }
        }
    }

    /// One round: probe, resolve tip ties, rebuild the relay's view, start due checks.
    pub async fn round(self: &Arc<Self>, shutdown: &CancellationToken) -> Result<(), crate::Error> {
        let servers: Vec<AdminServer> = self
            .directory
            .admin_servers(self.pool.coin())?
            .servers
            .into_iter()
            .filter(|s| {
                s.record.url.is_some()
                    && !matches!(
                        s.status,
                        ServerStatus::Banned | ServerStatus::Stale | ServerStatus::Excluded
                    )
            })
            .collect();
        let mut probes = JoinSet::new();
        let probing = self.settings.mode != CheckMode::Off;
        for server in servers.iter().filter(|_| probing) {
            let (key, url) = (server.record.server_key, server.record.url.clone());
            let prober = Arc::clone(self);
            probes.spawn(async move {
                let url = url.unwrap_or_default();
                (key, prober.probe(&key, &url).await)
            });
        }
        while let Some(joined) = probes.join_next().await {
            if let Ok((key, (seen, latency_ms))) = joined {
                if let Some(latency_ms) = latency_ms {
                    self.directory.note_latency(&key, latency_ms);
                }
                self.pool.observe_probe(key, seen);
            }
        }
        self.pool.rebuild()?;
        if self.resolve_ties().await {
            self.pool.rebuild()?;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        self.start_suites(&servers);
        self.start_cross_check(shutdown);
        Ok(())
    }

    /// Asks `url` for its signed info: reachable with `key`'s signature, its tip.
    async fn probe(&self, key: &PublicKey, url: &str) -> (ProbeSeen, Option<u64>) {
        let started = Instant::now();
        let result = async {
            let answer = self
                .probes
                .get(&format!("{url}/rot/v1/info"))
                .await?
                .success()?;
            let signed: Signed<ServerInfo> = answer.json()?;
            let info = signed.verify()?;
            if info.server_key != *key {
                return Err(rot_proto::Error::BadAnswer {
                    url: answer.url,
                    reason: format!("the info is signed by {}, not {key}", info.server_key),
                });
            }
            Ok(info)
        }
        .await;
        let at_ms = self.clock.now_millis();
        match result {
            Ok(info) => {
                let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let seen = ProbeSeen {
                    reachable: true,
                    error: None,
                    at_ms,
                    tip: Some(Tip {
                        height: info.height,
                        hash: info.tip_hash,
                    }),
                    synced: info.index.synced,
                };
                (seen, Some(latency))
            }
            Err(error) => {
                tracing::debug!(server_key = %key, %error, "probe failed");
                let seen = ProbeSeen {
                    reachable: false,
                    error: Some(error.to_string()),
                    at_ms,
                    tip: None,
                    synced: false,
                };
                (seen, None)
            }
        }
    }

    /// Asks a server on the higher tip of each unresolved tie for the block at the lower
    /// tip's height; returns whether anything was learnt.
    async fn resolve_ties(&self) -> bool {
        let unresolved = self.pool.unresolved();
        if unresolved.is_empty() {
            return false;
        }
        let servers = match self.directory.admin_servers(self.pool.coin()) {
            Ok(view) => view.servers,
            Err(_) => return false,
        };
        let mut learnt = false;
        for (lower, higher) in unresolved {
            let on_higher = servers
                .iter()
                .find(|s| s.record.height == higher.height && s.record.tip_hash == higher.hash);
            let Some(url) = on_higher.and_then(|s| s.record.url.clone()) else {
                continue;
            };
            let answer = async {
                self.probes
                    .get(&format!("{url}/block-height/{}", lower.height))
                    .await?
                    .success()?
                    .parse::<Hash256>("a block hash")
            }
            .await;
            if let Ok(hash) = answer {
                self.pool.learn_ancestry(lower, higher, hash == lower.hash);
                learnt = true;
            }
        }
        learnt
    }

    /// Starts the suites that are due: pending servers at once (then after a retry pause),
    /// others every suite interval (first at a random point of it, to spread the load).
    fn start_suites(self: &Arc<Self>, servers: &[AdminServer]) {
        let now_ms = self.clock.now_millis();
        let mut suites = self.suites.lock().unwrap_or_else(PoisonError::into_inner);
        suites.retain(|key, _| servers.iter().any(|s| s.record.server_key == *key));
        for server in servers {
            let key = server.record.server_key;
            let pending = server.status == ServerStatus::Pending;
            if pending && !self.settings.conformance() {
                self.clear_without_checks(&key);
                continue;
            }
            if !self.settings.conformance() {
                continue;
            }
            let state = suites.entry(key).or_default();
            if state.scheduled_as != Some(pending) {
                // New, or pending again (a new URL): pending servers are checked at once.
                state.scheduled_as = Some(pending);
                state.due_ms = if pending {
                    now_ms
                } else {
                    now_ms + random_below(millis(self.settings.suite_interval))
                };
            }
            if state.running || state.due_ms > now_ms {
                continue;
            }
            let Some(url) = server.record.url.clone() else {
                continue;
            };
            state.running = true;
            let prober = Arc::clone(self);
            tokio::spawn(async move {
                let passed = prober.run_suite(key, &url).await;
                let pause = if passed {
                    prober.settings.suite_interval
                } else {
                    prober.settings.suite_retry()
                };
                let mut suites = prober.suites.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(state) = suites.get_mut(&key) {
                    state.running = false;
                    state.due_ms = prober.clock.now_millis() + millis(pause);
                }
            });
        }
    }

    /// A pending server when no checks run: served from on health alone.
    fn clear_without_checks(&self, key: &PublicKey) {
        let cleared = self.directory.update_record(key, |record, now_ms| {
            self.sanctions.passed_suite(record, now_ms)
        });
        if let Err(e) = cleared {
            tracing::warn!(server_key = %key, error = %e, "clearing a server failed");
        }
    }

    /// Runs the full suite against `key` at `url` and acts on it; returns whether it passed.
    async fn run_suite(&self, key: PublicKey, url: &str) -> bool {
        let Ok(_slot) = self.suite_slots.acquire().await else {
            return false;
        };
        let options = Options {
            seed: RandomState::new().hash_one(key),
            expected_key: Some(key),
            max_clock_skew_secs: self.settings.max_skew_secs,
            ..Options::default()
        };
        let report = match Conformance::new(self.checks.clone(), self.profile.clone())
            .run(url, &options)
            .await
        {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(server_key = %key, error = %e, "conformance suite could not run");
                return false;
            }
        };
        self.judge_suite(key, &report)
    }

    /// Acts on a suite's report: clears a passing server, warns one that failed at fault.
    fn judge_suite(&self, key: PublicKey, report: &Report) -> bool {
        let coin = self.pool.coin();
        match report.verdict() {
            Verdict::Pass => {
                let changed = self.directory.update_record(&key, |record, now_ms| {
                    self.sanctions.passed_suite(record, now_ms)
                });
                match changed {
                    Ok(Some(true)) => {
                        tracing::info!(coin, server_key = %key, "conformance suite passed: serving");
                        self.pool.forget_lacks(&key);
                        self.rebuild();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(server_key = %key, error = %e, "storing a standing failed")
                    }
                }
                true
            }
            Verdict::Unreachable => {
                tracing::info!(coin, server_key = %key, "conformance suite: server could not be asked");
                false
            }
            Verdict::ServerFault => {
                let faults: Vec<_> = report
                    .checks
                    .iter()
                    .filter(|c| c.is_server_fault())
                    .collect();
                let reason = faults
                    .first()
                    .map(|c| format!("{}: {}", c.name, c.summary))
                    .unwrap_or_default();
                let consequence = self.warn(&key, &reason);
                let mut first_id = None;
                for check in faults {
                    let evidence = json!({
                        "summary": check.summary,
                        "evidence": check.evidence,
                        "suite_seed": report.seed,
                        "base_url": report.base_url,
                        "same_run_as": first_id,
                    });
                    let this = if first_id.is_none() {
                        consequence
                    } else {
                        Consequence::None
                    };
                    match self
                        .incidents
                        .record(coin, key, &check.name, evidence, this)
                    {
                        Ok(incident) => {
                            first_id.get_or_insert(incident.id);
                        }
                        Err(e) => tracing::warn!(error = %e, "recording an incident failed"),
                    }
                }
                false
            }
        }
    }

    /// Warns `key` for `reason` under the sanction rules; returns what came of it.
    pub(crate) fn warn(&self, key: &PublicKey, reason: &str) -> Consequence {
        let consequence = self
            .directory
            .update_record(key, |record, now_ms| {
                self.sanctions.warn(record, reason, now_ms)
            })
            .unwrap_or_else(|e| {
                tracing::warn!(server_key = %key, error = %e, "storing a warning failed");
                None
            })
            .unwrap_or(Consequence::None);
        if consequence != Consequence::None {
            self.rebuild();
        }
        consequence
    }

    fn rebuild(&self) {
        if let Err(e) = self.pool.rebuild() {
            tracing::warn!(error = %e, "relay view rebuild failed");
        }
    }

    /// Starts a cross-check round when one is due and none runs.
    fn start_cross_check(self: &Arc<Self>, shutdown: &CancellationToken) {
        if !self.settings.conformance() {
            return;
        }
        let now_ms = self.clock.now_millis();
        {
            let mut next = self
                .next_cross_check_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now_ms < *next || self.cross_checking.swap(true, Ordering::SeqCst) {
                return;
            }
            *next = now_ms + millis(self.settings.cross_check_interval);
        }
        if !matches!(self.pool.view().agreement(), Agreement::Agreed { .. }) {
            self.cross_checking.store(false, Ordering::SeqCst);
            return;
        }
        let prober = Arc::clone(self);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                () = cross_check::round(&prober) => {}
            }
            prober.cross_checking.store(false, Ordering::SeqCst);
        });
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A random number below `n` (0 when `n` is 0).
pub(crate) fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(n) % n.max(1)
}
