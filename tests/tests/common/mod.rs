//! What the multi-node tests share: a person signed in to their own
//! node's web page over real HTTP.

#![allow(dead_code)]

use std::time::Duration;

use gatehouse_node::home::Home;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::staff::{NewAccount, Staff};
use gatehouse_node::web::WebServer;
use gatehouse_node::web::auth::SESSION_COOKIE;
use gatehouse_tests::cluster::serve_with_staff;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

/// How long a page is waited for.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Every test person's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// One person signed in to their own node's web page.
pub struct WebUser {
    base: String,
    token: String,
    client: reqwest::Client,
    _server: WebServer,
}

impl WebUser {
    /// Adds `name` as a clinician at `node`, serves its web page and signs in.
    pub async fn clinician(node: &RunningNode, home: &Home, name: &str) -> Self {
        let (server, new) = serve_with_staff(node, home, name)
            .await
            .expect("serve with staff");
        Self::sign_in(server, &new).await
    }

    /// Adds `name` as a site lead at `node` (delegated by its establishment
    /// key), serves its web page and signs in.
    pub async fn lead(node: &RunningNode, home: &Home, name: &str) -> Self {
        let est_key = home
            .read_key("establishment")
            .expect("read")
            .expect("an establishment key");
        let (staff_home, who) = (home.clone(), name.to_string());
        let new = node
            .local(move |lib| Staff::of(&staff_home).add_lead(lib, &who, None, &est_key))
            .await
            .expect("add a lead");
        let server = WebServer::start(([127, 0, 0, 1], 0).into(), node.web_state(home))
            .await
            .expect("serve");
        Self::sign_in(server, &new).await
    }

    /// Signs the person `new` made in (with the set-up code) to `server`.
    pub async fn sign_in(server: WebServer, new: &NewAccount) -> Self {
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
        WebUser {
            base,
            token,
            client,
            _server: server,
        }
    }

    pub async fn get(&self, path: &str) -> String {
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

    pub async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..at + 64].to_string()
    }

    /// Posts a form from the page at `from`; returns where it sent us.
    pub async fn post(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> String {
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
    pub async fn sees(&self, path: &str, text: &str) -> Duration {
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
