//! The web page over TLS, from a certificate file and key as a site's IT
//! hands them over: a browser-like client that trusts the certificate
//! reads the page, told to keep to HTTPS; plain HTTP on the TLS port gets
//! no page and takes nothing down; unusable files say which and why.

mod common;

use std::sync::Arc;

use gatehouse_node::web::tls::{TlsError, server_config};
use gatehouse_node::web::{Limits, WebServer, WebState};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Files {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

fn certificate() -> Files {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("node.crt");
    let key = dir.path().join("node.key");
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key");
    Files {
        _dir: dir,
        cert,
        key,
        der: made.cert.der().clone(),
    }
}

async fn https_get(addr: std::net::SocketAddr, trust: &Files, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.der.clone()).expect("trust the certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("a TLS handshake with the node");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_page_is_served_over_tls_and_plain_http_there_gets_nothing() {
    let files = certificate();
    let (_dir, _home, lib) = common::new_site();
    let config = server_config(&files.cert, &files.key).expect("a usable certificate");
    let server = WebServer::start_tls(
        ([127, 0, 0, 1], 0).into(),
        WebState::new(lib.reads(), None),
        Limits::default(),
        Some(config),
    )
    .await
    .expect("serve");
    assert!(server.https);

    let page = https_get(server.addr, &files, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("HMP Northgate"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("strict-transport-security: max-age=31536000"),
        "{page}"
    );

    // Plain HTTP on the TLS port: no page, and the server goes on.
    let mut plain = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        plain.read_to_end(&mut out),
    )
    .await
    .expect("the server closes a connection that is not TLS");
    assert!(!String::from_utf8_lossy(&out).contains("HMP Northgate"));
    let again = https_get(server.addr, &files, "/api/v1/status").await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    server.stop().await;
}

#[test]
fn unusable_certificate_files_say_which_and_why() {
    let files = certificate();
    let other = certificate();
    let missing = files.cert.with_file_name("nowhere.crt");
    match server_config(&missing, &files.key) {
        Err(
            e @ TlsError::File {
                what: "certificate",
                ..
            },
        ) => {
            assert!(e.to_string().contains("nowhere.crt"), "{e}");
        }
        other => panic!("expected a certificate file error, got {other:?}"),
    }
    // A key in the certificate's place, and a certificate in the key's.
    assert!(matches!(
        server_config(&files.key, &files.key),
        Err(TlsError::File {
            what: "certificate",
            ..
        })
    ));
    assert!(matches!(
        server_config(&files.cert, &files.cert),
        Err(TlsError::File {
            what: "private key",
            ..
        })
    ));
    // A key that is not the certificate's.
    match server_config(&files.cert, &other.key) {
        Err(e @ TlsError::Config(_)) => {
            assert!(e.to_string().contains("cannot be used together"), "{e}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}
