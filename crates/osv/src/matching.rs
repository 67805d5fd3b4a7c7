//! Matching one package against one advisory, following the evaluation pseudo-code of the OSV
//! schema ("Evaluation" section): `versions[]` exact match, or any ECOSYSTEM/SEMVER range whose
//! sorted events leave the version affected and that is below every `limit`.

use std::cmp::Ordering;

use crate::model::{Advisory, Affected, Event, Range, RangeType, SeverityType};
use crate::purl::normalize_pypi_name;
use crate::severity::{best_cvss, ScoreBand, Severity};

/// Version ordering per ecosystem, supplied by the caller (a separate crate implements the
/// real dpkg/apk/rpm/PEP 440/semver orderings).
pub trait VersionOrder {
    /// Compares `a` with `b` under `ecosystem`'s rules (the OSV ecosystem string, e.g.
    /// "Alpine:v3.19"); an `Err` says a version is not valid there.
    fn compare(&self, ecosystem: &str, a: &str, b: &str) -> Result<Ordering, String>;
}

/// One installed package, keyed the way OSV names it (see [`crate::package_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageRef {
    /// OSV ecosystem with the release suffix where the OS has one: "Alpine:v3.19", "Debian:12",
    /// "npm".
    pub ecosystem: String,
    pub name: String,
    pub version: String,
}

/// An advisory that affects a package.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub id: String,
    pub aliases: Vec<String>,
    /// `fixed` versions of the range(s) that matched, in advisory order, deduplicated. When
    /// only `versions[]` matched, the fixed versions of that entry's ranges.
    pub fixed: Vec<String>,
    pub severity: Severity,
    /// CVSS base score of the preferred vector, when the advisory has a parsable one.
    pub cvss_score: Option<f64>,
}

/// Whether `advisory` affects `package`, and how.
///
/// Withdrawn advisories never match. Ranges whose versions `order` cannot compare are skipped
/// (not guessed), as are GIT ranges, which name commits rather than released versions.
pub fn affected_by(
    advisory: &Advisory,
    package: &PackageRef,
    order: &dyn VersionOrder,
) -> Option<Match> {
    if advisory.withdrawn.is_some() {
        return None;
    }
    let mut fixed: Vec<String> = Vec::new();
    let mut matched: Vec<&Affected> = Vec::new();
    for affected in &advisory.affected {
        let Some(p) = &affected.package else { continue };
        if !ecosystem_matches(&p.ecosystem, &package.ecosystem)
            || !name_matches(&package.ecosystem, &p.name, &package.name)
        {
            continue;
        }
        let mut hit = false;
        let mut range_fixed = Vec::new();
        for range in &affected.ranges {
            if !matches!(range.kind, RangeType::Ecosystem | RangeType::Semver) {
                continue;
            }
            if range_affects(range, &package.ecosystem, &package.version, order) {
                hit = true;
                range_fixed.extend(fixed_of(range));
            }
        }
        if !hit && affected.versions.contains(&package.version) {
            hit = true;
            for range in &affected.ranges {
                if matches!(range.kind, RangeType::Ecosystem | RangeType::Semver) {
                    range_fixed.extend(fixed_of(range));
                }
            }
        }
        if hit {
            matched.push(affected);
            for f in range_fixed {
                if !fixed.contains(&f) {
                    fixed.push(f);
                }
            }
        }
    }
    if matched.is_empty() {
        return None;
    }
    let (severity, cvss_score) = severity_of(advisory, &matched);
    Some(Match {
        id: advisory.id.clone(),
        aliases: advisory.aliases.clone(),
        fixed,
        severity,
        cvss_score,
    })
}

/// Equal ecosystems match; an advisory entry with a bare OS ecosystem ("Debian") also matches
/// every release of it ("Debian:12"), but a release-qualified entry matches only its release.
fn ecosystem_matches(advisory_eco: &str, package_eco: &str) -> bool {
    if advisory_eco == package_eco {
        return true;
    }
    !advisory_eco.is_empty()
        && !advisory_eco.contains(':')
        && package_eco
            .strip_prefix(advisory_eco)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// PyPI names compare after PEP 503 normalisation (advisories write "Pillow", SBOMs "pillow");
/// everything else exactly, as OSV names are canonical per ecosystem.
fn name_matches(ecosystem: &str, advisory_name: &str, package_name: &str) -> bool {
    if ecosystem == "PyPI" {
        normalize_pypi_name(advisory_name) == normalize_pypi_name(package_name)
    } else {
        advisory_name == package_name
    }
}

fn fixed_of(range: &Range) -> impl Iterator<Item = String> + '_ {
    range.events.iter().filter_map(|e| match e {
        Event::Fixed(v) => Some(v.clone()),
        _ => None,
    })
}

/// "0" as `introduced` means "from the beginning" and is below every version; it is not a
/// version of the ecosystem, so it is never handed to the comparator.
fn is_zero(e: &Event) -> bool {
    matches!(e, Event::Introduced(v) if v == "0")
}

fn compare(order: &dyn VersionOrder, eco: &str, a: &str, b: &str) -> Option<Ordering> {
    order.compare(eco, a, b).ok()
}

/// The spec's `isAffected` for one range: below every limit, and `includedInRanges` over the
/// events sorted by version. `None` from a comparison (unparsable version) skips the range.
fn range_affects(range: &Range, eco: &str, version: &str, order: &dyn VersionOrder) -> bool {
    range_affects_inner(range, eco, version, order).unwrap_or(false)
}

fn range_affects_inner(
    range: &Range,
    eco: &str,
    version: &str,
    order: &dyn VersionOrder,
) -> Option<bool> {
    // Limits: the version must be below at least one limit when any are given.
    let limits: Vec<&str> = range
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Limit(v) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    if !limits.is_empty() {
        let mut below_any = false;
        for limit in &limits {
            // A limit containing "*" is the spec's "infinity".
            if limit.contains('*') || compare(order, eco, version, limit)? == Ordering::Less {
                below_any = true;
            }
        }
        if !below_any {
            return Some(false);
        }
    }

    let events: Vec<&Event> = range
        .events
        .iter()
        .filter(|e| !matches!(e, Event::Limit(_)))
        .collect();
    let sorted = merge_sort(events, &|a, b| event_order(order, eco, a, b))?;

    let mut vulnerable = false;
    for e in sorted {
        match e {
            Event::Introduced(v) => {
                if v == "0" || compare(order, eco, version, v)? != Ordering::Less {
                    vulnerable = true;
                }
            }
            Event::Fixed(v) => {
                if compare(order, eco, version, v)? != Ordering::Less {
                    vulnerable = false;
                }
            }
            Event::LastAffected(v) => {
                if compare(order, eco, version, v)? == Ordering::Greater {
                    vulnerable = false;
                }
            }
            Event::Limit(_) => {}
        }
    }
    Some(vulnerable)
}

/// A stable merge sort with a fallible comparator: any failed comparison fails the sort. The
/// standard library's sorts may panic when a comparator is not a total order, and the
/// comparator here is the caller's [`VersionOrder`], so its consistency is not ours to assume.
fn merge_sort<'a>(
    mut items: Vec<&'a Event>,
    cmp: &dyn Fn(&Event, &Event) -> Option<Ordering>,
) -> Option<Vec<&'a Event>> {
    if items.len() <= 1 {
        return Some(items);
    }
    let right = items.split_off(items.len() / 2);
    let left = merge_sort(items, cmp)?;
    let right = merge_sort(right, cmp)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(a), Some(b)) = (l.peek(), r.peek()) {
        // Ties keep advisory order (left first), so the sort is stable.
        if cmp(b, a)? == Ordering::Less {
            out.extend(r.next());
        } else {
            out.extend(l.next());
        }
    }
    out.extend(l);
    out.extend(r);
    Some(out)
}

fn event_order(order: &dyn VersionOrder, eco: &str, a: &Event, b: &Event) -> Option<Ordering> {
    match (is_zero(a), is_zero(b)) {
        (true, true) => Some(Ordering::Equal),
        (true, false) => Some(Ordering::Less),
        (false, true) => Some(Ordering::Greater),
        (false, false) => compare(order, eco, a.version(), b.version()),
    }
}

/// The severity and CVSS score of an advisory as a whole (all its affected entries), as a
/// match would report them: what an advisory's own page shows.
pub fn advisory_severity(advisory: &Advisory) -> (Severity, Option<f64>) {
    let all: Vec<&Affected> = advisory.affected.iter().collect();
    severity_of(advisory, &all)
}

/// CVSS first (advisory-level vectors, then those of the matched entries); without a parsable
/// vector, the sources' own words: a matched entry's `ecosystem_specific`, its
/// `database_specific`, a non-CVSS `severity[]` score (Ubuntu's type), then the advisory's
/// `database_specific`.
fn severity_of(advisory: &Advisory, matched: &[&Affected]) -> (Severity, Option<f64>) {
    let all = advisory
        .severity
        .iter()
        .chain(matched.iter().flat_map(|a| a.severity.iter()));
    if let Some(score) = best_cvss(all.clone()) {
        return (ScoreBand::from_score(score).into(), Some(score));
    }
    let labels = matched
        .iter()
        .flat_map(|a| {
            [
                a.ecosystem_severity.as_deref(),
                a.database_severity.as_deref(),
            ]
        })
        .flatten()
        .chain(
            all.filter(|e| matches!(e.kind, SeverityType::Other(_)))
                .map(|e| e.score.as_str()),
        )
        .chain(advisory.database_severity.as_deref());
    for label in labels {
        let s = Severity::from_label(label);
        if s != Severity::Unknown {
            return (s, None);
        }
    }
    (Severity::Unknown, None)
}
