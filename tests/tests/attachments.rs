//! Files between real nodes over libp2p on loopback: a site lead
//! publishes a Word policy with a PDF flowchart, another site receives
//! the item, fetches both files whole, finds the policy by the words of
//! its flowchart and serves the files for download; a peer whose copy of
//! a file is damaged is refused at the damaged chunk and the file is
//! finished from another peer, from where it stopped.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_node::authoring::attach::attachment_from_file;
use gatehouse_node::blobs::BlobState;
use gatehouse_node::docx;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::web::{WebServer, WebState};
use gatehouse_protocol::attachment::{Attachment, BlobHash};
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::ItemContent;
use gatehouse_protocol::vocab::Kind;
use gatehouse_tests::cluster::{Cluster, address, holds, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../node/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

fn has_file(node: &RunningNode, hash: &BlobHash) -> bool {
    node.lock().blobs().is_some_and(|b| b.has(hash))
}

fn found(node: &RunningNode, words: &str) -> Vec<ItemId> {
    node.lock()
        .search(words, &Filter::default(), 10)
        .map(|r| r.results.iter().map(|h| h.view.item.id).collect())
        .unwrap_or_default()
}

/// The Word policy as its site lead would publish it: the body from the
/// document, the original and a flowchart attached.
fn word_policy(node: &RunningNode) -> (ItemContent, Vec<Attachment>) {
    let converted =
        docx::convert(&std::fs::read(fixture("policy.docx")).expect("fixture")).expect("converts");
    let mut c = synthetic_content(5);
    c.kind = Kind::Policy;
    c.qi = None;
    c.title = converted.title.clone().expect("a title");
    c.body = converted.markdown;
    let lib = node.lock();
    let blobs = lib.blobs().expect("a file store");
    let files = ["policy.docx", "flowchart.pdf"]
        .iter()
        .map(|f| attachment_from_file(blobs, &fixture(f)).expect("attach"))
        .collect();
    (c, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_policy_and_its_flowchart_reach_another_site_whole_and_are_served_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 2).expect("cluster");
    let [a, b]: [_; 2] = cluster
        .start_all()
        .await
        .expect("start")
        .try_into()
        .unwrap_or_else(|_| panic!("two nodes"));
    let (content, files) = word_policy(&a);
    let id = a
        .local(move |lib| lib.publish_with(&content, &[], &files))
        .await
        .expect("publish");
    let files = a.lock().get(&id, None).expect("item").item.attachments;
    assert_eq!(files.len(), 2);

    wait_until(DEADLINE, "B holds the item", || holds(&b, &id))
        .await
        .expect("item");
    wait_until(DEADLINE, "B holds both files", || {
        files.iter().all(|f| has_file(&b, &f.hash))
    })
    .await
    .expect("files");
    // Found at B by words only the flowchart holds.
    wait_until(DEADLINE, "B finds the policy by its flowchart", || {
        found(&b, "naloxone") == vec![id]
    })
    .await
    .expect("indexed");
    // Counted once each file is checked, just after it is stored whole.
    wait_until(DEADLINE, "B counts both files fetched", || {
        b.net.status().blobs_fetched >= 2
    })
    .await
    .expect("counted");
    let status = b.net.status();
    let pdf_size = files
        .iter()
        .find(|f| f.name == "flowchart.pdf")
        .expect("pdf")
        .size;
    assert!(status.blob_bytes_received >= pdf_size, "{status:?}");

    // B's page lists them and serves each as a download of exactly its bytes.
    let server = WebServer::start(
        ([127, 0, 0, 1], 0).into(),
        WebState::new(b.reads(), Some(b.net.clone())),
    )
    .await
    .expect("web");
    let client = reqwest::Client::new();
    let page = client
        .get(format!("http://{}/items/{}", server.addr, id.to_hex()))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("flowchart.pdf") && page.contains("Word document"),
        "{page}"
    );
    for (name, mime) in [
        ("flowchart.pdf", "application/pdf"),
        (
            "policy.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ] {
        let resp = client
            .get(format!(
                "http://{}/items/{}/files/{name}",
                server.addr,
                id.to_hex()
            ))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200, "{name}");
        let h = resp.headers();
        assert_eq!(h["content-type"], mime);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(
            h["content-disposition"]
                .to_str()
                .expect("ascii")
                .starts_with(&format!("attachment; filename=\"{name}\"")),
            "{:?}",
            h["content-disposition"]
        );
        let bytes = resp.bytes().await.expect("bytes");
        assert_eq!(
            bytes.as_ref(),
            std::fs::read(fixture(name)).expect("fixture")
        );
    }
    // Monitoring counts the files and their bytes.
    let metrics = client
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(value("gatehouse_files_fetched_total") >= 2.0);
    assert!(value("gatehouse_file_received_bytes_total") >= pdf_size as f64);
    assert_eq!(value("gatehouse_file_pieces_refused_total"), 0.0);
    server.stop().await;
    for n in [&a, &b] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_copy_is_refused_at_its_chunk_and_the_file_finished_from_another_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    let a = cluster.start(0, vec![]).await.expect("A");
    let a_at = address(&a).await.expect("address");
    let b = cluster.start(1, vec![a_at.clone()]).await.expect("B");
    // A scanned form: 600 KB, so it crosses in three pieces.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..600_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let file = dir.path().join("consent-form.png");
    std::fs::write(&file, &png).expect("write");
    let attachment = {
        let lib = a.lock();
        attachment_from_file(lib.blobs().expect("store"), &file).expect("attach")
    };
    let mut content = synthetic_content(8);
    content.title = "Consent to share information".into();
    let hash = attachment.hash;
    let id = a
        .local(move |lib| lib.publish_with(&content, &[], &[attachment]))
        .await
        .expect("publish");
    wait_until(DEADLINE, "B holds the form", || has_file(&b, &hash))
        .await
        .expect("B");
    // B's disk damages one byte, 400,000 bytes in: in the second piece
    // of 256 KiB a peer is asked for.
    let at_b = b.lock().blobs().expect("store").path(&hash);
    let mut damaged = std::fs::read(&at_b).expect("read");
    damaged[400_000] ^= 0x40;
    std::fs::write(&at_b, &damaged).expect("write");
    // A stops, so C can only ask B.
    a.stop().await;
    drop(a);

    let b_at = address(&b).await.expect("address");
    let c = cluster.start(2, vec![b_at]).await.expect("C");
    wait_until(DEADLINE, "C holds the item", || holds(&c, &id))
        .await
        .expect("item");
    wait_until(DEADLINE, "C refuses B's damaged piece", || {
        c.net.status().blob_pieces_refused >= 1
    })
    .await
    .expect("refused");
    let kept = match c.lock().blobs().expect("store").state(&hash) {
        BlobState::Partial(n) => n,
        other => panic!("C should hold the bytes before the damage, not {other:?}"),
    };
    // Everything before the damaged chunk, to the chunk.
    assert_eq!(kept, 400_000 / 1024 * 1024);
    assert!(!has_file(&c, &hash));

    // A comes back; C finishes the file from A, from where it stopped.
    let a = cluster.start(0, vec![]).await.expect("A again");
    let a_at = address(&a).await.expect("address");
    c.net.dial(a_at).await;
    wait_until(DEADLINE, "C holds the whole form", || has_file(&c, &hash))
        .await
        .expect("whole");
    let got = std::fs::read(c.lock().blobs().expect("store").path(&hash)).expect("read");
    assert_eq!(got, png);
    let rest = png.len() as u64 - kept;
    wait_until(DEADLINE, "A counts what it sent", || {
        a.net.status().blob_bytes_sent >= rest
    })
    .await
    .expect("counted");
    let sent_by_a = a.net.status().blob_bytes_sent;
    assert!(
        sent_by_a >= rest && sent_by_a < rest + rest / 4,
        "A sent {sent_by_a} bytes for the {rest} C lacked"
    );
    for n in [&a, &b, &c] {
        n.stop().await;
    }
}
