//! Gatehouse multi-node tests and the network benchmark harness.
//!
//! Single-node behaviour is tested beside its code (`protocol`, `node`) and
//! end to end through the CLI (`cli/tests`). This crate holds what needs
//! several real nodes at once: [`cluster`] builds a network of sites the
//! way real sites join one (admission, invitation, join) and starts their
//! nodes on loopback.

pub mod cluster;
