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

    // --- index storage ---

    // --- HTTP API ---
}
