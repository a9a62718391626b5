//! Reading an item from a Markdown file with a YAML front-matter block, the
//! static-site convention site leads already know:
//!
//! ```text
//! ---
//! title: Take-home naloxone on release
//! kind: procedure
//! ...
//! ---
//! # Markdown body
//! ```
//!
//! Unknown keys and unknown vocabulary values are refused, and every error
//! names the key and the line, so a typo is fixed in seconds rather than
//! filed under nothing. The whole file is scanned for patient identifiers
//! before anything else.

use gatehouse_protocol::identifier::{IdentifierKind, find_identifiers_allowing};
use gatehouse_protocol::item::{FrontSheet, ItemContent, QiDetails};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::vocab::{Kind, Nation, Status};
use serde::Deserialize;
use thiserror::Error;

/// Largest item file read, in bytes.
pub const MAX_DRAFT_BYTES: usize = 512 * 1024;

/// Why a file is not a publishable item.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DraftError {
    /// The file does not start with a `---` line.
    #[error(
        "line 1: the file must start with a front-matter block: a line `---`, the YAML keys, and another `---`"
    )]
    NoFrontMatter,
    /// The closing `---` is missing.
    #[error("line {0}: the front-matter block opened here is never closed with a `---` line")]
    Unterminated(usize),
    /// The YAML does not parse or has the wrong shape.
    #[error("line {line}, column {column}: {message}")]
    Yaml {
        /// 1-based line in the file.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A key's value breaks a rule (or a required key is missing: line 0).
    #[error("{}{field}: {message}", if *line == 0 { "front matter: ".to_string() } else { format!("line {line}: ") })]
    Field {
        /// The key.
        field: String,
        /// 1-based line of the key in the file (0 when absent).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file holds what looks like a patient identifier.
    #[error(
        "line {line}, column {column}: looks like {} ({text:?}); patient identifiers never enter the library. If this is a reviewed false positive, pass --allow-identifier {text:?}", kind.with_article()
    )]
    Identifier {
        /// What sort.
        kind: IdentifierKind,
        /// The matched text.
        text: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The file is too large.
    #[error("the file is {0} bytes, over the limit of {MAX_DRAFT_BYTES}")]
    TooLarge(usize),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    title: String,
    kind: String,
    summary: String,
    pathways: Vec<String>,
    settings: Vec<String>,
    #[serde(alias = "nations")]
    nation: OneOrMany,
    #[serde(default)]
    tags: Vec<String>,
    approved_by: Option<String>,
    approved_on: Option<String>,
    effective_from: Option<String>,
    review_due: String,
    status: Option<String>,
    aim: Option<String>,
    measures: Option<Vec<String>>,
    pdsa_cycles: Option<Vec<String>>,
    outcomes: Option<String>,
    document_owner: Option<String>,
    ratifying_committee: Option<String>,
    equality_impact: Option<String>,
    consultation: Option<String>,
    distribution: Option<String>,
    version_notes: Option<String>,
}

/// A key that takes one value or a list (`nation: uk`, `nation: [england, wales]`).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn joined(&self) -> String {
        match self {
            OneOrMany::One(s) => s.clone(),
            OneOrMany::Many(v) => v.join(","),
        }
    }
}

struct Located<'a> {
    yaml: &'a str,
    first_line: usize,
}

impl Located<'_> {
    /// The file line of `key:` in the front matter, or 0.
    fn line_of(&self, key: &str) -> usize {
        self.yaml
            .lines()
            .position(|l| {
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
            .map_or(0, |i| self.first_line + i)
    }

    fn err(&self, field: &str, message: impl Into<String>) -> DraftError {
        DraftError::Field {
            field: field.to_string(),
            line: self.line_of(field),
            message: message.into(),
        }
    }

    fn parse<T: std::str::FromStr>(&self, field: &str, v: &str) -> Result<T, DraftError>
    where
        T::Err: std::fmt::Display,
    {
        v.parse()
            .map_err(|e: T::Err| self.err(field, e.to_string()))
    }

    fn date(&self, field: &str, v: &str) -> Result<Date, DraftError> {
        v.trim()
            .parse()
            .map_err(|_| self.err(field, format!("{v:?} is not a date; write YYYY-MM-DD")))
    }
}

/// Splits a file into its front matter (with the line it starts on) and body.
fn split(text: &str) -> Result<(&str, usize, &str), DraftError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    match lines.next() {
        Some(first) if first.trim_end() == "---" => {}
        _ => return Err(DraftError::NoFrontMatter),
    }
    let start = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut offset = start;
    for (i, line) in lines.enumerate() {
        if line.trim_end() == "---" {
            let yaml = &text[start..offset];
            let body = &text[offset + line.len()..];
            let _ = i;
            return Ok((yaml, 2, body));
        }
        offset += line.len();
    }
    Err(DraftError::Unterminated(1))
}

/// Deepest nesting front matter may have. Item fields are scalars or flat
/// lists; the YAML parser takes time quadratic in depth, so depth is
/// checked before it runs.
const MAX_YAML_DEPTH: usize = 8;

/// Refuses front matter nested deeper than [`MAX_YAML_DEPTH`]: brackets and
/// braces outside quotes, `- ` entries opened on one line, and indentation
/// (two spaces a level).
fn check_nesting(yaml: &str, first_line: usize) -> Result<(), DraftError> {
    let too_deep = |line: usize, column: usize| DraftError::Yaml {
        line: first_line + line,
        column,
        message: format!(
            "front matter nests deeper than {MAX_YAML_DEPTH} levels; item fields are single values or flat lists"
        ),
    };
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (n, line) in yaml.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        let dashes = rest
            .split_inclusive(' ')
            .take_while(|w| *w == "- " || *w == "-")
            .count();
        if indent / 2 + dashes > MAX_YAML_DEPTH {
            return Err(too_deep(n, indent + 1));
        }
        let mut previous = ' ';
        for (col, c) in line.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                // A quote opens a quoted scalar only where a value starts
                // (an apostrophe inside a word opens nothing).
                (None, '\'' | '"') if matches!(previous, ' ' | '[' | '{' | ',' | ':') => {
                    quote = Some(c);
                }
                (None, '#') if previous == ' ' => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_YAML_DEPTH {
                        return Err(too_deep(n, col + 1));
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                (None, _) => {}
            }
            previous = c;
        }
    }
    Ok(())
}

/// Reads an item file. `allowed` lists reviewed false-positive identifiers.
pub fn parse(text: &str, allowed: &[String]) -> Result<ItemContent, DraftError> {
    if text.len() > MAX_DRAFT_BYTES {
        return Err(DraftError::TooLarge(text.len()));
    }
    if let Some(m) = find_identifiers_allowing(text, allowed).into_iter().next() {
        return Err(DraftError::Identifier {
            kind: m.kind,
            text: m.text,
            line: m.line,
            column: m.column,
        });
    }
    let (yaml, first_line, body) = split(text)?;
    check_nesting(yaml, first_line)?;
    let at = Located { yaml, first_line };
    let fm: FrontMatter = serde_yaml_ng::from_str(yaml).map_err(|e| {
        let (line, column) = e
            .location()
            .map_or((first_line, 1), |l| (l.line() + first_line - 1, l.column()));
        DraftError::Yaml {
            line,
            column,
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    })?;
    let kind: Kind = at.parse("kind", &fm.kind)?;
    let status = match &fm.status {
        Some(s) => at.parse::<Status>("status", s)?,
        None => Status::Published,
    };
    let qi_keys = [
        ("aim", fm.aim.is_some()),
        ("measures", fm.measures.is_some()),
        ("pdsa_cycles", fm.pdsa_cycles.is_some()),
        ("outcomes", fm.outcomes.is_some()),
    ];
    let qi = if kind == Kind::QiInitiative {
        if let Some((missing, _)) = qi_keys.iter().find(|(_, present)| !present) {
            return Err(at.err(
                missing,
                "a qi-initiative needs aim, measures, pdsa_cycles and outcomes",
            ));
        }
        Some(QiDetails {
            aim: fm.aim.unwrap_or_default(),
            measures: fm.measures.unwrap_or_default(),
            pdsa_cycles: fm.pdsa_cycles.unwrap_or_default(),
            outcomes: fm.outcomes.unwrap_or_default(),
        })
    } else {
        if let Some((present, _)) = qi_keys.iter().find(|(_, present)| *present) {
            return Err(at.err(present, "only items of kind qi-initiative have this key"));
        }
        None
    };
    let content = ItemContent {
        title: fm.title.trim().to_string(),
        kind,
        summary: fm.summary.trim().to_string(),
        body: body.trim_start_matches(['\r', '\n']).to_string(),
        pathways: fm
            .pathways
            .iter()
            .map(|p| at.parse("pathways", p))
            .collect::<Result<_, _>>()?,
        settings: fm
            .settings
            .iter()
            .map(|s| at.parse("settings", s))
            .collect::<Result<_, _>>()?,
        nations: Nation::parse_set(&fm.nation.joined())
            .map_err(|e| at.err("nation", e.to_string()))?,
        tags: fm.tags.iter().map(|t| t.trim().to_lowercase()).collect(),
        approved_by: fm.approved_by.map(|s| s.trim().to_string()),
        approved_on: fm
            .approved_on
            .map(|d| at.date("approved_on", &d))
            .transpose()?,
        effective_from: fm
            .effective_from
            .map(|d| at.date("effective_from", &d))
            .transpose()?,
        review_due: at.date("review_due", &fm.review_due)?,
        status,
        qi,
        front_sheet: FrontSheet {
            document_owner: trimmed(fm.document_owner),
            ratifying_committee: trimmed(fm.ratifying_committee),
            equality_impact: None,
            equality_impact_on: None,
            consultation: trimmed(fm.consultation),
            distribution: trimmed(fm.distribution),
            version_notes: trimmed(fm.version_notes),
        },
    };
    let mut content = content;
    if let Some(eia) = trimmed(fm.equality_impact) {
        let (what, date) = eia.split_once(char::is_whitespace).unwrap_or((&eia, ""));
        content.front_sheet.equality_impact = Some(at.parse("equality_impact", what)?);
        if !date.trim().is_empty() {
            content.front_sheet.equality_impact_on = Some(at.date("equality_impact", date)?);
        }
    }
    content.validate().map_err(|e| at.err(e.field, e.reason))?;
    Ok(content)
}

/// An optional text, trimmed; empty reads as absent.
fn trimmed(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The front matter as [`source`] writes it: keys in the order of the file
/// format, optional keys left out when empty.
#[derive(serde::Serialize)]
struct SourceFrontMatter<'a> {
    title: &'a str,
    kind: &'static str,
    summary: &'a str,
    pathways: Vec<&'static str>,
    settings: Vec<&'static str>,
    nation: OneOrList,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_from: Option<String>,
    review_due: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aim: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    measures: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pdsa_cycles: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcomes: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_owner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratifying_committee: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    equality_impact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consultation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distribution: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_notes: Option<&'a str>,
}

/// `nation` as written: one slug, `uk`, or a list.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum OneOrList {
    One(&'static str),
    Many(Vec<&'static str>),
}

/// An item's content as a file [`parse`] reads back to the same content:
/// the front matter (YAML, every value quoted where YAML needs it), then
/// the body. What `show --source` prints and `edit` opens.
pub fn source(content: &ItemContent) -> String {
    let fm = SourceFrontMatter {
        title: &content.title,
        kind: content.kind.slug(),
        summary: &content.summary,
        pathways: content.pathways.iter().map(|p| p.slug()).collect(),
        settings: content.settings.iter().map(|s| s.slug()).collect(),
        nation: match Nation::set_slugs(&content.nations).as_slice() {
            [one] => OneOrList::One(one),
            many => OneOrList::Many(many.to_vec()),
        },
        tags: &content.tags,
        approved_by: content.approved_by.as_deref(),
        approved_on: content.approved_on.map(|d| d.to_string()),
        effective_from: content.effective_from.map(|d| d.to_string()),
        review_due: content.review_due.to_string(),
        status: content.status.slug(),
        aim: content.qi.as_ref().map(|q| q.aim.as_str()),
        measures: content.qi.as_ref().map(|q| q.measures.as_slice()),
        pdsa_cycles: content.qi.as_ref().map(|q| q.pdsa_cycles.as_slice()),
        outcomes: content.qi.as_ref().map(|q| q.outcomes.as_str()),
        document_owner: content.front_sheet.document_owner.as_deref(),
        ratifying_committee: content.front_sheet.ratifying_committee.as_deref(),
        equality_impact: content.front_sheet.equality_impact.map(|e| {
            match content.front_sheet.equality_impact_on {
                Some(d) => format!("{} {d}", e.slug()),
                None => e.slug().to_string(),
            }
        }),
        consultation: content.front_sheet.consultation.as_deref(),
        distribution: content.front_sheet.distribution.as_deref(),
        version_notes: content.front_sheet.version_notes.as_deref(),
    };
    // Serialising plain strings, lists and slugs cannot fail.
    let yaml = serde_yaml_ng::to_string(&fm).unwrap_or_default();
    let mut out = format!("---\n{yaml}---\n");
    if !content.body.is_empty() {
        out.push('\n');
        out.push_str(&content.body);
        if !content.body.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_items_source_reads_back_as_the_same_item() {
        let ests =
            crate::sample::read_sample_dir(&crate::sample::default_sample_dir()).expect("samples");
        let mut n = 0;
        for (path, content) in ests.iter().flat_map(|e| &e.items) {
            let text = source(content);
            assert_eq!(
                parse(&text, &[]).as_ref(),
                Ok(content),
                "{}:\n{text}",
                path.display()
            );
            n += 1;
        }
        assert!(n >= 30, "only {n} sample items");
    }

    #[test]
    fn the_source_of_an_item_reads_back_as_the_same_item() {
        let mut c = parse(GOOD, &[]).expect("parses");
        assert_eq!(parse(&source(&c), &[]), Ok(c.clone()));
        // Values YAML would misread unquoted.
        c.title = "Naloxone: \"take-home\" kits # not a comment".into();
        c.summary = "yes".into();
        c.approved_by = Some("- D&T committee, 'pharmacy'".into());
        c.tags = vec!["null".into(), "2026".into(), "[x]".into()];
        c.body = "No body line 1\n---\nafter a rule".into();
        let text = source(&c);
        let back = parse(&text, &[]).expect("reads back");
        c.body.push('\n');
        assert_eq!(back, c, "{text}");
    }

    const GOOD: &str = "---\ntitle: Take-home naloxone\nkind: procedure\nsummary: Naloxone for everyone at risk on release.\npathways: [substance-misuse, release-continuity]\nsettings: [local-remand]\nnation: england\ntags: [Naloxone, release]\napproved_by: Drugs and Therapeutics Committee\napproved_on: 2026-01-10\neffective_from: 2026-02-01\nreview_due: 2027-02-01\n---\n\n# Purpose\n\nReduce deaths after release.\n";

    #[test]
    fn reads_a_good_file() {
        let c = parse(GOOD, &[]).expect("parses");
        assert_eq!(c.title, "Take-home naloxone");
        assert_eq!(c.kind, Kind::Procedure);
        assert_eq!(c.tags, vec!["naloxone", "release"]);
        assert!(c.body.starts_with("# Purpose"));
        assert_eq!(c.status, Status::Published);
        assert_eq!(c.nations, vec![Nation::England]);
    }

    #[test]
    fn the_front_sheet_and_submitted_status_read_and_write_back() {
        let text = GOOD.replace(
            "review_due: 2027-02-01\n",
            "review_due: 2027-02-01\nstatus: submitted\ndocument_owner: Head of Healthcare\nratifying_committee: Medicines Management Committee\nequality_impact: done 2026-01-05\nconsultation: Pharmacy, substance misuse team\ndistribution: All clinical staff\nversion_notes: Adds the release checklist.\n",
        );
        let c = parse(&text, &[]).expect("parses");
        assert_eq!(c.status, Status::Submitted);
        let fs = &c.front_sheet;
        assert_eq!(fs.document_owner.as_deref(), Some("Head of Healthcare"));
        assert_eq!(
            fs.equality_impact,
            Some(gatehouse_protocol::item::EqualityImpact::Done)
        );
        assert_eq!(fs.equality_impact_on, Some(Date::constant(2026, 1, 5)));
        assert_eq!(fs.distribution.as_deref(), Some("All clinical staff"));
        assert_eq!(parse(&source(&c), &[]), Ok(c.clone()));
        // Done needs its date; a date needs done or not-needed.
        let undated = text.replace("done 2026-01-05", "done");
        let err = parse(&undated, &[]).expect_err("no date");
        assert!(err.to_string().contains("equality_impact"), "{err}");
        let unknown = text.replace("done 2026-01-05", "maybe");
        assert!(parse(&unknown, &[]).is_err());
        let not_needed = text.replace("done 2026-01-05", "not-needed");
        assert_eq!(
            parse(&not_needed, &[])
                .expect("parses")
                .front_sheet
                .equality_impact,
            Some(gatehouse_protocol::item::EqualityImpact::NotNeeded)
        );
    }

    #[test]
    fn nation_is_one_a_list_or_uk_and_source_writes_it_back() {
        for (written, nations, back) in [
            (
                "nation: [wales, england]",
                vec![Nation::England, Nation::Wales],
                "nation:\n- england\n- wales\n",
            ),
            ("nation: uk", Nation::ALL.to_vec(), "nation: uk\n"),
            (
                "nation: England, Scotland",
                vec![Nation::England, Nation::Scotland],
                "nation:\n- england\n- scotland\n",
            ),
            (
                "nations: [england, wales, scotland, northern-ireland]",
                Nation::ALL.to_vec(),
                "nation: uk\n",
            ),
        ] {
            let text = GOOD.replace("nation: england", written);
            let c = parse(&text, &[]).expect(written);
            assert_eq!(c.nations, nations, "{written}");
            let src = source(&c);
            assert!(src.contains(back), "{written}: {src}");
            assert_eq!(parse(&src, &[]).expect("source parses").nations, nations);
        }
        let err = parse(
            &GOOD.replace("nation: england", "nation: [england, gb]"),
            &[],
        )
        .expect_err("unknown nation");
        let text = err.to_string();
        assert!(
            text.contains("line 7") && text.contains("gb") && text.contains("uk"),
            "{text}"
        );
    }

    #[test]
    fn deeply_nested_front_matter_is_refused_at_once() {
        // Nesting as deep as the size limit allows, in flow and block style.
        let deep = MAX_DRAFT_BYTES / 2 - 1024;
        for nested in [
            format!("tags: {}{}", "[".repeat(deep), "]".repeat(deep)),
            format!("tags: {}", "{a: ".repeat(deep / 4)),
            format!(
                "tags:\n{}",
                (0..300)
                    .map(|d| format!("{}- \n", " ".repeat(d * 2)))
                    .collect::<String>()
            ),
        ] {
            // After an apostrophe in a word, which opens no quote.
            let text = GOOD
                .replace(
                    "tags: [Naloxone, release]",
                    &format!("approved_by: Don't know\n{nested}"),
                )
                .replace("approved_by: Drugs and Therapeutics Committee\n", "");
            match parse(&text, &[]) {
                Err(DraftError::Yaml { message, .. }) => {
                    assert!(message.contains("nests deeper"), "{message}");
                }
                other => panic!("expected a front matter error, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_key_names_the_line() {
        let text = GOOD.replace("nation: england\n", "nation: england\nowner_phone: x\n");
        let err = parse(&text, &[]).expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("owner_phone"), "{msg}");
        assert!(matches!(err, DraftError::Yaml { .. }), "{err:?}");
    }

    #[test]
    fn bad_vocabulary_names_the_field_and_line() {
        let text = GOOD.replace("settings: [local-remand]", "settings: [prison-cat-z]");
        match parse(&text, &[]) {
            Err(DraftError::Field {
                field,
                line,
                message,
            }) => {
                assert_eq!(field, "settings");
                assert_eq!(line, 6);
                assert!(message.contains("prison-cat-a"), "{message}");
            }
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn bad_date_and_missing_block() {
        let text = GOOD.replace("review_due: 2027-02-01", "review_due: next spring");
        assert!(
            matches!(parse(&text, &[]), Err(DraftError::Field { field, .. }) if field == "review_due")
        );
        assert_eq!(
            parse("# Just markdown\n", &[]),
            Err(DraftError::NoFrontMatter)
        );
        assert!(matches!(
            parse("---\ntitle: x\n", &[]),
            Err(DraftError::Unterminated(_))
        ));
    }

    #[test]
    fn identifiers_are_refused_with_position_unless_allowed() {
        let text = GOOD.replace("Reduce deaths", "Prisoner A9999ZZ: reduce deaths");
        match parse(&text, &[]) {
            Err(DraftError::Identifier {
                kind, line, column, ..
            }) => {
                assert_eq!(kind, IdentifierKind::PrisonNumber);
                assert_eq!((line, column), (17, 10));
            }
            other => panic!("expected an identifier error, got {other:?}"),
        }
        assert!(parse(&text, &["A9999ZZ".to_string()]).is_ok());
    }

    #[test]
    fn qi_keys_only_on_qi_items() {
        let text = GOOD.replace(
            "nation: england\n",
            "nation: england\naim: fewer missed doses\n",
        );
        assert!(
            matches!(parse(&text, &[]), Err(DraftError::Field { field, .. }) if field == "aim")
        );
        let qi = GOOD.replace("kind: procedure", "kind: qi-initiative");
        assert!(matches!(parse(&qi, &[]), Err(DraftError::Field { field, .. }) if field == "aim"));
    }
}
