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
}

/// The tail of a [`Error::WrongNetwork`] message: which known coins the address belongs to.
fn lookalike_hint(looks_like: &[String]) -> String {
    if looks_like.is_empty() {
        " (no known coin uses its prefix)".to_owned()
    } else {
        format!(" (it belongs to {})", looks_like.join(" or "))
    }
}
