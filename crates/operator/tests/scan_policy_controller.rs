//! The ScanPolicy controller against a scripted API server and an in-memory policy sink:
//! the policy stored under its namespaced name, the store's verdict on a bad spec reported
//! with the field and one Warning event, deletion through the finalizer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kube::runtime::controller::Action;
use scanplane_core::declared::DeclaredPolicy;
use scanplane_operator::controller::scan_policy::reconcile;
use scanplane_operator::controller::Context;
use scanplane_operator::crd::ScanPolicy;
use scanplane_operator::sink::{PolicySink, SinkError, Sinks};
use serde_json::{json, Value};
use support::{next, no_more, ok, Handle};

const OBJ: &str = "/apis/scanplane.io/v1alpha1/namespaces/team-a/scanpolicies/nightly";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

#[derive(Default)]
struct Policies {
    applied: Mutex<Vec<DeclaredPolicy>>,
    deleted: Mutex<Vec<(String, String)>>,
    verdict: Option<SinkError>,
}

#[async_trait]
impl PolicySink for Policies {
    async fn apply(&self, p: &DeclaredPolicy) -> Result<(), SinkError> {
        self.applied.lock().unwrap().push(p.clone());
        self.verdict.clone().map_or(Ok(()), Err)
    }
    async fn delete(&self, tenant: &str, name: &str) -> Result<(), SinkError> {
        self.deleted
            .lock()
            .unwrap()
            .push((tenant.into(), name.into()));
        Ok(())
    }
}

fn context(sink: Arc<Policies>) -> (Arc<Context>, Handle) {
    let (ctx, handle) = support::context(Sinks {
        policies: sink,
        ..support::unused()
    });
    (Arc::new(ctx), handle)
}

fn object(extra_meta: Value) -> Value {
    let meta = support::meta(
        json!({"name": "nightly", "namespace": "team-a", "uid": "pol-uid",
                          "generation": 1, "resourceVersion": "2",
                          "finalizers": ["scanplane.io/policy"]}),
        extra_meta,
    );
    json!({
        "apiVersion": "scanplane.io/v1alpha1", "kind": "ScanPolicy", "metadata": meta,
        "spec": {"enabled": true,
                 "rules": [{"type": "schedule", "cadence": "0 0 * * *", "clusters": {"production": {}}}],
                 "actions": [{"scan": "cluster_image_scanning"}]}
    })
}

fn parse(v: &Value) -> Arc<ScanPolicy> {
    Arc::new(serde_json::from_value(v.clone()).unwrap())
}

#[tokio::test]
async fn the_policy_is_stored_and_reported() {
    let sink = Arc::new(Policies::default());
    let (ctx, mut handle) = context(sink.clone());
    let obj = object(json!({}));
    let task = tokio::spawn(reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    assert_eq!(seen.body["status"]["conditions"][0]["status"], "True");
    send.send_response(ok(&obj));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
    let applied = sink.applied.lock().unwrap().clone();
    assert_eq!(applied[0].name, "k8s:team-a/nightly");
    assert_eq!(applied[0].tenant, "team-a");
}

#[tokio::test]
async fn the_stores_verdict_names_the_field_once() {
    let sink = Arc::new(Policies {
        verdict: Some(SinkError::Invalid(
            "spec.rules[0].clusters.production: unknown cluster; configured: staging".into(),
        )),
        ..Policies::default()
    });
    let (ctx, mut handle) = context(sink);
    let obj = object(json!({}));
    let task = tokio::spawn(reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    assert_eq!(
        seen.body["status"]["conditions"][0]["reason"],
        "InvalidSpec"
    );
    assert!(seen.body["status"]["lastError"]
        .as_str()
        .unwrap()
        .starts_with("spec.rules[0].clusters.production"));
    send.send_response(ok(&obj));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    assert_eq!(seen.body["type"], "Warning");
    send.send_response(ok(&seen.body));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
}

#[tokio::test]
async fn deletion_removes_the_stored_policy_then_the_finalizer() {
    let sink = Arc::new(Policies::default());
    let (ctx, mut handle) = context(sink.clone());
    let obj = object(json!({"deletionTimestamp": "2026-12-06T12:00:00Z"}));
    let task = tokio::spawn(reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}"));
    assert_eq!(seen.body[1]["op"], "remove");
    assert_eq!(
        sink.deleted.lock().unwrap().clone(),
        [("team-a".to_string(), "k8s:team-a/nightly".to_string())]
    );
    send.send_response(ok(&obj));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
}
