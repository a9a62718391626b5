//! Sample and synthetic libraries, for the demo, the tests and the
//! benchmarks.
//!
//! The sample library (`samples/library/` in the repository) is a folder per
//! fictional establishment holding `establishment.yaml` and its item files.
//! [`populate`] loads it into a node's network: the node's own
//! establishment publishes its items as usual; every other establishment is
//! admitted by the network admin, given a publishing key, and signs its own
//! items, exactly as if they had arrived from that site.
//! [`synthetic_content`] makes large libraries of plausible items for
//! benchmarks.

use std::path::{Path, PathBuf};

use gatehouse_protocol::certificate::{Admission, Certificate, Delegation, MemberRole};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EstablishmentId, ItemId};
use gatehouse_protocol::item::{ItemContent, QiDetails};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting, Status};
use serde::Deserialize;
use thiserror::Error;

use crate::authoring::draft::{self, DraftError};
use crate::authoring::new_item;
use crate::home::{generate_key, random_bytes};
use crate::library::{Library, LibraryError};

/// A problem reading the sample library.
#[derive(Debug, Error)]
pub enum SampleError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `establishment.yaml` is malformed.
    #[error("{path}: {message}")]
    Establishment {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An item file is malformed.
    #[error("{path}: {source}")]
    Draft {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: DraftError,
    },
    /// The library refused something.
    #[error(transparent)]
    Library(Box<LibraryError>),
}

impl From<LibraryError> for SampleError {
    fn from(e: LibraryError) -> Self {
        SampleError::Library(Box::new(e))
    }
}

/// One establishment of the sample library.
#[derive(Debug, Clone)]
pub struct SampleEstablishment {
    /// Folder name.
    pub slug: String,
    /// Establishment name.
    pub name: String,
    /// Setting type.
    pub setting: Setting,
    /// Nation.
    pub nation: Nation,
    /// Its items, with the files they came from.
    pub items: Vec<(PathBuf, ItemContent)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EstablishmentFile {
    name: String,
    setting: String,
    nation: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SampleError + '_ {
    move |source| SampleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The sample library folder of this repository.
pub fn default_sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("samples")
        .join("library")
}

/// Reads every establishment folder under `dir`, in name order.
pub fn read_sample_dir(dir: &Path) -> Result<Vec<SampleEstablishment>, SampleError> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("establishment.yaml").is_file())
        .collect();
    folders.sort();
    let mut out = Vec::new();
    for folder in folders {
        let est_path = folder.join("establishment.yaml");
        let text = std::fs::read_to_string(&est_path).map_err(io_err(&est_path))?;
        let bad = |message: String| SampleError::Establishment {
            path: est_path.clone(),
            message,
        };
        let f: EstablishmentFile =
            serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(io_err(&folder))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        files.sort();
        let mut items = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            let content = draft::parse(&text, &[]).map_err(|source| SampleError::Draft {
                path: path.clone(),
                source,
            })?;
            items.push((path, content));
        }
        out.push(SampleEstablishment {
            slug: folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            name: f.name,
            setting: f.setting.parse().map_err(|e| bad(format!("{e}")))?,
            nation: f.nation.parse().map_err(|e| bad(format!("{e}")))?,
            items,
        });
    }
    Ok(out)
}

/// Loads the sample establishments into `lib`'s network. The establishment
/// named like the node's own publishes through the node; the others are
/// admitted with `admin` and sign their own items. Returns each item's
/// establishment slug, file and id.
pub fn populate(
    lib: &mut Library,
    admin: &SecretKey,
    establishments: &[SampleEstablishment],
) -> Result<Vec<(String, PathBuf, ItemId)>, SampleError> {
    let own_name = lib
        .trust()
        .establishments
        .get(&lib.config().establishment)
        .map(|e| e.name.clone());
    let network = lib.config().network;
    let mut out = Vec::new();
    for est in establishments {
        if Some(&est.name) == own_name.as_ref() {
            for (path, content) in &est.items {
                let id = lib.publish(content, &[])?;
                out.push((est.slug.clone(), path.clone(), id));
            }
            continue;
        }
        let est_key = generate_key().map_err(LibraryError::from)?;
        let est_id = EstablishmentId(random_bytes().map_err(LibraryError::from)?);
        let member = generate_key().map_err(LibraryError::from)?;
        let suffix = random_bytes().map_err(LibraryError::from)?;
        let now = now_ms();
        let mut envs = vec![
            Verified::sign(
                Body::Certificate(Certificate::Admit(Admission {
                    establishment: est_id,
                    key: est_key.public(),
                    name: est.name.clone(),
                    setting: est.setting,
                    nation: est.nation,
                })),
                admin,
                &network,
                now,
            ),
            Verified::sign(
                Body::Certificate(Certificate::Delegate(Delegation {
                    establishment: est_id,
                    member: member.public(),
                    name: "Healthcare manager".into(),
                    role: MemberRole::Person,
                })),
                &est_key,
                &network,
                now,
            ),
        ];
        let mut ids = Vec::new();
        for (path, content) in &est.items {
            let env = new_item(content, &member, &suffix, est_id, &network, now)?;
            if let Body::Change(c) = env.body() {
                ids.push((est.slug.clone(), path.clone(), c.item));
            }
            envs.push(env);
        }
        lib.ingest_many(envs)?;
        out.extend(ids);
    }
    Ok(out)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const TOPICS: &[&str] = &[
    "medicines reconciliation",
    "in-possession risk assessment",
    "opioid substitution therapy",
    "alcohol withdrawal",
    "take-home naloxone",
    "continuity of care on release",
    "self-harm observation",
    "dental triage",
    "hepatitis C treatment",
    "sexual health screening",
    "diabetes review",
    "asthma and COPD review",
    "palliative care",
    "frailty assessment",
    "clozapine monitoring",
    "rapid tranquillisation",
    "infection outbreak",
    "reception health screening",
    "telemedicine clinics",
    "missed hospital appointments",
    "smoking cessation",
    "learning disability screening",
    "pregnancy and perinatal care",
    "young people's health assessment",
    "interpreter use",
    "food and fluid refusal",
    "medication hatch queues",
    "controlled drugs audit",
    "wound care",
    "falls prevention",
];

const WORDS: &[&str] = &[
    "patient",
    "nurse",
    "pharmacist",
    "prescriber",
    "officer",
    "wing",
    "cell",
    "reception",
    "assessment",
    "risk",
    "plan",
    "review",
    "record",
    "SystmOne",
    "referral",
    "consent",
    "capacity",
    "escalation",
    "handover",
    "governance",
    "audit",
    "incident",
    "training",
    "competency",
    "dose",
    "supply",
    "stock",
    "storage",
    "administration",
    "observation",
    "monitoring",
    "NEWS2",
    "ACCT",
    "escort",
    "appointment",
    "clinic",
    "triage",
    "waiting",
    "list",
    "release",
    "transfer",
    "community",
    "GP",
    "hospital",
    "discharge",
    "safeguarding",
    "family",
    "interpreter",
    "language",
    "diet",
    "fluid",
    "weight",
    "blood",
    "test",
    "result",
    "treatment",
    "withdrawal",
    "tolerance",
    "overdose",
    "naloxone",
    "methadone",
    "buprenorphine",
    "gabapentin",
    "pregabalin",
    "tradeable",
    "diversion",
    "search",
    "compliance",
    "adherence",
    "education",
    "leaflet",
    "feedback",
    "measure",
    "outcome",
    "PDSA",
    "cycle",
    "improvement",
    "team",
    "meeting",
    "weekly",
    "daily",
    "night",
    "duty",
    "manager",
    "lead",
    "deputy",
    "policy",
    "procedure",
    "guideline",
    "pathway",
    "standard",
];

/// A deterministic, plausible item for synthetic libraries: the same `n`
/// always gives the same item.
pub fn synthetic_content(n: u64) -> ItemContent {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pick = |r: u64, len: usize| (r % len as u64) as usize;
    let topic = TOPICS[pick(next(), TOPICS.len())];
    let kind = Kind::ALL[pick(next(), Kind::ALL.len())];
    let mut body = format!("# {topic}\n\n");
    let words = 120 + pick(next(), 300);
    for w in 0..words {
        body.push_str(WORDS[pick(next(), WORDS.len())]);
        body.push(if w % 17 == 16 { '\n' } else { ' ' });
    }
    let pathways = vec![
        Pathway::ALL[pick(next(), Pathway::ALL.len())],
        Pathway::ALL[pick(next(), Pathway::ALL.len())],
    ];
    let mut pathways_unique = pathways.clone();
    pathways_unique.dedup();
    let year = 2025 + i16::try_from(pick(next(), 3)).unwrap_or(0);
    let month = 1 + i8::try_from(pick(next(), 12)).unwrap_or(0);
    let day = 1 + i8::try_from(pick(next(), 28)).unwrap_or(0);
    let effective = Date::new(year, month, day).unwrap_or(Date::constant(2026, 1, 1));
    let review_due = effective
        .checked_add(gatehouse_protocol::jiff::Span::new().years(2))
        .unwrap_or(Date::constant(2028, 1, 1));
    ItemContent {
        title: format!(
            "{} {} ({n})",
            crate::query::capitalised(topic),
            kind.label().to_lowercase()
        ),
        kind,
        summary: format!("How the healthcare team handles {topic} in a secure setting."),
        body,
        pathways: pathways_unique,
        settings: vec![Setting::ALL[pick(next(), Setting::ALL.len())]],
        nations: vec![Nation::ALL[pick(next(), Nation::ALL.len())]],
        tags: topic.split(' ').map(str::to_string).collect(),
        approved_by: Some("Clinical Governance Group".into()),
        approved_on: Some(effective),
        effective_from: Some(effective),
        review_due,
        status: Status::Published,
        qi: (kind == Kind::QiInitiative).then(|| QiDetails {
            aim: format!("Improve {topic} within six months."),
            measures: vec!["Process: share of patients reviewed on time".into()],
            pdsa_cycles: vec!["PDSA 1: test on one wing for two weeks".into()],
            outcomes: "Reviews on time rose over the project.".into(),
        }),
        front_sheet: gatehouse_protocol::item::FrontSheet::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_library_parses_and_is_large_enough() {
        let ests = read_sample_dir(&default_sample_dir()).expect("sample library reads");
        let items: usize = ests.iter().map(|e| e.items.len()).sum();
        assert!(ests.len() >= 4, "{} establishments", ests.len());
        assert!(items >= 25, "{items} items");
        let kinds: std::collections::BTreeSet<_> = ests
            .iter()
            .flat_map(|e| e.items.iter().map(|(_, c)| c.kind))
            .collect();
        assert!(kinds.len() >= 5, "{kinds:?}");
    }

    #[test]
    fn synthetic_items_are_valid_and_deterministic() {
        for n in 0..200 {
            let c = synthetic_content(n);
            c.validate().expect("valid");
            assert_eq!(c, synthetic_content(n));
        }
    }
}
