//! The store's role traits. Each is what one consumer needs: the scheduler holds a
//! [`TickStore`], the dispatcher a [`DispatchStore`], the cleaner a [`RetentionStore`]; the
//! API, which serves every aggregate, holds the umbrella [`Store`](crate::Store). Every method
//! lives in exactly one role, so a call on `dyn Store` is never ambiguous.
//!
//! `tenant` arguments are tenant ids; `None` means the admin, who sees every tenant.

use async_trait::async_trait;
use scanplane_core::admission::{Decision, Limits, SlotUsage};
use scanplane_core::finding::{Finding, Severity};
use scanplane_core::identity::Triage;
use scanplane_core::maintenance::MaintenanceWindow;
use scanplane_core::ratelimit::RateLimitPolicy;
use scanplane_core::replica::Replica;
use scanplane_core::scan::{Scan, ScanStatus};
use scanplane_core::schedule::{Schedule, TickPlan};
use scanplane_core::tenant::Tenant;
use scanplane_core::Timestamp;

use crate::{
    AdvisoryImport, AffectedSbom, Backend, DiffList, DiffSummary, DiscoveryOutcome,
    DiscoveryRecord, FeedState, FindingFilter, FindingIdentity, IdentityFilter, ImageFilter,
    ImageRecord, ImportCounts, NewAdvisory, NewImage, NewSbom, NewScan, PackageHit, PackageQuery,
    RegistryRecord, RematchStep, ReportChunk, ReportOutcome, RunDiff, SbomInfo, ScanChange,
    ScanFilter, StoreError, StoredAdvisory, StoredFinding, StoredPolicy, TenantInfo, TerminalCount,
    TickOutcome, TokenInfo, TokenOwner, VulnerabilityReport,
};

/// Whether the store can serve: `/readyz` and start-up.
#[async_trait]
pub trait HealthStore: Send + Sync {
    fn backend(&self) -> Backend;

    /// The database answers and every migration is applied.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// The database takes a committed write now: a heartbeat row is updated and committed.
    /// `StorageFull` on a full SQLite disk, `Unavailable` on a read-only or unreachable
    /// database. On PostgreSQL it proves the server commits, not that every table can grow:
    /// the heartbeat row is rewritten in place.
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// How many scans reached each terminal status, by tenant name and scanner, since the
    /// database was created (deleted scans stay counted).
    async fn terminal_counts(&self) -> Result<Vec<TerminalCount>, StoreError>;
}

/// Tenants, their API tokens and their retention: authentication and the admin endpoints.
#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError>;
    async fn create_token(
        &self,
        tenant_id: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<String, StoreError>;
    /// The token with this hash and its tenant; `None` for an unknown or revoked token.
    async fn token_owner(&self, token_hash: &str) -> Result<Option<TokenOwner>, StoreError>;
    /// Records that a token was used at `now`, unless it was recorded less than a minute
    /// before: a busy client costs one write a minute, not one per request.
    async fn touch_token(&self, token_id: &str, now: Timestamp) -> Result<(), StoreError>;
    /// Every token, oldest first; one tenant's with `tenant` (a name).
    async fn list_tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenInfo>, StoreError>;
    /// Deletes a token: the next request with it is refused. `NotFound` when there is none.
    async fn revoke_token(&self, token_id: &str) -> Result<(), StoreError>;
    /// Every tenant with its retention, by name.
    async fn list_tenants(&self) -> Result<Vec<TenantInfo>, StoreError>;
    /// Sets a tenant's retention; `None` returns it to the server default.
    async fn set_retention(&self, tenant_name: &str, days: Option<u32>) -> Result<(), StoreError>;
}

/// Scans as the API submits and lists them, and as the report endpoint finds them.
#[async_trait]
pub trait ScanStore: Send + Sync {
    async fn create_scan(&self, scan: NewScan, now: Timestamp) -> Result<Scan, StoreError>;
    /// Like [`ScanStore::create_scan`], under an id the caller chose (a deterministic one, so
    /// that a retried create finds the first instead of making a second); a taken id is a
    /// conflict.
    async fn create_scan_with_id(
        &self,
        id: &str,
        scan: NewScan,
        now: Timestamp,
    ) -> Result<Scan, StoreError>;
    async fn list_scans(
        &self,
        tenant: Option<&str>,
        filter: &ScanFilter,
    ) -> Result<Vec<Scan>, StoreError>;
    /// Records the error a scan's final report gave, without changing its state.
    async fn set_error(&self, id: &str, error: &str, now: Timestamp) -> Result<(), StoreError>;
    /// Adds `count` dropped findings to a scan, keeping the first
    /// [`scanplane_core::scan::MAX_REJECTIONS`] reasons overall. With a `chunk` (the
    /// attempt and the sender's chunk number) a chunk already counted is not counted again.
    async fn record_rejections(
        &self,
        id: &str,
        count: u64,
        reasons: &[String],
        chunk: Option<ReportChunk>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn scan_for_report_token(&self, token_hash: &str) -> Result<Option<Scan>, StoreError>;
    /// The concurrency slots in use: scans in `admitted`, `dispatched` or `running`.
    async fn slot_usage(&self) -> Result<SlotUsage, StoreError>;
}

/// What the dispatcher reads and writes: admission rounds, scans by id and by state, their
/// moves through the state machine (also used by the API to cancel), the unit of work
/// they run in, and the tenant name a unit of work is labelled with.
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// One admission round, atomically across replicas: reads the queue, the slots in use,
    /// the maintenance windows and the rate buckets, decides with
    /// [`scanplane_core::admission::decide`], and applies the decisions.
    async fn admission_round(
        &self,
        limits: &Limits,
        policies: &[RateLimitPolicy],
        max_candidates: u32,
        now: Timestamp,
    ) -> Result<Vec<(String, Decision)>, StoreError>;
    async fn scan(&self, tenant: Option<&str>, id: &str) -> Result<Option<Scan>, StoreError>;
    async fn scans_with_status(
        &self,
        statuses: &[ScanStatus],
        limit: u32,
    ) -> Result<Vec<Scan>, StoreError>;
    /// Moves a scan to `to` if the state machine allows it from its current state, as one
    /// compare-and-set. `Illegal` if the scan moved meanwhile to a state `to` cannot follow.
    async fn transition(
        &self,
        id: &str,
        to: ScanStatus,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError>;
    /// Records the unit of work of a scan that is still in `status`.
    async fn set_executor_ref(
        &self,
        id: &str,
        status: ScanStatus,
        executor_ref: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn count_by_status(&self) -> Result<Vec<(ScanStatus, u64)>, StoreError>;
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError>;

    /// Registers replica `replica` with its lease, or re-registers it after it was declared
    /// lost (a new lease; its old attempts stay with whoever took them).
    async fn register_replica(&self, replica: &Replica) -> Result<(), StoreError>;
    /// Renews the lease of a replica that still holds one. `false` when it was declared
    /// lost (another replica took its attempts) or released: it must stop acting on them.
    async fn renew_lease(
        &self,
        id: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Ends a replica's lease now (a graceful stop), so others take over at once.
    async fn release_lease(&self, id: &str, reason: &str, now: Timestamp)
        -> Result<(), StoreError>;
    /// Takes over for `me` up to `limit` dispatched or running attempts whose owner's lease
    /// expired before `now` (that replica is then marked lost), or that no replica owns.
    /// Compare-and-set on the owner: of replicas claiming at once, each attempt goes to
    /// exactly one. Returns each claimed scan with the replica it was taken from.
    async fn claim_orphaned(
        &self,
        me: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(Option<String>, Scan)>, StoreError>;
    /// The dispatched and running attempts `me` owns.
    async fn owned_attempts(&self, me: &str) -> Result<Vec<Scan>, StoreError>;
    /// Records that the unit `executor_ref` of the scan's current attempt exited cleanly at
    /// `now`: its report is due within the grace, whoever owns the attempt then. `false` if
    /// the scan moved on or the unit is not its current one.
    async fn set_exited(
        &self,
        id: &str,
        executor_ref: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// The replicas sharing this database, as the admin listing shows them.
#[async_trait]
pub trait ReplicaStore: Send + Sync {
    /// Live replicas first, then the most recently stopped, at most `limit`.
    async fn list_replicas(&self, limit: u32) -> Result<Vec<Replica>, StoreError>;
}

/// Schedule definitions, as the API creates and edits them.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    async fn create_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;
    async fn schedule(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Schedule>, StoreError>;
    async fn list_schedules(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError>;
    /// Replaces a schedule's definition (the caller recomputed its next tick).
    async fn update_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;
    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError>;
}

/// What the scheduler needs: the due schedules, the next due time, and recording a tick.
#[async_trait]
pub trait TickStore: Send + Sync {
    /// Schedules whose `next_fire_at` is at or before `now`, earliest first.
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>, StoreError>;
    /// The earliest `next_fire_at` of any schedule.
    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError>;
    /// Applies a tick plan to the schedule as it was read (compare-and-set on its next
    /// tick) and creates the tick's scan, in one transaction.
    async fn record_tick(
        &self,
        schedule: &Schedule,
        plan: &TickPlan,
        scan: Option<NewScan>,
        now: Timestamp,
    ) -> Result<TickOutcome, StoreError>;
}

/// Maintenance windows, as the API creates and edits them (admission reads them itself).
#[async_trait]
pub trait WindowStore: Send + Sync {
    async fn create_window(&self, window: &MaintenanceWindow) -> Result<(), StoreError>;
    async fn window(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<MaintenanceWindow>, StoreError>;
    async fn list_windows(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError>;
    async fn update_window(
        &self,
        window: &MaintenanceWindow,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn delete_window(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError>;
}

/// Findings of a scan, and their identities across runs: the report endpoint and the
/// findings endpoints.
#[async_trait]
pub trait FindingStore: Send + Sync {
    /// Stores findings of a scan; a finding already stored for the scan (same fingerprint)
    /// is ignored, so retried chunks never duplicate. Returns how many were new.
    async fn insert_findings(
        &self,
        tenant_id: &str,
        scan_id: &str,
        scanner: &str,
        findings: &[Finding],
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    async fn list_findings(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
        filter: &FindingFilter,
    ) -> Result<Vec<StoredFinding>, StoreError>;
    /// How many findings of each severity the scan stored (severities with none left out).
    async fn severity_counts(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
    ) -> Result<Vec<(Severity, u64)>, StoreError>;
    /// Ends a scan `succeeded` and, in the same transaction, folds its findings into the
    /// tenant's identities: new ones open, fixed ones reopened, and every live identity of
    /// the same scope that this complete run did not report marked fixed by it.
    async fn complete_scan(
        &self,
        id: &str,
        change: &ScanChange,
        now: Timestamp,
    ) -> Result<Scan, StoreError>;
    async fn list_identities(
        &self,
        tenant: Option<&str>,
        filter: &IdentityFilter,
    ) -> Result<Vec<FindingIdentity>, StoreError>;
    async fn identity(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<FindingIdentity>, StoreError>;
    /// Sets the triage of an identity; it survives later runs.
    async fn set_triage(
        &self,
        tenant: Option<&str>,
        id: &str,
        triage: Triage,
        comment: Option<&str>,
        by: &str,
        now: Timestamp,
    ) -> Result<FindingIdentity, StoreError>;
    /// The scan compared with the previous succeeded run of its scope: the counts of each
    /// list and what [`FindingStore::diff_page`] needs, without reading the lists.
    async fn diff_summary(
        &self,
        tenant: Option<&str>,
        scan_id: &str,
    ) -> Result<DiffSummary, StoreError>;
    /// One page of a list of the diff, in id order, of the findings after `after` (keyset
    /// pagination: each page is one index range, whatever the size of the diff).
    async fn diff_page(
        &self,
        diff: &DiffSummary,
        list: DiffList,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredFinding>, StoreError>;
    /// The whole diff in memory, paged from [`FindingStore::diff_summary`]. Memory grows with
    /// the diff: for tests and small diffs; the API streams pages instead.
    async fn diff(&self, tenant: Option<&str>, scan_id: &str) -> Result<RunDiff, StoreError> {
        let summary = self.diff_summary(tenant, scan_id).await?;
        let mut lists = [Vec::new(), Vec::new(), Vec::new()];
        for (list, out) in [DiffList::New, DiffList::Fixed, DiffList::Reopened]
            .into_iter()
            .zip(lists.iter_mut())
        {
            loop {
                let after = out.last().map(|f: &StoredFinding| f.id.clone());
                let page = self
                    .diff_page(&summary, list, after.as_deref(), 1000)
                    .await?;
                if page.is_empty() {
                    break;
                }
                out.extend(page);
            }
        }
        let [new, fixed, reopened] = lists;
        Ok(RunDiff {
            previous_scan_id: summary.previous_scan_id,
            new,
            fixed,
            reopened,
            unchanged: summary.unchanged,
        })
    }
}

/// What the retention cleaner needs.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes one bounded batch of expired data: findings of ended scans older than their
    /// tenant's retention (or `default_retention`), then those scans, then identities fixed
    /// before the cutoff. Returns how many rows went; zero means nothing is left to clean.
    async fn clean_expired_batch(
        &self,
        now: Timestamp,
        default_retention: std::time::Duration,
        batch: u32,
    ) -> Result<u64, StoreError>;
}

/// Registries as the API creates and edits them. A registry's discovery and scan schedules
/// are ordinary schedules, written in the same transaction as the registry.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Creates the registry and its schedules. `Conflict` when its tenant already has a
    /// registry of that name.
    async fn create_registry(
        &self,
        registry: &RegistryRecord,
        schedules: &[Schedule],
    ) -> Result<(), StoreError>;
    async fn registry(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<RegistryRecord>, StoreError>;
    async fn list_registries(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RegistryRecord>, StoreError>;
    /// Replaces a registry's definition, credentials and schedules: the schedules it had
    /// and that are not in `schedules` are deleted, the others written as given.
    async fn update_registry(
        &self,
        registry: &RegistryRecord,
        schedules: &[Schedule],
    ) -> Result<(), StoreError>;
    /// Deletes a registry with its schedules, images and discoveries (SBOMs of digests stay:
    /// they belong to the digest, which another registry may share).
    async fn delete_registry(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError>;
    /// The latest discoveries of a registry, newest first.
    async fn discoveries(
        &self,
        registry_id: &str,
        limit: u32,
    ) -> Result<Vec<DiscoveryRecord>, StoreError>;
}

/// Images, their SBOMs and the package index, as the API lists them.
#[async_trait]
pub trait ImageStore: Send + Sync {
    async fn list_images(
        &self,
        tenant: Option<&str>,
        filter: &ImageFilter,
    ) -> Result<Vec<ImageRecord>, StoreError>;
    async fn image(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<ImageRecord>, StoreError>;
    /// The SBOM of a tenant's digest, and its document decompressed.
    async fn sbom(
        &self,
        tenant_id: &str,
        digest: &str,
    ) -> Result<Option<(SbomInfo, Vec<u8>)>, StoreError>;
    /// Packages of stored SBOMs matching the query, in `(sbom, seq)` order.
    async fn find_packages(
        &self,
        tenant: Option<&str>,
        query: &PackageQuery,
    ) -> Result<Vec<PackageHit>, StoreError>;
}

/// What the steps of a registry's pipeline write as their units of work report.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Records images a running discovery found (upsert on registry, repository, tag and
    /// platform; a tag seen again is live again). Returns how many were written.
    async fn record_images(
        &self,
        scan: &Scan,
        registry_id: &str,
        images: &[NewImage],
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Ends a discovery `succeeded`, in one transaction: images of the registry (of
    /// `repositories` only, when given) not seen since the scan's attempt started are marked
    /// removed, and an SBOM generation (`sbom_scan`, completed per digest by the callback)
    /// is queued for every live digest without an SBOM and without one asked for.
    // Each argument is one fact of the completion, taken in the one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn complete_discovery(
        &self,
        scan: &Scan,
        registry_id: &str,
        repositories: &[String],
        stats: Option<&str>,
        change: &ScanChange,
        sbom_scan: &(dyn for<'x> Fn(&'x str, &'x str) -> NewScan + Send + Sync),
        now: Timestamp,
    ) -> Result<(Scan, DiscoveryOutcome), StoreError>;
    /// Stores the SBOM of a digest for the scan's tenant, compressed, with its package
    /// index, unless the digest has one already (the first one stays). Returns whether it
    /// was stored.
    async fn store_sbom(
        &self,
        scan: &Scan,
        sbom: &NewSbom,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// Vulnerability advisories and their versioned imports; what the matcher reads.
#[async_trait]
pub trait AdvisoryStore: Send + Sync {
    /// Starts recording an import from `source` (a file, a feed URL, an upload).
    async fn begin_import(&self, source: &str, now: Timestamp) -> Result<String, StoreError>;
    /// Imports one batch into the import `import_id`, in one transaction: a new id is added,
    /// a known id whose document changed is replaced (keys and aliases with it), an unchanged
    /// one is counted only. The keys of what changed, before and after, join the import's
    /// changed keys.
    async fn import_advisories(
        &self,
        import_id: &str,
        batch: &[NewAdvisory],
        now: Timestamp,
    ) -> Result<ImportCounts, StoreError>;
    /// Ends an import with the records the caller refused (count and first reasons).
    async fn finish_import(
        &self,
        import_id: &str,
        rejected: u64,
        rejections: &[String],
        now: Timestamp,
    ) -> Result<AdvisoryImport, StoreError>;
    async fn advisory_import(&self, id: &str) -> Result<Option<AdvisoryImport>, StoreError>;
    /// The latest imports, newest first.
    async fn advisory_imports(&self, limit: u32) -> Result<Vec<AdvisoryImport>, StoreError>;
    /// An advisory by its id or one of its aliases (a CVE id), the id first.
    async fn advisory(&self, id_or_alias: &str) -> Result<Vec<StoredAdvisory>, StoreError>;
    /// The id and document SHA-256 of every advisory affecting one of `keys`, in id order:
    /// what a matcher checks its cache of parsed advisories against.
    async fn advisory_versions_for(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// The advisories of `ids` (those still stored), in id order.
    async fn advisories_by_id(&self, ids: &[String]) -> Result<Vec<StoredAdvisory>, StoreError>;
    /// The keys an import changed, in order after `after`.
    async fn import_keys(
        &self,
        import_id: &str,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// Claims the next check of an advisory feed when it is due (`next_check_at` ≤ now, or a
    /// feed never seen), moving its next check to `next_check_at`: of replicas asking at
    /// once, one gets the feed's state and the others `None`.
    async fn claim_feed_check(
        &self,
        source: &str,
        next_check_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<FeedState>, StoreError>;
    /// Records what a check did (validators, status, import) and when to check next.
    async fn record_feed_check(
        &self,
        state: &FeedState,
        next_check_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Every feed's state, by source.
    async fn feeds(&self) -> Result<Vec<FeedState>, StoreError>;
    /// Stored SBOMs (every tenant's) with a package of one of `keys`, in SBOM id order after
    /// `after`.
    async fn sboms_with_keys(
        &self,
        keys: &[(String, String)],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AffectedSbom>, StoreError>;
}

/// Vulnerability reports of stored SBOMs and the rematches imports need.
#[async_trait]
pub trait VulnerabilityStore: Send + Sync {
    /// Stored SBOMs never matched yet, oldest first.
    async fn unmatched_sboms(&self, limit: u32) -> Result<Vec<AffectedSbom>, StoreError>;
    /// Records reports in one transaction: each run is created and completed with its
    /// findings (identities new, reopened and fixed as for any run) and its SBOM marked
    /// matched; for a rematch, the import's cursor moves to `step.cursor` and its counts
    /// advance by the batch (`step.considered` SBOMs, of which those reported here changed).
    async fn record_vulnerability_reports(
        &self,
        reports: &[VulnerabilityReport],
        step: Option<&RematchStep>,
        now: Timestamp,
    ) -> Result<Vec<ReportOutcome>, StoreError>;
    /// The indexed packages of the SBOMs `sbom_ids` (only those of a key in `keys`, when
    /// given), in `(sbom, seq)` order.
    async fn sbom_packages(
        &self,
        sbom_ids: &[String],
        keys: Option<&[(String, String)]>,
    ) -> Result<Vec<PackageHit>, StoreError>;
    /// The live (open or reopened) findings of each scope of `scope_keys` (only those at
    /// `locations`, when given): what an SBOM's vulnerability report currently says, as
    /// `(scope key, finding)`.
    async fn live_findings(
        &self,
        scope_keys: &[String],
        locations: Option<&[String]>,
    ) -> Result<Vec<(String, Finding)>, StoreError>;
    /// Every stored SBOM (every tenant's), in id order after `after`: a full rematch.
    async fn sboms_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AffectedSbom>, StoreError>;
    /// Finished imports whose rematch has not finished, oldest first, with their cursors.
    async fn pending_rematches(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, Option<String>)>, StoreError>;
    async fn finish_rematch(&self, import_id: &str, now: Timestamp) -> Result<(), StoreError>;
    /// The latest succeeded run of `scanner` on `target` in `tenant_id`: an SBOM's report.
    async fn latest_report(
        &self,
        tenant_id: &str,
        scanner: &str,
        target: &str,
    ) -> Result<Option<Scan>, StoreError>;
}

/// A tenant's scan execution policies: replaced as a whole, listed in document order.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Makes `policies` the tenant's whole set of API policies in one transaction (declared
    /// ones stay); a policy that keeps its name keeps its `created_at`. Returns them as
    /// stored.
    async fn replace_policies(
        &self,
        tenant_id: &str,
        policies: &[StoredPolicy],
        now: Timestamp,
    ) -> Result<Vec<StoredPolicy>, StoreError>;
    /// The policies of `tenant` (every tenant's with `None`), by tenant then position.
    async fn list_policies(&self, tenant: Option<&str>) -> Result<Vec<StoredPolicy>, StoreError>;
    /// Creates or replaces one declared policy (by tenant and name); true when it changed.
    async fn upsert_declared_policy(
        &self,
        policy: &StoredPolicy,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Deletes one declared policy; true when it was there.
    async fn delete_declared_policy(&self, tenant_id: &str, name: &str)
        -> Result<bool, StoreError>;
}
