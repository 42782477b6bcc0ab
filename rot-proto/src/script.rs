//! scriptPubKey classification and assembly text exactly as the Esplora API prints them in
//! `scriptpubkey_type` and `scriptpubkey_asm`, so ROT servers are drop-in replacements.
//!
//! Reference: the type ladder of mempool/electrs `src/rest.rs` (`TxOutValue::new`, the fork run
//! by mempool.space and litecoinspace.org), which extends Blockstream/electrs with `multisig`,
//! and rust-bitcoin's `bytes_to_asm_fmt`, which both electrs use for the ASM. Every byte string
//! is a valid input: non-standard and truncated scripts are classified `unknown` and printed as
//! far as they go, never rejected.

use std::fmt::{self, Write};

use serde::{Deserialize, Serialize};

/// What kind of output a scriptPubKey is, named as in Esplora's `scriptpubkey_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScriptType {
    /// No bytes at all.
    #[serde(rename = "empty")]
    Empty,
    /// Starts with OP_RETURN: data carrier, unspendable.
    #[serde(rename = "op_return")]
    OpReturn,
    /// `<33 or 65-byte push> OP_CHECKSIG`.
    #[serde(rename = "p2pk")]
    P2pk,
    /// `OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG`.
    #[serde(rename = "p2pkh")]
    P2pkh,
    /// `OP_HASH160 <20> OP_EQUAL`.
    #[serde(rename = "p2sh")]
    P2sh,
    /// `OP_0 <20>`.
    #[serde(rename = "v0_p2wpkh")]
    V0P2wpkh,
    /// `OP_0 <32>`.
    #[serde(rename = "v0_p2wsh")]
    V0P2wsh,
    /// `OP_1 <32>`.
    #[serde(rename = "v1_p2tr")]
    V1P2tr,
    /// Starts with an opcode that fails whenever executed (other than OP_RETURN).
    #[serde(rename = "provably_unspendable")]
    ProvablyUnspendable,
    /// Bare `OP_m … OP_n OP_CHECKMULTISIG`.
    #[serde(rename = "multisig")]
    Multisig,
    /// Anything else, including other witness versions and malformed scripts.
    #[serde(rename = "unknown")]
    Unknown,
}

/// Opcodes the classification and the ASM need by value.
mod op {
    pub const PUSHDATA1: u8 = 0x4c;
    pub const PUSHDATA2: u8 = 0x4d;
    pub const PUSHDATA4: u8 = 0x4e;
    pub const PUSHNUM_1: u8 = 0x51;
    pub const PUSHNUM_15: u8 = 0x5f;
    pub const RETURN: u8 = 0x6a;
    pub const DUP: u8 = 0x76;
    pub const EQUAL: u8 = 0x87;
    pub const EQUALVERIFY: u8 = 0x88;
    pub const HASH160: u8 = 0xa9;
    pub const CHECKSIG: u8 = 0xac;
    pub const CHECKMULTISIG: u8 = 0xae;
}

impl ScriptType {
    /// Classifies a scriptPubKey; the order of the tests is electrs', so overlapping patterns
    /// resolve the same way.
    pub fn classify(script: &[u8]) -> ScriptType {
        let len = script.len();
        match script {
            [] => ScriptType::Empty,
            [op::RETURN, ..] => ScriptType::OpReturn,
            [0x41, .., op::CHECKSIG] if len == 67 => ScriptType::P2pk,
            [0x21, .., op::CHECKSIG] if len == 35 => ScriptType::P2pk,
            [
                op::DUP,
                op::HASH160,
                0x14,
                ..,
                op::EQUALVERIFY,
                op::CHECKSIG,
            ] if len == 25 => ScriptType::P2pkh,
            [op::HASH160, 0x14, .., op::EQUAL] if len == 23 => ScriptType::P2sh,
            [0x00, 0x14, ..] if len == 22 => ScriptType::V0P2wpkh,
            [0x00, 0x20, ..] if len == 34 => ScriptType::V0P2wsh,
            [op::PUSHNUM_1, 0x20, ..] if len == 34 => ScriptType::V1P2tr,
            [first, ..] if fails_when_executed(*first) => ScriptType::ProvablyUnspendable,
            _ if is_bare_multisig(script) => ScriptType::Multisig,
            _ => ScriptType::Unknown,
        }
    }

    /// The Esplora name, e.g. `v0_p2wpkh`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptType::Empty => "empty",
            ScriptType::OpReturn => "op_return",
            ScriptType::P2pk => "p2pk",
            ScriptType::P2pkh => "p2pkh",
            ScriptType::P2sh => "p2sh",
            ScriptType::V0P2wpkh => "v0_p2wpkh",
            ScriptType::V0P2wsh => "v0_p2wsh",
            ScriptType::V1P2tr => "v1_p2tr",
            ScriptType::ProvablyUnspendable => "provably_unspendable",
            ScriptType::Multisig => "multisig",
            ScriptType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ScriptType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Opcodes that abort a legacy script whenever they are reached (rust-bitcoin's `ReturnOp` and
/// `IllegalOp` classes in legacy context): a script starting with one can never be spent.
fn fails_when_executed(opcode: u8) -> bool {
    matches!(
        opcode,
        0x50 | 0x62 | 0x65 | 0x66 | 0x6a      // RESERVED, VER, VERIF, VERNOTIF, RETURN
            | 0x7e..=0x81 | 0x83..=0x86       // disabled splice and bitwise ops
            | 0x89 | 0x8a                     // RESERVED1, RESERVED2
            | 0x8d | 0x8e | 0x95..=0x99       // disabled arithmetic
            | 0xba..=0xff // CHECKSIGADD (tapscript only) and undefined opcodes
    )
}

/// mempool/electrs' bare multisig test: `OP_m … OP_n OP_CHECKMULTISIG` with 1 ≤ m ≤ n ≤ 15,
/// not looking at the keys in between.
fn is_bare_multisig(script: &[u8]) -> bool {
    let len = script.len();
    len >= 37
        && script[len - 1] == op::CHECKMULTISIG
        && (op::PUSHNUM_1..=op::PUSHNUM_15).contains(&script[len - 2])
        && (op::PUSHNUM_1..=script[len - 2]).contains(&script[0])
}

/// Renders a script the way Esplora's `*_asm` fields do: opcode names with rust-bitcoin's
/// spelling (`OP_PUSHBYTES_20`, `OP_PUSHNUM_1`, `OP_CLTV`, `OP_RETURN_187`…), each push followed
/// by its data in hex. A push running past the end prints `<push past end>`; a PUSHDATA whose
/// length field is cut prints `<unexpected end>` (glued to the previous token, as electrs
/// does). Never fails.
pub fn script_asm(script: &[u8]) -> String {
    let mut out = String::with_capacity(script.len() * 3);
    let mut rest = script;
    while let Some((&opcode, tail)) = rest.split_first() {
        rest = tail;
        let push_len = match opcode {
            0x01..=0x4b => usize::from(opcode),
            op::PUSHDATA1 | op::PUSHDATA2 | op::PUSHDATA4 => {
                let width = match opcode {
                    op::PUSHDATA1 => 1,
                    op::PUSHDATA2 => 2,
                    _ => 4,
                };
                let Some((field, tail)) = rest.split_at_checked(width) else {
                    out.push_str("<unexpected end>");
                    break;
                };
                rest = tail;
                little_endian(field)
            }
            _ => 0,
        };
        if !out.is_empty() {
            out.push(' ');
        }
        write_opcode(&mut out, opcode);
        if push_len > 0 {
            out.push(' ');
            let Some((data, tail)) = rest.split_at_checked(push_len) else {
                out.push_str("<push past end>");
                break;
            };
            rest = tail;
            out.push_str(&hex::encode(data));
        }
    }
    out
}

/// A PUSHDATA length field (1, 2 or 4 bytes, little-endian).
fn little_endian(field: &[u8]) -> usize {
    field
        .iter()
        .rev()
        .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte))
}

/// Appends rust-bitcoin's name of an opcode.
fn write_opcode(out: &mut String, opcode: u8) {
    let name = match opcode {
        // rust-bitcoin's asm writes OP_0 for the empty push (its Display says OP_PUSHBYTES_0).
        0x00 => "0",
        0x01..=0x4b => return push_numbered(out, "PUSHBYTES_", opcode),
        op::PUSHDATA1 => "PUSHDATA1",
        op::PUSHDATA2 => "PUSHDATA2",
        op::PUSHDATA4 => "PUSHDATA4",
        0x4f => "PUSHNUM_NEG1",
        0x50 => "RESERVED",
        0x51..=0x60 => return push_numbered(out, "PUSHNUM_", opcode - 0x50),
        0x61 => "NOP",
        0x62 => "VER",
        0x63 => "IF",
        0x64 => "NOTIF",
        0x65 => "VERIF",
        0x66 => "VERNOTIF",
        0x67 => "ELSE",
        0x68 => "ENDIF",
        0x69 => "VERIFY",
        op::RETURN => "RETURN",
        0x6b => "TOALTSTACK",
        0x6c => "FROMALTSTACK",
        0x6d => "2DROP",
        0x6e => "2DUP",
        0x6f => "3DUP",
        0x70 => "2OVER",
        0x71 => "2ROT",
        0x72 => "2SWAP",
        0x73 => "IFDUP",
        0x74 => "DEPTH",
        0x75 => "DROP",
        op::DUP => "DUP",
        0x77 => "NIP",
        0x78 => "OVER",
        0x79 => "PICK",
        0x7a => "ROLL",
        0x7b => "ROT",
        0x7c => "SWAP",
        0x7d => "TUCK",
        0x7e => "CAT",
        0x7f => "SUBSTR",
        0x80 => "LEFT",
        0x81 => "RIGHT",
        0x82 => "SIZE",
        0x83 => "INVERT",
        0x84 => "AND",
        0x85 => "OR",
        0x86 => "XOR",
        op::EQUAL => "EQUAL",
        op::EQUALVERIFY => "EQUALVERIFY",
        0x89 => "RESERVED1",
        0x8a => "RESERVED2",
        0x8b => "1ADD",
        0x8c => "1SUB",
        0x8d => "2MUL",
        0x8e => "2DIV",
        0x8f => "NEGATE",
        0x90 => "ABS",
        0x91 => "NOT",
        0x92 => "0NOTEQUAL",
        0x93 => "ADD",
        0x94 => "SUB",
        0x95 => "MUL",
        0x96 => "DIV",
        0x97 => "MOD",
        0x98 => "LSHIFT",
        0x99 => "RSHIFT",
        0x9a => "BOOLAND",
        0x9b => "BOOLOR",
        0x9c => "NUMEQUAL",
        0x9d => "NUMEQUALVERIFY",
        0x9e => "NUMNOTEQUAL",
        0x9f => "LESSTHAN",
        0xa0 => "GREATERTHAN",
        0xa1 => "LESSTHANOREQUAL",
        0xa2 => "GREATERTHANOREQUAL",
        0xa3 => "MIN",
        0xa4 => "MAX",
        0xa5 => "WITHIN",
        0xa6 => "RIPEMD160",
        0xa7 => "SHA1",
        0xa8 => "SHA256",
        op::HASH160 => "HASH160",
        0xaa => "HASH256",
        0xab => "CODESEPARATOR",
        op::CHECKSIG => "CHECKSIG",
        0xad => "CHECKSIGVERIFY",
        op::CHECKMULTISIG => "CHECKMULTISIG",
        0xaf => "CHECKMULTISIGVERIFY",
        0xb0 => "NOP1",
        0xb1 => "CLTV",
        0xb2 => "CSV",
        0xb3..=0xb9 => return push_numbered(out, "NOP", opcode - 0xb0 + 1),
        0xba => "CHECKSIGADD",
        0xbb..=0xfe => return push_numbered(out, "RETURN_", opcode),
        0xff => "INVALIDOPCODE",
    };
    out.push_str("OP_");
    out.push_str(name);
}

/// Appends `OP_{family}{number}`, e.g. `OP_PUSHBYTES_20`.
fn push_numbered(out: &mut String, family: &str, number: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "OP_{family}{number}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(hex_script: &str) -> String {
        script_asm(&hex::decode(hex_script).unwrap())
    }

    fn classify(hex_script: &str) -> ScriptType {
        ScriptType::classify(&hex::decode(hex_script).unwrap())
    }

    #[test]
    fn standard_outputs() {
        // Values from Esplora responses (blockstream.info / mempool.space) quoted in public code.
        let p2pkh = "76a9143b5bd0828a6c373291143b2c04392085f7173f1188ac";
        assert_eq!(classify(p2pkh), ScriptType::P2pkh);
        assert_eq!(
            asm(p2pkh),
            "OP_DUP OP_HASH160 OP_PUSHBYTES_20 3b5bd0828a6c373291143b2c04392085f7173f11 \
             OP_EQUALVERIFY OP_CHECKSIG"
        );
        let p2sh = "a914c1a53f42ae60684fa42cc7c97210709070189f4487";
        assert_eq!(classify(p2sh), ScriptType::P2sh);
        assert_eq!(
            asm(p2sh),
            "OP_HASH160 OP_PUSHBYTES_20 c1a53f42ae60684fa42cc7c97210709070189f44 OP_EQUAL"
        );
        let p2tr = "512029aa42b0b2902ab8e7af9d9bb81ff1f1369874bd569afb9c67583c2c53a6381d";
        assert_eq!(classify(p2tr), ScriptType::V1P2tr);
        assert_eq!(
            asm(p2tr),
            "OP_PUSHNUM_1 OP_PUSHBYTES_32 \
             29aa42b0b2902ab8e7af9d9bb81ff1f1369874bd569afb9c67583c2c53a6381d"
        );
        let op_return =
            "6a24aa21a9eda6b9213aaceb28a8297f060ac8058111b60450eac3832b65c6336e88719d9066";
        assert_eq!(classify(op_return), ScriptType::OpReturn);
        assert_eq!(
            asm(op_return),
            "OP_RETURN OP_PUSHBYTES_36 \
             aa21a9eda6b9213aaceb28a8297f060ac8058111b60450eac3832b65c6336e88719d9066"
        );
        assert_eq!(
            classify("0014d817581d6c580afe261df66d2e2d5e8b809cd9f9"),
            ScriptType::V0P2wpkh
        );
        assert_eq!(
            classify("00207092c6c0200c779cd58bd6ab2c01f984bd9cdab3df20a52fb1b7bc4e72b6c83f"),
            ScriptType::V0P2wsh
        );
    }

    #[test]
    fn p2pk_both_key_sizes() {
        // Bitcoin's genesis output (uncompressed key), from chainparams.cpp.
        let genesis = "4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac";
        assert_eq!(classify(genesis), ScriptType::P2pk);
        assert!(asm(genesis).starts_with("OP_PUSHBYTES_65 04678afd"));
        assert!(asm(genesis).ends_with("5f OP_CHECKSIG"));
        let compressed = format!("21{}ac", "02".repeat(33));
        assert_eq!(classify(&compressed), ScriptType::P2pk);
    }

    #[test]
    fn multisig_witness_script() {
        // A 2-of-3 witness script and its inner_witnessscript_asm from an Esplora response.
        let script = "522103110b6a279de37085c775c3899fa8bf3c7a734d346b86be7a6dce55a41623b4ec2103ab719ec244b513ee8a77598ef7a5177e7091390a52078874ed74b5e79d2203b12103b4e0d0ba8bb4a77b53175b02a8c311b57a7dca6afd5f20596d96c46f11ed827d53ae";
        assert_eq!(classify(script), ScriptType::Multisig);
        assert_eq!(
            asm(script),
            "OP_PUSHNUM_2 \
             OP_PUSHBYTES_33 03110b6a279de37085c775c3899fa8bf3c7a734d346b86be7a6dce55a41623b4ec \
             OP_PUSHBYTES_33 03ab719ec244b513ee8a77598ef7a5177e7091390a52078874ed74b5e79d2203b1 \
             OP_PUSHBYTES_33 03b4e0d0ba8bb4a77b53175b02a8c311b57a7dca6afd5f20596d96c46f11ed827d \
             OP_PUSHNUM_3 OP_CHECKMULTISIG"
        );
        // m greater than n is not multisig.
        let inverted = format!("53{}52ae", &script[2..script.len() - 4]);
        assert_eq!(classify(&inverted), ScriptType::Unknown);
    }

    #[test]
    fn other_types() {
        assert_eq!(classify(""), ScriptType::Empty);
        assert_eq!(asm(""), "");
        assert_eq!(classify("6a"), ScriptType::OpReturn);
        assert_eq!(classify("50"), ScriptType::ProvablyUnspendable);
        assert_eq!(classify("ff00"), ScriptType::ProvablyUnspendable);
        assert_eq!(classify("ba"), ScriptType::ProvablyUnspendable);
        assert_eq!(classify("5202751e"), ScriptType::Unknown); // witness v2
        assert_eq!(classify("51"), ScriptType::Unknown);
        // One byte short of P2PKH.
        assert_eq!(
            classify("76a9143b5bd0828a6c373291143b2c04392085f7173f88ac"),
            ScriptType::Unknown
        );
    }

    #[test]
    fn opcode_names_follow_rust_bitcoin() {
        assert_eq!(asm("00"), "OP_0");
        assert_eq!(asm("4f"), "OP_PUSHNUM_NEG1");
        assert_eq!(asm("60"), "OP_PUSHNUM_16");
        assert_eq!(asm("b0b1b2b3b9"), "OP_NOP1 OP_CLTV OP_CSV OP_NOP4 OP_NOP10");
        assert_eq!(
            asm("babbfeff"),
            "OP_CHECKSIGADD OP_RETURN_187 OP_RETURN_254 OP_INVALIDOPCODE"
        );
        assert_eq!(asm("4c03aabbcc"), "OP_PUSHDATA1 aabbcc");
        assert_eq!(asm("4d0200aabb"), "OP_PUSHDATA2 aabb");
        assert_eq!(asm("4e01000000aa"), "OP_PUSHDATA4 aa");
        assert_eq!(asm("4c0076"), "OP_PUSHDATA1 OP_DUP");
    }

    #[test]
    fn truncated_scripts_print_as_electrs_does() {
        assert_eq!(asm("0014aabb"), "OP_0 OP_PUSHBYTES_20 <push past end>");
        assert_eq!(asm("764c"), "OP_DUP<unexpected end>");
        assert_eq!(asm("4d01"), "<unexpected end>");
        assert_eq!(asm("4c05aabb"), "OP_PUSHDATA1 <push past end>");
        assert_eq!(asm("4effffffff00"), "OP_PUSHDATA4 <push past end>");
        assert_eq!(classify("0014aabb"), ScriptType::Unknown);
    }

    #[test]
    fn any_bytes_are_accepted() {
        // Every 1- and 2-byte script, and every opcode followed by a short tail.
        for a in 0..=255u8 {
            ScriptType::classify(&[a]);
            script_asm(&[a]);
            for b in 0..=255u8 {
                script_asm(&[a, b]);
                ScriptType::classify(&[a, b, 0xae]);
            }
        }
    }

    #[test]
    fn names_and_serde_agree() {
        let all = [
            ScriptType::Empty,
            ScriptType::OpReturn,
            ScriptType::P2pk,
            ScriptType::P2pkh,
            ScriptType::P2sh,
            ScriptType::V0P2wpkh,
            ScriptType::V0P2wsh,
            ScriptType::V1P2tr,
            ScriptType::ProvablyUnspendable,
            ScriptType::Multisig,
            ScriptType::Unknown,
        ];
        for kind in all {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
    }
}
