//! The web page in a real headless Chromium, driven over WebDriver
//! (chromedriver): a clinician searches, narrows by a facet, opens an item,
//! reads its history and a diff, and follows a superseded item to its
//! successor; clinicians at two sites, each on their own node and page,
//! sign in from the keyboard, ask, answer and resolve a question. axe-core
//! runs inside every page visited; no serious or critical violation is
//! allowed.
//!
//! Needs Chromium and ChromeDriver (Debian's `chromium` and
//! `chromium-driver`) and axe-core (`npm ci` in `tests/browser`); `.ci/run`
//! installs all three. `GATEHOUSE_CHROMIUM`, `GATEHOUSE_CHROMEDRIVER` and
//! `GATEHOUSE_AXE` point elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use gatehouse_tests::library_site::LibrarySite;
use serde_json::{Value, json};

fn site() -> &'static LibrarySite {
    static SITE: OnceLock<LibrarySite> = OnceLock::new();
    SITE.get_or_init(|| LibrarySite::start().expect("serve the test library"))
}

fn path_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is not at {}: install it (`.ci/run` does: apt-get install chromium chromium-driver; \
         npm ci in tests/browser)",
        path.display()
    );
}

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether chromedriver on `port` answers `/status` with `"ready": true`.
fn driver_ready(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.replace(' ', "").contains("\"ready\":true")
}

async fn browser() -> (Driver, Client) {
    let chromium = path_from_env("GATEHOUSE_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = path_from_env("GATEHOUSE_CHROMEDRIVER", "/usr/bin/chromedriver");
    require(&chromium, "Chromium");
    require(&chromedriver, "ChromeDriver");
    let port = free_port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: profile,
    };
    // Listening is not ready: a session asked for before chromedriver
    // says it is ready can have its connection reset.
    let started = Instant::now();
    while !driver_ready(port) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in Chromium");
    (driver, client)
}

fn axe_source() -> String {
    let path = path_from_env(
        "GATEHOUSE_AXE",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/browser/node_modules/axe-core/axe.min.js"
        ),
    );
    require(&path, "axe-core");
    std::fs::read_to_string(&path).expect("read axe-core")
}

/// Runs axe-core in the current page; fails on serious or critical
/// violations of WCAG 2.2 A/AA (and axe's best practices), naming each.
async fn assert_accessible(c: &Client, page: &str) {
    static AXE: OnceLock<String> = OnceLock::new();
    let source = AXE.get_or_init(axe_source);
    c.execute(&format!("{source}\nreturn typeof axe;"), vec![])
        .await
        .expect("inject axe-core");
    let result = c
        .execute_async(
            r"const done = arguments[arguments.length - 1];
              axe.run(document, { runOnly: { type: 'tag', values:
                  ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } })
                .then(r => done({ passes: r.passes.length, violations: r.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) })) }))
                .catch(e => done({ error: String(e) }));",
            vec![],
        )
        .await
        .expect("run axe-core");
    assert!(result["error"].is_null(), "{page}: axe failed: {result}");
    assert!(
        result["passes"].as_u64().unwrap_or(0) > 10,
        "{page}: axe checked nothing: {result}"
    );
    let violations = result["violations"].as_array().cloned().unwrap_or_default();
    for v in &violations {
        eprintln!(
            "{page}: axe {} ({}): {} at {}",
            v["id"], v["impact"], v["help"], v["nodes"]
        );
    }
    let bad: Vec<&Value> = violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(
        bad.is_empty(),
        "{page}: serious or critical accessibility violations: {bad:?}"
    );
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.expect("find") {
        out.push(e.text().await.expect("text"));
    }
    out
}

/// Waits until the browser has left `before` and the new page has loaded.
async fn wait_for_navigation(c: &Client, before: &str) {
    let started = Instant::now();
    loop {
        let url = c.current_url().await.expect("url");
        let ready = c
            .execute("return document.readyState;", vec![])
            .await
            .expect("readyState");
        if url.as_str() != before && ready == json!("complete") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still at {before}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clicks the element at `locator` and waits for the page it leads to.
async fn click_to_navigate(c: &Client, locator: Locator<'_>, what: &str) {
    let before = c.current_url().await.expect("url").to_string();
    c.find(locator)
        .await
        .unwrap_or_else(|e| panic!("no {what}: {e}"))
        .click()
        .await
        .expect("click");
    wait_for_navigation(c, &before).await;
}

async fn click_link(c: &Client, scope: &str, label: &str) {
    let xpath = format!("{scope}//a[normalize-space()={label:?}]");
    click_to_navigate(
        c,
        Locator::XPath(&xpath),
        &format!("link {label:?} in {scope}"),
    )
    .await;
}

/// Searches from the current page, through the header's Search link when
/// the page has no search box of its own.
async fn search_for(c: &Client, words: &str) {
    if c.find(Locator::Id("q")).await.is_err() {
        click_link(c, "//nav[@aria-label='Main']", "Search").await;
    }
    let q = c.find(Locator::Id("q")).await.expect("the search box");
    q.clear().await.expect("clear");
    q.send_keys(words).await.expect("type");
    click_to_navigate(c, Locator::Css("form.search-form button"), "search button").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clinician_finds_reads_and_compares_a_policy() {
    let site = site();
    let (_driver, c) = browser().await;
    c.goto(&format!("{}/", site.base)).await.expect("home");
    assert_accessible(&c, "home").await;

    // Search for naloxone from the home page.
    search_for(&c, "naloxone").await;
    assert_eq!(text(&c, "h1").await, "Search results for “naloxone”");
    let all = text(&c, "p.result-count").await;
    assert!(
        !c.find_all(Locator::Css("ol.results mark"))
            .await
            .expect("marks")
            .is_empty()
    );
    assert_accessible(&c, "search").await;

    // Narrow by kind.
    click_link(&c, "//nav[contains(@class,'facets')]", "Procedure").await;
    assert!(
        c.current_url()
            .await
            .expect("url")
            .as_str()
            .contains("kind=procedure")
    );
    let narrowed = text(&c, "p.result-count").await;
    assert_ne!(narrowed, all, "the facet narrowed the results");
    let metas = texts(&c, "ol.results .result-meta").await;
    assert!(
        !metas.is_empty() && metas.iter().all(|m| m.contains("Procedure")),
        "{metas:?}"
    );

    // Open an item from another establishment: verified signer, details, history.
    click_link(
        &c,
        "//ol[contains(@class,'results')]",
        "Take-home naloxone on release",
    )
    .await;
    assert_eq!(text(&c, "h1").await, "Take-home naloxone on release");
    let verified = text(&c, ".verified").await;
    assert!(
        verified.contains("signed by") && verified.contains("HMP Northgate"),
        "{verified}"
    );
    assert!(
        !texts(&c, "#history-heading + table tbody tr")
            .await
            .is_empty()
    );
    assert_accessible(&c, "item").await;

    // A revised item: its history and a diff between two versions.
    search_for(&c, "wound care").await;
    click_link(
        &c,
        "//ol[contains(@class,'results')]",
        "Web test wound care",
    )
    .await;
    let rows = texts(&c, "#history-heading + table tbody tr").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    c.find(Locator::Id("compare-from"))
        .await
        .expect("from")
        .select_by_value("1")
        .await
        .expect("choose version 1");
    c.find(Locator::Id("compare-to"))
        .await
        .expect("to")
        .select_by_value("3")
        .await
        .expect("choose version 3");
    click_to_navigate(
        &c,
        Locator::Css("form.compare-form button"),
        "compare button",
    )
    .await;
    assert_eq!(text(&c, "h1").await, "Changes from version 1 to 3");
    assert!(
        texts(&c, ".diff-added ins")
            .await
            .contains(&"Tell the pharmacist.".to_string())
    );
    assert!(
        texts(&c, ".diff-removed del")
            .await
            .contains(&"Check the kit.".to_string())
    );
    assert_accessible(&c, "diff").await;

    // A superseded item points to its successor.
    search_for(&c, "web test old procedure").await;
    click_link(
        &c,
        "//ol[contains(@class,'results')]",
        "Web test old procedure",
    )
    .await;
    assert!(text(&c, ".notice-superseded").await.contains("superseded"));
    click_link(
        &c,
        "//div[contains(@class,'notice-superseded')]",
        "Web test new procedure",
    )
    .await;
    assert_eq!(text(&c, "h1").await, "Web test new procedure");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .as_str()
            .ends_with(&site.new.to_hex())
    );

    for page in ["establishments", "network"] {
        c.goto(&format!("{}/{page}", site.base))
            .await
            .expect("page");
        assert_accessible(&c, page).await;
    }
    c.goto(&format!("{}/search?q=zzzzqqqq", site.base))
        .await
        .expect("no results");
    assert_eq!(text(&c, "p.result-count").await, "No items match.");
    assert_accessible(&c, "no results").await;
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_item_runs_nothing_and_loads_nothing_in_the_browser() {
    let site = site();
    let (_driver, c) = browser().await;
    c.goto(&format!("{}/items/{}", site.base, site.hostile))
        .await
        .expect("item");
    let title = c.title().await.expect("title");
    assert!(
        title.starts_with("Web test <script>alert(9)</script> title"),
        "{title}"
    );
    let scripts = c
        .execute(
            "return document.scripts.length + document.images.length;",
            vec![],
        )
        .await
        .expect("count");
    assert_eq!(scripts, json!(0));
    let handlers = c
        .execute(
            "return [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length;",
            vec![],
        )
        .await
        .expect("handlers");
    assert_eq!(handlers, json!(0));
    let links = c
        .execute("return [...document.links].map(a => a.href).filter(h => !h.startsWith('http')).length;", vec![])
        .await
        .expect("links");
    assert_eq!(links, json!(0));
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_qi_leads_spc_chart_shows_its_signals_without_javascript_and_passes_axe() {
    let site = site();
    let (_driver, c) = browser().await;
    c.goto(&format!("{}/items/{}", site.base, site.qi))
        .await
        .expect("item");
    // Two charts, each an image with a title and description.
    let labelled = c
        .execute(
            "return [...document.querySelectorAll('svg.spc-svg')].map(s => [s.getAttribute('role'), ...s.getAttribute('aria-labelledby').split(' ').map(id => !!document.getElementById(id))]);",
            vec![],
        )
        .await
        .expect("charts");
    assert_eq!(
        labelled,
        json!([["img", true, true], ["img", true, true]]),
        "{labelled}"
    );
    // The shift from the eleventh point is an improvement (higher is
    // better): those points are blue diamonds, the first ten grey.
    let improvement = c
        .execute(
            "return document.querySelectorAll('.spc-xmr-chart .spc-points .spc-improvement').length;",
            vec![],
        )
        .await
        .expect("count");
    assert_eq!(improvement, json!(10));
    let signals = texts(&c, ".spc-xmr-chart ul.spc-signals li").await;
    assert!(
        signals
            .iter()
            .any(|s| s.contains("points in a row above the mean") && s.contains("improvement")),
        "{signals:?}"
    );
    assert!(
        signals.iter().all(|s| !s.contains("concern")),
        "{signals:?}"
    );
    let page = text(&c, "main").await;
    assert!(page.contains("PDSA 2: a pharmacist at reception"), "{page}");
    assert!(page.contains("IHI score 3.5: Improvement"), "{page}");
    let scripts = c
        .execute("return document.scripts.length;", vec![])
        .await
        .expect("scripts");
    assert_eq!(scripts, json!(0));
    assert_accessible(&c, "QI item with charts").await;
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_phone_the_first_result_shows_before_any_filter() {
    let site = site();
    let (_driver, c) = browser().await;
    c.set_window_size(390, 844)
        .await
        .expect("phone-sized window");
    // A loaded machine may answer a page busy (503): it is asked again
    // until the results are there.
    let started = Instant::now();
    loop {
        c.goto(&format!("{}/search?q=naloxone", site.base))
            .await
            .expect("search");
        if c.find(Locator::Css("ol.results .result-title"))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no results: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let layout = c
        .execute(
            "const first = document.querySelector('ol.results .result-title').getBoundingClientRect();
             const facets = document.querySelector('nav.facets').getBoundingClientRect();
             const link = document.querySelector('.filters-link a');
             return [first.top, first.bottom, facets.top, innerHeight, innerWidth,
                     document.documentElement.scrollWidth, window.scrollY,
                     link ? link.getBoundingClientRect().height : 0];",
            vec![],
        )
        .await
        .expect("layout");
    let n = |i: usize| layout[i].as_f64().expect("a number");
    let (top, bottom, facets, height, width) = (n(0), n(1), n(2), n(3), n(4));
    assert!(width <= 400.0, "the window is phone-sized: {layout}");
    assert_eq!(n(6), 0.0, "nothing has scrolled");
    assert!(
        top >= 0.0 && bottom <= height,
        "the first result's title is on the first screen: {layout}"
    );
    assert!(
        facets > bottom,
        "the filters come after the results: {layout}"
    );
    assert!(n(5) <= width, "nothing is wider than the screen: {layout}");
    assert!(
        n(7) > 0.0,
        "a link at the top leads to the filters: {layout}"
    );
    assert_accessible(&c, "search on a phone").await;
    // The link reaches the filters.
    click_link(&c, "//p[contains(@class,'filters-link')]", "Filter results").await;
    assert!(
        c.current_url()
            .await
            .expect("url")
            .as_str()
            .ends_with("#facets-heading")
    );
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyboard_users_skip_to_content_and_see_where_focus_is() {
    let site = site();
    let (_driver, c) = browser().await;
    c.goto(&format!("{}/search?q=naloxone", site.base))
        .await
        .expect("search");
    let body = c.find(Locator::Css("body")).await.expect("body");
    body.send_keys(&Key::Tab.to_string()).await.expect("tab");
    let focused = c
        .execute("return [document.activeElement.className, document.activeElement.textContent, getComputedStyle(document.activeElement).backgroundColor];", vec![])
        .await
        .expect("active element");
    assert_eq!(focused[0], "skip-link", "{focused}");
    assert_eq!(focused[1], "Skip to main content");
    assert_eq!(focused[2], "rgb(255, 235, 59)", "focus is shown in yellow");
    c.active_element()
        .await
        .expect("active")
        .send_keys(&Key::Enter.to_string())
        .await
        .expect("enter");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .as_str()
            .ends_with("#main")
    );
    c.close().await.expect("close");
}

/// A node of a fresh three-site network serving its web page with staff
/// accounts, and one clinician's set-up code there.
struct ForumSite {
    base: String,
    login: String,
    setup_code: String,
    _server: gatehouse_node::web::WebServer,
}

async fn forum_site(
    node: &gatehouse_node::runtime::RunningNode,
    home: &gatehouse_node::home::Home,
    name: &str,
    host: &str,
) -> ForumSite {
    let (server, new) = gatehouse_tests::cluster::serve_with_staff(node, home, name)
        .await
        .expect("serve with staff");
    ForumSite {
        // Distinct host names, so the two sites' cookies stay apart.
        base: format!("http://{host}:{}", server.addr.port()),
        login: new.account.login,
        setup_code: new.setup_code,
        _server: server,
    }
}

async fn fill(c: &Client, id: &str, value: &str) {
    let field = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no field #{id}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

/// Signs in for the first time with the set-up code, from the keyboard.
async fn set_up_and_sign_in(c: &Client, site: &ForumSite) {
    c.goto(&format!("{}/signin", site.base))
        .await
        .expect("sign-in page");
    assert_accessible(c, "sign in").await;
    fill(c, "setup-login", &site.login).await;
    fill(c, "setup-code", &site.setup_code).await;
    fill(c, "new-password", "correct horse battery staple").await;
    let before = c.current_url().await.expect("url").to_string();
    c.find(Locator::Id("new-password"))
        .await
        .expect("password field")
        .send_keys(&Key::Enter.to_string())
        .await
        .expect("press Enter");
    wait_for_navigation(c, &before).await;
    assert!(text(c, ".account-bar").await.contains("Signed in as"));
}

/// Reloads the page at `url` until `css` holds `wanted`.
async fn wait_for_text(c: &Client, url: &str, css: &str, wanted: &str) {
    let started = Instant::now();
    loop {
        c.goto(url).await.expect("load");
        let now: Vec<String> = texts(c, css).await;
        // Badges are shown in capitals by the stylesheet.
        if now
            .iter()
            .any(|t| t.to_lowercase().contains(&wanted.to_lowercase()))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url} never showed {wanted:?} in {css}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clinicians_at_two_sites_ask_and_answer_through_their_own_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = gatehouse_tests::cluster::Cluster::new(dir.path(), 3).expect("cluster");
    let nodes = cluster.start_all().await.expect("start");
    let site_b = forum_site(&nodes[1], &cluster.homes[1], "Dr A Patel", "127.0.0.1").await;
    let site_c = forum_site(&nodes[2], &cluster.homes[2], "Nurse B Okafor", "localhost").await;
    let (_driver, c) = browser().await;

    // B: sign in, ask.
    set_up_and_sign_in(&c, &site_b).await;
    c.goto(&format!("{}/questions", site_b.base))
        .await
        .expect("questions");
    assert_accessible(&c, "questions").await;
    click_link(&c, "//main", "Ask a question").await;
    assert_accessible(&c, "ask").await;
    fill(&c, "title", "Gabapentinoid diversion on a Cat C wing").await;
    fill(&c, "body", "How do you manage it on the wings?").await;
    c.find(Locator::Id("pathway-pharmacy-medicines"))
        .await
        .expect("pathway box")
        .send_keys(" ")
        .await
        .expect("tick with the space bar");
    click_to_navigate(&c, Locator::Css("form[action='/questions'] button"), "send").await;
    let thread_b = c.current_url().await.expect("url").to_string();
    assert_eq!(
        text(&c, "h1").await,
        "Gabapentinoid diversion on a Cat C wing"
    );
    assert_accessible(&c, "thread").await;
    let path = thread_b
        .split_once("/threads/")
        .map(|(_, id)| format!("/threads/{id}"))
        .expect("a thread address");

    // C: sign in, find it among the open questions, answer.
    set_up_and_sign_in(&c, &site_c).await;
    wait_for_text(
        &c,
        &format!("{}/questions", site_c.base),
        "ol.results .result-title",
        "Gabapentinoid diversion",
    )
    .await;
    click_link(
        &c,
        "//ol[contains(@class,'results')]",
        "Gabapentinoid diversion on a Cat C wing",
    )
    .await;
    assert!(
        text(&c, ".post-meta")
            .await
            .contains("Dr A Patel (clinician), HMP Site 1")
    );
    fill(
        &c,
        "reply",
        "Supervised liquid formulations, and a wing-based check.",
    )
    .await;
    click_to_navigate(
        &c,
        Locator::Css("form[action$='/reply'] button"),
        "send answer",
    )
    .await;
    assert_accessible(&c, "thread with an answer").await;

    // B: the answer arrives in the inbox; from there, mark it as the one
    // that resolved the question.
    wait_for_text(
        &c,
        &format!("{}/inbox", site_b.base),
        "ol.results",
        "Nurse B Okafor (clinician), HMP Site 2 answered your question",
    )
    .await;
    assert_accessible(&c, "inbox").await;
    click_link(&c, "//ol", "Gabapentinoid diversion on a Cat C wing").await;
    let at = c.current_url().await.expect("url").to_string();
    assert!(at.starts_with(&thread_b) && at.contains("#post-"), "{at}");
    // (Resolving comes back to this same address; start from the thread's.)
    c.goto(&thread_b).await.expect("thread");
    click_to_navigate(
        &c,
        Locator::XPath("//button[normalize-space()='This resolved my question']"),
        "resolve",
    )
    .await;

    // C sees it resolved.
    wait_for_text(
        &c,
        &format!("{}{path}", site_c.base),
        ".post .badge",
        "This answer resolved the question",
    )
    .await;
    for n in &nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clinician_discusses_an_item_edits_and_withdraws() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = gatehouse_tests::cluster::Cluster::new(dir.path(), 1).expect("cluster");
    let nodes = cluster.start_all().await.expect("start");
    let item = nodes[0]
        .lock()
        .publish(
            &gatehouse_tests::library_site::content(
                "Naloxone on release",
                "2027-06-01",
                "Every person with an opioid history leaves with naloxone.",
            ),
            &[],
        )
        .expect("publish");
    let site = forum_site(&nodes[0], &cluster.homes[0], "Dr A Patel", "127.0.0.1").await;
    let (_driver, c) = browser().await;
    set_up_and_sign_in(&c, &site).await;

    // From the item's page to a discussion about it.
    c.goto(&format!("{}/items/{}", site.base, item.to_hex()))
        .await
        .expect("item");
    assert_accessible(&c, "item with its discussion").await;
    click_link(&c, "//main", "Discuss this item").await;
    assert_accessible(&c, "start a discussion").await;
    // Sent empty, the form says what is missing, at the field.
    click_to_navigate(
        &c,
        Locator::Css("form[action='/discussions'] button"),
        "send empty",
    )
    .await;
    assert!(text(&c, ".error-summary").await.contains("title"));
    assert_accessible(&c, "start a discussion, with an error").await;
    fill(&c, "title", "Do you give naloxone to everyone released?").await;
    fill(&c, "body", "We give it to all with an opioid history.").await;
    click_to_navigate(
        &c,
        Locator::Css("form[action='/discussions'] button"),
        "start",
    )
    .await;
    assert_eq!(
        text(&c, "h1").await,
        "Do you give naloxone to everyone released?"
    );
    assert!(text(&c, "main").await.contains("About Naloxone on release"));

    // Edit it: a new version, the earlier one kept.
    click_link(&c, "//article", "Edit").await;
    assert_accessible(&c, "edit a post").await;
    fill(&c, "body", "We give it to everyone, and train families.").await;
    click_to_navigate(&c, Locator::Css("form[action$='/edit'] button"), "save").await;
    assert!(text(&c, ".post .body").await.contains("train families"));
    assert!(
        text(&c, "details.versions summary")
            .await
            .contains("1 earlier version")
    );
    assert_accessible(&c, "thread with an edited post").await;

    // Withdraw it, after a page that asks.
    click_link(&c, "//article", "Withdraw").await;
    assert_accessible(&c, "withdraw a post").await;
    click_to_navigate(
        &c,
        Locator::Css("form[action$='/withdraw'] button"),
        "withdraw",
    )
    .await;
    assert!(
        text(&c, ".hidden-post")
            .await
            .contains("Withdrawn by its author")
    );

    c.goto(&format!("{}/moderation", site.base))
        .await
        .expect("log");
    assert_accessible(&c, "moderation log").await;
    for n in &nodes {
        n.stop().await;
    }
}
