//! The inspection pack: built from a site's items in force, it holds
//! their front sheets, approvals, registers and history with the signed
//! envelopes; `verify` accepts it untouched, names the file when one byte
//! of any file is changed, and finds a page that no longer matches the
//! envelopes even when the manifest was signed again over it.

mod common;

use std::path::{Path, PathBuf};

use common::new_site;
use gatehouse_node::authoring::draft;
use gatehouse_node::pack::{self, Manifest, PackError};
use gatehouse_node::query::reading::StaffMember;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::staff::Staff;
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::item::{DataPoint, Improvement, MeasureDefinition};
use gatehouse_protocol::jiff::ToSpan;
use gatehouse_protocol::vocab::Job;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn copy(from: &Path, to: &Path) {
    for f in files(from) {
        let rel = f.strip_prefix(from).expect("under");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&f, &dest).expect("copy");
    }
}

#[test]
fn a_pack_verifies_untouched_and_names_any_file_changed() {
    let (dir, home, mut lib) = new_site();
    let today = lib.today();
    let staff = Staff::of(&home);
    let mut members = Vec::new();
    let mut keys = Vec::new();
    for name in ["Nurse A Shah", "Nurse B Okoro"] {
        let new = staff
            .add(&mut lib, name, None, MemberRole::Clinician)
            .expect("add");
        staff
            .set_job(&new.account.login, Some(Job::Nurse))
            .expect("job");
        let (_, key) = staff
            .set_up(
                &new.account.login,
                &new.setup_code,
                "a long enough password",
            )
            .expect("set up");
        members.push(StaffMember {
            name: name.into(),
            key: key.public(),
            job: Some(Job::Nurse),
        });
        keys.push(key);
    }
    let mut policy = synthetic_content(5);
    policy.front_sheet.document_owner = Some("Head of Healthcare".into());
    policy.front_sheet.ratifying_committee = Some("Clinical Governance Committee".into());
    let id = lib.publish(&policy, &[]).expect("publish");
    lib.approve(&id, None).expect("approve");
    lib.request_reading(
        &id,
        &[Job::Nurse],
        today.checked_add(30.days()).expect("date"),
        None,
    )
    .expect("request");
    lib.acknowledge(&keys[0], &id).expect("nurse A reads it");
    let qi = lib
        .publish(
            &draft::parse(
                "---\ntitle: Reviews on reception\nkind: qi-initiative\nsummary: Reviews in a week.\n\
                 pathways: [pharmacy-medicines]\nsettings: [local-remand]\nnation: england\n\
                 review_due: 2029-06-30\naim: More reviews on time.\nmeasures: [Reviews in 7 days]\n\
                 pdsa_cycles: [Pharmacist at reception]\noutcomes: To come.\n---\n\nThe initiative.\n",
                &[],
            )
            .expect("parses"),
            &[],
        )
        .expect("publish qi");
    lib.define_measure(
        &qi,
        &MeasureDefinition {
            key: "reviews".into(),
            name: "Reviews in 7 days".into(),
            definition: "Share of receptions reviewed within 7 days.".into(),
            unit: "%".into(),
            improvement: Improvement::Higher,
            baseline_until: None,
        },
    )
    .expect("define");
    let points: Vec<DataPoint> = (1..=12)
        .map(|m| DataPoint {
            date: gatehouse_protocol::jiff::civil::Date::new(2025, m, 28).expect("date"),
            value: 50.0 + f64::from(m),
        })
        .collect();
    lib.record_points(&qi, "reviews", &points).expect("record");
    let withdrawn = lib.publish(&synthetic_content(6), &[]).expect("publish");
    lib.withdraw(&withdrawn, "Replaced by the regional policy", &[])
        .expect("withdraw");

    let out = dir.path().join("pack");
    let signer = lib.signing_key().expect("key");
    let own = lib.config().establishment;
    let made = pack::build(&lib, own, &members, today, &signer, &out).expect("build");
    assert_eq!(made.items, 2, "items in force only");
    // A second build into the same directory is refused.
    assert!(matches!(
        pack::build(&lib, own, &members, today, &signer, &out),
        Err(PackError::NotEmpty(_))
    ));
    drop(lib);

    let checked = pack::verify(&out).expect("an untouched pack verifies");
    assert_eq!(checked.items, 2);
    assert_eq!(checked.envelopes, made.envelopes);
    let page = std::fs::read_to_string(out.join(format!("items/{}.html", id.to_hex())))
        .expect("item page");
    assert!(page.contains("Clinical Governance Committee"), "{page}");
    assert!(page.contains("1 of 2 have"), "{page}");
    let row = |name: &str| {
        let at = page.find(&format!("<td>{name}</td>")).expect("a row");
        page[at..at + 300].to_string()
    };
    assert!(row("Nurse A Shah").contains("Version 1, "), "{page}");
    assert!(row("Nurse B Okoro").contains("Not yet"), "{page}");
    assert!(page.contains("approved by Healthcare manager"), "{page}");
    assert!(
        page.contains(&gatehouse_node::projection::markdown::render(
            &policy.body,
            2
        )),
        "the document itself is in the pack: {page}"
    );
    let index = std::fs::read_to_string(out.join("index.html")).expect("index");
    assert!(index.contains("Reviews on reception") && !index.contains(&synthetic_content(6).title));
    let qi_page =
        std::fs::read_to_string(out.join(format!("items/{}.html", qi.to_hex()))).expect("qi page");
    assert!(
        qi_page.contains("spc-xmr-chart"),
        "the SPC chart is in the pack"
    );

    // One byte changed in any file: the file is named.
    let all = files(&out);
    assert!(all.len() >= 7, "{all:?}");
    for (n, f) in all.iter().enumerate() {
        let rel = f
            .strip_prefix(&out)
            .expect("under")
            .to_string_lossy()
            .to_string();
        let copy_dir = dir.path().join(format!("changed-{n}"));
        copy(&out, &copy_dir);
        let target = copy_dir.join(&rel);
        let mut bytes = std::fs::read(&target).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&target, bytes).expect("write");
        let err = pack::verify(&copy_dir).expect_err("a changed byte is found");
        let name = rel.rsplit('/').next().expect("name");
        assert!(err.to_string().contains(name), "{rel}: {err}");
    }

    // A file added, a file taken away.
    let extra = dir.path().join("extra");
    copy(&out, &extra);
    std::fs::write(extra.join("items/note.html"), "<p>added</p>").expect("write");
    let err = pack::verify(&extra).expect_err("an added file");
    assert!(
        err.to_string()
            .contains("items/note.html is not part of the pack"),
        "{err}"
    );
    let less = dir.path().join("less");
    copy(&out, &less);
    std::fs::remove_file(less.join("index.html")).expect("remove");
    let err = pack::verify(&less).expect_err("a missing file");
    assert!(err.to_string().contains("index.html is missing"), "{err}");

    // A page changed and the manifest signed again over it with the site's
    // own key: the page no longer matches the envelopes.
    let forged = dir.path().join("forged");
    copy(&out, &forged);
    let rel = format!("items/{}.html", id.to_hex());
    let page = std::fs::read_to_string(forged.join(&rel)).expect("page");
    let page = page.replace("Not yet", "Version 1, 2026-01-01");
    std::fs::write(forged.join(&rel), &page).expect("write");
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(forged.join("manifest.json")).expect("read"))
            .expect("manifest");
    manifest.files.insert(
        rel.clone(),
        blake3::hash(page.as_bytes()).to_hex().to_string(),
    );
    let bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    let sig = signer.sign(&[b"gatehouse/v1/pack\0".as_slice(), &bytes].concat());
    std::fs::write(forged.join("manifest.json"), &bytes).expect("write");
    std::fs::write(forged.join("manifest.sig"), hex::encode(sig)).expect("write");
    // A manifest naming a file outside the pack, signed by its own key,
    // reads nothing there.
    let outside = dir.path().join("outside");
    copy(&out, &outside);
    let mut listed = manifest.clone();
    listed.files.insert("../secret".into(), "00".repeat(32));
    let bytes = serde_json::to_vec_pretty(&listed).expect("json");
    let sig = signer.sign(&[b"gatehouse/v1/pack\0".as_slice(), &bytes].concat());
    std::fs::write(outside.join("manifest.json"), &bytes).expect("write");
    std::fs::write(outside.join("manifest.sig"), hex::encode(sig)).expect("write");
    let err = pack::verify(&outside).expect_err("outside the pack");
    assert!(
        err.to_string().contains("not a file inside the pack"),
        "{err}"
    );

    let err = pack::verify(&forged).expect_err("the page does not match");
    assert!(
        err.to_string().contains(&rel) && err.to_string().contains("does not match"),
        "{err}"
    );
}
