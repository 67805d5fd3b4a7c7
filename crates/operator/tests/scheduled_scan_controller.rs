//! The ScheduledScan controller against a scripted API server and an in-memory schedule
//! sink: the finalizer comes first, the schedule is stored under the resource's UID, the
//! status says so (and is not rewritten when nothing changed), a bad spec is a status and one
//! Warning event, and deletion removes the schedule before the finalizer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use kube::runtime::controller::Action;
use scanplane_core::annotations::AnnotationDefaults;
use scanplane_core::declared::DeclaredSchedule;
use scanplane_metrics::Metrics;
use scanplane_operator::controller::{scheduled_scan, Context, Error};
use scanplane_operator::crd::ScheduledScan;
use scanplane_operator::sink::{AppliedSchedule, ScheduleSink, SinkError, Sinks};
use serde_json::{json, Value};
use support::{mock, next, no_more, ok, Handle};

const OBJ: &str = "/apis/scanplane.io/v1alpha1/namespaces/team-a/scheduledscans/nightly";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Apply(DeclaredSchedule),
    Delete(String, String),
}

/// Records every call; answers with `answer`.
struct Sink {
    calls: Mutex<Vec<Call>>,
    answer: Result<AppliedSchedule, SinkError>,
}

#[async_trait]
impl ScheduleSink for Sink {
    async fn apply(&self, d: &DeclaredSchedule) -> Result<AppliedSchedule, SinkError> {
        self.calls.lock().unwrap().push(Call::Apply(d.clone()));
        self.answer.clone()
    }
    async fn delete(&self, tenant: &str, id: &str) -> Result<(), SinkError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Delete(tenant.into(), id.into()));
        self.answer.clone().map(|_| ())
    }
}

fn stored() -> AppliedSchedule {
    AppliedSchedule {
        id: "ss-uid".into(),
        next_fire_at: Some(Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap()),
        last_fired_at: None,
        last_run: None,
    }
}

fn context(answer: Result<AppliedSchedule, SinkError>) -> (Arc<Context>, Handle, Arc<Sink>) {
    let (client, handle) = mock("team-a");
    let sink = Arc::new(Sink {
        calls: Mutex::new(Vec::new()),
        answer,
    });
    let ctx = Context::new(
        client,
        Sinks {
            schedules: sink.clone(),
            ..support::unused()
        },
        AnnotationDefaults::default(),
        None,
        Some("https://scanplane.example".into()),
        Arc::new(Metrics::new()),
    )
    // The deletion test maps a namespace to another tenant, as a configuration may allow.
    .with_tenant_annotation(true);
    (Arc::new(ctx), handle, sink)
}

fn object(finalizers: &[&str], schedule: &str, extra_meta: Value) -> Value {
    let mut meta = json!({"name": "nightly", "namespace": "team-a", "uid": "ss-uid",
                          "generation": 2, "resourceVersion": "11", "finalizers": finalizers});
    meta.as_object_mut()
        .unwrap()
        .extend(extra_meta.as_object().unwrap().clone());
    json!({
        "apiVersion": "scanplane.io/v1alpha1", "kind": "ScheduledScan", "metadata": meta,
        "spec": {"schedule": schedule, "timezone": "Europe/Berlin",
                 "template": {"scanner": "nuclei", "targets": ["https://shop.example.test"]}}
    })
}

fn parse(v: &Value) -> Arc<ScheduledScan> {
    Arc::new(serde_json::from_value(v.clone()).unwrap())
}

#[tokio::test]
async fn a_new_resource_gets_the_finalizer_before_anything_is_stored() {
    let (ctx, mut handle, sink) = context(Ok(stored()));
    let obj = object(&[], "0 0 * * *", json!({}));
    let run = tokio::spawn(scheduled_scan::reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}"));
    // A JSON patch that fails if someone else changed the finalizers meanwhile.
    assert_eq!(
        seen.body,
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
               {"op": "add", "path": "/metadata/finalizers", "value": ["scanplane.io/schedule"]}])
    );
    send.send_response(ok(&object(
        &["scanplane.io/schedule"],
        "0 0 * * *",
        json!({}),
    )));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
    assert!(sink.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_schedule_is_stored_under_the_uid_and_reported_once() {
    let (ctx, mut handle, sink) = context(Ok(stored()));
    let obj = object(&["scanplane.io/schedule"], "0 0 * * *", json!({}));
    let run = tokio::spawn(scheduled_scan::reconcile(parse(&obj), ctx.clone()));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    // Server-side apply: fields the new status leaves out are removed, not kept.
    assert!(
        seen.query.contains("fieldManager=scanplane-operator"),
        "{}",
        seen.query
    );
    assert!(seen.query.contains("force=true"), "{}", seen.query);
    assert_eq!(seen.body["apiVersion"], "scanplane.io/v1alpha1");
    assert_eq!(seen.body["kind"], "ScheduledScan");
    let status = &seen.body["status"];
    assert_eq!(status["scheduleId"], "ss-uid");
    assert_eq!(status["nextRunTime"], "2026-12-07T00:00:00Z");
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        status["url"],
        "https://scanplane.example/api/v1/scans/schedule/ss-uid"
    );
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "True");
    let mut written = obj.clone();
    written["status"] = status.clone();
    send.send_response(ok(&written));
    assert_eq!(
        run.await.unwrap().unwrap(),
        Action::requeue(scheduled_scan::REFRESH)
    );
    assert_eq!(
        sink.calls.lock().unwrap().clone(),
        [Call::Apply(DeclaredSchedule {
            id: "ss-uid".into(),
            tenant: "team-a".into(),
            name: "k8s:team-a/nightly".into(),
            cadence: scanplane_core::annotations::ScanCadence::Cron("0 0 * * *".into()),
            timezone: Some("Europe/Berlin".into()),
            jitter: None,
            enabled: true,
            scanner: "nuclei".into(),
            targets: vec!["https://shop.example.test".into()],
            options_json: None,
        })]
    );

    // A resync of the object as written: the schedule is applied again (idempotent), and
    // the unchanged status is not written again.
    let again = scheduled_scan::reconcile(parse(&written), ctx)
        .await
        .unwrap();
    assert_eq!(again, Action::requeue(scheduled_scan::REFRESH));
    assert_eq!(sink.calls.lock().unwrap().len(), 2);
    no_more(&mut handle).await;
}

#[tokio::test]
async fn a_bad_spec_is_a_false_condition_and_one_warning_event() {
    let (ctx, mut handle, sink) = context(Ok(stored()));
    let obj = object(&["scanplane.io/schedule"], "every full moon", json!({}));
    let run = tokio::spawn(scheduled_scan::reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    let cond = &seen.body["status"]["conditions"][0];
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "InvalidSpec");
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.schedule: "),
        "{cond}"
    );
    send.send_response(ok(&obj));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    assert_eq!(seen.body["type"], "Warning");
    assert_eq!(seen.body["reason"], "InvalidSpec");
    assert_eq!(seen.body["regarding"]["kind"], "ScheduledScan");
    send.send_response(ok(&seen.body));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
    assert!(sink.calls.lock().unwrap().is_empty(), "nothing is stored");
}

#[tokio::test]
async fn the_stores_own_verdict_on_a_field_is_reported_the_same_way() {
    let (ctx, mut handle, _) = context(Err(SinkError::Invalid(
        "spec.template.scanner: unknown scanner \"nucle\"; available: nmap, nuclei".into(),
    )));
    let obj = object(&["scanplane.io/schedule"], "@daily", json!({}));
    let run = tokio::spawn(scheduled_scan::reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        seen.body["status"]["lastError"],
        "spec.template.scanner: unknown scanner \"nucle\"; available: nmap, nuclei"
    );
    send.send_response(ok(&obj));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    send.send_response(ok(&seen.body));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
}

#[tokio::test]
async fn an_unavailable_store_is_retried_without_touching_the_status() {
    let (ctx, mut handle, _) = context(Err(SinkError::Unavailable("database is locked".into())));
    let obj = object(&["scanplane.io/schedule"], "@daily", json!({}));
    let err = scheduled_scan::reconcile(parse(&obj), ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Finalizer(_)), "{err}");
    assert!(err.to_string().contains("failed to apply"), "{err}");
    no_more(&mut handle).await;
}

#[tokio::test]
async fn deletion_removes_the_schedule_then_the_finalizer() {
    let (ctx, mut handle, sink) = context(Ok(stored()));
    let obj = object(
        &["other.example/keep", "scanplane.io/schedule"],
        "@daily",
        json!({"deletionTimestamp": "2026-12-06T12:00:00Z",
               "annotations": {"scanplane.io/tenant": "payments"}}),
    );
    let run = tokio::spawn(scheduled_scan::reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}"));
    assert_eq!(
        seen.body,
        json!([{"op": "test", "path": "/metadata/finalizers/1", "value": "scanplane.io/schedule"},
               {"op": "remove", "path": "/metadata/finalizers/1"}])
    );
    assert_eq!(
        sink.calls.lock().unwrap().clone(),
        [Call::Delete("payments".into(), "ss-uid".into())],
        "the schedule is gone before the finalizer is released"
    );
    send.send_response(ok(&object(&["other.example/keep"], "@daily", json!({}))));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
}

#[tokio::test]
async fn a_failed_delete_keeps_the_finalizer() {
    let (ctx, mut handle, _) = context(Err(SinkError::Unavailable("database is down".into())));
    let obj = object(
        &["scanplane.io/schedule"],
        "@daily",
        json!({"deletionTimestamp": "2026-12-06T12:00:00Z"}),
    );
    let err = scheduled_scan::reconcile(parse(&obj), ctx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("clean up"), "{err}");
    no_more(&mut handle).await;
}

#[tokio::test]
async fn a_tenant_annotation_the_configuration_does_not_allow_is_refused() {
    let (client, mut handle) = mock("team-a");
    let sink = Arc::new(Sink {
        calls: Mutex::new(Vec::new()),
        answer: Ok(stored()),
    });
    let ctx = Arc::new(Context::new(
        client,
        Sinks {
            schedules: sink.clone(),
            ..support::unused()
        },
        AnnotationDefaults::default(),
        None,
        None,
        Arc::new(Metrics::new()),
    ));
    let obj = object(
        &["scanplane.io/schedule"],
        "@daily",
        json!({"annotations": {"scanplane.io/tenant": "payments"}}),
    );
    let run = tokio::spawn(scheduled_scan::reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    let error = seen.body["status"]["lastError"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("scanplane.io/tenant") && error.contains("not allowed"),
        "{error}"
    );
    send.send_response(ok(&obj));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("POST {EVENTS}"));
    send.send_response(ok(&seen.body));
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    no_more(&mut handle).await;
    assert!(
        sink.calls.lock().unwrap().is_empty(),
        "nothing stored for another tenant"
    );
}

#[tokio::test]
async fn a_fixed_spec_clears_the_last_error() {
    let (ctx, mut handle, _) = context(Ok(stored()));
    let mut obj = object(&["scanplane.io/schedule"], "@daily", json!({}));
    obj["status"] = json!({"lastError": "spec.schedule: bad", "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
                        "message": "spec.schedule: bad", "lastTransitionTime": "2026-12-06T10:00:00Z"}]});
    let run = tokio::spawn(scheduled_scan::reconcile(parse(&obj), ctx));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.line(), format!("PATCH {OBJ}/status"));
    assert!(
        seen.body["status"].get("lastError").is_none(),
        "applied without lastError, which removes it: {}",
        seen.body
    );
    assert_eq!(seen.body["status"]["conditions"][0]["status"], "True");
    send.send_response(ok(&obj));
    assert_eq!(
        run.await.unwrap().unwrap(),
        Action::requeue(scheduled_scan::REFRESH)
    );
    no_more(&mut handle).await;
}
