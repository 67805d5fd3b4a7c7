//! Why a document could not be read: each error names what is wrong and where.

/// Why [`crate::index`] or [`crate::to_cyclonedx`] refused a document.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// Refused before parsing, so that one oversized upload cannot take the memory of a
    /// whole parse tree.
    #[error("the document is {size} bytes, more than the {limit} bytes an SBOM may have")]
    TooLarge { size: usize, limit: usize },

    /// Not well-formed JSON (or cut short); `line` and `column` are 1-based as serde_json counts.
    #[error("not JSON at line {line} column {column}: {reason}")]
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },

    /// Well-formed JSON, but not an SPDX 2.3 document: `what` says what is missing or unsupported,
    /// e.g. `spdxVersion "SPDX-2.2" is not supported`.
    #[error("not an SPDX 2.3 document: {what}")]
    NotSpdx { what: String },

    /// An SPDX 2.3 document with a field of the wrong shape, or without a mandatory field;
    /// `path` is where in the document, e.g. `packages[3].name`.
    #[error("malformed SPDX document at {path}: {reason}")]
    Malformed { path: String, reason: String },

    /// Writing the CycloneDX JSON failed; serde_json only fails on maps with non-string keys,
    /// which this crate never builds, so this is not expected to happen.
    #[error("cannot write the CycloneDX document: {0}")]
    Encode(#[source] serde_json::Error),
}

impl SbomError {
    /// Turns a serde_json parse error into [`SbomError::NotJson`] without its trailing
    /// "at line L column C", which the variant says itself.
    pub(crate) fn not_json(e: &serde_json::Error) -> Self {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let reason = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        SbomError::NotJson {
            line: e.line(),
            column: e.column(),
            reason,
        }
    }
}
