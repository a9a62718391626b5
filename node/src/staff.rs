//! Staff accounts: the people of this site who sign in to its web page.
//!
//! Each person has their own ed25519 key, delegated by a site lead's key
//! with the clinician role (posting, never publishing), so staff are added
//! without the offline establishment key. The node holds the key sealed
//! (XChaCha20-Poly1305 under a key stretched from a secret with
//! argon2id): under a one-time set-up code until the person first signs in
//! and chooses a password, then under that password. The key is opened
//! only while its owner signs in, and kept in memory only for their
//! session.
//!
//! Accounts are files in `<home>/staff/<login>.json`, readable by the
//! owner only, written whole (a temporary file, synced, then renamed), so
//! a crash leaves the old account or the new one. Removing a person
//! revokes their key network-wide, keeping everything it signed (their
//! past posts stay attributed), and forgets the sealed key.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::vocab::Job;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::authoring::authority::History;
use crate::error::LibraryError;
use crate::home::{Home, random_bytes};
use crate::library::Library;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds work).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Characters in a set-up code (from an alphabet without look-alikes).
pub const SETUP_CODE_CHARS: usize = 16;
const CODE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// What can go wrong with an account.
#[derive(Debug, Error)]
pub enum StaffError {
    /// No account has this login.
    #[error("no staff account {0:?} on this node (see `gatehouse staff list`)")]
    Unknown(String),
    /// The login is taken.
    #[error("a staff account {0:?} exists already; choose another --login")]
    Exists(String),
    /// The secret did not open the key.
    #[error("the password or set-up code is wrong")]
    WrongSecret,
    /// A password too short or too long.
    #[error("a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// The account still waits for its first sign-in with its set-up code.
    #[error("this account has not been set up: sign in with the set-up code and choose a password")]
    NotSetUp,
    /// The account was removed.
    #[error("this account was removed")]
    Removed,
    /// A login that is not a short lowercase name.
    #[error("a login is 2 to 40 lowercase letters, digits, dots or hyphens")]
    BadLogin,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file that is not an account.
    #[error("{0} is not a staff account file")]
    Corrupt(PathBuf),
    /// Sealing or opening failed.
    #[error("could not seal the key: {0}")]
    Crypto(String),
    /// The library refused the delegation or revocation.
    #[error(transparent)]
    Library(#[from] LibraryError),
}

type Result<T, E = StaffError> = std::result::Result<T, E>;

/// A secret key sealed under a password or set-up code (or a backup's
/// passphrase).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sealed {
    /// argon2id salt, hex.
    salt: String,
    /// argon2id memory in KiB, iterations, lanes.
    m_kib: u32,
    t: u32,
    p: u32,
    /// XChaCha20 nonce, hex.
    nonce: String,
    /// The sealed 32-byte seed with its tag, hex.
    sealed: String,
}

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountState {
    /// Waiting for its first sign-in with the set-up code.
    SetUp,
    /// Signed in with a password.
    Active,
    /// Removed: the key was revoked and forgotten.
    Removed,
}

/// One person's account, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// What they sign in with.
    pub login: String,
    /// Their name, as the network sees it ("Dr A Patel").
    pub name: String,
    /// Their role.
    pub role: MemberRole,
    /// Their job, which requests to read name ("all nurses").
    #[serde(default)]
    pub job: Option<Job>,
    /// Their public key.
    pub key: PublicKey,
    /// The delegation certificate.
    pub delegation: EnvelopeId,
    /// The revocation, once removed.
    pub revocation: Option<EnvelopeId>,
    /// Where the account is.
    pub state: AccountState,
    /// When it was made (ms since the epoch).
    pub created_ms: u64,
    /// The sealed key (none once removed).
    sealed: Option<Sealed>,
}

/// A person's account as listed (no secrets).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountView {
    /// Login.
    pub login: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: MemberRole,
    /// Job.
    #[serde(default)]
    pub job: Option<Job>,
    /// Public key.
    pub key: PublicKey,
    /// State.
    pub state: AccountState,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView {
            login: a.login.clone(),
            name: a.name.clone(),
            role: a.role,
            job: a.job,
            key: a.key,
            state: a.state,
        }
    }
}

/// A new account and the set-up code to hand to its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAccount {
    /// The account.
    pub account: AccountView,
    /// The one-time code for the first sign-in.
    pub setup_code: String,
}

fn params() -> Params {
    // OWASP's argon2id floor: 19 MiB, 2 passes, 1 lane.
    Params::new(19 * 1024, 2, 1, Some(32)).expect("argon2 parameters are valid")
}

fn stretch(secret: &str, salt: &[u8], m_kib: u32, t: u32, p: u32) -> Result<[u8; 32]> {
    let params =
        Params::new(m_kib, t, p, Some(32)).map_err(|e| StaffError::Crypto(e.to_string()))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(secret.as_bytes(), salt, &mut out)
        .map_err(|e| StaffError::Crypto(e.to_string()))?;
    Ok(out)
}

pub(crate) fn seal(key: &SecretKey, secret: &str) -> Result<Sealed> {
    let salt: [u8; 16] = random_bytes().map_err(|e| StaffError::Crypto(e.to_string()))?;
    let nonce: [u8; 24] = random_bytes().map_err(|e| StaffError::Crypto(e.to_string()))?;
    let p = params();
    let k = stretch(secret, &salt, p.m_cost(), p.t_cost(), p.p_cost())?;
    let cipher = XChaCha20Poly1305::new((&k).into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), key.to_seed().as_slice())
        .map_err(|e| StaffError::Crypto(e.to_string()))?;
    Ok(Sealed {
        salt: hex::encode(salt),
        m_kib: p.m_cost(),
        t: p.t_cost(),
        p: p.p_cost(),
        nonce: hex::encode(nonce),
        sealed: hex::encode(sealed),
    })
}

pub(crate) fn unseal(s: &Sealed, secret: &str) -> Result<SecretKey> {
    let salt = hex::decode(&s.salt).map_err(|_| StaffError::WrongSecret)?;
    let nonce = hex::decode(&s.nonce).map_err(|_| StaffError::WrongSecret)?;
    let sealed = hex::decode(&s.sealed).map_err(|_| StaffError::WrongSecret)?;
    if nonce.len() != 24 || s.m_kib > 1 << 20 || s.t > 16 || s.p > 8 {
        return Err(StaffError::WrongSecret);
    }
    let k = stretch(secret, &salt, s.m_kib, s.t, s.p)?;
    let cipher = XChaCha20Poly1305::new((&k).into());
    let seed = cipher
        .decrypt(XNonce::from_slice(&nonce), sealed.as_slice())
        .map_err(|_| StaffError::WrongSecret)?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| StaffError::WrongSecret)?;
    Ok(SecretKey::from_seed(seed))
}

fn setup_code() -> Result<String> {
    let bytes: [u8; SETUP_CODE_CHARS] =
        random_bytes().map_err(|e| StaffError::Crypto(e.to_string()))?;
    // 31 symbols: a byte modulo 31 is near enough uniform for a one-time
    // code stretched by argon2id and tried under a sign-in rate limit.
    let code: String = bytes
        .iter()
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect();
    Ok(format!(
        "{}-{}-{}-{}",
        &code[..4],
        &code[4..8],
        &code[8..12],
        &code[12..]
    ))
}

fn check_login(login: &str) -> Result<()> {
    let ok = (2..=40).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !login.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(StaffError::BadLogin)
    }
}

/// A login made from a name: "Dr A Patel" → "dr-a-patel".
pub fn login_from_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    out.chars().take(40).collect()
}

/// What one person has read and watches, kept on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxState {
    /// Everything in the inbox up to this time (ms) has been seen.
    pub read_up_to_ms: u64,
    /// What they watch, and since when.
    pub watching: crate::query::inbox::Watching,
}

/// The accounts of one node.
pub struct Staff {
    dir: PathBuf,
}

impl Staff {
    /// The accounts kept in `home`.
    pub fn of(home: &Home) -> Self {
        Staff {
            dir: home.root().join("staff"),
        }
    }

    fn path(&self, login: &str) -> PathBuf {
        self.dir.join(format!("{login}.json"))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StaffError + '_ {
        move |source| StaffError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn write(&self, a: &Account) -> Result<()> {
        Self::write_json(&self.dir, &a.login, a)
    }

    /// Writes `value` whole to `dir/NAME.json`, readable by the owner only:
    /// a temporary file, synced, then renamed over the old one.
    fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> Result<()> {
        fs::create_dir_all(dir).map_err(Self::io(dir))?;
        let path = dir.join(format!("{name}.json"));
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(Self::io(&tmp))?;
        let json =
            serde_json::to_vec_pretty(value).map_err(|e| StaffError::Crypto(e.to_string()))?;
        f.write_all(&json).map_err(Self::io(&tmp))?;
        f.sync_all().map_err(Self::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        Ok(())
    }

    fn inbox_dir(&self) -> PathBuf {
        self.dir.join("inbox")
    }

    /// What `login` has read and watches. Kept on this node only; a file
    /// that is missing or cannot be read is a fresh start (logged), never
    /// an error: it holds no one's work.
    pub fn inbox(&self, login: &str) -> InboxState {
        if check_login(login).is_err() {
            return InboxState::default();
        }
        let path = self.inbox_dir().join(format!("{login}.json"));
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "an inbox file could not be read; starting it afresh");
                InboxState::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => InboxState::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "an inbox file could not be read; starting it afresh");
                InboxState::default()
            }
        }
    }

    /// Keeps what `login` has read and watches.
    pub fn save_inbox(&self, login: &str, state: &InboxState) -> Result<()> {
        check_login(login)?;
        Self::write_json(&self.inbox_dir(), login, state)
    }

    /// The account `login`.
    pub fn get(&self, login: &str) -> Result<Account> {
        check_login(login).map_err(|_| StaffError::Unknown(login.to_string()))?;
        let path = self.path(login);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StaffError::Unknown(login.to_string()));
            }
            Err(e) => return Err(Self::io(&path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|_| StaffError::Corrupt(path))
    }

    /// Every account, by login.
    pub fn list(&self) -> Result<Vec<Account>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(Self::io(&self.dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(login) = name.strip_suffix(".json")
                && !name.starts_with('.')
            {
                out.push(self.get(login)?);
            }
        }
        out.sort_by(|a, b| a.login.cmp(&b.login));
        Ok(out)
    }

    /// Adds a person: a new key, delegated by this node's lead key with
    /// `role` (clinician), sealed under a one-time set-up code returned to
    /// hand over.
    pub fn add(
        &self,
        lib: &mut Library,
        name: &str,
        login: Option<&str>,
        role: MemberRole,
    ) -> Result<NewAccount> {
        if role != MemberRole::Clinician {
            return Err(StaffError::Library(LibraryError::Invalid(
                gatehouse_protocol::item::FieldError {
                    field: "role",
                    reason: "a clinician's account is made here; a site lead's needs the establishment key (`gatehouse staff add --role person`)".into(),
                },
            )));
        }
        let lead = lib.signing_key()?;
        self.add_delegated(lib, name, login, role, &lead)
    }

    /// Adds a site lead who signs in to the web page: a new person key
    /// (one that publishes: adopting another site's item from its page),
    /// delegated by `establishment_key`, as only an establishment key may
    /// delegate a person.
    pub fn add_lead(
        &self,
        lib: &mut Library,
        name: &str,
        login: Option<&str>,
        establishment_key: &SecretKey,
    ) -> Result<NewAccount> {
        self.add_delegated(lib, name, login, MemberRole::Person, establishment_key)
    }

    fn add_delegated(
        &self,
        lib: &mut Library,
        name: &str,
        login: Option<&str>,
        role: MemberRole,
        delegator: &SecretKey,
    ) -> Result<NewAccount> {
        let login = login.map_or_else(|| login_from_name(name), str::to_string);
        check_login(&login)?;
        if self.path(&login).exists() {
            return Err(StaffError::Exists(login));
        }
        let key = crate::home::generate_key().map_err(|e| StaffError::Crypto(e.to_string()))?;
        let code = setup_code()?;
        let sealed = seal(&key, &code)?;
        let est = lib.config().establishment;
        let issued = lib.delegate(delegator, est, key.public(), name, role)?;
        let account = Account {
            login,
            name: name.trim().to_string(),
            role,
            job: None,
            key: key.public(),
            delegation: issued.id,
            revocation: None,
            state: AccountState::SetUp,
            created_ms: lib.now(),
            sealed: Some(sealed),
        };
        self.write(&account)?;
        Ok(NewAccount {
            account: (&account).into(),
            setup_code: code,
        })
    }

    /// Sets or clears `login`'s job.
    pub fn set_job(&self, login: &str, job: Option<Job>) -> Result<AccountView> {
        let mut a = self.get(login)?;
        a.job = job;
        self.write(&a)?;
        Ok((&a).into())
    }

    /// Opens `login`'s key with their password.
    pub fn sign_in(&self, login: &str, password: &str) -> Result<(Account, SecretKey)> {
        let a = self.get(login)?;
        match a.state {
            AccountState::Removed => return Err(StaffError::Removed),
            AccountState::SetUp => return Err(StaffError::NotSetUp),
            AccountState::Active => {}
        }
        let key = unseal(a.sealed.as_ref().ok_or(StaffError::Removed)?, password)?;
        Ok((a, key))
    }

    /// First sign-in: opens the key with the set-up code and seals it
    /// under the chosen password instead.
    pub fn set_up(&self, login: &str, code: &str, password: &str) -> Result<(Account, SecretKey)> {
        check_password(password)?;
        let mut a = self.get(login)?;
        if a.state != AccountState::SetUp {
            return Err(StaffError::WrongSecret);
        }
        let key = unseal(a.sealed.as_ref().ok_or(StaffError::Removed)?, code.trim())?;
        a.sealed = Some(seal(&key, password)?);
        a.state = AccountState::Active;
        self.write(&a)?;
        Ok((a, key))
    }

    /// Changes a password (the old one must open the key).
    pub fn change_password(&self, login: &str, old: &str, new: &str) -> Result<()> {
        check_password(new)?;
        let (mut a, key) = self.sign_in(login, old)?;
        a.sealed = Some(seal(&key, new)?);
        self.write(&a)
    }

    /// Removes a person: their key is revoked network-wide, keeping what
    /// it signed, and the sealed key is forgotten.
    pub fn remove(&self, lib: &mut Library, login: &str, reason: &str) -> Result<AccountView> {
        let mut a = self.get(login)?;
        if a.state == AccountState::Removed {
            return Err(StaffError::Removed);
        }
        let lead = lib.signing_key()?;
        let issued = lib.revoke_key(&lead, a.key, History::Keep, reason)?;
        a.revocation = Some(issued.id);
        a.state = AccountState::Removed;
        a.sealed = None;
        self.write(&a)?;
        // What they read and watched goes with them.
        let inbox = self.inbox_dir().join(format!("{login}.json"));
        if let Err(e) = fs::remove_file(&inbox)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %inbox.display(), error = %e, "could not remove an inbox file");
        }
        Ok((&a).into())
    }
}

/// Refuses a password too short or too long.
pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(StaffError::WeakPassword)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_secret() {
        let key = SecretKey::from_seed([5; 32]);
        let sealed = seal(&key, "correct horse battery").expect("seal");
        let back = unseal(&sealed, "correct horse battery").expect("open");
        assert_eq!(back.public(), key.public());
        assert!(matches!(
            unseal(&sealed, "wrong horse battery"),
            Err(StaffError::WrongSecret)
        ));
    }

    #[test]
    fn logins_are_made_from_names() {
        assert_eq!(login_from_name("Dr A. Patel"), "dr-a-patel");
        assert_eq!(login_from_name("  Nurse O'Neill "), "nurse-o-neill");
        assert!(check_login("dr-a-patel").is_ok());
        assert!(check_login("../etc").is_err());
        assert!(check_login("A").is_err());
    }

    #[test]
    fn set_up_codes_are_four_groups_of_four() {
        let code = setup_code().expect("code");
        assert_eq!(code.len(), 19);
        assert_eq!(code.matches('-').count(), 3);
    }
}
