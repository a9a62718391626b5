//! Read and acknowledge: a request names jobs and a version; an
//! acknowledgement of that version or a later one answers it; a revision
//! not marked significant leaves the answers standing, a significant one
//! asks again; a key the network does not know cannot acknowledge; another
//! node given the same envelopes in any order keeps the same register.

mod common;

use common::{new_site, offer_until_stored, other_node};
use gatehouse_node::query::reading::StaffMember;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::staff::Staff;
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::jiff::ToSpan;
use gatehouse_protocol::vocab::Job;

#[test]
fn a_register_follows_requests_acknowledgements_and_significant_revisions() {
    let (_dir, home, mut lib) = new_site();
    let staff = Staff::of(&home);
    let mut people = Vec::new();
    for (name, job) in [
        ("Nurse A Shah", Job::Nurse),
        ("Nurse B Okoro", Job::Nurse),
        ("Pharmacist C Lee", Job::Pharmacist),
    ] {
        let new = staff
            .add(&mut lib, name, None, MemberRole::Clinician)
            .expect("add");
        staff.set_job(&new.account.login, Some(job)).expect("job");
        let (_, key) = staff
            .set_up(
                &new.account.login,
                &new.setup_code,
                "a long enough password",
            )
            .expect("set up");
        people.push((
            StaffMember {
                name: name.into(),
                key: key.public(),
                job: Some(job),
            },
            key,
        ));
    }
    let members: Vec<StaffMember> = people.iter().map(|(m, _)| m.clone()).collect();
    let today = lib.today();
    let id = lib.publish(&synthetic_content(4), &[]).expect("publish");
    let due = today.checked_add(14.days()).expect("date");
    lib.request_reading(&id, &[Job::Nurse], due, None)
        .expect("request");

    lib.acknowledge(&people[0].1, &id)
        .expect("nurse A reads it");
    let r = lib
        .read_view()
        .register(&id, &members, today)
        .expect("register");
    assert_eq!(r.rows.len(), 2, "the pharmacist is not asked");
    assert_eq!(r.done(), 1);
    assert!(!r.overdue);
    let late = lib
        .read_view()
        .register(&id, &members, due.checked_add(1.days()).expect("date"))
        .expect("register");
    assert!(late.overdue, "nurse B had not read it by the date");
    // The pharmacist reads it unasked: listed among the others.
    lib.acknowledge(&people[2].1, &id)
        .expect("pharmacist reads it");
    let r = lib
        .read_view()
        .register(&id, &members, today)
        .expect("register");
    assert_eq!(r.others.len(), 1);
    assert_eq!(
        lib.read_view()
            .to_read(&people[1].0.key, Some(Job::Nurse), today)
            .expect("to read")
            .len(),
        1
    );
    assert!(
        lib.read_view()
            .to_read(&people[0].0.key, Some(Job::Nurse), today)
            .expect("to read")
            .is_empty()
    );

    // A revision not marked significant: nurse A's answer stands.
    let mut next = lib.get(&id, None).expect("item").item.content;
    next.summary.push_str(" Typo fixed.");
    lib.revise(&id, &next, &[]).expect("revise");
    let r = lib
        .read_view()
        .register(&id, &members, today)
        .expect("register");
    assert_eq!(r.request.as_ref().map(|q| q.version), Some(1));
    assert_eq!(r.done(), 1);

    // Another node given the same envelopes in reverse order agrees.
    let mut all = lib.export().expect("export");
    all.reverse();
    let mut other = other_node(&lib);
    offer_until_stored(&mut other, all);
    let there = other
        .read_view()
        .register(&id, &members, today)
        .expect("register");
    assert_eq!(there.rows, r.rows);
    assert_eq!(there.others, r.others);

    // A significant revision asks again.
    next.body.push_str("\nA new step.\n");
    lib.revise(&id, &next, &[]).expect("revise");
    assert!(lib.ask_again(&id, None).expect("ask").is_some());
    let r = lib
        .read_view()
        .register(&id, &members, today)
        .expect("register");
    assert_eq!(r.request.as_ref().map(|q| q.version), Some(3));
    assert_eq!(
        r.request.as_ref().map(|q| q.jobs.clone()),
        Some(vec![Job::Nurse])
    );
    assert_eq!(r.done(), 0);
    lib.acknowledge(&people[0].1, &id).expect("reads it again");
    assert!(
        lib.acknowledge(&people[0].1, &id).is_err(),
        "once per version"
    );
    assert_eq!(
        lib.read_view()
            .register(&id, &members, today)
            .expect("register")
            .done(),
        1
    );

    // A key this network does not know cannot acknowledge it.
    let (_dir2, home2, mut elsewhere) = new_site();
    let stranger = Staff::of(&home2)
        .add(
            &mut elsewhere,
            "Nurse D Elsewhere",
            None,
            MemberRole::Clinician,
        )
        .expect("add");
    let (_, key) = Staff::of(&home2)
        .set_up(
            &stranger.account.login,
            &stranger.setup_code,
            "a long enough password",
        )
        .expect("set up");
    assert!(lib.acknowledge(&key, &id).is_err());
}
