//! ElectrumX runs against a regtest litecoind: it catches up, answers the Electrum protocol
//! with the node's view of an address, follows new blocks, and is gone after drop.
//!
//! Needs ElectrumX installed (bench/install-electrumx.sh); these tests fail with
//! `ElectrumXNotFound` otherwise, naming the script.

use std::path::Path;
use std::time::Duration;

use rot_harness::{AddressType, ElectrumX, Litecoind};
use rot_proto::{Address, Coins, Network};
use serde_json::{Value, json};

fn electrum_script_hash(address: &str) -> String {
    let coins = Coins::builtin();
    let profile = coins.get("LTC", Network::Regtest).unwrap();
    Address::parse(profile, address)
        .unwrap()
        .script_hash()
        .to_electrum_hex()
}

#[tokio::test]
async fn electrumx_serves_the_nodes_utxos_and_follows_new_blocks() {
    let node = Litecoind::builder()
        .rpc_user_password("bench", "bench-password")
        .start()
        .await
        .unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    let payee = wallet.new_address(AddressType::Legacy).await.unwrap();
    let txid = wallet.send_to(&payee, 12_345_678).await.unwrap();
    node.mine(1, &miner).await.unwrap();

    let mut electrumx = ElectrumX::start(&node).await.unwrap();
    let pid = electrumx.pid().unwrap();
    let mut client = electrumx.client().await.unwrap();
    let utxos = client
        .call(
            "blockchain.scripthash.listunspent",
            json!([electrum_script_hash(&payee)]),
        )
        .await
        .unwrap();
    assert_eq!(
        utxos,
        json!([{"tx_hash": txid.to_string(), "tx_pos": utxos[0]["tx_pos"], "height": 102, "value": 12_345_678}]),
    );

    // A new block reaches ElectrumX within its (shortened) poll interval.
    node.mine(1, &miner).await.unwrap();
    electrumx
        .wait_for_height(103, Duration::from_secs(30))
        .await
        .unwrap();
    let header: Value = client
        .call("blockchain.block.header", json!([103]))
        .await
        .unwrap();
    let hash: String = node.rpc().call("getblockhash", json!([103])).await.unwrap();
    let node_header: String = node
        .rpc()
        .call("getblockheader", json!([hash, false]))
        .await
        .unwrap();
    assert_eq!(header, json!(node_header));

    let db_dir = electrumx.db_dir();
    drop(client);
    drop(electrumx);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!db_dir.exists());
}

#[tokio::test]
async fn electrumx_authenticates_with_the_nodes_cookie() {
    let node = Litecoind::start().await.unwrap();
    let electrumx = ElectrumX::start(&node).await.unwrap();
    let mut client = electrumx.client().await.unwrap();
    let tip = client
        .call("blockchain.headers.subscribe", json!([]))
        .await
        .unwrap();
    assert_eq!(tip["height"], json!(0));
}

#[tokio::test]
async fn electrumx_without_send_hold_serves_the_same_protocol() {
    let node = Litecoind::start().await.unwrap();
    let electrumx = ElectrumX::builder()
        .without_send_hold()
        .start(&node)
        .await
        .unwrap();
    let mut client = electrumx.client().await.unwrap();
    let features = client.call("server.features", json!([])).await.unwrap();
    assert_eq!(features["server_version"], json!("ElectrumX 2.0.0"));
    let tip = client
        .call("blockchain.headers.subscribe", json!([]))
        .await
        .unwrap();
    assert_eq!(tip["height"], json!(0));
}
