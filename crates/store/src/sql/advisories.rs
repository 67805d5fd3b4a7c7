//! Vulnerability advisories and their imports: [`AdvisoryStore`].
//!
//! Invariants: an advisory is one row per OSV id, replaced only when its document's SHA-256
//! changes (so re-importing the same feed changes nothing and records nothing as changed);
//! its keys and aliases change in the same transaction as its row; every key an import
//! changed (the advisory's keys before and after) is recorded once per import, which is what
//! bounds a rematch to the SBOMs that can be affected.

use async_trait::async_trait;
use scanplane_core::Timestamp;
use sha2::{Digest, Sha256};

use super::registries::{gunzip, gzip};
use super::{new_id, SqlStore};
use crate::rows::{json_list, ms, opt_ts, ts};
use crate::text::stored_text;
use crate::{
    AdvisoryImport, AdvisoryStore, AffectedSbom, FeedState, ImportCounts, NewAdvisory,
    RematchCounts, StoreError, StoredAdvisory,
};

/// Keys per query when a list of keys is matched: two parameters each, far below SQLite's
/// limit of 32,766.
pub(super) const KEYS_PER_QUERY: usize = 500;
/// Ids per `IN (...)` list.
pub(super) const IDS_PER_QUERY: usize = 500;
/// Most rejection reasons an import keeps.
const MAX_REJECTIONS: usize = 20;
/// Longest list read in one call.
const MAX_LIMIT: u32 = 10_000;

const INSERT_IMPORT: &str =
    "INSERT INTO advisory_imports (id, source, started_at) VALUES ($1, $2, $3)";

const EXISTING: &str = "SELECT sha256, withdrawn FROM advisories WHERE id = $1";

const OLD_KEYS: &str = "SELECT ecosystem, name FROM advisory_keys WHERE advisory_id = $1";

const UPSERT_ADVISORY: &str = "INSERT INTO advisories (id, modified, withdrawn, aliases,
       document, sha256, import_id, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (id) DO UPDATE SET modified = excluded.modified,
       withdrawn = excluded.withdrawn, aliases = excluded.aliases, document = excluded.document,
       sha256 = excluded.sha256, import_id = excluded.import_id,
       updated_at = excluded.updated_at";

const DELETE_KEYS: &str = "DELETE FROM advisory_keys WHERE advisory_id = $1";
const DELETE_ALIASES: &str = "DELETE FROM advisory_aliases WHERE advisory_id = $1";
const INSERT_KEY: &str = "INSERT INTO advisory_keys (advisory_id, ecosystem, name)
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const INSERT_ALIAS: &str = "INSERT INTO advisory_aliases (alias, advisory_id)
     VALUES ($1, $2) ON CONFLICT DO NOTHING";
const INSERT_IMPORT_KEY: &str = "INSERT INTO advisory_import_keys (import_id, ecosystem, name)
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

const ADD_COUNTS: &str = "UPDATE advisory_imports SET records = records + $2,
       added = added + $3, modified = modified + $4, withdrawn = withdrawn + $5,
       unchanged = unchanged + $6
     WHERE id = $1 AND finished_at IS NULL";

const FINISH_IMPORT: &str = "UPDATE advisory_imports SET finished_at = $2, rejected = $3,
       rejections = $4 WHERE id = $1";

const IMPORT_COLUMNS: &str = "i.id, i.source, i.started_at, i.finished_at, i.records, i.added,
       i.modified, i.withdrawn, i.unchanged, i.rejected, i.rejections,
       (SELECT COUNT(*) FROM advisory_import_keys k WHERE k.import_id = i.id) AS changed_keys,
       i.sboms_considered, i.sboms_rematched, i.findings_new, i.findings_fixed, i.rematched_at";

const ADVISORY_COLUMNS: &str =
    "a.id, a.modified, a.withdrawn, a.aliases, a.document, a.sha256, a.import_id, a.updated_at";

#[derive(sqlx::FromRow)]
struct ImportRow {
    id: String,
    source: String,
    started_at: i64,
    finished_at: Option<i64>,
    records: i64,
    added: i64,
    modified: i64,
    withdrawn: i64,
    unchanged: i64,
    rejected: i64,
    rejections: String,
    changed_keys: i64,
    sboms_considered: i64,
    sboms_rematched: i64,
    findings_new: i64,
    findings_fixed: i64,
    rematched_at: Option<i64>,
}

pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn bounded(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl ImportRow {
    fn into_domain(self) -> Result<AdvisoryImport, StoreError> {
        Ok(AdvisoryImport {
            rejections: serde_json::from_str(&self.rejections).map_err(|e| {
                StoreError::Corrupt(format!("advisory import {} rejections: {e}", self.id))
            })?,
            id: self.id,
            source: self.source,
            started_at: ts(self.started_at)?,
            finished_at: opt_ts(self.finished_at)?,
            records: count(self.records),
            counts: ImportCounts {
                added: count(self.added),
                modified: count(self.modified),
                withdrawn: count(self.withdrawn),
                unchanged: count(self.unchanged),
            },
            rejected: count(self.rejected),
            changed_keys: count(self.changed_keys),
            rematch: RematchCounts {
                considered: count(self.sboms_considered),
                rematched: count(self.sboms_rematched),
                findings_new: count(self.findings_new),
                findings_fixed: count(self.findings_fixed),
                finished_at: opt_ts(self.rematched_at)?,
            },
        })
    }
}

const FEED_SELECT: &str = "SELECT source, etag, last_modified, checked_at, status, import_id
     FROM advisory_feeds WHERE source = $1";

#[derive(sqlx::FromRow)]
struct FeedRow {
    source: String,
    etag: Option<String>,
    last_modified: Option<String>,
    checked_at: Option<i64>,
    status: Option<String>,
    import_id: Option<String>,
}

impl FeedRow {
    fn into_domain(self) -> Result<FeedState, StoreError> {
        Ok(FeedState {
            source: self.source,
            etag: self.etag,
            last_modified: self.last_modified,
            checked_at: opt_ts(self.checked_at)?,
            status: self.status,
            import_id: self.import_id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AdvisoryRow {
    id: String,
    modified: String,
    withdrawn: Option<String>,
    aliases: String,
    document: Vec<u8>,
    sha256: String,
    import_id: String,
    updated_at: i64,
}

impl AdvisoryRow {
    fn into_domain(self) -> Result<StoredAdvisory, StoreError> {
        Ok(StoredAdvisory {
            aliases: serde_json::from_str(&self.aliases)
                .map_err(|e| StoreError::Corrupt(format!("advisory {} aliases: {e}", self.id)))?,
            document: gunzip(&self.document)?,
            id: self.id,
            modified: self.modified,
            withdrawn: self.withdrawn,
            sha256: self.sha256,
            import_id: self.import_id,
            updated_at: ts(self.updated_at)?,
        })
    }
}

fn limit_of(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_LIMIT))
}

/// `(ecosystem, name) IN (VALUES ($o, $o+1), ...)` for `n` keys, parameters from `$first`.
pub(super) fn keys_clause(columns: &str, n: usize, first: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| format!("(${}, ${})", first + 2 * i, first + 2 * i + 1))
        .collect();
    format!("({columns}) IN (VALUES {})", values.join(", "))
}

#[async_trait]
impl AdvisoryStore for SqlStore {
    async fn begin_import(&self, source: &str, now: Timestamp) -> Result<String, StoreError> {
        let id = new_id();
        in_tx!(self, |tx| {
            sqlx::query(INSERT_IMPORT)
                .bind(&id)
                .bind(stored_text(source))
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            Ok(())
        })?;
        Ok(id)
    }

    async fn import_advisories(
        &self,
        import_id: &str,
        batch: &[NewAdvisory],
        now: Timestamp,
    ) -> Result<ImportCounts, StoreError> {
        in_tx!(self, |tx| {
            let mut counts = ImportCounts::default();
            for a in batch {
                let sha = hex::encode(Sha256::digest(&a.document));
                let existing: Option<(String, Option<String>)> = sqlx::query_as(EXISTING)
                    .bind(&a.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let mut changed: Vec<(String, String)> = Vec::new();
                match &existing {
                    Some((old_sha, _)) if *old_sha == sha => {
                        counts.unchanged += 1;
                        continue;
                    }
                    Some((_, old_withdrawn)) => {
                        counts.modified += 1;
                        if old_withdrawn.is_none() && a.withdrawn.is_some() {
                            counts.withdrawn += 1;
                        }
                        changed = sqlx::query_as(OLD_KEYS)
                            .bind(&a.id)
                            .fetch_all(&mut *tx)
                            .await?;
                    }
                    None => {
                        counts.added += 1;
                        if a.withdrawn.is_some() {
                            counts.withdrawn += 1;
                        }
                    }
                }
                let aliases = json_list(&a.aliases);
                sqlx::query(UPSERT_ADVISORY)
                    .bind(stored_text(&a.id))
                    .bind(stored_text(&a.modified))
                    .bind(a.withdrawn.as_deref().map(stored_text))
                    .bind(stored_text(&aliases))
                    .bind(gzip(&a.document)?)
                    .bind(&sha)
                    .bind(import_id)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(DELETE_KEYS)
                    .bind(&a.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(DELETE_ALIASES)
                    .bind(&a.id)
                    .execute(&mut *tx)
                    .await?;
                for (ecosystem, name) in &a.keys {
                    sqlx::query(INSERT_KEY)
                        .bind(&a.id)
                        .bind(stored_text(ecosystem))
                        .bind(stored_text(name))
                        .execute(&mut *tx)
                        .await?;
                }
                for alias in &a.aliases {
                    sqlx::query(INSERT_ALIAS)
                        .bind(stored_text(alias))
                        .bind(&a.id)
                        .execute(&mut *tx)
                        .await?;
                }
                changed.extend(a.keys.iter().cloned());
                for (ecosystem, name) in &changed {
                    sqlx::query(INSERT_IMPORT_KEY)
                        .bind(import_id)
                        .bind(stored_text(ecosystem))
                        .bind(stored_text(name))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let records = bounded(batch.len() as u64);
            let updated = sqlx::query(ADD_COUNTS)
                .bind(import_id)
                .bind(records)
                .bind(bounded(counts.added))
                .bind(bounded(counts.modified))
                .bind(bounded(counts.withdrawn))
                .bind(bounded(counts.unchanged))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                // Unknown or already finished: nothing of this batch may land.
                return Err(StoreError::Conflict(format!(
                    "advisory import {import_id} is not in progress"
                )));
            }
            Ok(counts)
        })
    }

    async fn finish_import(
        &self,
        import_id: &str,
        rejected: u64,
        rejections: &[String],
        now: Timestamp,
    ) -> Result<AdvisoryImport, StoreError> {
        let kept: Vec<&String> = rejections.iter().take(MAX_REJECTIONS).collect();
        let reasons = serde_json::to_string(&kept)
            .map_err(|e| StoreError::Corrupt(format!("import rejections: {e}")))?;
        in_tx!(self, |tx| {
            sqlx::query(FINISH_IMPORT)
                .bind(import_id)
                .bind(ms(now))
                .bind(bounded(rejected))
                .bind(stored_text(&reasons))
                .execute(&mut *tx)
                .await?;
            Ok(())
        })?;
        self.advisory_import(import_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn advisory_import(&self, id: &str) -> Result<Option<AdvisoryImport>, StoreError> {
        let sql = format!("SELECT {IMPORT_COLUMNS} FROM advisory_imports i WHERE i.id = $1");
        let row: Option<ImportRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(ImportRow::into_domain).transpose()
    }

    async fn advisory_imports(&self, limit: u32) -> Result<Vec<AdvisoryImport>, StoreError> {
        let sql = format!(
            "SELECT {IMPORT_COLUMNS} FROM advisory_imports i ORDER BY i.started_at DESC, i.id DESC LIMIT $1"
        );
        let rows: Vec<ImportRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(limit_of(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ImportRow::into_domain).collect()
    }

    async fn advisory(&self, id_or_alias: &str) -> Result<Vec<StoredAdvisory>, StoreError> {
        let sql = format!(
            "SELECT {ADVISORY_COLUMNS} FROM advisories a WHERE a.id = $1
             UNION SELECT {ADVISORY_COLUMNS} FROM advisories a
               JOIN advisory_aliases l ON l.advisory_id = a.id WHERE l.alias = $1
             ORDER BY 1 LIMIT 100"
        );
        let rows: Vec<AdvisoryRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id_or_alias)
                .fetch_all(pool)
                .await?
        });
        let mut out: Vec<StoredAdvisory> = rows
            .into_iter()
            .map(AdvisoryRow::into_domain)
            .collect::<Result<_, _>>()?;
        // The advisory of that id first, then those that name it as an alias.
        out.sort_by_key(|a| a.id != id_or_alias);
        Ok(out)
    }

    async fn advisory_versions_for(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut rows: Vec<(String, String)> = Vec::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let sql = format!(
                "SELECT a.id, a.sha256 FROM advisories a WHERE a.id IN (
                   SELECT advisory_id FROM advisory_keys WHERE {})",
                keys_clause("ecosystem, name", chunk.len(), 1)
            );
            let found: Vec<(String, String)> = on_pool!(self, |pool| {
                let mut q = sqlx::query_as(&sql);
                for (ecosystem, name) in chunk {
                    q = q.bind(ecosystem).bind(name);
                }
                q.fetch_all(pool).await?
            });
            rows.extend(found);
        }
        rows.sort_unstable();
        rows.dedup();
        Ok(rows)
    }

    async fn advisories_by_id(&self, ids: &[String]) -> Result<Vec<StoredAdvisory>, StoreError> {
        let mut rows: Vec<AdvisoryRow> = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {ADVISORY_COLUMNS} FROM advisories a WHERE a.id IN ({})",
                placeholders.join(", ")
            );
            let found: Vec<AdvisoryRow> = on_pool!(self, |pool| {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool).await?
            });
            rows.extend(found);
        }
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows.dedup_by(|a, b| a.id == b.id);
        rows.into_iter().map(AdvisoryRow::into_domain).collect()
    }

    async fn import_keys(
        &self,
        import_id: &str,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (after_ecosystem, after_name) = after.cloned().unzip();
        let sql = "SELECT ecosystem, name FROM advisory_import_keys
             WHERE import_id = $1
               AND ($2 IS NULL OR ecosystem > $2 OR (ecosystem = $2 AND name > $3))
             ORDER BY ecosystem, name LIMIT $4";
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(import_id)
                .bind(after_ecosystem.as_deref())
                .bind(after_name.as_deref())
                .bind(limit_of(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    async fn claim_feed_check(
        &self,
        source: &str,
        next_check_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<FeedState>, StoreError> {
        let source = stored_text(source);
        in_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO advisory_feeds (source, next_check_at) VALUES ($1, $2)
                 ON CONFLICT (source) DO NOTHING",
            )
            .bind(&source)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            let claimed = sqlx::query(
                "UPDATE advisory_feeds SET next_check_at = $2
                 WHERE source = $1 AND next_check_at <= $3",
            )
            .bind(&source)
            .bind(ms(next_check_at))
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                return Ok(None);
            }
            let row: FeedRow = sqlx::query_as(FEED_SELECT)
                .bind(&source)
                .fetch_one(&mut *tx)
                .await?;
            Ok(Some(row.into_domain()?))
        })
    }

    async fn record_feed_check(
        &self,
        state: &FeedState,
        next_check_at: Timestamp,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(
                "UPDATE advisory_feeds SET etag = $2, last_modified = $3, checked_at = $4,
                   status = $5, import_id = $6, next_check_at = $7
                 WHERE source = $1",
            )
            .bind(stored_text(&state.source))
            .bind(state.etag.as_deref().map(stored_text))
            .bind(state.last_modified.as_deref().map(stored_text))
            .bind(state.checked_at.map(ms))
            .bind(state.status.as_deref().map(stored_text))
            .bind(&state.import_id)
            .bind(ms(next_check_at))
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    async fn feeds(&self) -> Result<Vec<FeedState>, StoreError> {
        let rows: Vec<FeedRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT source, etag, last_modified, checked_at, status, import_id
                 FROM advisory_feeds ORDER BY source LIMIT 1000",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(FeedRow::into_domain).collect()
    }

    async fn sboms_with_keys(
        &self,
        keys: &[(String, String)],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AffectedSbom>, StoreError> {
        let limit = limit_of(limit);
        let mut out: Vec<AffectedSbom> = Vec::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            // From the package index by key (covering index on key and SBOM id), not SBOM by
            // SBOM: the SBOMs an import affects are usually few of those stored.
            let sql = format!(
                "SELECT s.id, s.tenant_id, s.digest FROM sboms s WHERE s.id IN (
                   SELECT p.sbom_id FROM sbom_packages p
                   WHERE ($1 IS NULL OR p.sbom_id > $1) AND {})
                 ORDER BY s.id LIMIT $2",
                keys_clause("p.match_ecosystem, p.match_name", chunk.len(), 3)
            );
            let found: Vec<(String, String, String)> = on_pool!(self, |pool| {
                let mut q = sqlx::query_as(&sql).bind(after).bind(limit);
                for (ecosystem, name) in chunk {
                    q = q.bind(ecosystem).bind(name);
                }
                q.fetch_all(pool).await?
            });
            out.extend(
                found
                    .into_iter()
                    .map(|(sbom_id, tenant_id, digest)| AffectedSbom {
                        sbom_id,
                        tenant_id,
                        digest,
                    }),
            );
        }
        out.sort_by(|a, b| a.sbom_id.cmp(&b.sbom_id));
        out.dedup_by(|a, b| a.sbom_id == b.sbom_id);
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }
}
