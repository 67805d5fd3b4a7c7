//! Replicas sharing one PostgreSQL with the local executor: a replica starting never
//! touches the scans a live replica runs; the scans of a replica killed with SIGKILL are
//! taken over by a survivor once its lease expires (the time is printed), and those of a
//! replica stopped with SIGTERM at once; attempts lost with a replica are never charged to
//! the scan's retry budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use scanplane_store::Backend;
use serde_json::{json, Value};

/// A scanner that records each start in `starts`, runs `secs` seconds, and reports one
/// finding about its target.
fn counted_scanner(dir: &std::path::Path, secs: u32) -> (String, std::path::PathBuf) {
    let starts = dir.join("starts");
    let cfg = custom_scanner(
        dir,
        "counted",
        &format!(
            "echo \"$SCANPLANE_TARGETS\" >> {}\nsleep {secs}\necho '{{\"rule_id\": \"r1\", \"severity\": \"low\", \"title\": \"seen\"}}'",
            starts.display()
        ),
    );
    (cfg.display().to_string(), starts)
}

fn starts(file: &std::path::Path) -> usize {
    std::fs::read_to_string(file)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

async fn submit(s: &Server, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (code, a) = s
            .post(
                "/scans/now",
                ADMIN,
                json!({"scanner": "counted", "targets": [format!("10.0.2.{}", i + 1)]}),
            )
            .await;
        assert_eq!(code, 202, "{a}");
        ids.push(a["scan_run_id"].as_str().unwrap().to_string());
    }
    ids
}

async fn replica_of(s: &Server) -> String {
    let (code, r) = s.get("/readyz", "").await;
    assert_eq!(code, 200, "{r}");
    r["replica"].as_str().unwrap().to_string()
}

async fn scan(s: &Server, id: &str) -> Value {
    s.get(&format!("/api/v1/scans/{id}"), ADMIN).await.1
}

/// Waits until every scan satisfies `pred`, failing after `limit` with the last state.
async fn wait_all(s: &Server, ids: &[String], limit: Duration, pred: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = true;
        let mut last = Value::Null;
        for id in ids {
            let x = scan(s, id).await;
            if !pred(&x) {
                all = false;
                last = x;
                break;
            }
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "not reached: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replica A on `db`, running four scans of the counted scanner: (A, its id, the scans).
async fn a_running_four(db: &str, env: &[(&str, &str)]) -> (Server, String, Vec<String>) {
    let a = Server::start(db, env).await;
    let a_id = replica_of(&a).await;
    let ids = submit(&a, 4).await;
    wait_all(&a, &ids, Duration::from_secs(60), |x| {
        x["status"] == "running"
    })
    .await;
    (a, a_id, ids)
}

/// The state of replica `id` in `GET /api/v1/replicas`.
async fn replica_state(s: &Server, id: &str) -> String {
    let (_, replicas) = s.get("/api/v1/replicas", ADMIN).await;
    let row = replicas["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("replica {id} not listed: {replicas}"));
    row["state"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_replica_never_restarts_a_live_replicas_scans() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, started) = counted_scanner(dir.path(), 10);
    let db = fresh_db(Backend::Postgres).await;
    let env = [
        ("SCANPLANE_CONFIG", cfg.as_str()),
        ("MAX_CONCURRENT_JOBS", "4"),
        ("SCANPLANE_REPLICA_LEASE", "2s"),
    ];
    let (_a, a_id, ids) = a_running_four(&db, &env).await;
    // `running` means the job process started; its scanner writes its line a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while starts(&started) < 4 {
        assert!(Instant::now() < deadline, "scanners did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(starts(&started), 4);

    let b = Server::start(&db, &env).await;
    let b_id = replica_of(&b).await;
    assert_ne!(a_id, b_id);
    // Three of B's leases pass: B has registered, claimed and swept several times.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(starts(&started), 4, "no scan was started a second time");
    for id in &ids {
        let x = scan(&b, id).await;
        assert_eq!(x["status"], "running", "{x}");
        assert_eq!(x["attempts"], 1, "{x}");
        assert_eq!(x["replica"], a_id.as_str(), "still A's: {x}");
    }
    wait_all(&b, &ids, Duration::from_secs(60), |x| {
        x["status"] == "succeeded"
    })
    .await;
    assert_eq!(starts(&started), 4);
    for id in &ids {
        let x = scan(&b, id).await;
        assert_eq!(
            (x["attempts"].clone(), x["findings_count"].clone()),
            (json!(1), json!(1)),
            "{x}"
        );
    }
    let (_, replicas) = b.get("/api/v1/replicas", ADMIN).await;
    let live: Vec<&str> = replicas["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "live")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(live.len(), 2, "{replicas}");
}

/// With the default lease (15 s): how long until a survivor runs the scans of a replica
/// killed with SIGKILL. Printed for BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_scans_are_taken_over_after_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, started) = counted_scanner(dir.path(), 3);
    let db = fresh_db(Backend::Postgres).await;
    // No retries at all: an attempt charged for the loss would fail its scan.
    let env = [
        ("SCANPLANE_CONFIG", cfg.as_str()),
        ("MAX_CONCURRENT_JOBS", "4"),
        ("SCANNER_BACKOFF_LIMIT", "0"),
    ];
    let (mut a, a_id, ids) = a_running_four(&db, &env).await;
    let b = Server::start(&db, &env).await;
    a.kill9();
    let killed = Instant::now();
    wait_all(&b, &ids, Duration::from_secs(60), |x| x["attempts"] == 2).await;
    let takeover = killed.elapsed();
    wait_all(&b, &ids, Duration::from_secs(60), |x| {
        terminal(x["status"].as_str().unwrap())
    })
    .await;
    let done = killed.elapsed();
    for id in &ids {
        let x = scan(&b, id).await;
        assert_eq!(x["status"], "succeeded", "{x}");
        assert_eq!(x["lost_attempts"], 1, "{x}");
        assert_eq!(x["findings_count"], 1, "{x}");
    }
    assert_eq!(
        starts(&started),
        8,
        "each scan ran twice: once on A, once on B"
    );
    assert_eq!(replica_state(&b, &a_id).await, "lost");
    println!(
        "takeover after SIGKILL (lease 15s): scans relaunched {:.1}s after the kill, all succeeded after {:.1}s",
        takeover.as_secs_f64(),
        done.as_secs_f64()
    );
}

/// A replica stopped with SIGTERM stops its units (whole process groups, tools included),
/// hands their attempts back uncharged with the reason, and releases its lease: a survivor
/// runs them at once, not after the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_hands_its_scans_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, started) = counted_scanner(dir.path(), 3);
    let db = fresh_db(Backend::Postgres).await;
    let env = [
        ("SCANPLANE_CONFIG", cfg.as_str()),
        ("MAX_CONCURRENT_JOBS", "4"),
        ("SCANNER_BACKOFF_LIMIT", "0"),
        ("SCANPLANE_REPLICA_LEASE", "60s"),
    ];
    let (mut a, a_id, ids) = a_running_four(&db, &env).await;
    let b = Server::start(&db, &env).await;
    let stopped = Instant::now();
    let status = a.terminate();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status}");
    // A's units carry its replica id in their marker.
    let pids = pids_where("environ", |env| {
        env.windows(a_id.len()).any(|w| w == a_id.as_bytes())
    });
    assert!(
        pids.is_empty(),
        "no process of A's units outlives A: {pids:?}"
    );
    // Far less than the 60 s lease: released, not expired.
    wait_all(&b, &ids, Duration::from_secs(20), |x| x["attempts"] == 2).await;
    let handed = stopped.elapsed();
    wait_all(&b, &ids, Duration::from_secs(60), |x| {
        x["status"] == "succeeded"
    })
    .await;
    for id in &ids {
        let x = scan(&b, id).await;
        assert_eq!(x["lost_attempts"], 1, "{x}");
    }
    assert_eq!(starts(&started), 8);
    assert_eq!(replica_state(&b, &a_id).await, "stopped");
    println!(
        "handover after SIGTERM: scans relaunched {:.1}s after the stop",
        handed.as_secs_f64()
    );
}
