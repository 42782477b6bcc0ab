//! The one error type of rot-bootstrap. Every refusal of a list is its own variant with the
//! numbers behind it, so a client log, the proxy's answer and `rot-bootstrap verify` all say
//! exactly why a list is not acceptable.

use std::path::PathBuf;

use rot_proto::PublicKey;

/// Which maintainer set of a list a threshold applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetRole {
    /// The list's own `maintainers`.
    Maintainers,
    /// The `previous_maintainers` a rotation list must also be signed by.
    PreviousMaintainers,
}

impl std::fmt::Display for SetRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SetRole::Maintainers => "maintainers",
            SetRole::PreviousMaintainers => "previous_maintainers",
        })
    }
}

/// Everything that can make a bootstrap list unacceptable, or its handling fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    // --- shape ---
    /// The bytes are larger than any list may be.
    #[error("list is {size} bytes, more than the {limit} bytes a list may have")]
    TooLarge {
        /// Bytes received (or at least this many).
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// Not a list file of the documented shape (bad JSON, missing or mistyped field).
    #[error("malformed list: {0}")]
    Malformed(String),
    /// The file carries another message type's domain tag.
    #[error("not a bootstrap list: tag is {found:?}, expected \"rot/bootstrap-list\"")]
    WrongTag {
        /// The tag found.
        found: String,
    },
    /// The file uses a protocol version this implementation does not speak.
    #[error("unsupported protocol version {found} (supported: {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u64,
        /// The version spoken here.
        supported: u64,
    },
    /// The body is well-formed JSON but breaks a rule of the format (threshold above the
    /// number of keys, duplicate proxy, expiry before issue, ...).
    #[error("invalid list: {0}")]
    Invalid(String),
    // --- signatures ---
    /// The list carries no signature at all.
    #[error("list serial {serial} carries no signatures")]
    Unsigned {
        /// The list's serial.
        serial: u64,
    },
    /// Two signatures by the same key.
    #[error("two signatures by {key}")]
    DuplicateSignature {
        /// The key that signed twice.
        key: PublicKey,
    },
    /// A signature by a key that is neither a maintainer nor a previous maintainer of the list.
    #[error("signature by unknown key {key}: not among the list's maintainers")]
    UnknownSigner {
        /// The signer.
        key: PublicKey,
    },
    /// A maintainer's signature does not verify over the body: the body or the signature was
    /// altered after signing.
    #[error("tampered list: the signature by maintainer {key} does not verify over this body")]
    Tampered {
        /// The maintainer whose signature fails.
        key: PublicKey,
    },
    /// Fewer valid signatures of a maintainer set than its threshold.
    #[error(
        "list serial {serial} has {valid} valid signature(s) of its {set}, \
         {threshold} required"
    )]
    BelowThreshold {
        /// The list's serial.
        serial: u64,
        /// Which set falls short.
        set: SetRole,
        /// Valid signatures by keys of that set.
        valid: u64,
        /// The set's threshold.
        threshold: u64,
    },
    /// A link in the list's `rotations` chain is itself not a valid rotation list.
    #[error("rotation link serial {serial} is not valid: {reason}")]
    InvalidRotation {
        /// The link's serial (0 when it could not be read).
        serial: u64,
        /// Why.
        reason: String,
    },
    // --- trust ---
    /// The list's maintainers do not follow from the keys the client trusts (pinned, or of its
    /// cached list), neither directly nor through a rotation chain.
    #[error(
        "list serial {serial} is signed by maintainers this client does not trust: it trusts \
         {trusted}; the list names {offered} and no rotation chain leads there from the trusted set"
    )]
    UntrustedMaintainers {
        /// The list's serial.
        serial: u64,
        /// The set the client trusts, as `k of [keys]`.
        trusted: String,
        /// The list's set (and previous set), as `k of [keys]`.
        offered: String,
    },
    /// The list's expiry date has passed.
    #[error("list serial {serial} expired at {expires_at} (now {now})")]
    Expired {
        /// The list's serial.
        serial: u64,
        /// Its expiry, unix seconds.
        expires_at: u64,
        /// The client's clock, unix seconds.
        now: u64,
    },
    /// The list is older than the one the client already holds.
    #[error("rollback refused: list serial {offered} is older than the cached serial {cached}")]
    Rollback {
        /// The offered list's serial.
        offered: u64,
        /// The cached list's serial.
        cached: u64,
    },
    /// The list has the cached list's serial but other contents: the maintainers signed two
    /// different lists under one serial.
    #[error("list serial {serial} differs from the cached list with the same serial")]
    Conflict {
        /// The shared serial.
        serial: u64,
    },
    /// The client holds no list at all yet.
    #[error("no bootstrap list: none cached and none fetched yet")]
    NoList,
    // --- maintainers' tool ---
    /// The key asked to sign is not a maintainer (nor previous maintainer) of the list.
    #[error("key {key} is not among the maintainers of this list")]
    NotAMaintainer {
        /// The key.
        key: PublicKey,
    },
    /// Signatures can only be merged between copies of the same body.
    #[error("cannot merge signatures: {path} holds a different list body (serial {serial})")]
    DifferentBody {
        /// The other copy.
        path: PathBuf,
        /// Its serial, as far as readable.
        serial: u64,
    },
    /// The list has fields this version does not know; editing it would drop them.
    #[error(
        "the list has fields this version of rot-bootstrap does not know ({0}); \
         upgrade rot-bootstrap before editing it"
    )]
    UnknownFields(String),
    // --- files, keys, network ---
    /// A list or cache file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// A key file, key or signature error from rot-proto.
    #[error(transparent)]
    Proto(#[from] rot_proto::Error),
    /// A mirror could not be fetched.
    #[error("mirror {url}: {reason}")]
    Fetch {
        /// The mirror.
        url: String,
        /// What went wrong.
        reason: String,
    },
}
