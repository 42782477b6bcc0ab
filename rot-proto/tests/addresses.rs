//! Address parsing against published vectors (BIP 350, Bitcoin/Litecoin Core key_io data,
//! real Esplora outputs) and against what litecoind 0.21.2 itself answered to
//! `validateaddress` in regtest.

use rot_proto::{Address, Coins, Error, Payload, ScriptType, script_asm};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
}

#[derive(Deserialize)]
struct Valid {
    profile: String,
    address: String,
    script_pubkey: String,
}

#[derive(Deserialize)]
struct Invalid {
    profile: String,
    address: String,
    error: String,
}

#[derive(Deserialize)]
struct NodeAnswers {
    addresses: Vec<NodeAnswer>,
}

/// One `validateaddress` call: the input, and for valid ones the node's spelling and script.
#[derive(Deserialize)]
struct NodeAnswer {
    input: String,
    isvalid: bool,
    address: Option<String>,
    #[serde(rename = "scriptPubKey")]
    script_pubkey: Option<String>,
    error: Option<String>,
}

/// The kind of an address error, as the fixtures name it.
fn kind(error: &Error) -> &'static str {
    match error {
        Error::InvalidAddress { .. } => "encoding",
        Error::AddressChecksum { .. } => "checksum",
        Error::WrongNetwork { .. } => "wrong_network",
        Error::UnsupportedWitness { .. } => "witness",
        _ => "other",
    }
}

#[test]
fn published_valid_addresses_parse_to_their_scripts() {
    let vectors: Vectors = serde_json::from_str(include_str!("data/address_vectors.json")).unwrap();
    let coins = Coins::builtin();
    for vector in vectors.valid {
        let profile = coins.require(&vector.profile).unwrap();
        let address = Address::parse(profile, &vector.address)
            .unwrap_or_else(|e| panic!("{}: {e}", vector.address));
        assert_eq!(hex::encode(address.script_pubkey()), vector.script_pubkey);
        // Bech32 is case-insensitive and printed in lower case; base58 is case-sensitive.
        let expected_text = match address.payload() {
            Payload::Witness(_) => vector.address.to_lowercase(),
            _ => vector.address.clone(),
        };
        assert_eq!(address.as_str(), expected_text);
        let script = hex::decode(&vector.script_pubkey).unwrap();
        assert_eq!(Address::from_script(profile, &script), Some(address));
    }
}

#[test]
fn published_invalid_addresses_fail_for_the_stated_reason() {
    let vectors: Vectors = serde_json::from_str(include_str!("data/address_vectors.json")).unwrap();
    let coins = Coins::builtin();
    for vector in vectors.invalid {
        let profile = coins.require(&vector.profile).unwrap();
        let error = Address::parse(profile, &vector.address).expect_err(&vector.address);
        assert_eq!(kind(&error), vector.error, "{}: {error}", vector.address);
        assert!(error.to_string().contains(&vector.address), "{error}");
    }
}

#[test]
fn agrees_with_litecoind_validateaddress() {
    let answers: NodeAnswers =
        serde_json::from_str(include_str!("data/ltc_regtest_validateaddress.json")).unwrap();
    let coins = Coins::builtin();
    let profile = coins.require("ltc-regtest").unwrap();
    for answer in answers.addresses {
        let parsed = Address::parse(profile, &answer.input);
        match parsed {
            Ok(address) => {
                assert!(answer.isvalid, "{} accepted, node refused it", answer.input);
                assert_eq!(Some(address.as_str()), answer.address.as_deref());
                let script = hex::encode(address.script_pubkey());
                assert_eq!(Some(script.as_str()), answer.script_pubkey.as_deref());
            }
            Err(error) => {
                assert!(
                    !answer.isvalid,
                    "{} refused ({error}), node accepted it",
                    answer.input
                );
                assert_eq!(Some(kind(&error)), answer.error.as_deref(), "{error}");
            }
        }
    }
}

#[test]
fn litecoin_mainnet_address_on_regtest_names_litecoin() {
    let coins = Coins::builtin();
    let regtest = coins.require("ltc-regtest").unwrap();
    let error = Address::parse(regtest, "ltc1qq633vr0cg2txrqjnceccrtmxummszra8hv6d3g").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not belong to ltc-regtest (it belongs to ltc)"),
        "{error}"
    );
    let error =
        Address::parse(regtest, "bcrt1qq633vr0cg2txrqjnceccrtmxummszra8mlzh9z").unwrap_err();
    assert!(error.to_string().contains("btc-regtest"), "{error}");
}

#[test]
fn node_generated_multisig_is_classified() {
    // Witness script of `createmultisig 1 [k1, k2]` on litecoind regtest; its P2WSH address is
    // in ltc_regtest_validateaddress.json.
    let script = hex::decode(
        "5121033275338cd9a7e3298fcf1d8dfe16d8b57ecb06dc0fe2f02955c04cbc135ace502102143c1b6c990acf\
         285aacf22e1f965f97747682c1ddd0592bd846a35b56adff9b52ae",
    )
    .unwrap();
    assert_eq!(ScriptType::classify(&script), ScriptType::Multisig);
    assert!(script_asm(&script).starts_with("OP_PUSHNUM_1 OP_PUSHBYTES_33 033275"));
    assert!(script_asm(&script).ends_with(" OP_PUSHNUM_2 OP_CHECKMULTISIG"));
}
