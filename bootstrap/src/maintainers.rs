//! A maintainer set: the keys allowed to sign the list and how many of them must (k of n).
//! Clients pin one; every list names the one that signs it.

use std::collections::BTreeSet;
use std::fmt;

use rot_proto::PublicKey;
use serde::{Deserialize, Serialize};

use crate::BootstrapError;

/// Most keys a set may have; bounds the signature checks a list can demand.
pub const MAX_MAINTAINERS: usize = 32;

/// Largest pins file read: far more than [`MAX_MAINTAINERS`] keys need.
const MAX_PINS_BYTES: u64 = 16 * 1024;

/// k of n maintainer keys. Two sets are the same when they have the same keys (in any order)
/// and the same threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintainerSet {
    /// How many distinct keys of the set must sign (k).
    pub threshold: u64,
    /// The keys (n), distinct; written sorted.
    pub keys: Vec<PublicKey>,
}

impl MaintainerSet {
    /// A checked set, keys sorted.
    pub fn new(threshold: u64, keys: Vec<PublicKey>) -> Result<Self, BootstrapError> {
        let mut set = Self { threshold, keys };
        set.keys.sort_unstable();
        set.validate()
            .map_err(|reason| BootstrapError::Invalid(format!("maintainer set: {reason}")))?;
        Ok(set)
    }

    /// Parses pinned keys from JSON text `{"threshold": k, "keys": ["<hex>", ...]}`, as shipped
    /// with clients or written by `rot-bootstrap demo`.
    pub fn from_json(text: &str) -> Result<Self, BootstrapError> {
        let set: Self = serde_json::from_str(text)
            .map_err(|e| BootstrapError::Malformed(format!("maintainer set: {e}")))?;
        Self::new(set.threshold, set.keys)
    }

    /// Reads a pins file (the JSON of [`MaintainerSet::from_json`]); errors name the file.
    pub fn read(path: &std::path::Path) -> Result<Self, BootstrapError> {
        let bytes = crate::storage::read_capped(path, MAX_PINS_BYTES)?.ok_or_else(|| {
            BootstrapError::Io {
                path: path.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            BootstrapError::Malformed(format!("pins file {}: not UTF-8", path.display()))
        })?;
        Self::from_json(&text).map_err(|error| match error {
            BootstrapError::Malformed(why) => {
                BootstrapError::Malformed(format!("pins file {}: {why}", path.display()))
            }
            other => other,
        })
    }

    /// Checks 1 <= threshold <= keys <= [`MAX_MAINTAINERS`] and that keys are distinct.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let n = self.keys.len();
        if n == 0 || n > MAX_MAINTAINERS {
            return Err(format!("{n} keys; a set has 1 to {MAX_MAINTAINERS}"));
        }
        if self.threshold == 0 || self.threshold > n as u64 {
            return Err(format!("threshold {} must be 1 to {n}", self.threshold));
        }
        if self.key_set().len() != n {
            return Err("a key appears twice".to_owned());
        }
        Ok(())
    }

    /// Whether `key` belongs to the set.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.contains(key)
    }

    /// Whether both sets have the same keys and threshold, whatever the order of the keys.
    pub fn same_as(&self, other: &MaintainerSet) -> bool {
        self.threshold == other.threshold && self.key_set() == other.key_set()
    }

    fn key_set(&self) -> BTreeSet<&PublicKey> {
        self.keys.iter().collect()
    }
}

impl fmt::Display for MaintainerSet {
    /// `2 of [ab12…, cd34…, ef56…]`, short key prefixes so that a refusal stays readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|key| format!("{}…", &key.to_string()[..12]))
            .collect();
        write!(f, "{} of [{}]", self.threshold, keys.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rot_proto::Identity;

    fn key(seed: u8) -> PublicKey {
        Identity::from_seed([seed; 32]).public_key()
    }

    #[test]
    fn sorts_keys_and_compares_as_a_set() {
        let a = MaintainerSet::new(2, vec![key(3), key(1), key(2)]).unwrap();
        let mut expected = vec![key(1), key(2), key(3)];
        expected.sort();
        assert_eq!(a.keys, expected);
        let b = MaintainerSet {
            threshold: 2,
            keys: vec![key(2), key(3), key(1)],
        };
        assert!(a.same_as(&b));
        let other_threshold = MaintainerSet::new(3, b.keys.clone()).unwrap();
        assert!(!a.same_as(&other_threshold));
        let other_keys = MaintainerSet::new(2, vec![key(1), key(2), key(4)]).unwrap();
        assert!(!a.same_as(&other_keys));
    }

    #[test]
    fn refuses_impossible_sets() {
        let cases = [
            (0, vec![key(1)]),
            (2, vec![key(1)]),
            (1, vec![]),
            (1, vec![key(1), key(1)]),
            (1, (0..=MAX_MAINTAINERS as u8).map(key).collect()),
        ];
        for (threshold, keys) in cases {
            let n = keys.len();
            assert!(
                matches!(
                    MaintainerSet::new(threshold, keys),
                    Err(BootstrapError::Invalid(_))
                ),
                "{threshold} of {n}"
            );
        }
    }

    #[test]
    fn parses_pins_from_json() {
        let text = format!(
            r#"{{"threshold": 1, "keys": ["{}", "{}"]}}"#,
            key(1),
            key(2)
        );
        let set = MaintainerSet::from_json(&text).unwrap();
        assert_eq!(set.threshold, 1);
        assert!(set.contains(&key(2)));
        assert!(matches!(
            MaintainerSet::from_json(r#"{"threshold": 1, "keys": ["zz"]}"#),
            Err(BootstrapError::Malformed(_))
        ));
        assert!(matches!(
            MaintainerSet::from_json(&format!(r#"{{"threshold": 3, "keys": ["{}"]}}"#, key(1))),
            Err(BootstrapError::Invalid(_))
        ));
    }

    #[test]
    fn displays_threshold_and_short_keys() {
        let set = MaintainerSet::new(1, vec![key(1)]).unwrap();
        let text = set.to_string();
        assert!(text.starts_with("1 of ["), "{text}");
        assert!(text.contains(&key(1).to_string()[..12]), "{text}");
    }
}
