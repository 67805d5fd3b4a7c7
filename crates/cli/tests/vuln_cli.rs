//! `scanplane vuln match` as a pipeline runs it: the real binary on real trivy SBOMs (SPDX and
//! CycloneDX) and OSV records from a directory and from an `all.zip`; its JSON, its SARIF,
//! `--fail-on` exit codes, and one-line errors naming the file for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn advisories() -> PathBuf {
    data("vuln/tests/data/advisories")
}

fn alpine() -> PathBuf {
    data("sbom/tests/data/trivy/alpine-image.spdx.json")
}

fn vuln(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scanplane"))
        .arg("vuln")
        .arg("match")
        .args(args)
        .output()
        .unwrap()
}

fn run(advisories: &Path, sbom: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--advisories".as_ref(),
        advisories.as_os_str(),
        "--sbom".as_ref(),
        sbom.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    vuln(&args)
}

fn ids(out: &Output) -> Vec<String> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["id"].as_str().unwrap(),
                m["package"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn json_lists_every_match_with_the_documented_fields() {
    let out = run(&advisories(), &alpine(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ids(&out),
        [
            "TEST-ALPINE-openssl-r6 libcrypto3",
            "TEST-ALPINE-openssl-r6 libssl3",
            "TEST-GHSA-left-pad left-pad"
        ]
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &v[0];
    for field in [
        "id",
        "aliases",
        "purl",
        "package",
        "installed_version",
        "fixed_versions",
        "severity",
        "cvss_score",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["fixed_versions"][0], "3.1.4-r6");
    assert_eq!(first["cvss_score"], 5.5);
}

#[test]
fn fail_on_sets_the_exit_code() {
    assert_eq!(
        run(&advisories(), &alpine(), &["--fail-on", "high"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        run(&advisories(), &alpine(), &["--fail-on", "medium"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        run(&advisories(), &alpine(), &["--fail-on", "critical"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn cyclonedx_and_a_zip_give_the_same_matches() {
    let dir = tempfile::tempdir().unwrap();
    let spdx = std::fs::read(alpine()).unwrap();
    let cdx = dir.path().join("alpine.cdx.json");
    std::fs::write(&cdx, scanplane_sbom::to_cyclonedx(&spdx).unwrap()).unwrap();
    // An osv.dev-style export: one <ID>.json per entry at the root of the archive.
    let zip = dir.path().join("all.zip");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, pathlib\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n  [z.write(p, p.name) for p in sorted(pathlib.Path(sys.argv[2]).glob('*.json'))]",
        ])
        .arg(&zip)
        .arg(advisories())
        .status()
        .expect("python3 (apt-get install -y python3) builds the zip");
    assert!(status.success());
    let from_dir = run(&advisories(), &alpine(), &[]);
    let from_zip = run(&zip, &cdx, &[]);
    assert_eq!(
        from_zip.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&from_zip.stderr)
    );
    assert_eq!(ids(&from_dir), ids(&from_zip));
}

#[test]
fn sarif_has_one_result_per_match() {
    let out = run(&advisories(), &alpine(), &["--format", "sarif"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["ruleId"], "TEST-ALPINE-openssl-r6");
    assert_eq!(v["runs"][0]["tool"]["driver"]["name"], "scanplane-vuln");
}

#[test]
fn bad_input_is_one_line_naming_the_file_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("sbom.json");
    std::fs::write(&not_json, b"{\"spdxVersion\": ").unwrap();
    let missing = dir.path().join("nowhere");
    for (adv, sbom, names) in [
        (advisories(), not_json.clone(), not_json.clone()),
        (missing.clone(), alpine(), missing.clone()),
        (advisories(), missing.clone(), missing.clone()),
    ] {
        let out = run(&adv, &sbom, &[]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(&names.display().to_string()),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // A bad record among good ones is skipped with a warning, not fatal.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    for entry in std::fs::read_dir(advisories()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, mixed.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(mixed.join("broken.json"), b"{\"id\": 3}").unwrap();
    let out = run(&mixed, &alpine(), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 advisory records skipped"));
    assert_eq!(ids(&out).len(), 3);
}
