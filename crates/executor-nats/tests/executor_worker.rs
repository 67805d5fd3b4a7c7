//! The NATS executor and a worker against a real nats-server with JetStream: a unit runs on
//! the worker and its end reaches the control plane; cancel reaches the running worker; a
//! deadline kills; a retried publish is queued once; a message that is not a unit is
//! terminated, not redelivered; per-kind limits keep a long kind from blocking another.
//!
//! The unit's program is a shell script standing in for `scanplane job` (the binary's own
//! end-to-end test runs the real one): it logs its env and sleeps and exits as its target says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scanplane_core::scan::Trigger;
use scanplane_executor::{Executor, LaunchSpec, Observation, UnitState};
use scanplane_executor_nats::testing::NatsServer;
use scanplane_executor_nats::{Kind, NatsConfig, NatsExecutor, Worker, WorkerConfig};
use scanplane_metrics::Metrics;
use tokio::sync::mpsc::UnboundedReceiver;

/// A fake scanner mode: target `SLEEP:CODE`; appends `<scan> <attempt> <token> start|end`.
fn fake_job(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("units.log");
    let script = dir.join("fake-job.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nt=$(echo \"$SCANPLANE_TARGETS\" | head -n1)\necho \"$SCANPLANE_SCAN_ID $SCANPLANE_ATTEMPT $SCANPLANE_REPORT_TOKEN start $(date +%s.%N)\" >> {log}\nsleep \"${{t%%:*}}\"\necho \"$SCANPLANE_SCAN_ID $SCANPLANE_ATTEMPT - end $(date +%s.%N)\" >> {log}\nexit \"${{t##*:}}\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn spec(scan: &str, scanner: &str, target: &str, timeout: Duration) -> LaunchSpec {
    LaunchSpec {
        scan_id: scan.into(),
        attempt: 1,
        tenant: "default".into(),
        schedule_id: None,
        trigger: Trigger::OnDemand,
        scanner: scanner.into(),
        targets: vec![target.into()],
        billing: false,
        options: "{}".into(),
        timeout,
        server_url: "http://127.0.0.1:9".into(),
        report_token: format!("token-of-{scan}"),
        image: None,
        scanner_definition: None,
    }
}

struct Setup {
    _server: NatsServer,
    _dir: tempfile::TempDir,
    config: NatsConfig,
    executor: NatsExecutor,
    observations: UnboundedReceiver<Observation>,
    metrics: Arc<Metrics>,
    log: PathBuf,
    script: PathBuf,
    work: PathBuf,
}

async fn setup() -> Setup {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (script, log) = fake_job(dir.path());
    let config = NatsConfig::new(server.url());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::new());
    let executor = NatsExecutor::connect(config.clone(), tx, metrics.clone())
        .await
        .unwrap();
    executor.spawn_watcher();
    let work = dir.path().join("work");
    Setup {
        _server: server,
        _dir: dir,
        config,
        executor,
        observations: rx,
        metrics,
        log,
        script,
        work,
    }
}

async fn start_worker(
    s: &Setup,
    id: &str,
    concurrency: usize,
    limits: HashMap<Kind, usize>,
) -> (
    Arc<scanplane_executor_nats::worker::WorkerMetrics>,
    tokio::sync::oneshot::Sender<()>,
) {
    let worker = Worker::connect(WorkerConfig {
        nats: s.config.clone(),
        worker_id: id.into(),
        concurrency,
        limits,
        program: s.script.clone(),
        work_root: s.work.clone(),
        withheld_env: vec![],
        shutdown_grace: Duration::from_secs(1),
    })
    .await
    .unwrap();
    let metrics = worker.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    (metrics, stop)
}

async fn next_for(
    rx: &mut UnboundedReceiver<Observation>,
    scan: &str,
    within: Duration,
) -> UnitState {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let o = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no observation of {scan} within {within:?}"))
            .unwrap();
        if o.scan_id == scan {
            return o.state;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_runs_on_a_worker_and_its_end_reaches_the_control_plane() {
    let mut s = setup().await;
    let (_wm, _stop) = start_worker(&s, "w1", 2, HashMap::new()).await;
    let r = s
        .executor
        .launch(&spec("scan-a", "tcp", "1:0", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(r, "nats:scan-a.1");
    let running = next_for(&mut s.observations, "scan-a", Duration::from_secs(30)).await;
    assert_eq!(
        running,
        UnitState::Running {
            detail: Some("worker w1".into())
        }
    );
    let ended = next_for(&mut s.observations, "scan-a", Duration::from_secs(30)).await;
    assert!(
        matches!(
            ended,
            UnitState::Exited {
                success: true,
                exit_code: Some(0),
                ..
            }
        ),
        "{ended:?}"
    );
    let units = s.executor.list().await.unwrap();
    let u = units.iter().find(|u| u.scan_id == "scan-a").unwrap();
    assert!(!u.active);
    assert_eq!(u.attempt, Some(1));
    assert!(matches!(
        u.ended,
        Some(UnitState::Exited { success: true, .. })
    ));
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        log.contains("scan-a 1 token-of-scan-a start"),
        "the unit got its attempt and token: {log}"
    );
    s.executor.cleanup("scan-a", &r).await.unwrap();
    assert!(s.executor.list().await.unwrap().is_empty());
    // The message was acked: nothing waits or is in flight.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let depth = |m: &Metrics| m.render(None);
    let text = depth(&s.metrics);
    assert!(
        text.contains("scanplane_nats_queue_depth{kind=\"scan\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("scanplane_nats_in_flight{kind=\"scan\"} 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_worker_running_the_unit() {
    let mut s = setup().await;
    let (wm, _stop) = start_worker(&s, "w1", 2, HashMap::new()).await;
    let r = s
        .executor
        .launch(&spec("scan-c", "tcp", "30:0", Duration::from_secs(60)))
        .await
        .unwrap();
    let running = next_for(&mut s.observations, "scan-c", Duration::from_secs(30)).await;
    assert!(matches!(running, UnitState::Running { .. }));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&s.log)
        .unwrap_or_default()
        .contains("scan-c 1 token-of-scan-c start")
    {
        assert!(Instant::now() < deadline, "the scanner never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    s.executor.cancel("scan-c", &r).await.unwrap();
    let ended = next_for(&mut s.observations, "scan-c", Duration::from_secs(20)).await;
    let took = asked.elapsed();
    println!("cancel to the unit's recorded end: {took:?}");
    assert!(
        matches!(ended, UnitState::Exited { success: false, .. }),
        "killed, not finished: {ended:?}"
    );
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        !log.contains("scan-c 1 - end"),
        "the scanner never finished: {log}"
    );
    // The worker counts the outcome once its unit's end is recorded, a moment after the
    // control plane saw it: wait for the count (bounded), not for a time.
    let counted = "scanplane_worker_units_total{kind=\"scan\",outcome=\"cancelled\"} 1";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = wm.render();
    while !text.contains(counted) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = wm.render();
    }
    assert!(text.contains(counted), "{text}");
    assert!(
        text.contains("scanplane_worker_in_flight{kind=\"scan\"} 0"),
        "the slot is released: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_kills_a_unit_at_its_deadline() {
    let mut s = setup().await;
    let (_wm, _stop) = start_worker(&s, "w1", 1, HashMap::new()).await;
    s.executor
        .launch(&spec("scan-t", "tcp", "30:0", Duration::from_secs(1)))
        .await
        .unwrap();
    let _running = next_for(&mut s.observations, "scan-t", Duration::from_secs(30)).await;
    let ended = next_for(&mut s.observations, "scan-t", Duration::from_secs(20)).await;
    assert!(matches!(ended, UnitState::TimedOut { .. }), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_publish_is_queued_once_and_a_bad_message_is_terminated() {
    let s = setup().await;
    let unit = spec("scan-d", "tcp", "0:0", Duration::from_secs(60));
    s.executor.launch(&unit).await.unwrap();
    s.executor.launch(&unit).await.unwrap();
    let client = scanplane_executor_nats::connect(&s.config).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(&s.config.stream).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        1,
        "one copy queued"
    );

    js.publish(s.config.subject(Kind::Scan), "not a unit".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (wm, _stop) = start_worker(&s, "w1", 1, HashMap::new()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wm
        .render()
        .contains("scanplane_worker_messages_rejected_total 1")
    {
        assert!(Instant::now() < deadline, "{}", wm.render());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Terminated, so never delivered again, and the queue drains.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = stream.info().await.unwrap().state.messages;
        if info == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{info} messages left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_consumer(&s.config.consumer(Kind::Scan))
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(info.num_ack_pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_kind_does_not_block_another() {
    let mut s = setup().await;
    let limits = HashMap::from([(Kind::Discovery, 1)]);
    let (_wm, _stop) = start_worker(&s, "w1", 2, limits).await;
    let long = Duration::from_secs(60);
    s.executor
        .launch(&spec("disc-1", "registry-discovery", "4:0", long))
        .await
        .unwrap();
    assert!(matches!(
        next_for(&mut s.observations, "disc-1", Duration::from_secs(30)).await,
        UnitState::Running { .. }
    ));
    s.executor
        .launch(&spec("disc-2", "registry-discovery", "0:0", long))
        .await
        .unwrap();
    s.executor
        .launch(&spec("scan-s", "tcp", "0:0", long))
        .await
        .unwrap();
    // The scan runs and ends while the first discovery still runs; the second discovery
    // waits for the discovery slot.
    let mut order = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while order.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        let o = tokio::time::timeout(left, s.observations.recv())
            .await
            .expect("observations")
            .unwrap();
        let what = match o.state {
            UnitState::Running { .. } => "running",
            UnitState::Exited { .. } => "ended",
            _ => "other",
        };
        order.push(format!("{} {what}", o.scan_id));
    }
    let at = |e: &str| {
        order
            .iter()
            .position(|o| o == e)
            .unwrap_or_else(|| panic!("{e} in {order:?}"))
    };
    assert!(at("scan-s ended") < at("disc-1 ended"), "{order:?}");
    assert!(at("disc-1 ended") < at("disc-2 running"), "{order:?}");
}
