//! Benchmark of the scheduler with 100,000 enabled schedules: CPU while idle, fire latency
//! (p50/p99 of scan creation after its tick) and memory. Run with
//! `cargo bench -p scanplane-scheduler --bench schedules` (SQLite in a temp file), or with
//! `BENCH_DATABASE_URL=postgres://...` for PostgreSQL. Numbers go to BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use scanplane_core::clock::{Clock, SystemClock};
use scanplane_core::schedule::{Cadence, Schedule};
use scanplane_scheduler::{Scheduler, SchedulerConfig, SchedulerContext};
use scanplane_store::{ScanFilter, Store};
use tokio::sync::{watch, Notify};

const IDLE_SCHEDULES: usize = 100_000;
const HOT_SCHEDULES: usize = 100;
const PHASE: Duration = Duration::from_secs(30);

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn schedule(tenant: &str, i: usize, expr: &str, now: scanplane_core::Timestamp) -> Schedule {
    let id = uuid::Uuid::now_v7().to_string();
    Schedule {
        name: format!("s{i}"),
        ..scanplane_store::testing::new_schedule(
            tenant,
            &id,
            Cadence::cron(expr, "UTC").unwrap(),
            now,
        )
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| {
        let p = std::env::temp_dir().join(format!("scanplane-bench-{}.db", std::process::id()));
        format!("sqlite://{}", p.display())
    });
    let store: Arc<dyn Store> = Arc::new(scanplane_store::open(&url).await.unwrap());
    let backend = store.backend().as_str();
    let tenant = store.ensure_tenant("bench").await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let load = Instant::now();
    for i in 0..IDLE_SCHEDULES {
        // Daily at a minute and hour that are not due during the run.
        let expr = format!(
            "{} {} * * *",
            i % 60,
            (now.format("%H").to_string().parse::<usize>().unwrap() + 2 + i % 20) % 24
        );
        store
            .create_schedule(&schedule(&tenant.id, i, &expr, now))
            .await
            .unwrap();
    }
    eprintln!(
        "loaded {IDLE_SCHEDULES} schedules in {:.1}s",
        load.elapsed().as_secs_f64()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler = Scheduler::new(SchedulerContext {
        store: store.clone(),
        clock: clock.clone(),
        wake: Arc::new(Notify::new()),
        wake_dispatcher: Arc::new(Notify::new()),
        provider_of: Arc::new(|_: &str, _: &[String]| None),
        scope_of: Arc::new(|_: &str, options: &str| options.to_string()),
        config: SchedulerConfig::default(),
    });
    let task = tokio::spawn(scheduler.run(stop_rx));

    // Phase 1: idle. Nothing is due; the scheduler only checks the next due time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(PHASE).await;
    let idle_cpu = (cpu_seconds() - cpu0) / wall0.elapsed().as_secs_f64() * 100.0;
    let rss_idle = status_kb("VmRSS:");

    // Phase 2: 100 schedules due every second among the 100,000.
    let hot_start = clock.now();
    for i in 0..HOT_SCHEDULES {
        store
            .create_schedule(&schedule(
                &tenant.id,
                IDLE_SCHEDULES + i,
                "* * * * * *",
                clock.now(),
            ))
            .await
            .unwrap();
    }
    let (cpu1, wall1) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(PHASE).await;
    let busy_cpu = (cpu_seconds() - cpu1) / wall1.elapsed().as_secs_f64() * 100.0;
    stop_tx.send(true).unwrap();
    task.await.unwrap();

    let mut latencies = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_scans(
                None,
                &ScanFilter {
                    after: cursor.clone(),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|s| s.id.clone());
        for s in page {
            if let Some(t) = s.fire_time {
                if t > hot_start {
                    latencies
                        .push((s.created_at - t).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                }
            }
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("| backend | schedules | idle CPU | CPU with {HOT_SCHEDULES} firing/s | fires | fire latency p50 | p99 | max | RSS idle | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {backend} | {} | {idle_cpu:.2}% | {busy_cpu:.1}% | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} MiB | {} MiB |",
        IDLE_SCHEDULES + HOT_SCHEDULES,
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        rss_idle / 1024,
        status_kb("VmHWM:") / 1024,
    );
}
