//! Fresh, isolated stores for tests in every crate: a new SQLite file, or a new database on
//! the PostgreSQL server named by `SCANPLANE_TEST_POSTGRES_URL` (the test command starts a
//! throwaway server and sets it). A missing server is a failure, never a silent skip.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use async_trait::async_trait;
use scanplane_core::admission::{Decision, Limits, SlotUsage};
use scanplane_core::finding::Finding;
use scanplane_core::maintenance::MaintenanceWindow;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::ratelimit::RateLimitPolicy;
use scanplane_core::scan::{Scan, ScanStatus};
use scanplane_core::schedule::{
    initial_ticks, Cadence, MissedTickPolicy, Schedule, ScheduleStatus, TickPlan,
};
use scanplane_core::tenant::Tenant;
use scanplane_core::Timestamp;

use scanplane_core::identity::Triage;

use crate::{
    Backend, FindingFilter, FindingIdentity, IdentityFilter, NewScan, RunDiff, ScanChange,
    ScanFilter, SqlStore, Store, StoreError, StoredFinding, TickOutcome,
};

/// Env var naming a PostgreSQL server whose user may create databases.
pub const POSTGRES_URL_ENV: &str = "SCANPLANE_TEST_POSTGRES_URL";

/// The PostgreSQL URL for tests, or a message saying how to get one.
pub fn postgres_url() -> Result<String, String> {
    std::env::var(POSTGRES_URL_ENV).map_err(|_| {
        format!(
            "{POSTGRES_URL_ENV} is not set: run the test suite with ./scripts/test.sh, which starts a \
             throwaway PostgreSQL (apt-get install postgresql), or point {POSTGRES_URL_ENV} at a \
             server whose user may CREATE DATABASE"
        )
    })
}

/// Creates an empty database on the test server and returns its URL.
pub async fn fresh_postgres_url() -> Result<String, String> {
    let base = postgres_url()?;
    let name = format!("sp_test_{}", uuid::Uuid::now_v7().simple());
    let opts = PgConnectOptions::from_str(&base).map_err(|e| format!("{POSTGRES_URL_ENV}: {e}"))?;
    let mut conn = opts
        .clone()
        .connect()
        .await
        .map_err(|e| format!("cannot reach the test PostgreSQL at {POSTGRES_URL_ENV}: {e}"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("CREATE DATABASE failed: {e}"))?;
    let _ = conn.close().await;
    let url = match base.split_once('?') {
        Some((head, query)) => format!(
            "{}/{name}?{query}",
            head.rsplit_once('/').map_or(head, |x| x.0)
        ),
        None => format!(
            "{}/{name}",
            base.rsplit_once('/').map_or(base.as_str(), |x| x.0)
        ),
    };
    Ok(url)
}

/// A fresh SQLite file path in the temp directory.
pub fn fresh_sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!(
        "scanplane-test-{}.db",
        uuid::Uuid::now_v7().simple()
    ));
    format!("sqlite://{}", path.display())
}

/// The URL of a fresh, empty database of `backend`.
pub async fn fresh_url(backend: Backend) -> Result<String, String> {
    match backend {
        Backend::Sqlite => Ok(fresh_sqlite_url()),
        Backend::Postgres => fresh_postgres_url().await,
    }
}

/// A fresh, migrated store of `backend`. Panics with a clear message when the backend is
/// unavailable: tests must fail, not skip.
pub async fn fresh_store(backend: Backend) -> SqlStore {
    let url = match fresh_url(backend).await {
        Ok(u) => u,
        Err(msg) => panic!("{msg}"),
    };
    match SqlStore::open(&url).await {
        Ok(s) => s,
        Err(e) => panic!("cannot open test store {url}: {e}"),
    }
}

/// An enabled, active schedule of `tcp` over `127.0.0.1`, due at its first tick after `now`.
pub fn new_schedule(tenant_id: &str, id: &str, cadence: Cadence, now: Timestamp) -> Schedule {
    let (next_tick, next_fire_at) = match initial_ticks(id, &cadence, None, now) {
        Ok(t) => t,
        Err(e) => panic!("test schedule {id}: {e}"),
    };
    Schedule {
        id: id.into(),
        tenant_id: tenant_id.into(),
        project_id: None,
        name: format!("schedule-{id}"),
        cadence,
        scanner: "tcp".into(),
        targets: vec!["127.0.0.1".into()],
        billing: false,
        options: "{}".into(),
        enabled: true,
        status: ScheduleStatus::Active,
        missed_tick_policy: MissedTickPolicy::CatchUpOnce,
        starting_deadline: None,
        jitter: None,
        on_maintenance: WindowAction::Hold,
        next_tick,
        next_fire_at,
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// A store whose every call runs on another tokio runtime: tests that pause tokio's clock
/// run the code under test on the paused runtime while the database driver keeps real
/// time (its pool timeouts would otherwise elapse the moment the paused clock auto-advances).
pub struct OtherRuntimeStore {
    inner: std::sync::Arc<dyn Store>,
    handle: tokio::runtime::Handle,
}

impl OtherRuntimeStore {
    /// Wraps `inner`, whose pool was opened on `handle`'s runtime.
    pub fn new(inner: std::sync::Arc<dyn Store>, handle: tokio::runtime::Handle) -> Self {
        Self { inner, handle }
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.handle
            .spawn(f)
            .await
            .map_err(|e| StoreError::Corrupt(format!("store task failed: {e}")))?
    }
}

/// Clones the arguments of a forwarded call into owned values and runs it remotely.
macro_rules! forward {
    ($self:ident, |$s:ident| $body:expr) => {{
        let $s = $self.inner.clone();
        $self.run(async move { $body }).await
    }};
}

#[async_trait]
impl Store for OtherRuntimeStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    async fn check_ready(&self) -> Result<(), StoreError> {
        forward!(self, |s| s.check_ready().await)
    }
    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        let name = name.to_string();
        forward!(self, |s| s.ensure_tenant(&name).await)
    }
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let id = id.to_string();
        forward!(self, |s| s.tenant(&id).await)
    }
    async fn create_token(
        &self,
        tenant_id: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<String, StoreError> {
        let (t, n, h) = (
            tenant_id.to_string(),
            name.to_string(),
            token_hash.to_string(),
        );
        forward!(self, |s| s.create_token(&t, &n, &h).await)
    }
    async fn tenant_for_token(&self, token_hash: &str) -> Result<Option<Tenant>, StoreError> {
        let h = token_hash.to_string();
        forward!(self, |s| s.tenant_for_token(&h).await)
    }
    async fn create_scan(&self, scan: NewScan, now: Timestamp) -> Result<Scan, StoreError> {
        forward!(self, |s| s.create_scan(scan, now).await)
    }
    async fn scan(&self, tenant: Option<&str>, id: &str) -> Result<Option<Scan>, StoreError> {
        let (t, id) = (tenant.map(str::to_string), id.to_string());
        forward!(self, |s| s.scan(t.as_deref(), &id).await)
    }
    async fn list_scans(
        &self,
        tenant: Option<&str>,
        filter: &ScanFilter,
    ) -> Result<Vec<Scan>, StoreError> {
        let (t, f) = (tenant.map(str::to_string), filter.clone());
        forward!(self, |s| s.list_scans(t.as_deref(), &f).await)
    }
    async fn transition(
        &self,
        id: &str,
        to: ScanStatus,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError> {
        let (id, c) = (id.to_string(), change.clone());
        forward!(self, |s| s.transition(&id, to, &c, now).await)
    }
    async fn set_executor_ref(
        &self,
        id: &str,
        status: ScanStatus,
        executor_ref: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (id, r) = (id.to_string(), executor_ref.to_string());
        forward!(self, |s| s.set_executor_ref(&id, status, &r, now).await)
    }
    async fn set_error(&self, id: &str, error: &str, now: Timestamp) -> Result<(), StoreError> {
        let (id, e) = (id.to_string(), error.to_string());
        forward!(self, |s| s.set_error(&id, &e, now).await)
    }
    async fn scans_with_status(
        &self,
        statuses: &[ScanStatus],
        limit: u32,
    ) -> Result<Vec<Scan>, StoreError> {
        let st = statuses.to_vec();
        forward!(self, |s| s.scans_with_status(&st, limit).await)
    }
    async fn scan_for_report_token(&self, token_hash: &str) -> Result<Option<Scan>, StoreError> {
        let h = token_hash.to_string();
        forward!(self, |s| s.scan_for_report_token(&h).await)
    }
    async fn slot_usage(&self) -> Result<SlotUsage, StoreError> {
        forward!(self, |s| s.slot_usage().await)
    }
    async fn count_by_status(&self) -> Result<Vec<(ScanStatus, u64)>, StoreError> {
        forward!(self, |s| s.count_by_status().await)
    }
    async fn admission_round(
        &self,
        limits: &Limits,
        policies: &[RateLimitPolicy],
        max_candidates: u32,
        now: Timestamp,
    ) -> Result<Vec<(String, Decision)>, StoreError> {
        let (l, p) = (limits.clone(), policies.to_vec());
        forward!(self, |s| s
            .admission_round(&l, &p, max_candidates, now)
            .await)
    }
    async fn create_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let sc = schedule.clone();
        forward!(self, |s| s.create_schedule(&sc).await)
    }
    async fn schedule(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Schedule>, StoreError> {
        let (t, id) = (tenant.map(str::to_string), id.to_string());
        forward!(self, |s| s.schedule(t.as_deref(), &id).await)
    }
    async fn list_schedules(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        let (t, a) = (tenant.map(str::to_string), after.map(str::to_string));
        forward!(self, |s| s
            .list_schedules(t.as_deref(), a.as_deref(), limit)
            .await)
    }
    async fn update_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let sc = schedule.clone();
        forward!(self, |s| s.update_schedule(&sc).await)
    }
    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        let (t, id) = (tenant.map(str::to_string), id.to_string());
        forward!(self, |s| s.delete_schedule(t.as_deref(), &id).await)
    }
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        forward!(self, |s| s.due_schedules(now, limit).await)
    }
    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError> {
        forward!(self, |s| s.next_fire_at().await)
    }
    async fn record_tick(
        &self,
        schedule: &Schedule,
        plan: &TickPlan,
        scan: Option<NewScan>,
        now: Timestamp,
    ) -> Result<TickOutcome, StoreError> {
        let (sc, p) = (schedule.clone(), plan.clone());
        forward!(self, |s| s.record_tick(&sc, &p, scan, now).await)
    }
    async fn create_window(&self, window: &MaintenanceWindow) -> Result<(), StoreError> {
        let w = window.clone();
        forward!(self, |s| s.create_window(&w).await)
    }
    async fn window(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<MaintenanceWindow>, StoreError> {
        let (t, id) = (tenant.map(str::to_string), id.to_string());
        forward!(self, |s| s.window(t.as_deref(), &id).await)
    }
    async fn list_windows(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError> {
        let t = tenant.map(str::to_string);
        forward!(self, |s| s.list_windows(t.as_deref()).await)
    }
    async fn update_window(
        &self,
        window: &MaintenanceWindow,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let w = window.clone();
        forward!(self, |s| s.update_window(&w, now).await)
    }
    async fn delete_window(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        let (t, id) = (tenant.map(str::to_string), id.to_string());
        forward!(self, |s| s.delete_window(t.as_deref(), &id).await)
    }
    async fn insert_findings(
        &self,
        tenant_id: &str,
        scan_id: &str,
        scanner: &str,
        findings: &[Finding],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (t, id, sc, f) = (
            tenant_id.to_string(),
            scan_id.to_string(),
            scanner.to_string(),
            findings.to_vec(),
        );
        forward!(self, |s| s.insert_findings(&t, &id, &sc, &f, now).await)
    }
    async fn list_findings(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
        filter: &FindingFilter,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let (t, id, f) = (
            tenant.map(str::to_string),
            scan_id.to_string(),
            filter.clone(),
        );
        forward!(self, |s| s.list_findings(t.as_deref(), &id, &f).await)
    }
    async fn complete_scan(
        &self,
        id: &str,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError> {
        let (id, c) = (id.to_string(), change.clone());
        forward!(self, |s| s.complete_scan(&id, &c, now).await)
    }
    async fn list_identities(
        &self,
        tenant: Option<&str>,
        filter: &IdentityFilter,
    ) -> Result<Vec<FindingIdentity>, StoreError> {
        let (t, f) = (tenant.map(str::to_string), filter.clone());
        forward!(self, |s| s.list_identities(t.as_deref(), &f).await)
    }
    async fn identity(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<FindingIdentity>, StoreError> {
        let (t, id) = (tenant.map(str::to_string), id.to_string());
        forward!(self, |s| s.identity(t.as_deref(), &id).await)
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
        let (t, id, c, b) = (
            tenant.map(str::to_string),
            id.to_string(),
            comment.map(str::to_string),
            by.to_string(),
        );
        forward!(self, |s| s
            .set_triage(t.as_deref(), &id, triage, c.as_deref(), &b, now)
            .await)
    }
    async fn diff(&self, tenant: Option<&str>, scan_id: &str) -> Result<RunDiff, StoreError> {
        let (t, id) = (tenant.map(str::to_string), scan_id.to_string());
        forward!(self, |s| s.diff(t.as_deref(), &id).await)
    }
    async fn set_retention(&self, tenant_name: &str, days: Option<u32>) -> Result<(), StoreError> {
        let n = tenant_name.to_string();
        forward!(self, |s| s.set_retention(&n, days).await)
    }
    async fn clean_expired_batch(
        &self,
        now: Timestamp,
        default_retention: std::time::Duration,
        batch: u32,
    ) -> Result<u64, StoreError> {
        forward!(self, |s| s
            .clean_expired_batch(now, default_retention, batch)
            .await)
    }
}

/// A fresh store of `backend` living on its own runtime (kept alive by the returned value),
/// for tests that pause tokio's clock.
pub struct RemoteStore {
    pub store: std::sync::Arc<dyn Store>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RemoteStore {
    /// Must be called outside any async context (before the test's runtime starts, or from a
    /// blocking thread).
    pub fn fresh(backend: Backend) -> Self {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("cannot start the store runtime: {e}"),
        };
        let inner: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(runtime.block_on(fresh_store(backend)));
        let store = std::sync::Arc::new(OtherRuntimeStore::new(inner, runtime.handle().clone()));
        RemoteStore {
            store,
            runtime: Some(runtime),
        }
    }
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        // Dropped from async tests: shut down without blocking the caller's runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
