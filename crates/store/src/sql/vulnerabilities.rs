//! Vulnerability reports of stored SBOMs: [`VulnerabilityStore`].
//!
//! Invariants: a report is one run created and completed in one transaction, with its
//! findings and the finding identities folded as `complete_scan` folds them, so a report is
//! either wholly there or not at all, and the dispatcher never sees it queued; the SBOM's
//! `matched_at` and a rematch's cursor and counts move in that same transaction (one per
//! batch of SBOMs), so a rematch killed halfway resumes after the last batch it recorded,
//! doubling nothing.

use async_trait::async_trait;
use scanplane_core::finding::Finding;
use scanplane_core::scan::{scope_key, Scan};
use scanplane_core::Timestamp;
use sqlx::QueryBuilder;

use super::advisories::{bounded, keys_clause, IDS_PER_QUERY, KEYS_PER_QUERY};
use super::findings::{complete_sql, MARK_FIXED, UPSERT_IDENTITIES};
use super::scans::{bind_new_scan, insert_scan_sql};
use super::{new_id, SqlStore};
use crate::rows::{json_list, ms, PackageRow, ScanRow, FINDING_COLUMNS, SCAN_COLUMNS};
use crate::text::{stored_findings, stored_text};
use crate::{
    AffectedSbom, PackageHit, RematchStep, ReportOutcome, StoreError, VulnerabilityReport,
    VulnerabilityStore,
};

/// Findings per insert statement: 12 parameters each, under both backends' limits.
const ROWS_PER_INSERT: usize = 1000;

const START: &str = "UPDATE scans SET status = 'running', admitted_at = $2, started_at = $2,
       reason = 'running: matching the stored SBOM against advisories', updated_at = $2
     WHERE id = $1";

const COUNT_FINDINGS: &str = "UPDATE scans SET findings_count = $1 WHERE id = $2";

/// Identities this run introduced (first seen in it) or reopened: what is new to the SBOM.
/// Through the scope's index (`$2`): `last_scan` alone has none, and a scan of every
/// identity per report made a first match of N SBOMs cost O(N²).
const NEW_IN_RUN: &str = "SELECT COUNT(*) FROM finding_identities
     WHERE scope_key = $2 AND status IN ('open', 'reopened') AND last_scan = $1
       AND (introduced_by = $1 OR status = 'reopened')";

const MARK_MATCHED: &str = "UPDATE sboms SET matched_at = $2 WHERE id = $1";

const ADVANCE_REMATCH: &str = "UPDATE advisory_imports SET rematch_cursor = $2,
       sboms_considered = sboms_considered + $3,
       sboms_rematched = sboms_rematched + $4,
       findings_new = findings_new + $5, findings_fixed = findings_fixed + $6
     WHERE id = $1 AND rematched_at IS NULL";

/// A live finding of a scope.
#[derive(sqlx::FromRow)]
struct LiveRow {
    scope_key: String,
    fingerprint: String,
    target: String,
    rule_id: String,
    severity: String,
    title: String,
    location: String,
    detail: String,
}

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

    async fn record_vulnerability_reports(
        &self,
        reports: &[VulnerabilityReport],
        step: Option<&RematchStep>,
        now: Timestamp,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let insert = insert_scan_sql("");
        let complete = complete_sql();
        let now_ms = ms(now);
        in_tx!(self, |tx| {
            let mut outcomes = Vec::with_capacity(reports.len());
            for report in reports {
                let new = &report.scan;
                let scope = scope_key(
                    &new.tenant_id,
                    &new.scanner,
                    &new.targets,
                    &new.scope_options,
                );
                let targets = json_list(&new.targets);
                let (findings, _) = stored_findings(&report.findings);
                let findings = findings.as_ref();
                let id = new_id();
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
                    .bind(&scope)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let new_count: i64 = sqlx::query_scalar(NEW_IN_RUN)
                    .bind(&id)
                    .bind(&scope)
                    .fetch_one(&mut *tx)
                    .await?;
                let new_count = u64::try_from(new_count).unwrap_or(0);
                sqlx::query(MARK_MATCHED)
                    .bind(&report.sbom_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                outcomes.push(ReportOutcome {
                    scan: done.into_domain()?,
                    new: new_count,
                    fixed,
                });
            }
            if let Some(step) = step {
                let changed = outcomes.iter().filter(|o| o.new + o.fixed > 0).count() as u64;
                let new_total: u64 = outcomes.iter().map(|o| o.new).sum();
                let fixed_total: u64 = outcomes.iter().map(|o| o.fixed).sum();
                sqlx::query(ADVANCE_REMATCH)
                    .bind(&step.import_id)
                    .bind(&step.cursor)
                    .bind(bounded(step.considered))
                    .bind(bounded(changed))
                    .bind(bounded(new_total))
                    .bind(bounded(fixed_total))
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(outcomes)
        })
    }

    async fn sbom_packages(
        &self,
        sbom_ids: &[String],
        keys: Option<&[(String, String)]>,
    ) -> Result<Vec<PackageHit>, StoreError> {
        let mut out: Vec<PackageHit> = Vec::new();
        for ids in sbom_ids.chunks(IDS_PER_QUERY) {
            let id_list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
            let key_chunks: Vec<&[(String, String)]> = match keys {
                Some(keys) => keys.chunks(KEYS_PER_QUERY).collect(),
                None => vec![&[]],
            };
            for key_chunk in key_chunks {
                let key_filter = match keys {
                    Some(_) => format!(
                        " AND {}",
                        keys_clause(
                            "p.match_ecosystem, p.match_name",
                            key_chunk.len(),
                            ids.len() + 1
                        )
                    ),
                    None => String::new(),
                };
                let sql = format!(
                    "SELECT p.sbom_id, p.seq, s.digest, p.name, p.version, p.purl, p.ecosystem,
                       p.distro, p.source_name, p.source_version, p.layer_diff_id
                     FROM sbom_packages p JOIN sboms s ON s.id = p.sbom_id
                     WHERE p.sbom_id IN ({}){key_filter}",
                    id_list.join(", ")
                );
                let rows: Vec<PackageRow> = on_pool!(self, |pool| {
                    let mut q = sqlx::query_as(&sql);
                    for id in ids {
                        q = q.bind(id);
                    }
                    for (ecosystem, name) in key_chunk {
                        q = q.bind(ecosystem).bind(name);
                    }
                    q.fetch_all(pool).await?
                });
                out.extend(rows.into_iter().map(PackageRow::into_domain));
            }
        }
        out.sort_by(|a, b| (&a.sbom_id, a.seq).cmp(&(&b.sbom_id, b.seq)));
        out.dedup_by(|a, b| a.sbom_id == b.sbom_id && a.seq == b.seq);
        Ok(out)
    }

    async fn live_findings(
        &self,
        scope_keys: &[String],
        locations: Option<&[String]>,
    ) -> Result<Vec<(String, Finding)>, StoreError> {
        let mut out = Vec::new();
        for chunk in scope_keys.chunks(IDS_PER_QUERY) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let location_chunks: Vec<&[String]> = match locations {
                Some(l) => l.chunks(IDS_PER_QUERY).collect(),
                None => vec![&[]],
            };
            for at in location_chunks {
                let location_filter = match locations {
                    Some(_) => {
                        let places: Vec<String> = (chunk.len() + 1..=chunk.len() + at.len())
                            .map(|i| format!("${i}"))
                            .collect();
                        format!(" AND location IN ({})", places.join(", "))
                    }
                    None => String::new(),
                };
                let sql = format!(
                    "SELECT scope_key, fingerprint, target, rule_id, severity, title, location,
                       detail
                     FROM finding_identities
                     WHERE scope_key IN ({}) AND status IN ('open', 'reopened'){location_filter}",
                    list.join(", ")
                );
                let rows: Vec<LiveRow> = on_pool!(self, |pool| {
                    let mut q = sqlx::query_as(&sql);
                    for scope in chunk {
                        q = q.bind(scope);
                    }
                    for location in at {
                        q = q.bind(location);
                    }
                    q.fetch_all(pool).await?
                });
                for r in rows {
                    let severity = r.severity.parse().map_err(|_| {
                        StoreError::Corrupt(format!(
                            "finding {}: severity {:?}",
                            r.fingerprint, r.severity
                        ))
                    })?;
                    out.push((
                        r.scope_key,
                        Finding {
                            fingerprint: r.fingerprint,
                            target: r.target,
                            rule_id: r.rule_id,
                            severity,
                            title: r.title,
                            location: r.location,
                            detail: r.detail,
                        },
                    ));
                }
            }
        }
        Ok(out)
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
