//! The native backend's view of the node's mempool, kept in memory so unconfirmed
//! transactions show up in address queries without touching the index on disk.
//!
//! It is rebuilt incrementally from `getrawmempool`: transactions that left are dropped,
//! new ones are fetched in batches and parsed. Prevouts are resolved from the index or from
//! other mempool transactions, so mempool totals, UTXOs and spends are exact.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rot_proto::tx::Transaction;
use rot_proto::{ChainRules, Hash256};

use crate::Error;
use crate::backend::ScriptStats;
use crate::rpc::NodeRpc;
use crate::store::{IndexedOutput, OutPoint, Store};

/// New mempool transactions fetched per RPC batch.
const FETCH_BATCH: usize = 500;
/// Most new transactions taken in one sync pass, so a flood can't stall tip following.
const MAX_NEW_PER_SYNC: usize = 20_000;

/// An output a mempool transaction spends, once resolved.
#[derive(Debug, Clone, Copy)]
struct Prevout {
    script: [u8; 32],
    value: u64,
}

/// One unconfirmed transaction.
#[derive(Debug)]
struct Entry {
    raw: Arc<Vec<u8>>,
    /// Arrival order, newest highest; Esplora lists mempool history newest first.
    seq: u64,
    inputs: Vec<OutPoint>,
    /// Resolved prevouts (inputs of unknown outputs are skipped).
    prevouts: Vec<Prevout>,
    outputs: Vec<IndexedOutput>,
}

impl Entry {
    /// Parses `raw` into what the view keeps of it (not yet sequenced or resolved).
    fn new(raw: Vec<u8>, rules: &ChainRules) -> Result<Self, Error> {
        let tx = Transaction::parse(&raw, rules)?;
        let inputs = tx
            .inputs()
            .iter()
            .map(|i| OutPoint {
                txid: i.prevout.txid,
                vout: i.prevout.vout,
            })
            .collect();
        let outputs = tx
            .outputs()
            .iter()
            .map(|o| IndexedOutput::new(o.script_pubkey, o.value))
            .collect();
        Ok(Self {
            raw: Arc::new(raw),
            seq: 0,
            inputs,
            prevouts: Vec::new(),
            outputs,
        })
    }
}

/// The in-memory mempool index.
#[derive(Debug, Default)]
pub struct Mempool {
    txs: HashMap<Hash256, Entry>,
    /// Per script hash, the transactions touching it by arrival order.
    by_script: HashMap<[u8; 32], BTreeSet<(u64, Hash256)>>,
    /// Outpoints spent by mempool transactions: spender and input index.
    spends: HashMap<OutPoint, (Hash256, u32)>,
    next_seq: u64,
}

impl Mempool {
    /// Brings the view in line with the node's mempool. Returns how many transactions
    /// were added and removed.
    pub async fn sync(
        shared: &tokio::sync::RwLock<Mempool>,
        rpc: &NodeRpc,
        store: &Store,
        rules: &ChainRules,
    ) -> Result<(usize, usize), Error> {
        let node: HashSet<Hash256> = rpc.get_raw_mempool().await?.into_iter().collect();
        let (gone, new): (Vec<Hash256>, Vec<Hash256>) = {
            let view = shared.read().await;
            let gone = view
                .txs
                .keys()
                .filter(|t| !node.contains(t))
                .copied()
                .collect();
            let new = node
                .iter()
                .filter(|t| !view.txs.contains_key(t))
                .take(MAX_NEW_PER_SYNC)
                .copied()
                .collect();
            (gone, new)
        };
        let mut fetched = Vec::with_capacity(new.len());
        for chunk in new.chunks(FETCH_BATCH) {
            let raws = rpc.get_mempool_transactions(chunk).await?;
            for (txid, raw) in chunk.iter().zip(raws) {
                // A transaction that left the mempool between the two calls is simply skipped.
                let Some(raw) = raw else { continue };
                match Entry::new(raw, rules) {
                    Ok(entry) => fetched.push((*txid, entry)),
                    Err(e) => {
                        tracing::warn!(%txid, error = %e, "mempool transaction does not parse; skipped")
                    }
                }
            }
        }
        let mut view = shared.write().await;
        for txid in &gone {
            view.remove(txid);
        }
        let added = fetched.len();
        for (txid, entry) in fetched {
            view.insert_unresolved(txid, entry);
        }
        view.resolve(store)?;
        Ok((added, gone.len()))
    }

    fn insert_unresolved(&mut self, txid: Hash256, mut entry: Entry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        for (vin, outpoint) in entry.inputs.iter().enumerate() {
            self.spends.insert(*outpoint, (txid, vin as u32));
        }
        for output in &entry.outputs {
            self.by_script
                .entry(output.script)
                .or_default()
                .insert((entry.seq, txid));
        }
        self.txs.insert(txid, entry);
    }

    /// Resolves prevouts of entries that have none yet, from the index or the mempool.
    fn resolve(&mut self, store: &Store) -> Result<(), Error> {
        let unresolved: Vec<Hash256> = self
            .txs
            .iter()
            .filter(|(_, e)| e.prevouts.is_empty() && !e.inputs.is_empty())
            .map(|(t, _)| *t)
            .collect();
        for txid in unresolved {
            let inputs = self.txs[&txid].inputs.clone();
            let seq = self.txs[&txid].seq;
            let mut prevouts = Vec::with_capacity(inputs.len());
            for outpoint in inputs {
                let found = match self.txs.get(&outpoint.txid) {
                    Some(parent) => parent
                        .outputs
                        .get(outpoint.vout as usize)
                        .map(|o| (o.script, o.value)),
                    None => store.unspent(&outpoint)?.map(|o| (o.script, o.value)),
                };
                if let Some((script, value)) = found {
                    prevouts.push(Prevout { script, value });
                    self.by_script
                        .entry(script)
                        .or_default()
                        .insert((seq, txid));
                }
            }
            if let Some(entry) = self.txs.get_mut(&txid) {
                entry.prevouts = prevouts;
            }
        }
        Ok(())
    }

    fn remove(&mut self, txid: &Hash256) {
        let Some(entry) = self.txs.remove(txid) else {
            return;
        };
        for outpoint in &entry.inputs {
            if self
                .spends
                .get(outpoint)
                .is_some_and(|(spender, _)| spender == txid)
            {
                self.spends.remove(outpoint);
            }
        }
        let scripts = entry
            .outputs
            .iter()
            .map(|o| o.script)
            .chain(entry.prevouts.iter().map(|p| p.script));
        for script in scripts {
            if let Some(set) = self.by_script.get_mut(&script) {
                set.remove(&(entry.seq, *txid));
                if set.is_empty() {
                    self.by_script.remove(&script);
                }
            }
        }
    }

    /// Raw bytes of a mempool transaction.
    pub fn raw(&self, txid: &Hash256) -> Option<Arc<Vec<u8>>> {
        self.txs.get(txid).map(|e| e.raw.clone())
    }

    /// Whether the mempool holds `txid`.
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.txs.contains_key(txid)
    }

    /// All mempool txids.
    pub fn txids(&self) -> Vec<Hash256> {
        self.txs.keys().copied().collect()
    }

    /// Mempool transactions touching a script, newest first.
    pub fn history(&self, script: &[u8; 32], limit: usize) -> Vec<Hash256> {
        self.by_script.get(script).map_or_else(Vec::new, |set| {
            set.iter().rev().take(limit).map(|(_, t)| *t).collect()
        })
    }

    /// Who in the mempool spends an outpoint.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<(Hash256, u32)> {
        self.spends.get(outpoint).copied()
    }

    /// Mempool totals of a script.
    pub fn stats(&self, script: &[u8; 32]) -> ScriptStats {
        let mut stats = ScriptStats::default();
        let Some(set) = self.by_script.get(script) else {
            return stats;
        };
        for (_, txid) in set {
            let entry = &self.txs[txid];
            stats.tx_count += 1;
            for output in &entry.outputs {
                if &output.script == script {
                    stats.funded_txo_count += 1;
                    stats.funded_txo_sum += output.value;
                }
            }
            for prevout in &entry.prevouts {
                if &prevout.script == script {
                    stats.spent_txo_count += 1;
                    stats.spent_txo_sum += prevout.value;
                }
            }
        }
        stats
    }

    /// Unspent outputs created by mempool transactions for a script: (outpoint, value).
    pub fn utxos(&self, script: &[u8; 32]) -> Vec<(OutPoint, u64)> {
        let Some(set) = self.by_script.get(script) else {
            return Vec::new();
        };
        set.iter()
            .flat_map(|(_, txid)| {
                self.txs[txid]
                    .outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.spendable && &o.script == script)
                    .map(|(vout, o)| {
                        (
                            OutPoint {
                                txid: *txid,
                                vout: vout as u32,
                            },
                            o.value,
                        )
                    })
            })
            .filter(|(outpoint, _)| !self.spends.contains_key(outpoint))
            .collect()
    }
}
