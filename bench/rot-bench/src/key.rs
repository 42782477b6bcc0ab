//! The benchmark's keys: derived deterministically from their index, so a cached chain can be
//! queried again without storing secrets, and half of them P2WPKH, half P2PKH, so both input
//! kinds (witness and legacy) and both address spellings are exercised.

use anyhow::{Context, anyhow};
use k256::ecdsa::SigningKey;
use ripemd::Ripemd160;
use rot_proto::{Address, CoinProfile};
use sha2::{Digest, Sha256};

/// Domain separation of the key derivation, so these test keys never collide with others.
const DERIVATION_TAG: &[u8] = b"rot-bench key v1";

/// How a key's coins are locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Native segwit v0 pay-to-witness-public-key-hash.
    P2wpkh,
    /// Legacy pay-to-public-key-hash.
    P2pkh,
}

/// One signing key with the script and address it receives coins on.
#[derive(Debug, Clone)]
pub struct BenchKey {
    /// How its outputs are locked.
    pub kind: KeyKind,
    /// The ECDSA key.
    pub signing: SigningKey,
    /// Compressed SEC1 public key.
    pub public: [u8; 33],
    /// HASH160 of the public key.
    pub pubkey_hash: [u8; 20],
    /// The scriptPubKey paying to this key.
    pub script_pubkey: Vec<u8>,
    /// The address spelling of `script_pubkey` on the benchmark's network.
    pub address: String,
}

impl BenchKey {
    /// Key number `index`: secret = SHA-256(tag ‖ index ‖ attempt), the first attempt that is
    /// a valid scalar. Even indexes are P2WPKH, odd ones P2PKH.
    pub fn derive(index: u32, profile: &CoinProfile) -> anyhow::Result<Self> {
        let signing = (0u32..16)
            .find_map(|attempt| {
                let secret = Sha256::new()
                    .chain_update(DERIVATION_TAG)
                    .chain_update(index.to_le_bytes())
                    .chain_update(attempt.to_le_bytes())
                    .finalize();
                SigningKey::from_slice(&secret).ok()
            })
            .ok_or_else(|| anyhow!("no valid secret for key {index}"))?;
        let point = signing.verifying_key().to_sec1_point(true);
        let public: [u8; 33] = point
            .as_bytes()
            .try_into()
            .context("compressed public key is not 33 bytes")?;
        let pubkey_hash: [u8; 20] = Ripemd160::digest(Sha256::digest(public)).into();
        let kind = if index.is_multiple_of(2) {
            KeyKind::P2wpkh
        } else {
            KeyKind::P2pkh
        };
        let script_pubkey = match kind {
            KeyKind::P2wpkh => [&[0x00, 0x14][..], &pubkey_hash].concat(),
            KeyKind::P2pkh => p2pkh_script(&pubkey_hash),
        };
        let address = Address::from_script(profile, &script_pubkey)
            .with_context(|| format!("no address for key {index}'s script"))?
            .as_str()
            .to_owned();
        Ok(Self {
            kind,
            signing,
            public,
            pubkey_hash,
            script_pubkey,
            address,
        })
    }

    /// The script BIP 143 and the legacy sighash sign over: P2PKH of this key in both cases.
    pub fn script_code(&self) -> Vec<u8> {
        p2pkh_script(&self.pubkey_hash)
    }
}

/// `OP_DUP OP_HASH160 <hash> OP_EQUALVERIFY OP_CHECKSIG`.
fn p2pkh_script(hash: &[u8; 20]) -> Vec<u8> {
    [&[0x76, 0xa9, 0x14][..], hash, &[0x88, 0xac]].concat()
}

/// Derives keys `0..count`.
pub fn derive_keys(count: u32, profile: &CoinProfile) -> anyhow::Result<Vec<BenchKey>> {
    (0..count).map(|i| BenchKey::derive(i, profile)).collect()
}

#[cfg(test)]
mod tests {
    use rot_proto::{Coins, Network, Payload};

    use super::*;

    fn regtest() -> CoinProfile {
        Coins::builtin()
            .get("LTC", Network::Regtest)
            .unwrap()
            .clone()
    }

    #[test]
    fn keys_are_deterministic_and_alternate_kinds() {
        let profile = regtest();
        let a = derive_keys(4, &profile).unwrap();
        let b = derive_keys(4, &profile).unwrap();
        assert_eq!(a[3].address, b[3].address);
        assert_ne!(a[0].address, a[2].address);
        assert_eq!(a[0].kind, KeyKind::P2wpkh);
        assert_eq!(a[1].kind, KeyKind::P2pkh);
    }

    #[test]
    fn addresses_parse_back_to_the_keys_script() {
        let profile = regtest();
        for key in derive_keys(2, &profile).unwrap() {
            let parsed = Address::parse(&profile, &key.address).unwrap();
            assert_eq!(parsed.script_pubkey(), key.script_pubkey);
            match (key.kind, parsed.payload()) {
                (KeyKind::P2pkh, Payload::P2pkh(hash)) => assert_eq!(hash, &key.pubkey_hash),
                (KeyKind::P2wpkh, Payload::Witness(w)) => {
                    assert_eq!((w.version(), w.program()), (0, &key.pubkey_hash[..]))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
