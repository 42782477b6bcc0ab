//! `kill -9` of a coin node under one of three servers, each over its own node (linked by
//! P2P), under steady wallet traffic: the server keeps answering from its index but says, in
//! its signed info and its heartbeats, that it is not synced; the relay stops sending wallets
//! to it without punishing it and serves the new blocks from the others; when the node comes
//! back the server indexes what it missed and is served again. No wallet request fails.

use std::time::Instant;

use rot_proto::PublicKey;
use rot_proto::message::ServerStatus;
use serde_json::json;

use crate::common::*;
use rot_harness::ring::*;

/// Whether the proxy's record of `key` holds what its last heartbeat said of `synced`.
async fn heartbeat_says_synced(proxy: &Proxy, key: &PublicKey) -> Option<bool> {
    let servers = proxy
        .admin(&format!("/v1/admin/coins/{COIN}/servers"))
        .await;
    servers["servers"]
        .as_array()?
        .iter()
        .find(|s| s["record"]["server_key"] == json!(key))?["record"]["synced"]
        .as_bool()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_reported_and_its_server_skipped_until_the_node_returns() {
    let a = Node::funded().await;
    let mut b = Node::follower(&a.node).await;
    let c = Node::follower(&a.node).await;
    let proxy = Proxy::start(&[]).await;
    let on_a = proxy.server(&a.node).await;
    let on_b = proxy.server(&b).await;
    let on_c = proxy.server(&c).await;
    let (ka, kb, kc) = (
        key_of(&on_a).await,
        key_of(&on_b).await,
        key_of(&on_c).await,
    );
    let (height, hash) = a.node.tip().await.unwrap();
    proxy
        .wait_serving(&[ka, kb, kc], Some((height, hash)))
        .await;
    let traffic = proxy.wallets(&a.wallet_questions(), WALLETS).await;

    let killed = Instant::now();
    b.kill9().unwrap();
    let reported = time_until("the server to say its node is gone", || async {
        info_at(&on_b.url)
            .await
            .is_some_and(|info| !info.index.synced && info.index.node_error.is_some())
    })
    .await;
    let stopped = time_until("the relay to stop relaying to the server", || async {
        relay_view_of(&proxy, &kb)
            .await
            .is_some_and(|s| s["on_agreed_tip"] == false)
    })
    .await;
    let heartbeat = time_until("a heartbeat to say it is not synced", || async {
        heartbeat_says_synced(&proxy, &kb).await == Some(false)
    })
    .await;
    // It still answers from its index, at its last tip.
    let api = on_b.api();
    assert_eq!(
        api.get_text("/blocks/tip/hash").await.unwrap(),
        hash.to_string()
    );
    let utxos = api
        .get_json(&format!("/address/{}/utxo", a.miner))
        .await
        .unwrap();
    assert!(!utxos.as_array().unwrap().is_empty());

    // The chain moves on: the others serve it, the server without a node is skipped.
    a.pay_and_mine().await;
    let tip = a.node.tip().await.unwrap();
    proxy.wait_serving(&[ka, kc], Some(tip)).await;
    assert!(
        traffic.wait_answered(100, PATIENCE).await,
        "traffic stopped"
    );
    // Skipped, not punished.
    assert!(proxy.incidents_of(&kb).await.is_empty());
    let entry = proxy.entry(&kb).await.expect("still listed");
    assert_eq!(entry.status, ServerStatus::Admitted, "{entry:?}");
    assert_eq!((entry.warnings, entry.exclusions), (0, 0));

    let down = killed.elapsed();
    let restarted = Instant::now();
    b.restart().await.unwrap();
    b.connect_to(&a.node).await.unwrap();
    b.sync_with(&a.node).await.unwrap();
    let node_back = restarted.elapsed();
    time_until("the server to index what it missed", || async {
        info_at(&on_b.url).await.is_some_and(|info| {
            info.index.synced && (info.height, info.tip_hash) == (u64::from(tip.0), tip.1)
        })
    })
    .await;
    let synced = restarted.elapsed();
    proxy.wait_serving(&[ka, kb, kc], Some(tip)).await;
    let served = restarted.elapsed();
    let heartbeat_back = time_until("a heartbeat to say it is synced again", || async {
        heartbeat_says_synced(&proxy, &kb).await == Some(true)
    })
    .await;
    let report = traffic.finish().await;
    report.assert_no_failures("node kill");
    figures(
        "node-kill9",
        &[
            ("failed", report.failures.len().to_string()),
            ("answered", report.answered.to_string()),
            ("info_says_unsynced_ms", ms(reported)),
            ("stop_relaying_ms", ms(reported + stopped)),
            (
                "heartbeat_says_unsynced_ms",
                ms(reported + stopped + heartbeat),
            ),
            ("node_down_ms", ms(down)),
            ("node_restart_ms", ms(node_back)),
            ("restart_to_synced_ms", ms(synced)),
            ("restart_to_served_ms", ms(served)),
            (
                "restart_to_heartbeat_synced_ms",
                ms(served + heartbeat_back),
            ),
            ("slowest_request_ms", ms(report.slowest)),
        ],
    );
    for server in [on_a, on_b, on_c] {
        server.stop().await;
    }
    proxy.stop().await;
}
