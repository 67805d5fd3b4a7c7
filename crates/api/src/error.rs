//! API errors: every failure is JSON `{"error": "<code>", "message": "...", "request_id"}`
//! with the status that says what kind of failure it is, and a message naming the field.
//! Internal failures are logged with the request id and answered without their details: a
//! database driver's text never reaches a client.
//!
//! The sets of error responses an operation can give are types ([`Auth`], [`Admin`],
//! [`JsonBody`], ...) that handlers list in their `#[utoipa::path(responses(...))]`, so the
//! document says which errors each endpoint really answers.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scanplane_store::StoreError;
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::ToSchema;

use crate::request_id;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code: malformed, unauthorized, forbidden, not_found,
    /// method_not_allowed, timeout, conflict, too_large, uri_too_long,
    /// unsupported_media_type, invalid, unavailable, internal.
    pub error: String,
    /// What went wrong, naming the field.
    pub message: String,
    /// The request's `x-request-id`; the server's log lines about the request carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// What is logged (never sent) for internal errors.
    detail: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{field}: {problem}"),
        )
    }
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} {id:?} not found"),
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// Missing or invalid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// Valid credentials that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// A failure that is ours, not the client's: `detail` is logged with the request id,
    /// the client gets the request id only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; the server log has the details under this request id"
                .to_string(),
            detail: Some(detail.to_string()),
        }
    }
    /// A dependency (the database) cannot serve the request now; retrying later may work.
    /// `detail` is logged, never sent.
    pub fn unavailable(message: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            detail: Some(detail.to_string()),
        }
    }
    /// The request body stopped arriving for longer than the server waits.
    pub fn body_timeout(e: &crate::server::BodyTimeout) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("request body: {e}"),
        )
    }
    /// An error of a streamed request body (`Body::into_data_stream`): as
    /// [`ApiError::from_body_error`] of its cause.
    pub fn from_stream_error(e: &axum::Error) -> Self {
        use std::error::Error as _;
        match e.source() {
            Some(source) => Self::from_body_error(source),
            None => Self::malformed(format!("request body: {e}")),
        }
    }
    /// Refuses a body not declared as one of `allowed` (media types without parameters):
    /// a 415 saying which one is expected.
    pub fn require_content_type(
        headers: &axum::http::HeaderMap,
        allowed: &[&str],
    ) -> Result<(), Self> {
        let declared = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if declared.as_deref().is_some_and(|d| allowed.contains(&d)) {
            return Ok(());
        }
        Err(Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "request body: expected Content-Type: {}",
                allowed.first().copied().unwrap_or("application/json")
            ),
        ))
    }
    /// An error reading the request body: a timeout is a 408, anything else a 400.
    pub fn from_body_error(e: &(dyn std::error::Error + 'static)) -> Self {
        match crate::server::BodyTimeout::find(e) {
            Some(t) => Self::body_timeout(t),
            None => Self::malformed(format!("request body: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = request_id::current();
        if let Some(detail) = &self.detail {
            tracing::error!(
                request_id = request_id.as_deref().unwrap_or("-"),
                status = self.status.as_u16(),
                error = %detail,
                "request failed"
            );
        }
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
            request_id,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found"),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Illegal(t) => ApiError::conflict(t.to_string()),
            // Retriable: nothing was written. The driver's text goes to the log only.
            e @ StoreError::StorageFull(_) => {
                ApiError::unavailable("storage full: nothing was stored; retry later", e)
            }
            e @ StoreError::Unavailable(_) => {
                ApiError::unavailable("storage unavailable: nothing was stored; retry later", e)
            }
            other => ApiError::internal(format!("store: {other}")),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!(
                    "request body: {}",
                    e.body_text().trim_start_matches(
                        "Failed to deserialize the JSON body into the target type: "
                    )
                ),
            ),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::malformed(format!("request body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
            JsonRejection::BytesRejection(e) => bytes_rejection(&e),
            other => ApiError::malformed(other.body_text()),
        }
    }
}

pub(crate) fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "request body: expected Content-Type: application/json",
    )
}

pub(crate) fn bytes_rejection(e: &axum::extract::rejection::BytesRejection) -> ApiError {
    use std::error::Error as _;
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "request body is larger than the {} MiB limit",
                crate::MAX_BODY / (1024 * 1024)
            ),
        );
    }
    match e.source() {
        Some(source) => ApiError::from_body_error(source),
        None => ApiError::malformed(format!("request body: {e}")),
    }
}

/// One documented error response of an operation.
fn error_response(status: u16, description: &str) -> (String, RefOr<utoipa::openapi::Response>) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))))
                .build(),
        )
        .build();
    (status.to_string(), RefOr::T(response))
}

macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident { $($status:literal => $desc:literal),* $(,)? }) => {
        $(#[$doc])*
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                [$(error_response($status, $desc)),*].into_iter().collect()
            }
        }
    };
}

error_set!(
    /// Errors every operation can answer.
    Common {
        500 => "Internal error: the answer carries the request id, the log has the details.",
        503 => "The database cannot serve the request now; retry later.",
    }
);
error_set!(
    /// A bearer token is required.
    Auth {
        401 => "Missing, malformed, unknown or revoked token.",
    }
);
error_set!(
    /// Only the admin token may call this.
    AdminOnly {
        401 => "Missing, malformed, unknown or revoked token.",
        403 => "A tenant token: only the admin token may do this.",
    }
);
error_set!(
    /// An operation with a path id.
    PathId {
        404 => "No such object (or it belongs to another tenant).",
        422 => "A path parameter is invalid (e.g. holds a NUL character).",
    }
);
error_set!(
    /// An operation with query parameters.
    QueryParams {
        400 => "Malformed query string: unknown parameter, wrong type or invalid cursor.",
        422 => "A query parameter has an invalid value; the message names it.",
    }
);
error_set!(
    /// An operation with a JSON request body.
    JsonBody {
        400 => "The body is not valid JSON.",
        408 => "The body stopped arriving for longer than the server waits.",
        413 => "The body is larger than 1 MiB.",
        415 => "The body is not declared as application/json.",
        422 => "A field is invalid; the message names it.",
    }
);
