//! The sync protocol on the wire: each request and response is a `u32`
//! length, then its canonical bytes ([`gatehouse_protocol::sync`]),
//! bounded by [`MAX_SYNC_MESSAGE_BYTES`].
//!
//! Versions are negotiated per stream by multistream-select from
//! [`SYNC_PROTOCOLS`], newest first. Version 4 adds asking which
//! envelopes are urgent ([`SyncRequest::Urgent`]), not sent to a peer of an
//! earlier version (the session then fetches in the order reconciliation
//! found). Version 3 adds the clock exchange
//! ([`SyncRequest::Clock`]); to a peer that speaks only an earlier version
//! it is not sent (the request fails here, before anything is written).
//! Version 2 carries envelopes of every kind; a peer that speaks only
//! version 1 reads just changes and certificates (and would count any other
//! kind as a forgery), so on a version-1 stream envelopes of later kinds
//! are left out.

use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use gatehouse_protocol::envelope::{MAX_FIRST_KIND, peek_kind_tag};
use gatehouse_protocol::sync::{MAX_SYNC_MESSAGE_BYTES, SyncRequest, SyncResponse};
use libp2p::StreamProtocol;
use libp2p::request_response;

use crate::metrics::SyncBytes;

/// The current sync protocol: every envelope kind, the clock, and asking
/// which envelopes are urgent.
pub const SYNC_PROTOCOL_V4: &str = "/gatehouse/sync/4";
/// The third sync protocol: every envelope kind, and the clock.
pub const SYNC_PROTOCOL_V3: &str = "/gatehouse/sync/3";
/// The second sync protocol: every envelope kind.
pub const SYNC_PROTOCOL_V2: &str = "/gatehouse/sync/2";
/// The first sync protocol: changes and certificates only.
pub const SYNC_PROTOCOL_V1: &str = "/gatehouse/sync/1";
/// The sync protocols this node speaks, newest first.
pub const SYNC_PROTOCOLS: [&str; 4] = [
    SYNC_PROTOCOL_V4,
    SYNC_PROTOCOL_V3,
    SYNC_PROTOCOL_V2,
    SYNC_PROTOCOL_V1,
];

/// Leaves out, for a version-1 peer, envelopes of kinds it cannot read.
fn for_version(protocol: &StreamProtocol, envelopes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    if protocol.as_ref() != SYNC_PROTOCOL_V1 {
        return envelopes;
    }
    envelopes
        .into_iter()
        .filter(|e| peek_kind_tag(e).is_some_and(|t| t <= MAX_FIRST_KIND))
        .collect()
}

/// Frames sync messages: a `u32` length, then the canonical bytes; counts
/// the bytes each way.
#[derive(Debug, Clone, Default)]
pub struct SyncCodec {
    /// Bytes sent and received, shared by every stream.
    pub bytes: Arc<SyncBytes>,
}

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    counted: &SyncBytes,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_SYNC_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync message of {len} bytes is over the limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    counted.received(4 + len);
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
    counted: &SyncBytes,
) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sync message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    counted.sent(4 + bytes.len());
    io.close().await
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncRequest::decode(&read_frame(io, &self.bytes).await?).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncResponse::decode(&read_frame(io, &self.bytes).await?).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let req = match req {
            SyncRequest::Push(envs) => SyncRequest::Push(for_version(protocol, envs)),
            SyncRequest::Clock
                if ![SYNC_PROTOCOL_V4, SYNC_PROTOCOL_V3].contains(&protocol.as_ref()) =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the peer's sync protocol has no clock exchange",
                ));
            }
            SyncRequest::Urgent(_) if protocol.as_ref() != SYNC_PROTOCOL_V4 => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the peer's sync protocol cannot say which envelopes are urgent",
                ));
            }
            other => other,
        };
        write_frame(io, &req.encode(), &self.bytes).await
    }

    async fn write_response<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let res = match res {
            SyncResponse::Envelopes(envs) => SyncResponse::Envelopes(for_version(protocol, envs)),
            other => other,
        };
        write_frame(io, &res.encode(), &self.bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_peer_is_sent_only_the_kinds_it_reads() {
        let change = vec![1, 1, 0];
        let certificate = vec![1, 2, 0];
        let later = vec![1, 7, 0];
        let all = vec![change.clone(), certificate.clone(), later.clone()];
        let v1 = StreamProtocol::new(SYNC_PROTOCOL_V1);
        let v2 = StreamProtocol::new(SYNC_PROTOCOL_V2);
        assert_eq!(for_version(&v1, all.clone()), vec![change, certificate]);
        assert_eq!(for_version(&v2, all.clone()), all);
    }
}
