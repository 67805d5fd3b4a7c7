//! The CRDs generated from the Rust types against the manifests checked in under the Helm
//! chart's `crds/` (which Helm installs before anything else). Set `UPDATE_GOLDEN=1` to
//! rewrite them after a deliberate change, and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use scanplane_operator::crd;

fn chart_crds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/scanplane/crds")
}

#[test]
fn checked_in_crds_match_the_types() {
    let dir = chart_crds();
    let mut expected = Vec::new();
    for (file, def) in crd::all() {
        let path = dir.join(file);
        let rendered = crd::to_yaml(&def).unwrap();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &rendered).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                path.display()
            )
        });
        assert_eq!(
            rendered, golden,
            "{file} differs from crates/operator/src/crd.rs; rerun with UPDATE_GOLDEN=1"
        );
        // What is checked in is a CRD the API server can read back.
        let back: CustomResourceDefinition = serde_yaml::from_str(&golden).unwrap();
        assert_eq!(back, def);
        expected.push(file.to_string());
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(
        present,
        expected,
        "a stale CRD file is left in {}",
        dir.display()
    );
}

#[test]
fn schemas_carry_the_fields_users_write() {
    let all = crd::all();
    let schema = |file: &str| {
        let def = &all.iter().find(|(f, _)| *f == file).unwrap().1;
        serde_json::to_value(&def.spec.versions[0].schema).unwrap()
    };
    let scan = schema("scanplane.io_scans.yaml");
    let spec = &scan["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["scanner", "targets"]));
    assert_eq!(
        spec["properties"]["options"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let cfg = &spec["properties"]["scannerConfig"]["properties"];
    for field in [
        "image",
        "resources",
        "timeout",
        "nodeSelector",
        "tolerations",
    ] {
        assert!(cfg.get(field).is_some(), "scannerConfig.{field}");
    }
    let status = &scan["openAPIV3Schema"]["properties"]["status"]["properties"];
    for field in [
        "phase",
        "conditions",
        "scanRunId",
        "jobRef",
        "scanStartTime",
        "completionTime",
        "counts",
        "lastError",
        "url",
    ] {
        assert!(status.get(field).is_some(), "status.{field}");
    }
    // An optional enum is nullable: the API server lists `null` among its values.
    assert_eq!(
        status["phase"]["enum"],
        serde_json::json!(["Pending", "Running", "Completed", "Failed", null])
    );
    let scheduled = schema("scanplane.io_scheduledscans.yaml");
    let props = &scheduled["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "schedule",
        "timezone",
        "jitter",
        "suspend",
        "successfulScansHistoryLimit",
        "failedScansHistoryLimit",
        "template",
    ] {
        assert!(props.get(field).is_some(), "ScheduledScan spec.{field}");
    }
}
