//! Addresses of a coin profile: base58check P2PKH/P2SH and segwit bech32 (witness v0, BIP 173)
//! or bech32m (v1 to v16, BIP 350). An address is only a spelling of a scriptPubKey; servers
//! index scripts, so parsing ends in [`Address::script_pubkey`] and, for the Esplora
//! `scriptpubkey_address` field, [`Address::from_script`] goes the other way.
//!
//! Parsing follows the coin's node (Bitcoin/Litecoin Core `DecodeDestination`): legacy P2SH
//! prefixes listed in the profile are accepted and re-encoded with the current one, every
//! witness version up to 16 with a 2..=40-byte program is accepted, and errors say whether the
//! text is garbled, mistyped (checksum) or meant for another coin or network.

use std::fmt;

use bech32::primitives::decode::{CheckedHrpstring, SegwitHrpstringError, UncheckedHrpstring};
use bech32::{Bech32, Bech32m, Fe32, Hrp};
use serde::{Serialize, Serializer};

use crate::Error;
use crate::coin::{CoinProfile, Coins};
use crate::hash::sha256d;
use crate::script_hash::ScriptHash;

/// No address is longer than BIP 173's 90 characters; longer input is refused before decoding.
const MAX_ADDRESS_LEN: usize = 90;

/// Length of a base58check payload: one version byte and a 20-byte HASH160.
const BASE58_PAYLOAD_LEN: usize = 21;

/// What an address pays to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Pay to public key hash: HASH160 of a public key.
    P2pkh([u8; 20]),
    /// Pay to script hash: HASH160 of a redeem script.
    P2sh([u8; 20]),
    /// Native segwit output.
    Witness(WitnessProgram),
}

impl Payload {
    /// The scriptPubKey this payload locks coins with.
    pub fn script_pubkey(&self) -> Vec<u8> {
        match self {
            Payload::P2pkh(hash) => [&[0x76, 0xa9, 0x14][..], hash, &[0x88, 0xac]].concat(),
            Payload::P2sh(hash) => [&[0xa9, 0x14][..], hash, &[0x87]].concat(),
            Payload::Witness(witness) => witness.script_pubkey(),
        }
    }

    /// The payload of a scriptPubKey that has an address (P2PKH, P2SH or a witness program),
    /// as rust-bitcoin's `Address::from_script` decides.
    pub fn from_script(script: &[u8]) -> Option<Payload> {
        match script {
            [0x76, 0xa9, 0x14, hash @ .., 0x88, 0xac] => {
                Some(Payload::P2pkh(hash.try_into().ok()?))
            }
            [0xa9, 0x14, hash @ .., 0x87] => Some(Payload::P2sh(hash.try_into().ok()?)),
            [version_opcode, push, program @ ..] if usize::from(*push) == program.len() => {
                let version = match version_opcode {
                    0x00 => 0,
                    0x51..=0x60 => version_opcode - 0x50,
                    _ => return None,
                };
                WitnessProgram::new(version, program).map(Payload::Witness)
            }
            _ => None,
        }
    }
}

/// A segwit output's witness version and program, valid by construction: version 0 to 16,
/// program 20 or 32 bytes for version 0 and 2 to 40 bytes otherwise (BIP 141).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WitnessProgram {
    version: u8,
    program: Vec<u8>,
}

impl WitnessProgram {
    /// The witness program, or `None` when the version or length breaks BIP 141.
    pub fn new(version: u8, program: &[u8]) -> Option<WitnessProgram> {
        (version <= 16 && valid_witness_program(version, program.len()).is_ok()).then(|| {
            WitnessProgram {
                version,
                program: program.to_vec(),
            }
        })
    }

    /// The witness version, 0 to 16.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The witness program.
    pub fn program(&self) -> &[u8] {
        &self.program
    }

    /// `OP_n <program>`.
    fn script_pubkey(&self) -> Vec<u8> {
        let version_opcode = if self.version == 0 {
            0
        } else {
            0x50 + self.version
        };
        // At most 40 bytes by construction, so the length is its own push opcode.
        let push = u8::try_from(self.program.len()).unwrap_or(u8::MAX);
        [&[version_opcode, push][..], &self.program].concat()
    }
}

/// BIP 141's program length rules; the error says which one is broken.
fn valid_witness_program(version: u8, len: usize) -> Result<(), String> {
    if version == 0 && len != 20 && len != 32 {
        Err(format!(
            "a version 0 witness program is 20 or 32 bytes, not {len}"
        ))
    } else if !(2..=40).contains(&len) {
        Err(format!("a witness program is 2 to 40 bytes, not {len}"))
    } else {
        Ok(())
    }
}

/// An address of one coin profile: its payload and its canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    payload: Payload,
    text: String,
}

impl Address {
    /// Parses `text` as an address of `profile`. Errors for other coins' addresses name the
    /// built-in profiles the address belongs to; use [`Address::parse_with_registry`] to
    /// consult an extended registry.
    pub fn parse(profile: &CoinProfile, text: &str) -> Result<Address, Error> {
        Self::parse_with_registry(profile, text, Coins::builtin_ref())
    }

    /// Parses `text` as an address of `profile`, naming the profiles of `coins` an address of
    /// the wrong network belongs to.
    pub fn parse_with_registry(
        profile: &CoinProfile,
        text: &str,
        coins: &Coins,
    ) -> Result<Address, Error> {
        let invalid = |reason: String| Error::InvalidAddress {
            address: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty".to_owned()));
        }
        if text.len() > MAX_ADDRESS_LEN {
            return Err(invalid(format!(
                "{} characters, longer than any address ({MAX_ADDRESS_LEN})",
                text.len()
            )));
        }
        let parser = Parser {
            profile,
            text,
            coins,
        };
        match UncheckedHrpstring::new(text) {
            Ok(bech) if bech.has_valid_checksum::<Bech32>() => parser.segwit(bech, false),
            Ok(bech) if bech.has_valid_checksum::<Bech32m>() => parser.segwit(bech, true),
            // Looks like bech32 of this coin but the checksum fails: a typo.
            Ok(bech)
                if profile.bech32_hrp.as_deref() == Some(bech.hrp().to_lowercase().as_str()) =>
            {
                Err(parser.checksum("bad bech32 checksum".to_owned()))
            }
            bech => parser.base58(bech.err()),
        }
    }

    /// The address of a scriptPubKey, if it has one in `profile` (P2PKH, P2SH, and witness
    /// programs when the profile has a bech32 prefix); what Esplora reports as
    /// `scriptpubkey_address`.
    pub fn from_script(profile: &CoinProfile, script: &[u8]) -> Option<Address> {
        Self::new(profile, Payload::from_script(script)?)
    }

    /// Spells `payload` in `profile`'s encoding; `None` for a witness payload on a coin
    /// without segwit addresses.
    fn new(profile: &CoinProfile, payload: Payload) -> Option<Address> {
        let text = match &payload {
            Payload::P2pkh(hash) => base58check(profile.p2pkh_prefix, hash),
            Payload::P2sh(hash) => base58check(profile.p2sh_prefix, hash),
            Payload::Witness(witness) => {
                let hrp = Hrp::parse(profile.bech32_hrp.as_deref()?).ok()?;
                let version = Fe32::try_from(witness.version).ok()?;
                bech32::segwit::encode(hrp, version, &witness.program).ok()?
            }
        };
        Some(Address { payload, text })
    }

    /// What the address pays to.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The scriptPubKey of outputs paying to this address.
    pub fn script_pubkey(&self) -> Vec<u8> {
        self.payload.script_pubkey()
    }

    /// The script hash indexers file this address's outputs under.
    pub fn script_hash(&self) -> ScriptHash {
        ScriptHash::of(&self.script_pubkey())
    }

    /// The canonical spelling: current prefixes, bech32 in lower case.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Version byte and payload with the 4-byte double-SHA-256 checksum, in base58.
fn base58check(version: u8, hash: &[u8; 20]) -> String {
    let mut data = Vec::with_capacity(BASE58_PAYLOAD_LEN + 4);
    data.push(version);
    data.extend_from_slice(hash);
    let checksum = sha256d(&data);
    data.extend_from_slice(&checksum[..4]);
    bs58::encode(data).into_string()
}

/// The state of one parse, to build errors that quote the input.
struct Parser<'a> {
    profile: &'a CoinProfile,
    text: &'a str,
    coins: &'a Coins,
}

impl Parser<'_> {
    fn invalid(&self, reason: String) -> Error {
        Error::InvalidAddress {
            address: self.text.to_owned(),
            reason,
        }
    }

    fn checksum(&self, reason: String) -> Error {
        Error::AddressChecksum {
            address: self.text.to_owned(),
            reason,
        }
    }

    fn unsupported(&self, reason: String) -> Error {
        Error::UnsupportedWitness {
            address: self.text.to_owned(),
            reason,
        }
    }

    fn wrong_network(&self, looks_like: Vec<String>) -> Error {
        Error::WrongNetwork {
            address: self.text.to_owned(),
            expected: self.profile.id(),
            looks_like,
        }
    }

    fn finish(&self, payload: Payload) -> Result<Address, Error> {
        Address::new(self.profile, payload)
            .ok_or_else(|| self.invalid("cannot be spelled in this coin's encoding".to_owned()))
    }

    /// A bech32 string whose checksum is valid; `bech32m` tells which variant.
    fn segwit(&self, bech: UncheckedHrpstring<'_>, bech32m: bool) -> Result<Address, Error> {
        let hrp = bech.hrp().to_lowercase();
        if self.profile.bech32_hrp.as_deref() != Some(hrp.as_str()) {
            return Err(self.wrong_network(self.coins.ids_with_hrp(&hrp)));
        }
        let checked: CheckedHrpstring<'_> = if bech32m {
            bech.remove_checksum::<Bech32m>()
        } else {
            bech.remove_checksum::<Bech32>()
        };
        let Some(&first) = checked.data_part_ascii_no_checksum().first() else {
            return Err(self.invalid("no witness version after the prefix".to_owned()));
        };
        let version = Fe32::from_char(char::from(first))
            .map_err(|e| self.invalid(e.to_string()))?
            .to_u8();
        if version > 16 {
            return Err(
                self.unsupported(format!("witness version {version} (versions go up to 16)"))
            );
        }
        match (version, bech32m) {
            (0, true) => {
                return Err(self.checksum(
                    "witness version 0 needs a bech32 checksum, this is bech32m (BIP 350)"
                        .to_owned(),
                ));
            }
            (1.., false) => {
                return Err(self.checksum(format!(
                    "witness version {version} needs a bech32m checksum, this is bech32 (BIP 350)"
                )));
            }
            _ => {}
        }
        let segwit = checked.validate_segwit().map_err(|e| match e {
            SegwitHrpstringError::WitnessLength(_)
            | SegwitHrpstringError::InvalidWitnessVersion(_) => {
                self.unsupported(crate::error_chain(&e))
            }
            other => self.invalid(crate::error_chain(&other)),
        })?;
        let program: Vec<u8> = segwit.byte_iter().collect();
        // validate_segwit has checked the lengths; this only turns them into the type.
        let witness = WitnessProgram::new(version, &program).ok_or_else(|| {
            self.unsupported(format!(
                "witness version {version} with a {}-byte program",
                program.len()
            ))
        })?;
        self.finish(Payload::Witness(witness))
    }

    /// Anything that is not bech32 with a valid checksum; `bech32_error` is why bech32 parsing
    /// failed, if it did, for the message when base58 fails too.
    fn base58(
        &self,
        bech32_error: Option<bech32::primitives::decode::UncheckedHrpstringError>,
    ) -> Result<Address, Error> {
        let data = match bs58::decode(self.text).into_vec() {
            Ok(data) => data,
            Err(base58_error) => {
                return Err(match bech32_error {
                    // Valid bech32 characters but no valid checksum: most likely mistyped.
                    None => self.checksum("bad bech32 checksum".to_owned()),
                    Some(bech32_error) => self.invalid(format!(
                        "neither base58 ({base58_error}) nor bech32 ({})",
                        crate::error_chain(&bech32_error)
                    )),
                });
            }
        };
        let Some(split) = data.len().checked_sub(4).filter(|&n| n > 0) else {
            return Err(self.invalid(format!(
                "base58 text of {} bytes, too short for a checksummed address",
                data.len()
            )));
        };
        let (payload, checksum) = data.split_at(split);
        if sha256d(payload)[..4] != *checksum {
            return Err(self.checksum("bad base58check checksum".to_owned()));
        }
        let (&version, hash) = payload
            .split_first()
            .filter(|_| payload.len() == BASE58_PAYLOAD_LEN)
            .ok_or_else(|| {
                self.invalid(format!(
                    "base58check payload of {} bytes; an address has a version byte and a \
                     20-byte hash",
                    payload.len()
                ))
            })?;
        let hash: [u8; 20] = hash
            .try_into()
            .map_err(|_| self.invalid("hash is not 20 bytes".to_owned()))?;
        if version == self.profile.p2pkh_prefix {
            self.finish(Payload::P2pkh(hash))
        } else if self.profile.is_p2sh_prefix(version) {
            self.finish(Payload::P2sh(hash))
        } else {
            Err(self.wrong_network(self.coins.ids_with_base58_prefix(version)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witness(version: u8, program: &[u8]) -> Payload {
        Payload::Witness(WitnessProgram::new(version, program).unwrap())
    }

    #[test]
    fn witness_programs_follow_bip_141() {
        assert!(WitnessProgram::new(0, &[0; 20]).is_some());
        assert!(WitnessProgram::new(0, &[0; 32]).is_some());
        assert!(WitnessProgram::new(0, &[0; 21]).is_none());
        assert!(WitnessProgram::new(1, &[0; 2]).is_some());
        assert!(WitnessProgram::new(1, &[0; 1]).is_none());
        assert!(WitnessProgram::new(16, &[0; 40]).is_some());
        assert!(WitnessProgram::new(16, &[0; 41]).is_none());
        assert!(WitnessProgram::new(17, &[0; 32]).is_none());
        let program = WitnessProgram::new(1, &[7; 32]).unwrap();
        assert_eq!((program.version(), program.program()), (1, &[7u8; 32][..]));
    }

    fn profile(id: &str) -> CoinProfile {
        Coins::builtin().by_id(id).unwrap().clone()
    }

    #[test]
    fn round_trips_every_payload_on_every_builtin_profile() {
        let payloads = [
            Payload::P2pkh([0x11; 20]),
            Payload::P2sh([0x22; 20]),
            witness(0, &[0x33; 20]),
            witness(0, &[0x44; 32]),
            witness(1, &[0x55; 32]),
            witness(16, &[0x66; 2]),
            witness(2, &[0x77; 40]),
        ];
        for profile in &Coins::builtin() {
            for payload in &payloads {
                let script = payload.script_pubkey();
                assert_eq!(Payload::from_script(&script).as_ref(), Some(payload));
                let Some(address) = Address::from_script(profile, &script) else {
                    assert!(
                        profile.bech32_hrp.is_none() && matches!(payload, Payload::Witness(_)),
                        "{}: no address for {payload:?}",
                        profile.id()
                    );
                    continue;
                };
                let parsed = Address::parse(profile, address.as_str()).unwrap();
                assert_eq!(parsed, address, "{}", profile.id());
                assert_eq!(parsed.script_pubkey(), script);
                assert_eq!(parsed.script_hash(), ScriptHash::of(&script));
                if matches!(payload, Payload::Witness(_)) {
                    let upper = address.as_str().to_uppercase();
                    assert_eq!(Address::parse(profile, &upper).unwrap(), address);
                }
            }
        }
    }

    #[test]
    fn scripts_without_address() {
        let btc = profile("btc");
        for script in [
            "",
            "6a0568656c6c6f",
            "2102aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac",
            "0010aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // v0 with a 16-byte program
            "5101aa",                               // 1-byte program
            "0014aabb",                             // truncated push
        ] {
            let script = hex::decode(script).unwrap();
            assert_eq!(Address::from_script(&btc, &script), None);
        }
        let efl = profile("efl");
        let p2wpkh = hex::decode("0014751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
        assert_eq!(Address::from_script(&efl, &p2wpkh), None);
    }

    #[test]
    fn litecoin_legacy_p2sh_is_accepted_and_respelled() {
        // Litecoin Core's key_io.cpp decodes SCRIPT_ADDRESS (5, "3…") as well as
        // SCRIPT_ADDRESS2 (50, "M…"), but encodes only the latter.
        let ltc = profile("ltc");
        let hash = [0x42; 20];
        let legacy = base58check(5, &hash);
        assert!(legacy.starts_with('3'));
        let address = Address::parse(&ltc, &legacy).unwrap();
        assert_eq!(address.payload(), &Payload::P2sh(hash));
        assert_eq!(address.as_str(), base58check(50, &hash));
        assert!(address.as_str().starts_with('M'));
    }

    #[test]
    fn wrong_network_names_the_coin() {
        let ltc_regtest = profile("ltc-regtest");
        let main_p2pkh = base58check(48, &[1; 20]);
        match Address::parse(&ltc_regtest, &main_p2pkh).unwrap_err() {
            Error::WrongNetwork {
                expected,
                looks_like,
                ..
            } => {
                assert_eq!(expected, "ltc-regtest");
                assert_eq!(looks_like, ["efl", "ltc"]);
            }
            other => panic!("{other}"),
        }
        let btc_bech32 = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
        let err = Address::parse(&profile("ltc"), btc_bech32).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("address \"{btc_bech32}\" does not belong to ltc (it belongs to btc)")
        );
        let unknown = base58check(23, &[1; 20]);
        let err = Address::parse(&profile("btc"), &unknown).unwrap_err();
        assert!(
            err.to_string().ends_with("(no known coin uses its prefix)"),
            "{err}"
        );
    }

    #[test]
    fn a_registry_extends_the_hints() {
        let mut coins = Coins::builtin();
        let mut doge = profile("btc");
        doge.ticker = "DOGE".to_owned();
        doge.name = "Dogecoin".to_owned();
        doge.p2pkh_prefix = 30;
        doge.p2sh_prefix = 22;
        doge.bech32_hrp = None;
        coins
            .add_from_json(&serde_json::to_string(&[doge]).unwrap())
            .unwrap();
        let text = base58check(30, &[9; 20]);
        let err = Address::parse_with_registry(&profile("ltc"), &text, &coins).unwrap_err();
        assert!(
            matches!(err, Error::WrongNetwork { ref looks_like, .. } if looks_like == &["doge"])
        );
    }

    #[test]
    fn checksum_and_encoding_errors_are_distinct() {
        let btc = profile("btc");
        let good = base58check(0, &[7; 20]);
        let mut typo = good.clone().into_bytes();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == b'2' { b'3' } else { b'2' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(matches!(
            Address::parse(&btc, &typo),
            Err(Error::AddressChecksum { .. })
        ));
        assert!(matches!(
            Address::parse(&btc, "1I0O"),
            Err(Error::InvalidAddress { .. })
        ));
        assert!(matches!(
            Address::parse(&btc, ""),
            Err(Error::InvalidAddress { .. })
        ));
        let long = "1".repeat(91);
        assert!(matches!(
            Address::parse(&btc, &long),
            Err(Error::InvalidAddress { .. })
        ));
        // A base58check string of the right checksum but a 32-byte payload (not an address).
        let mut data = vec![0u8; 33];
        let checksum = sha256d(&data);
        data.extend_from_slice(&checksum[..4]);
        let wrong_len = bs58::encode(data).into_string();
        let err = Address::parse(&btc, &wrong_len).unwrap_err();
        assert!(err.to_string().contains("payload of 33 bytes"), "{err}");
        // Too short to hold a checksum.
        assert!(matches!(
            Address::parse(&btc, "1"),
            Err(Error::InvalidAddress { .. })
        ));
    }

    #[test]
    fn profile_without_segwit_rejects_bech32() {
        let efl = profile("efl");
        let err = Address::parse(&efl, "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9").unwrap_err();
        assert!(
            matches!(err, Error::WrongNetwork { ref looks_like, .. } if looks_like == &["ltc"])
        );
    }

    #[test]
    fn address_serializes_as_its_text() {
        let address = Address::parse(
            &profile("btc"),
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&address).unwrap(),
            "\"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4\""
        );
        assert_eq!(address.to_string(), address.as_str());
    }
}
