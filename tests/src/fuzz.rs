//! What each fuzz target does with its input, shared by the cargo-fuzz
//! targets (`tests/fuzz`) and the regression test that replays every input
//! kept under `tests/fuzz/regressions/<target>/` (`tests/fuzz.rs`).
//!
//! Every function must return normally, whatever the bytes: decoders
//! return errors, never panic, and what decodes encodes back to the same
//! bytes where the format is canonical.

use gatehouse_node::authoring::draft;
use gatehouse_node::authoring::post::find_identifier;
use gatehouse_node::projection::forum::{Fact, Forum};
use gatehouse_node::projection::markdown;
use gatehouse_node::replica::bundle;
use gatehouse_protocol::automerge::AutoCommit;
use gatehouse_protocol::certificate::Certificate;
use gatehouse_protocol::change::{ChangePayload, guarded};
use gatehouse_protocol::envelope::Envelope;
use gatehouse_protocol::first::FirstChange;
use gatehouse_protocol::id::{EnvelopeId, NetworkId};
use gatehouse_protocol::item::read_item;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::post::Post;
use gatehouse_protocol::reconcile::Message;
use gatehouse_protocol::sync::{SyncRequest, SyncResponse};
use gatehouse_protocol::trust::TrustView;

/// Automerge panics on some malformed changes, and the protocol catches
/// that panic and refuses the input ([`guarded`]). libFuzzer's harness
/// aborts on every panic, caught or not, so this hook lets a panic raised
/// inside Automerge (or in code it called) unwind to the protocol's guard;
/// a panic anywhere else, or one from Automerge that nothing catches,
/// still ends the run.
fn let_guarded_automerge_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let next = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Raised in Automerge or in what it called (the standard
            // library's sort, given an inconsistent order, say).
            let in_automerge = info
                .location()
                .is_some_and(|l| l.file().contains("/automerge-"))
                || std::backtrace::Backtrace::force_capture()
                    .to_string()
                    .contains("automerge::");
            if !in_automerge {
                next(info);
            }
        }));
    });
}

/// A fuzz target: takes any bytes and must return normally.
pub type Target = fn(&[u8]);

/// The targets, by name, for the regression test.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("certificate", certificate),
    ("change", change),
    ("bundle", bundle_file),
    ("sync", sync_message),
    ("reconcile", reconcile_message),
    ("front_matter", front_matter),
    ("markdown", markdown_render),
    ("posts", posts),
];

/// An envelope: decoded, and opened (signature checked first) against a
/// network it cannot belong to and against the one it names.
pub fn envelope(data: &[u8]) {
    let_guarded_automerge_panics_unwind();
    if let Ok(env) = Envelope::decode(data) {
        let _ = Envelope::open(data, &env.network());
    }
    let _ = Envelope::open(data, &NetworkId([7; 32]));
}

/// A certificate payload: what decodes is exactly what encoding writes.
pub fn certificate(data: &[u8]) {
    if let Ok(cert) = Certificate::decode(data) {
        assert_eq!(cert.encode(), data, "a certificate is canonical");
    }
}

/// A change payload (an Automerge change inside); what decodes and passes
/// the op check every change from outside passes is applied to an empty
/// document, twice, and read as an item, under the guard receipt judges it
/// under. A change read as a first change ([`FirstChange`]) must apply,
/// and read as the item Automerge reads. Most changed bytes break the
/// chunk's checksum, which Automerge checks before anything else, so the
/// input is also tried with its checksum made right.
pub fn change(data: &[u8]) {
    let_guarded_automerge_panics_unwind();
    change_as_given(data);
    if let Some(fixed) = with_checksum_fixed(data) {
        change_as_given(&fixed);
    }
}

/// `data` with its change chunk's checksum made right, if it was not: the
/// payload is the item, its owner and salt (16 bytes each), the chunk's
/// length (`u32`) and the chunk, whose checksum (bytes 4 to 8) is the start
/// of the SHA-256 of its type, its length (LEB128) and that many bytes.
fn with_checksum_fixed(data: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    let len = usize::try_from(u32::from_be_bytes(data.get(48..52)?.try_into().ok()?)).ok()?;
    let chunk = data.get(52..52usize.checked_add(len)?)?;
    let mut body_len = 0usize;
    let mut at = 9;
    for shift in (0..35).step_by(7) {
        let byte = *chunk.get(at)?;
        at += 1;
        body_len |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let hash = sha2::Sha256::digest(chunk.get(8..at.checked_add(body_len)?)?);
    if chunk.get(4..8)? == &hash[..4] {
        return None;
    }
    let mut fixed = data.to_vec();
    fixed.get_mut(56..60)?.copy_from_slice(&hash[..4]);
    Some(fixed)
}

fn change_as_given(data: &[u8]) {
    if let Ok(payload) = ChangePayload::decode(data)
        && payload.check_ops().is_ok()
    {
        let applied = guarded(|| {
            let mut doc = AutoCommit::new();
            let mut read = None;
            for _ in 0..2 {
                doc.apply_changes([payload.change.clone()]).ok()?;
                read = Some(read_item(&doc).map_err(|e| e.to_string()));
            }
            read
        })
        .ok()
        .flatten();
        let first = guarded(|| FirstChange::read(&payload.change))
            .ok()
            .flatten();
        if let Some(first) = first {
            let ours = read_item(&first).map_err(|e| e.to_string());
            assert_eq!(
                Some(ours),
                applied,
                "a first change read otherwise than Automerge reads it"
            );
        }
    }
}

/// A bundle file, every entry read.
pub fn bundle_file(data: &[u8]) {
    let_guarded_automerge_panics_unwind();
    if let Ok(read) = bundle::read(data) {
        for entry in &read.entries {
            let _ = Envelope::decode(&entry.bytes);
        }
    }
}

/// A sync request and a sync response.
pub fn sync_message(data: &[u8]) {
    let _ = SyncRequest::decode(data);
    let _ = SyncResponse::decode(data);
}

/// A reconcile message: what decodes is exactly what encoding writes.
pub fn reconcile_message(data: &[u8]) {
    if let Ok(message) = Message::decode(data) {
        assert_eq!(message.encode(), data, "a reconcile message is canonical");
    }
}

/// A Markdown file with YAML front matter, as `publish` reads it.
pub fn front_matter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = draft::parse(&text, &[]);
}

/// Untrusted Markdown rendered to sanitised HTML and to plain text.
pub fn markdown_render(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = markdown::render(&text, 1);
    let _ = markdown::plain_text(&text);
}

/// Posts as peers send them, framed as `u16` length, one signer byte,
/// then the post's bytes; the `n`th post that decodes has envelope id
/// `[n; 32]`, so later posts can name earlier ones. Each post that
/// decodes encodes back to the same bytes, is scanned for identifiers and
/// has its body rendered; the forum made from them in the order given is
/// the forum made from them in reverse.
pub fn posts(data: &[u8]) {
    static SIGNERS: std::sync::OnceLock<Vec<PublicKey>> = std::sync::OnceLock::new();
    let signers = SIGNERS.get_or_init(|| {
        (1..=3u8)
            .map(|n| SecretKey::from_seed([n; 32]).public())
            .collect()
    });
    let mut facts = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 && facts.len() < 64 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let signer = signers[usize::from(rest[2]) % signers.len()];
        let (bytes, tail) = rest[3..].split_at(len.min(rest.len() - 3));
        rest = tail;
        let Ok(post) = Post::decode(bytes) else {
            continue;
        };
        assert_eq!(post.encode(), bytes, "a post is canonical");
        let _ = find_identifier(&post);
        if let Some(body) = post.body() {
            let _ = markdown::render(body, 2);
        }
        let n = u8::try_from(facts.len()).unwrap_or(u8::MAX);
        facts.push(Fact::of(
            EnvelopeId([n; 32]),
            signer,
            u64::from(n) * 1_000,
            &post,
        ));
    }
    let trust = TrustView::default();
    let shape = |forum: &Forum| {
        let threads: Vec<String> = forum
            .summaries()
            .iter()
            .map(|s| {
                let standing = forum.thread(&s.id).map(|t| &t.standing);
                format!("{s:?} {standing:?}")
            })
            .collect();
        (
            threads,
            format!("{:?}", forum.moderation_log()),
            forum.post_count(),
        )
    };
    let forward = Forum::build(facts.iter().cloned(), &trust);
    let backward = Forum::build(facts.into_iter().rev(), &trust);
    assert_eq!(
        shape(&forward),
        shape(&backward),
        "the forum does not depend on the order posts arrive in"
    );
}
