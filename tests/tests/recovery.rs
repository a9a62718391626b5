//! A site that lost its node but kept its keys: it joins again with an
//! invitation, as the same node, and its peers send it the library back,
//! its own items included.

use std::time::Duration;

use gatehouse_node::library::Library;
use gatehouse_node::replica::bundle;
use gatehouse_node::sample::synthetic_content;
use gatehouse_tests::cluster::{Cluster, address, holds, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_kept_only_its_keys_gets_its_library_back_from_its_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    let a = cluster.start(0, vec![]).await.expect("start a");
    let a_addr = address(&a).await.expect("a");
    let b = cluster
        .start(1, vec![a_addr.clone()])
        .await
        .expect("start b");
    let own = b
        .local(|lib| lib.publish(&synthetic_content(5), &[]))
        .await
        .expect("publish at b");
    wait_until(DEADLINE, "B's item at A", || holds(&a, &own))
        .await
        .expect("at a");
    let peer_id = b.net.status().peer_id;
    b.stop().await;
    drop(b);

    // The disk is lost; keys/ was kept apart.
    let home = cluster.home(1);
    for gone in [home.store_dir(), home.index_dir()] {
        std::fs::remove_dir_all(&gone).expect("remove");
    }
    assert!(!home.is_initialised());
    let invite = {
        let lib = a.lock();
        bundle::write(
            &lib.config().network,
            &lib.certificate_bytes().expect("certs"),
        )
    };
    let (_, report) = Library::join(home, &invite, "Healthcare manager").expect("join again");
    assert!(!report.node_delegated, "its node key was delegated already");
    let b = cluster.start(1, vec![a_addr]).await.expect("start b again");
    assert_eq!(b.net.status().peer_id, peer_id, "the same node");
    wait_until(DEADLINE, "B's own item back from A", || holds(&b, &own))
        .await
        .expect("restored from peers");
    for n in [&a, &b] {
        n.stop().await;
    }
}
