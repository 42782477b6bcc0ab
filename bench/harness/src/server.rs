//! An in-process rot-server over a [`Litecoind`], on `127.0.0.1:0`, for tests and
//! benchmarks that need a real server without spawning its binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rot_server::config::Config;
use rot_server::server::{Running, start};
use rot_server::store::{Rows, Store};
use tokio_util::sync::CancellationToken;

use std::collections::BTreeSet;

use rot_proto::Hash256;

use crate::data_dir::{bind, data_dir_or_temp};
use crate::{ApiClient, Error, Litecoind};

/// A running rot-server; stopped (gracefully) by [`RotServer::stop`], or abruptly on drop.
#[derive(Debug)]
pub struct RotServer {
    /// Base URL of its API, e.g. `http://127.0.0.1:40125`.
    pub url: String,
    /// Its data directory (index, identity key).
    pub data_dir: PathBuf,
    running: Option<Running>,
    shutdown: CancellationToken,
    _owned_dir: Option<tempfile::TempDir>,
}

/// The settings of a regtest LTC rot-server over `node`, by environment name.
pub fn settings(node: &Litecoind, data_dir: &std::path::Path) -> BTreeMap<String, String> {
    [
        ("ROT_COIN_TIKKER", "LTC".to_owned()),
        ("ROT_NETWORK", "regtest".to_owned()),
        ("CORE_RPC_HOST", "127.0.0.1".to_owned()),
        ("CORE_RPC_PORT", node.rpc_port().to_string()),
        ("CORE_DATA_DIR", node.datadir().display().to_string()),
        ("ROT_DATA_DIR", data_dir.display().to_string()),
        ("ROT_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl RotServer {
    /// Starts a server over `node` in a fresh temporary data directory.
    pub async fn start(node: &Litecoind) -> Result<Self, Error> {
        Self::start_with(node, None, &[]).await
    }

    /// Starts a server over `node`, in `data_dir` (fresh temp dir when `None`), with `extra`
    /// settings (environment names) on top of the defaults.
    pub async fn start_with(
        node: &Litecoind,
        data_dir: Option<PathBuf>,
        extra: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let (data_dir, owned) = data_dir_or_temp(data_dir)?;
        let mut map = settings(node, &data_dir);
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

    /// Starts a server over `node` that registers with the proxy at `proxy_url`, heartbeating
    /// every second so tests see changes quickly.
    pub async fn registering_with(node: &Litecoind, proxy_url: &str) -> Result<Self, Error> {
        Self::start_with(
            node,
            None,
            &[("ROT_PROXIES", proxy_url), ("ROT_HEARTBEAT_SECS", "1")],
        )
        .await
    }

    /// A client of this server's API.
    pub fn api(&self) -> ApiClient {
        ApiClient::new(&self.url)
    }

    /// Waits until the server serves `node`'s best block and exactly its mempool (bounded by
    /// `timeout`), so that what a test reads next reflects what it did to the node.
    pub async fn wait_synced(&self, node: &Litecoind, timeout: Duration) -> Result<(), Error> {
        let api = self.api();
        crate::litecoind::wait_until(
            &format!("rot-server at {} to follow the node", self.url),
            timeout,
            || async {
                let (_, node_tip) = node.tip().await?;
                let node_mempool: BTreeSet<Hash256> =
                    node.call("getrawmempool", serde_json::json!([])).await?;
                let tip = api.get_text("/blocks/tip/hash").await.unwrap_or_default();
                let mempool: Option<BTreeSet<Hash256>> = async {
                    serde_json::from_value(api.get_json("/mempool/txids").await.ok()?).ok()
                }
                .await;
                let synced = tip == node_tip.to_string() && mempool.as_ref() == Some(&node_mempool);
                Ok((
                    synced,
                    format!(
                        "server tip {tip}, node tip {node_tip}; mempool {} vs node {}",
                        mempool.map_or(0, |m| m.len()),
                        node_mempool.len()
                    ),
                ))
            },
        )
        .await
    }

    /// Waits until the server's tip is `height` (bounded by `timeout`).
    pub async fn wait_for_height(&self, height: u32, timeout: Duration) -> Result<(), Error> {
        let http = reqwest::Client::new();
        let started = tokio::time::Instant::now();
        loop {
            let seen = async {
                let text = http
                    .get(format!("{}/blocks/tip/height", self.url))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                text.trim().parse::<u32>().ok()
            }
            .await;
            if seen == Some(height) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!("rot-server at {} to reach height {height}", self.url),
                    waited: timeout,
                    last_state: format!("tip height {seen:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server and waits for its tasks (index flushed).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.join().await;
        }
    }
}

/// Every row of every table of the index in the data dir of a stopped server, for tests
/// that compare two indexes.
pub fn index_dump(data_dir: &std::path::Path) -> Result<BTreeMap<&'static str, Rows>, Error> {
    let store = Store::open(&data_dir.join("index"), "ltc-regtest", 16 << 20)?;
    Ok(store.dump()?)
}

/// The index a fresh server builds of `node`'s chain (synced within `timeout`), as
/// [`index_dump`] gives it: what an index must equal after any crash and restart.
pub async fn fresh_index(
    node: &Litecoind,
    timeout: Duration,
) -> Result<BTreeMap<&'static str, Rows>, Error> {
    // The data dir outlives the server, to be read after it stopped.
    let (data_dir, _owned) = data_dir_or_temp(None)?;
    let server = RotServer::start_with(node, Some(data_dir.clone()), &[]).await?;
    server.wait_synced(node, timeout).await?;
    server.stop().await;
    index_dump(&data_dir)
}

impl Drop for RotServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
