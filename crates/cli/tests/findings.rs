//! Findings across runs end to end: the same scanner over the same target twice with one
//! issue fixed in between, the diff, re-runs, triage, the findings listing, and the SARIF
//! and CSV exports, and runs of narrower scope (fewer ports) that must fix nothing — on
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use scanplane_store::Backend;
use serde_json::{json, Value};

/// Runs the `fake` scanner (which reports one finding per rule listed in `rules`) once.
async fn run(s: &Server, rules_file: &std::path::Path, rules: &[&str]) -> String {
    std::fs::write(
        rules_file,
        rules.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .unwrap();
    let (code, a) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "fake", "targets": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(code, 202, "{a}");
    let id = a["scan_run_id"].as_str().unwrap().to_string();
    let scan = s.wait_scan(&id, Duration::from_secs(60), terminal).await;
    assert_eq!(scan["status"], "succeeded", "{scan}");
    id
}

fn rules(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

async fn findings_across_runs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("rules.txt");
    let script = dir.path().join("fake.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nwhile read -r r; do [ -n \"$r\" ] && printf '{{\"target\":\"127.0.0.1\",\"rule_id\":\"%s\",\"severity\":\"high\",\"title\":\"Issue %s, \\\"quoted\\\"\",\"location\":\"src/app.py:12\"}}\\n' \"$r\" \"$r\"; done < {}\n",
            rules_file.display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "scanners:\n  - name: fake\n    command: [\"{}\"]\n    output: scanplane-json\n",
            script.display()
        ),
    )
    .unwrap();
    let s = Server::start(
        &fresh_db(backend).await,
        &[("SCANPLANE_CONFIG", cfg.to_str().unwrap())],
    )
    .await;

    let r1 = run(&s, &rules_file, &["a", "b", "c"]).await;
    let (_, d1) = s.get(&format!("/api/v1/scans/{r1}/diff"), ADMIN).await;
    assert!(d1["previous_scan_id"].is_null());
    assert_eq!(d1["counts"]["new"], 3);

    let r2 = run(&s, &rules_file, &["a", "b"]).await;
    let (code, d2) = s.get(&format!("/api/v1/scans/{r2}/diff"), ADMIN).await;
    assert_eq!(code, 200, "{d2}");
    assert_eq!(d2["previous_scan_id"], r1);
    assert_eq!(
        d2["counts"],
        json!({"new": 0, "fixed": 1, "reopened": 0, "unchanged": 2})
    );
    assert_eq!(rules(&d2["fixed"]), vec!["c"]);

    let r3 = run(&s, &rules_file, &["a", "b"]).await;
    let (_, d3) = s.get(&format!("/api/v1/scans/{r3}/diff"), ADMIN).await;
    assert_eq!(
        d3["counts"],
        json!({"new": 0, "fixed": 0, "reopened": 0, "unchanged": 2}),
        "re-running unchanged shows nothing new"
    );

    // Across runs: c is fixed by r2; triage b and see it survive a re-run that reopens c.
    let (_, fixed) = s.get("/api/v1/findings?status=fixed", ADMIN).await;
    assert_eq!(rules(&fixed["items"]), vec!["c"]);
    assert_eq!(fixed["items"][0]["fixed_by"], r2);
    let (_, open) = s
        .get(
            "/api/v1/findings?status=open&severity=high&text=issue%20b",
            ADMIN,
        )
        .await;
    let b_id = open["items"][0]["id"].as_str().unwrap().to_string();
    let (code, t) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/findings/{b_id}"),
            ADMIN,
            Some(json!({"triage": "accepted_risk", "comment": "behind the VPN"})),
        )
        .await;
    assert_eq!(code, 200, "{t}");
    let (code, bad) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/findings/{b_id}"),
            ADMIN,
            Some(json!({"triage": "ignore"})),
        )
        .await;
    assert_eq!(code, 422, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("triage"));
    let r4 = run(&s, &rules_file, &["a", "b", "c"]).await;
    let (_, d4) = s.get(&format!("/api/v1/scans/{r4}/diff"), ADMIN).await;
    assert_eq!(rules(&d4["reopened"]), vec!["c"]);
    let (_, b) = s.get("/api/v1/findings?rule_id=b", ADMIN).await;
    assert_eq!(
        b["items"][0]["triage"], "accepted_risk",
        "triage survives re-runs"
    );
    assert_eq!(b["items"][0]["triage_comment"], "behind the VPN");
    assert_eq!(b["items"][0]["triaged_by"], "admin");
    let (_, accepted) = s.get("/api/v1/findings?triage=accepted_risk", ADMIN).await;
    assert_eq!(rules(&accepted["items"]), vec!["b"], "triage is a filter");
    let (_, untriaged) = s.get("/api/v1/findings?triage=none", ADMIN).await;
    assert_eq!(untriaged["items"].as_array().unwrap().len(), 2);
    let (code, bad) = s.get("/api/v1/findings?triage=ignored", ADMIN).await;
    assert_eq!(code, 422, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("triage"), "{bad}");
    let (_, page) = s.get(&format!("/api/v1/scans/{r4}/findings"), ADMIN).await;
    let triage_of = |rule: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule_id"] == rule)
            .unwrap()["triage"]
            .clone()
    };
    assert_eq!(triage_of("b"), "accepted_risk", "{page}");
    assert_eq!(triage_of("a"), "none", "{page}");

    // Another tenant sees none of it.
    let (_, tok) = s
        .post(
            "/api/v1/tokens",
            ADMIN,
            json!({"tenant": "other", "name": "x"}),
        )
        .await;
    let other = tok["token"].as_str().unwrap();
    let (_, none) = s.get("/api/v1/findings", other).await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (code, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/findings/{b_id}"),
            other,
            Some(json!({"triage": "false_positive"})),
        )
        .await;
    assert_eq!(code, 404);
    let (code, _) = s.get(&format!("/api/v1/scans/{r4}/diff"), other).await;
    assert_eq!(code, 404);

    // Exports.
    let resp = s
        .client
        .get(format!("{}/api/v1/scans/{r4}/findings?format=sarif", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let sarif: Value = resp.json().await.unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results
        .iter()
        .all(|r| r["partialFingerprints"]["scanplane/v1"]
            .as_str()
            .is_some_and(|f| f.len() == 64)));
    assert!(
        results.iter().all(|r| r["level"] == "error"),
        "high maps to error"
    );
    // The triaged finding is suppressed, with the justification; the others are not.
    for r in results {
        if r["ruleId"] == "b" {
            assert_eq!(
                r["suppressions"],
                json!([{"kind": "external", "status": "accepted",
                        "justification": "accepted risk: behind the VPN"}]),
                "{r}"
            );
        } else {
            assert!(r.get("suppressions").is_none(), "{r}");
        }
    }
    let resp = s
        .client
        .get(format!("{}/api/v1/scans/{r4}/diff?format=sarif", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let diff_sarif: Value = resp.json().await.unwrap();
    assert_eq!(
        diff_sarif["runs"][0]["results"].as_array().unwrap().len(),
        1,
        "the diff exports what is new or reopened"
    );
    let csv = s
        .client
        .get(format!("{}/api/v1/scans/{r4}/findings?format=csv", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",triage,triage_comment"),
        "{csv}"
    );
    let b_row = csv.lines().find(|l| l.contains("Issue b")).unwrap();
    assert!(b_row.ends_with(",accepted_risk,behind the VPN"), "{b_row}");
    assert!(
        csv.contains("\"Issue a, \"\"quoted\"\"\""),
        "RFC 4180 quoting: {csv}"
    );
    let (code, body) = s
        .get(&format!("/api/v1/scans/{r4}/diff?format=csv"), ADMIN)
        .await;
    assert_eq!(code, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_findings_across_runs() {
    findings_across_runs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_findings_across_runs() {
    findings_across_runs(Backend::Postgres).await;
}

/// Runs the real `tcp` scanner over 127.0.0.1 with `options` once; returns the run id.
async fn tcp_run(s: &Server, options: Value) -> String {
    let (code, a) = s
        .post(
            "/scans/now",
            ADMIN,
            json!({"scanner": "tcp", "targets": ["127.0.0.1"], "options": options}),
        )
        .await;
    assert_eq!(code, 202, "{a}");
    let id = a["scan_run_id"].as_str().unwrap().to_string();
    let scan = s.wait_scan(&id, Duration::from_secs(60), terminal).await;
    assert_eq!(scan["status"], "succeeded", "{scan}");
    id
}

/// A run that looks at less (fewer ports) than an earlier one is not compared with it: it
/// cannot see, and so must not fix, what only the wider run covered. Options that only
/// change speed keep runs comparable, and a wider run still fixes what went away.
async fn narrower_runs_fix_nothing(backend: Backend) {
    let keep = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (p1, p2) = (
        keep.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
    );
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let both = format!("{p1},{p2}");

    let wide = tcp_run(&s, json!({"ports": both})).await;
    let (_, d) = s.get(&format!("/api/v1/scans/{wide}/diff"), ADMIN).await;
    assert_eq!(d["counts"]["new"], 2, "{d}");

    let narrow = tcp_run(&s, json!({"ports": p1.to_string()})).await;
    let (_, d) = s.get(&format!("/api/v1/scans/{narrow}/diff"), ADMIN).await;
    assert!(
        d["previous_scan_id"].is_null(),
        "a run over fewer ports is another scope: {d}"
    );
    assert_eq!(d["counts"]["fixed"], 0, "{d}");
    let (_, fixed) = s.get("/api/v1/findings?status=fixed", ADMIN).await;
    assert_eq!(
        fixed["items"].as_array().unwrap().len(),
        0,
        "nothing is fixed by a run that did not look: {fixed}"
    );

    // Same ports, another concurrency: the same scope, compared with the wide run.
    let again = tcp_run(&s, json!({"ports": both, "concurrency": 4})).await;
    let (_, d) = s.get(&format!("/api/v1/scans/{again}/diff"), ADMIN).await;
    assert_eq!(d["previous_scan_id"], wide.as_str(), "{d}");
    assert_eq!(
        d["counts"],
        json!({"new": 0, "fixed": 0, "reopened": 0, "unchanged": 2})
    );

    // The second service goes away: a run of the wide scope fixes it, and only it.
    drop(other);
    let after = tcp_run(&s, json!({"concurrency": 8, "ports": both})).await;
    let (_, d) = s.get(&format!("/api/v1/scans/{after}/diff"), ADMIN).await;
    assert_eq!(d["previous_scan_id"], again.as_str(), "{d}");
    assert_eq!(
        d["counts"],
        json!({"new": 0, "fixed": 1, "reopened": 0, "unchanged": 1}),
        "{d}"
    );
    drop(keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_narrower_runs_fix_nothing() {
    narrower_runs_fix_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_narrower_runs_fix_nothing() {
    narrower_runs_fix_nothing(Backend::Postgres).await;
}
