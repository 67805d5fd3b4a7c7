//! The control plane's side: [`NatsExecutor`] publishes an attempt's unit (after writing its
//! `queued` record), cancels through the record, lists the records, and its watcher turns
//! record changes into [`Observation`]s, declares lost the attempts whose worker stopped
//! heartbeating, and refreshes the queue gauges.
//!
//! Units survive the replica that published them (they run on workers): a replica taking an
//! attempt over adopts it from the listing, and every replica watches every record but the
//! dispatcher acts only on the attempts its replica owns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use futures::StreamExt;
use scanplane_executor::{Executor, ExecutorError, LaunchSpec, Observation, Unit};
use scanplane_metrics::{KindLabel, Metrics};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::state::{self, Attempt, Kind, UnitMessage};
use crate::{NatsConfig, Topology};

/// How often the watcher looks for silent workers and refreshes the queue gauges.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const GAUGES_EVERY: Duration = Duration::from_secs(5);

pub struct NatsExecutor {
    config: NatsConfig,
    topology: Topology,
    observations: UnboundedSender<Observation>,
    metrics: Arc<Metrics>,
}

fn backend(e: impl std::fmt::Display) -> ExecutorError {
    ExecutorError::Backend(format!("NATS: {e}"))
}

impl NatsExecutor {
    pub fn new(
        config: NatsConfig,
        topology: Topology,
        observations: UnboundedSender<Observation>,
        metrics: Arc<Metrics>,
    ) -> Self {
        NatsExecutor {
            config,
            topology,
            observations,
            metrics,
        }
    }

    /// Connects, creates or checks the stream, consumers and bucket.
    pub async fn connect(
        config: NatsConfig,
        observations: UnboundedSender<Observation>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::NatsError> {
        let client = crate::connect(&config).await?;
        let topology = crate::topology(client, &config).await?;
        Ok(Self::new(config, topology, observations, metrics))
    }

    /// Follows the attempt records until the process ends (restarting its watch whenever
    /// the connection drops it).
    pub fn spawn_watcher(&self) -> JoinHandle<()> {
        let watcher = Watcher {
            attempts: self.topology.attempts.clone(),
            observations: self.observations.clone(),
            metrics: self.metrics.clone(),
            consumers: self.topology.consumers.clone(),
            seen: HashMap::new(),
        };
        tokio::spawn(watcher.run())
    }

    async fn record(&self, key: &str) -> Result<Option<(Attempt, u64)>, ExecutorError> {
        let entry = self.topology.attempts.entry(key).await.map_err(backend)?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| Attempt::decode(&e.value).map(|a| (a, e.revision))))
    }
}

#[async_trait]
impl Executor for NatsExecutor {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn units_survive_restart(&self) -> bool {
        true
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<String, ExecutorError> {
        let fail = |message: String| ExecutorError::Launch {
            scan_id: spec.scan_id.clone(),
            message,
        };
        let msg = UnitMessage::of(spec)
            .ok_or_else(|| fail(format!("scan id {:?} cannot name a NATS key", spec.scan_id)))?;
        let payload = msg.encode();
        if payload.len() > state::MAX_MESSAGE_BYTES {
            return Err(fail(format!(
                "its unit is {} bytes, over the {}-byte message limit",
                payload.len(),
                state::MAX_MESSAGE_BYTES
            )));
        }
        // The record first: a worker that gets the message always finds it.
        match self
            .topology
            .attempts
            .create(&msg.key, Attempt::Queued.encode())
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                // A retried launch of the same attempt: publish again only if nobody has
                // claimed it (the message id makes a second copy a no-op anyway).
                match self.record(&msg.key).await? {
                    Some((Attempt::Queued, _)) | None => {}
                    Some((other, _)) => {
                        return Err(fail(format!(
                            "attempt {} was already launched ({other:?})",
                            spec.attempt
                        )))
                    }
                }
            }
            Err(e) => return Err(fail(format!("cannot record the attempt: {e}"))),
        }
        let kind = Kind::of_scanner(&spec.scanner);
        let publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(&msg.key);
        let ack = self
            .topology
            .jetstream
            .send_publish(self.config.subject(kind), publish)
            .await
            .map_err(|e| fail(format!("cannot publish: {e}")))?;
        // Stored by the server (and so durable) once acknowledged.
        ack.await
            .map_err(|e| fail(format!("the server did not store the unit: {e}")))?;
        Ok(state::executor_ref(&msg.key))
    }

    async fn cancel(&self, _scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError> {
        let key = state::key_of_ref(executor_ref)
            .ok_or_else(|| ExecutorError::NotFound(executor_ref.to_string()))?;
        // A worker may change the record meanwhile: try a few times.
        for _ in 0..5 {
            let Some((record, revision)) = self.record(key).await? else {
                return Err(ExecutorError::NotFound(executor_ref.to_string()));
            };
            let Some(next) = state::on_cancel(&record) else {
                return Ok(());
            };
            match self
                .topology
                .attempts
                .update(key, next.encode(), revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(backend(e)),
            }
        }
        Err(ExecutorError::Backend(format!(
            "the record of {executor_ref} kept changing; cancel not written"
        )))
    }

    async fn list(&self) -> Result<Vec<Unit>, ExecutorError> {
        let mut keys = self.topology.attempts.keys().await.map_err(backend)?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            names.push(key.map_err(backend)?);
        }
        let mut units = Vec::with_capacity(names.len());
        for key in names {
            if let Some((record, _)) = self.record(&key).await? {
                units.extend(record.unit(&key));
            }
        }
        Ok(units)
    }

    async fn cleanup(&self, _scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError> {
        let Some(key) = state::key_of_ref(executor_ref) else {
            return Ok(());
        };
        // A worker still running it sees the record gone and stops; a delivery of it
        // later is terminated.
        self.topology.attempts.purge(key).await.map_err(backend)
    }
}

/// What the watcher last saw of a record.
struct Seen {
    record: Attempt,
    revision: u64,
    at: Instant,
}

struct Watcher {
    attempts: kv::Store,
    observations: UnboundedSender<Observation>,
    metrics: Arc<Metrics>,
    consumers: Vec<(Kind, async_nats::jetstream::consumer::PullConsumer)>,
    seen: HashMap<String, Seen>,
}

impl Watcher {
    async fn run(mut self) {
        let mut last_gauges = Instant::now() - GAUGES_EVERY;
        loop {
            let mut watch = match self.attempts.watch_with_history(">").await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the attempt records; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut tick = tokio::time::interval(CHECK_EVERY);
            loop {
                tokio::select! {
                    entry = watch.next() => match entry {
                        Some(Ok(entry)) => self.saw(entry),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "attempt watch failed; watching again");
                            break;
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        self.check_silent().await;
                        if last_gauges.elapsed() >= GAUGES_EVERY {
                            self.gauges().await;
                            last_gauges = Instant::now();
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn saw(&mut self, entry: kv::Entry) {
        if entry.operation != kv::Operation::Put {
            self.seen.remove(&entry.key);
            return;
        }
        let Some(record) = Attempt::decode(&entry.value) else {
            tracing::warn!(key = %entry.key, "unreadable attempt record ignored");
            return;
        };
        let Some((scan_id, _)) = state::parse_key(&entry.key) else {
            return;
        };
        let changed = self
            .seen
            .get(&entry.key)
            .map(|s| std::mem::discriminant(&s.record) != std::mem::discriminant(&record))
            .unwrap_or(true);
        if changed {
            if let Some(state) = record.observed() {
                let _ = self.observations.send(Observation {
                    scan_id: scan_id.to_string(),
                    executor_ref: state::executor_ref(&entry.key),
                    state,
                });
            }
        }
        self.seen.insert(
            entry.key,
            Seen {
                record,
                revision: entry.revision,
                at: Instant::now(),
            },
        );
    }

    /// Declares lost each running attempt whose record has not changed for
    /// [`state::LOST_AFTER`], by a compare-and-set on the revision last seen: if the worker
    /// wrote meanwhile (the watch lagged), the write fails and nothing is declared.
    async fn check_silent(&mut self) {
        let verdicts: Vec<(String, u64, Attempt)> = self
            .seen
            .iter()
            .filter_map(|(key, s)| {
                state::lost_verdict(&s.record, s.at.elapsed()).map(|v| (key.clone(), s.revision, v))
            })
            .collect();
        for (key, revision, verdict) in verdicts {
            match self.attempts.update(&key, verdict.encode(), revision).await {
                Ok(_) => {
                    tracing::warn!(attempt = %key, ?verdict, "attempt lost with its worker");
                    self.metrics.nats_workers_lost.inc();
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(e) => {
                    tracing::debug!(attempt = %key, error = %e, "cannot write a lost verdict");
                    continue;
                }
            }
            // Seen again only through the watch (the verdict, or what beat it).
            if let Some(s) = self.seen.get_mut(&key) {
                s.at = Instant::now();
            }
        }
    }

    async fn gauges(&mut self) {
        for (kind, consumer) in &mut self.consumers {
            let label = KindLabel {
                kind: kind.as_str().into(),
            };
            match consumer.info().await {
                Ok(info) => {
                    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                    self.metrics
                        .nats_queue_depth
                        .get_or_create(&label)
                        .set(clamp(info.num_pending));
                    self.metrics
                        .nats_in_flight
                        .get_or_create(&label)
                        .set(clamp(info.num_ack_pending as u64));
                    self.metrics
                        .nats_redelivered
                        .get_or_create(&label)
                        .set(clamp(info.num_redelivered as u64));
                }
                Err(e) => tracing::debug!(error = %e, "cannot read consumer info"),
            }
        }
    }
}
