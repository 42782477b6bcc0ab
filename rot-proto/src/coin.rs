//! Coin profiles as data. Everything ROT needs to know about one network of one coin (address
//! prefixes, genesis block, node ports, block format) is a [`CoinProfile`] read from JSON, so a
//! coin team adds its coin with a data file instead of a code change. [`Coins`] is the registry
//! of profiles: the built-in ones under `rot-proto/coins/` plus any an operator loads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::network::Network;
use crate::rules::ChainRules;
use crate::{Error, Hash256};

/// The built-in profile files, one per coin, each an array of that coin's networks.
const BUILTIN_FILES: [(&str, &str); 3] = [
    ("coins/bitcoin.json", include_str!("../coins/bitcoin.json")),
    (
        "coins/litecoin.json",
        include_str!("../coins/litecoin.json"),
    ),
    ("coins/egulden.json", include_str!("../coins/egulden.json")),
];

/// Coin profile files larger than this are refused before parsing: a real one is a few KiB.
const MAX_PROFILE_FILE_BYTES: u64 = 1024 * 1024;

/// Longest bech32 prefix accepted, so that every witness program (up to 40 bytes) still fits
/// BIP 173's 90-character limit: 90 − 1 separator − 1 version − 64 data − 6 checksum = 18.
const MAX_HRP_LEN: usize = 18;

/// One network of one coin: the parameters a server, proxy or wallet needs to talk to its node,
/// parse its chain and read its addresses. Field meanings and the JSON format are documented
/// in `docs/coins.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoinProfile {
    /// Human name of the coin, e.g. "Litecoin".
    pub name: String,
    /// Upper-case ticker, e.g. "LTC"; with the network it forms the profile's [`id`](Self::id).
    pub ticker: String,
    /// Which of the coin's chains this profile describes.
    pub network: Network,
    /// Hash of block 0, as `getblockhash 0` prints it; tells whether a node is on this chain.
    pub genesis_hash: Hash256,
    /// Base58check version byte of pay-to-public-key-hash addresses.
    pub p2pkh_prefix: u8,
    /// Base58check version byte of pay-to-script-hash addresses; used when encoding.
    pub p2sh_prefix: u8,
    /// Older P2SH version bytes the coin's node still decodes (Litecoin's `SCRIPT_ADDRESS`, the
    /// Bitcoin-style "3…" addresses); accepted when parsing, never produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p2sh_legacy_prefixes: Vec<u8>,
    /// Lower-case human-readable part of segwit addresses; `None` for coins without segwit
    /// addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bech32_hrp: Option<String>,
    /// The four bytes that start every P2P message (`pchMessageStart`), hex in the JSON.
    #[serde(with = "message_start_hex")]
    pub message_start: [u8; 4],
    /// The node's default P2P port.
    pub default_p2p_port: u16,
    /// The node's default JSON-RPC port.
    pub default_rpc_port: u16,
    /// Sub-directory of the node's data directory used for this network (where its `.cookie`
    /// lives), e.g. "testnet4"; absent when the network uses the data directory itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadir_subdir: Option<String>,
    /// Block and transaction format of the chain.
    pub rules: ChainRules,
    /// Where the values were taken from (repository, file, commit), so they can be re-checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl CoinProfile {
    /// The profile's unique name: the lower-case ticker, with `-{network}` appended unless the
    /// network is main (`ltc`, `ltc-test`, `btc-regtest`).
    pub fn id(&self) -> String {
        let ticker = self.ticker.to_ascii_lowercase();
        match self.network {
            Network::Main => ticker,
            network => format!("{ticker}-{network}"),
        }
    }

    /// Whether `version` is a base58 version byte of a P2SH address of this profile, current
    /// or legacy.
    pub fn is_p2sh_prefix(&self, version: u8) -> bool {
        version == self.p2sh_prefix || self.p2sh_legacy_prefixes.contains(&version)
    }

    /// Every base58 version byte this profile accepts.
    fn base58_prefixes(&self) -> impl Iterator<Item = u8> + '_ {
        [self.p2pkh_prefix, self.p2sh_prefix]
            .into_iter()
            .chain(self.p2sh_legacy_prefixes.iter().copied())
    }

    /// Checks the values against each other; the error names the field at fault.
    fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(format!(
                "name {name:?} must be 1 to 64 printable characters"
            ));
        }
        let ticker = &self.ticker;
        let ticker_ok = (2..=10).contains(&ticker.len())
            && ticker
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ticker_ok {
            return Err(format!(
                "ticker {ticker:?} must be 2 to 10 upper-case letters or digits"
            ));
        }
        let prefixes: Vec<u8> = self.base58_prefixes().collect();
        for (i, prefix) in prefixes.iter().enumerate() {
            if prefixes[..i].contains(prefix) {
                return Err(format!(
                    "base58 prefix {prefix} is used twice among p2pkh_prefix, p2sh_prefix and \
                     p2sh_legacy_prefixes"
                ));
            }
        }
        if let Some(hrp) = &self.bech32_hrp {
            validate_hrp(hrp)?;
        }
        if self.genesis_hash == Hash256::default() {
            return Err("genesis_hash must not be all zeros".to_owned());
        }
        if self.default_p2p_port == 0 || self.default_rpc_port == 0 {
            return Err("default_p2p_port and default_rpc_port must not be 0".to_owned());
        }
        if self.default_p2p_port == self.default_rpc_port {
            return Err("default_p2p_port and default_rpc_port must differ".to_owned());
        }
        if let Some(dir) = &self.datadir_subdir {
            let dir_ok = !dir.is_empty()
                && dir
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !dir_ok {
                return Err(format!(
                    "datadir_subdir {dir:?} must be a plain directory name (letters, digits, - or _)"
                ));
            }
        }
        Ok(())
    }
}

/// A bech32 prefix must be what BIP 173 allows, lower case, and short enough for every address.
fn validate_hrp(hrp: &str) -> Result<(), String> {
    let parsed = bech32::Hrp::parse(hrp)
        .map_err(|e| format!("bech32_hrp {hrp:?} is not a valid bech32 prefix: {e}"))?;
    if parsed.to_lowercase() != hrp {
        return Err(format!("bech32_hrp {hrp:?} must be lower case"));
    }
    if hrp.len() > MAX_HRP_LEN {
        return Err(format!(
            "bech32_hrp {hrp:?} is longer than {MAX_HRP_LEN} characters, too long for 40-byte \
             witness programs"
        ));
    }
    Ok(())
}

/// Serde for the message start: 8 hex digits in JSON, 4 bytes in memory.
mod message_start_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 4], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 4], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 4];
        hex::decode_to_slice(&text, &mut bytes).map_err(|_| {
            serde::de::Error::custom(format!(
                "message_start {text:?} must be 8 hex digits (4 bytes)"
            ))
        })?;
        Ok(bytes)
    }
}

/// A registry of coin profiles keyed by [`CoinProfile::id`].
#[derive(Debug, Clone, Default)]
pub struct Coins {
    profiles: BTreeMap<String, CoinProfile>,
}

impl Coins {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The profiles shipped with rot-proto (Bitcoin and Litecoin on every network, e-Gulden
    /// main), ready to be extended with [`load_file`](Self::load_file).
    pub fn builtin() -> Coins {
        Self::builtin_ref().clone()
    }

    /// The shared built-in registry, parsed once.
    pub(crate) fn builtin_ref() -> &'static Coins {
        static BUILTIN: OnceLock<Coins> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut coins = Coins::new();
            for (origin, text) in BUILTIN_FILES {
                coins
                    .add_json(origin, text)
                    .expect("built-in coin profiles are validated by tests");
            }
            coins
        })
    }

    /// Adds the profiles of a JSON array (the format of a coin file). Either every profile is
    /// added or, on the first invalid or duplicate one, none. Returns the ids added.
    pub fn add_from_json(&mut self, text: &str) -> Result<Vec<String>, Error> {
        self.add_json("JSON text", text)
    }

    /// Reads a coin file (a JSON array of profiles) and adds its profiles as
    /// [`add_from_json`](Self::add_from_json) does. Returns the ids added.
    pub fn load_file(&mut self, path: impl AsRef<Path>) -> Result<Vec<String>, Error> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let io_error = |e: std::io::Error| Error::CoinFile {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(io_error)?;
        let mut text = String::new();
        file.take(MAX_PROFILE_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io_error)?;
        if text.len() as u64 > MAX_PROFILE_FILE_BYTES {
            return Err(Error::CoinFile {
                path: shown,
                reason: format!("larger than {MAX_PROFILE_FILE_BYTES} bytes"),
            });
        }
        self.add_json(&shown, &text)
    }

    fn add_json(&mut self, origin: &str, text: &str) -> Result<Vec<String>, Error> {
        let invalid = |reason: String| Error::InvalidCoinProfile {
            origin: origin.to_owned(),
            reason,
        };
        let profiles: Vec<CoinProfile> = serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "{e} (a coin file is a JSON array of profiles, see docs/coins.md)"
            ))
        })?;
        let mut ids = Vec::with_capacity(profiles.len());
        for profile in &profiles {
            let id = profile.id();
            profile
                .validate()
                .map_err(|reason| invalid(format!("{id}: {reason}")))?;
            if self.profiles.contains_key(&id) || ids.contains(&id) {
                return Err(Error::DuplicateCoin {
                    id,
                    origin: origin.to_owned(),
                });
            }
            ids.push(id);
        }
        self.profiles.extend(ids.iter().cloned().zip(profiles));
        Ok(ids)
    }

    /// The profile of `ticker` (any case) on `network`.
    pub fn get(&self, ticker: &str, network: Network) -> Option<&CoinProfile> {
        let ticker = ticker.to_ascii_lowercase();
        let id = match network {
            Network::Main => ticker,
            network => format!("{ticker}-{network}"),
        };
        self.profiles.get(&id)
    }

    /// The profile with this id (`ltc`, `btc-regtest`; any case).
    pub fn by_id(&self, id: &str) -> Option<&CoinProfile> {
        self.profiles.get(&id.to_ascii_lowercase())
    }

    /// Like [`by_id`](Self::by_id), but an unknown id is an error listing the known ones, for
    /// configuration checks.
    pub fn require(&self, id: &str) -> Result<&CoinProfile, Error> {
        self.by_id(id).ok_or_else(|| Error::UnknownCoin {
            id: id.to_owned(),
            known: self.ids().collect::<Vec<_>>().join(", "),
        })
    }

    /// Every profile, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &CoinProfile> {
        self.profiles.values()
    }

    /// Every id, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// Number of profiles.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether the registry has no profiles.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// Ids of the profiles that accept base58 version byte `version`, to tell a user whose
    /// address they pasted.
    pub(crate) fn ids_with_base58_prefix(&self, version: u8) -> Vec<String> {
        self.profiles
            .iter()
            .filter(|(_, p)| p.base58_prefixes().any(|prefix| prefix == version))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Ids of the profiles whose segwit addresses start with `hrp` (lower case).
    pub(crate) fn ids_with_hrp(&self, hrp: &str) -> Vec<String> {
        self.profiles
            .iter()
            .filter(|(_, p)| p.bech32_hrp.as_deref() == Some(hrp))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl<'a> IntoIterator for &'a Coins {
    type Item = &'a CoinProfile;
    type IntoIter = std::collections::btree_map::Values<'a, String, CoinProfile>;

    fn into_iter(self) -> Self::IntoIter {
        self.profiles.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::PowAlgorithm;

    fn ltc_main_json() -> serde_json::Value {
        serde_json::json!({
            "name": "Testcoin",
            "ticker": "TST",
            "network": "main",
            "genesis_hash": "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
            "p2pkh_prefix": 65,
            "p2sh_prefix": 66,
            "bech32_hrp": "tst",
            "message_start": "01020304",
            "default_p2p_port": 1234,
            "default_rpc_port": 1235,
            "rules": { "pow": "scrypt" }
        })
    }

    fn add_one(profile: serde_json::Value) -> Result<Vec<String>, Error> {
        Coins::new().add_from_json(&serde_json::Value::Array(vec![profile]).to_string())
    }

    #[test]
    fn every_builtin_file_loads_and_validates() {
        let mut coins = Coins::new();
        for (origin, text) in BUILTIN_FILES {
            let ids = coins.add_json(origin, text).unwrap();
            assert!(!ids.is_empty(), "{origin} has no profiles");
        }
        let ids: Vec<&str> = coins.ids().collect();
        assert_eq!(
            ids,
            [
                "btc",
                "btc-regtest",
                "btc-test",
                "efl",
                "ltc",
                "ltc-regtest",
                "ltc-test"
            ]
        );
        for profile in &coins {
            assert!(profile.source.is_some(), "{} has no source", profile.id());
        }
        assert_eq!(Coins::builtin().len(), coins.len());
    }

    #[test]
    fn builtin_values_read_back() {
        let coins = Coins::builtin();
        let ltc = coins.get("ltc", Network::Main).unwrap();
        assert_eq!(ltc.p2sh_prefix, 50);
        assert_eq!(ltc.p2sh_legacy_prefixes, [5]);
        assert_eq!(ltc.message_start, [0xfb, 0xc0, 0xb6, 0xdb]);
        assert_eq!(ltc.rules.pow, PowAlgorithm::Scrypt);
        assert!(ltc.rules.mweb);
        let btc_test = coins.by_id("BTC-test").unwrap();
        assert_eq!(btc_test.bech32_hrp.as_deref(), Some("tb"));
        assert_eq!(btc_test.datadir_subdir.as_deref(), Some("testnet3"));
        assert!(coins.get("LTC", Network::Regtest).is_some());
    }

    #[test]
    fn ids_follow_ticker_and_network() {
        let coins = Coins::builtin();
        for profile in &coins {
            let id = profile.id();
            assert_eq!(coins.by_id(&id), Some(profile));
            assert_eq!(coins.get(&profile.ticker, profile.network), Some(profile));
            let expected_suffix = match profile.network {
                Network::Main => String::new(),
                network => format!("-{network}"),
            };
            assert_eq!(
                id,
                format!("{}{expected_suffix}", profile.ticker.to_lowercase())
            );
        }
    }

    #[test]
    fn profile_json_round_trips() {
        for profile in &Coins::builtin() {
            let json = serde_json::to_string(profile).unwrap();
            let back: CoinProfile = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, profile);
        }
    }

    #[test]
    fn operator_adds_a_coin_from_a_file() {
        let dir = std::env::temp_dir().join(format!("rot-coins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("testcoin.json");
        std::fs::write(&path, format!("[{}]", ltc_main_json())).unwrap();
        let mut coins = Coins::builtin();
        let ids = coins.load_file(&path).unwrap();
        assert_eq!(ids, ["tst"]);
        assert_eq!(coins.by_id("tst").unwrap().name, "Testcoin");
        let err = coins.load_file(&path).unwrap_err();
        assert!(
            matches!(err, Error::DuplicateCoin { ref id, .. } if id == "tst"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = Coins::new()
            .load_file("/nonexistent/rot/coin.json")
            .unwrap_err();
        assert!(matches!(err, Error::CoinFile { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/rot/coin.json"));
    }

    #[test]
    fn a_file_is_added_whole_or_not_at_all() {
        let good = ltc_main_json();
        let mut bad = ltc_main_json();
        bad["ticker"] = "BAD".into();
        bad["p2sh_prefix"] = 65.into();
        let mut coins = Coins::new();
        let err = coins
            .add_from_json(&serde_json::json!([good, bad]).to_string())
            .unwrap_err();
        assert!(err.to_string().contains("bad: base58 prefix 65"), "{err}");
        assert!(coins.is_empty());
    }

    #[test]
    fn rejects_inconsistent_profiles() {
        let cases: [(&str, serde_json::Value, &str); 9] = [
            ("ticker", "ltc".into(), "upper-case"),
            ("ticker", "L".into(), "2 to 10"),
            ("p2sh_prefix", 65.into(), "prefix 65 is used twice"),
            ("bech32_hrp", "TST".into(), "lower case"),
            ("bech32_hrp", "a".repeat(19).into(), "longer than 18"),
            ("message_start", "0102".into(), "8 hex digits"),
            ("default_rpc_port", 1234.into(), "must differ"),
            ("datadir_subdir", "../x".into(), "plain directory name"),
            (
                "genesis_hash",
                "0".repeat(64).into(),
                "must not be all zeros",
            ),
        ];
        for (field, value, expected) in cases {
            let mut profile = ltc_main_json();
            profile[field] = value;
            let err = add_one(profile).unwrap_err();
            assert!(matches!(err, Error::InvalidCoinProfile { .. }), "{err}");
            assert!(err.to_string().contains(expected), "{field}: {err}");
        }
    }

    #[test]
    fn rejects_unknown_fields_and_wrong_shapes() {
        let mut profile = ltc_main_json();
        profile["rpc_port"] = 1.into();
        let err = add_one(profile).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `rpc_port`"),
            "{err}"
        );

        let err = Coins::new()
            .add_from_json(&ltc_main_json().to_string())
            .unwrap_err();
        assert!(err.to_string().contains("JSON array"), "{err}");
    }

    #[test]
    fn duplicate_ids_within_one_file_are_refused() {
        let text = serde_json::json!([ltc_main_json(), ltc_main_json()]).to_string();
        let err = Coins::new().add_from_json(&text).unwrap_err();
        assert!(matches!(err, Error::DuplicateCoin { .. }), "{err}");
    }

    #[test]
    fn require_lists_known_ids() {
        let err = Coins::builtin().require("doge").unwrap_err();
        assert!(err.to_string().contains("btc, btc-regtest"), "{err}");
    }
}
