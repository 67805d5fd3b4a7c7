//! Scan execution policies: `PUT/GET /api/v1/policies` (a tenant's whole document, YAML or
//! JSON, validated against the published schema with errors at JSON pointers, and against
//! the configured clusters; a rejected document changes nothing), and the schema itself at
//! `GET /schemas/scan-execution-policy.json`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use scanplane_core::declared::RESOURCE_NAME_PREFIX;
use scanplane_policy::{check_clusters, parse, PolicyErrors, MAX_BODY_BYTES, SCHEMA};
use scanplane_store::StoredPolicy;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{self, ApiError, ErrorBody};
use crate::tenancy::TenantNames;
use crate::{fmt_ts, AppState};

/// One policy as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// The owning tenant's name.
    pub tenant: String,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// Declared by a ScanPolicy resource (named `k8s:<namespace>/<name>`), not by a PUT.
    pub declared: bool,
    /// As written: `type`, `cadence`, `timezone`, `time_window`, `clusters`.
    #[schema(value_type = Vec<Object>)]
    pub rules: serde_json::Value,
    /// As written, e.g. `[{"scan": "cluster_image_scanning"}]`.
    #[schema(value_type = Vec<Object>)]
    pub actions: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

/// The tenant's policies, in document order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub items: Vec<PolicyView>,
}

fn view(p: StoredPolicy) -> PolicyView {
    let doc: serde_json::Value =
        serde_json::from_str(&p.document).unwrap_or(serde_json::Value::Null);
    PolicyView {
        tenant: p.tenant_id,
        name: p.name,
        description: doc["description"].as_str().map(String::from),
        enabled: p.enabled,
        declared: p.declared,
        rules: doc["rules"].clone(),
        actions: doc["actions"].clone(),
        created_at: fmt_ts(p.created_at),
        updated_at: fmt_ts(p.updated_at),
    }
}

/// A rejected document: 413 when too large, else 422 naming every field (JSON pointers).
pub(crate) fn rejected(e: &PolicyErrors) -> ApiError {
    match e {
        PolicyErrors::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
        }
        PolicyErrors::Syntax { .. } => ApiError::malformed(e.to_string()),
        PolicyErrors::Schema(_) => ApiError::internal(e.to_string()),
        PolicyErrors::Invalid(_) => {
            let all: Vec<String> = e.errors().iter().map(ToString::to_string).collect();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("invalid policy document: {}", all.join("; ")),
            )
        }
    }
}

/// Replaces the tenant's scan execution policies with a document.
#[utoipa::path(put, path = "/api/v1/policies", tag = "policies",
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/yaml",
        description = "A `scan_execution_policy` document, YAML (application/yaml) or JSON (application/json), at most 1 MiB; see GET /schemas/scan-execution-policy.json"),
    responses((status = 200, body = PolicyList, description = "Stored: the document is the tenant's whole set now (besides the policies ScanPolicy resources declare)"),
        (status = 400, body = ErrorBody, description = "The body is not YAML or JSON; the message names line and column"),
        (status = 408, body = ErrorBody, description = "The body stopped arriving for longer than the server waits"),
        (status = 413, body = ErrorBody, description = "Larger than 1 MiB"),
        (status = 415, body = ErrorBody, description = "Neither YAML nor JSON"),
        (status = 422, body = ErrorBody, description = "The document breaks the schema or names an unknown cluster; the message gives each field's JSON pointer"),
        error::Auth, error::Common))]
pub async fn put_policies(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PolicyList>, ApiError> {
    ApiError::require_content_type(
        &headers,
        &[
            "application/yaml",
            "application/json",
            "application/x-yaml",
            "text/yaml",
            "text/x-yaml",
        ],
    )?;
    let hint = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let doc = parse(&body, hint).map_err(|e| rejected(&e))?;
    if let Some(i) = doc
        .policies
        .iter()
        .position(|p| p.name.starts_with(RESOURCE_NAME_PREFIX))
    {
        return Err(ApiError::invalid(
            &format!("/scan_execution_policy/{i}/name"),
            format!("names starting with {RESOURCE_NAME_PREFIX:?} are the ScanPolicy resources'"),
        ));
    }
    let known: Vec<&str> = state.clusters.iter().map(String::as_str).collect();
    check_clusters(&doc, &known).map_err(|e| rejected(&e))?;
    let now = state.clock.now();
    let rows = doc
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let document = serde_json::to_string(p)
                .map_err(|e| ApiError::internal(format!("serializing a policy: {e}")))?;
            Ok(StoredPolicy {
                tenant_id: caller.tenant.id.clone(),
                name: p.name.clone(),
                position: u32::try_from(i).unwrap_or(u32::MAX),
                enabled: p.enabled,
                declared: false,
                document,
                created_at: now,
                updated_at: now,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let stored = state
        .store
        .replace_policies(&caller.tenant.id, &rows, now)
        .await?;
    tracing::info!(tenant = %caller.tenant.name, policies = stored.len(), "scan execution policies replaced");
    let items = stored
        .into_iter()
        .map(|p| {
            let mut v = view(p);
            v.tenant.clone_from(&caller.tenant.name);
            v
        })
        .collect();
    Ok(Json(PolicyList { items }))
}

/// The tenant's scan execution policies (the admin sees every tenant's).
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    security(("bearer" = [])),
    responses((status = 200, body = PolicyList), error::Auth, error::Common))]
pub async fn list_policies(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<PolicyList>, ApiError> {
    let stored = state.store.list_policies(caller.scope()).await?;
    let names = TenantNames::for_caller(&state, &caller).await?;
    let items = stored
        .into_iter()
        .map(|p| {
            let mut v = view(p);
            names.name(&mut v.tenant);
            v
        })
        .collect();
    Ok(Json(PolicyList { items }))
}

/// The JSON Schema (draft 2020-12) every policy document is validated against.
#[utoipa::path(get, path = "/schemas/scan-execution-policy.json", tag = "policies", security(),
    responses((status = 200, content_type = "application/schema+json", body = Object,
        description = "The schema, as checked in under crates/policy/schema/")))]
pub async fn policy_schema() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/schema+json")], SCHEMA)
}

// The router's body limit must let the parser's own limit (and its clear 413) apply.
const _: () = assert!(MAX_BODY_BYTES <= crate::MAX_BODY);

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(put_policies, list_policies))
        .routes(routes!(policy_schema))
}
