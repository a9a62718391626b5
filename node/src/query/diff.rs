//! What changed between two versions of an item: its metadata field by
//! field, and its body line by line.

use gatehouse_protocol::id::ItemId;
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use crate::query::ItemView;

/// Lines of unchanged body kept around each change.
pub const DIFF_CONTEXT_LINES: usize = 3;

/// A field's name as people say it ("Review date" for `review_due`); the
/// JSON and front matter keep the names of the format.
pub fn field_label(field: &str) -> &str {
    match field {
        "title" => "Title",
        "kind" => "Kind",
        "summary" => "Summary",
        "body" => "Document text",
        "pathways" => "Care pathways",
        "settings" => "Settings",
        "nation" | "nations" => "Nation",
        "tags" => "Tags",
        "approved_by" => "Approved by",
        "approved_on" => "Approved on",
        "effective_from" => "Effective from",
        "review_due" => "Review date",
        "status" => "Status",
        "qi" => "Quality improvement details",
        "superseded_by" => "Replaced by",
        "supersedes" => "Replaces",
        "withdrawn_reason" => "Reason for withdrawal",
        "created" => "First version",
        other => other,
    }
}

/// A date as people write it: "1 December 2026".
pub fn long_date(date: gatehouse_protocol::jiff::civil::Date) -> String {
    date.strftime("%-d %B %Y").to_string()
}

/// A field value for people: an ISO date ("2027-03-31") as a long one,
/// anything else as it is.
pub fn field_value(value: &str) -> String {
    value
        .parse::<gatehouse_protocol::jiff::civil::Date>()
        .map_or_else(|_| value.to_string(), long_date)
}

/// One metadata field whose value differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field, as named in front matter and JSON.
    pub field: String,
    /// Its value in the older version (empty when unset).
    pub before: String,
    /// Its value in the newer version (empty when unset).
    pub after: String,
}

/// Whether a body line is kept, added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineChange {
    /// In both versions.
    Same,
    /// Only in the newer version.
    Added,
    /// Only in the older version.
    Removed,
}

/// One line of the body diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    /// Kept, added or removed.
    pub change: LineChange,
    /// Line number in the older version, if the line is there.
    pub old_line: Option<usize>,
    /// Line number in the newer version, if the line is there.
    pub new_line: Option<usize>,
    /// The text, without its line ending.
    pub text: String,
}

/// A run of changed body lines with their context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hunk {
    /// The lines, in order.
    pub lines: Vec<DiffLine>,
}

/// The differences between two versions of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDiff {
    /// The item.
    pub item: ItemId,
    /// The older version.
    pub from: u64,
    /// The newer version.
    pub to: u64,
    /// Metadata fields that differ.
    pub fields: Vec<FieldChange>,
    /// Body changes, with context.
    pub hunks: Vec<Hunk>,
    /// Body lines added in all.
    pub lines_added: usize,
    /// Body lines removed in all.
    pub lines_removed: usize,
}

fn display(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(", "),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", display(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// The differences from `old` to `new` (two versions of one item).
pub fn diff(old: &ItemView, new: &ItemView) -> ItemDiff {
    let as_map = |v: &ItemView| match serde_json::to_value(&v.item.content) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (before, after) = (as_map(old), as_map(new));
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    let fields = names
        .into_iter()
        .filter(|name| name.as_str() != "body")
        .filter_map(|name| {
            let null = serde_json::Value::Null;
            let (b, a) = (
                before.get(name).unwrap_or(&null),
                after.get(name).unwrap_or(&null),
            );
            (b != a).then(|| FieldChange {
                field: name.clone(),
                before: display(b),
                after: display(a),
            })
        })
        .collect();
    let text = TextDiff::from_lines(&old.item.content.body, &new.item.content.body);
    let mut hunks = Vec::new();
    let (mut added, mut removed) = (0, 0);
    for group in text.grouped_ops(DIFF_CONTEXT_LINES) {
        let mut lines = Vec::new();
        for op in group {
            for change in text.iter_changes(&op) {
                let kind = match change.tag() {
                    ChangeTag::Equal => LineChange::Same,
                    ChangeTag::Insert => {
                        added += 1;
                        LineChange::Added
                    }
                    ChangeTag::Delete => {
                        removed += 1;
                        LineChange::Removed
                    }
                };
                lines.push(DiffLine {
                    change: kind,
                    old_line: change.old_index().map(|i| i + 1),
                    new_line: change.new_index().map(|i| i + 1),
                    text: change.value().trim_end_matches(['\r', '\n']).to_string(),
                });
            }
        }
        hunks.push(Hunk { lines });
    }
    ItemDiff {
        item: new.item.id,
        from: old.item.version,
        to: new.item.version,
        fields,
        hunks,
        lines_added: added,
        lines_removed: removed,
    }
}
