//! The Gatehouse node. Its folders are its layers:
//!
//! - `store.rs`, `home.rs`: the disk (sled trees, key files);
//! - `replica/`: the one door for envelopes and their only writer (and
//!   bundles, envelopes moved by file);
//! - `projection/`: item documents, catalog and search index, derived from
//!   the envelopes;
//! - `authoring/`: this site's changes, certificate operations, drafts;
//! - `query/`: reads over a [`query::ReadView`], taken after each batch;
//! - `library.rs`: the parts put together, opened and recovered;
//! - `sync/`: the sans-IO sync core; `net/`: the libp2p shell around it and
//!   the peer book;
//! - `web/`: the read-only web page and JSON API; `runtime.rs`: a running
//!   node.
//!
//! The CLI uses this crate directly when no daemon runs; the daemon serves
//! the same [`library::Library`] to its peers, to the CLI and, in [`web`],
//! to browsers and programs over HTTP.

pub mod authoring;
pub mod backup;
pub mod blobs;
pub mod docx;
pub mod drafts;
pub mod error;
pub mod extract;
pub mod home;
pub mod library;
pub mod metrics;
pub mod net;
pub mod pack;
pub mod projection;
pub mod query;
pub mod replica;
pub mod runtime;
pub mod sample;
pub mod staff;
pub mod store;
pub mod sync;
pub mod web;

pub use library::Library;
