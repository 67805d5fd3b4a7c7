//! The VirtualService controller: annotated Istio VirtualServices handled exactly as
//! Ingresses ([`super::ingress::enact`]). Watched only when the cluster serves
//! `networking.istio.io` when the controllers start (they restart with each leadership).

use std::sync::Arc;

use futures::future::{BoxFuture, Shared};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use super::ingress::{enact, Source};
use super::{drain, Context, Error, RETRY_AFTER};
use crate::crd::ScheduledScan;
use crate::ingress::MANAGED_BY;
use crate::virtualservice::{desired, GROUP, KIND, LABEL};

const NAME: &str = "virtualservice";

/// The controller's context: the shared one and how the cluster serves VirtualServices.
pub struct VsContext {
    pub ctx: Arc<Context>,
    pub resource: ApiResource,
}

/// How the cluster serves VirtualServices (the preferred version), `None` when it does not.
pub async fn discover(client: &Client) -> Result<Option<ApiResource>, kube::Error> {
    match discovery::group(client, GROUP).await {
        Ok(group) => Ok(group.recommended_kind(KIND).map(|(ar, _)| ar)),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One reconcile of one VirtualService.
pub async fn reconcile(vs: Arc<DynamicObject>, v: Arc<VsContext>) -> Result<Action, Error> {
    v.ctx.counted(NAME);
    let source = Source {
        namespace: vs
            .namespace()
            .ok_or(Error::MissingField("metadata.namespace"))?,
        name: vs.name_any(),
        uid: vs.uid(),
        kind: KIND,
        label: LABEL,
        reference: vs.object_ref(&v.resource),
    };
    let intent = super::ingress::refuse_unmapped(
        &v.ctx,
        vs.as_ref(),
        desired(&vs, &v.resource.api_version, &v.ctx.defaults),
    );
    enact(&v.ctx, &source, intent).await
}

fn error_policy(_vs: Arc<DynamicObject>, err: &Error, v: Arc<VsContext>) -> Action {
    tracing::warn!(controller = NAME, error = %err, "reconcile failed; retrying");
    v.ctx
        .metrics
        .operator_reconcile_errors
        .get_or_create(&scanplane_metrics::ControllerLabel {
            controller: NAME.into(),
        })
        .inc();
    Action::requeue(RETRY_AFTER)
}

/// The VirtualService controller over one namespace (`None`: all), until `shutdown`; returns
/// at once when the cluster has no Istio.
pub async fn controller(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: Shared<BoxFuture<'static, ()>>,
) {
    let resource = match discover(&ctx.client).await {
        Ok(Some(ar)) => ar,
        Ok(None) => {
            tracing::info!(
                "the cluster serves no {GROUP} VirtualService: VirtualServices are not watched"
            );
            return;
        }
        Err(e) => {
            // Said, not fatal: Ingresses and scanplane's resources are still reconciled.
            tracing::warn!(error = %e, "could not discover {GROUP}: VirtualServices are not watched until the controllers restart");
            return;
        }
    };
    let client = ctx.client.clone();
    let (services, owned): (Api<DynamicObject>, Api<ScheduledScan>) = match namespace.as_deref() {
        Some(ns) => (
            Api::namespaced_with(client.clone(), ns, &resource),
            Api::namespaced(client, ns),
        ),
        None => (Api::all_with(client.clone(), &resource), Api::all(client)),
    };
    let managed = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    tracing::info!(api_version = %resource.api_version, "watching VirtualServices");
    let v = Arc::new(VsContext {
        ctx,
        resource: resource.clone(),
    });
    let stream = Controller::new_with(services, watcher::Config::default(), resource)
        .owns(owned, managed)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, v);
    drain(NAME, stream).await;
}
