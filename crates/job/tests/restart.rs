//! Scanner mode survives a server restart mid-report: the real report endpoint over a real
//! store goes away while findings are streaming and comes back on the same port; the job
//! retries with backoff and every finding lands exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

mod common;

use scanplane_core::scan::ScanStatus;
use scanplane_job::JobConfig;
use scanplane_store::testing::fresh_store;
use scanplane_store::{Backend, Store};

async fn report_survives_restart(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let token = "spr_restart_test";
    let scan_id = common::dispatched_scan(store.as_ref(), "burst", token).await;

    // A scanner that emits 3,000 findings, pauses while the server restarts, then 3,000 more.
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(common::script_scanner(
        dir.path(),
        "burst",
        "i=0; while [ $i -lt 3000 ]; do echo \"{\\\"target\\\":\\\"127.0.0.1\\\",\\\"rule_id\\\":\\\"r$i\\\",\\\"severity\\\":\\\"low\\\",\\\"title\\\":\\\"t$i\\\"}\"; i=$((i+1)); done\n\
         sleep 6\n\
         while [ $i -lt 6000 ]; do echo \"{\\\"target\\\":\\\"127.0.0.1\\\",\\\"rule_id\\\":\\\"r$i\\\",\\\"severity\\\":\\\"low\\\",\\\"title\\\":\\\"t$i\\\"}\"; i=$((i+1)); done\n",
    ));

    let port = common::free_port();
    let bodies = common::Bodies::default();
    let server = common::serve_on(store.clone(), port, bodies.clone()).await;
    let config = JobConfig {
        scan_id: scan_id.clone(),
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
        .scan(None, &scan_id)
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
    let mid = store.scan(None, &scan_id).await.unwrap().unwrap();
    assert!(
        mid.findings_count < 6000,
        "the rest could not be reported while the server was down"
    );
    let server = common::serve_on(store.clone(), port, bodies).await;

    let reported = tokio::time::timeout(Duration::from_secs(60), job)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reported, 6000);
    let done = store.scan(None, &scan_id).await.unwrap().unwrap();
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
