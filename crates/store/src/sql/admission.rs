//! The admission round of [`DispatchStore`](crate::DispatchStore): the queue, the slots in
//! use, the maintenance windows and the rate buckets read in one transaction, decided by
//! [`admission::decide`], and the decisions written back. Rounds are serialized across
//! replicas: an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.

use std::collections::{BTreeMap, HashMap};

use scanplane_core::admission::{self, Candidate, Decision, Limits, SlotUsage};
use scanplane_core::maintenance::MaintenanceWindow;
use scanplane_core::ratelimit::{Bucket, RateLimitPolicy};
use scanplane_core::scan::UnknownTrigger;
use scanplane_core::Timestamp;

use super::SqlStore;
use crate::rows::{ms, ts, WindowRow, WINDOW_COLUMNS};
use crate::{Backend, StoreError};

/// Advisory lock key serializing admission rounds across `serve` replicas on PostgreSQL.
const ADMISSION_LOCK: i64 = 0x0053_4341_4e41_444d; // "SCANADM"

/// Slots in use per tenant and scanner: a slot is a scan in a state that holds one.
pub(super) const USAGE_SQL: &str = "SELECT tenant_id, scanner, COUNT(*) AS n FROM scans
     WHERE status IN ('admitted', 'dispatched', 'running')
     GROUP BY tenant_id, scanner";

/// The queue in admission order.
const CANDIDATES: &str = "SELECT s.id, s.tenant_id, t.name AS tenant_name, s.scanner,
       s.provider, s.targets, s.trigger, s.created_at, s.on_maintenance, s.reason
     FROM scans s JOIN tenants t ON t.id = s.tenant_id
     WHERE s.status = 'queued' AND (s.retry_at IS NULL OR s.retry_at <= $2)
     ORDER BY s.priority, s.created_at LIMIT $1";

const BUCKETS: &str = "SELECT provider, tokens, updated_at FROM rate_buckets";

const ADMIT: &str = "UPDATE scans
     SET status = 'admitted', reason = 'admitted: starting', admitted_at = $1, updated_at = $1
     WHERE id = $2 AND status = 'queued'";

const SKIP: &str = "UPDATE scans
     SET status = 'skipped', reason = $1, finished_at = $2, updated_at = $2
     WHERE id = $3 AND status = 'queued'";

const WAIT: &str = "UPDATE scans SET reason = $1, updated_at = $2
     WHERE id = $3 AND status = 'queued'";

/// A queued scan whose stored row cannot be read ends here instead of failing every round.
const FAIL_UNREADABLE: &str = "UPDATE scans
     SET status = 'failed', reason = $1, error = $1, finished_at = $2, updated_at = $2
     WHERE id = $3 AND status = 'queued'";

const SAVE_BUCKET: &str = "INSERT INTO rate_buckets (provider, tokens, updated_at)
     VALUES ($1, $2, $3)
     ON CONFLICT (provider)
     DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at";

#[derive(Debug, sqlx::FromRow)]
struct CandidateRow {
    id: String,
    tenant_id: String,
    tenant_name: String,
    scanner: String,
    provider: Option<String>,
    targets: String,
    trigger: String,
    created_at: i64,
    on_maintenance: String,
    reason: String,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct UsageRow {
    tenant_id: String,
    scanner: String,
    n: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct BucketRow {
    provider: String,
    tokens: f64,
    updated_at: i64,
}

pub(super) fn usage_from(rows: Vec<UsageRow>) -> SlotUsage {
    let mut u = SlotUsage::default();
    for r in rows {
        let n = u32::try_from(r.n).unwrap_or(u32::MAX);
        u.global += n;
        *u.per_tenant.entry(r.tenant_id).or_default() += n;
        *u.per_scanner.entry(r.scanner).or_default() += n;
    }
    u
}

/// A queued scan as admission sees it, with the wait reason it currently shows.
fn candidate_from(r: CandidateRow) -> Result<(Candidate, String), StoreError> {
    Ok((
        Candidate {
            targets: serde_json::from_str(&r.targets)
                .map_err(|e| StoreError::Corrupt(format!("scan targets: {e}")))?,
            trigger: r
                .trigger
                .parse()
                .map_err(|e: UnknownTrigger| StoreError::Corrupt(e.to_string()))?,
            created_at: ts(r.created_at)?,
            on_maintenance: r.on_maintenance.parse().map_err(StoreError::Corrupt)?,
            scan_id: r.id,
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name,
            scanner: r.scanner,
            provider: r.provider,
        },
        r.reason,
    ))
}

fn buckets_from(rows: Vec<BucketRow>) -> Result<BTreeMap<String, Bucket>, StoreError> {
    let mut buckets = BTreeMap::new();
    for b in rows {
        let bucket = Bucket {
            tokens: b.tokens,
            updated_at: ts(b.updated_at)?,
        };
        buckets.insert(b.provider, bucket);
    }
    Ok(buckets)
}

/// Maintenance windows whose rows could not be read, by whom they may cover.
#[derive(Debug, Default)]
struct UnreadableWindows {
    /// An admin window may cover every tenant.
    any_tenant: Option<String>,
    by_tenant: HashMap<String, String>,
}

impl UnreadableWindows {
    fn add(&mut self, window_id: String, tenant_id: String, admin: bool) {
        if admin {
            self.any_tenant.get_or_insert(window_id);
        } else {
            self.by_tenant.entry(tenant_id).or_insert(window_id);
        }
    }

    /// The unreadable window that may cover a scan of this tenant.
    fn covering(&self, tenant_id: &str) -> Option<&str> {
        self.any_tenant
            .as_deref()
            .or_else(|| self.by_tenant.get(tenant_id).map(String::as_str))
    }
}

impl SqlStore {
    /// One admission round in one write transaction.
    pub(super) async fn admit(
        &self,
        limits: &Limits,
        policies: &[RateLimitPolicy],
        max_candidates: u32,
        now: Timestamp,
    ) -> Result<Vec<(String, Decision)>, StoreError> {
        let windows_sql = format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows");
        let is_pg = self.backend() == Backend::Postgres;
        in_tx!(self, |tx| {
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(ADMISSION_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let candidate_rows: Vec<CandidateRow> = sqlx::query_as(CANDIDATES)
                .bind(i64::from(max_candidates))
                .bind(ms(now))
                .fetch_all(&mut *tx)
                .await?;
            let usage_rows: Vec<UsageRow> = sqlx::query_as(USAGE_SQL).fetch_all(&mut *tx).await?;
            let window_rows: Vec<WindowRow> =
                sqlx::query_as(&windows_sql).fetch_all(&mut *tx).await?;
            let bucket_rows: Vec<BucketRow> = sqlx::query_as(BUCKETS).fetch_all(&mut *tx).await?;

            // A poisoned row must not stop admission for everyone: an unreadable scan fails
            // with the reason, and an unreadable window holds the scans it may cover (its
            // tenant's, or every tenant's for an admin window) rather than letting them run
            // through a maintenance window nobody can read.
            let mut unreadable_windows = UnreadableWindows::default();
            let mut windows: Vec<MaintenanceWindow> = Vec::with_capacity(window_rows.len());
            for w in window_rows {
                let (id, tenant, admin) = (w.id.clone(), w.tenant_id.clone(), w.admin);
                match w.into_domain() {
                    Ok(w) => windows.push(w),
                    Err(e) => {
                        tracing::error!(window_id = %id, error = %e, "maintenance window is unreadable; holding the scans it may cover");
                        unreadable_windows.add(id, tenant, admin);
                    }
                }
            }
            let mut candidates = Vec::with_capacity(candidate_rows.len());
            let mut reasons: HashMap<String, String> = HashMap::new();
            let mut held: Vec<(String, Decision)> = Vec::new();
            for r in candidate_rows {
                let id = r.id.clone();
                match candidate_from(r) {
                    Ok((c, reason)) => {
                        if let Some(window_id) = unreadable_windows.covering(&c.tenant_id) {
                            let wait = format!(
                                "queued: maintenance window {window_id} is unreadable; an administrator must fix or delete it"
                            );
                            if reason != wait {
                                sqlx::query(WAIT)
                                    .bind(&wait)
                                    .bind(ms(now))
                                    .bind(&c.scan_id)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            held.push((c.scan_id, Decision::Wait(wait)));
                            continue;
                        }
                        reasons.insert(c.scan_id.clone(), reason);
                        candidates.push(c);
                    }
                    Err(e) => {
                        tracing::error!(scan_run_id = %id, error = %e, "queued scan is unreadable; failing it");
                        let reason = format!("failed: the stored scan is unreadable: {e}");
                        sqlx::query(FAIL_UNREADABLE)
                            .bind(&reason)
                            .bind(ms(now))
                            .bind(&id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            let buckets = buckets_from(bucket_rows)?;
            let usage = usage_from(usage_rows);
            let round = admission::decide(
                &candidates,
                &usage,
                limits,
                &windows,
                policies,
                &buckets,
                now,
            );

            for (id, decision) in &round.decisions {
                match decision {
                    Decision::Admit => {
                        sqlx::query(ADMIT)
                            .bind(ms(now))
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Decision::Skip(reason) => {
                        sqlx::query(SKIP)
                            .bind(reason)
                            .bind(ms(now))
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    // A scan still waiting for the same reason is not rewritten.
                    Decision::Wait(reason) if reasons.get(id) != Some(reason) => {
                        sqlx::query(WAIT)
                            .bind(reason)
                            .bind(ms(now))
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Decision::Wait(_) => {}
                }
            }
            for (provider, bucket) in &round.buckets {
                if buckets.get(provider) != Some(bucket) {
                    sqlx::query(SAVE_BUCKET)
                        .bind(provider)
                        .bind(bucket.tokens)
                        .bind(ms(bucket.updated_at))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let mut decisions = round.decisions;
            decisions.extend(held);
            Ok(decisions)
        })
    }
}
