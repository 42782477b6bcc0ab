//! Merged-mining proofs (AuxPoW, Namecoin/Dogecoin layout). A merge-mined block's own header
//! carries no valid proof of work: it is followed by the parent chain's coinbase (which commits
//! to this block), merkle branches, and the parent header whose hash meets this block's target.

use crate::block::BlockHeader;
use crate::encode::Reader;
use crate::merkle::branch_root;
use crate::tx::Transaction;
use crate::{ChainRules, Error, Hash256};

/// The AuxPoW data between a merge-mined block's header and its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxPow<'a> {
    /// Coinbase transaction of the parent block.
    pub coinbase_tx: Transaction<'a>,
    /// Branch linking the coinbase to the parent header's merkle root.
    pub coinbase_branch: Vec<Hash256>,
    /// Position of the coinbase in the parent block (0 when valid).
    pub coinbase_index: i32,
    /// Branch linking this chain's block hash to the merged-mining root in the coinbase.
    pub chain_branch: Vec<Hash256>,
    /// Position of this chain in the merged-mining tree.
    pub chain_index: i32,
    /// Header of the parent block: its proof-of-work hash is what meets the target.
    pub parent_header: BlockHeader,
}

impl<'a> AuxPow<'a> {
    /// Reads coinbase transaction, the unused block hash of the old `CMerkleTx`, coinbase
    /// branch and index, chain branch and index, and the 80-byte parent header. The parent
    /// coinbase is parsed with the chain's segwit rule and no MWEB or PoS fields.
    pub fn read(reader: &mut Reader<'a>, rules: &ChainRules) -> Result<Self, Error> {
        let parent_rules = ChainRules {
            mweb: false,
            auxpow: false,
            pos_ntime: false,
            ..*rules
        };
        let coinbase_tx = Transaction::read(reader, &parent_rules)?;
        reader.hash()?;
        let coinbase_branch = read_branch(reader)?;
        let coinbase_index = reader.i32()?;
        let chain_branch = read_branch(reader)?;
        let chain_index = reader.i32()?;
        let parent_header = BlockHeader::read(reader)?;
        Ok(Self {
            coinbase_tx,
            coinbase_branch,
            coinbase_index,
            chain_branch,
            chain_index,
            parent_header,
        })
    }

    /// Whether the coinbase is the first transaction under the parent header's merkle root, as
    /// merged-mining validation requires. (The chain-branch commitment inside the coinbase
    /// script is a separate, consensus-level check.)
    pub fn coinbase_in_parent(&self) -> bool {
        self.coinbase_index == 0
            && branch_root(self.coinbase_tx.txid(), &self.coinbase_branch, 0)
                == self.parent_header.merkle_root
    }
}

fn read_branch(reader: &mut Reader<'_>) -> Result<Vec<Hash256>, Error> {
    let count = reader.count(32)?;
    (0..count).map(|_| reader.hash()).collect()
}
