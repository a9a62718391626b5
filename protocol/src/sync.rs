//! The messages of the anti-entropy protocol between two nodes.
//!
//! The initiator drives: it sends [`SyncRequest::Reconcile`] rounds (the
//! payload is a [`crate::reconcile`] message) until the set difference is
//! known, then fetches what it lacks with [`SyncRequest::Fetch`] and sends
//! what the other lacks with [`SyncRequest::Push`]. Every envelope moved
//! is verified by the receiver as if it came from anywhere else; these
//! messages carry no trust of their own. All sizes are bounded.
//!
//! [`SyncRequest::Clock`] asks for the other node's clock, so that a site
//! whose clock has drifted from its peers' learns of it (timestamps are
//! claims for display, never inputs to validity, but staff read them).

use crate::encoding::{DecodeError, Reader, Writer};
use crate::envelope::MAX_ENVELOPE_BYTES;
use crate::id::EnvelopeId;

/// Largest sync message, in bytes, either way.
pub const MAX_SYNC_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most envelope ids asked for in one fetch.
pub const MAX_FETCH_IDS: usize = 1_024;
/// Most ids one [`SyncRequest::Urgent`] asks about (512 KiB of ids).
pub const MAX_URGENT_IDS: usize = 16_384;
/// Most envelopes in one push or fetch response.
pub const MAX_ENVELOPES_PER_MESSAGE: usize = 1_024;
/// Target size of one push or fetch response; more goes in the next one.
pub const TARGET_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Longest refusal reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1_000;

/// A request from the initiating node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequest {
    /// One round of set reconciliation (an encoded reconcile message).
    Reconcile(Vec<u8>),
    /// Send me these envelopes.
    Fetch(Vec<EnvelopeId>),
    /// Here are envelopes you lack.
    Push(Vec<Vec<u8>>),
    /// What time is it by your clock?
    Clock,
    /// Which of these envelopes (ones the asker lacks) are urgent?
    /// (Version 4.)
    Urgent(Vec<EnvelopeId>),
}

/// The answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// The next reconcile message, or `None` when this side has nothing left to say.
    Reconcile(Option<Vec<u8>>),
    /// The envelopes asked for (those held).
    Envelopes(Vec<Vec<u8>>),
    /// How many pushed envelopes were new to the receiver. They are stored
    /// with the pushes that arrive with them, so the answer can come before
    /// they are; some may yet be refused.
    Ack {
        /// Envelopes the receiver did not hold.
        stored: u32,
    },
    /// The request was not served, and why (for example: not admitted).
    Refused(String),
    /// The answering node's clock when it answered (ms since the Unix
    /// epoch).
    Clock {
        /// Its time.
        now_ms: u64,
    },
    /// The urgent ones among the envelopes asked about, in the order asked.
    Urgent(Vec<EnvelopeId>),
}

fn write_envelopes(w: &mut Writer, envs: &[Vec<u8>]) {
    w.seq(envs, |w, e| {
        w.bytes(e);
    });
}

fn read_envelopes(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, DecodeError> {
    r.seq("envelopes", MAX_ENVELOPES_PER_MESSAGE, |r| {
        Ok(r.bytes("envelope", MAX_ENVELOPE_BYTES)?.to_vec())
    })
}

impl SyncRequest {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            SyncRequest::Reconcile(m) => {
                w.u8(1).bytes(m);
            }
            SyncRequest::Fetch(ids) => {
                w.u8(2).seq(ids, |w, id| {
                    w.fixed(id.as_bytes());
                });
            }
            SyncRequest::Push(envs) => {
                w.u8(3);
                write_envelopes(&mut w, envs);
            }
            SyncRequest::Clock => {
                w.u8(4);
            }
            SyncRequest::Urgent(ids) => {
                w.u8(5).seq(ids, |w, id| {
                    w.fixed(id.as_bytes());
                });
            }
        }
        w.into_bytes()
    }

    /// Parses a request.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_SYNC_MESSAGE_BYTES {
            return Err(DecodeError::TooLong {
                field: "sync request",
                len: bytes.len(),
                max: MAX_SYNC_MESSAGE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let out = match r.u8()? {
            1 => SyncRequest::Reconcile(r.bytes("reconcile", MAX_SYNC_MESSAGE_BYTES)?.to_vec()),
            2 => SyncRequest::Fetch(r.seq("ids", MAX_FETCH_IDS, |r| Ok(EnvelopeId(r.fixed()?)))?),
            3 => SyncRequest::Push(read_envelopes(&mut r)?),
            4 => SyncRequest::Clock,
            5 => SyncRequest::Urgent(r.seq("ids", MAX_URGENT_IDS, |r| Ok(EnvelopeId(r.fixed()?)))?),
            t => {
                return Err(DecodeError::UnknownTag {
                    field: "sync request",
                    tag: u64::from(t),
                });
            }
        };
        r.finish()?;
        Ok(out)
    }
}

impl SyncResponse {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            SyncResponse::Reconcile(None) => {
                w.u8(1).u8(0);
            }
            SyncResponse::Reconcile(Some(m)) => {
                w.u8(1).u8(1).bytes(m);
            }
            SyncResponse::Envelopes(envs) => {
                w.u8(2);
                write_envelopes(&mut w, envs);
            }
            SyncResponse::Ack { stored } => {
                w.u8(3).u32(*stored);
            }
            SyncResponse::Refused(reason) => {
                w.u8(4).str(reason);
            }
            SyncResponse::Clock { now_ms } => {
                w.u8(5).u64(*now_ms);
            }
            SyncResponse::Urgent(ids) => {
                w.u8(6).seq(ids, |w, id| {
                    w.fixed(id.as_bytes());
                });
            }
        }
        w.into_bytes()
    }

    /// Parses a response.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_SYNC_MESSAGE_BYTES {
            return Err(DecodeError::TooLong {
                field: "sync response",
                len: bytes.len(),
                max: MAX_SYNC_MESSAGE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let out = match r.u8()? {
            1 => match r.u8()? {
                0 => SyncResponse::Reconcile(None),
                1 => SyncResponse::Reconcile(Some(
                    r.bytes("reconcile", MAX_SYNC_MESSAGE_BYTES)?.to_vec(),
                )),
                t => {
                    return Err(DecodeError::UnknownTag {
                        field: "reconcile reply",
                        tag: u64::from(t),
                    });
                }
            },
            2 => SyncResponse::Envelopes(read_envelopes(&mut r)?),
            3 => SyncResponse::Ack { stored: r.u32()? },
            4 => SyncResponse::Refused(r.str("reason", MAX_REASON_BYTES)?.to_string()),
            5 => SyncResponse::Clock { now_ms: r.u64()? },
            6 => {
                SyncResponse::Urgent(r.seq("ids", MAX_URGENT_IDS, |r| Ok(EnvelopeId(r.fixed()?)))?)
            }
            t => {
                return Err(DecodeError::UnknownTag {
                    field: "sync response",
                    tag: u64::from(t),
                });
            }
        };
        r.finish()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_message_round_trips() {
        let reqs = [
            SyncRequest::Reconcile(vec![1, 2, 3]),
            SyncRequest::Fetch(vec![EnvelopeId([7; 32])]),
            SyncRequest::Push(vec![vec![9; 10], vec![]]),
            SyncRequest::Clock,
            SyncRequest::Urgent(vec![EnvelopeId([8; 32]), EnvelopeId([6; 32])]),
        ];
        for r in reqs {
            assert_eq!(SyncRequest::decode(&r.encode()), Ok(r));
        }
        let resps = [
            SyncResponse::Reconcile(None),
            SyncResponse::Reconcile(Some(vec![4])),
            SyncResponse::Envelopes(vec![vec![5; 3]]),
            SyncResponse::Ack { stored: 3 },
            SyncResponse::Refused("not admitted".into()),
            SyncResponse::Clock {
                now_ms: 1_764_000_000_000,
            },
            SyncResponse::Urgent(vec![EnvelopeId([6; 32])]),
        ];
        for r in resps {
            assert_eq!(SyncResponse::decode(&r.encode()), Ok(r));
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SyncRequest::decode(&bytes);
            let _ = SyncResponse::decode(&bytes);
        }
    }
}
