//! The same questions to a native and an electrum rot-server on the same chain get the same
//! answers, endpoint by endpoint: with confirmed and mempool transactions, after a
//! broadcast through the electrum server, and after a reorganisation. What the Electrum
//! protocol cannot answer is a 501 with the error body, and left out of the capabilities.

use std::time::Duration;

use rot_harness::{AddressType, Litecoind};
use rot_proto::conformance::{Conformance, Options, Outcome, Verdict, check};
use rot_proto::{Coins, Hash256, Network};
use serde_json::{Value, json};

use crate::common::{
    Addresses, Pair, WAIT, electrum_unsupported, electrumx, get, json_of, node, pair, same_answer,
    same_answers, script_hash, signed_spend, wallet_activity,
};

const UNKNOWN: &str = "00000000000000000000000000000000000000000000000000000000000000aa";

#[tokio::test]
async fn every_endpoint_answers_as_the_native_backend_also_after_a_reorg() {
    let (node, wallet) = node().await;
    let mut addresses = wallet_activity(&node, &wallet).await;
    let electrumx = electrumx().start(&node).await.unwrap();
    let pair = pair(&node, &electrumx.url()).await;
    pair.wait_for_node(&node).await;
    // Both mempool transactions touch the legacy address.
    let mempool_path = format!("/address/{}/txs/mempool", addresses.legacy);
    let mempool: Vec<Hash256> = node.rpc().call("getrawmempool", json!([])).await.unwrap();
    settle(&pair, &mempool_path, &mempool).await;

    let answered = compare_everything(&node, &pair, &addresses).await;
    assert!(answered > 120, "only {answered} paths answered 200");
    unsupported_calls_are_501_and_not_advertised(&node, &pair).await;

    // A broadcast through the electrum server reaches the node; a bad one is refused alike.
    let raw = signed_spend(&wallet, &addresses.bech32, &addresses.legacy, 1_000_000).await;
    let (status, body) = post(&format!("{}/tx", pair.electrum.url), &raw).await;
    assert_eq!(status, 200, "{body}");
    let txid: Hash256 = body.parse().unwrap();
    let mempool: Vec<Hash256> = node.rpc().call("getrawmempool", json!([])).await.unwrap();
    assert!(mempool.contains(&txid));
    settle(&pair, &mempool_path, &[txid]).await;
    same_answer(&pair, &format!("/tx/{txid}")).await;
    let mut bad = hex::decode(&raw).unwrap();
    let prevout = if bad[4] == 0 { 7 } else { 5 };
    bad[prevout] ^= 0xff;
    for server in [&pair.native, &pair.electrum] {
        let (status, body) = post(&format!("{}/tx", server.url), &hex::encode(&bad)).await;
        assert_eq!(status, 400, "{}: {body}", server.url);
    }

    // Confirm everything in block X, then replace X by two blocks paying elsewhere.
    let x = node.mine(1, &addresses.miner).await.unwrap()[0];
    pair.wait_for_node(&node).await;
    let x_txids = block_txids(&node, &x).await;
    node.invalidate_block(&x).await.unwrap();
    addresses.miner = wallet.new_address(AddressType::Legacy).await.unwrap();
    node.mine(2, &addresses.miner).await.unwrap();
    pair.wait_for_node(&node).await;
    let paid = wallet.send_to(&addresses.bech32, 7_000_000).await.unwrap();
    let path = format!("/address/{}/txs/mempool", addresses.bech32);
    settle(&pair, &path, &[paid]).await;

    let answered = compare_everything(&node, &pair, &addresses).await;
    assert!(answered > 120, "only {answered} paths answered 200");
    let status = json_of(&format!("{}/block/{x}/status", pair.electrum.url)).await;
    assert_eq!(status, json!({"in_best_chain": false}));
    same_answer(&pair, &format!("/block/{x}/status")).await;
    assert_eq!(same_answer(&pair, &format!("/block/{x}")).await, 404);
    // X's coinbase is gone; its other transactions are in the new chain.
    assert_eq!(
        same_answer(&pair, &format!("/tx/{}", x_txids[0])).await,
        404
    );
    for txid in &x_txids[1..] {
        assert_eq!(same_answer(&pair, &format!("/tx/{txid}/status")).await, 200);
        same_answer(&pair, &format!("/tx/{txid}/merkle-proof")).await;
    }
    conformance_passes(&pair, &addresses).await;
}

/// The conformance suite proxies run passes on both; spent-by is skipped on the electrum
/// server because it does not offer it.
async fn conformance_passes(pair: &Pair, addresses: &Addresses) {
    let coins = Coins::builtin();
    let profile = coins.get("LTC", Network::Regtest).unwrap().clone();
    let suite = Conformance::new(reqwest::Client::new(), profile);
    let options = Options {
        addresses: vec![addresses.legacy.clone(), addresses.bech32.clone()],
        ..Options::default()
    };
    for (server, spent_by) in [
        (&pair.native, Outcome::Pass),
        (&pair.electrum, Outcome::Skip),
    ] {
        let report = suite.run(&server.url, &options).await.unwrap();
        assert_eq!(
            report.verdict(),
            Verdict::Pass,
            "{}: {report:#?}",
            server.url
        );
        for result in &report.checks {
            let expected = if result.name == check::SPENT_BY {
                spent_by
            } else {
                Outcome::Pass
            };
            assert_eq!(result.outcome, expected, "{}: {result:#?}", server.url);
        }
    }
}

/// Compares every endpoint over the chain's blocks, transactions and addresses; returns how
/// many answered 200.
async fn compare_everything(node: &Litecoind, pair: &Pair, addresses: &Addresses) -> usize {
    let (tip, _) = node.tip().await.unwrap();
    let mut paths = vec![
        "/blocks/tip/height".to_owned(),
        "/blocks/tip/hash".to_owned(),
        "/fee-estimates".to_owned(),
        format!("/block-height/{}", tip + 1),
        "/block-height/x".to_owned(),
        format!("/block/{UNKNOWN}"),
        format!("/block/{UNKNOWN}/status"),
        format!("/block/{UNKNOWN}/header"),
        format!("/block/{UNKNOWN}/txids"),
        "/block/nothex".to_owned(),
        format!("/tx/{UNKNOWN}"),
        format!("/tx/{UNKNOWN}/hex"),
        format!("/tx/{UNKNOWN}/status"),
        format!("/tx/{UNKNOWN}/merkle-proof"),
        "/tx/nothex/status".to_owned(),
        "/address/nonsense".to_owned(),
        "/scripthash/nothex/utxo".to_owned(),
    ];
    let mut txids = Vec::new();
    for height in [0, 1, 50, 101, 102, 103, tip - 1, tip] {
        let hash: Hash256 = node
            .rpc()
            .call("getblockhash", json!([height]))
            .await
            .unwrap();
        paths.push(format!("/block-height/{height}"));
        for suffix in ["/header", "/status", "/txids"] {
            paths.push(format!("/block/{hash}{suffix}"));
        }
        if height > 0 {
            paths.push(format!("/block/{hash}"));
            txids.extend(block_txids(node, &hash).await);
        } else {
            // Electrum servers do not serve the genesis coinbase, so its block's size.
            electrum_unsupported(pair, &format!("/block/{hash}")).await;
        }
    }
    let mempool: Vec<Hash256> = node.rpc().call("getrawmempool", json!([])).await.unwrap();
    assert!(!mempool.is_empty());
    txids.extend(mempool);
    txids.sort_unstable();
    txids.dedup();
    for txid in &txids {
        for suffix in ["", "/hex", "/raw", "/status", "/merkle-proof"] {
            paths.push(format!("/tx/{txid}{suffix}"));
        }
    }
    for address in [
        &addresses.miner,
        &addresses.legacy,
        &addresses.p2sh,
        &addresses.bech32,
    ] {
        for suffix in ["", "/txs", "/txs/chain", "/txs/mempool", "/utxo"] {
            paths.push(format!("/address/{address}{suffix}"));
        }
        let hash = script_hash(address);
        for suffix in ["", "/txs", "/txs/chain", "/txs/mempool", "/utxo"] {
            paths.push(format!("/scripthash/{hash}{suffix}"));
        }
        // Paging: after the last of the first page, and after a transaction not the
        // address's own (a coinbase of block 50).
        let chain = json_of(&format!("{}/address/{address}/txs/chain", pair.native.url)).await;
        if let Some(last) = chain.as_array().unwrap().last() {
            let last = last["txid"].as_str().unwrap();
            paths.push(format!("/address/{address}/txs/chain/{last}"));
        }
        let block_50: Hash256 = node.rpc().call("getblockhash", json!([50])).await.unwrap();
        let coinbase_50 = block_txids(node, &block_50).await[0];
        paths.push(format!("/address/{address}/txs/chain/{coinbase_50}"));
    }
    same_answers(pair, &paths)
        .await
        .into_iter()
        .filter(|status| *status == 200)
        .count()
}

/// Spent-by and the mempool list are 501 with the error body; info leaves them out.
async fn unsupported_calls_are_501_and_not_advertised(node: &Litecoind, pair: &Pair) {
    let hash: Hash256 = node.rpc().call("getblockhash", json!([102])).await.unwrap();
    let txid = block_txids(node, &hash).await[1];
    electrum_unsupported(pair, &format!("/tx/{txid}/outspends")).await;
    electrum_unsupported(pair, &format!("/tx/{txid}/outspend/0")).await;
    electrum_unsupported(pair, "/mempool/txids").await;

    let info = json_of(&format!("{}/rot/v1/info", pair.electrum.url)).await;
    let body = &info["body"];
    assert_eq!(body["backend"], json!("electrum"), "{info}");
    let capabilities: Vec<&str> = body["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for offered in ["esplora", "fee-estimates", "broadcast", "merkle-proof"] {
        assert!(capabilities.contains(&offered), "{capabilities:?}");
    }
    for missing in ["spent-by", "mempool"] {
        assert!(!capabilities.contains(&missing), "{capabilities:?}");
    }
    let (height, _) = node.tip().await.unwrap();
    assert_eq!(body["height"], json!(height));
    assert_eq!(body["index"]["synced"], json!(true), "{info}");
    let native = json_of(&format!("{}/rot/v1/info", pair.native.url)).await;
    assert_eq!(body["tip_hash"], native["body"]["tip_hash"]);
    assert_eq!(body["genesis_hash"], native["body"]["genesis_hash"]);
}

/// Waits until both servers' answers to `path` name every one of `txids` (ElectrumX and the
/// native backend notice mempool changes each at their own pace), then compares them.
async fn settle(pair: &Pair, path: &str, txids: &[Hash256]) {
    let started = tokio::time::Instant::now();
    for server in [&pair.native, &pair.electrum] {
        loop {
            let (_, body) = get(&format!("{}{path}", server.url)).await;
            let text = format!("{body:?}");
            if txids.iter().all(|txid| text.contains(&txid.to_string())) {
                break;
            }
            assert!(
                started.elapsed() < WAIT,
                "{}{path} never named {txids:?}",
                server.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    same_answer(pair, path).await;
}

async fn block_txids(node: &Litecoind, hash: &Hash256) -> Vec<Hash256> {
    let block: Value = node.rpc().call("getblock", json!([hash, 1])).await.unwrap();
    block["tx"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect()
}

async fn post(url: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap().trim().to_owned(),
    )
}
