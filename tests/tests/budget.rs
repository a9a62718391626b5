//! The bandwidth budget between real nodes on loopback: a site catching up
//! from a peer that may send only so much a second, and a site that may
//! take in only so much, each receives everything at no more than the rate
//! set (within 10%, counting every sync byte that crossed).

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use gatehouse_node::net::NetConfig;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::sample::synthetic_content;
use gatehouse_protocol::id::ItemId;
use gatehouse_tests::cluster::{Cluster, address, holds, loopback, wait_until};

const DEADLINE: Duration = Duration::from_secs(120);
/// Items to catch up on: about 2.7 KB each.
const ITEMS: u64 = 100;
/// The budget: 40,000 bytes a second (320 kbit/s).
const RATE: u64 = 40_000;

fn budget(up: bool, down: bool) -> NetConfig {
    let rate = NonZeroU64::new(RATE);
    NetConfig {
        max_upload_bytes_per_sec: rate.filter(|_| up),
        max_download_bytes_per_sec: rate.filter(|_| down),
        ..loopback(vec![])
    }
}

/// Starts `receiver`, dialling `sender`, and waits until it holds every
/// item; returns the sync bytes it took in a second, from dial to the last
/// item.
async fn catch_up(sender: &RunningNode, receiver: &RunningNode, ids: &[ItemId]) -> f64 {
    let at = address(sender).await.expect("address");
    let before = receiver.net.status().sync_bytes_received;
    let started = Instant::now();
    receiver.net.dial(at).await;
    wait_until(DEADLINE, "every item", || {
        ids.iter().all(|id| holds(receiver, id))
    })
    .await
    .expect("caught up");
    let took = started.elapsed().as_secs_f64();
    let bytes = receiver.net.status().sync_bytes_received - before;
    #[allow(clippy::cast_precision_loss)]
    let rate = bytes as f64 / took;
    eprintln!("{bytes} sync bytes in {took:.2} s: {rate:.0} B/s against a budget of {RATE}");
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_on_a_budget_catches_up_within_its_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");

    // A sends at most RATE a second: B, with no budget of its own, catches
    // up no faster.
    let a = RunningNode::start(cluster.home(0), budget(true, false))
        .await
        .expect("start a");
    let ids = a
        .local(|lib| {
            (0..ITEMS)
                .map(|n| lib.publish(&synthetic_content(n), &[]))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("publish");
    let b = cluster.start(1, vec![]).await.expect("start b");
    let rate = catch_up(&a, &b, &ids).await;
    #[allow(clippy::cast_precision_loss)]
    let limit = RATE as f64 * 1.1;
    assert!(rate <= limit, "B took in {rate:.0} B/s from A");
    b.stop().await;
    a.stop().await;
    drop(a);

    // C takes in at most RATE a second from A, which has no budget now.
    let mut a = None;
    for _ in 0..100 {
        if let Ok(n) = cluster.start(0, vec![]).await {
            a = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = a.expect("a restarted");
    let c = RunningNode::start(cluster.home(2), budget(false, true))
        .await
        .expect("start c");
    let rate = catch_up(&a, &c, &ids).await;
    assert!(rate <= limit, "C took in {rate:.0} B/s");
    c.stop().await;
    a.stop().await;
}
