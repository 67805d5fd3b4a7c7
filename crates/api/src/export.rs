//! Exports of stored findings: SARIF 2.1.0 for code-scanning tools (GitHub code scanning in
//! particular) and CSV for spreadsheets, written incrementally: [`SarifRules`] collects the
//! rule table in a first pass over the findings, [`SarifWriter`] then writes each result as
//! its page arrives and the rule table at the end, and [`csv_row`] writes one row at a time.
//! Memory follows the number of distinct rules, never the number of findings.
//!
//! SARIF's keys are written in alphabetical order (`results` before `tool`), as a JSON
//! object's order carries no meaning; that is what lets the rules follow the results.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::SecondsFormat;
use scanplane_core::finding::Severity;
use scanplane_core::identity::Triage;
use scanplane_core::scan::{Scan, ScanStatus};
use scanplane_core::Timestamp;
use scanplane_store::StoredFinding;
use serde_json::{json, Value};

/// The `$schema` written into every SARIF export: the OASIS 2.1.0 errata01 schema.
pub const SARIF_SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The SARIF version this module writes.
pub const SARIF_VERSION: &str = "2.1.0";

/// `tool.driver.informationUri`: where a reader of the report learns about the tool.
pub const INFORMATION_URI: &str = "https://scanplane.invalid/";

/// The key of scanplane's fingerprint in `partialFingerprints`; versioned so that a change
/// of fingerprint scheme can never be mistaken for the old one by a consumer.
pub const FINGERPRINT_KEY: &str = "scanplane/v1";

/// GitHub's `security-severity` score for a severity. GitHub buckets these scores back into
/// critical (>= 9.0), high (>= 7.0), medium (>= 4.0) and low, so each value sits inside the
/// bucket of its own severity.
pub fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info | Severity::Unknown => "0.0",
    }
}

/// The SARIF `level` of a severity.
pub fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info | Severity::Unknown => "note",
    }
}

/// Longest rule description kept in the rule table (each result's message keeps the whole
/// text): a scanner that reports a long detail under many rule ids cannot make the table
/// hold every detail.
pub const MAX_RULE_TEXT: usize = 8 * 1024;

/// What one rule id is described by: the first finding reporting it (in export order) and
/// the highest severity any finding gave it.
struct RuleInfo {
    title: String,
    detail: String,
    severity: Severity,
    scanners: Vec<String>,
    /// Position in the rule table (rules sorted by id), set by [`SarifRules::seal`].
    index: usize,
}

fn capped(s: &str) -> String {
    if s.len() <= MAX_RULE_TEXT {
        return s.to_string();
    }
    let mut end = MAX_RULE_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The rule table of a SARIF run, collected in a first pass over the findings.
#[derive(Default)]
pub struct SarifRules {
    rules: BTreeMap<String, RuleInfo>,
    sealed: bool,
}

impl SarifRules {
    pub fn add(&mut self, sf: &StoredFinding) {
        let id = rule_id(sf);
        match self.rules.get_mut(id) {
            Some(info) => {
                // Severity orders from highest to lowest, so the minimum is the highest.
                info.severity = info.severity.min(sf.finding.severity);
                if !info.scanners.contains(&sf.scanner) {
                    info.scanners.push(sf.scanner.clone());
                }
            }
            None => {
                self.rules.insert(
                    id.to_string(),
                    RuleInfo {
                        title: capped(&sf.finding.title),
                        detail: capped(&sf.finding.detail),
                        severity: sf.finding.severity,
                        scanners: vec![sf.scanner.clone()],
                        index: 0,
                    },
                );
            }
        }
    }

    /// Numbers the rules in id order; results refer to them by that index.
    fn seal(&mut self) {
        for (i, info) in self.rules.values_mut().enumerate() {
            info.index = i;
        }
        self.sealed = true;
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Writes one SARIF 2.1.0 log with a single run of one tool: [`SarifWriter::results_start`],
/// [`SarifWriter::result`] per finding, then [`SarifWriter::rules_start`],
/// [`SarifWriter::rule`] per rule (see [`SarifWriter::rule_ids`]) and [`SarifWriter::end`].
///
/// Rules are sorted by id, results keep the input order, and each result carries its
/// fingerprint under `partialFingerprints["scanplane/v1"]`, so uploading the same findings
/// twice yields the same alerts. A result whose rule the first pass did not see (a finding
/// stored between the passes) has no `ruleIndex`, which SARIF allows.
pub struct SarifWriter {
    rules: SarifRules,
    results: usize,
}

impl SarifWriter {
    pub fn new(mut rules: SarifRules) -> Self {
        if !rules.sealed {
            rules.seal();
        }
        SarifWriter { rules, results: 0 }
    }

    /// Starts the log: the run's `invocations` (see [`invocation`]), then its results.
    pub fn results_start(&self, out: &mut Vec<u8>, invocation: &Value) {
        out.extend_from_slice(b"{\"$schema\":");
        push_json(out, &Value::from(SARIF_SCHEMA_URI));
        out.extend_from_slice(b",\"runs\":[{\"columnKind\":\"utf16CodeUnits\",\"invocations\":[");
        push_json(out, invocation);
        out.extend_from_slice(b"],\"results\":[");
    }

    pub fn result(&mut self, out: &mut Vec<u8>, sf: &StoredFinding) {
        if self.results > 0 {
            out.push(b',');
        }
        self.results += 1;
        let id = rule_id(sf);
        let index = self.rules.rules.get(id).map(|r| r.index);
        push_json(out, &result_json(sf, id, index));
    }

    pub fn results_written(&self) -> usize {
        self.results
    }

    pub fn rules_start(&self, out: &mut Vec<u8>, tool_name: &str) {
        out.extend_from_slice(b"],\"tool\":{\"driver\":{\"informationUri\":");
        push_json(out, &Value::from(INFORMATION_URI));
        out.extend_from_slice(b",\"name\":");
        push_json(out, &Value::from(tool_name));
        out.extend_from_slice(b",\"rules\":[");
    }

    /// The rule ids in table order, for the caller to feed to [`SarifWriter::rule`] in
    /// batches.
    pub fn rule_ids(&self) -> Vec<String> {
        self.rules.rules.keys().cloned().collect()
    }

    pub fn rule(&self, out: &mut Vec<u8>, id: &str) {
        if let Some(info) = self.rules.rules.get(id) {
            if info.index > 0 {
                out.push(b',');
            }
            push_json(out, &rule_json(id, info));
        }
    }

    pub fn end(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"],\"version\":");
        push_json(out, &Value::from(env!("CARGO_PKG_VERSION")));
        out.extend_from_slice(b"}}}],\"version\":");
        push_json(out, &Value::from(SARIF_VERSION));
        out.push(b'}');
    }
}

fn push_json(out: &mut Vec<u8>, v: &Value) {
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// One SARIF log of `findings` (both passes over a slice); what the streaming export of the
/// same findings writes.
pub fn sarif_bytes(tool_name: &str, invocation: &Value, findings: &[StoredFinding]) -> Vec<u8> {
    let mut rules = SarifRules::default();
    findings.iter().for_each(|f| rules.add(f));
    let mut w = SarifWriter::new(rules);
    let mut out = Vec::new();
    w.results_start(&mut out, invocation);
    findings.iter().for_each(|f| w.result(&mut out, f));
    w.rules_start(&mut out, tool_name);
    for id in w.rule_ids() {
        w.rule(&mut out, &id);
    }
    w.end(&mut out);
    out
}

/// [`sarif_bytes`] parsed, for callers that want the document.
pub fn sarif(tool_name: &str, invocation: &Value, findings: &[StoredFinding]) -> Value {
    serde_json::from_slice(&sarif_bytes(tool_name, invocation, findings)).unwrap_or(Value::Null)
}

/// The SARIF `invocation` of a scan: whether it succeeded, when it ran, and its reason as a
/// notification. A consumer must be able to tell "no problems" from "did not run": an
/// export of a scan that failed, was skipped or has not finished says
/// `executionSuccessful: false` with the reason, at level `error`.
pub fn invocation_of(scan: &Scan) -> Value {
    let text = if scan.reason.is_empty() {
        scan.status.to_string()
    } else {
        scan.reason.clone()
    };
    invocation(
        scan.status == ScanStatus::Succeeded,
        &text,
        scan.started_at,
        scan.finished_at,
    )
}

/// See [`invocation_of`].
pub fn invocation(
    successful: bool,
    reason: &str,
    started: Option<Timestamp>,
    finished: Option<Timestamp>,
) -> Value {
    let mut inv = serde_json::Map::new();
    inv.insert("executionSuccessful".into(), Value::from(successful));
    if let Some(t) = started {
        inv.insert("startTimeUtc".into(), Value::from(crate::fmt_ts(t)));
    }
    if let Some(t) = finished {
        inv.insert("endTimeUtc".into(), Value::from(crate::fmt_ts(t)));
    }
    let level = if successful { "note" } else { "error" };
    let text = reason;
    inv.insert(
        "toolExecutionNotifications".into(),
        json!([{"level": level, "message": {"text": text}}]),
    );
    Value::Object(inv)
}

/// A rule id SARIF consumers accept: GitHub requires a non-empty `ruleId`.
fn rule_id(sf: &StoredFinding) -> &str {
    let id = sf.finding.rule_id.trim();
    if id.is_empty() {
        "unknown-rule"
    } else {
        id
    }
}

fn non_empty<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.trim().is_empty() {
        fallback
    } else {
        s
    }
}

fn rule_json(id: &str, info: &RuleInfo) -> Value {
    let short = non_empty(&info.title, id);
    let full = non_empty(&info.detail, short);
    let mut tags = vec!["security".to_string(), info.severity.as_str().to_string()];
    tags.extend(info.scanners.iter().cloned());
    json!({
        "id": id,
        "name": id,
        "shortDescription": { "text": short },
        "fullDescription": { "text": full },
        "help": { "text": format!("{short}\n\n{full}") },
        "defaultConfiguration": { "level": sarif_level(info.severity) },
        "properties": {
            "security-severity": security_severity(info.severity),
            "tags": tags,
        }
    })
}

fn result_json(sf: &StoredFinding, rule_id: &str, rule_index: Option<usize>) -> Value {
    let f = &sf.finding;
    let title = non_empty(&f.title, rule_id);
    let text = if f.detail.trim().is_empty() {
        title.to_string()
    } else {
        format!("{title}\n\n{}", f.detail)
    };
    let mut result = json!({
        "ruleId": rule_id,
        "level": sarif_level(f.severity),
        "message": { "text": text },
        "locations": [location_json(&f.target, &f.location)],
        "partialFingerprints": { FINGERPRINT_KEY: f.fingerprint },
        "properties": {
            "scanner": sf.scanner,
            "scanId": sf.scan_id,
            "severity": f.severity.as_str(),
            "target": f.target,
            "location": f.location,
        }
    });
    if let Some(i) = rule_index {
        result["ruleIndex"] = json!(i);
    }
    if let Some(s) = suppression(sf) {
        result["suppressions"] = json!([s]);
        result["properties"]["triage"] = json!(sf.triage.as_str());
    }
    result
}

/// A triaged finding as SARIF says it: suppressed outside the source (`external`),
/// `accepted`, with the triage and its comment as the justification. Code-scanning
/// consumers show a suppressed result as dismissed rather than as an open alert.
fn suppression(sf: &StoredFinding) -> Option<Value> {
    let why = match sf.triage {
        Triage::None => return None,
        Triage::AcceptedRisk => "accepted risk",
        Triage::FalsePositive => "false positive",
    };
    let justification = match sf.triage_comment.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => format!("{why}: {c}"),
        _ => why.to_string(),
    };
    Some(json!({"kind": "external", "status": "accepted", "justification": justification}))
}

/// Where a finding is, in SARIF terms. Every location gets a non-empty
/// `physicalLocation.artifactLocation.uri`, because GitHub code scanning rejects results
/// without one; findings that are not at a line of a file also get a logical location that
/// names the target and the location as the scanner reported them.
fn location_json(target: &str, location: &str) -> Value {
    let (uri, line) = artifact(target, location);
    let mut physical = json!({ "artifactLocation": { "uri": uri } });
    if let Some(line) = line {
        physical["region"] = json!({ "startLine": line });
        return json!({ "physicalLocation": physical });
    }
    let name = non_empty(location, target);
    json!({
        "physicalLocation": physical,
        "logicalLocations": [{
            "name": name,
            "fullyQualifiedName": format!("{target} {location}").trim().to_string(),
            "kind": "resource",
        }]
    })
}

/// The artifact URI and optional start line of a finding:
/// - URL targets: the location when it is itself a URL (nuclei reports the matched URL),
///   else the target URL;
/// - path targets (`fs://`, `config://`): `path:line` gives the path and the line; a
///   location that names a file gives that file; anything else (`package@version`) falls
///   back to the scanned path;
/// - any other target: the target itself, as a URI.
fn artifact(target: &str, location: &str) -> (String, Option<u64>) {
    let target = target.trim();
    let location = location.trim();
    if is_web_url(target) {
        let url = if is_web_url(location) {
            location
        } else {
            target
        };
        return (encode_uri(url), None);
    }
    if let Some(root) = target
        .strip_prefix("fs://")
        .or_else(|| target.strip_prefix("config://"))
    {
        if let Some((path, line)) = split_line(location) {
            return (encode_path(path), Some(line));
        }
        if !location.is_empty() && !location.contains('@') {
            return (encode_path(location), None);
        }
        return (encode_path(non_empty(root, ".")), None);
    }
    if target.contains("://") {
        return (encode_uri(target), None);
    }
    // A bare host (`example.com`, `10.0.0.1:22`, `[::1]:443`) is an authority, written as a
    // network-path reference so that a port is not read as a URI scheme.
    (
        format!(
            "//{}",
            encode_authority(&percent_encode(non_empty(target, "unknown"), is_uri_char))
        ),
        None,
    )
}

fn is_web_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Splits `path:line` with a positive line number; `None` for anything else.
fn split_line(location: &str) -> Option<(&str, u64)> {
    let (path, line) = location.rsplit_once(':')?;
    if path.is_empty() || line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let line: u64 = line.parse().ok()?;
    (line > 0).then_some((path, line))
}

/// Characters RFC 3986 allows unescaped anywhere in a URI reference.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=".contains(c)
}

fn percent_encode(s: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        let valid_escape = c == '%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if valid_escape || keep(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Escapes what a URI must not contain unescaped (spaces, quotes, non-ASCII), keeping its
/// structure and any escapes it already has. An authority whose "port" is not a number
/// (`image://alpine:3.19`, a host with a port range) has its colons escaped, because RFC
/// 3986 allows only digits after the colon of an authority.
fn encode_uri(s: &str) -> String {
    let encoded = percent_encode(s, is_uri_char);
    // Only `scheme://` starts an authority; a `//` later in a path does not.
    let scheme_end = encoded.find("://").filter(|&i| {
        i > 0
            && encoded[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    let Some(i) = scheme_end else {
        return encoded;
    };
    let (prefix, rest) = encoded.split_at(i + 3);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    format!("{prefix}{}{tail}", encode_authority(authority))
}

fn encode_authority(authority: &str) -> String {
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // An IPv6 literal keeps its brackets and colons; only what follows `]` is a port.
    let host_end = if hostport.starts_with('[') {
        hostport.find(']').map_or(hostport.len(), |i| i + 1)
    } else {
        0
    };
    let (host, port) = hostport.split_at(host_end);
    let fixed = match port.split_once(':') {
        Some((h, p)) if !p.bytes().all(|b| b.is_ascii_digit()) || p.contains(':') => {
            format!("{host}{h}%3A{}", p.replace(':', "%3A"))
        }
        _ => hostport.to_string(),
    };
    match userinfo {
        Some(u) => format!("{u}@{fixed}"),
        None => fixed,
    }
}

/// Turns a file path into a relative or absolute URI path: `?` and `#` are escaped because
/// in a path they are characters, not a query or fragment, and a first segment holding a
/// colon gets a `./` so that it is not read as a URI scheme.
fn encode_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    let encoded = percent_encode(&path, |c| is_uri_char(c) && c != '?' && c != '#');
    let first_segment = encoded.split('/').next().unwrap_or("");
    if first_segment.contains(':') {
        format!("./{encoded}")
    } else {
        encoded
    }
}

/// The columns of [`csv`], in order.
pub const CSV_HEADER: [&str; 14] = [
    "id",
    "created_at",
    "tenant_id",
    "scan_id",
    "scanner",
    "severity",
    "rule_id",
    "title",
    "target",
    "location",
    "fingerprint",
    "detail",
    "triage",
    "triage_comment",
];

/// Writes findings as CSV (RFC 4180): a header row, then one row per finding, CRLF line
/// ends, and fields holding a comma, a quote, CR or LF quoted with inner quotes doubled.
///
/// A cell a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, tab or
/// CR) gets a leading `'`, so it stays text.
pub fn csv(findings: &[StoredFinding]) -> String {
    let mut out = String::new();
    csv_header(&mut out);
    for sf in findings {
        csv_row(&mut out, sf);
    }
    out
}

/// The header row of [`csv`].
pub fn csv_header(out: &mut String) {
    push_row(out, CSV_HEADER.iter().copied());
}

/// One row of [`csv`].
pub fn csv_row(out: &mut String, sf: &StoredFinding) {
    let f = &sf.finding;
    let created = sf.created_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    push_row(
        out,
        [
            sf.id.as_str(),
            created.as_str(),
            sf.tenant_id.as_str(),
            sf.scan_id.as_str(),
            sf.scanner.as_str(),
            f.severity.as_str(),
            f.rule_id.as_str(),
            f.title.as_str(),
            f.target.as_str(),
            f.location.as_str(),
            f.fingerprint.as_str(),
            f.detail.as_str(),
            sf.triage.as_str(),
            sf.triage_comment.as_deref().unwrap_or(""),
        ],
    );
}

fn push_row<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, field);
    }
    out.push_str("\r\n");
}

fn push_field(out: &mut String, field: &str) {
    // Scanned systems control titles and details: a cell a spreadsheet would read as a
    // formula is written as text (OWASP's CSV-injection advice).
    let neutral;
    let field = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        neutral = format!("'{field}");
        neutral.as_str()
    } else {
        field
    };
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use scanplane_core::finding::Finding;

    fn stored(target: &str, rule: &str, sev: Severity, title: &str, loc: &str) -> StoredFinding {
        StoredFinding {
            id: format!("f-{rule}"),
            tenant_id: "t1".into(),
            scan_id: "s1".into(),
            scanner: "trivy".into(),
            created_at: chrono::Utc
                .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
                .single()
                .unwrap(),
            finding: Finding::new("trivy", target, rule, sev, title, loc),
            triage: Triage::None,
            triage_comment: None,
        }
    }

    /// A minimal RFC 4180 reader, written independently of the writer so the round trip
    /// checks the quoting rather than restating it.
    fn ok() -> Value {
        invocation(true, "succeeded", None, None)
    }

    fn parse_csv(s: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut chars = s.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') if chars.peek() == Some(&'\n') => {
                    chars.next();
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(!quoted, "unterminated quoted field in {s:?}");
        assert!(field.is_empty() && row.is_empty(), "missing final CRLF");
        rows
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let tricky = "Say \"hi\", then\nleave\r\nnow";
        let mut f = stored("fs://.", "R1", Severity::High, tricky, "a,b.txt:3");
        f.finding.detail = "plain".into();
        let plain = stored("example.com", "R2", Severity::Low, "Ünïcödé 漢字", "tcp/22");
        let out = csv(&[f.clone(), plain]);

        assert!(out.starts_with("id,created_at,tenant_id,scan_id,scanner,severity,rule_id,title,target,location,fingerprint,detail,triage,triage_comment\r\n"));
        assert!(
            out.contains("\"Say \"\"hi\"\", then\nleave\r\nnow\""),
            "{out}"
        );
        assert!(out.contains(",\"a,b.txt:3\","), "{out}");
        assert!(
            out.contains(",Ünïcödé 漢字,"),
            "unquoted when not needed: {out}"
        );
        assert!(out.contains("2025-03-01T12:00:00.000Z"), "{out}");

        let rows = parse_csv(&out);
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.len() == CSV_HEADER.len()));
        assert_eq!(rows[0], CSV_HEADER.map(String::from).to_vec());
        assert_eq!(rows[1][7], tricky);
        assert_eq!(rows[1][9], "a,b.txt:3");
        assert_eq!(rows[1][10], f.finding.fingerprint);
        assert_eq!(rows[2][5], "low");
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        let f = stored(
            "h",
            "r",
            Severity::Low,
            "=HYPERLINK(\"http://x\")",
            "@SUM(1)",
        );
        let rows = parse_csv(&csv(&[f]));
        assert!(
            rows[1].iter().any(|c| c == "'=HYPERLINK(\"http://x\")"),
            "{rows:?}"
        );
        assert!(rows[1].iter().any(|c| c == "'@SUM(1)"), "{rows:?}");
    }

    #[test]
    fn csv_of_nothing_is_the_header() {
        assert_eq!(csv(&[]), format!("{}\r\n", CSV_HEADER.join(",")));
    }

    #[test]
    fn severity_maps_to_level_and_score() {
        let table = [
            (Severity::Critical, "error", "9.5"),
            (Severity::High, "error", "8.0"),
            (Severity::Medium, "warning", "5.5"),
            (Severity::Low, "note", "3.0"),
            (Severity::Info, "note", "0.0"),
            (Severity::Unknown, "note", "0.0"),
        ];
        for (sev, level, score) in table {
            assert_eq!(sarif_level(sev), level, "{sev}");
            assert_eq!(security_severity(sev), score, "{sev}");
        }
    }

    #[test]
    fn sarif_rules_results_and_fingerprints() {
        let a1 = stored("fs://repo", "R-B", Severity::Low, "B low", "src/a.rs:7");
        let a2 = stored("fs://repo", "R-B", Severity::Critical, "B crit", "src/b.rs");
        let b = stored("https://Example.com/x", "R-A", Severity::Medium, "A", "");
        let doc = sarif("scanplane", &ok(), &[a1.clone(), a2, b]);
        let run = &doc["runs"][0];
        assert_eq!(doc["version"], "2.1.0");
        assert_eq!(run["tool"]["driver"]["name"], "scanplane");
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2, "one rule per rule id");
        assert_eq!(rules[0]["id"], "R-A");
        assert_eq!(rules[1]["id"], "R-B");
        assert_eq!(
            rules[1]["properties"]["security-severity"], "9.5",
            "a rule scores as its worst finding"
        );
        assert_eq!(rules[1]["shortDescription"]["text"], "B low");

        let results = run["results"].as_array().unwrap();
        assert_eq!(results[0]["ruleId"], "R-B");
        assert_eq!(results[0]["ruleIndex"], 1);
        assert_eq!(results[0]["level"], "note");
        assert_eq!(results[1]["level"], "error");
        assert_eq!(results[2]["ruleIndex"], 0);
        assert_eq!(
            results[0]["partialFingerprints"]["scanplane/v1"],
            a1.finding.fingerprint.as_str()
        );
        let loc = &results[0]["locations"][0];
        assert_eq!(
            loc["physicalLocation"]["artifactLocation"]["uri"],
            "src/a.rs"
        );
        assert_eq!(loc["physicalLocation"]["region"]["startLine"], 7);
        assert!(loc.get("logicalLocations").is_none());
        let loc = &results[1]["locations"][0];
        assert_eq!(
            loc["physicalLocation"]["artifactLocation"]["uri"],
            "src/b.rs"
        );
        assert!(loc["physicalLocation"].get("region").is_none());
        let loc = &results[2]["locations"][0];
        assert_eq!(
            loc["physicalLocation"]["artifactLocation"]["uri"],
            "https://Example.com/x"
        );
        assert_eq!(loc["logicalLocations"][0]["name"], "https://Example.com/x");

        let again = sarif("scanplane", &ok(), std::slice::from_ref(&a1));
        assert_eq!(
            again["runs"][0]["results"][0]["partialFingerprints"],
            results[0]["partialFingerprints"],
            "fingerprints do not depend on the other findings"
        );
    }

    #[test]
    fn artifact_uris() {
        let cases = [
            ("https://h/p", "https://h/p?q=1", "https://h/p?q=1", None),
            ("https://h/p", "tcp/443", "https://h/p", None),
            (
                "fs://.",
                "dir with space/ä.txt:12",
                "dir%20with%20space/%C3%A4.txt",
                Some(12),
            ),
            ("fs://.", "weird#name?.yaml", "weird%23name%3F.yaml", None),
            ("config://infra", "C:x/main.tf:0", "./C:x/main.tf:0", None),
            ("fs://src", "lodash@4.17.20", "src", None),
            ("fs://", "lodash@4.17.20", ".", None),
            (
                "account://123456789012",
                "s3/bucket",
                "account://123456789012",
                None,
            ),
            (
                "image://alpine:3.19",
                "musl@1.2",
                "image://alpine%3A3.19",
                None,
            ),
            (
                "image://ghcr.io/a/b:1@sha256:ab",
                "x@1",
                "image://ghcr.io/a/b:1@sha256:ab",
                None,
            ),
            (
                "registry://localhost:5000/r",
                "x@1",
                "registry://localhost:5000/r",
                None,
            ),
            (
                "example.com:1-1024",
                "tcp/80",
                "//example.com%3A1-1024",
                None,
            ),
            ("https://u@h:x/p", "", "https://u@h%3Ax/p", None),
            ("10.0.0.1:22", "tcp/22", "//10.0.0.1:22", None),
            ("[::1]:443", "tcp/443", "//[::1]:443", None),
            ("host name", "x", "//host%20name", None),
        ];
        for (target, location, uri, line) in cases {
            assert_eq!(
                artifact(target, location),
                (uri.to_string(), line),
                "{target} {location}"
            );
        }
        assert_eq!(encode_uri("a%20b%zz"), "a%20b%25zz");
        assert_eq!(encode_uri("dir//x:y"), "dir//x:y");
        assert_eq!(encode_uri("dir//x:y"), "dir//x:y");
    }
}
