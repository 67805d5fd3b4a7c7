//! A schedule declared outside the API, by a resource that owns it (a Kubernetes
//! `ScheduledScan`): the resource says what the schedule is, the API layer validates and
//! stores it under the id the resource chose, so applying the same declaration twice changes
//! nothing and deleting the resource deletes exactly its schedule.

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

/// Where in the declaring resource a field of a [`DeclaredSchedule`] came from, so that an
/// error the API layer names by its own field can be told in the resource's terms.
pub fn resource_field(api_field: &str) -> &'static str {
    match api_field {
        "cron_exp" | "cron_exp, time" => "spec.schedule",
        "timezone" => "spec.timezone",
        "jitter" => "spec.jitter",
        "scanner" => "spec.template.scanner",
        "options" => "spec.template.options",
        "name" => "metadata.name",
        f if f.starts_with("options") => "spec.template.options",
        _ => "spec.template.targets",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_fields_map_to_the_resource_fields_a_user_edits() {
        assert_eq!(resource_field("cron_exp"), "spec.schedule");
        assert_eq!(resource_field("timezone"), "spec.timezone");
        assert_eq!(resource_field("options.severity"), "spec.template.options");
        assert_eq!(resource_field("targets[2]"), "spec.template.targets");
        assert_eq!(resource_field("scanner"), "spec.template.scanner");
    }
}
