//! Async JSON-RPC client for the coin's full node (Bitcoin Core / Litecoin Core family).
//!
//! The indexer and the HTTP API talk to the node only through [`NodeRpc`]: it owns the
//! keep-alive connection pool, the credentials (user/password or the node's cookie file, re-read
//! when the node restarts), JSON-RPC batching, and the mapping of node failures onto distinct
//! [`Error`] variants so callers can answer 404 / 400 / 503 precisely.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use rot_proto::Hash256;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Error;

/// How long one HTTP request (connect, send, whole answer) may take unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Upper bound on one response body. A batch of the largest blocks stays far below it; the cap
/// only stops a broken or hostile endpoint from exhausting memory.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// The confirmation targets (in blocks) of Esplora's `GET /fee-estimates`.
pub const ESPLORA_FEE_TARGETS: [u16; 28] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 144,
    504, 1008,
];

/// Establishing a TCP connection to a reachable node is instant; waiting longer only delays
/// the "unreachable" answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle keep-alive connections are dropped before the node's own idle limit
/// (`-rpcservertimeout`, 30 s by default) so a request never races the node closing one.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// First pause of [`NodeRpc::wait_ready`]; doubles after every failed attempt.
const READY_FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest pause of [`NodeRpc::wait_ready`], so a node that comes back is noticed soon.
const READY_MAX_RETRY: Duration = Duration::from_secs(10);
/// Largest buffer reserved up front for a response body.
const INITIAL_BODY_CAPACITY: u64 = 16 * 1024 * 1024;
/// How much of a non-JSON body to quote in an error message.
const BODY_SNIPPET_CHARS: usize = 200;

// Bitcoin Core RPC error codes (src/rpc/protocol.h) that callers need to tell apart.
const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;
const RPC_INVALID_PARAMETER: i64 = -8;
const RPC_DESERIALIZATION_ERROR: i64 = -22;
const RPC_VERIFY_ERROR: i64 = -25;
const RPC_VERIFY_REJECTED: i64 = -26;
const RPC_VERIFY_ALREADY_IN_CHAIN: i64 = -27;
const RPC_IN_WARMUP: i64 = -28;

/// The network the node runs, which decides where it writes its cookie file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeNetwork {
    /// Main network: cookie in the datadir itself.
    Main,
    /// Test network: `testnet4/` for Litecoin Core, `testnet3/` for Bitcoin Core and most forks.
    Test,
    /// Signet: `signet/`.
    Signet,
    /// Regression test network: `regtest/`.
    Regtest,
}

impl NodeNetwork {
    /// Where the node's default cookie may be, most likely first.
    fn cookie_candidates(self, datadir: &Path) -> Vec<PathBuf> {
        let subdirs: &[&str] = match self {
            Self::Main => &[""],
            Self::Test => &["testnet4", "testnet3"],
            Self::Signet => &["signet"],
            Self::Regtest => &["regtest"],
        };
        subdirs
            .iter()
            .map(|subdir| datadir.join(subdir).join(".cookie"))
            .collect()
    }
}

/// How to authenticate to the node's RPC server.
#[derive(Clone, PartialEq, Eq)]
pub enum NodeAuth {
    /// `-rpcuser` / `-rpcpassword` (or an `-rpcauth` entry).
    UserPassword {
        /// RPC user name.
        user: String,
        /// RPC password.
        password: String,
    },
    /// A cookie file at an explicit path (`-rpccookiefile`).
    CookieFile(PathBuf),
    /// The node's default cookie file inside its data directory for `network`.
    DatadirCookie {
        /// The node's `-datadir`.
        datadir: PathBuf,
        /// The network the node runs.
        network: NodeNetwork,
    },
}

impl std::fmt::Debug for NodeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .finish_non_exhaustive(),
            Self::CookieFile(path) => f.debug_tuple("CookieFile").field(path).finish(),
            Self::DatadirCookie { datadir, network } => f
                .debug_struct("DatadirCookie")
                .field("datadir", datadir)
                .field("network", network)
                .finish(),
        }
    }
}

/// One user/password pair as sent in the Basic authorization header.
#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One call inside a [`NodeRpc::batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCall {
    /// RPC method name, e.g. `getblockhash`.
    pub method: String,
    /// Positional parameters as a JSON array.
    pub params: Value,
}

impl RpcCall {
    /// A call of `method` with positional `params`.
    pub fn new(method: &str, params: Value) -> Self {
        Self {
            method: method.to_owned(),
            params,
        }
    }
}

/// Answer of `getblockchaininfo`, reduced to what ROT needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BlockchainInfo {
    /// Network name as the node prints it: `main`, `test`, `signet`, `regtest`.
    pub chain: String,
    /// Height of the best fully validated block.
    pub blocks: u32,
    /// Height of the best known header.
    pub headers: u32,
    /// Hash of the best fully validated block.
    #[serde(rename = "bestblockhash")]
    pub best_block_hash: Hash256,
    /// True while the node is catching up; absent (false) on very old forks.
    #[serde(rename = "initialblockdownload", default)]
    pub initial_block_download: bool,
    /// Estimated fraction of the chain verified, 0.0 to 1.0.
    #[serde(rename = "verificationprogress", default)]
    pub verification_progress: f64,
}

/// Answer of `getblockheader <hash> true`, reduced to chain position.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BlockHeaderInfo {
    /// The block's hash.
    pub hash: Hash256,
    /// The block's height.
    pub height: u32,
    /// Confirmations; -1 when the block is not in the best chain (reorged out).
    pub confirmations: i64,
    /// Parent block; absent for the genesis block.
    #[serde(rename = "previousblockhash", default)]
    pub previous_block_hash: Option<Hash256>,
    /// Child in the best chain; absent at the tip or when the block is not in the best chain.
    #[serde(rename = "nextblockhash", default)]
    pub next_block_hash: Option<Hash256>,
}

/// Answer of `getnetworkinfo`, reduced to the node's identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInfo {
    /// Numeric client version, e.g. 210201 for 0.21.2.1.
    pub version: u64,
    /// User agent, e.g. `/LitecoinCore:0.21.2.1/`.
    pub subversion: String,
    /// P2P protocol version.
    #[serde(rename = "protocolversion")]
    pub protocol_version: u32,
}

/// One transaction of the node's mempool (`getmempoolentry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolEntry {
    /// Virtual size in vbytes (plain size on nodes without segwit).
    pub vsize: u64,
    /// Weight units, when the node reports them.
    pub weight: Option<u64>,
    /// The transaction's own fee in satoshis.
    pub fee_sat: u64,
    /// When the transaction entered the mempool (unix seconds).
    pub time: u64,
    /// Chain height when it entered the mempool.
    pub height: u32,
    /// Unconfirmed parents.
    pub depends: Vec<Hash256>,
}

/// `getmempoolentry` as different node versions spell it.
#[derive(Deserialize)]
struct RawMempoolEntry {
    vsize: Option<u64>,
    size: Option<u64>,
    weight: Option<u64>,
    fees: Option<RawMempoolFees>,
    fee: Option<f64>,
    time: u64,
    height: u32,
    #[serde(default)]
    depends: Vec<Hash256>,
}

/// The `fees` object of newer nodes; amounts in coins.
#[derive(Deserialize)]
struct RawMempoolFees {
    base: f64,
}

/// Answer of `estimatesmartfee`; `feerate` (coins per 1000 vbytes) is absent without data.
#[derive(Deserialize)]
struct RawFeeEstimate {
    feerate: Option<f64>,
}

/// One JSON-RPC response object.
#[derive(Deserialize)]
struct RpcResponse {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<RpcErrorBody>,
    #[serde(default)]
    id: Value,
}

/// The `error` member of a JSON-RPC response.
#[derive(Deserialize)]
struct RpcErrorBody {
    code: i64,
    message: String,
}

/// Async JSON-RPC client of one coin node. Cheap to clone; clones share the connection pool
/// and credentials, so several requests (e.g. block batches fetched ahead) can be in flight
/// at once.
#[derive(Debug, Clone)]
pub struct NodeRpc {
    shared: Arc<Shared>,
    timeout: Duration,
}

/// State shared by all clones of a [`NodeRpc`].
#[derive(Debug)]
struct Shared {
    http: reqwest::Client,
    url: reqwest::Url,
    auth: NodeAuth,
    /// Credentials in use; for cookie auth loaded lazily and replaced when the node restarts.
    credentials: Mutex<Option<Credentials>>,
    next_id: AtomicU64,
}

impl NodeRpc {
    /// A client of the node at `url` (e.g. `http://127.0.0.1:9332/`). Does not contact the
    /// node; use [`NodeRpc::wait_ready`] for that.
    pub fn new(url: &str, auth: NodeAuth) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::NodeUrlInvalid {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // Keeps secrets out of every error message and log line that prints the URL.
            return Err(invalid(
                "put credentials in the RPC auth settings, not the URL",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| invalid(&root_cause(&e)))?;
        let credentials = match &auth {
            NodeAuth::UserPassword { user, password } => Some(Credentials {
                user: user.clone(),
                password: password.clone(),
            }),
            NodeAuth::CookieFile(_) | NodeAuth::DatadirCookie { .. } => None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                http,
                url: parsed,
                auth,
                credentials: Mutex::new(credentials),
                next_id: AtomicU64::new(1),
            }),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with a different per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The node's RPC URL.
    pub fn url(&self) -> &str {
        self.shared.url.as_str()
    }

    /// Calls `method` with positional `params` (a JSON array) and decodes the result.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, Error> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let body = self.post(method, &request).await?;
        let response: RpcResponse =
            serde_json::from_slice(&body).map_err(|e| malformed(method, not_json(&e, &body)))?;
        if response.id.as_u64() != Some(id) {
            return Err(malformed(
                method,
                format!("answer to id {} instead of {id}", response.id),
            ));
        }
        decode_response(method, response)
    }

    /// Sends all `calls` in one HTTP request. The outer error is a transport or protocol
    /// failure of the whole request; inner results are per call, in the order of `calls`.
    pub async fn batch<T: DeserializeOwned>(
        &self,
        calls: &[RpcCall],
    ) -> Result<Vec<Result<T, Error>>, Error> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let count = calls.len() as u64;
        let first_id = self.shared.next_id.fetch_add(count, Ordering::Relaxed);
        let request: Vec<Value> = calls
            .iter()
            .zip(first_id..)
            .map(|(call, id)| {
                json!({"jsonrpc": "1.0", "id": id, "method": call.method, "params": call.params})
            })
            .collect();
        let label = "batch";
        let body = self.post(label, &Value::Array(request)).await?;
        let responses: Vec<RpcResponse> = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(|e| malformed(label, e.to_string()))?,
            // A node that cannot parse the batch answers with one error object.
            Ok(single) => {
                let response: RpcResponse =
                    serde_json::from_value(single).map_err(|e| malformed(label, e.to_string()))?;
                return Err(match response.error {
                    Some(error) => rpc_error(label, error),
                    None => malformed(label, "expected an array of responses".to_owned()),
                });
            }
            Err(e) => return Err(malformed(label, not_json(&e, &body))),
        };
        let mut slots: Vec<Option<RpcResponse>> = calls.iter().map(|_| None).collect();
        for response in responses {
            let slot = response
                .id
                .as_u64()
                .and_then(|id| id.checked_sub(first_id))
                .and_then(|index| slots.get_mut(usize::try_from(index).ok()?));
            match slot {
                Some(slot) => *slot = Some(response),
                None => {
                    return Err(malformed(
                        label,
                        format!("answer with unknown id {}", response.id),
                    ));
                }
            }
        }
        Ok(calls
            .iter()
            .zip(slots)
            .map(|(call, slot)| match slot {
                Some(response) => decode_response(&call.method, response),
                None => Err(malformed(&call.method, "no answer in the batch".to_owned())),
            })
            .collect())
    }

    /// Waits until the node answers `getblockchaininfo`, retrying with exponential back-off
    /// while it is unreachable, has not written its cookie yet, or is warming up. Logs one
    /// warning per failed attempt. Other errors (bad credentials, ...) are returned at once.
    pub async fn wait_ready(&self, max_wait: Duration) -> Result<BlockchainInfo, Error> {
        let deadline = Instant::now() + max_wait;
        let mut delay = READY_FIRST_RETRY;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let error = match self.get_blockchain_info().await {
                Ok(info) => {
                    if attempt > 1 {
                        tracing::info!(
                            "coin node at {} ready after {attempt} attempts",
                            self.url()
                        );
                    }
                    return Ok(info);
                }
                Err(error) if is_not_ready(&error) => error,
                Err(error) => return Err(error),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(error);
            }
            let pause = Duration::from_millis(delay.min(remaining).as_millis() as u64);
            tracing::warn!(
                "coin node not ready (attempt {attempt}): {error}; retrying in {pause:?}"
            );
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(READY_MAX_RETRY);
        }
    }

    /// `getblockchaininfo`.
    pub async fn get_blockchain_info(&self) -> Result<BlockchainInfo, Error> {
        self.call("getblockchaininfo", json!([])).await
    }

    /// `getbestblockhash`.
    pub async fn get_best_block_hash(&self) -> Result<Hash256, Error> {
        self.call("getbestblockhash", json!([])).await
    }

    /// `getblockhash <height>`: the best chain's block at `height`; an out-of-range height is
    /// [`Error::NodeNotFound`].
    pub async fn get_block_hash(&self, height: u32) -> Result<Hash256, Error> {
        self.call("getblockhash", json!([height])).await
    }

    /// Block hashes of the best chain for all `heights`, in one batch. Fails as a whole if
    /// any height is unknown.
    pub async fn get_block_hashes(&self, heights: Range<u32>) -> Result<Vec<Hash256>, Error> {
        let calls: Vec<RpcCall> = heights
            .map(|height| RpcCall::new("getblockhash", json!([height])))
            .collect();
        self.batch(&calls).await?.into_iter().collect()
    }

    /// The serialized block (`getblock <hash> 0`).
    pub async fn get_block_raw(&self, hash: &Hash256) -> Result<Vec<u8>, Error> {
        let block_hex: String = self.call("getblock", json!([hash, 0])).await?;
        decode_hex("getblock", &block_hex)
    }

    /// Serialized blocks for all `hashes`, in one batch and in the same order. Fails as a
    /// whole if any block is unknown.
    pub async fn get_blocks_raw(&self, hashes: &[Hash256]) -> Result<Vec<Vec<u8>>, Error> {
        let calls: Vec<RpcCall> = hashes
            .iter()
            .map(|hash| RpcCall::new("getblock", json!([hash, 0])))
            .collect();
        self.batch::<String>(&calls)
            .await?
            .into_iter()
            .map(|block_hex| decode_hex("getblock", &block_hex?))
            .collect()
    }

    /// `getblockheader <hash> true`: the block's position relative to the best chain.
    pub async fn get_block_header(&self, hash: &Hash256) -> Result<BlockHeaderInfo, Error> {
        self.call("getblockheader", json!([hash, true])).await
    }

    /// The serialized transaction. With `block` given this works without `-txindex`;
    /// without it, only mempool transactions (or any with `-txindex`) are found.
    pub async fn get_raw_transaction(
        &self,
        txid: &Hash256,
        block: Option<&Hash256>,
    ) -> Result<Vec<u8>, Error> {
        let params = match block {
            Some(block) => json!([txid, false, block]),
            None => json!([txid, false]),
        };
        let tx_hex: String = self.call("getrawtransaction", params).await?;
        decode_hex("getrawtransaction", &tx_hex)
    }

    /// Serialized transactions for `(txid, block hash)` pairs, in one batch and in the same
    /// order; `None` as block hash asks the mempool. Every transaction must exist.
    pub async fn get_raw_transactions(
        &self,
        asks: &[(Hash256, Option<Hash256>)],
    ) -> Result<Vec<Vec<u8>>, Error> {
        self.raw_transactions_batch(asks)
            .await?
            .into_iter()
            .collect()
    }

    /// Mempool transactions by txid, in one batch; `None` for one that is (no longer) there.
    pub async fn get_mempool_transactions(
        &self,
        txids: &[Hash256],
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let asks: Vec<(Hash256, Option<Hash256>)> = txids.iter().map(|t| (*t, None)).collect();
        self.raw_transactions_batch(&asks)
            .await?
            .into_iter()
            .map(|result| match result {
                Ok(raw) => Ok(Some(raw)),
                Err(Error::NodeNotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }

    async fn raw_transactions_batch(
        &self,
        asks: &[(Hash256, Option<Hash256>)],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        let calls: Vec<RpcCall> = asks
            .iter()
            .map(|(txid, block)| match block {
                Some(block) => RpcCall::new("getrawtransaction", json!([txid, false, block])),
                None => RpcCall::new("getrawtransaction", json!([txid, false])),
            })
            .collect();
        Ok(self
            .batch::<String>(&calls)
            .await?
            .into_iter()
            .map(|tx_hex| decode_hex("getrawtransaction", &tx_hex?))
            .collect())
    }

    /// Txids of all mempool transactions (`getrawmempool false`).
    pub async fn get_raw_mempool(&self) -> Result<Vec<Hash256>, Error> {
        self.call("getrawmempool", json!([false])).await
    }

    /// One mempool transaction's size, fee and parents; [`Error::NodeNotFound`] if it is not
    /// (or no longer) in the mempool.
    pub async fn get_mempool_entry(&self, txid: &Hash256) -> Result<MempoolEntry, Error> {
        let method = "getmempoolentry";
        let raw: RawMempoolEntry = self.call(method, json!([txid])).await?;
        let fee_coins = raw
            .fees
            .map(|fees| fees.base)
            .or(raw.fee)
            .ok_or_else(|| malformed(method, "no fee".to_owned()))?;
        Ok(MempoolEntry {
            vsize: raw
                .vsize
                .or(raw.size)
                .ok_or_else(|| malformed(method, "no size".to_owned()))?,
            weight: raw.weight,
            fee_sat: coins_to_sat(method, fee_coins)?,
            time: raw.time,
            height: raw.height,
            depends: raw.depends,
        })
    }

    /// Submits a transaction (hex) to the node's mempool and relays it; returns its txid.
    /// A refusal is [`Error::NodeRejected`] carrying the node's reason.
    pub async fn send_raw_transaction(&self, tx_hex: &str) -> Result<Hash256, Error> {
        self.call("sendrawtransaction", json!([tx_hex])).await
    }

    /// Fee rate in sat/vB to confirm within `target` blocks (`estimatesmartfee`), or `None`
    /// while the node lacks data.
    pub async fn estimate_smart_fee(&self, target: u16) -> Result<Option<f64>, Error> {
        let estimate = self.call("estimatesmartfee", json!([target])).await?;
        fee_rate_sat_per_vbyte(estimate)
    }

    /// Fee rates (sat/vB) for all `targets` in one batch, as `(target, rate)` pairs; targets
    /// the node has no estimate for are left out, as Esplora does.
    pub async fn estimate_smart_fees(&self, targets: &[u16]) -> Result<Vec<(u16, f64)>, Error> {
        let calls: Vec<RpcCall> = targets
            .iter()
            .map(|target| RpcCall::new("estimatesmartfee", json!([target])))
            .collect();
        let mut rates = Vec::with_capacity(targets.len());
        for (target, estimate) in targets.iter().zip(self.batch(&calls).await?) {
            if let Some(rate) = fee_rate_sat_per_vbyte(estimate?)? {
                rates.push((*target, rate));
            }
        }
        Ok(rates)
    }

    /// `getnetworkinfo`: the node's version and user agent.
    pub async fn get_network_info(&self) -> Result<NetworkInfo, Error> {
        self.call("getnetworkinfo", json!([])).await
    }

    /// POSTs one JSON-RPC request (single or batch) and returns the body of any answer that
    /// carries JSON-RPC content. Retries once with a fresh cookie after HTTP 401.
    async fn post(&self, label: &str, request: &Value) -> Result<Vec<u8>, Error> {
        let body = serde_json::to_vec(request).map_err(|e| malformed(label, e.to_string()))?;
        let mut cookie_reloaded = false;
        loop {
            let credentials = self.credentials(cookie_reloaded).await?;
            let response = self
                .shared
                .http
                .post(self.shared.url.clone())
                .basic_auth(&credentials.user, Some(&credentials.password))
                .header(CONTENT_TYPE, "application/json")
                .timeout(self.timeout)
                .body(body.clone())
                .send()
                .await
                .map_err(|e| self.transport_error(&e))?;
            match response.status() {
                StatusCode::UNAUTHORIZED if self.uses_cookie() && !cookie_reloaded => {
                    // The node writes a new cookie each time it starts.
                    cookie_reloaded = true;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(self.auth_failed("wrong RPC user/password or stale cookie"));
                }
                StatusCode::FORBIDDEN => {
                    return Err(self.auth_failed("forbidden: check the node's -rpcallowip"));
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    let body = self.read_body(label, response).await?;
                    return Err(Error::NodeUnreachable {
                        url: self.url().to_owned(),
                        reason: format!("node busy (HTTP 503): {}", snippet(&body)),
                    });
                }
                _ => return self.read_body(label, response).await,
            }
        }
    }

    /// Reads a response body, refusing more than [`MAX_RESPONSE_BYTES`].
    async fn read_body(
        &self,
        label: &str,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, Error> {
        let too_large = || {
            malformed(
                label,
                format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
            )
        };
        let announced = response.content_length().unwrap_or(0);
        if announced > MAX_RESPONSE_BYTES as u64 {
            return Err(too_large());
        }
        // The announced length is only a hint: grow past the initial buffer as data arrives.
        let mut body = Vec::with_capacity(announced.min(INITIAL_BODY_CAPACITY) as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Current credentials; for cookie auth reads the cookie file when none is cached or
    /// `reload` is set.
    async fn credentials(&self, reload: bool) -> Result<Credentials, Error> {
        if !reload {
            let cached = self.shared.credentials.lock().map(|guard| guard.clone());
            if let Ok(Some(credentials)) = cached {
                return Ok(credentials);
            }
        }
        let credentials = match &self.shared.auth {
            NodeAuth::UserPassword { user, password } => Credentials {
                user: user.clone(),
                password: password.clone(),
            },
            NodeAuth::CookieFile(path) => read_cookie(path).await?,
            NodeAuth::DatadirCookie { datadir, network } => {
                read_first_cookie(&network.cookie_candidates(datadir)).await?
            }
        };
        if let Ok(mut guard) = self.shared.credentials.lock() {
            *guard = Some(credentials.clone());
        }
        Ok(credentials)
    }

    fn uses_cookie(&self) -> bool {
        !matches!(self.shared.auth, NodeAuth::UserPassword { .. })
    }

    fn auth_failed(&self, reason: &str) -> Error {
        Error::NodeAuthFailed {
            url: self.url().to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// Maps a failed HTTP exchange to [`Error::NodeUnreachable`], naming the root cause.
    fn transport_error(&self, error: &reqwest::Error) -> Error {
        let reason = if error.is_timeout() {
            format!("no complete answer within {:?}", self.timeout)
        } else if error.is_connect() {
            format!("cannot connect: {}", root_cause(error))
        } else {
            root_cause(error)
        };
        Error::NodeUnreachable {
            url: self.url().to_owned(),
            reason,
        }
    }
}

/// Reads the first cookie file of `candidates` that exists.
async fn read_first_cookie(candidates: &[PathBuf]) -> Result<Credentials, Error> {
    for path in candidates {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return read_cookie(path).await;
        }
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(Error::NodeCookieUnreadable {
        path: candidates.first().cloned().unwrap_or_default(),
        reason: format!("not found (looked for {})", tried.join(", ")),
    })
}

/// Reads a `user:password` cookie file as the node writes it.
async fn read_cookie(path: &Path) -> Result<Credentials, Error> {
    let unreadable = |reason: String| Error::NodeCookieUnreadable {
        path: path.to_owned(),
        reason,
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    let (user, password) = text
        .trim_end()
        .split_once(':')
        .ok_or_else(|| unreadable("expected user:password".to_owned()))?;
    Ok(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// Turns one JSON-RPC response into the decoded result or the classified node error.
fn decode_response<T: DeserializeOwned>(method: &str, response: RpcResponse) -> Result<T, Error> {
    if let Some(error) = response.error {
        return Err(rpc_error(method, error));
    }
    serde_json::from_value(response.result).map_err(|e| malformed(method, e.to_string()))
}

/// Classifies a node error so callers can answer 404 (not found), 400 (rejected) or 503
/// (warming up) without knowing RPC codes.
fn rpc_error(method: &str, error: RpcErrorBody) -> Error {
    let RpcErrorBody { code, message } = error;
    match (method, code) {
        (_, RPC_IN_WARMUP) => Error::NodeWarmingUp { message },
        (_, RPC_INVALID_ADDRESS_OR_KEY) | ("getblockhash", RPC_INVALID_PARAMETER) => {
            Error::NodeNotFound {
                method: method.to_owned(),
                message,
            }
        }
        (
            "sendrawtransaction",
            RPC_DESERIALIZATION_ERROR
            | RPC_VERIFY_ERROR
            | RPC_VERIFY_REJECTED
            | RPC_VERIFY_ALREADY_IN_CHAIN,
        ) => Error::NodeRejected { code, message },
        _ => Error::NodeRpc {
            method: method.to_owned(),
            code,
            message,
        },
    }
}

/// True for failures that go away by themselves while a node starts.
fn is_not_ready(error: &Error) -> bool {
    matches!(
        error,
        Error::NodeUnreachable { .. }
            | Error::NodeWarmingUp { .. }
            | Error::NodeCookieUnreadable { .. }
    )
}

fn decode_hex(method: &str, text: &str) -> Result<Vec<u8>, Error> {
    hex::decode(text).map_err(|e| malformed(method, format!("bad hex: {e}")))
}

/// Converts `estimatesmartfee`'s coins per 1000 vbytes to sat/vB.
fn fee_rate_sat_per_vbyte(estimate: RawFeeEstimate) -> Result<Option<f64>, Error> {
    match estimate.feerate {
        Some(rate) if rate.is_finite() && rate >= 0.0 => Ok(Some(rate * 1e8 / 1000.0)),
        Some(rate) => Err(malformed("estimatesmartfee", format!("fee rate {rate}"))),
        None => Ok(None),
    }
}

/// Converts a coin amount as the node prints it (8 decimals) to satoshis.
fn coins_to_sat(method: &str, coins: f64) -> Result<u64, Error> {
    let sat = (coins * 1e8).round();
    if sat.is_finite() && (0.0..=u64::MAX as f64).contains(&sat) {
        Ok(sat as u64)
    } else {
        Err(malformed(method, format!("amount {coins}")))
    }
}

fn malformed(method: &str, reason: String) -> Error {
    Error::NodeMalformed {
        method: method.to_owned(),
        reason,
    }
}

/// Describes a body that should have been JSON, quoting its start (e.g. an HTML error page).
fn not_json(error: &serde_json::Error, body: &[u8]) -> String {
    format!("not JSON ({error}): {}", snippet(body))
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(BODY_SNIPPET_CHARS)
        .collect()
}

/// The innermost cause of an error: reqwest's own message ("error sending request for url
/// ...") hides what happened (connection refused, reset, ...).
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_body(code: i64) -> RpcErrorBody {
        RpcErrorBody {
            code,
            message: "m".to_owned(),
        }
    }

    #[test]
    fn classifies_node_errors() {
        assert!(matches!(
            rpc_error("getblock", error_body(-5)),
            Error::NodeNotFound { .. }
        ));
        assert!(matches!(
            rpc_error("getblockhash", error_body(-8)),
            Error::NodeNotFound { .. }
        ));
        assert!(matches!(
            rpc_error("getblock", error_body(-8)),
            Error::NodeRpc { code: -8, .. }
        ));
        assert!(matches!(
            rpc_error("sendrawtransaction", error_body(-26)),
            Error::NodeRejected { code: -26, .. }
        ));
        assert!(matches!(
            rpc_error("getblock", error_body(-28)),
            Error::NodeWarmingUp { .. }
        ));
    }

    #[test]
    fn cookie_locations_per_network() {
        let datadir = Path::new("/d");
        assert_eq!(
            NodeNetwork::Main.cookie_candidates(datadir),
            [PathBuf::from("/d/.cookie")]
        );
        assert_eq!(
            NodeNetwork::Test.cookie_candidates(datadir),
            [
                PathBuf::from("/d/testnet4/.cookie"),
                PathBuf::from("/d/testnet3/.cookie")
            ]
        );
        assert_eq!(
            NodeNetwork::Regtest.cookie_candidates(datadir),
            [PathBuf::from("/d/regtest/.cookie")]
        );
    }

    #[test]
    fn converts_amounts_and_fee_rates() {
        assert_eq!(coins_to_sat("m", 0.0000141).unwrap(), 1410);
        assert_eq!(
            coins_to_sat("m", 21_000_000.0).unwrap(),
            2_100_000_000_000_000
        );
        assert!(coins_to_sat("m", -1.0).is_err());
        let rate = fee_rate_sat_per_vbyte(RawFeeEstimate {
            feerate: Some(0.0001),
        })
        .unwrap();
        assert_eq!(rate, Some(10.0));
    }

    #[test]
    fn rejects_urls_with_credentials() {
        let auth = NodeAuth::CookieFile(PathBuf::from("/nonexistent"));
        assert!(matches!(
            NodeRpc::new("http://u:p@127.0.0.1:1/", auth.clone()),
            Err(Error::NodeUrlInvalid { .. })
        ));
        assert!(matches!(
            NodeRpc::new("ftp://127.0.0.1:1/", auth),
            Err(Error::NodeUrlInvalid { .. })
        ));
    }

    #[test]
    fn debug_hides_passwords() {
        let auth = NodeAuth::UserPassword {
            user: "u".to_owned(),
            password: "secret".to_owned(),
        };
        assert!(!format!("{auth:?}").contains("secret"));
    }
}
