//! Why `rot` could not do what it was asked: all end with exit status 2.

use rot_bootstrap::BootstrapError;

/// A usage, configuration or connection problem.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// From the protocol crate: unknown coin, bad address, unreachable service...
    #[error(transparent)]
    Proto(#[from] rot_proto::Error),
    /// From the bootstrap list: no pins, no valid list, expired...
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
}
