//! The HTTP API end to end against the real binary, on SQLite and PostgreSQL: auth and
//! tenancy, schedules, maintenance windows, validation errors, OpenAPI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::Method;
use scanplane_store::Backend;
use serde_json::{json, Value};

async fn tenant_token(s: &Server, tenant: &str) -> String {
    let (code, body) = s
        .post(
            "/api/v1/tokens",
            ADMIN,
            json!({"tenant": tenant, "name": "ci"}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(body["id"].is_string());
    body["token"].as_str().unwrap().to_string()
}

fn assert_error(code: u16, body: &Value, want_code: u16, field: &str) {
    assert_eq!(code, want_code, "{body}");
    assert!(body["error"].is_string(), "error code missing: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains(field), "message {msg:?} should name {field:?}");
}

async fn auth_and_tenancy(backend: Backend) {
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let (code, body) = s.get("/api/v1/scans", "").await;
    assert_error(code, &body, 401, "Authorization");
    let (code, body) = s.get("/api/v1/scans", "wrong").await;
    assert_error(code, &body, 401, "Authorization");

    let a = tenant_token(&s, "team-a").await;
    let b = tenant_token(&s, "team-b").await;
    let (code, body) = s
        .post(
            "/api/v1/tokens",
            &a,
            json!({"tenant": "team-c", "name": "x"}),
        )
        .await;
    assert_error(code, &body, 403, "admin");
    let (code, body) = s
        .post(
            "/api/v1/tokens",
            ADMIN,
            json!({"tenant": "Bad Name", "name": "x"}),
        )
        .await;
    assert_error(code, &body, 422, "tenant");

    let sched = json!({"name": "nightly", "cron_exp": "0 0 * * *", "scanner": "tcp", "targets": ["127.0.0.1:22"]});
    let (code, created) = s.post("/scans/schedule", &a, sched.clone()).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (code, body) = s.get(&format!("/scans/schedule/{id}"), &b).await;
    assert_error(code, &body, 404, id);
    let (code, body) = s
        .call(Method::DELETE, &format!("/scans/schedule/{id}"), &b, None)
        .await;
    assert_error(code, &body, 404, id);
    let (_, list_b) = s.get("/scans/schedule", &b).await;
    assert_eq!(
        list_b["items"].as_array().unwrap().len(),
        0,
        "tenant b sees none of a's schedules"
    );
    let (_, list_a) = s.get("/scans/schedule", &a).await;
    assert_eq!(list_a["items"].as_array().unwrap().len(), 1);
    let (_, list_admin) = s.get("/scans/schedule", ADMIN).await;
    assert_eq!(
        list_admin["items"].as_array().unwrap().len(),
        1,
        "the admin sees every tenant"
    );

    let (code, scan) = s
        .post(
            "/scans/now",
            &a,
            json!({"scanner": "tcp", "targets": ["127.0.0.1:9"]}),
        )
        .await;
    assert_eq!(code, 202, "{scan}");
    let scan_id = scan["scan_run_id"].as_str().unwrap();
    assert_eq!(scan["status"], "queued");
    let (code, body) = s.get(&format!("/api/v1/scans/{scan_id}"), &b).await;
    assert_error(code, &body, 404, scan_id);
    let (code, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/scans/{scan_id}"),
            &b,
            None,
        )
        .await;
    assert_error(code, &body, 404, scan_id);
    let (_, scans_b) = s.get("/api/v1/scans", &b).await;
    assert!(scans_b["items"].as_array().unwrap().is_empty());
}

async fn schedules_crud(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "scanners:\n  - name: inventory\n    command: [\"true\"]\n    output: scanplane-json\n",
    )
    .unwrap();
    let s = Server::start(
        &fresh_db(backend).await,
        &[("SCANPLANE_CONFIG", cfg.to_str().unwrap())],
    )
    .await;
    let (code, created) = s
        .post(
            "/scans/schedule",
            ADMIN,
            json!({"name": "inventory", "cron_exp": "0 3 * * *", "timezone": "Europe/Berlin", "scanner": "inventory",
                   "target_accounts": ["123456789012"], "targets": ["127.0.0.1"], "billing": true, "jitter": "10m"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["timezone"], "Europe/Berlin");
    assert_eq!(created["target_accounts"], json!(["123456789012"]));
    assert_eq!(created["billing"], true);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["status"], "active");
    assert_eq!(created["missed_tick_policy"], "catch_up_once");
    let first = created["next_fire_at"].as_str().unwrap().to_string();

    let (code, patched) = s
        .call(
            Method::PATCH,
            &format!("/scans/schedule/{id}"),
            ADMIN,
            Some(json!({"cron_exp": "*/5 * * * *"})),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["cron_exp"], "*/5 * * * *");
    assert_eq!(
        patched["target_accounts"],
        json!(["123456789012"]),
        "untouched fields stay"
    );
    assert_ne!(
        patched["next_fire_at"].as_str().unwrap(),
        first,
        "next_fire_at is recomputed"
    );

    let (code, disabled) = s
        .call(
            Method::PATCH,
            &format!("/scans/schedule/{id}"),
            ADMIN,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(code, 200);
    assert!(
        disabled["next_fire_at"].is_null(),
        "a disabled schedule never fires"
    );

    let (code, body) = s
        .call(
            Method::PATCH,
            &format!("/scans/schedule/{id}"),
            ADMIN,
            Some(json!({"cron_exp": "not cron"})),
        )
        .await;
    assert_error(code, &body, 422, "cron_exp");
    let (_, unchanged) = s.get(&format!("/scans/schedule/{id}"), ADMIN).await;
    assert_eq!(
        unchanged["cron_exp"], "*/5 * * * *",
        "a rejected PATCH changes nothing"
    );

    let (code, once) = s
        .post("/scans/schedule", ADMIN, json!({"name": "one-shot", "time": "2099-01-01T00:00:00Z", "scanner": "tcp", "targets": ["127.0.0.1"]}))
        .await;
    assert_eq!(code, 201, "{once}");
    assert_eq!(once["next_fire_at"], "2099-01-01T00:00:00.000Z");

    let (code, _) = s
        .call(
            Method::DELETE,
            &format!("/scans/schedule/{id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(code, 204);
    let (code, body) = s.get(&format!("/scans/schedule/{id}"), ADMIN).await;
    assert_error(code, &body, 404, &id);
}

async fn validation_errors_change_nothing(backend: Backend) {
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/scans/now",
            json!({"scanner": "nope", "targets": ["127.0.0.1"]}),
            422,
            "scanner",
        ),
        (
            "/scans/now",
            json!({"scanner": "tcp"}),
            422,
            "accounts, targets",
        ),
        (
            "/scans/now",
            json!({"scanner": "tcp", "targets": ["bad host name!"]}),
            422,
            "targets[0]",
        ),
        (
            "/scans/now",
            json!({"scanner": "tcp", "accounts": ["a b"]}),
            422,
            "accounts[0]",
        ),
        (
            "/scans/now",
            json!({"scanner": "tcp", "accounts": ["123"]}),
            422,
            "targets",
        ),
        (
            "/scans/now",
            json!({"scanner": "tcp", "targets": ["127.0.0.1"], "options": {"colour": "red"}}),
            422,
            "colour",
        ),
        (
            "/scans/now",
            json!({"scanner": "tcp", "targets": ["127.0.0.1"], "options": []}),
            422,
            "options",
        ),
        (
            "/scans/now",
            json!({"scanner": "tcp", "targets": ["127.0.0.1"], "colour": 1}),
            422,
            "colour",
        ),
        (
            "/scans/now",
            json!({"targets": ["127.0.0.1"]}),
            422,
            "scanner",
        ),
        (
            "/scans/schedule",
            json!({"name": "x", "scanner": "tcp", "targets": ["127.0.0.1"]}),
            422,
            "cron_exp, time",
        ),
        (
            "/scans/schedule",
            json!({"name": "x", "cron_exp": "0 0 * * *", "time": "2030-01-01T00:00:00Z", "scanner": "tcp", "targets": ["127.0.0.1"]}),
            422,
            "cron_exp, time",
        ),
        (
            "/scans/schedule",
            json!({"name": "x", "cron_exp": "0 0 * * *", "timezone": "Mars/Base", "scanner": "tcp", "targets": ["127.0.0.1"]}),
            422,
            "timezone",
        ),
        (
            "/scans/schedule",
            json!({"name": "x", "cron_exp": "0 0 * *", "scanner": "tcp", "targets": ["127.0.0.1"]}),
            422,
            "cron_exp",
        ),
        (
            "/scans/schedule",
            json!({"name": "x", "time": "tomorrow", "scanner": "tcp", "targets": ["127.0.0.1"]}),
            422,
            "time",
        ),
        (
            "/scans/schedule",
            json!({"name": "x", "cron_exp": "0 0 * * *", "scanner": "tcp", "targets": ["127.0.0.1"], "jitter": "5 minutes"}),
            422,
            "jitter",
        ),
        (
            "/scans/schedule",
            json!({"name": "", "cron_exp": "0 0 * * *", "scanner": "tcp", "targets": ["127.0.0.1"]}),
            422,
            "name",
        ),
        (
            "/api/v1/maintenance-windows",
            json!({"name": "w", "duration": "1h"}),
            422,
            "start, cron",
        ),
        (
            "/api/v1/maintenance-windows",
            json!({"name": "w", "start": "2026-11-22T02:00:00Z", "duration": "forever"}),
            422,
            "duration",
        ),
        (
            "/api/v1/maintenance-windows",
            json!({"name": "w", "cron": "0 2 * * *", "duration": "1h", "scope": "planet:mars"}),
            422,
            "scope",
        ),
        (
            "/api/v1/maintenance-windows",
            json!({"name": "w", "cron": "0 2 * * *", "duration": "1h", "action": "explode"}),
            422,
            "action",
        ),
    ];
    for (path, body, want, field) in cases {
        let (code, resp) = s.post(path, ADMIN, body.clone()).await;
        assert_eq!(code, want, "{path} {body} -> {resp}");
        let msg = resp["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(field),
            "{path} {body}: message {msg:?} should name {field:?}"
        );
    }
    // Malformed JSON, wrong content type, too large.
    let resp = s
        .client
        .post(format!("{}/scans/now", s.url))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "malformed");
    let resp = s
        .client
        .post(format!("{}/scans/now", s.url))
        .bearer_auth(ADMIN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let big = format!(
        "{{\"scanner\":\"tcp\",\"targets\":[\"{}\"]}}",
        "a".repeat(2 * 1024 * 1024)
    );
    // The server closes a connection whose oversized body it did not read: a client of its
    // own keeps that connection out of the pool the later requests use.
    let resp = reqwest::Client::new()
        .post(format!("{}/scans/now", s.url))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_large");
    let (code, body) = s.get("/api/v1/scans?status=done", ADMIN).await;
    assert_error(code, &body, 422, "status");
    let (code, body) = s.get("/api/v1/scans?limit=0", ADMIN).await;
    assert_error(code, &body, 422, "limit");
    let (code, body) = s.get("/no/such/endpoint", ADMIN).await;
    assert_eq!(code, 404, "{body}");

    // Nothing was created by any rejected request.
    let (_, scans) = s.get("/api/v1/scans", ADMIN).await;
    assert!(scans["items"].as_array().unwrap().is_empty(), "{scans}");
    let (_, scheds) = s.get("/scans/schedule", ADMIN).await;
    assert!(scheds["items"].as_array().unwrap().is_empty());
    let (_, windows) = s.get("/api/v1/maintenance-windows", ADMIN).await;
    assert!(windows.as_array().unwrap().is_empty());
}

async fn windows_and_listing(backend: Backend) {
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let (code, w) = s
        .post("/api/v1/maintenance-windows", ADMIN, json!({"name": "nightly-freeze", "cron": "0 2 * * *", "timezone": "UTC", "duration": "1h", "scope": "scanner:nmap"}))
        .await;
    assert_eq!(code, 201, "{w}");
    assert_eq!(w["action"], "hold", "hold is the default action");
    let id = w["id"].as_str().unwrap();
    let (code, replaced) = s
        .call(Method::PUT, &format!("/api/v1/maintenance-windows/{id}"), ADMIN, Some(json!({"name": "freeze", "start": "2026-11-22T02:00:00Z", "duration": "90m", "action": "skip"})))
        .await;
    assert_eq!(code, 200, "{replaced}");
    assert_eq!(replaced["duration"], "1h30m");
    assert_eq!(replaced["scope"], "global");
    let (code, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/maintenance-windows/{id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(code, 204);

    let (code, scanners) = s.get("/api/v1/scanners", ADMIN).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = scanners
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    for n in ["tcp", "http", "nmap"] {
        assert!(names.contains(&n), "{n} listed in {names:?}");
    }

    // Cursor pagination and filters on /api/v1/scans.
    for i in 0..5 {
        let (code, _) = s
            .post(
                "/api/v1/scans",
                ADMIN,
                json!({"scanner": "tcp", "targets": [format!("127.0.0.{}:9", i + 1)]}),
            )
            .await;
        assert_eq!(code, 202);
    }
    let (_, p1) = s
        .get("/api/v1/scans?limit=3&trigger=on_demand&scanner=tcp", ADMIN)
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .get(&format!("/api/v1/scans?limit=3&cursor={cursor}"), ADMIN)
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 2);

    let (code, doc) = s.get("/openapi.json", "").await;
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/scans/now",
        "/scans/schedule",
        "/scans/schedule/{id}",
        "/api/v1/scans",
        "/api/v1/scans/{id}",
        "/api/v1/maintenance-windows",
        "/api/v1/scanners",
        "/api/v1/tokens",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
    let (code, _) = s.get("/metrics", "").await;
    assert_eq!(code, 200);
}

/// What users of cron systems expect of schedules: names unique within a tenant (409, and a
/// rename onto a taken name is refused too), a one-shot time in the past refused (422
/// naming `time`), and a disabled schedule that says so in its status.
async fn schedule_names_times_and_status(backend: Backend) {
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let body = |name: &str| json!({"name": name, "cron_exp": "0 2 * * *", "scanner": "tcp", "targets": ["127.0.0.1"]});
    let (code, first) = s.post("/scans/schedule", ADMIN, body("nightly")).await;
    assert_eq!(code, 201, "{first}");
    let (code, dup) = s.post("/scans/schedule", ADMIN, body("nightly")).await;
    assert_error(code, &dup, 409, "name");
    let (code, other) = s.post("/scans/schedule", ADMIN, body("weekly")).await;
    assert_eq!(code, 201, "{other}");
    let weekly = other["id"].as_str().unwrap();
    let (code, renamed) = s
        .call(
            Method::PATCH,
            &format!("/scans/schedule/{weekly}"),
            ADMIN,
            Some(json!({"name": "nightly"})),
        )
        .await;
    assert_error(code, &renamed, 409, "nightly");
    let (_, kept) = s.get(&format!("/scans/schedule/{weekly}"), ADMIN).await;
    assert_eq!(kept["name"], "weekly", "a refused rename changes nothing");
    // Another tenant has its own names.
    let b = tenant_token(&s, "team-b").await;
    let (code, theirs) = s.post("/scans/schedule", &b, body("nightly")).await;
    assert_eq!(code, 201, "{theirs}");

    let (code, past) = s
        .post("/scans/schedule", ADMIN, json!({"name": "once", "time": "2020-01-01T00:00:00Z", "scanner": "tcp", "targets": ["127.0.0.1"]}))
        .await;
    assert_error(code, &past, 422, "time");
    assert!(
        past["message"].as_str().unwrap().contains("in the past"),
        "{past}"
    );
    let (code, past) = s
        .call(
            Method::PATCH,
            &format!("/scans/schedule/{weekly}"),
            ADMIN,
            Some(json!({"time": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_error(code, &past, 422, "time");

    assert_eq!(first["status"], "active");
    let id = first["id"].as_str().unwrap();
    let (code, off) = s
        .call(
            Method::PATCH,
            &format!("/scans/schedule/{id}"),
            ADMIN,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(code, 200, "{off}");
    assert_eq!(off["status"], "disabled", "{off}");
    assert!(off["next_fire_at"].is_null(), "{off}");
    let (_, on) = s
        .call(
            Method::PATCH,
            &format!("/scans/schedule/{id}"),
            ADMIN,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(on["status"], "active", "{on}");
    assert!(on["next_fire_at"].is_string(), "{on}");
}

/// The admin sees whose is what: every listing names each object's tenant and takes a
/// `tenant` filter; a tenant token may name only its own tenant.
async fn listings_name_the_tenant(backend: Backend) {
    let s = Server::start(&fresh_db(backend).await, &[]).await;
    let a = tenant_token(&s, "team-a").await;
    let b = tenant_token(&s, "team-b").await;
    for (token, name) in [(&a, "a"), (&b, "b")] {
        let (code, scan) = s
            .post(
                "/scans/now",
                token,
                json!({"scanner": "tcp", "targets": ["127.0.0.1:9"]}),
            )
            .await;
        assert_eq!(code, 202, "{scan}");
        let (code, sched) = s.post("/scans/schedule", token, json!({"name": name, "cron_exp": "0 2 * * *", "scanner": "tcp", "targets": ["127.0.0.1"]})).await;
        assert_eq!(code, 201, "{sched}");
        let (code, w) = s
            .post(
                "/api/v1/maintenance-windows",
                token,
                json!({"name": name, "start": "2099-01-01T00:00:00Z", "duration": "1h"}),
            )
            .await;
        assert_eq!(code, 201, "{w}");
    }
    let tenants_of = |v: &Value| -> Vec<String> {
        let items = v.get("items").unwrap_or(v).as_array().unwrap().clone();
        let mut t: Vec<String> = items
            .iter()
            .map(|i| i["tenant"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    for path in [
        "/api/v1/scans",
        "/scans/schedule",
        "/api/v1/maintenance-windows",
    ] {
        let (code, all) = s.get(path, ADMIN).await;
        assert_eq!(code, 200, "{path}: {all}");
        assert_eq!(tenants_of(&all), vec!["team-a", "team-b"], "{path}: {all}");
        let (_, only_a) = s.get(&format!("{path}?tenant=team-a"), ADMIN).await;
        assert_eq!(tenants_of(&only_a), vec!["team-a"], "{path}: {only_a}");
        let (_, own) = s.get(path, &b).await;
        assert_eq!(tenants_of(&own), vec!["team-b"], "{path}: {own}");
        let (_, own) = s.get(&format!("{path}?tenant=team-b"), &b).await;
        assert_eq!(tenants_of(&own), vec!["team-b"], "{path}: {own}");
        let (code, other) = s.get(&format!("{path}?tenant=team-a"), &b).await;
        assert_error(code, &other, 403, "tenant");
        let (code, unknown) = s.get(&format!("{path}?tenant=nobody"), ADMIN).await;
        assert_error(code, &unknown, 422, "tenant");
    }
    let (code, f) = s.get("/api/v1/findings?tenant=team-a", ADMIN).await;
    assert_eq!(code, 200, "{f}");
    let (code, one) = s.get("/api/v1/scans?limit=1", &a).await;
    assert_eq!(code, 200);
    let id = one["items"][0]["id"].as_str().unwrap();
    let (_, by_admin) = s.get(&format!("/api/v1/scans/{id}"), ADMIN).await;
    assert_eq!(by_admin["tenant"], "team-a", "{by_admin}");
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    listings_name_the_tenant,
    schedule_names_times_and_status,
    auth_and_tenancy,
    schedules_crud,
    validation_errors_change_nothing,
    windows_and_listing
);
