//! Bounds on every duration, instant and count that reaches arithmetic, and time arithmetic
//! that cannot overflow. Input is checked against these bounds when it is accepted (a 422
//! naming the field and the limit), and the decision functions still never panic on a value
//! that slipped past (a row written before a bound existed): instants saturate at the ends of
//! the representable range instead of overflowing.

use std::time::Duration;

use chrono::{TimeZone, Utc};

use crate::duration::{format_duration, parse_duration, DurationError};
use crate::Timestamp;

const DAY: u64 = 86_400;

/// The longest duration [`parse_duration`] accepts at all (10 years).
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * DAY);

/// A bounded kind of duration input, each with its own upper limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationLimit {
    /// Schedule jitter: spreads a tick over at most a week.
    Jitter,
    /// How late a missed schedule tick may still start.
    StartingDeadline,
    /// A maintenance window's length.
    WindowDuration,
    /// How long one scan may run.
    ScanTimeout,
    /// How long ended scans are kept.
    Retention,
    /// The period of a rate limit (`count` per `per`).
    RatePeriod,
    /// The period of an interval schedule (`every`).
    Interval,
}

impl DurationLimit {
    /// The longest accepted value.
    pub fn max(self) -> Duration {
        match self {
            DurationLimit::Jitter => Duration::from_secs(7 * DAY),
            DurationLimit::StartingDeadline => Duration::from_secs(366 * DAY),
            DurationLimit::WindowDuration => Duration::from_secs(366 * DAY),
            DurationLimit::ScanTimeout => Duration::from_secs(7 * DAY),
            DurationLimit::Retention => MAX_DURATION,
            DurationLimit::RatePeriod => Duration::from_secs(366 * DAY),
            DurationLimit::Interval => Duration::from_secs(366 * DAY),
        }
    }

    /// Parses `text` and checks it against this limit.
    pub fn parse(self, text: &str) -> Result<Duration, DurationError> {
        let d = parse_duration(text)?;
        self.check(d).map_err(|_| self.too_large(text))
    }

    /// Checks an already parsed duration.
    pub fn check(self, d: Duration) -> Result<Duration, DurationError> {
        if d > self.max() {
            return Err(self.too_large(&format_duration(d)));
        }
        Ok(d)
    }

    fn too_large(self, text: &str) -> DurationError {
        DurationError::TooLarge {
            text: text.to_string(),
            max: format_duration(self.max()),
        }
    }
}

/// Earliest instant accepted as input (one-shot schedule times, window starts).
pub fn min_time() -> Timestamp {
    Utc.timestamp_opt(0, 0)
        .single()
        .unwrap_or(Timestamp::MIN_UTC)
}

/// Latest instant accepted as input: the last second of year 9999.
pub fn max_time() -> Timestamp {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(Timestamp::MAX_UTC)
}

/// Why an instant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")]
pub struct TimeOutOfRange;

/// Checks that an input instant lies in the accepted range.
pub fn check_time(t: Timestamp) -> Result<Timestamp, TimeOutOfRange> {
    if t < min_time() || t > max_time() {
        return Err(TimeOutOfRange);
    }
    Ok(t)
}

/// `t + d`, saturating at the latest representable instant.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(Timestamp::MAX_UTC)
}

/// `t - d`, saturating at the earliest representable instant.
pub fn sub(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(Timestamp::MIN_UTC)
}

/// `t + ms` milliseconds (either sign), saturating at both ends.
pub fn add_millis(t: Timestamp, ms: i64) -> Timestamp {
    let saturated = if ms >= 0 {
        Timestamp::MAX_UTC
    } else {
        Timestamp::MIN_UTC
    };
    chrono::Duration::try_milliseconds(ms)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(saturated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_maximum() {
        assert_eq!(
            DurationLimit::Jitter.parse("8d"),
            Err(DurationError::TooLarge {
                text: "8d".into(),
                max: "7d".into()
            })
        );
        assert_eq!(
            DurationLimit::Jitter.parse("7d"),
            Ok(Duration::from_secs(7 * DAY))
        );
        assert!(DurationLimit::WindowDuration.parse("99999999999d").is_err());
    }

    #[test]
    fn time_arithmetic_saturates() {
        let end = Timestamp::MAX_UTC;
        assert_eq!(add(end, Duration::from_secs(1)), Timestamp::MAX_UTC);
        assert_eq!(add(min_time(), Duration::MAX), Timestamp::MAX_UTC);
        assert_eq!(sub(min_time(), Duration::MAX), Timestamp::MIN_UTC);
        assert_eq!(add_millis(end, i64::MAX), Timestamp::MAX_UTC);
        assert_eq!(add_millis(Timestamp::MIN_UTC, i64::MIN), Timestamp::MIN_UTC);
        assert_eq!(
            add_millis(min_time(), 1500),
            Utc.timestamp_millis_opt(1500).unwrap()
        );
    }

    #[test]
    fn input_times_are_bounded() {
        let year0 = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(check_time(year0), Err(TimeOutOfRange));
        assert!(check_time(max_time()).is_ok());
        assert!(check_time(min_time()).is_ok());
    }
}
