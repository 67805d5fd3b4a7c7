//! Every decision function of core, fed extreme values (instants at both ends of the
//! representable range, durations up to `u64::MAX` seconds, counts at `u32::MAX`), returns a
//! decision or an error and never panics: a value that slipped past validation, or a row
//! written before a bound existed, must not be able to kill the loop that reads it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use scanplane_core::admission::{decide, Candidate, Limits, SlotUsage};
use scanplane_core::lifecycle::{after_unit, recover, UnitState};
use scanplane_core::maintenance::{MaintenanceWindow, Scope, WindowAction, WindowStart};
use scanplane_core::ratelimit::{Bucket, RateLimitPolicy};
use scanplane_core::scan::{Scan, ScanStatus, Trigger};
use scanplane_core::schedule::{
    fire_at, initial_ticks, jitter_offset, plan_tick, Cadence, MissedTickPolicy, Schedule,
    ScheduleStatus,
};
use scanplane_core::Timestamp;

fn from_millis(ms: i64) -> Timestamp {
    Timestamp::from_timestamp_millis(ms).unwrap_or(Timestamp::MAX_UTC)
}

fn any_time() -> BoxedStrategy<Timestamp> {
    let min = Timestamp::MIN_UTC.timestamp_millis();
    let max = Timestamp::MAX_UTC.timestamp_millis();
    prop_oneof![
        Just(Timestamp::MIN_UTC),
        Just(Timestamp::MAX_UTC),
        // Around today, where real data lives.
        (1_700_000_000_000i64..1_900_000_000_000i64).prop_map(from_millis),
        (min..=max).prop_map(from_millis),
    ]
    .boxed()
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_secs(u64::MAX)),
        (0u64..100_000_000u64).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_millis),
    ]
}

fn any_cadence() -> impl Strategy<Value = Cadence> {
    prop_oneof![
        any_time().prop_map(|at| Cadence::Once { at }),
        // Stored periods are not trusted: zero and huge ones too.
        (any_duration(), any_time()).prop_map(|(period, anchor)| Cadence::Every { period, anchor }),
        prop::sample::select(vec![
            "* * * * *",
            "0 3 * * *",
            "0 0 29 2 *",
            "59 23 31 12 *",
            "*/5 * * * *",
        ])
        .prop_flat_map(|expr| {
            prop::sample::select(vec!["UTC", "Europe/Berlin", "Pacific/Kiritimati"])
                .prop_map(move |tz| Cadence::cron(expr, tz).expect("valid test cron"))
        }),
    ]
}

fn window(start: WindowStart, duration: Duration) -> MaintenanceWindow {
    MaintenanceWindow {
        id: "w".into(),
        tenant_id: "b".into(),
        admin: false,
        name: "w".into(),
        start,
        duration,
        scope: Scope::Global,
        action: WindowAction::Hold,
        created_at: Timestamp::MIN_UTC,
    }
}

fn schedule(
    cadence: Cadence,
    jitter: Option<Duration>,
    deadline: Option<Duration>,
    next_tick: Option<Timestamp>,
    next_fire_at: Option<Timestamp>,
    policy: MissedTickPolicy,
) -> Schedule {
    Schedule {
        id: "s".into(),
        tenant_id: "t".into(),
        project_id: None,
        name: "s".into(),
        cadence,
        scanner: "tcp".into(),
        targets: vec!["127.0.0.1".into()],
        billing: false,
        options: "{}".into(),
        enabled: true,
        status: ScheduleStatus::Active,
        missed_tick_policy: policy,
        starting_deadline: deadline,
        jitter,
        on_maintenance: WindowAction::Hold,
        next_tick,
        next_fire_at,
        last_fired_at: None,
        created_at: Timestamp::MIN_UTC,
        updated_at: Timestamp::MIN_UTC,
    }
}

fn candidate(id: &str, tenant: &str, created_at: Timestamp) -> Candidate {
    Candidate {
        scan_id: id.into(),
        tenant_id: tenant.into(),
        tenant_name: tenant.into(),
        scanner: "tcp".into(),
        provider: Some("aws".into()),
        targets: vec!["127.0.0.1".into()],
        trigger: Trigger::OnDemand,
        created_at,
        on_maintenance: WindowAction::Hold,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn maintenance_windows_never_panic(
        start in any_time(),
        cadence in any_cadence(),
        duration in any_duration(),
        now in any_time(),
    ) {
        let fixed = window(WindowStart::At(start), duration);
        if let Ok(Some(until)) = fixed.open_until(now) {
            prop_assert!(until > now, "an open window closes after now");
        }
        let _ = window(WindowStart::Cron(cadence), duration).open_until(now);
    }

    #[test]
    fn schedule_planning_never_panics(
        cadence in any_cadence(),
        jitter in prop::option::of(any_duration()),
        deadline in prop::option::of(any_duration()),
        tick in prop::option::of(any_time()),
        fire in prop::option::of(any_time()),
        now in any_time(),
        skip in any::<bool>(),
    ) {
        let policy = if skip { MissedTickPolicy::Skip } else { MissedTickPolicy::CatchUpOnce };
        let _ = initial_ticks("s", &cadence, jitter, now);
        if let Some(t) = tick {
            let offset = jitter_offset("s", t, jitter);
            prop_assert!(offset >= chrono::Duration::zero());
            prop_assert!(fire_at("s", t, jitter) >= t);
        }
        let s = schedule(cadence, jitter, deadline, tick, fire, policy);
        // The scheduler calls plan_tick until it returns None; each call must be safe.
        let _ = plan_tick(&s, now);
    }

    #[test]
    fn rate_limits_never_panic(
        count in prop_oneof![Just(0u32), Just(1u32), Just(u32::MAX), any::<u32>()],
        per in any_duration(),
        tokens in prop_oneof![Just(0.0f64), Just(-1e300), Just(f64::MAX), Just(f64::NAN), -10.0f64..1e6],
        updated_at in any_time(),
        now in any_time(),
    ) {
        let policy = RateLimitPolicy { provider: "aws".into(), count, per };
        let bucket = Bucket { tokens, updated_at };
        let _ = policy.refill(bucket, now);
        let _ = policy.take(bucket, now);
        let _ = policy.fresh(now);
    }

    #[test]
    fn admission_never_panics(
        usage_global in prop_oneof![Just(u32::MAX), any::<u32>()],
        per_tenant in prop_oneof![Just(u32::MAX), any::<u32>()],
        limit in prop::option::of(prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()]),
        start in any_time(),
        duration in any_duration(),
        created in any_time(),
        now in any_time(),
        count in any::<u32>(),
        per in any_duration(),
        tokens in prop_oneof![Just(f64::NAN), Just(f64::MAX), -1e6f64..1e6],
    ) {
        let candidates = vec![candidate("a", "t1", created), candidate("b", "t2", now)];
        let usage = SlotUsage {
            global: usage_global,
            per_tenant: HashMap::from([("t1".to_string(), per_tenant)]),
            per_scanner: HashMap::from([("tcp".to_string(), u32::MAX)]),
        };
        let limits = Limits {
            global: limit,
            per_tenant: limit,
            per_scanner: HashMap::from([("tcp".to_string(), limit.unwrap_or(u32::MAX))]),
        };
        let windows = vec![window(WindowStart::At(start), duration)];
        let policies = vec![RateLimitPolicy { provider: "aws".into(), count, per }];
        let buckets = BTreeMap::from([(
            "aws".to_string(),
            Bucket { tokens, updated_at: created },
        )]);
        let round = decide(&candidates, &usage, &limits, &windows, &policies, &buckets, now);
        prop_assert_eq!(round.decisions.len(), 2);
    }

    #[test]
    fn lifecycle_never_panics(
        attempts in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        max_attempts in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        exit_code in prop::option::of(any::<i32>()),
        success in any::<bool>(),
        message in ".{0,64}",
        created in any_time(),
    ) {
        let statuses = [
            ScanStatus::Queued, ScanStatus::Admitted, ScanStatus::Dispatched,
            ScanStatus::Running, ScanStatus::Succeeded, ScanStatus::Failed,
        ];
        let states = [
            UnitState::Running { detail: None },
            UnitState::Exited { success, exit_code, message: message.clone() },
            UnitState::TimedOut { message: message.clone() },
            UnitState::Failed { message: message.clone() },
            UnitState::Gone,
            UnitState::Lost { message: message.clone() },
        ];
        for status in statuses {
            let scan = scan(status, attempts, created);
            for state in &states {
                let _ = after_unit(&scan, state, max_attempts);
            }
            let _ = recover(&scan, max_attempts);
            let _ = scan.duration();
        }
    }
}

fn scan(status: ScanStatus, attempts: u32, at: Timestamp) -> Scan {
    Scan {
        id: "s".into(),
        tenant_id: "t".into(),
        project_id: None,
        schedule_id: None,
        fire_time: None,
        trigger: Trigger::OnDemand,
        scanner: "tcp".into(),
        targets: vec!["127.0.0.1".into()],
        billing: false,
        options: "{}".into(),
        status,
        reason: String::new(),
        attempts,
        created_at: at,
        updated_at: at,
        admitted_at: Some(Timestamp::MIN_UTC),
        started_at: Some(Timestamp::MAX_UTC),
        finished_at: Some(Timestamp::MIN_UTC),
        executor_ref: None,
        error: None,
        targets_scanned: vec![],
        findings_count: 0,
        findings_rejected: 0,
        rejections: vec![],
        owner: None,
        launched_at: None,
        exited_at: None,
        lost_attempts: 0,
    }
}
