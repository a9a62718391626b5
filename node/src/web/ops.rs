//! What a site's monitoring reads: `/metrics` (Prometheus text format,
//! written by `prometheus-client`), `/healthz` (the process answers) and
//! `/readyz` (the store reads, the network listens, and a reconciliation
//! with a peer is recent enough). They sit outside sign-in, since a
//! scraper cannot sign in: `/metrics` answers only a client on the node's
//! own machine unless the node is told to serve it to the site's network
//! ([`WebState::with_metrics_from_network`]); the health checks carry no
//! library data and answer anyone.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{LocalClient, WebError, WebState};
use crate::net::NetStatus;
use crate::query::StatusReport;

/// A reconciliation older than this makes the node not ready, unless told
/// otherwise ([`WebState::with_ready_sync_within`]).
pub const READY_SYNC_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);

/// The monitoring routes (outside sign-in; see the module documentation).
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> &'static str {
    "ok\n"
}

type Labels = Vec<(String, String)>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// The metrics text for a node's status, its network's and the latency
/// histograms.
fn exposition(
    status: &StatusReport,
    store_bytes: u64,
    net: Option<&NetStatus>,
    (ingest, search): (Option<&Histogram>, &Histogram),
) -> Result<String, std::fmt::Error> {
    let mut root = Registry::default();
    let r = root.sub_registry_with_prefix("gatehouse");
    let unaccepted: usize = status
        .pending
        .values()
        .chain(status.rejected.values())
        .sum();
    gauge(r, "envelopes", "Envelopes held", status.envelopes as u64);
    gauge(
        r,
        "envelopes_accepted",
        "Envelopes held and in effect",
        status.envelopes.saturating_sub(unaccepted) as u64,
    );
    for (name, help, by_reason) in [
        (
            "envelopes_pending",
            "Envelopes held waiting for what they depend on, by reason",
            &status.pending,
        ),
        (
            "envelopes_rejected",
            "Envelopes held without effect, by reason",
            &status.rejected,
        ),
    ] {
        let family = Family::<Labels, Gauge>::default();
        for (reason, n) in by_reason {
            family
                .get_or_create(&vec![("reason".into(), reason.clone())])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        r.register(name, help, family);
    }
    gauge(
        r,
        "certificates",
        "Certificates held",
        status.certificates as u64,
    );
    gauge(r, "items", "Items in the library", status.items as u64);
    gauge(
        r,
        "store_size_bytes",
        "Bytes the store takes on disk",
        store_bytes,
    );
    if let Some(net) = net {
        let connected = net.peers.values().filter(|p| p.connected).count();
        gauge(
            r,
            "peers_connected",
            "Peers connected now",
            connected as u64,
        );
        gauge(
            r,
            "peers_admitted",
            "Peers connected now and admitted",
            net.peers
                .values()
                .filter(|p| p.connected && p.admitted)
                .count() as u64,
        );
        let last_sync = Family::<Labels, Gauge>::default();
        let received = Family::<Labels, Counter>::default();
        let sent = Family::<Labels, Counter>::default();
        let forged = Family::<Labels, Counter>::default();
        let clock = Family::<Labels, Gauge>::default();
        for (peer, p) in &net.peers {
            let labels = vec![
                ("peer".to_string(), peer.clone()),
                (
                    "establishment".to_string(),
                    p.establishment.clone().unwrap_or_default(),
                ),
            ];
            if let Some(ms) = p.last_sync_ms {
                last_sync
                    .get_or_create(&labels)
                    .set(i64::try_from(ms / 1000).unwrap_or(i64::MAX));
            }
            received.get_or_create(&labels).inc_by(p.envelopes_received);
            sent.get_or_create(&labels).inc_by(p.envelopes_sent);
            forged.get_or_create(&labels).inc_by(u64::from(p.forged));
            if let Some(ms) = p.clock_offset_ms {
                clock.get_or_create(&labels).set(ms / 1000);
            }
        }
        r.register(
            "peer_last_sync_timestamp_seconds",
            "When the last reconciliation with each peer completed (Unix time)",
            last_sync,
        );
        r.register(
            "peer_envelopes_received",
            "New envelopes stored from each peer",
            received,
        );
        r.register("peer_envelopes_sent", "Envelopes sent to each peer", sent);
        r.register(
            "peer_forged_received",
            "Forged envelopes received from each peer",
            forged,
        );
        r.register(
            "peer_clock_offset_seconds",
            "Each peer's clock less this node's, as last measured",
            clock,
        );
        if let Some(ms) = net.last_sync_ms {
            gauge(
                r,
                "last_sync_timestamp_seconds",
                "When the last reconciliation with any peer completed (Unix time)",
                ms / 1000,
            );
        }
        counter(
            r,
            "forged_received",
            "Forged envelopes received from any peer",
            net.forged_received,
        );
        counter(
            r,
            "refused_received",
            "Envelopes received but not stored (no effect, past a limit, against the rules)",
            net.refused_received,
        );
        counter(
            r,
            "refused_connections",
            "Connections refused: peers not admitted",
            net.refused_connections,
        );
        counter(
            r,
            "gossip_received",
            "Gossip messages received",
            net.gossip_received,
        );
        counter(
            r,
            "gossip_duplicates",
            "Gossip messages received that were already held",
            net.gossip_duplicates,
        );
        counter(
            r,
            "sync_sent_bytes",
            "Bytes of the sync protocol sent",
            net.sync_bytes_sent,
        );
        counter(
            r,
            "sync_received_bytes",
            "Bytes of the sync protocol received",
            net.sync_bytes_received,
        );
        counter(
            r,
            "file_sent_bytes",
            "Bytes of the file protocol sent",
            net.blob_bytes_sent,
        );
        counter(
            r,
            "file_received_bytes",
            "Bytes of the file protocol received",
            net.blob_bytes_received,
        );
        counter(
            r,
            "files_fetched",
            "Files fetched whole from peers, checked and kept",
            net.blobs_fetched,
        );
        counter(
            r,
            "file_pieces_refused",
            "Pieces of files from peers that did not verify against the file's hash",
            net.blob_pieces_refused,
        );
        counter(
            r,
            "files_refused",
            "Files refused once whole (a patient identifier in the text, or not the type the change says)",
            net.blobs_refused,
        );
    }
    if let Some(ingest) = ingest {
        r.register(
            "ingest_duration_seconds",
            "Time to verify, judge, store and apply one batch of envelopes from peers",
            ingest.clone(),
        );
    }
    r.register(
        "search_duration_seconds",
        "Time to answer one search on the web page or API",
        search.clone(),
    );
    let mut text = String::new();
    encode(&mut text, &root)?;
    Ok(text)
}

async fn metrics(State(state): State<WebState>, LocalClient(local): LocalClient) -> Response {
    if !local && !state.metrics_from_network {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to this node's own machine only (web.metrics_from_network = true serves them to the site's network)\n",
        )
            .into_response();
    }
    let net = state.net.as_ref().map(crate::net::NetHandle::status);
    let read = state
        .read(|view| Ok((view.status()?, view.store_bytes()?)))
        .await;
    let (status, store_bytes) = match read {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let ingest = state.net.as_ref().map(|n| &n.metrics().ingest);
    match exposition(
        &status,
        store_bytes,
        net.as_ref(),
        (ingest, &state.search_latency),
    ) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => WebError::Internal("the metrics could not be written".into()).into_response(),
    }
}

async fn readyz(State(state): State<WebState>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = state.read(|view| Ok(view.status()?)).await {
        problems.push(format!("the store does not read: {e}"));
    }
    if let Some(net) = &state.net {
        let status = net.status();
        if status.listening.is_empty() {
            problems.push("the network listens on no address".to_string());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match status.last_sync_ms {
            None => problems.push("no reconciliation with any peer yet".to_string()),
            Some(at) if now.saturating_sub(at) > state.ready_sync_within.as_millis() as u64 => {
                problems.push(format!(
                    "the last reconciliation with a peer was {} s ago (more than {} s)",
                    now.saturating_sub(at) / 1000,
                    state.ready_sync_within.as_secs()
                ));
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string()).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::id::{EstablishmentId, NetworkId};

    #[test]
    fn pending_and_rejected_envelopes_are_counted_by_reason() {
        let status = StatusReport {
            network: NetworkId([1; 32]),
            network_name: None,
            establishment: crate::query::EstablishmentRef {
                id: EstablishmentId([2; 16]),
                name: None,
            },
            envelopes: 10,
            certificates: 4,
            items: 3,
            pending: [("signer not admitted yet".to_string(), 2)].into(),
            rejected: [("key revoked".to_string(), 1)].into(),
        };
        let search = crate::metrics::latency_histogram();
        search.observe(0.002);
        let text = exposition(&status, 1234, None, (None, &search)).expect("text");
        for line in [
            "gatehouse_envelopes 10",
            "gatehouse_envelopes_accepted 7",
            "gatehouse_envelopes_pending{reason=\"signer not admitted yet\"} 2",
            "gatehouse_envelopes_rejected{reason=\"key revoked\"} 1",
            "gatehouse_store_size_bytes 1234",
            "gatehouse_search_duration_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        // No network: no peer figures.
        assert!(!text.contains("gatehouse_peers_connected"), "{text}");
    }
}
