//! The forum and staff commands: `ask`, `threads`, `thread`, `reply`,
//! `resolve`, `hide` (posting as this node's site lead, with the key in
//! `keys/`; `hide --network` as a network admin, with `keys/admin.key`),
//! and `staff` (the people who sign in to the web page).

use std::io::Write;

use clap::Subcommand;
use gatehouse_node::query::forum::{
    ModerationEntry, ThreadList, ThreadQuery, ThreadSummary, ThreadView,
};
use gatehouse_node::query::when;
use gatehouse_node::staff::{AccountView, NewAccount, Staff};
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::id::{EnvelopeId, ItemId};
use gatehouse_protocol::post::{Action, Question, Reply, Topic, Urgency};
use gatehouse_protocol::vocab::{Job, Pathway, Setting};
use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;
use crate::output::print_json;
use crate::trust_cmd::need_key;
use crate::{parse_vocab, usage};

/// `gatehouse staff ...`
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum StaffCommand {
    /// Add a person who signs in to this node's web page, with their own key (prints a one-time set-up code to hand them)
    Add {
        /// Their name as the network will see it, e.g. "Dr A Patel"
        #[arg(long)]
        name: String,
        /// Their role: clinician (posts, acknowledges) or person (a site lead: also adopts another site's item from its page; needs keys/establishment.key)
        #[arg(long, default_value = "clinician", value_parser = parse_vocab::<MemberRole>)]
        role: MemberRole,
        /// What they sign in with (default: made from the name, e.g. dr-a-patel)
        #[arg(long)]
        login: Option<String>,
        /// Their job, which requests to read name (doctor, nurse, pharmacist, pharmacy-technician, healthcare-assistant, ...)
        #[arg(long, value_parser = parse_vocab::<Job>)]
        job: Option<Job>,
    },
    /// Set a person's job (or clear it with --none)
    Job {
        /// Their login
        login: String,
        /// The job
        #[arg(value_parser = parse_vocab::<Job>, required_unless_present = "none")]
        job: Option<Job>,
        /// Clear it
        #[arg(long, conflicts_with = "job")]
        none: bool,
    },
    /// The people with accounts on this node
    List,
    /// Remove a person: their key is revoked network-wide, their past posts stay
    Remove {
        /// Their login
        login: String,
        /// Why, for the audit trail
        #[arg(long, default_value = "left the service")]
        reason: String,
    },
}

/// A forum or staff command, as sent to the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForumOp {
    /// `ask`
    Ask {
        /// The question.
        title: String,
        /// In full.
        body: String,
        /// Pathways.
        pathways: Vec<Pathway>,
        /// Settings.
        settings: Vec<Setting>,
        /// Urgency.
        urgency: Urgency,
        /// Linked items (ids or prefixes).
        links: Vec<String>,
    },
    /// `discuss`
    Discuss {
        /// The topic.
        title: String,
        /// The opening post.
        body: String,
        /// The item discussed (id or prefix).
        about: Option<String>,
        /// Pathways.
        pathways: Vec<Pathway>,
    },
    /// `threads`
    Threads {
        /// Which list.
        list: ThreadList,
        /// Pathways.
        pathways: Vec<Pathway>,
        /// Most shown.
        limit: usize,
        /// The caller's clock.
        now_ms: u64,
    },
    /// `thread ID`
    Thread {
        /// Thread id or prefix.
        id: String,
        /// The caller's clock.
        now_ms: u64,
    },
    /// `reply ID`
    Reply {
        /// Thread id or prefix.
        thread: String,
        /// The reply.
        body: String,
        /// A post quoted.
        quoting: Option<String>,
    },
    /// `resolve QUESTION ANSWER`
    Resolve {
        /// Question id or prefix.
        question: String,
        /// The answer's id (or prefix, among the thread's posts).
        answer: String,
    },
    /// `hide POST`
    Hide {
        /// The post.
        post: String,
        /// Why.
        reason: String,
        /// As a network admin, for every site.
        network: bool,
    },
    /// `moderation`
    Moderation,
    /// `staff ...`
    Staff(StaffCommand),
}

/// What a forum or staff command did.
#[derive(Debug, Serialize, Deserialize)]
pub enum ForumOutcome {
    /// A post was stored.
    Posted {
        /// What it was.
        what: String,
        /// Its id.
        id: EnvelopeId,
        /// Its thread.
        thread: EnvelopeId,
    },
    /// A list of threads.
    Threads(Vec<ThreadSummary>),
    /// One thread.
    Thread(Box<ThreadView>),
    /// The moderation log.
    Moderation(Vec<ModerationEntry>),
    /// A person was added.
    StaffAdded(NewAccount),
    /// The people.
    StaffList(Vec<AccountView>),
    /// A person was removed.
    StaffRemoved(AccountView),
}

fn item(view: &gatehouse_node::query::ReadView, text: &str) -> anyhow::Result<ItemId> {
    Ok(view.resolve(text)?)
}

/// A post of `thread` by id or unique prefix.
fn post_in(thread: &ThreadView, text: &str) -> anyhow::Result<EnvelopeId> {
    let text = text.trim().to_ascii_lowercase();
    let found: Vec<EnvelopeId> = thread
        .posts
        .iter()
        .map(|p| p.id)
        .filter(|id| id.to_hex().starts_with(&text))
        .collect();
    match found.as_slice() {
        [one] if text.len() >= 6 => Ok(*one),
        [] => Err(usage(format!("no post of this thread starts with {text}"))),
        _ => Err(usage(format!(
            "{text:?} is not a unique post of this thread; give more of its id"
        ))),
    }
}

/// Runs a forum op on the library `ctx` reaches.
pub fn operate(ctx: &mut Ctx<'_>, op: ForumOp) -> anyhow::Result<ForumOutcome> {
    let home = ctx.home.clone();
    Ok(match op {
        ForumOp::Threads {
            list,
            pathways,
            limit,
            now_ms,
        } => ForumOutcome::Threads(ctx.view()?.threads(
            &ThreadQuery {
                list,
                pathways,
                limit,
                // Only "mine" needs to know who asks (the site lead's key).
                person: if list == ThreadList::Mine {
                    Some(ctx.lib()?.signing_key()?.public())
                } else {
                    None
                },
                about: None,
            },
            now_ms,
        )),
        ForumOp::Thread { id, now_ms } => {
            let view = ctx.view()?;
            let id = view.resolve_thread(&id)?;
            ForumOutcome::Thread(Box::new(view.thread(&id, now_ms)?))
        }
        ForumOp::Moderation => ForumOutcome::Moderation(ctx.view()?.moderation_log()),
        ForumOp::Staff(StaffCommand::List) => ForumOutcome::StaffList(
            Staff::of(&home)
                .list()?
                .iter()
                .map(AccountView::from)
                .collect(),
        ),
        ForumOp::Staff(StaffCommand::Add {
            name,
            role,
            login,
            job,
        }) => {
            let staff = Staff::of(&home);
            let mut added = match role {
                MemberRole::Clinician => staff.add(ctx.lib()?, &name, login.as_deref(), role)?,
                MemberRole::Person => {
                    let Some(est_key) = home.read_key("establishment")? else {
                        anyhow::bail!(
                            "a site lead's web account is delegated by the establishment key, and {} holds none: put the key kept offline there for this command, then take it away again",
                            home.key_path("establishment").display()
                        );
                    };
                    staff.add_lead(ctx.lib()?, &name, login.as_deref(), &est_key)?
                }
                other => anyhow::bail!(
                    "web accounts are for clinicians and site leads (person), not {}",
                    other.slug()
                ),
            };
            if job.is_some() {
                added.account = staff.set_job(&added.account.login, job)?;
            }
            ForumOutcome::StaffAdded(added)
        }
        ForumOp::Staff(StaffCommand::Job { login, job, .. }) => {
            ForumOutcome::StaffList(vec![Staff::of(&home).set_job(&login, job)?])
        }
        ForumOp::Staff(StaffCommand::Remove { login, reason }) => {
            ForumOutcome::StaffRemoved(Staff::of(&home).remove(ctx.lib()?, &login, &reason)?)
        }
        ForumOp::Ask {
            title,
            body,
            mut pathways,
            mut settings,
            urgency,
            links,
        } => {
            let view = ctx.view()?;
            let mut ids = Vec::new();
            for l in &links {
                ids.push(item(&view, l)?);
            }
            if pathways.is_empty() {
                return Err(usage("a question names at least one --pathway"));
            }
            gatehouse_protocol::post::canonical(&mut pathways);
            gatehouse_protocol::post::canonical(&mut settings);
            let id = ctx.lib()?.post(Action::Ask(Question {
                title: title.trim().to_string(),
                body,
                pathways,
                settings,
                urgency,
                links: ids,
            }))?;
            ForumOutcome::Posted {
                what: "question".into(),
                id,
                thread: id,
            }
        }
        ForumOp::Discuss {
            title,
            body,
            about,
            mut pathways,
        } => {
            let about = match about {
                Some(a) => Some(item(&ctx.view()?, &a)?),
                None => None,
            };
            gatehouse_protocol::post::canonical(&mut pathways);
            let id = ctx.lib()?.post(Action::Topic(Topic {
                title: title.trim().to_string(),
                body,
                about,
                pathways,
            }))?;
            ForumOutcome::Posted {
                what: "discussion".into(),
                id,
                thread: id,
            }
        }
        ForumOp::Reply {
            thread,
            body,
            quoting,
        } => {
            let view = ctx.view()?;
            let thread = view.resolve_thread(&thread)?;
            let quoting = match quoting {
                Some(q) => Some(post_in(&view.thread(&thread, 0)?, &q)?),
                None => None,
            };
            let id = ctx.lib()?.post(Action::Reply(Reply {
                thread,
                quoting,
                body,
            }))?;
            ForumOutcome::Posted {
                what: "reply".into(),
                id,
                thread,
            }
        }
        ForumOp::Resolve { question, answer } => {
            let view = ctx.view()?;
            let question = view.resolve_thread(&question)?;
            let answer = post_in(&view.thread(&question, 0)?, &answer)?;
            let id = ctx.lib()?.post(Action::Resolve { question, answer })?;
            ForumOutcome::Posted {
                what: "resolution".into(),
                id,
                thread: question,
            }
        }
        ForumOp::Hide {
            post,
            reason,
            network,
        } => {
            let (thread, post) = ctx.view()?.resolve_post(&post)?;
            let id = if network {
                let admin = need_key(&home, "admin", "network admin")?;
                ctx.lib()?.hide_network_wide(&admin, post, reason)?
            } else {
                ctx.lib()?.post(Action::Hide { post, reason })?
            };
            ForumOutcome::Posted {
                what: "hide".into(),
                id,
                thread,
            }
        }
    })
}

fn short(id: &EnvelopeId) -> String {
    id.to_hex()[..8].to_string()
}

fn summary_line(out: &mut dyn Write, t: &ThreadSummary) -> anyhow::Result<()> {
    let state = if t.hidden {
        "hidden".to_string()
    } else if t.retracted {
        "withdrawn".to_string()
    } else if t.resolved_by.is_some() {
        "resolved".to_string()
    } else if t.overdue {
        "overdue".to_string()
    } else if t.kind == "question" {
        "open".to_string()
    } else {
        "discussion".to_string()
    };
    writeln!(
        out,
        "{}  {:<10} {:>2} replies  {}",
        short(&t.id),
        state,
        t.replies,
        t.title
    )?;
    writeln!(
        out,
        "          asked by {} on {}",
        t.author.label(),
        when(&t.created)
    )?;
    Ok(())
}

/// Renders a forum outcome as text or JSON.
pub fn render(outcome: &ForumOutcome, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
    if json {
        return match outcome {
            ForumOutcome::Posted { what, id, thread } => print_json(
                out,
                &serde_json::json!({"posted": what, "id": id, "thread": thread}),
            ),
            ForumOutcome::Threads(t) => print_json(out, t),
            ForumOutcome::Thread(t) => print_json(out, t),
            ForumOutcome::Moderation(m) => print_json(out, m),
            ForumOutcome::StaffAdded(a) => print_json(out, a),
            ForumOutcome::StaffList(a) => print_json(out, a),
            ForumOutcome::StaffRemoved(a) => print_json(out, a),
        };
    }
    match outcome {
        ForumOutcome::Posted { what, id, thread } => {
            writeln!(out, "posted {what} {id}")?;
            if thread != id {
                writeln!(out, "in thread {}", short(thread))?;
            }
        }
        ForumOutcome::Threads(list) => {
            if list.is_empty() {
                writeln!(out, "no threads")?;
            }
            for t in list {
                summary_line(out, t)?;
            }
        }
        ForumOutcome::Thread(t) => {
            writeln!(out, "{}", t.summary.title)?;
            if let Some(u) = t.summary.urgency {
                writeln!(out, "urgency: {}", u.label())?;
            }
            for p in &t.posts {
                writeln!(out)?;
                let mut marks = Vec::new();
                if p.resolves {
                    marks.push("resolved the question".to_string());
                }
                if p.helpful > 0 {
                    marks.push(format!("{} found it helpful", p.helpful));
                }
                if p.versions.len() > 1 {
                    marks.push(format!("edited {} times", p.versions.len() - 1));
                }
                writeln!(
                    out,
                    "{}  {}  {}",
                    short(&p.id),
                    p.author.label(),
                    when(&p.created)
                )?;
                if !marks.is_empty() {
                    writeln!(out, "  ({})", marks.join("; "))?;
                }
                if let Some(h) = &p.hidden {
                    writeln!(out, "  hidden by {}: {}", h.by.label(), h.reason)?;
                } else if p.retracted {
                    writeln!(out, "  withdrawn by its author")?;
                } else if let Some(body) = &p.body {
                    for line in body.lines() {
                        writeln!(out, "  {line}")?;
                    }
                }
            }
        }
        ForumOutcome::Moderation(log) => {
            if log.is_empty() {
                writeln!(out, "no post has been hidden")?;
            }
            for m in log {
                writeln!(
                    out,
                    "{}  {} hid post {} in thread {}: {}",
                    when(&m.created),
                    m.by.label(),
                    short(&m.post),
                    short(&m.thread),
                    m.reason
                )?;
            }
        }
        ForumOutcome::StaffAdded(a) => {
            writeln!(
                out,
                "added {} ({}) as {}",
                a.account.name,
                a.account.role.slug(),
                a.account.login
            )?;
            writeln!(out, "their key: {}", a.account.key)?;
            writeln!(out, "one-time set-up code: {}", a.setup_code)?;
            writeln!(
                out,
                "Hand the code to them in person; they sign in to this node's web page with it once and choose a password."
            )?;
        }
        ForumOutcome::StaffList(list) => {
            if list.is_empty() {
                writeln!(
                    out,
                    "no staff accounts; add one with `gatehouse staff add --name ...`"
                )?;
            }
            for a in list {
                let state = match a.state {
                    gatehouse_node::staff::AccountState::SetUp => "waiting for first sign-in",
                    gatehouse_node::staff::AccountState::Active => "active",
                    gatehouse_node::staff::AccountState::Removed => "removed",
                };
                writeln!(
                    out,
                    "{:<20} {:<24} {:<10} {:<22} {}",
                    a.login,
                    a.name,
                    a.role.slug(),
                    a.job.map_or("no job set", |j| j.slug()),
                    state
                )?;
            }
        }
        ForumOutcome::StaffRemoved(a) => {
            writeln!(
                out,
                "removed {} ({}): their key is revoked across the network; their past posts stay",
                a.name, a.login
            )?;
        }
    }
    Ok(())
}
