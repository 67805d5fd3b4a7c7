//! Shared test helpers: a small stand-in version ordering and the data folder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::path::PathBuf;

use scanplane_osv::{Advisory, VersionOrder};

/// A deliberately simple ordering, enough for the versions in these tests (semver, PEP 440
/// release numbers, apk "-rN", dpkg with epoch and "~"): optional "N:" epoch, then alternating
/// digit runs (numeric) and other runs (bytewise, with '~' below everything, even the end).
/// The real per-ecosystem orderings live in another crate.
pub struct NaturalOrder;

fn split_epoch(v: &str) -> (u64, &str) {
    match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(0), rest)
        }
        _ => (0, v),
    }
}

fn tokens(v: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let bytes = v.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let digit = bytes[start].is_ascii_digit();
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() == digit {
            end += 1;
        }
        out.push((digit, &v[start..end]));
        start = end;
    }
    out
}

fn cmp_text(a: &str, b: &str) -> Ordering {
    let key = |c: u8| -> i32 {
        if c == b'~' {
            -1
        } else {
            i32::from(c)
        }
    };
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).map_or(0, |&c| key(c));
        let y = b.get(i).map_or(0, |&c| key(c));
        if x != y {
            return x.cmp(&y);
        }
    }
    Ordering::Equal
}

impl VersionOrder for NaturalOrder {
    fn compare(&self, _ecosystem: &str, a: &str, b: &str) -> Result<Ordering, String> {
        for v in [a, b] {
            if v.is_empty() || v.contains(char::is_whitespace) || v == "bogus" {
                return Err(format!("invalid version {v:?}"));
            }
        }
        let (ea, ra) = split_epoch(a);
        let (eb, rb) = split_epoch(b);
        if ea != eb {
            return Ok(ea.cmp(&eb));
        }
        let (ta, tb) = (tokens(ra), tokens(rb));
        for i in 0..ta.len().max(tb.len()) {
            let ord = match (ta.get(i), tb.get(i)) {
                (Some((true, x)), Some((true, y))) => {
                    let x: u128 = x.parse().unwrap_or(u128::MAX);
                    let y: u128 = y.parse().unwrap_or(u128::MAX);
                    x.cmp(&y)
                }
                (Some((_, x)), Some((_, y))) => cmp_text(x, y),
                // A trailing "~..." sorts before the shorter version; anything else after.
                (Some((d, x)), None) => {
                    if !d && x.starts_with('~') {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (None, Some((d, y))) => {
                    if !d && y.starts_with('~') {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (None, None) => Ordering::Equal,
            };
            if ord != Ordering::Equal {
                return Ok(ord);
            }
        }
        Ok(Ordering::Equal)
    }
}

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).unwrap()
}

pub fn advisory(name: &str) -> Advisory {
    scanplane_osv::parse(&data(name)).unwrap()
}
