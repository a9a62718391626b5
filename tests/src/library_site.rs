//! One node's library served over HTTP on loopback, for the web tests: the
//! sample library plus items that show every state a page must handle
//! (revised twice, superseded, withdrawn, and one with a hostile body).

use std::sync::{Arc, Mutex};

use gatehouse_node::authoring::draft;
use gatehouse_node::home::Home;
use gatehouse_node::library::{InitOptions, Library};
use gatehouse_node::sample::{default_sample_dir, populate, read_sample_dir};
use gatehouse_node::web::{WebServer, WebState};
use gatehouse_protocol::id::{EnvelopeId, ItemId};
use gatehouse_protocol::item::{
    DataPoint, Improvement, ItemContent, MeasureDefinition, Note, Progress, ProgressScore, QiStage,
};
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::post::{Action, Edit, Question, Reply, Topic, Urgency};
use gatehouse_protocol::vocab::{Nation, Pathway, Setting};

/// A Markdown body with a script, event handlers, a `javascript:` link,
/// remote images, a raw page heading, a navigation landmark and a style
/// sheet, none of which may be active on the page.
pub const HOSTILE_BODY: &str = "# Hostile\n\n<script>document.title='owned'</script>\n\n\
<p onmouseover=\"alert(1)\">hover</p>\n\n[click me](javascript:alert(2))\n\n\
![tracker](https://tracker.example/pixel.png)\n\n<img src=\"https://tracker.example/a.png\" onerror=\"alert(3)\">\n\n\
<a href=\"https://example.org/ok\">a fair link</a>\n\n\
<h1>Fake page heading</h1><nav aria-label=\"Main\">fake menu</nav><style>body{display:none}</style>\n";

/// The served node and the ids of its special items.
pub struct LibrarySite {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The library behind the server.
    pub library: Arc<Mutex<Library>>,
    /// Published, then revised twice (version 3; the review date moved).
    pub revised: ItemId,
    /// Superseded by `new`.
    pub old: ItemId,
    /// Supersedes `old`.
    pub new: ItemId,
    /// Withdrawn.
    pub withdrawn: ItemId,
    /// Its body is [`HOSTILE_BODY`] and its title holds a script tag.
    pub hostile: ItemId,
    /// A QI initiative with one measure of [`QI_VALUES`] (a shift above the
    /// mean from the eleventh point, after a PDSA cycle noted there), its
    /// progress score 3.5 at the testing stage.
    pub qi: ItemId,
    /// A question linking to `revised`, with a reply (edited), a reply
    /// quoting it, and a hidden reply.
    pub question: EnvelopeId,
    _dir: tempfile::TempDir,
}

/// The monthly values of the QI test item's measure: ten around 60, then
/// ten around 75 (seven or more above the mean: a shift, an improvement
/// when higher is better).
pub const QI_VALUES: [f64; 20] = [
    58.0, 61.0, 60.0, 59.0, 62.0, 60.0, 57.0, 61.0, 60.0, 59.0, 74.0, 76.0, 75.0, 77.0, 73.0, 76.0,
    75.0, 74.0, 78.0, 76.0,
];

/// Item content for the web tests, owned by the node's establishment.
pub fn content(title: &str, review_due: &str, body: &str) -> ItemContent {
    let text = format!(
        "---\ntitle: {title}\nkind: procedure\nsummary: A procedure written for the web tests.\n\
         pathways: [substance-misuse]\nsettings: [local-remand]\nnation: england\n\
         tags: [web-test]\nreview_due: {review_due}\n---\n\n{body}"
    );
    draft::parse(&text, &[]).expect("a valid draft")
}

impl LibrarySite {
    /// Builds the library (HMP Northgate's node) and serves it on a
    /// background thread for the life of the test process.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let home = Home::new(dir.path().join("node"));
        let (mut lib, _) = Library::init(
            &home,
            &InitOptions {
                establishment: "HMP Northgate".into(),
                setting: Setting::LocalRemand,
                nation: Nation::England,
                network_name: "Test network".into(),
                member_name: "Healthcare manager".into(),
            },
        )?;
        let admin = home
            .read_key("admin")?
            .ok_or_else(|| anyhow::anyhow!("no admin key"))?;
        populate(&mut lib, &admin, &read_sample_dir(&default_sample_dir())?)?;

        let body1 = "## Steps\n\nCheck the kit.\nRecord the supply.\n";
        let revised = lib.publish(&content("Web test wound care", "2027-01-01", body1), &[])?;
        let body2 = "## Steps\n\nCheck the kit and its expiry date.\nRecord the supply.\n";
        lib.revise(
            &revised,
            &content("Web test wound care", "2027-01-01", body2),
            &[],
        )?;
        let body3 = format!("{body2}Tell the pharmacist.\n");
        lib.revise(
            &revised,
            &content("Web test wound care", "2027-06-30", &body3),
            &[],
        )?;
        let old = lib.publish(
            &content("Web test old procedure", "2027-01-01", "Old.\n"),
            &[],
        )?;
        let new = lib.publish(
            &content("Web test new procedure", "2027-01-01", "New.\n"),
            &[],
        )?;
        lib.supersede(&old, &new)?;
        let withdrawn =
            lib.publish(&content("Web test withdrawn", "2027-01-01", "Gone.\n"), &[])?;
        lib.withdraw(&withdrawn, "Replaced by the regional formulary", &[])?;
        let hostile = lib.publish(
            &content(
                "Web test <script>alert(9)</script> title",
                "2027-01-01",
                HOSTILE_BODY,
            ),
            &[],
        )?;

        let qi = lib.publish(
            &draft::parse(
                "---\ntitle: Web test medication reviews on reception\nkind: qi-initiative\n\
                 summary: Raising the share of medication reviews done within a week of reception.\n\
                 pathways: [pharmacy-medicines]\nsettings: [local-remand]\nnation: england\n\
                 review_due: 2027-06-30\naim: 90% of reviews within 7 days by March.\n\
                 measures: [Reviews within 7 days]\npdsa_cycles: [A pharmacist at reception]\n\
                 outcomes: Reviews on time rose.\n---\n\nThe initiative.\n",
                &[],
            )?,
            &[],
        )?;
        lib.define_measure(
            &qi,
            &MeasureDefinition {
                key: "reviews-on-time".into(),
                name: "Reviews within 7 days".into(),
                definition: "Medication reviews done within 7 days of reception, as a share of receptions that month.".into(),
                unit: "%".into(),
                improvement: Improvement::Higher,
                baseline_until: Some(Date::constant(2025, 10, 31)),
            },
        )?;
        let points: Vec<DataPoint> = QI_VALUES
            .iter()
            .enumerate()
            .map(|(i, v)| DataPoint {
                date: Date::new(
                    2025 + i16::try_from(i / 12).unwrap_or(0),
                    1 + i8::try_from(i % 12).unwrap_or(0),
                    28,
                )
                .unwrap_or(Date::constant(2025, 1, 28)),
                value: *v,
            })
            .collect();
        lib.record_points(&qi, "reviews-on-time", &points)?;
        lib.note_measure(
            &qi,
            "reviews-on-time",
            &Note {
                date: points[10].date,
                text: "PDSA 2: a pharmacist at reception".into(),
            },
        )?;
        lib.set_progress(
            &qi,
            Progress {
                score: ProgressScore(35),
                stage: QiStage::Testing,
            },
        )?;

        let question = lib.post(Action::Ask(Question {
            title: "Web test: do you check wound kits weekly?".into(),
            body: "We check monthly; is that enough?".into(),
            pathways: vec![Pathway::SubstanceMisuse],
            settings: vec![Setting::LocalRemand],
            urgency: Urgency::WithinAWeek,
            links: vec![revised],
        }))?;
        let answer = lib.post(Action::Reply(Reply {
            thread: question,
            quoting: None,
            body: "Weekly, with the expiry dates.".into(),
        }))?;
        lib.post(Action::Edit(Edit {
            post: answer,
            title: None,
            body: "Weekly, with the expiry dates logged.".into(),
        }))?;
        lib.post(Action::Reply(Reply {
            thread: question,
            quoting: Some(answer),
            body: "Agreed.".into(),
        }))?;
        let off_topic = lib.post(Action::Reply(Reply {
            thread: question,
            quoting: None,
            body: "Off topic.".into(),
        }))?;
        lib.post(Action::Hide {
            post: off_topic,
            reason: "Not about wound kits".into(),
        })?;
        lib.post(Action::Topic(Topic {
            title: "Web test: wound care kits across sites".into(),
            body: "How do your kits differ?".into(),
            about: Some(revised),
            pathways: Vec::new(),
        }))?;

        let library = Arc::new(Mutex::new(lib));
        let state = WebState::new(
            library.lock().unwrap_or_else(|p| p.into_inner()).reads(),
            None,
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let served = tokio::runtime::Runtime::new().map(|rt| {
                rt.block_on(async move {
                    match WebServer::start(([127, 0, 0, 1], 0).into(), state).await {
                        Ok(server) => {
                            let _ = tx.send(Ok(server.addr));
                            std::future::pending::<()>().await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                });
            });
            if let Err(e) = served {
                eprintln!("no runtime for the web server: {e}");
            }
        });
        let addr = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the web server thread stopped"))?
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Self {
            base: format!("http://{addr}"),
            library,
            question,
            revised,
            old,
            new,
            withdrawn,
            hostile,
            qi,
            _dir: dir,
        })
    }
}
