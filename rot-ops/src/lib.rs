//! rot-ops: what every ROT binary shares so operators run them all the same way — the logging
//! options (`--log-format` / `ROT_LOG_FORMAT`, `--log-filter` / `RUST_LOG`), a clean shutdown
//! on Ctrl-C or SIGTERM, an HTTP server bounding slow and idle connections and their number,
//! Prometheus metrics (a per-instance registry and the HTTP request metrics layer), the
//! request timeout of their APIs, the layering of a service's settings (a file under
//! environment and flags), and reopening a service's sled database in the same process.
//!
//! It is its own crate because rot-server and rot-proxy must not depend on each other and
//! rot-proto stays free of tokio, axum and tracing-subscriber. The `service` feature adds the
//! parts only long-running HTTP services need.

pub mod error;
#[cfg(feature = "service")]
pub mod http_metrics;
pub mod logging;
pub mod metrics;
#[cfg(feature = "service")]
pub mod serve;
#[cfg(feature = "service")]
pub mod settings;
#[cfg(feature = "service")]
pub mod shutdown;
#[cfg(feature = "service")]
pub mod sled_open;
#[cfg(feature = "service")]
pub mod timeout;

pub use error::Error;
pub use logging::{LogArgs, LogFormat};
pub use metrics::{Counter, Gauge, Histogram, Registry};
