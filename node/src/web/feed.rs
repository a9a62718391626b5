//! Atom feeds, one per care pathway, of new and updated library items and
//! new questions and discussions: for sites that follow the network in a
//! feed reader. `/feeds` lists them.
//!
//! A feed names its entries by stable URNs (`urn:gatehouse:item:ID`,
//! `urn:gatehouse:thread:ID`), so a reader sees an updated item as the
//! same entry updated. Links are relative to the address the feed was
//! fetched from (`xml:base`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_protocol::vocab::Pathway;
use maud::{Markup, PreEscaped, html};

use super::pages::{Section, error_page, layout};
use super::{WebError, WebState};
use crate::projection::search::{SearchRequest, Sort};
use crate::query::filter::Filter;
use crate::query::forum::{ThreadList, ThreadQuery};
use crate::query::{ReadView, format_ms};

/// Entries in one feed at most.
pub const FEED_LEN: usize = 50;

/// The feed routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/feeds", get(index))
        .route("/feeds/{file}", get(feed))
}

async fn index(State(state): State<WebState>) -> Response {
    super::pages::render(&state, |_, site| {
        let content = html! {
            h1 { "Feeds" }
            p.lead { "Follow new and updated documents, questions and discussions in a care pathway with a feed reader (Atom)." }
            ul.list {
                @for p in Pathway::ALL {
                    li { a href={ "/feeds/" (p.slug()) ".atom" } { (p.label()) } }
                }
            }
        };
        Ok(layout(site, Section::None, "Feeds", content))
    })
    .await
}

/// One entry of a feed.
struct Entry {
    id: String,
    title: String,
    link: String,
    updated_ms: u64,
    author: String,
    summary: String,
}

fn entries(lib: &ReadView, pathway: Pathway, now_ms: u64) -> Result<Vec<Entry>, WebError> {
    let filter = Filter {
        pathway: Some(pathway),
        ..Filter::default()
    };
    let items = lib.find(&SearchRequest {
        query: "",
        filter: &filter,
        sort: Sort::Updated,
        offset: 0,
        limit: FEED_LEN,
        facets: false,
    })?;
    let mut out: Vec<Entry> = items
        .results
        .results
        .iter()
        .map(|r| {
            let v = &r.view;
            let c = &v.item.content;
            Entry {
                id: format!("urn:gatehouse:item:{}", v.item.id.to_hex()),
                title: format!(
                    "{}: {} (version {})",
                    c.kind.label(),
                    c.title,
                    v.item.version
                ),
                link: format!("/items/{}", v.item.id.to_hex()),
                updated_ms: v.updated_ms,
                author: v
                    .establishment
                    .name
                    .clone()
                    .unwrap_or_else(|| "unknown establishment".into()),
                summary: c.summary.clone(),
            }
        })
        .collect();
    let threads = lib.threads(
        &ThreadQuery {
            list: ThreadList::All,
            pathways: vec![pathway],
            limit: FEED_LEN,
            ..ThreadQuery::default()
        },
        now_ms,
    );
    out.extend(
        threads
            .into_iter()
            .filter(|t| !t.hidden && !t.retracted)
            .map(|t| Entry {
                id: format!("urn:gatehouse:thread:{}", t.id.to_hex()),
                title: format!(
                    "{}: {}",
                    if t.kind == "question" {
                        "Question"
                    } else {
                        "Discussion"
                    },
                    t.title
                ),
                link: format!("/threads/{}", t.id.to_hex()),
                updated_ms: t.created_ms,
                author: t.author.label(),
                summary: format!(
                    "{} {}",
                    t.replies,
                    if t.replies == 1 { "reply" } else { "replies" }
                ),
            }),
    );
    out.sort_by(|a, b| {
        b.updated_ms
            .cmp(&a.updated_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    out.truncate(FEED_LEN);
    Ok(out)
}

fn atom(base: &str, pathway: Pathway, network: &str, entries: &[Entry], now_ms: u64) -> Markup {
    let updated = entries.first().map_or(now_ms, |e| e.updated_ms);
    html! {
        (PreEscaped("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"))
        feed xmlns="http://www.w3.org/2005/Atom" xml:base=(base) {
            id { "urn:gatehouse:feed:" (pathway.slug()) }
            title { (network) ": " (pathway.label()) }
            updated { (format_ms(updated)) }
            link rel="self" href={ "/feeds/" (pathway.slug()) ".atom" } {}
            link rel="alternate" type="text/html" href={ "/search?pathway=" (pathway.slug()) "&sort=updated" } {}
            generator { "Gatehouse" }
            @for e in entries {
                entry {
                    id { (e.id) }
                    title { (e.title) }
                    link rel="alternate" type="text/html" href=(e.link) {}
                    updated { (format_ms(e.updated_ms)) }
                    author { name { (e.author) } }
                    summary { (e.summary) }
                }
            }
        }
    }
}

async fn feed(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    let Some(pathway) = file
        .strip_suffix(".atom")
        .and_then(|slug| slug.parse::<Pathway>().ok())
    else {
        return error_page(
            None,
            &WebError::NotFound(format!(
                "there is no feed {file:?}; /feeds lists one per care pathway"
            )),
        );
    };
    // Links resolve against the address the reader used (a loopback-only
    // node has checked it is a loopback name).
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost")
        .to_string();
    let base = format!("http://{host}/");
    let now = super::forum::now_ms();
    let made = state
        .read(move |lib| {
            let network = super::pages::site(lib).network;
            let entries = entries(lib, pathway, now)?;
            Ok(atom(&base, pathway, &network, &entries, now).into_string())
        })
        .await;
    match made {
        Ok(xml) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
            xml,
        )
            .into_response(),
        Err(e) => error_page(None, &e),
    }
}
