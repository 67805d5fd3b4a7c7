//! Custom scanners running a real shell script (tests/data/custom/echo-context.sh).

mod common;

use std::path::PathBuf;

use scanplane_core::finding::Severity;
use scanplane_scanners::{CustomScannerConfig, Registry, ScanError};

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/custom/echo-context.sh")
        .display()
        .to_string()
}

fn registry(mode: &str, output: &str) -> Registry {
    let yaml = format!(
        "name: echo-context\ncommand: [sh, {:?}, {mode}]\nenv: {{GREETING: hello}}\noutput: {output}\naccepts: [account]\ntimeout: 30s\n",
        script()
    );
    let config: CustomScannerConfig = common::must(serde_yaml::from_str(&yaml), "scanner config");
    common::must(Registry::with_custom(vec![config]), "registry")
}

fn billing_request(dir: &std::path::Path) -> scanplane_scanners::RunRequest {
    let mut req = common::request(
        &["account://111111111111", "account://222222222222"],
        serde_json::json!({"depth": 2}),
        dir,
    );
    req.billing = true;
    req
}

#[tokio::test]
async fn ndjson_on_stdout_echoes_accounts_and_billing() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = registry("ndjson", "scanplane-json")
        .get("echo-context")
        .unwrap();
    let req = billing_request(dir.path());
    scanner.validate(&req.targets, &req.options).unwrap();
    let (outcome, found) = common::run(scanner.as_ref(), &req).await;
    assert_eq!(
        outcome.unwrap().targets_scanned,
        ["account://111111111111", "account://222222222222"]
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].target, "account://111111111111");
    assert_eq!(found[1].target, "account://222222222222");
    assert_eq!(found[0].location, "billing=true");
    assert_eq!(found[0].severity, Severity::Info);
    assert_eq!(
        found[0].detail,
        "run=scan-test-1 accounts=111111111111,222222222222 greeting=hello"
    );
}

#[tokio::test]
async fn ndjson_findings_stream_before_the_command_exits() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = registry("slow", "scanplane-json")
        .get("echo-context")
        .unwrap();
    let req = billing_request(dir.path());
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let run = tokio::spawn(async move { scanner.run(&req, tx).await });
    let first = tokio::time::timeout(std::time::Duration::from_millis(2500), rx.recv())
        .await
        .expect("the first finding must arrive while the script sleeps")
        .expect("a finding");
    assert_eq!(first.target, "account://111111111111");
    assert!(rx.recv().await.is_some());
    assert!(rx.recv().await.is_none());
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn report_written_to_the_output_file_wins_over_stdout_logs() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = registry("file", "scanplane-json")
        .get("echo-context")
        .unwrap();
    let mut req = billing_request(dir.path());
    req.billing = false;
    let (outcome, found) = common::run(scanner.as_ref(), &req).await;
    outcome.unwrap();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found.iter().all(|f| f.location == "billing=false"));
    assert!(dir.path().join("scanplane-output.json").is_file());
}

#[tokio::test]
async fn sarif_output_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = registry("sarif", "sarif").get("echo-context").unwrap();
    let req = common::request(&["account://333"], serde_json::Value::Null, dir.path());
    let (outcome, found) = common::run(scanner.as_ref(), &req).await;
    outcome.unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].rule_id, "billing-flag");
    assert_eq!(found[0].severity, Severity::High, "security-severity 7.5");
    assert_eq!(
        found[0].target, "account://333",
        "the only target is the default"
    );
    assert!(
        found[0].detail.contains("billing=false accounts=333"),
        "{}",
        found[0].detail
    );
}

#[tokio::test]
async fn non_zero_exit_is_failed_with_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = registry("fail", "scanplane-json")
        .get("echo-context")
        .unwrap();
    let req = billing_request(dir.path());
    let (outcome, found) = common::run(scanner.as_ref(), &req).await;
    match outcome {
        Err(ScanError::Failed {
            scanner,
            exit_code,
            stderr_tail,
        }) => {
            assert_eq!(scanner, "echo-context");
            assert_eq!(exit_code, Some(7));
            assert_eq!(
                stderr_tail,
                "checking accounts 111111111111,222222222222\nfatal: credentials for account rejected"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(found.is_empty());
}

#[tokio::test]
async fn unparseable_output_is_a_parse_error_naming_the_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = registry("garbage", "scanplane-json")
        .get("echo-context")
        .unwrap();
    let req = billing_request(dir.path());
    let (outcome, _) = common::run(scanner.as_ref(), &req).await;
    let e = outcome.unwrap_err();
    assert!(
        matches!(e, ScanError::Parse { ref scanner, .. } if scanner == "echo-context"),
        "{e:?}"
    );
}

#[tokio::test]
async fn wrong_target_kind_is_rejected() {
    let scanner = registry("ndjson", "scanplane-json")
        .get("echo-context")
        .unwrap();
    let targets = [scanplane_core::target::Target::parse("https://example.com").unwrap()];
    let e = scanner
        .validate(&targets, &serde_json::Value::Null)
        .unwrap_err();
    assert!(
        e.to_string().contains("url targets are not accepted"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_program_is_not_installed() {
    let config: CustomScannerConfig =
        serde_yaml::from_str("name: ghost\ncommand: [scanplane-ghost-scanner]\n").unwrap();
    let scanner = Registry::with_custom(vec![config])
        .unwrap()
        .get("ghost")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let req = common::request(&["account://1"], serde_json::Value::Null, dir.path());
    let (outcome, _) = common::run(scanner.as_ref(), &req).await;
    let e = outcome.unwrap_err();
    assert!(matches!(e, ScanError::NotInstalled { .. }), "{e:?}");
}

/// One record too long to read and one that is not UTF-8 are dropped and counted; the good
/// ones are sent and the scan succeeds.
async fn messy_report(mode: &str) {
    let dir = common::must(tempfile::tempdir(), "work dir");
    let scanner = common::must(
        registry(mode, "scanplane-json").lookup("echo-context"),
        "the scanner",
    );
    let req = billing_request(dir.path());
    let (outcome, found) = common::run(scanner.as_ref(), &req).await;
    let outcome = common::must(outcome, "the scan");
    assert_eq!(
        found.iter().map(|f| f.rule_id.as_str()).collect::<Vec<_>>(),
        ["good-1", "good-2"]
    );
    assert_eq!(outcome.rejected.count, 2, "{:?}", outcome.rejected);
    let huge = 5_000_000 + r#"{"target":"account://1","rule_id":"huge","severity":"low","title":"Huge","detail":""}"#.len();
    assert_eq!(
        outcome.rejected.reasons,
        [
            format!(
                "line 1: {huge} bytes, longer than {}",
                scanplane_scanners::RECORD_MAX
            ),
            "line 2: not valid UTF-8 (at byte 72)".to_string(),
        ]
    );
}

#[tokio::test]
async fn bad_lines_on_stdout_are_dropped_and_counted() {
    messy_report("messy").await;
}

#[tokio::test]
async fn bad_lines_in_the_output_file_are_dropped_and_counted() {
    messy_report("messy-file").await;
}
