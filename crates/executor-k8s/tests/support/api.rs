//! The "API server verifier" of kube-rs's `tower_test` pattern: a scripted API server
//! that hands each request to the test, which checks it and answers as the real one would.

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc as fmpsc;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::Client;
use serde_json::{json, Value};

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Handle = tower_test::mock::Handle<Request<kube::client::Body>, Response<Body>>;
pub type Chunks = fmpsc::UnboundedSender<Result<Frame<Bytes>, std::io::Error>>;

pub const NS: &str = "scans";
pub const SELECTOR: &str =
    "app.kubernetes.io/managed-by=scanplane,app.kubernetes.io/component=scanner,app.kubernetes.io/instance=prod";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn mock() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<kube::client::Body>, Response<Body>>();
    (Client::new(service, NS), handle)
}

pub fn full(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(bytes).map_err(|e| match e {}).boxed())
        .unwrap()
}

pub fn streaming() -> (Chunks, Response<Body>) {
    let (tx, rx) = fmpsc::unbounded();
    let body = StreamBody::new(rx).boxed();
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    (tx, resp)
}

pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// One received request: method, path, parsed query pairs and JSON body.
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Value,
}

impl Seen {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub async fn next(handle: &mut Handle) -> (Seen, tower_test::mock::SendResponse<Response<Body>>) {
    let (req, send) = tokio::time::timeout(WAIT, handle.next_request())
        .await
        .expect("the executor sent no request in time")
        .expect("the client went away");
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        body,
    };
    (seen, send)
}

/// Percent-decoding of query parts, enough for label selectors.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

pub const JOBS: &str = "/apis/batch/v1/namespaces/scans/jobs";
pub const PODS: &str = "/api/v1/namespaces/scans/pods";
pub const SECRETS: &str = "/api/v1/namespaces/scans/secrets";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/scans/events";
