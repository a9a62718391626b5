//! The forum and staff commands end to end: a site lead adds a clinician
//! (a set-up code is printed), asks the network a question, lists it,
//! replies, marks it resolved and reads the thread, as text and JSON; a
//! question holding an NHS number is refused with where it is.

use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

struct Node {
    home: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let n = Node {
            home: tempfile::tempdir().expect("home"),
        };
        n.ok(&["init", "--establishment", "HMP Example"]);
        n
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .env_remove("GATEHOUSE_HOME")
            .output()
            .expect("run gatehouse")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gatehouse {args:?} failed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("JSON")
    }
}

#[test]
fn a_question_is_asked_answered_resolved_and_read_from_the_terminal() {
    let node = Node::new();
    let added = node.ok(&["staff", "add", "--name", "Dr A Patel"]);
    assert!(added.contains("one-time set-up code: "), "{added}");
    assert!(added.contains("as dr-a-patel"), "{added}");
    let staff = node.json(&["staff", "list"]);
    assert_eq!(staff[0]["login"], "dr-a-patel");
    assert_eq!(staff[0]["role"], "clinician");
    assert_eq!(staff[0]["state"], "set-up");

    let asked = node.json(&[
        "ask",
        "--title",
        "Gabapentinoid diversion on a Cat C wing",
        "--body",
        "How do you manage it?",
        "--pathway",
        "pharmacy-medicines",
        "--urgency",
        "within-48-hours",
    ]);
    let thread = asked["id"].as_str().expect("id").to_string();
    let open = node.json(&["threads"]);
    assert_eq!(open[0]["id"], thread.as_str());
    assert_eq!(open[0]["urgency"], "within-48-hours");
    assert_eq!(open[0]["author"]["name"], "Healthcare manager");

    let replied = node.json(&[
        "reply",
        &thread[..10],
        "--body",
        "Supervised liquid formulations, and a wing-based check.",
    ]);
    let answer = replied["id"].as_str().expect("id").to_string();
    node.ok(&["resolve", &thread[..10], "--answer", &answer[..10]]);

    let text = node.ok(&["thread", &thread[..10]]);
    assert!(
        text.contains("Gabapentinoid diversion on a Cat C wing"),
        "{text}"
    );
    assert!(text.contains("resolved the question"), "{text}");
    assert!(
        text.contains("Healthcare manager (person), HMP Example"),
        "{text}"
    );
    let answered = node.json(&["threads", "--list", "answered"]);
    assert_eq!(answered[0]["resolved_by"], answer.as_str());
    assert!(node.json(&["threads"]).as_array().expect("list").is_empty());

    // A lead hides a post of their site's; it shows as hidden, in the log.
    node.ok(&["hide", &answer[..8], "--reason", "named a wing and cell"]);
    let log = node.json(&["moderation"]);
    assert_eq!(log[0]["post"], answer.as_str());
    assert_eq!(log[0]["reason"], "named a wing and cell");
    let shown = node.json(&["thread", &thread[..10]]);
    assert_eq!(
        shown["posts"][1]["hidden"]["reason"],
        "named a wing and cell"
    );
    assert!(
        shown["posts"][1]["body"].is_null(),
        "a hidden post's text is not shown"
    );
}

#[test]
fn a_question_with_an_nhs_number_is_refused_with_its_place() {
    let node = Node::new();
    let out = node.run(&[
        "ask",
        "--title",
        "Transfer",
        "--body",
        "Seen today: 943 476 5919",
        "--pathway",
        "primary-care",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1, column 13"), "{stderr}");
    assert!(stderr.contains("NHS number"), "{stderr}");
    assert!(
        node.json(&["threads", "--list", "all"])
            .as_array()
            .expect("list")
            .is_empty()
    );
}
