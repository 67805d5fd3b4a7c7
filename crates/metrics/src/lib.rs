//! The Prometheus metrics of scanplane, prefixed `scanplane_`, under the names operators of
//! scan orchestrators already alert on (jobs created, job duration, findings by severity,
//! queue depth, active jobs). Counters and the duration histogram count what this process
//! did; queue depth and active jobs are gauges refreshed from the store, so every replica
//! reports the shared truth. The dispatcher and report ingest update them; the API serves
//! them on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabel {
    pub severity: String,
}

/// Every metric scanplane exports.
pub struct Metrics {
    registry: Registry,
    /// `scanplane_scan_jobs_created_total`
    pub jobs_created: Counter,
    /// `scanplane_scan_job_duration_seconds`
    pub job_duration: Histogram,
    /// `scanplane_active_scan_jobs`: scans holding a slot.
    pub active_jobs: Gauge,
    /// `scanplane_k8s_jobs_active`: active scans when the executor is Kubernetes.
    pub k8s_jobs_active: Gauge,
    /// `scanplane_scans_total{status}`: scans that reached a terminal status.
    pub scans_total: Family<StatusLabel, Counter>,
    /// `scanplane_queue_depth`: queued scans.
    pub queue_depth: Gauge,
    /// `scanplane_scan_duration_seconds`: duration of finished scans.
    pub scan_duration: Histogram,
    /// `scanplane_findings_total{severity}`: findings ingested.
    pub findings_total: Family<SeverityLabel, Counter<u64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scanplane");
        let jobs_created = Counter::default();
        registry.register(
            "scan_jobs_created",
            "Scanner units of work (processes, Jobs) created",
            jobs_created.clone(),
        );
        let job_duration = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "scan_job_duration_seconds",
            "Duration of scanner units of work",
            job_duration.clone(),
        );
        let active_jobs = Gauge::default();
        registry.register(
            "active_scan_jobs",
            "Scans admitted, dispatched or running",
            active_jobs.clone(),
        );
        let k8s_jobs_active = Gauge::default();
        registry.register(
            "k8s_jobs_active",
            "Active Kubernetes scan Jobs",
            k8s_jobs_active.clone(),
        );
        let scans_total = Family::<StatusLabel, Counter>::default();
        registry.register(
            "scans",
            "Scans that reached a terminal status",
            scans_total.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Scans waiting in the queue",
            queue_depth.clone(),
        );
        let scan_duration = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "scan_duration_seconds",
            "Duration of finished scans",
            scan_duration.clone(),
        );
        let findings_total = Family::<SeverityLabel, Counter<u64, AtomicU64>>::default();
        registry.register("findings", "Findings ingested", findings_total.clone());
        Metrics {
            registry,
            jobs_created,
            job_duration,
            active_jobs,
            k8s_jobs_active,
            scans_total,
            queue_depth,
            scan_duration,
            findings_total,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }

    pub fn finding(&self, severity: &str, n: u64) {
        self.findings_total
            .get_or_create(&SeverityLabel {
                severity: severity.to_string(),
            })
            .inc_by(n);
    }

    pub fn scan_ended(&self, status: &str, duration_seconds: Option<f64>) {
        self.scans_total
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
        if let Some(d) = duration_seconds {
            self.scan_duration.observe(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_seed_metric_names() {
        let m = Metrics::new();
        m.jobs_created.inc();
        m.scan_ended("succeeded", Some(3.0));
        m.finding("high", 2);
        let text = m.render();
        for name in [
            "scanplane_scan_jobs_created_total 1",
            "scanplane_scan_job_duration_seconds_bucket",
            "scanplane_active_scan_jobs",
            "scanplane_scans_total{status=\"succeeded\"} 1",
            "scanplane_queue_depth",
            "scanplane_findings_total{severity=\"high\"} 2",
            "scanplane_k8s_jobs_active",
            "scanplane_scan_duration_seconds_count 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
