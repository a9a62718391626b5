//! Backups: taken while the node ingests, a backup restores on a fresh home
//! to exactly what was acknowledged before it began; a damaged one is
//! refused before anything is written; keys come back only with their
//! passphrase; the restored node rebuilds its derived state and runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const PASSPHRASE: &str = "correct horse battery staple";

fn gatehouse(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("GATEHOUSE_HOME")
        .env_remove("GATEHOUSE_BACKUP_PASSPHRASE")
        .env("GATEHOUSE_YES", "1")
        .output()
        .expect("run gatehouse")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = gatehouse(home, args);
    assert!(
        out.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = gatehouse(home, args);
    assert!(!out.status.success(), "gatehouse {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A publishable item file with its own title.
fn item_file(dir: &Path, n: usize) -> PathBuf {
    let sample = std::fs::read_to_string(format!(
        "{}/../samples/library/hmp-northgate/05-take-home-naloxone-on-release.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("sample");
    let path = dir.join(format!("item-{n}.md"));
    std::fs::write(
        &path,
        sample.replacen(
            "title: Take-home naloxone on release",
            &format!("title: Take-home naloxone on release, copy {n}"),
            1,
        ),
    )
    .expect("write");
    path
}

fn item_ids(home: &Path) -> BTreeSet<String> {
    let list: Value = serde_json::from_str(&ok(home, &["--json", "list"])).expect("JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(home: &Path) -> Daemon {
    let child = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args([
            "node",
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--no-web",
        ])
        .env_remove("GATEHOUSE_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node");
    let socket = home.join("node.sock");
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no control socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon(child)
}

/// One publish: when it was sent, when it was answered, and the item.
struct Publish {
    sent: Instant,
    answered: Instant,
    id: String,
}

#[test]
fn a_backup_taken_while_the_node_ingests_restores_exactly_what_was_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    ok(&home, &["init", "--establishment", "HMP Northgate"]);
    let _node = start_node(&home);
    let done: Arc<Mutex<Vec<Publish>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (home, files, done, stop) = (
            home.clone(),
            dir.path().to_path_buf(),
            done.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let file = item_file(&files, n);
                let sent = Instant::now();
                let out = ok(&home, &["--json", "publish", file.to_str().expect("path")]);
                let id: Value = serde_json::from_str(&out).expect("JSON");
                done.lock().expect("lock").push(Publish {
                    sent,
                    answered: Instant::now(),
                    id: id["id"].as_str().expect("id").to_string(),
                });
                n += 1;
            }
        })
    };
    let wait_for = |count: usize| {
        let started = Instant::now();
        while done.lock().expect("lock").len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "publishing stalled"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(3);
    let backup = dir.path().join("node.backup");
    let began = Instant::now();
    let said = ok(&home, &["backup", backup.to_str().expect("path")]);
    let ended = Instant::now();
    assert!(said.contains("signed by this node"), "{said}");
    let after = done.lock().expect("lock").len() + 2;
    wait_for(after);
    stop.store(true, Ordering::SeqCst);
    publisher.join().expect("publisher");

    let restored = dir.path().join("restored");
    let said = ok(&restored, &["restore", backup.to_str().expect("path")]);
    assert!(said.contains("copy the node's key files"), "{said}");
    let held = item_ids(&restored);
    let publishes = done.lock().expect("lock");
    let before: Vec<&Publish> = publishes.iter().filter(|p| p.answered < began).collect();
    let later: Vec<&Publish> = publishes.iter().filter(|p| p.sent > ended).collect();
    assert!(before.len() >= 3 && later.len() >= 2);
    for p in &before {
        assert!(
            held.contains(&p.id),
            "{} was acknowledged before the backup began",
            p.id
        );
    }
    for p in &later {
        assert!(
            !held.contains(&p.id),
            "{} was published after the backup",
            p.id
        );
    }
    // Nothing but what was published.
    let all: BTreeSet<String> = publishes.iter().map(|p| p.id.clone()).collect();
    assert!(held.is_subset(&all));
}

#[test]
fn a_damaged_backup_is_refused_and_keys_come_back_only_with_their_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    ok(&home, &["init", "--establishment", "HMP Northgate"]);
    let file = item_file(dir.path(), 1);
    ok(&home, &["publish", file.to_str().expect("path")]);
    let backup = dir.path().join("node.backup");
    let b = backup.to_str().expect("path");
    // Keys need a passphrase, and a weak one is refused.
    let err = fails(&home, &["backup", b, "--include-keys"]);
    assert!(err.contains("--passphrase-file"), "{err}");
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "short\n").expect("write");
    let err = fails(
        &home,
        &[
            "backup",
            b,
            "--include-keys",
            "--passphrase-file",
            weak.to_str().expect("path"),
        ],
    );
    assert!(err.contains("the passphrase"), "{err}");
    let secret = dir.path().join("passphrase");
    std::fs::write(&secret, format!("{PASSPHRASE}\n")).expect("write");
    let s = secret.to_str().expect("path");
    let said = ok(
        &home,
        &["backup", b, "--include-keys", "--passphrase-file", s],
    );
    assert!(
        said.contains("admin, establishment, member, node"),
        "{said}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&backup)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Any byte changed: refused, and nothing written.
    let bytes = std::fs::read(&backup).expect("read");
    for at in [3, 20, bytes.len() / 2, bytes.len() - 70, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        let bad = dir.path().join(format!("damaged-{at}.backup"));
        std::fs::write(&bad, &damaged).expect("write");
        let target = dir.path().join(format!("from-damaged-{at}"));
        let err = fails(
            &target,
            &[
                "restore",
                bad.to_str().expect("path"),
                "--passphrase-file",
                s,
            ],
        );
        assert!(err.contains("not a usable backup"), "byte {at}: {err}");
        assert!(
            !target.exists(),
            "byte {at}: a damaged backup wrote {}",
            target.display()
        );
    }
    let cut = dir.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).expect("write");
    let err = fails(
        &dir.path().join("from-cut"),
        &["restore", cut.to_str().expect("path")],
    );
    assert!(err.contains("not a usable backup"), "{err}");

    // Sealed keys without the passphrase, or with a wrong one: refused.
    let target = dir.path().join("restored");
    let err = fails(&target, &["restore", b]);
    assert!(err.contains("give the passphrase"), "{err}");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all\n").expect("write");
    let err = fails(
        &target,
        &[
            "restore",
            b,
            "--passphrase-file",
            wrong.to_str().expect("path"),
        ],
    );
    assert!(err.contains("passphrase does not open"), "{err}");
    assert!(!target.exists());

    let said = ok(&target, &["restore", b, "--passphrase-file", s]);
    assert!(
        said.contains("keys restored: admin, establishment, member, node"),
        "{said}"
    );
    assert_eq!(item_ids(&target), item_ids(&home));
    // Derived state rebuilt: the item is found by search, and the node can publish.
    let found: Value =
        serde_json::from_str(&ok(&target, &["--json", "search", "naloxone"])).expect("JSON");
    assert_eq!(
        found["results"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    let next = item_file(dir.path(), 2);
    ok(&target, &["publish", next.to_str().expect("path")]);
    for key in ["admin", "establishment", "member", "node"] {
        let mode = std::fs::metadata(target.join("keys").join(format!("{key}.key")))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    // A restore cut short (its marker and a half-made store left behind):
    // the node refuses to open, and the same restore again finishes it.
    let cut_short = dir.path().join("cut-short");
    std::fs::create_dir_all(cut_short.join("store")).expect("dir");
    std::fs::write(cut_short.join("store").join("db"), b"half written").expect("write");
    std::fs::write(cut_short.join("restore.partial"), b"").expect("marker");
    let err = fails(&cut_short, &["status"]);
    assert!(err.contains("did not finish"), "{err}");
    ok(&cut_short, &["restore", b, "--passphrase-file", s]);
    assert_eq!(item_ids(&cut_short), item_ids(&home));
    assert!(!cut_short.join("restore.partial").exists());
    // A home that holds a node is never overwritten.
    let err = fails(&home, &["restore", b, "--passphrase-file", s]);
    assert!(err.contains("already"), "{err}");
}

/// The settings file the node runs with travels in its backup: a site
/// restored on a new machine listens, serves and dials as before, and a
/// settings file already in place there is kept.
#[test]
fn the_settings_file_travels_in_the_backup_and_one_in_place_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    ok(&home, &["init", "--establishment", "HMP Northgate"]);
    // The service's file lives outside the data directory.
    let etc = dir.path().join("etc-gatehouse.toml");
    let settings = "# HMP Northgate, healthcare server\n[network]\nlisten = [\"/ip4/0.0.0.0/tcp/4101\"]\nreconcile_secs = 90\n\n[web]\nlisten = \"0.0.0.0:8481\"\naccess = \"staff\"\n";
    std::fs::write(&etc, settings).expect("write");
    let backup = dir.path().join("node.backup");
    let b = backup.to_str().expect("path");
    let said = ok(
        &home,
        &["backup", b, "--config", etc.to_str().expect("path")],
    );
    assert!(
        said.contains(&format!("with the settings file {}", etc.display())),
        "{said}"
    );

    let target = dir.path().join("restored");
    let said = ok(&target, &["restore", b]);
    assert!(
        said.contains(&format!(
            "settings file (was {}) restored to {}",
            etc.display(),
            target.join("gatehouse.toml").display()
        )),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("gatehouse.toml")).expect("restored"),
        settings
    );
    // The restored node runs with it, as `config show` reports.
    let shown: Value =
        serde_json::from_str(&ok(&target, &["--json", "config", "show"])).expect("json");
    let text = shown.to_string();
    assert!(text.contains("4101") && text.contains("8481"), "{text}");

    // A data directory's own file is taken when none is named, and a
    // restore never overwrites one the site put in place.
    let own = "[network]\nreconcile_secs = 45\n";
    std::fs::write(home.join("gatehouse.toml"), own).expect("write");
    ok(&home, &["backup", b]);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let mine = "[network]\nreconcile_secs = 300\n";
    std::fs::write(elsewhere.join("gatehouse.toml"), mine).expect("write");
    let said = ok(&elsewhere, &["restore", b]);
    assert!(said.contains("was not restored"), "{said}");
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("gatehouse.toml")).expect("kept"),
        mine
    );
}
