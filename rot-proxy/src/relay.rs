//! The relay of the Esplora API: `{proxy}/v1/coins/{coin}/esplora/…` forwards to one of the
//! coin's healthy servers on the agreed tip (`pool.rs`), so any Esplora client (BDK's
//! `esplora-client`, a browser wallet) works with the proxy as its base URL.
//!
//! - Every relayed answer names the server that gave it (`X-Rot-Server: <key>`) and its tip
//!   (`X-Rot-Tip: <height>:<hash>`); headers of the same names from the server are dropped.
//! - Reads that get no answer, time out or get a 5xx (or a 501: the server cannot serve that
//!   route) are retried once on another server, so a server dying under traffic costs wallets
//!   nothing. Small answers are read whole before they are passed on (`connections.rs`), so
//!   a connection cut mid-body is retried too; larger ones stream.
//! - A broadcast (`POST /tx`) goes to two servers at once; the first acceptance is answered,
//!   else a server's refusal (the transaction is invalid), else a third server is tried.
//! - A request may pin a server: `X-Rot-Server: <key>` on the request, or the path
//!   `/v1/coins/{coin}/servers/{key}/esplora/…`. It goes to that server whatever its tip
//!   (wallets cross-checking servers against each other need exactly that one), without
//!   retry elsewhere; 404 when the coin has no such server, 503 when it is not healthy.
//! - The relay does not tell servers who the wallet is: only content negotiation headers are
//!   forwarded (no cookies, credentials or client addresses).
//!
//! Limits (per-IP rate, request bodies, requests in flight, timeouts, CORS) are layers set
//! up with the rest of the API in `api.rs`; connections to servers are kept alive and reused
//! (`connections.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, Method, Request, Response, header};
use rot_proto::PublicKey;

use crate::Error;
use crate::clock::Clock;
use crate::connections::{Connections, Outgoing, Unanswered};
use crate::pool::{Agreement, Candidate, Outcome, PinRefusal, Pool, Tip, View};
use crate::route::{Route, check_query};

/// The header naming the server that answered (and, on a request, the server asked for).
pub const SERVER_HEADER: HeaderName = HeaderName::from_static(rot_proto::transport::SERVER_HEADER);
/// The header naming the tip of the server that answered, `height:hash`.
pub const TIP_HEADER: HeaderName = HeaderName::from_static("x-rot-tip");
/// Seconds a wallet is told to wait when no server can answer.
const RETRY_AFTER_SECS: u64 = 2;

/// Request headers forwarded to servers: content negotiation only.
const FORWARDED: [HeaderName; 5] = [
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::CONTENT_TYPE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
];

/// How the relay talks to servers, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Time limit of one attempt at one server, answer and body.
    pub attempt_timeout: Duration,
    /// Time limit of connecting to a server.
    pub connect_timeout: Duration,
    /// Largest request body relayed (a broadcast's raw transaction).
    pub max_body_bytes: usize,
    /// Idle connections kept per server.
    pub idle_per_server: usize,
}

/// One request as it is sent upstream (possibly more than once).
#[derive(Debug)]
struct Relayed {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Option<Bytes>,
    route: Route,
}

impl Relayed {
    fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            method: &self.method,
            path_and_query: &self.path_and_query,
            headers: &self.headers,
            body: self.body.as_ref(),
        }
    }
}

/// How one attempt at one server went.
#[derive(Debug)]
enum Attempt {
    /// An answer to pass on.
    Answered(Response<Body>),
    /// Worth another server: the answer (5xx, 501) if there was one, else the error.
    Retry(Result<Response<Body>, Error>),
}

/// The relay of every coin served. Shared as `Arc<Relay>`.
#[derive(Debug)]
pub struct Relay {
    pools: BTreeMap<String, Arc<Pool>>,
    connections: Connections,
    settings: RelaySettings,
    clock: Clock,
}

impl Relay {
    /// The relay over `pools` (by coin id).
    pub fn new(
        pools: BTreeMap<String, Arc<Pool>>,
        settings: RelaySettings,
        clock: Clock,
    ) -> Result<Self, Error> {
        Ok(Self {
            pools,
            connections: Connections::new(settings.connect_timeout, settings.idle_per_server)?,
            settings,
            clock,
        })
    }

    /// The pool of coin `coin`.
    pub fn pool(&self, coin: &str) -> Result<&Arc<Pool>, Error> {
        self.pools.get(coin).ok_or_else(|| {
            Error::NotFound(format!(
                "coin {coin:?} is not served here (served: {})",
                self.pools.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Every pool, by coin id.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.values()
    }

    /// A heartbeat of `key` for `coin` reported `tip`: the view is rebuilt if that is news.
    pub fn heard(&self, coin: &str, key: &PublicKey, tip: Tip) {
        let Some(pool) = self.pools.get(coin) else {
            return;
        };
        let now_ms = self.clock.now_millis();
        let known = pool.view().pinned(key, now_ms).is_ok_and(|c| c.tip == tip);
        if !known && let Err(e) = pool.rebuild() {
            tracing::warn!(error = %e, "relay view rebuild failed");
        }
    }

    /// Relays `request` to a server of `pool`: `pin` if given, else one the pool picks. Its
    /// Esplora path starts at byte `offset` of the request's path.
    pub async fn forward(
        &self,
        pool: &Pool,
        pin: Option<PublicKey>,
        offset: usize,
        request: Request<Body>,
    ) -> Result<Response<Body>, Error> {
        let coin = pool.coin();
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().get(offset..).unwrap_or_default();
        let route = Route::classify(&parts.method, path)?;
        let mut path_and_query = path.to_owned();
        if let Some(query) = parts.uri.query().filter(|q| !q.is_empty()) {
            check_query(query)?;
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        let body = if route == Route::Broadcast {
            let reading = read_body(body, self.settings.max_body_bytes);
            let read = tokio::time::timeout(self.settings.attempt_timeout, reading).await;
            Some(read.map_err(|_| {
                Error::BadRequest("the request body did not arrive in time".into())
            })??)
        } else {
            None
        };
        let mut forwarded = HeaderMap::new();
        for name in &FORWARDED {
            if let Some(value) = parts.headers.get(name) {
                forwarded.insert(name.clone(), value.clone());
            }
        }
        let outgoing = Relayed {
            method: parts.method,
            path_and_query,
            headers: forwarded,
            body,
            route,
        };
        let view = pool.view();
        let now_ms = self.clock.now_millis();
        if let Some(key) = pin {
            let candidate = view.pinned(&key, now_ms).map_err(|refusal| match refusal {
                PinRefusal::Unknown => {
                    Error::NotFound(format!("coin {coin} has no server with key {key}"))
                }
                PinRefusal::Unavailable(reason) => Error::ServerUnavailable {
                    key,
                    reason,
                    retry_after_secs: RETRY_AFTER_SECS,
                },
            })?;
            return match self.attempt(pool, candidate, &outgoing).await {
                Attempt::Answered(response) | Attempt::Retry(Ok(response)) => Ok(response),
                Attempt::Retry(Err(error)) => Err(error),
            };
        }
        let first = self.pick(coin, &view, route, &[], now_ms)?;
        if route == Route::Broadcast {
            return self.broadcast(pool, &view, first, &outgoing, now_ms).await;
        }
        let retry = match self.attempt(pool, first, &outgoing).await {
            Attempt::Answered(response) => return Ok(response),
            Attempt::Retry(outcome) => outcome,
        };
        match view.pick(route, &[first.upstream.key], now_ms) {
            None => retry,
            Some(second) => match self.attempt(pool, second, &outgoing).await {
                Attempt::Answered(response) | Attempt::Retry(Ok(response)) => Ok(response),
                Attempt::Retry(Err(error)) => Err(error),
            },
        }
    }

    /// A server for `route`, or why there is none.
    fn pick<'v>(
        &self,
        coin: &str,
        view: &'v View,
        route: Route,
        avoid: &[PublicKey],
        now_ms: u64,
    ) -> Result<&'v Candidate, Error> {
        if let Some(candidate) = view.pick(route, avoid, now_ms) {
            return Ok(candidate);
        }
        let reason = match view.agreement() {
            Agreement::NoServers => "no healthy server".to_owned(),
            Agreement::Split { tips } => {
                let tips: Vec<String> = tips
                    .iter()
                    .map(|(tip, servers)| format!("{tip} ({servers} servers)"))
                    .collect();
                format!("healthy servers disagree on the tip: {}", tips.join(", "))
            }
            Agreement::Agreed { tip } => format!(
                "no healthy server on the agreed tip {tip} offers {} requests now",
                route.name()
            ),
        };
        Err(Error::NoServer {
            coin: coin.to_owned(),
            reason,
            retry_after_secs: RETRY_AFTER_SECS,
        })
    }

    /// Sends a broadcast to two servers at once (a third if neither answered).
    async fn broadcast(
        &self,
        pool: &Pool,
        view: &View,
        first: &Candidate,
        outgoing: &Relayed,
        now_ms: u64,
    ) -> Result<Response<Body>, Error> {
        let mut asked = vec![first.upstream.key];
        let second = view.pick(Route::Broadcast, &asked, now_ms);
        let (a, b) = match second {
            Some(second) => {
                asked.push(second.upstream.key);
                let (a, b) = tokio::join!(
                    self.attempt(pool, first, outgoing),
                    self.attempt(pool, second, outgoing)
                );
                (a, Some(b))
            }
            None => (self.attempt(pool, first, outgoing).await, None),
        };
        let mut attempts: Vec<Attempt> = std::iter::once(a).chain(b).collect();
        if !attempts.iter().any(|a| matches!(a, Attempt::Answered(_)))
            && let Some(third) = view.pick(Route::Broadcast, &asked, now_ms)
        {
            attempts.push(self.attempt(pool, third, outgoing).await);
        }
        // An acceptance first, then a refusal (4xx), then whatever came first.
        let accepted = attempts.iter().position(
            |a| matches!(a, Attempt::Answered(response) if response.status().is_success()),
        );
        let refused = attempts
            .iter()
            .position(|a| matches!(a, Attempt::Answered(_)));
        let index = accepted.or(refused).unwrap_or(0);
        match attempts.swap_remove(index) {
            Attempt::Answered(response) | Attempt::Retry(Ok(response)) => Ok(response),
            Attempt::Retry(Err(error)) => Err(error),
        }
    }

    /// One attempt at one server; counts the outcome in the pool.
    async fn attempt(&self, pool: &Pool, candidate: &Candidate, outgoing: &Relayed) -> Attempt {
        let upstream = &candidate.upstream;
        let _in_flight = upstream.start();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.settings.attempt_timeout;
        let failed = |unanswered: Unanswered| {
            pool.report(upstream, Outcome::Failed(unanswered.reason.clone()));
            let (key, reason) = (upstream.key, unanswered.reason);
            Attempt::Retry(Err(if unanswered.timed_out {
                Error::UpstreamTimeout { key, reason }
            } else {
                Error::UpstreamFailed { key, reason }
            }))
        };
        let sent = self
            .connections
            .send(
                &candidate.target,
                upstream.idle(),
                &outgoing.outgoing(),
                deadline,
            )
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(unanswered) => return failed(unanswered),
        };
        let took = started.elapsed();
        let (mut parts, body) = response.into_parts();
        let status = parts.status;
        clean_response_headers(&mut parts.headers);
        parts
            .headers
            .insert(SERVER_HEADER, upstream.key_header().clone());
        parts
            .headers
            .insert(TIP_HEADER, candidate.tip_header.clone());
        let relayed = Response::from_parts(parts, body);
        match status.as_u16() {
            501 => {
                pool.report(upstream, Outcome::NotImplemented(outgoing.route));
                Attempt::Retry(Ok(relayed))
            }
            500 | 502 | 503 | 504 => {
                pool.report(upstream, Outcome::Failed(format!("HTTP {status}")));
                Attempt::Retry(Ok(relayed))
            }
            _ => {
                pool.report(upstream, Outcome::Answered(took));
                Attempt::Answered(relayed)
            }
        }
    }
}

/// Reads a request body of at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Error::PayloadTooLarge { limit })
}

/// Drops from an upstream answer's headers the hop-by-hop ones, CORS ones (the proxy sets
/// its own) and `X-Rot-*` ones (only the proxy names servers).
fn clean_response_headers(headers: &mut HeaderMap) {
    let dropped = |name: &str| {
        matches!(
            name,
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
        ) || name.starts_with("access-control-")
            || name.starts_with("x-rot-")
    };
    if !headers.keys().any(|name| dropped(name.as_str())) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| dropped(name.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// A pinned server named in a request's `X-Rot-Server` header, if any.
pub fn pin_from_headers(headers: &HeaderMap) -> Result<Option<PublicKey>, Error> {
    let Some(value) = headers.get(SERVER_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "{SERVER_HEADER} must be a server key: 64 lowercase hex digits"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn answer_headers_drop_hop_by_hop_cors_and_spoofed_server_names() {
        let mut upstream = HeaderMap::new();
        upstream.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        upstream.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        upstream.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        upstream.insert("x-rot-server", HeaderValue::from_static("someone-else"));
        upstream.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=10"),
        );
        clean_response_headers(&mut upstream);
        assert_eq!(upstream.len(), 2);
        assert_eq!(upstream[header::CONTENT_TYPE], "application/json");
        assert_eq!(upstream[header::CACHE_CONTROL], "max-age=10");
    }

    #[test]
    fn a_pin_is_a_key_or_refused() {
        let key = rot_proto::Identity::from_seed([3; 32]).public_key();
        let mut headers = HeaderMap::new();
        assert_eq!(pin_from_headers(&headers).unwrap(), None);
        headers.insert(
            SERVER_HEADER,
            HeaderValue::from_str(&key.to_string()).unwrap(),
        );
        assert_eq!(pin_from_headers(&headers).unwrap(), Some(key));
        headers.insert(SERVER_HEADER, HeaderValue::from_static("nope"));
        assert!(matches!(
            pin_from_headers(&headers),
            Err(Error::BadRequest(_))
        ));
    }
}
