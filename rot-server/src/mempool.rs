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
    /// Per input, its prevout once resolved. An input stays unresolved while its output is
    /// in a block the index has not reached yet; later syncs retry it.
    prevouts: Vec<Option<Prevout>>,
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
            .collect::<Vec<_>>();
        let outputs = tx
            .outputs()
            .iter()
            .map(|o| IndexedOutput::new(o.script_pubkey, o.value))
            .collect();
        Ok(Self {
            raw: Arc::new(raw),
            seq: 0,
            prevouts: vec![None; inputs.len()],
            inputs,
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
    ///
    /// Only a mempool the node had on the index's tip is taken: one listed after the node
    /// moved to a new block (whose transactions it left) would make them vanish from the
    /// view while the index does not hold that block yet. The node's best block is asked
    /// before and after the listing; when either is not the index's tip the view stays as
    /// it is, and the next pass indexes the block first.
    pub async fn sync(
        shared: &tokio::sync::RwLock<Mempool>,
        rpc: &NodeRpc,
        store: &Store,
        rules: &ChainRules,
    ) -> Result<(usize, usize), Error> {
        let indexed = store.tip()?.map(|tip| tip.hash);
        if Some(rpc.get_best_block_hash().await?) != indexed {
            return Ok((0, 0));
        }
        let node: HashSet<Hash256> = rpc.get_raw_mempool().await?.into_iter().collect();
        if Some(rpc.get_best_block_hash().await?) != indexed {
            return Ok((0, 0));
        }
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

    /// Resolves the prevouts still unknown, from the index or the mempool.
    fn resolve(&mut self, store: &Store) -> Result<(), Error> {
        let unresolved: Vec<Hash256> = self
            .txs
            .iter()
            .filter(|(_, e)| e.prevouts.iter().any(Option::is_none))
            .map(|(t, _)| *t)
            .collect();
        for txid in unresolved {
            let entry = &self.txs[&txid];
            let seq = entry.seq;
            let mut found = Vec::new();
            for (vin, outpoint) in entry.inputs.iter().enumerate() {
                if entry.prevouts[vin].is_some() {
                    continue;
                }
                let output = match self.txs.get(&outpoint.txid) {
                    Some(parent) => parent
                        .outputs
                        .get(outpoint.vout as usize)
                        .map(|o| (o.script, o.value)),
                    None => store.unspent(outpoint)?.map(|o| (o.script, o.value)),
                };
                if let Some((script, value)) = output {
                    found.push((vin, Prevout { script, value }));
                }
            }
            for (vin, prevout) in found {
                self.by_script
                    .entry(prevout.script)
                    .or_default()
                    .insert((seq, txid));
                if let Some(entry) = self.txs.get_mut(&txid) {
                    entry.prevouts[vin] = Some(prevout);
                }
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
            .chain(entry.prevouts.iter().flatten().map(|p| p.script));
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
            for prevout in entry.prevouts.iter().flatten() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IndexedBlock, IndexedTx};

    fn h(n: u8) -> Hash256 {
        Hash256([n; 32])
    }

    fn output(script: u8, value: u64) -> IndexedOutput {
        IndexedOutput {
            script: [script; 32],
            value,
            spendable: true,
        }
    }

    fn block(height: u32, txid: Hash256, outputs: Vec<IndexedOutput>) -> IndexedBlock {
        IndexedBlock {
            height,
            hash: h(200 + height as u8),
            header: [0; 80],
            size: 100,
            weight: 400,
            txs: vec![IndexedTx {
                txid,
                inputs: Vec::new(),
                outputs,
            }],
        }
    }

    /// A mempool transaction may spend an output of a block the index has not reached yet
    /// (the node mined it during our pass): that input is resolved on a later sync, even when
    /// its other inputs were resolved at once.
    #[test]
    fn inputs_resolve_once_their_block_is_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("index"), "ltc-regtest", 1 << 20).unwrap();
        store
            .apply_blocks(&[block(0, h(1), vec![output(0xA, 50)])])
            .unwrap();
        let inputs = vec![
            OutPoint {
                txid: h(1),
                vout: 0,
            },
            OutPoint {
                txid: h(2),
                vout: 0,
            },
        ];
        let entry = Entry {
            raw: Arc::new(Vec::new()),
            seq: 0,
            prevouts: vec![None; inputs.len()],
            inputs,
            outputs: vec![output(0xC, 60)],
        };
        let mut mempool = Mempool::default();
        mempool.insert_unresolved(h(3), entry);
        mempool.resolve(&store).unwrap();
        assert_eq!(mempool.stats(&[0xA; 32]).spent_txo_sum, 50);
        assert_eq!(mempool.stats(&[0xB; 32]), ScriptStats::default());

        store
            .apply_blocks(&[block(1, h(2), vec![output(0xB, 20)])])
            .unwrap();
        mempool.resolve(&store).unwrap();
        let b = mempool.stats(&[0xB; 32]);
        assert_eq!((b.spent_txo_count, b.spent_txo_sum, b.tx_count), (1, 20, 1));
        assert_eq!(mempool.history(&[0xB; 32], 10), vec![h(3)]);
        assert_eq!(mempool.stats(&[0xA; 32]).spent_txo_count, 1, "counted once");

        mempool.remove(&h(3));
        assert!(mempool.by_script.is_empty() && mempool.spends.is_empty());
    }

    #[test]
    fn data_outputs_are_never_unspent() {
        let mut mempool = Mempool::default();
        let data = IndexedOutput {
            spendable: false,
            ..output(0x6a, 0)
        };
        let entry = Entry {
            raw: Arc::new(Vec::new()),
            seq: 0,
            prevouts: Vec::new(),
            inputs: Vec::new(),
            outputs: vec![data],
        };
        mempool.insert_unresolved(h(4), entry);
        assert_eq!(mempool.stats(&[0x6a; 32]).funded_txo_count, 1);
        assert!(mempool.utxos(&[0x6a; 32]).is_empty());
    }
}
