//! The one error type of rot-server, and the single place where errors become HTTP responses
//! with the shared rot-proto error body.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rot_proto::message::{ErrorBody, ErrorCode};

/// Everything that can go wrong inside rot-server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Protocol-level problem with input (bad address, bad hash, ...).
    #[error(transparent)]
    Proto(#[from] rot_proto::Error),

    // --- coin node JSON-RPC ---
    /// The node's RPC URL is not a usable http(s) URL.
    #[error("invalid coin node RPC URL {url}: {reason}")]
    NodeUrlInvalid { url: String, reason: String },

    /// No answer from the node: connection refused, reset, timed out, or the node is too busy
    /// (HTTP 503). Usually transient: the node is down, starting or overloaded.
    #[error("coin node at {url} unreachable: {reason}")]
    NodeUnreachable { url: String, reason: String },

    /// The node rejected our credentials (HTTP 401) or our address (HTTP 403, `-rpcallowip`).
    #[error("coin node at {url} refused authentication: {reason}")]
    NodeAuthFailed { url: String, reason: String },

    /// The node's cookie file could not be read (node not started yet, wrong datadir or
    /// network, or no permission).
    #[error("cannot read coin node cookie file {path}: {reason}")]
    NodeCookieUnreadable {
        path: std::path::PathBuf,
        reason: String,
    },

    /// The node is still starting (RPC code -28: loading block index, verifying blocks...).
    #[error("coin node is warming up: {message}")]
    NodeWarmingUp { message: String },

    /// The node does not know the requested block, transaction or height (RPC code -5, or -8
    /// from `getblockhash`): maps to HTTP 404.
    #[error("not found by coin node ({method}): {message}")]
    NodeNotFound { method: String, message: String },

    /// The node refused a transaction (RPC codes -22 decode failure, -25 verify error,
    /// -26 policy/consensus rejection, -27 already in chain); `message` is the node's reason,
    /// meant for the client: maps to HTTP 400.
    #[error("transaction rejected by coin node: {message} (code {code})")]
    NodeRejected { code: i64, message: String },

    /// Any other JSON-RPC error the node returned.
    #[error("coin node RPC {method} failed: {message} (code {code})")]
    NodeRpc {
        method: String,
        code: i64,
        message: String,
    },

    /// The node's answer was not the JSON-RPC response we expected.
    #[error("malformed coin node response to {method}: {reason}")]
    NodeMalformed { method: String, reason: String },

    // --- Electrum upstream (the electrum backend) ---
    /// No answer from the Electrum server: connection refused, reset, timed out, or it is
    /// between reconnection attempts. Usually transient: the server restarts or catches up.
    #[error("Electrum server at {url} unreachable: {reason}")]
    ElectrumUnreachable { url: String, reason: String },

    /// The Electrum server returned an error for a request (not a rejected transaction).
    #[error("Electrum server call {method} failed: {message} (code {code})")]
    ElectrumRpc {
        method: String,
        code: i64,
        message: String,
    },

    /// The Electrum server's answer was not what the protocol promises (or contradicts the
    /// headers we hold).
    #[error("malformed Electrum server response to {method}: {reason}")]
    ElectrumMalformed { method: String, reason: String },

    /// The Electrum server refused a broadcast transaction; `message` is its reason, meant for
    /// the client: maps to HTTP 400.
    #[error("transaction rejected by the Electrum server: {message}")]
    ElectrumRejected { message: String },

    /// The Electrum server answered about blocks our header chain does not hold yet: rot-server
    /// is catching up with it. Transient.
    #[error("catching up with the Electrum server: {0}")]
    ElectrumLagging(String),

    // --- configuration and startup ---
    /// A setting is missing or invalid (names the setting).
    #[error("configuration: {0}")]
    Config(String),

    // --- index storage ---
    /// sled failed (disk full, I/O error).
    #[error("index storage: {0}")]
    Storage(#[from] sled::Error),
    /// A file of the index beside sled could not be read or written.
    #[error("index file {}: {source}", path.display())]
    IndexFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The index on disk is of another schema version or coin.
    #[error("{0}")]
    Schema(String),
    /// A stored record does not decode: the index is damaged.
    #[error("index corrupt: {0}")]
    Corrupt(String),
    /// The indexer cannot go on (a block that does not connect, a reorg too deep).
    #[error("indexer: {0}")]
    Index(String),

    // --- HTTP API ---
    /// What was asked for does not exist (unknown block, transaction, output).
    #[error("{0}")]
    NotFound(String),
    /// The client's request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The backend cannot answer this query (e.g. spent-by on an Electrum backend).
    #[error("{0}")]
    Unsupported(String),
    /// The route exists but not for this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The request body is over the limit.
    #[error("request body too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
}

impl Error {
    /// The shared error code (and so the HTTP status) of this error. Only the client's own
    /// mistakes are 4xx; a node or index failure is never blamed on the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Proto(_)
            | Self::BadRequest(_)
            | Self::NodeRejected { .. }
            | Self::ElectrumRejected { .. } => ErrorCode::BadRequest,
            Self::NotFound(_) | Self::NodeNotFound { .. } => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::Unsupported(_) => ErrorCode::NotImplemented,
            Self::Timeout => ErrorCode::GatewayTimeout,
            Self::NodeUnreachable { .. }
            | Self::NodeWarmingUp { .. }
            | Self::ElectrumUnreachable { .. }
            | Self::ElectrumLagging(_) => ErrorCode::Unavailable,
            Self::NodeAuthFailed { .. }
            | Self::NodeCookieUnreadable { .. }
            | Self::NodeRpc { .. }
            | Self::NodeMalformed { .. }
            | Self::ElectrumRpc { .. }
            | Self::ElectrumMalformed { .. } => ErrorCode::BadGateway,
            Self::NodeUrlInvalid { .. }
            | Self::Config(_)
            | Self::Storage(_)
            | Self::IndexFile { .. }
            | Self::Schema(_)
            | Self::Corrupt(_)
            | Self::Index(_) => ErrorCode::Internal,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (status, Json(ErrorBody::new(code, self.to_string()))).into_response()
    }
}

/// A setting rot-ops read and refused (its message names the setting).
impl From<rot_ops::Error> for Error {
    fn from(error: rot_ops::Error) -> Self {
        Self::Config(error.to_string())
    }
}

impl From<BytesRejection> for Error {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge(crate::api::MAX_BODY_BYTES)
        } else {
            Self::BadRequest(rejection.body_text())
        }
    }
}
