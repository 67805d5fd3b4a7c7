//! The VirtualService controller against a scripted API server: Istio is discovered (or
//! found absent), and an annotated VirtualService is handled as an Ingress is, owned and
//! labelled as a VirtualService.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::sync::Arc;

use http::Method;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use scanplane_core::annotations::AnnotationDefaults;
use scanplane_metrics::Metrics;
use scanplane_operator::controller::virtualservice::{discover, reconcile, VsContext};
use scanplane_operator::controller::{ingress, Context};
use serde_json::{json, Value};
use support::{mock, next, no_more, ok, Handle};

const SCANS: &str = "/apis/scanplane.io/v1alpha1/namespaces/team-a/scheduledscans";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

fn groups(with_istio: bool) -> Value {
    let mut groups = vec![
        json!({"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}),
    ];
    if with_istio {
        groups.push(json!({"name": "networking.istio.io",
            "versions": [{"groupVersion": "networking.istio.io/v1", "version": "v1"},
                         {"groupVersion": "networking.istio.io/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "networking.istio.io/v1", "version": "v1"}}));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resources(gv: &str) -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
        {"name": "virtualservices", "singularName": "virtualservice", "namespaced": true,
         "kind": "VirtualService", "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"name": "virtualservices/status", "singularName": "", "namespaced": true,
         "kind": "VirtualService", "verbs": ["get", "patch"]}
    ]})
}

#[tokio::test]
async fn a_cluster_without_istio_has_no_virtual_services_to_watch() {
    let (client, mut handle) = mock("team-a");
    let task = tokio::spawn(async move { discover(&client).await });
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), "GET /apis");
    send.send_response(ok(&groups(false)));
    assert!(task.await.unwrap().unwrap().is_none());
    no_more(&mut handle).await;
}

#[tokio::test]
async fn istio_is_found_at_its_preferred_version() {
    let (client, mut handle) = mock("team-a");
    let task = tokio::spawn(async move { discover(&client).await });
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), "GET /apis");
    send.send_response(ok(&groups(true)));
    for gv in ["networking.istio.io/v1", "networking.istio.io/v1beta1"] {
        let (seen, send) = next(&mut handle).await;
        assert_eq!(seen.line(), format!("GET /apis/{gv}"));
        send.send_response(ok(&resources(gv)));
    }
    let ar = task
        .await
        .unwrap()
        .unwrap()
        .expect("VirtualService discovered");
    assert_eq!(ar.api_version, "networking.istio.io/v1");
    assert_eq!(ar.plural, "virtualservices");
    no_more(&mut handle).await;
}

fn context() -> (Arc<VsContext>, Handle) {
    let (client, handle) = mock("team-a");
    let ctx = Arc::new(Context::new(
        client,
        support::unused(),
        AnnotationDefaults::default(),
        None,
        None,
        Arc::new(Metrics::new()),
    ));
    let resource = ApiResource {
        group: "networking.istio.io".into(),
        version: "v1".into(),
        api_version: "networking.istio.io/v1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    };
    (Arc::new(VsContext { ctx, resource }), handle)
}

fn virtual_service(annotations: Value) -> Arc<DynamicObject> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "vs-uid", "annotations": annotations},
            "spec": {"hosts": ["shop.example.test"], "http": [{"route": [{"destination": {"host": "shop"}}]}]}
        }))
        .unwrap(),
    )
}

#[tokio::test]
async fn an_annotated_virtual_service_gets_its_scheduled_scans() {
    let (v, mut handle) = context();
    let task = tokio::spawn(reconcile(
        virtual_service(json!({"scanplane.io/schedule": "@daily"})),
        v,
    ));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.method, Method::PATCH);
    assert_eq!(seen.path, format!("{SCANS}/vs-shop-shop-example-test"));
    assert!(
        seen.query.contains("fieldManager=scanplane-operator"),
        "{}",
        seen.query
    );
    let owner = &seen.body["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "VirtualService");
    assert_eq!(owner["apiVersion"], "networking.istio.io/v1");
    assert_eq!(owner["uid"], "vs-uid");
    assert_eq!(
        seen.body["metadata"]["labels"]["scanplane.io/virtualservice"],
        "shop"
    );
    assert_eq!(
        seen.body["spec"]["template"]["targets"][0],
        "http://shop.example.test"
    );
    send.send_response(ok(&seen.body));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("GET {SCANS}"));
    assert!(
        seen.query.contains("scanplane.io%2Fvirtualservice%3Dshop"),
        "{}",
        seen.query
    );
    send.send_response(ok(&json!({"apiVersion": "scanplane.io/v1alpha1",
        "kind": "ScheduledScanList", "metadata": {}, "items": []})));
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(ingress::RESYNC)
    );
    no_more(&mut handle).await;
}

#[tokio::test]
async fn a_bad_annotation_is_a_warning_on_the_virtual_service() {
    let (v, mut handle) = context();
    let task = tokio::spawn(reconcile(
        virtual_service(json!({"scanplane.io/timeout": "forever"})),
        v,
    ));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    assert_eq!(seen.body["reason"], "InvalidAnnotation");
    assert_eq!(seen.body["regarding"]["kind"], "VirtualService");
    assert_eq!(
        seen.body["regarding"]["apiVersion"],
        "networking.istio.io/v1"
    );
    assert!(seen.body["note"]
        .as_str()
        .unwrap()
        .contains("scanplane.io/timeout"));
    send.send_response(ok(&seen.body));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
}
