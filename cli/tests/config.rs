//! The configuration file: `node run` runs as it says, flags override it,
//! `config show` says where each value came from, and a mistake in it is
//! refused with its line and key before anything starts.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn gatehouse(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("GATEHOUSE_HOME")
        .output()
        .expect("run gatehouse")
}

fn shown(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json", "config", "show"];
    all.extend_from_slice(args);
    let out = gatehouse(home, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn flags_override_the_file_and_each_value_says_where_it_came_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    std::fs::create_dir_all(&home).expect("home");
    let file = home.join("gatehouse.toml");
    std::fs::write(
        &file,
        "# the site's settings\n[network]\nreconcile_secs = 300\nmdns = false\n\n[web]\nlisten = \"0.0.0.0:8480\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
    )
    .expect("write");
    let c = shown(&home, &["--reconcile-secs", "5"]);
    let setting = |k: &str| c["settings"][k].clone();
    let from_file = file.display().to_string();
    assert_eq!(setting("network.reconcile_secs")["value"], 5);
    assert_eq!(setting("network.reconcile_secs")["from"], "command line");
    assert_eq!(setting("network.mdns")["value"], false);
    assert_eq!(setting("network.mdns")["from"], from_file.as_str());
    assert_eq!(setting("web.listen")["value"], "0.0.0.0:8480");
    // Served beyond loopback: staff only unless told otherwise.
    assert_eq!(setting("web.access")["value"], "staff");
    assert_eq!(setting("web.access")["from"], "default");
    // Relative paths in the file are beside it.
    assert_eq!(
        setting("web.tls_cert")["value"],
        home.join("cert.pem").display().to_string().as_str()
    );
    // Fixed ports, so a firewall is opened once.
    assert_eq!(
        setting("network.listen")["value"],
        serde_json::json!(["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"])
    );
    // The text form is a file that can be copied.
    let out = gatehouse(&home, &["config", "show", "--web-access", "open"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reconcile_secs = 300  # ")
            && text.contains("access = \"open\"  # command line"),
        "{text}"
    );
    // --config names another file, which must exist.
    let other = dir.path().join("etc.toml");
    std::fs::write(&other, "[log]\nformat = \"json\"\n").expect("write");
    let c = shown(&home, &["--config", other.to_str().expect("path")]);
    assert_eq!(c["settings"]["log.format"]["value"], "json");
    assert_eq!(c["settings"]["network.reconcile_secs"]["value"], 60);
    let out = gatehouse(
        &home,
        &["config", "show", "--config", "/nonexistent/g.toml"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read the configuration /nonexistent/g.toml")
    );
}

#[test]
fn a_typo_in_the_file_is_refused_with_its_line_and_key_before_the_node_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    std::fs::create_dir_all(&home).expect("home");
    let file = home.join("gatehouse.toml");
    for (text, wanted) in [
        (
            "[network]\nmdns = false\nlisen = [\"/ip4/0.0.0.0/tcp/4001\"]\n",
            "line 3, column 1, key `lisen`: unknown field `lisen`",
        ),
        (
            "[web]\naccess = \"everyone\"\n",
            "line 2, column 10, key `access`: unknown variant `everyone`",
        ),
        (
            "[network]\nbootstrap = [\"192.0.2.7:4001\"]\n",
            "line 2, column 13, key `bootstrap`: \"192.0.2.7:4001\" is not a multiaddress",
        ),
    ] {
        std::fs::write(&file, text).expect("write");
        let out = gatehouse(&home, &["node", "run", "--no-web"]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{}: {wanted}", file.display())),
            "{text}: {err}"
        );
    }
}

#[test]
fn the_node_runs_as_its_file_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    let init = gatehouse(&home, &["init", "--establishment", "HMP Northgate"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::fs::write(
        home.join("gatehouse.toml"),
        "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nmdns = false\n[web]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write");
    let _node = Daemon(
        Command::new(BIN)
            .arg("--home")
            .arg(&home)
            .args(["node", "run"])
            .env_remove("GATEHOUSE_HOME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start"),
    );
    let started = Instant::now();
    let status = loop {
        let out = gatehouse(&home, &["--json", "status"]);
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            if v["network_state"]["listening"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
            {
                break v;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node never said where it listens"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let listening = status["network_state"]["listening"]
        .as_array()
        .expect("list");
    assert!(
        listening.iter().all(|a| a
            .as_str()
            .is_some_and(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))),
        "{listening:?}"
    );
    let web = std::fs::read_to_string(home.join("web.addr")).expect("web.addr");
    assert!(web.trim().starts_with("127.0.0.1:"), "{web}");
}
