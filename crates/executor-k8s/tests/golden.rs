//! The built Job and Secret against checked-in golden YAML, round-tripped through the
//! k8s-openapi types. Set `UPDATE_GOLDEN=1` to rewrite the files after a deliberate change
//! (and review the diff).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[allow(dead_code)]
mod support;

use std::path::PathBuf;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use scanplane_executor_k8s::{build_job, secret_owned_by};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Serializes `value`, compares it with the golden file, and parses the file back.
fn check_golden<T>(value: &T, file: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let path = data(file);
    let rendered = serde_yaml::to_string(value).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(rendered, golden, "{file} differs from what build_job makes");

    let parsed: T = serde_yaml::from_str(&golden).unwrap();
    assert_eq!(
        &parsed, value,
        "{file} does not parse back to the same object"
    );
    // No field of the file is unknown to the type: parsing and re-serializing keeps all.
    let as_json: serde_json::Value = serde_yaml::from_str(&golden).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        as_json,
        "{file} has fields the type drops"
    );
}

#[test]
fn job_matches_golden() {
    let (job, _) = build_job(&support::spec(), &support::config());
    check_golden(&job, "job.yaml");
}

#[test]
fn secret_matches_golden() {
    let (_, secret) = build_job(&support::spec(), &support::config());
    let secret = secret_owned_by(
        secret,
        "scan-0192f1c4-7d2a-7b3e-9c4d-5e6f7a8b9c0d-2",
        "5c1d2e3f-0000-4000-8000-000000000001",
    );
    check_golden(&secret, "secret.yaml");
}

#[test]
fn a_custom_scanner_gets_its_definition_through_the_secret() {
    let (job, secret) = build_job(&support::custom_spec(), &support::config());
    check_golden(&job, "job-custom.yaml");
    let secret = secret_owned_by(
        secret,
        "scan-0192f1c4-7d2a-7b3e-9c4d-5e6f7a8b9c0d-2",
        "5c1d2e3f-0000-4000-8000-000000000001",
    );
    check_golden(&secret, "secret-custom.yaml");
    let job_text = serde_json::to_string(&job).unwrap();
    assert!(
        !job_text.contains(support::DEFINITION_SECRET),
        "the definition's credentials stay out of the Job spec"
    );
    assert!(
        job_text.contains("SCANPLANE_SCANNER_DEFINITION"),
        "{job_text}"
    );
    let data = secret.string_data.unwrap();
    let def: serde_json::Value = serde_json::from_str(&data["scanner-definition"]).unwrap();
    assert_eq!(def["command"][0], "/opt/inventory/run");
}

#[test]
fn the_job_spec_never_holds_the_token() {
    let (job, secret) = build_job(&support::spec(), &support::config());
    let job_text = serde_json::to_string(&job).unwrap();
    assert!(!job_text.contains(support::TOKEN));
    assert!(serde_json::to_string(&secret)
        .unwrap()
        .contains(support::TOKEN));
}

#[test]
fn a_scan_image_overrides_the_default() {
    let mut spec = support::spec();
    spec.image = Some("scanners/custom:9".into());
    let (job, _) = build_job(&spec, &support::config());
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("scanners/custom:9")
    );
}

#[test]
fn typed_round_trip_of_the_golden_files() {
    // The files parse as the types on their own, independent of the builder.
    let job: Job =
        serde_yaml::from_str(&std::fs::read_to_string(data("job.yaml")).unwrap()).unwrap();
    let secret: Secret =
        serde_yaml::from_str(&std::fs::read_to_string(data("secret.yaml")).unwrap()).unwrap();
    assert_eq!(job.metadata.namespace.as_deref(), Some("scans"));
    assert_eq!(secret.metadata.owner_references.unwrap()[0].kind, "Job");
}
