//! Canonical binary encoding: the one way every signed structure is laid out.
//!
//! Signatures cover bytes, so the same value must always encode to the same
//! bytes and any other byte string must be refused. The rules are simple on
//! purpose: fixed-width big-endian integers, `u32` length prefixes, UTF-8
//! checked strings, explicit tags for enums, and no trailing bytes. Decoding
//! never panics and never allocates more than the input it was given.

use thiserror::Error;

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Offset where the missing bytes should have started.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes remained after the value ended.
    #[error("{count} trailing bytes after offset {offset}")]
    TrailingBytes {
        /// Offset of the first unexpected byte.
        offset: usize,
        /// How many bytes remained.
        count: usize,
    },
    /// A length prefix exceeded the limit for its field.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// The field being read.
        field: &'static str,
        /// The length the input claimed.
        len: usize,
        /// The limit for this field.
        max: usize,
    },
    /// A string was not UTF-8.
    #[error("{field} is not valid UTF-8")]
    BadUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// An enum tag or version byte had no meaning.
    #[error("unknown {field} tag {tag}")]
    UnknownTag {
        /// The field being read.
        field: &'static str,
        /// The tag found.
        tag: u64,
    },
    /// A value was structurally valid but breaks a rule of its type.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field being read.
        field: &'static str,
        /// What rule it broke.
        reason: &'static str,
    },
}

/// Appends canonical encodings to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Fixed-size bytes, no prefix.
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Bytes with a `u32` length prefix. Callers keep `v` under the field's
    /// limit; lengths over `u32::MAX` cannot occur for bounded fields.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(v);
        self
    }

    /// A UTF-8 string with a `u32` length prefix.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// A sequence: `u32` count, then each element.
    pub fn seq<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) -> &mut Self {
        let len = u32::try_from(items.len()).unwrap_or(u32::MAX);
        self.u32(len);
        for item in items {
            each(self, item);
        }
        self
    }
}

/// Reads canonical encodings from a byte slice, with bounds checks.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, starting at its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Current offset into the input.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count: self.remaining(),
            })
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.fixed::<4>()?;
        Ok(u32::from_be_bytes(b))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.fixed::<8>()?;
        Ok(u64::from_be_bytes(b))
    }

    /// Exactly `N` bytes.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Length-prefixed bytes of at most `max` bytes.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let raw = self.bytes(field, max)?;
        std::str::from_utf8(raw).map_err(|_| DecodeError::BadUtf8 { field })
    }

    /// A sequence of at most `max` elements.
    pub fn seq<T>(
        &mut self,
        field: &'static str,
        max: usize,
        mut each: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        // Each element takes at least one byte, so `len` is also bounded by
        // the input; never reserve more than what remains.
        let mut out = Vec::with_capacity(len.min(self.remaining()));
        for _ in 0..len {
            out.push(each(self)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_of_each_primitive() {
        let mut w = Writer::new();
        w.u8(7)
            .u32(0xdead_beef)
            .u64(42)
            .fixed(&[1, 2, 3])
            .str("café");
        w.seq(&[1u32, 2, 3], |w, v| {
            w.u32(*v);
        });
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u32(), Ok(0xdead_beef));
        assert_eq!(r.u64(), Ok(42));
        assert_eq!(r.fixed::<3>(), Ok([1, 2, 3]));
        assert_eq!(r.str("s", 16), Ok("café"));
        assert_eq!(r.seq("v", 3, |r| r.u32()), Ok(vec![1, 2, 3]));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn over_long_prefix_is_refused_before_reading() {
        let mut w = Writer::new();
        w.u32(u32::MAX);
        let bytes = w.into_bytes();
        assert!(matches!(
            Reader::new(&bytes).bytes("body", 1024),
            Err(DecodeError::TooLong { field: "body", .. })
        ));
        assert!(matches!(
            Reader::new(&bytes).seq("list", usize::MAX, |r| r.u8()),
            Err(DecodeError::Truncated { .. })
        ));
    }

    proptest! {
        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.str("s", 32);
            let _ = r.seq("v", 8, |r| r.bytes("b", 8).map(<[u8]>::to_vec));
            let _ = r.u64();
            let _ = r.finish();
        }
    }
}
