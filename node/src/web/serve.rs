//! The web server's accept loop: what a client can hold of the node.
//!
//! `axum::serve` gives every client as many connections as it opens, for as
//! long as it keeps them, and waits for request headers without end, so a
//! few slow clients (or one slowloris) could hold every socket the node
//! has. Here each connection is served by hyper with a limit on:
//!
//! - connections in all, and from one client address: a connection past
//!   either cap is closed at once, before a byte is read;
//! - the time a client may take to send a request's headers;
//! - the time a connection may sit idle between requests.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
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

/// Open connections, in all and per client address.
#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One counted connection; dropping it gives the place back.
struct Slot {
    open: Arc<Mutex<Open>>,
    client: IpAddr,
}

impl Slot {
    fn take(open: &Arc<Mutex<Open>>, client: IpAddr, limits: &Limits) -> Option<Self> {
        let mut o = open.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = o.by_client.get(&client).copied().unwrap_or(0);
        if o.total >= limits.max_connections || mine >= limits.max_per_client {
            return None;
        }
        o.total += 1;
        o.by_client.insert(client, mine + 1);
        Some(Self {
            open: Arc::clone(open),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                o.by_client.remove(&self.client);
            }
        }
    }
}

/// A socket that notes when it last carried a byte.
struct Watched<S> {
    inner: S,
    born: Instant,
    /// Milliseconds after `born` of the last read or write.
    last: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
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
            this.touch();
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
            this.touch();
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
    let last = Arc::new(AtomicU64::new(0));
    let born = Instant::now();
    let io = Watched {
        inner: stream,
        born,
        last: Arc::clone(&last),
    };
    match tls {
        None => http(io, client, app, limits, stop, slot, born, last).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(secured)) => {
                    http(secured, client, app, limits, stop, slot, born, last).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%client, error = %e, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
            }
        }
    }
}

/// Serves HTTP/1.1 on `io` until the client is done, idle past the
/// limit, or the server stops.
#[allow(clippy::too_many_arguments)]
async fn http<S>(
    io: S,
    client: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
    born: Instant,
    last: Arc<AtomicU64>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(client));
        app.clone().oneshot(request)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    // A client that stops reading its response while the connection
    // closes is dropped after this.
    let mut hard_deadline = tokio::time::Instant::now();
    loop {
        let quiet_since = born + Duration::from_millis(last.load(Ordering::Relaxed));
        let idle_deadline = quiet_since + limits.idle_timeout;
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%client, error = %e, "web connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_deadline.into()), if !closing => {
                let quiet_since = born + Duration::from_millis(last.load(Ordering::Relaxed));
                if quiet_since.elapsed() >= limits.idle_timeout {
                    // Closes at once when between requests, else after the
                    // response in progress.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    hard_deadline = tokio::time::Instant::now() + limits.idle_timeout;
                }
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
