//! Helpers shared by the server tests: nodes with funded wallets, and checks of the API's
//! answers against what the node itself reports.

use std::collections::BTreeSet;
use std::time::Duration;

use rot_harness::{AddressType, ApiClient, ChainView, Litecoind, Reply, RotServer, Wallet, sat};
use rot_proto::{Hash256, MerkleProof, ScriptHash};
use serde_json::{Value, json};

/// Bound on the server catching up with the node after a change.
pub const SYNC: Duration = Duration::from_secs(30);

/// A node with a wallet holding mature coins (101 blocks mined to it) and its miner address.
pub async fn funded_node() -> (Litecoind, Wallet, String) {
    funded(Litecoind::start().await.unwrap()).await
}

/// `node` with a wallet holding mature coins, and its miner address.
pub async fn funded(node: Litecoind) -> (Litecoind, Wallet, String) {
    let wallet = node.create_wallet("test").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    (node, wallet, miner)
}

/// A synced server over `node`.
pub async fn synced_server(node: &Litecoind) -> (RotServer, ApiClient) {
    let server = RotServer::start(node).await.unwrap();
    server.wait_synced(node, SYNC).await.unwrap();
    let api = server.api();
    (server, api)
}

/// Esplora's name for the node's output type.
pub fn esplora_type(node_type: &str) -> &'static str {
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
pub fn has_address(node_type: &str) -> bool {
    matches!(
        node_type,
        "pubkeyhash"
            | "scripthash"
            | "witness_v0_keyhash"
            | "witness_v0_scripthash"
            | "witness_v1_taproot"
    )
}

pub fn hash(value: &Value) -> Hash256 {
    serde_json::from_value(value.clone()).unwrap()
}

pub fn script_hash(script_hex: &str) -> String {
    ScriptHash::of(&hex::decode(script_hex).unwrap()).to_string()
}

/// An Esplora output object checked against the node's `vout` entry.
pub fn check_output(ours: &Value, node_out: &Value, what: &str) {
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
    } else if !node_type.starts_with("witness_mweb_") {
        assert!(ours.get("scriptpubkey_address").is_none(), "{what}: {ours}");
    }
    // MWEB's HogAddr (witness v8) and peg-in (v9) programs: the node gives them no address,
    // rot-proto spells them as generic witness programs, as rust-bitcoin (and so electrs)
    // does. Either way the script and its hash are what wallets look up.
}

/// The status the node gives a transaction, in Esplora's shape.
pub async fn node_status(node: &Litecoind, view: &ChainView, txid: &Hash256) -> Value {
    match view.tx(txid).unwrap().block {
        Some((height, block)) => {
            let header: Value = node.call("getblockheader", json!([block])).await.unwrap();
            json!({"confirmed": true, "block_height": height, "block_hash": block, "block_time": header["time"]})
        }
        None => json!({"confirmed": false}),
    }
}

/// Checks every per-transaction endpoint for `txid` against the node.
pub async fn check_tx(api: &ApiClient, node: &Litecoind, view: &ChainView, txid: &Hash256) {
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
pub async fn node_utxos(node: &Litecoind, script_hex: &str) -> ConfirmedUtxos {
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

/// Confirmed unspent outputs: txid, vout, value, height.
pub type ConfirmedUtxos = BTreeSet<(Hash256, u32, u64, u32)>;
/// Unconfirmed unspent outputs: txid, vout, value.
pub type MempoolUtxos = BTreeSet<(Hash256, u32, u64)>;

/// Our confirmed unspent outputs of a script, and the unconfirmed ones.
pub fn split_utxos(utxos: &Value) -> (ConfirmedUtxos, MempoolUtxos) {
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

pub fn txids_of(list: &Value) -> Vec<Hash256> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|tx| hash(&tx["txid"]))
        .collect()
}

/// Checks stats, mempool listing and UTXOs of one script (and of its address, when it has
/// one) against the node. Returns the confirmed history the node implies.
pub async fn check_script(
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
    let expected_mempool_utxos: MempoolUtxos = view
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
        if let Some(address) = address
            && base.starts_with("/address")
        {
            assert_eq!(stats["address"], json!(address));
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
pub async fn full_history(api: &ApiClient, base: &str) -> (Vec<Hash256>, Vec<Hash256>) {
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
pub async fn pubkey(wallet: &Wallet) -> String {
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
pub fn unfunded_tx(outputs: &[(Vec<u8>, u64)]) -> String {
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
pub async fn fund_sign_send(wallet: &Wallet, raw_hex: &str, fund: bool) -> Hash256 {
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
pub async fn wallet_fee(wallet: &Wallet, txid: &Hash256) -> u64 {
    let tx: Value = wallet
        .rpc()
        .call("gettransaction", json!([txid]))
        .await
        .unwrap();
    (-tx["fee"].as_f64().unwrap() * 1e8).round() as u64
}

pub fn script_of(view: &ChainView, txid: &Hash256, vout: u32) -> String {
    view.output(txid, vout).unwrap().0.clone()
}

/// Checks every block endpoint for the best-chain block at `height` against the node.
pub async fn check_block(api: &ApiClient, node: &Litecoind, height: u32) {
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

/// Checks the shared error body `{"error":{"code","message"}}` and the status.
pub fn error_body(reply: &Reply, status: u16) -> Value {
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
