//! Wiring of the Kubernetes operator inside `serve --operator`: the Lease election, the
//! controllers that run while this replica leads, and the schedule sink that stores what
//! the resources declare through the API layer's own validation.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use futures::FutureExt;
use scanplane_api::declared::{
    apply_declared_policy, apply_declared_registry, apply_declared_schedule, cancel_declared_scan,
    declared_scan_run, delete_declared_policy, delete_declared_registry, delete_declared_schedule,
    last_run_of_schedule, start_declared_scan,
};
use scanplane_api::error::ApiError;
use scanplane_api::AppState;
use scanplane_core::annotations::AnnotationDefaults;
use scanplane_core::declared::{DeclaredPolicy, DeclaredScan, DeclaredSchedule};
use scanplane_core::scan::Scan;
use scanplane_operator::controller::{self, Context, Watched};
use scanplane_operator::lease::{LeaderElector, LeaseConfig};
use scanplane_operator::sink::{
    AppliedSchedule, LastRun, PolicySink, RegistrySink, RunSummary, ScanSink, ScheduleSink,
    SinkError, Sinks,
};
use scanplane_protocol::registry::DeclaredRegistry;
use tokio::sync::watch;

/// Settings of the operator (`serve --operator`).
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Reconcile scanplane's custom resources and annotated Ingresses (needs a cluster:
    /// in-cluster config or KUBECONFIG).
    #[arg(long, env = "SCANPLANE_OPERATOR")]
    pub operator: bool,
    /// Namespaces to watch, comma-separated (namespace-scoped RBAC). Default: the namespace
    /// of the Lease.
    #[arg(long, env = "SCANPLANE_OPERATOR_NAMESPACES", value_delimiter = ',')]
    pub operator_namespaces: Vec<String>,
    /// Watch every namespace instead (needs the chart's opt-in ClusterRole).
    #[arg(long, env = "SCANPLANE_OPERATOR_ALL_NAMESPACES")]
    pub operator_all_namespaces: bool,
    /// Namespace of the leader-election Lease: this pod's namespace in a cluster.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub operator_lease_namespace: String,
}

impl OperatorArgs {
    fn watched(&self) -> anyhow::Result<Watched> {
        let named: Vec<String> = self
            .operator_namespaces
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        match (self.operator_all_namespaces, named.is_empty()) {
            (true, false) => Err(anyhow!(
                "--operator-namespaces and --operator-all-namespaces exclude each other"
            )),
            (true, true) => Ok(Watched::All),
            (false, true) => Ok(Watched::Namespaces(vec![self
                .operator_lease_namespace
                .clone()])),
            (false, false) => Ok(Watched::Namespaces(named)),
        }
    }
}

/// Stores declared schedules and scans with the same validation as `POST /scans/schedule`
/// and `POST /api/v1/scans`.
pub struct ApiSink {
    pub state: Arc<AppState>,
}

fn sink_error(e: ApiError) -> SinkError {
    match e.code {
        // The declaration itself is wrong (a field, or a name another schedule holds).
        "invalid" | "conflict" => SinkError::Invalid(e.message),
        _ => SinkError::Unavailable(e.message),
    }
}

#[async_trait]
impl ScheduleSink for ApiSink {
    async fn apply(&self, d: &DeclaredSchedule) -> Result<AppliedSchedule, SinkError> {
        let s = apply_declared_schedule(&self.state, d)
            .await
            .map_err(sink_error)?;
        let last_run = last_run_of_schedule(&self.state, &s.tenant_id, &s.id)
            .await
            .map_err(sink_error)?
            .map(|scan| LastRun {
                id: scan.id,
                status: scan.status,
                error: scan.error.or(Some(scan.reason)).filter(|e| !e.is_empty()),
            });
        Ok(AppliedSchedule {
            id: s.id,
            next_fire_at: s.next_fire_at,
            last_fired_at: s.last_fired_at,
            last_run,
        })
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<(), SinkError> {
        delete_declared_schedule(&self.state, tenant, id)
            .await
            .map(|_| ())
            .map_err(sink_error)
    }
}

fn summary(
    scan: Scan,
    counts: Option<Vec<(scanplane_core::finding::Severity, u64)>>,
) -> RunSummary {
    RunSummary {
        id: scan.id,
        status: scan.status,
        reason: scan.reason,
        error: scan.error,
        executor_ref: scan.executor_ref,
        started_at: scan.started_at,
        finished_at: scan.finished_at,
        counts,
    }
}

#[async_trait]
impl ScanSink for ApiSink {
    async fn start(&self, d: &DeclaredScan) -> Result<RunSummary, SinkError> {
        let scan = start_declared_scan(&self.state, d)
            .await
            .map_err(sink_error)?;
        // A run that already ended (the start was a retry) reports its counts at once.
        match self.run(&d.tenant, &scan.id).await? {
            Some(run) => Ok(run),
            None => Ok(summary(scan, None)),
        }
    }

    async fn run(&self, tenant: &str, id: &str) -> Result<Option<RunSummary>, SinkError> {
        Ok(declared_scan_run(&self.state, tenant, id)
            .await
            .map_err(sink_error)?
            .map(|(scan, counts)| summary(scan, counts)))
    }

    async fn cancel(&self, tenant: &str, id: &str, reason: &str) -> Result<(), SinkError> {
        cancel_declared_scan(&self.state, tenant, id, reason)
            .await
            .map_err(sink_error)
    }
}

#[async_trait]
impl RegistrySink for ApiSink {
    async fn apply(&self, d: &DeclaredRegistry) -> Result<String, SinkError> {
        apply_declared_registry(&self.state, d)
            .await
            .map(|r| r.id)
            .map_err(sink_error)
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<(), SinkError> {
        delete_declared_registry(&self.state, tenant, id)
            .await
            .map(|_| ())
            .map_err(sink_error)
    }
}

#[async_trait]
impl PolicySink for ApiSink {
    async fn apply(&self, d: &DeclaredPolicy) -> Result<(), SinkError> {
        apply_declared_policy(&self.state, d)
            .await
            .map(|_| ())
            .map_err(sink_error)
    }

    async fn delete(&self, tenant: &str, name: &str) -> Result<(), SinkError> {
        delete_declared_policy(&self.state, tenant, name)
            .await
            .map(|_| ())
            .map_err(sink_error)
    }
}

/// What `serve` knows that the operator needs besides its flags.
pub struct Settings {
    /// This replica's identity in the Lease.
    pub identity: String,
    /// scanplane's API address, for the statuses' `url`.
    pub api_url: String,
    /// `operator.defaults` of the configuration file.
    pub defaults: AnnotationDefaults,
    /// `operator.tenant_annotation` of the configuration file.
    pub tenant_annotation: bool,
    /// The Kubernetes executor's namespace, when it is the executor.
    pub jobs_namespace: Option<String>,
}

/// The operator's loops (the Lease election and the controllers that run while leading),
/// for `serve` to supervise; both end when `stop` turns true.
pub async fn start(
    args: &OperatorArgs,
    state: Arc<AppState>,
    settings: Settings,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<(&'static str, tokio::task::JoinHandle<()>)>> {
    let Settings {
        identity,
        api_url,
        defaults,
        tenant_annotation,
        jobs_namespace,
    } = settings;
    let watched = args.watched()?;
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow!("operator: no Kubernetes API ({e}); run in a cluster or set KUBECONFIG")
    })?;
    let elector = LeaderElector::new(
        client.clone(),
        LeaseConfig::new(args.operator_lease_namespace.clone(), identity.clone()),
    )
    .map_err(|e| anyhow!("operator: {e}"))?;
    let leader = elector.subscribe();
    let sink = Arc::new(ApiSink {
        state: state.clone(),
    });
    let ctx = Arc::new(
        Context::new(
            client,
            Sinks {
                schedules: sink.clone(),
                scans: sink.clone(),
                registries: sink.clone(),
                policies: sink,
            },
            defaults,
            Some(identity),
            Some(api_url),
            state.metrics.clone(),
        )
        .with_tenant_annotation(tenant_annotation)
        .with_jobs_namespace(jobs_namespace),
    );
    tracing::info!(?watched, lease_namespace = %args.operator_lease_namespace, "operator enabled");
    let stopped = |mut stop: watch::Receiver<bool>| {
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
        .boxed()
    };
    let election = {
        let stop = stopped(stop.clone());
        tokio::spawn(async move {
            if let Err(e) = elector.run(stop).await {
                tracing::warn!(error = %e, "operator: releasing the Lease failed; a successor waits for it to expire");
            }
        })
    };
    let controllers = tokio::spawn(controller::run_while_leader(
        ctx,
        watched,
        leader,
        stopped(stop),
    ));
    Ok(vec![
        ("operator leader election", election),
        ("operator controllers", controllers),
    ])
}
