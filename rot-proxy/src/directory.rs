//! The directory: every server the proxy knows, per coin, with the rules that decide which
//! heartbeats are accepted and which servers wallets are told about.
//!
//! The whole directory lives in memory (a few hundred bytes per server) behind one lock and is
//! written through to the [`Store`] before any heartbeat is acknowledged, so a restart keeps
//! every server, its state and its last sequence number. Wallet answers are served from a
//! [`Snapshot`] rebuilt when the directory changes shape (a server admitted, stale, banned,
//! forgotten) and at most every [`ANSWER_MAX_AGE_MS`] otherwise, so a large directory answers
//! in the time it takes to copy bytes.
//!
//! A server's life: its first heartbeat (or one with a new URL) needs an admission (the
//! challenge, see `admission.rs`); once admitted it stays listed while heartbeats keep coming,
//! turns `stale` after `stale_after` without one (left out of answers, not forgotten), and is
//! listed again on its next heartbeat. A ban overrides everything until lifted.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
pub use rot_proto::message::CoinSummary;
use rot_proto::message::{BackendKind, DirectoryEntry, Heartbeat, HeartbeatAck, ServerStatus};
use rot_proto::signed::Signed;
use rot_proto::{Hash256, PublicKey};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::admission::Admitted;
use crate::clock::Clock;
use crate::coin::CoinProfile;
use crate::policy::Standing;
use crate::store::Store;

/// Wallet answers are rebuilt at least this often (their ages are in whole seconds anyway).
pub const ANSWER_MAX_AGE_MS: u64 = 1000;
/// An answer up to this old is still served while a fresh one is built in the background.
const ANSWER_SERVE_STALE_MS: u64 = 3000;
/// Longest server URL accepted.
const MAX_URL_LEN: usize = 256;
/// Longest ban reason kept.
const MAX_BAN_REASON_LEN: usize = 500;
/// Weight of a new latency sample in the moving average, in quarters.
const LATENCY_SAMPLE_QUARTERS: u64 = 1;

/// One server as the proxy keeps it: identity, where it is, what it last said, and the
/// runtime measurements later checks and the relay build on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The server's identity.
    pub server_key: PublicKey,
    /// Id of the coin it serves (`ltc`, `ltc-regtest`).
    pub coin: String,
    /// Its base URL, proven by the challenge; `None` once another key took the URL over.
    pub url: Option<String>,
    /// The IP address the admission callback reached.
    pub addr: Option<IpAddr>,
    /// `admitted` or `stale` (a ban is kept apart, so lifting it restores this).
    pub status: ServerStatus,
    /// Highest heartbeat sequence number accepted.
    pub last_seq: u64,
    /// Signed timestamp of that heartbeat (unix seconds).
    pub last_timestamp: u64,
    /// When the proxy accepted it (proxy clock, unix milliseconds).
    pub last_heartbeat_ms: u64,
    /// Best block height, as last heard.
    pub height: u64,
    /// Best block hash, as last heard.
    pub tip_hash: Hash256,
    /// Implementation and version the server reports.
    pub software: String,
    /// Where the server's index comes from.
    pub backend: BackendKind,
    /// Optional features the server offers.
    pub capabilities: Vec<String>,
    /// When it was (last) admitted (unix seconds).
    pub admitted_at: u64,
    /// Moving average of measured round-trip times in milliseconds.
    pub latency_ms: Option<u64>,
    /// Warnings received (checks come with the relay).
    pub warnings: u64,
    /// Times excluded (checks come with the relay).
    pub exclusions: u64,
    /// Heartbeats accepted.
    pub heartbeats: u64,
    /// Where the server stands under the sanction rules (`policy.rs`).
    #[serde(default)]
    pub standing: Standing,
    /// Whether its last heartbeat said its index follows its node at the tip (records
    /// stored before this was kept say so).
    #[serde(default = "synced_by_default")]
    pub synced: bool,
}

fn synced_by_default() -> bool {
    true
}

impl ServerRecord {
    /// Folds a round-trip measurement into the moving average.
    pub fn observe_latency(&mut self, sample_ms: u64) {
        self.latency_ms = Some(match self.latency_ms {
            None => sample_ms,
            Some(average) => {
                (average * (4 - LATENCY_SAMPLE_QUARTERS) + sample_ms * LATENCY_SAMPLE_QUARTERS) / 4
            }
        });
    }

    /// Takes what a heartbeat says about the server.
    fn take_heartbeat(&mut self, beat: &Heartbeat, now_ms: u64) {
        self.last_seq = beat.seq;
        self.last_timestamp = beat.timestamp;
        self.last_heartbeat_ms = now_ms;
        self.height = beat.height;
        self.tip_hash = beat.tip_hash;
        self.software.clone_from(&beat.software);
        self.backend = beat.backend;
        self.capabilities.clone_from(&beat.capabilities);
        self.synced = beat.synced;
        self.heartbeats += 1;
    }

    fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_heartbeat_ms) / 1000
    }

    /// The record as wallets see it, with its heartbeat age left at 0 (filled in when the
    /// answer is assembled, so unchanged entries need not be serialized again).
    fn entry(&self, status: ServerStatus, publish_url: bool) -> DirectoryEntry {
        DirectoryEntry {
            server_key: self.server_key,
            status,
            height: self.height,
            tip_hash: self.tip_hash,
            last_heartbeat_age_secs: 0,
            latency_ms: self.latency_ms,
            software: self.software.clone(),
            backend: self.backend,
            warnings: self.warnings,
            exclusions: self.exclusions,
            url: self.url.clone().filter(|_| publish_url),
        }
    }
}

/// An operator's ban of a key, with the reason kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned key.
    pub server_key: PublicKey,
    /// Why, as the operator wrote it; banned servers are told.
    pub reason: String,
    /// When (unix seconds).
    pub since: u64,
}

/// The rules the directory enforces, from configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Largest clock skew of a signed timestamp, in seconds.
    pub max_skew_secs: u64,
    /// Time without a heartbeat after which a server is stale.
    pub stale_after: Duration,
    /// Most servers (not banned) per coin.
    pub max_servers_per_coin: usize,
    /// Most servers (not banned) of one coin at one IP address.
    pub max_servers_per_addr: usize,
    /// Whether wallet answers include server URLs.
    pub publish_urls: bool,
    /// Whether a newly admitted server must pass the conformance suite before wallets are
    /// sent to it (off only when the proxy runs no checks).
    pub require_suite: bool,
}

/// A heartbeat whose signature, coin and URL checked out, ready for the directory's rules.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The signing key.
    pub key: PublicKey,
    /// The verified heartbeat.
    pub beat: Heartbeat,
    /// The id of the coin it is for.
    pub coin: String,
    /// Its URL, normalised.
    pub url: String,
}

/// What the directory made of a heartbeat.
#[derive(Debug)]
pub enum Accepted<'a> {
    /// Accepted and stored.
    Ack(HeartbeatAck),
    /// The key is new or its URL changed: the URL must be proven by an admission first.
    NeedsAdmission(AdmissionTicket<'a>),
}

/// The right to run the one admission of a key; while held, other heartbeats of the key are
/// told to retry, and the operator view lists the key as pending.
#[derive(Debug)]
pub struct AdmissionTicket<'a> {
    directory: &'a Directory,
    key: PublicKey,
}

impl Drop for AdmissionTicket<'_> {
    fn drop(&mut self) {
        self.directory.lock().admitting.remove(&self.key);
    }
}

/// An admission under way, as the operator view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAdmission {
    /// The key being admitted.
    pub server_key: PublicKey,
    /// The coin id.
    pub coin: String,
    /// The URL being called back.
    pub url: String,
    /// When it started (unix milliseconds).
    pub started_ms: u64,
}

/// The body of `GET /v1/coins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoinsAnswer {
    /// Every coin served.
    pub coins: Vec<CoinSummary>,
}

/// The body of `GET /v1/coins/{coin}/servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServersAnswer {
    /// The coin id.
    pub coin: String,
    /// Its healthy servers, ordered by key.
    pub servers: Vec<DirectoryEntry>,
}

/// A server as the operator view shows it: everything the proxy knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminServer {
    /// The status wallets would see (`banned` and `stale` applied).
    pub status: ServerStatus,
    /// Seconds since the last accepted heartbeat.
    pub last_heartbeat_age_secs: u64,
    /// The ban, if the key is banned.
    pub ban: Option<Ban>,
    /// The stored record.
    pub record: ServerRecord,
}

/// The body of `GET /v1/admin/coins/{coin}/servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminServers {
    /// The coin id.
    pub coin: String,
    /// Every stored server of the coin, ordered by key.
    pub servers: Vec<AdminServer>,
    /// Admissions under way.
    pub pending: Vec<PendingAdmission>,
}

/// How many servers of a coin are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Listed to wallets.
    pub admitted: u64,
    /// Heartbeats stopped.
    pub stale: u64,
    /// Banned by the operator.
    pub banned: u64,
    /// Admission under way.
    pub pending: u64,
    /// Listed, a check failed recently.
    #[serde(default)]
    pub warned: u64,
    /// Listed, excluded for a while.
    #[serde(default)]
    pub excluded: u64,
    /// Listed, the conformance suite has not passed yet.
    #[serde(default)]
    pub checking: u64,
}

/// A listed server's directory entry, serialized with age 0 and split around the age's
/// digits, with its current age and the rebuild that last saw it listed.
#[derive(Debug)]
struct CachedEntry {
    entry: DirectoryEntry,
    head: Vec<u8>,
    tail: Vec<u8>,
    age_secs: u64,
    seen: u64,
}

impl CachedEntry {
    fn new(entry: DirectoryEntry, age_secs: u64, seen: u64) -> Result<Self, Error> {
        const AGE: &[u8] = b"\"last_heartbeat_age_secs\":0";
        let json = serde_json::to_vec(&entry).map_err(|e| Error::Corrupt(e.to_string()))?;
        // The fields before the age are keys, hashes, numbers and an enum: no free text
        // that could contain the pattern.
        let at = json
            .windows(AGE.len())
            .position(|w| w == AGE)
            .ok_or_else(|| Error::Corrupt("directory entry without its age field".into()))?
            + AGE.len()
            - 1;
        Ok(Self {
            entry,
            head: json[..at].to_vec(),
            tail: json[at + 1..].to_vec(),
            age_secs,
            seen,
        })
    }

    /// Appends the entry's JSON with its current age to `out`.
    fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.extend_from_slice(&self.head);
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{}", self.age_secs);
        out.extend_from_slice(&self.tail);
    }
}

/// The listed servers of each coin in key order, serialized, kept across rebuilds: with
/// heartbeats every 30 s most entries are unchanged from one rebuild to the next and are
/// only copied into the new answer.
#[derive(Debug, Default)]
struct EntryCache {
    coins: HashMap<String, BTreeMap<PublicKey, CachedEntry>>,
    rebuilds: u64,
}

/// Pre-serialized wallet answers.
#[derive(Debug)]
struct Snapshot {
    generation: u64,
    built_ms: u64,
    coins: Bytes,
    servers: HashMap<String, Bytes>,
}

#[derive(Debug, Default)]
struct Inner {
    servers: HashMap<PublicKey, ServerRecord>,
    /// URL → the key holding it.
    urls: HashMap<String, PublicKey>,
    bans: HashMap<PublicKey, Ban>,
    admitting: HashMap<PublicKey, PendingAdmission>,
    /// Servers that are not banned, per coin: what the coin cap counts.
    per_coin: HashMap<String, usize>,
    /// Servers that are not banned, per coin and address: what the address cap counts.
    per_addr: HashMap<(String, IpAddr), usize>,
}

impl Inner {
    /// Adds (`up`) or removes a record's place in the cap tallies, if it takes one.
    fn tally(&mut self, record: &ServerRecord, up: bool) {
        if self.bans.contains_key(&record.server_key) {
            return;
        }
        let adjust = |count: &mut usize| {
            *count = if up {
                *count + 1
            } else {
                count.saturating_sub(1)
            }
        };
        adjust(self.per_coin.entry(record.coin.clone()).or_default());
        if let Some(addr) = record.addr {
            adjust(
                self.per_addr
                    .entry((record.coin.clone(), addr))
                    .or_default(),
            );
        }
    }

    /// Stores `record` in memory (replacing the key's previous one), keeping the tallies.
    fn put(&mut self, record: ServerRecord) {
        if let Some(previous) = self.servers.remove(&record.server_key) {
            self.tally(&previous, false);
        }
        self.tally(&record, true);
        self.servers.insert(record.server_key, record);
    }

    /// Replaces a record whose coin and address did not change (tallies stay as they are).
    fn put_same_place(&mut self, record: ServerRecord) {
        self.servers.insert(record.server_key, record);
    }

    /// Removes a record from memory, keeping the tallies.
    fn remove(&mut self, key: &PublicKey) -> Option<ServerRecord> {
        let record = self.servers.remove(key)?;
        self.tally(&record, false);
        Some(record)
    }

    /// How many servers other than `key` take a place of the coin (and of `addr`, if given).
    fn others(&self, key: &PublicKey, coin: &str, addr: Option<IpAddr>) -> usize {
        let own = self
            .servers
            .get(key)
            .filter(|r| r.coin == coin && !self.bans.contains_key(key));
        match addr {
            None => {
                let count = self.per_coin.get(coin).copied().unwrap_or(0);
                count.saturating_sub(usize::from(own.is_some()))
            }
            Some(addr) => {
                let count = self
                    .per_addr
                    .get(&(coin.to_owned(), addr))
                    .copied()
                    .unwrap_or(0);
                count.saturating_sub(usize::from(own.is_some_and(|r| r.addr == Some(addr))))
            }
        }
    }
}

/// The directory of every coin served. Shared as `Arc<Directory>`.
#[derive(Debug)]
pub struct Directory {
    coins: BTreeMap<String, CoinProfile>,
    policy: Policy,
    clock: Clock,
    store: Store,
    inner: Mutex<Inner>,
    /// Bumped (under `inner`'s lock) whenever the set of listed servers may have changed.
    generation: AtomicU64,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// Held while rebuilding, with the entries of the last rebuild.
    rebuild: Mutex<EntryCache>,
    rebuilding: AtomicBool,
}

impl Directory {
    /// The directory over `store` for `coins`, loading every stored server and ban.
    pub fn open(
        store: Store,
        coins: Vec<CoinProfile>,
        policy: Policy,
        clock: Clock,
    ) -> Result<Self, Error> {
        let mut inner = Inner::default();
        for ban in store.bans()? {
            inner.bans.insert(ban.server_key, ban);
        }
        for record in store.servers()? {
            if let Some(url) = &record.url {
                inner.urls.insert(url.clone(), record.server_key);
            }
            inner.put(record);
        }
        Ok(Self {
            coins: coins.into_iter().map(|p| (p.id(), p)).collect(),
            policy,
            clock,
            store,
            inner: Mutex::new(inner),
            generation: AtomicU64::new(0),
            snapshot: RwLock::new(None),
            rebuild: Mutex::new(EntryCache::default()),
            rebuilding: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The clock the directory's rules run on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The profile of a served coin by id.
    pub fn coin(&self, id: &str) -> Option<&CoinProfile> {
        self.coins.get(id)
    }

    /// The ids of the coins served.
    pub fn coin_ids(&self) -> impl Iterator<Item = &str> {
        self.coins.keys().map(String::as_str)
    }

    /// The checks that need no directory state: signature, coin, genesis, URL form.
    pub fn check(&self, signed: &Signed<Heartbeat>) -> Result<Checked, Error> {
        let beat = signed.verify()?;
        let key = signed.signer()?;
        let profile = self
            .coins
            .values()
            .find(|p| p.ticker.eq_ignore_ascii_case(&beat.coin) && p.network == beat.network)
            .ok_or_else(|| Error::CoinNotServed {
                coin: beat.coin.clone(),
                network: beat.network,
                served: self.coins.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        if beat.genesis_hash != profile.genesis_hash {
            return Err(Error::GenesisMismatch {
                coin: profile.id(),
                expected: profile.genesis_hash,
                got: beat.genesis_hash,
            });
        }
        let url = normalize_url(&beat.url)?;
        Ok(Checked {
            key,
            coin: profile.id(),
            url,
            beat,
        })
    }

    /// Applies the directory's rules to a checked heartbeat: a known key at its known URL is
    /// stored and acknowledged at once; a new key or a new URL gets an admission ticket
    /// (after the URL, cap and freshness checks that can be made before calling it back).
    pub fn accept(&self, checked: &Checked) -> Result<Accepted<'_>, Error> {
        let now_ms = self.clock.now_millis();
        let mut inner = self.lock();
        refuse_banned(&inner, &checked.key)?;
        let known = inner.servers.get(&checked.key);
        checked.beat.check_fresh(
            known.map(|r| r.last_seq),
            now_ms / 1000,
            self.policy.max_skew_secs,
        )?;
        if let Some(record) = known {
            if record.coin != checked.coin {
                return Err(Error::CoinChanged {
                    key: checked.key,
                    registered: record.coin.clone(),
                    coin: checked.coin.clone(),
                });
            }
            if record.url.as_deref() == Some(checked.url.as_str()) {
                // Overdue but not yet marked stale counts as resuming too: answers left it out.
                let resumed = self.status_of(&inner, record, now_ms) != ServerStatus::Admitted;
                let mut verdict = (ServerStatus::Admitted, None);
                if let Some(record) = inner.servers.get_mut(&checked.key) {
                    // Updated in place (coin and address unchanged, so the cap tallies stay);
                    // if the write fails, memory is ahead of the disk, which only refuses more.
                    record.take_heartbeat(&checked.beat, now_ms);
                    record.status = ServerStatus::Admitted;
                    self.store.put_server(record)?;
                    verdict = record.standing.verdict(now_ms);
                }
                if resumed {
                    tracing::info!(server_key = %checked.key, coin = %checked.coin, "server resumed heartbeats");
                    self.changed();
                }
                return Ok(Accepted::Ack(HeartbeatAck {
                    status: verdict.0,
                    reason: verdict.1,
                    seq: checked.beat.seq,
                }));
            }
        }
        self.check_room(&inner, checked, now_ms, None)?;
        if inner.admitting.contains_key(&checked.key) {
            return Err(Error::AdmissionInProgress(checked.key));
        }
        inner.admitting.insert(
            checked.key,
            PendingAdmission {
                server_key: checked.key,
                coin: checked.coin.clone(),
                url: checked.url.clone(),
                started_ms: now_ms,
            },
        );
        Ok(Accepted::NeedsAdmission(AdmissionTicket {
            directory: self,
            key: checked.key,
        }))
    }

    /// Lists a server whose admission passed, re-checking what may have changed while the
    /// callback ran, and acknowledges its heartbeat.
    pub fn admit(
        &self,
        ticket: AdmissionTicket<'_>,
        checked: &Checked,
        admitted: &Admitted,
    ) -> Result<HeartbeatAck, Error> {
        let now_ms = self.clock.now_millis();
        let mut inner = self.lock();
        refuse_banned(&inner, &checked.key)?;
        let known = inner.servers.get(&checked.key).cloned();
        checked.beat.check_fresh(
            known.as_ref().map(|r| r.last_seq),
            now_ms / 1000,
            self.policy.max_skew_secs,
        )?;
        self.check_room(&inner, checked, now_ms, Some(admitted.addr))?;
        let mut record = known.unwrap_or_else(|| ServerRecord {
            server_key: checked.key,
            coin: checked.coin.clone(),
            url: None,
            addr: None,
            status: ServerStatus::Admitted,
            last_seq: 0,
            last_timestamp: 0,
            last_heartbeat_ms: 0,
            height: 0,
            tip_hash: Hash256::default(),
            software: String::new(),
            backend: checked.beat.backend,
            capabilities: Vec::new(),
            admitted_at: 0,
            latency_ms: None,
            warnings: 0,
            exclusions: 0,
            heartbeats: 0,
            standing: Standing::default(),
            synced: true,
        });
        // A stale holder of the URL loses it: the challenge just proved the URL is ours.
        if let Some(holder) = inner.urls.get(&checked.url).copied()
            && holder != checked.key
            && let Some(mut previous) = inner.servers.get(&holder).cloned()
        {
            tracing::info!(url = %checked.url, old_key = %holder, new_key = %checked.key, "URL taken over from a stale server");
            previous.url = None;
            self.store.put_server(&previous)?;
            inner.put_same_place(previous);
        }
        if let Some(old_url) = record.url.take() {
            inner.urls.remove(&old_url);
        }
        record.take_heartbeat(&checked.beat, now_ms);
        record.url = Some(checked.url.clone());
        record.addr = Some(admitted.addr);
        record.status = ServerStatus::Admitted;
        record.admitted_at = now_ms / 1000;
        record.observe_latency(admitted.latency_ms);
        // A new server, or one at a new URL, proves itself before wallets are sent to it.
        if self.policy.require_suite {
            record.standing.require_suite();
        } else {
            record.standing.cleared_ms.get_or_insert(now_ms);
        }
        self.store.put_server(&record)?;
        inner.urls.insert(checked.url.clone(), checked.key);
        inner.put(record);
        self.changed();
        drop(inner);
        drop(ticket);
        tracing::info!(server_key = %checked.key, coin = %checked.coin, url = %checked.url, addr = %admitted.addr, "server admitted");
        Ok(HeartbeatAck {
            status: ServerStatus::Admitted,
            reason: None,
            seq: checked.beat.seq,
        })
    }

    /// Refuses a registration that would take a live or banned server's URL, or exceed the
    /// coin's cap or (once the address is known) the per-address cap.
    fn check_room(
        &self,
        inner: &Inner,
        checked: &Checked,
        now_ms: u64,
        addr: Option<IpAddr>,
    ) -> Result<(), Error> {
        if let Some(&holder) = inner.urls.get(&checked.url)
            && holder != checked.key
        {
            let holder_live = inner.bans.contains_key(&holder)
                || inner
                    .servers
                    .get(&holder)
                    .is_some_and(|r| self.status_of(inner, r, now_ms) == ServerStatus::Admitted);
            if holder_live {
                return Err(Error::UrlTaken {
                    url: checked.url.clone(),
                    holder,
                });
            }
        }
        if !inner.servers.contains_key(&checked.key)
            && inner.others(&checked.key, &checked.coin, None) >= self.policy.max_servers_per_coin
        {
            return Err(Error::CoinFull {
                coin: checked.coin.clone(),
                cap: self.policy.max_servers_per_coin,
            });
        }
        if let Some(addr) = addr
            && inner.others(&checked.key, &checked.coin, Some(addr))
                >= self.policy.max_servers_per_addr
        {
            return Err(Error::AddressFull {
                coin: checked.coin.clone(),
                addr,
                cap: self.policy.max_servers_per_addr,
            });
        }
        Ok(())
    }

    /// The status wallets see: a ban wins, then staleness by age.
    fn status_of(&self, inner: &Inner, record: &ServerRecord, now_ms: u64) -> ServerStatus {
        if inner.bans.contains_key(&record.server_key) {
            ServerStatus::Banned
        } else if record.status == ServerStatus::Admitted && self.is_overdue(record, now_ms) {
            ServerStatus::Stale
        } else {
            record.status
        }
    }

    /// The status wallets and the operator see: [`Directory::status_of`], and for a listed
    /// server its standing under the sanction rules (pending, warned, excluded).
    fn listed_status(&self, inner: &Inner, record: &ServerRecord, now_ms: u64) -> ServerStatus {
        match self.status_of(inner, record, now_ms) {
            ServerStatus::Admitted => record.standing.status(now_ms),
            other => other,
        }
    }

    fn is_overdue(&self, record: &ServerRecord, now_ms: u64) -> bool {
        let limit = u64::try_from(self.policy.stale_after.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(record.last_heartbeat_ms) > limit
    }

    /// Stores `stale` for every admitted server whose heartbeats stopped; returns how many.
    /// (Answers leave such servers out as soon as they are overdue; this makes it durable
    /// and visible in the records.)
    pub fn mark_stale(&self) -> Result<usize, Error> {
        let now_ms = self.clock.now_millis();
        let mut inner = self.lock();
        let overdue: Vec<PublicKey> = inner
            .servers
            .values()
            .filter(|r| r.status == ServerStatus::Admitted && self.is_overdue(r, now_ms))
            .map(|r| r.server_key)
            .collect();
        for key in &overdue {
            if let Some(record) = inner.servers.get_mut(key) {
                record.status = ServerStatus::Stale;
                self.store.put_server(record)?;
                tracing::info!(server_key = %key, coin = %record.coin, "server stale: heartbeats stopped");
            }
        }
        if !overdue.is_empty() {
            self.changed();
        }
        Ok(overdue.len())
    }

    /// Bans `key` (known or not) with `reason`.
    pub fn ban(&self, key: PublicKey, reason: &str) -> Result<Ban, Error> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_BAN_REASON_LEN {
            return Err(Error::BadRequest(format!(
                "a ban needs a reason of 1 to {MAX_BAN_REASON_LEN} bytes"
            )));
        }
        let ban = Ban {
            server_key: key,
            reason: reason.to_owned(),
            since: self.clock.now_secs(),
        };
        let mut inner = self.lock();
        self.store.put_ban(&ban)?;
        if !inner.bans.contains_key(&key)
            && let Some(record) = inner.servers.get(&key).cloned()
        {
            inner.tally(&record, false);
        }
        inner.bans.insert(key, ban.clone());
        self.changed();
        tracing::warn!(server_key = %key, reason = %ban.reason, "server key banned");
        Ok(ban)
    }

    /// Lifts the ban of `key`, returning it.
    pub fn unban(&self, key: &PublicKey) -> Result<Ban, Error> {
        let mut inner = self.lock();
        let ban = inner
            .bans
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("server key {key} is not banned")))?;
        self.store.remove_ban(key)?;
        inner.bans.remove(key);
        if let Some(record) = inner.servers.get(key).cloned() {
            inner.tally(&record, true);
        }
        self.changed();
        tracing::warn!(server_key = %key, "server key unbanned");
        Ok(ban)
    }

    /// Every ban, ordered by key.
    pub fn bans(&self) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self.lock().bans.values().cloned().collect();
        bans.sort_by_key(|b| b.server_key);
        bans
    }

    /// Forgets a server entirely (its next heartbeat starts a new admission).
    pub fn forget(&self, key: &PublicKey) -> Result<ServerRecord, Error> {
        let mut inner = self.lock();
        let record = inner
            .servers
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("no server with key {key}")))?;
        self.store.remove_server(key)?;
        inner.remove(key);
        if let Some(url) = &record.url {
            inner.urls.remove(url);
        }
        self.changed();
        tracing::warn!(server_key = %key, "server forgotten by the operator");
        Ok(record)
    }

    /// Everything known about one server.
    pub fn admin_server(&self, key: &PublicKey) -> Result<AdminServer, Error> {
        let now_ms = self.clock.now_millis();
        let inner = self.lock();
        inner
            .servers
            .get(key)
            .map(|r| self.admin_view(&inner, r, now_ms))
            .ok_or_else(|| Error::NotFound(format!("no server with key {key}")))
    }

    fn admin_view(&self, inner: &Inner, record: &ServerRecord, now_ms: u64) -> AdminServer {
        AdminServer {
            status: self.listed_status(inner, record, now_ms),
            last_heartbeat_age_secs: record.age_secs(now_ms),
            ban: inner.bans.get(&record.server_key).cloned(),
            record: record.clone(),
        }
    }

    /// Every server of a coin, with admissions under way.
    pub fn admin_servers(&self, coin: &str) -> Result<AdminServers, Error> {
        self.require_coin(coin)?;
        let now_ms = self.clock.now_millis();
        let inner = self.lock();
        let mut servers: Vec<AdminServer> = inner
            .servers
            .values()
            .filter(|r| r.coin == coin)
            .map(|r| self.admin_view(&inner, r, now_ms))
            .collect();
        servers.sort_by_key(|s| s.record.server_key);
        let pending = inner
            .admitting
            .values()
            .filter(|p| p.coin == coin)
            .cloned()
            .collect();
        Ok(AdminServers {
            coin: coin.to_owned(),
            servers,
            pending,
        })
    }

    /// How many servers of each coin are in each state.
    pub fn status_counts(&self) -> BTreeMap<String, StatusCounts> {
        let now_ms = self.clock.now_millis();
        let inner = self.lock();
        let mut counts: BTreeMap<String, StatusCounts> = self
            .coins
            .keys()
            .map(|id| (id.clone(), StatusCounts::default()))
            .collect();
        for record in inner.servers.values() {
            let Some(count) = counts.get_mut(&record.coin) else {
                continue;
            };
            match self.listed_status(&inner, record, now_ms) {
                ServerStatus::Banned => count.banned += 1,
                ServerStatus::Admitted => count.admitted += 1,
                ServerStatus::Warned => count.warned += 1,
                ServerStatus::Excluded => count.excluded += 1,
                ServerStatus::Pending => count.checking += 1,
                ServerStatus::Stale => count.stale += 1,
            }
        }
        for pending in inner.admitting.values() {
            if let Some(count) = counts.get_mut(&pending.coin) {
                count.pending += 1;
            }
        }
        counts
    }

    fn require_coin(&self, coin: &str) -> Result<&CoinProfile, Error> {
        self.coins.get(coin).ok_or_else(|| {
            Error::NotFound(format!(
                "coin {coin:?} is not served here (served: {})",
                self.coins.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The serialized body of `GET /v1/coins`.
    pub fn coins_answer(self: &Arc<Self>) -> Result<Bytes, Error> {
        Ok(self.snapshot()?.coins.clone())
    }

    /// The coins as `GET /v1/coins` shows them, decoded (for the proxy's own info and status
    /// page).
    pub fn coin_summaries(self: &Arc<Self>) -> Result<Vec<CoinSummary>, Error> {
        let answer: CoinsAnswer = serde_json::from_slice(&self.coins_answer()?)
            .map_err(|e| Error::Corrupt(format!("the coins answer: {e}")))?;
        Ok(answer.coins)
    }

    /// A coin's servers as `GET /v1/coins/{coin}/servers` shows them, decoded.
    pub fn listed_servers(self: &Arc<Self>, coin: &str) -> Result<Vec<DirectoryEntry>, Error> {
        let answer: ServersAnswer = serde_json::from_slice(&self.servers_answer(coin)?)
            .map_err(|e| Error::Corrupt(format!("the servers answer: {e}")))?;
        Ok(answer.servers)
    }

    /// The serialized body of `GET /v1/coins/{coin}/servers`.
    pub fn servers_answer(self: &Arc<Self>, coin: &str) -> Result<Bytes, Error> {
        self.require_coin(coin)?;
        self.snapshot()?
            .servers
            .get(coin)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("coin {coin:?} is not served here")))
    }

    /// A current enough snapshot: rebuilt now when the directory changed shape or the last
    /// one is too old; a slightly old one is served while a fresh one is built off-thread.
    fn snapshot(self: &Arc<Self>) -> Result<Arc<Snapshot>, Error> {
        let now_ms = self.clock.now_millis();
        let generation = self.generation.load(Ordering::SeqCst);
        let current = self
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(current) = current.filter(|s| s.generation == generation) {
            let age = now_ms.saturating_sub(current.built_ms);
            if age <= ANSWER_MAX_AGE_MS {
                return Ok(current);
            }
            if age <= ANSWER_SERVE_STALE_MS
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                if !self.rebuilding.swap(true, Ordering::SeqCst) {
                    let directory = Arc::clone(self);
                    runtime.spawn_blocking(move || {
                        if let Err(e) = directory.rebuild_snapshot() {
                            tracing::warn!(error = %e, "directory answer rebuild failed");
                        }
                        directory.rebuilding.store(false, Ordering::SeqCst);
                    });
                }
                return Ok(current);
            }
        }
        self.rebuild_snapshot()
    }

    /// Builds the wallet answers from the directory as it is now.
    fn rebuild_snapshot(&self) -> Result<Arc<Snapshot>, Error> {
        let mut cache = self.rebuild.lock().unwrap_or_else(PoisonError::into_inner);
        let now_ms = self.clock.now_millis();
        // A rebuild that finished while we waited may already be fresh enough.
        let existing = self
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(existing) = existing.filter(|s| {
            s.generation == self.generation.load(Ordering::SeqCst)
                && now_ms.saturating_sub(s.built_ms) <= ANSWER_MAX_AGE_MS
        }) {
            return Ok(existing);
        }
        let started = std::time::Instant::now();
        cache.rebuilds += 1;
        let stamp = cache.rebuilds;
        for id in self.coins.keys() {
            cache.coins.entry(id.clone()).or_default();
        }
        let generation = {
            let inner = self.lock();
            let generation = self.generation.load(Ordering::SeqCst);
            for record in inner.servers.values() {
                // Heartbeating and not banned: listed, with its standing.
                if self.status_of(&inner, record, now_ms) != ServerStatus::Admitted {
                    continue;
                }
                let status = self.listed_status(&inner, record, now_ms);
                let Some(listed) = cache.coins.get_mut(&record.coin) else {
                    continue;
                };
                let entry = record.entry(status, self.policy.publish_urls);
                let age_secs = record.age_secs(now_ms);
                match listed.get_mut(&record.server_key) {
                    Some(cached) if cached.entry == entry => {
                        cached.age_secs = age_secs;
                        cached.seen = stamp;
                    }
                    _ => {
                        listed.insert(record.server_key, CachedEntry::new(entry, age_secs, stamp)?);
                    }
                }
            }
            generation
        };
        let mut coins = Vec::with_capacity(self.coins.len());
        let mut servers = HashMap::with_capacity(self.coins.len());
        for (id, profile) in &self.coins {
            let listed = cache.coins.entry(id.clone()).or_default();
            listed.retain(|_, cached| cached.seen == stamp);
            let serving = listed
                .values()
                .map(|cached| &cached.entry)
                .filter(|e| is_serving(e.status));
            let tip = plurality_tip(serving.clone());
            coins.push(CoinSummary {
                id: id.clone(),
                ticker: profile.ticker.clone(),
                network: profile.network,
                genesis_hash: profile.genesis_hash,
                healthy_servers: serving.count() as u64,
                tip_height: tip.map(|(height, _)| height),
                tip_hash: tip.map(|(_, hash)| hash),
            });
            // The shape of `ServersAnswer`, assembled from the cached entries.
            let mut json = Vec::with_capacity(
                64 + listed
                    .values()
                    .map(|c| c.head.len() + c.tail.len() + 8)
                    .sum::<usize>(),
            );
            json.extend_from_slice(b"{\"coin\":");
            json.extend_from_slice(&to_json(id)?);
            json.extend_from_slice(b",\"servers\":[");
            for (i, cached) in listed.values().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                cached.write(&mut json);
            }
            json.extend_from_slice(b"]}");
            servers.insert(id.clone(), Bytes::from(json));
        }
        let snapshot = Arc::new(Snapshot {
            generation,
            built_ms: now_ms,
            coins: to_json(&CoinsAnswer { coins })?,
            servers,
        });
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(snapshot.clone());
        tracing::debug!(elapsed = ?started.elapsed(), "directory answers rebuilt");
        Ok(snapshot)
    }

    /// Writes everything to disk; called at shutdown.
    pub fn flush(&self) -> Result<(), Error> {
        self.store.flush()
    }

    /// Changes the record of `key` with `change` (given the record and the time), stores it
    /// and refreshes the wallet answers. `None` when the key is not known.
    pub fn update_record<R>(
        &self,
        key: &PublicKey,
        change: impl FnOnce(&mut ServerRecord, u64) -> R,
    ) -> Result<Option<R>, Error> {
        let now_ms = self.clock.now_millis();
        let mut inner = self.lock();
        let Some(record) = inner.servers.get_mut(key) else {
            return Ok(None);
        };
        let result = change(record, now_ms);
        self.store.put_server(record)?;
        self.changed();
        Ok(Some(result))
    }

    /// Folds a probe's round trip into the server's latency (kept in memory; stored with the
    /// next heartbeat).
    pub fn note_latency(&self, key: &PublicKey, sample_ms: u64) {
        if let Some(record) = self.lock().servers.get_mut(key) {
            record.observe_latency(sample_ms);
        }
    }
}

fn refuse_banned(inner: &Inner, key: &PublicKey) -> Result<(), Error> {
    match inner.bans.get(key) {
        Some(ban) => Err(Error::Banned {
            key: *key,
            reason: ban.reason.clone(),
        }),
        None => Ok(()),
    }
}

/// Whether wallets are sent to a server of this status.
fn is_serving(status: ServerStatus) -> bool {
    matches!(status, ServerStatus::Admitted | ServerStatus::Warned)
}

/// The tip reported by the most servers, the higher one on a tie: one server claiming a far
/// higher tip does not move it.
fn plurality_tip<'a>(entries: impl Iterator<Item = &'a DirectoryEntry>) -> Option<(u64, Hash256)> {
    let mut votes: HashMap<(u64, Hash256), usize> = HashMap::new();
    for entry in entries {
        *votes.entry((entry.height, entry.tip_hash)).or_default() += 1;
    }
    votes
        .into_iter()
        .max_by_key(|&((height, hash), count)| (count, height, hash))
        .map(|(tip, _)| tip)
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes, Error> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::Corrupt(e.to_string()))
}

/// The one spelling of a server URL the directory compares: `http(s)://host[:port][/path]`
/// with a lower-case host, no default port, no trailing slash; no credentials, query or
/// fragment.
pub fn normalize_url(text: &str) -> Result<String, Error> {
    let refuse = |reason: &str| Error::InvalidUrl {
        url: text.chars().take(MAX_URL_LEN).collect(),
        reason: reason.to_owned(),
    };
    if text.len() > MAX_URL_LEN {
        return Err(refuse(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    let url = reqwest::Url::parse(text).map_err(|e| refuse(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("credentials are not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("a query or fragment is not allowed"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Marks overdue servers stale every `every` until `shutdown`.
pub async fn run_stale_marking(
    directory: Arc<Directory>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {
                if let Err(e) = directory.mark_stale() {
                    tracing::warn!(error = %e, "marking stale servers failed");
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::coin::Coins;
    use rot_proto::{Identity, Network};

    const START: u64 = 1_800_000_000;

    /// A stored-looking record for key seed `seed`.
    pub(crate) fn record(seed: u8, coin: &str, url: &str) -> ServerRecord {
        ServerRecord {
            server_key: Identity::from_seed([seed; 32]).public_key(),
            coin: coin.to_owned(),
            url: Some(url.to_owned()),
            addr: Some(IpAddr::from([127, 0, 0, 1])),
            status: ServerStatus::Admitted,
            last_seq: 3,
            last_timestamp: START,
            last_heartbeat_ms: START * 1000,
            height: 10,
            tip_hash: Hash256([seed; 32]),
            software: "rot-server/0.1.0".into(),
            backend: BackendKind::Native,
            capabilities: vec!["esplora".into()],
            admitted_at: START,
            latency_ms: Some(8),
            warnings: 0,
            exclusions: 0,
            heartbeats: 3,
            standing: Standing::default(),
            synced: true,
        }
    }

    fn profile() -> CoinProfile {
        Coins::builtin()
            .get("LTC", Network::Regtest)
            .unwrap()
            .clone()
    }

    fn policy() -> Policy {
        Policy {
            max_skew_secs: 60,
            stale_after: Duration::from_secs(100),
            max_servers_per_coin: 3,
            max_servers_per_addr: 2,
            publish_urls: false,
            require_suite: false,
        }
    }

    fn directory(dir: &tempfile::TempDir, clock: &Clock) -> Arc<Directory> {
        let store = Store::open(&dir.path().join("db")).unwrap();
        Arc::new(Directory::open(store, vec![profile()], policy(), clock.clone()).unwrap())
    }

    fn beat(identity: &Identity, seq: u64, timestamp: u64, url: &str) -> Signed<Heartbeat> {
        let profile = profile();
        Signed::sign(
            identity,
            &Heartbeat {
                coin: profile.ticker.clone(),
                network: profile.network,
                genesis_hash: profile.genesis_hash,
                url: url.to_owned(),
                seq,
                timestamp,
                height: 5 + seq,
                tip_hash: Hash256([seq as u8; 32]),
                software: "rot-server/0.1.0".into(),
                backend: BackendKind::Native,
                capabilities: vec![],
                synced: true,
            },
        )
        .unwrap()
    }

    /// Runs a heartbeat through check, accept and (when needed) a successful admission from
    /// `addr`.
    fn register(
        directory: &Directory,
        signed: &Signed<Heartbeat>,
        addr: [u8; 4],
    ) -> Result<HeartbeatAck, Error> {
        let checked = directory.check(signed)?;
        match directory.accept(&checked)? {
            Accepted::Ack(ack) => Ok(ack),
            Accepted::NeedsAdmission(ticket) => directory.admit(
                ticket,
                &checked,
                &Admitted {
                    addr: IpAddr::from(addr),
                    latency_ms: 4,
                },
            ),
        }
    }

    fn listed(directory: &Arc<Directory>) -> Vec<PublicKey> {
        let answer: ServersAnswer =
            serde_json::from_slice(&directory.servers_answer("ltc-regtest").unwrap()).unwrap();
        answer.servers.iter().map(|e| e.server_key).collect()
    }

    #[test]
    fn known_key_needs_no_new_admission_and_seq_must_rise() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(START);
        let directory = directory(&dir, &clock);
        let id = Identity::from_seed([1; 32]);
        register(
            &directory,
            &beat(&id, 1, START, "http://a.example:80/"),
            [10, 0, 0, 1],
        )
        .unwrap();
        let checked = directory
            .check(&beat(&id, 2, START, "http://A.example"))
            .unwrap();
        assert!(matches!(
            directory.accept(&checked).unwrap(),
            Accepted::Ack(HeartbeatAck { seq: 2, .. })
        ));
        let replay = directory
            .check(&beat(&id, 2, START, "http://a.example"))
            .unwrap();
        assert!(matches!(
            directory.accept(&replay),
            Err(Error::Proto(rot_proto::Error::Replayed {
                seq: 2,
                last_seq: 2
            }))
        ));
        let moved = directory
            .check(&beat(&id, 3, START, "http://b.example"))
            .unwrap();
        assert!(matches!(
            directory.accept(&moved).unwrap(),
            Accepted::NeedsAdmission(_)
        ));
    }

    #[test]
    fn one_admission_per_key_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let directory = directory(&dir, &Clock::manual(START));
        let id = Identity::from_seed([1; 32]);
        let first = directory.check(&beat(&id, 1, START, "http://a")).unwrap();
        let ticket = directory.accept(&first).unwrap();
        let second = directory.check(&beat(&id, 2, START, "http://a")).unwrap();
        assert!(matches!(
            directory.accept(&second),
            Err(Error::AdmissionInProgress(_))
        ));
        assert_eq!(directory.status_counts()["ltc-regtest"].pending, 1);
        drop(ticket);
        assert!(matches!(
            directory.accept(&second).unwrap(),
            Accepted::NeedsAdmission(_)
        ));
    }

    #[test]
    fn caps_per_coin_and_per_address() {
        let dir = tempfile::tempdir().unwrap();
        let directory = directory(&dir, &Clock::manual(START));
        for seed in 1..=2 {
            let id = Identity::from_seed([seed; 32]);
            register(
                &directory,
                &beat(&id, 1, START, &format!("http://s{seed}")),
                [10, 0, 0, 1],
            )
            .unwrap();
        }
        let third = Identity::from_seed([3; 32]);
        assert!(matches!(
            register(
                &directory,
                &beat(&third, 1, START, "http://s3"),
                [10, 0, 0, 1]
            ),
            Err(Error::AddressFull { cap: 2, .. })
        ));
        register(
            &directory,
            &beat(&third, 1, START, "http://s3"),
            [10, 0, 0, 2],
        )
        .unwrap();
        let fourth = Identity::from_seed([4; 32]);
        assert!(matches!(
            register(
                &directory,
                &beat(&fourth, 1, START, "http://s4"),
                [10, 0, 0, 3]
            ),
            Err(Error::CoinFull { cap: 3, .. })
        ));
        // A banned server no longer takes a place; lifting the ban takes it back.
        let first = Identity::from_seed([1; 32]).public_key();
        directory.ban(first, "test").unwrap();
        directory.unban(&first).unwrap();
        assert!(matches!(
            register(
                &directory,
                &beat(&fourth, 1, START, "http://s4"),
                [10, 0, 0, 3]
            ),
            Err(Error::CoinFull { .. })
        ));
        directory.ban(first, "test").unwrap();
        register(
            &directory,
            &beat(&fourth, 1, START, "http://s4"),
            [10, 0, 0, 1],
        )
        .unwrap();
        // A forgotten server frees its place too.
        directory
            .forget(&Identity::from_seed([2; 32]).public_key())
            .unwrap();
        let fifth = Identity::from_seed([5; 32]);
        register(
            &directory,
            &beat(&fifth, 1, START, "http://s5"),
            [10, 0, 0, 1],
        )
        .unwrap();
    }

    #[test]
    fn url_of_a_live_or_banned_server_is_refused_but_a_stale_one_can_be_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(START);
        let directory = directory(&dir, &clock);
        let (a, b) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
        register(
            &directory,
            &beat(&a, 1, START, "http://shared"),
            [10, 0, 0, 1],
        )
        .unwrap();
        let taken = directory
            .check(&beat(&b, 1, START, "http://shared"))
            .unwrap();
        assert!(matches!(
            directory.accept(&taken),
            Err(Error::UrlTaken { holder, .. }) if holder == a.public_key()
        ));
        clock.advance(Duration::from_secs(101));
        let now = START + 101;
        register(
            &directory,
            &beat(&b, 2, now, "http://shared"),
            [10, 0, 0, 1],
        )
        .unwrap();
        assert_eq!(listed(&directory), vec![b.public_key()]);
        // The old holder lost the URL: coming back there is a URL change, refused while b is live.
        let back = directory.check(&beat(&a, 2, now, "http://shared")).unwrap();
        assert!(matches!(
            directory.accept(&back),
            Err(Error::UrlTaken { .. })
        ));
        directory.ban(b.public_key(), "fake tips").unwrap();
        assert!(matches!(
            directory.accept(&back),
            Err(Error::UrlTaken { .. })
        ));
    }

    #[test]
    fn silent_servers_go_stale_and_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(START);
        let directory = directory(&dir, &clock);
        let id = Identity::from_seed([1; 32]);
        register(&directory, &beat(&id, 1, START, "http://a"), [10, 0, 0, 1]).unwrap();
        assert_eq!(listed(&directory), vec![id.public_key()]);
        clock.advance(Duration::from_secs(100));
        assert_eq!(directory.mark_stale().unwrap(), 0);
        clock.advance(Duration::from_secs(1));
        assert!(
            listed(&directory).is_empty(),
            "overdue servers leave answers at once"
        );
        assert_eq!(directory.mark_stale().unwrap(), 1);
        let view = directory.admin_server(&id.public_key()).unwrap();
        assert_eq!(view.record.status, ServerStatus::Stale);
        assert_eq!(view.last_heartbeat_age_secs, 101);
        register(
            &directory,
            &beat(&id, 2, START + 101, "http://a"),
            [10, 0, 0, 1],
        )
        .unwrap();
        assert_eq!(listed(&directory), vec![id.public_key()]);
        assert_eq!(
            directory.admin_server(&id.public_key()).unwrap().status,
            ServerStatus::Admitted
        );
    }

    #[test]
    fn coin_summary_takes_the_plurality_tip() {
        let dir = tempfile::tempdir().unwrap();
        let directory = directory(&dir, &Clock::manual(START));
        // Seeds 1 and 2 report seq-derived tips: 1,1 then 3 for the third.
        for (seed, seq, addr) in [(1u8, 1u64, 1u8), (2, 1, 2), (3, 3, 3)] {
            let id = Identity::from_seed([seed; 32]);
            register(
                &directory,
                &beat(&id, seq, START, &format!("http://s{seed}")),
                [10, 0, 0, addr],
            )
            .unwrap();
        }
        let answer: CoinsAnswer =
            serde_json::from_slice(&directory.coins_answer().unwrap()).unwrap();
        let coin = &answer.coins[0];
        assert_eq!(coin.id, "ltc-regtest");
        assert_eq!(coin.healthy_servers, 3);
        assert_eq!(coin.tip_height, Some(6));
        assert_eq!(coin.tip_hash, Some(Hash256([1; 32])));
    }

    #[test]
    fn answers_hide_urls_unless_published_and_refresh_after_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(START);
        let directory = directory(&dir, &clock);
        let id = Identity::from_seed([1; 32]);
        register(&directory, &beat(&id, 1, START, "http://a"), [10, 0, 0, 1]).unwrap();
        let first: ServersAnswer =
            serde_json::from_slice(&directory.servers_answer("ltc-regtest").unwrap()).unwrap();
        assert_eq!(first.servers[0].url, None);
        assert_eq!(first.servers[0].height, 6);
        register(&directory, &beat(&id, 2, START, "http://a"), [10, 0, 0, 1]).unwrap();
        clock.advance(Duration::from_millis(ANSWER_SERVE_STALE_MS + 1));
        let later: ServersAnswer =
            serde_json::from_slice(&directory.servers_answer("ltc-regtest").unwrap()).unwrap();
        assert_eq!(later.servers[0].height, 7);
        assert_eq!(later.servers[0].last_heartbeat_age_secs, 3);
        assert!(matches!(
            directory.servers_answer("btc"),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn assembled_answer_is_a_servers_answer_with_current_ages() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(START);
        let directory = directory(&dir, &clock);
        for seed in 1..=2u8 {
            let id = Identity::from_seed([seed; 32]);
            register(
                &directory,
                &beat(&id, 1, START, &format!("http://s{seed}")),
                [10, 0, 0, seed],
            )
            .unwrap();
        }
        for (advance, age) in [(0, 0), (7, 7)] {
            clock.advance(Duration::from_secs(advance));
            let bytes = directory.servers_answer("ltc-regtest").unwrap();
            let wire: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let typed: ServersAnswer = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(
                serde_json::to_value(&typed).unwrap(),
                wire,
                "exactly the ServersAnswer shape"
            );
            assert_eq!(typed.coin, "ltc-regtest");
            assert_eq!(typed.servers.len(), 2);
            assert!(typed.servers[0].server_key < typed.servers[1].server_key);
            assert!(
                typed
                    .servers
                    .iter()
                    .all(|e| e.last_heartbeat_age_secs == age)
            );
        }
    }

    #[test]
    fn restart_keeps_servers_seqs_and_bans() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(START);
        let id = Identity::from_seed([1; 32]);
        let banned = Identity::from_seed([2; 32]).public_key();
        {
            let directory = directory(&dir, &clock);
            register(&directory, &beat(&id, 7, START, "http://a"), [10, 0, 0, 1]).unwrap();
            directory.ban(banned, "spam").unwrap();
            directory.flush().unwrap();
        }
        let directory = directory(&dir, &clock);
        assert_eq!(listed(&directory), vec![id.public_key()]);
        let replay = directory.check(&beat(&id, 7, START, "http://a")).unwrap();
        assert!(matches!(
            directory.accept(&replay),
            Err(Error::Proto(rot_proto::Error::Replayed { .. }))
        ));
        assert_eq!(directory.bans()[0].reason, "spam");
    }

    #[test]
    fn urls_are_normalised_and_checked() {
        assert_eq!(
            normalize_url("HTTP://Example.ORG:80/rot/").unwrap(),
            "http://example.org/rot"
        );
        assert_eq!(
            normalize_url("https://127.0.0.1:8443").unwrap(),
            "https://127.0.0.1:8443"
        );
        for bad in [
            "ftp://example.org",
            "http://user:pw@example.org",
            "http://example.org/?a=1",
            "not a url",
            &format!("http://{}.org", "a".repeat(300)),
        ] {
            assert!(
                matches!(normalize_url(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn latency_is_a_moving_average() {
        let mut r = record(1, "ltc", "http://a");
        r.latency_ms = None;
        r.observe_latency(100);
        assert_eq!(r.latency_ms, Some(100));
        r.observe_latency(20);
        assert_eq!(r.latency_ms, Some(80));
    }

    #[tokio::test(start_paused = true)]
    async fn stale_marking_task_runs_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(START);
        let directory = directory(&dir, &clock);
        let id = Identity::from_seed([1; 32]);
        register(&directory, &beat(&id, 1, START, "http://a"), [10, 0, 0, 1]).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_stale_marking(
            directory.clone(),
            Duration::from_secs(10),
            shutdown.clone(),
        ));
        clock.advance(Duration::from_secs(150));
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(
            directory
                .admin_server(&id.public_key())
                .unwrap()
                .record
                .status,
            ServerStatus::Stale
        );
        shutdown.cancel();
        task.await.unwrap();
    }
}
