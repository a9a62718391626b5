//! What a site's monitoring sees, between two real nodes on loopback:
//! every figure of `/metrics` moves as the nodes connect, sync, publish,
//! search and meet a forgery, an envelope that waits for its signer's
//! delegation and one signed for another site, and `/readyz` turns ready
//! once they have reconciled.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_node::authoring::new_item;
use gatehouse_node::home::generate_key;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::web::{WebServer, WebState};
use gatehouse_tests::cluster::{Cluster, address, holds, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
/// Items A holds before B first syncs: enough that B's store grows.
const ITEMS: u64 = 40;

/// The samples of a metrics text, by name with labels.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn get(client: &reqwest::Client, web: &WebServer, path: &str) -> (u16, String) {
    let response = client
        .get(format!("http://{}{path}", web.addr))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_moves_as_two_nodes_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    let a = cluster.start(0, vec![]).await.expect("start a");
    let ids = a
        .local(|lib| {
            (0..ITEMS)
                .map(|n| lib.publish(&synthetic_content(3 + n), &[]))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("publish");
    // B is watched: it dials A, and reconciles with it.
    let a_addr = address(&a).await.expect("a");
    let b = cluster.start(1, vec![]).await.expect("start b");
    let web = WebServer::start(
        ([127, 0, 0, 1], 0).into(),
        WebState::new(b.reads(), Some(b.net.clone())),
    )
    .await
    .expect("serve B's page");
    let client = reqwest::Client::new();

    let (status, text) = get(&client, &web, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let before = samples(&text);
    let at = |m: &BTreeMap<String, f64>, name: &str| m.get(name).copied().unwrap_or(0.0);
    assert_eq!(at(&before, "gatehouse_peers_connected"), 0.0);
    assert_eq!(at(&before, "gatehouse_items"), 0.0);
    assert_eq!(at(&before, "gatehouse_sync_sent_bytes_total"), 0.0);
    let (status, text) = get(&client, &web, "/readyz").await;
    assert_eq!(status, 503);
    assert!(
        text.contains("no reconciliation with any peer yet"),
        "{text}"
    );

    b.net.dial(a_addr).await;
    wait_until(DEADLINE, "the items at B", || {
        ids.iter().all(|id| holds(&b, id))
    })
    .await
    .expect("arrived");
    wait_until(DEADLINE, "B to reconcile with A", || {
        b.net.status().last_sync_ms.is_some()
    })
    .await
    .expect("reconciled");
    // A forgery from A, counted against A.
    let mut forged = {
        let lib = a.lock();
        let ids = lib.envelope_ids().expect("ids");
        let bytes = lib.envelope_bytes(&ids).expect("bytes");
        bytes.into_iter().max_by_key(Vec::len).expect("an envelope")
    };
    let middle = forged.len() / 2;
    forged[middle] ^= 0x20;
    a.net.gossip_raw(forged).await;
    wait_until(DEADLINE, "B to count the forgery", || {
        b.net.status().forged_received >= 1
    })
    .await
    .expect("counted");
    let (status, _) = get(&client, &web, "/api/v1/search?q=naloxone").await;
    assert_eq!(status, 200);

    let (_, text) = get(&client, &web, "/metrics").await;
    let after = samples(&text);
    let a_id = a.net.status().peer_id;
    let a_name = gatehouse_tests::cluster::site_name(0);
    let peer = format!("peer=\"{a_id}\",establishment=\"{a_name}\"");
    for name in [
        "gatehouse_items",
        "gatehouse_envelopes",
        "gatehouse_envelopes_accepted",
        "gatehouse_peers_connected",
        "gatehouse_peers_admitted",
        "gatehouse_last_sync_timestamp_seconds",
        "gatehouse_sync_sent_bytes_total",
        "gatehouse_sync_received_bytes_total",
        "gatehouse_gossip_received_total",
        "gatehouse_forged_received_total",
        "gatehouse_ingest_duration_seconds_count",
        "gatehouse_search_duration_seconds_count",
        &format!("gatehouse_peer_last_sync_timestamp_seconds{{{peer}}}"),
        &format!("gatehouse_peer_envelopes_received_total{{{peer}}}"),
        &format!("gatehouse_peer_forged_received_total{{{peer}}}"),
    ] {
        assert!(
            at(&after, name) > at(&before, name),
            "{name} did not grow: {} then {}\n{text}",
            at(&before, name),
            at(&after, name)
        );
    }
    assert_eq!(at(&after, "gatehouse_items"), ITEMS as f64);
    // A's clock, measured at the sync: the same machine's, so no offset.
    let offset = format!("gatehouse_peer_clock_offset_seconds{{{peer}}}");
    assert_eq!(after.get(&offset), Some(&0.0), "{offset}\n{text}");
    assert_eq!(at(&after, "gatehouse_peers_connected"), 1.0);
    assert_eq!(at(&after, "gatehouse_search_duration_seconds_count"), 1.0);
    // The store's files on disk: sled lays its file out in segments, so
    // 40 small items may fit in space the file held already; it never
    // shrinks while they arrive, and it is never reported as nothing.
    let (store_before, store_after) = (
        at(&before, "gatehouse_store_size_bytes"),
        at(&after, "gatehouse_store_size_bytes"),
    );
    assert!(
        store_before > 0.0 && store_after >= store_before,
        "B's store size went from {store_before} to {store_after} as {ITEMS} items arrived"
    );
    // B's invitation held every certificate already.
    assert!(at(&after, "gatehouse_certificates") >= 4.0);
    let (status, text) = get(&client, &web, "/readyz").await;
    assert_eq!((status, text.as_str()), (200, "ready\n"));

    // From A, two envelopes B keeps but puts in no item: a new item signed
    // by a key no site has delegated yet (waiting for its delegation), and
    // one signed by A's site lead for B's site (never in effect).
    let (network, a_site, b_site) = {
        let (a_lib, b_lib) = (a.lock(), b.lock());
        (
            a_lib.config().network,
            a_lib.config().establishment,
            b_lib.config().establishment,
        )
    };
    let lead = cluster
        .home(0)
        .read_key("member")
        .expect("read")
        .expect("A's lead");
    let stranger = generate_key().expect("key");
    let suffix = [7u8; 16];
    let mut waiting = synthetic_content(1000);
    waiting.title = "Signed before its delegation".into();
    let mut foreign = synthetic_content(1001);
    foreign.title = "Signed for another site".into();
    for (content, key, owner) in [(&waiting, &stranger, a_site), (&foreign, &lead, b_site)] {
        let env = new_item(content, key, &suffix, owner, &network, 1).expect("sign");
        a.net.gossip_raw(env.bytes().to_vec()).await;
    }
    let pending = "gatehouse_envelopes_pending{reason=\"the signer's key has no delegation from the item's establishment\"}";
    let rejected = "gatehouse_envelopes_rejected{reason=\"the signer is delegated by another establishment, not the item's owner\"}";
    let give_up = std::time::Instant::now() + DEADLINE;
    let m = loop {
        let (_, text) = get(&client, &web, "/metrics").await;
        let m = samples(&text);
        if at(&m, pending) == 1.0 && at(&m, rejected) == 1.0 {
            break m;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "B did not count both in {DEADLINE:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        at(&m, "gatehouse_items"),
        ITEMS as f64,
        "neither became an item"
    );
    assert_eq!(
        at(&m, "gatehouse_envelopes"),
        at(&after, "gatehouse_envelopes") + 2.0
    );
    web.stop().await;
    for n in [&a, &b] {
        n.stop().await;
    }
}
