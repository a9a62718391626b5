//! Approval and review: an approval is signed by the approver's own key;
//! where the establishment requires two people, an approval by the
//! version's author does not count, on every node and in any delivery
//! order; a signed review moves the review date.

mod common;

use common::{new_site, offer_until_stored, other_node, shuffled};
use gatehouse_node::library::Library;
use gatehouse_node::query::lifecycle::{Lifecycle, Stage};
use gatehouse_node::sample::synthetic_content;
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::ItemContent;
use gatehouse_protocol::jiff::ToSpan;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::record::{Record, RecordAction};
use gatehouse_protocol::vocab::Status;

/// A version for `today`, in force three years, with no approval written.
fn content(today: Date, status: Status) -> ItemContent {
    let mut c = synthetic_content(3);
    c.status = status;
    c.approved_by = None;
    c.approved_on = None;
    c.effective_from = None;
    c.review_due = today.checked_add(3.years()).expect("date");
    c
}

/// What a reader sees of an item's approvals.
fn seen(l: &Lifecycle) -> Vec<(String, u64, bool, Option<String>)> {
    let mut v: Vec<_> = l
        .approvals
        .iter()
        .map(|a| {
            (
                a.approver.key.to_hex(),
                a.version,
                a.counts,
                a.reason.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

/// HMP Northgate with a deputy who holds a person key of their own, and
/// two-person approval switched on.
fn two_person_site() -> (tempfile::TempDir, Library, SecretKey) {
    let (dir, home, mut lib) = new_site();
    let est_key = home
        .read_key("establishment")
        .expect("read")
        .expect("establishment key");
    let deputy = SecretKey::from_seed([77; 32]);
    let own = lib.config().establishment;
    lib.delegate(
        &est_key,
        own,
        deputy.public(),
        "Deputy healthcare manager",
        MemberRole::Person,
    )
    .expect("delegate");
    let rules = lib.set_rules(Some(true), None, None).expect("rules");
    assert!(rules.two_person_approval);
    assert_eq!(rules.reminder_months, 6);
    (dir, lib, deputy)
}

#[test]
fn an_authors_approval_does_not_count_where_two_people_are_needed_in_any_delivery_order() {
    let (_dir, mut lib, deputy) = two_person_site();
    let today = lib.today();
    let lead = lib.signing_key().expect("lead's key");
    let id: ItemId = lib
        .publish(&content(today, Status::Submitted), &[])
        .expect("submit");
    let view = lib.read_view();
    assert_eq!(
        view.lifecycle(&id, today).expect("lifecycle").stage,
        Stage::Submitted
    );

    // The author cannot approve their own version here.
    let err = lib.approve(&id, None).expect_err("author may not approve");
    assert!(
        err.to_string().contains("requires a second person"),
        "{err}"
    );
    // Signed anyway (by a node that skipped the check), it is kept and
    // shown, and does not count.
    let change = lib.history(&id).expect("history")[0].envelope;
    let own = lib.config().establishment;
    lib.sign_record(
        &lead,
        Record {
            establishment: own,
            action: RecordAction::Approve {
                item: id,
                version: 1,
                change,
            },
        },
    )
    .expect("the author's approval is stored");
    assert_eq!(
        lib.read_view()
            .lifecycle(&id, today)
            .expect("lifecycle")
            .stage,
        Stage::Submitted,
        "an approval that does not count publishes nothing"
    );

    // The deputy's approval counts and publishes the version.
    let approved = lib.approve(&id, Some(&deputy)).expect("deputy approves");
    assert!(approved.published);
    assert_eq!(approved.version, 1);
    let item = lib.get(&id, None).expect("item").item;
    assert_eq!(item.content.status, Status::Published);
    assert_eq!(item.content.approved_on, Some(today));
    assert_eq!(
        item.content.approved_by.as_deref(),
        Some("Deputy healthcare manager")
    );
    assert_eq!(item.version, 1, "approval makes no new version");
    let history = lib.history(&id).expect("history");
    let last = history.last().expect("a change");
    assert_eq!(last.action, "approve and publish");
    assert_eq!(last.signer.key, deputy.public());
    assert!(!last.made_version);
    // Approving twice with one key is refused.
    assert!(lib.approve(&id, Some(&deputy)).is_err());

    let here = lib.read_view().lifecycle(&id, today).expect("lifecycle");
    assert_eq!(here.stage, Stage::Approved);
    let counted = here.approved.clone().expect("an approval counts");
    assert_eq!(counted.approver.key, deputy.public());
    let refused: Vec<_> = here.approvals.iter().filter(|a| !a.counts).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].approver.key, lead.public());
    assert!(
        refused[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("author of version 1")),
        "{:?}",
        refused[0].reason
    );

    // Every other node decides the same, whatever order the envelopes
    // (certificates, the rules, the version, both approvals, the
    // publishing change) arrive in.
    let all = lib.export().expect("export");
    let mut orders = vec![all.clone(), all.iter().rev().cloned().collect()];
    orders.extend((1..=6).map(|seed| shuffled(all.clone(), seed)));
    for (n, order) in orders.into_iter().enumerate() {
        let mut other = other_node(&lib);
        offer_until_stored(&mut other, order);
        let there = other.read_view().lifecycle(&id, today).expect("lifecycle");
        assert_eq!(there.stage, here.stage, "order {n}");
        assert_eq!(seen(&there), seen(&here), "order {n}");
        assert_eq!(there.rules, here.rules, "order {n}");
    }

    // A new version needs its own approval.
    let mut next = lib.get(&id, None).expect("item").item.content;
    next.body.push_str("\nA paragraph added at review.\n");
    next.status = Status::Submitted;
    lib.revise(&id, &next, &[]).expect("revise");
    let l = lib.read_view().lifecycle(&id, today).expect("lifecycle");
    assert_eq!(l.stage, Stage::Submitted);
    assert!(
        l.approved.is_none(),
        "version 1's approval is not version 2's"
    );
}

#[test]
fn where_one_person_may_approve_the_author_approves_their_own_version() {
    let (_dir, _home, mut lib) = new_site();
    let today = lib.today();
    let id = lib
        .publish(&content(today, Status::Published), &[])
        .expect("publish");
    let l = lib.read_view().lifecycle(&id, today).expect("lifecycle");
    assert_eq!(l.stage, Stage::Unapproved);
    assert!(!l.rules.two_person_approval);
    let approved = lib.approve(&id, None).expect("approve");
    assert!(!approved.published, "it was already published");
    let l = lib.read_view().lifecycle(&id, today).expect("lifecycle");
    assert_eq!(l.stage, Stage::Approved);
}

#[test]
fn a_signed_review_moves_the_review_date_and_reminders_follow_the_rules() {
    let (_dir, mut lib, deputy) = two_person_site();
    let today = lib.today();
    let mut c = content(today, Status::Published);
    // Due in four months: inside the default six-month reminder.
    c.review_due = today.checked_add(4.months()).expect("date");
    let id = lib.publish(&c, &[]).expect("publish");
    let l = lib.read_view().lifecycle(&id, today).expect("lifecycle");
    assert_eq!(l.stage, Stage::ReviewDue);
    assert_eq!(
        l.reminders_from,
        c.review_due.checked_sub(6.months()).expect("date")
    );
    // With reminders three months ahead, it is not due yet.
    lib.set_rules(None, Some(3), None).expect("rules");
    let l = lib.read_view().lifecycle(&id, today).expect("lifecycle");
    assert_eq!(l.rules.reminder_months, 3);
    assert!(l.rules.two_person_approval, "the rest of the rules stay");
    assert_ne!(l.stage, Stage::ReviewDue);

    let next = lib.review(&id, None, Some(&deputy)).expect("review");
    assert_eq!(next, today.checked_add(3.years()).expect("date"));
    let item = lib.get(&id, None).expect("item").item;
    assert_eq!(item.content.review_due, next);
    assert_eq!(item.version, 1, "a review with no change makes no version");
    let last = lib.history(&id).expect("history").pop().expect("change");
    assert_eq!(last.action, "reviewed, no change");
    assert_eq!(last.signer.key, deputy.public());
    assert!(last.changed.iter().any(|f| f == "review_due"), "{last:?}");

    // A date that is not ahead, and an item not in force, are refused.
    assert!(lib.review(&id, Some(today), None).is_err());
    let submitted = lib
        .publish(&content(today, Status::Submitted), &[])
        .expect("submit");
    let err = lib
        .review(&submitted, None, None)
        .expect_err("not in force");
    assert!(err.to_string().contains("in force"), "{err}");
}
