//! Bad input for every rot-proto parser of outside bytes: raw blocks and transactions under every
//! combination of coin-profile quirks (segwit, MWEB, AuxPoW, PoS `nTime`), merkle proofs,
//! addresses and script hashes of every built-in profile, script classification and ASM, hex
//! ids and keys, signed envelopes and the message bodies inside them, canonical encoding, key
//! files and coin-profile files. Inputs are real fixtures (blocks and transactions captured
//! from nodes, golden address and signing vectors) with bytes flipped, inserted, removed or
//! truncated, plus plain random input. Every parser must answer `Ok` or `Err`, never panic;
//! whatever it accepts must survive every accessor and re-parse to the same ids.
//!
//! Case count: `PROPTEST_CASES` (default [`DEFAULT_CASES`]); `bench/fuzz.sh` runs long.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use rot_harness::fuzz::{
    DEFAULT_CASES, config, every_wire_layout, json_value, mutated_bytes, mutated_json,
    mutated_text, wire_input,
};
use rot_proto::canonical::canonical_bytes;
use rot_proto::merkle::{branch_root, merkle_branch, merkle_root, verify_branch};
use rot_proto::signed::signing_bytes;
use rot_proto::{
    Address, Block, BlockHeader, ChainRules, ChallengeAnswer, Coins, DirectoryEntry, ErrorBody,
    Hash256, Heartbeat, HeartbeatAck, Identity, Incident, MerkleProof, MwebData, Nonce,
    PowAlgorithm, PublicKey, ScriptHash, ScriptType, ServerInfo, Signature, Signed, SignedBody,
    Target, Transaction, script_asm,
};
use serde_json::Value;

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn hex_fixture(name: &str) -> Vec<u8> {
    hex::decode(data(name).trim()).unwrap()
}

const LITECOIN: ChainRules = ChainRules {
    pow: PowAlgorithm::Scrypt,
    segwit: true,
    mweb: true,
    auxpow: false,
    pos_ntime: false,
};

const SYSCOIN: ChainRules = ChainRules {
    pow: PowAlgorithm::Sha256d,
    segwit: true,
    mweb: false,
    auxpow: true,
    pos_ntime: false,
};

/// Real blocks: Litecoin regtest (segwit, MWEB extension blocks with HogEx) and a merge-mined
/// Syscoin block (AuxPoW).
fn block_seeds() -> &'static [(Vec<u8>, ChainRules)] {
    static SEEDS: OnceLock<Vec<(Vec<u8>, ChainRules)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds: Vec<(Vec<u8>, ChainRules)> = ["111", "112", "432", "433"]
            .iter()
            .map(|height| (hex_fixture(&format!("block_{height}.hex")), LITECOIN))
            .collect();
        seeds.push((hex_fixture("syscoin_430000.hex"), SYSCOIN));
        seeds
    })
}

/// Real transactions: every transaction of the fixture blocks (coinbases, segwit spends, the
/// HogEx), the MWEB mempool fixtures (peg-in, peg-out, MWEB-only), the AuxPoW parent
/// coinbase, and a proof-of-stake variant (`nTime` after the version) of each legacy one.
fn tx_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds: Vec<Vec<u8>> = ["tx_mweb_only.hex", "tx_pegin.hex", "tx_pegout.hex"]
            .iter()
            .map(|name| hex_fixture(name))
            .collect();
        for (raw, rules) in block_seeds() {
            let block = Block::parse(raw, rules).unwrap();
            seeds.extend(block.transactions().iter().map(|tx| tx.raw().to_vec()));
            seeds.extend(block.auxpow().map(|aux| aux.coinbase_tx.raw().to_vec()));
        }
        let pos: Vec<Vec<u8>> = seeds
            .iter()
            .filter(|raw| raw.get(4) != Some(&0))
            .map(|raw| [&raw[..4], &1_700_000_000u32.to_le_bytes(), &raw[4..]].concat())
            .collect();
        seeds.extend(pos);
        seeds
    })
}

/// Everything a parsed transaction offers, and the promise that its serialization re-parses
/// to the same transaction ids.
fn exercise_tx(tx: &Transaction<'_>, rules: &ChainRules) {
    let txid = tx.txid();
    let wtxid = tx.wtxid();
    assert!(tx.weight() >= tx.base_size() as u64 || tx.is_mweb_only());
    assert_eq!(tx.vsize(), tx.weight().div_ceil(4));
    assert!(tx.size() >= tx.base_size() || tx.is_mweb_only());
    for input in tx.inputs() {
        assert_eq!(input.witness.iter().count(), input.witness.len());
        ScriptType::classify(input.script_sig);
    }
    for output in tx.outputs() {
        ScriptType::classify(output.script_pubkey);
        script_asm(output.script_pubkey);
    }
    let _ = (tx.is_coinbase(), tx.is_hogex(), tx.lock_time(), tx.time());
    if let Some(MwebData::Tx(mweb)) = tx.mweb() {
        let _ = (mweb.input_count(), mweb.output_count(), mweb.kernel_count());
        assert!(mweb.kernel_count() > 0);
    }
    let serialized = tx.serialize();
    let again = Transaction::parse(&serialized, rules).expect("serialization re-parses");
    assert_eq!(again.txid(), txid);
    assert_eq!(again.wtxid(), wtxid);
    tx.serialize_without_witness();
}

fn exercise_block(block: &Block<'_>, rules: &ChainRules) {
    for tx in block.transactions() {
        exercise_tx(tx, rules);
    }
    assert!(block.weight() >= block.stripped_size() as u64);
    assert!(block.size() >= block.stripped_size() || block.mweb().is_some());
    let _ = (block.hash(), block.compute_merkle_root(), block.hogex());
    let _ = block.check_proof_of_work(PowAlgorithm::Sha256d);
    if let Some(auxpow) = block.auxpow() {
        let _ = auxpow.coinbase_in_parent();
        exercise_tx(&auxpow.coinbase_tx, rules);
    }
    if let Some(mweb) = block.mweb() {
        let _ = (
            mweb.hash(),
            mweb.height(),
            mweb.input_count(),
            mweb.kernel_count(),
        );
    }
}

proptest! {
    #![proptest_config(config(DEFAULT_CASES))]

    /// Near-valid and random blocks under every combination of quirks.
    #[test]
    fn blocks_parse_or_fail_cleanly(
        bytes in wire_input(block_seeds().iter().map(|(raw, _)| raw.clone()).collect())
    ) {
        for rules in every_wire_layout() {
            if let Ok(block) = Block::parse(&bytes, &rules) {
                exercise_block(&block, &rules);
            }
        }
    }

    /// Near-valid and random transactions under every combination of quirks.
    #[test]
    fn transactions_parse_or_fail_cleanly(bytes in wire_input(tx_seeds().to_vec())) {
        for rules in every_wire_layout() {
            if let Ok(tx) = Transaction::parse(&bytes, &rules) {
                exercise_tx(&tx, &rules);
            }
        }
    }

    /// Headers of any bytes, targets of any compact bits.
    #[test]
    fn headers_and_targets(bytes in prop::collection::vec(any::<u8>(), 0..100), bits: u32) {
        if let Ok(header) = BlockHeader::parse(&bytes) {
            assert_eq!(&header.serialize()[..], &bytes[..]);
            let _ = header.meets_target(PowAlgorithm::Sha256d);
        }
        if let Ok(target) = Target::from_compact(bits) {
            let _ = target.is_met_by(&Hash256([0xff; 32]));
            let _ = target.to_string();
        }
    }

    /// Merkle proofs as a wallet receives them: any branch length, any position.
    #[test]
    fn merkle_proofs_of_any_shape(
        leaves in prop::collection::vec(any::<[u8; 32]>().prop_map(Hash256), 0..40),
        branch in prop::collection::vec(any::<[u8; 32]>().prop_map(Hash256), 0..100),
        pos: usize,
        small_pos in 0..64usize,
    ) {
        let root = merkle_root(&leaves).unwrap_or_default();
        for pos in [pos, small_pos] {
            let _ = verify_branch(Hash256::default(), &branch, pos, &root);
            let _ = branch_root(Hash256::default(), &branch, pos);
            let proof = MerkleProof { block_height: 1, merkle: branch.clone(), pos };
            let _ = proof.verify(Hash256::default(), &root);
            if let Ok(own) = merkle_branch(&leaves, pos) {
                assert!(verify_branch(leaves[pos], &own, pos, &root));
            }
        }
    }

    /// Addresses of every profile, mutated from the golden vectors, and random text.
    #[test]
    fn addresses_parse_or_fail_cleanly(
        text in prop_oneof![
            4 => mutated_text(address_seeds()),
            1 => any::<String>(),
            1 => "[a-z]{2,4}1[02-9ac-hj-np-z]{6,90}",
            1 => "[1-9A-HJ-NP-Za-km-z]{20,40}",
        ]
    ) {
        for profile in Coins::builtin().iter() {
            if let Ok(address) = Address::parse(profile, &text) {
                // Whatever parses has a script, and that script spells the address back.
                let script = address.script_pubkey();
                let again = Address::from_script(profile, &script).expect("script has an address");
                assert_eq!(again.as_str(), address.as_str());
                assert_eq!(Address::parse(profile, address.as_str()).unwrap(), address);
            }
        }
    }

    /// Scripts: classification, ASM and address of any bytes, real scripts mutated.
    #[test]
    fn scripts_classify_and_disassemble(bytes in wire_input(script_seeds())) {
        let kind = ScriptType::classify(&bytes);
        let _ = kind.as_str();
        script_asm(&bytes);
        for profile in Coins::builtin().iter() {
            if let Some(address) = Address::from_script(profile, &bytes) {
                assert_eq!(address.script_pubkey(), bytes);
            }
        }
        let _ = ScriptHash::of(&bytes);
    }

    /// The hex spellings of ids, keys, signatures, nonces and script hashes.
    #[test]
    fn hex_ids_parse_or_fail_cleanly(text in prop_oneof![
        "[0-9a-fA-F]{0,130}",
        any::<String>(),
        mutated_text(vec!["ab".repeat(32), "cd".repeat(64)]),
    ]) {
        if let Ok(hash) = text.parse::<Hash256>() {
            assert_eq!(hash.to_string().parse::<Hash256>().unwrap(), hash);
        }
        if let Ok(script_hash) = text.parse::<ScriptHash>() {
            assert_eq!(script_hash.to_string().parse::<ScriptHash>().unwrap(), script_hash);
        }
        let _ = ScriptHash::from_electrum_hex(&text);
        if let Ok(key) = text.parse::<PublicKey>() {
            assert_eq!(key.to_string(), text);
        }
        let _ = text.parse::<Signature>();
        let _ = text.parse::<Nonce>();
        let _ = text.parse::<rot_proto::Network>();
    }

    /// Signed envelopes of every message type, mutated from the golden vectors; verification
    /// answers `Ok` only for an envelope whose signature covers what it carries.
    #[test]
    fn signed_envelopes_verify_or_fail_cleanly(
        envelope in prop_oneof![
            3 => mutated_json(envelope_seeds()),
            1 => json_value(),
        ],
    ) {
        check_envelope::<Heartbeat>(&envelope);
        check_envelope::<ServerInfo>(&envelope);
        check_envelope::<ChallengeAnswer>(&envelope);
    }

    /// The same envelopes as raw text, bytes mutated: what a proxy or wallet reads off the wire.
    #[test]
    fn signed_envelope_text_decodes_or_fails_cleanly(
        text in mutated_bytes(envelope_seeds().iter().map(|v| v.to_string().into_bytes()).collect())
    ) {
        if let Ok(signed) = serde_json::from_slice::<Signed<Heartbeat>>(&text) {
            let _ = signed.verify();
        }
        if let Ok(signed) = serde_json::from_slice::<Signed<ServerInfo>>(&text) {
            let _ = signed.verify();
        }
        if let Ok(value) = serde_json::from_slice::<Value>(&text) {
            decode_messages(&value);
        }
    }

    /// Canonical encoding of any JSON value: bytes or a clear refusal.
    #[test]
    fn canonical_encoding_of_any_value(value in json_value(), tag in any::<String>()) {
        if let Ok(bytes) = canonical_bytes(&value) {
            assert!(!bytes.is_empty());
        }
        let _ = signing_bytes(&tag, 1, "key", &value);
        decode_messages(&value);
    }

    /// Key files of any content (private mode, so only the content is judged).
    #[test]
    fn key_files_load_or_fail_cleanly(
        content in prop_oneof![
            mutated_bytes(vec![format!("ed25519-secret:{}\n", "5a".repeat(32)).into_bytes()]),
            prop::collection::vec(any::<u8>(), 0..400),
        ]
    ) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &content).unwrap();
        if let Ok(identity) = Identity::load(file.path()) {
            let hex_seed = std::str::from_utf8(&content).unwrap().trim_end()
                .strip_prefix("ed25519-secret:").unwrap().to_owned();
            assert_eq!(hex_seed.len(), 64);
            let _ = identity.public_key();
        }
    }

    /// Coin-profile files (operators may add coins): mutated real profiles.
    #[test]
    fn coin_profile_files_load_or_fail_cleanly(
        profile in mutated_json(coin_profile_seeds())
    ) {
        let mut coins = Coins::new();
        if coins.add_from_json(&profile.to_string()).is_ok() {
            for coin in coins.iter() {
                let _ = coin.id();
            }
        }
    }
}

fn address_seeds() -> Vec<String> {
    let vectors: Value = serde_json::from_str(&data("address_vectors.json")).unwrap();
    let mut seeds: Vec<String> = vectors
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|case| case["address"].as_str().map(str::to_owned))
        .collect();
    seeds.sort();
    seeds.dedup();
    assert!(seeds.len() > 10);
    seeds
}

fn script_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for raw in tx_seeds() {
        if let Ok(tx) = Transaction::parse(raw, &LITECOIN) {
            seeds.extend(tx.outputs().iter().map(|o| o.script_pubkey.to_vec()));
            seeds.extend(tx.inputs().iter().map(|i| i.script_sig.to_vec()));
            for input in tx.inputs() {
                seeds.extend(input.witness.iter().map(<[u8]>::to_vec));
            }
        }
    }
    seeds.retain(|script| !script.is_empty());
    seeds.sort();
    seeds.dedup();
    seeds
}

fn envelope_seeds() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/signing.json");
    let vectors: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    vectors["signed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["envelope"].clone())
        .collect()
}

fn coin_profile_seeds() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("coins");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()))
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Decodes `envelope` as a `Signed<T>` and verifies it; a verified body must re-sign to an
/// envelope that verifies too (nothing accepted is unrepresentable).
fn check_envelope<T: SignedBody>(envelope: &Value) {
    let Ok(signed) = serde_json::from_value::<Signed<T>>(envelope.clone()) else {
        return;
    };
    let _ = signed.signer();
    if let Ok(body) = signed.verify() {
        assert_eq!(signed.tag(), T::TAG);
        let identity = Identity::from_seed([3; 32]);
        if body.claimed_signer().is_none() {
            Signed::sign(&identity, &body).unwrap().verify().unwrap();
        }
    }
}

/// Every message type a peer may send unsigned, decoded from any JSON.
fn decode_messages(value: &Value) {
    let _ = serde_json::from_value::<HeartbeatAck>(value.clone());
    let _ = serde_json::from_value::<DirectoryEntry>(value.clone());
    let _ = serde_json::from_value::<Incident>(value.clone());
    let _ = serde_json::from_value::<ErrorBody>(value.clone());
    let _ = serde_json::from_value::<MerkleProof>(value.clone());
    let _ = serde_json::from_value::<rot_proto::ChallengeRequest>(value.clone());
    if let Ok(proof) = serde_json::from_value::<MerkleProof>(value.clone()) {
        let _ = proof.verify(Hash256::default(), &Hash256::default());
    }
}

/// The fixtures themselves parse, so the mutations start from valid input.
#[test]
fn seeds_are_valid() {
    for (raw, rules) in block_seeds() {
        exercise_block(&Block::parse(raw, rules).unwrap(), rules);
    }
    assert!(tx_seeds().len() > 10);
    assert!(!script_seeds().is_empty());
    for envelope in envelope_seeds() {
        let tag = envelope["tag"].as_str().unwrap();
        if tag == Heartbeat::TAG {
            serde_json::from_value::<Signed<Heartbeat>>(envelope)
                .unwrap()
                .verify()
                .unwrap();
        }
    }
}
