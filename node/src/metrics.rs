//! What a node measures about itself as it runs, for `/metrics`
//! ([`crate::web::ops`]): the sync protocol's bytes each way, counted as
//! frames cross the wire, and how long applying a batch from peers and
//! answering a search take. Counts that the node keeps anyway (envelopes,
//! judgements, peers) are read from its status when the metrics are asked
//! for, not kept twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Bytes of the sync protocol sent and received (length prefixes
/// included), shared by every stream of a node's sync behaviour.
#[derive(Debug, Default)]
pub struct SyncBytes {
    sent: AtomicU64,
    received: AtomicU64,
}

impl SyncBytes {
    /// Counts `n` bytes sent.
    pub fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` bytes received.
    pub fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes sent and received so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

/// A latency histogram in seconds, from half a millisecond to about 16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A node network's measurements, shared by its task and its readers.
#[derive(Debug, Clone)]
pub struct NetMetrics {
    /// Sync bytes each way.
    pub sync: Arc<SyncBytes>,
    /// File protocol bytes each way.
    pub blobs: Arc<SyncBytes>,
    /// Time to verify, judge, store and apply one batch of envelopes from
    /// a peer.
    pub ingest: Histogram,
}

impl Default for NetMetrics {
    fn default() -> Self {
        Self {
            sync: Arc::default(),
            blobs: Arc::default(),
            ingest: latency_histogram(),
        }
    }
}

/// Records how long `took` in `histogram`.
pub fn observe(histogram: &Histogram, took: Duration) {
    histogram.observe(took.as_secs_f64());
}
