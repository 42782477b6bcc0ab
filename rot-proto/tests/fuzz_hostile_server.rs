//! Bad input from the other side: a hostile server. A relay in front of a real rot-server
//! (over a regtest litecoind with MWEB active) edits its answers: bytes flipped, inserted,
//! removed or truncated, JSON nodes replaced, removed or added, the status changed, the body
//! emptied. Each case draws one plan per answer. The wallet client (`client::Esplora`) and the
//! conformance suite a proxy runs (`conformance::Conformance`) read those answers; they must
//! report what is wrong, never panic, and the suite must always produce its report.
//!
//! Case count: `PROPTEST_CASES` (default an eighth of [`DEFAULT_CASES`]: each case is a whole
//! conformance run); `bench/fuzz.sh` runs long.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rot_harness::fuzz::{ByteEdits, DEFAULT_CASES, JsonEdits, byte_edits, config, json_edits};
use rot_harness::{AddressType, Litecoind, RotServer};
use rot_proto::client::Esplora;
use rot_proto::conformance::{Conformance, Options, Verdict};
use rot_proto::transport::Transport;
use rot_proto::{Address, CoinProfile, Coins, Hash256, Network, Nonce};
use serde_json::Value;

/// What the relay does to one answer.
#[derive(Debug, Clone)]
enum Plan {
    Honest,
    Bytes(ByteEdits),
    Json(JsonEdits),
    Status(u16),
    Empty,
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![
        4 => Just(Plan::Honest),
        3 => byte_edits().prop_map(Plan::Bytes),
        3 => json_edits().prop_map(Plan::Json),
        1 => prop::sample::select(vec![200u16, 204, 301, 400, 404, 429, 500, 501, 503])
            .prop_map(Plan::Status),
        1 => Just(Plan::Empty),
    ]
}

/// The relay: forwards to the honest server and applies the next plan to each answer.
#[derive(Debug)]
struct Relay {
    http: reqwest::Client,
    upstream: String,
    plans: Mutex<(Vec<Plan>, usize)>,
}

impl Relay {
    fn next_plan(&self) -> Plan {
        let mut guard = self.plans.lock().unwrap();
        let (plans, next) = &mut *guard;
        let plan = plans
            .get(*next % plans.len().max(1))
            .cloned()
            .unwrap_or(Plan::Honest);
        *next += 1;
        plan
    }
}

async fn relay(State(relay): State<Arc<Relay>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(answer) = relay
        .http
        .request(method, format!("{}{path}", relay.upstream))
        .body(body)
        .send()
        .await
    else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut status = answer.status().as_u16();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut bytes = answer.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    match relay.next_plan() {
        Plan::Honest => {}
        Plan::Bytes(edits) => edits.apply(&mut bytes),
        Plan::Json(edits) => {
            if let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) {
                edits.apply(&mut value);
                bytes = value.to_string().into_bytes();
            }
        }
        Plan::Status(code) => status = code,
        Plan::Empty => bytes.clear(),
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, bytes).into_response();
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

async fn start_relay(upstream: &str) -> (String, Arc<Relay>) {
    let relay = Arc::new(Relay {
        http: reqwest::Client::new(),
        upstream: upstream.to_owned(),
        plans: Mutex::new((Vec::new(), 0)),
    });
    let app = Router::new()
        .fallback(self::relay)
        .with_state(relay.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, relay)
}

fn profile() -> CoinProfile {
    Coins::builtin()
        .get("LTC", Network::Regtest)
        .unwrap()
        .clone()
}

/// Everything a wallet asks, through the relay; answers may be wrong, nothing may panic.
async fn wallet_queries(api: &Esplora, address: &Address) {
    let tip = api.tip_hash().await.ok().map(|served| served.value);
    let _ = api.tip_height().await;
    let _ = api.block_hash(1).await;
    if let Some(tip) = tip {
        let _ = api.header(&tip).await;
        if let Ok(txids) = api.block_txids(&tip).await {
            for txid in txids.value.iter().take(3) {
                let _ = api.raw_tx(txid).await;
                if let Ok(proof) = api.merkle_proof(txid).await {
                    let _ = proof.value.verify(*txid, &Hash256::default());
                }
                let _ = api.outspend(txid, 0).await;
            }
        }
    }
    let _ = api.address_stats(address).await;
    let _ = api.utxos(address).await;
    let _ = api.confirmed_history(address).await;
    let _ = api.info().await.map(|served| served.value.verify());
    if let Ok(nonce) = Nonce::random() {
        let _ = api.challenge(&nonce).await;
    }
}

#[test]
fn clients_survive_a_hostile_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (node, server, payee) = runtime.block_on(async {
        let node = Litecoind::start().await.unwrap();
        let wallet = node.create_wallet("hostile").await.unwrap();
        let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
        node.mine(101, &miner).await.unwrap();
        node.activate_mweb(&wallet, 100_000_000, &miner)
            .await
            .unwrap();
        let payee = wallet.new_address(AddressType::Legacy).await.unwrap();
        wallet.send_to(&payee, 20_000_000).await.unwrap();
        node.mine(1, &miner).await.unwrap();
        let server = RotServer::start(&node).await.unwrap();
        server
            .wait_synced(&node, Duration::from_secs(60))
            .await
            .unwrap();
        (node, server, payee)
    });
    let (relay_url, relay) = runtime.block_on(start_relay(&server.url));
    let conformance = Conformance::new(Transport::default(), profile());
    let api = Esplora::new(Transport::default(), &relay_url, profile()).unwrap();
    let address = Address::parse(&profile(), &payee).unwrap();
    let options = |seed| Options {
        headers: 4,
        sampled_txs: 3,
        seed,
        addresses: vec![payee.clone()],
        ..Options::default()
    };

    // Honest, the relay is invisible: the server passes.
    let honest = runtime
        .block_on(conformance.run(&relay_url, &options(1)))
        .unwrap();
    assert_eq!(honest.verdict(), Verdict::Pass, "{honest:#?}");

    let mut runner = TestRunner::new(config(DEFAULT_CASES / 8));
    let outcome = runner.run(
        &(prop::collection::vec(plan(), 1..48), any::<u64>()),
        |(plans, seed)| {
            *relay.plans.lock().unwrap() = (plans, 0);
            let report = runtime.block_on(async {
                wallet_queries(&api, &address).await;
                conformance.run(&relay_url, &options(seed)).await
            });
            prop_assert!(report.is_ok(), "no report: {report:?}");
            Ok(())
        },
    );
    runtime.block_on(server.stop());
    drop(node);
    outcome.unwrap();
}
