//! The built-in TCP scanner against real listeners on 127.0.0.1.

mod common;

use std::time::Duration;

use scanplane_core::finding::{fingerprint, Severity};
use scanplane_scanners::tcp::TcpScanner;
use tokio::io::AsyncWriteExt;

/// Accepts connections forever, greeting each with `banner` (possibly empty).
async fn listener(banner: &'static [u8]) -> u16 {
    let (l, port) = common::bind_local().await;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(banner).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            });
        }
    });
    port
}

async fn closed_port() -> u16 {
    common::bind_local().await.1
}

#[tokio::test]
async fn finds_open_ports_with_banners_and_not_closed_ones() {
    let ssh = listener(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
    let silent = listener(b"").await;
    let closed = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let ports = format!("{ssh},{silent},{closed}");
    let req = common::request(
        &["127.0.0.1"],
        serde_json::json!({"ports": ports, "connect_timeout": "1s"}),
        dir.path(),
    );
    let (outcome, mut found) = common::run(&TcpScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, ["127.0.0.1"]);
    found.sort_by_key(|f| f.location.clone());
    let mut expected = vec![format!("tcp/{ssh}"), format!("tcp/{silent}")];
    expected.sort();
    assert_eq!(
        found.iter().map(|f| f.location.clone()).collect::<Vec<_>>(),
        expected
    );
    let f = found
        .iter()
        .find(|f| f.location == format!("tcp/{ssh}"))
        .unwrap();
    assert_eq!(f.rule_id, "open-port");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.title, format!("Open port {ssh}/tcp"));
    assert!(
        f.detail.contains("Banner: SSH-2.0-OpenSSH_9.2p1 Debian-2"),
        "{}",
        f.detail
    );
    assert_eq!(
        f.fingerprint,
        fingerprint("tcp", &["127.0.0.1", &ssh.to_string(), "tcp"])
    );
    let s = found
        .iter()
        .find(|f| f.location == format!("tcp/{silent}"))
        .unwrap();
    assert!(s.detail.contains("no banner"), "{}", s.detail);
}

#[tokio::test]
async fn host_with_port_scans_only_that_port() {
    let open = listener(b"220 ftp ready\r\n").await;
    let other = listener(b"x").await;
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{open}");
    let req = common::request(
        &[&target],
        serde_json::json!({"ports": other.to_string()}),
        dir.path(),
    );
    let (outcome, found) = common::run(&TcpScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, [target]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].location, format!("tcp/{open}"));
}

#[tokio::test]
async fn closed_port_gives_no_findings() {
    let closed = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{closed}");
    let req = common::request(&[&target], serde_json::Value::Null, dir.path());
    let (outcome, found) = common::run(&TcpScanner::new(), &req).await;
    assert!(outcome.is_ok());
    assert!(found.is_empty(), "{found:#?}");
}

/// A network range is every address of it on the `ports` option's ports; the open port is
/// reported on the address that has it, and a range wider than the limit is refused.
#[tokio::test]
async fn scans_every_address_of_a_small_range() {
    use scanplane_scanners::{Scanner, ValidationError};
    let open = listener(b"").await;
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(
        &["127.0.0.0/30"],
        serde_json::json!({"ports": open.to_string(), "connect_timeout": "1s"}),
        dir.path(),
    );
    let (outcome, found) = common::run(&TcpScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, ["127.0.0.0/30"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].target, "127.0.0.1");
    assert_eq!(found[0].location, format!("tcp/{open}"));
    let wide = common::request(&["10.0.0.0/23"], serde_json::Value::Null, dir.path());
    match TcpScanner::new()
        .validate(&wide.targets, &wide.options)
        .unwrap_err()
    {
        ValidationError::Target { index, reason, .. } => {
            assert_eq!(index, 0);
            assert!(reason.contains("at most 256"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
