//! Trust evaluation: which certificates and changes take effect.
//!
//! Validity is a pure function of the *set* of envelopes a node holds, never
//! of the order they arrived in or of any clock. [`TrustView::build`] takes
//! every verified certificate and works out, in fixed phases:
//!
//! 1. the admin chain: from the genesis, each admin-set change that names
//!    the current head and carries the signatures (its signer plus
//!    endorsements) of a threshold of the current admins; when two qualify,
//!    the lowest envelope id wins on every node;
//! 2. admissions by admins (an admin removed from the set keeps only the
//!    certificates its removal listed);
//! 3. each establishment's keys: admitted keys, and keys delegated with the
//!    establishment role by one of them;
//! 4. revocations, by an admin, by a key of the same establishment, or by
//!    the key itself. A revoked key's envelopes stay valid only if every
//!    revocation of it lists them (so "compromised, keep nothing" beats
//!    "left, keep everything");
//! 5. the delegations still in force, and so who may change which items.
//!
//! [`TrustView::judge`] then decides any envelope. An envelope whose
//! authority is not (yet) established is [`Judgement::Pending`]: kept, and
//! re-judged whenever the set grows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::certificate::{AdminSetChange, Certificate, Delegation, MemberRole, RevokeTarget};
use crate::envelope::{Body, Verified};
use crate::id::{EnvelopeId, EstablishmentId, NetworkId};
use crate::key::PublicKey;
use crate::post::Voice;
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
    /// The signer has no delegation from the item's establishment.
    SignerNotDelegated,
    /// A delegation signed by a key that is not (yet) one of the establishment's keys.
    SignerNotEstablishmentKey,
    /// A revocation by a key without the authority for it.
    SignerCannotRevoke,
    /// An admin-set change without a threshold of signatures yet.
    NeedsEndorsements,
    /// An admin-set change that follows a link not (yet) in the chain.
    PreviousAdminSetUnknown,
}

/// Why an envelope has no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// A second genesis for a network that already has one.
    DuplicateGenesis,
    /// The signer acts for another establishment, not the item's owner.
    SignerOfAnotherEstablishment,
    /// The signing key was revoked and this envelope is not among those kept.
    KeyRevoked,
    /// The establishment was removed and this envelope is not among those kept.
    EstablishmentRemoved,
    /// The signer was removed from the admin set and this certificate is not kept.
    AdminRemoved,
    /// Another admin-set change following the same link was chosen.
    AdminSetForkNotChosen,
    /// A clinician's key signed a change to a library item: clinicians
    /// post, site leads publish.
    RoleMayNotPublish,
    /// A node's own key signed a post: posts are signed by people.
    RoleMayNotPost,
}

impl std::fmt::Display for PendingReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PendingReason::NoGenesis => "the network's genesis certificate has not arrived",
            PendingReason::SignerNotAdmin => "the signer is not a network admin",
            PendingReason::EstablishmentNotAdmitted => "the establishment is not admitted",
            PendingReason::SignerNotDelegated => {
                "the signer's key has no delegation from the item's establishment"
            }
            PendingReason::SignerNotEstablishmentKey => {
                "the delegation is not signed by a key of its establishment"
            }
            PendingReason::SignerCannotRevoke => "the signer has no authority to revoke that",
            PendingReason::NeedsEndorsements => {
                "the admin-set change has fewer admin signatures than the threshold"
            }
            PendingReason::PreviousAdminSetUnknown => {
                "the admin-set change follows a link that is not in the chain"
            }
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
            RejectReason::KeyRevoked => {
                "signed by a revoked key, and not among the envelopes it kept"
            }
            RejectReason::EstablishmentRemoved => {
                "the establishment was removed, and this is not among the envelopes it kept"
            }
            RejectReason::AdminRemoved => {
                "signed by a removed admin, and not among the certificates it kept"
            }
            RejectReason::AdminSetForkNotChosen => {
                "another admin-set change following the same link was chosen"
            }
            RejectReason::RoleMayNotPublish => {
                "signed by a clinician's key, which may post but not publish library items"
            }
            RejectReason::RoleMayNotPost => {
                "signed by a node's key, which may not post: posts are signed by people"
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

impl std::fmt::Display for Judgement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Judgement::Accepted => f.write_str("accepted"),
            Judgement::Pending(r) => write!(f, "pending: {r}"),
            Judgement::Rejected(r) => write!(f, "rejected: {r}"),
        }
    }
}

/// An admitted establishment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Establishment {
    /// Its stable id.
    pub id: EstablishmentId,
    /// Its name.
    pub name: String,
    /// Setting type.
    pub setting: Setting,
    /// Nation.
    pub nation: Nation,
    /// Its establishment keys (admitted or delegated with that role), revoked ones included.
    pub keys: BTreeSet<PublicKey>,
    /// Whether the admins removed it.
    pub removed: bool,
}

/// A key delegated by an establishment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The member's key.
    pub key: PublicKey,
    /// The establishment it acts for.
    pub establishment: EstablishmentId,
    /// Who or what holds it.
    pub name: String,
    /// Person, device or establishment key.
    pub role: MemberRole,
    /// The delegation certificate.
    pub delegated_by: EnvelopeId,
    /// Whether the key has been revoked.
    pub revoked: bool,
}

/// A revocation in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Revoked {
    /// Envelopes that stay valid (the intersection over every revocation).
    pub keep: BTreeSet<EnvelopeId>,
    /// The revocation certificates.
    pub by: BTreeSet<EnvelopeId>,
    /// Their reasons.
    pub reasons: Vec<String>,
}

/// The trust state implied by a set of certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrustView {
    /// The network's name, once its genesis is known.
    pub network_name: Option<String>,
    /// The current admin keys.
    pub admins: BTreeSet<PublicKey>,
    /// Signatures needed to change the admin set.
    pub threshold: u8,
    /// The admin chain: genesis, then each admin-set change in force.
    pub admin_chain: Vec<EnvelopeId>,
    /// Admitted establishments.
    pub establishments: BTreeMap<EstablishmentId, Establishment>,
    /// Delegations in force, by (establishment, member key).
    pub members: BTreeMap<(EstablishmentId, PublicKey), Member>,
    /// Revoked keys.
    pub revoked_keys: BTreeMap<PublicKey, Revoked>,
    /// Removed establishments.
    pub removed: BTreeMap<EstablishmentId, Revoked>,
    /// Admins removed from the set, with the certificates of theirs kept.
    pub removed_admins: BTreeMap<PublicKey, BTreeSet<EnvelopeId>>,
    #[serde(skip)]
    certs: BTreeMap<EnvelopeId, Judgement>,
    #[serde(skip)]
    ever_admins: BTreeSet<PublicKey>,
}

struct Cert<'a> {
    id: EnvelopeId,
    signer: PublicKey,
    created_ms: u64,
    cert: &'a Certificate,
}

/// A revocation whose signer had the authority for it, before any
/// revocation takes effect.
struct Candidate<'c> {
    id: EnvelopeId,
    signer: PublicKey,
    by_admin: bool,
    revocation: &'c crate::certificate::Revocation,
    keep: BTreeSet<EnvelopeId>,
}

/// Where a revocation candidate stands in the fixpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Undecided,
    Effective,
    Defeated,
}

/// Decides which revocation candidates take effect.
///
/// Candidate `a` attacks candidate `v` when `a` revokes `v`'s signer (or
/// removes an establishment `v`'s signer belongs to), `a` does not keep
/// `v`, and `v` is not an admin's. A candidate with an effective attacker
/// is defeated; one whose attackers are all defeated takes effect; admins'
/// take effect at once. What stays undecided (a cycle) takes effect.
///
/// Every candidate signed by one key has the same attackers but for those
/// that keep it, so the work is done per signer: each signer's attackers
/// are counted (effective, not defeated), and a signer's undecided
/// candidates are looked at again only when a count moves in a way that
/// can decide one. The cost is linear in the candidates, the signers'
/// attacker lists and the keep lists, where comparing every pair of
/// candidates was quadratic (a key signing thousands of revocations of
/// itself stalled a node).
fn settle_revocations(
    candidates: &[Candidate<'_>],
    belongs: &BTreeMap<PublicKey, BTreeSet<EstablishmentId>>,
) -> Vec<State> {
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
    // Victim signers: the keys that signed a candidate an attack can defeat.
    let mut signers: BTreeMap<PublicKey, usize> = BTreeMap::new();
    let mut signer_keys: Vec<PublicKey> = Vec::new();
    let mut pending: Vec<Vec<usize>> = Vec::new();
    for (v, c) in candidates.iter().enumerate() {
        if c.by_admin {
            continue;
        }
        let s = *signers.entry(c.signer).or_insert_with(|| {
            signer_keys.push(c.signer);
            pending.push(Vec::new());
            signer_keys.len() - 1
        });
        pending[s].push(v);
    }
    // Victim signers by the establishments they belong to.
    let mut signers_of_est: BTreeMap<EstablishmentId, Vec<usize>> = BTreeMap::new();
    for (s, key) in signer_keys.iter().enumerate() {
        for e in belongs.get(key).into_iter().flatten() {
            signers_of_est.entry(*e).or_default().push(s);
        }
    }
    // Which victim signers each candidate attacks.
    let targets: Vec<Vec<usize>> = candidates
        .iter()
        .map(|c| match &c.revocation.target {
            RevokeTarget::Key(k) => signers.get(k).map(|s| vec![*s]).unwrap_or_default(),
            RevokeTarget::Establishment(e) => signers_of_est.get(e).cloned().unwrap_or_default(),
        })
        .collect();
    let by_id: BTreeMap<EnvelopeId, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    // Per signer: attackers in effect, attackers not defeated.
    let mut effective = vec![0usize; signers.len()];
    let mut standing = vec![0usize; signers.len()];
    // Per victim: the attackers that keep it (so do not attack it).
    let mut keepers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (a, c) in candidates.iter().enumerate() {
        for s in &targets[a] {
            standing[*s] += 1;
            if state[a] == State::Effective {
                effective[*s] += 1;
            }
        }
        for kept in &c.keep {
            if let Some(&v) = by_id.get(kept)
                && !candidates[v].by_admin
                && targets[a].contains(&signers[&candidates[v].signer])
            {
                keepers.entry(v).or_default().push(a);
            }
        }
    }
    // A signer is looked at again when a count falls to where one of its
    // candidates could take effect: at most as many as keep one of them.
    let mut most_kept = vec![0usize; signers.len()];
    for (v, ks) in &keepers {
        let s = signers[&candidates[*v].signer];
        most_kept[s] = most_kept[s].max(ks.len());
    }
    let mut queue: std::collections::VecDeque<usize> = (0..signers.len()).collect();
    let mut queued = vec![true; signers.len()];
    while let Some(s) = queue.pop_front() {
        queued[s] = false;
        let mut decided = Vec::new();
        pending[s].retain(|&v| {
            let (mut kept_effective, mut kept_standing) = (0, 0);
            for a in keepers.get(&v).into_iter().flatten() {
                match state[*a] {
                    State::Effective => {
                        kept_effective += 1;
                        kept_standing += 1;
                    }
                    State::Undecided => kept_standing += 1,
                    State::Defeated => {}
                }
            }
            let now = if effective[s] > kept_effective {
                State::Defeated
            } else if standing[s] == kept_standing {
                State::Effective
            } else {
                return true;
            };
            decided.push((v, now));
            false
        });
        for (v, now) in decided {
            state[v] = now;
            for t in &targets[v] {
                let wake = match now {
                    State::Effective => {
                        effective[*t] += 1;
                        true
                    }
                    State::Defeated => {
                        standing[*t] -= 1;
                        standing[*t] <= most_kept[*t]
                    }
                    State::Undecided => false,
                };
                if wake && !queued[*t] && !pending[*t].is_empty() {
                    queued[*t] = true;
                    queue.push_back(*t);
                }
            }
        }
    }
    state
}

impl TrustView {
    /// Works out the trust state from every certificate held, in any order.
    pub fn build<'a>(
        network: &NetworkId,
        envelopes: impl IntoIterator<Item = &'a Verified>,
    ) -> Self {
        let mut certs: Vec<Cert<'_>> = envelopes
            .into_iter()
            .filter(|e| e.network() == *network)
            .filter_map(|e| match e.body() {
                Body::Certificate(cert) => Some(Cert {
                    id: e.id(),
                    signer: e.signer(),
                    created_ms: e.created_ms(),
                    cert,
                }),
                Body::Change(_) | Body::Post(_) | Body::Record(_) | Body::Unread { .. } => None,
            })
            .collect();
        // Sorted by id: every tie-break below is independent of arrival order.
        certs.sort_by_key(|c| c.id);
        certs.dedup_by_key(|c| c.id);
        let mut view = TrustView::default();
        let Some(genesis) = certs.iter().find_map(|c| match c.cert {
            Certificate::Genesis(g) if g.network_id() == *network => Some((c.id, g)),
            _ => None,
        }) else {
            for c in &certs {
                view.certs
                    .insert(c.id, Judgement::Pending(PendingReason::NoGenesis));
            }
            return view;
        };
        view.network_name = Some(genesis.1.name.clone());
        view.admin_chain.push(genesis.0);
        view.admins = genesis.1.admins.iter().copied().collect();
        view.threshold = genesis.1.threshold;
        view.ever_admins = view.admins.clone();
        view.follow_admin_chain(&certs);
        view.judge_admin_certificates(&certs);
        view.admit(&certs);
        let pre_keys = view.establishment_keys(&certs, false);
        view.revoke(&certs, &pre_keys);
        let keys = view.establishment_keys(&certs, true);
        view.delegate(&certs, &keys);
        view
    }

    fn follow_admin_chain(&mut self, certs: &[Cert<'_>]) {
        let mut endorsers: BTreeMap<EnvelopeId, BTreeSet<PublicKey>> = BTreeMap::new();
        for c in certs {
            if let Certificate::Endorse(e) = c.cert {
                endorsers.entry(e.target).or_default().insert(c.signer);
            }
        }
        // Links by the link they follow: each step of the chain looks only
        // at the links that follow its head, and each head is reached once.
        let mut links: BTreeMap<EnvelopeId, Vec<(&Cert<'_>, &AdminSetChange)>> = BTreeMap::new();
        for c in certs {
            if let Certificate::AdminSet(change) = c.cert {
                links.entry(change.previous).or_default().push((c, change));
            }
        }
        loop {
            let head = *self.admin_chain.last().unwrap_or(&EnvelopeId([0; 32]));
            let Some(followers) = links.remove(&head) else {
                break;
            };
            let mut qualifying = Vec::new();
            for (link, change) in followers {
                let mut signers: BTreeSet<PublicKey> =
                    endorsers.get(&link.id).cloned().unwrap_or_default();
                signers.insert(link.signer);
                let count = signers.intersection(&self.admins).count();
                if count >= usize::from(self.threshold) {
                    qualifying.push((link.id, change));
                } else {
                    self.certs.insert(
                        link.id,
                        Judgement::Pending(PendingReason::NeedsEndorsements),
                    );
                }
            }
            let Some(&(chosen, change)) = qualifying.iter().min_by_key(|(id, _)| *id) else {
                break;
            };
            for (id, _) in &qualifying {
                if *id != chosen {
                    self.certs.insert(
                        *id,
                        Judgement::Rejected(RejectReason::AdminSetForkNotChosen),
                    );
                }
            }
            let next: BTreeSet<PublicKey> = change.admins.iter().copied().collect();
            for gone in self.admins.difference(&next) {
                self.removed_admins
                    .insert(*gone, change.keep.iter().copied().collect());
            }
            for back in &next {
                self.removed_admins.remove(back);
            }
            self.admins = next;
            self.threshold = change.threshold;
            self.ever_admins.extend(self.admins.iter().copied());
            self.admin_chain.push(chosen);
            self.certs.insert(chosen, Judgement::Accepted);
        }
    }

    /// Whether `signer` may sign admin certificates, for the certificate `id`.
    fn admin_ok(&self, signer: &PublicKey, id: &EnvelopeId) -> Judgement {
        if self.admins.contains(signer) {
            Judgement::Accepted
        } else if let Some(keep) = self.removed_admins.get(signer) {
            if keep.contains(id) {
                Judgement::Accepted
            } else {
                Judgement::Rejected(RejectReason::AdminRemoved)
            }
        } else {
            Judgement::Pending(PendingReason::SignerNotAdmin)
        }
    }

    fn judge_admin_certificates(&mut self, certs: &[Cert<'_>]) {
        for c in certs {
            let j = match c.cert {
                Certificate::Genesis(_) => {
                    if self.admin_chain.first() == Some(&c.id) {
                        Judgement::Accepted
                    } else {
                        Judgement::Rejected(RejectReason::DuplicateGenesis)
                    }
                }
                Certificate::AdminSet(_) => match self.certs.get(&c.id) {
                    Some(j) => *j,
                    None => Judgement::Pending(PendingReason::PreviousAdminSetUnknown),
                },
                Certificate::Endorse(_) => {
                    if self.ever_admins.contains(&c.signer) {
                        Judgement::Accepted
                    } else {
                        Judgement::Pending(PendingReason::SignerNotAdmin)
                    }
                }
                _ => continue,
            };
            self.certs.insert(c.id, j);
        }
    }

    fn admit(&mut self, certs: &[Cert<'_>]) {
        let mut admissions: Vec<&Cert<'_>> = Vec::new();
        for c in certs {
            if let Certificate::Admit(_) = c.cert {
                let j = self.admin_ok(&c.signer, &c.id);
                self.certs.insert(c.id, j);
                if j == Judgement::Accepted {
                    admissions.push(c);
                }
            }
        }
        // The latest claimed admission names the establishment; ties by id.
        admissions.sort_by_key(|c| (c.created_ms, c.id));
        for c in admissions {
            if let Certificate::Admit(a) = c.cert {
                let e = self
                    .establishments
                    .entry(a.establishment)
                    .or_insert_with(|| Establishment {
                        id: a.establishment,
                        name: a.name.clone(),
                        setting: a.setting,
                        nation: a.nation,
                        keys: BTreeSet::new(),
                        removed: false,
                    });
                e.name = a.name.clone();
                e.setting = a.setting;
                e.nation = a.nation;
                e.keys.insert(a.key);
            }
        }
    }

    /// Whether an envelope `id` signed by `key` for establishment `est`
    /// survives the revocations.
    fn authority_ok(&self, key: &PublicKey, est: &EstablishmentId, id: &EnvelopeId) -> Judgement {
        if let Some(r) = self.removed.get(est)
            && !r.keep.contains(id)
        {
            return Judgement::Rejected(RejectReason::EstablishmentRemoved);
        }
        if let Some(r) = self.revoked_keys.get(key)
            && !r.keep.contains(id)
        {
            return Judgement::Rejected(RejectReason::KeyRevoked);
        }
        Judgement::Accepted
    }

    /// Each establishment's keys: admitted ones, then (to a fixpoint) keys
    /// delegated with the establishment role by one of them. With
    /// `revocations`, a delegation counts only if its signer's authority
    /// survives them.
    fn establishment_keys(
        &self,
        certs: &[Cert<'_>],
        revocations: bool,
    ) -> BTreeMap<EstablishmentId, BTreeSet<PublicKey>> {
        let mut keys: BTreeMap<EstablishmentId, BTreeSet<PublicKey>> = self
            .establishments
            .iter()
            .map(|(id, e)| (*id, e.keys.clone()))
            .collect();
        // Establishment-key delegations by their signer, so each key's
        // delegations are looked at once, when the key is found to be one
        // of its establishment's (linear, where a pass over every
        // certificate per level of delegation was not).
        let mut by_signer: BTreeMap<PublicKey, Vec<(&Cert<'_>, &Delegation)>> = BTreeMap::new();
        for c in certs {
            if let Certificate::Delegate(d) = c.cert
                && d.role == MemberRole::Establishment
            {
                by_signer.entry(c.signer).or_default().push((c, d));
            }
        }
        let mut found: std::collections::VecDeque<(EstablishmentId, PublicKey)> = keys
            .iter()
            .flat_map(|(est, set)| set.iter().map(|k| (*est, *k)))
            .collect();
        while let Some((est, key)) = found.pop_front() {
            for (c, d) in by_signer.get(&key).into_iter().flatten() {
                if d.establishment != est
                    || (revocations
                        && self.authority_ok(&c.signer, &est, &c.id) != Judgement::Accepted)
                {
                    continue;
                }
                if keys.get_mut(&est).is_some_and(|set| set.insert(d.member)) {
                    found.push_back((est, d.member));
                }
            }
        }
        keys
    }

    fn revoke(
        &mut self,
        certs: &[Cert<'_>],
        keys: &BTreeMap<EstablishmentId, BTreeSet<PublicKey>>,
    ) {
        // Which establishments each key belongs to, before revocations.
        let mut belongs: BTreeMap<PublicKey, BTreeSet<EstablishmentId>> = BTreeMap::new();
        for (est, set) in keys {
            for k in set {
                belongs.entry(*k).or_default().insert(*est);
            }
        }
        // Site leads: establishment keys, and person keys they delegated.
        let mut leads = keys.clone();
        for c in certs {
            if let Certificate::Delegate(d) = c.cert
                && d.role == MemberRole::Person
                && keys
                    .get(&d.establishment)
                    .is_some_and(|s| s.contains(&c.signer))
            {
                leads.entry(d.establishment).or_default().insert(d.member);
            }
        }
        // Keys that hold a role wider than a clinician's somewhere.
        let mut wider: BTreeSet<PublicKey> = belongs.keys().copied().collect();
        for c in certs {
            let Certificate::Delegate(d) = c.cert else {
                continue;
            };
            let by_key = keys
                .get(&d.establishment)
                .is_some_and(|s| s.contains(&c.signer));
            let by_lead = d.role == MemberRole::Clinician
                && leads
                    .get(&d.establishment)
                    .is_some_and(|s| s.contains(&c.signer));
            if by_key || by_lead {
                belongs.entry(d.member).or_default().insert(d.establishment);
            }
            if by_key && d.role != MemberRole::Clinician {
                wider.insert(d.member);
            }
        }
        // Candidates: revocations whose signer had the authority for them,
        // judged before any revocation takes effect.
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        for c in certs {
            let Certificate::Revoke(r) = c.cert else {
                continue;
            };
            let by_admin = self.admin_ok(&c.signer, &c.id) == Judgement::Accepted;
            let allowed = match &r.target {
                RevokeTarget::Establishment(_) => by_admin,
                // An establishment key may revoke a key only if every
                // establishment that key acts for is its own: no site can
                // revoke another site's key by delegating it first.
                // A site lead (a person key) may revoke a key that is only
                // a clinician's, of its own establishment alone.
                RevokeTarget::Key(k) => {
                    let of_every = |holders: &BTreeMap<EstablishmentId, BTreeSet<PublicKey>>| {
                        belongs.get(k).is_some_and(|ests| {
                            !ests.is_empty()
                                && ests
                                    .iter()
                                    .all(|e| holders.get(e).is_some_and(|s| s.contains(&c.signer)))
                        })
                    };
                    by_admin
                        || *k == c.signer
                        || of_every(keys)
                        || (!wider.contains(k) && of_every(&leads))
                }
            };
            if !allowed {
                self.certs
                    .insert(c.id, Judgement::Pending(PendingReason::SignerCannotRevoke));
                continue;
            }
            candidates.push(Candidate {
                id: c.id,
                signer: c.signer,
                by_admin,
                revocation: r,
                keep: r.keep.iter().copied().collect(),
            });
        }
        // A revocation signed by a key that is itself revoked counts only if
        // the revocation of its signer keeps it. Resolved as a fixpoint from
        // the revocations nobody contests (admins' are never contested);
        // what stays undecided is a cycle (two keys revoking each other),
        // and then both take effect: an admin re-admits the site.
        let state = settle_revocations(&candidates, &belongs);
        let mut keep_key: BTreeMap<PublicKey, Revoked> = BTreeMap::new();
        let mut keep_est: BTreeMap<EstablishmentId, Revoked> = BTreeMap::new();
        for (c, s) in candidates.iter().zip(&state) {
            if *s == State::Defeated {
                self.certs
                    .insert(c.id, Judgement::Rejected(RejectReason::KeyRevoked));
                continue;
            }
            self.certs.insert(c.id, Judgement::Accepted);
            let entry = match &c.revocation.target {
                RevokeTarget::Key(k) => keep_key.entry(*k).or_insert_with(|| Revoked {
                    keep: c.keep.clone(),
                    ..Revoked::default()
                }),
                RevokeTarget::Establishment(e) => keep_est.entry(*e).or_insert_with(|| Revoked {
                    keep: c.keep.clone(),
                    ..Revoked::default()
                }),
            };
            entry.keep = entry.keep.intersection(&c.keep).copied().collect();
            entry.by.insert(c.id);
            if !c.revocation.reason.is_empty() {
                entry.reasons.push(c.revocation.reason.clone());
            }
        }
        self.revoked_keys = keep_key;
        self.removed = keep_est;
        for (id, e) in self.establishments.iter_mut() {
            e.removed = self.removed.contains_key(id);
        }
    }

    fn delegate(
        &mut self,
        certs: &[Cert<'_>],
        keys: &BTreeMap<EstablishmentId, BTreeSet<PublicKey>>,
    ) {
        for (id, set) in keys {
            if let Some(e) = self.establishments.get_mut(id) {
                e.keys = set.clone();
            }
        }
        // Several delegations of one key: the latest claimed names it; ties by id.
        let mut delegations: Vec<&Cert<'_>> = certs
            .iter()
            .filter(|c| matches!(c.cert, Certificate::Delegate(_)))
            .collect();
        // Clinicians' delegations last: a person key in force (found by
        // the others) may sign them.
        let clinician = |c: &Cert<'_>| matches!(c.cert, Certificate::Delegate(d) if d.role == MemberRole::Clinician);
        delegations.sort_by_key(|c| (clinician(c), c.created_ms, c.id));
        for c in delegations {
            let Certificate::Delegate(d) = c.cert else {
                continue;
            };
            let by_establishment_key = keys
                .get(&d.establishment)
                .is_some_and(|s| s.contains(&c.signer));
            let by_lead = d.role == MemberRole::Clinician
                && self
                    .members
                    .get(&(d.establishment, c.signer))
                    .is_some_and(|m| m.role == MemberRole::Person);
            let j = if !self.establishments.contains_key(&d.establishment) {
                Judgement::Pending(PendingReason::EstablishmentNotAdmitted)
            } else if !by_establishment_key && !by_lead {
                Judgement::Pending(PendingReason::SignerNotEstablishmentKey)
            } else {
                self.authority_ok(&c.signer, &d.establishment, &c.id)
            };
            self.certs.insert(c.id, j);
            // A clinician's delegation never narrows a key that already
            // holds a wider role there.
            let narrows = d.role == MemberRole::Clinician
                && self
                    .members
                    .get(&(d.establishment, d.member))
                    .is_some_and(|m| m.role != MemberRole::Clinician);
            if j == Judgement::Accepted && !narrows {
                self.members.insert(
                    (d.establishment, d.member),
                    Member {
                        key: d.member,
                        establishment: d.establishment,
                        name: d.name.clone(),
                        role: d.role,
                        delegated_by: c.id,
                        revoked: self.revoked_keys.contains_key(&d.member),
                    },
                );
            }
        }
    }

    /// Whether this view has the network's genesis.
    pub fn has_genesis(&self) -> bool {
        !self.admin_chain.is_empty()
    }

    /// The delegation of `member` by `establishment`, if in force.
    pub fn member(&self, establishment: &EstablishmentId, member: &PublicKey) -> Option<&Member> {
        self.members.get(&(*establishment, *member))
    }

    /// Whether `key` is one of `establishment`'s keys (admitted, or
    /// delegated in any role), revoked or not.
    pub fn is_key_of(&self, establishment: &EstablishmentId, key: &PublicKey) -> bool {
        self.members.contains_key(&(*establishment, *key))
            || self
                .establishments
                .get(establishment)
                .is_some_and(|e| e.keys.contains(key))
    }

    /// Every establishment `key` belongs to.
    pub fn establishments_of(&self, key: &PublicKey) -> Vec<&Establishment> {
        self.establishments
            .values()
            .filter(|e| self.is_key_of(&e.id, key))
            .collect()
    }

    /// Whether `key` may act now for `establishment` (a key of it, not
    /// revoked, the establishment not removed).
    pub fn can_act(&self, establishment: &EstablishmentId, key: &PublicKey) -> bool {
        self.is_key_of(establishment, key)
            && !self.revoked_keys.contains_key(key)
            && !self.removed.contains_key(establishment)
    }

    /// Decides a change envelope from its facts: id, signer, owning establishment.
    pub fn judge_change(
        &self,
        id: &EnvelopeId,
        signer: &PublicKey,
        owner: &EstablishmentId,
    ) -> Judgement {
        if !self.has_genesis() {
            return Judgement::Pending(PendingReason::NoGenesis);
        }
        if !self.establishments.contains_key(owner) {
            return Judgement::Pending(PendingReason::EstablishmentNotAdmitted);
        }
        if !self.is_key_of(owner, signer) {
            return self.not_a_key_of_it(signer);
        }
        if self.role_of(owner, signer) == Some(MemberRole::Clinician) {
            return Judgement::Rejected(RejectReason::RoleMayNotPublish);
        }
        self.authority_ok(signer, owner, id)
    }

    /// The judgement of an envelope for an establishment `signer` is not a
    /// key of: refused if it acts for another, waiting if for none yet.
    fn not_a_key_of_it(&self, signer: &PublicKey) -> Judgement {
        if self
            .establishments
            .keys()
            .any(|e| self.is_key_of(e, signer))
        {
            Judgement::Rejected(RejectReason::SignerOfAnotherEstablishment)
        } else {
            Judgement::Pending(PendingReason::SignerNotDelegated)
        }
    }

    /// The role `key` holds at `establishment`: an admitted or
    /// establishment-role key is [`MemberRole::Establishment`], a delegated
    /// one has its delegation's role; `None` if it is not a key of it.
    pub fn role_of(&self, establishment: &EstablishmentId, key: &PublicKey) -> Option<MemberRole> {
        if self
            .establishments
            .get(establishment)
            .is_some_and(|e| e.keys.contains(key))
        {
            return Some(MemberRole::Establishment);
        }
        self.members.get(&(*establishment, *key)).map(|m| m.role)
    }

    /// Whether `key` may lead at `establishment` now (publish, moderate
    /// its staff's posts): an establishment or person key, in force.
    pub fn is_lead_of(&self, establishment: &EstablishmentId, key: &PublicKey) -> bool {
        matches!(
            self.role_of(establishment, key),
            Some(MemberRole::Establishment | MemberRole::Person)
        ) && self.can_act(establishment, key)
    }

    /// Whether `key` is a network admin now.
    pub fn is_admin(&self, key: &PublicKey) -> bool {
        self.admins.contains(key)
    }

    /// Decides a post from its facts: id, signer, and whom it speaks for.
    /// A post for an establishment is in effect while its signer is a key
    /// of that establishment in a role that posts (a person, clinician or
    /// establishment key, never a node's), within the revocations; one for
    /// the admins, while its signer is (or, kept, was) an admin. What a
    /// post does to other posts (an edit by someone else has no effect, a
    /// hide needs a lead of the author's site) is decided from the set of
    /// posts in effect, by the node's forum.
    pub fn judge_post(&self, id: &EnvelopeId, signer: &PublicKey, voice: &Voice) -> Judgement {
        if !self.has_genesis() {
            return Judgement::Pending(PendingReason::NoGenesis);
        }
        let est = match voice {
            Voice::Admin => return self.admin_ok(signer, id),
            Voice::Establishment(e) => e,
        };
        if !self.establishments.contains_key(est) {
            return Judgement::Pending(PendingReason::EstablishmentNotAdmitted);
        }
        match self.role_of(est, signer) {
            None => self.not_a_key_of_it(signer),
            Some(MemberRole::Device) => Judgement::Rejected(RejectReason::RoleMayNotPost),
            Some(_) => self.authority_ok(signer, est, id),
        }
    }

    /// Decides a record: its signer must be a key of the establishment it
    /// speaks in, in a role that may sign it (a key that publishes for an
    /// approval, a request to read or the rules; any member of staff for an
    /// acknowledgement; never a node's key), within revocations.
    pub fn judge_record(
        &self,
        id: &EnvelopeId,
        signer: &PublicKey,
        establishment: &EstablishmentId,
        needs_publisher: bool,
    ) -> Judgement {
        if !self.has_genesis() {
            return Judgement::Pending(PendingReason::NoGenesis);
        }
        if !self.establishments.contains_key(establishment) {
            return Judgement::Pending(PendingReason::EstablishmentNotAdmitted);
        }
        match self.role_of(establishment, signer) {
            None => self.not_a_key_of_it(signer),
            Some(MemberRole::Device) => Judgement::Rejected(RejectReason::RoleMayNotPost),
            Some(MemberRole::Clinician) if needs_publisher => {
                Judgement::Rejected(RejectReason::RoleMayNotPublish)
            }
            Some(_) => self.authority_ok(signer, establishment, id),
        }
    }

    /// Decides an envelope of a kind this code does not read, from its
    /// signer alone: in effect while the signer is a key (of any role) of
    /// an establishment whose authority covers it, exactly as a change by
    /// that key would be; never more.
    pub fn judge_unread(&self, id: &EnvelopeId, signer: &PublicKey) -> Judgement {
        if !self.has_genesis() {
            return Judgement::Pending(PendingReason::NoGenesis);
        }
        let mut first = None;
        for est in self.establishments.keys() {
            if self.is_key_of(est, signer) {
                let j = self.authority_ok(signer, est, id);
                if j == Judgement::Accepted {
                    return j;
                }
                first.get_or_insert(j);
            }
        }
        first.unwrap_or(Judgement::Pending(PendingReason::SignerNotDelegated))
    }

    /// Decides one envelope. A certificate is judged as of the set this view
    /// was built from; one not in that set is pending.
    pub fn judge(&self, env: &Verified) -> Judgement {
        match env.body() {
            Body::Change(c) => self.judge_change(&env.id(), &env.signer(), &c.owner),
            Body::Post(p) => self.judge_post(&env.id(), &env.signer(), &p.voice),
            Body::Record(r) => self.judge_record(
                &env.id(),
                &env.signer(),
                &r.establishment,
                r.needs_publisher(),
            ),
            Body::Unread { .. } => self.judge_unread(&env.id(), &env.signer()),
            Body::Certificate(_) => match self.certs.get(&env.id()) {
                Some(j) => *j,
                None if !self.has_genesis() => Judgement::Pending(PendingReason::NoGenesis),
                None => Judgement::Pending(PendingReason::SignerNotAdmin),
            },
        }
    }

    /// The judgement of every certificate this view was built from.
    pub fn certificate_judgements(&self) -> &BTreeMap<EnvelopeId, Judgement> {
        &self.certs
    }
}

#[cfg(test)]
mod tests;
