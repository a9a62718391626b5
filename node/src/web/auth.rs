//! Signing in to the web page: sessions, CSRF tokens and the sign-in limit.
//!
//! A person signs in with their login and password (the first time, with
//! the one-time set-up code and a password they choose). Signing in opens
//! their sealed key ([`crate::staff`]); the session holds it in memory, and
//! only the session: it is dropped at sign-out, after
//! [`IDLE_TIMEOUT`] without a request, after [`MAX_SESSION`] in all, or
//! when the person's key is no longer in force (removed, revoked).
//!
//! The session cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and
//! `Secure` wherever a browser keeps a secure cookie (on loopback, which
//! browsers count as secure). A new token is made at every sign-in, so a
//! token planted before sign-in is worth nothing (session fixation). Every
//! form that changes anything carries the session's CSRF token, compared
//! in constant time. Sign-in attempts are limited per login and per client
//! address: after [`MAX_FAILURES`] failures within [`FAILURE_WINDOW`] the
//! login (or address) is locked for [`LOCKOUT`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header;
use gatehouse_protocol::key::SecretKey;

use crate::home::random_bytes;
use crate::library::Library;
use crate::net::NetHandle;
use crate::query::Reads;
use crate::staff::{InboxState, Staff, StaffError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends after this long, however busy.
pub const MAX_SESSION: Duration = Duration::from_secs(12 * 60 * 60);
/// Failed sign-ins allowed within [`FAILURE_WINDOW`] before a lock-out.
pub const MAX_FAILURES: u32 = 5;
/// The window failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a login or address stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Most sessions held at once (the oldest idle ones go first).
pub const MAX_SESSIONS: usize = 1_000;

/// A signed-in person, as a request sees them.
#[derive(Clone)]
pub struct Session {
    /// Their session token (the cookie's value).
    pub token: String,
    /// Their login.
    pub login: String,
    /// Their name.
    pub name: String,
    /// Their key, opened at sign-in.
    pub key: Arc<SecretKey>,
    /// Their role: a clinician, or a site lead (a person key, which may
    /// adopt another site's item from its page).
    pub role: gatehouse_protocol::certificate::MemberRole,
    /// The token every form of theirs carries.
    pub csrf: String,
    last_seen: Instant,
    started: Instant,
}

#[derive(Default, Clone, Copy)]
struct Failures {
    count: u32,
    first: Option<Instant>,
    locked_until: Option<Instant>,
}

impl Failures {
    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }

    fn fail(&mut self, now: Instant) {
        if self
            .first
            .is_none_or(|f| now.duration_since(f) > FAILURE_WINDOW)
        {
            self.first = Some(now);
            self.count = 0;
        }
        self.count += 1;
        if self.count >= MAX_FAILURES {
            self.locked_until = Some(now + LOCKOUT);
            self.count = 0;
            self.first = None;
        }
    }
}

/// Why a sign-in failed, as the page says it.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong login, password or code (which of them is not said).
    #[error("The login or password is not right.")]
    Wrong,
    /// Too many failures.
    #[error(
        "Too many failed attempts: signing in is locked for 15 minutes. Ask your site lead if you have forgotten your password."
    )]
    Locked,
    /// The account waits for its set-up code.
    #[error(
        "This account has not been set up yet: use your set-up code below and choose a password."
    )]
    NotSetUp,
    /// The password chosen is not acceptable.
    #[error("{0}")]
    Password(String),
    /// Something broke.
    #[error("Signing in failed on this node; its log says why.")]
    Internal,
}

/// The people of this node who may sign in, their sessions, and the
/// library they post to.
pub struct Accounts {
    staff: Staff,
    library: Arc<Mutex<Library>>,
    /// The library's latest view: a session's key is checked against its
    /// trust without the library's lock, so a page never waits on ingest.
    reads: Reads,
    net: Option<NetHandle>,
    sessions: Mutex<HashMap<String, Session>>,
    by_login: Mutex<HashMap<String, Failures>>,
    by_address: Mutex<HashMap<IpAddr, Failures>>,
    /// What each person has read and watches, as last read or written.
    inboxes: Mutex<HashMap<String, InboxState>>,
    /// Idle time-out (tests shorten it).
    pub idle: Duration,
}

fn token() -> Result<String, SignInError> {
    let bytes: [u8; 32] = random_bytes().map_err(|_| SignInError::Internal)?;
    Ok(hex::encode(bytes))
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Accounts {
    /// Accounts kept in `staff`, posting to `library` and announcing on `net`.
    pub fn new(staff: Staff, library: Arc<Mutex<Library>>, net: Option<NetHandle>) -> Self {
        let reads = library.lock().unwrap_or_else(|p| p.into_inner()).reads();
        Accounts {
            staff,
            library,
            reads,
            net,
            sessions: Mutex::default(),
            by_login: Mutex::default(),
            by_address: Mutex::default(),
            inboxes: Mutex::default(),
            idle: IDLE_TIMEOUT,
        }
    }

    /// This node's staff (those not removed), as registers of who has read
    /// an item list them.
    pub fn staff_members(&self) -> Vec<crate::query::reading::StaffMember> {
        match self.staff.list() {
            Ok(list) => list
                .into_iter()
                .filter(|a| a.state != crate::staff::AccountState::Removed)
                .map(|a| crate::query::reading::StaffMember {
                    name: a.name,
                    key: a.key,
                    job: a.job,
                })
                .collect(),
            Err(e) => {
                tracing::warn!("could not read the staff list: {e}");
                Vec::new()
            }
        }
    }

    /// `login`'s job, if set.
    pub fn job_of(&self, login: &str) -> Option<gatehouse_protocol::vocab::Job> {
        self.staff.get(login).ok().and_then(|a| a.job)
    }

    /// What `login` has read and watches.
    pub fn inbox_state(&self, login: &str) -> InboxState {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        inboxes
            .entry(login.to_string())
            .or_insert_with(|| self.staff.inbox(login))
            .clone()
    }

    /// Changes what `login` has read or watches, and keeps it on disk
    /// before answering; on failure nothing changes.
    pub fn update_inbox(
        &self,
        login: &str,
        change: impl FnOnce(&mut InboxState),
    ) -> Result<(), StaffError> {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = inboxes
            .get(login)
            .cloned()
            .unwrap_or_else(|| self.staff.inbox(login));
        change(&mut state);
        self.staff.save_inbox(login, &state)?;
        inboxes.insert(login.to_string(), state);
        Ok(())
    }

    fn locked(&self, login: &str, address: Option<IpAddr>, now: Instant) -> bool {
        let by_login = self.by_login.lock().unwrap_or_else(|p| p.into_inner());
        let by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        by_login.get(login).is_some_and(|f| f.locked(now))
            || address.is_some_and(|a| by_address.get(&a).is_some_and(|f| f.locked(now)))
    }

    fn failed(&self, login: &str, address: Option<IpAddr>, now: Instant) {
        let mut by_login = self.by_login.lock().unwrap_or_else(|p| p.into_inner());
        if by_login.len() < 100_000 || by_login.contains_key(login) {
            by_login.entry(login.to_string()).or_default().fail(now);
        }
        if let Some(a) = address {
            let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
            if by_address.len() < 100_000 || by_address.contains_key(&a) {
                by_address.entry(a).or_default().fail(now);
            }
        }
    }

    /// Signs `login` in with `password` (or, with `setup_code`, sets the
    /// password first). Runs argon2id: call it off the async runtime.
    pub fn sign_in(
        &self,
        login: &str,
        password: &str,
        setup_code: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<Session, SignInError> {
        let now = Instant::now();
        let login = login.trim().to_ascii_lowercase();
        if self.locked(&login, address, now) {
            return Err(SignInError::Locked);
        }
        let opened = match setup_code {
            Some(code) => self.staff.set_up(&login, code, password),
            None => self.staff.sign_in(&login, password),
        };
        let (account, key) = match opened {
            Ok(v) => v,
            Err(StaffError::NotSetUp) => return Err(SignInError::NotSetUp),
            Err(StaffError::WeakPassword) => {
                return Err(SignInError::Password(StaffError::WeakPassword.to_string()));
            }
            Err(
                StaffError::Unknown(_)
                | StaffError::WrongSecret
                | StaffError::Removed
                | StaffError::BadLogin,
            ) => {
                self.failed(&login, address, now);
                return Err(SignInError::Wrong);
            }
            Err(e) => {
                tracing::error!(error = %e, "sign-in failed");
                return Err(SignInError::Internal);
            }
        };
        if !self.key_in_force(&key) {
            self.failed(&login, address, now);
            return Err(SignInError::Wrong);
        }
        let session = Session {
            token: token()?,
            login: account.login,
            name: account.name,
            key: Arc::new(key),
            role: account.role,
            csrf: token()?,
            last_seen: now,
            started: now,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .values()
                .min_by_key(|s| s.last_seen)
                .map(|s| s.token.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(session.token.clone(), session.clone());
        Ok(session)
    }

    fn key_in_force(&self, key: &SecretKey) -> bool {
        let view = self.reads.latest();
        view.trust().can_act(&view.establishment(), &key.public())
    }

    /// The session a request's cookie names, if it is still good: not idle
    /// past the time-out, not past its length, its key still in force.
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let token = session_token(headers)?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let s = sessions.get_mut(&token)?;
        if now.duration_since(s.last_seen) > self.idle
            || now.duration_since(s.started) > MAX_SESSION
        {
            sessions.remove(&token);
            return None;
        }
        s.last_seen = now;
        let s = s.clone();
        drop(sessions);
        if !self.key_in_force(&s.key) {
            self.end(&s.token);
            return None;
        }
        Some(s)
    }

    /// Ends a session.
    pub fn end(&self, token: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// Changes the signed-in person's password.
    pub fn change_password(&self, s: &Session, old: &str, new: &str) -> Result<(), SignInError> {
        match self.staff.change_password(&s.login, old, new) {
            Ok(()) => Ok(()),
            Err(StaffError::WeakPassword) => {
                Err(SignInError::Password(StaffError::WeakPassword.to_string()))
            }
            Err(StaffError::WrongSecret) => Err(SignInError::Wrong),
            Err(e) => {
                tracing::error!(error = %e, "password change failed");
                Err(SignInError::Internal)
            }
        }
    }

    /// The library posts go to, and the network that hears of them.
    pub fn library(&self) -> (&Arc<Mutex<Library>>, Option<&NetHandle>) {
        (&self.library, self.net.as_ref())
    }
}

/// The session token a request's `Cookie` header carries.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == SESSION_COOKIE
                && v.len() == 64
                && v.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Paths anyone may open on a node whose page is for staff only: the way
/// in, and the stylesheet it is drawn with.
pub const OPEN_PATHS: &[&str] = &["/signin", "/signout", "/static/style.css"];

tokio::task_local! {
    /// The signed-in person of the request being handled.
    static VIEWER: Option<Session>;
}

/// The signed-in person of the request being handled, as [`identify`]
/// found them; `None` outside a request or when no one is signed in.
pub fn current() -> Option<Session> {
    VIEWER.try_with(Clone::clone).ok().flatten()
}

/// Finds the request's session once, for every handler and page header
/// ([`current`]). On a node served with
/// [`WebAccess::Staff`](super::WebAccess::Staff) it also turns away
/// anyone not signed in, before any handler reads the library: a browser
/// is sent to sign in (and back to the page it asked for afterwards), a
/// program is answered 401.
pub async fn identify(
    axum::extract::State(state): axum::extract::State<super::WebState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let session = state
        .accounts
        .as_ref()
        .and_then(|a| a.session(request.headers()));
    let path = request.uri().path();
    if session.is_some() || state.access == super::WebAccess::Open || OPEN_PATHS.contains(&path) {
        return VIEWER.scope(session, next.run(request)).await;
    }
    if path == "/api" || path.starts_with("/api/") {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(super::api::ErrorBody {
                error: "this node's library is for its signed-in staff; sign in at /signin \
                        and send the session cookie"
                    .into(),
            }),
        )
            .into_response();
    }
    let asked = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let to = if request.method() == axum::http::Method::GET {
        let query: String =
            serde_urlencoded::to_string([("next", asked.as_str())]).unwrap_or_default();
        format!("/signin?{query}")
    } else {
        "/signin".to_string()
    };
    axum::response::Redirect::to(&to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_for_fifteen_minutes() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            f.fail(t0);
        }
        assert!(!f.locked(t0));
        f.fail(t0);
        assert!(f.locked(t0 + Duration::from_secs(60)));
        assert!(!f.locked(t0 + LOCKOUT + Duration::from_secs(1)));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abcd", "abc"));
    }

    #[test]
    fn only_a_well_formed_cookie_is_read() {
        let mut h = HeaderMap::new();
        let t = "a".repeat(64);
        h.insert(
            header::COOKIE,
            format!("other=1; {SESSION_COOKIE}={t}")
                .parse()
                .expect("header"),
        );
        assert_eq!(session_token(&h), Some(t));
        h.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}=short").parse().expect("header"),
        );
        assert_eq!(session_token(&h), None);
    }
}
