//! `gatehouse`: the command line of a Gatehouse node.
//!
//! Site leads publish and revise their establishment's documents; clinicians
//! list, search and read the whole network's library. Arguments are parsed
//! by clap, checked into real values, then handed to the node library. Exit
//! codes: 0 success, 1 usage error, 2 any other failure.

mod adopt_cmd;
mod attach_cmd;
mod config;
mod ctx;
mod daemon;
mod demo;
mod doctor;
mod draft_cmd;
mod edit;
mod forum_cmd;
mod measure_cmd;
mod ops;
mod output;
mod pack_cmd;
mod render;
mod trust_cmd;

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use forum_cmd::ForumOp;
use gatehouse_node::backup::RestoredSettings;
use gatehouse_node::home::Home;
use gatehouse_node::library::{InitOptions, Library};
use gatehouse_node::query::ReadView;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::query::forum::ThreadList;
use gatehouse_protocol::jiff::Zoned;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::post::Urgency;
use gatehouse_protocol::vocab::{Job, Kind, Nation, Pathway, Setting, Status};
use ops::{Op, ReadOp};
use output::print_json;
use serde::{Deserialize, Serialize};
use trust_cmd::TrustOp;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Share policies, procedures, guidelines and QI work between healthcare teams in secure settings",
    long_about = None
)]
struct Cli {
    /// The node's data directory [default: $GATEHOUSE_HOME, else the per-user data directory]
    #[arg(long, global = true, env = "GATEHOUSE_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    /// Do not ask before a command that cannot be undone (for scripts)
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_YES",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    yes: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a node: keys, a new network, this establishment admitted
    Init(InitArgs),
    /// Start a new item from a template: every field in place, with its choices
    New {
        /// policy, procedure, guideline, qi-initiative, pathway or other
        #[arg(value_parser = parse_vocab::<Kind>)]
        kind: Kind,
        /// Write it to this file (never over an existing one) instead of printing it
        file: Option<PathBuf>,
    },
    /// Items being written, kept on this node only (never signed or sent) until published
    Draft {
        #[command(subcommand)]
        cmd: draft_cmd::DraftCommand,
    },
    /// Publish a new item from a Markdown file with YAML front matter, or from a Word document (.docx: converted to Markdown, the original attached)
    Publish {
        /// The item file (.md), or a Word document (.docx)
        file: PathBuf,
        #[command(flatten)]
        allow: AllowArgs,
        #[command(flatten)]
        files: FileArgs,
        /// Makes retrying safe: a publish with a key already used here
        /// creates nothing new and prints the item it made (the CLI picks
        /// one for you when it sends the command to a running node)
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Check the file and show what would be published; sign and store nothing
        #[arg(long)]
        check: bool,
    },
    /// Publish a new version of one of this establishment's items
    Revise {
        /// Item id (or a unique prefix of at least 6 characters)
        id: String,
        /// The item file (.md), or a Word document (.docx)
        file: PathBuf,
        #[command(flatten)]
        allow: AllowArgs,
        #[command(flatten)]
        files: FileArgs,
        /// Take this file off the item (by its name; repeatable)
        #[arg(long, value_name = "NAME")]
        detach: Vec<String>,
        /// Check the file and show what would change; sign and store nothing
        #[arg(long)]
        check: bool,
        /// A significant revision: staff asked to read the item are asked again
        #[arg(long)]
        significant: bool,
        /// With --significant: the date to read it by (four weeks on unless given)
        #[arg(long, value_parser = parse_date, requires = "significant")]
        read_by: Option<Date>,
    },
    /// Change one of this establishment's items in your editor ($VISUAL or $EDITOR): checked when you save, the change shown, published as a new version once you say yes
    Edit {
        /// Item id (or a unique prefix)
        id: String,
    },
    /// Adopt another establishment's item for yours: a copy your establishment owns, recording the source and the version taken, without the source's approval and dates
    Adopt {
        /// The source item (id or a unique prefix)
        id: String,
        /// Change the copy in your editor before it is published
        #[arg(long)]
        edit: bool,
        #[command(flatten)]
        allow: AllowArgs,
    },
    /// Take what the source of an adopted item changed into your copy, keeping your own changes, as a new version
    TakeChange {
        /// Your adopted item (id or a unique prefix)
        id: String,
        /// Show the source's change and what taking it gives; publish nothing
        #[arg(long)]
        check: bool,
        /// Open the merged copy in your editor first (needed where you and the source changed the same lines)
        #[arg(long, conflicts_with = "check")]
        edit: bool,
        #[command(flatten)]
        allow: AllowArgs,
    },
    /// Mark an item superseded by a newer one
    Supersede {
        /// The item being replaced
        id: String,
        /// The item that replaces it
        #[arg(long, value_name = "NEW_ID")]
        by: String,
    },
    /// Withdraw an item
    Withdraw {
        /// The item
        id: String,
        /// Why it is withdrawn
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        allow: AllowArgs,
    },
    /// Approve the current version of one of this establishment's items, signed with your own key; a version submitted for approval (`status: submitted`) is then published
    Approve {
        /// Item id (or a unique prefix)
        id: String,
        /// Your key file (from `gatehouse key generate member`, delegated with `gatehouse member add`); this node's publishing key when left out
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Record that an item in force was reviewed and needs no change: a signed change moving its review date
    Review {
        /// Item id (or a unique prefix)
        id: String,
        /// The next review date (YYYY-MM-DD); three years from today when left out
        #[arg(long, value_parser = parse_date)]
        next: Option<Date>,
        /// Your key file; this node's publishing key when left out
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Ask staff to read the current version of one of this establishment's items by a date ("all nurses must read version 3")
    ReadRequest {
        /// Item id (or a unique prefix)
        id: String,
        /// A job asked (doctor, nurse, pharmacist, pharmacy-technician, healthcare-assistant, ...); give it again for more
        #[arg(long, value_parser = parse_vocab::<Job>, conflicts_with = "everyone")]
        job: Vec<Job>,
        /// Ask all staff
        #[arg(long)]
        everyone: bool,
        /// The date to read it by (YYYY-MM-DD)
        #[arg(long, value_parser = parse_date)]
        by: Date,
        /// Your key file; this node's publishing key when left out
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Sign that you have read and understood the current version of an item of your establishment (staff do this on the item's web page)
    Acknowledge {
        /// Item id (or a unique prefix)
        id: String,
        /// Your key file; this node's publishing key when left out
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Who has read an item's requested version and who has not, by when
    Register {
        /// Item id (or a unique prefix)
        id: String,
    },
    /// Write an inspection pack: every item an establishment has in force, with front sheets, approvals, version history, review status, acknowledgement registers and provenance, as pages that print well plus the signed envelopes they were built from; `pack verify DIR` checks one anywhere
    #[command(args_conflicts_with_subcommands = true)]
    Pack {
        #[command(subcommand)]
        cmd: Option<pack_cmd::PackCommand>,
        /// The establishment (name, part of it, or id); this node's own when left out
        #[arg(long)]
        establishment: Option<String>,
        /// A new (or empty) directory to write the pack to
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show this establishment's rules, or sign new ones: whether an approval by a version's own author counts, and when review reminders start
    Rules {
        /// Require a second person to approve a version (on or off)
        #[arg(long, value_parser = parse_on_off)]
        two_person_approval: Option<bool>,
        /// Start review reminders this many months before a review date (1 to 36; 6 unless set)
        #[arg(long)]
        reminder_months: Option<u16>,
        /// Your key file; this node's publishing key when left out
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// List items
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one item
    Show {
        /// Item id (or a unique prefix)
        id: String,
        /// Show this version instead of the latest
        #[arg(long)]
        version: Option<u64>,
        /// Print the item as a file (front matter and body), ready to edit and `revise`
        #[arg(long)]
        source: bool,
    },
    /// Every version of an item: who signed it, when, what changed
    History {
        /// Item id (or a unique prefix)
        id: String,
    },
    /// Full-text search, ranked
    Search {
        /// What to look for
        query: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Most results to show
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// This establishment's items due for review
    Due {
        /// How far ahead to look, e.g. 90d, 12w, 6m; when review reminders start (6 months unless `gatehouse rules` says otherwise) when left out
        #[arg(long, value_parser = parse_period)]
        within: Option<i64>,
    },
    /// The establishments in the network
    Establishments,
    /// What this node holds, anything pending or rejected, and its peers
    Status {
        /// Warn when no reconciliation with any peer has completed for this long (e.g. 24h, 3d)
        #[arg(long, default_value = "1d", value_parser = parse_duration_ms)]
        stale_after: u64,
    },
    /// The network: its admins and admin-set changes
    Network {
        #[command(subcommand)]
        cmd: trust_cmd::NetworkCommand,
    },
    /// For network admins: admit establishments, revoke keys
    Trust {
        #[command(subcommand)]
        cmd: trust_cmd::TrustCommand,
    },
    /// For site leads: who may publish for this establishment
    Member {
        #[command(subcommand)]
        cmd: trust_cmd::MemberCommand,
    },
    /// A QI initiative's measures over time: define them, add values, note PDSA cycles, set the progress score; `measure show` gives the SPC signals
    Measure {
        #[command(subcommand)]
        cmd: measure_cmd::MeasureCommand,
    },
    /// For site leads: the people who sign in to this node's web page
    Staff {
        #[command(subcommand)]
        cmd: forum_cmd::StaffCommand,
    },
    /// Ask the network for clinical advice
    Ask {
        /// The question in one line
        #[arg(long)]
        title: String,
        #[command(flatten)]
        body: BodyArgs,
        /// A care pathway it concerns (repeat for more)
        #[arg(long = "pathway", required = true, value_parser = parse_vocab::<Pathway>)]
        pathways: Vec<Pathway>,
        /// A setting type it concerns (repeat for more; none: any)
        #[arg(long = "setting", value_parser = parse_vocab::<Setting>)]
        settings: Vec<Setting>,
        /// routine, within-a-week or within-48-hours
        #[arg(long, default_value = "routine", value_parser = parse_vocab::<Urgency>)]
        urgency: Urgency,
        /// A library item it refers to (id or prefix; repeat for more)
        #[arg(long = "link")]
        links: Vec<String>,
    },
    /// Open a discussion: about a library item, or a current issue
    Discuss {
        /// The topic in one line
        #[arg(long)]
        title: String,
        #[command(flatten)]
        body: BodyArgs,
        /// The library item discussed (id or prefix)
        #[arg(long)]
        about: Option<String>,
        /// A care pathway it concerns (repeat for more)
        #[arg(long = "pathway", value_parser = parse_vocab::<Pathway>)]
        pathways: Vec<Pathway>,
    },
    /// Questions and discussions
    Threads {
        /// open, overdue, answered, discussions, mine or all
        #[arg(long, default_value = "open", value_parser = parse_vocab::<ThreadList>)]
        list: ThreadList,
        /// Only in this care pathway (repeat for more)
        #[arg(long = "pathway", value_parser = parse_vocab::<Pathway>)]
        pathways: Vec<Pathway>,
        /// Most threads to show
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One thread with every post
    Thread {
        /// Thread id (or a unique prefix of 8 characters or more)
        id: String,
    },
    /// Answer a question or reply in a discussion
    Reply {
        /// Thread id (or a unique prefix)
        thread: String,
        #[command(flatten)]
        body: BodyArgs,
        /// A post of the thread this reply quotes (id prefix)
        #[arg(long)]
        quoting: Option<String>,
    },
    /// Mark the answer that resolved one of this site's questions
    Resolve {
        /// Question id (or a unique prefix)
        question: String,
        /// The answer (id prefix, as `gatehouse thread` shows it)
        #[arg(long)]
        answer: String,
    },
    /// Hide a post by this site's staff, or with --network any post (it stays in the signed history, shown as hidden)
    Hide {
        /// The post (id, or a unique prefix of 6 characters or more)
        post: String,
        /// Why, for the moderation log
        #[arg(long)]
        reason: String,
        /// Hide it for every site, as a network admin (signed with keys/admin.key)
        #[arg(long)]
        network: bool,
    },
    /// Posts hidden by moderators, newest first
    Moderation,
    /// Make, show and rotate keys
    Key {
        #[command(subcommand)]
        cmd: trust_cmd::KeyCommand,
    },
    /// Move envelopes by file, for sites without a connection
    Bundle {
        #[command(subcommand)]
        cmd: trust_cmd::BundleCommand,
    },
    /// The peer book: addresses this node dials and keeps dialling
    Peers {
        #[command(subcommand)]
        cmd: PeersCommand,
    },
    /// Run the node: replication with peers, and the local API the CLI uses while it runs
    Node {
        #[command(subcommand)]
        cmd: NodeCommand,
    },
    /// The node's configuration: `gatehouse.toml` and `node run`'s flags
    Config {
        #[command(subcommand)]
        cmd: ConfigCommand,
    },
    /// Write a signed copy of this node (every envelope, its configuration
    /// and peer book) to FILE, while it runs or not
    Backup {
        /// Where to write it
        file: PathBuf,
        /// Seal the key files into it too, under a passphrase read from
        /// --passphrase-file or $GATEHOUSE_BACKUP_PASSPHRASE
        #[arg(long)]
        include_keys: bool,
        /// A file holding the passphrase (its first line)
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// The settings file the node runs with, carried in the backup
        /// [default: gatehouse.toml in the data directory, if there is one]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Rebuild a node in --home (which must not hold one) from a backup;
    /// items, catalog and index are derived again
    Restore {
        /// The backup
        file: PathBuf,
        /// A file holding the passphrase its keys were sealed under
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Check this node: data directory, keys, configuration, store and
    /// index, clock, peers and ports; says what to fix (exit 2 if anything
    /// must be)
    Doctor(daemon::RunArgs),
    /// Print a shell completion script: `gatehouse completions bash > /etc/bash_completion.d/gatehouse`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `gatehouse man | man -l -`
    Man,
    /// Run a local demo network of three nodes made from the sample library, until Ctrl-C
    Demo {
        /// Where to make it [default: a new directory under the system temp directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The sample library to load
        #[arg(long, value_name = "DIR")]
        samples: Option<PathBuf>,
        /// Stop once the new item has arrived everywhere instead of running until Ctrl-C
        #[arg(long)]
        no_wait: bool,
    },
}

/// A post's text: given on the command line or read from a file.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BodyArgs {
    /// The text (Markdown)
    #[arg(
        long,
        required_unless_present = "body_file",
        conflicts_with = "body_file"
    )]
    body: Option<String>,
    /// Read the text from this file instead
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
}

impl BodyArgs {
    fn read(self) -> anyhow::Result<String> {
        match (self.body, self.body_file) {
            (Some(b), _) => Ok(b),
            (None, Some(f)) => {
                std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))
            }
            (None, None) => Err(usage("give the text with --body or --body-file")),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub(crate) enum PeersCommand {
    /// Remember a peer's address, e.g. /ip4/192.0.2.7/tcp/4001
    Add {
        /// The multiaddress
        address: libp2p::Multiaddr,
    },
    /// Forget a peer's address
    Remove {
        /// The multiaddress
        address: String,
    },
    /// Remembered peers, and connected ones when the node runs
    List,
}

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the configuration `node run` would use with these flags, and
    /// where each value comes from (a flag, the file, or the default)
    Show(daemon::RunArgs),
}

#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Start the node and keep it running until Ctrl-C or SIGTERM
    Run(daemon::RunArgs),
}

#[derive(Args)]
pub(crate) struct InitArgs {
    /// The establishment's name, e.g. "HMP Northgate" (founds a new network)
    #[arg(long, required_unless_present = "join", conflicts_with = "join")]
    establishment: Option<String>,
    /// Join an existing network with an invitation bundle from its admin
    /// (needs the key it admits in keys/: `gatehouse key generate establishment`)
    #[arg(long, value_name = "FILE")]
    join: Option<PathBuf>,
    /// Its setting type
    #[arg(long, default_value = "local-remand", value_parser = parse_vocab::<Setting>)]
    setting: Setting,
    /// Its nation
    #[arg(long, default_value = "england", value_parser = parse_vocab::<Nation>)]
    nation: Nation,
    /// Name of the network this node founds
    #[arg(long, default_value = "Gatehouse network")]
    network_name: String,
    /// Who holds the first publishing key
    #[arg(long, default_value = "Healthcare manager")]
    member_name: String,
}

#[derive(Args)]
pub(crate) struct AllowArgs {
    /// Accept this text though it looks like a patient identifier (a reviewed false positive); repeatable
    #[arg(long = "allow-identifier", value_name = "TEXT")]
    allowed: Vec<String>,
}

#[derive(Args)]
pub(crate) struct FileArgs {
    /// Attach this file to the version (PDF, Word, Excel, PNG, JPEG; up to
    /// 50 MiB each; repeatable). A file of the same name replaces the one
    /// the item carries
    #[arg(long, value_name = "FILE")]
    attach: Vec<PathBuf>,
    /// With a Word document: its front matter (YAML: title, kind, summary,
    /// pathways, settings, nation, review_due), asked for on the terminal
    /// if not given
    #[arg(long, value_name = "FILE")]
    meta: Option<PathBuf>,
}

impl FileArgs {
    /// The files to attach: those named, and a Word document given as the
    /// item file (its original is kept with the item).
    fn with_original(&self, file: &Path) -> Vec<PathBuf> {
        let mut out = self.attach.clone();
        if attach_cmd::is_word(file) && !out.iter().any(|p| p == file) {
            out.push(file.to_path_buf());
        }
        out
    }
}

#[derive(Args, Default, Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FilterArgs {
    /// Only this kind
    #[arg(long, value_parser = parse_vocab::<Kind>)]
    kind: Option<Kind>,
    /// Only this care pathway
    #[arg(long, value_parser = parse_vocab::<Pathway>)]
    pathway: Option<Pathway>,
    /// Only items for this setting type
    #[arg(long, value_parser = parse_vocab::<Setting>)]
    setting: Option<Setting>,
    /// Only this nation
    #[arg(long, value_parser = parse_vocab::<Nation>)]
    nation: Option<Nation>,
    /// Only this establishment (name or part of it, or its key)
    #[arg(long)]
    establishment: Option<String>,
    /// Only this status
    #[arg(long, value_parser = parse_vocab::<Status>)]
    status: Option<Status>,
    /// Only items whose review is due before this date (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    review_due_before: Option<Date>,
}

fn parse_vocab<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| e.to_string())
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a date; write YYYY-MM-DD"))
}

/// "30m", "24h", "3d" as milliseconds.
fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split]
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 30m, 24h, 3d"))?;
    let unit_ms = match &s[split..] {
        "s" => 1_000,
        "m" => 60_000,
        "h" | "" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("{s:?}: unknown unit {other:?}; use s, m, h or d")),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// "90d", "12w", "6m" (30-day months), "1y" or a bare number of days.
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        other => Err(format!("{other:?}: say on or off")),
    }
}

/// Reads a person's key file given with `--key`, as a seed to sign with.
fn key_seed(path: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let key = gatehouse_node::home::read_key_file(&path)?
        .ok_or_else(|| anyhow::anyhow!("no key file at {}", path.display()))?;
    Ok(Some(hex::encode(key.to_seed())))
}

fn parse_period(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "d"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a period; write e.g. 90d, 12w, 6m"))?;
    let days = match unit {
        "d" => 1,
        "w" => 7,
        "m" => 30,
        "y" => 365,
        _ => return Err(format!("{s:?}: unit must be d, w, m or y")),
    };
    n.checked_mul(days)
        .filter(|d| *d <= 36_500)
        .ok_or_else(|| format!("{s:?} is too long a period"))
}

/// A failure the user caused by how they called the command (exit 1).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn default_home() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("org", "Gatehouse", "gatehouse")
        .map(|d| d.data_dir().to_path_buf())
        .context("no home directory to keep the node's data in; pass --home DIR")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let home = Home::new(match &cli.home {
        Some(h) => h.clone(),
        None => default_home()?,
    });
    let stdout = io::stdout();
    let mut out: Box<dyn Write> = if cli.json {
        Box::new(stdout.lock())
    } else {
        let tty = stdout.is_terminal();
        Box::new(output::Terminal::new(stdout.lock(), tty))
    };
    let op = match cli.command {
        Command::Node {
            cmd: NodeCommand::Run(args),
        } => return daemon::run(home, args),
        Command::Init(args) => return init(&home, &mut out, cli.json, args),
        Command::Config {
            cmd: ConfigCommand::Show(args),
        } => return config_show(&home, &mut out, cli.json, &args),
        // Written whole, straight to standard output: the scripts are the
        // output, not text for a reader's terminal.
        Command::Restore {
            file,
            passphrase_file,
        } => return restore(&home, &mut out, cli.json, &file, passphrase_file.as_deref()),
        Command::Doctor(args) => return doctor_cmd(&home, &mut out, cli.json, &args),
        // Needs no node: a pack is checked on any machine.
        Command::Pack {
            cmd: Some(pack_cmd::PackCommand::Verify { dir }),
            ..
        } => {
            let report = gatehouse_node::pack::verify(&dir).map_err(|e| {
                anyhow::anyhow!("the pack in {} does not verify: {e}", dir.display())
            })?;
            return pack_cmd::render(&report, true, &mut out, cli.json);
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gatehouse", &mut script);
            return write_stdout(&script);
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            return write_stdout(&page);
        }
        Command::Demo {
            dir,
            samples,
            no_wait,
        } => {
            return demo::run(
                &mut out,
                dir,
                samples.unwrap_or_else(gatehouse_node::sample::default_sample_dir),
                no_wait,
            );
        }
        Command::Key {
            cmd: trust_cmd::KeyCommand::Rotate { which },
        } => Op::Trust(TrustOp::RotateKey { which }),
        Command::Key { cmd } => return trust_cmd::key(&home, &mut out, cli.json, cmd),
        Command::Edit { id } => return edit::edit(home, &mut out, cli.json, &id, cli.yes),
        Command::Adopt { id, edit, allow } => {
            return adopt_cmd::adopt(home, &mut out, cli.json, &id, edit, allow.allowed);
        }
        Command::TakeChange {
            id,
            check,
            edit,
            allow,
        } => {
            return adopt_cmd::take_change(
                home,
                &mut out,
                cli.json,
                cli.yes,
                &id,
                check,
                edit,
                allow.allowed,
            );
        }
        Command::New { kind, file } => return new_item(home, &mut out, kind, file.as_deref()),
        Command::Draft { cmd } => return draft_cmd::run(home, &mut out, cli.json, cli.yes, cmd),
        Command::Show {
            id,
            version,
            source: true,
        } => {
            let outcome = ops::dispatch(home, Op::Read(ReadOp::Show { id, version }))?;
            return output::render_source(&outcome, &mut out, cli.json);
        }
        command => {
            if !cli.yes {
                confirm_destructive(&home, &command)?;
            }
            let op = command.into_op(&home)?;
            if !cli.yes {
                confirm_new_item(&home, &op)?;
            }
            op
        }
    };
    let outcome = ops::dispatch(home, op)?;
    output::render(&outcome, &mut out, cli.json)
}

/// For a command that cannot be undone, names what it acts on and asks on
/// the terminal; without a terminal it refuses (scripts pass `--yes`).
fn confirm_destructive(home: &Home, command: &Command) -> anyhow::Result<()> {
    use ops::{Outcome, Target};
    use trust_cmd::{MemberCommand, TrustCommand};
    let describe = |target: Target| -> anyhow::Result<String> {
        match ops::dispatch(home.clone(), Op::Read(ReadOp::Describe(target)))? {
            Outcome::Described { what } => Ok(what),
            _ => anyhow::bail!("the library did not say what the command acts on"),
        }
    };
    let question = match command {
        Command::Withdraw { id, .. } => {
            format!(
                "Withdraw {} from the library?",
                describe(Target::Item(id.clone()))?
            )
        }
        Command::Trust {
            cmd: TrustCommand::Revoke { key: Some(key), .. },
        }
        | Command::Member {
            cmd: MemberCommand::Remove { key, .. },
        } => format!(
            "Revoke {}? Nothing it signs from now on will be accepted anywhere.",
            describe(Target::Key(key.clone()))?
        ),
        Command::Trust {
            cmd:
                TrustCommand::Revoke {
                    establishment: Some(text),
                    ..
                },
        } => format!(
            "Remove {} from the network?",
            describe(Target::Establishment(text.clone()))?
        ),
        Command::Staff {
            cmd: forum_cmd::StaffCommand::Remove { login, .. },
        } => {
            let account = gatehouse_node::staff::Staff::of(home)
                .list()?
                .into_iter()
                .find(|a| a.login == *login)
                .with_context(|| {
                    format!("no staff account {login:?} here (gatehouse staff list)")
                })?;
            format!(
                "Remove {} ({}, {})? Their key is revoked network-wide; their posts stay.",
                account.name,
                login,
                account.role.slug()
            )
        }
        _ => return Ok(()),
    };
    ask(&format!("{question} This cannot be undone."))
}

/// Asks `question` on the terminal; without a terminal, or with any answer
/// but yes, nothing is done (usage error, exit 1).
pub(crate) fn ask(question: &str) -> anyhow::Result<()> {
    if !io::stdin().is_terminal() {
        return Err(usage(format!(
            "{question} It asks first: run it on a terminal, or pass --yes"
        )));
    }
    eprint!("{question} [y/N] ");
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(usage("nothing was done"))
    }
}

/// Before a publish whose title this establishment already uses: the file
/// is more likely a revision of that item than a second one, so it asks.
pub(crate) fn confirm_new_item(home: &Home, op: &Op) -> anyhow::Result<()> {
    let Op::Publish {
        file,
        content,
        idempotency_key: None,
        ..
    } = op
    else {
        return Ok(());
    };
    let check = Op::Check {
        file: file.clone(),
        content: content.clone(),
        revise: None,
    };
    let ops::Outcome::Checked(report) = ops::dispatch(home.clone(), check)? else {
        return Ok(());
    };
    let Some(existing) = report.same_title.first() else {
        return Ok(());
    };
    let short = &existing.item.id.to_hex()[..8];
    ask(&format!(
        "{} already has \"{}\" ({}, version {}). To publish a new version of it, run `gatehouse revise {} {}`. Publish this file as a second, separate item?",
        existing
            .establishment
            .name
            .as_deref()
            .unwrap_or("This establishment"),
        existing.item.content.title,
        short,
        existing.item.version,
        short,
        file.display(),
    ))
}

/// `gatehouse new KIND [FILE]`.
fn new_item(
    home: Home,
    out: &mut dyn Write,
    kind: Kind,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let today = Zoned::now().date();
    let ops::Outcome::Described { what: text } =
        ops::dispatch(home, Op::Read(ReadOp::Template { kind, today }))?
    else {
        bail!("the library gave no template");
    };
    let Some(file) = file else {
        write!(out, "{text}")?;
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .with_context(|| {
            format!(
                "cannot write a new file {} (an existing file is never overwritten)",
                file.display()
            )
        })?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    writeln!(
        out,
        "Wrote a new {} to {}. Fill in the title, summary and care pathways, then: gatehouse publish {} --check",
        kind.label().to_lowercase(),
        file.display(),
        file.display()
    )?;
    Ok(())
}

/// `publish --check` or `revise --check` of `file`.
fn check_op(
    file: &Path,
    meta: Option<&Path>,
    allowed: &[String],
    revise: Option<String>,
) -> anyhow::Result<Op> {
    let file = ops::absolute(file)?;
    Ok(Op::Check {
        content: read_source(&file, meta, allowed)?,
        file,
        revise,
    })
}

impl Command {
    /// The op for a command that needs the library: its draft files read
    /// and checked, its paths absolute.
    fn into_op(self, home: &Home) -> anyhow::Result<Op> {
        Ok(match self {
            Command::Publish {
                file,
                allow,
                files,
                check: true,
                ..
            } => check_op(&file, files.meta.as_deref(), &allow.allowed, None)?,
            Command::Revise {
                id,
                file,
                allow,
                files,
                check: true,
                ..
            } => check_op(&file, files.meta.as_deref(), &allow.allowed, Some(id))?,
            Command::Publish {
                file,
                allow,
                files,
                idempotency_key,
                check: false,
            } => {
                let file = ops::absolute(&file)?;
                let content = read_source(&file, files.meta.as_deref(), &allow.allowed)?;
                Op::Publish {
                    content,
                    attachments: attach_cmd::import(home, &files.with_original(&file))?,
                    file,
                    allowed: allow.allowed,
                    idempotency_key,
                }
            }
            Command::Revise {
                id,
                file,
                allow,
                files,
                detach,
                check: false,
                significant,
                read_by,
            } => {
                let file = ops::absolute(&file)?;
                let content = read_source(&file, files.meta.as_deref(), &allow.allowed)?;
                Op::Revise {
                    id,
                    content,
                    attach: attach_cmd::import(home, &files.with_original(&file))?,
                    detach,
                    file,
                    allowed: allow.allowed,
                    significant: significant.then_some(read_by),
                }
            }
            Command::ReadRequest {
                id,
                job,
                everyone,
                by,
                key,
            } => {
                if job.is_empty() && !everyone {
                    return Err(usage(
                        "say who must read it: --job nurse (as many as needed) or --everyone",
                    ));
                }
                Op::RequestReading {
                    id,
                    jobs: job,
                    due: by,
                    key: key_seed(key)?,
                }
            }
            Command::Acknowledge { id, key } => Op::Acknowledge {
                id,
                key: key_seed(key)?,
            },
            // `pack verify` returned above.
            Command::Pack {
                establishment, out, ..
            } => {
                let Some(out) = out else {
                    return Err(usage("say where to write the pack: --out DIR"));
                };
                Op::Pack {
                    establishment,
                    out: ops::absolute(&out)?,
                    today: Zoned::now().date(),
                }
            }
            Command::Register { id } => Op::Register {
                id,
                today: Zoned::now().date(),
            },
            Command::Supersede { id, by } => Op::Supersede { id, by },
            Command::Withdraw { id, reason, allow } => Op::Withdraw {
                id,
                reason,
                allowed: allow.allowed,
            },
            Command::List { filter } => Op::List { filter },
            Command::Show { id, version, .. } => Op::Read(ReadOp::Show { id, version }),
            Command::History { id } => Op::Read(ReadOp::History { id }),
            Command::Search {
                query,
                filter,
                limit,
            } => Op::Read(ReadOp::Search {
                query,
                filter,
                limit,
            }),
            Command::Establishments => Op::Read(ReadOp::Establishments),
            Command::Due { within } => Op::Due {
                today: Zoned::now().date(),
                within_days: within,
            },
            Command::Approve { id, key } => Op::Approve {
                id,
                key: key_seed(key)?,
            },
            Command::Review { id, next, key } => Op::Review {
                id,
                next,
                key: key_seed(key)?,
            },
            Command::Rules {
                two_person_approval,
                reminder_months,
                key,
            } => Op::Rules {
                two_person_approval,
                reminder_months,
                key: key_seed(key)?,
            },
            Command::Status { stale_after } => Op::Status {
                stale_after_ms: stale_after,
            },
            Command::Network { cmd } => Op::Trust(TrustOp::Network(cmd)),
            Command::Trust { cmd } => Op::Trust(TrustOp::Trust(cmd).resolved()?),
            Command::Member { cmd } => Op::Trust(TrustOp::Member(cmd).resolved()?),
            Command::Bundle { cmd } => Op::Trust(TrustOp::Bundle(cmd).resolved()?),
            Command::Key {
                cmd: trust_cmd::KeyCommand::Rotate { which },
            } => Op::Trust(TrustOp::RotateKey { which }),
            Command::Peers { cmd } => Op::Peers(cmd),
            Command::Backup {
                file,
                include_keys,
                passphrase_file,
                config,
            } => {
                let passphrase = passphrase(passphrase_file.as_deref())?;
                if include_keys && passphrase.is_none() {
                    return Err(usage(
                        "--include-keys seals the keys under a passphrase: give --passphrase-file FILE or set GATEHOUSE_BACKUP_PASSPHRASE",
                    ));
                }
                if let Some(p) = &passphrase {
                    gatehouse_node::staff::check_password(p)
                        .map_err(|e| usage(format!("the passphrase: {e}")))?;
                }
                Op::Backup {
                    file: std::path::absolute(&file)
                        .with_context(|| format!("{}", file.display()))?,
                    passphrase: passphrase.filter(|_| include_keys),
                    settings: config::for_backup(home, config.as_deref())?,
                }
            }
            Command::Staff { cmd } => Op::Forum(ForumOp::Staff(cmd)),
            Command::Measure { cmd } => Op::Measure(measure_cmd::op(cmd)?),
            Command::Ask {
                title,
                body,
                pathways,
                settings,
                urgency,
                links,
            } => Op::Forum(ForumOp::Ask {
                title,
                body: body.read()?,
                pathways,
                settings,
                urgency,
                links,
            }),
            Command::Discuss {
                title,
                body,
                about,
                pathways,
            } => Op::Forum(ForumOp::Discuss {
                title,
                body: body.read()?,
                about,
                pathways,
            }),
            Command::Threads {
                list,
                pathways,
                limit,
            } => Op::Forum(ForumOp::Threads {
                list,
                pathways,
                limit,
                now_ms: now_ms(),
            }),
            Command::Thread { id } => Op::Forum(ForumOp::Thread {
                id,
                now_ms: now_ms(),
            }),
            Command::Reply {
                thread,
                body,
                quoting,
            } => Op::Forum(ForumOp::Reply {
                thread,
                body: body.read()?,
                quoting,
            }),
            Command::Resolve { question, answer } => {
                Op::Forum(ForumOp::Resolve { question, answer })
            }
            Command::Hide {
                post,
                reason,
                network,
            } => Op::Forum(ForumOp::Hide {
                post,
                reason,
                network,
            }),
            Command::Moderation => Op::Forum(ForumOp::Moderation),
            Command::Init(_)
            | Command::Edit { .. }
            | Command::Adopt { .. }
            | Command::TakeChange { .. }
            | Command::New { .. }
            | Command::Draft { .. }
            | Command::Demo { .. }
            | Command::Node { .. }
            | Command::Config { .. }
            | Command::Restore { .. }
            | Command::Doctor(_)
            | Command::Completions { .. }
            | Command::Man
            | Command::Key { .. } => {
                return Err(usage("this command does not run on the library"));
            }
        })
    }
}

fn doctor_cmd(
    home: &Home,
    out: &mut impl Write,
    json: bool,
    args: &daemon::RunArgs,
) -> anyhow::Result<()> {
    let checks = doctor::run(home, args);
    let failed = checks
        .iter()
        .filter(|c| c.state == doctor::State::Fail)
        .count();
    if json {
        print_json(out, &serde_json::json!({ "checks": checks }))?;
    } else {
        for c in &checks {
            let mark = match c.state {
                doctor::State::Ok => "ok  ",
                doctor::State::Warn => "warn",
                doctor::State::Fail => "FAIL",
            };
            writeln!(out, "{mark} {}: {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "     fix: {fix}")?;
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} checks failed; see the fixes above",
            checks.len()
        );
    }
    Ok(())
}

/// The passphrase for a backup's keys: the first line of `file`, else
/// `$GATEHOUSE_BACKUP_PASSPHRASE`.
fn passphrase(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the passphrase file {}", f.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            return Err(usage(format!("{} holds no passphrase", f.display())));
        }
        return Ok(Some(line));
    }
    Ok(std::env::var("GATEHOUSE_BACKUP_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty()))
}

fn restore(
    home: &Home,
    out: &mut impl Write,
    json: bool,
    file: &std::path::Path,
    passphrase_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let secret = passphrase(passphrase_file)?;
    let (_, report) = Library::restore(home, file, secret.as_deref()).with_context(|| {
        format!(
            "restoring {} into {}",
            file.display(),
            home.root().display()
        )
    })?;
    if json {
        return print_json(out, &report);
    }
    writeln!(
        out,
        "restored {} envelopes ({} in effect, {} items) and {} peer addresses into {}",
        report.envelopes,
        report.new,
        report.items,
        report.peers,
        home.root().display()
    )?;
    match &report.settings {
        Some(RestoredSettings {
            from,
            written: Some(to),
        }) => writeln!(
            out,
            "settings file (was {}) restored to {}",
            from.display(),
            to.display()
        )?,
        Some(RestoredSettings {
            from,
            written: None,
        }) => writeln!(
            out,
            "the backup's settings file (was {}) was not restored: {} holds one already",
            from.display(),
            home.root()
                .join(gatehouse_node::backup::SETTINGS_FILE)
                .display()
        )?,
        None => {}
    }
    if report.keys.is_empty() {
        writeln!(
            out,
            "the backup held no keys: copy the node's key files into {} before `gatehouse node run`",
            home.keys_dir().display()
        )?;
    } else {
        writeln!(out, "keys restored: {}", report.keys.join(", "))?;
    }
    Ok(())
}

/// Writes `bytes` to standard output as they are; a reader that stops
/// early (`| head`) ends it quietly.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn config_show(
    home: &Home,
    out: &mut impl Write,
    json: bool,
    args: &daemon::RunArgs,
) -> anyhow::Result<()> {
    let config = config::Config::resolve(home, args)?;
    let entries = config.entries();
    if json {
        let settings: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(key, value, from)| {
                (
                    (*key).to_string(),
                    serde_json::json!({ "value": value, "from": from }),
                )
            })
            .collect();
        return print_json(
            out,
            &serde_json::json!({ "file": config.file, "settings": settings }),
        );
    }
    match &config.file {
        Some(f) => writeln!(out, "# read from {}", f.display())?,
        None => writeln!(
            out,
            "# no configuration file ({} in the data directory, or --config FILE)",
            config::CONFIG_FILE
        )?,
    }
    let mut section = "";
    for (key, value, from) in entries {
        let (head, name) = key.split_once('.').unwrap_or(("", key));
        if head != section {
            writeln!(out, "\n[{head}]")?;
            section = head;
        }
        // A JSON string, number, boolean or list of strings is written the
        // same way in TOML; a setting with no value is left commented out.
        if value.is_null() {
            writeln!(out, "# {name} is not set  # {from}")?;
        } else {
            writeln!(out, "{name} = {value}  # {from}")?;
        }
    }
    Ok(())
}

fn init(home: &Home, out: &mut impl Write, json: bool, args: InitArgs) -> anyhow::Result<()> {
    if let Some(file) = args.join {
        let invite = gatehouse_node::replica::bundle::read_file(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let (_, report) = Library::join(home, &invite, &args.member_name)
            .with_context(|| format!("joining with {}", file.display()))?;
        if json {
            return print_json(out, &report);
        }
        writeln!(
            out,
            "Joined network {} ({}) as {} ({})",
            report.network_name.as_deref().unwrap_or("?"),
            report.network,
            report.establishment_name,
            report.establishment_id
        )?;
        if let Some(m) = report.member_key {
            writeln!(out, "publishing key {m}")?;
        }
        writeln!(out, "node key       {}", report.node_key)?;
        if !report.node_delegated {
            writeln!(
                out,
                "This node has no establishment key, so its node key is not delegated yet: ask your site lead to run `gatehouse member add --role device --key {} --name \"...\"`.",
                report.node_key
            )?;
        }
        writeln!(
            out,
            "Imported {} envelopes ({} new).",
            report.imported.read, report.imported.new
        )?;
        return Ok(());
    }
    let establishment = args
        .establishment
        .ok_or_else(|| usage("give --establishment NAME to found a network, or --join FILE"))?;
    let (_, report) = Library::init(
        home,
        &InitOptions {
            establishment: establishment.clone(),
            setting: args.setting,
            nation: args.nation,
            network_name: args.network_name,
            member_name: args.member_name,
        },
    )?;
    if json {
        return print_json(out, &report);
    }
    writeln!(out, "Initialised a Gatehouse node in {}", report.home)?;
    writeln!(
        out,
        "network           {} ({})",
        report.network_name, report.network
    )?;
    writeln!(
        out,
        "establishment     {} ({establishment})",
        report.establishment_id
    )?;
    writeln!(out, "admin key         {}", report.admin_key)?;
    writeln!(out, "establishment key {}", report.establishment_key)?;
    writeln!(out, "publishing key    {}", report.member_key)?;
    writeln!(out, "node key          {}", report.node_key)?;
    writeln!(
        out,
        "\nSecret keys are in {} (readable by you only). Keep a copy of establishment.key and admin.key somewhere safe and offline.",
        home.keys_dir().display()
    )?;
    Ok(())
}

/// An item from its file: Markdown with front matter, or a Word document
/// with its front matter from `meta` (or asked for).
fn read_source(
    file: &Path,
    meta: Option<&Path>,
    allowed: &[String],
) -> anyhow::Result<gatehouse_protocol::item::ItemContent> {
    if attach_cmd::is_word(file) {
        return attach_cmd::read_word(file, meta, allowed);
    }
    if meta.is_some() {
        return Err(usage(format!(
            "--meta is for a Word document; {} carries its front matter itself",
            file.display()
        )));
    }
    read_draft(file, allowed)
}

fn read_draft(
    file: &Path,
    allowed: &[String],
) -> anyhow::Result<gatehouse_protocol::item::ItemContent> {
    let text = read_item_text(file)?;
    gatehouse_node::authoring::draft::parse(&text, allowed)
        .with_context(|| format!("{}", file.display()))
}

/// An item file's text, read no further than an item may be long.
pub(crate) fn read_item_text(file: &Path) -> anyhow::Result<String> {
    use gatehouse_node::authoring::draft::{DraftError, MAX_DRAFT_BYTES};
    use std::io::Read;
    // Read at most one byte past the limit: a device or a huge file is
    // refused without being read into memory.
    let mut text = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_DRAFT_BYTES as u64 + 1).read_to_end(&mut text))
        .with_context(|| format!("cannot read {}", file.display()))?;
    if text.len() > MAX_DRAFT_BYTES {
        let size = std::fs::metadata(file)
            .ok()
            .filter(|m| m.is_file())
            .map_or(text.len(), |m| {
                usize::try_from(m.len()).unwrap_or(usize::MAX)
            });
        return Err(usage(format!(
            "{}: {}",
            file.display(),
            DraftError::TooLarge(size)
        )));
    }
    String::from_utf8(text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (byte {})",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

pub(crate) fn build_filter(view: &ReadView, f: FilterArgs) -> anyhow::Result<Filter> {
    let owners = match f.establishment {
        None => None,
        Some(name) => {
            let keys = view.find_establishments(&name);
            if keys.is_empty() {
                bail!(UsageError(format!(
                    "no establishment matches {name:?}; see `gatehouse establishments`"
                )));
            }
            Some(keys)
        }
    };
    Ok(Filter {
        kind: f.kind,
        pathway: f.pathway,
        setting: f.setting,
        status: f.status,
        nation: f.nation,
        owners,
        review_due_before: f.review_due_before,
        adopted_from: None,
    })
}
