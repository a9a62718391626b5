//! The network benchmark harness: starts N real nodes on loopback in a
//! sparse random topology and prints JSON figures.
//!
//! ```text
//! cargo run --release -p gatehouse-tests --bin harness -- [--nodes 20] [--messages 30] [--catch-up 1000] [--seed 7] [--library 1000] [--flood 2000]
//! ```
//!
//! Figures:
//! - publish-to-everywhere latency (p50, p99) and gossip duplicates
//!   received per node per message;
//! - reconciliation bytes and round trips for identical sets of 10k and
//!   100k envelope ids, and for d = 1, 10, 100, 1000 differences on 10k,
//!   next to the encoded size of the missing envelopes (the protocol is
//!   sans-IO, so these are exact byte counts of the messages nodes send);
//! - catch-up time for a node that missed 1,000 changes;
//! - post-to-visible latency (p50, p99): a question asked at one site,
//!   until every site's read view (what its web page reads) holds it;
//! - the home page and question list of a site holding 1,000 items, in a
//!   network of two of its own (p50, p99): quiet and with 1,000 idle
//!   connections held open to its web port (200 requests each), and while
//!   it takes in 2,000 items a peer published offline.

use std::time::{Duration, Instant};

use anyhow::Context;
use gatehouse_node::authoring::new_item;
use gatehouse_node::query::Reads;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::web::{Limits, WebServer, WebState};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, NetworkId};
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::post::{Action, Question, Urgency};
use gatehouse_protocol::reconcile::{Message, Reconciler};
use gatehouse_protocol::sync::{SyncRequest, SyncResponse};
use gatehouse_protocol::vocab::Pathway;
use gatehouse_tests::cluster::{Cluster, address, holds, wait_until};

struct Args {
    nodes: usize,
    messages: usize,
    catch_up: u64,
    seed: u64,
    library: u64,
    flood: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        nodes: 20,
        messages: 30,
        catch_up: 1_000,
        seed: 7,
        library: 1_000,
        flood: 2_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => a.nodes = value.parse()?,
            "--messages" => a.messages = value.parse()?,
            "--catch-up" => a.catch_up = value.parse()?,
            "--seed" => a.seed = value.parse()?,
            "--library" => a.library = value.parse()?,
            "--flood" => a.flood = value.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!((2..=50).contains(&a.nodes), "--nodes must be 2 to 50");
    Ok(a)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn ids(n: usize, salt: u64) -> Vec<EnvelopeId> {
    let mut v: Vec<EnvelopeId> = (0..n as u64)
        .map(|i| {
            let mut b = i.to_le_bytes().to_vec();
            b.extend_from_slice(&salt.to_le_bytes());
            EnvelopeId::of(&b)
        })
        .collect();
    v.sort();
    v
}

/// Runs reconciliation between two id sets; returns (bytes both ways including
/// the sync framing, round trips, ids the initiator learned it lacks).
fn reconcile(ours: &[EnvelopeId], theirs: &[EnvelopeId]) -> anyhow::Result<(usize, usize, usize)> {
    let a = Reconciler::new(ours);
    let b = Reconciler::new(theirs);
    let mut msg = a.initiate();
    let mut bytes = 0;
    let mut trips = 0;
    let mut need = 0;
    loop {
        let req = SyncRequest::Reconcile(msg.encode()).encode();
        bytes += req.len() + 4;
        trips += 1;
        let step = b.respond(&Message::decode(&msg.encode())?)?;
        let resp = SyncResponse::Reconcile(step.reply.as_ref().map(Message::encode)).encode();
        bytes += resp.len() + 4;
        let Some(reply) = step.reply else { break };
        let back = a.respond(&reply)?;
        need += back.need.len();
        match back.reply {
            Some(m) => msg = m,
            None => break,
        }
    }
    Ok((bytes, trips, need))
}

fn reconcile_figures() -> anyhow::Result<serde_json::Value> {
    let mut identical = Vec::new();
    for n in [10_000usize, 100_000] {
        let set = ids(n, 1);
        let (bytes, trips, _) = reconcile(&set, &set)?;
        identical.push(serde_json::json!({ "ids": n, "bytes": bytes, "round_trips": trips }));
    }
    // Realistic envelopes for the missing ones: new synthetic items.
    let member = SecretKey::from_seed([3; 32]);
    let network = NetworkId([1; 32]);
    let mut differences = Vec::new();
    for d in [1usize, 10, 100, 1000] {
        let base = ids(10_000, 2);
        let missing: Vec<Vec<u8>> = (0..d as u64)
            .map(|i| {
                new_item(
                    &synthetic_content(i),
                    &member,
                    &[1; 16],
                    EstablishmentId([2; 16]),
                    &network,
                    1,
                )
                .map(|e| e.bytes().to_vec())
            })
            .collect::<Result<_, _>>()?;
        let mut theirs = base.clone();
        theirs.extend(missing.iter().map(|b| EnvelopeId::of(b)));
        theirs.sort();
        let (recon_bytes, trips, need) = reconcile(&base, &theirs)?;
        anyhow::ensure!(need == d, "reconciliation found {need} of {d} differences");
        let envelope_bytes: usize = missing.iter().map(Vec::len).sum();
        let fetch_ids: Vec<EnvelopeId> = missing.iter().map(|b| EnvelopeId::of(b)).collect();
        let fetch_bytes: usize = fetch_ids
            .chunks(gatehouse_protocol::sync::MAX_FETCH_IDS)
            .map(|c| SyncRequest::Fetch(c.to_vec()).encode().len() + 4)
            .sum::<usize>()
            + SyncResponse::Envelopes(missing.clone()).encode().len()
            + 4;
        let wire = recon_bytes + fetch_bytes;
        differences.push(serde_json::json!({
            "base_ids": 10_000,
            "differences": d,
            "reconcile_bytes": recon_bytes,
            "round_trips": trips,
            "missing_envelope_bytes": envelope_bytes,
            "wire_bytes_including_transfer": wire,
            "wire_over_envelopes": (wire as f64 / envelope_bytes as f64 * 1000.0).round() / 1000.0,
        }));
    }
    Ok(serde_json::json!({ "identical": identical, "differences": differences }))
}

/// Questions asked at random sites, one at a time: from the ask until the
/// question is in every site's latest read view.
async fn post_latencies(
    nodes: &[RunningNode],
    rng: &mut Rng,
    posts: usize,
) -> anyhow::Result<Vec<Duration>> {
    let reads: Vec<Reads> = nodes.iter().map(|n| n.lock().reads()).collect();
    let mut out = Vec::with_capacity(posts);
    for m in 0..posts {
        let at = rng.below(nodes.len());
        let question = Action::Ask(Question {
            title: format!("Question {m} for the network"),
            body: "How do other sites manage this on the wings?".into(),
            pathways: vec![Pathway::PharmacyMedicines],
            settings: Vec::new(),
            urgency: Urgency::WithinAWeek,
            links: Vec::new(),
        });
        let t = Instant::now();
        let id = nodes[at]
            .local(|lib| lib.post(question))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        wait_until(Duration::from_secs(120), "the question everywhere", || {
            reads
                .iter()
                .all(|r| r.latest().forum().thread(&id).is_some())
        })
        .await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

/// `requests` GETs of `path`, each on a new connection (as a browser's
/// after a while), read to the end; sorted latencies.
async fn timed_gets(
    server: std::net::SocketAddr,
    path: &str,
    requests: usize,
) -> anyhow::Result<Vec<Duration>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = Vec::with_capacity(requests);
    let mut response = Vec::new();
    for _ in 0..requests {
        let t = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        response.clear();
        stream.read_to_end(&mut response).await?;
        anyhow::ensure!(
            response.starts_with(b"HTTP/1.1 200"),
            "{path}: {}",
            String::from_utf8_lossy(&response[..response.len().min(80)])
        );
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

fn figures(sorted: &[Duration]) -> serde_json::Value {
    serde_json::json!({
        "requests": sorted.len(),
        "p50": (percentile(sorted, 0.5) * 10.0).round() / 10.0,
        "p99": (percentile(sorted, 0.99) * 10.0).round() / 10.0,
    })
}

/// One site's web page (default limits) while it takes in a flood: two
/// sites of their own network; site 0 holds `library` items and site 1,
/// offline, publishes `flood` more. Site 0's home page and question list
/// are timed quiet, with 1,000 idle connections open to its web port,
/// and, with those still open, from the moment site 1 comes online until
/// site 0 holds everything it sent (a request of each about every 20 ms).
async fn web_under_load(library: u64, flood: u64) -> anyhow::Result<serde_json::Value> {
    const REQUESTS: usize = 200;
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::new(dir.path(), 2)?;
    let made = Instant::now();
    for (site, count, from) in [(0, library, 700_000), (1, flood, 800_000)] {
        let mut lib = gatehouse_node::library::Library::open(cluster.home(site))?;
        for i in 0..count {
            lib.publish(&synthetic_content(from + i), &[])?;
        }
    }
    eprintln!(
        "web under load: {library} items at site 0 and {flood} at site 1 made in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    let node = cluster.start(0, vec![]).await?;
    let state = WebState::new(node.reads(), Some(node.net.clone()));
    let server =
        WebServer::start_with(([127, 0, 0, 1], 0).into(), state, Limits::default()).await?;
    let at = server.addr;
    let mut report = serde_json::Map::new();
    let mut measure = |phase: &str, home: &[Duration], questions: &[Duration]| {
        report.insert(
            phase.to_string(),
            serde_json::json!({ "home_ms": figures(home), "questions_ms": figures(questions) }),
        );
    };
    let home = timed_gets(at, "/", REQUESTS).await?;
    let questions = timed_gets(at, "/questions", REQUESTS).await?;
    measure("quiet", &home, &questions);

    // 1,000 connections from 40 addresses, never sending a byte.
    let mut idle = Vec::with_capacity(1_000);
    for n in 0..1_000u32 {
        let socket = tokio::net::TcpSocket::new_v4()?;
        let last = u8::try_from(n % 40)? + 2;
        socket.bind(std::net::SocketAddr::from(([127, 0, 1, last], 0)))?;
        idle.push(socket.connect(server.addr).await?);
    }
    let home = timed_gets(at, "/", REQUESTS).await?;
    let questions = timed_gets(at, "/questions", REQUESTS).await?;
    measure("idle_1000", &home, &questions);

    let count = |n: &RunningNode| {
        n.reads()
            .latest()
            .status()
            .map(|s| s.envelopes)
            .unwrap_or(0)
    };
    let before = count(&node);
    let flooder = cluster.start(1, vec![address(&node).await?]).await?;
    let want = before + count(&flooder) - 5;
    let t = Instant::now();
    let (mut home, mut questions) = (Vec::new(), Vec::new());
    while count(&node) < want && t.elapsed() < Duration::from_secs(600) {
        home.extend(timed_gets(at, "/", 1).await?);
        questions.extend(timed_gets(at, "/questions", 1).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let window = t.elapsed();
    let after = count(&node);
    home.sort();
    questions.sort();
    measure("idle_1000_and_flood", &home, &questions);
    report.insert(
        "flood".into(),
        serde_json::json!({
            "items_at_site_0": library,
            "items_published_offline_at_site_1": flood,
            "envelopes_taken_in_at_site_0": after.saturating_sub(before),
            "seconds_to_take_them_in": (window.as_secs_f64() * 10.0).round() / 10.0,
        }),
    );
    drop(idle);
    server.stop().await;
    flooder.stop().await;
    node.stop().await;
    Ok(serde_json::Value::Object(report))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let cluster = Cluster::new(dir.path(), args.nodes)?;
    eprintln!(
        "made {} sites in {:.1} s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );
    let mut rng = Rng(args.seed | 1);
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut addrs: Vec<gatehouse_node::net::Multiaddr> = Vec::new();
    for i in 0..args.nodes {
        let mut bootstrap = Vec::new();
        for _ in 0..3.min(i) {
            bootstrap.push(addrs[rng.below(i)].clone());
        }
        bootstrap.dedup();
        let node = cluster.start(i, bootstrap).await?;
        addrs.push(address(&node).await?);
        nodes.push(node);
    }
    let count = |n: &RunningNode| n.lock().status().map(|s| s.envelopes).unwrap_or(0);
    let converge = wait_until(Duration::from_secs(300), "the network to converge", || {
        let c0 = count(&nodes[0]);
        nodes.iter().all(|n| count(n) == c0) && c0 > 3 * args.nodes
    })
    .await?;
    eprintln!("converged in {:.1} s", converge.as_secs_f64());
    let dup_before: u64 = nodes.iter().map(|n| n.net.status().gossip_duplicates).sum();
    let got_before: u64 = nodes.iter().map(|n| n.net.status().gossip_received).sum();
    let mut latencies = Vec::new();
    for m in 0..args.messages {
        let at = rng.below(nodes.len());
        let content = synthetic_content(10_000 + m as u64);
        let t = Instant::now();
        let id = nodes[at].local(|lib| lib.publish(&content, &[])).await?;
        wait_until(Duration::from_secs(120), "the item everywhere", || {
            nodes.iter().all(|n| holds(n, &id))
        })
        .await?;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let dup_after: u64 = nodes.iter().map(|n| n.net.status().gossip_duplicates).sum();
    let got_after: u64 = nodes.iter().map(|n| n.net.status().gossip_received).sum();
    let per = |n: u64| n as f64 / (args.nodes as f64 * args.messages.max(1) as f64);
    let duplicates_per_node_per_message = per(dup_after - dup_before);
    let deliveries_per_node_per_message = per(got_after - got_before);

    let post_latencies = post_latencies(&nodes, &mut rng, args.messages).await?;

    // Catch-up: the last node misses `catch_up` changes.
    let last = args.nodes - 1;
    nodes[last].stop().await;
    let stopped = nodes.remove(last);
    drop(stopped);
    nodes[0]
        .local(|lib| {
            for i in 0..args.catch_up {
                lib.publish(&synthetic_content(50_000 + i), &[])?;
            }
            Ok::<_, gatehouse_node::library::LibraryError>(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let want = count(&nodes[0]);
    let mut restarted = None;
    for _ in 0..200 {
        match cluster.start(last, vec![addrs[0].clone()]).await {
            Ok(n) => {
                restarted = Some(n);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let restarted = restarted.context("the stopped node would not restart")?;
    let t = Instant::now();
    wait_until(Duration::from_secs(600), "the node to catch up", || {
        count(&restarted) >= want
    })
    .await?;
    let catch_up = t.elapsed();
    let web = web_under_load(args.library, args.flood).await?;

    let report = serde_json::json!({
        "nodes": args.nodes,
        "topology": "each node dials up to 3 random earlier nodes",
        "publish_to_everywhere_ms": {
            "messages": args.messages,
            "p50": (percentile(&latencies, 0.5) * 10.0).round() / 10.0,
            "p99": (percentile(&latencies, 0.99) * 10.0).round() / 10.0,
        },
        "gossip_deliveries_per_node_per_message": (deliveries_per_node_per_message * 100.0).round() / 100.0,
        "gossip_duplicates_per_node_per_message": (duplicates_per_node_per_message * 100.0).round() / 100.0,
        "gossip_duplicates_note": "counted when a gossip message that reaches validation holds an envelope already held (gossipsub drops repeated message ids before that, and those are not counted)",
        "reconciliation": reconcile_figures()?,
        "post_to_visible_everywhere_ms": {
            "posts": args.messages,
            "p50": (percentile(&post_latencies, 0.5) * 10.0).round() / 10.0,
            "p99": (percentile(&post_latencies, 0.99) * 10.0).round() / 10.0,
        },
        "web_under_load": web,
        "catch_up": {
            "missed_changes": args.catch_up,
            "seconds": (catch_up.as_secs_f64() * 10.0).round() / 10.0,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    for n in nodes.iter().chain(std::iter::once(&restarted)) {
        n.stop().await;
    }
    Ok(())
}
