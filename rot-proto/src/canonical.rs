//! ROT canonical encoding: the one byte string a JSON value stands for, so that a signature made
//! over it survives key reordering and whitespace changes between peers. The rules are few and
//! fixed-width so that a PHP or JavaScript implementation is a page of code (see
//! `docs/protocol.md`).
//!
//! | value   | bytes                                                                   |
//! |---------|-------------------------------------------------------------------------|
//! | null    | `00`                                                                    |
//! | false   | `01`                                                                    |
//! | true    | `02`                                                                    |
//! | integer | `03` + u64 big-endian (8 bytes); only 0 ..= 2^53-1                      |
//! | string  | `04` + u32 BE byte length + UTF-8 bytes                                 |
//! | array   | `05` + u32 BE item count + each item                                    |
//! | object  | `06` + u32 BE entry count + entries sorted bytewise by key, each entry  |
//! |         | u32 BE key length + key UTF-8 bytes + value                             |

use serde_json::Value;

use crate::Error;

/// The largest integer a canonical value may hold: JavaScript's `Number.MAX_SAFE_INTEGER`, so
/// every implementation reads the same number. Anything else travels as a string.
pub const MAX_INTEGER: u64 = (1 << 53) - 1;

/// How many arrays/objects may nest inside one another. Signed messages are shallow; the cap
/// keeps encoding (and the implementations of others) free of deep recursion.
pub const MAX_DEPTH: usize = 32;

const NULL: u8 = 0x00;
const FALSE: u8 = 0x01;
const TRUE: u8 = 0x02;
const INTEGER: u8 = 0x03;
const STRING: u8 = 0x04;
const ARRAY: u8 = 0x05;
const OBJECT: u8 = 0x06;

/// Encodes `value` canonically. Fails on floats, negative integers, integers above
/// [`MAX_INTEGER`], nesting deeper than [`MAX_DEPTH`] and lengths beyond `u32`.
pub fn canonical_bytes(value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode(value, 0, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `value`, which sits inside `depth` arrays/objects.
fn encode(value: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(number) => {
            let integer = number
                .as_u64()
                .ok_or_else(|| Error::Canonical(format!("{number} is not an integer >= 0")))?;
            if integer > MAX_INTEGER {
                return Err(Error::Canonical(format!(
                    "{integer} exceeds 2^53-1; send large numbers as strings"
                )));
            }
            out.push(INTEGER);
            out.extend_from_slice(&integer.to_be_bytes());
        }
        Value::String(text) => {
            out.push(STRING);
            put_bytes(text.as_bytes(), out)?;
        }
        Value::Array(items) => {
            check_depth(depth)?;
            out.push(ARRAY);
            put_len(items.len(), out)?;
            for item in items {
                encode(item, depth + 1, out)?;
            }
        }
        Value::Object(map) => {
            check_depth(depth)?;
            out.push(OBJECT);
            put_len(map.len(), out)?;
            // Sort explicitly: serde_json keeps insertion order when another crate in the
            // build enables its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (key, item) in entries {
                put_bytes(key.as_bytes(), out)?;
                encode(item, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

/// Refuses to open one more array/object inside `depth` enclosing ones beyond [`MAX_DEPTH`].
fn check_depth(depth: usize) -> Result<(), Error> {
    if depth >= MAX_DEPTH {
        return Err(Error::Canonical(format!(
            "nesting deeper than {MAX_DEPTH} arrays/objects"
        )));
    }
    Ok(())
}

/// Appends a u32 big-endian length.
fn put_len(len: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    let len =
        u32::try_from(len).map_err(|_| Error::Canonical(format!("length {len} exceeds u32")))?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends a length-prefixed byte string.
fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    put_len(bytes.len(), out)?;
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex_of(value: &Value) -> String {
        hex::encode(canonical_bytes(value).unwrap())
    }

    fn nested_arrays(levels: usize) -> Value {
        (0..levels).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
    }

    #[test]
    fn scalars_have_exact_bytes() {
        assert_eq!(hex_of(&json!(null)), "00");
        assert_eq!(hex_of(&json!(false)), "01");
        assert_eq!(hex_of(&json!(true)), "02");
        assert_eq!(hex_of(&json!(0)), "030000000000000000");
        assert_eq!(hex_of(&json!(258)), "030000000000000102");
        assert_eq!(hex_of(&json!(MAX_INTEGER)), "03001fffffffffffff");
        assert_eq!(hex_of(&json!("")), "0400000000");
        // "é" is two UTF-8 bytes: the length counts bytes, not characters.
        assert_eq!(hex_of(&json!("aé")), "040000000361c3a9");
    }

    #[test]
    fn containers_have_exact_bytes() {
        assert_eq!(hex_of(&json!([])), "0500000000");
        assert_eq!(hex_of(&json!([true, null])), "05000000020200");
        assert_eq!(hex_of(&json!({})), "0600000000");
        assert_eq!(
            hex_of(&json!({"b": false, "a": [true]})),
            concat!(
                "06", "00000002", "00000001", "61", "05", "00000001", "02", "00000001", "62", "01",
            )
        );
    }

    #[test]
    fn keys_sort_bytewise_not_by_length_or_case() {
        // Bytewise: "B" (0x42) < "a" (0x61) < "aa" < "b" < "é" (0xc3 0xa9).
        let value = json!({"é": 5, "b": 4, "aa": 3, "a": 2, "B": 1});
        let bytes = canonical_bytes(&value).unwrap();
        let mut keys = Vec::new();
        let mut at = 5;
        for _ in 0..5 {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            keys.push(String::from_utf8(bytes[at + 4..at + 4 + len].to_vec()).unwrap());
            at += 4 + len + 9;
        }
        assert_eq!(keys, ["B", "a", "aa", "b", "é"]);
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn stable_under_key_order_and_whitespace() {
        let compact: Value =
            serde_json::from_str(r#"{"tag":"x","body":{"z":[1,{"q":null,"p":true}],"a":"é"}}"#)
                .unwrap();
        let loose: Value = serde_json::from_str(
            "{ \"body\" : {\n  \"a\" : \"\\u00e9\",\n  \"z\" : [ 1 , { \"p\" : true , \"q\" : null } ]\n },\n \"tag\" : \"x\" }",
        )
        .unwrap();
        assert_eq!(
            canonical_bytes(&compact).unwrap(),
            canonical_bytes(&loose).unwrap()
        );
    }

    #[test]
    fn different_values_differ() {
        // Type bytes and length prefixes keep look-alikes apart.
        let pairs = [
            (json!("1"), json!(1)),
            (json!(["ab"]), json!(["a", "b"])),
            (json!({"a": null}), json!({"a": false})),
            (json!([]), json!({})),
        ];
        for (a, b) in pairs {
            assert_ne!(
                canonical_bytes(&a).unwrap(),
                canonical_bytes(&b).unwrap(),
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn rejects_numbers_outside_safe_integers() {
        for text in [
            "-1",
            "1.5",
            "1.0",
            "1e3",
            "-0",
            "9007199254740992",
            "18446744073709551615",
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert!(
                matches!(canonical_bytes(&value), Err(Error::Canonical(_))),
                "{text} accepted"
            );
        }
        // Also when buried inside containers.
        assert!(canonical_bytes(&json!({"a": [1, 2.5]})).is_err());
    }

    #[test]
    fn caps_nesting_depth() {
        assert!(canonical_bytes(&nested_arrays(MAX_DEPTH)).is_ok());
        assert!(matches!(
            canonical_bytes(&nested_arrays(MAX_DEPTH + 1)),
            Err(Error::Canonical(_))
        ));
        let deep_object = (0..=MAX_DEPTH).fold(json!(1), |inner, _| json!({ "k": inner }));
        assert!(canonical_bytes(&deep_object).is_err());
    }
}
