//! Library benchmarks: envelope verify-and-apply throughput next to the raw
//! ed25519 verify rate, search latency (p50/p99) over 10k and 100k synthetic
//! items, and publish-to-searchable latency.
//!
//! `cargo bench -p gatehouse-node --bench library`. Criterion prints its
//! usual estimates; the percentile figures criterion does not give are
//! printed as `BENCH {json}` lines. `GATEHOUSE_BENCH_SIZES=10000` limits the
//! search sizes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use common::{Net, QUERIES, items, network, percentile, signed_alike, sizes};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gatehouse_node::authoring::new_item;
use gatehouse_node::library::{Library, NodeConfig};
use gatehouse_node::projection::search::SearchIndex;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::store::MemoryStore;
use gatehouse_protocol::change::ChangePayload;
use gatehouse_protocol::envelope::Body;
use gatehouse_protocol::item::read_item;
use gatehouse_protocol::key::SecretKey;

mod common;

fn library(net: &Net, member: Option<SecretKey>) -> Library {
    let config = NodeConfig {
        network: net.network,
        establishment: net.est_id,
        member: member.as_ref().map(SecretKey::public),
        node: net.member.public(),
        actor_suffix: "00112233445566778899aabbccddeeff".into(),
    };
    let mut lib = Library::with_store(
        Arc::new(MemoryStore::new()),
        config,
        SearchIndex::in_memory().expect("index"),
        member,
    )
    .expect("library");
    lib.ingest_many(net.certs.clone()).expect("certificates");
    lib
}

fn bench_verify_and_apply(c: &mut Criterion) {
    let net = network();
    let envelopes = items(&net, 200);
    let mut g = c.benchmark_group("envelopes");
    g.throughput(Throughput::Elements(envelopes.len() as u64));
    g.sample_size(10);
    g.bench_function("raw ed25519 verify", |b| {
        // The same number of signatures over messages of the same lengths.
        let signed = signed_alike(&net, &envelopes);
        let key = net.member.public();
        b.iter(|| {
            for (msg, sig) in &signed {
                assert!(key.verify(black_box(msg), sig));
            }
        });
    });
    // The parts of opening an envelope from outside, each alone.
    let changes: Vec<ChangePayload> = envelopes
        .iter()
        .map(|e| {
            match gatehouse_protocol::envelope::Envelope::open(e, &net.network)
                .expect("valid")
                .body()
            {
                Body::Change(c) => (**c).clone(),
                other => panic!("items are changes, not {:?}", other.kind()),
            }
        })
        .collect();
    let payloads: Vec<Vec<u8>> = changes.iter().map(ChangePayload::encode).collect();
    g.bench_function("parse the Automerge change alone", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(ChangePayload::decode(p).expect("decodes"));
            }
        });
    });
    g.bench_function("check the change's ops alone", |b| {
        b.iter(|| {
            for c in &changes {
                c.check_ops().expect("ops read");
            }
        });
    });
    g.bench_function("decode and verify (Automerge change parsed)", |b| {
        b.iter(|| {
            for e in &envelopes {
                black_box(
                    gatehouse_protocol::envelope::Envelope::open(e, &net.network).expect("valid"),
                );
            }
        });
    });
    // The way bundles and peers deliver envelopes: a batch, with one
    // flush and one index commit at the end.
    let file = gatehouse_node::replica::bundle::write(&net.network, &envelopes);
    g.bench_function(
        "decode, verify, judge, store, apply and index (batch)",
        |b| {
            b.iter_batched(
                || library(&net, None),
                |mut lib| {
                    let report =
                        gatehouse_node::replica::bundle::import(&mut lib, &file).expect("import");
                    assert_eq!(report.new, envelopes.len());
                    lib
                },
                BatchSize::PerIteration,
            );
        },
    );
    g.bench_function(
        "decode, verify, judge, store, apply and index (one at a time)",
        |b| {
            b.iter_batched(
                || library(&net, None),
                |mut lib| {
                    for e in &envelopes {
                        lib.ingest(e).expect("ingest");
                    }
                    lib
                },
                BatchSize::PerIteration,
            );
        },
    );
    g.finish();
}

/// What judging a change's content on receipt costs (the item rebuilt at
/// the change and read as a local publish is checked): a bundle of new
/// items, and the 51st version of an item, each with the check and without.
fn bench_content_checks(c: &mut Criterion) {
    let net = network();
    let envelopes = items(&net, 200);
    let file = gatehouse_node::replica::bundle::write(&net.network, &envelopes);
    let mut g = c.benchmark_group("content checks");
    g.sample_size(10);
    for on in [true, false] {
        let name = if on { "on" } else { "off" };
        g.throughput(Throughput::Elements(envelopes.len() as u64));
        g.bench_function(format!("200 new items, checks {name}"), |b| {
            b.iter_batched(
                || {
                    let mut lib = library(&net, None);
                    lib.judge_content(on);
                    lib
                },
                |mut lib| {
                    let report =
                        gatehouse_node::replica::bundle::import(&mut lib, &file).expect("import");
                    assert_eq!(report.new, envelopes.len());
                    lib
                },
                BatchSize::PerIteration,
            );
        });
    }
    // An item with 50 versions, and its 51st.
    let mut author = library(&net, Some(SecretKey::from_seed(net.member.to_seed())));
    let mut content = synthetic_content(1);
    let item = author.publish(&content, &[]).expect("publish");
    for v in 2..=50 {
        content
            .body
            .push_str(&format!("\n\nChange {v}: the dose table was checked."));
        author.revise(&item, &content, &[]).expect("revise");
    }
    let before = author.export().expect("export");
    content.body.push_str("\n\nChange 51.");
    author.revise(&item, &content, &[]).expect("revise");
    let last = author
        .export()
        .expect("export")
        .into_iter()
        .find(|e| !before.contains(e))
        .expect("the 51st version");
    let earlier = gatehouse_node::replica::bundle::write(&net.network, &before);
    g.throughput(Throughput::Elements(1));
    for on in [true, false] {
        let name = if on { "on" } else { "off" };
        g.bench_function(format!("version 51 of an item, checks {name}"), |b| {
            b.iter_batched(
                || {
                    let mut lib = library(&net, None);
                    lib.judge_content(on);
                    gatehouse_node::replica::bundle::import(&mut lib, &earlier).expect("import");
                    lib
                },
                |mut lib| {
                    lib.ingest(&last).expect("ingest");
                    lib
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

fn bench_search(c: &mut Criterion) {
    let net = network();
    for size in sizes() {
        let mut index = SearchIndex::in_memory().expect("index");
        let started = Instant::now();
        for i in 0..size {
            let env = new_item(
                &synthetic_content(i),
                &net.member,
                &[7; 16],
                net.est_id,
                &net.network,
                1,
            )
            .expect("item");
            let Body::Change(c) = env.body() else {
                continue;
            };
            let mut doc = gatehouse_protocol::automerge::AutoCommit::new();
            doc.apply_changes([c.change.clone()]).expect("apply");
            index
                .upsert(&read_item(&doc).expect("item"), env.created_ms(), "")
                .expect("upsert");
        }
        index.commit().expect("commit");
        let build_s = started.elapsed().as_secs_f64();
        let filter = Filter::default();
        let mut latencies = Vec::new();
        for round in 0..50 {
            for q in QUERIES {
                let t = Instant::now();
                let hits = index.search(q, &filter, 10).expect("search");
                latencies.push(t.elapsed());
                if round == 0 {
                    black_box(hits);
                }
            }
        }
        latencies.sort();
        println!(
            "BENCH {{\"bench\":\"search\",\"items\":{size},\"queries\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"index_build_s\":{build_s:.1}}}",
            latencies.len(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
        );
        let mut g = c.benchmark_group(format!("search {size} items"));
        g.sample_size(20);
        g.bench_function("12 clinician queries, top 10 with snippets", |b| {
            b.iter(|| {
                for q in QUERIES {
                    black_box(index.search(q, &filter, 10).expect("search"));
                }
            });
        });
        g.finish();
    }
}

fn bench_publish_to_searchable(c: &mut Criterion) {
    let net = network();
    let mut lib = library(&net, Some(SecretKey::from_seed([3; 32])));
    let mut n = 1_000_000u64;
    let mut latencies = Vec::new();
    let mut g = c.benchmark_group("publish");
    g.sample_size(20);
    g.bench_function("publish until searchable", |b| {
        b.iter(|| {
            n += 1;
            let content = synthetic_content(n);
            let t = Instant::now();
            let id = lib.publish(&content, &[]).expect("publish");
            let hits = lib
                .search(&format!("\"{}\"", content.title), &Filter::default(), 5)
                .expect("search");
            assert!(hits.results.iter().any(|r| r.view.item.id == id));
            latencies.push(t.elapsed());
        });
    });
    g.finish();
    latencies.sort();
    if !latencies.is_empty() {
        println!(
            "BENCH {{\"bench\":\"publish_to_searchable\",\"publishes\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
            latencies.len(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
        );
    }
}

criterion_group!(
    benches,
    bench_verify_and_apply,
    bench_content_checks,
    bench_publish_to_searchable,
    bench_search
);
criterion_main!(benches);
