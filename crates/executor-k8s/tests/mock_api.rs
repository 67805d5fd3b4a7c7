//! The executor against a scripted API server (kube-rs's `tower_test` "API server verifier"
//! pattern): every request's method, path, query and body is checked and answered the way
//! a real API server would answer it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[allow(dead_code)]
mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use scanplane_executor::{Executor, ExecutorError, Observation, Unit, UnitState};
use scanplane_executor_k8s::{build_job, secret_owned_by, KubernetesExecutor};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use support::api::*;

fn executor(client: Client) -> (KubernetesExecutor, mpsc::UnboundedReceiver<Observation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (KubernetesExecutor::new(client, support::config(), tx), rx)
}

const JOB_NAME: &str = "scan-0192f1c4-7d2a-7b3e-9c4d-5e6f7a8b9c0d-2";
const JOB_UID: &str = "5c1d2e3f-0000-4000-8000-000000000001";
const SCAN_ID: &str = "0192f1c4-7d2a-7b3e-9c4d-5e6f7a8b9c0d";

/// The built Job as the API server returns it after creation.
fn created_job() -> Value {
    let (job, _) = build_job(&support::spec(), &support::config());
    let mut v = serde_json::to_value(job).unwrap();
    v["metadata"]["uid"] = json!(JOB_UID);
    v["metadata"]["resourceVersion"] = json!("100");
    v["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
    v
}

fn assert_event(seen: &Seen, reason: &str, type_: &str) {
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, EVENTS);
    assert_eq!(seen.body["reason"], reason, "{}", seen.body);
    assert_eq!(seen.body["type"], type_);
    assert_eq!(seen.body["reportingController"], "scanplane");
    assert_eq!(seen.body["regarding"]["kind"], "Job");
    assert_eq!(seen.body["regarding"]["name"], JOB_NAME);
    assert_eq!(seen.body["regarding"]["uid"], JOB_UID);
    assert_eq!(seen.body["metadata"]["namespace"], NS);
}

#[tokio::test]
async fn launch_posts_the_job_then_its_owned_secret_then_an_event() {
    let (client, mut api) = mock();
    let (exec, _rx) = executor(client);
    let server = tokio::spawn(async move {
        let (job_req, send) = next(&mut api).await;
        assert_eq!(job_req.method, Method::POST);
        assert_eq!(job_req.path, JOBS);
        let (job, secret) = build_job(&support::spec(), &support::config());
        assert_eq!(job_req.body, serde_json::to_value(&job).unwrap());
        assert!(!job_req.body.to_string().contains(support::TOKEN));
        send.send_response(full(StatusCode::CREATED, &created_job()));

        let (secret_req, send) = next(&mut api).await;
        assert_eq!(secret_req.method, Method::POST);
        assert_eq!(secret_req.path, SECRETS);
        let owned = secret_owned_by(secret, JOB_NAME, JOB_UID);
        assert_eq!(secret_req.body, serde_json::to_value(&owned).unwrap());
        send.send_response(full(StatusCode::CREATED, &secret_req.body));

        let (event, send) = next(&mut api).await;
        assert_event(&event, "ScanJobCreated", "Normal");
        send.send_response(full(StatusCode::CREATED, &event.body));
    });
    let name = exec.launch(&support::spec()).await.unwrap();
    assert_eq!(name, JOB_NAME);
    assert_eq!(exec.name(), "kubernetes");
    server.await.unwrap();
}

#[tokio::test]
async fn launch_adopts_an_existing_job_of_the_same_scan() {
    let (client, mut api) = mock();
    let (exec, _rx) = executor(client);
    let server = tokio::spawn(async move {
        let (req, send) = next(&mut api).await;
        assert_eq!((req.method, req.path.as_str()), (Method::POST, JOBS));
        send.send_response(full(
            StatusCode::CONFLICT,
            &status(409, "AlreadyExists", "jobs.batch \"x\" already exists"),
        ));
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::GET);
        assert_eq!(req.path, format!("{JOBS}/{JOB_NAME}"));
        send.send_response(full(StatusCode::OK, &created_job()));
        let (req, send) = next(&mut api).await;
        assert_eq!((req.method, req.path.as_str()), (Method::POST, SECRETS));
        assert_eq!(req.body["metadata"]["ownerReferences"][0]["uid"], JOB_UID);
        send.send_response(full(
            StatusCode::CONFLICT,
            &status(409, "AlreadyExists", "secrets \"x\" already exists"),
        ));
        let (event, send) = next(&mut api).await;
        assert_event(&event, "ScanJobCreated", "Normal");
        send.send_response(full(StatusCode::CREATED, &event.body));
    });
    assert_eq!(exec.launch(&support::spec()).await.unwrap(), JOB_NAME);
    server.await.unwrap();
}

#[tokio::test]
async fn launch_refuses_a_job_name_held_by_another_scan() {
    let (client, mut api) = mock();
    let (exec, _rx) = executor(client);
    let server = tokio::spawn(async move {
        let (_, send) = next(&mut api).await;
        send.send_response(full(
            StatusCode::CONFLICT,
            &status(409, "AlreadyExists", "exists"),
        ));
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::GET);
        let mut other = created_job();
        other["metadata"]["annotations"]["scanplane.io/scan-run-id"] = json!("someone-else");
        send.send_response(full(StatusCode::OK, &other));
    });
    let err = exec.launch(&support::spec()).await.unwrap_err();
    assert!(
        matches!(&err, ExecutorError::Launch { message, .. } if message.contains("another scan")),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_failed_secret_takes_the_job_back() {
    let (client, mut api) = mock();
    let (exec, _rx) = executor(client);
    let server = tokio::spawn(async move {
        let (_, send) = next(&mut api).await;
        send.send_response(full(StatusCode::CREATED, &created_job()));
        let (req, send) = next(&mut api).await;
        assert_eq!(req.path, SECRETS);
        send.send_response(full(
            StatusCode::FORBIDDEN,
            &status(403, "Forbidden", "secrets is forbidden"),
        ));
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::DELETE);
        assert_eq!(req.path, format!("{JOBS}/{JOB_NAME}"));
        assert_eq!(req.body["propagationPolicy"], "Background");
        send.send_response(full(StatusCode::OK, &created_job()));
    });
    let err = exec.launch(&support::spec()).await.unwrap_err();
    assert!(matches!(err, ExecutorError::Launch { .. }), "{err}");
    server.await.unwrap();
}

#[tokio::test]
async fn cancel_deletes_the_job_with_foreground_propagation() {
    let (client, mut api) = mock();
    let (exec, _rx) = executor(client);
    let server = tokio::spawn(async move {
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::DELETE);
        assert_eq!(req.path, format!("{JOBS}/{JOB_NAME}"));
        assert_eq!(req.body, json!({"propagationPolicy": "Foreground"}));
        let mut job = created_job();
        job["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:01:00Z");
        send.send_response(full(StatusCode::OK, &job));

        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::DELETE);
        send.send_response(full(
            StatusCode::NOT_FOUND,
            &status(404, "NotFound", "jobs.batch \"x\" not found"),
        ));
    });
    exec.cancel(SCAN_ID, JOB_NAME).await.unwrap();
    let err = exec.cancel(SCAN_ID, JOB_NAME).await.unwrap_err();
    assert!(
        matches!(err, ExecutorError::NotFound(ref r) if r == JOB_NAME),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn cleanup_deletes_in_the_background_and_ignores_not_found() {
    let (client, mut api) = mock();
    let (exec, _rx) = executor(client);
    let server = tokio::spawn(async move {
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::DELETE);
        assert_eq!(req.path, format!("{JOBS}/{JOB_NAME}"));
        assert_eq!(req.body, json!({"propagationPolicy": "Background"}));
        send.send_response(full(
            StatusCode::NOT_FOUND,
            &status(404, "NotFound", "jobs.batch \"x\" not found"),
        ));
        let (_, send) = next(&mut api).await;
        send.send_response(full(
            StatusCode::INTERNAL_SERVER_ERROR,
            &status(500, "InternalError", "etcd is down"),
        ));
    });
    exec.cleanup(SCAN_ID, JOB_NAME).await.unwrap();
    let err = exec.cleanup(SCAN_ID, JOB_NAME).await.unwrap_err();
    assert!(
        matches!(err, ExecutorError::Backend(ref m) if m.contains("etcd")),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn list_returns_units_for_recovery() {
    let (client, mut api) = mock();
    let (exec, _rx) = executor(client);
    let server = tokio::spawn(async move {
        let (req, send) = next(&mut api).await;
        assert_eq!(req.method, Method::GET);
        assert_eq!(req.path, JOBS);
        assert_eq!(req.query("labelSelector"), Some(SELECTOR));
        let running = created_job();
        let mut done = created_job();
        done["metadata"]["name"] = json!("scan-b-1");
        done["metadata"]["annotations"]["scanplane.io/scan-run-id"] = json!("b");
        done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        send.send_response(full(
            StatusCode::OK,
            &json!({"apiVersion": "batch/v1", "kind": "JobList",
                    "metadata": {"resourceVersion": "7"}, "items": [running, done]}),
        ));
    });
    let units = exec.list().await.unwrap();
    assert_eq!(
        units,
        vec![
            Unit {
                scan_id: SCAN_ID.into(),
                executor_ref: JOB_NAME.into(),
                attempt: Some(2),
                active: true,
                ended: None,
            },
            Unit {
                scan_id: "b".into(),
                executor_ref: "scan-b-1".into(),
                attempt: Some(2),
                active: false,
                // How it ended, from the Job's conditions alone: what a takeover applies.
                ended: Some(UnitState::Exited {
                    success: true,
                    exit_code: Some(0),
                    message: String::new(),
                }),
            },
        ]
    );
    server.await.unwrap();
}

/// A fake API server for the watcher: answers the Job and pod list and watch requests from
/// fixed lists and test-fed watch streams, and forwards every Event it is sent.
struct Sim {
    jobs: Chunks,
    pods: Chunks,
    events: mpsc::UnboundedReceiver<Value>,
    rx: mpsc::UnboundedReceiver<Observation>,
    server: tokio::task::JoinHandle<()>,
}

impl Sim {
    fn start(initial_jobs: Vec<Value>, initial_pods: Vec<Value>) -> Self {
        let (client, mut api) = mock();
        let (exec, rx) = executor(client);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (jobs_tx, jobs_resp) = streaming();
        let (pods_tx, pods_resp) = streaming();
        let server = tokio::spawn(async move {
            let mut watches = [Some(jobs_resp), Some(pods_resp)];
            loop {
                let Some(Some((req, send))) =
                    tokio::time::timeout(Duration::from_secs(30), api.next_request())
                        .await
                        .ok()
                else {
                    return;
                };
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let path = parts.uri.path().to_string();
                let query = parts.uri.query().unwrap_or_default().to_string();
                let which = match path.as_str() {
                    JOBS => 0,
                    PODS => 1,
                    EVENTS => {
                        let ev: Value = serde_json::from_slice(&body).unwrap();
                        send.send_response(full(StatusCode::CREATED, &ev));
                        let _ = events_tx.send(ev);
                        continue;
                    }
                    other => panic!("unexpected request {} {other}?{query}", parts.method),
                };
                assert_eq!(parts.method, Method::GET);
                assert!(
                    decode(&query).contains(&format!("labelSelector={SELECTOR}")),
                    "{query}"
                );
                if query.contains("watch=true") {
                    assert!(query.contains("resourceVersion=10"), "{query}");
                    match watches[which].take() {
                        Some(resp) => send.send_response(resp),
                        // A second watch means the first stream broke; keep it idle.
                        None => send.send_response(streaming().1),
                    }
                } else {
                    let (kind, items) = if which == 0 {
                        ("JobList", &initial_jobs)
                    } else {
                        ("PodList", &initial_pods)
                    };
                    let api_version = if which == 0 { "batch/v1" } else { "v1" };
                    send.send_response(full(
                        StatusCode::OK,
                        &json!({"apiVersion": api_version, "kind": kind,
                                "metadata": {"resourceVersion": "10"}, "items": items}),
                    ));
                }
            }
        });
        let _watcher = exec.spawn_watcher();
        Sim {
            jobs: jobs_tx,
            pods: pods_tx,
            events,
            rx,
            server,
        }
    }

    fn push(chunks: &Chunks, kind: &str, object: Value) {
        let line = format!("{}\n", json!({"type": kind, "object": object}));
        chunks
            .unbounded_send(Ok(Frame::data(Bytes::from(line))))
            .unwrap();
    }

    fn job(&self, kind: &str, job: Value) {
        Self::push(&self.jobs, kind, job);
    }

    fn pod(&self, kind: &str, pod: Value) {
        Self::push(&self.pods, kind, pod);
    }

    async fn observation(&mut self) -> Observation {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no observation in time")
            .expect("the watcher stopped")
    }

    async fn event(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("no Event in time")
            .expect("the server stopped")
    }

    fn stop(self) {
        self.server.abort();
    }
}

fn job_with(name: &str, status: Value) -> Value {
    let mut j = created_job();
    j["metadata"]["name"] = json!(name);
    j["metadata"]["resourceVersion"] = json!("11");
    j["status"] = status;
    j
}

fn pod_of(job: &str, name: &str, created: &str, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "creationTimestamp": created,
                        "resourceVersion": "12",
                        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job,
                                             "uid": JOB_UID, "controller": true}]},
           "spec": {"containers": [{"name": "scanner", "image": "i"}]},
           "status": status})
}

fn scanner_state(state: Value) -> Value {
    json!([{"name": "scanner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": state}])
}

fn observation(state: UnitState) -> Observation {
    Observation {
        scan_id: SCAN_ID.into(),
        executor_ref: JOB_NAME.into(),
        state,
    }
}

#[tokio::test]
async fn watcher_reports_running_then_completion_with_an_event() {
    let mut sim = Sim::start(vec![job_with(JOB_NAME, json!({}))], vec![]);
    sim.pod(
        "ADDED",
        pod_of(JOB_NAME, "scan-pod-a", "2025-01-01T00:00:01Z", json!({"phase": "Running",
            "containerStatuses": scanner_state(json!({"running": {"startedAt": "2025-01-01T00:00:05Z"}}))})),
    );
    assert_eq!(
        sim.observation().await,
        observation(UnitState::Running {
            detail: Some("scan-pod-a".into())
        })
    );
    sim.pod(
        "MODIFIED",
        pod_of(JOB_NAME, "scan-pod-a", "2025-01-01T00:00:01Z", json!({"phase": "Succeeded",
            "containerStatuses": scanner_state(json!({"terminated": {"exitCode": 0, "reason": "Completed"}}))})),
    );
    sim.job(
        "MODIFIED",
        job_with(
            JOB_NAME,
            json!({"succeeded": 1, "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"}]}),
        ),
    );
    assert_eq!(
        sim.observation().await,
        observation(UnitState::Exited {
            success: true,
            exit_code: Some(0),
            message: String::new()
        })
    );
    let ev = sim.event().await;
    assert_eq!(ev["reason"], "ScanCompleted");
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["regarding"]["name"], JOB_NAME);
    sim.stop();
}

#[tokio::test]
async fn watcher_reports_a_deadline_as_a_timeout() {
    let mut sim = Sim::start(vec![job_with(JOB_NAME, json!({"active": 1}))], vec![]);
    sim.job(
        "MODIFIED",
        job_with(
            JOB_NAME,
            json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}),
        ),
    );
    assert_eq!(
        sim.observation().await,
        observation(UnitState::TimedOut {
            message: "Job was active longer than specified deadline".into()
        })
    );
    let ev = sim.event().await;
    assert_eq!(
        (ev["reason"].as_str(), ev["type"].as_str()),
        (Some("ScanFailed"), Some("Warning"))
    );
    sim.stop();
}

#[tokio::test]
async fn watcher_reports_backoff_limit_with_exit_code_and_message() {
    let mut sim = Sim::start(vec![job_with(JOB_NAME, json!({}))], vec![]);
    sim.pod(
        "ADDED",
        pod_of(JOB_NAME, "scan-pod-b", "2025-01-01T00:00:01Z", json!({"phase": "Failed",
            "containerStatuses": scanner_state(json!({"terminated": {"exitCode": 2, "reason": "Error",
                "message": "report rejected: 401"}}))})),
    );
    assert_eq!(
        sim.observation().await,
        observation(UnitState::Running {
            detail: Some("scan-pod-b".into())
        })
    );
    sim.job(
        "MODIFIED",
        job_with(
            JOB_NAME,
            json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        ),
    );
    assert_eq!(
        sim.observation().await,
        observation(UnitState::Exited {
            success: false,
            exit_code: Some(2),
            message: "report rejected: 401".into()
        })
    );
    assert_eq!(sim.event().await["reason"], "ScanFailed");
    sim.stop();
}

#[tokio::test]
async fn watcher_fails_an_image_pull_past_the_grace_only() {
    let other = "scan-fresh-1";
    let mut fresh_job = job_with(other, json!({}));
    fresh_job["metadata"]["annotations"]["scanplane.io/scan-run-id"] = json!("fresh");
    let now = k8s_openapi::jiff::Timestamp::now();
    let pull = |job: &str, name: &str, created: String| {
        pod_of(
            job,
            name,
            &created,
            json!({"phase": "Pending",
            "containerStatuses": scanner_state(json!({"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"nope:1\""}}))}),
        )
    };
    let old = (now - k8s_openapi::jiff::SignedDuration::from_mins(10)).to_string();
    let mut sim = Sim::start(
        vec![job_with(JOB_NAME, json!({})), fresh_job.clone()],
        vec![
            pull(JOB_NAME, "old-pod", old),
            pull(other, "fresh-pod", now.to_string()),
        ],
    );
    assert_eq!(
        sim.observation().await,
        observation(UnitState::Failed {
            message: "ImagePullBackOff: Back-off pulling image \"nope:1\"".into()
        })
    );
    assert_eq!(sim.event().await["reason"], "ScanFailed");
    // The fresh pod is within its grace: the next thing reported about it is its end.
    fresh_job["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    sim.job("MODIFIED", fresh_job);
    let obs = sim.observation().await;
    assert_eq!(obs.scan_id, "fresh");
    assert!(
        matches!(obs.state, UnitState::Exited { success: true, .. }),
        "{obs:?}"
    );
    sim.stop();
}

#[tokio::test]
async fn watcher_reports_a_job_deleted_behind_its_back_as_gone() {
    let mut sim = Sim::start(vec![job_with(JOB_NAME, json!({}))], vec![]);
    sim.job("DELETED", job_with(JOB_NAME, json!({})));
    assert_eq!(sim.observation().await, observation(UnitState::Gone));
    sim.stop();
}

#[tokio::test]
async fn finished_jobs_found_at_start_are_reported_without_new_events() {
    let done = job_with(
        JOB_NAME,
        json!({"conditions": [{"type": "Complete", "status": "True"}]}),
    );
    let mut live = job_with("scan-live-1", json!({}));
    live["metadata"]["annotations"]["scanplane.io/scan-run-id"] = json!("live");
    let mut sim = Sim::start(vec![done, live.clone()], vec![]);
    // Recovery still learns how the finished Job ended.
    let obs = sim.observation().await;
    assert_eq!(obs.executor_ref, JOB_NAME);
    assert!(matches!(obs.state, UnitState::Exited { success: true, .. }));
    // The first Event published is the live Job's, not a replay of the finished one.
    live["status"] = json!({"conditions": [{"type": "Failed", "status": "True",
        "reason": "DeadlineExceeded", "message": "deadline"}]});
    sim.job("MODIFIED", live);
    assert_eq!(sim.observation().await.scan_id, "live");
    let ev = sim.event().await;
    assert_eq!(ev["regarding"]["name"], "scan-live-1");
    sim.stop();
}

#[test]
fn the_job_fixture_is_a_job() {
    let job: Job = serde_json::from_value(created_job()).unwrap();
    assert_eq!(job.metadata.uid.as_deref(), Some(JOB_UID));
}
