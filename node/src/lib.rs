//! The Gatehouse node: storage, the materialised library and its search
//! index. The CLI uses this crate directly when no daemon runs; the daemon
//! will serve the same [`library::Library`] over its local API.

pub mod authority;
pub mod bundle;
pub mod draft;
pub mod filter;
pub mod home;
pub mod library;
pub mod net;
pub mod runtime;
pub mod sample;
pub mod search;
pub mod store;

pub use library::Library;
