//! Search relevance on the sample library: realistic clinician queries and
//! the item that must appear in the top three. The list was written before
//! any tuning; a change that breaks one of these is a regression for users.

use gatehouse_node::home::Home;
use gatehouse_node::library::{InitOptions, Library};
use gatehouse_node::query::filter::Filter;
use gatehouse_node::sample::{default_sample_dir, populate, read_sample_dir};
use gatehouse_protocol::vocab::{Nation, Setting};

/// (query, files of which at least one must be in the top three)
const CASES: &[(&str, &[&str])] = &[
    (
        "naloxone on release",
        &[
            "hmp-northgate/05-take-home-naloxone-on-release.md",
            "hmp-cwm-tawel/03-take-home-naloxone.md",
        ],
    ),
    (
        "IPRA",
        &["hmp-northgate/01-in-possession-medication-risk-assessment.md"],
    ),
    (
        "in possession risk assessment young people",
        &["hmyoi-ashcombe/04-in-possession-medicines-young-people.md"],
    ),
    (
        "OST induction",
        &["hmp-northgate/04-ost-induction-and-titration.md"],
    ),
    (
        "opioid substitution dose titration",
        &["hmp-northgate/04-ost-induction-and-titration.md"],
    ),
    (
        "alcohol withdrawal CIWA",
        &["hmp-northgate/03-alcohol-withdrawal-ciwa-ar.md"],
    ),
    (
        "clozapine blood monitoring",
        &["ravensmoor-hospital/01-clozapine-monitoring.md"],
    ),
    (
        "rapid tranquilisation",
        &["ravensmoor-hospital/02-rapid-tranquillisation.md"],
    ),
    (
        "dental waiting list",
        &["hmp-cwm-tawel/04-dental-triage-and-waiting-list.md"],
    ),
    (
        "hep C treatment",
        &["hmp-cwm-tawel/05-hepatitis-c-test-and-treat.md"],
    ),
    ("rule 35 report", &["larkhill-irc/02-rule-35-reports.md"]),
    ("interpreter", &["larkhill-irc/03-language-interpreters.md"]),
    (
        "ACCT self harm",
        &["hmyoi-ashcombe/02-self-harm-acct-healthcare-role.md"],
    ),
    (
        "missed hospital appointments escorts",
        &["hmp-northgate/07-reducing-missed-hospital-appointments-pdsa.md"],
    ),
    (
        "norovirus outbreak",
        &["hmp-glenmorrow/04-norovirus-outbreak-procedure.md"],
    ),
    (
        "end of life care",
        &["hmp-cwm-tawel/07-palliative-and-end-of-life-care.md"],
    ),
    (
        "vaping",
        &[
            "hmp-cwm-tawel/06-smoke-free-and-vape-policy.md",
            "ravensmoor-hospital/04-smoke-free-nicotine-management.md",
        ],
    ),
    (
        "telemedicine",
        &["hmp-glenmorrow/03-telemedicine-clinics.md"],
    ),
    (
        "first night screening",
        &["hmp-northgate/02-first-night-health-screening.md"],
    ),
    (
        "gabapentin pregabalin prescribing",
        &["hmp-cwm-tawel/01-safer-prescribing-gabapentinoids.md"],
    ),
    (
        "food refusal",
        &["larkhill-irc/05-food-and-fluid-refusal.md"],
    ),
    (
        "nalox",
        &[
            "hmp-northgate/05-take-home-naloxone-on-release.md",
            "hmp-cwm-tawel/03-take-home-naloxone.md",
        ],
    ),
    (
        "clozapin monitorng",
        &["ravensmoor-hospital/01-clozapine-monitoring.md"],
    ),
];

#[test]
fn clinician_queries_find_the_right_item_in_the_top_three() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (mut lib, _) = Library::init(
        &home,
        &InitOptions {
            establishment: "HMP Northgate".into(),
            setting: Setting::LocalRemand,
            nation: Nation::England,
            network_name: "Relevance".into(),
            member_name: "Healthcare manager".into(),
        },
    )
    .expect("init");
    let admin = home.read_key("admin").expect("read").expect("admin");
    let ests = read_sample_dir(&default_sample_dir()).expect("samples");
    let loaded = populate(&mut lib, &admin, &ests).expect("populate");
    let id_of = |file: &str| {
        loaded
            .iter()
            .find(|(slug, path, _)| path.ends_with(file) && file.starts_with(slug.as_str()))
            .map(|(_, _, id)| *id)
            .unwrap_or_else(|| panic!("{file} is not in the sample library"))
    };
    let mut failures = Vec::new();
    for (query, files) in CASES {
        let wanted: Vec<_> = files.iter().map(|f| id_of(f)).collect();
        let results = lib.search(query, &Filter::default(), 3).expect("search");
        let top: Vec<_> = results.results.iter().map(|r| r.view.item.id).collect();
        if !top.iter().any(|id| wanted.contains(id)) {
            let titles: Vec<String> = results
                .results
                .iter()
                .map(|r| r.view.item.content.title.clone())
                .collect();
            failures.push(format!("{query:?} -> {titles:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries missed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// A library of three items, for what the sample library does not show.
fn three_items() -> (
    tempfile::TempDir,
    Library,
    [gatehouse_protocol::id::ItemId; 3],
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (mut lib, _) = Library::init(
        &home,
        &InitOptions {
            establishment: "HMP Northgate".into(),
            setting: Setting::LocalRemand,
            nation: Nation::England,
            network_name: "Relevance".into(),
            member_name: "Healthcare manager".into(),
        },
    )
    .expect("init");
    let mut item = |n: u64, title: &str, body: &str| {
        let mut c = gatehouse_node::sample::synthetic_content(n);
        c.title = title.into();
        c.summary = "For healthcare staff.".into();
        c.tags = Vec::new();
        c.body = body.into();
        c.qi = None;
        c.kind = gatehouse_protocol::vocab::Kind::Procedure;
        lib.publish(&c, &[]).expect("publish")
    };
    let ids = [
        item(
            1,
            "Holding medicines on the wing",
            "Complete a risk assessment for in-possession medication before any supply.",
        ),
        item(
            2,
            "Detention under the Mental Health Act",
            "How a transfer under the Act is arranged.",
        ),
        item(
            3,
            "Observations",
            "Record the news of each shift in the handover book.",
        ),
    ];
    (dir, lib, ids)
}

#[test]
fn an_abbreviation_finds_its_long_form_in_other_words_and_nothing_a_typo_away() {
    let (_dir, lib, [medicines, act, observations]) = three_items();
    let found = |q: &str| -> Vec<_> {
        lib.search(q, &Filter::default(), 10)
            .expect("search")
            .results
            .iter()
            .map(|r| r.view.item.id)
            .collect()
    };
    // The long form's words near each other, in another order and with
    // words between them.
    assert_eq!(found("IPRA"), vec![medicines]);
    // ACCT is one letter from "act", NEWS2 from "news": neither is matched.
    assert!(
        !found("ACCT").contains(&act),
        "ACCT found the Mental Health Act"
    );
    assert!(
        !found("NEWS2").contains(&observations),
        "NEWS2 found the news"
    );
    // A word that is no abbreviation still matches with a typo.
    assert_eq!(found("asessment"), vec![medicines]);
}

#[test]
fn stop_words_are_never_marked_in_snippets() {
    let (_dir, lib, _) = three_items();
    eprintln!(
        "{}",
        gatehouse_node::projection::search::expand_abbreviations("IPRA")
    );
    for q in [
        "suply",
        "wnig",
        "medicaton",
        "asessment",
        "IPRA",
        "risk assessment for in-possession medication",
        "the act",
    ] {
        for r in lib
            .search(q, &Filter::default(), 10)
            .expect("search")
            .results
        {
            for &(start, end) in &r.highlights {
                let marked = r.snippet[start..end].to_lowercase();
                assert!(
                    !["for", "in", "the", "a", "of", "under"].contains(&marked.as_str()),
                    "{q:?} marked {marked:?} in {:?}",
                    r.snippet
                );
            }
        }
    }
}
