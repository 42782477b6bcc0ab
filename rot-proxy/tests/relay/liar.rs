//! A lying server: a test double in front of a real rot-server that signs correctly with its
//! own key (heartbeats, challenge, info) and rewrites answers on demand: a wrong balance, a
//! forged merkle proof, a wrong tip. The proxy must warn it, exclude it within a bounded
//! number of probe cycles with the evidence in an incident, readmit it only after it passes
//! the suite again, and exclude it for longer when it lies again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rot_harness::RotServer;
use rot_proto::message::{ChallengeAnswer, Heartbeat, Nonce, ServerInfo, ServerStatus};
use rot_proto::{Identity, PublicKey, Signed};
use rot_proxy::incidents::IncidentQuery;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::ring::*;

const HONEST: u8 = 0;
/// An extra unspent output in `/address/:a/utxo` that the totals do not count.
const WRONG_BALANCE: u8 = 1;
/// Merkle proofs pointing at another position, with a zeroed branch.
const FORGED_PROOF: u8 = 2;
/// A made-up `/blocks/tip/hash`.
const WRONG_TIP: u8 = 3;
/// Lies that hold together on one server (its totals and outputs agree, its transactions'
/// places are plausible), so only other servers' answers give it away.
const CONSISTENT: u8 = 4;

/// The double: its identity, the real server behind it, and what it lies about.
struct Liar {
    identity: Identity,
    backend: String,
    mode: AtomicU8,
    http: reqwest::Client,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Liar {
    /// The real server's info, as the double's own.
    async fn info(&self) -> ServerInfo {
        let signed: Signed<ServerInfo> = self
            .http
            .get(format!("{}/rot/v1/info", self.backend))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut info: ServerInfo = serde_json::from_value(signed.body().clone()).unwrap();
        info.server_key = self.identity.public_key();
        info.time = now_secs();
        info
    }
}

async fn info(State(liar): State<Arc<Liar>>) -> Response {
    let info = liar.info().await;
    axum::Json(Signed::sign(&liar.identity, &info).unwrap()).into_response()
}

/// Signs challenges itself; malformed ones get the real server's error answer.
async fn challenge(State(liar): State<Arc<Liar>>, request: Request) -> Response {
    let nonce = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("nonce="))
        .and_then(|n| n.parse::<Nonce>().ok());
    match nonce {
        Some(nonce) => {
            let answer = ChallengeAnswer {
                nonce,
                time: now_secs(),
            };
            axum::Json(Signed::sign(&liar.identity, &answer).unwrap()).into_response()
        }
        None => forward(State(liar), request).await,
    }
}

/// Everything else: the real server's answer, rewritten as the mode says.
async fn forward(State(liar): State<Arc<Liar>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let method = request.method().clone();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let upstream = liar
        .http
        .request(method, format!("{}{path}{query}", liar.backend))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let mut body = upstream.bytes().await.unwrap();
    if status.is_success()
        && let Some(lie) = lie(liar.mode.load(Ordering::SeqCst), &path, &body)
    {
        body = lie;
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// The lie told in `mode` about the answer to `path`, if any.
fn lie(mode: u8, path: &str, body: &Bytes) -> Option<Bytes> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (mode, segments.as_slice()) {
        (WRONG_BALANCE, ["address", _, "utxo"]) => {
            let mut utxos: Vec<Value> = serde_json::from_slice(body).ok()?;
            utxos.push(json!({
                "txid": "ab".repeat(32), "vout": 7, "value": 1000,
                "status": {"confirmed": false},
            }));
            Some(Bytes::from(serde_json::to_vec(&utxos).unwrap()))
        }
        (FORGED_PROOF, ["tx", _, "merkle-proof"]) => {
            let mut proof: Value = serde_json::from_slice(body).ok()?;
            proof["pos"] = json!(proof["pos"].as_u64()? ^ 1);
            if let Some(first) = proof["merkle"].get_mut(0) {
                *first = json!("00".repeat(32));
            }
            Some(Bytes::from(serde_json::to_vec(&proof).unwrap()))
        }
        (WRONG_TIP, ["blocks", "tip", "hash"]) => Some(Bytes::from("11".repeat(32))),
        (CONSISTENT, ["address", _]) => {
            let mut stats: Value = serde_json::from_slice(body).ok()?;
            let chain = &mut stats["chain_stats"];
            for (field, extra) in [
                ("funded_txo_sum", 1000),
                ("funded_txo_count", 1),
                ("tx_count", 1),
            ] {
                chain[field] = json!(chain[field].as_u64()? + extra);
            }
            Some(Bytes::from(serde_json::to_vec(&stats).unwrap()))
        }
        (CONSISTENT, ["address", _, "utxo"]) => lie(WRONG_BALANCE, path, body),
        (CONSISTENT, ["tx", _, "status"]) => {
            let mut status: Value = serde_json::from_slice(body).ok()?;
            status["block_height"] = json!(status["block_height"].as_u64()? + 1);
            Some(Bytes::from(serde_json::to_vec(&status).unwrap()))
        }
        _ => None,
    }
}

/// Serves the double until `stop`; returns its URL. It heartbeats to `proxy` every second.
async fn spawn(liar: Arc<Liar>, proxy: &str, stop: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/rot/v1/info", get(info))
        .route("/rot/v1/challenge", get(challenge))
        .fallback(forward)
        .with_state(liar.clone());
    let serving = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(serving.cancelled_owned())
            .await
            .unwrap();
    });
    let (proxy, own_url, stop) = (proxy.to_owned(), url.clone(), stop.clone());
    tokio::spawn(async move {
        for seq in 1.. {
            let info = liar.info().await;
            let beat = Heartbeat {
                coin: info.coin,
                network: info.network,
                genesis_hash: info.genesis_hash,
                url: own_url.clone(),
                seq,
                timestamp: now_secs(),
                height: info.height,
                tip_hash: info.tip_hash,
                software: "liar/1".into(),
                backend: info.backend,
                capabilities: info.capabilities,
                synced: info.index.synced,
            };
            let signed = Signed::sign(&liar.identity, &beat).unwrap();
            let _ = liar
                .http
                .post(format!("{proxy}/v1/heartbeat"))
                .json(&signed)
                .send()
                .await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    url
}

/// What the operator view says about `key`'s standing.
async fn standing(proxy: &Proxy, key: &PublicKey) -> Value {
    proxy.admin(&format!("/v1/admin/servers/{key}")).await["record"]["standing"].clone()
}

/// Lies in `mode` until excluded; returns the exclusion's length in ms (from the incident
/// that excluded it) and the incidents of that exclusion.
async fn lie_until_excluded(
    proxy: &Proxy,
    liar: &Liar,
    mode: u8,
    exclusions: u64,
    check: &str,
) -> u64 {
    let key = liar.identity.public_key();
    let seen = proxy.incidents_of(&key).await.len();
    let started = Instant::now();
    liar.mode.store(mode, Ordering::SeqCst);
    eventually(&format!("the liar to be excluded for {check}"), || async {
        let entry = proxy.entry(&key).await;
        let done = entry
            .as_ref()
            .is_some_and(|e| e.status == ServerStatus::Excluded && e.exclusions == exclusions);
        (done, format!("{entry:?}"))
    })
    .await;
    // Within a bounded number of probe cycles: two failed suites at most ~1 s apart.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "excluded only after {:?}",
        started.elapsed()
    );
    let incidents = proxy.incidents_of(&key).await;
    let new = &incidents[seen..];
    let lied = new
        .iter()
        .find(|i| i["check"] == check)
        .unwrap_or_else(|| panic!("no {check} incident among {new:#?}"));
    assert!(lied["evidence"].is_object(), "{lied:#}");
    let exclusion = new
        .iter()
        .find(|i| i["consequence"] == "exclusion")
        .expect("an incident that excluded");
    assert!(new.iter().any(|i| i["consequence"] == "warning"));
    let until = standing(proxy, &key).await["excluded_until_ms"]
        .as_u64()
        .unwrap();
    // Wallets are not sent to it while it is excluded.
    for _ in 0..20 {
        let (status, headers, _) = proxy.relay("/blocks/tip/height").await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_ne!(answered_by(&headers), key);
    }
    until - exclusion["time"].as_u64().unwrap() * 1000
}

/// Two honest servers and the double in front of a third, all serving.
struct Scene {
    node: Node,
    proxy: Proxy,
    liar: Arc<Liar>,
    keys: [PublicKey; 3],
    stop: CancellationToken,
    _servers: [RotServer; 3],
}

async fn scene(settings: &[(&str, &str)]) -> Scene {
    let node = Node::funded().await;
    let mut all = vec![
        ("ROT_PROXY_WARNINGS_TO_EXCLUDE", "2"),
        ("ROT_PROXY_EXCLUSION_BASE_SECS", "2"),
        ("ROT_PROXY_EXCLUSION_MAX_SECS", "60"),
    ];
    all.extend_from_slice(settings);
    let proxy = Proxy::start(&all).await;
    let honest = [
        proxy.server(&node.node).await,
        proxy.server(&node.node).await,
    ];
    let behind = RotServer::start(&node.node).await.unwrap();
    behind.wait_synced(&node.node, PATIENCE).await.unwrap();
    let liar = Arc::new(Liar {
        identity: Identity::from_seed([66; 32]),
        backend: behind.url.clone(),
        mode: AtomicU8::new(HONEST),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    });
    let stop = CancellationToken::new();
    spawn(liar.clone(), &proxy.url, &stop).await;
    let keys = [
        key_of(&honest[0]).await,
        key_of(&honest[1]).await,
        liar.identity.public_key(),
    ];
    proxy
        .wait_serving(&keys, Some(node.node.tip().await.unwrap()))
        .await;
    let [a, b] = honest;
    Scene {
        node,
        proxy,
        liar,
        keys,
        stop,
        _servers: [a, b, behind],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_server_is_warned_excluded_and_excluded_longer_when_it_lies_again() {
    let Scene {
        node,
        proxy,
        liar,
        keys,
        stop,
        _servers,
    } = scene(&[("ROT_PROXY_SUITE_INTERVAL_MS", "700")]).await;
    let key = liar.identity.public_key();

    let first = lie_until_excluded(&proxy, &liar, WRONG_BALANCE, 1, "address-balance").await;
    let entry = proxy.entry(&key).await.unwrap();
    assert!(entry.warnings >= 2, "{entry:?}");
    // The server's own operator sees the evidence, by a query signed with its key.
    let query = Signed::sign(
        &liar.identity,
        &IncidentQuery {
            coin: COIN.into(),
            server_key: key,
            time: now_secs(),
            after: 0,
        },
    )
    .unwrap();
    let own: Value = proxy
        .http
        .post(format!(
            "{}/v1/coins/{COIN}/servers/{key}/incidents",
            proxy.url
        ))
        .json(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let evidence = own["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["check"] == "address-balance")
        .map(|i| i["evidence"]["evidence"].clone())
        .unwrap();
    assert!(
        evidence["utxo_sum"] != evidence["expected_sum"],
        "{evidence:#}"
    );
    // Wallets see the status and counts, not the evidence.
    let (_, _, public) = proxy
        .get(
            &format!("{}/v1/coins/{COIN}/incidents?server={key}", proxy.url),
            None,
        )
        .await;
    let public: Value = serde_json::from_str(&public).unwrap();
    assert!(
        public["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["evidence"].is_null())
    );

    // Honest again, it is readmitted once the exclusion ends and the suite passes.
    liar.mode.store(HONEST, Ordering::SeqCst);
    proxy.wait_serving(&keys, None).await;
    let entry = proxy.entry(&key).await.unwrap();
    assert_eq!(entry.status, ServerStatus::Admitted, "{entry:?}");
    assert_eq!(entry.exclusions, 1, "the count stays");

    let second = lie_until_excluded(&proxy, &liar, FORGED_PROOF, 2, "transactions").await;
    assert!(second > first, "{second} ms after {first} ms");
    liar.mode.store(HONEST, Ordering::SeqCst);
    proxy.wait_serving(&keys, None).await;

    let third = lie_until_excluded(&proxy, &liar, WRONG_TIP, 3, "tip").await;
    assert!(third > second, "{third} ms after {second} ms");
    // The honest servers were never warned.
    for honest_key in &keys[..2] {
        let entry = proxy.entry(honest_key).await.unwrap();
        assert_eq!((entry.warnings, entry.exclusions), (0, 0), "{entry:?}");
    }
    drop(node);
    stop.cancel();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_contradicting_the_others_loses_cross_checks() {
    // Suites rarely; cross-checks often: only the other servers' answers give this liar away.
    let Scene {
        node,
        proxy,
        liar,
        keys,
        stop,
        _servers,
    } = scene(&[
        ("ROT_PROXY_SUITE_INTERVAL_MS", "600000"),
        ("ROT_PROXY_CROSS_CHECK_INTERVAL_MS", "300"),
    ])
    .await;
    let key = liar.identity.public_key();
    lie_until_excluded(&proxy, &liar, CONSISTENT, 1, "cross-check").await;
    let incidents = proxy.incidents_of(&key).await;
    let lost = incidents
        .iter()
        .find(|i| i["check"] == "cross-check")
        .unwrap();
    let evidence = &lost["evidence"];
    // Every server's answer, the majority's, and the liar's answer when asked again.
    let answers = evidence["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{evidence:#}");
    assert_eq!(evidence["majority_servers"], 2);
    let own = answers.iter().find(|a| a["server"] == json!(key)).unwrap();
    assert_ne!(own["answer"], evidence["majority"]);
    assert_eq!(evidence["asked_again"], own["answer"]);
    for honest_key in &keys[..2] {
        assert!(proxy.incidents_of(honest_key).await.is_empty());
    }
    drop(node);
    stop.cancel();
    proxy.stop().await;
}
