//! The HTTP requests the checks share: a client that accepts any certificate (the TLS
//! checks judge certificates; the other checks must still reach a server with a broken one)
//! and bodies read only as far as the checks need.

use std::time::Duration;

use crate::error::ScanError;

use super::NAME;

/// Most bytes of a probed body read; every matcher needs only the start of the file.
const BODY_MAX: usize = 64 * 1024;

/// Reads at most [`BODY_MAX`] bytes of a response body.
pub(super) async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() >= BODY_MAX {
            body.truncate(BODY_MAX);
            break;
        }
    }
    Ok(body)
}

/// A client with the scan's per-request timeout and redirect policy.
pub(super) fn client(
    timeout: Duration,
    redirects: reqwest::redirect::Policy,
) -> Result<reqwest::Client, ScanError> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .redirect(redirects)
        .timeout(timeout)
        .user_agent(concat!("scanplane-http/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ScanError::io(NAME, "building the HTTP client", std::io::Error::other(e)))
}
