//! Fresh, isolated stores for tests in every crate: a new SQLite file, or a new database on
//! the PostgreSQL server named by `SCANPLANE_TEST_POSTGRES_URL` (the test command starts a
//! throwaway server and sets it). A missing server is a failure, never a silent skip.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::schedule::{
    initial_ticks, Cadence, MissedTickPolicy, Schedule, ScheduleStatus, TickPlan,
};
use scanplane_core::Timestamp;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{Backend, NewScan, SqlStore, Store, StoreError, TickOutcome, TickStore};

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

/// A connection to the test server's own database, as its superuser: for tests that set
/// up faults (tablespaces, read-only databases) around the store under test.
pub async fn postgres_admin() -> Result<sqlx::PgConnection, String> {
    let base = postgres_url()?;
    let opts = PgConnectOptions::from_str(&base).map_err(|e| format!("{POSTGRES_URL_ENV}: {e}"))?;
    opts.connect()
        .await
        .map_err(|e| format!("cannot reach the test PostgreSQL at {POSTGRES_URL_ENV}: {e}"))
}

/// The URL of database `name` on the test server.
pub fn postgres_database_url(name: &str) -> Result<String, String> {
    let base = postgres_url()?;
    Ok(match base.split_once('?') {
        Some((head, query)) => format!(
            "{}/{name}?{query}",
            head.rsplit_once('/').map_or(head, |x| x.0)
        ),
        None => format!(
            "{}/{name}",
            base.rsplit_once('/').map_or(base.as_str(), |x| x.0)
        ),
    })
}

/// A new unique database name for a test.
pub fn fresh_database_name() -> String {
    format!("sp_test_{}", uuid::Uuid::now_v7().simple())
}

/// Creates an empty database on the test server and returns its URL.
pub async fn fresh_postgres_url() -> Result<String, String> {
    let name = fresh_database_name();
    let mut conn = postgres_admin().await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("CREATE DATABASE failed: {e}"))?;
    let _ = conn.close().await;
    postgres_database_url(&name)
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

/// The scheduler's store role answered on another tokio runtime: tests that pause tokio's
/// clock run the scheduler on the paused runtime while the database driver keeps real time
/// (its pool timeouts would otherwise elapse the moment the paused clock auto-advances).
pub struct OtherRuntimeStore {
    inner: Arc<dyn Store>,
    handle: tokio::runtime::Handle,
}

impl OtherRuntimeStore {
    /// Wraps `inner`, whose pool was opened on `handle`'s runtime.
    pub fn new(inner: Arc<dyn Store>, handle: tokio::runtime::Handle) -> Self {
        Self { inner, handle }
    }

    /// Runs `f` against the full store on the store's runtime.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.handle
            .spawn(f(self.inner.clone()))
            .await
            .map_err(|e| StoreError::Corrupt(format!("store task failed: {e}")))?
    }
}

#[async_trait]
impl TickStore for OtherRuntimeStore {
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        self.run(move |s| async move { s.due_schedules(now, limit).await })
            .await
    }
    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.run(|s| async move { s.next_fire_at().await }).await
    }
    async fn record_tick(
        &self,
        schedule: &Schedule,
        plan: &TickPlan,
        scan: Option<NewScan>,
        now: Timestamp,
    ) -> Result<TickOutcome, StoreError> {
        let (schedule, plan) = (schedule.clone(), plan.clone());
        self.run(move |s| async move { s.record_tick(&schedule, &plan, scan, now).await })
            .await
    }
}

/// A fresh store of `backend` living on its own runtime (kept alive by the returned value),
/// for tests that pause tokio's clock: the code under test gets [`RemoteStore::ticks`], the
/// test's own setup and checks go through [`RemoteStore::run`].
pub struct RemoteStore {
    /// The scheduler's role, answered on the store's runtime.
    pub ticks: Arc<dyn TickStore>,
    remote: Arc<OtherRuntimeStore>,
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
        let inner: Arc<dyn Store> = Arc::new(runtime.block_on(fresh_store(backend)));
        let remote = Arc::new(OtherRuntimeStore::new(inner, runtime.handle().clone()));
        RemoteStore {
            ticks: remote.clone(),
            remote,
            runtime: Some(runtime),
        }
    }

    /// Runs `f` against the full store on the store's runtime, e.g.
    /// `remote.run(|s| async move { s.ensure_tenant("a").await })`.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.remote.run(f).await
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
