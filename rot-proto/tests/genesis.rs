//! Re-derives each shipped profile's genesis hash from the genesis header parameters in its
//! coin's chainparams.cpp (tests/data/genesis_headers.json), and checks that the header meets
//! its own target under the profile's proof-of-work algorithm, so a wrong hash or a wrong
//! `rules.pow` in a coin file fails here.

use rot_proto::hash::sha256d;
use rot_proto::{Coins, Hash256, PowAlgorithm};
use serde::Deserialize;

#[derive(Deserialize)]
struct GenesisHeader {
    id: String,
    version: i32,
    merkle_root: Hash256,
    time: u32,
    bits: String,
    nonce: u32,
    /// The header exactly as a node serves it, where one was asked.
    header_hex: Option<String>,
}

fn headers() -> Vec<GenesisHeader> {
    serde_json::from_str(include_str!("data/genesis_headers.json")).unwrap()
}

fn serialize(header: &GenesisHeader, bits: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    out.extend_from_slice(&header.version.to_le_bytes());
    out.extend_from_slice(&[0u8; 32]); // no previous block
    out.extend_from_slice(header.merkle_root.as_bytes());
    out.extend_from_slice(&header.time.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(&header.nonce.to_le_bytes());
    out
}

/// The 256-bit target encoded by compact `bits`, big-endian.
fn target(bits: u32) -> [u8; 32] {
    let exponent = usize::try_from(bits >> 24).unwrap();
    let mantissa = (bits & 0x007f_ffff).to_be_bytes();
    let mut target = [0u8; 32];
    for (i, byte) in mantissa[1..].iter().enumerate() {
        // Byte i of the 3-byte mantissa has weight 256^(exponent - 1 - i).
        let position = 32 + i + 1;
        if let Some(index) = position.checked_sub(exponent + 1).filter(|&p| p < 32) {
            target[index] = *byte;
        }
    }
    target
}

fn pow_hash(pow: PowAlgorithm, header: &[u8]) -> [u8; 32] {
    match pow {
        PowAlgorithm::Sha256d => sha256d(header),
        PowAlgorithm::Scrypt => {
            let params = scrypt::Params::new(10, 1, 1).unwrap();
            let mut out = [0u8; 32];
            scrypt::scrypt(header, header, &params, &mut out).unwrap();
            out
        }
    }
}

#[test]
fn every_builtin_profile_has_a_genesis_fixture() {
    let fixtures: Vec<String> = headers().into_iter().map(|h| h.id).collect();
    for id in Coins::builtin().ids() {
        assert!(
            fixtures.iter().any(|f| f == id),
            "no genesis fixture for {id}"
        );
    }
}

#[test]
fn genesis_hashes_match_their_headers() {
    let coins = Coins::builtin();
    for header in headers() {
        let profile = coins.require(&header.id).unwrap();
        let bits = u32::from_str_radix(&header.bits, 16).unwrap();
        let bytes = serialize(&header, bits);
        assert_eq!(Hash256::of(&bytes), profile.genesis_hash, "{}", header.id);
        if let Some(node_hex) = &header.header_hex {
            assert_eq!(&hex::encode(&bytes), node_hex, "{}", header.id);
        }
    }
}

#[test]
fn genesis_headers_meet_their_target_under_the_profile_pow() {
    let coins = Coins::builtin();
    for header in headers() {
        let profile = coins.require(&header.id).unwrap();
        let bits = u32::from_str_radix(&header.bits, 16).unwrap();
        let mut hash = pow_hash(profile.rules.pow, &serialize(&header, bits));
        hash.reverse(); // compare as a big-endian number
        assert!(hash <= target(bits), "{}: proof of work not met", header.id);
    }
}

#[test]
fn scrypt_coins_do_not_meet_their_target_with_sha256d() {
    // Guards the check above: for a hard genesis target only the right algorithm passes.
    let coins = Coins::builtin();
    for header in headers().into_iter().filter(|h| h.bits == "1e0ffff0") {
        let profile = coins.require(&header.id).unwrap();
        assert_eq!(profile.rules.pow, PowAlgorithm::Scrypt, "{}", header.id);
        let mut hash = sha256d(&serialize(&header, 0x1e0f_fff0));
        hash.reverse();
        assert!(hash > target(0x1e0f_fff0), "{}", header.id);
    }
}

#[test]
fn compact_target_decoding() {
    let mut expected = [0u8; 32];
    expected[4] = 0xff;
    expected[5] = 0xff;
    assert_eq!(target(0x1d00_ffff), expected); // Bitcoin's difficulty 1
    let mut expected = [0u8; 32];
    expected[0] = 0x7f;
    expected[1] = 0xff;
    expected[2] = 0xff;
    assert_eq!(target(0x207f_ffff), expected);
}
