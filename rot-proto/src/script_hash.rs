//! The script hash: SHA-256 of an output's scriptPubKey, the key under which indexers file
//! every output, including scripts that have no address.
//!
//! Two text forms are in use and they differ in byte order:
//! - Esplora's `/scripthash/:hash` takes the digest as SHA-256 produces it (Blockstream electrs
//!   `parse_scripthash` hex-decodes without reversing; mempool/mempool PR #4386 reverses it
//!   before asking an Electrum server). This is the form of [`Display`](std::fmt::Display),
//!   [`FromStr`] and serde, because ROT serves the Esplora API.
//! - The Electrum protocol (ElectrumX, Fulcrum) displays it byte-reversed, like a txid: use
//!   [`ScriptHash::to_electrum_hex`] / [`ScriptHash::from_electrum_hex`] there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;
use crate::hash::sha256;

/// SHA-256 of a scriptPubKey, kept in digest order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ScriptHash([u8; 32]);

impl ScriptHash {
    /// Hashes a scriptPubKey.
    pub fn of(script_pubkey: &[u8]) -> Self {
        Self(sha256(script_pubkey))
    }

    /// Wraps a digest given in SHA-256 output order.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest in SHA-256 output order (the order indexes store).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The Electrum protocol's text form: byte-reversed hex.
    pub fn to_electrum_hex(&self) -> String {
        let mut bytes = self.0;
        bytes.reverse();
        hex::encode(bytes)
    }

    /// Parses the Electrum protocol's byte-reversed hex form.
    pub fn from_electrum_hex(text: &str) -> Result<Self, Error> {
        let mut hash: Self = text.parse()?;
        hash.0.reverse();
        Ok(hash)
    }
}

impl fmt::Display for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptHash({self})")
    }
}

impl FromStr for ScriptHash {
    type Err = Error;

    /// Parses Esplora's form: 64 hex digits in digest order.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() != 64 {
            return Err(Error::InvalidHash(format!(
                "a script hash is 64 hex digits, got {}",
                s.len()
            )));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|e| Error::InvalidHash(e.to_string()))?;
        Ok(Self(bytes))
    }
}

impl Serialize for ScriptHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScriptHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // P2PKH scriptPubKey and its Electrum script hash, from the ElectrumX snippet quoted at
    // https://qiita.com/you21979@github/items/b63d578fd77da7badd2b
    const SCRIPT: &str = "76a91436896b2798eeec0fc03c95b52a357448ed0dfd4688ac";
    const ELECTRUM: &str = "719bcde52a3ef42b6f665d338eaed567ac66426dd3127595584abbd8e255dd58";

    #[test]
    fn electrum_form_is_reversed_digest() {
        let hash = ScriptHash::of(&hex::decode(SCRIPT).unwrap());
        assert_eq!(hash.to_electrum_hex(), ELECTRUM);
        assert_eq!(ScriptHash::from_electrum_hex(ELECTRUM).unwrap(), hash);
    }

    #[test]
    fn esplora_form_is_digest_order() {
        let script = hex::decode(SCRIPT).unwrap();
        let hash = ScriptHash::of(&script);
        assert_eq!(hash.to_string(), hex::encode(sha256(&script)));
        let mut reversed = hex::decode(ELECTRUM).unwrap();
        reversed.reverse();
        assert_eq!(hash.to_string(), hex::encode(reversed));
        assert_eq!(hash.to_string().parse::<ScriptHash>().unwrap(), hash);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{hash}\""));
        assert_eq!(serde_json::from_str::<ScriptHash>(&json).unwrap(), hash);
    }

    #[test]
    fn rejects_bad_text() {
        assert!("ab".parse::<ScriptHash>().is_err());
        assert!("zz".repeat(32).parse::<ScriptHash>().is_err());
        assert!(ScriptHash::from_electrum_hex(&"0".repeat(63)).is_err());
    }
}
