//! The Gatehouse node: storage, the materialised library and its search
//! index. The CLI uses this crate directly when no daemon runs; the daemon
//! serves the same [`library::Library`] to its peers, to the CLI and, in
//! [`web`], to browsers and programs over HTTP.

pub mod authority;
pub mod bundle;
pub mod diff;
pub mod draft;
pub mod error;
pub mod filter;
pub mod home;
pub mod library;
pub mod markdown;
pub mod net;
pub mod replica;
pub mod runtime;
pub mod sample;
pub mod search;
pub mod store;
pub mod sync;
pub mod web;

pub use library::Library;
