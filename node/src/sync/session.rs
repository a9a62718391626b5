//! One sync session with a peer, from the side that runs it: reconcile
//! rounds until the difference is known, then fetches and pushes in
//! bounded batches with a few requests in flight at a time.

use std::collections::VecDeque;

use gatehouse_protocol::id::EnvelopeId;

/// Requests of one session in flight at once.
pub const WINDOW: usize = 4;

/// What a request this node sent was for.
#[derive(Debug, Clone)]
pub(crate) enum Purpose {
    /// The push of this node's admission proof.
    Proof,
    /// A reconcile round.
    Reconcile,
    /// Fetching these envelopes.
    Fetch(Vec<EnvelopeId>),
    /// Asking which envelopes to fetch are urgent.
    Urgent,
    /// Pushing this many envelopes.
    Push(usize),
    /// Asking the peer's clock, at this node's time.
    Clock {
        /// When the request was sent (core clock, ms).
        sent_ms: u64,
    },
}

impl Purpose {
    /// Whether the request belongs to a session (the proof and the clock
    /// do not).
    pub(crate) fn in_session(&self) -> bool {
        !matches!(self, Purpose::Proof | Purpose::Clock { .. })
    }
}

/// The state of one session.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The difference is known.
    pub reconciled: bool,
    /// Envelopes the peer holds and this node lacks, not yet asked for.
    pub fetch: VecDeque<EnvelopeId>,
    /// Envelopes this node holds and the peer lacks, not yet sent.
    pub push: VecDeque<EnvelopeId>,
    /// Requests sent and not yet answered.
    pub in_flight: usize,
    /// Another session was asked for while this one ran.
    pub again: bool,
    /// The peer is being asked which of the envelopes to fetch are
    /// urgent; fetching waits for the answer.
    pub classifying: bool,
}

impl Session {
    /// Records the difference found by the reconcile rounds so far.
    pub fn learn(&mut self, need: Vec<EnvelopeId>, offer: Vec<EnvelopeId>) {
        self.fetch.extend(need);
        self.push.extend(offer);
    }

    /// Whether everything is done.
    pub fn is_done(&self) -> bool {
        self.reconciled && self.in_flight == 0 && self.fetch.is_empty() && self.push.is_empty()
    }

    /// The next ids to fetch, at most `max`.
    pub fn next_fetch(&mut self, max: usize) -> Vec<EnvelopeId> {
        let n = self.fetch.len().min(max);
        self.fetch.drain(..n).collect()
    }

    /// Moves `urgent` (some of the envelopes to fetch or push) to the
    /// front of their queue, in the order given.
    pub fn put_first(&mut self, urgent: &[EnvelopeId], fetch: bool) {
        if urgent.is_empty() {
            return;
        }
        let first: std::collections::HashSet<&EnvelopeId> = urgent.iter().collect();
        let queue = if fetch {
            &mut self.fetch
        } else {
            &mut self.push
        };
        let (mut front, back): (VecDeque<EnvelopeId>, VecDeque<EnvelopeId>) =
            queue.drain(..).partition(|id| first.contains(id));
        front.extend(back);
        *queue = front;
    }

    /// Puts back ids a fetch response had no room for, to ask again first.
    pub fn refetch(&mut self, rest: Vec<EnvelopeId>) {
        for id in rest.into_iter().rev() {
            self.fetch.push_front(id);
        }
    }
}

impl Session {
    /// The next ids to push, at most `max`; those that do not fit in the
    /// batch are given back with [`Session::give_back_push`].
    pub fn next_push_candidates(&mut self, max: usize) -> Vec<EnvelopeId> {
        let n = self.push.len().min(max);
        self.push.drain(..n).collect()
    }

    /// Puts back ids that did not fit in a push, to send first next time.
    pub fn give_back_push(&mut self, rest: Vec<EnvelopeId>) {
        for id in rest.into_iter().rev() {
            self.push.push_front(id);
        }
    }
}
