//! The data directory of a node: where its keys, store and index live, and
//! how secret keys are written (readable by their owner only).
//!
//! ```text
//! HOME/
//!   keys/            0700
//!     node.key       0600   the node's identity (later its libp2p identity)
//!     member.key     0600   the person who publishes from this node
//!     establishment.key 0600 the site's key; can be moved offline after init
//!     admin.key      0600   the network admin key made when the network was founded
//!   store/           sled database (envelopes and derived trees)
//!   index/           tantivy index (derived, rebuilt when missing)
//!   drafts/          0700   items being written, this node's only (`drafts.rs`)
//! ```

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use gatehouse_protocol::key::SecretKey;
use thiserror::Error;

const KEY_HEADER: &str = "gatehouse secret key v1";

/// A problem with the data directory or a key file.
#[derive(Debug, Error)]
pub enum HomeError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A key file is not in the expected format.
    #[error("{0}: not a gatehouse secret key file")]
    BadKeyFile(PathBuf),
    /// A key file can be read by others.
    #[error("{0}: secret key file is readable by other users; run `chmod 600` on it")]
    KeyTooOpen(PathBuf),
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], HomeError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| HomeError::Random(e.to_string()))?;
    Ok(out)
}

/// A fresh random key.
pub fn generate_key() -> Result<SecretKey, HomeError> {
    Ok(SecretKey::from_seed(random_bytes()?))
}

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The data directory at `root` (not created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sled store.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The search index.
    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    /// The files items carry ([`crate::blobs::BlobStore`]).
    pub fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The key directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The file of a named key.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.keys_dir().join(format!("{name}.key"))
    }

    /// Whether a node has been initialised here.
    pub fn is_initialised(&self) -> bool {
        self.store_dir().exists()
    }

    /// Creates the directory tree, private to its owner: other local users
    /// can read neither the library's store nor the keys. A directory that
    /// already holds other things (one given with `--home`) keeps its mode;
    /// its `keys/` is private all the same, and so are `store/` and
    /// `index/` once made (`private_dir`).
    pub fn create(&self) -> Result<(), HomeError> {
        let ours = fs::read_dir(&self.root).map_or(true, |mut d| d.next().is_none());
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        if ours {
            set_mode(&self.root, 0o700)?;
        }
        self.private_dir(&self.keys_dir())
    }

    /// Makes `dir` (created if missing) readable by the owner only: the
    /// store and index are made so when a node is made, and again each
    /// time it opens, so a data directory made before is mended.
    pub fn private_dir(&self, dir: &Path) -> Result<(), HomeError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        set_mode(dir, 0o700)
    }

    /// Writes a secret key, readable by the owner only. Refuses to overwrite.
    pub fn write_key(&self, name: &str, key: &SecretKey) -> Result<PathBuf, HomeError> {
        let path = self.key_path(name);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path).map_err(io(&path))?;
        writeln!(f, "{KEY_HEADER}\n{}", hex::encode(key.to_seed())).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        Ok(path)
    }

    /// Reads a secret key; `None` when the file does not exist.
    pub fn read_key(&self, name: &str) -> Result<Option<SecretKey>, HomeError> {
        read_key_file(&self.key_path(name))
    }
}

/// Reads a secret key file (a person's own, kept where they keep it);
/// `None` when it does not exist. Refused when others may read it.
pub fn read_key_file(path: &Path) -> Result<Option<SecretKey>, HomeError> {
    let path = path.to_path_buf();
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).map_err(io(&path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(HomeError::KeyTooOpen(path));
        }
    }
    let mut lines = text.lines();
    if lines.next() != Some(KEY_HEADER) {
        return Err(HomeError::BadKeyFile(path));
    }
    let mut seed = [0u8; 32];
    let hex_line = lines.next().unwrap_or_default().trim();
    hex::decode_to_slice(hex_line, &mut seed).map_err(|_| HomeError::BadKeyFile(path.clone()))?;
    Ok(Some(SecretKey::from_seed(seed)))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), HomeError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().join("h"));
        home.create().expect("create");
        let k = generate_key().expect("key");
        let path = home.write_key("member", &k).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(home.root()), 0o700, "the data directory is private");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A --home that already holds other things keeps its mode; what
            // the node keeps in it is private all the same.
            let shared = dir.path().join("shared");
            fs::create_dir(&shared).expect("dir");
            fs::write(shared.join("notes.txt"), "x").expect("file");
            fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).expect("chmod");
            let in_shared = Home::new(&shared);
            in_shared.create().expect("create");
            let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&shared), 0o755);
            assert_eq!(mode(&in_shared.keys_dir()), 0o700);
            assert!(!in_shared.is_initialised(), "making keys/ makes no node");
        }
        let back = home.read_key("member").expect("read").expect("present");
        assert_eq!(back.public(), k.public());
        assert!(home.write_key("member", &k).is_err());
        assert!(home.read_key("absent").expect("read").is_none());
    }
}
