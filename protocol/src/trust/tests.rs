//! Trust evaluation tests: authority, revocation with kept history, admin
//! thresholds, and independence from delivery order.

use super::*;
use crate::certificate::{AdminSetChange, Admission, Delegation, Endorsement, Genesis, Revocation};
use crate::change::{ChangePayload, actor_id};
use crate::id::ItemId;
use crate::item::{init_doc, tests::sample_content, write_version};
use crate::key::SecretKey;
use crate::post::Voice;
use proptest::prelude::*;

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn est(n: u8) -> EstablishmentId {
    EstablishmentId([n; 16])
}

/// A network: admins 1 and 2 (threshold 1 unless changed), establishments
/// 10 and 20 (keys 10 and 20) with people 11 and 21.
struct Net {
    id: NetworkId,
    genesis: EnvelopeId,
    certs: Vec<Verified>,
}

impl Net {
    fn new(threshold: u8) -> Self {
        let genesis = Genesis {
            name: "Test network".into(),
            admins: vec![key(1).public(), key(2).public()],
            threshold,
            nonce: [0; 16],
        };
        let id = genesis.network_id();
        let g = Verified::sign(
            Body::Certificate(Certificate::Genesis(genesis)),
            &key(1),
            &id,
            1,
        );
        let mut net = Net {
            id,
            genesis: g.id(),
            certs: vec![g],
        };
        for (e, person, name) in [(10u8, 11u8, "HMP A"), (20, 21, "HMP B")] {
            net.admit(1, e, e, name);
            net.delegate(e, e, person, MemberRole::Person);
        }
        net
    }

    fn cert(&mut self, signer: u8, cert: Certificate) -> Verified {
        let env = Verified::sign(Body::Certificate(cert), &key(signer), &self.id, 2);
        self.certs.push(env.clone());
        env
    }

    fn admit(&mut self, admin: u8, e: u8, k: u8, name: &str) -> Verified {
        self.cert(
            admin,
            Certificate::Admit(Admission {
                establishment: est(e),
                key: key(k).public(),
                name: name.into(),
                setting: Setting::LocalRemand,
                nation: Nation::England,
            }),
        )
    }

    fn delegate(&mut self, e: u8, signer: u8, member: u8, role: MemberRole) -> Verified {
        self.cert(
            signer,
            Certificate::Delegate(Delegation {
                establishment: est(e),
                member: key(member).public(),
                name: format!("key {member}"),
                role,
            }),
        )
    }

    fn revoke_key(&mut self, signer: u8, k: u8, keep: Vec<EnvelopeId>) -> Verified {
        self.cert(
            signer,
            Certificate::Revoke(Revocation {
                target: RevokeTarget::Key(key(k).public()),
                keep,
                reason: "test".into(),
            }),
        )
    }

    fn change(&self, owner: u8, signer: u8, salt: u8) -> Verified {
        let owner = est(owner);
        let signer = key(signer);
        let salt = [salt; 16];
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
            &self.id,
            4,
        )
    }

    fn view(&self) -> TrustView {
        TrustView::build(&self.id, &self.certs)
    }
}

#[test]
fn delegated_and_establishment_keys_act_for_their_own_establishment_only() {
    let net = Net::new(1);
    let view = net.view();
    assert_eq!(view.establishments.len(), 2);
    assert_eq!(view.judge(&net.change(10, 11, 1)), Judgement::Accepted);
    assert_eq!(view.judge(&net.change(10, 10, 1)), Judgement::Accepted);
    assert_eq!(
        view.judge(&net.change(10, 21, 1)),
        Judgement::Rejected(RejectReason::SignerOfAnotherEstablishment)
    );
    assert_eq!(
        view.judge(&net.change(10, 99, 1)),
        Judgement::Pending(PendingReason::SignerNotDelegated)
    );
    assert_eq!(
        view.judge(&net.change(30, 11, 1)),
        Judgement::Pending(PendingReason::EstablishmentNotAdmitted)
    );
}

#[test]
fn a_change_waits_for_its_delegation() {
    let mut net = Net::new(1);
    let change = net.change(10, 12, 1);
    assert_eq!(
        net.view().judge(&change),
        Judgement::Pending(PendingReason::SignerNotDelegated)
    );
    net.delegate(10, 10, 12, MemberRole::Person);
    assert_eq!(net.view().judge(&change), Judgement::Accepted);
}

#[test]
fn admission_by_a_non_admin_has_no_effect() {
    let mut net = Net::new(1);
    let rogue = net.admit(10, 30, 30, "HMP Rogue");
    let view = net.view();
    assert!(!view.establishments.contains_key(&est(30)));
    assert_eq!(
        view.judge(&rogue),
        Judgement::Pending(PendingReason::SignerNotAdmin)
    );
}

#[test]
fn a_leaver_keeps_past_work_and_cannot_add_to_it() {
    let mut net = Net::new(1);
    let before = net.change(10, 11, 1);
    let after = net.change(10, 11, 2);
    net.revoke_key(10, 11, vec![before.id()]);
    let view = net.view();
    assert_eq!(view.judge(&before), Judgement::Accepted);
    assert_eq!(
        view.judge(&after),
        Judgement::Rejected(RejectReason::KeyRevoked)
    );
    // The site carries on with its other keys.
    net.delegate(10, 10, 12, MemberRole::Person);
    assert_eq!(
        net.view().judge(&net.change(10, 12, 3)),
        Judgement::Accepted
    );
}

#[test]
fn a_compromised_key_keeps_nothing_and_the_strictest_revocation_wins() {
    let mut net = Net::new(1);
    let before = net.change(10, 11, 1);
    net.revoke_key(10, 11, vec![before.id()]);
    net.revoke_key(1, 11, vec![]);
    assert_eq!(
        net.view().judge(&before),
        Judgement::Rejected(RejectReason::KeyRevoked)
    );
}

#[test]
fn only_the_right_people_can_revoke() {
    let mut net = Net::new(1);
    // A key of another establishment cannot revoke HMP A's person.
    let wrong = net.revoke_key(20, 11, vec![]);
    let view = net.view();
    assert_eq!(
        view.judge(&wrong),
        Judgement::Pending(PendingReason::SignerCannotRevoke)
    );
    assert!(!view.revoked_keys.contains_key(&key(11).public()));
    assert_eq!(view.judge(&net.change(10, 11, 1)), Judgement::Accepted);
    // A person may revoke their own key.
    net.revoke_key(11, 11, vec![]);
    assert!(net.view().revoked_keys.contains_key(&key(11).public()));
}

#[test]
fn a_removed_establishment_cannot_publish() {
    let mut net = Net::new(1);
    let old = net.change(20, 21, 1);
    // Removal with history kept lists everything under the site's authority.
    let mut keep = vec![old.id()];
    keep.extend(
        net.certs
            .iter()
            .filter(|c| c.signer() == key(20).public())
            .map(Verified::id),
    );
    net.cert(
        1,
        Certificate::Revoke(Revocation {
            target: RevokeTarget::Establishment(est(20)),
            keep,
            reason: "closed".into(),
        }),
    );
    let view = net.view();
    assert!(view.establishments[&est(20)].removed);
    assert_eq!(view.judge(&old), Judgement::Accepted);
    assert_eq!(
        view.judge(&net.change(20, 21, 2)),
        Judgement::Rejected(RejectReason::EstablishmentRemoved)
    );
}

#[test]
fn an_establishment_key_is_rotated_without_stranding_the_site() {
    let mut net = Net::new(1);
    let new_key = net.delegate(10, 10, 13, MemberRole::Establishment);
    let mut kept = vec![new_key.id()];
    kept.extend(
        net.certs
            .iter()
            .filter(|c| c.signer() == key(10).public())
            .map(Verified::id),
    );
    net.revoke_key(13, 10, kept);
    // The new establishment key delegates; the old key's delegations stand.
    net.delegate(10, 13, 14, MemberRole::Person);
    let view = net.view();
    assert!(view.member(&est(10), &key(14).public()).is_some());
    assert_eq!(view.judge(&net.change(10, 11, 1)), Judgement::Accepted);
    assert_eq!(view.judge(&net.change(10, 14, 1)), Judgement::Accepted);
    // The old key can no longer delegate.
    let late = net.delegate(10, 10, 15, MemberRole::Person);
    assert_eq!(
        net.view().judge(&late),
        Judgement::Rejected(RejectReason::KeyRevoked)
    );
}

#[test]
fn a_site_cannot_revoke_another_sites_key_by_delegating_it_first() {
    let mut net = Net::new(1);
    net.delegate(20, 20, 11, MemberRole::Person);
    let attempt = net.revoke_key(20, 11, vec![]);
    let view = net.view();
    assert_eq!(
        view.judge(&attempt),
        Judgement::Pending(PendingReason::SignerCannotRevoke)
    );
    assert_eq!(view.judge(&net.change(10, 11, 1)), Judgement::Accepted);
}

#[test]
fn a_revoked_key_cannot_revoke_others_unless_its_revocation_keeps_that() {
    let mut net = Net::new(1);
    // Key 13 becomes an establishment key of 10, then revokes the old key 10.
    net.delegate(10, 10, 13, MemberRole::Establishment);
    let keep: Vec<EnvelopeId> = net
        .certs
        .iter()
        .filter(|c| c.signer() == key(10).public())
        .map(Verified::id)
        .collect();
    let rotation = net.revoke_key(13, 10, keep);
    // The old key, after the fact, tries to revoke the site lead (11).
    let late = net.revoke_key(10, 11, vec![]);
    let view = net.view();
    assert_eq!(view.judge(&rotation), Judgement::Accepted);
    assert_eq!(
        view.judge(&late),
        Judgement::Rejected(RejectReason::KeyRevoked)
    );
    assert_eq!(view.judge(&net.change(10, 11, 1)), Judgement::Accepted);
}

#[test]
fn two_keys_revoking_each_other_are_both_revoked_and_an_admin_restores_the_site() {
    let mut net = Net::new(1);
    net.delegate(10, 10, 13, MemberRole::Establishment);
    net.revoke_key(13, 10, vec![]);
    net.revoke_key(10, 13, vec![]);
    let view = net.view();
    assert!(view.revoked_keys.contains_key(&key(10).public()));
    assert!(view.revoked_keys.contains_key(&key(13).public()));
    // An admin admits a fresh key for the site, which carries on.
    net.admit(1, 10, 16, "HMP A");
    net.delegate(10, 16, 17, MemberRole::Person);
    assert_eq!(
        net.view().judge(&net.change(10, 17, 1)),
        Judgement::Accepted
    );
}

fn admin_change(
    net: &mut Net,
    signer: u8,
    previous: EnvelopeId,
    admins: &[u8],
    threshold: u8,
) -> Verified {
    net.cert(
        signer,
        Certificate::AdminSet(AdminSetChange {
            previous,
            admins: admins.iter().map(|a| key(*a).public()).collect(),
            threshold,
            keep: vec![],
        }),
    )
}

#[test]
fn one_admin_alone_cannot_change_the_admin_set_when_the_threshold_is_two() {
    let mut net = Net::new(2);
    let genesis = net.genesis;
    let takeover = admin_change(&mut net, 1, genesis, &[1], 1);
    let view = net.view();
    assert_eq!(
        view.judge(&takeover),
        Judgement::Pending(PendingReason::NeedsEndorsements)
    );
    assert_eq!(view.admins.len(), 2);
    // The second admin endorses it: now it takes effect.
    net.cert(
        2,
        Certificate::Endorse(Endorsement {
            target: takeover.id(),
        }),
    );
    let view = net.view();
    assert_eq!(view.judge(&takeover), Judgement::Accepted);
    assert_eq!(view.admins, [key(1).public()].into_iter().collect());
    // Admin 2 is gone: its later admissions have no effect.
    let late = net.admit(2, 40, 40, "HMP Late");
    assert_eq!(
        net.view().judge(&late),
        Judgement::Rejected(RejectReason::AdminRemoved)
    );
}

#[test]
fn competing_admin_set_changes_resolve_the_same_way_everywhere() {
    let mut net = Net::new(1);
    let genesis = net.genesis;
    let a = admin_change(&mut net, 1, genesis, &[1, 3], 1);
    let b = admin_change(&mut net, 2, genesis, &[2, 4], 1);
    let view = net.view();
    let (winner, loser) = if a.id() < b.id() { (a, b) } else { (b, a) };
    assert_eq!(view.judge(&winner), Judgement::Accepted);
    assert_eq!(
        view.judge(&loser),
        Judgement::Rejected(RejectReason::AdminSetForkNotChosen)
    );
    let mut reversed = net.certs.clone();
    reversed.reverse();
    assert_eq!(TrustView::build(&net.id, &reversed), view);
}

/// A scenario exercising every certificate kind, with its changes.
fn scenario() -> (Net, Vec<Verified>) {
    let mut net = Net::new(2);
    let genesis = net.genesis;
    let mut changes = vec![net.change(10, 11, 1), net.change(20, 21, 1)];
    let link = admin_change(&mut net, 1, genesis, &[1, 2, 5], 2);
    net.cert(2, Certificate::Endorse(Endorsement { target: link.id() }));
    net.admit(5, 30, 30, "HMYOI C");
    net.delegate(30, 30, 31, MemberRole::Person);
    changes.push(net.change(30, 31, 1));
    let kept = changes[0].id();
    changes.push(net.change(10, 11, 2));
    net.revoke_key(10, 11, vec![kept]);
    net.delegate(10, 10, 12, MemberRole::Person);
    changes.push(net.change(10, 12, 3));
    changes.push(net.change(10, 21, 4));
    changes.push(net.change(40, 41, 1));
    (net, changes)
}

proptest! {
    #[test]
    fn any_delivery_order_and_any_duplicates_give_the_same_judgements(
        seed in any::<u64>(),
        dups in 0usize..6,
    ) {
        let (net, changes) = scenario();
        let mut all: Vec<Verified> = net.certs.clone();
        all.extend(changes.iter().cloned());
        for i in 0..dups {
            all.push(all[i * 3 % all.len()].clone());
        }
        let mut state = seed | 1;
        for i in (1..all.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            all.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let a = TrustView::build(&net.id, &net.certs);
        let b = TrustView::build(&net.id, &all);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.certificate_judgements(), b.certificate_judgements());
        for c in net.certs.iter().chain(&changes) {
            prop_assert_eq!(a.judge(c), b.judge(c));
        }
    }
}

#[test]
fn the_scenario_judges_as_designed() {
    let (net, changes) = scenario();
    let view = net.view();
    assert_eq!(view.admins.len(), 3);
    let got: Vec<Judgement> = changes.iter().map(|c| view.judge(c)).collect();
    assert_eq!(
        got,
        vec![
            Judgement::Accepted,
            Judgement::Accepted,
            Judgement::Accepted,
            Judgement::Rejected(RejectReason::KeyRevoked),
            Judgement::Accepted,
            Judgement::Rejected(RejectReason::SignerOfAnotherEstablishment),
            Judgement::Pending(PendingReason::EstablishmentNotAdmitted),
        ]
    );
}

/// The revocation fixpoint as defined: every pair of candidates compared,
/// repeated until nothing moves.
fn settle_by_definition(
    candidates: &[Candidate<'_>],
    belongs: &BTreeMap<PublicKey, BTreeSet<EstablishmentId>>,
) -> Vec<State> {
    let attacks = |attacker: &Candidate<'_>, victim: &Candidate<'_>| -> bool {
        if victim.by_admin || attacker.keep.contains(&victim.id) {
            return false;
        }
        match &attacker.revocation.target {
            RevokeTarget::Key(k) => *k == victim.signer,
            RevokeTarget::Establishment(e) => belongs
                .get(&victim.signer)
                .is_some_and(|ests| ests.contains(e)),
        }
    };
    let mut state: Vec<State> = candidates
        .iter()
        .map(|c| {
            if c.by_admin {
                State::Effective
            } else {
                State::Undecided
            }
        })
        .collect();
    loop {
        let mut changed = false;
        for v in 0..candidates.len() {
            if state[v] != State::Undecided {
                continue;
            }
            let attackers: Vec<usize> = (0..candidates.len())
                .filter(|a| attacks(&candidates[*a], &candidates[v]))
                .collect();
            if attackers.iter().any(|a| state[*a] == State::Effective) {
                state[v] = State::Defeated;
                changed = true;
            } else if attackers.iter().all(|a| state[*a] == State::Defeated) {
                state[v] = State::Effective;
                changed = true;
            }
        }
        if !changed {
            return state;
        }
    }
}

proptest! {
    /// The per-signer fixpoint decides every revocation as the definition
    /// does, for any graph of keys revoking keys and establishments, with
    /// any keep lists.
    #[test]
    fn revocations_settle_as_defined(
        raw in proptest::collection::vec(
            (0u8..5, any::<bool>(), 0u8..5, 0u8..10, any::<u16>()),
            1..14,
        ),
        membership in proptest::collection::vec((0u8..5, 0u8..2), 0..8),
    ) {
        let revocations: Vec<Revocation> = raw
            .iter()
            .map(|(_, on_key, target, _, _)| Revocation {
                target: if *on_key {
                    RevokeTarget::Key(key(*target).public())
                } else {
                    RevokeTarget::Establishment(est(*target % 2))
                },
                keep: Vec::new(),
                reason: String::new(),
            })
            .collect();
        let ids: Vec<EnvelopeId> = (0..raw.len()).map(|i| EnvelopeId([i as u8 + 1; 32])).collect();
        let candidates: Vec<Candidate<'_>> = raw
            .iter()
            .zip(&revocations)
            .enumerate()
            .map(|(i, ((signer, _, _, admin, keep_bits), r))| Candidate {
                id: ids[i],
                signer: key(*signer).public(),
                by_admin: *admin == 0,
                revocation: r,
                keep: ids
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| keep_bits & (1 << (j % 16)) != 0 && j % 3 == i % 3)
                    .map(|(_, id)| *id)
                    .collect(),
            })
            .collect();
        let mut belongs: BTreeMap<PublicKey, BTreeSet<EstablishmentId>> = BTreeMap::new();
        for (k, e) in membership {
            belongs.entry(key(k).public()).or_default().insert(est(e));
        }
        let fast = settle_revocations(&candidates, &belongs);
        let slow = settle_by_definition(&candidates, &belongs);
        prop_assert!(fast == slow);
    }
}

fn post(net: &Net, voice: Voice, signer: u8) -> Verified {
    post_at(net, voice, signer, 5)
}

fn post_at(net: &Net, voice: Voice, signer: u8, created_ms: u64) -> Verified {
    use crate::post::{Action, Post, Reply};
    Verified::sign(
        Body::Post(Box::new(Post {
            voice,
            action: Action::Reply(Reply {
                thread: EnvelopeId([9; 32]),
                quoting: None,
                body: "We do it this way.".into(),
            }),
        })),
        &key(signer),
        &net.id,
        created_ms,
    )
}

#[test]
fn a_site_lead_delegates_clinicians_who_post_but_do_not_publish() {
    let mut net = Net::new(1);
    // Person 11 (a site lead of 10) adds clinician 12 without the
    // establishment key.
    let d = net.delegate(10, 11, 12, MemberRole::Clinician);
    let view = net.view();
    assert_eq!(view.judge(&d), Judgement::Accepted);
    assert_eq!(
        view.role_of(&est(10), &key(12).public()),
        Some(MemberRole::Clinician)
    );
    let here = Voice::Establishment(est(10));
    assert_eq!(view.judge(&post(&net, here, 12)), Judgement::Accepted);
    assert_eq!(
        view.judge(&net.change(10, 12, 1)),
        Judgement::Rejected(RejectReason::RoleMayNotPublish)
    );
    // A clinician delegates nothing, and a lead cannot make a person.
    let c = net.delegate(10, 12, 13, MemberRole::Clinician);
    let p = net.delegate(10, 11, 14, MemberRole::Person);
    let view = net.view();
    assert_eq!(
        view.judge(&c),
        Judgement::Pending(PendingReason::SignerNotEstablishmentKey)
    );
    assert_eq!(
        view.judge(&p),
        Judgement::Pending(PendingReason::SignerNotEstablishmentKey)
    );
    // Posting for another site, or as a node, has no effect.
    assert_eq!(
        view.judge(&post(&net, Voice::Establishment(est(20)), 12)),
        Judgement::Rejected(RejectReason::SignerOfAnotherEstablishment)
    );
    net.delegate(10, 10, 15, MemberRole::Device);
    assert_eq!(
        net.view().judge(&post(&net, here, 15)),
        Judgement::Rejected(RejectReason::RoleMayNotPost)
    );
}

#[test]
fn a_lead_removes_a_clinician_and_their_past_posts_stay() {
    let mut net = Net::new(1);
    net.delegate(10, 11, 12, MemberRole::Clinician);
    let here = Voice::Establishment(est(10));
    let before = post(&net, here, 12);
    let r = net.revoke_key(11, 12, vec![before.id()]);
    let after = post_at(&net, here, 12, 6);
    let view = net.view();
    assert_eq!(view.judge(&r), Judgement::Accepted);
    assert_eq!(view.judge(&before), Judgement::Accepted);
    assert_eq!(
        view.judge(&after),
        Judgement::Rejected(RejectReason::KeyRevoked)
    );
    // A lead of another site cannot, and no lead may revoke a wider key.
    let mut net = Net::new(1);
    net.delegate(10, 11, 12, MemberRole::Clinician);
    let other = net.revoke_key(21, 12, vec![]);
    net.delegate(10, 10, 16, MemberRole::Person);
    let peer = net.revoke_key(11, 16, vec![]);
    let view = net.view();
    assert_eq!(
        view.judge(&other),
        Judgement::Pending(PendingReason::SignerCannotRevoke)
    );
    assert_eq!(
        view.judge(&peer),
        Judgement::Pending(PendingReason::SignerCannotRevoke)
    );
}

#[test]
fn only_admins_speak_for_the_network() {
    use crate::post::{Action, Post};
    let net = Net::new(1);
    let hide = |signer: u8| {
        Verified::sign(
            Body::Post(Box::new(Post {
                voice: Voice::Admin,
                action: Action::Hide {
                    post: EnvelopeId([9; 32]),
                    reason: "Identifying detail".into(),
                },
            })),
            &key(signer),
            &net.id,
            6,
        )
    };
    let view = net.view();
    assert_eq!(view.judge(&hide(1)), Judgement::Accepted);
    assert_eq!(
        view.judge(&hide(11)),
        Judgement::Pending(PendingReason::SignerNotAdmin)
    );
}
