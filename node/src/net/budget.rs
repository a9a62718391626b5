//! The node's bandwidth budget: at most so many bytes a second sent, and
//! at most so many taken in, over every connection to every peer together,
//! for a site whose link is slow or shared with the rest of the prison.
//!
//! The budget is held where every protocol's bytes pass: each substream of
//! each connection (TCP or QUIC, sync, gossip, identify, relayed circuits)
//! is wrapped in [`Metered`], which takes from one token [`Bucket`] per
//! direction before it writes or reads. A read held back leaves bytes in
//! the multiplexer's window, so the sender is slowed by flow control
//! rather than its bytes being dropped. The bucket itself is a pure
//! function of the clock it is given, so its arithmetic is tested without
//! waiting.

use std::io;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::PeerId;
use libp2p::core::ConnectedPoint;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent};
use tokio::time::{Instant, Sleep};

/// The most a bucket holds, in seconds of its rate: what may pass at once
/// after a quiet spell.
const BURST_SECS: f64 = 0.25;
/// The least a bucket holds, in bytes, so that a low rate still lets a
/// frame header and a small message through in one go.
const MIN_BURST_BYTES: f64 = 4096.0;
/// Under a download budget, a QUIC peer may send this many seconds of the
/// rate ahead of what is read.
pub const RECEIVE_WINDOW_SECS: f64 = 2.0;
/// The least it may send ahead.
pub const MIN_RECEIVE_WINDOW_BYTES: u32 = 64 * 1024;
/// The least a write or read waits for, in bytes (or what it wants, if
/// less): each write becomes a frame of the multiplexer and of Noise, so
/// letting through a few bytes at each wake would spend the link on
/// framing.
const MIN_QUANTUM_BYTES: f64 = 1500.0;

/// A token bucket: `rate` bytes a second, up to a burst.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket of `rate` bytes a second, as of `now`.
    pub fn new(rate: NonZeroU64, now: Instant) -> Self {
        #[allow(clippy::cast_precision_loss)] // rates are far below 2^52
        let rate = rate.get() as f64;
        let burst = (rate * BURST_SECS).max(MIN_BURST_BYTES);
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// How many of `want` bytes may pass at `now` (taken from the bucket),
    /// or, when none may, how long until some can.
    pub fn take(&mut self, want: usize, now: Instant) -> Result<usize, Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        // Wait for a worthwhile amount: a quantum, or all that is wanted.
        #[allow(clippy::cast_precision_loss)]
        let need = (want as f64)
            .min(MIN_QUANTUM_BYTES.max(self.burst / 8.0))
            .max(1.0);
        if self.tokens < need {
            let wait = (need - self.tokens) / self.rate;
            return Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let allowed = (self.tokens.floor() as usize).min(want);
        Ok(allowed)
    }

    /// Takes `n` bytes that passed (at most what [`Bucket::take`] allowed).
    pub fn spend(&mut self, n: usize) {
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        self.tokens -= n;
    }
}

/// The budget in both directions, shared by every connection.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    up: Option<Arc<Mutex<Bucket>>>,
    down: Option<Arc<Mutex<Bucket>>>,
}

impl Budget {
    /// A budget of at most `up` bytes a second sent and `down` taken in
    /// (`None`: no limit that way).
    pub fn new(up: Option<NonZeroU64>, down: Option<NonZeroU64>) -> Self {
        let now = Instant::now();
        let bucket = |r: NonZeroU64| Arc::new(Mutex::new(Bucket::new(r, now)));
        Self {
            up: up.map(bucket),
            down: down.map(bucket),
        }
    }

    /// Under a download budget, how far ahead of what is read a peer may
    /// send on one stream: [`RECEIVE_WINDOW_SECS`] of the rate, at least
    /// [`MIN_RECEIVE_WINDOW_BYTES`].
    pub fn receive_window(&self) -> Option<u32> {
        let down = self.down.as_ref()?;
        let rate = down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rate;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let window = (rate * RECEIVE_WINDOW_SECS).min(f64::from(u32::MAX)) as u32;
        Some(window.max(MIN_RECEIVE_WINDOW_BYTES))
    }
}

/// Asks `bucket` for up to `want` bytes; while none may pass, sets `timer`
/// to wake this task when some can.
fn allowance(
    bucket: Option<&Arc<Mutex<Bucket>>>,
    timer: &mut Option<Pin<Box<Sleep>>>,
    want: usize,
    cx: &mut Context<'_>,
) -> Poll<usize> {
    let Some(bucket) = bucket else {
        return Poll::Ready(want);
    };
    loop {
        if let Some(t) = timer.as_mut() {
            ready!(t.as_mut().poll(cx));
            *timer = None;
        }
        let taken = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(want, Instant::now());
        match taken {
            Ok(n) => return Poll::Ready(n),
            Err(wait) => *timer = Some(Box::pin(tokio::time::sleep(wait))),
        }
    }
}

fn spend(bucket: Option<&Arc<Mutex<Bucket>>>, n: usize) {
    if let Some(b) = bucket {
        b.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .spend(n);
    }
}

/// A substream whose reads and writes take from the budget.
pub struct Metered<S> {
    inner: S,
    budget: Budget,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Metered<S> {
    fn new(inner: S, budget: Budget) -> Self {
        Self {
            inner,
            budget,
            read_timer: None,
            write_timer: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let allowed = ready!(allowance(
            this.budget.down.as_ref(),
            &mut this.read_timer,
            buf.len(),
            cx
        ));
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf[..allowed]))?;
        spend(this.budget.down.as_ref(), n);
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        let allowed = ready!(allowance(
            this.budget.up.as_ref(),
            &mut this.write_timer,
            buf.len(),
            cx
        ));
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]))?;
        spend(this.budget.up.as_ref(), n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A connection's multiplexer whose substreams are [`Metered`].
pub struct MeteredMuxer<M> {
    inner: M,
    budget: Budget,
}

impl<M> MeteredMuxer<M> {
    /// Wraps a connection's multiplexer.
    pub fn new(inner: M, budget: Budget) -> Self {
        Self { inner, budget }
    }
}

impl<M> StreamMuxer for MeteredMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = Metered<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let s = ready!(Pin::new(&mut this.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(Metered::new(s, this.budget.clone())))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let s = ready!(Pin::new(&mut this.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(Metered::new(s, this.budget.clone())))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// What turns a transport's connections into ones whose substreams are
/// held to `budget`, for [`libp2p::Transport::map`].
pub fn metered<M>(
    budget: Budget,
) -> impl FnOnce((PeerId, M), ConnectedPoint) -> (PeerId, StreamMuxerBox) + Clone
where
    M: StreamMuxer + Unpin + Send + 'static,
    M::Substream: Unpin + Send + 'static,
    M::Error: Send + Sync + 'static,
{
    move |(peer, muxer), _| (peer, StreamMuxerBox::new(MeteredMuxer::new(muxer, budget)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).expect("not zero")
    }

    /// Sends `total` bytes in writes of `chunk` through a bucket of `r`
    /// bytes a second, on a clock moved only by the waits the bucket asks
    /// for; returns the time it took.
    fn send(total: usize, chunk: usize, r: u64) -> Duration {
        let start = Instant::now();
        let mut now = start;
        let mut b = Bucket::new(rate(r), start);
        let mut left = total;
        while left > 0 {
            match b.take(chunk.min(left), now) {
                Ok(n) => {
                    assert!(n > 0);
                    b.spend(n);
                    left -= n;
                }
                Err(wait) => now += wait,
            }
        }
        now - start
    }

    #[test]
    fn a_long_transfer_takes_its_size_over_the_rate() {
        // 256 kbit/s, as an old site's link: 32,000 bytes a second.
        for (total, chunk) in [(2_000_000, 65_536), (2_000_000, 1_000), (300_000, 8_192)] {
            let took = send(total, chunk, 32_000).as_secs_f64();
            // Less the burst the full bucket lets through at once.
            #[allow(clippy::cast_precision_loss)]
            let expected = (total as f64 - 8_000.0) / 32_000.0;
            assert!(
                (took - expected).abs() <= expected * 0.01,
                "{total} bytes in chunks of {chunk}: {took:.2} s, expected {expected:.2} s"
            );
        }
    }

    #[test]
    fn a_quiet_spell_gives_at_most_a_burst() {
        let start = Instant::now();
        let mut b = Bucket::new(rate(10_000), start);
        // Hours idle: still only the burst (the minimum, 4,096 bytes, at
        // this rate) at once.
        let later = start + Duration::from_secs(7_200);
        let n = b.take(1_000_000, later).expect("some");
        assert_eq!(n, 4_096);
        b.spend(n);
        let wait = b.take(1, later).expect_err("empty");
        assert!(wait <= Duration::from_millis(1), "{wait:?}");
        // A large write waits for a quantum (1,500 bytes: 150 ms at this
        // rate), not for the first byte, so the link does not carry a
        // frame for every few bytes.
        let wait = b.take(1_000_000, later).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(150));
        assert_eq!(b.take(1_000_000, later + wait), Ok(1_500));
        // A fast rate's burst is a quarter second of it.
        let mut fast = Bucket::new(rate(4_000_000), start);
        assert_eq!(fast.take(usize::MAX, later), Ok(1_000_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_metered_stream_writes_at_the_rate() {
        use futures::AsyncWriteExt as _;
        let budget = Budget::new(Some(rate(50_000)), None);
        let mut w = Metered::new(futures::io::AllowStdIo::new(Vec::new()), budget);
        let started = Instant::now();
        w.write_all(&vec![7u8; 512_000]).await.expect("write");
        w.close().await.expect("close");
        let took = started.elapsed().as_secs_f64();
        assert_eq!(w.inner.into_inner().len(), 512_000);
        // 512,000 bytes at 50,000 a second, less a 12,500-byte burst.
        let expected = (512_000.0 - 12_500.0) / 50_000.0;
        assert!((took - expected).abs() < expected * 0.02, "{took:.2} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_metered_stream_reads_at_the_rate() {
        use futures::AsyncReadExt as _;
        let budget = Budget::new(None, Some(rate(20_000)));
        let source = futures::io::Cursor::new(vec![1u8; 100_000]);
        let mut r = Metered::new(source, budget);
        let started = Instant::now();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.expect("read");
        let took = started.elapsed().as_secs_f64();
        assert_eq!(got.len(), 100_000);
        // Less a burst of 5,000 bytes (a quarter second of the rate).
        let expected = (100_000.0 - 5_000.0) / 20_000.0;
        assert!((took - expected).abs() < expected * 0.02, "{took:.2} s");
    }
}
