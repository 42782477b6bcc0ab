//! Editing lists, for the maintainers' tool. Signatures always cover what is in the file, so an
//! edit never leaves a stale signature behind:
//!
//! - editing a complete list (all signatures valid, thresholds reached: a published list)
//!   drafts its successor: serial + 1, issued now for the same validity period, no signatures,
//!   and the rotation links carried forward;
//! - editing an incomplete list (a draft still being signed) changes it in place and drops the
//!   signatures it had collected, which no longer match.

use crate::BootstrapError;
use crate::body::ListBody;
use crate::list::ListFile;
use crate::trust::{normalize_links, successor_links};

/// The outcome of an edit.
#[derive(Debug, Clone)]
pub struct Edit {
    /// The edited, unsigned list.
    pub file: ListFile,
    /// The serial of the complete list this draft succeeds, if the edit started a new version.
    pub succeeds: Option<u64>,
    /// Signatures of the incomplete list that the edit dropped.
    pub dropped_signatures: usize,
}

impl ListFile {
    /// Applies `change` to the body as described in the module documentation. `now` is the
    /// issue time of a new version. Refuses a list with fields this version does not know
    /// (they would be lost) and a change that breaks the format's rules.
    pub fn edit(
        &self,
        now: u64,
        change: impl FnOnce(&mut ListBody) -> Result<(), BootstrapError>,
    ) -> Result<Edit, BootstrapError> {
        let body = self.decode_body()?;
        self.check_known_fields(&body)?;
        let (mut next, links, succeeds, dropped_signatures) = match self.verify() {
            Ok(published) => {
                let mut next = body.clone();
                next.serial = body.serial.saturating_add(1);
                next.issued_at = now;
                next.expires_at = now.saturating_add(body.validity_secs());
                next.previous_maintainers = None;
                let links = successor_links(&published);
                (next, links, Some(body.serial), 0)
            }
            Err(_) => (
                body,
                self.rotations().to_vec(),
                None,
                self.signatures().len(),
            ),
        };
        change(&mut next)?;
        let links = normalize_links(links, next.serial);
        let file = ListFile::unsigned(&next)?.with_rotations(links);
        Ok(Edit {
            file,
            succeeds,
            dropped_signatures,
        })
    }

    /// Re-issues the list from `now` for `valid_secs` (default: its current validity period),
    /// as a new version if it was complete.
    pub fn renew(&self, now: u64, valid_secs: Option<u64>) -> Result<Edit, BootstrapError> {
        self.edit(now, |body| {
            let valid = valid_secs.unwrap_or_else(|| body.validity_secs());
            body.issued_at = now;
            body.expires_at = now.saturating_add(valid);
            Ok(())
        })
    }

    /// Refuses to edit a body whose JSON has more than `decoded` knows.
    fn check_known_fields(&self, decoded: &ListBody) -> Result<(), BootstrapError> {
        let known =
            serde_json::to_value(decoded).map_err(|e| BootstrapError::Invalid(e.to_string()))?;
        // Optional fields may be spelled `null` as well as left out.
        let mut received = self.body_value().clone();
        if let Some(fields) = received.as_object_mut() {
            fields.retain(|_, value| !value.is_null());
        }
        if known == received {
            return Ok(());
        }
        let unknown: Vec<&str> = match (received.as_object(), known.as_object()) {
            (Some(received), Some(known)) => received
                .keys()
                .filter(|key| !known.contains_key(*key))
                .map(String::as_str)
                .collect(),
            _ => Vec::new(),
        };
        Err(BootstrapError::UnknownFields(if unknown.is_empty() {
            "inside nested objects".to_owned()
        } else {
            unknown.join(", ")
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintainers::MaintainerSet;
    use rot_proto::Identity;
    use serde_json::json;

    fn maintainer(seed: u8) -> Identity {
        Identity::from_seed([seed; 32])
    }

    fn set(threshold: u64, seeds: &[u8]) -> MaintainerSet {
        let keys = seeds
            .iter()
            .map(|&seed| maintainer(seed).public_key())
            .collect();
        MaintainerSet::new(threshold, keys).unwrap()
    }

    fn signed(file: &ListFile, seeds: &[u8]) -> ListFile {
        let mut file = file.clone();
        for &seed in seeds {
            file.sign(&maintainer(seed)).unwrap();
        }
        file
    }

    fn first() -> ListFile {
        signed(
            &ListFile::unsigned(&ListBody::new(set(2, &[1, 2, 3]), 1_000, 500)).unwrap(),
            &[1, 2],
        )
    }

    fn with_comment(body: &mut ListBody) -> Result<(), BootstrapError> {
        body.comment = Some("edited".to_owned());
        Ok(())
    }

    #[test]
    fn editing_a_complete_list_drafts_its_successor() {
        let edit = first().edit(2_000, with_comment).unwrap();
        assert_eq!(edit.succeeds, Some(1));
        assert_eq!(edit.dropped_signatures, 0);
        assert!(edit.file.signatures().is_empty());
        let body = edit.file.decode_body().unwrap();
        assert_eq!(body.serial, 2);
        assert_eq!((body.issued_at, body.expires_at), (2_000, 2_500));
        assert_eq!(body.comment.as_deref(), Some("edited"));
    }

    #[test]
    fn editing_an_incomplete_list_changes_it_in_place() {
        let partial = first().edit(2_000, with_comment).unwrap().file;
        let partial = signed(&partial, &[3]);
        let edit = partial
            .edit(3_000, |body| {
                body.comment = None;
                Ok(())
            })
            .unwrap();
        assert_eq!(edit.succeeds, None);
        assert_eq!(edit.dropped_signatures, 1);
        let body = edit.file.decode_body().unwrap();
        assert_eq!((body.serial, body.issued_at), (2, 2_000));
        assert_eq!(body.comment, None);
    }

    #[test]
    fn a_rotation_is_carried_as_a_link_into_later_versions() {
        let rotation = first()
            .edit(2_000, |body| {
                body.set_maintainers(set(2, &[2, 3, 4]));
                Ok(())
            })
            .unwrap()
            .file;
        let rotation = signed(&rotation, &[1, 2, 3, 4]);
        assert_eq!(
            rotation.decode_body().unwrap().previous_maintainers,
            Some(set(2, &[1, 2, 3]))
        );
        rotation.verify().unwrap();
        let next = rotation.edit(3_000, with_comment).unwrap().file;
        assert_eq!(next.rotations(), std::slice::from_ref(&rotation.as_link()));
        let next_body = next.decode_body().unwrap();
        assert_eq!(next_body.previous_maintainers, None);
        assert_eq!(next_body.maintainers, set(2, &[2, 3, 4]));
    }

    #[test]
    fn a_broken_change_is_refused() {
        let refused = first().edit(2_000, |body| {
            body.maintainers.threshold = 9;
            Ok(())
        });
        assert!(matches!(refused, Err(BootstrapError::Invalid(_))));
    }

    #[test]
    fn renew_reissues_for_the_same_or_a_new_period() {
        let same = first()
            .renew(5_000, None)
            .unwrap()
            .file
            .decode_body()
            .unwrap();
        assert_eq!(
            (same.serial, same.issued_at, same.expires_at),
            (2, 5_000, 5_500)
        );
        let longer = first()
            .renew(5_000, Some(100))
            .unwrap()
            .file
            .decode_body()
            .unwrap();
        assert_eq!(longer.expires_at, 5_100);
    }

    #[test]
    fn fields_unknown_to_this_version_are_not_silently_dropped() {
        let mut value = serde_json::to_value(first()).unwrap();
        value["body"]["mirrors"] = json!(["https://m.example"]);
        let newer: ListFile = serde_json::from_value(value).unwrap();
        match newer.edit(2_000, with_comment) {
            Err(BootstrapError::UnknownFields(fields)) => assert_eq!(fields, "mirrors"),
            other => panic!("{other:?}"),
        }
        let mut value = serde_json::to_value(first()).unwrap();
        value["body"]["previous_maintainers"] = json!(null);
        let spelled_null: ListFile = serde_json::from_value(value).unwrap();
        spelled_null.edit(2_000, with_comment).unwrap();
    }
}
