//! Benchmarks of findings across runs through the real HTTP API over a real store: the
//! first page of `GET /api/v1/findings?severity=high&status=open` at 1,000,000 stored
//! findings (p50/p99 latency), and `GET /api/v1/scans/:id/diff` of two 100,000-finding runs.
//! `cargo bench -p scanplane-api --bench findings` runs SQLite and, when
//! `SCANPLANE_TEST_POSTGRES_URL` is set, PostgreSQL. `BENCH_IDENTITIES` sizes the first part.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use scanplane_api::{AppState, Rejection, ScannerCatalog};
use scanplane_core::clock::SystemClock;
use scanplane_core::finding::{Finding, Severity};
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_core::scanner::ScannerDef;
use scanplane_core::target::Target;
use scanplane_store::{Backend, NewScan, ScanChange, Store};
use tokio::sync::Notify;

struct NoCatalog;

impl ScannerCatalog for NoCatalog {
    fn definitions(&self) -> Vec<ScannerDef> {
        Vec::new()
    }
    fn definition(&self, _: &str) -> Option<ScannerDef> {
        None
    }
    fn validate(&self, _: &str, _: &[Target], _: &serde_json::Value) -> Result<(), Rejection> {
        Ok(())
    }
    fn scope_options(&self, _: &str, options: &serde_json::Value) -> String {
        options.to_string()
    }
}

async fn serve(store: Arc<dyn Store>) -> String {
    let tenant = store.ensure_tenant("default").await.unwrap();
    let state = Arc::new(AppState {
        store,
        catalog: Arc::new(NoCatalog),
        clock: Arc::new(SystemClock),
        admin_token_hash: None,
        default_tenant: tenant,
        wake_scheduler: Arc::new(Notify::new()),
        wake_dispatcher: Arc::new(Notify::new()),
        metrics: Arc::new(scanplane_metrics::Metrics::new()),
        replica: Default::default(),
        clusters: vec!["production".into()],
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, scanplane_api::router(state))
            .await
            .unwrap()
    });
    url
}

/// One complete run over `target` reporting findings `offset..offset+n`.
async fn run(store: &dyn Store, tenant: &str, target: &str, offset: usize, n: usize) -> String {
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant.into(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::Schedule,
                scanner: "trivy".into(),
                provider: None,
                targets: vec![target.into()],
                billing: false,
                options: "{}".into(),
                scope_options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    for st in [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ] {
        store
            .transition(&scan.id, st, &ScanChange::default(), now)
            .await
            .unwrap();
    }
    let sev = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];
    let mut i = offset;
    while i < offset + n {
        let end = (i + 20_000).min(offset + n);
        let batch: Vec<Finding> = (i..end)
            .map(|k| {
                Finding::new(
                    "trivy",
                    target,
                    format!("CVE-2026-{k:07}"),
                    sev[k % 5],
                    format!("Vulnerable package {k}"),
                    format!("pkg-{k}@1.0.{}", k % 7),
                )
            })
            .collect();
        store
            .insert_findings(tenant, &scan.id, "trivy", &batch, now)
            .await
            .unwrap();
        i = end;
    }
    store
        .complete_scan(
            &scan.id,
            &ScanChange {
                reason: "bench".into(),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    scan.id
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn bench(backend: Backend, identities: usize) {
    let url = scanplane_store::testing::fresh_url(backend).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(scanplane_store::open(&url).await.unwrap());
    let tenant = store.ensure_tenant("bench").await.unwrap();
    let token = "spt_bench";
    store
        .create_token(&tenant.id, "bench", &scanplane_api::auth::hash_token(token))
        .await
        .unwrap();
    let base = serve(store.clone()).await;
    let client = reqwest::Client::new();

    // 1. Query at `identities` stored findings, spread over 10 targets.
    let load = Instant::now();
    let per = identities / 10;
    for t in 0..10 {
        run(
            store.as_ref(),
            &tenant.id,
            &format!("image://app-{t}:1"),
            t * per,
            per,
        )
        .await;
    }
    let loaded = load.elapsed();
    let q = format!("{base}/api/v1/findings?severity=high&status=open&limit=100");
    for _ in 0..20 {
        client
            .get(&q)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let mut lat = Vec::new();
    for _ in 0..500 {
        let t0 = Instant::now();
        let r = client.get(&q).bearer_auth(token).send().await.unwrap();
        assert!(r.status().is_success());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), 100);
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "| {} | {identities} | {:.0}s | {:.2} ms | {:.2} ms | {:.2} ms |",
        backend.as_str(),
        loaded.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // 2. Diff of two 100,000-finding runs of one scope, 10,000 fixed and 10,000 new.
    run(
        store.as_ref(),
        &tenant.id,
        "image://diff:1",
        5_000_000,
        100_000,
    )
    .await;
    let r2 = run(
        store.as_ref(),
        &tenant.id,
        "image://diff:1",
        5_010_000,
        100_000,
    )
    .await;
    let t0 = Instant::now();
    let direct = store.diff(Some(&tenant.id), &r2).await.unwrap();
    let store_ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(direct.new.len(), 10_000);
    let mut times = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let body: serde_json::Value = client
            .get(format!("{base}/api/v1/scans/{r2}/diff"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        times.push(t0.elapsed());
        assert_eq!(body["counts"]["new"], 10_000);
        assert_eq!(body["counts"]["fixed"], 10_000);
        assert_eq!(body["counts"]["unchanged"], 90_000);
    }
    times.sort();
    println!(
        "DIFF | {} | 100000 vs 100000 | store {store_ms:.0} ms | HTTP {:.0} ms median, {:.0} ms max |",
        backend.as_str(),
        times[2].as_secs_f64() * 1000.0,
        times[4].as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_IDENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("| backend | stored findings | load (ingest + identities) | query p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    bench(Backend::Sqlite, n).await;
    if std::env::var(scanplane_store::testing::POSTGRES_URL_ENV).is_ok() {
        bench(Backend::Postgres, n).await;
    }
}
