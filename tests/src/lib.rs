//! Gatehouse multi-node tests and the network benchmark harness.
//!
//! Single-node behaviour is tested beside its code (`protocol`, `node`) and
//! end to end through the CLI (`cli/tests`). This crate holds what needs
//! several nodes at once.
