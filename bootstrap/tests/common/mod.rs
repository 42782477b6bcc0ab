//! Shared fixtures of the integration tests: deterministic maintainers, proxies and lists.
#![allow(dead_code)] // each test file uses a different part

use rot_bootstrap::{ListBody, ListFile, MaintainerSet, ProxyEntry};
use rot_proto::Identity;
use serde_json::Value;

/// The clock of the tests.
pub const NOW: u64 = 1_800_000_000;
pub const DAY: u64 = 86_400;

pub fn maintainer(seed: u8) -> Identity {
    Identity::from_seed([seed; 32])
}

pub fn set(threshold: u64, seeds: &[u8]) -> MaintainerSet {
    let keys = seeds
        .iter()
        .map(|&seed| maintainer(seed).public_key())
        .collect();
    MaintainerSet::new(threshold, keys).unwrap()
}

pub fn proxy(url: &str, seed: u8) -> ProxyEntry {
    ProxyEntry {
        url: url.to_owned(),
        key: Identity::from_seed([seed; 32]).public_key(),
        team: "Regtest Team".to_owned(),
        contact: "ops@example.org".to_owned(),
    }
}

/// A list body issued a day ago, valid for 30 days, naming one ltc-regtest proxy.
pub fn body(serial: u64, maintainers: MaintainerSet) -> ListBody {
    let mut body = ListBody::new(maintainers, NOW - DAY, 30 * DAY);
    body.serial = serial;
    body.proxies.insert(
        "ltc-regtest".to_owned(),
        vec![proxy("http://127.0.0.1:18080", 100)],
    );
    body
}

/// `body` signed by the maintainers with the given seeds.
pub fn signed(body: &ListBody, signers: &[u8]) -> ListFile {
    let mut file = ListFile::unsigned(body).unwrap();
    for &seed in signers {
        file.sign(&maintainer(seed)).unwrap();
    }
    file
}

/// `file` changed through its JSON form, as a forger or a broken mirror would.
pub fn tampered(file: &ListFile, change: impl FnOnce(&mut Value)) -> ListFile {
    let mut value = serde_json::to_value(file).unwrap();
    change(&mut value);
    serde_json::from_value(value).unwrap()
}
