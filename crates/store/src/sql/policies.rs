//! The `policies` table: [`PolicyStore`]. A tenant's set is replaced in one transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use scanplane_core::Timestamp;

use super::SqlStore;
use crate::rows::{ms, ts};
use crate::{PolicyStore, StoreError, StoredPolicy};

type PolicyRow = (String, String, i64, bool, bool, String, i64, i64);

fn into_domain(r: PolicyRow) -> Result<StoredPolicy, StoreError> {
    let (tenant_id, name, position, enabled, declared, document, created_at, updated_at) = r;
    Ok(StoredPolicy {
        tenant_id,
        name,
        position: u32::try_from(position)
            .map_err(|_| StoreError::Corrupt(format!("policy position {position}")))?,
        enabled,
        declared,
        document,
        created_at: ts(created_at)?,
        updated_at: ts(updated_at)?,
    })
}

const COLUMNS: &str =
    "tenant_id, name, position, enabled, declared, document, created_at, updated_at";

#[async_trait]
impl PolicyStore for SqlStore {
    async fn replace_policies(
        &self,
        tenant_id: &str,
        policies: &[StoredPolicy],
        now: Timestamp,
    ) -> Result<Vec<StoredPolicy>, StoreError> {
        let select =
            format!("SELECT {COLUMNS} FROM policies WHERE tenant_id = $1 AND NOT declared");
        let insert =
            format!("INSERT INTO policies ({COLUMNS}) VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7)");
        let now_ms = ms(now);
        let stored = in_tx!(self, |tx| {
            let before: Vec<PolicyRow> = sqlx::query_as(&select)
                .bind(tenant_id)
                .fetch_all(&mut *tx)
                .await?;
            let created: HashMap<String, (i64, String, bool, i64)> = before
                .into_iter()
                .map(|(_, name, _, enabled, _, doc, created, updated)| {
                    (name, (created, doc, enabled, updated))
                })
                .collect();
            sqlx::query("DELETE FROM policies WHERE tenant_id = $1 AND NOT declared")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            let mut out = Vec::with_capacity(policies.len());
            for (i, p) in policies.iter().enumerate() {
                // An unchanged policy keeps both times; a changed one keeps its creation.
                let (created_at, updated_at) = match created.get(&p.name) {
                    Some((c, doc, enabled, u)) if *doc == p.document && *enabled == p.enabled => {
                        (*c, *u)
                    }
                    Some((c, ..)) => (*c, now_ms),
                    None => (now_ms, now_ms),
                };
                let position = i64::try_from(i).unwrap_or(i64::MAX);
                sqlx::query(&insert)
                    .bind(tenant_id)
                    .bind(&p.name)
                    .bind(position)
                    .bind(p.enabled)
                    .bind(&p.document)
                    .bind(created_at)
                    .bind(updated_at)
                    .execute(&mut *tx)
                    .await?;
                out.push((
                    tenant_id.to_string(),
                    p.name.clone(),
                    position,
                    p.enabled,
                    false,
                    p.document.clone(),
                    created_at,
                    updated_at,
                ));
            }
            Ok(out)
        })?;
        stored.into_iter().map(into_domain).collect()
    }

    async fn list_policies(&self, tenant: Option<&str>) -> Result<Vec<StoredPolicy>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM policies WHERE ($1 IS NULL OR tenant_id = $1)
             ORDER BY tenant_id, position, name"
        );
        let rows: Vec<PolicyRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(tenant).fetch_all(p).await?
        });
        rows.into_iter().map(into_domain).collect()
    }

    async fn upsert_declared_policy(
        &self,
        p: &StoredPolicy,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now_ms = ms(now);
        in_tx!(self, |tx| {
            let old: Option<(bool, bool, String)> = sqlx::query_as(
                "SELECT declared, enabled, document FROM policies WHERE tenant_id = $1 AND name = $2",
            )
            .bind(&p.tenant_id)
            .bind(&p.name)
            .fetch_optional(&mut *tx)
            .await?;
            match old {
                Some((false, ..)) => Err(StoreError::Conflict(format!(
                    "a policy named {:?} was stored by PUT /api/v1/policies",
                    p.name
                ))),
                Some((true, enabled, doc)) if enabled == p.enabled && doc == p.document => {
                    Ok(false)
                }
                Some(_) => {
                    sqlx::query(
                        "UPDATE policies SET enabled = $3, document = $4, updated_at = $5
                         WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(&p.tenant_id)
                    .bind(&p.name)
                    .bind(p.enabled)
                    .bind(&p.document)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    Ok(true)
                }
                None => {
                    // Declared policies list after the API's, in name order among themselves.
                    sqlx::query(&format!(
                        "INSERT INTO policies ({COLUMNS}) VALUES ($1, $2, $3, $4, TRUE, $5, $6, $6)"
                    ))
                    .bind(&p.tenant_id)
                    .bind(&p.name)
                    .bind(i64::from(u32::MAX))
                    .bind(p.enabled)
                    .bind(&p.document)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    Ok(true)
                }
            }
        })
    }

    async fn delete_declared_policy(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let n = in_tx!(self, |tx| {
            Ok(
                sqlx::query("DELETE FROM policies WHERE tenant_id = $1 AND name = $2 AND declared")
                    .bind(tenant_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
            )
        })?;
        Ok(n > 0)
    }
}
