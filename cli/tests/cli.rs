//! End-to-end tests of the `gatehouse` command line: each test runs the built
//! binary against a fresh data directory and checks what a user would see.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/library");
const ESTABLISHMENT: &str = "HMP Example";

/// The naloxone procedure used throughout.
const NALOXONE: &str = "hmp-northgate/05-take-home-naloxone-on-release.md";
/// A policy, review due 2026-04-01.
const POLICY: &str = "hmp-northgate/01-in-possession-medication-risk-assessment.md";
/// A procedure, review due 2027-01-15.
const SCREENING: &str = "hmp-northgate/02-first-night-health-screening.md";
/// A guideline, review due 2027-06-30; does not mention naloxone.
const ALCOHOL: &str = "hmp-northgate/03-alcohol-withdrawal-ciwa-ar.md";
/// A procedure that mentions naloxone in passing.
const OST: &str = "hmp-northgate/04-ost-induction-and-titration.md";
/// A QI initiative, review due 2027-05-31.
const QI: &str = "hmp-northgate/07-reducing-missed-hospital-appointments-pdsa.md";

fn sample(rel: &str) -> PathBuf {
    Path::new(SAMPLES).join(rel)
}

fn read_sample(rel: &str) -> String {
    std::fs::read_to_string(sample(rel)).expect("read sample file")
}

/// A data directory for the node and a directory for item files.
struct Fixture {
    home: TempDir,
    files: TempDir,
}

impl Fixture {
    /// A fresh directory with no node in it.
    fn empty() -> Self {
        Self {
            home: tempfile::tempdir().expect("make home dir"),
            files: tempfile::tempdir().expect("make files dir"),
        }
    }

    /// A fresh node for [`ESTABLISHMENT`].
    fn new() -> Self {
        let f = Self::empty();
        f.ok(&["init", "--establishment", ESTABLISHMENT]);
        f
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--home")
            .arg(self.home())
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
            "gatehouse {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
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
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: bad JSON {e}: {text}"))
    }

    /// Runs, asserts the exit code and returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "gatehouse {args:?}: wrong exit code\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// Writes an item file and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.files.path().join(name);
        std::fs::write(&path, text).expect("write item file");
        path
    }

    /// Publishes a file and returns the new item's id.
    fn publish(&self, file: &Path) -> String {
        let v = self.json(&["publish", path_str(file)]);
        str_of(&v["id"]).to_string()
    }

    fn publish_sample(&self, rel: &str) -> String {
        self.publish(&sample(rel))
    }

    fn list(&self, filters: &[&str]) -> Vec<Value> {
        let mut args = vec!["list"];
        args.extend_from_slice(filters);
        items(&self.json(&args)["items"])
    }

    fn list_ids(&self, filters: &[&str]) -> BTreeSet<String> {
        self.list(filters)
            .iter()
            .map(|v| str_of(&v["id"]).to_string())
            .collect()
    }

    fn envelopes(&self) -> u64 {
        self.json(&["status"])["envelopes"]
            .as_u64()
            .expect("status has an envelope count")
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn items(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .clone()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn is_hex_key(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// An item file with the given fields and body (line 1 is `---`, title is
/// line 2, kind 3, summary 4, pathways 5, settings 6, nation 7, review_due 8,
/// closing `---` 9, blank 10, body from line 11).
fn draft(title: &str, kind: &str, review_due: &str, body: &str) -> String {
    format!(
        "---\ntitle: {title}\nkind: {kind}\nsummary: A short test item.\npathways: [primary-care]\nsettings: [local-remand]\nnation: england\nreview_due: {review_due}\n---\n\n{body}\n"
    )
}

/// A valid NHS number in the never-issued 999 range, grouped 3-3-4.
fn test_nhs_number() -> String {
    for tail in 0..1000u32 {
        let first_nine = format!("999{:06}", 123_000 + tail);
        let sum: u32 = first_nine
            .chars()
            .zip((2..=10u32).rev())
            .map(|(c, w)| c.to_digit(10).expect("digit") * w)
            .sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => continue,
            c => c,
        };
        let digits = format!("{first_nine}{check}");
        return format!("{} {} {}", &digits[..3], &digits[3..6], &digits[6..]);
    }
    panic!("no valid 999-range NHS number found");
}

fn today() -> jiff::civil::Date {
    jiff::Zoned::now().date()
}

fn days_from_today(n: i64) -> String {
    today()
        .checked_add(jiff::Span::new().days(n))
        .expect("date in range")
        .to_string()
}

#[test]
fn init_prints_public_keys_and_keeps_secret_keys_private() {
    let f = Fixture::empty();
    let text = f.ok(&["init", "--establishment", ESTABLISHMENT]);
    let status = f.json(&["status"]);
    let est_id = str_of(&status["establishment"]["id"]);
    assert_eq!(est_id.len(), 32, "{status}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("establishment") && l.contains(est_id)),
        "init should print the establishment id {est_id}:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("establishment key") && l.split_whitespace().any(is_hex_key)),
        "init should print the establishment key:\n{text}"
    );
    assert!(text.contains("publishing key"), "{text}");
    assert_eq!(str_of(&status["establishment"]["name"]), ESTABLISHMENT);

    // The secret seeds never appear on screen.
    let keys = f.home().join("keys");
    for name in ["admin", "establishment", "member", "node"] {
        let path = keys.join(format!("{name}.key"));
        let secret = std::fs::read_to_string(&path).expect("read key file");
        let seed = secret.lines().last().expect("key file has a seed line");
        assert!(!text.contains(seed.trim()), "{name} secret printed by init");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("key file metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{} mode {mode:o}", path.display());
        }
    }

    // The store and index are the owner's only, even in a --home that
    // others may read, and one found readable is mended on opening.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |d: &str| {
            std::fs::metadata(f.home().join(d))
                .expect("dir")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode("store"), mode("index")), (0o700, 0o700));
        std::fs::set_permissions(
            f.home().join("store"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        f.ok(&["publish", path_str(&sample(NALOXONE))]);
        assert_eq!(mode("store"), 0o700, "mended when the node opened");
    }

    // A second init in the same directory is refused and changes nothing.
    let err = f.fails(&["init", "--establishment", "HMP Other"], 2);
    assert!(err.contains("already exists"), "{err}");
    let again = f.json(&["status"]);
    assert_eq!(str_of(&again["establishment"]["id"]), est_id);
    assert_eq!(str_of(&again["establishment"]["name"]), ESTABLISHMENT);
}

#[test]
fn init_json_gives_the_public_keys() {
    let f = Fixture::empty();
    let v = f.json(&["init", "--establishment", ESTABLISHMENT]);
    for field in ["network", "establishment_key", "member_key"] {
        assert!(is_hex_key(str_of(&v[field])), "{field} in {v}");
    }
    let status = f.json(&["status"]);
    assert_eq!(status["network"], v["network"]);
    assert_eq!(status["establishment"]["id"], v["establishment_id"]);
}

#[test]
fn publish_then_list_shows_the_item() {
    let f = Fixture::new();
    let out = f.json(&["publish", path_str(&sample(NALOXONE))]);
    let id = str_of(&out["id"]);
    assert_eq!(id.len(), 32, "{out}");

    let list = f.list(&[]);
    assert_eq!(list.len(), 1, "{list:?}");
    let item = &list[0];
    assert_eq!(str_of(&item["id"]), id);
    assert_eq!(str_of(&item["title"]), "Take-home naloxone on release");
    assert_eq!(str_of(&item["kind"]), "procedure");
    assert_eq!(str_of(&item["status"]), "published");
    assert_eq!(item["version"], 1);
    assert_eq!(str_of(&item["establishment"]["name"]), ESTABLISHMENT);
    assert_eq!(str_of(&item["review_due"]), "2027-03-31");
    assert_eq!(str_of(&item["signed_by"][0]["name"]), "Healthcare manager");

    // The text listing names it too.
    let text = f.ok(&["list"]);
    assert!(text.contains("Take-home naloxone on release"), "{text}");
    assert!(text.contains(&id[..8]), "{text}");
}

#[test]
fn revise_keeps_old_versions_and_records_history() {
    let f = Fixture::new();
    let id = f.publish_sample(NALOXONE);
    let original = read_sample(NALOXONE);
    let revised = original
        .replace(
            "title: Take-home naloxone on release",
            "title: Take-home naloxone kits on release",
        )
        .replace("15-minute session", "20-minute session");
    assert_ne!(original, revised);
    let file = f.write("revised.md", &revised);

    let out = f.json(&["revise", &id, path_str(&file)]);
    assert_eq!(out["version"], 2, "{out}");

    let old = f.json(&["show", &id, "--version", "1"]);
    assert_eq!(old["version"], 1);
    assert_eq!(str_of(&old["title"]), "Take-home naloxone on release");
    assert!(str_of(&old["body"]).contains("15-minute session"));

    let new = f.json(&["show", &id]);
    assert_eq!(new["version"], 2);
    assert_eq!(str_of(&new["title"]), "Take-home naloxone kits on release");
    let body = str_of(&new["body"]);
    assert!(body.contains("20-minute session"), "{body}");
    assert!(!body.contains("15-minute session"), "{body}");

    let history = f.json(&["history", &id]);
    let versions = items(&history["versions"]);
    assert_eq!(versions.len(), 2, "{history}");
    for (v, (n, action)) in versions.iter().zip([(1, "publish"), (2, "revise")]) {
        assert_eq!(v["version"], n, "{v}");
        assert_eq!(str_of(&v["action"]), action, "{v}");
        assert_eq!(str_of(&v["signer"]["name"]), "Healthcare manager");
        assert_eq!(str_of(&v["establishment"]["name"]), ESTABLISHMENT);
    }
    let changed: BTreeSet<&str> = versions[1]["changed"]
        .as_array()
        .expect("changed is a list")
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(changed, BTreeSet::from(["title", "body"]));
    assert_eq!(versions[1]["lines_added"], 1);
    assert_eq!(versions[1]["lines_removed"], 1);

    // The listing follows the latest version.
    let list = f.list(&[]);
    assert_eq!(list[0]["version"], 2);
    assert_eq!(
        str_of(&list[0]["title"]),
        "Take-home naloxone kits on release"
    );

    // Revising with the same content again is refused and stores nothing.
    let before = f.envelopes();
    let err = f.fails(&["revise", &id, path_str(&file)], 2);
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(f.envelopes(), before);
    assert_eq!(f.json(&["show", &id])["version"], 2);

    // A version that does not exist is an error, not the latest.
    let err = f.fails(&["show", &id, "--version", "3"], 2);
    assert!(err.contains("no version 3"), "{err}");
}

#[test]
fn id_prefix_resolves_and_unknown_id_is_named() {
    let f = Fixture::new();
    let id = f.publish_sample(NALOXONE);
    let prefix = &id[..8];

    let shown = f.json(&["show", prefix]);
    assert_eq!(str_of(&shown["id"]), id);
    assert_eq!(str_of(&shown["title"]), "Take-home naloxone on release");
    let history = f.json(&["history", prefix]);
    assert_eq!(str_of(&history["id"]), id);

    // An 8-character prefix that matches nothing.
    let unknown = if prefix == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let err = f.fails(&["show", unknown], 2);
    assert!(err.contains(&format!("no item {unknown}")), "{err}");

    // A whole id that matches nothing.
    let whole = "0123456789abcdef0123456789abcdef";
    if whole != id {
        let err = f.fails(&["show", whole], 2);
        assert!(err.contains(whole), "{err}");
    }
}

#[test]
fn search_ranks_and_filters() {
    let f = Fixture::new();
    let naloxone = f.publish_sample(NALOXONE);
    let ost = f.publish_sample(OST);
    f.publish_sample(ALCOHOL);
    f.publish_sample(QI);

    let found = f.json(&["search", "naloxone"]);
    let results = items(&found["results"]);
    assert!(results.len() >= 2, "{found}");
    assert_eq!(str_of(&results[0]["id"]), naloxone, "naloxone item first");
    let snippet = str_of(&results[0]["snippet"]);
    assert!(
        snippet.to_lowercase().contains("naloxone"),
        "snippet should show the match: {snippet:?}"
    );
    let result_ids: BTreeSet<String> = results
        .iter()
        .map(|r| str_of(&r["id"]).to_string())
        .collect();
    assert_eq!(result_ids, ids(&[&naloxone, &ost]));
    assert_eq!(found["total"], 2);

    // Both matches are procedures; no guideline mentions naloxone.
    let procedures = f.json(&["search", "naloxone", "--kind", "procedure"]);
    assert_eq!(items(&procedures["results"]).len(), 2, "{procedures}");
    let guidelines = f.json(&["search", "naloxone", "--kind", "guideline"]);
    assert!(items(&guidelines["results"]).is_empty(), "{guidelines}");

    // Only the naloxone procedure is on the release pathway.
    let release = f.json(&["search", "naloxone", "--pathway", "release-continuity"]);
    let release = items(&release["results"]);
    assert_eq!(release.len(), 1, "{release:?}");
    assert_eq!(str_of(&release[0]["id"]), naloxone);

    // A made-up kind is a usage error listing the real ones.
    let err = f.fails(&["search", "naloxone", "--kind", "bogus"], 1);
    assert!(err.contains("bogus"), "{err}");
    for kind in ["policy", "procedure", "guideline", "qi-initiative"] {
        assert!(err.contains(kind), "{kind} missing from: {err}");
    }

    // An empty query is a usage error.
    let err = f.fails(&["search", "   "], 1);
    assert!(err.contains("search for"), "{err}");
}

#[test]
fn list_filters_narrow_the_listing() {
    let f = Fixture::new();
    let policy = f.publish_sample(POLICY); // review 2026-04-01
    let alcohol = f.publish_sample(ALCOHOL); // guideline, review 2027-06-30
    let naloxone = f.publish_sample(NALOXONE); // procedure, review 2027-03-31
    let qi = f.publish_sample(QI); // review 2027-05-31
    f.ok(&[
        "--yes",
        "withdraw",
        &alcohol,
        "--reason",
        "Replaced by regional guideline",
    ]);

    assert_eq!(f.list_ids(&["--kind", "policy"]), ids(&[&policy]));
    assert_eq!(f.list_ids(&["--kind", "qi-initiative"]), ids(&[&qi]));
    assert_eq!(f.list_ids(&["--status", "withdrawn"]), ids(&[&alcohol]));
    assert_eq!(
        f.list_ids(&["--status", "published"]),
        ids(&[&policy, &naloxone, &qi])
    );
    // Review due strictly before the date.
    assert_eq!(
        f.list_ids(&["--review-due-before", "2027-03-31"]),
        ids(&[&policy])
    );
    assert_eq!(
        f.list_ids(&["--review-due-before", "2027-04-01"]),
        ids(&[&policy, &naloxone])
    );
    // Filters combine.
    assert_eq!(
        f.list_ids(&["--kind", "procedure", "--review-due-before", "2027-04-01"]),
        ids(&[&naloxone])
    );
    // Establishment by part of its name, any case.
    assert_eq!(f.list_ids(&["--establishment", "example"]).len(), 4);
    let err = f.fails(&["list", "--establishment", "Nowhere Prison"], 1);
    assert!(err.contains("Nowhere Prison"), "{err}");

    let err = f.fails(&["list", "--review-due-before", "next week"], 1);
    assert!(err.contains("YYYY-MM-DD"), "{err}");

    let none = f.ok(&["list", "--kind", "pathway"]);
    assert!(none.contains("No items match"), "{none}");
}

#[test]
fn supersede_and_withdraw_change_status() {
    let f = Fixture::new();
    let old = f.publish_sample(POLICY);
    let new = f.publish_sample(SCREENING);
    let other = f.publish_sample(ALCOHOL);

    let out = f.json(&["supersede", &old, "--by", &new]);
    assert_eq!(str_of(&out["superseded_by"]), new);

    let a = f.json(&["show", &old]);
    assert_eq!(str_of(&a["status"]), "superseded");
    assert_eq!(str_of(&a["superseded_by"]), new);
    let b = f.json(&["show", &new]);
    assert_eq!(str_of(&b["status"]), "published");
    let supersedes: Vec<&str> = b["supersedes"]
        .as_array()
        .expect("supersedes is a list")
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(supersedes, vec![old.as_str()]);
    let text = f.ok(&["show", &old]);
    assert!(text.contains(&format!("superseded by   {new}")), "{text}");

    // A superseded item can no longer be revised.
    let before = f.envelopes();
    let changed = read_sample(POLICY).replace(
        "title: In-possession medication risk assessment",
        "title: In-possession medication risk assessment (2026)",
    );
    let file = f.write("changed.md", &changed);
    let err = f.fails(&["revise", &old, path_str(&file)], 2);
    assert!(err.contains("superseded"), "{err}");
    assert_eq!(f.envelopes(), before);
    assert_eq!(f.json(&["show", &old])["version"], 1);

    // Withdrawal keeps the reason.
    let reason = "Replaced by the regional alcohol pathway";
    let out = f.json(&["withdraw", &other, "--reason", reason, "--yes"]);
    assert_eq!(str_of(&out["status"]), "withdrawn");
    let c = f.json(&["show", &other]);
    assert_eq!(str_of(&c["status"]), "withdrawn");
    assert_eq!(str_of(&c["withdrawn_reason"]), reason);
    let text = f.ok(&["show", &other]);
    assert!(text.contains(reason), "{text}");
    let history = f.json(&["history", &other]);
    let last = items(&history["versions"])
        .last()
        .cloned()
        .expect("history has entries");
    assert_eq!(str_of(&last["action"]), "withdraw");

    // Withdrawing twice is refused.
    let err = f.fails(&["withdraw", &other, "--reason", "again", "--yes"], 2);
    assert!(err.contains("withdrawn"), "{err}");
}

#[test]
fn due_lists_only_items_within_the_period() {
    let f = Fixture::new();
    let overdue = f.publish(&f.write(
        "overdue.md",
        &draft("Overdue policy", "policy", &days_from_today(-10), "Body."),
    ));
    let soon = f.publish(&f.write(
        "soon.md",
        &draft("Soon procedure", "procedure", &days_from_today(30), "Body."),
    ));
    let later = f.publish(&f.write(
        "later.md",
        &draft(
            "Later guideline",
            "guideline",
            &days_from_today(200),
            "Body.",
        ),
    ));
    let withdrawn = f.publish(&f.write(
        "withdrawn.md",
        &draft("Withdrawn policy", "policy", &days_from_today(5), "Body."),
    ));
    f.ok(&[
        "withdraw",
        &withdrawn,
        "--reason",
        "No longer needed",
        "--yes",
    ]);

    let due = f.json(&["due", "--within", "90d"]);
    assert_eq!(str_of(&due["today"]), today().to_string());
    assert_eq!(due["within_days"], 90);
    let listed = items(&due["items"]);
    let got: Vec<(&str, i64)> = listed
        .iter()
        .map(|v| {
            (
                str_of(&v["id"]),
                v["days_left"].as_i64().expect("days_left is a number"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(overdue.as_str(), -10), (soon.as_str(), 30)],
        "{due}"
    );

    let text = f.ok(&["due", "--within", "90d"]);
    assert!(text.contains("OVERDUE by 10 days"), "{text}");
    assert!(text.contains("due in 30 days"), "{text}");
    assert!(!text.contains("Later guideline"), "{text}");

    let year = f.json(&["due", "--within", "1y"]);
    let ids_in_year: BTreeSet<String> = items(&year["items"])
        .iter()
        .map(|v| str_of(&v["id"]).to_string())
        .collect();
    assert_eq!(ids_in_year, ids(&[&overdue, &soon, &later]));

    let err = f.fails(&["due", "--within", "soon"], 1);
    assert!(err.contains("period"), "{err}");
}

#[test]
fn nhs_number_in_body_is_refused_unless_allowed() {
    let f = Fixture::new();
    let nhs = test_nhs_number();
    let text = draft(
        "Clinic letter template",
        "procedure",
        "2027-06-01",
        &format!("# Template\n\nExample record: {nhs} was reviewed."),
    );
    let (line, column) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find(&nhs).map(|c| (i + 1, c + 1)))
        .expect("number is in the text");
    let file = f.write("letter.md", &text);
    let before = f.envelopes();

    let err = f.fails(&["publish", path_str(&file)], 2);
    assert!(
        err.contains(&format!("line {line}, column {column}")),
        "expected line {line}, column {column}: {err}"
    );
    assert!(err.contains("NHS number"), "{err}");
    assert!(err.contains(&nhs), "{err}");
    assert!(f.list(&[]).is_empty(), "nothing should be stored");
    assert_eq!(f.envelopes(), before);
    let found = f.json(&["search", "template"]);
    assert!(items(&found["results"]).is_empty(), "{found}");

    let out = f.json(&[
        "publish",
        path_str(&file),
        "--allow-identifier",
        nhs.as_str(),
    ]);
    let id = str_of(&out["id"]);
    assert_eq!(f.list_ids(&[]), ids(&[id]));
    assert!(str_of(&f.json(&["show", id])["body"]).contains(&nhs));
}

#[test]
fn prison_number_in_title_is_refused() {
    let f = Fixture::new();
    let text = draft("Care plan for A9999ZZ", "procedure", "2027-06-01", "Body.");
    let file = f.write("title.md", &text);
    let before = f.envelopes();

    let err = f.fails(&["publish", path_str(&file)], 2);
    assert!(err.contains("line 2, column 22"), "{err}");
    assert!(err.contains("prison number"), "{err}");
    assert!(err.contains("A9999ZZ"), "{err}");
    assert!(f.list(&[]).is_empty());
    assert_eq!(f.envelopes(), before);

    // Revising an existing item with it is refused too.
    let id = f.publish(&f.write(
        "clean.md",
        &draft("Care plan", "procedure", "2027-06-01", "Body."),
    ));
    let err = f.fails(&["revise", &id, path_str(&file)], 2);
    assert!(err.contains("prison number"), "{err}");
    assert_eq!(str_of(&f.json(&["show", &id])["title"]), "Care plan");
}

#[test]
fn malformed_front_matter_is_refused_with_the_field_and_line() {
    let f = Fixture::new();
    let good = draft("Good item", "procedure", "2027-06-01", "Body.");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "no front matter",
            good.replacen("---\n", "", 1),
            vec!["line 1", "front-matter block"],
        ),
        (
            "unclosed front matter",
            "---\ntitle: Good item\nkind: procedure\n".to_string(),
            vec!["never closed"],
        ),
        (
            "unknown key",
            good.replace("nation: england\n", "nation: england\nowner_phone: 0123\n"),
            vec!["line 8", "owner_phone"],
        ),
        (
            "unknown pathway",
            good.replace("[primary-care]", "[primary-care, prison-gardening]"),
            vec!["line 5", "pathways", "prison-gardening", "substance-misuse"],
        ),
        (
            "unknown kind",
            good.replace("kind: procedure", "kind: memo"),
            vec!["line 3", "kind", "memo"],
        ),
        (
            "bad date",
            good.replace("review_due: 2027-06-01", "review_due: next spring"),
            vec!["line 8", "review_due", "YYYY-MM-DD"],
        ),
        (
            "impossible date",
            good.replace("review_due: 2027-06-01", "review_due: 2027-02-30"),
            vec!["line 8", "review_due"],
        ),
        (
            "missing title",
            good.replace("title: Good item\n", ""),
            vec!["title"],
        ),
        (
            "qi-initiative without QI keys",
            good.replace("kind: procedure", "kind: qi-initiative"),
            vec!["aim", "qi-initiative"],
        ),
        (
            "qi-initiative with aim only",
            good.replace(
                "kind: procedure",
                "kind: qi-initiative\naim: Fewer missed doses",
            ),
            vec!["measures", "qi-initiative"],
        ),
        (
            "QI key on a procedure",
            good.replace(
                "nation: england\n",
                "nation: england\naim: Fewer missed doses\n",
            ),
            vec!["line 8", "aim"],
        ),
    ];
    let before = f.envelopes();
    for (name, text, wanted) in cases {
        let file = f.write("bad.md", &text);
        let err = f.fails(&["publish", path_str(&file)], 2);
        for w in wanted {
            assert!(err.contains(w), "{name}: expected {w:?} in: {err}");
        }
        assert!(f.list(&[]).is_empty(), "{name}: something was stored");
        assert_eq!(f.envelopes(), before, "{name}: envelope count changed");
    }
    // The good file itself is accepted, so the refusals were about the faults.
    f.publish(&f.write("good.md", &good));
}

/// A missing key has no line; the message should not send the user to
/// "line 0" of their file.
#[test]
fn missing_qi_key_is_not_reported_at_line_0() {
    let f = Fixture::new();
    let text = draft("QI item", "qi-initiative", "2027-06-01", "Body.");
    let err = f.fails(&["publish", path_str(&f.write("qi.md", &text))], 2);
    assert!(err.contains("aim"), "{err}");
    assert!(!err.contains("line 0"), "{err}");
}

#[test]
fn commands_without_a_node_say_to_run_init() {
    let f = Fixture::empty();
    for args in [
        &["list"][..],
        &["status"][..],
        &["search", "naloxone"][..],
        &["publish", path_str(&sample(NALOXONE))][..],
    ] {
        let err = f.fails(args, 2);
        assert!(err.contains("gatehouse init"), "{args:?}: {err}");
    }
    // Asking did not create a node.
    assert!(!f.home().join("store").exists());
}

#[test]
fn published_items_survive_reopening() {
    let f = Fixture::new();
    let id = f.publish_sample(NALOXONE);
    f.publish_sample(QI);
    let first = f.ok(&["--json", "list"]);
    let second = f.ok(&["--json", "list"]);
    assert_eq!(first, second);
    let list: Value = serde_json::from_str(&second).expect("list JSON");
    assert_eq!(items(&list["items"]).len(), 2);
    assert!(second.contains(&id));
    // The search index is reopened too.
    let found = f.json(&["search", "naloxone"]);
    assert_eq!(str_of(&found["results"][0]["id"]), id);
    // And the QI details.
    let qi = f.list(&["--kind", "qi-initiative"]);
    assert_eq!(qi.len(), 1);
    assert_eq!(items(&qi[0]["qi"]["pdsa_cycles"]).len(), 4);
}

#[test]
fn demo_runs_three_nodes_that_replicate() {
    let f = Fixture::empty();
    let out = Command::new(BIN)
        .args(["demo", "--no-wait", "--dir"])
        .arg(f.home())
        .env_remove("GATEHOUSE_HOME")
        .output()
        .expect("run gatehouse demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("reached C"), "{text}");

    // The nodes' data stays; node C holds the whole network's library.
    let c = f.home().join("node-c");
    let run = |args: &[&str]| -> Value {
        let out = Command::new(BIN)
            .arg("--home")
            .arg(&c)
            .arg("--json")
            .args(args)
            .env_remove("GATEHOUSE_HOME")
            .output()
            .expect("run gatehouse");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let est = run(&["establishments"]);
    let list = items(&est["establishments"]);
    assert_eq!(list.len(), 3, "{est}");
    let names: BTreeSet<String> = list
        .iter()
        .map(|e| str_of(&e["name"]).to_string())
        .collect();
    assert!(names.contains("HMP Northgate"), "{names:?}");
    let found = run(&["search", "naloxone"]);
    let from: BTreeSet<String> = items(&found["results"])
        .iter()
        .map(|r| str_of(&r["establishment"]["name"]).to_string())
        .collect();
    assert!(from.len() >= 2, "{found}");
    assert!(from.is_subset(&names), "{from:?}");
    let published = run(&["search", "published during the demo"]);
    assert!(
        items(&published["results"])
            .iter()
            .any(|r| str_of(&r["title"]).contains("published during the demo")),
        "{published}"
    );

    // The demo refuses to overwrite itself.
    let again = Command::new(BIN)
        .args(["demo", "--dir"])
        .arg(f.home())
        .env_remove("GATEHOUSE_HOME")
        .output()
        .expect("run gatehouse demo again");
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn usage_errors_and_help() {
    let f = Fixture::empty();
    let err = f.fails(&[], 1);
    assert!(err.contains("Usage"), "{err}");
    let err = f.fails(&["frobnicate"], 1);
    assert!(err.contains("frobnicate"), "{err}");
    let err = f.fails(&["show"], 1);
    assert!(err.contains("<ID>"), "{err}");

    let help = f.ok(&["--help"]);
    assert!(help.contains("Usage: gatehouse"), "{help}");
    for cmd in ["init", "publish", "search", "due"] {
        assert!(help.contains(cmd), "{cmd} missing from help");
    }
    let version = f.ok(&["--version"]);
    assert!(version.starts_with("gatehouse "), "{version}");
}

#[test]
fn a_publish_retried_with_its_idempotency_key_makes_no_second_item() {
    let f = Fixture::new();
    let path = sample(NALOXONE);
    let file = path.to_str().expect("path");
    let first = f.json(&["publish", file, "--idempotency-key", "retry-1"]);
    let again = f.json(&["publish", file, "--idempotency-key", "retry-1"]);
    assert_eq!(first["id"], again["id"]);
    assert_eq!(f.list(&[]).len(), 1);
    // Another key is another item, as is a publish without one.
    let other = f.json(&["publish", file, "--idempotency-key", "retry-2"]);
    assert_ne!(other["id"], first["id"]);
    // Without a key, the same title asks first; --yes answers it.
    f.json(&["--yes", "publish", file]);
    assert_eq!(f.list(&[]).len(), 3);
}

#[test]
fn a_draft_stays_on_this_node_until_it_is_published() {
    let f = Fixture::new();
    let before = f.envelopes();
    let unfinished = f.write(
        "wound.md",
        "---\ntitle: Wound care\nkind: procedure\n---\n\nTo do.\n",
    );
    let saved = f.ok(&["draft", "save", path_str(&unfinished)]);
    assert!(
        saved.contains("draft wound-care on this node only"),
        "{saved}"
    );
    let listed = f.ok(&["draft", "list"]);
    assert!(
        listed.contains("wound-care") && listed.contains("not ready: "),
        "an unfinished draft says what is missing: {listed}"
    );

    // The finished file, marked draft, is not shared by a publish either.
    let text = read_sample(NALOXONE).replace("review_due:", "status: draft\nreview_due:");
    let marked = f.write("naloxone.md", &text);
    let err = f.fails(&["publish", path_str(&marked)], 2);
    assert!(
        err.contains("status: draft") && err.contains("gatehouse draft save"),
        "{err}"
    );
    f.ok(&["draft", "save", path_str(&marked), "--name", "naloxone"]);
    assert!(f.ok(&["draft", "list"]).contains("ready to publish"));
    assert_eq!(
        f.ok(&["draft", "show", "naloxone"]),
        text,
        "kept as written"
    );

    // Nothing was signed, stored or put in a bundle.
    assert_eq!(f.envelopes(), before);
    assert!(f.list(&[]).is_empty());
    let bundle = f.files.path().join("out.bundle");
    let exported = f.json(&["bundle", "export", path_str(&bundle)]);
    assert_eq!(exported["envelopes"].as_u64(), Some(before));

    let published = f.json(&["draft", "publish", "naloxone"]);
    let id = str_of(&published["id"]).to_string();
    let items = f.list(&[]);
    assert_eq!(items.len(), 1);
    assert_eq!(str_of(&items[0]["id"]), id);
    assert_eq!(str_of(&items[0]["status"]), "published");
    assert!(
        !f.ok(&["draft", "list"]).contains("naloxone"),
        "published drafts go"
    );

    f.fails(&["draft", "discard", "wound-care"], 1);
    f.ok(&["--yes", "draft", "discard", "wound-care"]);
    assert_eq!(f.ok(&["draft", "list"]).trim(), "No drafts on this node.");
    let err = f.fails(&["draft", "show", "../keys/admin"], 2);
    assert!(err.contains("not a draft name"), "{err}");
}

#[test]
fn publishing_a_title_the_site_already_uses_asks_whether_it_is_a_revision() {
    let f = Fixture::new();
    let id = f.publish_sample(NALOXONE);
    let file = sample(NALOXONE);
    let err = f.fails(&["publish", path_str(&file)], 1);
    assert!(
        err.contains("already has \"Take-home naloxone on release\"")
            && err.contains(&format!("gatehouse revise {}", &id[..8]))
            && err.contains("--yes"),
        "names the item and the way to revise it: {err}"
    );
    assert_eq!(f.list(&[]).len(), 1, "nothing was published");
    // Another title is published without a question.
    f.publish_sample(POLICY);
    let second = f.json(&["--yes", "publish", path_str(&file)]);
    assert_ne!(str_of(&second["id"]), id);
    assert_eq!(f.list(&[]).len(), 3);
}

#[test]
fn a_command_waits_briefly_for_a_store_another_process_holds() {
    let f = Fixture::new();
    let home = gatehouse_node::home::Home::new(f.home().to_path_buf());
    let held = gatehouse_node::store::SledStore::open(&home.store_dir()).expect("hold the store");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1_500));
        drop(held);
    });
    let started = std::time::Instant::now();
    let status = f.json(&["status"]);
    assert!(
        status["envelopes"].as_u64().is_some_and(|n| n > 0),
        "{status}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(1_000));
    release.join().expect("release");
}

/// A small tmpfs mounted for one test (this needs root, as CI has), and
/// unmounted when dropped.
struct SmallDisk(TempDir);

impl SmallDisk {
    fn mount(megabytes: u32) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {megabytes} MB tmpfs failed: this test needs root to make a disk it can fill"
        );
        Self(dir)
    }

    /// Writes zeros until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.path().join("filler")).expect("filler");
        let block = vec![0u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0]);
        let _ = f.sync_all();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn reads_work_on_a_full_disk_and_writes_say_the_disk_is_full() {
    let disk = SmallDisk::mount(40);
    let home = disk.0.path().join("node");
    let gatehouse = |args: &[&str]| {
        Command::new(BIN)
            .arg("--home")
            .arg(&home)
            .args(args)
            .env_remove("GATEHOUSE_HOME")
            .output()
            .expect("run gatehouse")
    };
    assert!(
        gatehouse(&["init", "--establishment", ESTABLISHMENT])
            .status
            .success()
    );
    let naloxone = sample("hmp-northgate/05-take-home-naloxone-on-release.md");
    let published = gatehouse(&["publish", path_str(&naloxone)]);
    assert!(published.status.success());
    let id = String::from_utf8_lossy(&published.stdout)
        .trim()
        .to_string();
    disk.fill();

    for args in [
        &["list"][..],
        &["search", "naloxone"],
        &["show", &id],
        &["history", &id],
        &["status"],
        &["establishments"],
    ] {
        let out = gatehouse(args);
        assert!(
            out.status.success(),
            "gatehouse {args:?} on a full disk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if ["list", "search", "show"].contains(&args[0]) {
            assert!(text.contains("naloxone"), "gatehouse {args:?}: {text}");
        }
    }
    let out = gatehouse(&[
        "publish",
        path_str(&sample("hmp-northgate/02-first-night-health-screening.md")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is full") && err.contains("nothing held was lost"),
        "{err}"
    );
    // Once there is room again, everything is as it was.
    std::fs::remove_file(disk.0.path().join("filler")).expect("free the disk");
    let out = gatehouse(&["list", "--json"]);
    assert!(out.status.success());
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn escape_sequences_in_an_item_from_elsewhere_are_not_printed() {
    use gatehouse_node::home::Home;
    use gatehouse_node::library::Library;

    let f = Fixture::new();
    // An item signed by an admitted key but made outside `publish` (as a
    // peer's node could), its text full of terminal control sequences.
    let bundle = f.files.path().join("hostile.bundle");
    {
        let home = Home::new(f.home().to_path_buf());
        let lib = Library::open(&home).expect("open");
        let config = lib.config().clone();
        let member = home.read_key("member").expect("read").expect("member key");
        let mut suffix = [0u8; 16];
        hex::decode_to_slice(&config.actor_suffix, &mut suffix).expect("suffix");
        let mut content = gatehouse_node::sample::synthetic_content(1);
        content.title = "Escapes \x1b]0;owned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07here".into();
        content.body = "Body \x1b[31mred\x1b[0m \u{9b}2J text".into();
        let env = gatehouse_node::authoring::new_item(
            &content,
            &member,
            &suffix,
            config.establishment,
            &config.network,
            1_767_225_600_000,
        )
        .expect("sign");
        let bytes =
            gatehouse_node::replica::bundle::write(&config.network, &[env.bytes().to_vec()]);
        std::fs::write(&bundle, bytes).expect("write bundle");
    }
    f.ok(&["bundle", "import", path_str(&bundle)]);
    let id = f.list(&[])[0]["id"].as_str().expect("id").to_string();
    for args in [
        &["list"][..],
        &["show", &id],
        &["search", "escapes"],
        &["history", &id],
    ] {
        let out = f.ok(args);
        assert!(
            !out.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "gatehouse {args:?} printed control characters: {out:?}"
        );
    }
    assert!(
        f.ok(&["show", &id])
            .contains("Escapes ]0;owned[2J]52;c;ZXZpbA==here")
    );
    // JSON keeps the text exactly, escaped as JSON.
    let shown = f.json(&["show", &id]);
    assert!(shown["title"].as_str().is_some_and(|t| t.contains('\x1b')));
}

#[test]
fn publishing_a_device_or_a_huge_file_is_refused_without_reading_it_all() {
    let f = Fixture::new();
    let err = f.fails(&["publish", "/dev/zero"], 1);
    assert!(err.contains("over the limit"), "{err}");
    let big = f.files.path().join("big.md");
    std::fs::write(&big, vec![b'a'; 600 * 1024]).expect("write");
    let err = f.fails(&["publish", path_str(&big)], 1);
    assert!(err.contains("614400 bytes, over the limit"), "{err}");
}

#[test]
fn importing_a_device_as_a_bundle_is_refused_without_reading_it() {
    let f = Fixture::new();
    let err = f.fails(&["bundle", "import", "/dev/zero"], 2);
    assert!(err.contains("not a regular file"), "{err}");
    let other = Fixture::empty();
    let err = other.fails(&["init", "--join", "/dev/zero", "--member-name", "Lead"], 2);
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn names_and_reasons_in_certificates_are_scanned_for_patient_identifiers() {
    let f = Fixture::new();
    let other = Fixture::empty();
    let key = other.ok(&["key", "generate", "establishment"]);
    let key = key.trim();
    let nhs = test_nhs_number();
    for args in [
        vec!["trust", "admit", "--key", key, "--name"],
        vec!["member", "add", "--key", key, "--name"],
        vec!["--yes", "trust", "revoke", "--key", key, "--reason"],
    ] {
        let text = format!("Patient {nhs} transferred");
        let mut args = args.clone();
        args.push(&text);
        let err = f.fails(&args, 2);
        assert!(
            err.contains("patient identifiers never enter the library") && err.contains(&nhs),
            "gatehouse {args:?}: {err}"
        );
    }
    let status = f.json(&["status"]);
    assert_eq!(status["certificates"], 4, "nothing was signed: {status}");
    let err = Fixture::empty().fails(&["init", "--establishment", &format!("HMP {nhs}")], 2);
    assert!(err.contains("patient identifiers never enter"), "{err}");
}

/// Runs `gatehouse edit` with `editor` as `$EDITOR` (no `$VISUAL`).
fn edit_with(f: &Fixture, editor: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--home")
        .arg(f.home())
        .arg("edit")
        .args(args)
        .env_remove("GATEHOUSE_HOME")
        .env_remove("VISUAL")
        .env("EDITOR", editor)
        .output()
        .expect("run gatehouse edit")
}

/// A shell script standing in for an editor: `body` runs with the file as
/// `$1` and `$n` counting the times it has been opened.
fn editor_script(f: &Fixture, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let counter = f.files.path().join(format!("{name}.count"));
    let script = format!(
        "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > '{c}'\n{body}\n",
        c = counter.display()
    );
    let path = f.write(name, &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn an_item_is_edited_in_place_and_a_bad_save_opens_the_editor_again() {
    let f = Fixture::new();
    let id = f.publish_sample(NALOXONE);
    let source = f.ok(&["show", &id[..8], "--source"]);
    assert!(
        source.starts_with("---\ntitle: Take-home naloxone"),
        "{source}"
    );

    // First save: a review date that is not a date. The editor opens again
    // with the problem written in the file; the second save fixes it.
    let editor = editor_script(
        &f,
        "fix-on-second-save",
        r#"if [ "$n" = 1 ]; then sed -i 's/^review_due: .*/review_due: soon/' "$1"; fi
if [ "$n" = 2 ]; then
  grep -q '^# gatehouse: line .*review_due' "$1" || exit 3
  sed -i 's/^review_due: .*/review_due: 2030-01-31/' "$1"
fi"#,
    );
    let out = edit_with(&f, &editor, &[&id[..8], "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("review_due"),
        "the first save's problem: {stderr}"
    );
    assert!(stdout.contains("It would be version 2"), "{stdout}");
    assert!(
        stdout.contains("Review date: 31 March 2027 → 31 January 2030"),
        "the change is shown: {stdout}"
    );
    let shown = f.json(&["show", &id[..8]]);
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["review_due"], "2030-01-31");
    // The body came through untouched.
    let before = f.json(&["show", &id[..8], "--version", "1"]);
    assert_eq!(shown["body"], before["body"]);

    // Without a terminal to ask on and without --yes, nothing is published.
    let editor = editor_script(
        &f,
        "change-title",
        r#"sed -i 's/^title: .*/title: Take-home naloxone kits/' "$1""#,
    );
    let out = edit_with(&f, &editor, &[&id[..8]]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(f.json(&["show", &id[..8]])["version"], 2);

    // Saving without a change publishes nothing.
    let editor = editor_script(&f, "no-change", "true");
    let out = edit_with(&f, &editor, &[&id[..8], "--yes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No change made"));
    assert_eq!(f.json(&["show", &id[..8]])["version"], 2);
}

#[test]
fn check_shows_what_would_be_published_and_stores_nothing() {
    let f = Fixture::new();
    let id = f.publish_sample(NALOXONE);
    let before = f.envelopes();

    // The same file again: checked, and the item it would duplicate named.
    let text = f.ok(&["publish", path_str(&sample(NALOXONE)), "--check"]);
    assert!(text.contains("Nothing was signed or stored"), "{text}");
    assert!(
        text.contains("already has an item with this title"),
        "{text}"
    );
    assert!(
        text.contains(&format!("gatehouse revise {}", &id[..8])),
        "{text}"
    );

    // A revision: what would change.
    let changed = read_sample(NALOXONE).replace("review_due: 2027-03-31", "review_due: 2028-03-31");
    let file = f.write("naloxone-v2.md", &changed);
    let report = f.json(&["revise", &id[..8], path_str(&file), "--check"]);
    assert_eq!(report["revises"]["to"], 2);
    let fields: Vec<String> = items(&report["revises"]["fields"])
        .iter()
        .map(|c| str_of(&c["field"]).to_string())
        .collect();
    assert_eq!(fields, ["review_due"]);

    // A file that does not read is refused as publish would refuse it.
    let bad = f.write(
        "bad.md",
        &read_sample(NALOXONE).replace("kind: procedure", "kind: leaflet"),
    );
    f.fails(&["publish", path_str(&bad), "--check"], 2);

    assert_eq!(f.envelopes(), before, "a check stores nothing");
    assert_eq!(f.json(&["show", &id[..8]])["version"], 1);
}

#[test]
fn a_command_that_cannot_be_undone_names_its_target_and_asks_first() {
    let f = Fixture::new();
    let id = f.publish_sample(NALOXONE);
    // No terminal here: refused, naming the item, and nothing done.
    let err = f.fails(&["withdraw", &id[..8], "--reason", "Replaced"], 1);
    assert!(err.contains("Take-home naloxone on release"), "{err}");
    assert!(err.contains(ESTABLISHMENT), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(f.json(&["show", &id[..8]])["status"], "published");

    // A member's key: named with its holder.
    let member = f.json(&["key", "show"]);
    let key = str_of(&member["member"]).to_string();
    let err = f.fails(&["member", "remove", &key], 1);
    assert!(err.contains("Healthcare manager"), "{err}");
    // Or by its first 8 characters; a prefix no key has is named.
    let err = f.fails(&["member", "remove", &key[..8]], 1);
    assert!(err.contains("Healthcare manager"), "{err}");
    let unknown = if key.starts_with('0') {
        "ffffffff"
    } else {
        "00000000"
    };
    let err = f.fails(&["member", "remove", unknown, "--yes"], 2);
    assert!(
        err.contains("no key the network knows starts with"),
        "{err}"
    );

    // A staff account: named, and still there.
    f.ok(&["staff", "add", "--name", "Dr A Patel"]);
    let err = f.fails(&["staff", "remove", "dr-a-patel"], 1);
    assert!(err.contains("Dr A Patel"), "{err}");
    assert_eq!(items(&f.json(&["staff", "list"])).len(), 1);

    // With --yes it goes ahead.
    f.ok(&["withdraw", &id[..8], "--reason", "Replaced", "--yes"]);
    assert_eq!(f.json(&["show", &id[..8]])["status"], "withdrawn");
}

#[test]
fn shell_completions_and_the_manual_page_cover_every_command() {
    let f = Fixture::empty();
    for shell in ["bash", "zsh", "fish"] {
        let script = f.ok(&["completions", shell]);
        for command in ["publish", "revise", "search", "bundle", "trust", "config"] {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    let page = f.ok(&["man"]);
    assert!(page.contains(".TH gatehouse 1"), "{page}");
    assert!(page.contains("publish") && page.contains("completions"));
}

#[test]
fn doctor_passes_a_healthy_node_and_names_the_fix_for_a_key_left_readable() {
    let f = Fixture::new();
    let out = f.ok(&["--json", "doctor", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let checks = report["checks"].as_array().expect("checks");
    for name in [
        "data directory",
        "node key",
        "configuration",
        "store and index",
        "clock",
        "port",
    ] {
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == name && c["state"] == "ok"),
            "{name}: {out}"
        );
    }
    use std::os::unix::fs::PermissionsExt as _;
    let key = f.home().join("keys").join("member.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = f.run(&["doctor", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL member key"), "{text}");
    assert!(
        text.contains(&format!("fix: chmod 600 {}", key.display())),
        "{text}"
    );
}

#[test]
fn a_qi_lead_imports_a_measure_and_reads_its_signals() {
    let f = Fixture::new();
    let text = draft("Reviews on reception", "qi-initiative", "2028-06-01", "Body.").replace(
        "review_due",
        "aim: Reviews within 7 days.\nmeasures: [Reviews within 7 days]\npdsa_cycles: [Pharmacist at reception]\noutcomes: To come.\nreview_due",
    );
    let id = f.publish(&f.write("qi.md", &text));
    f.ok(&[
        "measure",
        "define",
        &id,
        "reviews",
        "--name",
        "Reviews within 7 days",
        "--unit",
        "%",
        "--better",
        "higher",
        "--baseline-until",
        "2025-10-31",
    ]);
    let mut csv = String::from("date,value\n");
    for (i, v) in [
        58, 61, 60, 59, 62, 60, 57, 61, 60, 59, 74, 76, 75, 77, 73, 76, 75, 74,
    ]
    .iter()
    .enumerate()
    {
        csv.push_str(&format!("2025-{:02}-28,{v}\n", i % 12 + 1));
        if i == 11 {
            break;
        }
    }
    let imported = f.ok(&[
        "measure",
        "import",
        &id,
        "reviews",
        path_str(&f.write("data.csv", &csv)),
    ]);
    assert!(
        imported.contains("12 values of reviews recorded"),
        "{imported}"
    );
    f.ok(&[
        "measure",
        "note",
        &id,
        "reviews",
        "2025-11-28",
        "PDSA 2: pharmacist at reception",
    ]);
    f.ok(&[
        "measure", "progress", &id, "--score", "3.5", "--stage", "testing",
    ]);
    let shown = f.ok(&["measure", "show", &id]);
    assert!(shown.contains("IHI score 3.5 (Improvement)"), "{shown}");
    assert!(
        shown.contains("mean and limits from the baseline: the 10 values up to 2025-10-31"),
        "{shown}"
    );
    assert!(
        shown.contains("[PDSA 2: pharmacist at reception]"),
        "{shown}"
    );
    assert!(shown.contains("signal: "), "{shown}");
    let json = f.json(&["measure", "show", &id]);
    let points = &json["Shown"]["measures"][0]["points"];
    assert_eq!(points.as_array().map(Vec::len), Some(12), "{json}");

    // Bad input is named and changes nothing.
    let bad = f.write("bad.csv", "date,value\n2025-01-28,1\n2025-02-30,2\n");
    let err = f.fails(&["measure", "import", &id, "reviews", path_str(&bad)], 2);
    assert!(err.contains("line 3"), "{err}");
    let err = f.fails(
        &[
            "measure", "progress", &id, "--score", "3.3", "--stage", "testing",
        ],
        1,
    );
    assert!(err.contains("steps of 0.5"), "{err}");
    let policy = f.publish(&f.write("p.md", &draft("A policy", "policy", "2028-06-01", "Body.")));
    let err = f.fails(
        &[
            "measure", "define", &policy, "x", "--name", "X", "--better", "lower",
        ],
        2,
    );
    assert!(err.contains("QI initiatives"), "{err}");
}

#[test]
fn a_site_lead_asks_nurses_to_read_an_item_and_reads_the_register() {
    let f = Fixture::new();
    for (name, job) in [
        ("Nurse A Shah", "nurse"),
        ("Nurse B Okoro", "nurse"),
        ("C Lee", "pharmacist"),
    ] {
        let added = f.ok(&["staff", "add", "--name", name, "--job", job]);
        assert!(added.contains("one-time set-up code"), "{added}");
    }
    let listed = f.ok(&["staff", "list"]);
    assert!(listed.contains("pharmacist"), "{listed}");
    let id = f.publish(&f.write("p.md", &draft("Sharps", "procedure", "2028-06-01", "Body.")));
    let err = f.fails(&["read-request", &id, "--by", &days_from_today(30)], 1);
    assert!(
        err.contains("--job nurse") && err.contains("--everyone"),
        "{err}"
    );
    let asked = f.ok(&[
        "read-request",
        &id,
        "--job",
        "nurse",
        "--by",
        &days_from_today(30),
    ]);
    assert!(
        asked.contains("Asked every nurse to read version 1"),
        "{asked}"
    );
    let register = f.ok(&["register", &id]);
    assert!(
        register.contains("Every nurse must read version 1"),
        "{register}"
    );
    assert!(register.contains("0 of 2 have"), "{register}");
    assert!(register.contains("NOT YET   Nurse A Shah"), "{register}");
    assert!(!register.contains("C Lee"), "{register}");
    f.ok(&["acknowledge", &id]);
    let register = f.json(&["register", &id]);
    assert_eq!(
        register["others"].as_array().map(Vec::len),
        Some(1),
        "{register}"
    );

    let revised = f.write(
        "p2.md",
        &draft(
            "Sharps",
            "procedure",
            "2028-06-01",
            "Body, with a new step.",
        ),
    );
    let out = f.ok(&["revise", &id, path_str(&revised), "--significant"]);
    assert!(out.contains("asked again"), "{out}");
    let register = f.ok(&["register", &id]);
    assert!(register.contains("must read version 2"), "{register}");
}

#[test]
fn a_pack_is_written_and_verified_with_no_node() {
    let f = Fixture::new();
    let id = f.publish(&f.write("p.md", &draft("Sharps", "procedure", "2028-06-01", "Body.")));
    f.ok(&["approve", &id]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pack");
    let made = f.ok(&["pack", "--out", path_str(&out)]);
    assert!(made.contains("1 items in force"), "{made}");
    // Checked with no node: no home is given.
    let check = Command::new(BIN)
        .args(["pack", "verify", path_str(&out)])
        .env_remove("GATEHOUSE_HOME")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(text.contains("verifies"), "{text}");
    let page = out.join("index.html");
    let mut bytes = std::fs::read(&page).expect("read");
    bytes[10] ^= 0x20;
    std::fs::write(&page, bytes).expect("write");
    let err = f.fails(&["pack", "verify", path_str(&out)], 2);
    assert!(err.contains("index.html was changed"), "{err}");
    let err = f.fails(&["pack"], 1);
    assert!(err.contains("--out"), "{err}");
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../node/tests/fixtures")
        .join(name)
}

#[test]
fn a_word_policy_is_published_with_its_front_matter_and_files() {
    let f = Fixture::new();
    let meta = f.write(
        "front.yaml",
        "kind: policy\nsummary: How in-possession medication is assessed.\n\
         pathways: [pharmacy-medicines]\nsettings: [local-remand]\nnation: england\n\
         review_due: 2029-01-01\nstatus: published\n",
    );
    let docx = fixture("policy.docx");
    let pdf = fixture("flowchart.pdf");
    let out = f.json(&[
        "publish",
        path_str(&docx),
        "--meta",
        path_str(&meta),
        "--attach",
        path_str(&pdf),
    ]);
    let id = str_of(&out["id"]).to_string();
    let item = f.json(&["show", &id]);
    // The title is the document's first heading; the body starts after it.
    assert_eq!(str_of(&item["title"]), "In-possession medication policy");
    let body = str_of(&item["body"]);
    assert!(
        body.starts_with("This policy sets out how **in-possession**"),
        "{body}"
    );
    assert!(body.contains("| Level | Meaning | Supply |"), "{body}");
    let names: Vec<&str> = item["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .map(|a| str_of(&a["name"]))
        .collect();
    assert_eq!(names, ["flowchart.pdf", "policy.docx"]);
    let text = f.ok(&["show", &id]);
    assert!(text.contains("flowchart.pdf (PDF, 1 KB)"), "{text}");
    // Found by words only the flowchart holds.
    let found = f.json(&["search", "naloxone"]);
    assert_eq!(items(&found["results"]).len(), 1, "{found}");

    // Taking a file off makes a version without it.
    let source = f.write("policy.md", &f.ok(&["show", &id, "--source"]));
    f.ok(&[
        "revise",
        &id,
        path_str(&source),
        "--detach",
        "flowchart.pdf",
    ]);
    let item = f.json(&["show", &id]);
    assert_eq!(item["attachments"].as_array().map(Vec::len), Some(1));
    let err = f.fails(
        &[
            "revise",
            &id,
            path_str(&source),
            "--detach",
            "flowchart.pdf",
        ],
        2,
    );
    assert!(err.contains("no file named \"flowchart.pdf\""), "{err}");
}

#[test]
fn a_word_document_holding_an_nhs_number_is_refused_at_its_cell() {
    let f = Fixture::new();
    let meta = f.write(
        "front.yaml",
        "kind: other\nsummary: Missed doses audit.\npathways: [governance]\n\
         settings: [local-remand]\nnation: england\nreview_due: 2029-01-01\n",
    );
    let docx = fixture("identifier-in-table.docx");
    let err = f.fails(&["publish", path_str(&docx), "--meta", path_str(&meta)], 2);
    assert!(err.contains("table 1, row 3, column 2"), "{err}");
    assert!(err.contains("NHS number"), "{err}");
    assert!(f.list(&[]).is_empty());
    // Without --meta and with no terminal to ask on, it says what to give.
    let err = f.fails(&["publish", path_str(&fixture("policy.docx"))], 1);
    assert!(err.contains("--meta FILE"), "{err}");
    // --meta is for Word documents only.
    let md = f.write("x.md", &draft("X", "policy", "2029-01-01", "Body."));
    let err = f.fails(&["publish", path_str(&md), "--meta", path_str(&meta)], 1);
    assert!(err.contains("--meta is for a Word document"), "{err}");
    // A file of a kind that cannot be attached is named.
    let exe = f.write("tool.exe", "MZ");
    let err = f.fails(&["publish", path_str(&md), "--attach", path_str(&exe)], 2);
    assert!(err.contains("cannot be attached"), "{err}");
}
