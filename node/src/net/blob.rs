//! Files over the network: a request-response protocol for pieces of a
//! file in its verified-streaming encoding, and the fetcher that decides
//! which file to ask for, from whom, and when.
//!
//! A request names a file (its BLAKE3 hash), where to start and how many
//! bytes ([`PIECE_BYTES`] at most); the answer is those bytes with the
//! tree nodes that check every 1 KiB chunk against the hash, or "not
//! here". The receiver keeps each verified chunk as it decodes
//! ([`crate::blobs::BlobStore::receive`]), so a transfer cut anywhere
//! resumes from the last verified byte, from any peer, and a peer whose
//! bytes do not verify is refused at that chunk and another is asked.
//!
//! What is fetched, and when:
//! - envelopes first: no piece is asked for while a sync session with any
//!   peer is running (a person's "fetch it now" excepted);
//! - files a person asked for, first and at once;
//! - then files items here carry, smallest first, as the node's policy
//!   ([`BlobPolicy`]) allows, and only within its hours ([`BlobHours`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use gatehouse_protocol::attachment::BlobHash;
use libp2p::{PeerId, StreamProtocol, request_response};
use serde::{Deserialize, Serialize};

use crate::authoring::attach::WantedBlob;
use crate::metrics::SyncBytes;

/// The file protocol.
pub const BLOB_PROTOCOL: &str = "/gatehouse/blob/1";
/// The most bytes of a file one request asks for.
pub const PIECE_BYTES: u64 = 256 * 1024;
/// The longest answer read: a piece with its tree nodes, with room.
pub const MAX_PIECE_MESSAGE_BYTES: usize = 2 * PIECE_BYTES as usize;
/// How long a peer that did not have a file, or sent one that did not
/// verify, is not asked for it again.
pub const AVOID_FOR: Duration = Duration::from_secs(120);
/// How often the list of files wanted is read again when nothing marks it
/// stale.
pub const WANTED_EVERY: Duration = Duration::from_secs(30);

/// A request for a piece of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRequest {
    /// The file.
    pub hash: BlobHash,
    /// The first byte wanted.
    pub start: u64,
    /// How many bytes.
    pub len: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobResponse {
    /// The piece in its verified-streaming encoding.
    Piece(Vec<u8>),
    /// The peer does not hold the whole file.
    NotHere,
}

/// Frames file requests (48 bytes) and answers (a tag, then the piece),
/// counting the bytes each way.
#[derive(Debug, Clone, Default)]
pub struct BlobCodec {
    /// Bytes sent and received.
    pub bytes: Arc<SyncBytes>,
}

impl request_response::Codec for BlobCodec {
    type Protocol = StreamProtocol;
    type Request = BlobRequest;
    type Response = BlobResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = [0u8; 48];
        io.read_exact(&mut buf).await?;
        self.bytes.received(buf.len());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&buf[..32]);
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[at..at + 8]);
            u64::from_be_bytes(w)
        };
        Ok(BlobRequest {
            hash: BlobHash(hash),
            start: word(32),
            len: word(40).min(PIECE_BYTES),
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut head = [0u8; 5];
        io.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        match head[0] {
            0 => {
                if len > MAX_PIECE_MESSAGE_BYTES {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a piece of {len} bytes is over the limit"),
                    ));
                }
                let mut piece = vec![0u8; len];
                io.read_exact(&mut piece).await?;
                self.bytes.received(5 + len);
                Ok(BlobResponse::Piece(piece))
            }
            1 => {
                self.bytes.received(5);
                Ok(BlobResponse::NotHere)
            }
            t => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown file answer {t}"),
            )),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: BlobRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let mut buf = Vec::with_capacity(48);
        buf.extend_from_slice(req.hash.as_bytes());
        buf.extend_from_slice(&req.start.to_be_bytes());
        buf.extend_from_slice(&req.len.to_be_bytes());
        io.write_all(&buf).await?;
        self.bytes.sent(buf.len());
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: BlobResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let (tag, body) = match &res {
            BlobResponse::Piece(p) => (0u8, p.as_slice()),
            BlobResponse::NotHere => (1u8, [].as_slice()),
        };
        let len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "piece too large"))?;
        io.write_all(&[tag]).await?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(body).await?;
        self.bytes.sent(5 + body.len());
        io.close().await
    }
}

/// Which files a node fetches without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BlobPolicy {
    /// Every file items here carry.
    #[default]
    All,
    /// None: a file is fetched when someone opens its item and asks.
    OnDemand,
    /// Files up to this many bytes; larger ones on demand.
    UpTo(u64),
}

impl BlobPolicy {
    /// Whether a file of `size` bytes is fetched without being asked.
    pub fn fetches(self, size: u64) -> bool {
        match self {
            BlobPolicy::All => true,
            BlobPolicy::OnDemand => false,
            BlobPolicy::UpTo(max) => size <= max,
        }
    }
}

impl fmt::Display for BlobPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobPolicy::All => f.write_str("all"),
            BlobPolicy::OnDemand => f.write_str("on-demand"),
            BlobPolicy::UpTo(n) => write!(f, "{}M", n / (1024 * 1024)),
        }
    }
}

impl FromStr for BlobPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "all" => return Ok(BlobPolicy::All),
            "on-demand" | "on demand" | "none" => return Ok(BlobPolicy::OnDemand),
            _ => {}
        }
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        let unit = s[digits.len()..].trim().to_ascii_lowercase();
        let scale: u64 = match unit.as_str() {
            "m" | "mb" | "mib" => 1024 * 1024,
            "k" | "kb" | "kib" => 1024,
            "g" | "gb" | "gib" => 1024 * 1024 * 1024,
            _ => 0,
        };
        match digits.parse::<u64>() {
            Ok(n) if scale > 0 => Ok(BlobPolicy::UpTo(n.saturating_mul(scale))),
            _ => Err(format!(
                "{s:?} is not a file policy: give all, on-demand, or a size such as 25M (files up to that size)"
            )),
        }
    }
}

/// The hours of the day in which files are fetched without being asked
/// (local time; may wrap past midnight, as 19:00-07:00 does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobHours {
    /// Minutes after midnight it opens.
    pub from: u16,
    /// Minutes after midnight it closes.
    pub to: u16,
}

impl BlobHours {
    /// Whether `minute` (after midnight) is within the hours.
    pub fn contains(self, minute: u16) -> bool {
        if self.from <= self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }

    /// Whether now, in this machine's time zone, is within the hours.
    pub fn open_now(self) -> bool {
        let now = jiff::Zoned::now();
        let minute =
            u16::try_from(i32::from(now.hour()) * 60 + i32::from(now.minute())).unwrap_or(0);
        self.contains(minute)
    }
}

impl fmt::Display for BlobHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.from / 60,
            self.from % 60,
            self.to / 60,
            self.to % 60
        )
    }
}

impl FromStr for BlobHours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a span of hours: give it as 19:00-07:00");
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (from, to) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        if from == to {
            return Err(format!("{s:?} opens and closes at the same time"));
        }
        Ok(Self { from, to })
    }
}

/// A file being fetched, as the network page shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TransferStatus {
    /// The file's name.
    pub name: String,
    /// Its hash.
    pub hash: BlobHash,
    /// Its size.
    pub size: u64,
    /// Bytes here.
    pub have: u64,
    /// Bytes a second since this transfer started.
    pub rate: f64,
    /// Seconds left at that rate.
    pub eta_secs: Option<u64>,
    /// The peer it comes from.
    pub peer: String,
    /// Asked for by a person.
    pub demanded: bool,
}

/// A piece in flight.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The file.
    pub wanted: WantedBlob,
    /// Who it is asked of.
    pub peer: PeerId,
    /// Bytes here when this transfer started, and when.
    pub began: (u64, Instant),
    /// Bytes here now.
    pub have: u64,
    /// A person asked for it.
    pub demanded: bool,
}

impl Transfer {
    /// As the network page shows it.
    pub fn status(&self) -> TransferStatus {
        let secs = self.began.1.elapsed().as_secs_f64();
        let moved = self.have.saturating_sub(self.began.0) as f64;
        let rate = if secs > 0.0 { moved / secs } else { 0.0 };
        let left = self.wanted.attachment.size.saturating_sub(self.have) as f64;
        TransferStatus {
            name: self.wanted.attachment.name.clone(),
            hash: self.wanted.attachment.hash,
            size: self.wanted.attachment.size,
            have: self.have,
            rate,
            eta_secs: (rate > 0.0).then(|| (left / rate).ceil() as u64),
            peer: self.peer.to_string(),
            demanded: self.demanded,
        }
    }
}

/// What the fetcher decides next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Ask `peer` for this piece.
    Ask(PeerId, BlobRequest),
    /// Nothing to do now.
    Wait,
}

/// The fetcher: which file, from whom, from where. The shell feeds it
/// the files wanted, the connected admitted peers and what answers did;
/// it holds one transfer at a time.
#[derive(Debug, Default)]
pub struct Fetcher {
    /// The transfer whose piece is in flight.
    pub current: Option<Transfer>,
    /// Files a person asked for, first come first.
    demanded: VecDeque<BlobHash>,
    /// Files wanted, smallest first, as last read.
    wanted: Vec<WantedBlob>,
    /// When that list was read; `None`: read it again.
    wanted_at: Option<Instant>,
    /// Peers not asked for a file again until then.
    avoid: HashMap<BlobHash, HashMap<PeerId, Instant>>,
    /// Bytes of files refused at a chunk that did not verify.
    pub corrupt_pieces: u64,
}

impl Fetcher {
    /// Whether the list of files wanted should be read again.
    pub fn wanted_is_stale(&self) -> bool {
        self.wanted_at.is_none_or(|t| t.elapsed() >= WANTED_EVERY)
    }

    /// Marks the list of files wanted for reading again (envelopes
    /// arrived, a file came or was refused).
    pub fn mark_stale(&mut self) {
        self.wanted_at = None;
    }

    /// The files wanted, as read from the library.
    pub fn set_wanted(&mut self, wanted: Vec<WantedBlob>) {
        self.demanded
            .retain(|h| wanted.iter().any(|w| w.attachment.hash == *h));
        self.wanted = wanted;
        self.wanted_at = Some(Instant::now());
    }

    /// A person asked for a file.
    pub fn demand(&mut self, hash: BlobHash) {
        if !self.demanded.contains(&hash) {
            self.demanded.push_back(hash);
        }
        self.mark_stale();
    }

    /// Whether a person is waiting for this file.
    pub fn is_demanded(&self, hash: &BlobHash) -> bool {
        self.demanded.contains(hash)
    }

    /// Does not ask `peer` for `hash` for a while.
    pub fn avoid(&mut self, hash: BlobHash, peer: PeerId) {
        self.avoid
            .entry(hash)
            .or_default()
            .insert(peer, Instant::now() + AVOID_FOR);
    }

    fn avoided(&mut self, hash: &BlobHash) -> HashSet<PeerId> {
        let now = Instant::now();
        match self.avoid.get_mut(hash) {
            Some(m) => {
                m.retain(|_, until| *until > now);
                m.keys().copied().collect()
            }
            None => HashSet::new(),
        }
    }

    /// What to ask for next, if nothing is in flight: a file a person
    /// asked for, else (when `background` allows: no envelope session
    /// running, within the hours) the smallest file the policy fetches,
    /// from the first peer in `peers` not avoided for it.
    pub fn next(&mut self, peers: &[PeerId], background: bool, policy: BlobPolicy) -> Next {
        if self.current.is_some() || peers.is_empty() {
            return Next::Wait;
        }
        let demanded: Vec<BlobHash> = self.demanded.iter().copied().collect();
        let candidates: Vec<(WantedBlob, bool)> = demanded
            .iter()
            .filter_map(|h| self.wanted.iter().find(|w| w.attachment.hash == *h))
            .map(|w| (w.clone(), true))
            .chain(
                self.wanted
                    .iter()
                    .filter(|w| {
                        background
                            && policy.fetches(w.attachment.size)
                            && !demanded.contains(&w.attachment.hash)
                    })
                    .map(|w| (w.clone(), false)),
            )
            .collect();
        for (wanted, demanded) in candidates {
            let avoided = self.avoided(&wanted.attachment.hash);
            let Some(peer) = peers.iter().find(|p| !avoided.contains(p)).copied() else {
                continue;
            };
            let request = BlobRequest {
                hash: wanted.attachment.hash,
                start: wanted.have,
                len: PIECE_BYTES.min(wanted.attachment.size.saturating_sub(wanted.have)),
            };
            self.current = Some(Transfer {
                peer,
                began: (wanted.have, Instant::now()),
                have: wanted.have,
                wanted,
                demanded,
            });
            return Next::Ask(peer, request);
        }
        Next::Wait
    }

    /// The piece in flight was kept: `have` bytes are here. Returns the
    /// next piece to ask the same peer for, unless the file is whole or a
    /// background transfer must give way (`background` false).
    pub fn kept(&mut self, have: u64, background: bool) -> Option<(PeerId, BlobRequest)> {
        let t = self.current.as_mut()?;
        t.have = have;
        if let Some(w) = self
            .wanted
            .iter_mut()
            .find(|w| w.attachment.hash == t.wanted.attachment.hash)
        {
            w.have = have;
        }
        if have >= t.wanted.attachment.size || (!background && !t.demanded) {
            self.current = None;
            return None;
        }
        Some((
            t.peer,
            BlobRequest {
                hash: t.wanted.attachment.hash,
                start: have,
                len: PIECE_BYTES.min(t.wanted.attachment.size - have),
            },
        ))
    }

    /// The file in flight is whole (or was refused): it is no longer
    /// wanted.
    pub fn finished(&mut self, hash: &BlobHash) {
        self.current = None;
        self.demanded.retain(|h| h != hash);
        self.wanted.retain(|w| w.attachment.hash != *hash);
        self.avoid.remove(hash);
    }

    /// The piece in flight failed (the peer did not have it, sent bytes
    /// that did not verify, or the request failed): the peer is avoided
    /// for that file when it is at fault, and the transfer ends, to be
    /// resumed from what is here.
    pub fn failed(&mut self, have: u64, peer_at_fault: bool) {
        if let Some(t) = self.current.take() {
            if peer_at_fault {
                self.avoid(t.wanted.attachment.hash, t.peer);
            }
            if let Some(w) = self
                .wanted
                .iter_mut()
                .find(|w| w.attachment.hash == t.wanted.attachment.hash)
            {
                w.have = have;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::attachment::{Attachment, MediaType};
    use gatehouse_protocol::id::ItemId;

    fn wanted(n: u8, size: u64) -> WantedBlob {
        WantedBlob {
            attachment: Attachment {
                name: format!("f{n}.pdf"),
                media_type: MediaType::Pdf,
                size,
                hash: BlobHash([n; 32]),
            },
            item: ItemId([n; 16]),
            have: 0,
        }
    }

    #[test]
    fn policies_and_hours_read_as_written() {
        assert_eq!("all".parse(), Ok(BlobPolicy::All));
        assert_eq!("on-demand".parse(), Ok(BlobPolicy::OnDemand));
        assert_eq!("25M".parse(), Ok(BlobPolicy::UpTo(25 * 1024 * 1024)));
        assert!("lots".parse::<BlobPolicy>().is_err());
        let night: BlobHours = "19:00-07:00".parse().expect("hours");
        assert!(night.contains(19 * 60));
        assert!(night.contains(3 * 60));
        assert!(!night.contains(7 * 60));
        assert!(!night.contains(12 * 60));
        assert_eq!(night.to_string(), "19:00-07:00");
        let day: BlobHours = "09:30-17:00".parse().expect("hours");
        assert!(day.contains(10 * 60) && !day.contains(18 * 60));
        assert!("25:00-07:00".parse::<BlobHours>().is_err());
    }

    #[test]
    fn a_file_asked_for_goes_first_and_the_policy_holds_back_large_ones() {
        let peer = PeerId::random();
        let mut f = Fetcher::default();
        f.set_wanted(vec![wanted(1, 10), wanted(2, 100 << 20)]);
        // Outside the hours (or while envelopes move) nothing is fetched
        // unasked.
        assert_eq!(f.next(&[peer], false, BlobPolicy::All), Next::Wait);
        f.demand(BlobHash([2; 32]));
        let Next::Ask(_, req) = f.next(&[peer], false, BlobPolicy::All) else {
            panic!("the asked-for file waits")
        };
        assert_eq!(
            (req.hash, req.start, req.len),
            (BlobHash([2; 32]), 0, PIECE_BYTES)
        );
        f.finished(&BlobHash([2; 32]));
        // Up to 1 MiB: the small one only.
        let Next::Ask(_, req) = f.next(&[peer], true, BlobPolicy::UpTo(1 << 20)) else {
            panic!("the small file waits")
        };
        assert_eq!(req.hash, BlobHash([1; 32]));
    }

    #[test]
    fn a_peer_at_fault_is_passed_over_and_the_transfer_resumes_where_it_stopped() {
        let (bad, good) = (PeerId::random(), PeerId::random());
        let mut f = Fetcher::default();
        f.set_wanted(vec![wanted(3, 1 << 20)]);
        let Next::Ask(p, _) = f.next(&[bad, good], true, BlobPolicy::All) else {
            panic!("nothing asked")
        };
        assert_eq!(p, bad);
        assert_eq!(
            f.kept(PIECE_BYTES, true).map(|(p, r)| (p, r.start)),
            Some((bad, PIECE_BYTES))
        );
        f.failed(PIECE_BYTES + 4096, true);
        let Next::Ask(p, req) = f.next(&[bad, good], true, BlobPolicy::All) else {
            panic!("nothing asked")
        };
        assert_eq!((p, req.start), (good, PIECE_BYTES + 4096));
        // A background transfer gives way when envelopes start to move.
        assert_eq!(f.kept(2 * PIECE_BYTES, false), None);
        assert!(f.current.is_none());
    }
}
