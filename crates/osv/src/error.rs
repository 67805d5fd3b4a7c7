//! Errors of parsing and loading OSV data.

/// Why an OSV document or export could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    /// The document is larger than [`crate::MAX_DOCUMENT_BYTES`].
    #[error("OSV document is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// Not JSON, or a field of the wrong type; `path` is the JSON path, e.g. `affected[0].ranges`.
    #[error("invalid OSV JSON at {path}: {message}")]
    Json { path: String, message: String },
    /// Well-formed JSON that breaks an OSV rule or one of this crate's bounds.
    #[error("invalid OSV record at {path}: {message}")]
    Invalid { path: String, message: String },
    /// Reading a file or directory failed.
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The zip archive itself (not one record) is unreadable.
    #[error("zip archive: {0}")]
    Zip(String),
    /// A directory holds more `.json` records than a load accepts.
    #[error("{path}: more than {limit} records")]
    TooManyFiles { path: String, limit: usize },
    /// The archive would expand past the total uncompressed limit, or lists too many entries.
    #[error("zip archive refused: {0}")]
    ZipBomb(String),
}
