//! The indexing and query benchmark: rot-server and ElectrumX over the same node and the same
//! cached chain, in one run. Each indexes the chain from scratch (time, peak memory, CPU),
//! both must then agree on the unspent outputs of a sample of funded addresses, and finally
//! both answer those addresses' UTXO queries at each concurrency level for a fixed time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rot_harness::{ElectrumX, ElectrumXBuilder, Litecoind};
use rot_proto::{Address, CoinProfile};
use serde_json::{Value, json};

use crate::chain::{
    CachedChain, ChainSpec, NODE_STARTUP_TIMEOUT, SplitMix, dir_size, ensure_chain,
};
use crate::load::{Connection, LoadResult, LoadSample, Server, Target, run_load};
use crate::process_stats::ProcessStats;
use crate::rot_server_process::RotServerProcess;

/// Credentials the benchmark node is started with (ElectrumX's `DAEMON_URL` needs a user).
const RPC_USER: &str = "rot-bench";
const RPC_PASSWORD: &str = "rot-bench-loopback-only";
/// Stretches each load level is split into per server, alternating between the servers.
const LOAD_STRETCHES: u32 = 2;
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

/// The query results of one concurrency level.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadLevel {
    /// rot-server's `/address/:a/utxo`.
    pub rot: LoadResult,
    /// ElectrumX with its send hold off: its capacity.
    pub electrumx: LoadResult,
    /// ElectrumX as shipped: each small answer held up to 1 s.
    pub electrumx_shipped: LoadResult,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The chain indexed.
    pub chain: CachedChain,
    /// rot-server's indexing runs.
    pub rot_index: Vec<IndexResult>,
    /// ElectrumX's initial sync runs.
    pub electrumx_index: Vec<IndexResult>,
    /// ElectrumX's version as it reports it.
    pub electrumx_version: String,
    /// Addresses queried.
    pub sample: usize,
    /// UTXOs the sample holds in total (both servers agreed on each).
    pub sample_utxos: usize,
    /// One entry per concurrency level.
    pub loads: Vec<LoadLevel>,
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
    warm_block_files(&node.datadir().join("regtest").join("blocks"))?;

    std::fs::create_dir_all(&options.work_dir)?;
    // Two rounds, alternating, as other work on the machine makes single timings noisy. The
    // second ElectrumX instance is the one without send hold, used for the capacity rows.
    let (first_rot, rot_first_run) = index_rot(options, &node, 1).await?;
    drop(first_rot);
    std::fs::remove_dir_all(rot_data_dir(options, 1))?;
    let (shipped, electrumx_first_run) = index_electrumx(&node, electrumx_builder(options)).await?;
    let (rot, rot_second_run) = index_rot(options, &node, 2).await?;
    let (unheld, electrumx_second_run) =
        index_electrumx(&node, electrumx_builder(options).without_send_hold()).await?;
    let electrumx_version = unheld
        .client()
        .await?
        .call("server.features", json!([]))
        .await?["server_version"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();

    let targets = Arc::new(sample_targets(&chain, profile, options.sample)?);
    let rot_server = Server::RotServer(rot.url.clone());
    let electrum_server = Server::Electrum(unheld.address().to_owned());
    let shipped_server = Server::Electrum(shipped.address().to_owned());
    eprintln!(
        "checking that both servers agree on {} addresses…",
        targets.len()
    );
    let sample_utxos = check_agreement(&rot_server, &electrum_server, &targets).await?;

    // Each level alternates the servers in short stretches, so a burst of other work on the
    // machine falls on all of them alike.
    let servers = [
        (&rot_server, rot.pid()),
        (
            &electrum_server,
            unheld.pid().context("ElectrumX not running")?,
        ),
        (
            &shipped_server,
            shipped.pid().context("ElectrumX not running")?,
        ),
    ];
    let stretch = options.duration / LOAD_STRETCHES;
    let mut loads = Vec::new();
    for &clients in &options.concurrency {
        eprintln!("{clients} client(s), {:?} each server…", options.duration);
        let mut samples: [Vec<LoadSample>; 3] = Default::default();
        for _ in 0..LOAD_STRETCHES {
            for ((server, pid), own) in servers.iter().zip(&mut samples) {
                own.push(measure(server, *pid, &targets, clients, stretch).await?);
            }
        }
        let [rot_samples, unheld_samples, shipped_samples] = samples;
        let level = LoadLevel {
            rot: LoadResult::from_samples(clients, rot_samples),
            electrumx: LoadResult::from_samples(clients, unheld_samples),
            electrumx_shipped: LoadResult::from_samples(clients, shipped_samples),
        };
        eprintln!(
            "  rot-server {:.0} req/s, ElectrumX {:.0} req/s ({:.0} req/s as shipped)",
            level.rot.rate(),
            level.electrumx.rate(),
            level.electrumx_shipped.rate()
        );
        loads.push(level);
    }
    let mut electrumx_peak = 0;
    for server in [&shipped, &unheld] {
        let pid = server.pid().context("ElectrumX not running")?;
        electrumx_peak = electrumx_peak.max(ProcessStats::of(pid)?.peak_rss_kib);
    }
    let final_peak_rss_kib = (ProcessStats::of(rot.pid())?.peak_rss_kib, electrumx_peak);
    Ok(Comparison {
        chain,
        rot_index: vec![rot_first_run, rot_second_run],
        electrumx_index: vec![electrumx_first_run, electrumx_second_run],
        electrumx_version,
        sample: targets.len(),
        sample_utxos,
        loads,
        duration: options.duration,
        final_peak_rss_kib,
    })
}

/// One stretch of load on `server` (process `pid`), with the CPU time it cost the server and
/// the load generator.
async fn measure(
    server: &Server,
    pid: u32,
    targets: &Arc<Vec<Target>>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadSample> {
    let own = std::process::id();
    let (server_cpu, client_cpu) = (ProcessStats::of(pid)?, ProcessStats::of(own)?);
    let mut sample = run_load(server, targets.clone(), clients, duration).await?;
    sample.server_cpu_secs = ProcessStats::of(pid)?.cpu_secs - server_cpu.cpu_secs;
    sample.client_cpu_secs = ProcessStats::of(own)?.cpu_secs - client_cpu.cpu_secs;
    Ok(sample)
}

/// Where rot-server's index of round `round` lives.
fn rot_data_dir(options: &Options, round: u32) -> PathBuf {
    options.work_dir.join(format!("rot-data-{round}"))
}

/// Starts rot-server on a fresh index and waits until it has indexed the node's chain.
async fn index_rot(
    options: &Options,
    node: &Litecoind,
    round: u32,
) -> anyhow::Result<(RotServerProcess, IndexResult)> {
    let data = rot_data_dir(options, round);
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let (height, _) = node.tip().await?;
    let node_pid = node.pid().context("node not running")?;
    eprintln!("rot-server, round {round}: indexing {} blocks…", height + 1);
    let node_cpu = ProcessStats::of(node_pid)?.cpu_secs;
    let started = Instant::now();
    let mut server = RotServerProcess::start(
        &options.rot_server,
        node,
        &data,
        &options.work_dir.join(format!("rot-server-{round}.log")),
    )?;
    server
        .wait_for_height(height, options.index_timeout)
        .await?;
    let result = IndexResult {
        elapsed: started.elapsed(),
        server: ProcessStats::of(server.pid())?,
        node_cpu_secs: ProcessStats::of(node_pid)?.cpu_secs - node_cpu,
        disk_bytes: dir_size(&data)?,
    };
    eprintln!("  {:.1} s", result.elapsed.as_secs_f64());
    Ok((server, result))
}

/// Starts ElectrumX on a fresh database; it answers once it has caught up with the node.
async fn index_electrumx(
    node: &Litecoind,
    builder: ElectrumXBuilder,
) -> anyhow::Result<(ElectrumX, IndexResult)> {
    let node_pid = node.pid().context("node not running")?;
    eprintln!("ElectrumX: initial sync…");
    let node_cpu = ProcessStats::of(node_pid)?.cpu_secs;
    let started = Instant::now();
    let server = builder.start(node).await?;
    let result = IndexResult {
        elapsed: started.elapsed(),
        server: ProcessStats::of(server.pid().context("ElectrumX not running")?)?,
        node_cpu_secs: ProcessStats::of(node_pid)?.cpu_secs - node_cpu,
        disk_bytes: dir_size(&server.db_dir())?,
    };
    eprintln!("  {:.1} s", result.elapsed.as_secs_f64());
    Ok((server, result))
}

/// ElectrumX as the benchmark runs it. ElectrumX slows down, then drops, sessions whose
/// request "cost" grows; a benchmark client is such a session, so the limits are off.
fn electrumx_builder(options: &Options) -> ElectrumXBuilder {
    ElectrumX::builder()
        .env("COST_SOFT_LIMIT", "0")
        .env("COST_HARD_LIMIT", "0")
        .sync_timeout(options.index_timeout)
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
