//! CVSS base scores and the normalized severity of a match.

use std::str::FromStr;

use crate::model::{SeverityEntry, SeverityType};

/// The normalized severity a [`crate::Match`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Normalizes a source's own severity word: GHSA's "MODERATE", Ubuntu's "negligible",
    /// Debian's "unimportant", Red Hat's "important", ... Anything else is `Unknown`.
    pub fn from_label(label: &str) -> Severity {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" | "unimportant" | "minor" => Severity::Low,
            _ => Severity::Unknown,
        }
    }
}

/// FIRST's qualitative rating bands of a CVSS score (identical for v3.x and v4.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScoreBand {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl ScoreBand {
    /// 0.0 none, 0.1–3.9 low, 4.0–6.9 medium, 7.0–8.9 high, 9.0–10.0 critical.
    pub fn from_score(score: f64) -> ScoreBand {
        if score >= 9.0 {
            ScoreBand::Critical
        } else if score >= 7.0 {
            ScoreBand::High
        } else if score >= 4.0 {
            ScoreBand::Medium
        } else if score > 0.0 {
            ScoreBand::Low
        } else {
            ScoreBand::None
        }
    }
}

impl From<ScoreBand> for Severity {
    /// A matched advisory scored 0.0 is still a finding, so "none" reports as the lowest
    /// severity rather than disappearing.
    fn from(band: ScoreBand) -> Severity {
        match band {
            ScoreBand::None | ScoreBand::Low => Severity::Low,
            ScoreBand::Medium => Severity::Medium,
            ScoreBand::High => Severity::High,
            ScoreBand::Critical => Severity::Critical,
        }
    }
}

/// The base score of a CVSS v2 ("AV:N/AC:L/Au:N/C:P/I:P/A:P"), v3.0/v3.1 ("CVSS:3.1/...") or
/// v4.0 ("CVSS:4.0/...") vector; `None` when the vector does not parse.
pub fn cvss_base_score(vector: &str) -> Option<f64> {
    let vector = vector.trim();
    // The `cvss` crate scores vectors with base metrics missing (treating them as absent);
    // FIRST makes every base metric mandatory, and a partial vector is a data error, not a score.
    if !has_all_base_metrics(vector) {
        return None;
    }
    let parsed = cvss::Cvss::from_str(vector).ok()?;
    let score = match parsed {
        // The v3 `score()` folds in temporal metrics when present; the base score is what
        // NVD and GHSA publish and what thresholds are written against.
        cvss::Cvss::CvssV30(ref v) | cvss::Cvss::CvssV31(ref v) => v.base_score().value(),
        ref other => other.score(),
    };
    score.is_finite().then_some(score)
}

/// Whether every mandatory base metric of the vector's CVSS version appears exactly once.
fn has_all_base_metrics(vector: &str) -> bool {
    let (required, metrics): (&[&str], &str) = if let Some(rest) = vector
        .strip_prefix("CVSS:3.0/")
        .or_else(|| vector.strip_prefix("CVSS:3.1/"))
    {
        (&["AV", "AC", "PR", "UI", "S", "C", "I", "A"], rest)
    } else if let Some(rest) = vector.strip_prefix("CVSS:4.0/") {
        (
            &[
                "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
            ],
            rest,
        )
    } else if !vector.starts_with("CVSS:") {
        (&["AV", "AC", "Au", "C", "I", "A"], vector)
    } else {
        return false;
    };
    let keys: Vec<&str> = metrics
        .split('/')
        .map(|m| m.split_once(':').map_or(m, |(k, _)| k))
        .collect();
    required
        .iter()
        .all(|r| keys.iter().filter(|k| *k == r).count() == 1)
}

/// The score of the preferred CVSS entry: v3 (what most feeds and policies use), then v4, then
/// v2; within a version the first parsable vector.
pub(crate) fn best_cvss<'a>(
    entries: impl Iterator<Item = &'a SeverityEntry> + Clone,
) -> Option<f64> {
    for want in [
        SeverityType::CvssV3,
        SeverityType::CvssV4,
        SeverityType::CvssV2,
    ] {
        let found = entries
            .clone()
            .filter(|e| e.kind == want)
            .find_map(|e| cvss_base_score(&e.score));
        if found.is_some() {
            return found;
        }
    }
    None
}
