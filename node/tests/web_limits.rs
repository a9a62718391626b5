//! What a client can hold of the web server: a client that sends its
//! headers slowly, or keeps a connection silent, is cut off; one client
//! address cannot take every connection, and all clients together cannot
//! take more than the cap, while others are still served.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_node::library::Library;
use gatehouse_node::web::{Limits, WebServer, WebState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Long enough that a closed connection is not mistaken for a slow one.
const PATIENCE: Duration = Duration::from_secs(20);

async fn server(limits: Limits) -> (tempfile::TempDir, Library, WebServer) {
    let (dir, _home, lib) = common::new_site();
    let state = WebState::new(lib.reads(), None);
    let server = WebServer::start_with(([127, 0, 0, 1], 0).into(), state, limits)
        .await
        .expect("serve");
    (dir, lib, server)
}

/// A connection from the loopback address `from` (127.0.0.x).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket.connect(to).await.expect("connect")
}

/// Waits for the server to close `stream`, and says whether it did.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends one request for the status API and reads the status line.
async fn status_line(stream: &mut TcpStream) -> String {
    let closed = String::from("closed");
    if stream
        .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .is_err()
    {
        return closed;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer or a close");
        match read {
            Ok(0) | Err(_) => return closed,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let line = got.split(|b| *b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line).into_owned()
}

fn quick(max_connections: usize, max_per_client: usize) -> Limits {
    Limits {
        max_connections,
        max_per_client,
        header_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(800),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let (_dir, _lib, server) = server(quick(64, 16)).await;

    // Half a request line, then nothing (slowloris).
    let mut slow = connect_from([127, 0, 0, 1], server.addr).await;
    slow.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: 12")
        .await
        .expect("send");
    assert!(
        closed_by_server(&mut slow).await,
        "a request whose headers never end keeps its connection"
    );

    // A connection that sends nothing at all.
    let mut silent = connect_from([127, 0, 0, 1], server.addr).await;
    assert!(closed_by_server(&mut silent).await);

    // A kept-alive connection left idle after a request it was answered.
    let mut idle = connect_from([127, 0, 0, 1], server.addr).await;
    assert_eq!(status_line(&mut idle).await, "HTTP/1.1 200 OK");
    assert!(closed_by_server(&mut idle).await);

    // Meanwhile the server still answers.
    let mut fresh = connect_from([127, 0, 0, 1], server.addr).await;
    assert_eq!(status_line(&mut fresh).await, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_make_room_for_new_ones_within_the_caps() {
    let limits = Limits {
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..quick(5, 3)
    };
    let (_dir, _lib, server) = server(limits).await;

    // One address holds its three connections, silent.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], server.addr).await);
    }
    // Its fourth is served, in place of its oldest, which is closed.
    let mut fourth = connect_from([127, 0, 0, 1], server.addr).await;
    assert_eq!(status_line(&mut fourth).await, "HTTP/1.1 200 OK");
    assert!(
        closed_by_server(&mut held[0]).await,
        "the client's oldest idle connection was kept past its cap"
    );

    // Two from another address fill the five places in all.
    let mut other = connect_from([127, 0, 0, 2], server.addr).await;
    assert_eq!(status_line(&mut other).await, "HTTP/1.1 200 OK");
    let mut second_other = connect_from([127, 0, 0, 2], server.addr).await;
    assert_eq!(status_line(&mut second_other).await, "HTTP/1.1 200 OK");

    // A third address is served too: the connection idle longest, one that
    // never carried a request, makes way.
    let mut third = connect_from([127, 0, 0, 3], server.addr).await;
    assert_eq!(status_line(&mut third).await, "HTTP/1.1 200 OK");
    assert!(closed_by_server(&mut held[1]).await);
    // Those that were served stay open, kept alive for their next request.
    assert_eq!(status_line(&mut other).await, "HTTP/1.1 200 OK");
    assert_eq!(status_line(&mut fourth).await, "HTTP/1.1 200 OK");
    server.stop().await;
}

/// A thousand connections left open and silent, from forty addresses (as
/// a ward's NAT or a careless scanner would), do not keep a visitor out:
/// with the default caps (256 in all) the page is served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_keep_a_visitor_out() {
    let (_dir, _lib, server) = server(Limits::default()).await;
    let mut idle = Vec::with_capacity(1_000);
    for n in 0..1_000u32 {
        let from = [127, 0, 1, u8::try_from(n % 40).expect("small") + 2];
        idle.push(connect_from(from, server.addr).await);
    }
    let mut visitor = connect_from([127, 0, 0, 1], server.addr).await;
    visitor
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !got.windows(7).any(|w| w == b"</html>") {
        let read = tokio::time::timeout(PATIENCE, visitor.read(&mut buf))
            .await
            .expect("the home page, not silence");
        match read {
            Ok(0) | Err(_) => panic!("the visitor's connection was closed"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&got[..64])
    );
    // And the server holds no more than its cap of them: the rest were
    // closed (each close is seen once it arrives; give them time).
    let mut open: Vec<TcpStream> = idle;
    let mut closed = 0;
    let mut probe = [0u8; 16];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while closed < 1_000 - 256 && tokio::time::Instant::now() < deadline {
        let mut still = Vec::with_capacity(open.len());
        for mut stream in open {
            match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
                Ok(Ok(0) | Err(_)) => closed += 1,
                _ => still.push(stream),
            }
        }
        open = still;
    }
    assert!(
        closed >= 1_000 - 256,
        "only {closed} of 1,000 idle connections were closed"
    );
    server.stop().await;
}

/// A request whose work runs past its budget is answered "busy" while
/// other requests are served; work past its budget keeps its turn until it
/// ends, so when every turn is taken a new request is told "busy" too,
/// rather than starting more work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_past_its_budget_is_answered_busy_and_others_are_served() {
    use gatehouse_node::web::{MAX_CONCURRENT_REQUESTS, WebError};
    let (_dir, lib, _server) = server(Limits::default()).await;
    let mut state = WebState::new(lib.reads(), None);
    state.budget = Duration::from_millis(300);
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Arc::new(std::sync::Mutex::new(held));
    let stuck = |state: &WebState| {
        let state = state.clone();
        let held = std::sync::Arc::clone(&held);
        tokio::spawn(async move {
            state
                .read(move |_| {
                    let _ = held.lock().expect("lock").recv();
                    Ok(())
                })
                .await
        })
    };
    let first = stuck(&state).await.expect("task");
    assert!(matches!(first, Err(WebError::Busy(_))), "{first:?}");
    // The stuck work still runs; another request is served.
    let answer = state.read(|view| Ok(view.status()?.items)).await;
    assert!(answer.is_ok(), "{answer:?}");
    // Every turn taken by stuck work: a new request is told "busy" at once.
    let mut rest = Vec::new();
    for _ in 1..MAX_CONCURRENT_REQUESTS {
        rest.push(stuck(&state));
    }
    for task in rest {
        assert!(matches!(task.await.expect("task"), Err(WebError::Busy(_))));
    }
    let quick = state.read(|_| Ok(1)).await;
    assert!(matches!(quick, Err(WebError::Busy(_))), "{quick:?}");
    // Once the stuck work ends, requests are served again.
    for _ in 0..MAX_CONCURRENT_REQUESTS {
        release.send(()).expect("release");
    }
    state.budget = PATIENCE;
    assert_eq!(state.read(|_| Ok(2)).await.expect("served"), 2);
}

/// Network addresses go only to a client on the node's own machine: a
/// reader elsewhere on the site's network gets the status and the network
/// page without the peer book. The requests are made in-process, each
/// carrying the client address the accept loop would give it (a
/// documentation address stands for a ward PC; nothing is sent to it).
#[tokio::test]
async fn peer_addresses_are_shown_only_on_the_nodes_own_machine() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use gatehouse_node::web::router;
    use tower::ServiceExt as _;

    let (_dir, mut lib, _server) = server(Limits::default()).await;
    let peer = "/ip4/127.0.0.1/tcp/4001";
    lib.add_peer(peer).expect("add a peer");
    let app = router(WebState::new(lib.reads(), None), false);
    let get = |path: &'static str, from: [u8; 4]| {
        let app = app.clone();
        async move {
            let mut request = axum::http::Request::get(path)
                .body(Body::empty())
                .expect("request");
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((from, 50_000))));
            let response = app.oneshot(request).await.expect("response");
            assert_eq!(response.status(), 200, "{path}");
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            String::from_utf8(body.to_vec()).expect("utf-8")
        }
    };
    for path in ["/api/v1/status", "/network"] {
        let here = get(path, [127, 0, 0, 1]).await;
        assert!(here.contains(peer), "{path} on the node's machine: {here}");
        let ward = get(path, [192, 0, 2, 10]).await;
        assert!(
            !ward.contains(peer),
            "{path} from the site's network: {ward}"
        );
    }
    let ward: serde_json::Value =
        serde_json::from_str(&get("/api/v1/status", [192, 0, 2, 10]).await).expect("json");
    assert_eq!(ward["addresses_hidden"], true);
    assert_eq!(ward["peer_book"], serde_json::json!([]));
    assert!(
        ward["items"].is_number(),
        "the library status is still given"
    );
}

#[tokio::test]
async fn metrics_answer_this_machine_and_health_checks_anyone_even_on_a_staff_only_node() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use gatehouse_node::web::{WebAccess, router};
    use tower::ServiceExt as _;

    let (_dir, lib, _server) = server(Limits::default()).await;
    let ask = |app: axum::Router, path: &'static str, from: [u8; 4]| async move {
        let mut request = axum::http::Request::get(path)
            .body(Body::empty())
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((from, 50_000))));
        let response = app.oneshot(request).await.expect("response");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    };
    let staff_only = WebState::new(lib.reads(), None).with_access(WebAccess::Staff);
    let app = router(staff_only.clone(), false);
    // The library itself is for signed-in staff.
    assert_eq!(
        ask(app.clone(), "/api/v1/items", [192, 0, 2, 10]).await.0,
        401
    );
    let (status, text) = ask(app.clone(), "/metrics", [127, 0, 0, 1]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("gatehouse_envelopes 4"), "{text}");
    assert!(text.contains("gatehouse_store_size_bytes "), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let (status, text) = ask(app.clone(), "/metrics", [192, 0, 2, 10]).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("metrics_from_network"), "{text}");
    let (status, text) = ask(app.clone(), "/healthz", [192, 0, 2, 10]).await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    // With no network, ready is the store reading.
    let (status, text) = ask(app, "/readyz", [192, 0, 2, 10]).await;
    assert_eq!((status, text.as_str()), (200, "ready\n"));
    // Told to, the node serves its metrics to the site's network.
    let app = router(staff_only.with_metrics_from_network(true), false);
    assert_eq!(ask(app, "/metrics", [192, 0, 2, 10]).await.0, 200);
}

/// A body of 250,000 nested `>` (a page that once took the node's lock for
/// minutes) is rendered at the nesting cap: its page costs no more than a
/// page with a plain body of the same length, and while it is asked for
/// again and again, other pages are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_deeply_nested_quotes_costs_what_a_plain_one_does_while_others_are_served() {
    let (_dir, mut lib, server) = server(Limits::default()).await;
    let mut deep = gatehouse_node::sample::synthetic_content(1);
    deep.body = format!("{} deep", ">".repeat(250_000));
    let mut plain = gatehouse_node::sample::synthetic_content(2);
    plain.body = format!("{} plain", "word ".repeat(50_000));
    let deep = lib.publish(&deep, &[]).expect("publish").to_hex();
    let plain = lib.publish(&plain, &[]).expect("publish").to_hex();
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr);

    // The quickest of a few answers, so that a moment's load on a shared
    // machine is not taken for the page's own cost.
    let fastest = |id: String| {
        let (client, page) = (client.clone(), format!("{base}/items/{id}"));
        tokio::spawn(async move {
            let mut fastest = Duration::MAX;
            for _ in 0..4 {
                let started = std::time::Instant::now();
                let answer = client.get(&page).send().await.expect("answered");
                assert_eq!(answer.status(), reqwest::StatusCode::OK);
                let html = answer.text().await.expect("body");
                fastest = fastest.min(started.elapsed());
                if html.contains(" deep") {
                    assert!(html.matches("<blockquote>").count() <= 16);
                }
            }
            fastest
        })
    };
    let plain_took = fastest(plain).await.expect("task");
    let deep_pages = fastest(deep);
    // Meanwhile, another reader's page.
    for _ in 0..10 {
        let status = client
            .get(format!("{base}/api/v1/status"))
            .timeout(PATIENCE)
            .send()
            .await
            .expect("served while the deep page is asked for")
            .status();
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    let deep_took = deep_pages.await.expect("task");
    eprintln!("best page times: nested {deep_took:?}, plain {plain_took:?}");
    assert!(
        deep_took < plain_took * 2 + Duration::from_millis(50),
        "the nested page took {deep_took:?} at best, a plain one of the same length {plain_took:?}"
    );
}
