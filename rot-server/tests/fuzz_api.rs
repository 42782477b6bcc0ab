//! Bad input for every route of the rot-server API, driven in-process (`tower::ServiceExt::
//! oneshot`) through the real router over a real native backend: a regtest litecoind with
//! MWEB active, a wallet's payments of every address type, one transaction in the mempool.
//!
//! Requests are built from the route table with each parameter either a real value (a block
//! hash, txid, address, script hash, height, output index of that chain), a real value with
//! bytes edited, arbitrary text percent-encoded (invalid UTF-8 included), or raw percent
//! garbage; any method; any query; for `POST /tx`, real transactions mutated, hex or not.
//! The promise checked on every answer: never a 5xx for client input, and every 4xx carries
//! the shared error body `{"error":{"code","message"}}`.
//!
//! Case count: `PROPTEST_CASES` (default [`DEFAULT_CASES`]); `bench/fuzz.sh` runs long.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rot_harness::fuzz::{
    DEFAULT_CASES, check_client_answer, config, http_method, mutated_bytes, mutated_text,
    path_garbage, percent_encode,
};
use rot_harness::{AddressType, Litecoind, rot_server_settings};
use rot_proto::{Hash256, ScriptHash};
use rot_server::config::Config;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Real values of the chain under test, by kind of path parameter.
#[derive(Debug, Clone, Default)]
struct Chain {
    heights: Vec<String>,
    block_hashes: Vec<String>,
    txids: Vec<String>,
    addresses: Vec<String>,
    script_hashes: Vec<String>,
    raw_txs: Vec<Vec<u8>>,
}

impl Chain {
    fn values(&self, kind: char) -> Vec<String> {
        match kind {
            'h' => self.heights.clone(),
            'b' => self.block_hashes.clone(),
            't' => self.txids.clone(),
            'a' => self.addresses.clone(),
            's' => self.script_hashes.clone(),
            _ => ["0", "1", "2", "4294967295", "4294967296"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn all_values(&self) -> Vec<String> {
        "hbtasv"
            .chars()
            .flat_map(|kind| self.values(kind))
            .collect()
    }
}

/// The route table; a placeholder letter names the kind of value: h height, b block hash,
/// t txid, v output index, a address, s script hash.
const ROUTES: &[&str] = &[
    "/blocks/tip/height",
    "/blocks/tip/hash",
    "/block-height/{h}",
    "/block/{b}",
    "/block/{b}/header",
    "/block/{b}/status",
    "/block/{b}/txids",
    "/tx",
    "/tx/{t}",
    "/tx/{t}/hex",
    "/tx/{t}/raw",
    "/tx/{t}/status",
    "/tx/{t}/merkle-proof",
    "/tx/{t}/outspend/{v}",
    "/tx/{t}/outspends",
    "/address/{a}",
    "/address/{a}/txs",
    "/address/{a}/txs/chain",
    "/address/{a}/txs/chain/{t}",
    "/address/{a}/txs/mempool",
    "/address/{a}/utxo",
    "/scripthash/{s}",
    "/scripthash/{s}/txs",
    "/scripthash/{s}/txs/chain",
    "/scripthash/{s}/txs/chain/{t}",
    "/scripthash/{s}/txs/mempool",
    "/scripthash/{s}/utxo",
    "/fee-estimates",
    "/mempool/txids",
    "/rot/v1/info",
    "/rot/v1/challenge",
    "/metrics",
];

/// A value for a parameter of `kind`.
fn segment(chain: &Chain, kind: char) -> BoxedStrategy<String> {
    let real = chain.values(kind);
    let pool = chain.all_values();
    prop_oneof![
        4 => prop::sample::select(real),
        2 => mutated_text(pool).prop_map(|text| percent_encode(text.as_bytes())),
        2 => path_garbage(),
    ]
    .boxed()
}

/// A path from the route table with its parameters filled, sometimes with a stray segment.
fn path(chain: &Chain) -> BoxedStrategy<String> {
    let chain = chain.clone();
    (
        prop::sample::select(ROUTES),
        prop_oneof![8 => Just(String::new()), 1 => Just("/".to_owned()), 1 => Just("/x".to_owned())],
    )
        .prop_flat_map(move |(route, suffix)| {
            let kinds: Vec<char> = route
                .split('{')
                .skip(1)
                .filter_map(|part| part.chars().next())
                .collect();
            let values: Vec<BoxedStrategy<String>> =
                kinds.iter().map(|&kind| segment(&chain, kind)).collect();
            (Just(route), values, Just(suffix))
        })
        .prop_map(|(route, values, suffix)| {
            let mut path = String::new();
            let mut values = values.into_iter();
            for (i, part) in route.split('{').enumerate() {
                if i == 0 {
                    path.push_str(part);
                } else {
                    // Skip the placeholder's letter and closing brace.
                    path.push_str(&values.next().unwrap_or_default());
                    path.push_str(&part[2..]);
                }
            }
            path + &suffix
        })
        .boxed()
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        2 => "[0-9a-f]{64}".prop_map(|nonce| format!("?nonce={nonce}")),
        1 => "[0-9a-f]{64}".prop_map(|nonce| format!("?nonce={nonce}&nonce={nonce}")),
        1 => prop::collection::vec(any::<u8>(), 0..70)
            .prop_map(|b| format!("?nonce={}", percent_encode(&b))),
        1 => prop::sample::select(vec!["?%FF=%FE", "?nonce", "?nonce=%zz", "?=&&=", "?nonce[]=1"])
            .prop_map(String::from),
    ]
}

fn body(chain: &Chain) -> impl Strategy<Value = Vec<u8>> {
    let raws = chain.raw_txs.clone();
    prop_oneof![
        2 => Just(Vec::new()),
        4 => mutated_bytes(raws.clone()).prop_map(|raw| hex::encode(raw).into_bytes()),
        1 => prop::sample::select(raws).prop_map(|raw| format!(" {}\n", hex::encode(raw)).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => "[0-9a-fA-F ]{0,300}".prop_map(String::into_bytes),
    ]
}

/// A request: method, path (with query) and body.
fn request(chain: &Chain) -> impl Strategy<Value = (Method, String, Vec<u8>)> {
    (http_method(), path(chain), query(), body(chain))
        .prop_map(|(method, path, query, body)| (method, path + &query, body))
}

/// Sends one request and checks the promise; `Err` describes a broken one.
async fn check(router: &Router, method: Method, uri: &str, body: Vec<u8>) -> Result<(), String> {
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
    else {
        return Ok(()); // Not a request a client could send.
    };
    check_client_answer(router, request, &[]).await.map(drop)
}

/// Builds the chain on a fresh node and returns it with its real values.
async fn build_chain(node: &Litecoind) -> Chain {
    let wallet = node.create_wallet("fuzz").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    let pegin = node
        .activate_mweb(&wallet, 100_000_000, &miner)
        .await
        .unwrap();
    let mut chain = Chain::default();
    let mut txids = vec![pegin];
    for kind in [
        AddressType::Legacy,
        AddressType::P2shSegwit,
        AddressType::Bech32,
    ] {
        let address = wallet.new_address(kind).await.unwrap();
        txids.push(wallet.send_to(&address, 10_000_000).await.unwrap());
        chain.addresses.push(address);
    }
    chain.addresses.push(miner.clone());
    node.mine(1, &miner).await.unwrap();
    // One payment stays in the mempool.
    let pending = wallet.new_address(AddressType::Bech32).await.unwrap();
    txids.push(wallet.send_to(&pending, 5_000_000).await.unwrap());
    chain.addresses.push(pending);

    let (tip, _) = node.tip().await.unwrap();
    for height in [0, 1, 101, tip - 1, tip] {
        let hash: Hash256 = node
            .call("getblockhash", serde_json::json!([height]))
            .await
            .unwrap();
        chain.heights.push(height.to_string());
        chain.block_hashes.push(hash.to_string());
        let block: Value = node
            .call("getblock", serde_json::json!([hash, 1]))
            .await
            .unwrap();
        for txid in block["tx"].as_array().unwrap() {
            txids.push(serde_json::from_value(txid.clone()).unwrap());
        }
    }
    txids.sort();
    txids.dedup();
    for txid in &txids {
        let hex_text: String = node
            .call("getrawtransaction", serde_json::json!([txid]))
            .await
            .unwrap_or_default();
        if let Ok(raw) = hex::decode(hex_text) {
            for output in rot_proto::Transaction::parse(&raw, &rules())
                .map(|tx| {
                    tx.outputs()
                        .iter()
                        .map(|o| o.script_pubkey.to_vec())
                        .collect()
                })
                .unwrap_or_else(|_| Vec::new())
            {
                chain
                    .script_hashes
                    .push(ScriptHash::of(&output).to_string());
            }
            chain.raw_txs.push(raw);
        }
    }
    chain.txids = txids.iter().map(Hash256::to_string).collect();
    chain.script_hashes.sort();
    chain.script_hashes.dedup();
    assert!(
        chain.raw_txs.len() >= 5,
        "{} raw transactions",
        chain.raw_txs.len()
    );
    chain
}

fn rules() -> rot_proto::ChainRules {
    rot_proto::Coins::builtin()
        .get("LTC", rot_proto::Network::Regtest)
        .unwrap()
        .rules
}

/// Waits until the router serves the node's tip and mempool.
async fn wait_synced(router: &Router, node: &Litecoind) {
    let get = |path: &'static str| async move {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = tower::ServiceExt::oneshot(router.clone(), request)
            .await
            .unwrap();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (_, node_tip) = node.tip().await.unwrap();
    for _ in 0..600 {
        let mempool: Vec<Hash256> =
            serde_json::from_str(&get("/mempool/txids").await).unwrap_or_default();
        if get("/blocks/tip/hash").await == node_tip.to_string() && !mempool.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rot-server did not catch up with the node");
}

#[test]
fn every_route_answers_client_garbage_with_a_4xx_and_the_shared_body() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let node = runtime.block_on(Litecoind::start()).unwrap();
    let chain = runtime.block_on(build_chain(&node));
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config::from_map(&rot_server_settings(&node, data_dir.path())).unwrap();
    let shutdown = CancellationToken::new();
    let running = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        rot_server::server::start(config, listener, shutdown.clone())
            .await
            .unwrap()
    });
    let router = rot_server::api::app(running.state.clone(), Duration::from_secs(30));
    runtime.block_on(wait_synced(&router, &node));

    let mut runner = TestRunner::new(config_for_routes());
    let outcome = runner.run(&request(&chain), |(method, uri, body)| {
        runtime
            .block_on(check(&router, method, &uri, body))
            .map_err(TestCaseError::fail)
    });
    shutdown.cancel();
    runtime.block_on(running.join());
    drop(node);
    outcome.unwrap();
}

/// Requests are cheap next to the node's setup: several per default case.
fn config_for_routes() -> proptest::test_runner::Config {
    config(4 * DEFAULT_CASES)
}
