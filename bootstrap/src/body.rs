//! The signed contents of a bootstrap list: which proxies serve which coin network, how long
//! the list holds, and who may sign it.

use std::collections::{BTreeMap, BTreeSet};

use rot_proto::SignedBody;
use serde::{Deserialize, Serialize};

use crate::maintainers::MaintainerSet;
use crate::proxy::{ProxyEntry, validate_coin_id};

/// Most proxies a list may name over all coins.
pub const MAX_PROXIES: usize = 512;

/// Longest `comment` accepted.
pub const MAX_COMMENT_LEN: usize = 500;

/// The body of a list: what the maintainers sign. Field meanings are in `docs/bootstrap.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBody {
    /// The list's version number: every new list has a higher one, and clients refuse lower
    /// ones than they hold (rollback).
    pub serial: u64,
    /// When it was made, unix seconds.
    pub issued_at: u64,
    /// When it stops being usable, unix seconds.
    pub expires_at: u64,
    /// The keys that sign this list, and its successors until they change.
    pub maintainers: MaintainerSet,
    /// Present only on a list that changes the maintainer set: the set of the list before, which
    /// must sign this one too, so clients trusting it can follow the rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_maintainers: Option<MaintainerSet>,
    /// Proxies per coin network, keyed by coin profile id (`ltc`, `ltc-test`, `ltc-regtest`).
    pub proxies: BTreeMap<String, Vec<ProxyEntry>>,
    /// Free text for people, e.g. that a list is a demo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A signature entry plus the body is an ordinary rot-proto envelope of this type.
impl SignedBody for ListBody {
    const TAG: &'static str = crate::signature::LIST_TAG;
}

impl ListBody {
    /// A first list (serial 1) without proxies, valid from `now` for `valid_secs`.
    pub fn new(maintainers: MaintainerSet, now: u64, valid_secs: u64) -> Self {
        Self {
            serial: 1,
            issued_at: now,
            expires_at: now.saturating_add(valid_secs),
            maintainers,
            previous_maintainers: None,
            proxies: BTreeMap::new(),
            comment: None,
        }
    }

    /// The proxies of one coin network; empty when the list names none.
    pub fn proxies_for(&self, coin_id: &str) -> &[ProxyEntry] {
        self.proxies.get(coin_id).map_or(&[], Vec::as_slice)
    }

    /// How long the list was issued for.
    pub fn validity_secs(&self) -> u64 {
        self.expires_at.saturating_sub(self.issued_at)
    }

    /// Replaces the maintainer set. On a successor list (serial > 1) the set it started from is
    /// kept as `previous_maintainers` so that the old set must co-sign the rotation; changing
    /// back to that set makes the list an ordinary one again.
    pub fn set_maintainers(&mut self, new: MaintainerSet) {
        if self.serial > 1 && self.previous_maintainers.is_none() {
            self.previous_maintainers = Some(self.maintainers.clone());
        }
        if self
            .previous_maintainers
            .as_ref()
            .is_some_and(|previous| previous.same_as(&new))
        {
            self.previous_maintainers = None;
        }
        self.maintainers = new;
    }

    /// Checks every rule of the format that the JSON shape alone does not; the error names the
    /// field.
    pub fn validate(&self) -> Result<(), String> {
        if self.serial == 0 {
            return Err("serial must be at least 1".to_owned());
        }
        if self.expires_at <= self.issued_at {
            return Err(format!(
                "expires_at {} must be after issued_at {}",
                self.expires_at, self.issued_at
            ));
        }
        self.maintainers
            .validate()
            .map_err(|reason| format!("maintainers: {reason}"))?;
        if let Some(previous) = &self.previous_maintainers {
            previous
                .validate()
                .map_err(|reason| format!("previous_maintainers: {reason}"))?;
            if previous.same_as(&self.maintainers) {
                return Err(
                    "previous_maintainers equals maintainers; omit it when the set is unchanged"
                        .to_owned(),
                );
            }
        }
        let total: usize = self.proxies.values().map(Vec::len).sum();
        if total > MAX_PROXIES {
            return Err(format!(
                "{total} proxies; a list names at most {MAX_PROXIES}"
            ));
        }
        for (coin, entries) in &self.proxies {
            validate_coin_id(coin)?;
            if entries.is_empty() {
                return Err(format!("proxies.{coin} is empty; remove the coin instead"));
            }
            let mut urls = BTreeSet::new();
            let mut keys = BTreeSet::new();
            for entry in entries {
                entry
                    .validate()
                    .map_err(|reason| format!("proxies.{coin}: {reason}"))?;
                if !urls.insert(&entry.url) {
                    return Err(format!("proxies.{coin}: url {} listed twice", entry.url));
                }
                if !keys.insert(entry.key) {
                    return Err(format!("proxies.{coin}: key {} listed twice", entry.key));
                }
            }
        }
        if let Some(comment) = &self.comment
            && (comment.len() > MAX_COMMENT_LEN || comment.chars().any(char::is_control))
        {
            return Err(format!(
                "comment must be at most {MAX_COMMENT_LEN} bytes of printable text"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rot_proto::{Identity, PublicKey};

    fn key(seed: u8) -> PublicKey {
        Identity::from_seed([seed; 32]).public_key()
    }

    fn set(threshold: u64, seeds: &[u8]) -> MaintainerSet {
        MaintainerSet::new(threshold, seeds.iter().copied().map(key).collect()).unwrap()
    }

    fn proxy(url: &str, seed: u8) -> ProxyEntry {
        ProxyEntry {
            url: url.to_owned(),
            key: key(seed),
            team: "Team".to_owned(),
            contact: "ops@example.org".to_owned(),
        }
    }

    fn body() -> ListBody {
        let mut body = ListBody::new(set(2, &[1, 2, 3]), 1_000, 500);
        body.proxies.insert(
            "ltc".to_owned(),
            vec![
                proxy("https://a.example", 10),
                proxy("https://b.example", 11),
            ],
        );
        body
    }

    #[test]
    fn a_good_body_validates_and_lists_proxies() {
        let body = body();
        body.validate().unwrap();
        assert_eq!(body.proxies_for("ltc").len(), 2);
        assert!(body.proxies_for("ltc-test").is_empty());
        assert_eq!(body.validity_secs(), 500);
    }

    type Breaker = Box<dyn Fn(&mut ListBody)>;

    #[test]
    fn each_broken_rule_is_named() {
        let cases: Vec<(&str, Breaker)> = vec![
            ("serial", Box::new(|b| b.serial = 0)),
            ("expires_at", Box::new(|b| b.expires_at = b.issued_at)),
            ("maintainers", Box::new(|b| b.maintainers.threshold = 4)),
            (
                "previous_maintainers equals",
                Box::new(|b| b.previous_maintainers = Some(b.maintainers.clone())),
            ),
            (
                "previous_maintainers: threshold",
                Box::new(|b| {
                    let mut previous = set(1, &[4]);
                    previous.threshold = 0;
                    b.previous_maintainers = Some(previous);
                }),
            ),
            (
                "coin id",
                Box::new(|b| {
                    let entries = b.proxies.remove("ltc").unwrap();
                    b.proxies.insert("LTC".to_owned(), entries);
                }),
            ),
            (
                "is empty",
                Box::new(|b| {
                    b.proxies.insert("ltc-test".to_owned(), vec![]);
                }),
            ),
            (
                "url https://a.example listed twice",
                Box::new(|b| b.proxies.get_mut("ltc").unwrap()[1].url = "https://a.example".into()),
            ),
            (
                "listed twice",
                Box::new(|b| b.proxies.get_mut("ltc").unwrap()[1].key = key(10)),
            ),
            (
                "proxies.ltc: url",
                Box::new(|b| b.proxies.get_mut("ltc").unwrap()[0].url = "a.example".into()),
            ),
            ("comment", Box::new(|b| b.comment = Some("a\u{7}".into()))),
        ];
        for (expected, breaks) in cases {
            let mut broken = body();
            breaks(&mut broken);
            let reason = broken.validate().unwrap_err();
            assert!(reason.contains(expected), "{expected}: {reason}");
        }
    }

    #[test]
    fn caps_the_number_of_proxies() {
        let mut body = body();
        let many = (0..=MAX_PROXIES)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 100).to_le_bytes());
                ProxyEntry {
                    url: format!("https://p{i}.example"),
                    key: Identity::from_seed(seed).public_key(),
                    team: "T".into(),
                    contact: "c".into(),
                }
            })
            .collect();
        body.proxies.insert("btc".to_owned(), many);
        assert!(body.validate().unwrap_err().contains("at most"));
    }

    #[test]
    fn rotation_keeps_the_starting_set_as_previous() {
        let mut successor = body();
        successor.serial = 2;
        let start = successor.maintainers.clone();
        successor.set_maintainers(set(2, &[1, 2, 4]));
        assert_eq!(successor.previous_maintainers.as_ref(), Some(&start));
        // A second change in the same draft still rotates from the starting set.
        successor.set_maintainers(set(1, &[5]));
        assert_eq!(successor.previous_maintainers.as_ref(), Some(&start));
        successor.validate().unwrap();
        // Changing back undoes the rotation.
        successor.set_maintainers(start.clone());
        assert_eq!(successor.previous_maintainers, None);

        // A first list has no predecessor to rotate from.
        let mut first = body();
        first.set_maintainers(set(1, &[5]));
        assert_eq!(first.previous_maintainers, None);
    }
}
