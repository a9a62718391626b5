//! Automerge's binary change chunk, read column by column with every step
//! bounded: the chunk's header, then its operation columns in the
//! encodings Automerge writes them (run-length, delta, boolean, and the
//! value metadata with its raw bytes).
//!
//! Two readers use it: the scan of a change's action column before
//! Automerge parses the change ([`crate::change`]), and the reading of an
//! item's first change without Automerge ([`crate::first`]). A column that
//! a chunk leaves out reads as nulls (or `false`), as Automerge reads it;
//! anything that does not read is `None`, never a panic.

/// A reader of LEB128 numbers and byte runs; every read is bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leb<'a>(pub(crate) &'a [u8]);

impl<'a> Leb<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn uleb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.take(1)?.first()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            value |= bits.checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    pub(crate) fn sleb(&mut self) -> Option<i64> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let byte = *self.take(1)?.first()?;
            if shift >= 64 {
                return None;
            }
            value |= i64::from(byte & 0x7f).checked_shl(shift)?;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Some(value);
            }
        }
    }

    fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.uleb()?).ok()
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// A column's specification: its id (shifted left by 4), a deflate bit (8)
/// and its type in the low three bits. None of these is deflated: a change
/// chunk's columns never are (Automerge refuses those that are).
pub(crate) mod spec {
    pub(crate) const OBJ_ACTOR: u64 = 1;
    pub(crate) const OBJ_CTR: u64 = 2;
    pub(crate) const KEY_ACTOR: u64 = (1 << 4) | 1;
    pub(crate) const KEY_CTR: u64 = (1 << 4) | 3;
    pub(crate) const KEY_STR: u64 = (1 << 4) | 5;
    pub(crate) const INSERT: u64 = (3 << 4) | 4;
    pub(crate) const ACTION: u64 = (4 << 4) | 2;
    pub(crate) const VAL_META: u64 = (5 << 4) | 6;
    pub(crate) const VAL_RAW: u64 = (5 << 4) | 7;
    pub(crate) const PRED_GROUP: u64 = 7 << 4;
    pub(crate) const PRED_ACTOR: u64 = (7 << 4) | 1;
    pub(crate) const PRED_CTR: u64 = (7 << 4) | 3;
    pub(crate) const EXPAND: u64 = (9 << 4) | 4;
    pub(crate) const MARK_NAME: u64 = (10 << 4) | 5;
}

/// A change chunk's operation columns: each column's specification and
/// bytes, in the chunk's order.
#[derive(Debug)]
pub(crate) struct Columns<'a>(Vec<(u64, &'a [u8])>);

impl<'a> Columns<'a> {
    /// Reads an uncompressed change chunk's header far enough to find its
    /// columns; `None` when the bytes do not read as one.
    pub(crate) fn of_change(chunk: &'a [u8]) -> Option<Self> {
        let mut r = Leb(chunk);
        r.take(4)?; // magic
        r.take(4)?; // checksum
        r.take(1)?; // chunk type
        let len = r.usize()?;
        let mut r = Leb(r.take(len)?);
        let deps = r.usize()?;
        r.take(deps.checked_mul(32)?)?;
        let actor = r.usize()?;
        r.take(actor)?;
        r.uleb()?; // seq
        r.uleb()?; // start op
        r.sleb()?; // time
        let message = r.usize()?;
        r.take(message)?;
        let others = r.uleb()?;
        for _ in 0..others {
            let n = r.usize()?;
            r.take(n)?;
        }
        let count = r.uleb()?;
        let mut layout = Vec::new();
        let mut total = 0usize;
        for _ in 0..count {
            let spec = r.uleb()?;
            let n = r.usize()?;
            total = total.checked_add(n)?;
            layout.push((spec, n));
        }
        let mut data = Leb(r.take(total)?);
        let mut columns = Vec::with_capacity(layout.len());
        for (spec, n) in layout {
            columns.push((spec, data.take(n)?));
        }
        Some(Columns(columns))
    }

    /// The bytes of the column with `spec`, if the chunk has it.
    pub(crate) fn get(&self, spec: u64) -> Option<&'a [u8]> {
        self.0.iter().find(|(s, _)| *s == spec).map(|(_, b)| *b)
    }

    /// Every column's specification.
    pub(crate) fn specs(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|(s, _)| *s)
    }
}

/// A value a run-length column holds.
pub(crate) trait Runs<'a>: Copy {
    fn read(r: &mut Leb<'a>) -> Option<Self>;
}

impl<'a> Runs<'a> for u64 {
    fn read(r: &mut Leb<'a>) -> Option<Self> {
        r.uleb()
    }
}

impl<'a> Runs<'a> for i64 {
    fn read(r: &mut Leb<'a>) -> Option<Self> {
        r.sleb()
    }
}

impl<'a> Runs<'a> for &'a str {
    fn read(r: &mut Leb<'a>) -> Option<Self> {
        let n = r.usize()?;
        std::str::from_utf8(r.take(n)?).ok()
    }
}

/// A run-length encoded column: a positive count then the value repeated,
/// a negative count then that many values, zero then a count of nulls.
#[derive(Debug)]
pub(crate) struct Rle<'a, T> {
    absent: bool,
    data: Leb<'a>,
    left: u64,
    literal: bool,
    last: Option<T>,
}

impl<'a, T: Runs<'a>> Rle<'a, T> {
    /// Reads `data`; a column the chunk left out reads as nulls, however
    /// many are asked for.
    pub(crate) fn new(data: Option<&'a [u8]>) -> Self {
        Rle {
            absent: data.is_none(),
            data: Leb(data.unwrap_or_default()),
            left: 0,
            literal: false,
            last: None,
        }
    }

    /// The next value, `Some(None)` for a null; `None` past the column's
    /// end or where it does not read.
    pub(crate) fn next(&mut self) -> Option<Option<T>> {
        if self.absent {
            return Some(None);
        }
        while self.left == 0 {
            if self.data.done() {
                return None;
            }
            let count = self.data.sleb()?;
            self.literal = count < 0;
            if count > 0 {
                self.last = Some(T::read(&mut self.data)?);
                self.left = count.unsigned_abs();
            } else if count < 0 {
                self.left = count.unsigned_abs();
            } else {
                self.last = None;
                self.left = self.data.uleb()?;
            }
        }
        self.left -= 1;
        if self.literal {
            Some(Some(T::read(&mut self.data)?))
        } else {
            Some(self.last)
        }
    }

    /// Every value was read (a column left out, always).
    pub(crate) fn done(&self) -> bool {
        self.left == 0 && self.data.done()
    }
}

/// A delta-encoded column: run-length encoded differences, each value the
/// sum of those before it (saturating, as Automerge adds them).
#[derive(Debug)]
pub(crate) struct Delta<'a> {
    runs: Rle<'a, i64>,
    sum: i64,
}

impl<'a> Delta<'a> {
    pub(crate) fn new(data: Option<&'a [u8]>) -> Self {
        Delta {
            runs: Rle::new(data),
            sum: 0,
        }
    }

    pub(crate) fn next(&mut self) -> Option<Option<i64>> {
        Some(self.runs.next()?.map(|d| {
            self.sum = self.sum.saturating_add(d);
            self.sum
        }))
    }

    pub(crate) fn done(&self) -> bool {
        self.runs.done()
    }
}

/// A boolean column: counts of alternating runs, the first of `false`.
#[derive(Debug)]
pub(crate) struct Bools<'a> {
    absent: bool,
    data: Leb<'a>,
    left: u64,
    value: bool,
}

impl<'a> Bools<'a> {
    /// Reads `data`; a column the chunk left out reads as `false`, however
    /// many are asked for.
    pub(crate) fn new(data: Option<&'a [u8]>) -> Self {
        Bools {
            absent: data.is_none(),
            data: Leb(data.unwrap_or_default()),
            left: 0,
            value: true,
        }
    }

    pub(crate) fn next(&mut self) -> Option<bool> {
        if self.absent {
            return Some(false);
        }
        while self.left == 0 {
            if self.data.done() {
                return None;
            }
            self.left = self.data.uleb()?;
            self.value = !self.value;
        }
        self.left -= 1;
        Some(self.value)
    }

    /// Every value was read (a column left out, always).
    pub(crate) fn done(&self) -> bool {
        self.left == 0 && self.data.done()
    }
}

/// A scalar value as the value columns hold it, borrowed from the chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Uint(u64),
    Int(i64),
    F64(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Counter(i64),
    Timestamp(i64),
}

/// The value columns: run-length metadata (the length in bytes shifted
/// left by 4, the type in the low 4 bits) and the raw bytes it describes.
#[derive(Debug)]
pub(crate) struct Values<'a> {
    meta: Rle<'a, u64>,
    raw: Leb<'a>,
}

impl<'a> Values<'a> {
    pub(crate) fn new(meta: Option<&'a [u8]>, raw: Option<&'a [u8]>) -> Self {
        Values {
            meta: Rle::new(meta),
            raw: Leb(raw.unwrap_or_default()),
        }
    }

    /// The next value; `None` past the end, for a null in the metadata, a
    /// type this reader does not know, or bytes that do not read as their
    /// type (exactly: nothing left over).
    pub(crate) fn next(&mut self) -> Option<Scalar<'a>> {
        let meta = self.meta.next()??;
        let len = usize::try_from(meta >> 4).ok()?;
        let kind = meta & 0x0f;
        if kind <= 2 {
            // Automerge reads no raw bytes for these, whatever the length
            // says: one that says any is not read here.
            return [Scalar::Null, Scalar::Bool(false), Scalar::Bool(true)]
                .get(usize::try_from(kind).ok()?)
                .copied()
                .filter(|_| len == 0);
        }
        let mut bytes = Leb(self.raw.take(len)?);
        let whole = |value: Option<Scalar<'a>>, rest: &Leb<'a>| value.filter(|_| rest.done());
        match kind {
            3 => whole(bytes.uleb().map(Scalar::Uint), &bytes),
            4 => whole(bytes.sleb().map(Scalar::Int), &bytes),
            5 => Some(Scalar::F64(f64::from_le_bytes(bytes.0.try_into().ok()?))),
            6 => std::str::from_utf8(bytes.0).ok().map(Scalar::Str),
            7 => Some(Scalar::Bytes(bytes.0)),
            8 => whole(bytes.sleb().map(Scalar::Counter), &bytes),
            9 => whole(bytes.sleb().map(Scalar::Timestamp), &bytes),
            _ => None,
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.meta.done() && self.raw.done()
    }
}
