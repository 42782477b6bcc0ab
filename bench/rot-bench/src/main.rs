//! rot-bench: benchmarks rot-server side by side with its peer, ElectrumX, in one run, and
//! reports the ratios. `rot-bench chain` builds (or finds) the cached benchmark chain;
//! `rot-bench index` also measures both servers' initial indexing and UTXO query throughput
//! over it and writes the results into docs/benchmarks.md. bench/index.sh wraps the latter.

mod chain;
mod comparison;
mod key;
mod load;
mod process_stats;
mod report;
mod rot_server_process;
mod transaction;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rot_proto::{CoinProfile, Coins, Network};

use crate::chain::{ChainSpec, ensure_chain};
use crate::comparison::Options;
use crate::report::RunContext;

/// Heading of this benchmark's section in the docs.
const DOC_HEADING: &str = "## rot-server indexing and queries";

#[derive(Debug, Parser)]
#[command(
    name = "rot-bench",
    about = "Benchmarks rot-server side by side with ElectrumX",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Builds the benchmark chain into the cache, or reports the cached one.
    Chain(ChainArgs),
    /// Indexing time, memory and UTXO query throughput of rot-server and ElectrumX.
    Index(IndexArgs),
}

#[derive(Debug, Args)]
struct ChainArgs {
    /// Where built chains are kept (one directory per chain shape).
    #[arg(long, default_value = "bench/cache")]
    cache: PathBuf,
    /// Minimum number of transactions in the chain, coinbases included.
    #[arg(long, default_value_t = 110_000)]
    transactions: u32,
    /// Addresses the coins are spread over.
    #[arg(long, default_value_t = 12_000)]
    addresses: u32,
}

impl ChainArgs {
    fn spec(&self) -> ChainSpec {
        ChainSpec {
            transactions: self.transactions,
            addresses: self.addresses,
        }
    }
}

#[derive(Debug, Args)]
struct IndexArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The rot-server binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/rot-server")]
    rot_server: PathBuf,
    /// Scratch directory for the servers' data and logs (emptied per run).
    #[arg(long, default_value = "bench/out/index")]
    work_dir: PathBuf,
    /// Funded addresses the queries cycle through.
    #[arg(long, default_value_t = 1_000)]
    sample: usize,
    /// Concurrent clients of each load level, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Seconds each load level lasts, per server.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bound on each server's initial indexing, in seconds.
    #[arg(long, default_value_t = 3_600)]
    index_timeout: u64,
    /// Markdown file whose generated section receives the results.
    #[arg(long)]
    doc: Option<PathBuf>,
    /// The command line to record with the results.
    #[arg(long, default_value = "bench/index.sh")]
    command_line: String,
    /// The commit measured, recorded with the results.
    #[arg(long)]
    commit: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let profile = regtest_profile()?;
    match cli.command {
        Command::Chain(args) => {
            let chain = ensure_chain(&args.cache, args.spec(), &profile).await?;
            println!("{}", serde_json::to_string_pretty(&chain.manifest.spec)?);
            println!(
                "{} transactions, height {}, {} funded addresses, data dir {}",
                chain.manifest.transactions,
                chain.manifest.height,
                chain.manifest.funded_addresses.len(),
                chain.datadir.display()
            );
        }
        Command::Index(args) => {
            anyhow::ensure!(
                args.rot_server.is_file(),
                "{} missing: cargo build --release -p rot-server",
                args.rot_server.display()
            );
            let options = Options {
                cache: args.chain.cache.clone(),
                spec: args.chain.spec(),
                rot_server: args.rot_server.clone(),
                work_dir: args.work_dir.clone(),
                sample: args.sample,
                concurrency: args.concurrency.clone(),
                duration: Duration::from_secs(args.seconds),
                index_timeout: Duration::from_secs(args.index_timeout),
            };
            let run = comparison::run(&options, &profile).await?;
            let context = RunContext {
                command: args.command_line.clone(),
                commit: args.commit.clone(),
            };
            let text = report::render(&run, &context);
            println!("\n{text}");
            if let Some(doc) = &args.doc {
                report::write_into_doc(doc, DOC_HEADING, &text)?;
                eprintln!("results written to {}", doc.display());
            }
        }
    }
    Ok(())
}

fn regtest_profile() -> anyhow::Result<CoinProfile> {
    Coins::builtin()
        .get("LTC", Network::Regtest)
        .cloned()
        .context("no built-in LTC regtest profile")
}
