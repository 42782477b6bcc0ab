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

    // --- configuration and startup ---
    /// A setting is missing or invalid (names the setting).
    #[error("configuration: {0}")]
    Config(String),

    // --- index storage ---
    /// sled failed (disk full, I/O error).
    #[error("index storage: {0}")]
    Storage(#[from] sled::Error),
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
}
