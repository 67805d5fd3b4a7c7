//! Human durations as written in the API and configuration: `90s`, `5m`, `1h`, `1h30m`, `2d`.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error("duration {0:?} is not of the form <number><unit>, e.g. 90s, 5m, 1h, 1h30m, 2d")]
    Malformed(String),
    #[error("duration {0:?} is too large")]
    Overflow(String),
    #[error("duration {text:?} is too large: at most {max}")]
    TooLarge { text: String, max: String },
}

/// Parses a duration such as `90s`, `5m`, `1h30m` or `2d`. Units: `ms`, `s`, `m`, `h`, `d`,
/// each at most once and largest first (`1h1h` and `30m1h` are refused as probable typos),
/// with no surrounding white space. At most [`crate::limits::MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let malformed = || DurationError::Malformed(text.to_string());
    let mut total_ms: u64 = 0;
    let mut rest = text;
    // Size of the previous unit: each unit must be smaller than the one before it.
    let mut previous_factor = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(malformed());
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        if unit_len == 0 {
            return Err(malformed());
        }
        let (unit, tail) = tail.split_at(unit_len);
        let value: u64 = number
            .parse()
            .map_err(|_| DurationError::Overflow(text.to_string()))?;
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(malformed()),
        };
        if factor >= previous_factor {
            return Err(malformed());
        }
        previous_factor = factor;
        total_ms = value
            .checked_mul(factor)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
        rest = tail;
    }
    let d = Duration::from_millis(total_ms);
    if d > crate::limits::MAX_DURATION {
        return Err(DurationError::TooLarge {
            text: text.to_string(),
            max: format_duration(crate::limits::MAX_DURATION),
        });
    }
    Ok(d)
}

/// Formats a duration in the same notation [`parse_duration`] reads, largest units first.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{}", ms / size, unit));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("5"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("m5"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("5y"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        for typo in [" 5m", "5m ", "1h1h", "30m1h", "5 m"] {
            assert!(
                matches!(parse_duration(typo), Err(DurationError::Malformed(_))),
                "{typo:?} must be refused"
            );
        }
        assert!(matches!(
            parse_duration("99999999999d"),
            Err(DurationError::TooLarge { .. })
        ));
        assert_eq!(parse_duration("3650d"), Ok(crate::limits::MAX_DURATION));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["90s", "5m", "1h30m", "2d", "1d1h1m1s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
