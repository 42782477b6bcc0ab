//! The chain parser against what real nodes serialize and report: Litecoin regtest blocks and
//! MWEB mempool transactions captured from litecoind 0.21.2 by `tests/data/capture.sh`, a
//! merge-mined Syscoin mainnet block, and Litecoin mainnet headers for scrypt proof of work.

use std::fs;
use std::path::{Path, PathBuf};

use rot_proto::merkle::merkle_root;
use rot_proto::{
    Block, BlockHeader, ChainRules, Hash256, MerkleProof, MwebData, PowAlgorithm, Transaction,
};
use serde_json::Value;

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

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Fixture pairs `<prefix>*.hex` + `.json`, sorted by name.
fn fixtures(prefix: &str) -> Vec<(String, Vec<u8>, Value)> {
    let mut names: Vec<String> = fs::read_dir(data_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(prefix) && name.ends_with(".hex"))
        .map(|name| name.trim_end_matches(".hex").to_owned())
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no {prefix} fixtures; run tests/data/capture.sh"
    );
    names
        .into_iter()
        .map(|name| {
            let hex_text = fs::read_to_string(data_dir().join(format!("{name}.hex"))).unwrap();
            let json_text = fs::read_to_string(data_dir().join(format!("{name}.json"))).unwrap();
            (
                name,
                hex::decode(hex_text.trim()).unwrap(),
                serde_json::from_str(&json_text).unwrap(),
            )
        })
        .collect()
}

fn hash(value: &Value) -> Hash256 {
    value.as_str().unwrap().parse().unwrap()
}

fn int(value: &Value) -> u64 {
    value.as_u64().unwrap()
}

fn check_outputs(name: &str, tx: &Transaction<'_>, expected: &[Value]) {
    assert_eq!(tx.outputs().len(), expected.len(), "{name}: output count");
    for (output, want) in tx.outputs().iter().zip(expected) {
        assert_eq!(output.value, int(&want["value_sat"]), "{name}: value");
        assert_eq!(
            hex::encode(output.script_pubkey),
            want["script"].as_str().unwrap(),
            "{name}: script"
        );
    }
}

fn check_sizes(name: &str, tx: &Transaction<'_>, want: &Value) {
    assert_eq!(tx.txid(), hash(&want["txid"]), "{name}: txid");
    assert_eq!(tx.wtxid(), hash(&want["hash"]), "{name}: wtxid");
    assert_eq!(tx.size() as u64, int(&want["size"]), "{name}: size");
    assert_eq!(tx.weight(), int(&want["weight"]), "{name}: weight");
    assert_eq!(tx.vsize(), int(&want["vsize"]), "{name}: vsize");
    assert_eq!(tx.serialize(), tx.raw(), "{name}: re-serialization");
}

#[test]
fn regtest_blocks_match_the_node() {
    let mut mweb_blocks = 0;
    for (name, bytes, want) in fixtures("block_") {
        let block = Block::parse(&bytes, &LITECOIN).unwrap_or_else(|e| panic!("{name}: {e}"));
        let header = block.header();
        assert_eq!(block.hash(), hash(&want["hash"]), "{name}: hash");
        assert_eq!(header.prev_blockhash, hash(&want["previousblockhash"]));
        assert_eq!(header.merkle_root, hash(&want["merkleroot"]));
        assert_eq!(
            block.compute_merkle_root(),
            Some(header.merkle_root),
            "{name}: merkle root"
        );
        assert_eq!(i64::from(header.version), want["version"].as_i64().unwrap());
        assert_eq!(u64::from(header.time), int(&want["time"]));
        assert_eq!(u64::from(header.nonce), int(&want["nonce"]));
        assert_eq!(
            format!("{:08x}", header.bits),
            want["bits"].as_str().unwrap()
        );
        assert_eq!(block.size() as u64, int(&want["size"]), "{name}: size");
        assert_eq!(
            block.stripped_size() as u64,
            int(&want["strippedsize"]),
            "{name}: strippedsize"
        );
        assert_eq!(block.weight(), int(&want["weight"]), "{name}: weight");
        assert!(
            block.check_proof_of_work(PowAlgorithm::Scrypt).unwrap(),
            "{name}: scrypt pow"
        );

        let expected_txs = want["tx"].as_array().unwrap();
        assert_eq!(block.transactions().len(), expected_txs.len());
        for (index, (tx, want_tx)) in block.transactions().iter().zip(expected_txs).enumerate() {
            let name = format!("{name} tx {index}");
            check_sizes(&name, tx, want_tx);
            assert_eq!(
                i64::from(tx.version()),
                want_tx["version"].as_i64().unwrap()
            );
            assert_eq!(u64::from(tx.lock_time()), int(&want_tx["locktime"]));
            assert_eq!(tx.is_coinbase(), index == 0, "{name}: coinbase");
            let expected_inputs = want_tx["vin"].as_array().unwrap();
            assert_eq!(tx.inputs().len(), expected_inputs.len());
            for (input, want_input) in tx.inputs().iter().zip(expected_inputs) {
                if let Some(coinbase) = want_input.get("coinbase") {
                    assert_eq!(hex::encode(input.script_sig), coinbase.as_str().unwrap());
                } else {
                    assert_eq!(
                        input.prevout.txid,
                        hash(&want_input["txid"]),
                        "{name}: prevout"
                    );
                    assert_eq!(
                        u64::from(input.prevout.vout),
                        int(&want_input["vout"]),
                        "{name}: prevout"
                    );
                }
            }
            check_outputs(&name, tx, want_tx["vout"].as_array().unwrap());
        }

        let txids: Vec<Hash256> = block.transactions().iter().map(Transaction::txid).collect();
        for (pos, txid) in txids.iter().enumerate() {
            let proof = MerkleProof::new(block_height(&want), &txids, pos).unwrap();
            assert!(
                proof.verify(*txid, &header.merkle_root),
                "{name}: proof of tx {pos}"
            );
        }

        match want["mweb"].as_object() {
            Some(mweb_want) => {
                mweb_blocks += 1;
                let mweb = block
                    .mweb()
                    .unwrap_or_else(|| panic!("{name}: MWEB block missing"));
                assert_eq!(
                    hex::encode(mweb.hash()),
                    mweb_want["hash"].as_str().unwrap()
                );
                assert_eq!(u64::from(mweb.height()), int(&mweb_want["height"]));
                assert_eq!(mweb.input_count() as u64, int(&mweb_want["inputs"]));
                assert_eq!(mweb.output_count() as u64, int(&mweb_want["outputs"]));
                assert_eq!(mweb.kernel_count() as u64, int(&mweb_want["kernels"]));
                // The HogEx's first output commits to the extension block: OP_8 <hash>.
                let hogex = block.hogex().unwrap();
                assert_eq!(
                    hogex.outputs()[0].script_pubkey,
                    [&[0x58, 0x20][..], &mweb.hash()].concat()
                );
            }
            None => assert!(block.mweb().is_none() && block.hogex().is_none()),
        }
    }
    assert!(
        mweb_blocks >= 2,
        "fixtures must include blocks with MWEB data"
    );
}

fn block_height(want: &Value) -> u32 {
    int(&want["height"]) as u32
}

#[test]
fn mempool_mweb_transactions_match_the_node() {
    for (name, bytes, want) in fixtures("tx_") {
        let tx = Transaction::parse(&bytes, &LITECOIN).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_sizes(&name, &tx, &want);
        let Some(MwebData::Tx(mweb)) = tx.mweb() else {
            panic!("{name}: no MWEB body")
        };
        assert_eq!(
            mweb.input_count() as u64,
            int(&want["mweb_inputs"]),
            "{name}"
        );
        assert_eq!(
            mweb.output_count() as u64,
            int(&want["mweb_outputs"]),
            "{name}"
        );
        assert_eq!(mweb.kernel_count() as u64, int(&want["kernels"]), "{name}");
        let inputs = want["canonical_inputs"].as_array().unwrap();
        assert_eq!(tx.is_mweb_only(), inputs.is_empty());
        let prevouts: Vec<(Hash256, u64)> = tx
            .inputs()
            .iter()
            .map(|input| (input.prevout.txid, u64::from(input.prevout.vout)))
            .collect();
        let expected: Vec<(Hash256, u64)> = inputs
            .iter()
            .map(|input| (hash(&input["txid"]), int(&input["vout"])))
            .collect();
        assert_eq!(prevouts, expected, "{name}: prevouts");
        check_outputs(&name, &tx, want["canonical_outputs"].as_array().unwrap());
        // Without MWEB support the flag is unknown and the transaction is refused.
        assert!(
            Transaction::parse(
                &bytes,
                &ChainRules {
                    mweb: false,
                    ..LITECOIN
                }
            )
            .is_err()
        );
    }
}

#[test]
fn truncated_blocks_fail_without_panicking() {
    for (name, bytes, _) in fixtures("block_") {
        for len in 0..bytes.len() {
            assert!(
                Block::parse(&bytes[..len], &LITECOIN).is_err(),
                "{name} cut at {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Block::parse(&longer, &LITECOIN).is_err(),
            "{name} with a trailing byte"
        );
    }
}

#[test]
fn corrupted_and_random_input_never_panics() {
    for (_, bytes, _) in fixtures("block_").into_iter().chain(fixtures("tx_")) {
        for index in 0..bytes.len() {
            for value in [0x00, 0xfd, 0xff] {
                let mut corrupted = bytes.clone();
                corrupted[index] = value;
                let _ = Block::parse(&corrupted, &LITECOIN);
                let _ = Transaction::parse(&corrupted, &LITECOIN);
            }
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..2000 {
        let len = (state % 600) as usize;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for rules in [LITECOIN, SYSCOIN] {
            let _ = Block::parse(&garbage, &rules);
            let _ = Transaction::parse(&garbage, &rules);
        }
    }
}

#[test]
fn merge_mined_syscoin_block_parses_past_auxpow() {
    let (_, bytes, want) = fixtures("syscoin_").remove(0);
    let block = Block::parse(&bytes, &SYSCOIN).unwrap();
    assert_eq!(block.hash(), hash(&want["hash"]));
    assert_eq!(block.size() as u64, int(&want["size"]));
    assert_eq!(block.header().merkle_root, hash(&want["merkleroot"]));
    assert_eq!(
        block.compute_merkle_root(),
        Some(block.header().merkle_root)
    );
    let txids: Vec<Hash256> = block.transactions().iter().map(Transaction::txid).collect();
    let expected: Vec<Hash256> = want["tx"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tx| hash(&tx["txid"]))
        .collect();
    assert_eq!(txids, expected);
    assert!(block.transactions()[0].is_coinbase());

    let auxpow = block.auxpow().expect("version has the AuxPoW bit");
    assert!(auxpow.coinbase_tx.is_coinbase());
    assert!(
        auxpow.coinbase_in_parent(),
        "parent coinbase under the parent merkle root"
    );
    // The parent header carries the work; the merge-mined header's own hash does not.
    assert!(block.check_proof_of_work(PowAlgorithm::Sha256d).unwrap());
    assert!(!block.header().meets_target(PowAlgorithm::Sha256d).unwrap());
    assert_eq!(block.pow_header(), &auxpow.parent_header);

    // Without the AuxPoW rule the proof is misread as transactions and the parse fails.
    assert!(
        Block::parse(
            &bytes,
            &ChainRules {
                auxpow: false,
                ..SYSCOIN
            }
        )
        .is_err()
    );
    for len in 0..bytes.len() {
        assert!(Block::parse(&bytes[..len], &SYSCOIN).is_err());
    }
}

#[test]
fn litecoin_mainnet_headers_meet_their_scrypt_targets() {
    // Mainnet genesis, from the parameters in Litecoin's chainparams.cpp.
    let genesis = BlockHeader {
        version: 1,
        prev_blockhash: Hash256::default(),
        merkle_root: "97ddfbbae6be97fd6cdf3e7ca13232a3afff2353e29badfab7f73011edd4ced9"
            .parse()
            .unwrap(),
        time: 1_317_972_665,
        bits: 0x1e0f_fff0,
        nonce: 2_084_524_493,
    };
    assert_eq!(
        genesis.hash().to_string(),
        "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2"
    );
    assert!(genesis.meets_target(PowAlgorithm::Scrypt).unwrap());
    assert!(!genesis.meets_target(PowAlgorithm::Sha256d).unwrap());

    // Block 2265985 (the block after MWEB activation), difficulty ~16M: a scrypt hash meeting
    // its target by chance is out of the question.
    let bytes = hex::decode(concat!(
        "140000201cd116c7e7bcf752283971c97a9ddead73fa5e02d0f449da942dcd42d1ca8d41",
        "be74912f5d731f7d993a2ac48a9912051369648fe02efadcf450434d4064d979",
        "8c218762cd0c011a72e3361b"
    ))
    .unwrap();
    let header = BlockHeader::parse(&bytes).unwrap();
    assert_eq!(
        header.hash().to_string(),
        "9bacbef81b42f777fabc19d08bceddb56d219fd4585f85946cb27470c6f4f596"
    );
    assert_eq!(header.bits, 0x1a01_0ccd);
    assert!(header.meets_target(PowAlgorithm::Scrypt).unwrap());
    assert!(!header.meets_target(PowAlgorithm::Sha256d).unwrap());
    assert_eq!(merkle_root(&[header.merkle_root]), Some(header.merkle_root));
}
