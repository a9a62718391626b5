//! The inbox page and watching: what is new for the signed-in person
//! ([`crate::query::inbox`]), what they still have to read
//! ([`crate::query::reading`]), and the buttons that watch a thread or an
//! item. Opening the inbox marks what it shows as seen; the header of
//! every page counts what is not. Read and acknowledge on an item's page:
//! the request, the button that signs "I have read and understood", and
//! for the owning site's staff the register of who has.

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use gatehouse_protocol::id::{EnvelopeId, ItemId};
use maud::{Markup, html};

use std::sync::Arc;

use super::auth::{Accounts, Session, current};
use super::forum::{Fields, account_bar, csrf_field, field, now_ms, refused, safe_next, see_other};
use super::pages::{Section, error_page, layout};
use super::{WebError, WebState};
use crate::query::inbox::{Inbox, InboxEntry, InboxKind, MAX_WATCHED, Watching};

/// Entries the inbox page shows.
pub const INBOX_PAGE_LEN: usize = 100;

/// The inbox routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/inbox", get(inbox))
        .route("/watch", post(watch))
        .route("/items/{id}/acknowledge", post(acknowledge))
        .route("/items/{id}/adopt", post(adopt))
}

/// For a signed-in site lead, on another establishment's item in force:
/// the button that adopts it for their site (or a link to their site's
/// copy, once adopted).
pub(super) fn adopt_panel(
    lib: &crate::query::ReadView,
    view: &crate::query::ItemView,
    me: Option<&Session>,
    adopters: &[crate::query::adoption::Adopter],
) -> Markup {
    let it = &view.item;
    let Some(s) = me else {
        return html! {};
    };
    let lead = matches!(
        s.role,
        gatehouse_protocol::certificate::MemberRole::Person
            | gatehouse_protocol::certificate::MemberRole::Establishment
    );
    if !lead
        || it.owner == lib.establishment()
        || it.content.status != gatehouse_protocol::vocab::Status::Published
    {
        return html! {};
    }
    let mine = adopters
        .iter()
        .find(|a| a.establishment.id == lib.establishment());
    let own = lib.establishment_name(&lib.establishment());
    html! {
        section.no-print aria-labelledby="adopt-heading" {
            h2 #adopt-heading { "Adopt for my site" }
            @if let Some(a) = mine {
                p { (own) " has adopted this item: " a href={ "/items/" (a.item.to_hex()) } { "your site's copy" } "." }
            } @else {
                p { "Make a copy owned by " (own) ", signed with your key, recording this item and its version " (it.version)
                    ". The copy starts without " (view.establishment.name.as_deref().unwrap_or("the source site")) "'s approval and dates, which are your site's to give; you are told when this item changes." }
                form method="post" action={ "/items/" (it.id.to_hex()) "/adopt" } {
                    (csrf_field(s))
                    button.button type="submit" { "Adopt for my site" }
                }
            }
        }
    }
}

/// Runs `act` on the item named `id` with the signed-in person's key,
/// on the blocking pool; announces what it stored and sends the browser
/// to the address `to` gives for the item and the result.
async fn signed_by_session<T: Send + 'static>(
    state: &WebState,
    fields: &Fields,
    id: String,
    act: impl FnOnce(
        &mut crate::library::Library,
        &gatehouse_protocol::key::SecretKey,
        &ItemId,
    ) -> Result<T, crate::error::LibraryError>
    + Send
    + 'static,
    to: impl FnOnce(&ItemId, T) -> String,
) -> Response {
    let (Some(s), Some(accounts)) = (current(), state.accounts.clone()) else {
        return see_other(&format!("/signin?next=/items/{id}"));
    };
    if let Some(r) = refused(&s, fields) {
        return r;
    }
    let item = match state.read(move |lib| super::item_id(lib, &id)).await {
        Ok(i) => i,
        Err(e) => return error_page(None, &e),
    };
    let key = s.key.clone();
    let (library, net) = accounts.library();
    let (library, net) = (library.clone(), net.cloned());
    let done = tokio::task::spawn_blocking(move || {
        let mut lib = library.lock().unwrap_or_else(|p| p.into_inner());
        let out = act(&mut lib, &key, &item)?;
        Ok::<_, crate::error::LibraryError>((out, lib.take_outbox()))
    })
    .await;
    match done {
        Ok(Ok((out, fresh))) => {
            if let Some(net) = net {
                net.announce(fresh).await;
            }
            see_other(&to(&item, out))
        }
        Ok(Err(
            e @ (crate::error::LibraryError::Lifecycle(_)
            | crate::error::LibraryError::Adopt(_)
            | crate::error::LibraryError::NotAuthorised(_)),
        )) => error_page(None, &WebError::BadRequest(e.to_string())),
        Ok(Err(e)) => error_page(None, &e.into()),
        Err(_) => error_page(None, &WebError::Internal(super::INTERNAL_MESSAGE.into())),
    }
}

/// Adopts the item for the signed-in site lead's establishment, signed
/// with their key; on to the copy.
async fn adopt(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    signed_by_session(
        &state,
        &fields,
        id,
        |lib, key, source| lib.adopt_as(key, source, None, &[]),
        |_, copy| format!("/items/{}", copy.to_hex()),
    )
    .await
}

/// An item's request to read, as its page shows it: who must read which
/// version by when; for a signed-in person asked, whether they have, and
/// the button that signs that they have; for this site's signed-in staff,
/// the register.
pub(super) fn reading_panel(
    lib: &crate::query::ReadView,
    view: &crate::query::ItemView,
    me: Option<&Session>,
    accounts: Option<&Accounts>,
    today: gatehouse_protocol::jiff::civil::Date,
) -> Result<Markup, WebError> {
    let it = &view.item;
    // This site's signed-in staff get the register, which holds the
    // request; others the request alone.
    let (mine, register) = match (me, accounts) {
        (Some(s), Some(a)) if it.owner == lib.establishment() => (
            Some((s, a.job_of(&s.login))),
            Some(lib.register(&it.id, &a.staff_members(), today)?),
        ),
        _ => (None, None),
    };
    let request = match &register {
        Some(r) => r.request.clone(),
        None => lib.reading_request(&it.id)?,
    };
    let Some(request) = request else {
        return Ok(html! {});
    };
    let my_ack = match (mine, &register) {
        (Some((s, _)), Some(r)) => r.answer_of(&s.key.public()).cloned(),
        _ => None,
    };
    let due = crate::query::diff::long_date(request.due);
    Ok(html! {
        section.no-print aria-labelledby="reading-heading" {
            h2 #reading-heading { "Read and acknowledge" }
            p { (crate::query::capitalised(&request.jobs_in_words())) " must read version " (request.version) " by " (due) "." }
            @if let Some((s, job)) = mine {
                @if let Some(a) = &my_ack {
                    p.notice role="status" { "You acknowledged version " (a.version) " on " (a.at.get(..10).unwrap_or(&a.at)) "." }
                } @else if request.asks(job) && it.content.status == gatehouse_protocol::vocab::Status::Published {
                    form method="post" action={ "/items/" (it.id.to_hex()) "/acknowledge" } {
                        (csrf_field(s))
                        button.button type="submit" { "I have read and understood version " (it.version) }
                    }
                    @if today > request.due { p.error-message { "This was due by " (due) "." } }
                }
            }
            @if let Some(r) = &register {
                h3 { "Who has read it" }
                p { (r.done()) " of " (r.rows.len()) " asked have acknowledged it." @if r.overdue { " " strong { "Overdue." } } }
                table {
                    caption { "Acknowledgement register for version " (request.version) }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Job" } th scope="col" { "Acknowledged" } } }
                    tbody {
                        @for row in &r.rows {
                            tr {
                                td { (row.person.name) }
                                td { (row.person.job.map_or("not set", |j| j.label())) }
                                td { @match &row.acknowledged {
                                    Some(a) => { "Version " (a.version) ", " (a.at.get(..10).unwrap_or(&a.at)) }
                                    None => { strong { "Not yet" } }
                                } }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Signs, with the signed-in person's key, that they have read and
/// understood the item's current version; back to the item.
async fn acknowledge(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    signed_by_session(
        &state,
        &fields,
        id,
        |lib, key, item| lib.acknowledge(key, item),
        |item, _| format!("/items/{}#reading-heading", item.to_hex()),
    )
    .await
}

fn entry_line(e: &InboxEntry) -> Markup {
    let link = match (e.kind, e.thread, e.post, e.item) {
        (InboxKind::ItemChanged | InboxKind::SourceChanged, _, _, Some(item)) => {
            format!("/items/{}", item.to_hex())
        }
        (_, Some(t), Some(p), _) if t != p => {
            format!("/threads/{}#post-{}", t.to_hex(), p.to_hex())
        }
        (_, Some(t), _, _) => format!("/threads/{}", t.to_hex()),
        _ => "/inbox".to_string(),
    };
    html! {
        li.result.inbox-new[e.unread] {
            p.result-title {
                @if e.unread { strong.badge.badge-draft { "New" } " " }
                strong { (e.by) } " "
                @match e.kind {
                    InboxKind::Answer => "answered your question ",
                    InboxKind::Reply => "replied in ",
                    InboxKind::ItemChanged => "published a new version of ",
                    InboxKind::ItemDiscussed => "started a discussion of an item you watch: ",
                    InboxKind::SourceChanged => "changed the source of your site's adopted ",
                }
                a href=(link) { (e.title) }
                @if let Some(v) = e.version {
                    @if e.kind == InboxKind::SourceChanged { " (the source is now at version " (v) ")" } @else { " (version " (v) ")" }
                }
            }
            p.result-meta { (super::pages::date_ms(e.at_ms)) }
        }
    }
}

fn watch_button(s: &Session, what: &str, id: &str, on: bool, back: &str, label: &str) -> Markup {
    html! {
        form.inline-form action="/watch" method="post" {
            (csrf_field(s))
            input type="hidden" name="what" value=(what);
            input type="hidden" name="id" value=(id);
            input type="hidden" name="watch" value=(if on { "on" } else { "off" });
            input type="hidden" name="next" value=(back);
            button.link-button type="submit" { (label) }
        }
    }
}

/// The button that starts or stops watching a thread, for its page.
pub(super) fn thread_watch(s: &Session, watching: &Watching, thread: &EnvelopeId) -> Markup {
    let watching = watching.threads.contains_key(thread);
    let back = format!("/threads/{}", thread.to_hex());
    if watching {
        watch_button(
            s,
            "thread",
            &thread.to_hex(),
            false,
            &back,
            "Stop watching this thread",
        )
    } else {
        watch_button(
            s,
            "thread",
            &thread.to_hex(),
            true,
            &back,
            "Watch this thread",
        )
    }
}

/// The button that starts or stops watching an item, for its page.
pub(super) fn item_watch(s: &Session, watching: &Watching, item: &ItemId) -> Markup {
    let watching = watching.items.contains_key(item);
    let back = format!("/items/{}", item.to_hex());
    if watching {
        watch_button(
            s,
            "item",
            &item.to_hex(),
            false,
            &back,
            "Stop watching this item",
        )
    } else {
        watch_button(
            s,
            "item",
            &item.to_hex(),
            true,
            &back,
            "Watch this item for changes",
        )
    }
}

async fn inbox(State(state): State<WebState>) -> Response {
    let (Some(s), Some(accounts)) = (current(), state.accounts.clone()) else {
        return see_other("/signin?next=/inbox");
    };
    let (reader, login) = (Arc::clone(&accounts), s.login.clone());
    let Ok(before) = tokio::task::spawn_blocking(move || reader.inbox_state(&login)).await else {
        return error_page(None, &WebError::Internal(super::INTERNAL_MESSAGE.into()));
    };
    let me = s.key.public();
    let job = accounts.job_of(&s.login);
    let st = before.clone();
    let found: Result<Inbox, WebError> = state
        .read(move |lib| Ok(lib.inbox(&me, &st.watching, st.read_up_to_ms, INBOX_PAGE_LEN)))
        .await;
    let found = match found {
        Ok(f) => f,
        Err(e) => return error_page(None, &e),
    };
    // What is shown is seen: from now on the header counts only what is
    // newer.
    let up_to = now_ms().max(found.latest_ms).max(before.read_up_to_ms);
    let (keeper, login) = (Arc::clone(&accounts), s.login.clone());
    let kept = tokio::task::spawn_blocking(move || {
        keeper.update_inbox(&login, |st| st.read_up_to_ms = up_to)
    })
    .await;
    if !matches!(kept, Ok(Ok(()))) {
        tracing::warn!("could not keep what an inbox has shown");
    }
    super::pages::render(&state, move |lib, site| {
        let watched_threads: Vec<(EnvelopeId, String)> = before
            .watching
            .threads
            .keys()
            .map(|t| {
                let title = lib
                    .forum()
                    .thread(t)
                    .map_or_else(|| format!("thread {}", t.short()), |th| th.summary.title.clone());
                (*t, title)
            })
            .collect();
        let watched_items: Vec<(ItemId, String)> = before
            .watching
            .items
            .keys()
            .map(|i| (*i, super::pages::title_of(lib, i)))
            .collect();
        let today = gatehouse_protocol::jiff::Zoned::now().date();
        let to_read = lib.to_read(&s.key.public(), job, today)?;
        let content = html! {
            (account_bar(Some(&s), true))
            h1 { "Your inbox" }
            section aria-labelledby="to-read-heading" {
                h2 #to-read-heading { "To read" }
                @if to_read.is_empty() {
                    p { "Nothing: you have acknowledged everything you were asked to read." }
                } @else {
                    ul.results {
                        @for t in &to_read {
                            li {
                                a href={ "/items/" (t.view.item.id.to_hex()) "#reading-heading" } { (t.view.item.content.title) }
                                " — version " (t.request.version) ", by " (crate::query::diff::long_date(t.request.due))
                                @if t.overdue { " " strong { "(overdue)" } }
                            }
                        }
                    }
                }
            }
            p.lead { "Answers to your questions, replies where you have posted or that you watch, and changes to items you watch." }
            @if found.entries.is_empty() {
                p { "Nothing yet. Ask a question, take part in a discussion, or watch an item, and what follows comes here." }
            } @else {
                p { (found.unread) " new since you last looked." }
                ol.results { @for e in &found.entries { (entry_line(e)) } }
            }
            section aria-labelledby="watching-heading" {
                h2 #watching-heading { "What you watch" }
                @if watched_threads.is_empty() && watched_items.is_empty() {
                    p { "Nothing. Use “Watch this thread” or “Watch this item for changes” on its page." }
                } @else {
                    ul.list {
                        @for (t, title) in &watched_threads {
                            li { a href={ "/threads/" (t.to_hex()) } { (title) } " "
                                (watch_button(&s, "thread", &t.to_hex(), false, "/inbox", "Stop watching")) }
                        }
                        @for (i, title) in &watched_items {
                            li { a href={ "/items/" (i.to_hex()) } { (title) } " "
                                (watch_button(&s, "item", &i.to_hex(), false, "/inbox", "Stop watching")) }
                        }
                    }
                }
            }
        };
        Ok(layout(site, Section::None, "Your inbox", content))
    })
    .await
}

async fn watch(State(state): State<WebState>, Form(fields): Form<Fields>) -> Response {
    let (Some(s), Some(accounts)) = (current(), state.accounts.clone()) else {
        return see_other("/signin");
    };
    if let Some(r) = refused(&s, &fields) {
        return r;
    }
    let on = match field(&fields, "watch") {
        "on" => true,
        "off" => false,
        other => {
            return error_page(
                None,
                &WebError::BadRequest(format!("watch must be on or off, not {other:?}")),
            );
        }
    };
    let id = field(&fields, "id").to_string();
    let what = field(&fields, "what").to_string();
    let back = safe_next(field(&fields, "next"));
    // Only what this node holds can be watched.
    let target = state
        .read(move |lib| match what.as_str() {
            "thread" => {
                let t: EnvelopeId = id
                    .parse()
                    .map_err(|_| WebError::NotFound(format!("there is no thread {id:?}")))?;
                lib.forum()
                    .thread(&t)
                    .map(|_| Target::Thread(t))
                    .ok_or_else(|| WebError::NotFound(format!("there is no thread {id:?}")))
            }
            "item" => Ok(Target::Item(super::item_id(lib, &id)?)),
            other => Err(WebError::BadRequest(format!(
                "what must be thread or item, not {other:?}"
            ))),
        })
        .await;
    let target = match target {
        Ok(t) => t,
        Err(e) => return error_page(None, &e),
    };
    let now = now_ms();
    let login = s.login.clone();
    // Written through to disk: off the async runtime.
    let kept = tokio::task::spawn_blocking(move || {
        let mut full = false;
        let kept = accounts.update_inbox(&login, |st| {
            let w = &mut st.watching;
            let count = w.threads.len() + w.items.len();
            match (target, on) {
                (Target::Thread(t), true) if !w.threads.contains_key(&t) => {
                    if count >= MAX_WATCHED {
                        full = true;
                    } else {
                        w.threads.insert(t, now);
                    }
                }
                (Target::Item(i), true) if !w.items.contains_key(&i) => {
                    if count >= MAX_WATCHED {
                        full = true;
                    } else {
                        w.items.insert(i, now);
                    }
                }
                (Target::Thread(t), false) => {
                    w.threads.remove(&t);
                }
                (Target::Item(i), false) => {
                    w.items.remove(&i);
                }
                _ => {}
            }
        });
        (full, kept)
    })
    .await;
    let (full, kept) = match kept {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "the watch task failed");
            return error_page(None, &WebError::Internal(super::INTERNAL_MESSAGE.into()));
        }
    };
    if full {
        return error_page(
            None,
            &WebError::BadRequest(format!(
                "You watch {MAX_WATCHED} threads and items already; stop watching some on your inbox page first."
            )),
        );
    }
    if let Err(e) = kept {
        tracing::error!(error = %e, "could not keep what a person watches");
        return error_page(None, &WebError::Internal(super::INTERNAL_MESSAGE.into()));
    }
    see_other(&back)
}

#[derive(Clone, Copy)]
enum Target {
    Thread(EnvelopeId),
    Item(ItemId),
}

/// What the signed-in person watches (nothing when no one is). May read
/// their file: call it on the blocking pool (inside a page's render).
pub(super) fn watching_of(accounts: Option<&Accounts>, s: Option<&Session>) -> Watching {
    match (s, accounts) {
        (Some(s), Some(a)) => a.inbox_state(&s.login).watching,
        _ => Watching::default(),
    }
}
