//! The native indexer: follows the node's best chain into the [`Store`].
//!
//! Why a pipeline: fetching blocks over RPC, parsing them, staging them and writing them to
//! sled each take a share of the time, so the fetcher keeps several RPC batches in flight and
//! parses on the blocking pool, the writer thread stages each batch as it arrives, and a full
//! run is committed on a thread of its own while the next is staged ([`RunPipeline`]). Runs
//! are committed atomically with the tip, so a crash resumes at the last committed block.
//!
//! Reorganisations: before fetching, the stored tip is compared with the node's block at
//! the same height; while they differ, the tip is undone from its undo data (at most
//! `reorg_limit` blocks). A block whose parent is not the stored tip (the node reorganised
//! while we fetched) ends the run, and the next pass finds the fork. A reorganisation (the
//! undo, the new branch, and the caller's mempool update) happens under the write lock of the
//! backend's view, so requests see the chain before it or after it, never a step between.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rot_proto::{Block, ChainRules, Hash256, IndexProgress};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock, mpsc, watch};

use crate::Error;
use crate::backend::Tip;
use crate::rpc::NodeRpc;
use crate::store::{IndexedBlock, IndexedOutput, IndexedTx, OutPoint, RunPipeline, Store};

/// Most blocks asked for in one RPC batch.
const FETCH_BATCH: u32 = 16;
/// Raw bytes of block aimed at per RPC batch: with big blocks a batch holds fewer of them.
/// The node sends them hex-encoded in one JSON answer, so memory per batch in flight is a
/// few times this.
const FETCH_BATCH_BYTES: u64 = 2 << 20;
/// RPC batches in flight at once.
const FETCH_AHEAD: usize = 4;
/// A run (one atomic commit) ends after this many transactions or [`RUN_MAX_BLOCKS`]
/// blocks, or at the node's tip, but always after a whole block. Longer runs write less
/// (each script they touch is written once per run, outputs spent within the run never)
/// but hold more in memory (about 1 KB per transaction, and two runs are alive while one
/// commits) and lose more work to a crash. On the benchmark chain 25,000 cost 10 % more CPU
/// and time, 100,000 a higher peak for no gain.
const RUN_MAX_TXS: usize = 50_000;
/// Most blocks in one run: bounds the work between two commits when blocks are small.
const RUN_MAX_BLOCKS: usize = 250;
/// How often progress is logged during catch-up.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Indexes the node's chain and keeps following it.
#[derive(Debug)]
pub struct Indexer {
    store: Store,
    rpc: NodeRpc,
    rules: ChainRules,
    reorg_limit: u32,
    tips: watch::Sender<Tip>,
    progress: Arc<Mutex<IndexProgress>>,
    writer: Writer,
    /// The lock requests read the index under ([`crate::backend::Backend::consistent_view`]).
    view: Arc<RwLock<()>>,
}

/// Held while the index is reorganised; requests wait until it is dropped.
pub type Reorganising = OwnedRwLockWriteGuard<()>;

/// A job for the writer thread.
type Job = Box<dyn FnOnce() + Send>;

/// The one thread that writes the index. Why one: a sled batch allocates (and leaves as
/// garbage) memory in proportion to its size, and glibc keeps a malloc arena per thread; when
/// batches ran on whichever blocking-pool thread was free, each of those arenas grew to a
/// batch's peak and peak memory doubled. The thread ends when the indexer is dropped.
#[derive(Debug)]
struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Writer {
    fn start() -> Result<Self, Error> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("index-writer".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    job();
                }
            })
            .map_err(|e| Error::Index(format!("cannot start the index writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the writer thread and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The indexer may have stopped waiting; nothing to do then.
                let _ = reply.send(work());
            }))
            .map_err(|_| Error::Index("the index writer thread stopped".into()))?;
        result
            .await
            .map_err(|_| Error::Index("an index write panicked".into()))?
    }
}

/// Turns a parsed block into what the store keeps.
pub fn indexed_block(height: u32, raw: &[u8], rules: &ChainRules) -> Result<IndexedBlock, Error> {
    let block = Block::parse(raw, rules)?;
    let txs = block
        .transactions()
        .iter()
        .map(|tx| IndexedTx {
            txid: tx.txid(),
            inputs: if tx.is_coinbase() {
                Vec::new()
            } else {
                tx.inputs()
                    .iter()
                    .map(|i| OutPoint {
                        txid: i.prevout.txid,
                        vout: i.prevout.vout,
                    })
                    .collect()
            },
            outputs: tx
                .outputs()
                .iter()
                .map(|o| IndexedOutput::new(o.script_pubkey, o.value))
                .collect(),
        })
        .collect();
    Ok(IndexedBlock {
        height,
        hash: block.hash(),
        header: block.header().serialize(),
        size: raw.len() as u32,
        weight: block.weight() as u32,
        txs,
    })
}

impl Indexer {
    /// An indexer writing to `store`, publishing its tip on `tips` and its progress, and
    /// reorganising under `view`'s write lock.
    pub fn new(
        store: Store,
        rpc: NodeRpc,
        rules: ChainRules,
        reorg_limit: u32,
        tips: watch::Sender<Tip>,
        progress: Arc<Mutex<IndexProgress>>,
        view: Arc<RwLock<()>>,
    ) -> Result<Self, Error> {
        Ok(Self {
            store,
            rpc,
            rules,
            reorg_limit,
            tips,
            progress,
            writer: Writer::start()?,
            view,
        })
    }

    /// Brings the index up to the node's best block. When the node has left the stored tip's
    /// chain, the undo and the new branch happen under the view's write lock, which is
    /// returned held: the caller drops it once its own view (the mempool) is in line too.
    pub async fn sync(&self) -> Result<Option<Reorganising>, Error> {
        let info = self.rpc.get_blockchain_info().await?;
        let mut reorganising = None;
        if let Some(tip) = self.store.tip()?
            && !self.in_best_chain(&tip, info.blocks).await?
        {
            reorganising = Some(self.view.clone().write_owned().await);
            self.undo_to_fork(info.blocks).await?;
        }
        let start = self.store.tip()?.map_or(0, |t| t.height + 1);
        if info.blocks.saturating_sub(start) > self.reorg_limit {
            // So far behind, this index is not served from: catching up need not hold
            // requests.
            reorganising = None;
        }
        if start <= info.blocks {
            self.catch_up(start, info.blocks).await?;
        }
        self.publish(info.blocks)?;
        Ok(reorganising)
    }

    /// Whether the stored `tip` is still in the node's best chain, of height `node_height`.
    async fn in_best_chain(&self, tip: &Tip, node_height: u32) -> Result<bool, Error> {
        Ok(tip.height <= node_height && self.rpc.get_block_hash(tip.height).await? == tip.hash)
    }

    /// Undoes stored blocks that are no longer in the node's best chain.
    async fn undo_to_fork(&self, node_height: u32) -> Result<(), Error> {
        let mut undone = 0u32;
        while let Some(tip) = self.store.tip()? {
            if self.in_best_chain(&tip, node_height).await? {
                break;
            }
            if undone >= self.reorg_limit {
                return Err(Error::Index(format!(
                    "reorganisation deeper than the limit of {} blocks (ROT_REORG_LIMIT); reindex required",
                    self.reorg_limit
                )));
            }
            let store = self.store.clone();
            let new_tip = self.writer.run(move || store.undo_tip()).await?;
            tracing::info!(undone = %tip.hash, height = tip.height, new_tip = ?new_tip.map(|t| t.height), "undid block no longer in the best chain");
            undone += 1;
        }
        Ok(())
    }

    /// Fetches, parses and applies blocks `start..=end`: each fetched batch is staged on the
    /// writer thread as it arrives, and a full run is committed while the next is staged (see
    /// [`RunPipeline`]).
    async fn catch_up(&self, start: u32, end: u32) -> Result<(), Error> {
        let (sender, mut receiver) = mpsc::channel::<Result<Vec<IndexedBlock>, Error>>(FETCH_AHEAD);
        let fetcher = tokio::spawn(fetch_blocks(
            self.rpc.clone(),
            self.rules,
            start,
            end,
            sender,
        ));
        let pipeline = Arc::new(Mutex::new(RunPipeline::new(&self.store)?));
        let started = Instant::now();
        let mut last_log = Instant::now();
        // Blocks committed so far in this pass (progress counts these, not those staged).
        let mut applied = 0u32;
        let mut expected_parent = self.store.tip()?.map(|t| t.hash);
        let mut result = Ok(());
        // A staging error leaves the run half staged: it is dropped, not committed.
        let mut run_whole = true;
        while let Some(batch) = receiver.recv().await {
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let mut forked = false;
            for (n, block) in batch.iter().enumerate() {
                let parent = Hash256(block.header[4..36].try_into().expect("80-byte header"));
                if expected_parent.is_some_and(|p| p != parent) {
                    tracing::info!(
                        height = block.height,
                        "node changed its best chain while indexing; looking for the fork"
                    );
                    batch.truncate(n);
                    forked = true;
                    break;
                }
                expected_parent = Some(block.hash);
            }
            let stage = pipeline.clone();
            match self
                .writer
                .run(move || stage_blocks(&stage, &batch, end))
                .await
            {
                Ok(Some(tip)) => applied = self.committed(start, tip, end),
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    run_whole = false;
                    break;
                }
            }
            if forked {
                break;
            }
            if last_log.elapsed() >= PROGRESS_EVERY {
                last_log = Instant::now();
                self.log_progress(start, applied, end, started.elapsed());
            }
        }
        fetcher.abort();
        let finish = self.writer.run(move || {
            let mut pipeline = pipeline.lock().expect("pipeline lock");
            if run_whole {
                pipeline.commit()?;
            }
            pipeline.wait()
        });
        match finish.await {
            Ok(Some(tip)) => applied = self.committed(start, tip, end),
            Ok(None) => {}
            Err(e) => result = result.and(Err(e)),
        }
        if applied > 1 {
            self.log_progress(start, applied, end, started.elapsed());
        }
        result
    }

    /// Publishes `tip`, just committed in a pass from `start` towards the node's height
    /// `end`; returns the blocks the pass has committed.
    fn committed(&self, start: u32, tip: Tip, end: u32) -> u32 {
        // Progress first: a new tip wakes the heartbeats, which should carry it.
        self.note_progress(tip.height, end);
        self.tips.send_replace(tip);
        tip.height + 1 - start
    }

    fn log_progress(&self, start: u32, applied: u32, end: u32, elapsed: Duration) {
        let height = start + applied.saturating_sub(1);
        let rate = f64::from(applied) / elapsed.as_secs_f64().max(0.001);
        let remaining = end.saturating_sub(height);
        let eta = (rate > 0.0).then(|| (f64::from(remaining) / rate) as u64);
        tracing::info!(height, node_height = end, blocks_per_sec = format!("{rate:.1}"), eta_secs = ?eta, "indexing");
        let mut progress = self.progress.lock().expect("progress lock");
        progress.indexed_height = u64::from(height);
        progress.node_height = u64::from(end);
        progress.blocks_per_sec_milli = (rate * 1000.0) as u64;
        progress.eta_secs = eta;
    }

    fn publish(&self, node_height: u32) -> Result<(), Error> {
        let tip = self.store.tip()?.unwrap_or_default();
        self.note_progress(tip.height, node_height);
        self.tips
            .send_if_modified(|current| std::mem::replace(current, tip) != tip);
        Ok(())
    }

    /// Records the index at `height` with the node (just heard from) at `node_height`.
    fn note_progress(&self, height: u32, node_height: u32) {
        let mut progress = self.progress.lock().expect("progress lock");
        progress.indexed_height = u64::from(height);
        progress.node_height = u64::from(node_height);
        progress.synced = height >= node_height;
        progress.node_error = None;
        if progress.synced {
            progress.eta_secs = Some(0);
        }
    }
}

/// On the writer thread: stages `blocks`, committing the run whenever it is full or reaches
/// the pass's end `end`; the tip of the latest commit that finished meanwhile.
fn stage_blocks(
    pipeline: &Mutex<RunPipeline>,
    blocks: &[IndexedBlock],
    end: u32,
) -> Result<Option<Tip>, Error> {
    let mut pipeline = pipeline.lock().expect("pipeline lock");
    let mut committed = None;
    for block in blocks {
        pipeline.stage(block)?;
        let (run_blocks, run_txs) = pipeline.staged();
        if run_txs >= RUN_MAX_TXS || run_blocks >= RUN_MAX_BLOCKS || block.height == end {
            committed = pipeline.commit()?.or(committed);
        }
    }
    Ok(committed)
}

/// Fetches blocks `start..=end` in batches, several in flight, parsing each batch on the
/// blocking pool, and sends them in order. Stops at the first error (sent on) or when the
/// receiver is gone.
async fn fetch_blocks(
    rpc: NodeRpc,
    rules: ChainRules,
    start: u32,
    end: u32,
    sender: mpsc::Sender<Result<Vec<IndexedBlock>, Error>>,
) {
    let mut in_flight = std::collections::VecDeque::new();
    let mut next = start;
    // Sized from the blocks seen so far, so that big blocks do not pile up in memory.
    let mut blocks_per_batch = FETCH_BATCH;
    loop {
        while in_flight.len() < FETCH_AHEAD && next <= end {
            let batch_end = end.min(next + blocks_per_batch - 1);
            let rpc = rpc.clone();
            let range = next..batch_end + 1;
            in_flight.push_back(tokio::spawn(async move {
                let hashes = rpc.get_block_hashes(range.clone()).await?;
                let raws = rpc.get_blocks_raw(&hashes).await?;
                tokio::task::spawn_blocking(move || {
                    range
                        .zip(raws)
                        .map(|(height, raw)| indexed_block(height, &raw, &rules))
                        .collect::<Result<Vec<_>, Error>>()
                })
                .await
                .map_err(|e| Error::Index(format!("parse task failed: {e}")))?
            }));
            next = batch_end + 1;
        }
        let Some(task) = in_flight.pop_front() else {
            return;
        };
        let batch = task
            .await
            .unwrap_or_else(|e| Err(Error::Index(format!("fetch task failed: {e}"))));
        if let Ok(blocks) = &batch {
            let bytes: u64 = blocks.iter().map(|b| u64::from(b.size)).sum();
            let average = (bytes / blocks.len().max(1) as u64).max(1);
            blocks_per_batch =
                (FETCH_BATCH_BYTES / average).clamp(1, u64::from(FETCH_BATCH)) as u32;
        }
        let failed = batch.is_err();
        if sender.send(batch).await.is_err() || failed {
            for task in in_flight {
                task.abort();
            }
            return;
        }
    }
}
