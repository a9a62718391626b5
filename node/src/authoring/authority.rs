//! Trust operations: the certificates admins and site leads issue.
//!
//! Each operation signs a certificate with a key the caller loaded, checks
//! that it would take effect given everything this node holds, and only
//! then stores it; a certificate this node's keys have no authority for is
//! refused and leaves nothing behind. Revocations compute their keep list
//! here: everything the revoked key (or establishment) signed that this node
//! holds, for a leaver; nothing, for a compromised key.

use gatehouse_protocol::certificate::{
    AdminSetChange, Admission, Certificate, Delegation, Endorsement, MAX_KEEP, MemberRole,
    Revocation, RevokeTarget,
};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId};
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::post::Voice;
use gatehouse_protocol::trust::{Judgement, PendingReason, TrustView};
use gatehouse_protocol::vocab::{Nation, Setting};

use crate::home::random_bytes;
use crate::library::{Library, LibraryError};

type Result<T, E = LibraryError> = std::result::Result<T, E>;

/// How much of a revoked key's past stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Everything it signed that this node holds (someone leaving).
    Keep,
    /// Nothing (a lost or compromised key).
    Discard,
}

/// What a certificate operation did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    /// The certificate's envelope id.
    pub id: EnvelopeId,
    /// Its judgement once stored.
    pub judgement: Judgement,
    /// Envelopes kept valid, for revocations and admin-set changes.
    pub kept: usize,
}

impl Library {
    /// Signs `cert` with `signer`, checks it takes effect (admin-set changes
    /// may instead wait for endorsements), and stores it durably.
    pub fn issue(&mut self, signer: &SecretKey, cert: Certificate) -> Result<Issued> {
        let kept = match &cert {
            Certificate::Revoke(r) => r.keep.len(),
            Certificate::AdminSet(a) => a.keep.len(),
            _ => 0,
        };
        let waits_for_endorsement = matches!(cert, Certificate::AdminSet(_));
        let env = Verified::sign(
            Body::Certificate(cert),
            signer,
            &self.config().network,
            self.now(),
        );
        let mut certs = self.certificates()?;
        certs.push(env.clone());
        let judgement = TrustView::build(&self.config().network, &certs).judge(&env);
        let allowed = judgement == Judgement::Accepted
            || (waits_for_endorsement
                && judgement == Judgement::Pending(PendingReason::NeedsEndorsements));
        if !allowed {
            return Err(LibraryError::NotAuthorised(judgement));
        }
        let id = env.id();
        self.ingest_many(vec![env])?;
        Ok(Issued {
            id,
            judgement: self.judgement_of(&id)?,
            kept,
        })
    }

    /// Admits an establishment (a new one, or a new key for `existing`).
    /// Returns its id.
    pub fn admit(
        &mut self,
        admin: &SecretKey,
        key: PublicKey,
        name: &str,
        setting: Setting,
        nation: Nation,
        existing: Option<EstablishmentId>,
    ) -> Result<(EstablishmentId, Issued)> {
        check_name("name", name)?;
        if let Some(other) = self.trust().establishments_of(&key).first()
            && Some(other.id) != existing
        {
            return Err(invalid(
                "key",
                &format!("{key} is already a key of {}", other.name),
            ));
        }
        let establishment = match existing {
            Some(id) => id,
            None => EstablishmentId(self.ambient.random()?),
        };
        let issued = self.issue(
            admin,
            Certificate::Admit(Admission {
                establishment,
                key,
                name: name.trim().to_string(),
                setting,
                nation,
            }),
        )?;
        Ok((establishment, issued))
    }

    /// Delegates `member` to act for `establishment`, signed by one of its keys.
    pub fn delegate(
        &mut self,
        signer: &SecretKey,
        establishment: EstablishmentId,
        member: PublicKey,
        name: &str,
        role: MemberRole,
    ) -> Result<Issued> {
        check_name("name", name)?;
        if let Some(other) = self
            .trust()
            .establishments_of(&member)
            .into_iter()
            .find(|e| e.id != establishment)
        {
            return Err(invalid(
                "key",
                &format!(
                    "{member} already acts for {}; each key acts for one establishment",
                    other.name
                ),
            ));
        }
        if self.trust().revoked_keys.contains_key(&member) {
            return Err(LibraryError::Invalid(
                gatehouse_protocol::item::FieldError {
                    field: "key",
                    reason: format!(
                        "{member} was revoked, and revocation is permanent; make a new key"
                    ),
                },
            ));
        }
        self.issue(
            signer,
            Certificate::Delegate(Delegation {
                establishment,
                member,
                name: name.trim().to_string(),
                role,
            }),
        )
    }

    /// Revokes a key. With [`History::Keep`], everything it signed that this
    /// node holds stays valid.
    pub fn revoke_key(
        &mut self,
        signer: &SecretKey,
        key: PublicKey,
        history: History,
        reason: &str,
    ) -> Result<Issued> {
        check_free_text("reason", reason)?;
        let keep = match history {
            History::Keep => self.envelopes_signed_by(&key)?,
            History::Discard => Vec::new(),
        };
        check_keep(&keep)?;
        self.issue(
            signer,
            Certificate::Revoke(Revocation {
                target: RevokeTarget::Key(key),
                keep,
                reason: reason.trim().to_string(),
            }),
        )
    }

    /// Removes an establishment (admins only).
    pub fn remove_establishment(
        &mut self,
        admin: &SecretKey,
        establishment: EstablishmentId,
        history: History,
        reason: &str,
    ) -> Result<Issued> {
        check_free_text("reason", reason)?;
        let keep = match history {
            History::Keep => self.envelopes_under(&establishment)?,
            History::Discard => Vec::new(),
        };
        check_keep(&keep)?;
        self.issue(
            admin,
            Certificate::Revoke(Revocation {
                target: RevokeTarget::Establishment(establishment),
                keep,
                reason: reason.trim().to_string(),
            }),
        )
    }

    /// Proposes a new admin set. It takes effect once a threshold of the
    /// current admins have signed it (this one included) or endorsed it.
    pub fn change_admins(
        &mut self,
        admin: &SecretKey,
        admins: Vec<PublicKey>,
        threshold: u8,
        history: History,
    ) -> Result<Issued> {
        let previous = *self
            .trust()
            .admin_chain
            .last()
            .ok_or(LibraryError::NotAuthorised(Judgement::Pending(
                PendingReason::NoGenesis,
            )))?;
        let mut sorted = admins.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.is_empty() || sorted.len() != admins.len() {
            return Err(invalid("admins", "name each admin once, at least one"));
        }
        if threshold == 0 || usize::from(threshold) > admins.len() {
            return Err(invalid(
                "threshold",
                &format!("must be between 1 and {}", admins.len()),
            ));
        }
        let removed: Vec<PublicKey> = self
            .trust()
            .admins
            .iter()
            .filter(|a| !admins.contains(a))
            .copied()
            .collect();
        let mut keep = Vec::new();
        if history == History::Keep {
            for r in &removed {
                keep.extend(self.envelopes_signed_by(r)?);
            }
        }
        check_keep(&keep)?;
        self.issue(
            admin,
            Certificate::AdminSet(AdminSetChange {
                previous,
                admins,
                threshold,
                keep,
            }),
        )
    }

    /// Endorses an admin-set change; returns the judgement of the change
    /// afterwards.
    pub fn endorse(&mut self, admin: &SecretKey, target: EnvelopeId) -> Result<Judgement> {
        if !self.has_envelope(&target)? {
            return Err(LibraryError::UnknownEnvelope(target));
        }
        self.issue(admin, Certificate::Endorse(Endorsement { target }))?;
        self.judgement_of(&target)
    }

    /// Every envelope held that `key` signed.
    pub fn envelopes_signed_by(&self, key: &PublicKey) -> Result<Vec<EnvelopeId>> {
        let mut out: Vec<EnvelopeId> = self
            .change_facts()?
            .into_iter()
            .filter(|(_, signer, _, _)| signer == key)
            .map(|(id, ..)| id)
            .collect();
        out.extend(
            self.certificates()?
                .iter()
                .filter(|c| c.signer() == *key)
                .map(Verified::id),
        );
        out.extend(
            self.replica
                .post_facts()?
                .into_iter()
                .filter(|(_, signer, _)| signer == key)
                .map(|(id, ..)| id),
        );
        out.sort();
        Ok(out)
    }

    /// Every envelope held under an establishment's authority: changes to
    /// its items and delegations for it.
    pub fn envelopes_under(&self, establishment: &EstablishmentId) -> Result<Vec<EnvelopeId>> {
        let mut out: Vec<EnvelopeId> = self
            .change_facts()?
            .into_iter()
            .filter(|(_, _, owner, _)| owner == establishment)
            .map(|(id, ..)| id)
            .collect();
        out.extend(self.certificates()?.iter().filter_map(|c| match c.body() {
            Body::Certificate(Certificate::Delegate(d)) if d.establishment == *establishment => {
                Some(c.id())
            }
            _ => None,
        }));
        out.extend(
            self.replica
                .post_facts()?
                .into_iter()
                .filter(|(_, _, voice)| *voice == Voice::Establishment(*establishment))
                .map(|(id, ..)| id),
        );
        out.sort();
        Ok(out)
    }
}

fn invalid(field: &'static str, reason: &str) -> LibraryError {
    LibraryError::Invalid(gatehouse_protocol::item::FieldError {
        field,
        reason: reason.to_string(),
    })
}

/// Checks a name for a certificate: its length, and that it carries no
/// patient identifier (names travel to every site, like items).
pub(crate) fn check_name(field: &'static str, name: &str) -> Result<()> {
    let max = gatehouse_protocol::certificate::MAX_NAME_BYTES;
    if name.trim().is_empty() || name.len() > max {
        return Err(invalid(field, &format!("must be 1 to {max} bytes")));
    }
    check_free_text(field, name)
}

/// The free text a certificate carries, by field.
fn certificate_text(cert: &Certificate) -> Vec<(&'static str, &str)> {
    match cert {
        Certificate::Genesis(g) => vec![("network name", g.name.as_str())],
        Certificate::Admit(a) => vec![("establishment name", a.name.as_str())],
        Certificate::Delegate(d) => vec![("member name", d.name.as_str())],
        Certificate::Revoke(r) => vec![("reason", r.reason.as_str())],
        Certificate::AdminSet(_) | Certificate::Endorse(_) => Vec::new(),
    }
}

/// Judges a certificate from a peer or a bundle as a local one is judged:
/// none of its names or reasons may hold a patient identifier.
pub(crate) fn check_received_certificate(cert: &Certificate) -> Result<()> {
    for (field, text) in certificate_text(cert) {
        if let Some(m) = gatehouse_protocol::identifier::find_identifiers_allowing(text, &[])
            .into_iter()
            .next()
        {
            return Err(LibraryError::CertificateRefused {
                field,
                kind: m.kind,
            });
        }
    }
    Ok(())
}

/// Refuses free text that carries a patient identifier.
fn check_free_text(field: &'static str, text: &str) -> Result<()> {
    match gatehouse_protocol::identifier::find_identifiers_allowing(text, &[])
        .into_iter()
        .next()
    {
        Some(m) => Err(LibraryError::IdentifierInCertificate {
            field,
            kind: m.kind,
            text: m.text,
        }),
        None => Ok(()),
    }
}

fn check_keep(keep: &[EnvelopeId]) -> Result<()> {
    if keep.len() > MAX_KEEP {
        return Err(invalid(
            "keep",
            &format!(
                "{} envelopes to keep, over the limit of {MAX_KEEP} for one certificate",
                keep.len()
            ),
        ));
    }
    Ok(())
}

/// What joining a network did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JoinReport {
    /// The data directory.
    pub home: String,
    /// The network joined.
    pub network: gatehouse_protocol::id::NetworkId,
    /// Its name.
    pub network_name: Option<String>,
    /// This node's establishment.
    pub establishment_id: EstablishmentId,
    /// Its name.
    pub establishment_name: String,
    /// The publishing key on this node.
    pub member_key: Option<PublicKey>,
    /// The node key.
    pub node_key: PublicKey,
    /// Whether the node key is delegated (needs an establishment key here).
    pub node_delegated: bool,
    /// What importing the invitation did.
    pub imported: crate::replica::bundle::ImportReport,
}

impl Library {
    /// Makes a node in `home` inside the network an invitation bundle
    /// describes. `home/keys` must already hold the establishment key the
    /// invitation admits, or a member key it delegates (`gatehouse key
    /// generate`). With the establishment key, a publishing key (named
    /// `member_name`) and the node key are made and delegated here.
    pub fn join(
        home: &crate::home::Home,
        invite: &[u8],
        member_name: &str,
    ) -> Result<(Self, JoinReport)> {
        use crate::home::generate_key;
        use gatehouse_protocol::envelope::Envelope;
        if home.is_initialised() {
            return Err(LibraryError::AlreadyInitialised(
                home.root().display().to_string(),
            ));
        }
        let file = crate::replica::bundle::read(invite)
            .map_err(|e| LibraryError::Bundle(e.to_string()))?;
        let network = file.network;
        let certs: Vec<Verified> = file
            .entries
            .iter()
            .filter_map(|e| Envelope::open(&e.bytes, &network).ok())
            .filter(|e| matches!(e.body(), Body::Certificate(_)))
            .collect();
        let trust = TrustView::build(&network, &certs);
        if !trust.has_genesis() {
            return Err(LibraryError::NotInvited(
                "the invitation holds no genesis certificate for its network".into(),
            ));
        }
        let est_key = home.read_key("establishment")?;
        let member_key = home.read_key("member")?;
        let found = est_key
            .as_ref()
            .and_then(|k| trust.establishments_of(&k.public()).first().map(|e| e.id))
            .or_else(|| {
                member_key
                    .as_ref()
                    .and_then(|k| trust.establishments_of(&k.public()).first().map(|e| e.id))
            });
        let Some(establishment) = found else {
            let held: Vec<String> = [("establishment", &est_key), ("member", &member_key)]
                .iter()
                .filter_map(|(n, k)| k.as_ref().map(|k| format!("{n} key {}", k.public())))
                .collect();
            return Err(LibraryError::NotInvited(if held.is_empty() {
                format!(
                    "{} holds no keys: run `gatehouse key generate establishment` there, give the public key to a network admin, and ask for an invitation made with `gatehouse trust admit --key ... --invite FILE`",
                    home.keys_dir().display()
                )
            } else {
                format!(
                    "the invitation admits none of this node's keys ({}); ask the admin to admit that key",
                    held.join(", ")
                )
            }));
        };
        home.create()?;
        // A site that lost its node but kept its keys joins again as the
        // same node: its node key, already delegated, is kept.
        let node = match home.read_key("node")? {
            Some(k) => k,
            None => {
                let k = generate_key()?;
                home.write_key("node", &k)?;
                k
            }
        };
        let member = match (member_key, &est_key) {
            (Some(m), _) => Some(m),
            (None, Some(_)) => {
                let m = generate_key()?;
                home.write_key("member", &m)?;
                Some(m)
            }
            (None, None) => None,
        };
        let config = crate::library::NodeConfig {
            network,
            establishment,
            member: member.as_ref().map(SecretKey::public),
            node: node.public(),
            actor_suffix: hex::encode(random_bytes::<16>()?),
        };
        let member_public = member.as_ref().map(SecretKey::public);
        let mut lib = Self::create_in(home, config, member)?;
        let imported = crate::replica::bundle::import(&mut lib, invite)
            .map_err(|e| LibraryError::Bundle(e.to_string()))?;
        let mut node_delegated = false;
        if let Some(est) = &est_key {
            if let Some(m) = member_public
                && lib.trust().member(&establishment, &m).is_none()
            {
                lib.delegate(est, establishment, m, member_name, MemberRole::Person)?;
            }
            if lib.trust().member(&establishment, &node.public()).is_none() {
                let est_name = lib
                    .trust()
                    .establishments
                    .get(&establishment)
                    .map(|e| e.name.clone())
                    .unwrap_or_default();
                lib.delegate(
                    est,
                    establishment,
                    node.public(),
                    &format!("{est_name} node"),
                    MemberRole::Device,
                )?;
                node_delegated = true;
            }
        }
        let report = JoinReport {
            home: home.root().display().to_string(),
            network,
            network_name: lib.trust().network_name.clone(),
            establishment_id: establishment,
            establishment_name: lib
                .trust()
                .establishments
                .get(&establishment)
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            member_key: member_public,
            node_key: node.public(),
            node_delegated,
            imported,
        };
        Ok((lib, report))
    }

    /// Replaces this node's publishing key: a new key is delegated by the
    /// establishment key, the old one revoked with its history kept. Returns
    /// the new public key; the caller swaps the key files.
    pub fn rotate_member(
        &mut self,
        establishment_key: &SecretKey,
        new_member: SecretKey,
    ) -> Result<PublicKey> {
        let est = self.config().establishment;
        let old = self.config().member.ok_or(LibraryError::NoSigningKey)?;
        let name = self
            .trust()
            .member(&est, &old)
            .map_or_else(|| "Publishing key".to_string(), |m| m.name.clone());
        let public = new_member.public();
        self.delegate(establishment_key, est, public, &name, MemberRole::Person)?;
        self.revoke_key(establishment_key, old, History::Keep, "key rotated")?;
        self.set_member(new_member)?;
        Ok(public)
    }

    /// Replaces an establishment key: the new key is made an establishment
    /// key by the old one, which the new key then revokes with its history
    /// kept (so every delegation it made stands).
    pub fn rotate_establishment(&mut self, old: &SecretKey, new: &SecretKey) -> Result<PublicKey> {
        let est = self.config().establishment;
        self.delegate(
            old,
            est,
            new.public(),
            "Establishment key",
            MemberRole::Establishment,
        )?;
        self.revoke_key(new, old.public(), History::Keep, "key rotated")?;
        Ok(new.public())
    }
}
