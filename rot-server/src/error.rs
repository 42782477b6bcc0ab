//! The one error type of rot-server, and the single place where errors become HTTP responses
//! with the shared rot-proto error body.

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
    // --- index storage ---

    // --- HTTP API ---
}
