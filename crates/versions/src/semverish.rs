//! SemVer 2.0.0 precedence, shared by npm (node-semver, strict), Go (golang.org/x/mod/semver)
//! and NuGet (NuGet.Versioning); each ecosystem has its own parser here.

use std::cmp::Ordering;

use crate::num::Num;

/// A pre-release identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ident {
    /// NuGet's numeric labels are whatever `Int32.TryParse` accepts, sign included.
    Signed(i64),
    /// A numeric identifier, compared by value.
    Num(Num),
    /// An alphanumeric identifier, compared bytewise (NuGet stores it upper-cased, which
    /// makes its comparison case-insensitive as `OrdinalIgnoreCase` is for ASCII).
    Alpha(String),
}

/// Release numbers plus pre-release identifiers; build metadata is dropped at parse time
/// because it never affects precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SemVer {
    pub(crate) release: Vec<Num>,
    pub(crate) pre: Vec<Ident>,
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.release
            .cmp(&other.release)
            // A version without pre-release identifiers is newer than any with them.
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // Identifier by identifier; a shorter list that is a prefix sorts first.
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `0|[1-9][0-9]*`.
fn numeric_identifier(s: &str) -> Result<Num, &'static str> {
    if !all_digits(s) {
        return Err("version numbers must be digits");
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("version numbers must not have leading zeros");
    }
    Ok(Num::new(s))
}

/// Dot-separated SemVer pre-release identifiers: non-empty, `[0-9A-Za-z-]`, numeric ones
/// without leading zeros.
fn prerelease(s: &str) -> Result<Vec<Ident>, &'static str> {
    s.split('.')
        .map(|id| {
            if id.is_empty() {
                Err("empty pre-release identifier")
            } else if !id.bytes().all(is_ident_char) {
                Err("pre-release identifiers may only hold [0-9A-Za-z-]")
            } else if all_digits(id) {
                numeric_identifier(id)
                    .map(Ident::Num)
                    .map_err(|_| "numeric pre-release identifiers must not have leading zeros")
            } else {
                Ok(Ident::Alpha(id.to_string()))
            }
        })
        .collect()
}

/// Dot-separated build identifiers: non-empty, `[0-9A-Za-z-]` (leading zeros allowed).
pub(crate) fn check_build(s: &str) -> Result<(), &'static str> {
    if s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(is_ident_char))
    {
        Ok(())
    } else {
        Err("build metadata identifiers must be non-empty [0-9A-Za-z-]")
    }
}

/// Splits `core[-pre][+build]` at the first `-` and the first `+` after it.
fn split(s: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, build) = match s.find('+') {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    match rest.find('-') {
        Some(p) => (&rest[..p], Some(&rest[p + 1..]), build),
        None => (rest, None, build),
    }
}

/// node-semver's `new SemVer(v)` without `loose`: surrounding whitespace is trimmed, one
/// leading `v` is allowed, numbers must not exceed `Number.MAX_SAFE_INTEGER`.
///
/// Known difference: node-semver compares numeric pre-release identifiers as JavaScript
/// numbers, which lose precision above 2^53; here they compare exactly.
pub(crate) fn parse_npm(s: &str) -> Result<SemVer, &'static str> {
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let s = s.strip_prefix('v').unwrap_or(s);
    let (core, pre, build) = split(s);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 {
        return Err("expected MAJOR.MINOR.PATCH");
    }
    let mut release = Vec::with_capacity(3);
    for p in parts {
        let n = numeric_identifier(p)?;
        if p.len() > 16 || p.parse::<u64>().map_or(true, |v| v > (1u64 << 53) - 1) {
            return Err("version number above Number.MAX_SAFE_INTEGER");
        }
        release.push(n);
    }
    let pre = match pre {
        Some(p) => prerelease(p)?,
        None => Vec::new(),
    };
    if let Some(b) = build {
        check_build(b)?;
    }
    Ok(SemVer { release, pre })
}

/// golang.org/x/mod/semver: a `v` prefix is required, `vMAJOR` and `vMAJOR.MINOR` are
/// shorthands for `.0` (only without pre-release or build), numbers have no leading zeros
/// and any length. `+incompatible` is build metadata and so ignored; pseudo-versions are
/// ordinary pre-releases.
pub(crate) fn parse_go(s: &str) -> Result<SemVer, &'static str> {
    let Some(s) = s.strip_prefix('v') else {
        return Err("Go versions start with \"v\"");
    };
    let (core, pre, build) = split(s);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || (parts.len() < 3 && (pre.is_some() || build.is_some())) {
        return Err("expected vMAJOR[.MINOR[.PATCH[-pre][+build]]]");
    }
    let mut release = Vec::with_capacity(3);
    for p in &parts {
        release.push(numeric_identifier(p)?);
    }
    while release.len() < 3 {
        release.push(Num::new("0"));
    }
    let pre = match pre {
        Some(p) => prerelease(p)?,
        None => Vec::new(),
    };
    if let Some(b) = build {
        check_build(b)?;
    }
    Ok(SemVer { release, pre })
}
