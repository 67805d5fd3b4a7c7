//! Arbitrary-length decimal numbers, compared by value without overflow.
//!
//! Several ecosystems (PEP 440, Go, Maven, RubyGems, RPM, dpkg) compare digit runs of any
//! length numerically; keeping them as digit strings avoids both overflow and big-int crates.

use std::cmp::Ordering;

/// A non-negative decimal number: its ASCII digits without leading zeros ("" is zero).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Num(String);

impl Num {
    /// From a run of ASCII digits (the caller guarantees only digits).
    pub(crate) fn new(digits: &str) -> Num {
        Num(digits.trim_start_matches('0').to_string())
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_digits(&self.0, &other.0)
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two digit strings by numeric value (leading zeros ignored).
pub(crate) fn cmp_digits(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
