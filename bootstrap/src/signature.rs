//! Detached maintainer signatures. Each maintainer signs on their own and the signatures are
//! merged, so a signature sits beside the body instead of wrapping it. What is signed is
//! exactly what rot-proto's envelope signs (`rot_proto::signed::signing_bytes`): the canonical
//! encoding of `{tag: "rot/bootstrap-list", version, key, body}`. A signature entry plus the
//! body is therefore a plain rot-proto signed envelope; there is no second signing scheme.

use rot_proto::signed::signing_bytes;
use rot_proto::{PROTOCOL_VERSION, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BootstrapError;
use crate::maintainers::MaintainerSet;

/// The domain tag of bootstrap list signatures.
pub const LIST_TAG: &str = "rot/bootstrap-list";

/// The bytes `key` signs for a list whose body is `body`.
pub fn list_signing_bytes(key: &PublicKey, body: &Value) -> Result<Vec<u8>, BootstrapError> {
    Ok(signing_bytes(
        LIST_TAG,
        PROTOCOL_VERSION,
        &key.to_string(),
        body,
    )?)
}

/// One maintainer's signature of a list body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSignature {
    /// The maintainer's public key.
    pub key: PublicKey,
    /// Ed25519 over [`list_signing_bytes`] of that key and the body.
    pub signature: Signature,
}

/// What one signature entry of a list amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVerdict {
    /// Made by a maintainer (or previous maintainer) over this body.
    Valid,
    /// By a maintainer, but does not verify over this body: something was altered.
    Invalid,
    /// By a key that is neither a maintainer nor a previous maintainer.
    UnknownSigner,
    /// A second entry for a key that already signed.
    Duplicate,
}

/// A signature entry and its verdict, for reports such as `rot-bootstrap verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    /// The key the entry names.
    pub key: PublicKey,
    /// Whether it counts.
    pub verdict: SignatureVerdict,
}

/// How far one maintainer set is in signing a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Valid signatures by keys of the set.
    pub valid: u64,
    /// The set's threshold.
    pub threshold: u64,
    /// Keys of the set that have validly signed.
    pub signed: Vec<PublicKey>,
    /// Keys of the set that have not (validly) signed.
    pub missing: Vec<PublicKey>,
}

impl Tally {
    /// Counts the valid `checks` made by keys of `set`.
    pub(crate) fn of(set: &MaintainerSet, checks: &[SignatureCheck]) -> Self {
        let (signed, missing): (Vec<PublicKey>, Vec<PublicKey>) =
            set.keys.iter().partition(|key| {
                checks
                    .iter()
                    .any(|check| check.key == **key && check.verdict == SignatureVerdict::Valid)
            });
        Self {
            valid: signed.len() as u64,
            threshold: set.threshold,
            signed,
            missing,
        }
    }

    /// Whether the threshold is reached.
    pub fn reached(&self) -> bool {
        self.valid >= self.threshold
    }
}
