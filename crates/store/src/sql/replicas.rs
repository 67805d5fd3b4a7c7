//! The `replicas` table and attempt ownership (the lease half of [`DispatchStore`], and
//! [`ReplicaStore`]): leases renewed by compare-and-set, and takeovers that move each
//! orphaned attempt to exactly one claimant.
//!
//! Takeover and renewal serialize on the lost replica's row: the claim marks the row lost in
//! the same `UPDATE` that finds it expired, and a renewal only succeeds on a row not marked.
//! On PostgreSQL both are row-locking `UPDATE`s re-checked on the newest row version; on
//! SQLite write transactions are serialized (`BEGIN IMMEDIATE`).

use async_trait::async_trait;
use scanplane_core::replica::Replica;
use scanplane_core::scan::Scan;
use scanplane_core::Timestamp;

use super::scans::scan_rows;
use super::SqlStore;
use crate::rows::{ms, opt_ts, ts, ScanRow, SCAN_COLUMNS};
use crate::text::stored_text;
use crate::{ReplicaStore, StoreError};

const REPLICA_COLUMNS: &str =
    "id, hostname, executor, started_at, heartbeat_at, lease_until, stopped_at, stop_reason";

/// How long rows of stopped replicas are kept for the admin listing, in milliseconds.
const KEEP_STOPPED_MS: i64 = 7 * 24 * 3600 * 1000;

const REGISTER: &str = "INSERT INTO replicas
       (id, hostname, executor, started_at, heartbeat_at, lease_until, stopped_at, stop_reason)
     VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)
     ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname,
       executor = excluded.executor, heartbeat_at = excluded.heartbeat_at,
       lease_until = excluded.lease_until, stopped_at = NULL, stop_reason = NULL";

/// Rows of replicas stopped long ago that own nothing any more.
const FORGET_OLD: &str = "DELETE FROM replicas WHERE stopped_at < $1
       AND id NOT IN (SELECT owner FROM scans
                      WHERE owner IS NOT NULL AND status IN ('dispatched', 'running'))";

const RENEW: &str = "UPDATE replicas SET heartbeat_at = $1, lease_until = $2
     WHERE id = $3 AND stopped_at IS NULL";

const RELEASE: &str = "UPDATE replicas
     SET heartbeat_at = $1, lease_until = $1 - 1, stopped_at = COALESCE(stopped_at, $1),
         stop_reason = COALESCE(stop_reason, $2)
     WHERE id = $3";

/// Marks every other replica whose lease expired and that still owns attempts as lost and
/// returns it. Runs first in a claim, so a concurrent renewal of the same row either lands
/// before (the row is no longer expired, nothing is claimed) or fails (the row is marked).
const MARK_LOST: &str = "UPDATE replicas
     SET stopped_at = COALESCE(stopped_at, $1), stop_reason = COALESCE(stop_reason, 'lease expired')
     WHERE id <> $2 AND lease_until < $1
       AND (stopped_at IS NULL OR id IN (SELECT owner FROM scans
            WHERE owner IS NOT NULL AND status IN ('dispatched', 'running')))
     RETURNING id";

/// Owners of live attempts that have no replica row at all (a row deleted by hand).
const UNKNOWN_OWNERS: &str = "SELECT DISTINCT owner FROM scans
     WHERE owner IS NOT NULL AND owner <> $1 AND status IN ('dispatched', 'running')
       AND owner NOT IN (SELECT id FROM replicas)";

fn claim_from_sql() -> String {
    // The owner condition is on the outer statement so that PostgreSQL re-checks it on the
    // newest row version: a row another claimant took meanwhile is skipped.
    format!(
        "UPDATE scans SET owner = $1, updated_at = $2
         WHERE owner = $3 AND status IN ('dispatched', 'running')
           AND id IN (SELECT id FROM scans WHERE owner = $3
                      AND status IN ('dispatched', 'running') LIMIT $4)
         RETURNING {SCAN_COLUMNS}"
    )
}

fn claim_unowned_sql() -> String {
    format!(
        "UPDATE scans SET owner = $1, updated_at = $2
         WHERE owner IS NULL AND status IN ('dispatched', 'running')
           AND id IN (SELECT id FROM scans WHERE owner IS NULL
                      AND status IN ('dispatched', 'running') LIMIT $3)
         RETURNING {SCAN_COLUMNS}"
    )
}

const SET_EXITED: &str = "UPDATE scans SET exited_at = COALESCE(exited_at, $1), updated_at = $1
     WHERE id = $2 AND executor_ref = $3 AND status IN ('dispatched', 'running')";

#[derive(Debug, sqlx::FromRow)]
struct ReplicaRow {
    id: String,
    hostname: String,
    executor: String,
    started_at: i64,
    heartbeat_at: i64,
    lease_until: i64,
    stopped_at: Option<i64>,
    stop_reason: Option<String>,
}

impl ReplicaRow {
    fn into_domain(self) -> Result<Replica, StoreError> {
        Ok(Replica {
            started_at: ts(self.started_at)?,
            heartbeat_at: ts(self.heartbeat_at)?,
            lease_until: ts(self.lease_until)?,
            stopped_at: opt_ts(self.stopped_at)?,
            id: self.id,
            hostname: self.hostname,
            executor: self.executor,
            stop_reason: self.stop_reason,
        })
    }
}

impl SqlStore {
    pub(super) async fn register(&self, r: &Replica) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(FORGET_OLD)
                .bind(ms(r.heartbeat_at).saturating_sub(KEEP_STOPPED_MS))
                .execute(&mut *tx)
                .await?;
            sqlx::query(REGISTER)
                .bind(&r.id)
                .bind(stored_text(&r.hostname))
                .bind(&r.executor)
                .bind(ms(r.started_at))
                .bind(ms(r.heartbeat_at))
                .bind(ms(r.lease_until))
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    pub(super) async fn renew(
        &self,
        id: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            let n = sqlx::query(RENEW)
                .bind(ms(now))
                .bind(ms(lease_until))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(n == 1)
        })
    }

    pub(super) async fn release(
        &self,
        id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(RELEASE)
                .bind(ms(now))
                .bind(stored_text(reason))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    pub(super) async fn claim(
        &self,
        me: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(Option<String>, Scan)>, StoreError> {
        let from_sql = claim_from_sql();
        let unowned_sql = claim_unowned_sql();
        let limit = i64::from(limit.max(1));
        in_tx!(self, |tx| {
            let mut lost: Vec<String> = sqlx::query_scalar(MARK_LOST)
                .bind(ms(now))
                .bind(me)
                .fetch_all(&mut *tx)
                .await?;
            let unknown: Vec<String> = sqlx::query_scalar(UNKNOWN_OWNERS)
                .bind(me)
                .fetch_all(&mut *tx)
                .await?;
            lost.extend(unknown);
            let mut claimed = Vec::new();
            for from in lost {
                let rows: Vec<ScanRow> = sqlx::query_as(&from_sql)
                    .bind(me)
                    .bind(ms(now))
                    .bind(&from)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                for scan in scan_rows(rows)? {
                    claimed.push((Some(from.clone()), scan));
                }
            }
            let rows: Vec<ScanRow> = sqlx::query_as(&unowned_sql)
                .bind(me)
                .bind(ms(now))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            for scan in scan_rows(rows)? {
                claimed.push((None, scan));
            }
            Ok(claimed)
        })
    }

    pub(super) async fn owned(&self, me: &str) -> Result<Vec<Scan>, StoreError> {
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans
             WHERE owner = $1 AND status IN ('dispatched', 'running')"
        );
        let rows: Vec<ScanRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(me).fetch_all(p).await?
        });
        scan_rows(rows)
    }

    pub(super) async fn exited(
        &self,
        id: &str,
        executor_ref: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            let n = sqlx::query(SET_EXITED)
                .bind(ms(now))
                .bind(id)
                .bind(executor_ref)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(n == 1)
        })
    }
}

#[async_trait]
impl ReplicaStore for SqlStore {
    async fn list_replicas(&self, limit: u32) -> Result<Vec<Replica>, StoreError> {
        let sql = format!(
            "SELECT {REPLICA_COLUMNS} FROM replicas
             ORDER BY CASE WHEN stopped_at IS NULL THEN 0 ELSE 1 END, heartbeat_at DESC, id
             LIMIT $1"
        );
        let rows: Vec<ReplicaRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(i64::from(limit.max(1)))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(ReplicaRow::into_domain).collect()
    }
}
