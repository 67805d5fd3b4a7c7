//! Scan settings declared as annotations on an Ingress or VirtualService, parsed over the
//! operator's defaults: every key checked, every problem named by its annotation.
//!
//! Keys live under `scanplane.io/`; the nuclei-operator's `nuclei.homelab.mortenolsen.pro/`
//! keys mean the same, so its users can switch without editing every Ingress. When both
//! spell one key, the `scanplane.io/` value wins. The hierarchy is operator defaults <
//! annotations: a key that is absent keeps the default.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::limits::DurationLimit;
use crate::schedule::{parse_cron, MIN_INTERVAL};

/// scanplane's own annotation prefix.
pub const PREFIX: &str = "scanplane.io/";
/// The nuclei-operator's prefix, accepted with the same keys and meanings.
pub const NUCLEI_OPERATOR_PREFIX: &str = "nuclei.homelab.mortenolsen.pro/";

/// Every scan-setting key, without prefix.
pub const KEYS: &[&str] = &[
    ENABLED,
    SCANNER,
    TEMPLATES,
    SEVERITY,
    SCHEDULE,
    TIMEOUT,
    SCANNER_IMAGE,
    EXCLUDE_TEMPLATES,
    RATE_LIMIT,
    TAGS,
    EXCLUDE_TAGS,
];
/// Keys under `scanplane.io/` that are not scan settings (they map tenancy), so they are
/// not reported as unknown.
pub const OTHER_KEYS: &[&str] = &["tenant"];

const ENABLED: &str = "enabled";
const SCANNER: &str = "scanner";
const TEMPLATES: &str = "templates";
const SEVERITY: &str = "severity";
const SCHEDULE: &str = "schedule";
const TIMEOUT: &str = "timeout";
const SCANNER_IMAGE: &str = "scanner-image";
const EXCLUDE_TEMPLATES: &str = "exclude-templates";
const RATE_LIMIT: &str = "rate-limit";
const TAGS: &str = "tags";
const EXCLUDE_TAGS: &str = "exclude-tags";

/// Severities nuclei filters by.
pub const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical", "unknown"];
/// Bounds of `rate-limit` (requests per second), as the nuclei scanner accepts them.
pub const RATE_LIMIT_RANGE: (u32, u32) = (1, 10_000);
/// At most this many entries in one list annotation; at most this long one value.
pub const MAX_LIST: usize = 100;
pub const MAX_VALUE: usize = 4096;

/// How often an annotated host is scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanCadence {
    /// A cron expression (5 or 6 fields), in UTC.
    Cron(String),
    /// Every period, anchored at the schedule's creation (spreads hosts naturally).
    Every(Duration),
}

/// The operator's defaults: what an Ingress gets for each key it does not annotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationDefaults {
    /// Whether an Ingress without an `enabled` annotation is scanned. The nuclei-operator
    /// scans every Ingress it watches unless told not to; so does scanplane by default.
    pub enabled: bool,
    pub scanner: String,
    pub schedule: ScanCadence,
    pub timeout: Duration,
    /// Requests per second of the default scanner (nuclei's 150, as the nuclei-operator):
    /// a resource whose `scanner` annotation picks another scanner gets a rate limit only
    /// from its own `rate-limit` annotation.
    pub rate_limit: Option<u32>,
    pub severity: Vec<String>,
}

impl Default for AnnotationDefaults {
    fn default() -> Self {
        AnnotationDefaults {
            enabled: true,
            scanner: "nuclei".to_string(),
            schedule: ScanCadence::Every(Duration::from_secs(24 * 3600)),
            timeout: Duration::from_secs(30 * 60),
            rate_limit: Some(150),
            severity: Vec::new(),
        }
    }
}

/// Keys the operator's defaults may set (the others are per resource).
pub const DEFAULT_KEYS: &[&str] = &[ENABLED, SCANNER, SCHEDULE, TIMEOUT, RATE_LIMIT, SEVERITY];

/// The operator's defaults from its configuration, written with the annotation keys
/// (without prefix) and values, e.g. `{schedule: "@every 12h", severity: "high,critical"}`,
/// checked exactly as annotations are. Errors name `operator.defaults.<key>`.
pub fn defaults_from(
    config: &BTreeMap<String, String>,
) -> Result<AnnotationDefaults, Vec<AnnotationError>> {
    let mut errors = Vec::new();
    let mut as_annotations = BTreeMap::new();
    for (key, value) in config {
        if DEFAULT_KEYS.contains(&key.as_str()) {
            as_annotations.insert(format!("{PREFIX}{key}"), value.clone());
        } else {
            errors.push(AnnotationError {
                annotation: format!("operator.defaults.{key}"),
                message: format!(
                    "not an operator default; the defaults are {}",
                    DEFAULT_KEYS.join(", ")
                ),
            });
        }
    }
    let base = AnnotationDefaults::default();
    let parsed = parse(&as_annotations, &base).map_err(|e| {
        e.into_iter()
            .map(|mut a| {
                a.annotation = a.annotation.replace(PREFIX, "operator.defaults.");
                a
            })
            .collect::<Vec<_>>()
    });
    match parsed {
        Ok(scan) if errors.is_empty() => Ok(AnnotationDefaults {
            enabled: scan.enabled,
            // A rate limit of another default scanner comes only from the configuration.
            rate_limit: if as_annotations.contains_key(&format!("{PREFIX}{RATE_LIMIT}")) {
                scan.rate_limit
            } else if scan.scanner == base.scanner {
                base.rate_limit
            } else {
                None
            },
            scanner: scan.scanner,
            schedule: scan.schedule,
            timeout: scan.timeout,
            severity: scan.severity,
        }),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

/// The scan an annotated resource asks for, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatedScan {
    pub enabled: bool,
    pub scanner: String,
    pub schedule: ScanCadence,
    pub timeout: Duration,
    /// Overrides the scanner's container image (Kubernetes executor only).
    pub scanner_image: Option<String>,
    pub templates: Vec<String>,
    pub exclude_templates: Vec<String>,
    pub severity: Vec<String>,
    pub rate_limit: Option<u32>,
    pub tags: Vec<String>,
    pub exclude_tags: Vec<String>,
}

/// One bad annotation: its full key as written and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationError {
    pub annotation: String,
    pub message: String,
}

impl std::fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "annotation {}: {}", self.annotation, self.message)
    }
}

/// Whether any annotation of the resource is one of ours (under either prefix): a resource
/// without any is left alone when the defaults do not enable scanning.
pub fn has_any(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .keys()
        .any(|k| k.starts_with(PREFIX) || k.starts_with(NUCLEI_OPERATOR_PREFIX))
}

/// Parses the resource's annotations over `defaults`. Every problem is reported, not only
/// the first, so one edit can fix them all.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    defaults: &AnnotationDefaults,
) -> Result<AnnotatedScan, Vec<AnnotationError>> {
    let mut errors = Vec::new();
    for key in annotations.keys() {
        for prefix in [PREFIX, NUCLEI_OPERATOR_PREFIX] {
            if let Some(rest) = key.strip_prefix(prefix) {
                let other = prefix == PREFIX && OTHER_KEYS.contains(&rest);
                if !KEYS.contains(&rest) && !other {
                    errors.push(AnnotationError {
                        annotation: key.clone(),
                        message: format!("unknown key; known keys are {}", KEYS.join(", ")),
                    });
                }
            }
        }
    }
    let mut get = |key: &str| -> Option<(String, &str)> {
        let (full, value) = [PREFIX, NUCLEI_OPERATOR_PREFIX].iter().find_map(|p| {
            let full = format!("{p}{key}");
            annotations.get(&full).map(|v| (full, v.as_str()))
        })?;
        if value.len() > MAX_VALUE {
            errors.push(AnnotationError {
                annotation: full,
                message: format!("longer than {MAX_VALUE} bytes"),
            });
            return None;
        }
        Some((full, value.trim()))
    };
    let enabled = get(ENABLED);
    let scanner = get(SCANNER);
    let schedule = get(SCHEDULE);
    let timeout = get(TIMEOUT);
    let image = get(SCANNER_IMAGE);
    let rate = get(RATE_LIMIT);
    let rate_annotated = rate.is_some();
    let lists = [TEMPLATES, EXCLUDE_TEMPLATES, SEVERITY, TAGS, EXCLUDE_TAGS].map(|k| (k, get(k)));

    let mut scan = AnnotatedScan {
        enabled: defaults.enabled,
        scanner: defaults.scanner.clone(),
        schedule: defaults.schedule.clone(),
        timeout: defaults.timeout,
        scanner_image: None,
        templates: Vec::new(),
        exclude_templates: Vec::new(),
        severity: defaults.severity.clone(),
        rate_limit: defaults.rate_limit,
        tags: Vec::new(),
        exclude_tags: Vec::new(),
    };
    let mut fail = |annotation: String, message: String| {
        errors.push(AnnotationError {
            annotation,
            message,
        })
    };
    if let Some((key, v)) = enabled {
        match v.to_ascii_lowercase().as_str() {
            "true" => scan.enabled = true,
            "false" => scan.enabled = false,
            _ => fail(key, format!("expected \"true\" or \"false\", got {v:?}")),
        }
    }
    if let Some((key, v)) = scanner {
        if is_scanner_name(v) {
            scan.scanner = v.to_string();
        } else {
            fail(
                key,
                format!("{v:?} is not a scanner name (lowercase letters, digits and '-')"),
            );
        }
    }
    if let Some((key, v)) = schedule {
        match parse_schedule(v) {
            Ok(c) => scan.schedule = c,
            Err(e) => fail(key, e),
        }
    }
    if let Some((key, v)) = timeout {
        match DurationLimit::ScanTimeout.parse(v) {
            Ok(d) if d.is_zero() => fail(key, "must be longer than 0s".to_string()),
            Ok(d) => scan.timeout = d,
            Err(e) => fail(key, e.to_string()),
        }
    }
    if let Some((key, v)) = image {
        match check_image(v) {
            Ok(()) => scan.scanner_image = Some(v.to_string()),
            Err(e) => fail(key, e),
        }
    }
    if let Some((key, v)) = rate {
        let (lo, hi) = RATE_LIMIT_RANGE;
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => scan.rate_limit = Some(n),
            _ => fail(
                key,
                format!(
                    "expected requests per second, a whole number from {lo} to {hi}, got {v:?}"
                ),
            ),
        }
    }
    for (name, value) in lists {
        let Some((key, v)) = value else { continue };
        let items = match parse_list(v, name) {
            Ok(items) => items,
            Err(e) => {
                fail(key, e);
                continue;
            }
        };
        match name {
            TEMPLATES => scan.templates = items,
            EXCLUDE_TEMPLATES => scan.exclude_templates = items,
            SEVERITY => scan.severity = items,
            TAGS => scan.tags = items,
            _ => scan.exclude_tags = items,
        }
    }
    // The default rate limit belongs to the default scanner (nuclei's 150 requests per
    // second); a resource that picks another scanner, which may not take the option at all,
    // gets one only from its own annotation.
    if !rate_annotated && scan.scanner != defaults.scanner {
        scan.rate_limit = None;
    }
    if errors.is_empty() {
        Ok(scan)
    } else {
        Err(errors)
    }
}

fn is_scanner_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Cron (5 or 6 fields), the macros `@hourly`, `@daily`/`@midnight`, `@weekly`,
/// `@monthly`, `@yearly`/`@annually`, or `@every <duration>` (the nuclei-operator's form).
pub fn parse_schedule(v: &str) -> Result<ScanCadence, String> {
    let expr = match v {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        _ => v,
    };
    if let Some(period) = expr.strip_prefix("@every") {
        let period = period.trim();
        let d = DurationLimit::Interval
            .parse(period)
            .map_err(|e| format!("@every {period}: {e}"))?;
        if d < MIN_INTERVAL {
            return Err(format!(
                "@every {period}: shorter than the minimum interval of {}",
                crate::duration::format_duration(MIN_INTERVAL)
            ));
        }
        return Ok(ScanCadence::Every(d));
    }
    if expr.starts_with('@') {
        return Err(format!(
            "{v:?} is not a schedule; use cron (\"0 3 * * *\"), @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>"
        ));
    }
    parse_cron(expr).map_err(|e| e.to_string())?;
    Ok(ScanCadence::Cron(expr.to_string()))
}

/// A container image reference: `[registry/]repository[:tag][@digest]`, no spaces or
/// control characters (the scanner runs it; a malformed one would fail every Job).
fn check_image(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 512
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
        && !v.starts_with(['/', ':', '@', '.', '-'])
        && !v.ends_with(['/', ':', '@']);
    if !ok {
        return Err(format!(
            "{v:?} is not an image reference such as projectdiscovery/nuclei:v3.3.0"
        ));
    }
    if let Some((_, digest)) = v.split_once('@') {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{v:?}: a digest is sha256: and 64 hex digits"));
        }
    }
    Ok(())
}

/// A comma-separated list. Severities must be nuclei's; template paths and tags are
/// letters, digits and `-_./:` (no spaces, no shell or flag syntax).
fn parse_list(v: &str, name: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if items.len() > MAX_LIST {
        return Err(format!("more than {MAX_LIST} entries"));
    }
    for item in &items {
        if name == SEVERITY {
            let lower = item.to_ascii_lowercase();
            if !SEVERITIES.contains(&lower.as_str()) {
                return Err(format!(
                    "{item:?} is not a severity; expected some of {}",
                    SEVERITIES.join(", ")
                ));
            }
        } else if item.starts_with('-')
            || !item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
        {
            return Err(format!(
                "{item:?}: entries are letters, digits and -_./: and do not start with '-'"
            ));
        }
    }
    if name == SEVERITY {
        return Ok(items.iter().map(|s| s.to_ascii_lowercase()).collect());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<AnnotationError> {
        match parse(&ann(pairs), &AnnotationDefaults::default()) {
            Ok(s) => panic!("accepted {pairs:?} as {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn no_annotations_give_the_defaults() {
        let d = AnnotationDefaults::default();
        let s = parse(&BTreeMap::new(), &d).unwrap();
        assert!(s.enabled);
        assert_eq!(s.scanner, "nuclei");
        assert_eq!(s.schedule, ScanCadence::Every(Duration::from_secs(86_400)));
        assert_eq!(s.timeout, Duration::from_secs(1800));
        assert_eq!(s.scanner_image, None);
        assert!(s.templates.is_empty() && s.tags.is_empty() && s.severity.is_empty());
        assert!(!has_any(&BTreeMap::new()));
    }

    #[test]
    fn every_key_is_read() {
        let s = parse(
            &ann(&[
                ("scanplane.io/enabled", "TRUE"),
                ("scanplane.io/scanner", "nuclei"),
                (
                    "scanplane.io/templates",
                    "cves/, exposures/configs/git-config.yaml",
                ),
                ("scanplane.io/severity", "High,critical"),
                ("scanplane.io/schedule", "0 3 * * *"),
                ("scanplane.io/timeout", "45m"),
                (
                    "scanplane.io/scanner-image",
                    "registry.local:5000/nuclei:v3.3.0",
                ),
                ("scanplane.io/exclude-templates", "dos/"),
                ("scanplane.io/rate-limit", "50"),
                ("scanplane.io/tags", "cve,panel"),
                ("scanplane.io/exclude-tags", "intrusive"),
            ]),
            &AnnotationDefaults::default(),
        )
        .unwrap();
        assert_eq!(
            s,
            AnnotatedScan {
                enabled: true,
                scanner: "nuclei".into(),
                schedule: ScanCadence::Cron("0 3 * * *".into()),
                timeout: Duration::from_secs(45 * 60),
                scanner_image: Some("registry.local:5000/nuclei:v3.3.0".into()),
                templates: vec!["cves/".into(), "exposures/configs/git-config.yaml".into()],
                exclude_templates: vec!["dos/".into()],
                severity: vec!["high".into(), "critical".into()],
                rate_limit: Some(50),
                tags: vec!["cve".into(), "panel".into()],
                exclude_tags: vec!["intrusive".into()],
            }
        );
    }

    #[test]
    fn nuclei_operator_keys_mean_the_same_and_ours_win() {
        let a = ann(&[
            ("nuclei.homelab.mortenolsen.pro/enabled", "false"),
            ("nuclei.homelab.mortenolsen.pro/severity", "low"),
            ("nuclei.homelab.mortenolsen.pro/schedule", "@every 12h"),
            ("scanplane.io/severity", "critical"),
        ]);
        assert!(has_any(&a));
        let s = parse(&a, &AnnotationDefaults::default()).unwrap();
        assert!(!s.enabled);
        assert_eq!(s.severity, vec!["critical".to_string()]);
        assert_eq!(
            s.schedule,
            ScanCadence::Every(Duration::from_secs(12 * 3600))
        );
    }

    #[test]
    fn schedules_take_cron_macros_and_every() {
        for (v, want) in [
            ("@daily", ScanCadence::Cron("0 0 * * *".into())),
            ("@hourly", ScanCadence::Cron("0 * * * *".into())),
            ("@weekly", ScanCadence::Cron("0 0 * * 0".into())),
            ("*/30 * * * * *", ScanCadence::Cron("*/30 * * * * *".into())),
            ("@every 90m", ScanCadence::Every(Duration::from_secs(5400))),
        ] {
            assert_eq!(parse_schedule(v).unwrap(), want, "{v}");
        }
        for v in [
            "@sometimes",
            "@every",
            "@every 1s",
            "@every 400d",
            "61 * * * *",
            "* *",
            "",
        ] {
            assert!(parse_schedule(v).is_err(), "{v}");
        }
    }

    #[test]
    fn each_bad_value_is_named_by_its_annotation() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "scanplane.io/enabled",
                "yes",
                "expected \"true\" or \"false\"",
            ),
            (
                "scanplane.io/scanner",
                "Nuclei Scanner",
                "not a scanner name",
            ),
            ("scanplane.io/schedule", "every day", "cron"),
            ("scanplane.io/schedule", "@every 10s", "minimum interval"),
            ("scanplane.io/timeout", "forever", ""),
            ("scanplane.io/timeout", "30d", "at most"),
            ("scanplane.io/timeout", "0s", "longer than 0s"),
            (
                "scanplane.io/scanner-image",
                "nuclei latest",
                "not an image reference",
            ),
            (
                "scanplane.io/scanner-image",
                "nuclei@sha256:abc",
                "64 hex digits",
            ),
            ("scanplane.io/rate-limit", "0", "from 1 to 10000"),
            ("scanplane.io/rate-limit", "fast", "whole number"),
            ("scanplane.io/rate-limit", "99999999999", "whole number"),
            (
                "scanplane.io/severity",
                "high,severe",
                "\"severe\" is not a severity",
            ),
            (
                "scanplane.io/templates",
                "cves/;rm -rf",
                "entries are letters",
            ),
            ("scanplane.io/tags", "-x", "do not start with '-'"),
            ("scanplane.io/exclude-tags", "a b", "entries are letters"),
            (
                "scanplane.io/exclude-templates",
                "$(id)",
                "entries are letters",
            ),
            ("scanplane.io/sevrity", "high", "unknown key"),
            (
                "nuclei.homelab.mortenolsen.pro/enable",
                "true",
                "unknown key",
            ),
        ];
        for (key, value, want) in cases {
            let e = errors(&[(key, value)]);
            assert_eq!(e.len(), 1, "{key}={value}: {e:?}");
            assert_eq!(e[0].annotation, *key);
            assert!(
                e[0].message.contains(want),
                "{key}={value}: {}",
                e[0].message
            );
        }
    }

    #[test]
    fn all_problems_are_reported_together_and_sizes_are_bounded() {
        let e = errors(&[
            ("scanplane.io/enabled", "maybe"),
            ("scanplane.io/rate-limit", "-1"),
            ("scanplane.io/tenant", "team-a"),
        ]);
        let keys: Vec<&str> = e.iter().map(|e| e.annotation.as_str()).collect();
        assert_eq!(keys, ["scanplane.io/enabled", "scanplane.io/rate-limit"]);
        let long = "a,".repeat(MAX_LIST + 1);
        assert!(errors(&[("scanplane.io/tags", &long)])[0]
            .message
            .contains("more than 100"));
        let huge = "a".repeat(MAX_VALUE + 1);
        assert!(errors(&[("scanplane.io/tags", &huge)])[0]
            .message
            .contains("longer than"));
        assert_eq!(
            errors(&[("scanplane.io/enabled", "no")])[0].to_string(),
            "annotation scanplane.io/enabled: expected \"true\" or \"false\", got \"no\""
        );
    }

    #[test]
    fn defaults_are_kept_for_absent_keys() {
        let d = AnnotationDefaults {
            enabled: false,
            scanner: "http-headers".into(),
            schedule: ScanCadence::Cron("0 1 * * *".into()),
            timeout: Duration::from_secs(60),
            rate_limit: Some(10),
            severity: vec!["high".into()],
        };
        let s = parse(&ann(&[("scanplane.io/tags", "x")]), &d).unwrap();
        assert!(!s.enabled);
        assert_eq!(s.scanner, "http-headers");
        assert_eq!(s.rate_limit, Some(10));
        assert_eq!(s.severity, vec!["high".to_string()]);
        assert_eq!(s.tags, vec!["x".to_string()]);
    }

    #[test]
    fn the_default_rate_limit_is_nuclei_s_only() {
        let d = AnnotationDefaults::default();
        let nuclei = parse(&ann(&[]), &d).unwrap();
        assert_eq!(nuclei.rate_limit, Some(150));
        let http = parse(&ann(&[("scanplane.io/scanner", "http")]), &d).unwrap();
        assert_eq!(
            http.rate_limit, None,
            "another scanner gets no nuclei option"
        );
        let asked = parse(
            &ann(&[
                ("scanplane.io/scanner", "http"),
                ("scanplane.io/rate-limit", "5"),
            ]),
            &d,
        )
        .unwrap();
        assert_eq!(asked.rate_limit, Some(5), "an annotated one is passed on");
    }

    #[test]
    fn operator_defaults_are_written_like_annotations_and_checked_alike() {
        let cfg: BTreeMap<String, String> = [
            ("schedule", "@every 12h"),
            ("severity", "high,critical"),
            ("timeout", "45m"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let d = defaults_from(&cfg).unwrap();
        assert_eq!(
            d.schedule,
            ScanCadence::Every(Duration::from_secs(12 * 3600))
        );
        assert_eq!(d.severity, vec!["high".to_string(), "critical".to_string()]);
        assert_eq!(d.timeout, Duration::from_secs(45 * 60));
        assert_eq!(d.rate_limit, Some(150), "nuclei's default stays");
        assert_eq!(d.scanner, "nuclei");

        let http: BTreeMap<String, String> = [("scanner".to_string(), "http".to_string())].into();
        assert_eq!(defaults_from(&http).unwrap().rate_limit, None);

        let bad: BTreeMap<String, String> = [
            ("schedule".to_string(), "often".to_string()),
            ("templates".to_string(), "cves/".to_string()),
        ]
        .into();
        let e = defaults_from(&bad).unwrap_err();
        let named: Vec<&str> = e.iter().map(|e| e.annotation.as_str()).collect();
        assert!(named.contains(&"operator.defaults.schedule"), "{e:?}");
        assert!(named.contains(&"operator.defaults.templates"), "{e:?}");
    }
}
