//! The benchmark chain: a regtest chain of at least the asked number of transactions spread
//! over many deterministic addresses, built once and cached as a copy of the node's data dir.
//!
//! How it is built: coinbases paid to the first keys are fanned out, once mature, into many
//! small coins paid to random keys; then every confirmed coin is spent by a 1-in-2-out
//! transaction paying a random key and change to another, a block being mined every few
//! thousand transactions. Every transaction spends confirmed coins only, so the mempool's
//! ancestor limit (25) never applies. Transactions are signed here and submitted with
//! batched `sendrawtransaction` calls while the next batch is being signed.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rot_harness::Litecoind;
use rot_proto::{CoinProfile, Hash256};
use rot_server::rpc::{NodeRpc, RpcCall};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::key::{BenchKey, derive_keys};
use crate::transaction::{Coin, Payment, SignedTx, sign};

/// Bumped when the way chains are built changes, so old caches are not reused.
const BUILD_VERSION: u32 = 1;
/// Coinbases fanned out; mined first, to keys `0..FANOUT_COINBASES`.
const FANOUT_COINBASES: u32 = 100;
/// Outputs of each fan-out transaction.
const FANOUT_OUTPUTS: u32 = 250;
/// Blocks before a coinbase may be spent.
const COINBASE_MATURITY: u32 = 100;
/// Transactions per block: about 3 MWU of 1-in-2-out transactions, below the 4 MWU limit.
const TXS_PER_BLOCK: usize = 4_000;
/// Transactions per `sendrawtransaction` batch.
const SUBMIT_BATCH: usize = 500;
/// Fee rate in satoshis per (over-estimated) vbyte; well above the relay minimum.
const FEE_RATE: u64 = 20;
/// Coins smaller than this are not spent again (they would create dust).
const MIN_SPENDABLE: u64 = 100_000;
/// Bound on blocks mined to empty the mempool after a batch.
const MAX_DRAIN_BLOCKS: u32 = 10;
/// How long a node with a big cached chain may take to start.
pub const NODE_STARTUP_TIMEOUT: Duration = Duration::from_secs(300);
/// Seed of the builder's pseudo-random choices; fixed so every build is the same chain.
const SEED: u64 = 0x524f_545f_4245_4e43;

/// What chain to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpec {
    /// Minimum number of transactions, coinbases included.
    pub transactions: u32,
    /// Number of keys (addresses) coins are spread over.
    pub addresses: u32,
}

impl ChainSpec {
    /// The cache directory name, which changes with anything that changes the chain.
    fn dir_name(&self) -> String {
        format!(
            "ltc-regtest-v{BUILD_VERSION}-{}tx-{}addr",
            self.transactions, self.addresses
        )
    }
}

/// What a built chain holds, saved next to its data dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// What was asked for.
    pub spec: ChainSpec,
    /// Tip height.
    pub height: u32,
    /// Transactions in the chain, coinbases included (`getchaintxstats`).
    pub transactions: u64,
    /// Addresses holding at least one unspent output at the tip.
    pub funded_addresses: Vec<String>,
    /// Unspent outputs the builder knows of at the tip (its own coins, not later coinbases).
    pub utxos: u64,
    /// The node that built it, e.g. `/LitecoinCore:0.21.2.2/`.
    pub node_version: String,
    /// Seconds the build took.
    pub build_secs: f64,
    /// Size of the saved data dir in bytes.
    pub datadir_bytes: u64,
}

/// A built chain in the cache.
#[derive(Debug, Clone)]
pub struct CachedChain {
    /// The saved node data dir, for [`rot_harness::LitecoindBuilder::seed_datadir`].
    pub datadir: PathBuf,
    /// What it holds.
    pub manifest: Manifest,
    /// Whether this run built it (false: reused from the cache).
    pub built_now: bool,
}

/// The chain of `spec` from `cache_root`, built there first when missing.
pub async fn ensure_chain(
    cache_root: &Path,
    spec: ChainSpec,
    profile: &CoinProfile,
) -> anyhow::Result<CachedChain> {
    let dir = cache_root.join(spec.dir_name());
    let manifest_path = dir.join("manifest.json");
    if manifest_path.is_file() {
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", manifest_path.display()))?;
        eprintln!(
            "reusing cached chain {} ({} transactions, height {})",
            dir.display(),
            manifest.transactions,
            manifest.height
        );
        return Ok(CachedChain {
            datadir: dir.join("datadir"),
            manifest,
            built_now: false,
        });
    }
    // Built beside the final place and renamed, so an interrupted build is never reused.
    let partial = cache_root.join(format!("{}.partial", spec.dir_name()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing the stale {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let manifest = build(spec, profile, &partial.join("datadir")).await?;
    std::fs::write(
        partial.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("moving the chain to {}", dir.display()))?;
    Ok(CachedChain {
        datadir: dir.join("datadir"),
        manifest,
        built_now: true,
    })
}

/// One step of the submitter, in order.
enum Step {
    /// Submit these transactions.
    Submit(Vec<SignedTx>),
    /// Mine until the mempool is empty.
    Mine,
}

/// Builds the chain in a fresh node and saves the node's data dir to `datadir`.
async fn build(spec: ChainSpec, profile: &CoinProfile, datadir: &Path) -> anyhow::Result<Manifest> {
    ensure!(
        spec.addresses > FANOUT_COINBASES,
        "need more than {FANOUT_COINBASES} addresses"
    );
    let started = Instant::now();
    eprintln!(
        "building a chain of {} transactions over {} addresses (cached afterwards)",
        spec.transactions, spec.addresses
    );
    let keys = derive_keys(spec.addresses, profile)?;
    let mut node = Litecoind::builder()
        .startup_timeout(NODE_STARTUP_TIMEOUT)
        .start()
        .await?;
    let rpc = node.rpc().clone();
    let node_version = node_subversion(&rpc).await?;

    // Coinbases to keys 0..FANOUT_COINBASES, then enough blocks to mature them all.
    let mut coinbases = Vec::new();
    for key in 0..FANOUT_COINBASES {
        let hash = node.mine(1, &keys[key as usize].address).await?[0];
        coinbases.push(coinbase_coin(&rpc, &hash, key).await?);
    }
    mine(&node, COINBASE_MATURITY, &keys, 0).await?;
    eprintln!(
        "  coinbases mined after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (sender, receiver) = mpsc::channel::<Step>(4);
    let producer = {
        let keys = keys.clone();
        let target = spec.transactions;
        tokio::task::spawn_blocking(move || produce(&keys, coinbases, target, &sender))
    };
    let submitted = submit(&node, &keys, receiver).await;
    let plan = producer.await.context("signing task failed")?;
    // A submitter error first: it is why a producer stops with "the submitter stopped".
    let submitted = submitted?;
    let plan = plan?;
    ensure!(
        submitted == plan.transactions,
        "signed {} transactions but submitted {submitted}",
        plan.transactions
    );

    eprintln!(
        "  transactions submitted and mined after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (height, _) = node.tip().await?;
    let stats: Value = rpc.call("getchaintxstats", json!([])).await?;
    let transactions = stats["txcount"]
        .as_u64()
        .context("getchaintxstats without txcount")?;
    ensure!(
        transactions >= u64::from(spec.transactions),
        "chain has {transactions} transactions, fewer than the {} asked",
        spec.transactions
    );
    node.save_datadir(datadir).await?;
    let manifest = Manifest {
        spec,
        height,
        transactions,
        funded_addresses: plan
            .funded_keys
            .iter()
            .map(|&k| keys[k as usize].address.clone())
            .collect(),
        utxos: plan.utxos,
        node_version,
        build_secs: started.elapsed().as_secs_f64(),
        datadir_bytes: dir_size(datadir)?,
    };
    eprintln!(
        "built {} transactions up to height {height} in {:.0} s",
        manifest.transactions, manifest.build_secs
    );
    Ok(manifest)
}

/// What the producer signed.
struct Plan {
    /// Non-coinbase transactions signed.
    transactions: u64,
    /// Keys holding at least one of the builder's coins at the end.
    funded_keys: BTreeSet<u32>,
    /// The builder's unspent coins at the end.
    utxos: u64,
}

/// Signs the chain's transactions in order and hands them to the submitter in batches, with
/// a mining step after every block's worth.
struct Producer<'a> {
    keys: &'a [BenchKey],
    out: &'a mpsc::Sender<Step>,
    random: SplitMix,
    /// Coins in the chain, spendable now.
    confirmed: VecDeque<Coin>,
    /// Coins created since the last mining step.
    unconfirmed: Vec<Coin>,
    /// Coins too small to spend again.
    kept: Vec<Coin>,
    batch: Vec<SignedTx>,
    in_block: usize,
    signed: u64,
    /// Transactions in the chain once everything sent is mined, coinbases included.
    total: u64,
}

impl Producer<'_> {
    /// Signs a transaction spending `coin` to `payments` and queues it.
    fn spend(&mut self, coin: Coin, payments: &[Payment]) -> anyhow::Result<()> {
        let signed = sign(&[coin], payments, self.keys)?;
        self.unconfirmed
            .extend(payments.iter().zip(0u32..).map(|(p, vout)| Coin {
                txid: signed.txid,
                vout,
                value: p.value,
                key: p.key,
            }));
        self.batch.push(signed);
        self.signed += 1;
        self.total += 1;
        self.in_block += 1;
        if self.batch.len() == SUBMIT_BATCH {
            self.flush()?;
        }
        if self.in_block == TXS_PER_BLOCK {
            self.mine()?;
        }
        Ok(())
    }

    /// Sends the queued transactions.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.send(Step::Submit(batch))
    }

    /// Sends the queued transactions and a mining step; their coins become spendable.
    fn mine(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.send(Step::Mine)?;
        self.total += 1;
        self.in_block = 0;
        self.confirmed.extend(self.unconfirmed.drain(..));
        Ok(())
    }

    fn send(&self, step: Step) -> anyhow::Result<()> {
        self.out
            .blocking_send(step)
            .map_err(|_| anyhow::anyhow!("the submitter stopped"))
    }

    /// A random key.
    fn any_key(&mut self) -> u32 {
        self.random.below(self.keys.len() as u32)
    }
}

/// Signs the whole chain's transactions. Runs on a blocking thread: signing is CPU work.
fn produce(
    keys: &[BenchKey],
    coinbases: Vec<Coin>,
    target: u32,
    out: &mpsc::Sender<Step>,
) -> anyhow::Result<Plan> {
    let mut producer = Producer {
        keys,
        out,
        random: SplitMix(SEED),
        confirmed: VecDeque::new(),
        unconfirmed: Vec::new(),
        kept: Vec::new(),
        batch: Vec::with_capacity(SUBMIT_BATCH),
        in_block: 0,
        signed: 0,
        // Genesis, the fan-out coinbases and the maturity blocks are already in the chain.
        total: u64::from(1 + FANOUT_COINBASES + COINBASE_MATURITY),
    };
    for coin in coinbases {
        let each = (coin.value - fee(1, FANOUT_OUTPUTS)) / u64::from(FANOUT_OUTPUTS);
        let payments: Vec<Payment> = (0..FANOUT_OUTPUTS)
            .map(|_| Payment {
                value: each,
                key: producer.any_key(),
            })
            .collect();
        producer.spend(coin, &payments)?;
    }
    while producer.total < u64::from(target) {
        let Some(coin) = producer.confirmed.pop_front() else {
            if producer.unconfirmed.is_empty() {
                bail!("ran out of coins after {} transactions", producer.total);
            }
            // Fewer confirmed coins than a block's worth: mine what there is.
            producer.mine()?;
            continue;
        };
        if coin.value < MIN_SPENDABLE {
            producer.kept.push(coin);
            continue;
        }
        // The payee gets 10..90 % of what is left after the fee, the change the rest.
        let budget = coin.value - fee(1, 2);
        let paid = budget / 100 * u64::from(10 + producer.random.below(81));
        let payments = [
            Payment {
                value: paid,
                key: producer.any_key(),
            },
            Payment {
                value: budget - paid,
                key: producer.any_key(),
            },
        ];
        producer.spend(coin, &payments)?;
    }
    producer.mine()?;
    let coins: Vec<&Coin> = producer
        .confirmed
        .iter()
        .chain(&producer.unconfirmed)
        .chain(&producer.kept)
        .collect();
    Ok(Plan {
        transactions: producer.signed,
        funded_keys: coins.iter().map(|c| c.key).collect(),
        utxos: coins.len() as u64,
    })
}

/// Submits the producer's batches and mines when told; returns how many transactions it
/// submitted.
async fn submit(
    node: &Litecoind,
    keys: &[BenchKey],
    mut steps: mpsc::Receiver<Step>,
) -> anyhow::Result<u64> {
    let rpc = node.rpc();
    let mut last_report = Instant::now();
    let started = Instant::now();
    let mut sent = 0u64;
    while let Some(step) = steps.recv().await {
        match step {
            Step::Submit(batch) => {
                let calls: Vec<RpcCall> = batch
                    .iter()
                    .map(|tx| RpcCall::new("sendrawtransaction", json!([hex::encode(&tx.raw)])))
                    .collect();
                let answers: Vec<Result<Hash256, _>> = rpc.batch(&calls).await?;
                for (tx, answer) in batch.iter().zip(answers) {
                    let txid = answer.with_context(|| format!("node refused {}", tx.txid))?;
                    ensure!(txid == tx.txid, "node computed {txid} for {}", tx.txid);
                }
                sent += batch.len() as u64;
            }
            Step::Mine => {
                let (height, _) = node.tip().await?;
                mine_until_empty(node, keys, height).await?;
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let rate = sent as f64 / started.elapsed().as_secs_f64();
            eprintln!("  {sent} transactions submitted ({rate:.0}/s)");
        }
    }
    Ok(sent)
}

/// Mines blocks (paying key `height % keys`) until the mempool is empty.
async fn mine_until_empty(node: &Litecoind, keys: &[BenchKey], height: u32) -> anyhow::Result<()> {
    for round in 0..MAX_DRAIN_BLOCKS {
        mine(node, 1, keys, height + round).await?;
        let info: Value = node.rpc().call("getmempoolinfo", json!([])).await?;
        if info["size"].as_u64() == Some(0) {
            return Ok(());
        }
    }
    bail!("mempool still not empty after {MAX_DRAIN_BLOCKS} blocks")
}

/// Mines `blocks` blocks, each paying the key its height selects.
async fn mine(
    node: &Litecoind,
    blocks: u32,
    keys: &[BenchKey],
    from_height: u32,
) -> anyhow::Result<()> {
    for offset in 0..blocks {
        let key = &keys[(from_height + offset) as usize % keys.len()];
        node.mine(1, &key.address).await?;
    }
    Ok(())
}

/// The coinbase output of block `hash`, paid to key `key`.
async fn coinbase_coin(rpc: &NodeRpc, hash: &Hash256, key: u32) -> anyhow::Result<Coin> {
    let block: Value = rpc.call("getblock", json!([hash, 2])).await?;
    let coinbase = &block["tx"][0];
    let txid: Hash256 = coinbase["txid"]
        .as_str()
        .context("coinbase without txid")?
        .parse()?;
    let coins = coinbase["vout"][0]["value"]
        .as_f64()
        .context("coinbase without value")?;
    Ok(Coin {
        txid,
        vout: 0,
        value: (coins * 1e8).round() as u64,
        key,
    })
}

async fn node_subversion(rpc: &NodeRpc) -> anyhow::Result<String> {
    Ok(rpc.get_network_info().await?.subversion)
}

/// An over-estimate of the fee of a transaction with P2PKH-sized inputs and outputs.
fn fee(inputs: u32, outputs: u32) -> u64 {
    FEE_RATE * u64::from(11 + 148 * inputs + 34 * outputs)
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// SplitMix64: a tiny deterministic generator, enough to scatter payments over keys.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (bound > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, bound: u32) -> u32 {
        (self.next_u64() % u64::from(bound)) as u32
    }
}
