//! The replica soak: 3 `serve` replicas on one PostgreSQL (local executor, 2 s leases) run
//! 300 scans submitted over the soak while replicas are SIGKILLed and restarted at random.
//! At the end every scan is terminal with a reason and succeeded with exactly its one
//! finding (none lost, none duplicated), no scan ever had units of two replicas alive at
//! once, no slot is held and no process is left.
//!
//! `SCANPLANE_SOAK_SECONDS` sets the chaos phase (default 300, the figure the project
//! promises); the seed of the random kills is printed so a failure can be replayed with
//! `SCANPLANE_SOAK_SEED`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use scanplane_store::Backend;
use serde_json::{json, Value};

const SCANS: usize = 300;

/// A scan and the replicas (executor instance markers) that had live units of it at once.
type Doubled = Vec<(String, HashSet<String>)>;
const REPLICAS: usize = 3;

/// A small deterministic generator (xorshift), so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// For every scan id, the executor instance markers (which replica's units) of its live
/// processes right now.
fn units_by_scan() -> HashMap<String, HashSet<String>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for pid in pids_where("environ", |env| {
        env.split(|b| *b == 0)
            .any(|v| v.starts_with(b"SCANPLANE_EXECUTOR_INSTANCE="))
    }) {
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let mut scan = None;
        let mut marker = None;
        for v in env.split(|b| *b == 0) {
            let v = String::from_utf8_lossy(v);
            if let Some(id) = v.strip_prefix("SCANPLANE_SCAN_ID=") {
                scan = Some(id.to_string());
            }
            if let Some(m) = v.strip_prefix("SCANPLANE_EXECUTOR_INSTANCE=") {
                marker = Some(m.to_string());
            }
        }
        if let (Some(scan), Some(marker)) = (scan, marker) {
            // A zombie or exiting process no longer runs anything.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let running = state
                .rfind(')')
                .and_then(|i| state[i + 1..].split_whitespace().next())
                .is_some_and(|s| s != "Z" && s != "X");
            if running {
                out.entry(scan).or_default().insert(marker);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_at_random_lose_and_duplicate_nothing() {
    let soak = Duration::from_secs(
        std::env::var("SCANPLANE_SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    let seed = std::env::var("SCANPLANE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("soak: {}s, seed {seed}", soak.as_secs());
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().unwrap();
    let cfg = custom_scanner(
        dir.path(),
        "sleeper",
        "sleep 2\necho '{\"rule_id\": \"r1\", \"severity\": \"low\", \"title\": \"seen\"}'",
    );
    let cfg = cfg.display().to_string();
    let db = fresh_db(Backend::Postgres).await;
    let env = [
        ("SCANPLANE_CONFIG", cfg.as_str()),
        ("MAX_CONCURRENT_JOBS", "20"),
        ("SCANPLANE_REPLICA_LEASE", "2s"),
        ("SCANPLANE_REPORT_GRACE", "10s"),
    ];
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let mut replicas: Vec<Option<Server>> = Vec::new();
    for p in &ports {
        replicas.push(Some(Server::start_on(&db, *p, &env).await));
    }

    // Samples /proc all along: a scan with live units of two replicas is a violation.
    let stop = Arc::new(AtomicBool::new(false));
    let doubled: Arc<Mutex<Doubled>> = Arc::default();
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, doubled, samples) = (stop.clone(), doubled.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (scan, markers) in units_by_scan() {
                    if markers.len() > 1 {
                        doubled.lock().unwrap().push((scan, markers));
                    }
                }
                samples.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let client = reqwest::Client::new();
    let started = Instant::now();
    let submit_every = soak / SCANS as u32;
    let mut ids: Vec<String> = Vec::new();
    let mut next_submit = Instant::now();
    let mut next_chaos = Instant::now() + Duration::from_secs(3 + rng.below(8));
    let mut down: Vec<(usize, Instant)> = Vec::new();
    let mut kills = 0;
    while ids.len() < SCANS || started.elapsed() < soak {
        let now = Instant::now();
        if ids.len() < SCANS && now >= next_submit {
            // Any replica that is up takes the submission.
            let up: Vec<usize> = (0..REPLICAS).filter(|i| replicas[*i].is_some()).collect();
            if let Some(&i) = up.get(rng.below(up.len().max(1) as u64) as usize) {
                let url = format!("http://127.0.0.1:{}/scans/now", ports[i]);
                let body = json!({"scanner": "sleeper", "targets": [format!("10.3.{}.{}", ids.len() / 250, ids.len() % 250 + 1)]});
                if let Ok(r) = client
                    .post(&url)
                    .bearer_auth(ADMIN)
                    .json(&body)
                    .send()
                    .await
                {
                    if r.status().as_u16() == 202 {
                        let v: Value = r.json().await.unwrap();
                        ids.push(v["scan_run_id"].as_str().unwrap().to_string());
                        next_submit = now + submit_every;
                    }
                }
            }
        }
        if started.elapsed() < soak && now >= next_chaos {
            let i = rng.below(REPLICAS as u64) as usize;
            if let Some(mut s) = replicas[i].take() {
                s.kill9();
                drop(s);
                kills += 1;
                down.push((i, now + Duration::from_millis(500 + rng.below(3000))));
            }
            next_chaos = now + Duration::from_secs(2 + rng.below(10));
        }
        let mut still_down = Vec::new();
        for (i, at) in down.drain(..) {
            if Instant::now() >= at {
                replicas[i] = Some(Server::start_on(&db, ports[i], &env).await);
            } else {
                still_down.push((i, at));
            }
        }
        down = still_down;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, _) in down.drain(..) {
        replicas[i] = Some(Server::start_on(&db, ports[i], &env).await);
    }
    println!(
        "soak: {kills} replicas killed, {} scans submitted",
        ids.len()
    );

    let s = replicas[0].as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut statuses: HashMap<String, usize>;
    loop {
        statuses = HashMap::new();
        let mut pending = 0;
        for id in &ids {
            let (_, x) = s.get(&format!("/api/v1/scans/{id}"), ADMIN).await;
            let st = x["status"].as_str().unwrap().to_string();
            if !terminal(&st) {
                pending += 1;
            }
            *statuses.entry(st).or_default() += 1;
        }
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scans not terminal: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    println!(
        "soak: {statuses:?} after {:.0}s, {} process samples",
        started.elapsed().as_secs_f64(),
        samples.load(Ordering::Relaxed)
    );

    let mut lost_attempts = 0u64;
    for id in &ids {
        let (_, x) = s.get(&format!("/api/v1/scans/{id}"), ADMIN).await;
        assert_eq!(x["status"], "succeeded", "{x}");
        assert!(!x["reason"].as_str().unwrap().is_empty(), "{x}");
        assert_eq!(x["findings_count"], 1, "one finding, stored once: {x}");
        let (_, f) = s
            .get(&format!("/api/v1/scans/{id}/findings?limit=10"), ADMIN)
            .await;
        assert_eq!(f["items"].as_array().unwrap().len(), 1, "{f}");
        lost_attempts += x["lost_attempts"].as_u64().unwrap();
    }
    println!("soak: {lost_attempts} attempts lost with their replica, none charged");
    let doubled = doubled.lock().unwrap().clone();
    assert!(
        doubled.is_empty(),
        "scans with units of two replicas at once: {doubled:?}"
    );
    let metrics = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scanplane_active_scan_jobs 0"),
        "{metrics}"
    );
    let left: usize = units_by_scan().keys().filter(|k| ids.contains(k)).count();
    assert_eq!(left, 0, "no process of any scan is left");
}
