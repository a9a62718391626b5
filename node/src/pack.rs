//! The inspection pack: a self-contained, offline package of every item
//! an establishment has in force, for an inspector (CQC, HMIP, HIW, HIS).
//!
//! A pack is a directory:
//!
//! - `index.html`: the establishment, its rules, and each item with its
//!   stage, approval, review date and acknowledgements;
//! - `items/<id>.html`: one page per item: the front sheet, approvals,
//!   review, the version history with the envelope of each change, the
//!   acknowledgement register, where it was adopted from, its QI measures
//!   with their SPC charts, and the document itself; pages that print well;
//! - `style.css`;
//! - `envelopes.bundle`: every signed envelope the pages were built from
//!   (the network's certificates, each item's changes, the records about
//!   it, the establishment's rules, the changes of the items adopted from);
//! - `staff.json`: the staff the registers list (names, keys, jobs), which
//!   only the establishment's own node knows;
//! - `manifest.json`: the pack's network, establishment, date and the
//!   blake3 hash of every file above, and `manifest.sig`, its signature by
//!   a key in force of the establishment.
//!
//! [`verify`] needs no node and no network: it checks the manifest's
//! signature, that every file is listed and unchanged (naming any that is
//! not), every envelope's signature and the rules a node applies to what
//! it receives (by taking them into a library in memory), that the
//! manifest's signer is a key of the establishment, and that every page is
//! exactly what the envelopes and staff list give when rendered again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, ItemId, NetworkId};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::{Nation, Status};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::LibraryError;
use crate::library::{Library, NodeConfig};
use crate::projection::markdown;
use crate::projection::search::SearchIndex;
use crate::query::diff::long_date;
use crate::query::filter::Filter;
use crate::query::lifecycle::Lifecycle;
use crate::query::reading::{Register, StaffMember};
use crate::query::{ItemView, ReadView, VersionEntry};
use crate::replica::bundle;
use crate::store::MemoryStore;

/// The pack format this code writes and reads.
pub const PACK_FORMAT: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's signature's file name.
pub const SIGNATURE: &str = "manifest.sig";
/// The envelopes' file name.
pub const ENVELOPES: &str = "envelopes.bundle";
/// The staff list's file name.
pub const STAFF: &str = "staff.json";
/// What the manifest's signature covers before the manifest's bytes.
const DOMAIN: &[u8] = b"gatehouse/v1/pack\0";
/// Most files a pack may hold (a site's items, each one page).
const MAX_FILES: usize = 20_000;

/// What is wrong with a pack, or with making one.
#[derive(Debug, Error)]
pub enum PackError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
    /// The output directory holds something already.
    #[error("{0} is not empty: give a new directory for the pack")]
    NotEmpty(PathBuf),
    /// The manifest or its signature is not what the signer signed.
    #[error(
        "{file}: the manifest's signature does not verify: manifest.json or manifest.sig was changed"
    )]
    BadSignature {
        /// The file named.
        file: String,
    },
    /// The manifest cannot be read.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// A file's bytes are not those the manifest lists.
    #[error("{file} was changed since the pack was made")]
    Changed {
        /// The file.
        file: String,
    },
    /// A file the manifest lists is not there.
    #[error("{file} is missing")]
    Missing {
        /// The file.
        file: String,
    },
    /// A file the manifest does not list.
    #[error("{file} is not part of the pack")]
    Unexpected {
        /// The file.
        file: String,
    },
    /// An envelope failed its signature or the rules.
    #[error("{file}: {reason}")]
    Envelope {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The manifest's signer is not a key of the establishment.
    #[error("manifest.sig: signed by key {0}, which is not a key in force of the establishment")]
    Signer(String),
    /// A page is not what the envelopes give.
    #[error("{file} does not match the signed envelopes it claims to be built from")]
    Mismatch {
        /// The file.
        file: String,
    },
    /// The library refused something.
    #[error(transparent)]
    Library(#[from] LibraryError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PackError + '_ {
    move |e| PackError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// What the manifest says of a pack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// [`PACK_FORMAT`].
    pub format: u32,
    /// The network.
    pub network: NetworkId,
    /// The establishment.
    pub establishment: EstablishmentId,
    /// Its name.
    pub establishment_name: String,
    /// The date the pack speaks for (stages, overdue reviews and
    /// acknowledgements are as of this date).
    pub generated_on: Date,
    /// The key that signed the manifest.
    pub signer: PublicKey,
    /// Every other file, by path, with its blake3 hash (hex).
    pub files: BTreeMap<String, String>,
}

/// What making or checking a pack found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackReport {
    /// The pack's directory.
    pub dir: PathBuf,
    /// The establishment.
    pub establishment: String,
    /// The date it speaks for.
    pub generated_on: Date,
    /// Items in it.
    pub items: usize,
    /// Envelopes in it.
    pub envelopes: usize,
    /// Files in it, the manifest and its signature included.
    pub files: usize,
    /// Who signed the manifest, in words.
    pub signed_by: String,
}

/// Every envelope the pack of `establishment` is built from, as stored.
fn envelopes_for(lib: &Library, items: &[ItemView]) -> Result<Vec<Vec<u8>>, LibraryError> {
    let view = lib.read_view();
    let mut ids: Vec<EnvelopeId> = Vec::new();
    let add_item = |id: &ItemId, ids: &mut Vec<EnvelopeId>| -> Result<(), LibraryError> {
        for env in lib.replica().accepted_changes(id)? {
            ids.push(env.id());
        }
        for (env, _) in view.item_records(id)? {
            ids.push(env.id());
        }
        Ok(())
    };
    for v in items {
        add_item(&v.item.id, &mut ids)?;
        if let Some(source) = v.item.adopted_from {
            for env in lib.replica().accepted_changes(&source)? {
                ids.push(env.id());
            }
        }
    }
    if let Some(v) = items.first() {
        let mut prefix = vec![b'r'];
        prefix.extend_from_slice(v.item.owner.as_bytes());
        for (env, _) in view.records_under(&prefix)? {
            ids.push(env.id());
        }
    }
    ids.sort();
    ids.dedup();
    let mut out = lib.certificate_bytes()?;
    out.extend(lib.envelope_bytes(&ids)?);
    Ok(out)
}

/// The items of `establishment` a pack holds: those in force, by title.
fn items_of(
    view: &ReadView,
    establishment: EstablishmentId,
) -> Result<Vec<ItemView>, LibraryError> {
    // A listing leaves bodies out: each item is read whole.
    let mut items = view
        .list(&Filter {
            owners: Some(vec![establishment]),
            status: Some(Status::Published),
            ..Filter::default()
        })?
        .iter()
        .map(|v| view.get(&v.item.id, None))
        .collect::<Result<Vec<_>, _>>()?;
    items.sort_by(|a, b| {
        a.item
            .content
            .title
            .cmp(&b.item.content.title)
            .then(a.item.id.cmp(&b.item.id))
    });
    Ok(items)
}

/// Makes the pack of `establishment` in `out` (a new or empty directory),
/// as of `today`, its registers listing `staff`, its manifest signed with
/// `signer`. Written beside `out` first and renamed into place.
pub fn build(
    lib: &Library,
    establishment: EstablishmentId,
    staff: &[StaffMember],
    today: Date,
    signer: &SecretKey,
    out: &Path,
) -> Result<PackReport, PackError> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            return Err(PackError::NotEmpty(out.to_path_buf()));
        }
    }
    let view = lib.read_view();
    let items = items_of(&view, establishment)?;
    let envelopes = envelopes_for(lib, &items)?;
    let mut files = render(&view, establishment, staff, today)?;
    files.insert(
        ENVELOPES.into(),
        bundle::write(&lib.config().network, &envelopes),
    );
    let manifest = Manifest {
        format: PACK_FORMAT,
        network: lib.config().network,
        establishment,
        establishment_name: view.establishment_name(&establishment),
        generated_on: today,
        signer: signer.public(),
        files: files
            .iter()
            .map(|(k, v)| (k.clone(), blake3::hash(v).to_hex().to_string()))
            .collect(),
    };
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| PackError::Manifest(e.to_string()))?;
    let signature = signer.sign(&[DOMAIN, &manifest_bytes].concat());
    files.insert(MANIFEST.into(), manifest_bytes);
    files.insert(
        SIGNATURE.into(),
        format!("{}\n", hex::encode(signature)).into_bytes(),
    );

    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "pack".into());
    let staging = parent.join(format!(".{name}.partial"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    for (rel, bytes) in &files {
        let path = staging.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    if out.exists() {
        std::fs::remove_dir(out).map_err(io(out))?;
    }
    std::fs::rename(&staging, out).map_err(io(out))?;
    let holders = view.key_holders();
    Ok(PackReport {
        dir: out.to_path_buf(),
        establishment: manifest.establishment_name,
        generated_on: today,
        items: items.len(),
        envelopes: envelopes.len(),
        files: files.len(),
        signed_by: crate::query::key_in_words(&holders, &signer.public()),
    })
}

/// Whether `name` is a path inside a pack: relative, `/` between names,
/// each name plain (letters, digits, `.`, `-`, `_`), none `.` or `..`.
fn inside(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        })
}

/// Every file under `dir`, by path relative to it with `/` between names.
fn files_under(dir: &Path) -> Result<Vec<String>, PackError> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                todo.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .map_err(|_| PackError::Unexpected {
                        file: path.display().to_string(),
                    })?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(rel);
            }
            if out.len() > MAX_FILES {
                return Err(PackError::Manifest(format!(
                    "more than {MAX_FILES} files: not a pack"
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks the pack in `dir` with no node and no network; the first
/// problem found names its file.
pub fn verify(dir: &Path) -> Result<PackReport, PackError> {
    let read = |rel: &str| -> Result<Vec<u8>, PackError> {
        let path = dir.join(rel);
        std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PackError::Missing { file: rel.into() }
            } else {
                io(&path)(e)
            }
        })
    };
    let manifest_bytes = read(MANIFEST)?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|_| PackError::BadSignature {
            file: MANIFEST.into(),
        })?;
    let sig_text = String::from_utf8(read(SIGNATURE)?).unwrap_or_default();
    let mut sig = [0u8; 64];
    if hex::decode_to_slice(sig_text.trim(), &mut sig).is_err()
        || !manifest
            .signer
            .verify(&[DOMAIN, &manifest_bytes].concat(), &sig)
    {
        return Err(PackError::BadSignature {
            file: SIGNATURE.into(),
        });
    }
    if manifest.format != PACK_FORMAT {
        return Err(PackError::Manifest(format!(
            "pack format {}; this version reads format {PACK_FORMAT}",
            manifest.format
        )));
    }
    // Every name the manifest lists stays inside the pack.
    if let Some(bad) = manifest.files.keys().find(|f| !inside(f)) {
        return Err(PackError::Manifest(format!(
            "it lists {bad:?}, which is not a file inside the pack"
        )));
    }
    let on_disk = files_under(dir)?;
    for f in &on_disk {
        if f != MANIFEST && f != SIGNATURE && !manifest.files.contains_key(f) {
            return Err(PackError::Unexpected { file: f.clone() });
        }
    }
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (f, hash) in &manifest.files {
        let bytes = read(f)?;
        if blake3::hash(&bytes).to_hex().as_str() != hash {
            return Err(PackError::Changed { file: f.clone() });
        }
        contents.insert(f.clone(), bytes);
    }

    // Every envelope, under the rules a node applies to what it receives.
    let bundle_bytes = contents.get(ENVELOPES).ok_or(PackError::Missing {
        file: ENVELOPES.into(),
    })?;
    let mut lib = Library::with_store(
        Arc::new(MemoryStore::new()),
        NodeConfig {
            network: manifest.network,
            establishment: manifest.establishment,
            member: None,
            node: manifest.signer,
            actor_suffix: "00000000000000000000000000000000".into(),
        },
        SearchIndex::in_memory().map_err(LibraryError::from)?,
        None,
    )?;
    let report = bundle::import(&mut lib, bundle_bytes).map_err(|e| PackError::Envelope {
        file: ENVELOPES.into(),
        reason: e.to_string(),
    })?;
    if let Some(r) = report.refusals.first() {
        return Err(PackError::Envelope {
            file: ENVELOPES.into(),
            reason: format!("entry {}: {}", r.index, r.reason),
        });
    }
    if let Some(broken) = &report.broken {
        return Err(PackError::Envelope {
            file: ENVELOPES.into(),
            reason: broken.clone(),
        });
    }
    let view = lib.read_view();
    let judged = view.trust().judge_record(
        &EnvelopeId(*blake3::hash(&manifest_bytes).as_bytes()),
        &manifest.signer,
        &manifest.establishment,
        true,
    );
    if judged != Judgement::Accepted {
        return Err(PackError::Signer(manifest.signer.short()));
    }

    // Every page, rendered again from the envelopes and the staff list.
    let staff: Vec<StaffMember> = match contents.get(STAFF) {
        Some(b) => {
            serde_json::from_slice(b).map_err(|_| PackError::Mismatch { file: STAFF.into() })?
        }
        None => Vec::new(),
    };
    let again = render(&view, manifest.establishment, &staff, manifest.generated_on)?;
    for (f, bytes) in &again {
        if contents.get(f) != Some(bytes) {
            return Err(PackError::Mismatch { file: f.clone() });
        }
    }
    for f in contents.keys() {
        if f != ENVELOPES && !again.contains_key(f) {
            return Err(PackError::Mismatch { file: f.clone() });
        }
    }
    let holders = view.key_holders();
    Ok(PackReport {
        dir: dir.to_path_buf(),
        establishment: manifest.establishment_name,
        generated_on: manifest.generated_on,
        items: items_of(&view, manifest.establishment)?.len(),
        envelopes: report.read,
        files: on_disk.len(),
        signed_by: crate::query::key_in_words(&holders, &manifest.signer),
    })
}

/// The pack's pages, its style sheet and staff list, by path.
fn render(
    view: &ReadView,
    establishment: EstablishmentId,
    staff: &[StaffMember],
    today: Date,
) -> Result<BTreeMap<String, Vec<u8>>, LibraryError> {
    let items = items_of(view, establishment)?;
    let name = view.establishment_name(&establishment);
    let (rules, _) = view.site_rules(&establishment)?;
    let mut files = BTreeMap::new();
    let mut rows = Vec::new();
    for v in &items {
        let id = v.item.id;
        let history = view.history(&id)?;
        let lifecycle = view.lifecycle_from(&id, &history, today)?;
        let register = view.register(&id, staff, today)?;
        let page = item_page(view, &name, v, &history, &lifecycle, &register);
        files.insert(
            format!("items/{}.html", id.to_hex()),
            page.into_string().into_bytes(),
        );
        rows.push((v, lifecycle, register));
    }
    let index = page(
        &format!("Inspection pack: {name}"),
        "",
        html! {
            h1 { "Inspection pack: " (name) }
            p { "Every item " (name) " has in force on " (long_date(today)) ", with its approvals, version history, review status and acknowledgement register. "
                "Each page is built from the signed envelopes in " code { (ENVELOPES) } "; "
                code { "gatehouse pack verify" } " checks every signature and that every page matches them, with no network." }
            p { @if rules.two_person_approval { (name) " requires a second person to approve each version." }
                @else { (name) " lets one person approve a version, its author included." }
                " Review reminders start " (rules.reminder_months) " months before a review date." }
            table {
                caption { (items.len()) " items in force" }
                thead { tr {
                    th scope="col" { "Item" } th scope="col" { "Kind" } th scope="col" { "Version" }
                    th scope="col" { "Stage" } th scope="col" { "Approved" } th scope="col" { "Review due" }
                    th scope="col" { "Acknowledged" }
                } }
                tbody {
                    @for (v, l, r) in &rows {
                        tr {
                            td { a href={ "items/" (v.item.id.to_hex()) ".html" } { (v.item.content.title) } }
                            td { (v.item.content.kind.label()) }
                            td { (v.item.version) }
                            td { (l.stage.label()) }
                            td { @match &l.approved { Some(a) => { (a.at.get(..10).unwrap_or(&a.at)) }, None => { "No" } } }
                            td { (long_date(v.item.content.review_due)) }
                            td { @match &r.request { Some(_) => { (r.done()) " of " (r.rows.len()) }, None => { "Not asked" } } }
                        }
                    }
                }
            }
        },
    );
    files.insert("index.html".into(), index.into_string().into_bytes());
    files.insert("style.css".into(), STYLE.as_bytes().to_vec());
    let mut staff = staff.to_vec();
    staff.sort_by(|a, b| a.name.cmp(&b.name).then(a.key.cmp(&b.key)));
    files.insert(
        STAFF.into(),
        serde_json::to_vec_pretty(&staff).map_err(|e| LibraryError::Corrupt(e.to_string()))?,
    );
    Ok(files)
}

/// The print-friendly style sheet of every page.
const STYLE: &str = "body { font-family: Arial, Helvetica, sans-serif; color: #212b32; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; line-height: 1.45; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #aeb7bd; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
caption { text-align: left; font-weight: bold; padding: 0.3rem 0; }
code { font-size: 0.9em; word-break: break-all; }
.document { border-top: 2px solid #212b32; margin-top: 1.5rem; }
.not-counted { color: #8a1f11; }
@media print { a { color: inherit; text-decoration: none; } section, table { page-break-inside: avoid; } .document { page-break-before: always; } }
";

fn page(title: &str, up: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href={ (up) "style.css" };
            }
            body { main { (content) } }
        }
    }
}

fn item_page(
    view: &ReadView,
    establishment: &str,
    v: &ItemView,
    history: &[VersionEntry],
    l: &Lifecycle,
    r: &Register,
) -> Markup {
    let it = &v.item;
    let c = &it.content;
    let fs = &c.front_sheet;
    let who = |n: &crate::query::Named| {
        format!(
            "{} (key {})",
            n.name.as_deref().unwrap_or("unknown key"),
            n.key.short()
        )
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "Not given".into());
    let last_review = history
        .iter()
        .rev()
        .find(|e| e.action == "reviewed, no change");
    page(
        &c.title,
        "../",
        html! {
            p { a href="../index.html" { "Inspection pack: " (establishment) } }
            h1 { (c.title) }
            p { (c.kind.label()) ", version " (it.version) ". " strong { (l.stage.label()) } "." }
            section {
                h2 { "Front sheet" }
                table { tbody {
                    tr { th scope="row" { "Item id" } td { code { (it.id.to_hex()) } } }
                    tr { th scope="row" { "Owner" } td { (establishment) } }
                    tr { th scope="row" { "Document owner" } td { (opt(&fs.document_owner)) } }
                    tr { th scope="row" { "Ratifying committee" } td { (opt(&fs.ratifying_committee)) } }
                    tr { th scope="row" { "Approved by (as written)" } td { (opt(&c.approved_by)) } }
                    tr { th scope="row" { "Approved on (as written)" } td { (c.approved_on.map_or_else(|| "Not given".into(), long_date)) } }
                    tr { th scope="row" { "Effective from" } td { (c.effective_from.map_or_else(|| "Not given".into(), long_date)) } }
                    tr { th scope="row" { "Equality impact assessment" } td { (match (fs.equality_impact, fs.equality_impact_on) {
                        (Some(e), Some(d)) => format!("{} ({})", e.slug(), long_date(d)),
                        (Some(e), None) => e.slug().to_string(),
                        (None, _) => "Not given".into(),
                    }) } }
                    tr { th scope="row" { "Consultation" } td { (opt(&fs.consultation)) } }
                    tr { th scope="row" { "Distribution" } td { (opt(&fs.distribution)) } }
                    tr { th scope="row" { "Version notes" } td { (opt(&fs.version_notes)) } }
                    tr { th scope="row" { "Nation" } td { (Nation::set_label(&c.nations)) } }
                } }
            }
            section {
                h2 { "Approval" }
                @match &l.approved {
                    Some(a) => p { "Version " (a.version) " approved by " (who(&a.approver)) ", signed " (a.at) ". Approval record " code { (a.envelope.to_hex()) } ", approving the change " code { (a.change.to_hex()) } "." },
                    None => p { "No signed approval of version " (it.version) " counts." },
                }
                @for a in l.approvals.iter().filter(|a| !a.counts) {
                    p.not-counted { "Not counted: approval of version " (a.version) " by " (who(&a.approver)) ", " (a.at) ": " (a.reason.as_deref().unwrap_or("")) "." }
                }
            }
            section {
                h2 { "Review" }
                p { "Review due " (long_date(c.review_due)) "; reminders from " (long_date(l.reminders_from)) "."
                    @if let Some(e) = last_review { " Last reviewed with no change by " (who(&e.signer)) ", " (e.at) "." } }
            }
            @if let Some(a) = &it.adoption {
                section {
                    h2 { "Adopted from" }
                    @let source = view.get(&a.from, None).ok();
                    p { "Adopted from "
                        @match &source { Some(s) => { (s.item.content.title) " (" (s.establishment.name.as_deref().unwrap_or("unknown establishment")) ")" }, None => { "item " (a.from.to_hex()) } }
                        ", version " (a.version) ", made by the change " code { (a.envelope.to_hex()) } "." }
                }
            }
            section {
                h2 { "Acknowledgement register" }
                @match &r.request {
                    None => p { "Nobody has been asked to read it." },
                    Some(q) => {
                         p { (crate::query::capitalised(&q.jobs_in_words())) " must read version " (q.version) " by " (long_date(q.due)) ". "
                            (r.done()) " of " (r.rows.len()) " have." @if r.overdue { " Overdue." } }
                        table {
                            thead { tr { th scope="col" { "Name" } th scope="col" { "Job" } th scope="col" { "Acknowledged" } th scope="col" { "Record" } } }
                            tbody {
                                @for row in &r.rows {
                                    tr {
                                        td { (row.person.name) }
                                        td { (row.person.job.map_or("Not set", |j| j.label())) }
                                        @match &row.acknowledged {
                                            Some(a) => { td { "Version " (a.version) ", " (a.at) } td { code { (a.envelope.short()) } } }
                                            None => { td { strong { "Not yet" } } td {} }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !r.others.is_empty() {
                    p { "Also acknowledged by: "
                        @for (i, a) in r.others.iter().enumerate() { @if i > 0 { "; " } (who(&a.who)) ", version " (a.version) ", " (a.at) } }
                }
            }
            section {
                h2 { "Version history" }
                table {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "What" } th scope="col" { "Signed by" } th scope="col" { "When" } th scope="col" { "Envelope" } } }
                    tbody {
                        @for e in history {
                            tr { td { (e.version) } td { (e.action) } td { (who(&e.signer)) } td { (e.at) } td { code { (e.envelope.to_hex()) } } }
                        }
                    }
                }
            }
            @for (n, m) in it.measures.iter().enumerate() {
                section {
                    @let d = &m.definition;
                    @let points: Vec<(String, f64)> = m.points.iter().map(|p| (p.date.to_string(), p.value)).collect();
                    @let notes: Vec<(usize, String)> = m.notes.iter().filter_map(|note| m.points.iter().position(|p| p.date >= note.date).map(|i| (i, note.text.clone()))).collect();
                    @let better = match d.improvement {
                        gatehouse_protocol::item::Improvement::Higher => crate::query::spc::Better::Higher,
                        gatehouse_protocol::item::Improvement::Lower => crate::query::spc::Better::Lower,
                    };
                    @let baseline = d.baseline_until.map(|until| m.points.iter().filter(|p| p.date <= until).count());
                    h2 { "Measure: " (d.name) }
                    p { (d.definition) }
                    (crate::web::chart::spc_chart(&format!("spc-{n}"), &format!("{}: SPC chart", d.name), &d.unit, &points, &notes, better, baseline))
                }
            }
            section.document {
                h2 { "The document" }
                p { (c.summary) }
                (PreEscaped(markdown::render(&c.body, 2)))
            }
        },
    )
}
