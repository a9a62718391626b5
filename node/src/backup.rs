//! Backups: a consistent, signed copy of a node's primary data (every
//! envelope, the node's configuration and its peer book, the settings file
//! it runs with; its keys only when asked, sealed under a passphrase), and
//! the restore that rebuilds a
//! node from one on another machine, deriving items, catalog and index
//! again.
//!
//! ```text
//! magic      "GHBACKUP"                    8 bytes
//! version    u8 = 1
//! manifest   u32 length, JSON (Manifest)   at most 1 MiB
//! envelopes  u64 length, a bundle (replica/bundle.rs) of every envelope held
//! signature  [u8; 64]: the node key's, over "gatehouse/v1/backup" ‖ blake3 of every byte before it
//! ```
//!
//! The copy is taken under the library's lock, so it holds exactly the
//! envelopes stored when it began. The signature is checked before a
//! restore writes anything: a damaged or altered file is refused. The
//! envelopes are then imported as any bundle is, each verified and judged.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gatehouse_protocol::key::SecretKey;
use serde::{Deserialize, Serialize};

use crate::error::{LibraryError, Result};
use crate::home::{Home, random_bytes};
use crate::library::{Library, NodeConfig};
use crate::replica::bundle;
use crate::staff::{Sealed, seal, unseal};

/// The first bytes of every backup.
pub const MAGIC: &[u8; 8] = b"GHBACKUP";
/// The backup format version.
pub const VERSION: u8 = 1;
/// Largest manifest read.
const MAX_MANIFEST_BYTES: u32 = 1024 * 1024;
/// What the signature covers, before the digest.
const DOMAIN: &[u8] = b"gatehouse/v1/backup";
/// The file in the data directory that marks a restore under way.
pub const RESTORING: &str = "restore.partial";
/// The key files a backup may carry.
pub const KEY_NAMES: [&str; 4] = ["admin", "establishment", "member", "node"];
/// The name a restored settings file is given in the data directory, where
/// `node run` reads it when no other file is named.
pub const SETTINGS_FILE: &str = "gatehouse.toml";
/// Largest settings file carried.
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// The settings file a node runs with (`gatehouse.toml`), carried in a
/// backup as its text, so that a site restored elsewhere listens, serves and
/// dials as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Where it was read when the backup was taken.
    pub path: PathBuf,
    /// Its text, as written.
    pub text: String,
}

/// What a backup says of itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// When it was taken (ms since the Unix epoch, this node's clock).
    pub created_ms: u64,
    /// The gatehouse version that took it.
    pub gatehouse: String,
    /// The node's configuration.
    pub config: NodeConfig,
    /// The peer book's addresses.
    pub peers: Vec<String>,
    /// Envelopes in it.
    pub envelopes: usize,
    /// Secret keys by file name, sealed under the passphrase.
    #[serde(default)]
    pub keys: BTreeMap<String, Sealed>,
    /// The settings file the node ran with, if it had one.
    #[serde(default)]
    pub settings: Option<Settings>,
}

/// What a backup wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    /// The file.
    pub file: PathBuf,
    /// Envelopes in it.
    pub envelopes: usize,
    /// Bytes written.
    pub bytes: u64,
    /// The key files sealed into it.
    pub keys: Vec<String>,
    /// The settings file carried in it.
    pub settings: Option<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreReport {
    /// When the backup was taken.
    pub created_ms: u64,
    /// Envelopes in the backup.
    pub envelopes: usize,
    /// Of those, in effect on the restored node.
    pub new: usize,
    /// Items the restored library holds.
    pub items: usize,
    /// Key files restored.
    pub keys: Vec<String>,
    /// Peer addresses restored.
    pub peers: usize,
    /// The settings file: where it was read when the backup was taken, and
    /// where it was written now (`None` when one was there already and was
    /// kept).
    pub settings: Option<RestoredSettings>,
}

/// Where a backup's settings file went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoredSettings {
    /// Where the backed-up node read it.
    pub from: PathBuf,
    /// Where it is now, or `None` when the data directory held one already
    /// (kept as it was).
    pub written: Option<PathBuf>,
}

fn bad(why: impl Into<String>) -> LibraryError {
    LibraryError::Backup(format!("not a usable backup: {}", why.into()))
}

fn io(path: &Path, e: std::io::Error) -> LibraryError {
    LibraryError::Backup(format!("{}: {e}", path.display()))
}

impl Library {
    /// Writes a backup of this node to `file`: written beside it and
    /// renamed into place once complete and flushed, mode 0600. With a
    /// `passphrase`, the key files of `home` are sealed into it; `settings`
    /// is the settings file the node runs with.
    pub fn backup(
        &mut self,
        home: &Home,
        file: &Path,
        passphrase: Option<&str>,
        settings: Option<Settings>,
    ) -> Result<BackupReport> {
        if settings
            .as_ref()
            .is_some_and(|s| s.text.len() > MAX_SETTINGS_BYTES)
        {
            return Err(bad(format!(
                "its settings file is over {} KiB",
                MAX_SETTINGS_BYTES / 1024
            )));
        }
        let node_key = home
            .read_key("node")?
            .ok_or_else(|| bad("this node has no node key to sign it with"))?;
        let mut keys = BTreeMap::new();
        if let Some(secret) = passphrase {
            for name in KEY_NAMES {
                if let Some(k) = home.read_key(name)? {
                    let sealed = seal(&k, secret).map_err(|e| bad(e.to_string()))?;
                    keys.insert(name.to_string(), sealed);
                }
            }
        }
        let envelopes = self.export()?;
        let manifest = Manifest {
            created_ms: self.now(),
            gatehouse: env!("CARGO_PKG_VERSION").to_string(),
            config: self.config().clone(),
            peers: self.peers()?.into_iter().map(|p| p.address).collect(),
            envelopes: envelopes.len(),
            keys,
            settings,
        };
        let bundle = bundle::write(&self.config().network, &envelopes);
        drop(envelopes);
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| bad(format!("manifest: {e}")))?;
        let mut out = Vec::with_capacity(bundle.len() + manifest_bytes.len() + 96);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(
            &u32::try_from(manifest_bytes.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&manifest_bytes);
        out.extend_from_slice(&(bundle.len() as u64).to_be_bytes());
        out.extend_from_slice(&bundle);
        drop(bundle);
        let signature = node_key.sign(&signed_message(blake3::hash(&out)));
        out.extend_from_slice(&signature);
        write_private(file, &out).map_err(|e| io(file, e))?;
        Ok(BackupReport {
            file: file.to_path_buf(),
            envelopes: manifest.envelopes,
            bytes: out.len() as u64,
            keys: manifest.keys.keys().cloned().collect(),
            settings: manifest.settings.map(|s| s.path),
        })
    }

    /// Rebuilds a node in `home` (which must not hold one) from the backup
    /// `file`, checked whole first. Keys sealed in it are restored with
    /// `passphrase`; without keys the node is restored all the same, and
    /// its key files are to be put in `keys/` before it runs. The restored
    /// node writes as a new Automerge actor, so it can never reuse a
    /// sequence number the old node used.
    pub fn restore(
        home: &Home,
        file: &Path,
        passphrase: Option<&str>,
    ) -> Result<(Self, RestoreReport)> {
        // A restore that was cut short (killed, disk full) left this
        // marker: what it made is its own, and is made again.
        let marker = home.root().join(RESTORING);
        if marker.exists() {
            for dir in [home.store_dir(), home.index_dir()] {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
                }
            }
        }
        if home.is_initialised() {
            return Err(LibraryError::AlreadyInitialised(
                home.root().display().to_string(),
            ));
        }
        let mut f = bundle::open_file(file).map_err(|e| io(file, e))?;
        let (manifest, bundle_at, bundle_len) = check(&mut f).map_err(|e| match e {
            Checked::Io(e) => io(file, e),
            Checked::Bad(why) => bad(why),
        })?;
        let mut keys: BTreeMap<String, SecretKey> = BTreeMap::new();
        if !manifest.keys.is_empty() {
            let Some(secret) = passphrase else {
                return Err(bad(
                    "it holds sealed keys: give the passphrase it was taken with",
                ));
            };
            for (name, sealed) in &manifest.keys {
                if !KEY_NAMES.contains(&name.as_str()) {
                    return Err(bad(format!("it names an unknown key file {name:?}")));
                }
                let key = unseal(sealed, secret)
                    .map_err(|_| bad("the passphrase does not open its keys"))?;
                keys.insert(name.clone(), key);
            }
            if keys
                .get("node")
                .is_some_and(|k| k.public() != manifest.config.node)
            {
                return Err(bad("its node key is not the node it describes"));
            }
        }
        home.create()?;
        std::fs::write(&marker, b"a restore is under way\n").map_err(|e| io(&marker, e))?;
        for (name, key) in &keys {
            match home.read_key(name)? {
                Some(held) if held.public() == key.public() => {}
                Some(_) => {
                    return Err(bad(format!(
                        "{} holds another key; move it away to restore this one",
                        home.key_path(name).display()
                    )));
                }
                None => {
                    home.write_key(name, key)?;
                }
            }
        }
        let config = NodeConfig {
            actor_suffix: hex::encode(random_bytes::<16>()?),
            ..manifest.config.clone()
        };
        let member = keys
            .get("member")
            .map(|k| SecretKey::from_seed(k.to_seed()));
        let mut lib = Self::create_in(home, config, member)?;
        let window = Window::new(f, bundle_at, bundle_len).map_err(|e| io(file, e))?;
        let imported = bundle::import_from(&mut lib, window)
            .map_err(|e| LibraryError::Backup(format!("{}: {e}", file.display())))?;
        let mut peers = 0;
        for address in &manifest.peers {
            if lib.add_peer(address)? {
                peers += 1;
            }
        }
        let settings = match manifest.settings {
            Some(s) => Some(RestoredSettings {
                written: restore_settings(home, &s.text)?,
                from: s.path,
            }),
            None => None,
        };
        let items = lib.status()?.items;
        std::fs::remove_file(&marker).map_err(|e| io(&marker, e))?;
        Ok((
            lib,
            RestoreReport {
                created_ms: manifest.created_ms,
                envelopes: manifest.envelopes,
                new: imported.new,
                items,
                keys: keys.into_keys().collect(),
                peers,
                settings,
            },
        ))
    }
}

/// Writes a backup's settings file into the data directory, unless one is
/// there already (a restore never overwrites what the site put in place).
fn restore_settings(home: &Home, text: &str) -> Result<Option<PathBuf>> {
    let path = home.root().join(SETTINGS_FILE);
    if path.exists() {
        return Ok(None);
    }
    write_private(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
    Ok(Some(path))
}

fn signed_message(digest: blake3::Hash) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(digest.as_bytes());
    m
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600), flushes
/// it and renames it into place, so a crash leaves the old file or the new
/// one, never half of one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

enum Checked {
    Io(std::io::Error),
    Bad(String),
}

impl From<std::io::Error> for Checked {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Checked::Bad("it is cut short".into())
        } else {
            Checked::Io(e)
        }
    }
}

/// Reads and checks a whole backup: its layout, and its signature by the
/// node it describes over every byte. Returns the manifest and where the
/// envelopes' bundle lies.
fn check(f: &mut std::fs::File) -> std::result::Result<(Manifest, u64, u64), Checked> {
    let mut hasher = blake3::Hasher::new();
    let mut head = [0u8; 13];
    f.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(Checked::Bad("it does not start with GHBACKUP".into()));
    }
    if head[8] != VERSION {
        return Err(Checked::Bad(format!(
            "format version {} (this gatehouse reads version {VERSION})",
            head[8]
        )));
    }
    let manifest_len = u32::from_be_bytes([head[9], head[10], head[11], head[12]]);
    if manifest_len > MAX_MANIFEST_BYTES {
        return Err(Checked::Bad("its manifest is over 1 MiB".into()));
    }
    hasher.update(&head);
    let mut manifest_bytes = vec![0u8; manifest_len as usize];
    f.read_exact(&mut manifest_bytes)?;
    hasher.update(&manifest_bytes);
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Checked::Bad(format!("its manifest does not read: {e}")))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    hasher.update(&len);
    let bundle_len = u64::from_be_bytes(len);
    let bundle_at = 13 + u64::from(manifest_len) + 8;
    let size = f.metadata()?.len();
    if bundle_at
        .checked_add(bundle_len)
        .and_then(|n| n.checked_add(64))
        != Some(size)
    {
        return Err(Checked::Bad(format!(
            "it is {size} bytes, but its parts add up to {}",
            bundle_at.saturating_add(bundle_len).saturating_add(64)
        )));
    }
    let copied = std::io::copy(
        &mut (&mut *f).take(bundle_len),
        &mut HashWriter(&mut hasher),
    )?;
    if copied != bundle_len {
        return Err(Checked::Bad("it is cut short".into()));
    }
    let mut signature = [0u8; 64];
    f.read_exact(&mut signature)?;
    if !manifest
        .config
        .node
        .verify(&signed_message(hasher.finalize()), &signature)
    {
        return Err(Checked::Bad(
            "its signature does not match: it was damaged or changed since it was taken".into(),
        ));
    }
    Ok((manifest, bundle_at, bundle_len))
}

struct HashWriter<'a>(&'a mut blake3::Hasher);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes `start..start + len` of a file, read and sought in as a file
/// of their own.
struct Window<R> {
    inner: std::io::BufReader<R>,
    start: u64,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Window<R> {
    fn new(inner: R, start: u64, len: u64) -> std::io::Result<Self> {
        let mut inner = std::io::BufReader::new(inner);
        inner.seek(SeekFrom::Start(start))?;
        Ok(Self {
            inner,
            start,
            len,
            pos: 0,
        })
    }
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.len - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        let got = self.inner.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<R: Read + Seek> Seek for Window<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .filter(|&t| t <= self.len)
        .ok_or_else(|| std::io::Error::other("a seek outside the backup's envelopes"))?;
        self.inner.seek(SeekFrom::Start(self.start + target))?;
        self.pos = target;
        Ok(target)
    }
}
