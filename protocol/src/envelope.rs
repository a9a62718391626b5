//! Signed envelopes: the only thing a network replicates.
//!
//! Layout (all integers big-endian, see [`crate::encoding`]):
//!
//! ```text
//! version    u8        = 1
//! kind       u8        1 = change, 2 = certificate, 3 = post, 4 = record, 5-255 = kinds added later
//! network    [u8; 32]  network id
//! signer     [u8; 32]  ed25519 public key
//! created_ms u64       signer's clock, for display only
//! payload    u32 len + bytes (at most MAX_PAYLOAD_BYTES)
//! signature  [u8; 64]
//! ```
//!
//! The signature covers `"gatehouse/v1/<kind>" 0x00 network-id` followed by
//! every byte before the signature exactly as received, so nothing is
//! re-serialised before it is verified. The envelope id is the blake3 hash of
//! all its bytes. [`Envelope::decode`] parses and bounds-checks;
//! [`Envelope::verify`] turns an [`Envelope`] into a [`Verified`] one, and only
//! a `Verified` envelope can be stored.
//!
//! The set of kinds is open. Kinds 1 and 2 sign under the domains
//! `gatehouse/v1/change` and `gatehouse/v1/certificate`; every kind added
//! later (posts, kind 3; records, kind 4: approvals, acknowledgements; attachments) signs
//! under `gatehouse/v1/kind-<tag>`, so a node that does not know a kind can
//! still verify its signature. Such an envelope decodes to [`Body::Unread`]: its
//! payload is kept as bytes, stored and forwarded, never interpreted, and
//! judged only on who signed it.

use thiserror::Error;

use crate::certificate::Certificate;
use crate::change::ChangePayload;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::{EnvelopeId, NetworkId};
use crate::key::{PublicKey, SecretKey};
use crate::post::Post;
use crate::record::Record;

/// The envelope format version this code writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Largest payload accepted, in bytes. A Markdown body is capped at 256 KiB;
/// its first change carries it once, plus Automerge's framing.
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;
/// Bytes in an envelope besides its payload.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 1 + 1 + 32 + 32 + 8 + 4 + 64;
/// Largest envelope accepted, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = MAX_PAYLOAD_BYTES + ENVELOPE_OVERHEAD_BYTES;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvelopeKind {
    /// One Automerge change to one library item.
    Change,
    /// A trust certificate.
    Certificate,
    /// A post: advice, answers, discussion, moderation.
    Post,
    /// A record: an approval, an acknowledgement, a request to read, an
    /// establishment's rules.
    Record,
    /// A kind added after this code (tag 5 to 255): stored and forwarded
    /// unread.
    Other(u8),
}

/// The highest kind tag this code reads; later ones are [`EnvelopeKind::Other`].
pub const MAX_READ_KIND: u8 = 4;
/// The highest kind of the first protocol version (sync `/1`, the first
/// gossip topic): nodes of that version see nothing later.
pub const MAX_FIRST_KIND: u8 = 2;

impl EnvelopeKind {
    /// The kind's tag on the wire.
    pub fn tag(self) -> u8 {
        match self {
            EnvelopeKind::Change => 1,
            EnvelopeKind::Certificate => 2,
            EnvelopeKind::Post => 3,
            EnvelopeKind::Record => 4,
            EnvelopeKind::Other(t) => t,
        }
    }

    fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            1 => Ok(EnvelopeKind::Change),
            2 => Ok(EnvelopeKind::Certificate),
            3 => Ok(EnvelopeKind::Post),
            4 => Ok(EnvelopeKind::Record),
            0 => Err(DecodeError::UnknownTag {
                field: "envelope kind",
                tag: 0,
            }),
            t => Ok(EnvelopeKind::Other(t)),
        }
    }

    /// The domain-separation string for signatures over this kind.
    pub fn domain(self) -> Vec<u8> {
        match self {
            EnvelopeKind::Change => b"gatehouse/v1/change".to_vec(),
            EnvelopeKind::Certificate => b"gatehouse/v1/certificate".to_vec(),
            // Posts came after the first set: they sign under the domain a
            // node that does not read them derives from the tag.
            EnvelopeKind::Post => b"gatehouse/v1/kind-3".to_vec(),
            EnvelopeKind::Record => b"gatehouse/v1/kind-4".to_vec(),
            EnvelopeKind::Other(t) => format!("gatehouse/v1/kind-{t}").into_bytes(),
        }
    }
}

/// The kind tag of envelope bytes, read from the header without decoding
/// the rest; `None` if too short.
pub fn peek_kind_tag(bytes: &[u8]) -> Option<u8> {
    bytes.get(1).copied()
}

/// The typed payload of an envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A change to a library item (boxed: an Automerge change is large).
    Change(Box<ChangePayload>),
    /// A trust certificate.
    Certificate(Certificate),
    /// A post.
    Post(Box<Post>),
    /// A record.
    Record(Box<Record>),
    /// The payload of a kind this code does not read, kept as it arrived.
    Unread {
        /// The kind's tag (5 to 255).
        kind: u8,
        /// The payload bytes.
        payload: Vec<u8>,
    },
}

impl Body {
    /// The envelope kind that carries this body.
    pub fn kind(&self) -> EnvelopeKind {
        match self {
            Body::Change(_) => EnvelopeKind::Change,
            Body::Certificate(_) => EnvelopeKind::Certificate,
            Body::Post(_) => EnvelopeKind::Post,
            Body::Record(_) => EnvelopeKind::Record,
            Body::Unread { kind, .. } => EnvelopeKind::Other(*kind),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Body::Change(c) => c.encode(),
            Body::Certificate(c) => c.encode(),
            Body::Post(p) => p.encode(),
            Body::Record(r) => r.encode(),
            Body::Unread { payload, .. } => payload.clone(),
        }
    }

    fn decode(kind: EnvelopeKind, bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(match kind {
            EnvelopeKind::Change => Body::Change(Box::new(ChangePayload::decode(bytes)?)),
            EnvelopeKind::Certificate => Body::Certificate(Certificate::decode(bytes)?),
            EnvelopeKind::Post => Body::Post(Box::new(Post::decode(bytes)?)),
            EnvelopeKind::Record => Body::Record(Box::new(Record::decode(bytes)?)),
            EnvelopeKind::Other(kind) => Body::Unread {
                kind,
                payload: bytes.to_vec(),
            },
        })
    }
}

/// A decoded envelope whose signature has not been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    bytes: Vec<u8>,
    id: EnvelopeId,
    kind: EnvelopeKind,
    network: NetworkId,
    signer: PublicKey,
    created_ms: u64,
    body: Body,
}

/// Why an envelope was refused. Each is an expected outcome for input from
/// outside, reported with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The bytes are not an envelope.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] DecodeError),
    /// It was signed for another network.
    #[error("envelope is for network {got}, not this network {expected}")]
    WrongNetwork {
        /// This node's network.
        expected: NetworkId,
        /// The network named in the envelope.
        got: NetworkId,
    },
    /// The signature does not verify over the bytes.
    #[error("signature does not verify for signer {0}")]
    BadSignature(PublicKey),
    /// Signature fine, but the payload breaks a rule that binds it to its
    /// signer (for example a change whose actor id is not the signer's).
    #[error("payload not bound to its signer: {0}")]
    Unbound(&'static str),
}

/// The claimed creation time of an envelope, read from its header without
/// decoding the rest (for choosing what to export); `None` if too short.
pub fn peek_created_ms(bytes: &[u8]) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(66..74)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}

/// An envelope's fixed fields, its payload still undecoded.
struct Frame<'a> {
    kind: EnvelopeKind,
    network: NetworkId,
    signer: PublicKey,
    created_ms: u64,
    payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Reads the layout, checking sizes and structure, without decoding
    /// the payload.
    fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLong {
                field: "envelope",
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::UnknownTag {
                field: "envelope version",
                tag: u64::from(version),
            });
        }
        let kind = EnvelopeKind::from_tag(r.u8()?)?;
        let network = NetworkId(r.fixed()?);
        let signer = PublicKey::from_bytes(r.fixed()?).map_err(|_| DecodeError::Invalid {
            field: "signer",
            reason: "not an ed25519 public key",
        })?;
        let created_ms = r.u64()?;
        let payload = r.bytes("payload", MAX_PAYLOAD_BYTES)?;
        let _signature: [u8; 64] = r.fixed()?;
        r.finish()?;
        Ok(Self {
            kind,
            network,
            signer,
            created_ms,
            payload,
        })
    }

    /// The envelope, its payload decoded.
    fn into_envelope(self, bytes: &[u8]) -> Result<Envelope, DecodeError> {
        Ok(Envelope {
            bytes: bytes.to_vec(),
            id: EnvelopeId::of(bytes),
            kind: self.kind,
            network: self.network,
            signer: self.signer,
            created_ms: self.created_ms,
            body: Body::decode(self.kind, self.payload)?,
        })
    }
}

impl Envelope {
    /// The kind of the envelope in `bytes`, read from its frame alone: the
    /// payload is not decoded and the signature not checked.
    pub fn kind_of(bytes: &[u8]) -> Result<EnvelopeKind, DecodeError> {
        Ok(Frame::parse(bytes)?.kind)
    }

    /// The network named in the envelope in `bytes`, read from its frame
    /// alone.
    pub fn network_of(bytes: &[u8]) -> Result<NetworkId, DecodeError> {
        Ok(Frame::parse(bytes)?.network)
    }

    /// Parses an envelope, checking sizes and structure but not the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Frame::parse(bytes)?.into_envelope(bytes)
    }

    /// Whether the signature at the end of `bytes` (an envelope of `kind`
    /// for `network`) is `signer`'s.
    fn signature_holds(
        kind: EnvelopeKind,
        network: &NetworkId,
        signer: &PublicKey,
        bytes: &[u8],
    ) -> bool {
        let split = bytes.len() - 64;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[split..]);
        signer.verify(&Self::signed_message(kind, network, &bytes[..split]), &sig)
    }

    /// The message the signature covers.
    fn signed_message(kind: EnvelopeKind, network: &NetworkId, unsigned: &[u8]) -> Vec<u8> {
        let domain = kind.domain();
        let mut msg = Vec::with_capacity(domain.len() + 33 + unsigned.len());
        msg.extend_from_slice(&domain);
        msg.push(0);
        msg.extend_from_slice(network.as_bytes());
        msg.extend_from_slice(unsigned);
        msg
    }

    /// Checks the signature (and the binding of payload to signer) for
    /// `network`.
    pub fn verify(self, network: &NetworkId) -> Result<Verified, VerifyError> {
        if self.network != *network {
            return Err(VerifyError::WrongNetwork {
                expected: *network,
                got: self.network,
            });
        }
        if !Self::signature_holds(self.kind, &self.network, &self.signer, &self.bytes) {
            return Err(VerifyError::BadSignature(self.signer));
        }
        self.bound()
    }

    /// Checks the rules that bind the payload to its signer, and that a
    /// change's ops are ones Automerge may be given.
    fn bound(self) -> Result<Verified, VerifyError> {
        match &self.body {
            Body::Change(c) => {
                c.check_ops()?;
                c.check_bound_to(&self.signer)?;
            }
            Body::Certificate(c) => c.check_bound_to(&self.signer, &self.network)?,
            // A post's author is its signer; whom it may speak for is
            // decided by trust.
            Body::Post(_) => {}
            // So is a record's; trust decides whom it speaks for.
            Body::Record(_) => {}
            // Nothing here knows what binds it; its signature is checked.
            Body::Unread { .. } => {}
        }
        Ok(Verified(self))
    }

    /// Reopens bytes that were verified before being stored under `id`:
    /// instead of the signature, checks that the bytes still hash to `id`
    /// (so damage on disk is caught) and belong to `network`. Only for a
    /// store that admits nothing but [`Verified`] envelopes.
    pub fn reopen(
        bytes: &[u8],
        id: &EnvelopeId,
        network: &NetworkId,
    ) -> Result<Verified, VerifyError> {
        let env = Self::decode(bytes)?;
        if env.id != *id {
            return Err(VerifyError::Unbound(
                "stored bytes no longer hash to their id",
            ));
        }
        if env.network != *network {
            return Err(VerifyError::WrongNetwork {
                expected: *network,
                got: env.network,
            });
        }
        Ok(Verified(env))
    }

    /// Verifies and decodes bytes from outside. The signature is checked
    /// before the payload is decoded, so nothing an unsigned or forged
    /// envelope carries (an Automerge chunk that inflates, say) is
    /// decompressed or parsed.
    pub fn open(bytes: &[u8], network: &NetworkId) -> Result<Verified, VerifyError> {
        let frame = Frame::parse(bytes)?;
        if frame.network != *network {
            return Err(VerifyError::WrongNetwork {
                expected: *network,
                got: frame.network,
            });
        }
        if !Self::signature_holds(frame.kind, &frame.network, &frame.signer, bytes) {
            return Err(VerifyError::BadSignature(frame.signer));
        }
        frame.into_envelope(bytes)?.bound()
    }

    /// The id (hash of the bytes).
    pub fn id(&self) -> EnvelopeId {
        self.id
    }

    /// The network named in the envelope.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// The claimed signer.
    pub fn signer(&self) -> PublicKey {
        self.signer
    }

    /// The envelope kind.
    pub fn kind(&self) -> EnvelopeKind {
        self.kind
    }

    /// Signs `payload` as an envelope of `kind`, its bytes as they are:
    /// nothing checks that they decode. The result passes [`Envelope::open`]
    /// only if they do; tools and tests use it to make what a hostile
    /// signer could.
    pub fn sign_payload(
        kind: EnvelopeKind,
        payload: &[u8],
        key: &SecretKey,
        network: &NetworkId,
        created_ms: u64,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(ENVELOPE_VERSION)
            .u8(kind.tag())
            .fixed(network.as_bytes())
            .fixed(key.public().as_bytes())
            .u64(created_ms)
            .bytes(payload);
        let mut bytes = w.into_bytes();
        let sig = key.sign(&Envelope::signed_message(kind, network, &bytes));
        bytes.extend_from_slice(&sig);
        bytes
    }
}

/// An envelope whose signature verified for this network. Only
/// [`Envelope::verify`] and [`Verified::sign`] make one.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified(Envelope);

impl Verified {
    /// Builds and signs an envelope.
    pub fn sign(body: Body, key: &SecretKey, network: &NetworkId, created_ms: u64) -> Self {
        let kind = body.kind();
        let bytes = Envelope::sign_payload(kind, &body.encode(), key, network, created_ms);
        Self(Envelope {
            id: EnvelopeId::of(&bytes),
            bytes,
            kind,
            network: *network,
            signer: key.public(),
            created_ms,
            body,
        })
    }

    /// The exact bytes, as signed and as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The id (hash of the bytes).
    pub fn id(&self) -> EnvelopeId {
        self.0.id
    }

    /// The envelope kind.
    pub fn kind(&self) -> EnvelopeKind {
        self.0.kind
    }

    /// The key that signed it.
    pub fn signer(&self) -> PublicKey {
        self.0.signer
    }

    /// When the signer says it was made (display only, never for validity).
    pub fn created_ms(&self) -> u64 {
        self.0.created_ms
    }

    /// The network it belongs to.
    pub fn network(&self) -> NetworkId {
        self.0.network
    }

    /// The typed payload.
    pub fn body(&self) -> &Body {
        &self.0.body
    }

    /// The typed payload, taken.
    pub fn into_body(self) -> Body {
        self.0.body
    }

    /// Whether a site cut off for a while needs this before anything else:
    /// a withdrawal or supersession (a change its author's node labelled
    /// so), a revocation, or a question that needs an answer within 48
    /// hours. A label is only a hint for the order of delivery; what an
    /// envelope does is decided as for any other.
    pub fn is_urgent(&self) -> bool {
        match self.body() {
            Body::Certificate(c) => matches!(c, Certificate::Revoke(_)),
            Body::Change(c) => c
                .change
                .message()
                .is_some_and(|m| matches!(m, "withdraw" | "supersede" | "supersedes")),
            Body::Post(p) => matches!(
                &p.action,
                crate::post::Action::Ask(q) if q.urgency == crate::post::Urgency::Within48Hours
            ),
            Body::Record(_) | Body::Unread { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{Certificate, Delegation, MemberRole};
    use proptest::prelude::*;

    fn sample() -> (Verified, NetworkId) {
        let network = NetworkId([5; 32]);
        let est = SecretKey::from_seed([1; 32]);
        let person = SecretKey::from_seed([2; 32]);
        let body = Body::Certificate(Certificate::Delegate(Delegation {
            establishment: crate::id::EstablishmentId([1; 16]),
            member: person.public(),
            name: "Deputy healthcare manager".into(),
            role: MemberRole::Person,
        }));
        (
            Verified::sign(body, &est, &network, 1_700_000_000_000),
            network,
        )
    }

    #[test]
    fn round_trip() {
        let (env, network) = sample();
        let back = Envelope::open(env.bytes(), &network).expect("verifies");
        assert_eq!(peek_created_ms(env.bytes()), Some(1_700_000_000_000));
        assert_eq!(back, env);
        assert_eq!(back.id(), EnvelopeId::of(env.bytes()));
    }

    #[test]
    fn reopening_checks_the_hash() {
        let (env, network) = sample();
        assert!(Envelope::reopen(env.bytes(), &env.id(), &network).is_ok());
        assert!(Envelope::reopen(env.bytes(), &EnvelopeId([0; 32]), &network).is_err());
    }

    #[test]
    fn a_kind_added_later_verifies_and_keeps_its_payload() {
        let (v, net) = sample();
        let key = SecretKey::from_seed([9; 32]);
        let body = Body::Unread {
            kind: 7,
            payload: b"a post this code cannot read".to_vec(),
        };
        let env = Verified::sign(body.clone(), &key, &net, 5);
        let back = Envelope::open(env.bytes(), &net).expect("verifies");
        assert_eq!(back.kind(), EnvelopeKind::Other(7));
        assert_eq!(back.body(), &body);
        // The domain is the kind's own: the same bytes as another kind fail.
        let mut other = env.bytes().to_vec();
        other[1] = 8;
        assert!(matches!(
            Envelope::open(&other, &net),
            Err(VerifyError::BadSignature(_))
        ));
        // Kind 0 is no kind at all.
        other[1] = 0;
        assert!(Envelope::decode(&other).is_err());
        drop(v);
    }

    #[test]
    fn a_payload_is_not_decoded_before_its_signature_holds() {
        let (env, network) = sample();
        let mut bytes = env.bytes().to_vec();
        // The payload's last byte is the delegation's role tag.
        let role = bytes.len() - 65;
        bytes[role] = 0xee;
        assert!(
            matches!(
                Envelope::decode(&bytes),
                Err(DecodeError::UnknownTag { .. })
            ),
            "the payload no longer decodes"
        );
        assert!(
            matches!(
                Envelope::open(&bytes, &network),
                Err(VerifyError::BadSignature(_))
            ),
            "refused for its signature, before its payload is read"
        );
    }

    #[test]
    fn wrong_network_is_refused() {
        let (env, _) = sample();
        assert!(matches!(
            Envelope::open(env.bytes(), &NetworkId([6; 32])),
            Err(VerifyError::WrongNetwork { .. })
        ));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let bytes = vec![1u8; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(DecodeError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_flipped_bit_is_rejected(bit in 0usize..10_000) {
            let (env, network) = sample();
            let mut bytes = env.bytes().to_vec();
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Envelope::open(&bytes, &network).is_err());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::open(&bytes, &NetworkId([0; 32]));
        }

        #[test]
        fn truncation_is_rejected(cut in 0usize..10_000) {
            let (env, network) = sample();
            let bytes = env.bytes();
            let cut = cut % bytes.len();
            prop_assert!(Envelope::open(&bytes[..cut], &network).is_err());
        }
    }
}
