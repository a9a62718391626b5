//! How outcomes are shown: text for people, `--json` for scripts.
//!
//! Rendering happens in the process the user ran, whether the command ran
//! there or inside the running node, so output does not depend on where
//! the command ran.

use std::io::{self, Write};

use gatehouse_node::query::{ItemView, when};
use serde::Serialize;

use gatehouse_node::authoring::adopt::SourceChange;
use gatehouse_node::query::adoption::{Adopter, SourceAlert};
use gatehouse_node::query::diff::{LineChange, field_label, field_value, long_date};
use gatehouse_node::query::lifecycle::Lifecycle;
use gatehouse_node::query::reading::Register;
use gatehouse_protocol::vocab::{Nation, Status};

use crate::ops::{CheckReport, Outcome, PeersOutcome};
use crate::{render, trust_cmd};

/// `show --source`: the item as a file, ready to edit and `revise`.
pub fn render_source(outcome: &Outcome, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
    let Outcome::Item { view, .. } = outcome else {
        return render(outcome, out, json);
    };
    let text = gatehouse_node::authoring::draft::source(&view.item.content);
    if json {
        return print_json(
            out,
            &serde_json::json!({ "id": view.item.id, "version": view.item.version, "source": text }),
        );
    }
    write!(out, "{text}")?;
    Ok(())
}

/// What `publish --check` or `revise --check` found.
pub fn write_check(out: &mut dyn Write, report: &CheckReport, header: bool) -> anyhow::Result<()> {
    let c = &report.content;
    if header {
        writeln!(
            out,
            "Checked {}: it can be published. Nothing was signed or stored.",
            report.file.display()
        )?;
    }
    let slugs = |v: Vec<&str>| v.join(", ");
    let summary = |out: &mut dyn Write| -> anyhow::Result<()> {
        writeln!(
            out,
            "  {} ({}, {})",
            c.title,
            c.kind.slug(),
            c.status.slug()
        )?;
        writeln!(
            out,
            "  pathways {} · settings {} · {} · review due {}",
            slugs(c.pathways.iter().map(|p| p.slug()).collect()),
            slugs(c.settings.iter().map(|s| s.slug()).collect()),
            Nation::set_slugs(&c.nations).join(","),
            long_date(c.review_due)
        )?;
        Ok(())
    };
    match &report.revises {
        None => {
            writeln!(out, "It would publish a new item:")?;
            summary(out)?;
            if !report.same_title.is_empty() {
                writeln!(out, "This site already has an item with this title:")?;
                for v in &report.same_title {
                    write_item_line(out, v)?;
                }
                let first = &report.same_title[0].item.id.to_hex()[..8];
                writeln!(
                    out,
                    "Publishing the file would make a second item. To publish it as a new version of that one: gatehouse revise {first} {}",
                    report.file.display()
                )?;
            }
        }
        Some(d) => {
            writeln!(
                out,
                "It would be version {} of {} ({}):",
                d.to,
                &d.item.to_hex()[..8],
                c.title
            )?;
            write_diff(out, d)?;
        }
    }
    Ok(())
}

/// The changes from one version to another: fields, then body lines.
pub fn write_diff(
    out: &mut dyn Write,
    d: &gatehouse_node::query::diff::ItemDiff,
) -> anyhow::Result<()> {
    if d.fields.is_empty() && d.hunks.is_empty() {
        writeln!(out, "  no change from version {}", d.from)?;
    }
    for f in &d.fields {
        let shown = |v: &str| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                field_value(v)
            }
        };
        writeln!(
            out,
            "  {}: {} → {}",
            field_label(&f.field),
            shown(&f.before),
            shown(&f.after)
        )?;
    }
    if !d.hunks.is_empty() {
        let lines = |n: usize| {
            if n == 1 {
                "1 line".to_string()
            } else {
                format!("{n} lines")
            }
        };
        writeln!(
            out,
            "  body: {} added, {} removed",
            lines(d.lines_added),
            lines(d.lines_removed)
        )?;
    }
    for hunk in &d.hunks {
        if let Some(at) = hunk.lines.iter().find_map(|l| l.new_line.or(l.old_line)) {
            writeln!(out, "  @@ line {at}")?;
        }
        for l in &hunk.lines {
            let mark = match l.change {
                LineChange::Same => ' ',
                LineChange::Added => '+',
                LineChange::Removed => '-',
            };
            writeln!(out, "  {mark} {}", l.text)?;
        }
    }
    Ok(())
}

/// Lines of what arrived from peers that `status` shows (`--json` has all
/// the node keeps).
const ARRIVED_LINES: usize = 10;

/// Writes `outcome` to `out`.
pub fn render(outcome: &Outcome, mut out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
    match outcome {
        Outcome::Published { id } => {
            if json {
                return print_json(&mut out, &serde_json::json!({ "id": id }));
            }
            writeln!(out, "{id}")?;
        }
        Outcome::Described { what } => {
            if json {
                return print_json(&mut out, &serde_json::json!({ "what": what }));
            }
            writeln!(out, "{what}")?;
        }
        Outcome::Checked(report) => {
            if json {
                return print_json(&mut out, report);
            }
            write_check(&mut out, report, true)?;
        }
        Outcome::Revised {
            id,
            version,
            asked_again,
        } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "version": version, "asked_again": asked_again }),
                );
            }
            writeln!(out, "{id} is now at version {version}")?;
            match asked_again {
                Some(true) => writeln!(
                    out,
                    "A significant revision: the staff asked to read it are asked again (see `gatehouse register {}`)",
                    id.short()
                )?,
                Some(false) => writeln!(
                    out,
                    "Nobody had been asked to read it; ask with `gatehouse read-request {}`",
                    id.short()
                )?,
                None => {}
            }
        }
        Outcome::ReadingRequested { record, request } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "record": record, "request": request }),
                );
            }
            if let Some(r) = request {
                writeln!(
                    out,
                    "Asked {} to read version {} by {} (record {})",
                    r.jobs_in_words(),
                    r.version,
                    r.due,
                    record.short()
                )?;
            }
        }
        Outcome::Acknowledged {
            id,
            version,
            record,
        } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "version": version, "record": record }),
                );
            }
            writeln!(
                out,
                "You have acknowledged reading version {version} of {} (record {})",
                id.short(),
                record.short()
            )?;
        }
        Outcome::Register(r) => {
            if json {
                return print_json(&mut out, r);
            }
            write_register(&mut out, r)?;
        }
        Outcome::Superseded { id, by } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "superseded_by": by }),
                );
            }
            writeln!(out, "{id} is superseded by {by}")?;
        }
        Outcome::Withdrawn { id } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "status": "withdrawn" }),
                );
            }
            writeln!(out, "{id} is withdrawn")?;
        }
        Outcome::Items { items } => {
            if json {
                return print_json(&mut out, &serde_json::json!({ "items": items }));
            }
            if items.is_empty() {
                writeln!(out, "No items match.")?;
            }
            for v in items {
                write_item_line(&mut out, v)?;
            }
        }
        Outcome::Item {
            view,
            adopters,
            lifecycle,
        } => {
            if json {
                let mut value = serde_json::to_value(view)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("adopted_by".into(), serde_json::to_value(adopters)?);
                    if let Some(l) = lifecycle {
                        map.insert("lifecycle".into(), serde_json::to_value(l)?);
                    }
                }
                return print_json(&mut out, &value);
            }
            write_item(&mut out, view)?;
            if let Some(l) = lifecycle {
                write_lifecycle(&mut out, view, l)?;
            }
            write_adopters(&mut out, view, adopters)?;
        }
        Outcome::Approved(a) => {
            if json {
                return print_json(&mut out, a);
            }
            writeln!(
                out,
                "Version {} of {} approved (approval record {}){}",
                a.version,
                a.item,
                a.record.short(),
                if a.published {
                    "; it is published and in force from today"
                } else {
                    ""
                }
            )?;
        }
        Outcome::Reviewed { id, next } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "review_due": next.to_string() }),
                );
            }
            writeln!(out, "{id} reviewed with no change; next review by {next}")?;
        }
        Outcome::Rules { rules, signed } => {
            if json {
                return print_json(&mut out, rules);
            }
            if *signed {
                writeln!(
                    out,
                    "Signed revision {} of this establishment's rules:",
                    rules.revision
                )?;
            }
            writeln!(
                out,
                "approval          {}",
                if rules.two_person_approval {
                    "a second person must approve: an approval by a version's author does not count"
                } else {
                    "one person may approve, the author included"
                }
            )?;
            writeln!(
                out,
                "review reminders  start {} months before the review date",
                rules.reminder_months
            )?;
        }
        Outcome::Adopted { id, from, version } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "adopted_from": from, "source_version": version }),
                );
            }
            writeln!(out, "{id}")?;
            writeln!(
                out,
                "Adopted from {} at its version {version}; this establishment owns the copy. Change it with `gatehouse edit {}`.",
                from.short(),
                id.short()
            )?;
        }
        Outcome::SourceChange(change) => {
            if json {
                return print_json(&mut out, change);
            }
            write_source_change(&mut out, change)?;
        }
        Outcome::TookChange {
            id,
            version,
            source_version,
        } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "version": version, "source_version": source_version }),
                );
            }
            writeln!(
                out,
                "{id} is now at version {version}, holding version {source_version} of its source"
            )?;
        }
        Outcome::History { id, versions } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "id": id, "versions": versions }),
                );
            }
            for v in versions {
                writeln!(
                    out,
                    "v{:<3} {:<10} {}  {} ({}), {}",
                    v.version,
                    v.action,
                    when(&v.at),
                    v.signer.name.as_deref().unwrap_or("unknown key"),
                    v.signer.key.short(),
                    v.establishment
                        .name
                        .as_deref()
                        .unwrap_or("unknown establishment"),
                )?;
                let mut what = v
                    .changed
                    .iter()
                    .map(|f| field_label(f))
                    .collect::<Vec<_>>()
                    .join(", ");
                if v.lines_added + v.lines_removed > 0 {
                    what.push_str(&format!(
                        " (body +{} -{} lines)",
                        v.lines_added, v.lines_removed
                    ));
                }
                writeln!(out, "     changed: {what}")?;
            }
        }
        Outcome::Search { query, results } => {
            if json {
                return print_json(&mut out, results);
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
            for r in &results.results {
                write_item_line(&mut out, &r.view)?;
                writeln!(out, "    {}\n", highlight(&r.snippet, &r.highlights))?;
            }
        }
        Outcome::Due {
            today,
            within_days,
            items,
            source_changes,
            awaiting_approval,
        } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "today": today, "within_days": within_days, "items": items, "source_changes": source_changes, "awaiting_approval": awaiting_approval }),
                );
            }
            write_source_alerts(&mut out, source_changes)?;
            if !awaiting_approval.is_empty() {
                writeln!(
                    out,
                    "Submitted for approval (approve with `gatehouse approve ID --key YOUR.key`):"
                )?;
                for v in awaiting_approval {
                    writeln!(
                        out,
                        "  {}  {}  version {}",
                        v.item.id.short(),
                        v.item.content.title,
                        v.item.version
                    )?;
                }
                writeln!(out)?;
            }
            if items.is_empty() {
                writeln!(
                    out,
                    "Nothing of this establishment's is due for review within {within_days} days."
                )?;
            }
            for d in items {
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
        }
        Outcome::Establishments { establishments } => {
            if json {
                return print_json(
                    &mut out,
                    &serde_json::json!({ "establishments": establishments }),
                );
            }
            for e in establishments {
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
        }
        Outcome::Status {
            report: s,
            net,
            last_sync_ms,
            warning,
        } => {
            if json {
                let mut v = serde_json::to_value(s)?;
                v["node_running"] = serde_json::json!(net.is_some());
                v["network_state"] = serde_json::to_value(net)?;
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
            match net {
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
                                gatehouse_node::query::format_ms
                            )
                        )?;
                    }
                    if !n.arrived.is_empty() {
                        writeln!(out, "arrived        from peers, latest last:")?;
                        let skip = n.arrived.len().saturating_sub(ARRIVED_LINES);
                        for line in &n.arrived[skip..] {
                            let at = when(&gatehouse_node::query::format_ms(line.at_ms));
                            writeln!(out, "  {at}  {}", line.text)?;
                        }
                    }
                    if n.forged_received > 0 {
                        writeln!(
                            out,
                            "forged         {} envelopes refused from peers",
                            n.forged_received
                        )?;
                    }
                    if n.refused_received > 0 {
                        writeln!(
                            out,
                            "not stored     {} envelopes from peers (no effect, or past a limit)",
                            n.refused_received
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
        }
        Outcome::Trust(t) => return trust_cmd::render(t, out, json),
        Outcome::Forum(f) => return crate::forum_cmd::render(f, out, json),
        Outcome::Measure(m) => return crate::measure_cmd::render(m, out, json),
        Outcome::Pack(r) => return crate::pack_cmd::render(r, false, out, json),
        Outcome::Peers(p) => return render_peers(p, out, json),
        Outcome::BackedUp(r) => {
            if json {
                return print_json(&mut out, r);
            }
            writeln!(
                out,
                "{} envelopes ({} bytes) backed up to {}, signed by this node",
                r.envelopes,
                r.bytes,
                r.file.display()
            )?;
            match &r.settings {
                Some(settings) => {
                    writeln!(out, "with the settings file {}", settings.display())?;
                }
                None => writeln!(
                    out,
                    "no settings file in it: this data directory has none; name the one the node runs with by --config (the service's is /etc/gatehouse/gatehouse.toml)"
                )?,
            }
            if r.keys.is_empty() {
                writeln!(
                    out,
                    "keys are not in it: keep keys/ safe apart, or back up with --include-keys"
                )?;
            } else {
                writeln!(
                    out,
                    "keys sealed in it under the passphrase: {}",
                    r.keys.join(", ")
                )?;
            }
        }
    }
    Ok(())
}

fn render_peers(outcome: &PeersOutcome, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
    match outcome {
        PeersOutcome::Added { address, added } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "address": address, "added": added }),
                );
            }
            if *added {
                writeln!(out, "remembered {address}")?;
            } else {
                writeln!(out, "{address} was already in the peer book")?;
            }
        }
        PeersOutcome::Removed { address } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "address": address, "removed": true }),
                );
            }
            writeln!(out, "forgot {address}")?;
        }
        PeersOutcome::Listed { book, net } => {
            if json {
                return print_json(out, &serde_json::json!({ "book": book, "network": net }));
            }
            for p in book {
                writeln!(
                    out,
                    "{}  last sync {}",
                    p.address,
                    p.last_sync_ms
                        .map_or_else(|| "never".to_string(), gatehouse_node::query::format_ms)
                )?;
            }
            match net {
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
                                gatehouse_node::query::format_ms
                            )
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn print_json(out: &mut (impl Write + ?Sized), value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

fn write_item_line(out: &mut dyn Write, v: &ItemView) -> anyhow::Result<()> {
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

/// Marks where emphasis starts in text output; [`Terminal`] turns it into
/// bold on a terminal and `**` elsewhere.
pub const EMPHASIS_ON: char = '\u{E000}';
/// Marks where emphasis ends.
pub const EMPHASIS_OFF: char = '\u{E001}';

fn highlight(snippet: &str, ranges: &[(usize, usize)]) -> String {
    let (open, close) = (EMPHASIS_ON, EMPHASIS_OFF);
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
        out.push(open);
        out.push_str(&snippet[s..e]);
        out.push(close);
        last = e;
    }
    out.push_str(&snippet[last..]);
    out.replace('\n', " ")
}

/// Adopted items whose source changed since the version taken.
fn write_source_alerts(out: &mut dyn Write, alerts: &[SourceAlert]) -> anyhow::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    writeln!(out, "The source changed since you adopted it:")?;
    for a in alerts {
        let source = &a.source.item;
        let what = match source.content.status {
            Status::Withdrawn => "withdrawn".to_string(),
            Status::Superseded => "superseded".to_string(),
            _ => format!("now version {}", source.version),
        };
        writeln!(
            out,
            "  {}  {}  (yours holds version {} of {} by {}, {what}); see it with `gatehouse take-change {} --check`",
            a.mine.item.id.short(),
            a.mine.item.content.title,
            a.taken,
            source.id.short(),
            a.source
                .establishment
                .name
                .as_deref()
                .unwrap_or("another site"),
            a.mine.item.id.short(),
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// Where an item came from and the sites that adopted it.
fn write_adopters(out: &mut dyn Write, v: &ItemView, adopters: &[Adopter]) -> anyhow::Result<()> {
    if let Some(a) = v.item.adoption {
        writeln!(
            out,
            "{:<16}{} at its version {} (envelope {})",
            "adopted from",
            a.from.to_hex(),
            a.version,
            a.envelope.short()
        )?;
    }
    if adopters.is_empty() {
        return Ok(());
    }
    let sites = if adopters.len() == 1 { "site" } else { "sites" };
    writeln!(out, "{:<16}{} {sites}:", "adopted by", adopters.len())?;
    for a in adopters {
        let held = a.version.map_or("version not recorded".to_string(), |n| {
            if n == v.item.version {
                format!("version {n}, the latest")
            } else {
                format!("version {n}")
            }
        });
        writeln!(
            out,
            "  {}  {}  holds {held}{}",
            a.item.short(),
            a.establishment
                .name
                .as_deref()
                .unwrap_or("unknown establishment"),
            if a.status == Status::Published {
                String::new()
            } else {
                format!(" ({})", a.status)
            }
        )?;
    }
    Ok(())
}

/// What taking a source's change would do.
pub fn write_source_change(out: &mut dyn Write, c: &SourceChange) -> anyhow::Result<()> {
    let source = &c.source.item;
    writeln!(
        out,
        "{} by {} changed from version {} (yours) to {}:",
        source.content.title,
        c.source
            .establishment
            .name
            .as_deref()
            .unwrap_or("another site"),
        c.taken.item.version,
        source.version
    )?;
    write_diff(out, &gatehouse_node::query::diff::diff(&c.taken, &c.source))?;
    if c.conflicts > 0 {
        writeln!(
            out,
            "Your copy changed {} of the same places; take the change with --edit to choose the lines to keep.",
            if c.conflicts == 1 {
                "one".to_string()
            } else {
                c.conflicts.to_string()
            }
        )?;
    } else {
        let mut proposed = c.mine.clone();
        proposed.item.content = c.merged.clone();
        proposed.item.version += 1;
        writeln!(
            out,
            "Taken into your copy {} (your own changes kept), it would be version {}:",
            c.mine.item.id.short(),
            proposed.item.version
        )?;
        write_diff(out, &gatehouse_node::query::diff::diff(&c.mine, &proposed))?;
    }
    Ok(())
}

/// Who has read an item's requested version and who has not.
fn write_register(out: &mut dyn Write, r: &Register) -> anyhow::Result<()> {
    writeln!(out, "{} (version {})", r.title, r.version)?;
    let Some(req) = &r.request else {
        writeln!(
            out,
            "Nobody has been asked to read it: `gatehouse read-request {} --job nurse --by YYYY-MM-DD`",
            r.item.short()
        )?;
        return Ok(());
    };
    writeln!(
        out,
        "{} must read version {} by {}{}; {} of {} have",
        gatehouse_node::query::capitalised(&req.jobs_in_words()),
        req.version,
        req.due,
        if r.overdue { " (OVERDUE)" } else { "" },
        r.done(),
        r.rows.len()
    )?;
    for row in &r.rows {
        let job = row.person.job.map_or("no job set", |j| j.label());
        match &row.acknowledged {
            Some(a) => writeln!(
                out,
                "  read      {}  ({job}): version {} on {}",
                row.person.name,
                a.version,
                a.at.get(..10).unwrap_or(&a.at)
            )?,
            None => writeln!(out, "  NOT YET   {}  ({job})", row.person.name)?,
        }
    }
    for a in &r.others {
        writeln!(
            out,
            "  also      {}: version {} on {}",
            a.who.name.as_deref().unwrap_or("unknown key"),
            a.version,
            a.at.get(..10).unwrap_or(&a.at)
        )?;
    }
    Ok(())
}

/// The stage of an item's version, its approvals and its front sheet.
fn write_lifecycle(out: &mut dyn Write, v: &ItemView, l: &Lifecycle) -> anyhow::Result<()> {
    let row = |out: &mut dyn Write, k: &str, val: &str| writeln!(out, "{k:<16}{val}");
    writeln!(out)?;
    row(out, "stage", l.stage.label())?;
    match &l.approved {
        Some(a) => row(
            out,
            "approval",
            &format!(
                "version {} approved by {} ({}), signed {}",
                a.version,
                a.approver.name.as_deref().unwrap_or("unknown key"),
                a.approver.key.short(),
                a.at
            ),
        )?,
        None => row(out, "approval", "no approval of this version counts")?,
    }
    for a in l.approvals.iter().filter(|a| !a.counts) {
        row(
            out,
            "not counted",
            &format!(
                "approval of version {} by {} ({}): {}",
                a.version,
                a.approver.name.as_deref().unwrap_or("unknown key"),
                a.approver.key.short(),
                a.reason.as_deref().unwrap_or("")
            ),
        )?;
    }
    row(
        out,
        "reminders",
        &format!(
            "from {} (review due {})",
            l.reminders_from, v.item.content.review_due
        ),
    )?;
    let fs = &v.item.content.front_sheet;
    for (k, text) in fs.texts() {
        row(out, &k.replace('_', " "), text)?;
    }
    if let Some(e) = fs.equality_impact {
        let when = fs
            .equality_impact_on
            .map(|d| format!(" on {d}"))
            .unwrap_or_default();
        row(out, "equality impact", &format!("{}{when}", e.slug()))?;
    }
    Ok(())
}

fn write_item(out: &mut dyn Write, v: &ItemView) -> anyhow::Result<()> {
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
    row(out, "nation", &Nation::set_label(&c.nations))?;
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
    for a in &i.attachments {
        row(
            out,
            "file",
            &format!(
                "{} ({}, {})",
                a.name,
                a.media_type.label(),
                gatehouse_node::web::files::size_text(a.size)
            ),
        )?;
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

/// Text output for a person. Items come from other sites, so anything they
/// hold is printed as text only: control characters (the ANSI and OSC
/// escape sequences that move the cursor, retitle the window or write the
/// clipboard, C1 controls, bidirectional overrides) are dropped. The CLI's
/// own emphasis ([`EMPHASIS_ON`], [`EMPHASIS_OFF`]) becomes bold on a
/// terminal and `**` elsewhere.
pub struct Terminal<W: Write> {
    inner: W,
    tty: bool,
    /// The start of a UTF-8 sequence a write cut in two.
    pending: Vec<u8>,
}

impl<W: Write> Terminal<W> {
    /// Text output to `inner`; `tty` when it is a terminal.
    pub fn new(inner: W, tty: bool) -> Self {
        Self {
            inner,
            tty,
            pending: Vec::new(),
        }
    }

    fn put(&mut self, text: &str) -> io::Result<()> {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                EMPHASIS_ON => out.push_str(if self.tty { "\x1b[1m" } else { "**" }),
                EMPHASIS_OFF => out.push_str(if self.tty { "\x1b[0m" } else { "**" }),
                '\n' | '\t' => out.push(c),
                c if c.is_control() => {}
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
                c => out.push(c),
            }
        }
        self.inner.write_all(out.as_bytes())
    }
}

impl<W: Write> Write for Terminal<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let bytes = std::mem::take(&mut self.pending);
        let mut rest = bytes.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.put(text)?;
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // Checked by from_utf8 just above.
                    self.put(std::str::from_utf8(valid).unwrap_or_default())?;
                    match e.error_len() {
                        // A sequence cut short: wait for the rest of it.
                        None => {
                            self.pending = after.to_vec();
                            break;
                        }
                        Some(n) => {
                            self.put("\u{fffd}")?;
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.put("\u{fffd}")?;
            self.pending.clear();
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Terminal<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &[u8], tty: bool, chunk: usize) -> String {
        let mut out = Vec::new();
        {
            let mut t = Terminal::new(&mut out, tty);
            for part in text.chunks(chunk) {
                t.write_all(part).expect("write");
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn escape_sequences_from_data_are_dropped_and_emphasis_kept() {
        let hostile = "Policy \x1b]0;owned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\u{9b}31m\u{202e}gnp.exe \u{e000}naloxone\u{e001}\n";
        for chunk in [1, 2, 3, 7, 1000] {
            let plain = shown(hostile.as_bytes(), false, chunk);
            assert_eq!(
                plain, "Policy ]0;owned[2J]52;c;ZXZpbA==31mgnp.exe **naloxone**\n",
                "chunks of {chunk}"
            );
            let tty = shown(hostile.as_bytes(), true, chunk);
            assert!(!tty.contains('\x07') && !tty.contains("\x1b]") && !tty.contains("\x1b[2J"));
            assert!(tty.contains("\x1b[1mnaloxone\x1b[0m"), "{tty:?}");
        }
    }

    #[test]
    fn broken_utf8_is_shown_as_a_replacement_character() {
        assert_eq!(shown(b"a\xffb\xe2\x82", false, 1), "a\u{fffd}b\u{fffd}");
        assert_eq!(shown("caf\u{e9}".as_bytes(), false, 1), "caf\u{e9}");
    }
}
