//! Exports are streamed from the database: four concurrent SARIF exports of a scan with
//! 100,000 findings, or four concurrent diffs of it (all 100,000 new), add at most 200 MiB to
//! the real server's memory (its peak resident set, `VmHWM`, against its resident set before
//! the exports), on both backends. Holding an export in memory took over 2 GiB for one;
//! a diff built in memory by the store added about 1 GiB per 1,000,000 changed findings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/exports.rs"]
mod exports;

use std::sync::Arc;

use common::{fresh_db, Server, ADMIN};
use scanplane_store::{Backend, Store};
use serde_json::Value;

const FINDINGS: usize = 100_000;
const BOUND_MIB: u64 = 200;

/// What is exported: the URL path after the scan id, its content type, and how many
/// findings the document holds.
struct Export {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    count: fn(&Value) -> usize,
}

const SARIF: Export = Export {
    name: "SARIF exports",
    path: "findings?format=sarif",
    content_type: "application/sarif+json",
    count: |doc| doc["runs"][0]["results"].as_array().unwrap().len(),
};

const DIFF: Export = Export {
    name: "diffs (JSON, all new)",
    path: "diff",
    content_type: "application/json",
    count: |doc| {
        assert_eq!(doc["counts"]["new"], FINDINGS);
        doc["new"].as_array().unwrap().len()
    },
};

async fn four_exports_stay_within_the_bound(backend: Backend, export: Export) {
    let db = fresh_db(backend).await;
    let store: Arc<dyn Store> = Arc::new(scanplane_store::open(&db).await.unwrap());
    let loading = std::time::Instant::now();
    let scan = exports::scan_with_findings(store.as_ref(), FINDINGS).await;
    drop(store);
    eprintln!(
        "{backend:?}: loaded {FINDINGS} findings in {:.1?}",
        loading.elapsed()
    );
    let exporting = std::time::Instant::now();

    let server = Server::start(&db, &[]).await;
    let pid = server.child.id();
    // Warm up the paths an export uses, so that the baseline includes the connection pool.
    let (code, _) = server
        .get(&format!("/api/v1/scans/{scan}/findings?limit=1000"), ADMIN)
        .await;
    assert_eq!(code, 200);
    let before = exports::status_kib(pid, "VmRSS:");

    let url = format!("{}/api/v1/scans/{scan}/{}", server.url, export.path);
    let content_type = export.content_type;
    let exports: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let resp = reqwest::Client::new()
                    .get(url)
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.headers()["content-type"], content_type);
                exports::drain(resp, i == 0).await
            })
        })
        .collect();
    let mut sizes = Vec::new();
    let mut kept = Vec::new();
    for e in exports {
        let (size, bytes) = e.await.unwrap();
        sizes.push(size);
        if !bytes.is_empty() {
            kept = bytes;
        }
    }
    let peak = exports::status_kib(pid, "VmHWM:");
    eprintln!("{backend:?}: exported in {:.1?}", exporting.elapsed());
    let added_mib = peak.saturating_sub(before) / 1024;

    let doc: Value =
        serde_json::from_slice(&kept).expect("the export is one complete JSON document");
    assert_eq!((export.count)(&doc), FINDINGS);
    if export.path.contains("sarif") {
        assert_eq!(
            doc["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .len(),
            exports::RULES
        );
    }
    assert!(
        sizes.iter().all(|s| *s == sizes[0]),
        "exports differ in size: {sizes:?}"
    );
    eprintln!(
        "{backend:?}: 4 {} of {FINDINGS} findings ({} MB each): server RSS before {} MiB, peak {} MiB, added {added_mib} MiB",
        export.name,
        sizes[0] / 1_000_000,
        before / 1024,
        peak / 1024
    );
    assert!(
        added_mib <= BOUND_MIB,
        "4 concurrent {} added {added_mib} MiB to the server (bound {BOUND_MIB} MiB)",
        export.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_four_sarif_exports_stay_within_the_bound() {
    four_exports_stay_within_the_bound(Backend::Sqlite, SARIF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_four_diffs_stay_within_the_bound() {
    four_exports_stay_within_the_bound(Backend::Sqlite, DIFF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_four_diffs_stay_within_the_bound() {
    four_exports_stay_within_the_bound(Backend::Postgres, DIFF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_four_sarif_exports_stay_within_the_bound() {
    four_exports_stay_within_the_bound(Backend::Postgres, SARIF).await;
}
