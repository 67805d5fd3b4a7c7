//! External scanners whose program is missing report `NotInstalled`. This is the only test
//! in its binary because it empties `PATH`, which is process-wide. Every external scanner of
//! the registry is checked, so a newly registered one is covered without editing this file.

mod common;

use scanplane_core::scanner::ScannerKind;
use scanplane_core::target::{Target, TargetKind};
use scanplane_scanners::{Registry, ScanError};

/// A target of the first kind the scanner accepts.
fn sample_target(kind: TargetKind) -> &'static str {
    const SAMPLES: [&str; 4] = [
        "127.0.0.1",
        "fs:///tmp",
        "http://127.0.0.1:1/",
        "alpine:3.19",
    ];
    SAMPLES
        .into_iter()
        .find(|t| Target::parse(t).is_ok_and(|t| t.kind() == kind))
        .unwrap_or_else(|| panic!("add a sample target of kind {}", kind.as_str()))
}

#[tokio::test]
async fn external_scanners_without_their_program_are_not_installed() {
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("PATH", empty.path());
    std::env::remove_var("TRIVY_BIN");
    let registry = Registry::builtin();
    let external: Vec<_> = registry
        .definitions()
        .into_iter()
        .filter(|d| matches!(d.kind, ScannerKind::External { .. }))
        .collect();
    let names: Vec<&str> = external.iter().map(|d| d.name.as_str()).collect();
    for name in ["grype", "nmap", "nuclei", "trivy"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for def in &external {
        let name = &def.name;
        let scanner = registry.get(name).unwrap();
        let target = sample_target(def.accepts[0]);
        let req = common::request(&[target], serde_json::Value::Null, empty.path());
        let (outcome, found) = common::run(scanner.as_ref(), &req).await;
        let e = outcome.unwrap_err();
        assert!(matches!(e, ScanError::NotInstalled { .. }), "{name}: {e:?}");
        assert_eq!(e.to_string(), format!("scanner {name:?} not found on PATH"));
        assert!(found.is_empty());
    }
}
