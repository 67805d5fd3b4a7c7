//! `GET /api/v1/scanners`: the scanners this server runs.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error;
use crate::AppState;

/// A scanner as `GET /api/v1/scanners` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScannerView {
    pub name: String,
    /// `builtin`, `external` or `custom`.
    pub kind: String,
    pub description: String,
    pub provider: Option<String>,
    pub timeout: Option<String>,
    /// Target kinds accepted.
    pub accepts: Vec<String>,
    /// Option names understood.
    pub options: Vec<String>,
    /// Whether this server can run it: false when what it needs is not installed where
    /// its units run (checked with the local executor; on Kubernetes the scanner image
    /// decides, and this is true).
    pub usable: bool,
    /// What is missing, when not usable.
    pub unusable_reason: Option<String>,
}

/// Lists the scanners this server can run.
#[utoipa::path(get, path = "/api/v1/scanners", tag = "scanners", security(("bearer" = [])),
    responses((status = 200, body = [ScannerView]), error::Auth, error::Common))]
pub async fn list_scanners(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> Json<Vec<ScannerView>> {
    Json(
        state
            .catalog
            .definitions()
            .into_iter()
            .map(|d| {
                let unusable = state.catalog.unusable(&d.name);
                ScannerView {
                    usable: unusable.is_none(),
                    unusable_reason: unusable,
                    kind: d.kind_str().to_string(),
                    name: d.name,
                    description: d.description,
                    provider: d.provider,
                    timeout: d.timeout.map(scanplane_core::duration::format_duration),
                    accepts: d.accepts.iter().map(|k| k.as_str().to_string()).collect(),
                    options: d.options.iter().map(|o| o.to_string()).collect(),
                }
            })
            .collect(),
    )
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list_scanners))
}
