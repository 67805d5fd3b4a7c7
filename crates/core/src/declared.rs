//! Schedules and scans declared outside the API, by a resource that owns them (a Kubernetes
//! `ScheduledScan` or `Scan`): the resource says what it is, the API layer validates and
//! stores it under the id the resource chose, so applying the same declaration twice changes
//! nothing and deleting the resource deletes (or stops) exactly what it declared.

use crate::annotations::ScanCadence;

/// What a declarative source states about one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredSchedule {
    /// Chosen by the source and stable for the resource's life (a Kubernetes UID).
    pub id: String,
    /// The owning tenant's name; created on first use.
    pub tenant: String,
    /// Unique within the tenant, like every schedule name.
    pub name: String,
    pub cadence: ScanCadence,
    /// IANA time zone of a cron cadence (default UTC).
    pub timezone: Option<String>,
    /// Spread each tick over this window, e.g. `15m`.
    pub jitter: Option<String>,
    /// False while the resource is suspended.
    pub enabled: bool,
    pub scanner: String,
    pub targets: Vec<String>,
    /// Scanner options as JSON text, validated by the scanner as for the API.
    pub options_json: Option<String>,
}

/// What a declarative source states about one scan run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredScan {
    /// Chosen by the source, one per version of its spec (see [`run_id`]).
    pub id: String,
    pub tenant: String,
    pub scanner: String,
    pub targets: Vec<String>,
    /// Scanner options as JSON text.
    pub options_json: Option<String>,
}

/// What a declarative source (a ScanPolicy resource) states about one scan execution policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredPolicy {
    pub tenant: String,
    /// Unique within the tenant; `k8s:<namespace>/<name>` for a resource.
    pub name: String,
    /// The policy as one entry of a `scan_execution_policy` document, JSON (its `name` is
    /// replaced by [`DeclaredPolicy::name`]).
    pub entry_json: String,
}

/// The prefix of every name a Kubernetes resource declares; the API refuses it, so the two
/// never take each other's names.
pub const RESOURCE_NAME_PREFIX: &str = "k8s:";

/// The id of the run a resource's spec version asks for: the same for one (uid, generation)
/// on every replica and after every restart, so a retried start finds the run it made, and
/// a new spec (a new generation) is a new run. Shaped like a UUID (version 8: custom).
pub fn run_id(uid: &str, generation: i64) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("scanplane-run:{uid}:{generation}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Where in the declaring resource a field the API layer names came from, so that an error
/// is told in the terms of the resource the user edits. `scan_spec` is where the resource
/// keeps its scan (`spec.template` in a ScheduledScan, `spec` in a Scan).
pub fn resource_field(api_field: &str, scan_spec: &str) -> String {
    let within = |f: &str| format!("{scan_spec}.{f}");
    match api_field {
        "cron_exp" | "cron_exp, time" => "spec.schedule".into(),
        "timezone" => "spec.timezone".into(),
        "jitter" => "spec.jitter".into(),
        "name" => "metadata.name".into(),
        "scanner" => within("scanner"),
        f if f.starts_with("options") => within("options"),
        _ => within("targets"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_is_stable_per_spec_version_and_uuid_shaped() {
        let a = run_id("0b6e", 1);
        assert_eq!(a, run_id("0b6e", 1));
        assert_ne!(a, run_id("0b6e", 2));
        assert_ne!(a, run_id("0b6f", 1));
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'8', "version 8: {a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn api_fields_map_to_the_resource_fields_a_user_edits() {
        assert_eq!(resource_field("cron_exp", "spec.template"), "spec.schedule");
        assert_eq!(resource_field("timezone", "spec.template"), "spec.timezone");
        assert_eq!(
            resource_field("options.severity", "spec.template"),
            "spec.template.options"
        );
        assert_eq!(
            resource_field("targets[2]", "spec.template"),
            "spec.template.targets"
        );
        assert_eq!(resource_field("scanner", "spec"), "spec.scanner");
    }
}
