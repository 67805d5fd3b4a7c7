//! The pure mapping from what the API server says about a Job and its pods to a [`UnitState`].
//!
//! | Kubernetes | [`UnitState`] |
//! | --- | --- |
//! | Job condition `Complete` | `Exited { success: true }` (the report decides the result) |
//! | Job condition `Failed`, reason `DeadlineExceeded` | `TimedOut` |
//! | Job condition `Failed`, any other reason (`BackoffLimitExceeded`, ...) | `Exited { success: false }` with the container's exit code and termination message |
//! | scanner container waiting on `ImagePullBackOff`, `ErrImagePull`, `InvalidImageName` or `CreateContainerConfigError`, or `PodScheduled=False` reason `Unschedulable`, for longer than `pending_grace` | `Failed` |
//! | scanner container running or terminated (the pod started) | `Running { detail: pod name }` |
//! | anything else (pod not created or not started yet) | `None`: nothing new to say |

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::jiff::Timestamp;
use scanplane_executor::UnitState;

use crate::config::KubernetesConfig;
use crate::job::CONTAINER_NAME;

/// Waiting reasons that mean the container will not start without someone fixing something.
/// `CreateContainerConfigError` covers a token Secret that never appeared.
pub const STUCK_WAITING_REASONS: [&str; 4] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
];

/// Termination messages are at most 4 KiB in Kubernetes; anything longer is cut to that.
const MAX_MESSAGE: usize = 4096;

/// What `job` and its `pods` (those the Job owns, in any order) say about the attempt, or
/// `None` when there is nothing to report yet.
pub fn observe(
    job: &Job,
    pods: &[Pod],
    now: Timestamp,
    cfg: &KubernetesConfig,
) -> Option<UnitState> {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    // Newest last: with retries, the latest pod is the one that counts.
    pods.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });

    if let Some(state) = finished(job, &pods) {
        return Some(state);
    }
    let pod = pods.last()?;
    if started(pod) {
        return Some(UnitState::Running {
            detail: pod.metadata.name.clone(),
        });
    }
    stuck(pod, now, cfg).map(|message| UnitState::Failed { message })
}

/// Whether the Job has ended, by its conditions (the Job controller's own verdict).
pub fn is_finished(job: &Job) -> bool {
    true_condition(job, "Complete").is_some() || true_condition(job, "Failed").is_some()
}

fn finished(job: &Job, pods: &[&Pod]) -> Option<UnitState> {
    if true_condition(job, "Complete").is_some() {
        // The Job controller only completes a Job whose pod exited 0. The pod's own update
        // may reach the watcher after the Job's, so a clean exit reads nothing else from it
        // but an explicit termination message.
        let message = pods
            .iter()
            .rev()
            .find_map(|p| terminated(p))
            .and_then(|t| t.message.as_deref())
            .map(|m| cut(m.trim()))
            .unwrap_or_default();
        return Some(UnitState::Exited {
            success: true,
            exit_code: Some(0),
            message,
        });
    }
    let (reason, message) = true_condition(job, "Failed")?;
    if reason == "DeadlineExceeded" {
        let message = if message.is_empty() {
            "Job was active longer than specified deadline".to_string()
        } else {
            message
        };
        return Some(UnitState::TimedOut { message });
    }
    // The last pod that ran to a failure explains it best; the condition is the fallback
    // (pods may already be gone, or the Job failed by a pod failure policy).
    let failed = pods
        .iter()
        .rev()
        .filter_map(|p| terminated(p))
        .find(|t| t.exit_code != 0);
    Some(match failed {
        Some(t) => UnitState::Exited {
            success: false,
            exit_code: Some(t.exit_code),
            message: termination_text(t),
        },
        None => UnitState::Exited {
            success: false,
            exit_code: None,
            message: cut(&join_nonempty(&reason, &message)),
        },
    })
}

/// The `(reason, message)` of a condition of type `kind` whose status is `True`.
fn true_condition(job: &Job, kind: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

fn scanner_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == CONTAINER_NAME)
}

fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    scanner_status(pod)?.state.as_ref()?.terminated.as_ref()
}

fn started(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Running" | "Succeeded" | "Failed")) {
        return true;
    }
    scanner_status(pod)
        .and_then(|s| s.state.as_ref())
        .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
}

/// Why the pod cannot start, once it has been unable to for longer than the grace.
fn stuck(pod: &Pod, now: Timestamp, cfg: &KubernetesConfig) -> Option<String> {
    let status = pod.status.as_ref()?;
    let waiting = scanner_status(pod)
        .and_then(|s| s.state.as_ref())
        .and_then(|st| st.waiting.as_ref())
        .and_then(|w| {
            let reason = w.reason.as_deref()?;
            STUCK_WAITING_REASONS
                .contains(&reason)
                .then(|| join_nonempty(reason, w.message.as_deref().unwrap_or_default()))
        });
    let unschedulable = || {
        status.conditions.as_ref()?.iter().find_map(|c| {
            (c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable"))
            .then(|| join_nonempty("Unschedulable", c.message.as_deref().unwrap_or_default()))
        })
    };
    let why = waiting.or_else(unschedulable)?;
    // The pod has been pending since it was created; its creation is the one instant every
    // API server records, with or without a kubelet.
    let since = pod.metadata.creation_timestamp.as_ref()?.0;
    let pending = now.as_second().saturating_sub(since.as_second());
    let grace = i64::try_from(cfg.pending_grace.as_secs()).unwrap_or(i64::MAX);
    (pending > grace).then(|| cut(&why))
}

fn termination_text(t: &ContainerStateTerminated) -> String {
    let message = t.message.as_deref().map(str::trim).unwrap_or_default();
    if !message.is_empty() {
        return cut(message);
    }
    // Without a message the reason (`Error`, `OOMKilled`) is all there is.
    t.reason.clone().unwrap_or_default()
}

fn join_nonempty(reason: &str, message: &str) -> String {
    match (reason.trim(), message.trim()) {
        (r, "") => r.to_string(),
        ("", m) => m.to_string(),
        (r, m) => format!("{r}: {m}"),
    }
}

/// Cuts at a char boundary, keeping the end: the last lines of a log explain a failure.
fn cut(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_string();
    }
    let mut start = text.len() - MAX_MESSAGE;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "scan-a-1", "namespace": "scans"},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    fn pod(name: &str, created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "scans", "creationTimestamp": created},
            "status": status
        }))
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cfg() -> KubernetesConfig {
        KubernetesConfig {
            pending_grace: Duration::from_secs(300),
            ..KubernetesConfig::default()
        }
    }

    const T0: &str = "2025-01-01T00:00:00Z";

    #[test]
    fn nothing_to_say_before_a_pod_exists_or_starts() {
        let j = job(json!([]));
        assert_eq!(observe(&j, &[], at(T0), &cfg()), None);
        let p = pod(
            "p",
            T0,
            json!({"phase": "Pending", "containerStatuses": [
            {"name": "scanner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(observe(&j, &[p], at("2025-01-01T01:00:00Z"), &cfg()), None);
    }

    #[test]
    fn a_started_pod_is_running_with_its_name() {
        let p = pod(
            "scan-a-1-xyz",
            T0,
            json!({"phase": "Running", "containerStatuses": [
            {"name": "scanner", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {"startedAt": T0}}}]}),
        );
        assert_eq!(
            observe(&job(json!([])), &[p], at(T0), &cfg()),
            Some(UnitState::Running {
                detail: Some("scan-a-1-xyz".into())
            })
        );
    }

    #[test]
    fn complete_is_a_clean_exit() {
        let j = job(json!([{"type": "Complete", "status": "True"}]));
        let p = pod(
            "p",
            T0,
            json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "scanner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        assert_eq!(
            observe(&j, &[p], at(T0), &cfg()),
            Some(UnitState::Exited {
                success: true,
                exit_code: Some(0),
                message: String::new()
            })
        );
    }

    #[test]
    fn deadline_exceeded_is_a_timeout() {
        let j = job(json!([
            {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
             "message": "Job was active longer than specified deadline"}]));
        assert_eq!(
            observe(&j, &[], at(T0), &cfg()),
            Some(UnitState::TimedOut {
                message: "Job was active longer than specified deadline".into()
            })
        );
    }

    #[test]
    fn backoff_limit_exceeded_carries_exit_code_and_termination_message() {
        let j = job(
            json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit"}]),
        );
        let p = pod(
            "p",
            T0,
            json!({"phase": "Failed", "containerStatuses": [
            {"name": "scanner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 3, "reason": "Error",
                                      "message": "nmap: target unreachable\n"}}}]}),
        );
        assert_eq!(
            observe(&j, &[p], at(T0), &cfg()),
            Some(UnitState::Exited {
                success: false,
                exit_code: Some(3),
                message: "nmap: target unreachable".into()
            })
        );
        // With the pods gone, the condition still explains the failure.
        assert_eq!(
            observe(&j, &[], at(T0), &cfg()),
            Some(UnitState::Exited {
                success: false,
                exit_code: None,
                message: "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            })
        );
    }

    #[test]
    fn image_pull_failure_fails_only_past_the_grace() {
        let p = pod(
            "p",
            T0,
            json!({"phase": "Pending", "containerStatuses": [
            {"name": "scanner", "ready": false, "restartCount": 0, "image": "nope", "imageID": "",
             "state": {"waiting": {"reason": "ImagePullBackOff",
                                   "message": "Back-off pulling image \"nope\""}}}]}),
        );
        let j = job(json!([]));
        let p = [p];
        assert_eq!(observe(&j, &p, at("2025-01-01T00:05:00Z"), &cfg()), None);
        assert_eq!(
            observe(&j, &p, at("2025-01-01T00:05:01Z"), &cfg()),
            Some(UnitState::Failed {
                message: "ImagePullBackOff: Back-off pulling image \"nope\"".into()
            })
        );
    }

    #[test]
    fn unschedulable_fails_past_the_grace() {
        let p = pod(
            "p",
            T0,
            json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available"}]}),
        );
        assert_eq!(
            observe(&job(json!([])), &[p], at("2025-01-01T00:10:00Z"), &cfg()),
            Some(UnitState::Failed {
                message: "Unschedulable: 0/3 nodes are available".into()
            })
        );
    }

    #[test]
    fn the_newest_pod_decides_and_false_conditions_do_not_count() {
        let old = pod(
            "old",
            T0,
            json!({"phase": "Failed", "containerStatuses": [
            {"name": "scanner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 1}}}]}),
        );
        let new = pod("new", "2025-01-01T00:01:00Z", json!({"phase": "Running"}));
        let j = job(json!([{"type": "Failed", "status": "False"}]));
        assert_eq!(
            observe(&j, &[new, old], at(T0), &cfg()),
            Some(UnitState::Running {
                detail: Some("new".into())
            })
        );
        assert!(!is_finished(&j));
    }

    #[test]
    fn long_messages_keep_their_end() {
        let long = format!("{}END", "é".repeat(5000));
        let c = cut(&long);
        assert!(c.len() <= MAX_MESSAGE && c.ends_with("END"));
    }
}
