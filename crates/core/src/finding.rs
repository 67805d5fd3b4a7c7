//! Findings: what a scanner reported, normalized severity, and the stable fingerprint that
//! gives the same issue on the same target and location one identity across runs.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Normalized severity, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
    Unknown,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
        Severity::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
            Severity::Unknown => "unknown",
        }
    }

    /// Maps any tool's severity word to the normalized scale; unrecognized words are
    /// `Unknown` rather than an error, because tools invent new ones.
    pub fn normalize(word: &str) -> Severity {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "fatal" => Severity::Critical,
            "high" | "error" | "severe" => Severity::High,
            "medium" | "moderate" | "warning" | "warn" => Severity::Medium,
            "low" | "minor" | "note" => Severity::Low,
            "info" | "informational" | "information" | "none" | "negligible" => Severity::Info,
            _ => Severity::Unknown,
        }
    }

    /// Maps a CVSS-style score (0.0-10.0) to a severity.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            0.0 => Severity::Info,
            _ => Severity::Unknown,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity string that is not one of the normalized names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}; expected critical, high, medium, low, info or unknown")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

/// One finding as a scanner reports it, before it is tied to a stored scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The target the finding is about, in canonical form.
    pub target: String,
    /// The scanner's rule or check identifier (CVE id, template id, `open-port`, ...).
    pub rule_id: String,
    pub severity: Severity,
    pub title: String,
    /// Where on the target: `tcp/22`, a URL, `path:line`, `package@version`.
    pub location: String,
    /// Longer description or evidence.
    pub detail: String,
    /// Stable identity across runs; see [`fingerprint`].
    pub fingerprint: String,
}

impl Finding {
    /// Builds a finding whose fingerprint is derived from scanner, target, rule and location.
    pub fn new(
        scanner: &str,
        target: impl Into<String>,
        rule_id: impl Into<String>,
        severity: Severity,
        title: impl Into<String>,
        location: impl Into<String>,
    ) -> Self {
        let target = target.into();
        let rule_id = rule_id.into();
        let location = location.into();
        let fingerprint = fingerprint(scanner, &[&target, &rule_id, &location]);
        Finding {
            target,
            rule_id,
            severity,
            title: title.into(),
            location,
            detail: String::new(),
            fingerprint,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// Replaces every NUL character in a finding's text with U+FFFD and returns how many it
/// replaced. PostgreSQL cannot store NUL in text while SQLite can; replacing it before a
/// finding is stored makes both backends keep the same text, and a scanner that prints NUL
/// cannot make its whole report fail. The fingerprint is computed before and kept.
pub fn sanitize(f: &mut Finding) -> usize {
    [
        &mut f.target,
        &mut f.rule_id,
        &mut f.title,
        &mut f.location,
        &mut f.detail,
        &mut f.fingerprint,
    ]
    .into_iter()
    .map(replace_nul)
    .sum()
}

/// Replaces NUL with U+FFFD in place; how many there were.
pub fn replace_nul(text: &mut String) -> usize {
    let n = text.matches('\0').count();
    if n > 0 {
        *text = text.replace('\0', "\u{FFFD}");
    }
    n
}

/// The stable identity of a finding: SHA-256 over the scanner name and the parts its adapter
/// documents as identifying (e.g. nmap: host, port, protocol), each length-prefixed so that
/// no two different part lists collide by concatenation. Hex, 64 characters.
pub fn fingerprint(scanner: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in std::iter::once(scanner).chain(parts.iter().copied()) {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Normalizes a host name for identity: lowercase, without a trailing dot.
pub fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Normalizes a URL for identity: scheme and host lowercased, default port and fragment
/// removed, empty path written as `/`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.split('#').next().unwrap_or("");
    let split_at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split_at);
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    if let Some(p) = default_port {
        if let Some(stripped) = authority.strip_suffix(p) {
            authority = stripped.to_string();
        }
    }
    let authority = authority.trim_end_matches('.');
    let path = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_mapping() {
        assert_eq!(Severity::normalize("CRITICAL"), Severity::Critical);
        assert_eq!(Severity::normalize("error"), Severity::High);
        assert_eq!(Severity::normalize("warning"), Severity::Medium);
        assert_eq!(Severity::normalize("note"), Severity::Low);
        assert_eq!(Severity::normalize("informational"), Severity::Info);
        assert_eq!(Severity::normalize("bogus"), Severity::Unknown);
        assert_eq!(Severity::from_score(9.8), Severity::Critical);
        assert_eq!(Severity::from_score(7.5), Severity::High);
        assert_eq!(Severity::from_score(5.0), Severity::Medium);
        assert_eq!(Severity::from_score(0.1), Severity::Low);
        assert_eq!(Severity::from_score(-1.0), Severity::Unknown);
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
    }

    #[test]
    fn fingerprints_are_stable_and_unambiguous() {
        let a = fingerprint("nmap", &["127.0.0.1", "22", "tcp"]);
        assert_eq!(a, fingerprint("nmap", &["127.0.0.1", "22", "tcp"]));
        assert_eq!(a.len(), 64);
        assert_ne!(a, fingerprint("nmap", &["127.0.0.1", "2", "2tcp"]));
        assert_ne!(a, fingerprint("tcp", &["127.0.0.1", "22", "tcp"]));
        let f1 = Finding::new(
            "tcp",
            "127.0.0.1",
            "open-port",
            Severity::Info,
            "Open port 22",
            "tcp/22",
        );
        let f2 = Finding::new(
            "tcp",
            "127.0.0.1",
            "open-port",
            Severity::Info,
            "Other title",
            "tcp/22",
        );
        assert_eq!(
            f1.fingerprint, f2.fingerprint,
            "title is not part of identity"
        );
    }

    #[test]
    fn sanitize_replaces_nul_in_every_text_field() {
        let mut f =
            Finding::new("tcp", "h\0", "r\0", Severity::Info, "t\0\0", "l\0").with_detail("\0d");
        let fingerprint = f.fingerprint.clone();
        assert_eq!(sanitize(&mut f), 6);
        assert_eq!(
            (f.target.as_str(), f.rule_id.as_str(), f.title.as_str()),
            ("h\u{FFFD}", "r\u{FFFD}", "t\u{FFFD}\u{FFFD}")
        );
        assert_eq!(
            (f.location.as_str(), f.detail.as_str()),
            ("l\u{FFFD}", "\u{FFFD}d")
        );
        assert_eq!(f.fingerprint, fingerprint, "the identity is kept");
        let clean = f.clone();
        assert_eq!(sanitize(&mut f), 0);
        assert_eq!(f, clean, "a clean finding is unchanged");
    }

    #[test]
    fn url_and_host_normalization() {
        assert_eq!(
            normalize_url("HTTPS://Example.COM:443"),
            "https://example.com/"
        );
        assert_eq!(
            normalize_url("http://example.com:80/a?b#frag"),
            "http://example.com/a?b"
        );
        assert_eq!(
            normalize_url("http://example.com:8080/A"),
            "http://example.com:8080/A"
        );
        assert_eq!(
            normalize_url("http://example.com?x=1"),
            "http://example.com/?x=1"
        );
        assert_eq!(normalize_host("Example.COM."), "example.com");
    }
}
