//! [`SqlStore`]: one implementation of [`Store`] over SQLite or PostgreSQL. Both backends
//! run the same SQL text (`$N` parameters, `ON CONFLICT`, `RETURNING`); the `on_pool!` and
//! `in_tx!` macros expand each body once per backend so that sqlx sees concrete types.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use scanplane_core::admission::{self, Candidate, Decision, Limits, SlotUsage};
use scanplane_core::finding::Finding;
use scanplane_core::maintenance::MaintenanceWindow;
use scanplane_core::ratelimit::{Bucket, RateLimitPolicy};
use scanplane_core::scan::{IllegalTransition, Scan, ScanStatus};
use scanplane_core::schedule::{Schedule, TickPlan};
use scanplane_core::tenant::Tenant;
use scanplane_core::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, QueryBuilder, SqlitePool};

use crate::rows::*;
use crate::{
    Backend, FindingFilter, FindingIdentity, IdentityFilter, NewScan, RunDiff, ScanChange,
    ScanFilter, Store, StoreError, StoredFinding, TickOutcome,
};
use scanplane_core::identity::Triage;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per multi-row INSERT: 12 columns each stays far below both backends' limits on
/// bound parameters.
const FINDING_BATCH: usize = 1000;

/// Advisory lock key serializing admission rounds across `serve` replicas on PostgreSQL.
const ADMISSION_LOCK: i64 = 0x0053_4341_4e41_444d; // "SCANADM"

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The SQL store. Cheap to clone handles are inside; share it as `Arc<dyn Store>`.
pub struct SqlStore {
    pool: Pool,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` (an expression of type `Result<T, StoreError>`, using `$tx`) inside one
/// write transaction, committing on `Ok`. SQLite write transactions start `IMMEDIATE` so
/// that a reader never has to upgrade to a writer mid-transaction and fail with BUSY.
macro_rules! in_tx {
    ($self:expr, $tx:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite(p) => {
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
            Pool::Postgres(p) => {
                let mut $tx = p.begin().await?;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
        }
    };
}

/// The INSERT of a new queued scan; `conflict` is an optional `ON CONFLICT` clause.
fn insert_scan_sql(conflict: &str) -> String {
    format!(
        "INSERT INTO scans (id, tenant_id, project_id, schedule_id, fire_time, trigger, priority, scanner, provider, targets, billing, options, on_maintenance, status, reason, attempts, created_at, updated_at, targets_scanned, findings_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'queued', 'queued: waiting for admission', 0, $14, $14, '[]', 0) {conflict} RETURNING {SCAN_COLUMNS}"
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
            .bind(opt_ms($scan.fire_time))
            .bind($scan.trigger.as_str())
            .bind(i64::from($scan.trigger.priority()))
            .bind(&$scan.scanner)
            .bind(&$scan.provider)
            .bind(json_list(&$scan.targets))
            .bind($scan.billing)
            .bind(&$scan.options)
            .bind($scan.on_maintenance.as_str())
            .bind(ms($now))
    };
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn status_list(statuses: &[ScanStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Strips the password from a URL before it appears in an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl SqlStore {
    /// Opens (and for SQLite, creates) the database and applies migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let shown = redact(url);
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|e| StoreError::Unreachable {
                    url: shown.clone(),
                    reason: e.to_string(),
                })?;
            POSTGRES_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| StoreError::Migration(e.to_string()))?;
            Pool::Postgres(pool)
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
                return Err(StoreError::InvalidUrl {
                    url: shown,
                    reason: "expected sqlite://PATH, a file path, or postgres://USER@HOST/DB"
                        .into(),
                });
            }
            let (file, query) = path.split_once('?').unwrap_or((path, ""));
            let memory = file == ":memory:";
            let mut opts = SqliteConnectOptions::new()
                .filename(file)
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if !memory {
                opts = opts
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
            }
            if !query.is_empty() && query != "mode=rwc" {
                return Err(StoreError::InvalidUrl {
                    url: shown,
                    reason: format!("unsupported SQLite URL parameters {query:?}"),
                });
            }
            let pool = SqlitePoolOptions::new()
                // An in-memory database exists per connection: keep exactly one.
                .max_connections(if memory { 1 } else { 8 })
                .min_connections(if memory { 1 } else { 0 })
                .idle_timeout(if memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if memory {
                    None
                } else {
                    Some(Duration::from_secs(1800))
                })
                .connect_with(opts)
                .await
                .map_err(|e| StoreError::Unreachable {
                    url: shown.clone(),
                    reason: e.to_string(),
                })?;
            SQLITE_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| StoreError::Migration(e.to_string()))?;
            Pool::Sqlite(pool)
        };
        Ok(SqlStore { pool })
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }
}

fn scan_rows(rows: Vec<ScanRow>) -> Result<Vec<Scan>, StoreError> {
    rows.into_iter().map(ScanRow::into_domain).collect()
}

fn schedule_rows(rows: Vec<ScheduleRow>) -> Result<Vec<Schedule>, StoreError> {
    rows.into_iter().map(ScheduleRow::into_domain).collect()
}

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
struct UsageRow {
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

fn usage_from(rows: Vec<UsageRow>) -> SlotUsage {
    let mut u = SlotUsage::default();
    for r in rows {
        let n = u32::try_from(r.n).unwrap_or(u32::MAX);
        u.global += n;
        *u.per_tenant.entry(r.tenant_id).or_default() += n;
        *u.per_scanner.entry(r.scanner).or_default() += n;
    }
    u
}

fn candidate_from(r: CandidateRow) -> Result<(Candidate, String), StoreError> {
    Ok((
        Candidate {
            targets: serde_json::from_str(&r.targets)
                .map_err(|e| StoreError::Corrupt(format!("scan targets: {e}")))?,
            trigger: r
                .trigger
                .parse()
                .map_err(|e: scanplane_core::scan::UnknownTrigger| {
                    StoreError::Corrupt(e.to_string())
                })?,
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

/// PostgreSQL ingest: one statement per batch binding each column as an array (`UNNEST`),
/// which parses and plans once instead of once per row's twelve parameters.
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
    for chunk in findings.chunks(FINDING_BATCH * 5) {
        let n = chunk.len();
        let mut ids = Vec::with_capacity(n);
        let (mut targets, mut rules, mut severities, mut titles) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut locations, mut details, mut fingerprints) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for f in chunk {
            ids.push(new_id());
            targets.push(f.target.as_str());
            rules.push(f.rule_id.as_str());
            severities.push(f.severity.as_str());
            titles.push(f.title.as_str());
            locations.push(f.location.as_str());
            details.push(f.detail.as_str());
            fingerprints.push(f.fingerprint.as_str());
        }
        inserted += sqlx::query(
            "INSERT INTO findings (id, tenant_id, scan_id, scanner, target, rule_id, severity, title, location, detail, fingerprint, created_at) \
             SELECT u.id, $2, $3, $4, u.target, u.rule_id, u.severity, u.title, u.location, u.detail, u.fingerprint, $12 \
             FROM UNNEST($1::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) \
               AS u(id, target, rule_id, severity, title, location, detail, fingerprint) \
             ON CONFLICT (scan_id, fingerprint) DO NOTHING",
        )
        .bind(&ids)
        .bind(tenant_id)
        .bind(scan_id)
        .bind(scanner)
        .bind(&targets)
        .bind(&rules)
        .bind(&severities)
        .bind(&titles)
        .bind(&locations)
        .bind(&details)
        .bind(&fingerprints)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    sqlx::query("UPDATE scans SET findings_count = findings_count + $1 WHERE id = $2")
        .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
        .bind(scan_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(inserted)
}

const SLOT_STATES: &str = "'admitted','dispatched','running'";

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let applied: i64 = on_pool!(self, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(p)
                .await?
        });
        let expected = self.migrator().iter().count() as i64;
        if applied < expected {
            return Err(StoreError::Migration(format!(
                "{applied} of {expected} migrations applied"
            )));
        }
        Ok(())
    }

    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        let now = ms(chrono::Utc::now());
        let id = new_id();
        let row: TenantRow = on_pool!(self, p => {
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(&id)
                .bind(name)
                .bind(now)
                .execute(p)
                .await?;
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_one(p)
                .await?
        });
        row.into_domain()
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row: Option<TenantRow> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(TenantRow::into_domain).transpose()
    }

    async fn create_token(
        &self,
        tenant_id: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let now = ms(chrono::Utc::now());
        let res = on_pool!(self, p => {
            sqlx::query("INSERT INTO api_tokens (id, tenant_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&id)
                .bind(tenant_id)
                .bind(name)
                .bind(token_hash)
                .bind(now)
                .execute(p)
                .await
                .map(|_| ())
        });
        match res {
            Ok(()) => Ok(id),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("token already exists".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn tenant_for_token(&self, token_hash: &str) -> Result<Option<Tenant>, StoreError> {
        let row: Option<TenantRow> = on_pool!(self, p => {
            sqlx::query_as("SELECT t.id, t.name, t.created_at FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id WHERE k.token_hash = $1")
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        });
        row.map(TenantRow::into_domain).transpose()
    }

    async fn create_scan(&self, scan: NewScan, now: Timestamp) -> Result<Scan, StoreError> {
        let sql = insert_scan_sql("");
        let id = new_id();
        let res: Result<ScanRow, sqlx::Error> = on_pool!(self, p => {
            bind_new_scan!(sqlx::query_as(&sql), &id, scan, now)
                                .fetch_one(p)
                .await
        });
        match res {
            Ok(row) => row.into_domain(),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
                "a scan for this schedule tick already exists".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn scan(&self, tenant: Option<&str>, id: &str) -> Result<Option<Scan>, StoreError> {
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
        );
        let row: Option<ScanRow> = on_pool!(self, p => {
            sqlx::query_as(&sql).bind(id).bind(tenant).fetch_optional(p).await?
        });
        row.map(ScanRow::into_domain).transpose()
    }

    async fn list_scans(
        &self,
        tenant: Option<&str>,
        f: &ScanFilter,
    ) -> Result<Vec<Scan>, StoreError> {
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans WHERE ($1 IS NULL OR tenant_id = $1) \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR scanner = $3) \
             AND ($4 IS NULL OR schedule_id = $4) AND ($5 IS NULL OR trigger = $5) \
             AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7) \
             AND ($8 IS NULL OR id < $8) ORDER BY id DESC LIMIT $9"
        );
        let rows: Vec<ScanRow> = on_pool!(self, p => {
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

    async fn transition(
        &self,
        id: &str,
        to: ScanStatus,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError> {
        let sources = ScanStatus::sources_of(to);
        let sql = format!(
            "UPDATE scans SET status = $2, reason = $3, updated_at = $4, \
               error = COALESCE($5, error), executor_ref = COALESCE($6, executor_ref), \
               report_token_hash = CASE WHEN $7 THEN NULL ELSE COALESCE($8, report_token_hash) END, \
               targets_scanned = COALESCE($9, targets_scanned), attempts = attempts + $10, \
               admitted_at = CASE WHEN $2 = 'admitted' THEN $4 ELSE admitted_at END, \
               started_at = CASE WHEN $2 = 'running' THEN $4 ELSE started_at END, \
               finished_at = CASE WHEN $7 THEN $4 ELSE finished_at END \
             WHERE id = $1 AND status IN ({}) RETURNING {SCAN_COLUMNS}",
            status_list(&sources)
        );
        let terminal = to.is_terminal();
        let row: Option<ScanRow> = on_pool!(self, p => {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(to.as_str())
                .bind(&change.reason)
                .bind(ms(now))
                .bind(change.error.as_deref())
                .bind(change.executor_ref.as_deref())
                .bind(terminal)
                .bind(change.report_token_hash.as_deref())
                .bind(change.targets_scanned.as_ref().map(|t| json_list(t)))
                .bind(i64::from(change.new_attempt))
                .fetch_optional(p)
                .await?
        });
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
        let n = on_pool!(self, p => {
            sqlx::query("UPDATE scans SET executor_ref = $1, updated_at = $2 WHERE id = $3 AND status = $4")
                .bind(executor_ref)
                .bind(ms(now))
                .bind(id)
                .bind(status.as_str())
                .execute(p)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "scan {id} is no longer {status}"
            )));
        }
        Ok(())
    }

    async fn set_error(&self, id: &str, error: &str, now: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query("UPDATE scans SET error = $1, updated_at = $2 WHERE id = $3")
                .bind(error)
                .bind(ms(now))
                .bind(id)
                .execute(p)
                .await
                .map(|_| ())?
        });
        Ok(())
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
            "SELECT {SCAN_COLUMNS} FROM scans WHERE status IN ({}) ORDER BY priority, created_at LIMIT $1",
            status_list(statuses)
        );
        let rows: Vec<ScanRow> = on_pool!(self, p => {
            sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(p).await?
        });
        scan_rows(rows)
    }

    async fn scan_for_report_token(&self, token_hash: &str) -> Result<Option<Scan>, StoreError> {
        let sql = format!("SELECT {SCAN_COLUMNS} FROM scans WHERE report_token_hash = $1");
        let row: Option<ScanRow> = on_pool!(self, p => {
            sqlx::query_as(&sql).bind(token_hash).fetch_optional(p).await?
        });
        row.map(ScanRow::into_domain).transpose()
    }

    async fn slot_usage(&self) -> Result<SlotUsage, StoreError> {
        let sql = format!("SELECT tenant_id, scanner, COUNT(*) AS n FROM scans WHERE status IN ({SLOT_STATES}) GROUP BY tenant_id, scanner");
        let rows: Vec<UsageRow> = on_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await?);
        Ok(usage_from(rows))
    }

    async fn count_by_status(&self) -> Result<Vec<(ScanStatus, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT status, COUNT(*) FROM scans GROUP BY status").fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(s, n)| {
                let st: ScanStatus =
                    s.parse()
                        .map_err(|e: scanplane_core::scan::UnknownStatus| {
                            StoreError::Corrupt(e.to_string())
                        })?;
                Ok((st, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn admission_round(
        &self,
        limits: &Limits,
        policies: &[RateLimitPolicy],
        max_candidates: u32,
        now: Timestamp,
    ) -> Result<Vec<(String, Decision)>, StoreError> {
        let candidates_sql = "SELECT s.id, s.tenant_id, t.name AS tenant_name, s.scanner, s.provider, s.targets, s.trigger, s.created_at, s.on_maintenance, s.reason \
             FROM scans s JOIN tenants t ON t.id = s.tenant_id WHERE s.status = 'queued' ORDER BY s.priority, s.created_at LIMIT $1";
        let usage_sql = format!("SELECT tenant_id, scanner, COUNT(*) AS n FROM scans WHERE status IN ({SLOT_STATES}) GROUP BY tenant_id, scanner");
        let windows_sql = format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows");
        let is_pg = self.backend() == Backend::Postgres;
        in_tx!(self, tx => {
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ADMISSION_LOCK).execute(&mut *tx).await?;
            }
            let cand_rows: Vec<CandidateRow> = sqlx::query_as(candidates_sql)
                .bind(i64::from(max_candidates))
                .fetch_all(&mut *tx)
                .await?;
            let usage_rows: Vec<UsageRow> = sqlx::query_as(&usage_sql).fetch_all(&mut *tx).await?;
            let window_rows: Vec<WindowRow> = sqlx::query_as(&windows_sql).fetch_all(&mut *tx).await?;
            let bucket_rows: Vec<BucketRow> = sqlx::query_as("SELECT provider, tokens, updated_at FROM rate_buckets")
                .fetch_all(&mut *tx)
                .await?;
            let round: Result<Vec<(String, Decision)>, StoreError> = async {
                let mut candidates = Vec::with_capacity(cand_rows.len());
                let mut reasons: HashMap<String, String> = HashMap::new();
                for r in cand_rows {
                    let (c, reason) = candidate_from(r)?;
                    reasons.insert(c.scan_id.clone(), reason);
                    candidates.push(c);
                }
                let windows: Vec<MaintenanceWindow> = window_rows
                    .into_iter()
                    .map(WindowRow::into_domain)
                    .collect::<Result<_, _>>()?;
                let mut buckets = BTreeMap::new();
                for b in bucket_rows {
                    buckets.insert(b.provider, Bucket { tokens: b.tokens, updated_at: ts(b.updated_at)? });
                }
                let before = buckets.clone();
                let round = admission::decide(&candidates, &usage_from(usage_rows), limits, &windows, policies, &buckets, now);
                for (id, d) in &round.decisions {
                    match d {
                        Decision::Admit => {
                            sqlx::query("UPDATE scans SET status = 'admitted', reason = 'admitted: starting', admitted_at = $1, updated_at = $1 WHERE id = $2 AND status = 'queued'")
                                .bind(ms(now)).bind(id).execute(&mut *tx).await?;
                        }
                        Decision::Skip(reason) => {
                            sqlx::query("UPDATE scans SET status = 'skipped', reason = $1, finished_at = $2, updated_at = $2 WHERE id = $3 AND status = 'queued'")
                                .bind(reason).bind(ms(now)).bind(id).execute(&mut *tx).await?;
                        }
                        Decision::Wait(reason) => {
                            if reasons.get(id) != Some(reason) {
                                sqlx::query("UPDATE scans SET reason = $1, updated_at = $2 WHERE id = $3 AND status = 'queued'")
                                    .bind(reason).bind(ms(now)).bind(id).execute(&mut *tx).await?;
                            }
                        }
                    }
                }
                for (provider, b) in &round.buckets {
                    if before.get(provider) != Some(b) {
                        sqlx::query("INSERT INTO rate_buckets (provider, tokens, updated_at) VALUES ($1, $2, $3) ON CONFLICT (provider) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at")
                            .bind(provider).bind(b.tokens).bind(ms(b.updated_at)).execute(&mut *tx).await?;
                    }
                }
                Ok(round.decisions)
            }
            .await;
            round
        })
    }

    async fn create_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        let (cron, tz, once) = cadence_columns(&s.cadence);
        let sql = format!("INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)");
        let res = on_pool!(self, p => {
            sqlx::query(&sql)
                .bind(&s.id).bind(&s.tenant_id).bind(&s.project_id).bind(&s.name)
                .bind(&cron).bind(&tz).bind(once).bind(&s.scanner)
                .bind(json_list(&s.targets)).bind(s.billing).bind(&s.options).bind(s.enabled)
                .bind(s.status.as_str()).bind(s.missed_tick_policy.as_str())
                .bind(dur_ms(s.starting_deadline)).bind(dur_ms(s.jitter)).bind(s.on_maintenance.as_str())
                .bind(opt_ms(s.next_tick)).bind(opt_ms(s.next_fire_at)).bind(opt_ms(s.last_fired_at))
                .bind(ms(s.created_at)).bind(ms(s.updated_at))
                .execute(p)
                .await
                .map(|_| ())
        });
        match res {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "schedule {} already exists",
                s.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn schedule(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Schedule>, StoreError> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)");
        let row: Option<ScheduleRow> = on_pool!(self, p => sqlx::query_as(&sql).bind(id).bind(tenant).fetch_optional(p).await?);
        row.map(ScheduleRow::into_domain).transpose()
    }

    async fn list_schedules(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3");
        let rows: Vec<ScheduleRow> = on_pool!(self, p => sqlx::query_as(&sql).bind(tenant).bind(after).bind(i64::from(limit.max(1))).fetch_all(p).await?);
        schedule_rows(rows)
    }

    async fn update_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        let (cron, tz, once) = cadence_columns(&s.cadence);
        let affected = on_pool!(self, p => {
            sqlx::query("UPDATE schedules SET name = $3, cron_exp = $4, timezone = $5, once_at = $6, scanner = $7, targets = $8, billing = $9, options = $10, enabled = $11, status = $12, missed_tick_policy = $13, starting_deadline_ms = $14, jitter_ms = $15, on_maintenance = $16, next_tick = $17, next_fire_at = $18, updated_at = $19, project_id = $20 WHERE id = $1 AND tenant_id = $2")
                .bind(&s.id).bind(&s.tenant_id).bind(&s.name)
                .bind(&cron).bind(&tz).bind(once).bind(&s.scanner)
                .bind(json_list(&s.targets)).bind(s.billing).bind(&s.options).bind(s.enabled)
                .bind(s.status.as_str()).bind(s.missed_tick_policy.as_str())
                .bind(dur_ms(s.starting_deadline)).bind(dur_ms(s.jitter)).bind(s.on_maintenance.as_str())
                .bind(opt_ms(s.next_tick)).bind(opt_ms(s.next_fire_at)).bind(ms(s.updated_at)).bind(&s.project_id)
                .execute(p)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => {
            sqlx::query("DELETE FROM schedules WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)")
                .bind(id).bind(tenant).execute(p).await?.rows_affected()
        });
        Ok(n > 0)
    }

    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2");
        let rows: Vec<ScheduleRow> = on_pool!(self, p => sqlx::query_as(&sql).bind(ms(now)).bind(i64::from(limit)).fetch_all(p).await?);
        schedule_rows(rows)
    }

    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let v: Option<i64> = on_pool!(self, p => sqlx::query_scalar("SELECT MIN(next_fire_at) FROM schedules").fetch_one(p).await?);
        opt_ts(v)
    }

    async fn record_tick(
        &self,
        s: &Schedule,
        plan: &TickPlan,
        scan: Option<NewScan>,
        now: Timestamp,
    ) -> Result<TickOutcome, StoreError> {
        let Some(expected) = s.next_tick else {
            return Ok(TickOutcome::AlreadyHandled);
        };
        let insert_sql = insert_scan_sql("ON CONFLICT (schedule_id, fire_time) DO NOTHING");
        let fired_at = plan.fire.map(|_| ms(now));
        let scan_id = new_id();
        in_tx!(self, tx => {
            let advanced = sqlx::query("UPDATE schedules SET next_tick = $1, next_fire_at = $2, status = $3, last_fired_at = COALESCE($4, last_fired_at), updated_at = $5 WHERE id = $6 AND next_tick = $7")
                .bind(opt_ms(plan.next_tick))
                .bind(opt_ms(plan.next_fire_at))
                .bind(plan.status.as_str())
                .bind(fired_at)
                .bind(ms(now))
                .bind(&s.id)
                .bind(ms(expected))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let out: Result<TickOutcome, StoreError> = if advanced == 0 {
                Ok(TickOutcome::AlreadyHandled)
            } else if let Some(scan) = &scan {
                let row: Option<ScanRow> = bind_new_scan!(sqlx::query_as(&insert_sql), &scan_id, scan, now)
                                        .fetch_optional(&mut *tx)
                    .await?;
                match row {
                    Some(r) => r.into_domain().map(|scan| TickOutcome::Recorded { scan: Some(Box::new(scan)) }),
                    None => Ok(TickOutcome::Recorded { scan: None }),
                }
            } else {
                Ok(TickOutcome::Recorded { scan: None })
            };
            out
        })
    }

    async fn create_window(&self, w: &MaintenanceWindow) -> Result<(), StoreError> {
        let (start_at, cron, tz) = window_start_columns(&w.start);
        on_pool!(self, p => {
            sqlx::query("INSERT INTO maintenance_windows (id, tenant_id, admin, name, start_at, cron_exp, timezone, duration_ms, scope, action, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)")
                .bind(&w.id).bind(&w.tenant_id).bind(w.admin).bind(&w.name)
                .bind(start_at).bind(&cron).bind(&tz)
                .bind(dur_ms(Some(w.duration))).bind(w.scope.to_string()).bind(w.action.as_str())
                .bind(ms(w.created_at))
                .execute(p)
                .await
                .map(|_| ())?
        });
        Ok(())
    }

    async fn window(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<MaintenanceWindow>, StoreError> {
        let sql = format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)");
        let row: Option<WindowRow> = on_pool!(self, p => sqlx::query_as(&sql).bind(id).bind(tenant).fetch_optional(p).await?);
        row.map(WindowRow::into_domain).transpose()
    }

    async fn list_windows(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError> {
        let sql = format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY id");
        let rows: Vec<WindowRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(tenant).fetch_all(p).await?);
        rows.into_iter().map(WindowRow::into_domain).collect()
    }

    async fn update_window(&self, w: &MaintenanceWindow, now: Timestamp) -> Result<(), StoreError> {
        let (start_at, cron, tz) = window_start_columns(&w.start);
        let n = on_pool!(self, p => {
            sqlx::query("UPDATE maintenance_windows SET name = $3, start_at = $4, cron_exp = $5, timezone = $6, duration_ms = $7, scope = $8, action = $9, updated_at = $10 WHERE id = $1 AND tenant_id = $2")
                .bind(&w.id).bind(&w.tenant_id).bind(&w.name)
                .bind(start_at).bind(&cron).bind(&tz)
                .bind(dur_ms(Some(w.duration))).bind(w.scope.to_string()).bind(w.action.as_str())
                .bind(ms(now))
                .execute(p)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_window(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => {
            sqlx::query("DELETE FROM maintenance_windows WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)")
                .bind(id).bind(tenant).execute(p).await?.rows_affected()
        });
        Ok(n > 0)
    }

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
        let now_ms = ms(now);
        if let Pool::Postgres(pool) = &self.pool {
            return insert_findings_pg(pool, tenant_id, scan_id, scanner, findings, now_ms).await;
        }
        in_tx!(self, tx => {
            let mut inserted = 0u64;
            for chunk in findings.chunks(FINDING_BATCH) {
                let mut qb = QueryBuilder::new(format!("INSERT INTO findings ({FINDING_COLUMNS}) "));
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
            let counted: Result<u64, StoreError> = async {
                sqlx::query("UPDATE scans SET findings_count = findings_count + $1 WHERE id = $2")
                    .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
                    .bind(scan_id)
                    .execute(&mut *tx)
                    .await?;
                Ok(inserted)
            }
            .await;
            counted
        })
    }

    async fn list_findings(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
        f: &FindingFilter,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE scan_id = $1 AND ($2 IS NULL OR tenant_id = $2) \
             AND ($3 IS NULL OR severity = $3) AND id > $4 ORDER BY id LIMIT $5"
        );
        let rows: Vec<FindingRow> = on_pool!(self, p => {
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
        let scope = current.scope_key();
        let update = format!(
            "UPDATE scans SET status = 'succeeded', reason = $2, updated_at = $3, finished_at = $3, report_token_hash = NULL, \
               targets_scanned = COALESCE($4, targets_scanned), scope_key = $5 \
             WHERE id = $1 AND status IN ({}) RETURNING {SCAN_COLUMNS}",
            status_list(&ScanStatus::sources_of(ScanStatus::Succeeded))
        );
        let targets = change.targets_scanned.as_ref().map(|t| json_list(t));
        let done = in_tx!(self, tx => {
            let row: Option<ScanRow> = sqlx::query_as(&update)
                .bind(id)
                .bind(&change.reason)
                .bind(ms(now))
                .bind(&targets)
                .bind(&scope)
                .fetch_optional(&mut *tx)
                .await?;
            let out: Result<Scan, StoreError> = match row {
                None => Err(StoreError::Illegal(IllegalTransition { from: current.status, to: ScanStatus::Succeeded })),
                Some(row) => {
                    sqlx::query(UPSERT_IDENTITIES).bind(id).bind(&scope).bind(ms(now)).execute(&mut *tx).await?;
                    sqlx::query(MARK_FIXED).bind(id).bind(ms(now)).bind(&current.tenant_id).bind(&scope).execute(&mut *tx).await?;
                    row.into_domain()
                }
            };
            out
        })?;
        // PostgreSQL plans from table statistics, which a bulk load leaves stale until
        // autovacuum catches up; the docs' advice is to ANALYZE after one.
        if self.backend() == Backend::Postgres && done.findings_count >= BULK_ANALYZE_THRESHOLD {
            if let Pool::Postgres(p) = &self.pool {
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
        let (cmp, order) = if f.oldest_first {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM finding_identities WHERE ($1 IS NULL OR tenant_id = $1) \
             AND ($2 IS NULL OR severity = $2) AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR scanner = $4) \
             AND ($5 IS NULL OR target = $5) AND ($6 IS NULL OR rule_id = $6) \
             AND ($7 IS NULL OR first_seen >= $7) AND ($8 IS NULL OR first_seen < $8) \
             AND ($9 IS NULL OR last_seen >= $9) AND ($10 IS NULL OR last_seen < $10) \
             AND ($11 IS NULL OR LOWER(title) LIKE '%' || LOWER($11) || '%') \
             AND ($12 IS NULL OR id {cmp} $12) ORDER BY id {order} LIMIT $13"
        );
        let rows: Vec<IdentityRow> = on_pool!(self, p => {
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
                .bind(f.text.as_deref())
                .bind(f.after.as_deref())
                .bind(i64::from(f.limit.max(1)))
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
        let sql = format!("SELECT {IDENTITY_COLUMNS} FROM finding_identities WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)");
        let row: Option<IdentityRow> = on_pool!(self, p => sqlx::query_as(&sql).bind(id).bind(tenant).fetch_optional(p).await?);
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
            "UPDATE finding_identities SET triage = $3, triage_comment = $4, triaged_by = $5, triaged_at = $6 \
             WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2) RETURNING {IDENTITY_COLUMNS}"
        );
        let row: Option<IdentityRow> = on_pool!(self, p => {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(tenant)
                .bind(triage.as_str())
                .bind(comment)
                .bind(by)
                .bind(ms(now))
                .fetch_optional(p)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.into_domain()
    }

    async fn diff(&self, tenant: Option<&str>, scan_id: &str) -> Result<RunDiff, StoreError> {
        let Some(scan) = self.scan(tenant, scan_id).await? else {
            return Err(StoreError::NotFound);
        };
        let scope = scan.scope_key();
        let previous: Option<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, created_at FROM scans WHERE scope_key = $1 AND status = 'succeeded' AND created_at < $2 AND id <> $3 ORDER BY created_at DESC, id DESC LIMIT 1")
                .bind(&scope)
                .bind(ms(scan.created_at))
                .bind(scan_id)
                .fetch_optional(p)
                .await?
        });
        // The two runs' fingerprints come from index-only range scans and are compared here:
        // this stays fast however fresh the tables' planner statistics are.
        let current = self.fingerprints_of(scan_id).await?;
        let Some((prev_id, prev_created)) = previous else {
            let all: Vec<String> = current.into_iter().collect();
            let new = self.findings_by_fingerprint(scan_id, &all).await?;
            return Ok(RunDiff {
                previous_scan_id: None,
                new,
                fixed: Vec::new(),
                reopened: Vec::new(),
                unchanged: 0,
            });
        };
        let before = self.fingerprints_of(&prev_id).await?;
        let appeared: Vec<String> = current.difference(&before).cloned().collect();
        let gone: Vec<String> = before.difference(&current).cloned().collect();
        let unchanged = (current.len() - appeared.len()) as u64;
        // A finding that appeared is reopened when its identity predates the previous run.
        let seen_before = self
            .first_seen_before(&scan.tenant_id, &appeared, prev_created)
            .await?;
        let (reopened_fps, new_fps): (Vec<String>, Vec<String>) = appeared
            .into_iter()
            .partition(|fp| seen_before.contains(fp));
        Ok(RunDiff {
            previous_scan_id: Some(prev_id.clone()),
            new: self.findings_by_fingerprint(scan_id, &new_fps).await?,
            fixed: self.findings_by_fingerprint(&prev_id, &gone).await?,
            reopened: self.findings_by_fingerprint(scan_id, &reopened_fps).await?,
            unchanged,
        })
    }

    async fn set_retention(&self, tenant_name: &str, days: Option<u32>) -> Result<(), StoreError> {
        let n = on_pool!(self, p => {
            sqlx::query("UPDATE tenants SET retention_days = $1 WHERE name = $2")
                .bind(days.map(i64::from))
                .bind(tenant_name)
                .execute(p)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn clean_expired_batch(
        &self,
        now: Timestamp,
        default_retention: std::time::Duration,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let default_ms = i64::try_from(default_retention.as_millis()).unwrap_or(i64::MAX);
        let terminal = status_list(
            &ScanStatus::ALL
                .into_iter()
                .filter(|s| s.is_terminal())
                .collect::<Vec<_>>(),
        );
        let expired = format!(
            "SELECT s.id FROM scans s JOIN tenants t ON t.id = s.tenant_id \
             WHERE s.status IN ({terminal}) AND s.created_at < $1 - COALESCE(t.retention_days * 86400000, $2)"
        );
        let findings = format!("DELETE FROM findings WHERE id IN (SELECT f.id FROM findings f WHERE f.scan_id IN ({expired}) LIMIT $3)");
        let scans = format!("DELETE FROM scans WHERE id IN ({expired} LIMIT $3)");
        let identities = "DELETE FROM finding_identities WHERE id IN (SELECT i.id FROM finding_identities i JOIN tenants t ON t.id = i.tenant_id \
             WHERE i.status = 'fixed' AND i.fixed_at < $1 - COALESCE(t.retention_days * 86400000, $2) LIMIT $3)";
        let limit = i64::from(batch.max(1));
        // Each statement is its own short transaction, so the API is never locked out for
        // longer than one batch.
        for sql in [findings.as_str(), scans.as_str(), identities] {
            let n = on_pool!(self, p => {
                sqlx::query(sql).bind(ms(now)).bind(default_ms).bind(limit).execute(p).await?.rows_affected()
            });
            if n > 0 {
                return Ok(n);
            }
        }
        Ok(0)
    }
}

/// Rows fetched per `IN (...)` list: far below either backend's bound-parameter limit.
const ID_CHUNK: usize = 1000;

/// Separates aggregated fingerprints: a control character no fingerprint contains (the
/// report endpoint rejects fingerprints with control characters).
const FP_SEPARATOR: &str = "\u{1e}";

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|k| format!("${k}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Folds a completed scan's findings into its tenant's identities: new ones open, fixed
/// ones reopened, the latest attributes kept. `$1` scan, `$2` scope, `$3` now.
const UPSERT_IDENTITIES: &str = "INSERT INTO finding_identities (id, tenant_id, fingerprint, scope_key, scanner, target, rule_id, severity, title, location, detail, status, first_seen, last_seen, introduced_by, last_scan, triage) \
             SELECT f.id, f.tenant_id, f.fingerprint, $2, f.scanner, f.target, f.rule_id, f.severity, f.title, f.location, f.detail, 'open', $3, $3, f.scan_id, f.scan_id, 'none' \
             FROM findings f WHERE f.scan_id = $1 \
             ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET \
               last_seen = excluded.last_seen, last_scan = excluded.last_scan, scope_key = excluded.scope_key, \
               target = excluded.target, rule_id = excluded.rule_id, severity = excluded.severity, title = excluded.title, \
               location = excluded.location, detail = excluded.detail, \
               status = CASE WHEN finding_identities.status = 'fixed' THEN 'reopened' ELSE finding_identities.status END, \
               fixed_by = CASE WHEN finding_identities.status = 'fixed' THEN NULL ELSE finding_identities.fixed_by END, \
               fixed_at = CASE WHEN finding_identities.status = 'fixed' THEN NULL ELSE finding_identities.fixed_at END";

/// Marks fixed every live identity of the scope that the completed scan `$1` did not
/// report. `$2` now, `$3` tenant, `$4` scope.
const MARK_FIXED: &str = "UPDATE finding_identities SET status = 'fixed', fixed_by = $1, fixed_at = $2 \
             WHERE tenant_id = $3 AND scope_key = $4 AND status IN ('open', 'reopened') AND last_scan <> $1";

/// Findings in one completed scan above which PostgreSQL statistics are refreshed.
const BULK_ANALYZE_THRESHOLD: u64 = 50_000;

impl SqlStore {
    /// The fingerprints of one scan, read from the `(scan_id, fingerprint)` index alone and
    /// sent as one aggregated string: row by row, the SQLite driver's per-row cost would
    /// dominate a 100,000-finding diff.
    async fn fingerprints_of(
        &self,
        scan_id: &str,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let agg = match self.backend() {
            Backend::Postgres => "string_agg(fingerprint, $2)",
            Backend::Sqlite => "group_concat(fingerprint, $2)",
        };
        let sql = format!("SELECT {agg} FROM findings WHERE scan_id = $1");
        let joined: Option<String> = on_pool!(self, p => sqlx::query_scalar(&sql).bind(scan_id).bind(FP_SEPARATOR).fetch_one(p).await?);
        Ok(joined
            .as_deref()
            .unwrap_or("")
            .split(FP_SEPARATOR)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The findings of `scan_id` with these fingerprints, in id order.
    async fn findings_by_fingerprint(
        &self,
        scan_id: &str,
        fingerprints: &[String],
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let mut out = Vec::with_capacity(fingerprints.len());
        for chunk in fingerprints.chunks(ID_CHUNK) {
            let sql = format!(
                "SELECT {FINDING_COLUMNS} FROM findings WHERE scan_id = $1 AND fingerprint IN ({})",
                placeholders(2, chunk.len())
            );
            let rows: Vec<FindingRow> = on_pool!(self, p => {
                let mut q = sqlx::query_as(&sql).bind(scan_id);
                for fp in chunk {
                    q = q.bind(fp);
                }
                q.fetch_all(p).await?
            });
            for r in rows {
                out.push(r.into_domain()?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Which of these fingerprints have an identity first seen before `before_ms`.
    async fn first_seen_before(
        &self,
        tenant_id: &str,
        fingerprints: &[String],
        before_ms: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut out = std::collections::HashSet::new();
        for chunk in fingerprints.chunks(ID_CHUNK) {
            let sql = format!(
                "SELECT fingerprint FROM finding_identities WHERE tenant_id = $1 AND first_seen < $2 AND fingerprint IN ({})",
                placeholders(3, chunk.len())
            );
            let rows: Vec<String> = on_pool!(self, p => {
                let mut q = sqlx::query_scalar(&sql).bind(tenant_id).bind(before_ms);
                for fp in chunk {
                    q = q.bind(fp);
                }
                q.fetch_all(p).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("scanplane.db"), "scanplane.db");
    }
}
