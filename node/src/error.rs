//! What can go wrong in a library operation, shared by the replica, the
//! projections and the operations built on them.

use gatehouse_protocol::automerge;
use gatehouse_protocol::envelope::VerifyError;
use gatehouse_protocol::id::{EnvelopeId, ItemId};
use gatehouse_protocol::identifier::IdentifierKind;
use gatehouse_protocol::item::{DocError, FieldError};
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::Status;
use thiserror::Error;

use crate::home::HomeError;
use crate::projection::search::SearchError;
use crate::replica::{MAX_UNACCEPTED_ENVELOPES, MAX_UNACCEPTED_PER_SIGNER, MAX_UNREAD_ENVELOPES};
use crate::store::StoreError;

/// What went wrong in a library operation.
#[derive(Debug, Error)]
pub enum LibraryError {
    /// Storage failed.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The search index failed.
    #[error(transparent)]
    Search(Box<SearchError>),
    /// The data directory or a key file failed.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// No node has been initialised in the data directory.
    #[error("no gatehouse node in {0}; run `gatehouse init` first")]
    NotInitialised(String),
    /// A node already exists in the data directory.
    #[error("a gatehouse node already exists in {0}")]
    AlreadyInitialised(String),
    /// No item has this id.
    #[error("no item {0}")]
    UnknownItem(String),
    /// No key the network knows starts with the text given.
    #[error(
        "no key the network knows starts with {0:?}; give the whole key, or at least 8 of its characters"
    )]
    UnknownKey(String),
    /// A key prefix matches more than one key.
    #[error("key prefix {prefix} matches {candidates}; give more characters")]
    AmbiguousKey {
        /// The prefix given.
        prefix: String,
        /// The keys it matches, with their holders.
        candidates: String,
    },
    /// An id prefix matches more than one item.
    #[error("item id prefix {prefix} matches {count} items; give more characters")]
    AmbiguousId {
        /// The prefix given.
        prefix: String,
        /// How many items it matches.
        count: usize,
    },
    /// The item belongs to another establishment.
    #[error(
        "item {item} belongs to {owner}; only its own establishment can change it: discuss it with them (`gatehouse discuss --about {item} --title TOPIC`), or adopt it for your site (`gatehouse adopt {item}`) and change your copy"
    )]
    NotOwner {
        /// The item.
        item: ItemId,
        /// Its owning establishment's name.
        owner: String,
    },
    /// This node has no publishing key.
    #[error("this node has no publishing key (keys/member.key)")]
    NoSigningKey,
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// Text holds what looks like a patient identifier.
    #[error(
        "{field} holds what looks like {} ({text:?}); patient identifiers never enter the library. If this is a reviewed false positive, pass --allow-identifier {text:?}", kind.with_article()
    )]
    Identifier {
        /// The field at fault.
        field: &'static str,
        /// What sort of identifier.
        kind: IdentifierKind,
        /// The matched text.
        text: String,
    },
    /// A name or reason in a certificate holds what looks like a patient
    /// identifier (there is no allow-list for these: they name people and
    /// sites, not clinical content).
    #[error(
        "the {field} holds what looks like {} ({text:?}); patient identifiers never enter the library, so write it without one", kind.with_article()
    )]
    IdentifierInCertificate {
        /// The field at fault.
        field: &'static str,
        /// What sort of identifier.
        kind: IdentifierKind,
        /// The matched text.
        text: String,
    },
    /// A post being written holds what looks like a patient identifier.
    #[error(
        "the {field} holds what looks like {} ({text:?}) at line {line}, column {column}; patient identifiers never enter a post, so write it without one", kind.with_article()
    )]
    IdentifierInPost {
        /// The field at fault.
        field: &'static str,
        /// What sort of identifier.
        kind: IdentifierKind,
        /// The matched text.
        text: String,
        /// Its line in the field (1-based).
        line: usize,
        /// Its column in the line (1-based, in characters).
        column: usize,
    },
    /// An attached file holds what looks like a patient identifier.
    #[error(
        "{name}: {location} holds what looks like {} ({text:?}); patient identifiers never enter the library. Remove it from the file, or, if this is a reviewed false positive, pass --allow-identifier {text:?}", kind.with_article()
    )]
    IdentifierInAttachment {
        /// The file.
        name: String,
        /// Where in it ("page 2", "table 1, row 3, column 2").
        location: String,
        /// What sort of identifier.
        kind: IdentifierKind,
        /// The matched text.
        text: String,
    },
    /// An attached file that cannot be carried as given.
    #[error("{0}")]
    Attachment(String),
    /// The file store failed.
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
    /// A post that cannot be written as given (an empty title, a reply to
    /// a thread not held, an edit of someone else's post).
    #[error("{0}")]
    BadPost(String),
    /// No thread or post has this id.
    #[error("no thread or post {0} is held here")]
    UnknownPost(EnvelopeId),
    /// The item can no longer be revised.
    #[error("item {id} is {status}; publish a new item instead")]
    Closed {
        /// The item.
        id: ItemId,
        /// Its status.
        status: Status,
    },
    /// An adoption, or taking a source's change, that cannot be made.
    #[error("{0}")]
    Adopt(String),
    /// An approval, review or rule change that cannot be made, and why.
    #[error("{0}")]
    Lifecycle(String),
    /// A revision that changes nothing.
    #[error("nothing changed in item {0}")]
    NoChange(ItemId),
    /// The item has no such version.
    #[error("item {id} has no version {version} (latest is {latest})")]
    NoSuchVersion {
        /// The item.
        id: ItemId,
        /// The version asked for.
        version: u64,
        /// The latest version.
        latest: u64,
    },
    /// The invitation does not admit or delegate any key in the data directory.
    #[error("{0}")]
    NotInvited(String),
    /// A bundle could not be read.
    #[error("bundle: {0}")]
    Bundle(String),
    /// A backup could not be written, read or restored.
    #[error("{0}")]
    Backup(String),
    /// No envelope has this id.
    #[error("no envelope {0} is held here")]
    UnknownEnvelope(EnvelopeId),
    /// Too many envelopes are waiting or without effect.
    #[error(
        "{MAX_UNACCEPTED_ENVELOPES} envelopes are already pending or rejected; refusing another ({0})"
    )]
    PoolFull(Judgement),
    /// A certificate from outside that can have no effect here: signed by
    /// (or revoking) a key the network does not know. Not stored; a peer
    /// offers it again once what it depends on has arrived.
    #[error("not stored yet: {0}")]
    NoEffect(&'static str),
    /// A change from outside that would leave its item breaking the rules
    /// a local publish meets (schema, vocabulary, dates, patient
    /// identifiers). Not stored, not forwarded.
    #[error("not stored: the change to item {item} would leave it refused: {reason}")]
    ContentRefused {
        /// The item.
        item: ItemId,
        /// Why, as a local publish would be told.
        reason: String,
    },
    /// A certificate from outside whose free text (a name, a reason) holds
    /// what looks like a patient identifier. Not stored, not forwarded.
    #[error("not stored: a certificate whose {field} holds what looks like {}", kind.with_article())]
    CertificateRefused {
        /// The field at fault.
        field: &'static str,
        /// What sort of identifier (the text itself is not repeated).
        kind: IdentifierKind,
    },
    /// A post from outside whose free text holds what looks like a patient
    /// identifier. Not stored, not forwarded.
    #[error("not stored: a post whose {field} holds what looks like {}", kind.with_article())]
    PostRefused {
        /// The field at fault.
        field: &'static str,
        /// What sort of identifier (the text itself is not repeated).
        kind: IdentifierKind,
    },
    /// The signer already has the most envelopes not in effect one key may
    /// have stored here.
    #[error(
        "not stored: {0} already has {MAX_UNACCEPTED_PER_SIGNER} envelopes here that are not in effect"
    )]
    SignerLimit(PublicKey),
    /// Too many envelopes of kinds this node does not read are held.
    #[error(
        "{MAX_UNREAD_ENVELOPES} envelopes of kinds this version does not read are already held; refusing another (upgrade gatehouse to read them)"
    )]
    UnreadFull,
    /// This node's own key is not authorised for the change.
    #[error(
        "your key may not make that change, so nothing was signed or stored (the network would judge it {0}); if your key was revoked or replaced, your site lead can give you a new one (`gatehouse member add`)"
    )]
    NotAuthorised(Judgement),
    /// An envelope from outside was refused.
    #[error(transparent)]
    Refused(Box<VerifyError>),
    /// An item document failed.
    #[error(transparent)]
    Doc(Box<DocError>),
    /// Automerge refused a change set.
    #[error("item document: {0}")]
    Automerge(Box<automerge::AutomergeError>),
    /// Stored data is not what this code wrote.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// Envelopes (primary data) read back from disk fail their hash check.
    #[error(
        "{} envelope(s) held here are damaged on disk and cannot be trusted: {}. \
         They are lost from this node; every peer that holds them can send them again. \
         To recover: stop the node, move the data directory aside, create a new node \
         with `gatehouse init --join` from a fresh invitation and let it sync from its peers",
        ids.len(),
        ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    )]
    DamagedEnvelopes {
        /// The envelopes that fail their hash check.
        ids: Vec<EnvelopeId>,
    },
}

impl LibraryError {
    /// Whether the failure is in state derived from the envelopes (item
    /// documents, catalog, judgements, search index), which a rebuild from
    /// the envelopes repairs; primary data and the disk itself are not.
    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            LibraryError::Search(_)
                | LibraryError::Doc(_)
                | LibraryError::Automerge(_)
                | LibraryError::Corrupt(_)
        )
    }
}

pub(crate) type Result<T, E = LibraryError> = std::result::Result<T, E>;

macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),+ $(,)?) => {
        $(impl From<$ty> for LibraryError {
            fn from(e: $ty) -> Self {
                LibraryError::$variant(Box::new(e))
            }
        })+
    };
}

boxed_from!(
    Store(StoreError),
    Search(SearchError),
    Refused(VerifyError),
    Doc(DocError),
    Automerge(automerge::AutomergeError),
);
