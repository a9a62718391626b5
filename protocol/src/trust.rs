//! Trust evaluation: which certificates and changes take effect.
//!
//! Validity is a pure function of the *set* of envelopes a node holds, never
//! of the order they arrived in or of any clock. [`TrustView::build`] takes
//! every verified certificate and works out the admins, the admitted
//! establishments and the delegated keys; [`TrustView::judge`] then decides
//! each envelope. An envelope whose authority is not (yet) established is
//! [`Judgement::Pending`]: kept, re-judged whenever the set grows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::certificate::{Certificate, MemberRole};
use crate::envelope::{Body, Verified};
use crate::id::{EnvelopeId, NetworkId};
use crate::key::PublicKey;
use crate::vocab::{Nation, Setting};

/// Why an envelope is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum PendingReason {
    /// The network's genesis certificate has not arrived.
    NoGenesis,
    /// The signer is not an admin (an admin-set change may still make it one).
    SignerNotAdmin,
    /// The establishment named has not been admitted.
    EstablishmentNotAdmitted,
    /// The signer has no delegation from any establishment.
    SignerNotDelegated,
}

/// Why an envelope has no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// A second genesis for a network that already has one.
    DuplicateGenesis,
    /// The signer acts for another establishment, not the item's owner.
    SignerOfAnotherEstablishment,
}

impl std::fmt::Display for PendingReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PendingReason::NoGenesis => "the network's genesis certificate has not arrived",
            PendingReason::SignerNotAdmin => "the signer is not a network admin",
            PendingReason::EstablishmentNotAdmitted => "the establishment is not admitted",
            PendingReason::SignerNotDelegated => "the signer's key has no delegation",
        })
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RejectReason::DuplicateGenesis => "a network has exactly one genesis",
            RejectReason::SignerOfAnotherEstablishment => {
                "the signer is delegated by another establishment, not the item's owner"
            }
        })
    }
}

/// The decision on one envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Judgement {
    /// In effect.
    Accepted,
    /// Not judged yet; kept until what it needs arrives.
    Pending(PendingReason),
    /// Never in effect given the envelopes held.
    Rejected(RejectReason),
}

/// An admitted establishment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Establishment {
    /// Its key.
    pub key: PublicKey,
    /// Its name.
    pub name: String,
    /// Setting type.
    pub setting: Setting,
    /// Nation.
    pub nation: Nation,
    /// The admission certificate in effect.
    pub admitted_by: EnvelopeId,
}

/// A key delegated by an establishment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The member's key.
    pub key: PublicKey,
    /// The establishment it acts for.
    pub establishment: PublicKey,
    /// Who or what holds it.
    pub name: String,
    /// Person or device.
    pub role: MemberRole,
    /// The delegation certificate.
    pub delegated_by: EnvelopeId,
}

/// The trust state implied by a set of certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrustView {
    /// The network's name, once its genesis is known.
    pub network_name: Option<String>,
    /// The admin keys.
    pub admins: BTreeSet<PublicKey>,
    /// Admin-set change threshold.
    pub threshold: u8,
    /// Admitted establishments by key.
    pub establishments: BTreeMap<PublicKey, Establishment>,
    /// Delegated keys, by (establishment, member).
    pub members: BTreeMap<(PublicKey, PublicKey), Member>,
    genesis: Option<EnvelopeId>,
}

impl TrustView {
    /// Works out the trust state from every certificate held, in any order.
    pub fn build<'a>(network: &NetworkId, certs: impl IntoIterator<Item = &'a Verified>) -> Self {
        // Sort by id so that every tie-break below is independent of arrival order.
        let mut certs: Vec<&Verified> = certs
            .into_iter()
            .filter(|e| e.network() == *network && matches!(e.body(), Body::Certificate(_)))
            .collect();
        certs.sort_by_key(|e| e.id());
        certs.dedup_by_key(|e| e.id());
        let mut view = TrustView::default();
        for env in &certs {
            if let Body::Certificate(Certificate::Genesis(g)) = env.body()
                && g.network_id() == *network
                && view.genesis.is_none()
            {
                view.genesis = Some(env.id());
                view.network_name = Some(g.name.clone());
                view.admins = g.admins.iter().copied().collect();
                view.threshold = g.threshold;
            }
        }
        // Admissions: by an admin. Several for one establishment (a rename):
        // the latest claimed time wins, ties by id, the same on every node.
        let mut admissions: Vec<&&Verified> = certs
            .iter()
            .filter(|e| {
                matches!(e.body(), Body::Certificate(Certificate::Admit(_)))
                    && view.admins.contains(&e.signer())
            })
            .collect();
        admissions.sort_by_key(|e| (e.created_ms(), e.id()));
        for env in admissions {
            if let Body::Certificate(Certificate::Admit(a)) = env.body() {
                view.establishments.insert(
                    a.establishment,
                    Establishment {
                        key: a.establishment,
                        name: a.name.clone(),
                        setting: a.setting,
                        nation: a.nation,
                        admitted_by: env.id(),
                    },
                );
            }
        }
        let mut delegations: Vec<&&Verified> = certs
            .iter()
            .filter(|e| matches!(e.body(), Body::Certificate(Certificate::Delegate(_))))
            .collect();
        delegations.sort_by_key(|e| (e.created_ms(), e.id()));
        for env in delegations {
            if let Body::Certificate(Certificate::Delegate(d)) = env.body()
                && view.establishments.contains_key(&d.establishment)
            {
                view.members.insert(
                    (d.establishment, d.member),
                    Member {
                        key: d.member,
                        establishment: d.establishment,
                        name: d.name.clone(),
                        role: d.role,
                        delegated_by: env.id(),
                    },
                );
            }
        }
        view
    }

    /// Whether this view has the network's genesis.
    pub fn has_genesis(&self) -> bool {
        self.genesis.is_some()
    }

    /// The delegation of `member` by `establishment`, if in effect.
    pub fn member(&self, establishment: &PublicKey, member: &PublicKey) -> Option<&Member> {
        self.members.get(&(*establishment, *member))
    }

    /// Every establishment `member` is delegated by.
    pub fn establishments_of(&self, member: &PublicKey) -> Vec<&Establishment> {
        self.members
            .values()
            .filter(|m| m.key == *member)
            .filter_map(|m| self.establishments.get(&m.establishment))
            .collect()
    }

    /// Decides one envelope against this view.
    pub fn judge(&self, env: &Verified) -> Judgement {
        if self.genesis.is_none() {
            return Judgement::Pending(PendingReason::NoGenesis);
        }
        match env.body() {
            Body::Certificate(Certificate::Genesis(_)) => {
                if Some(env.id()) == self.genesis {
                    Judgement::Accepted
                } else {
                    Judgement::Rejected(RejectReason::DuplicateGenesis)
                }
            }
            Body::Certificate(Certificate::Admit(_)) => {
                if self.admins.contains(&env.signer()) {
                    Judgement::Accepted
                } else {
                    Judgement::Pending(PendingReason::SignerNotAdmin)
                }
            }
            Body::Certificate(Certificate::Delegate(d)) => {
                if self.establishments.contains_key(&d.establishment) {
                    Judgement::Accepted
                } else {
                    Judgement::Pending(PendingReason::EstablishmentNotAdmitted)
                }
            }
            Body::Change(c) => {
                if !self.establishments.contains_key(&c.owner) {
                    Judgement::Pending(PendingReason::EstablishmentNotAdmitted)
                } else if self.member(&c.owner, &env.signer()).is_some() {
                    Judgement::Accepted
                } else if self.members.values().any(|m| m.key == env.signer()) {
                    Judgement::Rejected(RejectReason::SignerOfAnotherEstablishment)
                } else {
                    Judgement::Pending(PendingReason::SignerNotDelegated)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{Admission, Delegation, Genesis};
    use crate::change::{ChangePayload, actor_id};
    use crate::id::ItemId;
    use crate::item::{init_doc, tests::sample_content, write_version};
    use crate::key::SecretKey;
    use crate::vocab::{Nation, Setting};
    use proptest::prelude::*;

    struct Net {
        id: NetworkId,
        certs: Vec<Verified>,
    }

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed([n; 32])
    }

    fn network() -> Net {
        let admin = key(1);
        let genesis = Genesis {
            name: "Test network".into(),
            admins: vec![admin.public()],
            threshold: 1,
            nonce: [0; 16],
        };
        let id = genesis.network_id();
        let mut certs = vec![Verified::sign(
            Body::Certificate(Certificate::Genesis(genesis)),
            &admin,
            &id,
            1,
        )];
        for (est, person, name) in [(10u8, 11u8, "HMP A"), (20, 21, "HMP B")] {
            certs.push(Verified::sign(
                Body::Certificate(Certificate::Admit(Admission {
                    establishment: key(est).public(),
                    name: name.into(),
                    setting: Setting::LocalRemand,
                    nation: Nation::England,
                })),
                &admin,
                &id,
                2,
            ));
            certs.push(Verified::sign(
                Body::Certificate(Certificate::Delegate(Delegation {
                    establishment: key(est).public(),
                    member: key(person).public(),
                    name: "Healthcare manager".into(),
                    role: MemberRole::Person,
                })),
                &key(est),
                &id,
                3,
            ));
        }
        Net { id, certs }
    }

    fn change(net: &Net, owner: u8, signer: u8) -> Verified {
        let owner = key(owner).public();
        let signer = key(signer);
        let salt = [signer.public().as_bytes()[0]; 16];
        let item = ItemId::derive(&owner, &salt);
        let mut doc = automerge::AutoCommit::new().with_actor(actor_id(&signer.public(), &[7; 16]));
        init_doc(&mut doc, item, &owner).expect("init");
        write_version(&mut doc, &sample_content(), &signer.public()).expect("write");
        doc.commit();
        let change = doc.get_last_local_change().expect("a change");
        Verified::sign(
            Body::Change(Box::new(ChangePayload {
                item,
                owner,
                salt,
                change,
            })),
            &signer,
            &net.id,
            4,
        )
    }

    #[test]
    fn delegated_key_is_accepted_for_its_own_establishment_only() {
        let net = network();
        let view = TrustView::build(&net.id, &net.certs);
        assert_eq!(view.establishments.len(), 2);
        assert_eq!(view.judge(&change(&net, 10, 11)), Judgement::Accepted);
        assert_eq!(
            view.judge(&change(&net, 10, 21)),
            Judgement::Rejected(RejectReason::SignerOfAnotherEstablishment)
        );
        assert_eq!(
            view.judge(&change(&net, 10, 99)),
            Judgement::Pending(PendingReason::SignerNotDelegated)
        );
        // The establishment key itself signs certificates, not changes.
        assert_eq!(
            view.judge(&change(&net, 10, 10)),
            Judgement::Pending(PendingReason::SignerNotDelegated)
        );
    }

    #[test]
    fn change_waits_for_its_delegation() {
        let net = network();
        let without: Vec<Verified> = net
            .certs
            .iter()
            .filter(|c| !matches!(c.body(), Body::Certificate(Certificate::Delegate(_))))
            .cloned()
            .collect();
        let view = TrustView::build(&net.id, &without);
        assert_eq!(
            view.judge(&change(&net, 10, 11)),
            Judgement::Pending(PendingReason::SignerNotDelegated)
        );
    }

    #[test]
    fn admission_by_a_non_admin_has_no_effect() {
        let net = network();
        let rogue = Verified::sign(
            Body::Certificate(Certificate::Admit(Admission {
                establishment: key(30).public(),
                name: "HMP Rogue".into(),
                setting: Setting::PrisonCatC,
                nation: Nation::Wales,
            })),
            &key(10),
            &net.id,
            5,
        );
        let mut certs = net.certs.clone();
        certs.push(rogue.clone());
        let view = TrustView::build(&net.id, &certs);
        assert!(!view.establishments.contains_key(&key(30).public()));
        assert_eq!(
            view.judge(&rogue),
            Judgement::Pending(PendingReason::SignerNotAdmin)
        );
    }

    proptest! {
        #[test]
        fn any_delivery_order_gives_the_same_view(seed in any::<u64>(), dups in 0usize..4) {
            let net = network();
            let mut certs = net.certs.clone();
            for i in 0..dups {
                certs.push(net.certs[i % net.certs.len()].clone());
            }
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..certs.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                certs.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let a = TrustView::build(&net.id, &net.certs);
            let b = TrustView::build(&net.id, &certs);
            prop_assert_eq!(&a, &b);
            for c in [change(&net, 10, 11), change(&net, 20, 11)] {
                prop_assert_eq!(a.judge(&c), b.judge(&c));
            }
        }
    }
}
