//! One bad finding never costs the others: a custom scanner (a real script) writes a 50 MB
//! line, a line that is not UTF-8, a finding whose detail is too big for a report line, and
//! good findings. Scanner mode reports the good ones and the cut one to the real report
//! endpoint, the scan succeeds, and the final line counts the two it lost and explains all
//! three (the cut one is noted, not counted: it was stored).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use scanplane_core::scan::ScanStatus;
use scanplane_job::JobConfig;
use scanplane_protocol::report::{ReportLine, MAX_LINE};
use scanplane_scanners::RECORD_MAX;
use scanplane_store::testing::fresh_store;
use scanplane_store::{Backend, FindingFilter, Store};

const GOOD: &str = r#"{"target":"127.0.0.1","rule_id":"good-N","severity":"low","title":"Good"}"#;
const HUGE_DETAIL: usize = 50 * 1024 * 1024;
const BIG_DETAIL: usize = 2 * 1024 * 1024;

fn script() -> String {
    let good = |n: u32| format!("printf '%s\\n' '{}'\n", GOOD.replace('N', &n.to_string()));
    let finding_with_detail = |rule: &str, bytes: usize| {
        format!(
            "printf '{{\"target\":\"127.0.0.1\",\"rule_id\":\"{rule}\",\"severity\":\"low\",\"title\":\"T\",\"detail\":\"'\n\
             head -c {bytes} /dev/zero | tr '\\0' x\n\
             printf '\"}}\\n'\n"
        )
    };
    [
        good(1),
        finding_with_detail("huge", HUGE_DETAIL),
        "printf '{\"target\":\"127.0.0.1\",\"rule_id\":\"latin1\",\"severity\":\"low\",\"title\":\"caf\\351\"}\\n'\n".to_string(),
        good(2),
        finding_with_detail("big", BIG_DETAIL),
        good(3),
    ]
    .concat()
}

/// The final lines among the request bodies the server received.
fn final_lines(bodies: &common::Bodies) -> Vec<ReportLine> {
    bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| {
            b.split(|c| *c == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.starts_with(br#"{"type":"final""#))
        .map(|l| serde_json::from_slice(&l).unwrap())
        .collect()
}

async fn bad_records_are_counted_and_the_rest_stored(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let token = "spr_rejections_test";
    let scan_id = common::dispatched_scan(store.as_ref(), "messy", token).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(common::script_scanner(dir.path(), "messy", &script()));
    let port = common::free_port();
    let bodies = common::Bodies::default();
    let server = common::serve_on(store.clone(), port, bodies.clone()).await;
    let config = JobConfig {
        scan_id: scan_id.clone(),
        server_url: format!("http://127.0.0.1:{port}"),
        report_token: token.into(),
        scanner: "messy".into(),
        targets: vec!["127.0.0.1".into()],
        billing: false,
        options: serde_json::json!({}),
        timeout: Duration::from_secs(60),
        work_dir: dir.path().to_path_buf(),
    };
    let reported = tokio::time::timeout(
        Duration::from_secs(120),
        scanplane_job::run(config, registry),
    )
    .await
    .unwrap()
    .unwrap();
    server.abort();
    assert_eq!(reported, 4, "three good findings and the cut one");

    let done = store.scan(None, &scan_id).await.unwrap().unwrap();
    assert_eq!(done.status, ScanStatus::Succeeded, "{}", done.reason);
    assert_eq!(done.findings_count, 4);
    // What the unit dropped is kept on the scan, for `GET /api/v1/scans/:id`.
    assert_eq!(done.findings_rejected, 2, "{:?}", done.rejections);
    assert_eq!(done.rejections.len(), 3, "{:?}", done.rejections);
    let stored = store
        .list_findings(
            None,
            &scan_id,
            &FindingFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut rules: Vec<&str> = stored.iter().map(|s| s.finding.rule_id.as_str()).collect();
    rules.sort_unstable();
    assert_eq!(rules, ["big", "good-1", "good-2", "good-3"]);
    let big = &stored
        .iter()
        .find(|s| s.finding.rule_id == "big")
        .unwrap()
        .finding;
    assert!(big.detail.len() < MAX_LINE && big.detail.len() > MAX_LINE - 1024);
    assert!(
        big.detail.ends_with(&format!(
            "[detail cut by scanplane from {BIG_DETAIL} bytes to fit a report line]"
        )),
        "{}",
        &big.detail[big.detail.len() - 100..]
    );

    let finals = final_lines(&bodies);
    assert_eq!(finals.len(), 1, "{finals:?}");
    let ReportLine::Final {
        status,
        findings_rejected,
        rejections,
        ..
    } = &finals[0]
    else {
        panic!("not a final line")
    };
    assert_eq!(status, "success");
    assert_eq!(
        *findings_rejected, 2,
        "the cut finding was stored: {rejections:?}"
    );
    let huge_line = HUGE_DETAIL
        + r#"{"target":"127.0.0.1","rule_id":"huge","severity":"low","title":"T","detail":""}"#
            .len();
    assert_eq!(rejections.len(), 3, "{rejections:?}");
    assert_eq!(
        rejections[0],
        format!("line 2: {huge_line} bytes, longer than {RECORD_MAX}")
    );
    assert_eq!(rejections[1], "line 3: not valid UTF-8 (at byte 70)");
    assert!(
        rejections[2].starts_with(&format!(
            "finding 3 (big on 127.0.0.1): detail cut from {BIG_DETAIL} to "
        )),
        "{}",
        rejections[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_good_findings_of_a_messy_scan() {
    bad_records_are_counted_and_the_rest_stored(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_good_findings_of_a_messy_scan() {
    bad_records_are_counted_and_the_rest_stored(Backend::Postgres).await;
}
