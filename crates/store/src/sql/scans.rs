//! The `scans` table: [`ScanStore`] (creating, listing, report tokens) and
//! [`DispatchStore`] (reads by id and state, compare-and-set transitions, units of work;
//! its admission round is in `admission.rs`).

use async_trait::async_trait;
use scanplane_core::admission::{Decision, Limits, SlotUsage};
use scanplane_core::ratelimit::RateLimitPolicy;
use scanplane_core::replica::Replica;
use scanplane_core::scan::{IllegalTransition, Scan, ScanStatus, UnknownStatus, MAX_REJECTIONS};
use scanplane_core::tenant::Tenant;
use scanplane_core::Timestamp;

use super::admission::{usage_from, UsageRow, USAGE_SQL};
use super::{new_id, status_list, unique_as_conflict, SqlStore};
use crate::rows::{json_list, ms, opt_ms, ScanRow, SCAN_COLUMNS};
use crate::text::{stored_opt, stored_text};
use crate::{DispatchStore, NewScan, ReportChunk, ScanChange, ScanFilter, ScanStore, StoreError};

/// The INSERT of a new queued scan; `conflict` is an optional `ON CONFLICT` clause. The
/// parameters are bound by [`bind_new_scan!`].
pub(super) fn insert_scan_sql(conflict: &str) -> String {
    format!(
        "INSERT INTO scans (id, tenant_id, project_id, schedule_id, fire_time, trigger, priority,
           scanner, provider, targets, billing, options, on_maintenance,
           status, reason, attempts, created_at, updated_at, targets_scanned, findings_count,
           scope_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
           'queued', 'queued: waiting for admission', 0, $14, $14, '[]', 0, $15)
         {conflict}
         RETURNING {SCAN_COLUMNS}"
    )
}

/// Binds a [`NewScan`] to the parameters of [`insert_scan_sql`].
macro_rules! bind_new_scan {
    ($query:expr, $id:expr, $scan:expr, $now:expr) => {
        $query
            .bind($id)
            .bind(&$scan.tenant_id)
            .bind(&$scan.project_id)
            .bind(&$scan.schedule_id)
            .bind($crate::rows::opt_ms($scan.fire_time))
            .bind($scan.trigger.as_str())
            .bind(i64::from($scan.trigger.priority()))
            .bind(&$scan.scanner)
            .bind(&$scan.provider)
            .bind($crate::rows::json_list(&$scan.targets))
            .bind($scan.billing)
            .bind(&$scan.options)
            .bind($scan.on_maintenance.as_str())
            .bind($crate::rows::ms($now))
            .bind(scanplane_core::scan::scope_key(
                &$scan.tenant_id,
                &$scan.scanner,
                &$scan.targets,
                &$scan.scope_options,
            ))
    };
}
pub(super) use bind_new_scan;

pub(super) fn scan_rows(rows: Vec<ScanRow>) -> Result<Vec<Scan>, StoreError> {
    rows.into_iter().map(ScanRow::into_domain).collect()
}

/// Newest first; `$8` is the cursor.
fn list_scans_sql() -> String {
    format!(
        "SELECT {SCAN_COLUMNS} FROM scans
         WHERE ($1 IS NULL OR tenant_id = $1)
           AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR scanner = $3)
           AND ($4 IS NULL OR schedule_id = $4) AND ($5 IS NULL OR trigger = $5)
           AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7)
           AND ($8 IS NULL OR id < $8)
         ORDER BY id DESC LIMIT $9"
    )
}

/// The compare-and-set of [`DispatchStore::transition`]: only from a state that may
/// precede `to`. A terminal state ends the report token's life and stamps `finished_at`.
fn transition_sql(to: ScanStatus) -> String {
    format!(
        "UPDATE scans SET status = $2, reason = $3, updated_at = $4,
           error = COALESCE($5, error),
           executor_ref = CASE WHEN $10 = 1 OR $2 = 'queued' THEN $6
                               ELSE COALESCE($6, executor_ref) END,
           owner = CASE WHEN $10 = 1 THEN $11 WHEN $2 = 'queued' THEN NULL ELSE owner END,
           launched_at = CASE WHEN $10 = 1 THEN $4 WHEN $2 = 'queued' THEN NULL
                              ELSE launched_at END,
           exited_at = CASE WHEN $10 = 1 OR $2 = 'queued' THEN NULL ELSE exited_at END,
           lost_attempts = lost_attempts + $12,
           report_token_hash = CASE WHEN $7 THEN NULL ELSE COALESCE($8, report_token_hash) END,
           targets_scanned = COALESCE($9, targets_scanned), attempts = attempts + $10,
           admitted_at = CASE WHEN $2 = 'admitted' THEN $4 ELSE admitted_at END,
           started_at = CASE WHEN $2 = 'running' THEN $4 ELSE started_at END,
           finished_at = CASE WHEN $7 THEN $4 ELSE finished_at END,
           retry_at = CASE WHEN $2 = 'queued' THEN $13 ELSE NULL END
         WHERE id = $1 AND status IN ({})
         RETURNING {SCAN_COLUMNS}",
        status_list(&ScanStatus::sources_of(to))
    )
}

const SET_EXECUTOR_REF: &str = "UPDATE scans SET executor_ref = $1, updated_at = $2
     WHERE id = $3 AND status = $4";

const SET_ERROR: &str = "UPDATE scans SET error = $1, updated_at = $2 WHERE id = $3";
const SELECT_REJECTIONS: &str = "SELECT rejections FROM scans WHERE id = $1";
const ADD_REJECTIONS: &str = "UPDATE scans
    SET findings_rejected = findings_rejected + $1, rejections = $2, updated_at = $3
    WHERE id = $4";

/// Marks a report chunk counted; no row affected means it was counted before.
const COUNT_CHUNK: &str = "INSERT INTO report_chunks (scan_id, attempt, chunk) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING";

const COUNT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM scans GROUP BY status";

#[async_trait]
impl ScanStore for SqlStore {
    async fn create_scan(&self, scan: NewScan, now: Timestamp) -> Result<Scan, StoreError> {
        self.create_scan_with_id(&new_id(), scan, now).await
    }

    async fn create_scan_with_id(
        &self,
        id: &str,
        scan: NewScan,
        now: Timestamp,
    ) -> Result<Scan, StoreError> {
        let sql = insert_scan_sql("");
        let row: ScanRow = in_tx!(self, |tx| {
            let row = bind_new_scan!(sqlx::query_as(&sql), id, scan, now)
                .fetch_one(&mut *tx)
                .await
                .map_err(unique_as_conflict(|| {
                    "a scan with this id, or for this schedule tick, already exists".into()
                }))?;
            Ok(row)
        })?;
        row.into_domain()
    }

    async fn list_scans(
        &self,
        tenant: Option<&str>,
        f: &ScanFilter,
    ) -> Result<Vec<Scan>, StoreError> {
        let sql = list_scans_sql();
        let rows: Vec<ScanRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(tenant)
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.scanner.as_deref())
                .bind(f.schedule_id.as_deref())
                .bind(f.trigger.map(|t| t.as_str()))
                .bind(opt_ms(f.created_after))
                .bind(opt_ms(f.created_before))
                .bind(f.after.as_deref())
                .bind(i64::from(f.limit.max(1)))
                .fetch_all(p)
                .await?
        });
        scan_rows(rows)
    }

    async fn set_error(&self, id: &str, error: &str, now: Timestamp) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(SET_ERROR)
                .bind(stored_text(error))
                .bind(ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn record_rejections(
        &self,
        id: &str,
        count: u64,
        reasons: &[String],
        chunk: Option<ReportChunk>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if count == 0 && reasons.is_empty() {
            return Ok(());
        }
        let added = i64::try_from(count).unwrap_or(i64::MAX);
        in_tx!(self, |tx| {
            if let Some(c) = chunk {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT id FROM scans WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                let first_time = sqlx::query(COUNT_CHUNK)
                    .bind(id)
                    .bind(i64::from(c.attempt))
                    .bind(i64::try_from(c.chunk).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                if !first_time {
                    return Ok(());
                }
            }
            // The count is added in SQL; the reasons are merged here. Two reports racing
            // may keep a different first five, never more than five.
            let stored: Option<String> = sqlx::query_scalar(SELECT_REJECTIONS)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(stored) = stored else {
                return Err(StoreError::NotFound);
            };
            let mut kept: Vec<String> = serde_json::from_str(&stored).unwrap_or_default();
            for r in reasons {
                if kept.len() >= MAX_REJECTIONS {
                    break;
                }
                kept.push(stored_text(r).into_owned());
            }
            sqlx::query(ADD_REJECTIONS)
                .bind(added)
                .bind(json_list(&kept))
                .bind(ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn scan_for_report_token(&self, token_hash: &str) -> Result<Option<Scan>, StoreError> {
        let sql = format!("SELECT {SCAN_COLUMNS} FROM scans WHERE report_token_hash = $1");
        let row: Option<ScanRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        });
        row.map(ScanRow::into_domain).transpose()
    }

    async fn slot_usage(&self) -> Result<SlotUsage, StoreError> {
        let rows: Vec<UsageRow> =
            on_pool!(self, |p| { sqlx::query_as(USAGE_SQL).fetch_all(p).await? });
        Ok(usage_from(rows))
    }
}

#[async_trait]
impl DispatchStore for SqlStore {
    async fn admission_round(
        &self,
        limits: &Limits,
        policies: &[RateLimitPolicy],
        max_candidates: u32,
        now: Timestamp,
    ) -> Result<Vec<(String, Decision)>, StoreError> {
        self.admit(limits, policies, max_candidates, now).await
    }

    async fn scan(&self, tenant: Option<&str>, id: &str) -> Result<Option<Scan>, StoreError> {
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
        );
        let row: Option<ScanRow> = self.by_id(&sql, id, tenant).await?;
        row.map(ScanRow::into_domain).transpose()
    }

    async fn scans_with_status(
        &self,
        statuses: &[ScanStatus],
        limit: u32,
    ) -> Result<Vec<Scan>, StoreError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans WHERE status IN ({})
             ORDER BY priority, created_at LIMIT $1",
            status_list(statuses)
        );
        let rows: Vec<ScanRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?
        });
        scan_rows(rows)
    }

    async fn transition(
        &self,
        id: &str,
        to: ScanStatus,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError> {
        let sql = transition_sql(to);
        let row: Option<ScanRow> = in_tx!(self, |tx| {
            let row = sqlx::query_as(&sql)
                .bind(id)
                .bind(to.as_str())
                .bind(stored_text(&change.reason))
                .bind(ms(now))
                .bind(stored_opt(change.error.as_deref()))
                .bind(change.executor_ref.as_deref())
                .bind(to.is_terminal())
                .bind(change.report_token_hash.as_deref())
                .bind(change.targets_scanned.as_ref().map(|t| json_list(t)))
                .bind(i64::from(change.new_attempt))
                .bind(change.owner.as_deref())
                .bind(i64::from(change.lost))
                .bind(change.retry_at.map(ms))
                .fetch_optional(&mut *tx)
                .await?;
            Ok(row)
        })?;
        match row {
            Some(r) => r.into_domain(),
            None => match self.scan(None, id).await? {
                None => Err(StoreError::NotFound),
                Some(current) => Err(StoreError::Illegal(IllegalTransition {
                    from: current.status,
                    to,
                })),
            },
        }
    }

    async fn set_executor_ref(
        &self,
        id: &str,
        status: ScanStatus,
        executor_ref: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            let n = sqlx::query(SET_EXECUTOR_REF)
                .bind(executor_ref)
                .bind(ms(now))
                .bind(id)
                .bind(status.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "scan {id} is no longer {status}"
                )));
            }
            Ok(())
        })
    }

    async fn count_by_status(&self) -> Result<Vec<(ScanStatus, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |p| {
            sqlx::query_as(COUNT_BY_STATUS).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(s, n)| {
                let status: ScanStatus = s
                    .parse()
                    .map_err(|e: UnknownStatus| StoreError::Corrupt(e.to_string()))?;
                Ok((status, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        self.tenant_by_id(id).await
    }

    async fn register_replica(&self, replica: &Replica) -> Result<(), StoreError> {
        self.register(replica).await
    }

    async fn renew_lease(
        &self,
        id: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.renew(id, lease_until, now).await
    }

    async fn release_lease(
        &self,
        id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.release(id, reason, now).await
    }

    async fn claim_orphaned(
        &self,
        me: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(Option<String>, Scan)>, StoreError> {
        self.claim(me, now, limit).await
    }

    async fn owned_attempts(&self, me: &str) -> Result<Vec<Scan>, StoreError> {
        self.owned(me).await
    }

    async fn set_exited(
        &self,
        id: &str,
        executor_ref: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.exited(id, executor_ref, now).await
    }
}
