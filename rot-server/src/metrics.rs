//! rot-server's Prometheus metrics, served at `/metrics`: the HTTP requests (rot-ops' layer),
//! the index and chain heights, indexing progress, the mempool size and the heartbeat
//! outcomes per proxy. Heights and progress are read from the backend at each scrape, so
//! they are never stale.

use rot_ops::http_metrics::HttpMetrics;
use rot_ops::{Counter, Gauge, Registry};
use rot_proto::coin::CoinProfile;
use rot_proto::message::BackendKind;

use crate::backend::Backend;

/// The metrics of one server. Cheap to clone; clones share the numbers.
#[derive(Debug, Clone)]
pub struct ServerMetrics {
    registry: Registry,
    http: HttpMetrics,
    heartbeats: Counter,
    index_height: Gauge,
    node_height: Gauge,
    tip_height: Gauge,
    index_progress: Gauge,
    index_synced: Gauge,
    index_speed: Gauge,
    mempool: Gauge,
}

/// What a heartbeat to a proxy came to, as counted in `rot_server_heartbeats_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The proxy accepted it.
    Accepted,
    /// The proxy refused it (4xx).
    Refused,
    /// The proxy could not be reached or failed (5xx, unreadable answer).
    Failed,
}

impl HeartbeatOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

impl ServerMetrics {
    /// Registers the server's metrics; `rot_server_info` names the coin, backend and version.
    pub fn new(profile: &CoinProfile, backend: BackendKind) -> Self {
        let registry = Registry::new();
        let info = registry.gauge(
            "rot_server_info",
            "Always 1; the labels say what this server is.",
            &["coin", "backend", "version"],
        );
        let backend = match backend {
            BackendKind::Native => "native",
            BackendKind::Electrum => "electrum",
        };
        info.set(&[&profile.id(), backend, env!("CARGO_PKG_VERSION")], 1.0);
        Self {
            http: HttpMetrics::new(&registry),
            heartbeats: registry.counter(
                "rot_server_heartbeats_total",
                "Heartbeats sent, by proxy and outcome (accepted, refused, failed).",
                &["proxy", "outcome"],
            ),
            index_height: registry.gauge(
                "rot_server_index_height",
                "Highest block the index covers.",
                &[],
            ),
            node_height: registry.gauge(
                "rot_server_node_height",
                "Best block height of the full node (or Electrum server) behind this server.",
                &[],
            ),
            tip_height: registry.gauge(
                "rot_server_tip_height",
                "Height of the best block the API serves.",
                &[],
            ),
            index_progress: registry.gauge(
                "rot_server_index_progress_ratio",
                "Index height over node height, 1 when caught up.",
                &[],
            ),
            index_synced: registry.gauge(
                "rot_server_index_synced",
                "1 when the index has caught up with the node, else 0.",
                &[],
            ),
            index_speed: registry.gauge(
                "rot_server_index_blocks_per_second",
                "Recent indexing speed.",
                &[],
            ),
            mempool: registry.gauge(
                "rot_server_mempool_transactions",
                "Transactions in the mempool view (absent when the backend cannot list it).",
                &[],
            ),
            registry,
        }
    }

    /// The HTTP request metrics, to layer over the API.
    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    /// Counts one heartbeat to `proxy`.
    pub fn heartbeat(&self, proxy: &str, outcome: HeartbeatOutcome) {
        self.heartbeats.inc(&[proxy, outcome.label()]);
    }

    /// Every metric, for `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Reads the backend's current heights, progress and mempool size into the gauges (done
    /// at each scrape).
    pub async fn refresh(&self, backend: &dyn Backend) {
        let progress = backend.progress();
        let tip = *backend.tips().borrow();
        // Heights stay far below 2^53, so they are exact as f64.
        self.index_height.set(&[], progress.indexed_height as f64);
        self.node_height.set(&[], progress.node_height as f64);
        self.tip_height.set(&[], f64::from(tip.height));
        let ratio = if progress.node_height == 0 {
            1.0
        } else {
            (progress.indexed_height as f64 / progress.node_height as f64).min(1.0)
        };
        self.index_progress.set(&[], ratio);
        self.index_synced
            .set(&[], if progress.synced { 1.0 } else { 0.0 });
        self.index_speed
            .set(&[], progress.blocks_per_sec_milli as f64 / 1000.0);
        if let Ok(txids) = backend.mempool_txids().await {
            self.mempool.set(&[], txids.len() as f64);
        }
    }
}
