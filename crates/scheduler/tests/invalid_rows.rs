//! A schedule row that cannot be evaluated (a cron expression that no longer parses, as a
//! row written before validation existed or edited by hand would have) must not stop the
//! scheduler: it is taken out of the due set (completed, with the reason in the log), and
//! every other schedule still fires.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::sync::Arc;
use std::time::Duration;

use scanplane_core::clock::{Clock, SystemClock};
use scanplane_core::schedule::{Cadence, ScheduleStatus};
use scanplane_scheduler::{Scheduler, SchedulerConfig, SchedulerContext};
use scanplane_store::testing::{fresh_store, new_schedule};
use scanplane_store::{Backend, ScanFilter, Store};
use tokio::sync::Notify;

async fn invalid_schedule_stops_and_others_fire(backend: Backend) {
    let store: Arc<dyn Store> = Arc::new(fresh_store(backend).await);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let t = store.ensure_tenant("a").await.unwrap();

    let mut bad = new_schedule(
        &t.id,
        "bad",
        Cadence::cron("* * * * *", "UTC").unwrap(),
        now,
    );
    // Bypasses `Cadence::cron`'s validation, as a stored row can.
    bad.cadence = Cadence::Cron {
        expr: "not a cron".into(),
        timezone: chrono_tz::UTC,
    };
    bad.next_tick = Some(now - chrono::Duration::seconds(2));
    bad.next_fire_at = bad.next_tick;
    store.create_schedule(&bad).await.unwrap();
    let once = Cadence::Once {
        at: now - chrono::Duration::seconds(1),
    };
    store
        .create_schedule(&new_schedule(&t.id, "good", once, now))
        .await
        .unwrap();

    // A batch of one: the invalid schedule is the whole first batch. Before it was taken
    // out of the due set, the pass fetched it again forever.
    let scheduler = Scheduler::new(SchedulerContext {
        store: store.clone(),
        clock,
        wake: Arc::new(Notify::new()),
        wake_dispatcher: Arc::new(Notify::new()),
        provider_of: Arc::new(|_: &str, _: &[String]| None),
        scope_of: Arc::new(|_: &str, options: &str| options.to_string()),
        config: SchedulerConfig {
            batch: 1,
            ..SchedulerConfig::default()
        },
    });
    let stats = tokio::time::timeout(Duration::from_secs(60), scheduler.pass())
        .await
        .expect("the pass must end despite the invalid schedule")
        .unwrap();
    assert_eq!(stats.fired, 1, "the valid schedule still fired");

    let bad = store.schedule(None, "bad").await.unwrap().unwrap();
    assert_eq!(
        bad.status,
        ScheduleStatus::Completed,
        "it never fires again"
    );
    assert_eq!(bad.next_fire_at, None, "and is no longer due");
    let fired = store
        .list_scans(
            None,
            &ScanFilter {
                schedule_id: Some("good".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    // A second pass finds nothing due and does nothing.
    assert_eq!(scheduler.pass().await.unwrap().fired, 0);
}

#[tokio::test]
async fn invalid_schedule_stops_sqlite() {
    invalid_schedule_stops_and_others_fire(Backend::Sqlite).await;
}

#[tokio::test]
async fn invalid_schedule_stops_postgres() {
    invalid_schedule_stops_and_others_fire(Backend::Postgres).await;
}
