//! Library behaviour across restarts, damaged derived state, tampered input
//! and delivery order, on real sled stores and in-memory ones.

mod common;

use std::sync::Arc;

use common::offer_until_stored;

use gatehouse_node::home::Home;
use gatehouse_node::library::{Ambient, InitOptions, Library, LibraryError, NodeConfig};
use gatehouse_node::projection::search::SearchIndex;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::sample::{default_sample_dir, populate, read_sample_dir};
use gatehouse_node::store::MemoryStore;
use gatehouse_protocol::envelope::Envelope;
use gatehouse_protocol::vocab::{Nation, Setting};
use proptest::prelude::*;

fn options(name: &str) -> InitOptions {
    InitOptions {
        establishment: name.into(),
        setting: Setting::LocalRemand,
        nation: Nation::England,
        network_name: "Test network".into(),
        member_name: "Healthcare manager".into(),
    }
}

/// A node in a temp dir holding the whole sample library.
fn sample_node() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (mut lib, _) = Library::init(&home, &options("HMP Northgate")).expect("init");
    let admin = home.read_key("admin").expect("read").expect("admin key");
    let ests = read_sample_dir(&default_sample_dir()).expect("samples");
    populate(&mut lib, &admin, &ests).expect("populate");
    (dir, home)
}

fn listing(lib: &Library) -> String {
    serde_json::to_string(&lib.list(&Filter::default()).expect("list")).expect("json")
}

#[test]
fn reopening_gives_back_exactly_what_was_there() {
    let (_dir, home) = sample_node();
    let (before, status_before) = {
        let lib = Library::open(&home).expect("open");
        (listing(&lib), lib.status().expect("status"))
    };
    let lib = Library::open(&home).expect("reopen");
    assert_eq!(listing(&lib), before);
    let status = lib.status().expect("status");
    assert_eq!(status.envelopes, status_before.envelopes);
    assert_eq!(status.items, status_before.items);
    assert_eq!(status.items, 36);
}

#[test]
fn a_lost_search_index_is_rebuilt_at_start_up() {
    let (_dir, home) = sample_node();
    std::fs::remove_dir_all(home.index_dir()).expect("remove index");
    let lib = Library::open(&home).expect("open");
    let hits = lib
        .search("naloxone", &Filter::default(), 10)
        .expect("search");
    assert!(hits.total >= 2, "{} hits after rebuild", hits.total);
}

#[test]
fn a_damaged_search_index_is_rebuilt_at_start_up() {
    let (_dir, home) = sample_node();
    for entry in std::fs::read_dir(home.index_dir()).expect("index dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::write(&path, b"{ not json").expect("damage");
        }
    }
    let lib = Library::open(&home).expect("open");
    assert!(
        lib.search("naloxone", &Filter::default(), 10)
            .expect("search")
            .total
            >= 2
    );
}

#[test]
fn tampered_envelopes_are_refused_and_change_nothing() {
    let (_dir, home) = sample_node();
    let mut lib = Library::open(&home).expect("open");
    let before = lib.status().expect("status");
    let envelopes = lib.export().expect("export");
    let mut changed = envelopes.last().expect("an envelope").clone();
    let mid = changed.len() / 2;
    changed[mid] ^= 0x01;
    assert!(lib.ingest(&changed).is_err());
    changed.truncate(mid);
    assert!(lib.ingest(&changed).is_err());
    assert!(lib.ingest(b"").is_err());
    let after = lib.status().expect("status");
    assert_eq!(after.envelopes, before.envelopes);
    assert!(after.pending.is_empty() && after.rejected.is_empty());
}

#[test]
fn an_envelope_from_another_network_is_refused() {
    let (_dir, home) = sample_node();
    let dir2 = tempfile::tempdir().expect("tempdir");
    let other = Home::new(dir2.path().join("other"));
    let (other_lib, _) = Library::init(&other, &options("HMP Elsewhere")).expect("init");
    let foreign = other_lib.export().expect("export");
    let mut lib = Library::open(&home).expect("open");
    let err = lib.ingest(&foreign[0]).expect_err("foreign network");
    assert!(err.to_string().contains("network"), "{err}");
}

#[test]
fn an_item_owned_elsewhere_cannot_be_revised_here() {
    let (_dir, home) = sample_node();
    let mut lib = Library::open(&home).expect("open");
    let own = lib.config().establishment;
    let foreign = lib
        .list(&Filter::default())
        .expect("list")
        .into_iter()
        .find(|v| v.item.owner != own)
        .expect("an item of another establishment");
    let err = lib
        .revise(&foreign.item.id, &foreign.item.content, &[])
        .expect_err("not ours");
    assert!(matches!(err, LibraryError::NotOwner { .. }), "{err}");
}

fn memory_library(config: &NodeConfig) -> Library {
    Library::with_store(
        Arc::new(MemoryStore::new()),
        config.clone(),
        SearchIndex::in_memory().expect("index"),
        None,
    )
    .expect("library")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]

    /// Two nodes given the same envelopes in different orders, with
    /// duplicates, hold the same library and the same pending set.
    #[test]
    fn delivery_order_does_not_matter(seed in any::<u64>()) {
        let (_dir, home) = sample_node();
        let source = Library::open(&home).expect("open");
        let envelopes = source.export().expect("export");
        let expected = listing(&source);
        let config = source.config().clone();
        drop(source);

        let mut shuffled = envelopes.clone();
        shuffled.extend(envelopes.iter().take(5).cloned());
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut lib = memory_library(&config);
        for bytes in &shuffled {
            Envelope::decode(bytes).expect("decodes");
        }
        offer_until_stored(&mut lib, shuffled);
        prop_assert_eq!(listing(&lib), expected);
        let status = lib.status().expect("status");
        prop_assert!(status.pending.is_empty(), "{:?}", status.pending);
        prop_assert_eq!(status.envelopes, envelopes.len());
    }
}

/// Copies a stopped node's data directory.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("make copy dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn search_ids(lib: &Library, q: &str) -> Vec<String> {
    let mut ids: Vec<String> = lib
        .search(q, &Filter::default(), 100)
        .expect("search")
        .results
        .iter()
        .map(|r| r.view.item.id.to_hex())
        .collect();
    ids.sort();
    ids
}

/// Every file of the search index, damaged in turn (bytes overwritten in
/// the middle, or cut short), is found at open and the index rebuilt:
/// listing and search give what they gave before.
#[test]
fn damage_to_any_index_file_is_repaired_at_open() {
    let (dir, home) = sample_node();
    let (listed, found) = {
        let lib = Library::open(&home).expect("open");
        (listing(&lib), search_ids(&lib, "naloxone"))
    };
    assert!(!found.is_empty());
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(home.index_dir())
        .expect("index dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file() && !p.ends_with(".tantivy-writer.lock"))
        .collect();
    assert!(files.len() > 3, "{files:?}");
    for (n, file) in files.iter().enumerate() {
        for cut in [false, true] {
            let copy = Home::new(dir.path().join(format!("copy-{n}-{cut}")));
            copy_dir(home.root(), copy.root());
            let target = copy.index_dir().join(file.file_name().expect("name"));
            let mut bytes = std::fs::read(&target).expect("read");
            if bytes.is_empty() {
                continue;
            }
            if cut {
                bytes.truncate(bytes.len() / 2);
            } else {
                let mid = bytes.len() / 2;
                let end = (mid + 16).min(bytes.len());
                for b in &mut bytes[mid..end] {
                    *b ^= 0xA5;
                }
            }
            std::fs::write(&target, &bytes).expect("damage");
            let lib = Library::open(&copy).unwrap_or_else(|e| {
                panic!("{} damaged ({cut}): open failed: {e}", target.display())
            });
            assert_eq!(listing(&lib), listed, "{}", target.display());
            assert_eq!(search_ids(&lib, "naloxone"), found, "{}", target.display());
        }
    }
}

/// A kill in the middle of an index commit can leave files the next
/// commit collides with; the home still opens and every command works.
#[test]
fn stray_index_files_from_a_killed_commit_do_not_stop_the_node() {
    let (_dir, home) = sample_node();
    let found = search_ids(&Library::open(&home).expect("open"), "naloxone");
    // Files a killed writer may leave: segment files no meta.json lists.
    for name in [
        "00000000000000000000000000000000.del",
        "deadbeefdeadbeefdeadbeefdeadbeef.10.del",
    ] {
        std::fs::write(home.index_dir().join(name), b"left by a killed commit").expect("write");
    }
    let mut lib = Library::open(&home).expect("open with stray files");
    assert_eq!(search_ids(&lib, "naloxone"), found);
    // And writing still works.
    let own = lib.config().establishment;
    let mine = lib
        .list(&Filter::default())
        .expect("list")
        .into_iter()
        .find(|v| v.item.owner == own)
        .expect("an item of ours");
    let mut content = mine.item.content.clone();
    content.summary.push_str(" Revised.");
    lib.revise(&mine.item.id, &content, &[]).expect("revise");
    assert_eq!(search_ids(&lib, "naloxone"), found);
}

/// Damage to an envelope on disk (primary data) is an error that names it,
/// says it is lost here, and how to get it back from peers; it is never
/// silently trusted or dropped.
#[test]
fn damage_to_a_stored_envelope_is_an_error_that_says_how_to_recover() {
    use gatehouse_node::store::{SledStore, Store, Tree};
    let (_dir, home) = sample_node();
    let lib = Library::open(&home).expect("open");
    let cert = *lib
        .certificate_ids()
        .expect("certificates")
        .iter()
        .next()
        .expect("a certificate");
    drop(lib);
    {
        let store = SledStore::open(&home.store_dir()).expect("store");
        let mut bytes = store
            .get(Tree::Envelopes, cert.as_bytes())
            .expect("get")
            .expect("held");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        store
            .apply(vec![(
                Tree::Envelopes,
                cert.as_bytes().to_vec(),
                Some(bytes),
            )])
            .expect("damage");
        store.flush().expect("flush");
    }
    let err = match Library::open(&home) {
        Ok(_) => panic!("a damaged envelope was trusted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&cert.to_string()), "{err}");
    assert!(err.contains("damaged") && err.contains("peers"), "{err}");
}

/// Reading needs no publishing key: a node whose member key was taken away
/// (a leaver's laptop) still lists, searches and reports status.
#[test]
fn reading_works_without_a_member_key() {
    let (_dir, home) = sample_node();
    let found = search_ids(&Library::open(&home).expect("open"), "naloxone");
    std::fs::remove_file(home.key_path("member")).expect("remove member key");
    let lib = Library::open(&home).expect("open without a member key");
    assert_eq!(search_ids(&lib, "naloxone"), found);
    assert_eq!(lib.status().expect("status").items, 36);
}

/// An envelope of a kind this version does not read (a later version's
/// post, say), signed by an admitted key, is stored, judged on its signer,
/// exported and carried to another node; unsigned-for or revoked, it has
/// no effect; it is never taken for a forgery.
#[test]
fn envelopes_of_later_kinds_are_kept_and_judged_on_their_signer() {
    use gatehouse_node::authoring::authority::History;
    use gatehouse_protocol::envelope::{Body, Verified};
    use gatehouse_protocol::trust::Judgement;

    let (_dir, home) = sample_node();
    let mut lib = Library::open(&home).expect("open");
    let network = lib.config().network;
    let member = home.read_key("member").expect("read").expect("member key");
    let post = Verified::sign(
        Body::Unread {
            kind: 9,
            payload: b"a question for other sites, in a format this version cannot read".to_vec(),
        },
        &member,
        &network,
        1,
    );
    let stranger = Verified::sign(
        Body::Unread {
            kind: 9,
            payload: b"from nobody".to_vec(),
        },
        &gatehouse_node::home::generate_key().expect("key"),
        &network,
        1,
    );
    let before = lib.status().expect("status");
    let got = lib.ingest(post.bytes()).expect("stored");
    assert!(got.new);
    assert_eq!(
        lib.judgement_of(&post.id()).expect("judged"),
        Judgement::Accepted
    );
    let got = lib.ingest(stranger.bytes()).expect("stored, not refused");
    assert!(
        matches!(got.judgement, Judgement::Pending(_)),
        "{:?}",
        got.judgement
    );
    assert_eq!(lib.status().expect("status").items, before.items);
    // It travels: another node given the export holds it in effect.
    let exported = lib.export().expect("export");
    assert!(exported.iter().any(|e| e.as_slice() == post.bytes()));
    let mut other = memory_library(lib.config());
    offer_until_stored(&mut other, exported);
    assert_eq!(
        other.judgement_of(&post.id()).expect("judged"),
        Judgement::Accepted
    );
    // A compromised key's envelopes of any kind lose their effect.
    let admin = home.read_key("admin").expect("read").expect("admin key");
    lib.revoke_key(&admin, member.public(), History::Discard, "lost laptop")
        .expect("revoke");
    assert!(matches!(
        lib.judgement_of(&post.id()).expect("judged"),
        Judgement::Rejected(_)
    ));
    // And a reopened library judges it the same.
    drop(lib);
    let lib = Library::open(&home).expect("reopen");
    assert!(matches!(
        lib.judgement_of(&post.id()).expect("judged"),
        Judgement::Rejected(_)
    ));
}

#[test]
fn reads_are_answered_while_the_library_is_held_and_see_each_batch_once_it_ends() {
    let (_dir, home) = sample_node();
    let lib = Arc::new(std::sync::Mutex::new(Library::open(&home).expect("open")));
    let reads = lib.lock().expect("lock").reads();
    let before = reads.latest().list(&Filter::default()).expect("list").len();
    // Whoever holds the library (an ingest, a rebuild) does not hold up a
    // read: the read below runs on another thread while the lock is held
    // here, and would never finish if it needed the lock.
    let held = lib.lock().expect("lock");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = reads.clone();
    std::thread::spawn(move || {
        let view = reader.latest();
        let hits = view
            .search("naloxone", &Filter::default(), 10)
            .map(|h| h.total);
        let _ = tx.send(hits);
    });
    let hits = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the read finished while the library was held")
        .expect("search");
    assert!(hits >= 2, "{hits} hits");
    drop(held);
    // A view taken before a batch keeps answering as it was; the next one
    // holds what the batch stored.
    let old = reads.latest();
    let mut content = gatehouse_node::sample::synthetic_content(3);
    content.title = "Quokkaflume read view check".into();
    lib.lock()
        .expect("lock")
        .publish(&content, &[])
        .expect("publish");
    let now = reads.latest();
    assert_eq!(
        now.list(&Filter::default()).expect("list").len(),
        before + 1
    );
    assert_eq!(
        now.search("quokkaflume", &Filter::default(), 5)
            .expect("search")
            .total,
        1
    );
    assert_eq!(
        old.search("quokkaflume", &Filter::default(), 5)
            .expect("search")
            .total,
        0,
        "a view searches the index as it was when the view was taken"
    );
}

#[test]
fn an_injected_clock_and_seed_make_publishing_reproducible() {
    let (dir, home) = sample_node();
    let content = gatehouse_node::sample::synthetic_content(11);
    let at_ms = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let publish_copy = |name: &str, seed: u64| {
        let copy = dir.path().join(name);
        copy_dir(home.root(), &copy);
        let mut lib = Library::open(&Home::new(copy)).expect("open copy");
        lib.set_ambient(Ambient::seeded(seed, move || at_ms));
        let id = lib.publish(&content, &[]).expect("publish");
        (id, lib.get(&id, None).expect("get").updated_ms)
    };
    let (first, updated) = publish_copy("a", 7);
    let (again, _) = publish_copy("b", 7);
    let (other, _) = publish_copy("c", 8);
    assert_eq!(first, again, "the same seed gives the same item id");
    assert_ne!(first, other, "another seed, another id");
    assert_eq!(updated, at_ms, "the item carries the injected clock's time");
}

/// The home page's list of items due for review (the first few, from the
/// search index) is the head of `gatehouse due`'s list, and counts it.
#[test]
fn the_home_pages_due_list_is_the_head_of_the_whole_list() {
    let (_dir, home) = sample_node();
    let lib = Library::open(&home).expect("open");
    let view = lib.read_view();
    for (today, within) in [("2100-01-01", 30), ("2026-06-01", 400), ("2000-01-01", 30)] {
        let today: gatehouse_protocol::jiff::civil::Date = today.parse().expect("date");
        let all = view.due(today, within).expect("due");
        if today.year() == 2100 {
            assert!(all.len() > 3, "every item of this site is overdue by then");
        }
        for limit in [1, 3, 100] {
            let (head, total) = view.due_soonest(today, within, limit).expect("due");
            assert_eq!(total, all.len(), "{today}");
            let ids = |d: &[gatehouse_node::query::DueItem]| -> Vec<_> {
                d.iter().map(|d| d.view.item.id).collect()
            };
            assert_eq!(
                ids(&head),
                ids(&all[..limit.min(all.len())]),
                "{today} {limit}"
            );
        }
    }
}

/// An item that follows the guidance of several nations, or of the whole
/// UK, is found by a filter on any of them and counted under each in the
/// facets; the settings and pathway added for real documents filter too.
#[test]
fn several_nations_new_settings_and_safeguarding_filter_and_count() {
    use gatehouse_node::projection::search::SearchRequest;
    use gatehouse_protocol::vocab::Pathway;
    let (_dir, home) = sample_node();
    let lib = Library::open(&home).expect("open");
    let titles = |filter: &Filter| -> Vec<String> {
        lib.list(filter)
            .expect("list")
            .into_iter()
            .map(|v| v.item.content.title)
            .collect()
    };
    let rule35 = "Rule 35 reports".to_string();
    for nation in Nation::ALL {
        let filter = Filter {
            nation: Some(*nation),
            ..Filter::default()
        };
        assert!(titles(&filter).contains(&rule35), "{nation}");
        let page = lib
            .find(&SearchRequest {
                facets: true,
                ..SearchRequest::relevance("rule 35", &filter, 10)
            })
            .expect("search");
        assert_eq!(page.results.results[0].view.item.content.title, rule35);
        let counted = &page.facets["nation"];
        assert_eq!(counted.len(), 4, "UK-wide counts under each: {counted:?}");
    }
    // Welsh guidance only: the Welsh site's items and the UK-wide one.
    let wales = titles(&Filter {
        nation: Some(Nation::Wales),
        ..Filter::default()
    });
    let scotland = titles(&Filter {
        nation: Some(Nation::Scotland),
        ..Filter::default()
    });
    assert!(wales.iter().all(|t| !scotland.contains(t) || *t == rule35));
    for setting in [Setting::ShortTermHolding, Setting::PreDeparture] {
        let found = titles(&Filter {
            setting: Some(setting),
            ..Filter::default()
        });
        assert_eq!(found, vec![rule35.clone()], "{setting}");
    }
    let safeguarding = titles(&Filter {
        pathway: Some(Pathway::Safeguarding),
        ..Filter::default()
    });
    assert!(safeguarding.contains(&rule35), "{safeguarding:?}");
    let item = lib
        .list(&Filter::default())
        .expect("list")
        .into_iter()
        .find(|v| v.item.content.title == rule35)
        .expect("rule 35");
    assert_eq!(Nation::set_label(&item.item.content.nations), "UK-wide");
}

/// What a library shows of one item, its history and the versions in it.
fn item_state(lib: &Library, id: &gatehouse_protocol::id::ItemId) -> String {
    let history = lib.history(id).expect("history");
    let versions: Vec<String> = history
        .iter()
        .map(|v| {
            serde_json::to_string(&lib.get(id, Some(v.version)).expect("version")).expect("json")
        })
        .collect();
    format!(
        "{}\n{}\n{}",
        serde_json::to_string(&lib.get(id, None).expect("item")).expect("json"),
        serde_json::to_string(&history).expect("json"),
        versions.join("\n")
    )
}

/// An item revised 40 times, each revision its own batch (its stored
/// document grown by chunks, saved whole now and then), reads exactly as
/// the same envelopes rebuilt in one batch, as the same envelopes offered
/// one at a time to a node that judges each against the item's kept
/// document, and as itself after a restart.
#[test]
fn documents_grown_a_revision_at_a_time_read_as_documents_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (mut lib, _) = Library::init(&home, &options("HMP Northgate")).expect("init");
    let mut content = gatehouse_node::sample::synthetic_content(7);
    let id = lib.publish(&content, &[]).expect("publish");
    for v in 2..=41 {
        content.body.push_str(&format!(
            "\n\nRevision {v}: the stock check moved to Mondays."
        ));
        if v % 5 == 0 {
            content.title = format!("Stock checks, revision {v}");
        }
        lib.revise(&id, &content, &[]).expect("revise");
    }
    let grown = item_state(&lib, &id);
    assert!(grown.contains("Revision 41: the stock check"));
    assert!(grown.contains("Stock checks, revision 40"));
    let envelopes = lib.export().expect("export");
    let config = lib.config().clone();
    drop(lib);

    let reopened = Library::open(&home).expect("reopen");
    assert_eq!(item_state(&reopened, &id), grown);
    drop(reopened);

    let mut at_once = memory_library(&config);
    let file = gatehouse_node::replica::bundle::write(&config.network, &envelopes);
    let report = gatehouse_node::replica::bundle::import(&mut at_once, &file).expect("import");
    assert_eq!(report.new, envelopes.len());
    assert_eq!(item_state(&at_once, &id), grown);

    // In the order exported (by envelope id), a revision whose earlier
    // ones are not here yet is offered again later.
    let mut one_at_a_time = memory_library(&config);
    offer_until_stored(&mut one_at_a_time, envelopes);
    assert_eq!(item_state(&one_at_a_time, &id), grown);
    let hits = one_at_a_time
        .search("Mondays", &Filter::default(), 10)
        .expect("search");
    assert_eq!(hits.total, 1);
}

/// Items that arrive whole in a bundle are kept as the envelopes that hold
/// them, not copied again; they read, take later revisions and reopen
/// exactly as the site that wrote them shows them.
#[test]
fn items_received_whole_are_kept_in_their_envelopes_and_read_as_written() {
    use gatehouse_node::replica::bundle;
    use gatehouse_node::sample::synthetic_content;
    use gatehouse_node::store::{SledStore, Store, Tree};

    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (mut lib, _) = Library::init(&home, &options("HMP Northgate")).expect("init");
    let ids: Vec<_> = (0..3)
        .map(|n| lib.publish(&synthetic_content(n), &[]).expect("publish"))
        .collect();
    let first = lib.export().expect("export");
    let mut revised = synthetic_content(0);
    revised
        .body
        .push_str("\n\nRevision 2: the stock check moved to Mondays.");
    lib.revise(&ids[0], &revised, &[]).expect("revise");
    let all = lib.export().expect("export");
    let written: Vec<String> = ids.iter().map(|id| item_state(&lib, id)).collect();
    let config = lib.config().clone();
    drop(lib);

    let at = dir.path().join("received");
    let open = || {
        let store = Arc::new(SledStore::open(&at.join("store")).expect("store"));
        let lib = Library::with_store_in(store.clone(), config.clone(), &at.join("index"), None)
            .expect("library");
        (store, lib)
    };
    let kept = |store: &SledStore, id: &gatehouse_protocol::id::ItemId| {
        store
            .get(Tree::ItemDocs, id.as_bytes())
            .expect("read")
            .expect("a document")
            .len()
    };
    let (store, mut received) = open();
    let report =
        bundle::import(&mut received, &bundle::write(&config.network, &first)).expect("import");
    assert_eq!(report.new, first.len());
    for id in &ids {
        // A tag and the envelope's id, where a copy would be kilobytes.
        assert_eq!(kept(&store, id), 36, "item {id} is copied");
    }
    assert_eq!(item_state(&received, &ids[1]), written[1]);

    bundle::import(&mut received, &bundle::write(&config.network, &all)).expect("import");
    for (id, state) in ids.iter().zip(&written) {
        assert_eq!(&item_state(&received, id), state);
    }
    assert!(
        kept(&store, &ids[0]) > 36,
        "a revised item keeps its document"
    );
    let hits = received
        .search("Mondays", &Filter::default(), 10)
        .expect("search");
    assert_eq!(hits.total, 1);
    drop(received);
    drop(store);

    let (_, reopened) = open();
    for (id, state) in ids.iter().zip(&written) {
        assert_eq!(&item_state(&reopened, id), state);
    }
}

/// An item of one change is read from the change's columns, not through
/// Automerge: it reads, page and history, as Automerge reads the change.
#[test]
fn an_item_of_one_change_reads_as_automerge_reads_its_change() {
    use gatehouse_protocol::automerge::AutoCommit;
    use gatehouse_protocol::envelope::Body;
    let (_dir, home) = sample_node();
    let lib = Library::open(&home).expect("open");
    let mut checked = 0;
    for bytes in lib.export().expect("export") {
        let network = Envelope::network_of(&bytes).expect("network");
        let env = Envelope::open(&bytes, &network).expect("open");
        let Body::Change(c) = env.body() else {
            continue;
        };
        let doc = AutoCommit::load(c.change.raw_bytes()).expect("load");
        let Ok(read) = gatehouse_protocol::item::read_item(&doc) else {
            continue;
        };
        let history = lib.history(&read.id).expect("history");
        if history.len() != 1 {
            continue;
        }
        assert_eq!(lib.get(&read.id, None).expect("item").item, read);
        let entry = &history[0];
        assert_eq!(
            (entry.version, entry.envelope, entry.made_version),
            (read.version, env.id(), true)
        );
        assert_eq!(entry.action, c.change.message().map_or("change", |m| m));
        checked += 1;
    }
    assert!(checked >= 30, "{checked} items of one change");
}

/// A bundle is read in stretches, each opened on other threads while the
/// one before it is stored: an entry held already, in any stretch, or met
/// again in a later one, is a duplicate, and every other is stored once.
#[test]
fn a_bundle_of_many_stretches_stores_each_entry_once_whatever_was_held() {
    use gatehouse_node::replica::bundle;
    use gatehouse_node::sample::synthetic_content;
    use gatehouse_protocol::envelope::Body;

    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (mut lib, _) = Library::init(&home, &options("HMP Northgate")).expect("init");
    for n in 0..300 {
        lib.publish(&synthetic_content(n), &[]).expect("publish");
    }
    let all = lib.export().expect("export");
    let config = lib.config().clone();
    drop(lib);
    let is_change = |bytes: &Vec<u8>| {
        let env = Envelope::open(bytes, &config.network).expect("open");
        matches!(env.body(), Body::Change(_))
    };
    let changes: Vec<&Vec<u8>> = all.iter().filter(|b| is_change(b)).collect();
    assert_eq!(changes.len(), 300);

    let mut received = memory_library(&config);
    // Every certificate and every third item held before.
    let held: Vec<Vec<u8>> = all
        .iter()
        .filter(|b| !is_change(b))
        .chain(changes.iter().copied().step_by(3))
        .cloned()
        .collect();
    bundle::import(&mut received, &bundle::write(&config.network, &held)).expect("import");
    // The whole library, then its first 40 items again, in a later stretch.
    let mut file = all.clone();
    file.extend(changes.iter().take(40).map(|b| (*b).clone()));
    let report =
        bundle::import(&mut received, &bundle::write(&config.network, &file)).expect("import");
    assert_eq!(report.read, file.len());
    assert_eq!(report.new, 200);
    assert_eq!(report.duplicate, held.len() + 40);
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(received.list(&Filter::default()).expect("list").len(), 300);
}
