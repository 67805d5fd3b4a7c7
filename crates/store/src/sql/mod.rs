//! [`SqlStore`]: every store role over SQLite or PostgreSQL. Both backends run the same SQL
//! text (`$N` parameters, `ON CONFLICT`, `RETURNING`); the `on_pool!` and `in_tx!` macros
//! expand each body once per backend so that sqlx sees concrete types. This module holds the
//! pool, opening and migrating, and the helpers the aggregate modules share; each aggregate's
//! SQL is in its own module.

use std::str::FromStr;
use std::time::Duration;

use scanplane_core::scan::ScanStatus;
use sqlx::postgres::PgRow;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, PgPool, SqlitePool};

use crate::{Backend, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The SQL store. Cheap to clone handles are inside; share it as `Arc<dyn Store>`.
pub struct SqlStore {
    pool: Pool,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend. The closure-like
/// syntax keeps the body an ordinary expression, which rustfmt formats.
macro_rules! on_pool {
    ($self:expr, |$pool:ident| $body:expr) => {
        match &$self.pool {
            $crate::sql::Pool::Sqlite($pool) => $body,
            $crate::sql::Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` (a block evaluating to `Result<T, StoreError>`, using `$tx` as the
/// connection) inside one write transaction, committing on `Ok` and rolling back on `Err`.
/// Every write goes through here, so a write is acknowledged only once its `COMMIT`
/// succeeded (an autocommit statement read with `fetch_one` would lose a failed commit).
/// SQLite write transactions start `IMMEDIATE` so that a reader never has to upgrade to a
/// writer mid-transaction and fail with BUSY; see `tx.rs` for why they are not sqlx's.
macro_rules! in_tx {
    ($self:expr, |$tx:ident| $body:expr) => {
        match &$self.pool {
            $crate::sql::Pool::Sqlite(pool) => {
                let mut $tx = $crate::sql::tx::SqliteWrite::begin(pool).await?;
                let out: Result<_, $crate::StoreError> = async { $body }.await;
                $tx.finish(out).await
            }
            $crate::sql::Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out: Result<_, $crate::StoreError> = async { $body }.await;
                match out {
                    Ok(v) => $tx.commit().await.map(|()| v).map_err($crate::StoreError::from),
                    Err(e) => {
                        if let Err(rollback) = $tx.rollback().await {
                            tracing::warn!(error = %rollback, "ROLLBACK failed");
                        }
                        Err(e)
                    }
                }
            }
        }
    };
}

mod admission;
mod advisories;
mod errors;
mod findings;
mod health;
mod policies;
mod registries;
mod replicas;
mod retention;
mod scans;
mod schedules;
mod tenants;
mod tx;
mod vulnerabilities;
mod windows;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `'a','b'`: statuses as SQL literals, for `IN (...)` lists built from the state machine.
fn status_list(statuses: &[ScanStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

impl SqlStore {
    /// The row whose id is `id`, if `tenant` (when given) owns it: `sql` selects with
    /// `WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)`.
    async fn by_id<R>(
        &self,
        sql: &str,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Option<R>, StoreError>
    where
        R: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>,
    {
        let row = on_pool!(self, |p| {
            sqlx::query_as(sql)
                .bind(id)
                .bind(tenant)
                .fetch_optional(p)
                .await?
        });
        Ok(row)
    }

    /// Deletes the row whose id is `id`, if `tenant` (when given) owns it: `sql` deletes
    /// with `WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)`. Whether a row went.
    async fn delete_by_id(
        &self,
        sql: &str,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            let n = sqlx::query(sql)
                .bind(id)
                .bind(tenant)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A taken unique key is a `Conflict` saying `what`; any other error is itself.
fn unique_as_conflict(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(what())
        } else {
            e.into()
        }
    }
}

/// Strips the password from a URL before it appears in an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl SqlStore {
    /// Opens (and for SQLite, creates) the database and applies migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(open_postgres(url).await?)
        } else {
            Pool::Sqlite(open_sqlite(url).await?)
        };
        Ok(SqlStore { pool })
    }

    fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }
}

fn unreachable(shown: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Unreachable {
        url: shown.to_string(),
        reason: e.to_string(),
    }
}

fn migration_failed(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Migration(e.to_string())
}

async fn open_postgres(url: &str) -> Result<PgPool, StoreError> {
    let shown = redact(url);
    let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
        url: shown.clone(),
        reason: e.to_string(),
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(unreachable(&shown))?;
    POSTGRES_MIGRATIONS
        .run(&pool)
        .await
        .map_err(migration_failed)?;
    Ok(pool)
}

async fn open_sqlite(url: &str) -> Result<SqlitePool, StoreError> {
    let shown = redact(url);
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
        return Err(StoreError::InvalidUrl {
            url: shown,
            reason: "expected sqlite://PATH, a file path, or postgres://USER@HOST/DB".into(),
        });
    }
    let (file, query) = path.split_once('?').unwrap_or((path, ""));
    let memory = file == ":memory:";
    let mut opts = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if !memory {
        // FULL: every commit is on disk before it is acknowledged. With NORMAL, WAL mode may
        // lose the last commits on power loss, and a 2xx must mean durable.
        opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
    }
    if !query.is_empty() && query != "mode=rwc" {
        return Err(StoreError::InvalidUrl {
            url: shown,
            reason: format!("unsupported SQLite URL parameters {query:?}"),
        });
    }
    // An in-memory database exists per connection: keep exactly one, forever.
    let (max, min, idle, lifetime) = if memory {
        (1, 1, None, None)
    } else {
        let (idle, lifetime) = (Duration::from_secs(600), Duration::from_secs(1800));
        (8, 0, Some(idle), Some(lifetime))
    };
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(min)
        .idle_timeout(idle)
        .max_lifetime(lifetime)
        .connect_with(opts)
        .await
        .map_err(unreachable(&shown))?;
    SQLITE_MIGRATIONS
        .run(&pool)
        .await
        .map_err(migration_failed)?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("scanplane.db"), "scanplane.db");
    }
}
