//! Discovery end to end: a rot-server given only its coin, pinned maintainer keys and a mirror
//! of the bootstrap list finds the proxy in the threshold-signed list and registers with it; a
//! wallet holding only the same pins finds the proxy the same way, checks it is the key the
//! list names, and gets an address's unspent outputs through its relay; a list signed by other
//! keys leads nowhere.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use rot_bootstrap::demo::{DemoSpec, create_demo_ring};
use rot_bootstrap::fetch::{FetchOptions, http_client};
use rot_bootstrap::{Follower, ProxyEntry, unix_now};
use rot_harness::{AddressType, ApiClient, Litecoind, RotProxy, RotServer};
use rot_proto::client::Proxy;
use rot_proto::transport::Transport;
use rot_proto::{Address, Coins, Identity, Network, PublicKey};

const COIN: &str = "ltc-regtest";

/// Serves `list` at `/v1/bootstrap` on loopback, as any mirror or proxy would.
async fn mirror(list: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/bootstrap", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/bootstrap", get(move || async move { list }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn demo_list(
    dir: &std::path::Path,
    proxy_url: &str,
    proxy_key: PublicKey,
) -> rot_bootstrap::demo::DemoRing {
    let entry = ProxyEntry {
        url: proxy_url.to_owned(),
        key: proxy_key,
        team: "test team".into(),
        contact: "ops@example.org".into(),
    };
    let spec = DemoSpec {
        maintainers: 3,
        threshold: 2,
        proxies: vec![("ltc-regtest".into(), entry)],
        valid_secs: 3600,
    };
    create_demo_ring(dir, &spec, unix_now()).unwrap()
}

async fn listed(proxy: &ApiClient) -> usize {
    let Ok(reply) = proxy.get("/v1/coins/ltc-regtest/servers").await else {
        return 0;
    };
    reply
        .json()
        .ok()
        .and_then(|v| v["servers"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[tokio::test]
async fn a_server_finds_its_proxy_in_the_signed_list_and_registers() {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    node.mine(101, &wallet.new_address(AddressType::Bech32).await.unwrap())
        .await
        .unwrap();
    let ring_dir = tempfile::tempdir().unwrap();
    let proxy_key_file = ring_dir.path().join("proxy.key");
    let proxy_key = Identity::load_or_generate(&proxy_key_file)
        .unwrap()
        .public_key();
    let proxy = RotProxy::start_with(
        None,
        &[("ROT_PROXY_KEY_FILE", &proxy_key_file.display().to_string())],
    )
    .await
    .unwrap();
    let proxy_api = ApiClient::new(&proxy.url);

    let ring = demo_list(ring_dir.path(), &proxy.url, proxy_key);
    let mirror_url = mirror(ring.list.to_json()).await;
    let pins = ring.pins_path.display().to_string();
    let server = RotServer::start_with(
        &node,
        None,
        &[
            ("ROT_BOOTSTRAP_PINS", &pins),
            ("ROT_BOOTSTRAP_URLS", &mirror_url),
            ("ROT_HEARTBEAT_SECS", "1"),
        ],
    )
    .await
    .unwrap();

    let started = Instant::now();
    while listed(&proxy_api).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never registered with the listed proxy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let info = server.api().get_json("/rot/v1/info").await.unwrap();
    let standings = info["body"]["proxies"].as_array().unwrap();
    assert!(
        standings.iter().any(|s| s["proxy_url"] == proxy.url),
        "{standings:?}"
    );
    assert!(
        server.data_dir.join("bootstrap-cache.json").exists(),
        "the accepted list is cached"
    );

    // A wallet with only the pins: the list from the mirror, the proxy from the list, the
    // proxy's signed info under the listed key, then an address's coins through its relay.
    let paid = wallet.new_address(AddressType::Bech32).await.unwrap();
    let txid = wallet.send_to(&paid, 123_456_789).await.unwrap();
    node.mine(1, &wallet.new_address(AddressType::Bech32).await.unwrap())
        .await
        .unwrap();
    let mut follower = Follower::open(&ring.pins_path, vec![mirror_url.clone()], None).unwrap();
    let options = FetchOptions::default();
    let (report, _) = follower
        .refresh(&http_client(&options).unwrap(), unix_now(), &options)
        .await;
    assert!(report.accepted.is_some(), "{report:?}");
    let proxies = follower.store().proxies_for(COIN, unix_now()).unwrap();
    assert_eq!(proxies.len(), 1);
    let transport = Transport::new(reqwest::Client::new()).with_timeout(Duration::from_secs(10));
    let through = Proxy::new(transport, &proxies[0].url).unwrap();
    let info = through.info().await.unwrap().verify().unwrap();
    assert_eq!(
        info.proxy_key, proxies[0].key,
        "the proxy holds the listed key"
    );
    let profile = Coins::builtin()
        .get("LTC", Network::Regtest)
        .unwrap()
        .clone();
    let esplora = through.esplora(profile.clone()).unwrap();
    let address = Address::parse(&profile, &paid).unwrap();
    let started = Instant::now();
    let utxos = loop {
        match esplora.utxos(&address).await {
            Ok(served) if served.value.len() == 1 => break served,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the relay never served the payment: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    assert_eq!(utxos.value[0].txid, txid);
    assert_eq!(utxos.value[0].value, 123_456_789);
    assert!(utxos.value[0].status.confirmed);
    let info = server.api().get_json("/rot/v1/info").await.unwrap();
    assert_eq!(
        utxos.server.map(|key| key.to_string()),
        info["body"]["server_key"].as_str().map(str::to_owned),
        "the relay names the server that answered"
    );
    server.stop().await;

    // A list naming the same proxy but signed by maintainers the server does not pin is
    // refused: no registration.
    let other_dir = tempfile::tempdir().unwrap();
    let forged = demo_list(other_dir.path(), &proxy.url, proxy_key);
    let forged_mirror = mirror(forged.list.to_json()).await;
    let honest_pins = pins;
    let refusing = RotServer::start_with(
        &node,
        None,
        &[
            ("ROT_BOOTSTRAP_PINS", &honest_pins),
            ("ROT_BOOTSTRAP_URLS", &forged_mirror),
            ("ROT_HEARTBEAT_SECS", "1"),
        ],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let info = refusing.api().get_json("/rot/v1/info").await.unwrap();
    assert_eq!(
        info["body"]["proxies"],
        serde_json::json!([]),
        "a forged list must not be followed"
    );
    assert_eq!(
        listed(&proxy_api).await,
        1,
        "only the first server registered"
    );
    refusing.stop().await;
}
