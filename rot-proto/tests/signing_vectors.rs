//! Golden vectors for canonical encoding and signed envelopes (`tests/vectors/signing.json`),
//! which other implementations (PHP, JavaScript) test themselves against.
//!
//! Every case in the file is checked from its inputs alone: public key from seed, canonical
//! bytes, deterministic signature, and verification of the wire envelope. The file must also
//! equal what this code generates, so it cannot silently drift. After an intended change,
//! regenerate it with
//!
//! ```sh
//! ROT_WRITE_VECTORS=1 cargo test -p rot-proto --test signing_vectors
//! ```

use rot_proto::canonical::{MAX_DEPTH, MAX_INTEGER};
use rot_proto::signed::signing_bytes;
use rot_proto::{
    BackendKind, ChallengeAnswer, Error, Hash256, Heartbeat, Identity, IndexProgress, Network,
    Nonce, PROTOCOL_VERSION, ProxyStanding, PublicKey, ServerInfo, ServerStatus, Signed,
    SignedBody, canonical_bytes,
};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/signing.json");

/// Test-only message type for bodies that exercise the encoding rather than a real message.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct TestVector(Value);

impl SignedBody for TestVector {
    const TAG: &'static str = "rot/test-vector";
}

const LTC_GENESIS: &str = "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2";

fn seed_counting() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// RFC 8032 section 7.1, test 1.
fn seed_rfc8032() -> [u8; 32] {
    hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .unwrap()
        .try_into()
        .unwrap()
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        coin: "LTC".to_owned(),
        network: Network::Main,
        genesis_hash: LTC_GENESIS.parse().unwrap(),
        url: "https://ltc1.example.org".to_owned(),
        seq: 42,
        timestamp: 1_767_225_600,
        height: 2_900_000,
        tip_hash: Hash256(std::array::from_fn(|i| 0xa0 ^ i as u8)),
        software: "rot-server/0.1.0".to_owned(),
        backend: BackendKind::Native,
        capabilities: vec![
            "esplora".to_owned(),
            "broadcast".to_owned(),
            "mempool".to_owned(),
        ],
        synced: true,
    }
}

fn server_info(server_key: PublicKey) -> ServerInfo {
    ServerInfo {
        coin: "LTC".to_owned(),
        network: Network::Test,
        genesis_hash: "4966625a4b2851d9fdee139e56211a0d88575f59ed816ff5e6a63deb4e3e29a0"
            .parse()
            .unwrap(),
        server_key,
        software: "rot-server/0.1.0".to_owned(),
        protocol_version: PROTOCOL_VERSION,
        backend: BackendKind::Electrum,
        height: 3_100_000,
        tip_hash: Hash256([0x5a; 32]),
        capabilities: vec!["esplora".to_owned(), "merkle-proof".to_owned()],
        public_url: Some("https://tltc.example.net/api".to_owned()),
        time: 1_767_225_700,
        index: IndexProgress {
            indexed_height: 3_099_000,
            node_height: 3_100_000,
            blocks_per_sec_milli: 12_500,
            eta_secs: Some(80),
            synced: false,
            node_error: None,
        },
        proxies: vec![
            ProxyStanding {
                proxy_url: "https://proxy-a.example.com".to_owned(),
                status: ServerStatus::Admitted,
                reason: None,
                since: 1_767_000_000,
            },
            ProxyStanding {
                proxy_url: "https://proxy-b.example.com".to_owned(),
                status: ServerStatus::Warned,
                reason: Some("tip behind by 3 blocks".to_owned()),
                since: 1_767_200_000,
            },
        ],
    }
}

fn nested_unicode() -> Value {
    json!({
        "zeta": [[], {}, [[["deep"]]], null, true, false],
        "B": "upper case sorts before lower case",
        "a": {"é": "e-acute (2 UTF-8 bytes)", "e": "plain", "": "empty key"},
        // UTF-8 byte order puts U+FF61 (ef bd a1) before U+1F980 (f0 9f a6 80); UTF-16 code
        // unit order (JavaScript's default sort) would not.
        "sort": {"🦀": "crab", "｡": "halfwidth full stop"},
        "aa": ["Grüße", "日本語", "🦀", "quote \" backslash \\ newline \n tab \t"],
        "numbers": [0, 1, 255, 256, 4_294_967_296_u64, MAX_INTEGER],
        "empty": "",
    })
}

fn to_value<T: Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap()
}

/// The signed cases: name, seed and (tag, body).
fn signed_inputs() -> Vec<(&'static str, [u8; 32], &'static str, Value)> {
    let server_seed = [0x11; 32];
    let server_key = Identity::from_seed(server_seed).public_key();
    let mut heartbeat_from_newer_peer = to_value(&heartbeat());
    heartbeat_from_newer_peer["region"] = json!("eu-west");
    heartbeat_from_newer_peer["seq"] = json!(43);
    vec![
        (
            "heartbeat",
            seed_counting(),
            Heartbeat::TAG,
            to_value(&heartbeat()),
        ),
        (
            "challenge-answer",
            seed_counting(),
            ChallengeAnswer::TAG,
            to_value(&ChallengeAnswer {
                nonce: Nonce(std::array::from_fn(|i| i as u8 * 7)),
                time: 1_767_225_601,
            }),
        ),
        (
            "server-info",
            server_seed,
            ServerInfo::TAG,
            to_value(&server_info(server_key)),
        ),
        (
            "nested-unicode",
            seed_rfc8032(),
            TestVector::TAG,
            nested_unicode(),
        ),
        (
            "heartbeat-with-unknown-field",
            seed_counting(),
            Heartbeat::TAG,
            heartbeat_from_newer_peer,
        ),
    ]
}

/// Canonical encoding cases: name and JSON texts that must all encode to the same bytes.
fn canonical_inputs() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("scalars", vec!["[null,false,true,0,9007199254740991,\"\"]"]),
        (
            "key-order-and-whitespace",
            vec![
                r#"{"b":1,"a":{"y":[true],"x":"é"}}"#,
                "{ \"a\" : { \"x\" : \"\\u00e9\" , \"y\" : [ true ] } ,\n  \"b\" : 1 }",
            ],
        ),
        (
            "bytewise-key-order",
            vec![r#"{"🦀":0,"｡":0,"é":0,"b":0,"aa":0,"a":0,"B":0,"":0}"#],
        ),
    ]
}

/// JSON texts that have no canonical encoding.
fn canonical_rejects() -> Vec<(&'static str, String)> {
    vec![
        ("negative-integer", "-1".to_owned()),
        ("negative-zero", "-0".to_owned()),
        ("float", "1.5".to_owned()),
        ("float-integral", "2.0".to_owned()),
        ("exponent", "1e3".to_owned()),
        ("above-2^53-1", "9007199254740992".to_owned()),
        ("nested-float", r#"{"a":[0,0.1]}"#.to_owned()),
        (
            "too-deep",
            format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1)),
        ),
    ]
}

fn generate() -> Value {
    let cases: Vec<Value> = signed_inputs()
        .into_iter()
        .map(|(name, seed, tag, body)| {
            let identity = Identity::from_seed(seed);
            let key = identity.public_key().to_string();
            let message = signing_bytes(tag, PROTOCOL_VERSION, &key, &body).unwrap();
            let signature = identity.sign(&message).to_string();
            json!({
                "name": name,
                "seed": hex::encode(seed),
                "public_key": key,
                "tag": tag,
                "version": PROTOCOL_VERSION,
                "body": body,
                "signed_bytes": hex::encode(&message),
                "signature": signature,
                "envelope": {
                    "tag": tag, "version": PROTOCOL_VERSION, "key": key, "body": body,
                    "signature": signature,
                },
            })
        })
        .collect();
    let canonical: Vec<Value> = canonical_inputs()
        .into_iter()
        .map(|(name, texts)| {
            let value: Value = serde_json::from_str(texts[0]).unwrap();
            json!({"name": name, "json": texts, "hex": hex::encode(canonical_bytes(&value).unwrap())})
        })
        .collect();
    let rejects: Vec<Value> = canonical_rejects()
        .into_iter()
        .map(|(name, text)| json!({"name": name, "json": text}))
        .collect();
    json!({
        "about": "ROT protocol signing test vectors; see docs/protocol.md. signed_bytes is the \
                  canonical encoding of {tag, version, key, body}; signature is ed25519 over it.",
        "signed": cases,
        "canonical": canonical,
        "canonical_rejects": rejects,
    })
}

/// The vectors file, first rewritten (once per run, before any test reads it) when
/// `ROT_WRITE_VECTORS` is set.
fn stored() -> Value {
    static WRITTEN: OnceLock<()> = OnceLock::new();
    WRITTEN.get_or_init(|| {
        if std::env::var_os("ROT_WRITE_VECTORS").is_some() {
            let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
            std::fs::write(VECTORS, text).unwrap();
        }
    });
    serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// Verifies a wire envelope as the message type its tag names.
fn verify_envelope(envelope: &Value) -> Result<PublicKey, Error> {
    fn typed<T: SignedBody>(envelope: &Value) -> Result<PublicKey, Error> {
        let signed: Signed<T> = serde_json::from_value(envelope.clone()).unwrap();
        signed.verify()?;
        signed.signer()
    }
    match text(&envelope["tag"]) {
        Heartbeat::TAG => typed::<Heartbeat>(envelope),
        ChallengeAnswer::TAG => typed::<ChallengeAnswer>(envelope),
        ServerInfo::TAG => typed::<ServerInfo>(envelope),
        _ => typed::<TestVector>(envelope),
    }
}

#[test]
fn file_matches_generator() {
    assert_eq!(
        stored(),
        generate(),
        "tests/vectors/signing.json is out of date; regenerate with ROT_WRITE_VECTORS=1"
    );
}

#[test]
fn signed_cases_hold() {
    let vectors = stored();
    let cases = vectors["signed"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let name = text(&case["name"]);
        let seed: [u8; 32] = hex::decode(text(&case["seed"]))
            .unwrap()
            .try_into()
            .unwrap();
        let identity = Identity::from_seed(seed);
        assert_eq!(
            identity.public_key().to_string(),
            text(&case["public_key"]),
            "{name}"
        );
        let version = case["version"].as_u64().unwrap();
        let message = signing_bytes(
            text(&case["tag"]),
            version,
            text(&case["public_key"]),
            &case["body"],
        )
        .unwrap();
        assert_eq!(hex::encode(&message), text(&case["signed_bytes"]), "{name}");
        assert_eq!(
            identity.sign(&message).to_string(),
            text(&case["signature"]),
            "{name}"
        );
        assert_eq!(
            verify_envelope(&case["envelope"]).unwrap(),
            identity.public_key(),
            "{name}"
        );

        // Any change to the envelope breaks it.
        let mut forged = case["envelope"].clone();
        forged["body"]["forged"] = json!(1);
        assert!(
            matches!(verify_envelope(&forged), Err(Error::BadSignature)),
            "{name}"
        );
    }
}

#[test]
fn canonical_cases_hold() {
    let vectors = stored();
    for case in vectors["canonical"].as_array().unwrap() {
        for json_text in case["json"].as_array().unwrap() {
            let value: Value = serde_json::from_str(text(json_text)).unwrap();
            assert_eq!(
                hex::encode(canonical_bytes(&value).unwrap()),
                text(&case["hex"]),
                "{}",
                case["name"]
            );
        }
    }
    for case in vectors["canonical_rejects"].as_array().unwrap() {
        let value: Value = serde_json::from_str(text(&case["json"])).unwrap();
        assert!(
            matches!(canonical_bytes(&value), Err(Error::Canonical(_))),
            "{} accepted",
            case["name"]
        );
    }
}
