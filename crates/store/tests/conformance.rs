//! The store conformance suite: every test runs against SQLite and against a real
//! PostgreSQL, with identical expectations.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use scanplane_core::admission::{Decision, Limits};
use scanplane_core::finding::{Finding, Severity};
use scanplane_core::maintenance::{MaintenanceWindow, Scope, WindowAction, WindowStart};
use scanplane_core::ratelimit::RateLimitPolicy;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_core::schedule::{plan_tick, Cadence, Schedule};
use scanplane_core::Timestamp;
use scanplane_store::testing::fresh_store;
use scanplane_store::{
    Backend, FindingFilter, NewScan, ScanChange, ScanFilter, Store, StoreError, TickOutcome,
};

fn t(h: u32, m: u32, s: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap()
}

fn new_scan(tenant: &str, trigger: Trigger) -> NewScan {
    NewScan {
        tenant_id: tenant.into(),
        project_id: None,
        schedule_id: None,
        fire_time: None,
        trigger,
        scanner: "tcp".into(),
        provider: None,
        targets: vec!["127.0.0.1:22".into(), "account://123".into()],
        billing: true,
        options: "{}".into(),
        scope_options: "{}".into(),
        on_maintenance: WindowAction::Hold,
    }
}

fn schedule(tenant: &str, id: &str, expr: &str, now: Timestamp) -> Schedule {
    scanplane_store::testing::new_schedule(tenant, id, Cadence::cron(expr, "UTC").unwrap(), now)
}

async fn tenants_and_tokens(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("team-a").await.unwrap();
    let again = store.ensure_tenant("team-a").await.unwrap();
    assert_eq!(a, again, "ensure_tenant is idempotent");
    let id = store.create_token(&a.id, "ci", "hash-1").await.unwrap();
    assert!(!id.is_empty());
    let owner = store.token_owner("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (owner.token_id.as_str(), owner.token_name.as_str()),
        (id.as_str(), "ci")
    );
    assert_eq!(owner.tenant, a);
    assert_eq!(owner.last_used_at, None);
    assert_eq!(store.token_owner("nope").await.unwrap(), None);

    // Use is recorded, at most once a minute.
    let t0 = chrono::DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
    store.touch_token(&id, t0).await.unwrap();
    store
        .touch_token(&id, t0 + chrono::Duration::seconds(30))
        .await
        .unwrap();
    let used = |o: Option<scanplane_store::TokenOwner>| o.unwrap().last_used_at;
    assert_eq!(used(store.token_owner("hash-1").await.unwrap()), Some(t0));
    store
        .touch_token(&id, t0 + chrono::Duration::seconds(61))
        .await
        .unwrap();
    assert_eq!(
        used(store.token_owner("hash-1").await.unwrap()),
        Some(t0 + chrono::Duration::seconds(61))
    );

    // Listing shows every token by tenant name; revoking refuses it at once.
    let b = store.ensure_tenant("team-b").await.unwrap();
    let other = store.create_token(&b.id, "deploy", "hash-2").await.unwrap();
    let all = store.list_tokens(None).await.unwrap();
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|t| (t.tenant.as_str(), t.name.as_str()))
        .collect();
    assert!(
        names.contains(&("team-a", "ci")) && names.contains(&("team-b", "deploy")),
        "{names:?}"
    );
    let only_b = store.list_tokens(Some("team-b")).await.unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].id, other);
    store.revoke_token(&other).await.unwrap();
    assert_eq!(store.token_owner("hash-2").await.unwrap(), None);
    assert!(matches!(
        store.revoke_token(&other).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.list_tokens(Some("team-b")).await.unwrap().is_empty());

    store.set_retention("team-b", Some(7)).await.unwrap();
    let tenants = store.list_tenants().await.unwrap();
    let b_info = tenants.iter().find(|t| t.tenant.name == "team-b").unwrap();
    assert_eq!(b_info.retention_days, Some(7));
    let a_info = tenants.iter().find(|t| t.tenant.name == "team-a").unwrap();
    assert_eq!(a_info.retention_days, None);
    assert!(matches!(
        store.create_token(&a.id, "dup", "hash-1").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(a));
}

async fn scans_are_tenant_scoped_and_paginated(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let b = store.ensure_tenant("b").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let s = store
            .create_scan(new_scan(&a.id, Trigger::OnDemand), t(1, 0, i))
            .await
            .unwrap();
        assert_eq!(s.status, ScanStatus::Queued);
        assert_eq!(s.accounts(), vec!["123".to_string()]);
        ids.push(s.id);
    }
    let other = store
        .create_scan(new_scan(&b.id, Trigger::Schedule), t(1, 0, 9))
        .await
        .unwrap();
    assert!(
        store.scan(Some(&a.id), &other.id).await.unwrap().is_none(),
        "another tenant's scan is invisible"
    );
    assert!(
        store.scan(None, &other.id).await.unwrap().is_some(),
        "the admin sees every tenant"
    );

    let page1 = store
        .list_scans(
            Some(&a.id),
            &ScanFilter {
                limit: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page1.len(), 3);
    assert_eq!(page1[0].id, ids[4], "newest first");
    let page2 = store
        .list_scans(
            Some(&a.id),
            &ScanFilter {
                limit: 3,
                after: Some(page1[2].id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[0].clone()]
    );

    let sched = store
        .list_scans(
            None,
            &ScanFilter {
                trigger: Some(Trigger::Schedule),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(sched.len(), 1);
    let range = store
        .list_scans(
            Some(&a.id),
            &ScanFilter {
                created_after: Some(t(1, 0, 1)),
                created_before: Some(t(1, 0, 3)),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(range.len(), 2);
}

async fn transitions_are_compare_and_set(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let s = store
        .create_scan(new_scan(&a.id, Trigger::OnDemand), t(1, 0, 0))
        .await
        .unwrap();
    let change = |r: &str| ScanChange {
        reason: r.into(),
        ..Default::default()
    };
    // Illegal: queued -> running.
    let err = store
        .transition(&s.id, ScanStatus::Running, &change("x"), t(1, 0, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Illegal(_)), "{err:?}");
    let unchanged = store.scan(None, &s.id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.status,
        ScanStatus::Queued,
        "a rejected transition changes nothing"
    );

    store
        .transition(&s.id, ScanStatus::Admitted, &change("admitted"), t(1, 0, 1))
        .await
        .unwrap();
    let dispatched = store
        .transition(
            &s.id,
            ScanStatus::Dispatched,
            &ScanChange {
                reason: "dispatched".into(),
                executor_ref: Some("pid-1".into()),
                report_token_hash: Some("tok".into()),
                new_attempt: true,
                ..Default::default()
            },
            t(1, 0, 2),
        )
        .await
        .unwrap();
    assert_eq!(dispatched.attempts, 1);
    assert_eq!(dispatched.executor_ref.as_deref(), Some("pid-1"));
    assert_eq!(
        store
            .scan_for_report_token("tok")
            .await
            .unwrap()
            .map(|s| s.id),
        Some(s.id.clone())
    );
    let running = store
        .transition(&s.id, ScanStatus::Running, &change("running"), t(1, 0, 3))
        .await
        .unwrap();
    assert_eq!(running.started_at, Some(t(1, 0, 3)));
    assert_eq!(store.slot_usage().await.unwrap().global, 1);

    // Two actors race to end the scan: exactly one wins.
    let (done_change, cancel_change) = (change("done"), change("cancelled"));
    let (r1, r2) = tokio::join!(
        store.transition(&s.id, ScanStatus::Succeeded, &done_change, t(1, 0, 9)),
        store.transition(&s.id, ScanStatus::Cancelled, &cancel_change, t(1, 0, 9)),
    );
    assert!(
        r1.is_ok() ^ r2.is_ok(),
        "exactly one terminal transition wins: {r1:?} {r2:?}"
    );
    let done = store.scan(None, &s.id).await.unwrap().unwrap();
    assert!(done.status.is_terminal());
    assert_eq!(done.finished_at, Some(t(1, 0, 9)));
    assert_eq!(done.duration(), Some(chrono::Duration::seconds(6)));
    assert_eq!(
        store.slot_usage().await.unwrap().global,
        0,
        "the slot is released by the terminal transition"
    );
    assert_eq!(
        store.scan_for_report_token("tok").await.unwrap(),
        None,
        "the report token expires with the scan"
    );
}

async fn admission_respects_limits_windows_and_rate_limits(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let b = store.ensure_tenant("b").await.unwrap();
    for i in 0..6 {
        store
            .create_scan(new_scan(&a.id, Trigger::Schedule), t(1, 0, i))
            .await
            .unwrap();
    }
    let b_scan = store
        .create_scan(new_scan(&b.id, Trigger::Schedule), t(1, 0, 30))
        .await
        .unwrap();
    let limits = Limits {
        global: Some(3),
        ..Default::default()
    };
    let decisions = store
        .admission_round(&limits, &[], 100, t(2, 0, 0))
        .await
        .unwrap();
    let admitted: Vec<&String> = decisions
        .iter()
        .filter(|(_, d)| *d == Decision::Admit)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(admitted.len(), 3);
    assert!(
        admitted.contains(&&b_scan.id),
        "round-robin: tenant b's only scan is not starved by tenant a"
    );
    assert_eq!(store.slot_usage().await.unwrap().global, 3);
    let waiting = store
        .list_scans(
            None,
            &ScanFilter {
                status: Some(ScanStatus::Queued),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(waiting.len(), 4);
    assert!(
        waiting
            .iter()
            .all(|s| s.reason.contains("MAX_CONCURRENT_JOBS")),
        "the wait reason is visible"
    );
    // A second round admits nothing more.
    let again = store
        .admission_round(&limits, &[], 100, t(2, 0, 1))
        .await
        .unwrap();
    assert!(again.iter().all(|(_, d)| *d != Decision::Admit));

    // A maintenance window holds the rest even when slots free up.
    let w = MaintenanceWindow {
        id: "w1".into(),
        tenant_id: a.id.clone(),
        admin: true,
        name: "nightly-freeze".into(),
        start: WindowStart::At(t(2, 0, 0)),
        duration: Duration::from_secs(3600),
        scope: Scope::Global,
        action: WindowAction::Hold,
        created_at: t(0, 0, 0),
    };
    store.create_window(&w).await.unwrap();
    let held = store
        .admission_round(&Limits::default(), &[], 100, t(2, 30, 0))
        .await
        .unwrap();
    assert!(held
        .iter()
        .all(|(_, d)| matches!(d, Decision::Wait(r) if r.contains("nightly-freeze"))));
    // Released when it ends.
    let released = store
        .admission_round(&Limits::default(), &[], 100, t(3, 0, 0))
        .await
        .unwrap();
    assert_eq!(
        released
            .iter()
            .filter(|(_, d)| *d == Decision::Admit)
            .count(),
        4
    );
    assert!(store.delete_window(None, "w1").await.unwrap());
}

async fn rate_limits_persist_across_rounds(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    for i in 0..4 {
        let mut s = new_scan(&a.id, Trigger::OnDemand);
        s.provider = Some("aws".into());
        store.create_scan(s, t(1, 0, i)).await.unwrap();
    }
    let policy = [RateLimitPolicy {
        provider: "aws".into(),
        count: 2,
        per: Duration::from_secs(60),
    }];
    let r1 = store
        .admission_round(&Limits::default(), &policy, 100, t(2, 0, 0))
        .await
        .unwrap();
    assert_eq!(r1.iter().filter(|(_, d)| *d == Decision::Admit).count(), 2);
    let r2 = store
        .admission_round(&Limits::default(), &policy, 100, t(2, 0, 1))
        .await
        .unwrap();
    assert_eq!(
        r2.iter().filter(|(_, d)| *d == Decision::Admit).count(),
        0,
        "bucket state is stored"
    );
    assert!(r2.iter().all(
        |(_, d)| matches!(d, Decision::Wait(r) if r.contains("rate limit for provider \"aws\""))
    ));
    let r3 = store
        .admission_round(&Limits::default(), &policy, 100, t(2, 0, 31))
        .await
        .unwrap();
    assert_eq!(
        r3.iter().filter(|(_, d)| *d == Decision::Admit).count(),
        1,
        "one token refilled after 30s"
    );
}

async fn schedules_crud_and_exactly_once_ticks(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let b = store.ensure_tenant("b").await.unwrap();
    let now = t(1, 0, 0);
    let s = schedule(&a.id, "sch-1", "*/10 * * * * *", now);
    store.create_schedule(&s).await.unwrap();
    assert_eq!(
        store.schedule(Some(&a.id), "sch-1").await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.schedule(Some(&b.id), "sch-1").await.unwrap(), None);
    assert_eq!(
        store
            .list_schedules(Some(&a.id), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.next_fire_at().await.unwrap(), Some(t(1, 0, 10)));
    assert!(store
        .due_schedules(t(1, 0, 9), 10)
        .await
        .unwrap()
        .is_empty());
    let due = store.due_schedules(t(1, 0, 10), 10).await.unwrap();
    assert_eq!(due.len(), 1);

    // Two replicas race on the same tick: one scan, one winner.
    let fire_now = t(1, 0, 10);
    let plan = plan_tick(&due[0], fire_now).unwrap().unwrap();
    let mk = || NewScan {
        schedule_id: Some("sch-1".into()),
        fire_time: plan.fire,
        ..new_scan(&a.id, Trigger::Schedule)
    };
    let (r1, r2) = tokio::join!(
        store.record_tick(&due[0], &plan, Some(mk()), fire_now),
        store.record_tick(&due[0], &plan, Some(mk()), fire_now),
    );
    let outcomes = [r1.unwrap(), r2.unwrap()];
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, TickOutcome::Recorded { scan: Some(_) }))
        .count();
    let lost = outcomes
        .iter()
        .filter(|o| **o == TickOutcome::AlreadyHandled)
        .count();
    assert_eq!((created, lost), (1, 1), "{outcomes:?}");
    let scans = store
        .list_scans(
            None,
            &ScanFilter {
                schedule_id: Some("sch-1".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].fire_time, Some(t(1, 0, 10)));
    let after = store.schedule(None, "sch-1").await.unwrap().unwrap();
    assert_eq!(after.next_tick, Some(t(1, 0, 20)));

    // A direct duplicate insert for the same tick is refused by the unique key.
    let dup = store.create_scan(mk(), fire_now).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let mut edited = after.clone();
    edited.name = "renamed".into();
    edited.enabled = false;
    edited.next_tick = None;
    edited.next_fire_at = None;
    store.update_schedule(&edited).await.unwrap();
    assert_eq!(
        store.schedule(None, "sch-1").await.unwrap().unwrap().name,
        "renamed"
    );
    assert_eq!(
        store.next_fire_at().await.unwrap(),
        None,
        "disabled schedules are never due"
    );
    assert!(
        !store.delete_schedule(Some(&b.id), "sch-1").await.unwrap(),
        "another tenant cannot delete it"
    );
    assert!(store.delete_schedule(Some(&a.id), "sch-1").await.unwrap());
    assert_eq!(store.schedule(None, "sch-1").await.unwrap(), None);
}

async fn findings_are_idempotent(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let s = store
        .create_scan(new_scan(&a.id, Trigger::OnDemand), t(1, 0, 0))
        .await
        .unwrap();
    let findings: Vec<Finding> = (0..2500)
        .map(|i| {
            Finding::new(
                "tcp",
                "127.0.0.1",
                "open-port",
                if i % 2 == 0 {
                    Severity::Info
                } else {
                    Severity::High
                },
                format!("port {i}"),
                format!("tcp/{i}"),
            )
        })
        .collect();
    assert_eq!(
        store
            .insert_findings(&a.id, &s.id, "tcp", &findings, t(1, 0, 1))
            .await
            .unwrap(),
        2500
    );
    // A retried chunk overlapping the first inserts nothing new.
    assert_eq!(
        store
            .insert_findings(&a.id, &s.id, "tcp", &findings[2000..], t(1, 0, 2))
            .await
            .unwrap(),
        0
    );
    let scan = store.scan(None, &s.id).await.unwrap().unwrap();
    assert_eq!(scan.findings_count, 2500);
    let page = store
        .list_findings(
            Some(&a.id),
            &s.id,
            &FindingFilter {
                severity: Some(Severity::High),
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 100);
    assert!(page.iter().all(|f| f.finding.severity == Severity::High));
    let other = store.ensure_tenant("b").await.unwrap();
    assert!(store
        .list_findings(
            Some(&other.id),
            &s.id,
            &FindingFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty());
}

async fn windows_crud(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let mut w = MaintenanceWindow {
        id: "w-cron".into(),
        tenant_id: a.id.clone(),
        admin: false,
        name: "weekly".into(),
        start: WindowStart::Cron(Cadence::cron("0 2 * * 0", "Europe/Berlin").unwrap()),
        duration: Duration::from_secs(5400),
        scope: Scope::Provider("aws".into()),
        action: WindowAction::Skip,
        created_at: t(0, 0, 0),
    };
    store.create_window(&w).await.unwrap();
    assert_eq!(
        store.window(Some(&a.id), "w-cron").await.unwrap(),
        Some(w.clone())
    );
    w.name = "weekly-2".into();
    store.update_window(&w, t(1, 0, 0)).await.unwrap();
    assert_eq!(
        store.list_windows(Some(&a.id)).await.unwrap(),
        vec![w.clone()]
    );
    assert!(store.list_windows(Some("nobody")).await.unwrap().is_empty());
    assert!(store.delete_window(Some(&a.id), "w-cron").await.unwrap());
    assert!(store.window(None, "w-cron").await.unwrap().is_none());
}

async fn concurrent_admission_never_exceeds_the_limit(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    for i in 0..40 {
        store
            .create_scan(
                new_scan(&a.id, Trigger::OnDemand),
                t(1, 0, 0) + chrono::Duration::milliseconds(i),
            )
            .await
            .unwrap();
    }
    let limits = Limits {
        global: Some(4),
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for k in 0..4 {
        let store = store.clone();
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            store
                .admission_round(&limits, &[], 100, t(2, 0, k))
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.slot_usage().await.unwrap().global,
        4,
        "rounds racing from several tasks still admit exactly the limit"
    );
}

/// Runs one complete scan of `tcp` over 127.0.0.1 reporting the given rule ids.
async fn run_with(
    store: &Arc<dyn Store>,
    tenant: &str,
    rules: &[&str],
    at: Timestamp,
    complete: bool,
) -> String {
    let scan = store
        .create_scan(new_scan(tenant, Trigger::Schedule), at)
        .await
        .unwrap();
    for st in [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ] {
        store
            .transition(
                &scan.id,
                st,
                &ScanChange {
                    reason: st.to_string(),
                    ..Default::default()
                },
                at,
            )
            .await
            .unwrap();
    }
    let findings: Vec<Finding> = rules
        .iter()
        .map(|r| {
            Finding::new(
                "tcp",
                "127.0.0.1",
                *r,
                Severity::High,
                format!("issue {r}"),
                "tcp/22",
            )
        })
        .collect();
    store
        .insert_findings(tenant, &scan.id, "tcp", &findings, at)
        .await
        .unwrap();
    let change = ScanChange {
        reason: "done".into(),
        ..Default::default()
    };
    if complete {
        store.complete_scan(&scan.id, &change, at).await.unwrap();
    } else {
        store
            .transition(&scan.id, ScanStatus::Failed, &change, at)
            .await
            .unwrap();
    }
    scan.id
}

fn rules_of(fs: &[scanplane_store::StoredFinding]) -> Vec<String> {
    let mut v: Vec<String> = fs.iter().map(|f| f.finding.rule_id.clone()).collect();
    v.sort();
    v
}

/// A diff is read in pages (keyset on the finding id): the pages of each list, at any page
/// size, are the list in id order with nothing lost or repeated, and the summary's counts
/// are the lists' lengths.
async fn diff_is_paged_by_keyset(store: Arc<dyn Store>) {
    use scanplane_store::DiffList;
    let a = store.ensure_tenant("a").await.unwrap();
    let tid = &a.id;
    run_with(&store, tid, &["r1", "r2", "r3"], t(1, 0, 0), true).await;
    run_with(&store, tid, &["r3", "r4", "r5"], t(2, 0, 0), true).await;
    let r3 = run_with(
        &store,
        tid,
        &["r1", "r2", "r5", "r6", "r7", "r8"],
        t(3, 0, 0),
        true,
    )
    .await;
    let full = store.diff(None, &r3).await.unwrap();
    assert_eq!(rules_of(&full.new), vec!["r6", "r7", "r8"]);
    assert_eq!(rules_of(&full.reopened), vec!["r1", "r2"]);
    assert_eq!(rules_of(&full.fixed), vec!["r3", "r4"]);
    assert_eq!(full.unchanged, 1);
    let summary = store.diff_summary(Some(tid), &r3).await.unwrap();
    assert_eq!(
        (
            summary.new,
            summary.reopened,
            summary.fixed,
            summary.unchanged
        ),
        (3, 2, 2, 1)
    );
    for limit in [1, 2, 1000] {
        for (list, want) in [
            (DiffList::New, &full.new),
            (DiffList::Reopened, &full.reopened),
            (DiffList::Fixed, &full.fixed),
        ] {
            let mut got: Vec<scanplane_store::StoredFinding> = Vec::new();
            loop {
                let after = got.last().map(|f| f.id.clone());
                let page = store
                    .diff_page(&summary, list, after.as_deref(), limit)
                    .await
                    .unwrap();
                assert!(page.len() <= limit as usize, "{list:?} limit {limit}");
                if page.is_empty() {
                    break;
                }
                got.extend(page);
            }
            assert!(
                got.windows(2).all(|w| w[0].id < w[1].id),
                "{list:?} in id order"
            );
            assert_eq!(&got, want, "{list:?} at page size {limit}");
        }
    }
    let other = store.ensure_tenant("b").await.unwrap();
    assert!(matches!(
        store.diff_summary(Some(&other.id), &r3).await,
        Err(StoreError::NotFound)
    ));
}

async fn identities_lifecycle_and_diff(store: Arc<dyn Store>) {
    use scanplane_core::identity::{FindingStatus, Triage};
    use scanplane_store::IdentityFilter;
    let a = store.ensure_tenant("a").await.unwrap();
    let tid = &a.id;
    let r1 = run_with(&store, tid, &["a", "b", "c"], t(1, 0, 0), true).await;
    let d = store.diff(None, &r1).await.unwrap();
    assert_eq!(
        (d.previous_scan_id.clone(), rules_of(&d.new).len()),
        (None, 3),
        "the first run is all new"
    );

    let r2 = run_with(&store, tid, &["a", "b"], t(2, 0, 0), true).await;
    let d = store.diff(None, &r2).await.unwrap();
    assert_eq!(d.previous_scan_id.as_deref(), Some(r1.as_str()));
    assert_eq!(
        rules_of(&d.fixed),
        vec!["c"],
        "exactly the one fixed in between"
    );
    assert!(d.new.is_empty() && d.reopened.is_empty());
    assert_eq!(d.unchanged, 2);
    let fixed = store
        .list_identities(
            Some(tid),
            &IdentityFilter {
                status: Some(FindingStatus::Fixed),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].finding.rule_id, "c");
    assert_eq!(fixed[0].fixed_by.as_deref(), Some(r2.as_str()));
    assert_eq!(fixed[0].introduced_by, r1);

    let r3 = run_with(&store, tid, &["a", "b"], t(3, 0, 0), true).await;
    let d = store.diff(None, &r3).await.unwrap();
    assert!(
        d.new.is_empty() && d.fixed.is_empty() && d.reopened.is_empty(),
        "an unchanged re-run shows nothing new"
    );
    assert_eq!(d.unchanged, 2);

    // A failed run that saw only "a" marks nothing fixed.
    run_with(&store, tid, &["a"], t(4, 0, 0), false).await;
    let open = store
        .list_identities(
            Some(tid),
            &IdentityFilter {
                status: Some(FindingStatus::Open),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 2, "a and b stay open after a failed run");

    // Triage survives re-runs; "c" comes back as reopened.
    let b = open.iter().find(|i| i.finding.rule_id == "b").unwrap();
    store
        .set_triage(
            Some(tid),
            &b.id,
            Triage::AcceptedRisk,
            Some("compensating control"),
            "alice",
            t(4, 30, 0),
        )
        .await
        .unwrap();
    let r5 = run_with(&store, tid, &["a", "b", "c"], t(5, 0, 0), true).await;
    let d = store.diff(None, &r5).await.unwrap();
    assert_eq!(
        d.previous_scan_id.as_deref(),
        Some(r3.as_str()),
        "failed runs are not comparable runs"
    );
    assert_eq!(rules_of(&d.reopened), vec!["c"]);
    assert!(d.new.is_empty() && d.fixed.is_empty());
    let b_after = store.identity(Some(tid), &b.id).await.unwrap().unwrap();
    assert_eq!(b_after.triage, Triage::AcceptedRisk);
    assert_eq!(
        b_after.triage_comment.as_deref(),
        Some("compensating control")
    );
    assert_eq!(b_after.triaged_by.as_deref(), Some("alice"));
    assert_eq!(b_after.last_scan, r5);
    let c = store
        .list_identities(
            Some(tid),
            &IdentityFilter {
                rule_id: Some("c".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(c[0].status, FindingStatus::Reopened);
    assert_eq!(c[0].fixed_by, None);

    // Filters and tenancy.
    let texts = store
        .list_identities(
            None,
            &IdentityFilter {
                text: Some("ISSUE B".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(texts.len(), 1);
    let other = store.ensure_tenant("b").await.unwrap();
    assert!(store
        .list_identities(
            Some(&other.id),
            &IdentityFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .identity(Some(&other.id), &b.id)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store
            .set_triage(
                Some(&other.id),
                &b.id,
                Triage::FalsePositive,
                None,
                "mallory",
                t(6, 0, 0)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let page1 = store
        .list_identities(
            Some(tid),
            &IdentityFilter {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let page2 = store
        .list_identities(
            Some(tid),
            &IdentityFilter {
                limit: 2,
                after: Some(page1[1].id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page1.len() + page2.len(), 3);
}

async fn retention_cleans_in_batches(store: Arc<dyn Store>) {
    use scanplane_core::identity::FindingStatus;
    use scanplane_store::IdentityFilter;
    let now = t(12, 0, 0);
    let day = chrono::Duration::days(1);
    let a = store.ensure_tenant("a").await.unwrap();
    let b = store.ensure_tenant("b").await.unwrap();
    store.set_retention("b", Some(1)).await.unwrap();
    assert!(matches!(
        store.set_retention("nobody", Some(1)).await,
        Err(StoreError::NotFound)
    ));
    // Tenant a (default 90 days): one run 100 days ago reporting x, y; one recent run with x.
    let old = run_with(&store, &a.id, &["x", "y"], now - day * 100, true).await;
    let recent = run_with(&store, &a.id, &["x"], now - day, true).await;
    // Tenant b (1 day): an ended scan two days old goes, a queued one stays.
    let b_old = run_with(&store, &b.id, &["z"], now - day * 2, true).await;
    let b_queued = store
        .create_scan(new_scan(&b.id, Trigger::OnDemand), now - day * 2)
        .await
        .unwrap()
        .id;
    let mut rounds = 0;
    while store
        .clean_expired_batch(now, Duration::from_secs(90 * 86_400), 1)
        .await
        .unwrap()
        > 0
    {
        rounds += 1;
        assert!(rounds < 100);
    }
    assert!(rounds >= 4, "work was done in small batches ({rounds})");
    assert!(store.scan(None, &old).await.unwrap().is_none());
    assert!(store.scan(None, &b_old).await.unwrap().is_none());
    assert!(store.scan(None, &recent).await.unwrap().is_some());
    assert!(
        store.scan(None, &b_queued).await.unwrap().is_some(),
        "only ended scans expire"
    );
    assert_eq!(
        store
            .list_findings(
                None,
                &recent,
                &FindingFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
    // y was fixed by the recent run, which is inside the retention: it stays; x is open.
    let ids = store
        .list_identities(
            Some(&a.id),
            &IdentityFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids
        .iter()
        .any(|i| i.status == FindingStatus::Open && i.finding.rule_id == "x"));
    // Much later, the fixed identity expires and the open one does not.
    while store
        .clean_expired_batch(now + day * 200, Duration::from_secs(90 * 86_400), 10)
        .await
        .unwrap()
        > 0
    {}
    let ids = store
        .list_identities(
            Some(&a.id),
            &IdentityFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].finding.rule_id, "x");
}

/// Creates a running scan of `tcp` for `tenant`.
async fn running_scan(store: &Arc<dyn Store>, tenant: &str, at: Timestamp) -> String {
    let scan = store
        .create_scan(new_scan(tenant, Trigger::OnDemand), at)
        .await
        .unwrap();
    for st in [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ] {
        let change = ScanChange {
            reason: st.to_string(),
            ..Default::default()
        };
        store.transition(&scan.id, st, &change, at).await.unwrap();
    }
    scan.id
}

async fn nul_in_scanner_output_is_replaced(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let scan = running_scan(&store, &a.id, t(1, 0, 0)).await;
    let finding = Finding::new(
        "tcp",
        "127.0.0.1",
        "rule\0",
        Severity::High,
        "title \0 with NUL",
        "tcp/22\0",
    )
    .with_detail("\0\0 evidence");
    let plain = Finding::new("tcp", "127.0.0.1", "ok", Severity::Low, "fine", "tcp/80");
    let inserted = store
        .insert_findings(&a.id, &scan, "tcp", &[finding, plain], t(1, 0, 1))
        .await
        .expect("a NUL in scanner output is stored, not refused");
    assert_eq!(inserted, 2, "the valid finding of the batch is kept too");
    let stored = store
        .list_findings(
            None,
            &scan,
            &FindingFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let f = stored
        .iter()
        .find(|f| f.finding.severity == Severity::High)
        .unwrap();
    assert_eq!(f.finding.title, "title \u{FFFD} with NUL");
    assert_eq!(f.finding.detail, "\u{FFFD}\u{FFFD} evidence");
    assert_eq!(f.finding.location, "tcp/22\u{FFFD}");
    assert_eq!(f.finding.rule_id, "rule\u{FFFD}");
    // The identity folded from it carries the same text.
    let change = ScanChange {
        reason: "done".into(),
        ..Default::default()
    };
    store
        .complete_scan(&scan, &change, t(1, 0, 2))
        .await
        .unwrap();
    let ids = store
        .list_identities(
            Some(&a.id),
            &scanplane_store::IdentityFilter {
                severity: Some(Severity::High),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids[0].finding.title, "title \u{FFFD} with NUL");
    // A NUL in a scan's error or reason is replaced the same way.
    let other = running_scan(&store, &a.id, t(2, 0, 0)).await;
    store
        .set_error(&other, "tool said \0", t(2, 0, 1))
        .await
        .unwrap();
    let failed = store
        .transition(
            &other,
            ScanStatus::Failed,
            &ScanChange {
                reason: "failed: \0".into(),
                ..Default::default()
            },
            t(2, 0, 2),
        )
        .await
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("tool said \u{FFFD}"));
    assert_eq!(failed.reason, "failed: \u{FFFD}");
}

async fn text_filter_matches_wildcards_literally(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let scan = running_scan(&store, &a.id, t(1, 0, 0)).await;
    let titles = ["100% sure", "snake_case", "back\\slash", "Plain words"];
    let findings: Vec<Finding> = titles
        .iter()
        .enumerate()
        .map(|(i, title)| {
            Finding::new(
                "tcp",
                "127.0.0.1",
                format!("r{i}"),
                Severity::High,
                *title,
                "tcp/1",
            )
        })
        .collect();
    store
        .insert_findings(&a.id, &scan, "tcp", &findings, t(1, 0, 1))
        .await
        .unwrap();
    let change = ScanChange {
        reason: "done".into(),
        ..Default::default()
    };
    store
        .complete_scan(&scan, &change, t(1, 0, 2))
        .await
        .unwrap();
    let matching = |text: &'static str| {
        let store = store.clone();
        async move {
            let found = store
                .list_identities(
                    None,
                    &scanplane_store::IdentityFilter {
                        text: Some(text.into()),
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut titles: Vec<String> = found.into_iter().map(|i| i.finding.title).collect();
            titles.sort();
            titles
        }
    };
    assert_eq!(matching("%").await, vec!["100% sure"], "% is a character");
    assert_eq!(matching("_").await, vec!["snake_case"], "_ is a character");
    assert_eq!(
        matching("\\").await,
        vec!["back\\slash"],
        "\\ is a character"
    );
    assert_eq!(
        matching("E_C").await,
        vec!["snake_case"],
        "still case-insensitive"
    );
    assert_eq!(matching("0%").await, vec!["100% sure"]);
    assert!(
        matching("e%w").await.is_empty(),
        "no wildcard inside either"
    );
    assert_eq!(matching("words").await, vec!["Plain words"]);
}

async fn long_error_text_is_truncated(store: Arc<dyn Store>) {
    let a = store.ensure_tenant("a").await.unwrap();
    let scan = running_scan(&store, &a.id, t(1, 0, 0)).await;
    let huge = "x".repeat(100_000);
    store.set_error(&scan, &huge, t(1, 0, 1)).await.unwrap();
    let stored = store.scan(None, &scan).await.unwrap().unwrap();
    let error = stored.error.unwrap();
    assert_eq!(
        error,
        format!("{}… [truncated 95904 bytes]", "x".repeat(4096))
    );

    // Cut at a character boundary: 3-byte characters, 4096 is not a multiple of 3.
    let euros = "€".repeat(40_000);
    let failed = store
        .transition(
            &scan,
            ScanStatus::Failed,
            &ScanChange {
                reason: euros.clone(),
                error: Some(euros),
                ..Default::default()
            },
            t(1, 0, 2),
        )
        .await
        .unwrap();
    let expected = format!("{}… [truncated {} bytes]", "€".repeat(1365), 120_000 - 4095);
    assert_eq!(failed.error.as_deref(), Some(expected.as_str()));
    assert_eq!(failed.reason, expected);
    // Text within the bound is stored as given.
    let short = running_scan(&store, &a.id, t(2, 0, 0)).await;
    let exact = "y".repeat(4096);
    store.set_error(&short, &exact, t(2, 0, 1)).await.unwrap();
    let stored = store.scan(None, &short).await.unwrap().unwrap();
    assert_eq!(stored.error.as_deref(), Some(exact.as_str()));
}

async fn rejections_accumulate_and_keep_the_first_reasons(store: Arc<dyn Store>) {
    let t = store.ensure_tenant("a").await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let id = running_scan(&store, &t.id, now).await;
    let reasons: Vec<String> = (1..=4).map(|i| format!("line {i}: bad")).collect();
    store
        .record_rejections(&id, 4, &reasons, None, now)
        .await
        .unwrap();
    let more: Vec<String> = (5..=7).map(|i| format!("line {i}: bad\u{0}")).collect();
    store
        .record_rejections(&id, 10, &more, None, now)
        .await
        .unwrap();
    let scan = store.scan(None, &id).await.unwrap().unwrap();
    assert_eq!(scan.findings_rejected, 14);
    assert_eq!(scan.rejections.len(), 5, "{:?}", scan.rejections);
    assert_eq!(scan.rejections[0], "line 1: bad");
    assert_eq!(
        scan.rejections[4], "line 5: bad\u{fffd}",
        "NUL replaced on both backends"
    );
    assert!(matches!(
        store
            .record_rejections("no-such-scan", 1, &[], None, now)
            .await,
        Err(StoreError::NotFound)
    ));
    // A numbered chunk sent twice (its answer was lost) counts once; the same number in
    // another attempt is another chunk.
    let chunk = |attempt, chunk| Some(scanplane_store::ReportChunk { attempt, chunk });
    for _ in 0..2 {
        store
            .record_rejections(&id, 3, &[], chunk(1, 7), now)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .scan(None, &id)
            .await
            .unwrap()
            .unwrap()
            .findings_rejected,
        17
    );
    store
        .record_rejections(&id, 1, &[], chunk(2, 7), now)
        .await
        .unwrap();
    assert_eq!(
        store
            .scan(None, &id)
            .await
            .unwrap()
            .unwrap()
            .findings_rejected,
        18
    );
    assert!(matches!(
        store
            .record_rejections("no-such-scan", 1, &[], chunk(1, 1), now)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn readiness(store: Arc<dyn Store>) {
    store.check_ready().await.unwrap();
}

macro_rules! conformance {
    ($backend:ident, $b:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let store: std::sync::Arc<dyn super::Store> = std::sync::Arc::new(super::fresh_store($b).await);
                    super::$test(store).await;
                }
            )*
        }
    };
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        conformance!(sqlite, super::Backend::Sqlite, [$($test),*]);
        conformance!(postgres, super::Backend::Postgres, [$($test),*]);
    };
}

both!(
    readiness,
    tenants_and_tokens,
    scans_are_tenant_scoped_and_paginated,
    transitions_are_compare_and_set,
    admission_respects_limits_windows_and_rate_limits,
    rate_limits_persist_across_rounds,
    schedules_crud_and_exactly_once_ticks,
    findings_are_idempotent,
    windows_crud,
    concurrent_admission_never_exceeds_the_limit,
    identities_lifecycle_and_diff,
    diff_is_paged_by_keyset,
    retention_cleans_in_batches,
    nul_in_scanner_output_is_replaced,
    text_filter_matches_wildcards_literally,
    long_error_text_is_truncated,
    rejections_accumulate_and_keep_the_first_reasons,
    registry_pipeline,
    advisory_imports_are_versioned,
    vulnerability_reports_fold_identities_and_resume_rematches,
);

fn image(repository: &str, tag: &str, digest: &str) -> scanplane_store::NewImage {
    scanplane_store::NewImage {
        repository: repository.into(),
        tag: tag.into(),
        platform: "linux/amd64".into(),
        digest: digest.into(),
        index_digest: None,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config_digest: format!("{digest}-config"),
        layers: "[]".into(),
        size: 42,
        created: None,
    }
}

async fn registry_pipeline(store: Arc<dyn Store>) {
    use scanplane_store::{ImageFilter, NewSbom, PackageQuery, RegistryRecord, SbomPackage};
    let tenant = store.ensure_tenant("images").await.unwrap();
    let every = Cadence::every(Duration::from_secs(6 * 3600), t(1, 0, 0)).unwrap();
    let sched = scanplane_store::testing::new_schedule(&tenant.id, "sched-reg", every, t(1, 0, 0));
    let reg = RegistryRecord {
        id: "reg-1".into(),
        tenant_id: tenant.id.clone(),
        name: "local".into(),
        definition: r#"{"url":"http://127.0.0.1:5000"}"#.into(),
        auth: Some(r#"{"username":"u","password":"p"}"#.into()),
        discovery_schedule_id: Some(sched.id.clone()),
        scan_schedule_id: None,
        created_at: t(1, 0, 0),
        updated_at: t(1, 0, 0),
    };
    store
        .create_registry(&reg, std::slice::from_ref(&sched))
        .await
        .unwrap();
    let dup = RegistryRecord {
        id: "reg-2".into(),
        ..reg.clone()
    };
    assert!(matches!(
        store.create_registry(&dup, &[]).await,
        Err(StoreError::Conflict(m)) if m.contains("local")
    ));
    assert_eq!(
        store.registry(Some(&tenant.id), "reg-1").await.unwrap(),
        Some(reg.clone())
    );
    assert_eq!(store.registry(Some("other"), "reg-1").await.unwrap(), None);
    let stored_sched = store.schedule(None, &sched.id).await.unwrap().unwrap();
    assert_eq!(
        stored_sched.cadence, sched.cadence,
        "an interval cadence round-trips"
    );

    // 100 tags over 10 digests, and one more repository sharing a digest.
    let first = running_scan(&store, &tenant.id, t(2, 0, 0)).await;
    let first = store.scan(None, &first).await.unwrap().unwrap();
    let mut images: Vec<_> = (0..100)
        .map(|i| image("app", &format!("t{i}"), &format!("sha256:d{}", i % 10)))
        .collect();
    images.push(image("other", "latest", "sha256:d0"));
    assert_eq!(
        store
            .record_images(&first, "reg-1", &images, t(2, 0, 1))
            .await
            .unwrap(),
        101
    );
    let sbom_scan = |digest: &str, repository: &str| NewScan {
        scanner: "sbom".into(),
        trigger: Trigger::Pipeline,
        targets: vec![format!("image://127.0.0.1:5000/{repository}@{digest}")],
        ..new_scan(&tenant.id, Trigger::Pipeline)
    };
    let change = ScanChange {
        reason: "done".into(),
        ..Default::default()
    };
    let (done, outcome) = store
        .complete_discovery(
            &first,
            "reg-1",
            &[],
            Some("{}"),
            &change,
            &sbom_scan,
            t(2, 0, 2),
        )
        .await
        .unwrap();
    assert_eq!(done.status, ScanStatus::Succeeded);
    assert_eq!((outcome.images_seen, outcome.images_removed), (101, 0));
    assert_eq!(
        outcome.sboms_queued.len(),
        10,
        "one SBOM generation per digest"
    );

    // A later discovery sees half the tags: the rest are removed; nothing is queued twice.
    let second = running_scan(&store, &tenant.id, t(3, 0, 0)).await;
    let second = store.scan(None, &second).await.unwrap().unwrap();
    store
        .record_images(&second, "reg-1", &images[..50], t(3, 0, 1))
        .await
        .unwrap();
    let (_, outcome) = store
        .complete_discovery(&second, "reg-1", &[], None, &change, &sbom_scan, t(3, 0, 2))
        .await
        .unwrap();
    assert_eq!((outcome.images_seen, outcome.images_removed), (50, 51));
    assert!(
        outcome.sboms_queued.is_empty(),
        "generations are pending already"
    );
    let live = |f: ImageFilter| {
        let store = store.clone();
        async move {
            store
                .list_images(None, &ImageFilter { limit: 500, ..f })
                .await
                .unwrap()
        }
    };
    assert_eq!(live(ImageFilter::default()).await.len(), 50);
    assert_eq!(
        live(ImageFilter {
            include_removed: true,
            ..Default::default()
        })
        .await
        .len(),
        101
    );
    let by_digest = live(ImageFilter {
        digest: Some("sha256:d3".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_digest.len(), 5);
    assert!(by_digest.iter().all(|i| i.sbom_id.is_none()));

    // One SBOM per digest: the first stays.
    let gen = store
        .scan(None, &outcome_first_sbom(&store, &tenant.id).await)
        .await
        .unwrap()
        .unwrap();
    let doc = br#"{"spdxVersion":"SPDX-2.3","name":"x"}"#.to_vec();
    let sbom = NewSbom {
        digest: "sha256:d3".into(),
        format: "spdx-json".into(),
        generator: "trivy".into(),
        document: doc.clone(),
        os: Some("alpine 3.19.1".into()),
        packages: vec![SbomPackage {
            name: "libcrypto3".into(),
            version: Some("3.1.4-r5".into()),
            purl: Some("pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1".into()),
            ecosystem: Some("apk".into()),
            source_name: Some("openssl".into()),
            ..Default::default()
        }],
    };
    assert!(store.store_sbom(&gen, &sbom, t(4, 0, 0)).await.unwrap());
    assert!(!store.store_sbom(&gen, &sbom, t(4, 0, 1)).await.unwrap());
    let (info, back) = store.sbom(&tenant.id, "sha256:d3").await.unwrap().unwrap();
    assert_eq!(
        (back, info.package_count, info.document_bytes),
        (doc.clone(), 1, doc.len() as u64)
    );
    assert_eq!(store.sbom("other-tenant", "sha256:d3").await.unwrap(), None);
    let with = live(ImageFilter {
        digest: Some("sha256:d3".into()),
        ..Default::default()
    })
    .await;
    assert!(with
        .iter()
        .all(|i| i.sbom_id.as_deref() == Some(info.id.as_str())));
    for purl in [
        "pkg:apk/alpine/libcrypto3",
        "pkg:apk/alpine/libcrypto3@3.1.4-r5",
        "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1",
    ] {
        let q = PackageQuery {
            purl: Some(purl.into()),
            limit: 10,
            ..Default::default()
        };
        let hits = store.find_packages(Some(&tenant.id), &q).await.unwrap();
        assert_eq!(hits.len(), 1, "{purl}");
        assert_eq!(hits[0].digest, "sha256:d3");
    }
    let q = PackageQuery {
        purl: Some("pkg:apk/alpine/libcrypto3@3.0.0".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(store
        .find_packages(Some(&tenant.id), &q)
        .await
        .unwrap()
        .is_empty());
    let q = PackageQuery {
        name: Some("libcrypto3".into()),
        version: Some("3.1.4-r5".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.find_packages(None, &q).await.unwrap().len(), 1);
    assert!(store
        .find_packages(Some("other"), &q)
        .await
        .unwrap()
        .is_empty());

    assert_eq!(store.discoveries("reg-1", 10).await.unwrap().len(), 2);
    // Editing drops the schedule; deleting removes images and keeps SBOMs.
    let edited = RegistryRecord {
        discovery_schedule_id: None,
        ..reg.clone()
    };
    store.update_registry(&edited, &[]).await.unwrap();
    assert_eq!(store.schedule(None, &sched.id).await.unwrap(), None);
    assert!(store
        .delete_registry(Some(&tenant.id), "reg-1")
        .await
        .unwrap());
    assert!(!store
        .delete_registry(Some(&tenant.id), "reg-1")
        .await
        .unwrap());
    assert!(live(ImageFilter {
        include_removed: true,
        ..Default::default()
    })
    .await
    .is_empty());
    assert!(store.sbom(&tenant.id, "sha256:d3").await.unwrap().is_some());
}

/// Any one of the SBOM generations the first discovery queued.
async fn outcome_first_sbom(store: &Arc<dyn Store>, tenant: &str) -> String {
    let scans = store
        .list_scans(
            Some(tenant),
            &ScanFilter {
                scanner: Some("sbom".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(scans.len(), 10);
    assert!(scans.iter().all(|s| s.trigger == Trigger::Pipeline));
    scans[0].id.clone()
}

fn advisory(
    id: &str,
    modified: &str,
    keys: &[(&str, &str)],
    aliases: &[&str],
) -> scanplane_store::NewAdvisory {
    scanplane_store::NewAdvisory {
        id: id.into(),
        modified: modified.into(),
        withdrawn: None,
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        document: format!(r#"{{"id":"{id}","modified":"{modified}"}}"#).into_bytes(),
        keys: keys
            .iter()
            .map(|(e, n)| (e.to_string(), n.to_string()))
            .collect(),
    }
}

/// Imports record what they changed; re-importing the same records changes nothing; a
/// modified advisory's old and new keys both count as changed; lookups by id and alias; the
/// SBOMs with a package of a changed key are found by index.
async fn advisory_imports_are_versioned(store: Arc<dyn Store>) {
    use scanplane_store::{NewSbom, SbomPackage, StoreError};
    let first = store.begin_import("test://feed", t(1, 0, 0)).await.unwrap();
    let batch = vec![
        advisory(
            "ALPINE-1",
            "2024-01-01T00:00:00Z",
            &[("Alpine", "openssl")],
            &["CVE-2024-1"],
        ),
        advisory(
            "DEBIAN-1",
            "2024-01-01T00:00:00Z",
            &[("Debian", "openssl"), ("Debian", "openssl3")],
            &["CVE-2024-1"],
        ),
        advisory(
            "GHSA-1",
            "2024-01-01T00:00:00Z",
            &[("npm", "left-pad")],
            &[],
        ),
    ];
    let counts = store
        .import_advisories(&first, &batch, t(1, 0, 1))
        .await
        .unwrap();
    assert_eq!((counts.added, counts.modified, counts.unchanged), (3, 0, 0));
    let done = store
        .finish_import(&first, 1, &["bad.json: not JSON".into()], t(1, 0, 2))
        .await
        .unwrap();
    assert_eq!((done.records, done.rejected, done.changed_keys), (3, 1, 4));
    assert_eq!(done.rejections, ["bad.json: not JSON"]);
    assert!(done.finished_at.is_some());
    // A finished import takes no more records, and the refused batch leaves nothing behind.
    let late = store
        .import_advisories(
            &first,
            &[advisory("LATE-1", "x", &[("npm", "x")], &[])],
            t(1, 0, 3),
        )
        .await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert!(store.advisory("LATE-1").await.unwrap().is_empty());

    // The same feed again: unchanged, no key changed.
    let second = store.begin_import("test://feed", t(2, 0, 0)).await.unwrap();
    let counts = store
        .import_advisories(&second, &batch, t(2, 0, 1))
        .await
        .unwrap();
    assert_eq!((counts.added, counts.modified, counts.unchanged), (0, 0, 3));
    assert_eq!(
        store
            .finish_import(&second, 0, &[], t(2, 0, 2))
            .await
            .unwrap()
            .changed_keys,
        0
    );

    // A corrected advisory moves from openssl3 to libssl; another is withdrawn.
    let third = store.begin_import("upload", t(3, 0, 0)).await.unwrap();
    let mut withdrawn = advisory(
        "GHSA-1",
        "2024-02-01T00:00:00Z",
        &[("npm", "left-pad")],
        &[],
    );
    withdrawn.withdrawn = Some("2024-02-01T00:00:00Z".into());
    let changed = vec![
        advisory(
            "DEBIAN-1",
            "2024-02-01T00:00:00Z",
            &[("Debian", "openssl"), ("Debian", "libssl")],
            &["CVE-2024-1"],
        ),
        withdrawn,
    ];
    let counts = store
        .import_advisories(&third, &changed, t(3, 0, 1))
        .await
        .unwrap();
    assert_eq!((counts.added, counts.modified, counts.withdrawn), (0, 2, 1));
    store
        .finish_import(&third, 0, &[], t(3, 0, 2))
        .await
        .unwrap();
    let keys = store.import_keys(&third, None, 100).await.unwrap();
    let want: Vec<(String, String)> = [
        ("Debian", "libssl"),
        ("Debian", "openssl"),
        ("Debian", "openssl3"),
        ("npm", "left-pad"),
    ]
    .iter()
    .map(|(e, n)| (e.to_string(), n.to_string()))
    .collect();
    assert_eq!(keys, want, "old and new keys of what changed");
    let paged = store
        .import_keys(&third, Some(&want[1]), 100)
        .await
        .unwrap();
    assert_eq!(paged, want[2..].to_vec());

    // Lookup by id and by alias.
    let by_alias = store.advisory("CVE-2024-1").await.unwrap();
    let ids: Vec<&str> = by_alias.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["ALPINE-1", "DEBIAN-1"]);
    let one = store.advisory("GHSA-1").await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].withdrawn.as_deref(), Some("2024-02-01T00:00:00Z"));
    assert!(String::from_utf8(one[0].document.clone())
        .unwrap()
        .contains("2024-02-01"));
    let keys = [
        ("Debian".to_string(), "libssl".to_string()),
        ("Alpine".to_string(), "openssl".to_string()),
    ];
    let versions = store.advisory_versions_for(&keys).await.unwrap();
    let ids: Vec<&str> = versions.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["ALPINE-1", "DEBIAN-1"]);
    let wanted: Vec<String> = versions.iter().map(|(id, _)| id.clone()).collect();
    let fetched = store.advisories_by_id(&wanted).await.unwrap();
    let fetched: Vec<(&str, &str)> = fetched
        .iter()
        .map(|a| (a.id.as_str(), a.sha256.as_str()))
        .collect();
    let versions: Vec<(&str, &str)> = versions
        .iter()
        .map(|(id, sha)| (id.as_str(), sha.as_str()))
        .collect();
    assert_eq!(fetched, versions, "the same documents, by id");
    assert!(store
        .advisories_by_id(&["NOT-STORED".to_string()])
        .await
        .unwrap()
        .is_empty());

    // SBOMs by the keys of their packages.
    let tenant = store.ensure_tenant("vulns").await.unwrap();
    let scan_id = running_scan(&store, &tenant.id, t(4, 0, 0)).await;
    let scan = store.scan(None, &scan_id).await.unwrap().unwrap();
    for (digest, key) in [
        ("sha256:a1", ("Alpine", "openssl")),
        ("sha256:b2", ("npm", "lodash")),
    ] {
        let sbom = NewSbom {
            digest: digest.into(),
            format: "spdx-json".into(),
            generator: "trivy".into(),
            document: b"{}".to_vec(),
            os: None,
            packages: vec![SbomPackage {
                name: key.1.into(),
                match_key: Some((key.0.into(), key.1.into())),
                ..Default::default()
            }],
        };
        assert!(store.store_sbom(&scan, &sbom, t(4, 0, 1)).await.unwrap());
    }
    let affected = store
        .sboms_with_keys(
            &[
                ("Alpine".into(), "openssl".into()),
                ("Debian".into(), "openssl".into()),
            ],
            None,
            10,
        )
        .await
        .unwrap();
    let digests: Vec<&str> = affected.iter().map(|a| a.digest.as_str()).collect();
    assert_eq!(digests, ["sha256:a1"]);
    assert_eq!(affected[0].tenant_id, tenant.id);
    let after = store
        .sboms_with_keys(
            &[("Alpine".into(), "openssl".into())],
            Some(&affected[0].sbom_id),
            10,
        )
        .await
        .unwrap();
    assert!(after.is_empty());
    // The matcher reads packages from the index: all of them, or those of some keys.
    let ids = [affected[0].sbom_id.clone()];
    let all = store.sbom_packages(&ids, None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].digest, "sha256:a1");
    assert_eq!(all[0].package.name, "openssl");
    let of_key = store
        .sbom_packages(&ids, Some(&[("Alpine".into(), "openssl".into())]))
        .await
        .unwrap();
    assert_eq!(of_key, all);
    assert!(store
        .sbom_packages(&ids, Some(&[("npm".into(), "lodash".into())]))
        .await
        .unwrap()
        .is_empty());
    let imports = store.advisory_imports(10).await.unwrap();
    assert_eq!(imports.len(), 3);
    assert_eq!(imports[0].id, third, "newest first");

    // Feed checks: one claim per due time, whoever asks; validators kept between checks.
    let feed = "https://feeds.example/osv/all.zip";
    let first = store
        .claim_feed_check(feed, t(6, 0, 0), t(5, 0, 0))
        .await
        .unwrap()
        .expect("a new feed is due");
    assert_eq!((first.source.as_str(), first.etag.as_deref()), (feed, None));
    assert!(
        store
            .claim_feed_check(feed, t(6, 0, 0), t(5, 0, 0))
            .await
            .unwrap()
            .is_none(),
        "a second replica asking at the same time gets nothing"
    );
    let checked = scanplane_store::FeedState {
        etag: Some("\"v1\"".into()),
        checked_at: Some(t(5, 0, 0)),
        status: Some("imported".into()),
        import_id: Some(third.clone()),
        ..first
    };
    store.record_feed_check(&checked, t(6, 0, 0)).await.unwrap();
    assert!(store
        .claim_feed_check(feed, t(7, 0, 0), t(5, 30, 0))
        .await
        .unwrap()
        .is_none());
    let again = store
        .claim_feed_check(feed, t(7, 0, 0), t(6, 0, 0))
        .await
        .unwrap()
        .expect("due again");
    assert_eq!(again, checked);
    assert_eq!(store.feeds().await.unwrap(), vec![checked]);
}

fn vuln_finding(digest: &str, id: &str) -> scanplane_core::finding::Finding {
    scanplane_core::finding::Finding {
        target: format!("image://{digest}"),
        rule_id: id.into(),
        severity: scanplane_core::finding::Severity::High,
        title: format!("{id} in openssl"),
        location: "pkg:apk/alpine/libssl3@3.1.4-r5".into(),
        detail: String::new(),
        fingerprint: format!("{digest}|libssl3|{id}"),
    }
}

/// A report is one succeeded run recorded in one transaction; successive reports of one
/// SBOM are comparable (new and fixed counted); a rematch's cursor and counts advance with
/// each report it records.
async fn vulnerability_reports_fold_identities_and_resume_rematches(store: Arc<dyn Store>) {
    use scanplane_core::identity::FindingStatus;
    use scanplane_store::{IdentityFilter, NewSbom, VulnerabilityReport};
    let tenant = store.ensure_tenant("vuln-reports").await.unwrap();
    let scan_id = running_scan(&store, &tenant.id, t(1, 0, 0)).await;
    let gen = store.scan(None, &scan_id).await.unwrap().unwrap();
    let sbom = NewSbom {
        digest: "sha256:ee".into(),
        format: "spdx-json".into(),
        generator: "trivy".into(),
        document: b"{}".to_vec(),
        os: None,
        packages: vec![],
    };
    assert!(store.store_sbom(&gen, &sbom, t(1, 0, 1)).await.unwrap());
    let unmatched = store.unmatched_sboms(10).await.unwrap();
    assert_eq!(unmatched.len(), 1);
    let sbom_id = unmatched[0].sbom_id.clone();

    let report = |findings: Vec<scanplane_core::finding::Finding>| VulnerabilityReport {
        sbom_id: sbom_id.clone(),
        scan: NewScan {
            scanner: "vulnerabilities".into(),
            trigger: Trigger::Pipeline,
            targets: vec!["image://sha256:ee".into()],
            billing: false,
            ..new_scan(&tenant.id, Trigger::Pipeline)
        },
        findings,
        reason: "succeeded: 2 vulnerabilities".into(),
    };
    let first = store
        .record_vulnerability_reports(
            &[report(vec![
                vuln_finding("sha256:ee", "CVE-1"),
                vuln_finding("sha256:ee", "CVE-2"),
            ])],
            None,
            t(2, 0, 0),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!((first.new, first.fixed), (2, 0));
    assert_eq!(first.scan.status, ScanStatus::Succeeded);
    assert_eq!(first.scan.findings_count, 2);
    assert!(
        store.unmatched_sboms(10).await.unwrap().is_empty(),
        "matched in the same transaction"
    );
    let latest = store
        .latest_report(&tenant.id, "vulnerabilities", "image://sha256:ee")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, first.scan.id);

    // An import corrects CVE-2 away: its rematch records one fix and advances.
    let import = store.begin_import("upload", t(3, 0, 0)).await.unwrap();
    store
        .finish_import(&import, 0, &[], t(3, 0, 1))
        .await
        .unwrap();
    assert_eq!(
        store.pending_rematches(10).await.unwrap(),
        vec![(import.clone(), None)]
    );
    let step = scanplane_store::RematchStep {
        import_id: import.clone(),
        cursor: sbom_id.clone(),
        considered: 1,
    };
    let second = store
        .record_vulnerability_reports(
            &[report(vec![vuln_finding("sha256:ee", "CVE-1")])],
            Some(&step),
            t(3, 0, 2),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!((second.new, second.fixed), (0, 1));
    assert_eq!(
        store.pending_rematches(10).await.unwrap(),
        vec![(import.clone(), Some(sbom_id.clone()))],
        "the cursor moved"
    );
    // The same report again (a rematch resumed after a crash): nothing new, nothing fixed.
    let third = store
        .record_vulnerability_reports(
            &[report(vec![vuln_finding("sha256:ee", "CVE-1")])],
            Some(&step),
            t(3, 0, 3),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!((third.new, third.fixed), (0, 0));
    // What the matcher compares a fresh match with: the live findings of the SBOM's scope.
    let scope = scanplane_core::scan::scope_key(
        &tenant.id,
        "vulnerabilities",
        &["image://sha256:ee".to_string()],
        "{}",
    );
    let at = ["pkg:apk/alpine/libssl3@3.1.4-r5".to_string()];
    assert_eq!(
        store
            .live_findings(std::slice::from_ref(&scope), Some(&at))
            .await
            .unwrap(),
        store
            .live_findings(std::slice::from_ref(&scope), None)
            .await
            .unwrap()
    );
    assert!(store
        .live_findings(
            std::slice::from_ref(&scope),
            Some(&["pkg:npm/other@1".to_string()])
        )
        .await
        .unwrap()
        .is_empty());
    let live = store
        .live_findings(std::slice::from_ref(&scope), None)
        .await
        .unwrap();
    let live: Vec<(&str, &str)> = live
        .iter()
        .map(|(s, f)| (s.as_str(), f.rule_id.as_str()))
        .collect();
    assert_eq!(
        live,
        [(scope.as_str(), "CVE-1")],
        "CVE-2 is fixed, not live"
    );
    // A batch with no report (every SBOM unchanged) still moves the cursor and counts.
    store
        .record_vulnerability_reports(
            &[],
            Some(&scanplane_store::RematchStep {
                considered: 3,
                ..step.clone()
            }),
            t(3, 0, 3),
        )
        .await
        .unwrap();
    store.finish_rematch(&import, t(3, 0, 4)).await.unwrap();
    assert!(store.pending_rematches(10).await.unwrap().is_empty());
    let counts = store
        .advisory_import(&import)
        .await
        .unwrap()
        .unwrap()
        .rematch;
    assert_eq!(
        (
            counts.considered,
            counts.rematched,
            counts.findings_new,
            counts.findings_fixed
        ),
        (5, 1, 0, 1)
    );
    assert!(counts.finished_at.is_some());

    let fixed = store
        .list_identities(
            Some(&tenant.id),
            &IdentityFilter {
                status: Some(FindingStatus::Fixed),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].finding.rule_id, "CVE-2");
    let latest = store
        .latest_report(&tenant.id, "vulnerabilities", "image://sha256:ee")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, third.scan.id, "the latest report");
    assert!(store
        .latest_report(&tenant.id, "vulnerabilities", "image://sha256:ff")
        .await
        .unwrap()
        .is_none());
}
