//! Trust certificates: the envelopes that say who may do what.
//!
//! - [`Genesis`] founds a network and names its first admins; the network id
//!   is the hash of its body, so every other signature commits to it.
//! - [`Admission`] (by an admin) admits an establishment.
//! - [`Delegation`] (by an establishment key) lets a person's or a device's
//!   key publish for that establishment. A site has as many delegated keys as
//!   it has people, so nobody's departure strands it.
//!
//! Which certificates take effect is decided by [`crate::trust`], from the
//! set of certificates alone.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::envelope::VerifyError;
use crate::id::NetworkId;
use crate::key::PublicKey;
use crate::vocab::{Nation, Setting};

/// Longest network, establishment or member name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// Most admins in an admin set.
pub const MAX_ADMINS: usize = 32;

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
        w.str(&self.name)
            .seq(&self.admins, |w, k| {
                w.fixed(k.as_bytes());
            })
            .u8(self.threshold)
            .fixed(&self.nonce);
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

/// Admits an establishment to the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The establishment's key.
    pub establishment: PublicKey,
    /// Its name, e.g. "HMP Northgate".
    pub name: String,
    /// Its setting type.
    pub setting: Setting,
    /// Its nation.
    pub nation: Nation,
}

/// What sort of key a delegation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// A person (site lead, deputy) who publishes.
    Person,
    /// A node's own key.
    Device,
}

/// Lets a key act for an establishment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The establishment delegating.
    pub establishment: PublicKey,
    /// The delegated key.
    pub member: PublicKey,
    /// Who or what holds it, e.g. "Healthcare manager" or "node 1".
    pub name: String,
    /// Person or device.
    pub role: MemberRole,
}

/// A trust certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certificate {
    /// Founds the network.
    Genesis(Genesis),
    /// Admits an establishment.
    Admit(Admission),
    /// Delegates a key to act for an establishment.
    Delegate(Delegation),
}

fn read_key(r: &mut Reader<'_>, field: &'static str) -> Result<PublicKey, DecodeError> {
    PublicKey::from_bytes(r.fixed()?).map_err(|_| DecodeError::Invalid {
        field,
        reason: "not an ed25519 public key",
    })
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

fn read_slug<T: std::str::FromStr>(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<T, DecodeError> {
    let s = r.str(field, 64)?;
    s.parse().map_err(|_| DecodeError::Invalid {
        field,
        reason: "unknown value",
    })
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
                    .str(&a.name)
                    .str(a.setting.slug())
                    .str(a.nation.slug());
            }
            Certificate::Delegate(d) => {
                w.u8(3)
                    .fixed(d.establishment.as_bytes())
                    .fixed(d.member.as_bytes())
                    .str(&d.name)
                    .u8(match d.role {
                        MemberRole::Person => 1,
                        MemberRole::Device => 2,
                    });
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
                let admins = r.seq("admins", MAX_ADMINS, |r| read_key(r, "admin"))?;
                let threshold = r.u8()?;
                let nonce = r.fixed()?;
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
                Certificate::Genesis(Genesis {
                    name,
                    admins,
                    threshold,
                    nonce,
                })
            }
            2 => Certificate::Admit(Admission {
                establishment: read_key(&mut r, "establishment")?,
                name: read_name(&mut r, "establishment name")?,
                setting: read_slug(&mut r, "setting")?,
                nation: read_slug(&mut r, "nation")?,
            }),
            3 => Certificate::Delegate(Delegation {
                establishment: read_key(&mut r, "establishment")?,
                member: read_key(&mut r, "member")?,
                name: read_name(&mut r, "member name")?,
                role: match r.u8()? {
                    1 => MemberRole::Person,
                    2 => MemberRole::Device,
                    t => {
                        return Err(DecodeError::UnknownTag {
                            field: "member role",
                            tag: u64::from(t),
                        });
                    }
                },
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
        match self {
            Certificate::Genesis(g) => {
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
            Certificate::Delegate(d) => {
                if d.establishment != *signer {
                    return Err(VerifyError::Unbound(
                        "a delegation must be signed by the establishment key it delegates for",
                    ));
                }
            }
            Certificate::Admit(_) => {}
        }
        Ok(())
    }
}
