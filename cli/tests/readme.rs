//! The README's tours, run as written.
//!
//! Every shell block of the README that follows a `<!-- tour -->` line is
//! run here, block after block and command after command, on a fresh
//! machine of its own: an empty `$HOME`, the `gatehouse` binary on `PATH`,
//! the repository's `samples/` beside the working directory, and an editor
//! that adds a line. Each command must succeed. A comment line indented
//! by three spaces under a command (`#   ...`) is output the command must
//! print, in that order; `...` there stands for any text.
//!
//! Ids and keys are never known in advance: a hex word of six or more
//! characters (with a digit in it) in a shown output stands for whatever
//! the command printed at that place, and a later command using that word,
//! or its first characters, gets what was printed, the way a reader copies
//! it from their own terminal. A command using a hex word that no earlier
//! output showed fails the test: the README would be asking for an id the
//! reader cannot have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const README: &str = include_str!("../../README.md");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// One line of a tour block: a command, output it must print, or an
/// environment variable it sets.
#[derive(Debug)]
enum Step {
    Run {
        line: usize,
        command: String,
        shows: Vec<String>,
    },
    Export {
        name: String,
        value: String,
    },
}

/// The tour blocks' steps, in README order.
fn tour() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut armed = false;
    let mut inside = false;
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in README.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim_end();
        if !inside {
            if line == "<!-- tour -->" {
                armed = true;
            } else if armed && line.starts_with("```") {
                assert_eq!(line, "```sh", "README line {line_no}: a tour block is sh");
                inside = true;
                armed = false;
            }
            continue;
        }
        if line == "```" {
            inside = false;
            assert!(
                pending.is_none(),
                "README line {line_no}: a command ends in \\"
            );
            continue;
        }
        if let Some((start, mut text)) = pending.take() {
            let part = line.trim_start();
            match part.strip_suffix('\\') {
                Some(more) => {
                    text.push_str(more);
                    pending = Some((start, text));
                }
                None => {
                    text.push_str(part);
                    steps.push(Step::Run {
                        line: start,
                        command: text,
                        shows: Vec::new(),
                    });
                }
            }
            continue;
        }
        if let Some(shown) = line.strip_prefix("#   ") {
            match steps.last_mut() {
                Some(Step::Run { shows, .. }) => shows.push(shown.trim().to_string()),
                _ => panic!("README line {line_no}: output shown before any command"),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(assign) = line.strip_prefix("export ") {
            let (name, value) = assign
                .split_once('=')
                .unwrap_or_else(|| panic!("README line {line_no}: export NAME=VALUE"));
            steps.push(Step::Export {
                name: name.to_string(),
                value: value.to_string(),
            });
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending = Some((line_no, start.to_string())),
            None => steps.push(Step::Run {
                line: line_no,
                command: line.to_string(),
                shows: Vec::new(),
            }),
        }
    }
    assert!(!inside, "README: a tour block is not closed");
    steps
}

/// What the README's ids and keys stand for on this run: the README's word
/// (as shown in an output) and what the command really printed there.
#[derive(Default)]
struct Words {
    bound: Vec<(String, String)>,
}

impl Words {
    /// A hex word as the README uses it for an id or a key: six or more
    /// hex digits, at least one of them a digit.
    fn pattern() -> Regex {
        Regex::new(r"\.\.\.|…|\b[0-9a-f]{6,}\b").expect("pattern")
    }

    fn is_id(word: &str) -> bool {
        word.len() >= 6 && word.bytes().any(|b| b.is_ascii_digit())
    }

    /// What the reader has in place of the README's `word`, which may be
    /// the first characters of one the README showed.
    fn lookup(&self, word: &str) -> Option<String> {
        self.bound.iter().find_map(|(readme, real)| {
            (readme.starts_with(word) && real.len() >= word.len())
                .then(|| real[..word.len()].to_string())
        })
    }

    /// `command` with every id and key replaced by the reader's own.
    fn substitute(&self, line: usize, command: &str) -> String {
        let mut out = String::new();
        let mut last = 0;
        for m in Self::pattern().find_iter(command) {
            if !Self::is_id(m.as_str()) {
                continue;
            }
            let real = self.lookup(m.as_str()).unwrap_or_else(|| {
                panic!(
                    "README line {line}: `{}` is not an id or key any earlier command printed",
                    m.as_str()
                )
            });
            out.push_str(&command[last..m.start()]);
            out.push_str(&real);
            last = m.end();
        }
        out.push_str(&command[last..]);
        out
    }

    /// A regex for one shown output line: literal text, `...` for any text,
    /// a known id as the reader's own, and a new one captured.
    fn matcher(&self, shown: &str) -> (Regex, Vec<String>) {
        let mut re = String::from("^");
        let mut captures = Vec::new();
        let mut last = 0;
        for m in Self::pattern().find_iter(shown) {
            re.push_str(&regex::escape(&shown[last..m.start()]));
            last = m.end();
            let word = m.as_str();
            if word == "..." || word == "…" {
                re.push_str(".*");
            } else if !Self::is_id(word) {
                re.push_str(&regex::escape(word));
            } else if let Some(real) = self.lookup(word) {
                re.push_str(&regex::escape(&real));
            } else {
                re.push_str(&format!("([0-9a-f]{{{},}})", word.len()));
                captures.push(word.to_string());
            }
        }
        re.push_str(&regex::escape(&shown[last..]));
        re.push('$');
        (Regex::new(&re).expect("output pattern"), captures)
    }

    /// Checks that `output` shows every line of `shows`, in order, and
    /// learns the ids in them.
    fn expect(&mut self, line: usize, command: &str, shows: &[String], output: &str) {
        let lines: Vec<&str> = output.lines().map(str::trim).collect();
        let mut from = 0;
        for shown in shows {
            let (re, captures) = self.matcher(shown);
            let found = lines[from..].iter().enumerate().find_map(|(i, l)| {
                re.captures(l).map(|c| {
                    let got: Vec<String> = (1..c.len()).map(|k| c[k].to_string()).collect();
                    (from + i, got)
                })
            });
            let Some((at, got)) = found else {
                panic!(
                    "README line {line}: `{command}` did not print\n    {shown}\nafter what it printed before it; it printed:\n{output}"
                );
            };
            for (readme, real) in captures.into_iter().zip(got) {
                self.bound.push((readme, real));
            }
            from = at + 1;
        }
    }
}

/// A fresh machine: `$HOME`, a working directory holding `samples/`, the
/// binary on `PATH` and an editor that adds a line to what it opens.
struct Machine {
    _root: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
    path: String,
    editor: PathBuf,
    env: BTreeMap<String, String>,
}

impl Machine {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("temp dir");
        let home = root.path().join("home");
        let work = root.path().join("work");
        let bin = root.path().join("bin");
        for dir in [&home, &work, &bin] {
            std::fs::create_dir(dir).expect("make dir");
        }
        std::os::unix::fs::symlink(Path::new(REPO).join("samples"), work.join("samples"))
            .expect("link samples");
        std::os::unix::fs::symlink(BIN, bin.join("gatehouse")).expect("link binary");
        let editor = bin.join("editor");
        std::fs::write(
            &editor,
            "#!/bin/sh\nprintf '\\nDiscussed at the medicines management meeting.\\n' >> \"$1\"\n",
        )
        .expect("write editor");
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Self {
            _root: root,
            home,
            work,
            path,
            editor,
            env: BTreeMap::new(),
        }
    }

    fn export(&mut self, name: &str, value: &str) {
        let value = match value.strip_prefix("~/") {
            Some(rest) => format!("{}/{rest}", self.home.display()),
            None => value.to_string(),
        };
        self.env.insert(name.to_string(), value);
    }

    /// Runs one command line with `sh`, as a reader's shell would.
    fn run(&self, line: usize, command: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.work)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env("EDITOR", &self.editor)
            .env("GATEHOUSE_YES", "1")
            .env("LANG", "C.UTF-8")
            .envs(&self.env)
            .output()
            .expect("run sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "README line {line}: `{command}` failed ({:?}):\n{text}",
            out.status.code()
        );
        text
    }
}

#[test]
fn the_readme_tours_run_as_written() {
    let steps = tour();
    let commands = steps
        .iter()
        .filter(|s| matches!(s, Step::Run { .. }))
        .count();
    assert!(commands >= 40, "the tours hold {commands} commands");
    let mut machine = Machine::new();
    let mut words = Words::default();
    for step in &steps {
        match step {
            Step::Export { name, value } => machine.export(name, value),
            Step::Run {
                line,
                command,
                shows,
            } => {
                let real = words.substitute(*line, command);
                let output = machine.run(*line, &real);
                words.expect(*line, &real, shows, &output);
            }
        }
    }
}

#[test]
fn a_shown_id_stands_for_what_was_printed_and_its_prefix_for_the_same() {
    let mut words = Words::default();
    words.expect(
        1,
        "gatehouse publish x.md",
        &["7a43ba0fa59f83a9f20a55bbf4d17018".to_string()],
        "warning: nothing\nc0ffee00112233445566778899aabbcc\n",
    );
    assert_eq!(
        words.substitute(2, "gatehouse show 7a43ba0f --version 1"),
        "gatehouse show c0ffee00 --version 1"
    );
    words.expect(
        3,
        "gatehouse history 7a43ba0f",
        &["v2 ... 7a43ba0f ...".to_string()],
        "v1 revised\nv2 revised by c0ffee00 of here\n",
    );
}

#[test]
#[should_panic(expected = "not an id or key any earlier command printed")]
fn an_id_no_command_printed_is_refused() {
    Words::default().substitute(7, "gatehouse show 1d197760");
}
