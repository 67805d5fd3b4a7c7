//! [`HealthStore`]: whether the database answers, is fully migrated, and takes writes.

use async_trait::async_trait;

use super::SqlStore;
use crate::rows::ms;
use crate::{Backend, HealthStore, StoreError, TerminalCount};

const APPLIED_MIGRATIONS: &str = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";

const TERMINAL_COUNTS: &str = "SELECT t.name AS tenant, c.scanner, c.status, c.n AS count
     FROM scan_counts c JOIN tenants t ON t.id = c.tenant_id
     ORDER BY t.name, c.scanner, c.status";

const HEARTBEAT: &str = "UPDATE store_health SET checked_at = $1 WHERE id = 1";

#[async_trait]
impl HealthStore for SqlStore {
    fn backend(&self) -> Backend {
        SqlStore::backend(self)
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let applied: i64 = on_pool!(self, |p| {
            sqlx::query_scalar(APPLIED_MIGRATIONS).fetch_one(p).await?
        });
        let expected = self.migrator().iter().count() as i64;
        if applied < expected {
            return Err(StoreError::Migration(format!(
                "{applied} of {expected} migrations applied"
            )));
        }
        Ok(())
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let now = ms(chrono::Utc::now());
        in_tx!(self, |tx| {
            let n = sqlx::query(HEARTBEAT)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::Corrupt("store_health has no row".into()));
            }
            Ok(())
        })
    }

    async fn terminal_counts(&self) -> Result<Vec<TerminalCount>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(TERMINAL_COUNTS).fetch_all(p).await?
        }))
    }
}
