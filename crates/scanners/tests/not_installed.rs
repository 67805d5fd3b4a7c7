//! External scanners whose program is missing report `NotInstalled`. This is the only test
//! in its binary because it empties `PATH`, which is process-wide.

mod common;

use scanplane_scanners::{Registry, ScanError};

#[tokio::test]
async fn external_scanners_without_their_program_are_not_installed() {
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("PATH", empty.path());
    std::env::remove_var("TRIVY_BIN");
    let registry = Registry::builtin();
    for (name, target) in [
        ("nmap", "127.0.0.1"),
        ("trivy", "fs:///tmp"),
        ("nuclei", "http://127.0.0.1:1/"),
        ("grype", "alpine:3.19"),
    ] {
        let scanner = registry.get(name).unwrap();
        let req = common::request(&[target], serde_json::Value::Null, empty.path());
        let (outcome, found) = common::run(scanner.as_ref(), &req).await;
        let e = outcome.unwrap_err();
        assert!(matches!(e, ScanError::NotInstalled { .. }), "{name}: {e:?}");
        assert_eq!(e.to_string(), format!("scanner {name:?} not found on PATH"));
        assert!(found.is_empty());
    }
}
