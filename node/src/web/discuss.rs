//! Discussion on the web page: topics of their own ("current issues") or
//! about a library item ("Discuss this item"), editing and withdrawing
//! one's own posts (an edit is a new signed version; every version stays
//! readable), and the moderation log.
//!
//! Hiding a post is a site lead's or a network admin's act, signed with
//! their key from the CLI (`gatehouse hide`); the page shows what was
//! hidden, by whom and why.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use gatehouse_protocol::id::{EnvelopeId, ItemId};
use gatehouse_protocol::post::{Action, Edit, MAX_TITLE_BYTES, Topic};
use gatehouse_protocol::vocab::Pathway;
use maud::{Markup, PreEscaped, html};

use super::auth::{Session, current};
use super::forum::{
    Fields, account_bar, csrf_field, error_at, field, now_ms, post_for, refused, see_other,
    thread_id, with_status,
};
use super::pages::{Section, Site, error_page, item_link, layout, title_of};
use super::{WebError, WebState};
use crate::error::LibraryError;
use crate::projection::markdown;
use crate::query::ReadView;
use crate::query::forum::{PostView, ThreadView};

/// The discussion routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/discussions/new", get(topic_form))
        .route("/discussions", axum::routing::post(start_topic))
        .route("/posts/{id}/edit", get(edit_form).post(edit))
        .route("/posts/{id}/withdraw", get(withdraw_form).post(withdraw))
        .route("/moderation", get(moderation))
}

/// What a form held, to show it again with an error at its field.
#[derive(Default, Clone)]
struct Draft {
    title: String,
    body: String,
    pathways: Vec<String>,
    /// The item a topic is about (its full id).
    about: Option<ItemId>,
    error: Option<(String, &'static str)>,
}

impl Draft {
    fn error_for(&self, f: &str) -> Option<String> {
        self.error
            .as_ref()
            .filter(|(_, at)| *at == f)
            .map(|(m, _)| m.clone())
    }
}

fn error_summary(draft: &Draft) -> Markup {
    html! {
        @if let Some((msg, at)) = &draft.error {
            div.error-summary role="alert" aria-labelledby="error-title" tabindex="-1" {
                h2 #error-title { "There is a problem" }
                p { a href={ "#" (at) } { (msg) } }
            }
        }
    }
}

fn title_field(draft: &Draft, label: &str) -> Markup {
    let err = draft.error_for("title");
    html! {
        div.field {
            label.label for="title" { (label) }
            @if let Some(e) = &err { p.field-error #title-error { (e) } }
            input.input #title name="title" value=(draft.title) maxlength="300" required
                aria-describedby=[err.as_ref().map(|_| "title-error")];
        }
    }
}

fn body_field(draft: &Draft, label: &str, hint: &str) -> Markup {
    let err = draft.error_for("body");
    html! {
        div.field {
            label.label for="body" { (label) }
            div.hint #body-hint { (hint) }
            @if let Some(e) = &err { p.field-error #body-error { (e) } }
            textarea.input #body name="body" rows="10" required
                aria-describedby={ "body-hint" @if err.is_some() { " body-error" } } { (draft.body) }
        }
    }
}

/// The checks every title and body pass before they are signed; the
/// library's own checks (identifiers, sizes) follow.
fn check_text(draft: &mut Draft, with_title: bool) {
    if with_title && draft.title.is_empty() {
        draft.error = Some(("Give the discussion a title.".into(), "title"));
    } else if with_title
        && (draft.title.len() > MAX_TITLE_BYTES || draft.title.contains(['\n', '\r']))
    {
        draft.error = Some((
            "Keep the title to one line of at most 300 characters.".into(),
            "title",
        ));
    } else if draft.body.trim().is_empty() {
        draft.error = Some(("Write something before sending it.".into(), "body"));
    }
}

fn topic_page(s: &Session, site: &Site, draft: &Draft, about: Option<&(ItemId, String)>) -> Markup {
    let content = html! {
        (account_bar(Some(s), true))
        h1 { "Start a discussion" }
        (error_summary(draft))
        @if let Some((id, title)) = about {
            p.lead { "About " (item_link(id, title)) "." }
        } @else {
            p.lead { "A current issue, a change in practice, a question of policy: for every establishment in the network to discuss." }
        }
        p { "Signed with your name, role and site. "
            strong { "Never include anything that identifies a patient" } ": no names, NHS, CHI or prison numbers." }
        form action="/discussions" method="post" novalidate {
            (csrf_field(s))
            @if let Some((id, _)) = about {
                input type="hidden" name="about" value=(id.to_hex());
            }
            (title_field(draft, "Title"))
            (body_field(draft, "What you want to discuss", "Markdown works: *emphasis*, lists, links."))
            fieldset.field #pathways {
                legend.label { "Care pathways it concerns (optional)" }
                @if let Some(e) = draft.error_for("pathways") { p.field-error { (e) } }
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
            button.button type="submit" { "Start the discussion" }
        }
    };
    layout(site, Section::Questions, "Start a discussion", content)
}

/// The item a topic form names, with its title; an item this node does
/// not hold is a 404.
fn about_item(lib: &ReadView, text: &str) -> Result<Option<(ItemId, String)>, WebError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let id = super::item_id(lib, text.trim())?;
    Ok(Some((id, title_of(lib, &id))))
}

async fn topic_form(State(state): State<WebState>, Query(q): Query<Fields>) -> Response {
    let about = field(&q, "about").to_string();
    let Some(s) = current() else {
        let back = if about.is_empty() {
            "/discussions/new".to_string()
        } else {
            format!("/discussions/new?about={about}")
        };
        let query = serde_urlencoded::to_string([("next", back)]).unwrap_or_default();
        return see_other(&format!("/signin?{query}"));
    };
    if let Some((k, _)) = q.iter().find(|(k, _)| k != "about") {
        return error_page(
            None,
            &WebError::BadRequest(format!("unknown parameter {k:?}; expected about")),
        );
    }
    super::pages::render(&state, move |lib, site| {
        let about = about_item(lib, &about)?;
        let draft = Draft {
            about: about.as_ref().map(|(id, _)| *id),
            ..Draft::default()
        };
        Ok(topic_page(&s, site, &draft, about.as_ref()))
    })
    .await
}

async fn start_topic(State(state): State<WebState>, Form(fields): Form<Fields>) -> Response {
    let Some(s) = current() else {
        return see_other("/signin?next=/discussions/new");
    };
    if let Some(r) = refused(&s, &fields) {
        return r;
    }
    let about_text = field(&fields, "about").to_string();
    let about = match state.read(move |lib| about_item(lib, &about_text)).await {
        Ok(a) => a,
        Err(e) => return error_page(None, &e),
    };
    let mut draft = Draft {
        title: field(&fields, "title").trim().to_string(),
        body: field(&fields, "body").to_string(),
        pathways: fields
            .iter()
            .filter(|(k, _)| k == "pathway")
            .map(|(_, v)| v.clone())
            .collect(),
        about: about.as_ref().map(|(id, _)| *id),
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
    if draft.error.is_none() {
        check_text(&mut draft, true);
    }
    if draft.error.is_none() {
        let action = Action::Topic(Topic {
            title: draft.title.clone(),
            body: draft.body.clone(),
            about: draft.about,
            pathways,
        });
        match post_for(&state, &s, action).await {
            Ok(id) => return see_other(&format!("/threads/{}", id.to_hex())),
            Err(e) => draft.error = Some(error_at(&e)),
        }
    }
    let response = super::pages::render(&state, move |_, site| {
        Ok(topic_page(&s, site, &draft, about.as_ref()))
    })
    .await;
    with_status(response, StatusCode::UNPROCESSABLE_ENTITY)
}

/// A post and its thread, found from the post's id.
fn find_post(lib: &ReadView, text: &str) -> Result<(ThreadView, PostView), WebError> {
    let id = thread_id(text)?;
    let missing = || WebError::NotFound(format!("there is no post {text:?}"));
    let thread = lib.forum().thread_of(&id).ok_or_else(missing)?;
    let view = lib.thread(&thread, now_ms()).map_err(|e| match e {
        LibraryError::UnknownPost(_) => missing(),
        other => other.into(),
    })?;
    let post = view
        .posts
        .iter()
        .find(|p| p.id == id)
        .cloned()
        .ok_or_else(missing)?;
    Ok((view, post))
}

/// The post, if the signed-in person may still change it: theirs, and
/// neither withdrawn nor hidden.
fn own_post(lib: &ReadView, s: &Session, text: &str) -> Result<(ThreadView, PostView), WebError> {
    let (thread, post) = find_post(lib, text)?;
    if post.author.key != s.key.public() {
        return Err(WebError::BadRequest(
            "Only the person who wrote a post may edit or withdraw it.".into(),
        ));
    }
    if post.retracted || post.hidden.is_some() {
        return Err(WebError::BadRequest(
            "This post has been withdrawn or hidden; it can no longer be changed.".into(),
        ));
    }
    Ok((thread, post))
}

/// For a form acting on one's own post (`/posts/ID/ACTION`): the
/// signed-in person, the thread and the post, or the response that turns
/// the form away (not signed in, a foreign token, not theirs to change).
async fn own_post_form(
    state: &WebState,
    id: &str,
    fields: &Fields,
    action: &str,
) -> Result<(Session, ThreadView, PostView), Response> {
    let Some(s) = current() else {
        return Err(see_other(&format!("/signin?next=/posts/{id}/{action}")));
    };
    if let Some(r) = refused(&s, fields) {
        return Err(r);
    }
    let (s2, id2) = (s.clone(), id.to_string());
    match state.read(move |lib| own_post(lib, &s2, &id2)).await {
        Ok((thread, post)) => Ok((s, thread, post)),
        Err(e) => Err(error_page(None, &e)),
    }
}

fn edit_page(
    s: &Session,
    site: &Site,
    thread: &ThreadView,
    post: &PostView,
    draft: &Draft,
) -> Markup {
    let opening = post.id == thread.summary.id;
    let content = html! {
        (account_bar(Some(s), true))
        p { a href={ "/threads/" (thread.summary.id.to_hex()) "#post-" (post.id.to_hex()) } { "Back to the thread" } }
        h1 { "Edit your post" }
        (error_summary(draft))
        p { "Your edit is signed as a new version. Everyone can still read the earlier versions." }
        form action={ "/posts/" (post.id.to_hex()) "/edit" } method="post" novalidate {
            (csrf_field(s))
            @if opening { (title_field(draft, "Title")) }
            (body_field(draft, "Text", "Markdown works. Never include anything that identifies a patient."))
            button.button type="submit" { "Save the new version" }
        }
    };
    layout(site, Section::Questions, "Edit your post", content)
}

async fn edit_form(State(state): State<WebState>, Path(id): Path<String>) -> Response {
    let Some(s) = current() else {
        return see_other(&format!("/signin?next=/posts/{id}/edit"));
    };
    super::pages::render(&state, move |lib, site| {
        let (thread, post) = own_post(lib, &s, &id)?;
        let draft = Draft {
            title: thread.summary.title.clone(),
            body: post.body.clone().unwrap_or_default(),
            ..Draft::default()
        };
        Ok(edit_page(&s, site, &thread, &post, &draft))
    })
    .await
}

async fn edit(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let (s, thread, post) = match own_post_form(&state, &id, &fields, "edit").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let opening = post.id == thread.summary.id;
    let mut draft = Draft {
        title: field(&fields, "title").trim().to_string(),
        body: field(&fields, "body").to_string(),
        ..Draft::default()
    };
    check_text(&mut draft, opening);
    if draft.error.is_none() {
        let action = Action::Edit(Edit {
            post: post.id,
            title: opening.then(|| draft.title.clone()),
            body: draft.body.clone(),
        });
        match post_for(&state, &s, action).await {
            Ok(_) => {
                return see_other(&format!(
                    "/threads/{}#post-{}",
                    thread.summary.id.to_hex(),
                    post.id.to_hex()
                ));
            }
            Err(e) => draft.error = Some(error_at(&e)),
        }
    }
    let response = super::pages::render(&state, move |_, site| {
        Ok(edit_page(&s, site, &thread, &post, &draft))
    })
    .await;
    with_status(response, StatusCode::UNPROCESSABLE_ENTITY)
}

async fn withdraw_form(State(state): State<WebState>, Path(id): Path<String>) -> Response {
    let Some(s) = current() else {
        return see_other(&format!("/signin?next=/posts/{id}/withdraw"));
    };
    super::pages::render(&state, move |lib, site| {
        let (thread, post) = own_post(lib, &s, &id)?;
        let back = format!(
            "/threads/{}#post-{}",
            thread.summary.id.to_hex(),
            post.id.to_hex()
        );
        let content = html! {
            (account_bar(Some(&s), true))
            h1 { "Withdraw your post?" }
            p { "Withdrawn, it shows in the thread as “Withdrawn by its author”, at every site. "
                "It cannot be put back; you can write a new post instead." }
            @if let Some(body) = &post.body {
                div.body.quoted { (PreEscaped(markdown::render(body, 2))) }
            }
            form action={ "/posts/" (post.id.to_hex()) "/withdraw" } method="post" {
                (csrf_field(&s))
                button.button.button-warning type="submit" { "Withdraw the post" }
                " "
                a href=(back) { "Keep it" }
            }
        };
        Ok(layout(
            site,
            Section::Questions,
            "Withdraw your post",
            content,
        ))
    })
    .await
}

async fn withdraw(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let (s, thread, post) = match own_post_form(&state, &id, &fields, "withdraw").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match post_for(&state, &s, Action::Retract { post: post.id }).await {
        Ok(_) => see_other(&format!(
            "/threads/{}#post-{}",
            thread.summary.id.to_hex(),
            post.id.to_hex()
        )),
        Err(e) => error_page(None, &WebError::BadRequest(e.to_string())),
    }
}

async fn moderation(State(state): State<WebState>) -> Response {
    let me = current();
    let can_sign_in = state.accounts.is_some();
    super::pages::render(&state, move |lib, site| {
        let log = lib.moderation_log();
        let content = html! {
            (account_bar(me.as_ref(), can_sign_in))
            h1 { "Moderation log" }
            p.lead { "Every post hidden in " (site.network) ", by whom and why. "
                "A site lead hides posts by their own staff; a network admin may hide any post. "
                "Hidden posts stay in the signed history." }
            @if log.is_empty() {
                p { "No post has been hidden." }
            } @else {
                table.table {
                    caption.visually-hidden { "Hidden posts, newest first" }
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Hidden by" }
                        th scope="col" { "Post" }
                        th scope="col" { "Reason" }
                    } }
                    tbody {
                        @for m in &log {
                            tr {
                                td { (super::pages::date_ms(m.created_ms)) }
                                td { (m.by.label()) }
                                td { a href={ "/threads/" (m.thread.to_hex()) "#post-" (m.post.to_hex()) } {
                                    "post " (m.post.short()) } }
                                td { (m.reason) }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout(site, Section::Questions, "Moderation log", content))
    })
    .await
}

/// The versions of a post before the current one, for its card.
pub(super) fn earlier_versions(p: &PostView) -> Markup {
    let earlier = p.versions.len().saturating_sub(1);
    html! {
        @if earlier > 0 {
            details.versions {
                summary { "Edited " (super::pages::date_ms(p.versions[earlier].created_ms))
                    ": see " (earlier) " earlier " @if earlier == 1 { "version" } @else { "versions" } }
                ol {
                    @for v in &p.versions[..earlier] {
                        li {
                            p.post-meta { "Version of " (super::pages::date_ms(v.created_ms)) }
                            @if let Some(t) = &v.title { p { strong { (t) } } }
                            div.body { (PreEscaped(markdown::render(&v.body, 3))) }
                        }
                    }
                }
            }
        }
    }
}

/// The start of a post's text, for a quotation.
pub(super) fn excerpt(p: &PostView) -> String {
    let text = p
        .body
        .as_deref()
        .map(markdown::plain_text)
        .unwrap_or_default();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(240) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The post of `thread` that `id` names.
pub(super) fn quoted<'a>(thread: &'a ThreadView, id: &EnvelopeId) -> Option<&'a PostView> {
    thread.posts.iter().find(|p| p.id == *id)
}
