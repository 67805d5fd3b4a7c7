//! Scan execution policies and the workload inventory of cluster image scanning; pure
//! functions only (no I/O, no Kubernetes client, no database).
//!
//! **Policy documents** ([`parse()`]): a YAML or JSON document with a top-level
//! `scan_execution_policy` list, after GitLab's "Scheduled Scan Execution Policy with
//! Cluster Image Scanning" design. Each policy has schedule rules (a 5-field cron cadence
//! in an IANA time zone, an optional random time window, and per-cluster workload filters)
//! and actions (`cluster_image_scanning`, or `registry` with a registry id or name). A
//! document is checked against the checked-in JSON Schema [`SCHEMA`] first, then
//! deserialized into the typed [`PolicyDocument`], then checked for what the schema cannot
//! say: cron expressions and time zones (exactly as schedules are, through
//! `scanplane_core::schedule::Cadence::cron`), unique policy names, and clusters for
//! cluster image scanning. Every error names the JSON pointer of its field;
//! [`check_clusters`] checks the named clusters against the configured ones.
//!
//! **Workload inventory** ([`inventory()`]): given the Pods of the selected namespaces and
//! the ReplicaSets and Jobs there, resolves each Pod to its owning workload (ReplicaSet →
//! Deployment, Job → CronJob, StatefulSet, DaemonSet, or the bare Pod), each container and
//! init container to the digest it runs (from its status `imageID`), applies a
//! [`ClusterFilter`], and groups the result by digest: 300 Pods of one Deployment are one
//! image with one workload entry. Containers without a digest are listed as
//! [`Unresolved`], never dropped.

pub mod error;
pub mod inventory;
pub mod model;
pub mod parse;

pub use error::{FieldError, Format, PolicyErrors};
pub use inventory::{
    digest_of_image_id, inventory, pull_secrets, repository_of, Inventory, InventoryImage, Owners,
    PullSecret, Unresolved, Workload, WorkloadContainer,
};
pub use model::{
    Action, ClusterFilter, Distribution, Policy, PolicyDocument, Rule, RuleType, TimeWindow,
    WorkloadKind, DEFAULT_TIMEZONE,
};
pub use parse::{check_clusters, parse, MAX_BODY_BYTES, MAX_ERRORS, SCHEMA};
