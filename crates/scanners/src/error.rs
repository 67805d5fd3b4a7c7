//! Error types of the scanner adapters: parse, validation, run and configuration failures.

use std::time::Duration;

/// A tool's output could not be parsed. The message always starts with the scanner name
/// so that an operator reading a failed scan knows which tool produced the bad output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scanner}: {message}")]
pub struct ParseError {
    pub scanner: String,
    pub message: String,
}

impl ParseError {
    pub fn new(scanner: &str, message: impl Into<String>) -> Self {
        ParseError {
            scanner: scanner.to_string(),
            message: message.into(),
        }
    }

    /// Builds the error for an empty document, which every parser rejects the same way.
    pub(crate) fn empty(scanner: &str) -> Self {
        Self::new(scanner, "empty output")
    }
}

/// Parses a whole JSON document, naming the scanner and the position on failure. Invalid
/// UTF-8 is replaced (see [`crate::parsed::document_text`]) rather than failing it.
pub(crate) fn json_document<T: serde::de::DeserializeOwned>(
    scanner: &str,
    input: &[u8],
) -> Result<T, ParseError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::empty(scanner));
    }
    serde_json::from_str(&crate::parsed::document_text(input)).map_err(|e| {
        ParseError::new(
            scanner,
            format!(
                "malformed JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })
}

/// A scan request was rejected before it was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("scanner {scanner}: at least one target is required")]
    NoTargets { scanner: String },
    #[error("scanner {scanner}: target {target:?}: {reason}")]
    Target {
        scanner: String,
        /// Where the target is in the list given to `validate`, so the API can name it.
        index: usize,
        target: String,
        reason: String,
    },
    #[error("scanner {scanner}: option {option:?}: {reason}")]
    Option {
        scanner: String,
        option: String,
        reason: String,
    },
    #[error("scanner {scanner}: options must be a JSON object, got {got}")]
    OptionsNotObject { scanner: String, got: String },
}

/// A scan failed while running.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The tool's program is not installed; callers report this differently from a failed
    /// scan because the fix is an installation, not a retry.
    #[error(
        "scanner {scanner:?} not found on PATH{}",
        program_note(scanner, program)
    )]
    NotInstalled { scanner: String, program: String },
    #[error("scanner {scanner:?} produced unreadable output: {message}")]
    Parse { scanner: String, message: String },
    #[error("scanner {scanner:?} failed{}: {stderr_tail}", exit_note(*exit_code))]
    Failed {
        scanner: String,
        exit_code: Option<i32>,
        stderr_tail: String,
    },
    #[error("scanner {scanner:?} wrote more than {limit} bytes of output")]
    TooLarge { scanner: String, limit: usize },
    #[error("scanner {scanner:?} timed out after {after:?}")]
    Timeout { scanner: String, after: Duration },
    #[error("scanner {scanner:?} stopped: nobody is receiving findings any more")]
    Cancelled { scanner: String },
    #[error("scanner {scanner:?}: {context}: {source}")]
    Io {
        scanner: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl ScanError {
    /// Whether another attempt would fail the same way: the program is missing, its output
    /// is unreadable or too large, or the request is refused. A tool that failed, timed out
    /// or could not be talked to may do better next time.
    pub fn is_permanent(&self) -> bool {
        match self {
            ScanError::NotInstalled { .. }
            | ScanError::Parse { .. }
            | ScanError::TooLarge { .. }
            | ScanError::Invalid(_) => true,
            ScanError::Failed { .. }
            | ScanError::Timeout { .. }
            | ScanError::Cancelled { .. }
            | ScanError::Io { .. } => false,
        }
    }

    pub(crate) fn io(scanner: &str, context: impl Into<String>, source: std::io::Error) -> Self {
        ScanError::Io {
            scanner: scanner.to_string(),
            context: context.into(),
            source,
        }
    }
}

impl From<ParseError> for ScanError {
    fn from(e: ParseError) -> Self {
        ScanError::Parse {
            scanner: e.scanner,
            message: e.message,
        }
    }
}

fn name_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn program_note(scanner: &str, program: &str) -> String {
    if scanner == program {
        String::new()
    } else {
        format!(" (looked for program {program:?})")
    }
}

fn exit_note(code: Option<i32>) -> String {
    match code {
        Some(c) => format!(" with exit code {c}"),
        None => " (killed by a signal)".to_string(),
    }
}

/// The scanner section of the configuration file is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("custom scanner {name:?}: {reason}")]
    Invalid { name: String, reason: String },
    #[error(
        "scanner name {name:?} is defined more than once (registered scanners: {})",
        name_list(registered)
    )]
    Duplicate {
        name: String,
        /// The names registered before the duplicate, from the registry itself.
        registered: Vec<String>,
    },
}

/// A scan names a scanner the registry does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scanner {name:?}; registered scanners: {}",
    name_list(registered)
)]
pub struct UnknownScanner {
    pub name: String,
    /// Every registered name, sorted, from the registry itself.
    pub registered: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_installed_reads_like_the_documented_message() {
        let e = ScanError::NotInstalled {
            scanner: "nmap".into(),
            program: "nmap".into(),
        };
        assert_eq!(e.to_string(), r#"scanner "nmap" not found on PATH"#);
        let e = ScanError::NotInstalled {
            scanner: "acme".into(),
            program: "/opt/acme/run".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"scanner "acme" not found on PATH (looked for program "/opt/acme/run")"#
        );
    }

    #[test]
    fn parse_errors_name_the_scanner() {
        let e = json_document::<serde_json::Value>("grype", b"{").unwrap_err();
        assert!(e.to_string().starts_with("grype: malformed JSON at line 1"));
        let e = json_document::<serde_json::Value>("grype", b"  \n").unwrap_err();
        assert_eq!(e.to_string(), "grype: empty output");
    }
}
