//! The operator's controllers, kube-runtime `Controller`s in the controller-rs shape: a
//! shared [`Context`], `reconcile` returning an [`Action`], one [`error_policy`] that counts
//! the failure and requeues with a delay. They run only while this replica holds the Lease
//! ([`run_while_leader`]), so of several replicas exactly one reconciles.

pub mod ingress;
pub mod registry;
pub mod scan;
pub mod scan_policy;
pub mod scheduled_scan;
pub mod virtualservice;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Client, Resource};
use scanplane_core::annotations::AnnotationDefaults;
use scanplane_metrics::{ControllerLabel, Metrics};
use tokio::sync::watch;

use crate::crd::{Registry, Scan, ScanPolicy, ScheduledScan};
use crate::scheduled::TenantMapping;
use crate::sink::{PolicySink, RegistrySink, ScanSink, ScheduleSink, SinkError, Sinks};

/// The field manager of everything the operator applies.
pub const MANAGER: &str = "scanplane-operator";
/// How long a failed reconcile waits before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// What every reconcile is given.
pub struct Context {
    pub client: Client,
    pub schedules: Arc<dyn ScheduleSink>,
    pub scans: Arc<dyn ScanSink>,
    pub registries: Arc<dyn RegistrySink>,
    pub policies: Arc<dyn PolicySink>,
    /// Operator defaults, the bottom of defaults < spec < annotations.
    pub defaults: AnnotationDefaults,
    pub recorder: Recorder,
    /// scanplane's public API address, for the `url` in statuses.
    pub api_url: Option<String>,
    /// How resources map to tenants (the namespace, or an allowed annotation).
    pub tenants: TenantMapping,
    /// Where the Kubernetes executor runs scan Jobs, when it is the executor: a Scan's
    /// `jobRef` then gets the Job's uid and pod.
    pub jobs_namespace: Option<String>,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(
        client: Client,
        sinks: Sinks,
        defaults: AnnotationDefaults,
        instance: Option<String>,
        api_url: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            schedules: sinks.schedules,
            scans: sinks.scans,
            registries: sinks.registries,
            policies: sinks.policies,
            defaults,
            api_url,
            tenants: TenantMapping::default(),
            jobs_namespace: None,
            metrics,
        }
    }

    /// Scan Jobs run in `namespace` (the Kubernetes executor's).
    #[must_use]
    pub fn with_jobs_namespace(mut self, namespace: Option<String>) -> Self {
        self.jobs_namespace = namespace;
        self
    }

    /// Lets the `scanplane.io/tenant` annotation map a resource to another tenant than its
    /// namespace (off by default: whoever may annotate could act as any tenant).
    #[must_use]
    pub fn with_tenant_annotation(mut self, allow: bool) -> Self {
        self.tenants.allow_annotation = allow;
        self
    }

    fn counted(&self, controller: &str) {
        self.metrics
            .operator_reconciles
            .get_or_create(&ControllerLabel {
                controller: controller.into(),
            })
            .inc();
    }

    /// Publishes a Warning event on `obj`.
    async fn warn<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj, EventType::Warning, reason, note).await;
    }

    /// Publishes an event on `obj`.
    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.publish_on(&obj.object_ref(&()), type_, reason, note)
            .await;
    }

    /// Publishes an event on the object `regarding`; a failure to publish is logged, not
    /// fatal (the status says the same).
    async fn publish_on(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(error = %e, reason, "could not publish a Kubernetes event");
        }
    }
}

/// Why a reconcile failed; every one is retried after [`RETRY_AFTER`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Sink(SinkError),
    #[error("the object has no {0}")]
    MissingField(&'static str),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// Counts the failure and retries later; the controller's own backoff never gives up.
pub fn error_policy<K>(
    controller: &'static str,
) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |_obj, err, ctx| {
        tracing::warn!(controller, error = %err, "reconcile failed; retrying");
        ctx.metrics
            .operator_reconcile_errors
            .get_or_create(&ControllerLabel {
                controller: controller.into(),
            })
            .inc();
        Action::requeue(RETRY_AFTER)
    }
}

/// Which namespaces the controllers watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// These namespaces only (namespace-scoped RBAC, the default).
    Namespaces(Vec<String>),
    /// Every namespace (needs the chart's opt-in ClusterRole).
    All,
}

/// Runs every controller over `watched` until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, watched: Watched, shutdown: BoxFuture<'static, ()>) {
    let shutdown = shutdown.shared();
    let scopes: Vec<Option<String>> = match watched {
        Watched::All => vec![None],
        Watched::Namespaces(ns) => ns.into_iter().map(Some).collect(),
    };
    let mut all = Vec::new();
    for ns in scopes {
        all.push(ingress::controller(ctx.clone(), ns.clone(), shutdown.clone()).boxed());
        all.push(
            watch_resource::<ScheduledScan>(ctx.clone(), ns.clone(), shutdown.clone()).boxed(),
        );
        all.push(watch_resource::<Scan>(ctx.clone(), ns.clone(), shutdown.clone()).boxed());
        all.push(watch_resource::<Registry>(ctx.clone(), ns.clone(), shutdown.clone()).boxed());
        all.push(watch_resource::<ScanPolicy>(ctx.clone(), ns.clone(), shutdown.clone()).boxed());
        all.push(virtualservice::controller(ctx.clone(), ns.clone(), shutdown.clone()).boxed());
    }
    futures::future::join_all(all).await;
}

/// Runs the controllers whenever `leader` is true and stops them when it turns false, until
/// `shutdown` resolves.
pub async fn run_while_leader(
    ctx: Arc<Context>,
    watched: Watched,
    mut leader: watch::Receiver<bool>,
    shutdown: BoxFuture<'static, ()>,
) {
    let shutdown = shutdown.shared();
    loop {
        tokio::select! {
            _ = shutdown.clone() => return,
            r = leader.wait_for(|l| *l) => if r.is_err() { return },
        }
        tracing::info!("this replica leads: the operator's controllers start");
        let mut lost = leader.clone();
        let stop = {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = shutdown => {},
                    _ = lost.wait_for(|l| !*l) => {},
                }
            }
            .boxed()
        };
        run(ctx.clone(), watched.clone(), stop).await;
        tracing::info!("the operator's controllers stopped");
    }
}

/// Writes `next` as the status of `name` unless it already is `current`; true when written
/// (a resync that changes nothing writes nothing, and so triggers no watch event). Written
/// by server-side apply, so a field `next` leaves out (a `lastError` that no longer holds)
/// is removed, which a merge patch would keep.
async fn write_status<K, S>(
    api: &kube::Api<K>,
    name: &str,
    current: Option<&S>,
    next: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if current == Some(next) {
        return Ok(false);
    }
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": next,
    });
    api.patch_status(
        name,
        &kube::api::PatchParams::apply(MANAGER).force(),
        &kube::api::Patch::Apply(body),
    )
    .await?;
    Ok(true)
}

/// Runs the controller of one of scanplane's own resources over one namespace (`None`:
/// all) until `shutdown`: the watch, the shared error policy, and the drain.
async fn watch_resource<K: Finalized>(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: futures::future::Shared<BoxFuture<'static, ()>>,
) {
    let api: kube::Api<K> = match namespace.as_deref() {
        Some(ns) => kube::Api::namespaced(ctx.client.clone(), ns),
        None => kube::Api::all(ctx.client.clone()),
    };
    let stream = kube::runtime::Controller::new(api, kube::runtime::watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_finalized::<K>, error_policy(K::CONTROLLER), ctx);
    drain(K::CONTROLLER, stream).await;
}

/// One of scanplane's own resources whose state in the database a finalizer guards: its
/// controller puts the finalizer first, applies while the resource lives, and cleans up
/// (then releases the finalizer) when it is deleted.
pub(crate) trait Finalized:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const FINALIZER: &'static str;
    /// The `controller` label of its metrics.
    const CONTROLLER: &'static str;
    fn apply<'a>(
        obj: &'a Self,
        api: &'a kube::Api<Self>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Action, Error>>;
    fn cleanup<'a>(obj: &'a Self, ctx: &'a Context) -> BoxFuture<'a, Result<Action, Error>>;
}

/// One reconcile of a [`Finalized`] resource.
pub(crate) async fn reconcile_finalized<K: Finalized>(
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.counted(K::CONTROLLER);
    let ns = obj
        .meta()
        .namespace
        .clone()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: kube::Api<K> = kube::Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, K::FINALIZER, obj, |event| async {
        match event {
            finalizer::Event::Apply(obj) => K::apply(&obj, &api, &ctx).await,
            finalizer::Event::Cleanup(obj) => K::cleanup(&obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Drains a controller's stream, logging what it reports.
async fn drain<S, T, E>(controller: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(controller, error = %e, "controller event");
            }
        })
        .await;
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
