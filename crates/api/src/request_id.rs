//! Request ids: every request gets one (the client's `x-request-id` when it sent a sane
//! one, else a new UUID), every log line about the request carries it (a tracing span), the
//! response echoes it, and error bodies include it, so a client's report of a failure can be
//! matched with the server's log. A panic inside a handler is answered as an internal error
//! under the same id instead of dropping the connection.

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tracing::Instrument;

use crate::error::ApiError;

/// The header carrying the request id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen request id kept; longer ones are replaced.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled by this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

/// The middleware: outermost layer of the router.
pub async fn middleware(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(acceptable)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let handled = REQUEST_ID.scope(id.clone(), async move {
        match AssertUnwindSafe(next.run(req)).catch_unwind().await {
            Ok(response) => response,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                ApiError::internal(format!("handler panicked: {what}")).into_response()
            }
        }
    });
    let mut response = handled.instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}
