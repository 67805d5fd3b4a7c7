//! Scanner mode survives a server restart mid-report: the real report endpoint over a real
//! store goes away while findings are streaming and comes back on the same port; the job
//! retries with backoff and every finding lands exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use scanplane_api::{AppState, Rejection, ScannerCatalog};
use scanplane_core::clock::SystemClock;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_core::scanner::ScannerDef;
use scanplane_core::target::Target;
use scanplane_job::JobConfig;
use scanplane_scanners::{CustomScannerConfig, Registry};
use scanplane_store::testing::fresh_store;
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
}

async fn serve_on(store: Arc<dyn Store>, port: u16) -> tokio::task::JoinHandle<()> {
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
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, scanplane_api::router(state))
            .await
            .unwrap();
    })
}

async fn report_survives_restart(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let tenant = store.ensure_tenant("default").await.unwrap();
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant.id.clone(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::OnDemand,
                scanner: "burst".into(),
                provider: None,
                targets: vec!["127.0.0.1".into()],
                billing: false,
                options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    let token = "spr_restart_test";
    store
        .transition(&scan.id, ScanStatus::Admitted, &ScanChange::default(), now)
        .await
        .unwrap();
    let change = ScanChange {
        report_token_hash: Some(scanplane_protocol::token::hash_token(token)),
        new_attempt: true,
        ..Default::default()
    };
    store
        .transition(&scan.id, ScanStatus::Dispatched, &change, now)
        .await
        .unwrap();

    // A scanner that emits 3,000 findings, pauses while the server restarts, then 3,000 more.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("burst.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ni=0; while [ $i -lt 3000 ]; do echo \"{\\\"target\\\":\\\"127.0.0.1\\\",\\\"rule_id\\\":\\\"r$i\\\",\\\"severity\\\":\\\"low\\\",\\\"title\\\":\\\"t$i\\\"}\"; i=$((i+1)); done\n\
         sleep 6\n\
         while [ $i -lt 6000 ]; do echo \"{\\\"target\\\":\\\"127.0.0.1\\\",\\\"rule_id\\\":\\\"r$i\\\",\\\"severity\\\":\\\"low\\\",\\\"title\\\":\\\"t$i\\\"}\"; i=$((i+1)); done\n",
    )
    .unwrap();
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    let custom: CustomScannerConfig = serde_yaml::from_str(&format!(
        "name: burst\ncommand: [\"{}\"]\noutput: scanplane-json\n",
        script.display()
    ))
    .unwrap();
    let registry = Arc::new(Registry::with_custom(vec![custom]).unwrap());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = serve_on(store.clone(), port).await;
    let config = JobConfig {
        scan_id: scan.id.clone(),
        server_url: format!("http://127.0.0.1:{port}"),
        report_token: token.into(),
        scanner: "burst".into(),
        targets: vec!["127.0.0.1".into()],
        billing: false,
        options: serde_json::json!({}),
        timeout: Duration::from_secs(60),
        work_dir: dir.path().to_path_buf(),
    };
    let job = tokio::spawn(scanplane_job::run(config, registry));

    // The first findings arrive, then the server goes away while the scanner still runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store
        .scan(None, &scan.id)
        .await
        .unwrap()
        .unwrap()
        .findings_count
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "no findings arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
    let _ = server.await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mid = store.scan(None, &scan.id).await.unwrap().unwrap();
    assert!(
        mid.findings_count < 6000,
        "the rest could not be reported while the server was down"
    );
    let server = serve_on(store.clone(), port).await;

    let reported = tokio::time::timeout(Duration::from_secs(60), job)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reported, 6000);
    let done = store.scan(None, &scan.id).await.unwrap().unwrap();
    assert_eq!(done.status, ScanStatus::Succeeded, "{}", done.reason);
    assert_eq!(done.findings_count, 6000, "every finding exactly once");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_report_survives_server_restart() {
    report_survives_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_report_survives_server_restart() {
    report_survives_restart(Backend::Postgres).await;
}
