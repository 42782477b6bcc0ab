//! The native backend's index, kept in sled in the server's data directory.
//!
//! One sled tree; the first byte of each key names its table (below). A block, or a run of
//! blocks during catch-up, is written together with the new tip all or nothing: a small
//! commit as one `Tree::apply_batch`, which sled recovers all-or-nothing, a big one through a
//! journal that [`Store::open`] finishes (see [`Store::commit`]). So a `kill -9` at any
//! moment leaves the index at a block boundary and indexing resumes from the stored tip.
//! Each block keeps undo data (the
//! outputs its inputs spent), so a reorganisation is undone exactly, without asking the
//! node for the stale block, and who spent an output is found from the spending script's
//! history and that record, without a row per input.
//!
//! Why this layout: sled spends several µs of CPU per key written (each write copies the
//! tree node it lands in), whatever the key's size, and that cost dominated indexing. So
//! the layout writes as few keys as it can:
//! - what is per transaction or per output and never changes (txids, output scripts and
//!   values) is written once per block, in one record per block, and found by (height,
//!   position in block) — the address every other table uses for a transaction;
//! - each script has one record, its totals and unspent outputs, written once per run that
//!   touches it; a UTXO query reads that one key;
//! - a script's history is kept in chunks of up to [`HISTORY_CHUNK`] entries, so a run
//!   rewrites the script's last chunk rather than adding a row per block;
//! - outputs created and spent within one run never reach the tree;
//! - scripts are keyed by the first [`SCRIPT_KEY_LEN`] bytes of their hash, as ElectrumX
//!   does: shorter rows, and a collision would take about 2^96 hashing to make on purpose.
//!
//! The layout never depends on how blocks were grouped into runs, so an index built in one
//! go, block by block, or resumed after a crash is the same, key for key.
//!
//! Where each transaction is (txid → height and position) is not in sled: that was a row per
//! transaction, most of what indexing wrote. It is a hash table in a file beside the tree
//! ([`TxIndex`]), whose entries are checked against the block records here before use.
//!
//! The store knows nothing of raw blocks: the indexer hands it [`IndexedBlock`]s, the few
//! facts per transaction the index needs.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use rot_proto::Hash256;
use sled::{Batch, IVec, Tree};

use crate::Error;
use crate::backend::{ScriptStats, Tip};
use crate::tx_index::{TxEntry, TxIndex, block_tag};

/// Bumped whenever the layout below changes; a store of another version is refused at open.
pub const SCHEMA_VERSION: u32 = 5;

/// height → [`BlockRecord`].
const BLOCK: u8 = b'b';
/// block hash → height.
const BLOCK_HEIGHT: u8 = b'k';
/// height → the block's txids, 32 bytes each, in block order.
const BLOCK_TXIDS: u8 = b't';
/// height → the block's outputs (see [`OutputsRecord`]): script hash and value by
/// (position, output index).
const BLOCK_OUTPUTS: u8 = b'o';
/// height → the outputs the block's inputs spent, in block order, see [`UndoEntry`]; kept
/// for every block (how [`Store::spend`] finds a spender; the indexer bounds reorgs).
const UNDO: u8 = b'd';
/// script key ++ height ++ position of its first entry → a chunk of the script's history:
/// up to [`HISTORY_CHUNK`] (height, position) pairs, ascending. Every chunk but the last
/// is full, so the chunks depend only on the history, never on how blocks were grouped.
const HISTORY: u8 = b'h';
/// script key → [`ScriptRecord`]: the script's totals and its unspent outputs.
const SCRIPT: u8 = b'a';

/// Table names by key byte, for [`Store::dump`]. The meta keys (`m`) are left out: they
/// hold no index data.
const TABLES: [(u8, &str); 7] = [
    (BLOCK, "blocks"),
    (BLOCK_HEIGHT, "block_heights"),
    (BLOCK_TXIDS, "block_txids"),
    (BLOCK_OUTPUTS, "block_outputs"),
    (UNDO, "undo"),
    (HISTORY, "history"),
    (SCRIPT, "scripts"),
];

/// Schema version, coin id and tip: the keys starting with `m`.
const META_SCHEMA: &[u8] = b"mschema_version";
const META_COIN: &[u8] = b"mcoin";
const META_TIP: &[u8] = b"mtip";
/// The tree holding a commit too big for one batch while it is applied, under
/// [`JOURNAL_KEY`]; see [`Store::commit`]. A tree of its own, because sled rewrites a tree
/// node whole when it splits, and the node holding a journal of megabytes would otherwise
/// be split by every write near its key.
const JOURNAL_TREE: &[u8] = b"journal";
const JOURNAL_KEY: &[u8] = b"journal";
/// Commits of at least this many writes go through the journal (see [`Store::commit`]).
const JOURNAL_FROM_WRITES: usize = 2_000;
/// Threads that apply a journaled commit's writes.
const WRITE_THREADS: usize = 2;
/// The tree of the first layout (one sled tree per table): its presence means schema 1.
const LEGACY_META_TREE: &[u8] = b"meta";
/// The [`TxIndex`] file, in sled's directory.
const TX_INDEX_FILE: &str = "txids";
/// Most transactions entered into the [`TxIndex`] at once when it is caught up at open.
const TX_INDEX_CATCH_UP_BATCH: usize = 100_000;

/// Bytes of a script hash that key its rows.
pub const SCRIPT_KEY_LEN: usize = 12;
/// The rows of a script are keyed by the start of its hash.
type ScriptKey = [u8; SCRIPT_KEY_LEN];

fn script_key(script: &[u8; 32]) -> ScriptKey {
    let mut key = [0u8; SCRIPT_KEY_LEN];
    key.copy_from_slice(&script[..SCRIPT_KEY_LEN]);
    key
}

/// Block outputs record: per output, script hash and value.
const OUTPUT_LEN: usize = 40;
/// Undo entry: spending position, funding height, funding position, output index.
const UNDO_ENTRY_LEN: usize = 16;
/// Most entries in one history chunk: bounds what a run rewrites for a busy script.
const HISTORY_CHUNK: usize = 64;
/// Upper bound on the block output records a run keeps at hand to resolve inputs.
const OUTPUTS_CACHE_BYTES: usize = 64 << 20;

/// A transaction output's place: funding txid and output index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    /// Funding transaction.
    pub txid: Hash256,
    /// Output index.
    pub vout: u32,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxPosition {
    /// Block height.
    pub height: u32,
    /// Index in the block.
    pub pos: u32,
}

impl TxPosition {
    fn encode(&self) -> [u8; 8] {
        let mut v = [0u8; 8];
        v[..4].copy_from_slice(&self.height.to_be_bytes());
        v[4..].copy_from_slice(&self.pos.to_be_bytes());
        v
    }

    fn decode(v: &[u8], at: usize) -> Option<Self> {
        Some(Self {
            height: u32_at(v, at)?,
            pos: u32_at(v, at + 4)?,
        })
    }
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

// Wrapping arithmetic: undoing a block subtracts exactly what applying it added, whatever
// the values (a valid chain never comes near the limits).
fn add_stats(a: &mut ScriptStats, b: &ScriptStats) {
    a.funded_txo_count = a.funded_txo_count.wrapping_add(b.funded_txo_count);
    a.funded_txo_sum = a.funded_txo_sum.wrapping_add(b.funded_txo_sum);
    a.spent_txo_count = a.spent_txo_count.wrapping_add(b.spent_txo_count);
    a.spent_txo_sum = a.spent_txo_sum.wrapping_add(b.spent_txo_sum);
    a.tx_count = a.tx_count.wrapping_add(b.tx_count);
}

fn sub_stats(a: &mut ScriptStats, b: &ScriptStats) {
    a.funded_txo_count = a.funded_txo_count.wrapping_sub(b.funded_txo_count);
    a.funded_txo_sum = a.funded_txo_sum.wrapping_sub(b.funded_txo_sum);
    a.spent_txo_count = a.spent_txo_count.wrapping_sub(b.spent_txo_count);
    a.spent_txo_sum = a.spent_txo_sum.wrapping_sub(b.spent_txo_sum);
    a.tx_count = a.tx_count.wrapping_sub(b.tx_count);
}

fn encode_tip(tip: &Tip) -> [u8; 36] {
    let mut v = [0u8; 36];
    v[..4].copy_from_slice(&tip.height.to_be_bytes());
    v[4..].copy_from_slice(tip.hash.as_bytes());
    v
}

fn height_key(table: u8, height: u32) -> [u8; 5] {
    let mut key = [table, 0, 0, 0, 0];
    key[1..].copy_from_slice(&height.to_be_bytes());
    key
}

fn hash_key(table: u8, hash: &Hash256) -> [u8; 33] {
    let mut key = [table; 33];
    key[1..].copy_from_slice(hash.as_bytes());
    key
}

type HistoryKey = [u8; 1 + SCRIPT_KEY_LEN + 8];

/// The key of the history chunk of `script` whose first entry is `first`.
fn history_key(script: &ScriptKey, first: TxPosition) -> HistoryKey {
    let mut key = [HISTORY; 1 + SCRIPT_KEY_LEN + 8];
    key[1..1 + SCRIPT_KEY_LEN].copy_from_slice(script);
    key[1 + SCRIPT_KEY_LEN..].copy_from_slice(&first.encode());
    key
}

/// A key after every history chunk of `script`.
fn history_end(script: &ScriptKey) -> HistoryKey {
    history_key(
        script,
        TxPosition {
            height: u32::MAX,
            pos: u32::MAX,
        },
    )
}

fn encode_history(entries: &[TxPosition]) -> Vec<u8> {
    entries.iter().flat_map(TxPosition::encode).collect()
}

fn decode_history(v: &[u8]) -> Option<Vec<TxPosition>> {
    if !v.len().is_multiple_of(8) {
        return None;
    }
    (0..v.len() / 8)
        .map(|i| TxPosition::decode(v, i * 8))
        .collect()
}

fn script_row_key(script: &ScriptKey) -> [u8; 1 + SCRIPT_KEY_LEN] {
    let mut key = [SCRIPT; 1 + SCRIPT_KEY_LEN];
    key[1..].copy_from_slice(script);
    key
}

/// Where an output is: funding transaction's position and output index. Orders outputs
/// oldest first.
type OutputPlace = (TxPosition, u32);

/// An unspent output in a [`ScriptRecord`]: its value and funding txid.
type UnspentEntry = (u64, Hash256);

/// Bytes of stats at the start of a script record.
const STATS_LEN: usize = 40;
/// Bytes per unspent output in a script record: height, position, output index, value,
/// txid.
const UNSPENT_LEN: usize = 52;

/// A script's row: its confirmed totals, then its unspent outputs oldest first. One row per
/// script, so a run writes each script it touches once and a UTXO query reads one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScriptRecord {
    stats: ScriptStats,
    unspent: BTreeMap<OutputPlace, UnspentEntry>,
}

impl ScriptRecord {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(STATS_LEN + self.unspent.len() * UNSPENT_LEN);
        v.extend_from_slice(&encode_stats(&self.stats));
        for ((at, vout), (value, txid)) in &self.unspent {
            v.extend_from_slice(&at.encode());
            v.extend_from_slice(&vout.to_be_bytes());
            v.extend_from_slice(&value.to_be_bytes());
            v.extend_from_slice(txid.as_bytes());
        }
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        let stats = decode_stats(v)?;
        let unspent = unspent_entries(v)?
            .map(|e| e.map(|(at, vout, value, txid)| ((at, vout), (value, txid))))
            .collect::<Option<_>>()?;
        Some(Self { stats, unspent })
    }

    /// Nothing left: no block touches the script any more.
    fn is_empty(&self) -> bool {
        self.stats == ScriptStats::default() && self.unspent.is_empty()
    }
}

/// The unspent outputs of an encoded script record, without building the record: funding
/// position, output index, value and txid each. `None` when the record is malformed.
fn unspent_entries(
    v: &[u8],
) -> Option<impl Iterator<Item = Option<(TxPosition, u32, u64, Hash256)>> + '_> {
    let rest = v.get(STATS_LEN..)?;
    if !rest.len().is_multiple_of(UNSPENT_LEN) {
        return None;
    }
    Some(rest.chunks_exact(UNSPENT_LEN).map(|e| {
        Some((
            TxPosition::decode(e, 0)?,
            u32_at(e, 8)?,
            u64_at(e, 12)?,
            hash_at(e, 20)?,
        ))
    }))
}

/// A block's outputs record: the number of transactions n, n + 1 running output counts
/// (where each transaction's outputs start, then the total), then every output as script
/// hash ++ value, all integers u32/u64 BE. Lets an input find the output it spends from the
/// funding transaction's position alone.
struct OutputsRecord;

impl OutputsRecord {
    fn encode(txs: &[IndexedTx]) -> Vec<u8> {
        let outputs: usize = txs.iter().map(|tx| tx.outputs.len()).sum();
        let mut v = Vec::with_capacity(4 + (txs.len() + 1) * 4 + outputs * OUTPUT_LEN);
        v.extend_from_slice(&(txs.len() as u32).to_be_bytes());
        let mut start = 0u32;
        for tx in txs {
            v.extend_from_slice(&start.to_be_bytes());
            start += tx.outputs.len() as u32;
        }
        v.extend_from_slice(&start.to_be_bytes());
        for output in txs.iter().flat_map(|tx| &tx.outputs) {
            v.extend_from_slice(&output.script);
            v.extend_from_slice(&output.value.to_be_bytes());
        }
        v
    }

    /// Number of transactions.
    fn tx_count(v: &[u8]) -> Option<u32> {
        u32_at(v, 0)
    }

    /// The outputs of the transaction at `pos`, as (script hash, value), or `None` when the
    /// record has no such transaction or is malformed.
    fn tx_outputs(v: &[u8], pos: u32) -> Option<Vec<([u8; 32], u64)>> {
        let n = u32_at(v, 0)?;
        if pos >= n {
            return None;
        }
        let pos = pos as usize;
        let start = u32_at(v, 4 + pos * 4)? as usize;
        let end = u32_at(v, 8 + pos * 4)? as usize;
        let base = 4 + (n as usize + 1) * 4;
        // A running count that goes backwards would ask for a huge range: refuse it.
        let count = end.checked_sub(start)?;
        if base + end * OUTPUT_LEN > v.len() {
            return None;
        }
        (0..count)
            .map(|i| {
                let at = base + (start + i) * OUTPUT_LEN;
                Some((script_at(v, at)?, u64_at(v, at + 32)?))
            })
            .collect()
    }

    /// Output `vout` of the transaction at `pos`.
    fn output(v: &[u8], pos: u32, vout: u32) -> Option<([u8; 32], u64)> {
        let n = u32_at(v, 0)?;
        if pos >= n {
            return None;
        }
        let pos = pos as usize;
        let start = u32_at(v, 4 + pos * 4)?;
        let end = u32_at(v, 8 + pos * 4)?;
        let index = start.checked_add(vout).filter(|&i| i < end)? as usize;
        let at = 4 + (n as usize + 1) * 4 + index * OUTPUT_LEN;
        Some((script_at(v, at)?, u64_at(v, at + 32)?))
    }
}

/// One output a block spent, as its undo record keeps it: enough to restore the output and
/// to recompute what the block added to each script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UndoEntry {
    /// Position of the spending transaction in the block.
    spender: u32,
    /// The funding transaction.
    funding: TxPosition,
    /// The output index.
    vout: u32,
}

impl UndoEntry {
    fn encode(&self) -> [u8; UNDO_ENTRY_LEN] {
        let mut v = [0u8; UNDO_ENTRY_LEN];
        v[..4].copy_from_slice(&self.spender.to_be_bytes());
        v[4..12].copy_from_slice(&self.funding.encode());
        v[12..].copy_from_slice(&self.vout.to_be_bytes());
        v
    }

    /// The entries of an undo record, `None` when it is malformed.
    fn decode_all(v: &[u8]) -> Option<Vec<Self>> {
        if !v.len().is_multiple_of(UNDO_ENTRY_LEN) {
            return None;
        }
        v.chunks_exact(UNDO_ENTRY_LEN)
            .map(|e| {
                Some(Self {
                    spender: u32_at(e, 0)?,
                    funding: TxPosition::decode(e, 4)?,
                    vout: u32_at(e, 12)?,
                })
            })
            .collect()
    }
}

/// What a block adds to scripts: their stats and the positions of the transactions touching
/// them. Applying and undoing a block both compute it with [`BlockEffects::add_tx`], so an
/// undo takes away exactly what the apply added.
#[derive(Default)]
struct BlockEffects {
    stats: HashMap<ScriptKey, ScriptStats>,
    history: HashMap<ScriptKey, Vec<u32>>,
}

impl BlockEffects {
    /// Adds the transaction at `pos`, spending `spent` and creating `outputs` (script hash,
    /// value each).
    fn add_tx(&mut self, pos: u32, spent: &[([u8; 32], u64)], outputs: &[([u8; 32], u64)]) {
        let mut touched: Vec<ScriptKey> = Vec::with_capacity(spent.len() + outputs.len());
        for (script, value) in spent {
            let key = script_key(script);
            let s = self.stats.entry(key).or_default();
            s.spent_txo_count += 1;
            s.spent_txo_sum = s.spent_txo_sum.wrapping_add(*value);
            touched.push(key);
        }
        for (script, value) in outputs {
            let key = script_key(script);
            let s = self.stats.entry(key).or_default();
            s.funded_txo_count += 1;
            s.funded_txo_sum = s.funded_txo_sum.wrapping_add(*value);
            touched.push(key);
        }
        touched.sort_unstable();
        touched.dedup();
        for key in touched {
            self.stats.entry(key).or_default().tx_count += 1;
            self.history.entry(key).or_default().push(pos);
        }
    }
}

/// Key-value rows of one table, as [`Store::dump`] returns them.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// The sled-backed index. Cheap to clone; one indexer writes, any number of readers read.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    /// The one tree all tables live in.
    tree: Tree,
    /// Where a commit too big for one batch is journaled.
    journal: Tree,
    /// txid → position.
    txs: Arc<TxIndex>,
    /// Commits of at least this many writes use the journal; [`JOURNAL_FROM_WRITES`] but
    /// in tests.
    journal_from: usize,
}

/// The writes of one commit, by key (a later write of a key replaces an earlier one);
/// `None` removes the key.
#[derive(Default)]
struct Writes {
    ops: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Writes {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.ops.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, key: &[u8]) {
        self.ops.insert(key.to_vec(), None);
    }

    /// A script's record; an empty one (a script no block touches any more) goes.
    fn put_script(&mut self, script: &ScriptKey, record: &ScriptRecord) {
        if record.is_empty() {
            self.delete(&script_row_key(script));
        } else {
            self.put(&script_row_key(script), &record.encode());
        }
    }

    /// The journal record of these writes followed by the tip's: per write a flag (1 put,
    /// 0 remove), the key's length (u32) and key, then for a put the value's length (u32)
    /// and value.
    fn journal(&self, tip: Op<'_>) -> Vec<u8> {
        let size: usize = self
            .ops
            .iter()
            .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let mut journal = Vec::with_capacity(size + 9 + META_TIP.len() + 36);
        let ops = self.ops.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
        for (key, value) in ops.chain(std::iter::once(tip)) {
            journal.push(u8::from(value.is_some()));
            journal.extend_from_slice(&(key.len() as u32).to_be_bytes());
            journal.extend_from_slice(key);
            if let Some(value) = value {
                journal.extend_from_slice(&(value.len() as u32).to_be_bytes());
                journal.extend_from_slice(value);
            }
        }
        journal
    }
}

/// One write: a key and its new value, `None` to remove it.
type Op<'a> = (&'a [u8], Option<&'a [u8]>);

/// The writes of a journal record, `None` when it is malformed.
fn decode_journal(v: &[u8]) -> Option<Vec<Op<'_>>> {
    let mut ops = Vec::new();
    let mut at = 0;
    let take = |at: &mut usize| -> Option<&[u8]> {
        let len = u32_at(v, *at)? as usize;
        let bytes = v.get(*at + 4..(*at + 4).checked_add(len)?)?;
        *at += 4 + len;
        Some(bytes)
    };
    while at < v.len() {
        let put = match v[at] {
            0 => false,
            1 => true,
            _ => return None,
        };
        at += 1;
        let key = take(&mut at)?;
        let value = if put { Some(take(&mut at)?) } else { None };
        ops.push((key, value));
    }
    Some(ops)
}

/// An output a run may still spend: created in this run, or read from the index.
#[derive(Debug, Clone, Copy)]
struct Prevout {
    funding: TxPosition,
    script: [u8; 32],
    value: u64,
}

/// A script as a run changes it.
struct ScriptState {
    record: ScriptRecord,
    /// The script's last history chunk when it is not full, then the entries the run adds:
    /// written back as chunks of [`HISTORY_CHUNK`], the first under its old key.
    history: Vec<TxPosition>,
}

/// A run of blocks being staged for one commit. Outputs it creates stay in `created` until
/// the commit, so those spent within the run are never written; each script it touches is
/// read once and written once.
#[derive(Default)]
struct Run {
    writes: Writes,
    /// The run's transactions, for the [`TxIndex`].
    txs: Vec<TxEntry>,
    /// Outputs created in this run and not yet spent.
    created: HashMap<OutPoint, Prevout>,
    /// The scripts the run touches, as they stand after it.
    scripts: HashMap<ScriptKey, ScriptState>,
    /// Block output records read to resolve inputs, and their total size.
    outputs: HashMap<u32, IVec>,
    outputs_bytes: usize,
    /// What the run before left, read before the tree.
    inherited: Inherited,
}

/// What a run leaves for the next while its commit may be under way (see [`RunPipeline`]):
/// the scripts it touched, as the tree holds them after the commit, and its outputs still
/// unspent. The next run reads these instead of the tree, which may hold part of that commit.
/// Each entry is taken at the first use: a later run reads the tree again.
#[derive(Default)]
struct Inherited {
    scripts: HashMap<ScriptKey, ScriptState>,
    created: HashMap<OutPoint, Prevout>,
}

impl Store {
    /// Opens (or creates) the index under `path` for coin id `coin`, refusing an index of
    /// another schema version or coin.
    pub fn open(path: &Path, coin: &str, cache_bytes: u64) -> Result<Self, Error> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(200));
        let db = rot_ops::sled_open::open_when_unlocked(&config)?;
        let tree: Tree = (*db).clone();
        let schema_error = |version: u32| {
            Error::Schema(format!(
                "index at {} has schema version {version}, this rot-server uses {SCHEMA_VERSION}; \
                 move it away to reindex",
                path.display()
            ))
        };
        match (tree.get(META_SCHEMA)?, tree.get(META_COIN)?) {
            (None, _) => {
                if db.tree_names().iter().any(|n| n == LEGACY_META_TREE) {
                    return Err(schema_error(1));
                }
                tree.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                tree.insert(META_COIN, coin.as_bytes())?;
                tree.flush()?;
            }
            (Some(version), stored_coin) => {
                let version = u32_at(&version, 0).ok_or_else(|| corrupt("schema version"))?;
                if version != SCHEMA_VERSION {
                    return Err(schema_error(version));
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
        let journal = db.open_tree(JOURNAL_TREE)?;
        let txs = Arc::new(TxIndex::open(&path.join(TX_INDEX_FILE))?);
        let store = Self {
            db,
            tree,
            journal,
            txs,
            journal_from: JOURNAL_FROM_WRITES,
        };
        store.finish_journal()?;
        store.complete_tx_index()?;
        Ok(store)
    }

    /// Enters the blocks above the [`TxIndex`]'s complete height (those a crash may have
    /// kept it from holding on disk, or all of them for a new table) and syncs it.
    fn complete_tx_index(&self) -> Result<(), Error> {
        let tip = self.tip()?;
        let from = self.txs.complete().map_or(0, |c| c + 1);
        let to = tip.map_or(0, |t| t.height + 1);
        if from < to {
            tracing::info!(
                from,
                to = to - 1,
                "entering blocks into the transaction table"
            );
        }
        let mut entries = Vec::new();
        for height in from..to {
            let block = self
                .block_at(height)?
                .ok_or_else(|| corrupt("block below the tip"))?;
            let tag = block_tag(&block.hash);
            entries.extend(
                (0u32..)
                    .zip(self.block_txids(height)?)
                    .map(|(pos, txid)| TxEntry {
                        txid,
                        at: TxPosition { height, pos },
                        block: tag,
                    }),
            );
            if entries.len() >= TX_INDEX_CATCH_UP_BATCH || height + 1 == to {
                self.txs.enter(&entries)?;
                entries.clear();
            }
        }
        self.txs.synced_through(tip.map(|t| t.height), true)
    }

    /// The indexed tip, or `None` for an empty index.
    pub fn tip(&self) -> Result<Option<Tip>, Error> {
        self.tree
            .get(META_TIP)?
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
        self.tree
            .get(height_key(BLOCK, height))?
            .map(|v| BlockRecord::decode(&v).ok_or_else(|| corrupt("block record")))
            .transpose()
    }

    /// Height of a best-chain block.
    pub fn height_of(&self, hash: &Hash256) -> Result<Option<u32>, Error> {
        self.tree
            .get(hash_key(BLOCK_HEIGHT, hash))?
            .map(|v| u32_at(&v, 0).ok_or_else(|| corrupt("block height")))
            .transpose()
    }

    /// Txids of the best-chain block at `height`.
    pub fn block_txids(&self, height: u32) -> Result<Vec<Hash256>, Error> {
        let v = self.txids_record(height)?.unwrap_or_default();
        Ok(v.chunks_exact(32).filter_map(|c| hash_at(c, 0)).collect())
    }

    fn txids_record(&self, height: u32) -> Result<Option<IVec>, Error> {
        Ok(self.tree.get(height_key(BLOCK_TXIDS, height))?)
    }

    /// The txid at a position of the best chain, from the block's txids record.
    fn txid_at(&self, at: TxPosition) -> Result<Hash256, Error> {
        self.txids_record(at.height)?
            .and_then(|v| hash_at(&v, at.pos as usize * 32))
            .ok_or_else(|| corrupt("transaction position"))
    }

    /// Where a confirmed transaction is: of the [`TxIndex`]'s hints, the latest one whose
    /// block is in the index (a txid twice in the chain, as pre-BIP 30 coinbases, is the
    /// later transaction).
    pub fn tx_position(&self, txid: &Hash256) -> Result<Option<TxPosition>, Error> {
        let mut found = None;
        for hint in self.txs.hints(txid)? {
            if found.is_some_and(|at| at >= hint.at) {
                continue;
            }
            if self
                .block_at(hint.at.height)?
                .is_some_and(|block| block_tag(&block.hash) == hint.block)
            {
                found = Some(hint.at);
            }
        }
        Ok(found)
    }

    /// An output of the best chain, spent or not: script hash and value.
    fn output_at(&self, at: TxPosition, vout: u32) -> Result<Option<([u8; 32], u64)>, Error> {
        Ok(self
            .tree
            .get(height_key(BLOCK_OUTPUTS, at.height))?
            .and_then(|v| OutputsRecord::output(&v, at.pos, vout)))
    }

    /// An unspent output.
    pub fn unspent(&self, outpoint: &OutPoint) -> Result<Option<StoredOutput>, Error> {
        let Some(at) = self.tx_position(&outpoint.txid)? else {
            return Ok(None);
        };
        let Some((script, value)) = self.output_at(at, outpoint.vout)? else {
            return Ok(None);
        };
        let found = self.holds_unspent(&script_key(&script), at, outpoint.vout)?;
        Ok(found.then_some(StoredOutput {
            script,
            value,
            height: at.height,
        }))
    }

    /// Whether the record of `script` lists output `vout` of the transaction at `at`.
    fn holds_unspent(&self, script: &ScriptKey, at: TxPosition, vout: u32) -> Result<bool, Error> {
        let Some(row) = self.tree.get(script_row_key(script))? else {
            return Ok(false);
        };
        // Entries are fixed-size and sorted by their first 12 bytes (position, output index).
        let mut wanted = [0u8; 12];
        wanted[..8].copy_from_slice(&at.encode());
        wanted[8..].copy_from_slice(&vout.to_be_bytes());
        let entries = row
            .get(STATS_LEN..)
            .filter(|rest| rest.len() % UNSPENT_LEN == 0)
            .ok_or_else(|| corrupt("script record"))?;
        let (entries, _) = entries.as_chunks::<UNSPENT_LEN>();
        Ok(entries
            .binary_search_by(|e| e[..12].cmp(&wanted[..]))
            .is_ok())
    }

    /// Who spent an output in the best chain.
    ///
    /// No row per input says so: the spender is in the history of the output's script, so
    /// the entries after the funding transaction are looked up, oldest first, in their
    /// blocks' undo records until one spends the output. An unspent output, the common
    /// answer, is known from the script's record without that walk.
    pub fn spend(&self, outpoint: &OutPoint) -> Result<Option<Spend>, Error> {
        let Some(funding) = self.tx_position(&outpoint.txid)? else {
            return Ok(None);
        };
        let Some((script, _)) = self.output_at(funding, outpoint.vout)? else {
            return Ok(None);
        };
        let script = script_key(&script);
        if self.holds_unspent(&script, funding, outpoint.vout)? {
            return Ok(None);
        }
        // The chunk holding the funding entry starts at or before it.
        let from = match self
            .tree
            .range(
                history_key(&script, TxPosition { height: 0, pos: 0 })
                    ..=history_key(&script, funding),
            )
            .next_back()
        {
            Some(row) => row?.0,
            None => return Ok(None),
        };
        let mut undo: Option<(u32, Vec<UndoEntry>)> = None;
        for row in self
            .tree
            .range(from..=IVec::from(&history_end(&script)[..]))
        {
            let (_, chunk) = row?;
            let entries = decode_history(&chunk).ok_or_else(|| corrupt("history chunk"))?;
            for at in entries.into_iter().filter(|&at| at > funding) {
                let record = match &undo {
                    Some((height, record)) if *height == at.height => record,
                    _ => {
                        let record = self
                            .tree
                            .get(height_key(UNDO, at.height))?
                            .and_then(|v| UndoEntry::decode_all(&v))
                            .ok_or_else(|| corrupt("undo record"))?;
                        &undo.insert((at.height, record)).1
                    }
                };
                // A transaction's entries are together, one per input in input order (a
                // valid chain's inputs all resolve).
                let first = record.partition_point(|e| e.spender < at.pos);
                let inputs = record[first..].iter().take_while(|e| e.spender == at.pos);
                if let Some(vin) = inputs
                    .into_iter()
                    .position(|e| e.funding == funding && e.vout == outpoint.vout)
                {
                    return Ok(Some(Spend {
                        txid: self.txid_at(at)?,
                        vin: vin as u32,
                        height: at.height,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Confirmed totals of a script.
    pub fn stats(&self, script: &[u8; 32]) -> Result<ScriptStats, Error> {
        Ok(match self.tree.get(script_row_key(&script_key(script)))? {
            Some(v) => decode_stats(&v).ok_or_else(|| corrupt("script record"))?,
            None => ScriptStats::default(),
        })
    }

    fn script_record(&self, script: &ScriptKey) -> Result<ScriptRecord, Error> {
        Ok(match self.tree.get(script_row_key(script))? {
            Some(v) => ScriptRecord::decode(&v).ok_or_else(|| corrupt("script record"))?,
            None => ScriptRecord::default(),
        })
    }

    /// The history chunks of `script` with keys in `range`, newest first.
    fn history_chunks_back(
        &self,
        script: &ScriptKey,
        end: Bound<HistoryKey>,
    ) -> impl Iterator<Item = Result<(IVec, Vec<TxPosition>), Error>> + '_ {
        let start = Bound::Included(history_key(script, TxPosition { height: 0, pos: 0 }));
        self.tree.range((start, end)).rev().map(|row| {
            let (k, v) = row?;
            let entries = decode_history(&v)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| corrupt("history chunk"))?;
            Ok((k, entries))
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
        let script = script_key(script);
        // A chunk starting before `before` may hold later entries too: they are skipped.
        let end = match before {
            Some(b) => Bound::Excluded(history_key(&script, b)),
            None => Bound::Included(history_end(&script)),
        };
        let mut out = Vec::new();
        let mut txids: Option<(u32, IVec)> = None;
        for chunk in self.history_chunks_back(&script, end) {
            if out.len() >= limit {
                break;
            }
            let (_, entries) = chunk?;
            for at in entries.into_iter().rev() {
                if before.is_some_and(|b| at >= b) {
                    continue;
                }
                if out.len() >= limit {
                    break;
                }
                let record = match &txids {
                    Some((height, record)) if *height == at.height => record,
                    _ => {
                        let record = self
                            .txids_record(at.height)?
                            .ok_or_else(|| corrupt("history of a missing block"))?;
                        &txids.insert((at.height, record)).1
                    }
                };
                let txid = hash_at(record, at.pos as usize * 32)
                    .ok_or_else(|| corrupt("history chunk"))?;
                out.push((at.height, txid));
            }
        }
        Ok(out)
    }

    /// Confirmed unspent outputs of a script, oldest first.
    pub fn script_utxos(&self, script: &[u8; 32]) -> Result<Vec<(OutPoint, u64, u32)>, Error> {
        let Some(row) = self.tree.get(script_row_key(&script_key(script)))? else {
            return Ok(Vec::new());
        };
        unspent_entries(&row)
            .ok_or_else(|| corrupt("script record"))?
            .map(|e| {
                let (at, vout, value, txid) = e.ok_or_else(|| corrupt("script record"))?;
                Ok((OutPoint { txid, vout }, value, at.height))
            })
            .collect()
    }

    /// Applies `blocks` (consecutive, the first on top of the current tip) in one atomic
    /// commit.
    pub fn apply_blocks(&self, blocks: &[IndexedBlock]) -> Result<(), Error> {
        let mut pipeline = RunPipeline::new(self)?;
        for block in blocks {
            pipeline.stage(block)?;
        }
        pipeline.commit()?;
        pipeline.wait()?;
        Ok(())
    }

    /// The writes of a staged run and its transactions, and what it leaves for the next run.
    fn seal(&self, run: Run) -> (Writes, Vec<TxEntry>, Inherited) {
        let Run {
            mut writes,
            txs,
            mut scripts,
            created,
            ..
        } = run;
        for (script, state) in &mut scripts {
            writes.put_script(script, &state.record);
            for chunk in state.history.chunks(HISTORY_CHUNK) {
                writes.put(&history_key(script, chunk[0]), &encode_history(chunk));
            }
            // The next run sees the last chunk while it is not full, as read from the tree.
            let full_chunks = state.history.len() - state.history.len() % HISTORY_CHUNK;
            state.history.drain(..full_chunks);
        }
        (writes, txs, Inherited { scripts, created })
    }

    /// The state of `script` in `run`, read from the index the first time the run touches it.
    fn script_state<'r>(
        &self,
        run: &'r mut Run,
        script: ScriptKey,
    ) -> Result<&'r mut ScriptState, Error> {
        Ok(match run.scripts.entry(script) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                if let Some(state) = run.inherited.scripts.remove(&script) {
                    return Ok(e.insert(state));
                }
                let record = self.script_record(&script)?;
                let end = Bound::Included(history_end(&script));
                let history = match self.history_chunks_back(&script, end).next() {
                    Some(chunk) => {
                        let (_, entries) = chunk?;
                        if entries.len() < HISTORY_CHUNK {
                            entries
                        } else {
                            Vec::new()
                        }
                    }
                    None => Vec::new(),
                };
                e.insert(ScriptState { record, history })
            }
        })
    }

    /// The output `outpoint` spends, if the chain so far holds it unspent.
    fn resolve(&self, run: &mut Run, outpoint: &OutPoint) -> Result<Option<Prevout>, Error> {
        if let Some(out) = run.created.remove(outpoint) {
            return Ok(Some(out));
        }
        if let Some(out) = run.inherited.created.remove(outpoint) {
            return Ok(Some(out));
        }
        // The node validated the chain, so an output of an earlier run that its
        // transaction is known for is unspent: no need to read the script's record for it.
        let Some(funding) = self.tx_position(&outpoint.txid)? else {
            return Ok(None);
        };
        let record = match run.outputs.get(&funding.height) {
            Some(record) => record.clone(),
            None => {
                let Some(record) = self.tree.get(height_key(BLOCK_OUTPUTS, funding.height))? else {
                    return Err(corrupt("outputs of an indexed block"));
                };
                if run.outputs_bytes + record.len() > OUTPUTS_CACHE_BYTES {
                    run.outputs.clear();
                    run.outputs_bytes = 0;
                }
                run.outputs_bytes += record.len();
                run.outputs.insert(funding.height, record.clone());
                record
            }
        };
        let Some((script, value)) = OutputsRecord::output(&record, funding.pos, outpoint.vout)
        else {
            return Ok(None);
        };
        Ok(Some(Prevout {
            funding,
            script,
            value,
        }))
    }

    fn stage_block(&self, run: &mut Run, block: &IndexedBlock) -> Result<(), Error> {
        let h = block.height;
        let mut effects = BlockEffects::default();
        let mut undo = Vec::new();
        let mut txids = Vec::with_capacity(block.txs.len() * 32);
        let mut spent = Vec::new();
        let mut outputs = Vec::new();
        let tag = block_tag(&block.hash);

        for (pos, tx) in (0u32..).zip(&block.txs) {
            let here = TxPosition { height: h, pos };
            txids.extend_from_slice(tx.txid.as_bytes());
            run.txs.push(TxEntry {
                txid: tx.txid,
                at: here,
                block: tag,
            });

            spent.clear();
            for outpoint in &tx.inputs {
                let Some(prev) = self.resolve(run, outpoint)? else {
                    // A valid chain never spends an unknown output; keep indexing the rest.
                    tracing::warn!(%outpoint.txid, outpoint.vout, height = h, "input spends an output the index does not hold");
                    continue;
                };
                let entry = UndoEntry {
                    spender: pos,
                    funding: prev.funding,
                    vout: outpoint.vout,
                };
                undo.extend_from_slice(&entry.encode());
                self.script_state(run, script_key(&prev.script))?
                    .record
                    .unspent
                    .remove(&(prev.funding, outpoint.vout));
                spent.push((prev.script, prev.value));
            }

            outputs.clear();
            for (vout, output) in (0u32..).zip(&tx.outputs) {
                outputs.push((output.script, output.value));
                if output.spendable {
                    let out = Prevout {
                        funding: here,
                        script: output.script,
                        value: output.value,
                    };
                    run.created.insert(
                        OutPoint {
                            txid: tx.txid,
                            vout,
                        },
                        out,
                    );
                    self.script_state(run, script_key(&output.script))?
                        .record
                        .unspent
                        .insert((here, vout), (output.value, tx.txid));
                }
            }
            effects.add_tx(pos, &spent, &outputs);
        }

        for (script, delta) in effects.stats {
            add_stats(&mut self.script_state(run, script)?.record.stats, &delta);
        }
        for (script, positions) in effects.history {
            let state = self.script_state(run, script)?;
            state.history.extend(
                positions
                    .into_iter()
                    .map(|pos| TxPosition { height: h, pos }),
            );
        }
        let record = BlockRecord {
            hash: block.hash,
            header: block.header,
            tx_count: block.txs.len() as u32,
            size: block.size,
            weight: block.weight,
        };
        run.writes.put(&height_key(BLOCK, h), &record.encode());
        run.writes
            .put(&hash_key(BLOCK_HEIGHT, &block.hash), &h.to_be_bytes());
        run.writes.put(&height_key(BLOCK_TXIDS, h), &txids);
        run.writes.put(
            &height_key(BLOCK_OUTPUTS, h),
            &OutputsRecord::encode(&block.txs),
        );
        run.writes.put(&height_key(UNDO, h), &undo);
        Ok(())
    }

    /// Undoes the tip block, from its undo data.
    pub fn undo_tip(&self) -> Result<Option<Tip>, Error> {
        let tip = self
            .tip()?
            .ok_or_else(|| Error::Index("nothing to undo: the index is empty".into()))?;
        let h = tip.height;
        let undo = self
            .tree
            .get(height_key(UNDO, h))?
            .ok_or_else(|| corrupt("undo record of the tip block"))?;
        let undo = UndoEntry::decode_all(&undo).ok_or_else(|| corrupt("undo record"))?;
        let outputs = self
            .tree
            .get(height_key(BLOCK_OUTPUTS, h))?
            .ok_or_else(|| corrupt("outputs of the tip block"))?;
        let tx_count =
            OutputsRecord::tx_count(&outputs).ok_or_else(|| corrupt("outputs record"))?;

        let mut writes = Writes::default();
        let mut effects = BlockEffects::default();
        let mut records: HashMap<ScriptKey, ScriptRecord> = HashMap::new();
        let mut entries = undo.iter().peekable();
        let mut spent = Vec::new();
        for pos in 0..tx_count {
            let here = TxPosition { height: h, pos };
            spent.clear();
            while let Some(entry) = entries.next_if(|e| e.spender == pos) {
                let (script, value) = self
                    .output_at(entry.funding, entry.vout)?
                    .ok_or_else(|| corrupt("output named by undo data"))?;
                // Outputs of this block it spent itself were never unspent.
                if entry.funding.height < h {
                    let txid = self.txid_at(entry.funding)?;
                    self.record_in(&mut records, script_key(&script))?
                        .unspent
                        .insert((entry.funding, entry.vout), (value, txid));
                }
                spent.push((script, value));
            }
            let created = OutputsRecord::tx_outputs(&outputs, pos)
                .ok_or_else(|| corrupt("outputs record"))?;
            for (vout, (script, _)) in (0u32..).zip(&created) {
                self.record_in(&mut records, script_key(script))?
                    .unspent
                    .remove(&(here, vout));
            }
            effects.add_tx(pos, &spent, &created);
        }
        if entries.next().is_some() {
            return Err(corrupt("undo record out of block order"));
        }
        for (script, delta) in &effects.stats {
            sub_stats(&mut self.record_in(&mut records, *script)?.stats, delta);
        }
        for (script, record) in &records {
            writes.put_script(script, record);
        }
        for script in effects.history.keys() {
            self.undo_history(&mut writes, script, h)?;
        }
        for table in [BLOCK, BLOCK_TXIDS, BLOCK_OUTPUTS, UNDO] {
            writes.delete(&height_key(table, h));
        }
        writes.delete(&hash_key(BLOCK_HEIGHT, &tip.hash));
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
            None => None,
        };
        // The block's entries stay in the TxIndex: its hints of a block no longer in the
        // index are not believed.
        self.txs.undoing(h)?;
        self.commit(writes, new_tip, &[])?;
        Ok(new_tip)
    }

    /// The record of `script` in `records`, read from the index when not there yet.
    fn record_in<'m>(
        &self,
        records: &'m mut HashMap<ScriptKey, ScriptRecord>,
        script: ScriptKey,
    ) -> Result<&'m mut ScriptRecord, Error> {
        Ok(match records.entry(script) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.script_record(&script)?),
        })
    }

    /// Takes the entries of the tip block `h` off the end of `script`'s history: the last
    /// chunks lose them, and a chunk left empty goes.
    fn undo_history(&self, writes: &mut Writes, script: &ScriptKey, h: u32) -> Result<(), Error> {
        let mut end = Bound::Included(history_end(script));
        let mut removed_a_chunk = false;
        loop {
            let Some(chunk) = self.history_chunks_back(script, end).next() else {
                return if removed_a_chunk {
                    Ok(())
                } else {
                    Err(corrupt("history of an undone block"))
                };
            };
            let (key, mut entries) = chunk?;
            while entries.last().is_some_and(|e| e.height == h) {
                entries.pop();
            }
            if !entries.is_empty() {
                writes.put(&key, &encode_history(&entries));
                return Ok(());
            }
            // All of the chunk was block h's; the chunk before may end with more of it.
            writes.delete(&key);
            removed_a_chunk = true;
            let key: HistoryKey = key
                .as_ref()
                .try_into()
                .map_err(|_| corrupt("history key"))?;
            end = Bound::Excluded(key);
        }
    }

    /// Writes `writes` and the new tip, all or nothing.
    ///
    /// A commit of fewer than [`Store::journal_from`] writes is one `apply_batch`. A bigger
    /// one is first written whole as one journal record, then applied key by key on
    /// [`WRITE_THREADS`] threads, and last the tip and the journal's removal in one batch;
    /// [`Store::open`] finishes a journal a crash interrupted. Why: sled frees no tree node
    /// a batch replaces until the batch ends, and a batch holds a lock that keeps other
    /// writers out, so a batch per run of thousands of transactions took hundreds of MB and
    /// one core. Readers may see part of such a commit before its tip; they see the tip
    /// only with all of it.
    ///
    /// `txs` go into the [`TxIndex`] first, so that a reader who sees the tip finds them.
    fn commit(&self, writes: Writes, tip: Option<Tip>, txs: &[TxEntry]) -> Result<(), Error> {
        self.txs.enter(txs)?;
        self.write_with_tip(writes, tip)?;
        self.txs.synced_through(tip.map(|t| t.height), false)
    }

    fn write_with_tip(&self, writes: Writes, tip: Option<Tip>) -> Result<(), Error> {
        let tip = tip.as_ref().map(encode_tip);
        let tip = (META_TIP, tip.as_ref().map(|v| &v[..]));
        let ops: Vec<_> = writes
            .ops
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        if ops.len() >= self.journal_from {
            self.journal.insert(JOURNAL_KEY, writes.journal(tip))?;
            self.write_in_parallel(&ops)?;
            self.end_commit(&[tip])?;
            // A crash before this line finishes the commit again at open: harmless, as
            // nothing was written after it.
            self.journal.remove(JOURNAL_KEY)?;
            Ok(())
        } else {
            self.end_commit(&[ops.as_slice(), &[tip]].concat())
        }
    }

    /// Writes `ops` key by key, spread over [`WRITE_THREADS`] threads.
    fn write_in_parallel(&self, ops: &[Op<'_>]) -> Result<(), Error> {
        let part = ops.len().div_ceil(WRITE_THREADS).max(1);
        std::thread::scope(|scope| {
            let writers: Vec<_> = ops
                .chunks(part)
                .map(|ops| {
                    scope.spawn(move || -> Result<(), Error> {
                        for (n, (key, value)) in ops.iter().enumerate() {
                            match value {
                                Some(value) => self.tree.insert(key, *value)?,
                                None => self.tree.remove(key)?,
                            };
                            if n % GARBAGE_EVERY_WRITES == 0 {
                                reclaim_garbage();
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            writers.into_iter().try_for_each(|writer| {
                writer
                    .join()
                    .map_err(|_| Error::Index("an index write thread panicked".into()))?
            })
        })
    }

    /// Applies `ops` in one batch.
    fn end_commit(&self, ops: &[Op<'_>]) -> Result<(), Error> {
        let mut batch = Batch::default();
        for (key, value) in ops {
            match value {
                Some(value) => batch.insert(*key, *value),
                None => batch.remove(*key),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Finishes the commit a crash interrupted, if any.
    fn finish_journal(&self) -> Result<(), Error> {
        let Some(journal) = self.journal.get(JOURNAL_KEY)? else {
            return Ok(());
        };
        let ops = decode_journal(&journal).ok_or_else(|| corrupt("journal"))?;
        tracing::info!(
            writes = ops.len(),
            "finishing the index commit an earlier run left unfinished"
        );
        // No reader yet, so the tip (the last write) may land with the others.
        self.write_in_parallel(&ops)?;
        self.journal.remove(JOURNAL_KEY)?;
        Ok(())
    }

    /// Waits until everything written so far is on disk.
    pub async fn flush(&self) -> Result<(), Error> {
        // sled's own flush_async can wait forever when nothing is dirty; flush on the
        // blocking pool instead.
        // The TxIndex is synced by the writer only (see `TxIndex::synced_through`): a block
        // being undone meanwhile could otherwise be claimed complete.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| Error::Index(format!("flush task failed: {e}")))??;
        Ok(())
    }

    /// Every key and value of every table, for tests that compare two indexes; `txs` is what
    /// [`Store::tx_position`] answers for each txid of the chain, by txid.
    pub fn dump(&self) -> Result<BTreeMap<&'static str, Rows>, Error> {
        let mut out: BTreeMap<&'static str, Rows> =
            TABLES.iter().map(|&(_, name)| (name, Vec::new())).collect();
        let mut txs = BTreeMap::new();
        for row in self.tree.iter() {
            let (k, v) = row?;
            let Some(&(table, name)) = TABLES.iter().find(|(table, _)| k.first() == Some(table))
            else {
                continue;
            };
            if table == BLOCK_TXIDS {
                for txid in v.chunks_exact(32).filter_map(|c| hash_at(c, 0)) {
                    let at = self.tx_position(&txid)?.map(|at| at.encode().to_vec());
                    txs.insert(txid.as_bytes().to_vec(), at.unwrap_or_default());
                }
            }
            out.entry(name).or_default().push((k.to_vec(), v.to_vec()));
        }
        out.insert("txs", txs.into_iter().collect());
        Ok(out)
    }
}

/// Applies consecutive blocks in runs, each committed atomically by [`Store::commit`] on a
/// thread of its own while the next run is staged.
///
/// Why: a run's commit (sled inserts on two threads) and the staging of the next (reading
/// scripts and resolving inputs on one) each took about half of the indexing time, one after
/// the other. The next run reads what the run in commit changed from its [`Inherited`]
/// state, never from the tree, so it needs no part of that commit; commits stay one at a
/// time and in order, so a crash still leaves the index at a block boundary.
pub struct RunPipeline {
    store: Store,
    run: Run,
    next_height: u32,
    /// The last block staged into `run`, and the run's size.
    staged: Option<Tip>,
    staged_blocks: usize,
    staged_txs: usize,
    /// The commit under way and the tip it writes.
    committing: Option<(std::thread::JoinHandle<Result<(), Error>>, Tip)>,
}

impl std::fmt::Debug for RunPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunPipeline")
            .field("next_height", &self.next_height)
            .field("staged_blocks", &self.staged_blocks)
            .field("committing", &self.committing.as_ref().map(|(_, tip)| tip))
            .finish_non_exhaustive()
    }
}

impl RunPipeline {
    /// A pipeline appending to `store`'s tip. Only one may write to a store at a time.
    pub fn new(store: &Store) -> Result<Self, Error> {
        Ok(Self {
            store: store.clone(),
            run: Run::default(),
            next_height: store.tip()?.map_or(0, |t| t.height + 1),
            staged: None,
            staged_blocks: 0,
            staged_txs: 0,
            committing: None,
        })
    }

    /// Adds `block`, the next after those staged or committed, to the run being staged.
    pub fn stage(&mut self, block: &IndexedBlock) -> Result<(), Error> {
        if block.height != self.next_height {
            return Err(Error::Index(format!(
                "block {} at height {} does not extend the index (expected height {})",
                block.hash, block.height, self.next_height
            )));
        }
        self.store.stage_block(&mut self.run, block)?;
        self.next_height += 1;
        self.staged = Some(Tip {
            height: block.height,
            hash: block.hash,
        });
        self.staged_blocks += 1;
        self.staged_txs += block.txs.len();
        Ok(())
    }

    /// Blocks and transactions in the run being staged.
    pub fn staged(&self) -> (usize, usize) {
        (self.staged_blocks, self.staged_txs)
    }

    /// Starts the commit of the staged run (if any), once the commit before it is done;
    /// returns the tip that one reached.
    pub fn commit(&mut self) -> Result<Option<Tip>, Error> {
        let Some(tip) = self.staged.take() else {
            return Ok(None);
        };
        let run = std::mem::take(&mut self.run);
        let (writes, txs, inherited) = self.store.seal(run);
        self.run.inherited = inherited;
        self.staged_blocks = 0;
        self.staged_txs = 0;
        let committed = self.wait()?;
        let store = self.store.clone();
        let commit = std::thread::Builder::new()
            .name("index-commit".into())
            .spawn(move || store.commit(writes, Some(tip), &txs))
            .map_err(|e| Error::Index(format!("cannot start an index commit thread: {e}")))?;
        self.committing = Some((commit, tip));
        Ok(committed)
    }

    /// Waits for the commit under way, if any; returns the tip it reached.
    pub fn wait(&mut self) -> Result<Option<Tip>, Error> {
        let Some((commit, tip)) = self.committing.take() else {
            return Ok(None);
        };
        commit
            .join()
            .map_err(|_| Error::Index("an index commit thread panicked".into()))??;
        Ok(Some(tip))
    }
}

impl Drop for RunPipeline {
    /// A commit is never left running: another writer could start on the tip before it.
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            tracing::warn!(error = %e, "index commit failed");
        }
    }
}

/// Writes between two calls of [`reclaim_garbage`] on a write thread.
const GARBAGE_EVERY_WRITES: usize = 256;

/// Frees tree nodes that writes replaced. sled hands each replaced node to the crossbeam
/// epoch collector, which frees only a few per pin of a thread; when one thread writes
/// much, its garbage piles up faster than that (gigabytes over a catch-up). Each flush
/// collects up to a few hundred nodes.
fn reclaim_garbage() {
    for _ in 0..4 {
        crossbeam_epoch::pin().flush();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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
        store.apply_blocks(&chain()).unwrap();
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
    fn spenders_are_found_from_history_and_undo_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        let mut blocks = chain();
        // Block 3: tx 5 spends B's output (tx 3) and A's (tx 10): input 1 is A's.
        blocks.push(block(3, vec![tx(5, &[(3, 0), (10, 0)], &[(0xD, 70)])]));
        store.apply_blocks(&blocks).unwrap();
        let spend = |txid: u8, vout: u32| {
            store
                .spend(&OutPoint {
                    txid: h(txid),
                    vout,
                })
                .unwrap()
                .map(|s| (s.txid, s.vin, s.height))
        };
        assert_eq!(spend(1, 0), Some((h(2), 0, 1)));
        assert_eq!(spend(1, 1), Some((h(4), 0, 2)));
        assert_eq!(spend(2, 0), Some((h(3), 0, 1)));
        assert_eq!(spend(3, 0), Some((h(5), 0, 3)));
        assert_eq!(spend(10, 0), Some((h(5), 1, 3)));
        for (txid, vout) in [(2, 1), (4, 0), (5, 0), (11, 0), (1, 2), (99, 0)] {
            assert_eq!(spend(txid, vout), None, "{txid}:{vout}");
        }
        store.undo_tip().unwrap();
        assert_eq!(spend(10, 0), None);
        assert_eq!(spend(3, 0), None);
        assert_eq!(spend(1, 1), Some((h(4), 0, 2)));

        // A busy script: spenders found across history chunks.
        let busy = open(&dir, "busy");
        let per_block = 25;
        busy.apply_blocks(&busy_chain(8, per_block)).unwrap();
        for i in 0..7 * per_block {
            let found = busy
                .spend(&OutPoint {
                    txid: h(i),
                    vout: 0,
                })
                .unwrap()
                .unwrap();
            assert_eq!(found.txid, h(i + per_block), "{i}");
            assert_eq!(found.height, u32::from(i / per_block) + 1, "{i}");
        }
        assert!(
            busy.spend(&OutPoint {
                txid: h(7 * per_block),
                vout: 0
            })
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn unspendable_outputs_count_in_history_but_are_never_unspent() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        let empty = store.dump().unwrap();
        store
            .apply_blocks(&[block(0, vec![tx(1, &[], &[(0xA, 50), (0x6a, 0)])])])
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
        run.apply_blocks(&chain()).unwrap();
        let single = open(&dir, "single");
        for b in chain() {
            single.apply_blocks(&[b]).unwrap();
        }
        assert_eq!(run.dump().unwrap(), single.dump().unwrap());
    }

    #[test]
    fn undo_restores_exactly_the_earlier_index() {
        let dir = tempfile::tempdir().unwrap();
        let full = open(&dir, "full");
        full.apply_blocks(&chain()).unwrap();
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
        short.apply_blocks(&chain()[..1]).unwrap();
        assert_eq!(full.dump().unwrap(), short.dump().unwrap());
        assert_eq!(full.tip().unwrap(), short.tip().unwrap());

        // Re-applying after the undo gives the same index as never undoing.
        full.apply_blocks(&chain()[1..]).unwrap();
        let again = open(&dir, "again");
        again.apply_blocks(&chain()).unwrap();
        assert_eq!(full.dump().unwrap(), again.dump().unwrap());
    }

    #[test]
    fn transactions_are_found_after_a_reorg_and_when_their_table_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let at = |height, pos| Some(TxPosition { height, pos });
        // Block 2 replaced by one holding tx 4 first and a new coinbase after it.
        let mut replacement = block(
            2,
            vec![chain()[2].txs[1].clone(), tx(12, &[], &[(0xE, 50)])],
        );
        replacement.hash = h(250);
        let mut branch = chain()[..2].to_vec();
        branch.push(replacement);

        let store = open(&dir, "reorg");
        store.apply_blocks(&chain()).unwrap();
        assert_eq!(store.tx_position(&h(4)).unwrap(), at(2, 1));
        store.undo_tip().unwrap();
        assert_eq!(store.tx_position(&h(4)).unwrap(), None);
        store.apply_blocks(&branch[2..]).unwrap();
        assert_eq!(store.tx_position(&h(4)).unwrap(), at(2, 0));
        assert_eq!(store.tx_position(&h(11)).unwrap(), None);
        assert_eq!(store.tx_position(&h(12)).unwrap(), at(2, 1));
        let fresh = open(&dir, "fresh");
        fresh.apply_blocks(&branch).unwrap();
        assert_eq!(store.dump().unwrap(), fresh.dump().unwrap());
        drop(store);

        // Without its table, the store enters every block again at open.
        std::fs::remove_file(dir.path().join("reorg").join(TX_INDEX_FILE)).unwrap();
        let store = open(&dir, "reorg");
        assert_eq!(store.txs.complete(), Some(2));
        assert_eq!(store.dump().unwrap(), fresh.dump().unwrap());
        assert_eq!(store.tx_position(&h(3)).unwrap(), at(1, 2));
    }

    #[test]
    fn refuses_a_block_that_does_not_extend_the_tip() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        assert!(store.apply_blocks(&chain()[1..2]).is_err());
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
    fn undo_entries_round_trip_and_reject_truncation() {
        let entries = vec![
            UndoEntry {
                spender: 1,
                funding: TxPosition { height: 2, pos: 3 },
                vout: 4,
            },
            UndoEntry {
                spender: 5,
                funding: TxPosition { height: 6, pos: 7 },
                vout: 8,
            },
        ];
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        assert_eq!(UndoEntry::decode_all(&bytes), Some(entries));
        for len in 1..bytes.len() {
            if len % UNDO_ENTRY_LEN != 0 {
                assert_eq!(UndoEntry::decode_all(&bytes[..len]), None);
            }
        }
    }

    #[test]
    fn outputs_record_finds_outputs_and_rejects_malformed_records() {
        let txs = chain()[1].txs.clone();
        let record = OutputsRecord::encode(&txs);
        assert_eq!(OutputsRecord::tx_count(&record), Some(3));
        assert_eq!(
            OutputsRecord::output(&record, 1, 1),
            Some((script(0xC), 20))
        );
        assert_eq!(OutputsRecord::output(&record, 1, 2), None);
        assert_eq!(OutputsRecord::output(&record, 3, 0), None);
        assert_eq!(
            OutputsRecord::tx_outputs(&record, 1),
            Some(vec![(script(0xB), 30), (script(0xC), 20)])
        );
        for len in 0..record.len() {
            let cut = &record[..len];
            // Never a panic; at most what the whole record holds.
            for pos in 0..4 {
                let outputs = OutputsRecord::tx_outputs(cut, pos);
                assert!(outputs.is_none() || outputs == OutputsRecord::tx_outputs(&record, pos));
                for vout in 0..3 {
                    let output = OutputsRecord::output(cut, pos, vout);
                    assert!(
                        output.is_none() || output == OutputsRecord::output(&record, pos, vout)
                    );
                }
            }
        }
        // Running counts that go backwards or past the end.
        let mut bad = record.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(OutputsRecord::tx_outputs(&bad, 0), None);
        assert_eq!(OutputsRecord::tx_outputs(&bad, 1), None);
        assert_eq!(OutputsRecord::output(&bad, 1, 0), None);
    }

    #[test]
    fn outputs_spent_within_a_run_leave_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, "a");
        store.apply_blocks(&chain()).unwrap();
        let scripts = &store.dump().unwrap()["scripts"];
        // Left unspent: tx 1's output 1 is spent in block 2; tx 2's output 0 by tx 3.
        let expected: BTreeSet<(Hash256, u32)> =
            [(h(10), 0), (h(2), 1), (h(3), 0), (h(11), 0), (h(4), 0)]
                .into_iter()
                .collect();
        let stored: BTreeSet<(Hash256, u32)> = scripts
            .iter()
            .flat_map(|(_, v)| unspent_entries(v).unwrap().map(Option::unwrap))
            .map(|(_, vout, _, txid)| (txid, vout))
            .collect();
        assert_eq!(stored, expected);
    }

    /// Blocks each paying script 0xE from `per_block` transactions, spending the previous
    /// block's outputs: a history of many chunks, with a block's entries across two chunks.
    fn busy_chain(blocks: u32, per_block: u8) -> Vec<IndexedBlock> {
        (0..blocks)
            .map(|height| {
                let id = |i: u8| ((height * u32::from(per_block)) as u8).wrapping_add(i);
                let txs = (0..per_block)
                    .map(|i| {
                        let inputs: Vec<(u8, u32)> = if height == 0 {
                            Vec::new()
                        } else {
                            vec![(id(i).wrapping_sub(per_block), 0)]
                        };
                        tx(id(i), &inputs, &[(0xE, 10 + u64::from(i))])
                    })
                    .collect();
                block(height, txs)
            })
            .collect()
    }

    #[test]
    fn runs_staged_while_the_one_before_commits_equal_one_run() {
        // Each block spends the one before's outputs, and the script's history crosses
        // chunk boundaries: the next run reads both from what the run before left.
        let chain = busy_chain(8, 25);
        let dir = tempfile::tempdir().unwrap();
        let whole = open(&dir, "whole");
        whole.apply_blocks(&chain).unwrap();
        let piped = open(&dir, "piped");
        let mut pipeline = RunPipeline::new(&piped).unwrap();
        let mut committed = Vec::new();
        for (n, block) in chain.iter().enumerate() {
            pipeline.stage(block).unwrap();
            if [0, 2, 3, 6].contains(&n) {
                committed.extend(pipeline.commit().unwrap());
            }
        }
        committed.extend(pipeline.commit().unwrap());
        committed.extend(pipeline.wait().unwrap());
        let heights: Vec<u32> = committed.iter().map(|t| t.height).collect();
        assert_eq!(heights, [0, 2, 3, 6, 7]);
        assert_eq!(piped.dump().unwrap(), whole.dump().unwrap());
        assert_eq!(piped.tip().unwrap(), whole.tip().unwrap());
        // Staging goes on from the pipeline's height, not the tree's.
        let err = pipeline.stage(&chain[7]).unwrap_err();
        assert!(err.to_string().contains("expected height 8"), "{err}");
    }

    #[test]
    fn script_records_and_history_chunks_reject_malformed_bytes() {
        let mut record = ScriptRecord::default();
        record.stats.tx_count = 2;
        record
            .unspent
            .insert((TxPosition { height: 1, pos: 2 }, 3), (40, h(5)));
        record
            .unspent
            .insert((TxPosition { height: 0, pos: 7 }, 1), (9, h(6)));
        let bytes = record.encode();
        assert_eq!(bytes.len(), STATS_LEN + 2 * UNSPENT_LEN);
        assert_eq!(ScriptRecord::decode(&bytes), Some(record));
        for len in 0..bytes.len() {
            // Never a panic; a cut inside the stats or an entry is refused.
            let cut = ScriptRecord::decode(&bytes[..len]);
            let whole_entries = len >= STATS_LEN && (len - STATS_LEN).is_multiple_of(UNSPENT_LEN);
            assert_eq!(cut.is_some(), whole_entries, "{len}");
        }
        let entries = vec![
            TxPosition { height: 1, pos: 2 },
            TxPosition { height: 3, pos: 4 },
        ];
        let chunk = encode_history(&entries);
        assert_eq!(decode_history(&chunk), Some(entries));
        for len in 1..chunk.len() {
            assert_eq!(
                decode_history(&chunk[..len]).is_some(),
                len.is_multiple_of(8),
                "{len}"
            );
        }
    }

    #[test]
    fn history_chunks_page_and_undo_exactly() {
        let per_block = 25;
        let chain = busy_chain(8, per_block);
        let dir = tempfile::tempdir().unwrap();
        let run = open(&dir, "run");
        run.apply_blocks(&chain).unwrap();
        let single = open(&dir, "single");
        for b in &chain {
            single.apply_blocks(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(run.dump().unwrap(), single.dump().unwrap());
        let chunks = run.dump().unwrap()["history"].len();
        assert_eq!(chunks, (8 * usize::from(per_block)).div_ceil(HISTORY_CHUNK));

        // Newest first, paged across chunk boundaries.
        let all = run.history(&script(0xE), None, usize::MAX).unwrap();
        assert_eq!(all.len(), 8 * usize::from(per_block));
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = run.history(&script(0xE), before, 7).unwrap();
            let Some(&(height, txid)) = page.last() else {
                break;
            };
            paged.extend(page);
            before = run.tx_position(&txid).unwrap();
            assert_eq!(before.map(|b| b.height), Some(height));
        }
        assert_eq!(paged, all);
        assert_eq!(run.script_utxos(&script(0xE)).unwrap().len(), 25);

        // Undoing block by block gives the index of the shorter chain each time.
        for keep in (1..8).rev() {
            run.undo_tip().unwrap();
            let shorter = open(&dir, &format!("shorter-{keep}"));
            shorter.apply_blocks(&chain[..keep]).unwrap();
            assert_eq!(run.dump().unwrap(), shorter.dump().unwrap(), "{keep}");
        }
    }

    #[test]
    fn a_commit_applied_in_several_batches_equals_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut small = open(&dir, "small");
        small.journal_from = 3;
        small.apply_blocks(&chain()).unwrap();
        let whole = open(&dir, "whole");
        whole.apply_blocks(&chain()).unwrap();
        assert_eq!(small.dump().unwrap(), whole.dump().unwrap());
        assert_eq!(small.tip().unwrap(), whole.tip().unwrap());
        assert!(small.journal.get(JOURNAL_KEY).unwrap().is_none());

        small.undo_tip().unwrap();
        whole.undo_tip().unwrap();
        assert_eq!(small.dump().unwrap(), whole.dump().unwrap());
    }

    #[test]
    fn a_commit_cut_short_by_a_crash_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let whole = open(&dir, "whole");
        whole.apply_blocks(&chain()[..1]).unwrap();
        whole.apply_blocks(&chain()[1..]).unwrap();
        let expected = whole.dump().unwrap();

        let staged = {
            let store = open(&dir, "reference");
            store.apply_blocks(&chain()[..1]).unwrap();
            // The run's transactions never reach the TxIndex: open enters them.
            let mut run = Run::default();
            for block in &chain()[1..] {
                store.stage_block(&mut run, block).unwrap();
            }
            let (writes, _, _) = store.seal(run);
            let last = chain().pop().unwrap();
            let tip = Tip {
                height: last.height,
                hash: last.hash,
            };
            (writes.ops.len(), writes, tip)
        };
        let (len, writes, tip) = staged;
        let tip_value = encode_tip(&tip);
        let journal = writes.journal((META_TIP, Some(&tip_value)));
        let ops: Vec<_> = writes.ops.into_iter().collect();
        // The crash comes after the journal and some of the batches.
        for applied in [0, 1, len / 2, len] {
            let name = format!("crash-{applied}");
            {
                let store = open(&dir, &name);
                store.apply_blocks(&chain()[..1]).unwrap();
                store.journal.insert(JOURNAL_KEY, journal.clone()).unwrap();
                let mut batch = Batch::default();
                for (key, value) in &ops[..applied] {
                    match value {
                        Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                        None => batch.remove(key.as_slice()),
                    }
                }
                store.tree.apply_batch(batch).unwrap();
                store.db.flush().unwrap();
            }
            let store = open(&dir, &name);
            assert_eq!(store.dump().unwrap(), expected, "{name}");
            assert_eq!(store.tip().unwrap(), Some(tip), "{name}");
            assert!(store.journal.get(JOURNAL_KEY).unwrap().is_none());
        }
    }

    #[test]
    fn journal_records_round_trip_and_reject_truncation() {
        let mut writes = Writes::default();
        writes.put(b"a", b"1");
        writes.delete(b"b");
        writes.put(b"c", b"");
        let journal = writes.journal((META_TIP, None));
        let ops = decode_journal(&journal).unwrap();
        assert_eq!(
            ops,
            vec![
                (&b"a"[..], Some(&b"1"[..])),
                (&b"b"[..], None),
                (&b"c"[..], Some(&b""[..])),
                (META_TIP, None)
            ]
        );
        for len in 0..journal.len() {
            let cut = decode_journal(&journal[..len]);
            // A cut between records decodes to fewer of them; never a panic.
            assert!(cut.is_none_or(|c| c.len() < ops.len()), "{len}");
        }
        assert_eq!(decode_journal(&[2, 0, 0, 0, 0]), None);
        assert_eq!(decode_journal(&[1, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn refuses_an_index_of_the_previous_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        {
            let db = sled::open(&path).unwrap();
            db.insert(META_SCHEMA, &(SCHEMA_VERSION - 1).to_be_bytes())
                .unwrap();
            db.insert(META_COIN, "ltc-regtest").unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(&path, "ltc-regtest", 1 << 20)
            .unwrap_err()
            .to_string();
        let expected = format!(
            "schema version {}, this rot-server uses {SCHEMA_VERSION}",
            SCHEMA_VERSION - 1
        );
        assert!(err.contains(&expected) && err.contains("reindex"), "{err}");
    }

    #[test]
    fn refuses_an_index_of_the_first_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        {
            let db = sled::open(&path).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("schema_version", &1u32.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(&path, "ltc-regtest", 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 1"), "{err}");
    }
}
