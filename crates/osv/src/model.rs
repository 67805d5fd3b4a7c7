//! The OSV record model and its bounded parser.
//!
//! Parsing goes through private "raw" serde structs so that unknown fields are ignored (OSV adds
//! fields over time) while wrong types are reported with their JSON path; the raw form is then
//! checked against the bounds and converted into the public model.

use serde::Deserialize;

use crate::OsvError;

/// Documents larger than this are refused before parsing: osv.dev's largest records (kernel
/// CVEs listing thousands of versions) are well under 4 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// Most `affected` entries, ranges per entry, events per range, and versions per entry.
pub const MAX_ITEMS: usize = 10_000;
/// Longest string kept anywhere in a record (except `details`, which is truncated instead).
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// `details` is Markdown prose only shown to people; 8 KiB keeps a stored index small.
pub const MAX_DETAILS_BYTES: usize = 8 * 1024;

/// One OSV advisory.
#[derive(Debug, Clone, PartialEq)]
pub struct Advisory {
    pub id: String,
    pub modified: String,
    pub published: Option<String>,
    /// Set when the advisory was retracted; withdrawn advisories never match.
    pub withdrawn: Option<String>,
    pub aliases: Vec<String>,
    pub related: Vec<String>,
    pub summary: Option<String>,
    /// Truncated to [`MAX_DETAILS_BYTES`] on a character boundary.
    pub details: Option<String>,
    pub severity: Vec<SeverityEntry>,
    pub affected: Vec<Affected>,
    /// `database_specific.severity` when it is a string (GHSA writes "HIGH", "MODERATE", ...).
    pub database_severity: Option<String>,
}

/// A `severity[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityEntry {
    pub kind: SeverityType,
    /// A CVSS vector string, or for [`SeverityType::Other`] whatever the source wrote
    /// (Ubuntu's type writes "medium").
    pub score: String,
}

/// The `severity[].type` values; later schema additions are kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeverityType {
    CvssV2,
    CvssV3,
    CvssV4,
    Other(String),
}

/// One `affected[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Affected {
    pub package: Option<Package>,
    pub ranges: Vec<Range>,
    /// Exact affected versions.
    pub versions: Vec<String>,
    /// Per-entry `severity[]` (schema 1.5+).
    pub severity: Vec<SeverityEntry>,
    /// `ecosystem_specific.severity` when a string (Ubuntu's "medium", ...).
    pub ecosystem_severity: Option<String>,
    /// `database_specific.severity` when a string.
    pub database_severity: Option<String>,
}

/// `affected[].package`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// OSV ecosystem, possibly with a release suffix: "npm", "Alpine:v3.19", "Debian:12".
    pub ecosystem: String,
    pub name: String,
    pub purl: Option<String>,
}

/// One `ranges[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub kind: RangeType,
    pub events: Vec<Event>,
}

/// `ranges[].type`; unknown future types are kept and, like GIT, never evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeType {
    Ecosystem,
    Semver,
    Git,
    Other(String),
}

/// One range event: each OSV event object has exactly one of these keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    /// The version the event names.
    pub fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct RawAdvisory {
    id: String,
    // Required by the schema, but some exporters omit it on stubs; an empty string keeps the
    // record usable rather than failing a whole import on metadata.
    #[serde(default)]
    modified: String,
    published: Option<String>,
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    related: Option<Vec<String>>,
    summary: Option<String>,
    details: Option<String>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    affected: Option<Vec<RawAffected>>,
    database_specific: Option<RawSpecific>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    ranges: Option<Vec<RawRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    ecosystem_specific: Option<RawSpecific>,
    database_specific: Option<RawSpecific>,
}

#[derive(Deserialize)]
struct RawPackage {
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    name: String,
    purl: Option<String>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
    limit: Option<String>,
}

/// `ecosystem_specific` / `database_specific` are free-form by the spec, so a non-object or a
/// non-string `severity` is not an error: only a string severity is taken.
struct RawSpecific {
    severity: Option<String>,
}

impl<'de> Deserialize<'de> for RawSpecific {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let severity = value
            .get("severity")
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        Ok(RawSpecific { severity })
    }
}

/// Parses one OSV JSON document.
///
/// Refuses documents over [`MAX_DOCUMENT_BYTES`], more than [`MAX_ITEMS`] affected entries,
/// ranges, events or versions (each), and strings over [`MAX_STRING_BYTES`]; `details` is
/// truncated to [`MAX_DETAILS_BYTES`].
pub fn parse(bytes: &[u8]) -> Result<Advisory, OsvError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(OsvError::TooLarge {
            size: bytes.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawAdvisory = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        OsvError::Json {
            path,
            message: e.into_inner().to_string(),
        }
    })?;
    de.end().map_err(|e| OsvError::Json {
        path: ".".to_owned(),
        message: e.to_string(),
    })?;
    convert(raw)
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> OsvError {
    OsvError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

fn check_str(path: &str, s: &str) -> Result<(), OsvError> {
    if s.len() > MAX_STRING_BYTES {
        return Err(invalid(
            path,
            format!(
                "string of {} bytes is over the {MAX_STRING_BYTES}-byte limit",
                s.len()
            ),
        ));
    }
    Ok(())
}

fn check_opt(path: &str, s: &Option<String>) -> Result<(), OsvError> {
    s.as_deref().map_or(Ok(()), |s| check_str(path, s))
}

fn check_count(path: &str, n: usize) -> Result<(), OsvError> {
    if n > MAX_ITEMS {
        return Err(invalid(
            path,
            format!("{n} items is over the {MAX_ITEMS}-item limit"),
        ));
    }
    Ok(())
}

fn check_list(path: &str, list: &[String]) -> Result<(), OsvError> {
    check_count(path, list.len())?;
    for (i, s) in list.iter().enumerate() {
        check_str(&format!("{path}[{i}]"), s)?;
    }
    Ok(())
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn convert_severity(path: &str, raw: Vec<RawSeverity>) -> Result<Vec<SeverityEntry>, OsvError> {
    check_count(path, raw.len())?;
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| {
            check_str(&format!("{path}[{i}].type"), &s.kind)?;
            check_str(&format!("{path}[{i}].score"), &s.score)?;
            let kind = match s.kind.as_str() {
                "CVSS_V2" => SeverityType::CvssV2,
                "CVSS_V3" => SeverityType::CvssV3,
                "CVSS_V4" => SeverityType::CvssV4,
                _ => SeverityType::Other(s.kind),
            };
            Ok(SeverityEntry {
                kind,
                score: s.score,
            })
        })
        .collect()
}

fn convert_event(path: &str, e: RawEvent) -> Result<Event, OsvError> {
    let mut found = Vec::with_capacity(1);
    if let Some(v) = e.introduced {
        found.push(Event::Introduced(v));
    }
    if let Some(v) = e.fixed {
        found.push(Event::Fixed(v));
    }
    if let Some(v) = e.last_affected {
        found.push(Event::LastAffected(v));
    }
    if let Some(v) = e.limit {
        found.push(Event::Limit(v));
    }
    if found.len() != 1 {
        return Err(invalid(
            path,
            "an event must have exactly one of introduced, fixed, last_affected, limit",
        ));
    }
    let event = found.remove(0);
    check_str(path, event.version())?;
    Ok(event)
}

fn convert_range(path: &str, r: RawRange) -> Result<Range, OsvError> {
    check_str(&format!("{path}.type"), &r.kind)?;
    let kind = match r.kind.as_str() {
        "ECOSYSTEM" => RangeType::Ecosystem,
        "SEMVER" => RangeType::Semver,
        "GIT" => RangeType::Git,
        _ => RangeType::Other(r.kind),
    };
    check_count(&format!("{path}.events"), r.events.len())?;
    let events = r
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| convert_event(&format!("{path}.events[{i}]"), e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Range { kind, events })
}

fn convert_affected(path: &str, a: RawAffected) -> Result<Affected, OsvError> {
    let package = match a.package {
        Some(p) => {
            check_str(&format!("{path}.package.ecosystem"), &p.ecosystem)?;
            check_str(&format!("{path}.package.name"), &p.name)?;
            check_opt(&format!("{path}.package.purl"), &p.purl)?;
            Some(Package {
                ecosystem: p.ecosystem,
                name: p.name,
                purl: p.purl,
            })
        }
        None => None,
    };
    let raw_ranges = a.ranges.unwrap_or_default();
    check_count(&format!("{path}.ranges"), raw_ranges.len())?;
    let ranges = raw_ranges
        .into_iter()
        .enumerate()
        .map(|(i, r)| convert_range(&format!("{path}.ranges[{i}]"), r))
        .collect::<Result<Vec<_>, _>>()?;
    let versions = a.versions.unwrap_or_default();
    check_list(&format!("{path}.versions"), &versions)?;
    let severity = convert_severity(&format!("{path}.severity"), a.severity.unwrap_or_default())?;
    let ecosystem_severity = a.ecosystem_specific.and_then(|s| s.severity);
    check_opt(
        &format!("{path}.ecosystem_specific.severity"),
        &ecosystem_severity,
    )?;
    let database_severity = a.database_specific.and_then(|s| s.severity);
    check_opt(
        &format!("{path}.database_specific.severity"),
        &database_severity,
    )?;
    Ok(Affected {
        package,
        ranges,
        versions,
        severity,
        ecosystem_severity,
        database_severity,
    })
}

fn convert(raw: RawAdvisory) -> Result<Advisory, OsvError> {
    if raw.id.is_empty() {
        return Err(invalid("id", "empty id"));
    }
    check_str("id", &raw.id)?;
    check_str("modified", &raw.modified)?;
    check_opt("published", &raw.published)?;
    check_opt("withdrawn", &raw.withdrawn)?;
    check_opt("summary", &raw.summary)?;
    let aliases = raw.aliases.unwrap_or_default();
    check_list("aliases", &aliases)?;
    let related = raw.related.unwrap_or_default();
    check_list("related", &related)?;
    let severity = convert_severity("severity", raw.severity.unwrap_or_default())?;
    let raw_affected = raw.affected.unwrap_or_default();
    check_count("affected", raw_affected.len())?;
    let affected = raw_affected
        .into_iter()
        .enumerate()
        .map(|(i, a)| convert_affected(&format!("affected[{i}]"), a))
        .collect::<Result<Vec<_>, _>>()?;
    let database_severity = raw.database_specific.and_then(|s| s.severity);
    check_opt("database_specific.severity", &database_severity)?;
    Ok(Advisory {
        id: raw.id,
        modified: raw.modified,
        published: raw.published,
        withdrawn: raw.withdrawn,
        aliases,
        related,
        summary: raw.summary,
        details: raw.details.map(|d| truncate(d, MAX_DETAILS_BYTES)),
        severity,
        affected,
        database_severity,
    })
}
