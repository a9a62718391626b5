//! A poor link between two real nodes on loopback: a TCP proxy that adds a
//! delay each way, holds each direction to a rate, counts the bytes that
//! cross, and can cut every connection (and refuse new ones) for a while,
//! as an old site's line drops out. These machines have `tc tbf` but no
//! `netem`, so delay and cuts live here, in the test's own process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_node::net::Multiaddr;
use gatehouse_node::runtime::RunningNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the link does.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Added to every byte, each way.
    pub delay: Duration,
    /// Bytes a second, each way.
    pub rate: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes from the dialling side to the target, and back.
    forward: AtomicU64,
    backward: AtomicU64,
    /// When the link comes back, while it is cut.
    cut_until: Mutex<Option<Instant>>,
    /// The tasks moving bytes of every open connection.
    open: Mutex<Vec<JoinHandle<()>>>,
}

/// A running link in front of one node.
pub struct Shaper {
    /// Where to dial the node through the link.
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shaper {
    /// Starts a link on a free loopback port to `target`.
    pub async fn start(target: SocketAddr, link: Link) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let s = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cut = lock(&s.cut_until).is_some_and(|t| Instant::now() < t);
                if cut {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let forward = tokio::spawn(pump(cr, sw, link, s.clone(), true));
                let backward = tokio::spawn(pump(sr, cw, link, s.clone(), false));
                let mut open = lock(&s.open);
                open.retain(|h| !h.is_finished());
                open.push(forward);
                open.push(backward);
            }
        });
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// Starts a link in front of a running node: the link, and the address
    /// to dial the node through it (the node's own PeerId behind the
    /// link's port).
    pub async fn in_front_of(node: &RunningNode, link: Link) -> anyhow::Result<(Self, Multiaddr)> {
        let direct = crate::cluster::address(node).await?.to_string();
        // "/ip4/127.0.0.1/tcp/PORT/p2p/PEER"
        let parts: Vec<&str> = direct.split('/').collect();
        let (Some(port), Some(peer)) = (parts.get(4), parts.get(6)) else {
            anyhow::bail!("{direct} is not an address with a port and a peer");
        };
        let line = Self::start(([127, 0, 0, 1], port.parse()?).into(), link).await?;
        let via = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", line.addr.port()).parse()?;
        Ok((line, via))
    }

    /// Bytes that crossed from the dialling side to the target, and back.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.state.forward.load(Ordering::Relaxed),
            self.state.backward.load(Ordering::Relaxed),
        )
    }

    /// Cuts every connection now and refuses new ones for `outage`.
    pub fn cut(&self, outage: Duration) {
        *lock(&self.state.cut_until) = Some(Instant::now() + outage);
        for h in lock(&self.state.open).drain(..) {
            h.abort();
        }
    }

    /// Stops the link.
    pub fn stop(&self) {
        self.cut(Duration::from_secs(3600));
        self.accept.abort();
    }
}

/// Moves bytes one way: each chunk read is held until `delay` after it was
/// read, then written no faster than `rate`. The queue between reading and
/// writing is small, so a sender faster than the rate is held back by TCP,
/// as by a slow line.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    state: Arc<State>,
    forward: bool,
) {
    // A packet's worth at a time on a line that delays; on one that does
    // not, whatever has arrived.
    let chunk: usize = if link.delay.is_zero() {
        64 * 1024
    } else {
        1400
    };
    // About a delay's worth of bytes at the rate may be in flight.
    let in_flight = (link.rate as f64 * link.delay.as_secs_f64() / chunk as f64).ceil() as usize;
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(in_flight.max(2));
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; chunk];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // When the line is free again: each chunk takes its length over the
    // rate, and a quiet line saves up nothing.
    let mut free_at = Instant::now();
    while let Some((read_at, bytes)) = rx.recv().await {
        // A timer, even one already due, waits for the timer's next tick
        // (a millisecond): only a deadline still ahead is slept for.
        wait_until(read_at + link.delay).await;
        free_at = free_at.max(Instant::now());
        wait_until(free_at).await;
        free_at += Duration::from_secs_f64(bytes.len() as f64 / link.rate as f64);
        if to.write_all(&bytes).await.is_err() {
            break;
        }
        let counter = if forward {
            &state.forward
        } else {
            &state.backward
        };
        counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    reader.abort();
}

async fn wait_until(deadline: Instant) {
    if deadline > Instant::now() {
        tokio::time::sleep_until(deadline.into()).await;
    }
}
