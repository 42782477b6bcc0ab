//! Bad input for every route of the rot-proxy API (heartbeat, public directory, incidents,
//! the relay to servers, operator view),
//! driven in-process (`tower::ServiceExt::oneshot`) through the real router of a proxy started
//! as in production (LTC regtest, operator token set, forwarded-for trusted so that the
//! `X-Forwarded-For` header is input too).
//!
//! Heartbeats are signed for real by a few identities, with fields drawn from valid and broken
//! values, and pointing at small in-test servers that answer the proxy's challenge and info
//! callbacks (so some register, and later requests meet known keys), at a closed port, or at
//! no URL at all; their JSON is also mutated byte by byte after signing. Operator requests
//! carry the right token, a wrong one or none; path parameters are real keys, coin ids,
//! mutated ones or percent garbage. The promise checked on every answer: never a 5xx for
//! client input (except 503 for a full admission queue, which the sequential run never
//! fills), and every 4xx carries the shared error body.
//!
//! Case count: `PROPTEST_CASES` (default [`DEFAULT_CASES`]); `bench/fuzz.sh` runs long.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::get;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rot_harness::fuzz::{
    DEFAULT_CASES, check_client_answer, config, http_method, json_value, mutated_bytes,
    mutated_text, path_garbage, percent_encode,
};
use rot_proto::canonical::MAX_INTEGER;
use rot_proto::message::{
    BackendKind, ChallengeAnswer, ChallengeRequest, ErrorBody, ErrorCode, Heartbeat, IndexProgress,
    ServerInfo,
};
use rot_proto::{Coins, Hash256, Identity, Network, Signed};
use rot_proxy::clock::Clock;
use rot_proxy::config::Config;
use rot_proxy::incidents::IncidentQuery;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "fuzz-operator-token";
/// Identities the fuzzed heartbeats are signed by; each has an in-test server.
const SERVERS: u8 = 3;

fn identity(index: u8) -> Identity {
    Identity::from_seed([index + 1; 32])
}

fn genesis() -> Hash256 {
    Coins::builtin()
        .get("LTC", Network::Regtest)
        .unwrap()
        .genesis_hash
}

/// An in-test server answering the proxy's callbacks as `identity`.
async fn challenge(
    State(identity): State<Arc<Identity>>,
    Query(request): Query<ChallengeRequest>,
) -> Json<Signed<ChallengeAnswer>> {
    let answer = ChallengeAnswer {
        nonce: request.nonce,
        time: Clock::system().now_secs(),
    };
    Json(Signed::sign(&identity, &answer).unwrap())
}

async fn info(State(identity): State<Arc<Identity>>) -> Json<Signed<ServerInfo>> {
    let info = ServerInfo {
        coin: "LTC".into(),
        network: Network::Regtest,
        genesis_hash: genesis(),
        server_key: identity.public_key(),
        software: "fuzz-server/1".into(),
        protocol_version: 1,
        backend: BackendKind::Native,
        height: 100,
        tip_hash: Hash256([7; 32]),
        capabilities: vec![],
        public_url: None,
        time: Clock::system().now_secs(),
        index: IndexProgress::default(),
        proxies: vec![],
    };
    Json(Signed::sign(&identity, &info).unwrap())
}

async fn spawn_server(identity: Identity, stop: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/rot/v1/challenge", get(challenge))
        .route("/rot/v1/info", get(info))
        .fallback(|| async {
            let body = ErrorBody::new(
                ErrorCode::NotFound,
                "this test server only answers callbacks",
            );
            (StatusCode::NOT_FOUND, Json(body))
        })
        .with_state(Arc::new(identity));
    let stop = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    url
}

/// What the generators draw from: the in-test servers' URLs and keys, a closed port.
#[derive(Debug, Clone)]
struct World {
    urls: Vec<String>,
    keys: Vec<String>,
    now: u64,
}

/// `valid` most of the time, else a value of `broken`.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    valid: T,
    broken: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![4 => Just(valid), 1 => broken].boxed()
}

/// A heartbeat signed by one of the identities, each field most often valid (so that some
/// register) and otherwise broken; the URL is the signer's own server unless broken.
fn signed_heartbeat(world: &World) -> impl Strategy<Value = Value> + use<> {
    let urls = world.urls.clone();
    let mut broken_urls = world.urls.clone();
    broken_urls.extend(
        [
            "http://127.0.0.1:1",
            "ftp://127.0.0.1",
            "http://",
            "http://127.0.0.1:1/x?y#z",
            "",
            "http://[::1]:1",
            "http://user@127.0.0.1:1",
        ]
        .map(String::from),
    );
    let now = world.now;
    let text = || {
        prop_oneof![
            3 => prop::sample::select(vec!["ltc", "BTC", "LTC ", "rot-server/1"]).prop_map(String::from),
            1 => any::<String>(),
        ]
    };
    let broken_url = prop_oneof![
        3 => prop::sample::select(broken_urls),
        1 => mutated_text(world.urls.clone()),
        1 => any::<String>(),
    ];
    (
        (0..SERVERS, mostly(None, broken_url.prop_map(Some))),
        (
            mostly("LTC".to_owned(), text()),
            mostly(Network::Regtest, Just(Network::Main)),
            mostly(genesis(), any::<[u8; 32]>().prop_map(Hash256)),
        ),
        (
            0..=MAX_INTEGER,
            mostly(now, 0..=MAX_INTEGER),
            0..=MAX_INTEGER,
        ),
        (text(), prop::collection::vec(any::<String>(), 0..3)),
    )
        .prop_map(
            move |(
                (signer, url),
                (coin, network, genesis_hash),
                (seq, timestamp, height),
                (software, capabilities),
            )| {
                let heartbeat = Heartbeat {
                    coin,
                    network,
                    genesis_hash,
                    url: url.unwrap_or_else(|| urls[usize::from(signer)].clone()),
                    seq,
                    timestamp,
                    height,
                    tip_hash: Hash256([9; 32]),
                    software,
                    backend: BackendKind::Native,
                    capabilities,
                    synced: true,
                };
                serde_json::to_value(Signed::sign(&identity(signer), &heartbeat).unwrap()).unwrap()
            },
        )
}

fn heartbeat_body(world: &World) -> BoxedStrategy<Vec<u8>> {
    let seeds: Vec<Vec<u8>> = (0..SERVERS)
        .map(|signer| {
            let heartbeat = Heartbeat {
                coin: "LTC".into(),
                network: Network::Regtest,
                genesis_hash: genesis(),
                url: world.urls[usize::from(signer)].clone(),
                seq: 1,
                timestamp: world.now,
                height: 1,
                tip_hash: Hash256([9; 32]),
                software: "fuzz".into(),
                backend: BackendKind::Electrum,
                capabilities: vec!["esplora".into()],
                synced: true,
            };
            serde_json::to_vec(&Signed::sign(&identity(signer), &heartbeat).unwrap()).unwrap()
        })
        .collect();
    prop_oneof![
        4 => signed_heartbeat(world).prop_map(|v| v.to_string().into_bytes()),
        3 => mutated_bytes(seeds),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
    .boxed()
}

fn key_segment(world: &World) -> impl Strategy<Value = String> + use<> {
    prop_oneof![
        3 => prop::sample::select(world.keys.clone()),
        1 => mutated_text(world.keys.clone()).prop_map(|t| percent_encode(t.as_bytes())),
        1 => path_garbage(),
        1 => "[0-9a-fA-F]{64}",
    ]
}

fn coin_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["ltc-regtest", "LTC-REGTEST", "ltc", "btc-regtest"])
            .prop_map(String::from),
        1 => path_garbage(),
        1 => any::<String>().prop_map(|t| percent_encode(t.as_bytes())),
    ]
}

/// The query of the incident listings: known fields with valid or broken values.
fn incident_query(world: &World) -> impl Strategy<Value = String> + use<> {
    let field = prop_oneof![
        "(after|limit)=[0-9]{1,25}",
        prop::sample::select(world.keys.clone()).prop_map(|k| format!("server={k}")),
        "(server|coin|after|limit)=[a-z0-9%-]{0,12}",
        prop::collection::vec(any::<u8>(), 0..20)
            .prop_map(|b| format!("after={}", percent_encode(&b))),
    ];
    prop::collection::vec(field, 0..4).prop_map(|fields| {
        if fields.is_empty() {
            String::new()
        } else {
            format!("?{}", fields.join("&"))
        }
    })
}

/// What a wallet asks through the relay: real Esplora paths, traversal attempts, garbage.
fn esplora_path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "/blocks/tip/height", "/blocks/tip/hash", "/mempool/txids", "/fee-estimates",
            "/../v1/admin/stats", "/a/../b", "/%2e%2e/x", "", "/",
        ])
        .prop_map(String::from),
        1 => path_garbage().prop_map(|g| format!("/tx/{g}")),
    ]
}

/// A server's signed question for its own incidents, valid or broken.
fn signed_incident_query(world: &World) -> impl Strategy<Value = Vec<u8>> + use<> {
    let now = world.now;
    (
        0..SERVERS,
        mostly("ltc-regtest".to_owned(), "[a-z-]{0,12}"),
        mostly(now, 0..=MAX_INTEGER),
        0..=MAX_INTEGER,
    )
        .prop_map(|(signer, coin, time, after)| {
            let query = IncidentQuery {
                coin,
                server_key: identity(signer).public_key(),
                time,
                after,
            };
            serde_json::to_vec(&Signed::sign(&identity(signer), &query).unwrap()).unwrap()
        })
}

/// A request to one of the routes (or a stray path), with operator credentials or not.
fn request(
    world: &World,
) -> impl Strategy<Value = (Method, String, Option<String>, Option<String>, Vec<u8>)> {
    // Each route with the method it serves (the first one when it serves several).
    let route = prop_oneof![
        4 => Just((Method::POST, "/v1/heartbeat".to_owned())),
        1 => prop::sample::select(vec!["/", "/v1/coins", "/v1/info", "/v1/peers", "/v1/bootstrap"])
            .prop_map(|p| (Method::GET, p.to_owned())),
        1 => coin_segment().prop_map(|c| (Method::GET, format!("/v1/coins/{c}/servers"))),
        1 => (coin_segment(), incident_query(world))
            .prop_map(|(c, q)| (Method::GET, format!("/v1/coins/{c}/incidents{q}"))),
        2 => (coin_segment(), key_segment(world))
            .prop_map(|(c, k)| (Method::POST, format!("/v1/coins/{c}/servers/{k}/incidents"))),
        2 => (coin_segment(), esplora_path())
            .prop_map(|(c, p)| (Method::GET, format!("/v1/coins/{c}/esplora{p}"))),
        1 => incident_query(world).prop_map(|q| (Method::GET, format!("/v1/admin/incidents{q}"))),
        1 => coin_segment().prop_map(|c| (Method::GET, format!("/v1/admin/coins/{c}/relay"))),
        1 => coin_segment().prop_map(|c| (Method::GET, format!("/v1/admin/coins/{c}/servers"))),
        1 => key_segment(world).prop_map(|k| (Method::GET, format!("/v1/admin/servers/{k}"))),
        1 => key_segment(world).prop_map(|k| (Method::DELETE, format!("/v1/admin/servers/{k}"))),
        1 => Just((Method::GET, "/v1/admin/bans".to_owned())),
        1 => key_segment(world).prop_map(|k| (Method::PUT, format!("/v1/admin/bans/{k}"))),
        1 => key_segment(world).prop_map(|k| (Method::DELETE, format!("/v1/admin/bans/{k}"))),
        1 => Just((Method::GET, "/v1/admin/stats".to_owned())),
        1 => path_garbage().prop_map(|g| (Method::GET, format!("/v1/{g}"))),
    ];
    let method = prop_oneof![3 => Just(None), 1 => http_method().prop_map(Some)];
    let authorization = prop_oneof![
        3 => Just(Some(format!("Bearer {TOKEN}"))),
        1 => Just(None),
        1 => any::<String>().prop_map(Some),
        1 => Just(Some(format!("Bearer {TOKEN}x"))),
    ];
    let forwarded_for = prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(vec!["127.0.0.1", "10.0.0.1, ::1", "nonsense", ", ,"])
            .prop_map(|v| Some(v.to_owned())),
        1 => any::<String>().prop_map(Some),
    ];
    let body = prop_oneof![
        2 => heartbeat_body(world),
        1 => signed_incident_query(world),
        1 => mutated_text(vec![r#"{"reason":"fuzzing"}"#.to_owned()]).prop_map(String::into_bytes),
        1 => Just(Vec::new()),
    ];
    (route, method, authorization, forwarded_for, body).prop_map(
        |((natural, path), method, authorization, forwarded_for, body)| {
            (
                method.unwrap_or(natural),
                path,
                authorization,
                forwarded_for,
                body,
            )
        },
    )
}

#[test]
fn every_route_answers_client_garbage_with_a_4xx_and_the_shared_body() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = CancellationToken::new();
    let data_dir = tempfile::tempdir().unwrap();
    let (world, running) = runtime.block_on(async {
        let mut urls = Vec::new();
        for index in 0..SERVERS {
            urls.push(spawn_server(identity(index), &stop).await);
        }
        let settings: BTreeMap<String, String> = [
            ("ROT_PROXY_COINS", "LTC:regtest".to_owned()),
            ("ROT_PROXY_DATA_DIR", data_dir.path().display().to_string()),
            ("ROT_PROXY_ADMIN_TOKEN", TOKEN.to_owned()),
            ("ROT_PROXY_TRUST_FORWARDED_FOR", "true".to_owned()),
            ("ROT_PROXY_ADMISSION_TIMEOUT_SECS", "2".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let config = Config::from_map(&settings).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = rot_proxy::server::start(config, listener, stop.clone())
            .await
            .unwrap();
        let mut keys: Vec<String> = (0..SERVERS)
            .map(|i| identity(i).public_key().to_string())
            .collect();
        keys.push(Identity::from_seed([99; 32]).public_key().to_string());
        let world = World {
            urls,
            keys,
            now: Clock::system().now_secs(),
        };
        (world, running)
    });
    let router = rot_proxy::api::app(running.state.clone());

    let accepted_heartbeats = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(config(2 * DEFAULT_CASES));
    let outcome = runner.run(
        &request(&world),
        |(method, path, authorization, forwarded_for, body)| {
            let mut builder = Request::builder()
                .method(method)
                .uri(&path)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(value) = authorization {
                builder = builder.header(header::AUTHORIZATION, value);
            }
            if let Some(value) = forwarded_for {
                builder = builder.header("x-forwarded-for", value);
            }
            let Ok(request) = builder.body(Body::from(body)) else {
                return Ok(()); // Not a request a client could send.
            };
            let heartbeat = request.uri().path() == "/v1/heartbeat";
            // The relay depends on servers being up: it may answer that none is.
            let unavailable: &[StatusCode] = if request.uri().path().contains("/esplora") {
                &[
                    StatusCode::BAD_GATEWAY,
                    StatusCode::SERVICE_UNAVAILABLE,
                    StatusCode::GATEWAY_TIMEOUT,
                ]
            } else {
                &[]
            };
            let status = runtime
                .block_on(check_client_answer(&router, request, unavailable))
                .map_err(TestCaseError::fail)?;
            if heartbeat && status.is_success() {
                accepted_heartbeats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        },
    );
    stop.cancel();
    runtime.block_on(running.join());
    outcome.unwrap();
    // The generators reach past signature checks into admission and the directory.
    if runner.config().cases >= 100 {
        assert!(
            accepted_heartbeats.into_inner() > 0,
            "no heartbeat was ever accepted"
        );
    }
}
