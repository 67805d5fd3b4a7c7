//! End-to-end benchmarks of the scan pipeline against the real binary:
//! 1. findings ingested per second through the report endpoint, side by side with a raw
//!    bulk load of the same rows into the same indexed table in the same run (PostgreSQL:
//!    `COPY`; SQLite: one multi-row `INSERT` transaction), with the server's peak memory;
//! 2. scans dispatched per second through the local executor with a trivial scanner
//!    (API call -> process started -> report stored).
//!
//! `cargo bench -p scanplane --bench pipeline` uses SQLite and, when
//! `SCANPLANE_TEST_POSTGRES_URL` is set, PostgreSQL too. `BENCH_FINDINGS` (default 1000000)
//! and `BENCH_SCANS` (default 200) size the runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_store::{Backend, DispatchStore, NewScan, ScanChange, Store};
use sha2::{Digest, Sha256};
use sqlx::Connection;

const ADMIN: &str = "bench-admin";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(db: &str, env: &[(&str, &str)]) -> Serve {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanplane"));
    cmd.arg("serve")
        .env("SCANPLANE_DATABASE_URL", db)
        .env("SCANPLANE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SCANPLANE_ADMIN_TOKEN", ADMIN)
        .env("SCANPLANE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let s = Serve {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{}/readyz", s.url)).send().await {
            if r.status().is_success() {
                return s;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve did not start");
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn finding_line(i: usize) -> String {
    format!(
        "{{\"type\":\"finding\",\"target\":\"10.{}.{}.{}\",\"rule_id\":\"CVE-2026-{:05}\",\"severity\":\"{}\",\"title\":\"Vulnerable package {i}\",\"location\":\"pkg-{i}@1.2.3\",\"detail\":\"fixed in 1.2.4\",\"fingerprint\":\"{:064x}\"}}\n",
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255,
        i % 100_000,
        ["critical", "high", "medium", "low", "info"][i % 5],
        i
    )
}

async fn make_scan(store: &dyn Store, token: &str) -> String {
    let tenant = store.ensure_tenant("bench").await.unwrap();
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant.id,
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::OnDemand,
                scanner: "trivy".into(),
                provider: None,
                targets: vec!["image://bench:1".into()],
                billing: false,
                options: "{}".into(),
                scope_options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    store
        .transition(
            &scan.id,
            ScanStatus::Admitted,
            &ScanChange {
                reason: "bench".into(),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    store
        .transition(
            &scan.id,
            ScanStatus::Dispatched,
            &ScanChange {
                reason: "bench".into(),
                report_token_hash: Some(hash),
                new_attempt: true,
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    scan.id
}

/// Raw bulk load of the same rows into the same table: the yardstick.
async fn raw_load(
    db: &str,
    backend: Backend,
    scan_id: &str,
    tenant_id: &str,
    n: usize,
) -> Duration {
    let started;
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
            started = Instant::now();
            let mut copy = conn
                .copy_in_raw("COPY findings (id, tenant_id, scan_id, scanner, target, rule_id, severity, title, location, detail, fingerprint, created_at) FROM STDIN")
                .await
                .unwrap();
            let mut buf = Vec::with_capacity(1 << 20);
            for i in 0..n {
                writeln!(
                    buf,
                    "{}\t{tenant_id}\t{scan_id}\ttrivy\t10.{}.{}.{}\tCVE-2026-{:05}\t{}\tVulnerable package {i}\tpkg-{i}@1.2.3\tfixed in 1.2.4\t{:064x}\t0",
                    uuid::Uuid::now_v7(),
                    (i >> 16) & 255,
                    (i >> 8) & 255,
                    i & 255,
                    i % 100_000,
                    ["critical", "high", "medium", "low", "info"][i % 5],
                    i
                )
                .unwrap();
                if buf.len() > (1 << 20) {
                    copy.send(std::mem::take(&mut buf)).await.unwrap();
                }
            }
            copy.send(buf).await.unwrap();
            copy.finish().await.unwrap();
        }
        Backend::Sqlite => {
            let path = db.trim_start_matches("sqlite://");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                .await
                .unwrap();
            started = Instant::now();
            let mut tx = conn.begin().await.unwrap();
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO findings (id, tenant_id, scan_id, scanner, target, rule_id, severity, title, location, detail, fingerprint, created_at) ");
                qb.push_values(chunk, |mut b, &i| {
                    b.push_bind(uuid::Uuid::now_v7().to_string())
                        .push_bind(tenant_id)
                        .push_bind(scan_id)
                        .push_bind("trivy")
                        .push_bind(format!(
                            "10.{}.{}.{}",
                            (i >> 16) & 255,
                            (i >> 8) & 255,
                            i & 255
                        ))
                        .push_bind(format!("CVE-2026-{:05}", i % 100_000))
                        .push_bind(["critical", "high", "medium", "low", "info"][i % 5])
                        .push_bind(format!("Vulnerable package {i}"))
                        .push_bind(format!("pkg-{i}@1.2.3"))
                        .push_bind("fixed in 1.2.4")
                        .push_bind(format!("{i:064x}"))
                        .push_bind(0i64);
                });
                qb.build().execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
    }
    started.elapsed()
}

async fn ingest(backend: Backend, db: &str, n: usize) {
    // The server starts first: its start-up recovery would take back a scan that looks
    // dispatched but has no unit of work of its own.
    let server = serve(db, &[]).await;
    let store = scanplane_store::open(db).await.unwrap();
    let token = "spr_bench_token";
    let scan_id = make_scan(&store, token).await;
    let tenant_id = store.scan(None, &scan_id).await.unwrap().unwrap().tenant_id;
    let pid = server.child.id();
    let rss_before = rss_kb(pid, "VmRSS:");
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/scans/{scan_id}/report", server.url);
    // The job's own chunking: 5,000 findings per request.
    let started = Instant::now();
    let mut peak = rss_before;
    let mut i = 0;
    while i < n {
        let end = (i + 5000).min(n);
        let body: String = (i..end).map(finding_line).collect();
        let resp = client
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        i = end;
        peak = peak.max(rss_kb(pid, "VmRSS:"));
    }
    let report = started.elapsed();
    let stored = store
        .scan(None, &scan_id)
        .await
        .unwrap()
        .unwrap()
        .findings_count;
    assert_eq!(stored as usize, n);
    drop(server);

    // The yardstick: the same rows, another scan, same table and indexes.
    let other = make_scan(&store, "spr_bench_other").await;
    let raw = raw_load(db, backend, &other, &tenant_id, n).await;
    let label = match backend {
        Backend::Postgres => "COPY",
        Backend::Sqlite => "multi-row INSERT, one transaction",
    };
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "| {} | {n} | {:.0}/s ({:.1}s) | {label}: {:.0}/s ({:.1}s) | {:.0}% | {} MiB | {} MiB |",
        backend.as_str(),
        rate(report),
        report.as_secs_f64(),
        rate(raw),
        raw.as_secs_f64(),
        100.0 * rate(report) / rate(raw),
        rss_before / 1024,
        peak / 1024,
    );
}

async fn dispatch(backend: Backend, db: &str, scans: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "scanners:\n  - name: noop\n    command: [\"sh\", \"-c\", \"echo '{\\\"findings\\\": []}'\"]\n    output: scanplane-json\n").unwrap();
    let server = serve(
        db,
        &[
            ("SCANPLANE_CONFIG", cfg.to_str().unwrap()),
            ("MAX_CONCURRENT_JOBS", "16"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..scans {
        let r = client
            .post(format!("{}/scans/now", server.url))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"scanner": "noop", "targets": [format!("10.9.{}.{}", i / 250, i % 250 + 1)]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    let store = scanplane_store::open(db).await.unwrap();
    loop {
        let counts = store.count_by_status().await.unwrap();
        let done: u64 = counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| *n)
            .sum();
        let failed: u64 = counts
            .iter()
            .filter(|(s, _)| *s != ScanStatus::Succeeded && s.is_terminal())
            .map(|(_, n)| *n)
            .sum();
        assert_eq!(failed, 0, "{counts:?}");
        if done as usize >= scans {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    println!(
        "| {} | {scans} | 16 | {:.1} scans/s ({:.1}s) |",
        backend.as_str(),
        scans as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let scans: usize = std::env::var("BENCH_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut backends = vec![Backend::Sqlite];
    if std::env::var(scanplane_store::testing::POSTGRES_URL_ENV).is_ok() {
        backends.push(Backend::Postgres);
    }
    println!("| backend | findings | report endpoint | raw bulk load | report / raw | server RSS before | server peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    for b in &backends {
        let db = scanplane_store::testing::fresh_url(*b).await.unwrap();
        ingest(*b, &db, n).await;
    }
    println!();
    println!("| backend | scans | MAX_CONCURRENT_JOBS | end to end |");
    println!("|---|---|---|---|");
    for b in &backends {
        let db = scanplane_store::testing::fresh_url(*b).await.unwrap();
        dispatch(*b, &db, scans).await;
    }
}
