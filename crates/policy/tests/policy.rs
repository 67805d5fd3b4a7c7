//! Policy documents: the design's example, its variants, and one invalid document per
//! problem, each asserting the exact JSON pointer of the error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scanplane_policy::{
    check_clusters, parse, Action, ClusterFilter, FieldError, Format, PolicyDocument, PolicyErrors,
    WorkloadKind, MAX_BODY_BYTES, SCHEMA,
};

const EXAMPLE: &str = "\
scan_execution_policy:
- name: Run Cluster Image Scan
  description: This policy enforces container scans against a production cluster on a daily basis.
  enabled: true
  rules:
  - type: schedule
    clusters:
      production:
        namespaces:
        - production
        - staging
        resources:
        - nginx
        - knative
        containers:
        - nginx
        - knative
        kinds:
        - deployment
    cadence: 0 0 * * *
  actions:
  - scan: cluster_image_scanning
";

const NO_FILTERS: &str = "\
scan_execution_policy:
- name: Run Cluster Image Scan
  enabled: true
  rules:
  - type: schedule
    clusters:
      production: {}
    cadence: 0 0 * * *
  actions:
  - scan: cluster_image_scanning
";

/// The errors of an invalid YAML document.
fn invalid(doc: &str) -> Vec<FieldError> {
    match parse(doc.as_bytes(), None) {
        Ok(d) => panic!("expected errors, parsed {d:?}"),
        Err(PolicyErrors::Invalid(errors)) => errors,
        Err(other) => panic!("expected schema/semantic errors, got {other:?}"),
    }
}

/// Asserts that `doc` is rejected with an error at `pointer` (and prints all of them).
fn assert_error_at(doc: &str, pointer: &str) -> FieldError {
    let errors = invalid(doc);
    errors
        .iter()
        .find(|e| e.pointer == pointer)
        .cloned()
        .unwrap_or_else(|| panic!("no error at {pointer}: {errors:#?}"))
}

/// The example with one line replaced.
fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "{from:?} not in the example");
    EXAMPLE.replacen(from, to, 1)
}

/// A minimal policy document with the given rule and action YAML (indented as list items).
fn doc(rule: &str, action: &str) -> String {
    format!(
        "scan_execution_policy:\n- name: p\n  enabled: true\n  rules:\n  - {rule}\n  actions:\n  - {action}\n"
    )
}

#[test]
fn the_schema_is_draft_2020_12_json() {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).unwrap();
}

#[test]
fn the_design_example_parses() {
    let doc = parse(EXAMPLE.as_bytes(), Some("application/yaml")).unwrap();
    assert_eq!(doc.policies.len(), 1);
    let policy = &doc.policies[0];
    assert_eq!(policy.name, "Run Cluster Image Scan");
    assert!(policy.enabled);
    assert!(policy
        .description
        .as_deref()
        .unwrap()
        .starts_with("This policy"));
    assert_eq!(policy.actions, vec![Action::ClusterImageScanning]);
    let rule = &policy.rules[0];
    assert_eq!(rule.cadence, "0 0 * * *");
    assert_eq!(rule.timezone, "UTC");
    assert_eq!(rule.time_window, None);
    assert_eq!(
        rule.clusters["production"],
        ClusterFilter {
            namespaces: vec!["production".into(), "staging".into()],
            resources: vec!["nginx".into(), "knative".into()],
            containers: vec!["nginx".into(), "knative".into()],
            kinds: vec![WorkloadKind::Deployment],
        }
    );
    rule.schedule().unwrap();
    let selectors = rule.selectors();
    assert_eq!(selectors[0].cluster, "production");
    assert_eq!(selectors[0].kinds, vec!["deployment".to_string()]);
}

#[test]
fn the_example_without_filters_parses_to_empty_filters() {
    let doc = parse(NO_FILTERS.as_bytes(), None).unwrap();
    assert_eq!(
        doc.policies[0].rules[0].clusters["production"],
        ClusterFilter::default()
    );
}

#[test]
fn the_same_document_as_json_parses_and_round_trips() {
    let doc = parse(EXAMPLE.as_bytes(), None).unwrap();
    let json = serde_json::to_vec(&doc).unwrap();
    let back = parse(&json, Some("application/json")).unwrap();
    assert_eq!(back, doc);
    // YAML output parses back too.
    let yaml = serde_yaml::to_string(&doc).unwrap();
    assert_eq!(parse(yaml.as_bytes(), None).unwrap(), doc);
    // Stored JSON deserializes directly.
    let stored: PolicyDocument = serde_json::from_slice(&json).unwrap();
    assert_eq!(stored, doc);
}

#[test]
fn every_field_parses() {
    let yaml = doc(
        "type: schedule\n    cadence: '30 2 * * 1-5'\n    timezone: Europe/Berlin\n    time_window: {distribution: random, value: 3600}\n    clusters:\n      prod: {kinds: [deployment, statefulset, daemonset, replicaset, job, cronjob, pod]}",
        "scan: registry\n    registry: docker-hub",
    );
    let doc = parse(yaml.as_bytes(), None).unwrap();
    let rule = &doc.policies[0].rules[0];
    assert_eq!(rule.timezone, "Europe/Berlin");
    assert_eq!(rule.time_window.unwrap().duration().as_secs(), 3600);
    assert_eq!(rule.clusters["prod"].kinds, WorkloadKind::ALL.to_vec());
    assert_eq!(
        doc.policies[0].actions,
        vec![Action::Registry {
            registry: "docker-hub".into()
        }]
    );
}

#[test]
fn a_registry_policy_needs_no_clusters() {
    let yaml = doc(
        "type: schedule\n    cadence: 0 0 * * *",
        "scan: registry\n    registry: '42'",
    );
    parse(yaml.as_bytes(), None).unwrap();
}

#[test]
fn cluster_image_scanning_needs_clusters() {
    let yaml = doc(
        "type: schedule\n    cadence: 0 0 * * *",
        "scan: cluster_image_scanning",
    );
    let e = assert_error_at(&yaml, "/scan_execution_policy/0/rules/0/clusters");
    assert!(e.message.contains("cluster_image_scanning"), "{e}");
}

#[test]
fn missing_name() {
    let e = assert_error_at(
        &EXAMPLE.replace(
            "- name: Run Cluster Image Scan\n  description",
            "- description",
        ),
        "/scan_execution_policy/0/name",
    );
    assert_eq!(e.message, "is required");
}

#[test]
fn blank_and_overlong_names() {
    assert_error_at(
        &example_with("name: Run Cluster Image Scan", "name: '  '"),
        "/scan_execution_policy/0/name",
    );
    let long = "x".repeat(256);
    let e = assert_error_at(
        &example_with("name: Run Cluster Image Scan", &format!("name: {long}")),
        "/scan_execution_policy/0/name",
    );
    assert!(e.message.contains("1-255 characters"), "{e}");
    assert!(e.message.len() < 300, "the value is shortened: {e}");
}

#[test]
fn enabled_not_bool() {
    let e = assert_error_at(
        &example_with("enabled: true", "enabled: 'yes'"),
        "/scan_execution_policy/0/enabled",
    );
    assert!(e.message.contains("boolean"), "{e}");
}

#[test]
fn unknown_rule_type() {
    let e = assert_error_at(
        &example_with("type: schedule", "type: pipeline"),
        "/scan_execution_policy/0/rules/0/type",
    );
    assert!(e.message.contains("\"pipeline\""), "{e}");
    assert!(e.message.contains("schedule"), "{e}");
}

#[test]
fn bad_cron() {
    // Five fields but out of range: passes the schema, fails Cadence::cron.
    let e = assert_error_at(
        &example_with("cadence: 0 0 * * *", "cadence: 99 0 * * *"),
        "/scan_execution_policy/0/rules/0/cadence",
    );
    assert!(e.message.contains("invalid cron expression"), "{e}");
    // Wrong field count: the schema.
    let e = assert_error_at(
        &example_with("cadence: 0 0 * * *", "cadence: 0 0 * *"),
        "/scan_execution_policy/0/rules/0/cadence",
    );
    assert!(e.message.contains("5 fields"), "{e}");
    // Never fires.
    assert_error_at(
        &example_with("cadence: 0 0 * * *", "cadence: 0 0 31 2 *"),
        "/scan_execution_policy/0/rules/0/cadence",
    );
}

#[test]
fn unknown_timezone() {
    let e = assert_error_at(
        &example_with(
            "cadence: 0 0 * * *",
            "cadence: 0 0 * * *\n    timezone: Mars/Olympus",
        ),
        "/scan_execution_policy/0/rules/0/timezone",
    );
    assert!(e.message.contains("Mars/Olympus"), "{e}");
    // Both wrong: both reported.
    let errors = invalid(&example_with(
        "cadence: 0 0 * * *",
        "cadence: 0 99 * * *\n    timezone: Mars/Olympus",
    ));
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/scan_execution_policy/0/rules/0/timezone",
            "/scan_execution_policy/0/rules/0/cadence"
        ]
    );
}

#[test]
fn time_window_bounds() {
    let pointer = "/scan_execution_policy/0/rules/0/time_window/value";
    for bad in ["0", "100000", "-5", "1.5", "'60'"] {
        assert_error_at(
            &example_with(
                "cadence: 0 0 * * *",
                &format!(
                    "cadence: 0 0 * * *\n    time_window: {{distribution: random, value: {bad}}}"
                ),
            ),
            pointer,
        );
    }
    for good in ["1", "86400"] {
        parse(
            example_with(
                "cadence: 0 0 * * *",
                &format!(
                    "cadence: 0 0 * * *\n    time_window: {{distribution: random, value: {good}}}"
                ),
            )
            .as_bytes(),
            None,
        )
        .unwrap();
    }
}

#[test]
fn distribution_not_random() {
    let e = assert_error_at(
        &example_with(
            "cadence: 0 0 * * *",
            "cadence: 0 0 * * *\n    time_window: {distribution: uniform, value: 60}",
        ),
        "/scan_execution_policy/0/rules/0/time_window/distribution",
    );
    assert!(e.message.contains("random"), "{e}");
    assert_error_at(
        &example_with(
            "cadence: 0 0 * * *",
            "cadence: 0 0 * * *\n    time_window: {value: 60}",
        ),
        "/scan_execution_policy/0/rules/0/time_window/distribution",
    );
}

#[test]
fn unknown_kind() {
    let e = assert_error_at(
        &example_with("- deployment", "- deployments"),
        "/scan_execution_policy/0/rules/0/clusters/production/kinds/0",
    );
    assert!(e.message.contains("\"deployments\""), "{e}");
    assert!(e.message.contains("statefulset"), "{e}");
    // Kinds are lowercase.
    assert_error_at(
        &example_with("- deployment", "- Deployment"),
        "/scan_execution_policy/0/rules/0/clusters/production/kinds/0",
    );
}

#[test]
fn unknown_fields_everywhere() {
    let cases = [
        (
            EXAMPLE.replacen(
                "scan_execution_policy:",
                "extra: 1\nscan_execution_policy:",
                1,
            ),
            "/extra",
        ),
        (
            example_with("enabled: true", "enabled: true\n  branches: [main]"),
            "/scan_execution_policy/0/branches",
        ),
        (
            example_with("type: schedule", "type: schedule\n    every: 1d"),
            "/scan_execution_policy/0/rules/0/every",
        ),
        (
            example_with("        kinds:", "        labels: [a]\n        kinds:"),
            "/scan_execution_policy/0/rules/0/clusters/production/labels",
        ),
        (
            example_with(
                "- scan: cluster_image_scanning",
                "- scan: cluster_image_scanning\n    scanner: trivy",
            ),
            "/scan_execution_policy/0/actions/0/scanner",
        ),
        (
            example_with(
                "cadence: 0 0 * * *",
                "cadence: 0 0 * * *\n    time_window: {distribution: random, value: 60, jitter: 1}",
            ),
            "/scan_execution_policy/0/rules/0/time_window/jitter",
        ),
    ];
    for (doc, pointer) in cases {
        let e = assert_error_at(&doc, pointer);
        assert!(e.message.starts_with("unknown field"), "{e}");
        assert!(e.message.contains("expected one of"), "{e}");
    }
}

#[test]
fn empty_actions_and_rules() {
    let e = assert_error_at(
        &example_with(
            "  actions:\n  - scan: cluster_image_scanning\n",
            "  actions: []\n",
        ),
        "/scan_execution_policy/0/actions",
    );
    assert_eq!(e.message, "must not be empty");
    let mut no_rules =
        String::from("scan_execution_policy:\n- name: p\n  enabled: true\n  rules: []\n");
    no_rules.push_str("  actions:\n  - scan: registry\n    registry: r\n");
    assert_error_at(&no_rules, "/scan_execution_policy/0/rules");
    assert_error_at(
        &example_with("      production:\n", "      {}\n      production:\n").replace(
            "    clusters:\n      {}\n      production:\n        namespaces:\n        - production\n        - staging\n        resources:\n        - nginx\n        - knative\n        containers:\n        - nginx\n        - knative\n        kinds:\n        - deployment\n",
            "    clusters: {}\n",
        ),
        "/scan_execution_policy/0/rules/0/clusters",
    );
}

#[test]
fn unknown_action() {
    let e = assert_error_at(
        &example_with("scan: cluster_image_scanning", "scan: dast"),
        "/scan_execution_policy/0/actions/0/scan",
    );
    assert!(e.message.contains("\"dast\""), "{e}");
    assert!(
        e.message.contains("cluster_image_scanning or registry"),
        "{e}"
    );
}

#[test]
fn registry_action_without_registry() {
    let e = assert_error_at(
        &example_with("scan: cluster_image_scanning", "scan: registry"),
        "/scan_execution_policy/0/actions/0/registry",
    );
    assert_eq!(e.message, "is required");
    // ... and a registry on a cluster scan.
    let e = assert_error_at(
        &example_with(
            "scan: cluster_image_scanning",
            "scan: cluster_image_scanning\n    registry: hub",
        ),
        "/scan_execution_policy/0/actions/0/registry",
    );
    assert!(
        e.message.contains("only allowed when scan is registry"),
        "{e}"
    );
    // ... and an empty one.
    assert_error_at(
        &example_with(
            "scan: cluster_image_scanning",
            "scan: registry\n    registry: ''",
        ),
        "/scan_execution_policy/0/actions/0/registry",
    );
}

#[test]
fn duplicate_names() {
    let body = EXAMPLE.strip_prefix("scan_execution_policy:\n").unwrap();
    let doc = format!("scan_execution_policy:\n{body}{body}{body}");
    let errors = invalid(&doc);
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/scan_execution_policy/1/name",
            "/scan_execution_policy/2/name"
        ]
    );
    assert!(
        errors[1].message.contains("/scan_execution_policy/0/name"),
        "{}",
        errors[1]
    );
}

#[test]
fn bad_kubernetes_names() {
    let e = assert_error_at(
        &example_with("        - staging", "        - Staging_Env"),
        "/scan_execution_policy/0/rules/0/clusters/production/namespaces/1",
    );
    assert!(e.message.contains("DNS-1123"), "{e}");
    assert_error_at(
        &example_with(
            "        - knative\n        containers",
            "        - -knative\n        containers",
        ),
        "/scan_execution_policy/0/rules/0/clusters/production/resources/1",
    );
    assert_error_at(
        &example_with(
            "        - knative\n        kinds",
            "        - 'kn ative'\n        kinds",
        ),
        "/scan_execution_policy/0/rules/0/clusters/production/containers/1",
    );
    let long = "a".repeat(64);
    assert_error_at(
        &example_with("        - production\n", &format!("        - {long}\n")),
        "/scan_execution_policy/0/rules/0/clusters/production/namespaces/0",
    );
    // A resource name may be a DNS subdomain.
    parse(
        example_with(
            "        - nginx\n        - knative\n        containers",
            "        - nginx.v2\n        - knative\n        containers",
        )
        .as_bytes(),
        None,
    )
    .unwrap();
    // Bad cluster names are reported at the cluster's pointer.
    let e = assert_error_at(
        &example_with("      production:", "      'prod cluster':"),
        "/scan_execution_policy/0/rules/0/clusters/prod cluster",
    );
    assert!(e.message.contains("cluster name"), "{e}");
}

#[test]
fn wrong_shapes() {
    assert_error_at("scan_execution_policy: {}\n", "/scan_execution_policy");
    assert_error_at("[]\n", "");
    assert_error_at("other: 1\n", "/scan_execution_policy");
    assert_error_at(
        &example_with(
            "        - production\n        - staging",
            "          production",
        ),
        "/scan_execution_policy/0/rules/0/clusters/production/namespaces",
    );
}

#[test]
fn schema_errors_are_all_collected_and_capped() {
    // Three independent problems in one document.
    let doc = example_with("enabled: true", "enabled: 1")
        .replace("type: schedule", "type: cron")
        .replace("scan: cluster_image_scanning", "scan: dast");
    let errors = invalid(&doc);
    let mut pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        [
            "/scan_execution_policy/0/actions/0/scan",
            "/scan_execution_policy/0/enabled",
            "/scan_execution_policy/0/rules/0/type",
        ]
    );
    // 200 bad namespaces: at most MAX_ERRORS (+ one note).
    let many: String = (0..200).map(|i| format!("        - BAD{i}\n")).collect();
    let doc = example_with("        - production\n        - staging\n", &many);
    let errors = invalid(&doc);
    assert_eq!(errors.len(), scanplane_policy::MAX_ERRORS + 1);
    assert!(errors.last().unwrap().message.contains("not shown"));
}

#[test]
fn yaml_syntax_error() {
    let doc = "scan_execution_policy:\n- name: a\n  enabled: [true\n";
    match parse(doc.as_bytes(), None) {
        Err(PolicyErrors::Syntax { format, error }) => {
            assert_eq!(format, Format::Yaml);
            assert_eq!(error.pointer, "");
            assert!(error.message.contains("line"), "{error}");
            assert!(error.message.contains("column"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // An unquoted `*` starts a YAML alias.
    assert!(matches!(
        parse(
            example_with("cadence: 0 0 * * *", "cadence: * * * * *").as_bytes(),
            None
        ),
        Err(PolicyErrors::Syntax { .. })
    ));
}

#[test]
fn json_syntax_error_when_the_hint_says_json() {
    let err = parse(
        b"{\"scan_execution_policy\": [",
        Some("application/json; charset=utf-8"),
    )
    .unwrap_err();
    match &err {
        PolicyErrors::Syntax { format, error } => {
            assert_eq!(*format, Format::Json);
            assert_eq!(error.pointer, "");
            assert!(error.message.starts_with("JSON syntax error"), "{error}");
            assert!(error.message.contains("line 1 column"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.errors().len(), 1);
    // YAML is not JSON.
    assert!(matches!(
        parse(EXAMPLE.as_bytes(), Some("application/json")),
        Err(PolicyErrors::Syntax {
            format: Format::Json,
            ..
        })
    ));
}

#[test]
fn oversize_body() {
    let mut body = EXAMPLE.as_bytes().to_vec();
    body.extend(std::iter::repeat_n(b'#', MAX_BODY_BYTES));
    let err = parse(&body, None).unwrap_err();
    assert!(
        matches!(err, PolicyErrors::TooLarge { size, limit } if size == body.len() && limit == MAX_BODY_BYTES)
    );
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(err.errors()[0].pointer, "");
}

#[test]
fn unknown_cluster() {
    let doc = parse(EXAMPLE.as_bytes(), None).unwrap();
    check_clusters(&doc, &["production", "staging"]).unwrap();
    let err = check_clusters(&doc, &["staging", "dev"]).unwrap_err();
    let errors = err.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].pointer,
        "/scan_execution_policy/0/rules/0/clusters/production"
    );
    assert!(errors[0].message.contains("dev, staging"), "{}", errors[0]);
    let err = check_clusters(&doc, &[]).unwrap_err();
    assert!(err.errors()[0]
        .message
        .contains("no clusters are configured"));
}

#[test]
fn pointer_tokens_are_escaped() {
    let doc = parse(
        example_with("      production:", "      prod~1:").as_bytes(),
        None,
    );
    // `~` is not a valid cluster name character; the pointer escapes it.
    let errors = match doc {
        Err(PolicyErrors::Invalid(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        errors[0].pointer,
        "/scan_execution_policy/0/rules/0/clusters/prod~01"
    );
}
