//! Markdown from any site: turned into HTML that is safe to show, or into
//! plain text for the search index.
//!
//! Item bodies are written at other establishments, so they are untrusted:
//! after Markdown rendering, the HTML is cleaned with ammonia to an allow
//! list of tags and attributes. Nothing can run (no script, no event
//! handler attributes, no `javascript:` or other non-web links) and nothing
//! is fetched from elsewhere: images are replaced by their description, so a
//! page never calls out to a remote server.

use std::collections::HashSet;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Link schemes kept in rendered bodies.
const LINK_SCHEMES: [&str; 3] = ["http", "https", "mailto"];
/// The tags a body may keep besides headings: what Markdown produces, and
/// no landmarks, so raw HTML in a body cannot pose as the page's
/// navigation or asides.
const ALLOWED_TAGS: [&str; 20] = [
    "p",
    "br",
    "hr",
    "em",
    "strong",
    "del",
    "s",
    "a",
    "ul",
    "ol",
    "li",
    "blockquote",
    "code",
    "pre",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
];
/// Block quotes and lists nested deeper than this are shown at this depth:
/// turning deeper nesting into HTML and cleaning it costs time that grows
/// with the square of the depth (in a debug build, 2,000 nested `>` took
/// 43 ms, 4,000 took 131 ms and 8,000 took 483 ms; 8,000 nested raw
/// `<div>` took 254 ms and 40,000 took 6.3 s), and no document needs it.
pub const MAX_NESTING: usize = 16;
/// Heading tags, highest first.
const HEADINGS: [&str; 6] = ["h1", "h2", "h3", "h4", "h5", "h6"];

fn options() -> Options {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TASKLISTS);
    options
}

fn demote(level: HeadingLevel, by: usize) -> HeadingLevel {
    use HeadingLevel::{H1, H2, H3, H4, H5, H6};
    let levels = [H1, H2, H3, H4, H5, H6];
    let at = levels.iter().position(|l| *l == level).unwrap_or(0);
    levels[(at + by).min(levels.len() - 1)]
}

/// Elements with no content, which open nothing.
const VOID_ELEMENTS: [&str; 13] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

/// The depth of open raw HTML elements after `fragment`, starting at
/// `depth`, or `None` if somewhere in it the depth passes [`MAX_NESTING`].
/// Tags are counted, not parsed: an opening tag (not void, not `/>`) goes
/// one deeper, a closing tag one shallower.
fn html_depth_after(fragment: &str, mut depth: usize) -> Option<usize> {
    let mut rest = fragment;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let closing = rest.starts_with('/');
        let after = rest.trim_start_matches('/');
        let name = &after[..after.bytes().take_while(u8::is_ascii_alphanumeric).count()];
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let self_closing = rest[..tag_end].ends_with('/');
        if closing {
            depth = depth.saturating_sub(1);
        } else if !self_closing && !VOID_ELEMENTS.iter().any(|v| v.eq_ignore_ascii_case(name)) {
            depth += 1;
            if depth > MAX_NESTING {
                return None;
            }
        }
    }
    Some(depth)
}

/// Renders untrusted Markdown to sanitised HTML, its headings moved down
/// `heading_offset` levels so they sit under the page's own headings.
pub fn render(markdown: &str, heading_offset: usize) -> String {
    let mut depth = 0usize;
    let mut html_depth = 0usize;
    let flattened = Parser::new_ext(markdown, options()).filter(move |event| match event {
        Event::Start(Tag::BlockQuote(_) | Tag::List(_) | Tag::Item) => {
            depth += 1;
            depth <= MAX_NESTING
        }
        Event::End(TagEnd::BlockQuote(_) | TagEnd::List(_) | TagEnd::Item) => {
            depth = depth.saturating_sub(1);
            depth < MAX_NESTING
        }
        // Raw HTML nests too (its cleaning is quadratic in depth as well):
        // a fragment that would open tags past the cap is left out.
        Event::Html(fragment) | Event::InlineHtml(fragment) => {
            match html_depth_after(fragment, html_depth) {
                Some(after) => {
                    html_depth = after;
                    true
                }
                None => false,
            }
        }
        _ => true,
    });
    let events = flattened.map(|event| match event {
        Event::Start(Tag::Image { .. }) => Event::Text("[image: ".into()),
        Event::End(TagEnd::Image) => Event::Text("]".into()),
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: demote(level, heading_offset),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => {
            Event::End(TagEnd::Heading(demote(level, heading_offset)))
        }
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    // Headings above the offset are dropped even when written as raw HTML.
    let mut tags: HashSet<&str> = HashSet::from(ALLOWED_TAGS);
    tags.extend(HEADINGS.iter().skip(heading_offset.min(HEADINGS.len() - 1)));
    ammonia::Builder::default()
        .tags(tags)
        .url_schemes(HashSet::from(LINK_SCHEMES))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

/// The words of a Markdown text without its markup (for the search index
/// and its snippets): blocks end in a newline, inline markup disappears.
pub fn plain_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::TableRow
                | TagEnd::TableHead
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_),
            ) => out.push('\n'),
            Event::End(TagEnd::TableCell) => out.push_str(" · "),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MAX_NESTING, render};

    #[test]
    fn nothing_active_survives() {
        let html = render(
            concat!(
                "# Title\n\n",
                "<script>alert(1)</script>\n\n",
                "<p onclick=\"alert(2)\">para</p>\n\n",
                "[click](javascript:alert(3)) and [ok](https://example.org/a)\n\n",
                "![a chart](https://tracker.example/pixel.png)\n\n",
                "<img src=x onerror=alert(4)>\n\n",
                "<iframe src=\"https://example.org\"></iframe>\n\n",
                "<h1>Fake page heading</h1><nav>fake menu</nav><aside>x</aside><style>p{}</style>\n",
            ),
            2,
        );
        for banned in [
            "<script",
            "onclick",
            "javascript:",
            "<img",
            "onerror",
            "<iframe",
            "pixel.png",
            "<h1",
            "<h2",
            "<nav",
            "<aside",
            "<style",
        ] {
            assert!(!html.contains(banned), "{banned} survived in {html}");
        }
        assert!(html.contains("<h3>Title</h3>"));
        assert!(
            html.contains("Fake page heading"),
            "the words of a raw heading stay"
        );
        assert!(html.contains("[image: a chart]"));
        assert!(html.contains(r#"href="https://example.org/a""#));
        assert!(html.contains("noopener"));
    }

    #[test]
    fn headings_sit_under_the_page_headings() {
        assert!(
            render("# A\n\n## B\n\n###### C\n", 2).contains("<h3>A</h3>\n<h4>B</h4>\n<h6>C</h6>")
        );
    }

    #[test]
    fn plain_text_drops_markup() {
        assert_eq!(
            super::plain_text(
                "# Title\n\nSome **bold** and [a link](https://x.org).\n\n- one\n- two\n"
            ),
            "Title\nSome bold and a link.\none\ntwo\n"
        );
    }

    #[test]
    fn tables_and_lists_render() {
        let html = render("| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n", 0);
        assert!(html.contains("<table>") && html.contains("<li>one</li>"));
    }

    #[test]
    fn nesting_is_capped_so_a_deep_body_renders_at_once() {
        let body = format!("{} deep", ">".repeat(250_000));
        let html = render(&body, 1);
        assert_eq!(
            html.matches("<blockquote>").count(),
            MAX_NESTING,
            "{}",
            &html[..200]
        );
        assert_eq!(html.matches("</blockquote>").count(), MAX_NESTING);
        assert!(html.contains("deep"));
        let lists: String = (0..200)
            .map(|i| format!("{}- item {i}\n", "  ".repeat(i)))
            .collect();
        let html = render(&lists, 1);
        assert!(html.matches("<ul>").count() <= MAX_NESTING, "{html}");
        assert!(html.contains("item 199"), "every item's text is kept");
        // Shallow nesting is untouched.
        assert_eq!(render("> > quoted", 1).matches("<blockquote>").count(), 2);
        // Raw HTML nested as deep as a body may hold.
        let n = 20_000;
        let html = render(
            &format!("{}deep{}", "<div>".repeat(n), "</div>".repeat(n)),
            1,
        );
        assert!(html.matches("<div>").count() <= MAX_NESTING, "{html:.200}");
        let html = render(&format!("a {} b", "<em>".repeat(n)), 1);
        // The cleaner reopens a few formatting elements a paragraph left open.
        assert!(
            html.matches("<em>").count() <= 2 * MAX_NESTING,
            "{html:.200}"
        );
        // Shallow raw HTML is kept.
        assert!(render("a <em>b</em> <br> c", 1).contains("<em>b</em>"));
    }
}
