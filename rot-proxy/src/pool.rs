//! One coin's servers as the relay sees them: which are healthy, the tip they agree on, and
//! which one a request goes to.
//!
//! A server is **healthy** when the directory lists it as admitted or warned (heartbeating,
//! not banned, pending or excluded), its last probe reached it with a signed info by its key,
//! and it is not ejected. A server that lags (its node behind, its index syncing, its node on
//! a fork) is healthy but not on the agreed tip: not served from, not punished. So is one
//! that says it is not synced (its node unreachable: its tip may be old without it knowing),
//! and it has no say in the agreed tip. The **agreed tip** is the tip (height and hash)
//! that most synced healthy servers report, so one server claiming a far higher tip does not move
//! it. On a tie between tips of one chain (a block reaching servers one after the other) the
//! lowest is agreed: every tied server has it. On a tie between forks there is no agreed tip,
//! and the relay answers 503 rather than pick a side. Whether a lower tip is on a higher
//! tip's chain is asked of a server on the higher tip by the prober, and remembered.
//!
//! Requests go to healthy servers on the agreed tip that offer the request's route, chosen
//! by the power of two choices: two at random, the one with the lower moving average of
//! latency × (requests in flight + 1). The average fades while a server gets no requests, so
//! one that was slow for a while is tried again. The [`View`] requests read is rebuilt when probes,
//! heartbeats, standings or ejections change; per-server counters live in [`Upstream`]s,
//! shared across views and read without locks on the request path.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use axum::http::HeaderValue;
use rot_proto::message::{Consequence, ServerStatus};
use rot_proto::{Hash256, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::Error;
use crate::clock::Clock;
use crate::connections::{Idle, Target};
use crate::directory::{AdminServer, Directory};
use crate::incidents::Incidents;
use crate::metrics::ProxyMetrics;
use crate::outlier::{Outlier, OutlierRules};
use crate::route::{Route, Routes};

/// The incident check name of a passive ejection.
pub const EJECTION_CHECK: &str = "relay-failures";
/// Weight of a new latency sample in the moving average, in eighths.
const LATENCY_SAMPLE_EIGHTHS: u64 = 2;
/// A latency average fades as it ages (halved after this long without a sample), so a server
/// that lost the comparisons while it was slow is tried again.
const LATENCY_FADE_MS: u64 = 2000;
/// Ancestry answers remembered per coin; beyond this the cache starts over.
const MAX_ANCESTRY: usize = 4096;

/// A chain tip: height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tip {
    /// Its height.
    pub height: u64,
    /// Its block hash.
    pub hash: Hash256,
}

impl fmt::Display for Tip {
    /// `height:hash`, the form of the `X-Rot-Tip` header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.height, self.hash)
    }
}

/// What the healthy servers agree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Agreement {
    /// The tip most healthy servers report (on their tip or below it on the same chain).
    Agreed {
        /// The tip.
        tip: Tip,
    },
    /// No majority: the tied tips and how many servers report each.
    Split {
        /// `(tip, servers)`, highest first.
        tips: Vec<(Tip, usize)>,
    },
    /// No healthy server.
    NoServers,
}

/// The outcome of a tip vote: the agreement and the tied tip pairs whose ancestry is not
/// known yet (lower, higher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// What the servers agree on.
    pub agreement: Agreement,
    /// Pairs the prober should ask about.
    pub unresolved: Vec<(Tip, Tip)>,
}

/// Decides the agreed tip from healthy servers' `tips`. `ancestry` answers whether a lower
/// tip is on a higher tip's chain, when known; `previous` is kept on an unresolved tie it is
/// part of, until the prober resolves it.
pub fn vote(
    tips: &[Tip],
    previous: Option<Tip>,
    ancestry: impl Fn(&Tip, &Tip) -> Option<bool>,
) -> Vote {
    let mut counts: HashMap<Tip, usize> = HashMap::new();
    for tip in tips {
        *counts.entry(*tip).or_default() += 1;
    }
    // A server whose tip is known to descend from another tip reports that one too: in a
    // reorganisation, servers that are a block apart on the new branch outvote one still on
    // the old branch.
    let support: HashMap<Tip, usize> = counts
        .iter()
        .map(|(tip, &n)| {
            let above: usize = counts
                .iter()
                .filter(|(higher, _)| {
                    higher.height > tip.height && ancestry(tip, higher) == Some(true)
                })
                .map(|(_, &m)| m)
                .sum();
            (*tip, n + above)
        })
        .collect();
    let Some(&most) = support.values().max() else {
        return Vote {
            agreement: Agreement::NoServers,
            unresolved: Vec::new(),
        };
    };
    let mut tied: Vec<Tip> = support
        .iter()
        .filter(|&(_, &n)| n == most)
        .map(|(tip, _)| *tip)
        .collect();
    tied.sort_unstable();
    let split = || Agreement::Split {
        tips: tied.iter().rev().map(|tip| (*tip, most)).collect(),
    };
    if let [only] = tied.as_slice() {
        return Vote {
            agreement: Agreement::Agreed { tip: *only },
            unresolved: Vec::new(),
        };
    }
    let highest = tied[tied.len() - 1];
    let mut unresolved = Vec::new();
    for lower in &tied[..tied.len() - 1] {
        if lower.height == highest.height {
            return Vote {
                agreement: split(),
                unresolved: Vec::new(),
            };
        }
        match ancestry(lower, &highest) {
            Some(true) => {}
            Some(false) => {
                return Vote {
                    agreement: split(),
                    unresolved: Vec::new(),
                };
            }
            None => unresolved.push((*lower, highest)),
        }
    }
    let agreement = if unresolved.is_empty() {
        Agreement::Agreed { tip: tied[0] }
    } else {
        match previous.filter(|p| tied.contains(p)) {
            Some(tip) => Agreement::Agreed { tip },
            None => split(),
        }
    };
    Vote {
        agreement,
        unresolved,
    }
}

/// What the last probe of a server found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeSeen {
    /// Whether the server answered with a valid signed info by its key.
    pub reachable: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// When (unix milliseconds); 0 before the first probe.
    pub at_ms: u64,
    /// The tip its info named.
    pub tip: Option<Tip>,
    /// Whether its index has caught up with its node and still follows it.
    pub synced: bool,
}

/// One server's counters on the request path, shared across views.
#[derive(Debug)]
pub struct Upstream {
    /// The server's key.
    pub key: PublicKey,
    key_header: HeaderValue,
    in_flight: AtomicU32,
    /// Moving average of answer times in microseconds; 0 before the first.
    latency_us: AtomicU64,
    /// When the average last took a sample (proxy clock, unix milliseconds).
    latency_at_ms: AtomicU64,
    ejected_until_ms: AtomicU64,
    /// Routes the server answered 501 to (see [`Routes`]).
    lacks: AtomicU8,
    requests: AtomicU64,
    failures: AtomicU64,
    outlier: Mutex<Outlier>,
    probe: Mutex<ProbeSeen>,
    /// Kept connections to it.
    idle: Arc<Idle>,
}

impl Upstream {
    fn new(key: PublicKey) -> Self {
        Self {
            key,
            key_header: HeaderValue::from_str(&key.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            in_flight: AtomicU32::new(0),
            latency_us: AtomicU64::new(0),
            latency_at_ms: AtomicU64::new(0),
            ejected_until_ms: AtomicU64::new(0),
            lacks: AtomicU8::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            outlier: Mutex::new(Outlier::default()),
            probe: Mutex::new(ProbeSeen::default()),
            idle: Arc::new(Idle::default()),
        }
    }

    /// The `X-Rot-Server` value naming this server.
    pub fn key_header(&self) -> &HeaderValue {
        &self.key_header
    }

    /// Its kept connections.
    pub fn idle(&self) -> &Arc<Idle> {
        &self.idle
    }

    /// Counts a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// Faded latency × (requests in flight + 1).
    fn cost(&self, now_ms: u64) -> u64 {
        let age = now_ms.saturating_sub(self.latency_at_ms.load(Ordering::Relaxed));
        let latency =
            self.latency_us.load(Ordering::Relaxed) * LATENCY_FADE_MS / (LATENCY_FADE_MS + age);
        latency
            .max(1)
            .saturating_mul(u64::from(self.in_flight.load(Ordering::Relaxed)) + 1)
    }

    fn lacks(&self) -> Routes {
        Routes::from_bits(self.lacks.load(Ordering::Relaxed))
    }

    fn probe(&self) -> MutexGuard<'_, ProbeSeen> {
        self.probe.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request in flight to an upstream; counted down when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Upstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A server requests may go to.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its counters.
    pub upstream: Arc<Upstream>,
    /// Its base URL.
    pub base: Arc<str>,
    /// How it is reached.
    pub target: Target,
    /// Its tip.
    pub tip: Tip,
    /// The `X-Rot-Tip` value of its tip.
    pub tip_header: HeaderValue,
    /// Whether it says its index follows its node at the tip.
    pub synced: bool,
    routes: Routes,
}

impl Candidate {
    fn offers(&self, route: Route) -> bool {
        self.routes.contains(route) && !self.upstream.lacks().contains(route)
    }
}

/// How a relayed request went, for the server's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (any status but 5xx): the time to its answer.
    Answered(Duration),
    /// It answered 501 to this route: it cannot serve it.
    NotImplemented(Route),
    /// No answer, a timeout or a 5xx.
    Failed(String),
}

/// Why a pinned server cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinRefusal {
    /// The coin has no such server.
    Unknown,
    /// It is listed but not healthy now.
    Unavailable(String),
}

/// What requests read: rebuilt, never changed.
#[derive(Debug, Default)]
pub struct View {
    agreement: Option<Agreement>,
    /// Healthy servers on the agreed tip.
    on_tip: Vec<Candidate>,
    /// Every healthy server, for pinned requests.
    healthy: HashMap<PublicKey, Candidate>,
    /// Every server the directory lists for the coin, with why it is not healthy.
    listed: HashMap<PublicKey, String>,
}

impl View {
    /// What the healthy servers agree on.
    pub fn agreement(&self) -> &Agreement {
        self.agreement.as_ref().unwrap_or(&Agreement::NoServers)
    }

    /// A server on the agreed tip offering `route`, not among `avoid`, by two random choices.
    pub fn pick(&self, route: Route, avoid: &[PublicKey], now_ms: u64) -> Option<&Candidate> {
        let eligible = |c: &&Candidate| {
            c.offers(route) && !c.upstream.ejected(now_ms) && !avoid.contains(&c.upstream.key)
        };
        let count = self.on_tip.iter().filter(eligible).count();
        match count {
            0 => None,
            1 => self.on_tip.iter().find(eligible),
            n => {
                let first = random_below(n);
                let mut second = random_below(n - 1);
                if second >= first {
                    second += 1;
                }
                let mut picks = self.on_tip.iter().filter(eligible);
                let (low, high) = (first.min(second), first.max(second));
                let a = picks.nth(low)?;
                let b = picks.nth(high - low - 1)?;
                Some(if b.upstream.cost(now_ms) < a.upstream.cost(now_ms) {
                    b
                } else {
                    a
                })
            }
        }
    }

    /// The healthy server `key`, whatever its tip, for a pinned request.
    pub fn pinned(&self, key: &PublicKey, now_ms: u64) -> Result<&Candidate, PinRefusal> {
        match self.healthy.get(key) {
            Some(candidate) if candidate.upstream.ejected(now_ms) => Err(PinRefusal::Unavailable(
                "ejected after failing relayed requests".into(),
            )),
            Some(candidate) => Ok(candidate),
            None => match self.listed.get(key) {
                Some(why) => Err(PinRefusal::Unavailable(why.clone())),
                None => Err(PinRefusal::Unknown),
            },
        }
    }

    /// The healthy servers on the agreed tip.
    pub fn on_tip(&self) -> &[Candidate] {
        &self.on_tip
    }
}

/// A fast random number below `n` (> 0), from a per-thread xorshift seeded by the OS.
fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0u8) | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (((x >> 32) * n as u64) >> 32) as usize
    })
}

/// One server as the operator view of the relay shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamView {
    /// The key.
    pub server_key: PublicKey,
    /// Its standing in the directory.
    pub status: ServerStatus,
    /// Whether requests may go to it.
    pub healthy: bool,
    /// Why not, when not.
    pub unhealthy_reason: Option<String>,
    /// Whether it is on the agreed tip.
    pub on_agreed_tip: bool,
    /// Its tip as last seen (probe or heartbeat).
    pub tip: Option<Tip>,
    /// The last probe.
    pub probe: ProbeSeen,
    /// Moving average of relayed answer times, microseconds.
    pub latency_us: u64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Requests relayed to it since start.
    pub requests: u64,
    /// Of which failed (no answer, timeout, 5xx).
    pub failures: u64,
    /// Until when it is ejected (unix milliseconds), if it is.
    pub ejected_until_ms: Option<u64>,
    /// Routes it answered 501 to.
    pub lacks: Vec<&'static str>,
}

/// The body of `GET /v1/admin/coins/{coin}/relay`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolView {
    /// The coin id.
    pub coin: String,
    /// What the healthy servers agree on.
    pub agreement: Agreement,
    /// Every listed server.
    pub servers: Vec<UpstreamView>,
}

/// One coin's servers. Shared as `Arc<Pool>`.
#[derive(Debug)]
pub struct Pool {
    coin: String,
    directory: Arc<Directory>,
    incidents: Arc<Incidents>,
    clock: Clock,
    rules: OutlierRules,
    /// Whether a server must answer probes to be healthy (not when no probes run).
    require_probe: bool,
    upstreams: Mutex<HashMap<PublicKey, Arc<Upstream>>>,
    view: RwLock<Arc<View>>,
    /// Serializes rebuilds, so a slower one never replaces a newer view.
    rebuilding: Mutex<()>,
    /// (lower tip, higher tip) → whether the lower is on the higher's chain.
    ancestry: Mutex<HashMap<(Tip, Tip), bool>>,
    unresolved: Mutex<Vec<(Tip, Tip)>>,
    /// Wakes the prober early (a heartbeat brought a new tip, a tie needs resolving).
    wake: Notify,
    metrics: Option<ProxyMetrics>,
}

impl Pool {
    /// The pool of coin `coin` over `directory`, recording ejections in `incidents`; servers
    /// must answer probes to be healthy when `require_probe`.
    pub fn new(
        coin: &str,
        directory: Arc<Directory>,
        incidents: Arc<Incidents>,
        rules: OutlierRules,
        require_probe: bool,
    ) -> Self {
        let clock = directory.clock().clone();
        Self {
            coin: coin.to_owned(),
            directory,
            incidents,
            clock,
            rules,
            require_probe,
            upstreams: Mutex::new(HashMap::new()),
            view: RwLock::new(Arc::new(View::default())),
            rebuilding: Mutex::new(()),
            ancestry: Mutex::new(HashMap::new()),
            unresolved: Mutex::new(Vec::new()),
            wake: Notify::new(),
            metrics: None,
        }
    }

    /// Counts every probe observed from now on in `metrics`.
    pub fn with_metrics(mut self, metrics: ProxyMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The coin id.
    pub fn coin(&self) -> &str {
        &self.coin
    }

    /// The directory the pool reads.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves when something asks the prober to run early.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Asks the prober to run early.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The tip pairs whose ancestry the last rebuild could not decide.
    pub fn unresolved(&self) -> Vec<(Tip, Tip)> {
        lock(&self.unresolved).clone()
    }

    /// Remembers whether `lower` is on `higher`'s chain.
    pub fn learn_ancestry(&self, lower: Tip, higher: Tip, on_chain: bool) {
        let mut known = lock(&self.ancestry);
        if known.len() >= MAX_ANCESTRY {
            known.clear();
        }
        known.insert((lower, higher), on_chain);
    }

    fn upstream(&self, key: PublicKey) -> Arc<Upstream> {
        lock(&self.upstreams)
            .entry(key)
            .or_insert_with(|| Arc::new(Upstream::new(key)))
            .clone()
    }

    /// Records what a probe of `key` found.
    pub fn observe_probe(&self, key: PublicKey, seen: ProbeSeen) {
        if let Some(metrics) = &self.metrics {
            metrics.probe(&self.coin, seen.reachable);
        }
        *self.upstream(key).probe() = seen;
    }

    /// Forgets what was learnt from 501 answers of `key` (it passed the suite again).
    pub fn forget_lacks(&self, key: &PublicKey) {
        if let Some(upstream) = lock(&self.upstreams).get(key) {
            upstream.lacks.store(0, Ordering::Relaxed);
        }
    }

    /// Rebuilds the view from the directory and what probes and requests found.
    pub fn rebuild(&self) -> Result<(), Error> {
        let _one = lock(&self.rebuilding);
        let servers = self.directory.admin_servers(&self.coin)?.servers;
        let now_ms = self.clock.now_millis();
        let mut listed = HashMap::new();
        let mut healthy = HashMap::new();
        let mut keep = HashSet::new();
        for server in &servers {
            let key = server.record.server_key;
            if matches!(server.status, ServerStatus::Banned | ServerStatus::Stale) {
                continue;
            }
            let upstream = self.upstream(key);
            keep.insert(key);
            match self.health(server, &upstream, now_ms) {
                Ok(candidate) => {
                    healthy.insert(key, candidate);
                }
                Err(why) => {
                    listed.insert(key, why);
                }
            }
        }
        lock(&self.upstreams).retain(|key, _| keep.contains(key));
        let tips: Vec<Tip> = healthy
            .values()
            .filter(|c| c.synced)
            .map(|c| c.tip)
            .collect();
        let previous = match self.view().agreement() {
            Agreement::Agreed { tip } => Some(*tip),
            _ => None,
        };
        let vote = {
            let known = lock(&self.ancestry);
            vote(&tips, previous, |lower, higher| {
                known.get(&(*lower, *higher)).copied()
            })
        };
        let on_tip = match &vote.agreement {
            Agreement::Agreed { tip } => {
                let mut on_tip: Vec<Candidate> = healthy
                    .values()
                    .filter(|c| c.synced && c.tip == *tip)
                    .cloned()
                    .collect();
                on_tip.sort_by_key(|c| c.upstream.key);
                on_tip
            }
            _ => Vec::new(),
        };
        if vote.agreement != *self.view().agreement() {
            tracing::info!(coin = %self.coin, agreement = ?vote.agreement, "relay tip agreement changed");
        }
        if !vote.unresolved.is_empty() {
            self.wake();
        }
        *lock(&self.unresolved) = vote.unresolved;
        let view = View {
            agreement: Some(vote.agreement),
            on_tip,
            healthy,
            listed,
        };
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
        Ok(())
    }

    /// The server as a candidate, or why it is not healthy.
    fn health(
        &self,
        server: &AdminServer,
        upstream: &Arc<Upstream>,
        now_ms: u64,
    ) -> Result<Candidate, String> {
        let record = &server.record;
        match server.status {
            ServerStatus::Admitted | ServerStatus::Warned => {}
            ServerStatus::Pending => {
                return Err("the conformance checks have not passed yet".into());
            }
            ServerStatus::Excluded => return Err("excluded after failed checks".into()),
            other => return Err(format!("{other:?}").to_lowercase()),
        }
        let url = record
            .url
            .as_deref()
            .ok_or("its URL was taken over by another key")?;
        let probe = upstream.probe().clone();
        if !probe.reachable && self.require_probe {
            return Err(probe.error.unwrap_or_else(|| "not probed yet".to_owned()));
        }
        if upstream.ejected(now_ms) {
            return Err("ejected after failing relayed requests".into());
        }
        // The newer of what the probe saw and what the last heartbeat said.
        let heard = Tip {
            height: record.height,
            hash: record.tip_hash,
        };
        let (tip, synced) = match probe.tip {
            Some(seen) if probe.at_ms >= record.last_heartbeat_ms => (seen, probe.synced),
            _ => (heard, record.synced),
        };
        Ok(Candidate {
            upstream: Arc::clone(upstream),
            base: Arc::from(url),
            target: Target::of(url),
            tip,
            tip_header: HeaderValue::from_str(&tip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            synced,
            routes: Routes::offered(&record.capabilities),
        })
    }

    /// Counts how a request to `upstream` went; ejects it when its failures say so.
    pub fn report(&self, upstream: &Upstream, outcome: Outcome) {
        upstream.requests.fetch_add(1, Ordering::Relaxed);
        let now_ms = self.clock.now_millis();
        let (failed, reason) = match &outcome {
            Outcome::Answered(took) => {
                let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                let average = upstream.latency_us.load(Ordering::Relaxed);
                let next = if average == 0 {
                    sample
                } else {
                    (average * (8 - LATENCY_SAMPLE_EIGHTHS) + sample * LATENCY_SAMPLE_EIGHTHS) / 8
                };
                upstream.latency_us.store(next, Ordering::Relaxed);
                upstream.latency_at_ms.store(now_ms, Ordering::Relaxed);
                (false, None)
            }
            Outcome::NotImplemented(route) => {
                let mut lacks = upstream.lacks();
                lacks.insert(*route);
                upstream.lacks.store(lacks.bits(), Ordering::Relaxed);
                (false, None)
            }
            Outcome::Failed(reason) => {
                upstream.failures.fetch_add(1, Ordering::Relaxed);
                (true, Some(reason.as_str()))
            }
        };
        let trip = lock(&upstream.outlier).record(failed, now_ms, &self.rules);
        if let (Some(trip), Some(reason)) = (trip, reason) {
            self.eject(upstream, &trip, reason, now_ms);
        }
    }

    fn eject(&self, upstream: &Upstream, trip: &crate::outlier::Trip, reason: &str, now_ms: u64) {
        let view = self.view();
        let ejected = lock(&self.upstreams)
            .values()
            .filter(|u| u.ejected(now_ms))
            .count();
        let total = view.healthy.len().max(ejected);
        if upstream.ejected(now_ms) || !self.rules.may_eject(ejected, total) {
            tracing::debug!(server_key = %upstream.key, ejected, total, "not ejecting: at the cap");
            return;
        }
        let length = lock(&upstream.outlier).eject(now_ms, &self.rules);
        upstream.ejected_until_ms.store(
            now_ms + u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let evidence = json!({
            "consecutive_failures": trip.consecutive,
            "window_requests": trip.window.0,
            "window_failures": trip.window.1,
            "last_error": reason,
            "ejected_for_secs": length.as_secs_f64().ceil() as u64,
        });
        if let Err(e) = self.incidents.record(
            &self.coin,
            upstream.key,
            EJECTION_CHECK,
            evidence,
            Consequence::Ejection,
        ) {
            tracing::warn!(error = %e, "recording an ejection failed");
        }
        if let Err(e) = self.rebuild() {
            tracing::warn!(error = %e, "relay view rebuild failed");
        }
    }

    /// The operator's view of the relay for this coin.
    pub fn describe(&self) -> Result<PoolView, Error> {
        let view = self.view();
        let now_ms = self.clock.now_millis();
        let servers = self.directory.admin_servers(&self.coin)?.servers;
        let agreed = match view.agreement() {
            Agreement::Agreed { tip } => Some(*tip),
            _ => None,
        };
        let upstreams = lock(&self.upstreams).clone();
        let described = servers
            .iter()
            .map(|server| {
                let key = server.record.server_key;
                let upstream = upstreams.get(&key);
                let candidate = view.healthy.get(&key);
                let ejected_until = upstream
                    .map(|u| u.ejected_until_ms.load(Ordering::Relaxed))
                    .filter(|&until| until > now_ms);
                UpstreamView {
                    server_key: key,
                    status: server.status,
                    healthy: candidate.is_some() && ejected_until.is_none(),
                    unhealthy_reason: view.listed.get(&key).cloned(),
                    on_agreed_tip: candidate.is_some_and(|c| c.synced && Some(c.tip) == agreed),
                    tip: candidate.map(|c| c.tip),
                    probe: upstream.map(|u| u.probe().clone()).unwrap_or_default(),
                    latency_us: upstream.map_or(0, |u| u.latency_us.load(Ordering::Relaxed)),
                    in_flight: upstream.map_or(0, |u| u.in_flight.load(Ordering::Relaxed)),
                    requests: upstream.map_or(0, |u| u.requests.load(Ordering::Relaxed)),
                    failures: upstream.map_or(0, |u| u.failures.load(Ordering::Relaxed)),
                    ejected_until_ms: ejected_until,
                    lacks: upstream.map(|u| u.lacks().names()).unwrap_or_default(),
                }
            })
            .collect();
        Ok(PoolView {
            coin: self.coin.clone(),
            agreement: view.agreement().clone(),
            servers: described,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip(height: u64, byte: u8) -> Tip {
        Tip {
            height,
            hash: Hash256([byte; 32]),
        }
    }

    fn no_ancestry(_: &Tip, _: &Tip) -> Option<bool> {
        None
    }

    #[test]
    fn the_tip_most_servers_report_is_agreed() {
        let a = tip(10, 1);
        let far = tip(500, 9);
        let vote = vote(&[a, a, far], None, no_ancestry);
        assert_eq!(vote.agreement, Agreement::Agreed { tip: a });
        assert!(vote.unresolved.is_empty());
        assert_eq!(
            super::vote(&[], None, no_ancestry).agreement,
            Agreement::NoServers
        );
    }

    #[test]
    fn a_tie_between_forks_has_no_agreed_tip() {
        let (a, b) = (tip(10, 1), tip(10, 2));
        match vote(&[a, b], Some(a), no_ancestry).agreement {
            Agreement::Split { tips } => assert_eq!(tips.len(), 2),
            other => panic!("{other:?}"),
        }
        // Different heights, known not to be one chain: a fork too.
        let c = tip(11, 3);
        let split = vote(&[a, c], None, |_, _| Some(false));
        assert!(matches!(split.agreement, Agreement::Split { .. }));
    }

    #[test]
    fn servers_a_block_apart_on_a_new_branch_outvote_one_on_the_old() {
        let (old, new_first, new_second) = (tip(105, 1), tip(105, 2), tip(106, 3));
        let known = |l: &Tip, h: &Tip| Some(*l == new_first && *h == new_second);
        let vote = vote(&[old, new_first, new_second], Some(old), known);
        assert_eq!(vote.agreement, Agreement::Agreed { tip: new_first });
        // While that is not known, the previous agreement holds and the prober asks.
        let pending = super::vote(&[old, new_first, new_second], Some(old), no_ancestry);
        assert_eq!(pending.agreement, Agreement::Agreed { tip: old });
        assert_eq!(pending.unresolved.len(), 2);
    }

    #[test]
    fn a_tie_along_one_chain_agrees_on_the_lower_tip() {
        let (low, high) = (tip(10, 1), tip(11, 2));
        let known = vote(&[low, high], None, |l, h| Some(*l == low && *h == high));
        assert_eq!(known.agreement, Agreement::Agreed { tip: low });
        // Unknown ancestry: the previous agreed tip holds while the prober asks.
        let pending = vote(&[low, high], Some(low), no_ancestry);
        assert_eq!(pending.agreement, Agreement::Agreed { tip: low });
        assert_eq!(pending.unresolved, vec![(low, high)]);
        let unknown = vote(&[low, high], Some(tip(9, 0)), no_ancestry);
        assert!(matches!(unknown.agreement, Agreement::Split { .. }));
    }

    fn candidate(seed: u8, routes: Routes) -> Candidate {
        let key = rot_proto::Identity::from_seed([seed; 32]).public_key();
        Candidate {
            upstream: Arc::new(Upstream::new(key)),
            base: Arc::from("http://127.0.0.1:1"),
            target: Target::of("http://127.0.0.1:1"),
            tip: tip(10, 1),
            tip_header: HeaderValue::from_static("10:x"),
            synced: true,
            routes,
        }
    }

    #[test]
    fn picks_prefer_the_faster_less_busy_server_and_respect_routes() {
        let all = Routes::offered(&["spent-by".to_owned()]);
        let (fast, slow) = (candidate(1, all), candidate(2, all));
        let now = 1_000_000;
        fast.upstream.latency_us.store(100, Ordering::Relaxed);
        slow.upstream.latency_us.store(5_000, Ordering::Relaxed);
        for u in [&fast.upstream, &slow.upstream] {
            u.latency_at_ms.store(now, Ordering::Relaxed);
        }
        let view = View {
            on_tip: vec![fast.clone(), slow.clone()],
            ..View::default()
        };
        let picked = |view: &View, avoid: &[PublicKey]| {
            view.pick(Route::Read, avoid, now).map(|c| c.upstream.key)
        };
        assert_eq!(picked(&view, &[]), Some(fast.upstream.key));
        // Requests in flight make the fast one costlier than the slow one.
        let busy: Vec<InFlight> = (0..60).map(|_| fast.upstream.start()).collect();
        assert_eq!(picked(&view, &[]), Some(slow.upstream.key));
        drop(busy);
        // A retry avoids the first server; an ejected server is skipped.
        assert_eq!(picked(&view, &[fast.upstream.key]), Some(slow.upstream.key));
        slow.upstream
            .ejected_until_ms
            .store(now + 1, Ordering::Relaxed);
        assert_eq!(picked(&view, &[fast.upstream.key]), None);
        // A server that cannot answer a route is not sent it, advertised or learnt.
        let electrum = candidate(3, Routes::offered(&[]));
        let view = View {
            on_tip: vec![electrum.clone(), fast.clone()],
            ..View::default()
        };
        for _ in 0..20 {
            let chosen = view.pick(Route::SpentBy, &[], now).unwrap();
            assert_eq!(chosen.upstream.key, fast.upstream.key);
        }
        let mut lacks = fast.upstream.lacks();
        lacks.insert(Route::BlockTxids);
        fast.upstream.lacks.store(lacks.bits(), Ordering::Relaxed);
        for _ in 0..20 {
            let chosen = view.pick(Route::BlockTxids, &[], now).unwrap();
            assert_eq!(chosen.upstream.key, electrum.upstream.key);
        }
    }

    #[test]
    fn a_stale_latency_fades_so_the_server_is_tried_again() {
        let c = candidate(1, Routes::offered(&[]));
        c.upstream.latency_us.store(4_000, Ordering::Relaxed);
        c.upstream.latency_at_ms.store(0, Ordering::Relaxed);
        assert_eq!(c.upstream.cost(0), 4_000);
        assert_eq!(c.upstream.cost(LATENCY_FADE_MS), 2_000);
    }

    #[test]
    fn pins_tell_unknown_from_unavailable() {
        let healthy = candidate(1, Routes::offered(&[]));
        let excluded = rot_proto::Identity::from_seed([2; 32]).public_key();
        let view = View {
            healthy: [(healthy.upstream.key, healthy.clone())]
                .into_iter()
                .collect(),
            listed: [(excluded, "excluded".to_owned())].into_iter().collect(),
            ..View::default()
        };
        assert!(view.pinned(&healthy.upstream.key, 0).is_ok());
        assert_eq!(
            view.pinned(&excluded, 0).unwrap_err(),
            PinRefusal::Unavailable("excluded".into())
        );
        let stranger = rot_proto::Identity::from_seed([3; 32]).public_key();
        assert_eq!(view.pinned(&stranger, 0).unwrap_err(), PinRefusal::Unknown);
    }

    #[test]
    fn random_picks_stay_in_range_and_spread() {
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[random_below(5)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }
}
