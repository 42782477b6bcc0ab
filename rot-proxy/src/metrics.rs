//! rot-proxy's Prometheus metrics, served at `/metrics`: the API's HTTP requests (rot-ops'
//! layer), relayed requests and their latency per coin and answer class, probes per coin and
//! outcome, incidents per coin, check and consequence, and at each scrape the directory's
//! servers per status, the healthy count and agreed tip per coin, the bootstrap list serial
//! and the reachable peers.
//!
//! Relayed requests are measured in the relay itself rather than by the HTTP layer, which the
//! relay path skips to stay cheap.

use std::sync::Arc;
use std::time::Duration;

use rot_ops::http_metrics::HttpMetrics;
use rot_ops::metrics::LATENCY_BUCKETS;
use rot_ops::{Counter, Gauge, Histogram, Registry};
use rot_proto::message::Consequence;

use crate::Error;
use crate::directory::Directory;
use crate::federation::Federation;

/// The metrics of one proxy. Cheap to clone; clones share the numbers.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    registry: Registry,
    http: HttpMetrics,
    relayed: Histogram,
    probes: Counter,
    incidents: Counter,
    servers: Gauge,
    healthy: Gauge,
    tip: Gauge,
    bootstrap_serial: Gauge,
    peers: Gauge,
}

impl ProxyMetrics {
    /// Registers the proxy's metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let info = registry.gauge(
            "rot_proxy_info",
            "Always 1; the label says which version runs.",
            &["version"],
        );
        info.set(&[env!("CARGO_PKG_VERSION")], 1.0);
        Self {
            http: HttpMetrics::new(&registry),
            relayed: registry.histogram(
                "rot_proxy_relay_duration_seconds",
                "Relayed wallet requests by coin and answer class (2xx, 4xx, 5xx), until the \
                 answer's head.",
                &["coin", "class"],
                LATENCY_BUCKETS,
            ),
            probes: registry.counter(
                "rot_proxy_probes_total",
                "Probes of servers by coin and outcome (reachable, unreachable).",
                &["coin", "outcome"],
            ),
            incidents: registry.counter(
                "rot_proxy_incidents_total",
                "Incidents recorded since start by coin, check and consequence.",
                &["coin", "check", "consequence"],
            ),
            servers: registry.gauge(
                "rot_proxy_servers",
                "Servers in the directory by coin and status.",
                &["coin", "status"],
            ),
            healthy: registry.gauge(
                "rot_proxy_healthy_servers",
                "Servers wallets are sent to, by coin.",
                &["coin"],
            ),
            tip: registry.gauge(
                "rot_proxy_agreed_tip_height",
                "Height of the tip most healthy servers report, by coin (absent without one).",
                &["coin"],
            ),
            bootstrap_serial: registry.gauge(
                "rot_proxy_bootstrap_serial",
                "Serial of the bootstrap list held (0: none).",
                &[],
            ),
            peers: registry.gauge(
                "rot_proxy_peers",
                "Other proxies of the bootstrap list by reachability (reachable, unreachable).",
                &["state"],
            ),
            registry,
        }
    }

    /// The HTTP request metrics, to layer over the API (not the relay).
    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    /// Counts one relayed request of `coin` answered with `status` after `elapsed`.
    pub fn relayed(&self, coin: &str, status: u16, elapsed: Duration) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.relayed.observe(&[coin, class], elapsed.as_secs_f64());
    }

    /// Counts one probe of a `coin` server.
    pub fn probe(&self, coin: &str, reachable: bool) {
        let outcome = if reachable {
            "reachable"
        } else {
            "unreachable"
        };
        self.probes.inc(&[coin, outcome]);
    }

    /// Counts one incident.
    pub fn incident(&self, coin: &str, check: &str, consequence: Consequence) {
        let consequence = match consequence {
            Consequence::None => "none",
            Consequence::Warning => "warning",
            Consequence::Ejection => "ejection",
            Consequence::Exclusion => "exclusion",
        };
        self.incidents.inc(&[coin, check, consequence]);
    }

    /// Sets the directory and federation gauges and renders every metric.
    pub fn render(
        &self,
        directory: &Arc<Directory>,
        federation: &Federation,
    ) -> Result<String, Error> {
        for (coin, counts) in directory.status_counts() {
            for (status, count) in [
                ("admitted", counts.admitted),
                ("checking", counts.checking),
                ("warned", counts.warned),
                ("excluded", counts.excluded),
                ("stale", counts.stale),
                ("pending", counts.pending),
                ("banned", counts.banned),
            ] {
                self.servers.set(&[&coin, status], count as f64);
            }
        }
        for coin in directory.coin_summaries()? {
            self.healthy.set(&[&coin.id], coin.healthy_servers as f64);
            if let Some(height) = coin.tip_height {
                // Heights stay far below 2^53, so they are exact as f64.
                self.tip.set(&[&coin.id], height as f64);
            }
        }
        self.bootstrap_serial
            .set(&[], federation.held_serial().unwrap_or(0) as f64);
        let peers = federation.peers().peers;
        let reachable = peers.iter().filter(|peer| peer.reachable).count();
        self.peers.set(&["reachable"], reachable as f64);
        self.peers
            .set(&["unreachable"], (peers.len() - reachable) as f64);
        Ok(self.registry.render())
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}
