//! The Esplora REST answers that wallets and the conformance checks read: address totals,
//! unspent outputs, transaction and spend statuses. Field names follow Blockstream's API.md,
//! so answers of rot-server, electrs and mempool.space all parse. Receivers ignore fields
//! they do not read (an Esplora transaction object carries many more).

use serde::{Deserialize, Serialize};

use crate::Hash256;

/// Totals of one script's outputs: Esplora's `chain_stats` or `mempool_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptStats {
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

/// `GET /address/:a` (or `/scripthash/:h`): confirmed totals and the mempool's changes to
/// them. A spend counts where the spending transaction is, so a mempool spend of a confirmed
/// output is in `mempool_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressStats {
    /// Totals over confirmed transactions.
    pub chain_stats: ScriptStats,
    /// Totals over mempool transactions.
    pub mempool_stats: ScriptStats,
}

impl AddressStats {
    /// Value of the confirmed unspent outputs as of the chain alone; `None` when the totals
    /// contradict themselves (more spent than funded).
    pub fn confirmed_balance(&self) -> Option<u64> {
        let c = &self.chain_stats;
        c.funded_txo_sum.checked_sub(c.spent_txo_sum)
    }

    /// Value of the outputs still unspent once the mempool is counted (what `/utxo` lists);
    /// `None` when the totals contradict themselves.
    pub fn balance(&self) -> Option<u64> {
        let (c, m) = (&self.chain_stats, &self.mempool_stats);
        let funded = c.funded_txo_sum.checked_add(m.funded_txo_sum)?;
        let spent = c.spent_txo_sum.checked_add(m.spent_txo_sum)?;
        funded.checked_sub(spent)
    }

    /// Number of outputs still unspent once the mempool is counted; `None` when the counts
    /// contradict themselves.
    pub fn unspent_count(&self) -> Option<u64> {
        let (c, m) = (&self.chain_stats, &self.mempool_stats);
        let funded = c.funded_txo_count.checked_add(m.funded_txo_count)?;
        let spent = c.spent_txo_count.checked_add(m.spent_txo_count)?;
        funded.checked_sub(spent)
    }
}

/// Where a transaction stands: Esplora's `status` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatus {
    /// In a block of the best chain.
    pub confirmed: bool,
    /// Height of that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_height: Option<u32>,
    /// Hash of that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<Hash256>,
    /// That block's header time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_time: Option<u64>,
}

/// One entry of `GET /address/:a/utxo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utxo {
    /// The funding transaction.
    pub txid: Hash256,
    /// The output's index in it.
    pub vout: u32,
    /// Its value in the coin's smallest unit.
    pub value: u64,
    /// Where the funding transaction stands.
    pub status: TxStatus,
}

/// `GET /tx/:txid/outspend/:vout`: whether an output is spent and by which input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutSpend {
    /// Spent in the best chain or the mempool.
    pub spent: bool,
    /// The spending transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<Hash256>,
    /// The spending input's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<u32>,
    /// Where the spending transaction stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TxStatus>,
}

/// The part of an Esplora transaction object (as listed by `/address/:a/txs`) that locates
/// it: its id and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSummary {
    /// Transaction id.
    pub txid: Hash256,
    /// Where it stands.
    pub status: TxStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn balances_count_the_mempool_where_the_spend_is() {
        let stats: AddressStats = serde_json::from_value(json!({
            "address": "ignored",
            "chain_stats": {"funded_txo_count": 3, "funded_txo_sum": 600, "spent_txo_count": 1,
                            "spent_txo_sum": 100, "tx_count": 4},
            "mempool_stats": {"funded_txo_count": 1, "funded_txo_sum": 50, "spent_txo_count": 2,
                              "spent_txo_sum": 300, "tx_count": 1}
        }))
        .unwrap();
        assert_eq!(stats.confirmed_balance(), Some(500));
        assert_eq!(stats.balance(), Some(250));
        assert_eq!(stats.unspent_count(), Some(1));
        let contradictory = AddressStats {
            chain_stats: ScriptStats {
                funded_txo_sum: 1,
                spent_txo_sum: 2,
                ..ScriptStats::default()
            },
            ..AddressStats::default()
        };
        assert_eq!(contradictory.confirmed_balance(), None);
        assert_eq!(contradictory.balance(), None);
    }

    #[test]
    fn unconfirmed_status_has_no_block_fields() {
        let utxo: Utxo = serde_json::from_value(json!({
            "txid": "11".repeat(32), "vout": 1, "value": 5, "status": {"confirmed": false}
        }))
        .unwrap();
        assert_eq!(utxo.status, TxStatus::default());
        assert_eq!(
            serde_json::to_value(utxo.status).unwrap(),
            json!({"confirmed": false})
        );
        let spend: OutSpend = serde_json::from_value(json!({"spent": false})).unwrap();
        assert_eq!(spend, OutSpend::default());
    }
}
