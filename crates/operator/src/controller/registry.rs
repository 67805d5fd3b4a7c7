//! The Registry controller: keeps one scanplane registry per `Registry` resource equal to its
//! spec (credentials from the Secret it names), reports it in the status, and deletes it
//! through a finalizer when the resource goes.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::{reconcile_finalized, write_status, Context, Error, Finalized};
use crate::crd::Registry;
use crate::registry::{auth_from_secret, declared, next_status, Outcome, FINALIZER};
use crate::sink::SinkError;

/// How often a stored registry is applied again: a changed Secret is not watched, so new
/// credentials arrive within this.
pub const REFRESH: Duration = Duration::from_secs(300);
/// How soon a registry whose Secret is missing is tried again.
pub const SECRET_RETRY: Duration = Duration::from_secs(60);
const NAME: &str = "registry";

/// One reconcile of one Registry.
pub async fn reconcile(obj: Arc<Registry>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_finalized(obj, ctx).await
}

impl Finalized for Registry {
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

async fn apply(obj: &Registry, api: &Api<Registry>, ctx: &Context) -> Result<Action, Error> {
    let ns = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let mut retry = None;
    let auth = match &obj.spec.auth_secret_ref {
        None => Ok(None),
        Some(r) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            match secrets.get_opt(&r.name).await? {
                Some(s) => auth_from_secret(&s).map(Some),
                None => {
                    retry = Some(SECRET_RETRY);
                    Err(format!(
                        "spec.authSecretRef: Secret {} not found in namespace {ns}",
                        r.name
                    ))
                }
            }
        }
    };
    let outcome = match auth.and_then(|a| declared(obj, a, ctx.tenants)) {
        Err(problem) => Outcome::Invalid(problem),
        Ok(d) => match ctx.registries.apply(&d).await {
            Ok(id) => Outcome::Applied { id },
            Err(SinkError::Invalid(p)) => Outcome::Invalid(p),
            Err(e @ SinkError::Unavailable(_)) => return Err(Error::Sink(e)),
        },
    };
    let status = next_status(obj, &outcome, chrono::Utc::now(), ctx.api_url.as_deref());
    if write_status(api, &obj.name_any(), obj.status.as_ref(), &status).await? {
        if let Outcome::Invalid(problem) = &outcome {
            ctx.warn(obj, "InvalidSpec", problem.clone()).await;
        }
    }
    Ok(match outcome {
        Outcome::Applied { .. } => Action::requeue(REFRESH),
        Outcome::Invalid(_) => retry.map_or_else(Action::await_change, Action::requeue),
    })
}

async fn cleanup(obj: &Registry, ctx: &Context) -> Result<Action, Error> {
    if let (Some(uid), Ok(tenant)) = (obj.uid(), ctx.tenants.tenant_of(obj)) {
        ctx.registries
            .delete(&tenant, &uid)
            .await
            .map_err(Error::Sink)?;
        tracing::info!(registry = %obj.name_any(), registry_id = %uid, "registry deleted with its resource");
    }
    Ok(Action::await_change())
}
