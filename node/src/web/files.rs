//! An item's files on its page: listed with type and size, served as
//! downloads (their type, `Content-Disposition: attachment`, `nosniff`),
//! images shown inline only when this node's own establishment published
//! them; a file not here yet says so and offers to fetch it now.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gatehouse_protocol::attachment::Attachment;
use maud::{Markup, html};

use super::auth::{Session, current};
use super::forum::{Fields, csrf_field, refused, see_other};
use super::pages::error_page;
use super::{WebError, WebState, item_id};
use crate::blobs::BlobState;
use crate::query::{ItemView, ReadView};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/items/{id}/files/{name}", get(download))
        .route("/items/{id}/files/{name}/fetch", post(fetch))
}

/// A size as people read it.
pub fn size_text(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.0} KB", b / KIB)
    } else {
        format!("{:.1} MB", b / (KIB * KIB))
    }
}

fn file_url(view: &ItemView, a: &Attachment) -> String {
    format!(
        "/items/{}/files/{}?version={}",
        view.item.id.to_hex(),
        percent(&a.name),
        view.item.version
    )
}

/// A file name in a URL path.
fn percent(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a page may show this image inline: only an image this node's
/// own establishment published, so that no other site's bytes are ever
/// rendered here, only offered as a download.
fn inline_ok(lib: &ReadView, view: &ItemView, a: &Attachment) -> bool {
    a.media_type.is_image() && view.item.owner == lib.establishment()
}

/// The "Files" section of an item's page.
pub(super) fn files_panel(
    lib: &ReadView,
    view: &ItemView,
    me: Option<&Session>,
    fetching: bool,
) -> Markup {
    let files = &view.item.attachments;
    if files.is_empty() {
        return html! {};
    }
    html! {
        section aria-labelledby="files-heading" {
            h2 #files-heading { "Files" }
            table {
                thead { tr { th scope="col" { "File" } th scope="col" { "Type" } th scope="col" { "Size" } th scope="col" { "Here" } } }
                tbody {
                    @for a in files {
                        @let state = lib.file_state(&a.hash);
                        tr {
                            td {
                                @if state == BlobState::Here {
                                    a href=(file_url(view, a)) download=(a.name) { (a.name) }
                                } @else {
                                    (a.name)
                                }
                            }
                            td { (a.media_type.label()) }
                            td { (size_text(a.size)) }
                            td {
                                @match &state {
                                    BlobState::Here => { "Yes" }
                                    BlobState::Refused(reason) => {
                                        strong { "Refused when it arrived" } ": " (reason)
                                    }
                                    BlobState::Unchecked => {
                                        "Arrived; being checked"
                                    }
                                    BlobState::Partial(n) => {
                                        "Arriving: " (size_text(*n)) " of " (size_text(a.size)) " here"
                                        (fetch_button(view, a, me, fetching))
                                    }
                                    BlobState::Absent => {
                                        "Not here yet"
                                        (fetch_button(view, a, me, fetching))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for a in files.iter().filter(|a| inline_ok(lib, view, a) && lib.file_state(&a.hash) == BlobState::Here) {
                figure {
                    img src={ (file_url(view, a)) "&inline=1" } alt=(a.name);
                    figcaption { (a.name) }
                }
            }
        }
    }
}

fn fetch_button(view: &ItemView, a: &Attachment, me: Option<&Session>, fetching: bool) -> Markup {
    if !fetching {
        return html! {};
    }
    html! {
        form.inline-form method="post" action={ "/items/" (view.item.id.to_hex()) "/files/" (percent(&a.name)) "/fetch" } {
            @if let Some(s) = me { (csrf_field(s)) }
            button.button.button-secondary type="submit" { "Fetch it now" }
        }
    }
}

#[derive(serde::Deserialize)]
struct FileQuery {
    version: Option<u64>,
    inline: Option<String>,
}

fn content_disposition(name: &str, inline: bool) -> HeaderValue {
    // A plain name for old clients, the exact one (RFC 5987) for the rest.
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{plain}\"; filename*=UTF-8''{}",
        percent(name)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(
    State(state): State<WebState>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<FileQuery>,
) -> Response {
    let wants_inline = q.inline.is_some();
    let found = state
        .read(move |lib| {
            let id = item_id(lib, &id)?;
            let view = lib.get(&id, q.version)?;
            let a = view
                .item
                .attachments
                .iter()
                .find(|a| a.name == name)
                .cloned()
                .ok_or_else(|| WebError::NotFound(format!("item {id} carries no file {name:?}")))?;
            let inline = wants_inline && inline_ok(lib, &view, &a);
            let store = lib.blobs().ok_or_else(|| {
                WebError::NotFound(format!("{} is not here: this node keeps no files", a.name))
            })?;
            let bytes = store.read(&a.hash).map_err(|_| {
                WebError::NotFound(format!(
                    "{} is not here yet; its item's page offers to fetch it",
                    a.name
                ))
            })?;
            Ok((a, bytes, inline))
        })
        .await;
    match found {
        Ok((a, bytes, inline)) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.media_type.mime()),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                content_disposition(&a.name, inline),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            // A file may never run as a page of this site.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            response
        }
        Err(e) => error_page(None, &e),
    }
}

async fn fetch(
    State(state): State<WebState>,
    Path((id, name)): Path<(String, String)>,
    axum::extract::Form(fields): axum::extract::Form<Fields>,
) -> Response {
    if let Some(s) = current()
        && let Some(r) = refused(&s, &fields)
    {
        return r;
    }
    let Some(net) = state.net.clone() else {
        return error_page(
            None,
            &WebError::BadRequest("this node is not connected to the network".into()),
        );
    };
    let found = state
        .read(move |lib| {
            let id = item_id(lib, &id)?;
            let view = lib.get(&id, None)?;
            let a = view
                .item
                .attachments
                .iter()
                .find(|a| a.name == name)
                .cloned()
                .ok_or_else(|| WebError::NotFound(format!("item {id} carries no file {name:?}")))?;
            Ok((id, a.hash))
        })
        .await;
    match found {
        Ok((id, hash)) => {
            net.fetch_blob(hash).await;
            see_other(&format!("/items/{}#files-heading", id.to_hex()))
        }
        Err(e) => error_page(None, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_exact_and_safe_in_headers_and_urls() {
        let h = content_disposition("Flow chart \"v2\".pdf", false);
        assert_eq!(
            h.to_str().expect("ascii"),
            "attachment; filename=\"Flow chart _v2_.pdf\"; filename*=UTF-8''Flow%20chart%20%22v2%22.pdf"
        );
        assert_eq!(percent("naloxone–2.pdf"), "naloxone%E2%80%932.pdf");
        assert_eq!(size_text(512), "512 bytes");
        assert_eq!(size_text(20 * 1024 * 1024), "20.0 MB");
    }
}
