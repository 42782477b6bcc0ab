//! Shared pieces of the bad-input (fuzz) tests: the proptest configuration every target uses
//! (case count from `PROPTEST_CASES`, short by default so `cargo test` stays quick; long runs
//! are `bench/fuzz.sh`), and mutators that turn real fixtures into near-valid garbage, which
//! reaches far deeper into a parser than random bytes do.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::Config;
use rot_proto::{ChainRules, PowAlgorithm};
use serde_json::Value;

/// Cases per target when `PROPTEST_CASES` is not set: enough to catch regressions in CI.
pub const DEFAULT_CASES: u32 = 256;

/// The proptest configuration of a target: `PROPTEST_CASES` cases (else `default_cases`), no
/// regression files written into the source tree (found bugs become named unit tests instead).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every combination of the wire quirks a coin profile can switch on (segwit, MWEB, AuxPoW,
/// PoS `nTime`), so chain parsers meet each input under every layout.
pub fn every_wire_layout() -> Vec<ChainRules> {
    (0..16u8)
        .map(|bits| ChainRules {
            pow: PowAlgorithm::Sha256d,
            segwit: bits & 1 != 0,
            mweb: bits & 2 != 0,
            auxpow: bits & 4 != 0,
            pos_ntime: bits & 8 != 0,
        })
        .collect()
}

/// Bytes that make wire parsers take their rare branches: compact-size markers, the
/// extended-serialization flags, Litecoin's "present" byte, extremes.
const INTERESTING_BYTES: [u8; 10] = [0x00, 0x01, 0x02, 0x08, 0x09, 0x7f, 0x80, 0xfd, 0xfe, 0xff];

/// One edit of a byte string; positions are taken modulo the length at the time of the edit.
#[derive(Debug, Clone)]
enum Edit {
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    /// A 9-byte compact size claiming `2^32` or more items, where a length or count may be.
    HugeCount {
        at: usize,
        value: u64,
    },
    Duplicate {
        at: usize,
        len: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Edit::Flip { at, mask }),
        3 => (any::<usize>(), prop::sample::select(&INTERESTING_BYTES[..]))
            .prop_map(|(at, byte)| Edit::Set { at, byte }),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        2 => (any::<usize>(), 1..64usize).prop_map(|(at, len)| Edit::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| Edit::Truncate { at }),
        1 => (any::<usize>(), (1u64 << 32)..=u64::MAX)
            .prop_map(|(at, value)| Edit::HugeCount { at, value }),
        1 => (any::<usize>(), 1..128usize).prop_map(|(at, len)| Edit::Duplicate { at, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % len };
    let len = bytes.len();
    match edit {
        Edit::Flip { at, mask } if len > 0 => bytes[pos(*at, len)] ^= mask,
        Edit::Set { at, byte } if len > 0 => bytes[pos(*at, len)] = *byte,
        Edit::Insert { at, bytes: new } => {
            let at = pos(*at, len + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Edit::Remove { at, len: n } if len > 0 => {
            let at = pos(*at, len);
            bytes.drain(at..(at + n).min(len));
        }
        Edit::Truncate { at } => bytes.truncate(pos(*at, len + 1)),
        Edit::HugeCount { at, value } => {
            let at = pos(*at, len + 1);
            let mut count = vec![0xff];
            count.extend_from_slice(&value.to_le_bytes());
            bytes.splice(at..(at + 9).min(len), count);
        }
        Edit::Duplicate { at, len: n } if len > 0 => {
            let at = pos(*at, len);
            let chunk = bytes[at..(at + n).min(len)].to_vec();
            bytes.splice(at..at, chunk);
        }
        _ => {}
    }
}

/// One to eight edits of a byte string (bit flips, special bytes, insertions, deletions,
/// truncation, a huge compact size, a duplicated chunk), to apply to any bytes.
#[derive(Debug, Clone)]
pub struct ByteEdits(Vec<Edit>);

impl ByteEdits {
    /// Applies the edits in order.
    pub fn apply(&self, bytes: &mut Vec<u8>) {
        self.0.iter().for_each(|edit| apply(bytes, edit));
    }
}

/// Draws [`ByteEdits`].
pub fn byte_edits() -> impl Strategy<Value = ByteEdits> {
    prop::collection::vec(edit(), 1..=8).prop_map(ByteEdits)
}

/// One of `seeds` with [`ByteEdits`] applied.
pub fn mutated_bytes(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(seeds), byte_edits()).prop_map(|(mut bytes, edits)| {
        edits.apply(&mut bytes);
        bytes
    })
}

/// Near-valid bytes from `seeds` most of the time, plain random bytes otherwise.
pub fn wire_input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mutated_bytes(seeds),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// One of `seeds` (text) with byte edits applied, made valid UTF-8 again lossily.
pub fn mutated_text(seeds: Vec<String>) -> impl Strategy<Value = String> {
    mutated_bytes(seeds.into_iter().map(String::into_bytes).collect())
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Any JSON value, nested a few levels, with the numbers and strings signed messages hold.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[0-9a-f]{0,130}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// One edit of a JSON document, at the node picked by `at` (modulo the node count).
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace {
        at: usize,
        value: Value,
    },
    RemoveKey {
        at: usize,
    },
    AddKey {
        at: usize,
        key: String,
        value: Value,
    },
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        3 => (any::<usize>(), json_value()).prop_map(|(at, value)| JsonEdit::Replace { at, value }),
        1 => any::<usize>().prop_map(|at| JsonEdit::RemoveKey { at }),
        1 => (any::<usize>(), "[a-z_]{1,12}", json_value())
            .prop_map(|(at, key, value)| JsonEdit::AddKey { at, key, value }),
    ]
}

/// Number of nodes of `value` (itself included).
fn node_count(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(node_count).sum(),
        Value::Object(map) => map.values().map(node_count).sum(),
        _ => 0,
    }
}

/// The node at pre-order index `index`.
fn node_mut(value: &mut Value, mut index: usize) -> Option<&mut Value> {
    if index == 0 {
        return Some(value);
    }
    index -= 1;
    let children: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => return None,
    };
    for child in children {
        let size = node_count(child);
        if index < size {
            return node_mut(child, index);
        }
        index -= size;
    }
    None
}

fn apply_json(document: &mut Value, edit: &JsonEdit) {
    let count = node_count(document);
    let at = |i: usize| i % count;
    match edit {
        JsonEdit::Replace { at: i, value } => {
            if let Some(node) = node_mut(document, at(*i)) {
                *node = value.clone();
            }
        }
        JsonEdit::RemoveKey { at: i } => match node_mut(document, at(*i)) {
            Some(Value::Object(map)) => {
                if let Some(key) = map.keys().nth(*i % map.len().max(1)).cloned() {
                    map.remove(&key);
                }
            }
            Some(Value::Array(items)) if !items.is_empty() => {
                items.remove(*i % items.len());
            }
            _ => {}
        },
        JsonEdit::AddKey { at: i, key, value } => match node_mut(document, at(*i)) {
            Some(Value::Object(map)) => {
                map.insert(key.clone(), value.clone());
            }
            Some(Value::Array(items)) => items.push(value.clone()),
            _ => {}
        },
    }
}

/// One to four structural edits of a JSON document (a node replaced by any JSON value, a key
/// or item removed, a key or item added), to apply to any document.
#[derive(Debug, Clone)]
pub struct JsonEdits(Vec<JsonEdit>);

impl JsonEdits {
    /// Applies the edits in order.
    pub fn apply(&self, document: &mut Value) {
        self.0.iter().for_each(|edit| apply_json(document, edit));
    }
}

/// Draws [`JsonEdits`].
pub fn json_edits() -> impl Strategy<Value = JsonEdits> {
    prop::collection::vec(json_edit(), 1..=4).prop_map(JsonEdits)
}

/// One of `seeds` with [`JsonEdits`] applied.
pub fn mutated_json(seeds: Vec<Value>) -> impl Strategy<Value = Value> {
    (prop::sample::select(seeds), json_edits()).prop_map(|(mut document, edits)| {
        edits.apply(&mut document);
        document
    })
}

/// Percent-encodes every byte outside the unreserved set, so any bytes (invalid UTF-8
/// included) make a valid URI path segment or query value.
pub fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A path parameter that is no value at all: bytes that are not UTF-8 once decoded, broken
/// escapes, an encoded slash, dot segments, signs and radix prefixes.
pub fn path_garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(
            ["%FF", "%C3%28", "%zz", "%", "%2F", "..", "%00", "%E2%82", "-1", "+1", "0x10", ""]
                .map(String::from)
                .to_vec()
        ),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| percent_encode(&b)),
    ]
}

/// Any HTTP method, mostly the ones the APIs serve.
pub fn http_method() -> impl Strategy<Value = Method> {
    prop_oneof![
        8 => Just(Method::GET),
        3 => Just(Method::POST),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => Just(Method::PATCH),
    ]
}

/// Sends `request` through `router` in-process and checks the promise both APIs make about
/// client input: no 5xx (but those in `unavailable`, for routes that depend on other servers
/// being up), and every error carries the shared error body `{"error":{"code","message"}}`.
/// Returns the status, or what broke the promise.
pub async fn check_client_answer(
    router: &Router,
    request: Request<Body>,
    unavailable: &[StatusCode],
) -> Result<StatusCode, String> {
    let what = format!("{} {}", request.method(), request.uri());
    let head = request.method() == Method::HEAD;
    let response = tower::ServiceExt::oneshot(router.clone(), request)
        .await
        .map_err(|e| format!("{what}: router failed: {e}"))?;
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| format!("{what}: body unreadable: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if status.is_server_error() && !unavailable.contains(&status) {
        return Err(format!("{what}: {status} for client input: {text}"));
    }
    if (status.is_client_error() || status.is_server_error()) && !head {
        let shared = serde_json::from_slice::<Value>(&bytes).is_ok_and(|body| {
            body["error"]["code"].is_string() && body["error"]["message"].is_string()
        });
        if !shared {
            return Err(format!(
                "{what}: {status} without the shared error body: {text}"
            ));
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn mutations_change_the_seed_and_stay_bounded() {
        let seed = (0u8..100).collect::<Vec<u8>>();
        let mut runner = TestRunner::deterministic();
        let strategy = mutated_bytes(vec![seed.clone()]);
        let mut changed = 0;
        for _ in 0..200 {
            let bytes = strategy.new_tree(&mut runner).unwrap().current();
            // At most eight edits of at most 128 added bytes each.
            assert!(bytes.len() <= seed.len() + 8 * 128);
            changed += usize::from(bytes != seed);
        }
        assert!(changed > 150, "only {changed} of 200 differ from the seed");
    }

    #[test]
    fn json_edits_reach_nested_nodes() {
        let mut document = serde_json::json!({"a": {"b": [1, 2]}, "c": 3});
        assert_eq!(node_count(&document), 6);
        apply_json(
            &mut document,
            &JsonEdit::Replace {
                at: 4,
                value: Value::Null,
            },
        );
        assert_eq!(document, serde_json::json!({"a": {"b": [1, null]}, "c": 3}));
        apply_json(&mut document, &JsonEdit::RemoveKey { at: 0 });
        assert_eq!(document.as_object().unwrap().len(), 1);
    }

    #[test]
    fn case_count_comes_from_the_environment_or_the_default() {
        // The environment may set PROPTEST_CASES (bench/fuzz.sh does); both ways are valid.
        let expected = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7);
        assert_eq!(config(7).cases, expected);
        assert!(config(7).failure_persistence.is_none());
    }
}
