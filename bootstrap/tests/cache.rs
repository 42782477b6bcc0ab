//! The cached list: usable only until its expiry, re-verified when loaded, and kept as the
//! rollback floor; the refresh schedule follows it.

mod common;

use common::*;
use rot_bootstrap::{BootstrapError, ListFile, TrustStore};

fn good(serial: u64) -> ListFile {
    signed(&body(serial, set(2, &[1, 2, 3])), &[1, 2])
}

fn store() -> TrustStore {
    TrustStore::new(set(2, &[1, 2, 3]))
}

#[test]
fn the_cache_survives_a_restart_and_expires_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache/bootstrap.json");
    let mut first = store();
    assert!(matches!(
        first.save_cache(&path),
        Err(BootstrapError::NoList)
    ));
    first.accept(&good(4), NOW).unwrap();
    first.save_cache(&path).unwrap();

    let mut second = store();
    assert_eq!(second.load_cache(&path).unwrap(), Some(4));
    let expires_at = second.cached().unwrap().expires_at();
    assert_eq!(expires_at, NOW + 29 * DAY);
    assert_eq!(
        second
            .proxies_for("ltc-regtest", expires_at - 1)
            .unwrap()
            .len(),
        1
    );
    // From its expiry on, the cached list is no longer usable...
    for late in [expires_at, expires_at + DAY] {
        assert!(matches!(
            second.proxies_for("ltc-regtest", late),
            Err(BootstrapError::Expired { serial: 4, .. })
        ));
    }
    // ...but an expired cache still loads, anchors trust and refuses rollbacks.
    let mut third = store();
    assert_eq!(third.load_cache(&path).unwrap(), Some(4));
    let late = expires_at + DAY;
    let mut older_but_fresh = body(3, set(2, &[1, 2, 3]));
    older_but_fresh.expires_at = late + DAY;
    assert!(matches!(
        third.accept(&signed(&older_but_fresh, &[1, 2]), late),
        Err(BootstrapError::Rollback {
            offered: 3,
            cached: 4
        })
    ));
}

#[test]
fn a_missing_cache_is_no_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        store().load_cache(&dir.path().join("none.json")).unwrap(),
        None
    );
}

#[test]
fn a_cache_altered_on_disk_or_of_another_ring_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    let text = good(2).to_json().replace("Regtest Team", "Evil Team");
    std::fs::write(&path, text).unwrap();
    let mut store = store();
    assert!(matches!(
        store.load_cache(&path),
        Err(BootstrapError::Tampered { .. })
    ));
    assert!(store.cached().is_none());

    signed(&body(2, set(1, &[7])), &[7]).write(&path).unwrap();
    assert!(matches!(
        store.load_cache(&path),
        Err(BootstrapError::UntrustedMaintainers { .. })
    ));

    std::fs::write(&path, "not json").unwrap();
    assert!(matches!(
        store.load_cache(&path),
        Err(BootstrapError::Malformed(_))
    ));
    assert!(store.cached().is_none());
}

#[test]
fn refresh_is_jittered_and_stays_within_bounds() {
    let policy = rot_bootstrap::RefreshPolicy::default();
    let mut store = store();
    // No list: retry soon.
    for value in [0, u64::MAX, 12_345] {
        let at = store.next_refresh(NOW, &mut || value);
        assert!((NOW + policy.retry_secs / 2..=NOW + policy.retry_secs * 3 / 2).contains(&at));
    }
    store.accept(&good(1), NOW).unwrap();
    let (early, late) = (
        store.next_refresh(NOW, &mut || 0),
        store.next_refresh(NOW, &mut || u64::MAX),
    );
    assert_eq!(early, NOW + policy.interval_secs / 2);
    assert!(late > early && late <= NOW + policy.interval_secs * 3 / 2);
    // Close to expiry the wait shrinks so the list is refreshed before it runs out.
    let expires_at = store.cached().unwrap().expires_at();
    let near = expires_at - 3_600;
    for value in [0, u64::MAX, 777] {
        let at = store.next_refresh(near, &mut || value);
        assert!(at > near && at <= near + 1_800, "{at}");
    }
    // Past expiry: back to retrying.
    let after = expires_at + 1;
    let at = store.next_refresh(after, &mut || 0);
    assert_eq!(at, after + policy.retry_secs / 2);
}
