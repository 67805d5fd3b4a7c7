//! Endpoints without authentication: liveness, readiness, Prometheus metrics and the OpenAPI
//! document itself.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// Answer of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (live) or `ready`.
    pub status: String,
    /// The store's backend (`sqlite`, `postgres`), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// This replica's id (hostname plus a random suffix), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// This replica as `/readyz` reports it: its id, and the background loops (scheduler,
/// dispatcher, watcher, cleaner, fence) that stopped. Any stopped loop makes it unready;
/// `serve` then exits so that a supervisor restarts it.
#[derive(Debug, Default)]
pub struct ReplicaHealth {
    pub id: String,
    stopped: Mutex<Vec<(String, String)>>,
}

impl ReplicaHealth {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            stopped: Mutex::default(),
        }
    }

    /// Records that loop `name` stopped, and why.
    pub fn loop_stopped(&self, name: &str, why: &str) {
        let mut s = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        s.push((name.to_string(), why.to_string()));
    }

    /// The loops that stopped, with why.
    pub fn stopped_loops(&self) -> Vec<(String, String)> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        store: None,
        replica: None,
    })
}

/// Readiness: every background loop runs, the store answers, its migrations are applied,
/// and it can commit a write (a full disk or a read-only database is not ready: a 2xx must
/// mean durable).
#[utoipa::path(get, path = "/readyz", tag = "health", security(),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody, description = "Not ready: a background loop stopped (named), or the store cannot serve; the log says why."), (status = 500, body = ErrorBody)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Health>, ApiError> {
    if let Some((name, why)) = state.replica.stopped_loops().into_iter().next() {
        return Err(ApiError::unavailable(
            format!("the {name} loop stopped; this replica is restarting"),
            why,
        ));
    }
    state
        .store
        .check_ready()
        .await
        .map_err(|e| ApiError::unavailable("store not ready", e))?;
    state
        .store
        .check_writable()
        .await
        .map_err(|e| ApiError::unavailable("store cannot write (storage full or read-only)", e))?;
    Ok(Json(Health {
        status: "ready".into(),
        store: Some(state.store.backend().as_str().into()),
        replica: Some(state.replica.id.clone()).filter(|id| !id.is_empty()),
    }))
}

/// The content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "health", security(),
    responses((status = 200, body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let counts = match state.store.terminal_counts().await {
        Ok(rows) => Some(
            rows.into_iter()
                .map(|c| scanplane_metrics::TerminalScans {
                    tenant: c.tenant,
                    scanner: c.scanner,
                    status: c.status,
                    count: u64::try_from(c.count).unwrap_or(0),
                })
                .collect::<Vec<_>>(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read scan counts for /metrics");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.render(counts.as_deref()),
    )
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", security(),
    responses((status = 200, body = Object, description = "OpenAPI 3.1 document of every endpoint")))]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_bytes(),
    )
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}
