//! Bitcoin merkle trees over transaction ids: the root a block header commits to, and the
//! inclusion proof Esplora serves at `GET /tx/:txid/merkle-proof` (the format of Electrum's
//! `blockchain.transaction.get_merkle`): sibling hashes from the leaf up, and the position.

use serde::{Deserialize, Serialize};

use crate::{Error, Hash256};

/// Hash of an inner node: double SHA-256 of the two children in wire order.
fn parent(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut pair = [0u8; 64];
    pair[..32].copy_from_slice(left.as_bytes());
    pair[32..].copy_from_slice(right.as_bytes());
    Hash256::of(&pair)
}

/// Replaces `level` by the level above it; an odd last node is paired with itself.
fn reduce(level: &mut Vec<Hash256>) {
    let next: Vec<Hash256> = (0..level.len())
        .step_by(2)
        .map(|i| {
            let left = &level[i];
            parent(left, level.get(i + 1).unwrap_or(left))
        })
        .collect();
    *level = next;
}

/// Merkle root of `leaves` (transaction ids in block order); `None` for no leaves.
pub fn merkle_root(leaves: &[Hash256]) -> Option<Hash256> {
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        reduce(&mut level);
    }
    level.first().copied()
}

/// Sibling hashes from the leaf at `pos` up to the root.
pub fn merkle_branch(leaves: &[Hash256], pos: usize) -> Result<Vec<Hash256>, Error> {
    if pos >= leaves.len() {
        return Err(Error::MerklePositionOutOfRange {
            pos,
            count: leaves.len(),
        });
    }
    let mut branch = Vec::new();
    let mut level = leaves.to_vec();
    let mut index = pos;
    while level.len() > 1 {
        // The sibling of an odd last node is the node itself.
        let sibling = level.get(index ^ 1).or(level.get(index)).copied();
        branch.extend(sibling);
        reduce(&mut level);
        index /= 2;
    }
    Ok(branch)
}

/// The root obtained by hashing `leaf` up along `branch`; bit `i` of `pos` tells whether the
/// node at depth `i` is a right child. A branch from outside may be longer than `pos` has
/// bits; the missing bits are zero.
pub fn branch_root(leaf: Hash256, branch: &[Hash256], pos: usize) -> Hash256 {
    branch
        .iter()
        .enumerate()
        .fold(leaf, |node, (depth, sibling)| {
            let bit = u32::try_from(depth)
                .ok()
                .and_then(|depth| pos.checked_shr(depth))
                .unwrap_or(0);
            if bit & 1 == 1 {
                parent(sibling, &node)
            } else {
                parent(&node, sibling)
            }
        })
}

/// Whether `branch` proves `leaf` at `pos` under `root`; `pos` must fit the branch depth.
pub fn verify_branch(leaf: Hash256, branch: &[Hash256], pos: usize, root: &Hash256) -> bool {
    let fits = branch.len() >= usize::BITS as usize || pos >> branch.len() == 0;
    fits && branch_root(leaf, branch, pos) == *root
}

/// Esplora's merkle inclusion proof of a confirmed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    /// Height of the block holding the transaction.
    pub block_height: u32,
    /// Sibling hashes from the leaf up, as display (byte-reversed) hex.
    pub merkle: Vec<Hash256>,
    /// Index of the transaction in the block.
    pub pos: usize,
}

impl MerkleProof {
    /// Builds the proof for the transaction at `pos` of a block with these transaction ids.
    pub fn new(block_height: u32, txids: &[Hash256], pos: usize) -> Result<Self, Error> {
        Ok(Self {
            block_height,
            merkle: merkle_branch(txids, pos)?,
            pos,
        })
    }

    /// Whether the proof places `txid` under the header's `merkle_root`.
    pub fn verify(&self, txid: Hash256, merkle_root: &Hash256) -> bool {
        verify_branch(txid, &self.merkle, self.pos, merkle_root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u8) -> Vec<Hash256> {
        (0..n).map(|i| Hash256::of(&[i])).collect()
    }

    #[test]
    fn single_leaf_is_its_own_root() {
        let leaf = leaves(1);
        assert_eq!(merkle_root(&leaf), Some(leaf[0]));
        assert!(merkle_branch(&leaf, 0).unwrap().is_empty());
        assert_eq!(merkle_root(&[]), None);
    }

    #[test]
    fn odd_levels_duplicate_the_last_node() {
        let l = leaves(3);
        let expected = parent(&parent(&l[0], &l[1]), &parent(&l[2], &l[2]));
        assert_eq!(merkle_root(&l), Some(expected));
    }

    #[test]
    fn every_branch_verifies_and_only_at_its_position() {
        for n in 1..=17 {
            let l = leaves(n);
            let root = merkle_root(&l).unwrap();
            for (pos, leaf) in l.iter().enumerate() {
                let branch = merkle_branch(&l, pos).unwrap();
                assert!(verify_branch(*leaf, &branch, pos, &root));
                if pos ^ 1 < l.len() {
                    assert!(!verify_branch(*leaf, &branch, pos ^ 1, &root));
                }
                assert!(!verify_branch(Hash256::of(b"other"), &branch, pos, &root));
                assert!(!verify_branch(
                    *leaf,
                    &branch,
                    pos + (1 << branch.len()),
                    &root
                ));
            }
            assert!(merkle_branch(&l, n as usize).is_err());
        }
    }

    #[test]
    fn branches_deeper_than_the_position_has_bits_do_not_panic() {
        // Found by fuzzing: a 100-hash branch from a peer made the shift overflow.
        let branch = vec![Hash256::of(b"sibling"); 100];
        let root = branch_root(Hash256::default(), &branch, usize::MAX);
        assert!(verify_branch(
            Hash256::default(),
            &branch,
            usize::MAX,
            &root
        ));
        let proof = MerkleProof {
            block_height: 1,
            merkle: branch,
            pos: 3,
        };
        assert!(!proof.verify(Hash256::default(), &Hash256::default()));
    }

    #[test]
    fn proof_serializes_like_esplora() {
        let l = leaves(2);
        let proof = MerkleProof::new(7, &l, 1).unwrap();
        let json = serde_json::to_value(&proof).unwrap();
        assert_eq!(json["block_height"], 7);
        assert_eq!(json["pos"], 1);
        assert_eq!(json["merkle"][0], l[0].to_string());
        let back: MerkleProof = serde_json::from_value(json).unwrap();
        assert!(back.verify(l[1], &merkle_root(&l).unwrap()));
    }
}
