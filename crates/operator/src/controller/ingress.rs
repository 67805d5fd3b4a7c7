//! The Ingress controller: applies the `ScheduledScan`s an annotated Ingress asks for
//! ([`crate::ingress::desired`]), deletes the ones it no longer asks for, and answers bad
//! annotations with a Warning event and no other change.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::future::Shared;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt;

use super::{drain, error_policy, Context, Error, MANAGER};
use crate::crd::ScheduledScan;
use crate::ingress::{desired, label_value, IngressIntent, INGRESS_LABEL, MANAGED_BY};

/// How often an unchanged Ingress is looked at again (a missed watch event heals).
pub const RESYNC: Duration = Duration::from_secs(3600);
const NAME: &str = "ingress";

/// One reconcile of one Ingress.
pub async fn reconcile(ing: Arc<Ingress>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.counted(NAME);
    let ns = ing
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = ing.name_any();
    let scans: Api<ScheduledScan> = Api::namespaced(ctx.client.clone(), &ns);
    match desired(&ing, &ctx.defaults) {
        IngressIntent::Invalid(errors) => {
            let note = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::info!(namespace = %ns, ingress = %name, %note, "invalid scan annotations");
            ctx.warn(ing.as_ref(), "InvalidAnnotation", note).await;
            // Nothing else changes: the scans already made keep running as they were.
            return Ok(Action::await_change());
        }
        IngressIntent::Disabled => prune(&scans, &ing, &[]).await?,
        IngressIntent::Scan(wanted) => {
            let params = PatchParams::apply(MANAGER).force();
            for s in &wanted {
                scans
                    .patch(&s.name_any(), &params, &Patch::Apply(s))
                    .await?;
            }
            let keep: Vec<String> = wanted.iter().map(ResourceExt::name_any).collect();
            prune(&scans, &ing, &keep).await?;
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// Deletes the ScheduledScans this Ingress owns that are not in `keep`.
async fn prune(scans: &Api<ScheduledScan>, ing: &Ingress, keep: &[String]) -> Result<(), Error> {
    let selector = format!(
        "{INGRESS_LABEL}={},{}={}",
        label_value(&ing.name_any()),
        MANAGED_BY.0,
        MANAGED_BY.1
    );
    let uid = ing.uid();
    let owned = scans.list(&ListParams::default().labels(&selector)).await?;
    for s in owned {
        let mine = s
            .owner_references()
            .iter()
            .any(|o| o.kind == "Ingress" && Some(&o.uid) == uid.as_ref());
        let name = s.name_any();
        if mine && !keep.contains(&name) {
            match scans.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(scheduled_scan = %name, "deleted: its Ingress no longer asks for it")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The Ingress controller over one namespace (`None`: all), owning the ScheduledScans it
/// made, until `shutdown`.
pub async fn controller(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: Shared<BoxFuture<'static, ()>>,
) {
    let client = ctx.client.clone();
    let (ingresses, owned): (Api<Ingress>, Api<ScheduledScan>) = match namespace.as_deref() {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let managed = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let stream = Controller::new(ingresses, watcher::Config::default())
        .owns(owned, managed)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy(NAME), ctx);
    drain(NAME, stream).await;
}
