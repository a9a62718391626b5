//! Rendering Markdown for a terminal: headings, lists, quotes, tables and
//! code laid out as plain text, so `gatehouse show` reads well in any
//! terminal and pipes cleanly into a pager or a file.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Plain-text rendering of a Markdown body.
pub fn markdown_to_text(md: &str) -> String {
    let mut out = String::new();
    let mut list_stack: Vec<Option<u64>> = Vec::new();
    let mut heading: Option<HeadingLevel> = None;
    let mut heading_text = String::new();
    let mut in_code = false;
    let mut quote_depth = 0usize;
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut in_cell = false;
    let mut link_target: Vec<String> = Vec::new();
    let push_text = |out: &mut String, text: &str, quote_depth: usize| {
        if quote_depth > 0 && (out.is_empty() || out.ends_with('\n')) {
            out.push_str(&"> ".repeat(quote_depth));
        }
        out.push_str(text);
    };
    for event in Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some(level);
                heading_text.clear();
            }
            Event::End(TagEnd::Heading(_)) => {
                let underline = match heading.take() {
                    Some(HeadingLevel::H1) => '=',
                    Some(HeadingLevel::H2) => '-',
                    _ => ' ',
                };
                out.push_str(&heading_text);
                out.push('\n');
                if underline != ' ' {
                    out.push_str(&underline.to_string().repeat(heading_text.chars().count()));
                    out.push('\n');
                }
                out.push('\n');
            }
            Event::Start(Tag::List(start)) => list_stack.push(start),
            Event::End(TagEnd::List(_)) => {
                list_stack.pop();
                if list_stack.is_empty() {
                    out.push('\n');
                }
            }
            Event::Start(Tag::Item) => {
                let indent = "  ".repeat(list_stack.len().saturating_sub(1));
                let marker = match list_stack.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "• ".to_string(),
                };
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&indent);
                out.push_str(&marker);
            }
            Event::End(TagEnd::Item) if !out.ends_with('\n') => out.push('\n'),
            Event::End(TagEnd::Paragraph) => {
                if list_stack.is_empty() {
                    out.push_str("\n\n");
                } else {
                    out.push('\n');
                }
            }
            Event::Start(Tag::BlockQuote(_)) => quote_depth += 1,
            Event::End(TagEnd::BlockQuote(_)) => quote_depth = quote_depth.saturating_sub(1),
            Event::Start(Tag::CodeBlock(_)) => in_code = true,
            Event::End(TagEnd::CodeBlock) => {
                in_code = false;
                out.push('\n');
            }
            Event::Start(Tag::TableRow | Tag::TableHead) => row.clear(),
            Event::Start(Tag::TableCell) => {
                in_cell = true;
                cell.clear();
            }
            Event::End(TagEnd::TableCell) => {
                in_cell = false;
                row.push(cell.trim().to_string());
            }
            Event::End(TagEnd::TableHead) => {
                out.push_str(&format!("| {} |\n", row.join(" | ")));
                let rule: Vec<String> = row
                    .iter()
                    .map(|c| "-".repeat(c.chars().count().max(3)))
                    .collect();
                out.push_str(&format!("| {} |\n", rule.join(" | ")));
            }
            Event::End(TagEnd::TableRow) => out.push_str(&format!("| {} |\n", row.join(" | "))),
            Event::End(TagEnd::Table) => out.push('\n'),
            Event::Start(Tag::Link { dest_url, .. }) => link_target.push(dest_url.to_string()),
            Event::End(TagEnd::Link) => {
                if let Some(url) = link_target.pop() {
                    let s = format!(" <{url}>");
                    if in_cell {
                        cell.push_str(&s)
                    } else {
                        out.push_str(&s)
                    }
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if heading.is_some() {
                    heading_text.push_str(&t);
                } else if in_cell {
                    cell.push_str(&t);
                } else if in_code {
                    for line in t.lines() {
                        out.push_str("    ");
                        out.push_str(line);
                        out.push('\n');
                    }
                } else {
                    push_text(&mut out, &t, quote_depth);
                }
            }
            Event::SoftBreak => {
                if in_cell {
                    cell.push(' ')
                } else {
                    out.push(' ')
                }
            }
            Event::HardBreak => out.push('\n'),
            Event::Rule => out.push_str("――――――――――\n\n"),
            _ => {}
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_lists_and_tables() {
        let text = markdown_to_text(
            "# Purpose\n\nSome *text*.\n\n- one\n- two\n\n1. first\n2. second\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(text.contains("Purpose\n======="), "{text}");
        assert!(text.contains("• one\n• two"), "{text}");
        assert!(text.contains("1. first\n2. second"), "{text}");
        assert!(text.contains("| a | b |"), "{text}");
        assert!(text.contains("| 1 | 2 |"), "{text}");
        assert!(!text.contains('*'), "{text}");
    }
}
