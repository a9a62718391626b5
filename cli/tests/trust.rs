//! End-to-end tests of the trust features of the `gatehouse` command line:
//! several nodes (each its own data directory) found a network, admit
//! establishments, delegate, revoke and rotate keys, change the admin set and
//! carry envelopes between them in bundle files. Each test checks what a user
//! would see with `--json`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse_protocol::id::EnvelopeId;
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/library");

/// Sample items used as templates (their titles are replaced).
const NALOXONE: &str = "hmp-cwm-tawel/03-take-home-naloxone.md";
const DENTAL: &str = "hmp-cwm-tawel/04-dental-triage-and-waiting-list.md";
const HEP_C: &str = "hmp-cwm-tawel/05-hepatitis-c-test-and-treat.md";

const ALPHA: &str = "HMP Alpha";
const BRAVO: &str = "HMP Bravo";
const LEAD: &str = "Healthcare manager";
const DEPUTY: &str = "Deputy healthcare manager";

/// Reasons as `status --json` and `bundle import --json` report them.
const KEY_REVOKED: &str = "signed by a revoked key, and not among the envelopes it kept";
const ESTABLISHMENT_REMOVED: &str =
    "the establishment was removed, and this is not among the envelopes it kept";
const ANOTHER_ESTABLISHMENT: &str =
    "the signer is delegated by another establishment, not the item's owner";
const NEEDS_ENDORSEMENTS: &str =
    "the admin-set change has fewer admin signatures than the threshold";

// ---------------------------------------------------------------------------
// Running the binary

/// One node: a data directory passed with `--home`.
struct Node {
    home: PathBuf,
}

impl Node {
    fn at(dir: &Path, name: &str) -> Self {
        Self {
            home: dir.join(name),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env_remove("GATEHOUSE_HOME")
            .output()
            .expect("run gatehouse")
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gatehouse --home {} {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            self.home.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    /// Runs with `--json`, asserts success and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        parse_json(&text, args)
    }

    /// Runs, asserts the exit code; returns (stdout, stderr).
    fn fails(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "gatehouse {args:?}: wrong exit code\nstdout: {stdout}\nstderr: {stderr}"
        );
        (stdout, stderr)
    }

    /// Publishes a file and returns the new item's id.
    fn publish(&self, file: &Path) -> String {
        str_of(&self.json(&["publish", path_str(file)])["id"]).to_string()
    }

    fn list(&self) -> Vec<Value> {
        array(&self.json(&["list"])["items"])
    }

    fn list_ids(&self) -> BTreeSet<String> {
        self.list()
            .iter()
            .map(|v| str_of(&v["id"]).to_string())
            .collect()
    }

    fn status(&self) -> Value {
        self.json(&["status"])
    }

    fn envelopes(&self) -> u64 {
        self.status()["envelopes"]
            .as_u64()
            .expect("status has an envelope count")
    }

    /// A public key from `key show`.
    fn key(&self, which: &str) -> String {
        str_of(&self.json(&["key", "show"])[which]).to_string()
    }

    fn export(&self, file: &Path) -> Value {
        self.json(&["bundle", "export", path_str(file)])
    }

    fn import(&self, file: &Path) -> Value {
        self.json(&["bundle", "import", path_str(file)])
    }

    /// The raw stdout of `show ID --json`, for byte-for-byte comparison.
    fn show_text(&self, id: &str) -> String {
        self.ok(&["--json", "show", id])
    }
}

fn parse_json(text: &str, args: &[&str]) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{args:?}: bad JSON {e}: {text}"))
}

/// Exports `from`'s whole library to `file` and imports it at `to`;
/// returns the import report.
fn carry(from: &Node, to: &Node, file: &Path) -> Value {
    from.export(file);
    to.import(file)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn array(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .clone()
}

fn strings(v: &Value) -> BTreeSet<String> {
    array(v).iter().map(|s| str_of(s).to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The count for `reason` in a reason→count map (0 when absent).
fn count(map: &Value, reason: &str) -> u64 {
    map.get(reason).and_then(Value::as_u64).unwrap_or(0)
}

fn sample_text(rel: &str) -> String {
    std::fs::read_to_string(Path::new(SAMPLES).join(rel)).expect("read sample file")
}

/// A copy of a sample item with its `title:` line replaced.
fn with_title(rel: &str, title: &str) -> String {
    let text = sample_text(rel);
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if !found && l.starts_with("title:") {
                found = true;
                format!("title: {title}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "{rel} has no title line");
    out.join("\n") + "\n"
}

/// Copies a data directory (a node must not be running in it).
fn copy_dir(from: &Path, to: &Path) {
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

// ---------------------------------------------------------------------------
// A small network

/// Admin node A (HMP Alpha, founded the network) and HMP Bravo's lead's node
/// B, admitted by A and joined with its invitation.
struct Net {
    dir: TempDir,
    a: Node,
    b: Node,
}

impl Net {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("make test dir");
        let a = Node::at(dir.path(), "A");
        let b = Node::at(dir.path(), "B");
        let init = a.json(&[
            "init",
            "--establishment",
            ALPHA,
            "--network-name",
            "Test region",
        ]);
        assert!(a.home.join("keys/admin.key").exists(), "{init}");
        let b_key = b.ok(&["key", "generate", "establishment"]);
        let net = Self { dir, a, b };
        let invite = net.file("inviteB.bundle");
        net.a.json(&[
            "trust",
            "admit",
            "--key",
            b_key.trim(),
            "--name",
            BRAVO,
            "--setting",
            "prison-cat-c",
            "--nation",
            "wales",
            "--invite",
            path_str(&invite),
        ]);
        let joined = net
            .b
            .json(&["init", "--join", path_str(&invite), "--member-name", LEAD]);
        assert_eq!(str_of(&joined["establishment_name"]), BRAVO, "{joined}");
        assert_eq!(joined["node_delegated"], true, "{joined}");
        net
    }

    /// A path in the test directory.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an item file: a sample with a new title.
    fn item(&self, name: &str, rel: &str, title: &str) -> PathBuf {
        let path = self.file(name);
        std::fs::write(&path, with_title(rel, title)).expect("write item file");
        path
    }

    fn node(&self, name: &str) -> Node {
        Node::at(self.dir.path(), name)
    }

    /// The deputy's own node D, its key delegated by B's lead; returns the
    /// node and the deputy's public key.
    fn deputy(&self) -> (Node, String) {
        let d = self.node("D");
        let key = d.ok(&["key", "generate", "member"]).trim().to_string();
        let invite = self.file("inviteD.bundle");
        let added = self.b.json(&[
            "member",
            "add",
            "--key",
            &key,
            "--name",
            DEPUTY,
            "--invite",
            path_str(&invite),
        ]);
        assert_eq!(str_of(&added["key"]), key, "{added}");
        let joined = d.json(&["init", "--join", path_str(&invite)]);
        assert_eq!(str_of(&joined["establishment_name"]), BRAVO, "{joined}");
        assert_eq!(str_of(&joined["member_key"]), key, "{joined}");
        (d, key)
    }
}

// ---------------------------------------------------------------------------
// Bundle files, taken apart and put back together

const HEADER: usize = 8 + 1 + 32;

/// The body ranges of a well-formed bundle's entries (each preceded by its
/// 4-byte length at `range.start - 4`).
fn entries(bytes: &[u8]) -> Vec<Range<usize>> {
    assert_eq!(&bytes[..8], b"GHBUNDLE");
    let mut out = Vec::new();
    let mut pos = HEADER;
    loop {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            assert_eq!(bytes.len(), pos + 44, "end marker then nothing");
            return out;
        }
        out.push(pos + 4..pos + 4 + len);
        pos += 4 + len;
    }
}

/// A bundle with `header` (magic, version, network) and these envelopes,
/// with a correct end marker.
fn bundle_of(header: &[u8], envelopes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header[..HEADER].to_vec();
    for e in envelopes {
        out.extend_from_slice(&u32::try_from(e.len()).expect("small").to_be_bytes());
        out.extend_from_slice(e);
    }
    // The checksum is blake3 of everything before the marker, as is an envelope id.
    let digest = EnvelopeId::of(&out);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(envelopes.len() as u64).to_be_bytes());
    out.extend_from_slice(digest.as_bytes());
    out
}

/// The 0-based position of the entry whose envelope id is `envelope`.
fn entry_of(bytes: &[u8], envelope: &str) -> usize {
    entries(bytes)
        .iter()
        .position(|r| EnvelopeId::of(&bytes[r.clone()]).to_hex() == envelope)
        .unwrap_or_else(|| panic!("envelope {envelope} is not in the bundle"))
}

/// The envelope id of an item's first version, from `history`.
fn first_envelope(node: &Node, item: &str) -> String {
    let h = node.json(&["history", item]);
    str_of(&array(&h["versions"])[0]["envelope"]).to_string()
}

fn hex_bytes(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "{s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Delegation and attribution across three nodes

#[test]
fn a_key_reads_aloud_as_the_same_six_words_at_the_site_and_at_the_admin() {
    let dir = tempfile::tempdir().expect("make test dir");
    let a = Node::at(dir.path(), "A");
    let c = Node::at(dir.path(), "C");
    a.ok(&["init", "--establishment", ALPHA]);
    let generated = c.run(&["key", "generate", "establishment"]);
    assert!(generated.status.success());
    let key = String::from_utf8_lossy(&generated.stdout)
        .trim()
        .to_string();
    assert_eq!(
        key.len(),
        64,
        "stdout holds the key alone, for scripts: {key}"
    );
    let stderr = String::from_utf8_lossy(&generated.stderr);
    let words = stderr
        .trim()
        .strip_prefix("read aloud to check it: ")
        .unwrap_or_else(|| panic!("the words are shown: {stderr}"));
    assert_eq!(words.split(' ').count(), 6, "{words}");
    let admitted = a.ok(&["trust", "admit", "--key", &key, "--name", "HMP Charlie"]);
    assert!(
        admitted.contains(&format!("its key reads aloud as: {words}")),
        "{admitted}"
    );
    let shown = a.ok(&["trust", "show", "HMP Charlie"]);
    assert!(
        shown.contains(&format!("reads aloud as: {words}")),
        "{shown}"
    );
    // Another key reads otherwise.
    let other = Node::at(dir.path(), "D").run(&["key", "generate", "establishment"]);
    assert!(!String::from_utf8_lossy(&other.stderr).contains(words));
}

#[test]
fn an_import_says_what_arrived_by_title_and_by_name() {
    let net = Net::new();
    let file = net.item("wound.md", NALOXONE, "Wound care at Bravo");
    let id = net.b.publish(&file);
    let bundle = net.file("b.bundle");
    net.b.export(&bundle);
    let said = net.a.ok(&["bundle", "import", path_str(&bundle)]);
    assert!(
        said.contains(&format!(
            "new item from {BRAVO}: Wound care at Bravo ({}, version 1)",
            &id[..8]
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("trust: {LEAD} may act for {BRAVO} as person")),
        "{said}"
    );
    let revised = net.file("wound-2.md");
    std::fs::write(
        &revised,
        std::fs::read_to_string(&file)
            .expect("read")
            .replace("review_due: 2027-02-10", "review_due: 2028-02-10"),
    )
    .expect("write");
    net.b.ok(&["revise", &id, path_str(&revised)]);
    net.b.export(&bundle);
    let said = net.a.ok(&["bundle", "import", path_str(&bundle)]);
    assert!(
        said.contains(&format!(
            "revised by {BRAVO}: Wound care at Bravo ({}, now version 2)",
            &id[..8]
        )),
        "{said}"
    );
    assert!(!said.contains("trust:"), "nothing new in trust: {said}");
}

#[test]
fn a_revoked_person_who_publishes_is_told_in_plain_words() {
    let net = Net::new();
    let (d, d_key) = net.deputy();
    net.b.ok(&[
        "--yes",
        "member",
        "remove",
        &d_key[..8],
        "--reason",
        "left the service",
    ]);
    carry(&net.b, &d, &net.file("b.bundle"));
    let (_, err) = d.fails(
        &[
            "publish",
            path_str(&net.item("late.md", NALOXONE, "Late draft")),
        ],
        2,
    );
    assert!(
        err.contains("your key may not make that change, so nothing was signed or stored")
            && err.contains("revoked"),
        "{err}"
    );
    assert!(
        !err.contains("Rejected(") && !err.contains("KeyRevoked"),
        "{err}"
    );
}

#[test]
fn deputy_publishes_and_the_item_reaches_the_admin_attributed_to_deputy_and_establishment() {
    let net = Net::new();
    let (d, d_key) = net.deputy();
    let title = "Take-home naloxone (deputy's draft)";
    let id = d.publish(&net.item("deputy.md", NALOXONE, title));

    let at_b = carry(&d, &net.b, &net.file("d.bundle"));
    assert_eq!(at_b["new"], 1, "{at_b}");
    let at_a = carry(&net.b, &net.a, &net.file("b.bundle"));
    assert!(
        at_a["pending"].as_object().is_some_and(|m| m.is_empty()),
        "{at_a}"
    );
    assert!(
        at_a["rejected"].as_object().is_some_and(|m| m.is_empty()),
        "{at_a}"
    );
    assert!(
        at_a["refused"].as_object().is_some_and(|m| m.is_empty()),
        "{at_a}"
    );

    let shown = net.a.json(&["show", &id]);
    assert_eq!(str_of(&shown["title"]), title);
    assert_eq!(shown["version"], 1);
    assert_eq!(str_of(&shown["establishment"]["name"]), BRAVO, "{shown}");
    let signers = array(&shown["signed_by"]);
    assert_eq!(signers.len(), 1, "{shown}");
    assert_eq!(str_of(&signers[0]["name"]), DEPUTY);
    assert_eq!(str_of(&signers[0]["key"]), d_key);

    let history = net.a.json(&["history", &id]);
    let versions = array(&history["versions"]);
    assert_eq!(versions.len(), 1, "{history}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(str_of(&versions[0]["action"]), "publish");
    assert_eq!(str_of(&versions[0]["signer"]["name"]), DEPUTY);
    assert_eq!(str_of(&versions[0]["signer"]["key"]), d_key);
    assert_eq!(str_of(&versions[0]["establishment"]["name"]), BRAVO);

    // The admin's listing and trust list agree.
    let list = net.a.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(str_of(&list[0]["establishment"]["name"]), BRAVO);
    let trust = net.a.json(&["trust", "list"]);
    let bravo = array(&trust["establishments"])
        .into_iter()
        .find(|e| e["name"] == BRAVO)
        .expect("HMP Bravo in trust list");
    assert_eq!(bravo["items"], 1, "{bravo}");
    let deputy = array(&bravo["members"])
        .into_iter()
        .find(|m| m["key"] == d_key.as_str())
        .expect("the deputy among HMP Bravo's members");
    assert_eq!(str_of(&deputy["name"]), DEPUTY);
    assert_eq!(deputy["revoked"], false);
}

// ---------------------------------------------------------------------------
// 2. A leaver's late change, arriving before or after the revocation

#[test]
fn leavers_late_revision_is_rejected_whichever_bundle_arrives_first() {
    let net = Net::new();
    let (d, d_key) = net.deputy();
    let v1_title = "Naloxone at release, version one";
    let id = d.publish(&net.item("v1.md", NALOXONE, v1_title));
    carry(&d, &net.b, &net.file("d1.bundle"));
    carry(&net.b, &net.a, &net.file("b1.bundle"));
    assert_eq!(net.a.json(&["show", &id])["version"], 1);

    // The lead revokes the deputy, who has left; what the deputy signed stays.
    // By the first 10 characters, as listings show keys.
    let removed = net.b.json(&["member", "remove", &d_key[..10], "--yes"]);
    assert!(
        removed["kept"].as_u64().is_some_and(|k| k >= 1),
        "{removed}"
    );
    let revocation = net.file("b-revocation.bundle");
    net.b.export(&revocation);

    // The deputy, not knowing, revises the item on their own node.
    let v2_title = "Naloxone at release, version two";
    let revised = d.json(&[
        "revise",
        &id,
        path_str(&net.item("v2.md", NALOXONE, v2_title)),
    ]);
    assert_eq!(revised["version"], 2, "{revised}");
    let late = net.file("d-late.bundle");
    d.export(&late);

    // Two copies of the admin's node take the bundles in opposite orders.
    let a2 = net.node("A2");
    copy_dir(&net.a.home, &a2.home);
    net.a.import(&revocation);
    net.a.import(&late);
    a2.import(&late);
    a2.import(&revocation);

    for node in [&net.a, &a2] {
        let shown = node.json(&["show", &id]);
        assert_eq!(shown["version"], 1, "{}: {shown}", node.home.display());
        assert_eq!(str_of(&shown["title"]), v1_title);
        assert_eq!(str_of(&shown["signed_by"][0]["name"]), DEPUTY);
        let history = node.json(&["history", &id]);
        assert_eq!(array(&history["versions"]).len(), 1, "{history}");
        let status = node.status();
        assert_eq!(
            count(&status["rejected"], KEY_REVOKED),
            1,
            "{}: {status}",
            node.home.display()
        );
        let listed = node.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(str_of(&listed[0]["title"]), v1_title);
    }
    assert_eq!(net.a.ok(&["--json", "list"]), a2.ok(&["--json", "list"]));
    assert_eq!(net.a.show_text(&id), a2.show_text(&id));
    assert_eq!(
        net.a.ok(&["--json", "history", &id]),
        a2.ok(&["--json", "history", &id])
    );
    assert_eq!(
        net.a.ok(&["--json", "status"]),
        a2.ok(&["--json", "status"])
    );

    // The lead's node rejects the late revision too, and lists the key as revoked.
    net.b.import(&late);
    assert_eq!(net.b.json(&["show", &id])["version"], 1);
    let members = net.b.json(&["member", "list"]);
    let deputy = array(&members["members"])
        .into_iter()
        .find(|m| m["key"] == d_key.as_str())
        .expect("deputy listed");
    assert_eq!(deputy["revoked"], true, "{members}");
}

// ---------------------------------------------------------------------------
// 3. A compromised key: nothing it signed stays

#[test]
fn compromised_deputy_key_takes_its_items_out_of_list_search_and_show() {
    let net = Net::new();
    let (d, d_key) = net.deputy();
    let id = d.publish(&net.item("d.md", NALOXONE, "Naloxone kits in property"));
    carry(&d, &net.b, &net.file("d.bundle"));
    carry(&net.b, &net.a, &net.file("b1.bundle"));
    assert_eq!(net.a.list_ids(), set(&[&id]));
    let found = net.a.json(&["search", "naloxone"]);
    assert!(
        array(&found["results"])
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "{found}"
    );

    let revoked = net
        .b
        .json(&["member", "remove", &d_key, "--compromised", "--yes"]);
    assert_eq!(revoked["kept"], 0, "{revoked}");
    assert!(net.b.list_ids().is_empty(), "gone at the lead's node too");
    carry(&net.b, &net.a, &net.file("b2.bundle"));

    assert!(net.a.list_ids().is_empty(), "{:?}", net.a.list());
    let found = net.a.json(&["search", "naloxone"]);
    assert!(array(&found["results"]).is_empty(), "{found}");
    let (_, err) = net.a.fails(&["show", &id], 2);
    assert!(err.contains(&id), "{err}");
    let status = net.a.status();
    assert_eq!(status["items"], 0, "{status}");
    assert_eq!(count(&status["rejected"], KEY_REVOKED), 1, "{status}");

    // A later "left the service" revocation does not bring the item back:
    // every revocation of a key must keep an envelope for it to stay.
    let again = net.a.json(&["trust", "revoke", "--key", &d_key, "--yes"]);
    assert_eq!(str_of(&again["judgement"]["state"]), "accepted", "{again}");
    assert!(net.a.list_ids().is_empty());
    net.a.fails(&["show", &id], 2);
}

// ---------------------------------------------------------------------------
// 4. Rotating the lead's publishing key

#[test]
fn rotated_member_key_keeps_old_items_attributed_and_publishes_new_ones() {
    let net = Net::new();
    let old_key = net.b.key("member");
    let old_item = net
        .b
        .publish(&net.item("old.md", DENTAL, "Dental triage before rotation"));
    carry(&net.b, &net.a, &net.file("b1.bundle"));

    let rotated = net.b.json(&["key", "rotate", "member"]);
    let new_key = str_of(&rotated["key"]).to_string();
    assert_ne!(new_key, old_key);
    assert_eq!(net.b.key("member"), new_key);
    let new_item = net
        .b
        .publish(&net.item("new.md", HEP_C, "Hepatitis C after rotation"));
    let revised = net.b.json(&[
        "revise",
        &old_item,
        path_str(&net.item("old2.md", DENTAL, "Dental triage, revised after rotation")),
    ]);
    assert_eq!(revised["version"], 2);
    carry(&net.b, &net.a, &net.file("b2.bundle"));

    assert_eq!(net.a.list_ids(), set(&[&old_item, &new_item]));
    let status = net.a.status();
    assert!(
        status["rejected"].as_object().is_some_and(|m| m.is_empty()),
        "{status}"
    );
    let history = net.a.json(&["history", &old_item]);
    let versions = array(&history["versions"]);
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(str_of(&versions[0]["signer"]["key"]), old_key);
    assert_eq!(str_of(&versions[0]["signer"]["name"]), LEAD);
    assert_eq!(str_of(&versions[0]["establishment"]["name"]), BRAVO);
    assert_eq!(str_of(&versions[1]["signer"]["key"]), new_key);
    assert_eq!(str_of(&versions[1]["establishment"]["name"]), BRAVO);
    let v1 = net.a.json(&["show", &old_item, "--version", "1"]);
    assert_eq!(str_of(&v1["title"]), "Dental triage before rotation");
    let shown = net.a.json(&["show", &new_item]);
    assert_eq!(str_of(&shown["signed_by"][0]["key"]), new_key);
    assert_eq!(str_of(&shown["establishment"]["name"]), BRAVO);

    // The old key is listed as revoked, the new one in force, on both nodes.
    for node in [&net.a, &net.b] {
        let trust = node.json(&["trust", "list"]);
        let bravo = array(&trust["establishments"])
            .into_iter()
            .find(|e| e["name"] == BRAVO)
            .expect("HMP Bravo listed");
        let members = array(&bravo["members"]);
        let state = |k: &str| {
            members
                .iter()
                .find(|m| m["key"] == k)
                .unwrap_or_else(|| panic!("{k} not among {members:?}"))["revoked"]
                .clone()
        };
        assert_eq!(state(&old_key), true);
        assert_eq!(state(&new_key), false);
    }
}

// ---------------------------------------------------------------------------
// 5. Outsiders

#[test]
fn bundle_from_another_network_is_refused_and_uninvited_keys_cannot_join() {
    let net = Net::new();
    let c = net.node("C");
    let c_init = c.json(&["init", "--establishment", "HMP Charlie"]);
    c.publish(&net.item("c.md", NALOXONE, "Charlie's naloxone"));
    let c_bundle = net.file("c.bundle");
    c.export(&c_bundle);

    let before = net.a.ok(&["--json", "status"]);
    let (_, err) = net.a.fails(&["bundle", "import", path_str(&c_bundle)], 2);
    let a_network = str_of(&net.a.status()["network"]).to_string();
    assert!(err.contains("network"), "{err}");
    assert!(err.contains(str_of(&c_init["network"])), "{err}");
    assert!(err.contains(&a_network), "{err}");
    assert_eq!(net.a.ok(&["--json", "status"]), before, "nothing stored");
    assert!(net.a.list_ids().is_empty());

    // A site whose key no admin admitted cannot join with someone else's invitation.
    let e = net.node("E");
    e.ok(&["key", "generate", "establishment"]);
    let (_, err) = e.fails(
        &["init", "--join", path_str(&net.file("inviteB.bundle"))],
        2,
    );
    assert!(err.contains("admits none of this node's keys"), "{err}");
}

#[test]
fn change_to_another_establishments_item_is_rejected() {
    use gatehouse_protocol::automerge::AutoCommit;
    use gatehouse_protocol::automerge::transaction::CommitOptions;
    use gatehouse_protocol::change::{ChangePayload, actor_id};
    use gatehouse_protocol::envelope::{Body, Envelope, Verified};
    use gatehouse_protocol::id::NetworkId;

    // The CLI refuses to sign such a change, so it is built here the way a
    // modified node would: HMP Alpha's lead signs a revision of Bravo's item.
    let net = Net::new();
    let title = "Bravo's dental triage";
    let id = net.b.publish(&net.item("b.md", DENTAL, title));
    let b_bundle = net.file("b.bundle");
    carry(&net.b, &net.a, &b_bundle);

    let bytes = std::fs::read(&b_bundle).expect("read bundle");
    let network = NetworkId(bytes[9..HEADER].try_into().expect("32 bytes"));
    let publish = &bytes[entries(&bytes)[entry_of(&bytes, &first_envelope(&net.b, &id))].clone()];
    let original = Envelope::open(publish, &network).expect("valid envelope");
    let Body::Change(c) = original.body() else {
        panic!("not a change");
    };
    let alpha_lead = gatehouse_node::home::Home::new(&net.a.home)
        .read_key("member")
        .expect("read key")
        .expect("A has a publishing key");
    let mut doc = AutoCommit::new();
    doc.apply_changes(vec![c.change.clone()])
        .expect("apply Bravo's change");
    doc.set_actor(actor_id(&alpha_lead.public(), &[7; 16]));
    let content =
        gatehouse_node::authoring::draft::parse(&with_title(DENTAL, "Overwritten by Alpha"), &[])
            .expect("valid item");
    gatehouse_protocol::item::write_version(&mut doc, &content, &alpha_lead.public())
        .expect("write version");
    doc.commit_with(CommitOptions::default().with_message("revise"));
    let change = doc.get_last_local_change().expect("a change");
    let forged = Verified::sign(
        Body::Change(Box::new(ChangePayload {
            item: c.item,
            owner: c.owner,
            salt: c.salt,
            change,
        })),
        &alpha_lead,
        &network,
        original.created_ms() + 1,
    );
    let file = net.file("forged.bundle");
    std::fs::write(&file, bundle_of(&bytes, &[forged.bytes().to_vec()])).expect("write bundle");

    for node in [&net.a, &net.b] {
        let report = node.import(&file);
        assert_eq!(
            count(&report["rejected"], ANOTHER_ESTABLISHMENT),
            1,
            "{report}"
        );
        let shown = node.json(&["show", &id]);
        assert_eq!(shown["version"], 1, "{shown}");
        assert_eq!(str_of(&shown["title"]), title);
        let status = node.status();
        assert_eq!(
            count(&status["rejected"], ANOTHER_ESTABLISHMENT),
            1,
            "{status}"
        );
    }
}

// ---------------------------------------------------------------------------
// 6. A removed establishment

#[test]
fn removed_establishment_keeps_its_history_but_cannot_publish_more() {
    let net = Net::new();
    let before = net
        .b
        .publish(&net.item("b1.md", DENTAL, "Dental triage before removal"));
    carry(&net.b, &net.a, &net.file("b1.bundle"));

    let removal = net.a.json(&[
        "--yes",
        "trust",
        "revoke",
        "--establishment",
        BRAVO,
        "--reason",
        "closed",
    ]);
    assert!(
        removal["kept"].as_u64().is_some_and(|k| k >= 1),
        "{removal}"
    );
    let trust = net.a.json(&["trust", "list"]);
    let bravo = array(&trust["establishments"])
        .into_iter()
        .find(|e| e["name"] == BRAVO)
        .expect("HMP Bravo still listed");
    assert_eq!(bravo["removed"], true, "{bravo}");

    // Bravo, unaware, publishes again.
    let after = net
        .b
        .publish(&net.item("b2.md", HEP_C, "Hepatitis C after removal"));
    carry(&net.b, &net.a, &net.file("b2.bundle"));

    assert_eq!(net.a.list_ids(), set(&[&before]));
    let status = net.a.status();
    assert_eq!(
        count(&status["rejected"], ESTABLISHMENT_REMOVED),
        1,
        "{status}"
    );
    net.a.fails(&["show", &after], 2);
    let shown = net.a.json(&["show", &before]);
    assert_eq!(str_of(&shown["establishment"]["name"]), BRAVO);
    assert_eq!(str_of(&shown["signed_by"][0]["name"]), LEAD);
}

// ---------------------------------------------------------------------------
// 7. Admin-set changes need a threshold of admins

#[test]
fn admin_set_change_waits_for_a_second_admin_when_threshold_is_two() {
    let dir = tempfile::tempdir().expect("make test dir");
    let a = Node::at(dir.path(), "A");
    let x = Node::at(dir.path(), "X");
    a.json(&["init", "--establishment", ALPHA]);
    let a_admin = a.key("admin");
    let x_est = x.ok(&["key", "generate", "establishment"]);
    let x_admin = x.ok(&["key", "generate", "admin"]).trim().to_string();
    let invite = dir.path().join("inviteX.bundle");
    a.json(&[
        "trust",
        "admit",
        "--key",
        x_est.trim(),
        "--name",
        "HMP Xray",
        "--invite",
        path_str(&invite),
    ]);
    x.json(&["init", "--join", path_str(&invite)]);

    let added = a.json(&["network", "admins", "--add", &x_admin, "--threshold", "2"]);
    assert_eq!(str_of(&added["judgement"]["state"]), "accepted", "{added}");
    let shown = a.json(&["network", "show"]);
    assert_eq!(strings(&shown["admins"]), set(&[&a_admin, &x_admin]));
    assert_eq!(shown["threshold"], 2);

    // One admin alone proposes removing the other: it waits.
    let proposal = a.json(&[
        "network",
        "admins",
        "--remove",
        &x_admin,
        "--threshold",
        "1",
    ]);
    let proposal_id = str_of(&proposal["id"]).to_string();
    assert_eq!(
        str_of(&proposal["judgement"]["state"]),
        "pending",
        "{proposal}"
    );
    assert_eq!(
        str_of(&proposal["judgement"]["reason"]),
        "needs-endorsements"
    );
    // Endorsing one's own proposal does not count twice.
    let self_endorsed = a.json(&["network", "endorse", &proposal_id]);
    assert_eq!(
        str_of(&self_endorsed["judgement"]["state"]),
        "pending",
        "{self_endorsed}"
    );
    let shown = a.json(&["network", "show"]);
    assert_eq!(strings(&shown["admins"]), set(&[&a_admin, &x_admin]));
    assert_eq!(shown["threshold"], 2);
    assert_eq!(array(&shown["admin_chain"]).len(), 2, "{shown}");
    assert_eq!(count(&a.status()["pending"], NEEDS_ENDORSEMENTS), 1);

    // The second admin gets the proposal and endorses it.
    carry(&a, &x, &dir.path().join("a.bundle"));
    let x_view = x.json(&["network", "show"]);
    assert_eq!(strings(&x_view["admins"]), set(&[&a_admin, &x_admin]));
    let endorsed = x.json(&["network", "endorse", &proposal_id]);
    assert_eq!(
        str_of(&endorsed["judgement"]["state"]),
        "accepted",
        "{endorsed}"
    );
    assert_eq!(
        strings(&x.json(&["network", "show"])["admins"]),
        set(&[&a_admin])
    );

    carry(&x, &a, &dir.path().join("x.bundle"));
    let shown = a.json(&["network", "show"]);
    assert_eq!(strings(&shown["admins"]), set(&[&a_admin]), "{shown}");
    assert_eq!(shown["threshold"], 1);
    assert_eq!(array(&shown["admin_chain"]).len(), 3, "{shown}");
    assert_eq!(str_of(&array(&shown["admin_chain"])[2]), proposal_id);
    assert_eq!(strings(&shown["removed_admins"]), set(&[&x_admin]));
    assert_eq!(count(&a.status()["pending"], NEEDS_ENDORSEMENTS), 0);
}

// ---------------------------------------------------------------------------
// 8. Damaged, forged and foreign bundle files

/// A network where HMP Bravo's lead has published three items, B's whole
/// bundle, and A untouched (copied fresh for each damaged import).
struct BundleCase {
    net: Net,
    bytes: Vec<u8>,
    /// (item id, 0-based entry position), in file order.
    items: Vec<(String, usize)>,
}

impl BundleCase {
    fn new() -> Self {
        let net = Net::new();
        let mut items = Vec::new();
        for (i, (rel, title)) in [
            (NALOXONE, "Bundle item one"),
            (DENTAL, "Bundle item two"),
            (HEP_C, "Bundle item three"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = net.b.publish(&net.item(&format!("item{i}.md"), rel, title));
            items.push(id);
        }
        let file = net.file("b.bundle");
        net.b.export(&file);
        let bytes = std::fs::read(&file).expect("read bundle");
        let mut items: Vec<(String, usize)> = items
            .into_iter()
            .map(|id| {
                let pos = entry_of(&bytes, &first_envelope(&net.b, &id));
                (id, pos)
            })
            .collect();
        items.sort_by_key(|(_, pos)| *pos);
        Self { net, bytes, items }
    }

    /// A fresh copy of A's node as it was before any import.
    fn fresh_a(&self, name: &str) -> Node {
        let node = self.net.node(name);
        copy_dir(&self.net.a.home, &node.home);
        node
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.net.file(name);
        std::fs::write(&path, bytes).expect("write bundle");
        path
    }

    /// The bundle with entry `pos` replaced by `envelope`, end marker fixed.
    fn replacing(&self, pos: usize, envelope: Vec<u8>) -> Vec<u8> {
        let mut all: Vec<Vec<u8>> = entries(&self.bytes)
            .into_iter()
            .map(|r| self.bytes[r].to_vec())
            .collect();
        all[pos] = envelope;
        bundle_of(&self.bytes, &all)
    }

    fn ids_except(&self, gone: &str) -> BTreeSet<String> {
        self.items
            .iter()
            .filter(|(id, _)| id != gone)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[test]
fn truncated_bundle_stores_what_came_before_the_break_and_says_where() {
    let case = BundleCase::new();
    let all = entries(&case.bytes);
    let (cut_item, pos) = case.items[1].clone();
    let body = all[pos].clone();
    let cut = body.start + body.len() / 2;
    let file = case.write("truncated.bundle", &case.bytes[..cut]);

    let a = case.fresh_a("Atrunc");
    let before = a.envelopes();
    let (stdout, err) = a.fails(&["--json", "bundle", "import", path_str(&file)], 2);
    let prefix_offset = body.start - 4;
    assert!(
        err.contains(&format!("entry {} at byte {prefix_offset}", pos + 1)),
        "{err}"
    );
    assert!(err.contains("truncated"), "{err}");
    let report = parse_json(&stdout, &["bundle", "import"]);
    assert_eq!(report["read"].as_u64(), Some(pos as u64), "{report}");
    // Every entry before the break is stored; A already held its certificates.
    assert_eq!(report["duplicate"].as_u64(), Some(before), "{report}");
    assert_eq!(a.envelopes(), pos as u64, "{}", a.ok(&["status"]));
    let expected: BTreeSet<String> = case
        .items
        .iter()
        .filter(|(_, p)| *p < pos)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!expected.is_empty() && !expected.contains(&cut_item));
    assert_eq!(a.list_ids(), expected);

    // The whole file, later, brings the rest.
    let whole = case.write("whole.bundle", &case.bytes);
    a.import(&whole);
    assert_eq!(a.list_ids(), case.ids_except(""));
    assert_eq!(a.envelopes(), all.len() as u64);
}

#[test]
fn entry_with_a_damaged_signature_is_refused_and_the_rest_stored() {
    let case = BundleCase::new();
    let all = entries(&case.bytes);
    let (bad_item, pos) = case.items[0].clone();
    let mut envelope = case.bytes[all[pos].clone()].to_vec();
    let sig_byte = envelope.len() - 10;
    envelope[sig_byte] ^= 0x5a;
    let file = case.write("flipped.bundle", &case.replacing(pos, envelope));

    let a = case.fresh_a("Aflip");
    let report = a.import(&file);
    let refusals = array(&report["refusals"]);
    assert_eq!(refusals.len(), 1, "{report}");
    assert_eq!(
        refusals[0]["index"].as_u64(),
        Some(pos as u64 + 1),
        "{report}"
    );
    assert_eq!(
        refusals[0]["offset"].as_u64(),
        Some(all[pos].start as u64 - 4)
    );
    assert!(
        str_of(&refusals[0]["reason"]).contains("signature does not verify"),
        "{report}"
    );
    assert_eq!(report["read"].as_u64(), Some(all.len() as u64));
    assert_eq!(a.envelopes(), all.len() as u64 - 1);
    assert_eq!(a.list_ids(), case.ids_except(&bad_item));
    assert!(
        a.status()["rejected"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "a refused entry is not stored at all"
    );

    // Without a fixed checksum the file is reported damaged (exit 2), yet
    // the valid entries are stored all the same.
    let mut raw = case.bytes.clone();
    raw[all[pos].end - 10] ^= 0x5a;
    let file = case.write("flipped-raw.bundle", &raw);
    let a = case.fresh_a("Aflipraw");
    let (stdout, err) = a.fails(&["--json", "bundle", "import", path_str(&file)], 2);
    assert!(err.contains("checksum"), "{err}");
    let report = parse_json(&stdout, &["bundle", "import"]);
    assert_eq!(array(&report["refusals"]).len(), 1, "{report}");
    assert_eq!(a.list_ids(), case.ids_except(&bad_item));
}

#[test]
fn envelope_with_a_substituted_signer_is_refused() {
    let case = BundleCase::new();
    let all = entries(&case.bytes);
    let (forged_item, pos) = case.items[2].clone();
    let mut envelope = case.bytes[all[pos].clone()].to_vec();
    // The signer field of an envelope is bytes 34..66; put HMP Alpha's lead's key there.
    let other = hex_bytes(&case.net.a.key("member"));
    assert_ne!(&envelope[34..66], other.as_slice());
    envelope[34..66].copy_from_slice(&other);
    let file = case.write("forged.bundle", &case.replacing(pos, envelope));

    let a = case.fresh_a("Aforged");
    let text = a.ok(&["bundle", "import", path_str(&file)]);
    assert!(
        text.contains(&format!(
            "refused  entry {} at byte {}",
            pos + 1,
            all[pos].start - 4
        )),
        "{text}"
    );
    assert!(text.contains("signature does not verify"), "{text}");
    assert_eq!(a.envelopes(), all.len() as u64 - 1);
    assert_eq!(a.list_ids(), case.ids_except(&forged_item));
}

#[test]
fn file_that_is_not_a_bundle_is_refused() {
    let case = BundleCase::new();
    let a = case.fresh_a("Anot");
    let before = a.ok(&["--json", "status"]);
    for (name, bytes) in [
        ("item.md", sample_text(NALOXONE).into_bytes()),
        ("empty.bundle", Vec::new()),
        ("short.bundle", b"GHBUN".to_vec()),
    ] {
        let file = case.write(name, &bytes);
        let (_, err) = a.fails(&["bundle", "import", path_str(&file)], 2);
        assert!(err.contains("not a gatehouse bundle"), "{name}: {err}");
    }
    assert_eq!(a.ok(&["--json", "status"]), before);
    assert!(a.list_ids().is_empty());
}

// ---------------------------------------------------------------------------
// 9. Exporting only recent envelopes

#[test]
fn export_since_a_future_date_holds_only_certificates() {
    let case = BundleCase::new();
    let b = &case.net.b;
    let status = b.status();
    let file = case.net.file("since.bundle");
    let out = b.json(&["bundle", "export", path_str(&file), "--since", "2999-01-01"]);
    assert_eq!(out["envelopes"], status["certificates"], "{out} {status}");
    let bytes = std::fs::read(&file).expect("read bundle");
    assert_eq!(
        entries(&bytes).len() as u64,
        status["certificates"].as_u64().expect("count")
    );
    let a = case.fresh_a("Asince");
    a.import(&file);
    assert!(a.list_ids().is_empty());
    assert_eq!(a.status()["certificates"], status["certificates"]);

    // From a date long past, everything.
    let all = b.json(&["bundle", "export", path_str(&file), "--since", "2000-01-01"]);
    assert_eq!(all["envelopes"], status["envelopes"]);
}

// ---------------------------------------------------------------------------
// Revocation authority (product bugs: see the ignore reasons)

/// Signs a certificate with the secret key `key_name` in `node`'s keys/, as
/// a modified node could, and returns the envelope bytes.
fn sign_certificate(
    node: &Node,
    key_name: &str,
    cert: gatehouse_protocol::certificate::Certificate,
) -> Vec<u8> {
    use gatehouse_protocol::envelope::{Body, Verified};
    let network: gatehouse_protocol::id::NetworkId = str_of(&node.status()["network"])
        .parse()
        .expect("network id");
    let key = gatehouse_node::home::Home::new(&node.home)
        .read_key(key_name)
        .expect("read key")
        .unwrap_or_else(|| panic!("{} has no {key_name} key", node.home.display()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    Verified::sign(
        Body::Certificate(cert),
        &key,
        &network,
        u64::try_from(now).expect("ms fit"),
    )
    .bytes()
    .to_vec()
}

/// Whether `key` is listed as revoked among `establishment`'s keys in
/// `trust list`; panics when it is not listed at all.
fn key_revoked(node: &Node, establishment: &str, key: &str) -> bool {
    let trust = node.json(&["trust", "list"]);
    let e = array(&trust["establishments"])
        .into_iter()
        .find(|e| e["name"] == establishment)
        .unwrap_or_else(|| panic!("{establishment} not in {trust}"));
    array(&e["keys"])
        .into_iter()
        .chain(array(&e["members"]))
        .find(|k| k["key"] == key)
        .unwrap_or_else(|| panic!("{key} not among {establishment}'s keys: {e}"))["revoked"]
        .as_bool()
        .expect("revoked is a bool")
}

#[test]
fn site_lead_cannot_revoke_another_establishments_key() {
    use gatehouse_protocol::certificate::{
        Certificate, Delegation, MemberRole, Revocation, RevokeTarget,
    };
    let net = Net::new();
    let alpha_item = net
        .a
        .publish(&net.item("a.md", NALOXONE, "Alpha's naloxone procedure"));
    carry(&net.a, &net.b, &net.file("a.bundle"));
    let alpha_lead = net.a.key("member");

    // Through the CLI: HMP Bravo's lead "delegates" Alpha's lead's key, then
    // revokes it as compromised. (Either step may be refused; a fix may
    // refuse them here.)
    net.b
        .run(&["member", "add", "--key", &alpha_lead, "--name", "Not ours"]);
    net.b
        .run(&["member", "remove", &alpha_lead, "--compromised", "--yes"]);
    let b_bundle = net.file("b.bundle");
    net.b.export(&b_bundle);
    // The same two certificates, as a modified node would sign them whatever
    // the CLI allows.
    let bravo: gatehouse_protocol::id::EstablishmentId =
        str_of(&net.b.status()["establishment"]["id"])
            .parse()
            .expect("establishment id");
    let member = alpha_lead.parse().expect("public key");
    let delegation = sign_certificate(
        &net.b,
        "establishment",
        Certificate::Delegate(Delegation {
            establishment: bravo,
            member,
            name: "Not ours".into(),
            role: MemberRole::Person,
        }),
    );
    let revocation = sign_certificate(
        &net.b,
        "establishment",
        Certificate::Revoke(Revocation {
            target: RevokeTarget::Key(member),
            keep: Vec::new(),
            reason: "compromised".into(),
        }),
    );
    let header = std::fs::read(&b_bundle).expect("read bundle");
    let forged = net.file("forged.bundle");
    std::fs::write(&forged, bundle_of(&header, &[delegation, revocation])).expect("write");

    net.a.import(&b_bundle);
    net.a.import(&forged);
    assert_eq!(
        net.a.list_ids(),
        set(&[&alpha_item]),
        "{}",
        net.a.ok(&["status"])
    );
    assert!(!key_revoked(&net.a, ALPHA, &alpha_lead));
    net.a
        .publish(&net.item("a2.md", DENTAL, "Alpha publishes on regardless"));
}

#[test]
/// A copy of the old establishment key, used after a rotation to revoke the
/// new one: the two keys revoke each other and nothing can tell the thief
/// from the site, so both lose their power everywhere (the same way on
/// every node). The site is not stranded: its people keep publishing, and
/// an admin admits a fresh establishment key.
fn stolen_old_establishment_key_cannot_strand_the_site() {
    use gatehouse_protocol::certificate::{Certificate, Revocation, RevokeTarget};
    let net = Net::new();
    let rotated = net.b.json(&["key", "rotate", "establishment"]);
    let successor = str_of(&rotated["key"]).to_string();
    let retired = Path::new(str_of(&rotated["retired"]))
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("retired key file name")
        .to_string();
    carry(&net.b, &net.a, &net.file("b1.bundle"));
    assert!(!key_revoked(&net.a, BRAVO, &successor));

    let revocation = sign_certificate(
        &net.b,
        &retired,
        Certificate::Revoke(Revocation {
            target: RevokeTarget::Key(successor.parse().expect("public key")),
            keep: Vec::new(),
            reason: "compromised".into(),
        }),
    );
    let header = std::fs::read(net.file("b1.bundle")).expect("read bundle");
    let file = net.file("stolen.bundle");
    std::fs::write(&file, bundle_of(&header, &[revocation])).expect("write bundle");
    net.a.import(&file);
    net.b.import(&file);
    for node in [&net.a, &net.b] {
        assert!(key_revoked(node, BRAVO, &successor));
    }
    assert_eq!(
        net.a.json(&["trust", "list"]),
        net.b.json(&["trust", "list"]),
        "both nodes reach the same view"
    );

    // Bravo's lead still publishes, and it reaches A.
    let id = net
        .b
        .publish(&net.item("b.md", NALOXONE, "Bravo carries on publishing"));
    carry(&net.b, &net.a, &net.file("b2.bundle"));
    assert!(net.a.list_ids().contains(&id));

    // An admin admits a fresh establishment key; the site delegates again.
    let fresh = net.node("fresh");
    let fresh_key = fresh
        .ok(&["key", "generate", "establishment"])
        .trim()
        .to_string();
    let bravo_id = str_of(&net.b.status()["establishment"]["id"]).to_string();
    net.a.json(&[
        "trust", "admit", "--key", &fresh_key, "--name", BRAVO, "--to", &bravo_id,
    ]);
    carry(&net.a, &net.b, &net.file("a1.bundle"));
    let keys = net.b.home.join("keys");
    std::fs::copy(
        fresh.home.join("keys/establishment.key"),
        keys.join("establishment.key"),
    )
    .expect("install the new establishment key");
    let d_key = net
        .node("D")
        .ok(&["key", "generate", "member"])
        .trim()
        .to_string();
    net.b
        .json(&["member", "add", "--key", &d_key, "--name", DEPUTY]);
    carry(&net.b, &net.a, &net.file("b3.bundle"));
    assert!(!key_revoked(&net.a, BRAVO, &d_key));
}

#[test]
fn a_lead_hides_only_their_own_sites_posts_and_an_admin_hides_any_network_wide() {
    let net = Net::new();
    let asked = net.b.json(&[
        "ask",
        "--title",
        "Naloxone on release",
        "--body",
        "Do you hand out a kit to everyone leaving?",
        "--pathway",
        "substance-misuse",
    ]);
    let question = str_of(&asked["id"]).to_string();
    carry(&net.b, &net.a, &net.file("b.bundle"));

    // Alpha's lead (also the network's founding admin) may not hide
    // Bravo's post as Alpha's lead: the refusal says what would.
    let (_, stderr) = net
        .a
        .fails(&["hide", &question[..10], "--reason", "off topic"], 2);
    assert!(stderr.contains("own establishment's staff"), "{stderr}");
    assert!(stderr.contains("--network"), "{stderr}");
    assert!(array(&net.a.json(&["moderation"])).is_empty());

    // Bravo's lead holds no admin key: a network-wide hide says where the
    // key goes.
    let (_, stderr) = net.b.fails(
        &[
            "hide",
            &question[..10],
            "--reason",
            "off topic",
            "--network",
        ],
        2,
    );
    assert!(stderr.contains("keys/admin.key"), "{stderr}");

    // As the admin it is hidden for every site, with the reason.
    net.a.json(&[
        "hide",
        &question[..10],
        "--reason",
        "names a wing and a date",
        "--network",
    ]);
    carry(&net.a, &net.b, &net.file("a.bundle"));
    for node in [&net.a, &net.b] {
        let log = array(&node.json(&["moderation"]));
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(str_of(&log[0]["post"]), question);
        assert_eq!(str_of(&log[0]["reason"]), "names a wing and a date");
        assert!(log[0]["by"]["establishment"].is_null(), "{log:?}");
        let thread = node.json(&["thread", &question[..10]]);
        assert_eq!(
            str_of(&thread["posts"][0]["hidden"]["reason"]),
            "names a wing and a date"
        );
        let text = node.ok(&["moderation"]);
        assert!(text.contains("(network admin)"), "{text}");
    }

    // Bravo's lead hides it too: it was hidden already, and the log holds
    // both hides, everywhere.
    net.b
        .json(&["hide", &question[..10], "--reason", "asked twice"]);
    carry(&net.b, &net.a, &net.file("b2.bundle"));
    for node in [&net.a, &net.b] {
        let log = array(&node.json(&["moderation"]));
        let reasons: BTreeSet<&str> = log.iter().map(|m| str_of(&m["reason"])).collect();
        assert_eq!(
            reasons,
            BTreeSet::from(["names a wing and a date", "asked twice"]),
            "{log:?}"
        );
        let thread = node.json(&["thread", &question[..10]]);
        assert_eq!(
            str_of(&thread["posts"][0]["hidden"]["reason"]),
            "names a wing and a date",
            "the first hide is the one shown"
        );
    }
}

/// Site B adopts site A's item from the command line, A revises it, B's
/// `due` says so, `take-change --check` shows the source's change and what
/// taking it gives, `take-change` signs it, and A's `show` lists B among
/// the adopters with the version it holds.
#[test]
fn a_site_adopts_another_sites_item_and_takes_its_change() {
    let net = Net::new();
    let rel = "hmp-northgate/05-take-home-naloxone-on-release.md";
    let src = net.a.publish(&net.item("src.md", rel, "Naloxone at Alpha"));
    carry(&net.a, &net.b, &net.file("one.bundle"));

    let (_, err) = net.a.fails(&["adopt", &src], 2);
    assert!(err.contains("already this establishment's"), "{err}");
    let adopted = net.b.json(&["adopt", &src[..8]]);
    let copy = str_of(&adopted["id"]).to_string();
    assert_eq!(str_of(&adopted["adopted_from"]), src, "{adopted}");
    assert_eq!(adopted["source_version"], 1);
    let shown = net.b.json(&["show", &copy]);
    assert_eq!(str_of(&shown["adoption"]["from"]), src, "{shown}");
    assert_eq!(str_of(&shown["title"]), "Naloxone at Alpha");
    assert!(
        shown["approved_by"].is_null(),
        "Alpha's approval is not Bravo's: {shown}"
    );
    assert!(!net.b.ok(&["due"]).contains("The source changed"));

    // A revises the source.
    let sentence = "Naloxone reverses opioid overdose";
    let revised = with_title(rel, "Naloxone at Alpha")
        .replace(sentence, "Naloxone quickly reverses opioid overdose");
    let file = net.file("src2.md");
    std::fs::write(&file, revised).expect("write revision");
    net.a.ok(&["revise", &src, path_str(&file)]);
    carry(&net.a, &net.b, &net.file("two.bundle"));

    let due = net.b.ok(&["due"]);
    assert!(
        due.contains("The source changed since you adopted it"),
        "{due}"
    );
    assert!(
        due.contains(&format!("take-change {} --check", &copy[..8])),
        "{due}"
    );
    let check = net.b.ok(&["take-change", &copy[..8], "--check"]);
    assert!(
        check.contains("changed from version 1 (yours) to 2")
            && check.contains("+ ")
            && check.contains("Naloxone quickly reverses"),
        "{check}"
    );
    assert!(check.contains("it would be version 2"), "{check}");
    let took = net.b.json(&["take-change", &copy, "--yes"]);
    assert_eq!(took["version"], 2, "{took}");
    assert_eq!(took["source_version"], 2, "{took}");
    let shown = net.b.json(&["show", &copy]);
    assert!(str_of(&shown["body"]).contains("Naloxone quickly reverses"));
    assert_eq!(shown["adoption"]["version"], 2);
    assert!(!net.b.ok(&["due"]).contains("The source changed"));
    let (_, err) = net.b.fails(&["take-change", &copy, "--yes"], 2);
    assert!(err.contains("already holds version 2"), "{err}");

    carry(&net.b, &net.a, &net.file("three.bundle"));
    let text = net.a.ok(&["show", &src]);
    assert!(text.contains("adopted by      1 site:"), "{text}");
    assert!(
        text.contains(&format!(
            "{}  {BRAVO}  holds version 2, the latest",
            &copy[..8]
        )),
        "{text}"
    );
}

#[test]
fn a_second_person_approves_with_their_own_key_where_the_site_needs_two() {
    let net = Net::new();
    let (d, d_key) = net.deputy();
    let rules = net.b.ok(&["rules", "--two-person-approval", "on"]);
    assert!(rules.contains("Signed revision 1"), "{rules}");
    assert!(rules.contains("a second person must approve"), "{rules}");
    assert!(net.b.ok(&["rules"]).contains("6 months before"));

    // B's lead submits a version for approval: not in force yet.
    let text = with_title(NALOXONE, "Naloxone for approval").replacen(
        "---\n",
        "---\nstatus: submitted\ndocument_owner: Head of Healthcare\n",
        1,
    );
    let file = net.file("submit.md");
    std::fs::write(&file, text).expect("write");
    let id = net.b.publish(&file);
    let shown = net.b.json(&["show", &id]);
    assert_eq!(str_of(&shown["lifecycle"]["stage"]), "submitted", "{shown}");
    assert_eq!(str_of(&shown["document_owner"]), "Head of Healthcare");

    let due = net.b.ok(&["due"]);
    assert!(
        due.contains("Submitted for approval") && due.contains("Naloxone for approval"),
        "{due}"
    );
    // The author's own approval would not count here.
    let (_, err) = net.b.fails(&["approve", &id], 2);
    assert!(err.contains("requires a second person"), "{err}");
    assert!(err.contains("--key"), "{err}");

    // The deputy approves with their own key file, and it is published.
    let key_file = d.home.join("keys").join("member.key");
    let approved = net
        .b
        .json(&["approve", &id[..8], "--key", path_str(&key_file)]);
    assert_eq!(approved["published"], true, "{approved}");
    let shown = net.b.json(&["show", &id]);
    assert_eq!(str_of(&shown["status"]), "published");
    let counted = &shown["lifecycle"]["approved"];
    assert_eq!(str_of(&counted["approver"]["key"]), d_key, "{shown}");
    let text = net.b.ok(&["show", &id]);
    assert!(text.contains(&format!("approved by {DEPUTY}")), "{text}");
    let history = net.b.json(&["history", &id]);
    let last = array(&history["versions"]).pop().expect("a change");
    assert_eq!(str_of(&last["action"]), "approve and publish");
    assert_eq!(str_of(&last["signer"]["key"]), d_key);

    // Reviewed with no change: the date moves three years on.
    let reviewed = net.b.json(&["review", &id, "--key", path_str(&key_file)]);
    let next = str_of(&reviewed["review_due"]).to_string();
    assert_eq!(str_of(&net.b.json(&["show", &id])["review_due"]), next);
    assert!(!net.b.ok(&["due"]).contains("Naloxone for approval"));

    // The admin's node, given B's envelopes, shows the same.
    carry(&net.b, &net.a, &net.file("approved.bundle"));
    let at_a = net.a.json(&["show", &id]);
    assert_eq!(
        str_of(&at_a["lifecycle"]["approved"]["approver"]["key"]),
        d_key
    );
    assert_eq!(at_a["lifecycle"]["rules"]["two_person_approval"], true);
}

#[test]
fn a_bundle_cut_to_a_sites_receipt_carries_only_what_it_lacks_with_files_in_parts() {
    let net = Net::new();
    // B's certificates reach A first (the receipt is signed by B's node).
    let certs = net.file("b-certs.bundle");
    carry(&net.b, &net.a, &certs);
    // B sends what it holds; A keeps it.
    let receipt = net.file("b.receipt");
    net.b
        .ok(&["bundle", "receipt", "--out", path_str(&receipt)]);
    let kept = net.a.json(&["bundle", "import", path_str(&receipt)]);
    assert_eq!(str_of(&kept["site"]), BRAVO, "{kept}");

    // A publishes an item with a 3 MB scan while B is cut off.
    let scan = net.file("observations-chart.png");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8));
    std::fs::write(&scan, &png).expect("write");
    let item = net.item("obs.md", NALOXONE, "Observations chart");
    let id = str_of(
        &net.a
            .json(&["publish", path_str(&item), "--attach", path_str(&scan)])["id"],
    )
    .to_string();

    // Cut to B's receipt, in parts of at most 2 MiB.
    let out = net.file("for-bravo.bundle");
    let written = net.a.json(&[
        "bundle",
        "export",
        path_str(&out),
        "--for",
        BRAVO,
        "--max-size",
        "2M",
    ]);
    let parts: Vec<String> = array(&written["parts"])
        .iter()
        .map(|p| str_of(p).to_string())
        .collect();
    assert!(parts.len() >= 2, "{written}");
    assert_eq!(written["files"], 1, "{written}");
    // Only the new item's envelope: B held everything else.
    assert_eq!(written["envelopes"], 1, "{written}");
    for p in &parts {
        let size = std::fs::metadata(p).expect("part").len();
        assert!(size <= 2 * 1024 * 1024, "{p} is {size} bytes");
    }
    // Imported in order, B holds the item and the whole scan, checked.
    let mut files = 0;
    for p in &parts {
        let report = net.b.json(&["bundle", "import", p]);
        files += report["files"].as_u64().unwrap_or(0);
    }
    assert_eq!(files, 1);
    assert!(net.b.list_ids().contains(&id));
    let shown = net.b.json(&["show", &id]);
    let hash = str_of(&shown["attachments"][0]["hash"]).to_string();
    let held = std::fs::read(net.b.home.join("blobs").join(&hash)).expect("the scan at B");
    assert!(held == png, "the scan arrived changed");

    // A new receipt from B: nothing is left to send.
    net.b
        .ok(&["bundle", "receipt", "--out", path_str(&receipt)]);
    net.a.json(&["bundle", "import", path_str(&receipt)]);
    let again = net
        .a
        .json(&["bundle", "export", path_str(&out), "--for", BRAVO]);
    assert_eq!(
        (again["envelopes"].as_u64(), again["files"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );

    // A receipt changed on the way is refused.
    let mut bytes = std::fs::read(&receipt).expect("read");
    // A byte of the first envelope id listed.
    bytes[140] ^= 1;
    std::fs::write(&receipt, &bytes).expect("write");
    let (_, err) = net.a.fails(&["bundle", "import", path_str(&receipt)], 2);
    assert!(err.contains("signature does not verify"), "{err}");
    // A site with no receipt kept is told how to get one.
    let (_, err) = net
        .b
        .fails(&["bundle", "export", path_str(&out), "--for", ALPHA], 2);
    assert!(err.contains("bundle receipt"), "{err}");
}
