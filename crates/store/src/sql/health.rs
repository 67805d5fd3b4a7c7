//! [`HealthStore`]: whether the database answers and is fully migrated.

use async_trait::async_trait;

use super::SqlStore;
use crate::{Backend, HealthStore, StoreError};

#[async_trait]
impl HealthStore for SqlStore {
    fn backend(&self) -> Backend {
        SqlStore::backend(self)
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let applied: i64 = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(p)
                .await?
        });
        let expected = self.migrator().iter().count() as i64;
        if applied < expected {
            return Err(StoreError::Migration(format!(
                "{applied} of {expected} migrations applied"
            )));
        }
        Ok(())
    }
}
