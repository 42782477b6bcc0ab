//! The backend seam: every query the HTTP API needs, answered by whichever backend the
//! operator chose (the native indexer over the node's RPC, or an existing Electrum server).
//! The HTTP layer only sees `Arc<dyn Backend>`, so a new backend never touches it.
//!
//! Backends answer in chain terms (raw transactions, ids, heights); turning those into
//! Esplora JSON is the API layer's job, done once for all backends.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rot_proto::message::{BackendKind, IndexProgress};
use rot_proto::{Hash256, MerkleProof, ScriptHash};
use serde::Serialize;
use tokio::sync::watch;

use crate::Error;

/// The best block a backend serves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Tip {
    /// Height of the best block.
    pub height: u32,
    /// Hash of the best block.
    pub hash: Hash256,
}

/// Failed passes in a row after which a backend says it lost its source of blocks: one failure
/// may be a hiccup (a timeout under load) not worth being taken out of rotation for; a source
/// that is gone fails every pass.
const LOST_AFTER_FAILURES: u32 = 2;

/// How a backend's follow loop takes failed passes: it retries after a pause that doubles up
/// to a maximum, and once its source of blocks (the node, the Electrum server) has failed
/// [`LOST_AFTER_FAILURES`] passes in a row it says so in its progress, since whether the chain
/// moved on is unknown meanwhile (the next good pass clears it).
#[derive(Debug)]
pub struct Failures {
    first: Duration,
    max: Duration,
    retry: Duration,
    in_a_row: u32,
}

impl Failures {
    /// Pauses from `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            retry: first,
            in_a_row: 0,
        }
    }

    /// A pass succeeded.
    pub fn passed(&mut self) {
        self.retry = self.first;
        self.in_a_row = 0;
    }

    /// A pass failed with `error`; returns the pause before the next one.
    pub fn failed(&mut self, progress: &Mutex<IndexProgress>, error: &Error) -> Duration {
        self.in_a_row += 1;
        if self.in_a_row >= LOST_AFTER_FAILURES {
            let mut progress = progress.lock().expect("progress lock");
            progress.synced = false;
            progress.eta_secs = None;
            progress.node_error = Some(error.to_string());
        }
        let pause = self.retry;
        self.retry = (self.retry * 2).min(self.max);
        pause
    }
}

/// Where a transaction stands, in Esplora's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TxStatus {
    /// In a block of the best chain.
    pub confirmed: bool,
    /// Height of that block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_height: Option<u32>,
    /// Hash of that block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<Hash256>,
    /// That block's header time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_time: Option<u32>,
}

impl TxStatus {
    /// The status of a transaction that is in the mempool.
    pub const UNCONFIRMED: Self = Self {
        confirmed: false,
        block_height: None,
        block_hash: None,
        block_time: None,
    };
}

/// A block of the best chain with what the API reports about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    /// Height in the best chain.
    pub height: u32,
    /// The 80-byte header.
    pub header: [u8; 80],
    /// Number of transactions.
    pub tx_count: u32,
    /// Serialized size in bytes.
    pub size: u32,
    /// BIP 141 weight.
    pub weight: u32,
    /// Median of the previous 11 block times (BIP 113).
    pub median_time: u32,
}

/// Whether a block is in the best chain, in Esplora's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlockStatus {
    /// In the best chain.
    pub in_best_chain: bool,
    /// Its height, when in the best chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The next block of the best chain, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_best: Option<Hash256>,
}

/// Whether an output is spent, and by what, in Esplora's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutSpend {
    /// Spent in the best chain or the mempool.
    pub spent: bool,
    /// The spending transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<Hash256>,
    /// The spending input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vin: Option<u32>,
    /// The spending transaction's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TxStatus>,
}

impl OutSpend {
    /// An output nobody has spent.
    pub const UNSPENT: Self = Self {
        spent: false,
        txid: None,
        vin: None,
        status: None,
    };
}

/// Totals of a script's outputs, Esplora's `chain_stats` / `mempool_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ScriptStats {
    /// Outputs paying to the script.
    pub funded_txo_count: u64,
    /// Their total value.
    pub funded_txo_sum: u64,
    /// Those outputs spent.
    pub spent_txo_count: u64,
    /// Their total value.
    pub spent_txo_sum: u64,
    /// Transactions touching the script.
    pub tx_count: u64,
}

/// An unspent output of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Utxo {
    /// Funding transaction.
    pub txid: Hash256,
    /// Output index.
    pub vout: u32,
    /// Where the funding transaction stands.
    pub status: TxStatus,
    /// Amount in the coin's smallest unit.
    pub value: u64,
}

/// A request's hold on a consistent view of the index ([`Backend::consistent_view`]).
pub type ViewGuard = tokio::sync::OwnedRwLockReadGuard<()>;

/// The queries of the API. Errors use [`Error::NotFound`] for unknown ids and
/// [`Error::Unsupported`] for what a backend cannot answer (the API turns it into 501).
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Which kind of backend this is (reported in server info).
    fn kind(&self) -> BackendKind;
    /// Capability names (rot-proto constants) this backend supports.
    fn capabilities(&self) -> Vec<String>;
    /// Follows the best block this backend serves from.
    fn tips(&self) -> watch::Receiver<Tip>;
    /// Indexing progress for the info endpoint and logs.
    fn progress(&self) -> IndexProgress;
    /// Held by a request while it reads, for backends whose index changes in several steps
    /// (undoing blocks, applying the new branch, the mempool view): a reorganisation waits
    /// for readers and readers wait for it, so a wallet sees the chain before or after it,
    /// never a step between.
    async fn consistent_view(&self) -> Option<ViewGuard> {
        None
    }

    /// Hash of the best-chain block at `height`.
    async fn block_hash(&self, height: u32) -> Result<Hash256, Error>;
    /// A best-chain block by hash.
    async fn block(&self, hash: &Hash256) -> Result<BlockSummary, Error>;
    /// The 80-byte header of a best-chain block by hash; backends that hold headers answer
    /// it without assembling the whole summary.
    async fn block_header(&self, hash: &Hash256) -> Result<[u8; 80], Error> {
        Ok(self.block(hash).await?.header)
    }
    /// Whether a block (best chain or not) is in the best chain.
    async fn block_status(&self, hash: &Hash256) -> Result<BlockStatus, Error>;
    /// Transaction ids of a best-chain block, in block order.
    async fn block_txids(&self, hash: &Hash256) -> Result<Vec<Hash256>, Error>;

    /// Raw transactions by id (confirmed or in the mempool), in the order asked.
    async fn transactions(&self, txids: &[Hash256]) -> Result<Vec<Vec<u8>>, Error>;
    /// Where each transaction stands, in the order asked.
    async fn tx_statuses(&self, txids: &[Hash256]) -> Result<Vec<TxStatus>, Error>;
    /// Merkle branch of a confirmed transaction.
    async fn merkle_proof(&self, txid: &Hash256) -> Result<MerkleProof, Error>;
    /// Spending status of each of a transaction's `outputs` outputs.
    async fn outspends(&self, txid: &Hash256, outputs: u32) -> Result<Vec<OutSpend>, Error>;

    /// Confirmed and mempool totals of a script.
    async fn script_stats(&self, script: &ScriptHash) -> Result<(ScriptStats, ScriptStats), Error>;
    /// Confirmed transactions touching a script, newest first, after `last_seen` if given.
    async fn script_history(
        &self,
        script: &ScriptHash,
        last_seen: Option<&Hash256>,
        limit: usize,
    ) -> Result<Vec<Hash256>, Error>;
    /// Mempool transactions touching a script, newest first.
    async fn script_mempool(
        &self,
        script: &ScriptHash,
        limit: usize,
    ) -> Result<Vec<Hash256>, Error>;
    /// Unspent outputs of a script, confirmed and unconfirmed.
    async fn script_utxos(&self, script: &ScriptHash) -> Result<Vec<Utxo>, Error>;

    /// Hands a raw transaction to the network; returns its id.
    async fn broadcast(&self, raw_tx: &[u8]) -> Result<Hash256, Error>;
    /// Fee rate (sat/vB) per confirmation target, Esplora's `/fee-estimates`.
    async fn fee_estimates(&self) -> Result<BTreeMap<u16, f64>, Error>;
    /// Ids of all mempool transactions.
    async fn mempool_txids(&self) -> Result<Vec<Hash256>, Error>;
}
