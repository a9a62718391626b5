//! The forum under a national network's load, end to end over loopback
//! HTTP: the home page, the question lists, the thread API and a thread
//! page p50/p99, on a node holding 10,000 threads and 100,000 posts (each
//! thread a question or a discussion with nine replies) beside 1,000
//! items.
//!
//! `cargo bench -p gatehouse-node --bench forum`;
//! `GATEHOUSE_BENCH_THREADS=1000` sets the thread count. Figures are
//! printed as `BENCH {json}` lines. The library is built once (signed,
//! verified and applied like any received envelope) and kept under
//! cargo's target directory for later runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Net, item, network, open_or_build, percentile};
use gatehouse_node::library::Library;
use gatehouse_node::web::{WebServer, WebState};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::post::{Action, Post, Question, Reply, Topic, Urgency, Voice};
use gatehouse_protocol::vocab::Pathway;

mod common;

/// Replies in each thread.
const REPLIES: u64 = 9;
/// Items beside the forum.
const ITEMS: u64 = 1_000;
/// Requests per measure.
const REQUESTS: usize = 400;

fn threads() -> u64 {
    std::env::var("GATEHOUSE_BENCH_THREADS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10_000)
}

fn library_dir(threads: u64) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gatehouse-bench-forum-{threads}"))
}

fn post(net: &Net, action: Action, at: u64) -> Verified {
    Verified::sign(
        Body::Post(Box::new(Post {
            voice: Voice::Establishment(net.est_id),
            action,
        })),
        &net.member,
        &net.network,
        at,
    )
}

/// The opening of thread `n`: every third a discussion, the rest questions
/// across the care pathways and urgencies.
fn opening(net: &Net, n: u64, at: u64) -> Verified {
    let pathway = Pathway::ALL[(n as usize) % Pathway::ALL.len()];
    let action = if n.is_multiple_of(3) {
        Action::Topic(Topic {
            title: format!("Bench discussion {n}: changes to practice"),
            body: "What has changed at your site this year?".into(),
            about: None,
            pathways: vec![pathway],
        })
    } else {
        Action::Ask(Question {
            title: format!("Bench question {n}: how do you manage it?"),
            body: "We have tried several approaches; what works for you?".into(),
            pathways: vec![pathway],
            settings: Vec::new(),
            urgency: Urgency::ALL[(n as usize) % Urgency::ALL.len()],
            links: Vec::new(),
        })
    };
    post(net, action, at)
}

/// Opens the library, building it the first time; returns it and one
/// thread id.
fn library(net: &Net, threads: u64) -> (Library, EnvelopeId) {
    let first = opening(net, 0, 1_700_000_000_000).id();
    let started = Instant::now();
    let (lib, built) = open_or_build(&library_dir(threads), net, |lib| {
        let items: Vec<_> = (0..ITEMS).map(|n| item(net, n)).collect();
        for batch in items.chunks(500) {
            lib.ingest_many(batch.to_vec()).expect("items");
        }
        let mut batch = Vec::new();
        for n in 0..threads {
            let at = 1_700_000_000_000 + n * 60_000;
            let open = opening(net, n, at);
            let thread = open.id();
            batch.push(open);
            for r in 0..REPLIES {
                batch.push(post(
                    net,
                    Action::Reply(Reply {
                        thread,
                        quoting: None,
                        body: format!("Reply {r}: at our site we do it this way."),
                    }),
                    at + 1_000 * (r + 1),
                ));
            }
            if batch.len() >= 1_000 {
                lib.ingest_many(std::mem::take(&mut batch)).expect("posts");
            }
        }
        lib.ingest_many(batch).expect("posts");
    });
    if built {
        println!(
            "BENCH {{\"bench\":\"forum_build\",\"threads\":{threads},\"posts\":{},\"items\":{ITEMS},\"build_s\":{:.1}}}",
            threads * (REPLIES + 1),
            started.elapsed().as_secs_f64()
        );
    }
    (lib, first)
}

async fn timed(client: &reqwest::Client, url: &str) -> Duration {
    let t = Instant::now();
    let r = client.get(url).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let body = r.bytes().await.expect("body");
    let took = t.elapsed();
    assert!(!body.is_empty());
    took
}

fn main() {
    let net = network();
    let threads = threads();
    let opened = Instant::now();
    let (lib, first) = library(&net, threads);
    println!(
        "BENCH {{\"bench\":\"forum_open\",\"threads\":{threads},\"open_s\":{:.2}}}",
        opened.elapsed().as_secs_f64()
    );
    let state = WebState::new(lib.reads(), None);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let server = WebServer::start(([127, 0, 0, 1], 0).into(), state)
            .await
            .expect("serve");
        let base = format!("http://{}", server.addr);
        let client = reqwest::Client::new();
        let pages = [
            ("home_page", "/".to_string()),
            ("questions_open", "/questions".to_string()),
            ("questions_overdue", "/questions?list=overdue".to_string()),
            ("questions_by_pathway", "/questions?pathway=mental-health".to_string()),
            ("discussions", "/questions?list=discussions".to_string()),
            ("api_threads_all", "/api/v1/threads?list=all&limit=50".to_string()),
            ("thread_page", format!("/threads/{}", first.to_hex())),
            ("api_thread", format!("/api/v1/threads/{}", first.to_hex())),
        ];
        for (name, path) in pages {
            let url = format!("{base}{path}");
            timed(&client, &url).await;
            let mut latencies: Vec<Duration> = Vec::with_capacity(REQUESTS);
            for _ in 0..REQUESTS {
                latencies.push(timed(&client, &url).await);
            }
            latencies.sort();
            println!(
                "BENCH {{\"bench\":\"{name}\",\"threads\":{threads},\"posts\":{},\"requests\":{REQUESTS},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
                threads * (REPLIES + 1),
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0),
            );
        }
        server.stop().await;
    });
}
