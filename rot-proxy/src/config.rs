//! rot-proxy configuration: read once from flags, environment and an optional TOML file (flags
//! win over environment, environment over file), validated into typed values.
//!
//! Settings are first gathered into a map keyed by their environment-variable names, so the
//! validation in [`Config::from_map`] is one testable function whatever the source.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rot_proto::Network;

use rot_ops::settings::{get, number};

use crate::Error;
use crate::outlier::OutlierRules;
use crate::policy::Sanctions;
use crate::probe::{CheckMode, CheckSettings};
use crate::relay::RelaySettings;

/// Default port of the proxy's HTTP API (rot-server's is 3002).
pub const DEFAULT_PORT: u16 = 3003;
/// Shortest admin token accepted, so a guessable word cannot guard the operator view.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// One coin the proxy serves, as named in `ROT_PROXY_COINS`: resolved to a coin profile at
/// start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoinChoice {
    /// Ticker, upper case (`LTC`).
    pub ticker: String,
    /// Which of the coin's networks.
    pub network: Network,
}

impl FromStr for CoinChoice {
    type Err = Error;

    /// Parses `ticker` or `ticker:network` (`LTC`, `ltc:regtest`).
    fn from_str(text: &str) -> Result<Self, Error> {
        let (ticker, network) = match text.split_once(':') {
            Some((ticker, network)) => (ticker.trim(), network.trim().parse()?),
            None => (text.trim(), Network::Main),
        };
        let valid = !ticker.is_empty()
            && ticker.len() <= 16
            && ticker.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err(invalid(
                "ROT_PROXY_COINS",
                format!("{text:?} is not a ticker or ticker:network"),
            ));
        }
        Ok(Self {
            ticker: ticker.to_ascii_uppercase(),
            network,
        })
    }
}

/// The operator view's bearer token. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token, refused when shorter than [`MIN_ADMIN_TOKEN_LEN`].
    pub fn new(token: &str) -> Result<Self, Error> {
        if token.len() < MIN_ADMIN_TOKEN_LEN {
            return Err(invalid(
                "ROT_PROXY_ADMIN_TOKEN",
                format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
            ));
        }
        Ok(Self(token.to_owned()))
    }

    /// The token as configured.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Per-IP registration budget: a token bucket of `burst` registrations refilled at
/// `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterRate {
    /// Registrations one IP may start at once.
    pub burst: u32,
    /// Registrations per minute one IP regains.
    pub per_minute: u32,
}

/// The validated configuration of one rot-proxy.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// The directory database lives here.
    pub data_dir: PathBuf,
    /// Coins served, in the order given.
    pub coins: Vec<CoinChoice>,
    /// Operator-supplied coin profile file, added to the built-in profiles.
    pub coin_file: Option<PathBuf>,
    /// Bearer token of the operator view; without one the operator view is off.
    pub admin_token: Option<AdminToken>,
    /// Whether wallets see server URLs in the public directory.
    pub publish_urls: bool,
    /// Largest distance between a signed timestamp and the proxy's clock.
    pub max_skew: Duration,
    /// A server with no accepted heartbeat for this long is stale and left out of answers.
    pub stale_after: Duration,
    /// Largest heartbeat body accepted.
    pub max_heartbeat_bytes: usize,
    /// Per-IP registration budget.
    pub register_rate: RegisterRate,
    /// Most servers (admitted or stale, not banned) one coin's directory holds.
    pub max_servers_per_coin: usize,
    /// Most servers of one coin reached at the same IP address.
    pub max_servers_per_addr: usize,
    /// Time budget of one admission (challenge and info calls together).
    pub admission_timeout: Duration,
    /// Most admissions running at once.
    pub max_admissions: usize,
    /// Take the client IP from the last `X-Forwarded-For` entry (behind a reverse proxy).
    pub trust_forwarded_for: bool,
    /// Timeout of one request to the API.
    pub request_timeout: Duration,
    /// Longest a connection may go without a request in flight (to send a request's headers,
    /// or between keep-alive requests) before it is closed.
    pub header_timeout: Duration,
    /// Most client connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// How the relay talks to servers.
    pub relay: RelaySettings,
    /// Per-IP budget of relayed requests (`per_minute` holds the per-second rate × 60).
    pub relay_rate: RegisterRate,
    /// Most relayed requests in flight at once; more are refused with 503.
    pub relay_max_in_flight: usize,
    /// Probes, conformance suites and cross-checks.
    pub checks: CheckSettings,
    /// Passive ejection of servers failing relayed requests.
    pub outliers: OutlierRules,
    /// Warnings and exclusions.
    pub sanctions: Sanctions,
    /// The proxy's identity key file, created on first start: the key the bootstrap list names
    /// for this proxy, signing its `GET /v1/info`.
    pub key_file: PathBuf,
    /// Where the bootstrap list comes from; without it the proxy holds no list and knows no
    /// peers.
    pub bootstrap: Option<BootstrapSettings>,
    /// How often the other proxies of the list are asked for their state.
    pub peer_interval: Duration,
}

/// How the proxy follows the bootstrap list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSettings {
    /// JSON file of pinned maintainer keys: `{"threshold": k, "keys": ["hex", ...]}`.
    pub pins_file: PathBuf,
    /// URLs the list can be fetched from (mirrors, other proxies' `/v1/bootstrap`).
    pub mirrors: Vec<String>,
    /// A list file the maintainers hand to this proxy; re-read every peer round, so replacing
    /// it publishes a new list through this proxy and from it to every peer.
    pub list_file: Option<PathBuf>,
}

/// Command-line flags; each also reads its environment variable. Values left unset fall back
/// to the TOML file given by `--config` / `ROT_PROXY_CONFIG`, then to the defaults.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "rot-proxy",
    version,
    about = "ROT proxy: a directory of rot-servers per coin, registered by signed heartbeats"
)]
pub struct Args {
    /// Optional TOML file with any of the settings below (keys are the environment names, any case).
    #[arg(long, env = "ROT_PROXY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the API listens: host:port or a port [default: 0.0.0.0:3003].
    #[arg(long, env = "ROT_PROXY_LISTEN_ADDR")]
    pub listen_addr: Option<String>,
    /// Directory for the directory database [default: ./rot-proxy-data].
    #[arg(long, env = "ROT_PROXY_DATA_DIR")]
    pub data_dir: Option<String>,
    /// Coins served, comma-separated ticker or ticker:network, e.g. LTC,LTC:regtest (required).
    #[arg(long, env = "ROT_PROXY_COINS")]
    pub coins: Option<String>,
    /// Extra coin profile file (JSON) for a coin not built in.
    #[arg(long, env = "ROT_PROXY_COIN_FILE")]
    pub coin_file: Option<String>,
    /// Bearer token of the operator view (at least 16 characters); without it the view is off.
    #[arg(long, env = "ROT_PROXY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Publish server URLs to wallets: true or false [default: false].
    #[arg(long, env = "ROT_PROXY_PUBLISH_URLS")]
    pub publish_urls: Option<String>,
    /// Largest clock skew of a signed timestamp, in seconds [default: 120].
    #[arg(long, env = "ROT_PROXY_MAX_SKEW_SECS")]
    pub max_skew_secs: Option<String>,
    /// Seconds without a heartbeat after which a server is stale [default: 180].
    #[arg(long, env = "ROT_PROXY_STALE_SECS")]
    pub stale_secs: Option<String>,
    /// Largest heartbeat body in bytes [default: 16384].
    #[arg(long, env = "ROT_PROXY_MAX_HEARTBEAT_BYTES")]
    pub max_heartbeat_bytes: Option<String>,
    /// Registrations one IP may start at once [default: 5].
    #[arg(long, env = "ROT_PROXY_REGISTER_BURST")]
    pub register_burst: Option<String>,
    /// Registrations per minute one IP regains [default: 1].
    #[arg(long, env = "ROT_PROXY_REGISTER_PER_MINUTE")]
    pub register_per_minute: Option<String>,
    /// Most servers per coin, admitted or stale [default: 1000].
    #[arg(long, env = "ROT_PROXY_MAX_SERVERS_PER_COIN")]
    pub max_servers_per_coin: Option<String>,
    /// Most servers of one coin at one IP address [default: 2].
    #[arg(long, env = "ROT_PROXY_MAX_SERVERS_PER_ADDR")]
    pub max_servers_per_addr: Option<String>,
    /// Time budget of one admission (challenge + info calls), in seconds [default: 5].
    #[arg(long, env = "ROT_PROXY_ADMISSION_TIMEOUT_SECS")]
    pub admission_timeout_secs: Option<String>,
    /// Most admissions running at once [default: 16].
    #[arg(long, env = "ROT_PROXY_MAX_ADMISSIONS")]
    pub max_admissions: Option<String>,
    /// Trust the last X-Forwarded-For entry as the client IP: true or false [default: false].
    #[arg(long, env = "ROT_PROXY_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: Option<String>,
    /// Timeout of one API request in seconds [default: 30].
    #[arg(long, env = "ROT_PROXY_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<String>,
    /// Time a connection has to send a request's headers, and may sit idle, in ms [default: 10000].
    #[arg(long, env = "ROT_PROXY_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<String>,
    /// Most client connections open at once; more wait to be accepted [default: 4096].
    #[arg(long, env = "ROT_PROXY_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Time limit of one relayed attempt at one server, in milliseconds [default: 10000].
    #[arg(long, env = "ROT_PROXY_RELAY_TIMEOUT_MS")]
    pub relay_timeout_ms: Option<String>,
    /// Time limit of connecting to a server, in milliseconds [default: 1000].
    #[arg(long, env = "ROT_PROXY_RELAY_CONNECT_TIMEOUT_MS")]
    pub relay_connect_timeout_ms: Option<String>,
    /// Largest relayed request body (a broadcast) in bytes [default: 2097152].
    #[arg(long, env = "ROT_PROXY_RELAY_MAX_BODY_BYTES")]
    pub relay_max_body_bytes: Option<String>,
    /// Relayed requests per second one client IP regains [default: 50].
    #[arg(long, env = "ROT_PROXY_RELAY_RATE_PER_SEC")]
    pub relay_rate_per_sec: Option<String>,
    /// Relayed requests one client IP may send at once [default: 200].
    #[arg(long, env = "ROT_PROXY_RELAY_BURST")]
    pub relay_burst: Option<String>,
    /// Most relayed requests in flight; more get 503 [default: 4096].
    #[arg(long, env = "ROT_PROXY_RELAY_MAX_IN_FLIGHT")]
    pub relay_max_in_flight: Option<String>,
    /// Idle keep-alive connections kept per server [default: 64].
    #[arg(long, env = "ROT_PROXY_RELAY_IDLE_PER_SERVER")]
    pub relay_idle_per_server: Option<String>,
    /// What the proxy checks: full (probes, suites, cross-checks), health (probes only) or
    /// off (heartbeats and relayed traffic only) [default: full].
    #[arg(long, env = "ROT_PROXY_CHECKS")]
    pub checks: Option<String>,
    /// Pause between cheap probes (info: reachable, tip, latency), in ms [default: 2000].
    #[arg(long, env = "ROT_PROXY_PROBE_INTERVAL_MS")]
    pub probe_interval_ms: Option<String>,
    /// Time limit of one probe, in ms [default: 2000].
    #[arg(long, env = "ROT_PROXY_PROBE_TIMEOUT_MS")]
    pub probe_timeout_ms: Option<String>,
    /// Pause between full conformance suites of a server, in ms [default: 900000].
    #[arg(long, env = "ROT_PROXY_SUITE_INTERVAL_MS")]
    pub suite_interval_ms: Option<String>,
    /// Suites running at once per coin [default: 2].
    #[arg(long, env = "ROT_PROXY_SUITE_CONCURRENCY")]
    pub suite_concurrency: Option<String>,
    /// Time limit of one request of a suite or cross-check, in ms [default: 10000].
    #[arg(long, env = "ROT_PROXY_CHECK_TIMEOUT_MS")]
    pub check_timeout_ms: Option<String>,
    /// Pause between cross-check rounds of a coin, in ms [default: 60000].
    #[arg(long, env = "ROT_PROXY_CROSS_CHECK_INTERVAL_MS")]
    pub cross_check_interval_ms: Option<String>,
    /// Servers asked the same cross-check question [default: 5].
    #[arg(long, env = "ROT_PROXY_CROSS_CHECK_SERVERS")]
    pub cross_check_servers: Option<String>,
    /// Relayed requests failing in a row that eject a server [default: 5].
    #[arg(long, env = "ROT_PROXY_EJECT_CONSECUTIVE_FAILURES")]
    pub eject_consecutive_failures: Option<String>,
    /// Percentage of failed relayed requests in a window that ejects a server [default: 50].
    #[arg(long, env = "ROT_PROXY_EJECT_FAILURE_PERCENT")]
    pub eject_failure_percent: Option<String>,
    /// Requests a window needs before its failure rate counts [default: 20].
    #[arg(long, env = "ROT_PROXY_EJECT_MIN_REQUESTS")]
    pub eject_min_requests: Option<String>,
    /// Length of the failure-rate window, in seconds [default: 30].
    #[arg(long, env = "ROT_PROXY_EJECT_WINDOW_SECS")]
    pub eject_window_secs: Option<String>,
    /// First ejection, in seconds; doubled on each repeat [default: 10].
    #[arg(long, env = "ROT_PROXY_EJECT_BASE_SECS")]
    pub eject_base_secs: Option<String>,
    /// Longest ejection, in seconds [default: 300].
    #[arg(long, env = "ROT_PROXY_EJECT_MAX_SECS")]
    pub eject_max_secs: Option<String>,
    /// Largest share of a coin's servers ejected at once, in percent [default: 50].
    #[arg(long, env = "ROT_PROXY_MAX_EJECTED_PERCENT")]
    pub max_ejected_percent: Option<String>,
    /// Warnings within the window that exclude a server [default: 3].
    #[arg(long, env = "ROT_PROXY_WARNINGS_TO_EXCLUDE")]
    pub warnings_to_exclude: Option<String>,
    /// How long a warning counts, in seconds [default: 86400].
    #[arg(long, env = "ROT_PROXY_WARNING_WINDOW_SECS")]
    pub warning_window_secs: Option<String>,
    /// First exclusion, in seconds; doubled on each repeat [default: 3600].
    #[arg(long, env = "ROT_PROXY_EXCLUSION_BASE_SECS")]
    pub exclusion_base_secs: Option<String>,
    /// Longest exclusion, in seconds [default: 604800].
    #[arg(long, env = "ROT_PROXY_EXCLUSION_MAX_SECS")]
    pub exclusion_max_secs: Option<String>,
    /// The proxy's identity key file, created on first start [default: DATA_DIR/identity.key].
    #[arg(long, env = "ROT_PROXY_KEY_FILE")]
    pub key_file: Option<String>,
    /// Pinned maintainer keys of the bootstrap list (JSON file); enables /v1/bootstrap and peers.
    #[arg(long, env = "ROT_BOOTSTRAP_PINS")]
    pub bootstrap_pins: Option<String>,
    /// Comma-separated URLs the bootstrap list is fetched from (mirrors, other proxies).
    #[arg(long, env = "ROT_BOOTSTRAP_URLS")]
    pub bootstrap_urls: Option<String>,
    /// A bootstrap list file handed over by the maintainers, served and passed on to peers.
    #[arg(long, env = "ROT_PROXY_BOOTSTRAP_FILE")]
    pub bootstrap_file: Option<String>,
    /// Seconds between rounds asking the other proxies of the list for their state [default: 60].
    #[arg(long, env = "ROT_PROXY_PEER_INTERVAL_SECS")]
    pub peer_interval_secs: Option<String>,
}

impl Args {
    /// The settings given on the command line or in the environment, by environment name,
    /// over those of the TOML file (if any).
    pub fn to_map(&self) -> Result<BTreeMap<String, String>, Error> {
        let given = [
            ("ROT_PROXY_LISTEN_ADDR", &self.listen_addr),
            ("ROT_PROXY_DATA_DIR", &self.data_dir),
            ("ROT_PROXY_COINS", &self.coins),
            ("ROT_PROXY_COIN_FILE", &self.coin_file),
            ("ROT_PROXY_ADMIN_TOKEN", &self.admin_token),
            ("ROT_PROXY_PUBLISH_URLS", &self.publish_urls),
            ("ROT_PROXY_MAX_SKEW_SECS", &self.max_skew_secs),
            ("ROT_PROXY_STALE_SECS", &self.stale_secs),
            ("ROT_PROXY_MAX_HEARTBEAT_BYTES", &self.max_heartbeat_bytes),
            ("ROT_PROXY_REGISTER_BURST", &self.register_burst),
            ("ROT_PROXY_REGISTER_PER_MINUTE", &self.register_per_minute),
            ("ROT_PROXY_MAX_SERVERS_PER_COIN", &self.max_servers_per_coin),
            ("ROT_PROXY_MAX_SERVERS_PER_ADDR", &self.max_servers_per_addr),
            (
                "ROT_PROXY_ADMISSION_TIMEOUT_SECS",
                &self.admission_timeout_secs,
            ),
            ("ROT_PROXY_MAX_ADMISSIONS", &self.max_admissions),
            ("ROT_PROXY_TRUST_FORWARDED_FOR", &self.trust_forwarded_for),
            ("ROT_PROXY_REQUEST_TIMEOUT_SECS", &self.request_timeout_secs),
            ("ROT_PROXY_HEADER_TIMEOUT_MS", &self.header_timeout_ms),
            ("ROT_PROXY_MAX_CONNECTIONS", &self.max_connections),
            ("ROT_PROXY_RELAY_TIMEOUT_MS", &self.relay_timeout_ms),
            (
                "ROT_PROXY_RELAY_CONNECT_TIMEOUT_MS",
                &self.relay_connect_timeout_ms,
            ),
            ("ROT_PROXY_RELAY_MAX_BODY_BYTES", &self.relay_max_body_bytes),
            ("ROT_PROXY_RELAY_RATE_PER_SEC", &self.relay_rate_per_sec),
            ("ROT_PROXY_RELAY_BURST", &self.relay_burst),
            ("ROT_PROXY_RELAY_MAX_IN_FLIGHT", &self.relay_max_in_flight),
            (
                "ROT_PROXY_RELAY_IDLE_PER_SERVER",
                &self.relay_idle_per_server,
            ),
            ("ROT_PROXY_CHECKS", &self.checks),
            ("ROT_PROXY_PROBE_INTERVAL_MS", &self.probe_interval_ms),
            ("ROT_PROXY_PROBE_TIMEOUT_MS", &self.probe_timeout_ms),
            ("ROT_PROXY_SUITE_INTERVAL_MS", &self.suite_interval_ms),
            ("ROT_PROXY_SUITE_CONCURRENCY", &self.suite_concurrency),
            ("ROT_PROXY_CHECK_TIMEOUT_MS", &self.check_timeout_ms),
            (
                "ROT_PROXY_CROSS_CHECK_INTERVAL_MS",
                &self.cross_check_interval_ms,
            ),
            ("ROT_PROXY_CROSS_CHECK_SERVERS", &self.cross_check_servers),
            (
                "ROT_PROXY_EJECT_CONSECUTIVE_FAILURES",
                &self.eject_consecutive_failures,
            ),
            (
                "ROT_PROXY_EJECT_FAILURE_PERCENT",
                &self.eject_failure_percent,
            ),
            ("ROT_PROXY_EJECT_MIN_REQUESTS", &self.eject_min_requests),
            ("ROT_PROXY_EJECT_WINDOW_SECS", &self.eject_window_secs),
            ("ROT_PROXY_EJECT_BASE_SECS", &self.eject_base_secs),
            ("ROT_PROXY_EJECT_MAX_SECS", &self.eject_max_secs),
            ("ROT_PROXY_MAX_EJECTED_PERCENT", &self.max_ejected_percent),
            ("ROT_PROXY_WARNINGS_TO_EXCLUDE", &self.warnings_to_exclude),
            ("ROT_PROXY_WARNING_WINDOW_SECS", &self.warning_window_secs),
            ("ROT_PROXY_EXCLUSION_BASE_SECS", &self.exclusion_base_secs),
            ("ROT_PROXY_EXCLUSION_MAX_SECS", &self.exclusion_max_secs),
            ("ROT_PROXY_KEY_FILE", &self.key_file),
            ("ROT_BOOTSTRAP_PINS", &self.bootstrap_pins),
            ("ROT_BOOTSTRAP_URLS", &self.bootstrap_urls),
            ("ROT_PROXY_BOOTSTRAP_FILE", &self.bootstrap_file),
            ("ROT_PROXY_PEER_INTERVAL_SECS", &self.peer_interval_secs),
        ];
        rot_ops::settings::layered(self.config.as_deref(), &given)
            .map_err(|e| invalid("ROT_PROXY_CONFIG", e))
    }
}

fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::Config(format!("{key}: {why}"))
}

/// Longest duration setting accepted: a year, far beyond any sensible value, and small
/// enough that no timer or sum of times overflows.
const MAX_SECS: u64 = 365 * 24 * 3600;

fn seconds(map: &BTreeMap<String, String>, key: &str, default: u64) -> Result<Duration, Error> {
    Ok(Duration::from_secs(number(
        map,
        key,
        default,
        1..=MAX_SECS,
    )?))
}

fn millis(map: &BTreeMap<String, String>, key: &str, default: u64) -> Result<Duration, Error> {
    Ok(Duration::from_millis(number(
        map,
        key,
        default,
        1..=MAX_SECS * 1000,
    )?))
}

/// A percentage setting (0 to 100).
fn percent(map: &BTreeMap<String, String>, key: &str, default: u32) -> Result<u32, Error> {
    Ok(number(map, key, default, 0..=100)?)
}

fn flag(map: &BTreeMap<String, String>, key: &str) -> Result<bool, Error> {
    match get(map, key).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => Err(invalid(
            key,
            format!("expected true or false, got {other:?}"),
        )),
    }
}

/// Parses `host:port` or a bare port (listening on every interface).
pub fn parse_listen_addr(value: &str) -> Result<SocketAddr, Error> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    value.parse().map_err(|_| {
        invalid(
            "ROT_PROXY_LISTEN_ADDR",
            format!("expected host:port or port, got {value:?}"),
        )
    })
}

impl Config {
    /// Validates settings given by environment-variable name.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self, Error> {
        let listen = match get(map, "ROT_PROXY_LISTEN_ADDR") {
            Some(v) => parse_listen_addr(v)?,
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT),
        };
        let coins_text = get(map, "ROT_PROXY_COINS").ok_or_else(|| {
            invalid(
                "ROT_PROXY_COINS",
                "name the coins served, e.g. LTC or LTC,LTC:regtest",
            )
        })?;
        let mut coins: Vec<CoinChoice> = Vec::new();
        for item in coins_text.split(',').filter(|c| !c.trim().is_empty()) {
            let coin: CoinChoice = item
                .parse()
                .map_err(|e: Error| invalid("ROT_PROXY_COINS", e))?;
            if coins.contains(&coin) {
                return Err(invalid(
                    "ROT_PROXY_COINS",
                    format!("{item:?} is listed twice"),
                ));
            }
            coins.push(coin);
        }
        if coins.is_empty() {
            return Err(invalid("ROT_PROXY_COINS", "no coin named"));
        }
        let admin_token = get(map, "ROT_PROXY_ADMIN_TOKEN")
            .map(AdminToken::new)
            .transpose()?;
        let data_dir = PathBuf::from(get(map, "ROT_PROXY_DATA_DIR").unwrap_or("./rot-proxy-data"));
        Ok(Self {
            listen,
            coins,
            coin_file: get(map, "ROT_PROXY_COIN_FILE").map(PathBuf::from),
            admin_token,
            publish_urls: flag(map, "ROT_PROXY_PUBLISH_URLS")?,
            max_skew: seconds(map, "ROT_PROXY_MAX_SKEW_SECS", 120)?,
            stale_after: seconds(map, "ROT_PROXY_STALE_SECS", 180)?,
            max_heartbeat_bytes: number(
                map,
                "ROT_PROXY_MAX_HEARTBEAT_BYTES",
                16 * 1024,
                1024..=1024 * 1024,
            )?,
            register_rate: RegisterRate {
                burst: number(map, "ROT_PROXY_REGISTER_BURST", 5, 1..=1_000_000)?,
                per_minute: number(map, "ROT_PROXY_REGISTER_PER_MINUTE", 1, 1..=1_000_000)?,
            },
            max_servers_per_coin: number(
                map,
                "ROT_PROXY_MAX_SERVERS_PER_COIN",
                1000,
                1..=10_000_000,
            )?,
            max_servers_per_addr: number(map, "ROT_PROXY_MAX_SERVERS_PER_ADDR", 2, 1..=10_000_000)?,
            admission_timeout: seconds(map, "ROT_PROXY_ADMISSION_TIMEOUT_SECS", 5)?,
            max_admissions: number(map, "ROT_PROXY_MAX_ADMISSIONS", 16, 1..=10_000)?,
            trust_forwarded_for: flag(map, "ROT_PROXY_TRUST_FORWARDED_FOR")?,
            request_timeout: seconds(map, "ROT_PROXY_REQUEST_TIMEOUT_SECS", 30)?,
            header_timeout: millis(map, "ROT_PROXY_HEADER_TIMEOUT_MS", 10_000)?,
            max_connections: number(map, "ROT_PROXY_MAX_CONNECTIONS", 4096, 1..=1_000_000)?,
            relay: RelaySettings {
                attempt_timeout: millis(map, "ROT_PROXY_RELAY_TIMEOUT_MS", 10_000)?,
                connect_timeout: millis(map, "ROT_PROXY_RELAY_CONNECT_TIMEOUT_MS", 1_000)?,
                max_body_bytes: number(
                    map,
                    "ROT_PROXY_RELAY_MAX_BODY_BYTES",
                    2 << 20,
                    1024..=1 << 30,
                )?,
                idle_per_server: number(map, "ROT_PROXY_RELAY_IDLE_PER_SERVER", 64, 1..=100_000)?,
            },
            relay_rate: RegisterRate {
                burst: number(map, "ROT_PROXY_RELAY_BURST", 200, 1..=10_000_000)?,
                per_minute: number::<u32>(map, "ROT_PROXY_RELAY_RATE_PER_SEC", 50, 1..=10_000_000)?
                    .checked_mul(60)
                    .ok_or_else(|| invalid("ROT_PROXY_RELAY_RATE_PER_SEC", "too large"))?,
            },
            relay_max_in_flight: number(
                map,
                "ROT_PROXY_RELAY_MAX_IN_FLIGHT",
                4096,
                1..=10_000_000,
            )?,
            checks: CheckSettings {
                mode: match get(map, "ROT_PROXY_CHECKS")
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    None | Some("full") => CheckMode::Full,
                    Some("health") => CheckMode::Health,
                    Some("off") => CheckMode::Off,
                    Some(other) => {
                        return Err(invalid(
                            "ROT_PROXY_CHECKS",
                            format!("expected full, health or off, got {other:?}"),
                        ));
                    }
                },
                probe_interval: millis(map, "ROT_PROXY_PROBE_INTERVAL_MS", 2_000)?,
                probe_timeout: millis(map, "ROT_PROXY_PROBE_TIMEOUT_MS", 2_000)?,
                suite_interval: millis(map, "ROT_PROXY_SUITE_INTERVAL_MS", 900_000)?,
                suite_concurrency: number(map, "ROT_PROXY_SUITE_CONCURRENCY", 2, 1..=1_000)?,
                check_timeout: millis(map, "ROT_PROXY_CHECK_TIMEOUT_MS", 10_000)?,
                cross_check_interval: millis(map, "ROT_PROXY_CROSS_CHECK_INTERVAL_MS", 60_000)?,
                cross_check_servers: number(map, "ROT_PROXY_CROSS_CHECK_SERVERS", 5, 2..=100)?,
                max_skew_secs: seconds(map, "ROT_PROXY_MAX_SKEW_SECS", 120)?.as_secs(),
            },
            outliers: OutlierRules {
                consecutive_failures: number(
                    map,
                    "ROT_PROXY_EJECT_CONSECUTIVE_FAILURES",
                    5,
                    1..=1_000_000,
                )?,
                failure_percent: percent(map, "ROT_PROXY_EJECT_FAILURE_PERCENT", 50)?,
                min_requests: number(map, "ROT_PROXY_EJECT_MIN_REQUESTS", 20, 1..=1_000_000)?,
                window: seconds(map, "ROT_PROXY_EJECT_WINDOW_SECS", 30)?,
                base_ejection: seconds(map, "ROT_PROXY_EJECT_BASE_SECS", 10)?,
                max_ejection: seconds(map, "ROT_PROXY_EJECT_MAX_SECS", 300)?,
                max_ejected_percent: percent(map, "ROT_PROXY_MAX_EJECTED_PERCENT", 50)?,
            },
            sanctions: Sanctions {
                warnings_to_exclude: number(
                    map,
                    "ROT_PROXY_WARNINGS_TO_EXCLUDE",
                    3,
                    1..=1_000_000,
                )?,
                warning_window: seconds(map, "ROT_PROXY_WARNING_WINDOW_SECS", 86_400)?,
                exclusion_base: seconds(map, "ROT_PROXY_EXCLUSION_BASE_SECS", 3_600)?,
                exclusion_max: seconds(map, "ROT_PROXY_EXCLUSION_MAX_SECS", 604_800)?,
            },
            key_file: get(map, "ROT_PROXY_KEY_FILE")
                .map_or_else(|| data_dir.join("identity.key"), PathBuf::from),
            data_dir,
            bootstrap: bootstrap_settings(map)?,
            peer_interval: seconds(map, "ROT_PROXY_PEER_INTERVAL_SECS", 60)?,
        })
    }
}

/// The bootstrap settings: pins are required as soon as any other bootstrap setting is given,
/// since a list nobody's keys are pinned for cannot be checked.
fn bootstrap_settings(map: &BTreeMap<String, String>) -> Result<Option<BootstrapSettings>, Error> {
    let mirrors: Vec<String> = get(map, "ROT_BOOTSTRAP_URLS")
        .map(|urls| {
            urls.split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let list_file = get(map, "ROT_PROXY_BOOTSTRAP_FILE").map(PathBuf::from);
    match get(map, "ROT_BOOTSTRAP_PINS") {
        Some(pins) => Ok(Some(BootstrapSettings {
            pins_file: PathBuf::from(pins),
            mirrors,
            list_file,
        })),
        None if mirrors.is_empty() && list_file.is_none() => Ok(None),
        None => Err(invalid(
            "ROT_BOOTSTRAP_PINS",
            "required with ROT_BOOTSTRAP_URLS or ROT_PROXY_BOOTSTRAP_FILE: the maintainer keys to trust",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_and_coins_parse() {
        let cfg = Config::from_map(&map(&[("ROT_PROXY_COINS", "ltc, LTC:regtest")])).unwrap();
        assert_eq!(
            cfg.coins,
            vec![
                CoinChoice {
                    ticker: "LTC".into(),
                    network: Network::Main
                },
                CoinChoice {
                    ticker: "LTC".into(),
                    network: Network::Regtest
                },
            ]
        );
        assert_eq!(cfg.listen.port(), DEFAULT_PORT);
        assert_eq!(cfg.max_servers_per_addr, 2);
        assert_eq!(cfg.max_skew, Duration::from_secs(120));
        assert!(!cfg.publish_urls);
        assert!(cfg.admin_token.is_none());
        assert_eq!(cfg.checks.mode, CheckMode::Full);
        assert_eq!(cfg.checks.probe_interval, Duration::from_secs(2));
        assert_eq!(cfg.relay_rate.per_minute, 50 * 60);
        assert_eq!(cfg.sanctions.warnings_to_exclude, 3);
        assert_eq!(cfg.outliers.max_ejected_percent, 50);
        assert_eq!(cfg.header_timeout, Duration::from_secs(10));
        assert_eq!(cfg.max_connections, 4096);
    }

    #[test]
    fn connection_limits_are_read() {
        let cfg = Config::from_map(&map(&[
            ("ROT_PROXY_COINS", "LTC"),
            ("ROT_PROXY_HEADER_TIMEOUT_MS", "1500"),
            ("ROT_PROXY_MAX_CONNECTIONS", "300"),
        ]))
        .unwrap();
        assert_eq!(cfg.header_timeout, Duration::from_millis(1500));
        assert_eq!(cfg.max_connections, 300);
        let logged = format!("{cfg:?}");
        assert!(
            logged.contains("header_timeout: 1.5s") && logged.contains("max_connections: 300"),
            "{logged}"
        );
    }

    #[test]
    fn probe_timing_takes_milliseconds_for_fast_tests() {
        let cfg = Config::from_map(&map(&[
            ("ROT_PROXY_COINS", "LTC"),
            ("ROT_PROXY_CHECKS", "Health"),
            ("ROT_PROXY_PROBE_INTERVAL_MS", "150"),
            ("ROT_PROXY_SUITE_INTERVAL_MS", "700"),
            ("ROT_PROXY_EXCLUSION_BASE_SECS", "2"),
        ]))
        .unwrap();
        assert_eq!(cfg.checks.mode, CheckMode::Health);
        assert_eq!(cfg.checks.probe_interval, Duration::from_millis(150));
        assert_eq!(cfg.checks.suite_interval, Duration::from_millis(700));
        assert_eq!(cfg.sanctions.exclusion_base, Duration::from_secs(2));
    }

    #[test]
    fn admin_token_is_redacted() {
        let token = "correct-horse-battery-staple";
        let cfg = Config::from_map(&map(&[
            ("ROT_PROXY_COINS", "LTC"),
            ("ROT_PROXY_ADMIN_TOKEN", token),
            ("ROT_PROXY_PUBLISH_URLS", "yes"),
        ]))
        .unwrap();
        assert_eq!(cfg.admin_token.as_ref().unwrap().expose(), token);
        assert!(cfg.publish_urls);
        assert!(
            !format!("{cfg:?}").contains(token),
            "token must be redacted"
        );
    }

    #[test]
    fn flags_and_env_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proxy.toml");
        std::fs::write(
            &file,
            "rot_proxy_coins = [\"LTC\", \"BTC:regtest\"]\nrot_proxy_stale_secs = 60\nrot_proxy_data_dir = \"/file\"\n",
        )
        .unwrap();
        let args = Args {
            config: Some(file),
            data_dir: Some("/flag".into()),
            ..Args::default()
        };
        let map = args.to_map().unwrap();
        assert_eq!(map["ROT_PROXY_COINS"], "LTC,BTC:regtest");
        assert_eq!(map["ROT_PROXY_DATA_DIR"], "/flag");
        let cfg = Config::from_map(&map).unwrap();
        assert_eq!(cfg.stale_after, Duration::from_secs(60));
        assert_eq!(cfg.coins.len(), 2);
    }

    #[test]
    fn help_names_every_environment_variable() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for name in [
            "ROT_PROXY_CONFIG",
            "ROT_PROXY_LISTEN_ADDR",
            "ROT_PROXY_DATA_DIR",
            "ROT_PROXY_COINS",
            "ROT_PROXY_ADMIN_TOKEN",
            "ROT_PROXY_PUBLISH_URLS",
            "ROT_PROXY_MAX_SKEW_SECS",
            "ROT_PROXY_STALE_SECS",
            "ROT_PROXY_MAX_SERVERS_PER_ADDR",
            "ROT_PROXY_REGISTER_BURST",
            "ROT_PROXY_CHECKS",
            "ROT_PROXY_PROBE_INTERVAL_MS",
            "ROT_PROXY_RELAY_RATE_PER_SEC",
            "ROT_PROXY_HEADER_TIMEOUT_MS",
            "ROT_PROXY_MAX_CONNECTIONS",
            "ROT_PROXY_WARNINGS_TO_EXCLUDE",
        ] {
            assert!(help.contains(name), "--help lacks {name}");
        }
    }

    #[test]
    fn rejects_bad_settings_with_the_setting_named() {
        for (pairs, name) in [
            (vec![], "ROT_PROXY_COINS"),
            (vec![("ROT_PROXY_COINS", "LTC:moon")], "ROT_PROXY_COINS"),
            (vec![("ROT_PROXY_COINS", "L-T-C")], "ROT_PROXY_COINS"),
            (vec![("ROT_PROXY_COINS", "LTC,ltc")], "ROT_PROXY_COINS"),
            (vec![("ROT_PROXY_COINS", " , ")], "ROT_PROXY_COINS"),
            (
                vec![("ROT_PROXY_COINS", "LTC"), ("ROT_PROXY_LISTEN_ADDR", "x:y")],
                "ROT_PROXY_LISTEN_ADDR",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_ADMIN_TOKEN", "short"),
                ],
                "ROT_PROXY_ADMIN_TOKEN",
            ),
            (
                vec![("ROT_PROXY_COINS", "LTC"), ("ROT_PROXY_STALE_SECS", "0")],
                "ROT_PROXY_STALE_SECS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_MAX_ADMISSIONS", "99999999999"),
                ],
                "ROT_PROXY_MAX_ADMISSIONS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_ADMISSION_TIMEOUT_SECS", "18446744073709551615"),
                ],
                "ROT_PROXY_ADMISSION_TIMEOUT_SECS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_MAX_SKEW_SECS", "-1"),
                ],
                "ROT_PROXY_MAX_SKEW_SECS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_PUBLISH_URLS", "maybe"),
                ],
                "ROT_PROXY_PUBLISH_URLS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_MAX_HEARTBEAT_BYTES", "10"),
                ],
                "ROT_PROXY_MAX_HEARTBEAT_BYTES",
            ),
            (
                vec![("ROT_PROXY_COINS", "LTC"), ("ROT_PROXY_CHECKS", "some")],
                "ROT_PROXY_CHECKS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_HEADER_TIMEOUT_MS", "0"),
                ],
                "ROT_PROXY_HEADER_TIMEOUT_MS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_MAX_CONNECTIONS", "0"),
                ],
                "ROT_PROXY_MAX_CONNECTIONS",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_EJECT_FAILURE_PERCENT", "101"),
                ],
                "ROT_PROXY_EJECT_FAILURE_PERCENT",
            ),
            (
                vec![
                    ("ROT_PROXY_COINS", "LTC"),
                    ("ROT_PROXY_PROBE_INTERVAL_MS", "0"),
                ],
                "ROT_PROXY_PROBE_INTERVAL_MS",
            ),
        ] {
            let err = Config::from_map(&map(&pairs)).unwrap_err().to_string();
            assert!(err.contains(name), "{err} should name {name}");
        }
    }
}
