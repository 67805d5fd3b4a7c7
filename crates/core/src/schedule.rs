//! Schedules: cron (5 or 6 fields, IANA time zone) or one-shot, and the pure decision of
//! what a due schedule must do now: which tick to fire, which missed ticks to skip, and
//! when it is next due.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use sha2::{Digest, Sha256};

use crate::limits;
use crate::maintenance::WindowAction;
use crate::Timestamp;

/// A tick later than this is "missed" and handled by the schedule's [`MissedTickPolicy`];
/// ticks that are only this late (a busy scheduler, a short restart) are fired one by one.
pub const MISSED_GRACE: Duration = Duration::from_secs(30);

/// Upper bound on ticks examined in one decision, so that a per-second schedule after a
/// month of downtime costs a bounded amount of work.
const MAX_TICKS_SCANNED: usize = 10_000;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Cadence {
    /// A cron expression evaluated in an IANA time zone.
    Cron { expr: String, timezone: Tz },
    /// One run at a fixed time, after which the schedule is completed.
    Once { at: Timestamp },
    /// A run every `period` (at least [`MIN_INTERVAL`]), at `anchor + k * period`.
    Every { period: Duration, anchor: Timestamp },
}

/// The shortest period of an interval cadence: a shorter one is a busy loop, not a schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Why a cadence was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CadenceError {
    #[error("invalid cron expression {0:?}: {1}")]
    InvalidCron(String, String),
    #[error("unknown time zone {0:?}; expected an IANA name such as UTC or Europe/Berlin")]
    UnknownTimezone(String),
    #[error("cron expression {0:?} never fires")]
    NeverFires(String),
    #[error("interval {0:?} is shorter than the minimum of 1m")]
    IntervalTooShort(String),
}

/// Parses a cron expression with optional seconds (5 or 6 fields).
pub fn parse_cron(expr: &str) -> Result<Cron, CadenceError> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(CadenceError::InvalidCron(
            expr.to_string(),
            format!("expected 5 or 6 fields, found {fields}"),
        ));
    }
    Cron::new(expr)
        .with_seconds_optional()
        .with_dom_and_dow()
        .parse()
        .map_err(|e| CadenceError::InvalidCron(expr.to_string(), e.to_string()))
}

pub fn parse_timezone(name: &str) -> Result<Tz, CadenceError> {
    Tz::from_str(name).map_err(|_| CadenceError::UnknownTimezone(name.to_string()))
}

impl Cadence {
    /// Builds and validates a cron cadence.
    pub fn cron(expr: &str, timezone: &str) -> Result<Self, CadenceError> {
        let tz = parse_timezone(timezone)?;
        let cadence = Cadence::Cron {
            expr: expr.trim().to_string(),
            timezone: tz,
        };
        // An expression such as `0 0 31 2 *` parses but never fires: reject it up front.
        let probe = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        if let Some(probe) = probe {
            if cadence.next_after(probe)?.is_none() {
                return Err(CadenceError::NeverFires(expr.to_string()));
            }
        }
        Ok(cadence)
    }

    /// Builds an interval cadence anchored at `anchor` (usually its creation time).
    pub fn every(period: Duration, anchor: Timestamp) -> Result<Self, CadenceError> {
        if period < MIN_INTERVAL {
            return Err(CadenceError::IntervalTooShort(
                crate::duration::format_duration(period),
            ));
        }
        Ok(Cadence::Every { period, anchor })
    }

    /// The first tick strictly after `after`, or `None` if there is none.
    pub fn next_after(&self, after: Timestamp) -> Result<Option<Timestamp>, CadenceError> {
        match self {
            Cadence::Once { at } => Ok((*at > after).then_some(*at)),
            Cadence::Every { period, anchor } => Ok(every_next_after(*period, *anchor, after)),
            Cadence::Cron { expr, timezone } => {
                // Cron times are evaluated between 1970 and 9999 only: near the ends of the
                // representable range a time zone offset overflows inside the cron library.
                if after >= limits::max_time() {
                    return Ok(None);
                }
                let after = after.max(limits::min_time());
                let cron = parse_cron(expr)?;
                let local = after.with_timezone(timezone);
                match cron.find_next_occurrence(&local, false) {
                    Ok(t) => Ok(Some(t.with_timezone(&Utc))),
                    Err(_) => Ok(None),
                }
            }
        }
    }

    /// The first tick at or after `from`.
    pub fn first_at_or_after(&self, from: Timestamp) -> Result<Option<Timestamp>, CadenceError> {
        match self {
            Cadence::Once { at } => Ok((*at >= from).then_some(*at)),
            Cadence::Cron { .. } | Cadence::Every { .. } => {
                self.next_after(limits::add_millis(from, -1))
            }
        }
    }
}

/// The first `anchor + k * period` (k ≥ 0) strictly after `after`, in constant time
/// whatever the distance; `None` past the end of the representable range. A stored period
/// below 1 ms (never accepted by [`Cadence::every`]) is taken as 1 ms.
fn every_next_after(period: Duration, anchor: Timestamp, after: Timestamp) -> Option<Timestamp> {
    if after >= limits::max_time() {
        return None;
    }
    if after < anchor {
        return Some(anchor);
    }
    let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
    let since = (after - anchor).num_milliseconds();
    let k = (since / period_ms).saturating_add(1);
    let next = limits::add_millis(anchor, k.saturating_mul(period_ms));
    (next > after && next < limits::max_time()).then_some(next)
}

/// What to do with ticks missed while no scheduler was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedTickPolicy {
    /// Fire once for the latest missed tick, skip the older ones.
    CatchUpOnce,
    /// Fire none of the missed ticks.
    Skip,
}

impl MissedTickPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedTickPolicy::CatchUpOnce => "catch_up_once",
            MissedTickPolicy::Skip => "skip",
        }
    }
}

impl FromStr for MissedTickPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "catch_up_once" => Ok(MissedTickPolicy::CatchUpOnce),
            "skip" => Ok(MissedTickPolicy::Skip),
            other => Err(format!(
                "unknown missed-tick policy {other:?}; expected catch_up_once or skip"
            )),
        }
    }
}

/// Whether a schedule will fire again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleStatus {
    Active,
    /// A one-shot schedule that has fired (or was skipped), or a cron that never fires again.
    Completed,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Active => "active",
            ScheduleStatus::Completed => "completed",
        }
    }
}

impl fmt::Display for ScheduleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScheduleStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(ScheduleStatus::Active),
            "completed" => Ok(ScheduleStatus::Completed),
            other => Err(format!("unknown schedule status {other:?}")),
        }
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: String,
    pub tenant_id: String,
    pub project_id: Option<String>,
    pub name: String,
    pub cadence: Cadence,
    pub scanner: String,
    pub targets: Vec<String>,
    pub billing: bool,
    /// Scanner options, JSON text.
    pub options: String,
    pub enabled: bool,
    pub status: ScheduleStatus,
    pub missed_tick_policy: MissedTickPolicy,
    /// A tick later than this is never started.
    pub starting_deadline: Option<Duration>,
    /// Fire each tick at a deterministic offset in `[0, jitter)` after it.
    pub jitter: Option<Duration>,
    /// What a maintenance window does to this schedule's scans (hold by default).
    pub on_maintenance: WindowAction,
    /// The next nominal tick (the cron time); `None` once completed.
    pub next_tick: Option<Timestamp>,
    /// When the next tick is due: `next_tick` plus its jitter offset.
    pub next_fire_at: Option<Timestamp>,
    pub last_fired_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The deterministic jitter offset of one tick of one schedule: every replica computes the
/// same offset, so the exactly-once key stays the nominal tick.
pub fn jitter_offset(
    schedule_id: &str,
    tick: Timestamp,
    jitter: Option<Duration>,
) -> chrono::Duration {
    let Some(j) = jitter else {
        return chrono::Duration::zero();
    };
    // Bounded so that the offset always fits a chrono duration, whatever was stored.
    let span = j.min(limits::MAX_DURATION).as_millis() as u64;
    if span == 0 {
        return chrono::Duration::zero();
    }
    let mut h = Sha256::new();
    h.update(schedule_id.as_bytes());
    h.update(tick.timestamp_millis().to_be_bytes());
    let digest = h.finalize();
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&digest[..8]);
    let offset = u64::from_be_bytes(eight) % span;
    chrono::Duration::milliseconds(offset as i64)
}

/// When `tick` of `schedule_id` is due.
pub fn fire_at(schedule_id: &str, tick: Timestamp, jitter: Option<Duration>) -> Timestamp {
    tick.checked_add_signed(jitter_offset(schedule_id, tick, jitter))
        .unwrap_or(Timestamp::MAX_UTC)
}

/// The first tick of a new or edited schedule: the first tick strictly after `now` (a
/// schedule never fires for a time before it existed).
pub fn initial_ticks(
    schedule_id: &str,
    cadence: &Cadence,
    jitter: Option<Duration>,
    now: Timestamp,
) -> Result<(Option<Timestamp>, Option<Timestamp>), CadenceError> {
    let tick = match cadence {
        // A one-shot time in the past still fires once (catch-up) unless it is skipped later.
        Cadence::Once { at } => Some(*at),
        Cadence::Cron { .. } | Cadence::Every { .. } => cadence.next_after(now)?,
    };
    Ok((tick, tick.map(|t| fire_at(schedule_id, t, jitter))))
}

/// One step of work for a due schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct TickPlan {
    /// The nominal tick to create a scan for, if any (unique per schedule in the store).
    pub fire: Option<Timestamp>,
    /// Ticks passed over without a scan.
    pub skipped: u32,
    /// The schedule's next nominal tick; `None` when it will not fire again.
    pub next_tick: Option<Timestamp>,
    pub next_fire_at: Option<Timestamp>,
    pub status: ScheduleStatus,
}

/// Decides what a schedule must do at `now`. Returns `None` when nothing is due.
/// Called repeatedly until it returns `None`: each call fires at most one tick.
pub fn plan_tick(schedule: &Schedule, now: Timestamp) -> Result<Option<TickPlan>, CadenceError> {
    if !schedule.enabled || schedule.status == ScheduleStatus::Completed {
        return Ok(None);
    }
    let (Some(first), Some(first_fire)) = (schedule.next_tick, schedule.next_fire_at) else {
        return Ok(None);
    };
    if first_fire > now {
        return Ok(None);
    }
    let grace =
        chrono::Duration::from_std(MISSED_GRACE).unwrap_or_else(|_| chrono::Duration::zero());
    let deadline = schedule
        .starting_deadline
        .and_then(|d| chrono::Duration::from_std(d).ok());
    let due_at = |t: Timestamp| fire_at(&schedule.id, t, schedule.jitter);

    // Collect the due ticks: the missed ones (more than the grace late) and the first one
    // that is due but not yet missed.
    let mut missed: Vec<Timestamp> = Vec::new();
    let mut current: Option<Timestamp> = None;
    let mut tick = Some(first);
    let mut scanned = 0usize;
    // Set when the backlog is too long to walk: the tick to resume from.
    let mut resume_at: Option<Option<Timestamp>> = None;
    while let Some(t) = tick {
        let at = due_at(t);
        if at > now {
            break;
        }
        if now - at > grace {
            missed.push(t);
        } else {
            current = Some(t);
            break;
        }
        scanned += 1;
        if scanned >= MAX_TICKS_SCANNED {
            // Jump over the rest of the backlog: everything before `now - grace` is missed.
            // The catch-up run is then attributed to the last tick walked.
            resume_at = Some(
                schedule
                    .cadence
                    .first_at_or_after(limits::sub(now, MISSED_GRACE))?,
            );
            break;
        }
        tick = schedule.cadence.next_after(t)?;
    }

    let within_deadline = |t: Timestamp| deadline.is_none_or(|d| now - due_at(t) <= d);
    let (fire, skipped) = if let Some(&last_missed) = missed.last() {
        match schedule.missed_tick_policy {
            MissedTickPolicy::CatchUpOnce if within_deadline(last_missed) => {
                (Some(last_missed), missed.len() as u32 - 1)
            }
            _ => (None, missed.len() as u32),
        }
    } else {
        match current {
            Some(t) if within_deadline(t) => (Some(t), 0),
            Some(_) => (None, 1),
            None => (None, 0),
        }
    };

    // The next tick is the one after whatever this step consumed.
    let consumed = if missed.is_empty() {
        current
    } else {
        missed.last().copied()
    };
    let next_tick = match (resume_at, consumed) {
        (Some(resume), _) => resume,
        (None, Some(t)) => schedule.cadence.next_after(t)?,
        (None, None) => tick,
    };
    let next_fire_at = next_tick.map(due_at);
    let status = if next_tick.is_some() {
        ScheduleStatus::Active
    } else {
        ScheduleStatus::Completed
    };
    Ok(Some(TickPlan {
        fire,
        skipped,
        next_tick,
        next_fire_at,
        status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_fires_at_anchor_plus_whole_periods() {
        let anchor = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let six_h = Duration::from_secs(6 * 3600);
        let c = Cadence::every(six_h, anchor).unwrap();
        let at = |h: i64| anchor + chrono::Duration::hours(h);
        assert_eq!(
            c.next_after(anchor - chrono::Duration::hours(1)).unwrap(),
            Some(anchor)
        );
        assert_eq!(c.next_after(anchor).unwrap(), Some(at(6)));
        assert_eq!(c.next_after(at(5)).unwrap(), Some(at(6)));
        assert_eq!(c.next_after(at(6)).unwrap(), Some(at(12)));
        // Far from the anchor it is one division, not a walk.
        assert_eq!(
            c.next_after(at(6 * 100_000 + 1)).unwrap(),
            Some(at(6 * 100_001))
        );
        assert_eq!(c.first_at_or_after(at(12)).unwrap(), Some(at(12)));
        assert!(matches!(
            Cadence::every(Duration::from_secs(59), anchor),
            Err(CadenceError::IntervalTooShort(_))
        ));
    }
    use chrono::{TimeZone, Utc};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn schedule(cadence: Cadence, now: Timestamp) -> Schedule {
        let (next_tick, next_fire_at) = initial_ticks("s1", &cadence, None, now).unwrap();
        Schedule {
            id: "s1".into(),
            tenant_id: "t".into(),
            project_id: None,
            name: "n".into(),
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

    fn apply(s: &mut Schedule, p: &TickPlan) {
        s.next_tick = p.next_tick;
        s.next_fire_at = p.next_fire_at;
        s.status = p.status;
    }

    /// Runs the scheduler's loop in simulated time, once a second, returning fired ticks.
    fn simulate(s: &mut Schedule, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut fired = Vec::new();
        let mut now = from;
        while now <= to {
            while let Some(p) = plan_tick(s, now).unwrap() {
                fired.extend(p.fire);
                apply(s, &p);
            }
            now += chrono::Duration::seconds(1);
        }
        fired
    }

    #[test]
    fn five_and_six_field_expressions() {
        let c = Cadence::cron("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            c.next_after(utc(2026, 1, 1, 0, 0, 0)).unwrap(),
            Some(utc(2026, 1, 1, 0, 15, 0))
        );
        let c = Cadence::cron("*/10 * * * * *", "UTC").unwrap();
        assert_eq!(
            c.next_after(utc(2026, 1, 1, 0, 0, 0)).unwrap(),
            Some(utc(2026, 1, 1, 0, 0, 10))
        );
        assert!(matches!(
            Cadence::cron("* * *", "UTC"),
            Err(CadenceError::InvalidCron(..))
        ));
        assert!(matches!(
            Cadence::cron("61 * * * *", "UTC"),
            Err(CadenceError::InvalidCron(..))
        ));
        assert!(matches!(
            Cadence::cron("0 0 * * *", "Mars/Olympus"),
            Err(CadenceError::UnknownTimezone(_))
        ));
        assert!(matches!(
            Cadence::cron("0 0 31 2 *", "UTC"),
            Err(CadenceError::NeverFires(_))
        ));
    }

    #[test]
    fn time_zone_is_honoured() {
        let c = Cadence::cron("0 9 * * *", "America/New_York").unwrap();
        // 09:00 in New York in January is 14:00 UTC.
        assert_eq!(
            c.next_after(utc(2026, 1, 5, 0, 0, 0)).unwrap(),
            Some(utc(2026, 1, 5, 14, 0, 0))
        );
    }

    #[test]
    fn dst_spring_forward_fires_once_not_never() {
        // Europe/Berlin skips 02:00-03:00 on 2026-03-29.
        let c = Cadence::cron("30 2 * * *", "Europe/Berlin").unwrap();
        let mut s = schedule(c, utc(2026, 3, 27, 12, 0, 0));
        let fired = simulate(
            &mut s,
            utc(2026, 3, 27, 12, 0, 0),
            utc(2026, 3, 30, 12, 0, 0),
        );
        // One run on each of the 28th, 29th (inside the gap: moved, not lost) and 30th.
        assert_eq!(fired.len(), 3, "{fired:?}");
    }

    #[test]
    fn dst_fall_back_fires_once_not_twice() {
        // Europe/Berlin repeats 02:00-03:00 on 2026-10-25.
        let c = Cadence::cron("30 2 * * *", "Europe/Berlin").unwrap();
        let mut s = schedule(c, utc(2026, 10, 23, 12, 0, 0));
        let fired = simulate(
            &mut s,
            utc(2026, 10, 23, 12, 0, 0),
            utc(2026, 10, 26, 12, 0, 0),
        );
        assert_eq!(fired.len(), 3, "{fired:?}");
    }

    #[test]
    fn fires_each_tick_once_when_on_time() {
        let c = Cadence::cron("* * * * * *", "UTC").unwrap();
        let start = utc(2026, 1, 1, 0, 0, 0);
        let mut s = schedule(c, start);
        let fired = simulate(&mut s, start, start + chrono::Duration::seconds(59));
        assert_eq!(fired.len(), 59);
        let mut dedup = fired.clone();
        dedup.dedup();
        assert_eq!(dedup, fired);
    }

    #[test]
    fn catch_up_once_after_downtime() {
        let c = Cadence::cron("0 * * * *", "UTC").unwrap();
        let start = utc(2026, 1, 1, 0, 0, 0);
        let mut s = schedule(c, start);
        // Down for five hours and a half: ticks 01:00..05:00 missed.
        let now = utc(2026, 1, 1, 5, 30, 0);
        let p = plan_tick(&s, now).unwrap().unwrap();
        assert_eq!(p.fire, Some(utc(2026, 1, 1, 5, 0, 0)));
        assert_eq!(p.skipped, 4);
        assert_eq!(p.next_tick, Some(utc(2026, 1, 1, 6, 0, 0)));
        apply(&mut s, &p);
        assert_eq!(plan_tick(&s, now).unwrap(), None);
    }

    #[test]
    fn skip_policy_fires_nothing_missed() {
        let c = Cadence::cron("0 * * * *", "UTC").unwrap();
        let mut s = schedule(c, utc(2026, 1, 1, 0, 0, 0));
        s.missed_tick_policy = MissedTickPolicy::Skip;
        let p = plan_tick(&s, utc(2026, 1, 1, 5, 30, 0)).unwrap().unwrap();
        assert_eq!(p.fire, None);
        assert_eq!(p.skipped, 5);
        assert_eq!(p.next_tick, Some(utc(2026, 1, 1, 6, 0, 0)));
    }

    #[test]
    fn starting_deadline_bounds_catch_up() {
        let c = Cadence::cron("0 * * * *", "UTC").unwrap();
        let mut s = schedule(c, utc(2026, 1, 1, 0, 0, 0));
        s.starting_deadline = Some(Duration::from_secs(600));
        let p = plan_tick(&s, utc(2026, 1, 1, 5, 30, 0)).unwrap().unwrap();
        assert_eq!(
            p.fire, None,
            "the 05:00 tick is 30 minutes late, past the 10 minute deadline"
        );
        let p = plan_tick(&s, utc(2026, 1, 1, 1, 5, 0)).unwrap().unwrap();
        assert_eq!(p.fire, Some(utc(2026, 1, 1, 1, 0, 0)));
    }

    #[test]
    fn one_shot_fires_once_then_completes() {
        let at = utc(2026, 1, 1, 12, 0, 0);
        let mut s = schedule(Cadence::Once { at }, utc(2026, 1, 1, 0, 0, 0));
        assert_eq!(plan_tick(&s, utc(2026, 1, 1, 11, 59, 59)).unwrap(), None);
        let p = plan_tick(&s, at).unwrap().unwrap();
        assert_eq!(p.fire, Some(at));
        assert_eq!(p.status, ScheduleStatus::Completed);
        apply(&mut s, &p);
        assert_eq!(plan_tick(&s, at + chrono::Duration::days(1)).unwrap(), None);
    }

    #[test]
    fn jitter_spreads_ticks_deterministically() {
        let tick = utc(2026, 1, 1, 0, 0, 0);
        let j = Some(Duration::from_secs(600));
        let offsets: Vec<i64> = (0..200)
            .map(|i| jitter_offset(&format!("s{i}"), tick, j).num_milliseconds())
            .collect();
        assert!(offsets.iter().all(|o| (0..600_000).contains(o)));
        let distinct: std::collections::BTreeSet<_> = offsets.iter().map(|o| o / 60_000).collect();
        assert!(
            distinct.len() >= 8,
            "200 schedules land in at least 8 of the 10 minutes"
        );
        assert_eq!(jitter_offset("s1", tick, j), jitter_offset("s1", tick, j));
        assert_eq!(jitter_offset("s1", tick, None), chrono::Duration::zero());
    }

    #[test]
    fn disabled_schedules_never_fire() {
        let c = Cadence::cron("* * * * * *", "UTC").unwrap();
        let mut s = schedule(c, utc(2026, 1, 1, 0, 0, 0));
        s.enabled = false;
        assert_eq!(plan_tick(&s, utc(2026, 1, 2, 0, 0, 0)).unwrap(), None);
    }

    #[test]
    fn long_backlog_is_bounded() {
        let c = Cadence::cron("* * * * * *", "UTC").unwrap();
        let mut s = schedule(c, utc(2026, 1, 1, 0, 0, 0));
        let now = utc(2026, 1, 31, 0, 0, 0);
        let p = plan_tick(&s, now).unwrap().unwrap();
        assert!(p.fire.is_some());
        apply(&mut s, &p);
        // After one catch-up step the schedule is near `now` and only a few ticks remain.
        let mut steps = 0;
        while let Some(p) = plan_tick(&s, now).unwrap() {
            apply(&mut s, &p);
            steps += 1;
            assert!(steps < 100);
        }
    }
}
