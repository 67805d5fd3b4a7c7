//! SQLite write transactions that never hand a connection back to the pool inside a
//! transaction.
//!
//! sqlx's own `Transaction` counts its depth per connection and decrements it only when
//! `COMMIT` or `ROLLBACK` succeeds. When SQLite fails a commit (`SQLITE_FULL` on a full
//! disk) it rolls the transaction back itself, so the `ROLLBACK` sqlx then sends fails too,
//! the count stays at one, and every later `BEGIN` on that pooled connection is refused with
//! "attempted to call begin_with at non-zero transaction depth" until it is recycled. This
//! guard issues `BEGIN IMMEDIATE`, `COMMIT` and `ROLLBACK` itself and closes the connection
//! whenever it cannot be sure the transaction ended: a failed `COMMIT` or `ROLLBACK`, or a
//! future dropped mid-transaction. SQLite rolls back whatever a closing connection left open,
//! and the pool opens a fresh connection in its place.
//!
//! An in-memory database (`:memory:`) lives in its only connection, so there a write
//! interrupted mid-transaction discards the database: it is for throwaway use only.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::StoreError;

pub(super) struct SqliteWrite {
    conn: PoolConnection<Sqlite>,
    /// A transaction may be open: set before `BEGIN` is sent, cleared once `COMMIT` or
    /// `ROLLBACK` succeeded (or `BEGIN` failed). While set, dropping closes the connection.
    open: bool,
}

impl SqliteWrite {
    pub(super) async fn begin(pool: &SqlitePool) -> Result<SqliteWrite, sqlx::Error> {
        let conn = pool.acquire().await?;
        let mut tx = SqliteWrite { conn, open: true };
        match sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx.conn).await {
            Ok(_) => Ok(tx),
            Err(e) => {
                // No transaction started; the connection is as it was.
                tx.open = false;
                Err(e)
            }
        }
    }

    /// Commits when `out` is `Ok`, rolls back otherwise. A failed commit is the call's error:
    /// nothing of the transaction was stored.
    pub(super) async fn finish<T>(mut self, out: Result<T, StoreError>) -> Result<T, StoreError> {
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match sqlx::query(end).execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                out
            }
            // `open` stays set: the connection is closed when `self` drops.
            Err(e) => match out {
                Ok(_) => Err(e.into()),
                Err(first) => {
                    tracing::warn!(error = %e, "ROLLBACK failed; closing the connection");
                    Err(first)
                }
            },
        }
    }
}

impl Deref for SqliteWrite {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for SqliteWrite {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for SqliteWrite {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}
