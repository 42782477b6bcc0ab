//! Wiring of one rot-proxy: resolves the coins served, opens the directory and the incident
//! log, starts the stale-marking task and one prober per coin, and serves the API (with the
//! relay) on a listener until shutdown.
//!
//! Tests start proxies in-process through [`start`] on `127.0.0.1:0` (or [`start_with_clock`]
//! to move time by hand); the binary calls [`run`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rot_ops::serve::{Limits, serve};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use rot_bootstrap::Follower;
use rot_proto::Identity;

use crate::Error;
use crate::admission::{Admitter, Registrar};
use crate::api::{ApiSettings, AppState, Services, app};
use crate::clock::Clock;
use crate::coin::{CoinProfile, Coins};
use crate::config::Config;
use crate::directory::{self, Directory, Policy};
use crate::federation::{Federation, Following};
use crate::incidents::Incidents;
use crate::limits::RateLimiter;
use crate::metrics::ProxyMetrics;
use crate::pool::Pool;
use crate::probe::{CheckMode, Prober};
use crate::relay::Relay;
use crate::stats::Stats;
use crate::status::Status;
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

/// How the proxy follows the bootstrap list, when pins are configured.
fn following(config: &Config) -> Result<Option<Following>, Error> {
    let Some(settings) = &config.bootstrap else {
        return Ok(None);
    };
    let follower = Follower::open(
        &settings.pins_file,
        settings.mirrors.clone(),
        Some(config.data_dir.join("bootstrap-cache.json")),
    )
    .map_err(|e| Error::Config(format!("ROT_BOOTSTRAP_PINS: {e}")))?;
    Ok(Some(Following {
        follower,
        list_file: settings.list_file.clone(),
        interval: config.peer_interval,
        timeout: config
            .peer_interval
            .clamp(Duration::from_secs(1), Duration::from_secs(10)),
    }))
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
        require_suite: config.checks.mode == CheckMode::Full,
    };
    let directory = Arc::new(Directory::open(
        store.clone(),
        coins.clone(),
        policy,
        clock.clone(),
    )?);
    let metrics = ProxyMetrics::new();
    let incidents = Arc::new(Incidents::open(store, clock.clone())?.with_metrics(metrics.clone()));
    let stats = Arc::new(Stats::default());
    let registrar = Registrar::new(
        directory.clone(),
        Admitter::new(
            config.admission_timeout,
            config.max_skew.as_secs(),
            clock.clone(),
        )?,
        RateLimiter::new("registrations", config.register_rate, clock.clone()),
        config.max_admissions,
        stats.clone(),
    );
    let checks_http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        // Below the servers' header timeout (10 s by default), which closes idle connections:
        // the proxy drops a connection before the server does, and never sends a probe down
        // one the server is closing.
        .pool_idle_timeout(Duration::from_secs(5))
        .user_agent(concat!("rot-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
    let mut pools = BTreeMap::new();
    let mut probers = Vec::new();
    for profile in &coins {
        let pool = Arc::new(
            Pool::new(
                &profile.id(),
                directory.clone(),
                incidents.clone(),
                config.outliers.clone(),
                config.checks.mode != CheckMode::Off,
            )
            .with_metrics(metrics.clone()),
        );
        pool.rebuild()?;
        pools.insert(profile.id(), pool.clone());
        probers.push(Arc::new(Prober::new(
            pool,
            profile.clone(),
            incidents.clone(),
            config.sanctions.clone(),
            config.checks.clone(),
            checks_http.clone(),
        )));
    }
    let relay = Arc::new(Relay::new(pools, config.relay.clone(), clock.clone())?);
    let identity = Identity::load_or_generate(&config.key_file)?;
    tracing::info!(proxy_key = %identity.public_key(), "identity loaded");
    let federation = Arc::new(Federation::new(
        identity,
        directory.clone(),
        clock.clone(),
        config.max_skew.as_secs(),
    ));
    let following = following(&config)?;
    let status = Arc::new(Status::new(
        directory.clone(),
        federation.clone(),
        clock.clone(),
    ));
    let state = AppState::new(
        Services {
            directory: directory.clone(),
            registrar,
            stats,
            relay,
            incidents,
            federation: federation.clone(),
            status: status.clone(),
            metrics,
        },
        ApiSettings {
            admin_token: config.admin_token.clone(),
            max_body_bytes: config.max_heartbeat_bytes,
            relay_max_body_bytes: config.relay.max_body_bytes,
            relay_rate: config.relay_rate,
            relay_max_in_flight: config.relay_max_in_flight,
            trust_forwarded_for: config.trust_forwarded_for,
            request_timeout: config.request_timeout,
            max_skew_secs: config.max_skew.as_secs(),
        },
    );
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("listener: {e}")))?;

    let mut tasks = vec![tokio::spawn(directory::run_stale_marking(
        directory.clone(),
        stale_check_interval(config.stale_after),
        shutdown.clone(),
    ))];
    for prober in probers {
        tasks.push(tokio::spawn(prober.run(shutdown.clone())));
    }
    tasks.push(tokio::spawn(status.run(shutdown.clone())));
    if let Some(following) = following {
        tasks.push(tokio::spawn(federation.run(following, shutdown.clone())));
    }
    let router = app(state.clone());
    let limits = Limits::new(config.header_timeout, config.max_connections);
    tasks.push(tokio::spawn(async move {
        serve(listener, router, limits, shutdown).await;
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
