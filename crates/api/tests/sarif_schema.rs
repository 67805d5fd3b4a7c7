//! Validates the SARIF export against the official OASIS SARIF 2.1.0 JSON schema checked in
//! under `tests/data` (see its README for where it came from), and checks that the
//! validator rejects broken documents, so that a passing run means something.

// Helpers outside #[test] functions panic on purpose: there, a panic is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chrono::TimeZone;
use jsonschema::{Draft, Validator};
use scanplane_api::export::{invocation, sarif, FINGERPRINT_KEY};
use scanplane_core::finding::{Finding, Severity};
use scanplane_store::StoredFinding;
use serde_json::Value;

const OASIS_ID: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json")
}

fn validator() -> Validator {
    let path = schema_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the SARIF schema at {}: {e}; restore it as tests/data/README.md explains",
            path.display()
        )
    });
    let schema: Value = serde_json::from_str(&text).expect("the SARIF schema is JSON");
    // The official errata01 schema declares draft-04; a different file here would make
    // every assertion below meaningless, so its identity is checked first.
    assert_eq!(schema["id"], OASIS_ID, "not the OASIS SARIF 2.1.0 schema");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles")
}

/// Schema errors, plus `uri-reference` format errors for every artifact URI. Draft-04, the
/// draft the official schema declares, has no `uri-reference` format, so a validator
/// following it skips that check; the draft-07 format check of the same library fills in.
fn errors(v: &Validator, doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    let uri_ref = jsonschema::options()
        .with_draft(Draft::Draft7)
        .should_validate_formats(true)
        .build(&serde_json::json!({"type": "string", "format": "uri-reference"}))
        .expect("the uri-reference schema compiles");
    let mut uris = Vec::new();
    artifact_uris(doc, &mut uris);
    for uri in uris {
        if !uri_ref.is_valid(uri) {
            out.push(format!("{uri} is not a uri-reference"));
        }
    }
    out
}

fn artifact_uris<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "artifactLocation" {
                    if let Some(uri) = child.get("uri") {
                        out.push(uri);
                    }
                }
                artifact_uris(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| artifact_uris(c, out)),
        _ => {}
    }
}

fn stored(
    n: usize,
    scanner: &str,
    target: &str,
    rule: &str,
    severity: Severity,
    title: &str,
    location: &str,
) -> StoredFinding {
    StoredFinding {
        id: format!("finding-{n}"),
        tenant_id: "tenant-a".into(),
        scan_id: "scan-1".into(),
        scanner: scanner.into(),
        created_at: chrono::Utc
            .with_ymd_and_hms(2025, 6, 1, 8, 30, 0)
            .single()
            .expect("valid date"),
        finding: Finding::new(scanner, target, rule, severity, title, location),
        triage: Default::default(),
        triage_comment: None,
    }
}

/// Findings covering every severity, every kind of target scanplane has, and titles,
/// details and locations with commas, quotes, newlines, unicode and URI-hostile characters.
/// The invocation of a scan that succeeded.
fn ok() -> Value {
    invocation(
        true,
        "succeeded: scanner reported success after 1.0s",
        None,
        None,
    )
}

fn varied() -> Vec<StoredFinding> {
    let mut v = vec![
        stored(
            1,
            "nuclei",
            "https://example.com",
            "tech-detect",
            Severity::Info,
            "Tech \"nginx\", detected",
            "https://example.com/login?next=/a b",
        ),
        stored(
            2,
            "nuclei",
            "http://EXAMPLE.com:8080/app",
            "CVE-2021-44228",
            Severity::Critical,
            "Log4Shell — JNDI «injection»",
            "tcp/8080",
        ),
        stored(
            3,
            "trivy",
            "fs://.",
            "aws-access-key-id",
            Severity::Critical,
            "Secret: AWS access key, \"quoted\"",
            "config/prod settings.env:12",
        ),
        stored(
            4,
            "trivy",
            "config://infra",
            "AVD-AWS-0086",
            Severity::High,
            "S3 bucket, public",
            "main.tf",
        ),
        stored(
            5,
            "trivy",
            "fs://src",
            "CVE-2024-0001",
            Severity::Medium,
            "lodash prototype pollution",
            "lodash@4.17.20",
        ),
        stored(
            6,
            "nmap",
            "10.0.0.1",
            "open-port",
            Severity::Low,
            "Open port 22",
            "tcp/22",
        ),
        stored(
            7,
            "tcp",
            "[2001:db8::1]:443",
            "open-port",
            Severity::Info,
            "Open port 443",
            "tcp/443",
        ),
        stored(
            8,
            "http",
            "example.org",
            "tls-expiry",
            Severity::Unknown,
            "Zertifikat läuft ab 🔒",
            "",
        ),
        stored(
            9,
            "custom",
            "account://123456789012",
            "iam-root-mfa",
            Severity::High,
            "Root user without MFA",
            "iam/root",
        ),
        stored(
            10,
            "grype",
            "image://alpine:3.19",
            "CVE-2023-5678",
            Severity::Medium,
            "openssl, \"DoS\"",
            "openssl@3.1.4-r0",
        ),
        stored(
            11,
            "trivy",
            "registry://ghcr.io/acme/app",
            "CVE-2022-1",
            Severity::Low,
            "",
            "zlib@1.2.11",
        ),
        stored(
            12,
            "sarif",
            "fs://.",
            "",
            Severity::Info,
            "No rule id",
            "weird#file?.txt:1",
        ),
        stored(
            13,
            "sarif",
            "fs://.",
            "windows",
            Severity::Low,
            "Backslashes",
            "C:\\work\\ä.cs:4",
        ),
    ];
    v.push(stored(
        14,
        "nmap",
        "example.com:1-1024",
        "open-port",
        Severity::Low,
        "Open port 80",
        "tcp/80",
    ));
    v[0].finding.detail = "line one\nline two, with \"quotes\"".into();
    v[2].finding.detail = "AKIA**** masked; see https://example.com/docs?a=1&b=2".into();
    // Triaged findings carry suppressions, which must be valid SARIF too.
    v[0].triage = scanplane_core::identity::Triage::AcceptedRisk;
    v[0].triage_comment = Some("lab only, \"isolated\"".into());
    v[1].triage = scanplane_core::identity::Triage::FalsePositive;
    v
}

#[test]
fn export_of_varied_findings_is_valid_sarif() {
    let v = validator();
    let findings = varied();
    let doc = sarif("scanplane", &ok(), &findings);
    let errs = errors(&v, &doc);
    assert!(
        errs.is_empty(),
        "{} schema errors:\n{}\n{doc:#}",
        errs.len(),
        errs.join("\n")
    );

    let mut uris = Vec::new();
    artifact_uris(&doc, &mut uris);
    assert_eq!(
        uris.len(),
        findings.len(),
        "every artifact URI was format-checked"
    );

    let empty = sarif("scanplane", &ok(), &[]);
    let errs = errors(&v, &empty);
    assert!(errs.is_empty(), "empty export: {errs:?}");

    // A scan that did not run says so: a valid log whose invocation failed, with the reason.
    let t = chrono::Utc::now();
    let failed = sarif(
        "scanplane",
        &invocation(false, "failed: nmap not found on PATH", Some(t), Some(t)),
        &[],
    );
    let errs = errors(&v, &failed);
    assert!(errs.is_empty(), "failed scan: {errs:?}");
    let inv = &failed["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false, "{inv}");
    assert_eq!(inv["toolExecutionNotifications"][0]["level"], "error");
    assert_eq!(
        inv["toolExecutionNotifications"][0]["message"]["text"],
        "failed: nmap not found on PATH"
    );
}

/// What GitHub code scanning needs beyond the schema: a non-empty artifact URI on every
/// result, a `ruleIndex` that points at the result's rule, a numeric `security-severity`,
/// and one stable fingerprint per result.
#[test]
fn export_meets_github_code_scanning_requirements() {
    let findings = varied();
    let doc = sarif("scanplane", &ok(), &findings);
    let run = &doc["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), findings.len());
    for rule in rules {
        let score: f64 = rule["properties"]["security-severity"]
            .as_str()
            .expect("security-severity is a string")
            .parse()
            .expect("security-severity is a number");
        assert!((0.0..=10.0).contains(&score), "{rule}");
        assert!(!rule["shortDescription"]["text"]
            .as_str()
            .unwrap_or("")
            .is_empty());
    }
    for (r, f) in results.iter().zip(&findings) {
        let i = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[i]["id"], r["ruleId"], "{r}");
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap_or("");
        assert!(!uri.is_empty(), "{r}");
        assert_eq!(
            r["partialFingerprints"][FINGERPRINT_KEY],
            f.finding.fingerprint.as_str()
        );
        assert!(
            !r["message"]["text"].as_str().unwrap_or("").is_empty(),
            "{r}"
        );
    }
    assert_eq!(
        doc,
        sarif("scanplane", &ok(), &findings),
        "the export is deterministic"
    );
}

#[test]
fn broken_documents_fail_validation() {
    let v = validator();
    let good = sarif("scanplane", &ok(), &varied());
    assert!(errors(&v, &good).is_empty());

    let mut fatal = good.clone();
    fatal["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(
        !errors(&v, &fatal).is_empty(),
        "level \"fatal\" must be rejected"
    );

    let mut no_version = good.clone();
    no_version
        .as_object_mut()
        .expect("object")
        .remove("version");
    assert!(
        !errors(&v, &no_version).is_empty(),
        "a missing version must be rejected"
    );

    let mut bad_uri = good.clone();
    bad_uri["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"] = "has space and \"quotes\"".into();
    assert!(
        !errors(&v, &bad_uri).is_empty(),
        "an artifact uri that is not a uri-reference must be rejected"
    );

    let mut bad_line = good.clone();
    bad_line["runs"][0]["results"][2]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        0.into();
    assert!(
        !errors(&v, &bad_line).is_empty(),
        "startLine 0 must be rejected"
    );

    let mut extra = good;
    extra["runs"][0]["results"][0]["severity"] = "high".into();
    assert!(
        !errors(&v, &extra).is_empty(),
        "an unknown result property must be rejected"
    );
}
