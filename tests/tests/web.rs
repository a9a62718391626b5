//! The web page and JSON API over real HTTP: every route, its error paths,
//! the documented shapes, and what untrusted Markdown can do (nothing).
//!
//! One node (the sample library plus items revised, superseded, withdrawn
//! and one with a hostile body) is served on loopback for all tests.

use std::sync::OnceLock;

use gatehouse_node::web::CONTENT_SECURITY_POLICY;
use gatehouse_tests::library_site::{HOSTILE_BODY, LibrarySite, content};
use serde_json::Value;

fn fixture() -> &'static LibrarySite {
    static SITE: OnceLock<LibrarySite> = OnceLock::new();
    SITE.get_or_init(|| LibrarySite::start().expect("serve the test library"))
}

struct Got {
    status: u16,
    content_type: String,
    csp: String,
    text: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

fn get(path: &str) -> Got {
    let url = format!("{}{path}", fixture().base);
    let r = reqwest::blocking::get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, csp) = (header("content-type"), header("content-security-policy"));
    Got {
        status: r.status().as_u16(),
        content_type,
        csp,
        text: r.text().expect("body"),
    }
}

fn ok_json(path: &str) -> Value {
    let g = get(path);
    assert_eq!(g.status, 200, "GET {path}: {}", g.text);
    assert!(
        g.content_type.starts_with("application/json"),
        "{path}: {}",
        g.content_type
    );
    g.json()
}

fn ok_html(path: &str) -> String {
    let g = get(path);
    assert_eq!(g.status, 200, "GET {path}: {}", g.text);
    assert!(
        g.content_type.starts_with("text/html"),
        "{path}: {}",
        g.content_type
    );
    assert_eq!(g.csp, CONTENT_SECURITY_POLICY, "{path}");
    g.text
}

fn titles(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["title"].as_str().expect("title").to_string())
        .collect()
}

#[test]
fn home_page_shows_search_recent_items_and_reviews_due_here() {
    let html = ok_html("/");
    assert!(html.contains(r#"<label class="label" for="q">Search the library</label>"#));
    assert!(html.contains("Recently published or updated"));
    assert!(
        html.contains("Web test wound care"),
        "the latest revision is recent"
    );
    assert!(html.contains("Due for review at HMP Northgate"));
}

#[test]
fn search_page_highlights_terms_and_offers_facets_with_counts() {
    let html = ok_html("/search?q=naloxone");
    assert!(html.contains("<mark>"), "terms are highlighted");
    assert!(html.contains("Take-home naloxone on release"));
    assert!(html.contains("Narrow your results"));
    let api = ok_json("/api/v1/search?q=naloxone");
    let procedures = api["facets"]["kind"]
        .as_array()
        .expect("kind facet")
        .iter()
        .find(|f| f["value"] == "procedure")
        .expect("procedures match naloxone")["count"]
        .as_u64()
        .expect("count");
    assert!(html.contains(&format!(
        r#"<a href="/search?q=naloxone&amp;kind=procedure">Procedure</a> <span class="count">({procedures})</span>"#
    )));
    let narrowed = ok_html("/search?q=naloxone&kind=procedure");
    assert!(narrowed.contains(&format!("of {procedures} matching")));
    assert!(narrowed.contains("Remove<span class=\"visually-hidden\"> filter Kind: Procedure"));
}

#[test]
fn search_page_pages_through_results() {
    let first = ok_html("/search?sort=updated");
    let total = ok_json("/api/v1/search?sort=updated")["total"]
        .as_u64()
        .expect("total");
    assert!(total > 20, "{total} items");
    assert!(first.contains(&format!("Showing 1 to 10 of {total} matching items.")));
    assert!(first.contains(r#"<a href="/search?sort=updated&amp;page=2" rel="next">Next"#));
    let second = ok_html("/search?sort=updated&page=2");
    assert!(second.contains(&format!("Showing 11 to 20 of {total} matching items.")));
    assert!(second.contains(r#"<a href="/search?sort=updated" rel="prev">Previous"#));
    assert!(second.contains(r#"<ol class="results" start="11">"#));
    let beyond = ok_html("/search?sort=updated&page=99");
    assert!(beyond.contains("but not on this page"));
}

#[test]
fn api_search_filters_counts_facets_sorts_and_pages() {
    let all = ok_json("/api/v1/search?q=naloxone&limit=50");
    let total = all["total"].as_u64().expect("total");
    assert!(total >= 4, "naloxone matched {total}");
    for dimension in ["kind", "nation", "status"] {
        let sum: u64 = all["facets"][dimension]
            .as_array()
            .expect("facet")
            .iter()
            .map(|f| f["count"].as_u64().expect("count"))
            .sum();
        // An item for several nations is counted under each.
        if dimension == "nation" {
            assert!(sum >= total, "nation counts cover the total");
        } else {
            assert_eq!(sum, total, "{dimension} counts add up to the total");
        }
    }
    let wales = ok_json("/api/v1/search?q=naloxone&nation=wales");
    assert!(wales["total"].as_u64().expect("total") < total);
    assert!(
        wales["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["nations"]
                .as_array()
                .is_some_and(|n| n.contains(&"wales".into())))
    );

    // Paging: two pages of 2 are the first 4 of the whole list, in order.
    let first = ok_json("/api/v1/search?q=naloxone&limit=2");
    let second = ok_json("/api/v1/search?q=naloxone&limit=2&offset=2");
    let mut paged = titles(&first);
    paged.extend(titles(&second));
    assert_eq!(paged, titles(&all)[..4].to_vec());
    assert_eq!(second["offset"], 2);

    let by_date = ok_json("/api/v1/search?q=naloxone&sort=updated&limit=50");
    let times: Vec<u64> = by_date["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["updated_ms"].as_u64().expect("updated_ms"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let by_review = ok_json("/api/v1/search?q=naloxone&sort=review_due&limit=50");
    let dues: Vec<String> = by_review["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["review_due"].as_str().expect("date").to_string())
        .collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{dues:?}");

    let due_soon = ok_json("/api/v1/search?review_due_before=2026-06-01&limit=500");
    assert!(due_soon["total"].as_u64().expect("total") > 0);
    assert!(
        due_soon["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["review_due"].as_str().expect("date") < "2026-06-01")
    );

    // No words: everything passing the filter, newest first.
    let browse = ok_json("/api/v1/search?status=withdrawn");
    assert_eq!(titles(&browse), ["Web test withdrawn"]);
    let owner = browse["results"][0]["owner"]
        .as_str()
        .expect("owner")
        .to_string();
    let mine = ok_json(&format!("/api/v1/search?owner={owner}&limit=500"));
    assert!(
        mine["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["owner"] == owner.as_str())
    );
}

#[test]
fn abbreviations_and_typos_find_the_item_through_the_api() {
    let ipra = ok_json("/api/v1/search?q=IPRA&limit=3");
    assert!(
        titles(&ipra)
            .iter()
            .any(|t| t.contains("In-possession medication risk assessment"))
    );
    let typo = ok_json("/api/v1/search?q=naloxne&limit=3");
    assert!(
        titles(&typo).iter().any(|t| t.contains("naloxone")),
        "{:?}",
        titles(&typo)
    );
}

#[test]
fn bad_parameters_get_400_with_a_message() {
    for path in [
        "/api/v1/search?q=x&kind=leaflet",
        "/api/v1/search?q=x&limit=0",
        "/api/v1/search?q=x&limit=many",
        "/api/v1/search?q=x&limit=501",
        "/api/v1/search?q=x&offset=-1",
        "/api/v1/search?q=x&offset=20000",
        "/api/v1/search?q=x&sort=alphabetical",
        "/api/v1/search?q=x&colour=blue",
        "/api/v1/search?q=x&kind=policy&kind=procedure",
        "/api/v1/search?owner=northgate",
        "/api/v1/search?review_due_before=soon",
        "/api/v1/items/not-an-id",
        "/api/v1/items/abc",
        "/api/v1/items/00000000000000000000000000000000/versions/0",
        "/api/v1/items/00000000000000000000000000000000/versions/two",
        "/api/v1/items/00000000000000000000000000000000/diff?from=x",
        "/api/v1/search?q=%28body%3A*%29",
        "/api/v1/search?q=body%3A*%5E2",
    ] {
        let g = get(path);
        assert_eq!(g.status, 400, "GET {path}: {}", g.text);
        let message = g.json()["error"]
            .as_str()
            .expect("error message")
            .to_string();
        assert!(message.len() > 10, "GET {path}: {message:?}");
    }
    let kind = get("/api/v1/search?q=x&kind=leaflet").json();
    assert!(
        kind["error"].as_str().expect("message").contains("policy"),
        "lists accepted kinds"
    );
    // The web page says what is wrong, in a page of its own.
    // "Any value" on its own means anything, not a fault.
    assert_eq!(get("/api/v1/search?q=body%3A*").status, 200);
    let g = get("/search?q=x&page=0");
    assert_eq!(g.status, 400);
    assert!(g.text.contains("page numbers start at 1"));
    assert_eq!(get("/items/zz").status, 400);
    assert_eq!(
        get(&format!("/items/{}?version=x", fixture().revised)).status,
        400
    );
}

#[test]
fn unknown_ids_versions_and_routes_get_404() {
    let f = fixture();
    for path in [
        "/api/v1/items/00000000000000000000000000000000".to_string(),
        "/api/v1/items/00000000000000000000000000000000/history".to_string(),
        "/api/v1/items/00000000000000000000000000000000/diff".to_string(),
        format!("/api/v1/items/{}/versions/99", f.revised),
        format!("/api/v1/items/{}/diff?from=1&to=99", f.revised),
        "/api/v1/nothing-here".to_string(),
        "/api/v1".to_string(),
    ] {
        let g = get(&path);
        assert_eq!(g.status, 404, "GET {path}: {}", g.text);
        assert!(g.json()["error"].is_string(), "GET {path}");
    }
    for path in ["/items/00000000000000000000000000000000", "/no/such/page"] {
        let g = get(path);
        assert_eq!(g.status, 404, "GET {path}");
        assert!(g.text.contains("<h1>Page not found</h1>"), "GET {path}");
        assert_eq!(g.csp, CONTENT_SECURITY_POLICY);
    }
}

#[test]
fn item_versions_history_and_diff_through_the_api() {
    let f = fixture();
    let item = ok_json(&format!("/api/v1/items/{}", f.revised));
    assert_eq!(item["version"], 3);
    assert!(
        item["body"]
            .as_str()
            .expect("body")
            .contains("Tell the pharmacist.")
    );
    // An unambiguous prefix works too.
    let short = ok_json(&format!("/api/v1/items/{}", &f.revised.to_hex()[..10]));
    assert_eq!(short["id"], item["id"]);

    let v1 = ok_json(&format!("/api/v1/items/{}/versions/1", f.revised));
    assert_eq!(v1["version"], 1);
    assert!(!v1["body"].as_str().expect("body").contains("expiry"));

    let history = ok_json(&format!("/api/v1/items/{}/history", f.revised));
    let versions: Vec<u64> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["version"].as_u64().expect("version"))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(history[2]["signer"]["name"], "Healthcare manager");
    assert_eq!(history[2]["establishment"]["name"], "HMP Northgate");

    let d = ok_json(&format!("/api/v1/items/{}/diff?from=1&to=3", f.revised));
    assert_eq!((d["from"].as_u64(), d["to"].as_u64()), (Some(1), Some(3)));
    let fields: Vec<&str> = d["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|c| c["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["review_due"]);
    assert_eq!(d["fields"][0]["before"], "2027-01-01");
    assert_eq!(d["fields"][0]["after"], "2027-06-30");
    assert_eq!(
        (d["lines_added"].as_u64(), d["lines_removed"].as_u64()),
        (Some(2), Some(1))
    );
    let added: Vec<&str> = d["hunks"][0]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["change"] == "added")
        .map(|l| l["text"].as_str().expect("text"))
        .collect();
    assert_eq!(
        added,
        ["Check the kit and its expiry date.", "Tell the pharmacist."]
    );
    // Without from and to: the latest version against the one before.
    let last = ok_json(&format!("/api/v1/items/{}/diff", f.revised));
    assert_eq!(
        (last["from"].as_u64(), last["to"].as_u64()),
        (Some(2), Some(3))
    );
}

#[test]
fn item_page_shows_metadata_signer_history_and_a_readable_diff() {
    let f = fixture();
    let html = ok_html(&format!("/items/{}", f.revised));
    assert!(html.contains("<h1>Web test wound care</h1>"));
    assert!(html.contains(
        "signed by <strong>Healthcare manager</strong> for <strong>HMP Northgate</strong>"
    ));
    for field in [
        "Care pathways",
        "Settings",
        "Nation",
        "Review due",
        "Approved by",
        "Item id",
    ] {
        assert!(html.contains(&format!("<dt>{field}</dt>")), "{field} shown");
    }
    assert!(html.contains("Substance misuse") && html.contains("30 June 2027"));
    assert!(
        !html.contains("ed25519") && !html.contains("envelope"),
        "the page speaks of approval and signature, not of the format"
    );
    assert!(html.contains("Uncontrolled when printed."));
    assert!(html.contains(&format!(
        r#"<a href="/items/{}?version=1">Version 1</a>"#,
        f.revised
    )));
    assert!(html.contains(&format!(r#"action="/items/{}/diff""#, f.revised)));

    let old = ok_html(&format!("/items/{}?version=1", f.revised));
    assert!(old.contains("You are reading version 1"));

    let diff = ok_html(&format!("/items/{}/diff?from=1&to=3", f.revised));
    assert!(diff.contains("<h1>Changes from version 1 to 3</h1>"));
    assert!(diff.contains("<ins>Tell the pharmacist.</ins>"));
    assert!(diff.contains("<del>Check the kit.</del>"));
    assert!(diff.contains(r#"<th scope="row">Review date</th>"#));
    assert!(diff.contains("1 January 2027") && diff.contains("30 June 2027"));
}

#[test]
fn superseded_items_point_to_their_successor_and_withdrawn_ones_say_so() {
    let f = fixture();
    let old = ok_html(&format!("/items/{}", f.old));
    assert!(old.contains("This item has been superseded"));
    assert!(old.contains(&format!(
        r#"<a href="/items/{}">Web test new procedure</a>"#,
        f.new
    )));
    assert!(old.contains("badge-superseded"));
    let new = ok_html(&format!("/items/{}", f.new));
    assert!(new.contains("<dt>Replaces</dt>"));
    assert!(new.contains(&format!(
        r#"<a href="/items/{}">Web test old procedure</a>"#,
        f.old
    )));
    let gone = ok_html(&format!("/items/{}", f.withdrawn));
    assert!(gone.contains("This item has been withdrawn"));
    assert!(gone.contains("Replaced by the regional formulary"));
    let api = ok_json(&format!("/api/v1/items/{}", f.old));
    assert_eq!(api["status"], "superseded");
    assert_eq!(api["superseded_by"], f.new.to_hex());
}

#[test]
fn a_hostile_body_renders_with_nothing_active() {
    let f = fixture();
    let html = ok_html(&format!("/items/{}", f.hostile));
    let body_start = html.find(r#"<div class="prose">"#).expect("body");
    let body = &html[body_start..];
    for banned in [
        "<script",
        "onmouseover",
        "onerror",
        "javascript:",
        "<img",
        "tracker.example",
        "<h1",
        "<nav",
        "<style",
    ] {
        assert!(!body.contains(banned), "{banned} survived: {body}");
    }
    assert!(!html.contains("<script"), "no script anywhere on the page");
    assert!(
        html.contains("Web test &lt;script&gt;alert(9)&lt;/script&gt; title"),
        "title escaped"
    );
    assert!(body.contains("[image: tracker]"));
    assert!(body.contains(r#"href="https://example.org/ok""#));
    // The API gives the Markdown as written: it is data, not a page.
    let api = ok_json(&format!("/api/v1/items/{}", f.hostile));
    assert_eq!(
        api["body"].as_str().map(str::trim_end),
        Some(HOSTILE_BODY.trim_end())
    );
}

#[test]
fn requests_for_another_host_name_are_refused() {
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/api/v1/status", fixture().base);
    let rebound = client
        .get(&url)
        .header("Host", "attacker.example:8480")
        .send()
        .expect("request");
    assert_eq!(rebound.status().as_u16(), 421);
    assert!(rebound.text().expect("body").contains("loopback only"));
    for host in ["localhost:8480", "127.0.0.1", "[::1]:8480"] {
        let ok = client
            .get(&url)
            .header("Host", host)
            .send()
            .expect("request");
        assert_eq!(ok.status().as_u16(), 200, "Host: {host}");
    }
}

#[test]
fn api_routes_refuse_parameters_they_do_not_take() {
    let f = fixture();
    for path in [
        format!("/api/v1/items/{}?version=1", f.revised),
        format!("/api/v1/items/{}/history?all=1", f.revised),
        "/api/v1/establishments?name=x".to_string(),
        "/api/v1/status?verbose=1".to_string(),
        "/api/v1/search?q=a&q=b".to_string(),
        "/api/v1/search?q=a&facets=maybe".to_string(),
    ] {
        let g = get(&path);
        assert_eq!(g.status, 400, "GET {path}: {}", g.text);
    }
    let plain = ok_json("/api/v1/search?q=naloxone&facets=false");
    assert!(
        plain["facets"]
            .as_object()
            .is_some_and(serde_json::Map::is_empty)
    );
    assert!(plain["total"].as_u64().expect("total") > 0);
    let browse = ok_json("/api/v1/search");
    assert_eq!(browse["sort"], "updated", "no words: listed by update");
}

#[test]
fn establishments_directory_and_api_list_every_site() {
    let api = ok_json("/api/v1/establishments");
    let list = api.as_array().expect("list");
    assert_eq!(list.len(), 6, "{api}");
    let html = ok_html("/establishments");
    for e in list {
        let name = e["name"].as_str().expect("name");
        assert!(html.contains(&format!(">{name}")), "{name} listed");
        if e["items"].as_u64().expect("items") > 0 {
            assert!(html.contains(&format!("/search?owner={}", e["id"].as_str().expect("id"))));
        }
    }
    assert!(
        html.contains("Immigration removal centre (IRC)"),
        "setting types shown"
    );
}

#[test]
fn network_page_and_status_api_show_what_is_held() {
    let status = ok_json("/api/v1/status");
    let items = status["items"].as_u64().expect("items");
    assert!(items >= 40, "{status}");
    assert_eq!(status["node_running"], false);
    let html = ok_html("/network");
    assert!(html.contains(&format!("<dt>Items</dt><dd>{items}</dd>")));
    assert!(html.contains("<dt>Envelopes held</dt>"));
    assert!(html.contains("The network is not running in this process"));
}

#[test]
fn stylesheet_is_served_and_every_response_carries_the_security_headers() {
    let css = get("/static/style.css");
    assert_eq!(css.status, 200);
    assert!(css.content_type.starts_with("text/css"));
    assert!(css.text.contains("@media print"));
    for path in ["/", "/api/v1/status", "/api/v1/nope", "/nope"] {
        assert_eq!(get(path).csp, CONTENT_SECURITY_POLICY, "{path}");
    }
}

#[test]
fn a_published_item_is_searchable_at_once() {
    let f = fixture();
    let id = f
        .library
        .lock()
        .expect("lock")
        .publish(
            &content(
                "Web test zygomatic fracture first aid",
                "2027-01-01",
                "Ice.\n",
            ),
            &[],
        )
        .expect("publish");
    let found = ok_json("/api/v1/search?q=zygomatic");
    assert_eq!(found["results"][0]["id"], id.to_hex());
}

/// Checks `value` against the OpenAPI `schema` (types, required properties,
/// enums, arrays, `$ref`, `allOf`, `oneOf`, `additionalProperties`).
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        // One object with the properties and required fields of every part.
        let mut merged = serde_json::json!({"type": "object", "required": [], "properties": {}});
        for part in all {
            let part = match part["$ref"].as_str() {
                Some(r) => {
                    &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")]
                }
                None => part,
            };
            for key in part["required"].as_array().into_iter().flatten() {
                merged["required"]
                    .as_array_mut()
                    .expect("array")
                    .push(key.clone());
            }
            for (k, v) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][k] = v.clone();
            }
        }
        return check(doc, &merged, value, at);
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let fits = one.iter().any(|s| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(doc, s, value, at)))
                .is_ok()
        });
        assert!(fits, "{at}: {value} fits none of {schema}");
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert!(
        types.contains(&actual) || (actual == "integer" && types.contains(&"number")),
        "{at}: {actual} where the document says {types:?}"
    );
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(
            allowed.contains(value),
            "{at}: {value} not in the documented enum"
        );
    }
    match value {
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check(doc, &schema["items"], v, &format!("{at}[{i}]"));
            }
        }
        Value::Object(map) => {
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().expect("key");
                assert!(
                    map.contains_key(key),
                    "{at}: documented field {key} missing"
                );
            }
            for (k, v) in map {
                let s = &schema["properties"][k];
                if !s.is_null() {
                    check(doc, s, v, &format!("{at}.{k}"));
                } else if schema["additionalProperties"].is_object() {
                    check(
                        doc,
                        &schema["additionalProperties"],
                        v,
                        &format!("{at}.{k}"),
                    );
                } else if schema["properties"].is_object() {
                    panic!("{at}: field {k} is not in the document");
                }
            }
        }
        _ => {}
    }
}

#[test]
fn responses_have_the_shapes_the_openapi_document_gives() {
    let f = fixture();
    let doc = ok_json("/api/v1/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    let id = f.revised.to_hex();
    let cases = [
        (
            "/api/v1/search",
            "/api/v1/search?q=naloxone".to_string(),
            "200",
        ),
        (
            "/api/v1/search",
            "/api/v1/search?kind=qi-initiative&sort=review_due".to_string(),
            "200",
        ),
        ("/api/v1/items/{id}", format!("/api/v1/items/{id}"), "200"),
        (
            "/api/v1/items/{id}",
            format!("/api/v1/items/{}", f.old),
            "200",
        ),
        (
            "/api/v1/items/{id}/versions/{version}",
            format!("/api/v1/items/{id}/versions/2"),
            "200",
        ),
        (
            "/api/v1/items/{id}/history",
            format!("/api/v1/items/{id}/history"),
            "200",
        ),
        (
            "/api/v1/items/{id}/diff",
            format!("/api/v1/items/{id}/diff?from=1&to=3"),
            "200",
        ),
        (
            "/api/v1/establishments",
            "/api/v1/establishments".to_string(),
            "200",
        ),
        ("/api/v1/status", "/api/v1/status".to_string(), "200"),
        (
            "/api/v1/search",
            "/api/v1/search?sort=nope".to_string(),
            "400",
        ),
        (
            "/api/v1/items/{id}",
            "/api/v1/items/00000000000000000000000000000000".to_string(),
            "404",
        ),
    ];
    let q = f.question.to_hex();
    let forum_cases = [
        ("/api/v1/threads", "/api/v1/threads".to_string(), "200"),
        (
            "/api/v1/threads",
            "/api/v1/threads?list=all&pathway=substance-misuse&limit=5".to_string(),
            "200",
        ),
        (
            "/api/v1/threads",
            format!("/api/v1/threads?about={id}&list=all"),
            "200",
        ),
        (
            "/api/v1/threads/{id}",
            format!("/api/v1/threads/{q}"),
            "200",
        ),
        (
            "/api/v1/moderation",
            "/api/v1/moderation".to_string(),
            "200",
        ),
        ("/api/v1/inbox", "/api/v1/inbox".to_string(), "401"),
        (
            "/api/v1/threads",
            "/api/v1/threads?list=mine".to_string(),
            "401",
        ),
        (
            "/api/v1/threads",
            "/api/v1/threads?limit=0".to_string(),
            "400",
        ),
        (
            "/api/v1/threads/{id}",
            format!("/api/v1/threads/{}", "0".repeat(64)),
            "404",
        ),
    ];
    for (route, path, code) in cases.into_iter().chain(forum_cases) {
        let op = &doc["paths"][route]["get"];
        assert!(op.is_object(), "{route} is documented");
        let schema = &op["responses"][code]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{route} documents {code}");
        let g = get(&path);
        assert_eq!(g.status.to_string(), code, "GET {path}");
        check(&doc, schema, &g.json(), &path);
    }
    // The forum's shapes hold what the fixture wrote: the edited answer,
    // the quote, the hidden reply, the discussion about the item.
    let t = ok_json(&format!("/api/v1/threads/{q}"));
    let posts = t["posts"].as_array().expect("posts");
    assert_eq!(posts.len(), 4, "{t}");
    assert_eq!(posts[1]["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(posts[1]["body"], "Weekly, with the expiry dates logged.");
    assert_eq!(posts[2]["quoting"], posts[1]["id"]);
    assert_eq!(posts[3]["hidden"]["reason"], "Not about wound kits");
    assert!(posts[3]["body"].is_null());
    let about = ok_json(&format!("/api/v1/threads?about={id}&list=all"));
    assert_eq!(about.as_array().map(Vec::len), Some(2), "{about}");
    let log = ok_json("/api/v1/moderation");
    assert_eq!(log[0]["reason"], "Not about wound kits");
    // A QI initiative carries its QI details in the documented shape.
    let qi = ok_json("/api/v1/search?kind=qi-initiative&limit=1");
    let qi_id = qi["results"][0]["id"].as_str().expect("a QI item");
    let item = ok_json(&format!("/api/v1/items/{qi_id}"));
    assert!(item["qi"]["aim"].is_string());
    check(
        &doc,
        &doc["components"]["schemas"]["Item"],
        &item,
        "qi item",
    );
}

#[test]
fn the_api_answers_what_its_document_allows_and_refuses_the_rest() {
    let f = fixture();
    let id = f.revised.to_hex();
    // Any two versions compare, a version with itself as nothing changed.
    let same = ok_json(&format!("/api/v1/items/{id}/diff?from=2&to=2"));
    assert_eq!(same["fields"].as_array().map(Vec::len), Some(0), "{same}");
    let back = ok_json(&format!("/api/v1/items/{id}/diff?from=3&to=1"));
    assert_eq!(back["from"], 3, "{back}");
    // A first version has nothing before it to compare with.
    let first = f.withdrawn.to_hex();
    assert_eq!(
        get(&format!("/api/v1/items/{}/diff?to=1", first)).status,
        404
    );
    // A page reaching past the first 10,000 results ends there; one
    // starting past them is refused.
    let edge = ok_json("/api/v1/search?offset=9999&limit=500");
    assert_eq!(edge["offset"], 9999);
    assert_eq!(get("/api/v1/search?offset=10000").status, 400);
    // A program's empty filter is a mistake, not "any"; an empty query
    // is every item. The web page takes a form's empty values as "any".
    let empty = get("/api/v1/search?kind=");
    assert_eq!(empty.status, 400);
    assert!(empty.text.contains("kind is empty"), "{}", empty.text);
    assert_eq!(get("/api/v1/search?q=").status, 200);
    assert_eq!(get("/search?kind=&q=wound").status, 200);
    // Listing one's own threads needs a signed-in person.
    assert_eq!(get("/api/v1/threads?list=mine").status, 401);
}
