//! An in-process rot-proxy on `127.0.0.1:0` serving regtest LTC, for tests, benchmarks and
//! the demo ring.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rot_proxy::config::Config;
use rot_proxy::server::{Running, start};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::data_dir::{bind, data_dir_or_temp};

/// Bearer token of the operator view of harness proxies.
pub const ADMIN_TOKEN: &str = "harness-admin-token-0123456789";

/// A running rot-proxy; stopped (gracefully) by [`RotProxy::stop`], or abruptly on drop.
#[derive(Debug)]
pub struct RotProxy {
    /// Base URL of its API, e.g. `http://127.0.0.1:40126`.
    pub url: String,
    /// Its data directory (directory database).
    pub data_dir: PathBuf,
    running: Option<Running>,
    shutdown: CancellationToken,
    _owned_dir: Option<tempfile::TempDir>,
}

impl RotProxy {
    /// Starts a proxy in `data_dir` (fresh temp dir when `None`) with `extra` settings
    /// (environment names) over the defaults: regtest LTC, loopback, [`ADMIN_TOKEN`].
    pub async fn start_with(
        data_dir: Option<PathBuf>,
        extra: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let (data_dir, owned) = data_dir_or_temp(data_dir)?;
        let mut map: BTreeMap<String, String> = [
            ("ROT_PROXY_COINS", "LTC:regtest".to_owned()),
            ("ROT_PROXY_DATA_DIR", data_dir.display().to_string()),
            ("ROT_PROXY_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("ROT_PROXY_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_map(&map)?;
        let listener = bind(config.listen).await?;
        let shutdown = CancellationToken::new();
        let running = start(config, listener, shutdown.clone()).await?;
        Ok(Self {
            url: format!("http://{}", running.addr),
            data_dir,
            running: Some(running),
            shutdown,
            _owned_dir: owned,
        })
    }

    /// Stops the proxy and waits for its tasks (directory flushed).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.join().await;
        }
    }
}

impl Drop for RotProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
