//! Litecoin's MWEB: blocks past activation carry extension data and end with the HogEx
//! (integrating) transaction; peg-ins, MWEB-only transfers and peg-outs pass through the
//! mempool. The server must index through all of it and serve the HogEx as the node does.

use std::collections::BTreeSet;

use rot_harness::{AddressType, ChainView, MWEB_ACTIVATION_HEIGHT};
use rot_proto::Hash256;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn mweb_blocks_are_indexed_and_the_hogex_is_served() {
    let (node, wallet, miner) = funded_node().await;
    let rpc = wallet.rpc();
    let (server, api) = synced_server(&node).await;
    let pegin = node
        .activate_mweb(&wallet, 500_000_000, &miner)
        .await
        .unwrap();

    // An MWEB-to-MWEB transfer and a peg-out, paid from MWEB coins only (canonical coins
    // locked), then a peg-in and a canonical payment; all wait in the mempool first.
    let canonical: Vec<Value> = rpc.call("listunspent", json!([])).await.unwrap();
    let canonical: Vec<Value> = canonical
        .iter()
        .filter(|u| !u["address"].as_str().unwrap_or("").starts_with("tmweb"))
        .map(|u| json!({"txid": u["txid"], "vout": u["vout"]}))
        .collect();
    let _: Value = rpc
        .call("lockunspent", json!([false, canonical]))
        .await
        .unwrap();
    let stealth = wallet.new_address(AddressType::Mweb).await.unwrap();
    let transfer = wallet.send_to(&stealth, 100_000_000).await.unwrap();
    let pegout_address = wallet.new_address(AddressType::Bech32).await.unwrap();
    let pegout = wallet.send_to(&pegout_address, 150_000_000).await.unwrap();
    let _: Value = rpc.call("lockunspent", json!([true])).await.unwrap();
    let stealth = wallet.new_address(AddressType::Mweb).await.unwrap();
    let second_pegin = wallet.send_to(&stealth, 10_000_000_000).await.unwrap();
    let payee = wallet.new_address(AddressType::P2shSegwit).await.unwrap();
    let payment = wallet.send_to(&payee, 300_000_000).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    for txid in [transfer, pegout, second_pegin, payment] {
        assert!(view.tx(&txid).unwrap().block.is_none(), "{txid} waits");
        check_tx(&api, &node, &view, &txid).await;
        let tx = api.get_json(&format!("/tx/{txid}")).await.unwrap();
        assert_eq!(tx["status"], json!({"confirmed": false}));
        assert_eq!(
            json!(api.get_text(&format!("/tx/{txid}/hex")).await.unwrap()),
            view.tx(&txid).unwrap().json["hex"]
        );
    }

    node.mine(2, &miner).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    let (tip, _) = node.tip().await.unwrap();
    assert_eq!(tip, MWEB_ACTIVATION_HEIGHT + 2);
    for height in MWEB_ACTIVATION_HEIGHT - 2..=tip {
        check_block(&api, &node, height).await;
    }

    // Every transaction of the MWEB blocks, the HogEx (last in each) included.
    let mut hogexes = Vec::new();
    for height in MWEB_ACTIVATION_HEIGHT..=tip {
        let block: Value = node
            .call("getblock", json!([view.block_hashes[height as usize], 1]))
            .await
            .unwrap();
        assert!(
            block.get("mweb").is_some(),
            "block {height} carries MWEB data"
        );
        let txids: Vec<Hash256> = serde_json::from_value(block["tx"].clone()).unwrap();
        for txid in &txids {
            check_tx(&api, &node, &view, txid).await;
        }
        hogexes.push(*txids.last().unwrap());
    }
    for hogex in &hogexes {
        let tx = api.get_json(&format!("/tx/{hogex}")).await.unwrap();
        let script = tx["vout"][0]["scriptpubkey"].as_str().unwrap();
        // The HogEx's first output is the HogAddr: witness version 8 (OP_8, 32-byte push).
        assert!(script.starts_with("5820"), "{hogex}: {tx}");
    }
    let included: BTreeSet<Hash256> = view
        .txs
        .iter()
        .filter(|tx| tx.block.is_some())
        .map(|tx| tx.txid)
        .collect();
    for txid in [pegin, second_pegin, payment] {
        assert!(included.contains(&txid), "{txid} confirmed in a block");
    }

    // The peg-out lands on the canonical chain as a HogEx output.
    let pegout_script = view
        .txs
        .iter()
        .flat_map(|tx| tx.json["vout"].as_array().unwrap().clone())
        .find(|o| o["scriptPubKey"]["addresses"][0] == json!(pegout_address))
        .unwrap()["scriptPubKey"]["hex"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = check_script(&api, &node, &view, &pegout_script, Some(&pegout_address)).await;
    assert!(
        history.iter().any(|txid| hogexes.contains(txid)),
        "peg-out paid by a HogEx: {history:?}"
    );
    let payee_script = script_of(
        &view,
        &payment,
        view.tx(&payment)
            .unwrap()
            .outputs
            .iter()
            .position(|o| o.as_ref().is_some_and(|(_, v)| *v == 300_000_000))
            .unwrap() as u32,
    );
    check_script(&api, &node, &view, &payee_script, Some(&payee)).await;
}
