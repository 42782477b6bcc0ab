//! Litecoin MWEB (MimbleWimble extension block) data as it appears on the wire: the MWEB body a
//! relayed transaction may carry, and the extension block serialized after a block's last
//! (HogEx) transaction. Indexing only needs canonical inputs and outputs, so this module walks
//! past the confidential data exactly as Litecoin Core lays it out (libmw `mw::Transaction`,
//! `mw::Block`, `TxBody`, `Input`, `Output`, `Kernel`), keeping a borrowed slice and the few
//! facts the canonical side depends on: transaction ids of MWEB-only transactions, weights of
//! peg-ins and peg-outs, and the extension block hash the HogEx output commits to.

use crate::Error;
use crate::encode::{Reader, compact_size_len};

const HASH: usize = 32;
const COMMITMENT: usize = 33;
const PUBLIC_KEY: usize = 33;
const SIGNATURE: usize = 64;
const RANGE_PROOF: usize = 675;
/// Features, output id, commitment, output public key and signature.
const MIN_INPUT: usize = 1 + HASH + COMMITMENT + PUBLIC_KEY + SIGNATURE;
/// Commitment, sender and receiver keys, message features, range proof and signature.
const MIN_OUTPUT: usize = COMMITMENT + 2 * PUBLIC_KEY + 1 + RANGE_PROOF + SIGNATURE;
/// Features, excess commitment and signature.
const MIN_KERNEL: usize = 1 + COMMITMENT + SIGNATURE;
/// Base-128 amount plus a non-empty script.
const MIN_PEGOUT: usize = 3;
/// Weight Litecoin Core charges a transaction per peg-in kernel: the HogEx input it causes.
const PEGIN_WEIGHT: u64 = 164;
/// Segwit scale factor: peg-outs are charged as canonical outputs of the HogEx.
const WITNESS_SCALE: u64 = 4;

const AMOUNT_MAX: u64 = i64::MAX as u64;
const HEIGHT_MAX: u64 = i32::MAX as u64;

mod input_feature {
    pub const STEALTH_KEY: u8 = 0x01;
    pub const EXTRA_DATA: u8 = 0x02;
}

mod output_feature {
    pub const STANDARD_FIELDS: u8 = 0x01;
    pub const EXTRA_DATA: u8 = 0x02;
    /// Key-exchange public key, view tag, masked value and masked nonce.
    pub const STANDARD_FIELDS_LEN: usize = super::PUBLIC_KEY + 1 + 8 + 16;
}

mod kernel_feature {
    pub const FEE: u8 = 0x01;
    pub const PEGIN: u8 = 0x02;
    pub const PEGOUT: u8 = 0x04;
    pub const HEIGHT_LOCK: u8 = 0x08;
    pub const STEALTH_EXCESS: u8 = 0x10;
    pub const EXTRA_DATA: u8 = 0x20;
}

/// Reads Litecoin's `OptionalPtr` presence byte: only 1 means present, as in Litecoin Core.
pub(crate) fn read_present(reader: &mut Reader<'_>) -> Result<bool, Error> {
    Ok(reader.u8()? == 1)
}

/// The MWEB part of a transaction relayed with MWEB data (`mw::Transaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MwebTx<'a> {
    raw: &'a [u8],
    body: Body<'a>,
}

impl<'a> MwebTx<'a> {
    /// Reads an `mw::Transaction`: kernel offset, stealth offset and body; Litecoin requires
    /// at least one kernel.
    pub fn read(reader: &mut Reader<'a>) -> Result<Self, Error> {
        let start = reader.position();
        reader.skip(2 * HASH)?;
        let body = Body::read(reader)?;
        if body.kernels == 0 {
            return Err(Error::InvalidMweb {
                offset: start,
                reason: "transaction without kernel",
            });
        }
        Ok(Self {
            raw: reader.since(start),
            body,
        })
    }

    /// The serialized MWEB transaction.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Number of MWEB inputs.
    pub fn input_count(&self) -> usize {
        self.body.inputs
    }

    /// Number of MWEB outputs.
    pub fn output_count(&self) -> usize {
        self.body.outputs
    }

    /// Number of kernels.
    pub fn kernel_count(&self) -> usize {
        self.body.kernels
    }

    /// Id of the first kernel (BLAKE3 of its serialization): what Litecoin Core 0.21 reports
    /// as the transaction id of an MWEB-only transaction.
    pub fn first_kernel_id(&self) -> [u8; 32] {
        *blake3::hash(self.body.first_kernel).as_bytes()
    }

    /// Weight Litecoin Core adds for this MWEB data to the canonical transaction's weight: a
    /// HogEx input per peg-in and a HogEx output per peg-out.
    pub(crate) fn hogex_weight(&self, mweb_only: bool) -> u64 {
        let pegins = if mweb_only {
            0
        } else {
            self.body.pegins * PEGIN_WEIGHT
        };
        self.body.pegout_output_bytes * WITNESS_SCALE + pegins
    }
}

/// The extension block that follows the HogEx transaction of a Litecoin block (`mw::Block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MwebBlock<'a> {
    raw: &'a [u8],
    header: &'a [u8],
    height: u32,
    body: Body<'a>,
}

impl<'a> MwebBlock<'a> {
    /// Reads an `mw::Block`: header (height, three roots, two offsets, two MMR sizes) and body.
    pub fn read(reader: &mut Reader<'a>) -> Result<Self, Error> {
        let start = reader.position();
        let height = reader.base128(HEIGHT_MAX)? as u32;
        reader.skip(5 * HASH)?;
        reader.base128(u64::MAX)?;
        reader.base128(u64::MAX)?;
        let header = reader.since(start);
        let body = Body::read(reader)?;
        Ok(Self {
            raw: reader.since(start),
            header,
            height,
            body,
        })
    }

    /// The serialized extension block.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Height recorded in the extension block header (equals the canonical block height).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// BLAKE3 of the serialized header, in the byte order Litecoin prints and commits to in the
    /// HogEx output (`OP_8 <hash>`).
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(self.header).as_bytes()
    }

    /// Number of MWEB inputs spent in the block.
    pub fn input_count(&self) -> usize {
        self.body.inputs
    }

    /// Number of MWEB outputs created in the block.
    pub fn output_count(&self) -> usize {
        self.body.outputs
    }

    /// Number of kernels in the block.
    pub fn kernel_count(&self) -> usize {
        self.body.kernels
    }
}

/// What a `TxBody` (inputs, outputs, kernels) tells the canonical side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Body<'a> {
    inputs: usize,
    outputs: usize,
    kernels: usize,
    first_kernel: &'a [u8],
    pegins: u64,
    /// Serialized size of the canonical outputs the peg-outs become.
    pegout_output_bytes: u64,
}

impl<'a> Body<'a> {
    fn read(reader: &mut Reader<'a>) -> Result<Self, Error> {
        let inputs = reader.count(MIN_INPUT)?;
        for _ in 0..inputs {
            skip_input(reader)?;
        }
        let outputs = reader.count(MIN_OUTPUT)?;
        for _ in 0..outputs {
            skip_output(reader)?;
        }
        let kernels = reader.count(MIN_KERNEL)?;
        let mut body = Body {
            inputs,
            outputs,
            kernels,
            first_kernel: &[],
            pegins: 0,
            pegout_output_bytes: 0,
        };
        for index in 0..kernels {
            let start = reader.position();
            body.read_kernel(reader)?;
            if index == 0 {
                body.first_kernel = reader.since(start);
            }
        }
        Ok(body)
    }

    fn read_kernel(&mut self, reader: &mut Reader<'a>) -> Result<(), Error> {
        let features = reader.u8()?;
        if features & kernel_feature::FEE != 0 {
            reader.base128(AMOUNT_MAX)?;
        }
        if features & kernel_feature::PEGIN != 0 {
            reader.base128(AMOUNT_MAX)?;
            self.pegins += 1;
        }
        if features & kernel_feature::PEGOUT != 0 {
            let pegouts = reader.count(MIN_PEGOUT)?;
            for _ in 0..pegouts {
                reader.base128(AMOUNT_MAX)?;
                let offset = reader.position();
                let script = reader.var_bytes()?;
                if script.is_empty() {
                    return Err(Error::InvalidMweb {
                        offset,
                        reason: "empty peg-out script",
                    });
                }
                // A canonical output: 8-byte value plus the script with its length prefix.
                let len = 8 + compact_size_len(script.len() as u64) + script.len();
                self.pegout_output_bytes += len as u64;
            }
        }
        if features & kernel_feature::HEIGHT_LOCK != 0 {
            reader.base128(HEIGHT_MAX)?;
        }
        if features & kernel_feature::STEALTH_EXCESS != 0 {
            reader.skip(PUBLIC_KEY)?;
        }
        if features & kernel_feature::EXTRA_DATA != 0 {
            reader.var_bytes()?;
        }
        reader.skip(COMMITMENT + SIGNATURE)
    }
}

fn skip_input(reader: &mut Reader<'_>) -> Result<(), Error> {
    let features = reader.u8()?;
    reader.skip(HASH + COMMITMENT + PUBLIC_KEY)?;
    if features & input_feature::STEALTH_KEY != 0 {
        reader.skip(PUBLIC_KEY)?;
    }
    if features & input_feature::EXTRA_DATA != 0 {
        reader.var_bytes()?;
    }
    reader.skip(SIGNATURE)
}

fn skip_output(reader: &mut Reader<'_>) -> Result<(), Error> {
    reader.skip(COMMITMENT + 2 * PUBLIC_KEY)?;
    let features = reader.u8()?;
    if features & output_feature::STANDARD_FIELDS != 0 {
        reader.skip(output_feature::STANDARD_FIELDS_LEN)?;
    }
    if features & output_feature::EXTRA_DATA != 0 {
        reader.var_bytes()?;
    }
    reader.skip(RANGE_PROOF + SIGNATURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Sink;

    /// A kernel with a fee, one peg-out to a 22-byte script, and nothing else.
    fn pegout_kernel() -> Vec<u8> {
        let mut kernel = vec![kernel_feature::FEE | kernel_feature::PEGOUT];
        kernel.push(0x05); // fee
        kernel.put_compact_size(1);
        kernel.push(0x7f); // amount
        kernel.put_var_bytes(&[0x00; 22]);
        kernel.extend_from_slice(&[0x02; COMMITMENT + SIGNATURE]);
        kernel
    }

    fn transaction(kernels: &[Vec<u8>]) -> Vec<u8> {
        let mut tx = vec![0x11; 2 * HASH];
        tx.put_compact_size(0); // inputs
        tx.put_compact_size(0); // outputs
        tx.put_compact_size(kernels.len() as u64);
        kernels.iter().for_each(|kernel| tx.put(kernel));
        tx
    }

    #[test]
    fn transaction_reports_kernels_and_pegout_weight() {
        let kernel = pegout_kernel();
        let bytes = transaction(std::slice::from_ref(&kernel));
        let mut reader = Reader::new(&bytes);
        let tx = MwebTx::read(&mut reader).unwrap();
        reader.finish().unwrap();
        assert_eq!(tx.raw(), &bytes[..]);
        assert_eq!(tx.kernel_count(), 1);
        assert_eq!(tx.first_kernel_id(), *blake3::hash(&kernel).as_bytes());
        assert_eq!(tx.hogex_weight(true), (8 + 1 + 22) * 4);
    }

    #[test]
    fn transaction_without_kernel_is_rejected() {
        let bytes = transaction(&[]);
        assert!(matches!(
            MwebTx::read(&mut Reader::new(&bytes)),
            Err(Error::InvalidMweb { offset: 0, .. })
        ));
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let bytes = transaction(&[pegout_kernel()]);
        for len in 0..bytes.len() {
            assert!(MwebTx::read(&mut Reader::new(&bytes[..len])).is_err());
        }
    }
}
