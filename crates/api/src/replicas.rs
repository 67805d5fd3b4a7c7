//! `GET /api/v1/replicas` (admin): the `serve` replicas sharing this database, their leases
//! and last heartbeats, so an operator sees which replica owns work and which were lost.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use scanplane_core::replica::Replica;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Admin;
use crate::error::{self, ApiError};
use crate::fmt_ts;
use crate::AppState;

/// Most replicas listed: live ones first, then the most recently stopped.
const MAX_LISTED: u32 = 500;

/// One replica as the admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaView {
    /// Hostname (pod name) plus a random suffix, unique per process.
    pub id: String,
    pub hostname: String,
    /// `local` or `kubernetes`.
    pub executor: String,
    /// `live` (holds a valid lease), `expired` (lease ran out, not yet taken over),
    /// `stopped` (released at a graceful stop) or `lost` (taken over after its lease expired).
    pub state: String,
    pub started_at: String,
    pub last_heartbeat: String,
    pub lease_until: String,
    pub stopped_at: Option<String>,
    pub stop_reason: Option<String>,
    /// Whether this is the replica answering the request.
    pub this_replica: bool,
}

/// The replicas of this installation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaList {
    pub items: Vec<ReplicaView>,
}

fn view(r: Replica, now: scanplane_core::Timestamp, me: &str) -> ReplicaView {
    let state = match (&r.stopped_at, r.stop_reason.as_deref()) {
        (None, _) if r.is_live(now) => "live",
        (None, _) => "expired",
        (Some(_), Some("stopped")) => "stopped",
        (Some(_), _) => "lost",
    };
    ReplicaView {
        this_replica: r.id == me,
        state: state.into(),
        started_at: fmt_ts(r.started_at),
        last_heartbeat: fmt_ts(r.heartbeat_at),
        lease_until: fmt_ts(r.lease_until),
        stopped_at: r.stopped_at.map(fmt_ts),
        id: r.id,
        hostname: r.hostname,
        executor: r.executor,
        stop_reason: r.stop_reason,
    }
}

/// Lists the replicas sharing this database (admin only).
#[utoipa::path(get, path = "/api/v1/replicas", tag = "replicas", security(("bearer" = [])),
    responses((status = 200, body = ReplicaList), error::AdminOnly, error::Common))]
pub async fn list_replicas(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<Json<ReplicaList>, ApiError> {
    let now = state.clock.now();
    let items = state
        .store
        .list_replicas(MAX_LISTED)
        .await?
        .into_iter()
        .map(|r| view(r, now, &state.replica.id))
        .collect();
    Ok(Json(ReplicaList { items }))
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list_replicas))
}
