//! A decompression bomb costs what it weighs, not what it would inflate
//! to: change envelopes whose Automerge chunk is compressed (each of a few
//! hundred KiB inflating to 400 MiB), validly signed by an admitted person,
//! are refused by bundle import and by sync without being inflated, and the
//! import's peak memory stays under 64 MB, also for a bundle file several
//! times that size.
//!
//! The only test in its binary: the allocator counts every thread's
//! allocations.

mod common;

use std::io::Write as _;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use gatehouse_node::error::LibraryError;
use gatehouse_node::replica::bundle;
use gatehouse_protocol::encoding::Writer;
use gatehouse_protocol::envelope::{Envelope, EnvelopeKind, MAX_PAYLOAD_BYTES};
use gatehouse_protocol::id::ItemId;
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Bytes one bomb inflates to.
const INFLATED: usize = 400 << 20;
/// The most the import may hold at once: 64 MB (not MiB).
const PEAK_LIMIT: usize = 64_000_000;

/// An Automerge compressed change chunk (type 2) whose body inflates to
/// [`INFLATED`] bytes: magic, checksum, type, LEB128 length, deflated body.
fn compressed_chunk() -> Vec<u8> {
    let mut deflate = DeflateEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..INFLATED / zeros.len() {
        deflate.write_all(&zeros).expect("deflate");
    }
    let body = deflate.finish().expect("deflate");
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            chunk.push(byte);
            break;
        }
        chunk.push(byte | 0x80);
    }
    chunk.extend_from_slice(&body);
    chunk
}

#[test]
fn compressed_changes_are_refused_without_being_inflated() {
    let (dir, home, mut lib) = common::new_site();
    let member = home.read_key("member").expect("read").expect("member key");
    let network = lib.config().network;
    let owner = lib.config().establishment;
    let chunk = compressed_chunk();
    let bombs: Vec<Vec<u8>> = (0..12u8)
        .map(|n| {
            let salt = [n; 16];
            let mut w = Writer::new();
            w.fixed(ItemId::derive(&owner, &salt).as_bytes())
                .fixed(owner.as_bytes())
                .fixed(&salt)
                .bytes(&chunk);
            let payload = w.into_bytes();
            assert!(
                payload.len() <= MAX_PAYLOAD_BYTES,
                "{} bytes",
                payload.len()
            );
            Envelope::sign_payload(EnvelopeKind::Change, &payload, &member, &network, 1)
        })
        .collect();
    let path = dir.path().join("bomb.bundle");
    std::fs::write(&path, bundle::write(&network, &bombs)).expect("write");
    let envelopes_before = lib.status().expect("status").envelopes;

    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let report = bundle::import_file(&mut lib, &path).expect("import");
    let peak = ALLOC.peak_usage().saturating_sub(base);
    eprintln!("peak heap above the start: {peak} bytes");
    assert_eq!(report.read, bombs.len());
    assert_eq!(
        report.refused.values().sum::<usize>(),
        bombs.len(),
        "{report:?}"
    );
    for r in &report.refusals {
        assert!(r.reason.contains("uncompressed"), "{r:?}");
    }
    assert!(
        peak < PEAK_LIMIT,
        "importing {} bombs of {} KiB (each inflating to {} MiB) peaked at {} bytes",
        bombs.len(),
        chunk.len() >> 10,
        INFLATED >> 20,
        peak
    );

    // A bundle far larger than the limit is read an entry at a time: the
    // whole file is never held.
    let repeated: Vec<Vec<u8>> = (0..40).flat_map(|_| bombs.iter().cloned()).collect();
    let big = dir.path().join("big.bundle");
    std::fs::write(&big, bundle::write(&network, &repeated)).expect("write");
    let size = std::fs::metadata(&big).expect("size").len();
    assert!(size > 2 * PEAK_LIMIT as u64, "{size} bytes");
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let report = bundle::import_file(&mut lib, &big).expect("import");
    let peak = ALLOC.peak_usage().saturating_sub(base);
    eprintln!("peak heap above the start: {peak} bytes");
    assert_eq!(report.read, repeated.len());
    assert_eq!(report.refused.values().sum::<usize>(), repeated.len());
    assert!(
        peak < PEAK_LIMIT,
        "importing a bundle of {} MiB peaked at {} bytes",
        size >> 20,
        peak
    );

    // By sync, the same.
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    match lib.ingest(&bombs[0]) {
        Err(LibraryError::Refused(e)) => assert!(e.to_string().contains("uncompressed"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let peak = ALLOC.peak_usage().saturating_sub(base);
    eprintln!("peak heap above the start: {peak} bytes");
    assert!(
        peak < PEAK_LIMIT,
        "one pushed bomb peaked at {} bytes",
        peak
    );
    assert_eq!(lib.status().expect("status").envelopes, envelopes_before);
}
