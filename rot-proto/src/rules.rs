//! Consensus format rules of a coin: how its blocks and transactions are laid out on the wire
//! and how its proof of work is hashed. A coin profile carries one of these; the chain parser
//! and the conformance checks read it, so adding a coin is data, not code.

use serde::{Deserialize, Serialize};

/// The hash function whose output must meet a block header's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowAlgorithm {
    /// Double SHA-256 of the 80-byte header (Bitcoin).
    Sha256d,
    /// scrypt(N=1024, r=1, p=1) of the 80-byte header, salted with itself (Litecoin).
    Scrypt,
}

/// Block and transaction format quirks of a coin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRules {
    /// Proof-of-work hash of block headers.
    pub pow: PowAlgorithm,
    /// Transactions may carry BIP 144 witness data (marker 0x00, flag).
    #[serde(default)]
    pub segwit: bool,
    /// Litecoin MWEB: extension-block data after a block's transactions and the MWEB flag bit
    /// in transactions.
    #[serde(default)]
    pub mweb: bool,
    /// Merged mining: headers whose version has the AuxPoW bit carry an AuxPoW proof.
    #[serde(default)]
    pub auxpow: bool,
    /// Proof-of-stake coins (Peercoin family) put a 4-byte `nTime` after the tx version.
    #[serde(default)]
    pub pos_ntime: bool,
}
