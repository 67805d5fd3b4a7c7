//! The report a unit of work streams to `POST /api/v1/scans/:id/report`: NDJSON, one
//! [`ReportLine`] per line, findings (or, from a discovery, images) first and one `final` summary last (status, targets
//! and accounts scanned, duration, `scan_run_id`). Chunks may be retried: the server ignores
//! findings it already has for the scan (same fingerprint).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Content type of a report request.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// Request header numbering a report's chunks within an attempt (0, 1, 2, ...; a retry sends
/// the same number again), so that the lines a chunk had refused are counted once. Optional:
/// without it a retried chunk's refused lines are counted again.
pub const CHUNK_HEADER: &str = "scanplane-report-chunk";
/// Longest single report line the server accepts, in bytes (without the newline).
pub const MAX_LINE: usize = 1024 * 1024;

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReportLine {
    /// A finding.
    Finding {
        target: String,
        rule_id: String,
        severity: String,
        title: String,
        #[serde(default)]
        location: String,
        #[serde(default)]
        detail: String,
        /// Stable identity; computed from scanner, target, rule and location when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// An image a registry discovery found (only discovery units send these): one
    /// (repository, tag, platform) pointing at the manifest digest to pull.
    Image {
        repository: String,
        tag: String,
        /// `os/arch[/variant]`; empty when the manifest names none.
        #[serde(default)]
        platform: String,
        digest: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index_digest: Option<String>,
        media_type: String,
        config_digest: String,
        /// The layers: `[{digest, media_type, size, diff_id}]`.
        #[schema(value_type = Vec<Object>)]
        #[serde(default)]
        layers: Vec<serde_json::Value>,
        #[serde(default)]
        size: u64,
        /// The image config's `created`, RFC 3339.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created: Option<String>,
    },
    /// The final summary of the attempt.
    Final {
        scan_run_id: String,
        /// `success` or `error`.
        status: String,
        #[serde(default)]
        targets_scanned: Vec<String>,
        #[serde(default)]
        accounts_scanned: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_seconds: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Findings the unit dropped because they were malformed or oversized.
        #[serde(default, skip_serializing_if = "is_zero")]
        findings_rejected: u64,
        /// The first reasons for those rejections (at most [`MAX_REJECTIONS`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rejections: Vec<String>,
        /// What a pipeline step counted (a discovery: repositories, tags listed and
        /// selected, tag-filter errors, manifests fetched, images, skipped), kept with its run.
        #[schema(value_type = Option<Object>)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stats: Option<serde_json::Value>,
    },
}

/// How many rejection reasons a report carries; the count covers the rest.
pub const MAX_REJECTIONS: usize = 5;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ReportLine {
    /// Appends the line and its newline to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(&mut *out, self)?;
        out.push(b'\n');
        Ok(())
    }
}

/// What the server answers to one report request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportAccepted {
    pub lines: u64,
    /// Findings new to the scan (retries insert none).
    pub inserted: u64,
    /// Whether the final summary was in this request.
    #[serde(rename = "final")]
    pub final_seen: bool,
    pub status: String,
    /// Lines of this request that were dropped (malformed or oversized); the others were stored.
    #[serde(default)]
    pub rejected: u64,
    /// The first reasons for those rejections, each naming its line.
    #[serde(default)]
    pub rejections: Vec<String>,
    /// Findings stored with U+FFFD in place of NUL characters (which no backend can store
    /// in text on every database).
    #[serde(default)]
    pub sanitized: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_unknown_fields_are_refused() {
        let lines = [
            ReportLine::Finding {
                target: "127.0.0.1:22".into(),
                rule_id: "open-port".into(),
                severity: "info".into(),
                title: "open".into(),
                location: String::new(),
                detail: String::new(),
                fingerprint: Some("f".into()),
            },
            ReportLine::Final {
                scan_run_id: "s".into(),
                status: "success".into(),
                targets_scanned: vec!["a".into()],
                accounts_scanned: vec![],
                duration_seconds: Some(1.5),
                error: None,
                findings_rejected: 2,
                rejections: vec!["finding 3: detail longer than 1048576 bytes".into()],
                stats: Some(serde_json::json!({"images": 3})),
            },
            ReportLine::Image {
                repository: "app".into(),
                tag: "1".into(),
                platform: "linux/amd64".into(),
                digest: "sha256:aa".into(),
                index_digest: None,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                config_digest: "sha256:cc".into(),
                layers: vec![serde_json::json!({"digest": "sha256:11", "size": 3})],
                size: 3,
                created: Some("2024-01-01T00:00:00Z".into()),
            },
        ];
        let mut out = Vec::new();
        for l in &lines {
            l.encode_into(&mut out).unwrap();
        }
        let back: Vec<ReportLine> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(back, lines);
        let extra = br#"{"type":"final","scan_run_id":"s","status":"success","x":1}"#;
        assert!(serde_json::from_slice::<ReportLine>(extra).is_err());
    }
}
