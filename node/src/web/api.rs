//! The JSON API under `/api/v1`.
//!
//! Shapes are the library's own serialised types (the same the CLI prints
//! with `--json`) and are described by `openapi.json`, served at
//! `/api/v1/openapi.json`. Errors are `{"error": "..."}` with 400 for bad
//! parameters, 404 for unknown items, versions and routes.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{
    LocalClient, WebError, WebState, item_id, no_parameters, parse_search, version_number,
};
use crate::net::NetStatus;
use crate::net::book::PeerEntry;
use crate::projection::search::SearchRequest;
use crate::query::ReadView;
use crate::query::diff::{ItemDiff, diff};
use crate::query::forum::{ModerationEntry, ThreadList, ThreadQuery, ThreadSummary, ThreadView};
use crate::query::{EstablishmentSummary, ItemView, SearchPage, StatusReport, VersionEntry};
use gatehouse_protocol::id::EnvelopeId;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

type ApiResult<T> = Result<Json<T>, WebError>;

/// The API's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/v1/search", get(search))
        .route("/api/v1/items/{id}", get(item))
        .route("/api/v1/items/{id}/versions/{version}", get(item_version))
        .route("/api/v1/items/{id}/history", get(history))
        .route("/api/v1/items/{id}/diff", get(item_diff))
        .route("/api/v1/establishments", get(establishments))
        .route("/api/v1/status", get(status))
        .route("/api/v1/threads", get(threads))
        .route("/api/v1/threads/{id}", get(thread))
        .route("/api/v1/moderation", get(moderation))
        .route("/api/v1/inbox", get(inbox))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1", get(unknown))
        .route("/api/v1/{*rest}", get(unknown))
}

async fn unknown() -> WebError {
    WebError::NotFound("no such API route; see /api/v1/openapi.json".into())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Runs a search for query-string `pairs` on `lib`.
pub fn run_search(
    lib: &ReadView,
    pairs: &[(String, String)],
    web_page: bool,
) -> Result<(super::SearchParams, SearchPage), WebError> {
    let p = parse_search(pairs, web_page)?;
    let page = lib.find(&SearchRequest {
        query: &p.q,
        filter: &p.filter,
        sort: p.sort,
        offset: p.offset,
        limit: p.limit,
        facets: p.facets,
    })?;
    Ok((p, page))
}

async fn search(
    State(state): State<WebState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<SearchPage> {
    let started = std::time::Instant::now();
    let answer = state
        .read(move |lib| Ok(Json(run_search(lib, &pairs, false)?.1)))
        .await;
    crate::metrics::observe(&state.search_latency, started.elapsed());
    answer
}

async fn item(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<ItemView> {
    no_parameters(&pairs)?;
    state
        .read(move |lib| Ok(Json(lib.get(&item_id(lib, &id)?, None)?)))
        .await
}

async fn item_version(
    State(state): State<WebState>,
    Path((id, version)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<ItemView> {
    no_parameters(&pairs)?;
    state
        .read(move |lib| {
            let id = item_id(lib, &id)?;
            let n = version_number("version", &version)?;
            Ok(Json(lib.get(&id, Some(n))?))
        })
        .await
}

async fn history(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Vec<VersionEntry>> {
    no_parameters(&pairs)?;
    state
        .read(move |lib| Ok(Json(lib.history(&item_id(lib, &id)?)?)))
        .await
}

/// Two versions compared.
pub struct Compared {
    /// The newer version.
    pub newer: ItemView,
    /// The item's latest version number.
    pub latest: u64,
    /// What changed.
    pub diff: ItemDiff,
}

/// The versions a diff request names: `to` defaults to the latest, `from`
/// to the one before `to`. Any two versions compare, in the order given
/// (a version with itself: nothing changed).
pub fn diff_between(
    lib: &ReadView,
    id: &str,
    pairs: &[(String, String)],
) -> Result<Compared, WebError> {
    let id = item_id(lib, id)?;
    let (mut from, mut to) = (None, None);
    for (key, value) in pairs {
        let value = value.trim();
        match key.as_str() {
            _ if value.is_empty() => {}
            "from" => from = Some(version_number("from", value)?),
            "to" => to = Some(version_number("to", value)?),
            other => {
                return Err(WebError::BadRequest(format!(
                    "unknown parameter {other:?}; expected from, to"
                )));
            }
        }
    }
    let latest = lib.get(&id, None)?;
    let to = to.unwrap_or(latest.item.version);
    let from = match from {
        Some(f) => f,
        None if to > 1 => to - 1,
        None => {
            return Err(WebError::NotFound(
                "there is no version before version 1 to compare it with".into(),
            ));
        }
    };
    let (old, new) = (lib.get(&id, Some(from))?, lib.get(&id, Some(to))?);
    let d = diff(&old, &new);
    Ok(Compared {
        newer: new,
        latest: latest.item.version,
        diff: d,
    })
}

async fn item_diff(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<ItemDiff> {
    state
        .read(move |lib| Ok(Json(diff_between(lib, &id, &pairs)?.diff)))
        .await
}

async fn establishments(
    State(state): State<WebState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Vec<EstablishmentSummary>> {
    no_parameters(&pairs)?;
    state.read(|lib| Ok(Json(lib.establishments()?))).await
}

/// What `GET /api/v1/status` returns.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// What the library holds.
    #[serde(flatten)]
    pub library: StatusReport,
    /// Whether the network runs in this process.
    pub node_running: bool,
    /// The network's state, when it runs.
    pub network_state: Option<NetStatus>,
    /// Remembered peer addresses.
    pub peer_book: Vec<PeerEntry>,
    /// The last completed reconciliation with any peer (ms since the epoch).
    pub last_sync_ms: Option<u64>,
    /// Whether network addresses were left out (the request did not come
    /// from this node's machine; see [`LocalClient`]).
    pub addresses_hidden: bool,
}

impl NodeStatus {
    /// The status without network addresses: the peer book, the addresses
    /// listened on and every peer's addresses are left out.
    pub fn without_addresses(mut self) -> Self {
        self.peer_book.clear();
        if let Some(n) = &mut self.network_state {
            n.listening.clear();
            for p in n.peers.values_mut() {
                p.addresses.clear();
            }
        }
        self.addresses_hidden = true;
        self
    }
}

/// The node's status as the API and the network page show it.
pub fn node_status(lib: &ReadView, net: Option<NetStatus>) -> Result<NodeStatus, WebError> {
    let peer_book = lib.peers()?;
    let last_sync_ms = peer_book
        .iter()
        .filter_map(|p| p.last_sync_ms)
        .chain(net.as_ref().and_then(|n| n.last_sync_ms))
        .max();
    Ok(NodeStatus {
        library: lib.status()?,
        node_running: net.is_some(),
        network_state: net,
        peer_book,
        last_sync_ms,
        addresses_hidden: false,
    })
}

async fn status(
    State(state): State<WebState>,
    LocalClient(local): LocalClient,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    no_parameters(&pairs)?;
    let net = state.net.as_ref().map(crate::net::NetHandle::status);
    let mut s = state.read(move |lib| node_status(lib, net)).await?;
    if !local {
        s = s.without_addresses();
    }
    Ok((StatusCode::OK, Json(s)).into_response())
}

/// Threads the API lists when no `limit` is given, and at most.
pub const DEFAULT_THREAD_LIMIT: usize = 50;
/// The most threads one request lists.
pub const MAX_THREAD_LIMIT: usize = 200;

/// Reads the thread-list parameters: `list`, `pathway` (repeatable),
/// `about` (an item) and `limit`.
fn thread_query(lib: &ReadView, pairs: &[(String, String)]) -> Result<ThreadQuery, WebError> {
    let mut q = ThreadQuery {
        list: ThreadList::Open,
        limit: DEFAULT_THREAD_LIMIT,
        ..ThreadQuery::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "list" => q.list = v.parse().map_err(WebError::BadRequest)?,
            "pathway" => q.pathways.push(v.parse().map_err(
                |e: gatehouse_protocol::vocab::UnknownValue| WebError::BadRequest(e.to_string()),
            )?),
            "about" => q.about = Some(item_id(lib, v)?),
            "limit" => {
                q.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_THREAD_LIMIT).contains(n))
                    .ok_or_else(|| {
                        WebError::BadRequest(format!(
                            "limit must be a whole number from 1 to {MAX_THREAD_LIMIT}, not {v:?}"
                        ))
                    })?;
            }
            other => {
                return Err(WebError::BadRequest(format!(
                    "unknown parameter {other:?}; expected list, pathway, about, limit"
                )));
            }
        }
    }
    Ok(q)
}

async fn threads(
    State(state): State<WebState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Vec<ThreadSummary>> {
    let me = super::auth::current().map(|s| s.key.public());
    state
        .read(move |lib| {
            let mut q = thread_query(lib, &pairs)?;
            if q.list == ThreadList::Mine {
                q.person = Some(me.ok_or_else(|| {
                    WebError::SignIn(
                        "list=mine lists the signed-in person's threads; sign in at /signin and send the session cookie".into(),
                    )
                })?);
            }
            Ok(Json(lib.threads(&q, super::forum::now_ms())))
        })
        .await
}

async fn thread(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<ThreadView> {
    no_parameters(&pairs)?;
    state
        .read(move |lib| {
            let missing = || WebError::NotFound(format!("there is no thread {id:?}"));
            let id: EnvelopeId = id.parse().map_err(|_| missing())?;
            match lib.thread(&id, super::forum::now_ms()) {
                Ok(t) => Ok(Json(t)),
                Err(crate::error::LibraryError::UnknownPost(_)) => Err(missing()),
                Err(e) => Err(e.into()),
            }
        })
        .await
}

async fn moderation(
    State(state): State<WebState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Vec<ModerationEntry>> {
    no_parameters(&pairs)?;
    state.read(|lib| Ok(Json(lib.moderation_log()))).await
}

async fn inbox(
    State(state): State<WebState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    no_parameters(&pairs)?;
    let (Some(s), Some(accounts)) = (super::auth::current(), state.accounts.clone()) else {
        return Ok((
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody {
                error: "the inbox is the signed-in person's; sign in at /signin and send the session cookie"
                    .into(),
            }),
        )
            .into_response());
    };
    let me = s.key.public();
    let found = state
        .read(move |lib| {
            let st = accounts.inbox_state(&s.login);
            Ok(lib.inbox(
                &me,
                &st.watching,
                st.read_up_to_ms,
                super::inbox::INBOX_PAGE_LEN,
            ))
        })
        .await?;
    Ok((StatusCode::OK, Json(found)).into_response())
}
