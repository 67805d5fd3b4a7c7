//! RubyGems versions: `Gem::Version` (rubygems/version.rb).
//!
//! A version is valid when it matches `Gem::Version::ANCHORED_VERSION_PATTERN`; `-` is read
//! as `.pre.`, the version splits into runs of digits and runs of letters, and it compares by
//! its canonical segments (trailing zeros dropped from the numeric part and from the part
//! after the first letter run), padding the shorter with zeros. A letter run sorts before
//! any number, so `1.0.a` < `1.0`.

use std::cmp::Ordering;

use crate::num::Num;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Num(Num),
    Str(String),
}

#[derive(Debug, Clone)]
pub(crate) struct GemVersion {
    canonical: Vec<Seg>,
}

/// Ruby's `\s`: ASCII whitespace only.
fn ruby_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0c' | '\x0b')
}

fn validate(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let run = |i: &mut usize, ok: &dyn Fn(u8) -> bool| {
        let start = *i;
        while *i < b.len() && ok(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !run(&mut i, &|c| c.is_ascii_digit()) {
        return false;
    }
    while i < b.len() && b[i] == b'.' {
        i += 1;
        if !run(&mut i, &|c| c.is_ascii_alphanumeric()) {
            return false;
        }
    }
    if i < b.len() && b[i] == b'-' {
        i += 1;
        let pre = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
        if !run(&mut i, &pre) {
            return false;
        }
        while i < b.len() && b[i] == b'.' {
            i += 1;
            if !run(&mut i, &pre) {
                return false;
            }
        }
    }
    i == b.len()
}

impl GemVersion {
    pub(crate) fn parse(s: &str) -> Result<GemVersion, &'static str> {
        let v = s.trim_matches(ruby_space);
        // Gem::Version reads a blank string as "0"; an empty version in advisory or SBOM
        // data is an error, not version 0.
        if v.is_empty() {
            return Err("version string is empty");
        }
        if !validate(v) {
            return Err("malformed version number string");
        }
        let v = v.replace('-', ".pre.");
        let mut segments = Vec::new();
        let b = v.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let start = i;
            if b[i].is_ascii_digit() {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                segments.push(Seg::Num(Num::new(&v[start..i])));
            } else if b[i].is_ascii_alphabetic() {
                while i < b.len() && b[i].is_ascii_alphabetic() {
                    i += 1;
                }
                segments.push(Seg::Str(v[start..i].to_string()));
            } else {
                i += 1;
            }
        }
        let split = segments
            .iter()
            .position(|s| matches!(s, Seg::Str(_)))
            .unwrap_or(segments.len());
        let strings = segments.split_off(split);
        let mut canonical = Vec::with_capacity(segments.len() + strings.len());
        for mut part in [segments, strings] {
            while matches!(part.last(), Some(Seg::Num(n)) if n.is_zero()) {
                part.pop();
            }
            canonical.extend(part);
        }
        Ok(GemVersion { canonical })
    }
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = Seg::Num(Num::new("0"));
        let n = self.canonical.len().max(other.canonical.len());
        for k in 0..n {
            let l = self.canonical.get(k).unwrap_or(&zero);
            let r = other.canonical.get(k).unwrap_or(&zero);
            let o = match (l, r) {
                (Seg::Num(a), Seg::Num(b)) => a.cmp(b),
                (Seg::Str(a), Seg::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
                (Seg::Str(_), Seg::Num(_)) => Ordering::Less,
                (Seg::Num(_), Seg::Str(_)) => Ordering::Greater,
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for GemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for GemVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for GemVersion {}
