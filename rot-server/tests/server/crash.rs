//! A `kill -9` of the rot-server binary while it indexes: restarted on the same data
//! directory it must resume and end with exactly the index of an uninterrupted run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rot_harness::{ApiClient, Litecoind, fresh_index, index_dump, rot_server_settings};
use rot_proto::message::ServerInfo;
use rot_proto::signed::Signed;

use crate::common::*;

/// Blocks of the test chain: indexing them takes seconds in a debug build, mining them a
/// few milliseconds each.
const CHAIN_BLOCKS: u32 = 1200;
/// Bound on indexing the whole chain.
const INDEXING: Duration = Duration::from_secs(120);

/// The rot-server binary running over a node; killed when dropped.
struct ServerProcess {
    child: Child,
    api: ApiClient,
}

impl ServerProcess {
    /// Starts the binary with the environment an operator would set.
    fn spawn(node: &Litecoind, data_dir: &Path, log: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut settings = rot_server_settings(node, data_dir);
        settings.insert("ROT_LISTEN_ADDR".to_owned(), listen.clone());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rot-server"))
            .envs(settings)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child,
            api: ApiClient::new(&format!("http://{listen}")),
        }
    }

    /// The verified server info, once the API answers.
    async fn info(&self) -> Option<ServerInfo> {
        let reply = self.api.get("/rot/v1/info").await.ok()?;
        let signed: Signed<ServerInfo> = serde_json::from_slice(&reply.body).ok()?;
        Some(signed.verify().unwrap())
    }

    /// Kills the process as a crash would.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Asks the process to stop (SIGTERM) and waits for it to exit.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "rot-server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A regtest address of `script_pubkey`, outside every wallet.
fn outside_address(script_pubkey: &[u8]) -> String {
    let coins = rot_proto::Coins::builtin();
    let regtest = coins.get("LTC", rot_proto::Network::Regtest).unwrap();
    rot_proto::Address::from_script(regtest, script_pubkey)
        .unwrap()
        .to_string()
}

/// A node with a chain of [`CHAIN_BLOCKS`] blocks past MWEB activation, paying several
/// addresses, with transactions spread over it. Blocks and payments go to addresses outside
/// the wallet: a wallet tracking thousands of coinbases makes every call slow.
async fn long_chain() -> Litecoind {
    let (node, wallet, miner) = funded_node().await;
    node.activate_mweb(&wallet, 100_000_000, &miner)
        .await
        .unwrap();
    let payees: Vec<String> = (1..=3u8)
        .flat_map(|i| {
            let p2pkh = [&[0x76, 0xa9, 0x14][..], &[i; 20], &[0x88, 0xac]].concat();
            let p2wpkh = [&[0x00, 0x14][..], &[i; 20]].concat();
            [outside_address(&p2pkh), outside_address(&p2wpkh)]
        })
        .collect();
    let (mut height, _) = node.tip().await.unwrap();
    let mut round = 0;
    while height < CHAIN_BLOCKS {
        // One payment to every payee per round: wallet calls are the slow part here.
        let amounts: serde_json::Map<String, serde_json::Value> = payees
            .iter()
            .map(|p| (p.clone(), serde_json::json!(format!("0.1{round:07}"))))
            .collect();
        let _: rot_proto::Hash256 = wallet
            .rpc()
            .call("sendmany", serde_json::json!(["", amounts]))
            .await
            .unwrap();
        let blocks = (CHAIN_BLOCKS - height).min(150);
        node.mine(blocks, &payees[round as usize % payees.len()])
            .await
            .unwrap();
        height += blocks;
        round += 1;
    }
    node
}

#[tokio::test]
async fn a_kill_9_while_indexing_resumes_to_the_index_of_an_uninterrupted_run() {
    let node = long_chain().await;
    let (tip, tip_hash) = node.tip().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("rot-server.log");

    let mut server = ServerProcess::spawn(&node, &data_dir, &log);
    let started = Instant::now();
    let killed_at = loop {
        if let Some(info) = server.info().await {
            let indexed = info.index.indexed_height;
            assert!(
                indexed < u64::from(tip),
                "indexing finished before it could be interrupted: make the chain longer"
            );
            if indexed > 0 {
                break indexed;
            }
        }
        assert!(started.elapsed() < INDEXING, "no indexing progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    server.kill9();

    let mut server = ServerProcess::spawn(&node, &data_dir, &log);
    let started = Instant::now();
    loop {
        if let Some(info) = server.info().await
            && info.index.synced
            && info.tip_hash == tip_hash
        {
            break;
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            started.elapsed() < INDEXING,
            "not synced after the restart (killed at {killed_at}); log:\n{log_text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.terminate();
    assert_eq!(
        index_dump(&data_dir).unwrap(),
        fresh_index(&node, SYNC).await.unwrap(),
        "killed at height {killed_at} of {tip}"
    );
}
