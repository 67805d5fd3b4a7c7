//! The `findings` and `finding_identities` tables: [`FindingStore`]. Findings are unique per
//! `(scan_id, fingerprint)`, which makes report retries idempotent; identities (one per
//! tenant and fingerprint) change only in `complete_scan`, in the transaction that ends a scan
//! `succeeded`, so a failed or partial run never marks anything fixed.

use async_trait::async_trait;
use scanplane_core::finding::{Finding, Severity};
use scanplane_core::identity::Triage;
use scanplane_core::scan::{IllegalTransition, Scan, ScanStatus};
use scanplane_core::Timestamp;
use sqlx::{PgPool, QueryBuilder};

use super::{new_id, status_list, Pool, SqlStore};
use crate::rows::{
    json_list, ms, opt_ms, ts, FindingRow, IdentityRow, ScanRow, FINDING_COLUMNS, FINDING_FROM,
    FINDING_SELECT, IDENTITY_COLUMNS, SCAN_COLUMNS,
};
use crate::text::{like_contains, stored_findings, stored_text};
use crate::{
    DiffList, DiffSummary, DispatchStore, FindingFilter, FindingIdentity, FindingStore,
    IdentityFilter, ScanChange, StoreError, StoredFinding,
};

/// Rows per multi-row INSERT on SQLite: 12 columns each stays far below the limit on bound
/// parameters.
const FINDING_BATCH: usize = 1000;

/// Rows per `UNNEST` INSERT on PostgreSQL, which binds one array per column.
const FINDING_BATCH_PG: usize = FINDING_BATCH * 5;

/// Findings in one completed scan above which PostgreSQL statistics are refreshed.
const BULK_ANALYZE_THRESHOLD: u64 = 50_000;

/// PostgreSQL ingest: one statement per batch binding each column as an array, which parses
/// and plans once instead of once per row's twelve parameters.
const INSERT_FINDINGS_PG: &str = "INSERT INTO findings (id, tenant_id, scan_id, scanner,
       target, rule_id, severity, title, location, detail, fingerprint, created_at)
     SELECT u.id, $2, $3, $4,
       u.target, u.rule_id, u.severity, u.title, u.location, u.detail, u.fingerprint, $12
     FROM UNNEST($1::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                 $10::text[], $11::text[])
       AS u(id, target, rule_id, severity, title, location, detail, fingerprint)
     ON CONFLICT (scan_id, fingerprint) DO NOTHING";

const COUNT_FINDINGS: &str = "UPDATE scans SET findings_count = findings_count + $1 WHERE id = $2";

/// Folds a completed scan's findings into its tenant's identities: new ones open, fixed
/// ones reopened, the latest attributes kept. `$1` scan, `$2` scope, `$3` now.
pub(super) const UPSERT_IDENTITIES: &str =
    "INSERT INTO finding_identities (id, tenant_id, fingerprint,
       scope_key, scanner, target, rule_id, severity, title, location, detail, status,
       first_seen, last_seen, introduced_by, last_scan, triage)
     SELECT f.id, f.tenant_id, f.fingerprint,
       $2, f.scanner, f.target, f.rule_id, f.severity, f.title, f.location, f.detail, 'open',
       $3, $3, f.scan_id, f.scan_id, 'none'
     FROM findings f WHERE f.scan_id = $1
     ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET
       last_seen = excluded.last_seen, last_scan = excluded.last_scan,
       scope_key = excluded.scope_key, target = excluded.target, rule_id = excluded.rule_id,
       severity = excluded.severity, title = excluded.title, location = excluded.location,
       detail = excluded.detail,
       status = CASE WHEN finding_identities.status = 'fixed' THEN 'reopened'
                     ELSE finding_identities.status END,
       fixed_by = CASE WHEN finding_identities.status = 'fixed' THEN NULL
                       ELSE finding_identities.fixed_by END,
       fixed_at = CASE WHEN finding_identities.status = 'fixed' THEN NULL
                       ELSE finding_identities.fixed_at END";

/// Marks fixed every live identity of the scope that the completed scan `$1` did not
/// report. `$2` now, `$3` scope. No tenant condition: the scope key is derived from the
/// tenant (and so selects one tenant's identities), and with one both planners could
/// choose the index of the tenant's live identities over the scope's and visit every live
/// identity of the tenant on every report, measured on PostgreSQL as 700 pages a call.
pub(super) const MARK_FIXED: &str = "UPDATE finding_identities
     SET status = 'fixed', fixed_by = $1, fixed_at = $2
     WHERE scope_key = $3 AND status IN ('open', 'reopened') AND last_scan <> $1";

/// The previous succeeded run of a scope.
const PREVIOUS_RUN: &str = "SELECT id, created_at FROM scans
     WHERE scope_key = $1 AND status = 'succeeded' AND created_at < $2 AND id <> $3
     ORDER BY created_at DESC, id DESC LIMIT 1";

/// Counts of the scan `$1` against its previous run `$2` (NULL when there is none): all its
/// findings, those the previous run also reported, and those it did not whose identity (of
/// tenant `$3`) was first seen before the previous run was created (`$4`).
const DIFF_COUNTS: &str = "SELECT COUNT(*),
       COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM findings p
                                      WHERE p.scan_id = $2 AND p.fingerprint = f.fingerprint)
                         THEN 1 ELSE 0 END), 0),
       COALESCE(SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM findings p
                                          WHERE p.scan_id = $2 AND p.fingerprint = f.fingerprint)
                          AND EXISTS (SELECT 1 FROM finding_identities i
                                      WHERE i.tenant_id = $3 AND i.fingerprint = f.fingerprint
                                        AND i.first_seen < $4)
                         THEN 1 ELSE 0 END), 0)
     FROM findings f WHERE f.scan_id = $1";

/// Findings of the previous run `$1` that the scan `$2` did not report.
const FIXED_COUNT: &str = "SELECT COUNT(*) FROM findings f WHERE f.scan_id = $1
       AND NOT EXISTS (SELECT 1 FROM findings c
                       WHERE c.scan_id = $2 AND c.fingerprint = f.fingerprint)";

/// A page of [`FIXED_COUNT`]'s findings after the id `$2`.
fn fixed_page_sql() -> String {
    format!(
        "SELECT {FINDING_SELECT} FROM {FINDING_FROM} WHERE f.scan_id = $1 AND f.id > $2
           AND NOT EXISTS (SELECT 1 FROM findings c
                           WHERE c.scan_id = $3 AND c.fingerprint = f.fingerprint)
         ORDER BY f.id LIMIT $4"
    )
}

/// A page of the findings of scan `$1` after the id `$2` that the previous run `$3` did not
/// report, whose identity of tenant `$4` was (`EXISTS`: reopened) or was not (`NOT
/// EXISTS`: new) first seen before the previous run's creation `$5`. Without a previous
/// run (`$3`, `$5` NULL) every finding is new.
fn appeared_page_sql(identity: &str) -> String {
    format!(
        "SELECT {FINDING_SELECT} FROM {FINDING_FROM} WHERE f.scan_id = $1 AND f.id > $2
           AND NOT EXISTS (SELECT 1 FROM findings p
                           WHERE p.scan_id = $3 AND p.fingerprint = f.fingerprint)
           AND {identity} (SELECT 1 FROM finding_identities i
                           WHERE i.tenant_id = $4 AND i.fingerprint = f.fingerprint
                             AND i.first_seen < $5)
         ORDER BY f.id LIMIT $6"
    )
}

/// Ends a scan `succeeded` from any state that may precede it, recording its scope.
pub(super) fn complete_sql() -> String {
    format!(
        "UPDATE scans SET status = 'succeeded', reason = $2, updated_at = $3, finished_at = $3,
           report_token_hash = NULL, targets_scanned = COALESCE($4, targets_scanned),
           scope_key = COALESCE(scope_key, $5)
         WHERE id = $1 AND status IN ({})
         RETURNING {SCAN_COLUMNS}",
        status_list(&ScanStatus::sources_of(ScanStatus::Succeeded))
    )
}

/// `$11` is a [`like_contains`] pattern of the title; `$12` the cursor, compared with `cmp`.
fn list_identities_sql(cmp: &str, order: &str) -> String {
    format!(
        "SELECT {IDENTITY_COLUMNS} FROM finding_identities
         WHERE ($1 IS NULL OR tenant_id = $1)
           AND ($2 IS NULL OR severity = $2) AND ($3 IS NULL OR status = $3)
           AND ($4 IS NULL OR scanner = $4) AND ($5 IS NULL OR target = $5)
           AND ($6 IS NULL OR rule_id = $6)
           AND ($7 IS NULL OR first_seen >= $7) AND ($8 IS NULL OR first_seen < $8)
           AND ($9 IS NULL OR last_seen >= $9) AND ($10 IS NULL OR last_seen < $10)
           AND ($11 IS NULL OR LOWER(title) LIKE LOWER($11) ESCAPE '\\')
           AND ($12 IS NULL OR id {cmp} $12) AND ($14 IS NULL OR triage = $14)
         ORDER BY id {order} LIMIT $13"
    )
}

async fn insert_findings_pg(
    pool: &PgPool,
    tenant_id: &str,
    scan_id: &str,
    scanner: &str,
    findings: &[Finding],
    now_ms: i64,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut inserted = 0u64;
    for chunk in findings.chunks(FINDING_BATCH_PG) {
        let ids: Vec<String> = chunk.iter().map(|_| new_id()).collect();
        let column = |get: fn(&Finding) -> &str| chunk.iter().map(get).collect::<Vec<&str>>();
        inserted += sqlx::query(INSERT_FINDINGS_PG)
            .bind(&ids)
            .bind(tenant_id)
            .bind(scan_id)
            .bind(scanner)
            .bind(column(|f| f.target.as_str()))
            .bind(column(|f| f.rule_id.as_str()))
            .bind(column(|f| f.severity.as_str()))
            .bind(column(|f| f.title.as_str()))
            .bind(column(|f| f.location.as_str()))
            .bind(column(|f| f.detail.as_str()))
            .bind(column(|f| f.fingerprint.as_str()))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    sqlx::query(COUNT_FINDINGS)
        .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
        .bind(scan_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(inserted)
}

#[async_trait]
impl FindingStore for SqlStore {
    async fn insert_findings(
        &self,
        tenant_id: &str,
        scan_id: &str,
        scanner: &str,
        findings: &[Finding],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if findings.is_empty() {
            return Ok(0);
        }
        let (findings, replaced) = stored_findings(findings);
        if replaced > 0 {
            tracing::warn!(scan_run_id = %scan_id, replaced, "NUL characters in findings replaced");
        }
        let findings = findings.as_ref();
        let now_ms = ms(now);
        if let Pool::Postgres(pool) = &self.pool {
            return insert_findings_pg(pool, tenant_id, scan_id, scanner, findings, now_ms).await;
        }
        in_tx!(self, |tx| {
            let mut inserted = 0u64;
            for chunk in findings.chunks(FINDING_BATCH) {
                let mut qb =
                    QueryBuilder::new(format!("INSERT INTO findings ({FINDING_COLUMNS}) "));
                qb.push_values(chunk, |mut b, f| {
                    b.push_bind(new_id())
                        .push_bind(tenant_id)
                        .push_bind(scan_id)
                        .push_bind(scanner)
                        .push_bind(&f.target)
                        .push_bind(&f.rule_id)
                        .push_bind(f.severity.as_str())
                        .push_bind(&f.title)
                        .push_bind(&f.location)
                        .push_bind(&f.detail)
                        .push_bind(&f.fingerprint)
                        .push_bind(now_ms);
                });
                qb.push(" ON CONFLICT (scan_id, fingerprint) DO NOTHING");
                inserted += qb.build().execute(&mut *tx).await?.rows_affected();
            }
            sqlx::query(COUNT_FINDINGS)
                .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
                .bind(scan_id)
                .execute(&mut *tx)
                .await?;
            Ok(inserted)
        })
    }

    async fn severity_counts(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
    ) -> Result<Vec<(Severity, u64)>, StoreError> {
        // One pass over the scan's findings by the (scan_id, id) index.
        let sql = "SELECT severity, COUNT(*) FROM findings
                   WHERE scan_id = $1 AND ($2 IS NULL OR tenant_id = $2)
                   GROUP BY severity";
        let rows: Vec<(String, i64)> = on_pool!(self, |p| {
            sqlx::query_as(sql)
                .bind(scan_id)
                .bind(tenant)
                .fetch_all(p)
                .await?
        });
        rows.into_iter()
            .map(|(sev, n)| {
                let sev = sev
                    .parse::<Severity>()
                    .map_err(|_| StoreError::Corrupt(format!("finding severity {sev:?}")))?;
                Ok((sev, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn list_findings(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
        f: &FindingFilter,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let sql = format!(
            "SELECT {FINDING_SELECT} FROM {FINDING_FROM}
             WHERE f.scan_id = $1 AND ($2 IS NULL OR f.tenant_id = $2)
               AND ($3 IS NULL OR f.severity = $3) AND f.id > $4
             ORDER BY f.id LIMIT $5"
        );
        let rows: Vec<FindingRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(scan_id)
                .bind(tenant)
                .bind(f.severity.map(|s| s.as_str()))
                // Not `$4 IS NULL OR id > $4`: with the OR, neither database uses the
                // (scan_id, id) index range, and paging a large scan becomes quadratic.
                // Every id sorts after the empty string.
                .bind(f.after.as_deref().unwrap_or(""))
                .bind(i64::from(f.limit.max(1)))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(FindingRow::into_domain).collect()
    }

    async fn complete_scan(
        &self,
        id: &str,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError> {
        let Some(current) = self.scan(None, id).await? else {
            return Err(StoreError::NotFound);
        };
        // The key the scan was created with (tenant, scanner, targets, scope options); rows
        // from before keys were stored at creation get the key without options.
        let stored: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT scope_key FROM scans WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?
                .flatten()
        });
        let scope = stored.unwrap_or_else(|| current.scope_key());
        let update = complete_sql();
        let targets = change.targets_scanned.as_ref().map(|t| json_list(t));
        let done = in_tx!(self, |tx| {
            let row: Option<ScanRow> = sqlx::query_as(&update)
                .bind(id)
                .bind(stored_text(&change.reason))
                .bind(ms(now))
                .bind(&targets)
                .bind(&scope)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::Illegal(IllegalTransition {
                    from: current.status,
                    to: ScanStatus::Succeeded,
                }));
            };
            sqlx::query(UPSERT_IDENTITIES)
                .bind(id)
                .bind(&scope)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query(MARK_FIXED)
                .bind(id)
                .bind(ms(now))
                .bind(&scope)
                .execute(&mut *tx)
                .await?;
            row.into_domain()
        })?;
        // PostgreSQL plans from table statistics, which a bulk load leaves stale until
        // autovacuum catches up; the docs' advice is to ANALYZE after one.
        if let Pool::Postgres(p) = &self.pool {
            if done.findings_count >= BULK_ANALYZE_THRESHOLD {
                if let Err(e) = sqlx::query("ANALYZE findings, finding_identities")
                    .execute(p)
                    .await
                {
                    tracing::warn!(error = %e, "ANALYZE after a large scan failed");
                }
            }
        }
        Ok(done)
    }

    async fn list_identities(
        &self,
        tenant: Option<&str>,
        f: &IdentityFilter,
    ) -> Result<Vec<FindingIdentity>, StoreError> {
        let sql = if f.oldest_first {
            list_identities_sql(">", "ASC")
        } else {
            list_identities_sql("<", "DESC")
        };
        let rows: Vec<IdentityRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(tenant)
                .bind(f.severity.map(|s| s.as_str()))
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.scanner.as_deref())
                .bind(f.target.as_deref())
                .bind(f.rule_id.as_deref())
                .bind(opt_ms(f.first_seen_after))
                .bind(opt_ms(f.first_seen_before))
                .bind(opt_ms(f.last_seen_after))
                .bind(opt_ms(f.last_seen_before))
                .bind(f.text.as_deref().map(like_contains))
                .bind(f.after.as_deref())
                .bind(i64::from(f.limit.max(1)))
                .bind(f.triage.map(|t| t.as_str()))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(IdentityRow::into_domain).collect()
    }

    async fn identity(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<FindingIdentity>, StoreError> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM finding_identities
             WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
        );
        let row: Option<IdentityRow> = self.by_id(&sql, id, tenant).await?;
        row.map(IdentityRow::into_domain).transpose()
    }

    async fn set_triage(
        &self,
        tenant: Option<&str>,
        id: &str,
        triage: Triage,
        comment: Option<&str>,
        by: &str,
        now: Timestamp,
    ) -> Result<FindingIdentity, StoreError> {
        let sql = format!(
            "UPDATE finding_identities
             SET triage = $3, triage_comment = $4, triaged_by = $5, triaged_at = $6
             WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)
             RETURNING {IDENTITY_COLUMNS}"
        );
        let row: Option<IdentityRow> = in_tx!(self, |tx| {
            let row = sqlx::query_as(&sql)
                .bind(id)
                .bind(tenant)
                .bind(triage.as_str())
                .bind(comment)
                .bind(by)
                .bind(ms(now))
                .fetch_optional(&mut *tx)
                .await?;
            Ok(row)
        })?;
        row.ok_or(StoreError::NotFound)?.into_domain()
    }

    async fn diff_summary(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
    ) -> Result<DiffSummary, StoreError> {
        let Some(scan) = self.scan(tenant, scan_id).await? else {
            return Err(StoreError::NotFound);
        };
        // The scope of the scan; only a succeeded scan is compared with anything (one that
        // did not finish covered nothing, so it fixes nothing).
        let scope: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT scope_key FROM scans WHERE id = $1")
                .bind(scan_id)
                .fetch_optional(p)
                .await?
                .flatten()
        })
        .filter(|_| scan.status == ScanStatus::Succeeded);
        let previous: Option<(String, i64)> = match &scope {
            None => None,
            Some(scope) => on_pool!(self, |p| {
                sqlx::query_as(PREVIOUS_RUN)
                    .bind(scope)
                    .bind(ms(scan.created_at))
                    .bind(scan_id)
                    .fetch_optional(p)
                    .await?
            }),
        };
        let prev_id = previous.as_ref().map(|(id, _)| id.as_str());
        let prev_created = previous.as_ref().map(|(_, at)| *at);
        let (total, unchanged, reopened): (i64, i64, i64) = on_pool!(self, |p| {
            sqlx::query_as(DIFF_COUNTS)
                .bind(scan_id)
                .bind(prev_id)
                .bind(&scan.tenant_id)
                .bind(prev_created)
                .fetch_one(p)
                .await?
        });
        let fixed: i64 = match prev_id {
            None => 0,
            Some(prev) => on_pool!(self, |p| {
                sqlx::query_scalar(FIXED_COUNT)
                    .bind(prev)
                    .bind(scan_id)
                    .fetch_one(p)
                    .await?
            }),
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(DiffSummary {
            scan_id: scan.id,
            tenant_id: scan.tenant_id,
            previous_scan_id: previous.as_ref().map(|(id, _)| id.clone()),
            previous_created_at: prev_created.map(ts).transpose()?,
            new: count(total - unchanged - reopened),
            fixed: count(fixed),
            reopened: count(reopened),
            unchanged: count(unchanged),
        })
    }

    async fn diff_page(
        &self,
        diff: &DiffSummary,
        list: DiffList,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let prev = diff.previous_scan_id.as_deref();
        let prev_created = diff.previous_created_at.map(ms);
        // Every id sorts after the empty string: the cursor is compared without an `OR`,
        // so each page stays one range of the `(scan_id, id)` index.
        let after = after.unwrap_or("");
        let limit = i64::from(limit.max(1));
        let rows: Vec<FindingRow> = match (list, prev) {
            (DiffList::Fixed | DiffList::Reopened, None) => Vec::new(),
            (DiffList::Fixed, Some(prev)) => {
                let sql = fixed_page_sql();
                on_pool!(self, |p| {
                    sqlx::query_as(&sql)
                        .bind(prev)
                        .bind(after)
                        .bind(&diff.scan_id)
                        .bind(limit)
                        .fetch_all(p)
                        .await?
                })
            }
            (DiffList::New | DiffList::Reopened, _) => {
                let sql = if list == DiffList::New {
                    appeared_page_sql("NOT EXISTS")
                } else {
                    appeared_page_sql("EXISTS")
                };
                on_pool!(self, |p| {
                    sqlx::query_as(&sql)
                        .bind(&diff.scan_id)
                        .bind(after)
                        .bind(prev)
                        .bind(&diff.tenant_id)
                        .bind(prev_created)
                        .bind(limit)
                        .fetch_all(p)
                        .await?
                })
            }
        };
        rows.into_iter().map(FindingRow::into_domain).collect()
    }
}
