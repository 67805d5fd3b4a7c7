//! The persistent cron scheduler that runs inside `serve`. It asks the store only for due
//! schedules (an indexed range on `next_fire_at`), decides each one's step with the core's
//! pure [`plan_tick`], and records the step and its scan in one transaction whose unique key
//! makes every tick fire at most once, across replicas and crashes. Between due times it
//! sleeps until the earliest `next_fire_at` (at most `max_idle`), or until woken.

use std::sync::Arc;
use std::time::Duration;

use scanplane_core::clock::Clock;
use scanplane_core::scan::Trigger;
use scanplane_core::schedule::{plan_tick, Schedule, ScheduleStatus, TickPlan};
use scanplane_core::Timestamp;
use scanplane_store::{NewScan, StoreError, TickOutcome, TickStore};
use tokio::sync::{watch, Notify};

/// Resolves a scanner's provider (for rate limiting) when a scan is created.
pub type ProviderOf = Arc<dyn Fn(&str, &[String]) -> Option<String> + Send + Sync>;
/// The scope options (canonical JSON) of a scan of a scanner with these options (JSON).
pub type ScopeOf = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// Tunables.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Due schedules fetched per query.
    pub batch: u32,
    /// Longest sleep between looks at the store, so that schedules another replica created
    /// are noticed without a wake-up.
    pub max_idle: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            max_idle: Duration::from_secs(1),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub fired: u64,
    pub skipped: u64,
    /// Ticks another replica handled first.
    pub lost: u64,
}

pub struct Scheduler {
    store: Arc<dyn TickStore>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    wake_dispatcher: Arc<Notify>,
    provider_of: ProviderOf,
    scope_of: ScopeOf,
    config: SchedulerConfig,
}

/// What a scheduler works with: the shared handles and its tunables.
pub struct SchedulerContext {
    pub store: Arc<dyn TickStore>,
    pub clock: Arc<dyn Clock>,
    /// Notified by the API when schedules change: an early pass.
    pub wake: Arc<Notify>,
    /// Notified after a pass that created scans.
    pub wake_dispatcher: Arc<Notify>,
    pub provider_of: ProviderOf,
    pub scope_of: ScopeOf,
    pub config: SchedulerConfig,
}

impl Scheduler {
    pub fn new(context: SchedulerContext) -> Self {
        let SchedulerContext {
            store,
            clock,
            wake,
            wake_dispatcher,
            provider_of,
            scope_of,
            config,
        } = context;
        Self {
            store,
            clock,
            wake,
            wake_dispatcher,
            provider_of,
            scope_of,
            config,
        }
    }

    fn scan_for(&self, s: &Schedule, tick: Timestamp) -> NewScan {
        NewScan {
            tenant_id: s.tenant_id.clone(),
            project_id: s.project_id.clone(),
            schedule_id: Some(s.id.clone()),
            fire_time: Some(tick),
            trigger: Trigger::Schedule,
            scanner: s.scanner.clone(),
            provider: (self.provider_of)(&s.scanner, &s.targets),
            targets: s.targets.clone(),
            billing: s.billing,
            options: s.options.clone(),
            scope_options: (self.scope_of)(&s.scanner, &s.options),
            on_maintenance: s.on_maintenance,
        }
    }

    /// Fires everything due now.
    pub async fn pass(&self) -> Result<PassStats, StoreError> {
        let mut stats = PassStats::default();
        loop {
            let now = self.clock.now();
            let due = self.store.due_schedules(now, self.config.batch).await?;
            let full = due.len() == self.config.batch as usize;
            for mut s in due {
                loop {
                    let plan = match plan_tick(&s, now) {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            // A row that cannot be evaluated (written before a validation
                            // existed, or edited by hand) must not stay due forever: a batch
                            // full of them would otherwise be fetched again and again.
                            self.disable_invalid(&s, &e.to_string(), now).await?;
                            break;
                        }
                    };
                    let scan = plan.fire.map(|tick| self.scan_for(&s, tick));
                    match self.store.record_tick(&s, &plan, scan, now).await? {
                        TickOutcome::Recorded { scan } => {
                            stats.skipped += u64::from(plan.skipped);
                            if plan.skipped > 0 {
                                tracing::warn!(schedule_id = %s.id, skipped = plan.skipped, "missed ticks skipped");
                            }
                            if let Some(scan) = scan {
                                stats.fired += 1;
                                tracing::debug!(schedule_id = %s.id, scan_run_id = %scan.id, fire_time = ?scan.fire_time, "schedule fired");
                            }
                            s.next_tick = plan.next_tick;
                            s.next_fire_at = plan.next_fire_at;
                            s.status = plan.status;
                        }
                        TickOutcome::AlreadyHandled => {
                            stats.lost += 1;
                            break;
                        }
                    }
                }
            }
            if !full {
                break;
            }
        }
        if stats.fired > 0 {
            self.wake_dispatcher.notify_one();
        }
        Ok(stats)
    }

    /// Takes a schedule that cannot be evaluated out of the due set: it is recorded as
    /// completed (it never fires again), with the reason in the log, through the same
    /// compare-and-set as every tick, so a replica that fixed it meanwhile wins. Its owner
    /// sees it completed and can correct it with an update.
    async fn disable_invalid(
        &self,
        s: &Schedule,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        tracing::error!(schedule_id = %s.id, tenant_id = %s.tenant_id, %reason, "schedule cannot be evaluated; it will not fire again");
        let stop = TickPlan {
            fire: None,
            skipped: 0,
            next_tick: None,
            next_fire_at: None,
            status: ScheduleStatus::Completed,
        };
        self.store
            .record_tick(s, &stop, None, now)
            .await
            .map(|_| ())
    }

    /// How long to sleep before the next pass.
    async fn idle_for(&self) -> Duration {
        let max = self.config.max_idle;
        match self.store.next_fire_at().await {
            Ok(Some(next)) => {
                let wait = next - self.clock.now();
                wait.to_std().unwrap_or(Duration::ZERO).min(max)
            }
            Ok(None) => max,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read next due time");
                max
            }
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!("scheduler started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = self.pass().await {
                tracing::error!(error = %e, "scheduler pass failed; retrying");
            }
            let idle = self.idle_for().await;
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("scheduler stopped");
    }
}

/// A clock that follows tokio's (pausable) time from a fixed UTC origin, for tests and
/// simulations of the scheduler.
pub struct TokioClock {
    origin: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(origin: Timestamp) -> Self {
        Self {
            origin,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.origin
            + chrono::Duration::from_std(elapsed).unwrap_or_else(|_| chrono::Duration::zero())
    }
}
