//! The HTTP API: heartbeats from servers, the public read-only directory for wallets, and the
//! operator view behind a bearer token. Handlers parse and check their input themselves (no
//! extractor rejection ever reaches the client as plain text) and every failure becomes the
//! shared error body in `error.rs`; a layer counts every refusal by reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::map_response_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rot_proto::PublicKey;
use rot_proto::message::{Heartbeat, HeartbeatAck};
use rot_proto::signed::Signed;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::cors::{Any, CorsLayer};

use crate::Error;
use crate::admission::Registrar;
use crate::config::AdminToken;
use crate::directory::{AdminServer, AdminServers, Ban, Directory, ServerRecord};
use crate::error::Rejection;
use crate::stats::{Stats, StatsAnswer};

/// What every handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    directory: Arc<Directory>,
    registrar: Registrar,
    stats: Arc<Stats>,
    admin_token: Option<AdminToken>,
    max_body_bytes: usize,
    trust_forwarded_for: bool,
}

impl AppState {
    /// State over `directory`; heartbeats go through `registrar`, refusals are counted in
    /// `stats`. The operator view is on when `admin_token` is set.
    pub fn new(
        directory: Arc<Directory>,
        registrar: Registrar,
        stats: Arc<Stats>,
        admin_token: Option<AdminToken>,
        max_body_bytes: usize,
        trust_forwarded_for: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Shared {
                directory,
                registrar,
                stats,
                admin_token,
                max_body_bytes,
                trust_forwarded_for,
            }),
        }
    }

    /// The directory served.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.inner.directory
    }

    /// The body of a request, or why it could not be read.
    fn body(&self, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Error> {
        body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge {
                    limit: self.inner.max_body_bytes,
                }
            } else {
                Error::from(rejection)
            }
        })
    }
}

/// The router of the whole API, with CORS open for GET (browser wallets), the body limit, the
/// request timeout and the refusal counters.
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    let stats = state.inner.stats.clone();
    let body_limit = state.inner.max_body_bytes;
    let router = Router::new()
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/coins", get(coins))
        .route("/v1/coins/{coin}/servers", get(servers))
        .route("/v1/admin/coins/{coin}/servers", get(admin_servers))
        .route(
            "/v1/admin/servers/{key}",
            get(admin_server).delete(forget_server),
        )
        .route("/v1/admin/bans", get(bans))
        .route("/v1/admin/bans/{key}", put(ban).delete(unban))
        .route("/v1/admin/stats", get(admin_stats))
        .fallback(|| async { Error::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit));
    crate::error::with_timeout(router, request_timeout)
        .layer(map_response_with_state(stats, count_rejections))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET])
                .allow_headers([header::CONTENT_TYPE]),
        )
}

/// Counts every refusal by the reason its error attached.
async fn count_rejections(State(stats): State<Arc<Stats>>, response: Response) -> Response {
    if let Some(Rejection(reason)) = response.extensions().get::<Rejection>() {
        stats.count_rejection(reason);
    }
    response
}

// --- extractors: never reject with plain text ---

/// The client's IP address: the connection's peer, or the last `X-Forwarded-For` entry when
/// the proxy is configured to sit behind a reverse proxy. `None` when unknown (in-process
/// tests), which exempts the request from per-IP limits.
#[derive(Debug, Clone, Copy)]
struct ClientIp(Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_canonical());
        if state.inner.trust_forwarded_for
            && let Some(forwarded) = last_forwarded_for(&parts.headers)
        {
            return Ok(Self(Some(forwarded)));
        }
        Ok(Self(peer))
    }
}

fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .next_back()?
        .trim()
        .parse()
        .ok()
}

/// Proof that the request carries the operator's bearer token.
#[derive(Debug, Clone, Copy)]
struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = state
            .inner
            .admin_token
            .as_ref()
            .ok_or(Error::AdminDisabled)?;
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Error::Unauthorized("missing Authorization: Bearer <token>".into()))?
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Error::Unauthorized("expected Authorization: Bearer <token>".into()))?;
        if !constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes()) {
            return Err(Error::Unauthorized("wrong admin token".into()));
        }
        Ok(Self)
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right (only whether the length was).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("malformed {what}: {e}")))
}

fn parse_key(text: &str) -> Result<PublicKey, Error> {
    text.parse().map_err(|_| {
        Error::BadRequest(format!(
            "invalid server key {text:?}: expected 64 lowercase hex digits"
        ))
    })
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

// --- heartbeats ---

async fn heartbeat(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HeartbeatAck>, Error> {
    let body = s.body(body)?;
    let signed: Signed<Heartbeat> = parse_json(&body, "heartbeat")?;
    Ok(Json(s.inner.registrar.heartbeat(&signed, ip).await?))
}

// --- public directory ---

async fn coins(State(s): State<AppState>) -> Result<Response, Error> {
    Ok(json_bytes(s.inner.directory.coins_answer()?))
}

async fn servers(
    State(s): State<AppState>,
    coin: Result<Path<String>, PathRejection>,
) -> Result<Response, Error> {
    let Path(coin) = coin?;
    Ok(json_bytes(
        s.inner
            .directory
            .servers_answer(&coin.to_ascii_lowercase())?,
    ))
}

// --- operator view ---

async fn admin_servers(
    _: Operator,
    State(s): State<AppState>,
    coin: Result<Path<String>, PathRejection>,
) -> Result<Json<AdminServers>, Error> {
    let Path(coin) = coin?;
    Ok(Json(
        s.inner
            .directory
            .admin_servers(&coin.to_ascii_lowercase())?,
    ))
}

async fn admin_server(
    _: Operator,
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<AdminServer>, Error> {
    let Path(key) = key?;
    Ok(Json(s.inner.directory.admin_server(&parse_key(&key)?)?))
}

async fn forget_server(
    _: Operator,
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<ServerRecord>, Error> {
    let Path(key) = key?;
    Ok(Json(s.inner.directory.forget(&parse_key(&key)?)?))
}

async fn bans(_: Operator, State(s): State<AppState>) -> Json<Vec<Ban>> {
    Json(s.inner.directory.bans())
}

/// The body of `PUT /v1/admin/bans/{key}`.
#[derive(Debug, Deserialize)]
struct BanRequest {
    reason: String,
}

async fn ban(
    _: Operator,
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ban>, Error> {
    let Path(key) = key?;
    let key = parse_key(&key)?;
    let request: BanRequest = parse_json(&s.body(body)?, "ban request")?;
    Ok(Json(s.inner.directory.ban(key, &request.reason)?))
}

async fn unban(
    _: Operator,
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Ban>, Error> {
    let Path(key) = key?;
    Ok(Json(s.inner.directory.unban(&parse_key(&key)?)?))
}

async fn admin_stats(_: Operator, State(s): State<AppState>) -> Json<StatsAnswer> {
    Json(s.inner.stats.answer(s.inner.directory.status_counts()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Admitter;
    use crate::clock::Clock;
    use crate::coin::Coins;
    use crate::config::RegisterRate;
    use crate::directory::{CoinsAnswer, Policy};
    use crate::limits::RateLimiter;
    use crate::store::Store;
    use axum::body::Body;
    use axum::http::Request;
    use rot_proto::message::{BackendKind, ErrorBody};
    use rot_proto::{Hash256, Identity, Network};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    const TOKEN: &str = "0123456789abcdef-token";

    struct Fixture {
        _dir: tempfile::TempDir,
        router: Router,
        clock: Clock,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(1_800_000_000);
        let store = Store::open(&dir.path().join("db")).unwrap();
        let profile = Coins::builtin()
            .get("LTC", Network::Regtest)
            .unwrap()
            .clone();
        let policy = Policy {
            max_skew_secs: 60,
            stale_after: Duration::from_secs(100),
            max_servers_per_coin: 10,
            max_servers_per_addr: 2,
            publish_urls: false,
        };
        let directory =
            Arc::new(Directory::open(store, vec![profile], policy, clock.clone()).unwrap());
        let stats = Arc::new(Stats::default());
        let registrar = Registrar::new(
            directory.clone(),
            Admitter::new(Duration::from_secs(1), 60, clock.clone()).unwrap(),
            RateLimiter::new(
                RegisterRate {
                    burst: 5,
                    per_minute: 1,
                },
                clock.clone(),
            ),
            4,
            stats.clone(),
        );
        let state = AppState::new(
            directory,
            registrar,
            stats,
            Some(AdminToken::new(TOKEN).unwrap()),
            2048,
            false,
        );
        Fixture {
            _dir: dir,
            router: app(state, Duration::from_secs(5)),
            clock,
        }
    }

    async fn call(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, headers, value)
    }

    fn request(method: &str, uri: &str, body: impl Into<Body>) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap()
    }

    fn admin(method: &str, uri: &str, body: impl Into<Body>) -> Request<Body> {
        let mut request = request(method, uri, body);
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        request
    }

    fn assert_error(status: StatusCode, body: &Value, expected: u16, code: &str) {
        assert_eq!(status.as_u16(), expected, "{body}");
        let body: ErrorBody = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(body.error.code, code, "{}", body.error.message);
    }

    fn heartbeat_json(identity: &Identity, coin: &str, now: u64) -> String {
        let beat = Heartbeat {
            coin: coin.into(),
            network: Network::Regtest,
            genesis_hash: Coins::builtin()
                .get("LTC", Network::Regtest)
                .unwrap()
                .genesis_hash,
            url: "http://127.0.0.1:9".into(),
            seq: 1,
            timestamp: now,
            height: 1,
            tip_hash: Hash256::default(),
            software: "t".into(),
            backend: BackendKind::Native,
            capabilities: vec![],
        };
        serde_json::to_string(&Signed::sign(identity, &beat).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn never_plain_text_rejections() {
        let f = fixture();
        let (status, headers, body) = call(&f.router, request("GET", "/nope", "")).await;
        assert_error(status, &body, 404, "not_found");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let (status, _, body) = call(&f.router, request("GET", "/v1/heartbeat", "")).await;
        assert_error(status, &body, 405, "method_not_allowed");
        let (status, _, body) =
            call(&f.router, request("POST", "/v1/heartbeat", "{not json")).await;
        assert_error(status, &body, 400, "bad_request");
        let (status, _, body) = call(
            &f.router,
            request("POST", "/v1/heartbeat", "x".repeat(4096)),
        )
        .await;
        assert_error(status, &body, 413, "payload_too_large");
        let (status, _, body) = call(&f.router, request("GET", "/v1/coins/doge/servers", "")).await;
        assert_error(status, &body, 404, "not_found");
        let (status, _, body) = call(&f.router, admin("GET", "/v1/admin/servers/xyz", "")).await;
        assert_error(status, &body, 400, "bad_request");
        let (status, _, body) = call(&f.router, admin("PUT", "/v1/admin/bans/xyz", "")).await;
        assert_error(status, &body, 400, "bad_request");
    }

    #[tokio::test]
    async fn heartbeat_checks_before_any_callback() {
        let f = fixture();
        let id = Identity::from_seed([1; 32]);
        let now = f.clock.now_secs();
        let (status, _, body) = call(
            &f.router,
            request("POST", "/v1/heartbeat", heartbeat_json(&id, "BTC", now)),
        )
        .await;
        assert_error(status, &body, 400, "bad_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not served")
        );
        let (status, _, body) = call(
            &f.router,
            request(
                "POST",
                "/v1/heartbeat",
                heartbeat_json(&id, "LTC", now - 61),
            ),
        )
        .await;
        assert_error(status, &body, 409, "stale");
        let forged = heartbeat_json(&id, "LTC", now).replace("\"height\":1", "\"height\":2");
        let (status, _, body) = call(&f.router, request("POST", "/v1/heartbeat", forged)).await;
        assert_error(status, &body, 401, "bad_signature");
        // Nothing of this reached the directory, and every refusal was counted.
        let (status, _, stats) = call(&f.router, admin("GET", "/v1/admin/stats", "")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stats["rejections"]["coin_not_served"], 1);
        assert_eq!(stats["rejections"]["clock_skew"], 1);
        assert_eq!(stats["rejections"]["bad_signature"], 1);
        assert_eq!(stats["servers"]["ltc-regtest"]["admitted"], 0);
    }

    #[tokio::test]
    async fn operator_view_needs_the_token() {
        let f = fixture();
        let (status, _, body) = call(&f.router, request("GET", "/v1/admin/stats", "")).await;
        assert_error(status, &body, 401, "unauthorized");
        let mut wrong = request("GET", "/v1/admin/bans", "");
        wrong.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        let (status, _, body) = call(&f.router, wrong).await;
        assert_error(status, &body, 401, "unauthorized");
        let key = Identity::from_seed([4; 32]).public_key();
        let (status, _, ban) = call(
            &f.router,
            admin(
                "PUT",
                &format!("/v1/admin/bans/{key}"),
                r#"{"reason":"lies about tips"}"#,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{ban}");
        assert_eq!(ban["reason"], "lies about tips");
        let (_, _, bans) = call(&f.router, admin("GET", "/v1/admin/bans", "")).await;
        assert_eq!(bans, json!([ban]));
        let (status, _, _) = call(
            &f.router,
            admin("DELETE", &format!("/v1/admin/bans/{key}"), ""),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, body) = call(
            &f.router,
            admin("DELETE", &format!("/v1/admin/bans/{key}"), ""),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
    }

    #[tokio::test]
    async fn coins_lists_each_coin_served() {
        let f = fixture();
        let (status, _, body) = call(&f.router, request("GET", "/v1/coins", "")).await;
        assert_eq!(status, StatusCode::OK);
        let answer: CoinsAnswer = serde_json::from_value(body).unwrap();
        assert_eq!(answer.coins.len(), 1);
        assert_eq!(answer.coins[0].id, "ltc-regtest");
        assert_eq!(answer.coins[0].healthy_servers, 0);
        assert_eq!(answer.coins[0].tip_height, None);
        let (status, _, body) = call(
            &f.router,
            request("GET", "/v1/coins/LTC-regtest/servers", ""),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"coin": "ltc-regtest", "servers": []}));
    }

    #[test]
    fn forwarded_for_takes_the_last_hop_and_tokens_compare_fully() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("3.3.3.3"));
        assert_eq!(
            last_forwarded_for(&headers),
            Some(IpAddr::from([3, 3, 3, 3]))
        );
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
    }
}
