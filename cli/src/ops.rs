//! Commands as typed values.
//!
//! An [`Op`] is a command that needs the library, with its arguments
//! checked, its files read and its paths made absolute by the process that
//! parsed it. [`operate`] runs it on a library and returns an [`Outcome`],
//! which the CLI renders (`output.rs`). The same `Op` runs directly on the
//! data directory or inside the running node, where it arrives over the
//! control socket (`daemon.rs`); outcomes are rendered by the CLI process
//! either way, so results are the same by construction.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gatehouse_node::home::Home;
use gatehouse_node::net::NetStatus;
use gatehouse_node::query::diff::{self, ItemDiff};
use gatehouse_node::query::{
    DueItem, EstablishmentSummary, ItemView, ReadView, SearchResults, StatusReport, VersionEntry,
};
use gatehouse_protocol::attachment::Attachment;
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::ItemContent;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::vocab::{Kind, Nation, Setting, Status};
use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;
use crate::trust_cmd::{self, TrustOutcome};
use crate::{FilterArgs, PeersCommand, build_filter, daemon, usage};

/// A command for the library.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// A new item.
    Publish {
        /// The file it was read from (for messages).
        file: PathBuf,
        /// The item, parsed and checked.
        content: ItemContent,
        /// Reviewed false positives of the identifier scan.
        allowed: Vec<String>,
        /// Makes a retry safe.
        idempotency_key: Option<String>,
        /// Files the version carries, already in the node's file store.
        #[serde(default)]
        attachments: Vec<Attachment>,
    },
    /// A new version of an item.
    Revise {
        /// Item id or prefix.
        id: String,
        /// The file it was read from (for messages).
        file: PathBuf,
        /// The new content.
        content: ItemContent,
        /// Reviewed false positives.
        allowed: Vec<String>,
        /// A significant revision: staff asked to read the item are asked
        /// again, by this date (four weeks on when `None`).
        #[serde(default)]
        significant: Option<Option<Date>>,
        /// Files added (already in the node's file store); one of the same
        /// name replaces the one the item carries.
        #[serde(default)]
        attach: Vec<Attachment>,
        /// Names of files taken off.
        #[serde(default)]
        detach: Vec<String>,
    },
    /// Mark an item superseded.
    Supersede {
        /// The item replaced.
        id: String,
        /// The item that replaces it.
        by: String,
    },
    /// Withdraw an item.
    Withdraw {
        /// The item.
        id: String,
        /// Why.
        reason: String,
        /// Reviewed false positives in the reason.
        allowed: Vec<String>,
    },
    /// Adopt another establishment's item for this one.
    Adopt {
        /// The source item (id or prefix).
        id: String,
        /// The copy as edited (`None`: the source's content as it stands).
        content: Option<ItemContent>,
        /// Reviewed false positives.
        allowed: Vec<String>,
    },
    /// What taking the source's change into an adopted item would give.
    SourceChange {
        /// This site's copy (id or prefix).
        id: String,
    },
    /// Sign the source's change into an adopted item as a new version.
    TakeChange {
        /// This site's copy (id or prefix).
        id: String,
        /// The merged content, as the site lead accepted or edited it.
        content: ItemContent,
        /// Reviewed false positives.
        allowed: Vec<String>,
        /// The source's version it takes.
        source_version: u64,
    },
    /// What `publish --check` or `revise --check` would do, storing nothing.
    Check {
        /// The file it was read from (for messages).
        file: PathBuf,
        /// The item, parsed and checked.
        content: ItemContent,
        /// The item it would revise; none for a new item.
        revise: Option<String>,
    },
    /// List items.
    List {
        /// Which.
        filter: FilterArgs,
    },
    /// A read the node's JSON API can also answer.
    Read(ReadOp),
    /// This establishment's items due for review.
    Due {
        /// The caller's date.
        today: Date,
        /// How far ahead; when reminders start by the rules when `None`.
        within_days: Option<i64>,
    },
    /// Approve an item's current version.
    Approve {
        /// The item.
        id: String,
        /// The approver's key seed (hex), read from their key file by the
        /// CLI; this node's publishing key when `None`.
        key: Option<String>,
    },
    /// Record a review that needs no change.
    Review {
        /// The item.
        id: String,
        /// The next review date.
        next: Option<Date>,
        /// The reviewer's key seed (hex).
        key: Option<String>,
    },
    /// Ask staff to read an item.
    RequestReading {
        /// The item.
        id: String,
        /// The jobs asked; everyone when empty.
        jobs: Vec<gatehouse_protocol::vocab::Job>,
        /// By when.
        due: Date,
        /// The signer's key seed (hex).
        key: Option<String>,
    },
    /// Acknowledge having read an item.
    Acknowledge {
        /// The item.
        id: String,
        /// The reader's key seed (hex); this node's publishing key when `None`.
        key: Option<String>,
    },
    /// Write an inspection pack.
    Pack {
        /// The establishment; this node's own when `None`.
        establishment: Option<String>,
        /// The directory.
        out: PathBuf,
        /// The date it speaks for.
        today: Date,
    },
    /// Who has read an item and who has not.
    Register {
        /// The item.
        id: String,
        /// The caller's date.
        today: Date,
    },
    /// Show or sign this establishment's rules.
    Rules {
        /// Whether a second person must approve.
        two_person_approval: Option<bool>,
        /// When review reminders start.
        reminder_months: Option<u16>,
        /// The signer's key seed (hex).
        key: Option<String>,
    },
    /// Counts, trust problems and the network's state.
    Status {
        /// Warn when no reconciliation has completed for this long.
        stale_after_ms: u64,
    },
    /// `network`, `trust`, `member`, `key rotate` and `bundle`.
    Trust(trust_cmd::TrustOp),
    /// `ask`, `threads`, `thread`, `reply`, `resolve`, `hide`, `staff`.
    Forum(crate::forum_cmd::ForumOp),
    /// A QI initiative's measures.
    Measure(crate::measure_cmd::MeasureOp),
    /// The peer book.
    Peers(PeersCommand),
    /// `backup`: a signed copy of the node, taken under the library's lock.
    Backup {
        /// Where to write it (absolute).
        file: PathBuf,
        /// Seals the key files into it under this passphrase.
        passphrase: Option<String>,
        /// The settings file the node runs with.
        settings: Option<gatehouse_node::backup::Settings>,
    },
}

/// A read of items and establishments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadOp {
    /// One item.
    Show {
        /// Id or prefix.
        id: String,
        /// A past version.
        version: Option<u64>,
    },
    /// Every version of an item.
    History {
        /// Id or prefix.
        id: String,
    },
    /// Ranked search.
    Search {
        /// The query.
        query: String,
        /// Filters.
        filter: FilterArgs,
        /// Most results.
        limit: usize,
    },
    /// The establishments.
    Establishments,
    /// What a command that cannot be undone would act on, named for people.
    Describe(Target),
    /// A new item's file of `kind`, for this establishment.
    Template {
        /// The kind of document.
        kind: Kind,
        /// Today, where the command runs.
        today: Date,
    },
}

/// What a destructive command acts on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Target {
    /// An item, by id or prefix.
    Item(String),
    /// A key, whole or by prefix.
    Key(String),
    /// An establishment, by name, part of it, or id.
    Establishment(String),
}

/// What `--check` found: what would be published, and nothing stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckReport {
    /// The file checked.
    pub file: PathBuf,
    /// The content as it would be published.
    pub content: ItemContent,
    /// For a revision: the item and what would change.
    pub revises: Option<ItemDiff>,
    /// For a new item: this establishment's items with the same title
    /// (publishing the file again would make a second item).
    pub same_title: Vec<ItemView>,
}

/// What a command did, for the CLI to render.
#[derive(Debug, Serialize, Deserialize)]
pub enum Outcome {
    /// `publish`.
    Published {
        /// The new item.
        id: ItemId,
    },
    /// `publish --check`, `revise --check`.
    Checked(Box<CheckReport>),
    /// What a destructive command would act on.
    Described {
        /// Its name, for people.
        what: String,
    },
    /// `adopt`.
    Adopted {
        /// This site's new item.
        id: ItemId,
        /// The source.
        from: ItemId,
        /// The source's version taken.
        version: u64,
    },
    /// What taking a source's change would give.
    SourceChange(Box<gatehouse_node::authoring::adopt::SourceChange>),
    /// `take-change`.
    TookChange {
        /// This site's item.
        id: ItemId,
        /// Its version now.
        version: u64,
        /// The source's version it holds now.
        source_version: u64,
    },
    /// `revise`.
    Revised {
        /// The item.
        id: ItemId,
        /// Its version now.
        version: u64,
        /// For a significant revision: whether staff were asked to read it
        /// again (`false`: nobody had been asked).
        asked_again: Option<bool>,
    },
    /// `read-request`.
    ReadingRequested {
        /// The record.
        record: gatehouse_protocol::id::EnvelopeId,
        /// The request now in force.
        request: Option<gatehouse_node::query::reading::ReadingRequest>,
    },
    /// `acknowledge`.
    Acknowledged {
        /// The item.
        id: ItemId,
        /// The version acknowledged.
        version: u64,
        /// The record.
        record: gatehouse_protocol::id::EnvelopeId,
    },
    /// `register`.
    Register(Box<gatehouse_node::query::reading::Register>),
    /// `pack`.
    Pack(gatehouse_node::pack::PackReport),
    /// `supersede`.
    Superseded {
        /// The old item.
        id: ItemId,
        /// The new one.
        by: ItemId,
    },
    /// `withdraw`.
    Withdrawn {
        /// The item.
        id: ItemId,
    },
    /// `list`.
    Items {
        /// The items.
        items: Vec<ItemView>,
    },
    /// `show`.
    Item {
        /// The item.
        view: Box<ItemView>,
        /// The sites that adopted it.
        adopters: Vec<gatehouse_node::query::adoption::Adopter>,
        /// Its stage, approvals and the owner's rules (the latest version
        /// only).
        lifecycle: Option<Box<gatehouse_node::query::lifecycle::Lifecycle>>,
    },
    /// `approve`.
    Approved(gatehouse_node::authoring::lifecycle::Approved),
    /// `review`.
    Reviewed {
        /// The item.
        id: ItemId,
        /// Its next review date.
        next: Date,
    },
    /// `rules`.
    Rules {
        /// The rules in force.
        rules: gatehouse_protocol::record::SiteRules,
        /// Whether they were just signed.
        signed: bool,
    },
    /// `history`.
    History {
        /// The item.
        id: ItemId,
        /// Its versions.
        versions: Vec<VersionEntry>,
    },
    /// `search`.
    Search {
        /// What was searched for.
        query: String,
        /// What was found.
        results: SearchResults,
    },
    /// `due`.
    Due {
        /// The date it was computed for.
        today: Date,
        /// How far ahead.
        within_days: i64,
        /// The items.
        items: Vec<DueItem>,
        /// Adopted items whose source changed since the version taken.
        source_changes: Vec<gatehouse_node::query::adoption::SourceAlert>,
        /// This establishment's versions submitted and not yet approved.
        awaiting_approval: Vec<ItemView>,
    },
    /// `establishments`.
    Establishments {
        /// The establishments.
        establishments: Vec<EstablishmentSummary>,
    },
    /// `status`.
    Status {
        /// The library's counts.
        report: StatusReport,
        /// The network, when the node runs.
        net: Option<NetStatus>,
        /// The last completed reconciliation with anyone.
        last_sync_ms: Option<u64>,
        /// A warning for the user.
        warning: Option<String>,
    },
    /// The trust commands.
    Trust(TrustOutcome),
    /// The forum and staff commands.
    Forum(crate::forum_cmd::ForumOutcome),
    /// A measure command's outcome.
    Measure(crate::measure_cmd::MeasureOutcome),
    /// The peer book.
    Peers(PeersOutcome),
    /// `backup`.
    BackedUp(gatehouse_node::backup::BackupReport),
}

/// What a `peers` command did.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeersOutcome {
    /// `peers add`.
    Added {
        /// The address.
        address: String,
        /// False when it was already there.
        added: bool,
    },
    /// `peers remove`.
    Removed {
        /// The address.
        address: String,
    },
    /// `peers list`.
    Listed {
        /// The peer book.
        book: Vec<gatehouse_node::net::book::PeerEntry>,
        /// Connections, when the node runs.
        net: Option<Box<NetStatus>>,
    },
}

/// An absolute form of a path given on the command line, so that the
/// running node reads and writes where the caller meant.
/// A key from the seed the CLI read from a person's key file.
fn seed_key(seed: Option<&str>) -> anyhow::Result<Option<gatehouse_protocol::key::SecretKey>> {
    let Some(seed) = seed else {
        return Ok(None);
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(seed, &mut bytes)
        .map_err(|_| anyhow::anyhow!("a key seed that is not 32 bytes of hex"))?;
    Ok(Some(gatehouse_protocol::key::SecretKey::from_seed(bytes)))
}

pub fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

/// Runs `op` where it belongs: through the running node's control socket
/// when a node runs, directly on the data directory otherwise.
pub fn dispatch(home: Home, mut op: Op) -> anyhow::Result<Outcome> {
    if let Some(outcome) = daemon::forward(&home, &mut op)? {
        return Ok(outcome);
    }
    operate(op, &mut Ctx::direct(home))
}

/// Answers a read from `view`.
pub fn read_with(op: ReadOp, view: &ReadView) -> anyhow::Result<Outcome> {
    Ok(match op {
        ReadOp::Show { id, version } => {
            let id = view.resolve(&id)?;
            let item = view.get(&id, version)?;
            let latest = version.is_none_or(|v| v == item.item.version);
            let lifecycle = if latest {
                Some(Box::new(view.lifecycle(
                    &id,
                    gatehouse_protocol::jiff::Zoned::now().date(),
                )?))
            } else {
                None
            };
            Outcome::Item {
                view: Box::new(item),
                adopters: view.adopters(&id)?,
                lifecycle,
            }
        }
        ReadOp::History { id } => {
            let id = view.resolve(&id)?;
            Outcome::History {
                id,
                versions: view.history(&id)?,
            }
        }
        ReadOp::Search {
            query,
            filter,
            limit,
        } => {
            if query.trim().is_empty() {
                return Err(usage("give something to search for"));
            }
            let filter = build_filter(view, filter)?;
            let results = view.search(&query, &filter, limit)?;
            Outcome::Search { query, results }
        }
        ReadOp::Establishments => Outcome::Establishments {
            establishments: view.establishments()?,
        },
        ReadOp::Describe(target) => Outcome::Described {
            what: describe(view, &target)?,
        },
        ReadOp::Template { kind, today } => {
            let own = view.establishment();
            let (setting, nation) = view
                .trust()
                .establishments
                .get(&own)
                .map_or((Setting::LocalRemand, Nation::England), |e| {
                    (e.setting, e.nation)
                });
            Outcome::Described {
                what: gatehouse_node::authoring::template::template(kind, setting, nation, today),
            }
        }
    })
}

/// `target` as a person would recognise it.
fn describe(view: &ReadView, target: &Target) -> anyhow::Result<String> {
    Ok(match target {
        Target::Item(id) => {
            let v = view.get(&view.resolve(id)?, None)?;
            format!(
                "{} ({}, {}, version {})",
                v.item.content.title,
                &v.item.id.to_hex()[..8],
                v.establishment
                    .name
                    .clone()
                    .unwrap_or_else(|| v.establishment.id.short()),
                v.item.version
            )
        }
        Target::Key(text) => {
            let key = &view.resolve_key(text)?;
            let short = &key.to_hex()[..8];
            let found = view.establishments()?.into_iter().find_map(|e| {
                e.keys
                    .iter()
                    .chain(&e.members)
                    .find(|k| k.key == *key)
                    .map(|k| (k.clone(), e.name.clone()))
            });
            match found {
                Some((k, est)) => format!(
                    "key {short} of {} ({}, {est})",
                    k.name.as_deref().unwrap_or("no name"),
                    k.role
                ),
                None => format!("key {short}, which this node does not know"),
            }
        }
        Target::Establishment(text) => {
            let found = view.find_establishments(text);
            let all = view.establishments()?;
            let named: Vec<String> = all
                .iter()
                .filter(|e| found.contains(&e.id))
                .map(|e| {
                    format!(
                        "{} ({} items, {} keys)",
                        e.name,
                        e.items,
                        e.keys.len() + e.members.len()
                    )
                })
                .collect();
            match named.as_slice() {
                [] => anyhow::bail!("no establishment matches {text:?}"),
                [one] => format!("{one}, with every key it holds"),
                many => anyhow::bail!(
                    "{text:?} matches {} establishments ({}); give more of the name, or the id",
                    many.len(),
                    many.join(", ")
                ),
            }
        }
    })
}

/// What publishing (or, with `revise`, revising that item with) `content`
/// would do: the checks of the real thing (the file's, and for a revision
/// that the item is this establishment's and still open), with nothing
/// signed or stored. Content equal to the current version is reported as
/// no change.
fn check(
    view: &ReadView,
    file: PathBuf,
    content: ItemContent,
    revise: Option<String>,
) -> anyhow::Result<CheckReport> {
    let mine = view.establishment();
    let (revises, same_title) = match revise {
        Some(id) => {
            let id = view.resolve(&id)?;
            let current = view.get(&id, None)?;
            if current.item.owner != mine {
                return Err(gatehouse_node::error::LibraryError::NotOwner {
                    item: id,
                    owner: view.establishment_name(&current.item.owner),
                }
                .into());
            }
            if matches!(
                current.item.content.status,
                Status::Superseded | Status::Withdrawn
            ) {
                return Err(gatehouse_node::error::LibraryError::Closed {
                    id,
                    status: current.item.content.status,
                }
                .into());
            }
            let mut proposed = current.clone();
            proposed.item.content = content.clone();
            proposed.item.version += 1;
            (Some(diff::diff(&current, &proposed)), Vec::new())
        }
        None => {
            let title = content.title.to_lowercase();
            let filter = gatehouse_node::query::filter::Filter {
                owners: Some(vec![mine]),
                ..Default::default()
            };
            let same = view
                .list(&filter)?
                .into_iter()
                .filter(|v| v.item.content.title.to_lowercase() == title)
                .collect();
            (None, same)
        }
    };
    Ok(CheckReport {
        file,
        content,
        revises,
        same_title,
    })
}

/// Runs `op` on the library `ctx` reaches.
/// A version the network sees is published: a draft stays on this node
/// (`gatehouse draft`), so a file marked `status: draft` is not shared.
fn shared_not_draft(file: &Path, content: &ItemContent) -> anyhow::Result<()> {
    if content.status == Status::Draft {
        anyhow::bail!(
            "{}: status: draft. A draft stays on this node until it is published: keep it with `gatehouse draft save {}`; publish it, when it is ready, with `gatehouse draft publish NAME` (or set status: published)",
            file.display(),
            file.display()
        );
    }
    Ok(())
}

pub fn operate(op: Op, ctx: &mut Ctx<'_>) -> anyhow::Result<Outcome> {
    Ok(match op {
        Op::Publish {
            file,
            content,
            allowed,
            idempotency_key,
            attachments,
        } => {
            shared_not_draft(&file, &content)?;
            let lib = ctx.lib()?;
            let id = match &idempotency_key {
                Some(key) => lib.publish_once(&content, &allowed, &attachments, key),
                None => lib.publish_with(&content, &allowed, &attachments),
            }
            .with_context(|| format!("{}", file.display()))?;
            Outcome::Published { id }
        }
        Op::Revise {
            id,
            file,
            content,
            allowed,
            significant,
            attach,
            detach,
        } => {
            shared_not_draft(&file, &content)?;
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            let files = if attach.is_empty() && detach.is_empty() {
                None
            } else {
                let current = lib.get(&id, None)?.item.attachments;
                Some(gatehouse_node::authoring::attach::file_set(
                    &current, &attach, &detach,
                )?)
            };
            let version = lib
                .revise_with(&id, &content, &allowed, files.as_deref())
                .with_context(|| format!("{}", file.display()))?;
            let asked_again = match significant {
                Some(due) => Some(lib.ask_again(&id, due)?.is_some()),
                None => None,
            };
            Outcome::Revised {
                id,
                version,
                asked_again,
            }
        }
        Op::RequestReading { id, jobs, due, key } => {
            let key = seed_key(key.as_deref())?;
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            let record = lib.request_reading(&id, &jobs, due, key.as_ref())?;
            let view = lib.read_view();
            Outcome::ReadingRequested {
                record,
                request: view.reading_request(&id)?,
            }
        }
        Op::Acknowledge { id, key } => {
            let key = seed_key(key.as_deref())?;
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            let key = match key {
                Some(k) => k,
                None => lib.signing_key()?,
            };
            let record = lib.acknowledge(&key, &id)?;
            Outcome::Acknowledged {
                id,
                version: lib.get(&id, None)?.item.version,
                record,
            }
        }
        Op::Pack {
            establishment,
            out,
            today,
        } => Outcome::Pack(crate::pack_cmd::build(
            ctx,
            establishment.as_deref(),
            &out,
            today,
        )?),
        Op::Register { id, today } => {
            let staff: Vec<gatehouse_node::query::reading::StaffMember> =
                gatehouse_node::staff::Staff::of(&ctx.home)
                    .list()?
                    .into_iter()
                    .filter(|a| a.state != gatehouse_node::staff::AccountState::Removed)
                    .map(|a| gatehouse_node::query::reading::StaffMember {
                        name: a.name,
                        key: a.key,
                        job: a.job,
                    })
                    .collect();
            let view = ctx.view()?;
            let id = view.resolve(&id)?;
            Outcome::Register(Box::new(view.register(&id, &staff, today)?))
        }
        Op::Check {
            file,
            content,
            revise,
        } => {
            shared_not_draft(&file, &content)?;
            Outcome::Checked(Box::new(check(&ctx.view()?, file, content, revise)?))
        }
        Op::Supersede { id, by } => {
            let lib = ctx.lib()?;
            let old = lib.resolve(&id)?;
            let new = lib.resolve(&by)?;
            lib.supersede(&old, &new)?;
            Outcome::Superseded { id: old, by: new }
        }
        Op::Withdraw {
            id,
            reason,
            allowed,
        } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            lib.withdraw(&id, &reason, &allowed)?;
            Outcome::Withdrawn { id }
        }
        Op::List { filter } => {
            let view = ctx.view()?;
            let filter = build_filter(&view, filter)?;
            Outcome::Items {
                items: view.list(&filter)?,
            }
        }
        Op::Read(read) => read_with(read, &ctx.view()?)?,
        Op::Due { today, within_days } => {
            let view = ctx.view()?;
            let within_days = match within_days {
                Some(d) => d,
                None => {
                    let (rules, _) = view.site_rules(&view.establishment())?;
                    let until = today
                        .checked_add(
                            gatehouse_protocol::jiff::Span::new()
                                .months(i64::from(rules.reminder_months)),
                        )
                        .unwrap_or(today);
                    today.until(until).map_or(0, |s| i64::from(s.get_days()))
                }
            };
            Outcome::Due {
                today,
                within_days,
                items: view.due(today, within_days)?,
                source_changes: view.source_changes()?,
                awaiting_approval: view.list(&gatehouse_node::query::filter::Filter {
                    status: Some(gatehouse_protocol::vocab::Status::Submitted),
                    owners: Some(vec![view.establishment()]),
                    ..Default::default()
                })?,
            }
        }
        Op::Approve { id, key } => {
            let key = seed_key(key.as_deref())?;
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            Outcome::Approved(lib.approve(&id, key.as_ref())?)
        }
        Op::Review { id, next, key } => {
            let key = seed_key(key.as_deref())?;
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            let next = lib.review(&id, next, key.as_ref())?;
            Outcome::Reviewed { id, next }
        }
        Op::Rules {
            two_person_approval: None,
            reminder_months: None,
            ..
        } => {
            let view = ctx.view()?;
            let (rules, _) = view.site_rules(&view.establishment())?;
            Outcome::Rules {
                rules,
                signed: false,
            }
        }
        Op::Rules {
            two_person_approval,
            reminder_months,
            key,
        } => {
            let key = seed_key(key.as_deref())?;
            let lib = ctx.lib()?;
            Outcome::Rules {
                rules: lib.set_rules(two_person_approval, reminder_months, key.as_ref())?,
                signed: true,
            }
        }
        Op::Adopt {
            id,
            content,
            allowed,
        } => {
            let lib = ctx.lib()?;
            let from = lib.resolve(&id)?;
            let id = lib.adopt(&from, content.as_ref(), &allowed)?;
            let version = lib.get(&id, None)?.item.adoption.map_or(0, |a| a.version);
            Outcome::Adopted { id, from, version }
        }
        Op::SourceChange { id } => {
            let view = ctx.view()?;
            let id = view.resolve(&id)?;
            Outcome::SourceChange(Box::new(view.source_change(&id)?))
        }
        Op::TakeChange {
            id,
            content,
            allowed,
            source_version,
        } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            let version = lib.take_change(&id, &content, &allowed, source_version)?;
            Outcome::TookChange {
                id,
                version,
                source_version,
            }
        }
        Op::Status { stale_after_ms } => {
            let net = ctx.net.clone();
            let view = ctx.view()?;
            let report = view.status()?;
            let last_sync_ms = view
                .peers()?
                .iter()
                .filter_map(|p| p.last_sync_ms)
                .chain(net.as_ref().and_then(|n| n.last_sync_ms))
                .max();
            let now = u64::try_from(gatehouse_protocol::jiff::Timestamp::now().as_millisecond())
                .unwrap_or(0);
            let stale = last_sync_ms.is_none_or(|t| now.saturating_sub(t) > stale_after_ms);
            let warning = stale.then(|| match last_sync_ms {
                None => "this node has never reconciled with a peer: its view of trust may be out of date".to_string(),
                Some(t) => format!(
                    "no reconciliation with any peer since {}: this node's view of trust may be out of date",
                    gatehouse_node::query::format_ms(t)
                ),
            });
            Outcome::Status {
                report,
                net,
                last_sync_ms,
                warning,
            }
        }
        Op::Trust(op) => Outcome::Trust(trust_cmd::operate(ctx, op)?),
        Op::Forum(op) => Outcome::Forum(crate::forum_cmd::operate(ctx, op)?),
        Op::Measure(op) => Outcome::Measure(crate::measure_cmd::operate(ctx, op)?),
        Op::Peers(cmd) => Outcome::Peers(peers(ctx, cmd)?),
        Op::Backup {
            file,
            passphrase,
            settings,
        } => {
            let home = ctx.home.clone();
            Outcome::BackedUp(
                ctx.lib()?
                    .backup(&home, &file, passphrase.as_deref(), settings)?,
            )
        }
    })
}

fn peers(ctx: &mut Ctx<'_>, cmd: PeersCommand) -> anyhow::Result<PeersOutcome> {
    Ok(match cmd {
        PeersCommand::List => PeersOutcome::Listed {
            book: ctx.view()?.peers()?,
            net: ctx.net.clone().map(Box::new),
        },
        PeersCommand::Add { address } => {
            let address = address.to_string();
            let added = ctx.lib()?.add_peer(&address)?;
            PeersOutcome::Added { address, added }
        }
        PeersCommand::Remove { address } => {
            if !ctx.lib()?.remove_peer(&address)? {
                return Err(usage(format!("{address} is not in the peer book")));
            }
            PeersOutcome::Removed { address }
        }
    })
}
