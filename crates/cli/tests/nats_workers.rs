//! `serve --executor nats` with three `scanplane worker` processes on a real nats-server
//! (JetStream): 200 scans of a custom scanner, one worker SIGKILLed while it runs scans and
//! the NATS server restarted during the run. Every scan ends with a reason, each exactly
//! once with its two findings (none lost, none ingested twice), no scan ever ran on two
//! workers at once, and at the end no slot is held: not by the dispatcher, not on a worker,
//! not in the queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use scanplane_executor_nats::testing::NatsServer;
use scanplane_store::Backend;
use serde_json::json;

const SCANS: usize = 200;
const WORKERS: usize = 3;

struct WorkerProc {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl WorkerProc {
    fn start(nats: &str, dir: &std::path::Path, i: usize) -> WorkerProc {
        let port = free_port();
        let log = dir.join(format!("worker-{i}.log"));
        let work = dir.join(format!("work-{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_scanplane"))
            .arg("worker")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SCANPLANE_NATS_URL", nats)
            .env("SCANPLANE_WORKER_CONCURRENCY", "4")
            .env("SCANPLANE_WORKER_LISTEN", format!("127.0.0.1:{port}"))
            .env("SCANPLANE_WORKER_ID", format!("worker-{i}"))
            .env("SCANPLANE_WORK_DIR", &work)
            .env("SCANPLANE_WORKER_SHUTDOWN_GRACE", "5s")
            .env("SCANPLANE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start scanplane worker");
        WorkerProc { child, port, log }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = self.get("/healthz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker not healthy; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Sum of a metric's samples in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_two_hundred_scans_a_killed_worker_and_a_nats_restart() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs.log");
    // Each run logs its start and end with the time; findings come at the end only, so a
    // run killed with its worker reports nothing.
    let config = custom_scanner(
        dir.path(),
        "steady",
        &format!(
            "echo \"start $SCANPLANE_TARGETS $(date +%s%N)\" >> {runs}\nsleep 1\necho \"end $SCANPLANE_TARGETS $(date +%s%N)\" >> {runs}\necho '{{\"rule_id\": \"r1\", \"severity\": \"low\", \"title\": \"one\"}}'\necho '{{\"rule_id\": \"r2\", \"severity\": \"high\", \"title\": \"two\"}}'",
            runs = runs.display()
        ),
    );
    let db = fresh_db(Backend::Sqlite).await;
    let nats_url = nats.url();
    let server = Server::start(
        &db,
        &[
            ("SCANPLANE_EXECUTOR", "nats"),
            ("SCANPLANE_NATS_URL", &nats_url),
            ("SCANPLANE_CONFIG", config.to_str().unwrap()),
            ("MAX_CONCURRENT_JOBS", "12"),
            ("SCANNER_BACKOFF_LIMIT", "5"),
            ("SCANNER_TIMEOUT", "2m"),
        ],
    )
    .await;
    let mut workers: Vec<WorkerProc> = (0..WORKERS)
        .map(|i| WorkerProc::start(&nats_url, dir.path(), i))
        .collect();
    for w in &workers {
        w.wait_healthy().await;
    }

    let started = Instant::now();
    let mut ids = HashMap::new();
    for i in 0..SCANS {
        let target = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        let (code, a) = server
            .post(
                "/scans/now",
                ADMIN,
                json!({"scanner": "steady", "targets": [target]}),
            )
            .await;
        assert_eq!(code, 202, "{a}");
        ids.insert(a["scan_run_id"].as_str().unwrap().to_string(), target);
    }

    // Kill one worker once it runs scans.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, m) = workers[0].get("/metrics").await.unwrap();
        if metric(&m, "scanplane_worker_in_flight") >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker 0 never ran two units:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_at = now_ns();
    let mut victim = workers.remove(0);
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    println!("worker 0 SIGKILLed at {:?}", started.elapsed());

    // Then restart NATS while the others work.
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.restart();
    println!("nats-server restarted at {:?}", started.elapsed());
    for w in &workers {
        w.wait_healthy().await;
    }

    let mut statuses: HashMap<String, usize> = HashMap::new();
    for (id, target) in &ids {
        let scan = server
            .wait_scan(id, Duration::from_secs(300), terminal)
            .await;
        let status = scan["status"].as_str().unwrap().to_string();
        assert_eq!(
            status,
            "succeeded",
            "scan of {target} did not succeed: {scan}\nserver log:\n{}",
            server.log_text()
        );
        assert_eq!(scan["findings_count"], 2, "{scan}");
        *statuses.entry(status).or_default() += 1;
    }
    println!(
        "{SCANS} scans terminal after {:?}: {statuses:?}",
        started.elapsed()
    );

    // Findings ingested once each: a lost attempt never reported, a redelivered unit was
    // never run again.
    let (_, m) = server
        .call(reqwest::Method::GET, "/metrics", ADMIN, None)
        .await;
    let m = m.as_str().map(String::from).unwrap_or_default();
    assert_eq!(
        metric(&m, "scanplane_findings_total"),
        (SCANS * 2) as f64,
        "{m}"
    );
    let lost = metric(&m, "scanplane_nats_workers_lost_total");
    println!("attempts declared lost: {lost}");
    assert!(
        lost >= 1.0,
        "the killed worker's attempts were never declared lost:\n{m}"
    );

    // No scan ran twice at once: per target, the runs' intervals are disjoint (a run
    // without an end was killed with worker 0 and lasted until the kill).
    let text = std::fs::read_to_string(&runs).unwrap();
    let mut open: HashMap<&str, Vec<u128>> = HashMap::new();
    let mut intervals: HashMap<&str, Vec<(u128, u128)>> = HashMap::new();
    for line in text.lines() {
        let mut p = line.split(' ');
        let (what, target, at) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        let at: u128 = at.parse().unwrap();
        match what {
            "start" => open.entry(target).or_default().push(at),
            _ => {
                let starts = open.get_mut(target).unwrap();
                // The run that ends is the latest one started.
                let s = starts.pop().expect("an end without a start");
                intervals.entry(target).or_default().push((s, at));
            }
        }
    }
    let mut killed_runs = 0;
    for (target, starts) in open {
        for s in starts {
            assert!(
                s < killed_at,
                "a run of {target} never ended and was not on the killed worker"
            );
            intervals.entry(target).or_default().push((s, killed_at));
            killed_runs += 1;
        }
    }
    let mut reruns = 0;
    for (target, mut iv) in intervals {
        iv.sort();
        reruns += iv.len() - 1;
        for w in iv.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "{target} ran twice at once: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
    println!("runs killed with worker 0: {killed_runs}; scans that ran more than once: {reruns}");
    assert!(
        killed_runs >= 1,
        "worker 0 was killed while running nothing"
    );

    // No slot held anywhere.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, m) = server
            .call(reqwest::Method::GET, "/metrics", ADMIN, None)
            .await;
        let m = m.as_str().map(String::from).unwrap_or_default();
        let active = metric(&m, "scanplane_active_scan_jobs");
        let depth = metric(&m, "scanplane_nats_queue_depth");
        let in_flight = metric(&m, "scanplane_nats_in_flight");
        let mut worker_busy = 0.0;
        for w in &workers {
            let (_, wm) = w.get("/metrics").await.unwrap();
            worker_busy += metric(&wm, "scanplane_worker_in_flight");
        }
        if active == 0.0 && depth == 0.0 && in_flight == 0.0 && worker_busy == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots still held: active {active}, queue {depth}, in flight {in_flight}, on workers {worker_busy}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
