//! Proxies among themselves, over real HTTP: the maintainers hand a signed list to one proxy,
//! which serves it at `/v1/bootstrap`; another proxy that only knows the first as a mirror
//! takes it, and each then knows the other from the list (`/v1/peers`, verified against the
//! keys the list names). A newer list handed to the first reaches the second through the peer
//! exchange; an older or forged one is not taken; a peer signing with another key than the
//! list names is shown as such.

use std::path::Path;
use std::time::Duration;

use rot_bootstrap::demo::{DemoSpec, create_demo_ring};
use rot_bootstrap::{ListFile, MaintainerSet, ProxyEntry, TrustStore, unix_now};
use rot_harness::{ApiClient, RotProxy, eventually};
use rot_proto::{Identity, PeersAnswer, ProxyInfo, Signed};

const COIN: &str = "ltc-regtest";

fn entry(url: &str, key: &Identity) -> ProxyEntry {
    ProxyEntry {
        url: url.to_owned(),
        key: key.public_key(),
        team: "test team".into(),
        contact: "ops@example.org".into(),
    }
}

/// A list of `serial` naming `proxies`, signed by the first two of the ring's three
/// maintainers (its threshold).
fn signed_list(ring_dir: &Path, serial: u64, proxies: &[ProxyEntry]) -> ListFile {
    let ring = create_demo_ring(
        ring_dir,
        &DemoSpec {
            maintainers: 3,
            threshold: 2,
            proxies: proxies
                .iter()
                .map(|p| (COIN.to_owned(), p.clone()))
                .collect(),
            valid_secs: 3600,
        },
        unix_now(),
    )
    .unwrap();
    let mut body = ring.list.decode_body().unwrap();
    body.serial = serial;
    let mut list = ListFile::unsigned(&body).unwrap();
    for key_file in &ring.key_files[..2] {
        list.sign(&Identity::load(key_file).unwrap()).unwrap();
    }
    list
}

async fn served_serial(proxy: &ApiClient) -> Option<u64> {
    let reply = proxy.get("/v1/bootstrap").await.ok()?;
    (reply.status == 200).then_some(())?;
    Some(ListFile::from_slice(&reply.body).ok()?.serial_hint())
}

async fn peers(proxy: &ApiClient) -> PeersAnswer {
    serde_json::from_value(proxy.get_json("/v1/peers").await.unwrap()).unwrap()
}

#[tokio::test]
async fn proxies_serve_the_list_pass_it_on_and_know_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let ring_dir = dir.path().join("ring");
    // Pins first (the proxies start with them); lists come later.
    let pins = create_demo_ring(
        &ring_dir,
        &DemoSpec {
            maintainers: 3,
            threshold: 2,
            proxies: vec![],
            valid_secs: 3600,
        },
        unix_now(),
    )
    .unwrap()
    .pins_path;
    let pins = pins.display().to_string();
    let handed_over = dir.path().join("published.json");
    let key_a = dir.path().join("a.key");
    let key_b = dir.path().join("b.key");
    let (identity_a, identity_b) = (
        Identity::load_or_generate(&key_a).unwrap(),
        Identity::load_or_generate(&key_b).unwrap(),
    );

    let a = RotProxy::start_with(
        None,
        &[
            ("ROT_BOOTSTRAP_PINS", &pins),
            (
                "ROT_PROXY_BOOTSTRAP_FILE",
                &handed_over.display().to_string(),
            ),
            ("ROT_PROXY_KEY_FILE", &key_a.display().to_string()),
            ("ROT_PROXY_PEER_INTERVAL_SECS", "1"),
        ],
    )
    .await
    .unwrap();
    let b_dir = dir.path().join("b-data");
    let b = RotProxy::start_with(
        Some(b_dir.clone()),
        &[
            ("ROT_BOOTSTRAP_PINS", &pins),
            ("ROT_BOOTSTRAP_URLS", &format!("{}/v1/bootstrap", a.url)),
            ("ROT_PROXY_KEY_FILE", &key_b.display().to_string()),
            ("ROT_PROXY_PEER_INTERVAL_SECS", "1"),
        ],
    )
    .await
    .unwrap();
    // A third proxy whose real key is not the one the list will name for it.
    let impostor = RotProxy::start_with(None, &[]).await.unwrap();
    let (api_a, api_b) = (ApiClient::new(&a.url), ApiClient::new(&b.url));

    // No list yet: a clear 404 with the shared error body.
    let reply = api_a.get("/v1/bootstrap").await.unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"]["code"], "not_found");

    // The maintainers hand list 1 to proxy A.
    let listed_impostor = entry(&impostor.url, &Identity::generate().unwrap());
    let list1 = signed_list(
        &ring_dir,
        1,
        &[entry(&a.url, &identity_a), entry(&b.url, &identity_b)],
    );
    list1.write(&handed_over).unwrap();
    let wait = Duration::from_secs(20);
    eventually("A serves list 1", wait, || async {
        (served_serial(&api_a).await == Some(1)).then_some(())
    })
    .await;

    // What A serves verifies against the pinned keys, byte for byte the maintainers' list.
    let served = api_a.get_ok("/v1/bootstrap").await.unwrap().body;
    let pinned = MaintainerSet::from_json(&std::fs::read_to_string(&pins).unwrap()).unwrap();
    let mut wallet = TrustStore::new(pinned);
    wallet
        .accept(&ListFile::from_slice(&served).unwrap(), unix_now())
        .unwrap();
    assert_eq!(wallet.current(unix_now()).unwrap().file(), &list1);

    // B took it from A (its only mirror), and each knows the other.
    eventually("B serves list 1", wait, || async {
        (served_serial(&api_b).await == Some(1)).then_some(())
    })
    .await;
    for (api, peer_url, peer_key) in [(&api_a, &b.url, &identity_b), (&api_b, &a.url, &identity_a)]
    {
        let peer = eventually("a reachable peer holding list 1", wait, || async {
            peers(api)
                .await
                .peers
                .into_iter()
                .find(|p| &p.url == peer_url && p.reachable && p.bootstrap_serial == Some(1))
        })
        .await;
        assert_eq!(peer.proxy_key, peer_key.public_key());
        assert_eq!(peer.coins.len(), 1);
        assert_eq!(peer.coins[0].id, COIN);
        assert_eq!(peer.coins[0].healthy_servers, 0);
        assert!(peer.last_seen_age_secs.is_some());
    }

    // A's own info is signed by the key the list names for it.
    let info: Signed<ProxyInfo> =
        serde_json::from_value(api_a.get_json("/v1/info").await.unwrap()).unwrap();
    let info = info.verify().unwrap();
    assert_eq!(info.proxy_key, identity_a.public_key());
    assert_eq!(info.bootstrap_serial, Some(1));

    // List 2 adds a proxy listed under a key it does not hold; handed to A only, it reaches B
    // through the peer exchange.
    let list2 = signed_list(
        &ring_dir,
        2,
        &[
            entry(&a.url, &identity_a),
            entry(&b.url, &identity_b),
            listed_impostor.clone(),
        ],
    );
    list2.write(&handed_over).unwrap();
    eventually("B serves list 2", wait, || async {
        (served_serial(&api_b).await == Some(2)).then_some(())
    })
    .await;
    let impostor_seen = eventually("the impostor is judged", wait, || async {
        peers(&api_b)
            .await
            .peers
            .into_iter()
            .find(|p| p.url == impostor.url && p.error.is_some())
    })
    .await;
    assert!(!impostor_seen.reachable);
    assert_eq!(impostor_seen.proxy_key, listed_impostor.key);
    let why = impostor_seen.error.unwrap();
    assert!(why.contains("names"), "{why}");

    // An older list, or one signed by maintainers nobody pinned, handed to A is not taken.
    list1.write(&handed_over).unwrap();
    let forged_dir = dir.path().join("forged");
    let forged = signed_list(&forged_dir, 3, &[entry(&a.url, &identity_a)]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served_serial(&api_a).await, Some(2));
    forged.write(&handed_over).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served_serial(&api_a).await, Some(2));
    assert_eq!(served_serial(&api_b).await, Some(2));

    // Restarted with every other proxy gone, B still serves list 2 from its cache.
    a.stop().await;
    impostor.stop().await;
    b.stop().await;
    let b = RotProxy::start_with(
        Some(b_dir),
        &[
            ("ROT_BOOTSTRAP_PINS", &pins),
            ("ROT_PROXY_KEY_FILE", &key_b.display().to_string()),
            ("ROT_PROXY_PEER_INTERVAL_SECS", "1"),
        ],
    )
    .await
    .unwrap();
    let api_b = ApiClient::new(&b.url);
    eventually("B serves list 2 after a restart", wait, || async {
        (served_serial(&api_b).await == Some(2)).then_some(())
    })
    .await;
    b.stop().await;
}
