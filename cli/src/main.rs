//! `gatehouse`: the command line of a Gatehouse node.
//!
//! Site leads publish and revise their establishment's documents; clinicians
//! list, search and read the whole network's library. Arguments are parsed
//! by clap, checked into real values, then handed to the node library. Exit
//! codes: 0 success, 1 usage error, 2 any other failure.

mod ctx;
mod daemon;
mod demo;
mod reader;
mod render;
mod trust_cmd;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use gatehouse_node::filter::Filter;
use gatehouse_node::home::Home;
use gatehouse_node::library::{InitOptions, ItemView, Library};
use gatehouse_protocol::jiff::Zoned;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting, Status};
use reader::Reader;
use serde::Serialize;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a node: keys, a new network, this establishment admitted
    Init(InitArgs),
    /// Publish a new item from a Markdown file with YAML front matter
    Publish {
        /// The item file
        file: PathBuf,
        #[command(flatten)]
        allow: AllowArgs,
        /// Makes retrying safe: a publish with a key already used here
        /// creates nothing new and prints the item it made (the CLI picks
        /// one for you when it sends the command to a running node)
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Publish a new version of one of this establishment's items
    Revise {
        /// Item id (or a unique prefix of at least 6 characters)
        id: String,
        /// The item file
        file: PathBuf,
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
        /// How far ahead to look, e.g. 90d, 12w, 6m
        #[arg(long, default_value = "90d", value_parser = parse_period)]
        within: i64,
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

#[derive(Subcommand)]
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
pub(crate) enum NodeCommand {
    /// Start the node and keep it running until Ctrl-C or SIGTERM
    Run(daemon::RunArgs),
}

impl Command {
    /// Whether the command needs the library (and so goes through the
    /// running node when there is one).
    /// Whether the command only reads items and establishments, so the
    /// running node's JSON API can answer it.
    fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Search { .. }
                | Command::Show { .. }
                | Command::History { .. }
                | Command::Establishments
        )
    }

    fn uses_library(&self) -> bool {
        match self {
            Command::Init(_) | Command::Demo { .. } | Command::Node { .. } => false,
            Command::Key { cmd } => matches!(cmd, trust_cmd::KeyCommand::Rotate { .. }),
            _ => true,
        }
    }
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
struct AllowArgs {
    /// Accept this text though it looks like a patient identifier (a reviewed false positive); repeatable
    #[arg(long = "allow-identifier", value_name = "TEXT")]
    allowed: Vec<String>,
}

#[derive(Args, Default)]
struct FilterArgs {
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

fn usage(msg: impl Into<String>) -> anyhow::Error {
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
    if let Command::Node {
        cmd: NodeCommand::Run(args),
    } = cli.command
    {
        return daemon::run(home, args);
    }
    if cli.command.reads_only()
        && let Some(api) = reader::Api::connect(&home)
    {
        let mut ctx = ctx::Ctx::api(home, api);
        return execute(cli.command, &mut ctx, &mut io::stdout().lock(), cli.json);
    }
    let retry_key = match &cli.command {
        Command::Publish {
            idempotency_key: None,
            ..
        } => Some(hex::encode(gatehouse_node::home::random_bytes::<16>()?)),
        _ => None,
    };
    if cli.command.uses_library()
        && let Some(reply) = daemon::forward(&home, retry_key.as_deref())?
    {
        return reply;
    }
    let mut ctx = ctx::Ctx::direct(home);
    let mut out = io::stdout().lock();
    execute(cli.command, &mut ctx, &mut out, cli.json)
}

/// Runs one command in `ctx`, writing what it prints to `out`.
pub(crate) fn execute(
    command: Command,
    ctx: &mut ctx::Ctx<'_>,
    mut out: &mut dyn Write,
    json: bool,
) -> anyhow::Result<()> {
    let home = ctx.home.clone();
    match command {
        Command::Init(args) => init(&home, &mut out, json, args),
        Command::Publish {
            file,
            allow,
            idempotency_key,
        } => {
            let file = ctx.path(&file);
            let content = read_draft(&file, &allow.allowed)?;
            let lib = ctx.lib()?;
            let id = match &idempotency_key {
                Some(key) => lib.publish_once(&content, &allow.allowed, key),
                None => lib.publish(&content, &allow.allowed),
            }
            .with_context(|| format!("{}", file.display()))?;
            if json {
                return print_json(&mut out, &serde_json::json!({ "id": id }));
            }
            writeln!(out, "{id}")?;
            Ok(())
        }
        Command::Revise { id, file, allow } => {
            let file = ctx.path(&file);
            let content = read_draft(&file, &allow.allowed)?;
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            let version = lib
                .revise(&id, &content, &allow.allowed)
                .with_context(|| format!("{}", file.display()))?;
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "version": version }),
                );
            }
            writeln!(out, "{id} is now at version {version}")?;
            Ok(())
        }
        Command::Supersede { id, by } => {
            let lib = ctx.lib()?;
            let old = lib.resolve(&id)?;
            let new = lib.resolve(&by)?;
            lib.supersede(&old, &new)?;
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": old, "superseded_by": new }),
                );
            }
            writeln!(out, "{old} is superseded by {new}")?;
            Ok(())
        }
        Command::Withdraw { id, reason, allow } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            lib.withdraw(&id, &reason, &allow.allowed)?;
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "status": "withdrawn" }),
                );
            }
            writeln!(out, "{id} is withdrawn")?;
            Ok(())
        }
        Command::List { filter } => {
            let lib = ctx.lib()?;
            let filter = build_filter(&mut *lib, filter)?;
            let items = lib.list(&filter)?;
            if json {
                return print_json(&mut out, &serde_json::json!({ "items": items }));
            }
            if items.is_empty() {
                writeln!(out, "No items match.")?;
            }
            for v in &items {
                write_item_line(&mut out, v)?;
            }
            Ok(())
        }
        Command::Show { id, version } => {
            let view = ctx.reader()?.item(&id, version)?;
            if json {
                return print_json(&mut out, &view);
            }
            write_item(&mut out, &view)
        }
        Command::History { id } => {
            let (id, versions) = ctx.reader()?.history(&id)?;
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "versions": versions }),
                );
            }
            for v in &versions {
                writeln!(
                    out,
                    "v{:<3} {:<10} {}  {} ({}), {}",
                    v.version,
                    v.action,
                    v.at,
                    v.signer.name.as_deref().unwrap_or("unknown key"),
                    v.signer.key.short(),
                    v.establishment
                        .name
                        .as_deref()
                        .unwrap_or("unknown establishment"),
                )?;
                let mut what = v.changed.join(", ");
                if v.lines_added + v.lines_removed > 0 {
                    what.push_str(&format!(
                        " (body +{} -{} lines)",
                        v.lines_added, v.lines_removed
                    ));
                }
                writeln!(out, "     changed: {what}")?;
            }
            Ok(())
        }
        Command::Search {
            query,
            filter,
            limit,
        } => {
            if query.trim().is_empty() {
                return Err(usage("give something to search for"));
            }
            let reader = ctx.reader()?;
            let filter = build_filter(reader, filter)?;
            let results = reader.search(&query, &filter, limit)?;
            if json {
                return print_json(&mut out, &results);
            }
            if results.results.is_empty() {
                writeln!(out, "Nothing found for {query:?}.")?;
                return Ok(());
            }
            writeln!(
                out,
                "{} of {} matching items:\n",
                results.results.len(),
                results.total
            )?;
            let tty = io::stdout().is_terminal();
            for r in &results.results {
                write_item_line(&mut out, &r.view)?;
                writeln!(out, "    {}\n", highlight(&r.snippet, &r.highlights, tty))?;
            }
            Ok(())
        }
        Command::Due { within } => {
            let lib = ctx.lib()?;
            let today = Zoned::now().date();
            let due = lib.due(today, within)?;
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "today": today, "within_days": within, "items": due }),
                );
            }
            if due.is_empty() {
                writeln!(
                    out,
                    "Nothing of this establishment's is due for review within {within} days."
                )?;
            }
            for d in &due {
                let when = if d.days_left < 0 {
                    format!("OVERDUE by {} days", -d.days_left)
                } else {
                    format!("due in {} days", d.days_left)
                };
                writeln!(
                    out,
                    "{}  {}  {}  {}",
                    d.view.item.content.review_due,
                    d.view.item.id.short(),
                    d.view.item.content.title,
                    when
                )?;
            }
            Ok(())
        }
        Command::Establishments => {
            let list = ctx.reader()?.establishments()?;
            if json {
                return print_json(&mut out, &serde_json::json!({ "establishments": list }));
            }
            for e in &list {
                writeln!(
                    out,
                    "{:<40} {:<32} {:<10} {:>3} items  {}",
                    e.name,
                    e.setting.label(),
                    e.nation.label(),
                    e.items,
                    e.id.short()
                )?;
            }
            Ok(())
        }
        Command::Demo {
            dir,
            samples,
            no_wait,
        } => {
            let _ = json;
            demo::run(
                out,
                dir,
                samples.unwrap_or_else(gatehouse_node::sample::default_sample_dir),
                no_wait,
            )
        }
        Command::Network { cmd } => trust_cmd::network(ctx, &mut out, json, cmd),
        Command::Trust { cmd } => trust_cmd::trust(ctx, &mut out, json, cmd),
        Command::Member { cmd } => trust_cmd::member(ctx, &mut out, json, cmd),
        Command::Key { cmd } => trust_cmd::key(ctx, &mut out, json, cmd),
        Command::Bundle { cmd } => trust_cmd::bundle(ctx, &mut out, json, cmd),
        Command::Peers { cmd } => peers(ctx, &mut out, json, cmd),
        Command::Node { .. } => Err(usage(
            "`gatehouse node run` starts the node; it is not run inside one",
        )),
        Command::Status { stale_after } => {
            let net = ctx.net.clone();
            let lib = ctx.lib()?;
            let s = lib.status()?;
            let last_sync_ms = lib
                .peers()?
                .iter()
                .filter_map(|p| p.last_sync_ms)
                .chain(net.as_ref().and_then(|n| n.last_sync_ms))
                .max();
            let now = u64::try_from(gatehouse_protocol::jiff::Timestamp::now().as_millisecond())
                .unwrap_or(0);
            let stale = last_sync_ms.is_none_or(|t| now.saturating_sub(t) > stale_after);
            let warning = stale.then(|| match last_sync_ms {
                None => "this node has never reconciled with a peer: its view of trust may be out of date".to_string(),
                Some(t) => format!(
                    "no reconciliation with any peer since {}: this node's view of trust may be out of date",
                    gatehouse_node::library::format_ms(t)
                ),
            });
            if json {
                let mut v = serde_json::to_value(&s)?;
                v["node_running"] = serde_json::json!(net.is_some());
                v["network_state"] = serde_json::to_value(&net)?;
                v["last_sync_ms"] = serde_json::json!(last_sync_ms);
                v["warning"] = serde_json::json!(warning);
                return print_json(&mut out, &v);
            }
            writeln!(
                out,
                "network        {} ({})",
                s.network_name.as_deref().unwrap_or("?"),
                s.network
            )?;
            writeln!(
                out,
                "establishment  {}",
                s.establishment.name.as_deref().unwrap_or("not admitted")
            )?;
            writeln!(out, "envelopes      {}", s.envelopes)?;
            writeln!(out, "certificates   {}", s.certificates)?;
            writeln!(out, "items          {}", s.items)?;
            for (reason, n) in &s.pending {
                writeln!(out, "pending        {n}: {reason}")?;
            }
            for (reason, n) in &s.rejected {
                writeln!(out, "rejected       {n}: {reason}")?;
            }
            match &net {
                None => writeln!(
                    out,
                    "node           not running (start it with `gatehouse node run`)"
                )?,
                Some(n) => {
                    writeln!(out, "node           running as {}", n.peer_id)?;
                    for a in &n.listening {
                        writeln!(out, "listening      {a}")?;
                    }
                    let connected = n.peers.values().filter(|p| p.connected).count();
                    writeln!(out, "peers          {connected} connected")?;
                    for (id, p) in n.peers.iter().filter(|(_, p)| p.connected) {
                        writeln!(
                            out,
                            "  {} {}  last sync {}",
                            p.establishment.as_deref().unwrap_or("?"),
                            id,
                            p.last_sync_ms.map_or_else(
                                || "not yet".to_string(),
                                gatehouse_node::library::format_ms
                            )
                        )?;
                    }
                    if n.forged_received > 0 {
                        writeln!(
                            out,
                            "forged         {} envelopes refused from peers",
                            n.forged_received
                        )?;
                    }
                    if n.refused_connections > 0 {
                        writeln!(
                            out,
                            "refused        {} connections from unadmitted nodes",
                            n.refused_connections
                        )?;
                    }
                }
            }
            if let Some(w) = warning {
                writeln!(out, "WARNING        {w}")?;
            }
            Ok(())
        }
    }
}

fn init(home: &Home, out: &mut impl Write, json: bool, args: InitArgs) -> anyhow::Result<()> {
    if let Some(file) = args.join {
        let invite =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
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

fn peers(
    ctx: &mut ctx::Ctx<'_>,
    out: &mut impl Write,
    json: bool,
    cmd: PeersCommand,
) -> anyhow::Result<()> {
    let net = ctx.net.clone();
    let lib = ctx.lib()?;
    match cmd {
        PeersCommand::Add { address } => {
            let added = lib.add_peer(&address.to_string())?;
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "address": address.to_string(), "added": added }),
                );
            }
            if added {
                writeln!(out, "remembered {address}")?;
            } else {
                writeln!(out, "{address} was already in the peer book")?;
            }
            Ok(())
        }
        PeersCommand::Remove { address } => {
            if !lib.remove_peer(&address)? {
                bail!(UsageError(format!("{address} is not in the peer book")));
            }
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "address": address, "removed": true }),
                );
            }
            writeln!(out, "forgot {address}")?;
            Ok(())
        }
        PeersCommand::List => {
            let book = lib.peers()?;
            if json {
                return print_json(out, &serde_json::json!({ "book": book, "network": net }));
            }
            for p in &book {
                writeln!(
                    out,
                    "{}  last sync {}",
                    p.address,
                    p.last_sync_ms
                        .map_or_else(|| "never".to_string(), gatehouse_node::library::format_ms)
                )?;
            }
            match &net {
                None => writeln!(out, "(the node is not running: no connections)")?,
                Some(n) => {
                    for (id, p) in &n.peers {
                        writeln!(
                            out,
                            "{} {} {}  last sync {}",
                            if p.connected {
                                "connected   "
                            } else {
                                "disconnected"
                            },
                            p.establishment.as_deref().unwrap_or("?"),
                            id,
                            p.last_sync_ms.map_or_else(
                                || "never".to_string(),
                                gatehouse_node::library::format_ms
                            )
                        )?;
                    }
                }
            }
            Ok(())
        }
    }
}

fn read_draft(
    file: &Path,
    allowed: &[String],
) -> anyhow::Result<gatehouse_protocol::item::ItemContent> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = String::from_utf8(text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (byte {})",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    gatehouse_node::draft::parse(&text, allowed).with_context(|| format!("{}", file.display()))
}

fn build_filter(reader: &mut dyn Reader, f: FilterArgs) -> anyhow::Result<Filter> {
    let owners = match f.establishment {
        None => None,
        Some(name) => {
            let keys = reader.find_establishments(&name)?;
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
    })
}

fn print_json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

fn write_item_line(out: &mut impl Write, v: &ItemView) -> anyhow::Result<()> {
    let c = &v.item.content;
    writeln!(
        out,
        "{}  {:<13} v{:<3} {:<10} {}  [{}]",
        v.item.id.short(),
        c.kind.label(),
        v.item.version,
        c.status.slug(),
        c.title,
        v.establishment
            .name
            .as_deref()
            .unwrap_or("unknown establishment"),
    )?;
    Ok(())
}

fn highlight(snippet: &str, ranges: &[(usize, usize)], tty: bool) -> String {
    let (open, close) = if tty {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    let mut out = String::new();
    let mut last = 0;
    for &(s, e) in ranges {
        if s < last
            || e > snippet.len()
            || !snippet.is_char_boundary(s)
            || !snippet.is_char_boundary(e)
        {
            continue;
        }
        out.push_str(&snippet[last..s]);
        out.push_str(open);
        out.push_str(&snippet[s..e]);
        out.push_str(close);
        last = e;
    }
    out.push_str(&snippet[last..]);
    out.replace('\n', " ")
}

fn write_item(out: &mut impl Write, v: &ItemView) -> anyhow::Result<()> {
    let i = &v.item;
    let c = &i.content;
    writeln!(out, "{}", c.title)?;
    writeln!(out, "{}", "=".repeat(c.title.chars().count()))?;
    let est = v
        .establishment
        .name
        .as_deref()
        .unwrap_or("unknown establishment");
    let row = |out: &mut dyn Write, k: &str, val: &str| writeln!(out, "{k:<16}{val}");
    row(out, "id", &i.id.to_hex())?;
    row(out, "kind", c.kind.label())?;
    row(out, "status", c.status.label())?;
    if let Some(next) = i.superseded_by {
        row(out, "superseded by", &next.to_hex())?;
    }
    if let Some(reason) = &i.withdrawn_reason {
        row(out, "withdrawn", reason)?;
    }
    row(out, "version", &i.version.to_string())?;
    row(out, "establishment", est)?;
    let signers: Vec<String> = v
        .signed_by
        .iter()
        .map(|n| {
            format!(
                "{} ({})",
                n.name.as_deref().unwrap_or("unknown key"),
                n.key.short()
            )
        })
        .collect();
    row(
        out,
        "signed by",
        &format!("{} of {est}", signers.join(", ")),
    )?;
    row(out, "nation", c.nation.label())?;
    row(
        out,
        "pathways",
        &c.pathways
            .iter()
            .map(|p| p.label())
            .collect::<Vec<_>>()
            .join(", "),
    )?;
    row(
        out,
        "settings",
        &c.settings
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>()
            .join(", "),
    )?;
    if !c.tags.is_empty() {
        row(out, "tags", &c.tags.join(", "))?;
    }
    if let Some(a) = &c.approved_by {
        row(out, "approved by", a)?;
    }
    if let Some(d) = c.approved_on {
        row(out, "approved on", &d.to_string())?;
    }
    if let Some(d) = c.effective_from {
        row(out, "effective from", &d.to_string())?;
    }
    row(out, "review due", &c.review_due.to_string())?;
    for s in &i.supersedes {
        row(out, "supersedes", &s.to_hex())?;
    }
    writeln!(out, "\n{}\n", c.summary)?;
    if let Some(qi) = &c.qi {
        writeln!(out, "Aim\n---\n{}\n", qi.aim)?;
        writeln!(out, "Measures\n--------")?;
        for m in &qi.measures {
            writeln!(out, "• {m}")?;
        }
        writeln!(out, "\nPDSA cycles\n-----------")?;
        for p in &qi.pdsa_cycles {
            writeln!(out, "• {p}")?;
        }
        writeln!(out, "\nOutcomes\n--------\n{}\n", qi.outcomes)?;
    }
    writeln!(out, "{}", render::markdown_to_text(&c.body))?;
    Ok(())
}
