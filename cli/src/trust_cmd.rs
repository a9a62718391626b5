//! The trust commands: `network`, `trust` (admins), `member` (site leads),
//! `key` and `bundle`.
//!
//! Each loads the secret key its role needs from the data directory's
//! `keys/` folder and says which file it needed when it is missing, so an
//! admin key or an establishment key can live offline and be copied in only
//! when a certificate must be signed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use gatehouse_node::authoring::authority::{History, Issued};
use gatehouse_node::home::{Home, generate_key};
use gatehouse_node::library::Library;
use gatehouse_node::query::arrivals::Arrivals;
use gatehouse_node::query::{EstablishmentSummary, ReadView, key_in_words};
use gatehouse_node::replica::bundle::{self, ImportReport};
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, NetworkId};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::trust::{Judgement, Revoked};
use gatehouse_protocol::vocab::{Nation, Setting};

use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;
use crate::ops::absolute;
use crate::output::print_json;
use crate::{parse_date, parse_vocab, usage};

/// `gatehouse network ...`
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum NetworkCommand {
    /// The network's id, name, admin set and admin chain
    Show,
    /// Propose a new admin set (signed with keys/admin.key); it takes effect once a threshold of the current admins sign or endorse it
    Admins {
        /// Add this admin key (repeatable)
        #[arg(long = "add", value_name = "KEY")]
        add: Vec<PublicKey>,
        /// Remove this admin key: the whole key or its first 8 or more characters (repeatable)
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
        /// Signatures needed for the next change [default: a majority of the new set]
        #[arg(long)]
        threshold: Option<u8>,
        /// The removed admins' keys were compromised: keep none of their certificates
        #[arg(long)]
        compromised: bool,
    },
    /// Endorse an admin-set change another admin proposed (signed with keys/admin.key)
    Endorse {
        /// The admin-set change's id (or its first 8 or more characters)
        id: String,
    },
}

/// `gatehouse trust ...`
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum TrustCommand {
    /// Admit an establishment, by its establishment key (signed with keys/admin.key)
    Admit {
        /// The establishment key (from `gatehouse key generate establishment` at the site)
        #[arg(long)]
        key: PublicKey,
        /// The establishment's name
        #[arg(long)]
        name: String,
        /// Its setting type
        #[arg(long, default_value = "local-remand", value_parser = parse_vocab::<Setting>)]
        setting: Setting,
        /// Its nation
        #[arg(long, default_value = "england", value_parser = parse_vocab::<Nation>)]
        nation: Nation,
        /// Add the key to this already admitted establishment instead (its name, part of it, or id)
        #[arg(long, value_name = "ESTABLISHMENT")]
        to: Option<String>,
        /// Write an invitation bundle for `gatehouse init --join FILE`
        #[arg(long, value_name = "FILE")]
        invite: Option<PathBuf>,
        /// Put the whole library in the invitation, not just the certificates
        #[arg(long)]
        with_library: bool,
    },
    /// Revoke a key, or remove an establishment (signed with keys/admin.key)
    Revoke {
        /// The key to revoke (the whole key, or its first 8 or more characters)
        #[arg(
            long,
            conflicts_with = "establishment",
            required_unless_present = "establishment"
        )]
        key: Option<String>,
        /// The establishment to remove (name, part of it, or id)
        #[arg(long)]
        establishment: Option<String>,
        /// The key was lost or compromised: nothing it signed stays valid
        #[arg(long)]
        compromised: bool,
        /// Why, for the audit trail
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Every establishment, its keys and their state
    List,
    /// One establishment (name, part of it, or id) with its keys and certificates
    Show {
        /// Establishment name or id
        establishment: String,
    },
}

/// `gatehouse member ...`
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum MemberCommand {
    /// Delegate a key to act for this establishment (signed with keys/establishment.key)
    Add {
        /// The person's or device's public key (from `gatehouse key generate member`)
        #[arg(long)]
        key: PublicKey,
        /// Who holds it, e.g. "Deputy healthcare manager"
        #[arg(long)]
        name: String,
        /// person, device or establishment (may delegate and revoke in turn)
        #[arg(long, default_value = "person", value_parser = parse_vocab::<MemberRole>)]
        role: MemberRole,
        /// Write an invitation bundle for that person's own node (`gatehouse init --join FILE`)
        #[arg(long, value_name = "FILE")]
        invite: Option<PathBuf>,
        /// Put the whole library in the invitation, not just the certificates
        #[arg(long)]
        with_library: bool,
    },
    /// Revoke a member's key (signed with keys/establishment.key)
    Remove {
        /// The key (the whole key, or its first 8 or more characters)
        key: String,
        /// The key was lost or compromised: nothing it signed stays valid
        #[arg(long)]
        compromised: bool,
        /// Why, for the audit trail
        #[arg(long, default_value = "left the service")]
        reason: String,
    },
    /// This establishment's keys
    List,
}

/// `gatehouse key ...`
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum KeyCommand {
    /// Make a key in keys/ (before `init --join`, or for a new admin) and print its public key
    Generate {
        /// establishment, member or admin
        #[arg(value_parser = ["establishment", "member", "admin"])]
        which: String,
    },
    /// The public keys in keys/
    Show,
    /// Replace this node's publishing key, or the establishment key, keeping the old key's history
    Rotate {
        /// member or establishment
        #[arg(value_parser = ["member", "establishment"])]
        which: String,
    },
}

/// `gatehouse bundle ...`
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum BundleCommand {
    /// Write envelopes (and files) to a bundle, for a site without a connection
    Export {
        /// The file to write
        file: PathBuf,
        /// Only envelopes made on or after this date (certificates are always included)
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        since: Option<Date>,
        /// Only what this site lacks, from the receipt it sent last (its
        /// name or id); carries files too
        #[arg(long = "for", value_name = "SITE")]
        for_site: Option<String>,
        /// Carry the files items carry, not only envelopes
        #[arg(long)]
        files: bool,
        /// Split into parts of at most this size (e.g. 25M for an email,
        /// 4G for a stick), each imported on its own, in order
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// Verify and store the envelopes and files in a bundle, or keep a site's receipt
    Import {
        /// The bundle (or receipt) file
        file: PathBuf,
    },
    /// Write what this node holds, for a site that sends it bundles: they
    /// import it and `bundle export --for` this site writes only what it lacks
    Receipt {
        /// The file to write
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// The key `keys/NAME.key`, or an error saying where to put it.
pub(crate) fn need_key(home: &Home, name: &str, role: &str) -> anyhow::Result<SecretKey> {
    home.read_key(name)?.with_context(|| {
        format!(
            "this needs the {role} key, {}; copy it there (it can be kept offline otherwise)",
            home.key_path(name).display()
        )
    })
}

fn history(compromised: bool) -> History {
    if compromised {
        History::Discard
    } else {
        History::Keep
    }
}

fn resolve_establishment(view: &ReadView, text: &str) -> anyhow::Result<EstablishmentId> {
    let found = view.find_establishments(text);
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(usage(format!(
            "no establishment matches {text:?}; see `gatehouse trust list`"
        ))),
        many => Err(usage(format!(
            "{text:?} matches {} establishments: {}; give more of the name, or the id",
            many.len(),
            many.iter()
                .map(|id| format!("{} ({})", view.establishment_name(id), id.short()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What the trust commands need of the library, with paths absolute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TrustOp {
    /// `network ...`
    Network(NetworkCommand),
    /// `trust ...`
    Trust(TrustCommand),
    /// `member ...`
    Member(MemberCommand),
    /// `key rotate`
    RotateKey {
        /// member or establishment
        which: String,
    },
    /// `bundle ...`
    Bundle(BundleCommand),
}

impl TrustOp {
    /// Makes every path in the op absolute, for where the caller runs.
    pub fn resolved(mut self) -> anyhow::Result<Self> {
        match &mut self {
            TrustOp::Trust(TrustCommand::Admit { invite, .. })
            | TrustOp::Member(MemberCommand::Add { invite, .. }) => {
                if let Some(path) = invite {
                    *path = absolute(path)?;
                }
            }
            TrustOp::Bundle(
                BundleCommand::Export { file, .. }
                | BundleCommand::Import { file }
                | BundleCommand::Receipt { out: file },
            ) => {
                *file = absolute(file)?;
            }
            _ => {}
        }
        Ok(self)
    }
}

/// The network as `network show` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkView {
    /// Its id.
    pub network: NetworkId,
    /// Its name.
    pub name: Option<String>,
    /// The current admins.
    pub admins: BTreeSet<PublicKey>,
    /// Signatures needed to change the admin set.
    pub threshold: u8,
    /// Genesis, then each admin-set change in force.
    pub admin_chain: Vec<EnvelopeId>,
    /// Admins removed from the set.
    pub removed_admins: Vec<PublicKey>,
}

/// What a trust command did.
#[derive(Debug, Serialize, Deserialize)]
pub enum TrustOutcome {
    /// `network show`.
    Network(NetworkView),
    /// `network admins`.
    AdminChange(Issued),
    /// `network endorse`.
    Endorsed {
        /// The change endorsed.
        id: EnvelopeId,
        /// Its state now.
        judgement: Judgement,
    },
    /// `trust admit`.
    Admitted {
        /// The name given.
        name: String,
        /// The establishment key admitted.
        key: PublicKey,
        /// The establishment.
        establishment: EstablishmentId,
        /// The certificate.
        certificate: EnvelopeId,
        /// The invitation file.
        invite: Option<PathBuf>,
        /// Envelopes in it.
        envelopes_in_invite: Option<usize>,
    },
    /// `trust revoke` and `member remove`.
    Revoked {
        /// What was revoked, in words.
        what: String,
        /// The revocation.
        issued: Issued,
    },
    /// `trust list`.
    Listed {
        /// Every establishment.
        establishments: Vec<EstablishmentSummary>,
    },
    /// `trust show`.
    Shown {
        /// The establishment.
        establishment: Box<EstablishmentSummary>,
        /// Its removal, if the admins removed it.
        removal: Option<Revoked>,
    },
    /// `member add`.
    MemberAdded {
        /// Who holds the key.
        name: String,
        /// The key.
        key: PublicKey,
        /// Its role.
        role: MemberRole,
        /// The delegation.
        certificate: EnvelopeId,
        /// The invitation file.
        invite: Option<PathBuf>,
        /// Envelopes in it.
        envelopes_in_invite: Option<usize>,
    },
    /// `member list`.
    Members {
        /// This establishment.
        establishment: Box<EstablishmentSummary>,
    },
    /// `key rotate`.
    KeyRotated {
        /// member or establishment.
        which: String,
        /// The new public key.
        key: PublicKey,
        /// Where the old secret key was moved.
        retired: PathBuf,
    },
    /// `bundle export`.
    Exported(bundle::ExportReport),
    /// `bundle receipt`.
    ReceiptWritten {
        /// The file.
        file: PathBuf,
        /// Envelopes it lists.
        envelopes: usize,
        /// Bytes written.
        bytes: usize,
    },
    /// `bundle import` of a receipt.
    ReceiptKept {
        /// The site it is from.
        site: String,
        /// When it was made.
        created_ms: u64,
        /// Envelopes it lists.
        envelopes: usize,
    },
    /// `bundle import`.
    Imported {
        /// The file.
        file: PathBuf,
        /// What happened to each envelope.
        report: ImportReport,
    },
}

/// Revokes the key `text` names (whole or by prefix), signed by `signer`;
/// returns it as people know it ("key 2b021b28 (Deputy healthcare manager
/// of HMP Bravo)") with the revocation.
fn revoke_key(
    lib: &mut Library,
    signer: &SecretKey,
    text: &str,
    compromised: bool,
    reason: &str,
) -> anyhow::Result<(String, Issued)> {
    let view = lib.read_view();
    let key = view.resolve_key(text)?;
    let what = format!("key {}", key_in_words(&view.key_holders(), &key));
    drop(view);
    let issued = lib.revoke_key(signer, key, history(compromised), reason)?;
    Ok((what, issued))
}

/// The one certificate whose id is `text` or starts with it (8 or more
/// hex characters).
fn certificate_by_prefix(lib: &Library, text: &str) -> anyhow::Result<EnvelopeId> {
    let text = text.trim().to_ascii_lowercase();
    if let Ok(id) = text.parse::<EnvelopeId>() {
        return Ok(id);
    }
    if text.len() < 8 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a change id: give the whole id or its first 8 or more characters");
    }
    let found: Vec<EnvelopeId> = lib
        .certificate_ids()?
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&text))
        .collect();
    match found.as_slice() {
        [id] => Ok(*id),
        [] => bail!("no change of trust here has an id starting {text}"),
        many => bail!(
            "{} changes of trust have ids starting {text}: {}",
            many.len(),
            many.iter()
                .map(|id| id.to_hex()[..12].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What an import brought: items by title, trust changes in words, posts.
fn write_arrivals(out: &mut dyn Write, a: &Arrivals) -> anyhow::Result<()> {
    for line in a.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// One line per key of an establishment: key, role, holder, revoked mark.
fn write_keys(
    out: &mut dyn Write,
    prefix: &str,
    e: &EstablishmentSummary,
    short: bool,
) -> anyhow::Result<()> {
    for k in e.keys.iter().chain(&e.members) {
        let key = if short { k.key.short() } else { k.key.to_hex() };
        writeln!(
            out,
            "{prefix}{key} {:<13} {}{}",
            k.role,
            k.name.as_deref().unwrap_or(""),
            if k.revoked { " [revoked]" } else { "" }
        )?;
        if !short && k.role == "establishment" && !k.revoked {
            let pad = " ".repeat(prefix.len());
            writeln!(out, "{pad}  reads aloud as: {}", k.key.words())?;
        }
    }
    Ok(())
}

fn write_bundle(lib: &Library, file: &Path, with_library: bool) -> anyhow::Result<usize> {
    let envelopes = if with_library {
        bundle::select(lib, None)?
    } else {
        let certs = lib.certificate_ids()?;
        lib.export()?
            .into_iter()
            .filter(|b| certs.contains(&EnvelopeId::of(b)))
            .collect()
    };
    write_file(file, &bundle::write(&lib.config().network, &envelopes))?;
    Ok(envelopes.len())
}

/// Writes a file whole or not at all: to a temporary name, synced, renamed.
fn write_file(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = file.with_extension("partial");
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

/// Runs a trust op on the library `ctx` reaches.
pub fn operate(ctx: &mut Ctx<'_>, op: TrustOp) -> anyhow::Result<TrustOutcome> {
    let home = &ctx.home.clone();
    match op {
        TrustOp::Network(NetworkCommand::Show) => return network_view(&ctx.view()?),
        TrustOp::Trust(cmd @ (TrustCommand::List | TrustCommand::Show { .. })) => {
            return trust_view(&ctx.view()?, cmd);
        }
        TrustOp::Member(MemberCommand::List) => return members_view(&ctx.view()?),
        _ => {}
    }
    let lib = ctx.lib()?;
    Ok(match op {
        TrustOp::Network(cmd) => network(home, lib, cmd)?,
        TrustOp::Trust(cmd) => trust(home, lib, cmd)?,
        TrustOp::Member(cmd) => member(home, lib, cmd)?,
        TrustOp::RotateKey { which } => rotate(home, lib, which)?,
        TrustOp::Bundle(cmd) => bundle(home, lib, cmd)?,
    })
}

fn network(home: &Home, lib: &mut Library, cmd: NetworkCommand) -> anyhow::Result<TrustOutcome> {
    Ok(match cmd {
        NetworkCommand::Show => return network_view(&lib.read_view()),
        NetworkCommand::Admins {
            add,
            remove,
            threshold,
            compromised,
        } => {
            let admin = need_key(home, "admin", "network admin")?;
            let view = lib.read_view();
            let remove = remove
                .iter()
                .map(|k| view.resolve_key(k))
                .collect::<Result<Vec<_>, _>>()?;
            drop(view);
            let mut admins: Vec<PublicKey> = lib
                .trust()
                .admins
                .iter()
                .filter(|a| !remove.contains(a))
                .copied()
                .collect();
            for a in add {
                if !admins.contains(&a) {
                    admins.push(a);
                }
            }
            let threshold = match threshold {
                Some(t) => t,
                None => u8::try_from(admins.len() / 2 + 1).unwrap_or(u8::MAX),
            };
            TrustOutcome::AdminChange(lib.change_admins(
                &admin,
                admins,
                threshold,
                history(compromised),
            )?)
        }
        NetworkCommand::Endorse { id } => {
            let admin = need_key(home, "admin", "network admin")?;
            let id = certificate_by_prefix(lib, &id)?;
            let judgement = lib.endorse(&admin, id)?;
            TrustOutcome::Endorsed { id, judgement }
        }
    })
}

fn trust(home: &Home, lib: &mut Library, cmd: TrustCommand) -> anyhow::Result<TrustOutcome> {
    Ok(match cmd {
        TrustCommand::Admit {
            key,
            name,
            setting,
            nation,
            to,
            invite,
            with_library,
        } => {
            let admin = need_key(home, "admin", "network admin")?;
            let to = match to {
                Some(text) => Some(resolve_establishment(&lib.read_view(), &text)?),
                None => None,
            };
            let (establishment, issued) = lib.admit(&admin, key, &name, setting, nation, to)?;
            let envelopes_in_invite = match &invite {
                Some(file) => Some(write_bundle(lib, file, with_library)?),
                None => None,
            };
            TrustOutcome::Admitted {
                name,
                key,
                establishment,
                certificate: issued.id,
                invite,
                envelopes_in_invite,
            }
        }
        TrustCommand::Revoke {
            key,
            establishment,
            compromised,
            reason,
        } => {
            let admin = need_key(home, "admin", "network admin")?;
            let (what, issued) = match (key, establishment) {
                (Some(key), _) => revoke_key(lib, &admin, &key, compromised, &reason)?,
                (None, Some(text)) => {
                    let view = lib.read_view();
                    let id = resolve_establishment(&view, &text)?;
                    let what = format!("{}, with every key it holds", view.establishment_name(&id));
                    drop(view);
                    (
                        what,
                        lib.remove_establishment(&admin, id, history(compromised), &reason)?,
                    )
                }
                (None, None) => return Err(usage("give --key or --establishment")),
            };
            TrustOutcome::Revoked { what, issued }
        }
        cmd @ (TrustCommand::List | TrustCommand::Show { .. }) => {
            return trust_view(&lib.read_view(), cmd);
        }
    })
}

/// `network show`.
fn network_view(view: &ReadView) -> anyhow::Result<TrustOutcome> {
    let t = view.trust();
    Ok(TrustOutcome::Network(NetworkView {
        network: view.network(),
        name: t.network_name.clone(),
        admins: t.admins.clone(),
        threshold: t.threshold,
        admin_chain: t.admin_chain.clone(),
        removed_admins: t.removed_admins.keys().copied().collect(),
    }))
}

/// `trust list` and `trust show`.
fn trust_view(view: &ReadView, cmd: TrustCommand) -> anyhow::Result<TrustOutcome> {
    Ok(match cmd {
        TrustCommand::Show { establishment } => {
            let id = resolve_establishment(view, &establishment)?;
            let establishment = view
                .establishments()?
                .into_iter()
                .find(|e| e.id == id)
                .context("establishment vanished")?;
            TrustOutcome::Shown {
                establishment: Box::new(establishment),
                removal: view.trust().removed.get(&id).cloned(),
            }
        }
        _ => TrustOutcome::Listed {
            establishments: view.establishments()?,
        },
    })
}

/// `member list`.
fn members_view(view: &ReadView) -> anyhow::Result<TrustOutcome> {
    let est = view.establishment();
    let Some(e) = view.establishments()?.into_iter().find(|e| e.id == est) else {
        bail!("this node's establishment is not admitted");
    };
    Ok(TrustOutcome::Members {
        establishment: Box::new(e),
    })
}

fn member(home: &Home, lib: &mut Library, cmd: MemberCommand) -> anyhow::Result<TrustOutcome> {
    let est = lib.config().establishment;
    Ok(match cmd {
        MemberCommand::Add {
            key,
            name,
            role,
            invite,
            with_library,
        } => {
            let signer = need_key(home, "establishment", "establishment")?;
            let issued = lib.delegate(&signer, est, key, &name, role)?;
            let envelopes_in_invite = match &invite {
                Some(file) => Some(write_bundle(lib, file, with_library)?),
                None => None,
            };
            TrustOutcome::MemberAdded {
                name,
                key,
                role,
                certificate: issued.id,
                invite,
                envelopes_in_invite,
            }
        }
        MemberCommand::Remove {
            key,
            compromised,
            reason,
        } => {
            let signer = need_key(home, "establishment", "establishment")?;
            let (what, issued) = revoke_key(lib, &signer, &key, compromised, &reason)?;
            TrustOutcome::Revoked { what, issued }
        }
        MemberCommand::List => return members_view(&lib.read_view()),
    })
}

/// `key generate` and `key show`, which need no library.
pub fn key(home: &Home, out: &mut dyn Write, json: bool, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Generate { which } => {
            home.create()?;
            if home.read_key(&which)?.is_some() {
                bail!(
                    "{} already exists; a key is never overwritten",
                    home.key_path(&which).display()
                );
            }
            let key = generate_key()?;
            let path = home.write_key(&which, &key)?;
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "key": key.public(), "words": key.public().words(), "file": path }),
                );
            }
            writeln!(out, "{}", key.public())?;
            // The key alone on stdout, for scripts; the words for people.
            eprintln!("read aloud to check it: {}", key.public().words());
            Ok(())
        }
        KeyCommand::Show => {
            let mut keys = serde_json::Map::new();
            for name in ["admin", "establishment", "member", "node"] {
                if let Some(k) = home.read_key(name)? {
                    keys.insert(name.to_string(), serde_json::json!(k.public()));
                }
            }
            if json {
                return print_json(out, &keys);
            }
            for (name, k) in &keys {
                writeln!(out, "{name:<14} {}", k.as_str().unwrap_or_default())?;
            }
            Ok(())
        }
        KeyCommand::Rotate { .. } => Err(usage("`key rotate` needs the library")),
    }
}

fn rotate(home: &Home, lib: &mut Library, which: String) -> anyhow::Result<TrustOutcome> {
    let est_key = need_key(home, "establishment", "establishment")?;
    let old_short = home
        .read_key(&which)?
        .map_or_else(|| "unknown".to_string(), |k| k.public().short());
    let fresh = generate_key()?;
    // The new key is on disk before any certificate names it, so a
    // crash never leaves a delegated key nobody holds.
    home.write_key(&format!("{which}.next"), &fresh)?;
    let key = if which == "member" {
        lib.rotate_member(&est_key, SecretKey::from_seed(fresh.to_seed()))?
    } else {
        lib.rotate_establishment(&est_key, &fresh)?
    };
    let old = home.key_path(&which);
    let retired = home
        .keys_dir()
        .join(format!("{which}.retired-{old_short}.key"));
    std::fs::rename(&old, &retired).with_context(|| format!("moving {} aside", old.display()))?;
    std::fs::rename(home.key_path(&format!("{which}.next")), &old)
        .with_context(|| format!("installing the new {}", old.display()))?;
    Ok(TrustOutcome::KeyRotated {
        which,
        key,
        retired,
    })
}

/// Whether a file is a receipt rather than a bundle.
fn is_receipt(file: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == gatehouse_node::replica::receipt::RECEIPT_MAGIC
}

/// A progress bar on the terminal (hidden when stderr is not one, as
/// under the node's service).
fn bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A size such as 25M, 4G, 512K or a number of bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write 25M, 4G, 512K"))?;
    let scale: u64 = match t[digits.len()..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?}; write 25M, 4G, 512K"
            ));
        }
    };
    let bytes = n.saturating_mul(scale);
    if bytes < bundle::MIN_PART_BYTES {
        return Err(format!(
            "{s:?} is too small: a part holds at least {} MiB",
            bundle::MIN_PART_BYTES >> 20
        ));
    }
    Ok(bytes)
}

fn bundle(home: &Home, lib: &mut Library, cmd: BundleCommand) -> anyhow::Result<TrustOutcome> {
    Ok(match cmd {
        BundleCommand::Export {
            file,
            since,
            for_site,
            files,
            max_size,
        } => {
            let since_ms = since.map(|d| {
                d.to_zoned(gatehouse_protocol::jiff::tz::TimeZone::UTC)
                    .map(|z| z.timestamp().as_millisecond().max(0) as u64)
                    .unwrap_or(0)
            });
            let for_site = match &for_site {
                Some(text) => Some(resolve_establishment(&lib.read_view(), text)?),
                None => None,
            };
            let opts = bundle::ExportOptions {
                since_ms,
                files: files || for_site.is_some(),
                for_site,
                max_part_bytes: max_size,
            };
            let progress = bar("Writing");
            let report = bundle::export_to(lib, &file, &opts, &mut |done, total| {
                progress.set_length(total);
                progress.set_position(done);
            })
            .map_err(|e| anyhow::Error::new(e).context(format!("{}", file.display())))?;
            progress.finish_and_clear();
            TrustOutcome::Exported(report)
        }
        BundleCommand::Receipt { out } => {
            let key = need_key(home, "node", "node")?;
            let bytes = lib.receipt(&key)?;
            write_file(&out, &bytes)?;
            let envelopes = lib.status()?.envelopes;
            TrustOutcome::ReceiptWritten {
                file: out,
                envelopes,
                bytes: bytes.len(),
            }
        }
        BundleCommand::Import { file } if is_receipt(&file) => {
            let bytes = bundle::read_file(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let receipt = lib
                .take_receipt(&bytes)
                .with_context(|| format!("{}", file.display()))?;
            TrustOutcome::ReceiptKept {
                site: lib.read_view().establishment_name(&receipt.establishment),
                created_ms: receipt.created_ms,
                envelopes: receipt.envelopes.len(),
            }
        }
        BundleCommand::Import { file } => {
            let progress = bar("Reading");
            let report = bundle::import_file_with(lib, &file, &mut |done, total| {
                progress.set_length(total);
                progress.set_position(done);
            });
            progress.finish_and_clear();
            let report = report.map_err(|e| match e {
                bundle::BundleError::Io(e) => {
                    anyhow::Error::new(e).context(format!("cannot read {}", file.display()))
                }
                e => anyhow::Error::new(e).context(format!("{}", file.display())),
            })?;
            TrustOutcome::Imported { file, report }
        }
    })
}

/// Writes what a trust command did to `out`.
pub fn render(outcome: &TrustOutcome, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
    match outcome {
        TrustOutcome::Network(t) => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({
                        "network": t.network,
                        "name": t.name,
                        "admins": t.admins,
                        "threshold": t.threshold,
                        "admin_chain": t.admin_chain,
                        "removed_admins": t.removed_admins,
                    }),
                );
            }
            writeln!(
                out,
                "network    {} ({})",
                t.name.as_deref().unwrap_or("?"),
                t.network
            )?;
            writeln!(
                out,
                "admins     {} of {} must sign a change of the admin set",
                t.threshold,
                t.admins.len()
            )?;
            for a in &t.admins {
                writeln!(out, "  {a}")?;
            }
            writeln!(out, "admin chain ({} links)", t.admin_chain.len())?;
            for link in &t.admin_chain {
                writeln!(out, "  {link}")?;
            }
        }
        TrustOutcome::AdminChange(issued) => {
            if json {
                return print_json(out, issued);
            }
            writeln!(out, "admin-set change {}: {}", issued.id, issued.judgement)?;
            if issued.judgement != Judgement::Accepted {
                writeln!(
                    out,
                    "Other admins endorse it with `gatehouse network endorse {}` once it reaches them.",
                    issued.id
                )?;
            }
        }
        TrustOutcome::Endorsed { id, judgement } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "id": id, "judgement": judgement }),
                );
            }
            writeln!(out, "endorsed {id}; the change is now {judgement}")?;
        }
        TrustOutcome::Admitted {
            name,
            key,
            establishment,
            certificate,
            invite,
            envelopes_in_invite,
        } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "establishment": establishment, "key": key, "words": key.words(), "certificate": certificate, "invite": invite, "envelopes_in_invite": envelopes_in_invite }),
                );
            }
            writeln!(
                out,
                "admitted {name} as establishment {establishment}, with the key {}",
                key.short()
            )?;
            writeln!(
                out,
                "its key reads aloud as: {} (the site's `key generate` showed the same words)",
                key.words()
            )?;
            if let (Some(file), Some(n)) = (invite, envelopes_in_invite) {
                writeln!(
                    out,
                    "invitation with {n} envelopes written to {}; the site runs `gatehouse init --join {}`",
                    file.display(),
                    file.display()
                )?;
            }
        }
        TrustOutcome::Revoked { what, issued } => {
            if json {
                return print_json(out, issued);
            }
            writeln!(
                out,
                "Revoked {what}: nothing signed with it from now on is accepted anywhere."
            )?;
            match issued.kept {
                0 => writeln!(out, "No change it signed before stays valid.")?,
                1 => writeln!(out, "The 1 change it signed before stays valid.")?,
                n => writeln!(out, "The {n} changes it signed before stay valid.")?,
            }
            writeln!(out, "(revocation {})", issued.id.short())?;
        }
        TrustOutcome::Listed { establishments } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "establishments": establishments }),
                );
            }
            for e in establishments {
                writeln!(
                    out,
                    "{} {}{} ({}, {})",
                    e.id.short(),
                    e.name,
                    if e.removed { " [removed]" } else { "" },
                    e.setting.label(),
                    e.nation.label()
                )?;
                write_keys(out, "    ", e, true)?;
            }
        }
        TrustOutcome::Shown {
            establishment: e,
            removal,
        } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "establishment": e, "removal": removal }),
                );
            }
            writeln!(out, "{} ({})", e.name, e.id)?;
            writeln!(out, "setting   {}", e.setting.label())?;
            writeln!(out, "nation    {}", e.nation.label())?;
            writeln!(out, "items     {}", e.items)?;
            if let Some(r) = removal {
                writeln!(out, "REMOVED   {}", r.reasons.join("; "))?;
            }
            write_keys(out, "key       ", e, false)?;
        }
        TrustOutcome::MemberAdded {
            name,
            key,
            role,
            certificate,
            invite,
            envelopes_in_invite,
        } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "certificate": certificate, "key": key, "invite": invite, "envelopes_in_invite": envelopes_in_invite }),
                );
            }
            writeln!(
                out,
                "{name} ({}) may now act as {}",
                key.short(),
                role.slug()
            )?;
            if let (Some(file), Some(n)) = (invite, envelopes_in_invite) {
                writeln!(
                    out,
                    "invitation with {n} envelopes written to {}",
                    file.display()
                )?;
            }
        }
        TrustOutcome::Members { establishment: e } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "establishment": e.id, "keys": e.keys, "members": e.members }),
                );
            }
            write_keys(out, "", e, false)?;
        }
        TrustOutcome::KeyRotated {
            which,
            key,
            retired,
        } => {
            if json {
                return print_json(out, &serde_json::json!({ "key": key, "retired": retired }));
            }
            writeln!(
                out,
                "new {which} key {key}; the old one is revoked (its history kept) and kept as {}",
                retired.display()
            )?;
        }
        TrustOutcome::Exported(r) => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({
                        "file": r.parts.first(),
                        "parts": r.parts,
                        "envelopes": r.envelopes,
                        "files": r.files,
                        "bytes": r.bytes,
                        "receipt_ms": r.receipt_ms,
                    }),
                );
            }
            let files = if r.files > 0 {
                format!(" and {} files", r.files)
            } else {
                String::new()
            };
            match r.parts.as_slice() {
                [one] => writeln!(
                    out,
                    "{} envelopes{files} ({} bytes) written to {}",
                    r.envelopes,
                    r.bytes,
                    one.display()
                )?,
                parts => {
                    writeln!(
                        out,
                        "{} envelopes{files} ({} bytes) written in {} parts; import them in this order:",
                        r.envelopes,
                        r.bytes,
                        parts.len()
                    )?;
                    for p in parts {
                        writeln!(out, "  {}", p.display())?;
                    }
                }
            }
            if let Some(ms) = r.receipt_ms {
                writeln!(
                    out,
                    "only what the site lacked by its receipt of {}",
                    gatehouse_node::query::format_ms(ms)
                )?;
            }
        }
        TrustOutcome::ReceiptWritten {
            file,
            envelopes,
            bytes,
        } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "file": file, "envelopes": envelopes, "bytes": bytes }),
                );
            }
            writeln!(
                out,
                "receipt of {envelopes} envelopes ({bytes} bytes) written to {}; send it to the site that writes you bundles",
                file.display()
            )?;
        }
        TrustOutcome::ReceiptKept {
            site,
            created_ms,
            envelopes,
        } => {
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "site": site, "created_ms": created_ms, "envelopes": envelopes }),
                );
            }
            writeln!(
                out,
                "kept the receipt of {site} ({envelopes} envelopes, made {}): `gatehouse bundle export FILE --for \"{site}\"` writes what it lacks",
                gatehouse_node::query::format_ms(*created_ms)
            )?;
        }
        TrustOutcome::Imported { file, report } => {
            if json {
                print_json(out, report)?;
            } else {
                writeln!(
                    out,
                    "{}: {} read, {} new, {} already held",
                    file.display(),
                    report.read,
                    report.new,
                    report.duplicate
                )?;
                write_arrivals(out, &report.arrived)?;
                if report.files > 0 {
                    writeln!(out, "  {} files whole and checked", report.files)?;
                }
                for (reason, n) in &report.files_refused {
                    writeln!(out, "  files not kept {n}: {reason}")?;
                }
                for (reason, n) in &report.pending {
                    writeln!(out, "  pending  {n}: {reason}")?;
                }
                for (reason, n) in &report.rejected {
                    writeln!(out, "  rejected {n}: {reason}")?;
                }
                for (reason, n) in &report.held_back {
                    writeln!(
                        out,
                        "  held back {n}: {reason}; kept, and offered again by the next import"
                    )?;
                }
                if report.released > 0 {
                    writeln!(
                        out,
                        "  {} held back by an earlier import now in place",
                        report.released
                    )?;
                }
                for r in &report.refusals {
                    writeln!(
                        out,
                        "  refused  entry {} at byte {}{}: {}",
                        r.index,
                        r.offset,
                        r.id.map(|i| format!(" ({})", i.short()))
                            .unwrap_or_default(),
                        r.reason
                    )?;
                }
                if let Some(b) = &report.broken {
                    writeln!(out, "  the file is damaged: {b}")?;
                }
            }
            if let Some(b) = &report.broken {
                bail!(
                    "{}: {b}; the valid envelopes before the damage were stored",
                    file.display()
                );
            }
        }
    }
    Ok(())
}
