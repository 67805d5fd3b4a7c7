//! Streamed exports are the documents the pure writers produce for the same findings, byte
//! for byte, across page boundaries (the store is read 1,000 rows at a time), with a
//! severity filter and from a cursor, on both backends; a scan that has not succeeded has
//! no CSV or diff (409) and its SARIF says it did not succeed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Api, ADMIN};
use scanplane_api::export;
use scanplane_store::{Backend, FindingFilter, StoredFinding};

async fn all(api: &Api, scan: &str, filter: FindingFilter) -> Vec<StoredFinding> {
    let mut out = Vec::new();
    let mut filter = FindingFilter {
        limit: 500,
        ..filter
    };
    loop {
        let page = api.store.list_findings(None, scan, &filter).await.unwrap();
        if page.is_empty() {
            return out;
        }
        filter.after = Some(page.last().unwrap().id.clone());
        out.extend(page);
    }
}

async fn get(api: &Api, path: &str) -> (u16, String, Vec<u8>) {
    let resp = api
        .client
        .get(format!("{}{path}", api.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, resp.bytes().await.unwrap().to_vec())
}

async fn streamed_exports_equal_the_writers(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let scan = common::running_scan(api.store.as_ref(), &tenant, "rt-e").await;
    // 2,600 findings: three pages and a bit, over 2,600 rules.
    let resp = api
        .client
        .post(format!("{}/api/v1/scans/{}/report", api.url, scan.id))
        .bearer_auth("rt-e")
        .body(common::finding_lines(2600, "f"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let every = all(&api, &scan.id, FindingFilter::default()).await;
    assert_eq!(every.len(), 2600);

    // Still running: no CSV and no diff (409 naming the status), and a SARIF log that says
    // the run has not succeeded rather than looking like a clean one.
    for path in ["findings?format=csv", "diff", "diff?format=sarif"] {
        let (code, _, body) = get(&api, &format!("/api/v1/scans/{}/{path}", scan.id)).await;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(code, 409, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("is running"),
            "{path}: {body}"
        );
    }
    let (code, _, sarif) = get(
        &api,
        &format!("/api/v1/scans/{}/findings?format=sarif", scan.id),
    )
    .await;
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_slice(&sarif).unwrap();
    let inv = &doc["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false, "{inv}");
    assert_eq!(
        inv["toolExecutionNotifications"][0]["level"], "error",
        "{inv}"
    );

    let resp = api
        .client
        .post(format!("{}/api/v1/scans/{}/report", api.url, scan.id))
        .bearer_auth("rt-e")
        .body(format!(
            "{}\n",
            serde_json::json!({"type": "final", "scan_run_id": scan.id, "status": "success", "targets_scanned": ["127.0.0.1:1"]})
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let done = api.store.scan(None, &scan.id).await.unwrap().unwrap();
    let invocation = export::invocation_of(&done);
    assert_eq!(invocation["executionSuccessful"], true, "{invocation}");

    let (code, ctype, sarif) = get(
        &api,
        &format!("/api/v1/scans/{}/findings?format=sarif", scan.id),
    )
    .await;
    assert_eq!((code, ctype.as_str()), (200, "application/sarif+json"));
    assert_eq!(
        String::from_utf8(sarif).unwrap(),
        String::from_utf8(export::sarif_bytes("tcp", &invocation, &every)).unwrap()
    );
    let (code, _, csv) = get(
        &api,
        &format!("/api/v1/scans/{}/findings?format=csv", scan.id),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(String::from_utf8(csv).unwrap(), export::csv(&every));

    // A filter and a cursor apply to exports too.
    let high = all(
        &api,
        &scan.id,
        FindingFilter {
            severity: Some(scanplane_core::finding::Severity::High),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(high.len(), 520);
    let (_, _, sarif) = get(
        &api,
        &format!(
            "/api/v1/scans/{}/findings?format=sarif&severity=high",
            scan.id
        ),
    )
    .await;
    assert_eq!(sarif, export::sarif_bytes("tcp", &invocation, &high));
    let from = every[1499].id.clone();
    let (_, _, csv) = get(
        &api,
        &format!(
            "/api/v1/scans/{}/findings?format=csv&cursor={from}",
            scan.id
        ),
    )
    .await;
    assert_eq!(String::from_utf8(csv).unwrap(), export::csv(&every[1500..]));

    // The diff of a first run: everything is new, in the JSON the API always gave.
    let (code, _, diff) = get(&api, &format!("/api/v1/scans/{}/diff", scan.id)).await;
    assert_eq!(code, 200);
    let diff: serde_json::Value = serde_json::from_slice(&diff).unwrap();
    assert_eq!(
        diff["counts"],
        serde_json::json!({"new": 2600, "fixed": 0, "reopened": 0, "unchanged": 0})
    );
    assert_eq!(diff["new"].as_array().unwrap().len(), 2600);
    assert_eq!(diff["previous_scan_id"], serde_json::Value::Null);
    let first = &diff["new"][0];
    for key in [
        "id",
        "scan_id",
        "scanner",
        "target",
        "rule_id",
        "severity",
        "title",
        "location",
        "detail",
        "fingerprint",
        "created_at",
    ] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_streamed_exports_equal_the_writers() {
    streamed_exports_equal_the_writers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_streamed_exports_equal_the_writers() {
    streamed_exports_equal_the_writers(Backend::Postgres).await;
}
