//! Trust certificates: the envelopes that say who may do what.
//!
//! - [`Genesis`] founds a network and names its first admins; the network id
//!   is the hash of its body, so every other signature commits to it.
//! - [`AdminSetChange`] replaces the admin set. It names the link it follows,
//!   so admin sets form a hash-linked chain from the genesis, and it takes
//!   effect once a threshold of the previous set has signed it or sent an
//!   [`Endorsement`] of it.
//! - [`Admission`] (by an admin) admits an establishment, or adds a key to an
//!   admitted one. An establishment has a stable [`EstablishmentId`]; its keys
//!   can change without its items changing owner.
//! - [`Delegation`] (by a key of the establishment) lets a person's, a
//!   device's or another establishment key act for it. A site has as many
//!   keys as it has people, so nobody's departure strands it.
//! - [`Revocation`] withdraws a key or removes an establishment, listing the
//!   envelopes under its authority that stay valid (all of them for a
//!   leaver, none for a compromised key).
//!
//! Which certificates take effect is decided by [`crate::trust`], from the
//! set of certificates alone.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::envelope::VerifyError;
use crate::id::{EnvelopeId, EstablishmentId, NetworkId};
use crate::key::PublicKey;
use crate::vocab::{Nation, Setting};

/// Longest network, establishment or member name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// Longest revocation reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1_000;
/// Most admins in an admin set.
pub const MAX_ADMINS: usize = 32;
/// Most envelope ids a revocation or admin-set change keeps valid. 15,000
/// ids are 480 KB, inside the payload limit.
pub const MAX_KEEP: usize = 15_000;

/// Founds a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// The network's name, for people.
    pub name: String,
    /// The first admin keys.
    pub admins: Vec<PublicKey>,
    /// How many admins must sign a change of the admin set.
    pub threshold: u8,
    /// Random bytes so that two networks of the same name differ.
    pub nonce: [u8; 16],
}

impl Genesis {
    fn write_body(&self, w: &mut Writer) {
        w.str(&self.name);
        write_keys(w, &self.admins);
        w.u8(self.threshold).fixed(&self.nonce);
    }

    /// The network id this genesis founds.
    pub fn network_id(&self) -> NetworkId {
        let mut w = Writer::new();
        self.write_body(&mut w);
        let mut h = blake3::Hasher::new();
        h.update(b"gatehouse/v1/network\0");
        h.update(&w.into_bytes());
        NetworkId(*h.finalize().as_bytes())
    }
}

/// Replaces the admin set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSetChange {
    /// The genesis or admin-set change this one follows.
    pub previous: EnvelopeId,
    /// The new admin keys.
    pub admins: Vec<PublicKey>,
    /// How many of the new set must sign the next change.
    pub threshold: u8,
    /// Certificates signed by admins this change removes that stay valid.
    pub keep: Vec<EnvelopeId>,
}

/// An admin's signature on an admin-set change signed by another admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endorsement {
    /// The admin-set change endorsed.
    pub target: EnvelopeId,
}

/// Admits an establishment, or adds a key to one already admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The establishment's stable id.
    pub establishment: EstablishmentId,
    /// An establishment key: it can delegate and revoke the site's keys.
    pub key: PublicKey,
    /// Its name, e.g. "HMP Northgate".
    pub name: String,
    /// Its setting type.
    pub setting: Setting,
    /// Its nation.
    pub nation: Nation,
}

/// What sort of key a delegation is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// A person (site lead, deputy) who publishes.
    Person,
    /// A node's own key.
    Device,
    /// Another establishment key (for rotation, or a second site lead who
    /// may delegate).
    Establishment,
    /// A clinician: posts (advice, answers, discussion) but publishes no
    /// library item and delegates nothing. A person key of the
    /// establishment may delegate it, so staff are added without the
    /// offline establishment key.
    Clinician,
}

impl MemberRole {
    fn tag(self) -> u8 {
        match self {
            MemberRole::Person => 1,
            MemberRole::Device => 2,
            MemberRole::Establishment => 3,
            MemberRole::Clinician => 4,
        }
    }

    /// The role's name.
    pub fn slug(self) -> &'static str {
        match self {
            MemberRole::Person => "person",
            MemberRole::Device => "device",
            MemberRole::Establishment => "establishment",
            MemberRole::Clinician => "clinician",
        }
    }
}

impl std::str::FromStr for MemberRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "person" => Ok(MemberRole::Person),
            "device" => Ok(MemberRole::Device),
            "establishment" => Ok(MemberRole::Establishment),
            "clinician" => Ok(MemberRole::Clinician),
            _ => Err(format!(
                "unknown role {s:?}; expected one of: person, device, establishment, clinician"
            )),
        }
    }
}

/// Lets a key act for an establishment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The establishment delegating.
    pub establishment: EstablishmentId,
    /// The delegated key.
    pub member: PublicKey,
    /// Who or what holds it, e.g. "Healthcare manager" or "node 1".
    pub name: String,
    /// Person, device or establishment key.
    pub role: MemberRole,
}

/// What a revocation withdraws.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RevokeTarget {
    /// One key, wherever it was delegated or admitted.
    Key(PublicKey),
    /// A whole establishment (admins only).
    Establishment(EstablishmentId),
}

/// Withdraws a key or an establishment, permanently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What is revoked.
    pub target: RevokeTarget,
    /// Envelopes under the target's authority that stay valid: everything
    /// it did before for a leaver, nothing for a compromised key.
    pub keep: Vec<EnvelopeId>,
    /// Why, for the audit trail.
    pub reason: String,
}

/// A trust certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certificate {
    /// Founds the network.
    Genesis(Genesis),
    /// Admits an establishment or adds an establishment key.
    Admit(Admission),
    /// Delegates a key to act for an establishment.
    Delegate(Delegation),
    /// Revokes a key or removes an establishment.
    Revoke(Revocation),
    /// Replaces the admin set.
    AdminSet(AdminSetChange),
    /// Endorses an admin-set change.
    Endorse(Endorsement),
}

fn write_keys(w: &mut Writer, keys: &[PublicKey]) {
    w.seq(keys, |w, k| {
        w.fixed(k.as_bytes());
    });
}

fn write_ids(w: &mut Writer, ids: &[EnvelopeId]) {
    w.seq(ids, |w, id| {
        w.fixed(id.as_bytes());
    });
}

fn read_key(r: &mut Reader<'_>, field: &'static str) -> Result<PublicKey, DecodeError> {
    PublicKey::from_bytes(r.fixed()?).map_err(|_| DecodeError::Invalid {
        field,
        reason: "not an ed25519 public key",
    })
}

/// Reads a key the certificate gives authority to: it must pass
/// [`PublicKey::check_strong`], so no key the network trusts has a second
/// encoding, small order or a torsion component.
fn read_trusted_key(r: &mut Reader<'_>, field: &'static str) -> Result<PublicKey, DecodeError> {
    let key = read_key(r, field)?;
    key.check_strong().map_err(|_| DecodeError::Invalid {
        field,
        reason: "a weak ed25519 key (non-canonical, small order or with a torsion component)",
    })?;
    Ok(key)
}

fn read_name(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let s = r.str(field, MAX_NAME_BYTES)?;
    if s.trim().is_empty() {
        return Err(DecodeError::Invalid {
            field,
            reason: "empty",
        });
    }
    Ok(s.to_string())
}

/// A vocabulary value written exactly as its slug (so one meaning has one
/// encoding; people's spellings, "Pharmacy medicines", are read elsewhere,
/// never from the wire).
pub(crate) fn read_slug<T: std::str::FromStr + std::fmt::Display>(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<T, DecodeError> {
    let s = r.str(field, 64)?;
    let value: T = s.parse().map_err(|_| DecodeError::Invalid {
        field,
        reason: "unknown value",
    })?;
    if value.to_string() != s {
        return Err(DecodeError::Invalid {
            field,
            reason: "not written as its slug",
        });
    }
    Ok(value)
}

/// Reads an admin set: distinct keys, threshold between 1 and their number.
fn read_admins(r: &mut Reader<'_>) -> Result<(Vec<PublicKey>, u8), DecodeError> {
    let admins = r.seq("admins", MAX_ADMINS, |r| read_trusted_key(r, "admin"))?;
    let threshold = r.u8()?;
    if admins.is_empty() || threshold == 0 || usize::from(threshold) > admins.len() {
        return Err(DecodeError::Invalid {
            field: "threshold",
            reason: "must be between 1 and the number of admins",
        });
    }
    let mut sorted = admins.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != admins.len() {
        return Err(DecodeError::Invalid {
            field: "admins",
            reason: "an admin is listed twice",
        });
    }
    Ok((admins, threshold))
}

fn read_ids(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<EnvelopeId>, DecodeError> {
    r.seq(field, MAX_KEEP, |r| Ok(EnvelopeId(r.fixed()?)))
}

impl Certificate {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Certificate::Genesis(g) => {
                w.u8(1);
                g.write_body(&mut w);
            }
            Certificate::Admit(a) => {
                w.u8(2)
                    .fixed(a.establishment.as_bytes())
                    .fixed(a.key.as_bytes())
                    .str(&a.name)
                    .str(a.setting.slug())
                    .str(a.nation.slug());
            }
            Certificate::Delegate(d) => {
                w.u8(3)
                    .fixed(d.establishment.as_bytes())
                    .fixed(d.member.as_bytes())
                    .str(&d.name)
                    .u8(d.role.tag());
            }
            Certificate::Revoke(v) => {
                w.u8(4);
                match &v.target {
                    RevokeTarget::Key(k) => w.u8(1).fixed(k.as_bytes()),
                    RevokeTarget::Establishment(e) => w.u8(2).fixed(e.as_bytes()),
                };
                write_ids(&mut w, &v.keep);
                w.str(&v.reason);
            }
            Certificate::AdminSet(a) => {
                w.u8(5).fixed(a.previous.as_bytes());
                write_keys(&mut w, &a.admins);
                w.u8(a.threshold);
                write_ids(&mut w, &a.keep);
            }
            Certificate::Endorse(e) => {
                w.u8(6).fixed(e.target.as_bytes());
            }
        }
        w.into_bytes()
    }

    /// Parses a certificate.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let cert = match r.u8()? {
            1 => {
                let name = read_name(&mut r, "network name")?;
                let (admins, threshold) = read_admins(&mut r)?;
                let nonce = r.fixed()?;
                Certificate::Genesis(Genesis {
                    name,
                    admins,
                    threshold,
                    nonce,
                })
            }
            2 => Certificate::Admit(Admission {
                establishment: EstablishmentId(r.fixed()?),
                key: read_trusted_key(&mut r, "establishment key")?,
                name: read_name(&mut r, "establishment name")?,
                setting: read_slug(&mut r, "setting")?,
                nation: read_slug(&mut r, "nation")?,
            }),
            3 => Certificate::Delegate(Delegation {
                establishment: EstablishmentId(r.fixed()?),
                member: read_trusted_key(&mut r, "member")?,
                name: read_name(&mut r, "member name")?,
                role: match r.u8()? {
                    1 => MemberRole::Person,
                    2 => MemberRole::Device,
                    3 => MemberRole::Establishment,
                    4 => MemberRole::Clinician,
                    t => {
                        return Err(DecodeError::UnknownTag {
                            field: "member role",
                            tag: u64::from(t),
                        });
                    }
                },
            }),
            4 => {
                let target = match r.u8()? {
                    1 => RevokeTarget::Key(read_key(&mut r, "revoked key")?),
                    2 => RevokeTarget::Establishment(EstablishmentId(r.fixed()?)),
                    t => {
                        return Err(DecodeError::UnknownTag {
                            field: "revocation target",
                            tag: u64::from(t),
                        });
                    }
                };
                let keep = read_ids(&mut r, "keep")?;
                let reason = r.str("reason", MAX_REASON_BYTES)?.to_string();
                Certificate::Revoke(Revocation {
                    target,
                    keep,
                    reason,
                })
            }
            5 => {
                let previous = EnvelopeId(r.fixed()?);
                let (admins, threshold) = read_admins(&mut r)?;
                let keep = read_ids(&mut r, "keep")?;
                Certificate::AdminSet(AdminSetChange {
                    previous,
                    admins,
                    threshold,
                    keep,
                })
            }
            6 => Certificate::Endorse(Endorsement {
                target: EnvelopeId(r.fixed()?),
            }),
            t => {
                return Err(DecodeError::UnknownTag {
                    field: "certificate",
                    tag: u64::from(t),
                });
            }
        };
        r.finish()?;
        Ok(cert)
    }

    /// Checks what can be checked from the certificate and its signer alone.
    pub(crate) fn check_bound_to(
        &self,
        signer: &PublicKey,
        network: &NetworkId,
    ) -> Result<(), VerifyError> {
        if let Certificate::Genesis(g) = self {
            if g.network_id() != *network {
                return Err(VerifyError::Unbound(
                    "a genesis certificate must found the network it is signed for",
                ));
            }
            if !g.admins.contains(signer) {
                return Err(VerifyError::Unbound(
                    "a genesis certificate must be signed by one of its admins",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SecretKey;
    use proptest::prelude::*;

    fn samples() -> Vec<Certificate> {
        let k = |n: u8| SecretKey::from_seed([n; 32]).public();
        vec![
            Certificate::Genesis(Genesis {
                name: "Net".into(),
                admins: vec![k(1), k(2)],
                threshold: 2,
                nonce: [3; 16],
            }),
            Certificate::Admit(Admission {
                establishment: EstablishmentId([4; 16]),
                key: k(5),
                name: "HMP A".into(),
                setting: Setting::Yoi,
                nation: Nation::Wales,
            }),
            Certificate::Delegate(Delegation {
                establishment: EstablishmentId([4; 16]),
                member: k(6),
                name: "Deputy".into(),
                role: MemberRole::Establishment,
            }),
            Certificate::Revoke(Revocation {
                target: RevokeTarget::Key(k(6)),
                keep: vec![EnvelopeId([7; 32])],
                reason: "left".into(),
            }),
            Certificate::Revoke(Revocation {
                target: RevokeTarget::Establishment(EstablishmentId([4; 16])),
                keep: vec![],
                reason: String::new(),
            }),
            Certificate::AdminSet(AdminSetChange {
                previous: EnvelopeId([8; 32]),
                admins: vec![k(1), k(2), k(9)],
                threshold: 2,
                keep: vec![],
            }),
            Certificate::Endorse(Endorsement {
                target: EnvelopeId([8; 32]),
            }),
        ]
    }

    #[test]
    fn every_certificate_round_trips() {
        for c in samples() {
            assert_eq!(Certificate::decode(&c.encode()), Ok(c));
        }
    }

    #[test]
    fn bad_admin_sets_are_refused() {
        let k = SecretKey::from_seed([1; 32]).public();
        for (admins, threshold) in [(vec![k, k], 1), (vec![k], 0), (vec![k], 2), (vec![], 1)] {
            let c = Certificate::AdminSet(AdminSetChange {
                previous: EnvelopeId([0; 32]),
                admins,
                threshold,
                keep: vec![],
            });
            assert!(Certificate::decode(&c.encode()).is_err());
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Certificate::decode(&bytes);
        }

        #[test]
        fn truncated_certificates_are_refused(which in 0usize..7, cut in 0usize..400) {
            let bytes = samples()[which].encode();
            let cut = cut % bytes.len();
            prop_assert!(Certificate::decode(&bytes[..cut]).is_err());
        }
    }
}
