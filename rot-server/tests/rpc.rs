//! NodeRpc against real litecoind regtest nodes: authentication, batching, raw blocks and
//! transactions, error classification, start-up waiting and crash recovery.

use std::time::{Duration, Instant};

use rot_harness::{AddressType, Litecoind, Wallet};
use rot_proto::Hash256;
use rot_proto::hash::sha256d;
use rot_server::Error;
use rot_server::rpc::{ESPLORA_FEE_TARGETS, NodeAuth, NodeRpc, RpcCall};
use serde_json::{Value, json};

/// A node with a wallet and `blocks` blocks mined to it (101 make the first coinbase
/// spendable).
async fn node_with_blocks(blocks: u32) -> (Litecoind, Wallet, Vec<Hash256>) {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("test").await.unwrap();
    let address = wallet.new_address(AddressType::Bech32).await.unwrap();
    let hashes = node.mine(blocks, &address).await.unwrap();
    (node, wallet, hashes)
}

fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn cookie_auth_works_and_wrong_cookie_is_auth_failure() {
    let node = Litecoind::start().await.unwrap();
    let rpc = NodeRpc::new(&node.rpc_url(), NodeAuth::CookieFile(node.cookie_path())).unwrap();
    assert_eq!(rpc.get_blockchain_info().await.unwrap().chain, "regtest");

    let forged = node.datadir().join("forged.cookie");
    std::fs::write(&forged, "__cookie__:not-the-password").unwrap();
    let rpc = NodeRpc::new(&node.rpc_url(), NodeAuth::CookieFile(forged)).unwrap();
    let error = rpc.get_best_block_hash().await.unwrap_err();
    assert!(matches!(error, Error::NodeAuthFailed { .. }), "{error:?}");
}

#[tokio::test]
async fn user_password_auth_works_and_wrong_password_is_auth_failure() {
    let node = Litecoind::builder()
        .rpc_user_password("rot", "s3cret")
        .start()
        .await
        .unwrap();
    let good = NodeAuth::UserPassword {
        user: "rot".to_owned(),
        password: "s3cret".to_owned(),
    };
    let rpc = NodeRpc::new(&node.rpc_url(), good).unwrap();
    assert_eq!(rpc.get_blockchain_info().await.unwrap().blocks, 0);

    let bad = NodeAuth::UserPassword {
        user: "rot".to_owned(),
        password: "wrong".to_owned(),
    };
    let rpc = NodeRpc::new(&node.rpc_url(), bad).unwrap();
    let error = rpc.get_blockchain_info().await.unwrap_err();
    assert!(matches!(error, Error::NodeAuthFailed { .. }), "{error:?}");
}

#[tokio::test]
async fn batch_keeps_request_order_and_per_item_errors() {
    let (node, _wallet, hashes) = node_with_blocks(5).await;
    let rpc = node.rpc();
    let calls = [
        RpcCall::new("getblockhash", json!([3])),
        RpcCall::new("getblockhash", json!([1_000_000])),
        RpcCall::new("getblockhash", json!([1])),
        RpcCall::new("nosuchmethod", json!([])),
        RpcCall::new("getbestblockhash", json!([])),
    ];
    let results = rpc.batch::<Value>(&calls).await.unwrap();
    assert_eq!(results.len(), calls.len());
    assert_eq!(results[0].as_ref().unwrap(), &json!(hashes[2]));
    assert!(
        matches!(results[1], Err(Error::NodeNotFound { .. })),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().unwrap(), &json!(hashes[0]));
    assert!(
        matches!(results[3], Err(Error::NodeRpc { code: -32601, .. })),
        "{:?}",
        results[3]
    );
    assert_eq!(results[4].as_ref().unwrap(), &json!(hashes[4]));

    let range = rpc.get_block_hashes(1..6).await.unwrap();
    assert_eq!(range, hashes);
    assert!(matches!(
        rpc.get_block_hashes(4..8).await,
        Err(Error::NodeNotFound { .. })
    ));
    assert!(rpc.batch::<Value>(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_batches_of_raw_blocks_match_their_hashes() {
    let (node, _wallet, hashes) = node_with_blocks(40).await;
    let mut in_flight = tokio::task::JoinSet::new();
    for (index, chunk) in hashes.chunks(10).enumerate() {
        let rpc = node.rpc().clone();
        let chunk = chunk.to_vec();
        in_flight.spawn(async move { (index, chunk.clone(), rpc.get_blocks_raw(&chunk).await) });
    }
    let mut batches = 0;
    while let Some(joined) = in_flight.join_next().await {
        let (index, chunk, blocks) = joined.unwrap();
        let blocks = blocks.unwrap();
        assert_eq!(blocks.len(), chunk.len(), "batch {index}");
        for (hash, block) in chunk.iter().zip(&blocks) {
            assert_eq!(Hash256(sha256d(&block[..80])), *hash, "batch {index}");
        }
        batches += 1;
    }
    assert_eq!(batches, 4);
}

#[tokio::test]
async fn raw_block_and_header_info_agree_with_the_node() {
    let (node, _wallet, hashes) = node_with_blocks(3).await;
    let rpc = node.rpc();
    let genesis = rpc.get_block_hash(0).await.unwrap();
    for (height, hash) in std::iter::once(&genesis).chain(&hashes).enumerate() {
        let block = rpc.get_block_raw(hash).await.unwrap();
        assert_eq!(Hash256(sha256d(&block[..80])), *hash);
        let header = rpc.get_block_header(hash).await.unwrap();
        assert_eq!(header.hash, *hash);
        assert_eq!(header.height as usize, height);
        assert_eq!(header.confirmations, (hashes.len() + 1 - height) as i64);
        assert_eq!(header.next_block_hash, hashes.get(height).copied());
    }

    let info = rpc.get_blockchain_info().await.unwrap();
    assert_eq!((info.blocks, info.headers), (3, 3));
    assert_eq!(info.best_block_hash, hashes[2]);
    assert_eq!(rpc.get_best_block_hash().await.unwrap(), hashes[2]);

    let unknown = Hash256([7; 32]);
    let error = rpc.get_block_raw(&unknown).await.unwrap_err();
    assert!(matches!(error, Error::NodeNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn invalidated_block_leaves_the_best_chain() {
    let (node, _wallet, hashes) = node_with_blocks(4).await;
    node.invalidate_block(&hashes[2]).await.unwrap();
    assert_eq!(node.tip().await.unwrap(), (2, hashes[1]));
    let header = node.rpc().get_block_header(&hashes[3]).await.unwrap();
    assert_eq!(header.confirmations, -1);
    assert_eq!(header.next_block_hash, None);
    let header = node.rpc().get_block_header(&hashes[1]).await.unwrap();
    assert_eq!(header.next_block_hash, None);

    node.reconsider_block(&hashes[2]).await.unwrap();
    assert_eq!(node.tip().await.unwrap(), (4, hashes[3]));
}

#[tokio::test]
async fn mempool_and_confirmed_transactions_without_txindex() {
    let (node, wallet, _) = node_with_blocks(101).await;
    let rpc = node.rpc();
    let destination = wallet.new_address(AddressType::Legacy).await.unwrap();
    let txid = wallet.send_to(&destination, 12_345_678).await.unwrap();

    assert!(rpc.get_raw_mempool().await.unwrap().contains(&txid));
    let entry = rpc.get_mempool_entry(&txid).await.unwrap();
    assert!(entry.fee_sat > 0 && entry.vsize > 0, "{entry:?}");
    assert_eq!(entry.height, 101);
    let unconfirmed = rpc.get_raw_transaction(&txid, None).await.unwrap();

    let block_hash = node.mine(1, &destination).await.unwrap()[0];
    assert!(rpc.get_raw_mempool().await.unwrap().is_empty());
    let error = rpc.get_mempool_entry(&txid).await.unwrap_err();
    assert!(matches!(error, Error::NodeNotFound { .. }), "{error:?}");

    let confirmed = rpc
        .get_raw_transaction(&txid, Some(&block_hash))
        .await
        .unwrap();
    assert_eq!(confirmed, unconfirmed);
    let block = rpc.get_block_raw(&block_hash).await.unwrap();
    assert!(block.windows(confirmed.len()).any(|w| w == confirmed));

    // Without -txindex the node finds a confirmed transaction only in a given block.
    let error = rpc.get_raw_transaction(&txid, None).await.unwrap_err();
    assert!(matches!(error, Error::NodeNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn rejected_transactions_keep_the_node_reason() {
    let (node, _wallet, hashes) = node_with_blocks(1).await;
    let rpc = node.rpc();
    let coinbase_txid: Hash256 = rpc
        .call::<Value>("getblock", json!([hashes[0], 1]))
        .await
        .unwrap()["tx"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let coinbase = rpc
        .get_raw_transaction(&coinbase_txid, Some(&hashes[0]))
        .await
        .unwrap();

    // Already confirmed.
    let error = rpc
        .send_raw_transaction(&hex::encode(&coinbase))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::NodeRejected { code: -27, .. }),
        "{error:?}"
    );

    // A coinbase with another lock time: a new transaction, refused by consensus rules.
    let mut altered = coinbase;
    let lock_time_at = altered.len() - 4;
    altered[lock_time_at] ^= 1;
    let error = rpc
        .send_raw_transaction(&hex::encode(altered))
        .await
        .unwrap_err();
    match error {
        Error::NodeRejected { code, message } => {
            assert_eq!(code, -26);
            assert!(message.contains("coinbase"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    let error = rpc.send_raw_transaction("00").await.unwrap_err();
    match error {
        Error::NodeRejected { code, message } => {
            assert_eq!(code, -22);
            assert!(message.contains("decode"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn fee_estimates_and_network_info() {
    let node = Litecoind::start().await.unwrap();
    let rpc = node.rpc();
    let info = rpc.get_network_info().await.unwrap();
    assert!(info.version >= 210_000, "{info:?}");
    assert!(info.subversion.contains("LitecoinCore"), "{info:?}");
    // A fresh regtest node has seen no transactions, so it has no estimate for any target.
    assert_eq!(rpc.estimate_smart_fee(2).await.unwrap(), None);
    assert!(
        rpc.estimate_smart_fees(&ESPLORA_FEE_TARGETS)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn unreachable_node_fails_fast_and_wait_ready_gives_up_in_time() {
    let url = format!("http://127.0.0.1:{}/", unused_port());
    let auth = NodeAuth::UserPassword {
        user: "u".to_owned(),
        password: "p".to_owned(),
    };
    let rpc = NodeRpc::new(&url, auth).unwrap();
    let started = Instant::now();
    let error = rpc.get_best_block_hash().await.unwrap_err();
    assert!(matches!(error, Error::NodeUnreachable { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let started = Instant::now();
    let error = rpc
        .wait_ready(Duration::from_millis(700))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NodeUnreachable { .. }), "{error:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // Accepted by the kernel but never answered: the request timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let auth = NodeAuth::UserPassword {
        user: "u".to_owned(),
        password: "p".to_owned(),
    };
    let rpc = NodeRpc::new(&url, auth)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let error = rpc.get_best_block_hash().await.unwrap_err();
    assert!(matches!(error, Error::NodeUnreachable { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let missing = std::env::temp_dir()
        .join("rot-no-such-datadir")
        .join(".cookie");
    let rpc = NodeRpc::new(&url, NodeAuth::CookieFile(missing)).unwrap();
    let error = rpc.get_best_block_hash().await.unwrap_err();
    assert!(
        matches!(error, Error::NodeCookieUnreadable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn wait_ready_succeeds_once_a_crashed_node_is_back() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (mut node, _wallet, hashes) = node_with_blocks(3).await;
    node.flush_to_disk().await.unwrap();
    // A client of its own, holding the cookie of the first run.
    let rpc = NodeRpc::new(&node.rpc_url(), NodeAuth::CookieFile(node.cookie_path())).unwrap();
    rpc.get_blockchain_info().await.unwrap();
    let first_cookie = std::fs::read_to_string(node.cookie_path()).unwrap();
    node.kill9().unwrap();

    let (ready, restarted) = tokio::join!(rpc.wait_ready(Duration::from_secs(30)), async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        node.restart().await
    });
    restarted.unwrap();
    // The restarted node wrote a new cookie; the client re-read it after HTTP 401.
    assert_ne!(
        std::fs::read_to_string(node.cookie_path()).unwrap(),
        first_cookie
    );
    assert_eq!(ready.unwrap().best_block_hash, hashes[2]);
}

#[tokio::test]
async fn restart_after_kill9_keeps_the_flushed_chain() {
    let (mut node, wallet, flushed) = node_with_blocks(5).await;
    node.flush_to_disk().await.unwrap();
    let address = wallet.new_address(AddressType::Bech32).await.unwrap();
    let unflushed = node.mine(3, &address).await.unwrap();
    node.kill9().unwrap();
    node.restart().await.unwrap();

    // Blocks after the last flush may be lost in a crash; flushed ones never are.
    let (height, _) = node.tip().await.unwrap();
    assert!((5..=8).contains(&height), "height {height}");
    assert_eq!(node.rpc().get_block_hash(5).await.unwrap(), flushed[4]);
    if height == 8 {
        assert_eq!(node.rpc().get_block_hash(8).await.unwrap(), unflushed[2]);
    }

    // A clean restart keeps everything, including the wallet.
    node.mine(2, &address).await.unwrap();
    let before = node.tip().await.unwrap();
    node.restart().await.unwrap();
    assert_eq!(node.tip().await.unwrap(), before);
    wallet.new_address(AddressType::Legacy).await.unwrap();
}

#[tokio::test]
async fn reorg_between_two_nodes_shows_in_header_info() {
    let (a, wallet, _) = node_with_blocks(2).await;
    let b = Litecoind::start().await.unwrap();
    b.connect_to(&a).await.unwrap();
    b.sync_with(&a).await.unwrap();

    b.disconnect(&a).await.unwrap();
    // Distinct payees: regtest blocks with equal parent, time and coinbase are identical.
    let address_a = wallet.new_address(AddressType::Bech32).await.unwrap();
    let address_b = wallet.new_address(AddressType::Legacy).await.unwrap();
    let stale = a.mine(1, &address_a).await.unwrap()[0];
    let winning = b.mine(2, &address_b).await.unwrap();
    a.connect_to(&b).await.unwrap();
    a.sync_with(&b).await.unwrap();

    assert_eq!(a.tip().await.unwrap(), (4, winning[1]));
    let header = a.rpc().get_block_header(&stale).await.unwrap();
    assert_eq!((header.height, header.confirmations), (3, -1));
}
