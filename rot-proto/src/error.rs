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
    /// A JSON value has no canonical encoding (float, negative or too large integer, too deep
    /// nesting, oversized string).
    #[error("not canonically encodable: {0}")]
    Canonical(String),
    /// A signed envelope carries another message type's domain tag.
    #[error("wrong message tag: expected {expected:?}, found {found:?}")]
    WrongTag {
        /// The tag of the message type the receiver asked for.
        expected: &'static str,
        /// The tag the envelope carries.
        found: String,
    },
    /// A signed envelope uses a protocol version this implementation does not speak.
    #[error("unsupported protocol version {found} (supported: {supported})")]
    UnsupportedVersion {
        /// The version the envelope carries.
        found: u64,
        /// The version this implementation speaks.
        supported: u64,
    },
    /// A well-formed signature does not verify for the given key and message.
    #[error("signature does not verify")]
    BadSignature,
    /// A public key is not 64 lowercase hex digits of a valid ed25519 point.
    #[error("malformed public key: {0}")]
    MalformedKey(String),
    /// A signature is not 128 lowercase hex digits.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// A signed body names another key as its author than the one that signed it.
    #[error("signed by {signer} but the body names {claimed}")]
    SignerMismatch {
        /// The envelope's (verified) signer.
        signer: crate::PublicKey,
        /// The key the body names.
        claimed: crate::PublicKey,
    },
    /// A verified body does not match the expected message type.
    #[error("malformed message body: {0}")]
    MalformedBody(String),
    /// A challenge nonce is not 64 lowercase hex digits.
    #[error("malformed nonce: {0}")]
    MalformedNonce(String),
    /// A network name other than `main`, `test` or `regtest`.
    #[error("unknown network {0:?} (expected main, test or regtest)")]
    UnknownNetwork(String),
    /// A heartbeat's sequence number is not above the last one accepted from its key.
    #[error("replayed heartbeat: seq {seq} is not above the last accepted seq {last_seq}")]
    Replayed {
        /// The sequence number received.
        seq: u64,
        /// The highest sequence number accepted so far from the same key.
        last_seq: u64,
    },
    /// A signed timestamp is further from the receiver's clock than it allows.
    #[error("timestamp {timestamp} is {skew}s away from local time {now} (allowed: {max_skew}s)")]
    ClockSkew {
        /// The signed timestamp (unix seconds).
        timestamp: u64,
        /// The receiver's clock (unix seconds).
        now: u64,
        /// The distance between them in seconds.
        skew: u64,
        /// The largest distance the receiver accepts.
        max_skew: u64,
    },
    /// A challenge answer signs another nonce than the one sent.
    #[error("challenge answer is for another nonce")]
    NonceMismatch,
    /// The operating system's random number generator failed.
    #[error("no randomness available: {0}")]
    Randomness(String),
    /// An identity key file could not be read, written or its directory created.
    #[error("key file {}: {source}", path.display())]
    KeyFileIo {
        /// The key file.
        path: std::path::PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// An identity key file is accessible to group or others.
    #[error(
        "key file {} has mode {mode:03o}, readable or writable by others; \
         restrict it with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecureKeyFile {
        /// The key file.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An identity key file does not hold one `ed25519-secret:<64 hex>` line.
    #[error("key file {} is malformed: {reason}", path.display())]
    MalformedKeyFile {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong with its contents.
        reason: String,
    },
    // --- coin profiles and addresses ---

    // --- raw blocks and transactions ---
}
