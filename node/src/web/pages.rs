//! The web page: server-rendered HTML (maud), no JavaScript.
//!
//! Every page shares one layout: a skip link, a header with the main
//! navigation, one `h1`, and headings in order below it. Facets, sorting and
//! paging are plain links and GET forms, so the page works by keyboard, on
//! old browsers and with scripts blocked.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use gatehouse_protocol::id::{EstablishmentId, ItemId};
use gatehouse_protocol::jiff::Zoned;
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting, Status};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::api::{Compared, diff_between, node_status, run_search};
use super::{LocalClient, PAGE_SIZE, SearchParams, WebError, WebState, item_id, version_number};
use crate::projection::markdown;
use crate::projection::search::{FACETS, FacetCount, Sort};
use crate::query::ReadView;
use crate::query::diff::{ItemDiff, LineChange, field_label, field_value, long_date};
use crate::query::{ItemView, SearchResult, VersionEntry, format_ms};

/// The stylesheet.
pub const STYLESHEET: &str = include_str!("style.css");
/// Items shown in each list on the home page.
pub const HOME_LIST_LEN: usize = 8;
/// How far ahead the home page looks for reviews due, in days.
pub const HOME_DUE_WITHIN_DAYS: i64 = 90;
/// Items listed under each establishment in the directory.
pub const DIRECTORY_ITEMS: usize = 5;

/// The page's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/items/{id}", get(item))
        .route("/items/{id}/diff", get(item_diff))
        .route("/establishments", get(establishments))
        .route("/network", get(network))
        .route("/static/style.css", get(stylesheet))
        .fallback(not_found)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// Which part of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Home,
    Search,
    Questions,
    Establishments,
    Network,
    None,
}

/// The network and establishment this node serves, for the header.
pub(super) struct Site {
    pub(super) network: String,
    establishment: String,
    /// The signed-in person's unread inbox entries.
    pub(super) inbox: Option<usize>,
}

/// The header for a page drawn without the library.
pub(super) fn fallback_site() -> Site {
    Site {
        network: "Gatehouse".into(),
        establishment: String::new(),
        inbox: None,
    }
}

pub(super) fn site(lib: &ReadView) -> Site {
    let est = lib.establishment();
    Site {
        network: lib
            .trust()
            .network_name
            .clone()
            .unwrap_or_else(|| "Gatehouse network".into()),
        establishment: lib
            .trust()
            .establishments
            .get(&est)
            .map_or_else(|| "this node (not yet admitted)".into(), |e| e.name.clone()),
        inbox: None,
    }
}

pub(super) fn layout(site: &Site, section: Section, title: &str, content: Markup) -> Markup {
    let nav = [
        (Section::Home, "/", "Home"),
        (Section::Search, "/search", "Search"),
        (Section::Questions, "/questions", "Questions"),
        (Section::Establishments, "/establishments", "Establishments"),
        (Section::Network, "/network", "Network"),
    ];
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Gatehouse" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                a.skip-link href="#main" { "Skip to main content" }
                header.header {
                    div.width.header-row {
                        a.brand href="/" { "Gatehouse" }
                        span.header-site { (site.network) " · " (site.establishment) }
                        @if let Some(n) = site.inbox {
                            a.header-inbox href="/inbox" {
                                "Inbox"
                                @if n > 0 { " " span.unread-count { (n) } span.visually-hidden { " unread" } }
                            }
                        }
                    }
                    nav.nav aria-label="Main" {
                        ul.width {
                            @for (s, href, label) in nav {
                                li {
                                    @if s == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main .width tabindex="-1" { (content) }
                footer.footer {
                    div.width {
                        p { "The library held by this node. Documents are published with the "
                            code { "gatehouse" } " command; questions and answers are signed by the staff who write them." }
                        p { a href="/feeds" { "Feeds" } " of each care pathway, for a feed reader." }
                    }
                }
            }
        }
    }
}

pub(super) fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// Renders an error as a page of its own.
pub(super) fn error_page(site: Option<&Site>, e: &WebError) -> Response {
    let title = match e {
        WebError::BadRequest(_) => "There is a problem with this request",
        WebError::NotFound(_) => "Page not found",
        WebError::Internal(_) => "Sorry, there is a problem with this node",
        WebError::Busy(_) => "This node is busy",
        WebError::SignIn(_) => "Sign in to see this",
    };
    let fallback = fallback_site();
    let content = html! {
        h1 { (title) }
        div.error-summary role="alert" { p { (e.to_string()) } }
        p { a href="/" { "Go to the home page" } " or " a href="/search" { "search the library" } "." }
    };
    page(
        e.status(),
        layout(site.unwrap_or(&fallback), Section::None, title, content),
    )
}

async fn not_found(State(state): State<WebState>) -> Response {
    let site = state.read(|lib| Ok(site(lib))).await.ok();
    error_page(
        site.as_ref(),
        &WebError::NotFound("There is no page at this address.".into()),
    )
}

/// Runs a page renderer on the library; errors become error pages.
pub(super) async fn render(
    state: &WebState,
    f: impl FnOnce(&ReadView, &Site) -> Result<Markup, WebError> + Send + 'static,
) -> Response {
    let me = super::auth::current();
    let accounts = state.accounts.clone();
    let result = state
        .read(move |lib| {
            let mut s = site(lib);
            if let (Some(me), Some(accounts)) = (&me, &accounts) {
                let st = accounts.inbox_state(&me.login);
                s.inbox = Some(
                    lib.inbox(&me.key.public(), &st.watching, st.read_up_to_ms, 0)
                        .unread,
                );
            }
            Ok(match f(lib, &s) {
                Ok(m) => Ok(m),
                Err(e) => Err((s, e)),
            })
        })
        .await;
    match result {
        Ok(Ok(markup)) => page(StatusCode::OK, markup),
        Ok(Err((s, e))) => error_page(Some(&s), &e),
        Err(e) => error_page(None, &e),
    }
}

fn establishment_name(lib: &ReadView, id: &EstablishmentId) -> String {
    lib.trust().establishments.get(id).map_or_else(
        || format!("establishment {}", id.short()),
        |e| e.name.clone(),
    )
}

/// The label of facet `dimension`'s `value`.
fn facet_label(lib: &ReadView, dimension: &str, value: &str) -> String {
    let label = match dimension {
        "kind" => Kind::from_str(value).ok().map(|v| v.label().to_string()),
        "pathway" => Pathway::from_str(value).ok().map(|v| v.label().to_string()),
        "setting" => Setting::from_str(value).ok().map(|v| v.label().to_string()),
        "nation" => Nation::from_str(value).ok().map(|v| v.label().to_string()),
        "status" => Status::from_str(value).ok().map(|v| v.label().to_string()),
        "owner" => EstablishmentId::from_str(value)
            .ok()
            .map(|id| establishment_name(lib, &id)),
        _ => None,
    };
    label.unwrap_or_else(|| value.to_string())
}

fn facet_title(dimension: &str) -> &'static str {
    match dimension {
        "kind" => "Kind",
        "pathway" => "Care pathway",
        "setting" => "Setting type",
        "nation" => "Nation",
        "owner" => "Establishment",
        "status" => "Status",
        _ => "Other",
    }
}

/// The day of an RFC 3339 time, as people write it ("1 December 2026").
fn date_of(rfc3339: &str) -> String {
    field_value(rfc3339.get(..10).unwrap_or(rfc3339))
}

pub(super) fn date_ms(ms: u64) -> String {
    date_of(&format_ms(ms))
}

/// One line of Markdown source as the page shows it (a heading as a
/// heading, a list item as a bullet, emphasis as emphasis), sanitised like
/// any body; a plain line is not wrapped in a paragraph.
fn line_html(text: &str) -> String {
    let html = markdown::render(text, 2);
    let trimmed = html.trim();
    match trimmed
        .strip_prefix("<p>")
        .and_then(|rest| rest.strip_suffix("</p>"))
    {
        Some(inner) if !inner.contains("<p>") => inner.to_string(),
        _ => trimmed.to_string(),
    }
}

fn badge(status: Status) -> Markup {
    html! { strong class={ "badge badge-" (status.slug()) } { (status.label()) } }
}

pub(super) fn item_link(id: &ItemId, title: &str) -> Markup {
    html! { a href={ "/items/" (id.to_hex()) } { (title) } }
}

/// A search result or listing entry.
fn result_card(v: &ItemView, snippet: Option<(&str, &[(usize, usize)])>) -> Markup {
    let c = &v.item.content;
    html! {
        li.result {
            h3.result-title { (item_link(&v.item.id, &c.title)) }
            p.result-meta {
                (badge(c.status)) " "
                span { (c.kind.label()) } " · "
                span { (v.establishment.name.as_deref().unwrap_or("unknown establishment")) } " · "
                span { "version " (v.item.version) } " · "
                span { "updated " (date_of(&v.updated)) }
            }
            @match snippet {
                Some((text, ranges)) if !text.is_empty() => p.snippet { (highlighted(text, ranges)) },
                _ => p.snippet { (c.summary) },
            }
        }
    }
}

/// `text` with the byte ranges `ranges` wrapped in `mark`.
fn highlighted(text: &str, ranges: &[(usize, usize)]) -> Markup {
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut at = 0;
    for &(start, end) in ranges {
        if start < at || end < start {
            continue;
        }
        if let (Some(before), Some(hit)) = (text.get(at..start), text.get(start..end)) {
            parts.push((false, before));
            parts.push((true, hit));
            at = end;
        }
    }
    parts.push((false, text.get(at..).unwrap_or("")));
    html! {
        @for (hit, part) in parts {
            @if hit { mark { (part) } } @else { (part) }
        }
    }
}

fn search_form(q: &str, hidden: &[(String, String)]) -> Markup {
    html! {
        form.search-form action="/search" method="get" role="search" {
            label.label for="q" { "Search the library" }
            div.hint #q-hint { "For example: naloxone, IPRA, self-harm observations" }
            div.search-row {
                input.input #q type="search" name="q" value=(q) aria-describedby="q-hint" autocomplete="off";
                @for (k, v) in hidden {
                    input type="hidden" name=(k) value=(v);
                }
                button.button type="submit" { "Search" }
            }
        }
    }
}

async fn home(State(state): State<WebState>) -> Response {
    render(&state, |lib, site_info| {
        let recent = lib.find(&crate::projection::search::SearchRequest {
            query: "",
            filter: &crate::query::filter::Filter::default(),
            sort: Sort::Updated,
            offset: 0,
            limit: HOME_LIST_LEN,
            facets: false,
        })?;
        let today = Zoned::now().date();
        let (due, due_total) = lib.due_soonest(today, HOME_DUE_WITHIN_DAYS, HOME_LIST_LEN)?;
        let source_changes = lib.source_changes()?;
        let content = html! {
            h1 { "Find policies, procedures and QI work from across the network" }
            p.lead { "Search the documents that establishments in " (site_info.network)
                " share: how other sites handle a clinical problem, and what they learned." }
            (search_form("", &[]))
            @if !source_changes.is_empty() {
                section.notice aria-labelledby="sources-heading" {
                    h2 #sources-heading.notice-title { "The source changed since " (site_info.establishment) " adopted it" }
                    ul.results {
                        @for a in &source_changes { (source_alert(a)) }
                    }
                }
            }
            div.columns {
                section.column aria-labelledby="recent-heading" {
                    h2 #recent-heading { "Recently published or updated" }
                    @if recent.results.results.is_empty() {
                        p { "Nothing has been published yet." }
                    } @else {
                        ul.results {
                            @for r in &recent.results.results { (result_card(&r.view, None)) }
                        }
                        p { a href="/search?sort=updated" { "Everything, most recently updated first" } }
                    }
                }
                section.column aria-labelledby="due-heading" {
                    h2 #due-heading { "Due for review at " (site_info.establishment) }
                    @if due.is_empty() {
                        p { "Nothing here is due for review in the next " (HOME_DUE_WITHIN_DAYS) " days." }
                    } @else {
                        ul.results {
                            @for d in &due {
                                li.result {
                                    h3.result-title { (item_link(&d.view.item.id, &d.view.item.content.title)) }
                                    p.result-meta {
                                        @if d.days_left < 0 {
                                            strong.badge.badge-overdue { "Overdue" } " "
                                            "review was due " (long_date(d.view.item.content.review_due)) " (" ((-d.days_left)) " days ago)"
                                        } @else {
                                            "review due " (long_date(d.view.item.content.review_due)) " (in " (d.days_left) " days)"
                                        }
                                    }
                                }
                            }
                        }
                        @if due_total > due.len() {
                            p { (due_total - due.len()) " more: run " code { "gatehouse due" } "." }
                        }
                    }
                }
            }
        };
        Ok(layout(site_info, Section::Home, "Home", content))
    })
    .await
}

/// One adopted item whose source moved on: what, and where to see the change.
fn source_alert(a: &crate::query::adoption::SourceAlert) -> Markup {
    let source = &a.source.item;
    let by = a
        .source
        .establishment
        .name
        .as_deref()
        .unwrap_or("another site");
    html! {
        li.result {
            h3.result-title { (item_link(&a.mine.item.id, &a.mine.item.content.title)) }
            p.result-meta {
                "Adopted from " (item_link(&source.id, &source.content.title)) " by " (by) " at version " (a.taken) ". "
                @match source.content.status {
                    Status::Withdrawn => { strong { "The source has been withdrawn." } }
                    Status::Superseded => { strong { "The source has been superseded." } }
                    _ => {
                        "It is now at version " (source.version) ": "
                        a href={ "/items/" (source.id.to_hex()) "/diff?from=" (a.taken) "&to=" (source.version) } { "see what changed" }
                        ". A site lead takes the change with " code { "gatehouse take-change " (a.mine.item.id.short()) } "."
                    }
                }
            }
        }
    }
}

/// Query-string pairs that reproduce `p` (page 1).
fn params_pairs(p: &SearchParams) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !p.q.is_empty() {
        out.push(("q".into(), p.q.clone()));
    }
    out.extend(
        p.filter
            .query_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    if p.sort != Sort::Relevance {
        out.push(("sort".into(), p.sort.slug().into()));
    }
    out
}

fn search_href(pairs: &[(String, String)]) -> String {
    match serde_urlencoded::to_string(pairs) {
        Ok(q) if !q.is_empty() => format!("/search?{q}"),
        _ => "/search".into(),
    }
}

/// `pairs` with facet `dimension` set to `value`.
fn with_facet(pairs: &[(String, String)], dimension: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != dimension)
        .cloned()
        .collect();
    out.push((dimension.to_string(), value.to_string()));
    out
}

/// `pairs` without the one filter `dimension=value`.
fn without_facet(
    pairs: &[(String, String)],
    dimension: &str,
    value: &str,
) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter(|(k, v)| !(k == dimension && v == value))
        .cloned()
        .collect()
}

fn selected_facet(p: &SearchParams, dimension: &str) -> Vec<String> {
    let f = &p.filter;
    match dimension {
        "kind" => f.kind.map(|v| v.slug().to_string()).into_iter().collect(),
        "pathway" => f
            .pathway
            .map(|v| v.slug().to_string())
            .into_iter()
            .collect(),
        "setting" => f
            .setting
            .map(|v| v.slug().to_string())
            .into_iter()
            .collect(),
        "nation" => f.nation.map(|v| v.slug().to_string()).into_iter().collect(),
        "status" => f.status.map(|v| v.slug().to_string()).into_iter().collect(),
        "owner" => f
            .owners
            .iter()
            .flatten()
            .map(EstablishmentId::to_hex)
            .collect(),
        _ => Vec::new(),
    }
}

fn facets_panel(
    lib: &ReadView,
    p: &SearchParams,
    facets: &BTreeMap<String, Vec<FacetCount>>,
) -> Markup {
    let pairs = params_pairs(p);
    html! {
        nav.facets aria-labelledby="facets-heading" {
            h2 #facets-heading { "Narrow your results" }
            @for dimension in FACETS {
                @let selected = selected_facet(p, dimension);
                @let values = facets.get(dimension).map(Vec::as_slice).unwrap_or(&[]);
                @if !values.is_empty() || !selected.is_empty() {
                    h3.facet-title { (facet_title(dimension)) }
                    ul.facet-list {
                        @for v in &selected {
                            li.facet-selected {
                                strong { (facet_label(lib, dimension, v)) }
                                " "
                                a href=(search_href(&without_facet(&pairs, dimension, v))) {
                                    "Remove" span.visually-hidden { " filter " (facet_title(dimension)) ": " (facet_label(lib, dimension, v)) }
                                }
                            }
                        }
                        @if selected.is_empty() {
                            @for fc in values {
                                li {
                                    a href=(search_href(&with_facet(&pairs, dimension, &fc.value))) {
                                        (facet_label(lib, dimension, &fc.value))
                                    }
                                    " " span.count { "(" (fc.count) ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn pagination(p: &SearchParams, total: usize) -> Markup {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let current = p.offset / PAGE_SIZE + 1;
    let pairs = params_pairs(p);
    let href = |n: usize| {
        let mut q = pairs.clone();
        if n > 1 {
            q.push(("page".into(), n.to_string()));
        }
        search_href(&q)
    };
    let first = current.saturating_sub(3).max(1);
    let last = (current + 3).min(pages);
    html! {
        @if pages > 1 {
            nav.pagination aria-label="Results pages" {
                ul {
                    @if current > 1 {
                        li { a href=(href(current - 1)) rel="prev" { "Previous" span.visually-hidden { " page" } } }
                    }
                    @for n in first..=last {
                        li {
                            @if n == current {
                                a href=(href(n)) aria-current="page" { span.visually-hidden { "Page " } (n) }
                            } @else {
                                a href=(href(n)) { span.visually-hidden { "Page " } (n) }
                            }
                        }
                    }
                    @if current < pages {
                        li { a href=(href(current + 1)) rel="next" { "Next" span.visually-hidden { " page" } } }
                    }
                }
            }
        }
    }
}

async fn search(
    State(state): State<WebState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let started = std::time::Instant::now();
    let page = render(&state, move |lib, site_info| {
        let (p, found) = run_search(lib, &pairs, true)?;
        let total = found.results.total;
        let results: &[SearchResult] = &found.results.results;
        let keep: Vec<(String, String)> = params_pairs(&p)
            .into_iter()
            .filter(|(k, _)| k != "q" && k != "sort")
            .collect();
        let heading = if p.q.is_empty() {
            "Browse the library".to_string()
        } else {
            format!("Search results for “{}”", p.q)
        };
        let page_no = p.offset / PAGE_SIZE + 1;
        let title = if page_no > 1 {
            format!("{heading} (page {page_no})")
        } else {
            heading.clone()
        };
        let from = p.offset + 1;
        let to = p.offset + results.len();
        let content = html! {
            h1 { (heading) }
            (search_form(&p.q, &keep))
            div.search-layout {
                div.search-results {
                    p.filters-link { a href="#facets-heading" { "Filter results" } }
                    form.sort-form action="/search" method="get" {
                        @for (k, v) in params_pairs(&p).iter().filter(|(k, _)| k != "sort") {
                            input type="hidden" name=(k) value=(v);
                        }
                        label.label-inline for="sort" { "Sort by" }
                        select.select #sort name="sort" {
                            @for s in Sort::ALL {
                                @if s == p.sort {
                                    option value=(s.slug()) selected { (s.label()) }
                                } @else {
                                    option value=(s.slug()) { (s.label()) }
                                }
                            }
                        }
                        button.button.button-secondary type="submit" { "Sort" }
                    }
                    p.result-count role="status" {
                        @if total == 0 {
                            "No items match."
                        } @else if results.is_empty() {
                            "There are " (total) " matching items, but not on this page. "
                            a href=(search_href(&params_pairs(&p))) { "Go to the first page" } "."
                        } @else {
                            "Showing " (from) " to " (to) " of " (total) " matching "
                            @if total == 1 { "item" } @else { "items" } "."
                        }
                    }
                    @if total == 0 {
                        div.panel {
                            h2 { "Try" }
                            ul {
                                li { "fewer or different words" }
                                li { "removing a filter" }
                                li { "the long form of an abbreviation, or the other way round" }
                            }
                        }
                    }
                    @if !results.is_empty() {
                        h2.visually-hidden { "Results" }
                        ol.results start=(from) {
                            @for r in results {
                                (result_card(&r.view, Some((&r.snippet, &r.highlights))))
                            }
                        }
                    }
                    (pagination(&p, total))
                }
                (facets_panel(lib, &p, &found.facets))
            }
        };
        Ok(layout(site_info, Section::Search, &title, content))
    })
    .await;
    crate::metrics::observe(&state.search_latency, started.elapsed());
    page
}

fn summary_row(key: &str, value: Markup) -> Markup {
    html! { div.summary-row { dt { (key) } dd { (value) } } }
}

fn list_or_none<T>(items: &[T], f: impl Fn(&T) -> String) -> Markup {
    html! {
        @if items.is_empty() { "None" } @else { (items.iter().map(f).collect::<Vec<_>>().join(", ")) }
    }
}

fn opt_text(v: Option<String>) -> Markup {
    html! { @match v { Some(v) => (v), None => span.muted { "Not given" } } }
}

pub(super) fn title_of(lib: &ReadView, id: &ItemId) -> String {
    lib.get(id, None)
        .map_or_else(|_| format!("item {}", id.short()), |v| v.item.content.title)
}

fn verified_panel(view: &ItemView, entry: Option<&VersionEntry>) -> Markup {
    let c = &view.item.content;
    let owner = view
        .establishment
        .name
        .as_deref()
        .unwrap_or("an unknown establishment");
    html! {
        div.verified {
            h2.verified-title { "Approval and signature" }
            @match (&c.approved_by, c.approved_on) {
                (Some(by), Some(on)) => p { "Approved by " strong { (by) } " on " (long_date(on)) "." },
                (Some(by), None) => p { "Approved by " strong { (by) } "." },
                (None, Some(on)) => p { "Approved on " (long_date(on)) "." },
                (None, None) => p { "No approval is recorded for this version." },
            }
            @match entry {
                Some(e) => p {
                    "Checked: version " (e.version) " was signed by "
                    strong { (e.signer.name.as_deref().unwrap_or("an unnamed person")) }
                    " for " strong { (e.establishment.name.as_deref().unwrap_or(owner)) }
                    " on " (date_of(&e.at)) ". "
                    "This node confirmed that the signature is theirs and that they may publish for " (owner) "."
                },
                None => p { "Owned by " (owner) "." },
            }
        }
    }
}

fn history_table(id: &ItemId, history: &[VersionEntry], shown: u64) -> Markup {
    html! {
        table.table {
            caption.visually-hidden { "Every signed change to this item, oldest first" }
            thead { tr { th scope="col" { "Version" } th scope="col" { "Date" } th scope="col" { "Change" }
                th scope="col" { "Signed by" } th scope="col" { "What changed" } } }
            tbody {
                @for e in history {
                    tr {
                        td {
                            @if e.version == shown { strong { (e.version) " (shown)" } }
                            @else { a href={ "/items/" (id.to_hex()) "?version=" (e.version) } { "Version " (e.version) } }
                        }
                        td { (date_of(&e.at)) }
                        td { (e.action) }
                        td { (e.signer.name.as_deref().unwrap_or("unnamed key")) br; span.muted { (e.establishment.name.as_deref().unwrap_or("")) } }
                        td {
                            (e.changed.iter().map(|f| field_label(f)).collect::<Vec<_>>().join(", "))
                            @if e.lines_added + e.lines_removed > 0 {
                                " (" "+" (e.lines_added) " / −" (e.lines_removed) " lines)"
                            }
                            @if e.version > 1 {
                                " " a href={ "/items/" (id.to_hex()) "/diff?from=" (e.version - 1) "&to=" (e.version) } {
                                    "Compare" span.visually-hidden { " version " (e.version - 1) " with " (e.version) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every version that can be shown: those changes reached, and the latest.
fn version_numbers(history: &[VersionEntry], latest: u64) -> Vec<u64> {
    let mut versions: Vec<u64> = history.iter().map(|e| e.version).collect();
    versions.push(latest);
    versions.sort_unstable();
    versions.dedup();
    versions
}

fn compare_form(id: &ItemId, versions: &[u64], from: u64, to: u64) -> Markup {
    let select = |name: &str, label: &str, chosen: u64| {
        html! {
            div.form-group {
                label.label for={ "compare-" (name) } { (label) }
                select.select id={ "compare-" (name) } name=(name) {
                    @for v in versions {
                        @if *v == chosen { option value=(v) selected { "Version " (v) } }
                        @else { option value=(v) { "Version " (v) } }
                    }
                }
            }
        }
    };
    html! {
        form.compare-form action={ "/items/" (id.to_hex()) "/diff" } method="get" {
            (select("from", "Compare version", from))
            (select("to", "with version", to))
            button.button.button-secondary type="submit" { "Compare versions" }
        }
    }
}

async fn item(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let me = super::auth::current();
    let accounts = state.accounts.clone();
    let fetching = state.net.is_some();
    render(&state, move |lib, site_info| {
        let watching = super::inbox::watching_of(accounts.as_deref(), me.as_ref());
        let id = item_id(lib, &id)?;
        let mut version = None;
        for (k, v) in &pairs {
            match k.as_str() {
                "version" if !v.trim().is_empty() => version = Some(version_number("version", v.trim())?),
                "version" => {}
                other => return Err(WebError::BadRequest(format!("unknown parameter {other:?}; expected version"))),
            }
        }
        let latest = lib.get(&id, None)?;
        let view = match version {
            Some(n) => lib.get(&id, Some(n))?,
            None => latest.clone(),
        };
        let history = lib.history(&id)?;
        let adopters = lib.adopters(&id)?;
        let lifecycle = lib.lifecycle_from(&id, &history, Zoned::now().date())?;
        let reading = super::inbox::reading_panel(lib, &latest, me.as_ref(), accounts.as_deref(), Zoned::now().date())?;
        let source_moved = match latest.item.adoption {
            Some(_) if latest.item.owner == lib.establishment() => lib
                .source_changes()?
                .into_iter()
                .find(|a| a.mine.item.id == id),
            _ => None,
        };
        let c = &view.item.content;
        let it = &view.item;
        // The latest version may be a merge of concurrent revisions, reached
        // by no single change: its last change is what was signed last.
        let signed = history
            .iter()
            .rev()
            .find(|e| e.version == it.version)
            .or_else(|| history.last().filter(|_| it.version == latest.item.version));
        let versions = version_numbers(&history, latest.item.version);
        let compare_to = latest.item.version;
        let compare_from = if it.version < compare_to { it.version } else { compare_to.saturating_sub(1).max(1) };
        let content = html! {
            nav.breadcrumbs aria-label="Breadcrumb" {
                ol {
                    li { a href="/" { "Home" } }
                    li { a href={ "/search?owner=" (it.owner.to_hex()) } { (view.establishment.name.as_deref().unwrap_or("Establishment")) } }
                }
            }
            span.caption { (c.kind.label()) " · " (view.establishment.name.as_deref().unwrap_or("unknown establishment")) }
            h1 { (c.title) }
            p.status-line { (badge(c.status)) " " span { "Version " (it.version) } " · " span { "Review due " (long_date(c.review_due)) } }
            @if version.is_some() && it.version != latest.item.version {
                div.notice role="note" {
                    p { strong { "You are reading version " (it.version) "." } " The current version is " (latest.item.version) ". "
                        a href={ "/items/" (it.id.to_hex()) } { "Read the current version" } "." }
                }
            }
            @if let Some(next) = latest.item.superseded_by {
                div.notice.notice-superseded role="note" {
                    h2.notice-title { "This item has been superseded" }
                    p { "It is replaced by " (item_link(&next, &title_of(lib, &next))) "." }
                }
            }
            @if let Some(reason) = &latest.item.withdrawn_reason {
                div.notice.notice-withdrawn role="note" {
                    h2.notice-title { "This item has been withdrawn" }
                    p { "Reason: " (reason) }
                    p { "Do not follow it." }
                }
            }
            @if let Some(a) = &source_moved {
                div.notice role="note" {
                    h2.notice-title { "The source changed since you adopted it" }
                    ul.results { (source_alert(a)) }
                }
            }
            p.print-only {
                strong { "Uncontrolled when printed." }
                " Version " (it.version) " of item " (it.id.short()) ", printed on " (long_date(Zoned::now().date()))
                ". Check the library for the current version before you follow it."
            }
            p.lead { (c.summary) }
            @if let Some(s) = &me {
                p.no-print { (super::inbox::item_watch(s, &watching, &it.id)) }
            }
            (verified_panel(&view, signed))
            div.body {
                h2 { "Document" }
                div.prose { (PreEscaped(markdown::render(&c.body, 2))) }
            }
            (super::files::files_panel(lib, &view, me.as_ref(), fetching))
            @if let Some(qi) = &c.qi {
                section aria-labelledby="qi-heading" {
                    h2 #qi-heading { "Quality improvement" }
                    dl.summary {
                        (summary_row("Aim", html! { (qi.aim) }))
                        (summary_row("Measures", html! { ul { @for m in &qi.measures { li { (m) } } } }))
                        (summary_row("PDSA cycles", html! { ol { @for m in &qi.pdsa_cycles { li { (m) } } } }))
                        (summary_row("Outcomes", html! { (qi.outcomes) }))
                        @if let Some(p) = &it.progress {
                            (summary_row("Progress", html! { "IHI score " (p.score.text()) ": " (p.score.meaning()) }))
                            (summary_row("Stage", html! { (p.stage.label()) }))
                        }
                    }
                    (measure_charts(&it.measures))
                }
            }
            section aria-labelledby="details-heading" {
                h2 #details-heading { "Details" }
                dl.summary {
                    (summary_row("Owner", html! { a href={ "/search?owner=" (it.owner.to_hex()) } { (view.establishment.name.as_deref().unwrap_or("unknown")) } }))
                    (summary_row("Kind", html! { (c.kind.label()) }))
                    (summary_row("Status", badge(c.status)))
                    (summary_row("Version", html! { (it.version) }))
                    (summary_row("Care pathways", list_or_none(&c.pathways, |p| p.label().to_string())))
                    (summary_row("Settings", list_or_none(&c.settings, |s| s.label().to_string())))
                    (summary_row("Nation", html! { (Nation::set_label(&c.nations)) }))
                    (summary_row("Tags", list_or_none(&c.tags, Clone::clone)))
                    (summary_row("Approved by", opt_text(c.approved_by.clone())))
                    (summary_row("Approved on", opt_text(c.approved_on.map(long_date))))
                    (summary_row("Effective from", opt_text(c.effective_from.map(long_date))))
                    (summary_row("Review due", html! { (long_date(c.review_due)) }))
                    (summary_row("Last updated", html! { (date_ms(view.updated_ms)) }))
                    (summary_row("Signed by", list_or_none(&view.signed_by, |n| n.name.clone().unwrap_or_else(|| n.key.short()))))
                    @if !it.supersedes.is_empty() {
                        (summary_row("Replaces", html! { @for (i, old) in it.supersedes.iter().enumerate() {
                            @if i > 0 { ", " } (item_link(old, &title_of(lib, old))) } }))
                    }
                    @if let Some(next) = it.superseded_by {
                        (summary_row("Replaced by", item_link(&next, &title_of(lib, &next))))
                    }
                    @if let Some(reason) = &it.withdrawn_reason {
                        (summary_row("Withdrawn because", html! { (reason) }))
                    }
                    @if let Some(origin) = it.adopted_from {
                        (summary_row("Adopted from", html! {
                            (item_link(&origin, &title_of(lib, &origin)))
                            @if let Some(a) = it.adoption { ", version " (a.version) }
                        }))
                    }
                    (summary_row("Item id", html! { code { (it.id.to_hex()) } }))
                }
            }
            (front_sheet(&c.front_sheet))
            @if version.is_none() || it.version == latest.item.version {
                (approval_panel(&view, &lifecycle))
                (reading)
                (super::inbox::adopt_panel(lib, &latest, me.as_ref(), &adopters))
            }
            @if !adopters.is_empty() {
                section aria-labelledby="adopters-heading" {
                    h2 #adopters-heading { "Adopted by " (adopters.len()) @if adopters.len() == 1 { " site" } @else { " sites" } }
                    table {
                        thead { tr { th scope="col" { "Establishment" } th scope="col" { "Their copy" } th scope="col" { "Version of this item they hold" } } }
                        tbody {
                            @for a in &adopters {
                                tr {
                                    td { (a.establishment.name.as_deref().unwrap_or("unknown establishment")) }
                                    td { a href={ "/items/" (a.item.to_hex()) } { (a.item.short()) } @if a.status != Status::Published { " (" (a.status.label().to_lowercase()) ")" } }
                                    td {
                                        @match a.version {
                                            Some(n) if n == latest.item.version => { (n) ", the current one" }
                                            Some(n) => { (n) " (current: " (latest.item.version) ")" }
                                            None => { "not recorded" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.no-print aria-labelledby="history-heading" {
                h2 #history-heading { "Version history" }
                (history_table(&it.id, &history, it.version))
                @if versions.len() > 1 {
                    (compare_form(&it.id, &versions, compare_from, compare_to))
                }
            }
            (discussion_of(lib, &it.id))
        };
        Ok(layout(site_info, Section::None, &c.title, content))
    })
    .await
}

/// Each measure of a QI initiative: its definition, then an SPC (XmR)
/// chart with the Making Data Count signals and a run chart, notes (PDSA
/// cycles) marked at the first point on or after their date.
fn measure_charts(measures: &[gatehouse_protocol::item::Measure]) -> Markup {
    html! {
        @for (n, m) in measures.iter().enumerate() {
            @let d = &m.definition;
            @let points: Vec<(String, f64)> = m.points.iter().map(|p| (p.date.to_string(), p.value)).collect();
            @let notes: Vec<(usize, String)> = m.notes.iter().filter_map(|note| {
                m.points.iter().position(|p| p.date >= note.date).map(|i| (i, note.text.clone()))
            }).collect();
            @let better = match d.improvement {
                gatehouse_protocol::item::Improvement::Higher => crate::query::spc::Better::Higher,
                gatehouse_protocol::item::Improvement::Lower => crate::query::spc::Better::Lower,
            };
            @let baseline = d.baseline_until.map(|until| m.points.iter().filter(|p| p.date <= until).count());
            section.measure aria-labelledby={ "measure-" (n) "-heading" } {
                h3 id={ "measure-" (n) "-heading" } { (d.name) }
                p { (d.definition) @if !d.unit.is_empty() { " Unit: " (d.unit) "." } " "
                    @match d.improvement { gatehouse_protocol::item::Improvement::Higher => "Higher is better.", gatehouse_protocol::item::Improvement::Lower => "Lower is better." } }
                (super::chart::spc_chart(&format!("spc-{n}"), &format!("{}: SPC chart", d.name), &d.unit, &points, &notes, better, baseline))
                (super::chart::run_chart(&format!("run-{n}"), &format!("{}: run chart", d.name), &d.unit, &points, &notes, better))
            }
        }
    }
}

/// The document's front sheet, when it has one.
fn front_sheet(fs: &gatehouse_protocol::item::FrontSheet) -> Markup {
    let eia = fs
        .equality_impact
        .map(|e| match (e, fs.equality_impact_on) {
            (gatehouse_protocol::item::EqualityImpact::Done, Some(d)) => {
                format!("Done, {}", long_date(d))
            }
            (gatehouse_protocol::item::EqualityImpact::Done, None) => "Done".to_string(),
            (gatehouse_protocol::item::EqualityImpact::NotNeeded, _) => "Not needed".to_string(),
        });
    let rows = [
        ("Document owner", fs.document_owner.clone()),
        ("Ratifying committee", fs.ratifying_committee.clone()),
        ("Equality impact assessment", eia),
        ("Consultation", fs.consultation.clone()),
        ("Distribution", fs.distribution.clone()),
        ("Version notes", fs.version_notes.clone()),
    ];
    if rows.iter().all(|(_, v)| v.is_none()) {
        return html! {};
    }
    html! {
        section aria-labelledby="front-sheet-heading" {
            h2 #front-sheet-heading { "Front sheet" }
            dl.summary {
                @for (k, v) in rows {
                    @if let Some(v) = v { (summary_row(k, html! { (v) })) }
                }
            }
        }
    }
}

/// Who approved the current version (signed with their own key), the
/// approvals that do not count and why, the review dates and the owner's
/// rules.
fn approval_panel(view: &ItemView, l: &crate::query::lifecycle::Lifecycle) -> Markup {
    let owner = view
        .establishment
        .name
        .as_deref()
        .unwrap_or("The owning establishment");
    let who = |a: &crate::query::lifecycle::ApprovalView| {
        format!(
            "{} (key {})",
            a.approver.name.as_deref().unwrap_or("unknown key"),
            a.approver.key.short()
        )
    };
    html! {
        section aria-labelledby="approval-heading" {
            h2 #approval-heading { "Approval and review" }
            dl.summary {
                (summary_row("Stage", html! { strong { (l.stage.label()) } }))
                (summary_row("Approval", match &l.approved {
                    Some(a) => html! { "Version " (a.version) " approved by " (who(a)) ", signed " (a.at.get(..10).unwrap_or(&a.at)) },
                    None => html! { "No signed approval of this version counts." },
                }))
                @for a in l.approvals.iter().filter(|a| !a.counts) {
                    (summary_row("Not counted", html! {
                        "Approval of version " (a.version) " by " (who(a)) ": " (a.reason.as_deref().unwrap_or(""))
                    }))
                }
                (summary_row("Review due", html! { (long_date(view.item.content.review_due)) }))
                (summary_row("Reminders from", html! { (long_date(l.reminders_from)) }))
                (summary_row("Rules", html! {
                    @if l.rules.two_person_approval {
                        (owner) " requires a second person to approve each version."
                    } @else {
                        (owner) " lets one person approve a version, its author included."
                    }
                }))
            }
        }
    }
}

/// The threads about an item, and the way to start one.
fn discussion_of(lib: &ReadView, id: &ItemId) -> Markup {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let threads = lib.threads(
        &crate::query::forum::ThreadQuery {
            list: crate::query::forum::ThreadList::All,
            about: Some(*id),
            limit: 20,
            ..Default::default()
        },
        now,
    );
    html! {
        section.no-print aria-labelledby="discussion-heading" {
            h2 #discussion-heading { "Discussion" }
            @if threads.is_empty() {
                p { "No one has discussed this item yet." }
            } @else {
                ul.list {
                    @for t in &threads {
                        li {
                            a href={ "/threads/" (t.id.to_hex()) } { (t.title) }
                            span.muted { " · " (t.author.label()) " · " (t.replies) " "
                                @if t.replies == 1 { "reply" } @else { "replies" } }
                        }
                    }
                }
            }
            p { a.button.button-secondary href={ "/discussions/new?about=" (id.to_hex()) } { "Discuss this item" } }
        }
    }
}

fn diff_view(d: &ItemDiff) -> Markup {
    html! {
        section aria-labelledby="fields-heading" {
            h2 #fields-heading { "Details that changed" }
            @if d.fields.is_empty() {
                p { "No details changed." }
            } @else {
                table.table {
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Version " (d.from) } th scope="col" { "Version " (d.to) } } }
                    tbody {
                        @for f in &d.fields {
                            tr { th scope="row" { (field_label(&f.field)) } td.del-cell { (field_value(&f.before)) } td.ins-cell { (field_value(&f.after)) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="body-heading" {
            h2 #body-heading { "Document text" }
            @if d.hunks.is_empty() {
                p { "The text did not change." }
            } @else {
                p { (d.lines_added) " lines added, " (d.lines_removed) " lines removed. "
                    "Removed lines are marked “Removed” and struck through; added lines are marked “Added”." }
                @for h in &d.hunks {
                    div.diff {
                        @for line in &h.lines {
                            @match line.change {
                                LineChange::Same => div.diff-line { span.diff-marker aria-hidden="true" { " " } span { (PreEscaped(line_html(&line.text))) } },
                                LineChange::Added => div.diff-line.diff-added {
                                    span.diff-marker aria-hidden="true" { "+" } span.visually-hidden { "Added: " } ins { (PreEscaped(line_html(&line.text))) } },
                                LineChange::Removed => div.diff-line.diff-removed {
                                    span.diff-marker aria-hidden="true" { "−" } span.visually-hidden { "Removed: " } del { (PreEscaped(line_html(&line.text))) } },
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn item_diff(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    render(&state, move |lib, site_info| {
        let Compared {
            newer: new,
            latest,
            diff: d,
        } = diff_between(lib, &id, &pairs)?;
        let heading = format!("Changes from version {} to {}", d.from, d.to);
        let title = format!("{heading}: {}", new.item.content.title);
        let history = lib.history(&new.item.id)?;
        let versions = version_numbers(&history, latest);
        let content = html! {
            nav.breadcrumbs aria-label="Breadcrumb" {
                ol {
                    li { a href="/" { "Home" } }
                    li { (item_link(&new.item.id, &new.item.content.title)) }
                }
            }
            span.caption { (new.item.content.title) }
            h1 { (heading) }
            (compare_form(&new.item.id, &versions, d.from, d.to))
            (diff_view(&d))
            p { a href={ "/items/" (new.item.id.to_hex()) } { "Back to " (new.item.content.title) } }
        };
        Ok(layout(site_info, Section::None, &title, content))
    })
    .await
}

async fn establishments(State(state): State<WebState>) -> Response {
    render(&state, |lib, site_info| {
        let list = lib.establishments()?;
        let filter_for = |id: EstablishmentId| crate::query::filter::Filter {
            owners: Some(vec![id]),
            ..Default::default()
        };
        let content = html! {
            h1 { "Establishments" }
            p.lead { (list.len()) " establishments are admitted to " (site_info.network) "." }
            @for e in &list {
                @let items = lib.find(&crate::projection::search::SearchRequest {
                    query: "", filter: &filter_for(e.id), sort: Sort::Updated, offset: 0, limit: DIRECTORY_ITEMS, facets: false,
                })?;
                section.establishment aria-labelledby={ "est-" (e.id.to_hex()) } {
                    h2 id={ "est-" (e.id.to_hex()) } { (e.name) @if e.removed { " " strong.badge.badge-withdrawn { "Removed" } } }
                    dl.summary {
                        (summary_row("Setting type", html! { (e.setting.label()) }))
                        (summary_row("Nation", html! { (e.nation.label()) }))
                        (summary_row("Items", html! { (e.items) }))
                        (summary_row("Members", html! { (e.members.iter().filter(|m| !m.revoked).count()) " current keys" }))
                    }
                    @if !items.results.results.is_empty() {
                        h3 { "Recently updated" }
                        ul.plain-list {
                            @for r in &items.results.results {
                                li { (item_link(&r.view.item.id, &r.view.item.content.title)) " " (badge(r.view.item.content.status)) }
                            }
                        }
                    }
                    @if e.items > 0 {
                        p { a href={ "/search?owner=" (e.id.to_hex()) } { "All " (e.items) " items from " (e.name) } }
                    }
                }
            }
        };
        Ok(layout(site_info, Section::Establishments, "Establishments", content))
    })
    .await
}

/// A number of seconds as people say it.
fn duration_text(secs: u64) -> String {
    match secs {
        0..=89 => format!("{secs} seconds"),
        90..=5399 => format!("{} minutes", (secs + 30) / 60),
        _ => format!("{:.1} hours", secs as f64 / 3600.0),
    }
}

async fn network(State(state): State<WebState>, LocalClient(local): LocalClient) -> Response {
    let net = state.net.as_ref().map(crate::net::NetHandle::status);
    render(&state, move |lib, site_info| {
        let mut s = node_status(lib, net)?;
        if !local {
            s = s.without_addresses();
        }
        let content = html! {
            h1 { "Network" }
            section aria-labelledby="held-heading" {
                h2 #held-heading { "What this node holds" }
                dl.summary {
                    (summary_row("Network", html! { (s.library.network_name.as_deref().unwrap_or("unnamed")) " " code { (s.library.network.short()) } }))
                    (summary_row("Establishment", html! { (site_info.establishment) }))
                    (summary_row("Items", html! { (s.library.items) }))
                    (summary_row("Envelopes held", html! { (s.library.envelopes) }))
                    (summary_row("Certificates", html! { (s.library.certificates) }))
                    (summary_row("Pending", html! {
                        @if s.library.pending.is_empty() { "None" }
                        @else { ul { @for (why, n) in &s.library.pending { li { (n) ": " (why) } } } }
                    }))
                    (summary_row("Rejected", html! {
                        @if s.library.rejected.is_empty() { "None" }
                        @else { ul { @for (why, n) in &s.library.rejected { li { (n) ": " (why) } } } }
                    }))
                    (summary_row("Last sync", html! { @match s.last_sync_ms { Some(t) => (format_ms(t)), None => "Never" } }))
                }
            }
            section aria-labelledby="peers-heading" {
                h2 #peers-heading { "Peers" }
                @match &s.network_state {
                    None => p { "The network is not running in this process: start the node with " code { "gatehouse node run" } "." },
                    Some(n) => {
                        p { "This node is " code { (n.peer_id) } "." }
                        @if n.peers.is_empty() {
                            p { "No peers seen yet." }
                        } @else {
                            table.table {
                                caption.visually-hidden { "Peers this node has seen" }
                                thead { tr { th scope="col" { "Peer" } th scope="col" { "Establishment" } th scope="col" { "Connected" }
                                    th scope="col" { "Last sync" } th scope="col" { "Received" } th scope="col" { "Sent" } } }
                                tbody {
                                    @for (id, p) in &n.peers {
                                        tr {
                                            th scope="row" { code { (id.get(id.len().saturating_sub(8)..).unwrap_or(id)) } }
                                            td { (p.establishment.as_deref().unwrap_or(if p.admitted { "admitted" } else { "not admitted" })) }
                                            td { @if p.connected { "Yes" } @else { "No" } }
                                            td { @match p.last_sync_ms { Some(t) => (format_ms(t)), None => "Never" } }
                                            td { (p.envelopes_received) }
                                            td { (p.envelopes_sent) }
                                        }
                                    }
                                }
                            }
                        }
                        p { "Forged or malformed envelopes received: " (n.forged_received)
                            ". Received but not stored (no effect, or past a limit): " (n.refused_received)
                            ". Connections refused (not admitted): " (n.refused_connections) "." }
                    }
                }
            }
            @if let Some(n) = &s.network_state {
                section aria-labelledby="files-heading" {
                    h2 #files-heading { "Files" }
                    @if n.transfers.is_empty() {
                        p { "No file is being fetched." }
                    } @else {
                        table.table {
                            caption.visually-hidden { "Files being fetched" }
                            thead { tr { th scope="col" { "File" } th scope="col" { "Here" } th scope="col" { "Rate" } th scope="col" { "Time left" } } }
                            tbody {
                                @for t in &n.transfers {
                                    tr {
                                        th scope="row" { (t.name) @if t.demanded { " (asked for)" } }
                                        td { (super::files::size_text(t.have)) " of " (super::files::size_text(t.size)) }
                                        td { (super::files::size_text(t.rate as u64)) "/s" }
                                        td { @match t.eta_secs { Some(s) => (duration_text(s)), None => "not known yet" } }
                                    }
                                }
                            }
                        }
                    }
                    p { "Fetched whole since the node started: " (n.blobs_fetched)
                        ". Pieces from peers that did not verify: " (n.blob_pieces_refused)
                        ". Files refused when whole: " (n.blobs_refused) "." }
                }
            }
            section aria-labelledby="book-heading" {
                h2 #book-heading { "Peer book" }
                @if s.addresses_hidden {
                    p { "Network addresses are shown only on this node's own machine." }
                } @else if s.peer_book.is_empty() {
                    p { "No addresses remembered. Add one with " code { "gatehouse peers add" } "." }
                } @else {
                    ul.plain-list {
                        @for p in &s.peer_book {
                            li { code { (p.address) } " · last sync "
                                @match p.last_sync_ms { Some(t) => (format_ms(t)), None => "never" } }
                        }
                    }
                }
            }
        };
        Ok(layout(site_info, Section::Network, "Network", content))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_line_reads_as_the_page_shows_it_not_as_markdown() {
        assert_eq!(
            line_html("Tell the **pharmacist**."),
            "Tell the <strong>pharmacist</strong>."
        );
        assert!(
            line_html("## Training").starts_with("<h4"),
            "{}",
            line_html("## Training")
        );
        assert!(line_html("- OST induction").contains("<li>OST induction</li>"));
        assert!(!line_html("<script>alert(1)</script>").contains("<script"));
        assert_eq!(line_html(""), "");
    }

    #[test]
    fn dates_read_as_people_write_them() {
        assert_eq!(date_of("2026-12-01T09:30:00Z"), "1 December 2026");
        assert_eq!(field_value("2027-03-31"), "31 March 2027");
        assert_eq!(field_value("HMP Northgate"), "HMP Northgate");
        assert_eq!(
            crate::query::when("2026-12-04T18:45:35.237Z"),
            "4 December 2026, 18:45 UTC"
        );
        assert_eq!(crate::query::when("unknown"), "unknown");
    }
}
