//! Two `serve` processes on one PostgreSQL with 200 schedules firing every second for a
//! minute: every tick of every schedule fires exactly once — none doubled, none missed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use scanplane_store::{Backend, ScanFilter, ScanStore};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_every_tick_exactly_once() {
    let db = fresh_db(Backend::Postgres).await;
    let a = Server::start(&db, &[]).await;
    let b = Server::start(&db, &[]).await;
    // Hold every scan in the queue: this test is about firing, not running.
    let (code, w) = a
        .post(
            "/api/v1/maintenance-windows",
            ADMIN,
            json!({"name": "hold-all", "start": chrono::Utc::now().to_rfc3339(), "duration": "1h"}),
        )
        .await;
    assert_eq!(code, 201, "{w}");
    for i in 0..200 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (code, s) = server
            .post("/scans/schedule", ADMIN, json!({"name": format!("every-second-{i}"), "cron_exp": "* * * * * *", "scanner": "tcp", "targets": ["127.0.0.1:9"]}))
            .await;
        assert_eq!(code, 201, "{s}");
    }
    let started = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    // Stop firing: disable every schedule through the API, then read the record.
    let (_, list) = a.get("/scans/schedule?limit=1000", ADMIN).await;
    let stopped = chrono::Utc::now();
    for s in list["items"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let (code, _) = a
            .call(
                reqwest::Method::PATCH,
                &format!("/scans/schedule/{id}"),
                ADMIN,
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(code, 200);
    }

    let store = scanplane_store::open(&db).await.unwrap();
    let mut per_schedule: BTreeMap<String, Vec<chrono::DateTime<chrono::Utc>>> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_scans(
                None,
                &ScanFilter {
                    limit: 1000,
                    after: cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|s| s.id.clone());
        for scan in page {
            per_schedule
                .entry(scan.schedule_id.clone().unwrap())
                .or_default()
                .push(scan.fire_time.unwrap());
        }
    }
    assert_eq!(per_schedule.len(), 200, "every schedule fired");
    let mut total = 0;
    for (id, mut ticks) in per_schedule {
        ticks.sort();
        let before = ticks.len();
        ticks.dedup();
        assert_eq!(ticks.len(), before, "schedule {id}: a tick fired twice");
        for pair in ticks.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                chrono::Duration::seconds(1),
                "schedule {id}: tick missed between {} and {}",
                pair[0],
                pair[1]
            );
        }
        let first = ticks[0];
        let last = *ticks.last().unwrap();
        assert!(
            first - started <= chrono::Duration::seconds(3),
            "schedule {id}: first tick {first} long after creation {started}"
        );
        assert!(
            stopped - last <= chrono::Duration::seconds(3),
            "schedule {id}: last tick {last} long before {stopped}"
        );
        total += ticks.len();
    }
    assert!(
        total >= 200 * 55,
        "about a minute of ticks for 200 schedules, got {total}"
    );
    // Both replicas were up the whole time.
    assert_eq!(a.get("/readyz", "").await.0, 200);
    assert_eq!(b.get("/readyz", "").await.0, 200);
}
