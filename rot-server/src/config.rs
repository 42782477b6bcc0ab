//! rot-server configuration: read once from flags, environment and an optional TOML file
//! (flags win over environment, environment over file), validated into typed values.
//!
//! Settings are first gathered into a map keyed by their environment-variable names, so
//! that the validation in [`Config::from_map`] is one testable function whatever the source.
//! The names of the existing PHP ROT server (`CORE_RPC_*`, `ROT_LISTEN_ADDR`,
//! `ROT_COIN_TIKKER`) keep their meaning, so existing compose files keep working.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rot_proto::{CoinProfile, Coins, Network};

use rot_ops::settings::{get, number};

use crate::Error;
use crate::discovery::BootstrapConfig;
use crate::rpc::NodeAuth;

/// Which backend answers the API's queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// Index the coin node ourselves over its JSON-RPC.
    Native {
        /// Coin node JSON-RPC URL (`http://host:port/`).
        rpc_url: String,
        /// Coin node JSON-RPC credentials (Debug redacts the password).
        rpc_auth: NodeAuth,
    },
    /// Sit in front of an existing Electrum-protocol server (`tcp://host:port`, `ssl://host:port`).
    Electrum {
        url: String,
        /// PEM certificates to trust for `ssl://` instead of the system's roots.
        ca_file: Option<PathBuf>,
    },
}

/// The validated configuration of one rot-server.
#[derive(Debug, Clone)]
pub struct Config {
    /// The coin and network served, from the built-in profiles or `ROT_COIN_FILE`.
    pub profile: CoinProfile,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Index, identity key and state live here.
    pub data_dir: PathBuf,
    /// The URL proxies should use to reach this server.
    pub public_url: Option<String>,
    /// Which backend serves queries.
    pub backend: BackendConfig,
    /// Deepest reorganisation undone from kept undo data.
    pub reorg_limit: u32,
    /// Proxies to register with, given explicitly (overrides discovery).
    pub proxies: Vec<String>,
    /// Where to find the bootstrap list, to discover proxies.
    pub bootstrap: Option<BootstrapConfig>,
    /// Timeout for one HTTP request to the API.
    pub request_timeout: Duration,
    /// Longest a connection may go without a request in flight (to send a request's headers,
    /// or between keep-alive requests) before it is closed.
    pub header_timeout: Duration,
    /// Most client connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Pause between heartbeats to each proxy when nothing happens.
    pub heartbeat_interval: Duration,
}

/// Default reorg limit: deeper than any reorg seen on a healthy chain of the family.
pub const DEFAULT_REORG_LIMIT: u32 = 100;
/// Default API port, when `ROT_LISTEN_ADDR` is not set.
pub const DEFAULT_PORT: u16 = 3002;

/// Command-line flags; each also reads its environment variable. Values left unset fall back
/// to the TOML file given by `--config` / `ROT_CONFIG`, then to the defaults.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "rot-server",
    version,
    about = "ROT server: indexes a coin's full node and serves light wallets (Esplora API) in the Ring of Trust"
)]
pub struct Args {
    /// Optional TOML file with any of the settings below (keys are the environment names, any case).
    #[arg(long, env = "ROT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Coin ticker of the node, e.g. LTC (the PHP ROT server's spelling is kept).
    #[arg(long, env = "ROT_COIN_TIKKER")]
    pub coin: Option<String>,
    /// Network of the coin: main, test or regtest [default: main].
    #[arg(long, env = "ROT_NETWORK")]
    pub network: Option<String>,
    /// Where the API listens: host:port or a port [default: 0.0.0.0:3002].
    #[arg(long, env = "ROT_LISTEN_ADDR")]
    pub listen_addr: Option<String>,
    /// Directory for the index, identity key and state [default: ./rot-data].
    #[arg(long, env = "ROT_DATA_DIR")]
    pub data_dir: Option<String>,
    /// URL proxies use to reach this server, e.g. https://rot.example.org.
    #[arg(long, env = "ROT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Backend: native (index the node) or electrum (an existing Electrum server) [default: native].
    #[arg(long, env = "ROT_BACKEND")]
    pub backend: Option<String>,
    /// Electrum server for the electrum backend: tcp://host:port or ssl://host:port.
    #[arg(long, env = "ROT_ELECTRUM_URL")]
    pub electrum_url: Option<String>,
    /// PEM certificates to trust for an ssl:// Electrum server (e.g. its self-signed one) [default: the system's].
    #[arg(long, env = "ROT_ELECTRUM_CA_FILE")]
    pub electrum_ca_file: Option<String>,
    /// Deepest reorganisation undone without reindexing [default: 100].
    #[arg(long, env = "ROT_REORG_LIMIT")]
    pub reorg_limit: Option<String>,
    /// Proxies to register with, comma-separated URLs.
    #[arg(long, env = "ROT_PROXIES")]
    pub proxies: Option<String>,
    /// Pinned bootstrap-list maintainer keys (JSON file), to discover proxies from the list.
    #[arg(long, env = "ROT_BOOTSTRAP_PINS")]
    pub bootstrap_pins: Option<String>,
    /// Where to fetch the bootstrap list, comma-separated URLs (mirrors or proxies' /v1/bootstrap).
    #[arg(long, env = "ROT_BOOTSTRAP_URLS")]
    pub bootstrap_urls: Option<String>,
    /// Extra coin profile file (JSON) for a coin not built in.
    #[arg(long, env = "ROT_COIN_FILE")]
    pub coin_file: Option<String>,
    /// Seconds between heartbeats to each proxy when nothing happens [default: 30].
    #[arg(long, env = "ROT_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<String>,
    /// Timeout of one API request in seconds [default: 30].
    #[arg(long, env = "ROT_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<String>,
    /// Time a connection has to send a request's headers, and may sit idle, in ms [default: 10000].
    #[arg(long, env = "ROT_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<String>,
    /// Most client connections open at once; more wait to be accepted [default: 4096].
    #[arg(long, env = "ROT_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Coin node RPC host [default: 127.0.0.1].
    #[arg(long, env = "CORE_RPC_HOST")]
    pub rpc_host: Option<String>,
    /// Coin node RPC port [default: the coin's standard RPC port].
    #[arg(long, env = "CORE_RPC_PORT")]
    pub rpc_port: Option<String>,
    /// Coin node RPC user (with CORE_RPC_PASSWORD; or use CORE_DATA_DIR's cookie).
    #[arg(long, env = "CORE_RPC_USER")]
    pub rpc_user: Option<String>,
    /// Coin node RPC password.
    #[arg(long, env = "CORE_RPC_PASSWORD", hide_env_values = true)]
    pub rpc_password: Option<String>,
    /// Coin node data directory, to read its RPC cookie file.
    #[arg(long, env = "CORE_DATA_DIR")]
    pub core_data_dir: Option<String>,
    /// Logging: format and filter.
    #[command(flatten)]
    pub log: rot_ops::LogArgs,
}

impl Args {
    /// The settings given on the command line or in the environment, by environment name,
    /// over those of the TOML file (if any).
    pub fn to_map(&self) -> Result<BTreeMap<String, String>, Error> {
        let given = [
            ("ROT_COIN_TIKKER", &self.coin),
            ("ROT_NETWORK", &self.network),
            ("ROT_LISTEN_ADDR", &self.listen_addr),
            ("ROT_DATA_DIR", &self.data_dir),
            ("ROT_PUBLIC_URL", &self.public_url),
            ("ROT_BACKEND", &self.backend),
            ("ROT_ELECTRUM_URL", &self.electrum_url),
            ("ROT_ELECTRUM_CA_FILE", &self.electrum_ca_file),
            ("ROT_REORG_LIMIT", &self.reorg_limit),
            ("ROT_PROXIES", &self.proxies),
            ("ROT_BOOTSTRAP_PINS", &self.bootstrap_pins),
            ("ROT_BOOTSTRAP_URLS", &self.bootstrap_urls),
            ("ROT_COIN_FILE", &self.coin_file),
            ("ROT_REQUEST_TIMEOUT_SECS", &self.request_timeout_secs),
            ("ROT_HEADER_TIMEOUT_MS", &self.header_timeout_ms),
            ("ROT_MAX_CONNECTIONS", &self.max_connections),
            ("ROT_HEARTBEAT_SECS", &self.heartbeat_secs),
            ("CORE_RPC_HOST", &self.rpc_host),
            ("CORE_RPC_PORT", &self.rpc_port),
            ("CORE_RPC_USER", &self.rpc_user),
            ("CORE_RPC_PASSWORD", &self.rpc_password),
            ("CORE_DATA_DIR", &self.core_data_dir),
        ];
        rot_ops::settings::layered(self.config.as_deref(), &given)
            .map_err(|e| invalid("ROT_CONFIG", e))
    }
}

/// Splits a comma-separated list of URLs, dropping blanks and trailing slashes.
fn comma_list(value: Option<&str>) -> Vec<String> {
    value
        .map(|list| {
            list.split(',')
                .map(|p| p.trim().trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::Config(format!("{key}: {why}"))
}

/// The coin node's RPC URL and credentials from the `CORE_*` settings (native backend only).
fn node_settings(
    map: &BTreeMap<String, String>,
    profile: &CoinProfile,
) -> Result<(String, NodeAuth), Error> {
    let rpc_host = get(map, "CORE_RPC_HOST").unwrap_or("127.0.0.1");
    let rpc_port = match get(map, "CORE_RPC_PORT") {
        Some(v) => v.parse::<u16>().map_err(|e| invalid("CORE_RPC_PORT", e))?,
        None => profile.default_rpc_port,
    };
    let rpc_url = if rpc_host.starts_with("http://") || rpc_host.starts_with("https://") {
        format!("{}:{rpc_port}/", rpc_host.trim_end_matches('/'))
    } else {
        format!("http://{rpc_host}:{rpc_port}/")
    };
    let rpc_auth = match (get(map, "CORE_RPC_USER"), get(map, "CORE_RPC_PASSWORD")) {
        (Some(user), Some(password)) => NodeAuth::UserPassword {
            user: user.to_owned(),
            password: password.to_owned(),
        },
        (None, None) => {
            let dir = get(map, "CORE_DATA_DIR").ok_or_else(|| {
                    invalid(
                        "CORE_RPC_USER",
                        "set CORE_RPC_USER and CORE_RPC_PASSWORD, or CORE_DATA_DIR for the node's cookie file",
                    )
                })?;
            let dir = PathBuf::from(dir);
            let dir = match &profile.datadir_subdir {
                Some(sub) => dir.join(sub),
                None => dir,
            };
            NodeAuth::CookieFile(dir.join(".cookie"))
        }
        _ => {
            return Err(invalid(
                "CORE_RPC_USER",
                "CORE_RPC_USER and CORE_RPC_PASSWORD must be set together",
            ));
        }
    };

    Ok((rpc_url, rpc_auth))
}

/// Parses `host:port` or a bare port (the PHP server's `ROT_LISTEN_ADDR` accepts both).
pub fn parse_listen_addr(value: &str) -> Result<SocketAddr, Error> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    value.parse().map_err(|_| {
        invalid(
            "ROT_LISTEN_ADDR",
            format!("expected host:port or port, got {value:?}"),
        )
    })
}

impl Config {
    /// Validates settings given by environment-variable name.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self, Error> {
        let coin = get(map, "ROT_COIN_TIKKER")
            .ok_or_else(|| invalid("ROT_COIN_TIKKER", "the coin ticker is required (e.g. LTC)"))?
            .to_ascii_uppercase();
        let network: Network = match get(map, "ROT_NETWORK") {
            Some(v) => v.parse().map_err(|e| invalid("ROT_NETWORK", e))?,
            None => Network::Main,
        };
        let mut coins = Coins::builtin();
        if let Some(path) = get(map, "ROT_COIN_FILE") {
            coins
                .load_file(path)
                .map_err(|e| invalid("ROT_COIN_FILE", e))?;
        }
        let profile = coins.get(&coin, network).cloned().ok_or_else(|| {
            invalid(
                "ROT_COIN_TIKKER",
                format!("no coin profile for {coin} {network} (add one with ROT_COIN_FILE)"),
            )
        })?;
        let listen = match get(map, "ROT_LISTEN_ADDR") {
            Some(v) => parse_listen_addr(v)?,
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT),
        };
        let data_dir = PathBuf::from(get(map, "ROT_DATA_DIR").unwrap_or("./rot-data"));
        let public_url = get(map, "ROT_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned());
        if public_url
            .as_ref()
            .is_some_and(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err(invalid(
                "ROT_PUBLIC_URL",
                "must start with http:// or https://",
            ));
        }

        let backend = match get(map, "ROT_BACKEND").unwrap_or("native") {
            "native" => {
                let (rpc_url, rpc_auth) = node_settings(map, &profile)?;
                BackendConfig::Native { rpc_url, rpc_auth }
            }
            "electrum" => {
                let url = get(map, "ROT_ELECTRUM_URL").ok_or_else(|| {
                    invalid("ROT_ELECTRUM_URL", "required with ROT_BACKEND=electrum")
                })?;
                crate::electrum_rpc::ElectrumUrl::parse(url)?;
                BackendConfig::Electrum {
                    url: url.to_owned(),
                    ca_file: get(map, "ROT_ELECTRUM_CA_FILE").map(PathBuf::from),
                }
            }
            other => {
                return Err(invalid(
                    "ROT_BACKEND",
                    format!("unknown backend {other:?} (native, electrum)"),
                ));
            }
        };
        let reorg_limit = number(map, "ROT_REORG_LIMIT", DEFAULT_REORG_LIMIT, 1..=u32::MAX)?;
        let proxies = comma_list(get(map, "ROT_PROXIES"));
        let bootstrap = get(map, "ROT_BOOTSTRAP_PINS").map(|pins| BootstrapConfig {
            pins_file: PathBuf::from(pins),
            mirrors: comma_list(get(map, "ROT_BOOTSTRAP_URLS")),
        });
        if bootstrap.is_none() && get(map, "ROT_BOOTSTRAP_URLS").is_some() {
            return Err(invalid(
                "ROT_BOOTSTRAP_PINS",
                "required with ROT_BOOTSTRAP_URLS: the maintainer keys to trust",
            ));
        }
        let request_timeout = match get(map, "ROT_REQUEST_TIMEOUT_SECS") {
            Some(v) => Duration::from_secs(
                v.parse()
                    .map_err(|e| invalid("ROT_REQUEST_TIMEOUT_SECS", e))?,
            ),
            None => Duration::from_secs(30),
        };
        let heartbeat_interval = match get(map, "ROT_HEARTBEAT_SECS") {
            Some(v) => {
                Duration::from_secs(v.parse().map_err(|e| invalid("ROT_HEARTBEAT_SECS", e))?)
            }
            None => crate::heartbeat::DEFAULT_INTERVAL,
        };
        // A day bounds the timeout so no timer overflows; a million connections is far beyond
        // what one process's file descriptors allow.
        let header_timeout = Duration::from_millis(number(
            map,
            "ROT_HEADER_TIMEOUT_MS",
            10_000,
            1..=86_400_000,
        )?);
        let max_connections = number(map, "ROT_MAX_CONNECTIONS", 4096, 1..=1_000_000)?;
        Ok(Self {
            heartbeat_interval,
            profile,
            listen,
            data_dir,
            public_url,
            backend,
            reorg_limit,
            proxies,
            bootstrap,
            request_timeout,
            header_timeout,
            max_connections,
        })
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
    fn php_server_names_keep_their_meaning() {
        let cfg = Config::from_map(&map(&[
            ("ROT_COIN_TIKKER", "ltc"),
            ("CORE_RPC_HOST", "node"),
            ("CORE_RPC_PORT", "19332"),
            ("CORE_RPC_USER", "u"),
            ("CORE_RPC_PASSWORD", "secret"),
            ("ROT_LISTEN_ADDR", "8080"),
        ]))
        .unwrap();
        assert_eq!(cfg.profile.id(), "ltc");
        let BackendConfig::Native { rpc_url, .. } = &cfg.backend else {
            panic!("native is the default backend")
        };
        assert_eq!(rpc_url, "http://node:19332/");
        assert_eq!(cfg.listen.port(), 8080);
        assert!(
            !format!("{cfg:?}").contains("secret"),
            "password must be redacted"
        );
    }

    #[test]
    fn cookie_from_data_dir_and_default_port() {
        let cfg = Config::from_map(&map(&[
            ("ROT_COIN_TIKKER", "LTC"),
            ("ROT_NETWORK", "regtest"),
            ("CORE_DATA_DIR", "/var/lib/litecoin"),
            ("ROT_LISTEN_ADDR", "127.0.0.1:7000"),
        ]))
        .unwrap();
        assert_eq!(
            cfg.backend,
            BackendConfig::Native {
                rpc_url: "http://127.0.0.1:19443/".into(),
                rpc_auth: NodeAuth::CookieFile(PathBuf::from("/var/lib/litecoin/regtest/.cookie")),
            }
        );
        assert_eq!(cfg.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(cfg.header_timeout, Duration::from_secs(10));
        assert_eq!(cfg.max_connections, 4096);
    }

    #[test]
    fn connection_limits_are_read() {
        let cfg = Config::from_map(&map(&[
            ("ROT_COIN_TIKKER", "LTC"),
            ("CORE_DATA_DIR", "/d"),
            ("ROT_HEADER_TIMEOUT_MS", "2500"),
            ("ROT_MAX_CONNECTIONS", "64"),
        ]))
        .unwrap();
        assert_eq!(cfg.header_timeout, Duration::from_millis(2500));
        assert_eq!(cfg.max_connections, 64);
        let logged = format!("{cfg:?}");
        assert!(
            logged.contains("header_timeout: 2.5s") && logged.contains("max_connections: 64"),
            "{logged}"
        );
    }

    #[test]
    fn flags_and_env_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rot.toml");
        std::fs::write(&file, "rot_coin_tikker = \"BTC\"\nrot_network = \"regtest\"\nrot_proxies = [\"http://a\", \"http://b\"]\n").unwrap();
        let args = Args {
            config: Some(file),
            coin: Some("LTC".into()),
            ..Args::default()
        };
        let map = args.to_map().unwrap();
        assert_eq!(map["ROT_COIN_TIKKER"], "LTC");
        assert_eq!(map["ROT_NETWORK"], "regtest");
        assert_eq!(map["ROT_PROXIES"], "http://a,http://b");
    }

    #[test]
    fn help_names_every_environment_variable() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for name in [
            "ROT_COIN_TIKKER",
            "CORE_RPC_HOST",
            "CORE_RPC_PASSWORD",
            "ROT_LISTEN_ADDR",
            "ROT_DATA_DIR",
            "ROT_PUBLIC_URL",
            "ROT_BACKEND",
            "ROT_REORG_LIMIT",
            "ROT_PROXIES",
            "ROT_HEADER_TIMEOUT_MS",
            "ROT_MAX_CONNECTIONS",
            "ROT_LOG_FORMAT",
            "RUST_LOG",
        ] {
            assert!(help.contains(name), "--help lacks {name}");
        }
    }

    #[test]
    fn the_electrum_backend_needs_no_node_settings() {
        let cfg = Config::from_map(&map(&[
            ("ROT_COIN_TIKKER", "LTC"),
            ("ROT_BACKEND", "electrum"),
            ("ROT_ELECTRUM_URL", "tcp://127.0.0.1:50001"),
        ]))
        .unwrap();
        assert!(matches!(cfg.backend, BackendConfig::Electrum { .. }));
    }

    #[test]
    fn rejects_bad_settings_with_the_setting_named() {
        for (pairs, name) in [
            (vec![], "ROT_COIN_TIKKER"),
            (vec![("ROT_COIN_TIKKER", "LTC")], "CORE_RPC_USER"),
            (
                vec![("ROT_COIN_TIKKER", "LTC"), ("CORE_RPC_USER", "u")],
                "CORE_RPC_USER",
            ),
            (
                vec![("ROT_COIN_TIKKER", "LTC"), ("ROT_NETWORK", "moon")],
                "ROT_NETWORK",
            ),
            (vec![("ROT_COIN_TIKKER", "XYZ")], "ROT_COIN_TIKKER"),
            (
                vec![("ROT_COIN_TIKKER", "LTC"), ("ROT_LISTEN_ADDR", "x:y")],
                "ROT_LISTEN_ADDR",
            ),
            (
                vec![("ROT_COIN_TIKKER", "LTC"), ("ROT_BACKEND", "electrum")],
                "ROT_ELECTRUM_URL",
            ),
            (
                vec![("ROT_COIN_TIKKER", "LTC"), ("ROT_REORG_LIMIT", "0")],
                "ROT_REORG_LIMIT",
            ),
            (
                vec![("ROT_COIN_TIKKER", "LTC"), ("ROT_HEADER_TIMEOUT_MS", "0")],
                "ROT_HEADER_TIMEOUT_MS",
            ),
            (
                vec![("ROT_COIN_TIKKER", "LTC"), ("ROT_MAX_CONNECTIONS", "lots")],
                "ROT_MAX_CONNECTIONS",
            ),
            (
                vec![
                    ("ROT_COIN_TIKKER", "LTC"),
                    ("ROT_BACKEND", "electrum"),
                    ("ROT_ELECTRUM_URL", "http://electrum:50001"),
                ],
                "ROT_ELECTRUM_URL",
            ),
        ] {
            let mut m = map(&pairs);
            if name != "CORE_RPC_USER" {
                m.insert("CORE_DATA_DIR".into(), "/d".into());
            }
            let err = Config::from_map(&m).unwrap_err().to_string();
            assert!(err.contains(name), "{err} should name {name}");
        }
    }
}
