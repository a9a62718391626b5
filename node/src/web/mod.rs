//! The node's web page and JSON API (axum).
//!
//! Clinicians read the library in a browser: server-rendered HTML that
//! needs no JavaScript, styled by one small stylesheet, served with a strict
//! Content-Security-Policy. Programs (and the CLI, while the node runs) use
//! the JSON API under `/api/v1`, described by the OpenAPI document at
//! `/api/v1/openapi.json`. Publishing stays with the CLI and the control
//! socket; signed-in staff ask and answer questions on the forum pages
//! ([`forum`], [`auth`]).
//!
//! Handlers read the library's latest [`ReadView`] on tokio's blocking
//! pool: they take no lock that the network or an ingest holds, and a slow
//! query never stalls the runtime that also drives the network.

pub mod api;
pub mod auth;
pub mod chart;
pub mod discuss;
pub mod feed;
pub mod files;
pub mod forum;
pub mod inbox;
pub mod ops;
pub mod pages;
mod serve;
pub mod tls;

pub use serve::Limits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_protocol::id::{EstablishmentId, ItemId};
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting, Status};
use thiserror::Error;
use tokio::sync::watch;

use crate::library::LibraryError;
use crate::net::NetHandle;
use crate::projection::search::{MAX_SEARCH_RESULTS, SearchError, Sort};
use crate::query::MIN_ID_PREFIX_CHARS;
use crate::query::filter::Filter;
use crate::query::{ReadView, Reads};

/// The address the web page listens on unless told otherwise: loopback only.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8480";
/// Results on one page of the web search.
pub const PAGE_SIZE: usize = 10;
/// Results the API returns when no `limit` is given.
pub const DEFAULT_API_LIMIT: usize = 20;
/// Requests handled at once; more wait their turn, so a flood of requests
/// cannot take every core from the network task.
pub const MAX_CONCURRENT_REQUESTS: usize = 16;

/// The policy every response is sent with: nothing but this node's own
/// stylesheet loads, no script runs, forms post only here, and no other
/// site may frame the page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// How long a request may take to be prepared (waiting for a turn
/// included) before the client is told the node is busy.
pub const READ_BUDGET: Duration = Duration::from_secs(10);

/// What the web handlers share.
#[derive(Clone)]
pub struct WebState {
    /// Where the library's latest read view is found.
    pub reads: Reads,
    /// The network, when the node runs one.
    pub net: Option<NetHandle>,
    /// How long one request may take ([`READ_BUDGET`] by default).
    pub budget: Duration,
    /// Turns on the blocking pool: work past its budget still holds its
    /// turn until it ends, so late work cannot pile up.
    turns: Arc<tokio::sync::Semaphore>,
    /// The people who may sign in and post; `None`: the page is read-only.
    pub accounts: Option<Arc<auth::Accounts>>,
    /// Who may read the page and API.
    pub access: WebAccess,
    /// Served over TLS (set by [`WebServer::start_tls`]).
    pub https: bool,
    /// How long searches take, for `/metrics`.
    pub search_latency: prometheus_client::metrics::histogram::Histogram,
    /// Whether `/metrics` answers clients beyond this machine.
    pub metrics_from_network: bool,
    /// How recent a reconciliation `/readyz` asks for.
    pub ready_sync_within: Duration,
}

/// Who may read a node's page and API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebAccess {
    /// Anyone who can reach it (the default on loopback).
    #[default]
    Open,
    /// Signed-in staff only: every page but sign-in sends others there,
    /// and the API answers them 401 (the default on the site's network).
    Staff,
}

impl WebAccess {
    /// The access a node served on `addr` has unless told otherwise: open
    /// on loopback, staff only anywhere else.
    pub fn default_for(addr: SocketAddr) -> Self {
        if addr.ip().is_loopback() {
            WebAccess::Open
        } else {
            WebAccess::Staff
        }
    }
}

impl std::str::FromStr for WebAccess {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(WebAccess::Open),
            "staff" => Ok(WebAccess::Staff),
            other => Err(format!(
                "unknown web access {other:?}; expected open or staff"
            )),
        }
    }
}

impl std::fmt::Display for WebAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WebAccess::Open => "open",
            WebAccess::Staff => "staff",
        })
    }
}

impl WebState {
    /// The state for serving `reads` (and `net`'s status), with the default
    /// budget.
    pub fn new(reads: Reads, net: Option<NetHandle>) -> Self {
        Self {
            reads,
            net,
            budget: READ_BUDGET,
            turns: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS)),
            accounts: None,
            access: WebAccess::Open,
            https: false,
            search_latency: crate::metrics::latency_histogram(),
            metrics_from_network: false,
            ready_sync_within: ops::READY_SYNC_WITHIN,
        }
    }

    /// Serves `/metrics` to the site's network too, not only to this
    /// machine.
    pub fn with_metrics_from_network(mut self, on: bool) -> Self {
        self.metrics_from_network = on;
        self
    }

    /// Sets how recent a reconciliation `/readyz` asks for.
    pub fn with_ready_sync_within(mut self, within: Duration) -> Self {
        self.ready_sync_within = within;
        self
    }

    /// Sets who may read the page and API.
    pub fn with_access(mut self, access: WebAccess) -> Self {
        self.access = access;
        self
    }

    /// Lets this node's staff sign in and post.
    pub fn with_accounts(mut self, accounts: auth::Accounts) -> Self {
        self.accounts = Some(Arc::new(accounts));
        self
    }

    /// Runs `f` on the library's latest read view, on the blocking pool. It
    /// takes no lock the network or an ingest holds, so a page never waits
    /// for a batch to finish. At most [`MAX_CONCURRENT_REQUESTS`] run at
    /// once; one that has not answered within the budget is answered
    /// "busy" (503), and other requests are served meanwhile.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadView) -> Result<T, WebError> + Send + 'static,
    ) -> Result<T, WebError> {
        let view = self.reads.latest();
        let turns = Arc::clone(&self.turns);
        let work = async move {
            let turn = turns
                .acquire_owned()
                .await
                .map_err(|_| WebError::Internal(INTERNAL_MESSAGE.into()))?;
            tokio::task::spawn_blocking(move || {
                let answer = f(&view);
                drop(turn);
                answer
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "web request task failed");
                WebError::Internal(INTERNAL_MESSAGE.into())
            })?
        };
        match tokio::time::timeout(self.budget, work).await {
            Ok(answer) => answer,
            Err(_) => {
                tracing::warn!(budget = ?self.budget, "a web request ran past its budget");
                Err(WebError::Busy(format!(
                    "this node could not prepare the page within {} s; try again, or narrow the search",
                    self.budget.as_secs().max(1)
                )))
            }
        }
    }
}

/// Whether a request came from this node's own machine (a loopback client
/// address). Network addresses (this node's, its peers') are shown only
/// to such a request: a reader elsewhere on the site's network learns the
/// library, not where the other sites' nodes are. A request with no client
/// address (one made in-process) is local.
#[derive(Debug, Clone, Copy)]
pub struct LocalClient(pub bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LocalClient {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let ClientAddr(addr) = ClientAddr::from_request_parts(parts, state).await?;
        Ok(Self(addr.is_none_or(|a| a.is_loopback())))
    }
}

/// The client's address, when the connection has one (a request made
/// in-process has none).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// What a client is told when something breaks here (the detail goes to
/// the node's log, not to the client).
pub const INTERNAL_MESSAGE: &str = "this node could not answer; its log says why";

/// Why a request failed.
#[derive(Debug, Error)]
pub enum WebError {
    /// The request's parameters are wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such item, version or page (404).
    #[error("{0}")]
    NotFound(String),
    /// Something broke on this node (500); logged.
    #[error("{0}")]
    Internal(String),
    /// The request did not finish within its budget (503).
    #[error("{0}")]
    Busy(String),
    /// Only a signed-in person may ask this (401).
    #[error("{0}")]
    SignIn(String),
}

impl WebError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::SignIn(_) => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<LibraryError> for WebError {
    fn from(e: LibraryError) -> Self {
        match e {
            LibraryError::UnknownItem(_) | LibraryError::NoSuchVersion { .. } => {
                WebError::NotFound(e.to_string())
            }
            LibraryError::AmbiguousId { .. } => WebError::BadRequest(e.to_string()),
            LibraryError::Search(s) if matches!(*s, SearchError::BadQuery(_)) => {
                WebError::BadRequest(s.to_string())
            }
            other => {
                tracing::error!(error = %other, "web request failed");
                WebError::Internal(INTERNAL_MESSAGE.into())
            }
        }
    }
}

/// Reads an item id (or an unambiguous prefix of at least
/// [`MIN_ID_PREFIX_CHARS`] hex characters) from a path.
pub fn item_id(lib: &ReadView, text: &str) -> Result<ItemId, WebError> {
    let ok = (MIN_ID_PREFIX_CHARS..=32).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(WebError::BadRequest(format!(
            "{text:?} is not an item id (32 hex characters, or at least {MIN_ID_PREFIX_CHARS} of them)"
        )));
    }
    Ok(lib.resolve(text)?)
}

/// Refuses query parameters on routes that take none.
pub fn no_parameters(pairs: &[(String, String)]) -> Result<(), WebError> {
    match pairs.first() {
        None => Ok(()),
        Some((key, _)) => Err(WebError::BadRequest(format!(
            "unknown parameter {key:?}; this address takes no parameters"
        ))),
    }
}

/// A version number from a path or query.
pub fn version_number(name: &str, text: &str) -> Result<u64, WebError> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(WebError::BadRequest(format!(
            "{name} must be a version number (1 or more), not {text:?}"
        ))),
    }
}

/// A search as asked for in a query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchParams {
    /// The words.
    pub q: String,
    /// Facet and other filters.
    pub filter: Filter,
    /// Order.
    pub sort: Sort,
    /// Results to skip.
    pub offset: usize,
    /// Results wanted.
    pub limit: usize,
    /// Whether to count facets (the API's `facets=false` skips them).
    pub facets: bool,
}

fn parse_one<T: std::str::FromStr>(
    slot: &mut Option<T>,
    key: &str,
    value: &str,
) -> Result<(), WebError>
where
    T::Err: std::fmt::Display,
{
    if slot.is_some() {
        return Err(WebError::BadRequest(format!("give {key} at most once")));
    }
    *slot = Some(
        value
            .parse()
            .map_err(|e| WebError::BadRequest(format!("{key}: {e}")))?,
    );
    Ok(())
}

fn parse_count(key: &str, value: &str) -> Result<usize, WebError> {
    value
        .parse::<usize>()
        .map_err(|_| WebError::BadRequest(format!("{key} must be a whole number, not {value:?}")))
}

/// Reads search parameters. The API pages with `offset` and `limit`; the
/// web page with `page` (from 1, [`PAGE_SIZE`] results each). The page
/// ignores empty values (as a form sends for "any"); the API refuses them,
/// but for `q`. Unknown parameters are refused,
/// so a misspelt filter never silently widens a search.
pub fn parse_search(pairs: &[(String, String)], web_page: bool) -> Result<SearchParams, WebError> {
    let mut p = SearchParams {
        limit: if web_page {
            PAGE_SIZE
        } else {
            DEFAULT_API_LIMIT
        },
        facets: true,
        ..SearchParams::default()
    };
    let (mut kind, mut pathway, mut setting, mut status, mut nation) = (
        None::<Kind>,
        None::<Pathway>,
        None::<Setting>,
        None::<Status>,
        None::<Nation>,
    );
    let mut owners: Vec<EstablishmentId> = Vec::new();
    let mut review_due_before = None;
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in pairs {
        let value = value.trim();
        if value.is_empty() {
            // A form sends an empty value for "any"; a program that sends
            // one has made a mistake (only the query may be empty).
            if web_page || key == "q" {
                continue;
            }
            return Err(WebError::BadRequest(format!(
                "{key} is empty: give it a value, or leave it out"
            )));
        }
        if key != "owner" && !seen.insert(key.as_str()) {
            return Err(WebError::BadRequest(format!("give {key} at most once")));
        }
        match key.as_str() {
            "q" => p.q = value.to_string(),
            "kind" => parse_one(&mut kind, key, value)?,
            "pathway" => parse_one(&mut pathway, key, value)?,
            "setting" => parse_one(&mut setting, key, value)?,
            "status" => parse_one(&mut status, key, value)?,
            "nation" => parse_one(&mut nation, key, value)?,
            "review_due_before" => parse_one(&mut review_due_before, key, value)?,
            "owner" => owners.push(value.parse().map_err(|_| {
                WebError::BadRequest(format!("owner must be an establishment id, not {value:?}"))
            })?),
            "sort" => {
                p.sort = Sort::from_slug(value).ok_or_else(|| {
                    WebError::BadRequest(format!(
                        "sort must be one of {}, not {value:?}",
                        Sort::ALL.map(Sort::slug).join(", ")
                    ))
                })?;
            }
            "offset" if !web_page => p.offset = parse_count(key, value)?,
            "facets" if !web_page => {
                p.facets = match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(WebError::BadRequest(format!(
                            "facets must be true or false, not {value:?}"
                        )));
                    }
                };
            }
            "limit" if !web_page => {
                p.limit = parse_count(key, value)?;
                if p.limit == 0 || p.limit > MAX_SEARCH_RESULTS {
                    return Err(WebError::BadRequest(format!(
                        "limit must be from 1 to {MAX_SEARCH_RESULTS}"
                    )));
                }
            }
            "page" if web_page => {
                let page = parse_count(key, value)?;
                if page == 0 {
                    return Err(WebError::BadRequest("page numbers start at 1".into()));
                }
                p.offset = (page - 1).saturating_mul(PAGE_SIZE);
            }
            other => {
                return Err(WebError::BadRequest(format!(
                    "unknown parameter {other:?}; expected q, kind, pathway, setting, nation, owner, status, review_due_before, sort, {}",
                    if web_page {
                        "page"
                    } else {
                        "offset, limit, facets"
                    }
                )));
            }
        }
    }
    p.filter = Filter {
        kind,
        pathway,
        setting,
        status,
        nation,
        owners: (!owners.is_empty()).then_some(owners),
        review_due_before,
        adopted_from: None,
    };
    Ok(p)
}

/// Adds the security headers every response carries.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Over TLS: tells browsers to come back only over HTTPS for a year.
async fn strict_transport(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// Whether an HTTP `Host` header names this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses requests that name another host: a node serving loopback only
/// answers to loopback names, so a web page elsewhere cannot reach it by
/// pointing its own domain at 127.0.0.1 (DNS rebinding).
async fn loopback_hosts_only(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if is_loopback_host(host) {
        return next.run(request).await;
    }
    (
        StatusCode::MISDIRECTED_REQUEST,
        "this node serves its web page on loopback only; use http://127.0.0.1 or http://localhost",
    )
        .into_response()
}

/// Every route: the web page and the API. `loopback_only` refuses requests
/// whose `Host` is not a loopback name.
pub fn router(state: WebState, loopback_only: bool) -> Router {
    let routes = pages::routes()
        .merge(forum::routes())
        .merge(discuss::routes())
        .merge(feed::routes())
        .merge(inbox::routes())
        .merge(files::routes())
        .merge(api::routes());
    let routes = routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::identify,
        ))
        // Monitoring is outside sign-in: a scraper cannot sign in.
        .merge(ops::routes());
    let routes = if state.https {
        routes.layer(axum::middleware::map_response(strict_transport))
    } else {
        routes
    };
    let routes = routes.layer(tower::limit::ConcurrencyLimitLayer::new(
        MAX_CONCURRENT_REQUESTS,
    ));
    let routes = if loopback_only {
        routes.layer(axum::middleware::from_fn(loopback_hosts_only))
    } else {
        routes
    };
    routes
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// A failure starting the web server.
#[derive(Debug, Error)]
#[error("cannot serve the web page on {addr}: {source}")]
pub struct ServeError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// The running web server.
pub struct WebServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether it serves over TLS.
    pub https: bool,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    /// Binds `addr` and serves the page and API until [`WebServer::stop`],
    /// under the default [`Limits`].
    pub async fn start(addr: SocketAddr, state: WebState) -> Result<Self, ServeError> {
        Self::start_with(addr, state, Limits::default()).await
    }

    /// As [`WebServer::start`], under `limits`.
    pub async fn start_with(
        addr: SocketAddr,
        state: WebState,
        limits: Limits,
    ) -> Result<Self, ServeError> {
        Self::start_tls(addr, state, limits, None).await
    }

    /// As [`WebServer::start_with`], over TLS with `tls` when given (see
    /// [`tls::server_config`]): session cookies are then always `Secure`
    /// and responses ask browsers to keep to HTTPS (HSTS).
    pub async fn start_tls(
        addr: SocketAddr,
        mut state: WebState,
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServeError { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        state.https = tls.is_some();
        let app = router(state, bound.ip().is_loopback());
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let task = tokio::spawn(serve::serve(listener, app, limits, acceptor, stopped));
        tracing::info!(address = %format!("{scheme}://{bound}/"), "web page served");
        Ok(Self {
            addr: bound,
            https: scheme == "https",
            stop,
            task,
        })
    }

    /// Stops serving and waits for open requests to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_served_beyond_loopback_is_for_staff_unless_told_otherwise() {
        let at = |s: &str| WebAccess::default_for(s.parse().expect("address"));
        assert_eq!(at("127.0.0.1:8480"), WebAccess::Open);
        assert_eq!(at("[::1]:8480"), WebAccess::Open);
        assert_eq!(at("0.0.0.0:8480"), WebAccess::Staff);
        assert_eq!(at("[::]:8480"), WebAccess::Staff);
        assert_eq!(at("10.1.2.3:8480"), WebAccess::Staff);
        assert_eq!("staff".parse(), Ok(WebAccess::Staff));
        assert!("closed".parse::<WebAccess>().is_err());
    }
}
