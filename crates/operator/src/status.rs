//! What every status of scanplane's resources shares: its one condition, whose transition
//! time survives a resync that changes nothing (so an unchanged status is never rewritten),
//! and times written as RFC 3339 seconds.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition `type_` as it is now: the transition time of `current`'s when its status
/// and reason are the same, else `now`.
pub fn condition(
    current: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Condition {
    let since = current
        .iter()
        .find(|c| c.type_ == type_ && c.status == status && c.reason == reason)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| to_time(now));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_transition_time_moves_only_with_status_or_reason() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 12, 6, 10, 0, 0)
            .single()
            .unwrap_or_default();
        let t1 = t0 + chrono::TimeDelta::hours(1);
        let first = condition(&[], "Ready", "True", "Stored", "ok".into(), Some(1), t0);
        let same = condition(
            std::slice::from_ref(&first),
            "Ready",
            "True",
            "Stored",
            "still ok".into(),
            Some(2),
            t1,
        );
        assert_eq!(same.last_transition_time, first.last_transition_time);
        let moved = condition(
            std::slice::from_ref(&first),
            "Ready",
            "False",
            "InvalidSpec",
            "bad".into(),
            Some(2),
            t1,
        );
        assert_ne!(moved.last_transition_time, first.last_transition_time);
        assert_eq!(rfc3339(t0), "2026-12-06T10:00:00Z");
    }
}
