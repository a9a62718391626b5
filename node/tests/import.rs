//! Word import and text extraction, on files made by other tools
//! (`fixtures/make_fixtures.py`: python-docx from Word's own template, and
//! fpdf2), so they are shaped as site leads' files are.

use gatehouse_node::docx;
use gatehouse_node::extract::{self, find_identifier};
use gatehouse_node::projection::markdown::render;
use gatehouse_protocol::attachment::MediaType;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

#[test]
fn a_word_policy_becomes_markdown_with_its_headings_lists_table_emphasis_and_link() {
    let c = docx::convert(&fixture("policy.docx")).expect("ok");
    assert_eq!(
        c.markdown,
        "\
# In-possession medication policy

This policy sets out how **in-possession** medication is assessed and *reviewed*.

# Scope

All patients in the establishment who are prescribed medication.

# Assessment

1. Complete the risk assessment on reception
2. Record the outcome
    - In the clinical record
    - On the medication card
3. Review at every transfer

## Risk levels

| Level | Meaning | Supply |
| --- | --- | --- |
| Low | Can hold a month | 28 days |
| High | Supervised only | Daily |

See the [NICE guideline NG57](<https://www.nice.org.uk/guidance/ng57>) for background.

- Points to remember:
"
    );
    assert_eq!(c.title.as_deref(), Some("In-possession medication policy"));
    // What the page shows: the list nested, the table a table.
    let html = render(&c.markdown, 1);
    assert!(html.contains("<ol>"), "{html}");
    assert!(html.contains("<li>Record the outcome\n<ul>"), "{html}");
    assert!(html.contains("<th>Meaning</th>"), "{html}");
    assert!(
        html.contains("href=\"https://www.nice.org.uk/guidance/ng57\""),
        "{html}"
    );
}

#[test]
fn nested_levels_merged_cells_and_markdown_characters_in_text_survive() {
    let c = docx::convert(&fixture("nested.docx")).expect("ok");
    assert_eq!(
        c.markdown,
        "\
# Observations

- Pulse
    - Rate
    - Rhythm
        - Irregular: escalate
- Breathing

| Early warning score |  | Action |
| --- | --- | --- |
| 5 or more | Urgent | Call the doctor \\| now |

Escalate to the \\*duty\\* doctor.
"
    );
    let html = render(&c.markdown, 1);
    assert!(html.contains("Escalate to the *duty* doctor."), "{html}");
    assert!(html.contains("Call the doctor | now"), "{html}");
    // The cell's own text is what the scan reads.
    assert!(
        c.parts
            .iter()
            .any(|p| p.location == "table 1, row 2, column 3" && p.text == "Call the doctor | now")
    );
}

#[test]
fn an_nhs_number_in_a_table_cell_is_found_at_that_cell() {
    let c = docx::convert(&fixture("identifier-in-table.docx")).expect("ok");
    let (at, m) = find_identifier(&c.parts, &[]).expect("found");
    assert_eq!(at, "table 1, row 3, column 2");
    assert_eq!(m.text, "943 476 5919");
    // Allowed by its author, it is not found.
    assert!(find_identifier(&c.parts, &["943 476 5919".into()]).is_none());
}

#[test]
fn pdf_text_is_read_page_by_page() {
    let parts = extract::extract(MediaType::Pdf, &fixture("flowchart.pdf")).expect("ok");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].location, "page 1");
    assert!(parts[0].text.contains("Give naloxone 400 micrograms"));
    assert!(parts[1].text.contains("Stay with the patient"));
    assert!(find_identifier(&parts, &[]).is_none());
    let parts = extract::extract(MediaType::Pdf, &fixture("identifier.pdf")).expect("ok");
    let (at, m) = find_identifier(&parts, &[]).expect("found");
    assert_eq!((at, m.text.as_str()), ("page 2", "943 476 5919"));
}

#[test]
fn damaged_files_are_refused_with_a_reason_not_a_crash() {
    let mut pdf = fixture("flowchart.pdf");
    pdf.truncate(pdf.len() / 2);
    assert!(extract::extract(MediaType::Pdf, &pdf).is_err());
    let mut word = fixture("policy.docx");
    word.truncate(word.len() / 3);
    let e = docx::convert(&word).expect_err("refused").to_string();
    assert!(e.contains("not a Word document"), "{e}");
    let e = extract::check_type(MediaType::Docx, &fixture("flowchart.pdf")).expect_err("refused");
    assert!(e.contains("not a Word document"), "{e}");
    let e = extract::check_type(MediaType::Xlsx, &fixture("policy.docx")).expect_err("refused");
    assert!(e.contains("no xl/workbook.xml"), "{e}");
}
