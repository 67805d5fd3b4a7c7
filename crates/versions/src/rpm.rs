//! RPM versions: a port of rpm's `rpmvercmp` (rpmio/rpmvercmp.c) and of the EVR split of
//! `rpmverParse` (`[epoch:]version[-release]`).

use std::cmp::Ordering;

/// An RPM `[epoch:]version[-release]`.
#[derive(Debug, Clone)]
pub(crate) struct RpmVersion {
    epoch: Vec<u8>,
    version: Vec<u8>,
    release: Vec<u8>,
}

impl RpmVersion {
    /// Splits like rpm's `parseEVR`: the epoch is the leading digits when a `:` follows them
    /// (an empty epoch is 0), the release is what follows the last `-`.
    ///
    /// One deliberate difference: rpm treats a missing release as matching any release, which
    /// is not an order (1.0 = 1.0-1 and 1.0 = 1.0-2, yet 1.0-1 < 1.0-2). Here a missing release
    /// is the empty release, which sorts before every other, as `rpm.labelCompare` does with
    /// an empty string.
    pub(crate) fn parse(s: &str) -> Result<RpmVersion, &'static str> {
        if s.is_empty() {
            return Err("version string is empty");
        }
        // rpm works on C strings, which cannot hold a NUL.
        if s.contains('\0') {
            return Err("contains a NUL byte");
        }
        let bytes = s.as_bytes();
        let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let (epoch, rest) = if bytes.get(digits) == Some(&b':') {
            let e = &bytes[..digits];
            (
                if e.is_empty() {
                    b"0".to_vec()
                } else {
                    e.to_vec()
                },
                &bytes[digits + 1..],
            )
        } else {
            (b"0".to_vec(), bytes)
        };
        let (version, release) = match rest.iter().rposition(|&b| b == b'-') {
            Some(h) => (&rest[..h], &rest[h + 1..]),
            None => (rest, &[][..]),
        };
        if version.is_empty() {
            return Err("version part is empty");
        }
        Ok(RpmVersion {
            epoch,
            version: version.to_vec(),
            release: release.to_vec(),
        })
    }
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        rpmvercmp(&self.epoch, &other.epoch)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| rpmvercmp(&self.release, &other.release))
    }
}

impl PartialOrd for RpmVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RpmVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for RpmVersion {}

/// rpm's segment comparison, step for step: separators (anything but ASCII alphanumerics,
/// `~` and `^`) are skipped, `~` sorts before everything including the end, `^` sorts after
/// the end but before any other segment, digit runs compare numerically and beat letter runs.
pub(crate) fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (0usize, 0usize);
    let at = |s: &[u8], k: usize| s.get(k).copied().unwrap_or(0);
    let sep = |c: u8| c != 0 && !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while at(a, one) != 0 || at(b, two) != 0 {
        while sep(at(a, one)) {
            one += 1;
        }
        while sep(at(b, two)) {
            two += 1;
        }
        let (c1, c2) = (at(a, one), at(b, two));
        if c1 == b'~' || c2 == b'~' {
            if c1 != b'~' {
                return Ordering::Greater;
            }
            if c2 != b'~' {
                return Ordering::Less;
            }
            one += 1;
            two += 1;
            continue;
        }
        if c1 == b'^' || c2 == b'^' {
            if c1 == 0 {
                return Ordering::Less;
            }
            if c2 == 0 {
                return Ordering::Greater;
            }
            if c1 != b'^' {
                return Ordering::Greater;
            }
            if c2 != b'^' {
                return Ordering::Less;
            }
            one += 1;
            two += 1;
            continue;
        }
        if c1 == 0 || c2 == 0 {
            break;
        }
        let isnum = c1.is_ascii_digit();
        let class = |c: u8| {
            if isnum {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let mut end1 = one;
        while class(at(a, end1)) {
            end1 += 1;
        }
        let mut end2 = two;
        while class(at(b, end2)) {
            end2 += 1;
        }
        // `one` is on an alphanumeric, so its segment is never empty; an empty segment on the
        // other side means the types differ, and numeric segments are newer.
        if two == end2 {
            return if isnum {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut s1, mut s2) = (&a[one..end1], &b[two..end2]);
        if isnum {
            while s1.first() == Some(&b'0') {
                s1 = &s1[1..];
            }
            while s2.first() == Some(&b'0') {
                s2 = &s2[1..];
            }
            match s1.len().cmp(&s2.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match s1.cmp(s2) {
            Ordering::Equal => {}
            o => return o,
        }
        one = end1;
        two = end2;
    }
    match (at(a, one) == 0, at(b, two) == 0) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}
