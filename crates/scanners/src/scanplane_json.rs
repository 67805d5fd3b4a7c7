//! The `scanplane-json` report format that custom scanners write.
//!
//! A report is either one JSON document `{"findings": [ {...}, ... ]}` or NDJSON: one
//! finding object per line (blank lines are ignored), which lets a scanner stream findings
//! while it runs. A finding object has these fields:
//!
//! | field         | required | meaning                                                        |
//! |---------------|----------|----------------------------------------------------------------|
//! | `target`      | yes*     | canonical target string the finding is about                   |
//! | `rule_id`     | yes      | the check's identifier                                         |
//! | `severity`    | yes      | `critical`, `high`, `medium`, `low`, `info` or any word [`Severity::normalize`] maps, or a 0-10 score |
//! | `title`       | yes      | one-line summary                                               |
//! | `location`    | no       | where on the target (`tcp/22`, a URL, `path:line`, ...)        |
//! | `detail`      | no       | longer description or evidence                                |
//! | `fingerprint` | no       | stable identity; computed when absent                          |
//!
//! \* `target` may be omitted when the scan has exactly one target; that target is used.
//! Unknown fields are ignored so scanners can carry extra data.
//!
//! Fingerprint recipe: when absent, `fingerprint(scanner, [target, rule_id, location])`.
//! A given fingerprint that is already 64 lowercase hex characters is kept as is; any other
//! string is hashed as `fingerprint(scanner, [given])` so every stored fingerprint has the
//! same shape and custom scanners cannot collide with each other.
//!
//! Example NDJSON line:
//! `{"target":"account://123456789012","rule_id":"s3-public","severity":"high","title":"Bucket logs is public","location":"s3://logs"}`

use scanplane_core::finding::{fingerprint, Finding, Severity};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{json_document, ParseError};

pub const NAME: &str = "scanplane-json";

#[derive(Deserialize)]
struct Report {
    findings: Vec<Value>,
}

#[derive(Deserialize)]
struct RawFinding {
    target: Option<String>,
    rule_id: Option<String>,
    severity: Option<Value>,
    title: Option<String>,
    #[serde(default)]
    location: String,
    #[serde(default)]
    detail: String,
    fingerprint: Option<String>,
}

/// Parses a report with no default target; fingerprints are namespaced `scanplane-json`.
pub fn parse(input: &[u8]) -> Result<Vec<Finding>, ParseError> {
    parse_with(input, NAME, None)
}

/// True when `input` is a `{"findings": [...]}` document rather than NDJSON.
fn is_wrapped(input: &[u8]) -> bool {
    let Some(start) = input.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    // A wrapped report's first key is "findings"; an NDJSON finding never has that key, and
    // a pretty-printed wrapper does not fit on one line, so either check identifies it.
    let head = &input[start..input.len().min(start + 64)];
    let compact: Vec<u8> = head
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    compact.starts_with(b"{\"findings\"")
        || serde_json::from_slice::<Value>(input)
            .ok()
            .and_then(|v| v.get("findings").cloned())
            .is_some()
}

/// Parses a report for `scanner`, using `default_target` for findings without a target.
pub fn parse_with(
    input: &[u8],
    scanner: &str,
    default_target: Option<&str>,
) -> Result<Vec<Finding>, ParseError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::empty(scanner));
    }
    if is_wrapped(input) {
        let report: Report = json_document(scanner, input)?;
        return report
            .findings
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                finding_from_value(scanner, default_target, v)
                    .map_err(|m| ParseError::new(scanner, format!("findings[{i}]: {m}")))
            })
            .collect();
    }
    let mut out = Vec::new();
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        if let Some(f) = parse_line(line, i + 1, scanner, default_target)? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Parses one NDJSON line (1-based `line_no` for messages); blank lines give `None`.
pub fn parse_line(
    line: &[u8],
    line_no: usize,
    scanner: &str,
    default_target: Option<&str>,
) -> Result<Option<Finding>, ParseError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        ParseError::new(
            scanner,
            format!(
                "line {line_no}: malformed JSON at column {}: {e}",
                e.column()
            ),
        )
    })?;
    finding_from_value(scanner, default_target, v)
        .map(Some)
        .map_err(|m| ParseError::new(scanner, format!("line {line_no}: {m}")))
}

fn finding_from_value(
    scanner: &str,
    default_target: Option<&str>,
    v: Value,
) -> Result<Finding, String> {
    if !v.is_object() {
        return Err("a finding must be a JSON object".to_string());
    }
    let raw: RawFinding = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let non_empty = |field: &str, v: Option<String>| -> Result<String, String> {
        v.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("missing field {field:?}"))
    };
    let target = match raw.target.filter(|s| !s.trim().is_empty()) {
        Some(t) => t,
        None => default_target.map(str::to_string).ok_or_else(|| {
            "missing field \"target\" (required when the scan has several targets)".to_string()
        })?,
    };
    let rule_id = non_empty("rule_id", raw.rule_id)?;
    let title = non_empty("title", raw.title)?;
    let severity = match raw.severity {
        Some(Value::String(s)) => Severity::normalize(&s),
        Some(Value::Number(n)) => Severity::from_score(n.as_f64().unwrap_or(-1.0)),
        Some(_) => return Err("field \"severity\" must be a string or a number".to_string()),
        None => return Err("missing field \"severity\"".to_string()),
    };
    let mut f = Finding::new(scanner, target, rule_id, severity, title, raw.location)
        .with_detail(raw.detail);
    if let Some(given) = raw.fingerprint.filter(|s| !s.is_empty()) {
        let is_hex64 = given.len() == 64
            && given
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        f.fingerprint = if is_hex64 {
            given
        } else {
            fingerprint(scanner, &[&given])
        };
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_and_ndjson_forms() {
        let wrapped = br#"{
  "findings": [
    {"target": "account://1", "rule_id": "r1", "severity": "HIGH", "title": "T", "location": "s3://b", "extra": 1},
    {"target": "account://2", "rule_id": "r2", "severity": 9.1, "title": "U", "fingerprint": "mine"}
  ]
}"#;
        let f = parse(wrapped).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(
            f[0].fingerprint,
            fingerprint("scanplane-json", &["account://1", "r1", "s3://b"])
        );
        assert_eq!(f[1].severity, Severity::Critical);
        assert_eq!(f[1].fingerprint, fingerprint("scanplane-json", &["mine"]));

        let nd = b"{\"rule_id\":\"a\",\"severity\":\"low\",\"title\":\"A\"}\n\n{\"target\":\"h\",\"rule_id\":\"b\",\"severity\":\"info\",\"title\":\"B\",\"fingerprint\":\"0000000000000000000000000000000000000000000000000000000000000000\"}\n";
        let f = parse_with(nd, "acme", Some("host1")).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].target, "host1");
        assert_eq!(f[1].target, "h");
        assert_eq!(f[1].fingerprint, "0".repeat(64));
        assert!(parse(nd)
            .unwrap_err()
            .to_string()
            .contains("line 1: missing field \"target\""));
        // A single-object wrapper on one line is still a wrapper.
        assert_eq!(parse(br#"{"findings":[]}"#).unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_scanner_and_line() {
        let e = parse_with(
            b"{\"target\":\"h\",\"rule_id\":\"a\",\"title\":\"A\"}\n",
            "acme",
            None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "acme: line 1: missing field \"severity\"");
        let e = parse_with(b"{\"target\":\"h\"}\n{oops", "acme", None).unwrap_err();
        assert!(e.to_string().starts_with("acme: line 1: "), "{e}");
        let e = parse_with(b"[1,2]", "acme", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "acme: line 1: a finding must be a JSON object"
        );
        let e = parse_with(b"{\"findings\": [", "acme", None).unwrap_err();
        assert!(e.to_string().starts_with("acme: malformed JSON"), "{e}");
        let fixture = include_bytes!("../tests/data/custom/sample-report.json");
        crate::testutil::assert_robust(NAME, fixture, parse);
    }
}
