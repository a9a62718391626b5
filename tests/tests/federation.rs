//! Real nodes, real libp2p connections on loopback: replication through
//! intermediate sites, gating of unadmitted nodes, catch-up after being
//! offline, concurrent edits, forged envelopes and revocations.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_node::home::generate_key;
use gatehouse_node::library::{Library, NodeConfig};
use gatehouse_node::projection::search::SearchIndex;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::replica::bundle;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::store::MemoryStore;
use gatehouse_node::web::{WebServer, WebState};
use gatehouse_protocol::certificate::{Certificate, MemberRole};
use gatehouse_protocol::envelope::{Body, Envelope};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId};
use gatehouse_tests::cluster::{
    Cluster, address, holds, library_json, loopback, site_name, wait_until,
};

const DEADLINE: Duration = Duration::from_secs(60);

/// Starts a node, retrying while a just-stopped node still holds its store.
async fn restart(
    cluster: &Cluster,
    i: usize,
    bootstrap: Vec<gatehouse_node::net::Multiaddr>,
) -> RunningNode {
    let mut last = None;
    for _ in 0..100 {
        match cluster.start(i, bootstrap.clone()).await {
            Ok(n) => return n,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {i} would not start: {last:?}");
}

/// Searches a node's web API for `q` until `id` at `version` is among the
/// results; returns how long that took.
async fn found_on_web(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    q: &str,
    id: &ItemId,
    version: u64,
) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let page: serde_json::Value = client
            .get(format!("http://{addr}/api/v1/search"))
            .query(&[("q", q)])
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("JSON");
        let found = page["results"].as_array().is_some_and(|r| {
            r.iter()
                .any(|h| h["id"] == id.to_hex().as_str() && h["version"] == version)
        });
        if found {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{q:?} never found version {version} of {id} through the web API"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_published_at_a_is_searchable_at_c_through_b() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    let a = cluster.start(0, vec![]).await.expect("start a");
    let b = cluster
        .start(1, vec![address(&a).await.expect("a")])
        .await
        .expect("start b");
    let c = cluster
        .start(2, vec![address(&b).await.expect("b")])
        .await
        .expect("start c");
    // C's clinicians search through its web API.
    let web = WebServer::start(
        ([127, 0, 0, 1], 0).into(),
        WebState::new(c.reads(), Some(c.net.clone())),
    )
    .await
    .expect("serve C's web page");
    let client = reqwest::Client::new();
    let mut content = synthetic_content(7);
    content.title = "Take-home naloxone on release, line test".into();
    let id = a
        .local(|lib| lib.publish(&content, &[]))
        .await
        .expect("publish");
    let took = found_on_web(&client, web.addr, "naloxone line test", &id, 1).await;
    eprintln!("published at A, found through C's web API after {took:?}");
    // C says what arrived in terms of content, not envelopes. The report
    // follows the batch's settle tick, so it is waited for (and before the
    // revision, which would otherwise fold into the same report).
    let a_name = site_name(0);
    let reported = |how: &str, version: u64| {
        let wanted = format!("{how} {a_name}: Take-home naloxone on release, line test (");
        c.net.status().arrived.iter().any(|l| {
            l.text.starts_with(&wanted) && l.text.ends_with(&format!("version {version})"))
        })
    };
    wait_until(
        Duration::from_secs(10),
        "C's report of the new item",
        || reported("new item from", 1),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", c.net.status().arrived));
    // A revision at A shows in C's index, under its new words.
    content.summary = "Now also covers the quinquennial refresher.".into();
    a.local(|lib| lib.revise(&id, &content, &[]))
        .await
        .expect("revise");
    let took = found_on_web(&client, web.addr, "quinquennial", &id, 2).await;
    eprintln!("revised at A, found through C's web API after {took:?}");
    web.stop().await;
    wait_until(
        Duration::from_secs(10),
        "C's report of the revision",
        || reported("revised by", 2),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", c.net.status().arrived));
    // C never connected to A: it got the item through B.
    let c_status = c.net.status();
    assert!(
        !c_status.peers.contains_key(&a.net.status().peer_id)
            || !c_status.peers[&a.net.status().peer_id].connected,
        "C should only be connected to B"
    );
    for n in [&a, &b, &c] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_never_admitted_obtains_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    let a = cluster.start(0, vec![]).await.expect("start a");
    let b = cluster
        .start(1, vec![address(&a).await.expect("a")])
        .await
        .expect("start b");
    let id = a
        .local(|lib| lib.publish(&synthetic_content(1), &[]))
        .await
        .expect("publish");
    wait_until(DEADLINE, "the item at B", || holds(&b, &id))
        .await
        .expect("b");

    // A rogue node: it knows the network's certificates (they are not
    // secret) but its key was never delegated.
    let (network, certs) = {
        let lib = a.lock();
        (
            lib.config().network,
            lib.certificate_bytes().expect("certs"),
        )
    };
    let rogue_key = generate_key().expect("key");
    let mut rogue_lib = Library::with_store(
        Arc::new(MemoryStore::new()),
        NodeConfig {
            network,
            establishment: EstablishmentId([9; 16]),
            member: None,
            node: rogue_key.public(),
            actor_suffix: "0f0e0d0c0b0a09080706050403020100".into(),
        },
        SearchIndex::in_memory().expect("index"),
        None,
    )
    .expect("rogue library");
    bundle::import(&mut rogue_lib, &bundle::write(&network, &certs)).expect("certs");
    let held_before = rogue_lib.status().expect("status").envelopes;
    let rogue = RunningNode::start_with(
        rogue_lib,
        &rogue_key,
        loopback(vec![
            address(&a).await.expect("a"),
            address(&b).await.expect("b"),
        ]),
    )
    .await
    .expect("rogue");
    wait_until(DEADLINE, "A and B to refuse the rogue", || {
        a.net.status().refused_connections >= 1 && b.net.status().refused_connections >= 1
    })
    .await
    .expect("refused");
    rogue.net.reconcile_now().await;
    let status = rogue.lock().status().expect("status");
    assert_eq!(
        status.envelopes, held_before,
        "the rogue obtained envelopes"
    );
    assert_eq!(status.items, 0);
    for n in [&a, &b, &rogue] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_proves_itself_only_to_the_node_its_operator_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    // A listener this network never admitted, holding only the network's
    // founding certificate: whatever it is sent and can check, it keeps.
    let (network, genesis) = {
        let lib = Library::open(&cluster.homes[0]).expect("open");
        let network = lib.config().network;
        let genesis: Vec<Vec<u8>> = lib
            .certificate_bytes()
            .expect("certs")
            .into_iter()
            .filter(|b| {
                matches!(
                    Envelope::open(b, &network).map(|e| e.body().clone()),
                    Ok(Body::Certificate(Certificate::Genesis(_)))
                )
            })
            .collect();
        (network, genesis)
    };
    assert_eq!(genesis.len(), 1);
    let stranger_key = generate_key().expect("key");
    let mut stranger_lib = Library::with_store(
        Arc::new(MemoryStore::new()),
        NodeConfig {
            network,
            establishment: EstablishmentId([9; 16]),
            member: None,
            node: stranger_key.public(),
            actor_suffix: "0f0e0d0c0b0a09080706050403020100".into(),
        },
        SearchIndex::in_memory().expect("index"),
        None,
    )
    .expect("stranger's library");
    bundle::import(&mut stranger_lib, &bundle::write(&network, &genesis)).expect("genesis");
    let stranger = RunningNode::start_with(stranger_lib, &stranger_key, loopback(vec![]))
        .await
        .expect("stranger");
    let named = address(&stranger).await.expect("stranger's address");
    let plain: gatehouse_node::net::Multiaddr =
        stranger.net.status().listening[0].parse().expect("address");
    let held = || stranger.lock().status().expect("status").envelopes;
    assert_eq!(held(), 1);

    // An address alone: the stranger is sent nothing, and is let go.
    let a = cluster.start(0, vec![plain]).await.expect("start a");
    // Whichever side's probation ends first closes the connection.
    wait_until(DEADLINE, "A and the stranger to part", || {
        a.net.status().refused_connections >= 1 || stranger.net.status().refused_connections >= 1
    })
    .await
    .expect("refused");
    assert_eq!(held(), 1, "a stranger at an address learned A's chain");

    // An address naming the node: its operator chose it, so B proves its
    // admission to it (and to nothing more).
    let b = cluster.start(1, vec![named]).await.expect("start b");
    wait_until(DEADLINE, "B's proof at the named node", || held() > 1)
        .await
        .expect("proof");
    assert!(held() <= 8, "only B's own chain: {}", held());
    for n in [&a, &b, &stranger] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_offline_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    let a = cluster.start(0, vec![]).await.expect("start a");
    let a_addr = address(&a).await.expect("a");
    let c = cluster
        .start(2, vec![a_addr.clone()])
        .await
        .expect("start c");
    wait_until(DEADLINE, "C to sync with A", || {
        c.net.status().last_sync_ms.is_some()
    })
    .await
    .expect("first sync");
    c.stop().await;
    drop(c);

    // 200 items published and each revised while C is away.
    let ids = a
        .local(|lib| {
            let mut ids = Vec::new();
            for n in 0..200u64 {
                ids.push(lib.publish(&synthetic_content(n), &[])?);
            }
            for (n, id) in ids.iter().enumerate() {
                let mut revised = synthetic_content(n as u64);
                revised.summary = format!("{} Revised.", revised.summary);
                lib.revise(id, &revised, &[])?;
            }
            Ok::<_, gatehouse_node::library::LibraryError>(ids)
        })
        .await
        .expect("publish and revise");
    assert_eq!(ids.len(), 200);

    let c = restart(&cluster, 2, vec![a_addr]).await;
    let want = library_json(&a);
    wait_until(Duration::from_secs(180), "C's library to equal A's", || {
        library_json(&c) == want
    })
    .await
    .expect("caught up");
    let items = c.lock().list(&Filter::default()).expect("list");
    assert_eq!(items.len(), 200);
    assert!(items.iter().all(|v| v.item.version == 2));
    a.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_envelope_is_not_stored_not_forwarded_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    // B - A - C: A sits between the forger and C.
    let a = cluster.start(0, vec![]).await.expect("start a");
    let a_addr = address(&a).await.expect("a");
    let b = cluster
        .start(1, vec![a_addr.clone()])
        .await
        .expect("start b");
    let c = cluster.start(2, vec![a_addr]).await.expect("start c");
    let first = b
        .local(|lib| lib.publish(&synthetic_content(3), &[]))
        .await
        .expect("publish");
    wait_until(DEADLINE, "the first item at C", || holds(&c, &first))
        .await
        .expect("c");
    // A validly signed envelope with one byte of its payload changed.
    let mut forged = {
        let lib = b.lock();
        let ids = lib.envelope_ids().expect("ids");
        let bytes = lib.envelope_bytes(&ids).expect("bytes");
        bytes.into_iter().max_by_key(Vec::len).expect("an envelope")
    };
    let at = forged.len() / 2;
    forged[at] ^= 0x20;
    let forged_id = EnvelopeId::of(&forged);
    b.net.gossip_raw(forged).await;
    wait_until(DEADLINE, "A to count the forgery", || {
        a.net.status().forged_received >= 1
    })
    .await
    .expect("counted");
    // Something genuine published after it reaches C; the forgery never does.
    let second = b
        .local(|lib| lib.publish(&synthetic_content(4), &[]))
        .await
        .expect("publish");
    wait_until(DEADLINE, "the second item at C", || holds(&c, &second))
        .await
        .expect("c");
    assert!(!a.lock().has_envelope(&forged_id).expect("has"));
    assert!(!c.lock().has_envelope(&forged_id).expect("has"));
    assert_eq!(c.net.status().forged_received, 0);
    for n in [&a, &b, &c] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_offline_edits_at_one_site_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    // A second node of site 1, for its deputy.
    let item = Library::open(&cluster.homes[1])
        .expect("open")
        .publish(&synthetic_content(10), &[])
        .expect("publish");
    let (deputy_home, _) = cluster.add_member_node(1, "Deputy").expect("deputy node");
    // Both edit the same item while apart.
    {
        let mut lead = Library::open(&cluster.homes[1]).expect("open");
        let mut c = lead.get(&item, None).expect("get").item.content;
        c.body = format!("Lead's opening paragraph.\n\n{}", c.body);
        lead.revise(&item, &c, &[]).expect("lead revises");
        let mut dep = Library::open(&deputy_home).expect("open");
        let mut c = dep.get(&item, None).expect("get").item.content;
        c.body = format!("{}\n\nDeputy's closing paragraph.\n", c.body);
        dep.revise(&item, &c, &[]).expect("deputy revises");
        // The deputy's node key needs a delegation to be admitted.
        let node_key = gatehouse_node::home::Home::read_key(&deputy_home, "node")
            .expect("read")
            .expect("node key");
        let est = cluster.homes[1]
            .read_key("establishment")
            .expect("read")
            .expect("establishment key");
        let est_id = lead.config().establishment;
        lead.delegate(
            &est,
            est_id,
            node_key.public(),
            "Deputy's node",
            MemberRole::Device,
        )
        .expect("delegate node");
    }
    let lead = cluster.start(1, vec![]).await.expect("lead");
    let dep = RunningNode::start(
        &deputy_home,
        loopback(vec![address(&lead).await.expect("addr")]),
    )
    .await
    .expect("deputy");
    wait_until(DEADLINE, "both nodes to hold the merged item", || {
        let a = lead.lock().get(&item, None).map(|v| v.item);
        let b = dep.lock().get(&item, None).map(|v| v.item);
        matches!((a, b), (Ok(a), Ok(b)) if a == b && a.version == 3)
    })
    .await
    .expect("merged");
    let merged = lead.lock().get(&item, None).expect("get").item.content.body;
    assert!(merged.starts_with("Lead's opening paragraph."), "{merged}");
    assert!(
        merged.trim_end().ends_with("Deputy's closing paragraph."),
        "{merged}"
    );
    // Version 3 exists only as the merge of the two revisions: it can still
    // be asked for by number, and the diff from version 2 reads both edits.
    {
        let lib = lead.lock();
        let v3 = lib.get(&item, Some(3)).expect("version 3 by number");
        assert_eq!(v3.item.content.body, merged);
        let v2 = lib.get(&item, Some(2)).expect("version 2");
        let d = gatehouse_node::query::diff::diff(&v2, &v3);
        assert_eq!((d.from, d.to), (2, 3));
        assert!(d.lines_added >= 1, "{d:?}");
    }
    lead.stop().await;
    dep.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_while_a_node_is_offline_wins_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    // Site 1's deputy publishes from their own node (D), which is offline
    // when the site lead revokes their key.
    let (deputy_home, deputy) = cluster.add_member_node(1, "Deputy").expect("deputy node");
    let early = Library::open(&deputy_home)
        .expect("open")
        .publish(&synthetic_content(20), &[])
        .expect("deputy publishes");

    // A, B and C meet; C then goes away.
    let a = cluster.start(0, vec![]).await.expect("a");
    let a_addr = address(&a).await.expect("addr");
    let b = cluster.start(1, vec![a_addr.clone()]).await.expect("b");
    let c = cluster.start(2, vec![a_addr.clone()]).await.expect("c");
    wait_until(DEADLINE, "C to sync", || {
        c.net.status().last_sync_ms.is_some()
    })
    .await
    .expect("sync");
    c.stop().await;
    drop(c);

    // The deputy's early item reaches B; then the lead revokes the deputy.
    let d_lib = Library::open(&deputy_home).expect("open");
    let d_bundle = bundle::write(&d_lib.config().network, &d_lib.export().expect("export"));
    drop(d_lib);
    b.local(|lib| bundle::import(lib, &d_bundle).map(|_| ()))
        .await
        .expect("import");
    let est = cluster.homes[1]
        .read_key("establishment")
        .expect("read")
        .expect("establishment key");
    b.local(|lib| {
        lib.revoke_key(
            &est,
            deputy.public(),
            gatehouse_node::authoring::authority::History::Keep,
            "left",
        )
        .map(|_| ())
    })
    .await
    .expect("revoke");
    // The deputy, unaware, publishes again; that reaches B too.
    let late = Library::open(&deputy_home)
        .expect("open")
        .publish(&synthetic_content(21), &[])
        .expect("deputy publishes again");
    let d_lib = Library::open(&deputy_home).expect("open");
    let d_bundle = bundle::write(&d_lib.config().network, &d_lib.export().expect("export"));
    drop(d_lib);
    b.local(|lib| bundle::import(lib, &d_bundle).map(|_| ()))
        .await
        .expect("import");
    wait_until(DEADLINE, "A to hold the early item", || holds(&a, &early))
        .await
        .expect("a");

    // C returns: it ends with A's library: the early item, not the late one.
    let c = restart(&cluster, 2, vec![a_addr]).await;
    let want = library_json(&a);
    wait_until(DEADLINE, "C's library to equal A's", || {
        library_json(&c) == want
    })
    .await
    .expect("converged");
    assert!(holds(&c, &early));
    assert!(!holds(&c, &late));
    for n in [&a, &b, &c] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_cannot_accept_connections_takes_part_through_a_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    let a = cluster.start(0, vec![]).await.expect("a");
    let b = cluster
        .start(1, vec![address(&a).await.expect("a")])
        .await
        .expect("b");
    let relay = address(&b).await.expect("b");
    // C listens on no address of its own: only through B.
    let mut config = loopback(vec![relay.clone()]);
    config.listen.clear();
    config.relays = vec![relay.clone()];
    let c = RunningNode::start(&cluster.homes[2], config)
        .await
        .expect("c");
    wait_until(DEADLINE, "C's relayed address", || {
        c.net
            .status()
            .listening
            .iter()
            .any(|a| a.contains("p2p-circuit"))
    })
    .await
    .expect("reservation");
    let c_peer = c.net.status().peer_id;
    // A reaches C through B's relay.
    let circuit: gatehouse_node::net::Multiaddr = format!("{relay}/p2p-circuit/p2p/{c_peer}")
        .parse()
        .expect("circuit address");
    a.net.dial(circuit).await;
    wait_until(DEADLINE, "A to sync with C over the relay", || {
        a.net
            .status()
            .peers
            .get(&c_peer)
            .is_some_and(|p| p.connected && p.last_sync_ms.is_some())
    })
    .await
    .expect("relayed sync");
    let id = c
        .local(|lib| lib.publish(&synthetic_content(30), &[]))
        .await
        .expect("publish");
    wait_until(DEADLINE, "C's item at A", || holds(&a, &id))
        .await
        .expect("a");
    for n in [&a, &b, &c] {
        n.stop().await;
    }
}

/// A network of 40 admitted sites whose certificates (admission, lead and
/// node delegations) the admin's node holds: far more than any one push of
/// "the first certificates" would carry. Three new sites join one after
/// another, each with only the admin's node as bootstrap; each is admitted
/// on first contact and syncs both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sites_join_a_network_of_forty_through_the_admin_alone() {
    use gatehouse_protocol::certificate::{Admission, Certificate, Delegation};
    use gatehouse_protocol::envelope::{Body, Verified};
    use gatehouse_protocol::vocab::{Nation, Setting};

    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 1).expect("cluster");
    {
        let mut lib = Library::open(&cluster.homes[0]).expect("open admin");
        let network = lib.config().network;
        let mut certs = Vec::new();
        for s in 0..40 {
            let est = generate_key().expect("key");
            let id = EstablishmentId(gatehouse_node::home::random_bytes().expect("random"));
            let sign = |c: Certificate, k: &gatehouse_protocol::key::SecretKey| {
                Verified::sign(Body::Certificate(c), k, &network, 0)
            };
            certs.push(sign(
                Certificate::Admit(Admission {
                    establishment: id,
                    key: est.public(),
                    name: format!("HMP Existing {s}"),
                    setting: Setting::PrisonCatB,
                    nation: Nation::England,
                }),
                &cluster.admin,
            ));
            for role in [MemberRole::Person, MemberRole::Device] {
                let member = generate_key().expect("key");
                certs.push(sign(
                    Certificate::Delegate(Delegation {
                        establishment: id,
                        member: member.public(),
                        name: format!("HMP Existing {s} {role:?}"),
                        role,
                    }),
                    &est,
                ));
            }
        }
        lib.ingest_many(certs)
            .expect("store the network's certificates");
        assert!(lib.certificate_ids().expect("ids").len() > 120);
    }
    let admin = cluster.start(0, vec![]).await.expect("start admin");
    let admin_addr = address(&admin).await.expect("admin address");
    let mut joined = Vec::new();
    for n in 0..3 {
        let name = format!("HMP Newcomer {n}");
        let home = gatehouse_node::home::Home::new(dir.path().join(format!("new-{n}")));
        home.create().expect("create home");
        let est = generate_key().expect("key");
        home.write_key("establishment", &est).expect("write key");
        let invite = admin
            .local(|lib| {
                lib.admit(
                    &cluster.admin,
                    est.public(),
                    &name,
                    gatehouse_protocol::vocab::Setting::PrisonCatC,
                    gatehouse_protocol::vocab::Nation::England,
                    None,
                )?;
                Ok::<_, gatehouse_node::library::LibraryError>(bundle::write(
                    &lib.config().network,
                    &lib.certificate_bytes()?,
                ))
            })
            .await
            .expect("admit");
        let (mut lib, _) = Library::join(&home, &invite, "Healthcare manager").expect("join");
        let theirs = lib
            .publish(&synthetic_content(100 + n), &[])
            .expect("publish");
        drop(lib);
        let node = RunningNode::start(&home, loopback(vec![admin_addr.clone()]))
            .await
            .expect("start newcomer");
        let ours = admin
            .local(|lib| lib.publish(&synthetic_content(200 + n), &[]))
            .await
            .expect("publish at the admin");
        let took = wait_until(DEADLINE, &format!("{name} to sync both ways"), || {
            holds(&admin, &theirs) && holds(&node, &ours)
        })
        .await
        .expect("sync both ways");
        let peer = node.net.status().peer_id;
        assert!(
            admin
                .net
                .status()
                .peers
                .get(&peer)
                .is_some_and(|p| p.admitted),
            "the admin's node does not list {name} as admitted"
        );
        eprintln!("{name} admitted and synced both ways in {took:?}");
        joined.push(node);
    }
    // The last newcomer holds everything the admin holds.
    let last = joined.last().expect("joined");
    wait_until(
        DEADLINE,
        "the last newcomer to hold the admin's envelopes",
        || last.lock().envelope_ids().ok() == admin.lock().envelope_ids().ok(),
    )
    .await
    .expect("whole set");
    for node in &joined {
        node.stop().await;
    }
    admin.stop().await;
}
