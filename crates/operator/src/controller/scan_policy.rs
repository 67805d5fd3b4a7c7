//! The ScanPolicy controller: stores the policy a `ScanPolicy` declares through the same
//! checks as `PUT /api/v1/policies`, reports the verdict in the status (a bad spec names
//! its field), and deletes the stored policy through a finalizer.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::{reconcile_finalized, write_status, Context, Error, Finalized};
use crate::crd::ScanPolicy;
use crate::scanpolicy::{declared, next_status, FINALIZER};
use crate::sink::SinkError;

const NAME: &str = "scanpolicy";

/// One reconcile of one ScanPolicy.
pub async fn reconcile(obj: Arc<ScanPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_finalized(obj, ctx).await
}

impl Finalized for ScanPolicy {
    const FINALIZER: &'static str = FINALIZER;
    const CONTROLLER: &'static str = NAME;
    fn apply<'a>(
        obj: &'a Self,
        api: &'a Api<Self>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Action, Error>> {
        apply(obj, api, ctx).boxed()
    }
    fn cleanup<'a>(obj: &'a Self, ctx: &'a Context) -> BoxFuture<'a, Result<Action, Error>> {
        cleanup(obj, ctx).boxed()
    }
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
