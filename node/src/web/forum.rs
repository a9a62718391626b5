//! The forum pages: asking the network, answering, and signing in.
//!
//! Reading is open to whoever may read the page; writing needs a signed-in
//! person (see [`super::auth`]), whose own key signs each post. Every form
//! that changes anything is a POST carrying the session's CSRF token;
//! after a post the browser is sent on with 303 (so a reload does not post
//! twice). A refused post (an identifier, a missing field) comes back as
//! the form, with what was written kept and the error at the top and by
//! the field.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::post::{Action, Post, Question, Reply, Urgency, Voice};
use gatehouse_protocol::vocab::Pathway;
use maud::{Markup, PreEscaped, html};

use super::auth::{Session, SignInError, cleared_cookie, current, same_token, session_cookie};
use super::pages::{Section, error_page, layout, page};
use super::{ClientAddr, WebError, WebState};
use crate::error::LibraryError;
use crate::projection::markdown;
use crate::query::forum::{PostView, ThreadList, ThreadQuery, ThreadSummary, ThreadView};

pub(super) type Fields = Vec<(String, String)>;

pub(super) fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The forum's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/questions", get(questions).post(ask))
        .route("/questions/ask", get(ask_form))
        .route("/threads/{id}", get(thread))
        .route("/threads/{id}/reply", post(reply))
        .route("/threads/{id}/resolve", post(resolve))
        .route("/posts/{id}/helpful", post(helpful))
        .route("/signin", get(sign_in_form).post(sign_in))
        .route("/signout", post(sign_out))
        .route("/account", get(account).post(change_password))
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The bar at the top of forum pages: who is signed in.
pub(super) fn account_bar(s: Option<&Session>, can_sign_in: bool) -> Markup {
    html! {
        div.account-bar {
            @if let Some(s) = s {
                span { "Signed in as " strong { (s.name) } }
                " "
                a href="/account" { "Your account" }
                form.inline-form action="/signout" method="post" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    button.link-button type="submit" { "Sign out" }
                }
            } @else if can_sign_in {
                a href="/signin" { "Sign in" } " to ask or answer."
            } @else {
                span { "Posting is not available on this page." }
            }
        }
    }
}

pub(super) fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// The refusal of a form whose CSRF token is not the session's.
pub(super) fn refused(s: &Session, fields: &Fields) -> Option<Response> {
    (!same_token(field(fields, "csrf"), &s.csrf)).then(|| {
        forbidden(
            "This form has expired or did not come from this page. Go back, reload it and try again.",
        )
    })
}

pub(super) fn forbidden(msg: &str) -> Response {
    let content = html! {
        h1 { "This form could not be sent" }
        div.error-summary role="alert" { p { (msg) } }
        p { a href="/questions" { "Go to the questions" } }
    };
    page(
        StatusCode::FORBIDDEN,
        layout(
            &super::pages::fallback_site(),
            Section::Questions,
            "Form refused",
            content,
        ),
    )
}

pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

pub(super) fn thread_link(t: &ThreadSummary) -> Markup {
    html! { a href={ "/threads/" (t.id.to_hex()) } { (t.title) } }
}

fn state_badge(t: &ThreadSummary) -> Markup {
    let (class, label) = if t.resolved_by.is_some() {
        ("badge badge-published", "Resolved")
    } else if t.overdue {
        ("badge badge-withdrawn", "Waiting too long")
    } else if t.kind == "question" {
        ("badge badge-draft", "Open")
    } else {
        ("badge badge-superseded", "Discussion")
    };
    html! { strong class=(class) { (label) } }
}

const LISTS: [(ThreadList, &str, &str); 5] = [
    (ThreadList::Open, "open", "Open questions"),
    (ThreadList::Overdue, "overdue", "Waiting too long"),
    (ThreadList::Answered, "answered", "Answered"),
    (ThreadList::Discussions, "discussions", "Discussions"),
    (ThreadList::Mine, "mine", "Mine"),
];

async fn questions(State(state): State<WebState>, Query(pairs): Query<Fields>) -> Response {
    let me = current();
    let can_sign_in = state.accounts.is_some();
    let mut list = ThreadList::Open;
    let mut pathways = Vec::new();
    for (k, v) in &pairs {
        match k.as_str() {
            "list" => match v.parse() {
                Ok(l) => list = l,
                Err(e) => return error_page(None, &WebError::BadRequest(e)),
            },
            "pathway" if !v.is_empty() => match v.parse::<Pathway>() {
                Ok(p) => pathways.push(p),
                Err(e) => return error_page(None, &WebError::BadRequest(e.to_string())),
            },
            "pathway" => {}
            other => {
                return error_page(
                    None,
                    &WebError::BadRequest(format!(
                        "unknown parameter {other:?}; expected list, pathway"
                    )),
                );
            }
        }
    }
    let person = me.as_ref().map(|s| s.key.public());
    super::pages::render(&state, move |lib, site| {
        let threads = lib.threads(
            &ThreadQuery {
                list,
                pathways: pathways.clone(),
                person,
                about: None,
                limit: 50,
            },
            now_ms(),
        );
        let content = html! {
            (account_bar(me.as_ref(), can_sign_in))
            h1 { "Ask the network" }
            p.lead { "Clinical questions from staff across " (site.network) ", and what other sites answered." }
            @if me.is_some() {
                p {
                    a.button href="/questions/ask" { "Ask a question" } " "
                    a.button.button-secondary href="/discussions/new" { "Start a discussion" }
                }
            }
            nav aria-label="Lists of questions" {
                ul.tabs {
                    @for (l, slug, label) in LISTS {
                        @if l != ThreadList::Mine || me.is_some() {
                            li {
                                @if l == list {
                                    a href={ "/questions?list=" (slug) } aria-current="page" { (label) }
                                } @else {
                                    a href={ "/questions?list=" (slug) } { (label) }
                                }
                            }
                        }
                    }
                }
            }
            @if threads.is_empty() {
                p { "Nothing here yet." }
            } @else {
                ol.results {
                    @for t in &threads {
                        li.result {
                            h2.result-title { (thread_link(t)) }
                            p.result-meta {
                                (state_badge(t)) " "
                                @if let Some(u) = t.urgency { span { (u.label()) } " · " }
                                span { (t.author.label()) } " · "
                                span { (t.replies) " " @if t.replies == 1 { "reply" } @else { "replies" } } " · "
                                span { "asked " (super::pages::date_ms(t.created_ms)) }
                            }
                        }
                    }
                }
            }
            p.muted { a href="/moderation" { "Moderation log" } ": posts hidden, by whom and why." }
        };
        Ok(layout(site, Section::Questions, "Ask the network", content))
    })
    .await
}

/// What an ask form held, to show it again with an error.
#[derive(Default, Clone)]
struct AskDraft {
    title: String,
    body: String,
    pathways: Vec<String>,
    urgency: String,
    error: Option<(String, &'static str)>,
}

fn ask_page(s: &Session, site: &super::pages::Site, draft: &AskDraft) -> Markup {
    let err_for = |f: &str| {
        draft
            .error
            .as_ref()
            .filter(|(_, at)| *at == f)
            .map(|(m, _)| m.clone())
    };
    let content = html! {
        (account_bar(Some(s), true))
        h1 { "Ask the network" }
        @if let Some((msg, at)) = &draft.error {
            div.error-summary role="alert" aria-labelledby="error-title" tabindex="-1" {
                h2 #error-title { "There is a problem" }
                p { a href={ "#" (at) } { (msg) } }
            }
        }
        p { "Your question goes to every establishment in the network, signed with your name, role and site. "
            strong { "Never include anything that identifies a patient" } ": no names, NHS, CHI or prison numbers." }
        form action="/questions" method="post" novalidate {
            (csrf_field(s))
            div.field {
                label.label for="title" { "Your question, in one line" }
                @if let Some(e) = err_for("title") { p.field-error #title-error { (e) } }
                input.input #title name="title" value=(draft.title) maxlength="300" required
                    aria-describedby=[err_for("title").map(|_| "title-error")];
            }
            div.field {
                label.label for="body" { "The detail" }
                div.hint #body-hint { "What you have tried, the setting, what you need. Markdown works: *emphasis*, lists, links." }
                @if let Some(e) = err_for("body") { p.field-error #body-error { (e) } }
                textarea.input #body name="body" rows="10" required
                    aria-describedby={ "body-hint" @if err_for("body").is_some() { " body-error" } } { (draft.body) }
            }
            fieldset.field #pathways {
                legend.label { "Care pathways it concerns" }
                @if let Some(e) = err_for("pathways") { p.field-error { (e) } }
                div.checkboxes {
                    @for p in Pathway::ALL {
                        div.checkbox {
                            input type="checkbox" id={ "pathway-" (p.slug()) } name="pathway" value=(p.slug())
                                checked[draft.pathways.iter().any(|d| d == p.slug())];
                            label for={ "pathway-" (p.slug()) } { (p.label()) }
                        }
                    }
                }
            }
            div.field {
                label.label for="urgency" { "How soon do you need an answer?" }
                select.input #urgency name="urgency" {
                    @for u in Urgency::ALL {
                        option value=(u.slug()) selected[draft.urgency == u.slug()] { (u.label()) }
                    }
                }
            }
            button.button type="submit" { "Send the question" }
        }
    };
    layout(site, Section::Questions, "Ask the network", content)
}

async fn ask_form(State(state): State<WebState>) -> Response {
    let Some(s) = current() else {
        return see_other("/signin?next=/questions/ask");
    };
    super::pages::render(&state, move |_, site| {
        Ok(ask_page(&s, site, &AskDraft::default()))
    })
    .await
}

/// Where a refused post's error belongs in its form.
pub(super) fn error_at(e: &LibraryError) -> (String, &'static str) {
    match e {
        LibraryError::IdentifierInPost { field, .. } => (
            e.to_string(),
            if field.starts_with("title") {
                "title"
            } else {
                "body"
            },
        ),
        other => (other.to_string(), "body"),
    }
}

/// Signs and stores a post for the signed-in person, then announces it.
pub(super) async fn post_for(
    state: &WebState,
    s: &Session,
    action: Action,
) -> Result<EnvelopeId, LibraryError> {
    let Some(accounts) = state.accounts.clone() else {
        return Err(LibraryError::BadPost(
            "posting is not available on this node".into(),
        ));
    };
    let key = s.key.clone();
    let (library, net) = accounts.library();
    let (library, net) = (library.clone(), net.cloned());
    let done = tokio::task::spawn_blocking(move || {
        let mut lib = library.lock().unwrap_or_else(|p| p.into_inner());
        let post = Post {
            voice: Voice::Establishment(lib.config().establishment),
            action,
        };
        let id = lib.post_as(&key, post)?;
        Ok::<_, LibraryError>((id, lib.take_outbox()))
    })
    .await
    .map_err(|e| LibraryError::Corrupt(format!("posting task failed: {e}")))?;
    let (id, fresh) = done?;
    if let Some(net) = net {
        net.announce(fresh).await;
    }
    Ok(id)
}

async fn ask(State(state): State<WebState>, Form(fields): Form<Fields>) -> Response {
    let Some(s) = current() else {
        return see_other("/signin?next=/questions/ask");
    };
    if let Some(r) = refused(&s, &fields) {
        return r;
    }
    let mut draft = AskDraft {
        title: field(&fields, "title").trim().to_string(),
        body: field(&fields, "body").to_string(),
        pathways: fields
            .iter()
            .filter(|(k, _)| k == "pathway")
            .map(|(_, v)| v.clone())
            .collect(),
        urgency: field(&fields, "urgency").to_string(),
        error: None,
    };
    let mut pathways: Vec<Pathway> = Vec::new();
    for p in &draft.pathways {
        match p.parse() {
            Ok(p) => pathways.push(p),
            Err(e) => draft.error = Some((format!("{e}"), "pathways")),
        }
    }
    gatehouse_protocol::post::canonical(&mut pathways);
    let urgency = draft.urgency.parse::<Urgency>().unwrap_or(Urgency::Routine);
    if draft.title.is_empty() {
        draft.error = Some(("Write your question in one line.".into(), "title"));
    } else if draft.title.chars().count() > 300 || draft.title.contains(['\n', '\r']) {
        draft.error = Some((
            "Keep the question to one line of at most 300 characters.".into(),
            "title",
        ));
    } else if draft.body.trim().is_empty() {
        draft.error = Some(("Give the detail of your question.".into(), "body"));
    } else if pathways.is_empty() && draft.error.is_none() {
        draft.error = Some(("Choose at least one care pathway.".into(), "pathways"));
    }
    if draft.error.is_none() {
        let action = Action::Ask(Question {
            title: draft.title.clone(),
            body: draft.body.clone(),
            pathways,
            settings: Vec::new(),
            urgency,
            links: Vec::new(),
        });
        match post_for(&state, &s, action).await {
            Ok(id) => return see_other(&format!("/threads/{}", id.to_hex())),
            Err(e) => draft.error = Some(error_at(&e)),
        }
    }
    let draft2 = draft.clone();
    let response =
        super::pages::render(&state, move |_, site| Ok(ask_page(&s, site, &draft2))).await;
    with_status(response, StatusCode::UNPROCESSABLE_ENTITY)
}

pub(super) fn with_status(mut r: Response, status: StatusCode) -> Response {
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

fn post_card(p: &PostView, s: Option<&Session>, thread: &ThreadView, is_asker: bool) -> Markup {
    let t = &thread.summary;
    let thread_hex = t.id.to_hex();
    let live = p.hidden.is_none() && !p.retracted;
    html! {
        article.post id={ "post-" (p.id.to_hex()) } {
            p.post-meta {
                strong { (p.author.label()) } " · " (super::pages::date_ms(p.created_ms))
            }
            @if let Some(q) = p.quoting.and_then(|q| super::discuss::quoted(thread, &q)) {
                blockquote.quote {
                    p.post-meta { a href={ "#post-" (q.id.to_hex()) } { (q.author.label()) " wrote" } ":" }
                    @if q.hidden.is_some() || q.retracted {
                        p { "(a post no longer shown)" }
                    } @else {
                        p { (super::discuss::excerpt(q)) }
                    }
                }
            }
            @if p.resolves { p { strong.badge.badge-published { "This answer resolved the question" } } }
            @if let Some(h) = &p.hidden {
                p.hidden-post { "Hidden by " (h.by.label()) ": " (h.reason) }
            } @else if p.retracted {
                p.hidden-post { "Withdrawn by its author." }
            } @else if let Some(body) = &p.body {
                div.body { (PreEscaped(markdown::render(body, 2))) }
            }
            @if live { (super::discuss::earlier_versions(p)) }
            @if live {
                p.post-actions {
                    @if p.id != t.id && p.helpful > 0 { span { (p.helpful) " found this helpful" } " " }
                    @if let Some(s) = s {
                        a href={ "/threads/" (thread_hex) "?quote=" (p.id.to_hex()) "#reply" } { "Quote" } " "
                        @if s.key.public() == p.author.key {
                            a href={ "/posts/" (p.id.to_hex()) "/edit" } { "Edit" } " "
                            a href={ "/posts/" (p.id.to_hex()) "/withdraw" } { "Withdraw" } " "
                        } @else if p.id != t.id {
                            form.inline-form action={ "/posts/" (p.id.to_hex()) "/helpful" } method="post" {
                                (csrf_field(s))
                                button.link-button type="submit" { "Mark helpful" }
                            }
                        }
                        @if is_asker && t.kind == "question" && p.id != t.id && !p.resolves {
                            form.inline-form action={ "/threads/" (thread_hex) "/resolve" } method="post" {
                                (csrf_field(s))
                                input type="hidden" name="answer" value=(p.id.to_hex());
                                button.link-button type="submit" { "This resolved my question" }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn thread_id(text: &str) -> Result<EnvelopeId, WebError> {
    text.parse::<EnvelopeId>()
        .map_err(|_| WebError::NotFound(format!("there is no thread {text:?}")))
}

async fn thread(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    let me = current();
    let can_sign_in = state.accounts.is_some();
    let mut quote = None;
    for (k, v) in &q {
        match k.as_str() {
            "quote" => match thread_id(v) {
                Ok(p) => quote = Some(p),
                Err(e) => return error_page(None, &e),
            },
            other => {
                return error_page(
                    None,
                    &WebError::BadRequest(format!("unknown parameter {other:?}; expected quote")),
                );
            }
        }
    }
    let accounts = state.accounts.clone();
    super::pages::render(&state, move |lib, site| {
        let watching = super::inbox::watching_of(accounts.as_deref(), me.as_ref());
        let id = thread_id(&id)?;
        let t = lib.thread(&id, now_ms()).map_err(|e| match e {
            LibraryError::UnknownPost(_) => WebError::NotFound(format!("there is no thread {id}")),
            other => other.into(),
        })?;
        let is_asker = me.as_ref().is_some_and(|s| s.key.public() == t.summary.author.key);
        let quoting = quote
            .and_then(|q| super::discuss::quoted(&t, &q))
            .filter(|q| q.hidden.is_none() && !q.retracted);
        let about = t.summary.about.map(|a| (a, super::pages::title_of(lib, &a)));
        let content = html! {
            (account_bar(me.as_ref(), can_sign_in))
            p { a href="/questions" { "All questions" } }
            h1 { (t.summary.title) }
            @if let Some((a, title)) = &about {
                p { "About " (super::pages::item_link(a, title)) }
            }
            @if let Some(s) = &me {
                p { (super::inbox::thread_watch(s, &watching, &id)) }
            }
            p.result-meta {
                (state_badge(&t.summary)) " "
                @if let Some(u) = t.summary.urgency { span { "Needed: " (u.label().to_lowercase()) } " · " }
                @for (i, p) in t.summary.pathways.iter().enumerate() {
                    @if i > 0 { ", " } (p.label())
                }
            }
            @for (i, p) in t.posts.iter().enumerate() {
                @if i == 1 { h2 { (t.posts.len() - 1) " " @if t.posts.len() == 2 { "reply" } @else { "replies" } } }
                (post_card(p, me.as_ref(), &t, is_asker))
            }
            @if let Some(s) = &me {
                h2 { @if t.summary.kind == "question" { "Answer this question" } @else { "Reply" } }
                form #reply-form action={ "/threads/" (id.to_hex()) "/reply" } method="post" {
                    (csrf_field(s))
                    @if let Some(q) = quoting {
                        input type="hidden" name="quoting" value=(q.id.to_hex());
                        blockquote.quote {
                            p.post-meta { "Quoting " (q.author.label()) ":" }
                            p { (super::discuss::excerpt(q)) }
                        }
                    }
                    div.field {
                        label.label for="reply" { @if t.summary.kind == "question" { "Your answer" } @else { "Your reply" } }
                        div.hint #reply-hint { "Signed with your name, role and site. Never include anything that identifies a patient." }
                        textarea.input #reply name="body" rows="8" required aria-describedby="reply-hint" {}
                    }
                    button.button type="submit" { "Send" }
                }
            }
        };
        Ok(layout(site, Section::Questions, &t.summary.title, content))
    })
    .await
}

async fn signed_in_post(
    state: &WebState,
    fields: &Fields,
    back: &str,
    anchor: Option<EnvelopeId>,
    action: impl FnOnce(&Session) -> Result<Action, WebError>,
) -> Response {
    let Some(s) = current() else {
        return see_other(&format!("/signin?next={back}"));
    };
    if let Some(r) = refused(&s, fields) {
        return r;
    }
    let action = match action(&s) {
        Ok(a) => a,
        Err(e) => return error_page(None, &e),
    };
    match post_for(state, &s, action).await {
        // Back to the post acted on (a new reply: itself).
        Ok(id) => see_other(&format!("{back}#post-{}", anchor.unwrap_or(id).to_hex())),
        Err(e @ LibraryError::IdentifierInPost { .. }) | Err(e @ LibraryError::BadPost(_)) => {
            error_page(None, &WebError::BadRequest(e.to_string()))
        }
        Err(LibraryError::UnknownPost(id)) => {
            error_page(None, &WebError::NotFound(format!("there is no post {id}")))
        }
        Err(e) => error_page(None, &e.into()),
    }
}

async fn reply(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let back = format!("/threads/{id}");
    let body = field(&fields, "body").to_string();
    let quoting = field(&fields, "quoting").to_string();
    signed_in_post(&state, &fields, &back, None, |_| {
        if body.trim().is_empty() {
            return Err(WebError::BadRequest(
                "Write your answer before sending it.".into(),
            ));
        }
        let quoting = match quoting.as_str() {
            "" => None,
            q => Some(thread_id(q)?),
        };
        Ok(Action::Reply(Reply {
            thread: thread_id(&id)?,
            quoting,
            body,
        }))
    })
    .await
}

async fn resolve(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let back = format!("/threads/{id}");
    let answer = match thread_id(field(&fields, "answer")) {
        Ok(a) => a,
        Err(e) => return error_page(None, &e),
    };
    signed_in_post(&state, &fields, &back, Some(answer), |_| {
        Ok(Action::Resolve {
            question: thread_id(&id)?,
            answer,
        })
    })
    .await
}

async fn helpful(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let post = match thread_id(&id) {
        Ok(p) => p,
        Err(e) => return error_page(None, &e),
    };
    let back = state.reads.latest().forum().thread_of(&post).map_or_else(
        || "/questions".to_string(),
        |t| format!("/threads/{}", t.to_hex()),
    );
    signed_in_post(&state, &fields, &back, Some(post), |_| {
        Ok(Action::Helpful { answer: post })
    })
    .await
}

pub(super) fn safe_next(next: &str) -> String {
    // Only a path on this node: never another site.
    if next.starts_with('/') && !next.starts_with("//") && !next.contains(['\\', '\r', '\n']) {
        next.to_string()
    } else {
        "/questions".to_string()
    }
}

fn sign_in_page(site: &super::pages::Site, next: &str, error: Option<&str>, login: &str) -> Markup {
    let content = html! {
        h1 { "Sign in" }
        @if let Some(e) = error {
            div.error-summary role="alert" tabindex="-1" { h2 { "There is a problem" } p { (e) } }
        }
        form action="/signin" method="post" {
            input type="hidden" name="next" value=(next);
            div.field {
                label.label for="login" { "Login" }
                input.input #login name="login" value=(login) autocomplete="username" required;
            }
            div.field {
                label.label for="password" { "Password" }
                input.input #password name="password" type="password" autocomplete="current-password" required;
            }
            button.button type="submit" { "Sign in" }
        }
        h2 { "First time here?" }
        p { "Your site lead gave you a set-up code. Use it once, with your login, and choose a password of at least 12 characters." }
        form action="/signin" method="post" {
            input type="hidden" name="next" value=(next);
            div.field {
                label.label for="setup-login" { "Login" }
                input.input #setup-login name="login" autocomplete="username" required;
            }
            div.field {
                label.label for="setup-code" { "Set-up code" }
                input.input #setup-code name="setup_code" autocomplete="one-time-code" required;
            }
            div.field {
                label.label for="new-password" { "Choose a password" }
                input.input #new-password name="password" type="password" autocomplete="new-password" minlength="12" required;
            }
            button.button type="submit" { "Set up and sign in" }
        }
    };
    layout(site, Section::Questions, "Sign in", content)
}

async fn sign_in_form(State(state): State<WebState>, Query(q): Query<Fields>) -> Response {
    if state.accounts.is_none() {
        return error_page(
            None,
            &WebError::NotFound("Signing in is not available on this page.".into()),
        );
    }
    let next = safe_next(field(&q, "next"));
    super::pages::render(&state, move |_, site| {
        Ok(sign_in_page(site, &next, None, ""))
    })
    .await
}

async fn sign_in(
    State(state): State<WebState>,
    headers: HeaderMap,
    ClientAddr(address): ClientAddr,
    Form(fields): Form<Fields>,
) -> Response {
    let Some(accounts) = state.accounts.clone() else {
        return error_page(
            None,
            &WebError::NotFound("Signing in is not available on this page.".into()),
        );
    };
    // A sign-in form posted from another site is refused (login CSRF):
    // by the browser's own word (Sec-Fetch-Site), or by an Origin naming
    // another host. (Under this page's no-referrer policy a browser sends
    // the Origin "null" for its own forms.)
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| *o != "null")
        .is_some_and(|o| o.split_once("://").is_none_or(|(_, rest)| rest != host));
    if matches!(fetch_site, "cross-site" | "same-site") || foreign_origin {
        return forbidden("This sign-in form did not come from this node's page.");
    }
    let next = safe_next(field(&fields, "next"));
    let login = field(&fields, "login").to_string();
    let password = field(&fields, "password").to_string();
    let code = Some(field(&fields, "setup_code").to_string()).filter(|c| !c.trim().is_empty());
    let who = login.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        accounts.sign_in(&who, &password, code.as_deref(), address)
    })
    .await
    .unwrap_or(Err(SignInError::Internal));
    match outcome {
        Ok(session) => {
            let secure = state.https || address.is_none_or(|a| a.is_loopback());
            let mut r = see_other(&next);
            if let Ok(v) = HeaderValue::from_str(&session_cookie(&session.token, secure)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            let msg = e.to_string();
            let status = match e {
                SignInError::Locked => StatusCode::TOO_MANY_REQUESTS,
                SignInError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNAUTHORIZED,
            };
            let r = super::pages::render(&state, move |_, site| {
                Ok(sign_in_page(site, &next, Some(&msg), &login))
            })
            .await;
            with_status(r, status)
        }
    }
}

async fn sign_out(State(state): State<WebState>, Form(fields): Form<Fields>) -> Response {
    if let Some(s) = current() {
        if let Some(r) = refused(&s, &fields) {
            return r;
        }
        if let Some(a) = &state.accounts {
            a.end(&s.token);
        }
    }
    let mut r = see_other("/questions");
    if let Ok(v) = HeaderValue::from_str(&cleared_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn account_page(site: &super::pages::Site, s: &Session, msg: Option<(&str, bool)>) -> Markup {
    let content = html! {
        (account_bar(Some(s), true))
        h1 { "Your account" }
        @if let Some((m, ok)) = msg {
            @if ok { div.notice role="status" { p { (m) } } }
            @else { div.error-summary role="alert" tabindex="-1" { h2 { "There is a problem" } p { (m) } } }
        }
        p { "Login: " strong { (s.login) } }
        h2 { "Change your password" }
        form action="/account" method="post" {
            (csrf_field(s))
            div.field {
                label.label for="old" { "Current password" }
                input.input #old name="old" type="password" autocomplete="current-password" required;
            }
            div.field {
                label.label for="new" { "New password (at least 12 characters)" }
                input.input #new name="new" type="password" autocomplete="new-password" minlength="12" required;
            }
            button.button type="submit" { "Change password" }
        }
    };
    layout(site, Section::Questions, "Your account", content)
}

async fn account(State(state): State<WebState>) -> Response {
    let Some(s) = current() else {
        return see_other("/signin?next=/account");
    };
    super::pages::render(&state, move |_, site| Ok(account_page(site, &s, None))).await
}

async fn change_password(State(state): State<WebState>, Form(fields): Form<Fields>) -> Response {
    let Some(s) = current() else {
        return see_other("/signin?next=/account");
    };
    if let Some(r) = refused(&s, &fields) {
        return r;
    }
    let Some(accounts) = state.accounts.clone() else {
        return see_other("/questions");
    };
    let (old, new) = (
        field(&fields, "old").to_string(),
        field(&fields, "new").to_string(),
    );
    let who = s.clone();
    let outcome = tokio::task::spawn_blocking(move || accounts.change_password(&who, &old, &new))
        .await
        .unwrap_or(Err(SignInError::Internal));
    let (msg, ok) = match outcome {
        Ok(()) => ("Your password is changed.".to_string(), true),
        Err(SignInError::Wrong) => ("The current password is not right.".to_string(), false),
        Err(e) => (e.to_string(), false),
    };
    let r = super::pages::render(&state, move |_, site| {
        Ok(account_page(site, &s, Some((&msg, ok))))
    })
    .await;
    if ok {
        r
    } else {
        with_status(r, StatusCode::UNPROCESSABLE_ENTITY)
    }
}
