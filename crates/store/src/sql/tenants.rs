//! [`TenantStore`]: tenants, their API tokens and their retention.

use async_trait::async_trait;
use scanplane_core::tenant::Tenant;

use super::{new_id, unique_as_conflict, SqlStore};
use crate::rows::{ms, ts, TenantRow};
use crate::{StoreError, TenantInfo, TenantStore, TokenInfo, TokenOwner, TOKEN_TOUCH_EVERY_MS};
use scanplane_core::Timestamp;

const INSERT_TENANT: &str = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO NOTHING";

const TENANT_BY_NAME: &str = "SELECT id, name, created_at FROM tenants WHERE name = $1";

const TENANT_BY_ID: &str = "SELECT id, name, created_at FROM tenants WHERE id = $1";

const INSERT_TOKEN: &str = "INSERT INTO api_tokens (id, tenant_id, name, token_hash, created_at)
     VALUES ($1, $2, $3, $4, $5)";

const TOKEN_OWNER: &str = "SELECT k.id AS token_id, k.name AS token_name, k.last_used_at,
         t.id, t.name, t.created_at
     FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id
     WHERE k.token_hash = $1";

const TOUCH_TOKEN: &str = "UPDATE api_tokens SET last_used_at = $1
     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)";

const LIST_TOKENS: &str = "SELECT k.id, k.name, t.name AS tenant, k.created_at, k.last_used_at
     FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id
     WHERE ($1 IS NULL OR t.name = $1)
     ORDER BY k.created_at, k.id";

const DELETE_TOKEN: &str = "DELETE FROM api_tokens WHERE id = $1";

const LIST_TENANTS: &str = "SELECT id, name, created_at, retention_days FROM tenants ORDER BY name";

#[derive(sqlx::FromRow)]
struct TokenOwnerRow {
    token_id: String,
    token_name: String,
    last_used_at: Option<i64>,
    #[sqlx(flatten)]
    tenant: TenantRow,
}

#[derive(sqlx::FromRow)]
struct TokenInfoRow {
    id: String,
    name: String,
    tenant: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct TenantInfoRow {
    #[sqlx(flatten)]
    tenant: TenantRow,
    retention_days: Option<i64>,
}

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

    async fn token_owner(&self, token_hash: &str) -> Result<Option<TokenOwner>, StoreError> {
        let row: Option<TokenOwnerRow> = on_pool!(self, |p| {
            sqlx::query_as(TOKEN_OWNER)
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        });
        row.map(|r| {
            Ok(TokenOwner {
                token_id: r.token_id,
                token_name: r.token_name,
                last_used_at: r.last_used_at.map(ts).transpose()?,
                tenant: r.tenant.into_domain()?,
            })
        })
        .transpose()
    }

    async fn touch_token(&self, token_id: &str, now: Timestamp) -> Result<(), StoreError> {
        let now = ms(now);
        in_tx!(self, |tx| {
            sqlx::query(TOUCH_TOKEN)
                .bind(now)
                .bind(token_id)
                .bind(now.saturating_sub(TOKEN_TOUCH_EVERY_MS))
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn list_tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<TokenInfoRow> = on_pool!(self, |p| {
            sqlx::query_as(LIST_TOKENS)
                .bind(tenant)
                .fetch_all(p)
                .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.id,
                    name: r.name,
                    tenant: r.tenant,
                    created_at: ts(r.created_at)?,
                    last_used_at: r.last_used_at.map(ts).transpose()?,
                })
            })
            .collect()
    }

    async fn revoke_token(&self, token_id: &str) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            let n = sqlx::query(DELETE_TOKEN)
                .bind(token_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    async fn list_tenants(&self) -> Result<Vec<TenantInfo>, StoreError> {
        let rows: Vec<TenantInfoRow> =
            on_pool!(self, |p| sqlx::query_as(LIST_TENANTS).fetch_all(p).await?);
        rows.into_iter()
            .map(|r| {
                Ok(TenantInfo {
                    tenant: r.tenant.into_domain()?,
                    retention_days: r
                        .retention_days
                        .map(|d| {
                            u32::try_from(d)
                                .map_err(|_| StoreError::Corrupt(format!("retention_days {d}")))
                        })
                        .transpose()?,
                })
            })
            .collect()
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
