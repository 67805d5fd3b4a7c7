//! A scanner process that leaves its unit's process group and environment (`setsid env -i`,
//! as a daemonizing tool does) still ends when its scan is cancelled: scanner mode runs in a
//! PID namespace of its own. Needs root or CAP_SYS_ADMIN, which the test command has; without
//! it this test fails rather than pass on a machine where the guarantee does not hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use scanplane_store::Backend;
use serde_json::json;

/// Pids whose command line contains `needle`.
fn processes_running(needle: &str) -> Vec<i32> {
    pids_where("cmdline", |c| {
        String::from_utf8_lossy(c)
            .replace('\0', " ")
            .contains(needle)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_scanner_that_left_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    // A unique sleep length marks the escaped process.
    let marker = format!("4242.{}", std::process::id());
    let cfg = custom_scanner(
        dir.path(),
        "escaper",
        &format!("setsid env -i /bin/sleep {marker} </dev/null >/dev/null 2>&1 &\nsleep 600"),
    );

    let s = Server::start(
        &fresh_db(Backend::Sqlite).await,
        &[("SCANPLANE_CONFIG", cfg.to_str().unwrap())],
    )
    .await;
    let (code, scan) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "escaper", "targets": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(code, 202, "{scan}");
    let id = scan["scan_run_id"].as_str().unwrap().to_string();
    s.wait_scan(&id, Duration::from_secs(30), |st| st == "running")
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_running(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the scanner never started its escaping child"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (code, cancelled) = s
        .call(Method::DELETE, &format!("/api/v1/scans/{id}"), ADMIN, None)
        .await;
    assert_eq!(code, 200, "{cancelled}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_running(&marker);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes {left:?} of the cancelled scan survived (scanner mode must run in its \
             own PID namespace: this needs root or CAP_SYS_ADMIN)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
