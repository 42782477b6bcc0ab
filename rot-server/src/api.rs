//! The HTTP API: the Esplora REST API at the root (so existing wallets work unchanged) and
//! ROT's own endpoints under `/rot/v1/`. Handlers parse and check their input, ask the
//! backend, and shape the answer; every failure becomes the shared error body in `error.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rot_proto::Hash256;
use rot_proto::coin::CoinProfile;
use rot_proto::identity::Identity;
use rot_proto::message::{ChallengeAnswer, ChallengeRequest, ServerInfo};
use rot_proto::signed::{Signed, SignedBody};
use rot_proto::{Address, ScriptHash};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use crate::Error;
use crate::backend::{Backend, ScriptStats};
use crate::esplora::{block_json, transactions_json};
use crate::heartbeat::Standings;
use crate::metrics::ServerMetrics;

/// Largest body accepted (a broadcast transaction in hex): 4 MB of hex is a 2 MB transaction,
/// above any standard transaction.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Confirmed transactions per page of `/address/:a/txs`, as Esplora.
const CHAIN_TXS_PER_PAGE: usize = 25;
/// Mempool transactions listed by `/address/:a/txs` and `/txs/mempool`, as Esplora.
const MEMPOOL_TXS: usize = 50;

/// What every handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn Backend>,
    profile: CoinProfile,
    identity: Identity,
    public_url: Option<String>,
    standings: Standings,
    metrics: ServerMetrics,
}

impl AppState {
    /// State over `backend` for the coin of `profile`, signing with `identity`.
    /// `standings` is where the heartbeat task records this server's standing at each proxy.
    pub fn new(
        backend: Arc<dyn Backend>,
        profile: CoinProfile,
        identity: Identity,
        public_url: Option<String>,
        standings: Standings,
    ) -> Self {
        let metrics = ServerMetrics::new(&profile, backend.kind());
        Self {
            inner: Arc::new(Inner {
                backend,
                profile,
                identity,
                public_url,
                standings,
                metrics,
            }),
        }
    }

    fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// Follows the backend's tip.
    pub fn tips(&self) -> tokio::sync::watch::Receiver<crate::backend::Tip> {
        self.inner.backend.tips()
    }

    /// Signs `body` with this server's identity.
    pub fn sign<T: SignedBody>(&self, body: &T) -> Result<Signed<T>, Error> {
        Ok(Signed::sign(&self.inner.identity, body)?)
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &ServerMetrics {
        &self.inner.metrics
    }

    /// This server's standing at each proxy.
    pub fn standings(&self) -> Standings {
        self.inner.standings.clone()
    }

    /// Whether the index has caught up with its source of blocks and still follows it.
    pub fn backend_synced(&self) -> bool {
        self.inner.backend.progress().synced
    }

    /// The server-info message as this server currently stands.
    pub fn server_info(&self) -> ServerInfo {
        let i = &self.inner;
        let tip = *i.backend.tips().borrow();
        ServerInfo {
            coin: i.profile.ticker.clone(),
            network: i.profile.network,
            genesis_hash: i.profile.genesis_hash,
            server_key: i.identity.public_key(),
            software: concat!("rot-server/", env!("CARGO_PKG_VERSION")).to_owned(),
            protocol_version: rot_proto::signed::PROTOCOL_VERSION,
            backend: i.backend.kind(),
            height: u64::from(tip.height),
            tip_hash: tip.hash,
            capabilities: i.backend.capabilities(),
            public_url: i.public_url.clone(),
            time: unix_now(),
            index: i.backend.progress(),
            proxies: i.standings.read().expect("standings lock").clone(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The router of the whole API, with CORS open for GET (browser wallets), a body limit, and
/// every request measured for `/metrics`.
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    let http_metrics = state.metrics().http().clone();
    let esplora = Router::new()
        .route("/blocks/tip/height", get(tip_height))
        .route("/blocks/tip/hash", get(tip_hash))
        .route("/block-height/{height}", get(block_at_height))
        .route("/block/{hash}", get(block))
        .route("/block/{hash}/header", get(block_header))
        .route("/block/{hash}/status", get(block_status))
        .route("/block/{hash}/txids", get(block_txids))
        .route("/tx", axum::routing::post(broadcast))
        .route("/tx/{txid}", get(tx))
        .route("/tx/{txid}/hex", get(tx_hex))
        .route("/tx/{txid}/raw", get(tx_raw))
        .route("/tx/{txid}/status", get(tx_status))
        .route("/tx/{txid}/merkle-proof", get(tx_merkle_proof))
        .route("/tx/{txid}/outspend/{vout}", get(tx_outspend))
        .route("/tx/{txid}/outspends", get(tx_outspends))
        .route("/address/{address}", get(address_stats))
        .route("/address/{address}/txs", get(address_txs))
        .route("/address/{address}/txs/chain", get(address_txs_chain_first))
        .route(
            "/address/{address}/txs/chain/{last_seen}",
            get(address_txs_chain),
        )
        .route("/address/{address}/txs/mempool", get(address_txs_mempool))
        .route("/address/{address}/utxo", get(address_utxo))
        .route("/scripthash/{hash}", get(scripthash_stats))
        .route("/scripthash/{hash}/txs", get(scripthash_txs))
        .route(
            "/scripthash/{hash}/txs/chain",
            get(scripthash_txs_chain_first),
        )
        .route(
            "/scripthash/{hash}/txs/chain/{last_seen}",
            get(scripthash_txs_chain),
        )
        .route(
            "/scripthash/{hash}/txs/mempool",
            get(scripthash_txs_mempool),
        )
        .route("/scripthash/{hash}/utxo", get(scripthash_utxo))
        .route("/fee-estimates", get(fee_estimates))
        .route("/mempool/txids", get(mempool_txids))
        .route("/rot/v1/info", get(info))
        .route("/rot/v1/challenge", get(challenge))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            consistent_view,
        ));
    let router = esplora
        .fallback(|| async { Error::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let router = rot_ops::timeout::with_timeout(router, request_timeout, || Error::Timeout).layer(
        CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE]),
    );
    http_metrics.layer(router)
}

/// Runs a request on a consistent view of the backend's index (see
/// [`Backend::consistent_view`]).
async fn consistent_view(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let _view = s.backend().consistent_view().await;
    next.run(request).await
}

/// Prometheus metrics, with the backend's numbers as of now.
async fn metrics(State(s): State<AppState>) -> Response {
    s.metrics().refresh(s.backend()).await;
    rot_ops::http_metrics::exposition(s.metrics().registry())
}

// --- input parsing: every path parameter is checked here, never by an extractor rejection ---

/// Path parameters whose refusal is the shared error body: axum's own `Path` rejection (e.g.
/// for percent-encoded bytes that are not UTF-8) would answer in plain text.
struct Param<T>(T);

impl<T, S> FromRequestParts<S> for Param<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Error::BadRequest(rejection.body_text()))?;
        Ok(Self(value))
    }
}

fn parse_hash(what: &str, text: &str) -> Result<Hash256, Error> {
    text.parse()
        .map_err(|_| Error::BadRequest(format!("invalid {what} {text:?}: expected 64 hex digits")))
}

fn parse_u32(what: &str, text: &str) -> Result<u32, Error> {
    text.parse().map_err(|_| {
        Error::BadRequest(format!(
            "invalid {what} {text:?}: expected a non-negative integer"
        ))
    })
}

fn parse_address(state: &AppState, text: &str) -> Result<ScriptHash, Error> {
    let address = Address::parse(&state.inner.profile, text)?;
    Ok(address.script_hash())
}

fn parse_scripthash(text: &str) -> Result<ScriptHash, Error> {
    text.parse().map_err(|_| {
        Error::BadRequest(format!(
            "invalid script hash {text:?}: expected 64 hex digits"
        ))
    })
}

fn text(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        body,
    )
        .into_response()
}

// --- blocks ---

async fn tip_height(State(s): State<AppState>) -> Response {
    text(s.backend().tips().borrow().height.to_string())
}

async fn tip_hash(State(s): State<AppState>) -> Response {
    text(s.backend().tips().borrow().hash.to_string())
}

async fn block_at_height(
    State(s): State<AppState>,
    Param(height): Param<String>,
) -> Result<Response, Error> {
    let height = parse_u32("height", &height)?;
    Ok(text(s.backend().block_hash(height).await?.to_string()))
}

async fn block(
    State(s): State<AppState>,
    Param(hash): Param<String>,
) -> Result<Json<Value>, Error> {
    let hash = parse_hash("block hash", &hash)?;
    let block = s.backend().block(&hash).await?;
    Ok(Json(block_json(&hash, &block)))
}

async fn block_header(
    State(s): State<AppState>,
    Param(hash): Param<String>,
) -> Result<Response, Error> {
    let hash = parse_hash("block hash", &hash)?;
    Ok(text(hex::encode(s.backend().block_header(&hash).await?)))
}

async fn block_status(
    State(s): State<AppState>,
    Param(hash): Param<String>,
) -> Result<Response, Error> {
    let hash = parse_hash("block hash", &hash)?;
    Ok(Json(s.backend().block_status(&hash).await?).into_response())
}

async fn block_txids(
    State(s): State<AppState>,
    Param(hash): Param<String>,
) -> Result<Json<Vec<Hash256>>, Error> {
    let hash = parse_hash("block hash", &hash)?;
    Ok(Json(s.backend().block_txids(&hash).await?))
}

// --- transactions ---

async fn raw_tx(s: &AppState, txid: &str) -> Result<(Hash256, Vec<u8>), Error> {
    let txid = parse_hash("txid", txid)?;
    let raw = s
        .backend()
        .transactions(&[txid])
        .await?
        .pop()
        .unwrap_or_default();
    Ok((txid, raw))
}

async fn tx(State(s): State<AppState>, Param(txid): Param<String>) -> Result<Json<Value>, Error> {
    let txid = parse_hash("txid", &txid)?;
    let mut txs = transactions_json(s.backend(), &s.inner.profile, &[txid], true).await?;
    Ok(Json(txs.pop().unwrap_or(Value::Null)))
}

async fn tx_hex(State(s): State<AppState>, Param(txid): Param<String>) -> Result<Response, Error> {
    Ok(text(hex::encode(raw_tx(&s, &txid).await?.1)))
}

async fn tx_raw(State(s): State<AppState>, Param(txid): Param<String>) -> Result<Response, Error> {
    let raw = raw_tx(&s, &txid).await?.1;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        raw,
    )
        .into_response())
}

async fn tx_status(
    State(s): State<AppState>,
    Param(txid): Param<String>,
) -> Result<Response, Error> {
    let txid = parse_hash("txid", &txid)?;
    let status = s.backend().tx_statuses(&[txid]).await?;
    Ok(Json(status.first().copied()).into_response())
}

async fn tx_merkle_proof(
    State(s): State<AppState>,
    Param(txid): Param<String>,
) -> Result<Response, Error> {
    let txid = parse_hash("txid", &txid)?;
    Ok(Json(s.backend().merkle_proof(&txid).await?).into_response())
}

async fn output_count(s: &AppState, txid: &str) -> Result<(Hash256, u32), Error> {
    let (txid, raw) = raw_tx(s, txid).await?;
    let tx = rot_proto::tx::Transaction::parse(&raw, &s.inner.profile.rules)?;
    Ok((txid, tx.outputs().len() as u32))
}

async fn tx_outspend(
    State(s): State<AppState>,
    Param((txid, vout)): Param<(String, String)>,
) -> Result<Response, Error> {
    let vout = parse_u32("output index", &vout)?;
    let (txid, outputs) = output_count(&s, &txid).await?;
    if vout >= outputs {
        return Err(Error::NotFound(format!(
            "transaction {txid} has no output {vout}"
        )));
    }
    let spends = s.backend().outspends(&txid, outputs).await?;
    Ok(Json(spends[vout as usize]).into_response())
}

async fn tx_outspends(
    State(s): State<AppState>,
    Param(txid): Param<String>,
) -> Result<Response, Error> {
    let (txid, outputs) = output_count(&s, &txid).await?;
    Ok(Json(s.backend().outspends(&txid, outputs).await?).into_response())
}

async fn broadcast(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let body = body.map_err(Error::from)?;
    let hex_text = std::str::from_utf8(&body)
        .map_err(|_| Error::BadRequest("body must be the transaction in hex".into()))?
        .trim();
    let raw =
        hex::decode(hex_text).map_err(|e| Error::BadRequest(format!("body is not hex: {e}")))?;
    // Parse first so garbage gets a clear 400 here rather than the node's terse reject.
    rot_proto::tx::Transaction::parse(&raw, &s.inner.profile.rules)?;
    Ok(text(s.backend().broadcast(&raw).await?.to_string()))
}

// --- addresses and script hashes ---

async fn stats_json(
    s: &AppState,
    key: &str,
    shown: &str,
    script: &ScriptHash,
) -> Result<Json<Value>, Error> {
    let (chain, mempool): (ScriptStats, ScriptStats) = s.backend().script_stats(script).await?;
    Ok(Json(
        json!({ key: shown, "chain_stats": chain, "mempool_stats": mempool }),
    ))
}

async fn history_json(
    s: &AppState,
    script: &ScriptHash,
    mempool_first: bool,
    last_seen: Option<&str>,
) -> Result<Json<Value>, Error> {
    let last_seen = last_seen.map(|t| parse_hash("txid", t)).transpose()?;
    let mut txids = if mempool_first {
        s.backend().script_mempool(script, MEMPOOL_TXS).await?
    } else {
        Vec::new()
    };
    txids.extend(
        s.backend()
            .script_history(script, last_seen.as_ref(), CHAIN_TXS_PER_PAGE)
            .await?,
    );
    Ok(Json(Value::Array(
        transactions_json(s.backend(), &s.inner.profile, &txids, true).await?,
    )))
}

async fn mempool_json(s: &AppState, script: &ScriptHash) -> Result<Json<Value>, Error> {
    let txids = s.backend().script_mempool(script, MEMPOOL_TXS).await?;
    Ok(Json(Value::Array(
        transactions_json(s.backend(), &s.inner.profile, &txids, true).await?,
    )))
}

async fn utxo_json(s: &AppState, script: &ScriptHash) -> Result<Response, Error> {
    Ok(Json(s.backend().script_utxos(script).await?).into_response())
}

async fn address_stats(
    State(s): State<AppState>,
    Param(a): Param<String>,
) -> Result<Json<Value>, Error> {
    let script = parse_address(&s, &a)?;
    stats_json(&s, "address", &a, &script).await
}

async fn address_txs(
    State(s): State<AppState>,
    Param(a): Param<String>,
) -> Result<Json<Value>, Error> {
    history_json(&s, &parse_address(&s, &a)?, true, None).await
}

async fn address_txs_chain_first(
    State(s): State<AppState>,
    Param(a): Param<String>,
) -> Result<Json<Value>, Error> {
    history_json(&s, &parse_address(&s, &a)?, false, None).await
}

async fn address_txs_chain(
    State(s): State<AppState>,
    Param((a, last)): Param<(String, String)>,
) -> Result<Json<Value>, Error> {
    history_json(&s, &parse_address(&s, &a)?, false, Some(&last)).await
}

async fn address_txs_mempool(
    State(s): State<AppState>,
    Param(a): Param<String>,
) -> Result<Json<Value>, Error> {
    mempool_json(&s, &parse_address(&s, &a)?).await
}

async fn address_utxo(
    State(s): State<AppState>,
    Param(a): Param<String>,
) -> Result<Response, Error> {
    utxo_json(&s, &parse_address(&s, &a)?).await
}

async fn scripthash_stats(
    State(s): State<AppState>,
    Param(h): Param<String>,
) -> Result<Json<Value>, Error> {
    let script = parse_scripthash(&h)?;
    stats_json(&s, "scripthash", &script.to_string(), &script).await
}

async fn scripthash_txs(
    State(s): State<AppState>,
    Param(h): Param<String>,
) -> Result<Json<Value>, Error> {
    history_json(&s, &parse_scripthash(&h)?, true, None).await
}

async fn scripthash_txs_chain_first(
    State(s): State<AppState>,
    Param(h): Param<String>,
) -> Result<Json<Value>, Error> {
    history_json(&s, &parse_scripthash(&h)?, false, None).await
}

async fn scripthash_txs_chain(
    State(s): State<AppState>,
    Param((h, last)): Param<(String, String)>,
) -> Result<Json<Value>, Error> {
    history_json(&s, &parse_scripthash(&h)?, false, Some(&last)).await
}

async fn scripthash_txs_mempool(
    State(s): State<AppState>,
    Param(h): Param<String>,
) -> Result<Json<Value>, Error> {
    mempool_json(&s, &parse_scripthash(&h)?).await
}

async fn scripthash_utxo(
    State(s): State<AppState>,
    Param(h): Param<String>,
) -> Result<Response, Error> {
    utxo_json(&s, &parse_scripthash(&h)?).await
}

// --- fees and mempool ---

async fn fee_estimates(State(s): State<AppState>) -> Result<Json<Value>, Error> {
    let estimates = s.backend().fee_estimates().await?;
    Ok(Json(Value::Object(
        estimates
            .into_iter()
            .map(|(target, rate)| (target.to_string(), json!(rate)))
            .collect(),
    )))
}

async fn mempool_txids(State(s): State<AppState>) -> Result<Json<Vec<Hash256>>, Error> {
    Ok(Json(s.backend().mempool_txids().await?))
}

// --- ROT endpoints ---

async fn info(State(s): State<AppState>) -> Result<Response, Error> {
    let signed = Signed::sign(&s.inner.identity, &s.server_info())?;
    Ok(Json(signed).into_response())
}

#[derive(Deserialize)]
struct ChallengeQuery {
    nonce: Option<String>,
}

async fn challenge(
    State(s): State<AppState>,
    query: Result<Query<ChallengeQuery>, QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|rejection| Error::BadRequest(rejection.body_text()))?;
    let nonce = q
        .nonce
        .ok_or_else(|| Error::BadRequest("missing nonce query parameter".into()))?;
    let request = ChallengeRequest {
        nonce: nonce.parse()?,
    };
    let answer = ChallengeAnswer {
        nonce: request.nonce,
        time: unix_now(),
    };
    Ok((
        StatusCode::OK,
        Json(Signed::sign(&s.inner.identity, &answer)?),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use rot_proto::message::{BackendKind, IndexProgress, Nonce};
    use rot_proto::{Coins, MerkleProof, Network};
    use tower::ServiceExt;

    use super::*;
    use crate::backend::{BlockStatus, BlockSummary, OutSpend, Tip, TxStatus, Utxo};

    /// A backend that knows nothing: every lookup is a 404, so these tests see only what
    /// the HTTP layer itself decides.
    #[derive(Debug)]
    struct EmptyBackend(tokio::sync::watch::Sender<Tip>);

    fn unknown<T>() -> Result<T, Error> {
        Err(Error::NotFound("unknown".into()))
    }

    #[async_trait]
    impl Backend for EmptyBackend {
        fn kind(&self) -> BackendKind {
            BackendKind::Native
        }
        fn capabilities(&self) -> Vec<String> {
            Vec::new()
        }
        fn tips(&self) -> tokio::sync::watch::Receiver<Tip> {
            self.0.subscribe()
        }
        fn progress(&self) -> IndexProgress {
            IndexProgress::default()
        }
        async fn block_hash(&self, _: u32) -> Result<Hash256, Error> {
            unknown()
        }
        async fn block(&self, _: &Hash256) -> Result<BlockSummary, Error> {
            unknown()
        }
        async fn block_status(&self, _: &Hash256) -> Result<BlockStatus, Error> {
            unknown()
        }
        async fn block_txids(&self, _: &Hash256) -> Result<Vec<Hash256>, Error> {
            unknown()
        }
        async fn transactions(&self, _: &[Hash256]) -> Result<Vec<Vec<u8>>, Error> {
            unknown()
        }
        async fn tx_statuses(&self, _: &[Hash256]) -> Result<Vec<TxStatus>, Error> {
            unknown()
        }
        async fn merkle_proof(&self, _: &Hash256) -> Result<MerkleProof, Error> {
            unknown()
        }
        async fn outspends(&self, _: &Hash256, _: u32) -> Result<Vec<OutSpend>, Error> {
            unknown()
        }
        async fn script_stats(&self, _: &ScriptHash) -> Result<(ScriptStats, ScriptStats), Error> {
            Ok(Default::default())
        }
        async fn script_history(
            &self,
            _: &ScriptHash,
            _: Option<&Hash256>,
            _: usize,
        ) -> Result<Vec<Hash256>, Error> {
            Ok(Vec::new())
        }
        async fn script_mempool(&self, _: &ScriptHash, _: usize) -> Result<Vec<Hash256>, Error> {
            Ok(Vec::new())
        }
        async fn script_utxos(&self, _: &ScriptHash) -> Result<Vec<Utxo>, Error> {
            Ok(Vec::new())
        }
        async fn broadcast(&self, _: &[u8]) -> Result<Hash256, Error> {
            unknown()
        }
        async fn fee_estimates(&self) -> Result<BTreeMap<u16, f64>, Error> {
            Ok(BTreeMap::new())
        }
        async fn mempool_txids(&self) -> Result<Vec<Hash256>, Error> {
            Ok(Vec::new())
        }
    }

    fn router() -> (Router, Identity) {
        let profile = Coins::builtin()
            .get("LTC", Network::Regtest)
            .unwrap()
            .clone();
        let identity = Identity::from_seed([7; 32]);
        let backend = Arc::new(EmptyBackend(tokio::sync::watch::channel(Tip::default()).0));
        let state = AppState::new(
            backend,
            profile,
            Identity::from_seed([7; 32]),
            None,
            Standings::default(),
        );
        (app(state, Duration::from_secs(5)), identity)
    }

    async fn send(method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let response = router().0.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn client_mistakes_get_the_shared_error_body() {
        let zeros = "0".repeat(64);
        for (method, uri, body, status, code) in [
            ("GET", "/nope".to_owned(), Vec::new(), 404, "not_found"),
            (
                "POST",
                "/blocks/tip/height".to_owned(),
                Vec::new(),
                405,
                "method_not_allowed",
            ),
            ("GET", "/tx/xyz".to_owned(), Vec::new(), 400, "bad_request"),
            ("GET", format!("/tx/{zeros}"), Vec::new(), 404, "not_found"),
            (
                "GET",
                "/block-height/x".to_owned(),
                Vec::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/address/nope".to_owned(),
                Vec::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/scripthash/nope/utxo".to_owned(),
                Vec::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                "/rot/v1/challenge".to_owned(),
                Vec::new(),
                400,
                "bad_request",
            ),
            ("POST", "/tx".to_owned(), b"zz".to_vec(), 400, "bad_request"),
            // Found by fuzzing: these got axum's plain-text rejections.
            (
                "GET",
                "/block-height/%80".to_owned(),
                Vec::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                format!("/tx/{zeros}/outspend/%FF"),
                Vec::new(),
                400,
                "bad_request",
            ),
            (
                "GET",
                format!("/rot/v1/challenge?nonce={zeros}&nonce={zeros}"),
                Vec::new(),
                400,
                "bad_request",
            ),
            (
                "POST",
                "/tx".to_owned(),
                vec![b'0'; MAX_BODY_BYTES + 2],
                413,
                "payload_too_large",
            ),
        ] {
            let (got, body) = send(method, &uri, body).await;
            assert_eq!(got.as_u16(), status, "{method} {uri}: {body}");
            assert_eq!(body["error"]["code"], json!(code), "{method} {uri}: {body}");
            assert!(body["error"]["message"].is_string(), "{body}");
        }
    }

    #[tokio::test]
    async fn challenge_answer_is_signed_and_echoes_the_nonce() {
        let nonce = Nonce::random().unwrap();
        let (status, body) = send(
            "GET",
            &format!("/rot/v1/challenge?nonce={nonce}"),
            Vec::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let signed: Signed<ChallengeAnswer> = serde_json::from_value(body).unwrap();
        assert_eq!(signed.verify().unwrap().nonce, nonce);
        assert_eq!(signed.signer().unwrap(), router().1.public_key());
    }
}
