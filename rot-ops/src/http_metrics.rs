//! The HTTP request metrics every ROT service exposes — requests by route, method and status,
//! and latency by route — and the `/metrics` answer.
//!
//! Routes are labelled by their template (`/tx/{txid}`), never the raw path, and unknown
//! methods as `other`, so a client cannot grow the number of series.
//!
//! A service gets `/metrics` in three steps: one [`Registry`] per instance (in its state),
//! its own metrics registered there, and the request layer applied last:
//!
//! ```
//! use axum::{Router, extract::State, routing::get};
//! use rot_ops::http_metrics::{HttpMetrics, exposition};
//! use rot_ops::{Gauge, Registry};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     registry: Registry,
//!     servers: Gauge,
//! }
//!
//! async fn metrics(State(state): State<AppState>) -> axum::response::Response {
//!     // Gauges read from the service's state at each scrape.
//!     state.servers.set(&["ltc"], 3.0);
//!     exposition(&state.registry)
//! }
//!
//! let registry = Registry::new();
//! let servers = registry.gauge("rot_proxy_servers", "Servers listed, by coin.", &["coin"]);
//! let http = HttpMetrics::new(&registry);
//! let state = AppState { registry, servers };
//! let app: Router = http.layer(
//!     Router::new()
//!         .route("/v1/coins", get(|| async { "[]" }))
//!         .route("/metrics", get(metrics))
//!         .with_state(state),
//! );
//! ```

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::metrics::{CONTENT_TYPE, Counter, Histogram, LATENCY_BUCKETS, Registry};

/// Route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The request counter and latency histogram of one service instance.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Counter,
    duration: Histogram,
}

impl HttpMetrics {
    /// Registers `rot_http_requests_total` and `rot_http_request_duration_seconds` in
    /// `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self {
            requests: registry.counter(
                "rot_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                &["route", "method", "status"],
            ),
            duration: registry.histogram(
                "rot_http_request_duration_seconds",
                "Time to answer an HTTP request (until the response head), by route template.",
                &["route"],
                LATENCY_BUCKETS,
            ),
        }
    }

    /// Measures every request `router` answers. Apply it last, so that requests refused by
    /// other layers (timeouts, body limits) are counted too.
    pub fn layer<S>(self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router.layer(axum::middleware::from_fn_with_state(self, track))
    }
}

async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .duration
        .observe(&[&route], started.elapsed().as_secs_f64());
    metrics
        .requests
        .inc(&[&route, method, response.status().as_str()]);
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The answer of a `/metrics` endpoint: `registry` in the Prometheus text format.
pub fn exposition(registry: &Registry) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], registry.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_are_counted_by_route_template_and_status() {
        let registry = Registry::new();
        let app = HttpMetrics::new(&registry).layer(
            Router::new()
                .route("/tx/{txid}", get(|| async { "tx" }))
                .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no") }),
        );
        for (method, path) in [
            ("GET", "/tx/aa"),
            ("GET", "/tx/bb"),
            ("GET", "/nowhere"),
            ("BREW", "/tx/cc"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(request).await.unwrap();
        }
        let text = registry.render();
        for line in [
            "rot_http_requests_total{route=\"/tx/{txid}\",method=\"GET\",status=\"200\"} 2\n",
            "rot_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n",
            "rot_http_requests_total{route=\"/tx/{txid}\",method=\"other\",status=\"405\"} 1\n",
            "rot_http_request_duration_seconds_count{route=\"/tx/{txid}\"} 3\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
