//! scanplane's Kubernetes operator: custom resources and annotated Ingresses, reconciled into
//! scanplane's own schedules and scans (the database stays the record; etcd holds summaries).

pub mod controller;
pub mod crd;
pub mod ingress;
pub mod lease;
pub mod registry;
pub mod scanpolicy;
pub mod scanrun;
pub mod scheduled;
pub mod sink;
pub mod status;
pub mod virtualservice;
