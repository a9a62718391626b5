//! Who may take part in sync, decided from the certificates alone.
//!
//! A peer is admitted when its node key is a delegated, unrevoked device
//! key of an admitted establishment that may act. A node proves its own
//! admission to a peer that does not know it yet by pushing the chain of
//! certificates that admits *its own* key ([`admission_proof`]): the
//! network's genesis and admin chain, its establishment's admissions and
//! establishment-key delegations, and the delegation of its node key. That
//! chain is small and does not grow with the size of the network, so a site
//! that joined at the far end of a mature network is admitted on first
//! contact.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_protocol::certificate::{Certificate, MemberRole};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::EnvelopeId;
use gatehouse_protocol::key::PublicKey;
use gatehouse_protocol::trust::TrustView;

/// Most certificates in an admission proof, and so the most an unadmitted
/// peer may push. Genesis, a handful of admin-set links and endorsements,
/// one or two admissions and delegations: far below this.
pub const MAX_PROOF_CERTIFICATES: usize = 256;

/// The node keys of admitted devices, with their establishment's name.
pub fn admitted_nodes(trust: &TrustView) -> BTreeMap<PublicKey, String> {
    trust
        .members
        .values()
        .filter(|m| m.role == MemberRole::Device && !m.revoked)
        .filter(|m| trust.can_act(&m.establishment, &m.key))
        .map(|m| {
            let name = trust
                .establishments
                .get(&m.establishment)
                .map(|e| e.name.clone())
                .unwrap_or_default();
            (m.key, name)
        })
        .collect()
}

/// The certificates among `certs` that admit the node key `node`: the admin
/// chain (genesis, admin-set changes, endorsements), then for every
/// establishment that delegated `node` as a device, its admissions, its
/// establishment-key delegations and the device delegation itself. Genesis
/// and the admin chain come first, so the receiver can judge the rest as it
/// reads them. At most [`MAX_PROOF_CERTIFICATES`].
pub fn admission_proof(certs: &[Verified], node: &PublicKey) -> Vec<EnvelopeId> {
    let certificate = |v: &Verified| match v.body() {
        Body::Certificate(c) => Some(c.clone()),
        _ => None,
    };
    let establishments: BTreeSet<_> = certs
        .iter()
        .filter_map(|v| match certificate(v) {
            Some(Certificate::Delegate(d)) if d.member == *node && d.role == MemberRole::Device => {
                Some(d.establishment)
            }
            _ => None,
        })
        .collect();
    let mut chain = Vec::new();
    let mut own = Vec::new();
    for v in certs {
        match certificate(v) {
            Some(Certificate::Genesis(_) | Certificate::AdminSet(_) | Certificate::Endorse(_)) => {
                chain.push(v.id());
            }
            Some(Certificate::Admit(a)) if establishments.contains(&a.establishment) => {
                own.push(v.id());
            }
            Some(Certificate::Delegate(d))
                if establishments.contains(&d.establishment)
                    && (d.role == MemberRole::Establishment || d.member == *node) =>
            {
                own.push(v.id());
            }
            _ => {}
        }
    }
    chain.extend(own);
    chain.truncate(MAX_PROOF_CERTIFICATES);
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::certificate::{Admission, Delegation, Genesis};
    use gatehouse_protocol::id::EstablishmentId;
    use gatehouse_protocol::key::SecretKey;
    use gatehouse_protocol::vocab::{Nation, Setting};

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed([n; 32])
    }

    /// A network of `sites` establishments, each with a node key.
    fn network(sites: u8) -> (Vec<Verified>, Vec<SecretKey>) {
        let admin = key(1);
        let genesis = Genesis {
            name: "Test".into(),
            admins: vec![admin.public()],
            threshold: 1,
            nonce: [0; 16],
        };
        let net = genesis.network_id();
        let sign = |c: Certificate, k: &SecretKey| Verified::sign(Body::Certificate(c), k, &net, 0);
        let mut certs = vec![sign(Certificate::Genesis(genesis.clone()), &admin)];
        let mut nodes = Vec::new();
        for s in 0..sites {
            let est = key(10 + s);
            let node = key(100 + s);
            let id = EstablishmentId([s; 16]);
            certs.push(sign(
                Certificate::Admit(Admission {
                    establishment: id,
                    key: est.public(),
                    name: format!("HMP {s}"),
                    setting: Setting::LocalRemand,
                    nation: Nation::England,
                }),
                &admin,
            ));
            certs.push(sign(
                Certificate::Delegate(Delegation {
                    establishment: id,
                    member: node.public(),
                    name: format!("HMP {s} node"),
                    role: MemberRole::Device,
                }),
                &est,
            ));
            nodes.push(node);
        }
        (certs, nodes)
    }

    #[test]
    fn the_proof_of_a_late_site_admits_it_and_stays_small() {
        let (certs, nodes) = network(60);
        let net = certs[0].network();
        let last = nodes.last().map(SecretKey::public).expect("nodes");
        let proof = admission_proof(&certs, &last);
        assert_eq!(proof.len(), 3, "genesis, admission, delegation");
        let chosen: Vec<Verified> = certs
            .iter()
            .filter(|c| proof.contains(&c.id()))
            .cloned()
            .collect();
        let trust = TrustView::build(&net, &chosen);
        assert!(admitted_nodes(&trust).contains_key(&last));
        // Any other node is not admitted by it.
        assert!(!admitted_nodes(&trust).contains_key(&nodes[0].public()));
    }

    #[test]
    fn a_key_nobody_delegated_has_only_the_admin_chain() {
        let (certs, _) = network(3);
        let proof = admission_proof(&certs, &key(250).public());
        assert_eq!(proof, vec![certs[0].id()]);
    }
}
