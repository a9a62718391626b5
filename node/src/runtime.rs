//! A running node: the library shared with the network task.
//!
//! This is what `gatehouse node run`, `gatehouse demo` and the multi-node
//! tests start. Local operations lock the library, run, and announce what
//! they stored to the network; the network task locks it for each batch of
//! envelopes it receives. The lock is a `std` mutex, never held across an
//! `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use gatehouse_protocol::key::SecretKey;

use crate::home::Home;
use crate::library::{Library, LibraryError};
use crate::net::{self, NetConfig, NetError, NetHandle};
use crate::query::Reads;

/// A failure starting a node.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The library could not be opened.
    #[error(transparent)]
    Library(#[from] Box<LibraryError>),
    /// The node key is missing or unreadable.
    #[error("node key: {0}")]
    NodeKey(String),
    /// The network could not start.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// A node with its network running.
#[derive(Clone)]
pub struct RunningNode {
    /// The library, shared with the network task.
    pub library: Arc<Mutex<Library>>,
    /// The network task.
    pub net: NetHandle,
    /// Where readers find the library's latest view.
    reads: Reads,
}

impl RunningNode {
    /// Opens the node in `home` and starts its network.
    pub async fn start(home: &Home, config: NetConfig) -> Result<Self, RuntimeError> {
        let library = Library::open(home).map_err(|e| RuntimeError::Library(Box::new(e)))?;
        let key = home
            .read_key("node")
            .map_err(|e| RuntimeError::NodeKey(e.to_string()))?
            .ok_or_else(|| {
                RuntimeError::NodeKey(format!("{} is missing", home.key_path("node").display()))
            })?;
        Self::start_with(library, &key, config).await
    }

    /// Starts the network for an open library.
    pub async fn start_with(
        library: Library,
        node_key: &SecretKey,
        config: NetConfig,
    ) -> Result<Self, RuntimeError> {
        let reads = library.reads();
        let library = Arc::new(Mutex::new(library));
        let net = net::start(library.clone(), node_key, config).await?;
        Ok(Self {
            library,
            net,
            reads,
        })
    }

    /// Locks the library.
    pub fn lock(&self) -> MutexGuard<'_, Library> {
        self.library.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where readers find the library's latest view, without its lock.
    pub fn reads(&self) -> Reads {
        self.reads.clone()
    }

    /// Runs a local operation on the library, then announces what it stored.
    pub async fn local<T>(&self, op: impl FnOnce(&mut Library) -> T) -> T {
        let (out, fresh) = {
            let mut lib = self.lock();
            let out = op(&mut lib);
            (out, lib.take_outbox())
        };
        self.net.announce(fresh).await;
        out
    }

    /// The web page's state for this node: its reads and network, and its
    /// staff (kept in `home`) signing in to post.
    pub fn web_state(&self, home: &Home) -> crate::web::WebState {
        let accounts = crate::web::auth::Accounts::new(
            crate::staff::Staff::of(home),
            Arc::clone(&self.library),
            Some(self.net.clone()),
        );
        crate::web::WebState::new(self.reads(), Some(self.net.clone())).with_accounts(accounts)
    }

    /// Stops the network.
    pub async fn stop(&self) {
        self.net.shutdown().await;
    }
}
