//! Gatehouse multi-node tests and the network benchmark harness.
//!
//! Single-node behaviour is tested beside its code (`protocol`, `node`) and
//! end to end through the CLI (`cli/tests`). This crate holds what needs
//! several real nodes at once: [`cluster`] builds a network of sites the
//! way real sites join one (admission, invitation, join) and starts their
//! nodes on loopback; [`library_site`] serves one node's library over HTTP
//! for the web and browser tests; [`sim`] runs hundreds of nodes' real
//! sync cores over a seeded simulated network; [`scenario`] holds the
//! simulation's scenarios, run by the tests and by `bin/simulate`.

pub mod cluster;
pub mod fuzz;
pub mod library_site;
pub mod scenario;
pub mod shaper;
pub mod sim;
