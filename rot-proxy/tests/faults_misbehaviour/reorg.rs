//! Reorganisations of the node under wallet traffic: a block holding a wallet's payment is
//! replaced by a longer branch without it, then that branch by one holding it again. The
//! relay follows each new tip, every server tells the same story about the payment (back in
//! the mempool, then confirmed in the new block), and no wallet request fails.

use std::collections::BTreeSet;
use std::time::Instant;

use rot_harness::AddressType;
use rot_harness::ring::*;
use rot_proto::{Hash256, PublicKey};
use serde_json::{Value, json};

use crate::{Forwarded, WALLETS};

/// What `key`'s server says about `path` when asked through a pin.
async fn pinned(proxy: &Proxy, key: &PublicKey, path: &str) -> Value {
    let url = format!("{}/v1/coins/{COIN}/servers/{key}/esplora{path}", proxy.url);
    let (status, _, body) = proxy.get(&url, None).await;
    assert!(status.is_success(), "{path} at {key}: {status} {body}");
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

/// The one answer every server gives to `path`; fails when they differ.
async fn agreed(proxy: &Proxy, keys: &[PublicKey], path: &str) -> Value {
    let mut answers = Vec::new();
    for key in keys {
        answers.push(pinned(proxy, key, path).await);
    }
    let distinct: BTreeSet<String> = answers.iter().map(Value::to_string).collect();
    assert_eq!(
        distinct.len(),
        1,
        "servers disagree on {path}: {distinct:#?}"
    );
    answers.swap_remove(0)
}

/// Waits until every server serves the node's tip and the relay agrees on it; returns how
/// long that took from `since`.
async fn followed(
    proxy: &Proxy,
    node: &Node,
    servers: &[Forwarded],
    keys: &[PublicKey],
    since: Instant,
) -> (u32, Hash256, u128) {
    let tip = node.node.tip().await.unwrap();
    for forwarded in servers {
        forwarded
            .server
            .wait_synced(&node.node, PATIENCE)
            .await
            .unwrap();
    }
    proxy.wait_serving(keys, Some(tip)).await;
    (tip.0, tip.1, since.elapsed().as_millis())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorgs_under_traffic_cost_wallets_nothing_and_servers_agree() {
    let node = Node::funded().await;
    let proxy = Proxy::start(&[]).await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Forwarded::start(&proxy, &node.node).await);
    }
    let keys: Vec<PublicKey> = servers.iter().map(|s| s.key).collect();
    // Two branches from the tip, each switched to in one step as if it came from peers: B
    // (three blocks, the first holding a payment) and E (two empty blocks, mined to another
    // address so they are new blocks). The node starts on B's first block; the rest is
    // hidden by invalidating where it starts.
    let payee = node.wallet.new_address(AddressType::Bech32).await.unwrap();
    let txid = node.wallet.send_to(&payee, 10_000_000).await.unwrap();
    let b = node.node.mine(3, &node.miner).await.unwrap();
    node.node.invalidate_block(&b[0]).await.unwrap();
    let other = node.wallet.new_address(AddressType::Legacy).await.unwrap();
    let mut e = Vec::new();
    for _ in 0..2 {
        let mined: Value = node
            .node
            .call("generateblock", json!([other, []]))
            .await
            .unwrap();
        e.push(serde_json::from_value::<Hash256>(mined["hash"].clone()).unwrap());
    }
    node.node.invalidate_block(&e[0]).await.unwrap();
    node.node.reconsider_block(&b[0]).await.unwrap();
    node.node.invalidate_block(&b[1]).await.unwrap();
    let (height, tip, _) = followed(&proxy, &node, &servers, &keys, Instant::now()).await;
    assert_eq!(tip, b[0]);
    let mut paths = node.wallet_questions();
    paths.extend([
        format!("/tx/{txid}/status"),
        format!("/tx/{txid}"),
        format!("/block-height/{height}"),
    ]);
    let traffic = proxy.wallets(&paths, WALLETS).await;

    // Out: the longer empty branch replaces the payment's block; it is back in the mempool.
    let started = Instant::now();
    node.node.reconsider_block(&e[0]).await.unwrap();
    let (out_height, out_tip, out_ms) = followed(&proxy, &node, &servers, &keys, started).await;
    assert_eq!((out_height, out_tip), (height + 1, e[1]));
    assert!(
        traffic.wait_answered(100, PATIENCE).await,
        "traffic stopped"
    );
    let status = agreed(&proxy, &keys, &format!("/tx/{txid}/status")).await;
    assert_eq!(status, json!({"confirmed": false}));
    let old_block = agreed(&proxy, &keys, &format!("/block/{}/status", b[0])).await;
    assert_eq!(old_block["in_best_chain"], false, "{old_block:#}");
    let at_height = agreed(&proxy, &keys, &format!("/block-height/{height}")).await;
    assert_eq!(at_height, json!(e[0].to_string()));
    let mempool: Vec<Hash256> = node.node.call("getrawmempool", json!([])).await.unwrap();
    assert!(mempool.contains(&txid));

    // In again: the payment's branch, now the longer one, replaces the empty one.
    let started = Instant::now();
    node.node.reconsider_block(&b[1]).await.unwrap();
    let (in_height, in_tip, in_ms) = followed(&proxy, &node, &servers, &keys, started).await;
    assert_eq!((in_height, in_tip), (height + 2, b[2]));
    assert!(
        traffic.wait_answered(100, PATIENCE).await,
        "traffic stopped"
    );
    let status = agreed(&proxy, &keys, &format!("/tx/{txid}/status")).await;
    assert_eq!(status["confirmed"], true, "{status:#}");
    assert_eq!(status["block_hash"], json!(b[0]), "{status:#}");
    assert_eq!(status["block_height"], json!(height), "{status:#}");
    let (_, headers, body) = proxy.relay("/blocks/tip/hash").await;
    assert_eq!(body, in_tip.to_string());
    assert_eq!(
        headers["x-rot-tip"],
        format!("{in_height}:{in_tip}").as_str()
    );

    // A server reorganises under its view's write lock (undo, new branch, mempool), so no
    // request sees a step between: nothing may fail.
    let report = traffic.finish().await;
    eprintln!(
        "faults: reorg: out_depth=1 out_to_followed_ms={out_ms} in_depth=2 \
         in_to_followed_ms={in_ms} answered={} failed={} slowest_ms={} servers_agree=3/3",
        report.answered,
        report.failures.len(),
        report.slowest.as_millis()
    );
    report.assert_no_failures("reorg");
    proxy.stop().await;
}
