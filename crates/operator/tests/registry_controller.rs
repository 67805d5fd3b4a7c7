//! The Registry controller against a scripted API server and an in-memory registry sink:
//! credentials read from the named Secret, the registry stored under the resource's UID,
//! a missing Secret reported (and retried) without storing anything, deletion through the
//! finalizer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use kube::runtime::controller::Action;
use scanplane_operator::controller::registry::{reconcile, REFRESH, SECRET_RETRY};
use scanplane_operator::controller::Context;
use scanplane_operator::crd::Registry;
use scanplane_operator::sink::{RegistrySink, SinkError, Sinks};
use scanplane_protocol::registry::{DeclaredRegistry, RegistryAuth};
use serde_json::{json, Value};
use support::{full, next, no_more, ok, status, Handle};

const OBJ: &str = "/apis/scanplane.io/v1alpha1/namespaces/team-a/registries/ghcr";
const SECRET: &str = "/api/v1/namespaces/team-a/secrets/ghcr-creds";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

#[derive(Default)]
struct Registries {
    applied: Mutex<Vec<DeclaredRegistry>>,
    deleted: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl RegistrySink for Registries {
    async fn apply(&self, d: &DeclaredRegistry) -> Result<String, SinkError> {
        self.applied.lock().unwrap().push(d.clone());
        Ok(d.id.clone())
    }
    async fn delete(&self, tenant: &str, id: &str) -> Result<(), SinkError> {
        self.deleted
            .lock()
            .unwrap()
            .push((tenant.into(), id.into()));
        Ok(())
    }
}

fn context(sink: Arc<Registries>) -> (Arc<Context>, Handle) {
    let (ctx, handle) = support::context(Sinks {
        registries: sink,
        ..support::unused()
    });
    (Arc::new(ctx), handle)
}

fn object(extra_meta: Value) -> Value {
    let meta = support::meta(
        json!({"name": "ghcr", "namespace": "team-a", "uid": "reg-uid",
                          "generation": 1, "resourceVersion": "3",
                          "finalizers": ["scanplane.io/registry"]}),
        extra_meta,
    );
    json!({
        "apiVersion": "scanplane.io/v1alpha1", "kind": "Registry", "metadata": meta,
        "spec": {"url": "https://ghcr.io", "catalog": "none",
                 "repositories": [{"name": "org/app"}],
                 "authSecretRef": {"name": "ghcr-creds"},
                 "discovery": {"every": "6h"}}
    })
}

fn parse(v: &Value) -> Arc<Registry> {
    Arc::new(serde_json::from_value(v.clone()).unwrap())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn the_registry_is_stored_with_the_secrets_credentials() {
    let sink = Arc::new(Registries::default());
    let (ctx, mut handle) = context(sink.clone());
    let obj = object(json!({}));
    let task = tokio::spawn(reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("GET {SECRET}"));
    send.send_response(ok(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ghcr-creds", "namespace": "team-a"},
        "data": {"username": b64("bot"), "password": b64("s3cret")}})));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    let st = &seen.body["status"];
    assert_eq!(st["registryId"], "reg-uid");
    assert_eq!(
        st["url"],
        "https://scanplane.example/api/v1/registries/reg-uid"
    );
    assert_eq!(st["conditions"][0]["status"], "True");
    assert!(
        !seen.body.to_string().contains("s3cret"),
        "credentials never reach the status"
    );
    send.send_response(ok(&obj));
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(REFRESH));
    no_more(&mut handle).await;
    let applied = sink.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].tenant, "team-a");
    assert_eq!(applied[0].spec.name, "k8s:team-a/ghcr");
    assert_eq!(
        applied[0].auth,
        Some(RegistryAuth::Basic {
            username: "bot".into(),
            password: "s3cret".into()
        })
    );
    assert_eq!(
        applied[0].discovery.as_ref().unwrap().every.as_deref(),
        Some("6h")
    );
}

#[tokio::test]
async fn a_missing_secret_is_reported_retried_and_nothing_is_stored() {
    let sink = Arc::new(Registries::default());
    let (ctx, mut handle) = context(sink.clone());
    let obj = object(json!({}));
    let task = tokio::spawn(reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("GET {SECRET}"));
    send.send_response(full(
        http::StatusCode::NOT_FOUND,
        &status(404, "NotFound", "secrets \"ghcr-creds\" not found"),
    ));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    assert_eq!(seen.body["status"]["conditions"][0]["status"], "False");
    assert_eq!(
        seen.body["status"]["lastError"],
        "spec.authSecretRef: Secret ghcr-creds not found in namespace team-a"
    );
    send.send_response(ok(&obj));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    assert_eq!(seen.body["reason"], "InvalidSpec");
    send.send_response(ok(&seen.body));
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(SECRET_RETRY));
    no_more(&mut handle).await;
    assert!(sink.applied.lock().unwrap().is_empty());
}

#[tokio::test]
async fn deletion_removes_the_registry_then_the_finalizer() {
    let sink = Arc::new(Registries::default());
    let (ctx, mut handle) = context(sink.clone());
    let obj = object(json!({"deletionTimestamp": "2026-12-06T12:00:00Z"}));
    let task = tokio::spawn(reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}"));
    assert_eq!(seen.body[1]["op"], "remove");
    assert_eq!(
        sink.deleted.lock().unwrap().clone(),
        [("team-a".to_string(), "reg-uid".to_string())]
    );
    send.send_response(ok(&obj));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
}
