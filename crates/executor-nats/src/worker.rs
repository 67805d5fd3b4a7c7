//! `scanplane worker`: pulls units from the work queue (one pull loop per kind, under a
//! global and a per-kind limit), claims each attempt's record, runs the unit as a local
//! scanner-mode process (the local executor: own process group, killed at its timeout, dying
//! with the worker), heartbeats the record, tells the server it is still working, and acks
//! once the unit has ended and its end is recorded.
//!
//! Stateless: configured by flags and env only, no database. Everything a worker knows of an
//! attempt is in its record; a worker that dies leaves a record that stops changing, which the
//! control plane declares lost.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, AckKind};
use futures::StreamExt;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use scanplane_core::scan::Trigger;
use scanplane_executor::local::{LocalConfig, LocalExecutor};
use scanplane_executor::{Executor, LaunchSpec, UnitState};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::task::TaskTracker;

use crate::state::{self, Attempt, Delivery, Kind, Outcome, UnitMessage};
use crate::{NatsConfig, NatsError, Topology};

/// How long a fetch waits for a message before it asks again.
const FETCH_EXPIRES: Duration = Duration::from_secs(5);

/// Configuration of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub nats: NatsConfig,
    /// Names this worker in attempt records, logs and its processes' markers.
    pub worker_id: String,
    /// Units run at once, all kinds together.
    pub concurrency: usize,
    /// Units of one kind run at once (at most `concurrency`); a kind not listed may use
    /// every slot.
    pub limits: HashMap<Kind, usize>,
    /// The binary to run in scanner mode (normally this very binary).
    pub program: PathBuf,
    /// Parent of the per-unit working directories.
    pub work_root: PathBuf,
    /// Env vars never passed to scanners (the worker's NATS credentials).
    pub withheld_env: Vec<String>,
    /// On shutdown, how long running units may go on before they are stopped and handed
    /// back (recorded lost, so the control plane retries them at once).
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    kind: String,
    outcome: String,
}

/// What a worker's `/metrics` shows.
pub struct WorkerMetrics {
    registry: Registry,
    in_flight: Family<KindLabel, Gauge>,
    units: Family<OutcomeLabel, Counter>,
    redeliveries: Family<KindLabel, Counter>,
    rejected: Counter,
}

impl WorkerMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("scanplane_worker");
        let in_flight = Family::<KindLabel, Gauge>::default();
        registry.register(
            "in_flight",
            "Units running on this worker",
            in_flight.clone(),
        );
        let units = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "units",
            "Units this worker ran, by kind and outcome (succeeded, failed, timed_out, cancelled, lost, skipped)",
            units.clone(),
        );
        let redeliveries = Family::<KindLabel, Counter>::default();
        registry.register(
            "redeliveries",
            "Units delivered to this worker that the server had delivered before",
            redeliveries.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "messages_rejected",
            "Messages that were not a valid unit of work (terminated)",
            rejected.clone(),
        );
        WorkerMetrics {
            registry,
            in_flight,
            units,
            redeliveries,
            rejected,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }

    fn ended(&self, kind: Kind, outcome: &str) {
        self.units
            .get_or_create(&OutcomeLabel {
                kind: kind.as_str().into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    fn in_flight(&self, kind: Kind) -> Gauge {
        self.in_flight
            .get_or_create(&KindLabel {
                kind: kind.as_str().into(),
            })
            .clone()
    }
}

/// Where a unit's observations go: the local executor reports on one channel for all.
type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<UnitState>>>>;

struct Inner {
    config: WorkerConfig,
    attempts: kv::Store,
    local: LocalExecutor,
    routes: Routes,
    metrics: Arc<WorkerMetrics>,
    /// Set when running units must stop and be handed back (shutdown grace over).
    hand_back: watch::Receiver<bool>,
}

pub struct Worker {
    inner: Arc<Inner>,
    client: async_nats::Client,
    topology: Topology,
    hand_back: watch::Sender<bool>,
}

impl Worker {
    /// Connects, checks the stream, consumers and bucket (creating what is missing), and
    /// prepares the local runner.
    pub async fn connect(config: WorkerConfig) -> Result<Worker, NatsError> {
        if config.concurrency == 0 {
            return Err(NatsError::Config("--concurrency must be at least 1".into()));
        }
        let client = crate::connect(&config.nats).await?;
        let topology = crate::topology(client.clone(), &config.nats).await?;
        let (obs_tx, mut obs_rx) = mpsc::unbounded_channel();
        let local = LocalExecutor::new(
            LocalConfig {
                program: config.program.clone(),
                work_root: config.work_root.clone(),
                max_output: 16 * 1024 * 1024,
                withheld_env: config.withheld_env.clone(),
                installation: format!("nats-{}", config.nats.stream),
                replica: config.worker_id.clone(),
            },
            obs_tx,
        )
        .map_err(|e| NatsError::Config(e.to_string()))?;
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
        let router = routes.clone();
        tokio::spawn(async move {
            while let Some(o) = obs_rx.recv().await {
                let to = router.lock().ok().and_then(|r| r.get(&o.scan_id).cloned());
                if let Some(to) = to {
                    let _ = to.send(o.state);
                }
            }
        });
        let (hand_back, hand_back_rx) = watch::channel(false);
        Ok(Worker {
            inner: Arc::new(Inner {
                attempts: topology.attempts.clone(),
                config,
                local,
                routes,
                metrics: Arc::new(WorkerMetrics::new()),
                hand_back: hand_back_rx,
            }),
            client,
            topology,
            hand_back,
        })
    }

    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        self.inner.metrics.clone()
    }

    /// Whether the worker is connected to NATS (its `/healthz`).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// Pulls and runs units until `shutdown` resolves; then stops pulling, lets running
    /// units go on for the shutdown grace, hands back what still runs, and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let global = Arc::new(Semaphore::new(self.inner.config.concurrency));
        let (stop_tx, stop_rx) = watch::channel(false);
        let tracker = TaskTracker::new();
        let mut loops = Vec::new();
        for (kind, consumer) in self.topology.consumers.clone() {
            let limit = self
                .inner
                .config
                .limits
                .get(&kind)
                .copied()
                .unwrap_or(self.inner.config.concurrency)
                .clamp(1, self.inner.config.concurrency);
            loops.push(tokio::spawn(pull_loop(
                self.inner.clone(),
                kind,
                consumer,
                global.clone(),
                Arc::new(Semaphore::new(limit)),
                stop_rx.clone(),
                tracker.clone(),
            )));
        }
        tracing::info!(worker = %self.inner.config.worker_id, concurrency = self.inner.config.concurrency, limits = ?self.inner.config.limits, "worker pulling units");
        shutdown.await;
        let _ = stop_tx.send(true);
        for l in loops {
            let _ = l.await;
        }
        tracker.close();
        let grace = self.inner.config.shutdown_grace;
        tracing::info!(
            running = tracker.len(),
            grace_seconds = grace.as_secs(),
            "worker stopping: no new units; waiting for running ones"
        );
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                running = tracker.len(),
                "shutdown grace over: handing running units back"
            );
            let _ = self.hand_back.send(true);
            tracker.wait().await;
        }
        tracing::info!("worker stopped");
    }
}

async fn pull_loop(
    inner: Arc<Inner>,
    kind: Kind,
    consumer: jetstream::consumer::PullConsumer,
    global: Arc<Semaphore>,
    per_kind: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        // A slot of this kind is held while fetching; a global one only once a unit came:
        // an idle fetch of one kind must not hold the slot another kind's unit needs.
        let kind_permit = tokio::select! {
            _ = stop.changed() => return,
            p = per_kind.clone().acquire_owned() => p,
        };
        let Ok(kind_permit) = kind_permit else {
            return;
        };
        let free = tokio::select! {
            _ = stop.changed() => return,
            p = global.acquire() => p,
        };
        drop(free);
        let batch = consumer
            .fetch()
            .max_messages(1)
            .expires(FETCH_EXPIRES)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), error = %e, "cannot fetch units; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let next = tokio::select! {
            _ = stop.changed() => return,
            n = batch.next() => n,
        };
        match next {
            Some(Ok(message)) => {
                let Ok(global_permit) = global.clone().try_acquire_owned() else {
                    // Another kind took the last slot meanwhile: another worker (or this
                    // one, later) runs it.
                    settle(&message, AckKind::Nak(Some(Duration::from_millis(500)))).await;
                    continue;
                };
                let inner = inner.clone();
                tracker.spawn(async move {
                    run_unit(inner, kind, message).await;
                    drop((kind_permit, global_permit));
                });
            }
            Some(Err(e)) => {
                tracing::debug!(kind = kind.as_str(), error = %e, "fetch ended with an error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => {}
        }
    }
}

/// Acks (or naks, terms) a message, retrying while the connection recovers.
async fn settle(message: &jetstream::Message, how: AckKind) {
    for attempt in 0..10u32 {
        match message.ack_with(how).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, attempt, "ack failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn record_of(entry: Option<kv::Entry>) -> Option<(Attempt, u64)> {
    entry
        .filter(|e| e.operation == kv::Operation::Put)
        .and_then(|e| Attempt::decode(&e.value).map(|a| (a, e.revision)))
}

async fn run_unit(inner: Arc<Inner>, kind: Kind, message: jetstream::Message) {
    let me = inner.config.worker_id.clone();
    let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
    if delivered > 1 {
        inner
            .metrics
            .redeliveries
            .get_or_create(&KindLabel {
                kind: kind.as_str().into(),
            })
            .inc();
    }
    let (unit_msg, unit) = match UnitMessage::decode(&message.payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(kind = kind.as_str(), subject = %message.subject, error = %e, "terminating a message that is not a unit of work");
            inner.metrics.rejected.inc();
            settle(&message, AckKind::Term).await;
            return;
        }
    };
    let key = unit_msg.key.clone();
    let record = match inner.attempts.entry(&key).await {
        Ok(e) => record_of(e),
        Err(e) => {
            tracing::warn!(attempt = %key, error = %e, "cannot read the attempt record; the unit goes back to the queue");
            settle(&message, AckKind::Nak(Some(Duration::from_secs(2)))).await;
            return;
        }
    };
    let revision = match state::on_delivery(record.as_ref().map(|(a, _)| a)) {
        Delivery::Term(why) => {
            tracing::info!(attempt = %key, delivered, reason = %why, "not running a delivered unit");
            inner.metrics.ended(kind, "skipped");
            settle(&message, AckKind::Term).await;
            return;
        }
        Delivery::Claim => record.map(|(_, r)| r).unwrap_or(0),
    };
    let claim = Attempt::Running {
        worker: me.clone(),
        beat: 0,
    };
    let mut revision = match inner.attempts.update(&key, claim.encode(), revision).await {
        Ok(r) => r,
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
            tracing::info!(attempt = %key, "another worker claimed the unit first");
            inner.metrics.ended(kind, "skipped");
            settle(&message, AckKind::Term).await;
            return;
        }
        Err(e) => {
            tracing::warn!(attempt = %key, error = %e, "cannot claim the unit; it goes back to the queue");
            settle(&message, AckKind::Nak(Some(Duration::from_secs(2)))).await;
            return;
        }
    };
    let in_flight = inner.metrics.in_flight(kind);
    in_flight.inc();
    tracing::info!(attempt = %key, scanner = %unit.scanner, "running a unit");

    let (tx, mut observed) = mpsc::unbounded_channel();
    if let Ok(mut r) = inner.routes.lock() {
        r.insert(unit.scan_id.clone(), tx);
    }
    let spec = LaunchSpec {
        scan_id: unit.scan_id.clone(),
        attempt: unit.attempt,
        tenant: String::new(),
        schedule_id: None,
        trigger: Trigger::OnDemand,
        scanner: unit.scanner.clone(),
        targets: unit.targets.clone(),
        billing: unit.billing,
        options: unit.options.clone(),
        timeout: unit.timeout,
        server_url: unit.server_url.clone(),
        report_token: unit_msg.report_token.clone(),
        image: None,
        scanner_definition: unit_msg.scanner_definition.clone(),
    };
    let launched = inner.local.launch(&spec).await;
    let mut mine = true;
    let mut label = None;
    let outcome = match launched {
        Err(e) => Outcome::Failed {
            message: format!("worker {me} could not start the unit: {e}"),
        },
        Ok(local_ref) => {
            let mut heartbeat = tokio::time::interval(state::HEARTBEAT_EVERY);
            heartbeat.reset();
            let mut progress = tokio::time::interval(state::PROGRESS_EVERY);
            progress.reset();
            let mut watch = inner.attempts.watch(&key).await.ok();
            let mut hand_back = inner.hand_back.clone();
            let mut beat = 0u64;
            let mut last_ok = Instant::now();
            let mut fenced = false;
            let stop = |why: &str| {
                tracing::warn!(attempt = %key, reason = why, "stopping a unit");
            };
            let outcome = loop {
                tokio::select! {
                    o = observed.recv() => match o {
                        Some(UnitState::Running { .. }) => {}
                        Some(state) => break Outcome::of(&state).unwrap_or(Outcome::Failed { message: "unknown end".into() }),
                        None => break Outcome::Failed { message: "the unit's observations stopped".into() },
                    },
                    _ = heartbeat.tick(), if mine => {
                        beat += 1;
                        let next = Attempt::Running { worker: me.clone(), beat };
                        match inner.attempts.update(&key, next.encode(), revision).await {
                            Ok(r) => { revision = r; last_ok = Instant::now(); }
                            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                                let now = inner.attempts.entry(&key).await.ok().and_then(record_of);
                                if let Some((_, r)) = &now { revision = *r; }
                                if state::must_stop(now.as_ref().map(|(a, _)| a), &me) {
                                    mine = !matches!(now, Some((Attempt::Lost { .. }, _)) | None);
                                    label = Some(if matches!(now, Some((Attempt::Cancelling { .. }, _))) { "cancelled" } else { "lost" });
                                    stop("its record changed (cancelled, lost or removed)");
                                    let _ = inner.local.cancel(&unit.scan_id, &local_ref).await;
                                    if mine { mine = matches!(now, Some((Attempt::Cancelling { .. }, _))); }
                                }
                            }
                            Err(e) => {
                                if !fenced && last_ok.elapsed() >= state::WORKER_FENCE {
                                    fenced = true;
                                    label = Some("lost");
                                    stop(&format!("no heartbeat written for {} s ({e}): the control plane will declare it lost", last_ok.elapsed().as_secs()));
                                    let _ = inner.local.cancel(&unit.scan_id, &local_ref).await;
                                }
                            }
                        }
                    },
                    _ = progress.tick() => {
                        let _ = message.ack_with(AckKind::Progress).await;
                    },
                    change = async { match watch.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } } => match change {
                        Some(Ok(entry)) if entry.revision > revision => {
                            let now = record_of(Some(entry.clone()));
                            let gone = entry.operation != kv::Operation::Put;
                            if gone || state::must_stop(now.as_ref().map(|(a, _)| a), &me) {
                                let cancelling = matches!(now, Some((Attempt::Cancelling { .. }, _)));
                                if let Some((_, r)) = &now { revision = *r; }
                                mine = cancelling;
                                label = Some(if cancelling { "cancelled" } else { "lost" });
                                stop(if cancelling { "cancel requested" } else { "its record was removed or declared lost" });
                                let _ = inner.local.cancel(&unit.scan_id, &local_ref).await;
                            }
                        }
                        Some(_) => {}
                        None => watch = None,
                    },
                    _ = hand_back.changed() => {
                        if *hand_back.borrow() && mine {
                            let lost = Attempt::Lost { worker: me.clone(), reason: format!("worker lost: {me} was stopped before the unit ended") };
                            if inner.attempts.update(&key, lost.encode(), revision).await.is_ok() {
                                mine = false;
                            }
                            label = Some("lost");
                            stop("the worker is stopping");
                            let _ = inner.local.cancel(&unit.scan_id, &local_ref).await;
                        }
                    },
                }
            };
            let _ = inner.local.cleanup(&unit.scan_id, &local_ref).await;
            outcome
        }
    };
    if let Ok(mut r) = inner.routes.lock() {
        r.remove(&unit.scan_id);
    }
    if mine {
        record_end(&inner, &key, revision, &me, &outcome).await;
    }
    settle(&message, AckKind::Ack).await;
    in_flight.dec();
    let label = label.unwrap_or(outcome.label());
    inner.metrics.ended(kind, label);
    tracing::info!(attempt = %key, outcome = label, "unit ended");
}

/// Writes how the unit ended, unless its record stopped being this worker's (declared lost,
/// removed). Retried for a while: the end may come while the connection recovers.
async fn record_end(inner: &Inner, key: &str, mut revision: u64, me: &str, outcome: &Outcome) {
    let ended = Attempt::Ended {
        worker: me.to_string(),
        outcome: outcome.clone(),
    };
    for _ in 0..40 {
        match inner.attempts.update(key, ended.encode(), revision).await {
            Ok(_) => return,
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                match inner.attempts.entry(key).await.map(record_of) {
                    Ok(Some((Attempt::Running { worker, .. }, r)))
                    | Ok(Some((Attempt::Cancelling { worker }, r)))
                        if worker == me =>
                    {
                        revision = r
                    }
                    Ok(_) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            Err(e) => {
                tracing::debug!(attempt = %key, error = %e, "cannot record the unit's end yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    tracing::warn!(attempt = %key, "could not record the unit's end; the control plane will find it lost");
}
