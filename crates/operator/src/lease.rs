//! Leader election through a `coordination.k8s.io` Lease: of several replicas, one reconciles.
//!
//! Every replica runs a [`LeaderElector`]; each round it reads the Lease, lets the pure
//! [`decide`] pick what to do, and writes with optimistic concurrency (`resourceVersion`), so
//! of two replicas racing for an expired Lease the API server lets exactly one win. Leadership
//! is published through a `watch` channel: run the reconcilers only while it reads `true`.
//!
//! A leader that cannot renew steps down `lease_duration - renew_every` after its last
//! successful write, i.e. at least `renew_every` before any other replica may consider the
//! Lease expired; that margin is what absorbs clock skew and request latency.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

/// The Lease name all scanplane replicas compete for unless configured otherwise.
pub const DEFAULT_LEASE_NAME: &str = "scanplane-operator";
/// How long a Lease stays valid after its last renewal, unless configured otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and the others re-read), unless configured otherwise.
pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_secs(5);

/// How many times a release is retried after losing a write race: the release is a courtesy
/// (the Lease expires anyway), so a few attempts are enough.
const RELEASE_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("invalid lease configuration: {0}")]
    Config(&'static str),
    #[error("lost the race for Lease {namespace}/{name}: another writer changed it first")]
    Conflict { namespace: String, name: String },
    #[error("the request for Lease {namespace}/{name} did not complete in time")]
    Timeout { namespace: String, name: String },
    #[error("the Kubernetes API request for the Lease failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the time {0} cannot be written as a Kubernetes MicroTime")]
    Time(DateTime<Utc>),
}

/// What this replica should do with the Lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction {
    /// There is no Lease yet: create it, holding it.
    Create,
    /// This replica holds the Lease: refresh `renewTime`.
    Renew,
    /// The Lease is expired or released: take it over, counting one more transition.
    Acquire,
    /// Another replica holds a valid Lease: do not write, read again later.
    Wait {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// Decides from the Lease as read (`None`: it does not exist) what replica `me` does at `now`.
///
/// `duration` is the fallback validity for a Lease that does not state its own
/// `leaseDurationSeconds`; a holder's own stated duration is what it promised to renew within.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    now: DateTime<Utc>,
    duration: Duration,
) -> LeaseAction {
    let Some(spec) = lease else {
        return LeaseAction::Create;
    };
    // An empty holder is how a replica releases the Lease on shutdown: free for the taking.
    let holder = match spec.holder_identity.as_deref() {
        None | Some("") => return LeaseAction::Acquire,
        Some(holder) => holder,
    };
    if holder == me {
        return LeaseAction::Renew;
    }
    // Without a renewal (or at least an acquisition) time there is no evidence the holder is
    // alive; taking over is safe because the write is conditional on the version we read.
    let Some(last) = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .and_then(from_micro_time)
    else {
        return LeaseAction::Acquire;
    };
    let validity = match spec.lease_duration_seconds {
        Some(secs) if secs > 0 => TimeDelta::seconds(i64::from(secs)),
        // A zero or negative duration is meaningless; fall back to ours rather than treating
        // the holder as instantly expired.
        _ => TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX),
    };
    let expires_at = last
        .checked_add_signed(validity)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    // Valid on [renewTime, renewTime + duration): at exactly the expiry instant it is free,
    // the same convention as client-go's leader election.
    if now >= expires_at {
        LeaseAction::Acquire
    } else {
        LeaseAction::Wait {
            holder: holder.to_string(),
            expires_at,
        }
    }
}

/// The spec to write for `action`, given the spec read (`None` for `Wait`: nothing to write).
pub fn desired_spec(
    current: Option<&LeaseSpec>,
    action: &LeaseAction,
    me: &str,
    now: DateTime<Utc>,
    duration: Duration,
) -> Result<Option<LeaseSpec>, LeaseError> {
    let now_micro = to_micro_time(now)?;
    let seconds = duration_seconds(duration)?;
    // Keep fields this module does not manage (`preferredHolder`, `strategy`) as they are.
    let mut spec = current.cloned().unwrap_or_default();
    match action {
        LeaseAction::Wait { .. } => return Ok(None),
        LeaseAction::Create => {
            spec.acquire_time = Some(now_micro.clone());
            spec.lease_transitions = Some(0);
        }
        LeaseAction::Renew => {
            // The tenure continues: acquireTime and the transition count stay.
            if spec.acquire_time.is_none() {
                spec.acquire_time = Some(now_micro.clone());
            }
            spec.lease_transitions.get_or_insert(0);
        }
        LeaseAction::Acquire => {
            spec.acquire_time = Some(now_micro.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
    }
    spec.holder_identity = Some(me.to_string());
    spec.lease_duration_seconds = Some(seconds);
    spec.renew_time = Some(now_micro);
    Ok(Some(spec))
}

fn to_micro_time(t: DateTime<Utc>) -> Result<MicroTime, LeaseError> {
    k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros())
        .map(MicroTime)
        .map_err(|_| LeaseError::Time(t))
}

fn from_micro_time(t: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.0.as_microsecond())
}

fn duration_seconds(d: Duration) -> Result<i32, LeaseError> {
    if d.subsec_nanos() != 0 {
        return Err(LeaseError::Config(
            "lease_duration must be a whole number of seconds (leaseDurationSeconds)",
        ));
    }
    match i32::try_from(d.as_secs()) {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err(LeaseError::Config(
            "lease_duration must be between 1 second and i32::MAX seconds",
        )),
    }
}

/// Which Lease to compete for, as whom, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    /// Defaults to [`DEFAULT_LEASE_NAME`].
    pub name: String,
    /// This replica's identity (e.g. the pod name); must differ between replicas.
    pub identity: String,
    /// Whole seconds; defaults to [`DEFAULT_LEASE_DURATION`].
    pub lease_duration: Duration,
    /// Shorter than `lease_duration`; defaults to [`DEFAULT_RENEW_EVERY`].
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: DEFAULT_LEASE_NAME.to_string(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_every: DEFAULT_RENEW_EVERY,
        }
    }

    fn validate(&self) -> Result<(), LeaseError> {
        if self.name.is_empty() || self.namespace.is_empty() {
            return Err(LeaseError::Config("namespace and name must not be empty"));
        }
        // An empty identity is how a released Lease reads; holding one must be distinguishable.
        if self.identity.is_empty() {
            return Err(LeaseError::Config("identity must not be empty"));
        }
        duration_seconds(self.lease_duration)?;
        if self.renew_every.is_zero() || self.renew_every >= self.lease_duration {
            return Err(LeaseError::Config(
                "renew_every must be non-zero and shorter than lease_duration",
            ));
        }
        Ok(())
    }
}

/// The outcome of one successful round.
enum Round {
    /// This replica wrote the Lease as holder; `written_at` is taken before `renewTime`.
    Held {
        action: LeaseAction,
        written_at: Instant,
    },
    Waiting {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// Competes for the Lease and publishes whether this replica currently leads.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, LeaseError> {
        config.validate()?;
        let (leader, _) = watch::channel(false);
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leader,
        })
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// `true` while this replica holds a Lease it renewed recently enough to be sure no other
    /// replica may take it over; reconcilers must run only while it reads `true`.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Competes for the Lease until `shutdown` completes, then steps down and releases the
    /// Lease (if held) so a successor need not wait for it to expire.
    ///
    /// Transient API errors are logged and retried; the only error returned is a failed
    /// release, which is harmless beyond delaying the successor by up to `lease_duration`.
    pub async fn run<F>(&self, shutdown: F) -> Result<(), LeaseError>
    where
        F: Future<Output = ()>,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let step_down_after = self.config.lease_duration - self.config.renew_every;
        // While leading: when leadership ends unless a renewal succeeds before.
        let mut deadline: Option<Instant> = None;
        loop {
            let started = Instant::now();
            // A leader's request is useless past its deadline; a follower's is bounded so a
            // hung connection cannot stall the election.
            let bound = deadline.unwrap_or(started + self.config.lease_duration);
            let outcome = tokio::select! {
                biased;
                () = &mut shutdown => break,
                outcome = tokio::time::timeout_at(bound, self.round()) => {
                    outcome.unwrap_or_else(|_| Err(self.timeout()))
                }
            };
            let mut next = started + self.config.renew_every;
            match outcome {
                Ok(Round::Held { action, written_at }) => {
                    deadline = Some(written_at + step_down_after);
                    if self.set_leader(true) {
                        tracing::info!(lease = %self.config.name, identity = %self.config.identity,
                            ?action, "acquired leadership");
                    } else {
                        tracing::debug!(lease = %self.config.name, "renewed the lease");
                    }
                }
                Ok(Round::Waiting { holder, expires_at }) => {
                    deadline = None;
                    if self.set_leader(false) {
                        tracing::warn!(lease = %self.config.name, %holder,
                            "lost leadership: another replica holds the lease");
                    } else {
                        tracing::debug!(lease = %self.config.name, %holder, %expires_at,
                            "the lease is held by another replica");
                    }
                    // Try again as soon as that Lease expires, if that comes before the next
                    // regular round, so a dead leader is replaced promptly.
                    let left = (expires_at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    next = next.min(Instant::now() + left);
                }
                Err(LeaseError::Conflict { .. }) => {
                    // Someone wrote the Lease since we read it; whoever it was, our view is
                    // stale, so stop leading until a fresh read says otherwise.
                    deadline = None;
                    if self.set_leader(false) {
                        tracing::warn!(lease = %self.config.name,
                            "lost leadership: the lease was changed by another writer");
                    } else {
                        tracing::debug!(lease = %self.config.name, "lost the race for the lease");
                    }
                }
                Err(err) => {
                    // Keep leading until the deadline: a single failed renewal is not yet a
                    // reason to stop, the Lease is still ours for a while.
                    tracing::warn!(lease = %self.config.name, error = %err,
                        leader = self.is_leader(), "lease round failed; retrying");
                }
            }
            let wake = deadline.map_or(next, |d| next.min(d));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep_until(wake) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                deadline = None;
                if self.set_leader(false) {
                    tracing::warn!(lease = %self.config.name,
                        "lost leadership: could not renew the lease in time");
                }
            }
        }
        // Stop reconciling before handing the Lease over, never after.
        if self.set_leader(false) {
            tracing::info!(lease = %self.config.name, "stepping down for shutdown");
        }
        let bound = Instant::now() + self.config.lease_duration;
        tokio::time::timeout_at(bound, self.release())
            .await
            .unwrap_or_else(|_| Err(self.timeout()))
    }

    /// One read-decide-write round.
    async fn round(&self) -> Result<Round, LeaseError> {
        let current = self.api.get_opt(&self.config.name).await?;
        // A Lease without a spec is an unheld Lease; it exists, so it must be replaced, not
        // created (a create would fail with AlreadyExists forever).
        let read = current
            .as_ref()
            .map(|lease| lease.spec.clone().unwrap_or_default());
        let written_at = Instant::now();
        let now = Utc::now();
        let action = decide(
            read.as_ref(),
            &self.config.identity,
            now,
            self.config.lease_duration,
        );
        if let LeaseAction::Wait { holder, expires_at } = action {
            return Ok(Round::Waiting { holder, expires_at });
        }
        // Every action but Wait (returned above) yields a spec to write.
        let spec = desired_spec(
            read.as_ref(),
            &action,
            &self.config.identity,
            now,
            self.config.lease_duration,
        )?
        .ok_or(LeaseError::Config("no Lease spec for a write action"))?;
        let pp = PostParams::default();
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&pp, &lease).await
            }
            // The read metadata carries the resourceVersion: the API server rejects the write
            // with 409 if anyone wrote in between, which is what makes the election safe.
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api.replace(&self.config.name, &pp, &lease).await
            }
        };
        match result {
            Ok(_) => Ok(Round::Held { action, written_at }),
            Err(err) => Err(self.classify(err)),
        }
    }

    /// Clears `holderIdentity` if this replica still holds the Lease.
    async fn release(&self) -> Result<(), LeaseError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(());
            };
            let Some(spec) = lease.spec.as_mut() else {
                return Ok(());
            };
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity,
                        "released the lease");
                    return Ok(());
                }
                Err(err) => match self.classify(err) {
                    // Changed since the read (e.g. by a racing renewal): read again.
                    LeaseError::Conflict { .. } if attempt < RELEASE_ATTEMPTS => continue,
                    err => return Err(err),
                },
            }
        }
    }

    fn classify(&self, err: kube::Error) -> LeaseError {
        match err {
            // 409 covers both Conflict (stale resourceVersion) and AlreadyExists (another
            // replica created the Lease first): either way we lost the race.
            kube::Error::Api(status) if status.code == 409 => LeaseError::Conflict {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
            },
            err => LeaseError::Kube(err),
        }
    }

    fn timeout(&self) -> LeaseError {
        LeaseError::Timeout {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
        }
    }

    /// Publishes leadership; returns whether it changed (so transitions are logged once).
    fn set_leader(&self, leader: bool) -> bool {
        self.leader.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "replica-a";
    const OTHER: &str = "replica-b";
    const DURATION: Duration = Duration::from_secs(15);

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn held(holder: Option<&str>, renewed: Option<DateTime<Utc>>, secs: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: renewed.map(|r| to_micro_time(r).unwrap()),
            acquire_time: Some(to_micro_time(t(-100)).unwrap()),
            lease_duration_seconds: secs,
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide(None, ME, t(0), DURATION), LeaseAction::Create);
    }

    #[test]
    fn own_lease_is_renewed_fresh_or_expired() {
        let fresh = held(Some(ME), Some(t(-1)), Some(15));
        assert_eq!(decide(Some(&fresh), ME, t(0), DURATION), LeaseAction::Renew);
        // Nobody took it over (the holder is still us), so renewing keeps the tenure.
        let stale = held(Some(ME), Some(t(-60)), Some(15));
        assert_eq!(decide(Some(&stale), ME, t(0), DURATION), LeaseAction::Renew);
    }

    #[test]
    fn foreign_fresh_lease_is_waited_for() {
        let spec = held(Some(OTHER), Some(t(-5)), Some(15));
        assert_eq!(
            decide(Some(&spec), ME, t(0), DURATION),
            LeaseAction::Wait {
                holder: OTHER.into(),
                expires_at: t(10)
            }
        );
    }

    #[test]
    fn foreign_expired_lease_is_acquired() {
        let spec = held(Some(OTHER), Some(t(-16)), Some(15));
        assert_eq!(
            decide(Some(&spec), ME, t(0), DURATION),
            LeaseAction::Acquire
        );
    }

    #[test]
    fn the_holders_stated_duration_wins_over_ours() {
        let spec = held(Some(OTHER), Some(t(-20)), Some(30));
        assert_eq!(
            decide(Some(&spec), ME, t(0), DURATION),
            LeaseAction::Wait {
                holder: OTHER.into(),
                expires_at: t(10)
            }
        );
        // Missing or nonsensical durations fall back to ours.
        for secs in [None, Some(0), Some(-5)] {
            let spec = held(Some(OTHER), Some(t(-10)), secs);
            assert_eq!(
                decide(Some(&spec), ME, t(0), DURATION),
                LeaseAction::Wait {
                    holder: OTHER.into(),
                    expires_at: t(5)
                }
            );
        }
    }

    #[test]
    fn released_or_unheld_lease_is_acquired() {
        for holder in [None, Some("")] {
            let spec = held(holder, Some(t(-1)), Some(15));
            assert_eq!(
                decide(Some(&spec), ME, t(0), DURATION),
                LeaseAction::Acquire
            );
        }
        assert_eq!(
            decide(Some(&LeaseSpec::default()), ME, t(0), DURATION),
            LeaseAction::Acquire
        );
    }

    #[test]
    fn missing_renew_time_falls_back_to_acquire_time_then_expiry() {
        let mut spec = held(Some(OTHER), None, Some(15));
        spec.acquire_time = Some(to_micro_time(t(-5)).unwrap());
        assert_eq!(
            decide(Some(&spec), ME, t(0), DURATION),
            LeaseAction::Wait {
                holder: OTHER.into(),
                expires_at: t(10)
            }
        );
        spec.acquire_time = None;
        assert_eq!(
            decide(Some(&spec), ME, t(0), DURATION),
            LeaseAction::Acquire
        );
    }

    #[test]
    fn expiry_instant_is_the_first_free_instant() {
        let spec = held(Some(OTHER), Some(t(0)), Some(15));
        let just_before = t(15) - TimeDelta::microseconds(1);
        assert!(matches!(
            decide(Some(&spec), ME, just_before, DURATION),
            LeaseAction::Wait { .. }
        ));
        assert_eq!(
            decide(Some(&spec), ME, t(15), DURATION),
            LeaseAction::Acquire
        );
    }

    #[test]
    fn renewal_time_ahead_of_our_clock_is_still_honoured() {
        // The holder's clock runs ahead of ours: its renewTime is in our future.
        let spec = held(Some(OTHER), Some(t(3)), Some(15));
        assert_eq!(
            decide(Some(&spec), ME, t(0), DURATION),
            LeaseAction::Wait {
                holder: OTHER.into(),
                expires_at: t(18)
            }
        );
    }

    #[test]
    fn create_spec_starts_a_tenure() {
        let spec = desired_spec(None, &LeaseAction::Create, ME, t(0), DURATION)
            .unwrap()
            .unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.acquire_time, Some(to_micro_time(t(0)).unwrap()));
        assert_eq!(spec.renew_time, Some(to_micro_time(t(0)).unwrap()));
    }

    #[test]
    fn renew_spec_keeps_the_tenure() {
        let current = held(Some(ME), Some(t(-5)), Some(15));
        let spec = desired_spec(Some(&current), &LeaseAction::Renew, ME, t(0), DURATION)
            .unwrap()
            .unwrap();
        assert_eq!(spec.acquire_time, current.acquire_time);
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.renew_time, Some(to_micro_time(t(0)).unwrap()));
    }

    #[test]
    fn acquire_spec_counts_a_transition_and_keeps_unmanaged_fields() {
        let mut current = held(Some(OTHER), Some(t(-60)), Some(30));
        current.strategy = Some("OldestEmulationVersion".into());
        let spec = desired_spec(Some(&current), &LeaseAction::Acquire, ME, t(0), DURATION)
            .unwrap()
            .unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(to_micro_time(t(0)).unwrap()));
        assert_eq!(spec.strategy.as_deref(), Some("OldestEmulationVersion"));
        let wait = LeaseAction::Wait {
            holder: OTHER.into(),
            expires_at: t(1),
        };
        assert!(desired_spec(Some(&current), &wait, ME, t(0), DURATION)
            .unwrap()
            .is_none());
    }

    #[test]
    fn config_is_validated() {
        let good = LeaseConfig::new("ns", ME);
        assert_eq!(good.name, DEFAULT_LEASE_NAME);
        assert!(good.validate().is_ok());
        let bad = [
            LeaseConfig {
                identity: String::new(),
                ..good.clone()
            },
            LeaseConfig {
                lease_duration: Duration::from_millis(1500),
                ..good.clone()
            },
            LeaseConfig {
                renew_every: Duration::from_secs(15),
                ..good.clone()
            },
            LeaseConfig {
                renew_every: Duration::ZERO,
                ..good.clone()
            },
        ];
        for config in bad {
            assert!(matches!(config.validate(), Err(LeaseError::Config(_))));
        }
    }
}
