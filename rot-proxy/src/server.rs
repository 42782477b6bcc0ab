//! Wiring of one rot-proxy: resolves the coins served, opens the directory, starts the
//! stale-marking task, and serves the API on a listener until shutdown.
//!
//! Tests start proxies in-process through [`start`] on `127.0.0.1:0` (or [`start_with_clock`]
//! to move time by hand); the binary calls [`run`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::admission::{Admitter, Registrar};
use crate::api::{AppState, app};
use crate::clock::Clock;
use crate::coin::{CoinProfile, Coins};
use crate::config::Config;
use crate::directory::{self, Directory, Policy};
use crate::limits::RateLimiter;
use crate::stats::Stats;
use crate::store::Store;

/// A running proxy: its state, the address it serves on, and its tasks.
#[derive(Debug)]
pub struct Running {
    /// The API's state (for tests that look inside).
    pub state: AppState,
    /// Where the API listens.
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Waits for the API and background tasks to finish after shutdown was signalled; the
    /// directory is flushed to disk once the API has stopped.
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The coin profiles `config` names, from the built-in profiles and the coin file.
pub fn served_coins(config: &Config) -> Result<Vec<CoinProfile>, Error> {
    let mut coins = Coins::builtin();
    if let Some(path) = &config.coin_file {
        coins
            .load_file(path)
            .map_err(|e| Error::Config(format!("ROT_PROXY_COIN_FILE: {e}")))?;
    }
    config
        .coins
        .iter()
        .map(|choice| {
            coins
                .get(&choice.ticker, choice.network)
                .cloned()
                .ok_or_else(|| {
                    Error::Config(format!(
                        "ROT_PROXY_COINS: no coin profile for {} {} (known: {})",
                        choice.ticker,
                        choice.network,
                        coins.ids().collect::<Vec<_>>().join(", ")
                    ))
                })
        })
        .collect()
}

/// How often overdue servers are marked stale: a few times per stale period.
fn stale_check_interval(stale_after: Duration) -> Duration {
    (stale_after / 6).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Starts a proxy on `listener` with the system clock; everything stops when `shutdown` is
/// cancelled.
pub async fn start(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<Running, Error> {
    start_with_clock(config, listener, shutdown, Clock::system()).await
}

/// Starts a proxy whose rules run on `clock`.
pub async fn start_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    clock: Clock,
) -> Result<Running, Error> {
    tracing::info!(?config, "effective configuration");
    let coins = served_coins(&config)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::Config(format!(
            "ROT_PROXY_DATA_DIR {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let store = Store::open(&config.data_dir.join("directory"))?;
    let policy = Policy {
        max_skew_secs: config.max_skew.as_secs(),
        stale_after: config.stale_after,
        max_servers_per_coin: config.max_servers_per_coin,
        max_servers_per_addr: config.max_servers_per_addr,
        publish_urls: config.publish_urls,
    };
    let directory = Arc::new(Directory::open(store, coins, policy, clock.clone())?);
    let stats = Arc::new(Stats::default());
    let registrar = Registrar::new(
        directory.clone(),
        Admitter::new(
            config.admission_timeout,
            config.max_skew.as_secs(),
            clock.clone(),
        )?,
        RateLimiter::new(config.register_rate, clock),
        config.max_admissions,
        stats.clone(),
    );
    let state = AppState::new(
        directory.clone(),
        registrar,
        stats,
        config.admin_token.clone(),
        config.max_heartbeat_bytes,
        config.trust_forwarded_for,
    );
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("listener: {e}")))?;

    let mut tasks = vec![tokio::spawn(directory::run_stale_marking(
        directory.clone(),
        stale_check_interval(config.stale_after),
        shutdown.clone(),
    ))];
    let router = app(state.clone(), config.request_timeout);
    tasks.push(tokio::spawn(async move {
        // No Nagle delay: small answers (acks, errors) go out at once, also when pipelined.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "API server failed");
        }
        if let Err(e) = directory.flush() {
            tracing::error!(error = %e, "flushing the directory failed");
        }
    }));
    tracing::info!(%addr, coins = ?state.directory().coin_ids().collect::<Vec<_>>(), "serving the proxy API");
    Ok(Running { state, addr, tasks })
}

/// Runs a proxy until `shutdown` is cancelled, then waits for its tasks to finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    start(config, listener, shutdown).await?.join().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map).unwrap()
    }

    #[test]
    fn coins_resolve_to_profiles_or_name_the_known_ones() {
        let coins = served_coins(&config(&[("ROT_PROXY_COINS", "LTC,ltc:regtest")])).unwrap();
        let ids: Vec<String> = coins.iter().map(CoinProfile::id).collect();
        assert_eq!(ids, ["ltc", "ltc-regtest"]);
        let err = served_coins(&config(&[("ROT_PROXY_COINS", "NOPE")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ROT_PROXY_COINS") && err.contains("ltc"),
            "{err}"
        );
    }

    #[test]
    fn stale_checks_run_a_few_times_per_period() {
        assert_eq!(
            stale_check_interval(Duration::from_secs(180)),
            Duration::from_secs(30)
        );
        assert_eq!(
            stale_check_interval(Duration::from_secs(60)),
            Duration::from_secs(10)
        );
        assert_eq!(
            stale_check_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }
}
