//! The fetch benchmark, printing figures: a fresh site fetching 1,000
//! items of about 2 KB from one peer over loopback, and the same site
//! reconnecting when nothing changed, with every byte counted by a TCP
//! proxy between the two (libp2p handshakes included); then, in the same
//! run, automerge-repo 2.5.6 (its websocket sync server and a fresh client,
//! under Node.js, installed from the npm registry into `target/tmp`)
//! fetching the same 1,000 documents through the same proxy.
//!
//! Run: `cargo run --release -p gatehouse-tests --bin fetch [ITEMS]`
//! (ITEMS: 1,000 by default); `FETCH_TRACE=1` prints the fetching site's
//! sync bytes, envelopes to fetch and envelopes stored as they change, and
//! `RUST_LOG=gatehouse_node=debug` what the nodes log. Without `node` and `npm` on the machine the
//! automerge-repo half is left out, and says so.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gatehouse_node::library::Library;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::sample::synthetic_content;
use gatehouse_tests::cluster::{Cluster, wait_until};
use gatehouse_tests::shaper::{Link, Shaper};

/// A line that neither delays nor holds back.
const CLEAR: Link = Link {
    delay: Duration::ZERO,
    rate: 10_000_000_000,
};

/// How long after a reconnect's first reconciliation the line is watched
/// for anything else (gossip, identify, pings).
const QUIET: Duration = Duration::from_secs(2);

fn count(node: &RunningNode) -> usize {
    node.lock().list(&Filter::default()).map_or(0, |l| l.len())
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1e3)
}

struct Fetched {
    seconds: f64,
    wire: u64,
}

/// Gatehouse: site 0 publishes `items`, site 1 (fresh) fetches them, then
/// reconnects with nothing changed. Writes the items as documents for the
/// automerge-repo half to `docs`.
async fn gatehouse(items: usize, docs: &Path) -> anyhow::Result<Fetched> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::new(dir.path(), 2)?;
    let mut payload = 0u64;
    {
        let mut lib = Library::open(cluster.home(0))?;
        let before: u64 = lib.export()?.iter().map(|e| e.len() as u64).sum();
        let mut json = Vec::with_capacity(items);
        for n in 0..items {
            let c = synthetic_content(n as u64);
            lib.publish(&c, &[])?;
            json.push(serde_json::json!({
                "title": c.title,
                "summary": c.summary,
                "body": c.body,
            }));
        }
        let after: u64 = lib.export()?.iter().map(|e| e.len() as u64).sum();
        payload += after - before;
        std::fs::write(docs, serde_json::to_vec(&json)?)?;
    }
    let a = cluster.start(0, vec![]).await?;
    let (line, via) = Shaper::in_front_of(&a, CLEAR).await?;
    let started = Instant::now();
    let b = cluster.start(1, vec![via.clone()]).await?;
    let running = started.elapsed();
    // The trace holds the node's network handle only, not its library.
    let trace = std::env::var("FETCH_TRACE").is_ok().then(|| {
        let net = b.net.clone();
        tokio::spawn(async move {
            let mut last = (0, 0, 0);
            loop {
                let s = net.status();
                let now = (s.sync_bytes_received, s.to_fetch, s.envelopes_received);
                if now != last {
                    eprintln!("{:?} {now:?}", started.elapsed());
                    last = now;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    });
    wait_until(Duration::from_secs(60), "the first envelope", || {
        b.net.status().envelopes_received > 0
    })
    .await?;
    let first = started.elapsed();
    // Polled from the network's status, not the library, whose lock the
    // node needs for every batch.
    wait_until(
        Duration::from_secs(600),
        "every item at the new site",
        || b.net.status().envelopes_received >= items as u64,
    )
    .await?;
    let took = started.elapsed();
    if let Some(t) = trace {
        t.abort();
    }
    let held = count(&b);
    if held != items {
        bail!("the new site lists {held} items, not {items}");
    }
    let (up, down) = line.bytes();
    let fetched = Fetched {
        seconds: took.as_secs_f64(),
        wire: up + down,
    };
    let status = b.net.status();
    println!(
        "gatehouse fetch: {items} items ({} of envelopes) to a fresh site in {:.2} s (node started {:.2} s, first envelope {:.2} s); on the wire {} ({} up, {} down, {:.2}x the envelopes); sync protocol {} received, {} sent",
        kb(payload),
        took.as_secs_f64(),
        running.as_secs_f64(),
        first.as_secs_f64(),
        kb(up + down),
        kb(up),
        kb(down),
        (up + down) as f64 / payload as f64,
        kb(status.sync_bytes_received),
        kb(status.sync_bytes_sent),
    );
    println!(
        "BENCH {{\"bench\":\"fetch\",\"system\":\"gatehouse\",\"items\":{items},\"seconds\":{:.3},\"wire_bytes\":{},\"payload_bytes\":{payload},\"wire_ratio\":{:.3}}}",
        took.as_secs_f64(),
        up + down,
        (up + down) as f64 / payload as f64
    );
    // Let the first session end before the site goes away.
    tokio::time::sleep(QUIET).await;
    b.stop().await;
    drop(b);
    line.stop();

    // Nothing changed: the same site back on a new connection.
    let (line, via) = Shaper::in_front_of(&a, CLEAR).await?;
    let b = cluster.start(1, vec![via]).await?;
    let started = Instant::now();
    wait_until(Duration::from_secs(60), "a reconciliation", || {
        b.net.status().last_sync_ms.is_some()
    })
    .await?;
    let synced = started.elapsed();
    let (up, down) = line.bytes();
    let sync = b.net.status();
    tokio::time::sleep(QUIET).await;
    let (up_later, down_later) = line.bytes();
    println!(
        "gatehouse reconnect, nothing changed: reconciled {:.2} s after starting; on the wire by then {} ({} up, {} down), of which the sync protocol {} ({} sent, {} received); {} in all {} s later",
        synced.as_secs_f64(),
        kb(up + down),
        kb(up),
        kb(down),
        kb(sync.sync_bytes_sent + sync.sync_bytes_received),
        kb(sync.sync_bytes_sent),
        kb(sync.sync_bytes_received),
        kb(up_later + down_later),
        QUIET.as_secs()
    );
    println!(
        "BENCH {{\"bench\":\"reconnect\",\"system\":\"gatehouse\",\"seconds\":{:.3},\"wire_bytes\":{},\"sync_bytes\":{},\"wire_bytes_after_quiet\":{}}}",
        synced.as_secs_f64(),
        up + down,
        sync.sync_bytes_sent + sync.sync_bytes_received,
        up_later + down_later
    );
    b.stop().await;
    a.stop().await;
    line.stop();
    Ok(fetched)
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The scripts' folder in the repository, and a scratch copy to install in.
fn automerge_repo_dir() -> anyhow::Result<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/automerge-repo");
    let work = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/fetch-automerge-repo");
    std::fs::create_dir_all(&work)?;
    for f in [
        "package.json",
        "package-lock.json",
        "server.mjs",
        "client.mjs",
    ] {
        std::fs::copy(source.join(f), work.join(f))?;
    }
    if !work.join("node_modules/@automerge/automerge-repo").exists() {
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(&work))?;
    }
    Ok(work)
}

/// automerge-repo: a sync server holding the same documents, and a fresh
/// client fetching them all through a proxy.
async fn automerge_repo(docs: &Path) -> anyhow::Result<Fetched> {
    let work = automerge_repo_dir()?;
    let data = tempfile::tempdir()?;
    run(Command::new("node")
        .arg("server.mjs")
        .arg("populate")
        .arg(data.path())
        .arg(docs)
        .current_dir(&work))?;
    let mut server = Child(
        Command::new("node")
            .arg("server.mjs")
            .arg("serve")
            .arg(data.path())
            .current_dir(&work)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the automerge-repo server")?,
    );
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().context("server output")?).read_line(&mut first)?;
    let port: u16 = first
        .strip_prefix("listening ")
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| format!("the server said {first:?}"))?;
    let line = Shaper::start(([127, 0, 0, 1], port).into(), CLEAR).await?;
    let url = format!("ws://127.0.0.1:{}", line.addr.port());
    let urls = data.path().join("urls.json");
    let out = tokio::task::spawn_blocking({
        let work = work.clone();
        move || {
            run(Command::new("node")
                .arg("client.mjs")
                .arg(url)
                .arg(urls)
                .current_dir(work))
        }
    })
    .await??;
    let (up, down) = line.bytes();
    let report: serde_json::Value = serde_json::from_str(out.trim())?;
    let ms = report["ms"].as_f64().context("the client's time")?;
    let n = report["docs"].as_u64().unwrap_or(0);
    println!(
        "automerge-repo 2.5.6 fetch: {n} documents to a fresh client in {:.2} s (client start included); on the wire {} ({} up, {} down)",
        ms / 1e3,
        kb(up + down),
        kb(up),
        kb(down)
    );
    println!(
        "BENCH {{\"bench\":\"fetch\",\"system\":\"automerge-repo\",\"items\":{n},\"seconds\":{:.3},\"wire_bytes\":{}}}",
        ms / 1e3,
        up + down
    );
    line.stop();
    Ok(Fetched {
        seconds: ms / 1e3,
        wire: up + down,
    })
}

/// A child process killed when this goes out of scope.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let items = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let scratch = tempfile::tempdir()?;
    let docs = scratch.path().join("docs.json");
    let ours = gatehouse(items, &docs).await?;
    if !(have("node") && have("npm")) {
        println!("automerge-repo: left out (no node and npm on this machine)");
        return Ok(());
    }
    let theirs = automerge_repo(&docs).await?;
    println!(
        "fetch against automerge-repo in the same run: {:.2}x its time, {:.2}x its bytes on the wire",
        ours.seconds / theirs.seconds,
        ours.wire as f64 / theirs.wire as f64
    );
    Ok(())
}
