//! The indexing and query benchmark: rot-server and ElectrumX over the same node and the same
//! cached chain, in one run. Each indexes the chain from scratch (time, peak memory, CPU),
//! both must then agree on the unspent outputs of a sample of funded addresses, and finally
//! both answer those addresses' UTXO queries at each concurrency level for a fixed time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rot_harness::{ElectrumX, Litecoind};
use rot_proto::{Address, CoinProfile};
use serde_json::{Value, json};

use crate::chain::{
    CachedChain, ChainSpec, NODE_STARTUP_TIMEOUT, SplitMix, dir_size, ensure_chain,
};
use crate::load::{Connection, LoadResult, Server, Target, run_load};
use crate::process_stats::ProcessStats;
use crate::rot_server_process::RotServerProcess;

/// Credentials the benchmark node is started with (ElectrumX's `DAEMON_URL` needs a user).
const RPC_USER: &str = "rot-bench";
const RPC_PASSWORD: &str = "rot-bench-loopback-only";
/// Seed of the address sample, fixed so every run asks for the same addresses.
const SAMPLE_SEED: u64 = 0x5341_4d50_4c45;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where built chains are cached.
    pub cache: PathBuf,
    /// The chain to build or reuse.
    pub spec: ChainSpec,
    /// The rot-server binary (a release build).
    pub rot_server: PathBuf,
    /// Scratch space for the servers' data and logs.
    pub work_dir: PathBuf,
    /// Funded addresses queried.
    pub sample: usize,
    /// Concurrent clients per load level.
    pub concurrency: Vec<usize>,
    /// Length of each load level.
    pub duration: Duration,
    /// Bound on each server's initial indexing.
    pub index_timeout: Duration,
}

/// How one server's initial indexing went.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexResult {
    /// From process start until it served the node's tip.
    pub elapsed: Duration,
    /// The server process at that moment.
    pub server: ProcessStats,
    /// CPU seconds the node spent meanwhile (answering the server's RPC).
    pub node_cpu_secs: f64,
    /// Size of the server's index on disk.
    pub disk_bytes: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The chain indexed.
    pub chain: CachedChain,
    /// rot-server's indexing.
    pub rot_index: IndexResult,
    /// ElectrumX's initial sync.
    pub electrumx_index: IndexResult,
    /// ElectrumX's version as it reports it.
    pub electrumx_version: String,
    /// Addresses queried.
    pub sample: usize,
    /// UTXOs the sample holds in total (both servers agreed on each).
    pub sample_utxos: usize,
    /// Per level: rot-server's and ElectrumX's results.
    pub loads: Vec<(LoadResult, LoadResult)>,
    /// Length of each load level.
    pub duration: Duration,
    /// Peak memory of each server at the end of the run (after the queries).
    pub final_peak_rss_kib: (u64, u64),
}

/// Runs the whole comparison.
pub async fn run(options: &Options, profile: &CoinProfile) -> anyhow::Result<Comparison> {
    let chain = ensure_chain(&options.cache, options.spec, profile).await?;
    let node = Litecoind::builder()
        .seed_datadir(&chain.datadir)
        .rpc_user_password(RPC_USER, RPC_PASSWORD)
        .startup_timeout(NODE_STARTUP_TIMEOUT)
        .start()
        .await?;
    let (height, _) = node.tip().await?;
    ensure!(
        height == chain.manifest.height,
        "the cached node starts at height {height}, its manifest says {}",
        chain.manifest.height
    );
    let node_pid = node.pid().context("node not running")?;
    warm_block_files(&node.datadir().join("regtest").join("blocks"))?;

    std::fs::create_dir_all(&options.work_dir)?;
    let rot_data = options.work_dir.join("rot-data");
    if rot_data.exists() {
        std::fs::remove_dir_all(&rot_data)?;
    }
    eprintln!("rot-server: indexing {} blocks…", height + 1);
    let node_cpu = ProcessStats::of(node_pid)?.cpu_secs;
    let started = Instant::now();
    let mut rot = RotServerProcess::start(
        &options.rot_server,
        &node,
        &rot_data,
        &options.work_dir.join("rot-server.log"),
    )?;
    rot.wait_for_height(height, options.index_timeout).await?;
    let rot_index = IndexResult {
        elapsed: started.elapsed(),
        server: ProcessStats::of(rot.pid())?,
        node_cpu_secs: ProcessStats::of(node_pid)?.cpu_secs - node_cpu,
        disk_bytes: dir_size(&rot_data)?,
    };
    eprintln!("rot-server: {:.1} s", rot_index.elapsed.as_secs_f64());

    eprintln!("ElectrumX: initial sync…");
    let node_cpu = ProcessStats::of(node_pid)?.cpu_secs;
    let started = Instant::now();
    // ElectrumX slows down and then drops sessions whose request "cost" grows; a benchmark
    // client is such a session, so the limits are off to measure its full speed.
    let electrumx = ElectrumX::builder()
        .env("COST_SOFT_LIMIT", "0")
        .env("COST_HARD_LIMIT", "0")
        .sync_timeout(options.index_timeout)
        .start(&node)
        .await?;
    let electrumx_pid = electrumx.pid().context("ElectrumX not running")?;
    let electrumx_index = IndexResult {
        elapsed: started.elapsed(),
        server: ProcessStats::of(electrumx_pid)?,
        node_cpu_secs: ProcessStats::of(node_pid)?.cpu_secs - node_cpu,
        disk_bytes: dir_size(&electrumx.db_dir())?,
    };
    eprintln!("ElectrumX: {:.1} s", electrumx_index.elapsed.as_secs_f64());
    let electrumx_version = electrumx
        .client()
        .await?
        .call("server.features", json!([]))
        .await?["server_version"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();

    let targets = Arc::new(sample_targets(&chain, profile, options.sample)?);
    let rot_server = Server::RotServer(rot.url.clone());
    let electrum_server = Server::Electrum(electrumx.address().to_owned());
    eprintln!(
        "checking that both servers agree on {} addresses…",
        targets.len()
    );
    let sample_utxos = check_agreement(&rot_server, &electrum_server, &targets).await?;

    let mut loads = Vec::new();
    for &clients in &options.concurrency {
        eprintln!("{clients} client(s), {:?} each server…", options.duration);
        let ours = run_load(&rot_server, targets.clone(), clients, options.duration).await?;
        let theirs = run_load(&electrum_server, targets.clone(), clients, options.duration).await?;
        eprintln!(
            "  rot-server {:.0} req/s, ElectrumX {:.0} req/s",
            ours.rate(),
            theirs.rate()
        );
        loads.push((ours, theirs));
    }
    let final_peak_rss_kib = (
        ProcessStats::of(rot.pid())?.peak_rss_kib,
        ProcessStats::of(electrumx_pid)?.peak_rss_kib,
    );
    Ok(Comparison {
        chain,
        rot_index,
        electrumx_index,
        electrumx_version,
        sample: targets.len(),
        sample_utxos,
        loads,
        duration: options.duration,
        final_peak_rss_kib,
    })
}

/// Reads the node's block files once, so neither server pays for the first disk read.
fn warm_block_files(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        }
    }
    Ok(())
}

/// `count` funded addresses of the chain, picked with a fixed seed.
fn sample_targets(
    chain: &CachedChain,
    profile: &CoinProfile,
    count: usize,
) -> anyhow::Result<Vec<Target>> {
    let mut funded = chain.manifest.funded_addresses.clone();
    ensure!(!funded.is_empty(), "the chain has no funded addresses");
    let mut random = SplitMix(SAMPLE_SEED);
    // Fisher-Yates over the first `count` places.
    let count = count.min(funded.len());
    for i in 0..count {
        let j = i + random.below((funded.len() - i) as u32) as usize;
        funded.swap(i, j);
    }
    funded
        .into_iter()
        .take(count)
        .map(|address| {
            let parsed = Address::parse(profile, &address)?;
            Ok(Target {
                electrum_script_hash: parsed.script_hash().to_electrum_hex(),
                address,
            })
        })
        .collect()
}

/// Asks both servers for every target's UTXOs and fails on the first difference; returns the
/// total number of UTXOs. Also warms both servers' caches equally.
async fn check_agreement(
    rot: &Server,
    electrum: &Server,
    targets: &[Target],
) -> anyhow::Result<usize> {
    let mut ours = Connection::open(rot).await?;
    let mut theirs = Connection::open(electrum).await?;
    let mut total = 0;
    for target in targets {
        let a = esplora_utxos(&ours.utxos(target).await?)?;
        let b = electrum_utxos(&theirs.utxos(target).await?)?;
        if a != b {
            bail!(
                "the servers disagree on {}:\nrot-server {a:?}\nElectrumX  {b:?}",
                target.address
            );
        }
        ensure!(!a.is_empty(), "{} holds no UTXO", target.address);
        total += a.len();
    }
    Ok(total)
}

/// A UTXO as both APIs can express it: txid, output index, value, height.
type UtxoKey = (String, u64, u64, u64);

fn esplora_utxos(answer: &Value) -> anyhow::Result<Vec<UtxoKey>> {
    sorted_keys(answer, |u| {
        Some((
            u["txid"].as_str()?.to_owned(),
            u["vout"].as_u64()?,
            u["value"].as_u64()?,
            u["status"]["block_height"].as_u64()?,
        ))
    })
}

fn electrum_utxos(answer: &Value) -> anyhow::Result<Vec<UtxoKey>> {
    sorted_keys(answer, |u| {
        Some((
            u["tx_hash"].as_str()?.to_owned(),
            u["tx_pos"].as_u64()?,
            u["value"].as_u64()?,
            u["height"].as_u64()?,
        ))
    })
}

fn sorted_keys(
    answer: &Value,
    key: impl Fn(&Value) -> Option<UtxoKey>,
) -> anyhow::Result<Vec<UtxoKey>> {
    let items = answer.as_array().context("UTXO answer is not an array")?;
    let mut keys = items
        .iter()
        .map(|u| key(u).with_context(|| format!("unexpected UTXO {u}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    keys.sort();
    Ok(keys)
}
