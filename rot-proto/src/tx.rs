//! Transactions of bitcoin-family chains, parsed per [`ChainRules`] into a view that borrows
//! scripts and witnesses from the input bytes. The ids are computed while parsing by hashing
//! slices of the input, so an indexer gets txid, prevouts, values and scripts of every
//! transaction without copying or re-serializing anything.
//!
//! Layouts: legacy; BIP 144 extended (marker 0x00, flag bit 0x01, witness stacks after the
//! outputs); Peercoin-style `nTime` after the version; Litecoin MWEB (flag bit 0x08: an
//! optional MWEB transaction after the witnesses, absent in a block's HogEx transaction).

use sha2::{Digest, Sha256};

use crate::encode::{Reader, Sink, finish_sha256d};
use crate::mweb::{MwebTx, read_present};
use crate::{ChainRules, Error, Hash256};

/// Smallest serialized input: outpoint, empty script, sequence.
const MIN_INPUT: usize = 32 + 4 + 1 + 4;
/// Smallest serialized output: value and empty script.
const MIN_OUTPUT: usize = 8 + 1;
/// Extended-serialization flag bit: witness stacks follow the outputs.
const FLAG_WITNESS: u8 = 0x01;
/// Extended-serialization flag bit (Litecoin): MWEB data follows the witnesses.
const FLAG_MWEB: u8 = 0x08;

/// A reference to an output of an earlier transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutPoint {
    /// Id of the transaction holding the output.
    pub txid: Hash256,
    /// Index of the output in that transaction.
    pub vout: u32,
}

impl OutPoint {
    /// The outpoint of a coinbase input: zero hash, index `u32::MAX`.
    pub const NULL: OutPoint = OutPoint {
        txid: Hash256([0; 32]),
        vout: u32::MAX,
    };

    /// Whether this is the coinbase marker rather than a real output.
    pub fn is_null(&self) -> bool {
        *self == Self::NULL
    }
}

/// A transaction input, borrowing its script and witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxIn<'a> {
    /// The output being spent.
    pub prevout: OutPoint,
    /// Unlocking script (coinbase data for a coinbase input).
    pub script_sig: &'a [u8],
    /// Sequence number (relative lock time, RBF signalling).
    pub sequence: u32,
    /// Segregated witness stack; empty for legacy inputs.
    pub witness: Witness<'a>,
}

/// A transaction output, borrowing its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOut<'a> {
    /// Amount in the coin's smallest unit.
    pub value: u64,
    /// Locking script.
    pub script_pubkey: &'a [u8],
}

/// The witness stack of one input, kept as the serialized items so that parsing allocates
/// nothing per input; iterate it for the items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Witness<'a> {
    items: usize,
    raw: &'a [u8],
}

impl<'a> Witness<'a> {
    fn read(reader: &mut Reader<'a>) -> Result<Self, Error> {
        let items = reader.count(1)?;
        let start = reader.position();
        for _ in 0..items {
            reader.var_bytes()?;
        }
        Ok(Self {
            items,
            raw: reader.since(start),
        })
    }

    /// Number of stack items.
    pub fn len(&self) -> usize {
        self.items
    }

    /// Whether the stack has no items.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The stack items, bottom first.
    pub fn iter(&self) -> WitnessItems<'a> {
        WitnessItems {
            reader: Reader::new(self.raw),
            left: self.items,
        }
    }
}

/// Iterator over the items of a [`Witness`].
#[derive(Debug, Clone)]
pub struct WitnessItems<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for WitnessItems<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        // The items were validated when the witness was parsed.
        self.reader.var_bytes().ok()
    }
}

/// The MWEB part of a Litecoin transaction whose MWEB flag is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MwebData<'a> {
    /// Flag set without an MWEB transaction: the block's integrating (HogEx) transaction,
    /// which moves coins between the canonical chain and the extension block.
    HogEx,
    /// An MWEB transaction, as carried by relayed (mempool) transactions.
    Tx(MwebTx<'a>),
}

/// A parsed transaction borrowing from its serialized bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction<'a> {
    version: i32,
    time: Option<u32>,
    inputs: Vec<TxIn<'a>>,
    outputs: Vec<TxOut<'a>>,
    lock_time: u32,
    mweb: Option<MwebData<'a>>,
    raw: &'a [u8],
    txid: Hash256,
    /// Version (and PoS time): the part before the inputs.
    header: &'a [u8],
    /// Input and output vectors.
    body: &'a [u8],
    /// Witness stacks of all inputs; empty without witness.
    witnesses: &'a [u8],
}

impl<'a> Transaction<'a> {
    /// Parses one transaction that must span all of `bytes`.
    pub fn parse(bytes: &'a [u8], rules: &ChainRules) -> Result<Self, Error> {
        let mut reader = Reader::new(bytes);
        let tx = Self::read(&mut reader, rules)?;
        reader.finish()?;
        Ok(tx)
    }

    /// Parses the transaction at the reader's position (used for the transactions of a block).
    pub fn read(reader: &mut Reader<'a>, rules: &ChainRules) -> Result<Self, Error> {
        let start = reader.position();
        let version = reader.i32()?;
        let time = if rules.pos_ntime {
            Some(reader.u32()?)
        } else {
            None
        };
        let header = reader.since(start);

        let mut body_start = reader.position();
        let mut inputs = read_inputs(reader)?;
        let mut flags = 0;
        if inputs.is_empty() && (rules.segwit || rules.mweb) {
            // An empty input vector is the marker of the extended serialization.
            let offset = reader.position();
            flags = reader.u8()?;
            let allowed = if rules.segwit { FLAG_WITNESS } else { 0 }
                | if rules.mweb { FLAG_MWEB } else { 0 };
            if flags == 0 || flags & !allowed != 0 {
                return Err(Error::InvalidTxFlags { offset, flags });
            }
            body_start = reader.position();
            inputs = read_inputs(reader)?;
        }
        let outputs = read_outputs(reader)?;
        let body = reader.since(body_start);

        let mut witnesses: &[u8] = &[];
        if flags & FLAG_WITNESS != 0 {
            let witness_start = reader.position();
            for input in &mut inputs {
                input.witness = Witness::read(reader)?;
            }
            if inputs.iter().all(|input| input.witness.is_empty()) {
                return Err(Error::SuperfluousWitness { offset: start });
            }
            witnesses = reader.since(witness_start);
        }

        let mut mweb = None;
        if flags & FLAG_MWEB != 0 {
            let offset = reader.position();
            mweb = Some(if read_present(reader)? {
                MwebData::Tx(MwebTx::read(reader)?)
            } else if outputs.is_empty() {
                return Err(Error::InvalidMweb {
                    offset,
                    reason: "HogEx transaction without outputs",
                });
            } else {
                MwebData::HogEx
            });
        }

        let lock_bytes = reader.array::<4>()?;
        let raw = reader.since(start);
        let mweb_only = inputs.is_empty() && outputs.is_empty();

        // The txid hashes the serialization without witness and MWEB data, fed from slices of
        // the input; an MWEB-only transaction is named by its first kernel.
        let txid = match (&mweb, flags) {
            (Some(MwebData::Tx(mweb_tx)), _) if mweb_only => Hash256(mweb_tx.first_kernel_id()),
            (_, 0) => Hash256::of(raw),
            _ => hash_parts(&[header, body, &lock_bytes]),
        };

        Ok(Self {
            version,
            time,
            inputs,
            outputs,
            lock_time: u32::from_le_bytes(lock_bytes),
            mweb,
            raw,
            txid,
            header,
            body,
            witnesses,
        })
    }

    /// Transaction version.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// Proof-of-stake timestamp, present when the chain's rules have `pos_ntime`.
    pub fn time(&self) -> Option<u32> {
        self.time
    }

    /// Canonical inputs.
    pub fn inputs(&self) -> &[TxIn<'a>] {
        &self.inputs
    }

    /// Canonical outputs.
    pub fn outputs(&self) -> &[TxOut<'a>] {
        &self.outputs
    }

    /// Lock time (block height or timestamp).
    pub fn lock_time(&self) -> u32 {
        self.lock_time
    }

    /// MWEB data, present when the MWEB flag is set.
    pub fn mweb(&self) -> Option<&MwebData<'a>> {
        self.mweb.as_ref()
    }

    /// The bytes this transaction was parsed from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Transaction id: hash of the serialization without witness and MWEB data.
    pub fn txid(&self) -> Hash256 {
        self.txid
    }

    /// Witness transaction id: hash of the serialization with witness but without MWEB data;
    /// equals the txid when there is no witness. Computed on demand (indexing needs only the
    /// txid).
    pub fn wtxid(&self) -> Hash256 {
        if !self.has_witness() || self.is_mweb_only() {
            self.txid
        } else if self.mweb.is_none() {
            Hash256::of(self.raw)
        } else {
            let lock_bytes = self.lock_time.to_le_bytes();
            hash_parts(&[
                self.header,
                &[0, FLAG_WITNESS],
                self.body,
                self.witnesses,
                &lock_bytes,
            ])
        }
    }

    /// Whether this is a coinbase: one input spending the null outpoint.
    pub fn is_coinbase(&self) -> bool {
        matches!(&self.inputs[..], [input] if input.prevout.is_null())
    }

    /// Whether any input has a witness.
    pub fn has_witness(&self) -> bool {
        !self.witnesses.is_empty()
    }

    /// Whether this is a Litecoin HogEx (integrating) transaction.
    pub fn is_hogex(&self) -> bool {
        self.mweb == Some(MwebData::HogEx)
    }

    /// Whether this is a Litecoin transaction with only MWEB inputs and outputs.
    pub fn is_mweb_only(&self) -> bool {
        self.inputs.is_empty() && self.outputs.is_empty()
    }

    /// Serialized size with everything (node and Esplora `size`).
    pub fn size(&self) -> usize {
        self.raw.len()
    }

    /// Size without witness and MWEB data (BIP 141 stripped size).
    pub fn base_size(&self) -> usize {
        self.header.len() + self.body.len() + 4
    }

    /// Weight as Litecoin Core and Esplora report it: BIP 141 weight of the serialization
    /// without MWEB data, plus, for a transaction carrying MWEB data, the weight of the HogEx
    /// inputs (peg-ins) and outputs (peg-outs) it causes; an MWEB-only transaction weighs only
    /// its peg-outs.
    pub fn weight(&self) -> u64 {
        match &self.mweb {
            Some(MwebData::Tx(mweb_tx)) if self.is_mweb_only() => mweb_tx.hogex_weight(true),
            Some(MwebData::Tx(mweb_tx)) => self.canonical_weight() + mweb_tx.hogex_weight(false),
            _ => self.canonical_weight(),
        }
    }

    /// BIP 141 weight of the serialization without MWEB data: what a block's weight counts.
    pub(crate) fn canonical_weight(&self) -> u64 {
        // Marker and flag bytes come with the witness stacks.
        let witness_size = if self.has_witness() {
            2 + self.witnesses.len()
        } else {
            0
        };
        (self.base_size() * 4 + witness_size) as u64
    }

    /// Virtual size: weight / 4, rounded up.
    pub fn vsize(&self) -> u64 {
        self.weight().div_ceil(4)
    }

    /// The full serialization, rebuilt from the parsed fields (equals [`Self::raw`] for any
    /// canonically encoded transaction).
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len());
        self.write(&mut out, true, true);
        out
    }

    /// The serialization without witness and MWEB data: the preimage of the txid.
    pub fn serialize_without_witness(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.base_size());
        self.write(&mut out, false, false);
        out
    }

    fn write<S: Sink>(&self, sink: &mut S, with_witness: bool, with_mweb: bool) {
        sink.put_i32(self.version);
        if let Some(time) = self.time {
            sink.put_u32(time);
        }
        let mut flags = 0;
        if with_witness && self.has_witness() {
            flags |= FLAG_WITNESS;
        }
        if with_mweb && self.mweb.is_some() {
            flags |= FLAG_MWEB;
        }
        if flags != 0 {
            sink.put(&[0, flags]);
        }
        sink.put_compact_size(self.inputs.len() as u64);
        for input in &self.inputs {
            sink.put(input.prevout.txid.as_bytes());
            sink.put_u32(input.prevout.vout);
            sink.put_var_bytes(input.script_sig);
            sink.put_u32(input.sequence);
        }
        sink.put_compact_size(self.outputs.len() as u64);
        for output in &self.outputs {
            sink.put_u64(output.value);
            sink.put_var_bytes(output.script_pubkey);
        }
        if flags & FLAG_WITNESS != 0 {
            for input in &self.inputs {
                sink.put_compact_size(input.witness.items as u64);
                sink.put(input.witness.raw);
            }
        }
        if flags & FLAG_MWEB != 0 {
            match &self.mweb {
                Some(MwebData::Tx(mweb_tx)) => {
                    sink.put_u8(1);
                    sink.put(mweb_tx.raw());
                }
                _ => sink.put_u8(0),
            }
        }
        sink.put_u32(self.lock_time);
    }
}

/// Double SHA-256 of the concatenated parts, without building the concatenation.
fn hash_parts(parts: &[&[u8]]) -> Hash256 {
    let mut hasher = Sha256::new();
    parts.iter().for_each(|part| hasher.put(part));
    finish_sha256d(hasher)
}

fn read_inputs<'a>(reader: &mut Reader<'a>) -> Result<Vec<TxIn<'a>>, Error> {
    let count = reader.count(MIN_INPUT)?;
    let mut inputs = Vec::with_capacity(count);
    for _ in 0..count {
        inputs.push(TxIn {
            prevout: OutPoint {
                txid: reader.hash()?,
                vout: reader.u32()?,
            },
            script_sig: reader.var_bytes()?,
            sequence: reader.u32()?,
            witness: Witness::default(),
        });
    }
    Ok(inputs)
}

fn read_outputs<'a>(reader: &mut Reader<'a>) -> Result<Vec<TxOut<'a>>, Error> {
    let count = reader.count(MIN_OUTPUT)?;
    let mut outputs = Vec::with_capacity(count);
    for _ in 0..count {
        outputs.push(TxOut {
            value: reader.u64()?,
            script_pubkey: reader.var_bytes()?,
        });
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PowAlgorithm;

    const BITCOIN: ChainRules = ChainRules {
        pow: PowAlgorithm::Sha256d,
        segwit: true,
        mweb: false,
        auxpow: false,
        pos_ntime: false,
    };

    /// Builds a one-input, one-output transaction, with a witness when `witness` is non-empty.
    fn build(rules: &ChainRules, witness: &[&[u8]]) -> Vec<u8> {
        let mut tx = Vec::new();
        tx.put_i32(2);
        if rules.pos_ntime {
            tx.put_u32(1_700_000_000);
        }
        if !witness.is_empty() {
            tx.put(&[0, FLAG_WITNESS]);
        }
        tx.put_compact_size(1);
        tx.put(&[0xab; 32]);
        tx.put_u32(3);
        tx.put_var_bytes(&[0x51]);
        tx.put_u32(0xffff_fffe);
        tx.put_compact_size(1);
        tx.put_u64(5_000);
        tx.put_var_bytes(&[0x00, 0x14, 0x01, 0x02]);
        if !witness.is_empty() {
            tx.put_compact_size(witness.len() as u64);
            witness.iter().for_each(|item| tx.put_var_bytes(item));
        }
        tx.put_u32(99);
        tx
    }

    #[test]
    fn legacy_transaction_fields_and_ids() {
        let bytes = build(&BITCOIN, &[]);
        let tx = Transaction::parse(&bytes, &BITCOIN).unwrap();
        assert_eq!(tx.version(), 2);
        assert_eq!(
            tx.inputs()[0].prevout,
            OutPoint {
                txid: Hash256([0xab; 32]),
                vout: 3
            }
        );
        assert_eq!(tx.inputs()[0].script_sig, &[0x51]);
        assert_eq!(tx.inputs()[0].sequence, 0xffff_fffe);
        assert_eq!(tx.outputs()[0].value, 5_000);
        assert_eq!(tx.lock_time(), 99);
        assert_eq!(tx.txid(), Hash256::of(&bytes));
        assert_eq!(tx.wtxid(), tx.txid());
        assert_eq!(tx.weight(), 4 * bytes.len() as u64);
        assert!(!tx.is_coinbase() && !tx.has_witness());
        assert_eq!(tx.serialize(), bytes);
    }

    #[test]
    fn segwit_txid_excludes_witness() {
        let bytes = build(&BITCOIN, &[b"sig", b"", b"key"]);
        let tx = Transaction::parse(&bytes, &BITCOIN).unwrap();
        let stripped = build(&BITCOIN, &[]);
        assert_eq!(tx.txid(), Hash256::of(&stripped));
        assert_eq!(tx.serialize_without_witness(), stripped);
        assert_eq!(tx.wtxid(), Hash256::of(&bytes));
        let items: Vec<&[u8]> = tx.inputs()[0].witness.iter().collect();
        assert_eq!(items, [&b"sig"[..], b"", b"key"]);
        assert_eq!(tx.base_size(), stripped.len());
        assert_eq!(tx.weight(), (3 * stripped.len() + bytes.len()) as u64);
        assert_eq!(tx.vsize(), tx.weight().div_ceil(4));
        assert_eq!(tx.serialize(), bytes);
    }

    #[test]
    fn pos_time_is_part_of_the_transaction() {
        let rules = ChainRules {
            pos_ntime: true,
            segwit: false,
            ..BITCOIN
        };
        let bytes = build(&rules, &[]);
        let tx = Transaction::parse(&bytes, &rules).unwrap();
        assert_eq!(tx.time(), Some(1_700_000_000));
        assert_eq!(tx.txid(), Hash256::of(&bytes));
        assert!(Transaction::parse(&bytes, &BITCOIN).is_err());
    }

    #[test]
    fn witness_flag_rejected_without_segwit_or_without_witness() {
        let bytes = build(&BITCOIN, &[b"x"]);
        let legacy = ChainRules {
            segwit: false,
            ..BITCOIN
        };
        assert!(Transaction::parse(&bytes, &legacy).is_err());

        // Replace the one-item stack (01 01 78) before the lock time with an empty one (00).
        let mut superfluous = bytes[..bytes.len() - 4 - 3].to_vec();
        superfluous.push(0);
        superfluous.put_u32(99);
        assert!(matches!(
            Transaction::parse(&superfluous, &BITCOIN),
            Err(Error::SuperfluousWitness { offset: 0 })
        ));
    }

    #[test]
    fn unknown_or_zero_flags_are_rejected() {
        let mut bytes = build(&BITCOIN, &[b"x"]);
        bytes[5] = 0x02;
        assert!(matches!(
            Transaction::parse(&bytes, &BITCOIN),
            Err(Error::InvalidTxFlags {
                offset: 5,
                flags: 0x02
            })
        ));
        bytes[5] = 0x00;
        assert!(matches!(
            Transaction::parse(&bytes, &BITCOIN),
            Err(Error::InvalidTxFlags { .. })
        ));
        bytes[5] = FLAG_MWEB;
        assert!(Transaction::parse(&bytes, &BITCOIN).is_err());
    }

    #[test]
    fn hogex_is_flagged_and_needs_outputs() {
        let litecoin = ChainRules {
            mweb: true,
            ..BITCOIN
        };
        let hogex = |outputs: u64| {
            let mut tx = Vec::new();
            tx.put_i32(2);
            tx.put(&[0, FLAG_MWEB]);
            tx.put_compact_size(1);
            tx.put(&[0xcd; 32]);
            tx.put_u32(0);
            tx.put_var_bytes(&[]);
            tx.put_u32(u32::MAX);
            tx.put_compact_size(outputs);
            for _ in 0..outputs {
                tx.put_u64(1);
                tx.put_var_bytes(&[0x58, 0x20]);
            }
            tx.put_u8(0); // no MWEB transaction
            tx.put_u32(0);
            tx
        };
        let bytes = hogex(1);
        let tx = Transaction::parse(&bytes, &litecoin).unwrap();
        assert!(tx.is_hogex() && !tx.is_mweb_only());
        assert_eq!(tx.txid(), Hash256::of(&tx.serialize_without_witness()));
        assert_eq!(tx.wtxid(), tx.txid());
        assert_eq!(tx.weight(), 4 * (bytes.len() as u64 - 3));
        assert_eq!(tx.serialize(), bytes);
        assert!(Transaction::parse(&bytes, &BITCOIN).is_err());
        assert!(matches!(
            Transaction::parse(&hogex(0), &litecoin),
            Err(Error::InvalidMweb { .. })
        ));
    }

    #[test]
    fn coinbase_is_detected() {
        let mut bytes = build(&BITCOIN, &[]);
        bytes[5..37].fill(0);
        bytes[37..41].fill(0xff);
        assert!(Transaction::parse(&bytes, &BITCOIN).unwrap().is_coinbase());
    }

    #[test]
    fn trailing_and_truncated_input_fail() {
        let mut bytes = build(&BITCOIN, &[b"sig"]);
        for len in 0..bytes.len() {
            assert!(Transaction::parse(&bytes[..len], &BITCOIN).is_err());
        }
        bytes.push(0);
        assert!(matches!(
            Transaction::parse(&bytes, &BITCOIN),
            Err(Error::TrailingBytes { .. })
        ));
    }
}
