//! The native backend's index, kept in sled in the server's data directory.
//!
//! One sled tree per table (names below). A block, or a run of blocks during catch-up, is
//! written in ONE multi-tree transaction together with the new tip, so a `kill -9` at any
//! moment leaves the index at a block boundary and indexing resumes from the stored tip.
//! Each block also stores undo data (what it spent and created), so a reorganisation is
//! undone exactly, without asking the node for the stale block.
//!
//! The store knows nothing of raw blocks: the indexer hands it [`IndexedBlock`]s, the few
//! facts per transaction the index needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;

use rot_proto::Hash256;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Transactional, Tree};

use crate::Error;
use crate::backend::{ScriptStats, Tip};

/// Bumped whenever the layout below changes; a store of another version is refused at open.
pub const SCHEMA_VERSION: u32 = 1;

/// Schema version, coin id and tip.
const META: &str = "meta";
/// height (u32 BE) → [`BlockRecord`].
const BLOCKS: &str = "blocks";
/// block hash → height (u32 BE).
const BLOCK_HEIGHTS: &str = "block_heights";
/// height (u32 BE) → the block's txids, 32 bytes each, in block order.
const BLOCK_TXIDS: &str = "block_txids";
/// txid → height (u32 BE) ++ position in block (u32 BE).
const TX_POSITIONS: &str = "tx_positions";
/// script hash ++ height (u32 BE) ++ position (u32 BE) → txid: a script's history.
const HISTORY: &str = "history";
/// outpoint (txid ++ vout u32 BE) → script hash ++ value (u64 BE) ++ height (u32 BE).
const UNSPENT: &str = "unspent";
/// script hash ++ outpoint → value (u64 BE) ++ height (u32 BE): a script's unspent outputs.
const SCRIPT_UTXOS: &str = "script_utxos";
/// spent outpoint → spending txid ++ input index (u32 BE) ++ height (u32 BE).
const SPENDS: &str = "spends";
/// script hash → [`ScriptStats`] as five u64 BE.
const STATS: &str = "stats";
/// height (u32 BE) → [`Undo`] record, kept for the last `reorg_limit` blocks.
const UNDO: &str = "undo";

const TABLES: [&str; 10] = [
    BLOCKS,
    BLOCK_HEIGHTS,
    BLOCK_TXIDS,
    TX_POSITIONS,
    HISTORY,
    UNSPENT,
    SCRIPT_UTXOS,
    SPENDS,
    STATS,
    UNDO,
];
// Index of each table (and of META, last) in `Store::trees`.
const T_BLOCKS: usize = 0;
const T_BLOCK_HEIGHTS: usize = 1;
const T_BLOCK_TXIDS: usize = 2;
const T_TX_POSITIONS: usize = 3;
const T_HISTORY: usize = 4;
const T_UNSPENT: usize = 5;
const T_SCRIPT_UTXOS: usize = 6;
const T_SPENDS: usize = 7;
const T_STATS: usize = 8;
const T_UNDO: usize = 9;
const T_META: usize = 10;

const KEY_SCHEMA: &[u8] = b"schema_version";
const KEY_COIN: &[u8] = b"coin";
const KEY_TIP: &[u8] = b"tip";

/// A transaction output's place: funding txid and output index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    /// Funding transaction.
    pub txid: Hash256,
    /// Output index.
    pub vout: u32,
}

impl OutPoint {
    fn key(&self) -> [u8; 36] {
        let mut key = [0u8; 36];
        key[..32].copy_from_slice(self.txid.as_bytes());
        key[32..].copy_from_slice(&self.vout.to_be_bytes());
        key
    }

    fn from_key(key: &[u8]) -> Option<Self> {
        Some(Self {
            txid: hash_at(key, 0)?,
            vout: u32_at(key, 32)?,
        })
    }
}

/// What the index needs of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedTx {
    /// Transaction id.
    pub txid: Hash256,
    /// Outpoints spent by the inputs (empty for a coinbase).
    pub inputs: Vec<OutPoint>,
    /// The outputs in order.
    pub outputs: Vec<IndexedOutput>,
}

/// What the index needs of one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedOutput {
    /// Electrum script hash of its scriptPubKey (internal byte order).
    pub script: [u8; 32],
    /// Amount.
    pub value: u64,
    /// False for outputs nobody can ever spend (OP_RETURN data carriers): they count in the
    /// script's history and totals but, as in the node's UTXO set, are never unspent.
    pub spendable: bool,
}

impl IndexedOutput {
    /// The index's view of an output paying `value` to `script_pubkey`.
    pub fn new(script_pubkey: &[u8], value: u64) -> Self {
        Self {
            script: rot_proto::hash::sha256(script_pubkey),
            value,
            spendable: !is_unspendable(script_pubkey),
        }
    }
}

/// The opcode that makes an output a data carrier.
const OP_RETURN: u8 = 0x6a;
/// Largest script the node executes (`MAX_SCRIPT_SIZE`); longer ones can never be spent.
const MAX_SCRIPT_SIZE: usize = 10_000;

/// The node's `CScript::IsUnspendable`: outputs it never adds to its UTXO set.
fn is_unspendable(script_pubkey: &[u8]) -> bool {
    script_pubkey.first() == Some(&OP_RETURN) || script_pubkey.len() > MAX_SCRIPT_SIZE
}

/// What the index needs of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedBlock {
    /// Height in the best chain.
    pub height: u32,
    /// Block hash.
    pub hash: Hash256,
    /// The 80-byte header (without AuxPoW data).
    pub header: [u8; 80],
    /// Serialized size.
    pub size: u32,
    /// BIP 141 weight.
    pub weight: u32,
    /// Transactions in block order.
    pub txs: Vec<IndexedTx>,
}

/// A stored block of the best chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// Block hash.
    pub hash: Hash256,
    /// The 80-byte header.
    pub header: [u8; 80],
    /// Number of transactions.
    pub tx_count: u32,
    /// Serialized size.
    pub size: u32,
    /// BIP 141 weight.
    pub weight: u32,
}

impl BlockRecord {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + 80 + 12);
        v.extend_from_slice(self.hash.as_bytes());
        v.extend_from_slice(&self.header);
        v.extend_from_slice(&self.tx_count.to_be_bytes());
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.weight.to_be_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        let header: [u8; 80] = v.get(32..112)?.try_into().ok()?;
        Some(Self {
            hash: hash_at(v, 0)?,
            header,
            tx_count: u32_at(v, 112)?,
            size: u32_at(v, 116)?,
            weight: u32_at(v, 120)?,
        })
    }

    /// The header's timestamp.
    pub fn time(&self) -> u32 {
        u32::from_le_bytes([
            self.header[68],
            self.header[69],
            self.header[70],
            self.header[71],
        ])
    }
}

/// Where a confirmed transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPosition {
    /// Block height.
    pub height: u32,
    /// Index in the block.
    pub pos: u32,
}

/// An unspent output as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredOutput {
    /// Electrum script hash (internal byte order).
    pub script: [u8; 32],
    /// Amount.
    pub value: u64,
    /// Height of the funding block.
    pub height: u32,
}

/// Who spent an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spend {
    /// Spending transaction.
    pub txid: Hash256,
    /// Its input index.
    pub vin: u32,
    /// Height of the spending block.
    pub height: u32,
}

/// What undoing one block must restore or remove. Script stats deltas are kept so that the
/// totals after an undo are exactly those before the block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Undo {
    /// Outputs of earlier blocks this block spent.
    restored: Vec<(OutPoint, StoredOutput)>,
    /// Outputs this block created and left unspent.
    created: Vec<(OutPoint, [u8; 32])>,
    /// Every outpoint this block spent.
    spent: Vec<OutPoint>,
    /// History keys (script hash, position) this block added.
    history: Vec<([u8; 32], u32)>,
    /// Per script hash, what this block added to its stats.
    stats: Vec<([u8; 32], ScriptStats)>,
}

fn hash_at(v: &[u8], at: usize) -> Option<Hash256> {
    Some(Hash256(v.get(at..at + 32)?.try_into().ok()?))
}

fn u32_at(v: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(v: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(at..at + 8)?.try_into().ok()?))
}

fn script_at(v: &[u8], at: usize) -> Option<[u8; 32]> {
    v.get(at..at + 32)?.try_into().ok()
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_owned())
}

fn encode_stats(s: &ScriptStats) -> [u8; 40] {
    let mut v = [0u8; 40];
    for (i, n) in [
        s.funded_txo_count,
        s.funded_txo_sum,
        s.spent_txo_count,
        s.spent_txo_sum,
        s.tx_count,
    ]
    .into_iter()
    .enumerate()
    {
        v[i * 8..i * 8 + 8].copy_from_slice(&n.to_be_bytes());
    }
    v
}

fn decode_stats(v: &[u8]) -> Option<ScriptStats> {
    Some(ScriptStats {
        funded_txo_count: u64_at(v, 0)?,
        funded_txo_sum: u64_at(v, 8)?,
        spent_txo_count: u64_at(v, 16)?,
        spent_txo_sum: u64_at(v, 24)?,
        tx_count: u64_at(v, 32)?,
    })
}

fn encode_output(o: &StoredOutput) -> [u8; 44] {
    let mut v = [0u8; 44];
    v[..32].copy_from_slice(&o.script);
    v[32..40].copy_from_slice(&o.value.to_be_bytes());
    v[40..].copy_from_slice(&o.height.to_be_bytes());
    v
}

fn decode_output(v: &[u8]) -> Option<StoredOutput> {
    Some(StoredOutput {
        script: script_at(v, 0)?,
        value: u64_at(v, 32)?,
        height: u32_at(v, 40)?,
    })
}

fn script_utxo_key(script: &[u8; 32], outpoint: &OutPoint) -> [u8; 68] {
    let mut key = [0u8; 68];
    key[..32].copy_from_slice(script);
    key[32..].copy_from_slice(&outpoint.key());
    key
}

fn history_key(script: &[u8; 32], height: u32, pos: u32) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(script);
    key[32..36].copy_from_slice(&height.to_be_bytes());
    key[36..].copy_from_slice(&pos.to_be_bytes());
    key
}

impl Undo {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        let len = |v: &mut Vec<u8>, n: usize| v.extend_from_slice(&(n as u32).to_be_bytes());
        len(&mut v, self.restored.len());
        for (op, out) in &self.restored {
            v.extend_from_slice(&op.key());
            v.extend_from_slice(&encode_output(out));
        }
        len(&mut v, self.created.len());
        for (op, script) in &self.created {
            v.extend_from_slice(&op.key());
            v.extend_from_slice(script);
        }
        len(&mut v, self.spent.len());
        for op in &self.spent {
            v.extend_from_slice(&op.key());
        }
        len(&mut v, self.history.len());
        for (script, pos) in &self.history {
            v.extend_from_slice(script);
            v.extend_from_slice(&pos.to_be_bytes());
        }
        len(&mut v, self.stats.len());
        for (script, stats) in &self.stats {
            v.extend_from_slice(script);
            v.extend_from_slice(&encode_stats(stats));
        }
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        struct Cursor<'a>(&'a [u8], usize);
        impl Cursor<'_> {
            fn take(&mut self, n: usize) -> Option<&[u8]> {
                let s = self.0.get(self.1..self.1 + n)?;
                self.1 += n;
                Some(s)
            }
            fn count(&mut self, item: usize) -> Option<usize> {
                let n = u32_at(self.take(4)?, 0)? as usize;
                // A count can't promise more items than bytes remain.
                (n.checked_mul(item)? <= self.0.len() - self.1).then_some(n)
            }
        }
        let mut c = Cursor(v, 0);
        let mut undo = Undo::default();
        for _ in 0..c.count(36 + 44)? {
            let op = OutPoint::from_key(c.take(36)?)?;
            undo.restored.push((op, decode_output(c.take(44)?)?));
        }
        for _ in 0..c.count(36 + 32)? {
            let op = OutPoint::from_key(c.take(36)?)?;
            undo.created.push((op, script_at(c.take(32)?, 0)?));
        }
        for _ in 0..c.count(36)? {
            undo.spent.push(OutPoint::from_key(c.take(36)?)?);
        }
        for _ in 0..c.count(36)? {
            let item = c.take(36)?;
            undo.history.push((script_at(item, 0)?, u32_at(item, 32)?));
        }
        for _ in 0..c.count(72)? {
            let item = c.take(72)?;
            undo.stats
                .push((script_at(item, 0)?, decode_stats(&item[32..])?));
        }
        (c.1 == v.len()).then_some(undo)
    }
}

fn add_stats(a: &mut ScriptStats, b: &ScriptStats) {
    a.funded_txo_count += b.funded_txo_count;
    a.funded_txo_sum += b.funded_txo_sum;
    a.spent_txo_count += b.spent_txo_count;
    a.spent_txo_sum += b.spent_txo_sum;
    a.tx_count += b.tx_count;
}

fn sub_stats(a: &mut ScriptStats, b: &ScriptStats) {
    a.funded_txo_count = a.funded_txo_count.saturating_sub(b.funded_txo_count);
    a.funded_txo_sum = a.funded_txo_sum.saturating_sub(b.funded_txo_sum);
    a.spent_txo_count = a.spent_txo_count.saturating_sub(b.spent_txo_count);
    a.spent_txo_sum = a.spent_txo_sum.saturating_sub(b.spent_txo_sum);
    a.tx_count = a.tx_count.saturating_sub(b.tx_count);
}

/// Key-value rows of one table, as [`Store::dump`] returns them.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// The sled-backed index. Cheap to clone; one indexer writes, any number of readers read.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    /// The tables in `TABLES` order, then META.
    trees: Vec<Tree>,
}

/// Writes not yet committed: a run of blocks applied in one transaction. Reads during the
/// run see these first, so a block may spend outputs of an earlier block of the same run.
#[derive(Default)]
struct Pending {
    batches: [Batch; 11],
    /// Outputs created in this run and not yet spent.
    created: HashMap<OutPoint, StoredOutput>,
    /// Stored outputs spent in this run.
    spent: HashSet<OutPoint>,
    /// Script stats as they stand after this run.
    stats: HashMap<[u8; 32], ScriptStats>,
    tip: Option<Tip>,
}

impl Store {
    /// Opens (or creates) the index under `path` for coin id `coin`, refusing an index of
    /// another schema version or coin.
    pub fn open(path: &Path, coin: &str, cache_bytes: u64) -> Result<Self, Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(200))
            .open()?;
        let mut trees = TABLES
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = db.open_tree(META)?;
        match (meta.get(KEY_SCHEMA)?, meta.get(KEY_COIN)?) {
            (None, _) => {
                meta.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                meta.insert(KEY_COIN, coin.as_bytes())?;
                meta.flush()?;
            }
            (Some(version), stored_coin) => {
                let version = u32_at(&version, 0).ok_or_else(|| corrupt("schema version"))?;
                if version != SCHEMA_VERSION {
                    return Err(Error::Schema(format!(
                        "index at {} has schema version {version}, this rot-server uses {SCHEMA_VERSION}; \
                         move it away to reindex",
                        path.display()
                    )));
                }
                let stored_coin = stored_coin.unwrap_or_default();
                if stored_coin.as_ref() != coin.as_bytes() {
                    return Err(Error::Schema(format!(
                        "index at {} belongs to coin {:?}, not {coin:?}",
                        path.display(),
                        String::from_utf8_lossy(&stored_coin)
                    )));
                }
            }
        }
        trees.push(meta);
        Ok(Self { db, trees })
    }

    fn tree(&self, table: usize) -> &Tree {
        &self.trees[table]
    }

    /// The indexed tip, or `None` for an empty index.
    pub fn tip(&self) -> Result<Option<Tip>, Error> {
        self.tree(T_META)
            .get(KEY_TIP)?
            .map(|v| {
                Ok(Tip {
                    height: u32_at(&v, 0).ok_or_else(|| corrupt("tip"))?,
                    hash: hash_at(&v, 4).ok_or_else(|| corrupt("tip"))?,
                })
            })
            .transpose()
    }

    /// The best-chain block at `height`.
    pub fn block_at(&self, height: u32) -> Result<Option<BlockRecord>, Error> {
        self.tree(T_BLOCKS)
            .get(height.to_be_bytes())?
            .map(|v| BlockRecord::decode(&v).ok_or_else(|| corrupt("block record")))
            .transpose()
    }

    /// Height of a best-chain block.
    pub fn height_of(&self, hash: &Hash256) -> Result<Option<u32>, Error> {
        self.tree(T_BLOCK_HEIGHTS)
            .get(hash.as_bytes())?
            .map(|v| u32_at(&v, 0).ok_or_else(|| corrupt("block height")))
            .transpose()
    }

    /// Txids of the best-chain block at `height`.
    pub fn block_txids(&self, height: u32) -> Result<Vec<Hash256>, Error> {
        let v = self
            .tree(T_BLOCK_TXIDS)
            .get(height.to_be_bytes())?
            .unwrap_or_default();
        Ok(v.chunks_exact(32).filter_map(|c| hash_at(c, 0)).collect())
    }

    /// Where a confirmed transaction is.
    pub fn tx_position(&self, txid: &Hash256) -> Result<Option<TxPosition>, Error> {
        self.tree(T_TX_POSITIONS)
            .get(txid.as_bytes())?
            .map(|v| {
                Ok(TxPosition {
                    height: u32_at(&v, 0).ok_or_else(|| corrupt("tx position"))?,
                    pos: u32_at(&v, 4).ok_or_else(|| corrupt("tx position"))?,
                })
            })
            .transpose()
    }

    /// An unspent output.
    pub fn unspent(&self, outpoint: &OutPoint) -> Result<Option<StoredOutput>, Error> {
        self.tree(T_UNSPENT)
            .get(outpoint.key())?
            .map(|v| decode_output(&v).ok_or_else(|| corrupt("unspent output")))
            .transpose()
    }

    /// Who spent an output in the best chain.
    pub fn spend(&self, outpoint: &OutPoint) -> Result<Option<Spend>, Error> {
        self.tree(T_SPENDS)
            .get(outpoint.key())?
            .map(|v| {
                Ok(Spend {
                    txid: hash_at(&v, 0).ok_or_else(|| corrupt("spend"))?,
                    vin: u32_at(&v, 32).ok_or_else(|| corrupt("spend"))?,
                    height: u32_at(&v, 36).ok_or_else(|| corrupt("spend"))?,
                })
            })
            .transpose()
    }

    /// Confirmed totals of a script.
    pub fn stats(&self, script: &[u8; 32]) -> Result<ScriptStats, Error> {
        Ok(match self.tree(T_STATS).get(script)? {
            Some(v) => decode_stats(&v).ok_or_else(|| corrupt("script stats"))?,
            None => ScriptStats::default(),
        })
    }

    /// Confirmed history of a script, newest first: (height, txid), strictly before
    /// `before` (height, position) when given.
    pub fn history(
        &self,
        script: &[u8; 32],
        before: Option<TxPosition>,
        limit: usize,
    ) -> Result<Vec<(u32, Hash256)>, Error> {
        let start = Bound::Included(history_key(script, 0, 0));
        let end = match before {
            Some(p) => Bound::Excluded(history_key(script, p.height, p.pos)),
            None => Bound::Included(history_key(script, u32::MAX, u32::MAX)),
        };
        self.tree(T_HISTORY)
            .range::<[u8; 40], _>((start, end))
            .rev()
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                let height = u32_at(&k, 32).ok_or_else(|| corrupt("history key"))?;
                Ok((
                    height,
                    hash_at(&v, 0).ok_or_else(|| corrupt("history value"))?,
                ))
            })
            .collect()
    }

    /// Confirmed unspent outputs of a script.
    pub fn script_utxos(&self, script: &[u8; 32]) -> Result<Vec<(OutPoint, u64, u32)>, Error> {
        self.tree(T_SCRIPT_UTXOS)
            .scan_prefix(script)
            .map(|item| {
                let (k, v) = item?;
                let outpoint =
                    OutPoint::from_key(&k[32..]).ok_or_else(|| corrupt("script utxo"))?;
                let value = u64_at(&v, 0).ok_or_else(|| corrupt("script utxo"))?;
                let height = u32_at(&v, 8).ok_or_else(|| corrupt("script utxo"))?;
                Ok((outpoint, value, height))
            })
            .collect()
    }

    /// Applies `blocks` (consecutive, the first on top of the current tip) in one atomic
    /// transaction. Undo data is written for blocks at or above `undo_from`, and dropped for
    /// the block `reorg_limit` below each applied one.
    pub fn apply_blocks(
        &self,
        blocks: &[IndexedBlock],
        undo_from: u32,
        reorg_limit: u32,
    ) -> Result<(), Error> {
        let mut pending = Pending::default();
        let first = self.tip()?.map_or(0, |t| t.height + 1);
        for (expected, block) in (first..).zip(blocks) {
            if block.height != expected {
                return Err(Error::Index(format!(
                    "block {} at height {} does not extend the index (expected height {expected})",
                    block.hash, block.height
                )));
            }
            self.stage_block(&mut pending, block, block.height >= undo_from)?;
            if let Some(old) = block.height.checked_sub(reorg_limit) {
                pending.batches[T_UNDO].remove(&old.to_be_bytes()[..]);
            }
        }
        self.commit(pending)
    }

    fn lookup_output(
        &self,
        pending: &mut Pending,
        outpoint: &OutPoint,
    ) -> Result<Option<(StoredOutput, bool)>, Error> {
        if let Some(out) = pending.created.remove(outpoint) {
            return Ok(Some((out, true)));
        }
        if pending.spent.contains(outpoint) {
            return Ok(None);
        }
        Ok(self.unspent(outpoint)?.map(|out| (out, false)))
    }

    fn stats_entry<'a>(
        &self,
        pending: &'a mut Pending,
        script: &[u8; 32],
    ) -> Result<&'a mut ScriptStats, Error> {
        if !pending.stats.contains_key(script) {
            let stored = self.stats(script)?;
            pending.stats.insert(*script, stored);
        }
        Ok(pending.stats.get_mut(script).expect("inserted above"))
    }

    fn stage_block(
        &self,
        pending: &mut Pending,
        block: &IndexedBlock,
        keep_undo: bool,
    ) -> Result<(), Error> {
        let h = block.height;
        let height_key = h.to_be_bytes();
        let mut undo = Undo::default();
        // Outputs created by this block, to tell what is still unspent at its end.
        let mut created_here: Vec<(OutPoint, [u8; 32])> = Vec::new();
        let mut deltas: BTreeMap<[u8; 32], ScriptStats> = BTreeMap::new();
        let mut txids = Vec::with_capacity(block.txs.len() * 32);

        for (pos, tx) in block.txs.iter().enumerate() {
            let pos = pos as u32;
            txids.extend_from_slice(tx.txid.as_bytes());
            let mut position = [0u8; 8];
            position[..4].copy_from_slice(&height_key);
            position[4..].copy_from_slice(&pos.to_be_bytes());
            pending.batches[T_TX_POSITIONS].insert(tx.txid.as_bytes(), &position[..]);
            let mut touched: Vec<[u8; 32]> = Vec::new();

            for (vin, outpoint) in tx.inputs.iter().enumerate() {
                let Some((prev, created_in_run)) = self.lookup_output(pending, outpoint)? else {
                    // A valid chain never spends an unknown output; keep indexing the rest.
                    tracing::warn!(%outpoint.txid, outpoint.vout, height = h, "input spends an output the index does not hold");
                    continue;
                };
                let op_key = outpoint.key();
                if !created_in_run {
                    pending.spent.insert(*outpoint);
                }
                pending.batches[T_UNSPENT].remove(&op_key[..]);
                pending.batches[T_SCRIPT_UTXOS]
                    .remove(&script_utxo_key(&prev.script, outpoint)[..]);
                if prev.height < h {
                    undo.restored.push((*outpoint, prev));
                }
                let mut spend = [0u8; 40];
                spend[..32].copy_from_slice(tx.txid.as_bytes());
                spend[32..36].copy_from_slice(&(vin as u32).to_be_bytes());
                spend[36..].copy_from_slice(&height_key);
                pending.batches[T_SPENDS].insert(&op_key[..], &spend[..]);
                undo.spent.push(*outpoint);
                let d = deltas.entry(prev.script).or_default();
                d.spent_txo_count += 1;
                d.spent_txo_sum += prev.value;
                touched.push(prev.script);
            }

            for (vout, output) in tx.outputs.iter().enumerate() {
                let IndexedOutput { script, value, .. } = *output;
                let d = deltas.entry(script).or_default();
                d.funded_txo_count += 1;
                d.funded_txo_sum += value;
                touched.push(script);
                if !output.spendable {
                    continue;
                }
                let outpoint = OutPoint {
                    txid: tx.txid,
                    vout: vout as u32,
                };
                let out = StoredOutput {
                    script,
                    value,
                    height: h,
                };
                pending.created.insert(outpoint, out);
                created_here.push((outpoint, script));
                pending.batches[T_UNSPENT].insert(&outpoint.key()[..], &encode_output(&out)[..]);
                let mut utxo = [0u8; 12];
                utxo[..8].copy_from_slice(&value.to_be_bytes());
                utxo[8..].copy_from_slice(&height_key);
                pending.batches[T_SCRIPT_UTXOS]
                    .insert(&script_utxo_key(&script, &outpoint)[..], &utxo[..]);
            }

            touched.sort_unstable();
            touched.dedup();
            for script in touched {
                deltas.entry(script).or_default().tx_count += 1;
                pending.batches[T_HISTORY]
                    .insert(&history_key(&script, h, pos)[..], tx.txid.as_bytes());
                undo.history.push((script, pos));
            }
        }

        for (script, delta) in &deltas {
            let stats = self.stats_entry(pending, script)?;
            add_stats(stats, delta);
        }
        undo.stats = deltas.into_iter().collect();
        undo.created = created_here
            .into_iter()
            .filter(|(op, _)| pending.created.contains_key(op))
            .collect();

        let record = BlockRecord {
            hash: block.hash,
            header: block.header,
            tx_count: block.txs.len() as u32,
            size: block.size,
            weight: block.weight,
        };
        pending.batches[T_BLOCKS].insert(&height_key[..], record.encode());
        pending.batches[T_BLOCK_HEIGHTS].insert(block.hash.as_bytes(), &height_key[..]);
        pending.batches[T_BLOCK_TXIDS].insert(&height_key[..], txids);
        if keep_undo {
            pending.batches[T_UNDO].insert(&height_key[..], undo.encode());
        }
        pending.tip = Some(Tip {
            height: h,
            hash: block.hash,
        });
        Ok(())
    }

    /// Undoes the tip block, from its undo data. Fails when no undo data is kept for it
    /// (a reorganisation deeper than the configured limit).
    pub fn undo_tip(&self) -> Result<Option<Tip>, Error> {
        let tip = self
            .tip()?
            .ok_or_else(|| Error::Index("nothing to undo: the index is empty".into()))?;
        let h = tip.height;
        let height_key = h.to_be_bytes();
        let undo = self.tree(T_UNDO).get(height_key)?.ok_or_else(|| {
            Error::Index(format!(
                "no undo data for block {} at height {h}: reorg deeper than the limit",
                tip.hash
            ))
        })?;
        let undo = Undo::decode(&undo).ok_or_else(|| corrupt("undo record"))?;
        let mut pending = Pending::default();
        let b = &mut pending.batches;
        for (outpoint, out) in &undo.restored {
            b[T_UNSPENT].insert(&outpoint.key()[..], &encode_output(out)[..]);
            let mut utxo = [0u8; 12];
            utxo[..8].copy_from_slice(&out.value.to_be_bytes());
            utxo[8..].copy_from_slice(&out.height.to_be_bytes());
            b[T_SCRIPT_UTXOS].insert(&script_utxo_key(&out.script, outpoint)[..], &utxo[..]);
        }
        for (outpoint, script) in &undo.created {
            b[T_UNSPENT].remove(&outpoint.key()[..]);
            b[T_SCRIPT_UTXOS].remove(&script_utxo_key(script, outpoint)[..]);
        }
        for outpoint in &undo.spent {
            b[T_SPENDS].remove(&outpoint.key()[..]);
        }
        for (script, pos) in &undo.history {
            b[T_HISTORY].remove(&history_key(script, h, *pos)[..]);
        }
        for (script, delta) in &undo.stats {
            let mut stats = self.stats(script)?;
            sub_stats(&mut stats, delta);
            if stats == ScriptStats::default() {
                b[T_STATS].remove(script);
            } else {
                b[T_STATS].insert(script, &encode_stats(&stats)[..]);
            }
        }
        for txid in self.block_txids(h)? {
            // A duplicate txid (pre-BIP 30 coinbases) may point at an earlier block: keep it.
            if self.tx_position(&txid)?.is_some_and(|p| p.height == h) {
                b[T_TX_POSITIONS].remove(txid.as_bytes());
            }
        }
        b[T_BLOCKS].remove(&height_key[..]);
        b[T_BLOCK_HEIGHTS].remove(tip.hash.as_bytes());
        b[T_BLOCK_TXIDS].remove(&height_key[..]);
        b[T_UNDO].remove(&height_key[..]);
        let new_tip = match h.checked_sub(1) {
            Some(prev) => {
                let record = self
                    .block_at(prev)?
                    .ok_or_else(|| corrupt("block below tip"))?;
                Some(Tip {
                    height: prev,
                    hash: record.hash,
                })
            }
            None => {
                b[T_META].remove(KEY_TIP);
                None
            }
        };
        pending.tip = new_tip;
        self.commit(pending)?;
        Ok(new_tip)
    }

    fn commit(&self, mut pending: Pending) -> Result<(), Error> {
        for (script, stats) in &pending.stats {
            pending.batches[T_STATS].insert(script, &encode_stats(stats)[..]);
        }
        if let Some(tip) = pending.tip {
            let mut v = [0u8; 36];
            v[..4].copy_from_slice(&tip.height.to_be_bytes());
            v[4..].copy_from_slice(tip.hash.as_bytes());
            pending.batches[T_META].insert(KEY_TIP, &v[..]);
        }
        let result: Result<(), TransactionError<()>> = self.trees.as_slice().transaction(|views| {
            for (view, batch) in views.iter().zip(&pending.batches) {
                view.apply_batch(batch)?;
            }
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => Error::Storage(e),
            TransactionError::Abort(()) => Error::Index("index transaction aborted".into()),
        })
    }

    /// Waits until everything written so far is on disk.
    pub async fn flush(&self) -> Result<(), Error> {
        // sled's own flush_async can wait forever when nothing is dirty; flush on the
        // blocking pool instead.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| Error::Index(format!("flush task failed: {e}")))??;
        Ok(())
    }

    /// Every key and value of every table, for tests that compare two indexes.
    pub fn dump(&self) -> Result<BTreeMap<&'static str, Rows>, Error> {
        let mut out = BTreeMap::new();
        for (name, tree) in TABLES.iter().zip(&self.trees) {
            let rows = tree
                .iter()
                .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(*name, rows);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> Hash256 {
        Hash256([n; 32])
    }

    fn script(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn block(height: u32, txs: Vec<IndexedTx>) -> IndexedBlock {
        let mut header = [0u8; 80];
        header[68..72].copy_from_slice(&(1_600_000_000 + height).to_le_bytes());
        IndexedBlock {
            height,
            hash: h(200 + height as u8),
            header,
            size: 300,
            weight: 1200,
            txs,
        }
    }

    fn tx(id: u8, inputs: &[(u8, u32)], outputs: &[(u8, u64)]) -> IndexedTx {
        IndexedTx {
            txid: h(id),
            inputs: inputs
                .iter()
                .map(|&(t, vout)| OutPoint { txid: h(t), vout })
                .collect(),
            outputs: outputs
                .iter()
                .map(|&(s, value)| IndexedOutput {
                    script: script(s),
                    value,
                    spendable: s != 0x6a,
                })
                .collect(),
        }
    }

    /// Block 0: coinbase pays A twice. Block 1: tx 2 spends one of A's outputs to B and C,
    /// tx 3 spends tx 2's output to B in the same block. Block 2: spends A's other output.
    fn chain() -> Vec<IndexedBlock> {
        vec![
            block(0, vec![tx(1, &[], &[(0xA, 50), (0xA, 25)])]),
            block(
                1,
                vec![
                    tx(10, &[], &[(0xA, 50)]),
                    tx(2, &[(1, 0)], &[(0xB, 30), (0xC, 20)]),
                    tx(3, &[(2, 0)], &[(0xB, 29)]),
                ],
            ),
            block(
                2,
                vec![tx(11, &[], &[(0xD, 50)]), tx(4, &[(1, 1)], &[(0xC, 24)])],
            ),
        ]
    }

    fn open(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open(&dir.path().join(name), "ltc-regtest", 16 << 20).unwrap()
    }

    #[test]
    fn indexes_history_utxos_stats_and_spends() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        store.apply_blocks(&chain(), 0, 10).unwrap();
        assert_eq!(
            store.tip().unwrap(),
            Some(Tip {
                height: 2,
                hash: h(202)
            })
        );

        let b = store.stats(&script(0xB)).unwrap();
        assert_eq!(
            (
                b.funded_txo_count,
                b.funded_txo_sum,
                b.spent_txo_count,
                b.spent_txo_sum,
                b.tx_count
            ),
            (2, 59, 1, 30, 2)
        );
        let a = store.stats(&script(0xA)).unwrap();
        assert_eq!(
            (
                a.funded_txo_count,
                a.funded_txo_sum,
                a.spent_txo_count,
                a.spent_txo_sum,
                a.tx_count
            ),
            (3, 125, 2, 75, 4)
        );

        let utxos = store.script_utxos(&script(0xB)).unwrap();
        assert_eq!(
            utxos,
            vec![(
                OutPoint {
                    txid: h(3),
                    vout: 0
                },
                29,
                1
            )]
        );
        assert!(
            store
                .unspent(&OutPoint {
                    txid: h(1),
                    vout: 0
                })
                .unwrap()
                .is_none()
        );

        let history = store.history(&script(0xA), None, 10).unwrap();
        assert_eq!(history, vec![(2, h(4)), (1, h(2)), (1, h(10)), (0, h(1))]);
        let page = store
            .history(&script(0xA), Some(TxPosition { height: 1, pos: 1 }), 10)
            .unwrap();
        assert_eq!(page, vec![(1, h(10)), (0, h(1))]);

        let spend = store
            .spend(&OutPoint {
                txid: h(2),
                vout: 0,
            })
            .unwrap()
            .unwrap();
        assert_eq!((spend.txid, spend.vin, spend.height), (h(3), 0, 1));
        assert_eq!(
            store.tx_position(&h(3)).unwrap(),
            Some(TxPosition { height: 1, pos: 2 })
        );
        assert_eq!(store.block_txids(1).unwrap(), vec![h(10), h(2), h(3)]);
        assert_eq!(store.block_at(2).unwrap().unwrap().time(), 1_600_000_002);
        assert_eq!(store.height_of(&h(201)).unwrap(), Some(1));
    }

    #[test]
    fn unspendable_outputs_count_in_history_but_are_never_unspent() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        let empty = store.dump().unwrap();
        store
            .apply_blocks(
                &[block(0, vec![tx(1, &[], &[(0xA, 50), (0x6a, 0)])])],
                0,
                10,
            )
            .unwrap();
        let data = store.stats(&script(0x6a)).unwrap();
        assert_eq!((data.funded_txo_count, data.tx_count), (1, 1));
        assert_eq!(
            store.history(&script(0x6a), None, 10).unwrap(),
            vec![(0, h(1))]
        );
        assert!(store.script_utxos(&script(0x6a)).unwrap().is_empty());
        let data_output = OutPoint {
            txid: h(1),
            vout: 1,
        };
        assert!(store.unspent(&data_output).unwrap().is_none());
        store.undo_tip().unwrap();
        assert_eq!(store.dump().unwrap(), empty);
    }

    #[test]
    fn one_run_equals_block_by_block() {
        let dir = tempfile::tempdir().unwrap();
        let run = open(&dir, "run");
        run.apply_blocks(&chain(), 0, 10).unwrap();
        let single = open(&dir, "single");
        for b in chain() {
            single.apply_blocks(&[b], 0, 10).unwrap();
        }
        assert_eq!(run.dump().unwrap(), single.dump().unwrap());
    }

    #[test]
    fn undo_restores_exactly_the_earlier_index() {
        let dir = tempfile::tempdir().unwrap();
        let full = open(&dir, "full");
        full.apply_blocks(&chain(), 0, 10).unwrap();
        assert_eq!(
            full.undo_tip().unwrap(),
            Some(Tip {
                height: 1,
                hash: h(201)
            })
        );
        assert_eq!(
            full.undo_tip().unwrap(),
            Some(Tip {
                height: 0,
                hash: h(200)
            })
        );

        let short = open(&dir, "short");
        short.apply_blocks(&chain()[..1], 0, 10).unwrap();
        assert_eq!(full.dump().unwrap(), short.dump().unwrap());
        assert_eq!(full.tip().unwrap(), short.tip().unwrap());

        // Re-applying after the undo gives the same index as never undoing.
        full.apply_blocks(&chain()[1..], 0, 10).unwrap();
        let again = open(&dir, "again");
        again.apply_blocks(&chain(), 0, 10).unwrap();
        assert_eq!(full.dump().unwrap(), again.dump().unwrap());
    }

    #[test]
    fn undo_data_is_bounded_by_the_reorg_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        store.apply_blocks(&chain(), 0, 1).unwrap();
        assert!(store.undo_tip().is_ok());
        let err = store.undo_tip().unwrap_err().to_string();
        assert!(err.contains("deeper than the limit"), "{err}");
    }

    #[test]
    fn refuses_a_block_that_does_not_extend_the_tip() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        assert!(store.apply_blocks(&chain()[1..2], 0, 10).is_err());
        assert_eq!(store.tip().unwrap(), None);
    }

    #[test]
    fn refuses_an_index_of_another_coin() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(&dir, "a"));
        let err = Store::open(&dir.path().join("a"), "btc", 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to coin"), "{err}");
    }

    #[test]
    fn undo_record_round_trips_and_rejects_truncation() {
        let undo = Undo {
            restored: vec![(
                OutPoint {
                    txid: h(1),
                    vout: 2,
                },
                StoredOutput {
                    script: script(3),
                    value: 4,
                    height: 5,
                },
            )],
            created: vec![(
                OutPoint {
                    txid: h(6),
                    vout: 7,
                },
                script(8),
            )],
            spent: vec![OutPoint {
                txid: h(9),
                vout: 1,
            }],
            history: vec![(script(2), 3)],
            stats: vec![(
                script(4),
                ScriptStats {
                    funded_txo_count: 1,
                    funded_txo_sum: 2,
                    spent_txo_count: 3,
                    spent_txo_sum: 4,
                    tx_count: 5,
                },
            )],
        };
        let bytes = undo.encode();
        assert_eq!(Undo::decode(&bytes), Some(undo));
        for len in 0..bytes.len() {
            assert_eq!(Undo::decode(&bytes[..len]), None);
        }
    }
}
