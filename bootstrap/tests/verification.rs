//! A client accepts a valid list and refuses each kind of bad list with its own error.

mod common;

use std::mem::discriminant;

use common::*;
use rot_bootstrap::{Accepted, BootstrapError, ListFile, SetRole, TrustStore};
use serde_json::json;

fn store() -> TrustStore {
    TrustStore::new(set(2, &[1, 2, 3]))
}

fn good(serial: u64) -> ListFile {
    signed(&body(serial, set(2, &[1, 2, 3])), &[1, 2])
}

#[test]
fn valid_list_is_accepted_and_names_its_proxies() {
    let mut store = store();
    assert!(matches!(store.current(NOW), Err(BootstrapError::NoList)));
    let accepted = store.accept(&good(1), NOW).unwrap();
    assert_eq!(
        accepted,
        Accepted::Updated {
            serial: 1,
            replaced: None
        }
    );
    let proxies = store.proxies_for("ltc-regtest", NOW).unwrap();
    assert_eq!(proxies, [proxy("http://127.0.0.1:18080", 100)]);
    assert!(store.proxies_for("ltc", NOW).unwrap().is_empty());
    assert_eq!(
        store.current(NOW).unwrap().mirror_urls(),
        ["http://127.0.0.1:18080/v1/bootstrap"]
    );
    // The same list again changes nothing; a newer one replaces it.
    assert_eq!(
        store.accept(&good(1), NOW).unwrap(),
        Accepted::Unchanged { serial: 1 }
    );
    assert_eq!(
        store.accept(&good(2), NOW).unwrap(),
        Accepted::Updated {
            serial: 2,
            replaced: Some(1)
        }
    );
}

#[test]
fn list_signed_by_all_maintainers_or_in_any_order_is_accepted() {
    let all = signed(&body(1, set(2, &[1, 2, 3])), &[3, 1, 2]);
    store().accept(&all, NOW).unwrap();
    // Pinned keys in another order are the same set.
    let reordered = TrustStore::new(rot_bootstrap::MaintainerSet {
        threshold: 2,
        keys: set(2, &[1, 2, 3]).keys.into_iter().rev().collect(),
    });
    reordered.check(&all, NOW).unwrap();
}

/// One refused list per case of the issue, with the store's state before it.
fn refusals() -> Vec<(&'static str, TrustStore, ListFile)> {
    // Flip one byte of the published text: the proxy's port 18080 becomes 18081.
    let text = good(1).to_json();
    let at = text.find("18080").unwrap() + 4;
    let mut bytes = text.into_bytes();
    bytes[at] = b'1';
    let tampered_byte = ListFile::from_slice(&bytes).unwrap();

    let unsigned = ListFile::unsigned(&body(1, set(2, &[1, 2, 3]))).unwrap();
    let below_threshold = signed(&body(1, set(2, &[1, 2, 3])), &[1]);

    let stranger = maintainer(9);
    let mut by_stranger = good(1);
    let message = rot_bootstrap::signature::list_signing_bytes(
        &stranger.public_key(),
        by_stranger.body_value(),
    )
    .unwrap();
    let extra = json!({"key": stranger.public_key(), "signature": stranger.sign(&message)});
    by_stranger = tampered(&by_stranger, |value| {
        value["signatures"].as_array_mut().unwrap().push(extra)
    });

    let mut expired_body = body(1, set(2, &[1, 2, 3]));
    expired_body.expires_at = NOW;
    let expired = signed(&expired_body, &[1, 2]);

    let mut holding_two = store();
    holding_two.accept(&good(2), NOW).unwrap();

    vec![
        ("tampered", store(), tampered_byte),
        ("unsigned", store(), unsigned),
        ("below threshold", store(), below_threshold),
        ("unknown key", store(), by_stranger),
        ("expired", store(), expired),
        ("rollback", holding_two, good(1)),
    ]
}

#[test]
fn each_bad_list_is_refused_with_its_own_error() {
    let mut seen = Vec::new();
    for (case, store, list) in refusals() {
        let error = store.check(&list, NOW).unwrap_err();
        let message = error.to_string();
        let expected = match case {
            "tampered" => matches!(error, BootstrapError::Tampered { .. }),
            "unsigned" => matches!(error, BootstrapError::Unsigned { serial: 1 }),
            "below threshold" => matches!(
                error,
                BootstrapError::BelowThreshold {
                    set: SetRole::Maintainers,
                    valid: 1,
                    threshold: 2,
                    ..
                }
            ),
            "unknown key" => {
                matches!(error, BootstrapError::UnknownSigner { key } if key == maintainer(9).public_key())
            }
            "expired" => matches!(
                error,
                BootstrapError::Expired {
                    expires_at: NOW,
                    now: NOW,
                    ..
                }
            ),
            "rollback" => matches!(
                error,
                BootstrapError::Rollback {
                    offered: 1,
                    cached: 2
                }
            ),
            _ => unreachable!(),
        };
        assert!(expected, "{case}: {error:?}");
        assert!(
            !seen
                .iter()
                .any(|(d, m): &(_, String)| *d == discriminant(&error) || *m == message)
        );
        seen.push((discriminant(&error), message));
    }
    assert_eq!(seen.len(), 6);
}

#[test]
fn a_refused_list_leaves_the_store_as_it_was() {
    for (case, mut store, list) in refusals() {
        let before = store.cached().map(|list| list.serial());
        assert!(store.accept(&list, NOW).is_err(), "{case}");
        assert_eq!(store.cached().map(|list| list.serial()), before, "{case}");
    }
}

#[test]
fn a_self_consistent_list_by_other_maintainers_is_untrusted() {
    // A forger's list: its own maintainer set, properly signed by it.
    let forged = signed(&body(7, set(2, &[7, 8, 9])), &[7, 8]);
    forged.verify().unwrap();
    match store().check(&forged, NOW) {
        Err(BootstrapError::UntrustedMaintainers {
            serial: 7,
            trusted,
            offered,
        }) => {
            assert!(trusted.starts_with("2 of ["), "{trusted}");
            assert!(offered.contains(&maintainer(7).public_key().to_string()[..12]));
        }
        other => panic!("{other:?}"),
    }
    // Claiming the pinned set as its previous one without its signatures does not help.
    let mut rotation = body(7, set(2, &[7, 8, 9]));
    rotation.previous_maintainers = Some(set(2, &[1, 2, 3]));
    let claimed = signed(&rotation, &[7, 8, 1]);
    assert!(matches!(
        store().check(&claimed, NOW),
        Err(BootstrapError::BelowThreshold {
            set: SetRole::PreviousMaintainers,
            valid: 1,
            threshold: 2,
            ..
        })
    ));
}

#[test]
fn a_different_list_under_the_cached_serial_is_a_conflict() {
    let mut store = store();
    store.accept(&good(3), NOW).unwrap();
    let mut other = body(3, set(2, &[1, 2, 3]));
    other.comment = Some("second list with serial 3".to_owned());
    assert!(matches!(
        store.check(&signed(&other, &[1, 2]), NOW),
        Err(BootstrapError::Conflict { serial: 3 })
    ));
}

#[test]
fn duplicate_signatures_and_envelope_errors_are_named() {
    let list = good(1);
    let first = serde_json::to_value(&list.signatures()[0]).unwrap();
    let doubled = tampered(&list, |value| {
        value["signatures"].as_array_mut().unwrap().push(first)
    });
    assert!(matches!(
        store().check(&doubled, NOW),
        Err(BootstrapError::DuplicateSignature { .. })
    ));
    let relabelled = tampered(&list, |value| value["tag"] = json!("rot/heartbeat"));
    assert!(matches!(
        store().check(&relabelled, NOW),
        Err(BootstrapError::WrongTag { .. })
    ));
    let future = tampered(&list, |value| value["version"] = json!(2));
    assert!(matches!(
        store().check(&future, NOW),
        Err(BootstrapError::UnsupportedVersion { found: 2, .. })
    ));
}

#[test]
fn a_field_added_by_a_newer_tool_stays_signed() {
    let mut value = serde_json::to_value(body(1, set(1, &[1]))).unwrap();
    value["added_later"] = json!({"x": [1, 2]});
    let unsigned =
        json!({"tag": "rot/bootstrap-list", "version": 1, "body": value, "signatures": []});
    let mut list: ListFile = serde_json::from_value(unsigned).unwrap();
    list.sign(&maintainer(1)).unwrap();
    TrustStore::new(set(1, &[1])).check(&list, NOW).unwrap();
    let stripped = tampered(&list, |value| {
        value["body"].as_object_mut().unwrap().remove("added_later");
    });
    assert!(matches!(
        TrustStore::new(set(1, &[1])).check(&stripped, NOW),
        Err(BootstrapError::Tampered { .. })
    ));
}
