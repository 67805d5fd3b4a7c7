//! Export benchmark against the real binary: a scan of 1,000,000 findings (20,000 distinct
//! rules) is exported as SARIF and as CSV, and its diff as JSON, each by a freshly started
//! `scanplane serve`; reported are the export's time and size and the server's resident
//! memory before and at its peak (`VmRSS`, `VmHWM` of `/proc/<pid>/status`).
//!
//! `cargo bench -p scanplane --bench export` uses SQLite and, when
//! `SCANPLANE_TEST_POSTGRES_URL` is set, PostgreSQL too. `BENCH_EXPORT_FINDINGS` (default
//! 1000000) sizes the scan.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/exports.rs"]
mod exports;

use std::time::Instant;

use common::{Server, ADMIN};
use scanplane_store::{Backend, Store};

async fn one(db: &str, url_path: &str, what: &str, backend: Backend, n: usize) {
    let server = Server::start(db, &[("SCANPLANE_LOG", "warn")]).await;
    let pid = server.child.id();
    let before = exports::status_kib(pid, "VmRSS:");
    let started = Instant::now();
    let resp = server
        .client
        .get(format!("{}{url_path}", server.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{what}");
    let first_byte = started.elapsed();
    let (size, _) = exports::drain(resp, false).await;
    let took = started.elapsed();
    let peak = exports::status_kib(pid, "VmHWM:");
    println!(
        "| {} | {what} | {n} | {:.1} MB | {:.1} s | {:.2} s | {} MiB | {} MiB | {} MiB |",
        backend.as_str(),
        size as f64 / 1e6,
        took.as_secs_f64(),
        first_byte.as_secs_f64(),
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
}

async fn bench(backend: Backend, n: usize) {
    let db = scanplane_store::testing::fresh_url(backend).await.unwrap();
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(scanplane_store::open(&db).await.unwrap());
    let loading = Instant::now();
    let scan = exports::scan_with_findings(store.as_ref(), n).await;
    eprintln!(
        "{}: loaded {n} findings in {:.0?}",
        backend.as_str(),
        loading.elapsed()
    );
    drop(store);
    let base = format!("/api/v1/scans/{scan}");
    one(
        &db,
        &format!("{base}/findings?format=sarif"),
        "SARIF",
        backend,
        n,
    )
    .await;
    one(
        &db,
        &format!("{base}/findings?format=csv"),
        "CSV",
        backend,
        n,
    )
    .await;
    one(
        &db,
        &format!("{base}/diff"),
        "diff (JSON, all new)",
        backend,
        n,
    )
    .await;
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_EXPORT_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("| backend | export | findings | size | time | first byte | RSS before | peak RSS | added |");
    println!("|---|---|---|---|---|---|---|---|---|");
    bench(Backend::Sqlite, n).await;
    if std::env::var(scanplane_store::testing::POSTGRES_URL_ENV).is_ok() {
        bench(Backend::Postgres, n).await;
    }
}
