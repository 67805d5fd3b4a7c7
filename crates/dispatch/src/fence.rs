//! The lease keeper and its fence: renews this replica's lease, and when it could not renew
//! in time stops the units of work that would not survive a takeover (child processes),
//! before another replica may take their attempts over and launch them again, so that a
//! scan never has two live units.
//!
//! It runs as its own task, next to the dispatcher: a long dispatch round (launching many
//! units, a slow admission) must neither let the lease lapse nor delay the fence.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use scanplane_core::clock::Clock;
use scanplane_core::replica::LeaseConfig;
use scanplane_core::Timestamp;
use scanplane_executor::Executor;
use scanplane_store::DispatchStore;
use tokio::sync::watch;

/// How often the fence looks at the lease; no I/O happens unless it has to act.
const CHECK_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct State {
    /// The lease end of the last successful renewal.
    lease_until: Option<Timestamp>,
    /// The lease is (about to be) lost: launch nothing, stop what runs.
    fenced: bool,
    /// Units still to be stopped since the fence went up.
    stop_pending: bool,
    /// Scans whose units the fence stopped: their end is the replica's loss, not the
    /// scanner's failure.
    stopped: HashSet<String>,
    /// A renewal found the lease taken over: the dispatcher drops what it followed.
    lost: bool,
}

/// What the dispatcher and the fence task share about the lease.
#[derive(Debug, Default)]
pub struct Fence {
    state: Mutex<State>,
}

impl Fence {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of plain data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A renewal succeeded: the lease runs until `lease_until`.
    pub fn renewed(&self, lease_until: Timestamp) {
        let mut s = self.lock();
        s.lease_until = Some(lease_until);
        s.fenced = false;
        s.stop_pending = false;
    }

    /// Whether a renewal found the lease taken over since last asked.
    pub fn take_lost(&self) -> bool {
        std::mem::take(&mut self.lock().lost)
    }

    /// Keeps the loss flagged (a re-registration failed; the dispatcher retries).
    pub fn set_lost(&self) {
        self.lock().lost = true;
    }

    fn mark_lost(&self) {
        let mut s = self.lock();
        s.lost = true;
        s.lease_until = None;
        if !s.fenced {
            s.fenced = true;
            s.stop_pending = true;
        }
    }

    fn lease_until(&self) -> Option<Timestamp> {
        self.lock().lease_until
    }

    /// Whether the replica must not launch: its lease may be gone.
    pub fn is_raised(&self) -> bool {
        self.lock().fenced
    }

    /// Whether the fence stopped `scan_id`'s unit (asked once per scan).
    pub fn take_stopped(&self, scan_id: &str) -> bool {
        self.lock().stopped.remove(scan_id)
    }

    /// Raises the fence if the lease is too close to its end; returns whether units are
    /// to be stopped now.
    fn check(&self, lease: &LeaseConfig, now: Timestamp) -> bool {
        let mut s = self.lock();
        if let Some(until) = s.lease_until {
            if !s.fenced && lease.must_fence(until, now) {
                s.fenced = true;
                s.stop_pending = true;
            }
        }
        s.stop_pending
    }

    async fn stop_units(&self, executor: &dyn Executor) {
        let units = match executor.list().await {
            Ok(units) => units,
            Err(e) => {
                tracing::error!(error = %e, "fence: cannot list units of work; retrying");
                return;
            }
        };
        for u in units.into_iter().filter(|u| u.active) {
            tracing::warn!(scan_run_id = %u.scan_id, unit = %u.executor_ref, "fence: stopping a unit of work, its replica's lease is about to expire");
            self.lock().stopped.insert(u.scan_id.clone());
            if let Err(e) = executor.cancel(&u.scan_id, &u.executor_ref).await {
                tracing::warn!(error = %e, "fence: could not stop a unit of work");
            }
        }
        self.lock().stop_pending = false;
    }
}

/// What the lease keeper works with.
pub struct LeaseKeeper {
    pub fence: Arc<Fence>,
    pub store: Arc<dyn DispatchStore>,
    pub executor: Arc<dyn Executor>,
    pub clock: Arc<dyn Clock>,
    pub lease: LeaseConfig,
    pub replica_id: String,
}

/// Renews the lease every `renew_every` once the dispatcher registered the replica, and
/// fences when renewals fail for too long, until `shutdown`. Units that survive their
/// replica (Jobs) are never stopped by the fence: whoever takes them over adopts them.
pub async fn run(keeper: LeaseKeeper, mut shutdown: watch::Receiver<bool>) {
    let LeaseKeeper {
        fence,
        store,
        executor,
        clock,
        lease,
        replica_id,
    } = keeper;
    let stops_units = !executor.units_survive_restart();
    let mut last_attempt: Option<Timestamp> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = clock.now();
        // Nothing to renew before the dispatcher registered, or after a loss until it
        // registered again.
        if fence.lease_until().is_some() && last_attempt.is_none_or(|t| lease.renewal_due(t, now)) {
            last_attempt = Some(now);
            let until = lease.until(now);
            match store.renew_lease(&replica_id, until, now).await {
                Ok(true) => fence.renewed(until),
                Ok(false) => {
                    tracing::error!(replica = %replica_id, "this replica's lease was taken over by another replica");
                    fence.mark_lost();
                }
                Err(e) => tracing::warn!(error = %e, "renewing the replica lease failed; retrying"),
            }
        }
        if fence.check(&lease, clock.now()) {
            if stops_units {
                tracing::error!("the replica lease was not renewed in time: stopping this replica's units so that a replica taking them over never runs a scan twice");
                fence.stop_units(executor.as_ref()).await;
            } else {
                fence.lock().stop_pending = false;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn raised_near_the_end_of_the_lease_and_lowered_by_a_renewal() {
        let lease = LeaseConfig::new(Duration::from_secs(15)).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let f = Fence::default();
        assert!(!f.check(&lease, t), "no lease yet: nothing to fence");
        f.renewed(lease.until(t));
        assert!(!f.check(&lease, t + chrono::Duration::seconds(9)));
        assert!(!f.is_raised());
        assert!(f.check(&lease, t + chrono::Duration::seconds(10)));
        assert!(f.is_raised());
        f.renewed(lease.until(t + chrono::Duration::seconds(11)));
        assert!(!f.is_raised());
        f.mark_lost();
        assert!(f.is_raised());
        assert!(f.take_lost() && !f.take_lost(), "a loss is reported once");
    }
}
