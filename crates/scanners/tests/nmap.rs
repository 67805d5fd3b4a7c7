//! The nmap adapter running the real nmap against a listener on 127.0.0.1.

mod common;

use std::time::Duration;

use scanplane_core::finding::{fingerprint, Severity};
use scanplane_scanners::nmap::NmapScanner;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn nmap_finds_a_local_ssh_listener() {
    common::require_program("nmap", "apt-get install nmap");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s
                    .write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{port}");
    let req = common::request(&[&target], serde_json::Value::Null, dir.path());
    let (outcome, found) = common::run(&NmapScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, [target]);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f.location, format!("tcp/{port}"));
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.title
            .starts_with(&format!("Open port {port}/tcp: ssh (OpenSSH")),
        "{}",
        f.title
    );
    assert_eq!(
        f.fingerprint,
        fingerprint("nmap", &["127.0.0.1", &port.to_string(), "tcp"])
    );
}

/// A CIDR target is one nmap run over the block; the open port is reported on the address
/// that has it.
#[tokio::test]
async fn nmap_scans_a_cidr_block() {
    common::require_program("nmap", "apt-get install nmap");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n").await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(
        &["127.0.0.0/30"],
        serde_json::json!({"ports": port.to_string()}),
        dir.path(),
    );
    let (outcome, found) = common::run(&NmapScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, ["127.0.0.0/30"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].target, "127.0.0.1");
    assert_eq!(found[0].location, format!("tcp/{port}"));
}
