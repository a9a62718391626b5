//! The web page and JSON API under load, end to end over loopback HTTP:
//! search p50/p99 through `GET /api/v1/search` (plain, filtered, sorted by
//! date, second page: each query asked 40 times, so all but the first are
//! answered from the reader's cache; and every request a first, never
//! cached: the same searches, padded with stop words not asked before),
//! the HTML search page, and the item page, on a node
//! holding 10k and 100k synthetic items in its sled store and tantivy index.
//!
//! `cargo bench -p gatehouse-node --bench web`; `GATEHOUSE_BENCH_SIZES=10000`
//! limits the sizes. Figures are printed as `BENCH {json}` lines. Each
//! library is built once (signed, verified and applied like any received
//! envelope) and kept under cargo's target directory for later runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Net, QUERIES, item, network, open_or_build, percentile, sizes};
use gatehouse_node::library::Library;
use gatehouse_node::web::{WebServer, WebState};

mod common;

/// Envelopes applied per batch while building a library.
const BUILD_BATCH: u64 = 500;
/// Rounds over the query list per measure.
const ROUNDS: usize = 40;
/// Item pages fetched per size.
const ITEM_PAGES: usize = 400;

fn library_dir(size: u64) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gatehouse-bench-web-{size}"))
}

/// Opens the library of `size` items, building it the first time.
fn library(net: &Net, size: u64) -> Library {
    let started = Instant::now();
    let (lib, built) = open_or_build(&library_dir(size), net, |lib| {
        let mut i = 0;
        while i < size {
            let batch: Vec<_> = (i..(i + BUILD_BATCH).min(size))
                .map(|n| item(net, n))
                .collect();
            i += batch.len() as u64;
            lib.ingest_many(batch).expect("apply");
        }
    });
    if built {
        println!(
            "BENCH {{\"bench\":\"web_build\",\"items\":{size},\"build_s\":{:.1}}}",
            started.elapsed().as_secs_f64()
        );
    }
    lib
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

fn report(name: &str, size: u64, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "BENCH {{\"bench\":\"{name}\",\"items\":{size},\"requests\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let net = network();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for size in sizes() {
        let lib = library(&net, size);
        let state = WebState::new(lib.reads(), None);
        runtime.block_on(async {
            let server = WebServer::start(([127, 0, 0, 1], 0).into(), state)
                .await
                .expect("serve");
            let base = format!("http://{}", server.addr);
            let client = reqwest::Client::new();
            let encode = |q: &str| q.replace(' ', "+");
            // Warm the page cache and the connection.
            for q in QUERIES {
                timed(&client, &format!("{base}/api/v1/search?q={}", encode(q))).await;
            }
            let variants = [
                ("api_search", ""),
                ("api_search_filtered", "&kind=procedure&nation=england"),
                ("api_search_by_date", "&sort=updated"),
                ("api_search_page_2", "&offset=20"),
            ];
            for (name, extra) in variants {
                let mut latencies = Vec::new();
                for _ in 0..ROUNDS {
                    for q in QUERIES {
                        let url = format!("{base}/api/v1/search?q={}{extra}", encode(q));
                        latencies.push(timed(&client, &url).await);
                    }
                }
                report(name, size, latencies);
            }
            // Every request a first: the query's words followed by stop
            // words in a number not asked before, so no answer kept by the
            // reader serves it, while the search made (stop words are left
            // out of queries), its facets and its page of 20 snippets are
            // the plain query's.
            let mut latencies = Vec::new();
            for round in 0..ROUNDS {
                for q in QUERIES {
                    let padded = format!("{q}{}", " the".repeat(round + 1));
                    let url = format!("{base}/api/v1/search?q={}", encode(&padded));
                    latencies.push(timed(&client, &url).await);
                }
            }
            report("api_search_first_time", size, latencies);
            let mut latencies = Vec::new();
            for _ in 0..ROUNDS / 4 {
                for q in QUERIES {
                    let url = format!("{base}/search?q={}", encode(q));
                    latencies.push(timed(&client, &url).await);
                }
            }
            report("search_page_html", size, latencies);

            let listing: serde_json::Value = client
                .get(format!("{base}/api/v1/search?sort=updated&limit=500"))
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            let ids: Vec<String> = listing["results"]
                .as_array()
                .expect("results")
                .iter()
                .filter_map(|r| r["id"].as_str().map(String::from))
                .collect();
            let mut latencies = Vec::new();
            for id in ids.iter().cycle().take(ITEM_PAGES) {
                latencies.push(timed(&client, &format!("{base}/items/{id}")).await);
            }
            report("item_page_html", size, latencies);
            server.stop().await;
        });
    }
}
