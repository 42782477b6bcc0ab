//! Where each confirmed transaction is: txid → (height, position in block), a hash table in
//! a file of its own beside the sled index.
//!
//! Why not sled rows: a row per transaction was three in five of the index's writes, and sled
//! spends microseconds per key written. Here a run's transactions go into fixed-size slots,
//! sorted by slot and written a window at a time.
//!
//! The table holds *hints*, which [`crate::store::Store`] checks before it believes one: a
//! slot carries the first bytes of its block's hash, and counts only while the index's block
//! at that height has that hash. So entries of blocks that a reorganisation or a crash took
//! away are never believed and never need removing, and the file needs no atomic commit
//! with sled. What must never happen is a missing entry for a block of the index: the header
//! keeps the height up to which the file is complete on disk ([`TxIndex::complete`]), raised
//! only after the file is synced, lowered on disk before a block at or below it is undone;
//! the store enters again, at open, the blocks above it.
//!
//! Slots: open addressing with linear probing, at most [`MAX_LOAD_TENTHS`]/10 full (the table
//! doubles beyond). A slot's home is a multiply-shift hash of the txid with a random odd
//! multiplier kept in the header: txids are anyone's to choose (grinding the low bits of a
//! txid is cheap), and a known hash would let someone pile transactions into one probe run.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use rot_proto::Hash256;

use crate::Error;
use crate::store::TxPosition;

/// Format tag and version, the header's first bytes.
const MAGIC: &[u8; 8] = b"ROTTXID1";
/// Bytes before the first slot (the header uses the first [`HEADER_USED`]).
const HEADER_LEN: u64 = 4096;
/// Magic, slots (log2), multiplier, entries, complete height, checksum.
const HEADER_USED: usize = 48;
/// Key (txid start), height + 1 (0: empty slot), position, block tag.
const SLOT_LEN: usize = 24;
/// Bytes of the txid a slot keeps: two transactions of a chain sharing 96 bits is not
/// going to happen (about 2^-41 for 2^28 transactions).
const KEY_LEN: usize = 12;
/// Slots of a new table (1.5 MiB).
const FIRST_LOG2_SLOTS: u32 = 16;
/// The table doubles before more than this many tenths of its slots are full.
const MAX_LOAD_TENTHS: u64 = 7;
/// Slots read and written together when entering a batch (6 KiB).
const WINDOW_SLOTS: u64 = 256;
/// Slots read at once by a lookup; a probe run is rarely longer at 70 % load.
const LOOKUP_SLOTS: usize = 16;
/// No entry sits further than this from its home: an insert that would go further grows
/// the table instead (the table is then much fuller than counted), and a lookup stops here.
const MAX_PROBES: u64 = 1024;
/// Slots read at once when the table is copied into a bigger one (1.5 MiB).
const COPY_SLOTS: u64 = 1 << 16;
/// The file is synced, and its complete height raised, at least this often while entries
/// come in...
const SYNC_EVERY: Duration = Duration::from_secs(30);
/// ... and after this fraction of its slots were entered: so that the entry count in the
/// header, which a crash leaves short of what the file holds, is never far off.
const SYNC_EVERY_SLOTS_DIVISOR: u64 = 8;

/// A transaction's place as the table keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxEntry {
    pub txid: Hash256,
    pub at: TxPosition,
    /// [`block_tag`] of the block holding it.
    pub block: u32,
}

/// A place the table holds for a txid: believe it only if the block at `at.height` has
/// [`block_tag`] `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    pub at: TxPosition,
    pub block: u32,
}

/// The part of a block hash a slot keeps to tell its block from another at the same height.
pub fn block_tag(hash: &Hash256) -> u32 {
    let b = hash.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A slot's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    key: [u8; KEY_LEN],
    at: TxPosition,
    block: u32,
}

impl Slot {
    fn of(entry: &TxEntry) -> Self {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&entry.txid.as_bytes()[..KEY_LEN]);
        Self {
            key,
            at: entry.at,
            block: entry.block,
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[..12].copy_from_slice(&self.key);
        out[12..16].copy_from_slice(&(self.at.height.wrapping_add(1)).to_le_bytes());
        out[16..20].copy_from_slice(&self.at.pos.to_le_bytes());
        out[20..24].copy_from_slice(&self.block.to_le_bytes());
    }

    /// `None` for an empty slot.
    fn decode(v: &[u8]) -> Option<Self> {
        let word = |at: usize| u32::from_le_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]);
        let height = word(12).checked_sub(1)?;
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&v[..KEY_LEN]);
        Some(Self {
            key,
            at: TxPosition {
                height,
                pos: word(16),
            },
            block: word(20),
        })
    }
}

/// An open table file and its geometry.
#[derive(Debug)]
struct Table {
    file: File,
    log2_slots: u32,
    multiplier: u64,
}

impl Table {
    fn slots(&self) -> u64 {
        1 << self.log2_slots
    }

    /// The first slot a key may sit in.
    fn home(&self, key: &[u8; KEY_LEN]) -> u64 {
        let mut start = [0u8; 8];
        start.copy_from_slice(&key[..8]);
        u64::from_le_bytes(start).wrapping_mul(self.multiplier) >> (64 - self.log2_slots)
    }

    fn offset(slot: u64) -> u64 {
        HEADER_LEN + slot * SLOT_LEN as u64
    }

    /// A new, empty table at `path` (replacing any file there).
    fn create(path: &Path, log2_slots: u32, multiplier: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let table = Self {
            file,
            log2_slots,
            multiplier,
        };
        // Sparse: unwritten slots read as zeros, that is empty.
        table.file.set_len(Self::offset(table.slots()))?;
        Ok(table)
    }

    /// The table at `path` and its header's entry count and complete height; `None` when the
    /// file is not a table of this format (or a torn or foreign one).
    fn open(path: &Path) -> std::io::Result<Option<(Self, u64, Option<u32>)>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut header = [0u8; HEADER_USED];
        if file.metadata()?.len() < HEADER_LEN {
            return Ok(None);
        }
        file.read_exact_at(&mut header, 0)?;
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let log2_slots = u64_at(8);
        if &header[..8] != MAGIC
            || u64_at(40) != checksum(&header[..40])
            || !(FIRST_LOG2_SLOTS as u64..48).contains(&log2_slots)
        {
            return Ok(None);
        }
        let table = Self {
            file,
            log2_slots: log2_slots as u32,
            multiplier: u64_at(16),
        };
        if table.file.metadata()?.len() != Self::offset(table.slots()) {
            return Ok(None);
        }
        let complete = u64_at(32).checked_sub(1).map(|h| h as u32);
        Ok(Some((table, u64_at(24), complete)))
    }

    /// Writes the header (geometry, `entries`, `complete`) and syncs the file: slots first,
    /// so that the header never claims what is not on disk.
    fn sync(&self, entries: u64, complete: Option<u32>) -> std::io::Result<()> {
        self.file.sync_data()?;
        let mut header = [0u8; HEADER_USED];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&u64::from(self.log2_slots).to_le_bytes());
        header[16..24].copy_from_slice(&self.multiplier.to_le_bytes());
        header[24..32].copy_from_slice(&entries.to_le_bytes());
        let complete = complete.map_or(0, |h| u64::from(h) + 1);
        header[32..40].copy_from_slice(&complete.to_le_bytes());
        let sum = checksum(&header[..40]);
        header[40..48].copy_from_slice(&sum.to_le_bytes());
        self.file.write_all_at(&header, 0)?;
        self.file.sync_data()
    }

    /// The places held for `key`.
    fn hints(&self, key: &[u8; KEY_LEN]) -> std::io::Result<Vec<Hint>> {
        let mut hints = Vec::new();
        let mut buf = [0u8; LOOKUP_SLOTS * SLOT_LEN];
        let mut slot = self.home(key);
        let mut read = 0;
        while read < MAX_PROBES {
            let n = (LOOKUP_SLOTS as u64).min(self.slots() - slot);
            let bytes = &mut buf[..n as usize * SLOT_LEN];
            self.file.read_exact_at(bytes, Self::offset(slot))?;
            for raw in bytes.chunks_exact(SLOT_LEN) {
                let Some(found) = Slot::decode(raw) else {
                    return Ok(hints);
                };
                if found.key == *key {
                    hints.push(Hint {
                        at: found.at,
                        block: found.block,
                    });
                }
            }
            read += n;
            slot = (slot + n) & (self.slots() - 1);
        }
        Ok(hints)
    }

    /// Enters `slots`, skipping those the table holds already; returns how many it added.
    /// Sorted by home, the slots are entered a window of the file at a time, each window
    /// read and written once.
    fn enter(&self, slots: &mut [Slot]) -> Result<u64, TableFull> {
        slots.sort_unstable_by_key(|s| self.home(&s.key));
        let mut window = Window::default();
        let mut added = 0;
        for slot in slots.iter() {
            let mut at = self.home(&slot.key);
            let mut probes = 0;
            loop {
                if probes == MAX_PROBES {
                    return Err(TableFull::Full);
                }
                if !window.holds(at) {
                    window.write_back(&self.file)?;
                    window.load(&self.file, at - at % WINDOW_SLOTS)?;
                }
                match window.slot(at) {
                    None => {
                        window.put(at, slot);
                        added += 1;
                        break;
                    }
                    Some(held) if held == *slot => break,
                    Some(_) => {
                        at = (at + 1) & (self.slots() - 1);
                        probes += 1;
                    }
                }
            }
        }
        window.write_back(&self.file)?;
        Ok(added)
    }
}

/// Why [`Table::enter`] stopped.
#[derive(Debug)]
enum TableFull {
    /// A slot is [`MAX_PROBES`] away from its home (only if the entry count was far off).
    Full,
    Io(std::io::Error),
}

impl From<std::io::Error> for TableFull {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A window of the file's slots held in memory while a batch is entered.
#[derive(Debug, Default)]
struct Window {
    first: Option<u64>,
    bytes: Vec<u8>,
    dirty: bool,
}

impl Window {
    fn holds(&self, slot: u64) -> bool {
        self.first
            .is_some_and(|first| (first..first + WINDOW_SLOTS).contains(&slot))
    }

    fn load(&mut self, file: &File, first: u64) -> std::io::Result<()> {
        self.bytes.resize(WINDOW_SLOTS as usize * SLOT_LEN, 0);
        file.read_exact_at(&mut self.bytes, Table::offset(first))?;
        self.first = Some(first);
        Ok(())
    }

    fn write_back(&mut self, file: &File) -> std::io::Result<()> {
        if let (true, Some(first)) = (self.dirty, self.first) {
            file.write_all_at(&self.bytes, Table::offset(first))?;
            self.dirty = false;
        }
        Ok(())
    }

    fn range(&self, slot: u64) -> std::ops::Range<usize> {
        let at = (slot - self.first.unwrap_or(slot)) as usize * SLOT_LEN;
        at..at + SLOT_LEN
    }

    fn slot(&self, slot: u64) -> Option<Slot> {
        Slot::decode(&self.bytes[self.range(slot)])
    }

    fn put(&mut self, slot: u64, content: &Slot) {
        let range = self.range(slot);
        content.encode(&mut self.bytes[range]);
        self.dirty = true;
    }
}

/// FNV-1a, enough to tell a torn or foreign header.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the one writer keeps between batches.
#[derive(Debug)]
struct Progress {
    /// Slots in use (the header's count plus what was entered since; a crash may leave the
    /// header's count short of the file, by less than [`SYNC_EVERY_SLOTS_DIVISOR`]ths of it).
    entries: u64,
    /// The file holds, on disk, every transaction of the index's blocks up to this height.
    complete: Option<u32>,
    entered_since_sync: u64,
    synced_at: Instant,
}

/// The txid table; readers look up while one writer (the index writer) enters.
#[derive(Debug)]
pub struct TxIndex {
    path: PathBuf,
    table: RwLock<Table>,
    progress: Mutex<Progress>,
}

impl TxIndex {
    /// Opens the table at `path`, or starts an empty one (with nothing complete) when there is
    /// none or it is unreadable as a table: the store then enters every block again.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let io = |e| io_error(path, e);
        let grown = grow_path(path);
        if grown.exists() {
            // A copy into a bigger table that a crash cut short; the old table is whole.
            std::fs::remove_file(&grown).map_err(|e| io_error(&grown, e))?;
        }
        let (table, entries, complete) = match Table::open(path).map_err(io)? {
            Some(opened) => opened,
            None => {
                if path.exists() {
                    tracing::warn!(path = %path.display(), "transaction table unreadable; building it again from the index");
                }
                let table =
                    Table::create(path, FIRST_LOG2_SLOTS, random_multiplier()?).map_err(io)?;
                table.sync(0, None).map_err(io)?;
                (table, 0, None)
            }
        };
        Ok(Self {
            path: path.to_owned(),
            table: RwLock::new(table),
            progress: Mutex::new(Progress {
                entries,
                complete,
                entered_since_sync: 0,
                synced_at: Instant::now(),
            }),
        })
    }

    /// The height up to which the file holds every transaction of the index, on disk.
    pub fn complete(&self) -> Option<u32> {
        self.progress.lock().expect("tx table progress").complete
    }

    /// The places held for `txid`, to be checked against the index.
    pub fn hints(&self, txid: &Hash256) -> Result<Vec<Hint>, Error> {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&txid.as_bytes()[..KEY_LEN]);
        let table = self.table.read().expect("tx table lock");
        table.hints(&key).map_err(|e| io_error(&self.path, e))
    }

    /// Enters `entries` (already held ones are skipped), growing the table first when they
    /// would fill it beyond its load. Not synced: see [`TxIndex::synced_through`].
    pub fn enter(&self, entries: &[TxEntry]) -> Result<(), Error> {
        let mut progress = self.progress.lock().expect("tx table progress");
        let mut slots: Vec<Slot> = entries.iter().map(Slot::of).collect();
        loop {
            let slots_now = self.table.read().expect("tx table lock").slots();
            let wanted = progress.entries + slots.len() as u64;
            if wanted * 10 > slots_now * MAX_LOAD_TENTHS {
                self.grow(&mut progress)?;
                continue;
            }
            let table = self.table.read().expect("tx table lock");
            match table.enter(&mut slots) {
                Ok(added) => {
                    progress.entries += added;
                    progress.entered_since_sync += added;
                    return Ok(());
                }
                Err(TableFull::Io(e)) => return Err(io_error(&self.path, e)),
                Err(TableFull::Full) => {
                    // The count was short (a crash); the copy into a bigger table recounts.
                    drop(table);
                    self.grow(&mut progress)?;
                }
            }
        }
    }

    /// Declares every transaction of the index's blocks up to `tip` entered (`None`: an
    /// empty index) and, when due (or `now`), syncs the file and records that on disk.
    pub fn synced_through(&self, tip: Option<u32>, now: bool) -> Result<(), Error> {
        let mut progress = self.progress.lock().expect("tx table progress");
        let table = self.table.read().expect("tx table lock");
        let due = progress.synced_at.elapsed() >= SYNC_EVERY
            || progress.entered_since_sync * SYNC_EVERY_SLOTS_DIVISOR >= table.slots();
        if !(now || due || tip < progress.complete) {
            return Ok(());
        }
        self.sync(&table, &mut progress, tip)
    }

    /// Before the block at `height` is undone: the file no longer counts as complete at or
    /// above it, on disk, since the block that replaces it is entered unsynced.
    pub fn undoing(&self, height: u32) -> Result<(), Error> {
        let mut progress = self.progress.lock().expect("tx table progress");
        if progress.complete.is_none_or(|c| c < height) {
            return Ok(());
        }
        let table = self.table.read().expect("tx table lock");
        self.sync(&table, &mut progress, height.checked_sub(1))
    }

    /// Syncs `table` with its header claiming `complete`, and records that.
    fn sync(
        &self,
        table: &Table,
        progress: &mut Progress,
        complete: Option<u32>,
    ) -> Result<(), Error> {
        table
            .sync(progress.entries, complete)
            .map_err(|e| io_error(&self.path, e))?;
        progress.complete = complete;
        progress.entered_since_sync = 0;
        progress.synced_at = Instant::now();
        Ok(())
    }

    /// Copies the table into one of twice the slots, synced, and puts it in place.
    fn grow(&self, progress: &mut Progress) -> Result<(), Error> {
        let grown_path = grow_path(&self.path);
        let io = |e| io_error(&grown_path, e);
        let old = self.table.read().expect("tx table lock");
        let grown = Table::create(&grown_path, old.log2_slots + 1, old.multiplier).map_err(io)?;
        let mut entries = 0;
        let mut bytes = vec![0u8; COPY_SLOTS.min(old.slots()) as usize * SLOT_LEN];
        let mut slots = Vec::new();
        for first in (0..old.slots()).step_by(COPY_SLOTS as usize) {
            old.file
                .read_exact_at(&mut bytes, Table::offset(first))
                .map_err(|e| io_error(&self.path, e))?;
            slots.extend(bytes.chunks_exact(SLOT_LEN).filter_map(Slot::decode));
            entries += match grown.enter(&mut slots) {
                Ok(added) => added,
                Err(TableFull::Io(e)) => return Err(io(e)),
                Err(TableFull::Full) => {
                    return Err(Error::Corrupt("transaction table copy".into()));
                }
            };
            slots.clear();
        }
        grown.sync(entries, progress.complete).map_err(io)?;
        drop(old);
        let mut table = self.table.write().expect("tx table lock");
        std::fs::rename(&grown_path, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(dir, e))?;
        }
        tracing::debug!(slots = grown.slots(), entries, "transaction table grown");
        *table = grown;
        progress.entries = entries;
        progress.entered_since_sync = 0;
        progress.synced_at = Instant::now();
        Ok(())
    }
}

fn grow_path(path: &Path) -> PathBuf {
    path.with_extension("grow")
}

fn random_multiplier() -> Result<u64, Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Index(format!("no randomness for the transaction table: {e}")))?;
    Ok(u64::from_le_bytes(bytes) | 1)
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::IndexFile {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(n: u32) -> Hash256 {
        // Spread like real txids: a hash of n.
        let mut bytes = [0u8; 32];
        let mut h = checksum(&n.to_le_bytes());
        for chunk in bytes.chunks_exact_mut(8) {
            h = checksum(&h.to_le_bytes());
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        Hash256(bytes)
    }

    fn entry(n: u32) -> TxEntry {
        TxEntry {
            txid: txid(n),
            at: TxPosition {
                height: n / 100,
                pos: n % 100,
            },
            block: n / 100 + 7,
        }
    }

    fn hint(e: &TxEntry) -> Hint {
        Hint {
            at: e.at,
            block: e.block,
        }
    }

    #[test]
    fn finds_what_was_entered_across_growth_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txids");
        let index = TxIndex::open(&path).unwrap();
        let entries: Vec<_> = (0..120_000).map(entry).collect();
        // In batches, as runs of blocks arrive; the table grows twice on the way.
        for batch in entries.chunks(25_000) {
            index.enter(batch).unwrap();
        }
        assert!(index.table.read().unwrap().slots() >= 1 << 18);
        for e in entries.iter().step_by(97) {
            assert_eq!(index.hints(&e.txid).unwrap(), vec![hint(e)]);
        }
        assert!(index.hints(&txid(1_000_000)).unwrap().is_empty());
        index.synced_through(Some(1_199), true).unwrap();
        drop(index);

        let index = TxIndex::open(&path).unwrap();
        assert_eq!(index.complete(), Some(1_199));
        for e in entries.iter().step_by(89) {
            assert_eq!(index.hints(&e.txid).unwrap(), vec![hint(e)]);
        }
        // Entering again adds nothing.
        let before = index.progress.lock().unwrap().entries;
        index.enter(&entries[..1000]).unwrap();
        assert_eq!(index.progress.lock().unwrap().entries, before);
        assert_eq!(before, 120_000);
    }

    #[test]
    fn a_txid_in_two_places_gives_both_hints() {
        let dir = tempfile::tempdir().unwrap();
        let index = TxIndex::open(&dir.path().join("txids")).unwrap();
        let first = entry(5);
        // The same transaction in a block that replaced the first one's.
        let again = TxEntry {
            at: TxPosition { height: 0, pos: 9 },
            block: 99,
            ..first
        };
        index.enter(&[first, again]).unwrap();
        let mut hints = index.hints(&first.txid).unwrap();
        hints.sort_by_key(|h| h.block);
        assert_eq!(hints, vec![hint(&first), hint(&again)]);
    }

    #[test]
    fn completeness_is_raised_on_sync_and_lowered_before_an_undo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txids");
        let index = TxIndex::open(&path).unwrap();
        index.enter(&[entry(0)]).unwrap();
        // Not due yet: nothing claimed on disk.
        index.synced_through(Some(10), false).unwrap();
        assert_eq!(index.complete(), None);
        index.synced_through(Some(10), true).unwrap();
        assert_eq!(index.complete(), Some(10));
        index.undoing(11).unwrap();
        assert_eq!(index.complete(), Some(10));
        index.undoing(7).unwrap();
        assert_eq!(index.complete(), Some(6));
        assert_eq!(TxIndex::open(&path).unwrap().complete(), Some(6));
        // An index that lost blocks above its tip lowers the claim at once.
        let index = TxIndex::open(&path).unwrap();
        index.synced_through(Some(3), false).unwrap();
        assert_eq!(TxIndex::open(&path).unwrap().complete(), Some(3));
        index.undoing(0).unwrap();
        assert_eq!(TxIndex::open(&path).unwrap().complete(), None);
    }

    #[test]
    fn a_damaged_or_foreign_file_is_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txids");
        let index = TxIndex::open(&path).unwrap();
        index.enter(&[entry(1)]).unwrap();
        index.synced_through(Some(5), true).unwrap();
        drop(index);
        // A torn header.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xff], 30).unwrap();
        let index = TxIndex::open(&path).unwrap();
        assert_eq!(index.complete(), None);
        assert!(index.hints(&entry(1).txid).unwrap().is_empty());
        drop(index);
        // Something else entirely, and a copy a crash cut short beside it.
        std::fs::write(&path, b"not a table").unwrap();
        std::fs::write(grow_path(&path), b"half a copy").unwrap();
        let index = TxIndex::open(&path).unwrap();
        assert_eq!(index.complete(), None);
        assert!(!grow_path(&path).exists());
        index.enter(&[entry(2)]).unwrap();
        assert_eq!(index.hints(&entry(2).txid).unwrap(), vec![hint(&entry(2))]);
    }

    #[test]
    fn a_short_entry_count_still_finds_room() {
        let dir = tempfile::tempdir().unwrap();
        let index = TxIndex::open(&dir.path().join("txids")).unwrap();
        let entries: Vec<_> = (0..40_000).map(entry).collect();
        index.enter(&entries).unwrap();
        // As after a crash that lost the count: the table is fuller than the writer thinks.
        index.progress.lock().unwrap().entries = 0;
        let more: Vec<_> = (40_000..80_000).map(entry).collect();
        index.enter(&more).unwrap();
        assert_eq!(index.progress.lock().unwrap().entries, 80_000);
        for e in entries.iter().chain(&more).step_by(101) {
            assert_eq!(index.hints(&e.txid).unwrap(), vec![hint(e)]);
        }
    }
}
