//! The best chain's block headers as the Electrum server serves them, kept on disk: the
//! electrum backend's only index. Electrum servers look blocks up by height only, while the
//! Esplora API also asks by hash (`/block/:hash`, a transaction's block): this store maps
//! both ways and remembers blocks that a reorganisation replaced, so their status can still
//! be told. 80 bytes plus a hash entry per block; a chain of millions of blocks fits in a few
//! hundred megabytes and is fetched once, then followed.

use std::path::Path;

use rot_proto::Hash256;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Batch, Tree};

use crate::Error;
use crate::backend::Tip;

/// Meta key naming the coin the chain belongs to.
const KEY_COIN: &[u8] = b"coin";
/// Bound on sled's page cache: headers are read rarely and in small runs.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Blocks whose times make up the median time past (BIP 113).
const MEDIAN_SPAN: u32 = 11;

/// Headers by height, heights by hash, and hashes replaced by reorganisations.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    db: sled::Db,
    /// Height (big-endian) → 80-byte header.
    headers: Tree,
    /// Block hash → height (big-endian), best chain only.
    heights: Tree,
    /// Block hashes once in the best chain and since replaced.
    stale: Tree,
}

impl HeaderChain {
    /// Opens (or creates) the chain under `path` for coin id `coin`, refusing one of another
    /// coin.
    pub fn open(path: &Path, coin: &str) -> Result<Self, Error> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(500));
        let db = rot_ops::sled_open::open_when_unlocked(&config)?;
        let meta = db.open_tree("meta")?;
        match meta.get(KEY_COIN)? {
            None => {
                meta.insert(KEY_COIN, coin.as_bytes())?;
                meta.flush()?;
            }
            Some(stored) if stored.as_ref() == coin.as_bytes() => {}
            Some(stored) => {
                return Err(Error::Schema(format!(
                    "header chain at {} belongs to coin {:?}, not {coin:?}",
                    path.display(),
                    String::from_utf8_lossy(&stored)
                )));
            }
        }
        Ok(Self {
            headers: db.open_tree("headers")?,
            heights: db.open_tree("heights")?,
            stale: db.open_tree("stale")?,
            db,
        })
    }

    /// The best block held, or `None` for an empty chain.
    pub fn tip(&self) -> Result<Option<Tip>, Error> {
        self.headers
            .last()?
            .map(|(key, value)| {
                Ok(Tip {
                    height: height_of_key(&key)?,
                    hash: Hash256::of(&header_of_value(&value)?),
                })
            })
            .transpose()
    }

    /// The header at `height` of the best chain.
    pub fn header_at(&self, height: u32) -> Result<Option<[u8; 80]>, Error> {
        self.headers
            .get(height.to_be_bytes())?
            .map(|value| header_of_value(&value))
            .transpose()
    }

    /// The hash of the best-chain block at `height`.
    pub fn hash_at(&self, height: u32) -> Result<Option<Hash256>, Error> {
        Ok(self.header_at(height)?.map(|header| Hash256::of(&header)))
    }

    /// The height of `hash` when it is in the best chain.
    pub fn height_of(&self, hash: &Hash256) -> Result<Option<u32>, Error> {
        self.heights
            .get(hash.as_bytes())?
            .map(|value| height_of_key(&value))
            .transpose()
    }

    /// Whether `hash` was in the best chain and a reorganisation replaced it.
    pub fn is_stale(&self, hash: &Hash256) -> Result<bool, Error> {
        Ok(self.stale.contains_key(hash.as_bytes())?)
    }

    /// Header time of the best-chain block at `height`.
    pub fn time_at(&self, height: u32) -> Result<Option<u32>, Error> {
        Ok(self.header_at(height)?.map(|header| time_of(&header)))
    }

    /// Median of the times of the block at `height` and the ten before it (BIP 113).
    pub fn median_time(&self, height: u32) -> Result<u32, Error> {
        let mut times = Vec::with_capacity(MEDIAN_SPAN as usize);
        for h in height.saturating_sub(MEDIAN_SPAN - 1)..=height {
            times.extend(self.time_at(h)?);
        }
        times.sort_unstable();
        times
            .get(times.len() / 2)
            .copied()
            .ok_or_else(|| Error::Corrupt(format!("no header at height {height}")))
    }

    /// Replaces every header from height `from` on with `headers` (heights `from`,
    /// `from + 1`, ...), in one atomic write; replaced blocks are remembered as stale.
    pub fn replace(&self, from: u32, headers: &[[u8; 80]]) -> Result<(), Error> {
        let mut header_batch = Batch::default();
        let mut height_batch = Batch::default();
        let mut stale_batch = Batch::default();
        for entry in self.headers.range(from.to_be_bytes()..) {
            let (key, value) = entry?;
            let hash = Hash256::of(&header_of_value(&value)?);
            header_batch.remove(key);
            height_batch.remove(hash.as_bytes());
            stale_batch.insert(hash.as_bytes(), &[][..]);
        }
        for (height, header) in (from..).zip(headers) {
            let hash = Hash256::of(header);
            header_batch.insert(&height.to_be_bytes(), &header[..]);
            height_batch.insert(hash.as_bytes(), &height.to_be_bytes());
            stale_batch.remove(hash.as_bytes());
        }
        let written: Result<(), TransactionError<()>> = (&self.headers, &self.heights, &self.stale)
            .transaction(|(h, hs, st)| {
                h.apply_batch(&header_batch)?;
                hs.apply_batch(&height_batch)?;
                st.apply_batch(&stale_batch)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            });
        written.map_err(|e| match e {
            TransactionError::Storage(e) => Error::Storage(e),
            TransactionError::Abort(()) => Error::Index("header write aborted".into()),
        })
    }

    /// Waits until everything written so far is on disk.
    pub async fn flush(&self) -> Result<(), Error> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| Error::Index(format!("flush task failed: {e}")))??;
        Ok(())
    }
}

/// The time field of an 80-byte header.
pub fn time_of(header: &[u8; 80]) -> u32 {
    u32::from_le_bytes([header[68], header[69], header[70], header[71]])
}

/// The previous-block field of an 80-byte header.
pub fn prev_of(header: &[u8; 80]) -> Hash256 {
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&header[4..36]);
    Hash256(prev)
}

/// The merkle-root field of an 80-byte header.
pub fn merkle_root_of(header: &[u8; 80]) -> Hash256 {
    let mut root = [0u8; 32];
    root.copy_from_slice(&header[36..68]);
    Hash256(root)
}

fn height_of_key(bytes: &[u8]) -> Result<u32, Error> {
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt("header chain height".into()))?;
    Ok(u32::from_be_bytes(array))
}

fn header_of_value(bytes: &[u8]) -> Result<[u8; 80], Error> {
    bytes
        .try_into()
        .map_err(|_| Error::Corrupt("header chain header".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` linked headers with times 1000, 1010, ... after `parent`, `salt`
    /// telling forks apart.
    fn headers(parent: Hash256, n: u32, first_time: u32, salt: u8) -> Vec<[u8; 80]> {
        let mut prev = parent;
        (0..n)
            .map(|i| {
                let mut header = [0u8; 80];
                header[4..36].copy_from_slice(prev.as_bytes());
                header[36] = salt;
                header[68..72].copy_from_slice(&(first_time + 10 * i).to_le_bytes());
                prev = Hash256::of(&header);
                header
            })
            .collect()
    }

    #[test]
    fn follows_appends_and_reorganisations() {
        let dir = tempfile::tempdir().unwrap();
        let chain = HeaderChain::open(dir.path(), "ltc-regtest").unwrap();
        assert_eq!(chain.tip().unwrap(), None);

        let main = headers(Hash256([0; 32]), 20, 1000, 0);
        chain.replace(0, &main[..12]).unwrap();
        chain.replace(12, &main[12..]).unwrap();
        let tip = chain.tip().unwrap().unwrap();
        assert_eq!((tip.height, tip.hash), (19, Hash256::of(&main[19])));
        assert_eq!(chain.height_of(&Hash256::of(&main[7])).unwrap(), Some(7));
        assert_eq!(chain.time_at(3).unwrap(), Some(1030));
        // Heights 9..=19 have times 1090..=1190: the median is 1140.
        assert_eq!(chain.median_time(19).unwrap(), 1140);
        assert_eq!(chain.median_time(0).unwrap(), 1000);

        // A fork from height 15 replaces 15..=19 with three blocks.
        let fork = headers(Hash256::of(&main[14]), 3, 5000, 1);
        chain.replace(15, &fork).unwrap();
        let tip = chain.tip().unwrap().unwrap();
        assert_eq!((tip.height, tip.hash), (17, Hash256::of(&fork[2])));
        let replaced = Hash256::of(&main[16]);
        assert_eq!(chain.height_of(&replaced).unwrap(), None);
        assert!(chain.is_stale(&replaced).unwrap());
        assert!(!chain.is_stale(&Hash256::of(&fork[0])).unwrap());
        assert_eq!(chain.hash_at(15).unwrap(), Some(Hash256::of(&fork[0])));
        assert_eq!(chain.header_at(18).unwrap(), None);

        // Truncating to a shorter chain, then opening again, keeps what was written.
        chain.replace(10, &[]).unwrap();
        drop(chain);
        let chain = HeaderChain::open(dir.path(), "ltc-regtest").unwrap();
        assert_eq!(chain.tip().unwrap().unwrap().height, 9);
        drop(chain);
        let error = HeaderChain::open(dir.path(), "btc")
            .unwrap_err()
            .to_string();
        assert!(error.contains("belongs to coin"), "{error}");
    }
}
