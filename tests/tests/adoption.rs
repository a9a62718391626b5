//! Adoption between two real nodes on loopback: site B adopts site A's
//! policy, changes its copy, A revises the source, B is told (home page,
//! item page, `source_changes`) with the diff between the version it took
//! and the source's current one, takes the change with its own edit kept,
//! and A's item page lists B among the adopters with the version it holds.
//! A site lead adopts from the item's web page, signed with their own key.

mod common;

use std::time::Duration;

use common::WebUser;

use gatehouse_node::query::inbox::InboxKind;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::web::{WebServer, WebState};
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::ItemContent;
use gatehouse_protocol::vocab::{Kind, Status};
use gatehouse_tests::cluster::{Cluster, holds, site_name, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

fn policy() -> ItemContent {
    let mut c = synthetic_content(21);
    c.title = "Management of medicines in possession".into();
    c.kind = Kind::Policy;
    c.qi = None;
    c.body = "# Purpose\n\nThis policy sets out who may hold medicines.\n\n\
              # Assessment\n\nA nurse assesses each person on reception.\n\n\
              # Review\n\nThe assessment is reviewed every three months.\n"
        .into();
    c
}

async fn page(client: &reqwest::Client, addr: std::net::SocketAddr, path: &str) -> String {
    let resp = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.expect("body")
}

/// Whether `node` holds `id` at `version` or later.
fn holds_version(node: &gatehouse_node::runtime::RunningNode, id: &ItemId, version: u64) -> bool {
    node.lock()
        .get(id, None)
        .is_ok_and(|v| v.item.version >= version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_adopts_a_policy_is_told_of_the_source_change_and_takes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    let [a, b]: [_; 2] = cluster
        .start_all()
        .await
        .expect("start")
        .try_into()
        .unwrap_or_else(|_| panic!("two nodes"));
    let client = reqwest::Client::new();
    let a_web = WebServer::start(
        ([127, 0, 0, 1], 0).into(),
        WebState::new(a.reads(), Some(a.net.clone())),
    )
    .await
    .expect("A's web page");
    let b_web = WebServer::start(
        ([127, 0, 0, 1], 0).into(),
        WebState::new(b.reads(), Some(b.net.clone())),
    )
    .await
    .expect("B's web page");

    let mut source = policy();
    let src = a
        .local(|lib| lib.publish(&source, &[]))
        .await
        .expect("publish");
    wait_until(DEADLINE, "B to hold A's policy", || holds(&b, &src))
        .await
        .expect("replicated");

    // A site cannot adopt its own item; B adopts A's.
    let own = a.local(|lib| lib.adopt(&src, None, &[])).await;
    assert!(
        own.expect_err("own item")
            .to_string()
            .contains("already this establishment's"),
    );
    let copy = b
        .local(|lib| lib.adopt(&src, None, &[]))
        .await
        .expect("adopt");
    let view = b.lock().get(&copy, None).expect("copy");
    assert_eq!(
        view.establishment.name.as_deref(),
        Some(site_name(1).as_str())
    );
    assert_eq!(view.item.content.body, source.body);
    assert_eq!(view.item.content.approved_by, None, "A's approval is A's");
    let adoption = view.item.adoption.expect("provenance recorded");
    assert_eq!((adoption.from, adoption.version), (src, 1));
    let history = a.lock().history(&src).expect("history");
    assert_eq!(adoption.envelope, history[0].envelope);
    assert_eq!(b.lock().history(&copy).expect("history")[0].action, "adopt");

    // B makes the copy its own: its assessment is done by a pharmacist.
    let mut mine = view.item.content.clone();
    mine.body = mine
        .body
        .replace("A nurse assesses", "A pharmacist assesses");
    b.local(|lib| lib.revise(&copy, &mine, &[]))
        .await
        .expect("B's own change");
    assert!(b.lock().source_changes().expect("alerts").is_empty());

    // A's item page lists B, holding the current version.
    wait_until(DEADLINE, "A to hold B's copy", || holds(&a, &copy))
        .await
        .expect("copy replicated");
    let text = page(&client, a_web.addr, &format!("/items/{src}")).await;
    assert!(text.contains("Adopted by 1 site"), "{text}");
    assert!(text.contains(&site_name(1)) && text.contains("1, the current one"));
    let adopters = a.lock().adopters(&src).expect("adopters");
    assert_eq!(adopters.len(), 1);
    assert_eq!((adopters[0].item, adopters[0].version), (copy, Some(1)));

    // A revises a different part of the source.
    source.body = source
        .body
        .replace("every three months", "every month, and after any incident");
    source.summary = "Who may hold medicines in possession, reviewed monthly.".into();
    a.local(|lib| lib.revise(&src, &source, &[]))
        .await
        .expect("revise source");
    wait_until(DEADLINE, "B to hold version 2 of the source", || {
        holds_version(&b, &src, 2)
    })
    .await
    .expect("revision replicated");

    // B is told: in `due`'s list, on its home page and on its copy's page,
    // with the diff between the version it took and the source's current.
    let alerts = b.lock().source_changes().expect("alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].mine.item.id, alerts[0].taken), (copy, 1));
    assert_eq!(alerts[0].source.item.version, 2);
    let diff_link = format!("/items/{src}/diff?from=1&amp;to=2");
    let home = page(&client, b_web.addr, "/").await;
    assert!(home.contains("The source changed since"), "{home}");
    assert!(home.contains(&diff_link), "{home}");
    let copy_page = page(&client, b_web.addr, &format!("/items/{copy}")).await;
    assert!(copy_page.contains("The source changed since you adopted it"));
    let someone = gatehouse_protocol::key::SecretKey::from_seed([7; 32]).public();
    let inbox = b
        .reads()
        .latest()
        .inbox(&someone, &Default::default(), 0, 50);
    assert!(
        inbox
            .entries
            .iter()
            .any(|e| e.kind == InboxKind::SourceChanged
                && e.item == Some(copy)
                && e.version == Some(2)
                && e.unread),
        "{:?}",
        inbox.entries
    );
    let diff = page(
        &client,
        b_web.addr,
        &format!("/items/{src}/diff?from=1&to=2"),
    )
    .await;
    assert!(
        diff.contains("every month, and after any incident"),
        "{diff}"
    );

    // What taking it gives: A's change, B's own change kept.
    let change = b.lock().source_change(&copy).expect("source change");
    assert_eq!(change.conflicts, 0);
    assert!(change.merged.body.contains("A pharmacist assesses"));
    assert!(
        change
            .merged
            .body
            .contains("every month, and after any incident")
    );
    assert_eq!(change.merged.summary, source.summary);
    // Conflict markers are never signed.
    let mut marked = change.merged.clone();
    marked.body.push_str("<<<<<<< yours\n");
    let refused = b.local(|lib| lib.take_change(&copy, &marked, &[], 2)).await;
    assert!(
        refused
            .expect_err("markers")
            .to_string()
            .contains("conflict marker")
    );
    let merged = change.merged.clone();
    let version = b
        .local(|lib| lib.take_change(&copy, &merged, &[], 2))
        .await
        .expect("take the change");
    assert_eq!(version, 3);
    let taken = b.lock().get(&copy, None).expect("copy");
    assert_eq!(taken.item.adoption.map(|a| a.version), Some(2));
    assert_eq!(taken.item.content.status, Status::Published);
    assert!(b.lock().source_changes().expect("alerts").is_empty());
    let home = page(&client, b_web.addr, "/").await;
    assert!(!home.contains("The source changed since"));

    // A sees B holding the current version.
    wait_until(DEADLINE, "A to hold B's version 3", || {
        holds_version(&a, &copy, 3)
    })
    .await
    .expect("taken change replicated");
    let text = page(&client, a_web.addr, &format!("/items/{src}")).await;
    assert!(text.contains("2, the current one"), "{text}");

    // B's inspection pack carries the copy's provenance and verifies with
    // nothing but its own files.
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("pack");
    let made = {
        let lib = b.lock();
        let signer = lib.signing_key().expect("key");
        let today = lib.today();
        let own = lib.config().establishment;
        gatehouse_node::pack::build(&lib, own, &[], today, &signer, &dir).expect("pack")
    };
    assert!(made.items >= 1);
    gatehouse_node::pack::verify(&dir).expect("the pack verifies");
    let copy_page = std::fs::read_to_string(dir.join(format!("items/{}.html", copy.to_hex())))
        .expect("the copy's page");
    assert!(copy_page.contains("Adopted from"), "{copy_page}");
    assert!(
        copy_page.contains(", version 2, made by the change"),
        "{copy_page}"
    );

    a_web.stop().await;
    b_web.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_lead_adopts_from_the_item_page_with_their_own_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    let [a, b]: [_; 2] = cluster
        .start_all()
        .await
        .expect("start")
        .try_into()
        .unwrap_or_else(|_| panic!("two nodes"));
    let source = policy();
    let src = a
        .local(move |lib| lib.publish(&source, &[]))
        .await
        .expect("publish");
    wait_until(DEADLINE, "B to hold A's policy", || holds(&b, &src))
        .await
        .expect("replicated");

    // A clinician at B is not offered it; B's lead is.
    let nurse = WebUser::clinician(&b, &cluster.homes[1], "Nurse C Ames").await;
    let path = format!("/items/{src}");
    assert!(!nurse.get(&path).await.contains("Adopt for my site"));
    let lead = WebUser::lead(&b, &cluster.homes[1], "Deputy lead D Rowe").await;
    let page = lead.get(&path).await;
    assert!(page.contains("Adopt for my site"), "{page}");
    let to = lead.post(&path, &format!("{path}/adopt"), &[]).await;
    let copy: ItemId = to
        .strip_prefix("/items/")
        .and_then(|id| id.parse().ok())
        .expect("sent to the copy");
    let view = b.lock().get(&copy, None).expect("the copy");
    assert_eq!(view.item.adoption.map(|a| a.from), Some(src));
    assert_eq!(
        view.signed_by
            .iter()
            .map(|n| n.name.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["Deputy lead D Rowe"],
        "signed with the lead's own key"
    );
    let page = lead.get(&path).await;
    assert!(page.contains("has adopted this item"), "{page}");
    assert!(
        !page.contains("type=\"submit\">Adopt for my site"),
        "{page}"
    );

    // A learns of it.
    wait_until(DEADLINE, "A to list B among the adopters", || {
        a.lock()
            .adopters(&src)
            .is_ok_and(|list| list.iter().any(|x| x.item == copy))
    })
    .await
    .expect("adoption replicated");

    // Records (kind 4) travel between real nodes as every envelope does:
    // B's rules reach A.
    let rules = b
        .local(|lib| lib.set_rules(Some(true), Some(3), None))
        .await
        .expect("B signs its rules");
    let b_id = b.lock().config().establishment;
    wait_until(DEADLINE, "A to hold B's rules", || {
        a.lock()
            .read_view()
            .site_rules(&b_id)
            .is_ok_and(|(r, _)| r == rules)
    })
    .await
    .expect("rules replicated");
    a.stop().await;
    b.stop().await;
}
