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
    /// A network name other than the three every coin has.
    #[error("unknown network {0:?}: expected one of main, test, regtest")]
    UnknownNetwork(String),
    /// A coin profile file could not be read.
    #[error("cannot read coin profiles from {path}: {reason}")]
    CoinFile {
        /// The file that was asked for.
        path: String,
        /// Why reading it failed.
        reason: String,
    },
    /// A coin profile is not valid JSON of the documented shape, or its values contradict each
    /// other (see docs/coins.md).
    #[error("invalid coin profile in {origin}: {reason}")]
    InvalidCoinProfile {
        /// Where the profile came from: a file path or "JSON text".
        origin: String,
        /// What is wrong, naming the profile and field.
        reason: String,
    },
    /// A coin profile has the id of one already registered.
    #[error("coin {id} in {origin} is already registered")]
    DuplicateCoin {
        /// The id both profiles have.
        id: String,
        /// Where the second profile came from.
        origin: String,
    },
    /// No registered coin profile has this id.
    #[error("unknown coin {id:?}; known coins: {known}")]
    UnknownCoin {
        /// The id that was asked for.
        id: String,
        /// The registered ids, comma-separated.
        known: String,
    },
    /// The text is not a base58 or bech32 address at all, or decodes to the wrong length.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The text as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address is well formed but its checksum does not match: most likely a typo.
    #[error("invalid address {address:?}: {reason}")]
    AddressChecksum {
        /// The text as given.
        address: String,
        /// Which checksum failed.
        reason: String,
    },
    /// A well-formed address of another coin or network.
    #[error("address {address:?} does not belong to {expected}{}", lookalike_hint(.looks_like))]
    WrongNetwork {
        /// The text as given.
        address: String,
        /// Id of the coin profile the address was parsed for.
        expected: String,
        /// Ids of the registered coin profiles whose prefixes the address has.
        looks_like: Vec<String>,
    },
    /// A segwit address with a witness version or program length that no output can have.
    #[error("unsupported segwit address {address:?}: {reason}")]
    UnsupportedWitness {
        /// The text as given.
        address: String,
        /// Which rule of BIP 141/173/350 it breaks.
        reason: String,
    },
    // --- raw blocks and transactions ---
    /// The input ended inside a field. Offsets count from the start of the parsed bytes.
    #[error("truncated input: {needed} bytes needed at offset {offset}, {remaining} left")]
    UnexpectedEnd {
        /// Where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A compact-size integer used a longer encoding than its value needs.
    #[error("non-canonical compact size at offset {offset}")]
    NonCanonicalCompactSize {
        /// Where the integer starts.
        offset: usize,
    },
    /// An element count or length is larger than the rest of the input could hold.
    #[error(
        "count {count} at offset {offset} exceeds what the {remaining} remaining bytes can hold"
    )]
    CountTooLarge {
        /// Where the count starts.
        offset: usize,
        /// The count that was read.
        count: u64,
        /// Bytes left after the count.
        remaining: usize,
    },
    /// A base-128 variable-length integer (MWEB fields) overflows its type.
    #[error("variable-length integer at offset {offset} overflows")]
    VarIntOverflow {
        /// Where the integer starts.
        offset: usize,
    },
    /// Bytes were left after a complete block or transaction.
    #[error("{trailing} unexpected bytes after the end at offset {offset}")]
    TrailingBytes {
        /// Where the unexpected bytes start.
        offset: usize,
        /// How many there are.
        trailing: usize,
    },
    /// The extended-serialization flag byte of a transaction is zero, unknown, or not allowed by
    /// the chain's rules.
    #[error("invalid transaction flags 0x{flags:02x} at offset {offset}")]
    InvalidTxFlags {
        /// Where the flag byte is.
        offset: usize,
        /// The flag byte.
        flags: u8,
    },
    /// A transaction sets the witness flag but every witness stack is empty (BIP 144 forbids it).
    #[error("transaction at offset {offset} sets the witness flag but has no witness data")]
    SuperfluousWitness {
        /// Where the transaction starts.
        offset: usize,
    },
    /// Litecoin MWEB data that Litecoin Core would refuse to deserialize.
    #[error("invalid MWEB data at offset {offset}: {reason}")]
    InvalidMweb {
        /// Where the offending structure starts.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A block header was not exactly 80 bytes.
    #[error("block header is {0} bytes, expected 80")]
    InvalidHeaderLength(usize),
    /// The compact `bits` of a header do not encode a usable target.
    #[error("invalid target bits 0x{bits:08x}: {reason}")]
    InvalidTarget {
        /// The compact target.
        bits: u32,
        /// Why it is unusable.
        reason: &'static str,
    },
    /// A merkle proof was asked for a position past the last transaction.
    #[error("merkle position {pos} out of range for {count} transactions")]
    MerklePositionOutOfRange {
        /// The requested position.
        pos: usize,
        /// Number of transactions in the block.
        count: usize,
    },
    // --- conformance and client ---
    /// A base URL that requests cannot be built on.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No answer: connection refused or reset, timed out, body cut short or over the size
    /// limit, or the service says it is unavailable (HTTP 500, 502, 503, 504). Not a sign that
    /// the service lies.
    #[error("{url} unreachable: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The service answered with an error status other than those of [`Error::Unreachable`].
    #[error("{url} answered HTTP {status}: {message}")]
    HttpStatus {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error body's code, when the answer carried the shared error body.
        code: Option<String>,
        /// The error body's message, or the start of the body.
        message: String,
    },
    /// The service answered 200 with something that is not what was asked for: malformed, or
    /// failing a check the client makes (a transaction that does not hash to its id, a header
    /// without its proof of work).
    #[error("wrong answer from {url}: {reason}")]
    BadAnswer {
        /// The URL asked.
        url: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// A cross-check needs more independent sources than were given or could be found.
    #[error(
        "a cross-check over {wanted} sources needs {wanted} of them, only {available} available"
    )]
    NotEnoughSources {
        /// Sources asked for.
        wanted: usize,
        /// Sources available.
        available: usize,
    },
}

/// The tail of a [`Error::WrongNetwork`] message: which known coins the address belongs to.
fn lookalike_hint(looks_like: &[String]) -> String {
    if looks_like.is_empty() {
        " (no known coin uses its prefix)".to_owned()
    } else {
        format!(" (it belongs to {})", looks_like.join(" or "))
    }
}

/// An error with its causes (`outer: inner: innermost`): libraries such as bech32 and reqwest
/// put the useful part ("connection refused") in `source()`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
