//! The one error type of the harness: what failed while running a node, with the node's log
//! tail where that explains it.

use std::time::Duration;

/// Everything that can go wrong while starting, driving or stopping a test node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No litecoind executable at `$LITECOIND`, /usr/bin/litecoind or on `PATH`.
    #[error("litecoind not found ({0}); install it or set LITECOIND")]
    BinaryNotFound(String),

    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying failure.
        source: std::io::Error,
    },

    /// The node process ended on its own.
    #[error("litecoind exited ({status}); log tail:\n{log_tail}")]
    Exited {
        /// Exit status as the OS reports it.
        status: String,
        /// Last lines of the node's log.
        log_tail: String,
    },

    /// A bounded wait ran out.
    #[error("timed out after {waited:?} waiting for {what}; last state: {last_state}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last observation (error or value) before giving up.
        last_state: String,
    },

    /// A request to a rot-server's API failed or answered unexpectedly.
    #[error("{what}: {reason}")]
    Api {
        /// The request.
        what: String,
        /// What went wrong.
        reason: String,
    },

    /// The node answered an RPC with an error.
    #[error(transparent)]
    Rpc(#[from] rot_server::Error),
}
