//! The Esplora REST API against a REAL litecoind regtest node: every endpoint's answer is
//! checked against what the node itself reports (`getblock`, `getblockheader`,
//! `getrawtransaction`, `gettxout`, `scantxoutset`, `gettransaction`, `getmempoolentry`).

use std::collections::BTreeSet;

use rot_harness::{AddressType, ChainView, Litecoind, sat};
use rot_proto::Hash256;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn block_endpoints_match_the_node() {
    let (node, wallet, miner) = funded_node().await;
    for kind in [AddressType::Legacy, AddressType::Bech32] {
        let address = wallet.new_address(kind).await.unwrap();
        wallet.send_to(&address, 100_000_000).await.unwrap();
    }
    node.mine(2, &miner).await.unwrap();
    let (_server, api) = synced_server(&node).await;

    let info = node.rpc().get_blockchain_info().await.unwrap();
    assert_eq!(
        api.get_text("/blocks/tip/height").await.unwrap(),
        info.blocks.to_string()
    );
    assert_eq!(
        api.get_text("/blocks/tip/hash").await.unwrap(),
        info.best_block_hash.to_string()
    );

    for height in 0..=info.blocks {
        check_block(&api, &node, height).await;
    }
}

#[tokio::test]
async fn outputs_of_every_kind_are_indexed_and_served_as_the_node_reports() {
    // Non-standard scripts are relayed only with -acceptnonstdtxn.
    let node = Litecoind::builder()
        .arg("-acceptnonstdtxn=1")
        .start()
        .await
        .unwrap();
    let (node, wallet, miner) = funded(node).await;
    let rpc = wallet.rpc();

    // Every address type the wallet makes, multisig in P2SH and P2WSH, and a taproot output
    // (the 0.21 wallet pays to witness v1 but cannot make such addresses).
    let mut addresses = Vec::new();
    for kind in [
        AddressType::Legacy,
        AddressType::P2shSegwit,
        AddressType::Bech32,
    ] {
        addresses.push(wallet.new_address(kind).await.unwrap());
    }
    let keys = vec![
        pubkey(&wallet).await,
        pubkey(&wallet).await,
        pubkey(&wallet).await,
    ];
    for kind in ["legacy", "bech32"] {
        let multisig: Value = rpc
            .call("addmultisigaddress", json!([2, keys, "", kind]))
            .await
            .unwrap();
        addresses.push(multisig["address"].as_str().unwrap().to_owned());
    }
    let taproot = "rltc1ptfd95kj6tfd95kj6tfd95kj6tfd95kj6tfd95kj6tfd95kj6tfdqkh7mx9";
    let amounts: serde_json::Map<String, Value> = addresses
        .iter()
        .map(|a| (a.clone(), json!(1.0)))
        .chain([(taproot.to_owned(), json!(0.5))])
        .collect();
    let sendmany: Hash256 = rpc.call("sendmany", json!(["", amounts])).await.unwrap();
    // Keep the wallet from funding the next transactions with these outputs.
    let view = ChainView::load(&node).await.unwrap();
    let paid: Vec<Value> = (view.tx(&sendmany).unwrap().outputs.iter().enumerate())
        .filter(|(_, out)| out.as_ref().unwrap().1 == 100_000_000)
        .map(|(vout, _)| json!({"txid": sendmany, "vout": vout}))
        .collect();
    assert_eq!(paid.len(), addresses.len());
    let _: Value = rpc.call("lockunspent", json!([false, paid])).await.unwrap();

    // OP_RETURN, the way wallets make it.
    let data: String = node
        .call(
            "createrawtransaction",
            json!([[], [{"data": hex::encode("rot-server test data")}]]),
        )
        .await
        .unwrap();
    let op_return = fund_sign_send(&wallet, &data, true).await;

    // Scripts without an address: bare 1-of-2 multisig, P2PK and a non-standard script
    // anyone can spend (OP_TRUE), in a transaction built by hand.
    let key = |k: &str| {
        let k = hex::decode(k).unwrap();
        [vec![k.len() as u8], k].concat()
    };
    let bare_multisig = [vec![0x51], key(&keys[0]), key(&keys[1]), vec![0x52, 0xae]].concat();
    let p2pk = [key(&keys[2]), vec![0xac]].concat();
    let anyone = vec![0x51];
    let custom = fund_sign_send(
        &wallet,
        &unfunded_tx(&[
            (bare_multisig.clone(), 30_000_000),
            (p2pk.clone(), 20_000_000),
            (anyone.clone(), 10_000_000),
        ]),
        true,
    )
    .await;
    node.mine(1, &miner).await.unwrap();

    // Spend one output of each kind in one transaction (the OP_TRUE input needs no signature).
    let view = ChainView::load(&node).await.unwrap();
    let custom_scripts = [&bare_multisig, &p2pk, &anyone].map(hex::encode);
    let mut inputs = paid;
    for (vout, out) in view.tx(&custom).unwrap().outputs.iter().enumerate() {
        if custom_scripts.contains(&out.as_ref().unwrap().0) {
            inputs.push(json!({"txid": custom, "vout": vout}));
        }
    }
    assert_eq!(inputs.len(), 5 + 3);
    let sweep: String = node
        .call("createrawtransaction", json!([inputs, {&miner: 5.59}]))
        .await
        .unwrap();
    fund_sign_send(&wallet, &sweep, false).await;
    node.mine(1, &miner).await.unwrap();
    // And keep transactions in the mempool, one with the same data output as above.
    let pending_data = fund_sign_send(&wallet, &data, true).await;
    let pending = wallet.send_to(&addresses[2], 12_345_678).await.unwrap();

    let (_server, api) = synced_server(&node).await;
    let view = ChainView::load(&node).await.unwrap();
    let (tip, _) = node.tip().await.unwrap();
    let checked_txs: Vec<Hash256> = view
        .txs
        .iter()
        .filter(|tx| tx.block.is_none_or(|(h, _)| h >= tip - 1))
        .map(|tx| tx.txid)
        .collect();
    assert_eq!(checked_txs.len(), 4 + 2 + 2);
    for txid in &checked_txs {
        check_tx(&api, &node, &view, txid).await;
    }
    for txid in [sendmany, op_return, custom, pending, pending_data] {
        let tx = api.get_json(&format!("/tx/{txid}")).await.unwrap();
        assert_eq!(tx["fee"], json!(wallet_fee(&wallet, &txid).await), "{txid}");
    }
    let entry: Value = node
        .call("getmempoolentry", json!([pending]))
        .await
        .unwrap();
    assert_eq!(
        api.get_json(&format!("/tx/{pending}")).await.unwrap()["fee"],
        json!(sat(&entry["fees"]["base"]).unwrap())
    );

    // Every script is indexed: by address where it has one, by script hash always.
    let mut scripts: Vec<(String, Option<String>)> = Vec::new();
    for out in view.tx(&sendmany).unwrap().json["vout"].as_array().unwrap() {
        let spk = &out["scriptPubKey"];
        let address = spk["addresses"][0].as_str().map(str::to_owned);
        scripts.push((spk["hex"].as_str().unwrap().to_owned(), address));
    }
    let data_script = (view.tx(&op_return).unwrap().outputs.iter().flatten())
        .map(|(script, _)| script.clone())
        .find(|script| script.starts_with("6a"))
        .unwrap();
    scripts.push((data_script, None));
    for script in [&bare_multisig, &p2pk, &anyone] {
        scripts.push((hex::encode(script), None));
    }
    let types: BTreeSet<String> = view
        .txs
        .iter()
        .filter(|tx| [sendmany, op_return, custom].contains(&tx.txid))
        .flat_map(|tx| tx.json["vout"].as_array().unwrap().clone())
        .map(|o| esplora_type(o["scriptPubKey"]["type"].as_str().unwrap()).to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "p2pkh",
            "p2sh",
            "v0_p2wpkh",
            "v0_p2wsh",
            "v1_p2tr",
            "op_return",
            "multisig",
            "p2pk",
            "unknown"
        ]
        .map(str::to_owned)
        .into(),
        "the chain holds every output kind"
    );
    for (script, address) in &scripts {
        let history = check_script(&api, &node, &view, script, address.as_deref()).await;
        assert!(!history.is_empty(), "{script} is indexed");
        let base = format!("/scripthash/{}", script_hash(script));
        assert_eq!(full_history(&api, &base).await.1, history, "{base}");
    }
}

#[tokio::test]
async fn address_history_pages_newest_first_with_the_mempool_on_top() {
    let (node, wallet, miner) = funded_node().await;
    let address = wallet.new_address(AddressType::Bech32).await.unwrap();
    // 30 coinbases, then payments, one spend from the address, and two mempool payments
    // that arrive one after the other.
    node.mine(30, &address).await.unwrap();
    for _ in 0..3 {
        wallet.send_to(&address, 50_000_000).await.unwrap();
    }
    node.mine(100, &miner).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    let first_coinbase = view
        .txs
        .iter()
        .find(|tx| tx.block.map(|(h, _)| h) == Some(102))
        .unwrap()
        .txid;
    let spend: String = node
        .call(
            "createrawtransaction",
            json!([[{"txid": first_coinbase, "vout": 0}], {&miner: 49.9999}]),
        )
        .await
        .unwrap();
    fund_sign_send(&wallet, &spend, false).await;
    node.mine(1, &miner).await.unwrap();

    let (server, api) = synced_server(&node).await;
    let first = wallet.send_to(&address, 10_000_000).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();
    let second = wallet.send_to(&address, 20_000_000).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();

    let view = ChainView::load(&node).await.unwrap();
    let script = view.tx(&first).unwrap().json["vout"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scriptPubKey"]["addresses"][0] == json!(address))
        .unwrap()["scriptPubKey"]["hex"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = view.confirmed_history(&script);
    assert!(expected.len() > 25 + 5, "{} confirmed", expected.len());
    for base in [
        format!("/address/{address}"),
        format!("/scripthash/{}", script_hash(&script)),
    ] {
        let (mempool, confirmed) = full_history(&api, &base).await;
        assert_eq!(
            mempool,
            vec![second, first],
            "{base}: newest mempool tx first"
        );
        assert_eq!(confirmed, expected, "{base}: confirmed, newest first");
        let page = txids_of(&api.get_json(&format!("{base}/txs")).await.unwrap());
        assert_eq!(page.len(), 2 + 25);
    }
    check_script(&api, &node, &view, &script, Some(&address)).await;
}

#[tokio::test]
async fn a_mempool_transaction_then_confirmed() {
    let (node, wallet, miner) = funded_node().await;
    let (server, api) = synced_server(&node).await;
    let address = wallet.new_address(AddressType::Legacy).await.unwrap();
    let txid = wallet.send_to(&address, 70_000_000).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();

    let view = ChainView::load(&node).await.unwrap();
    let vout = view
        .tx(&txid)
        .unwrap()
        .outputs
        .iter()
        .position(|o| o.as_ref().is_some_and(|(_, v)| *v == 70_000_000));
    let vout = vout.unwrap() as u32;
    let script = script_of(&view, &txid, vout);
    let base = format!("/address/{address}");
    let stats = api.get_json(&base).await.unwrap();
    assert_eq!(stats["chain_stats"]["tx_count"], json!(0));
    assert_eq!(stats["mempool_stats"]["funded_txo_sum"], json!(70_000_000));
    assert_eq!(
        api.get_json(&format!("{base}/utxo")).await.unwrap(),
        json!([{"txid": txid, "vout": vout, "status": {"confirmed": false}, "value": 70_000_000}])
    );
    assert_eq!(
        txids_of(&api.get_json(&format!("{base}/txs")).await.unwrap()),
        vec![txid]
    );
    let mempool: BTreeSet<Hash256> = node.call("getrawmempool", json!([])).await.unwrap();
    let ours: BTreeSet<Hash256> =
        serde_json::from_value(api.get_json("/mempool/txids").await.unwrap()).unwrap();
    assert_eq!(ours, mempool);
    check_script(&api, &node, &view, &script, Some(&address)).await;
    check_tx(&api, &node, &view, &txid).await;
    // The wallet's input is spent by the mempool transaction.
    let (prev, prev_vout) = view.tx(&txid).unwrap().inputs[0];
    check_tx(&api, &node, &view, &prev).await;
    let spend = api
        .get_json(&format!("/tx/{prev}/outspend/{prev_vout}"))
        .await
        .unwrap();
    assert_eq!(spend["status"], json!({"confirmed": false}));

    node.mine(1, &miner).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    let stats = api.get_json(&base).await.unwrap();
    assert_eq!(stats["chain_stats"]["funded_txo_sum"], json!(70_000_000));
    assert_eq!(stats["mempool_stats"]["tx_count"], json!(0));
    assert_eq!(
        api.get_json(&format!("{base}/txs/mempool")).await.unwrap(),
        json!([])
    );
    check_script(&api, &node, &view, &script, Some(&address)).await;
    check_tx(&api, &node, &view, &txid).await;
    check_tx(&api, &node, &view, &prev).await;
    assert_eq!(api.get_json("/mempool/txids").await.unwrap(), json!([]));
}

#[tokio::test]
async fn a_spend_of_an_output_created_in_the_same_block() {
    let (node, wallet, miner) = funded_node().await;
    let (server, api) = synced_server(&node).await;
    let first = wallet.new_address(AddressType::Bech32).await.unwrap();
    let second = wallet.new_address(AddressType::P2shSegwit).await.unwrap();
    let parent = wallet.send_to(&first, 80_000_000).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    let vout = view
        .tx(&parent)
        .unwrap()
        .outputs
        .iter()
        .position(|o| o.as_ref().is_some_and(|(_, v)| *v == 80_000_000));
    let vout = vout.unwrap() as u32;
    let child: String = node
        .call(
            "createrawtransaction",
            json!([[{"txid": parent, "vout": vout}], {&second: 0.799}]),
        )
        .await
        .unwrap();
    let child = fund_sign_send(&wallet, &child, false).await;
    server.wait_synced(&node, SYNC).await.unwrap();

    let view = ChainView::load(&node).await.unwrap();
    let first_script = script_of(&view, &parent, vout);
    let second_script = script_of(&view, &child, 0);
    for (script, address) in [(&first_script, &first), (&second_script, &second)] {
        check_script(&api, &node, &view, script, Some(address)).await;
    }
    let stats = api.get_json(&format!("/address/{first}")).await.unwrap();
    assert_eq!(stats["mempool_stats"]["spent_txo_count"], json!(1));
    assert_eq!(stats["mempool_stats"]["tx_count"], json!(2));
    check_tx(&api, &node, &view, &parent).await;
    check_tx(&api, &node, &view, &child).await;

    let block = node.mine(1, &miner).await.unwrap()[0];
    server.wait_synced(&node, SYNC).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    assert_eq!(view.tx(&parent).unwrap().block.unwrap().1, block);
    assert_eq!(view.tx(&child).unwrap().block.unwrap().1, block);
    for (script, address) in [(&first_script, &first), (&second_script, &second)] {
        check_script(&api, &node, &view, script, Some(address)).await;
    }
    let stats = api.get_json(&format!("/address/{first}")).await.unwrap();
    assert_eq!(
        stats["chain_stats"],
        json!({"funded_txo_count": 1, "funded_txo_sum": 80_000_000, "spent_txo_count": 1,
               "spent_txo_sum": 80_000_000, "tx_count": 2})
    );
    assert_eq!(
        api.get_json(&format!("/address/{first}/utxo"))
            .await
            .unwrap(),
        json!([])
    );
    check_tx(&api, &node, &view, &parent).await;
    check_tx(&api, &node, &view, &child).await;
}

#[tokio::test]
async fn a_transaction_posted_to_the_api_reaches_the_node() {
    let (node, wallet, _miner) = funded_node().await;
    let (server, api) = synced_server(&node).await;
    let rpc = wallet.rpc();
    let address = wallet.new_address(AddressType::Bech32).await.unwrap();
    let unsigned: String = node
        .call("createrawtransaction", json!([[], {&address: 1.5}]))
        .await
        .unwrap();
    let funded: Value = rpc
        .call("fundrawtransaction", json!([unsigned]))
        .await
        .unwrap();
    let signed: Value = rpc
        .call("signrawtransactionwithwallet", json!([funded["hex"]]))
        .await
        .unwrap();
    let signed_hex = signed["hex"].as_str().unwrap();
    let decoded: Value = node
        .call("decoderawtransaction", json!([signed_hex]))
        .await
        .unwrap();

    let reply = api.post("/tx", signed_hex).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(json!(reply.text()), decoded["txid"]);
    let txid = hash(&decoded["txid"]);
    let mempool: Vec<Hash256> = node.call("getrawmempool", json!([])).await.unwrap();
    assert!(mempool.contains(&txid), "the node has it");
    server.wait_synced(&node, SYNC).await.unwrap();
    assert_eq!(
        api.get_json(&format!("/tx/{txid}/status")).await.unwrap(),
        json!({"confirmed": false})
    );
    let view = ChainView::load(&node).await.unwrap();
    check_tx(&api, &node, &view, &txid).await;

    // A well-formed transaction the node refuses: a second spend of the same input.
    let input = &decoded["vin"][0];
    let conflict: String = node
        .call(
            "createrawtransaction",
            json!([[{"txid": input["txid"], "vout": input["vout"]}], {&address: 0.1}]),
        )
        .await
        .unwrap();
    let conflict: Value = rpc
        .call("signrawtransactionwithwallet", json!([conflict]))
        .await
        .unwrap();
    let conflict_hex = conflict["hex"].as_str().unwrap();
    let node_reason = node
        .call::<Value>("testmempoolaccept", json!([[conflict_hex]]))
        .await
        .unwrap()[0]["reject-reason"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = api.post("/tx", conflict_hex).await.unwrap();
    let body = error_body(&reply, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&node_reason),
        "{body} carries the node's reason {node_reason}"
    );
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_the_shared_error_body() {
    let (node, _wallet, _miner) = funded_node().await;
    let (_server, api) = synced_server(&node).await;
    let coinbase = api
        .get_json(&format!(
            "/block/{}/txids",
            node.rpc().get_block_hash(1).await.unwrap()
        ))
        .await
        .unwrap()[0]
        .as_str()
        .unwrap()
        .to_owned();
    // A valid Litecoin MAINNET address (of an arbitrary key hash).
    let coins = rot_proto::Coins::builtin();
    let mainnet = coins.get("LTC", rot_proto::Network::Main).unwrap();
    let p2pkh = [vec![0x76, 0xa9, 0x14], vec![0x11; 20], vec![0x88, 0xac]].concat();
    let mainnet_address = rot_proto::Address::from_script(mainnet, &p2pkh)
        .unwrap()
        .to_string();
    assert!(mainnet_address.starts_with('L'), "{mainnet_address}");
    let zeros = "0".repeat(64);
    let short = "ab".repeat(31);
    let cases: Vec<(reqwest::Method, String, u16)> = [
        ("GET", "/address/notanaddress".to_owned(), 400),
        ("GET", format!("/address/{mainnet_address}"), 400),
        ("GET", format!("/address/{mainnet_address}/txs"), 400),
        ("GET", format!("/address/{mainnet_address}/utxo"), 400),
        (
            "GET",
            "/address/rltc1qqqqqqqqqqqqq/txs/mempool".to_owned(),
            400,
        ),
        ("GET", "/scripthash/xyz".to_owned(), 400),
        ("GET", format!("/scripthash/{short}/utxo"), 400),
        ("GET", format!("/scripthash/{zeros}/txs/chain/nothex"), 400),
        ("GET", format!("/scripthash/{zeros}/txs/chain/{zeros}"), 404),
        ("GET", "/tx/xyz".to_owned(), 400),
        ("GET", format!("/tx/{short}"), 400),
        ("GET", format!("/tx/{}", "g".repeat(64)), 400),
        ("GET", format!("/tx/{zeros}"), 404),
        ("GET", format!("/tx/{zeros}/hex"), 404),
        ("GET", format!("/tx/{zeros}/raw"), 404),
        ("GET", format!("/tx/{zeros}/status"), 404),
        ("GET", format!("/tx/{zeros}/merkle-proof"), 404),
        ("GET", format!("/tx/{zeros}/outspends"), 404),
        ("GET", format!("/tx/{zeros}/outspend/0"), 404),
        ("GET", format!("/tx/{coinbase}/outspend/2"), 404),
        ("GET", format!("/tx/{coinbase}/outspend/4294967295"), 404),
        ("GET", format!("/tx/{coinbase}/outspend/x"), 400),
        ("GET", format!("/tx/{coinbase}/outspend/99999999999"), 400),
        ("GET", "/block/xyz".to_owned(), 400),
        ("GET", "/block/xyz/header".to_owned(), 400),
        ("GET", "/block/xyz/status".to_owned(), 400),
        ("GET", "/block/xyz/txids".to_owned(), 400),
        ("GET", format!("/block/{zeros}"), 404),
        ("GET", format!("/block/{zeros}/header"), 404),
        ("GET", format!("/block/{zeros}/status"), 404),
        ("GET", format!("/block/{zeros}/txids"), 404),
        ("GET", "/block-height/abc".to_owned(), 400),
        ("GET", "/block-height/-1".to_owned(), 400),
        ("GET", "/block-height/1.5".to_owned(), 400),
        ("GET", "/block-height/99999999999999999999".to_owned(), 400),
        ("GET", "/block-height/4294967295".to_owned(), 404),
        ("GET", "/block-height/102".to_owned(), 404),
        ("GET", "/nope".to_owned(), 404),
        ("GET", "/blocks/tip".to_owned(), 404),
        ("GET", "/rot/v1/nope".to_owned(), 404),
        ("POST", "/blocks/tip/height".to_owned(), 405),
        ("DELETE", format!("/tx/{coinbase}"), 405),
        ("GET", "/tx".to_owned(), 405),
        ("PUT", "/tx".to_owned(), 405),
        ("GET", "/rot/v1/challenge".to_owned(), 400),
        ("GET", "/rot/v1/challenge?nonce=".to_owned(), 400),
        ("GET", "/rot/v1/challenge?nonce=xyz".to_owned(), 400),
        ("GET", format!("/rot/v1/challenge?nonce={short}"), 400),
        (
            "GET",
            format!("/rot/v1/challenge?nonce={}", "AB".repeat(32)),
            400,
        ),
    ]
    .into_iter()
    .map(|(m, p, s)| (m.parse().unwrap(), p, s))
    .collect();
    for (method, path, status) in cases {
        let reply = api.request(method.clone(), &path, None).await.unwrap();
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        error_body(&reply, status);
    }

    for (body, status) in [
        (b"zz".to_vec(), 400),
        (b"".to_vec(), 400),
        (b"00".to_vec(), 400),
        (b"0200000000".to_vec(), 400),
        (vec![0xff, 0xfe], 400),
        (b"a".repeat(5 * 1024 * 1024), 413),
    ] {
        let reply = api.post("/tx", body).await.unwrap();
        error_body(&reply, status);
    }
}

#[tokio::test]
async fn rot_info_and_challenge_are_signed_by_the_server_key() {
    use rot_proto::message::{ChallengeAnswer, Nonce, ServerInfo};
    use rot_proto::signed::Signed;

    let (node, _wallet, _miner) = funded_node().await;
    let (server, api) = synced_server(&node).await;
    let identity =
        rot_proto::Identity::load_or_generate(&server.data_dir.join("identity.key")).unwrap();

    let signed: Signed<ServerInfo> =
        serde_json::from_value(api.get_json("/rot/v1/info").await.unwrap()).unwrap();
    let info = signed.verify().unwrap();
    assert_eq!(info.server_key, identity.public_key());
    assert_eq!(signed.signer().unwrap(), identity.public_key());
    let (height, tip) = node.tip().await.unwrap();
    assert_eq!((info.height, info.tip_hash), (u64::from(height), tip));
    assert_eq!(
        info.genesis_hash,
        node.rpc().get_block_hash(0).await.unwrap()
    );
    assert_eq!(info.coin, "LTC");
    assert_eq!(info.network, rot_proto::Network::Regtest);
    assert!(info.index.synced);
    assert_eq!(info.index.indexed_height, u64::from(height));

    let nonce = Nonce::random().unwrap();
    let signed: Signed<ChallengeAnswer> = serde_json::from_value(
        api.get_json(&format!("/rot/v1/challenge?nonce={nonce}"))
            .await
            .unwrap(),
    )
    .unwrap();
    let answer = signed.verify().unwrap();
    assert_eq!(answer.nonce, nonce);
    assert_eq!(signed.signer().unwrap(), identity.public_key());
}

#[tokio::test]
async fn fee_estimates_and_mempool_txids_match_the_node() {
    let (node, wallet, miner) = funded_node().await;
    // History for the node's estimator: transactions confirmed over ten blocks (the node
    // estimates after nine such rounds).
    for _ in 0..10 {
        for _ in 0..3 {
            let address = wallet.new_address(AddressType::Bech32).await.unwrap();
            wallet.send_to(&address, 10_000_000).await.unwrap();
        }
        node.mine(1, &miner).await.unwrap();
    }
    for _ in 0..3 {
        let address = wallet.new_address(AddressType::Bech32).await.unwrap();
        wallet.send_to(&address, 10_000_000).await.unwrap();
    }
    let (_server, api) = synced_server(&node).await;

    let estimates = api.get_json("/fee-estimates").await.unwrap();
    let estimates = estimates.as_object().unwrap();
    let mut expected = serde_json::Map::new();
    for target in rot_server::rpc::ESPLORA_FEE_TARGETS {
        let estimate: Value = node
            .call("estimatesmartfee", json!([target]))
            .await
            .unwrap();
        if let Some(rate) = estimate["feerate"].as_f64() {
            expected.insert(target.to_string(), json!(rate * 1e5));
        }
    }
    assert!(!expected.is_empty(), "the node has estimates");
    assert_eq!(
        estimates.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>()
    );
    for (target, rate) in &expected {
        let ours = estimates[target].as_f64().unwrap();
        assert!((ours - rate.as_f64().unwrap()).abs() < 1e-9, "{target}");
    }

    let mempool: BTreeSet<Hash256> = node.call("getrawmempool", json!([])).await.unwrap();
    assert_eq!(mempool.len(), 3);
    let ours: BTreeSet<Hash256> =
        serde_json::from_value(api.get_json("/mempool/txids").await.unwrap()).unwrap();
    assert_eq!(ours, mempool);
}
