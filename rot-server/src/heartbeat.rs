//! Registration with proxies: a signed heartbeat to each proxy on start, on every new tip
//! and at a steady interval, and this server's standing at each proxy as they answer.
//!
//! Sequence numbers must rise strictly per key, across restarts too, without a disk write
//! per heartbeat: the sequence is leased in blocks, and only the end of the lease is
//! persisted. After a restart numbering resumes above the last lease, skipping at most one
//! block of numbers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rot_proto::message::{ErrorBody, Heartbeat, HeartbeatAck, ProxyStanding, ServerStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::api::AppState;
use crate::backend::Tip;
use crate::metrics::HeartbeatOutcome;

/// Sequence numbers leased per disk write.
const SEQ_LEASE: u64 = 1000;
/// Default pause between heartbeats when nothing happens.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// First back-off after a proxy refuses or is unreachable; doubles up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// How often the loop looks whether the index's `synced` changed since the last heartbeat
/// (the node lost or back): worth telling at once, like a new tip.
const SYNCED_CHECK: Duration = Duration::from_secs(1);
/// How often a link not yet started looks whether the index has caught up with its node.
const FIRST_SYNC_CHECK: Duration = Duration::from_millis(100);
/// Timeout of one heartbeat request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read of a proxy's answer: an ack or an error body is a few hundred bytes, and a
/// proxy is outside input, so one cannot make this server buffer without bound.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Strictly increasing heartbeat sequence numbers for this server's key, persisted across
/// restarts by leasing.
#[derive(Debug)]
pub struct Sequence {
    path: PathBuf,
    next: AtomicU64,
    /// First number not covered by the persisted lease.
    leased_to: Mutex<u64>,
}

impl Sequence {
    /// Opens the sequence persisted at `path` (starting fresh if absent).
    pub fn open(path: &Path) -> Result<Self, Error> {
        let start = match std::fs::read_to_string(path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                Error::Config(format!(
                    "heartbeat sequence file {} is damaged",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => {
                return Err(Error::Config(format!(
                    "heartbeat sequence file {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Self {
            path: path.to_owned(),
            next: AtomicU64::new(start),
            leased_to: Mutex::new(start),
        })
    }

    /// The next number, extending (and persisting) the lease when it runs out.
    pub fn next(&self) -> Result<u64, Error> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let mut leased_to = self.leased_to.lock().expect("sequence lock");
        if seq >= *leased_to {
            let end = seq + SEQ_LEASE;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, end.to_string())
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &self.path))
                .map_err(|e| {
                    Error::Config(format!(
                        "heartbeat sequence file {}: {e}",
                        self.path.display()
                    ))
                })?;
            *leased_to = end;
        }
        Ok(seq)
    }
}

/// Starts heartbeat loops to proxies: the fixed list of the configuration, or the proxies
/// that discovery finds in the bootstrap list. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Registrar {
    state: AppState,
    http: reqwest::Client,
    public_url: String,
    sequence: Arc<Sequence>,
    interval: Duration,
}

impl Registrar {
    /// A registrar announcing `public_url` for the server of `state`.
    pub fn new(
        state: AppState,
        public_url: String,
        sequence: Arc<Sequence>,
        interval: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("HTTP client");
        Self {
            state,
            http,
            public_url,
            sequence,
            interval,
        }
    }

    /// Sends heartbeats to `proxy` until `shutdown`.
    pub fn link(&self, proxy: String, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let task = ProxyLink {
            state: self.state.clone(),
            http: self.http.clone(),
            proxy,
            public_url: self.public_url.clone(),
            sequence: self.sequence.clone(),
            interval: self.interval,
        };
        tokio::spawn(task.run(self.state.tips(), shutdown))
    }

    /// Forgets the standing at a proxy that is no longer in the list.
    pub fn forget(&self, proxy: &str) {
        self.state
            .standings()
            .write()
            .expect("standings lock")
            .retain(|s| s.proxy_url != proxy);
    }
}

/// The heartbeat loop for one proxy.
struct ProxyLink {
    state: AppState,
    http: reqwest::Client,
    proxy: String,
    public_url: String,
    sequence: Arc<Sequence>,
    interval: Duration,
}

/// What one heartbeat attempt came to.
enum Outcome {
    Accepted(HeartbeatAck),
    /// The proxy refused (4xx) with its reason; `retry_after` when it said.
    Refused {
        status: ServerStatus,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The proxy could not be reached or failed (5xx).
    Failed(String),
}

impl Outcome {
    fn counted(&self) -> HeartbeatOutcome {
        match self {
            Self::Accepted(_) => HeartbeatOutcome::Accepted,
            Self::Refused { .. } => HeartbeatOutcome::Refused,
            Self::Failed(_) => HeartbeatOutcome::Failed,
        }
    }
}

impl ProxyLink {
    async fn run(self, mut tips: watch::Receiver<Tip>, shutdown: CancellationToken) {
        // A proxy runs its conformance suite on a new server at once; one still building its
        // index would fail it (not even the genesis block yet) and be warned for it. So the
        // first heartbeat waits until the index has caught up with the node.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = self.synced_is(true, FIRST_SYNC_CHECK) => {}
        }
        let mut backoff = BACKOFF_FIRST;
        loop {
            let said_synced = self.state.backend_synced();
            let outcome = self.send().await;
            self.state
                .metrics()
                .heartbeat(&self.proxy, outcome.counted());
            let pause = match outcome {
                Outcome::Accepted(ack) => {
                    backoff = BACKOFF_FIRST;
                    self.record(ack.status, ack.reason);
                    self.interval
                }
                Outcome::Refused {
                    status,
                    reason,
                    retry_after,
                } => {
                    tracing::warn!(proxy = %self.proxy, %reason, "proxy refused our heartbeat; backing off");
                    self.record(status, Some(reason));
                    let pause = retry_after.unwrap_or(backoff).max(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    pause
                }
                Outcome::Failed(reason) => {
                    tracing::warn!(proxy = %self.proxy, %reason, retry_in = ?backoff, "heartbeat failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    pause
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
                // A new tip is worth telling at once, unless the proxy asked us to back off.
                changed = tips.changed(), if backoff == BACKOFF_FIRST => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = self.synced_is(!said_synced, SYNCED_CHECK), if backoff == BACKOFF_FIRST => {}
            }
        }
    }

    /// Resolves once the index's `synced` is `wanted`, looking every `every`.
    async fn synced_is(&self, wanted: bool, every: Duration) {
        while self.state.backend_synced() != wanted {
            tokio::time::sleep(every).await;
        }
    }

    async fn send(&self) -> Outcome {
        let info = self.state.server_info();
        let seq = match self.sequence.next() {
            Ok(seq) => seq,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let heartbeat = Heartbeat {
            coin: info.coin,
            network: info.network,
            genesis_hash: info.genesis_hash,
            url: self.public_url.clone(),
            seq,
            timestamp: info.time,
            height: info.height,
            tip_hash: info.tip_hash,
            software: info.software,
            backend: info.backend,
            capabilities: info.capabilities,
            synced: info.index.synced,
        };
        let signed = match self.state.sign(&heartbeat) {
            Ok(signed) => signed,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let url = format!("{}/v1/heartbeat", self.proxy);
        let response = match self.http.post(&url).json(&signed).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("{url}: {e}")),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_secs);
        if status.is_success() {
            return match read_answer::<HeartbeatAck>(response).await {
                Ok(ack) => Outcome::Accepted(ack),
                Err(e) => Outcome::Failed(format!("{url}: unreadable answer: {e}")),
            };
        }
        let reason = match read_answer::<ErrorBody>(response).await {
            Ok(body) => format!("{}: {}", body.error.code, body.error.message),
            Err(_) => format!("HTTP {status}"),
        };
        if status.is_client_error() {
            let verdict = if status == reqwest::StatusCode::FORBIDDEN {
                ServerStatus::Banned
            } else {
                ServerStatus::Pending
            };
            Outcome::Refused {
                status: verdict,
                reason,
                retry_after,
            }
        } else {
            Outcome::Failed(format!("{url}: {reason}"))
        }
    }

    fn record(&self, status: ServerStatus, reason: Option<String>) {
        let standings = self.state.standings();
        let mut standings = standings.write().expect("standings lock");
        let now = crate::api::unix_now();
        match standings.iter_mut().find(|s| s.proxy_url == self.proxy) {
            Some(s) if s.status == status && s.reason == reason => {}
            Some(s) => {
                tracing::info!(proxy = %self.proxy, ?status, ?reason, "standing at proxy changed");
                *s = ProxyStanding {
                    proxy_url: self.proxy.clone(),
                    status,
                    reason,
                    since: now,
                };
            }
            None => {
                tracing::info!(proxy = %self.proxy, ?status, ?reason, "standing at proxy");
                standings.push(ProxyStanding {
                    proxy_url: self.proxy.clone(),
                    status,
                    reason,
                    since: now,
                });
            }
        }
    }
}

/// Reads and decodes a proxy's answer, refusing more than [`MAX_ANSWER_BYTES`].
async fn read_answer<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
) -> Result<T, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer exceeds {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// Shared standings list type, written by heartbeat tasks and read by `/rot/v1/info`.
pub type Standings = Arc<RwLock<Vec<ProxyStanding>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_rises_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heartbeat.seq");
        let first = Sequence::open(&path).unwrap();
        let a = first.next().unwrap();
        let b = first.next().unwrap();
        assert!(b > a);
        drop(first);
        let again = Sequence::open(&path).unwrap();
        let c = again.next().unwrap();
        assert!(c > b, "{c} must exceed {b} after a restart");
        for _ in 0..(SEQ_LEASE * 2) {
            again.next().unwrap();
        }
        let last = again.next().unwrap();
        drop(again);
        assert!(Sequence::open(&path).unwrap().next().unwrap() > last);
    }

    /// Found by review for the bad-input suite: answers were read whole, however large.
    #[tokio::test]
    async fn proxy_answers_are_read_up_to_a_cap() {
        use axum::routing::get;
        let ack = serde_json::json!({"status": "admitted", "seq": 7});
        let app = axum::Router::new()
            .route("/ack", get(move || async move { axum::Json(ack) }))
            .route("/huge", get(|| async { vec![b' '; 1024 * 1024] }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |path: &str| reqwest::get(format!("{url}{path}"));

        let ack: HeartbeatAck = read_answer(get("/ack").await.unwrap()).await.unwrap();
        assert_eq!((ack.status, ack.seq), (ServerStatus::Admitted, 7));
        let refused = read_answer::<HeartbeatAck>(get("/huge").await.unwrap()).await;
        assert!(refused.unwrap_err().contains("exceeds"));
    }

    #[test]
    fn damaged_sequence_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heartbeat.seq");
        std::fs::write(&path, "garbage").unwrap();
        assert!(Sequence::open(&path).is_err());
    }
}
