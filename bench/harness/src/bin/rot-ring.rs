//! rot-ring: the README's main job. Brings up a whole local ring on this machine — a regtest
//! litecoind with some blocks and wallet activity, and three rot-servers with their own data
//! directories and keys — prints where to look, and runs until Ctrl-C, then stops everything
//! cleanly. A second run reuses the data (fast start); `--fresh` starts over.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rot_harness::{AddressType, Litecoind, RotServer};

/// Command-line options of the demo ring.
#[derive(Debug, Parser)]
#[command(
    name = "rot-ring",
    version,
    about = "Run a local ROT ring (regtest litecoind + rot-servers) until Ctrl-C"
)]
struct Args {
    /// Where the ring keeps its node and server data between runs.
    #[arg(long, env = "ROT_RING_DIR", default_value = "ring-data")]
    dir: PathBuf,
    /// Start from an empty chain and new server keys.
    #[arg(long, env = "ROT_RING_FRESH")]
    fresh: bool,
    /// Number of rot-servers.
    #[arg(long, env = "ROT_RING_SERVERS", default_value_t = 3)]
    servers: usize,
    /// Logging: format and filter (warnings only by default, so the ring's own lines stay readable).
    #[command(flatten)]
    log: rot_ops::LogArgs,
}

/// Blocks mined on the first run: past coinbase maturity, so the wallet can spend.
const FIRST_RUN_BLOCKS: u32 = 110;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.log.init(rot_ops::logging::TOOL_FILTER)?;
    ensure_litecoind()?;
    if args.fresh && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;

    step("starting regtest litecoind");
    let mut node = Litecoind::builder()
        .datadir(dir.join("litecoind"))
        .start()
        .await?;
    let wallet = node
        .open_wallet("ring")
        .await
        .context("opening the ring wallet")?;
    let miner = wallet.new_address(AddressType::Bech32).await?;
    let (height, _) = node.tip().await?;
    if height < FIRST_RUN_BLOCKS {
        step(&format!("mining {FIRST_RUN_BLOCKS} blocks"));
        node.mine(FIRST_RUN_BLOCKS - height, &miner).await?;
    }
    step("making wallet activity (payments to legacy, p2sh-segwit and bech32 addresses)");
    let mut paid = Vec::new();
    for kind in [
        AddressType::Legacy,
        AddressType::P2shSegwit,
        AddressType::Bech32,
    ] {
        let address = wallet.new_address(kind).await?;
        wallet.send_to(&address, 150_000_000).await?;
        paid.push(address);
    }
    node.mine(1, &miner).await?;
    let (height, _) = node.tip().await?;

    let mut servers = Vec::new();
    for i in 1..=args.servers {
        step(&format!("starting rot-server {i} of {}", args.servers));
        let server =
            RotServer::start_with(&node, Some(dir.join(format!("server-{i}"))), &[]).await?;
        server
            .wait_for_height(height, Duration::from_secs(120))
            .await?;
        servers.push(server);
    }

    println!(
        "\nThe ring is up (chain height {height}, data in {}).",
        dir.display()
    );
    for (i, server) in servers.iter().enumerate() {
        println!("  rot-server {}: {}/rot/v1/info", i + 1, server.url);
    }
    let first = &servers[0].url;
    println!("\nAny Esplora client can use a server, for example:");
    println!("  curl {first}/address/{}/utxo", paid[0]);
    println!("  curl {first}/blocks/tip/height");
    println!("\nPress Ctrl-C to stop the ring.");

    tokio::signal::ctrl_c().await?;
    step("stopping");
    for server in servers {
        server.stop().await;
    }
    node.stop().await?;
    println!("stopped; run again to reuse the data, or with --fresh to start over");
    Ok(())
}

fn step(what: &str) {
    println!("[ring] {what}...");
}

/// Installs Debian's litecoind when it is missing and we may (root); otherwise says how.
fn ensure_litecoind() -> anyhow::Result<()> {
    let found = std::env::var_os("LITECOIND").is_some()
        || std::path::Path::new("/usr/bin/litecoind").exists();
    if found {
        return Ok(());
    }
    step("installing litecoind from Debian's packages");
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq litecoind",
        ])
        .status()
        .context("running apt-get")?;
    anyhow::ensure!(
        status.success(),
        "could not install litecoind; install it (apt-get install litecoind) or set LITECOIND"
    );
    Ok(())
}
