//! Per-provider rate limits as token buckets: `count` scans per `per`, refilled continuously.

use std::time::Duration;

use crate::Timestamp;

/// A limit from the configuration file's `rate_limits`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitPolicy {
    pub provider: String,
    /// Scans allowed per period; also the bucket's burst capacity.
    pub count: u32,
    pub per: Duration,
}

/// A bucket's stored state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub updated_at: Timestamp,
}

impl RateLimitPolicy {
    fn rate_per_ms(&self) -> f64 {
        f64::from(self.count) / (self.per.as_millis().max(1) as f64)
    }

    /// A full bucket, as at first use.
    pub fn fresh(&self, now: Timestamp) -> Bucket {
        Bucket {
            tokens: f64::from(self.count),
            updated_at: now,
        }
    }

    /// The bucket refilled up to `now`.
    pub fn refill(&self, bucket: Bucket, now: Timestamp) -> Bucket {
        let elapsed = (now - bucket.updated_at).num_milliseconds().max(0) as f64;
        Bucket {
            tokens: (bucket.tokens + elapsed * self.rate_per_ms()).min(f64::from(self.count)),
            updated_at: now.max(bucket.updated_at),
        }
    }

    /// Takes one token: the new bucket, or `Err(when a token will be available)`.
    pub fn take(&self, bucket: Bucket, now: Timestamp) -> Result<Bucket, Timestamp> {
        let b = self.refill(bucket, now);
        if b.tokens >= 1.0 {
            Ok(Bucket {
                tokens: b.tokens - 1.0,
                ..b
            })
        } else {
            // `as` saturates a huge or NaN quotient; the addition saturates at the end of time.
            let missing_ms = ((1.0 - b.tokens) / self.rate_per_ms()).ceil() as i64;
            Err(crate::limits::add_millis(now, missing_ms.max(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn five_per_minute() {
        let p = RateLimitPolicy {
            provider: "aws".into(),
            count: 5,
            per: Duration::from_secs(60),
        };
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut b = p.fresh(t0);
        for _ in 0..5 {
            b = p.take(b, t0).unwrap();
        }
        let next = p.take(b, t0).unwrap_err();
        assert_eq!(next, t0 + chrono::Duration::seconds(12));
        assert!(p.take(b, t0 + chrono::Duration::seconds(11)).is_err());
        let b2 = p.take(b, t0 + chrono::Duration::seconds(12)).unwrap();
        assert!(b2.tokens < 1.0);
        // A long idle period refills only up to capacity.
        let b3 = p.refill(b, t0 + chrono::Duration::hours(1));
        assert_eq!(b3.tokens, 5.0);
    }
}
