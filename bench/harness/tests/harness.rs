//! The harness itself: options reach the node, failures carry the node's log, and nodes
//! never outlive their owner, even when a test panics.

use std::path::Path;

use rot_harness::{AddressType, Error, Litecoind};
use serde_json::{Value, json};

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn wallet_creates_every_supported_address_type() {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    let kinds = [
        AddressType::Legacy,
        AddressType::P2shSegwit,
        AddressType::Bech32,
        AddressType::Mweb,
    ];
    for kind in kinds {
        let address = wallet.new_address(kind).await.unwrap();
        let info: Value = wallet
            .rpc()
            .call("getaddressinfo", json!([address]))
            .await
            .unwrap();
        assert_eq!(info["ismine"], json!(true), "{kind:?} {address}");
        let is_kind = match kind {
            AddressType::Legacy => {
                info["isscript"] == json!(false) && info["iswitness"] == json!(false)
            }
            AddressType::P2shSegwit => info["isscript"] == json!(true),
            AddressType::Bech32 => info["witness_version"] == json!(0),
            AddressType::Mweb => address.starts_with("tmweb1"),
        };
        assert!(is_kind, "{kind:?} {address}: {info}");
    }
}

#[tokio::test]
async fn txindex_option_reaches_the_node() {
    let node = Litecoind::builder().txindex(true).start().await.unwrap();
    let indexes: Value = node.rpc().call("getindexinfo", json!([])).await.unwrap();
    assert!(indexes.get("txindex").is_some(), "{indexes}");
    let plain = Litecoind::start().await.unwrap();
    let indexes: Value = plain.rpc().call("getindexinfo", json!([])).await.unwrap();
    assert!(indexes.get("txindex").is_none(), "{indexes}");
}

#[tokio::test]
async fn failed_start_reports_the_node_log() {
    let error = Litecoind::builder()
        .arg("-nosuchoption")
        .start()
        .await
        .unwrap_err();
    match error {
        Error::Exited { log_tail, .. } => assert!(log_tail.contains("nosuchoption"), "{log_tail}"),
        other => panic!("expected the node to exit, got {other:?}"),
    }
}

#[tokio::test]
async fn drop_kills_the_node_and_removes_its_datadir() {
    let node = Litecoind::start().await.unwrap();
    let (pid, datadir) = (node.pid().unwrap(), node.datadir().to_owned());
    assert!(process_exists(pid) && datadir.exists());
    drop(node);
    assert!(!process_exists(pid));
    assert!(!datadir.exists());
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let node = Litecoind::start().await.unwrap();
            sender
                .send((node.pid().unwrap(), node.datadir().to_owned()))
                .unwrap();
            panic!("deliberate test failure");
        })
    })
    .join();
    assert!(outcome.is_err());
    let (pid, datadir) = receiver.recv().unwrap();
    assert!(!process_exists(pid));
    assert!(!datadir.exists());
}

#[tokio::test]
async fn a_saved_datadir_seeds_a_node_at_the_same_tip() {
    let mut node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    let address = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(5, &address).await.unwrap();
    let tip = node.tip().await.unwrap();
    let saved = tempfile::tempdir().unwrap();
    let copy = saved.path().join("datadir");
    node.save_datadir(&copy).await.unwrap();
    assert!(node.pid().is_none());

    let seeded = Litecoind::builder()
        .seed_datadir(&copy)
        .start()
        .await
        .unwrap();
    assert_eq!(seeded.tip().await.unwrap(), tip);
    assert_ne!(seeded.datadir(), copy.as_path());
    drop(seeded);
    assert!(copy.join("regtest").join("blocks").is_dir());
}
