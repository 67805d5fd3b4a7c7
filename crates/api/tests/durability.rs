//! A 2xx means durable: when the database cannot take writes (here PostgreSQL switched to
//! read-only transactions for real), a write is a retriable 503 that names the storage
//! problem without the driver's text, nothing is stored, `/readyz` says the store cannot
//! write, and everything answers again by itself once writes are possible. (The full-disk
//! case is exercised on both backends in the store's own tests, on a real tmpfs.) Also:
//! durations and instants that reach arithmetic are bounded with a 422 naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Api, ADMIN};
use scanplane_store::{Backend, ScanFilter};
use serde_json::{json, Value};
use sqlx::Connection;

async fn post(api: &Api, path: &str, body: Value) -> (u16, Value) {
    let resp = api
        .client
        .post(format!("{}{path}", api.url))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn readyz(api: &Api) -> (u16, Value) {
    let resp = api
        .client
        .get(format!("{}/readyz", api.url))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sets the database's default for new sessions and ends the existing ones, so that the
/// server's pool reconnects under the new setting.
async fn set_read_only(db_url: &str, on: bool) {
    let name = db_url.rsplit('/').next().unwrap().to_string();
    let admin = scanplane_store::testing::postgres_url().unwrap();
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    let setting = if on { "on" } else { "off" };
    sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" SET default_transaction_read_only = {setting}"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&mut c)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_answers_503_and_heals() {
    let api = Api::start(Backend::Postgres, Default::default()).await;
    let scan = json!({"scanner": "tcp", "targets": ["127.0.0.1"]});
    assert_eq!(readyz(&api).await.0, 200);

    set_read_only(&api.db_url, true).await;
    // The pool notices dead connections on use; the first call may hit one.
    let mut answer = post(&api, "/api/v1/scans", scan.clone()).await;
    for _ in 0..5 {
        if answer.0 == 503 {
            break;
        }
        answer = post(&api, "/api/v1/scans", scan.clone()).await;
    }
    let (code, body) = answer;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"], "unavailable", "{body}");
    let text = body.to_string().to_lowercase();
    assert!(text.contains("nothing was stored"), "{body}");
    for leak in ["read-only transaction", "sqlx", "25006"] {
        assert!(!text.contains(leak), "driver text {leak:?} sent: {body}");
    }
    let (code, body) = readyz(&api).await;
    assert_eq!(
        code, 503,
        "readyz must report a store that cannot write: {body}"
    );

    set_read_only(&api.db_url, false).await;
    let mut healed = readyz(&api).await;
    for _ in 0..5 {
        if healed.0 == 200 {
            break;
        }
        healed = readyz(&api).await;
    }
    assert_eq!(healed.0, 200, "{}", healed.1);
    let (code, body) = post(&api, "/api/v1/scans", scan).await;
    assert_eq!(code, 202, "{body}");
    let stored = api
        .store
        .list_scans(
            None,
            &ScanFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "only the acknowledged scan exists");
    api.stop().await;
}

async fn bounds_are_422_naming_the_field(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let cases = [
        (
            "/api/v1/maintenance-windows",
            json!({"name": "w", "start": "2026-01-01T00:00:00Z", "duration": "99999999999d"}),
            "duration",
            "at most",
        ),
        (
            "/api/v1/maintenance-windows",
            json!({"name": "w", "start": "2026-01-01T00:00:00Z", "duration": "400d"}),
            "duration",
            "at most 366d",
        ),
        (
            "/scans/schedule",
            json!({"name": "s", "cron_exp": "0 3 * * *", "scanner": "tcp",
                   "targets": ["127.0.0.1"], "jitter": "99999999999d"}),
            "jitter",
            "at most",
        ),
        (
            "/scans/schedule",
            json!({"name": "s", "cron_exp": "0 3 * * *", "scanner": "tcp",
                   "targets": ["127.0.0.1"], "jitter": "1h1h"}),
            "jitter",
            "1h1h",
        ),
        (
            "/scans/schedule",
            json!({"name": "s", "time": "0000-01-01T00:00:00Z", "scanner": "tcp",
                   "targets": ["127.0.0.1"]}),
            "time",
            "1970",
        ),
    ];
    for (path, body, field, problem) in cases {
        let (code, answer) = post(&api, path, body.clone()).await;
        assert_eq!(code, 422, "{path} {body}: {answer}");
        let msg = answer["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(field) && msg.contains(problem),
            "{path} {body}: {msg:?} should name {field:?} and {problem:?}"
        );
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_sqlite() {
    bounds_are_422_naming_the_field(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_postgres() {
    bounds_are_422_naming_the_field(Backend::Postgres).await;
}
