//! The dispatcher: the one place that acts on scans after they are queued. Each round it
//! runs admission in the store, launches admitted scans on the [`Executor`], applies what
//! the executor observes (decided by [`scanplane_core::lifecycle`]), stops units of work of
//! scans that ended (cancelled through the API, or reported), and refreshes the gauges.
//! At start-up it recovers every scan a previous process left holding a slot.

pub mod cleaner;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use scanplane_core::admission::{Decision, Limits};
use scanplane_core::clock::Clock;
use scanplane_core::lifecycle::{after_unit, recover, report_missing, Intent, UnitState};
use scanplane_core::ratelimit::RateLimitPolicy;
use scanplane_core::scan::{Scan, ScanStatus};
use scanplane_core::Timestamp;
use scanplane_executor::{Executor, LaunchSpec, Observation};
use scanplane_store::{DispatchStore, ScanChange, StoreError};
use tokio::sync::{mpsc, watch, Notify};

use scanplane_metrics::Metrics;

/// Tunables of the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub limits: Limits,
    pub policies: Vec<RateLimitPolicy>,
    /// `SCANNER_TIMEOUT`: default time a scan may run.
    pub default_timeout: Duration,
    /// Per-scanner timeouts overriding the default.
    pub scanner_timeouts: HashMap<String, Duration>,
    /// Per-scanner images for executors that run images.
    pub scanner_images: HashMap<String, String>,
    /// Attempts per scan, the first included (`SCANNER_BACKOFF_LIMIT` + 1).
    pub max_attempts: u32,
    /// URL units of work report to.
    pub server_url: String,
    /// How long after a clean exit the final report may still arrive.
    pub report_grace: Duration,
    /// Queued scans considered per admission round.
    pub max_candidates: u32,
    /// Longest sleep between rounds.
    pub max_idle: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            limits: Limits {
                global: Some(5),
                ..Default::default()
            },
            policies: Vec::new(),
            default_timeout: Duration::from_secs(1800),
            scanner_timeouts: HashMap::new(),
            scanner_images: HashMap::new(),
            max_attempts: 3,
            server_url: "http://127.0.0.1:8080".to_string(),
            report_grace: Duration::from_secs(30),
            max_candidates: 1000,
            max_idle: Duration::from_secs(1),
        }
    }
}

/// A unit of work this process launched and still tracks.
#[derive(Debug, Clone)]
struct Tracked {
    executor_ref: String,
    launched_at: Timestamp,
    /// Set when the unit exited cleanly and we wait for the final report.
    exited_at: Option<Timestamp>,
    /// The unit has ended (exited, timed out, failed) and needs only cleanup.
    ended: bool,
}

pub struct Dispatcher {
    store: Arc<dyn DispatchStore>,
    executor: Arc<dyn Executor>,
    clock: Arc<dyn Clock>,
    config: DispatchConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    observations: mpsc::UnboundedReceiver<Observation>,
    tracked: HashMap<String, Tracked>,
}

/// What a dispatcher works with: the shared handles and its tunables.
pub struct DispatchContext {
    pub store: Arc<dyn DispatchStore>,
    pub executor: Arc<dyn Executor>,
    pub clock: Arc<dyn Clock>,
    pub config: DispatchConfig,
    pub metrics: Arc<Metrics>,
    /// Notified by the API and the scheduler when there is new work: an early round.
    pub wake: Arc<Notify>,
}

impl Dispatcher {
    /// A dispatcher over `context`, applying what the executor reports on `observations`.
    pub fn new(
        context: DispatchContext,
        observations: mpsc::UnboundedReceiver<Observation>,
    ) -> Self {
        let DispatchContext {
            store,
            executor,
            clock,
            config,
            metrics,
            wake,
        } = context;
        Self {
            store,
            executor,
            clock,
            config,
            metrics,
            wake,
            observations,
            tracked: HashMap::new(),
        }
    }

    fn timeout_for(&self, scanner: &str) -> Duration {
        self.config
            .scanner_timeouts
            .get(scanner)
            .copied()
            .unwrap_or(self.config.default_timeout)
    }

    async fn apply(&mut self, scan: &Scan, intent: Intent) -> Result<(), StoreError> {
        let now = self.clock.now();
        match intent {
            Intent::Nothing | Intent::AwaitReport => Ok(()),
            Intent::MarkRunning { reason } => {
                let change = ScanChange {
                    reason,
                    ..Default::default()
                };
                match self
                    .store
                    .transition(&scan.id, ScanStatus::Running, &change, now)
                    .await
                {
                    Ok(_) | Err(StoreError::Illegal(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Intent::Requeue { reason } => {
                tracing::warn!(scan_run_id = %scan.id, %reason, "scan re-queued");
                let change = ScanChange {
                    reason,
                    ..Default::default()
                };
                match self
                    .store
                    .transition(&scan.id, ScanStatus::Queued, &change, now)
                    .await
                {
                    Ok(_) | Err(StoreError::Illegal(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Intent::End {
                status,
                reason,
                error,
            } => {
                tracing::warn!(scan_run_id = %scan.id, %status, %reason, "scan ended");
                let change = ScanChange {
                    reason,
                    error,
                    ..Default::default()
                };
                match self.store.transition(&scan.id, status, &change, now).await {
                    Ok(done) => {
                        self.metrics.scan_ended(
                            done.status.as_str(),
                            done.duration()
                                .map(|d| d.num_milliseconds() as f64 / 1000.0),
                        );
                        Ok(())
                    }
                    Err(StoreError::Illegal(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Start-up recovery: nothing a previous process left may keep a slot or run unwatched. Units of work that cannot be adopted (child
    /// processes of a previous process) are stopped, so no orphan keeps running. Units that
    /// can (Kubernetes Jobs) are adopted while their scan is live and deleted when their scan
    /// is terminal or unknown. Then every scan holding a slot without a unit is re-queued or
    /// failed, with a reason.
    pub async fn recover(&mut self) -> Result<u32, StoreError> {
        let adopt = self.executor.units_survive_restart();
        let units = match self.executor.list().await {
            Ok(units) => units,
            Err(e) => {
                // Without the list nothing can be told apart: leave the scans as they are
                // rather than re-queue work that may still be running.
                tracing::error!(error = %e, "cannot list units of work; recovery postponed");
                return Err(StoreError::Conflict(format!("executor list failed: {e}")));
            }
        };
        let now = self.clock.now();
        for u in units {
            let scan = self.store.scan(None, &u.scan_id).await?;
            let live = scan.as_ref().is_some_and(|s| s.status.holds_slot());
            if adopt && live {
                self.tracked.insert(
                    u.scan_id.clone(),
                    Tracked {
                        executor_ref: u.executor_ref.clone(),
                        launched_at: now,
                        exited_at: None,
                        ended: !u.active,
                    },
                );
                continue;
            }
            if u.active || !adopt {
                tracing::warn!(scan_run_id = %u.scan_id, unit = %u.executor_ref, "stopping orphaned unit of work");
                if let Err(e) = self.executor.cancel(&u.scan_id, &u.executor_ref).await {
                    tracing::warn!(error = %e, "could not stop orphan");
                }
            }
            if !adopt {
                let _ = self.executor.cleanup(&u.scan_id, &u.executor_ref).await;
            }
        }
        let mut recovered = 0;
        let stuck = self
            .store
            .scans_with_status(
                &[
                    ScanStatus::Admitted,
                    ScanStatus::Dispatched,
                    ScanStatus::Running,
                ],
                100_000,
            )
            .await?;
        let orphaned: Vec<Scan> = stuck
            .into_iter()
            .filter(|s| !self.tracked.contains_key(&s.id))
            .collect();
        for scan in &orphaned {
            let intent = recover(scan, self.config.max_attempts);
            self.apply(scan, intent).await?;
            recovered += 1;
        }
        if recovered > 0 {
            tracing::warn!(recovered, "recovered scans left by a previous process");
        }
        Ok(recovered)
    }

    async fn launch_admitted(&mut self) -> Result<(), StoreError> {
        let admitted = self
            .store
            .scans_with_status(&[ScanStatus::Admitted], 500)
            .await?;
        for scan in admitted {
            if self.tracked.contains_key(&scan.id) {
                continue;
            }
            let token = scanplane_protocol::token::new_report_token();
            let change = ScanChange {
                reason: "dispatched: starting its unit of work".to_string(),
                report_token_hash: Some(scanplane_protocol::token::hash_token(&token)),
                new_attempt: true,
                ..Default::default()
            };
            let now = self.clock.now();
            let scan = match self
                .store
                .transition(&scan.id, ScanStatus::Dispatched, &change, now)
                .await
            {
                Ok(s) => s,
                Err(StoreError::Illegal(_)) => continue,
                Err(e) => return Err(e),
            };
            let tenant = self
                .store
                .tenant(&scan.tenant_id)
                .await?
                .map(|t| t.name)
                .unwrap_or_default();
            let timeout = self.timeout_for(&scan.scanner);
            let spec = LaunchSpec {
                scan_id: scan.id.clone(),
                attempt: scan.attempts,
                tenant,
                schedule_id: scan.schedule_id.clone(),
                trigger: scan.trigger,
                scanner: scan.scanner.clone(),
                targets: scan.targets.clone(),
                billing: scan.billing,
                options: scan.options.clone(),
                timeout,
                server_url: self.config.server_url.clone(),
                report_token: token,
                image: self.config.scanner_images.get(&scan.scanner).cloned(),
            };
            tracing::info!(scan_run_id = %scan.id, scanner = %scan.scanner, targets = scan.targets.len(), timeout = ?timeout, attempt = scan.attempts, "launching scan");
            match self.executor.launch(&spec).await {
                Ok(executor_ref) => {
                    self.metrics.jobs_created.inc();
                    self.tracked.insert(
                        scan.id.clone(),
                        Tracked {
                            executor_ref: executor_ref.clone(),
                            launched_at: now,
                            exited_at: None,
                            ended: false,
                        },
                    );
                    match self
                        .store
                        .set_executor_ref(&scan.id, ScanStatus::Dispatched, &executor_ref, now)
                        .await
                    {
                        Ok(()) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    let intent = after_unit(
                        &scan,
                        &UnitState::Exited {
                            success: false,
                            exit_code: None,
                            message: e.to_string(),
                        },
                        self.config.max_attempts,
                    );
                    self.apply(&scan, intent).await?;
                }
            }
        }
        Ok(())
    }

    async fn observe(&mut self, o: Observation) -> Result<(), StoreError> {
        let Some(scan) = self.store.scan(None, &o.scan_id).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        if let Some(t) = self.tracked.get_mut(&o.scan_id) {
            match &o.state {
                UnitState::Running { .. } => {}
                UnitState::Exited { success: true, .. } => {
                    t.exited_at = Some(now);
                    t.ended = true;
                }
                _ => t.ended = true,
            }
            if t.ended {
                let secs = (now - t.launched_at).num_milliseconds() as f64 / 1000.0;
                self.metrics.job_duration.observe(secs.max(0.0));
            }
        }
        if let UnitState::Running { detail: Some(d) } = &o.state {
            tracing::info!(scan_run_id = %o.scan_id, unit = %d, "unit of work running");
        }
        let intent = after_unit(&scan, &o.state, self.config.max_attempts);
        self.apply(&scan, intent).await
    }

    /// Cleans up units whose scan ended, stops units of scans cancelled meanwhile, and
    /// fails scans whose unit exited cleanly without reporting.
    async fn reconcile(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let grace = chrono::Duration::from_std(self.config.report_grace)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let ids: Vec<String> = self.tracked.keys().cloned().collect();
        for id in ids {
            let Some(t) = self.tracked.get(&id).cloned() else {
                continue;
            };
            let scan = self.store.scan(None, &id).await?;
            let terminal = scan.as_ref().is_none_or(|s| s.status.is_terminal());
            if terminal {
                if !t.ended {
                    // Cancelled (or reported) while still running: stop it now.
                    if let Err(e) = self.executor.cancel(&id, &t.executor_ref).await {
                        tracing::debug!(error = %e, "cancel of finished unit");
                    }
                }
                if let Err(e) = self.executor.cleanup(&id, &t.executor_ref).await {
                    tracing::debug!(error = %e, "cleanup");
                }
                self.tracked.remove(&id);
                continue;
            }
            if let (Some(scan), Some(exited)) = (scan, t.exited_at) {
                if now - exited >= grace {
                    self.apply(&scan, report_missing()).await?;
                }
            } else if t.ended {
                // Ended without a clean exit and the scan went back to the queue: forget it.
                if let Some(s) = self.store.scan(None, &id).await? {
                    if s.status == ScanStatus::Queued {
                        let _ = self.executor.cleanup(&id, &t.executor_ref).await;
                        self.tracked.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }

    async fn refresh_gauges(&self) -> Result<(), StoreError> {
        let counts = self.store.count_by_status().await?;
        let get = |s: ScanStatus| {
            counts
                .iter()
                .find(|(st, _)| *st == s)
                .map_or(0, |(_, n)| *n)
        };
        let active =
            get(ScanStatus::Admitted) + get(ScanStatus::Dispatched) + get(ScanStatus::Running);
        self.metrics
            .active_jobs
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        if self.executor.name() == "kubernetes" {
            self.metrics
                .k8s_jobs_active
                .set(i64::try_from(active).unwrap_or(i64::MAX));
        }
        self.metrics
            .queue_depth
            .set(i64::try_from(get(ScanStatus::Queued)).unwrap_or(i64::MAX));
        Ok(())
    }

    /// One round of work.
    pub async fn round(&mut self) -> Result<Vec<(String, Decision)>, StoreError> {
        while let Ok(o) = self.observations.try_recv() {
            self.observe(o).await?;
        }
        self.reconcile().await?;
        let decisions = self
            .store
            .admission_round(
                &self.config.limits,
                &self.config.policies,
                self.config.max_candidates,
                self.clock.now(),
            )
            .await?;
        for (id, d) in &decisions {
            if let Decision::Skip(reason) = d {
                tracing::info!(scan_run_id = %id, %reason, "scan skipped");
                self.metrics.scan_ended("skipped", None);
            }
        }
        self.launch_admitted().await?;
        self.refresh_gauges().await?;
        Ok(decisions)
    }

    /// Runs until `shutdown` turns true. Units of work keep running across a shutdown;
    /// the next start recovers them.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // Nothing is launched before recovery has sorted out what a previous process left.
        while let Err(e) = self.recover().await {
            tracing::error!(error = %e, "start-up recovery failed; retrying in 5s");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return,
            }
        }
        tracing::info!(executor = self.executor.name(), "dispatcher started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = self.round().await {
                tracing::error!(error = %e, "dispatch round failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.max_idle) => {}
                _ = self.wake.notified() => {}
                Some(o) = self.observations.recv() => {
                    if let Err(e) = self.observe(o).await {
                        tracing::error!(error = %e, "applying an observation failed");
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("dispatcher stopped");
    }
}
