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

    /// No `electrumx_server` in `$ELECTRUMX_VENV/bin`, bench/.venv-electrumx/bin or on `PATH`.
    #[error(
        "electrumx_server not found ({0}); run bench/install-electrumx.sh or set ELECTRUMX_VENV"
    )]
    ElectrumXNotFound(String),

    /// The ElectrumX process ended on its own.
    #[error("electrumx_server exited ({status}); log tail:\n{log_tail}")]
    ElectrumXExited {
        /// Exit status as the OS reports it.
        status: String,
        /// Last lines of its log.
        log_tail: String,
    },

    /// An Electrum server answered with an error or with something that is not JSON-RPC.
    #[error("Electrum {method}: {detail}")]
    Electrum {
        /// The request's method.
        method: String,
        /// The server's error object, or what was wrong with the answer.
        detail: String,
    },

    /// A request to a rot-server's API failed or answered unexpectedly.
    #[error("{what}: {reason}")]
    Api {
        /// The request.
        what: String,
        /// What went wrong.
        reason: String,
    },

    /// A service binary run as a child process ended early or wrote a log line that is not
    /// what its log format promises.
    #[error("{binary}: {detail}")]
    Service {
        /// The binary's path.
        binary: String,
        /// What went wrong, with the offending line.
        detail: String,
    },

    /// A rot-proxy could not be configured or started.
    #[error(transparent)]
    Proxy(#[from] rot_proxy::Error),

    /// The node answered an RPC with an error.
    #[error(transparent)]
    Rpc(#[from] rot_server::Error),
}
