//! Debian/Ubuntu versions: a port of dpkg's `parseversion` and `verrevcmp`
//! (lib/dpkg/parsehelp.c and lib/dpkg/version.c).

use std::cmp::Ordering;

/// `[epoch:]upstream[-revision]` as dpkg splits it.
#[derive(Debug, Clone)]
pub(crate) struct DpkgVersion {
    epoch: u32,
    upstream: Vec<u8>,
    revision: Vec<u8>,
}

impl DpkgVersion {
    /// Accepts what `dpkg --compare-versions` accepts: dpkg's hard errors are refused, while
    /// its mere warnings (e.g. "version number does not start with digit") are not, because
    /// dpkg still orders such versions.
    pub(crate) fn parse(s: &str) -> Result<DpkgVersion, &'static str> {
        let blank = |c: char| c == ' ' || c == '\t';
        let s = s.trim_matches(blank);
        if s.is_empty() {
            return Err("version string is empty");
        }
        if s.contains(blank) {
            return Err("version string has embedded spaces");
        }
        // dpkg works on C strings, which cannot hold a NUL.
        if s.contains('\0') {
            return Err("contains a NUL byte");
        }
        let (epoch, rest) = match s.find(':') {
            Some(colon) => (parse_epoch(&s[..colon])?, &s[colon + 1..]),
            None => (0, s),
        };
        if s.contains(':') && rest.is_empty() {
            return Err("nothing after colon in version number");
        }
        let (upstream, revision) = match rest.rfind('-') {
            Some(hyphen) => {
                if hyphen + 1 == rest.len() {
                    return Err("revision number is empty");
                }
                (&rest[..hyphen], &rest[hyphen + 1..])
            }
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err("version number is empty");
        }
        Ok(DpkgVersion {
            epoch,
            upstream: upstream.as_bytes().to_vec(),
            revision: revision.as_bytes().to_vec(),
        })
    }
}

/// dpkg reads the epoch with `strtol`, so an optional sign is allowed ("-0" is epoch 0), and
/// it must end exactly at the colon and fit an `int`.
fn parse_epoch(s: &str) -> Result<u32, &'static str> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(if s.is_empty() {
            "epoch in version is empty"
        } else {
            "epoch in version is not number"
        });
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("epoch in version is not number");
    }
    let value = digits.trim_start_matches('0');
    if value.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err("epoch in version is negative");
    }
    match value.parse::<u32>() {
        Ok(v) if v <= i32::MAX as u32 => Ok(v),
        _ => Err("epoch in version is too big"),
    }
}

impl Ord for DpkgVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for DpkgVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DpkgVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DpkgVersion {}

/// dpkg's `order()`: digits and the end weigh 0, `~` sorts before everything (even the end),
/// letters by their ASCII value, everything else after all letters. dpkg works on (signed)
/// `char`, so bytes >= 0x80 count as negative there; mirrored with `as i8`.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c as i8) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let at = |k: usize| a.get(k).copied();
    let bt = |k: usize| b.get(k).copied();
    let non_digit = |c: Option<u8>| c.is_some_and(|c| !c.is_ascii_digit());
    let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while non_digit(at(i)) || non_digit(bt(j)) {
            let (ac, bc) = (order(at(i)), order(bt(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(i) == Some(b'0') {
            i += 1;
        }
        while bt(j) == Some(b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(at(i)) && digit(bt(j)) {
            if first_diff == Ordering::Equal {
                first_diff = at(i).cmp(&bt(j));
            }
            i += 1;
            j += 1;
        }
        if digit(at(i)) {
            return Ordering::Greater;
        }
        if digit(bt(j)) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}
