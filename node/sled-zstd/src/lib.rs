//! The calls sled 0.34 makes to the `zstd` crate (`block::compress`,
//! `block::decompress` and `stream::decode_all`), over `zstd-safe`. The
//! workspace puts this crate in place of `zstd` 0.9 (`[patch.crates-io]`
//! in the root `Cargo.toml`); sled is its only user.
//!
//! zstd 0.9's `block::compress` makes a compression context for every
//! call, and sled calls it for every page it writes to its log: in a
//! profile of a 20,000-item bundle import, making those contexts was
//! about a third of the storing thread's samples. Here each thread keeps
//! one context for compressing and one for decompressing. What is written
//! is what zstd 0.9 wrote (`ZSTD_compressCCtx` at the level asked, one
//! frame per call), and any zstd frame reads back.

use std::cell::RefCell;
use std::io;

use zstd_safe::{CCtx, DCtx};

thread_local! {
    static COMPRESSOR: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DECOMPRESSOR: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

/// zstd's error code as an I/O error, as zstd 0.9 made them.
fn error(code: usize) -> io::Error {
    io::Error::other(zstd_safe::get_error_name(code))
}

/// One-shot compression and decompression of whole blocks.
pub mod block {
    use super::{COMPRESSOR, DECOMPRESSOR, error};
    use std::io;

    /// `data` as one zstd frame, at `level` (0: zstd's default).
    pub fn compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(data.len()));
        COMPRESSOR
            .with(|c| c.borrow_mut().compress(&mut out, data, level))
            .map_err(error)?;
        Ok(out)
    }

    /// The frame `data` decompressed, which must take at most `capacity`
    /// bytes.
    pub fn decompress(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(capacity);
        DECOMPRESSOR
            .with(|d| d.borrow_mut().decompress(&mut out, data))
            .map_err(error)?;
        Ok(out)
    }
}

/// Decompression of what a reader holds.
pub mod stream {
    use super::{DECOMPRESSOR, error};
    use std::io::{self, Read};
    use zstd_safe::{InBuffer, OutBuffer};

    /// Every frame `source` holds to its end, decompressed; an error if
    /// it ends inside a frame.
    pub fn decode_all<R: Read>(mut source: R) -> io::Result<Vec<u8>> {
        let mut input = Vec::new();
        source.read_to_end(&mut input)?;
        let mut out = Vec::new();
        DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            // A frame left unfinished by an earlier error is dropped.
            d.reset().map_err(error)?;
            let mut from = InBuffer::around(&input);
            let mut in_frame = false;
            while from.pos() < input.len() || in_frame {
                if out.capacity() == out.len() {
                    out.reserve(zstd_safe::dstream_out_size());
                }
                let (read_before, written_before) = (from.pos(), out.len());
                let hint = d
                    .decompress_stream(
                        &mut OutBuffer::around_pos(&mut out, written_before),
                        &mut from,
                    )
                    .map_err(error)?;
                in_frame = hint != 0;
                if in_frame && from.pos() == read_before && out.len() == written_before {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the data ends inside a zstd frame",
                    ));
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(n: usize) -> Vec<u8> {
        b"Naloxone is offered on release; the dose table was checked. "
            .iter()
            .cycle()
            .take(n)
            .copied()
            .collect()
    }

    #[test]
    fn frames_are_those_a_fresh_context_writes_and_read_back_every_way() {
        for n in [0, 1, 100, 4096, 300_000] {
            let data = sample(n);
            for level in [0, 1, 3, 19] {
                let ours = block::compress(&data, level).expect("compress");
                let mut fresh = Vec::with_capacity(zstd_safe::compress_bound(n));
                zstd_safe::compress(&mut fresh, &data, level).expect("compress");
                assert_eq!(ours, fresh, "{n} bytes at level {level}");
                assert_eq!(block::decompress(&ours, n).expect("decompress"), data);
                assert_eq!(stream::decode_all(&ours[..]).expect("decode"), data);
            }
        }
    }

    #[test]
    fn frames_one_after_another_read_as_one_and_a_cut_frame_is_an_error() {
        let (a, b) = (sample(70_000), sample(5));
        let mut both = block::compress(&a, 3).expect("compress");
        both.extend(block::compress(&b, 3).expect("compress"));
        assert_eq!(
            stream::decode_all(&both[..]).expect("decode"),
            [a.clone(), b].concat()
        );
        let whole = block::compress(&a, 3).expect("compress");
        for cut in [1, whole.len() / 2, whole.len() - 1] {
            assert!(stream::decode_all(&whole[..cut]).is_err(), "cut at {cut}");
        }
        // The context is whole again after the error.
        assert_eq!(stream::decode_all(&whole[..]).expect("decode"), a);
        assert!(stream::decode_all(&b"not zstd"[..]).is_err());
        assert_eq!(
            stream::decode_all(&[][..]).expect("empty"),
            Vec::<u8>::new()
        );
        // Too little room is an error, not a short answer.
        assert!(block::decompress(&whole, a.len() - 1).is_err());
    }

    proptest! {
        #[test]
        fn anything_compressed_reads_back(data in proptest::collection::vec(any::<u8>(), 0..20_000), level in 1i32..6) {
            let frame = block::compress(&data, level).expect("compress");
            prop_assert_eq!(block::decompress(&frame, data.len()).expect("decompress"), data.clone());
            prop_assert_eq!(stream::decode_all(&frame[..]).expect("decode"), data);
        }
    }
}
