//! Discovery end to end: a rot-server given only its coin, pinned maintainer keys and a mirror
//! of the bootstrap list finds the proxy in the threshold-signed list and registers with it;
//! a list signed by other keys leads nowhere.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use rot_bootstrap::demo::{DemoSpec, create_demo_ring};
use rot_bootstrap::{ProxyEntry, unix_now};
use rot_harness::{AddressType, ApiClient, Litecoind, RotProxy, RotServer};
use rot_proto::Identity;

/// Serves `list` at `/v1/bootstrap` on loopback, as any mirror or proxy would.
async fn mirror(list: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/bootstrap", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/bootstrap", get(move || async move { list }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn demo_list(dir: &std::path::Path, proxy_url: &str) -> rot_bootstrap::demo::DemoRing {
    let entry = ProxyEntry {
        url: proxy_url.to_owned(),
        key: Identity::generate().unwrap().public_key(),
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
    let proxy = RotProxy::start_with(None, &[]).await.unwrap();
    let proxy_api = ApiClient::new(&proxy.url);

    let ring_dir = tempfile::tempdir().unwrap();
    let ring = demo_list(ring_dir.path(), &proxy.url);
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
    server.stop().await;

    // A list naming the same proxy but signed by maintainers the server does not pin is
    // refused: no registration.
    let other_dir = tempfile::tempdir().unwrap();
    let forged = demo_list(other_dir.path(), &proxy.url);
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
