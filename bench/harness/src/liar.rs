//! A lying server: a test double in front of a real rot-server that signs correctly with its
//! own key (heartbeats, challenge, info) and rewrites answers on demand: a wrong balance, a
//! forged merkle proof, a wrong tip, or lies that hold together on one server. Proxies must
//! warn and exclude it; only its answers give it away, never its signatures.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rot_proto::message::{ChallengeAnswer, Heartbeat, Nonce, ServerInfo};
use rot_proto::{Identity, PublicKey, Signed};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::Error;

/// What the double lies about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Lie {
    /// Nothing: the real server's answers.
    Honest = 0,
    /// An extra unspent output in `/address/:a/utxo` that the totals do not count.
    WrongBalance = 1,
    /// Merkle proofs pointing at another position, with a zeroed branch.
    ForgedProof = 2,
    /// A made-up `/blocks/tip/hash`.
    WrongTip = 3,
    /// Lies that hold together on one server (its totals and outputs agree, its
    /// transactions' places are plausible), so only other servers' answers give it away.
    Consistent = 4,
}

impl Lie {
    fn from_u8(mode: u8) -> Self {
        [
            Self::WrongBalance,
            Self::ForgedProof,
            Self::WrongTip,
            Self::Consistent,
        ]
        .into_iter()
        .find(|lie| *lie as u8 == mode)
        .unwrap_or(Self::Honest)
    }
}

/// What the double's handlers share.
#[derive(Debug)]
struct Shared {
    identity: Identity,
    backend: String,
    mode: AtomicU8,
    http: reqwest::Client,
    /// The last heartbeat sent, for replay tests.
    last_beat: Mutex<Option<Signed<Heartbeat>>>,
}

/// A running double; it heartbeats to its proxy every second until stopped or dropped.
#[derive(Debug)]
pub struct Liar {
    /// Its URL (what its heartbeats name).
    pub url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn api_error(what: &str, reason: impl ToString) -> Error {
    Error::Api {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// A heartbeat for the server described by `info`, at `url`, signed by `identity`.
pub fn heartbeat(
    identity: &Identity,
    info: &ServerInfo,
    url: &str,
    seq: u64,
) -> Result<Signed<Heartbeat>, Error> {
    let beat = Heartbeat {
        coin: info.coin.clone(),
        network: info.network,
        genesis_hash: info.genesis_hash,
        url: url.to_owned(),
        seq,
        timestamp: now_secs(),
        height: info.height,
        tip_hash: info.tip_hash,
        software: "liar/1".into(),
        backend: info.backend,
        capabilities: info.capabilities.clone(),
        synced: info.index.synced,
    };
    Signed::sign(identity, &beat).map_err(|e| api_error("signing a heartbeat", e))
}

impl Shared {
    /// The real server's info, as the double's own.
    async fn info(&self) -> Result<ServerInfo, Error> {
        let what = format!("GET {}/rot/v1/info", self.backend);
        let signed: Signed<ServerInfo> = self
            .http
            .get(format!("{}/rot/v1/info", self.backend))
            .send()
            .await
            .map_err(|e| api_error(&what, e))?
            .json()
            .await
            .map_err(|e| api_error(&what, e))?;
        let mut info: ServerInfo =
            serde_json::from_value(signed.body().clone()).map_err(|e| api_error(&what, e))?;
        info.server_key = self.identity.public_key();
        info.time = now_secs();
        Ok(info)
    }
}

impl Liar {
    /// Serves a double of the real server at `backend` with `identity` on `127.0.0.1:0`,
    /// heartbeating to the proxy at `proxy` every second. It starts honest.
    pub async fn start(identity: Identity, backend: &str, proxy: &str) -> Result<Self, Error> {
        let listener = crate::data_dir::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr().map_err(|e| Error::Io {
            what: "reading the liar's address".into(),
            source: e,
        })?;
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            identity,
            backend: backend.to_owned(),
            mode: AtomicU8::new(Lie::Honest as u8),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| api_error("building an HTTP client", e))?,
            last_beat: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/rot/v1/info", get(info))
            .route("/rot/v1/challenge", get(challenge))
            .fallback(forward)
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let serving = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(serving.cancelled_owned())
                .await;
        });
        tokio::spawn(beat(
            shared.clone(),
            proxy.to_owned(),
            url.clone(),
            stop.clone(),
        ));
        Ok(Self { url, shared, stop })
    }

    /// The key it signs with.
    pub fn key(&self) -> PublicKey {
        self.shared.identity.public_key()
    }

    /// The identity it signs with.
    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// From now on, lies as `lie` says.
    pub fn lie(&self, lie: Lie) {
        self.shared.mode.store(lie as u8, Ordering::SeqCst);
    }

    /// The real server's info, as the double's own.
    pub async fn info(&self) -> Result<ServerInfo, Error> {
        self.shared.info().await
    }

    /// The last heartbeat it sent, if any.
    pub fn last_heartbeat(&self) -> Option<Signed<Heartbeat>> {
        self.shared
            .last_beat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops serving and heartbeating.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Heartbeats to `proxy` every second until `stop`.
async fn beat(shared: Arc<Shared>, proxy: String, url: String, stop: CancellationToken) {
    for seq in 1.. {
        let signed = match shared.info().await {
            Ok(info) => heartbeat(&shared.identity, &info, &url, seq).ok(),
            Err(_) => None,
        };
        if let Some(signed) = signed {
            let _ = shared
                .http
                .post(format!("{proxy}/v1/heartbeat"))
                .json(&signed)
                .send()
                .await;
            *shared
                .last_beat
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(signed);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn bad_gateway(error: &Error) -> Response {
    (StatusCode::BAD_GATEWAY, error.to_string()).into_response()
}

async fn info(State(shared): State<Arc<Shared>>) -> Response {
    let signed = shared.info().await.and_then(|info| {
        Signed::sign(&shared.identity, &info).map_err(|e| api_error("signing the info", e))
    });
    match signed {
        Ok(signed) => axum::Json(signed).into_response(),
        Err(e) => bad_gateway(&e),
    }
}

/// Signs challenges itself; malformed ones get the real server's error answer.
async fn challenge(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let nonce = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("nonce="))
        .and_then(|n| n.parse::<Nonce>().ok());
    let Some(nonce) = nonce else {
        return forward(State(shared), request).await;
    };
    let answer = ChallengeAnswer {
        nonce,
        time: now_secs(),
    };
    match Signed::sign(&shared.identity, &answer) {
        Ok(signed) => axum::Json(signed).into_response(),
        Err(e) => bad_gateway(&api_error("signing a challenge", e)),
    }
}

/// Everything else: the real server's answer, rewritten as the mode says.
async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let method = request.method().clone();
    let what = format!("{method} {path}");
    let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let upstream = shared
        .http
        .request(method, format!("{}{path}{query}", shared.backend))
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err(e) => return bad_gateway(&api_error(&what, e)),
    };
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let mut body = match upstream.bytes().await {
        Ok(body) => body,
        Err(e) => return bad_gateway(&api_error(&what, e)),
    };
    let mode = Lie::from_u8(shared.mode.load(Ordering::SeqCst));
    if status.is_success()
        && let Some(lie) = lie(mode, &path, &body)
    {
        body = lie;
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// The lie told in `mode` about the answer to `path`, if any.
fn lie(mode: Lie, path: &str, body: &Bytes) -> Option<Bytes> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let json = |value: &Value| serde_json::to_vec(value).ok().map(Bytes::from);
    match (mode, segments.as_slice()) {
        (Lie::WrongBalance, ["address", _, "utxo"]) => {
            let mut utxos: Vec<Value> = serde_json::from_slice(body).ok()?;
            utxos.push(json!({
                "txid": "ab".repeat(32), "vout": 7, "value": 1000,
                "status": {"confirmed": false},
            }));
            json(&Value::Array(utxos))
        }
        (Lie::ForgedProof, ["tx", _, "merkle-proof"]) => {
            let mut proof: Value = serde_json::from_slice(body).ok()?;
            proof["pos"] = json!(proof["pos"].as_u64()? ^ 1);
            if let Some(first) = proof["merkle"].get_mut(0) {
                *first = json!("00".repeat(32));
            }
            json(&proof)
        }
        (Lie::WrongTip, ["blocks", "tip", "hash"]) => Some(Bytes::from("11".repeat(32))),
        (Lie::Consistent, ["address", _]) => {
            let mut stats: Value = serde_json::from_slice(body).ok()?;
            let chain = &mut stats["chain_stats"];
            for (field, extra) in [
                ("funded_txo_sum", 1000),
                ("funded_txo_count", 1),
                ("tx_count", 1),
            ] {
                chain[field] = json!(chain[field].as_u64()? + extra);
            }
            json(&stats)
        }
        (Lie::Consistent, ["address", _, "utxo"]) => lie(Lie::WrongBalance, path, body),
        (Lie::Consistent, ["tx", _, "status"]) => {
            let mut status: Value = serde_json::from_slice(body).ok()?;
            status["block_height"] = json!(status["block_height"].as_u64()? + 1);
            json(&status)
        }
        _ => None,
    }
}
