//! The scripted API server every operator test talks to (kube-rs's `tower_test` "API server
//! verifier" pattern): each request is received with its method, path, query and JSON body,
//! checked by the test, and answered as the real API server would.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test uses a part.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use kube::Client;
use scanplane_core::declared::{DeclaredPolicy, DeclaredScan, DeclaredSchedule};
use scanplane_operator::sink::{
    AppliedSchedule, PolicySink, RegistrySink, RunSummary, ScanSink, ScheduleSink, SinkError, Sinks,
};
use scanplane_protocol::registry::DeclaredRegistry;
use serde_json::{json, Value};

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Handle = tower_test::mock::Handle<Request<kube::client::Body>, Response<Body>>;
pub type Responder = tower_test::mock::SendResponse<Response<Body>>;

/// A guard against hangs only; no test asserts how long anything takes.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn mock(namespace: &str) -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<kube::client::Body>, Response<Body>>();
    (Client::new(service, namespace), handle)
}

pub fn full(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(bytes).map_err(|e| match e {}).boxed())
        .unwrap()
}

pub fn ok(body: &Value) -> Response<Body> {
    full(StatusCode::OK, body)
}

/// A `Status` object, the body of every API server error.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

pub fn internal_error() -> Response<Body> {
    full(
        StatusCode::INTERNAL_SERVER_ERROR,
        &status(500, "InternalError", "etcdserver: request timed out"),
    )
}

/// One received request.
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Seen {
    /// `METHOD path`, for assertions that read like the API server's access log.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The next request, or `None` once every client is gone.
pub async fn recv(handle: &mut Handle) -> Option<(Seen, Responder)> {
    let (req, send) = handle.next_request().await?;
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let seen = Seen {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        body,
    };
    Some((seen, send))
}

pub async fn next(handle: &mut Handle) -> (Seen, Responder) {
    tokio::time::timeout(WAIT, recv(handle))
        .await
        .expect("no request came in time")
        .expect("the client went away before the expected request")
}

/// Asserts the client sends nothing more (every clone of it must be dropped by then).
pub async fn no_more(handle: &mut Handle) {
    let more = tokio::time::timeout(WAIT, recv(handle))
        .await
        .expect("the client is still alive: drop every clone before calling no_more");
    if let Some((seen, _)) = more {
        panic!("unexpected request {} {}", seen.line(), seen.body);
    }
}

/// A sink for the controllers a test does not exercise: any use fails the test.
pub struct Unused;

#[async_trait]
impl ScheduleSink for Unused {
    async fn apply(&self, _: &DeclaredSchedule) -> Result<AppliedSchedule, SinkError> {
        panic!("this controller stored a schedule")
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), SinkError> {
        panic!("this controller deleted a schedule")
    }
}

#[async_trait]
impl ScanSink for Unused {
    async fn start(&self, _: &DeclaredScan) -> Result<RunSummary, SinkError> {
        panic!("this controller started a scan")
    }
    async fn run(&self, _: &str, _: &str) -> Result<Option<RunSummary>, SinkError> {
        panic!("this controller read a scan")
    }
    async fn cancel(&self, _: &str, _: &str, _: &str) -> Result<(), SinkError> {
        panic!("this controller cancelled a scan")
    }
}

#[async_trait]
impl RegistrySink for Unused {
    async fn apply(&self, _: &DeclaredRegistry) -> Result<String, SinkError> {
        panic!("this controller stored a registry")
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), SinkError> {
        panic!("this controller deleted a registry")
    }
}

#[async_trait]
impl PolicySink for Unused {
    async fn apply(&self, _: &DeclaredPolicy) -> Result<(), SinkError> {
        panic!("this controller stored a policy")
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), SinkError> {
        panic!("this controller deleted a policy")
    }
}

/// Every seam [`Unused`]: a test replaces the one its controller uses.
pub fn unused() -> Sinks {
    Sinks {
        schedules: std::sync::Arc::new(Unused),
        scans: std::sync::Arc::new(Unused),
        registries: std::sync::Arc::new(Unused),
        policies: std::sync::Arc::new(Unused),
    }
}

/// The API address the test contexts put in statuses' `url`.
pub const API_URL: &str = "https://scanplane.example";

/// A context over a scripted API server in namespace `team-a` with these seams; a test
/// chains `with_...` settings before wrapping it in an `Arc`.
pub fn context(sinks: Sinks) -> (scanplane_operator::controller::Context, Handle) {
    let (client, handle) = mock("team-a");
    let ctx = scanplane_operator::controller::Context::new(
        client,
        sinks,
        scanplane_core::annotations::AnnotationDefaults::default(),
        None,
        Some(API_URL.into()),
        std::sync::Arc::new(scanplane_metrics::Metrics::new()),
    );
    (ctx, handle)
}

/// `base` metadata with the fields of `extra` added (or replaced).
pub fn meta(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}
