//! Parsing a policy document: size cap, JSON or YAML syntax, the checked-in JSON Schema,
//! the typed model, then the checks the schema cannot express (cron expressions, time
//! zones, unique policy names, clusters of cluster image scanning).

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use scanplane_core::schedule::{Cadence, CadenceError};
use serde_json::Value;

use crate::error::{push_pointer, FieldError, Format, PolicyErrors};
use crate::model::{PolicyDocument, DEFAULT_TIMEZONE};

/// The JSON Schema (draft 2020-12) of a policy document.
pub const SCHEMA: &str = include_str!("../schema/scan-execution-policy.json");

/// The largest body [`parse`] accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// At most this many errors are reported for one document.
pub const MAX_ERRORS: usize = 50;

/// Longest rendering of an offending value inside an error message.
const MAX_SHOWN_CHARS: usize = 80;

/// Parses and validates a policy document.
///
/// `content_type_hint` (a media type such as `application/json`, or a file extension)
/// selects strict JSON when it mentions `json`; otherwise the body is read as YAML, which
/// accepts JSON too. The document is checked against [`SCHEMA`] first, then deserialized,
/// then checked for what the schema cannot express; every problem names its JSON pointer.
pub fn parse(body: &[u8], content_type_hint: Option<&str>) -> Result<PolicyDocument, PolicyErrors> {
    if body.len() > MAX_BODY_BYTES {
        return Err(PolicyErrors::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let value = read_value(body, format_of(content_type_hint))?;

    let schema_errors = schema_errors(&value)?;
    if !schema_errors.is_empty() {
        return Err(PolicyErrors::Invalid(schema_errors));
    }

    let doc: PolicyDocument = serde_path_to_error::deserialize(&value).map_err(|e| {
        let pointer = path_pointer(e.path());
        PolicyErrors::Invalid(vec![FieldError::new(pointer, e.into_inner().to_string())])
    })?;

    let semantic = semantic_errors(&doc);
    if semantic.is_empty() {
        Ok(doc)
    } else {
        Err(PolicyErrors::Invalid(semantic))
    }
}

/// Checks that every cluster the policies name is one of `known` (the configured clusters).
pub fn check_clusters(doc: &PolicyDocument, known: &[&str]) -> Result<(), PolicyErrors> {
    let configured = if known.is_empty() {
        "no clusters are configured".to_string()
    } else {
        let mut names: Vec<&str> = known.to_vec();
        names.sort_unstable();
        names.dedup();
        format!("configured clusters: {}", names.join(", "))
    };
    let mut errors = Vec::new();
    for (i, policy) in doc.policies.iter().enumerate() {
        for (j, rule) in policy.rules.iter().enumerate() {
            for cluster in rule.clusters.keys() {
                if !known.contains(&cluster.as_str()) {
                    let pointer = push_pointer(&rule_pointer(i, j, "clusters"), cluster);
                    errors.push(FieldError::new(
                        pointer,
                        format!("unknown cluster {cluster:?}; {configured}"),
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PolicyErrors::Invalid(errors))
    }
}

fn format_of(hint: Option<&str>) -> Format {
    match hint {
        Some(h) if h.to_ascii_lowercase().contains("json") => Format::Json,
        _ => Format::Yaml,
    }
}

fn read_value(body: &[u8], format: Format) -> Result<Value, PolicyErrors> {
    let message = match format {
        Format::Json => match serde_json::from_slice(body) {
            Ok(v) => return Ok(v),
            Err(e) => format!("JSON syntax error: {e}"),
        },
        Format::Yaml => match serde_yaml::from_slice(body) {
            Ok(v) => return Ok(v),
            Err(e) => {
                let mut message = format!("YAML syntax error: {e}");
                if let Some(at) = e.location() {
                    if !message.contains("line") {
                        message.push_str(&format!(" at line {} column {}", at.line(), at.column()));
                    }
                }
                message
            }
        },
    };
    Err(PolicyErrors::Syntax {
        format,
        error: FieldError::new("", message),
    })
}

struct CompiledSchema {
    schema: Value,
    validator: Validator,
}

fn compiled() -> Result<&'static CompiledSchema, PolicyErrors> {
    static COMPILED: OnceLock<Result<CompiledSchema, String>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
            let validator = jsonschema::options()
                .with_draft(Draft::Draft202012)
                .build(&schema)
                .map_err(|e| e.to_string())?;
            Ok(CompiledSchema { schema, validator })
        })
        .as_ref()
        .map_err(|e| PolicyErrors::Schema(e.clone()))
}

fn schema_errors(value: &Value) -> Result<Vec<FieldError>, PolicyErrors> {
    let compiled = compiled()?;
    let mut out = Vec::new();
    for error in compiled.validator.iter_errors(value) {
        if out.len() >= MAX_ERRORS {
            out.truncate(MAX_ERRORS);
            out.push(FieldError::new(
                "",
                format!("more than {MAX_ERRORS} errors; the rest are not shown"),
            ));
            break;
        }
        convert(&error, &compiled.schema, &mut out);
    }
    Ok(out)
}

/// The schema object holding the keyword an error is about.
fn schema_node<'s>(error: &ValidationError<'_>, schema: &'s Value) -> Option<&'s Value> {
    let uri = error.absolute_keyword_location()?;
    let (_, fragment) = uri.as_str().split_once('#')?;
    let (parent, _keyword) = fragment.rsplit_once('/')?;
    schema.pointer(parent)
}

fn description(node: Option<&Value>) -> Option<&str> {
    node?.get("description")?.as_str()
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_SHOWN_CHARS {
        text
    } else {
        let cut: String = text.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{cut}…")
    }
}

fn convert(error: &ValidationError<'_>, schema: &Value, out: &mut Vec<FieldError>) {
    let pointer = error.instance_path().as_str();
    let node = schema_node(error, schema);
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(FieldError::new(push_pointer(pointer, name), "is required"));
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let expected: Vec<&str> = node
                .and_then(|n| n.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for name in unexpected {
                let message = if expected.is_empty() {
                    format!("unknown field {name:?}")
                } else {
                    format!(
                        "unknown field {name:?}; expected one of: {}",
                        expected.join(", ")
                    )
                };
                out.push(FieldError::new(push_pointer(pointer, name), message));
            }
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let name = inner.instance().as_str().unwrap_or_default().to_string();
            out.push(FieldError::new(
                push_pointer(pointer, &name),
                message(inner, schema_node(inner, schema)),
            ));
        }
        _ => out.push(FieldError::new(pointer, message(error, node))),
    }
}

fn message(error: &ValidationError<'_>, node: Option<&Value>) -> String {
    let value = shown(error.instance());
    let described = description(node);
    match (error.kind(), described) {
        (
            ValidationErrorKind::Enum { .. }
            | ValidationErrorKind::Constant { .. }
            | ValidationErrorKind::Pattern { .. }
            | ValidationErrorKind::MinLength { .. }
            | ValidationErrorKind::MaxLength { .. },
            Some(d),
        ) => format!("{value} is not {d}"),
        (ValidationErrorKind::Not { .. }, Some(d)) => d.to_string(),
        (ValidationErrorKind::MinItems { limit: 1 }, _)
        | (ValidationErrorKind::MinProperties { limit: 1 }, _) => "must not be empty".to_string(),
        _ => error.masked_with(value).to_string(),
    }
}

fn path_pointer(path: &serde_path_to_error::Path) -> String {
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                pointer = push_pointer(&pointer, &index.to_string());
            }
            serde_path_to_error::Segment::Map { key } => pointer = push_pointer(&pointer, key),
            _ => {}
        }
    }
    pointer
}

fn rule_pointer(policy: usize, rule: usize, field: &str) -> String {
    format!("/scan_execution_policy/{policy}/rules/{rule}/{field}")
}

fn semantic_errors(doc: &PolicyDocument) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, policy) in doc.policies.iter().enumerate() {
        if let Some(first) = names.insert(policy.name.as_str(), i) {
            names.insert(policy.name.as_str(), first);
            errors.push(FieldError::new(
                format!("/scan_execution_policy/{i}/name"),
                format!(
                    "duplicate policy name {:?}; /scan_execution_policy/{first}/name has it already",
                    policy.name
                ),
            ));
        }
        let scans_clusters = policy.scans_clusters();
        for (j, rule) in policy.rules.iter().enumerate() {
            if let Err(e) = Cadence::cron(&rule.cadence, &rule.timezone) {
                if let CadenceError::UnknownTimezone(_) = e {
                    errors.push(FieldError::new(
                        rule_pointer(i, j, "timezone"),
                        e.to_string(),
                    ));
                    // The cadence on its own may be wrong too.
                    if let Err(e) = Cadence::cron(&rule.cadence, DEFAULT_TIMEZONE) {
                        errors.push(FieldError::new(
                            rule_pointer(i, j, "cadence"),
                            e.to_string(),
                        ));
                    }
                } else {
                    errors.push(FieldError::new(
                        rule_pointer(i, j, "cadence"),
                        e.to_string(),
                    ));
                }
            }
            if scans_clusters && rule.clusters.is_empty() {
                errors.push(FieldError::new(
                    rule_pointer(i, j, "clusters"),
                    "is required: the policy has a cluster_image_scanning action",
                ));
            }
        }
    }
    errors.truncate(MAX_ERRORS);
    errors
}
