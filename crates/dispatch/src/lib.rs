//! The dispatcher: the one place that acts on scans after they are queued. Each round it
//! keeps this replica's lease, takes over the attempts of replicas whose lease expired,
//! applies what the executor observes (decided by [`scanplane_core::lifecycle`]), enforces
//! the report deadline of the attempts it owns, sweeps units no attempt needs, runs
//! admission in the store, launches admitted scans on the [`Executor`], and refreshes the
//! gauges.
//!
//! The database is the source of truth: every attempt records its owner (a replica id),
//! its unit of work, when it was launched and when its unit exited. What the dispatcher
//! keeps in memory (`tracked`) is a cache of its own units; any replica can rebuild it.

pub mod cleaner;
pub mod fence;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use scanplane_core::admission::{Decision, Limits};
use scanplane_core::clock::Clock;
use scanplane_core::lifecycle::{
    after_unit, attempt_lost, fit, report_missing, sweep, take_over, Fit, Intent, ListedUnit,
    Sweep, Takeover, UnitState,
};
use scanplane_core::ratelimit::RateLimitPolicy;
use scanplane_core::replica::{LeaseConfig, Replica};
use scanplane_core::scan::{Scan, ScanStatus};
use scanplane_core::Timestamp;
use scanplane_executor::{Executor, LaunchSpec, Observation, Unit};
use scanplane_store::{DispatchStore, ScanChange, StoreError};
use tokio::sync::{mpsc, watch, Notify};

use scanplane_metrics::Metrics;

pub use fence::Fence;

/// Observations kept while the database cannot take them; beyond this the oldest `Running`
/// news goes first (a later state of the same unit supersedes it anyway).
const MAX_PENDING: usize = 100_000;

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
    /// Custom scanners' definitions (JSON), handed to each of their units of work.
    pub scanner_definitions: HashMap<String, String>,
    /// Attempts per scan, the first included (`SCANNER_BACKOFF_LIMIT` + 1).
    pub max_attempts: u32,
    /// Wait after a scan's first failed attempt before the next; doubled after each
    /// further failure, up to `retry_delay_max` (see `lifecycle::retry_delay`).
    pub retry_delay: Duration,
    pub retry_delay_max: Duration,
    /// URL units of work report to.
    pub server_url: String,
    /// How long after a clean exit the final report may still arrive.
    pub report_grace: Duration,
    /// Queued scans considered per admission round.
    pub max_candidates: u32,
    /// Longest sleep between rounds.
    pub max_idle: Duration,
    /// This replica's lease: how long it lasts, how often it is renewed (and how often
    /// expired leases of others are looked for).
    pub lease: LeaseConfig,
    /// How often every unit the executor lists is checked against the attempts.
    pub sweep_every: Duration,
    /// How often attempts of lost or stopped replicas are looked for (a stopped replica's
    /// are taken over within this, an expired lease's within the lease plus this).
    pub claim_every: Duration,
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
            scanner_definitions: HashMap::new(),
            max_attempts: 3,
            retry_delay: Duration::from_secs(10),
            retry_delay_max: Duration::from_secs(300),
            server_url: "http://127.0.0.1:8080".to_string(),
            report_grace: Duration::from_secs(30),
            max_candidates: 1000,
            max_idle: Duration::from_secs(1),
            lease: LeaseConfig::default(),
            sweep_every: Duration::from_secs(30),
            claim_every: Duration::from_secs(1),
        }
    }
}

/// Who this replica is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaIdentity {
    /// Unique per process: hostname (pod name) plus a random suffix.
    pub id: String,
    pub hostname: String,
}

/// A unit of work this replica follows: a cache of what its scan row says.
#[derive(Debug, Clone)]
struct Tracked {
    executor_ref: String,
    launched_at: Timestamp,
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
    replica: ReplicaIdentity,
    fence: Arc<Fence>,
    tracked: HashMap<String, Tracked>,
    /// Observations the store could not take yet, oldest first.
    pending: VecDeque<Observation>,
    /// Executor references recorded in memory whose write to the store failed.
    unrecorded: HashMap<String, String>,
    started_at: Option<Timestamp>,
    last_claim: Option<Timestamp>,
    last_sweep: Option<Timestamp>,
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
    pub replica: ReplicaIdentity,
    /// Shared with the fence task (see [`fence`]) when units die with their replica.
    pub fence: Arc<Fence>,
}

/// Whether a store error is worth keeping an observation for (the database is away), as
/// opposed to one that will recur.
fn transient(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unavailable(_)
            | StoreError::StorageFull(_)
            | StoreError::Database(_)
            | StoreError::Unreachable { .. }
    )
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
            replica,
            fence,
        } = context;
        Self {
            store,
            executor,
            clock,
            config,
            metrics,
            wake,
            observations,
            replica,
            fence,
            tracked: HashMap::new(),
            pending: VecDeque::new(),
            unrecorded: HashMap::new(),
            started_at: None,
            last_claim: None,
            last_sweep: None,
        }
    }

    fn timeout_for(&self, scanner: &str) -> Duration {
        self.config
            .scanner_timeouts
            .get(scanner)
            .copied()
            .unwrap_or(self.config.default_timeout)
    }

    fn grace(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.report_grace)
            .unwrap_or_else(|_| chrono::Duration::seconds(30))
    }

    async fn apply(&mut self, scan: &Scan, intent: Intent) -> Result<(), StoreError> {
        let now = self.clock.now();
        let (to, change) = match intent {
            Intent::Nothing | Intent::AwaitReport => return Ok(()),
            Intent::MarkRunning { reason } => (
                ScanStatus::Running,
                ScanChange {
                    reason,
                    ..Default::default()
                },
            ),
            Intent::Requeue { reason, failures } => {
                let delay = scanplane_core::lifecycle::retry_delay(
                    failures,
                    self.config.retry_delay,
                    self.config.retry_delay_max,
                );
                let retry_at = (!delay.is_zero())
                    .then(|| chrono::Duration::from_std(delay).ok().map(|d| now + d))
                    .flatten();
                let reason = match retry_at {
                    Some(at) => format!(
                        "{reason}; next attempt not before {}",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    None => reason,
                };
                tracing::warn!(scan_run_id = %scan.id, %reason, "scan re-queued");
                (
                    ScanStatus::Queued,
                    ScanChange {
                        reason,
                        retry_at,
                        ..Default::default()
                    },
                )
            }
            Intent::RequeueLost { reason } => {
                tracing::warn!(scan_run_id = %scan.id, %reason, "scan re-queued");
                (
                    ScanStatus::Queued,
                    ScanChange {
                        reason,
                        lost: true,
                        ..Default::default()
                    },
                )
            }
            Intent::End {
                status,
                reason,
                error,
            } => {
                tracing::warn!(scan_run_id = %scan.id, %status, %reason, "scan ended");
                (
                    status,
                    ScanChange {
                        reason,
                        error,
                        ..Default::default()
                    },
                )
            }
        };
        match self.store.transition(&scan.id, to, &change, now).await {
            Ok(done) => {
                if done.status.is_terminal() {
                    self.metrics.scan_ended(
                        done.duration()
                            .map(|d| d.num_milliseconds() as f64 / 1000.0),
                    );
                }
                Ok(())
            }
            // The scan moved on meanwhile (reported, cancelled): nothing to do.
            Err(StoreError::Illegal(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn registration(&self, now: Timestamp) -> Replica {
        Replica {
            id: self.replica.id.clone(),
            hostname: self.replica.hostname.clone(),
            executor: self.executor.name().to_string(),
            started_at: self.started_at.unwrap_or(now),
            heartbeat_at: now,
            lease_until: self.config.lease.until(now),
            stopped_at: None,
            stop_reason: None,
        }
    }

    async fn register(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let r = self.registration(now);
        self.store.register_replica(&r).await?;
        self.started_at.get_or_insert(now);
        self.fence.renewed(r.lease_until);
        Ok(())
    }

    /// Handles a lease the lease keeper found taken over: drops everything this replica
    /// followed (stopping units that die with it anyway) and registers it again.
    async fn keep_lease(&mut self) -> Result<(), StoreError> {
        if !self.fence.take_lost() {
            return Ok(());
        }
        tracing::error!(replica = %self.replica.id, "this replica's lease expired and other replicas took its attempts over; dropping them and registering again");
        let survive = self.executor.units_survive_restart();
        for (scan_id, t) in std::mem::take(&mut self.tracked) {
            if !survive && !t.ended {
                if let Err(e) = self.executor.cancel(&scan_id, &t.executor_ref).await {
                    tracing::debug!(error = %e, "stopping a unit of a lost lease");
                }
            }
        }
        self.unrecorded.clear();
        if let Err(e) = self.register().await {
            // Asked again next round.
            self.fence.set_lost();
            return Err(e);
        }
        Ok(())
    }

    /// Start-up: registers this replica, takes over what lost replicas left, and sweeps.
    /// Never touches attempts a live replica owns. Returns how many attempts it took over.
    pub async fn recover(&mut self) -> Result<u32, StoreError> {
        self.register().await?;
        let taken = self.take_over_now().await?;
        self.sweep_now().await?;
        Ok(taken)
    }

    async fn take_over(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let every = chrono::Duration::from_std(self.config.claim_every)
            .unwrap_or_else(|_| chrono::Duration::seconds(1));
        if let Some(last) = self.last_claim {
            if now - last < every {
                return Ok(());
            }
        }
        self.take_over_now().await.map(|_| ())
    }

    /// Claims the attempts of lost replicas (and of none) and decides each: adopt a unit
    /// that survived, apply how it ended, or re-queue an attempt lost with its replica.
    async fn take_over_now(&mut self) -> Result<u32, StoreError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_orphaned(&self.replica.id, now, 500)
            .await?;
        self.last_claim = Some(now);
        if claimed.is_empty() {
            return Ok(0);
        }
        let survive = self.executor.units_survive_restart();
        let units: Vec<Unit> = if survive {
            match self.executor.list().await {
                Ok(units) => units,
                Err(e) => {
                    // The claimed attempts are ours now; the sweep adopts or ends them once
                    // the executor answers again.
                    tracing::error!(error = %e, "cannot list units of work to adopt taken-over attempts; the sweep retries");
                    self.last_sweep = None;
                    return Ok(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
                }
            }
        } else {
            Vec::new()
        };
        let mut taken = 0u32;
        for (from, scan) in claimed {
            taken = taken.saturating_add(1);
            let why = match &from {
                Some(r) => format!("replica {r} lost"),
                None => "recovered after restart: no replica owned it".to_string(),
            };
            tracing::warn!(scan_run_id = %scan.id, from = from.as_deref().unwrap_or("none"), replica = %self.replica.id, "taking over an attempt");
            let unit = units.iter().find(|u| {
                u.scan_id == scan.id
                    && scanplane_core::lifecycle::is_current_unit(
                        &scan,
                        &ListedUnit {
                            executor_ref: &u.executor_ref,
                            attempt: u.attempt,
                            active: u.active,
                        },
                    )
            });
            let seen = unit.map(|u| if u.active { None } else { u.ended.as_ref() });
            match take_over(&scan, &why, seen, survive, self.config.max_attempts) {
                Takeover::Adopt => {
                    if let Some(u) = unit {
                        self.adopt(&scan, u).await?;
                    }
                }
                Takeover::Act(intent) => {
                    if let Some(u) = unit {
                        let _ = self.executor.cleanup(&u.scan_id, &u.executor_ref).await;
                    }
                    self.apply(&scan, intent).await?;
                }
            }
        }
        Ok(taken)
    }

    /// Follows `unit`, the current unit of `scan`, which this replica owns.
    async fn adopt(&mut self, scan: &Scan, unit: &Unit) -> Result<(), StoreError> {
        let now = self.clock.now();
        if scan.executor_ref.is_none() {
            let status = scan.status;
            match self
                .store
                .set_executor_ref(&scan.id, status, &unit.executor_ref, now)
                .await
            {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.tracked.insert(
            scan.id.clone(),
            Tracked {
                executor_ref: unit.executor_ref.clone(),
                launched_at: scan.launched_at.unwrap_or(now),
                ended: !unit.active,
            },
        );
        tracing::info!(scan_run_id = %scan.id, unit = %unit.executor_ref, "adopted a unit of work");
        if let Some(state) = &unit.ended {
            // It ended while nobody followed it: apply that now (a clean exit starts the
            // report grace if its previous owner had not).
            let o = Observation {
                scan_id: scan.id.clone(),
                executor_ref: unit.executor_ref.clone(),
                state: state.clone(),
            };
            self.observe(o).await?;
        } else if scan.status == ScanStatus::Dispatched {
            let intent = after_unit(
                scan,
                &UnitState::Running { detail: None },
                self.config.max_attempts,
            );
            self.apply(scan, intent).await?;
        }
        Ok(())
    }

    async fn observe(&mut self, o: Observation) -> Result<(), StoreError> {
        let Some(scan) = self.store.scan(None, &o.scan_id).await? else {
            // No scan (purged, another database): only the unit is left to clean up.
            if !matches!(o.state, UnitState::Running { .. }) {
                let _ = self.executor.cleanup(&o.scan_id, &o.executor_ref).await;
            }
            return Ok(());
        };
        let launched = self
            .tracked
            .get(&o.scan_id)
            .map(|t| t.executor_ref.as_str());
        match fit(&scan, &self.replica.id, &o.executor_ref, launched) {
            Fit::Foreign => return Ok(()),
            Fit::Stale => {
                tracing::info!(scan_run_id = %o.scan_id, unit = %o.executor_ref, "observation of an earlier attempt: only its unit is cleaned up");
                if matches!(o.state, UnitState::Running { .. }) {
                    let _ = self.executor.cancel(&o.scan_id, &o.executor_ref).await;
                }
                let _ = self.executor.cleanup(&o.scan_id, &o.executor_ref).await;
                return Ok(());
            }
            Fit::Current => {}
        }
        let now = self.clock.now();
        if let Some(r) = self.unrecorded.get(&o.scan_id).cloned() {
            match self
                .store
                .set_executor_ref(&scan.id, scan.status, &r, now)
                .await
            {
                Ok(()) | Err(StoreError::Conflict(_)) => {
                    self.unrecorded.remove(&o.scan_id);
                }
                Err(e) => return Err(e),
            }
        }
        let ended = !matches!(o.state, UnitState::Running { .. });
        if let Some(t) = self.tracked.get_mut(&o.scan_id) {
            if ended && !t.ended {
                t.ended = true;
                let secs = (now - t.launched_at).num_milliseconds() as f64 / 1000.0;
                self.metrics.job_duration.observe(secs.max(0.0));
            }
        }
        if let UnitState::Running { detail: Some(d) } = &o.state {
            tracing::info!(scan_run_id = %o.scan_id, unit = %d, "unit of work running");
        }
        if ended && self.fence.take_stopped(&o.scan_id) {
            let why = format!("replica {} could not renew its lease", self.replica.id);
            return self.apply(&scan, attempt_lost(&scan, &why)).await;
        }
        if let UnitState::Exited { success: true, .. } = o.state {
            // Durable before anything else: whoever owns the attempt later enforces the
            // report deadline from this instant.
            if scan.exited_at.is_none() {
                self.store
                    .set_exited(&scan.id, &o.executor_ref, now)
                    .await?;
            }
        }
        let intent = after_unit(&scan, &o.state, self.config.max_attempts);
        self.apply(&scan, intent).await
    }

    /// Applies an observation, keeping it for later if the store cannot take it now.
    async fn observe_or_keep(&mut self, o: Observation) -> Result<(), StoreError> {
        match self.observe(o.clone()).await {
            Ok(()) => Ok(()),
            Err(e) if transient(&e) => {
                if self.pending.len() >= MAX_PENDING {
                    if let Some(i) = self
                        .pending
                        .iter()
                        .position(|p| matches!(p.state, UnitState::Running { .. }))
                    {
                        self.pending.remove(i);
                    }
                }
                if self.pending.len() < MAX_PENDING {
                    self.pending.push_back(o);
                } else {
                    tracing::error!(scan_run_id = %o.scan_id, "observation backlog full; the sweep re-derives this unit's state");
                }
                Err(e)
            }
            Err(e) => {
                tracing::error!(scan_run_id = %o.scan_id, error = %e, "an observation could not be applied and was dropped");
                Ok(())
            }
        }
    }

    /// Applies the observations kept while the store was away, oldest first.
    async fn apply_pending(&mut self) -> Result<(), StoreError> {
        while let Some(o) = self.pending.pop_front() {
            if let Err(e) = self.observe(o.clone()).await {
                if transient(&e) {
                    self.pending.push_front(o);
                    return Err(e);
                }
                tracing::error!(scan_run_id = %o.scan_id, error = %e, "a kept observation could not be applied and was dropped");
            }
        }
        Ok(())
    }

    /// Cleans up units whose scan ended or moved to another owner, stops units of scans
    /// cancelled meanwhile, and fails attempts whose unit exited cleanly without reporting
    /// within the grace. Works from the attempts the store says this replica owns.
    async fn reconcile(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let owned = self.store.owned_attempts(&self.replica.id).await?;
        let owned_ids: HashSet<&str> = owned.iter().map(|s| s.id.as_str()).collect();
        let survive = self.executor.units_survive_restart();
        let gone: Vec<(String, Tracked)> = self
            .tracked
            .iter()
            .filter(|(id, _)| !owned_ids.contains(id.as_str()))
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect();
        for (id, t) in gone {
            let scan = self.store.scan(None, &id).await?;
            let stop = match &scan {
                // Ended (reported, cancelled, failed) or re-queued: its unit has no purpose.
                None => true,
                Some(s) if s.status.is_terminal() => true,
                Some(s) if matches!(s.status, ScanStatus::Queued | ScanStatus::Admitted) => true,
                Some(s) if s.owner.as_deref() == Some(self.replica.id.as_str()) => {
                    // Still ours (the listing raced a transition): keep following it.
                    continue;
                }
                // Another replica took it over: its unit is that replica's now, unless it
                // dies with this one anyway.
                Some(_) => !survive,
            };
            if stop {
                if !t.ended {
                    if let Err(e) = self.executor.cancel(&id, &t.executor_ref).await {
                        tracing::debug!(error = %e, "cancel of a finished unit");
                    }
                }
                if let Err(e) = self.executor.cleanup(&id, &t.executor_ref).await {
                    tracing::debug!(error = %e, "cleanup");
                }
            }
            self.tracked.remove(&id);
            self.unrecorded.remove(&id);
        }
        let grace = self.grace();
        for scan in owned {
            if let Some(exited) = scan.exited_at {
                if now - exited >= grace {
                    self.apply(&scan, report_missing()).await?;
                }
            }
        }
        Ok(())
    }

    async fn sweep_if_due(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let every = chrono::Duration::from_std(self.config.sweep_every)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        if let Some(last) = self.last_sweep {
            if now - last < every {
                return Ok(());
            }
        }
        self.sweep_now().await
    }

    /// Checks every unit the executor lists against its scan (read after the listing):
    /// removes units no attempt needs (unknown or ended scans, earlier attempts), adopts the
    /// units of attempts this replica owns but does not follow, and ends owned attempts
    /// whose unit is gone.
    async fn sweep_now(&mut self) -> Result<(), StoreError> {
        let units = match self.executor.list().await {
            Ok(units) => units,
            Err(e) => {
                tracing::error!(error = %e, "cannot list units of work; sweep postponed");
                return Ok(());
            }
        };
        self.last_sweep = Some(self.clock.now());
        let mut seen: HashSet<String> = HashSet::new();
        for u in &units {
            let followed = self
                .tracked
                .get(&u.scan_id)
                .is_some_and(|t| t.executor_ref == u.executor_ref);
            if followed {
                seen.insert(u.scan_id.clone());
                continue;
            }
            let scan = self.store.scan(None, &u.scan_id).await?;
            let listed = ListedUnit {
                executor_ref: &u.executor_ref,
                attempt: u.attempt,
                active: u.active,
            };
            match sweep(&listed, scan.as_ref(), &self.replica.id) {
                Sweep::Keep => {}
                Sweep::Adopt => {
                    if let Some(scan) = &scan {
                        seen.insert(u.scan_id.clone());
                        self.adopt(scan, u).await?;
                    }
                }
                Sweep::Remove(why) => {
                    tracing::warn!(scan_run_id = %u.scan_id, unit = %u.executor_ref, reason = why, "removing a unit of work");
                    if u.active {
                        if let Err(e) = self.executor.cancel(&u.scan_id, &u.executor_ref).await {
                            tracing::warn!(error = %e, "could not stop a unit of work");
                        }
                    }
                    // Stopping a unit that survives its replica (a Job) already removes it.
                    if !u.active || !self.executor.units_survive_restart() {
                        let _ = self.executor.cleanup(&u.scan_id, &u.executor_ref).await;
                    }
                }
            }
        }
        // Attempts this replica owns whose unit no listing shows and that it does not follow:
        // launched and lost without a trace (a launch that died before it was recorded).
        let owned = self.store.owned_attempts(&self.replica.id).await?;
        for scan in owned {
            if seen.contains(&scan.id) || self.tracked.contains_key(&scan.id) {
                continue;
            }
            let intent = after_unit(&scan, &UnitState::Gone, self.config.max_attempts);
            self.apply(&scan, intent).await?;
        }
        Ok(())
    }

    async fn launch_admitted(&mut self) -> Result<(), StoreError> {
        if self.fence.is_raised() {
            return Ok(());
        }
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
                reason: format!(
                    "dispatched: starting its unit of work on replica {}",
                    self.replica.id
                ),
                report_token_hash: Some(scanplane_protocol::token::hash_token(&token)),
                new_attempt: true,
                owner: Some(self.replica.id.clone()),
                ..Default::default()
            };
            let now = self.clock.now();
            let scan = match self
                .store
                .transition(&scan.id, ScanStatus::Dispatched, &change, now)
                .await
            {
                Ok(s) => s,
                // Another replica dispatched it first.
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
                scanner_definition: self.config.scanner_definitions.get(&scan.scanner).cloned(),
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
                            ended: false,
                        },
                    );
                    match self
                        .store
                        .set_executor_ref(&scan.id, ScanStatus::Dispatched, &executor_ref, now)
                        .await
                    {
                        Ok(()) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => {
                            // Recorded on the next observation of this unit.
                            self.unrecorded.insert(scan.id.clone(), executor_ref);
                            return Err(e);
                        }
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
        if self.started_at.is_none() {
            self.recover().await?;
        }
        self.keep_lease().await?;
        self.apply_pending().await?;
        while let Ok(o) = self.observations.try_recv() {
            self.observe_or_keep(o).await?;
        }
        self.take_over().await?;
        self.reconcile().await?;
        self.sweep_if_due().await?;
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
            }
        }
        self.launch_admitted().await?;
        self.refresh_gauges().await?;
        Ok(decisions)
    }

    /// A graceful stop: units that die with this replica are stopped (whole process groups)
    /// and their attempts re-queued with the reason, not charged to the scanner; units that
    /// survive are left to the replicas that take them over. Then the lease is released so
    /// that they do so at once.
    pub async fn stop(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        if !self.executor.units_survive_restart() {
            for (scan_id, t) in &self.tracked {
                if !t.ended {
                    if let Err(e) = self.executor.cancel(scan_id, &t.executor_ref).await {
                        tracing::debug!(error = %e, "stopping a unit at shutdown");
                    }
                }
            }
            let why = format!("replica {} stopped", self.replica.id);
            for scan in self.store.owned_attempts(&self.replica.id).await? {
                self.apply(&scan, attempt_lost(&scan, &why)).await?;
                if let Some(t) = self.tracked.get(&scan.id) {
                    let _ = self.executor.cleanup(&scan.id, &t.executor_ref).await;
                }
            }
            self.tracked.clear();
        }
        self.store
            .release_lease(&self.replica.id, "stopped", now)
            .await?;
        tracing::info!(replica = %self.replica.id, "lease released");
        Ok(())
    }

    /// Runs until `shutdown` turns true, then stops gracefully (see [`Dispatcher::stop`]).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // Nothing is launched before this replica is registered and has sorted out what
        // lost replicas left.
        while let Err(e) = self.recover().await {
            tracing::error!(error = %e, "start-up recovery failed; retrying in 5s");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return,
            }
        }
        tracing::info!(executor = self.executor.name(), replica = %self.replica.id, "dispatcher started");
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
                    if let Err(e) = self.observe_or_keep(o).await {
                        tracing::error!(error = %e, "applying an observation failed; kept for the next round");
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
        // Observations that arrived meanwhile are applied before the attempts are handed over.
        while let Ok(o) = self.observations.try_recv() {
            let _ = self.observe_or_keep(o).await;
        }
        if let Err(e) = self.stop().await {
            tracing::error!(error = %e, "graceful stop incomplete; other replicas take over when the lease expires");
        }
        tracing::info!("dispatcher stopped");
    }
}
