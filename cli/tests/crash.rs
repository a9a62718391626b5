//! Crash safety: `gatehouse publish` processes are killed with SIGKILL at
//! arbitrary moments; every publish that was acknowledged (printed its id
//! and exited 0) must be there afterwards, and the library must open
//! consistent: every item listed, searchable and showable.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn gatehouse(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.arg("--home").arg(home);
    c
}

fn json(home: &std::path::Path, args: &[&str]) -> Value {
    let out = gatehouse(home)
        .args(args)
        .arg("--json")
        .output()
        .expect("run gatehouse");
    assert!(
        out.status.success(),
        "gatehouse {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

#[test]
fn acknowledged_publishes_survive_kill_9_at_any_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    let status = gatehouse(&home)
        .args(["init", "--establishment", "HMP Crashtest"])
        .stdout(Stdio::null())
        .status()
        .expect("init");
    assert!(status.success());
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/library/hmp-northgate/05-take-home-naloxone-on-release.md"
    );
    let text = std::fs::read_to_string(sample).expect("sample item");
    let mut acknowledged = Vec::new();
    let mut killed = 0;
    // How long one publish takes here, so kill points can be spread from
    // "at once" to "after it would have finished" on any machine.
    let first = dir.path().join("first.md");
    std::fs::write(&first, &text).expect("write item");
    let started = std::time::Instant::now();
    let out = gatehouse(&home)
        .arg("publish")
        .arg(&first)
        .output()
        .expect("publish");
    assert!(out.status.success());
    let full_us = started.elapsed().as_micros() as u64;
    acknowledged.push((
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        1_000,
    ));
    for round in 0u64..40 {
        let file = dir.path().join(format!("item-{round}.md"));
        std::fs::write(
            &file,
            text.replacen(
                "title: Take-home naloxone on release",
                &format!("title: Take-home naloxone on release, copy {round}"),
                1,
            ),
        )
        .expect("write item");
        let mut child = gatehouse(&home)
            .arg("publish")
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn publish");
        let delay_us = full_us * ((round * 37) % 60) / 20;
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        if out.status.success() {
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(id.len(), 32, "publish printed {id:?}");
            acknowledged.push((id, round));
        } else {
            killed += 1;
        }
    }
    assert!(
        killed > 0,
        "no publish was interrupted; the kill points are too late"
    );
    assert!(acknowledged.len() > 1, "no killed-late publish finished");
    let listed = json(&home, &["list"]);
    let items = listed["items"].as_array().expect("items");
    for (id, round) in &acknowledged {
        let found = items.iter().find(|i| i["id"] == id.as_str());
        let item =
            found.unwrap_or_else(|| panic!("acknowledged item {id} (round {round}) is missing"));
        if *round < 1_000 {
            assert_eq!(
                item["title"],
                format!("Take-home naloxone on release, copy {round}")
            );
        }
    }
    // Consistent: everything listed can be shown and is searchable.
    let status = json(&home, &["status"]);
    assert_eq!(status["items"].as_u64(), Some(items.len() as u64));
    for item in items {
        let id = item["id"].as_str().expect("id");
        let shown = json(&home, &["show", id]);
        assert!(
            shown["body"]
                .as_str()
                .is_some_and(|b| b.contains("naloxone"))
        );
    }
    let hits = json(&home, &["search", "naloxone", "--limit", "100"]);
    assert_eq!(hits["total"].as_u64(), Some(items.len() as u64));
    eprintln!(
        "{} acknowledged, {killed} killed before acknowledging, {} items held",
        acknowledged.len(),
        items.len()
    );
}
