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
//! A finding that is malformed (a missing field, a wrong type), and in NDJSON a line that is
//! not valid UTF-8 or longer than [`RECORD_MAX`](crate::RECORD_MAX), is dropped with a reason
//! naming it (`line 3: ...`, `findings[2]: ...`); the others are kept. A report none of whose
//! findings is usable is an error (see [`crate::parsed`]).
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
use crate::parsed::{check_line, document_text, Parsed};
use crate::registry::Parser;

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

/// The parser of this format, for tests and the fuzzer (see [`crate::registry::parsers`]).
pub const PARSER: Parser = Parser { name: NAME, parse };

/// Parses a report with no default target; fingerprints are namespaced `scanplane-json`.
pub fn parse(input: &[u8]) -> Result<Parsed, ParseError> {
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
        || serde_json::from_str::<Value>(&document_text(input))
            .ok()
            .and_then(|v| v.get("findings").cloned())
            .is_some()
}

/// Parses a report for `scanner`, using `default_target` for findings without a target.
pub fn parse_with(
    input: &[u8],
    scanner: &str,
    default_target: Option<&str>,
) -> Result<Parsed, ParseError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::empty(scanner));
    }
    let mut parsed = Parsed::default();
    if is_wrapped(input) {
        let report: Report = json_document(scanner, input)?;
        for (i, v) in report.findings.into_iter().enumerate() {
            match finding_from_value(scanner, default_target, v) {
                Ok(f) => parsed.findings.push(f),
                Err(m) => parsed
                    .rejected
                    .push(ParseError::new(scanner, format!("findings[{i}]: {m}"))),
            }
        }
    } else {
        for (i, line) in input.split(|b| *b == b'\n').enumerate() {
            match parse_line(line, i + 1, scanner, default_target) {
                Ok(Some(f)) => parsed.findings.push(f),
                Ok(None) => {}
                Err(e) => parsed.rejected.push(e),
            }
        }
    }
    parsed.unless_all_rejected()
}

/// Parses one NDJSON line (1-based `line_no` for messages); blank lines give `None`. An
/// error is the reason to drop this line; the report's other lines are unaffected.
pub fn parse_line(
    line: &[u8],
    line_no: usize,
    scanner: &str,
    default_target: Option<&str>,
) -> Result<Option<Finding>, ParseError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = check_line(line, line_no).map_err(|m| ParseError::new(scanner, m))?;
    let v: Value = serde_json::from_str(text).map_err(|e| {
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
        let f = parse(wrapped).and_then(Parsed::strict).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(
            f[0].fingerprint,
            fingerprint("scanplane-json", &["account://1", "r1", "s3://b"])
        );
        assert_eq!(f[1].severity, Severity::Critical);
        assert_eq!(f[1].fingerprint, fingerprint("scanplane-json", &["mine"]));

        let nd = b"{\"rule_id\":\"a\",\"severity\":\"low\",\"title\":\"A\"}\n\n{\"target\":\"h\",\"rule_id\":\"b\",\"severity\":\"info\",\"title\":\"B\",\"fingerprint\":\"0000000000000000000000000000000000000000000000000000000000000000\"}\n";
        let f = parse_with(nd, "acme", Some("host1"))
            .and_then(Parsed::strict)
            .unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].target, "host1");
        assert_eq!(f[1].target, "h");
        assert_eq!(f[1].fingerprint, "0".repeat(64));
        assert!(parse(nd)
            .and_then(Parsed::strict)
            .unwrap_err()
            .to_string()
            .contains("line 1: missing field \"target\""));
        // A single-object wrapper on one line is still a wrapper.
        assert_eq!(
            parse(br#"{"findings":[]}"#)
                .and_then(Parsed::strict)
                .unwrap(),
            vec![]
        );
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
        let fixture = include_bytes!("../tests/data/scanplane-json/sample-report.json");
        crate::testutil::assert_robust(NAME, fixture, parse);
    }

    const GOOD: &str = r#"{"target":"h","rule_id":"r","severity":"low","title":"T"}"#;

    #[test]
    fn a_bad_line_is_dropped_with_its_reason_and_the_rest_kept() {
        let mut nd = Vec::new();
        nd.extend_from_slice(GOOD.as_bytes());
        nd.extend_from_slice(
            b"\n{\"target\":\"h\",\"rule_id\":\"r\",\"severity\":\"low\",\"title\":\"caf\xe9\"}\n",
        );
        nd.extend_from_slice(b"{oops\n");
        nd.extend_from_slice(&vec![b' '; crate::RECORD_MAX + 1]);
        nd.extend_from_slice(b"x\n");
        nd.extend_from_slice(GOOD.replace("\"r\"", "\"r2\"").as_bytes());
        let p = parse_with(&nd, "acme", None).unwrap();
        assert_eq!(
            p.findings
                .iter()
                .map(|f| f.rule_id.as_str())
                .collect::<Vec<_>>(),
            ["r", "r2"]
        );
        let reasons: Vec<String> = p.rejected.iter().map(|e| e.to_string()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0], "acme: line 2: not valid UTF-8 (at byte 57)");
        assert!(
            reasons[1].starts_with("acme: line 3: malformed JSON"),
            "{}",
            reasons[1]
        );
        assert_eq!(
            reasons[2],
            format!(
                "acme: line 4: {} bytes, longer than {}",
                crate::RECORD_MAX + 2,
                crate::RECORD_MAX
            )
        );
    }

    #[test]
    fn a_bad_finding_of_a_wrapped_report_is_dropped_alone() {
        let doc = format!(r#"{{"findings": [{GOOD}, {{"target": "h"}}, "text", {GOOD}]}}"#);
        let p = parse_with(doc.as_bytes(), "acme", None).unwrap();
        assert_eq!(p.findings.len(), 2);
        let reasons: Vec<String> = p.rejected.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "acme: findings[1]: missing field \"rule_id\"",
                "acme: findings[2]: a finding must be a JSON object"
            ]
        );
        // One bad byte in a wrapped report costs no finding: it is replaced.
        let mut doc = format!(r#"{{"findings": [{GOOD}, "#).into_bytes();
        doc.extend_from_slice(
            b"{\"target\":\"h\",\"rule_id\":\"r3\",\"severity\":\"low\",\"title\":\"T\xff\"}]}",
        );
        let p = parse_with(&doc, "acme", None)
            .and_then(Parsed::strict)
            .unwrap();
        assert_eq!(p[1].title, "T\u{fffd}");
    }
}
