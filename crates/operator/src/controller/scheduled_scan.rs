//! The ScheduledScan controller: keeps one scanplane schedule per resource (under its UID, in
//! its tenant) equal to its spec, reports it in the status, and deletes it through a finalizer
//! when the resource goes (the database holds the state, so owner references cannot).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::{reconcile_finalized, write_status, Context, Error, Finalized};
use crate::crd::ScheduledScan;
use crate::scheduled::{declared, next_status, Outcome};
use crate::sink::SinkError;

/// The finalizer that deletes the schedule before the resource goes.
pub const FINALIZER: &str = "scanplane.io/schedule";
/// How often the status's next and last run times are refreshed from the schedule.
pub const REFRESH: Duration = Duration::from_secs(300);
const NAME: &str = "scheduledscan";

/// One reconcile of one ScheduledScan.
pub async fn reconcile(obj: Arc<ScheduledScan>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_finalized(obj, ctx).await
}

impl Finalized for ScheduledScan {
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

async fn apply(
    obj: &ScheduledScan,
    api: &Api<ScheduledScan>,
    ctx: &Context,
) -> Result<Action, Error> {
    let outcome = match declared(obj, ctx.tenants) {
        Err(problem) => Outcome::Invalid(problem),
        Ok(d) => match ctx.schedules.apply(&d).await {
            Ok(applied) => Outcome::Applied(applied),
            Err(SinkError::Invalid(problem)) => Outcome::Invalid(problem),
            Err(e @ SinkError::Unavailable(_)) => return Err(Error::Sink(e)),
        },
    };
    let status = next_status(obj, &outcome, chrono::Utc::now(), ctx.api_url.as_deref());
    if write_status(api, &obj.name_any(), obj.status.as_ref(), &status).await? {
        // Said once per change, not at every resync.
        if let Outcome::Invalid(problem) = &outcome {
            ctx.warn(obj, "InvalidSpec", problem.clone()).await;
        }
    }
    Ok(match outcome {
        Outcome::Applied(_) => Action::requeue(REFRESH),
        // A wrong spec stays wrong until it is edited.
        Outcome::Invalid(_) => Action::await_change(),
    })
}

async fn cleanup(obj: &ScheduledScan, ctx: &Context) -> Result<Action, Error> {
    if let (Some(uid), Ok(tenant)) = (obj.uid(), ctx.tenants.tenant_of(obj)) {
        ctx.schedules
            .delete(&tenant, &uid)
            .await
            .map_err(Error::Sink)?;
        tracing::info!(scheduled_scan = %obj.name_any(), schedule_id = %uid, "schedule deleted with its resource");
    }
    Ok(Action::await_change())
}
