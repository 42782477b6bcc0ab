//! Ed25519 identities: the key a server or proxy signs with, the public key others know it by,
//! and its signatures. Every text form is lowercase hex, the one spelling all implementations
//! agree on.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Parses exactly `2 * N` lowercase hex digits; the error text says what was wrong.
pub(crate) fn parse_lower_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    if text.len() != 2 * N {
        return Err(format!("expected {} hex digits, got {}", 2 * N, text.len()));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("expected lowercase hex digits".to_owned());
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Fills `N` bytes from the operating system's random number generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::Randomness(e.to_string()))?;
    Ok(bytes)
}

/// An ed25519 public key: how proxies, servers and wallets name a signer. Always a valid,
/// non-small-order curve point; text form is 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Accepts the 32 bytes of a compressed ed25519 point that can verify signatures.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, Error> {
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| Error::MalformedKey("not a point on the ed25519 curve".to_owned()))?;
        if key.is_weak() {
            return Err(Error::MalformedKey("small-order point".to_owned()));
        }
        Ok(Self(bytes))
    }

    /// The 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| Error::MalformedKey("not a point on the ed25519 curve".to_owned()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::from_bytes(parse_lower_hex(text).map_err(Error::MalformedKey)?)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signature; text form is 128 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        parse_lower_hex(text)
            .map(Self)
            .map_err(Error::MalformedSignature)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Checks that `signature` was made over `message` by `public_key`. Uses ed25519-dalek's
/// strict verification (no malleable or small-order signatures), so one message has one
/// accepted signature per key.
pub fn verify(public_key: &PublicKey, message: &[u8], signature: &Signature) -> Result<(), Error> {
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    public_key
        .verifying_key()?
        .verify_strict(message, &signature)
        .map_err(|_| Error::BadSignature)
}

/// A signing identity: the ed25519 secret key of a server or proxy. Its `Debug` form shows only
/// the public key, so the secret never lands in logs.
#[derive(Clone)]
pub struct Identity {
    signing_key: SigningKey,
}

impl Identity {
    /// A fresh identity from the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self::from_seed(random_bytes()?))
    }

    /// The identity whose 32-byte ed25519 secret seed is `seed` (RFC 8032 private key).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            signing_key: SigningKey::from_bytes(&seed),
        }
    }

    /// The secret seed, for writing the key file.
    pub(crate) fn seed(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    /// The public key others verify this identity's signatures with.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing_key.verifying_key().to_bytes())
    }

    /// Signs `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing_key.sign(message).to_bytes())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public_key", &self.public_key())
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 section 7.1, test 1 (empty message).
    const RFC_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    fn rfc_identity() -> Identity {
        Identity::from_seed(parse_lower_hex(RFC_SEED).unwrap())
    }

    #[test]
    fn matches_rfc8032_test_vector() {
        let identity = rfc_identity();
        assert_eq!(identity.public_key().to_string(), RFC_PUBLIC);
        let signature = identity.sign(b"");
        assert_eq!(signature.to_string(), RFC_SIGNATURE);
        verify(&identity.public_key(), b"", &signature).unwrap();
    }

    #[test]
    fn verify_rejects_other_message_or_key() {
        let identity = rfc_identity();
        let signature = identity.sign(b"hello");
        assert!(matches!(
            verify(&identity.public_key(), b"hellO", &signature),
            Err(Error::BadSignature)
        ));
        let other = Identity::from_seed([7; 32]).public_key();
        assert!(matches!(
            verify(&other, b"hello", &signature),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn generated_identities_differ() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.public_key(), b.public_key());
    }

    #[test]
    fn public_key_text_and_serde() {
        let key: PublicKey = RFC_PUBLIC.parse().unwrap();
        assert_eq!(key.to_string(), RFC_PUBLIC);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{RFC_PUBLIC}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), key);
    }

    #[test]
    fn public_key_rejects_malformed_text() {
        let upper = RFC_PUBLIC.to_uppercase();
        let short = &RFC_PUBLIC[..62];
        // 0x02 followed by zeros has no square root: not a curve point.
        let off_curve = format!("02{}", "00".repeat(31));
        // The identity point has order 1.
        let small_order = format!("01{}", "00".repeat(31));
        for text in [upper.as_str(), short, "", &off_curve, &small_order] {
            assert!(
                matches!(text.parse::<PublicKey>(), Err(Error::MalformedKey(_))),
                "{text}"
            );
        }
        assert!(serde_json::from_str::<PublicKey>("\"zz\"").is_err());
    }

    #[test]
    fn signature_text_round_trips_and_rejects_malformed() {
        let signature: Signature = RFC_SIGNATURE.parse().unwrap();
        assert_eq!(signature.to_string(), RFC_SIGNATURE);
        assert!(matches!(
            RFC_SIGNATURE[..126].parse::<Signature>(),
            Err(Error::MalformedSignature(_))
        ));
        assert!(RFC_SIGNATURE.to_uppercase().parse::<Signature>().is_err());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let text = format!("{:?}", rfc_identity());
        assert!(text.contains(RFC_PUBLIC));
        assert!(!text.contains(RFC_SEED));
        assert!(!text.contains(&format!("{:?}", parse_lower_hex::<32>(RFC_SEED).unwrap())));
    }
}
