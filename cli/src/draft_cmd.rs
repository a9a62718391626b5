//! `gatehouse draft ...`: items being written, kept on this node only
//! (`gatehouse_node::drafts`) until the site lead publishes them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use gatehouse_node::drafts::{self, Drafts};
use gatehouse_node::home::Home;
use gatehouse_node::query::format_ms;
use gatehouse_protocol::vocab::Status;

use crate::ops::{self, Op};
use crate::output::{self, print_json};
use crate::{AllowArgs, ask, confirm_new_item, read_item_text};

/// `gatehouse draft ...`
#[derive(Subcommand)]
pub enum DraftCommand {
    /// Keep a file as a draft on this node (it need not be finished); saving again replaces it
    Save {
        /// The item file
        file: PathBuf,
        /// The draft's name [default: made from its title, or the file's name]
        #[arg(long)]
        name: Option<String>,
    },
    /// This node's drafts, each ready to publish or with what is missing
    List,
    /// Print a draft as it was saved
    Show {
        /// The draft's name
        name: String,
    },
    /// Publish a draft as a new item (status published), then remove it from the drafts
    Publish {
        /// The draft's name
        name: String,
        #[command(flatten)]
        allow: AllowArgs,
    },
    /// Throw a draft away
    Discard {
        /// The draft's name
        name: String,
    },
}

/// Runs a `draft` command. Drafts are files of the data directory, so no
/// library is needed except to publish one.
pub fn run(
    home: Home,
    out: &mut dyn Write,
    json: bool,
    yes: bool,
    cmd: DraftCommand,
) -> anyhow::Result<()> {
    let drafts = Drafts::of(&home);
    match cmd {
        DraftCommand::Save { file, name } => {
            let text = read_item_text(&file)?;
            let name = name.unwrap_or_else(|| {
                let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                drafts::name_for(&text, stem)
            });
            let path = drafts.save(&name, &text)?;
            if json {
                return print_json(out, &serde_json::json!({ "name": name, "file": path }));
            }
            writeln!(
                out,
                "Kept as the draft {name} on this node only: nothing was signed or sent."
            )?;
            writeln!(
                out,
                "Publish it when it is ready: gatehouse draft publish {name}"
            )?;
        }
        DraftCommand::List => {
            let list = drafts.list()?;
            if json {
                return print_json(out, &serde_json::json!({ "drafts": list }));
            }
            if list.is_empty() {
                writeln!(out, "No drafts on this node.")?;
            }
            for d in &list {
                let saved = format_ms(d.saved_ms);
                writeln!(
                    out,
                    "{:<30} saved {}  {}",
                    d.name,
                    saved.get(..10).unwrap_or(&saved),
                    d.title.as_deref().unwrap_or("(no title yet)")
                )?;
                match &d.problem {
                    None => writeln!(out, "    ready to publish")?,
                    Some(p) => writeln!(out, "    not ready: {p}")?,
                }
            }
        }
        DraftCommand::Show { name } => write!(out, "{}", drafts.read(&name)?)?,
        DraftCommand::Publish { name, allow } => {
            let text = drafts.read(&name)?;
            let file = drafts.path(&name)?;
            let mut content = gatehouse_node::authoring::draft::parse(&text, &allow.allowed)
                .with_context(|| format!("draft {name}"))?;
            content.status = Status::Published;
            let op = Op::Publish {
                file,
                content,
                allowed: allow.allowed,
                idempotency_key: None,
                attachments: Vec::new(),
            };
            if !yes {
                confirm_new_item(&home, &op)?;
            }
            let outcome = ops::dispatch(home, op)?;
            // Published: the draft's work is done. Were the removal to
            // fail, the item still stands; saying so is enough.
            if let Err(e) = drafts.remove(&name) {
                eprintln!("published, but the draft could not be removed: {e}");
            }
            output::render(&outcome, out, json)?;
        }
        DraftCommand::Discard { name } => {
            drafts.read(&name)?;
            if !yes {
                ask(&format!(
                    "Throw away the draft {name}? It is on this node only, so it cannot be got back."
                ))?;
            }
            drafts.remove(&name)?;
            if json {
                return print_json(out, &serde_json::json!({ "discarded": name }));
            }
            writeln!(out, "The draft {name} is thrown away.")?;
        }
    }
    Ok(())
}
