//! Errors of discovery: every one names the registry and the step that failed.

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Why a discovery run ended. Displays as "registry <url>: <step>: <problem>".
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Bad url, bad PEM, bad docker config, [`crate::Catalog::None`] without repositories.
    #[error("registry {registry}: configuration: {problem}")]
    Config { registry: String, problem: String },
    /// The registry failed or refused a step ("connecting", "authenticating", "listing the
    /// catalog", "listing tags of <repo>", "fetching manifest <repo>:<tag>", "fetching config
    /// <repo>@<digest>").
    #[error("registry {registry}: {step}: {problem}")]
    Registry {
        registry: String,
        step: String,
        problem: String,
        /// The HTTP status, when the registry answered with one.
        status: Option<u16>,
    },
    /// The output channel closed: whoever consumed the images is gone.
    #[error("registry {registry}: sending results: cancelled, the output channel closed")]
    Cancelled { registry: String },
}

impl DiscoveryError {
    /// Retrying will not help: configuration errors and 401/403.
    pub fn is_permanent(&self) -> bool {
        match self {
            DiscoveryError::Config { .. } => true,
            DiscoveryError::Registry { status, .. } => matches!(status, Some(401 | 403)),
            DiscoveryError::Cancelled { .. } => false,
        }
    }

    /// The HTTP status of a registry error.
    pub fn status(&self) -> Option<u16> {
        match self {
            DiscoveryError::Registry { status, .. } => *status,
            _ => None,
        }
    }

    pub(crate) fn config(registry: &str, problem: impl Into<String>) -> DiscoveryError {
        DiscoveryError::Config {
            registry: registry.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn registry(
        registry: &str,
        step: impl Into<String>,
        problem: impl Into<String>,
        status: Option<u16>,
    ) -> DiscoveryError {
        DiscoveryError::Registry {
            registry: registry.to_string(),
            step: step.into(),
            problem: problem.into(),
            status,
        }
    }
}

/// "500 Internal Server Error".
pub(crate) fn status_text(code: u16) -> String {
    match reqwest::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

/// An error with its sources, because reqwest's own Display ("error sending request for url")
/// hides the cause that matters ("Connection refused", "invalid peer certificate: UnknownIssuer").
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// At most 200 characters of a response body, on one line.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}

/// An `oci-client` error as (problem, HTTP status).
pub(crate) fn from_oci(error: &OciDistributionError) -> (String, Option<u16>) {
    match error {
        OciDistributionError::UnauthorizedError { .. } => (status_text(401), Some(401)),
        OciDistributionError::ServerError { code, message, .. } => {
            let body = excerpt(message.as_bytes());
            if body.is_empty() {
                (status_text(*code), Some(*code))
            } else {
                (format!("{}: {body}", status_text(*code)), Some(*code))
            }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            // oci-client keeps the registry's error codes but not the HTTP status of a 4xx
            // envelope, so the status is inferred from the codes (it decides is_permanent).
            let status = envelope.errors.iter().find_map(|e| match e.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::BlobUnknown
                | OciErrorCode::NotFound => Some(404),
                OciErrorCode::Toomanyrequests => Some(429),
                _ => None,
            });
            let problems: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            let prefix = status.map(status_text).unwrap_or_else(|| "4xx".into());
            (format!("{prefix}: {}", problems.join("; ")), status)
        }
        OciDistributionError::AuthenticationFailure(reason) => (
            format!("token request refused: {}", excerpt(reason.as_bytes())),
            Some(401),
        ),
        other => (chain(other), None),
    }
}
