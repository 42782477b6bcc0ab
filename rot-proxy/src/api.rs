//! The HTTP API: heartbeats from servers, the public read-only directory and the Esplora
//! relay for wallets, incidents for server operators (signed queries), and the operator view
//! behind a bearer token. Handlers parse and check their input themselves (no extractor
//! rejection ever reaches the client as plain text) and every failure becomes the shared
//! error body in `error.rs`; a layer counts every refusal by reason.
//!
//! Every layer (CORS, body limits, per-IP limits, requests in flight, timeouts) is set up
//! here, in [`app`].

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::map_response_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{BoxError, Json, Router};
use rot_proto::PublicKey;
use rot_proto::message::{Heartbeat, HeartbeatAck, PeersAnswer, ProxyInfo};
use rot_proto::signed::Signed;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::cors::{Any, CorsLayer};

use crate::Error;
use crate::admission::Registrar;
use crate::config::{AdminToken, RegisterRate};
use crate::directory::{AdminServer, AdminServers, Ban, Directory, ServerRecord};
use crate::error::Rejection;
use crate::federation::Federation;
use crate::incidents::{IncidentFilter, IncidentQuery, Incidents, IncidentsAnswer};
use crate::limits::{RateLimiter, RelayLimitsLayer, client_ip};
use crate::metrics::ProxyMetrics;
use crate::pool::{PoolView, Tip};
use crate::relay::{Relay, SERVER_HEADER, TIP_HEADER, pin_from_headers};
use crate::stats::{Stats, StatsAnswer};
use crate::status::Status;

/// What the API serves from.
#[derive(Debug)]
pub struct Services {
    /// The directory of servers.
    pub directory: Arc<Directory>,
    /// Takes heartbeats.
    pub registrar: Registrar,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The Esplora relay.
    pub relay: Arc<Relay>,
    /// The incident log.
    pub incidents: Arc<Incidents>,
    /// This proxy's identity, bootstrap list and peers.
    pub federation: Arc<Federation>,
    /// The status page and its charts.
    pub status: Arc<Status>,
    /// Prometheus metrics.
    pub metrics: ProxyMetrics,
}

/// The API's access rules and limits, from configuration.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Bearer token of the operator view; the view is off without one.
    pub admin_token: Option<AdminToken>,
    /// Largest body of heartbeats and operator requests.
    pub max_body_bytes: usize,
    /// Largest relayed request body.
    pub relay_max_body_bytes: usize,
    /// Per-IP budget of relayed requests.
    pub relay_rate: RegisterRate,
    /// Most relayed requests in flight.
    pub relay_max_in_flight: usize,
    /// Take the client IP from the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Largest clock skew of signed incident queries, in seconds.
    pub max_skew_secs: u64,
}

/// What every handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    services: Services,
    settings: ApiSettings,
}

impl AppState {
    /// State over `services` with `settings`.
    pub fn new(services: Services, settings: ApiSettings) -> Self {
        Self {
            inner: Arc::new(Shared { services, settings }),
        }
    }

    /// The directory served.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.inner.services.directory
    }

    /// The relay.
    pub fn relay(&self) -> &Arc<Relay> {
        &self.inner.services.relay
    }

    /// The incident log.
    pub fn incidents(&self) -> &Arc<Incidents> {
        &self.inner.services.incidents
    }

    /// This proxy's identity, bootstrap list and peers.
    pub fn federation(&self) -> &Arc<Federation> {
        &self.inner.services.federation
    }

    /// The body of a request, or why it could not be read.
    fn body(&self, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Error> {
        body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge {
                    limit: self.inner.settings.max_body_bytes,
                }
            } else {
                Error::from(rejection)
            }
        })
    }
}

/// The router of the whole API with every layer: CORS open to browser wallets, body limits,
/// per-IP limits and a cap on requests in flight for the relay, the request timeout and the
/// refusal counters.
pub fn app(state: AppState) -> Router {
    let settings = &state.inner.settings;
    let stats = state.inner.services.stats.clone();
    let relay = ServiceBuilder::new()
        .layer(RelayLimitsLayer::new(
            RateLimiter::new(
                "requests",
                settings.relay_rate,
                state.directory().clock().clone(),
            ),
            settings.relay_max_in_flight,
            settings.trust_forwarded_for,
        ))
        // The relay bounds each attempt at a server itself (it retries within the time
        // left); this bounds a wallet's whole wait for the answer's head.
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            Error::Timeout
        }))
        .timeout(settings.request_timeout)
        .service(RelayService {
            state: state.clone(),
        });
    let api = Router::new()
        .route("/", get(status_page))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/coins", get(coins))
        .route("/v1/info", get(info))
        .route("/v1/peers", get(peers))
        .route("/v1/bootstrap", get(bootstrap))
        .route("/v1/coins/{coin}/servers", get(servers))
        .route("/v1/coins/{coin}/incidents", get(public_incidents))
        .route(
            "/v1/coins/{coin}/servers/{key}/incidents",
            post(own_incidents),
        )
        .route("/v1/admin/incidents", get(admin_incidents))
        .route("/v1/admin/coins/{coin}/relay", get(admin_relay))
        .route("/v1/admin/coins/{coin}/servers", get(admin_servers))
        .route(
            "/v1/admin/servers/{key}",
            get(admin_server).delete(forget_server),
        )
        .route("/v1/admin/bans", get(bans))
        .route("/v1/admin/bans/{key}", put(ban).delete(unban))
        .route("/v1/admin/stats", get(admin_stats))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .fallback(|| async { Error::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .with_state(state.clone());
    let api = rot_ops::timeout::with_timeout(api, settings.request_timeout, || Error::Timeout);
    let api = state.inner.services.metrics.http().clone().layer(api);
    Router::new()
        .fallback_service(Dispatch { relay, api })
        .layer(map_response_with_state(stats, count_rejections))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::HEAD, Method::POST])
                .allow_headers([header::CONTENT_TYPE, SERVER_HEADER])
                .expose_headers([SERVER_HEADER, TIP_HEADER, header::RETRY_AFTER])
                .max_age(Duration::from_secs(86_400)),
        )
}

/// Sends relay requests straight to the relay's stack and everything else to the API's
/// router, so relayed requests skip routing and path-parameter decoding.
#[derive(Debug, Clone)]
struct Dispatch<R> {
    relay: R,
    api: Router,
}

/// A boxed answer.
type Answering = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<R> Service<Request> for Dispatch<R>
where
    R: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    R::Future: Unpin + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<R::Future, Answering>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.relay.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if relay_target(request.uri().path()).is_some() {
            Either::Left(self.relay.call(request))
        } else {
            Either::Right(Box::pin(self.api.clone().oneshot(request)))
        }
    }
}

/// One future or another, both answering.
#[derive(Debug)]
enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<A, B> Future for Either<A, B>
where
    A: Future<Output = Result<Response, Infallible>> + Unpin,
    B: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Self::Left(future) => Pin::new(future).poll(cx),
            Self::Right(future) => Pin::new(future).poll(cx),
        }
    }
}

/// The relay as a tower service, under the layers of [`app`].
#[derive(Debug, Clone)]
struct RelayService {
    state: AppState,
}

impl Service<Request> for RelayService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answering;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(relay(state, request).await.into_response()) })
    }
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
        Ok(Self(client_ip(
            &parts.extensions,
            &parts.headers,
            state.inner.settings.trust_forwarded_for,
        )))
    }
}

/// Proof that the request carries the operator's bearer token.
#[derive(Debug, Clone, Copy)]
struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = state
            .inner
            .settings
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
    let registered = s.inner.services.registrar.heartbeat(&signed, ip).await?;
    let tip = Tip {
        height: registered.height,
        hash: registered.tip_hash,
    };
    s.relay().heard(&registered.coin, &registered.key, tip);
    Ok(Json(registered.ack))
}

// --- relay ---

/// Where a relay path points: `/v1/coins/{coin}/esplora/…` or
/// `/v1/coins/{coin}/servers/{key}/esplora/…`. Returns the coin, the pinned key's text if
/// any, and the offset in the raw (undecoded) path where the Esplora path starts.
fn relay_target(path: &str) -> Option<(&str, Option<&str>, usize)> {
    let rest = path.strip_prefix("/v1/coins/")?;
    let (coin, rest) = rest.split_once('/')?;
    let (pin, rest) = match rest.strip_prefix("servers/") {
        Some(rest) => {
            let (key, rest) = rest.split_once('/')?;
            (Some(key), rest)
        }
        None => (None, rest),
    };
    let tail = rest.strip_prefix("esplora")?;
    Some((coin, pin, path.len() - tail.len()))
}

/// Relays an Esplora request (routes `/v1/coins/{coin}/esplora/{*path}` and the pinned
/// `/v1/coins/{coin}/servers/{key}/esplora/{*path}`), read from the raw path so nothing is
/// decoded or copied on the way.
async fn relay(s: AppState, request: Request) -> Result<Response<Body>, Error> {
    let (coin, pin, offset) = relay_target(request.uri().path())
        .ok_or_else(|| Error::NotFound("no such endpoint".into()))?;
    let pin = match pin {
        Some(key) => Some(parse_key(key)?),
        None => pin_from_headers(request.headers())?,
    };
    let pool = if coin.bytes().any(|b| b.is_ascii_uppercase()) {
        s.relay().pool(&coin.to_ascii_lowercase())?
    } else {
        s.relay().pool(coin)?
    }
    .clone();
    let started = std::time::Instant::now();
    let answer = s.relay().forward(&pool, pin, offset, request).await;
    let elapsed = started.elapsed();
    let services = &s.inner.services;
    services.status.record(pool.coin(), elapsed);
    let status = match &answer {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.code().http_status(),
    };
    services.metrics.relayed(pool.coin(), status, elapsed);
    answer
}

// --- incidents ---

/// Query of the public incident list.
#[derive(Debug, Deserialize)]
struct PublicIncidentQuery {
    #[serde(default)]
    server: Option<PublicKey>,
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn public_incidents(
    State(s): State<AppState>,
    coin: Result<Path<String>, PathRejection>,
    query: Result<Query<PublicIncidentQuery>, QueryRejection>,
) -> Result<Json<IncidentsAnswer>, Error> {
    let Path(coin) = coin?;
    let Query(query) = query?;
    let coin = coin.to_ascii_lowercase();
    s.relay().pool(&coin)?;
    let filter = IncidentFilter {
        coin: Some(coin),
        server: query.server,
        after: query.after,
        limit: query.limit,
    };
    Ok(Json(IncidentsAnswer {
        incidents: s.incidents().list_public(&filter)?,
    }))
}

async fn own_incidents(
    State(s): State<AppState>,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IncidentsAnswer>, Error> {
    let Path((coin, key)) = params?;
    let (coin, key) = (coin.to_ascii_lowercase(), parse_key(&key)?);
    s.relay().pool(&coin)?;
    let signed: Signed<IncidentQuery> = parse_json(&s.body(body)?, "signed incident query")?;
    let now = s.directory().clock().now_secs();
    let query = IncidentQuery::verify(&signed, &coin, &key, now, s.inner.settings.max_skew_secs)?;
    let filter = IncidentFilter {
        coin: Some(coin),
        server: Some(key),
        after: query.after,
        limit: None,
    };
    Ok(Json(IncidentsAnswer {
        incidents: s.incidents().list(&filter)?,
    }))
}

async fn admin_incidents(
    _: Operator,
    State(s): State<AppState>,
    query: Result<Query<IncidentFilter>, QueryRejection>,
) -> Result<Json<IncidentsAnswer>, Error> {
    let Query(mut filter) = query?;
    filter.coin = filter.coin.map(|c| c.to_ascii_lowercase());
    Ok(Json(IncidentsAnswer {
        incidents: s.incidents().list(&filter)?,
    }))
}

async fn admin_relay(
    _: Operator,
    State(s): State<AppState>,
    coin: Result<Path<String>, PathRejection>,
) -> Result<Json<PoolView>, Error> {
    let Path(coin) = coin?;
    Ok(Json(
        s.relay().pool(&coin.to_ascii_lowercase())?.describe()?,
    ))
}

// --- public directory ---

async fn coins(State(s): State<AppState>) -> Result<Response, Error> {
    Ok(json_bytes(s.directory().coins_answer()?))
}

/// Prometheus metrics, with the directory's numbers as of now.
async fn metrics(State(s): State<AppState>) -> Result<Response, Error> {
    let services = &s.inner.services;
    let text = services
        .metrics
        .render(&services.directory, &services.federation)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rot_ops::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// The status page; its inline style and script are the only ones it may run.
async fn status_page(State(s): State<AppState>) -> Result<Response, Error> {
    let page = s.inner.services.status.render()?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                     connect-src 'self'",
                ),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        page,
    )
        .into_response())
}

async fn info(State(s): State<AppState>) -> Result<Json<Signed<ProxyInfo>>, Error> {
    Ok(Json(s.federation().info()?))
}

async fn peers(State(s): State<AppState>) -> Json<PeersAnswer> {
    Json(s.federation().peers())
}

async fn bootstrap(State(s): State<AppState>) -> Result<Response, Error> {
    Ok(json_bytes(s.federation().bootstrap_list()?))
}

async fn servers(
    State(s): State<AppState>,
    coin: Result<Path<String>, PathRejection>,
) -> Result<Response, Error> {
    let Path(coin) = coin?;
    Ok(json_bytes(
        s.directory().servers_answer(&coin.to_ascii_lowercase())?,
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
        s.directory().admin_servers(&coin.to_ascii_lowercase())?,
    ))
}

async fn admin_server(
    _: Operator,
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<AdminServer>, Error> {
    let Path(key) = key?;
    Ok(Json(s.directory().admin_server(&parse_key(&key)?)?))
}

async fn forget_server(
    _: Operator,
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<ServerRecord>, Error> {
    let Path(key) = key?;
    Ok(Json(s.directory().forget(&parse_key(&key)?)?))
}

async fn bans(_: Operator, State(s): State<AppState>) -> Json<Vec<Ban>> {
    Json(s.directory().bans())
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
    Ok(Json(s.directory().ban(key, &request.reason)?))
}

async fn unban(
    _: Operator,
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Ban>, Error> {
    let Path(key) = key?;
    Ok(Json(s.directory().unban(&parse_key(&key)?)?))
}

async fn admin_stats(_: Operator, State(s): State<AppState>) -> Json<StatsAnswer> {
    Json(s.inner.services.stats.answer(s.directory().status_counts()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Admitter;
    use crate::clock::Clock;
    use crate::coin::Coins;
    use crate::config::RegisterRate;
    use crate::directory::{CoinsAnswer, Policy};
    use crate::outlier::OutlierRules;
    use crate::pool::Pool;
    use crate::relay::RelaySettings;
    use crate::store::Store;
    use axum::body::Body;
    use axum::http::{HeaderMap, Request};
    use rot_proto::message::Consequence;
    use rot_proto::message::{BackendKind, ErrorBody};
    use rot_proto::{Hash256, Identity, Network};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    const TOKEN: &str = "0123456789abcdef-token";

    struct Fixture {
        _dir: tempfile::TempDir,
        router: Router,
        clock: Clock,
        incidents: Arc<Incidents>,
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
            require_suite: true,
        };
        let directory =
            Arc::new(Directory::open(store.clone(), vec![profile], policy, clock.clone()).unwrap());
        let incidents = Arc::new(Incidents::open(store, clock.clone()).unwrap());
        let stats = Arc::new(Stats::default());
        let registrar = Registrar::new(
            directory.clone(),
            Admitter::new(Duration::from_secs(1), 60, clock.clone()).unwrap(),
            RateLimiter::new(
                "registrations",
                RegisterRate {
                    burst: 5,
                    per_minute: 1,
                },
                clock.clone(),
            ),
            4,
            stats.clone(),
        );
        let rules = OutlierRules {
            consecutive_failures: 3,
            failure_percent: 50,
            min_requests: 10,
            window: Duration::from_secs(10),
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(30),
            max_ejected_percent: 50,
        };
        let pool = Arc::new(Pool::new(
            "ltc-regtest",
            directory.clone(),
            incidents.clone(),
            rules,
            true,
        ));
        pool.rebuild().unwrap();
        let relay = Relay::new(
            [("ltc-regtest".to_owned(), pool)].into_iter().collect(),
            RelaySettings {
                attempt_timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                max_body_bytes: 4096,
                idle_per_server: 4,
            },
            clock.clone(),
        )
        .unwrap();
        let federation = Arc::new(Federation::new(
            Identity::from_seed([7; 32]),
            directory.clone(),
            clock.clone(),
            60,
        ));
        let state = AppState::new(
            Services {
                directory: directory.clone(),
                registrar,
                stats,
                relay: Arc::new(relay),
                incidents: incidents.clone(),
                status: Arc::new(Status::new(
                    directory.clone(),
                    federation.clone(),
                    clock.clone(),
                )),
                federation,
                metrics: ProxyMetrics::new(),
            },
            ApiSettings {
                admin_token: Some(AdminToken::new(TOKEN).unwrap()),
                max_body_bytes: 2048,
                relay_max_body_bytes: 4096,
                relay_rate: RegisterRate {
                    burst: 1000,
                    per_minute: 60_000,
                },
                relay_max_in_flight: 16,
                trust_forwarded_for: false,
                request_timeout: Duration::from_secs(5),
                max_skew_secs: 60,
            },
        );
        Fixture {
            _dir: dir,
            router: app(state),
            clock,
            incidents,
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
            synced: true,
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
    async fn the_status_page_is_html_with_a_strict_policy() {
        let f = fixture();
        let response = f
            .router
            .clone()
            .oneshot(request("GET", "/", ""))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'")
        );
        let page = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let page = String::from_utf8(page.to_vec()).unwrap();
        assert!(page.contains("data-coin=\"ltc-regtest\""), "{page}");
        assert!(page.contains("No server listed yet."), "{page}");
        assert!(page.contains("No other proxy known."), "{page}");
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

    #[tokio::test]
    async fn the_relay_says_why_it_cannot_answer() {
        let f = fixture();
        // No server: 503 with Retry-After and the shared error body, naming no server.
        let (status, headers, body) = call(
            &f.router,
            request("GET", "/v1/coins/ltc-regtest/esplora/blocks/tip/height", ""),
        )
        .await;
        assert_error(status, &body, 503, "unavailable");
        assert_eq!(headers[header::RETRY_AFTER], "2");
        assert!(!headers.contains_key(SERVER_HEADER));
        let (status, _, body) = call(
            &f.router,
            request("GET", "/v1/coins/doge/esplora/blocks/tip/height", ""),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
        let (status, _, body) = call(
            &f.router,
            request("GET", "/v1/coins/ltc-regtest/esplora/a/../b", ""),
        )
        .await;
        assert_error(status, &body, 400, "bad_request");
        let (status, _, body) = call(
            &f.router,
            request("PUT", "/v1/coins/ltc-regtest/esplora/tx", ""),
        )
        .await;
        assert_error(status, &body, 405, "method_not_allowed");
        let (status, _, body) = call(
            &f.router,
            request(
                "POST",
                "/v1/coins/ltc-regtest/esplora/tx",
                "ab".repeat(4096),
            ),
        )
        .await;
        assert_error(status, &body, 413, "payload_too_large");
        // Pins: a key the coin does not list is unknown; a malformed one is refused.
        let key = Identity::from_seed([9; 32]).public_key();
        let (status, _, body) = call(
            &f.router,
            request(
                "GET",
                &format!("/v1/coins/ltc-regtest/servers/{key}/esplora/blocks/tip/height"),
                "",
            ),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
        let mut pinned = request("GET", "/v1/coins/ltc-regtest/esplora/blocks/tip/height", "");
        pinned
            .headers_mut()
            .insert(SERVER_HEADER, HeaderValue::from_static("xyz"));
        let (status, _, body) = call(&f.router, pinned).await;
        assert_error(status, &body, 400, "bad_request");
    }

    #[tokio::test]
    async fn browsers_may_relay_and_read_the_server_headers() {
        let f = fixture();
        let preflight = Request::builder()
            .method("OPTIONS")
            .uri("/v1/coins/ltc-regtest/esplora/tx")
            .header(header::ORIGIN, "https://wallet.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "x-rot-server")
            .body(Body::empty())
            .unwrap();
        let response = f.router.clone().oneshot(preflight).await.unwrap();
        assert!(response.status().is_success());
        let allowed = response.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(allowed.contains("POST"), "{allowed}");
        let mut get = request("GET", "/v1/coins", "");
        get.headers_mut().insert(
            header::ORIGIN,
            HeaderValue::from_static("https://w.example"),
        );
        let (_, headers, _) = call(&f.router, get).await;
        let exposed = headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            exposed.contains("x-rot-server") && exposed.contains("x-rot-tip"),
            "{exposed}"
        );
    }

    #[tokio::test]
    async fn evidence_goes_to_the_operator_and_the_server_not_to_wallets() {
        let f = fixture();
        let server = Identity::from_seed([5; 32]);
        let key = server.public_key();
        f.incidents
            .record(
                "ltc-regtest",
                key,
                "tip",
                json!({"got": "a lie"}),
                Consequence::Warning,
            )
            .unwrap();
        let (status, _, public) = call(
            &f.router,
            request("GET", "/v1/coins/ltc-regtest/incidents", ""),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{public}");
        assert_eq!(public["incidents"][0]["check"], "tip");
        assert_eq!(public["incidents"][0]["evidence"], Value::Null);
        let (_, _, operator) = call(
            &f.router,
            admin("GET", &format!("/v1/admin/incidents?server={key}"), ""),
        )
        .await;
        assert_eq!(operator["incidents"][0]["evidence"]["got"], "a lie");
        let (status, _, body) = call(&f.router, request("GET", "/v1/admin/incidents", "")).await;
        assert_error(status, &body, 401, "unauthorized");
        // The server's own operator, by a query signed with the server's key.
        let query = |signer: &Identity, time: u64| {
            serde_json::to_string(
                &Signed::sign(
                    signer,
                    &IncidentQuery {
                        coin: "ltc-regtest".into(),
                        server_key: key,
                        time,
                        after: 0,
                    },
                )
                .unwrap(),
            )
            .unwrap()
        };
        let path = format!("/v1/coins/ltc-regtest/servers/{key}/incidents");
        let now = f.clock.now_secs();
        let (status, _, own) = call(&f.router, request("POST", &path, query(&server, now))).await;
        assert_eq!(status, StatusCode::OK, "{own}");
        assert_eq!(own["incidents"][0]["evidence"]["got"], "a lie");
        let (status, _, body) = call(
            &f.router,
            request("POST", &path, query(&server, now - 3600)),
        )
        .await;
        assert_error(status, &body, 409, "stale");
        let stranger = Identity::from_seed([6; 32]);
        let (status, _, body) =
            call(&f.router, request("POST", &path, query(&stranger, now))).await;
        assert_error(status, &body, 401, "bad_signature");
    }

    #[test]
    fn relay_paths_name_coin_pin_and_esplora_path() {
        let key = "ab".repeat(32);
        let plain = "/v1/coins/ltc/esplora/address/x/utxo";
        let (coin, pin, at) = relay_target(plain).unwrap();
        assert_eq!((coin, pin, &plain[at..]), ("ltc", None, "/address/x/utxo"));
        let pinned = format!("/v1/coins/LTC/servers/{key}/esplora/tx");
        let (coin, pin, at) = relay_target(&pinned).unwrap();
        assert_eq!(
            (coin, pin, &pinned[at..]),
            ("LTC", Some(key.as_str()), "/tx")
        );
        assert!(relay_target("/v1/coins/ltc/servers").is_none());
    }

    #[test]
    fn tokens_compare_fully() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
    }
}
