//! The Prometheus metrics of scanplane, prefixed `scanplane_`, under the names operators of
//! scan orchestrators already alert on (jobs created, job duration, findings by severity,
//! queue depth, active jobs). Counters and the duration histogram count what this process
//! did; queue depth and active jobs are gauges refreshed from the store, and
//! `scanplane_scans_total` is rendered from the store's counts at each scrape, so every
//! replica reports the shared truth and the numbers agree with the scans the API lists. The dispatcher and report ingest update them; the API serves
//! them on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How many scans of one tenant and scanner reached one terminal status (from the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminalScans {
    pub tenant: String,
    pub scanner: String,
    pub status: String,
    pub count: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabel {
    pub severity: String,
}

/// The kind of unit of work a NATS work-queue consumer carries (`scan`, `discovery`, `sbom`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// The operator's controller a reconcile belongs to (`ingress`, `scheduledscan`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
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
    /// `scanplane_queue_depth`: queued scans.
    pub queue_depth: Gauge,
    /// `scanplane_scan_duration_seconds`: duration of finished scans.
    pub scan_duration: Histogram,
    /// `scanplane_findings_total{severity}`: findings ingested.
    pub findings_total: Family<SeverityLabel, Counter<u64, AtomicU64>>,
    /// `scanplane_nats_queue_depth{kind}`: units published and not yet delivered to a
    /// worker (the NATS executor; the work-queue consumer's pending count).
    pub nats_queue_depth: Family<KindLabel, Gauge>,
    /// `scanplane_nats_in_flight{kind}`: units delivered to a worker and not yet acked.
    pub nats_in_flight: Family<KindLabel, Gauge>,
    /// `scanplane_nats_redelivered{kind}`: units the server delivered more than once
    /// (a worker died or stopped acking).
    pub nats_redelivered: Family<KindLabel, Gauge>,
    /// `scanplane_nats_workers_lost_total`: attempts declared lost because their worker
    /// stopped heartbeating.
    pub nats_workers_lost: Counter,
    /// `scanplane_operator_reconciles_total{controller}`: reconciles the operator ran.
    pub operator_reconciles: Family<ControllerLabel, Counter<u64, AtomicU64>>,
    /// `scanplane_operator_reconcile_errors_total{controller}`: reconciles that failed and
    /// were requeued.
    pub operator_reconcile_errors: Family<ControllerLabel, Counter<u64, AtomicU64>>,
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
        let nats_queue_depth = Family::<KindLabel, Gauge>::default();
        registry.register(
            "nats_queue_depth",
            "Units waiting in the NATS work queue, by kind",
            nats_queue_depth.clone(),
        );
        let nats_in_flight = Family::<KindLabel, Gauge>::default();
        registry.register(
            "nats_in_flight",
            "Units delivered to NATS workers and not yet acknowledged, by kind",
            nats_in_flight.clone(),
        );
        let nats_redelivered = Family::<KindLabel, Gauge>::default();
        registry.register(
            "nats_redelivered",
            "Units the NATS server delivered more than once, by kind",
            nats_redelivered.clone(),
        );
        let nats_workers_lost = Counter::default();
        registry.register(
            "nats_workers_lost",
            "Attempts declared lost because their NATS worker stopped heartbeating",
            nats_workers_lost.clone(),
        );
        let operator_reconciles = Family::<ControllerLabel, Counter<u64, AtomicU64>>::default();
        registry.register(
            "operator_reconciles",
            "Reconciles the Kubernetes operator ran, by controller",
            operator_reconciles.clone(),
        );
        let operator_reconcile_errors =
            Family::<ControllerLabel, Counter<u64, AtomicU64>>::default();
        registry.register(
            "operator_reconcile_errors",
            "Operator reconciles that failed and were requeued, by controller",
            operator_reconcile_errors.clone(),
        );
        Metrics {
            registry,
            jobs_created,
            job_duration,
            active_jobs,
            k8s_jobs_active,
            queue_depth,
            scan_duration,
            findings_total,
            nats_queue_depth,
            nats_in_flight,
            nats_redelivered,
            nats_workers_lost,
            operator_reconciles,
            operator_reconcile_errors,
        }
    }

    /// The OpenMetrics text exposition, with `scanplane_scans_total{status,scanner,tenant}`
    /// from `scans` (the store's counts; `None` when they could not be read, and the family
    /// is left out rather than reported wrong).
    pub fn render(&self, scans: Option<&[TerminalScans]>) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        let Some(scans) = scans else {
            return out;
        };
        // The registry's text ends with the `# EOF` marker; the family goes before it.
        let body_end = out.rfind("# EOF").unwrap_or(out.len());
        out.truncate(body_end);
        out.push_str("# HELP scanplane_scans Scans that reached a terminal status.\n");
        out.push_str("# TYPE scanplane_scans counter\n");
        for s in scans {
            out.push_str(&format!(
                "scanplane_scans_total{{status=\"{}\",scanner=\"{}\",tenant=\"{}\"}} {}\n",
                label(&s.status),
                label(&s.scanner),
                label(&s.tenant),
                s.count
            ));
        }
        out.push_str("# EOF\n");
        out
    }

    pub fn finding(&self, severity: &str, n: u64) {
        self.findings_total
            .get_or_create(&SeverityLabel {
                severity: severity.to_string(),
            })
            .inc_by(n);
    }

    /// Observes a finished scan's duration (its count is the store's: see [`Metrics::render`]).
    pub fn scan_ended(&self, duration_seconds: Option<f64>) {
        if let Some(d) = duration_seconds {
            self.scan_duration.observe(d);
        }
    }
}

/// A label value as the text format needs it: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_seed_metric_names() {
        let m = Metrics::new();
        m.jobs_created.inc();
        m.scan_ended(Some(3.0));
        m.finding("high", 2);
        let counts = [TerminalScans {
            tenant: "acme".into(),
            scanner: "nm\"ap".into(),
            status: "succeeded".into(),
            count: 1,
        }];
        let text = m.render(Some(&counts));
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        for name in [
            "scanplane_scan_jobs_created_total 1",
            "scanplane_scan_job_duration_seconds_bucket",
            "scanplane_active_scan_jobs",
            "scanplane_scans_total{status=\"succeeded\",scanner=\"nm\\\"ap\",tenant=\"acme\"} 1",
            "scanplane_queue_depth",
            "scanplane_findings_total{severity=\"high\"} 2",
            "scanplane_k8s_jobs_active",
            "scanplane_scan_duration_seconds_count 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
