//! [`KubernetesExecutor`]: launches attempts as Jobs, and one watcher task that follows every
//! Job and pod of this installation through two label-selected watches (never a poll per
//! Job) and turns what it sees into [`Observation`]s and Kubernetes Events.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use scanplane_executor::{Executor, ExecutorError, LaunchSpec, Observation, Unit, UnitState};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::config::KubernetesConfig;
use crate::job::{build_job, scan_id_of, secret_owned_by, selector};
use crate::observe::{is_finished, observe};

/// The reporting controller of every Event this executor publishes.
pub const REPORTING_CONTROLLER: &str = "scanplane";

/// Reasons of the Kubernetes Events recorded on scan Jobs, stable for alerting.
pub mod reasons {
    pub const JOB_CREATED: &str = "ScanJobCreated";
    pub const COMPLETED: &str = "ScanCompleted";
    pub const FAILED: &str = "ScanFailed";
}

/// How often the watcher re-reads its cache without any change, so a pod stuck pulling its
/// image is failed once the grace passes even if nothing about it changes any more.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// Runs scan attempts as `batch/v1` Jobs in one namespace.
#[derive(Clone)]
pub struct KubernetesExecutor {
    client: Client,
    cfg: Arc<KubernetesConfig>,
    jobs: Api<Job>,
    secrets: Api<Secret>,
    recorder: Recorder,
    tx: UnboundedSender<Observation>,
    /// Jobs this executor deleted itself: their disappearance is no news (`Gone`).
    deleted: Arc<Mutex<HashSet<String>>>,
}

impl KubernetesExecutor {
    /// An executor on `client` reporting to `tx`. Start its watcher with
    /// [`KubernetesExecutor::spawn_watcher`].
    pub fn new(client: Client, cfg: KubernetesConfig, tx: UnboundedSender<Observation>) -> Self {
        let jobs = Api::namespaced(client.clone(), &cfg.namespace);
        let secrets = Api::namespaced(client.clone(), &cfg.namespace);
        // The instance is the pod's hostname, i.e. the server pod's name.
        let recorder = Recorder::new(client.clone(), Reporter::from(REPORTING_CONTROLLER));
        Self {
            client,
            cfg: Arc::new(cfg),
            jobs,
            secrets,
            recorder,
            tx,
            deleted: Arc::default(),
        }
    }

    /// An executor on the client the environment describes: the in-cluster service account,
    /// else `KUBECONFIG` or `~/.kube/config`.
    pub async fn from_environment(
        cfg: KubernetesConfig,
        tx: UnboundedSender<Observation>,
    ) -> Result<Self, ExecutorError> {
        let client = Client::try_default()
            .await
            .map_err(|e| ExecutorError::Backend(format!("no Kubernetes client: {e}")))?;
        Ok(Self::new(client, cfg, tx))
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.cfg
    }

    /// Starts the watcher task. It runs until the observation channel closes.
    pub fn spawn_watcher(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.watch().await })
    }

    /// The watcher loop behind [`KubernetesExecutor::spawn_watcher`].
    pub async fn watch(self) {
        let config = watcher::Config::default().labels(&selector(&self.cfg));
        let jobs = watcher::watcher(self.jobs.clone(), config.clone()).default_backoff();
        let pods = watcher::watcher(
            Api::<Pod>::namespaced(self.client.clone(), &self.cfg.namespace),
            config,
        )
        .default_backoff();
        self.run(jobs, pods, RECHECK_EVERY).await;
    }

    async fn run(
        &self,
        jobs: impl Stream<Item = Result<WatchEvent<Job>, watcher::Error>>,
        pods: impl Stream<Item = Result<WatchEvent<Pod>, watcher::Error>>,
        recheck: Duration,
    ) {
        let mut jobs = std::pin::pin!(jobs);
        let mut pods = std::pin::pin!(pods);
        let mut tick = tokio::time::interval(recheck);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = WatchState::default();
        loop {
            let touched = tokio::select! {
                ev = jobs.next() => match ev {
                    Some(Ok(ev)) => self.on_job_event(&mut state, ev),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watching scanner Jobs failed; retrying");
                        Vec::new()
                    }
                    None => return,
                },
                ev = pods.next() => match ev {
                    Some(Ok(ev)) => state.on_pod_event(ev),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watching scanner pods failed; retrying");
                        Vec::new()
                    }
                    None => return,
                },
                _ = tick.tick() => state.jobs.keys().cloned().collect(),
                _ = self.tx.closed() => return,
            };
            for name in touched {
                self.evaluate(&mut state, &name).await;
            }
        }
    }

    /// Applies one Job watch event; returns the Jobs to evaluate.
    fn on_job_event(&self, state: &mut WatchState, ev: WatchEvent<Job>) -> Vec<String> {
        match ev {
            WatchEvent::Apply(job) => name_of(&job.metadata)
                .map(|n| {
                    state.jobs.insert(n.clone(), job);
                    vec![n]
                })
                .unwrap_or_default(),
            WatchEvent::Delete(job) => {
                if let Some(n) = name_of(&job.metadata) {
                    state.jobs.remove(&n);
                    self.on_job_gone(state, &n, &job);
                }
                Vec::new()
            }
            WatchEvent::Init => {
                state.jobs_buffer = Some(HashMap::new());
                Vec::new()
            }
            WatchEvent::InitApply(job) => {
                if let (Some(buf), Some(n)) = (state.jobs_buffer.as_mut(), name_of(&job.metadata)) {
                    buf.insert(n, job);
                }
                Vec::new()
            }
            WatchEvent::InitDone => {
                let fresh = state.jobs_buffer.take().unwrap_or_default();
                let old = std::mem::replace(&mut state.jobs, fresh);
                // Jobs that vanished while the watch was down are deleted all the same.
                for (name, job) in old {
                    if !state.jobs.contains_key(&name) {
                        self.on_job_gone(state, &name, &job);
                    }
                }
                state.jobs.keys().cloned().collect()
            }
        }
    }

    /// A Job disappeared: `Gone` if it was neither finished nor deleted by this executor.
    fn on_job_gone(&self, state: &mut WatchState, name: &str, job: &Job) {
        let ours = lock(&self.deleted).remove(name);
        let last = state.last.remove(name);
        state.seen_unfinished.remove(name);
        let ended = last.as_ref().is_some_and(is_terminal) || is_finished(job);
        if ours || ended {
            return;
        }
        if let Some(scan_id) = scan_id_of(&job.metadata) {
            self.send(Observation {
                scan_id,
                executor_ref: name.to_string(),
                state: UnitState::Gone,
            });
        }
    }

    /// Runs [`observe`] on one Job and reports what changed.
    async fn evaluate(&self, state: &mut WatchState, name: &str) {
        let Some(job) = state.jobs.get(name) else {
            return;
        };
        if job.metadata.deletion_timestamp.is_some() || lock(&self.deleted).contains(name) {
            return;
        }
        let Some(scan_id) = scan_id_of(&job.metadata) else {
            return;
        };
        if !is_finished(job) {
            state.seen_unfinished.insert(name.to_string());
        }
        let pods: Vec<Pod> = state
            .pods
            .values()
            .filter(|p| owning_job(p).as_deref() == Some(name))
            .cloned()
            .collect();
        let Some(next) = observe(job, &pods, Timestamp::now(), &self.cfg) else {
            return;
        };
        if !news(state.last.get(name), &next) {
            return;
        }
        let job = job.clone();
        state.last.insert(name.to_string(), next.clone());
        // An Event only for an end this process saw happen, not for every finished Job
        // re-listed at start-up.
        let event = is_terminal(&next) && state.seen_unfinished.contains(name);
        self.send(Observation {
            scan_id,
            executor_ref: name.to_string(),
            state: next.clone(),
        });
        if event {
            let (reason, type_) = match &next {
                UnitState::Exited { success: true, .. } => (reasons::COMPLETED, EventType::Normal),
                _ => (reasons::FAILED, EventType::Warning),
            };
            self.publish(&job, type_, reason, "Watch", describe(&next))
                .await;
        }
    }

    fn send(&self, obs: Observation) {
        tracing::debug!(scan_id = %obs.scan_id, job = %obs.executor_ref, state = ?obs.state, "scanner Job observed");
        // A closed channel means the control plane is shutting down; the loop ends on it.
        let _ = self.tx.send(obs);
    }

    /// Publishes an Event on the Job. Events are for humans: failing to publish one is
    /// logged and never fails the operation.
    async fn publish(&self, job: &Job, type_: EventType, reason: &str, action: &str, note: String) {
        let reference = job.object_ref(&());
        let ev = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, reason, job = ?job.metadata.name, "could not publish a Kubernetes Event");
        }
    }

    fn launch_error(spec: &LaunchSpec, message: impl std::fmt::Display) -> ExecutorError {
        ExecutorError::Launch {
            scan_id: spec.scan_id.clone(),
            message: message.to_string(),
        }
    }
}

#[async_trait]
impl Executor for KubernetesExecutor {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn units_survive_restart(&self) -> bool {
        true
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<String, ExecutorError> {
        let (job, secret) = build_job(spec, &self.cfg);
        let name = job.metadata.name.clone().unwrap_or_default();
        let created = match self.jobs.create(&PostParams::default(), &job).await {
            Ok(created) => created,
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                // A launch of this attempt already got this far (e.g. a retried call):
                // adopt the Job if it is this scan's, and finish the launch.
                let existing = self
                    .jobs
                    .get(&name)
                    .await
                    .map_err(|e| Self::launch_error(spec, e))?;
                if scan_id_of(&existing.metadata).as_deref() != Some(spec.scan_id.as_str()) {
                    return Err(Self::launch_error(
                        spec,
                        format!("Job {name} already exists for another scan"),
                    ));
                }
                existing
            }
            Err(e) => return Err(Self::launch_error(spec, e)),
        };
        let Some(uid) = created.metadata.uid.clone() else {
            return Err(Self::launch_error(
                spec,
                "the API server returned a Job without a uid",
            ));
        };
        let secret = secret_owned_by(secret, &name, &uid);
        match self.secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(e) => {
                // Without its token the pod can never start: take the Job back so the attempt
                // can be re-queued cleanly.
                if let Err(del) = self.jobs.delete(&name, &DeleteParams::background()).await {
                    tracing::warn!(error = %del, job = %name, "could not delete a Job whose token Secret failed");
                }
                return Err(Self::launch_error(
                    spec,
                    format!("creating the token Secret failed: {e}"),
                ));
            }
        }
        let note = format!(
            "scan {} attempt {} ({}, {} targets)",
            spec.scan_id,
            spec.attempt,
            spec.scanner,
            spec.targets.len()
        );
        self.publish(
            &created,
            EventType::Normal,
            reasons::JOB_CREATED,
            "Launch",
            note,
        )
        .await;
        Ok(name)
    }

    async fn cancel(&self, _scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError> {
        lock(&self.deleted).insert(executor_ref.to_string());
        match self
            .jobs
            .delete(executor_ref, &DeleteParams::foreground())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                lock(&self.deleted).remove(executor_ref);
                Err(ExecutorError::NotFound(executor_ref.to_string()))
            }
            Err(e) => {
                lock(&self.deleted).remove(executor_ref);
                Err(ExecutorError::Backend(e.to_string()))
            }
        }
    }

    async fn list(&self) -> Result<Vec<Unit>, ExecutorError> {
        let params = ListParams::default().labels(&selector(&self.cfg));
        let jobs = self
            .jobs
            .list(&params)
            .await
            .map_err(|e| ExecutorError::Backend(e.to_string()))?;
        Ok(jobs
            .items
            .iter()
            .filter_map(|job| {
                let finished = is_finished(job);
                Some(Unit {
                    scan_id: scan_id_of(&job.metadata)?,
                    executor_ref: job.metadata.name.clone()?,
                    attempt: job
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(crate::job::labels::ATTEMPT))
                        .and_then(|a| a.parse().ok()),
                    active: !finished && job.metadata.deletion_timestamp.is_none(),
                    // The Job's own conditions say how it ended; its pods are not needed.
                    ended: if finished {
                        observe(job, &[], Timestamp::now(), &self.cfg)
                    } else {
                        None
                    },
                })
            })
            .collect())
    }

    async fn cleanup(&self, _scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError> {
        lock(&self.deleted).insert(executor_ref.to_string());
        // The token Secret is the Job's dependent: background propagation deletes it too.
        match self
            .jobs
            .delete(executor_ref, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                lock(&self.deleted).remove(executor_ref);
                Ok(())
            }
            Err(e) => {
                lock(&self.deleted).remove(executor_ref);
                Err(ExecutorError::Backend(e.to_string()))
            }
        }
    }
}

/// The watcher's cache and memory of what it already reported.
#[derive(Default)]
struct WatchState {
    jobs: HashMap<String, Job>,
    pods: HashMap<String, Pod>,
    jobs_buffer: Option<HashMap<String, Job>>,
    pods_buffer: Option<HashMap<String, Pod>>,
    /// The last state reported per Job.
    last: HashMap<String, UnitState>,
    /// Jobs this process saw before they finished.
    seen_unfinished: HashSet<String>,
}

impl WatchState {
    /// Applies one pod watch event; returns the Jobs to evaluate.
    fn on_pod_event(&mut self, ev: WatchEvent<Pod>) -> Vec<String> {
        match ev {
            WatchEvent::Apply(pod) => {
                let job = owning_job(&pod);
                if let Some(n) = name_of(&pod.metadata) {
                    self.pods.insert(n, pod);
                }
                job.into_iter().collect()
            }
            WatchEvent::Delete(pod) => {
                if let Some(n) = name_of(&pod.metadata) {
                    self.pods.remove(&n);
                }
                // A vanished pod changes nothing already reported.
                Vec::new()
            }
            WatchEvent::Init => {
                self.pods_buffer = Some(HashMap::new());
                Vec::new()
            }
            WatchEvent::InitApply(pod) => {
                if let (Some(buf), Some(n)) = (self.pods_buffer.as_mut(), name_of(&pod.metadata)) {
                    buf.insert(n, pod);
                }
                Vec::new()
            }
            WatchEvent::InitDone => {
                self.pods = self.pods_buffer.take().unwrap_or_default();
                self.jobs.keys().cloned().collect()
            }
        }
    }
}

/// Whether `next` is worth reporting after `last`: nothing after an end, and one `Running`
/// per Job (a retry's new pod is no new state for the scan).
fn news(last: Option<&UnitState>, next: &UnitState) -> bool {
    match (last, next) {
        (None, _) => true,
        (Some(l), _) if is_terminal(l) => false,
        (Some(UnitState::Running { .. }), UnitState::Running { .. }) => false,
        (Some(l), n) => l != n,
    }
}

fn is_terminal(state: &UnitState) -> bool {
    !matches!(state, UnitState::Running { .. })
}

fn describe(state: &UnitState) -> String {
    match state {
        UnitState::Exited {
            success,
            exit_code,
            message,
        } => {
            let code = exit_code.map_or("no exit code".to_string(), |c| format!("exit code {c}"));
            let head = if *success {
                "scanner exited"
            } else {
                "scanner failed"
            };
            if message.is_empty() {
                format!("{head} ({code})")
            } else {
                format!("{head} ({code}): {message}")
            }
        }
        UnitState::TimedOut { message } => format!("timed out: {message}"),
        UnitState::Failed { message } => format!("could not run: {message}"),
        UnitState::Running { .. } => "running".into(),
        UnitState::Gone => "gone".into(),
        UnitState::Lost { message } => format!("lost: {message}"),
    }
    // Events allow a note of at most 1 KiB.
    .chars()
    .take(1000)
    .collect()
}

fn name_of(meta: &kube::api::ObjectMeta) -> Option<String> {
    meta.name.clone()
}

/// The Job a pod belongs to: its controller reference, else the Job controller's labels.
fn owning_job(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .as_ref()
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.kind == "Job")
                .map(|r| r.name.clone())
        })
        .or_else(|| {
            let labels = pod.metadata.labels.as_ref()?;
            labels
                .get("batch.kubernetes.io/job-name")
                .or_else(|| labels.get("job-name"))
                .cloned()
        })
}

/// Locks the set even if a panicking holder poisoned it: a set of names stays consistent.
fn lock(set: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_reports_each_change_once_and_nothing_after_an_end() {
        let running = |p: &str| UnitState::Running {
            detail: Some(p.into()),
        };
        let done = UnitState::Exited {
            success: true,
            exit_code: Some(0),
            message: String::new(),
        };
        assert!(news(None, &running("a")));
        assert!(!news(Some(&running("a")), &running("b")));
        assert!(news(Some(&running("a")), &done));
        assert!(!news(Some(&done), &done));
        assert!(!news(
            Some(&done),
            &UnitState::Failed {
                message: "x".into()
            }
        ));
    }

    #[test]
    fn describe_fits_an_event_note() {
        let s = describe(&UnitState::Failed {
            message: "x".repeat(5000),
        });
        assert!(s.len() <= 1024);
        assert_eq!(
            describe(&UnitState::Exited {
                success: false,
                exit_code: Some(2),
                message: "boom".into()
            }),
            "scanner failed (exit code 2): boom"
        );
    }
}
