//! The one error type of rot-proto. Each variant names what was wrong with the input so that
//! services can turn it into a precise 4xx without guessing.

/// Everything that can go wrong when decoding, verifying or interpreting protocol data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- hashes and hex ---
    /// A hash was not 64 hex digits.
    #[error("invalid hash: {0}")]
    InvalidHash(String),
    // --- canonical encoding, signatures, keys ---

    // --- coin profiles and addresses ---

    // --- raw blocks and transactions ---
}
