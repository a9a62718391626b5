//! Where an op runs: directly on the data directory, or inside the running
//! node (`gatehouse node run`) on the library it already holds.
//!
//! Both paths run the same op code; only how the library is reached
//! differs. Paths in an op are already absolute (`ops::absolute`), so they
//! mean the same in either process.

use std::sync::{Mutex, MutexGuard};

use gatehouse_node::home::Home;
use gatehouse_node::library::Library;
use gatehouse_node::net::NetStatus;
use gatehouse_node::query::{ReadView, Reads};

/// The context an op runs in.
pub struct Ctx<'a> {
    /// The data directory.
    pub home: Home,
    shared: Option<&'a Mutex<Library>>,
    reads: Option<Reads>,
    guard: Option<MutexGuard<'a, Library>>,
    opened: Option<Library>,
    /// The network's state, when running inside the node.
    pub net: Option<NetStatus>,
}

impl<'a> Ctx<'a> {
    /// Ops run by opening the data directory.
    pub fn direct(home: Home) -> Self {
        Self {
            home,
            shared: None,
            reads: None,
            guard: None,
            opened: None,
            net: None,
        }
    }

    /// Ops run inside the node, on its library.
    pub fn shared(home: Home, library: &'a Mutex<Library>, reads: Reads, net: NetStatus) -> Self {
        Self {
            home,
            shared: Some(library),
            reads: Some(reads),
            guard: None,
            opened: None,
            net: Some(net),
        }
    }

    /// A view of the library for reading. Inside the node it is the latest
    /// the library handed out, taken without its lock, so a read never
    /// waits for a batch from a peer.
    pub fn view(&mut self) -> anyhow::Result<ReadView> {
        if let Some(reads) = &self.reads {
            return Ok((*reads.latest()).clone());
        }
        if self.opened.is_none() && self.shared.is_none() {
            self.opened = Some(Library::open_for_reading(&self.home)?);
        }
        Ok(self.lib()?.read_view())
    }

    /// Whether the op took the running node's library (and so may have
    /// stored something to announce).
    pub fn took_library(&self) -> bool {
        self.guard.is_some()
    }

    /// The library, opened (or locked) on first use.
    pub fn lib(&mut self) -> anyhow::Result<&mut Library> {
        if let Some(shared) = self.shared {
            let guard = self
                .guard
                .get_or_insert_with(|| shared.lock().unwrap_or_else(|p| p.into_inner()));
            return Ok(&mut **guard);
        }
        if self.opened.is_none() {
            self.opened = Some(Library::open(&self.home)?);
        }
        self.opened
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("library not open"))
    }
}
