//! Scans end to end on the embedded default (SQLite + local executor), and the ones that
//! matter on PostgreSQL too: real scanners against real local services, custom scanners,
//! timeouts, garbage output, cancellation, concurrency limits, maintenance windows, and
//! takeover after `serve` is killed with SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use scanplane_store::Backend;
use serde_json::{json, Value};

/// A TCP service on 127.0.0.1 that greets every connection with a banner.
fn banner_service(banner: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(banner.as_bytes());
        }
    });
    port
}

/// Writes a config file with custom scanners and returns its path (kept in `dir`).
fn config(dir: &std::path::Path, body: &str) -> String {
    let path = dir.join("scanplane.yaml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    path.display().to_string()
}

/// Writes the shell script `body` as custom scanner `name` (scanplane-json output) and a
/// config file naming it; returns the config path.
fn one_scanner(dir: &std::path::Path, name: &str, body: &str) -> String {
    let sh = script(dir, &format!("{name}.sh"), body);
    config(
        dir,
        &format!(
            "scanners:\n  - name: {name}\n    command: [\"{sh}\"]\n    output: scanplane-json\n"
        ),
    )
}

async fn findings(s: &Server, scan_id: &str) -> Vec<Value> {
    let (code, page) = s
        .get(
            &format!("/api/v1/scans/{scan_id}/findings?limit=1000"),
            ADMIN,
        )
        .await;
    assert_eq!(code, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Processes whose environment names one of `scan_ids`.
fn processes_of(scan_ids: &HashSet<String>) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        for var in env.split(|b| *b == 0) {
            if let Some(id) = std::str::from_utf8(var)
                .ok()
                .and_then(|v| v.strip_prefix("SCANPLANE_SCAN_ID="))
            {
                if scan_ids.contains(id) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// The distinct executor instance markers (work dir, installation, replica) of `pids`.
fn instance_markers(pids: &[i32]) -> HashSet<String> {
    pids.iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/environ")).ok())
        .filter_map(|env| {
            env.split(|b| *b == 0).find_map(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.strip_prefix("SCANPLANE_EXECUTOR_INSTANCE="))
                    .map(str::to_string)
            })
        })
        .collect()
}

async fn tcp_scan_finds_an_open_port(backend: Backend) {
    let port = banner_service("SSH-2.0-OpenSSH_9.2p1 scanplane-test\r\n");
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let (code, accepted) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "tcp", "targets": [format!("127.0.0.1:{port}")]}),
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["scan_run_id"].as_str().unwrap();
    let scan = s.wait_scan(id, Duration::from_secs(60), terminal).await;
    assert_eq!(scan["status"], "succeeded", "{scan}\n{}", s.log_text());
    assert!(scan["duration_seconds"].as_f64().is_some());
    assert!(scan["executor_ref"].as_str().unwrap().starts_with("pid:"));
    assert_eq!(
        scan["targets_scanned"],
        json!([format!("127.0.0.1:{port}")])
    );
    let found = findings(&s, id).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["location"], format!("tcp/{port}"));
    assert_eq!(found[0]["severity"], "info");
    assert!(
        found[0]["detail"].as_str().unwrap().contains("OpenSSH"),
        "banner grabbed: {}",
        found[0]
    );
    let (_, metrics) = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| (0, t))
        .unwrap();
    assert!(
        metrics.contains("scanplane_scan_jobs_created_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "scanplane_scans_total{status=\"succeeded\",scanner=\"tcp\",tenant=\"default\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("scanplane_findings_total{severity=\"info\"} 1"),
        "{metrics}"
    );
}

async fn nmap_scan_names_the_service(backend: Backend) {
    let port = banner_service("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let (code, accepted) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "nmap", "targets": [format!("127.0.0.1:{port}")]}),
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["scan_run_id"].as_str().unwrap();
    let scan = s.wait_scan(id, Duration::from_secs(120), terminal).await;
    assert_eq!(scan["status"], "succeeded", "{scan}\n{}", s.log_text());
    let found = findings(&s, id).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["location"], format!("tcp/{port}"));
    assert!(
        found[0]["title"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("ssh"),
        "nmap names the service: {}",
        found[0]
    );
}

async fn custom_scanner_receives_accounts_and_billing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sh = script(
        dir.path(),
        "inventory.sh",
        r#"for a in $(echo "$ACCOUNT_IDS" | tr ',' ' '); do
  printf '{"target":"account://%s","rule_id":"inventory","severity":"low","title":"account %s billing=%s rt=%s def=%s"}\n' "$a" "$a" "$BILLING" "${SCANPLANE_REPORT_TOKEN:-unset}" "${SCANPLANE_SCANNER_DEFINITION:-unset}"
done"#,
    );
    let cfg = config(dir.path(), &format!("scanners:\n  - name: inventory\n    command: [\"{sh}\"]\n    provider: aws\n    output: scanplane-json\n"));
    let s = Server::start(&fresh_db(backend).await, &[("SCANPLANE_CONFIG", &cfg)]).await;
    let (code, accepted) = s.post("/scans/now", ADMIN, json!({"scanner": "inventory", "accounts": ["111111111111", "222222222222"], "billing": true})).await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["scan_run_id"].as_str().unwrap();
    let scan = s.wait_scan(id, Duration::from_secs(60), terminal).await;
    assert_eq!(scan["status"], "succeeded", "{scan}\n{}", s.log_text());
    assert_eq!(scan["accounts"], json!(["111111111111", "222222222222"]));
    let mut titles: Vec<String> = findings(&s, id)
        .await
        .iter()
        .map(|f| f["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        vec![
            "account 111111111111 billing=true rt=unset def=unset",
            "account 222222222222 billing=true rt=unset def=unset"
        ],
        "the scanner's own process never sees the report token or the definition"
    );
    let (_, scanners) = s.get("/api/v1/scanners", ADMIN).await;
    let inv = scanners
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "inventory")
        .unwrap()
        .clone();
    assert_eq!(inv["kind"], "custom");
    assert_eq!(inv["provider"], "aws");
}

async fn hanging_and_garbage_scanners_fail_cleanly(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let hang = script(dir.path(), "hang.sh", "sleep 600");
    let garbage = script(dir.path(), "garbage.sh", "echo 'this is not json {{{'");
    let cfg = config(
        dir.path(),
        &format!("scanners:\n  - name: hang\n    command: [\"{hang}\"]\n    timeout: 2s\n    output: scanplane-json\n  - name: garbage\n    command: [\"{garbage}\"]\n    output: scanplane-json\n"),
    );
    let s = Server::start(
        &fresh_db(backend).await,
        &[("SCANPLANE_CONFIG", &cfg), ("SCANNER_BACKOFF_LIMIT", "0")],
    )
    .await;
    let (_, h) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "hang", "targets": ["127.0.0.1"]}),
        )
        .await;
    let (_, g) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "garbage", "targets": ["127.0.0.1"]}),
        )
        .await;
    let hid = h["scan_run_id"].as_str().unwrap().to_string();
    let gid = g["scan_run_id"].as_str().unwrap().to_string();
    let hs = s.wait_scan(&hid, Duration::from_secs(60), terminal).await;
    assert_eq!(hs["status"], "timed_out", "{hs}");
    assert!(hs["reason"].as_str().unwrap().contains("timeout"), "{hs}");
    let gs = s.wait_scan(&gid, Duration::from_secs(60), terminal).await;
    assert_eq!(gs["status"], "failed", "{gs}");
    let err = gs["error"].as_str().unwrap_or_default().to_string()
        + gs["reason"].as_str().unwrap_or_default();
    assert!(
        err.contains("garbage"),
        "the parse error names the scanner: {gs}"
    );
    let ids: HashSet<String> = [hid, gid].into_iter().collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        processes_of(&ids).is_empty(),
        "no process of a finished scan is left"
    );
    let (code, _) = s.get("/readyz", "").await;
    assert_eq!(code, 200, "the server stays healthy");
}

async fn cancel_kills_and_releases_the_slot(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_scanner(dir.path(), "slow", "sleep 600");
    let s = Server::start(
        &fresh_db(backend).await,
        &[("SCANPLANE_CONFIG", &cfg), ("MAX_CONCURRENT_JOBS", "1")],
    )
    .await;
    let (_, a) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "slow", "targets": ["127.0.0.1"]}),
        )
        .await;
    let (_, b) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "slow", "targets": ["127.0.0.1"]}),
        )
        .await;
    let aid = a["scan_run_id"].as_str().unwrap().to_string();
    let bid = b["scan_run_id"].as_str().unwrap().to_string();
    s.wait_scan(&aid, Duration::from_secs(30), |st| st == "running")
        .await;
    // The first admission round after `a` launched may not have reached `b` yet: wait for the
    // round that holds it, and fail if it is ever admitted instead.
    let waiting = s
        .wait_scan_view(&bid, Duration::from_secs(10), |v| {
            v["status"] != "queued"
                || v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("MAX_CONCURRENT_JOBS"))
        })
        .await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert!(
        waiting["reason"]
            .as_str()
            .unwrap()
            .contains("MAX_CONCURRENT_JOBS"),
        "{waiting}"
    );
    let ids: HashSet<String> = [aid.clone()].into_iter().collect();
    assert!(!processes_of(&ids).is_empty(), "the scan's process runs");
    let (code, cancelled) = s
        .call(Method::DELETE, &format!("/api/v1/scans/{aid}"), ADMIN, None)
        .await;
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    // The slot goes to the next scan, and the cancelled scan's process is killed.
    s.wait_scan(&bid, Duration::from_secs(30), |st| st == "running")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_of(&ids).is_empty() {
        assert!(
            Instant::now() < deadline,
            "cancelled scan's processes still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = s
        .call(Method::DELETE, &format!("/api/v1/scans/{aid}"), ADMIN, None)
        .await;
    assert_eq!(code, 409, "cancelling an ended scan is a conflict: {body}");
    let _ = s
        .call(Method::DELETE, &format!("/api/v1/scans/{bid}"), ADMIN, None)
        .await;
}

async fn concurrency_limit_is_never_exceeded(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_scanner(dir.path(), "quick", "sleep 0.3; echo '{\"findings\": []}'");
    let n = 2;
    let s = Server::start(
        &fresh_db(backend).await,
        &[("SCANPLANE_CONFIG", &cfg), ("MAX_CONCURRENT_JOBS", "2")],
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..(10 * n) {
        let (code, a) = s
            .post(
                "/scans/now",
                ADMIN,
                json!({"scanner": "quick", "targets": [format!("10.0.0.{}", i + 1)]}),
            )
            .await;
        assert_eq!(code, 202);
        ids.push(a["scan_run_id"].as_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut max_seen = 0;
    loop {
        let (_, page) = s.get("/api/v1/scans?limit=1000", ADMIN).await;
        let items = page["items"].as_array().unwrap();
        let holding = items
            .iter()
            .filter(|x| {
                matches!(
                    x["status"].as_str(),
                    Some("admitted" | "dispatched" | "running")
                )
            })
            .count();
        max_seen = max_seen.max(holding);
        assert!(
            holding <= n,
            "{holding} scans hold slots with MAX_CONCURRENT_JOBS={n}"
        );
        if items
            .iter()
            .all(|x| terminal(x["status"].as_str().unwrap()))
        {
            let bad: Vec<&Value> = items
                .iter()
                .filter(|x| x["status"] != "succeeded")
                .collect();
            assert!(
                bad.is_empty(),
                "{} scans did not succeed, e.g. {}",
                bad.len(),
                bad[0]["reason"]
            );
            break;
        }
        assert!(Instant::now() < deadline, "scans did not finish in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        max_seen, n,
        "the limit was reached, so the test exercised it"
    );
}

async fn maintenance_window_holds_then_releases(backend: Backend) {
    let port = banner_service("hello\r\n");
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (code, w) = s
        .post(
            "/api/v1/maintenance-windows",
            ADMIN,
            json!({"name": "nightly-freeze", "start": start, "duration": "4s"}),
        )
        .await;
    assert_eq!(code, 201, "{w}");
    let (_, a) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "tcp", "targets": [format!("127.0.0.1:{port}")]}),
        )
        .await;
    let id = a["scan_run_id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, held) = s.get(&format!("/api/v1/scans/{id}"), ADMIN).await;
    assert_eq!(held["status"], "queued", "{held}");
    assert!(
        held["reason"]
            .as_str()
            .unwrap()
            .starts_with("waiting: maintenance window \"nightly-freeze\" until "),
        "{held}"
    );
    let done = s.wait_scan(id, Duration::from_secs(30), terminal).await;
    assert_eq!(
        done["status"], "succeeded",
        "released when the window ends: {done}"
    );
}

async fn sigkill_recovery(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_scanner(dir.path(), "slow", "sleep 600");
    let db = fresh_db(backend).await;
    let port = free_port();
    let env = [
        ("SCANPLANE_CONFIG", cfg.as_str()),
        ("MAX_CONCURRENT_JOBS", "50"),
        ("SCANNER_BACKOFF_LIMIT", "0"),
        ("SCANPLANE_REPLICA_LEASE", "2s"),
    ];
    let mut first = Server::start_on(&db, port, &env).await;
    let mut ids = HashSet::new();
    for i in 0..50 {
        let (code, a) = first
            .post(
                "/scans/now",
                ADMIN,
                json!({"scanner": "slow", "targets": [format!("10.0.1.{}", i + 1)]}),
            )
            .await;
        assert_eq!(code, 202);
        ids.insert(a["scan_run_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        first
            .wait_scan(id, Duration::from_secs(120), |st| st == "running")
            .await;
    }
    assert!(processes_of(&ids).len() >= 50, "50 scans have processes");
    first.kill9();

    let second = Server::start_on(&db, port, &env).await;
    // The killed replica's lease (2 s here) expires; the new one takes its attempts over.
    // They died with their replica, so each is re-queued without being charged (the backoff
    // limit is 0: a charged loss would fail them) and runs again, once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = second.get("/api/v1/scans?limit=1000", ADMIN).await;
        let items = page["items"].as_array().unwrap();
        let rerun = items
            .iter()
            .filter(|x| x["status"] == "running" && x["attempts"] == 2)
            .count();
        if rerun == ids.len() {
            for x in items {
                assert_eq!(x["lost_attempts"], 1, "{x}");
                assert_ne!(x["replica"], Value::Null, "{x}");
            }
            break;
        }
        for x in items {
            assert!(
                !terminal(x["status"].as_str().unwrap()),
                "no scan ends: {x}"
            );
        }
        assert!(Instant::now() < deadline, "scans not taken over: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, replicas) = second.get("/api/v1/replicas", ADMIN).await;
    let states: Vec<&str> = replicas["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["live", "lost"], "{replicas}");
    // Every process of these scans is the new replica's: the killed one's died with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let markers = instance_markers(&processes_of(&ids));
        if markers.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "units of two replicas: {markers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        let (code, body) = second
            .call(Method::DELETE, &format!("/api/v1/scans/{id}"), ADMIN, None)
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_of(&ids).is_empty() {
        assert!(
            Instant::now() < deadline,
            "orphan processes left: {:?}",
            processes_of(&ids)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = second
        .client
        .get(format!("{}/metrics", second.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scanplane_active_scan_jobs 0"),
        "slots back to zero:\n{metrics}"
    );
}

/// An error that would recur ends the scan at once with one line; a transient one is
/// retried after the backoff, which admission honours.
async fn deterministic_errors_fail_at_once_transient_ones_back_off(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let garbage = script(dir.path(), "garbage.sh", "echo 'this is not json {{{'");
    let flaky = script(
        dir.path(),
        "flaky.sh",
        "echo 'connection reset by peer' >&2; exit 1",
    );
    let cfg = config(dir.path(), &format!("scanners:\n  - {{name: garbage, command: [\"{garbage}\"]}}\n  - {{name: flaky, command: [\"{flaky}\"]}}\n"));
    let s = Server::start(
        &fresh_db(backend).await,
        &[
            ("SCANPLANE_CONFIG", &cfg),
            ("SCANNER_BACKOFF_LIMIT", "2"),
            ("SCANPLANE_RETRY_DELAY", "2s"),
        ],
    )
    .await;
    let (_, g) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "garbage", "targets": ["127.0.0.1"]}),
        )
        .await;
    let gid = g["scan_run_id"].as_str().unwrap().to_string();
    let gs = s.wait_scan(&gid, Duration::from_secs(60), terminal).await;
    assert_eq!(gs["status"], "failed", "{gs}");
    assert_eq!(gs["attempts"], 1, "not retried: {gs}");
    let reason = gs["reason"].as_str().unwrap();
    assert!(
        reason.contains("unreadable output") && reason.contains("not retried"),
        "{reason}"
    );
    assert!(
        !reason.contains('\n') && !reason.contains(" INFO "),
        "one line: {reason:?}"
    );

    let (_, f) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "flaky", "targets": ["127.0.0.1"]}),
        )
        .await;
    let fid = f["scan_run_id"].as_str().unwrap().to_string();
    let waiting = s
        .wait_scan_view(&fid, Duration::from_secs(60), |v| {
            v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("next attempt not before"))
                || terminal(v["status"].as_str().unwrap_or(""))
        })
        .await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    let reason = waiting["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("attempt 1 of 3 failed") && reason.contains("connection reset by peer"),
        "{reason}"
    );
    let not_before =
        chrono::DateTime::parse_from_rfc3339(reason.rsplit("not before ").next().unwrap()).unwrap();
    let second = s
        .wait_scan_view(&fid, Duration::from_secs(60), |v| v["attempts"] == 2)
        .await;
    let admitted =
        chrono::DateTime::parse_from_rfc3339(second["admitted_at"].as_str().unwrap()).unwrap();
    assert!(
        admitted >= not_before,
        "admitted at {admitted}, before {not_before}: {second}"
    );
    let done = s.wait_scan(&fid, Duration::from_secs(90), terminal).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempts"], 3, "{done}");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .starts_with("failed after 3 attempts: exit code 1"),
        "{done}"
    );
}

/// `scanplane_scans_total` against the scans the API lists, after scans ended in every way a
/// user meets: succeeded, failed, cancelled while running and cancelled while queued.
async fn metrics_agree_with_the_scans_listed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let ok = script(
        dir.path(),
        "ok.sh",
        r#"echo '{"target":"127.0.0.1","rule_id":"r","severity":"low","title":"t"}'"#,
    );
    let broken = script(dir.path(), "broken.sh", "exit 3");
    let slow = script(dir.path(), "slow.sh", "sleep 600");
    let cfg = config(dir.path(), &format!("scanners:\n  - {{name: ok, command: [\"{ok}\"]}}\n  - {{name: broken, command: [\"{broken}\"]}}\n  - {{name: slow, command: [\"{slow}\"]}}\n"));
    let s = Server::start(
        &fresh_db(backend).await,
        &[
            ("SCANPLANE_CONFIG", &cfg),
            ("MAX_CONCURRENT_JOBS", "1"),
            ("SCANNER_BACKOFF_LIMIT", "0"),
        ],
    )
    .await;
    let submit = |scanner: &'static str| {
        let s = &s;
        async move {
            let (code, a) = s
                .post(
                    "/scans/now",
                    ADMIN,
                    json!({"scanner": scanner, "targets": ["127.0.0.1"]}),
                )
                .await;
            assert_eq!(code, 202, "{a}");
            a["scan_run_id"].as_str().unwrap().to_string()
        }
    };
    for scanner in ["ok", "ok", "broken"] {
        let id = submit(scanner).await;
        s.wait_scan(&id, Duration::from_secs(60), terminal).await;
    }
    let running = submit("slow").await;
    s.wait_scan(&running, Duration::from_secs(30), |st| st == "running")
        .await;
    let queued = submit("slow").await;
    for id in [&queued, &running] {
        let (code, c) = s
            .call(Method::DELETE, &format!("/api/v1/scans/{id}"), ADMIN, None)
            .await;
        assert_eq!(code, 200, "{c}");
    }

    let (_, page) = s.get("/api/v1/scans?limit=1000", ADMIN).await;
    let mut listed: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for scan in page["items"].as_array().unwrap() {
        let key = (
            scan["status"].as_str().unwrap().to_string(),
            scan["scanner"].as_str().unwrap().to_string(),
        );
        *listed.entry(key).or_default() += 1;
    }
    let expected: std::collections::BTreeMap<(String, String), u64> = [
        (("succeeded", "ok"), 2),
        (("failed", "broken"), 1),
        (("cancelled", "slow"), 2),
    ]
    .into_iter()
    .map(|((st, sc), n)| ((st.to_string(), sc.to_string()), n))
    .collect();
    assert_eq!(listed, expected, "{page}");

    let metrics = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut exported: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("scanplane_scans_total{"))
    {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            line[start..start + line[start..].find('"').unwrap()].to_string()
        };
        assert_eq!(label("tenant"), "default", "{line}");
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        exported.insert((label("status"), label("scanner")), n);
    }
    assert_eq!(
        exported, listed,
        "/metrics agrees with the listed scans:\n{metrics}"
    );
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    tcp_scan_finds_an_open_port,
    nmap_scan_names_the_service,
    custom_scanner_receives_accounts_and_billing,
    hanging_and_garbage_scanners_fail_cleanly,
    cancel_kills_and_releases_the_slot,
    metrics_agree_with_the_scans_listed,
    deterministic_errors_fail_at_once_transient_ones_back_off,
    concurrency_limit_is_never_exceeded,
    maintenance_window_holds_then_releases,
    sigkill_recovery
);
