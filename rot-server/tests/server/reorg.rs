//! Reorganisations: the node leaves blocks the server has indexed for a competing chain; the
//! server must follow, serve the stale blocks' transactions as the node now sees them, and
//! end with exactly the index a fresh server builds of the new chain.

use std::collections::BTreeSet;

use rot_harness::{AddressType, ChainView, RotServer, fresh_index, index_dump};
use rot_proto::Hash256;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn a_reorg_is_followed_and_leaves_the_index_a_fresh_server_builds() {
    let (node, wallet, miner) = funded_node().await;
    let data_dir = tempfile::tempdir().unwrap();
    let server = RotServer::start_with(&node, Some(data_dir.path().to_owned()), &[])
        .await
        .unwrap();
    let api = server.api();
    let payee = wallet.new_address(AddressType::Legacy).await.unwrap();

    // The branch that goes stale: three blocks with payments, one spending another.
    let first = wallet.send_to(&payee, 100_000_000).await.unwrap();
    let mut stale = node.mine(1, &miner).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    let vout = (view.tx(&first).unwrap().outputs.iter())
        .position(|o| o.as_ref().is_some_and(|(_, v)| *v == 100_000_000))
        .unwrap();
    let spend: String = node
        .call(
            "createrawtransaction",
            json!([[{"txid": first, "vout": vout}], {&miner: 0.9999}]),
        )
        .await
        .unwrap();
    let spend = fund_sign_send(&wallet, &spend, false).await;
    let second = wallet.send_to(&payee, 200_000_000).await.unwrap();
    stale.extend(node.mine(2, &miner).await.unwrap());
    server.wait_synced(&node, SYNC).await.unwrap();
    // A second server indexes the stale branch and is down while the node reorganises.
    let offline_dir = tempfile::tempdir().unwrap();
    let offline = RotServer::start_with(&node, Some(offline_dir.path().to_owned()), &[])
        .await
        .unwrap();
    offline.wait_synced(&node, SYNC).await.unwrap();
    offline.stop().await;
    let payee_script = script_of(&view, &first, vout as u32);
    let stale_view = ChainView::load(&node).await.unwrap();
    let stale_txs: Vec<Hash256> = (stale_view.txs.iter())
        .filter(|tx| tx.block.is_some_and(|(_, b)| stale.contains(&b)))
        .map(|tx| tx.txid)
        .collect();
    assert_eq!(stale_txs.len(), 3 + 3);
    let before = api.get_json(&format!("/address/{payee}")).await.unwrap();
    assert_eq!(before["chain_stats"]["tx_count"], json!(3));

    // The competing chain, mined to another address so its blocks differ: the first block
    // takes back one stale payment, the others none, so the rest return to the mempool.
    node.invalidate_block(&stale[0]).await.unwrap();
    let other = wallet.new_address(AddressType::Bech32).await.unwrap();
    let _: Value = node
        .call("generateblock", json!([other, [first.to_string()]]))
        .await
        .unwrap();
    for _ in 0..3 {
        let _: Value = node
            .call("generateblock", json!([other, []]))
            .await
            .unwrap();
    }
    server.wait_synced(&node, SYNC).await.unwrap();

    let view = ChainView::load(&node).await.unwrap();
    let (tip, tip_hash) = node.tip().await.unwrap();
    assert_eq!(tip, 101 + 4);
    assert_eq!(
        api.get_text("/blocks/tip/hash").await.unwrap(),
        tip_hash.to_string()
    );
    for height in 100..=tip {
        check_block(&api, &node, height).await;
    }
    for block in &stale {
        let header: Value = node.call("getblockheader", json!([block])).await.unwrap();
        assert_eq!(
            header["confirmations"],
            json!(-1),
            "the node calls it stale"
        );
        assert_eq!(
            api.get_json(&format!("/block/{block}/status"))
                .await
                .unwrap(),
            json!({"in_best_chain": false})
        );
        for path in ["", "/txids", "/header"] {
            let reply = api.get(&format!("/block/{block}{path}")).await.unwrap();
            error_body(&reply, 404);
        }
    }
    // The node takes the stale payments back into its mempool, except those it no longer
    // accepts there (a spend of a coinbase that is immature again at the lower height).
    let mempool: BTreeSet<Hash256> = node.call("getrawmempool", json!([])).await.unwrap();
    assert!(mempool.contains(&spend), "{mempool:?}");
    for txid in &stale_txs {
        match view.tx(txid) {
            // Back in the mempool or confirmed again in the new chain: served as the node has it.
            Some(_) => check_tx(&api, &node, &view, txid).await,
            // The stale coinbases: gone for the node, gone for us.
            None => {
                let utxo: Value = node.call("gettxout", json!([txid, 0, true])).await.unwrap();
                assert!(utxo.is_null());
                for path in ["", "/status", "/hex", "/outspends"] {
                    let reply = api.get(&format!("/tx/{txid}{path}")).await.unwrap();
                    error_body(&reply, 404);
                }
            }
        }
    }
    assert_eq!(
        view.tx(&first).unwrap().block.map(|(h, _)| h),
        Some(102),
        "taken back"
    );
    check_script(&api, &node, &view, &payee_script, Some(&payee)).await;
    let after = api.get_json(&format!("/address/{payee}")).await.unwrap();
    assert_eq!(after["chain_stats"]["tx_count"], json!(1));
    assert_eq!(
        after["mempool_stats"]["tx_count"],
        json!(1 + u8::from(mempool.contains(&second)))
    );

    server.stop().await;
    let fresh = fresh_index(&node, SYNC).await.unwrap();
    assert_eq!(
        index_dump(data_dir.path()).unwrap(),
        fresh,
        "followed the reorg live"
    );
    let restarted = RotServer::start_with(&node, Some(offline_dir.path().to_owned()), &[])
        .await
        .unwrap();
    restarted.wait_synced(&node, SYNC).await.unwrap();
    restarted.stop().await;
    assert_eq!(
        index_dump(offline_dir.path()).unwrap(),
        fresh,
        "found the fork at start"
    );
}
