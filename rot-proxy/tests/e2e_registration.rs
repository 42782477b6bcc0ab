//! Registration end to end with real parts: a regtest litecoind, real rot-servers indexing it,
//! and a real rot-proxy, all on loopback. The server registers by itself from `ROT_PROXIES`,
//! is admitted after the proxy's challenge, follows new tips in the directory, goes stale
//! when stopped and comes back; the directory survives a proxy restart; replays and borrowed
//! URLs signed with real keys are refused.

use std::time::Duration;

use rot_harness::{AddressType, ApiClient, Litecoind, RotProxy, RotServer, eventually};
use rot_proto::{Heartbeat, Identity, Signed};
use serde_json::Value;

const COIN: &str = "ltc-regtest";
const WAIT: Duration = Duration::from_secs(30);

/// The directory entry of `key` at `proxy`, if listed.
async fn entry(proxy: &ApiClient, key: &str) -> Option<Value> {
    let reply = proxy.get(&format!("/v1/coins/{COIN}/servers")).await.ok()?;
    let servers = reply.json().ok()?["servers"].as_array()?.clone();
    servers.into_iter().find(|s| s["server_key"] == key)
}

async fn server_key(server: &RotServer) -> String {
    let info = server.api().get_json("/rot/v1/info").await.unwrap();
    info["key"].as_str().unwrap().to_owned()
}

/// A heartbeat as rot-server sends it, for replay and borrowed-URL cases.
fn heartbeat(identity: &Identity, info: &Value, url: &str, seq: u64) -> Signed<Heartbeat> {
    let body = &info["body"];
    let beat = Heartbeat {
        coin: "LTC".into(),
        network: rot_proto::Network::Regtest,
        genesis_hash: body["genesis_hash"].as_str().unwrap().parse().unwrap(),
        url: url.to_owned(),
        seq,
        timestamp: rot_bootstrap::unix_now(),
        height: body["height"].as_u64().unwrap(),
        tip_hash: body["tip_hash"].as_str().unwrap().parse().unwrap(),
        software: "rot-server/test".into(),
        backend: rot_proto::BackendKind::Native,
        capabilities: vec![],
        synced: true,
    };
    Signed::sign(identity, &beat).unwrap()
}

#[tokio::test]
async fn a_real_server_registers_follows_tips_goes_stale_and_survives_a_proxy_restart() {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();

    let proxy_dir = tempfile::tempdir().unwrap();
    let proxy = RotProxy::start_with(
        Some(proxy_dir.path().to_owned()),
        &[("ROT_PROXY_STALE_SECS", "2")],
    )
    .await
    .unwrap();
    let proxy_api = ApiClient::new(&proxy.url);
    let server_dir = tempfile::tempdir().unwrap();
    let settings = [
        ("ROT_PROXIES", proxy.url.as_str()),
        ("ROT_HEARTBEAT_SECS", "1"),
    ];
    let server = RotServer::start_with(&node, Some(server_dir.path().to_owned()), &settings)
        .await
        .unwrap();
    let key = server_key(&server).await;

    // Admitted after the challenge, at the node's tip.
    let listed = eventually("the server to be admitted", WAIT, || async {
        entry(&proxy_api, &key)
            .await
            .filter(|e| e["status"] == "admitted" && e["height"] == 101)
    })
    .await;
    let (_, tip) = node.tip().await.unwrap();
    assert_eq!(listed["tip_hash"], tip.to_string());
    assert_eq!(listed["backend"], "native");
    assert!(
        listed["url"].is_null(),
        "server addresses are not public by default"
    );

    // The server shows its standing at the proxy.
    eventually("the server to see its standing", WAIT, || async {
        let info = server.api().get_json("/rot/v1/info").await.ok()?;
        let proxies = info["body"]["proxies"].as_array()?.clone();
        proxies
            .iter()
            .any(|p| p["proxy_url"] == proxy.url && p["status"] == "admitted")
            .then_some(())
    })
    .await;

    // A new block reaches the directory through the heartbeat on the new tip.
    node.mine(1, &miner).await.unwrap();
    eventually("the directory to show the new tip", WAIT, || async {
        entry(&proxy_api, &key).await.filter(|e| e["height"] == 102)
    })
    .await;
    let coins = proxy_api.get_json("/v1/coins").await.unwrap();
    let coin = coins["coins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == COIN)
        .unwrap()
        .clone();
    assert_eq!(coin["healthy_servers"], 1);
    assert_eq!(coin["tip_height"], 102);

    // A replayed heartbeat signed with the server's real key is refused, and so is one that
    // claims the server's URL under another key.
    let identity = Identity::load(&server_dir.path().join("identity.key")).unwrap();
    let info = server.api().get_json("/rot/v1/info").await.unwrap();
    let replay = proxy_api
        .post(
            "/v1/heartbeat",
            serde_json::to_string(&heartbeat(&identity, &info, &server.url, 1)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(replay.status, 409, "{}", replay.text());
    assert_eq!(replay.json().unwrap()["error"]["code"], "replayed");
    let intruder = Identity::generate().unwrap();
    let borrowed = proxy_api
        .post(
            "/v1/heartbeat",
            serde_json::to_string(&heartbeat(&intruder, &info, &server.url, 1)).unwrap(),
        )
        .await
        .unwrap();
    assert!((400..500).contains(&borrowed.status), "{}", borrowed.text());
    assert!(
        entry(&proxy_api, &intruder.public_key().to_string())
            .await
            .is_none()
    );

    // Stopped, the server goes stale and leaves the answers; restarted, it comes back with
    // sequence numbers above the ones the proxy saw.
    server.stop().await;
    eventually("the server to go stale", WAIT, || async {
        entry(&proxy_api, &key).await.is_none().then_some(())
    })
    .await;
    let server = RotServer::start_with(&node, Some(server_dir.path().to_owned()), &settings)
        .await
        .unwrap();
    eventually("the restarted server to be listed again", WAIT, || async {
        entry(&proxy_api, &key)
            .await
            .filter(|e| e["status"] == "admitted")
    })
    .await;

    // A proxy restart keeps the directory: the server is listed again on its next
    // heartbeat without a new admission, and old sequence numbers stay refused.
    proxy.stop().await;
    let proxy = RotProxy::start_with(
        Some(proxy_dir.path().to_owned()),
        &[("ROT_PROXY_STALE_SECS", "2")],
    )
    .await
    .unwrap();
    let proxy_api = ApiClient::new(&proxy.url);
    let admin = ApiClient::new(&proxy.url).with_bearer(rot_harness::ADMIN_TOKEN);
    let record = admin
        .get(&format!("/v1/admin/servers/{key}"))
        .await
        .unwrap();
    assert_eq!(record.status, 200, "{}", record.text());
    let replay = proxy_api
        .post(
            "/v1/heartbeat",
            serde_json::to_string(&heartbeat(&identity, &info, &server.url, 1)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        replay.status,
        409,
        "replay after a proxy restart: {}",
        replay.text()
    );
    server.stop().await;
    proxy.stop().await;
}
