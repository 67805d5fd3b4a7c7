//! Registries and their pipeline: [`RegistryStore`] (definitions and their schedules),
//! [`ImageStore`] (images, SBOMs, the package index) and [`PipelineStore`] (what discovery
//! and SBOM units report).
//!
//! Invariants: a registry and its schedules change in one transaction; an image is unique
//! per (registry, repository, tag, platform) and is marked removed only by a *succeeded*
//! discovery, for what that discovery did not see since its attempt started (so a failed
//! run removes nothing, and a concurrent run's sightings are never undone); an SBOM is
//! stored once per tenant and digest, the first one staying; SBOM generations are queued
//! under one lock (advisory on PostgreSQL, the write lock on SQLite), so one digest never
//! has two pending at once however many discoveries end together.

use std::io::{Read, Write};

use async_trait::async_trait;
use scanplane_core::scan::{IllegalTransition, Scan, ScanStatus};
use scanplane_core::schedule::Schedule;
use scanplane_core::Timestamp;
use sqlx::QueryBuilder;

use super::findings::complete_sql;
use super::scans::{bind_new_scan, insert_scan_sql};
use super::schedules::{bind_schedule, insert_schedule_sql, DELETE_SCHEDULE, UPDATE_SCHEDULE};
use super::{new_id, status_list, unique_as_conflict, SqlStore};
use crate::rows::{
    cadence_columns, dur_ms, every_ms, json_list, ms, opt_ms, DiscoveryRow, ImageRow, PackageRow,
    RegistryRow, SbomRow, ScanRow, IMAGE_SELECT, REGISTRY_COLUMNS, SBOM_INFO_COLUMNS,
};
use crate::text::stored_text;
use crate::{
    Backend, DiscoveryOutcome, DiscoveryRecord, ImageFilter, ImageRecord, ImageStore, NewImage,
    NewSbom, NewScan, PackageHit, PackageQuery, PipelineStore, RegistryRecord, RegistryStore,
    SbomInfo, SbomPackage, ScanChange, StoreError,
};

/// Serializes SBOM queueing across replicas on PostgreSQL ("sbom" in ASCII).
const SBOM_LOCK: i64 = 0x73_62_6f_6d;

/// Longest SBOM document the store decompresses (the generator's limit, with room).
const MAX_DOCUMENT: u64 = 80 * 1024 * 1024;

const INSERT_REGISTRY: &str = "INSERT INTO registries (id, tenant_id, name, definition, auth,
       discovery_schedule_id, scan_schedule_id, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const UPDATE_REGISTRY: &str = "UPDATE registries SET name = $3, definition = $4, auth = $5,
       discovery_schedule_id = $6, scan_schedule_id = $7, updated_at = $8
     WHERE id = $1 AND tenant_id = $2";

const REGISTRY_SCHEDULES: &str =
    "SELECT discovery_schedule_id, scan_schedule_id FROM registries WHERE id = $1";

const DELETE_REGISTRY: &str = "DELETE FROM registries
     WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)";

const SCHEDULE_EXISTS: &str = "SELECT COUNT(*) FROM schedules WHERE id = $1";

const UPSERT_IMAGE: &str = "INSERT INTO images (id, tenant_id, registry_id, repository, tag,
       platform, digest, index_digest, media_type, config_digest, layers, size, created,
       first_seen_at, last_seen_at, last_seen_scan_id, removed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, NULL)
     ON CONFLICT (registry_id, repository, tag, platform) DO UPDATE SET
       digest = excluded.digest, index_digest = excluded.index_digest,
       media_type = excluded.media_type, config_digest = excluded.config_digest,
       layers = excluded.layers, size = excluded.size, created = excluded.created,
       last_seen_at = excluded.last_seen_at, last_seen_scan_id = excluded.last_seen_scan_id,
       removed_at = NULL";

const MARK_REMOVED: &str = "UPDATE images SET removed_at = $3
     WHERE registry_id = $1 AND removed_at IS NULL AND last_seen_at < $2";

const MARK_REMOVED_IN: &str = "UPDATE images SET removed_at = $3
     WHERE registry_id = $1 AND removed_at IS NULL AND last_seen_at < $2 AND repository = $4";

const SEEN_BY: &str =
    "SELECT COUNT(*) FROM images WHERE registry_id = $1 AND last_seen_scan_id = $2";

const UPSERT_REQUEST: &str = "INSERT INTO sbom_requests (tenant_id, digest, scan_id)
     VALUES ($1, $2, $3)
     ON CONFLICT (tenant_id, digest) DO UPDATE SET scan_id = excluded.scan_id";

const UPSERT_DISCOVERY: &str = "INSERT INTO discoveries (scan_id, tenant_id, registry_id,
       stats, images_seen, images_removed, sboms_queued, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (scan_id) DO UPDATE SET stats = excluded.stats,
       images_seen = excluded.images_seen, images_removed = excluded.images_removed,
       sboms_queued = excluded.sboms_queued, finished_at = excluded.finished_at";

const LIST_DISCOVERIES: &str = "SELECT scan_id, registry_id, stats, images_seen,
       images_removed, sboms_queued, finished_at
     FROM discoveries WHERE registry_id = $1 ORDER BY scan_id DESC LIMIT $2";

const INSERT_SBOM: &str = "INSERT INTO sboms (id, tenant_id, digest, format, generator,
       document, document_bytes, package_count, os, scan_id, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (tenant_id, digest) DO NOTHING";

const INSERT_PACKAGES: &str = "INSERT INTO sbom_packages (sbom_id, seq, tenant_id, name,
       version, purl, purl_base, purl_name, ecosystem, distro, source_name, source_version,
       layer_diff_id, match_ecosystem, match_name) ";
/// Packages per insert statement: 15 parameters each, under both backends' limits.
const PACKAGES_PER_INSERT: usize = 1000;

/// Live digests of a registry with no SBOM and no SBOM generation pending, with one
/// repository each to pull them from. `$2`: the statuses of a pending scan.
fn sbom_candidates_sql() -> String {
    format!(
        "SELECT i.digest, MIN(i.repository) FROM images i
         WHERE i.registry_id = $1 AND i.removed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM sboms s
                           WHERE s.tenant_id = i.tenant_id AND s.digest = i.digest)
           AND NOT EXISTS (SELECT 1 FROM sbom_requests r JOIN scans sc ON sc.id = r.scan_id
                           WHERE r.tenant_id = i.tenant_id AND r.digest = i.digest
                             AND sc.status IN ({}))
         GROUP BY i.digest ORDER BY i.digest",
        status_list(&[
            ScanStatus::Queued,
            ScanStatus::Admitted,
            ScanStatus::Dispatched,
            ScanStatus::Running,
        ])
    )
}

/// The purl without qualifiers (`?...`) and subpath (`#...`), and that without its version.
fn purl_keys(purl: &str) -> (String, String) {
    let base = purl.split(['?', '#']).next().unwrap_or(purl).to_string();
    // The version follows the last `@` of the name part (a scope's `%40` is escaped).
    let name = match base.rfind('@') {
        Some(at) => base[..at].to_string(),
        None => base.clone(),
    };
    (base, name)
}

pub(super) fn gzip(data: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)
        .and_then(|()| enc.finish())
        .map_err(|e| StoreError::Corrupt(format!("compressing an SBOM: {e}")))
}

pub(super) fn gunzip(data: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(MAX_DOCUMENT)
        .read_to_end(&mut out)
        .map_err(|e| StoreError::Corrupt(format!("stored SBOM does not decompress: {e}")))?;
    Ok(out)
}

fn duplicate_name(name: &str) -> String {
    format!("name: this tenant already has a registry named {name:?}; registry names are unique within a tenant")
}

impl SqlStore {
    fn is_pg(&self) -> bool {
        self.backend() == Backend::Postgres
    }
}

/// Writes `schedules` (insert or update by id) and deletes the ids of `old` not among them,
/// inside the transaction `$tx`.
macro_rules! write_schedules {
    ($tx:ident, $schedules:expr, $old:expr) => {{
        let insert = insert_schedule_sql();
        for s in $schedules {
            let exists: i64 = sqlx::query_scalar(SCHEDULE_EXISTS)
                .bind(&s.id)
                .fetch_one(&mut *$tx)
                .await?;
            if exists > 0 {
                bind_schedule!(sqlx::query(UPDATE_SCHEDULE), s)
                    .bind(ms(s.updated_at))
                    .bind(every_ms(&s.cadence))
                    .execute(&mut *$tx)
                    .await?;
            } else {
                bind_schedule!(sqlx::query(&insert), s)
                    .bind(opt_ms(s.last_fired_at))
                    .bind(ms(s.created_at))
                    .bind(ms(s.updated_at))
                    .bind(every_ms(&s.cadence))
                    .execute(&mut *$tx)
                    .await
                    .map_err(unique_as_conflict(|| {
                        format!(
                            "a schedule named {:?} already exists in this tenant",
                            s.name
                        )
                    }))?;
            }
        }
        for id in $old.iter().flatten() {
            if !$schedules.iter().any(|s: &Schedule| &s.id == id) {
                sqlx::query(DELETE_SCHEDULE)
                    .bind(id)
                    .bind(None::<&str>)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn create_registry(
        &self,
        r: &RegistryRecord,
        schedules: &[Schedule],
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(INSERT_REGISTRY)
                .bind(&r.id)
                .bind(&r.tenant_id)
                .bind(&r.name)
                .bind(&r.definition)
                .bind(&r.auth)
                .bind(&r.discovery_schedule_id)
                .bind(&r.scan_schedule_id)
                .bind(ms(r.created_at))
                .bind(ms(r.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict(|| duplicate_name(&r.name)))?;
            let none: [Option<String>; 0] = [];
            write_schedules!(tx, schedules, none);
            Ok(())
        })
    }

    async fn registry(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<RegistryRecord>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries
             WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
        );
        let row: Option<RegistryRow> = self.by_id(&sql, id, tenant).await?;
        row.map(RegistryRow::into_domain).transpose()
    }

    async fn list_registries(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RegistryRecord>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries
             WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR id > $2)
             ORDER BY id LIMIT $3"
        );
        let rows: Vec<RegistryRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(tenant)
                .bind(after)
                .bind(i64::from(limit.max(1)))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(RegistryRow::into_domain).collect()
    }

    async fn update_registry(
        &self,
        r: &RegistryRecord,
        schedules: &[Schedule],
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            let old: Option<(Option<String>, Option<String>)> = sqlx::query_as(REGISTRY_SCHEDULES)
                .bind(&r.id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((old_discovery, old_scan)) = old else {
                return Err(StoreError::NotFound);
            };
            let affected = sqlx::query(UPDATE_REGISTRY)
                .bind(&r.id)
                .bind(&r.tenant_id)
                .bind(&r.name)
                .bind(&r.definition)
                .bind(&r.auth)
                .bind(&r.discovery_schedule_id)
                .bind(&r.scan_schedule_id)
                .bind(ms(r.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict(|| duplicate_name(&r.name)))?
                .rows_affected();
            if affected == 0 {
                return Err(StoreError::NotFound);
            }
            let old = [old_discovery, old_scan];
            write_schedules!(tx, schedules, old);
            Ok(())
        })
    }

    async fn delete_registry(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            let old: Option<(Option<String>, Option<String>)> = sqlx::query_as(&format!(
                "{REGISTRY_SCHEDULES} AND ($2 IS NULL OR tenant_id = $2)"
            ))
            .bind(id)
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((discovery, scan)) = old else {
                return Ok(false);
            };
            sqlx::query(DELETE_REGISTRY)
                .bind(id)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            for schedule in [discovery, scan].iter().flatten() {
                sqlx::query(DELETE_SCHEDULE)
                    .bind(schedule)
                    .bind(None::<&str>)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(true)
        })
    }

    async fn discoveries(
        &self,
        registry_id: &str,
        limit: u32,
    ) -> Result<Vec<DiscoveryRecord>, StoreError> {
        let rows: Vec<DiscoveryRow> = on_pool!(self, |p| {
            sqlx::query_as(LIST_DISCOVERIES)
                .bind(registry_id)
                .bind(i64::from(limit.max(1)))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(DiscoveryRow::into_domain).collect()
    }
}

#[async_trait]
impl ImageStore for SqlStore {
    async fn list_images(
        &self,
        tenant: Option<&str>,
        f: &ImageFilter,
    ) -> Result<Vec<ImageRecord>, StoreError> {
        let sql = format!(
            "{IMAGE_SELECT}
             WHERE ($1 IS NULL OR i.tenant_id = $1) AND ($2 IS NULL OR i.registry_id = $2)
               AND ($3 IS NULL OR i.repository = $3) AND ($4 IS NULL OR i.tag = $4)
               AND ($5 IS NULL OR i.digest = $5) AND ($6 IS NULL OR i.platform = $6)
               AND ($7 = 1 OR i.removed_at IS NULL) AND ($8 IS NULL OR i.id > $8)
             ORDER BY i.id LIMIT $9"
        );
        let rows: Vec<ImageRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(tenant)
                .bind(f.registry_id.as_deref())
                .bind(f.repository.as_deref())
                .bind(f.tag.as_deref())
                .bind(f.digest.as_deref())
                .bind(f.platform.as_deref())
                .bind(i64::from(f.include_removed))
                .bind(f.after.as_deref())
                .bind(i64::from(f.limit.max(1)))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(ImageRow::into_domain).collect()
    }

    async fn image(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<ImageRecord>, StoreError> {
        let sql = format!("{IMAGE_SELECT} WHERE i.id = $1 AND ($2 IS NULL OR i.tenant_id = $2)");
        let row: Option<ImageRow> = self.by_id(&sql, id, tenant).await?;
        row.map(ImageRow::into_domain).transpose()
    }

    async fn sbom(
        &self,
        tenant_id: &str,
        digest: &str,
    ) -> Result<Option<(SbomInfo, Vec<u8>)>, StoreError> {
        let sql = format!(
            "SELECT {SBOM_INFO_COLUMNS}, document FROM sboms WHERE digest = $1 AND tenant_id = $2"
        );
        let row: Option<SbomRow> = self.by_id(&sql, digest, Some(tenant_id)).await?;
        let Some((info, stored)) = row.map(SbomRow::into_domain).transpose()? else {
            return Ok(None);
        };
        Ok(Some((info, gunzip(&stored)?)))
    }

    async fn find_packages(
        &self,
        tenant: Option<&str>,
        q: &PackageQuery,
    ) -> Result<Vec<PackageHit>, StoreError> {
        // A purl with qualifiers matches exactly; one with a version, whatever its
        // qualifiers; one without a version, every version.
        let (exact, base, name) = match q.purl.as_deref() {
            None => (None, None, None),
            Some(p) if p.contains(['?', '#']) => (Some(p.to_string()), None, None),
            Some(p) => {
                let (base, name) = purl_keys(p);
                if base == name {
                    (None, None, Some(name))
                } else {
                    (None, Some(base), None)
                }
            }
        };
        let sql = "SELECT p.sbom_id, p.seq, s.digest, p.name, p.version, p.purl, p.ecosystem,
                p.distro, p.source_name, p.source_version, p.layer_diff_id
             FROM sbom_packages p JOIN sboms s ON s.id = p.sbom_id
             WHERE ($1 IS NULL OR p.tenant_id = $1) AND ($2 IS NULL OR p.purl = $2)
               AND ($3 IS NULL OR p.purl_base = $3) AND ($4 IS NULL OR p.purl_name = $4)
               AND ($5 IS NULL OR p.name = $5) AND ($6 IS NULL OR p.version = $6)
               AND ($7 IS NULL OR p.sbom_id > $7 OR (p.sbom_id = $7 AND p.seq > $8))
             ORDER BY p.sbom_id, p.seq LIMIT $9";
        let (after_sbom, after_seq) = match &q.after {
            Some((s, n)) => (Some(s.as_str()), *n),
            None => (None, 0),
        };
        let rows: Vec<PackageRow> = on_pool!(self, |p| {
            sqlx::query_as(sql)
                .bind(tenant)
                .bind(exact.as_deref())
                .bind(base.as_deref())
                .bind(name.as_deref())
                .bind(q.name.as_deref())
                .bind(q.version.as_deref())
                .bind(after_sbom)
                .bind(after_seq)
                .bind(i64::from(q.limit.max(1)))
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(PackageRow::into_domain).collect())
    }
}

#[async_trait]
impl PipelineStore for SqlStore {
    async fn record_images(
        &self,
        scan: &Scan,
        registry_id: &str,
        images: &[NewImage],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if images.is_empty() {
            return Ok(0);
        }
        in_tx!(self, |tx| {
            let mut written = 0u64;
            for i in images {
                written += sqlx::query(UPSERT_IMAGE)
                    .bind(new_id())
                    .bind(&scan.tenant_id)
                    .bind(registry_id)
                    .bind(stored_text(&i.repository))
                    .bind(stored_text(&i.tag))
                    .bind(stored_text(&i.platform))
                    .bind(stored_text(&i.digest))
                    .bind(&i.index_digest)
                    .bind(stored_text(&i.media_type))
                    .bind(stored_text(&i.config_digest))
                    .bind(stored_text(&i.layers))
                    .bind(i64::try_from(i.size).unwrap_or(i64::MAX))
                    .bind(&i.created)
                    .bind(ms(now))
                    .bind(&scan.id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            Ok(written)
        })
    }

    // Each argument is one fact of the completion, taken in the one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn complete_discovery(
        &self,
        scan: &Scan,
        registry_id: &str,
        repositories: &[String],
        stats: Option<&str>,
        change: &ScanChange,
        sbom_scan: &(dyn for<'x> Fn(&'x str, &'x str) -> NewScan + Send + Sync),
        now: Timestamp,
    ) -> Result<(Scan, DiscoveryOutcome), StoreError> {
        let complete = complete_sql();
        let candidates = sbom_candidates_sql();
        let insert_scan = insert_scan_sql("");
        let targets = change.targets_scanned.as_ref().map(|t| json_list(t));
        let scope = scan.scope_key();
        // What this attempt did not see since it started is gone from the registry.
        let since = ms(scan.started_at.unwrap_or(scan.created_at));
        let is_pg = self.is_pg();
        in_tx!(self, |tx| {
            let row: Option<ScanRow> = sqlx::query_as(&complete)
                .bind(&scan.id)
                .bind(stored_text(&change.reason))
                .bind(ms(now))
                .bind(&targets)
                .bind(&scope)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::Illegal(IllegalTransition {
                    from: scan.status,
                    to: ScanStatus::Succeeded,
                }));
            };
            let mut outcome = DiscoveryOutcome::default();
            if repositories.is_empty() {
                outcome.images_removed = sqlx::query(MARK_REMOVED)
                    .bind(registry_id)
                    .bind(since)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            } else {
                for repository in repositories {
                    outcome.images_removed += sqlx::query(MARK_REMOVED_IN)
                        .bind(registry_id)
                        .bind(since)
                        .bind(ms(now))
                        .bind(repository)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
            }
            let seen: i64 = sqlx::query_scalar(SEEN_BY)
                .bind(registry_id)
                .bind(&scan.id)
                .fetch_one(&mut *tx)
                .await?;
            outcome.images_seen = seen.max(0) as u64;
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SBOM_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let wanted: Vec<(String, String)> = sqlx::query_as(&candidates)
                .bind(registry_id)
                .fetch_all(&mut *tx)
                .await?;
            for (digest, repository) in wanted {
                let new = sbom_scan(&digest, &repository);
                let id = new_id();
                let _created: ScanRow = bind_new_scan!(sqlx::query_as(&insert_scan), &id, new, now)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(UPSERT_REQUEST)
                    .bind(&scan.tenant_id)
                    .bind(&digest)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                outcome.sboms_queued.push(id);
            }
            sqlx::query(UPSERT_DISCOVERY)
                .bind(&scan.id)
                .bind(&scan.tenant_id)
                .bind(registry_id)
                .bind(stats.map(stored_text))
                .bind(i64::try_from(outcome.images_seen).unwrap_or(i64::MAX))
                .bind(i64::try_from(outcome.images_removed).unwrap_or(i64::MAX))
                .bind(i64::try_from(outcome.sboms_queued.len()).unwrap_or(i64::MAX))
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            Ok((row.into_domain()?, outcome))
        })
    }

    async fn store_sbom(
        &self,
        scan: &Scan,
        s: &NewSbom,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let compressed = gzip(&s.document)?;
        let id = new_id();
        in_tx!(self, |tx| {
            let inserted = sqlx::query(INSERT_SBOM)
                .bind(&id)
                .bind(&scan.tenant_id)
                .bind(&s.digest)
                .bind(&s.format)
                .bind(&s.generator)
                .bind(&compressed)
                .bind(i64::try_from(s.document.len()).unwrap_or(i64::MAX))
                .bind(i64::try_from(s.packages.len()).unwrap_or(i64::MAX))
                .bind(&s.os)
                .bind(&scan.id)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            // Multi-row inserts: one statement per package made storing an SBOM of a few
            // hundred packages cost a round trip (and, on SQLite, a statement step) each.
            let rows: Vec<(i64, &SbomPackage, Option<(String, String)>)> = s
                .packages
                .iter()
                .enumerate()
                .map(|(seq, p)| {
                    (
                        i64::try_from(seq).unwrap_or(i64::MAX),
                        p,
                        p.purl.as_deref().map(purl_keys),
                    )
                })
                .collect();
            for chunk in rows.chunks(PACKAGES_PER_INSERT) {
                let mut qb = QueryBuilder::new(INSERT_PACKAGES);
                qb.push_values(chunk, |mut b, (seq, p, keys)| {
                    b.push_bind(&id)
                        .push_bind(*seq)
                        .push_bind(&scan.tenant_id)
                        .push_bind(stored_text(&p.name))
                        .push_bind(&p.version)
                        .push_bind(&p.purl)
                        .push_bind(keys.as_ref().map(|k| k.0.clone()))
                        .push_bind(keys.as_ref().map(|k| k.1.clone()))
                        .push_bind(&p.ecosystem)
                        .push_bind(&p.distro)
                        .push_bind(&p.source_name)
                        .push_bind(&p.source_version)
                        .push_bind(&p.layer_diff_id)
                        .push_bind(p.match_key.as_ref().map(|k| stored_text(&k.0)))
                        .push_bind(p.match_key.as_ref().map(|k| stored_text(&k.1)));
                });
                qb.build().execute(&mut *tx).await?;
            }
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purl_keys_drop_qualifiers_then_the_version() {
        assert_eq!(
            purl_keys("pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1"),
            (
                "pkg:apk/alpine/libcrypto3@3.1.4-r5".to_string(),
                "pkg:apk/alpine/libcrypto3".to_string()
            )
        );
        assert_eq!(
            purl_keys("pkg:npm/%40scope/left-pad@1.3.0#sub"),
            (
                "pkg:npm/%40scope/left-pad@1.3.0".to_string(),
                "pkg:npm/%40scope/left-pad".to_string()
            )
        );
        let (b, n) = purl_keys("pkg:deb/debian/libssl3");
        assert_eq!(b, n);
    }

    #[test]
    fn documents_round_trip_compressed() {
        let doc = br#"{"spdxVersion":"SPDX-2.3"}"#.repeat(1000);
        let z = gzip(&doc).unwrap();
        assert!(z.len() < doc.len() / 10);
        assert_eq!(gunzip(&z).unwrap(), doc);
        assert!(gunzip(b"not gzip").is_err());
    }
}
