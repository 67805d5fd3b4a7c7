//! The report endpoint with hostile and broken input, on both backends: one bad line (too
//! long, not UTF-8, not JSON, no rule) is counted, skipped and reported while every valid
//! finding of the same request is stored; NUL characters in finding strings are stored as
//! U+FFFD on both backends; structural errors are still errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Api, ADMIN};
use scanplane_protocol::report::{CHUNK_HEADER, MAX_LINE, MAX_REJECTIONS};
use scanplane_store::{Backend, FindingFilter};
use serde_json::{json, Value};

async fn post_report(api: &Api, scan: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = api
        .client
        .post(format!("{}/api/v1/scans/{scan}/report", api.url))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn final_line(scan: &str) -> String {
    format!(
        "{}\n",
        json!({"type": "final", "scan_run_id": scan, "status": "success", "targets_scanned": ["127.0.0.1:1"]})
    )
}

async fn one_bad_line_loses_nothing_else(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let scan = common::running_scan(api.store.as_ref(), &tenant, "rt-1").await;

    let mut body = common::finding_lines(3, "good").into_bytes();
    // Line 4: one byte over the limit, in the same chunk as everything else.
    let pad = "x".repeat(MAX_LINE + 1 - 100);
    let long = json!({"type": "finding", "target": "h", "rule_id": "long", "severity": "low", "title": "t", "detail": pad}).to_string();
    let long = format!("{long}{}", " ".repeat(MAX_LINE + 1 - long.len()));
    assert_eq!(long.len(), MAX_LINE + 1);
    body.extend_from_slice(long.as_bytes());
    body.push(b'\n');
    // Line 5: invalid UTF-8; line 6: not JSON; line 7: no rule id.
    body.extend_from_slice(b"{\"type\":\"finding\",\"target\":\"h\xff\xfe\",\"rule_id\":\"r\",\"severity\":\"low\",\"title\":\"t\"}\n");
    body.extend_from_slice(b"{not json\n");
    body.extend_from_slice(format!("{}\n", json!({"type": "finding", "target": "h", "rule_id": "", "severity": "low", "title": "t"})).as_bytes());
    // Line 8: NUL characters in strings are replaced, not refused.
    body.extend_from_slice(format!("{}\n", json!({"type": "finding", "target": "h", "rule_id": "nul", "severity": "high", "title": "a\u{0}b", "detail": "\u{0}"})).as_bytes());
    body.extend_from_slice(final_line(&scan.id).as_bytes());

    let (code, accepted) = post_report(&api, &scan.id, "rt-1", body).await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(accepted["inserted"], 4, "{accepted}");
    assert_eq!(accepted["rejected"], 4, "{accepted}");
    assert_eq!(accepted["sanitized"], 1, "{accepted}");
    assert_eq!(accepted["final"], true, "{accepted}");
    assert_eq!(accepted["status"], "succeeded", "{accepted}");
    let reasons: Vec<&str> = accepted["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(reasons[0].starts_with("line 4: longer than"), "{reasons:?}");
    assert!(reasons[1].starts_with("line 5: not UTF-8"), "{reasons:?}");
    assert!(
        reasons[2].starts_with("line 6: not a report line"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].starts_with("line 7: target and rule_id"),
        "{reasons:?}"
    );

    let stored = api
        .store
        .list_findings(
            None,
            &scan.id,
            &FindingFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    let nul = stored.iter().find(|f| f.finding.rule_id == "nul").unwrap();
    assert_eq!(nul.finding.title, "a\u{FFFD}b");
    assert_eq!(nul.finding.detail, "\u{FFFD}");
    api.stop().await;
}

async fn rejections_are_capped_and_structure_is_still_checked(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let scan = common::running_scan(api.store.as_ref(), &tenant, "rt-2").await;
    let mut body = Vec::new();
    for _ in 0..10 {
        body.extend_from_slice(b"garbage\n");
    }
    body.extend_from_slice(common::finding_lines(2, "ok").as_bytes());
    let (code, accepted) = post_report(&api, &scan.id, "rt-2", body).await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(accepted["rejected"], 10);
    assert_eq!(
        accepted["rejections"].as_array().unwrap().len(),
        MAX_REJECTIONS
    );
    assert_eq!(accepted["inserted"], 2);

    // Something after the final line, and a final line of another scan, are errors.
    let mut body = final_line(&scan.id).into_bytes();
    body.extend_from_slice(b"garbage\n");
    let (code, err) = post_report(&api, &scan.id, "rt-2", body).await;
    assert_eq!(code, 422, "{err}");
    assert!(err["message"].as_str().unwrap().contains("line 2"), "{err}");
    let (code, err) = post_report(
        &api,
        &scan.id,
        "rt-2",
        final_line("another-scan").into_bytes(),
    )
    .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("scan_run_id"),
        "{err}"
    );
    let still = api.store.scan(None, &scan.id).await.unwrap().unwrap();
    assert_eq!(still.status.to_string(), "running");

    // A wrong token is a 401.
    let (code, err) = post_report(&api, &scan.id, ADMIN, final_line(&scan.id).into_bytes()).await;
    assert_eq!(code, 401, "{err}");
    api.stop().await;
}

async fn post_chunk(
    api: &Api,
    scan: &str,
    token: &str,
    chunk: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = api
        .client
        .post(format!("{}/api/v1/scans/{scan}/report", api.url))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .header(CHUNK_HEADER, chunk)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn a_retried_chunk_counts_its_refused_lines_once(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let scan = common::running_scan(api.store.as_ref(), &tenant, "rt-3").await;
    let mut body = common::finding_lines(2, "good").into_bytes();
    body.extend_from_slice(b"{not json\n{also not json\n");
    // The answer to the first send was "lost": the sender sends the same chunk again.
    for _ in 0..2 {
        let (code, accepted) = post_chunk(&api, &scan.id, "rt-3", "0", body.clone()).await;
        assert_eq!(code, 200, "{accepted}");
        assert_eq!(accepted["rejected"], 2, "{accepted}");
    }
    let after = api.store.scan(None, &scan.id).await.unwrap().unwrap();
    assert_eq!(
        after.findings_rejected, 2,
        "counted once: {:?}",
        after.rejections
    );
    // The next chunk counts.
    let (code, _) = post_chunk(&api, &scan.id, "rt-3", "1", b"{bad\n".to_vec()).await;
    assert_eq!(code, 200);
    let after = api.store.scan(None, &scan.id).await.unwrap().unwrap();
    assert_eq!(after.findings_rejected, 3);
    // A header that is not a chunk number is refused, naming it, and stores nothing.
    for bad in ["-1", "x", "99999999999999999999"] {
        let (code, err) = post_chunk(
            &api,
            &scan.id,
            "rt-3",
            bad,
            format!("{}\n", json!({"type": "finding", "target": "h", "rule_id": "refused", "severity": "low", "title": "t"})).into_bytes(),
        )
        .await;
        assert_eq!(code, 422, "{bad}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(CHUNK_HEADER),
            "{err}"
        );
    }
    let stored = api
        .store
        .list_findings(
            None,
            &scan.id,
            &FindingFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "only the two good findings, once");
    api.stop().await;
}

async fn secrets_are_masked_before_anything_keeps_them(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let scan = common::running_scan(api.store.as_ref(), &tenant, "rt-1").await;
    let secrets = ["hunter2", "pw123456", "AKIAIOSFODNN7EXAMPLE"];
    let line = json!({"type": "finding", "target": "h", "rule_id": "leak", "severity": "high",
        "title": "key AKIAIOSFODNN7EXAMPLE exposed", "location": "https://bob:pw123456@h/x",
        "detail": "body: DB_PASSWORD=hunter2\nHOST=db"});
    let body = format!("{line}\n{}", final_line(&scan.id));
    let (code, accepted) = post_report(&api, &scan.id, "rt-1", body.into_bytes()).await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(accepted["inserted"], 1, "{accepted}");

    let stored = api
        .store
        .list_findings(
            None,
            &scan.id,
            &FindingFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let f = &stored[0].finding;
    assert_eq!(f.detail, "body: DB_PASSWORD=*****\nHOST=db");
    assert_eq!(f.location, "https://bob:*****@h/x");
    assert_eq!(f.title, "key ***** exposed");
    for format in ["json", "sarif", "csv"] {
        let text = api
            .client
            .get(format!(
                "{}/api/v1/scans/{}/findings?format={format}",
                api.url, scan.id
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("*****"), "{format}: {text}");
        for s in secrets {
            assert!(!text.contains(s), "{format} holds {s}: {text}");
        }
    }
    api.stop().await;
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    one_bad_line_loses_nothing_else,
    rejections_are_capped_and_structure_is_still_checked,
    a_retried_chunk_counts_its_refused_lines_once,
    secrets_are_masked_before_anything_keeps_them
);
