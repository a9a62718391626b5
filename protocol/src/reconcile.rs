//! Range-based set reconciliation of envelope ids: two nodes learn which ids
//! each holds that the other lacks, exchanging bytes in proportion to the
//! difference between their sets, not to their size.
//!
//! Both sides sort their ids (32-byte [`EnvelopeId`]s, compared as bytes).
//! A [`Message`] is a list of ranges that together cover the whole id space
//! in order: each range ends at an exclusive upper bound and starts where the
//! previous one ended (the first starts at the all-zero id, the last ends
//! past every id). Each range carries one mode:
//!
//! - `Skip`: nothing more to say about this range (it is settled).
//! - `Fingerprint`: the sender's fingerprint of its ids in the range — blake3
//!   (domain `gatehouse/v1/reconcile-fp`) of the ids' sum as 256-bit
//!   little-endian integers mod 2^256 and their count, truncated to 8 bytes.
//! - `IdList`: all of the sender's ids in the range (sent when few).
//! - `Difference`: the answer to an `IdList`: `have`, the sender's ids in the
//!   range that the list lacks, and `lack`, the ids of the list the sender
//!   lacks. The range is then settled on both sides.
//! - `Pending`: the sender ran out of room in this message and did not look
//!   at the range; the receiver describes it again next time.
//!
//! A [`Reconciler`] answers each range in turn. A matching fingerprint becomes
//! `Skip`. A differing fingerprint (or `Pending`) is answered with the
//! answerer's ids when it holds at most 8 there; otherwise the range is split
//! at the answerer's own ids into 16 sub-ranges, each sent as a fingerprint
//! (or as a one-id list). An `IdList` is answered with a `Difference` (or
//! `Skip` when the lists agree), and the answerer records what it learned in
//! [`Step::need`] and [`Step::offer`]; the receiver of the `Difference`
//! records the mirror image. Every range is settled exactly once, so over a
//! whole exchange each side's `need` is exactly the other's surplus and its
//! `offer` exactly the other's `need`. A side whose answer would be all `Skip`
//! sends nothing ([`Step::reply`] is `None`) and the exchange is over. The
//! reconciler keeps no state between messages: each side needs only its own
//! sorted ids. A message is bounded by [`MAX_RECONCILE_MESSAGE_BYTES`]; a
//! large difference takes more rounds, not bigger messages.
//!
//! A walkthrough (the `walkthrough` test runs it). Alice holds 10,000 ids and
//! Bob the same plus one. Alice's [`Reconciler::initiate`] is a single range
//! over everything with her fingerprint: 23 bytes. Bob's fingerprint differs,
//! so he splits the space at his own ids into 16 ranges of about 625 ids and
//! sends 16 fingerprints. Fifteen match Alice's and become `Skip`; she splits
//! the other into 16 ranges of about 39 ids. Bob finds one of those differing
//! and splits it into 16 ranges of two or three ids. Alice finds the one
//! holding Bob's extra id and, holding two ids there, lists them. Bob answers
//! with a `Difference` (his extra id in `have`, nothing in `lack`) and records
//! the id in his `offer`; Alice records it in her `need`, her answer would be
//! all `Skip`, so her `respond` returns no reply. Six messages, 1,147 bytes.
//! Had the sets been identical, Bob would have answered the 23-byte opening
//! with no reply at all.
//!
//! Encoding (integers big-endian, see [`crate::encoding`]): a version byte
//! ([`RECONCILE_VERSION`]), a `u32` count of ranges, then per range its upper
//! bound, a mode tag and the mode's payload. A bound is one length byte `L`:
//! 0 means past every id; 1 to 32 is followed by the first `L` bytes of the
//! bound, the rest being zero, and the last of them must not be zero (so each
//! bound has one encoding). Senders choose the shortest prefix that separates
//! two neighbouring ids, usually 2 or 3 bytes. Tags: 0 `Skip`, 1 `Pending`,
//! 2 `Fingerprint` (8 bytes), 3 `IdList` (`u32` count, 32-byte ids),
//! 4 `Difference` (two such lists: `have`, then `lack`). Ranges strictly
//! increase, the last ends past every id, and each list is strictly
//! increasing and inside its range; anything else is refused.

use thiserror::Error;

use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::EnvelopeId;

/// The reconcile message format version this code writes and reads.
pub const RECONCILE_VERSION: u8 = 1;
/// Largest encoded reconcile message, in bytes. Replies are built to fit.
pub const MAX_RECONCILE_MESSAGE_BYTES: usize = 256 * 1024;
/// Most ranges in one message.
pub const MAX_RECONCILE_RANGES: usize = 16 * 1024;
/// Most ids in one message, over all its id lists.
pub const MAX_RECONCILE_IDS: usize = 8 * 1024;

/// Sub-ranges a differing range is split into.
const BRANCHES: usize = 16;
/// A differing range holding at most this many of the answerer's ids is
/// answered with one id list rather than split.
const ID_LIST_THRESHOLD: usize = 8;
/// A sub-range holding at most this many ids is sent as an id list rather
/// than a fingerprint.
const SUB_RANGE_ID_LIST_THRESHOLD: usize = 1;
/// Replies stop expanding ranges past this size (the first expansion may go
/// up to the hard limit), leaving room for the peer to answer in turn.
const TARGET_MESSAGE_BYTES: usize = MAX_RECONCILE_MESSAGE_BYTES / 2;
/// Version byte and range count.
const HEADER_BYTES: usize = 1 + 4;
/// Domain separation of fingerprints.
const FINGERPRINT_DOMAIN: &[u8] = b"gatehouse/v1/reconcile-fp\0";
/// Bytes of a range fingerprint. 64 bits: two different sets of one range
/// agree by accident with probability 2^-64 per comparison, and a miss
/// only delays that range to a round where the sets have changed.
const FINGERPRINT_BYTES: usize = 8;

const TAG_SKIP: u8 = 0;
const TAG_PENDING: u8 = 1;
const TAG_FINGERPRINT: u8 = 2;
const TAG_ID_LIST: u8 = 3;
const TAG_DIFFERENCE: u8 = 4;

/// Why a reconcile message cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReconcileError {
    /// The message has no ranges.
    #[error("reconcile message has no ranges")]
    Empty,
    /// The message has more than [`MAX_RECONCILE_RANGES`] ranges.
    #[error("reconcile message has {count} ranges, over the limit")]
    TooManyRanges {
        /// How many ranges it has.
        count: usize,
    },
    /// The message lists more than [`MAX_RECONCILE_IDS`] ids.
    #[error("reconcile message lists {count} ids, over the limit")]
    TooManyIds {
        /// How many ids it lists.
        count: usize,
    },
    /// A range's upper bound is not above the previous one's.
    #[error("reconcile range {index} is out of order")]
    OutOfOrder {
        /// Position of the offending range.
        index: usize,
    },
    /// The last range does not reach past every id.
    #[error("reconcile ranges do not cover the id space")]
    NotCovering,
    /// An id list is not strictly increasing.
    #[error("ids of reconcile range {index} are not strictly increasing")]
    UnsortedIds {
        /// Position of the offending range.
        index: usize,
    },
    /// An id lies outside the range whose list holds it.
    #[error("an id of reconcile range {index} lies outside the range")]
    IdOutsideRange {
        /// Position of the offending range.
        index: usize,
    },
}

impl ReconcileError {
    fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Empty => "no ranges",
            ReconcileError::TooManyRanges { .. } => "too many ranges",
            ReconcileError::TooManyIds { .. } => "too many ids",
            ReconcileError::OutOfOrder { .. } => "ranges out of order",
            ReconcileError::NotCovering => "ranges do not cover the id space",
            ReconcileError::UnsortedIds { .. } => "ids not strictly increasing",
            ReconcileError::IdOutsideRange { .. } => "id outside its range",
        }
    }
}

/// The exclusive upper bound of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Bound {
    /// Below this id (a prefix padded with zeros).
    Below([u8; 32]),
    /// Past every id.
    End,
}

impl Bound {
    /// Where the first range starts.
    const START: Bound = Bound::Below([0; 32]);

    /// The shortest zero-padded prefix of `b` that is above `a` (`a < b`).
    fn between(a: &EnvelopeId, b: &EnvelopeId) -> Bound {
        let mut key = [0u8; 32];
        for ((k, x), y) in key.iter_mut().zip(a.0.iter()).zip(b.0.iter()) {
            *k = *y;
            if x != y {
                break;
            }
        }
        Bound::Below(key)
    }

    /// `id` lies below this bound.
    fn above(&self, id: &EnvelopeId) -> bool {
        match self {
            Bound::Below(key) => id.0 < *key,
            Bound::End => true,
        }
    }

    fn prefix_len(key: &[u8; 32]) -> usize {
        key.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1)
    }

    fn encoded_len(&self) -> usize {
        match self {
            Bound::Below(key) => 1 + Self::prefix_len(key),
            Bound::End => 1,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Bound::Below(key) => {
                let len = Self::prefix_len(key);
                // A zero key would read back as `End`; validation refuses it
                // as a first bound, and `between` never makes one.
                w.u8(len as u8).fixed(&key[..len]);
            }
            Bound::End => {
                w.u8(0);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Bound, DecodeError> {
        let len = usize::from(r.u8()?);
        if len == 0 {
            return Ok(Bound::End);
        }
        if len > 32 {
            return Err(DecodeError::Invalid {
                field: "reconcile bound",
                reason: "longer than 32 bytes",
            });
        }
        let prefix = r.take(len)?;
        if prefix.last() == Some(&0) {
            return Err(DecodeError::Invalid {
                field: "reconcile bound",
                reason: "ends with a zero byte",
            });
        }
        let mut key = [0u8; 32];
        key[..len].copy_from_slice(prefix);
        Ok(Bound::Below(key))
    }
}

/// What a range says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Skip,
    Pending,
    Fingerprint([u8; FINGERPRINT_BYTES]),
    IdList(Vec<EnvelopeId>),
    Difference {
        have: Vec<EnvelopeId>,
        lack: Vec<EnvelopeId>,
    },
}

impl Mode {
    fn id_count(&self) -> usize {
        match self {
            Mode::IdList(ids) => ids.len(),
            Mode::Difference { have, lack } => have.len() + lack.len(),
            Mode::Skip | Mode::Pending | Mode::Fingerprint(_) => 0,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Mode::Skip | Mode::Pending => 0,
            Mode::Fingerprint(_) => FINGERPRINT_BYTES,
            Mode::IdList(ids) => 4 + 32 * ids.len(),
            Mode::Difference { have, lack } => 8 + 32 * (have.len() + lack.len()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    upper: Bound,
    mode: Mode,
}

impl Range {
    fn encoded_len(&self) -> usize {
        self.upper.encoded_len() + 1 + self.mode.payload_len()
    }
}

fn write_ids(w: &mut Writer, ids: &[EnvelopeId]) {
    w.seq(ids, |w, id| {
        w.fixed(&id.0);
    });
}

fn read_ids(r: &mut Reader<'_>) -> Result<Vec<EnvelopeId>, DecodeError> {
    r.seq("reconcile ids", MAX_RECONCILE_IDS, |r| {
        Ok(EnvelopeId(r.fixed::<32>()?))
    })
}

/// One reconcile message: ranges covering the id space in order.
///
/// Only [`Reconciler`] and [`Message::decode`] make messages, so every
/// message is well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    ranges: Vec<Range>,
}

impl Message {
    /// The canonical encoding (at most [`MAX_RECONCILE_MESSAGE_BYTES`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RECONCILE_VERSION);
        w.seq(&self.ranges, |w, range| {
            range.upper.write(w);
            match &range.mode {
                Mode::Skip => {
                    w.u8(TAG_SKIP);
                }
                Mode::Pending => {
                    w.u8(TAG_PENDING);
                }
                Mode::Fingerprint(fp) => {
                    w.u8(TAG_FINGERPRINT).fixed(fp);
                }
                Mode::IdList(ids) => {
                    w.u8(TAG_ID_LIST);
                    write_ids(w, ids);
                }
                Mode::Difference { have, lack } => {
                    w.u8(TAG_DIFFERENCE);
                    write_ids(w, have);
                    write_ids(w, lack);
                }
            }
        });
        w.into_bytes()
    }

    /// Parses and checks a message: exactly the bytes [`Message::encode`]
    /// would write for it, ranges in order and covering the id space, within
    /// the size limits. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > MAX_RECONCILE_MESSAGE_BYTES {
            return Err(DecodeError::TooLong {
                field: "reconcile message",
                len: bytes.len(),
                max: MAX_RECONCILE_MESSAGE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != RECONCILE_VERSION {
            return Err(DecodeError::UnknownTag {
                field: "reconcile version",
                tag: u64::from(version),
            });
        }
        let ranges = r.seq("reconcile ranges", MAX_RECONCILE_RANGES, |r| {
            let upper = Bound::read(r)?;
            let mode = match r.u8()? {
                TAG_SKIP => Mode::Skip,
                TAG_PENDING => Mode::Pending,
                TAG_FINGERPRINT => Mode::Fingerprint(r.fixed::<FINGERPRINT_BYTES>()?),
                TAG_ID_LIST => Mode::IdList(read_ids(r)?),
                TAG_DIFFERENCE => Mode::Difference {
                    have: read_ids(r)?,
                    lack: read_ids(r)?,
                },
                tag => {
                    return Err(DecodeError::UnknownTag {
                        field: "reconcile range mode",
                        tag: u64::from(tag),
                    });
                }
            };
            Ok(Range { upper, mode })
        })?;
        r.finish()?;
        let message = Message { ranges };
        message.validate().map_err(|e| DecodeError::Invalid {
            field: "reconcile message",
            reason: e.reason(),
        })?;
        Ok(message)
    }

    /// Checks the rules a decoded message must meet.
    fn validate(&self) -> Result<(), ReconcileError> {
        if self.ranges.is_empty() {
            return Err(ReconcileError::Empty);
        }
        if self.ranges.len() > MAX_RECONCILE_RANGES {
            return Err(ReconcileError::TooManyRanges {
                count: self.ranges.len(),
            });
        }
        let count: usize = self.ranges.iter().map(|r| r.mode.id_count()).sum();
        if count > MAX_RECONCILE_IDS {
            return Err(ReconcileError::TooManyIds { count });
        }
        let mut lower = Bound::START;
        for (index, range) in self.ranges.iter().enumerate() {
            if range.upper <= lower {
                return Err(ReconcileError::OutOfOrder { index });
            }
            let lists: [&[EnvelopeId]; 2] = match &range.mode {
                Mode::IdList(ids) => [ids, &[]],
                Mode::Difference { have, lack } => [have, lack],
                Mode::Skip | Mode::Pending | Mode::Fingerprint(_) => [&[], &[]],
            };
            for ids in lists {
                if ids.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(ReconcileError::UnsortedIds { index });
                }
                let inside = |id: &EnvelopeId| !lower.above(id) && range.upper.above(id);
                if !ids.iter().all(inside) {
                    return Err(ReconcileError::IdOutsideRange { index });
                }
            }
            lower = range.upper;
        }
        if lower != Bound::End {
            return Err(ReconcileError::NotCovering);
        }
        Ok(())
    }
}

/// The outcome of answering one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// The message to send back, or `None` when this side has nothing left
    /// to say and the exchange is over.
    pub reply: Option<Message>,
    /// Ids the peer holds that we lack, learned in this step (ascending).
    pub need: Vec<EnvelopeId>,
    /// Ids we hold that the peer lacks, learned in this step (ascending).
    pub offer: Vec<EnvelopeId>,
}

/// A reply under construction, with its exact encoded size.
struct Builder {
    ranges: Vec<Range>,
    bytes: usize,
    ids: usize,
    expanded: bool,
}

impl Builder {
    fn new() -> Self {
        Builder {
            ranges: Vec::new(),
            bytes: HEADER_BYTES,
            ids: 0,
            expanded: false,
        }
    }

    /// Appends a range, merging it into the previous one when both are
    /// `Skip` or both `Pending`.
    fn push(&mut self, range: Range) {
        if let Some(last) = self.ranges.last_mut()
            && matches!(
                (&last.mode, &range.mode),
                (Mode::Skip, Mode::Skip) | (Mode::Pending, Mode::Pending)
            )
        {
            self.bytes -= last.upper.encoded_len();
            self.bytes += range.upper.encoded_len();
            last.upper = range.upper;
            return;
        }
        self.bytes += range.encoded_len();
        self.ids += range.mode.id_count();
        self.ranges.push(range);
    }

    /// Whether `bytes`, `ranges` and `ids` more fit, keeping room for the
    /// rest of the incoming ranges (`tail_bytes`, `tail_ranges`) to be
    /// answered in their shortest form.
    fn fits(
        &self,
        bytes: usize,
        ranges: usize,
        ids: usize,
        tail_bytes: usize,
        tail_ranges: usize,
    ) -> bool {
        let limit = if self.expanded {
            TARGET_MESSAGE_BYTES
        } else {
            MAX_RECONCILE_MESSAGE_BYTES
        };
        self.bytes + bytes + tail_bytes <= limit
            && self.ranges.len() + ranges + tail_ranges <= MAX_RECONCILE_RANGES
            && self.ids + ids <= MAX_RECONCILE_IDS
    }

    /// Room left for ids, by bytes and by count, after `reserved` bytes.
    fn room_for_ids(&self, reserved: usize) -> usize {
        let limit = if self.expanded {
            TARGET_MESSAGE_BYTES
        } else {
            MAX_RECONCILE_MESSAGE_BYTES
        };
        let by_bytes = limit.saturating_sub(self.bytes + reserved) / 32;
        by_bytes.min(MAX_RECONCILE_IDS.saturating_sub(self.ids))
    }

    fn finish(self) -> Option<Message> {
        if self.ranges.iter().all(|r| r.mode == Mode::Skip) {
            None
        } else {
            Some(Message {
                ranges: self.ranges,
            })
        }
    }
}

/// `ours \ theirs` and `theirs \ ours`, both sorted.
fn difference(ours: &[EnvelopeId], theirs: &[EnvelopeId]) -> (Vec<EnvelopeId>, Vec<EnvelopeId>) {
    let (mut have, mut lack) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < ours.len() && j < theirs.len() {
        match ours[i].cmp(&theirs[j]) {
            std::cmp::Ordering::Less => {
                have.push(ours[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                lack.push(theirs[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    have.extend_from_slice(&ours[i..]);
    lack.extend_from_slice(&theirs[j..]);
    (have, lack)
}

/// Adds `id`, read as a 256-bit little-endian integer, to `acc` mod 2^256.
fn add_id(acc: &[u64; 4], id: &EnvelopeId) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut carry = false;
    for ((o, a), chunk) in out.iter_mut().zip(acc).zip(id.0.chunks_exact(8)) {
        let mut limb = [0u8; 8];
        limb.copy_from_slice(chunk);
        let (s, c1) = a.overflowing_add(u64::from_le_bytes(limb));
        let (s, c2) = s.overflowing_add(u64::from(carry));
        *o = s;
        carry = c1 || c2;
    }
    out
}

/// `a + b` mod 2^256.
fn add_sums(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut carry = false;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let (s, c1) = x.overflowing_add(*y);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        *o = s;
        carry = c1 || c2;
    }
    out
}

/// `a - b` mod 2^256.
fn sub_sums(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let (d, b1) = x.overflowing_sub(*y);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        *o = d;
        borrow = b1 || b2;
    }
    out
}

/// A sorted set of distinct ids a [`Reconciler`] answers from: a slice
/// with its prefix sums ([`SortedIds`]), or an [`IdIndex`] kept up to date
/// as ids arrive.
pub trait IdSet {
    /// How many ids.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The id at `index` (`index < len`).
    fn id(&self, index: usize) -> EnvelopeId;
    /// How many ids are below `key`.
    fn rank(&self, key: &[u8; 32]) -> usize;
    /// The ids at `lo..hi`.
    fn ids(&self, lo: usize, hi: usize) -> Vec<EnvelopeId>;
    /// The sum of the ids at `lo..hi` as 256-bit little-endian integers
    /// mod 2^256 (what a fingerprint is made from).
    fn sum(&self, lo: usize, hi: usize) -> [u64; 4];
}

impl<T: IdSet + ?Sized> IdSet for &T {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn id(&self, index: usize) -> EnvelopeId {
        (**self).id(index)
    }
    fn rank(&self, key: &[u8; 32]) -> usize {
        (**self).rank(key)
    }
    fn ids(&self, lo: usize, hi: usize) -> Vec<EnvelopeId> {
        (**self).ids(lo, hi)
    }
    fn sum(&self, lo: usize, hi: usize) -> [u64; 4] {
        (**self).sum(lo, hi)
    }
}

/// A sorted slice of ids with its prefix sums (built in linear time).
pub struct SortedIds<'a> {
    ids: &'a [EnvelopeId],
    /// `sums[i]` is the sum of `ids[..i]` mod 2^256.
    sums: Vec<[u64; 4]>,
}

impl<'a> SortedIds<'a> {
    /// The set of `sorted_ids`, which must be strictly increasing (sorted,
    /// without duplicates); debug builds check.
    pub fn new(sorted_ids: &'a [EnvelopeId]) -> Self {
        debug_assert!(
            sorted_ids.windows(2).all(|w| w[0] < w[1]),
            "reconcile ids must be sorted and distinct"
        );
        let mut sums = Vec::with_capacity(sorted_ids.len() + 1);
        let mut acc = [0u64; 4];
        sums.push(acc);
        for id in sorted_ids {
            acc = add_id(&acc, id);
            sums.push(acc);
        }
        SortedIds {
            ids: sorted_ids,
            sums,
        }
    }
}

impl IdSet for SortedIds<'_> {
    fn len(&self) -> usize {
        self.ids.len()
    }
    fn id(&self, index: usize) -> EnvelopeId {
        self.ids[index]
    }
    fn rank(&self, key: &[u8; 32]) -> usize {
        self.ids.partition_point(|id| id.0 < *key)
    }
    fn ids(&self, lo: usize, hi: usize) -> Vec<EnvelopeId> {
        self.ids[lo..hi].to_vec()
    }
    fn sum(&self, lo: usize, hi: usize) -> [u64; 4] {
        sub_sums(&self.sums[hi], &self.sums[lo])
    }
}

/// Ids per block of an [`IdIndex`] when built; a block is split in two
/// when it reaches twice this.
const INDEX_BLOCK: usize = 512;

/// The sorted set of ids a node holds, kept up to date as ids arrive, so
/// that answering a reconcile message costs time in proportion to the
/// ranges it names, not to the set: ids in sorted blocks, each with its
/// sum, and the count and sum of everything before each block.
///
/// Inserting costs a block's worth of moves plus a pass over the blocks'
/// running totals; a range's sum is the difference of two prefix sums,
/// each the running total before a block plus part of one block.
#[derive(Debug, Clone, Default)]
pub struct IdIndex {
    blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
struct Block {
    ids: Vec<EnvelopeId>,
    /// The sum of `ids`.
    sum: [u64; 4],
    /// How many ids the blocks before this one hold.
    before: usize,
    /// The sum of the ids the blocks before this one hold.
    sum_before: [u64; 4],
}

impl Block {
    fn of(ids: Vec<EnvelopeId>) -> Block {
        let sum = ids.iter().fold([0u64; 4], |acc, id| add_id(&acc, id));
        Block {
            ids,
            sum,
            before: 0,
            sum_before: [0; 4],
        }
    }
}

impl IdIndex {
    /// The index of `sorted_ids` (strictly increasing; debug builds check).
    pub fn from_sorted(sorted_ids: Vec<EnvelopeId>) -> IdIndex {
        debug_assert!(
            sorted_ids.windows(2).all(|w| w[0] < w[1]),
            "reconcile ids must be sorted and distinct"
        );
        let mut index = IdIndex {
            blocks: sorted_ids
                .chunks(INDEX_BLOCK)
                .map(|c| Block::of(c.to_vec()))
                .collect(),
        };
        index.totals_from(0);
        index
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&mut self, id: EnvelopeId) -> bool {
        if self.blocks.is_empty() {
            self.blocks.push(Block::of(vec![id]));
            return true;
        }
        // The last block whose first id is not above `id`, or the first.
        let b = self
            .blocks
            .partition_point(|blk| blk.ids[0] <= id)
            .saturating_sub(1);
        let block = &mut self.blocks[b];
        let Err(at) = block.ids.binary_search(&id) else {
            return false;
        };
        block.ids.insert(at, id);
        block.sum = add_id(&block.sum, &id);
        if block.ids.len() >= 2 * INDEX_BLOCK {
            let upper = block.ids.split_off(INDEX_BLOCK);
            let lower = std::mem::take(&mut block.ids);
            self.blocks[b] = Block::of(lower);
            self.blocks.insert(b + 1, Block::of(upper));
        }
        self.totals_from(b);
        true
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &EnvelopeId) -> bool {
        let b = self.blocks.partition_point(|blk| blk.ids[0] <= *id);
        b > 0 && self.blocks[b - 1].ids.binary_search(id).is_ok()
    }

    /// Every id, in order.
    pub fn to_vec(&self) -> Vec<EnvelopeId> {
        self.blocks
            .iter()
            .flat_map(|b| b.ids.iter().copied())
            .collect()
    }

    /// Brings the running totals of blocks `from..` up to date.
    fn totals_from(&mut self, from: usize) {
        let (mut before, mut sum) = match from.checked_sub(1).map(|p| &self.blocks[p]) {
            Some(p) => (p.before + p.ids.len(), add_sums(&p.sum_before, &p.sum)),
            None => (0, [0; 4]),
        };
        for block in &mut self.blocks[from..] {
            block.before = before;
            block.sum_before = sum;
            before += block.ids.len();
            sum = add_sums(&sum, &block.sum);
        }
    }

    /// The block holding position `index` (`index < len`) and the place in it.
    fn locate(&self, index: usize) -> (usize, usize) {
        let b = self.blocks.partition_point(|blk| blk.before <= index) - 1;
        (b, index - self.blocks[b].before)
    }

    /// The sum of the ids at `..index`.
    fn prefix(&self, index: usize) -> [u64; 4] {
        if index == 0 {
            return [0; 4];
        }
        if index == self.len() {
            let last = &self.blocks[self.blocks.len() - 1];
            return add_sums(&last.sum_before, &last.sum);
        }
        let (b, at) = self.locate(index);
        let block = &self.blocks[b];
        // From whichever end of the block is nearer.
        if at <= block.ids.len() / 2 {
            let part = block.ids[..at]
                .iter()
                .fold([0u64; 4], |acc, id| add_id(&acc, id));
            add_sums(&block.sum_before, &part)
        } else {
            let rest = block.ids[at..]
                .iter()
                .fold([0u64; 4], |acc, id| add_id(&acc, id));
            sub_sums(&add_sums(&block.sum_before, &block.sum), &rest)
        }
    }
}

impl IdSet for IdIndex {
    fn len(&self) -> usize {
        self.blocks.last().map_or(0, |b| b.before + b.ids.len())
    }
    fn id(&self, index: usize) -> EnvelopeId {
        let (b, at) = self.locate(index);
        self.blocks[b].ids[at]
    }
    fn rank(&self, key: &[u8; 32]) -> usize {
        let b = self.blocks.partition_point(|blk| blk.ids[0].0 < *key);
        if b == 0 {
            return 0;
        }
        let block = &self.blocks[b - 1];
        block.before + block.ids.partition_point(|id| id.0 < *key)
    }
    fn ids(&self, lo: usize, hi: usize) -> Vec<EnvelopeId> {
        let mut out = Vec::with_capacity(hi.saturating_sub(lo));
        if lo >= hi {
            return out;
        }
        let (mut b, mut at) = self.locate(lo);
        while out.len() < hi - lo {
            let block = &self.blocks[b];
            let take = (hi - lo - out.len()).min(block.ids.len() - at);
            out.extend_from_slice(&block.ids[at..at + take]);
            b += 1;
            at = 0;
        }
        out
    }
    fn sum(&self, lo: usize, hi: usize) -> [u64; 4] {
        sub_sums(&self.prefix(hi), &self.prefix(lo))
    }
}

/// One side of a reconciliation, over that side's ids.
///
/// It keeps no state between messages: build one per message if the set
/// changes in between (a grown set only costs extra rounds).
pub struct Reconciler<S> {
    ids: S,
}

impl<'a> Reconciler<SortedIds<'a>> {
    /// A reconciler over `sorted_ids`, which must be strictly increasing
    /// (sorted, without duplicates); debug builds check. Linear time.
    pub fn new(sorted_ids: &'a [EnvelopeId]) -> Self {
        Reconciler {
            ids: SortedIds::new(sorted_ids),
        }
    }
}

impl<S: IdSet> Reconciler<S> {
    /// A reconciler over a set kept sorted elsewhere (an [`IdIndex`]).
    pub fn over(ids: S) -> Self {
        Reconciler { ids }
    }

    /// The opening message of the initiator: one range over the whole id
    /// space, with our fingerprint (or our ids, when there are very few).
    pub fn initiate(&self) -> Message {
        Message {
            ranges: vec![Range {
                upper: Bound::End,
                mode: if self.ids.len() <= ID_LIST_THRESHOLD {
                    Mode::IdList(self.ids.ids(0, self.ids.len()))
                } else {
                    Mode::Fingerprint(self.fingerprint(0, self.ids.len()))
                },
            }],
        }
    }

    /// Answers a message from the peer: the reply (`None` when the exchange
    /// is over) and the ids learned in this step. The reply never exceeds
    /// [`MAX_RECONCILE_MESSAGE_BYTES`]; what does not fit is marked pending
    /// and handled in later rounds. If our set grew since our last message,
    /// `need` leaves out ids we now hold and `offer` ids we never held.
    pub fn respond(&self, msg: &Message) -> Result<Step, ReconcileError> {
        msg.validate()?;
        let n = msg.ranges.len();
        // Bytes to answer ranges `i..` in their shortest form (`Skip` or
        // `Pending` with the same bound); merging only makes it shorter.
        let mut tail = vec![0usize; n + 1];
        for i in (0..n).rev() {
            tail[i] = tail[i + 1] + msg.ranges[i].upper.encoded_len() + 1;
        }
        let mut out = Builder::new();
        let mut step = Step::default();
        let mut lo = 0;
        for (i, range) in msg.ranges.iter().enumerate() {
            let hi = match &range.upper {
                Bound::Below(key) => self.ids.rank(key).max(lo),
                Bound::End => self.ids.len(),
            };
            let upper = range.upper;
            let (tail_bytes, tail_ranges) = (tail[i + 1], n - i - 1);
            let skip = Range {
                upper,
                mode: Mode::Skip,
            };
            let pending = Range {
                upper,
                mode: Mode::Pending,
            };
            match &range.mode {
                Mode::Skip => out.push(skip),
                Mode::Difference { have, lack } => {
                    let ours = self.ids.ids(lo, hi);
                    let held = |id: &&EnvelopeId| ours.binary_search(id).is_ok();
                    step.need.extend(have.iter().filter(|id| !held(id)));
                    step.offer.extend(lack.iter().filter(held));
                    out.push(skip);
                }
                Mode::Fingerprint(fp) if *fp == self.fingerprint(lo, hi) => out.push(skip),
                Mode::Fingerprint(_) | Mode::Pending => {
                    let split = self.split(lo, hi, upper);
                    let bytes = split.iter().map(Range::encoded_len).sum();
                    let ids = split.iter().map(|r| r.mode.id_count()).sum();
                    if out.fits(bytes, split.len(), ids, tail_bytes, tail_ranges) {
                        out.expanded = true;
                        for r in split {
                            out.push(r);
                        }
                    } else {
                        out.push(pending);
                    }
                }
                Mode::IdList(theirs) => {
                    let (have, lack) = difference(&self.ids.ids(lo, hi), theirs);
                    if have.is_empty() && lack.is_empty() {
                        out.push(skip);
                    } else {
                        let whole = Range {
                            upper,
                            mode: Mode::Difference { have, lack },
                        };
                        let (bytes, ids) = (whole.encoded_len(), whole.mode.id_count());
                        if out.fits(bytes, 1, ids, tail_bytes, tail_ranges) {
                            out.expanded = true;
                            self.settle(whole, &mut out, &mut step);
                        } else {
                            self.settle_part(whole, i, &tail, &mut out, &mut step);
                        }
                    }
                }
            }
            lo = hi;
        }
        step.reply = out.finish();
        Ok(step)
    }

    /// Records what a `Difference` we send teaches us, and appends it.
    fn settle(&self, range: Range, out: &mut Builder, step: &mut Step) {
        if let Mode::Difference { have, lack } = &range.mode {
            step.need.extend_from_slice(lack);
            step.offer.extend_from_slice(have);
        }
        out.push(range);
    }

    /// Sends as much of a `Difference` as fits, from the bottom of the
    /// range, and marks the rest pending.
    fn settle_part(
        &self,
        whole: Range,
        index: usize,
        tail: &[usize],
        out: &mut Builder,
        step: &mut Step,
    ) {
        let upper = whole.upper;
        let pending = Range {
            upper,
            mode: Mode::Pending,
        };
        let Mode::Difference { have, lack } = whole.mode else {
            out.push(pending);
            return;
        };
        // Worst case for the part: a 33-byte bound, tag, two counts; then
        // the pending rest.
        let reserved = 33 + 1 + 8 + upper.encoded_len() + 1 + tail[index + 1];
        let tail_ranges = tail.len().saturating_sub(index + 2);
        let mut all: Vec<EnvelopeId> = have.iter().chain(lack.iter()).copied().collect();
        all.sort_unstable();
        let take = out.room_for_ids(reserved).min(all.len().saturating_sub(1));
        if take == 0 || !out.fits(0, 2, 0, 0, tail_ranges) {
            out.push(pending);
            return;
        }
        let cut = Bound::between(&all[take - 1], &all[take]);
        let part = |ids: &[EnvelopeId]| ids[..ids.partition_point(|id| cut.above(id))].to_vec();
        let part = Range {
            upper: cut,
            mode: Mode::Difference {
                have: part(&have),
                lack: part(&lack),
            },
        };
        out.expanded = true;
        self.settle(part, out, step);
        out.push(pending);
    }

    /// Describes our ids `lo..hi`, which end at `upper`: one id list when
    /// few, else up to [`BRANCHES`] sub-ranges cut at our ids.
    fn split(&self, lo: usize, hi: usize, upper: Bound) -> Vec<Range> {
        let count = hi - lo;
        if count <= ID_LIST_THRESHOLD {
            return vec![Range {
                upper,
                mode: Mode::IdList(self.ids.ids(lo, hi)),
            }];
        }
        let parts = BRANCHES.min(count);
        let mut out = Vec::with_capacity(parts);
        let mut start = lo;
        for k in 1..=parts {
            let (end, bound) = if k == parts {
                (hi, upper)
            } else {
                let end = lo + count * k / parts;
                (
                    end,
                    Bound::between(&self.ids.id(end - 1), &self.ids.id(end)),
                )
            };
            let mode = if end - start <= SUB_RANGE_ID_LIST_THRESHOLD {
                Mode::IdList(self.ids.ids(start, end))
            } else {
                Mode::Fingerprint(self.fingerprint(start, end))
            };
            out.push(Range { upper: bound, mode });
            start = end;
        }
        out
    }

    /// The fingerprint of `ids[lo..hi]`.
    fn fingerprint(&self, lo: usize, hi: usize) -> [u8; FINGERPRINT_BYTES] {
        let sum = self.ids.sum(lo, hi);
        let mut h = blake3::Hasher::new();
        h.update(FINGERPRINT_DOMAIN);
        for limb in sum {
            h.update(&limb.to_le_bytes());
        }
        h.update(&((hi - lo) as u64).to_le_bytes());
        let mut out = [0u8; FINGERPRINT_BYTES];
        out.copy_from_slice(&h.finalize().as_bytes()[..FINGERPRINT_BYTES]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The id made from counter `n`.
    fn id(n: u64) -> EnvelopeId {
        EnvelopeId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn sorted(mut ids: Vec<EnvelopeId>) -> Vec<EnvelopeId> {
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn ids(range: std::ops::Range<u64>) -> Vec<EnvelopeId> {
        sorted(range.map(id).collect())
    }

    #[derive(Debug, Default)]
    struct Outcome {
        messages: usize,
        bytes: usize,
        largest: usize,
        need_a: Vec<EnvelopeId>,
        offer_a: Vec<EnvelopeId>,
        need_b: Vec<EnvelopeId>,
        offer_b: Vec<EnvelopeId>,
    }

    /// Runs a whole exchange, `a` initiating, every message through bytes.
    fn run(a: &[EnvelopeId], b: &[EnvelopeId], max_messages: usize) -> Outcome {
        let (ra, rb) = (Reconciler::new(a), Reconciler::new(b));
        let mut out = Outcome::default();
        let mut next = Some(ra.initiate());
        let mut b_turn = true;
        while let Some(msg) = next {
            assert!(
                out.messages < max_messages,
                "no end after {max_messages} messages"
            );
            let bytes = msg.encode();
            assert!(bytes.len() <= MAX_RECONCILE_MESSAGE_BYTES);
            out.messages += 1;
            out.bytes += bytes.len();
            out.largest = out.largest.max(bytes.len());
            let decoded = Message::decode(&bytes).expect("own messages decode");
            assert_eq!(decoded, msg);
            let (side, need, offer) = if b_turn {
                (&rb, &mut out.need_b, &mut out.offer_b)
            } else {
                (&ra, &mut out.need_a, &mut out.offer_a)
            };
            let step = side.respond(&decoded).expect("own messages are answerable");
            need.extend(step.need);
            offer.extend(step.offer);
            next = step.reply;
            b_turn = !b_turn;
        }
        out
    }

    fn minus(x: &[EnvelopeId], y: &[EnvelopeId]) -> Vec<EnvelopeId> {
        x.iter()
            .filter(|i| y.binary_search(i).is_err())
            .copied()
            .collect()
    }

    fn check_exact(a: &[EnvelopeId], b: &[EnvelopeId], o: &Outcome) {
        let mut need_a = o.need_a.clone();
        let mut need_b = o.need_b.clone();
        let mut offer_a = o.offer_a.clone();
        let mut offer_b = o.offer_b.clone();
        for v in [&mut need_a, &mut need_b, &mut offer_a, &mut offer_b] {
            let len = v.len();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), len, "an id was reported twice");
        }
        assert_eq!(need_a, minus(b, a));
        assert_eq!(need_b, minus(a, b));
        assert_eq!(offer_a, need_b);
        assert_eq!(offer_b, need_a);
        let union = sorted(a.iter().chain(b).copied().collect());
        assert_eq!(sorted(a.iter().chain(&need_a).copied().collect()), union);
        assert_eq!(sorted(b.iter().chain(&need_b).copied().collect()), union);
    }

    /// Bytes of both directions for two identical sets of `n` ids.
    fn identical(n: u64) -> usize {
        let set = ids(0..n);
        let (ra, rb) = (Reconciler::new(&set), Reconciler::new(&set));
        let opening = ra.initiate().encode();
        let step = rb
            .respond(&Message::decode(&opening).expect("decodes"))
            .expect("answers");
        assert_eq!(step.reply, None);
        assert!(step.need.is_empty() && step.offer.is_empty());
        opening.len()
    }

    #[test]
    fn identical_sets_finish_in_one_round_trip() {
        let small = identical(10_000);
        let large = identical(100_000);
        eprintln!("identical: 10k {small} bytes, 100k {large} bytes, 1 message each");
        assert!(small < 1_024);
        assert!(large * 2 <= small * 3);
        assert_eq!(identical(0), 11);
    }

    /// The walkthrough of the module documentation, step by step.
    #[test]
    fn walkthrough() {
        let alice = ids(0..10_000);
        let extra = id(10_000);
        let bob = sorted(alice.iter().copied().chain([extra]).collect());
        let (ra, rb) = (Reconciler::new(&alice), Reconciler::new(&bob));
        let count =
            |m: &Message, f: fn(&Mode) -> bool| m.ranges.iter().filter(|r| f(&r.mode)).count();
        let fps = |m: &Message| count(m, |m| matches!(m, Mode::Fingerprint(_)));
        let lists = |m: &Message| count(m, |m| matches!(m, Mode::IdList(_)));

        // One step that learns nothing and must reply.
        let quiet = |r: &Reconciler<SortedIds<'_>>, m: &Message| {
            let step = r.respond(m).expect("answers");
            assert!(step.need.is_empty() && step.offer.is_empty());
            step.reply.expect("a reply")
        };

        let opening = ra.initiate();
        assert_eq!(opening.encode().len(), 7 + FINGERPRINT_BYTES);
        let m2 = quiet(&rb, &opening);
        assert_eq!(fps(&m2), 16);
        let m3 = quiet(&ra, &m2);
        assert_eq!(fps(&m3), 16);
        let m4 = quiet(&rb, &m3);
        assert_eq!(fps(&m4), 16);
        let m5 = quiet(&ra, &m4);
        assert_eq!((fps(&m5), lists(&m5)), (0, 1));
        let b3 = rb.respond(&m5).expect("answers");
        assert_eq!((b3.need.len(), b3.offer.clone()), (0, vec![extra]));
        let m6 = b3.reply.expect("bob sends the difference");
        let a3 = ra.respond(&m6).expect("answers");
        assert_eq!((a3.need, a3.offer.len(), a3.reply), (vec![extra], 0, None));
        let total: usize = [&opening, &m2, &m3, &m4, &m5, &m6]
            .iter()
            .map(|m| m.encode().len())
            .sum();
        eprintln!("walkthrough: 6 messages, {total} bytes");
        assert!(total < 1_300);
    }

    #[test]
    fn cost_grows_with_the_difference() {
        let base = 10_000u64;
        // Measured: 1179, 7192, 47851 and 217542 bytes, 6 messages each. A
        // differing id costs about 16 fingerprints per level of the split
        // that it alone occupies (log16 of 10,000 / d levels), plus itself.
        for (d, budget) in [(1u64, 1_500), (10, 9_000), (100, 60_000), (1_000, 260_000)] {
            let mut a = ids(0..base);
            let mut b = a.clone();
            for k in 0..d {
                let side = if k % 2 == 0 { &mut a } else { &mut b };
                side.push(id(1_000_000 + k));
            }
            let (a, b) = (sorted(a), sorted(b));
            let o = run(&a, &b, 64);
            check_exact(&a, &b, &o);
            eprintln!(
                "d={d}: {} messages, {} bytes ({} per differing id), largest {}",
                o.messages,
                o.bytes,
                o.bytes / d as usize,
                o.largest
            );
            assert!(o.bytes <= budget, "d={d}: {} bytes", o.bytes);
            assert!(o.messages <= 6, "d={d}: {} messages", o.messages);
        }
    }

    #[test]
    fn a_large_difference_takes_more_rounds_not_bigger_messages() {
        let a = ids(0..30_000);
        let b = ids(20_000..21_000);
        let o = run(&a, &b, 64);
        check_exact(&a, &b, &o);
        eprintln!(
            "30k vs 1k: {} messages, {} bytes, largest {}",
            o.messages, o.bytes, o.largest
        );
        assert!(o.messages > 3);
        let o = run(&b, &a, 64);
        check_exact(&b, &a, &o);
        let o = run(&[], &a, 64);
        check_exact(&[], &a, &o);
    }

    #[test]
    fn a_hundred_thousand_ids_reconcile_quickly() {
        let mut a = ids(0..100_000);
        let mut b = a.clone();
        a.extend((0..500).map(|k| id(1_000_000 + k)));
        b.extend((0..500).map(|k| id(2_000_000 + k)));
        let (a, b) = (sorted(a), sorted(b));
        let o = run(&a, &b, 64);
        check_exact(&a, &b, &o);
        eprintln!(
            "100k, d=1000: {} messages, {} bytes, largest {}",
            o.messages, o.bytes, o.largest
        );
        assert!(o.messages <= 12, "{} messages", o.messages);
    }

    #[test]
    fn messages_with_bad_ranges_are_refused() {
        let low = Bound::between(&EnvelopeId([1; 32]), &EnvelopeId([2; 32]));
        let high = Bound::between(&EnvelopeId([3; 32]), &EnvelopeId([4; 32]));
        let skip = |upper| Range {
            upper,
            mode: Mode::Skip,
        };
        let cases = [
            (
                vec![skip(high), skip(low), skip(Bound::End)],
                "out of order",
            ),
            (
                vec![skip(low), skip(low), skip(Bound::End)],
                "repeated bound",
            ),
            (vec![skip(low), skip(high)], "not covering"),
            (vec![], "empty"),
            (
                vec![
                    Range {
                        upper: low,
                        mode: Mode::IdList(vec![EnvelopeId([3; 32])]),
                    },
                    skip(Bound::End),
                ],
                "id outside",
            ),
            (
                vec![Range {
                    upper: Bound::End,
                    mode: Mode::IdList(vec![EnvelopeId([3; 32]), EnvelopeId([2; 32])]),
                }],
                "unsorted",
            ),
        ];
        let set = ids(0..100);
        let r = Reconciler::new(&set);
        for (ranges, what) in cases {
            let msg = Message { ranges };
            assert!(msg.validate().is_err(), "{what}");
            assert!(r.respond(&msg).is_err(), "{what}");
            assert!(
                matches!(
                    Message::decode(&msg.encode()),
                    Err(DecodeError::Invalid { .. })
                ),
                "{what}"
            );
        }
        let msg = Message {
            ranges: vec![skip(high), skip(low), skip(Bound::End)],
        };
        assert_eq!(
            r.respond(&msg),
            Err(ReconcileError::OutOfOrder { index: 1 })
        );
    }

    #[test]
    fn bounds_are_short_and_canonical() {
        let b = Bound::between(&EnvelopeId([7; 32]), &EnvelopeId([9; 32]));
        assert_eq!(b.encoded_len(), 2);
        let mut x = [5u8; 32];
        let y = x;
        x[3] = 4;
        let b = Bound::between(&EnvelopeId(x), &EnvelopeId(y));
        assert_eq!(b.encoded_len(), 5);
        assert!(!b.above(&EnvelopeId(y)) && b.above(&EnvelopeId(x)));
        // A prefix ending in a zero byte is another spelling of a shorter one.
        let bytes = [RECONCILE_VERSION, 0, 0, 0, 1, 2, 7, 0, TAG_SKIP];
        assert!(Message::decode(&bytes).is_err());
        let bytes = [RECONCILE_VERSION, 0, 0, 0, 1, 0, TAG_SKIP];
        assert!(Message::decode(&bytes).is_ok());
    }

    #[test]
    fn fingerprint_depends_on_the_set_only() {
        let set = ids(0..50);
        let r = Reconciler::new(&set);
        let mut h = blake3::Hasher::new();
        h.update(FINGERPRINT_DOMAIN);
        let mut sum = [0u64; 4];
        for i in &set[10..20] {
            sum = add_id(&sum, i);
        }
        for limb in sum {
            h.update(&limb.to_le_bytes());
        }
        h.update(&10u64.to_le_bytes());
        assert_eq!(
            r.fingerprint(10, 20),
            h.finalize().as_bytes()[..FINGERPRINT_BYTES]
        );
        let sub = set[10..20].to_vec();
        assert_eq!(
            Reconciler::new(&sub).fingerprint(0, 10),
            r.fingerprint(10, 20)
        );
        assert_ne!(r.fingerprint(10, 20), r.fingerprint(10, 21));
    }

    fn arb_sets() -> impl Strategy<Value = (Vec<EnvelopeId>, Vec<EnvelopeId>)> {
        (prop::collection::vec(0u8..16, 0..2_000), 0u64..40, 0u64..40).prop_map(
            |(pool, extra_a, extra_b)| {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for (i, m) in pool.iter().enumerate() {
                    let x = id(i as u64);
                    match m {
                        0 => a.push(x),
                        1 => b.push(x),
                        2 => {}
                        _ => {
                            a.push(x);
                            b.push(x);
                        }
                    }
                }
                a.extend((0..extra_a).map(|k| id(1_000_000 + k)));
                b.extend((0..extra_b).map(|k| id(2_000_000 + k)));
                (sorted(a), sorted(b))
            },
        )
    }

    proptest! {
        #[test]
        fn reconciliation_finds_exactly_the_difference((a, b) in arb_sets()) {
            let o = run(&a, &b, 64);
            check_exact(&a, &b, &o);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(msg) = Message::decode(&bytes) {
                prop_assert_eq!(msg.encode(), bytes);
            }
        }

        #[test]
        fn decoding_damaged_messages_never_panics(
            (a, b) in arb_sets(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let rb = Reconciler::new(&b);
            let Some(reply) = rb.respond(&Reconciler::new(&a).initiate()).expect("answers").reply
            else {
                return Ok(());
            };
            let mut bytes = reply.encode();
            for (at, v) in flips {
                let i = at.index(bytes.len());
                bytes[i] = v;
            }
            if let Ok(msg) = Message::decode(&bytes) {
                prop_assert_eq!(msg.encode(), bytes);
                if let Ok(Step { reply: Some(reply), .. }) = Reconciler::new(&a).respond(&msg) {
                    prop_assert!(reply.encode().len() <= MAX_RECONCILE_MESSAGE_BYTES);
                }
            }
        }
    }

    proptest! {
        /// An index grown one id at a time, in any order, answers every
        /// question as the sorted slice of the same ids does.
        #[test]
        fn an_index_grown_in_any_order_matches_the_sorted_slice(
            order in proptest::collection::vec(0u64..5_000, 0..3_000),
            probes in proptest::collection::vec((0usize..3_000, 0usize..3_000, any::<[u8; 32]>()), 1..40),
        ) {
            let mut index = IdIndex::default();
            for n in &order {
                index.insert(id(*n));
            }
            let all = sorted(order.iter().map(|n| id(*n)).collect());
            let slice = SortedIds::new(&all);
            prop_assert_eq!(index.len(), all.len());
            prop_assert_eq!(index.to_vec(), all.clone());
            for (a, b, key) in probes {
                prop_assert_eq!(index.rank(&key), slice.rank(&key));
                if all.is_empty() {
                    continue;
                }
                let (lo, hi) = (a.min(b) % (all.len() + 1), a.max(b) % (all.len() + 1));
                let (lo, hi) = (lo.min(hi), lo.max(hi));
                prop_assert_eq!(index.sum(lo, hi), slice.sum(lo, hi));
                prop_assert_eq!(index.ids(lo, hi), slice.ids(lo, hi));
                prop_assert_eq!(index.id(lo % all.len()), all[lo % all.len()]);
                prop_assert!(index.contains(&all[lo % all.len()]));
            }
        }
    }

    /// A node answering from its index says what it says from the slice:
    /// byte for byte the same messages, round after round.
    #[test]
    fn answers_from_an_index_are_those_from_the_slice() {
        let a = ids(0..20_000);
        let b = ids(50..20_070);
        let index = {
            let mut i = IdIndex::default();
            for n in (50..20_070).rev() {
                i.insert(id(n));
            }
            i
        };
        let (ra, rb, rb_index) = (
            Reconciler::new(&a),
            Reconciler::new(&b),
            Reconciler::over(&index),
        );
        let mut msg = Some(ra.initiate());
        let mut rounds = 0;
        while let Some(m) = msg {
            let from_slice = rb.respond(&m).expect("answers");
            let from_index = rb_index.respond(&m).expect("answers");
            assert_eq!(from_slice.need, from_index.need);
            assert_eq!(from_slice.offer, from_index.offer);
            assert_eq!(
                from_slice.reply.as_ref().map(Message::encode),
                from_index.reply.as_ref().map(Message::encode)
            );
            msg = from_index
                .reply
                .and_then(|r| ra.respond(&r).expect("answers").reply);
            rounds += 1;
        }
        assert!(rounds > 2, "the sets differ, so it took rounds");
    }
}
