//! Wallet traffic through the relay: answers as the servers give them, named by server and
//! tip; pins; broadcasts to two servers; a wallet's bad request; a server stopped under
//! steady traffic without a single failed request.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use rot_harness::ring::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_are_served_and_a_dying_server_costs_no_request() {
    let node = Node::funded().await;
    let proxy = Proxy::start(&[]).await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(proxy.server(&node.node).await);
    }
    let mut keys = Vec::new();
    for server in &servers {
        keys.push(key_of(server).await);
    }
    let (height, hash) = node.node.tip().await.unwrap();
    proxy.wait_serving(&keys, Some((height, hash))).await;

    // Answers are the servers' own, named by server and tip.
    let (status, headers, body) = proxy.relay("/blocks/tip/hash").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, hash.to_string());
    assert_eq!(headers["x-rot-tip"], format!("{height}:{hash}").as_str());
    assert!(keys.contains(&answered_by(&headers)));
    let path = format!("/address/{}/utxo", node.miner);
    let (status, _, relayed) = proxy.relay(&path).await;
    assert_eq!(status, StatusCode::OK);
    let direct = servers[0].api().get_json(&path).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&relayed).unwrap(), direct);
    // Concurrent requests spread over every server.
    let mut answering = BTreeSet::new();
    for _ in 0..20 {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (http, url) = (
                proxy.http.clone(),
                format!("{}/blocks/tip/height", proxy.esplora()),
            );
            batch.spawn(async move { http.get(url).send().await.unwrap().headers().clone() });
        }
        while let Some(headers) = batch.join_next().await {
            answering.insert(answered_by(&headers.unwrap()));
        }
    }
    assert_eq!(answering, keys.iter().copied().collect());

    // Pins, by path and by header.
    for key in &keys {
        let url = format!(
            "{}/v1/coins/{COIN}/servers/{key}/esplora/blocks/tip/height",
            proxy.url
        );
        let (status, headers, body) = proxy.get(&url, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(answered_by(&headers), *key);
        assert_eq!(body, height.to_string());
        let url = format!("{}/blocks/tip/hash", proxy.esplora());
        let (_, headers, _) = proxy.get(&url, Some(key)).await;
        assert_eq!(answered_by(&headers), *key);
    }

    // A wallet's bad request gets the server's 4xx, and counts against nobody.
    let (status, headers, body) = proxy.relay("/address/not-an-address").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(keys.contains(&answered_by(&headers)));
    let view = proxy.relay_view().await;
    for server in view["servers"].as_array().unwrap() {
        assert_eq!(server["failures"], 0, "{server:#}");
    }

    // A broadcast goes to two servers.
    let before = proxy.requests().await;
    let raw = node.signed_payment(1_000_000).await;
    let response = proxy
        .http
        .post(format!("{}/tx", proxy.esplora()))
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let txid: rot_proto::Hash256 = response.text().await.unwrap().trim().parse().unwrap();
    let mempool: Vec<rot_proto::Hash256> = node
        .node
        .call("getrawmempool", serde_json::json!([]))
        .await
        .unwrap();
    assert!(mempool.contains(&txid));
    let after = proxy.requests().await;
    let sent_to: Vec<u64> = keys.iter().map(|k| after[k] - before[k]).collect();
    assert_eq!(sent_to.iter().sum::<u64>(), 2, "{sent_to:?}");
    assert!(sent_to.iter().all(|&n| n <= 1), "{sent_to:?}");
    node.node.mine(1, &node.miner).await.unwrap();
    proxy
        .wait_serving(&keys, Some(node.node.tip().await.unwrap()))
        .await;

    // Steady traffic from 8 wallets; one server is stopped in the middle of it.
    let paths = [
        "/blocks/tip/height".to_owned(),
        path.clone(),
        format!("/address/{}", node.miner),
        format!("/tx/{txid}/status"),
        "/block-height/1".to_owned(),
    ];
    let traffic = proxy.wallets(&paths, 8).await;
    let before_kill = traffic.answered();
    let dead = keys[0];
    servers.remove(0).stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = traffic.finish().await;
    report.assert_no_failures("a server stopped under traffic");
    assert!(
        report.answered > before_kill + 100,
        "traffic went on after the stop: {before_kill} then {}",
        report.answered
    );
    // The dead server is out of rotation, and the others serve.
    proxy.wait_serving(&keys[1..], None).await;
    let view = proxy.relay_view().await;
    let dead_view = view["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server_key"] == serde_json::json!(dead))
        .cloned();
    if let Some(dead_view) = dead_view {
        assert_eq!(dead_view["healthy"], false, "{dead_view:#}");
    }
    // Unreachable is not misbehaviour: no warning.
    if let Some(entry) = proxy.entry(&dead).await {
        assert_eq!(entry.warnings, 0);
    }
    proxy.stop().await;
}
