//! Two installations on one host (two `serve` processes with their own databases) that share
//! the local executor's work directory never touch each other's units: the second one
//! starting does not take the first one's running scan for an orphan of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use scanplane_store::Backend;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_installation_leaves_the_first_ones_units_alone() {
    let dir = tempfile::tempdir().unwrap();
    let shared_work = dir.path().join("work");
    let cfg = custom_scanner(dir.path(), "slow", "sleep 600");
    let env = [
        ("SCANPLANE_CONFIG", cfg.to_str().unwrap()),
        ("SCANPLANE_WORK_DIR", shared_work.to_str().unwrap()),
    ];

    let first = Server::start(&fresh_db(Backend::Sqlite).await, &env).await;
    let (code, scan) = first
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "slow", "targets": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(code, 202, "{scan}");
    let id = scan["scan_run_id"].as_str().unwrap().to_string();
    first
        .wait_scan(&id, Duration::from_secs(30), |st| st == "running")
        .await;
    assert!(!pids_of_scan(&id).is_empty(), "the scan's unit runs");

    // Another installation (its own database) starts on the same work directory and runs
    // its start-up recovery.
    let second = Server::start(&fresh_db(Backend::Sqlite).await, &env).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !second.log_text().contains("dispatcher started") {
        assert!(
            Instant::now() < deadline,
            "second server never started dispatching"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert!(
        !second.log_text().contains("stopping orphaned unit of work"),
        "the second installation stopped a unit it does not own:\n{}",
        second.log_text()
    );
    assert!(
        !pids_of_scan(&id).is_empty(),
        "the first installation's unit still runs"
    );
    let (_, now) = first.get(&format!("/api/v1/scans/{id}"), ADMIN).await;
    assert_eq!(now["status"], "running", "{now}");
    assert_eq!(now["attempts"], 1, "not restarted: {now}");
}
