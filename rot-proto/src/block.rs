//! Blocks of bitcoin-family chains: the 80-byte header with its hash, proof-of-work hash and
//! target, and the whole block (`getblock <hash> 0`) parsed per [`ChainRules`]: optional AuxPoW
//! after the header, the transactions, and Litecoin's MWEB extension block after a final HogEx
//! transaction. Transactions borrow from the block bytes, so indexing a block costs one pass.

use std::fmt;

use crate::auxpow::AuxPow;
use crate::encode::{Reader, compact_size_len};
use crate::merkle::merkle_root;
use crate::mweb::{MwebBlock, read_present};
use crate::tx::Transaction;
use crate::{ChainRules, Error, Hash256, PowAlgorithm};

/// Smallest serialized transaction: version, empty input and output counts, lock time.
const MIN_TX: usize = 4 + 1 + 1 + 4;
/// Header version bit announcing an AuxPoW proof after the header.
const AUXPOW_VERSION_BIT: i32 = 0x100;

/// A block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block version (BIP 9 bits, AuxPoW flag and chain id on merge-mined chains).
    pub version: i32,
    /// Hash of the previous block.
    pub prev_blockhash: Hash256,
    /// Merkle root of the transaction ids.
    pub merkle_root: Hash256,
    /// Block timestamp.
    pub time: u32,
    /// Compact encoding of the proof-of-work target.
    pub bits: u32,
    /// Proof-of-work nonce.
    pub nonce: u32,
}

impl BlockHeader {
    /// Serialized size.
    pub const SIZE: usize = 80;

    /// Parses a serialized header of exactly 80 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != Self::SIZE {
            return Err(Error::InvalidHeaderLength(bytes.len()));
        }
        Self::read(&mut Reader::new(bytes))
    }

    /// Reads a header at the reader's position.
    pub fn read(reader: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            version: reader.i32()?,
            prev_blockhash: reader.hash()?,
            merkle_root: reader.hash()?,
            time: reader.u32()?,
            bits: reader.u32()?,
            nonce: reader.u32()?,
        })
    }

    /// The 80-byte serialization.
    pub fn serialize(&self) -> [u8; 80] {
        let mut bytes = [0u8; 80];
        bytes[0..4].copy_from_slice(&self.version.to_le_bytes());
        bytes[4..36].copy_from_slice(self.prev_blockhash.as_bytes());
        bytes[36..68].copy_from_slice(self.merkle_root.as_bytes());
        bytes[68..72].copy_from_slice(&self.time.to_le_bytes());
        bytes[72..76].copy_from_slice(&self.bits.to_le_bytes());
        bytes[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        bytes
    }

    /// Block hash (double SHA-256 of the header), the id nodes and explorers use.
    pub fn hash(&self) -> Hash256 {
        Hash256::of(&self.serialize())
    }

    /// Proof-of-work hash: the block hash for SHA-256d coins, or scrypt(N=1024, r=1, p=1) of
    /// the header salted with itself for Litecoin-family coins.
    pub fn pow_hash(&self, pow: PowAlgorithm) -> Hash256 {
        match pow {
            PowAlgorithm::Sha256d => self.hash(),
            PowAlgorithm::Scrypt => {
                let header = self.serialize();
                let params = scrypt::Params::new(10, 1, 1)
                    .expect("N=1024, r=1, p=1 are valid scrypt parameters");
                let mut out = [0u8; 32];
                scrypt::scrypt(&header, &header, &params, &mut out)
                    .expect("32 bytes is a valid scrypt output length");
                Hash256(out)
            }
        }
    }

    /// The target the proof-of-work hash must not exceed.
    pub fn target(&self) -> Result<Target, Error> {
        Target::from_compact(self.bits)
    }

    /// Whether this header's own proof-of-work hash meets its target.
    pub fn meets_target(&self, pow: PowAlgorithm) -> Result<bool, Error> {
        Ok(self.target()?.is_met_by(&self.pow_hash(pow)))
    }

    /// Whether the version announces an AuxPoW proof (on chains whose rules have `auxpow`).
    pub fn has_auxpow_bit(&self) -> bool {
        self.version & AUXPOW_VERSION_BIT != 0
    }
}

/// A 256-bit proof-of-work target, stored big-endian so that byte order is numeric order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target([u8; 32]);

impl Target {
    /// Decodes compact `bits` as Bitcoin Core does, rejecting negative, zero and overflowing
    /// targets (which can never be met).
    pub fn from_compact(bits: u32) -> Result<Self, Error> {
        let exponent = bits >> 24;
        let mut mantissa = bits & 0x007f_ffff;
        if exponent <= 3 {
            mantissa >>= 8 * (3 - exponent);
        }
        let reject = |reason| Err(Error::InvalidTarget { bits, reason });
        if mantissa == 0 {
            return reject("zero target");
        }
        if bits & 0x0080_0000 != 0 {
            return reject("negative target");
        }
        if exponent > 34
            || (mantissa > 0xff && exponent > 33)
            || (mantissa > 0xffff && exponent > 32)
        {
            return reject("target overflows 256 bits");
        }
        let shift = exponent.saturating_sub(3) as usize;
        let mut bytes = [0u8; 32];
        for (k, byte) in mantissa.to_le_bytes().into_iter().enumerate().take(3) {
            // Byte k of the mantissa has significance k + shift; index 31 is the lowest byte.
            if let Some(slot) = (31usize)
                .checked_sub(k + shift)
                .and_then(|i| bytes.get_mut(i))
            {
                *slot = byte;
            }
        }
        Ok(Self(bytes))
    }

    /// Big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Whether `pow_hash`, read as a little-endian 256-bit number, is at most the target.
    pub fn is_met_by(&self, pow_hash: &Hash256) -> bool {
        pow_hash.to_display_bytes() <= self.0
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A parsed block borrowing from its serialized bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    header: BlockHeader,
    auxpow: Option<AuxPow<'a>>,
    transactions: Vec<Transaction<'a>>,
    mweb: Option<MwebBlock<'a>>,
    raw: &'a [u8],
    /// Header plus AuxPoW bytes.
    header_size: usize,
}

impl<'a> Block<'a> {
    /// Parses a whole serialized block (as returned by `getblock <hash> 0`).
    pub fn parse(bytes: &'a [u8], rules: &ChainRules) -> Result<Self, Error> {
        let mut reader = Reader::new(bytes);
        let header = BlockHeader::read(&mut reader)?;
        let auxpow = if rules.auxpow && header.has_auxpow_bit() {
            Some(AuxPow::read(&mut reader, rules)?)
        } else {
            None
        };
        let header_size = reader.position();
        let count = reader.count(MIN_TX)?;
        let mut transactions = Vec::with_capacity(count);
        for _ in 0..count {
            transactions.push(Transaction::read(&mut reader, rules)?);
        }
        // Litecoin serializes the extension block only after a final HogEx transaction.
        let ends_with_hogex =
            transactions.len() >= 2 && transactions.last().is_some_and(Transaction::is_hogex);
        let mweb = if rules.mweb && ends_with_hogex && read_present(&mut reader)? {
            Some(MwebBlock::read(&mut reader)?)
        } else {
            None
        };
        reader.finish()?;
        Ok(Self {
            header,
            auxpow,
            transactions,
            mweb,
            raw: bytes,
            header_size,
        })
    }

    /// The block header.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// The merged-mining proof, on AuxPoW chains when the header announces one.
    pub fn auxpow(&self) -> Option<&AuxPow<'a>> {
        self.auxpow.as_ref()
    }

    /// Transactions in block order.
    pub fn transactions(&self) -> &[Transaction<'a>] {
        &self.transactions
    }

    /// Litecoin's MWEB extension block, when present.
    pub fn mweb(&self) -> Option<&MwebBlock<'a>> {
        self.mweb.as_ref()
    }

    /// Litecoin's HogEx transaction (the last one), when the block has one.
    pub fn hogex(&self) -> Option<&Transaction<'a>> {
        self.transactions.last().filter(|tx| tx.is_hogex())
    }

    /// The bytes this block was parsed from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Block hash.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Serialized size with everything (node `size`).
    pub fn size(&self) -> usize {
        self.raw.len()
    }

    /// Size without witness and MWEB data (node `strippedsize`).
    pub fn stripped_size(&self) -> usize {
        self.fixed_size()
            + self
                .transactions
                .iter()
                .map(Transaction::base_size)
                .sum::<usize>()
    }

    /// BIP 141 weight of the block serialized without MWEB data, as Litecoin Core counts it.
    pub fn weight(&self) -> u64 {
        4 * self.fixed_size() as u64
            + self
                .transactions
                .iter()
                .map(Transaction::canonical_weight)
                .sum::<u64>()
    }

    /// Header, AuxPoW and transaction count: the part that is never witness data.
    fn fixed_size(&self) -> usize {
        self.header_size + compact_size_len(self.transactions.len() as u64)
    }

    /// Merkle root of the transaction ids, to compare with the header's.
    pub fn compute_merkle_root(&self) -> Option<Hash256> {
        let txids: Vec<Hash256> = self.transactions.iter().map(Transaction::txid).collect();
        merkle_root(&txids)
    }

    /// The header whose proof-of-work hash must meet the target: the AuxPoW parent header on
    /// merge-mined blocks, otherwise the block's own.
    pub fn pow_header(&self) -> &BlockHeader {
        self.auxpow
            .as_ref()
            .map_or(&self.header, |auxpow| &auxpow.parent_header)
    }

    /// Whether the proof of work (own or merge-mined) meets the target of this block's bits.
    pub fn check_proof_of_work(&self, pow: PowAlgorithm) -> Result<bool, Error> {
        Ok(self
            .header
            .target()?
            .is_met_by(&self.pow_header().pow_hash(pow)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_targets_decode_like_bitcoin_core() {
        let genesis = Target::from_compact(0x1d00_ffff).unwrap();
        assert_eq!(
            genesis.to_string(),
            format!("00000000ffff{}", "0".repeat(52))
        );
        let regtest = Target::from_compact(0x207f_ffff).unwrap();
        assert_eq!(regtest.to_string(), format!("7fffff{}", "0".repeat(58)));
        assert_eq!(
            Target::from_compact(0x0312_3456).unwrap().to_string(),
            format!("{}123456", "0".repeat(58))
        );
        assert_eq!(
            Target::from_compact(0x0212_3456).unwrap().to_string(),
            format!("{}1234", "0".repeat(60))
        );
        assert!(genesis < regtest);
    }

    #[test]
    fn unusable_targets_are_rejected() {
        for bits in [
            0,
            0x0100_0001,
            0x0480_0001,
            0x2301_0000,
            0x2200_0100,
            0x2101_0000,
            0xff00_0001,
        ] {
            assert!(
                matches!(Target::from_compact(bits), Err(Error::InvalidTarget { .. })),
                "{bits:08x}"
            );
        }
    }

    #[test]
    fn target_comparison_reads_hash_as_little_endian_number() {
        let target = Target::from_compact(0x1d00_ffff).unwrap();
        let mut low = [0xffu8; 32];
        low[26..].fill(0); // top six bytes of the number are zero
        assert!(target.is_met_by(&Hash256(low)));
        let mut high = [0u8; 32];
        high[31] = 1;
        assert!(!target.is_met_by(&Hash256(high)));
    }

    #[test]
    fn header_round_trips_and_rejects_bad_length() {
        let header = BlockHeader {
            version: 0x2000_0000,
            prev_blockhash: Hash256([1; 32]),
            merkle_root: Hash256([2; 32]),
            time: 3,
            bits: 0x207f_ffff,
            nonce: 4,
        };
        let bytes = header.serialize();
        assert_eq!(BlockHeader::parse(&bytes).unwrap(), header);
        assert_eq!(header.hash(), Hash256::of(&bytes));
        assert!(matches!(
            BlockHeader::parse(&bytes[..79]),
            Err(Error::InvalidHeaderLength(79))
        ));
    }
}
