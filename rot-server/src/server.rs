//! Wiring of one rot-server: opens the identity key and the index, starts the backend with
//! its background tasks, and serves the API on a listener until shutdown.
//!
//! Tests start servers in-process through [`start`] on `127.0.0.1:0`; the binary calls [`run`].

use std::sync::{Arc, RwLock};

use rot_ops::serve::{Limits, serve};
use rot_proto::identity::Identity;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::api::{AppState, app};
use crate::backend::Backend;
use crate::config::{BackendConfig, Config};
use crate::discovery::Discovery;
use crate::electrum::ElectrumBackend;
use crate::heartbeat::{Registrar, Sequence};
use crate::native::NativeBackend;
use crate::rpc::NodeRpc;
use crate::store::Store;

/// Index cache: enough for the hot part of a community coin's index without letting sled
/// take its 1 GB default. More did not index faster (the benchmark chain's index, 100 MB on
/// disk, indexed no faster with 256 MB than with 64 MB) but raised peak memory; much less
/// (16 MB) made indexing half again slower.
const STORE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Longest wait for the node at start before giving up on this attempt (the indexer keeps
/// retrying afterwards).
const NODE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A running server: its state, the address it serves on, and its background tasks.
#[derive(Debug)]
pub struct Running {
    /// The API's state (for tests that look inside).
    pub state: AppState,
    /// Where the API listens.
    pub addr: std::net::SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Waits for the API and background tasks to finish after shutdown was signalled.
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts a server on `listener`; everything stops when `shutdown` is cancelled.
pub async fn start(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<Running, Error> {
    let profile = config.profile.clone();
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| Error::Config(format!("ROT_DATA_DIR {}: {e}", config.data_dir.display())))?;
    let identity = Identity::load_or_generate(&config.data_dir.join("identity.key"))?;
    tracing::info!(server_key = %identity.public_key(), coin = %profile.id(), "identity loaded");

    let mut tasks = Vec::new();
    let backend: Arc<dyn Backend> = match &config.backend {
        BackendConfig::Native { rpc_url, rpc_auth } => {
            let rpc = NodeRpc::new(rpc_url, rpc_auth.clone())?;
            let info = rpc.wait_ready(NODE_WAIT).await?;
            let genesis = rpc.get_block_hash(0).await?;
            if genesis != profile.genesis_hash {
                return Err(Error::Config(format!(
                    "the node at {} is on chain {:?} with genesis {genesis}, not {} {}",
                    rpc_url, info.chain, profile.ticker, profile.network
                )));
            }
            let store = Store::open(
                &config.data_dir.join("index"),
                &profile.id(),
                STORE_CACHE_BYTES,
            )?;
            let (backend, task) = NativeBackend::start(
                store,
                rpc,
                profile.rules,
                config.reorg_limit,
                shutdown.clone(),
            )?;
            tasks.push(task);
            Arc::new(backend)
        }
        BackendConfig::Electrum { url, ca_file } => {
            let (backend, task) = ElectrumBackend::start(
                url,
                ca_file.as_deref(),
                &profile,
                &config.data_dir,
                shutdown.clone(),
            )
            .await?;
            tasks.push(task);
            Arc::new(backend)
        }
    };

    let standings = Arc::new(RwLock::new(Vec::new()));
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("listener: {e}")))?;
    let public_url = config.public_url.clone().unwrap_or_else(|| {
        let host = if addr.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            addr.ip()
        };
        format!("http://{}", std::net::SocketAddr::new(host, addr.port()))
    });
    let state = AppState::new(
        backend,
        profile,
        identity,
        Some(public_url.clone()),
        standings,
    );
    if !config.proxies.is_empty() || config.bootstrap.is_some() {
        if config.public_url.is_none() {
            tracing::warn!(%public_url, "ROT_PUBLIC_URL not set; proxies are told to call back the listen address");
        }
        let sequence = Arc::new(Sequence::open(&config.data_dir.join("heartbeat.seq"))?);
        let registrar = Registrar::new(
            state.clone(),
            public_url,
            sequence,
            config.heartbeat_interval,
        );
        match &config.bootstrap {
            // A fixed list of proxies overrides discovery.
            Some(_) if !config.proxies.is_empty() => {
                tracing::info!("ROT_PROXIES set: not discovering proxies from the bootstrap list");
            }
            Some(bootstrap) => {
                let cache = config.data_dir.join("bootstrap-cache.json");
                let discovery = Discovery::new(
                    bootstrap.clone(),
                    cache,
                    config.profile.id(),
                    registrar.clone(),
                )?;
                tasks.push(tokio::spawn(discovery.run(shutdown.clone())));
            }
            None => {}
        }
        for proxy in &config.proxies {
            tasks.push(registrar.link(proxy.clone(), shutdown.clone()));
        }
    }
    let router = app(state.clone(), config.request_timeout);
    let limits = Limits::new(config.header_timeout, config.max_connections);
    tasks.push(tokio::spawn(serve(
        listener,
        router,
        limits,
        shutdown.clone(),
    )));
    tracing::info!(%addr, "serving the Esplora API and /rot/v1");
    Ok(Running { state, addr, tasks })
}

/// Runs a server until `shutdown` is cancelled, then waits for its tasks to finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    start(config, listener, shutdown).await?.join().await;
    Ok(())
}
