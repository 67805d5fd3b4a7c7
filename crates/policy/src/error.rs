//! Errors of a policy document: each names the JSON pointer of the offending field.

use std::fmt;

use serde::Serialize;

/// One problem of a document, at a JSON pointer (`""` is the whole document).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FieldError {
    /// A JSON pointer (RFC 6901) into the document, e.g. `/scan_execution_policy/0/name`.
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// The syntax a document was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Yaml,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        })
    }
}

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyErrors {
    /// The body is larger than the parser accepts.
    #[error("policy document is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The body is not JSON or YAML; the error's pointer is `""` and its message names the
    /// line and column.
    #[error("policy document is not valid {format}: {error}")]
    Syntax { format: Format, error: FieldError },
    /// The document does not satisfy the schema, the typed model or a semantic check.
    #[error("invalid policy document: {}", summary(.0))]
    Invalid(Vec<FieldError>),
    /// The built-in schema does not compile (a bug of this crate, caught by its tests).
    #[error("the built-in policy schema does not compile: {0}")]
    Schema(String),
}

impl PolicyErrors {
    /// Every problem as `{pointer, message}`, for an API error body.
    pub fn errors(&self) -> Vec<FieldError> {
        match self {
            PolicyErrors::Invalid(errors) => errors.clone(),
            PolicyErrors::Syntax { error, .. } => vec![error.clone()],
            PolicyErrors::TooLarge { .. } | PolicyErrors::Schema(_) => {
                vec![FieldError::new("", self.to_string())]
            }
        }
    }
}

fn summary(errors: &[FieldError]) -> String {
    match errors {
        [] => "no details".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub(crate) fn push_pointer(pointer: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{pointer}/{escaped}")
}
