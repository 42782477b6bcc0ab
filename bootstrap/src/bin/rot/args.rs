//! Arguments shared by several commands: the coin, where the bootstrap list comes from, and
//! which sources a wallet query asks.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rot_proto::transport::Transport;
use rot_proto::{CoinProfile, Coins, Network, PublicKey};

use crate::failure::Failure;

/// Which coin network.
#[derive(Args)]
pub struct CoinArgs {
    /// The coin: a profile id (ltc, ltc-regtest) or, with --network, a ticker (LTC).
    #[arg(long, env = "ROT_COIN", default_value = "ltc")]
    pub coin: String,
    /// The network of a ticker given with --coin: main, test or regtest.
    #[arg(long, env = "ROT_NETWORK")]
    pub network: Option<Network>,
    /// A JSON file of extra coin profiles (see docs/coins.md).
    #[arg(long, env = "ROT_COINS_FILE")]
    pub coins_file: Option<PathBuf>,
}

impl CoinArgs {
    /// The coin profile asked for.
    pub fn profile(&self) -> Result<CoinProfile, Failure> {
        let mut coins = Coins::builtin();
        if let Some(file) = &self.coins_file {
            coins.load_file(file)?;
        }
        match self.network {
            Some(network) => coins
                .get(&self.coin.to_ascii_uppercase(), network)
                .cloned()
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "no coin profile for {} on {network}; known: {}",
                        self.coin,
                        coins.ids().collect::<Vec<_>>().join(", ")
                    ))
                }),
            None => Ok(coins.require(&self.coin.to_ascii_lowercase())?.clone()),
        }
    }
}

/// `rot check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The server's base URL, e.g. https://ltc.example.org.
    pub server_url: String,
    #[command(flatten)]
    pub coin: CoinArgs,
    /// Newest headers to walk back from the tip.
    #[arg(long, default_value_t = 10)]
    pub headers: usize,
    /// Transactions of those blocks to verify.
    #[arg(long = "txs", default_value_t = 6)]
    pub sampled_txs: usize,
    /// Seed of the random picks, to replay a report [default: random].
    #[arg(long)]
    pub seed: Option<u64>,
    /// The key the server must sign with (64 hex).
    #[arg(long)]
    pub key: Option<PublicKey>,
    /// An address to check (repeat); servers that cannot list a block's transactions (an
    /// Electrum backend) are sampled through these addresses' histories.
    #[arg(long = "address")]
    pub addresses: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the bootstrap list comes from.
#[derive(Args)]
pub struct BootstrapArgs {
    /// The pinned maintainer keys of the bootstrap list: JSON {"threshold": k, "keys": [..]}.
    #[arg(long, env = "ROT_BOOTSTRAP_PINS")]
    pub pins: Option<PathBuf>,
    /// A URL the list is published at (a proxy's /v1/bootstrap or a mirror); repeat, or
    /// comma-separated in the environment.
    #[arg(long = "mirror", env = "ROT_BOOTSTRAP_URLS", value_delimiter = ',')]
    pub mirrors: Vec<String>,
    /// Where the newest valid list is kept [default: $XDG_CACHE_HOME/rot/bootstrap-list.json,
    /// else ~/.cache/rot/bootstrap-list.json].
    #[arg(long, env = "ROT_BOOTSTRAP_CACHE")]
    pub cache: Option<PathBuf>,
    /// Use the cached list without fetching.
    #[arg(long)]
    pub offline: bool,
}

impl BootstrapArgs {
    /// The cache file, if one can be named.
    pub fn cache_path(&self) -> Option<PathBuf> {
        let default = || {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache"))
                })?;
            Some(base.join("rot").join("bootstrap-list.json"))
        };
        self.cache.clone().or_else(default)
    }
}

/// Which sources `rot balance` and `rot utxo` ask.
#[derive(Args)]
pub struct SourceArgs {
    #[command(flatten)]
    pub coin: CoinArgs,
    /// Ask this server directly (its base URL); repeat for several, or comma-separated in the
    /// environment.
    #[arg(long = "server", env = "ROT_SERVERS", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Ask through this proxy [default: the coin's proxies from the bootstrap list].
    #[arg(long, env = "ROT_PROXY")]
    pub proxy: Option<String>,
    /// Ask N servers and compare their answers; with 2 or more, every confirmed output is
    /// proven against another server's headers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub cross_check: u16,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The HTTP client of every command.
pub fn transport(timeout: Duration) -> Transport {
    Transport::new(reqwest::Client::new()).with_timeout(timeout)
}
