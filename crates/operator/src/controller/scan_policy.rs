//! The ScanPolicy controller: stores the policy a `ScanPolicy` declares through the same
//! checks as `PUT /api/v1/policies`, reports the verdict in the status (a bad spec names
//! its field), and deletes the stored policy through a finalizer.

use std::sync::Arc;

use futures::future::{BoxFuture, Shared};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::ResourceExt;

use super::{watch_resource, write_status, Context, Error};
use crate::crd::ScanPolicy;
use crate::scanpolicy::{declared, next_status, FINALIZER};
use crate::sink::SinkError;

const NAME: &str = "scanpolicy";

/// One reconcile of one ScanPolicy.
pub async fn reconcile(obj: Arc<ScanPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.counted(NAME);
    let ns = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<ScanPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Event::Apply(obj) => apply(&obj, &api, &ctx).await,
            Event::Cleanup(obj) => cleanup(&obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(obj: &ScanPolicy, api: &Api<ScanPolicy>, ctx: &Context) -> Result<Action, Error> {
    let problem = match declared(obj, ctx.tenants) {
        Err(p) => Some(p),
        Ok(d) => match ctx.policies.apply(&d).await {
            Ok(()) => None,
            Err(SinkError::Invalid(p)) => Some(p),
            Err(e @ SinkError::Unavailable(_)) => return Err(Error::Sink(e)),
        },
    };
    let status = next_status(obj, problem.as_deref(), chrono::Utc::now());
    if write_status(api, &obj.name_any(), obj.status.as_ref(), &status).await? {
        if let Some(p) = &problem {
            ctx.warn(obj, "InvalidSpec", p.clone()).await;
        }
    }
    Ok(Action::await_change())
}

async fn cleanup(obj: &ScanPolicy, ctx: &Context) -> Result<Action, Error> {
    if let Ok(d) = declared(obj, ctx.tenants) {
        ctx.policies
            .delete(&d.tenant, &d.name)
            .await
            .map_err(Error::Sink)?;
    }
    Ok(Action::await_change())
}

/// The ScanPolicy controller over one namespace (`None`: all), until `shutdown`.
pub async fn controller(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: Shared<BoxFuture<'static, ()>>,
) {
    watch_resource(ctx, namespace, shutdown, NAME, reconcile).await;
}
