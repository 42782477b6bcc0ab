//! The bitcoin wire encoding: a bounds-checked [`Reader`] over a byte slice and the matching
//! [`Sink`] writer. Blocks and transactions come from outside (a node, a peer, a wallet), so the
//! reader never panics, never copies, and never lets a declared count reserve more memory than
//! the remaining input could fill.

use sha2::{Digest, Sha256};

use crate::{Error, Hash256};

/// A cursor over borrowed bytes. Every read checks bounds and returns a typed error carrying
/// the offset (from the start of the slice) where the bad field begins.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes read since offset `start`, so parsers can keep slices of what they consumed
    /// (empty if `start` is not behind the cursor).
    pub fn since(&self, start: usize) -> &'a [u8] {
        self.data.get(start..self.pos).unwrap_or_default()
    }

    /// Fails with [`Error::TrailingBytes`] unless all input was consumed.
    pub fn finish(&self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                offset: self.pos,
                trailing: self.remaining(),
            })
        }
    }

    /// The next `n` bytes, borrowed.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(Error::UnexpectedEnd {
                offset: self.pos,
                needed: n,
                remaining: self.remaining(),
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.bytes(n).map(drop)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    /// Little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Error> {
        self.array().map(u16::from_le_bytes)
    }

    /// Little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Error> {
        self.array().map(u32::from_le_bytes)
    }

    /// Little-endian `i32` (versions, AuxPoW indexes).
    pub fn i32(&mut self) -> Result<i32, Error> {
        self.array().map(i32::from_le_bytes)
    }

    /// Little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Error> {
        self.array().map(u64::from_le_bytes)
    }

    /// A 32-byte hash in wire order.
    pub fn hash(&mut self) -> Result<Hash256, Error> {
        self.array().map(Hash256)
    }

    /// A compact-size integer (1, 3, 5 or 9 bytes), rejecting non-canonical encodings as
    /// Bitcoin Core does.
    pub fn compact_size(&mut self) -> Result<u64, Error> {
        let offset = self.pos;
        let (value, min) = match self.u8()? {
            0xfd => (u64::from(self.u16()?), 0xfd),
            0xfe => (u64::from(self.u32()?), 0x1_0000),
            0xff => (self.u64()?, 0x1_0000_0000),
            small => return Ok(u64::from(small)),
        };
        if value < min {
            return Err(Error::NonCanonicalCompactSize { offset });
        }
        Ok(value)
    }

    /// A compact-size count of items that each take at least `min_item_size` bytes; fails
    /// unless the remaining input could hold that many, so the count is safe to allocate for.
    pub fn count(&mut self, min_item_size: usize) -> Result<usize, Error> {
        let offset = self.pos;
        let count = self.compact_size()?;
        let remaining = self.remaining();
        usize::try_from(count)
            .ok()
            .filter(|&n| {
                n.checked_mul(min_item_size.max(1))
                    .is_some_and(|len| len <= remaining)
            })
            .ok_or(Error::CountTooLarge {
                offset,
                count,
                remaining,
            })
    }

    /// A compact-size length followed by that many bytes (scripts, witness items).
    pub fn var_bytes(&mut self) -> Result<&'a [u8], Error> {
        let len = self.count(1)?;
        self.bytes(len)
    }

    /// Bitcoin Core's `VARINT` (MSB-first base 128, one added per continuation byte), used by
    /// MWEB headers and kernels; `max` is the largest value of the C++ type being read.
    pub fn base128(&mut self, max: u64) -> Result<u64, Error> {
        let offset = self.pos;
        let mut value = 0u64;
        loop {
            let byte = self.u8()?;
            if value > max >> 7 {
                return Err(Error::VarIntOverflow { offset });
            }
            value = (value << 7) | u64::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            if value == max {
                return Err(Error::VarIntOverflow { offset });
            }
            value += 1;
        }
    }
}

/// Where serialized bytes go: a buffer, or a hash state so that ids are computed without
/// building the preimage. The provided methods are the writers matching [`Reader`].
pub trait Sink {
    /// Appends raw bytes.
    fn put(&mut self, bytes: &[u8]);

    /// One byte.
    fn put_u8(&mut self, value: u8) {
        self.put(&[value]);
    }

    /// Little-endian `u16`.
    fn put_u16(&mut self, value: u16) {
        self.put(&value.to_le_bytes());
    }

    /// Little-endian `u32`.
    fn put_u32(&mut self, value: u32) {
        self.put(&value.to_le_bytes());
    }

    /// Little-endian `i32`.
    fn put_i32(&mut self, value: i32) {
        self.put(&value.to_le_bytes());
    }

    /// Little-endian `u64`.
    fn put_u64(&mut self, value: u64) {
        self.put(&value.to_le_bytes());
    }

    /// A compact-size integer in its canonical (shortest) form.
    fn put_compact_size(&mut self, value: u64) {
        match value {
            0..0xfd => self.put_u8(value as u8),
            0xfd..=0xffff => {
                self.put_u8(0xfd);
                self.put_u16(value as u16);
            }
            0x1_0000..=0xffff_ffff => {
                self.put_u8(0xfe);
                self.put_u32(value as u32);
            }
            _ => {
                self.put_u8(0xff);
                self.put_u64(value);
            }
        }
    }

    /// A compact-size length followed by the bytes.
    fn put_var_bytes(&mut self, bytes: &[u8]) {
        self.put_compact_size(bytes.len() as u64);
        self.put(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Encoded length of a compact-size integer.
pub fn compact_size_len(value: u64) -> usize {
    match value {
        0..0xfd => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Finishes a double SHA-256 whose first pass was fed incrementally.
pub(crate) fn finish_sha256d(first_pass: Sha256) -> Hash256 {
    Hash256(Sha256::digest(first_pass.finalize()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_round_trips_at_every_width() {
        for value in [
            0,
            1,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            out.put_compact_size(value);
            assert_eq!(out.len(), compact_size_len(value));
            let mut reader = Reader::new(&out);
            assert_eq!(reader.compact_size().unwrap(), value);
            reader.finish().unwrap();
        }
    }

    #[test]
    fn non_canonical_compact_size_is_rejected() {
        for bytes in [
            &[0xfd, 0xfc, 0x00][..],
            &[0xfe, 0xff, 0xff, 0, 0],
            &[0xff, 1, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert!(matches!(
                Reader::new(bytes).compact_size(),
                Err(Error::NonCanonicalCompactSize { offset: 0 })
            ));
        }
    }

    #[test]
    fn count_cannot_exceed_remaining_input() {
        // Claims 2^32 items of 41 bytes with only two bytes behind the count.
        let bytes = [0xff, 0, 0, 0, 0, 1, 0, 0, 0, 0xaa, 0xbb];
        assert!(matches!(
            Reader::new(&bytes).count(41),
            Err(Error::CountTooLarge {
                offset: 0,
                count: 0x1_0000_0000,
                remaining: 2
            })
        ));
        let mut reader = Reader::new(&[2, 0xaa, 0xbb]);
        assert_eq!(reader.count(1).unwrap(), 2);
        assert!(Reader::new(&[2, 0xaa, 0xbb]).count(2).is_err());
    }

    #[test]
    fn truncated_reads_fail_with_offsets() {
        let mut reader = Reader::new(&[1, 1, 3]);
        assert_eq!(reader.u8().unwrap(), 1);
        assert!(matches!(
            reader.u32(),
            Err(Error::UnexpectedEnd {
                offset: 1,
                needed: 4,
                remaining: 2
            })
        ));
        assert!(matches!(
            reader.bytes(usize::MAX),
            Err(Error::UnexpectedEnd { .. })
        ));
        assert_eq!(reader.var_bytes().unwrap(), &[3][..]);
        assert_eq!(reader.since(1), &[1, 3][..]);
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut reader = Reader::new(&[1, 2]);
        reader.u8().unwrap();
        assert!(matches!(
            reader.finish(),
            Err(Error::TrailingBytes {
                offset: 1,
                trailing: 1
            })
        ));
    }

    #[test]
    fn base128_matches_bitcoin_core_examples() {
        // Examples from the VARINT comment in Bitcoin Core's serialize.h.
        let cases: [(&[u8], u64); 8] = [
            (&[0x00], 0),
            (&[0x7f], 127),
            (&[0x80, 0x00], 128),
            (&[0x80, 0x7f], 255),
            (&[0x81, 0x00], 256),
            (&[0xfe, 0x7f], 16383),
            (&[0x82, 0xfe, 0x7f], 65535),
            (&[0x8e, 0xfe, 0xfe, 0xff, 0x00], 1 << 32),
        ];
        for (bytes, value) in cases {
            let mut reader = Reader::new(bytes);
            assert_eq!(reader.base128(u64::MAX).unwrap(), value);
            reader.finish().unwrap();
        }
        assert!(matches!(
            Reader::new(&[0xff; 12]).base128(i64::MAX as u64),
            Err(Error::VarIntOverflow { offset: 0 })
        ));
        assert!(
            Reader::new(&[0x8e, 0xfe, 0xfe, 0xff, 0x00])
                .base128(i32::MAX as u64)
                .is_err()
        );
    }

    #[test]
    fn writers_are_little_endian() {
        let mut out = Vec::new();
        out.put_u16(0x0102);
        out.put_u32(0x0304_0506);
        out.put_i32(-2);
        out.put_u64(7);
        out.put_var_bytes(b"ab");
        let mut reader = Reader::new(&out);
        assert_eq!(reader.u16().unwrap(), 0x0102);
        assert_eq!(reader.u32().unwrap(), 0x0304_0506);
        assert_eq!(reader.i32().unwrap(), -2);
        assert_eq!(reader.u64().unwrap(), 7);
        assert_eq!(reader.var_bytes().unwrap(), b"ab");
        reader.finish().unwrap();
    }
}
