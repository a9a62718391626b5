//! The web server's accept loop: what a client can hold of the node.
//!
//! `axum::serve` gives every client as many connections as it opens, for as
//! long as it keeps them, and waits for request headers without end, so a
//! few slow clients (or one slowloris) could hold every socket the node
//! has. Here each connection is served by hyper with a limit on:
//!
//! - connections in all, and from one client address: a connection past
//!   either cap takes the place of the connection idle the longest (one
//!   that never carried a request goes first), which is closed; only when
//!   every counted connection is serving a request is the newcomer closed
//!   at once, before a byte is read. Idle connections, however many, never
//!   keep a new visitor out;
//! - the time a client may take to send a request's headers;
//! - the time a connection may sit idle between requests.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// What one client, and all clients together, may hold of the web server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_per_client: usize,
    /// Time from a request's first byte to the end of its headers.
    pub header_timeout: Duration,
    /// Time a connection may carry nothing before it is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    /// 256 connections, 32 per client address, 10 s for headers, 60 s idle.
    /// A ward's browsers behind one address open about 6 connections each.
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_per_client: 32,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// One open connection, as the accept loop sees it.
struct Conn {
    client: IpAddr,
    born: Instant,
    /// Milliseconds after `born` of the last byte read or written.
    last: AtomicU64,
    /// Requests begun on it.
    requests: AtomicU64,
    /// Requests whose handler is running.
    busy: AtomicUsize,
    /// Told to close, to make room for a newer connection.
    shed: Notify,
}

impl Conn {
    fn new(client: IpAddr) -> Self {
        Self {
            client,
            born: Instant::now(),
            last: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            shed: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn quiet_since(&self) -> Instant {
        self.born + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Which idle connection goes first: one that never carried a request,
    /// then the one quiet the longest.
    fn shed_order(&self) -> (bool, Instant) {
        (
            self.requests.load(Ordering::Relaxed) > 0,
            self.quiet_since(),
        )
    }
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Open {
    next: u64,
    by_client: HashMap<IpAddr, usize>,
    conns: HashMap<u64, Arc<Conn>>,
}

impl Open {
    /// Takes `id` out of the count; false if it was already taken out.
    fn release(&mut self, id: u64) -> bool {
        let Some(conn) = self.conns.remove(&id) else {
            return false;
        };
        if let Some(n) = self.by_client.get_mut(&conn.client) {
            *n -= 1;
            if *n == 0 {
                self.by_client.remove(&conn.client);
            }
        }
        true
    }

    /// Tells the idle connection that has waited longest (among those of
    /// `client`, if given) to close, and takes it out of the count at
    /// once. False when every connection is serving a request.
    fn shed_one(&mut self, client: Option<IpAddr>) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| client.is_none_or(|ip| c.client == ip))
            .filter(|(_, c)| c.busy.load(Ordering::Relaxed) == 0)
            .min_by_key(|(_, c)| c.shed_order())
            .map(|(id, c)| (*id, Arc::clone(c)));
        let Some((id, conn)) = victim else {
            return false;
        };
        self.release(id);
        conn.shed.notify_one();
        true
    }
}

/// One counted connection; dropping it gives the place back.
struct Slot {
    open: Arc<Mutex<Open>>,
    id: u64,
    conn: Arc<Conn>,
}

impl Slot {
    /// A place for a new connection from `client`: when `client`, or all
    /// clients together, are at their cap, the longest-idle connection
    /// (of that client, or of anyone) is closed to make room, so idle
    /// connections never keep a new visitor out. None only when every
    /// connection counted against the cap is serving a request.
    fn take(open: &Arc<Mutex<Open>>, client: IpAddr, limits: &Limits) -> Option<Self> {
        let mut o = open.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = o.by_client.get(&client).copied().unwrap_or(0);
        if mine >= limits.max_per_client && !o.shed_one(Some(client)) {
            return None;
        }
        if o.conns.len() >= limits.max_connections && !o.shed_one(None) {
            return None;
        }
        let id = o.next;
        o.next += 1;
        let conn = Arc::new(Conn::new(client));
        o.conns.insert(id, Arc::clone(&conn));
        *o.by_client.entry(client).or_insert(0) += 1;
        Some(Self {
            open: Arc::clone(open),
            id,
            conn,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.id);
    }
}

/// Counts a request as being served while it lives.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.requests.fetch_add(1, Ordering::Relaxed);
        conn.busy.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(conn))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that notes when it last carried a byte.
struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.conn.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.touch();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Accepts connections until `stop` turns true, then lets each open
/// connection finish the request it is on.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, or a connection reset before
                // accept: wait a little rather than spin.
                tracing::warn!(error = %e, "web server could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&open, client.ip(), &limits) else {
            tracing::debug!(%client, "web connection refused: too many open");
            drop(stream);
            continue;
        };
        connections.spawn(connection(
            stream,
            client,
            app.clone(),
            limits,
            tls.clone(),
            stop.clone(),
            slot,
        ));
    }
    while connections.join_next().await.is_some() {}
}

/// Serves one connection under the limits: over TLS when the server has
/// a certificate (the handshake must end within the header time-out).
async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    app: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
    slot: Slot,
) {
    let conn = Arc::clone(&slot.conn);
    let io = Watched {
        inner: stream,
        conn: Arc::clone(&conn),
    };
    match tls {
        None => http(io, client, app, limits, stop, slot).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(io));
            tokio::select! {
                done = handshake => match done {
                    Ok(Ok(secured)) => http(secured, client, app, limits, stop, slot).await,
                    Ok(Err(e)) => tracing::debug!(%client, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
                },
                _ = conn.shed.notified() => {
                    tracing::debug!(%client, "web connection closed during its TLS handshake, to make room");
                }
            }
        }
    }
}

/// Serves HTTP/1.1 on `io` until the client is done, idle past the
/// limit, or the server stops.
async fn http<S>(
    io: S,
    client: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    slot: Slot,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::clone(&slot.conn);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::new(&state);
        let mut request = request.map(axum::body::Body::new);
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(client));
        let served = app.clone().oneshot(request);
        async move {
            let response = served.await;
            drop(busy);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let state = &slot.conn;
    let mut closing = false;
    // A client that stops reading its response while the connection
    // closes is dropped after this.
    let mut hard_deadline = tokio::time::Instant::now();
    loop {
        let idle_deadline = state.quiet_since() + limits.idle_timeout;
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%client, error = %e, "web connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_deadline.into()), if !closing => {
                if state.quiet_since().elapsed() >= limits.idle_timeout {
                    // Closes at once when between requests, else after the
                    // response in progress.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    hard_deadline = tokio::time::Instant::now() + limits.idle_timeout;
                }
            }
            _ = state.shed.notified(), if !closing => {
                // Idle, and its place is wanted by a newer connection.
                tracing::debug!(%client, "idle web connection closed to make room");
                conn.as_mut().graceful_shutdown();
                closing = true;
                hard_deadline = tokio::time::Instant::now() + limits.header_timeout;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
                hard_deadline = tokio::time::Instant::now() + limits.idle_timeout;
            }
            _ = tokio::time::sleep_until(hard_deadline), if closing => {
                tracing::debug!(%client, "web connection dropped: it did not close in time");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn held(open: &Arc<Mutex<Open>>) -> (usize, usize) {
        let o = open.lock().expect("lock");
        (o.conns.len(), o.by_client.values().sum())
    }

    #[test]
    fn a_newcomer_is_refused_only_when_every_connection_is_serving() {
        let limits = Limits {
            max_connections: 2,
            max_per_client: 2,
            ..Limits::default()
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let (a, b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        let first = Slot::take(&open, a, &limits).expect("a place");
        let second = Slot::take(&open, a, &limits).expect("a place");
        let serving_first = Busy::new(&first.conn);
        let serving_second = Busy::new(&second.conn);
        assert!(Slot::take(&open, a, &limits).is_none());
        assert!(Slot::take(&open, b, &limits).is_none());
        assert_eq!(held(&open), (2, 2));

        // Once the second is between requests, it makes way and is told so.
        drop(serving_second);
        let third = Slot::take(&open, b, &limits).expect("the idle one makes way");
        assert!(second.conn.shed.notified().now_or_never().is_some());
        assert!(first.conn.shed.notified().now_or_never().is_none());
        assert_eq!(held(&open), (2, 2));
        // Its going does not give its place back twice.
        drop(second);
        assert_eq!(held(&open), (2, 2));
        drop(serving_first);
        drop(first);
        drop(third);
        assert_eq!(held(&open), (0, 0));
    }

    #[test]
    fn a_connection_that_never_carried_a_request_goes_first() {
        let limits = Limits {
            max_connections: 2,
            max_per_client: 8,
            ..Limits::default()
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let a: IpAddr = [127, 0, 0, 1].into();
        let used = Slot::take(&open, a, &limits).expect("a place");
        drop(Busy::new(&used.conn));
        let silent = Slot::take(&open, a, &limits).expect("a place");
        let _newcomer = Slot::take(&open, a, &limits).expect("a place");
        assert!(silent.conn.shed.notified().now_or_never().is_some());
        assert!(used.conn.shed.notified().now_or_never().is_none());
    }
}
