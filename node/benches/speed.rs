//! How fast envelopes become a durable, searchable library, printed as
//! figures next to the raw ed25519 verify rate measured in the same run.
//!
//! `cargo bench -p gatehouse-node --bench speed` (release). Every figure is
//! one `BENCH {json}` line and a sentence. `GATEHOUSE_SPEED_LARGE=100000`
//! adds the large library built from one bundle; `GATEHOUSE_SPEED_ONLY`
//! (`new`, `revisions`, `reconcile`) runs one part.
//!
//! - `new items`: a bundle of 1,000 new items (~2 KB each) imported into a
//!   fresh home on disk (sled store, tantivy index), timed from opening the
//!   bundle to its last flush; the home's size on disk against the
//!   envelopes' bytes; the process's peak resident memory.
//! - `revisions`: the 51st version of each of 100 items, each holding 50
//!   versions already, imported as one bundle.
//! - `reconcile`: a peer's opening message answered by a node holding the
//!   same 1,000,000 ids, CPU time per message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Net, network};
use gatehouse_node::library::{Library, NodeConfig};
use gatehouse_node::projection::search::SearchIndex;
use gatehouse_node::replica::bundle;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::store::{MemoryStore, SledStore};
use gatehouse_protocol::key::SecretKey;

mod common;

fn config(net: &Net, member: Option<&SecretKey>) -> NodeConfig {
    NodeConfig {
        network: net.network,
        establishment: net.est_id,
        member: member.map(SecretKey::public),
        node: net.member.public(),
        actor_suffix: "00112233445566778899aabbccddeeff".into(),
    }
}

/// A library in `dir` on disk, holding the network's certificates.
fn home(dir: &Path, net: &Net) -> Library {
    let _ = std::fs::remove_dir_all(dir);
    let store = SledStore::open(&dir.join("store")).expect("store");
    let mut lib =
        Library::with_store_in(Arc::new(store), config(net, None), &dir.join("index"), None)
            .expect("library");
    lib.ingest_many(net.certs.clone()).expect("certificates");
    lib
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("speed-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Removes a benchmark's home, unless `GATEHOUSE_SPEED_KEEP` is set (to
/// look at what it holds).
fn done_with(dir: &Path) {
    if std::env::var_os("GATEHOUSE_SPEED_KEEP").is_some() {
        println!("  home kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Peak resident memory of this process, from `/proc/self/status`.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Single ed25519 verifications per second over the envelopes' signed
/// bytes (the same lengths), taking at least half a second.
fn raw_verify_rate(net: &Net, envelopes: &[Vec<u8>]) -> f64 {
    let signed = common::signed_alike(net, envelopes);
    let key = net.member.public();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        for (msg, sig) in &signed {
            assert!(key.verify(std::hint::black_box(msg), sig));
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Milliseconds to read each item of `lib` whole, as its page does (p50,
/// p99): for items that arrived whole, from the envelope that holds them.
fn item_reads(lib: &Library) -> (f64, f64) {
    let items = lib
        .list(&gatehouse_node::query::filter::Filter::default())
        .expect("list");
    let mut took: Vec<f64> = items
        .iter()
        .map(|v| {
            let start = Instant::now();
            lib.get(&v.item.id, None).expect("item");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn report(name: &str, json: &str, words: &str) {
    println!("BENCH {{\"bench\":\"{name}\",{json}}}");
    println!("  {words}");
}

fn new_items(net: &Net) {
    let envelopes = common::items(net, 1000);
    let payload: usize = envelopes.iter().map(Vec::len).sum();
    let file = bundle::write(&net.network, &envelopes);
    let raw = raw_verify_rate(net, &envelopes);
    let dir = scratch("new");
    let mut lib = home(&dir, net);
    let start = Instant::now();
    let report_ = bundle::import(&mut lib, &file).expect("import");
    let took = start.elapsed().as_secs_f64();
    assert_eq!(report_.new, envelopes.len());
    let rate = envelopes.len() as f64 / took;
    let (read_p50, read_p99) = item_reads(&lib);
    drop(lib);
    let disk = dir_bytes(&dir);
    let (store, index) = (dir_bytes(&dir.join("store")), dir_bytes(&dir.join("index")));
    let rss = peak_rss_mb();
    report(
        "new items",
        &format!(
            "\"envelopes\":{},\"seconds\":{took:.3},\"per_second\":{rate:.0},\"raw_verify_per_second\":{raw:.0},\"ratio\":{:.3},\"envelope_bytes\":{payload},\"disk_bytes\":{disk},\"store_bytes\":{store},\"index_bytes\":{index},\"disk_ratio\":{:.2},\"peak_rss_mb\":{rss:.1},\"item_read_p50_ms\":{read_p50:.3},\"item_read_p99_ms\":{read_p99:.3}",
            envelopes.len(),
            rate / raw,
            disk as f64 / payload as f64
        ),
        &format!(
            "{} new items verified, applied, indexed and durable in {took:.2} s: {rate:.0}/s against {raw:.0} raw ed25519 verifications/s ({:.2}x); home {:.1} MB on disk (store {:.1} MB, search index {:.1} MB) for {:.1} MB of envelopes ({:.2}x); peak RSS {rss:.0} MB; an item read whole (as its page is) in {read_p50:.2} ms (p50), {read_p99:.2} ms (p99)",
            envelopes.len(),
            rate / raw,
            disk as f64 / 1e6,
            store as f64 / 1e6,
            index as f64 / 1e6,
            payload as f64 / 1e6,
            disk as f64 / payload as f64
        ),
    );
    done_with(&dir);
}

fn revisions(net: &Net) {
    const ITEMS: usize = 100;
    const EARLIER: usize = 50;
    // The envelopes are made once and kept (making 5,100 versions takes
    // minutes), in the target directory beside the benchmark.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("speed-revisions.bundles");
    let (before, last) = match std::fs::read(&kept)
        .ok()
        .and_then(|b| serde_json::from_slice::<(Vec<Vec<u8>>, Vec<Vec<u8>>)>(&b).ok())
    {
        Some(pair) => pair,
        None => {
            let pair = make_revisions(net, ITEMS, EARLIER);
            let _ = std::fs::write(&kept, serde_json::to_vec(&pair).expect("json"));
            pair
        }
    };
    assert_eq!(last.len(), ITEMS);
    let raw = raw_verify_rate(net, &last);
    let dir = scratch("revisions");
    let mut lib = home(&dir, net);
    bundle::import(&mut lib, &bundle::write(&net.network, &before)).expect("earlier versions");
    let file = bundle::write(&net.network, &last);
    let start = Instant::now();
    let r = bundle::import(&mut lib, &file).expect("import");
    let took = start.elapsed().as_secs_f64();
    assert_eq!(r.new, ITEMS);
    let rate = ITEMS as f64 / took;
    report(
        "revisions",
        &format!(
            "\"envelopes\":{ITEMS},\"earlier_versions\":{EARLIER},\"seconds\":{took:.3},\"per_second\":{rate:.0},\"raw_verify_per_second\":{raw:.0},\"ratio\":{:.3}",
            rate / raw
        ),
        &format!(
            "version {} of {ITEMS} items verified, applied, indexed and durable in {took:.3} s: {rate:.0}/s against {raw:.0} raw ed25519 verifications/s ({:.2}x)",
            EARLIER + 1,
            rate / raw
        ),
    );
    drop(lib);
    done_with(&dir);
}

/// `items` items with `earlier` versions each, and the next version of
/// each: (the earlier envelopes, certificates included; the next versions).
fn make_revisions(net: &Net, items: usize, earlier: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let member = SecretKey::from_seed(net.member.to_seed());
    let mut author = Library::with_store(
        Arc::new(MemoryStore::new()),
        config(net, Some(&member)),
        SearchIndex::in_memory().expect("index"),
        Some(member),
    )
    .expect("library");
    author.ingest_many(net.certs.clone()).expect("certificates");
    let mut contents = Vec::new();
    for n in 0..items {
        let content = synthetic_content(n as u64);
        let id = author.publish(&content, &[]).expect("publish");
        contents.push((id, content));
    }
    for v in 2..=earlier {
        for (id, content) in &mut contents {
            content
                .body
                .push_str(&format!("\n\nChange {v}: the dose table was checked."));
            author.revise(id, content, &[]).expect("revise");
        }
    }
    let before = author.export().expect("export");
    for (id, content) in &mut contents {
        content.body.push_str("\n\nChange 51.");
        author.revise(id, content, &[]).expect("revise");
    }
    let held: std::collections::BTreeSet<&Vec<u8>> = before.iter().collect();
    let last: Vec<Vec<u8>> = author
        .export()
        .expect("export")
        .into_iter()
        .filter(|e| !held.contains(e))
        .collect();
    (before, last)
}

fn large(net: &Net, n: u64) {
    let envelopes = common::items(net, n);
    let payload: usize = envelopes.iter().map(Vec::len).sum();
    let file = bundle::write(&net.network, &envelopes);
    drop(envelopes);
    let dir = scratch("large");
    let mut lib = home(&dir, net);
    let start = Instant::now();
    let r = bundle::import(&mut lib, &file).expect("import");
    let took = start.elapsed().as_secs_f64();
    assert_eq!(r.new as u64, n);
    drop(lib);
    let disk = dir_bytes(&dir);
    report(
        "large library",
        &format!(
            "\"envelopes\":{n},\"seconds\":{took:.1},\"per_second\":{:.0},\"envelope_bytes\":{payload},\"disk_bytes\":{disk},\"disk_ratio\":{:.2}",
            n as f64 / took,
            disk as f64 / payload as f64
        ),
        &format!(
            "{n} items from one bundle into a fresh home in {took:.1} s ({:.0}/s); {:.0} MB on disk for {:.0} MB of envelopes ({:.2}x)",
            n as f64 / took,
            disk as f64 / 1e6,
            payload as f64 / 1e6,
            disk as f64 / payload as f64
        ),
    );
    done_with(&dir);
}

fn reconcile() {
    use gatehouse_protocol::id::EnvelopeId;
    use gatehouse_protocol::reconcile::{IdIndex, Reconciler};
    const N: u32 = 1_000_000;
    let id = |i: u32| EnvelopeId(*blake3::hash(&i.to_be_bytes()).as_bytes());
    let mut ids: Vec<EnvelopeId> = (0..N).map(id).collect();
    ids.sort();
    let ours = IdIndex::from_sorted(ids.clone());
    let opening = Reconciler::over(&ours).initiate();
    let rounds = 1000;
    let start = Instant::now();
    for _ in 0..rounds {
        let step = Reconciler::over(std::hint::black_box(&ours))
            .respond(&opening)
            .expect("answers");
        assert!(step.reply.is_none(), "identical sets need no reply");
    }
    let identical = start.elapsed().as_secs_f64() * 1e3 / f64::from(rounds);
    // A peer holding one id more: every message of the exchange, answered
    // from each side's index.
    let mut theirs = ours.clone();
    theirs.insert(id(N));
    let (a, b) = (Reconciler::over(&ours), Reconciler::over(&theirs));
    let mut next = Some(a.initiate());
    let (mut messages, mut spent, mut a_turn) = (0u32, Duration::ZERO, false);
    while let Some(m) = next {
        let start = Instant::now();
        let step = if a_turn { a.respond(&m) } else { b.respond(&m) }.expect("answers");
        spent += start.elapsed();
        messages += 1;
        next = step.reply;
        a_turn = !a_turn;
    }
    let per_diff = spent.as_secs_f64() * 1e3 / f64::from(messages);
    // As before the index: the sorted ids' sums built again per message.
    let start = Instant::now();
    Reconciler::new(std::hint::black_box(&ids))
        .respond(&opening)
        .expect("answers");
    let from_slice = start.elapsed().as_secs_f64() * 1e3;
    report(
        "reconcile",
        &format!(
            "\"ids\":{N},\"ms_per_message_identical\":{identical:.4},\"ms_per_message_one_differs\":{per_diff:.4},\"messages_one_differs\":{messages},\"ms_rebuilding_sums_per_message\":{from_slice:.1}"
        ),
        &format!(
            "over {N} ids held in the index: {identical:.4} ms of CPU to answer an identical set's opening, {per_diff:.4} ms per message when one id differs ({messages} messages); building the sums from the sorted ids for a message instead takes {from_slice:.1} ms"
        ),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read.
    let net = network();
    // `GATEHOUSE_SPEED_ONLY=new|revisions|reconcile` runs one part.
    let only = std::env::var("GATEHOUSE_SPEED_ONLY").ok();
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if run("new") {
        new_items(&net);
    }
    if run("revisions") {
        revisions(&net);
    }
    if run("reconcile") {
        reconcile();
    }
    if let Some(n) = std::env::var("GATEHOUSE_SPEED_LARGE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        large(&net, n);
    }
}
