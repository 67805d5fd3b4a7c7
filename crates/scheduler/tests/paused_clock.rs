//! The scheduler on tokio's paused clock over real stores (SQLite and PostgreSQL): ticks
//! fire on time and exactly once, missed ticks follow the policy, DST is handled.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use scanplane_core::clock::Clock;
use scanplane_core::scan::Scan;
use scanplane_core::schedule::{Cadence, MissedTickPolicy, Schedule, ScheduleStatus};
use scanplane_core::Timestamp;
use scanplane_scheduler::{Scheduler, SchedulerConfig, SchedulerContext, TokioClock};
use scanplane_store::testing::RemoteStore;
use scanplane_store::{Backend, ScanFilter, TickStore};
use tokio::sync::{watch, Notify};

fn schedule(
    tenant: &str,
    id: &str,
    cadence: Cadence,
    now: Timestamp,
    policy: MissedTickPolicy,
) -> Schedule {
    Schedule {
        missed_tick_policy: policy,
        name: id.into(),
        ..scanplane_store::testing::new_schedule(tenant, id, cadence, now)
    }
}

fn scheduler(store: Arc<dyn TickStore>, clock: Arc<dyn Clock>) -> Scheduler {
    Scheduler::new(SchedulerContext {
        store,
        clock,
        wake: Arc::new(Notify::new()),
        wake_dispatcher: Arc::new(Notify::new()),
        provider_of: Arc::new(|_: &str, _: &[String]| None),
        scope_of: Arc::new(|_: &str, options: &str| options.to_string()),
        config: SchedulerConfig::default(),
    })
}

/// The scans created for a schedule, read on the store's own runtime.
async fn scans_of(remote: &RemoteStore, schedule_id: &str, limit: u32) -> Vec<Scan> {
    let filter = ScanFilter {
        schedule_id: Some(schedule_id.into()),
        limit,
        ..Default::default()
    };
    remote
        .run(move |s| async move { s.list_scans(None, &filter).await })
        .await
        .unwrap()
}

async fn fire_times(remote: &RemoteStore, schedule_id: &str) -> Vec<Timestamp> {
    let mut scans = scans_of(remote, schedule_id, 1000).await;
    scans.sort_by_key(|s| s.fire_time);
    scans.into_iter().filter_map(|s| s.fire_time).collect()
}

/// Creates tenant `a` and its schedules (given its id) on the store's own runtime.
async fn setup(remote: &RemoteStore, make: impl FnOnce(&str) -> Vec<Schedule>) {
    let tenant = remote
        .run(|s| async move { s.ensure_tenant("a").await })
        .await
        .unwrap();
    for schedule in make(&tenant.id) {
        remote
            .run(move |s| async move { s.create_schedule(&schedule).await })
            .await
            .unwrap();
    }
}

/// Steps simulated time in `step` increments, running one scheduler pass per step.
async fn drive(s: &Scheduler, steps: u32, step: Duration) {
    for _ in 0..steps {
        tokio::time::advance(step).await;
        s.pass().await.unwrap();
    }
}

async fn fires_every_tick_once(backend: Backend) {
    let origin = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let remote = tokio::task::spawn_blocking(move || RemoteStore::fresh(backend))
        .await
        .unwrap();
    tokio::time::pause();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(origin));
    let every_10s = Cadence::cron("*/10 * * * * *", "UTC").unwrap();
    setup(&remote, |t| {
        vec![schedule(
            t,
            "s10",
            every_10s,
            origin,
            MissedTickPolicy::CatchUpOnce,
        )]
    })
    .await;
    let s = scheduler(remote.ticks.clone(), clock.clone());
    drive(&s, 240, Duration::from_millis(250)).await; // one simulated minute
    let fired = fire_times(&remote, "s10").await;
    let expected: Vec<Timestamp> = (1..=6)
        .map(|i| origin + chrono::Duration::seconds(10 * i))
        .collect();
    assert_eq!(fired, expected);
    // Every scan was created within 250 ms (one step) of its tick.
    let scans = scans_of(&remote, "s10", 100).await;
    for scan in scans {
        let late = scan.created_at - scan.fire_time.unwrap();
        assert!(
            late <= chrono::Duration::milliseconds(250),
            "late by {late}"
        );
    }
}

async fn downtime_follows_the_missed_tick_policy(backend: Backend) {
    let origin = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let remote = tokio::task::spawn_blocking(move || RemoteStore::fresh(backend))
        .await
        .unwrap();
    tokio::time::pause();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(origin));
    let hourly = Cadence::cron("0 * * * *", "UTC").unwrap();
    setup(&remote, |t| {
        vec![
            schedule(
                t,
                "catch",
                hourly.clone(),
                origin,
                MissedTickPolicy::CatchUpOnce,
            ),
            schedule(t, "skip", hourly, origin, MissedTickPolicy::Skip),
        ]
    })
    .await;
    // The server is down for five and a half hours: no pass runs.
    tokio::time::advance(Duration::from_secs(5 * 3600 + 1800)).await;
    let s = scheduler(remote.ticks.clone(), clock.clone());
    s.pass().await.unwrap();
    s.pass().await.unwrap();
    assert_eq!(
        fire_times(&remote, "catch").await,
        vec![origin + chrono::Duration::hours(5)],
        "one catch-up run for the latest missed tick"
    );
    assert!(
        fire_times(&remote, "skip").await.is_empty(),
        "skip fires nothing missed"
    );
    // Both resume on schedule.
    drive(&s, 60, Duration::from_secs(60)).await;
    assert_eq!(fire_times(&remote, "catch").await.len(), 2);
    assert_eq!(
        fire_times(&remote, "skip").await,
        vec![origin + chrono::Duration::hours(6)]
    );
}

async fn dst_transitions(backend: Backend) {
    // Europe/Berlin: 2026-03-29 02:00 -> 03:00 (gap), 2026-10-25 03:00 -> 02:00 (repeat).
    for (origin, label) in [
        (
            Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap(),
            "spring",
        ),
        (
            Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap(),
            "autumn",
        ),
    ] {
        let remote = tokio::task::spawn_blocking(move || RemoteStore::fresh(backend))
            .await
            .unwrap();
        tokio::time::pause();
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(origin));
        let at_0230 = Cadence::cron("30 2 * * *", "Europe/Berlin").unwrap();
        setup(&remote, |t| {
            vec![schedule(
                t,
                label,
                at_0230,
                origin,
                MissedTickPolicy::CatchUpOnce,
            )]
        })
        .await;
        let s = scheduler(remote.ticks.clone(), clock.clone());
        drive(&s, 48 * 60, Duration::from_secs(60)).await; // two simulated days
        let fired = fire_times(&remote, label).await;
        assert_eq!(
            fired.len(),
            2,
            "{label}: one run per day, none lost in the gap, none doubled in the repeat: {fired:?}"
        );
        tokio::time::resume();
    }
}

async fn run_loop_wakes_for_due_work(backend: Backend) {
    let origin = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let remote = tokio::task::spawn_blocking(move || RemoteStore::fresh(backend))
        .await
        .unwrap();
    tokio::time::pause();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(origin));
    let once = Cadence::Once {
        at: origin + chrono::Duration::seconds(5),
    };
    setup(&remote, |t| {
        vec![schedule(
            t,
            "once",
            once,
            origin,
            MissedTickPolicy::CatchUpOnce,
        )]
    })
    .await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler(remote.ticks.clone(), clock.clone()).run(stop_rx));
    // Simulated time may jump while the store answers; wait for the outcome, not a time.
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !fire_times(&remote, "once").await.is_empty() {
            break;
        }
    }
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(
        fire_times(&remote, "once").await,
        vec![origin + chrono::Duration::seconds(5)]
    );
    let s = remote
        .run(|s| async move { s.schedule(None, "once").await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.status,
        ScheduleStatus::Completed,
        "a one-shot schedule completes after firing"
    );
    assert_eq!(s.next_fire_at, None);
}

macro_rules! both {
    ($($test:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() { super::$test(super::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() { super::$test(super::Backend::Postgres).await }
            )*
        }
    };
}

both!(
    fires_every_tick_once,
    downtime_follows_the_missed_tick_policy,
    dst_transitions,
    run_loop_wakes_for_due_work
);
