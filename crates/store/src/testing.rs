//! Fresh, isolated stores for tests in every crate: a new SQLite file, or a new database on
//! the PostgreSQL server named by `SCANPLANE_TEST_POSTGRES_URL` (the test command starts a
//! throwaway server and sets it). A missing server is a failure, never a silent skip.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{Backend, SqlStore, StoreError};

/// Env var naming a PostgreSQL server whose user may create databases.
pub const POSTGRES_URL_ENV: &str = "SCANPLANE_TEST_POSTGRES_URL";

/// The PostgreSQL URL for tests, or a message saying how to get one.
pub fn postgres_url() -> Result<String, String> {
    std::env::var(POSTGRES_URL_ENV).map_err(|_| {
        format!(
            "{POSTGRES_URL_ENV} is not set: run the test suite with ./scripts/test.sh, which starts a \
             throwaway PostgreSQL (apt-get install postgresql), or point {POSTGRES_URL_ENV} at a \
             server whose user may CREATE DATABASE"
        )
    })
}

/// Creates an empty database on the test server and returns its URL.
pub async fn fresh_postgres_url() -> Result<String, String> {
    let base = postgres_url()?;
    let name = format!("sp_test_{}", uuid::Uuid::now_v7().simple());
    let opts = PgConnectOptions::from_str(&base).map_err(|e| format!("{POSTGRES_URL_ENV}: {e}"))?;
    let mut conn = opts
        .clone()
        .connect()
        .await
        .map_err(|e| format!("cannot reach the test PostgreSQL at {POSTGRES_URL_ENV}: {e}"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("CREATE DATABASE failed: {e}"))?;
    let _ = conn.close().await;
    let url = match base.split_once('?') {
        Some((head, query)) => format!(
            "{}/{name}?{query}",
            head.rsplit_once('/').map_or(head, |x| x.0)
        ),
        None => format!(
            "{}/{name}",
            base.rsplit_once('/').map_or(base.as_str(), |x| x.0)
        ),
    };
    Ok(url)
}

/// A fresh SQLite file path in the temp directory.
pub fn fresh_sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!(
        "scanplane-test-{}.db",
        uuid::Uuid::now_v7().simple()
    ));
    format!("sqlite://{}", path.display())
}

/// The URL of a fresh, empty database of `backend`.
pub async fn fresh_url(backend: Backend) -> Result<String, String> {
    match backend {
        Backend::Sqlite => Ok(fresh_sqlite_url()),
        Backend::Postgres => fresh_postgres_url().await,
    }
}

/// A fresh, migrated store of `backend`. Panics with a clear message when the backend is
/// unavailable: tests must fail, not skip.
pub async fn fresh_store(backend: Backend) -> SqlStore {
    let url = match fresh_url(backend).await {
        Ok(u) => u,
        Err(msg) => panic!("{msg}"),
    };
    match SqlStore::open(&url).await {
        Ok(s) => s,
        Err(e) => panic!("cannot open test store {url}: {e}"),
    }
}

/// Opens an existing test database again (a restart).
pub async fn reopen(url: &str) -> Result<SqlStore, StoreError> {
    SqlStore::open(url).await
}
