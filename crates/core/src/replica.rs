//! Replicas of `serve` and their leases: who owns which attempt, when a replica counts as
//! lost, and when a replica must stop trusting its own lease. Pure decisions; the store
//! holds the leases and the dispatcher renews them.
//!
//! A replica renews its lease every `renew_every`; others take over its attempts once the
//! lease has expired by their clock. Clocks of replicas must agree to well within
//! `renew_every` (NTP), because a lease is compared across machines.

use std::time::Duration;

use crate::{limits, Timestamp};

/// One `serve` process as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Hostname (the pod name in Kubernetes) plus a random suffix: unique per process.
    pub id: String,
    pub hostname: String,
    /// The executor it runs units on (`local`, `kubernetes`).
    pub executor: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// Others may take over its attempts after this instant.
    pub lease_until: Timestamp,
    /// Set when it stopped gracefully or was declared lost.
    pub stopped_at: Option<Timestamp>,
    pub stop_reason: Option<String>,
}

impl Replica {
    /// Whether it holds a valid lease at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.stopped_at.is_none() && self.lease_until > now
    }
}

/// How long a lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    pub lease: Duration,
    pub renew_every: Duration,
}

/// The default lease: 15 s renewed every 5 s, the values Kubernetes' own leader election
/// uses (lease 15 s, retry 2-5 s). Two renewals may fail (a database failover, a long GC
/// pause) before anyone takes over, and a replica that dies is replaced within ~16 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Shortest lease accepted: below this, a slow database round trip could expire a healthy
/// replica.
pub const MIN_LEASE: Duration = Duration::from_secs(2);

/// Longest lease accepted (an hour): longer leases only delay takeovers.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// Why a lease configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replica lease must be between {min}s and {max}s, got {got_ms}ms", min = MIN_LEASE.as_secs(), max = MAX_LEASE.as_secs())]
pub struct LeaseOutOfRange {
    pub got_ms: u128,
}

impl LeaseConfig {
    /// A lease of `lease`, renewed three times per lease.
    pub fn new(lease: Duration) -> Result<Self, LeaseOutOfRange> {
        if !(MIN_LEASE..=MAX_LEASE).contains(&lease) {
            return Err(LeaseOutOfRange {
                got_ms: lease.as_millis(),
            });
        }
        Ok(Self {
            lease,
            renew_every: lease / 3,
        })
    }

    /// The lease end of a renewal at `now`.
    pub fn until(&self, now: Timestamp) -> Timestamp {
        limits::add(now, self.lease)
    }

    /// Whether a replica whose last successful renewal set `lease_until` must stop the
    /// units that would not survive a takeover: less than one renewal period is left, so
    /// another replica may take its attempts over before it can renew again. Stopping
    /// them first means a scan never has two live units.
    pub fn must_fence(&self, lease_until: Timestamp, now: Timestamp) -> bool {
        limits::add(now, self.renew_every) >= lease_until
    }

    /// Whether a renewal is due, given the last one.
    pub fn renewal_due(&self, last_renewal: Timestamp, now: Timestamp) -> bool {
        limits::add(last_renewal, self.renew_every) <= now
    }
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            lease: DEFAULT_LEASE,
            renew_every: DEFAULT_LEASE / 3,
        }
    }
}

/// Longest hostname part of a replica id.
const MAX_HOST_PART: usize = 48;

/// A replica id from a hostname and a random suffix: the hostname's DNS-safe characters
/// (cut to 48), a dash, the suffix. `hostname` may be anything the OS reports.
pub fn replica_id(hostname: &str, suffix: &str) -> String {
    let host: String = hostname
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(MAX_HOST_PART)
        .collect();
    let host = host.trim_matches(|c| c == '-' || c == '.');
    let host = if host.is_empty() { "replica" } else { host };
    format!("{host}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn lease_bounds_and_renewals() {
        assert!(LeaseConfig::new(Duration::from_secs(1)).is_err());
        assert!(LeaseConfig::new(Duration::from_secs(7200)).is_err());
        let c = LeaseConfig::new(Duration::from_secs(15)).unwrap();
        assert_eq!(c.renew_every, Duration::from_secs(5));
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let until = c.until(t);
        assert_eq!(until, t + chrono::Duration::seconds(15));
        assert!(!c.must_fence(until, t + chrono::Duration::seconds(9)));
        assert!(c.must_fence(until, t + chrono::Duration::seconds(10)));
        assert!(!c.renewal_due(t, t + chrono::Duration::seconds(4)));
        assert!(c.renewal_due(t, t + chrono::Duration::seconds(5)));
        // Extreme instants saturate instead of overflowing.
        assert!(c.must_fence(until, limits::max_time()));
    }

    #[test]
    fn ids_are_dns_safe_and_unique_by_suffix() {
        assert_eq!(replica_id("Scanplane-7f9c", "a1b2"), "scanplane-7f9c-a1b2");
        assert_eq!(replica_id("  ", "x"), "replica-x");
        assert_eq!(replica_id("host_with spaces!", "x"), "hostwithspaces-x");
        assert!(replica_id(&"h".repeat(300), "x").len() <= MAX_HOST_PART + 2);
    }

    #[test]
    fn liveness() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut r = Replica {
            id: "a".into(),
            hostname: "h".into(),
            executor: "local".into(),
            started_at: t,
            heartbeat_at: t,
            lease_until: t + chrono::Duration::seconds(15),
            stopped_at: None,
            stop_reason: None,
        };
        assert!(r.is_live(t));
        assert!(!r.is_live(t + chrono::Duration::seconds(15)));
        r.stopped_at = Some(t);
        assert!(!r.is_live(t));
    }
}
