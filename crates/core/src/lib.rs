//! The pure domain of scanplane: tenants, targets, scanners, schedules, scans, findings,
//! maintenance windows and rate limits, plus every decision that can be made as a plain
//! function (state transitions, cron due-times, admission, fingerprints).
//!
//! This crate performs no I/O and depends on no async runtime, database or HTTP stack.
//! Callers pass in "now" and the state they read; functions return decisions.

pub mod admission;
pub mod annotations;
pub mod clock;
pub mod declared;
pub mod duration;
pub mod finding;
pub mod identity;
pub mod lifecycle;
pub mod limits;
pub mod maintenance;
pub mod ratelimit;
pub mod replica;
pub mod scan;
pub mod scanner;
pub mod schedule;
pub mod secret;
pub mod target;
pub mod tenant;

pub use chrono;
pub use chrono_tz;

/// The instant type used across the domain: always UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
