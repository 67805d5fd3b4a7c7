//! Schedules declared by resources (the operator's ScheduledScans) on a real store: stored
//! under the resource's id in the named tenant, idempotent (a resync neither writes nor moves
//! the next run), rescheduled when the timing changes, rejected with the resource's field
//! names and nothing stored, moved when the tenant mapping changes, deleted with the resource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use scanplane_api::declared::{apply_declared_schedule, delete_declared_schedule};
use scanplane_core::annotations::ScanCadence;
use scanplane_core::declared::DeclaredSchedule;
use scanplane_store::Backend;

fn declared() -> DeclaredSchedule {
    DeclaredSchedule {
        id: "6f1c2a0e-0000-4000-8000-000000000001".into(),
        tenant: "team-a".into(),
        name: "k8s:team-a/nightly".into(),
        cadence: ScanCadence::Every(Duration::from_secs(6 * 3600)),
        timezone: None,
        jitter: Some("10m".into()),
        enabled: true,
        scanner: "tcp".into(),
        targets: vec!["127.0.0.1:9".into()],
        options_json: Some(r#"{"ports":"9"}"#.into()),
    }
}

async fn applies_idempotently_and_reschedules_only_on_timing(backend: Backend) {
    let state = common::state(backend).await;
    let d = declared();
    let first = apply_declared_schedule(&state, &d).await.unwrap();
    assert_eq!(first.id, d.id);
    let tenant = state.store.ensure_tenant("team-a").await.unwrap();
    assert_eq!(
        first.tenant_id, tenant.id,
        "the namespace's tenant was created"
    );
    assert!(first.next_fire_at.is_some());
    // Compared as stored (the store keeps milliseconds).
    let first = state.store.schedule(None, &d.id).await.unwrap().unwrap();

    // A resync: nothing written, the next run stays where it was.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = apply_declared_schedule(&state, &d).await.unwrap();
    assert_eq!(
        again.updated_at, first.updated_at,
        "an unchanged declaration writes nothing"
    );
    assert_eq!(again.next_fire_at, first.next_fire_at);

    // A new target is written but keeps the timing.
    let mut retarget = d.clone();
    retarget.targets = vec!["127.0.0.2:9".into()];
    let moved = apply_declared_schedule(&state, &retarget).await.unwrap();
    assert_eq!(moved.targets, ["127.0.0.2:9"]);
    assert_eq!(moved.next_fire_at, first.next_fire_at);

    // Suspending disarms it; a new cadence re-arms it on the new timing.
    let mut suspended = retarget.clone();
    suspended.enabled = false;
    let off = apply_declared_schedule(&state, &suspended).await.unwrap();
    assert!(!off.enabled);
    assert_eq!(off.next_fire_at, None);
    let mut daily = retarget.clone();
    daily.cadence = ScanCadence::Cron("0 3 * * *".into());
    daily.timezone = Some("Europe/Berlin".into());
    let on = apply_declared_schedule(&state, &daily).await.unwrap();
    assert!(on.enabled);
    assert!(on.next_fire_at.is_some());
    let stored = state
        .store
        .schedule(Some(&tenant.id), &d.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.next_fire_at, on.next_fire_at,
        "what was returned is what is stored"
    );

    assert!(delete_declared_schedule(&state, "team-a", &d.id)
        .await
        .unwrap());
    assert!(!delete_declared_schedule(&state, "team-a", &d.id)
        .await
        .unwrap());
    assert!(state.store.schedule(None, &d.id).await.unwrap().is_none());
}

/// One edit that makes a declaration wrong.
type Edit = Box<dyn Fn(&mut DeclaredSchedule)>;

async fn bad_declarations_name_the_resource_field_and_store_nothing(backend: Backend) {
    let state = common::state(backend).await;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|d| d.scanner = "nucle".into()),
            "spec.template.scanner: ",
        ),
        (Box::new(|d| d.targets.clear()), "spec.template.targets: "),
        (
            Box::new(|d| {
                d.cadence = ScanCadence::Cron("0 3 * * *".into());
                d.timezone = Some("Mars/Olympus".into());
            }),
            "spec.timezone: ",
        ),
        (
            Box::new(|d| d.timezone = Some("UTC".into())),
            "spec.timezone: ",
        ),
        (
            Box::new(|d| d.jitter = Some("forever".into())),
            "spec.jitter: ",
        ),
        (
            Box::new(|d| d.options_json = Some("{".into())),
            "spec.template.options: ",
        ),
    ];
    for (edit, field) in cases {
        let mut d = declared();
        edit(&mut d);
        let e = apply_declared_schedule(&state, &d).await.unwrap_err();
        assert_eq!(e.code, "invalid", "{}", e.message);
        assert!(
            e.message.starts_with(field),
            "want {field}..., got {}",
            e.message
        );
        assert!(state.store.schedule(None, &d.id).await.unwrap().is_none());
    }
}

async fn a_new_tenant_mapping_moves_the_schedule(backend: Backend) {
    let state = common::state(backend).await;
    let d = declared();
    apply_declared_schedule(&state, &d).await.unwrap();
    let mut moved = d.clone();
    moved.tenant = "payments".into();
    let s = apply_declared_schedule(&state, &moved).await.unwrap();
    let payments = state.store.ensure_tenant("payments").await.unwrap();
    let team_a = state.store.ensure_tenant("team-a").await.unwrap();
    assert_eq!(s.tenant_id, payments.id);
    assert!(state
        .store
        .schedule(Some(&team_a.id), &d.id)
        .await
        .unwrap()
        .is_none());
    assert!(state
        .store
        .schedule(Some(&payments.id), &d.id)
        .await
        .unwrap()
        .is_some());
}

async fn a_name_held_by_another_schedule_is_a_conflict(backend: Backend) {
    let state = common::state(backend).await;
    apply_declared_schedule(&state, &declared()).await.unwrap();
    let mut other = declared();
    other.id = "6f1c2a0e-0000-4000-8000-000000000002".into();
    let e = apply_declared_schedule(&state, &other).await.unwrap_err();
    assert_eq!(e.code, "conflict", "{}", e.message);
}

macro_rules! on_both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

on_both!(
    applies_idempotently_and_reschedules_only_on_timing,
    bad_declarations_name_the_resource_field_and_store_nothing,
    a_new_tenant_mapping_moves_the_schedule,
    a_name_held_by_another_schedule_is_a_conflict
);
