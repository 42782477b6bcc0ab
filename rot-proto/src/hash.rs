//! Bitcoin-family hashing: double SHA-256 and the 32-byte hash type whose text form is
//! byte-reversed hex, as every node RPC and the Esplora API print block and transaction ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::Error;

/// SHA-256 of SHA-256: the hash of headers, transactions, merkle nodes and base58 checksums.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// Single SHA-256, as Electrum script hashes use.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A 32-byte hash kept in internal (wire) byte order; displayed and parsed byte-reversed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// Hashes `data` with [`sha256d`].
    pub fn of(data: &[u8]) -> Self {
        Self(sha256d(data))
    }

    /// Bytes in internal (wire) order.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Bytes in display order (reversed), as printed in hex.
    pub fn to_display_bytes(&self) -> [u8; 32] {
        let mut bytes = self.0;
        bytes.reverse();
        bytes
    }

    /// The hash as printed (display order, lowercase hex), written into `digits`. Why a
    /// buffer on the stack: hashes are printed in every JSON answer, and `hex::encode` built a
    /// String a char at a time (9 % of rot-server's CPU per UTXO answer).
    fn display_hex<'a>(&self, digits: &'a mut [u8; 64]) -> &'a str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (pair, byte) in digits.chunks_exact_mut(2).zip(self.0.iter().rev()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        // ASCII by construction.
        std::str::from_utf8(digits).unwrap_or_default()
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_hex(&mut [0u8; 64]))
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

impl FromStr for Hash256 {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        if s.len() != 64 {
            return Err(Error::InvalidHash(format!(
                "expected 64 hex digits, got {}",
                s.len()
            )));
        }
        hex::decode_to_slice(s, &mut bytes).map_err(|e| Error::InvalidHash(e.to_string()))?;
        bytes.reverse();
        Ok(Self(bytes))
    }
}

impl Serialize for Hash256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.display_hex(&mut [0u8; 64]))
    }
}

impl<'de> Deserialize<'de> for Hash256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_byte_reversed() {
        // Litecoin mainnet genesis block header hash.
        let text = "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2";
        let hash: Hash256 = text.parse().unwrap();
        assert_eq!(hash.0[0], 0xe2);
        assert_eq!(hash.to_string(), text);
        assert_eq!(serde_json::to_string(&hash).unwrap(), format!("\"{text}\""));
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("zz".parse::<Hash256>().is_err());
        assert!("g".repeat(64).parse::<Hash256>().is_err());
    }

    #[test]
    fn sha256d_of_empty() {
        assert_eq!(
            hex::encode(sha256d(b"")),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }
}
