//! Vulnerability reports of stored SBOMs: [`VulnerabilityStore`].
//!
//! Invariants: a report is one run created and completed in one transaction, with its
//! findings and the finding identities folded as `complete_scan` folds them, so a report is
//! either wholly there or not at all, and the dispatcher never sees it queued; the SBOM's
//! `matched_at` and a rematch's cursor and counts move in that same transaction, so a rematch
//! killed halfway resumes after the last SBOM it recorded, doubling nothing.

use async_trait::async_trait;
use scanplane_core::scan::{scope_key, Scan};
use scanplane_core::Timestamp;
use sqlx::QueryBuilder;

use super::advisories::bounded;
use super::findings::{complete_sql, MARK_FIXED, UPSERT_IDENTITIES};
use super::scans::{bind_new_scan, insert_scan_sql};
use super::{new_id, SqlStore};
use crate::rows::{json_list, ms, ScanRow, FINDING_COLUMNS, SCAN_COLUMNS};
use crate::text::{stored_findings, stored_text};
use crate::{AffectedSbom, ReportOutcome, StoreError, VulnerabilityReport, VulnerabilityStore};

/// Findings per insert statement: 12 parameters each, under both backends' limits.
const ROWS_PER_INSERT: usize = 1000;

const START: &str = "UPDATE scans SET status = 'running', admitted_at = $2, started_at = $2,
       reason = 'running: matching the stored SBOM against advisories', updated_at = $2
     WHERE id = $1";

const COUNT_FINDINGS: &str = "UPDATE scans SET findings_count = $1 WHERE id = $2";

/// Identities this run introduced (first seen in it) or reopened: what is new to the SBOM.
const NEW_IN_RUN: &str = "SELECT COUNT(*) FROM finding_identities
     WHERE last_scan = $1 AND (introduced_by = $1 OR status = 'reopened')";

const MARK_MATCHED: &str = "UPDATE sboms SET matched_at = $2 WHERE id = $1";

const ADVANCE_REMATCH: &str = "UPDATE advisory_imports SET rematch_cursor = $2,
       sboms_considered = sboms_considered + 1,
       sboms_rematched = sboms_rematched + $3,
       findings_new = findings_new + $4, findings_fixed = findings_fixed + $5
     WHERE id = $1 AND rematched_at IS NULL";

const SKIP_REMATCH: &str = "UPDATE advisory_imports SET rematch_cursor = $2,
       sboms_considered = sboms_considered + 1
     WHERE id = $1 AND rematched_at IS NULL";

#[async_trait]
impl VulnerabilityStore for SqlStore {
    async fn unmatched_sboms(&self, limit: u32) -> Result<Vec<AffectedSbom>, StoreError> {
        let rows: Vec<(String, String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, tenant_id, digest FROM sboms WHERE matched_at IS NULL
                 ORDER BY created_at, id LIMIT $1",
            )
            .bind(i64::from(limit.clamp(1, 10_000)))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(sbom_id, tenant_id, digest)| AffectedSbom {
                sbom_id,
                tenant_id,
                digest,
            })
            .collect())
    }

    async fn record_vulnerability_report(
        &self,
        report: &VulnerabilityReport,
        rematch_of: Option<&str>,
        now: Timestamp,
    ) -> Result<ReportOutcome, StoreError> {
        let new = &report.scan;
        let insert = insert_scan_sql("");
        let complete = complete_sql();
        let scope = scope_key(
            &new.tenant_id,
            &new.scanner,
            &new.targets,
            &new.scope_options,
        );
        let targets = json_list(&new.targets);
        let (findings, _) = stored_findings(&report.findings);
        let findings = findings.as_ref();
        let now_ms = ms(now);
        let id = new_id();
        in_tx!(self, |tx| {
            let _queued: ScanRow = bind_new_scan!(sqlx::query_as(&insert), &id, new, now)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(START)
                .bind(&id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            let mut inserted = 0u64;
            for chunk in findings.chunks(ROWS_PER_INSERT) {
                let mut qb =
                    QueryBuilder::new(format!("INSERT INTO findings ({FINDING_COLUMNS}) "));
                qb.push_values(chunk, |mut b, f| {
                    b.push_bind(new_id())
                        .push_bind(&new.tenant_id)
                        .push_bind(&id)
                        .push_bind(&new.scanner)
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
                .bind(bounded(inserted))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let done: Option<ScanRow> = sqlx::query_as(&complete)
                .bind(&id)
                .bind(stored_text(&report.reason))
                .bind(now_ms)
                .bind(&targets)
                .bind(&scope)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(done) = done else {
                return Err(StoreError::Corrupt(format!(
                    "vulnerability report {id} could not be completed"
                )));
            };
            sqlx::query(UPSERT_IDENTITIES)
                .bind(&id)
                .bind(&scope)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            let fixed = sqlx::query(MARK_FIXED)
                .bind(&id)
                .bind(now_ms)
                .bind(&new.tenant_id)
                .bind(&scope)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let new_count: i64 = sqlx::query_scalar(NEW_IN_RUN)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
            let new_count = u64::try_from(new_count).unwrap_or(0);
            sqlx::query(MARK_MATCHED)
                .bind(&report.sbom_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            if let Some(import_id) = rematch_of {
                let changed = i64::from(new_count + fixed > 0);
                sqlx::query(ADVANCE_REMATCH)
                    .bind(import_id)
                    .bind(&report.sbom_id)
                    .bind(changed)
                    .bind(bounded(new_count))
                    .bind(bounded(fixed))
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(ReportOutcome {
                scan: done.into_domain()?,
                new: new_count,
                fixed,
            })
        })
    }

    async fn sboms_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AffectedSbom>, StoreError> {
        let rows: Vec<(String, String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, tenant_id, digest FROM sboms WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit.clamp(1, 10_000)))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(sbom_id, tenant_id, digest)| AffectedSbom {
                sbom_id,
                tenant_id,
                digest,
            })
            .collect())
    }

    async fn mark_unmatchable(&self, sbom_id: &str, now: Timestamp) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(MARK_MATCHED)
                .bind(sbom_id)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn skip_rematch_sbom(&self, import_id: &str, sbom_id: &str) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(SKIP_REMATCH)
                .bind(import_id)
                .bind(sbom_id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn pending_rematches(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows: Vec<(String, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, rematch_cursor FROM advisory_imports
                 WHERE finished_at IS NOT NULL AND rematched_at IS NULL
                 ORDER BY started_at, id LIMIT $1",
            )
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    async fn finish_rematch(&self, import_id: &str, now: Timestamp) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(
                "UPDATE advisory_imports SET rematched_at = $2 WHERE id = $1 AND rematched_at IS NULL",
            )
            .bind(import_id)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    async fn latest_report(
        &self,
        tenant_id: &str,
        scanner: &str,
        target: &str,
    ) -> Result<Option<Scan>, StoreError> {
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans
             WHERE tenant_id = $1 AND scanner = $2 AND targets = $3 AND status = 'succeeded'
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let targets = json_list(&[target.to_string()]);
        let row: Option<ScanRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(tenant_id)
                .bind(scanner)
                .bind(&targets)
                .fetch_optional(pool)
                .await?
        });
        row.map(ScanRow::into_domain).transpose()
    }
}
