//! The OpenAPI document against the router it describes: every route the router really
//! serves (found by walking the router itself, then probing each method) is an operation of
//! `/openapi.json` and the other way round; each operation's security says what the route
//! really demands; and the document passes an OpenAPI validator (the Python
//! `openapi-spec-validator`, the reference implementation of the specification's schema and
//! semantic rules; `scripts/test.sh` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request};
use scanplane_store::Backend;
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The route paths an axum router holds, read from its `Debug` output (axum offers no other
/// way to list them). A router whose output this cannot read fails the test below, which
/// requires as many paths as the document has.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let dump = format!("{router:?}");
    // The fallback router's own paths (`/` and a catch-all) answer 404 to everything.
    let dump = dump.split("fallback_router").next().unwrap_or_default();
    let mut paths = BTreeSet::new();
    let mut rest = dump;
    while let Some(i) = rest.find("): \"/") {
        let tail = &rest[i + 4..];
        let end = tail.find('"').unwrap();
        let path = &tail[..end];
        if !path.contains("__private__") {
            paths.insert(path.to_string());
        }
        rest = &tail[end..];
    }
    paths
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("0190b7c4-0000-7000-8000-000000000000");
            }
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

async fn probe(router: &axum::Router, method: Method, path: &str) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(concrete(path))
        .body(Body::empty())
        .unwrap();
    router.clone().oneshot(req).await.unwrap().status().as_u16()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_routed() {
    let state = common::state(Backend::Sqlite).await;
    let router = scanplane_api::router(state);
    let doc = serde_json::to_value(scanplane_api::openapi()).unwrap();
    let doc_ops = documented(&doc);

    let paths = router_paths(&router);
    let doc_paths: BTreeSet<String> = doc_ops.iter().map(|(_, p)| p.clone()).collect();
    assert!(
        paths.len() >= doc_paths.len(),
        "walking the router found {paths:?}, fewer paths than the document's {doc_paths:?}"
    );
    let mut routed = BTreeSet::new();
    for path in &paths {
        for method in METHODS {
            let status = probe(&router, method.clone(), path).await;
            if status != 405 {
                routed.insert((method.to_string(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = routed.difference(&doc_ops).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );
    let unrouted: Vec<_> = doc_ops.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    assert!(
        routed.len() >= 27,
        "only {} routes found: {routed:?}",
        routed.len()
    );
}

#[tokio::test]
async fn security_and_401_are_documented_as_the_routes_behave() {
    let state = common::state(Backend::Sqlite).await;
    let router = scanplane_api::router(state);
    let doc = serde_json::to_value(scanplane_api::openapi()).unwrap();
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: no security declared"));
        let status = probe(&router, method.parse().unwrap(), &path).await;
        if security.is_empty() {
            assert_ne!(
                status, 401,
                "{method} {path} is documented public but needs a token"
            );
        } else {
            assert_eq!(
                status, 401,
                "{method} {path} is documented as needing a token"
            );
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path}: 401 undocumented"
            );
        }
        if op.get("requestBody").is_some() && path != "/api/v1/scans/{id}/report" {
            for code in ["400", "413", "415", "422"] {
                assert!(
                    op["responses"].get(code).is_some(),
                    "{method} {path}: {code} undocumented"
                );
            }
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            let inside = p["in"].as_str().unwrap();
            let name = p["name"].as_str().unwrap();
            assert_eq!(
                inside == "path",
                path.contains(&format!("{{{name}}}")),
                "{method} {path}: parameter {name} is declared in {inside}"
            );
            if inside == "query" {
                assert_ne!(p["required"], true, "{method} {path}: {name} required");
            }
        }
    }
    for public in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            doc["paths"][public]["get"]["security"],
            serde_json::json!([])
        );
    }
    let report = &doc["paths"]["/api/v1/scans/{id}/report"]["post"];
    let ndjson = &report["requestBody"]["content"]["application/x-ndjson"]["schema"];
    assert!(
        ndjson.get("$ref").is_some() || ndjson.get("oneOf").is_some(),
        "{report}"
    );
}

#[tokio::test]
async fn the_served_document_passes_the_openapi_validator() {
    let api = common::Api::start(Backend::Sqlite, Default::default()).await;
    let resp = reqwest::get(format!("{}/openapi.json", api.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc, serde_json::to_value(scanplane_api::openapi()).unwrap());

    let file = std::env::temp_dir().join(format!("scanplane-openapi-{}.json", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 is needed to validate the OpenAPI document");
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "install the validator: python3 -m pip install openapi-spec-validator ({stderr})"
    );
    assert!(
        out.status.success(),
        "the OpenAPI document is invalid:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    api.stop().await;
}
