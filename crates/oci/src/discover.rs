//! The discovery run: repositories and tags are listed lazily into a small bounded queue, tags
//! are processed concurrently, and every image is sent out as soon as it is known, so memory
//! stays flat whatever the number of tags.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::sync::{mpsc, OnceCell, Semaphore};

use crate::classify::{self, Entry, Kind, RawConfig, RawManifest};
use crate::error::{from_oci, DiscoveryError};
use crate::registry::{self, Credentials, Lister};
use crate::{
    Access, Catalog, DiscoveredImage, DiscoveryStats, Layer, Platform, Selection, TagSelector,
    MAX_SKIPPED_EXAMPLES,
};

/// Page size (`n`) of catalog and tag listing unless [`Discoverer::with_page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
pub(crate) const USER_AGENT: &str = concat!("scanplane-oci/", env!("CARGO_PKG_VERSION"));

/// Discovers the images of one registry.
pub struct Discoverer {
    client: Client,
    auth: RegistryAuth,
    lister: Lister,
    concurrency: usize,
    page_size: usize,
}

impl std::fmt::Debug for Discoverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discoverer")
            .field("registry", &self.lister.endpoint().label)
            .field("concurrency", &self.concurrency)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl Discoverer {
    /// Checks the access (url, PEM, docker config) without any request; `concurrency` is
    /// clamped to 1..=64 requests in flight.
    pub fn new(access: Access, concurrency: usize) -> Result<Discoverer, DiscoveryError> {
        let endpoint = registry::parse_endpoint(&access.url)?;
        let certs = match &access.ca_bundle {
            Some(pem) => registry::split_pem(&endpoint.label, pem)?,
            None => Vec::new(),
        };
        let credentials = registry::resolve_credentials(&endpoint, &access.auth)?;
        let config = ClientConfig {
            protocol: if endpoint.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: access.insecure,
            extra_root_certificates: certs
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone().into_bytes(),
                })
                .collect(),
            // Indexes are expanded here, per selected platform, not by a resolver.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        // `Client::new` would fall back to a default client on a bad config; try_from reports it.
        let client = Client::try_from(config).map_err(|e| {
            DiscoveryError::config(&endpoint.label, format!("oci client: {}", from_oci(&e).0))
        })?;
        let auth = match &credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic(u, p) => RegistryAuth::Basic(u.clone(), p.clone()),
            Credentials::Bearer(t) => RegistryAuth::Bearer(t.clone()),
        };
        let lister = Lister::new(endpoint, credentials, &access, &certs)?;
        Ok(Discoverer {
            client,
            auth,
            lister,
            concurrency: concurrency.clamp(1, 64),
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// Page size `n` of catalog and tag listing (clamped to 1..=10,000); small ones test paging.
    pub fn with_page_size(mut self, n: usize) -> Discoverer {
        self.page_size = n.clamp(1, 10_000);
        self
    }

    /// "host:port/repository@digest", the reference a puller (trivy) uses.
    pub fn reference(&self, repository: &str, digest: &str) -> String {
        format!("{}/{repository}@{digest}", self.lister.endpoint().host)
    }

    /// The registry as errors name it ("http://127.0.0.1:5000").
    pub fn registry(&self) -> &str {
        &self.lister.endpoint().label
    }

    /// Streams every selected runnable image to `out` and returns the counts. The first
    /// registry failure ends it with Err (what was already sent stays sent).
    pub async fn run(
        &self,
        selection: &Selection,
        tags: &dyn TagSelector,
        out: mpsc::Sender<DiscoveredImage>,
    ) -> Result<DiscoveryStats, DiscoveryError> {
        if selection.repositories.is_empty() && selection.catalog == Catalog::None {
            return Err(DiscoveryError::config(
                self.registry(),
                "no repositories selected and the registry has no catalog (catalog: none)",
            ));
        }
        self.lister.authenticate().await?;
        let run = Run {
            d: self,
            selection,
            out: &out,
            stats: Mutex::new(DiscoveryStats::default()),
            configs: Mutex::new(HashMap::new()),
            permits: Semaphore::new(self.concurrency),
        };
        // The queue between listing and processing is what keeps memory flat: listing waits
        // while `concurrency` tags are being processed and a few more are queued.
        let (tx, rx) = mpsc::channel::<Work>(self.concurrency * 2);
        let producer = run.produce(tags, tx);
        let consumer = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|work| (work, rx))
        })
        .map(|work| run.process(work))
        .buffer_unordered(self.concurrency)
        .try_for_each(|()| async { Ok(()) });
        futures::future::try_join(producer, consumer).await?;
        Ok(run
            .stats
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// A selected tag waiting for its manifest.
struct Work {
    repository: Arc<str>,
    tag: String,
}

/// What discovery keeps of a config blob, once per digest per run.
struct ConfigInfo {
    platform: Option<Platform>,
    created: Option<String>,
    diff_ids: Vec<String>,
}

struct Run<'a> {
    d: &'a Discoverer,
    selection: &'a Selection,
    out: &'a mpsc::Sender<DiscoveredImage>,
    stats: Mutex<DiscoveryStats>,
    configs: Mutex<HashMap<String, Arc<OnceCell<Arc<ConfigInfo>>>>>,
    /// Bounds the requests in flight, listing included.
    permits: Semaphore,
}

impl Run<'_> {
    fn label(&self) -> &str {
        self.d.registry()
    }

    fn host(&self) -> String {
        self.d.lister.endpoint().host.clone()
    }

    fn stat(&self, f: impl FnOnce(&mut DiscoveryStats)) {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut stats);
    }

    fn skip(&self, repository: &str, tag: &str, reason: &str) {
        tracing::debug!(repository, tag, reason, "skipped");
        self.stat(|s| {
            s.skipped += 1;
            if s.skipped_examples.len() < MAX_SKIPPED_EXAMPLES {
                s.skipped_examples
                    .push(format!("{repository}:{tag}: {reason}"));
            }
        });
    }

    fn cancelled(&self) -> DiscoveryError {
        DiscoveryError::Cancelled {
            registry: self.label().to_string(),
        }
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, DiscoveryError> {
        // The semaphore is never closed; an error could only mean the run is being torn down.
        self.permits.acquire().await.map_err(|_| self.cancelled())
    }

    /// Lists repositories and tags, applies the selector and queues the selected tags.
    async fn produce(
        &self,
        tags: &dyn TagSelector,
        tx: mpsc::Sender<Work>,
    ) -> Result<(), DiscoveryError> {
        if !self.selection.repositories.is_empty() {
            for repository in &self.selection.repositories {
                if !self.produce_repository(repository, true, tags, &tx).await? {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let mut next = None;
        loop {
            let page = {
                let _permit = self.permit().await?;
                self.d
                    .lister
                    .catalog_page(next.take(), self.d.page_size)
                    .await?
            };
            if page.names.is_empty() {
                return Ok(());
            }
            for repository in &page.names {
                if !self
                    .produce_repository(repository, false, tags, &tx)
                    .await?
                {
                    return Ok(());
                }
            }
            match page.next {
                Some(url) => next = Some(url),
                None => return Ok(()),
            }
        }
    }

    /// Queues the selected tags of one repository; false when the processing side is gone.
    async fn produce_repository(
        &self,
        repository: &str,
        explicit: bool,
        tags: &dyn TagSelector,
        tx: &mpsc::Sender<Work>,
    ) -> Result<bool, DiscoveryError> {
        self.stat(|s| s.repositories += 1);
        let shared: Arc<str> = Arc::from(repository);
        let mut next = None;
        loop {
            if self.out.is_closed() {
                return Err(self.cancelled());
            }
            let page = {
                let _permit = self.permit().await?;
                self.d
                    .lister
                    .tags_page(repository, next.take(), self.d.page_size)
                    .await?
            };
            let Some(page) = page else {
                if explicit {
                    return Err(DiscoveryError::registry(
                        self.label(),
                        format!("listing tags of {repository}"),
                        "404 Not Found: no such repository",
                        Some(404),
                    ));
                }
                // Listed by the catalog but without tags (all deleted): nothing to discover.
                return Ok(true);
            };
            if page.names.is_empty() {
                return Ok(true);
            }
            for tag in page.names {
                self.stat(|s| s.tags_listed += 1);
                match tags.select(repository, &tag) {
                    Ok(true) => {
                        self.stat(|s| s.tags_selected += 1);
                        let work = Work {
                            repository: shared.clone(),
                            tag,
                        };
                        if tx.send(work).await.is_err() {
                            return Ok(false);
                        }
                    }
                    Ok(false) => {}
                    Err(message) => self.stat(|s| {
                        s.tag_filter_errors += 1;
                        // The first in name order, not in arrival order: a registry may list
                        // tags in any order (distribution 2.8 does not sort them), and the
                        // error shown must not change from one run to the next.
                        let error = format!("{repository}:{tag}: {message}");
                        if s.first_tag_filter_error
                            .as_ref()
                            .is_none_or(|first| error < *first)
                        {
                            s.first_tag_filter_error = Some(error);
                        }
                    }),
                }
            }
            match page.next {
                Some(url) => next = Some(url),
                None => return Ok(true),
            }
        }
    }

    /// One manifest fetch; `Ok(None)` when the registry no longer has it (404).
    async fn fetch_manifest(
        &self,
        reference: &Reference,
        step: impl FnOnce() -> String,
    ) -> Result<Option<(RawManifest, String)>, DiscoveryError> {
        let fetched = {
            let _permit = self.permit().await?;
            self.stat(|s| s.manifests_fetched += 1);
            self.d
                .client
                .pull_manifest_raw(reference, &self.d.auth, classify::ACCEPT)
                .await
        };
        let (body, digest) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                let (problem, status) = from_oci(&e);
                if status == Some(404) {
                    return Ok(None);
                }
                return Err(DiscoveryError::registry(
                    self.label(),
                    step(),
                    problem,
                    status,
                ));
            }
        };
        let manifest: RawManifest = serde_json::from_slice(&body).map_err(|e| {
            DiscoveryError::registry(
                self.label(),
                step(),
                format!("not a JSON manifest: {e}"),
                None,
            )
        })?;
        Ok(Some((manifest, digest)))
    }

    async fn process(&self, work: Work) -> Result<(), DiscoveryError> {
        let repository: &str = &work.repository;
        let tag = work.tag.as_str();
        if let Some(reason) = classify::cosign_tag(tag) {
            self.skip(repository, tag, reason);
            return Ok(());
        }
        let reference = Reference::with_tag(self.host(), repository.to_string(), tag.to_string());
        let Some((manifest, digest)) = self
            .fetch_manifest(&reference, || {
                format!("fetching manifest {repository}:{tag}")
            })
            .await?
        else {
            self.skip(
                repository,
                tag,
                "manifest not found (deleted while discovering?)",
            );
            return Ok(());
        };
        match manifest.kind() {
            Kind::Skip(reason) => {
                self.skip(repository, tag, &reason);
                Ok(())
            }
            Kind::Image => {
                self.emit(repository, tag, digest, manifest, None, None)
                    .await
            }
            Kind::Index => {
                let mut children = Vec::new();
                for descriptor in manifest.manifests.iter().flatten() {
                    match classify::entry(descriptor, &self.selection.platforms) {
                        Entry::Skip(reason) => self.skip(repository, tag, &reason),
                        Entry::NotSelected => {}
                        Entry::Manifest(platform) => {
                            children.push((descriptor.digest.clone(), platform))
                        }
                    }
                }
                let index_digest = &digest;
                futures::future::try_join_all(children.into_iter().map(|(child, platform)| {
                    self.child(repository, tag, index_digest, child, platform)
                }))
                .await?;
                Ok(())
            }
        }
    }

    async fn child(
        &self,
        repository: &str,
        tag: &str,
        index_digest: &str,
        digest: String,
        platform: Option<Platform>,
    ) -> Result<(), DiscoveryError> {
        let reference = Reference::with_digest(self.host(), repository.to_string(), digest.clone());
        let Some((manifest, digest)) = self
            .fetch_manifest(&reference, || {
                format!("fetching manifest {repository}@{digest}")
            })
            .await?
        else {
            self.skip(
                repository,
                tag,
                &format!("platform manifest {digest} not found"),
            );
            return Ok(());
        };
        let on = platform
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        match manifest.kind() {
            Kind::Image => {
                self.emit(
                    repository,
                    tag,
                    digest,
                    manifest,
                    Some(index_digest.to_string()),
                    platform,
                )
                .await
            }
            Kind::Index => {
                self.skip(repository, tag, &format!("nested index{on}"));
                Ok(())
            }
            Kind::Skip(reason) => {
                self.skip(repository, tag, &format!("{reason}{on}"));
                Ok(())
            }
        }
    }

    /// The config blob of `digest`, fetched once per run whatever the number of images using it.
    async fn config(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Arc<ConfigInfo>, DiscoveryError> {
        let cell = {
            let mut configs = self
                .configs
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            configs.entry(digest.to_string()).or_default().clone()
        };
        let info = cell
            .get_or_try_init(|| async {
                let step = || format!("fetching config {repository}@{digest}");
                let reference =
                    Reference::with_digest(self.host(), repository.to_string(), digest.to_string());
                let mut body = Vec::new();
                {
                    let _permit = self.permit().await?;
                    self.d
                        .client
                        .pull_blob(&reference, digest, &mut body)
                        .await
                        .map_err(|e| {
                            let (problem, status) = from_oci(&e);
                            DiscoveryError::registry(self.label(), step(), problem, status)
                        })?;
                }
                let config: RawConfig = serde_json::from_slice(&body).map_err(|e| {
                    DiscoveryError::registry(
                        self.label(),
                        step(),
                        format!("not a JSON image config: {e}"),
                        None,
                    )
                })?;
                Ok::<_, DiscoveryError>(Arc::new(ConfigInfo {
                    platform: config.platform(),
                    created: config.created,
                    diff_ids: config.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
                }))
            })
            .await?;
        Ok(info.clone())
    }

    async fn emit(
        &self,
        repository: &str,
        tag: &str,
        digest: String,
        manifest: RawManifest,
        index_digest: Option<String>,
        platform: Option<Platform>,
    ) -> Result<(), DiscoveryError> {
        let media_type = manifest.media_type().to_string();
        let Some(config_descriptor) = manifest.config else {
            self.skip(repository, tag, "manifest without config");
            return Ok(());
        };
        let config = self.config(repository, &config_descriptor.digest).await?;
        let platform = platform.or_else(|| config.platform.clone());
        // A single-platform image is selected by its config's platform.
        if !self.selection.platforms.is_empty() {
            let selected = platform
                .as_ref()
                .is_some_and(|p| self.selection.platforms.iter().any(|s| s.selects(p)));
            if !selected {
                return Ok(());
            }
        }
        let layers: Vec<Layer> = manifest
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, layer)| Layer {
                digest: layer.digest,
                media_type: layer.media_type,
                size: layer.size,
                diff_id: config.diff_ids.get(i).cloned(),
            })
            .collect();
        let image = DiscoveredImage {
            repository: repository.to_string(),
            tag: tag.to_string(),
            digest,
            index_digest,
            platform,
            media_type,
            config_digest: config_descriptor.digest,
            size: layers.iter().map(|l| l.size).sum(),
            layers,
            created: config.created.clone(),
        };
        self.out.send(image).await.map_err(|_| self.cancelled())?;
        self.stat(|s| s.images += 1);
        Ok(())
    }
}
