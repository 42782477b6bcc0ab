//! The list shipped in `bootstrap/list.json` is a well-signed placeholder (see
//! docs/bootstrap.md): it must verify, name no proxies, and say what it is.

use rot_bootstrap::{ListFile, PUBLISHED_LIST, TrustStore};

#[test]
fn the_published_list_is_a_valid_marked_placeholder() {
    let list = ListFile::from_slice(PUBLISHED_LIST.as_bytes()).unwrap();
    let verified = list.verify().unwrap();
    let body = verified.body();
    assert!(body.proxies.is_empty());
    assert!(
        body.comment
            .as_deref()
            .unwrap_or_default()
            .starts_with("PLACEHOLDER"),
        "{:?}",
        body.comment
    );
    // A client pinning its maintainers accepts it while it is current.
    let mut store = TrustStore::new(body.maintainers.clone());
    store.accept(&list, body.issued_at).unwrap();
    // The file is exactly what the tool writes.
    assert_eq!(list.to_json(), PUBLISHED_LIST);
}
