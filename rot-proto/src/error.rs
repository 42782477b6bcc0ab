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
}
