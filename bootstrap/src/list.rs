//! The list file as published, cached and served:
//!
//! ```json
//! {"tag": "rot/bootstrap-list", "version": 1, "body": {...},
//!  "signatures": [{"key": "<64 hex>", "signature": "<128 hex>"}, ...],
//!  "rotations": [<earlier rotation lists, oldest first>]}
//! ```
//!
//! The body is kept exactly as received, so signatures cover fields a newer tool added. This
//! module checks what a list says about itself (shape, rules, signatures, thresholds, rotation
//! links); whether the client trusts its maintainers is [`crate::TrustStore`]'s business.

use std::collections::BTreeSet;
use std::path::Path;

use rot_proto::{Identity, PROTOCOL_VERSION, canonical_bytes, identity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BootstrapError;
use crate::body::ListBody;
use crate::error::SetRole;
use crate::signature::{
    LIST_TAG, ListSignature, SignatureCheck, SignatureVerdict, Tally, list_signing_bytes,
};
use crate::storage;
use crate::verified::VerifiedList;

/// Largest list file accepted, from a mirror or from disk. Real lists are a few KiB.
pub const MAX_LIST_BYTES: u64 = 1024 * 1024;

/// Most rotation links a list carries; clients older than that many rotations must be given
/// the intermediate lists one by one (or new pins).
pub const MAX_ROTATIONS: usize = 16;

/// A bootstrap list file. Deserializing checks only its JSON shape; [`ListFile::verify`] checks
/// the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListFile {
    tag: String,
    version: u64,
    body: Value,
    signatures: Vec<ListSignature>,
    /// Earlier lists that changed the maintainer set, oldest first: self-authenticating links
    /// that let a client pinned to an old set reach this list's set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rotations: Vec<ListFile>,
}

/// How far a list is in being signed by its maintainer set(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningStatus {
    /// Each signature entry and its verdict.
    pub checks: Vec<SignatureCheck>,
    /// The list's own maintainers.
    pub maintainers: Tally,
    /// The previous maintainers, on a rotation list.
    pub previous: Option<Tally>,
}

impl SigningStatus {
    /// Whether every signature verifies and every threshold is reached.
    pub fn complete(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.verdict == SignatureVerdict::Valid)
            && self.maintainers.reached()
            && self.previous.as_ref().is_none_or(Tally::reached)
    }
}

impl ListFile {
    /// An unsigned list carrying `body`, after checking the body's rules and that it has a
    /// canonical encoding.
    pub fn unsigned(body: &ListBody) -> Result<Self, BootstrapError> {
        body.validate().map_err(BootstrapError::Invalid)?;
        let body =
            serde_json::to_value(body).map_err(|e| BootstrapError::Invalid(e.to_string()))?;
        canonical_bytes(&body)?;
        Ok(Self {
            tag: LIST_TAG.to_owned(),
            version: PROTOCOL_VERSION,
            body,
            signatures: Vec::new(),
            rotations: Vec::new(),
        })
    }

    /// Parses a list file, refusing more than [`MAX_LIST_BYTES`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, BootstrapError> {
        if bytes.len() as u64 > MAX_LIST_BYTES {
            return Err(BootstrapError::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_LIST_BYTES,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| BootstrapError::Malformed(e.to_string()))
    }

    /// Reads and parses the list file at `path`.
    pub fn read(path: &Path) -> Result<Self, BootstrapError> {
        let bytes =
            storage::read_capped(path, MAX_LIST_BYTES)?.ok_or_else(|| BootstrapError::Io {
                path: path.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        Self::from_slice(&bytes)
    }

    /// Writes the list to `path` atomically (never seen half-written).
    pub fn write(&self, path: &Path) -> Result<(), BootstrapError> {
        storage::write_atomic(path, self.to_json().as_bytes())
    }

    /// The list as pretty JSON with a final newline: the published and served form.
    pub fn to_json(&self) -> String {
        // Serializing a Value-backed struct cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The domain tag as received.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The protocol version as received.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The body exactly as received (what the signatures cover).
    pub fn body_value(&self) -> &Value {
        &self.body
    }

    /// The signature entries as received.
    pub fn signatures(&self) -> &[ListSignature] {
        &self.signatures
    }

    /// The rotation links as received, oldest first.
    pub fn rotations(&self) -> &[ListFile] {
        &self.rotations
    }

    /// The serial the body claims, or 0 when it has none; for messages about lists that fail
    /// before their body is read.
    pub fn serial_hint(&self) -> u64 {
        self.body.get("serial").and_then(Value::as_u64).unwrap_or(0)
    }

    /// Decodes and checks the body without looking at signatures. Use [`ListFile::verify`]
    /// before trusting it.
    pub fn decode_body(&self) -> Result<ListBody, BootstrapError> {
        self.check_envelope()?;
        let body = ListBody::deserialize(&self.body)
            .map_err(|e| BootstrapError::Malformed(format!("body: {e}")))?;
        body.validate().map_err(BootstrapError::Invalid)?;
        Ok(body)
    }

    /// The verdict on each signature entry, in order, for a list whose decoded body is `body`.
    pub fn signature_checks(&self, body: &ListBody) -> Vec<SignatureCheck> {
        let mut seen = BTreeSet::new();
        self.signatures
            .iter()
            .map(|entry| {
                let known = body.maintainers.contains(&entry.key)
                    || body
                        .previous_maintainers
                        .as_ref()
                        .is_some_and(|previous| previous.contains(&entry.key));
                let verdict = if !seen.insert(entry.key) {
                    SignatureVerdict::Duplicate
                } else if !known {
                    SignatureVerdict::UnknownSigner
                } else if self.signature_verifies(entry) {
                    SignatureVerdict::Valid
                } else {
                    SignatureVerdict::Invalid
                };
                SignatureCheck {
                    key: entry.key,
                    verdict,
                }
            })
            .collect()
    }

    /// The signature checks and how far each maintainer set is.
    pub fn signing_status(&self) -> Result<SigningStatus, BootstrapError> {
        let body = self.decode_body()?;
        Ok(self.status_of(&body))
    }

    fn status_of(&self, body: &ListBody) -> SigningStatus {
        let checks = self.signature_checks(body);
        SigningStatus {
            maintainers: Tally::of(&body.maintainers, &checks),
            previous: body
                .previous_maintainers
                .as_ref()
                .map(|previous| Tally::of(previous, &checks)),
            checks,
        }
    }

    /// Checks everything the list says about itself: tag, version, body, signatures (each must
    /// verify and be by a key of the list), both thresholds, and every rotation link. Not
    /// checked here: expiry, and whether the client trusts the maintainers.
    pub fn verify(&self) -> Result<VerifiedList, BootstrapError> {
        let body = self.verify_own()?;
        if self.rotations.len() > MAX_ROTATIONS {
            return Err(BootstrapError::Invalid(format!(
                "{} rotation links; a list carries at most {MAX_ROTATIONS}",
                self.rotations.len()
            )));
        }
        let mut links = Vec::with_capacity(self.rotations.len());
        let mut last_serial = 0;
        for link in &self.rotations {
            let invalid = |reason: String| BootstrapError::InvalidRotation {
                serial: link.serial_hint(),
                reason,
            };
            if !link.rotations.is_empty() {
                return Err(invalid("a link carries rotation links of its own".into()));
            }
            let link_body = link.verify_own().map_err(|e| invalid(e.to_string()))?;
            if link_body.previous_maintainers.is_none() {
                return Err(invalid("it does not change the maintainer set".into()));
            }
            if link_body.serial <= last_serial || link_body.serial >= body.serial {
                return Err(invalid(format!(
                    "links must have increasing serials below the list's serial {}",
                    body.serial
                )));
            }
            last_serial = link_body.serial;
            links.push(link_body);
        }
        Ok(VerifiedList::new(self.clone(), body, links))
    }

    /// [`ListFile::verify`] without the rotation links.
    fn verify_own(&self) -> Result<ListBody, BootstrapError> {
        let body = self.decode_body()?;
        if self.signatures.is_empty() {
            return Err(BootstrapError::Unsigned {
                serial: body.serial,
            });
        }
        let status = self.status_of(&body);
        for wanted in [
            SignatureVerdict::Duplicate,
            SignatureVerdict::UnknownSigner,
            SignatureVerdict::Invalid,
        ] {
            if let Some(check) = status.checks.iter().find(|c| c.verdict == wanted) {
                let key = check.key;
                return Err(match wanted {
                    SignatureVerdict::Duplicate => BootstrapError::DuplicateSignature { key },
                    SignatureVerdict::UnknownSigner => BootstrapError::UnknownSigner { key },
                    _ => BootstrapError::Tampered { key },
                });
            }
        }
        let tallies = [
            (SetRole::Maintainers, Some(&status.maintainers)),
            (SetRole::PreviousMaintainers, status.previous.as_ref()),
        ];
        for (set, tally) in tallies {
            if let Some(tally) = tally.filter(|tally| !tally.reached()) {
                return Err(BootstrapError::BelowThreshold {
                    serial: body.serial,
                    set,
                    valid: tally.valid,
                    threshold: tally.threshold,
                });
            }
        }
        Ok(body)
    }

    /// Adds (or replaces) `identity`'s signature. Only a maintainer or previous maintainer of
    /// the list may sign.
    pub fn sign(&mut self, identity: &Identity) -> Result<(), BootstrapError> {
        let body = self.decode_body()?;
        let key = identity.public_key();
        let previous = body.previous_maintainers.as_ref();
        if !body.maintainers.contains(&key) && !previous.is_some_and(|set| set.contains(&key)) {
            return Err(BootstrapError::NotAMaintainer { key });
        }
        let signature = identity.sign(&list_signing_bytes(&key, &self.body)?);
        self.put_signature(ListSignature { key, signature });
        Ok(())
    }

    /// Adds the valid signatures of `other`, a copy of this list signed elsewhere, and returns
    /// how many were new. Refuses a copy with another body, and a copy carrying a signature
    /// that does not verify (nothing is merged then).
    pub fn merge(&mut self, other: &ListFile, other_path: &Path) -> Result<usize, BootstrapError> {
        let body = self.decode_body()?;
        if !self.same_body(other) {
            return Err(BootstrapError::DifferentBody {
                path: other_path.to_owned(),
                serial: other.serial_hint(),
            });
        }
        let checks = other.signature_checks(&body);
        let mut valid = Vec::new();
        for (entry, check) in other.signatures.iter().zip(&checks) {
            match check.verdict {
                SignatureVerdict::Valid => valid.push(entry.clone()),
                SignatureVerdict::Duplicate => {}
                SignatureVerdict::UnknownSigner => {
                    return Err(BootstrapError::UnknownSigner { key: check.key });
                }
                SignatureVerdict::Invalid => {
                    return Err(BootstrapError::Tampered { key: check.key });
                }
            }
        }
        let mut added = 0;
        for entry in valid {
            if !self.signatures.contains(&entry) {
                self.put_signature(entry);
                added += 1;
            }
        }
        Ok(added)
    }

    fn put_signature(&mut self, entry: ListSignature) {
        self.signatures.retain(|mine| mine.key != entry.key);
        self.signatures.push(entry);
        self.signatures.sort_by_key(|entry| entry.key);
    }

    fn signature_verifies(&self, entry: &ListSignature) -> bool {
        list_signing_bytes(&entry.key, &self.body)
            .is_ok_and(|message| identity::verify(&entry.key, &message, &entry.signature).is_ok())
    }

    fn check_envelope(&self) -> Result<(), BootstrapError> {
        if self.tag != LIST_TAG {
            return Err(BootstrapError::WrongTag {
                found: self.tag.clone(),
            });
        }
        if self.version != PROTOCOL_VERSION {
            return Err(BootstrapError::UnsupportedVersion {
                found: self.version,
                supported: PROTOCOL_VERSION,
            });
        }
        Ok(())
    }

    /// Whether both lists have the same body (by canonical bytes).
    pub fn same_body(&self, other: &ListFile) -> bool {
        matches!(
            (canonical_bytes(&self.body), canonical_bytes(&other.body)),
            (Ok(a), Ok(b)) if a == b
        )
    }

    /// This list without its rotation links: the form it takes as a link itself.
    pub(crate) fn as_link(&self) -> ListFile {
        ListFile {
            rotations: Vec::new(),
            ..self.clone()
        }
    }

    /// This list with `links` as its rotation links (signatures unaffected: links are not
    /// signed, each is its own proof).
    pub(crate) fn with_rotations(&self, links: Vec<ListFile>) -> ListFile {
        ListFile {
            rotations: links,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintainers::MaintainerSet;
    use rot_proto::{Signature, Signed};
    use serde_json::json;

    fn maintainer(seed: u8) -> Identity {
        Identity::from_seed([seed; 32])
    }

    fn unsigned(threshold: u64) -> ListFile {
        let keys = (1..=3).map(|seed| maintainer(seed).public_key()).collect();
        let set = MaintainerSet::new(threshold, keys).unwrap();
        ListFile::unsigned(&ListBody::new(set, 1_000, 1_000)).unwrap()
    }

    #[test]
    fn a_signature_entry_and_the_body_form_a_rot_proto_envelope() {
        let mut list = unsigned(1);
        list.sign(&maintainer(2)).unwrap();
        let entry = &list.signatures()[0];
        let envelope = json!({
            "tag": LIST_TAG,
            "version": PROTOCOL_VERSION,
            "key": entry.key,
            "body": list.body_value(),
            "signature": entry.signature,
        });
        let signed: Signed<ListBody> = serde_json::from_value(envelope).unwrap();
        assert_eq!(signed.verify().unwrap(), list.decode_body().unwrap());
    }

    #[test]
    fn only_maintainers_sign_and_signing_again_replaces() {
        let mut list = unsigned(2);
        assert!(matches!(
            list.sign(&maintainer(9)),
            Err(BootstrapError::NotAMaintainer { .. })
        ));
        list.sign(&maintainer(3)).unwrap();
        list.sign(&maintainer(1)).unwrap();
        list.sign(&maintainer(3)).unwrap();
        assert_eq!(list.signatures().len(), 2);
        let keys: Vec<_> = list.signatures().iter().map(|entry| entry.key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let status = list.signing_status().unwrap();
        assert!(status.complete());
        assert_eq!(status.maintainers.valid, 2);
        assert_eq!(status.maintainers.missing, vec![maintainer(2).public_key()]);
        list.verify().unwrap();
    }

    #[test]
    fn verdicts_name_each_bad_entry() {
        let mut list = unsigned(1);
        list.sign(&maintainer(1)).unwrap();
        let mut entries = list.signatures().to_vec();
        entries.push(entries[0].clone());
        let stranger = maintainer(9);
        entries.push(ListSignature {
            key: stranger.public_key(),
            signature: stranger.sign(b"x"),
        });
        entries.push(ListSignature {
            key: maintainer(2).public_key(),
            signature: Signature([0; 64]),
        });
        list.signatures = entries;
        let body = list.decode_body().unwrap();
        let verdicts: Vec<_> = list
            .signature_checks(&body)
            .into_iter()
            .map(|check| check.verdict)
            .collect();
        assert_eq!(
            verdicts,
            [
                SignatureVerdict::Valid,
                SignatureVerdict::Duplicate,
                SignatureVerdict::UnknownSigner,
                SignatureVerdict::Invalid
            ]
        );
        assert!(!list.signing_status().unwrap().complete());
        assert!(matches!(
            list.verify(),
            Err(BootstrapError::DuplicateSignature { .. })
        ));
    }

    #[test]
    fn merges_valid_signatures_of_the_same_body_only() {
        let mut mine = unsigned(3);
        mine.sign(&maintainer(1)).unwrap();
        let mut theirs = unsigned(3);
        theirs.sign(&maintainer(2)).unwrap();
        theirs.sign(&maintainer(1)).unwrap();
        let path = Path::new("theirs.json");
        assert_eq!(mine.merge(&theirs, path).unwrap(), 1);
        assert_eq!(mine.merge(&theirs, path).unwrap(), 0);
        assert_eq!(mine.signatures().len(), 2);

        let mut forged = theirs.clone();
        forged.signatures[0].signature = Signature([0; 64]);
        let before = mine.clone();
        assert!(matches!(
            mine.merge(&forged, path),
            Err(BootstrapError::Tampered { .. })
        ));
        assert_eq!(mine, before);

        let other = unsigned(2);
        assert!(matches!(
            mine.merge(&other, path),
            Err(BootstrapError::DifferentBody { .. })
        ));
    }

    #[test]
    fn envelope_and_shape_errors_come_first() {
        let mut list = unsigned(1);
        list.sign(&maintainer(1)).unwrap();
        let mut wrong_tag = list.clone();
        wrong_tag.tag = "rot/heartbeat".to_owned();
        assert!(matches!(
            wrong_tag.verify(),
            Err(BootstrapError::WrongTag { .. })
        ));
        let mut future = list.clone();
        future.version = 2;
        assert!(matches!(
            future.verify(),
            Err(BootstrapError::UnsupportedVersion { found: 2, .. })
        ));
        let mut shapeless = list.clone();
        shapeless.body["serial"] = json!("one");
        assert!(matches!(
            shapeless.verify(),
            Err(BootstrapError::Malformed(_))
        ));
        let mut broken = list.clone();
        broken.body["expires_at"] = json!(0);
        assert!(matches!(broken.verify(), Err(BootstrapError::Invalid(_))));
        assert!(matches!(
            ListFile::from_slice(b"{\"tag\": 1}"),
            Err(BootstrapError::Malformed(_))
        ));
        let huge = vec![b' '; MAX_LIST_BYTES as usize + 1];
        assert!(matches!(
            ListFile::from_slice(&huge),
            Err(BootstrapError::TooLarge { .. })
        ));
    }

    #[test]
    fn json_round_trip_keeps_the_list() {
        let mut list = unsigned(1);
        list.sign(&maintainer(1)).unwrap();
        let text = list.to_json();
        assert!(text.ends_with('\n'));
        assert!(!text.contains("rotations"));
        assert_eq!(ListFile::from_slice(text.as_bytes()).unwrap(), list);
    }
}
