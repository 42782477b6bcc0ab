//! Fetching from several mirrors on loopback: down, stale, tampered, oversized, slow and
//! newest mirrors at once; the newest valid list wins and the others are only reported.
#![cfg(feature = "http")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use rot_bootstrap::fetch::{FetchOptions, http_client, refresh};
use rot_bootstrap::{Accepted, BootstrapError, ListFile, TrustStore, bootstrap_url};

fn good(serial: u64) -> ListFile {
    signed(&body(serial, set(2, &[1, 2, 3])), &[1, 2])
}

/// Serves `body` at `/v1/bootstrap` after `delay`; returns the proxy's base URL.
async fn mirror(body: String, delay: Duration) -> String {
    let app = Router::new().route(
        "/v1/bootstrap",
        get(move || async move {
            tokio::time::sleep(delay).await;
            body
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A loopback URL where nothing listens.
fn down() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn options() -> FetchOptions {
    FetchOptions {
        timeout: Duration::from_millis(1500),
        ..FetchOptions::default()
    }
}

#[tokio::test]
async fn the_newest_valid_copy_wins_and_bad_mirrors_are_reported() {
    let no_delay = Duration::ZERO;
    let tampered = good(3).to_json().replace("Regtest Team", "Evil Team");
    let oversized = " ".repeat(2 * 1024 * 1024);
    let bases = BTreeMap::from([
        ("down", down()),
        ("stale", mirror(good(1).to_json(), no_delay).await),
        (
            "newest",
            mirror(good(2).to_json(), Duration::from_millis(200)).await,
        ),
        ("tampered", mirror(tampered, no_delay).await),
        ("oversized", mirror(oversized, no_delay).await),
        (
            "slow",
            mirror(good(4).to_json(), Duration::from_secs(10)).await,
        ),
    ]);
    let mut mirrors: Vec<String> = bases.values().map(|base| bootstrap_url(base)).collect();
    // A plain host that does not serve the list.
    mirrors.push(format!("{}/not-there", bases["stale"]));

    let mut store = TrustStore::new(set(2, &[1, 2, 3]));
    let client = http_client(&options()).unwrap();
    let report = refresh(&mut store, &client, &mirrors, NOW, &options()).await;

    assert_eq!(
        report.source.as_deref(),
        Some(bootstrap_url(&bases["newest"]).as_str())
    );
    assert_eq!(
        report.accepted,
        Some(Accepted::Updated {
            serial: 2,
            replaced: None
        })
    );
    assert_eq!(store.current(NOW).unwrap().serial(), 2);
    assert_eq!(report.mirrors.len(), mirrors.len());
    let outcome = |name: &str| {
        let url = bootstrap_url(&bases[name]);
        &report.mirrors.iter().find(|m| m.url == url).unwrap().result
    };
    assert!(matches!(outcome("down"), Err(BootstrapError::Fetch { .. })));
    assert!(matches!(outcome("stale"), Ok(1)));
    assert!(matches!(outcome("newest"), Ok(2)));
    assert!(matches!(
        outcome("tampered"),
        Err(BootstrapError::Tampered { .. })
    ));
    assert!(matches!(
        outcome("oversized"),
        Err(BootstrapError::TooLarge { .. })
    ));
    match outcome("slow") {
        Err(BootstrapError::Fetch { reason, .. }) => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let not_there = report
        .mirrors
        .iter()
        .find(|m| m.url.ends_with("/not-there"))
        .unwrap();
    match &not_there.result {
        Err(error) => assert!(error.to_string().contains("HTTP 404"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn mirrors_serving_only_older_lists_change_nothing() {
    let mut store = TrustStore::new(set(2, &[1, 2, 3]));
    store.accept(&good(2), NOW).unwrap();
    let mirrors = [
        bootstrap_url(&mirror(good(1).to_json(), Duration::ZERO).await),
        bootstrap_url(&mirror(good(2).to_json(), Duration::ZERO).await),
    ];
    let client = http_client(&options()).unwrap();
    let report = refresh(&mut store, &client, &mirrors, NOW, &options()).await;
    assert_eq!(report.accepted, Some(Accepted::Unchanged { serial: 2 }));
    assert!(matches!(
        report
            .mirrors
            .iter()
            .find(|m| m.url == mirrors[0])
            .unwrap()
            .result,
        Err(BootstrapError::Rollback {
            offered: 1,
            cached: 2
        })
    ));

    let only_old = [mirrors[0].clone()];
    let report = refresh(&mut store, &client, &only_old, NOW, &options()).await;
    assert_eq!((report.source, report.accepted), (None, None));
    assert_eq!(store.current(NOW).unwrap().serial(), 2);
}

#[tokio::test]
async fn a_list_refreshed_from_its_own_proxies() {
    // The list names the proxy that serves it: its mirror URLs lead back to it.
    let base = mirror(String::new(), Duration::ZERO).await;
    let mut named = body(5, set(2, &[1, 2, 3]));
    named
        .proxies
        .insert("ltc-regtest".to_owned(), vec![proxy(&base, 100)]);
    let list = signed(&named, &[2, 3]);
    let served = mirror(list.to_json(), Duration::ZERO).await;
    let mut store = TrustStore::new(set(2, &[1, 2, 3]));
    let client = http_client(&options()).unwrap();
    refresh(
        &mut store,
        &client,
        &[bootstrap_url(&served)],
        NOW,
        &options(),
    )
    .await;
    assert_eq!(
        store.current(NOW).unwrap().mirror_urls(),
        [format!("{base}/v1/bootstrap")]
    );
}
