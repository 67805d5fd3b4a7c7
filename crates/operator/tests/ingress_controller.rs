//! The Ingress controller against a scripted API server: what it applies, what it deletes,
//! which event it publishes, and what it leaves alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::sync::Arc;

use http::Method;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::controller::Action;
use scanplane_core::annotations::AnnotationDefaults;
use scanplane_metrics::Metrics;
use scanplane_operator::controller::{ingress, Context, Error};
use serde_json::{json, Value};
use support::{internal_error, mock, next, no_more, ok, Handle};

const SCANS: &str = "/apis/scanplane.io/v1alpha1/namespaces/team-a/scheduledscans";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

fn context() -> (Arc<Context>, Handle, Arc<Metrics>) {
    let (client, handle) = mock("team-a");
    let metrics = Arc::new(Metrics::new());
    let ctx = Context::new(
        client,
        support::unused(),
        AnnotationDefaults::default(),
        Some("replica-a".into()),
        None,
        metrics.clone(),
    );
    (Arc::new(ctx), handle, metrics)
}

fn ingress(annotations: Value) -> Arc<Ingress> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "ing-uid",
                         "resourceVersion": "7", "annotations": annotations},
            "spec": {
                "tls": [{"hosts": ["shop.example.test"]}],
                "rules": [{"host": "shop.example.test"}, {"host": "admin.example.test"}]
            }
        }))
        .unwrap(),
    )
}

/// A ScheduledScan as the API server lists it, owned by the Ingress with `owner_uid`.
fn listed(name: &str, owner_uid: &str) -> Value {
    json!({
        "apiVersion": "scanplane.io/v1alpha1", "kind": "ScheduledScan",
        "metadata": {"name": name, "namespace": "team-a", "uid": format!("{name}-uid"),
                     "labels": {"scanplane.io/ingress": "shop", "app.kubernetes.io/managed-by": "scanplane"},
                     "ownerReferences": [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                          "name": "shop", "uid": owner_uid, "controller": true}]},
        "spec": {"schedule": "@every 24h", "template": {"scanner": "nuclei", "targets": ["https://x"]}}
    })
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "scanplane.io/v1alpha1", "kind": "ScheduledScanList",
           "metadata": {"resourceVersion": "9"}, "items": items})
}

fn assert_list_request(seen: &support::Seen) {
    assert_eq!(seen.line(), format!("GET {SCANS}"));
    let q = urlencoding_decode(&seen.query);
    assert!(
        q.contains(
            "labelSelector=scanplane.io/ingress=shop,app.kubernetes.io/managed-by=scanplane"
        ),
        "{q}"
    );
}

fn urlencoding_decode(s: &str) -> String {
    // Only what label selectors use.
    s.replace("%3D", "=")
        .replace("%2C", ",")
        .replace("%2F", "/")
}

#[tokio::test]
async fn each_host_is_applied_and_only_this_ingresses_stale_scans_are_deleted() {
    let (ctx, mut handle, metrics) = context();
    let run = tokio::spawn(ingress::reconcile(
        ingress(json!({"scanplane.io/severity": "high", "scanplane.io/schedule": "@every 12h"})),
        ctx,
    ));
    let mut applied = Vec::new();
    for _ in 0..2 {
        let (seen, send) = next(&mut handle).await;
        assert_eq!(seen.method, Method::PATCH);
        assert!(seen.path.starts_with(&format!("{SCANS}/")), "{}", seen.path);
        assert!(
            seen.query.contains("fieldManager=scanplane-operator"),
            "{}",
            seen.query
        );
        assert!(
            seen.query.contains("force=true"),
            "server-side apply owns its fields: {}",
            seen.query
        );
        let body = &seen.body;
        assert_eq!(body["kind"], "ScheduledScan");
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "ing-uid");
        assert_eq!(body["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(body["spec"]["schedule"], "@every 12h");
        assert_eq!(body["spec"]["template"]["options"]["severity"], "high");
        applied.push((
            seen.path.rsplit('/').next().unwrap().to_string(),
            body["spec"]["template"]["targets"][0]
                .as_str()
                .unwrap()
                .to_string(),
        ));
        send.send_response(ok(body));
    }
    applied.sort();
    assert_eq!(
        applied,
        [
            (
                "shop-admin-example-test".to_string(),
                "http://admin.example.test".to_string()
            ),
            (
                "shop-shop-example-test".to_string(),
                "https://shop.example.test".to_string()
            ),
        ]
    );
    let (seen, send) = next(&mut handle).await;
    assert_list_request(&seen);
    send.send_response(ok(&list(vec![
        listed("shop-shop-example-test", "ing-uid"),
        listed("shop-old-example-test", "ing-uid"),
        // Same label, another Ingress of the same name before it was recreated: not ours.
        listed("shop-foreign-example-test", "other-uid"),
    ])));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("DELETE {SCANS}/shop-old-example-test"));
    send.send_response(ok(
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    ));
    let action = run.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(ingress::RESYNC));
    no_more(&mut handle).await;
    assert!(metrics
        .render(None)
        .contains("scanplane_operator_reconciles_total{controller=\"ingress\"} 1"));
}

#[tokio::test]
async fn bad_annotations_are_one_warning_event_and_nothing_else() {
    let (ctx, mut handle, _) = context();
    let run = tokio::spawn(ingress::reconcile(
        ingress(
            json!({"scanplane.io/severity": "urgent", "nuclei.homelab.mortenolsen.pro/rate-limit": "0"}),
        ),
        ctx,
    ));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    let ev = &seen.body;
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "InvalidAnnotation");
    assert_eq!(ev["regarding"]["kind"], "Ingress");
    assert_eq!(ev["regarding"]["name"], "shop");
    let note = ev["note"].as_str().unwrap();
    assert!(note.contains("scanplane.io/severity"), "{note}");
    assert!(
        note.contains("nuclei.homelab.mortenolsen.pro/rate-limit"),
        "{note}"
    );
    send.send_response(ok(ev));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    // No apply, no list, no delete: the scans already made stay as they were.
    no_more(&mut handle).await;
}

#[tokio::test]
async fn disabling_deletes_every_scan_the_ingress_made() {
    let (ctx, mut handle, _) = context();
    let run = tokio::spawn(ingress::reconcile(
        ingress(json!({"scanplane.io/enabled": "false"})),
        ctx,
    ));
    let (seen, send) = next(&mut handle).await;
    assert_list_request(&seen);
    send.send_response(ok(&list(vec![
        listed("shop-shop-example-test", "ing-uid"),
        listed("shop-admin-example-test", "ing-uid"),
    ])));
    let mut deleted = Vec::new();
    for _ in 0..2 {
        let (seen, send) = next(&mut handle).await;
        assert_eq!(seen.method, Method::DELETE);
        deleted.push(seen.path.clone());
        // One of them is already gone: a 404 is success for a delete.
        let answer = if deleted.len() == 1 {
            support::full(
                http::StatusCode::NOT_FOUND,
                &support::status(404, "NotFound", "gone"),
            )
        } else {
            ok(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
        };
        send.send_response(answer);
    }
    deleted.sort();
    assert_eq!(
        deleted,
        [
            format!("{SCANS}/shop-admin-example-test"),
            format!("{SCANS}/shop-shop-example-test")
        ]
    );
    assert_eq!(
        run.await.unwrap().unwrap(),
        Action::requeue(ingress::RESYNC)
    );
    no_more(&mut handle).await;
}

#[tokio::test]
async fn an_api_server_failure_is_an_error_for_the_retry_policy() {
    let (ctx, mut handle, _) = context();
    let run = tokio::spawn(ingress::reconcile(ingress(json!({})), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.method, Method::PATCH);
    send.send_response(internal_error());
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Kube(_)), "{err}");
    no_more(&mut handle).await;
}

#[tokio::test]
async fn a_tenant_annotation_the_configuration_refuses_is_a_warning_on_the_ingress() {
    let (ctx, mut handle, _) = context();
    let run = tokio::spawn(ingress::reconcile(
        ingress(json!({"scanplane.io/tenant": "payments"})),
        ctx,
    ));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    assert_eq!(seen.body["reason"], "InvalidAnnotation");
    let note = seen.body["note"].as_str().unwrap();
    assert!(
        note.contains("scanplane.io/tenant") && note.contains("not allowed"),
        "{note}"
    );
    send.send_response(ok(&seen.body));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    // No ScheduledScan is made for another tenant.
    no_more(&mut handle).await;
}
