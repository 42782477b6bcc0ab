//! Proxy discovery: finds this coin's proxies in the threshold-signed bootstrap list and keeps
//! a heartbeat link to each, following the list as it changes.
//!
//! The list is verified against the maintainer keys the operator pinned, cached in the data
//! directory (so a restart works while every mirror is down, until the list expires) and
//! refreshed on a randomised schedule from the configured mirrors and from the proxies the
//! list itself names. A fixed `ROT_PROXIES` list bypasses all this.

use std::collections::HashMap;
use std::path::PathBuf;

use rot_bootstrap::fetch::{FetchOptions, http_client};
use rot_bootstrap::{Follower, unix_now};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::heartbeat::Registrar;

/// Where the bootstrap list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// JSON file of pinned maintainer keys: `{"threshold": k, "keys": ["hex", ...]}`.
    pub pins_file: PathBuf,
    /// URLs the list can be fetched from (a proxy's `/v1/bootstrap` or any mirror).
    pub mirrors: Vec<String>,
}

/// Follows the bootstrap list and keeps one heartbeat link per listed proxy of `coin_id`.
#[derive(Debug)]
pub struct Discovery {
    follower: Follower,
    coin_id: String,
    registrar: Registrar,
    links: HashMap<String, CancellationToken>,
}

impl Discovery {
    /// Reads the pins and the cached list (a damaged cache is ignored with a warning).
    pub fn new(
        config: BootstrapConfig,
        cache: PathBuf,
        coin_id: String,
        registrar: Registrar,
    ) -> Result<Self, Error> {
        let mut follower = Follower::open(&config.pins_file, config.mirrors, Some(cache))
            .map_err(|e| Error::Config(format!("ROT_BOOTSTRAP_PINS: {e}")))?;
        if let Err(e) = follower.load_cache() {
            tracing::warn!(error = %e, "ignoring the cached bootstrap list");
        }
        Ok(Self {
            follower,
            coin_id,
            registrar,
            links: HashMap::new(),
        })
    }

    /// Runs until `shutdown`: refresh, adjust links, sleep until the next jittered refresh.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let options = FetchOptions::default();
        let client = match http_client(&options) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "bootstrap discovery cannot start its HTTP client");
                return;
            }
        };
        loop {
            let (report, cached) = self.follower.refresh(&client, unix_now(), &options).await;
            if let Some(accepted) = &report.accepted {
                tracing::info!(?accepted, source = ?report.source, "bootstrap list refreshed");
            } else if report.source.is_none() {
                tracing::warn!(
                    mirrors = report.mirrors.len(),
                    "no mirror served an acceptable bootstrap list"
                );
            }
            if let Err(e) = cached {
                tracing::warn!(error = %e, "could not cache the bootstrap list");
            }
            self.update_links(&shutdown);
            let wait = self.follower.next_refresh_in(unix_now());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(wait)) => {}
            }
        }
    }

    fn update_links(&mut self, shutdown: &CancellationToken) {
        let wanted: Vec<String> = match self.follower.store().proxies_for(&self.coin_id, unix_now())
        {
            Ok(proxies) => proxies.iter().map(|p| p.url.clone()).collect(),
            Err(e) => {
                tracing::warn!(coin = %self.coin_id, error = %e, "no usable bootstrap list; keeping current proxies");
                return;
            }
        };
        self.links.retain(|url, token| {
            let keep = wanted.contains(url);
            if !keep {
                tracing::info!(proxy = %url, "proxy left the bootstrap list; stopping heartbeats");
                token.cancel();
                self.registrar.forget(url);
            }
            keep
        });
        for url in wanted {
            if !self.links.contains_key(&url) {
                tracing::info!(proxy = %url, "registering with proxy from the bootstrap list");
                let token = shutdown.child_token();
                self.registrar.link(url.clone(), token.clone());
                self.links.insert(url, token);
            }
        }
    }
}
