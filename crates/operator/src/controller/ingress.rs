//! The Ingress controller: applies the `ScheduledScan`s an annotated Ingress asks for
//! ([`crate::ingress::desired`]), deletes the ones it no longer asks for, and answers bad
//! annotations with a Warning event and no other change. [`enact`] does the same for any
//! annotated source (the VirtualService controller uses it).

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::{drain, error_policy, Context, Error, MANAGER};
use crate::crd::ScheduledScan;
use crate::ingress::{desired, label_value, IngressIntent, INGRESS_LABEL, MANAGED_BY};
use crate::scheduled::TENANT_ANNOTATION;
use scanplane_core::annotations::AnnotationError;

/// How often an unchanged Ingress is looked at again (a missed watch event heals).
pub const RESYNC: Duration = Duration::from_secs(3600);
const NAME: &str = "ingress";

/// The annotated resource one reconcile is about.
pub struct Source {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    /// `Ingress` or `VirtualService`: the owner kind of what it made.
    pub kind: &'static str,
    /// The label naming it on what it made.
    pub label: &'static str,
    pub reference: ObjectReference,
}

/// One reconcile of one Ingress.
pub async fn reconcile(ing: Arc<Ingress>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.counted(NAME);
    let source = Source {
        namespace: ing
            .namespace()
            .ok_or(Error::MissingField("metadata.namespace"))?,
        name: ing.name_any(),
        uid: ing.uid(),
        kind: "Ingress",
        label: INGRESS_LABEL,
        reference: ing.object_ref(&()),
    };
    let intent = refuse_unmapped(&ctx, ing.as_ref(), desired(&ing, &ctx.defaults));
    enact(&ctx, &source, intent).await
}

/// A tenant annotation the configuration does not allow makes the whole resource invalid:
/// said on it, rather than on each ScheduledScan it would make.
pub fn refuse_unmapped<K: ResourceExt>(
    ctx: &Context,
    obj: &K,
    intent: IngressIntent,
) -> IngressIntent {
    match ctx.tenants.tenant_of(obj) {
        Ok(_) => intent,
        Err(message) => {
            let refused = AnnotationError {
                annotation: TENANT_ANNOTATION.to_string(),
                message: message
                    .split_once("]: ")
                    .map_or(message.clone(), |(_, m)| m.to_string()),
            };
            match intent {
                IngressIntent::Invalid(mut errors) => {
                    errors.push(refused);
                    IngressIntent::Invalid(errors)
                }
                _ => IngressIntent::Invalid(vec![refused]),
            }
        }
    }
}

/// Makes the cluster what `intent` says for `src`.
pub async fn enact(ctx: &Context, src: &Source, intent: IngressIntent) -> Result<Action, Error> {
    let scans: Api<ScheduledScan> = Api::namespaced(ctx.client.clone(), &src.namespace);
    match intent {
        IngressIntent::Invalid(errors) => {
            let note = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::info!(namespace = %src.namespace, kind = src.kind, name = %src.name, %note, "invalid scan annotations");
            ctx.publish_on(
                &src.reference,
                EventType::Warning,
                "InvalidAnnotation",
                note,
            )
            .await;
            // Nothing else changes: the scans already made keep running as they were.
            return Ok(Action::await_change());
        }
        IngressIntent::Disabled => prune(&scans, src, &[]).await?,
        IngressIntent::Scan(wanted) => {
            let params = PatchParams::apply(MANAGER).force();
            for s in &wanted {
                scans
                    .patch(&s.name_any(), &params, &Patch::Apply(s))
                    .await?;
            }
            let keep: Vec<String> = wanted.iter().map(ResourceExt::name_any).collect();
            prune(&scans, src, &keep).await?;
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// Deletes the ScheduledScans `src` owns that are not in `keep`.
async fn prune(scans: &Api<ScheduledScan>, src: &Source, keep: &[String]) -> Result<(), Error> {
    let selector = format!(
        "{}={},{}={}",
        src.label,
        label_value(&src.name),
        MANAGED_BY.0,
        MANAGED_BY.1
    );
    let owned = scans.list(&ListParams::default().labels(&selector)).await?;
    for s in owned {
        let mine = s
            .owner_references()
            .iter()
            .any(|o| o.kind == src.kind && Some(&o.uid) == src.uid.as_ref());
        let name = s.name_any();
        if mine && !keep.contains(&name) {
            match scans.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(scheduled_scan = %name, kind = src.kind, "deleted: its source no longer asks for it")
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
