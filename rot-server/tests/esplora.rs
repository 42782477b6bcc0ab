//! The Esplora REST API of rot-server against a REAL litecoind regtest node: every endpoint's
//! answer is checked against what the node itself reports (`getblock`, `getblockheader`,
//! `getrawtransaction`, `gettxout`, `scantxoutset`, `gettransaction`, `getmempoolentry`).
//!
//! Each test builds its own small chain on its own node, so tests run in parallel and a
//! failure points at one behaviour.

use std::collections::BTreeSet;
use std::time::Duration;

use rot_harness::{AddressType, ApiClient, ChainView, Litecoind, RotServer, Wallet, sat};
use rot_proto::{Hash256, MerkleProof, ScriptHash};
use serde_json::{Value, json};

/// Bound on the server catching up with the node after a change.
const SYNC: Duration = Duration::from_secs(30);

/// A node with a wallet holding mature coins (101 blocks mined to it) and its miner address.
async fn funded_node() -> (Litecoind, Wallet, String) {
    funded(Litecoind::start().await.unwrap()).await
}

/// `node` with a wallet holding mature coins, and its miner address.
async fn funded(node: Litecoind) -> (Litecoind, Wallet, String) {
    let wallet = node.create_wallet("test").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    (node, wallet, miner)
}

/// A synced server over `node`.
async fn synced_server(node: &Litecoind) -> (RotServer, ApiClient) {
    let server = RotServer::start(node).await.unwrap();
    server.wait_synced(node, SYNC).await.unwrap();
    let api = server.api();
    (server, api)
}

/// Esplora's name for the node's output type.
fn esplora_type(node_type: &str) -> &'static str {
    match node_type {
        "pubkeyhash" => "p2pkh",
        "scripthash" => "p2sh",
        "witness_v0_keyhash" => "v0_p2wpkh",
        "witness_v0_scripthash" => "v0_p2wsh",
        "witness_v1_taproot" => "v1_p2tr",
        "nulldata" => "op_return",
        "multisig" => "multisig",
        "pubkey" => "p2pk",
        _ => "unknown",
    }
}

/// Whether the node's output type has an address (bare multisig and P2PK list their keys'
/// addresses under `addresses`, which are not the output's address).
fn has_address(node_type: &str) -> bool {
    matches!(
        node_type,
        "pubkeyhash"
            | "scripthash"
            | "witness_v0_keyhash"
            | "witness_v0_scripthash"
            | "witness_v1_taproot"
    )
}

fn hash(value: &Value) -> Hash256 {
    serde_json::from_value(value.clone()).unwrap()
}

fn script_hash(script_hex: &str) -> String {
    ScriptHash::of(&hex::decode(script_hex).unwrap()).to_string()
}

/// An Esplora output object checked against the node's `vout` entry.
fn check_output(ours: &Value, node_out: &Value, what: &str) {
    let spk = &node_out["scriptPubKey"];
    assert_eq!(ours["scriptpubkey"], spk["hex"], "{what}: script");
    assert_eq!(
        ours["value"],
        json!(sat(&node_out["value"]).unwrap()),
        "{what}: value"
    );
    let node_type = spk["type"].as_str().unwrap();
    assert_eq!(
        ours["scriptpubkey_type"],
        json!(esplora_type(node_type)),
        "{what}: type"
    );
    if has_address(node_type) {
        let address = spk
            .get("address")
            .cloned()
            .unwrap_or_else(|| spk["addresses"][0].clone());
        assert_eq!(ours["scriptpubkey_address"], address, "{what}: address");
    } else {
        assert!(ours.get("scriptpubkey_address").is_none(), "{what}: {ours}");
    }
}

/// The status the node gives a transaction, in Esplora's shape.
async fn node_status(node: &Litecoind, view: &ChainView, txid: &Hash256) -> Value {
    match view.tx(txid).unwrap().block {
        Some((height, block)) => {
            let header: Value = node.call("getblockheader", json!([block])).await.unwrap();
            json!({"confirmed": true, "block_height": height, "block_hash": block, "block_time": header["time"]})
        }
        None => json!({"confirmed": false}),
    }
}

/// Checks every per-transaction endpoint for `txid` against the node.
async fn check_tx(api: &ApiClient, node: &Litecoind, view: &ChainView, txid: &Hash256) {
    let node_tx = view.tx(txid).unwrap();
    let n = &node_tx.json;
    let tx = api.get_json(&format!("/tx/{txid}")).await.unwrap();
    assert_eq!(tx["txid"], json!(txid));
    assert_eq!(tx["version"], n["version"], "{txid} version");
    assert_eq!(tx["locktime"], n["locktime"], "{txid} locktime");
    assert_eq!(tx["size"], n["size"], "{txid} size");
    assert_eq!(tx["weight"], n["weight"], "{txid} weight");

    let node_vin: Vec<&Value> = n["vin"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ismweb"] != json!(true))
        .collect();
    let vin = tx["vin"].as_array().unwrap();
    assert_eq!(vin.len(), node_vin.len(), "{txid} input count");
    let mut input_sum = 0;
    for (i, (ours, theirs)) in vin.iter().zip(&node_vin).enumerate() {
        let what = format!("{txid} vin {i}");
        assert_eq!(ours["sequence"], theirs["sequence"], "{what}");
        assert_eq!(
            ours["witness"],
            theirs.get("txinwitness").cloned().unwrap_or(json!([])),
            "{what}: witness"
        );
        if let Some(coinbase) = theirs.get("coinbase") {
            assert_eq!(ours["is_coinbase"], json!(true), "{what}");
            assert_eq!(ours["scriptsig"], *coinbase, "{what}: coinbase script");
            assert_eq!(ours["prevout"], Value::Null, "{what}");
            continue;
        }
        assert_eq!(ours["is_coinbase"], json!(false), "{what}");
        assert_eq!(ours["txid"], theirs["txid"], "{what}");
        assert_eq!(ours["vout"], theirs["vout"], "{what}");
        assert_eq!(ours["scriptsig"], theirs["scriptSig"]["hex"], "{what}");
        // The prevout as the node reports the funding transaction's output.
        let prev_txid = hash(&theirs["txid"]);
        let prev_vout = theirs["vout"].as_u64().unwrap() as usize;
        let prev = &view.tx(&prev_txid).unwrap().json;
        let prev_out = prev["vout"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["n"] == json!(prev_vout) && o["ismweb"] != json!(true))
            .unwrap();
        check_output(&ours["prevout"], prev_out, &format!("{what} prevout"));
        input_sum += sat(&prev_out["value"]).unwrap();
    }

    let node_vout: Vec<&Value> = n["vout"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["ismweb"] != json!(true))
        .collect();
    let vout = tx["vout"].as_array().unwrap();
    assert_eq!(vout.len(), node_vout.len(), "{txid} output count");
    let mut output_sum = 0;
    for (i, (ours, theirs)) in vout.iter().zip(&node_vout).enumerate() {
        check_output(ours, theirs, &format!("{txid} vout {i}"));
        output_sum += sat(&theirs["value"]).unwrap();
    }
    let coinbase =
        node_tx.inputs.is_empty() && node_vin.iter().any(|i| i.get("coinbase").is_some());
    let fee = if coinbase { 0 } else { input_sum - output_sum };
    assert_eq!(tx["fee"], json!(fee), "{txid} fee");

    let status = node_status(node, view, txid).await;
    assert_eq!(tx["status"], status, "{txid} status");
    assert_eq!(
        api.get_json(&format!("/tx/{txid}/status")).await.unwrap(),
        status
    );

    let hex_reply = api.get_ok(&format!("/tx/{txid}/hex")).await.unwrap();
    assert_eq!(json!(hex_reply.text()), n["hex"], "{txid} hex");
    let raw = api.get_ok(&format!("/tx/{txid}/raw")).await.unwrap();
    assert_eq!(
        raw.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(hex::encode(&raw.body), n["hex"].as_str().unwrap());

    let proof = api.get(&format!("/tx/{txid}/merkle-proof")).await.unwrap();
    match node_tx.block {
        Some((height, block)) => {
            let proof: MerkleProof = serde_json::from_slice(&proof.body).unwrap();
            let header: Value = node.call("getblockheader", json!([block])).await.unwrap();
            assert_eq!(proof.block_height, height);
            assert_eq!(proof.pos, node_tx.pos as usize);
            assert!(
                proof.verify(*txid, &hash(&header["merkleroot"])),
                "{txid} proof"
            );
        }
        None => assert_eq!(proof.status, 404, "merkle proof of a mempool tx"),
    }

    let outspends = api
        .get_json(&format!("/tx/{txid}/outspends"))
        .await
        .unwrap();
    let outspends = outspends.as_array().unwrap();
    assert_eq!(outspends.len(), node_vout.len());
    for (vout, (spend, out)) in outspends.iter().zip(&node_vout).enumerate() {
        let what = format!("{txid}:{vout}");
        let utxo: Value = node
            .call("gettxout", json!([txid, vout, true]))
            .await
            .unwrap();
        match view.spender(txid, vout as u32) {
            Some((spender, vin)) => {
                assert!(utxo.is_null(), "{what}: the node has it unspent");
                let status = node_status(node, view, &spender).await;
                assert_eq!(
                    *spend,
                    json!({"spent": true, "txid": spender, "vin": vin, "status": status}),
                    "{what}"
                );
            }
            None => {
                // The node's UTXO set never holds data outputs, though its mempool view does.
                let unspendable = out["scriptPubKey"]["type"] == "nulldata";
                let expect_null = unspendable && node_tx.block.is_some();
                assert_eq!(utxo.is_null(), expect_null, "{what}: node has {utxo}");
                assert_eq!(*spend, json!({"spent": false}), "{what}");
            }
        }
        let single = api
            .get_json(&format!("/tx/{txid}/outspend/{vout}"))
            .await
            .unwrap();
        assert_eq!(single, *spend, "{what}");
    }
}

/// The node's unspent outputs of a script: (txid, vout, value, height).
async fn node_utxos(node: &Litecoind, script_hex: &str) -> BTreeSet<(Hash256, u32, u64, u32)> {
    let scan: Value = node
        .call(
            "scantxoutset",
            json!(["start", [format!("raw({script_hex})")]]),
        )
        .await
        .unwrap();
    scan["unspents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                hash(&u["txid"]),
                u["vout"].as_u64().unwrap() as u32,
                sat(&u["amount"]).unwrap(),
                u["height"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

/// Our confirmed unspent outputs of a script, and the unconfirmed ones.
fn split_utxos(
    utxos: &Value,
) -> (
    BTreeSet<(Hash256, u32, u64, u32)>,
    BTreeSet<(Hash256, u32, u64)>,
) {
    let mut confirmed = BTreeSet::new();
    let mut unconfirmed = BTreeSet::new();
    for u in utxos.as_array().unwrap() {
        let (txid, vout, value) = (
            hash(&u["txid"]),
            u["vout"].as_u64().unwrap() as u32,
            u["value"].as_u64().unwrap(),
        );
        if u["status"]["confirmed"] == json!(true) {
            confirmed.insert((
                txid,
                vout,
                value,
                u["status"]["block_height"].as_u64().unwrap() as u32,
            ));
        } else {
            unconfirmed.insert((txid, vout, value));
        }
    }
    (confirmed, unconfirmed)
}

fn txids_of(list: &Value) -> Vec<Hash256> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|tx| hash(&tx["txid"]))
        .collect()
}

/// Checks stats, mempool listing and UTXOs of one script (and of its address, when it has
/// one) against the node. Returns the confirmed history the node implies.
async fn check_script(
    api: &ApiClient,
    node: &Litecoind,
    view: &ChainView,
    script_hex: &str,
    address: Option<&str>,
) -> Vec<Hash256> {
    let hash = script_hash(script_hex);
    let mut bases = vec![format!("/scripthash/{hash}")];
    bases.extend(address.map(|a| format!("/address/{a}")));
    let chain = serde_json::to_value(view.stats(script_hex, true)).unwrap();
    let mempool = serde_json::to_value(view.stats(script_hex, false)).unwrap();
    let history = view.confirmed_history(script_hex);
    let in_mempool = view.mempool_history(script_hex);
    let mut expected_utxos = node_utxos(node, script_hex).await;
    // The node's UTXO set is confirmed only: mempool spends are taken out here, mempool
    // outputs checked separately.
    expected_utxos.retain(|(t, v, _, _)| view.spender(t, *v).is_none());
    let expected_mempool_utxos: BTreeSet<(Hash256, u32, u64)> = view
        .txs
        .iter()
        .filter(|tx| tx.block.is_none())
        .flat_map(|tx| {
            tx.outputs
                .iter()
                .enumerate()
                .filter_map(move |(vout, out)| {
                    let (script, value) = out.as_ref()?;
                    (script == script_hex).then_some((tx.txid, vout as u32, *value))
                })
        })
        .filter(|(t, v, _)| view.spender(t, *v).is_none())
        .filter(|_| !script_hex.starts_with("6a"))
        .collect();
    for base in &bases {
        let stats = api.get_json(base).await.unwrap();
        assert_eq!(stats["chain_stats"], chain, "{base} chain_stats");
        assert_eq!(stats["mempool_stats"], mempool, "{base} mempool_stats");
        if let Some(address) = address {
            if base.starts_with("/address") {
                assert_eq!(stats["address"], json!(address));
            }
        }
        let listed = api.get_json(&format!("{base}/txs/mempool")).await.unwrap();
        let listed: BTreeSet<Hash256> = txids_of(&listed).into_iter().collect();
        assert_eq!(listed, in_mempool, "{base}/txs/mempool");
        let (confirmed, unconfirmed) =
            split_utxos(&api.get_json(&format!("{base}/utxo")).await.unwrap());
        assert_eq!(confirmed, expected_utxos, "{base}/utxo confirmed");
        assert_eq!(
            unconfirmed, expected_mempool_utxos,
            "{base}/utxo unconfirmed"
        );
    }
    history
}

/// Pages through `base`'s history: mempool first, then 25 confirmed per page, newest first;
/// returns (mempool part, confirmed part).
async fn full_history(api: &ApiClient, base: &str) -> (Vec<Hash256>, Vec<Hash256>) {
    let first = txids_of(&api.get_json(&format!("{base}/txs")).await.unwrap());
    let mempool = txids_of(&api.get_json(&format!("{base}/txs/mempool")).await.unwrap());
    assert_eq!(
        first[..mempool.len()],
        mempool[..],
        "{base}/txs: mempool first"
    );
    let mut confirmed = first[mempool.len()..].to_vec();
    assert!(confirmed.len() <= 25, "{base}/txs: at most 25 confirmed");
    let chain_first = txids_of(&api.get_json(&format!("{base}/txs/chain")).await.unwrap());
    assert_eq!(chain_first, confirmed, "{base}/txs/chain");
    let mut page = confirmed.clone();
    while page.len() == 25 {
        let last = page.last().unwrap();
        page = txids_of(
            &api.get_json(&format!("{base}/txs/chain/{last}"))
                .await
                .unwrap(),
        );
        assert!(page.len() <= 25);
        confirmed.extend(&page);
    }
    (mempool, confirmed)
}

/// A fresh legacy key of the wallet, as hex.
async fn pubkey(wallet: &Wallet) -> String {
    let address = wallet.new_address(AddressType::Legacy).await.unwrap();
    let info: Value = wallet
        .rpc()
        .call("getaddressinfo", json!([address]))
        .await
        .unwrap();
    info["pubkey"].as_str().unwrap().to_owned()
}

/// An unsigned transaction without inputs paying `outputs` (script, satoshis), for the
/// wallet to fund: how scripts that have no address get paid.
fn unfunded_tx(outputs: &[(Vec<u8>, u64)]) -> String {
    let mut tx = vec![2, 0, 0, 0, 0, outputs.len() as u8];
    for (script, value) in outputs {
        tx.extend(value.to_le_bytes());
        tx.push(script.len() as u8);
        tx.extend(script);
    }
    tx.extend([0, 0, 0, 0]);
    hex::encode(tx)
}

/// Funds (for transactions without inputs), signs with the wallet and sends `raw_hex`.
async fn fund_sign_send(wallet: &Wallet, raw_hex: &str, fund: bool) -> Hash256 {
    let rpc = wallet.rpc();
    let mut hex = raw_hex.to_owned();
    if fund {
        let funded: Value = rpc.call("fundrawtransaction", json!([hex])).await.unwrap();
        hex = funded["hex"].as_str().unwrap().to_owned();
    }
    let signed: Value = rpc
        .call("signrawtransactionwithwallet", json!([hex]))
        .await
        .unwrap();
    rpc.call("sendrawtransaction", json!([signed["hex"]]))
        .await
        .unwrap()
}

/// The wallet's fee of a transaction it sent, in satoshis.
async fn wallet_fee(wallet: &Wallet, txid: &Hash256) -> u64 {
    let tx: Value = wallet
        .rpc()
        .call("gettransaction", json!([txid]))
        .await
        .unwrap();
    (-tx["fee"].as_f64().unwrap() * 1e8).round() as u64
}

fn script_of(view: &ChainView, txid: &Hash256, vout: u32) -> String {
    view.output(txid, vout).unwrap().0.clone()
}

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
        let hash = api
            .get_text(&format!("/block-height/{height}"))
            .await
            .unwrap();
        assert_eq!(
            hash,
            node.rpc().get_block_hash(height).await.unwrap().to_string()
        );
        let node_block: Value = node.call("getblock", json!([hash, 1])).await.unwrap();
        let block = api.get_json(&format!("/block/{hash}")).await.unwrap();
        assert_eq!(block["id"], node_block["hash"]);
        for (ours, theirs) in [
            ("height", "height"),
            ("version", "version"),
            ("timestamp", "time"),
            ("tx_count", "nTx"),
            ("size", "size"),
            ("weight", "weight"),
            ("merkle_root", "merkleroot"),
            ("mediantime", "mediantime"),
            ("nonce", "nonce"),
        ] {
            assert_eq!(block[ours], node_block[theirs], "block {height} {ours}");
        }
        assert_eq!(
            block["previousblockhash"],
            node_block
                .get("previousblockhash")
                .cloned()
                .unwrap_or(Value::Null),
            "block {height} previousblockhash"
        );
        let bits = u32::from_str_radix(node_block["bits"].as_str().unwrap(), 16).unwrap();
        assert_eq!(block["bits"], json!(bits));
        let difficulty = block["difficulty"].as_f64().unwrap();
        let node_difficulty = node_block["difficulty"].as_f64().unwrap();
        assert!((difficulty - node_difficulty).abs() <= node_difficulty * 1e-12);

        let header: Value = node
            .call("getblockheader", json!([hash, false]))
            .await
            .unwrap();
        assert_eq!(
            json!(
                api.get_text(&format!("/block/{hash}/header"))
                    .await
                    .unwrap()
            ),
            header
        );
        let mut status = json!({"in_best_chain": true, "height": height});
        if let Some(next) = node_block.get("nextblockhash") {
            status["next_best"] = next.clone();
        }
        assert_eq!(
            api.get_json(&format!("/block/{hash}/status"))
                .await
                .unwrap(),
            status
        );
        assert_eq!(
            api.get_json(&format!("/block/{hash}/txids")).await.unwrap(),
            node_block["tx"]
        );
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

/// Checks the shared error body `{"error":{"code","message"}}` and the status.
fn error_body(reply: &rot_harness::Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json().unwrap();
    let error = body["error"].as_object().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(error.len(), 2, "{body}");
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "{body}"
    );
    assert!(!error["message"].as_str().unwrap().is_empty());
    body
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
