//! Errors as clients see them, through the real server on both backends: every error is
//! JSON naming the field; NUL characters anywhere in a request are a 422 (PostgreSQL cannot
//! store them, so they used to be a 503 there); invalid cursors are a 400; the router's
//! 404/405/414 and hyper's own 414 are JSON; admin endpoints refuse tenant tokens with 403;
//! store failures are a 500 with the request id and without the driver's text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Api, ADMIN};
use reqwest::Method;
use scanplane_store::Backend;
use serde_json::{json, Value};

async fn call(
    api: &Api,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = api.client.request(method, format!("{}{path}", api.url));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: {status} body is not JSON: {text:?}"));
    (status, body)
}

fn assert_error(what: &str, (code, body): (u16, Value), want: u16, field: &str) {
    assert_eq!(code, want, "{what}: {body}");
    assert!(body["error"].is_string(), "{what}: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(field),
        "{what}: message {msg:?} should name {field:?}"
    );
}

async fn tenant_token(api: &Api, tenant: &str) -> String {
    let (code, body) = call(
        api,
        Method::POST,
        "/api/v1/tokens",
        ADMIN,
        Some(json!({"tenant": tenant, "name": "t"})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn nul_is_a_422_naming_the_field(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (
            Method::POST,
            "/scans/now",
            json!({"scanner": "tcp", "targets": ["127.0.0.1", "a\u{0}b"]}),
            "targets[1]",
        ),
        (
            Method::POST,
            "/api/v1/scans",
            json!({"scanner": "tcp", "targets": ["127.0.0.1"], "options": {"k": "\u{0}"}}),
            "options.k",
        ),
        (
            Method::POST,
            "/scans/schedule",
            json!({"name": "n\u{0}", "cron_exp": "0 0 * * *", "scanner": "tcp", "targets": ["127.0.0.1"]}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/maintenance-windows",
            json!({"name": "w", "cron": "0 2 * * *", "duration": "1h", "scope": "tenant:\u{0}"}),
            "scope",
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            json!({"tenant": "ok", "name": "x\u{0}"}),
            "name",
        ),
        (
            Method::PATCH,
            "/api/v1/findings/0190b7c4-0000-7000-8000-000000000000",
            json!({"triage": "none", "comment": "c\u{0}"}),
            "comment",
        ),
    ];
    for (method, path, body, field) in cases {
        let got = call(&api, method.clone(), path, ADMIN, Some(body.clone())).await;
        assert_error(&format!("{method} {path} {body}"), got, 422, field);
    }
    for path in [
        "/api/v1/scans/a%00b",
        "/api/v1/scans/a%00b/findings",
        "/scans/schedule/%00",
        "/api/v1/maintenance-windows/x%00",
        "/api/v1/scans?scanner=a%00",
        "/api/v1/findings?text=%00",
    ] {
        let got = call(&api, Method::GET, path, ADMIN, None).await;
        let field = if path.contains('?') {
            path.split(['?', '=']).nth(1).unwrap()
        } else {
            "id"
        };
        assert_error(path, got, 422, field);
    }
    // Nothing was created by any of them.
    let (_, scans) = call(&api, Method::GET, "/api/v1/scans", ADMIN, None).await;
    assert_eq!(scans["items"], json!([]));
    let (_, windows) = call(
        &api,
        Method::GET,
        "/api/v1/maintenance-windows",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(windows, json!([]));
    api.stop().await;
}

async fn cursors_auth_and_router_errors(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    for path in [
        "/api/v1/scans?cursor=garbage",
        "/api/v1/findings?cursor=1",
        "/scans/schedule?cursor=x",
    ] {
        let got = call(&api, Method::GET, path, ADMIN, None).await;
        assert_error(path, got, 400, "cursor");
    }
    // A real cursor still pages.
    for i in 0..3 {
        let (code, _) = call(
            &api,
            Method::POST,
            "/scans/now",
            ADMIN,
            Some(json!({"scanner": "tcp", "targets": [format!("127.0.0.{}", i + 1)]})),
        )
        .await;
        assert_eq!(code, 202);
    }
    let (_, p1) = call(&api, Method::GET, "/api/v1/scans?limit=2", ADMIN, None).await;
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (code, p2) = call(
        &api,
        Method::GET,
        &format!("/api/v1/scans?limit=2&cursor={cursor}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    let scan = p1["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/scans/{scan}/findings?cursor=nope");
    assert_error(
        &path,
        call(&api, Method::GET, &path, ADMIN, None).await,
        400,
        "cursor",
    );

    // Admin endpoints: 401 without or with a bad token, 403 for a tenant token.
    let tenant = tenant_token(&api, "team-a").await;
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/tokens",
            json!({"tenant": "team-b", "name": "x"}),
        ),
        (
            Method::PUT,
            "/api/v1/tenants/team-a/retention",
            json!({"days": 3}),
        ),
    ] {
        assert_error(
            path,
            call(&api, method.clone(), path, "", Some(body.clone())).await,
            401,
            "Authorization",
        );
        assert_error(
            path,
            call(&api, method.clone(), path, "wrong", Some(body.clone())).await,
            401,
            "Authorization",
        );
        assert_error(
            path,
            call(&api, method.clone(), path, &tenant, Some(body.clone())).await,
            403,
            "admin",
        );
    }

    // Router errors are JSON.
    assert_error(
        "404",
        call(&api, Method::GET, "/no/such/thing", ADMIN, None).await,
        404,
        "no such endpoint",
    );
    assert_error(
        "405",
        call(&api, Method::PUT, "/api/v1/scans", ADMIN, None).await,
        405,
        "PUT",
    );
    let long = format!("/api/v1/scans?scanner={}", "a".repeat(10_000));
    assert_error(
        "414",
        call(&api, Method::GET, &long, ADMIN, None).await,
        414,
        "request target",
    );
    // Beyond hyper's own limit (64 KiB), hyper answers before the router; still JSON.
    let huge = format!(
        "GET /api/v1/scans?scanner={} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let raw = common::raw_exchange(api.addr, huge.as_bytes(), Duration::from_secs(10)).await;
    let (code, body) = common::parse_raw(&raw);
    assert_eq!(code, 414, "{body}");
    assert_eq!(body["error"], "uri_too_long");
    let raw = common::raw_exchange(
        api.addr,
        b"NOT HTTP AT ALL\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    let (code, body) = common::parse_raw(&raw);
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"], "malformed");

    // Exports and diffs have no pages: their paging parameters are refused, not ignored.
    let got = call(
        &api,
        Method::GET,
        &format!("/api/v1/scans/{scan}/diff?limit=5"),
        ADMIN,
        None,
    )
    .await;
    assert_error("diff limit", got, 400, "limit");
    let got = call(
        &api,
        Method::GET,
        &format!("/api/v1/scans/{scan}/diff?cursor={scan}"),
        ADMIN,
        None,
    )
    .await;
    assert_error("diff cursor", got, 400, "cursor");
    let got = call(
        &api,
        Method::GET,
        &format!("/api/v1/scans/{scan}/findings?format=sarif&limit=5"),
        ADMIN,
        None,
    )
    .await;
    assert_error("export limit", got, 422, "limit");
    api.stop().await;
}

async fn request_ids_and_internal_errors(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let resp = api
        .client
        .get(format!("{}/healthz", api.url))
        .header("x-request-id", "my-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"],
        "my-id-1",
        "a client's id is echoed"
    );
    let resp = api
        .client
        .get(format!("{}/healthz", api.url))
        .send()
        .await
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::try_parse(&generated).is_ok(), "{generated}");
    let resp = api
        .client
        .get(format!("{}/api/v1/scans/x", api.url))
        .header("x-request-id", "lookup-1")
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["request_id"], "lookup-1",
        "errors carry the request id: {body}"
    );

    // Break the database under the running server: the table of scans disappears.
    break_scans_table(&api).await;
    let resp = api
        .client
        .get(format!("{}/api/v1/scans", api.url))
        .header("x-request-id", "broken-1")
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 500, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "internal", "{body}");
    assert_eq!(body["request_id"], "broken-1", "{body}");
    for leak in ["scans", "relation", "no such table", "sqlx", "database"] {
        assert!(
            !text.to_lowercase().contains(leak),
            "driver text {leak:?} sent to the client: {text}"
        );
    }
    api.stop().await;
}

/// Renames the `scans` table, through a connection of the test's own.
async fn break_scans_table(api: &Api) {
    use sqlx::Connection;
    let url = api.db_url.clone();
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("ALTER TABLE scans RENAME TO scans_gone")
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("ALTER TABLE scans RENAME TO scans_gone")
            .execute(&mut c)
            .await
            .unwrap();
    }
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    nul_is_a_422_naming_the_field,
    cursors_auth_and_router_errors,
    request_ids_and_internal_errors
);
