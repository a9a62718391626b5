//! Gatehouse protocol: keys, signed envelopes, their canonical encoding,
//! certificates and trust evaluation, and the library item schema.
//!
//! This crate does no IO and reads no clock: everything here is a function of
//! its inputs, so it can be tested exhaustively and trusted by every node to
//! decide the same way. Decoding returns errors on any input, never panics.

pub mod attachment;
pub mod certificate;
pub mod change;
mod columns;
pub mod encoding;
pub mod envelope;
pub mod first;
pub mod id;
pub mod identifier;
pub mod item;
pub mod key;
pub mod post;
pub mod reconcile;
pub mod record;
pub mod sync;
pub mod trust;
pub mod vocab;

pub use automerge;
pub use jiff;
