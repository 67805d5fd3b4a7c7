//! Rows that cannot be read (written by an older version, edited by hand, damaged) must not
//! stop admission for everyone: an unreadable queued scan fails with the reason, an
//! unreadable maintenance window holds the scans it may cover, and every other scan is
//! admitted as if the row were not there. Both backends, rows damaged with raw SQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use scanplane_core::admission::{Decision, Limits};
use scanplane_core::maintenance::{MaintenanceWindow, Scope, WindowAction, WindowStart};
use scanplane_core::scan::Trigger;
use scanplane_core::schedule::Cadence;
use scanplane_core::Timestamp;
use scanplane_store::testing::fresh_url;
use scanplane_store::{Backend, NewScan, SqlStore, Store};

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

fn new_scan(tenant: &str) -> NewScan {
    NewScan {
        tenant_id: tenant.into(),
        project_id: None,
        schedule_id: None,
        fire_time: None,
        trigger: Trigger::OnDemand,
        scanner: "tcp".into(),
        provider: None,
        targets: vec!["127.0.0.1".into()],
        billing: false,
        options: "{}".into(),
        scope_options: "{}".into(),
        on_maintenance: WindowAction::Hold,
    }
}

/// Runs one statement with positional `$1` against the store's database, bypassing the store.
async fn raw(backend: Backend, url: &str, sql: &str, id: &str) {
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let sql = sql.replace("$1", "?1");
            let done = sqlx::query(&sql).bind(id).execute(&pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{sql}");
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let done = sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{sql}");
            pool.close().await;
        }
    }
}

async fn admission_survives_poisoned_rows(backend: Backend) {
    let url = fresh_url(backend).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.unwrap());
    let a = store.ensure_tenant("a").await.unwrap();
    let b = store.ensure_tenant("b").await.unwrap();
    let c = store.ensure_tenant("c").await.unwrap();
    let poisoned = store.create_scan(new_scan(&a.id), now()).await.unwrap();
    let healthy = store.create_scan(new_scan(&a.id), now()).await.unwrap();
    let b_scan = store.create_scan(new_scan(&b.id), now()).await.unwrap();
    let c_scan = store.create_scan(new_scan(&c.id), now()).await.unwrap();
    // Tenant b has a window in the future, which would not hold anything if it could be read.
    let window = MaintenanceWindow {
        id: "w-b".into(),
        tenant_id: b.id.clone(),
        admin: false,
        name: "b-weekly".into(),
        start: WindowStart::Cron(Cadence::cron("0 2 * * 0", "UTC").unwrap()),
        duration: Duration::from_secs(60),
        scope: Scope::Global,
        action: WindowAction::Hold,
        created_at: now(),
    };
    store.create_window(&window).await.unwrap();
    raw(
        backend,
        &url,
        "UPDATE scans SET targets = 'not json' WHERE id = $1",
        &poisoned.id,
    )
    .await;
    raw(
        backend,
        &url,
        "UPDATE maintenance_windows SET cron_exp = 'not a cron' WHERE id = $1",
        "w-b",
    )
    .await;

    let decisions = store
        .admission_round(&Limits::default(), &[], 100, now())
        .await
        .expect("a poisoned row does not fail the round");
    let of = |id: &str| decisions.iter().find(|(d, _)| d == id).map(|(_, d)| d);
    assert_eq!(of(&healthy.id), Some(&Decision::Admit), "{decisions:?}");
    assert_eq!(of(&c_scan.id), Some(&Decision::Admit), "{decisions:?}");
    assert!(
        matches!(of(&b_scan.id), Some(Decision::Wait(r)) if r.contains("w-b") && r.contains("unreadable")),
        "the tenant of the unreadable window is held, not let through: {decisions:?}"
    );

    // The poisoned row cannot be read back as a scan, so look at its columns directly.
    let status = status_of(backend, &url, &poisoned.id).await;
    assert_eq!(status.0, "failed");
    assert!(status.1.contains("unreadable"), "{}", status.1);

    // The next round goes on as usual, the held scan still held with the same reason.
    let again = store
        .admission_round(&Limits::default(), &[], 100, now())
        .await
        .unwrap();
    assert!(
        matches!(again.iter().find(|(d, _)| *d == b_scan.id), Some((_, Decision::Wait(r))) if r.contains("w-b")),
        "{again:?}"
    );
    // Deleting the window releases tenant b.
    assert!(store.delete_window(None, "w-b").await.unwrap());
    let released = store
        .admission_round(&Limits::default(), &[], 100, now())
        .await
        .unwrap();
    assert!(
        released
            .iter()
            .any(|(id, d)| *id == b_scan.id && *d == Decision::Admit),
        "{released:?}"
    );
}

async fn status_of(backend: Backend, url: &str, id: &str) -> (String, String) {
    let sql = "SELECT status, reason FROM scans WHERE id = $1";
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let row: (String, String) = sqlx::query_as(&sql.replace("$1", "?1"))
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            row
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let row: (String, String) =
                sqlx::query_as(sql).bind(id).fetch_one(&pool).await.unwrap();
            pool.close().await;
            row
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_admission_survives_poisoned_rows() {
    admission_survives_poisoned_rows(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_admission_survives_poisoned_rows() {
    admission_survives_poisoned_rows(Backend::Postgres).await;
}
