//! Signing in and asking on the web page, over real HTTP on loopback: the
//! set-up code then a password; a form without its CSRF token refused; a
//! token planted before sign-in worth nothing; five wrong passwords lock
//! the login; an NHS number refused where it is written; a removed
//! person's session ends; script, handlers, `javascript:` links and remote
//! images in a post render inert; staff acknowledge an item from its page
//! and the register shows who has not.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_node::library::Library;
use gatehouse_node::staff::Staff;
use gatehouse_node::web::auth::{Accounts, IDLE_TIMEOUT, SESSION_COOKIE};
use gatehouse_node::web::{WebAccess, WebServer, WebState};
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::jiff::ToSpan;
use gatehouse_protocol::vocab::Job;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

struct Site {
    _dir: tempfile::TempDir,
    home: gatehouse_node::home::Home,
    library: Arc<Mutex<Library>>,
    server: WebServer,
    client: reqwest::Client,
    setup_code: String,
}

const LOGIN: &str = "dr-a-patel";
const PASSWORD: &str = "a long enough password";

async fn site() -> Site {
    site_with(WebAccess::Open, IDLE_TIMEOUT).await
}

async fn site_with(access: WebAccess, idle: Duration) -> Site {
    let (dir, home, mut lib) = common::new_site();
    let new = Staff::of(&home)
        .add(&mut lib, "Dr A Patel", None, MemberRole::Clinician)
        .expect("add");
    let reads = lib.reads();
    let library = Arc::new(Mutex::new(lib));
    let mut accounts = Accounts::new(Staff::of(&home), library.clone(), None);
    accounts.idle = idle;
    let state = WebState::new(reads, None)
        .with_accounts(accounts)
        .with_access(access);
    let server = WebServer::start(([127, 0, 0, 1], 0).into(), state)
        .await
        .expect("serve");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Site {
        _dir: dir,
        home,
        library,
        server,
        client,
        setup_code: new.setup_code,
    }
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).expect("form"));
        if let Some(c) = cookie {
            req = req.header(COOKIE, format!("{SESSION_COOKIE}={c}"));
        }
        req.send().await.expect("post")
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header(COOKIE, format!("{SESSION_COOKIE}={c}"));
        }
        req.send().await.expect("get")
    }

    /// Signs in (the first time, with the set-up code); returns the token.
    async fn sign_in(&self, first: bool) -> String {
        self.sign_in_as(LOGIN, first.then_some(self.setup_code.as_str()))
            .await
    }

    /// Signs `login` in (with `setup_code` the first time); returns the
    /// session token.
    async fn sign_in_as(&self, login: &str, setup_code: Option<&str>) -> String {
        let mut form = vec![
            ("login", login),
            ("password", PASSWORD),
            ("next", "/questions"),
        ];
        if let Some(code) = setup_code {
            form.push(("setup_code", code));
        }
        let r = self.post("/signin", None, &form).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
        let cookie = r
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_string();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("Secure"), "{cookie}");
        cookie
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_string())
            .expect("token")
    }

    /// The CSRF token on a page the signed-in person sees.
    async fn csrf(&self, token: &str) -> String {
        let page = self
            .get("/questions/ask", Some(token))
            .await
            .text()
            .await
            .expect("page");
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..at + 64].to_string()
    }

    fn threads(&self) -> usize {
        let lib = self.library.lock().expect("lock");
        lib.read_view()
            .threads(
                &gatehouse_node::query::forum::ThreadQuery {
                    list: gatehouse_node::query::forum::ThreadList::All,
                    ..Default::default()
                },
                0,
            )
            .len()
    }

    async fn ask(&self, token: &str, csrf: &str, title: &str, body: &str) -> reqwest::Response {
        self.post(
            "/questions",
            Some(token),
            &[
                ("csrf", csrf),
                ("title", title),
                ("body", body),
                ("pathway", "pharmacy-medicines"),
                ("urgency", "within-a-week"),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn a_clinician_sets_up_signs_in_and_asks_with_their_own_name() {
    let site = site().await;
    let token = site.sign_in(true).await;
    let csrf = site.csrf(&token).await;
    let r = site
        .ask(
            &token,
            &csrf,
            "Gabapentinoid diversion on a Cat C wing",
            "How do you manage it?",
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[LOCATION]
        .to_str()
        .expect("location")
        .to_string();
    assert!(to.starts_with("/threads/"), "{to}");
    let page = site
        .get(&to, Some(&token))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("Gabapentinoid diversion on a Cat C wing"),
        "{page}"
    );
    assert!(
        page.contains("Dr A Patel (clinician), HMP Northgate"),
        "{page}"
    );
    // Anyone may read it; only the signed in see the answer form.
    let anonymous = site.get(&to, None).await.text().await.expect("page");
    assert!(anonymous.contains("Gabapentinoid diversion"));
    assert!(!anonymous.contains("Answer this question"));
    assert!(page.contains("Answer this question"));
    // Signing in again later uses the password.
    let again = site.sign_in(false).await;
    assert_ne!(again, token, "every sign-in makes a new session");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_stores_nothing() {
    let site = site().await;
    let token = site.sign_in(true).await;
    let r = site.ask(&token, "", "A question", "Some detail").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = site
        .ask(&token, &"0".repeat(64), "A question", "Some detail")
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(site.threads(), 0);
    // Without a session, a post is sent to sign in.
    let r = site
        .ask("f".repeat(64).as_str(), "x", "A question", "Some detail")
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .expect("loc")
            .starts_with("/signin")
    );
    assert_eq!(site.threads(), 0);
}

#[tokio::test]
async fn a_token_planted_before_sign_in_is_worth_nothing() {
    let site = site().await;
    let planted = "ab".repeat(32);
    let r = site.get("/questions/ask", Some(&planted)).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "an unknown token is no session"
    );
    // Signing in with the planted cookie sent along issues a fresh token.
    let r = site
        .post(
            "/signin",
            Some(&planted),
            &[
                ("login", LOGIN),
                ("password", PASSWORD),
                ("setup_code", site.setup_code.as_str()),
            ],
        )
        .await;
    let cookie = r.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(!cookie.contains(&planted), "{cookie}");
    let r = site.get("/questions/ask", Some(&planted)).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the planted token still opens nothing"
    );
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_login() {
    let site = site().await;
    site.sign_in(true).await;
    for _ in 0..5 {
        let r = site
            .post(
                "/signin",
                None,
                &[("login", LOGIN), ("password", "not the password at all")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = site
        .post("/signin", None, &[("login", LOGIN), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = r.text().await.expect("page");
    assert!(page.contains("locked for 15 minutes"), "{page}");
}

#[tokio::test]
async fn an_nhs_number_is_refused_where_it_is_written() {
    let site = site().await;
    let token = site.sign_in(true).await;
    let csrf = site.csrf(&token).await;
    let r = site
        .ask(
            &token,
            &csrf,
            "Transfer",
            "Seen on the wing.\nNHS 943 476 5919 today",
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.expect("page");
    assert!(page.contains("line 2, column 5"), "{page}");
    assert!(
        page.contains("Seen on the wing."),
        "what was written is kept: {page}"
    );
    assert_eq!(site.threads(), 0);
}

#[tokio::test]
async fn a_removed_persons_session_ends() {
    let site = site().await;
    let token = site.sign_in(true).await;
    assert_eq!(
        site.get("/questions/ask", Some(&token)).await.status(),
        StatusCode::OK
    );
    {
        let mut lib = site.library.lock().expect("lock");
        Staff::of(&site.home)
            .remove(&mut lib, LOGIN, "left the service")
            .expect("remove");
    }
    assert_eq!(
        site.get("/questions/ask", Some(&token)).await.status(),
        StatusCode::SEE_OTHER,
        "the session ended with the key"
    );
}

#[tokio::test]
async fn script_handlers_javascript_links_and_remote_images_render_inert() {
    let site = site().await;
    let token = site.sign_in(true).await;
    let csrf = site.csrf(&token).await;
    let body = "Hello <script>alert(1)</script> <a href=\"x\" onclick=\"alert(2)\">x</a> \
                [click](javascript:alert(3)) ![img](http://198.51.100.7/track.png) \
                <img src=\"http://198.51.100.7/pixel.png\" onerror=\"alert(4)\">";
    let r = site.ask(&token, &csrf, "Rendering test", body).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[LOCATION]
        .to_str()
        .expect("location")
        .to_string();
    let page = site.get(&to, None).await.text().await.expect("page");
    for bad in [
        "<script",
        "onclick",
        "onerror",
        "javascript:",
        "198.51.100.7/track",
        "<img",
    ] {
        assert!(!page.contains(bad), "{bad} in {page}");
    }
}

#[tokio::test]
async fn a_sign_in_posted_from_another_site_is_refused() {
    let site = site().await;
    let form = serde_urlencoded::to_string([
        ("login", LOGIN),
        ("password", PASSWORD),
        ("setup_code", site.setup_code.as_str()),
    ])
    .expect("form");
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = site
            .client
            .post(site.url("/signin"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(name, value)
            .body(form.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
        assert!(r.headers().get(SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn a_staff_only_node_shows_others_nothing_but_the_way_in() {
    let s = site_with(WebAccess::Staff, IDLE_TIMEOUT).await;
    // A browser is sent to sign in, and told where it was going.
    for path in [
        "/",
        "/search?q=policy",
        "/questions",
        "/establishments",
        "/network",
    ] {
        let r = s.get(path, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        let to = r.headers()[LOCATION]
            .to_str()
            .expect("location")
            .to_string();
        let back = serde_urlencoded::to_string([("next", path)]).expect("query");
        assert_eq!(to, format!("/signin?{back}"), "{path}");
    }
    // A program is answered 401, with no roster and no library in it.
    for path in [
        "/api/v1/establishments",
        "/api/v1/status",
        "/api/v1/search?q=x",
    ] {
        let r = s.get(path, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = r.text().await.expect("body");
        assert!(body.contains("sign in"), "{body}");
        assert!(!body.contains("Dr A Patel"), "{body}");
    }
    // A cookie that names no session is no way in either.
    let r = s.get("/api/v1/status", Some(&"0".repeat(64))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The way in and its stylesheet are open.
    assert_eq!(
        s.get("/signin?next=%2F", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        s.get("/static/style.css", None).await.status(),
        StatusCode::OK
    );

    // Signed in, everything reads as on an open node.
    let token = s.sign_in(true).await;
    assert_eq!(s.get("/", Some(&token)).await.status(), StatusCode::OK);
    let r = s.get("/api/v1/establishments", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Signed out, the door shuts again.
    let csrf = s.csrf(&token).await;
    let r = s
        .post("/signout", Some(&token), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        s.get("/", Some(&token)).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_session_left_idle_past_the_time_out_ends() {
    let s = site_with(WebAccess::Staff, Duration::from_secs(2)).await;
    let token = s.sign_in(true).await;
    // Each request keeps the session alive...
    for _ in 0..4 {
        assert_eq!(s.get("/", Some(&token)).await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // ...and one left idle past the time-out is over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        s.get("/", Some(&token)).await.status(),
        StatusCode::SEE_OTHER
    );
}

impl Site {
    /// Adds a second clinician and signs them in; returns their token.
    async fn colleague(&self) -> String {
        let new = {
            let mut lib = self.library.lock().expect("lock");
            Staff::of(&self.home)
                .add(&mut lib, "Nurse B Okoro", None, MemberRole::Clinician)
                .expect("add")
        };
        self.sign_in_as(&new.account.login, Some(&new.setup_code))
            .await
    }

    /// Posts a form and returns where it sent the browser.
    async fn post_to(&self, path: &str, token: &str, form: &[(&str, &str)]) -> String {
        let r = self.post(path, Some(token), form).await;
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

    async fn page(&self, path: &str, token: Option<&str>) -> String {
        let r = self.get(path, token).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.text().await.expect("page")
    }
}

/// The id in a `/threads/ID#post-ID` or `/threads/ID` address.
fn ids_in(to: &str) -> (String, Option<String>) {
    let rest = to.strip_prefix("/threads/").expect("a thread address");
    match rest.split_once("#post-") {
        Some((t, p)) => (t.to_string(), Some(p.to_string())),
        None => (rest.to_string(), None),
    }
}

#[tokio::test]
async fn an_item_is_discussed_from_its_page_with_quotes() {
    let s = site().await;
    let item = {
        let mut content = gatehouse_node::sample::synthetic_content(7);
        content.title = "Naloxone on release".into();
        let mut lib = s.library.lock().expect("lock");
        lib.publish(&content, &[]).expect("publish").to_hex()
    };
    let item_page = s.page(&format!("/items/{item}"), None).await;
    assert!(
        item_page.contains("No one has discussed this item yet."),
        "{item_page}"
    );
    assert!(item_page.contains(&format!("/discussions/new?about={item}")));

    let a = s.sign_in(true).await;
    let form = s
        .page(&format!("/discussions/new?about={item}"), Some(&a))
        .await;
    assert!(form.contains("Naloxone on release"), "{form}");
    let csrf = s.csrf(&a).await;
    let to = s
        .post_to(
            "/discussions",
            &a,
            &[
                ("csrf", csrf.as_str()),
                ("about", item.as_str()),
                ("title", "Do you hand naloxone to everyone released?"),
                ("body", "We give it to all with an opioid history."),
            ],
        )
        .await;
    let (thread, _) = ids_in(&to);
    // The item's page lists the discussion; the thread names the item.
    let item_page = s.page(&format!("/items/{item}"), None).await;
    assert!(
        item_page.contains("Do you hand naloxone to everyone released?"),
        "{item_page}"
    );
    let page = s.page(&to, None).await;
    assert!(page.contains(&format!("/items/{item}")), "{page}");

    // A colleague quotes the opening post in a reply.
    let b = s.colleague().await;
    let quoting = s
        .page(&format!("/threads/{thread}?quote={thread}"), Some(&b))
        .await;
    assert!(quoting.contains("Quoting Dr A Patel"), "{quoting}");
    let csrf_b = s.csrf(&b).await;
    let to = s
        .post_to(
            &format!("/threads/{thread}/reply"),
            &b,
            &[
                ("csrf", csrf_b.as_str()),
                ("quoting", thread.as_str()),
                ("body", "We do the same, and train families."),
            ],
        )
        .await;
    assert!(to.contains("#post-"), "{to}");
    let page = s.page(&format!("/threads/{thread}"), None).await;
    assert!(
        page.contains("Dr A Patel (clinician), HMP Northgate wrote</a>"),
        "{page}"
    );
    assert!(page.contains("We give it to all with an opioid history."));
    assert!(page.contains("We do the same, and train families."));

    // A free-standing topic has no item.
    let to = s
        .post_to(
            "/discussions",
            &a,
            &[
                ("csrf", csrf.as_str()),
                ("title", "Spice on the wings this winter"),
                ("body", "What are you seeing?"),
                ("pathway", "substance-misuse"),
            ],
        )
        .await;
    let page = s.page(&to, None).await;
    assert!(page.contains("Spice on the wings this winter"));
    assert!(!page.contains("About <a"), "{page}");
    let list = s.page("/questions?list=discussions", None).await;
    assert!(list.contains("Spice on the wings this winter"), "{list}");
    assert!(
        list.contains("Do you hand naloxone to everyone released?"),
        "{list}"
    );
}

#[tokio::test]
async fn an_author_edits_with_history_kept_and_withdraws() {
    let s = site().await;
    let a = s.sign_in(true).await;
    let csrf = s.csrf(&a).await;
    let r = s
        .ask(&a, &csrf, "Clozapine levels after transfer", "First text.")
        .await;
    let (thread, _) = ids_in(r.headers()[LOCATION].to_str().expect("location"));

    // The edit form holds the text as it stands.
    let form = s.page(&format!("/posts/{thread}/edit"), Some(&a)).await;
    assert!(form.contains("First text."), "{form}");
    let to = s
        .post_to(
            &format!("/posts/{thread}/edit"),
            &a,
            &[
                ("csrf", csrf.as_str()),
                ("title", "Clozapine levels after a transfer in"),
                ("body", "Second text."),
            ],
        )
        .await;
    assert!(to.starts_with(&format!("/threads/{thread}")), "{to}");
    let page = s.page(&format!("/threads/{thread}"), None).await;
    assert!(
        page.contains("Clozapine levels after a transfer in"),
        "{page}"
    );
    assert!(page.contains("Second text."));
    assert!(page.contains("1 earlier version"), "{page}");
    assert!(
        page.contains("First text."),
        "the earlier version stays readable"
    );

    // An identifier in an edit is refused at the field, and nothing changes.
    let r = s
        .post(
            &format!("/posts/{thread}/edit"),
            Some(&a),
            &[
                ("csrf", csrf.as_str()),
                ("title", "Clozapine levels after a transfer in"),
                ("body", "Patient 943 476 5919 again."),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = r.text().await.expect("page");
    assert!(refused.contains("href=\"#body\""), "{refused}");
    assert!(
        refused.contains("Patient 943 476 5919 again."),
        "the text is kept to correct"
    );
    let page = s.page(&format!("/threads/{thread}"), None).await;
    assert!(!page.contains("943 476 5919"));

    // Someone else can neither edit nor withdraw it.
    let b = s.colleague().await;
    let csrf_b = s.csrf(&b).await;
    assert_eq!(
        s.get(&format!("/posts/{thread}/edit"), Some(&b))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let r = s
        .post(
            &format!("/posts/{thread}/withdraw"),
            Some(&b),
            &[("csrf", csrf_b.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The author withdraws it, after a page that asks.
    let confirm = s.page(&format!("/posts/{thread}/withdraw"), Some(&a)).await;
    assert!(confirm.contains("Withdraw the post"), "{confirm}");
    s.post_to(
        &format!("/posts/{thread}/withdraw"),
        &a,
        &[("csrf", csrf.as_str())],
    )
    .await;
    let page = s.page(&format!("/threads/{thread}"), None).await;
    assert!(page.contains("Withdrawn by its author."), "{page}");
    assert!(!page.contains("Second text."));
    // A withdrawn post can no longer be edited.
    assert_eq!(
        s.get(&format!("/posts/{thread}/edit"), Some(&a))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_post_hidden_by_the_site_lead_shows_as_hidden_and_in_the_log() {
    let s = site().await;
    let a = s.sign_in(true).await;
    let csrf = s.csrf(&a).await;
    let r = s
        .ask(&a, &csrf, "Off-topic question", "Something unkind.")
        .await;
    let (thread, _) = ids_in(r.headers()[LOCATION].to_str().expect("location"));
    assert!(
        s.page("/moderation", None)
            .await
            .contains("No post has been hidden.")
    );
    {
        let mut lib = s.library.lock().expect("lock");
        lib.post(gatehouse_protocol::post::Action::Hide {
            post: thread.parse().expect("id"),
            reason: "Not a clinical question".into(),
        })
        .expect("hide");
    }
    let page = s.page(&format!("/threads/{thread}"), None).await;
    assert!(page.contains("Hidden by"), "{page}");
    assert!(page.contains("Not a clinical question"));
    assert!(!page.contains("Something unkind."));
    let log = s.page("/moderation", None).await;
    assert!(log.contains("Not a clinical question"), "{log}");
    assert!(
        log.contains(&format!("/threads/{thread}#post-{thread}")),
        "{log}"
    );
}

#[tokio::test]
async fn a_feed_reader_follows_a_pathway_in_atom() {
    let s = site().await;
    let item = {
        let mut content = gatehouse_node::sample::synthetic_content(3);
        content.title = "Opioid substitution on reception".into();
        content.pathways = vec![gatehouse_protocol::vocab::Pathway::PharmacyMedicines];
        let mut lib = s.library.lock().expect("lock");
        lib.publish(&content, &[]).expect("publish")
    };
    let a = s.sign_in(true).await;
    let csrf = s.csrf(&a).await;
    let r = s
        .ask(
            &a,
            &csrf,
            "Gabapentinoid diversion",
            "How do you manage it?",
        )
        .await;
    let (thread, _) = ids_in(r.headers()[LOCATION].to_str().expect("location"));

    let r = s.get("/feeds/pharmacy-medicines.atom", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("application/atom+xml")
    );
    let xml = r.text().await.expect("feed");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "feed");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2005/Atom")
    );
    let entries: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("entry"))
        .collect();
    let ids: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.children().find(|n| n.has_tag_name("id"))?.text())
        .collect();
    assert!(
        ids.contains(&format!("urn:gatehouse:item:{}", item.to_hex()).as_str()),
        "{xml}"
    );
    assert!(
        ids.contains(&format!("urn:gatehouse:thread:{thread}").as_str()),
        "{xml}"
    );
    for e in &entries {
        for field in ["title", "updated", "link", "author"] {
            assert!(
                e.children().any(|n| n.has_tag_name(field)),
                "{field}: {xml}"
            );
        }
    }
    // Another pathway's feed holds neither.
    let other = s.page("/feeds/dental.atom", None).await;
    assert!(!other.contains("Gabapentinoid"), "{other}");
    // A feed that does not exist says where the feeds are.
    let r = s.get("/feeds/nonsense.atom", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        s.page("/feeds", None)
            .await
            .contains("/feeds/pharmacy-medicines.atom")
    );
}

/// The unread count in a page's header ("Inbox 2 unread"); 0 when none.
fn unread_in(page: &str) -> usize {
    let Some(at) = page.find("class=\"header-inbox\"") else {
        panic!("no inbox link in the header: {page}")
    };
    let link = &page[at..page[at..].find("</a>").map_or(page.len(), |e| at + e)];
    link.find("class=\"unread-count\">").map_or(0, |c| {
        let digits = &link[c + 21..];
        digits[..digits.find('<').expect("a number")]
            .parse()
            .expect("a count")
    })
}

#[tokio::test]
async fn answers_replies_and_watched_items_reach_the_inbox_and_the_header_counts_them() {
    let s = site().await;
    let (item, mut content) = {
        let mut content = gatehouse_node::sample::synthetic_content(11);
        content.title = "Wound care on the segregation unit".into();
        let mut lib = s.library.lock().expect("lock");
        (lib.publish(&content, &[]).expect("publish"), content)
    };
    let a = s.sign_in(true).await;
    let b = s.colleague().await;
    let csrf_a = s.csrf(&a).await;
    let csrf_b = s.csrf(&b).await;
    assert_eq!(unread_in(&s.page("/", Some(&a)).await), 0);
    // Anonymous readers have no inbox.
    assert!(!s.page("/", None).await.contains("header-inbox"));
    assert_eq!(s.get("/inbox", None).await.status(), StatusCode::SEE_OTHER);

    // A asks; B answers: A's header counts it, and the inbox says so.
    let r = s
        .ask(&a, &csrf_a, "Dressings for self-harm wounds", "What works?")
        .await;
    let (thread, _) = ids_in(r.headers()[LOCATION].to_str().expect("location"));
    s.post_to(
        &format!("/threads/{thread}/reply"),
        &b,
        &[
            ("csrf", csrf_b.as_str()),
            ("body", "Silicone foam, changed daily."),
        ],
    )
    .await;
    assert_eq!(unread_in(&s.page("/questions", Some(&a)).await), 1);
    let inbox = s.page("/inbox", Some(&a)).await;
    assert!(
        inbox.contains("Nurse B Okoro (clinician), HMP Northgate</strong> answered your question"),
        "{inbox}"
    );
    assert!(inbox.contains("Dressings for self-harm wounds"));
    // Seen, it is no longer counted, and stays listed.
    assert_eq!(unread_in(&s.page("/", Some(&a)).await), 0);
    assert!(
        s.page("/inbox", Some(&a))
            .await
            .contains("answered your question")
    );
    // One's own posts never reach one's own inbox.
    assert_eq!(unread_in(&s.page("/", Some(&b)).await), 0);

    // B took part, so A's further reply reaches B as a reply.
    s.post_to(
        &format!("/threads/{thread}/reply"),
        &a,
        &[
            ("csrf", csrf_a.as_str()),
            ("body", "Thank you; and for cavities?"),
        ],
    )
    .await;
    assert_eq!(unread_in(&s.page("/", Some(&b)).await), 1);
    assert!(s.page("/inbox", Some(&b)).await.contains("replied in"));

    // B watches the item; a new version of it reaches B.
    let item_page = s.page(&format!("/items/{}", item.to_hex()), Some(&b)).await;
    assert!(
        item_page.contains("Watch this item for changes"),
        "{item_page}"
    );
    let back = s
        .post_to(
            "/watch",
            &b,
            &[
                ("csrf", csrf_b.as_str()),
                ("what", "item"),
                ("id", &item.to_hex()),
                ("watch", "on"),
                ("next", &format!("/items/{}", item.to_hex())),
            ],
        )
        .await;
    assert_eq!(back, format!("/items/{}", item.to_hex()));
    assert!(
        s.page(&back, Some(&b))
            .await
            .contains("Stop watching this item")
    );
    // Time moves on past the watch (the clock is in milliseconds).
    tokio::time::sleep(Duration::from_millis(5)).await;
    content.summary = "Revised after the tissue viability review.".into();
    s.library
        .lock()
        .expect("lock")
        .revise(&item, &content, &[])
        .expect("revise");
    assert_eq!(unread_in(&s.page("/", Some(&b)).await), 1);
    let inbox = s.page("/inbox", Some(&b)).await;
    assert!(inbox.contains("published a new version of"), "{inbox}");
    assert!(inbox.contains("(version 2)"), "{inbox}");
    assert!(inbox.contains("What you watch"));

    // A watch that names nothing held is refused; stopping works.
    let r = s
        .post(
            "/watch",
            Some(&b),
            &[
                ("csrf", csrf_b.as_str()),
                ("what", "thread"),
                ("id", &"ab".repeat(32)),
                ("watch", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.post_to(
        "/watch",
        &b,
        &[
            ("csrf", csrf_b.as_str()),
            ("what", "item"),
            ("id", &item.to_hex()),
            ("watch", "off"),
            ("next", "/inbox"),
        ],
    )
    .await;
    assert!(s.page("/inbox", Some(&b)).await.contains("Nothing. Use"));
    // A watch form without its token changes nothing.
    let r = s
        .post(
            "/watch",
            Some(&b),
            &[("what", "item"), ("id", &item.to_hex()), ("watch", "on")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn staff_acknowledge_from_the_item_page_and_the_register_shows_who_has_not() {
    let site = site().await;
    let patel = site.sign_in(true).await;
    let okoro = site.colleague().await;
    let staff = Staff::of(&site.home);
    staff.set_job(LOGIN, Some(Job::Nurse)).expect("job");
    staff
        .set_job("nurse-b-okoro", Some(Job::Nurse))
        .expect("job");
    let id = {
        let mut lib = site.library.lock().expect("lock");
        let id = lib
            .publish(&gatehouse_node::sample::synthetic_content(1), &[])
            .expect("publish");
        let due = lib.today().checked_add(30.days()).expect("date");
        lib.request_reading(&id, &[Job::Nurse], due, None)
            .expect("request");
        id
    };
    let path = format!("/items/{}", id.to_hex());

    let page = site.page(&path, Some(&patel)).await;
    assert!(
        page.contains("Every nurse must read version 1 by"),
        "{page}"
    );
    assert!(
        page.contains("I have read and understood version 1"),
        "{page}"
    );
    assert!(page.contains("0 of 2 asked have acknowledged it"), "{page}");
    // Someone not signed in sees the request and no register.
    let anonymous = site.page(&path, None).await;
    assert!(anonymous.contains("Every nurse must read version 1"));
    assert!(!anonymous.contains("Who has read it"));

    let csrf = site.csrf(&patel).await;
    let to = site
        .post_to(&format!("{path}/acknowledge"), &patel, &[("csrf", &csrf)])
        .await;
    assert_eq!(to, format!("{path}#reading-heading"));
    let page = site.page(&path, Some(&patel)).await;
    assert!(page.contains("You acknowledged version 1"), "{page}");
    assert!(page.contains("1 of 2 asked have acknowledged it"), "{page}");
    let row = |name: &str, page: &str| {
        let at = page.find(&format!("<td>{name}</td>")).expect("a row");
        page[at..at + 200].to_string()
    };
    assert!(row("Dr A Patel", &page).contains("Version 1, "), "{page}");
    assert!(row("Nurse B Okoro", &page).contains("Not yet"), "{page}");
    // A second acknowledgement of the same version is refused.
    let again = site
        .post(
            &format!("{path}/acknowledge"),
            Some(&patel),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    // What each still has to read, in their inbox.
    let title = gatehouse_node::sample::synthetic_content(1).title;
    let inbox = site.page("/inbox", Some(&okoro)).await;
    let to_read = &inbox[inbox.find("To read").expect("section")..];
    assert!(to_read.contains(&title), "{inbox}");
    let inbox = site.page("/inbox", Some(&patel)).await;
    assert!(
        inbox.contains("you have acknowledged everything"),
        "{inbox}"
    );

    // A significant revision asks again.
    {
        let mut lib = site.library.lock().expect("lock");
        let mut next = lib.get(&id, None).expect("item").item.content;
        next.body.push_str("\nA new step.\n");
        lib.revise(&id, &next, &[]).expect("revise");
        assert!(lib.ask_again(&id, None).expect("ask again").is_some());
    }
    let page = site.page(&path, Some(&patel)).await;
    assert!(page.contains("must read version 2"), "{page}");
    assert!(
        page.contains("I have read and understood version 2"),
        "{page}"
    );
    assert!(page.contains("0 of 2 asked have acknowledged it"), "{page}");
}
