//! rot-ring: the README's main job. Brings up a whole local ring on this machine — a regtest
//! litecoind with some blocks and wallet activity, three rot-servers with their own data
//! directories and keys, two rot-proxies, and a bootstrap list for the regtest coin signed by
//! two of three demo maintainer keys, from which the servers discover the proxies and register
//! with them — prints where to look, and runs until Ctrl-C, then stops everything cleanly. A
//! second run reuses the data (fast start); `--fresh` starts over.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rot_bootstrap::demo::{DemoSpec, create_demo_ring};
use rot_bootstrap::{ProxyEntry, unix_now};
use rot_harness::{AddressType, ApiClient, Litecoind, RotProxy, RotServer};
use rot_proto::Identity;

/// Command-line options of the demo ring.
#[derive(Debug, Parser)]
#[command(
    name = "rot-ring",
    version,
    about = "Run a local ROT ring (regtest litecoind, rot-servers, rot-proxies, bootstrap list) until Ctrl-C"
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
    /// Number of rot-proxies.
    #[arg(long, default_value_t = 2)]
    proxies: u16,
    /// Port of the first proxy; the others follow it. Fixed, because the bootstrap list names
    /// the proxies' URLs.
    #[arg(long, env = "ROT_RING_PROXY_PORT", default_value_t = 3003)]
    proxy_port: u16,
    /// Logging: format and filter (warnings only by default, so the ring's own lines stay readable).
    #[command(flatten)]
    log: rot_ops::LogArgs,
}

/// The regtest coin of the ring, as proxies and lists name it.
const COIN: &str = "ltc-regtest";

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
    // Whatever happens while the ring starts or runs (an error, Ctrl-C), the node is stopped
    // cleanly at the end, so its chain is on disk for the next run.
    let started = tokio::select! {
        started = Ring::start(&args, &dir, &node) => Some(started),
        _ = tokio::signal::ctrl_c() => None,
    };
    let outcome = match started {
        Some(Ok(ring)) => {
            ring.print(&dir);
            let waited = tokio::signal::ctrl_c().await;
            step("stopping");
            ring.stop().await;
            waited.map_err(anyhow::Error::from)
        }
        Some(Err(error)) => Err(error),
        None => Ok(()),
    };
    step("stopping litecoind");
    node.stop().await?;
    if outcome.is_ok() {
        println!("stopped; run again to reuse the data, or with --fresh to start over");
    }
    outcome
}

/// The running parts of the ring besides the node.
struct Ring {
    height: u32,
    paid: Vec<String>,
    pins: String,
    mirror: String,
    servers: Vec<RotServer>,
    proxies: Vec<RotProxy>,
}

impl Ring {
    /// Wallet activity on `node`, then proxies, the list and servers, until every proxy lists
    /// every server.
    async fn start(args: &Args, dir: &std::path::Path, node: &Litecoind) -> anyhow::Result<Self> {
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

        step("starting the rot-proxies and signing the bootstrap list (2 of 3 demo maintainers)");
        let mut proxies = Vec::new();
        let mut listed = Vec::new();
        let ring_list = dir.join("bootstrap");
        for i in 0..args.proxies {
            let data = dir.join(format!("proxy-{}", i + 1));
            let key = Identity::load_or_generate(&data.join("identity.key"))?.public_key();
            let url = format!("http://127.0.0.1:{}", args.proxy_port + i);
            listed.push((
                COIN.to_owned(),
                ProxyEntry {
                    url: url.clone(),
                    key,
                    team: format!("demo team {}", i + 1),
                    contact: "demo@localhost".to_owned(),
                },
            ));
            proxies.push((url, data));
        }
        let demo = create_demo_ring(
            &ring_list,
            &DemoSpec {
                maintainers: 3,
                threshold: 2,
                proxies: listed,
                valid_secs: 30 * 86_400,
            },
            unix_now(),
        )?;
        let (pins, list) = (path_text(&demo.pins_path), path_text(&demo.list_path));
        let mut running_proxies = Vec::new();
        for (url, data) in &proxies {
            let listen = url.trim_start_matches("http://");
            let proxy = RotProxy::start_with(
                Some(data.clone()),
                &[
                    ("ROT_PROXY_LISTEN_ADDR", listen),
                    ("ROT_BOOTSTRAP_PINS", &pins),
                    ("ROT_PROXY_BOOTSTRAP_FILE", &list),
                    ("ROT_PROXY_PEER_INTERVAL_SECS", "5"),
                    ("ROT_PROXY_PROBE_INTERVAL_MS", "1000"),
                    ("ROT_PROXY_STALE_SECS", "30"),
                    // Every server of the ring is at 127.0.0.1.
                    ("ROT_PROXY_MAX_SERVERS_PER_ADDR", "64"),
                    ("ROT_PROXY_REGISTER_BURST", "64"),
                ],
            )
            .await
            .with_context(|| {
                format!("starting the proxy at {url} (is the port free? see --proxy-port)")
            })?;
            running_proxies.push(proxy);
        }
        let mirror = format!("{}/v1/bootstrap", proxies[0].0);

        let mut servers = Vec::new();
        for i in 1..=args.servers {
            step(&format!("starting rot-server {i} of {}", args.servers));
            let server = RotServer::start_with(
                node,
                Some(dir.join(format!("server-{i}"))),
                &[
                    ("ROT_BOOTSTRAP_PINS", &pins),
                    ("ROT_BOOTSTRAP_URLS", &mirror),
                    ("ROT_HEARTBEAT_SECS", "5"),
                ],
            )
            .await?;
            server
                .wait_for_height(height, Duration::from_secs(120))
                .await?;
            servers.push(server);
        }
        step("waiting for the servers to find the proxies in the list and register");
        for proxy in &running_proxies {
            wait_for_servers(&proxy.url, args.servers).await?;
        }
        Ok(Self {
            height,
            paid,
            pins,
            mirror,
            servers,
            proxies: running_proxies,
        })
    }

    /// Tells where to look.
    fn print(&self, dir: &std::path::Path) {
        let (height, paid, pins, mirror) = (self.height, &self.paid, &self.pins, &self.mirror);
        println!(
            "\nThe ring is up (chain height {height}, data in {}).",
            dir.display()
        );
        for proxy in &self.proxies {
            println!("  rot-proxy status page: {}/", proxy.url);
        }
        for (i, server) in self.servers.iter().enumerate() {
            println!("  rot-server {}: {}/rot/v1/info", i + 1, server.url);
        }
        let relay = format!("{}/v1/coins/{COIN}/esplora", self.proxies[0].url);
        println!("\nA wallet query through a proxy found in the signed list:");
        println!(
            "  cargo run --release --bin rot -- balance {} --coin {COIN} --pins {pins} --mirror {mirror}",
            paid[0]
        );
        println!("\nAny Esplora client can use a proxy's relay (base URL {relay}), for example:");
        println!("  curl {relay}/address/{}/utxo", paid[0]);
        println!("  curl {relay}/blocks/tip/height");
        println!("\nPress Ctrl-C to stop the ring.");
    }

    /// Stops servers, then proxies, each waiting for its tasks.
    async fn stop(self) {
        for server in self.servers {
            server.stop().await;
        }
        for proxy in self.proxies {
            proxy.stop().await;
        }
    }
}

fn path_text(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// Waits until the proxy at `url` lists `count` healthy servers of the ring's coin.
async fn wait_for_servers(url: &str, count: usize) -> anyhow::Result<()> {
    let proxy = ApiClient::new(url);
    let started = std::time::Instant::now();
    loop {
        let healthy = proxy
            .get_json("/v1/coins")
            .await
            .ok()
            .and_then(|coins| {
                coins["coins"]
                    .as_array()?
                    .iter()
                    .find(|coin| coin["id"] == COIN)?["healthy_servers"]
                    .as_u64()
            })
            .unwrap_or(0);
        if healthy as usize >= count {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(90),
            "the proxy at {url} lists {healthy} of {count} servers after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
