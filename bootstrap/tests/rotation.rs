//! Key rotation: a client pinned to the oldest maintainer set follows a chain of three lists,
//! one by one or in one step through the rotation links the newest list carries.

mod common;

use common::*;
use rot_bootstrap::{Accepted, BootstrapError, ListFile, MaintainerSet, SetRole, TrustStore};

/// Signs `file` with the given maintainers.
fn sign(mut file: ListFile, signers: &[u8]) -> ListFile {
    for &seed in signers {
        file.sign(&maintainer(seed)).unwrap();
    }
    file
}

/// Drafts the successor of the complete `list` with maintainers `to`, as the tool's
/// `set-threshold --maintainer ...` does.
fn rotate(list: &ListFile, to: MaintainerSet, now: u64) -> ListFile {
    list.edit(now, |body| {
        body.set_maintainers(to);
        Ok(())
    })
    .unwrap()
    .file
}

/// L1 by S1 = 2 of {1,2,3}; L2 rotates to S2 = 2 of {3,4,5}; L3 rotates to S3 = 3 of {6,7,8}.
fn chain() -> [ListFile; 3] {
    let l1 = signed(&body(1, set(2, &[1, 2, 3])), &[1, 2]);
    // Key 3 is in both sets: its one signature counts for both.
    let l2 = sign(rotate(&l1, set(2, &[3, 4, 5]), NOW - 10), &[1, 3, 4]);
    let l3 = sign(rotate(&l2, set(3, &[6, 7, 8]), NOW - 5), &[4, 5, 6, 7, 8]);
    [l1, l2, l3]
}

#[test]
fn the_chain_is_well_formed() {
    let [l1, l2, l3] = chain();
    for (list, serial) in [(&l1, 1), (&l2, 2), (&l3, 3)] {
        assert_eq!(list.verify().unwrap().serial(), serial);
    }
    let l3_body = l3.decode_body().unwrap();
    assert_eq!(l3_body.previous_maintainers, Some(set(2, &[3, 4, 5])));
    // The newest list carries the earlier rotation as a link.
    assert_eq!(l3.rotations().len(), 1);
    assert_eq!(l3.rotations()[0].serial_hint(), 2);
    assert!(l2.rotations().is_empty());
}

#[test]
fn followed_one_list_at_a_time_from_the_oldest_pinned_set() {
    let [l1, l2, l3] = chain();
    let mut store = TrustStore::new(set(2, &[1, 2, 3]));
    for (list, serial) in [(&l1, 1), (&l2, 2), (&l3, 3)] {
        assert!(matches!(
            store.accept(list, NOW).unwrap(),
            Accepted::Updated { serial: s, .. } if s == serial
        ));
    }
    assert!(store.trusted().same_as(&set(3, &[6, 7, 8])));
    // Once rotated, a list by the old set alone is no longer trusted.
    let by_old_set = signed(&body(4, set(2, &[1, 2, 3])), &[1, 2]);
    assert!(matches!(
        store.check(&by_old_set, NOW),
        Err(BootstrapError::UntrustedMaintainers { serial: 4, .. })
    ));
}

#[test]
fn followed_in_one_step_through_the_carried_links() {
    let [_, _, l3] = chain();
    let mut store = TrustStore::new(set(2, &[1, 2, 3]));
    store.accept(&l3, NOW).unwrap();
    assert_eq!(store.current(NOW).unwrap().serial(), 3);
}

#[test]
fn without_the_links_the_jump_is_refused() {
    let [_, _, l3] = chain();
    let bare = tampered(&l3, |value| {
        value.as_object_mut().unwrap().remove("rotations");
    });
    bare.verify().unwrap();
    let store = TrustStore::new(set(2, &[1, 2, 3]));
    assert!(matches!(
        store.check(&bare, NOW),
        Err(BootstrapError::UntrustedMaintainers { serial: 3, .. })
    ));
    // A client already at L2 needs no links.
    let mut at_two = TrustStore::new(set(2, &[1, 2, 3]));
    at_two.accept(&chain()[1], NOW).unwrap();
    at_two.accept(&bare, NOW).unwrap();
}

#[test]
fn the_cache_keeps_the_links_it_followed() {
    let [l1, l2, l3] = chain();
    let bare_l3 = tampered(&l3, |value| {
        value.as_object_mut().unwrap().remove("rotations");
    });
    let mut store = TrustStore::new(set(2, &[1, 2, 3]));
    for list in [&l1, &l2, &bare_l3] {
        store.accept(list, NOW).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("bootstrap-cache.json");
    store.save_cache(&cache).unwrap();
    // After a restart, the cache re-verifies from the same old pins.
    let mut restarted = TrustStore::new(set(2, &[1, 2, 3]));
    assert_eq!(restarted.load_cache(&cache).unwrap(), Some(3));
    assert_eq!(restarted.cached().unwrap().file().rotations().len(), 1);
}

#[test]
fn a_rotation_needs_the_old_sets_threshold_too() {
    let [l1, _, _] = chain();
    let unsigned_rotation = rotate(&l1, set(2, &[3, 4, 5]), NOW);
    let only_new = sign(unsigned_rotation, &[4, 5]);
    match only_new.verify() {
        Err(BootstrapError::BelowThreshold {
            set: SetRole::PreviousMaintainers,
            valid: 0,
            threshold: 2,
            serial: 2,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_broken_link_is_refused() {
    let [_, _, l3] = chain();
    let broken = tampered(&l3, |value| {
        value["rotations"][0]["body"]["expires_at"] = serde_json::json!(NOW + 99 * DAY);
    });
    match TrustStore::new(set(2, &[1, 2, 3])).check(&broken, NOW) {
        Err(BootstrapError::InvalidRotation { serial: 2, reason }) => {
            assert!(reason.contains("tampered"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
