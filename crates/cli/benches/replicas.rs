//! Dispatch with several replicas on one PostgreSQL, against the real binary:
//! 1. end-to-end throughput of trivial scans (API call -> admission -> `scanplane job` child
//!    -> report -> `succeeded`) with 1, 2 and 3 `serve` replicas, submissions spread over
//!    the replicas;
//! 2. the database load replicas add while idle (lease renewals, claims, admission rounds),
//!    as committed transactions per second from `pg_stat_database`, with 1 and 3 replicas.
//!
//! `SCANPLANE_TEST_POSTGRES_URL=... cargo bench -p scanplane --bench replicas`;
//! `BENCH_SCANS` (default 300) sizes the runs, `BENCH_IDLE_SECONDS` (default 30) the idle
//! window.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scanplane_core::scan::ScanStatus;
use scanplane_store::DispatchStore;
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

async fn serve(db: &str, config: &str) -> Serve {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_scanplane"))
        .arg("serve")
        .env("SCANPLANE_DATABASE_URL", db)
        .env("SCANPLANE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SCANPLANE_ADMIN_TOKEN", ADMIN)
        .env("SCANPLANE_CONFIG", config)
        .env("MAX_CONCURRENT_JOBS", "16")
        .env("SCANPLANE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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

async fn commits(admin: &str, db_name: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    // Counters reach the view when backends flush their statistics (about once a second).
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(db_name)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

async fn throughput(replicas: usize, scans: usize, config: &str) -> f64 {
    let db = scanplane_store::testing::fresh_url(scanplane_store::Backend::Postgres)
        .await
        .unwrap();
    let mut servers = Vec::new();
    for _ in 0..replicas {
        servers.push(serve(&db, config).await);
    }
    let store = scanplane_store::open(&db).await.unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..scans {
        let s = &servers[i % replicas];
        let r = client
            .post(format!("{}/scans/now", s.url))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"scanner": "trivial", "targets": ["127.0.0.1"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    loop {
        let counts = store.count_by_status().await.unwrap();
        let done: u64 = counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| *n)
            .sum();
        if done as usize >= scans {
            let ok = counts
                .iter()
                .find(|(s, _)| *s == ScanStatus::Succeeded)
                .map_or(0, |(_, n)| *n);
            assert_eq!(ok as usize, scans, "every scan succeeded: {counts:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scans as f64 / started.elapsed().as_secs_f64()
}

async fn idle_load(replicas: usize, seconds: u64, config: &str, admin: &str) -> f64 {
    let db = scanplane_store::testing::fresh_url(scanplane_store::Backend::Postgres)
        .await
        .unwrap();
    let name = db.rsplit('/').next().unwrap().to_string();
    let mut servers = Vec::new();
    for _ in 0..replicas {
        servers.push(serve(&db, config).await);
    }
    // Start-up work (migrations, registration, first sweep) is not idle load.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = commits(admin, &name).await;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = commits(admin, &name).await;
    drop(servers);
    (after - before) as f64 / seconds as f64
}

#[tokio::main]
async fn main() {
    let Ok(admin) = std::env::var("SCANPLANE_TEST_POSTGRES_URL") else {
        eprintln!("SCANPLANE_TEST_POSTGRES_URL must point at a PostgreSQL server (./scripts/test.sh starts one)");
        std::process::exit(1);
    };
    let scans: usize = std::env::var("BENCH_SCANS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let idle: u64 = std::env::var("BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scanplane.yaml");
    std::fs::write(
        &config,
        "scanners:\n  - name: trivial\n    command: [\"sh\", \"-c\", \"echo '{\\\"findings\\\": []}'\"]\n    output: scanplane-json\n",
    )
    .unwrap();
    let config = config.display().to_string();
    println!("| replicas | scans | MAX_CONCURRENT_JOBS | end to end |");
    println!("|---|---|---|---|");
    for replicas in 1..=3 {
        let rate = throughput(replicas, scans, &config).await;
        println!("| {replicas} | {scans} | 16 | {rate:.1} scans/s |");
    }
    println!();
    println!("| idle replicas | window | committed transactions/s | per replica |");
    println!("|---|---|---|---|");
    for replicas in [1usize, 3] {
        let tps = idle_load(replicas, idle, &config, &admin).await;
        println!(
            "| {replicas} | {idle}s | {tps:.1} | {:.1} |",
            tps / replicas as f64
        );
    }
}
