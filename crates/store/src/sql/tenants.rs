//! [`TenantStore`]: tenants, their API tokens and their retention.

use async_trait::async_trait;
use scanplane_core::tenant::Tenant;

use super::{new_id, unique_as_conflict, SqlStore};
use crate::rows::{ms, TenantRow};
use crate::{StoreError, TenantStore};

const INSERT_TENANT: &str = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO NOTHING";

const TENANT_BY_NAME: &str = "SELECT id, name, created_at FROM tenants WHERE name = $1";

const TENANT_BY_ID: &str = "SELECT id, name, created_at FROM tenants WHERE id = $1";

const INSERT_TOKEN: &str = "INSERT INTO api_tokens (id, tenant_id, name, token_hash, created_at)
     VALUES ($1, $2, $3, $4, $5)";

const TENANT_FOR_TOKEN: &str = "SELECT t.id, t.name, t.created_at
     FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id
     WHERE k.token_hash = $1";

const SET_RETENTION: &str = "UPDATE tenants SET retention_days = $1 WHERE name = $2";

impl SqlStore {
    /// A tenant by id (the dispatcher labels units of work with the tenant's name).
    pub(super) async fn tenant_by_id(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row: Option<TenantRow> = on_pool!(self, |p| {
            sqlx::query_as(TENANT_BY_ID)
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(TenantRow::into_domain).transpose()
    }
}

#[async_trait]
impl TenantStore for SqlStore {
    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        // Most calls find the tenant: they need no write, so they work on a read-only store.
        let existing: Option<TenantRow> = on_pool!(self, |p| {
            sqlx::query_as(TENANT_BY_NAME)
                .bind(name)
                .fetch_optional(p)
                .await?
        });
        if let Some(row) = existing {
            return row.into_domain();
        }
        let now = ms(chrono::Utc::now());
        let id = new_id();
        let row: TenantRow = in_tx!(self, |tx| {
            sqlx::query(INSERT_TENANT)
                .bind(&id)
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query_as(TENANT_BY_NAME)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            Ok(row)
        })?;
        row.into_domain()
    }

    async fn create_token(
        &self,
        tenant_id: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let now = ms(chrono::Utc::now());
        in_tx!(self, |tx| {
            sqlx::query(INSERT_TOKEN)
                .bind(&id)
                .bind(tenant_id)
                .bind(name)
                .bind(token_hash)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict(|| "token already exists".into()))?;
            Ok(id)
        })
    }

    async fn tenant_for_token(&self, token_hash: &str) -> Result<Option<Tenant>, StoreError> {
        let row: Option<TenantRow> = on_pool!(self, |p| {
            sqlx::query_as(TENANT_FOR_TOKEN)
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        });
        row.map(TenantRow::into_domain).transpose()
    }

    async fn set_retention(&self, tenant_name: &str, days: Option<u32>) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            let n = sqlx::query(SET_RETENTION)
                .bind(days.map(i64::from))
                .bind(tenant_name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }
}
