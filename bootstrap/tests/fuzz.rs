//! Bad input for the bootstrap list: list files from a mirror or a cache, mutated from a real
//! chain of signed lists (with a rotation link) byte by byte and field by field, and pinned
//! maintainer sets. Parsing and verification must answer `Ok` or `Err`, never panic; and no
//! mutation may get a body the maintainers did not sign accepted by a client.
//!
//! Case count: `PROPTEST_CASES` (default half of [`DEFAULT_CASES`]: every case verifies
//! several signatures); `bench/fuzz.sh` runs long.

mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use rot_bootstrap::proxy::{validate_coin_id, validate_url};
use rot_bootstrap::{ListFile, MaintainerSet, PUBLISHED_LIST, TrustStore};
use rot_harness::fuzz::{DEFAULT_CASES, config, mutated_bytes, mutated_json, mutated_text};
use serde_json::Value;

/// L1 by 2 of {1,2,3}; L2 rotates to 2 of {3,4,5} and is carried as a link by L3, which
/// rotates to 2 of {6,7}.
fn chain() -> &'static [ListFile; 3] {
    static CHAIN: OnceLock<[ListFile; 3]> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let rotate = |list: &ListFile, to: MaintainerSet, now: u64, signers: &[u8]| {
            let mut next = list
                .edit(now, |body| {
                    body.set_maintainers(to);
                    Ok(())
                })
                .unwrap()
                .file;
            for &seed in signers {
                next.sign(&maintainer(seed)).unwrap();
            }
            next
        };
        let l1 = signed(&body(1, set(2, &[1, 2, 3])), &[1, 2]);
        let l2 = rotate(&l1, set(2, &[3, 4, 5]), NOW - 10, &[1, 3, 4]);
        let l3 = rotate(&l2, set(2, &[6, 7]), NOW - 5, &[4, 5, 6, 7]);
        assert_eq!(l3.rotations().len(), 1);
        [l1, l2, l3]
    })
}

fn seed_values() -> Vec<Value> {
    let mut seeds: Vec<Value> = chain()
        .iter()
        .map(|list| serde_json::to_value(list).unwrap())
        .collect();
    seeds.push(serde_json::from_str(PUBLISHED_LIST).unwrap());
    seeds
}

/// Every check a client or the maintainers' tool runs on a list from outside. A list the
/// client (pinned to L1's maintainers) accepts must carry a body the maintainers signed.
fn check_list(list: &ListFile) {
    let _ = (list.tag(), list.version(), list.serial_hint());
    let _ = list.signing_status();
    if let Ok(body) = list.decode_body() {
        let _ = list.signature_checks(&body);
        let _ = list.renew(NOW, Some(DAY));
    }
    let _ = list.verify();
    let _ = list.to_json();
    let mut client = TrustStore::new(set(2, &[1, 2, 3]));
    if let Ok(accepted) = client.check(list, NOW) {
        let signed_bodies: Vec<&Value> = chain().iter().map(ListFile::body_value).collect();
        assert!(
            signed_bodies.contains(&accepted.file().body_value()),
            "accepted a body nobody signed: {}",
            accepted.file().body_value()
        );
        client.accept(list, NOW).unwrap();
        let _ = client.proxies_for("ltc-regtest", NOW);
        let _ = client.next_refresh(NOW, &mut || 7);
    }
}

proptest! {
    #![proptest_config(config(DEFAULT_CASES / 2))]

    /// List files as bytes from a mirror: real lists with bytes edited, or random bytes.
    #[test]
    fn list_bytes_parse_or_fail_cleanly(bytes in prop_oneof![
        4 => mutated_bytes(seed_values().iter().map(|v| v.to_string().into_bytes()).collect()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]) {
        if let Ok(list) = ListFile::from_slice(&bytes) {
            check_list(&list);
        }
    }

    /// List files with fields replaced, removed or added anywhere (signatures, links, body).
    #[test]
    fn list_fields_edited_verify_or_fail_cleanly(value in mutated_json(seed_values())) {
        if let Ok(list) = ListFile::from_slice(value.to_string().as_bytes()) {
            check_list(&list);
        }
    }

    /// A cache file on disk is re-verified like a list from a mirror.
    #[test]
    fn cache_files_load_or_fail_cleanly(
        bytes in mutated_bytes(seed_values().iter().map(|v| v.to_string().into_bytes()).collect())
    ) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let mut client = TrustStore::new(set(2, &[1, 2, 3]));
        if client.load_cache(file.path()).is_ok() {
            let body = client.cached().unwrap().file().body_value();
            assert!(chain().iter().any(|list| list.body_value() == body));
        }
    }

    /// Pinned maintainer sets as shipped with clients.
    #[test]
    fn pinned_sets_parse_or_fail_cleanly(text in prop_oneof![
        mutated_text(vec![serde_json::to_string(&set(2, &[1, 2, 3])).unwrap()]),
        any::<String>(),
    ]) {
        if let Ok(pinned) = MaintainerSet::from_json(&text) {
            assert!(pinned.threshold >= 1 && pinned.threshold <= pinned.keys.len() as u64);
            let _ = TrustStore::new(pinned).check(&chain()[2], NOW);
        }
    }

    /// Proxy URLs and coin ids inside a list body.
    #[test]
    fn list_fields_validate_or_fail_cleanly(text in prop_oneof![
        mutated_text(vec!["https://proxy.example.org:8443".into(), "ltc-regtest".into()]),
        any::<String>(),
    ]) {
        let _ = validate_url(&text);
        let _ = validate_coin_id(&text);
    }
}

/// The seeds are what they claim: a client pinned to the first set follows the chain.
#[test]
fn seeds_are_valid() {
    let mut client = TrustStore::new(set(2, &[1, 2, 3]));
    client.accept(&chain()[2], NOW).unwrap();
    assert_eq!(client.cached().unwrap().serial(), 3);
}
