//! What a `ScheduledScan` declares (a scanplane schedule under the resource's UID, in the
//! namespace's tenant) and the status that reports it back. Pure: the controller applies
//! what this decides.

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use scanplane_core::annotations::{parse_schedule, PREFIX};
use scanplane_core::declared::DeclaredSchedule;

use crate::crd::{Phase, ScannerConfig, ScheduledScan, ScheduledScanStatus};
use crate::scanrun::phase_of;
use crate::sink::AppliedSchedule;
use crate::status::{condition, rfc3339};

/// The annotation that maps a resource to a tenant other than its namespace.
pub const TENANT_ANNOTATION: &str = "scanplane.io/tenant";
/// The one condition a ScheduledScan reports: whether its schedule is stored and armed.
pub const READY: &str = "Ready";

/// How resources map to tenants: the namespace is the tenant; the `scanplane.io/tenant`
/// annotation names another only when the operator's configuration allows it
/// (`operator.tenant_annotation`), since anyone who may annotate a resource could otherwise
/// act as any tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantMapping {
    pub allow_annotation: bool,
}

impl TenantMapping {
    /// The tenant of `obj`, or why it has none (an annotation this mapping refuses).
    pub fn tenant_of<K: ResourceExt>(&self, obj: &K) -> Result<String, String> {
        debug_assert!(TENANT_ANNOTATION.starts_with(PREFIX));
        let namespace = obj
            .namespace()
            .ok_or_else(|| "metadata.namespace: missing".to_string())?;
        match obj
            .annotations()
            .get(TENANT_ANNOTATION)
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
        {
            None => Ok(namespace),
            Some(t) if t == namespace => Ok(namespace),
            Some(t) if self.allow_annotation => Ok(t.to_string()),
            Some(t) => Err(format!(
                "metadata.annotations[{TENANT_ANNOTATION}]: mapping namespace {namespace} to tenant {t:?} is not allowed here (operator.tenant_annotation in scanplane's configuration)"
            )),
        }
    }
}

/// The schedule `obj` declares, or what is wrong with it (naming the field).
pub fn declared(obj: &ScheduledScan, tenants: TenantMapping) -> Result<DeclaredSchedule, String> {
    let id = obj
        .uid()
        .ok_or_else(|| "metadata.uid: missing (not read from the API server)".to_string())?;
    let namespace = obj
        .namespace()
        .ok_or_else(|| "metadata.namespace: missing".to_string())?;
    let tenant = tenants.tenant_of(obj)?;
    let cadence =
        parse_schedule(obj.spec.schedule.trim()).map_err(|e| format!("spec.schedule: {e}"))?;
    let options_json = obj
        .spec
        .template
        .options
        .as_ref()
        .map(serde_json::Value::to_string);
    Ok(DeclaredSchedule {
        id,
        tenant,
        // Unique in the tenant like every schedule name, and says where it came from.
        name: format!("k8s:{namespace}/{}", obj.name_any()),
        cadence,
        timezone: obj.spec.timezone.clone(),
        jitter: obj.spec.jitter.clone(),
        enabled: !obj.spec.suspend,
        scanner: obj.spec.template.scanner.clone(),
        targets: obj.spec.template.targets.clone(),
        options_json,
    })
}

/// What the last apply came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied(AppliedSchedule),
    Invalid(String),
}

/// The status after `outcome`, keeping the condition's transition time when its status and
/// reason did not change (so a resync writes nothing).
pub fn next_status(
    obj: &ScheduledScan,
    outcome: &Outcome,
    now: DateTime<Utc>,
    api_url: Option<&str>,
) -> ScheduledScanStatus {
    let current = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let (status, reason, message) = match outcome {
        Outcome::Applied(_) => ("True", "Scheduled", applied_message(obj)),
        Outcome::Invalid(problem) => ("False", "InvalidSpec", problem.clone()),
    };
    let condition = condition(
        &current.conditions,
        READY,
        status,
        reason,
        message,
        generation,
        now,
    );
    let mut next = ScheduledScanStatus {
        conditions: vec![condition],
        observed_generation: generation,
        ..current
    };
    match outcome {
        Outcome::Applied(s) => {
            next.schedule_id = Some(s.id.clone());
            next.next_run_time = s.next_fire_at.map(rfc3339);
            next.last_run_time = s.last_fired_at.map(rfc3339).or(next.last_run_time);
            next.last_scan_run_id = s.last_run.as_ref().map(|r| r.id.clone());
            next.last_phase = s.last_run.as_ref().map(|r| phase_of(r.status));
            // The latest problem: the last run's failure (a valid spec has no other).
            next.last_error = s
                .last_run
                .as_ref()
                .filter(|r| phase_of(r.status) == Phase::Failed)
                .map(|r| {
                    r.error
                        .clone()
                        .unwrap_or_else(|| format!("scan {} {}", r.id, r.status))
                });
            next.url = api_url.map(|base| {
                format!(
                    "{}/api/v1/scans/schedule/{}",
                    base.trim_end_matches('/'),
                    s.id
                )
            });
        }
        Outcome::Invalid(problem) => {
            next.last_error = Some(problem.clone());
            next.next_run_time = None;
        }
    }
    next
}

fn applied_message(obj: &ScheduledScan) -> String {
    let cfg = obj.spec.template.scanner_config.as_ref();
    if cfg.is_some_and(|c| c != &ScannerConfig::default()) {
        // Said rather than silently dropped: a user who set a timeout must learn it is not
        // enforced per scan yet.
        "schedule stored; spec.template.scannerConfig is not applied yet (scans use the \
         scanner's configured image, resources and timeout)"
            .into()
    } else {
        "schedule stored".into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use scanplane_core::annotations::ScanCadence;
    use serde_json::json;
    use std::time::Duration;

    fn scheduled(extra_meta: serde_json::Value, spec: serde_json::Value) -> ScheduledScan {
        let mut meta =
            json!({"name": "nightly", "namespace": "team-a", "uid": "0b6e-uid", "generation": 3});
        meta.as_object_mut()
            .unwrap()
            .extend(extra_meta.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "scanplane.io/v1alpha1", "kind": "ScheduledScan",
            "metadata": meta, "spec": spec
        }))
        .unwrap()
    }

    fn spec() -> serde_json::Value {
        json!({"schedule": "@every 6h", "template": {"scanner": "nuclei",
               "targets": ["https://shop.example.test"], "options": {"severity": "high"}}})
    }

    #[test]
    fn a_scheduled_scan_declares_a_schedule_under_its_uid_in_its_namespace_tenant() {
        let d = declared(&scheduled(json!({}), spec()), TenantMapping::default()).unwrap();
        assert_eq!(d.id, "0b6e-uid");
        assert_eq!(d.tenant, "team-a");
        assert_eq!(d.name, "k8s:team-a/nightly");
        assert_eq!(d.cadence, ScanCadence::Every(Duration::from_secs(6 * 3600)));
        assert!(d.enabled);
        assert_eq!(d.options_json.as_deref(), Some(r#"{"severity":"high"}"#));
    }

    #[test]
    fn the_tenant_annotation_overrides_the_namespace_and_suspend_disables() {
        let mut s = spec();
        s["suspend"] = json!(true);
        s["schedule"] = json!("@daily");
        let annotated = scheduled(
            json!({"annotations": {"scanplane.io/tenant": "payments"}}),
            s,
        );
        let refused = declared(&annotated, TenantMapping::default()).unwrap_err();
        assert!(refused.contains("is not allowed here"), "{refused}");
        let d = declared(
            &annotated,
            TenantMapping {
                allow_annotation: true,
            },
        )
        .unwrap();
        assert_eq!(d.tenant, "payments");
        assert!(!d.enabled);
        assert_eq!(d.cadence, ScanCadence::Cron("0 0 * * *".into()));
    }

    #[test]
    fn a_bad_schedule_names_spec_schedule() {
        let mut s = spec();
        s["schedule"] = json!("every day please");
        let e = declared(&scheduled(json!({}), s), TenantMapping::default()).unwrap_err();
        assert!(e.starts_with("spec.schedule: "), "{e}");
    }

    #[test]
    fn status_reports_the_schedule_and_keeps_transition_time_across_resyncs() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        let next = Utc.with_ymd_and_hms(2026, 12, 6, 16, 0, 0).unwrap();
        let applied = Outcome::Applied(AppliedSchedule {
            id: "0b6e-uid".into(),
            next_fire_at: Some(next),
            last_fired_at: None,
            last_run: None,
        });
        let mut obj = scheduled(json!({}), spec());
        let first = next_status(&obj, &applied, t0, Some("https://scanplane.example/"));
        assert_eq!(first.schedule_id.as_deref(), Some("0b6e-uid"));
        assert_eq!(first.next_run_time.as_deref(), Some("2026-12-06T16:00:00Z"));
        assert_eq!(
            first.url.as_deref(),
            Some("https://scanplane.example/api/v1/scans/schedule/0b6e-uid")
        );
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(first.conditions[0].status, "True");
        obj.status = Some(first.clone());
        let later = next_status(
            &obj,
            &applied,
            t0 + chrono::TimeDelta::hours(1),
            Some("https://scanplane.example/"),
        );
        assert_eq!(later, first, "a resync changes nothing");

        let bad = Outcome::Invalid("spec.timezone: unknown time zone \"Mars/Base\"".into());
        let failed = next_status(&obj, &bad, t0 + chrono::TimeDelta::hours(2), None);
        assert_eq!(failed.conditions[0].status, "False");
        assert_eq!(failed.conditions[0].reason, "InvalidSpec");
        assert_ne!(
            failed.conditions[0].last_transition_time,
            first.conditions[0].last_transition_time
        );
        assert_eq!(
            failed.last_error.as_deref(),
            Some("spec.timezone: unknown time zone \"Mars/Base\"")
        );
        assert_eq!(failed.next_run_time, None);
    }

    #[test]
    fn a_scanner_config_that_is_not_applied_is_said_in_the_condition() {
        let mut s = spec();
        s["template"]["scannerConfig"] = json!({"timeout": "30m"});
        let obj = scheduled(json!({}), s);
        let applied = Outcome::Applied(AppliedSchedule {
            id: "x".into(),
            next_fire_at: None,
            last_fired_at: None,
            last_run: None,
        });
        let st = next_status(&obj, &applied, Utc::now(), None);
        assert!(
            st.conditions[0].message.contains("not applied"),
            "{}",
            st.conditions[0].message
        );
    }

    #[test]
    fn the_last_run_shows_in_the_status_and_its_failure_is_the_last_error() {
        use crate::sink::LastRun;
        use scanplane_core::scan::ScanStatus as RunStatus;
        let obj = scheduled(json!({}), spec());
        let ok = Outcome::Applied(AppliedSchedule {
            id: "0b6e-uid".into(),
            next_fire_at: None,
            last_fired_at: None,
            last_run: Some(LastRun {
                id: "run-1".into(),
                status: RunStatus::Succeeded,
                error: None,
            }),
        });
        let st = next_status(&obj, &ok, Utc::now(), None);
        assert_eq!(st.last_scan_run_id.as_deref(), Some("run-1"));
        assert_eq!(st.last_phase, Some(Phase::Completed));
        assert_eq!(st.last_error, None);
        let failed = Outcome::Applied(AppliedSchedule {
            id: "0b6e-uid".into(),
            next_fire_at: None,
            last_fired_at: None,
            last_run: Some(LastRun {
                id: "run-2".into(),
                status: RunStatus::TimedOut,
                error: Some("ran past its 30m timeout".into()),
            }),
        });
        let st = next_status(&obj, &failed, Utc::now(), None);
        assert_eq!(st.last_phase, Some(Phase::Failed));
        assert_eq!(st.last_error.as_deref(), Some("ran past its 30m timeout"));
    }
}
