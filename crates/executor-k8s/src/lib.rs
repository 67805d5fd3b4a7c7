//! The Kubernetes executor: every scan attempt runs as a `batch/v1` Job of the scanplane
//! image in scanner mode, its report token in a Secret owned by the Job, followed to the end
//! by one watcher task over the Jobs and pods of this installation.
//!
//! The pure parts ([`build_job`], [`observe`]) hold every decision; the
//! [`KubernetesExecutor`] only moves objects to and from the API server.
//!
//! TLS: kube is built with rustls and its `ring` provider. If another crate in the same
//! binary enables rustls' `aws-lc-rs` too, rustls cannot pick a provider by itself and the
//! binary must install one at start-up, e.g.
//! `rustls::crypto::ring::default_provider().install_default()`, before creating a client.

pub mod config;
pub mod executor;
pub mod job;
pub mod observe;

pub use config::{
    parse_node_selector, parse_tolerations, ConfigError, KubernetesConfig, ScannerResources,
};
pub use executor::{KubernetesExecutor, REPORTING_CONTROLLER};
pub use job::{build_job, job_name, secret_name, secret_owned_by, selector};
pub use observe::observe;
