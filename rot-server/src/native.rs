//! The native backend: answers the API from our own sled index of the node's chain plus the
//! in-memory mempool view, fetching raw transactions from the node by block hash (so the
//! node needs no `txindex`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rot_proto::message::{BackendKind, IndexProgress, capability};
use rot_proto::{ChainRules, Hash256, MerkleProof, ScriptHash};
use tokio::sync::{RwLock, watch};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::backend::{
    Backend, BlockStatus, BlockSummary, Failures, OutSpend, ScriptStats, Tip, TxStatus, Utxo,
    ViewGuard,
};
use crate::indexer::Indexer;
use crate::mempool::Mempool;
use crate::rpc::{ESPLORA_FEE_TARGETS, NodeRpc};
use crate::store::{OutPoint, Store, TxPosition};

/// How often the node is asked for a new best block and mempool changes. Polling this
/// often costs the node a few cheap calls (chain info, mempool listing, best block) and
/// keeps new blocks indexed within a second.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// Pause after a failed sync before trying again, doubling up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Serves queries from the index and the mempool view.
#[derive(Debug, Clone)]
pub struct NativeBackend {
    store: Store,
    rpc: NodeRpc,
    mempool: Arc<RwLock<Mempool>>,
    tips: watch::Receiver<Tip>,
    progress: Arc<Mutex<IndexProgress>>,
    /// Read by requests, written by a reorganisation ([`Backend::consistent_view`]).
    view: Arc<RwLock<()>>,
}

impl NativeBackend {
    /// Opens the backend over `store` and starts its indexer, which runs until `shutdown`.
    pub fn start(
        store: Store,
        rpc: NodeRpc,
        rules: ChainRules,
        reorg_limit: u32,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), Error> {
        let tip = store.tip()?.unwrap_or_default();
        let (tip_sender, tips) = watch::channel(tip);
        let progress = Arc::new(Mutex::new(IndexProgress {
            indexed_height: u64::from(tip.height),
            ..IndexProgress::default()
        }));
        let mempool = Arc::new(RwLock::new(Mempool::default()));
        let view = Arc::new(RwLock::new(()));
        let indexer = Indexer::new(
            store.clone(),
            rpc.clone(),
            rules,
            reorg_limit,
            tip_sender,
            progress.clone(),
            view.clone(),
        )?;
        let backend = Self {
            store: store.clone(),
            rpc: rpc.clone(),
            mempool: mempool.clone(),
            tips,
            progress,
            view,
        };
        let task = tokio::spawn(follow(
            indexer,
            mempool,
            store,
            rpc,
            rules,
            backend.progress.clone(),
            shutdown,
        ));
        Ok((backend, task))
    }

    fn status_at(&self, height: u32) -> Result<TxStatus, Error> {
        let block = self
            .store
            .block_at(height)?
            .ok_or_else(|| Error::Corrupt(format!("no block at height {height}")))?;
        Ok(TxStatus {
            confirmed: true,
            block_height: Some(height),
            block_hash: Some(block.hash),
            block_time: Some(block.time()),
        })
    }

    fn position(&self, txid: &Hash256) -> Result<TxPosition, Error> {
        self.store
            .tx_position(txid)?
            .ok_or_else(|| Error::NotFound(format!("transaction {txid} not found")))
    }
}

/// Keeps the index and the mempool view in line with the node until `shutdown`.
async fn follow(
    indexer: Indexer,
    mempool: Arc<RwLock<Mempool>>,
    store: Store,
    rpc: NodeRpc,
    rules: ChainRules,
    progress: Arc<Mutex<IndexProgress>>,
    shutdown: CancellationToken,
) {
    let mut failures = Failures::new(RETRY_FIRST, RETRY_MAX);
    loop {
        let pass = async {
            // Held through the mempool update: a transaction a reorganisation took out of
            // its block is in the mempool view by the time requests read again.
            let _reorganising = indexer.sync().await?;
            Mempool::sync(&mempool, &rpc, &store, &rules).await
        };
        let pause = tokio::select! {
            _ = shutdown.cancelled() => break,
            result = pass => match result {
                Ok(_) => {
                    failures.passed();
                    POLL_EVERY
                }
                Err(e) => {
                    // Serving goes on from the index; after a second failure in a row the
                    // info says the node is lost, so proxies stop sending wallets here.
                    let pause = failures.failed(&progress, &e);
                    tracing::warn!(error = %e, retry_in = ?pause, "indexer pass failed; serving from the index meanwhile");
                    pause
                }
            },
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    if let Err(e) = store.flush().await {
        tracing::warn!(error = %e, "flushing the index at shutdown failed");
    }
}

#[async_trait]
impl Backend for NativeBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Native
    }

    fn capabilities(&self) -> Vec<String> {
        [
            capability::ESPLORA,
            capability::SPENT_BY,
            capability::MEMPOOL,
            capability::FEE_ESTIMATES,
            capability::BROADCAST,
            capability::MERKLE_PROOF,
        ]
        .iter()
        .map(|c| (*c).to_owned())
        .collect()
    }

    fn tips(&self) -> watch::Receiver<Tip> {
        self.tips.clone()
    }

    fn progress(&self) -> IndexProgress {
        self.progress.lock().expect("progress lock").clone()
    }

    async fn consistent_view(&self) -> Option<ViewGuard> {
        Some(self.view.clone().read_owned().await)
    }

    async fn block_hash(&self, height: u32) -> Result<Hash256, Error> {
        Ok(self
            .store
            .block_at(height)?
            .ok_or_else(|| Error::NotFound(format!("no block at height {height}")))?
            .hash)
    }

    async fn block(&self, hash: &Hash256) -> Result<BlockSummary, Error> {
        let height = self
            .store
            .height_of(hash)?
            .ok_or_else(|| Error::NotFound(format!("block {hash} not found")))?;
        let record = self
            .store
            .block_at(height)?
            .ok_or_else(|| Error::Corrupt(format!("no block at height {height}")))?;
        let mut times = Vec::with_capacity(11);
        for h in height.saturating_sub(10)..=height {
            if let Some(b) = self.store.block_at(h)? {
                times.push(b.time());
            }
        }
        times.sort_unstable();
        Ok(BlockSummary {
            height,
            header: record.header,
            tx_count: record.tx_count,
            size: record.size,
            weight: record.weight,
            median_time: times[times.len() / 2],
        })
    }

    async fn block_status(&self, hash: &Hash256) -> Result<BlockStatus, Error> {
        if let Some(height) = self.store.height_of(hash)? {
            let next_best = self.store.block_at(height + 1)?.map(|b| b.hash);
            return Ok(BlockStatus {
                in_best_chain: true,
                height: Some(height),
                next_best,
            });
        }
        // Not in our best chain: a stale block the node knows, or nothing at all.
        match self.rpc.get_block_header(hash).await {
            Ok(_) => Ok(BlockStatus {
                in_best_chain: false,
                height: None,
                next_best: None,
            }),
            Err(Error::NodeNotFound { .. }) => {
                Err(Error::NotFound(format!("block {hash} not found")))
            }
            Err(e) => Err(e),
        }
    }

    async fn block_txids(&self, hash: &Hash256) -> Result<Vec<Hash256>, Error> {
        let height = self
            .store
            .height_of(hash)?
            .ok_or_else(|| Error::NotFound(format!("block {hash} not found")))?;
        self.store.block_txids(height)
    }

    async fn transactions(&self, txids: &[Hash256]) -> Result<Vec<Vec<u8>>, Error> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; txids.len()];
        let mut confirmed = Vec::new();
        {
            let mempool = self.mempool.read().await;
            for (i, txid) in txids.iter().enumerate() {
                if let Some(pos) = self.store.tx_position(txid)? {
                    let block = self
                        .store
                        .block_at(pos.height)?
                        .ok_or_else(|| Error::Corrupt("tx block".into()))?;
                    confirmed.push((i, *txid, block.hash));
                } else if let Some(raw) = mempool.raw(txid) {
                    out[i] = Some(raw.as_ref().clone());
                } else {
                    return Err(Error::NotFound(format!("transaction {txid} not found")));
                }
            }
        }
        if !confirmed.is_empty() {
            let asks: Vec<(Hash256, Option<Hash256>)> =
                confirmed.iter().map(|&(_, t, b)| (t, Some(b))).collect();
            let raws = self.rpc.get_raw_transactions(&asks).await?;
            for ((i, _, _), raw) in confirmed.into_iter().zip(raws) {
                out[i] = Some(raw);
            }
        }
        Ok(out.into_iter().map(|r| r.unwrap_or_default()).collect())
    }

    async fn tx_statuses(&self, txids: &[Hash256]) -> Result<Vec<TxStatus>, Error> {
        let mempool = self.mempool.read().await;
        txids
            .iter()
            .map(|txid| match self.store.tx_position(txid)? {
                Some(pos) => self.status_at(pos.height),
                None if mempool.contains(txid) => Ok(TxStatus::UNCONFIRMED),
                None => Err(Error::NotFound(format!("transaction {txid} not found"))),
            })
            .collect()
    }

    async fn merkle_proof(&self, txid: &Hash256) -> Result<MerkleProof, Error> {
        let pos = self.position(txid)?;
        let txids = self.store.block_txids(pos.height)?;
        Ok(MerkleProof::new(pos.height, &txids, pos.pos as usize)?)
    }

    async fn outspends(&self, txid: &Hash256, outputs: u32) -> Result<Vec<OutSpend>, Error> {
        let mempool = self.mempool.read().await;
        (0..outputs)
            .map(|vout| {
                let outpoint = OutPoint { txid: *txid, vout };
                if let Some(spend) = self.store.spend(&outpoint)? {
                    return Ok(OutSpend {
                        spent: true,
                        txid: Some(spend.txid),
                        vin: Some(spend.vin),
                        status: Some(self.status_at(spend.height)?),
                    });
                }
                Ok(match mempool.spender(&outpoint) {
                    Some((spender, vin)) => OutSpend {
                        spent: true,
                        txid: Some(spender),
                        vin: Some(vin),
                        status: Some(TxStatus::UNCONFIRMED),
                    },
                    None => OutSpend::UNSPENT,
                })
            })
            .collect()
    }

    async fn script_stats(&self, script: &ScriptHash) -> Result<(ScriptStats, ScriptStats), Error> {
        let key = script.as_bytes();
        let chain = self.store.stats(key)?;
        let mempool = self.mempool.read().await.stats(key);
        Ok((chain, mempool))
    }

    async fn script_history(
        &self,
        script: &ScriptHash,
        last_seen: Option<&Hash256>,
        limit: usize,
    ) -> Result<Vec<Hash256>, Error> {
        let before = last_seen.map(|txid| self.position(txid)).transpose()?;
        Ok(self
            .store
            .history(script.as_bytes(), before, limit)?
            .into_iter()
            .map(|(_, txid)| txid)
            .collect())
    }

    async fn script_mempool(
        &self,
        script: &ScriptHash,
        limit: usize,
    ) -> Result<Vec<Hash256>, Error> {
        Ok(self.mempool.read().await.history(script.as_bytes(), limit))
    }

    async fn script_utxos(&self, script: &ScriptHash) -> Result<Vec<Utxo>, Error> {
        let key = script.as_bytes();
        let mempool = self.mempool.read().await;
        let mut statuses: BTreeMap<u32, TxStatus> = BTreeMap::new();
        let mut utxos = Vec::new();
        for (outpoint, value, height) in self.store.script_utxos(key)? {
            if mempool.spender(&outpoint).is_some() {
                continue;
            }
            let status = match statuses.get(&height) {
                Some(s) => *s,
                None => *statuses.entry(height).or_insert(self.status_at(height)?),
            };
            utxos.push(Utxo {
                txid: outpoint.txid,
                vout: outpoint.vout,
                status,
                value,
            });
        }
        for (outpoint, value) in mempool.utxos(key) {
            utxos.push(Utxo {
                txid: outpoint.txid,
                vout: outpoint.vout,
                status: TxStatus::UNCONFIRMED,
                value,
            });
        }
        Ok(utxos)
    }

    async fn broadcast(&self, raw_tx: &[u8]) -> Result<Hash256, Error> {
        self.rpc.send_raw_transaction(&hex::encode(raw_tx)).await
    }

    async fn fee_estimates(&self) -> Result<BTreeMap<u16, f64>, Error> {
        // Already in sat/vB: the RPC client converts the node's coins per 1000 vbytes.
        Ok(self
            .rpc
            .estimate_smart_fees(&ESPLORA_FEE_TARGETS)
            .await?
            .into_iter()
            .collect())
    }

    async fn mempool_txids(&self) -> Result<Vec<Hash256>, Error> {
        Ok(self.mempool.read().await.txids())
    }
}
