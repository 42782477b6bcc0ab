//! The chain and mempool as the node itself reports them (`getblock <hash> 2`,
//! `getrawmempool`, `getrawtransaction`), gathered once so tests can derive what the Esplora
//! API must answer (histories, totals, spenders) from the node instead of hard-coding it.
//!
//! Only the canonical (non-MWEB) parts of transactions are kept: those are what the API
//! indexes and serves.

use std::collections::{BTreeSet, HashMap};

use rot_proto::Hash256;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Error, Litecoind};

/// One transaction as the node reports it.
#[derive(Debug, Clone)]
pub struct NodeTx {
    /// Transaction id.
    pub txid: Hash256,
    /// Height and hash of its block; `None` while in the mempool.
    pub block: Option<(u32, Hash256)>,
    /// Index in its block (0 in the mempool).
    pub pos: u32,
    /// The node's verbose view (`getblock` verbosity 2 entry or `getrawtransaction` true).
    pub json: Value,
    /// Canonical outpoints spent (empty for a coinbase).
    pub inputs: Vec<(Hash256, u32)>,
    /// Canonical outputs by index: scriptPubKey hex and value in satoshis. MWEB outputs
    /// (absent from the canonical transaction) are `None`.
    pub outputs: Vec<Option<(String, u64)>>,
}

impl NodeTx {
    fn from_json(json: Value, block: Option<(u32, Hash256)>, pos: u32) -> Result<Self, Error> {
        let bad = |what: &str| Error::Api {
            what: "reading the node's transaction".to_owned(),
            reason: format!("{what} in {json}"),
        };
        let txid: Hash256 =
            serde_json::from_value(json["txid"].clone()).map_err(|_| bad("txid"))?;
        let vin = json["vin"].as_array().ok_or_else(|| bad("vin"))?;
        let inputs = vin
            .iter()
            .filter(|i| i.get("coinbase").is_none() && i["ismweb"] != json!(true))
            .map(|i| {
                let prev: Hash256 =
                    serde_json::from_value(i["txid"].clone()).map_err(|_| bad("vin txid"))?;
                let vout = i["vout"].as_u64().ok_or_else(|| bad("vin vout"))? as u32;
                Ok((prev, vout))
            })
            .collect::<Result<_, Error>>()?;
        let vout = json["vout"].as_array().ok_or_else(|| bad("vout"))?;
        let mut outputs = Vec::new();
        for o in vout {
            if o["ismweb"] == json!(true) {
                continue;
            }
            let n = o["n"].as_u64().ok_or_else(|| bad("vout n"))? as usize;
            let script = o["scriptPubKey"]["hex"]
                .as_str()
                .ok_or_else(|| bad("scriptPubKey"))?
                .to_owned();
            if outputs.len() <= n {
                outputs.resize(n + 1, None);
            }
            outputs[n] = Some((script, sat(&o["value"]).ok_or_else(|| bad("value"))?));
        }
        Ok(Self {
            txid,
            block,
            pos,
            json,
            inputs,
            outputs,
        })
    }
}

/// A coin amount as the node prints it (8 decimals) in satoshis.
pub fn sat(value: &Value) -> Option<u64> {
    let coins = value.as_f64()?;
    (coins >= 0.0).then(|| (coins * 1e8).round() as u64)
}

/// Esplora's `chain_stats` / `mempool_stats`, derived from the node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Outputs paying to the script.
    pub funded_txo_count: u64,
    /// Their total value.
    pub funded_txo_sum: u64,
    /// Outputs of the script spent.
    pub spent_txo_count: u64,
    /// Their total value.
    pub spent_txo_sum: u64,
    /// Transactions touching the script.
    pub tx_count: u64,
}

/// The whole best chain and the mempool as the node reports them.
#[derive(Debug, Clone)]
pub struct ChainView {
    /// Confirmed transactions in chain order, then mempool transactions.
    pub txs: Vec<NodeTx>,
    /// Best-chain block hashes by height.
    pub block_hashes: Vec<Hash256>,
    by_txid: HashMap<Hash256, usize>,
    /// Outpoint → spender (txid, input index).
    spenders: HashMap<(Hash256, u32), (Hash256, u32)>,
}

/// Blocks asked for per RPC batch while loading.
const LOAD_BATCH: u32 = 50;

impl ChainView {
    /// Reads every block of the node's best chain and its whole mempool.
    pub async fn load(node: &Litecoind) -> Result<Self, Error> {
        let (tip, _) = node.tip().await?;
        let rpc = node.rpc();
        let mut block_hashes = Vec::new();
        let mut txs = Vec::new();
        let mut start = 0;
        while start <= tip {
            let end = tip.min(start + LOAD_BATCH - 1);
            let hashes = rpc.get_block_hashes(start..end + 1).await?;
            let calls: Vec<_> = hashes
                .iter()
                .map(|h| rot_server::rpc::RpcCall::new("getblock", json!([h, 2])))
                .collect();
            for ((height, hash), block) in (start..)
                .zip(&hashes)
                .zip(rpc.batch::<Value>(&calls).await?)
            {
                let block = block?;
                let list = block["tx"].as_array().cloned().unwrap_or_default();
                for (pos, tx) in list.into_iter().enumerate() {
                    txs.push(NodeTx::from_json(tx, Some((height, *hash)), pos as u32)?);
                }
            }
            block_hashes.extend(hashes);
            start = end + 1;
        }
        let mempool: Vec<Hash256> = node.call("getrawmempool", json!([])).await?;
        for txid in mempool {
            let tx: Value = node.call("getrawtransaction", json!([txid, true])).await?;
            txs.push(NodeTx::from_json(tx, None, 0)?);
        }
        let mut by_txid = HashMap::new();
        let mut spenders = HashMap::new();
        for (i, tx) in txs.iter().enumerate() {
            // A duplicate txid (none on regtest) would keep the later one, as the node does.
            by_txid.insert(tx.txid, i);
            for (vin, outpoint) in tx.inputs.iter().enumerate() {
                spenders.insert(*outpoint, (tx.txid, vin as u32));
            }
        }
        Ok(Self {
            txs,
            block_hashes,
            by_txid,
            spenders,
        })
    }

    /// A transaction of the chain or mempool.
    pub fn tx(&self, txid: &Hash256) -> Option<&NodeTx> {
        self.by_txid.get(txid).map(|&i| &self.txs[i])
    }

    /// A canonical output: scriptPubKey hex and value.
    pub fn output(&self, txid: &Hash256, vout: u32) -> Option<&(String, u64)> {
        self.tx(txid)?.outputs.get(vout as usize)?.as_ref()
    }

    /// Who spends an output (in the chain or the mempool): txid and input index.
    pub fn spender(&self, txid: &Hash256, vout: u32) -> Option<(Hash256, u32)> {
        self.spenders.get(&(*txid, vout)).copied()
    }

    /// Whether `tx` pays to or spends from `script_hex`.
    pub fn touches(&self, tx: &NodeTx, script_hex: &str) -> bool {
        tx.outputs.iter().flatten().any(|(s, _)| s == script_hex)
            || tx
                .inputs
                .iter()
                .any(|(t, v)| self.output(t, *v).is_some_and(|(s, _)| s == script_hex))
    }

    /// Confirmed transactions touching a script, newest first (block height, then position
    /// in the block, descending).
    pub fn confirmed_history(&self, script_hex: &str) -> Vec<Hash256> {
        let mut txs: Vec<&NodeTx> = self
            .txs
            .iter()
            .filter(|tx| tx.block.is_some() && self.touches(tx, script_hex))
            .collect();
        txs.sort_by_key(|tx| std::cmp::Reverse((tx.block.map(|(h, _)| h), tx.pos)));
        txs.into_iter().map(|tx| tx.txid).collect()
    }

    /// Mempool transactions touching a script.
    pub fn mempool_history(&self, script_hex: &str) -> BTreeSet<Hash256> {
        self.txs
            .iter()
            .filter(|tx| tx.block.is_none() && self.touches(tx, script_hex))
            .map(|tx| tx.txid)
            .collect()
    }

    /// Totals of a script over confirmed (`confirmed`) or mempool transactions, as Esplora
    /// counts them: a spend counts where the spending transaction is.
    pub fn stats(&self, script_hex: &str, confirmed: bool) -> Stats {
        let mut stats = Stats::default();
        for tx in self.txs.iter().filter(|tx| tx.block.is_some() == confirmed) {
            let mut touched = false;
            for (script, value) in tx.outputs.iter().flatten() {
                if script == script_hex {
                    stats.funded_txo_count += 1;
                    stats.funded_txo_sum += value;
                    touched = true;
                }
            }
            for (t, v) in &tx.inputs {
                if let Some((script, value)) = self.output(t, *v)
                    && script == script_hex
                {
                    stats.spent_txo_count += 1;
                    stats.spent_txo_sum += value;
                    touched = true;
                }
            }
            stats.tx_count += u64::from(touched);
        }
        stats
    }
}
