//! Transactions the chain builder signs itself: version 2, final sequences, no lock time,
//! SIGHASH_ALL. P2WPKH inputs are signed with the BIP 143 digest, P2PKH inputs with the legacy
//! one. Signing locally (instead of the node's wallet, which manages only tens of
//! transactions per second) is what makes a 100,000-transaction chain quick to build.

use anyhow::Context;
use k256::ecdsa::Signature;
use k256::ecdsa::signature::hazmat::PrehashSigner;
use rot_proto::Hash256;
use rot_proto::encode::Sink;
use rot_proto::hash::sha256d;

use crate::key::{BenchKey, KeyKind};

/// Transaction version written.
const VERSION: i32 = 2;
/// Every input is final.
const SEQUENCE: u32 = 0xffff_ffff;
/// Signs all inputs and all outputs.
const SIGHASH_ALL: u8 = 1;

/// A coin the builder owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coin {
    /// Funding transaction.
    pub txid: Hash256,
    /// Output index in it.
    pub vout: u32,
    /// Amount in satoshis (the BIP 143 digest commits to it).
    pub value: u64,
    /// Index of the key it pays to.
    pub key: u32,
}

/// One output to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Amount in satoshis.
    pub value: u64,
    /// Index of the key it pays to.
    pub key: u32,
}

/// A signed transaction ready for `sendrawtransaction`.
#[derive(Debug, Clone)]
pub struct SignedTx {
    /// Its id.
    pub txid: Hash256,
    /// The full serialization, with witnesses when any input has one.
    pub raw: Vec<u8>,
}

/// Builds and signs a transaction spending `coins` (owned by `keys`) to `payments`.
pub fn sign(coins: &[Coin], payments: &[Payment], keys: &[BenchKey]) -> anyhow::Result<SignedTx> {
    let key_of = |index: u32| {
        keys.get(index as usize)
            .with_context(|| format!("no key {index}"))
    };
    let outputs = payments
        .iter()
        .map(|p| Ok((p.value, key_of(p.key)?.script_pubkey.as_slice())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let unsigned = Unsigned {
        coins,
        outputs: &outputs,
    };
    let mut script_sigs = Vec::with_capacity(coins.len());
    let mut witnesses = Vec::with_capacity(coins.len());
    for (index, coin) in coins.iter().enumerate() {
        let key = key_of(coin.key)?;
        let digest = match key.kind {
            KeyKind::P2wpkh => unsigned.bip143_digest(index, key),
            KeyKind::P2pkh => unsigned.legacy_digest(index, key),
        };
        let signature: Signature = key
            .signing
            .sign_prehash(&digest)
            .context("signing an input")?;
        let mut endorsement = signature.to_der().as_bytes().to_vec();
        endorsement.push(SIGHASH_ALL);
        match key.kind {
            KeyKind::P2wpkh => {
                script_sigs.push(Vec::new());
                witnesses.push(vec![endorsement, key.public.to_vec()]);
            }
            KeyKind::P2pkh => {
                let mut script_sig = Vec::with_capacity(endorsement.len() + 35);
                push_data(&mut script_sig, &endorsement);
                push_data(&mut script_sig, &key.public);
                script_sigs.push(script_sig);
                witnesses.push(Vec::new());
            }
        }
    }
    let mut stripped = Vec::new();
    unsigned.write(&mut stripped, |i| &script_sigs[i], None);
    let raw = if witnesses.iter().any(|w| !w.is_empty()) {
        let mut raw = Vec::new();
        unsigned.write(&mut raw, |i| &script_sigs[i], Some(&witnesses));
        raw
    } else {
        stripped.clone()
    };
    Ok(SignedTx {
        txid: Hash256::of(&stripped),
        raw,
    })
}

/// The parts every signature digest is computed from.
struct Unsigned<'a> {
    coins: &'a [Coin],
    outputs: &'a [(u64, &'a [u8])],
}

impl Unsigned<'_> {
    /// Writes the transaction with `script_sig(i)` as each input's script and, when given,
    /// the segwit marker and witnesses.
    fn write<'s>(
        &self,
        sink: &mut impl Sink,
        script_sig: impl Fn(usize) -> &'s [u8],
        witnesses: Option<&[Vec<Vec<u8>>]>,
    ) {
        sink.put_i32(VERSION);
        if witnesses.is_some() {
            sink.put(&[0, 1]);
        }
        sink.put_compact_size(self.coins.len() as u64);
        for (index, coin) in self.coins.iter().enumerate() {
            sink.put(coin.txid.as_bytes());
            sink.put_u32(coin.vout);
            sink.put_var_bytes(script_sig(index));
            sink.put_u32(SEQUENCE);
        }
        self.write_outputs(sink);
        for stack in witnesses.unwrap_or_default() {
            sink.put_compact_size(stack.len() as u64);
            for item in stack {
                sink.put_var_bytes(item);
            }
        }
        sink.put_u32(0);
    }

    fn write_outputs(&self, sink: &mut impl Sink) {
        sink.put_compact_size(self.outputs.len() as u64);
        for (value, script) in self.outputs {
            sink.put_u64(*value);
            sink.put_var_bytes(script);
        }
    }

    /// The pre-segwit digest: the transaction with the spent script in place of this input's
    /// scriptSig and empty scripts elsewhere, followed by the sighash type.
    fn legacy_digest(&self, input: usize, key: &BenchKey) -> [u8; 32] {
        let script_code = key.script_code();
        let mut preimage = Vec::new();
        self.write(
            &mut preimage,
            |i| if i == input { &script_code } else { &[] },
            None,
        );
        preimage.put_u32(u32::from(SIGHASH_ALL));
        sha256d(&preimage)
    }

    /// BIP 143's digest, which commits to the spent amount.
    fn bip143_digest(&self, input: usize, key: &BenchKey) -> [u8; 32] {
        let mut prevouts = Vec::with_capacity(36 * self.coins.len());
        let mut sequences = Vec::with_capacity(4 * self.coins.len());
        for coin in self.coins {
            prevouts.put(coin.txid.as_bytes());
            prevouts.put_u32(coin.vout);
            sequences.put_u32(SEQUENCE);
        }
        let mut outputs = Vec::new();
        self.write_outputs(&mut outputs);
        // The output count is not part of hashOutputs.
        let outputs_without_count = &outputs[compact_size_len(self.outputs.len())..];
        let coin = &self.coins[input];
        let mut preimage = Vec::with_capacity(160);
        preimage.put_i32(VERSION);
        preimage.put(&sha256d(&prevouts));
        preimage.put(&sha256d(&sequences));
        preimage.put(coin.txid.as_bytes());
        preimage.put_u32(coin.vout);
        preimage.put_var_bytes(&key.script_code());
        preimage.put_u64(coin.value);
        preimage.put_u32(SEQUENCE);
        preimage.put(&sha256d(outputs_without_count));
        preimage.put_u32(0);
        preimage.put_u32(u32::from(SIGHASH_ALL));
        sha256d(&preimage)
    }
}

fn compact_size_len(value: usize) -> usize {
    rot_proto::encode::compact_size_len(value as u64)
}

/// A minimal push of up to 75 bytes (signatures and public keys always are).
fn push_data(script: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(data.len() <= 75);
    script.push(data.len() as u8);
    script.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use rot_proto::{Coins, Network, Transaction};

    use super::*;
    use crate::key::derive_keys;

    #[test]
    fn signed_transactions_parse_with_the_protocol_crate() {
        let coins_registry = Coins::builtin();
        let profile = coins_registry.get("LTC", Network::Regtest).unwrap();
        let keys = derive_keys(4, profile).unwrap();
        let coins = [
            Coin {
                txid: Hash256([7; 32]),
                vout: 1,
                value: 50_000,
                key: 0,
            },
            Coin {
                txid: Hash256([8; 32]),
                vout: 0,
                value: 60_000,
                key: 1,
            },
        ];
        let payments = [
            Payment {
                value: 70_000,
                key: 2,
            },
            Payment {
                value: 30_000,
                key: 3,
            },
        ];
        let signed = sign(&coins, &payments, &keys).unwrap();
        let tx = Transaction::parse(&signed.raw, &profile.rules).unwrap();
        assert_eq!(tx.txid(), signed.txid);
        assert!(tx.has_witness());
        assert_eq!(tx.inputs()[0].prevout.txid, coins[0].txid);
        assert!(tx.inputs()[0].script_sig.is_empty());
        assert_eq!(tx.inputs()[0].witness.len(), 2);
        assert!(tx.inputs()[1].witness.is_empty());
        assert_eq!(tx.outputs()[1].script_pubkey, keys[3].script_pubkey);
        assert_eq!(tx.serialize(), signed.raw);
    }
}
