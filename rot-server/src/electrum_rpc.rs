//! Async client for one Electrum-protocol server (ElectrumX, Fulcrum, electrs): newline-delimited
//! JSON-RPC over TCP or TLS, the transport of the electrum backend.
//!
//! One connection is shared by every caller and requests are pipelined on it: each request is
//! written as soon as it is made and answers are matched back by id, so a batch of a thousand
//! lookups costs one round trip. Each answer keeps its own error, so one unknown transaction in
//! a batch does not hide the others. The connection is checked when opened (protocol version,
//! genesis hash of the coin, header subscription) and reopened on demand after a failure, with
//! exponential back-off between attempts so a server that is down is not hammered.
//!
//! Why not the `electrum-client` crate: it is blocking (one OS thread per request in flight),
//! drops every answer of a batch when one item fails, turns an error answer into `null` when
//! another thread happens to read it, loses subscriptions silently when it reconnects, and
//! parses transactions with the `bitcoin` crate, which cannot read Litecoin MWEB or AuxPoW
//! coins' data anyway.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rot_proto::Hash256;
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf,
    WriteHalf,
};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::Error;

/// The protocol range spoken: 1.4 has every call the backend needs; up to 1.6 is accepted so
/// servers that dropped 1.4 still talk to us (1.6 only changes the shape of header runs).
const PROTOCOL_RANGE: [&str; 2] = ["1.4", "1.6"];
/// Connecting to a reachable server is instant; waiting longer only delays the 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one request (or batch): ElectrumX's own request timeout is 30 s.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after the first failed connection attempt; doubles up to [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between connection attempts, so a restarted server is used again soon.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Connections kept to the server. ElectrumX 2.0 holds a small answer back for up to a
/// second after its previous send on the same connection (padding against traffic analysis),
/// and runs at most ten requests per connection at once by default: spreading requests over
/// a few connections, to the one the server has been quiet on longest, keeps answers prompt at
/// light load. Few enough for servers that limit connections per address (Fulcrum: 12,
/// loopback exempt).
const POOL_SIZE: usize = 8;
/// Bound on one answer line: a large transaction in hex, or 2016 headers, stay far below;
/// the cap stops a broken server from exhausting memory.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Where the upstream server is: `tcp://host:port` or `ssl://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectrumUrl {
    /// Speak TLS (`ssl://`).
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl ElectrumUrl {
    /// Parses `tcp://host:port` or `ssl://host:port`; errors name `ROT_ELECTRUM_URL`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::Config(format!("ROT_ELECTRUM_URL {text:?}: {why}"));
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("expected tcp://host:port or ssl://host:port"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => false,
            "ssl" | "tls" => true,
            _ => return Err(invalid("the scheme must be tcp or ssl")),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("the port is missing"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| invalid("the port must be a number up to 65535"))?;
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ElectrumUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "ssl" } else { "tcp" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// An error answer of the server to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// JSON-RPC error code (ElectrumX: 1 bad request, 2 daemon error).
    pub code: i64,
    /// The server's message.
    pub message: String,
}

impl ServerError {
    /// Whether the server says the thing asked for does not exist (unknown transaction,
    /// position or height), as opposed to failing.
    pub fn is_not_found(&self) -> bool {
        let message = self.message.to_ascii_lowercase();
        message.contains("no such mempool or blockchain transaction")
            || message.contains("not found")
            || message.contains("no tx at position")
            || message.contains("out of range")
    }

    /// This answer as an [`Error`] of `method`.
    pub fn into_error(self, method: &str) -> Error {
        Error::ElectrumRpc {
            method: method.to_owned(),
            code: self.code,
            message: self.message,
        }
    }
}

/// One answer: the result, or the server's error for that request.
pub type Reply = Result<Value, ServerError>;

/// A byte stream to the server, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The client. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct ElectrumRpc {
    shared: Arc<Shared>,
}

impl fmt::Debug for ElectrumRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElectrumRpc")
            .field("url", &self.shared.label)
            .finish_non_exhaustive()
    }
}

struct Shared {
    url: ElectrumUrl,
    label: String,
    tls: Option<TlsConnector>,
    genesis: Hash256,
    slot: tokio::sync::Mutex<Slot>,
    /// Bumped on every header notification, new connection and lost connection.
    wakeups: watch::Sender<u64>,
}

/// The open connections and the reconnection schedule.
#[derive(Default)]
struct Slot {
    live: Vec<Arc<Connection>>,
    /// No new attempt before this instant after a failed one.
    next_attempt: Option<Instant>,
    backoff: Duration,
    last_error: String,
}

/// One open connection: the write half (locked per request or batch) and the state the
/// reader task shares.
struct Connection {
    writer: tokio::sync::Mutex<WriteHalf<Box<dyn Stream>>>,
    state: Arc<ConnectionState>,
    reader: tokio::task::JoinHandle<()>,
}

struct ConnectionState {
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// When the reader last received a line, to tell a slow answer from a dead connection.
    last_heard: Mutex<Instant>,
}

impl ConnectionState {
    /// Orders connections for the next request: those with nothing in flight first, then
    /// the one the server has been quiet on longest.
    fn busyness(&self) -> (usize, std::cmp::Reverse<Duration>) {
        let in_flight = self.pending.lock().expect("pending lock").len();
        let quiet = self.last_heard.lock().expect("heard lock").elapsed();
        (in_flight, std::cmp::Reverse(quiet))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl ElectrumRpc {
    /// A client for the server at `url` serving the chain of `genesis`. `ca_file` (PEM) lists
    /// the certificates to trust for `ssl://` instead of the system's roots, e.g. the
    /// server's self-signed one. Nothing is connected until the first call.
    pub fn new(url: ElectrumUrl, ca_file: Option<&Path>, genesis: Hash256) -> Result<Self, Error> {
        let tls = if url.tls {
            Some(tls_connector(ca_file)?)
        } else {
            None
        };
        Ok(Self {
            shared: Arc::new(Shared {
                label: url.to_string(),
                url,
                tls,
                genesis,
                slot: tokio::sync::Mutex::new(Slot {
                    backoff: RECONNECT_FIRST,
                    ..Slot::default()
                }),
                wakeups: watch::channel(0).0,
            }),
        })
    }

    /// The server's URL, for messages.
    pub fn url(&self) -> &str {
        &self.shared.label
    }

    /// Changes whenever the server announces a new tip, a connection opens or one is lost:
    /// the moments to look at the server's chain again.
    pub fn wakeups(&self) -> watch::Receiver<u64> {
        self.shared.wakeups.subscribe()
    }

    /// Connects now if not connected, checking the server as [`ElectrumRpc::call`] would.
    /// Used at start to fail early on a wrong server.
    pub async fn ensure_connected(&self) -> Result<(), Error> {
        self.connection().await.map(|_| ())
    }

    /// One request; an error answer becomes [`Error::ElectrumRpc`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        self.batch(method, vec![params])
            .await?
            .pop()
            .ok_or_else(|| malformed(method, "no answer".to_owned()))?
            .map_err(|e| e.into_error(method))
    }

    /// The same method with each of `params`, pipelined; answers in the order asked, each
    /// with its own error. Fails as a whole only when the connection does.
    pub async fn batch(&self, method: &str, params: Vec<Value>) -> Result<Vec<Reply>, Error> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let connection = self.connection().await?;
        match connection.request(method, params).await {
            Ok(replies) => Ok(replies),
            Err(reason) => {
                connection.close();
                self.shared.wakeups.send_modify(|n| *n += 1);
                Err(self.unreachable(reason))
            }
        }
    }

    fn unreachable(&self, reason: String) -> Error {
        Error::ElectrumUnreachable {
            url: self.shared.label.clone(),
            reason,
        }
    }

    /// A failed TLS handshake: an untrusted certificate is a setting to fix (not worth
    /// retrying), anything else a connection problem.
    fn tls_failure(&self, error: std::io::Error) -> Error {
        let rustls_error = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>());
        match rustls_error {
            Some(tokio_rustls::rustls::Error::InvalidCertificate(why)) => Error::Config(format!(
                "the TLS certificate of the Electrum server at {} is not trusted ({why:?}); \
                 set ROT_ELECTRUM_CA_FILE to the certificate (or its CA) in PEM",
                self.shared.label
            )),
            _ => self.unreachable(format!("TLS: {error}")),
        }
    }

    /// A connection to send on: the pool grows to [`POOL_SIZE`] while the back-off allows,
    /// and the connection the server has been quiet on longest is chosen (see [`POOL_SIZE`]).
    async fn connection(&self) -> Result<Arc<Connection>, Error> {
        let mut slot = self.shared.slot.lock().await;
        let before = slot.live.len();
        slot.live
            .retain(|connection| !connection.state.closed.load(Ordering::Acquire));
        if slot.live.len() < before {
            // Lost just now: try again at once, then back off.
            slot.next_attempt = None;
            slot.backoff = RECONNECT_FIRST;
            tracing::warn!(url = %self.shared.label, "connection to the Electrum server lost; reconnecting");
        }
        let now = Instant::now();
        let may_open = slot.next_attempt.is_none_or(|at| now >= at);
        if slot.live.len() < POOL_SIZE && may_open {
            match self.open().await {
                Ok(connection) => {
                    if slot.live.is_empty() {
                        tracing::info!(url = %self.shared.label, "connected to the Electrum server");
                        self.shared.wakeups.send_modify(|n| *n += 1);
                    }
                    slot.live.push(Arc::new(connection));
                    slot.next_attempt = None;
                    slot.backoff = RECONNECT_FIRST;
                }
                Err(error) => {
                    slot.last_error = error.to_string();
                    slot.next_attempt = Some(Instant::now() + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(RECONNECT_MAX);
                    if slot.live.is_empty() {
                        return Err(error);
                    }
                }
            }
        }
        if let Some(quietest) = slot.live.iter().min_by_key(|c| c.state.busyness()) {
            return Ok(quietest.clone());
        }
        let wait = slot.next_attempt.map_or(0, |at| (at - now).as_millis());
        Err(self.unreachable(format!("{}; next attempt in {wait} ms", slot.last_error)))
    }

    /// Opens and checks a connection: protocol version, the coin's genesis hash, and the
    /// header subscription (so the server notifies us of new tips).
    async fn open(&self) -> Result<Connection, Error> {
        let shared = &self.shared;
        let address = (shared.url.host.as_str(), shared.url.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| self.unreachable("connection timed out".to_owned()))?
            .map_err(|e| self.unreachable(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| self.unreachable(e.to_string()))?;
        let stream: Box<dyn Stream> = match &shared.tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = ServerName::try_from(shared.url.host.clone()).map_err(|e| {
                    Error::Config(format!("ROT_ELECTRUM_URL host {}: {e}", shared.url.host))
                })?;
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| self.unreachable("TLS handshake timed out".to_owned()))?
                    .map_err(|e| self.tls_failure(e))?;
                Box::new(tls)
            }
        };
        let connection = Connection::start(stream, shared.wakeups.clone());
        let request_one = |method: &'static str, params: Value| {
            let connection = &connection;
            async move {
                connection
                    .request(method, vec![params])
                    .await
                    .map_err(|reason| self.unreachable(format!("{method}: {reason}")))?
                    .pop()
                    .ok_or_else(|| malformed(method, "no answer".to_owned()))?
                    .map_err(|e| e.into_error(method))
            }
        };
        let check = async {
            let client = concat!("rot-server/", env!("CARGO_PKG_VERSION"));
            request_one("server.version", json!([client, PROTOCOL_RANGE])).await?;
            let features = request_one("server.features", json!([])).await?;
            let genesis = features
                .get("genesis_hash")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("server.features", "no genesis_hash".to_owned()))?;
            if !genesis.eq_ignore_ascii_case(&shared.genesis.to_string()) {
                return Err(Error::Config(format!(
                    "the Electrum server at {} serves the chain with genesis {genesis}, not this coin's {}",
                    shared.label, shared.genesis
                )));
            }
            request_one("blockchain.headers.subscribe", json!([])).await?;
            Ok(())
        };
        match check.await {
            Ok(()) => Ok(connection),
            Err(error) => {
                connection.close();
                Err(error)
            }
        }
    }
}

impl Connection {
    /// Splits `stream` and starts the task that reads answers and notifications.
    fn start(stream: Box<dyn Stream>, wakeups: watch::Sender<u64>) -> Self {
        let (read, write) = tokio::io::split(stream);
        let state = Arc::new(ConnectionState {
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            last_heard: Mutex::new(Instant::now()),
        });
        let reader = tokio::spawn(read_answers(BufReader::new(read), state.clone(), wakeups));
        Self {
            writer: tokio::sync::Mutex::new(write),
            state,
            reader,
        }
    }

    /// Marks the connection dead and fails every request still waiting.
    fn close(&self) {
        self.state.closed.store(true, Ordering::Release);
        self.reader.abort();
        self.state.pending.lock().expect("pending lock").clear();
    }

    /// Writes one request per item of `params`, all at once, then waits for every answer.
    /// `Err` is a connection failure (the reason), after which the connection is useless. A
    /// server that stays silent past [`CALL_TIMEOUT`] while answering other requests is slow,
    /// not gone: those requests alone fail.
    async fn request(&self, method: &str, params: Vec<Value>) -> Result<Vec<Reply>, String> {
        let mut bytes = Vec::new();
        let mut ids = Vec::with_capacity(params.len());
        let mut receivers = Vec::with_capacity(params.len());
        {
            let mut pending = self.state.pending.lock().expect("pending lock");
            for params in params {
                let id = self.state.next_id.fetch_add(1, Ordering::Relaxed);
                let request =
                    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
                serde_json::to_writer(&mut bytes, &request).map_err(|e| e.to_string())?;
                bytes.push(b'\n');
                let (sender, receiver) = oneshot::channel();
                pending.insert(id, sender);
                ids.push(id);
                receivers.push(receiver);
            }
        }
        if self.state.closed.load(Ordering::Acquire) {
            // The reader stopped before our requests were registered: nobody would answer.
            return Err("connection closed".to_owned());
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        let sent = tokio::time::timeout_at(deadline, async {
            let mut writer = self.writer.lock().await;
            writer.write_all(&bytes).await?;
            writer.flush().await
        });
        sent.await
            .map_err(|_| format!("sending {method} timed out"))?
            .map_err(|e| format!("sending {method}: {e}"))?;
        let mut replies = Vec::with_capacity(receivers.len());
        for (at, receiver) in receivers.into_iter().enumerate() {
            match tokio::time::timeout_at(deadline, receiver).await {
                Ok(Ok(reply)) => replies.push(reply),
                Ok(Err(_)) => return Err("connection closed".to_owned()),
                Err(_) => {
                    let heard = *self.state.last_heard.lock().expect("heard lock");
                    if heard.elapsed() >= CALL_TIMEOUT {
                        return Err(format!("no answer to {method} within {CALL_TIMEOUT:?}"));
                    }
                    let mut pending = self.state.pending.lock().expect("pending lock");
                    for id in &ids[at..] {
                        pending.remove(id);
                        replies.push(Err(ServerError {
                            code: 0,
                            message: format!("no answer to {method} within {CALL_TIMEOUT:?}"),
                        }));
                    }
                    break;
                }
            }
        }
        Ok(replies)
    }
}

/// Reads lines until the connection ends, handing each answer to its waiting request and
/// turning header notifications into wake-ups.
async fn read_answers(
    mut reader: BufReader<ReadHalf<Box<dyn Stream>>>,
    state: Arc<ConnectionState>,
    wakeups: watch::Sender<u64>,
) {
    let mut line = Vec::new();
    let ended = loop {
        line.clear();
        match read_line(&mut reader, &mut line).await {
            Ok(true) => {}
            Ok(false) => break "closed by the server".to_owned(),
            Err(e) => break e.to_string(),
        }
        *state.last_heard.lock().expect("heard lock") = Instant::now();
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            tracing::warn!(
                line = %String::from_utf8_lossy(&line[..line.len().min(200)]),
                "Electrum server sent a line that is not JSON"
            );
            continue;
        };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let sender = state.pending.lock().expect("pending lock").remove(&id);
            if let Some(sender) = sender {
                let _ = sender.send(reply_of(message));
            }
        } else if message.get("method").and_then(Value::as_str)
            == Some("blockchain.headers.subscribe")
        {
            wakeups.send_modify(|n| *n += 1);
        }
    };
    tracing::debug!(reason = %ended, "Electrum connection reader stopped");
    state.closed.store(true, Ordering::Release);
    state.pending.lock().expect("pending lock").clear();
    wakeups.send_modify(|n| *n += 1);
}

/// The result or error of one answer object.
fn reply_of(mut message: Value) -> Reply {
    match message.get_mut("error").map(Value::take) {
        Some(Value::Null) | None => Ok(message.get_mut("result").map_or(Value::Null, Value::take)),
        Some(error) => Err(ServerError {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned),
        }),
    }
}

/// Reads one newline-terminated line into `line` (without the newline), refusing lines over
/// [`MAX_LINE_BYTES`]. `Ok(false)` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(false);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (&available[..at], Some(at + 1)),
            None => (available, None),
        };
        if line.len() + chunk.len() > MAX_LINE_BYTES {
            return Err(std::io::Error::other(format!(
                "answer longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        line.extend_from_slice(chunk);
        let consumed = done.unwrap_or(chunk.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(true);
        }
    }
}

/// TLS settings: the certificates of `ca_file` as the only roots, or the system's verifier.
fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, Error> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let config = match ca_file {
        Some(path) => {
            let invalid = |why: String| {
                Error::Config(format!("ROT_ELECTRUM_CA_FILE {}: {why}", path.display()))
            };
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| invalid(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| invalid(e.to_string()))?)
                    .map_err(|e| invalid(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(invalid("no certificate in the file".to_owned()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| Error::Config(format!("TLS: system certificates: {e}")))?
                .with_no_client_auth()
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn malformed(method: &str, reason: String) -> Error {
    Error::ElectrumMalformed {
        method: method.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_scheme_host_and_port() {
        let url = ElectrumUrl::parse("tcp://127.0.0.1:50001").unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port),
            (false, "127.0.0.1", 50001)
        );
        let url = ElectrumUrl::parse("ssl://electrum.example.org:50002/").unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port),
            (true, "electrum.example.org", 50002)
        );
        let url = ElectrumUrl::parse("tcp://[::1]:50001").unwrap();
        assert_eq!(url.host, "::1");
        assert_eq!(url.to_string(), "tcp://[::1]:50001");
        for bad in [
            "127.0.0.1:50001",
            "http://h:1",
            "tcp://h",
            "tcp://:1",
            "tcp://h:99999",
        ] {
            let error = ElectrumUrl::parse(bad).unwrap_err().to_string();
            assert!(error.contains("ROT_ELECTRUM_URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn answers_keep_their_own_errors() {
        assert_eq!(reply_of(json!({"id": 1, "result": "ab"})), Ok(json!("ab")));
        assert_eq!(
            reply_of(json!({"id": 1, "result": null, "error": null})),
            Ok(Value::Null)
        );
        let error = reply_of(
            json!({"id": 2, "error": {"code": 2, "message": "daemon error: No such mempool or blockchain transaction"}}),
        )
        .unwrap_err();
        assert_eq!(error.code, 2);
        assert!(error.is_not_found());
        let error = reply_of(json!({"id": 3, "error": "busy"})).unwrap_err();
        assert_eq!(error.message, "\"busy\"");
        assert!(!error.is_not_found());
    }

    #[tokio::test]
    async fn lines_are_bounded_and_split_on_newlines() {
        let data = b"{\"a\":1}\n{\"b\":2}\npartial".to_vec();
        let mut reader = BufReader::new(&data[..]);
        let mut line = Vec::new();
        assert!(read_line(&mut reader, &mut line).await.unwrap());
        assert_eq!(line, b"{\"a\":1}");
        line.clear();
        assert!(read_line(&mut reader, &mut line).await.unwrap());
        assert_eq!(line, b"{\"b\":2}");
        line.clear();
        assert!(!read_line(&mut reader, &mut line).await.unwrap());

        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        let mut reader = BufReader::new(&long[..]);
        let mut line = Vec::new();
        assert!(read_line(&mut reader, &mut line).await.is_err());
    }
}
