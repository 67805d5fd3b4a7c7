//! The audit log: one line (tracing target `scanplane::audit`) for every state-changing
//! request and every refused credential, naming the token, its tenant, the method, path and
//! status. Never the credential itself, nor the body. The authenticating extractor fills in
//! who called ([`record`]); this middleware, which sees the response, writes the line.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Who made a request, as the audit line names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's name (`admin` for the admin token).
    pub token: String,
    pub tenant: String,
}

/// Where the extractor leaves the request's actor for the middleware.
#[derive(Clone, Default)]
struct Slot(Arc<Mutex<Option<Actor>>>);

/// Notes who is making the request being handled, for its audit line.
pub fn record(extensions: &axum::http::Extensions, actor: Actor) {
    if let Some(slot) = extensions.get::<Slot>() {
        // A poisoned lock only means a panic elsewhere; the value is still ours to set.
        let mut guard = slot.0.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(actor);
    }
}

/// Whether a request with this method and answer gets an audit line.
pub fn audited(method: &Method, status: u16) -> bool {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    !reads.contains(method) || status == 401 || status == 403
}

/// The middleware; inside the request-id layer, so the line carries the request id.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    if audited(&method, status) {
        let actor = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (token, tenant) = actor.map_or_else(
            || ("-".to_string(), "-".to_string()),
            |a| (a.token, a.tenant),
        );
        tracing::info!(
            target: "scanplane::audit",
            token = %token,
            tenant = %tenant,
            method = %method,
            path = %path,
            status,
            "audit"
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_refusals_are_audited_reads_are_not() {
        assert!(audited(&Method::POST, 201));
        assert!(audited(&Method::DELETE, 404));
        assert!(audited(&Method::PATCH, 422));
        assert!(audited(&Method::GET, 401));
        assert!(audited(&Method::GET, 403));
        assert!(!audited(&Method::GET, 200));
        assert!(!audited(&Method::GET, 404));
    }
}
