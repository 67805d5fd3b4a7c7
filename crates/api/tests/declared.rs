//! Schedules declared by resources (the operator's ScheduledScans) on a real store: stored
//! under the resource's id in the named tenant, idempotent (a resync neither writes nor moves
//! the next run), rescheduled when the timing changes, rejected with the resource's field
//! names and nothing stored, moved when the tenant mapping changes, deleted with the resource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use scanplane_api::declared::{
    apply_declared_policy, apply_declared_registry, apply_declared_schedule, cancel_declared_scan,
    declared_scan_run, delete_declared_policy, delete_declared_registry, delete_declared_schedule,
    last_run_of_schedule, start_declared_scan,
};
use scanplane_core::annotations::ScanCadence;
use scanplane_core::declared::{run_id, DeclaredPolicy, DeclaredScan, DeclaredSchedule};
use scanplane_core::finding::{Finding, Severity};
use scanplane_core::scan::ScanStatus;
use scanplane_protocol::registry::{
    CatalogKind, DeclaredCadence, DeclaredRegistry, RegistryAuth, RegistrySpec, RepositorySpec,
};
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

fn declared_scan(generation: i64) -> DeclaredScan {
    DeclaredScan {
        id: run_id("scan-uid", generation),
        tenant: "team-a".into(),
        scanner: "tcp".into(),
        targets: vec!["127.0.0.1:9".into()],
        options_json: None,
    }
}

async fn a_declared_scan_starts_once_reports_counts_and_cancels(backend: Backend) {
    let state = common::state(backend).await;
    let d = declared_scan(1);
    let first = start_declared_scan(&state, &d).await.unwrap();
    assert_eq!(first.id, d.id);
    assert_eq!(first.status, ScanStatus::Queued);
    // A retried start (the status write after the first was lost) finds the same run.
    let again = start_declared_scan(&state, &d).await.unwrap();
    assert_eq!(again.id, first.id);
    let tenant = state.store.ensure_tenant("team-a").await.unwrap();
    let all = state
        .store
        .list_scans(
            Some(&tenant.id),
            &scanplane_store::ScanFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "one run, not two");

    let (run, counts) = declared_scan_run(&state, "team-a", &d.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, ScanStatus::Queued);
    assert_eq!(counts, None, "counts come once the run ended");
    assert!(
        declared_scan_run(&state, "other", &d.id)
            .await
            .unwrap()
            .is_none(),
        "tenant-scoped"
    );

    cancel_declared_scan(&state, "team-a", &d.id, "its Scan resource was deleted")
        .await
        .unwrap();
    let (run, counts) = declared_scan_run(&state, "team-a", &d.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, ScanStatus::Cancelled);
    assert_eq!(run.reason, "its Scan resource was deleted");
    assert_eq!(counts, Some(vec![]));
    // Cancelling an ended run, or one that is not there, is not an error.
    cancel_declared_scan(&state, "team-a", &d.id, "again")
        .await
        .unwrap();
    cancel_declared_scan(&state, "team-a", &run_id("scan-uid", 9), "none")
        .await
        .unwrap();
}

async fn severity_counts_are_per_scan(backend: Backend) {
    let state = common::state(backend).await;
    let d = declared_scan(1);
    let scan = start_declared_scan(&state, &d).await.unwrap();
    let finding =
        |rule: &str, sev: Severity| Finding::new("tcp", "127.0.0.1:9", rule, sev, rule, "port 9");
    state
        .store
        .insert_findings(
            &scan.tenant_id,
            &scan.id,
            "tcp",
            &[
                finding("a", Severity::High),
                finding("b", Severity::High),
                finding("c", Severity::Info),
            ],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let other = start_declared_scan(&state, &declared_scan(2))
        .await
        .unwrap();
    state
        .store
        .insert_findings(
            &other.tenant_id,
            &other.id,
            "tcp",
            &[finding("d", Severity::Critical)],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let mut counts = state.store.severity_counts(None, &scan.id).await.unwrap();
    counts.sort();
    assert_eq!(counts, [(Severity::High, 2), (Severity::Info, 1)]);
}

async fn a_bad_declared_scan_names_the_resource_field(backend: Backend) {
    let state = common::state(backend).await;
    let mut d = declared_scan(1);
    d.scanner = "nucle".into();
    let e = start_declared_scan(&state, &d).await.unwrap_err();
    assert!(e.message.starts_with("spec.scanner: "), "{}", e.message);
    let mut d = declared_scan(1);
    d.targets.clear();
    let e = start_declared_scan(&state, &d).await.unwrap_err();
    assert!(e.message.starts_with("spec.targets: "), "{}", e.message);
    assert!(
        state.store.scan(None, &d.id).await.unwrap().is_none(),
        "nothing stored"
    );
}

fn declared_registry() -> DeclaredRegistry {
    DeclaredRegistry {
        id: "0b6e0000-0000-4000-8000-0000000000aa".into(),
        tenant: "team-a".into(),
        spec: RegistrySpec {
            name: "k8s:team-a/ghcr".into(),
            url: "https://ghcr.example.test".into(),
            catalog: CatalogKind::None,
            insecure: false,
            ca_bundle: None,
            repositories: vec![RepositorySpec {
                name: "org/app".into(),
                match_conditions: vec![],
                match_operator: Default::default(),
            }],
            platforms: vec![],
        },
        auth: Some(RegistryAuth::Basic {
            username: "bot".into(),
            password: "s3cret".into(),
        }),
        discovery: Some(DeclaredCadence {
            every: Some("6h".into()),
            ..Default::default()
        }),
    }
}

async fn a_declared_registry_is_idempotent_and_keeps_its_discovery_timing(backend: Backend) {
    let state = common::state(backend).await;
    let d = declared_registry();
    let first = apply_declared_registry(&state, &d).await.unwrap();
    assert_eq!(first.id, d.id);
    let sid = first
        .discovery_schedule_id
        .clone()
        .expect("a discovery schedule");
    let schedule = state.store.schedule(None, &sid).await.unwrap().unwrap();
    let stored = state.store.registry(None, &d.id).await.unwrap().unwrap();

    // A resync writes nothing.
    let again = apply_declared_registry(&state, &d).await.unwrap();
    assert_eq!(again.updated_at, stored.updated_at);
    assert_eq!(
        state
            .store
            .schedule(None, &sid)
            .await
            .unwrap()
            .unwrap()
            .next_fire_at,
        schedule.next_fire_at
    );

    // A new URL: the definition and the schedule's target change, its next run does not.
    let mut moved = d.clone();
    moved.spec.url = "https://registry.example.test".into();
    let r = apply_declared_registry(&state, &moved).await.unwrap();
    assert!(r.definition.contains("registry.example.test"));
    let s = state.store.schedule(None, &sid).await.unwrap().unwrap();
    assert_eq!(s.targets, ["registry://registry.example.test"]);
    assert_eq!(s.next_fire_at, schedule.next_fire_at);

    // A new cadence re-arms the same schedule; no cadence removes it.
    let mut cron = moved.clone();
    cron.discovery = Some(DeclaredCadence {
        cron_exp: Some("0 3 * * *".into()),
        ..Default::default()
    });
    let r = apply_declared_registry(&state, &cron).await.unwrap();
    assert_eq!(
        r.discovery_schedule_id.as_deref(),
        Some(sid.as_str()),
        "the same schedule"
    );
    let mut none = cron.clone();
    none.discovery = None;
    let r = apply_declared_registry(&state, &none).await.unwrap();
    assert_eq!(r.discovery_schedule_id, None);
    assert!(state.store.schedule(None, &sid).await.unwrap().is_none());

    assert!(delete_declared_registry(&state, "team-a", &d.id)
        .await
        .unwrap());
    assert!(state.store.registry(None, &d.id).await.unwrap().is_none());
}

async fn a_bad_declared_registry_names_the_resource_field(backend: Backend) {
    let state = common::state(backend).await;
    let mut d = declared_registry();
    d.spec.url = "ftp://ghcr.example.test".into();
    let e = apply_declared_registry(&state, &d).await.unwrap_err();
    assert!(e.message.starts_with("spec.url: "), "{}", e.message);
    let mut d = declared_registry();
    d.spec.ca_bundle = Some("not a certificate".into());
    let e = apply_declared_registry(&state, &d).await.unwrap_err();
    assert!(e.message.starts_with("spec.caBundle: "), "{}", e.message);
    let mut d = declared_registry();
    d.discovery = Some(DeclaredCadence {
        every: Some("1s".into()),
        ..Default::default()
    });
    let e = apply_declared_registry(&state, &d).await.unwrap_err();
    assert!(
        e.message.starts_with("spec.discovery.every: "),
        "{}",
        e.message
    );
    assert!(
        state.store.registry(None, &d.id).await.unwrap().is_none(),
        "nothing stored"
    );
}

async fn the_last_run_of_a_schedule_is_its_newest_scan(backend: Backend) {
    let state = common::state(backend).await;
    let s = apply_declared_schedule(&state, &declared()).await.unwrap();
    assert!(last_run_of_schedule(&state, &s.tenant_id, &s.id)
        .await
        .unwrap()
        .is_none());
    let mut ids = Vec::new();
    for minute in 0..3 {
        let scan = state
            .store
            .create_scan(
                scanplane_store::NewScan {
                    tenant_id: s.tenant_id.clone(),
                    project_id: None,
                    schedule_id: Some(s.id.clone()),
                    fire_time: Some(chrono::Utc::now() + chrono::TimeDelta::minutes(minute)),
                    trigger: scanplane_core::scan::Trigger::Schedule,
                    scanner: "tcp".into(),
                    provider: None,
                    targets: vec!["127.0.0.1:9".into()],
                    billing: false,
                    options: "{}".into(),
                    scope_options: "{}".into(),
                    on_maintenance: scanplane_core::maintenance::WindowAction::Hold,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        ids.push(scan.id);
    }
    let last = last_run_of_schedule(&state, &s.tenant_id, &s.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&last.id, ids.last().unwrap());
}

fn declared_policy(cadence: &str, cluster: &str) -> DeclaredPolicy {
    DeclaredPolicy {
        tenant: "team-a".into(),
        name: "k8s:team-a/nightly".into(),
        entry_json: serde_json::json!({
            "name": "ignored", "enabled": true,
            "rules": [{"type": "schedule", "cadence": cadence, "clusters": {cluster: {}}}],
            "actions": [{"scan": "cluster_image_scanning"}]
        })
        .to_string(),
    }
}

async fn declared_policies_live_beside_the_apis_and_are_checked_alike(backend: Backend) {
    let state = common::state(backend).await;
    assert!(
        apply_declared_policy(&state, &declared_policy("0 0 * * *", "production"))
            .await
            .unwrap()
    );
    assert!(
        !apply_declared_policy(&state, &declared_policy("0 0 * * *", "production"))
            .await
            .unwrap(),
        "the same declaration changes nothing"
    );
    let tenant = state.store.ensure_tenant("team-a").await.unwrap();
    let stored = state.store.list_policies(Some(&tenant.id)).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].declared);
    assert!(
        stored[0]
            .document
            .contains("\"name\":\"k8s:team-a/nightly\""),
        "{}",
        stored[0].document
    );

    // A PUT of the API's set leaves the declared one alone.
    state
        .store
        .replace_policies(&tenant.id, &[], chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        state
            .store
            .list_policies(Some(&tenant.id))
            .await
            .unwrap()
            .len(),
        1
    );

    // Checked as a document is, errors in the resource's terms; nothing changes.
    let e = apply_declared_policy(&state, &declared_policy("every day", "production"))
        .await
        .unwrap_err();
    assert!(
        e.message.starts_with("spec.rules[0].cadence: "),
        "{}",
        e.message
    );
    let e = apply_declared_policy(&state, &declared_policy("0 0 * * *", "mars"))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("spec.rules[0].clusters.mars"),
        "{}",
        e.message
    );
    let doc = &state.store.list_policies(Some(&tenant.id)).await.unwrap()[0].document;
    assert!(
        doc.contains("0 0 * * *") && doc.contains("production"),
        "{doc}"
    );

    assert!(
        delete_declared_policy(&state, "team-a", "k8s:team-a/nightly")
            .await
            .unwrap()
    );
    assert!(state
        .store
        .list_policies(Some(&tenant.id))
        .await
        .unwrap()
        .is_empty());
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
    a_name_held_by_another_schedule_is_a_conflict,
    a_declared_scan_starts_once_reports_counts_and_cancels,
    severity_counts_are_per_scan,
    a_bad_declared_scan_names_the_resource_field,
    a_declared_registry_is_idempotent_and_keeps_its_discovery_timing,
    a_bad_declared_registry_names_the_resource_field,
    the_last_run_of_a_schedule_is_its_newest_scan,
    declared_policies_live_beside_the_apis_and_are_checked_alike
);
