//! Where a command runs: directly on the data directory, or inside the
//! running node (`gatehouse node run`) on the library it already holds.
//!
//! Both paths execute the same command code; only how the library is
//! reached differs. In the node, relative paths are resolved against the
//! working directory of the `gatehouse` process that sent the command.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use gatehouse_node::home::Home;
use gatehouse_node::library::Library;
use gatehouse_node::net::NetStatus;

use crate::reader::{Api, Reader};

/// The context a command runs in.
pub struct Ctx<'a> {
    /// The data directory.
    pub home: Home,
    /// The caller's working directory, when running inside the node.
    cwd: Option<PathBuf>,
    shared: Option<&'a Mutex<Library>>,
    guard: Option<MutexGuard<'a, Library>>,
    opened: Option<Library>,
    api: Option<Api>,
    /// The network's state, when running inside the node.
    pub net: Option<NetStatus>,
}

impl<'a> Ctx<'a> {
    /// Commands run by opening the data directory.
    pub fn direct(home: Home) -> Self {
        Self {
            home,
            cwd: None,
            shared: None,
            guard: None,
            opened: None,
            api: None,
            net: None,
        }
    }

    /// Read-only commands answered by the running node's JSON API.
    pub fn api(home: Home, api: Api) -> Self {
        Self {
            api: Some(api),
            ..Self::direct(home)
        }
    }

    /// Commands run inside the node, on its library.
    pub fn shared(home: Home, library: &'a Mutex<Library>, cwd: PathBuf, net: NetStatus) -> Self {
        Self {
            home,
            cwd: Some(cwd),
            shared: Some(library),
            guard: None,
            opened: None,
            api: None,
            net: Some(net),
        }
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

    /// Where read-only commands get the library's contents: the node's API
    /// when this context has one, the library otherwise.
    pub fn reader(&mut self) -> anyhow::Result<&mut dyn Reader> {
        if self.api.is_some() {
            return self
                .api
                .as_mut()
                .map(|a| a as &mut dyn Reader)
                .ok_or_else(|| anyhow::anyhow!("no API"));
        }
        Ok(self.lib()?)
    }

    /// A path given on the command line, resolved for where the command runs.
    pub fn path(&self, p: &Path) -> PathBuf {
        self.resolver().path(p)
    }

    /// Resolves paths without borrowing the context.
    pub fn resolver(&self) -> Resolver {
        Resolver {
            cwd: self.cwd.clone(),
        }
    }
}

/// Resolves command-line paths for where a command runs.
pub struct Resolver {
    cwd: Option<PathBuf>,
}

impl Resolver {
    /// The path to use for `p`.
    pub fn path(&self, p: &Path) -> PathBuf {
        match &self.cwd {
            Some(cwd) if p.is_relative() => cwd.join(p),
            _ => p.to_path_buf(),
        }
    }
}
