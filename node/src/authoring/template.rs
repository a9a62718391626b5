//! Templates for `gatehouse new`: a new item's file, with every front
//! matter field in place, the choices for each named beside it, and the
//! headings a document of its kind usually has.
//!
//! A template does not pass the checks until the author has filled in a
//! title, a summary and at least one care pathway: nothing placeholder can
//! be published by mistake.

use gatehouse_protocol::jiff::ToSpan;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting};

/// The network's default review cycle: three years from today.
pub const DEFAULT_REVIEW_YEARS: i16 = 3;

/// The headings a document of `kind` usually has.
fn sections(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Policy => &[
            "Purpose",
            "Scope",
            "Policy statement",
            "Roles and responsibilities",
            "Monitoring and audit",
            "References",
        ],
        Kind::Procedure => &[
            "Purpose",
            "Who this applies to",
            "Procedure",
            "Record keeping",
            "Escalation",
            "References",
        ],
        Kind::Guideline => &[
            "Purpose",
            "Assessment",
            "Management",
            "When to seek advice",
            "References",
        ],
        Kind::QiInitiative => &[
            "Background",
            "What we changed",
            "What we found",
            "What we will do next",
        ],
        Kind::Pathway => &[
            "Who the pathway is for",
            "Referral",
            "Steps of the pathway",
            "Leaving custody",
            "References",
        ],
        Kind::Other => &["Purpose", "Content"],
    }
}

/// The file `gatehouse new KIND` writes for an establishment of `setting`
/// in `nation`, on `today`.
pub fn template(kind: Kind, setting: Setting, nation: Nation, today: Date) -> String {
    let review = today
        .checked_add(DEFAULT_REVIEW_YEARS.years())
        .unwrap_or(today);
    let choices = |all: Vec<&str>| all.join(", ");
    let mut out = String::from("---\n");
    out.push_str("# Fill in the title, the summary and at least one care pathway; every\n");
    out.push_str("# line starting with # is a note for you and is not published.\n");
    out.push_str("# Check it with: gatehouse publish FILE --check\n");
    out.push_str("title: \"\"\n");
    out.push_str(&format!("kind: {}\n", kind.slug()));
    out.push_str("# One or two sentences: what this is and who it is for.\n");
    out.push_str("summary: \"\"\n");
    out.push_str(&format!(
        "# One or more of: {}\n",
        choices(Pathway::ALL.iter().map(|p| p.slug()).collect())
    ));
    out.push_str("pathways: []\n");
    out.push_str(&format!(
        "# The settings it applies to, from: {}\n",
        choices(Setting::ALL.iter().map(|s| s.slug()).collect())
    ));
    out.push_str(&format!("settings: [{}]\n", setting.slug()));
    out.push_str(&format!(
        "# Whose guidance it follows: one of {}, a list such as [england, wales], or uk for all four.\n",
        choices(Nation::ALL.iter().map(|n| n.slug()).collect())
    ));
    out.push_str(&format!("nation: {}\n", nation.slug()));
    out.push_str("tags: []\n");
    out.push_str("# The committee or person that approved it, and when (YYYY-MM-DD).\n");
    out.push_str("approved_by:\n");
    out.push_str("approved_on:\n");
    out.push_str("effective_from:\n");
    out.push_str(&format!(
        "# The network reviews every {DEFAULT_REVIEW_YEARS} years unless you choose sooner.\n"
    ));
    out.push_str(&format!("review_due: {review}\n"));
    if kind == Kind::QiInitiative {
        out.push_str("aim: \"\"\n");
        out.push_str("measures:\n  - \"Outcome: \"\n  - \"Process: \"\n  - \"Balancing: \"\n");
        out.push_str("pdsa_cycles:\n  - \"PDSA 1 - \"\n");
        out.push_str("outcomes: \"\"\n");
    }
    out.push_str("---\n\n");
    for heading in sections(kind) {
        out.push_str(&format!("## {heading}\n\n\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authoring::draft;

    fn filled(text: &str) -> String {
        text.replacen("title: \"\"", "title: Wound care", 1)
            .replacen("summary: \"\"", "summary: How wounds are dressed.", 1)
            .replacen("pathways: []", "pathways: [primary-care]", 1)
            .replacen("aim: \"\"", "aim: Fewer infections.", 1)
            .replacen("outcomes: \"\"", "outcomes: Not yet known.", 1)
    }

    #[test]
    fn every_kind_checks_once_filled_in_and_not_before() {
        let today = Date::constant(2026, 12, 1);
        for kind in Kind::ALL {
            let text = template(*kind, Setting::LocalRemand, Nation::Wales, today);
            assert!(
                draft::parse(&text, &[]).is_err(),
                "{kind:?}: an unfilled template is refused"
            );
            let content = draft::parse(&filled(&text), &[])
                .unwrap_or_else(|e| panic!("{kind:?}: {e}\n{text}"));
            assert_eq!(content.kind, *kind);
            assert_eq!(content.nations, vec![Nation::Wales]);
            assert_eq!(content.review_due, Date::constant(2029, 12, 1));
        }
    }
}
