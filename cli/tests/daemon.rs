//! While `gatehouse node run` runs, every command goes through its control
//! socket and gives the same results as without it; SIGTERM stops it
//! cleanly.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn sample(rel: &str) -> String {
    format!("{}/../samples/library/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn run(home: &Path, cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .current_dir(cwd)
        .env_remove("GATEHOUSE_HOME")
        .output()
        .expect("run gatehouse");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(home: &Path, cwd: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = run(home, cwd, &all);
    assert!(ok, "gatehouse {args:?} failed: {err}");
    serde_json::from_str(&out).expect("JSON output")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `gatehouse node run` for `home` on loopback ports chosen by the system.
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
        ])
        .args(["--web-listen", "127.0.0.1:0"])
        .env_remove("GATEHOUSE_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node");
    Daemon(child)
}

#[test]
fn commands_go_through_the_running_node_with_the_same_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    let cwd = dir.path();
    json(&home, cwd, &["init", "--establishment", "HMP Northgate"]);
    for f in [
        "hmp-northgate/05-take-home-naloxone-on-release.md",
        "hmp-northgate/03-alcohol-withdrawal-ciwa-ar.md",
    ] {
        json(&home, cwd, &["publish", &sample(f)]);
    }
    let found = json(&home, cwd, &["search", "naloxone"]);
    let id = found["results"][0]["id"]
        .as_str()
        .expect("an item")
        .to_string();
    let prefix = &id[..8];
    let queries: [&[&str]; 8] = [
        &["list"],
        &["search", "naloxone"],
        &[
            "search",
            "withdrawal",
            "--kind",
            "guideline",
            "--establishment",
            "northgate",
        ],
        &["establishments"],
        &["due", "--within", "3650d"],
        &["show", prefix],
        &["show", prefix, "--version", "1"],
        &["history", prefix],
    ];
    let direct: Vec<Value> = queries.iter().map(|q| json(&home, cwd, q)).collect();
    let direct_text: Vec<String> = queries
        .iter()
        .map(|q| {
            let (ok, out, err) = run(&home, cwd, q);
            assert!(ok, "gatehouse {q:?}: {err}");
            out
        })
        .collect();

    let mut daemon = start_node(&home);
    let socket = home.join("node.sock");
    wait_for("the node's control socket", || socket.exists());

    for (q, want) in queries.iter().zip(&direct) {
        assert_eq!(
            &json(&home, cwd, q),
            want,
            "gatehouse {q:?} differs through the node"
        );
    }
    // The CLI reaches the node through its control socket only, never
    // through the web address it records for people: with the socket out
    // of the way, a command finds the store held and says so.
    let web_addr = home.join("web.addr");
    assert!(web_addr.exists(), "the node records its web address");
    let aside = home.join("node.sock.aside");
    std::fs::rename(&socket, &aside).expect("move the socket");
    for q in [
        &["search", "naloxone"][..],
        &["withdraw", prefix, "--reason", "test", "--yes"],
    ] {
        let (ok, _, err) = run(&home, cwd, q);
        assert!(
            !ok && err.contains("in use by another gatehouse process"),
            "{q:?}: {err}"
        );
    }
    std::fs::rename(&aside, &socket).expect("put the socket back");

    // Text output is rendered by the caller from the node's typed outcome,
    // so it is the same as without the node.
    for (q, want) in queries.iter().zip(&direct_text) {
        let (ok, got, err) = run(&home, cwd, q);
        assert!(ok, "gatehouse {q:?} through the node: {err}");
        assert_eq!(
            &got, want,
            "gatehouse {q:?} prints differently through the node"
        );
    }
    // The control socket takes typed requests of its own version only, and
    // says what to do about any other.
    let ask = |line: &str| -> Value {
        use std::io::{BufRead, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
        stream.write_all(line.as_bytes()).expect("send");
        stream.write_all(b"\n").expect("send");
        let mut reply = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut reply)
            .expect("reply");
        serde_json::from_str(&reply).expect("a JSON reply")
    };
    let argv = ask(r#"{"argv":["gatehouse","list"],"cwd":"/"}"#);
    let message = argv["Failed"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot read this request") && message.contains("same version"),
        "{argv}"
    );
    let newer = ask(r#"{"version":99,"gatehouse":"9.0.0","op":{"Read":"Establishments"}}"#);
    let message = newer["Failed"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("9.0.0") && message.contains("control version 99"),
        "{newer}"
    );
    assert_eq!(newer["Failed"]["usage"], true, "{newer}");
    // Connections that never send a request give their places up, so they
    // cannot keep commands out for good.
    let idle: Vec<_> = (0..16)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).expect("connect"))
        .collect();
    let (ok, _, err) = run(&home, cwd, &["list"]);
    assert!(ok, "a command past 16 idle connections: {err}");
    drop(idle);

    let status = json(&home, cwd, &["status"]);
    assert_eq!(status["node_running"], true, "{status}");
    assert!(
        status["network_state"]["listening"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{status}"
    );
    // A relative path is read from the caller's directory, not the node's.
    std::fs::copy(
        sample("hmp-northgate/02-first-night-health-screening.md"),
        dir.path().join("screening.md"),
    )
    .expect("copy");
    let published = json(&home, cwd, &["publish", "screening.md"]);
    let id = published["id"].as_str().expect("id").to_string();
    let shown = json(&home, cwd, &["show", &id]);
    assert!(
        shown["title"]
            .as_str()
            .is_some_and(|t| t.contains("screening")),
        "{shown}"
    );
    // Errors come back with their exit code.
    let out = Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .args(["show", "ffffffffffff"])
        .env_remove("GATEHOUSE_HOME")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item"));

    // SIGTERM: a clean stop, and the data directory works directly again.
    let pid = daemon.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = daemon.0.wait().expect("wait");
    assert!(status.success(), "the node exited with {status}");
    assert!(!socket.exists(), "the control socket was left behind");
    assert!(!web_addr.exists(), "the web address file was left behind");
    let items = json(&home, cwd, &["list"]);
    assert_eq!(items["items"].as_array().map(Vec::len), Some(3));
    // An address file left by a killed node (here pointing at another
    // node's web server) is never used: the read comes from this library.
    let other = dir.path().join("other");
    json(&other, cwd, &["init", "--establishment", "HMP Elsewhere"]);
    let _other_node = start_node(&other);
    let other_addr = other.join("web.addr");
    wait_for("the other node's web server", || other_addr.exists());
    std::fs::copy(&other_addr, &web_addr).expect("plant a stale address");
    let ids = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_string())
            .collect()
    };
    let here = json(&home, cwd, &["search", "naloxone"]);
    assert_eq!(
        ids(&here),
        ids(&direct[1]),
        "read from this node's own library"
    );
}
