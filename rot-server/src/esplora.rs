//! Esplora JSON: turns what a backend answers (raw transactions, statuses, block records)
//! into the exact shapes of the Esplora REST API, once for every backend.
//!
//! Field names and order follow Blockstream's API.md and electrs, so wallets written against
//! Esplora (BDK's `esplora-client`, browser wallets) read our answers unchanged.

use std::collections::HashMap;

use rot_proto::{Address, CoinProfile, Hash256, ScriptType, Transaction, TxOut, script_asm};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;
use crate::backend::{Backend, BlockSummary, TxStatus};

/// An output as Esplora prints it (also used for an input's `prevout`).
#[derive(Debug, Serialize)]
pub struct OutputJson {
    scriptpubkey: String,
    scriptpubkey_asm: String,
    scriptpubkey_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scriptpubkey_address: Option<String>,
    value: u64,
}

impl OutputJson {
    fn new(profile: &CoinProfile, out: &TxOut<'_>) -> Self {
        Self {
            scriptpubkey: hex::encode(out.script_pubkey),
            scriptpubkey_asm: script_asm(out.script_pubkey),
            scriptpubkey_type: ScriptType::classify(out.script_pubkey).as_str(),
            scriptpubkey_address: Address::from_script(profile, out.script_pubkey)
                .map(|a| a.to_string()),
            value: out.value,
        }
    }
}

/// Builds Esplora transaction objects for `txids`, fetching the transactions and their
/// prevouts from `backend` in two batched round trips. `with_status` adds each one's status
/// (block listings leave it out, as Esplora does).
pub async fn transactions_json(
    backend: &dyn Backend,
    profile: &CoinProfile,
    txids: &[Hash256],
    with_status: bool,
) -> Result<Vec<Value>, Error> {
    if txids.is_empty() {
        return Ok(Vec::new());
    }
    let raws = backend.transactions(txids).await?;
    let txs = raws
        .iter()
        .map(|raw| parse_stored(raw, profile))
        .collect::<Result<Vec<_>, _>>()?;

    let mut prev_ids: Vec<Hash256> = txs
        .iter()
        .filter(|tx| !tx.is_coinbase())
        .flat_map(|tx| tx.inputs().iter().map(|i| i.prevout.txid))
        .collect();
    prev_ids.sort_unstable();
    prev_ids.dedup();
    let prev_raws = backend.transactions(&prev_ids).await?;
    let mut prevs: HashMap<Hash256, Transaction> = HashMap::with_capacity(prev_ids.len());
    for (txid, raw) in prev_ids.iter().zip(&prev_raws) {
        prevs.insert(*txid, parse_stored(raw, profile)?);
    }
    let statuses = if with_status {
        Some(backend.tx_statuses(txids).await?)
    } else {
        None
    };

    txs.iter()
        .enumerate()
        .map(|(i, tx)| {
            let status = statuses.as_ref().map(|s| s[i]);
            transaction_json(profile, tx, &raws[i], &prevs, status)
        })
        .collect()
}

/// Parses a transaction a backend handed us: failing here is the backend's fault, not the client's.
fn parse_stored<'a>(raw: &'a [u8], profile: &CoinProfile) -> Result<Transaction<'a>, Error> {
    Transaction::parse(raw, &profile.rules).map_err(|e| {
        Error::Corrupt(format!(
            "backend returned a transaction that does not parse: {e}"
        ))
    })
}

fn transaction_json(
    profile: &CoinProfile,
    tx: &Transaction<'_>,
    raw: &[u8],
    prevs: &HashMap<Hash256, Transaction<'_>>,
    status: Option<TxStatus>,
) -> Result<Value, Error> {
    let coinbase = tx.is_coinbase();
    let mut input_sum = 0u64;
    let vin = tx
        .inputs()
        .iter()
        .map(|input| {
            let prevout = if coinbase {
                None
            } else {
                let prev_tx = prevs.get(&input.prevout.txid).ok_or_else(|| {
                    Error::Corrupt(format!("prevout tx {} missing", input.prevout.txid))
                })?;
                let out = prev_tx
                    .outputs()
                    .get(input.prevout.vout as usize)
                    .ok_or_else(|| {
                        Error::Corrupt(format!(
                            "prevout {}:{} missing",
                            input.prevout.txid, input.prevout.vout
                        ))
                    })?;
                input_sum += out.value;
                Some(OutputJson::new(profile, out))
            };
            Ok(json!({
                "txid": input.prevout.txid,
                "vout": input.prevout.vout,
                "prevout": prevout,
                "scriptsig": hex::encode(input.script_sig),
                "scriptsig_asm": script_asm(input.script_sig),
                "witness": input.witness.iter().map(hex::encode).collect::<Vec<_>>(),
                "is_coinbase": coinbase,
                "sequence": input.sequence,
            }))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let vout: Vec<OutputJson> = tx
        .outputs()
        .iter()
        .map(|o| OutputJson::new(profile, o))
        .collect();
    let output_sum: u64 = tx.outputs().iter().map(|o| o.value).sum();
    let fee = if coinbase {
        0
    } else {
        input_sum.saturating_sub(output_sum)
    };
    let mut value = json!({
        "txid": tx.txid(),
        "version": tx.version(),
        "locktime": tx.lock_time(),
        "vin": vin,
        "vout": vout,
        "size": raw.len(),
        "weight": tx.weight(),
        "fee": fee,
    });
    if let Some(status) = status {
        value["status"] =
            serde_json::to_value(status).map_err(|e| Error::Corrupt(e.to_string()))?;
    }
    Ok(value)
}

/// Esplora's block object.
pub fn block_json(hash: &Hash256, block: &BlockSummary) -> Value {
    let h = &block.header;
    let le32 = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let prev = Hash256(h[4..36].try_into().expect("80-byte header"));
    let merkle_root = Hash256(h[36..68].try_into().expect("80-byte header"));
    let bits = le32(72);
    let mut value = json!({
        "id": hash,
        "height": block.height,
        "version": le32(0),
        "timestamp": le32(68),
        "tx_count": block.tx_count,
        "size": block.size,
        "weight": block.weight,
        "merkle_root": merkle_root,
        "previousblockhash": prev,
        "mediantime": block.median_time,
        "nonce": le32(76),
        "bits": bits,
        "difficulty": difficulty(bits),
    });
    if block.height == 0 {
        value["previousblockhash"] = Value::Null;
    }
    value
}

/// Difficulty relative to the easiest sha256d target (compact 0x1d00ffff), as Core computes it.
fn difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mut diff = f64::from(0x0000_ffff) / f64::from((bits & 0x00ff_ffff).max(1));
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_matches_core() {
        assert_eq!(difficulty(0x1d00ffff), 1.0);
        // Litecoin regtest's minimum difficulty.
        assert!((difficulty(0x207fffff) - 4.656542373906925e-10).abs() < 1e-20);
    }
}
