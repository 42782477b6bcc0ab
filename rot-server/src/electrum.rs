//! The electrum backend: answers the API from an existing Electrum-protocol server (ElectrumX,
//! Fulcrum, electrs), so an operator who already runs one joins the ring without indexing the
//! chain again.
//!
//! The only state kept here is the header chain (`header_chain.rs`), followed through the
//! server's header subscription: it answers every block question by height or hash and dates
//! transactions. Scripts are asked about by their Electrum script hash; transactions are
//! fetched in pipelined batches and checked against their ids, merkle branches and block
//! lists against the headers' merkle roots. Confirmed transactions are cached (they never
//! change while their block stays in the best chain).
//!
//! The protocol cannot tell which transaction spends an output, nor list the whole mempool:
//! those calls answer [`Error::Unsupported`] (HTTP 501) and the capabilities leave out
//! `spent-by` and `mempool`. Blocks whose size the server cannot reveal (Litecoin MWEB
//! extension data, AuxPoW proofs, proof-of-stake signatures) are 501 on `/block/:hash` too.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rot_proto::encode::compact_size_len;
use rot_proto::message::{BackendKind, IndexProgress, capability};
use rot_proto::{
    BlockHeader, ChainRules, CoinProfile, Hash256, MerkleProof, ScriptHash, Transaction,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::backend::{
    Backend, BlockStatus, BlockSummary, Failures, OutSpend, ScriptStats, Tip, TxStatus, Utxo,
};
use crate::electrum_rpc::{ElectrumRpc, ElectrumUrl, Reply};
use crate::header_chain::{HeaderChain, merkle_root_of, prev_of};
use crate::rpc::ESPLORA_FEE_TARGETS;

/// How long start waits for an unreachable server before giving up.
const UPSTREAM_WAIT: Duration = Duration::from_secs(30);
/// How long a query waits for the header chain to reach a block the server already reports.
const LAG_WAIT: Duration = Duration::from_secs(5);
/// Blocks the node may be ahead of the Electrum server (which polls it) and so of our
/// headers; a transaction in such a block is still unconfirmed as of the tip we serve.
const MAX_BLOCKS_AHEAD: u64 = 6;
/// Headers per `blockchain.block.headers` request: the protocol's usual maximum.
const HEADER_CHUNK: u32 = 2016;
/// Header requests in flight during a catch-up.
const HEADER_CHUNKS_IN_FLIGHT: u32 = 4;
/// Headers first compared when looking for the fork point; the window grows from there.
const FORK_WINDOW: u32 = 8;
/// With no notification, the chain is checked this often (also keeps the session alive).
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Pause after a failed sync, doubling up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Raw confirmed transactions kept, in bytes.
const TX_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Blocks whose transaction ids and summaries are kept.
const BLOCK_CACHE_ENTRIES: usize = 256;
/// Electrum fee rates are coins per kB; Esplora's are sat/vB.
const SAT_PER_VB_PER_COIN_PER_KB: f64 = 100_000.0;

/// Serves queries from an Electrum server and the followed header chain.
#[derive(Debug, Clone)]
pub struct ElectrumBackend {
    rpc: ElectrumRpc,
    chain: HeaderChain,
    rules: ChainRules,
    tips: watch::Receiver<Tip>,
    progress: Arc<Mutex<IndexProgress>>,
    /// Confirmed transactions: txid → (raw, block hash).
    txs: Arc<Mutex<Bounded<Hash256, CachedTx>>>,
    /// Transaction ids of blocks, by block hash.
    block_txids: Arc<Mutex<Bounded<Hash256, Arc<Vec<Hash256>>>>>,
    /// Block summaries, by block hash.
    blocks: Arc<Mutex<Bounded<Hash256, BlockSummary>>>,
}

/// A confirmed transaction's bytes and block hash.
type CachedTx = (Arc<Vec<u8>>, Hash256);

/// Where a transaction was found.
#[derive(Debug, Clone)]
struct Located {
    raw: Arc<Vec<u8>>,
    /// Height and hash of its best-chain block; `None` in the mempool.
    block: Option<(u32, Hash256)>,
}

impl ElectrumBackend {
    /// Connects to the server at `url` (checking that it serves `profile`'s chain), opens the
    /// header chain under `data_dir`, and starts following the server's tip until `shutdown`.
    pub async fn start(
        url: &str,
        ca_file: Option<&Path>,
        profile: &CoinProfile,
        data_dir: &Path,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), Error> {
        let rpc = ElectrumRpc::new(ElectrumUrl::parse(url)?, ca_file, profile.genesis_hash)?;
        let started = Instant::now();
        loop {
            match rpc.ensure_connected().await {
                Ok(()) => break,
                Err(e @ Error::ElectrumUnreachable { .. }) if started.elapsed() < UPSTREAM_WAIT => {
                    tracing::warn!(error = %e, "waiting for the Electrum server");
                    tokio::time::sleep(RETRY_MAX.min(UPSTREAM_WAIT / 10)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let chain = HeaderChain::open(&data_dir.join("electrum-headers"), &profile.id())?;
        let tip = chain.tip()?.unwrap_or_default();
        let (tip_sender, tips) = watch::channel(tip);
        let progress = Arc::new(Mutex::new(IndexProgress {
            indexed_height: u64::from(tip.height),
            ..IndexProgress::default()
        }));
        let follower = Follower {
            rpc: rpc.clone(),
            chain: chain.clone(),
            genesis: profile.genesis_hash,
            tips: tip_sender,
            progress: progress.clone(),
        };
        let backend = Self {
            rpc,
            chain,
            rules: profile.rules,
            tips,
            progress,
            txs: Arc::new(Mutex::new(Bounded::new(TX_CACHE_BYTES))),
            block_txids: Arc::new(Mutex::new(Bounded::new(BLOCK_CACHE_ENTRIES))),
            blocks: Arc::new(Mutex::new(Bounded::new(BLOCK_CACHE_ENTRIES))),
        };
        let task = tokio::spawn(follower.run(shutdown));
        Ok((backend, task))
    }

    /// Waits (briefly) until the header chain holds `height`, which the server already
    /// reported.
    async fn reach(&self, height: u32) -> Result<(), Error> {
        let mut tips = self.tips.clone();
        match tokio::time::timeout(LAG_WAIT, tips.wait_for(|tip| tip.height >= height)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::ElectrumLagging(format!(
                "the server reports height {height}, our headers end at {}",
                self.tips.borrow().height
            ))),
        }
    }

    /// Esplora status of a transaction in the best-chain block at `height`.
    fn status_at(&self, height: u32) -> Result<TxStatus, Error> {
        let header = self
            .chain
            .header_at(height)?
            .ok_or_else(|| Error::ElectrumLagging(format!("no header at height {height}")))?;
        Ok(TxStatus {
            confirmed: true,
            block_height: Some(height),
            block_hash: Some(Hash256::of(&header)),
            block_time: Some(crate::header_chain::time_of(&header)),
        })
    }

    /// Status of a transaction the server places at `height` (0 or less: the mempool).
    async fn status_of_height(&self, height: i64) -> Result<TxStatus, Error> {
        match u32::try_from(height) {
            Ok(height) if height > 0 => {
                self.reach(height).await?;
                self.status_at(height)
            }
            _ => Ok(TxStatus::UNCONFIRMED),
        }
    }

    /// Finds transactions: from the cache when their block is still in the best chain,
    /// otherwise from the server (verbose, which also says where each one is).
    async fn locate(&self, txids: &[Hash256]) -> Result<Vec<Located>, Error> {
        let mut found: Vec<Option<Located>> = vec![None; txids.len()];
        let mut missing: Vec<Hash256> = Vec::new();
        {
            let cache = self.txs.lock().expect("tx cache lock");
            for (slot, txid) in found.iter_mut().zip(txids) {
                if let Some((raw, block)) = cache.get(txid)
                    && let Some(height) = self.chain.height_of(block)?
                {
                    *slot = Some(Located {
                        raw: raw.clone(),
                        block: Some((height, *block)),
                    });
                    continue;
                }
                missing.push(*txid);
            }
        }
        missing.sort_unstable();
        missing.dedup();
        let params = missing.iter().map(|txid| json!([txid, true])).collect();
        let replies = self.rpc.batch("blockchain.transaction.get", params).await?;
        let mut fetched: HashMap<Hash256, Located> = HashMap::with_capacity(missing.len());
        for (txid, reply) in missing.iter().zip(replies) {
            let located = self.located(txid, reply).await?;
            if let Some((_, block)) = located.block {
                let weight = located.raw.len();
                self.txs.lock().expect("tx cache lock").insert(
                    *txid,
                    (located.raw.clone(), block),
                    weight,
                );
            }
            fetched.insert(*txid, located);
        }
        found
            .into_iter()
            .zip(txids)
            .map(|(slot, txid)| match slot {
                Some(located) => Ok(located),
                None => fetched
                    .get(txid)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(format!("transaction {txid} not found"))),
            })
            .collect()
    }

    /// Reads one verbose `blockchain.transaction.get` answer.
    async fn located(&self, txid: &Hash256, reply: Reply) -> Result<Located, Error> {
        const METHOD: &str = "blockchain.transaction.get";
        let answer = match reply {
            Ok(answer) => answer,
            Err(e) if e.is_not_found() => {
                return Err(Error::NotFound(format!("transaction {txid} not found")));
            }
            Err(e) => return Err(e.into_error(METHOD)),
        };
        let raw = answer
            .get("hex")
            .and_then(Value::as_str)
            .and_then(|text| hex::decode(text).ok())
            .ok_or_else(|| malformed(METHOD, format!("no transaction hex for {txid}")))?;
        let parsed = Transaction::parse(&raw, &self.rules)
            .map_err(|e| malformed(METHOD, format!("transaction {txid} does not parse: {e}")))?;
        if parsed.txid() != *txid {
            return Err(malformed(
                METHOD,
                format!("asked for {txid}, got {}", parsed.txid()),
            ));
        }
        let block = match answer.get("blockhash").and_then(Value::as_str) {
            None => None,
            Some(text) => {
                let hash: Hash256 = text
                    .parse()
                    .map_err(|_| malformed(METHOD, format!("block hash {text:?}")))?;
                // The node reports 0 confirmations for a block out of its best chain: the
                // transaction was in a block a reorganisation replaced, and is nowhere now.
                let confirmations = answer
                    .get("confirmations")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if confirmations == 0 {
                    return Err(Error::NotFound(format!("transaction {txid} not found")));
                }
                match self.chain.height_of(&hash)? {
                    Some(height) => Some((height, hash)),
                    // A block the node has and the Electrum server (so our headers) not yet:
                    // as of the tip we serve, the transaction is still unconfirmed.
                    None if confirmations <= MAX_BLOCKS_AHEAD => None,
                    None => {
                        return Err(Error::ElectrumLagging(format!(
                            "transaction {txid} is in block {hash}, which our headers do not hold yet"
                        )));
                    }
                }
            }
        };
        Ok(Located {
            raw: Arc::new(raw),
            block,
        })
    }

    /// The script's confirmed history (oldest first, with heights) and mempool transactions.
    async fn history(
        &self,
        script: &ScriptHash,
    ) -> Result<(Vec<(Hash256, u32)>, Vec<Hash256>), Error> {
        const METHOD: &str = "blockchain.scripthash.get_history";
        let answer = self
            .rpc
            .call(METHOD, json!([script.to_electrum_hex()]))
            .await?;
        let entries = entries(METHOD, &answer)?;
        let mut confirmed = Vec::new();
        let mut mempool = Vec::new();
        for entry in entries {
            let (txid, height) = txid_and_height(METHOD, entry)?;
            match u32::try_from(height) {
                Ok(height) if height > 0 => confirmed.push((txid, height)),
                _ => mempool.push(txid),
            }
        }
        // Block order within a height is the server's; heights must ascend.
        confirmed.sort_by_key(|&(_, height)| height);
        let in_chain: HashSet<Hash256> = confirmed.iter().map(|&(txid, _)| txid).collect();
        mempool.retain(|txid| !in_chain.contains(txid));
        if let Some(&(_, top)) = confirmed.last() {
            self.reach(top).await?;
        }
        Ok((confirmed, mempool))
    }

    /// Position of a confirmed transaction in its block.
    async fn position_in_block(&self, txid: &Hash256, height: u32) -> Result<usize, Error> {
        const METHOD: &str = "blockchain.transaction.get_merkle";
        let answer = self.rpc.call(METHOD, json!([txid, height])).await?;
        answer
            .get("pos")
            .and_then(Value::as_u64)
            .and_then(|pos| usize::try_from(pos).ok())
            .ok_or_else(|| malformed(METHOD, format!("no position in {answer}")))
    }

    /// Number of transactions of the block at `height`: the merkle branch of the first one
    /// bounds it to a power of two, a binary search over `id_from_pos` finds it.
    async fn tx_count(&self, height: u32) -> Result<u64, Error> {
        const METHOD: &str = "blockchain.transaction.id_from_pos";
        let first = self.rpc.call(METHOD, json!([height, 0, true])).await?;
        let depth = first
            .get("merkle")
            .and_then(Value::as_array)
            .map(Vec::len)
            .filter(|depth| *depth <= 32)
            .ok_or_else(|| malformed(METHOD, format!("no merkle branch in {first}")))?;
        if depth == 0 {
            return Ok(1);
        }
        // More than 2^(depth-1) transactions, at most 2^depth: find the last position.
        let mut last = 1u64 << (depth - 1);
        let mut high = (1u64 << depth) - 1;
        while last < high {
            let probe = last + (high - last).div_ceil(2);
            match self
                .rpc
                .batch(METHOD, vec![json!([height, probe])])
                .await?
                .pop()
            {
                Some(Ok(_)) => last = probe,
                Some(Err(e)) if e.is_not_found() => high = probe - 1,
                Some(Err(e)) => return Err(e.into_error(METHOD)),
                None => return Err(malformed(METHOD, "no answer".to_owned())),
            }
        }
        Ok(last + 1)
    }

    /// Transaction ids of the best-chain block `hash` at `height`, checked against its
    /// header's merkle root.
    async fn txids_of_block(
        &self,
        hash: &Hash256,
        height: u32,
    ) -> Result<Arc<Vec<Hash256>>, Error> {
        const METHOD: &str = "blockchain.transaction.id_from_pos";
        if let Some(txids) = self.block_txids.lock().expect("block cache lock").get(hash) {
            return Ok(txids.clone());
        }
        let header = self
            .chain
            .header_at(height)?
            .ok_or_else(|| Error::NotFound(format!("block {hash} not found")))?;
        if height == 0 {
            // Servers do not index the genesis coinbase; it is alone in its block, so its
            // id is the block's merkle root.
            return Ok(Arc::new(vec![merkle_root_of(&header)]));
        }
        let count = self.tx_count(height).await?;
        let params = (0..count).map(|pos| json!([height, pos])).collect();
        let txids = self
            .rpc
            .batch(METHOD, params)
            .await?
            .into_iter()
            .map(|reply| {
                let answer = reply.map_err(|e| e.into_error(METHOD))?;
                answer
                    .as_str()
                    .and_then(|text| text.parse::<Hash256>().ok())
                    .ok_or_else(|| malformed(METHOD, format!("not a txid: {answer}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if rot_proto::merkle::merkle_root(&txids) != Some(merkle_root_of(&header)) {
            return Err(malformed(
                METHOD,
                format!("the transaction ids of block {hash} do not match its merkle root"),
            ));
        }
        let txids = Arc::new(txids);
        self.block_txids
            .lock()
            .expect("block cache lock")
            .insert(*hash, txids.clone(), 1);
        Ok(txids)
    }

    /// The best-chain height of block `hash`, or 404.
    fn height_of_block(&self, hash: &Hash256) -> Result<u32, Error> {
        self.chain
            .height_of(hash)?
            .ok_or_else(|| Error::NotFound(format!("block {hash} not found")))
    }
}

#[async_trait]
impl Backend for ElectrumBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Electrum
    }

    fn capabilities(&self) -> Vec<String> {
        [
            capability::ESPLORA,
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

    async fn block_hash(&self, height: u32) -> Result<Hash256, Error> {
        self.chain
            .hash_at(height)?
            .ok_or_else(|| Error::NotFound(format!("no block at height {height}")))
    }

    async fn block(&self, hash: &Hash256) -> Result<BlockSummary, Error> {
        let height = self.height_of_block(hash)?;
        if let Some(summary) = self.blocks.lock().expect("block cache lock").get(hash) {
            return Ok(summary.clone());
        }
        let header = self
            .chain
            .header_at(height)?
            .ok_or_else(|| Error::NotFound(format!("block {hash} not found")))?;
        let extra = if self.rules.pos_ntime {
            Some("a proof-of-stake block signature")
        } else if self.rules.auxpow && BlockHeader::parse(&header)?.has_auxpow_bit() {
            Some("an AuxPoW proof")
        } else {
            None
        };
        if let Some(extra) = extra {
            return Err(unsupported_block(hash, extra));
        }
        if height == 0 {
            return Err(Error::Unsupported(
                "the genesis block's size is not available from this server's Electrum \
                 backend: Electrum servers do not serve the genesis coinbase"
                    .to_owned(),
            ));
        }
        let txids = self.txids_of_block(hash, height).await?;
        let raws = self.locate(&txids).await?;
        let mut size = 80 + compact_size_len(txids.len() as u64) as u64;
        let mut weight = 4 * size;
        for (located, txid) in raws.iter().zip(txids.iter()) {
            let tx = Transaction::parse(&located.raw, &self.rules)
                .map_err(|e| malformed("blockchain.transaction.get", format!("{txid}: {e}")))?;
            if self.rules.mweb && txids.len() >= 2 && tx.is_hogex() {
                return Err(unsupported_block(hash, "a Litecoin MWEB extension block"));
            }
            size += located.raw.len() as u64;
            weight += tx.weight();
        }
        let summary = BlockSummary {
            height,
            header,
            tx_count: txids.len() as u32,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            median_time: self.chain.median_time(height)?,
        };
        self.blocks
            .lock()
            .expect("block cache lock")
            .insert(*hash, summary.clone(), 1);
        Ok(summary)
    }

    async fn block_header(&self, hash: &Hash256) -> Result<[u8; 80], Error> {
        let height = self.height_of_block(hash)?;
        self.chain
            .header_at(height)?
            .ok_or_else(|| Error::NotFound(format!("block {hash} not found")))
    }

    async fn block_status(&self, hash: &Hash256) -> Result<BlockStatus, Error> {
        if let Some(height) = self.chain.height_of(hash)? {
            return Ok(BlockStatus {
                in_best_chain: true,
                height: Some(height),
                next_best: self.chain.hash_at(height + 1)?,
            });
        }
        if self.chain.is_stale(hash)? {
            return Ok(BlockStatus {
                in_best_chain: false,
                height: None,
                next_best: None,
            });
        }
        Err(Error::NotFound(format!("block {hash} not found")))
    }

    async fn block_txids(&self, hash: &Hash256) -> Result<Vec<Hash256>, Error> {
        let height = self.height_of_block(hash)?;
        Ok(self.txids_of_block(hash, height).await?.as_ref().clone())
    }

    async fn transactions(&self, txids: &[Hash256]) -> Result<Vec<Vec<u8>>, Error> {
        Ok(self
            .locate(txids)
            .await?
            .into_iter()
            .map(|located| located.raw.as_ref().clone())
            .collect())
    }

    async fn tx_statuses(&self, txids: &[Hash256]) -> Result<Vec<TxStatus>, Error> {
        self.locate(txids)
            .await?
            .into_iter()
            .map(|located| match located.block {
                Some((height, _)) => self.status_at(height),
                None => Ok(TxStatus::UNCONFIRMED),
            })
            .collect()
    }

    async fn merkle_proof(&self, txid: &Hash256) -> Result<MerkleProof, Error> {
        const METHOD: &str = "blockchain.transaction.get_merkle";
        let located = self.locate(&[*txid]).await?.pop();
        let Some((height, block)) = located.and_then(|l| l.block) else {
            return Err(Error::NotFound(format!("transaction {txid} not found")));
        };
        let answer = self.rpc.call(METHOD, json!([txid, height])).await?;
        let merkle = answer
            .get("merkle")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(METHOD, format!("no branch in {answer}")))?
            .iter()
            .map(|node| {
                node.as_str()
                    .and_then(|text| text.parse::<Hash256>().ok())
                    .ok_or_else(|| malformed(METHOD, format!("branch node {node}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pos = answer
            .get("pos")
            .and_then(Value::as_u64)
            .and_then(|pos| usize::try_from(pos).ok())
            .ok_or_else(|| malformed(METHOD, format!("no position in {answer}")))?;
        let proof = MerkleProof {
            block_height: height,
            merkle,
            pos,
        };
        let header = self
            .chain
            .header_at(height)?
            .ok_or_else(|| Error::NotFound(format!("block {block} not found")))?;
        if !proof.verify(*txid, &merkle_root_of(&header)) {
            return Err(malformed(
                METHOD,
                format!("the branch of {txid} does not lead to the merkle root of block {block}"),
            ));
        }
        Ok(proof)
    }

    async fn outspends(&self, _txid: &Hash256, _outputs: u32) -> Result<Vec<OutSpend>, Error> {
        Err(Error::Unsupported(
            "spent-by is not available: this server's Electrum backend cannot tell which \
             transaction spends an output"
                .to_owned(),
        ))
    }

    async fn script_stats(&self, script: &ScriptHash) -> Result<(ScriptStats, ScriptStats), Error> {
        let (confirmed, mempool) = self.history(script).await?;
        let chain_txids: Vec<Hash256> = confirmed.iter().map(|&(txid, _)| txid).collect();
        let chain_set: HashSet<Hash256> = chain_txids.iter().copied().collect();
        let all: Vec<Hash256> = chain_txids.iter().chain(&mempool).copied().collect();
        let raws = self.locate(&all).await?;
        let txs = raws
            .iter()
            .zip(&all)
            .map(|(located, txid)| {
                Transaction::parse(&located.raw, &self.rules)
                    .map_err(|e| malformed("blockchain.transaction.get", format!("{txid}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut chain = ScriptStats::default();
        let mut pool = ScriptStats::default();
        // Outputs paying the script, by outpoint: every spend of one is in the history too.
        let mut funded: HashMap<(Hash256, u32), u64> = HashMap::new();
        for (tx, txid) in txs.iter().zip(&all) {
            let stats = if chain_set.contains(txid) {
                &mut chain
            } else {
                &mut pool
            };
            stats.tx_count += 1;
            for (vout, output) in tx.outputs().iter().enumerate() {
                if ScriptHash::of(output.script_pubkey) == *script {
                    stats.funded_txo_count += 1;
                    stats.funded_txo_sum += output.value;
                    funded.insert((*txid, vout as u32), output.value);
                }
            }
        }
        for (tx, txid) in txs.iter().zip(&all) {
            if tx.is_coinbase() {
                continue;
            }
            let stats = if chain_set.contains(txid) {
                &mut chain
            } else {
                &mut pool
            };
            for input in tx.inputs() {
                if let Some(value) = funded.get(&(input.prevout.txid, input.prevout.vout)) {
                    stats.spent_txo_count += 1;
                    stats.spent_txo_sum += value;
                }
            }
        }
        Ok((chain, pool))
    }

    async fn script_history(
        &self,
        script: &ScriptHash,
        last_seen: Option<&Hash256>,
        limit: usize,
    ) -> Result<Vec<Hash256>, Error> {
        let (mut confirmed, _) = self.history(script).await?;
        confirmed.reverse();
        let start = match last_seen {
            None => 0,
            Some(seen) => match confirmed.iter().position(|(txid, _)| txid == seen) {
                Some(at) => at + 1,
                None => {
                    // Not one of the script's: page from where it stands in the chain.
                    let located = self.locate(&[*seen]).await?.pop();
                    let Some((height, _)) = located.and_then(|l| l.block) else {
                        return Err(Error::NotFound(format!("transaction {seen} not found")));
                    };
                    let seen_pos = self.position_in_block(seen, height).await?;
                    let mut start = confirmed.len();
                    for (at, (txid, h)) in confirmed.iter().enumerate() {
                        let before = *h < height
                            || (*h == height
                                && self.position_in_block(txid, height).await? < seen_pos);
                        if before {
                            start = at;
                            break;
                        }
                    }
                    start
                }
            },
        };
        Ok(confirmed
            .into_iter()
            .skip(start)
            .take(limit)
            .map(|(txid, _)| txid)
            .collect())
    }

    async fn script_mempool(
        &self,
        script: &ScriptHash,
        limit: usize,
    ) -> Result<Vec<Hash256>, Error> {
        const METHOD: &str = "blockchain.scripthash.get_mempool";
        let answer = self
            .rpc
            .call(METHOD, json!([script.to_electrum_hex()]))
            .await?;
        let mut txids = entries(METHOD, &answer)?
            .iter()
            .map(|entry| txid_and_height(METHOD, entry).map(|(txid, _)| txid))
            .collect::<Result<Vec<_>, _>>()?;
        txids.reverse();
        txids.truncate(limit);
        Ok(txids)
    }

    async fn script_utxos(&self, script: &ScriptHash) -> Result<Vec<Utxo>, Error> {
        const METHOD: &str = "blockchain.scripthash.listunspent";
        let answer = self
            .rpc
            .call(METHOD, json!([script.to_electrum_hex()]))
            .await?;
        let mut utxos = Vec::new();
        for entry in entries(METHOD, &answer)? {
            let (txid, height) = txid_and_height(METHOD, entry)?;
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| malformed(METHOD, format!("no {name} in {entry}")))
            };
            utxos.push(Utxo {
                txid,
                vout: u32::try_from(field("tx_pos")?)
                    .map_err(|_| malformed(METHOD, format!("output index in {entry}")))?,
                status: self.status_of_height(height).await?,
                value: field("value")?,
            });
        }
        Ok(utxos)
    }

    async fn broadcast(&self, raw_tx: &[u8]) -> Result<Hash256, Error> {
        const METHOD: &str = "blockchain.transaction.broadcast";
        let txid = Transaction::parse(raw_tx, &self.rules)?.txid();
        let reply = self
            .rpc
            .batch(METHOD, vec![json!([hex::encode(raw_tx)])])
            .await?
            .pop()
            .ok_or_else(|| malformed(METHOD, "no answer".to_owned()))?;
        match reply {
            Ok(answer) if answer.as_str() == Some(txid.to_string().as_str()) => Ok(txid),
            Ok(answer) => Err(malformed(
                METHOD,
                format!("answered {answer} instead of the transaction id {txid}"),
            )),
            Err(e) => Err(Error::ElectrumRejected {
                message: rejection_reason(&e.message),
            }),
        }
    }

    async fn fee_estimates(&self) -> Result<BTreeMap<u16, f64>, Error> {
        const METHOD: &str = "blockchain.estimatefee";
        let params = ESPLORA_FEE_TARGETS
            .iter()
            .map(|target| json!([target]))
            .collect();
        let replies = self.rpc.batch(METHOD, params).await?;
        let mut estimates = BTreeMap::new();
        for (target, reply) in ESPLORA_FEE_TARGETS.iter().zip(replies) {
            let answer = reply.map_err(|e| e.into_error(METHOD))?;
            let rate = answer
                .as_f64()
                .ok_or_else(|| malformed(METHOD, format!("not a fee rate: {answer}")))?;
            // A negative rate is the protocol's "no estimate".
            if rate.is_finite() && rate >= 0.0 {
                estimates.insert(*target, rate * SAT_PER_VB_PER_COIN_PER_KB);
            }
        }
        Ok(estimates)
    }

    async fn mempool_txids(&self) -> Result<Vec<Hash256>, Error> {
        Err(Error::Unsupported(
            "the mempool list is not available: the Electrum protocol cannot list the whole mempool"
                .to_owned(),
        ))
    }
}

/// Keeps the header chain equal to the server's best chain.
struct Follower {
    rpc: ElectrumRpc,
    chain: HeaderChain,
    genesis: Hash256,
    tips: watch::Sender<Tip>,
    progress: Arc<Mutex<IndexProgress>>,
}

impl Follower {
    /// Syncs whenever the server announces a tip or (re)connects, and every [`KEEPALIVE`];
    /// retries with back-off while the server is away.
    async fn run(self, shutdown: CancellationToken) {
        let mut wakeups = self.rpc.wakeups();
        let mut failures = Failures::new(RETRY_FIRST, RETRY_MAX);
        loop {
            wakeups.borrow_and_update();
            let pause = tokio::select! {
                _ = shutdown.cancelled() => break,
                synced = self.sync() => match synced {
                    Ok(()) => {
                        failures.passed();
                        KEEPALIVE
                    }
                    Err(e) => {
                        let pause = failures.failed(&self.progress, &e);
                        tracing::warn!(error = %e, retry_in = ?pause, "following the Electrum server failed; serving from the headers held meanwhile");
                        pause
                    }
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wakeups.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        if let Err(e) = self.chain.flush().await {
            tracing::warn!(error = %e, "flushing the header chain at shutdown failed");
        }
    }

    /// Brings the header chain to the server's tip: finds where they part (a reorganisation,
    /// or a server that went back), drops ours above, and fetches the rest in pipelined runs.
    async fn sync(&self) -> Result<(), Error> {
        const METHOD: &str = "blockchain.headers.subscribe";
        let answer = self.rpc.call(METHOD, json!([])).await?;
        let server_height = answer
            .get("height")
            .and_then(Value::as_u64)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| malformed(METHOD, format!("no height in {answer}")))?;
        let server_hash = answer
            .get("hex")
            .and_then(Value::as_str)
            .and_then(|text| header_of_hex(text).ok())
            .map(|header| Hash256::of(&header))
            .ok_or_else(|| malformed(METHOD, format!("no header in {answer}")))?;
        let ours = self.chain.tip()?;
        if ours
            == Some(Tip {
                height: server_height,
                hash: server_hash,
            })
        {
            self.publish(server_height, None);
            return Ok(());
        }
        let fork = match ours {
            Some(tip) => self.fork_point(tip.height.min(server_height)).await?,
            None => None,
        };
        let mut next = fork.map_or(0, |height| height + 1);
        if ours.is_some_and(|tip| tip.height >= next) {
            tracing::info!(
                from = next,
                "the Electrum server's chain differs from ours; following it"
            );
        }
        let mut prev = match fork {
            Some(height) => self.chain.hash_at(height)?,
            None => None,
        };
        if next > server_height {
            // The server's chain is a prefix of ours: it went back.
            self.chain.replace(next, &[])?;
            self.publish(server_height, None);
            return Ok(());
        }
        let started = Instant::now();
        let first = next;
        while next <= server_height {
            let starts: Vec<u32> = (0..HEADER_CHUNKS_IN_FLIGHT)
                .map(|i| next + i * HEADER_CHUNK)
                .filter(|start| *start <= server_height)
                .collect();
            let params = starts
                .iter()
                .map(|start| json!([start, HEADER_CHUNK.min(server_height - start + 1)]))
                .collect();
            let replies = self.rpc.batch("blockchain.block.headers", params).await?;
            for (start, reply) in starts.into_iter().zip(replies) {
                let headers = headers_of(reply)?;
                if start != next || headers.is_empty() {
                    // The server's chain got shorter meanwhile: the next sync sees it.
                    return Ok(());
                }
                for header in &headers {
                    let linked = match prev {
                        Some(hash) => prev_of(header) == hash,
                        None => Hash256::of(header) == self.genesis,
                    };
                    if !linked {
                        return Err(Error::ElectrumLagging(
                            "the server's chain changed while we read it".to_owned(),
                        ));
                    }
                    prev = Some(Hash256::of(header));
                }
                self.chain.replace(next, &headers)?;
                next += headers.len() as u32;
                self.publish(server_height, Some((next - first, started.elapsed())));
            }
        }
        Ok(())
    }

    /// The highest height at or below `top` where our chain and the server's hold the same
    /// block, comparing ever larger windows downwards; `None` when they share nothing.
    async fn fork_point(&self, top: u32) -> Result<Option<u32>, Error> {
        let mut top = top;
        let mut window = FORK_WINDOW;
        loop {
            let low = top.saturating_sub(window - 1);
            let answer = self
                .rpc
                .call("blockchain.block.headers", json!([low, top - low + 1]))
                .await?;
            let theirs = headers_of(Ok(answer))?;
            for height in (low..=top).rev() {
                let Some(header) = theirs.get((height - low) as usize) else {
                    continue;
                };
                if self.chain.hash_at(height)? == Some(Hash256::of(header)) {
                    return Ok(Some(height));
                }
            }
            if low == 0 {
                return Ok(None);
            }
            top = low - 1;
            window = (window * 4).min(HEADER_CHUNK);
        }
    }

    /// Publishes the chain's tip and progress; `rate` is (blocks, time) of the current run.
    fn publish(&self, server_height: u32, rate: Option<(u32, Duration)>) {
        let Ok(Some(tip)) = self.chain.tip() else {
            return;
        };
        self.tips.send_if_modified(|current| {
            let changed = *current != tip;
            *current = tip;
            changed
        });
        let mut progress = self.progress.lock().expect("progress lock");
        progress.indexed_height = u64::from(tip.height);
        progress.node_height = u64::from(server_height);
        progress.synced = tip.height >= server_height;
        progress.node_error = None;
        if let Some((blocks, elapsed)) = rate {
            let per_sec_milli = (u128::from(blocks) * 1_000_000)
                .checked_div(elapsed.as_millis().max(1))
                .unwrap_or(0);
            progress.blocks_per_sec_milli = u64::try_from(per_sec_milli).unwrap_or(u64::MAX);
            let left = u64::from(server_height.saturating_sub(tip.height));
            progress.eta_secs = (progress.blocks_per_sec_milli > 0)
                .then(|| left * 1000 / progress.blocks_per_sec_milli);
        }
        if progress.synced {
            progress.eta_secs = Some(0);
        }
    }
}

/// Headers of a `blockchain.block.headers` answer: one hex string (protocol 1.4) or a list
/// (1.6).
fn headers_of(reply: Reply) -> Result<Vec<[u8; 80]>, Error> {
    const METHOD: &str = "blockchain.block.headers";
    let answer = reply.map_err(|e| e.into_error(METHOD))?;
    if let Some(list) = answer.get("headers").and_then(Value::as_array) {
        return list
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| malformed(METHOD, format!("header {item}")))
                    .and_then(header_of_hex)
            })
            .collect();
    }
    let text = answer
        .get("hex")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(METHOD, format!("no headers in {answer}")))?;
    let bytes =
        hex::decode(text).map_err(|e| malformed(METHOD, format!("headers are not hex: {e}")))?;
    if bytes.len() % 80 != 0 {
        return Err(malformed(
            METHOD,
            format!(
                "{} bytes of headers are not a run of 80-byte headers",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(80)
        .map(|chunk| {
            let mut header = [0u8; 80];
            header.copy_from_slice(chunk);
            header
        })
        .collect())
}

/// An 80-byte header from hex.
fn header_of_hex(text: &str) -> Result<[u8; 80], Error> {
    let bytes = hex::decode(text)
        .map_err(|e| malformed("blockchain.block.headers", format!("header not hex: {e}")))?;
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        malformed(
            "blockchain.block.headers",
            format!("a header of {} bytes, not 80", bytes.len()),
        )
    })
}

/// The list of a history, mempool or unspent answer.
fn entries<'a>(method: &str, answer: &'a Value) -> Result<&'a Vec<Value>, Error> {
    answer
        .as_array()
        .ok_or_else(|| malformed(method, format!("not a list: {answer}")))
}

/// `tx_hash` and `height` of a history or unspent entry.
fn txid_and_height(method: &str, entry: &Value) -> Result<(Hash256, i64), Error> {
    let txid = entry
        .get("tx_hash")
        .and_then(Value::as_str)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| malformed(method, format!("no tx_hash in {entry}")))?;
    let height = entry
        .get("height")
        .and_then(Value::as_i64)
        .ok_or_else(|| malformed(method, format!("no height in {entry}")))?;
    Ok((txid, height))
}

/// The reason of a refused broadcast without what servers add around it (ElectrumX quotes
/// the whole transaction in hex).
fn rejection_reason(message: &str) -> String {
    let reason = message.split("\n[").next().unwrap_or(message);
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    reason.chars().take(500).collect()
}

fn unsupported_block(hash: &Hash256, what: &str) -> Error {
    Error::Unsupported(format!(
        "block {hash} carries {what}, which an Electrum server does not serve: its size \
         and weight are not available from this server's Electrum backend"
    ))
}

fn malformed(method: &str, reason: String) -> Error {
    Error::ElectrumMalformed {
        method: method.to_owned(),
        reason,
    }
}

/// A map that forgets its oldest entries beyond a total weight.
struct Bounded<K, V> {
    entries: HashMap<K, (V, usize)>,
    order: VecDeque<K>,
    weight: usize,
    max_weight: usize,
}

impl<K, V> std::fmt::Debug for Bounded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("entries", &self.entries.len())
            .field("weight", &self.weight)
            .finish()
    }
}

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    fn new(max_weight: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            weight: 0,
            max_weight,
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    fn insert(&mut self, key: K, value: V, weight: usize) {
        if self.entries.contains_key(&key) || weight > self.max_weight {
            return;
        }
        self.entries.insert(key.clone(), (value, weight));
        self.order.push_back(key);
        self.weight += weight;
        while self.weight > self.max_weight {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, w)) = self.entries.remove(&oldest) {
                self.weight -= w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_map_forgets_the_oldest_beyond_its_weight() {
        let mut map = Bounded::new(10);
        map.insert(1, "a", 4);
        map.insert(2, "b", 4);
        map.insert(3, "c", 4);
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&2), Some(&"b"));
        assert_eq!(map.get(&3), Some(&"c"));
        map.insert(4, "too heavy", 11);
        assert_eq!(map.get(&4), None);
        assert_eq!(map.get(&3), Some(&"c"));
    }

    #[test]
    fn header_runs_of_both_protocol_shapes() {
        let header = [7u8; 80];
        let hex_run =
            json!({"count": 2, "hex": hex::encode([header, header].concat()), "max": 2016});
        assert_eq!(headers_of(Ok(hex_run)).unwrap(), vec![header, header]);
        let list = json!({"count": 1, "headers": [hex::encode(header)], "max": 2016});
        assert_eq!(headers_of(Ok(list)).unwrap(), vec![header]);
        let short = json!({"count": 1, "hex": "00ff"});
        assert!(headers_of(Ok(short)).is_err());
    }

    #[test]
    fn rejection_reasons_drop_the_quoted_transaction() {
        let message = "the transaction was rejected by network rules.\n\nmissing-inputs\n[0200ab]";
        assert_eq!(
            rejection_reason(message),
            "the transaction was rejected by network rules. missing-inputs"
        );
    }
}
