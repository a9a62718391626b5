//! The file-transfer benchmark, printing figures:
//!
//! - throughput of one file between two real nodes over libp2p on
//!   loopback (verified streaming, pieces of 256 KiB), next to a plain
//!   copy of the same file on the same disk in the same run;
//! - on the shaped line of the tests (150 ms each way, 256 kbit/s), the
//!   time from a site connecting to its first envelope arriving, and to a
//!   2 MiB attachment arriving whole.
//!
//! Run: `cargo run --release -p gatehouse-tests --bin files [MIB]`
//! (MIB: the loopback file's size, 50 by default).

use std::time::{Duration, Instant};

use gatehouse_node::authoring::attach::attachment_from_file;
use gatehouse_node::blobs::BlobState;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::sample::synthetic_content;
use gatehouse_protocol::attachment::BlobHash;
use gatehouse_tests::cluster::{Cluster, address, holds, wait_until};
use gatehouse_tests::shaper::{Link, Shaper};

fn state(node: &RunningNode, hash: &BlobHash) -> BlobState {
    node.lock()
        .blobs()
        .map_or(BlobState::Absent, |b| b.state(hash))
}

fn scan(path: &std::path::Path, size: u64) -> anyhow::Result<()> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..size - 8).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Publishes an item carrying the file at `path` at `node`.
async fn publish_with_file(
    node: &RunningNode,
    path: &std::path::Path,
    title: &str,
) -> anyhow::Result<BlobHash> {
    let a = {
        let lib = node.lock();
        attachment_from_file(
            lib.blobs().ok_or_else(|| anyhow::anyhow!("no store"))?,
            path,
        )?
    };
    let hash = a.hash;
    let mut c = synthetic_content(1);
    c.title = title.into();
    node.local(move |lib| lib.publish_with(&c, &[], &[a]))
        .await?;
    Ok(hash)
}

async fn loopback(mib: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let size = mib * 1024 * 1024;
    let file = dir.path().join("poster.png");
    scan(&file, size)?;
    let copy_started = Instant::now();
    std::fs::copy(&file, dir.path().join("copy.png"))?;
    let copy = copy_started.elapsed();

    let cluster = Cluster::new(dir.path(), 2)?;
    let a = cluster.start(0, vec![]).await?;
    let hash = publish_with_file(&a, &file, "QI poster").await?;
    let started = Instant::now();
    let b = cluster.start(1, vec![address(&a).await?]).await?;
    wait_until(Duration::from_secs(600), "the file at B", || {
        state(&b, &hash) == BlobState::Here
    })
    .await?;
    let took = started.elapsed();
    let mb = size as f64 / 1e6;
    println!(
        "loopback: a {mib} MiB file between two nodes in {:.2} s ({:.1} MB/s, connecting included); a plain file copy of it {:.3} s ({:.0} MB/s); file-protocol bytes received {}",
        took.as_secs_f64(),
        mb / took.as_secs_f64(),
        copy.as_secs_f64(),
        mb / copy.as_secs_f64(),
        b.net.status().blob_bytes_received
    );
    b.stop().await;
    a.stop().await;
    Ok(())
}

async fn shaped() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::new(dir.path(), 2)?;
    let a = cluster.start(0, vec![]).await?;
    let file = dir.path().join("chart.png");
    scan(&file, 2 * 1024 * 1024)?;
    let hash = publish_with_file(&a, &file, "Observations chart").await?;
    let item = a.lock().list(&Default::default())?[0].item.id;
    let (line, via) = Shaper::in_front_of(
        &a,
        Link {
            delay: Duration::from_millis(150),
            rate: 32_000,
        },
    )
    .await?;
    let started = Instant::now();
    let b = cluster.start(1, vec![via]).await?;
    wait_until(Duration::from_secs(120), "the first envelope", || {
        b.net.status().envelopes_received > 0
    })
    .await?;
    let first = started.elapsed();
    wait_until(Duration::from_secs(120), "the item", || holds(&b, &item)).await?;
    let item_at = started.elapsed();
    wait_until(Duration::from_secs(600), "the file", || {
        state(&b, &hash) == BlobState::Here
    })
    .await?;
    let whole = started.elapsed();
    println!(
        "shaped line (150 ms each way, 256 kbit/s): first envelope {:.2} s after starting, the item {:.2} s, its 2 MiB attachment whole {:.1} s",
        first.as_secs_f64(),
        item_at.as_secs_f64(),
        whole.as_secs_f64()
    );
    line.stop();
    b.stop().await;
    a.stop().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mib = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    loopback(mib).await?;
    shaped().await?;
    Ok(())
}
