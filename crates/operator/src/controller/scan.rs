//! The Scan controller: one scanplane scan run per version of a `Scan`'s spec
//! ([`crate::scanrun`]), its progress summarised in the status and told as the events
//! `ScanJobCreated`, `ScanCompleted`, `ScanFailed`; a spec change cancels the old run and
//! starts a new one; deleting the resource cancels a run still going (its record stays).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::{reconcile_finalized, write_status, Context, Error, Finalized};
use crate::crd::{JobRef, Phase, Scan};
use crate::scanrun::{next_status, notices, step, with_job_details, Observed, Step, FINALIZER};
use crate::sink::SinkError;

/// How often a run that has not ended is looked at again.
pub const POLL: Duration = Duration::from_secs(10);
const NAME: &str = "scan";

/// One reconcile of one Scan.
pub async fn reconcile(obj: Arc<Scan>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_finalized(obj, ctx).await
}

impl Finalized for Scan {
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

fn sink(e: SinkError) -> Result<Observed, Error> {
    match e {
        SinkError::Invalid(problem) => Ok(Observed::Invalid(problem)),
        e @ SinkError::Unavailable(_) => Err(Error::Sink(e)),
    }
}

async fn apply(obj: &Scan, api: &Api<Scan>, ctx: &Context) -> Result<Action, Error> {
    let observed = match step(obj, ctx.tenants) {
        Err(problem) => Observed::Invalid(problem),
        Ok(Step::Observe { tenant, run }) => match ctx.scans.run(&tenant, &run).await {
            Ok(Some(r)) => Observed::Run(r),
            Ok(None) => Observed::Gone(run),
            Err(e) => sink(e)?,
        },
        Ok(Step::Start {
            tenant,
            scan,
            replaces,
        }) => {
            if let Some(old) = replaces {
                ctx.scans
                    .cancel(
                        &tenant,
                        &old,
                        "its Scan's spec changed: a new run replaces it",
                    )
                    .await
                    .map_err(Error::Sink)?;
            }
            match scan {
                Err(problem) => Observed::Invalid(problem),
                Ok(d) => match ctx.scans.start(&d).await {
                    Ok(r) => Observed::Run(r),
                    Err(e) => sink(e)?,
                },
            }
        }
    };
    let mut status = next_status(obj, &observed, chrono::Utc::now(), ctx.api_url.as_deref());
    if let Some(ns) = &ctx.jobs_namespace {
        if let Some(job_ref) = status.job_ref.take() {
            status.job_ref = Some(job_details(ctx, ns, job_ref).await);
        }
    }
    if write_status(api, &obj.name_any(), obj.status.as_ref(), &status).await? {
        // Told once per transition: the status write above is what makes it one. A bad
        // spec is a ScanFailed naming the field.
        for n in notices(obj.status.as_ref(), &status) {
            let kind = if n.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.publish(obj, kind, n.reason, n.note).await;
        }
    }
    Ok(match (&observed, status.phase) {
        (Observed::Run(_), Some(Phase::Pending | Phase::Running)) => Action::requeue(POLL),
        _ => Action::await_change(),
    })
}

/// The Job's uid and newest pod, read once; a failure to read them is logged, not fatal (the
/// Job's name is already in the status).
async fn job_details(ctx: &Context, ns: &str, job_ref: JobRef) -> JobRef {
    if job_ref.uid.is_some() && job_ref.pod_name.is_some() {
        return job_ref;
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let job = match jobs.get_opt(&job_ref.name).await {
        Ok(j) => j,
        Err(e) => {
            tracing::debug!(job = %job_ref.name, error = %e, "could not read a scan's Job");
            return job_ref;
        }
    };
    let selector = format!("job-name={}", job_ref.name);
    let found = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::debug!(job = %job_ref.name, error = %e, "could not list a scan's pods");
            Vec::new()
        }
    };
    with_job_details(job_ref, job.as_ref(), &found)
}

async fn cleanup(obj: &Scan, ctx: &Context) -> Result<Action, Error> {
    let run = obj.status.as_ref().and_then(|s| s.scan_run_id.clone());
    if let (Some(run), Ok(tenant)) = (run, ctx.tenants.tenant_of(obj)) {
        ctx.scans
            .cancel(&tenant, &run, "its Scan resource was deleted")
            .await
            .map_err(Error::Sink)?;
    }
    Ok(Action::await_change())
}
