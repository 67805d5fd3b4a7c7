//! The built-in HTTP scanner against a tiny HTTP and HTTPS server on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use scanplane_core::finding::{fingerprint, Finding};
use scanplane_scanners::http::HttpScanner;
use scanplane_scanners::Scanner;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const SOFT_404: &str = "<html><body>Nothing here, but we say 200 anyway</body></html>";

/// Answers one request per connection based on its path.
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, tls: bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, extra, body): (&str, &str, &str) = match path.as_str() {
        "/" if tls => ("200 OK", "Server: nginx\r\nContent-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n", "<html>hi</html>"),
        "/" => ("200 OK", "Server: Apache/2.4.57 (Debian)\r\nX-Powered-By: PHP/8.2.7\r\n", "<html>home</html>"),
        "/.git/HEAD" if !tls => ("200 OK", "", "ref: refs/heads/main\n"),
        "/.env" if !tls => ("200 OK", "", "# production\nDB_PASSWORD=hunter2\nAPI_KEY=abc123\n"),
        "/.DS_Store" => ("404 Not Found", "", "not found"),
        _ => ("200 OK", "", SOFT_404),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

async fn http_server() -> u16 {
    let (l, port) = common::bind_local().await;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(respond(s, false));
        }
    });
    port
}

/// An HTTPS server with a self-signed certificate for `localhost` only.
async fn https_server(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> u16 {
    let mut params = common::must(
        rcgen::CertificateParams::new(vec!["localhost".to_string()]),
        "certificate parameters",
    );
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let key = common::must(rcgen::KeyPair::generate(), "generating a key");
    let cert = common::must(params.self_signed(&key), "self-signing");
    let builder = common::must(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions(),
        "TLS protocol versions",
    );
    let config = common::must(
        builder.with_no_client_auth().with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ),
        "TLS server configuration",
    );
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (l, port) = common::bind_local().await;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    respond(tls, true).await;
                }
            });
        }
    });
    port
}

fn rules(found: &[Finding]) -> BTreeSet<String> {
    found.iter().map(|f| f.rule_id.clone()).collect()
}

#[tokio::test]
async fn plain_http_headers_disclosure_and_exposed_files() {
    let port = http_server().await;
    let url = format!("http://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(
        &[&url],
        serde_json::json!({"request_timeout": "5s"}),
        dir.path(),
    );
    let (outcome, found) = common::run(&HttpScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, vec![url.clone()]);
    let expected: BTreeSet<String> = [
        "missing-content-security-policy",
        "missing-x-content-type-options",
        "missing-clickjacking-protection",
        "missing-referrer-policy",
        "version-disclosure-server",
        "version-disclosure-x-powered-by",
        "exposed-git-repository",
        "exposed-env-file",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // The soft-404 pages for /.git/config, /server-status, ... must not be reported.
    assert_eq!(rules(&found), expected, "{found:#?}");
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    let git = found
        .iter()
        .find(|f| f.rule_id == "exposed-git-repository")
        .unwrap();
    let git_url = format!("http://127.0.0.1:{port}/.git/HEAD");
    assert_eq!(git.location, git_url);
    assert_eq!(
        git.fingerprint,
        fingerprint("http", &["exposed-git-repository", &git_url])
    );
    assert!(
        git.detail.contains("ref: refs/heads/main"),
        "{}",
        git.detail
    );
    let server = found
        .iter()
        .find(|f| f.rule_id == "version-disclosure-server")
        .unwrap();
    assert_eq!(server.detail, "Server: Apache/2.4.57 (Debian)");
    assert!(found.iter().all(|f| f.target == url));
}

#[tokio::test]
async fn https_certificate_problems_are_reported() {
    let port = https_server((2024, 1, 1), (2099, 1, 1)).await;
    let url = format!("https://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(
        &[&url],
        serde_json::json!({"check_paths": false}),
        dir.path(),
    );
    let (outcome, found) = common::run(&HttpScanner::new(), &req).await;
    outcome.unwrap();
    let expected: BTreeSet<String> = [
        "missing-strict-transport-security",
        "tls-certificate-hostname-mismatch",
        "tls-certificate-self-signed",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(rules(&found), expected, "{found:#?}");
    let mismatch = found
        .iter()
        .find(|f| f.rule_id == "tls-certificate-hostname-mismatch")
        .unwrap();
    assert!(
        mismatch.detail.contains("[localhost]"),
        "{}",
        mismatch.detail
    );
}

#[tokio::test]
async fn https_expired_certificate_is_reported() {
    let port = https_server((2020, 1, 1), (2021, 1, 1)).await;
    let url = format!("https://localhost:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(
        &[&url],
        serde_json::json!({"check_paths": false}),
        dir.path(),
    );
    let (outcome, found) = common::run(&HttpScanner::new(), &req).await;
    outcome.unwrap();
    let r = rules(&found);
    assert!(r.contains("tls-certificate-expired"), "{found:#?}");
    assert!(
        !r.contains("tls-certificate-hostname-mismatch"),
        "localhost matches: {found:#?}"
    );
}

#[tokio::test]
async fn unreachable_target_fails_the_scan() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/");
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(&[&url], serde_json::Value::Null, dir.path());
    let (outcome, _) = common::run(&HttpScanner::new(), &req).await;
    let e = outcome.unwrap_err();
    assert!(
        matches!(e, scanplane_scanners::ScanError::Failed { .. }),
        "{e}"
    );
}

#[tokio::test]
async fn a_scan_nobody_receives_is_cancelled() {
    let port = http_server().await;
    let url = format!("http://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(&[&url], serde_json::Value::Null, dir.path());
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let e = HttpScanner::new().run(&req, tx).await.unwrap_err();
    assert!(
        matches!(e, scanplane_scanners::ScanError::Cancelled { ref scanner } if scanner == "http"),
        "{e:?}"
    );
}
