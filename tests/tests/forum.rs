//! Clinicians at two sites hold a conversation through their own nodes'
//! web pages, over real libp2p connections on loopback: a clinician at B
//! signs in and asks; a clinician at C, on another node, sees it among the
//! open questions and answers; B sees the answer and marks it resolved; C
//! sees it resolved. Every post is signed by the person's own key, made
//! and delegated at their site after the network formed.

use std::time::Duration;

use gatehouse_node::runtime::RunningNode;
use gatehouse_node::web::WebServer;
use gatehouse_node::web::auth::SESSION_COOKIE;
use gatehouse_tests::cluster::{Cluster, serve_with_staff};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

const DEADLINE: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";

/// One clinician signed in to their own node's web page.
struct Clinician {
    base: String,
    token: String,
    client: reqwest::Client,
    _server: WebServer,
}

impl Clinician {
    /// Adds `name` as staff at `node`, serves its web page and signs in.
    async fn at(node: &RunningNode, home: &gatehouse_node::home::Home, name: &str) -> Self {
        let (server, new) = serve_with_staff(node, home, name)
            .await
            .expect("serve with staff");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let base = format!("http://{}", server.addr);
        let form = serde_urlencoded::to_string([
            ("login", new.account.login.as_str()),
            ("password", PASSWORD),
            ("setup_code", new.setup_code.as_str()),
        ])
        .expect("form");
        let r = client
            .post(format!("{base}/signin"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r.headers()[SET_COOKIE]
            .to_str()
            .expect("cookie")
            .to_string();
        let token = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_string())
            .expect("token");
        Clinician {
            base,
            token,
            client,
            _server: server,
        }
    }

    async fn get(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("{SESSION_COOKIE}={}", self.token))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("page")
    }

    async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..at + 64].to_string()
    }

    /// Posts a form from the page at `from`; returns where it sent us.
    async fn post(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> String {
        let csrf = self.csrf(from).await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("{SESSION_COOKIE}={}", self.token))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&all).expect("form"))
            .send()
            .await
            .expect("post");
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{path}: {:?}",
            r.text().await
        );
        r.headers()[LOCATION]
            .to_str()
            .expect("location")
            .to_string()
    }

    /// Waits until the page at `path` shows `text`.
    async fn sees(&self, path: &str, text: &str) -> Duration {
        let started = std::time::Instant::now();
        loop {
            if self.get(path).await.contains(text) {
                return started.elapsed();
            }
            assert!(started.elapsed() < DEADLINE, "{path} never showed {text:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clinicians_at_two_sites_ask_answer_and_resolve_through_their_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    let nodes = cluster.start_all().await.expect("start");
    let (b, c) = (&nodes[1], &nodes[2]);
    let patel = Clinician::at(b, &cluster.homes[1], "Dr A Patel").await;
    let okafor = Clinician::at(c, &cluster.homes[2], "Nurse B Okafor").await;

    let thread = patel
        .post(
            "/questions/ask",
            "/questions",
            &[
                ("title", "Gabapentinoid diversion on a Cat C wing"),
                ("body", "How do you manage it?"),
                ("pathway", "pharmacy-medicines"),
                ("urgency", "within-a-week"),
            ],
        )
        .await;
    // C's clinician finds it among the open questions, signed at B.
    let took = okafor
        .sees("/questions", "Gabapentinoid diversion on a Cat C wing")
        .await;
    eprintln!("asked at B, listed at C after {took:?}");
    assert!(
        okafor
            .get(&thread)
            .await
            .contains("Dr A Patel (clinician), HMP Site 1")
    );
    okafor
        .post(
            &thread,
            &format!("{thread}/reply"),
            &[(
                "body",
                "Supervised liquid formulations, and a wing-based check.",
            )],
        )
        .await;
    let took = patel
        .sees(&thread, "Nurse B Okafor (clinician), HMP Site 2")
        .await;
    eprintln!("answered at C, shown at B after {took:?}");
    // B marks the answer that resolved it.
    let page = patel.get(&thread).await;
    let at = page
        .find("name=\"answer\" value=\"")
        .expect("a resolve button")
        + 21;
    let answer = page[at..at + 64].to_string();
    patel
        .post(
            &thread,
            &format!("{thread}/resolve"),
            &[("answer", &answer)],
        )
        .await;
    let took = okafor
        .sees(&thread, "This answer resolved the question")
        .await;
    eprintln!("resolved at B, shown at C after {took:?}");
    okafor
        .sees("/questions?list=answered", "Gabapentinoid diversion")
        .await;
    for n in &nodes {
        n.stop().await;
    }
}
