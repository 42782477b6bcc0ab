//! The proxy among its peers: its own identity, the bootstrap list it holds and serves, and
//! what it last heard from the other proxies the list names.
//!
//! Why: the list is the one central piece of ROT and must not depend on one host, so every
//! proxy serves the newest valid list it holds (`GET /v1/bootstrap`) and passes newer lists
//! on: it fetches one from any peer whose signed info shows a higher serial. And a wallet that
//! reaches one proxy can reach the others: `GET /v1/peers` lists them with what they serve,
//! as they signed it under the keys the list names for them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use rot_bootstrap::fetch::{FetchOptions, fetch_list};
use rot_bootstrap::list::MAX_LIST_BYTES;
use rot_bootstrap::{Accepted, Follower, ListFile, ProxyEntry};
use rot_proto::client::Proxy;
use rot_proto::message::{PeerEntry, PeersAnswer, ProxyInfo, check_clock_skew};
use rot_proto::transport::Transport;
use rot_proto::{Identity, PROTOCOL_VERSION, PublicKey, Signed};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::clock::Clock;
use crate::directory::Directory;

/// Largest `GET /v1/info` answer read from a peer: a few coins' summaries need far less.
const MAX_INFO_BYTES: u64 = 64 * 1024;

/// The newest valid list this proxy holds, ready to serve.
#[derive(Debug, Clone)]
struct HeldList {
    serial: u64,
    expires_at: u64,
    json: Bytes,
}

/// Another proxy of the list and what it last said.
#[derive(Debug, Clone)]
struct PeerRecord {
    entry: ProxyEntry,
    last_seen_ms: Option<u64>,
    info: Option<ProxyInfo>,
    error: Option<String>,
}

/// This proxy's identity, held list and view of its peers; shared by the API and the task
/// that follows the list ([`Federation::run`]).
#[derive(Debug)]
pub struct Federation {
    identity: Identity,
    directory: Arc<Directory>,
    clock: Clock,
    max_skew_secs: u64,
    held: RwLock<Option<HeldList>>,
    peers: RwLock<BTreeMap<String, PeerRecord>>,
}

/// How the list is followed: the follower (pins, cache, mirrors), the file the maintainers
/// hand over, and how often peers are asked.
#[derive(Debug)]
pub struct Following {
    /// Pins, cached list and mirrors.
    pub follower: Follower,
    /// A list file re-read every round (`ROT_PROXY_BOOTSTRAP_FILE`).
    pub list_file: Option<PathBuf>,
    /// Time between rounds.
    pub interval: Duration,
    /// Time budget of one request to a peer or mirror.
    pub timeout: Duration,
}

impl Federation {
    /// The federation state of a proxy signing as `identity`, describing `directory`.
    pub fn new(
        identity: Identity,
        directory: Arc<Directory>,
        clock: Clock,
        max_skew_secs: u64,
    ) -> Self {
        Self {
            identity,
            directory,
            clock,
            max_skew_secs,
            held: RwLock::new(None),
            peers: RwLock::new(BTreeMap::new()),
        }
    }

    /// The proxy's public key, the one the bootstrap list should name for it.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public_key()
    }

    /// The body of `GET /v1/bootstrap`: the newest valid list held, as received.
    pub fn bootstrap_list(&self) -> Result<Bytes, Error> {
        let now = self.clock.now_secs();
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|held| now < held.expires_at)
            .map(|held| held.json.clone())
            .ok_or_else(|| Error::NotFound("this proxy holds no current bootstrap list".into()))
    }

    /// The body of `GET /v1/info`: what this proxy serves and which list it holds, signed.
    pub fn info(self: &Arc<Self>) -> Result<Signed<ProxyInfo>, Error> {
        let info = ProxyInfo {
            proxy_key: self.public_key(),
            software: concat!("rot-proxy/", env!("CARGO_PKG_VERSION")).to_owned(),
            protocol_version: PROTOCOL_VERSION,
            time: self.clock.now_secs(),
            coins: self.directory.coin_summaries()?,
            bootstrap_serial: self.held_serial(),
        };
        Ok(Signed::sign(&self.identity, &info)?)
    }

    /// The body of `GET /v1/peers`.
    pub fn peers(&self) -> PeersAnswer {
        let now_ms = self.clock.now_millis();
        let peers = self
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|record| PeerEntry {
                url: record.entry.url.clone(),
                proxy_key: record.entry.key,
                team: record.entry.team.clone(),
                contact: record.entry.contact.clone(),
                reachable: record.error.is_none() && record.info.is_some(),
                last_seen_age_secs: record
                    .last_seen_ms
                    .map(|seen| now_ms.saturating_sub(seen) / 1000),
                coins: record
                    .info
                    .as_ref()
                    .map(|info| info.coins.clone())
                    .unwrap_or_default(),
                bootstrap_serial: record.info.as_ref().and_then(|info| info.bootstrap_serial),
                error: record.error.clone(),
            })
            .collect();
        PeersAnswer { peers }
    }

    /// The serial of the bootstrap list held, if any.
    pub fn held_serial(&self) -> Option<u64> {
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|held| held.serial)
    }

    /// Follows the list until `shutdown`: each round takes the handed-over file, refreshes from
    /// the mirrors when due, asks every peer for its info, and takes a newer list from a peer
    /// that has one.
    pub async fn run(self: Arc<Self>, mut following: Following, shutdown: CancellationToken) {
        let http = match reqwest::Client::builder()
            .timeout(following.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
        {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "the peer task cannot build its HTTP client");
                return;
            }
        };
        if let Err(e) = following.follower.load_cache() {
            tracing::warn!(error = %e, "ignoring the cached bootstrap list");
        }
        let mut next_refresh = 0;
        loop {
            self.round(&mut following, &http, &mut next_refresh).await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(following.interval) => {}
            }
        }
    }

    async fn round(
        &self,
        following: &mut Following,
        http: &reqwest::Client,
        next_refresh: &mut u64,
    ) {
        let now = self.clock.now_secs();
        if let Some(path) = &following.list_file {
            let offered =
                ListFile::read(path).and_then(|file| following.follower.offer(&file, now));
            log_taken(&offered, &path.display().to_string());
        }
        // Without a current list there are no peers to ask: try the mirrors every round then,
        // not on the jittered schedule meant for a client that holds one.
        if now >= *next_refresh || following.follower.store().current(now).is_err() {
            let options = FetchOptions {
                timeout: following.timeout,
                ..FetchOptions::default()
            };
            let (report, cached) = following.follower.refresh(http, now, &options).await;
            if let Some(accepted) = report.accepted {
                tracing::debug!(?accepted, source = ?report.source, "bootstrap list refreshed");
            }
            if let Err(e) = cached {
                tracing::warn!(error = %e, "could not cache the bootstrap list");
            }
            *next_refresh = now + following.follower.next_refresh_in(now);
        }
        self.hold(&following.follower, now);

        let peers = self.listed_peers(&following.follower, now);
        let newest = self.ask_peers(peers, http.clone(), following.timeout).await;
        if let Some((url, serial)) = newest.filter(|&(_, serial)| Some(serial) > self.held_serial())
        {
            let source = rot_bootstrap::bootstrap_url(&url);
            tracing::info!(peer = %url, serial, "a peer holds a newer bootstrap list; fetching it");
            let offered = fetch_list(http, &source, MAX_LIST_BYTES)
                .await
                .and_then(|file| following.follower.offer(&file, now));
            log_taken(&offered, &source);
            self.hold(&following.follower, now);
        }
    }

    /// Publishes the follower's current list for `GET /v1/bootstrap`.
    fn hold(&self, follower: &Follower, now: u64) {
        let held = follower.store().current(now).ok().map(|list| HeldList {
            serial: list.serial(),
            expires_at: list.expires_at(),
            json: Bytes::from(list.file().to_json()),
        });
        *self.held.write().unwrap_or_else(PoisonError::into_inner) = held;
    }

    /// Every proxy of the current list but this one, each URL once.
    fn listed_peers(&self, follower: &Follower, now: u64) -> Vec<ProxyEntry> {
        let own = self.public_key();
        let mut peers: BTreeMap<String, ProxyEntry> = BTreeMap::new();
        if let Ok(list) = follower.store().current(now) {
            for entry in list.body().proxies.values().flatten() {
                if entry.key != own {
                    peers
                        .entry(entry.url.clone())
                        .or_insert_with(|| entry.clone());
                }
            }
        }
        peers.into_values().collect()
    }

    /// Asks each peer for its signed info and records the outcome; peers that left the list
    /// are forgotten. Returns the peer holding the highest list serial, if any said one.
    async fn ask_peers(
        &self,
        peers: Vec<ProxyEntry>,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Option<(String, u64)> {
        let transport = Transport::new(http)
            .with_timeout(timeout)
            .with_max_body_bytes(MAX_INFO_BYTES);
        let mut asked = JoinSet::new();
        for entry in peers {
            let transport = transport.clone();
            asked.spawn(async move {
                let answer = match Proxy::new(transport, &entry.url) {
                    Ok(proxy) => proxy.info().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (entry, answer)
            });
        }
        let now_ms = self.clock.now_millis();
        let mut seen = BTreeMap::new();
        while let Some(joined) = asked.join_next().await {
            let Ok((entry, answer)) = joined else {
                continue;
            };
            let checked = answer.and_then(|signed| self.check_peer_info(&entry, &signed));
            seen.insert(entry.url.clone(), (entry, checked));
        }
        let mut newest: Option<(String, u64)> = None;
        let mut records = self.peers.write().unwrap_or_else(PoisonError::into_inner);
        records.retain(|url, _| seen.contains_key(url));
        for (url, (entry, checked)) in seen {
            let record = records.entry(url.clone()).or_insert_with(|| PeerRecord {
                entry: entry.clone(),
                last_seen_ms: None,
                info: None,
                error: None,
            });
            record.entry = entry;
            match checked {
                Ok(info) => {
                    if let Some(serial) = info.bootstrap_serial
                        && newest.as_ref().is_none_or(|(_, best)| serial > *best)
                    {
                        newest = Some((url.clone(), serial));
                    }
                    record.last_seen_ms = Some(now_ms);
                    record.info = Some(info);
                    record.error = None;
                }
                Err(error) => {
                    tracing::debug!(peer = %url, %error, "peer did not answer as listed");
                    record.error = Some(error);
                }
            }
        }
        newest
    }

    /// A peer's info counts only if signed by the key the list names for its URL and fresh.
    fn check_peer_info(
        &self,
        entry: &ProxyEntry,
        signed: &Signed<ProxyInfo>,
    ) -> Result<ProxyInfo, String> {
        let info = signed
            .verify()
            .map_err(|e| format!("invalid signed info: {e}"))?;
        if info.proxy_key != entry.key {
            return Err(format!(
                "info signed by {}, but the bootstrap list names {} for this URL",
                info.proxy_key, entry.key
            ));
        }
        check_clock_skew(info.time, self.clock.now_secs(), self.max_skew_secs)
            .map_err(|e| e.to_string())?;
        Ok(info)
    }
}

/// Logs what offering a list did: news at info, trouble at warn, the same list not at all.
fn log_taken(offered: &Result<Accepted, rot_bootstrap::BootstrapError>, source: &str) {
    match offered {
        Ok(Accepted::Updated { serial, replaced }) => {
            tracing::info!(source, serial, ?replaced, "took a newer bootstrap list");
        }
        Ok(Accepted::Unchanged { .. }) => {}
        Err(error) => tracing::warn!(source, %error, "bootstrap list not taken"),
    }
}
