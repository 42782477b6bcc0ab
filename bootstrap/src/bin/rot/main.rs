//! `rot`: the ROT command line for operators and wallet users. Checks a server against the
//! conformance suite, lists a coin's proxies from the bootstrap list and its servers from a
//! proxy's directory, and reads an address's balance and unspent outputs, optionally
//! cross-checked over several servers. A thin shell over `rot_proto::{conformance, client,
//! cross_check}` and `rot_bootstrap`; see `docs/wallets.md`.
//!
//! Exit status: 0 all well, 1 a server answered wrongly, 2 unreachable or a usage error.

mod args;
mod check;
mod directory;
mod failure;
mod wallet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::{BootstrapArgs, CheckArgs, SourceArgs};

#[derive(Parser)]
#[command(
    name = "rot",
    version,
    about = "Check ROT servers, find proxies and servers, and read addresses cross-checked"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Seconds before a request is given up.
    #[arg(long, global = true, env = "ROT_TIMEOUT_SECS", default_value_t = 10)]
    timeout_secs: u64,
    #[command(flatten)]
    log: rot_ops::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the conformance checks against a server and print the report.
    Check(CheckArgs),
    /// List a coin's proxies from the bootstrap list (verified against pinned keys, cached).
    Proxies {
        /// Coin profile id, e.g. ltc or ltc-regtest.
        coin: String,
        #[command(flatten)]
        bootstrap: BootstrapArgs,
    },
    /// List a coin's servers from a proxy's directory.
    Servers {
        /// Coin profile id, e.g. ltc or ltc-regtest.
        coin: String,
        /// The proxy to ask; default: the coin's proxies from the bootstrap list.
        #[arg(long, env = "ROT_PROXY")]
        proxy: Option<String>,
        #[command(flatten)]
        bootstrap: BootstrapArgs,
    },
    /// Print an address's balance.
    Balance {
        /// The address.
        address: String,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// List an address's unspent outputs.
    Utxo {
        /// The address.
        address: String,
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// How `rot` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Everything checked out.
    Ok,
    /// A server answered wrongly.
    ServerFault,
    /// Something could not be asked.
    Unreachable,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        match exit {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::ServerFault => ExitCode::from(1),
            Exit::Unreachable => ExitCode::from(2),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.log.init(rot_ops::logging::TOOL_FILTER) {
        eprintln!("error: {error}");
        return Exit::Unreachable.into();
    }
    let timeout = std::time::Duration::from_secs(cli.timeout_secs.max(1));
    let result = match cli.command {
        Command::Check(args) => check::run(&args, timeout).await,
        Command::Proxies { coin, bootstrap } => {
            directory::proxies(&coin, &bootstrap, timeout).await
        }
        Command::Servers {
            coin,
            proxy,
            bootstrap,
        } => directory::servers(&coin, proxy.as_deref(), &bootstrap, timeout).await,
        Command::Balance { address, source } => {
            wallet::run(&address, &source, wallet::Show::Balance, timeout).await
        }
        Command::Utxo { address, source } => {
            wallet::run(&address, &source, wallet::Show::Utxos, timeout).await
        }
    };
    match result {
        Ok(exit) => exit.into(),
        Err(failure) => {
            eprintln!("error: {failure}");
            Exit::Unreachable.into()
        }
    }
}
