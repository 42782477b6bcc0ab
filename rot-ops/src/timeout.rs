//! The request timeout both services put around their API: a request running longer than the
//! limit gets the service's own timeout answer (its shared error body) instead of hanging the
//! client, and frees what it held.

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use axum::{BoxError, Router};
use tower::ServiceBuilder;

/// Wraps `router` so that a request running longer than `timeout` is answered with
/// `on_timeout()`.
pub fn with_timeout<E>(router: Router, timeout: Duration, on_timeout: fn() -> E) -> Router
where
    E: IntoResponse + Send + 'static,
{
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |_: BoxError| async move {
                on_timeout()
            }))
            .timeout(timeout),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slow_requests_get_the_timeout_answer_and_fast_ones_pass() {
        let router = Router::new()
            .route("/fast", get(|| async { "done" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "too late"
                }),
            );
        let app = with_timeout(router, Duration::from_secs(1), || {
            (StatusCode::GATEWAY_TIMEOUT, "timed out")
        });
        let ask = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let fast = app.clone().oneshot(ask("/fast")).await.unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
        let slow = app.oneshot(ask("/slow")).await.unwrap();
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
