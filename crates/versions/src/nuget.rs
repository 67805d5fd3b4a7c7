//! NuGet versions: NuGet.Versioning's `NuGetVersion.TryParse` and `VersionComparer.Default`.
//!
//! One to four numeric parts (missing parts are 0, so 1.0 = 1.0.0 = 1.0.0.0), an optional
//! `-` release label of dot-separated parts, and `+metadata` that is ignored. Labels compare
//! part by part: parts that `Int32.TryParse` reads compare numerically and before the others,
//! which compare ordinally ignoring case; a version without label is newer.
//!
//! Leading and trailing whitespace is ignored, as NuGet does. Deliberately stricter than .NET's `System.Version` parsing underneath NuGet: numeric parts
//! must be plain ASCII digits (no signs or inner whitespace, which `Int32.TryParse` would
//! accept).

use crate::num::Num;
use crate::semverish::{check_build, is_ident_char, Ident, SemVer};

pub(crate) fn parse(s: &str) -> Result<SemVer, &'static str> {
    // NuGetVersion.Parse ignores leading and trailing whitespace.
    let s = s.trim();
    if s.is_empty() {
        return Err("version string is empty");
    }
    let (rest, build) = match s.find('+') {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    let (core, label) = match rest.find('-') {
        Some(p) => (&rest[..p], Some(&rest[p + 1..])),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 4 {
        return Err("more than four numeric parts");
    }
    let mut release = Vec::with_capacity(4);
    for p in &parts {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err("numeric parts must be digits");
        }
        // Each part is an Int32 in NuGet.
        if p.parse::<i32>().is_err() {
            return Err("numeric part above Int32.MaxValue");
        }
        release.push(Num::new(p));
    }
    while release.len() < 4 {
        release.push(Num::new("0"));
    }
    let mut pre = Vec::new();
    if let Some(label) = label {
        for part in label.split('.') {
            if part.is_empty() || !part.bytes().all(is_ident_char) {
                return Err("release label parts must be non-empty [0-9A-Za-z-]");
            }
            pre.push(match int32_try_parse(part) {
                Some(v) => Ident::Signed(v),
                None => Ident::Alpha(part.to_ascii_uppercase()),
            });
        }
    }
    if let Some(b) = build {
        check_build(b)?;
    }
    Ok(SemVer { release, pre })
}

/// What `Int32.TryParse` accepts from a label part (which only holds `[0-9A-Za-z-]`): an
/// optional leading `-`, then digits, within the Int32 range.
fn int32_try_parse(part: &str) -> Option<i64> {
    let digits = part.strip_prefix('-').unwrap_or(part);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse::<i32>().ok().map(i64::from)
}
