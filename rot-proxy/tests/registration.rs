//! Registration over real HTTP on loopback: a rot-proxy started in-process, and small
//! in-test "servers" (axum apps signing with real rot-proto identities) that heartbeat to it
//! and answer its challenge and info callbacks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::get;
use reqwest::StatusCode;
use rot_proto::coin::{CoinProfile, Coins};
use rot_proto::message::{
    BackendKind, ChallengeAnswer, ChallengeRequest, ErrorBody, Heartbeat, HeartbeatAck,
    IndexProgress, ServerInfo, ServerStatus,
};
use rot_proto::{Hash256, Identity, Network, PublicKey, Signed};
use rot_proxy::clock::Clock;
use rot_proxy::config::Config;
use rot_proxy::directory::{AdminServers, ServersAnswer};
use rot_proxy::server::{Running, start_with_clock};
use rot_proxy::stats::StatsAnswer;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "operator-token-for-tests";
const STALE_SECS: u64 = 120;

fn regtest() -> CoinProfile {
    Coins::builtin()
        .get("LTC", Network::Regtest)
        .unwrap()
        .clone()
}

fn now_secs() -> u64 {
    Clock::system().now_secs()
}

/// An in-test server: answers challenges as `answer_as` and info as `info`.
#[derive(Clone)]
struct FakeServer {
    answer_as: Identity,
    info: ServerInfo,
    delay: Duration,
    clock: Clock,
}

impl FakeServer {
    fn new(identity: &Identity, clock: &Clock) -> Self {
        let profile = regtest();
        Self {
            answer_as: identity.clone(),
            info: ServerInfo {
                coin: profile.ticker.clone(),
                network: profile.network,
                genesis_hash: profile.genesis_hash,
                server_key: identity.public_key(),
                software: "fake-server/1".into(),
                protocol_version: 1,
                backend: BackendKind::Native,
                height: 100,
                tip_hash: Hash256([7; 32]),
                capabilities: vec![],
                public_url: None,
                time: 0,
                index: IndexProgress::default(),
                proxies: vec![],
            },
            delay: Duration::ZERO,
            clock: clock.clone(),
        }
    }

    /// Serves on a fresh loopback port until `stop` is cancelled; returns its base URL.
    async fn spawn(self, stop: &CancellationToken) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/rot/v1/challenge", get(challenge))
            .route("/rot/v1/info", get(info))
            .with_state(Arc::new(self));
        let stop = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        url
    }
}

async fn challenge(
    State(fake): State<Arc<FakeServer>>,
    Query(request): Query<ChallengeRequest>,
) -> Json<Signed<ChallengeAnswer>> {
    tokio::time::sleep(fake.delay).await;
    let answer = ChallengeAnswer {
        nonce: request.nonce,
        time: fake.clock.now_secs(),
    };
    Json(Signed::sign(&fake.answer_as, &answer).unwrap())
}

async fn info(State(fake): State<Arc<FakeServer>>) -> Json<Signed<ServerInfo>> {
    let mut info = fake.info.clone();
    info.time = fake.clock.now_secs();
    info.server_key = fake.answer_as.public_key();
    Json(Signed::sign(&fake.answer_as, &info).unwrap())
}

/// A proxy serving LTC regtest on loopback, with its data in `data_dir`.
struct Proxy {
    url: String,
    running: Option<Running>,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Proxy {
    async fn start(data_dir: &Path, clock: &Clock, extra: &[(&str, &str)]) -> Self {
        let mut map: BTreeMap<String, String> = [
            ("ROT_PROXY_COINS", "LTC:regtest".to_owned()),
            ("ROT_PROXY_DATA_DIR", data_dir.display().to_string()),
            ("ROT_PROXY_ADMIN_TOKEN", TOKEN.to_owned()),
            ("ROT_PROXY_STALE_SECS", STALE_SECS.to_string()),
            ("ROT_PROXY_REGISTER_BURST", "100".to_owned()),
            ("ROT_PROXY_MAX_SERVERS_PER_ADDR", "100".to_owned()),
            // These fake servers answer registration callbacks only: no probes or checks.
            ("ROT_PROXY_CHECKS", "off".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in extra {
            map.insert((*key).to_owned(), (*value).to_owned());
        }
        let config = Config::from_map(&map).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let running = start_with_clock(config, listener, shutdown.clone(), clock.clone())
            .await
            .unwrap();
        Self {
            url: format!("http://{}", running.addr),
            running: Some(running),
            shutdown,
            http: reqwest::Client::new(),
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.join().await;
        }
    }

    async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/heartbeat", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    async fn heartbeat(&self, signed: &Signed<Heartbeat>) -> (StatusCode, Value) {
        self.post_raw(serde_json::to_vec(signed).unwrap()).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        read(
            self.http
                .get(format!("{}{path}", self.url))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    async fn listed(&self) -> Vec<PublicKey> {
        let (status, body) = self.get("/v1/coins/ltc-regtest/servers").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: ServersAnswer = serde_json::from_value(body).unwrap();
        answer.servers.iter().map(|e| e.server_key).collect()
    }

    async fn admin_servers(&self) -> AdminServers {
        let (status, body) = self
            .admin(
                reqwest::Method::GET,
                "/v1/admin/coins/ltc-regtest/servers",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn stats(&self) -> StatsAnswer {
        let (status, body) = self
            .admin(reqwest::Method::GET, "/v1/admin/stats", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let text = response.text().await.unwrap();
    let mut body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    if let (Some(value), Some(object)) = (retry_after, body.as_object_mut()) {
        object.insert("retry_after".into(), json!(value.to_str().unwrap()));
    }
    (status, body)
}

fn beat(identity: &Identity, url: &str, seq: u64, timestamp: u64) -> Signed<Heartbeat> {
    beat_with(identity, url, seq, timestamp, |_| {})
}

fn beat_with(
    identity: &Identity,
    url: &str,
    seq: u64,
    timestamp: u64,
    edit: impl FnOnce(&mut Heartbeat),
) -> Signed<Heartbeat> {
    let profile = regtest();
    let mut heartbeat = Heartbeat {
        coin: profile.ticker.clone(),
        network: profile.network,
        genesis_hash: profile.genesis_hash,
        url: url.to_owned(),
        seq,
        timestamp,
        height: 100 + seq,
        tip_hash: Hash256([seq as u8; 32]),
        software: "fake-server/1".into(),
        backend: BackendKind::Native,
        capabilities: vec!["esplora".into()],
        synced: true,
    };
    edit(&mut heartbeat);
    Signed::sign(identity, &heartbeat).unwrap()
}

fn assert_refused(result: &(StatusCode, Value), status: u16, code: &str) {
    let (got, body) = result;
    assert_eq!(got.as_u16(), status, "{body}");
    let error: ErrorBody = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(error.error.code, code, "{}", error.error.message);
}

fn assert_admitted(result: &(StatusCode, Value), seq: u64) {
    let (status, body) = result;
    assert_eq!(*status, StatusCode::OK, "{body}");
    let ack: HeartbeatAck = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(ack.status, ServerStatus::Admitted);
    assert_eq!(ack.seq, seq);
}

struct World {
    dir: tempfile::TempDir,
    clock: Clock,
    stop: CancellationToken,
}

impl World {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Clock::manual(now_secs()),
            stop: CancellationToken::new(),
        }
    }

    async fn proxy(&self, extra: &[(&str, &str)]) -> Proxy {
        Proxy::start(self.dir.path(), &self.clock, extra).await
    }

    /// A fake server for `identity`, answering honestly.
    async fn server(&self, identity: &Identity) -> String {
        FakeServer::new(identity, &self.clock)
            .spawn(&self.stop)
            .await
    }

    fn now(&self) -> u64 {
        self.clock.now_secs()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn registration_goes_from_pending_to_admitted_after_challenge_and_info() {
    let world = World::new();
    let proxy = world.proxy(&[]).await;
    let id = Identity::generate().unwrap();
    let mut slow = FakeServer::new(&id, &world.clock);
    slow.delay = Duration::from_millis(500);
    let url = slow.spawn(&world.stop).await;

    let signed = beat(&id, &url, 1, world.now());
    let heartbeat = {
        let http = proxy.http.clone();
        let endpoint = format!("{}/v1/heartbeat", proxy.url);
        tokio::spawn(
            async move { read(http.post(endpoint).json(&signed).send().await.unwrap()).await },
        )
    };
    // While the challenge is being answered the key is pending, and not listed.
    let mut seen_pending = false;
    for _ in 0..40 {
        let view = proxy.admin_servers().await;
        if view.pending.iter().any(|p| p.server_key == id.public_key()) {
            assert_eq!(view.pending[0].url, url);
            seen_pending = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen_pending, "the admission never showed as pending");
    assert!(proxy.listed().await.is_empty());

    assert_admitted(&heartbeat.await.unwrap(), 1);
    let (_, body) = proxy.get("/v1/coins/ltc-regtest/servers").await;
    let listed: ServersAnswer = serde_json::from_value(body).unwrap();
    let entry = &listed.servers[0];
    assert_eq!(entry.server_key, id.public_key());
    assert_eq!(entry.status, ServerStatus::Admitted);
    assert_eq!(entry.height, 101);
    assert_eq!(entry.software, "fake-server/1");
    assert!(entry.latency_ms.is_some_and(|ms| ms >= 500), "{entry:?}");
    assert_eq!(entry.url, None, "addresses are not public by default");

    let view = proxy.admin_servers().await;
    assert!(view.pending.is_empty());
    assert_eq!(view.servers[0].record.url.as_deref(), Some(url.as_str()));
    assert_eq!(
        view.servers[0].record.addr,
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(view.servers[0].record.last_seq, 1);

    let (_, coins) = proxy.get("/v1/coins").await;
    assert_eq!(coins["coins"][0]["id"], "ltc-regtest");
    assert_eq!(coins["coins"][0]["healthy_servers"], 1);
    assert_eq!(coins["coins"][0]["tip_height"], 101);

    // The next heartbeat needs no callback.
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 2, world.now())).await, 2);
    let stats = proxy.stats().await;
    assert_eq!(stats.admissions, 1);
    assert_eq!(stats.heartbeats_accepted, 2);
    proxy.stop().await;
}

#[tokio::test]
async fn published_urls_are_shown_to_wallets() {
    let world = World::new();
    let proxy = world.proxy(&[("ROT_PROXY_PUBLISH_URLS", "true")]).await;
    let id = Identity::generate().unwrap();
    let url = world.server(&id).await;
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 1, world.now())).await, 1);
    let (_, body) = proxy.get("/v1/coins/ltc-regtest/servers").await;
    assert_eq!(body["servers"][0]["url"], json!(url));
    proxy.stop().await;
}

#[tokio::test]
async fn bad_heartbeats_are_refused_with_a_reason_and_nothing_is_stored() {
    let world = World::new();
    let proxy = world
        .proxy(&[("ROT_PROXY_MAX_HEARTBEAT_BYTES", "2048")])
        .await;
    let id = Identity::generate().unwrap();
    let url = world.server(&id).await;
    let now = world.now();

    let mut forged = serde_json::to_value(beat(&id, &url, 1, now)).unwrap();
    forged["body"]["height"] = json!(999);
    assert_refused(
        &proxy.post_raw(forged.to_string()).await,
        401,
        "bad_signature",
    );
    let wrong_coin = beat_with(&id, &url, 1, now, |h| h.coin = "BTC".into());
    assert_refused(&proxy.heartbeat(&wrong_coin).await, 400, "bad_request");
    let wrong_network = beat_with(&id, &url, 1, now, |h| h.network = Network::Main);
    assert_refused(&proxy.heartbeat(&wrong_network).await, 400, "bad_request");
    let wrong_genesis = beat_with(&id, &url, 1, now, |h| h.genesis_hash = Hash256([1; 32]));
    assert_refused(&proxy.heartbeat(&wrong_genesis).await, 400, "bad_request");
    assert_refused(
        &proxy.heartbeat(&beat(&id, &url, 1, now - 121)).await,
        409,
        "stale",
    );
    assert_refused(
        &proxy.heartbeat(&beat(&id, &url, 1, now + 121)).await,
        409,
        "stale",
    );
    assert_refused(&proxy.post_raw("{\"tag\": ").await, 400, "bad_request");
    assert_refused(
        &proxy.post_raw(vec![b' '; 4096]).await,
        413,
        "payload_too_large",
    );
    let bad_url = beat(&id, "ftp://127.0.0.1/", 1, now);
    assert_refused(&proxy.heartbeat(&bad_url).await, 400, "bad_request");

    let view = proxy.admin_servers().await;
    assert!(view.servers.is_empty() && view.pending.is_empty());
    let stats = proxy.stats().await;
    for (reason, count) in [
        ("bad_signature", 1),
        ("coin_not_served", 2),
        ("genesis_mismatch", 1),
        ("clock_skew", 2),
        ("bad_request", 1),
        ("payload_too_large", 1),
        ("invalid_url", 1),
    ] {
        assert_eq!(
            stats.rejections.get(reason),
            Some(&count),
            "{reason}: {:?}",
            stats.rejections
        );
    }
    assert_eq!(stats.heartbeats_accepted, 0);
    // After all that, the honest heartbeat still registers.
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 1, now)).await, 1);
    proxy.stop().await;
}

#[tokio::test]
async fn replayed_sequence_numbers_are_refused() {
    let world = World::new();
    let proxy = world.proxy(&[]).await;
    let id = Identity::generate().unwrap();
    let url = world.server(&id).await;
    let first = beat(&id, &url, 5, world.now());
    assert_admitted(&proxy.heartbeat(&first).await, 5);
    assert_refused(&proxy.heartbeat(&first).await, 409, "replayed");
    assert_refused(
        &proxy.heartbeat(&beat(&id, &url, 4, world.now())).await,
        409,
        "replayed",
    );
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 6, world.now())).await, 6);
    assert_eq!(proxy.stats().await.rejections["replayed"], 2);
    proxy.stop().await;
}

#[tokio::test]
async fn a_url_must_answer_with_the_heartbeat_key() {
    let world = World::new();
    let proxy = world.proxy(&[]).await;
    let victim = Identity::generate().unwrap();
    let victim_url = world.server(&victim).await;
    let attacker = Identity::generate().unwrap();

    // Pointing at somebody else's server: it answers with its own key.
    let hijack = beat(&attacker, &victim_url, 1, world.now());
    assert_refused(&proxy.heartbeat(&hijack).await, 409, "conflict");
    // Pointing at nothing at all.
    let nowhere = beat(&attacker, "http://127.0.0.1:9", 1, world.now());
    assert_refused(&proxy.heartbeat(&nowhere).await, 400, "bad_request");
    // A server whose signed info is for another chain.
    let mut other_chain = FakeServer::new(&attacker, &world.clock);
    other_chain.info.genesis_hash = Hash256([9; 32]);
    let other_url = other_chain.spawn(&world.stop).await;
    let (status, body) = proxy
        .heartbeat(&beat(&attacker, &other_url, 1, world.now()))
        .await;
    assert_refused(&(status, body.clone()), 400, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("genesis"),
        "{body}"
    );

    assert!(proxy.admin_servers().await.servers.is_empty());
    let stats = proxy.stats().await;
    assert_eq!(stats.rejections["key_mismatch"], 1);
    assert_eq!(stats.rejections["callback_failed"], 1);
    assert_eq!(stats.rejections["info_mismatch"], 1);
    proxy.stop().await;
}

#[tokio::test]
async fn a_url_held_by_another_key_is_refused_and_a_url_change_is_challenged() {
    let world = World::new();
    let proxy = world.proxy(&[]).await;
    let a = Identity::generate().unwrap();
    let a_url = world.server(&a).await;
    assert_admitted(&proxy.heartbeat(&beat(&a, &a_url, 1, world.now())).await, 1);

    // B serves at its own URL, but claims A's.
    let b = Identity::generate().unwrap();
    let b_url = world.server(&b).await;
    assert_refused(
        &proxy.heartbeat(&beat(&b, &a_url, 1, world.now())).await,
        409,
        "conflict",
    );
    assert_admitted(&proxy.heartbeat(&beat(&b, &b_url, 1, world.now())).await, 1);

    // A known key moving to another server's URL is challenged there, and refused.
    assert_refused(
        &proxy.heartbeat(&beat(&a, &b_url, 2, world.now())).await,
        409,
        "conflict",
    );
    let c = Identity::generate().unwrap();
    let c_url = world.server(&c).await;
    assert_refused(
        &proxy.heartbeat(&beat(&a, &c_url, 3, world.now())).await,
        409,
        "conflict",
    );
    // A real move passes the challenge at the new URL.
    let a_new_url = world.server(&a).await;
    assert_admitted(
        &proxy.heartbeat(&beat(&a, &a_new_url, 4, world.now())).await,
        4,
    );
    let view = proxy.admin_servers().await;
    let a_view = view
        .servers
        .iter()
        .find(|s| s.record.server_key == a.public_key())
        .unwrap();
    assert_eq!(a_view.record.url.as_deref(), Some(a_new_url.as_str()));
    assert_eq!(proxy.stats().await.admissions, 3);
    proxy.stop().await;
}

#[tokio::test]
async fn restart_keeps_servers_and_sequence_numbers() {
    let world = World::new();
    let id = Identity::generate().unwrap();
    let server_stop = CancellationToken::new();
    let url = FakeServer::new(&id, &world.clock).spawn(&server_stop).await;
    let proxy = world.proxy(&[]).await;
    let heartbeat = beat(&id, &url, 10, world.now());
    assert_admitted(&proxy.heartbeat(&heartbeat).await, 10);
    let banned = Identity::generate().unwrap().public_key();
    let (status, _) = proxy
        .admin(
            reqwest::Method::PUT,
            &format!("/v1/admin/bans/{banned}"),
            Some(json!({"reason": "kept"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    proxy.stop().await;
    // The server stops answering callbacks: a restarted proxy must not need them.
    server_stop.cancel();

    let proxy = world.proxy(&[]).await;
    assert_eq!(proxy.listed().await, vec![id.public_key()]);
    assert_refused(&proxy.heartbeat(&heartbeat).await, 409, "replayed");
    assert_admitted(
        &proxy.heartbeat(&beat(&id, &url, 11, world.now())).await,
        11,
    );
    let (_, bans) = proxy
        .admin(reqwest::Method::GET, "/v1/admin/bans", None)
        .await;
    assert_eq!(bans[0]["reason"], "kept");
    proxy.stop().await;
}

#[tokio::test]
async fn silent_servers_go_stale_and_come_back() {
    let world = World::new();
    let proxy = world.proxy(&[]).await;
    let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (a_url, b_url) = (world.server(&a).await, world.server(&b).await);
    assert_admitted(&proxy.heartbeat(&beat(&a, &a_url, 1, world.now())).await, 1);
    assert_admitted(&proxy.heartbeat(&beat(&b, &b_url, 1, world.now())).await, 1);

    world.clock.advance(Duration::from_secs(STALE_SECS - 10));
    assert_admitted(&proxy.heartbeat(&beat(&a, &a_url, 2, world.now())).await, 2);
    world.clock.advance(Duration::from_secs(20));
    // b said nothing for STALE_SECS + 10: left out of answers, but not forgotten.
    assert_eq!(proxy.listed().await, vec![a.public_key()]);
    let view = proxy.admin_servers().await;
    let b_view = view
        .servers
        .iter()
        .find(|s| s.record.server_key == b.public_key())
        .unwrap();
    assert_eq!(b_view.status, ServerStatus::Stale);
    assert_eq!(b_view.last_heartbeat_age_secs, STALE_SECS + 10);
    let (_, coins) = proxy.get("/v1/coins").await;
    assert_eq!(coins["coins"][0]["healthy_servers"], 1);

    // It resumes: listed again, no new admission needed.
    assert_admitted(&proxy.heartbeat(&beat(&b, &b_url, 2, world.now())).await, 2);
    let mut listed = proxy.listed().await;
    listed.sort();
    let mut expected = vec![a.public_key(), b.public_key()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(proxy.stats().await.admissions, 2);
    proxy.stop().await;
}

#[tokio::test]
async fn one_address_hosts_a_capped_number_of_servers() {
    let world = World::new();
    let proxy = world
        .proxy(&[("ROT_PROXY_MAX_SERVERS_PER_ADDR", "2")])
        .await;
    for expected_ok in [true, true, false] {
        let id = Identity::generate().unwrap();
        let url = world.server(&id).await;
        let result = proxy.heartbeat(&beat(&id, &url, 1, world.now())).await;
        if expected_ok {
            assert_admitted(&result, 1);
        } else {
            assert_refused(&result, 409, "conflict");
            assert!(
                result.1["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("127.0.0.1")
            );
        }
    }
    assert_eq!(proxy.listed().await.len(), 2);
    assert_eq!(proxy.stats().await.rejections["address_full"], 1);
    proxy.stop().await;
}

#[tokio::test]
async fn registrations_are_rate_limited_per_client_ip() {
    let world = World::new();
    let proxy = world
        .proxy(&[
            ("ROT_PROXY_REGISTER_BURST", "2"),
            ("ROT_PROXY_REGISTER_PER_MINUTE", "1"),
        ])
        .await;
    for _ in 0..2 {
        let id = Identity::generate().unwrap();
        let url = world.server(&id).await;
        assert_admitted(&proxy.heartbeat(&beat(&id, &url, 1, world.now())).await, 1);
    }
    let id = Identity::generate().unwrap();
    let url = world.server(&id).await;
    let limited = proxy.heartbeat(&beat(&id, &url, 1, world.now())).await;
    assert_refused(&limited, 429, "rate_limited");
    assert_eq!(limited.1["retry_after"], "60");
    // Known servers' heartbeats are not registrations and are not limited.
    assert_eq!(proxy.listed().await.len(), 2);
    world.clock.advance(Duration::from_secs(60));
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 2, world.now())).await, 2);
    assert_eq!(proxy.stats().await.rejections["rate_limited"], 1);
    proxy.stop().await;
}

#[tokio::test]
async fn operators_ban_and_unban_with_the_token() {
    let world = World::new();
    let proxy = world.proxy(&[]).await;
    let id = Identity::generate().unwrap();
    let url = world.server(&id).await;
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 1, world.now())).await, 1);
    let ban_path = format!("/v1/admin/bans/{}", id.public_key());

    // Without or with a wrong token: 401.
    let anonymous = proxy
        .http
        .put(format!("{}{ban_path}", proxy.url))
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_refused(&read(anonymous).await, 401, "unauthorized");
    let wrong = proxy
        .http
        .get(format!("{}/v1/admin/stats", proxy.url))
        .bearer_auth("operator-token-for-tests-but-wrong")
        .send()
        .await
        .unwrap();
    assert_refused(&read(wrong).await, 401, "unauthorized");

    let (status, ban) = proxy
        .admin(
            reqwest::Method::PUT,
            &ban_path,
            Some(json!({"reason": "served forged balances"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ban}");
    assert!(proxy.listed().await.is_empty());
    let refused = proxy.heartbeat(&beat(&id, &url, 2, world.now())).await;
    assert_refused(&refused, 403, "forbidden");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("served forged balances")
    );
    let view = proxy.admin_servers().await;
    assert_eq!(view.servers[0].status, ServerStatus::Banned);
    assert_eq!(
        view.servers[0].ban.as_ref().unwrap().reason,
        "served forged balances"
    );
    assert_eq!(proxy.stats().await.servers["ltc-regtest"].banned, 1);

    let (status, _) = proxy.admin(reqwest::Method::DELETE, &ban_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 3, world.now())).await, 3);
    assert_eq!(proxy.listed().await, vec![id.public_key()]);

    // Forgetting a server: its next heartbeat is a new registration.
    let (status, _) = proxy
        .admin(
            reqwest::Method::DELETE,
            &format!("/v1/admin/servers/{}", id.public_key()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(proxy.listed().await.is_empty());
    assert_admitted(&proxy.heartbeat(&beat(&id, &url, 4, world.now())).await, 4);
    assert_eq!(proxy.stats().await.admissions, 2);
    proxy.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_error_bodies_over_http() {
    let world = World::new();
    let proxy = world.proxy(&[]).await;
    assert_refused(&proxy.get("/v1/nothing").await, 404, "not_found");
    assert_refused(&proxy.get("/v1/heartbeat").await, 405, "method_not_allowed");
    let addr: SocketAddr = proxy.url.trim_start_matches("http://").parse().unwrap();
    assert!(addr.ip().is_loopback());
    proxy.stop().await;
}
