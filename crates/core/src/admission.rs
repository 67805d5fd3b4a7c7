//! Admission control as a pure function: given the queue, the slots in use, the maintenance
//! windows and the rate-limit buckets at one instant, decide which queued scans start, which
//! wait (and why), and which are skipped. The store applies the decisions in one transaction.
//!
//! Checks, in order: maintenance windows, concurrency (global, per tenant, per scanner),
//! per-provider rate limits. Order of consideration: on-demand before scheduled; within a
//! class, round-robin across tenants, each tenant's oldest scan first.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::maintenance::{MaintenanceWindow, ScanFacts, WindowAction};
use crate::ratelimit::{Bucket, RateLimitPolicy};
use crate::scan::Trigger;
use crate::Timestamp;

/// A queued scan as admission sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub scan_id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub scanner: String,
    pub provider: Option<String>,
    pub targets: Vec<String>,
    pub trigger: Trigger,
    pub created_at: Timestamp,
    /// The schedule's choice for maintenance windows (hold unless it says skip).
    pub on_maintenance: WindowAction,
}

/// Concurrency limits; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `MAX_CONCURRENT_JOBS` / `MAX_CONCURRENT_SCANS`.
    pub global: Option<u32>,
    pub per_tenant: Option<u32>,
    pub per_scanner: HashMap<String, u32>,
}

/// Slots held right now (scans admitted, dispatched or running).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotUsage {
    pub global: u32,
    pub per_tenant: HashMap<String, u32>,
    pub per_scanner: HashMap<String, u32>,
}

/// What happens to one queued scan.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Admit,
    /// Stays queued; the reason is shown on the scan.
    Wait(String),
    /// Ends as `skipped` with the reason.
    Skip(String),
}

/// The outcome of one admission round.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// One decision per candidate, in the order they were considered.
    pub decisions: Vec<(String, Decision)>,
    /// Buckets after the tokens taken by admitted scans.
    pub buckets: BTreeMap<String, Bucket>,
}

/// Orders candidates: on-demand first, then round-robin across tenants by each tenant's
/// oldest scan, so one tenant's thousand-scan sweep cannot starve another's single scan.
pub fn order(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut classes: BTreeMap<u8, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        classes.entry(c.trigger.priority()).or_default().push(c);
    }
    let mut out = Vec::with_capacity(candidates.len());
    for (_, mut class) in classes {
        class.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.scan_id.cmp(&b.scan_id))
        });
        // Tenants in order of their oldest scan; queues keep per-tenant age order.
        let mut tenant_order: Vec<&str> = Vec::new();
        let mut queues: HashMap<&str, VecDeque<&Candidate>> = HashMap::new();
        for c in class {
            let q = queues.entry(c.tenant_id.as_str()).or_default();
            if q.is_empty() && !tenant_order.contains(&c.tenant_id.as_str()) {
                tenant_order.push(c.tenant_id.as_str());
            }
            q.push_back(c);
        }
        loop {
            let mut took = false;
            for t in &tenant_order {
                if let Some(c) = queues.get_mut(t).and_then(VecDeque::pop_front) {
                    out.push(c);
                    took = true;
                }
            }
            if !took {
                break;
            }
        }
    }
    out
}

/// Decides one admission round.
pub fn decide(
    candidates: &[Candidate],
    usage: &SlotUsage,
    limits: &Limits,
    windows: &[MaintenanceWindow],
    policies: &[RateLimitPolicy],
    buckets: &BTreeMap<String, Bucket>,
    now: Timestamp,
) -> Round {
    let mut usage = usage.clone();
    let mut buckets = buckets.clone();
    let mut decisions = Vec::with_capacity(candidates.len());

    for c in order(candidates) {
        let decision = decide_one(c, &mut usage, limits, windows, policies, &mut buckets, now);
        decisions.push((c.scan_id.clone(), decision));
    }
    Round { decisions, buckets }
}

fn decide_one(
    c: &Candidate,
    usage: &mut SlotUsage,
    limits: &Limits,
    windows: &[MaintenanceWindow],
    policies: &[RateLimitPolicy],
    buckets: &mut BTreeMap<String, Bucket>,
    now: Timestamp,
) -> Decision {
    let facts = ScanFacts {
        tenant_id: &c.tenant_id,
        tenant_name: &c.tenant_name,
        scanner: &c.scanner,
        provider: c.provider.as_deref(),
        targets: &c.targets,
    };
    // 1. Maintenance windows: the one that stays open longest explains the wait.
    let mut blocking: Option<(&MaintenanceWindow, Timestamp)> = None;
    for w in windows.iter().filter(|w| w.applies_to(&facts)) {
        // A window whose cron cannot be evaluated was rejected at creation; treat a later
        // failure as closed rather than holding scans forever.
        if let Ok(Some(until)) = w.open_until(now) {
            if w.action == WindowAction::Skip || c.on_maintenance == WindowAction::Skip {
                return Decision::Skip(format!(
                    "skipped: maintenance window \"{}\" open until {}",
                    w.name,
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
            if blocking.is_none_or(|(_, u)| until > u) {
                blocking = Some((w, until));
            }
        }
    }
    if let Some((w, until)) = blocking {
        return Decision::Wait(format!(
            "waiting: maintenance window \"{}\" until {}",
            w.name,
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }

    // 2. Concurrency.
    if let Some(max) = limits.global {
        if usage.global >= max {
            return Decision::Wait(format!(
                "waiting: global concurrency limit reached ({}/{max} slots in use, MAX_CONCURRENT_JOBS)",
                usage.global
            ));
        }
    }
    let tenant_used = usage.per_tenant.get(&c.tenant_id).copied().unwrap_or(0);
    if let Some(max) = limits.per_tenant {
        if tenant_used >= max {
            return Decision::Wait(format!(
                "waiting: tenant \"{}\" concurrency limit reached ({tenant_used}/{max})",
                c.tenant_name
            ));
        }
    }
    let scanner_used = usage.per_scanner.get(&c.scanner).copied().unwrap_or(0);
    if let Some(max) = limits.per_scanner.get(&c.scanner) {
        if scanner_used >= *max {
            return Decision::Wait(format!(
                "waiting: scanner \"{}\" concurrency limit reached ({scanner_used}/{max})",
                c.scanner
            ));
        }
    }

    // 3. Provider rate limit.
    if let Some(provider) = &c.provider {
        if let Some(policy) = policies.iter().find(|p| &p.provider == provider) {
            let bucket = buckets
                .get(provider)
                .copied()
                .unwrap_or_else(|| policy.fresh(now));
            match policy.take(bucket, now) {
                Ok(b) => {
                    buckets.insert(provider.clone(), b);
                }
                Err(when) => {
                    return Decision::Wait(format!(
                        "waiting: rate limit for provider \"{provider}\" ({} per {}) until {}",
                        policy.count,
                        crate::duration::format_duration(policy.per),
                        when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ))
                }
            }
        }
    }

    // Saturating: usage comes from the database and is never trusted to be small.
    usage.global = usage.global.saturating_add(1);
    let tenant = usage.per_tenant.entry(c.tenant_id.clone()).or_default();
    *tenant = tenant.saturating_add(1);
    let scanner = usage.per_scanner.entry(c.scanner.clone()).or_default();
    *scanner = scanner.saturating_add(1);
    Decision::Admit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{Scope, WindowStart};
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    fn t0() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 22, 2, 30, 0).unwrap()
    }

    fn cand(id: &str, tenant: &str, trigger: Trigger, age_s: i64) -> Candidate {
        Candidate {
            scan_id: id.into(),
            tenant_id: tenant.into(),
            tenant_name: tenant.into(),
            scanner: "tcp".into(),
            provider: None,
            targets: vec!["127.0.0.1".into()],
            trigger,
            created_at: t0() - chrono::Duration::seconds(age_s),
            on_maintenance: WindowAction::Hold,
        }
    }

    fn admitted(r: &Round) -> Vec<&str> {
        r.decisions
            .iter()
            .filter(|(_, d)| *d == Decision::Admit)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    #[test]
    fn on_demand_before_scheduled_and_round_robin_across_tenants() {
        let mut cs: Vec<Candidate> = (0..5)
            .map(|i| cand(&format!("a{i}"), "a", Trigger::Schedule, 100 - i))
            .collect();
        cs.push(cand("b0", "b", Trigger::Schedule, 10));
        cs.push(cand("c0", "c", Trigger::OnDemand, 1));
        let order: Vec<&str> = order(&cs).iter().map(|c| c.scan_id.as_str()).collect();
        assert_eq!(order, vec!["c0", "a0", "b0", "a1", "a2", "a3", "a4"]);

        let limits = Limits {
            global: Some(3),
            ..Default::default()
        };
        let r = decide(
            &cs,
            &SlotUsage::default(),
            &limits,
            &[],
            &[],
            &BTreeMap::new(),
            t0(),
        );
        assert_eq!(admitted(&r), vec!["c0", "a0", "b0"]);
        let waiting = r
            .decisions
            .iter()
            .filter(|(_, d)| matches!(d, Decision::Wait(m) if m.contains("MAX_CONCURRENT_JOBS")))
            .count();
        assert_eq!(waiting, 4);
    }

    #[test]
    fn slots_in_use_count_against_limits() {
        let cs = vec![
            cand("x", "a", Trigger::OnDemand, 1),
            cand("y", "b", Trigger::OnDemand, 1),
        ];
        let usage = SlotUsage {
            global: 1,
            per_tenant: HashMap::from([("a".to_string(), 1)]),
            per_scanner: HashMap::new(),
        };
        let limits = Limits {
            global: Some(5),
            per_tenant: Some(1),
            ..Default::default()
        };
        let r = decide(&cs, &usage, &limits, &[], &[], &BTreeMap::new(), t0());
        assert_eq!(admitted(&r), vec!["y"]);
        assert!(matches!(&r.decisions[0].1, Decision::Wait(m) if m.contains("tenant \"a\"")));

        let limits = Limits {
            per_scanner: HashMap::from([("tcp".to_string(), 1)]),
            ..Default::default()
        };
        let r = decide(
            &cs,
            &SlotUsage::default(),
            &limits,
            &[],
            &[],
            &BTreeMap::new(),
            t0(),
        );
        assert_eq!(admitted(&r).len(), 1);
    }

    #[test]
    fn maintenance_window_holds_or_skips() {
        let w = MaintenanceWindow {
            id: "w".into(),
            tenant_id: "a".into(),
            admin: false,
            name: "nightly-freeze".into(),
            start: WindowStart::At(t0() - chrono::Duration::minutes(30)),
            duration: Duration::from_secs(3600),
            scope: Scope::Global,
            action: WindowAction::Hold,
            created_at: t0(),
        };
        let cs = vec![cand("x", "a", Trigger::OnDemand, 1)];
        let r = decide(
            &cs,
            &SlotUsage::default(),
            &Limits::default(),
            std::slice::from_ref(&w),
            &[],
            &BTreeMap::new(),
            t0(),
        );
        assert_eq!(
            r.decisions[0].1,
            Decision::Wait(
                "waiting: maintenance window \"nightly-freeze\" until 2026-11-22T03:00:00Z".into()
            )
        );
        // Released when it ends.
        let later = t0() + chrono::Duration::minutes(31);
        let r = decide(
            &cs,
            &SlotUsage::default(),
            &Limits::default(),
            std::slice::from_ref(&w),
            &[],
            &BTreeMap::new(),
            later,
        );
        assert_eq!(r.decisions[0].1, Decision::Admit);
        // Skipped when the schedule says so.
        let mut skip = cs.clone();
        skip[0].on_maintenance = WindowAction::Skip;
        let r = decide(
            &skip,
            &SlotUsage::default(),
            &Limits::default(),
            &[w],
            &[],
            &BTreeMap::new(),
            t0(),
        );
        assert!(matches!(&r.decisions[0].1, Decision::Skip(m) if m.contains("nightly-freeze")));
    }

    #[test]
    fn provider_rate_limit() {
        let policy = RateLimitPolicy {
            provider: "aws".into(),
            count: 2,
            per: Duration::from_secs(60),
        };
        let cs: Vec<Candidate> = (0..4)
            .map(|i| Candidate {
                provider: Some("aws".into()),
                ..cand(&format!("s{i}"), "a", Trigger::OnDemand, 10 - i)
            })
            .collect();
        let r = decide(
            &cs,
            &SlotUsage::default(),
            &Limits::default(),
            &[],
            std::slice::from_ref(&policy),
            &BTreeMap::new(),
            t0(),
        );
        assert_eq!(admitted(&r), vec!["s0", "s1"]);
        assert!(
            matches!(&r.decisions[2].1, Decision::Wait(m) if m.contains("rate limit for provider \"aws\" (2 per 1m)"))
        );
        // The returned buckets carry the spent tokens into the next round.
        let r2 = decide(
            &cs[2..],
            &SlotUsage::default(),
            &Limits::default(),
            &[],
            &[policy],
            &r.buckets,
            t0(),
        );
        assert!(admitted(&r2).is_empty());
    }
}
