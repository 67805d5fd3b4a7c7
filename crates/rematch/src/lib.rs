//! Vulnerability reports of stored SBOMs, kept current inside `serve`, never by pulling an
//! image again: every new SBOM is matched once against the stored advisories, and every
//! finished advisory import rematches **only** the SBOMs with a package of a key it changed.
//!
//! Work goes by batches of SBOMs, each read from the store's package index (never by parsing
//! the stored document again) and matched against advisories parsed once per version
//! ([`AdvisoryCache`]). A rematch reads only the packages of the keys its import changed,
//! matches only those, and keeps the rest of each SBOM's live findings as they are: the cost
//! of an advisory update follows what it touches, not the size of the fleet.
//!
//! Decide, then act: [`findings_of`] and [`merged_report`] (pure) say what an SBOM's report
//! must be, and whether that differs from what it already says; the loop records the reports
//! of a batch in one transaction (`VulnerabilityStore::record_vulnerability_reports`), which
//! also moves the SBOMs' `matched_at` and the rematch's cursor. A pass killed halfway resumes
//! after the last batch it recorded; recording a report twice changes no finding (same
//! fingerprints), and an unchanged SBOM gets no new report, so nothing is lost or doubled.
//! Replicas may both run a pass: the worst case is one batch recorded twice, with the same
//! findings.

pub mod feeds;
pub mod import;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use scanplane_core::clock::Clock;
use scanplane_core::finding::{fingerprint, Finding, Severity};
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{scope_key, Trigger};
use scanplane_osv::{Advisory, Severity as VulnSeverity};
use scanplane_store::{
    AffectedSbom, NewScan, PackageHit, RematchStep, Store, StoreError, VulnerabilityReport,
};
use scanplane_vuln::{package_ref, EcosystemOrder, Matcher, VulnMatch};
use tokio::sync::watch;

/// The scanner name of vulnerability reports: one run per report, target `image://DIGEST`.
pub const SCANNER: &str = "vulnerabilities";
/// SBOMs matched per store read and per transaction.
pub const BATCH: u32 = 50;
/// Advisories fetched per store call.
const ADVISORY_FETCH: usize = 500;
/// Parsed advisories kept between batches; past this the cache starts over (bounded memory:
/// a parsed OSV record is a few KiB).
const CACHE_MAX: usize = 50_000;

/// The scope key of an SBOM's reports: how its live findings are found.
pub fn scope_of(tenant_id: &str, digest: &str) -> String {
    scope_key(tenant_id, SCANNER, &[target_of(digest)], "{}")
}

/// The target of an SBOM's report.
pub fn target_of(digest: &str) -> String {
    format!("image://{digest}")
}

fn severity_of(m: &VulnMatch) -> Severity {
    match m.severity_rank() {
        VulnSeverity::Critical => Severity::Critical,
        VulnSeverity::High => Severity::High,
        VulnSeverity::Medium => Severity::Medium,
        VulnSeverity::Low => Severity::Low,
        VulnSeverity::Unknown => Severity::Unknown,
    }
}

/// The findings of an SBOM's matches. The identity of a finding is the digest, the package's
/// purl (or name) and the advisory id, so the same vulnerability of the same package of the
/// same image is one finding across reports. The detail is a JSON object with what a
/// report shows: aliases, installed and fixed versions, CVSS score, the layer's diffID.
pub fn findings_of(digest: &str, matches: &[VulnMatch]) -> Vec<Finding> {
    let target = target_of(digest);
    matches
        .iter()
        .map(|m| {
            let location = m.purl.clone().unwrap_or_else(|| m.package.clone());
            let detail = serde_json::json!({
                "aliases": m.aliases,
                "package": m.package,
                "installed_version": m.installed_version,
                "fixed_versions": m.fixed_versions,
                "cvss_score": m.cvss_score,
                "ecosystem": m.ecosystem,
                "matched_name": m.matched_name,
                "layer_diff_id": m.layer_diff_id,
            });
            Finding {
                fingerprint: fingerprint(SCANNER, &[digest, &location, &m.id]),
                target: target.clone(),
                rule_id: m.id.clone(),
                severity: severity_of(m),
                title: format!("{} in {} {}", m.id, m.package, m.installed_version),
                location,
                detail: detail.to_string(),
            }
        })
        .collect()
}

/// The findings an SBOM's report must have once the packages at `rematched` locations (every
/// package, when `None`) were matched again as `fresh`: its live findings elsewhere stay as
/// they are. `None` when that is exactly what its live findings already say (same
/// identities, same severity, title and detail): there is nothing to record.
pub fn merged_report(
    live: &[Finding],
    rematched: Option<&BTreeSet<String>>,
    fresh: Vec<Finding>,
) -> Option<Vec<Finding>> {
    let mut merged: Vec<Finding> = match rematched {
        Some(locations) => live
            .iter()
            .filter(|f| !locations.contains(&f.location))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    merged.extend(fresh);
    merged.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    merged.dedup_by(|a, b| a.fingerprint == b.fingerprint);
    let mut current: Vec<&Finding> = live.iter().collect();
    current.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    current.dedup_by(|a, b| a.fingerprint == b.fingerprint);
    let same = merged.len() == current.len()
        && merged.iter().zip(&current).all(|(a, b)| {
            a.fingerprint == b.fingerprint
                && a.severity == b.severity
                && a.title == b.title
                && a.detail == b.detail
                && a.rule_id == b.rule_id
                && a.location == b.location
        });
    (!same).then_some(merged)
}

/// Parsed advisories by id, each checked against its stored document's SHA-256 before use:
/// an advisory is read and parsed once per version, not once per SBOM that names it.
#[derive(Default)]
pub struct AdvisoryCache {
    by_id: HashMap<String, (String, Arc<Advisory>)>,
}

impl AdvisoryCache {
    /// Every stored advisory of `keys`, parsed (a record that no longer parses is logged and
    /// left out).
    pub async fn advisories_for(
        &mut self,
        store: &dyn Store,
        keys: &[(String, String)],
    ) -> Result<Vec<Arc<Advisory>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let versions = store.advisory_versions_for(keys).await?;
        let stale = |cache: &HashMap<String, (String, Arc<Advisory>)>, id: &str, sha: &str| {
            cache.get(id).is_none_or(|(cached, _)| cached != sha)
        };
        let mut missing: Vec<String> = versions
            .iter()
            .filter(|(id, sha)| stale(&self.by_id, id, sha))
            .map(|(id, _)| id.clone())
            .collect();
        if self.by_id.len() + missing.len() > CACHE_MAX {
            self.by_id.clear();
            missing = versions.iter().map(|(id, _)| id.clone()).collect();
        }
        for ids in missing.chunks(ADVISORY_FETCH) {
            for stored in store.advisories_by_id(ids).await? {
                match scanplane_osv::parse(&stored.document) {
                    Ok(a) => {
                        self.by_id.insert(stored.id, (stored.sha256, Arc::new(a)));
                    }
                    Err(e) => {
                        tracing::warn!(advisory = %stored.id, error = %e, "stored advisory does not parse")
                    }
                }
            }
        }
        Ok(versions
            .iter()
            .filter_map(|(id, _)| self.by_id.get(id).map(|(_, a)| Arc::clone(a)))
            .collect())
    }

    /// Parsed advisories held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub new_sboms: u64,
    pub rematched: u64,
    pub imports_done: u64,
}

/// What a rematch of many SBOMs did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RematchStats {
    /// SBOMs whose packages were matched again.
    pub considered: u64,
    /// Of those, SBOMs whose report changed (a new report recorded).
    pub changed: u64,
    /// Packages matched again.
    pub packages: u64,
}

/// The packages of an SBOM as the matcher reads them, from the store's index.
fn package_of(hit: PackageHit) -> scanplane_sbom::Package {
    let p = hit.package;
    scanplane_sbom::Package {
        spdx_id: format!("index-{}", hit.seq),
        name: p.name,
        version: p.version,
        purl: p.purl,
        ecosystem: p.ecosystem,
        distro: p.distro,
        source_name: p.source_name,
        source_version: p.source_version,
        layer_diff_id: p.layer_diff_id,
    }
}

/// Packages grouped by SBOM id.
fn by_sbom(hits: Vec<PackageHit>) -> HashMap<String, Vec<scanplane_sbom::Package>> {
    let mut out: HashMap<String, Vec<scanplane_sbom::Package>> = HashMap::new();
    for hit in hits {
        out.entry(hit.sbom_id.clone())
            .or_default()
            .push(package_of(hit));
    }
    out
}

/// The advisory keys of packages.
fn keys_of<'a>(
    packages: impl Iterator<Item = &'a scanplane_sbom::Package>,
) -> Vec<(String, String)> {
    let keys: BTreeSet<(String, String)> = packages
        .filter_map(package_ref)
        .map(|p| scanplane_vuln::key_of(&p.ecosystem, &p.name))
        .collect();
    keys.into_iter().collect()
}

/// Keeps the reports current.
pub struct Rematcher {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Pause between passes.
    pub every: Duration,
}

impl Rematcher {
    /// Runs passes until `shutdown` turns true; a failed pass is retried next time.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut cache = AdvisoryCache::default();
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.pass_with(&mut cache).await {
                Ok(stats) if stats != PassStats::default() => {
                    tracing::info!(
                        new_sboms = stats.new_sboms,
                        rematched = stats.rematched,
                        imports = stats.imports_done,
                        "vulnerability reports updated"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "vulnerability matching pass failed; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Matches every new SBOM, then finishes every pending rematch.
    pub async fn pass(&self) -> Result<PassStats, StoreError> {
        self.pass_with(&mut AdvisoryCache::default()).await
    }

    /// [`Rematcher::pass`] with a cache kept across passes.
    pub async fn pass_with(&self, cache: &mut AdvisoryCache) -> Result<PassStats, StoreError> {
        let mut stats = PassStats::default();
        loop {
            let batch = self.store.unmatched_sboms(BATCH).await?;
            if batch.is_empty() {
                break;
            }
            self.match_new(&batch, cache).await?;
            stats.new_sboms += batch.len() as u64;
        }
        for (import_id, cursor) in self.store.pending_rematches(100).await? {
            let done = self.rematch_import(&import_id, cursor, cache).await?;
            stats.rematched += done.considered;
            stats.imports_done += 1;
        }
        Ok(stats)
    }

    /// Rematches the SBOMs with a package of a key the import changed, from its cursor on,
    /// then marks its rematch finished.
    async fn rematch_import(
        &self,
        import_id: &str,
        cursor: Option<String>,
        cache: &mut AdvisoryCache,
    ) -> Result<RematchStats, StoreError> {
        let started = std::time::Instant::now();
        let keys = self.import_keys(import_id).await?;
        let matcher = Matcher::shared(cache.advisories_for(self.store.as_ref(), &keys).await?);
        let mut after = cursor;
        let mut total = RematchStats::default();
        while !keys.is_empty() {
            let batch = self
                .store
                .sboms_with_keys(&keys, after.as_deref(), BATCH)
                .await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = Some(last.sbom_id.clone());
            let step = RematchStep {
                import_id: import_id.to_string(),
                cursor: last.sbom_id.clone(),
                considered: batch.len() as u64,
            };
            let done = self
                .rematch_batch(&batch, Some((&keys, &matcher)), Some(&step), cache)
                .await?;
            total.considered += done.considered;
            total.changed += done.changed;
            total.packages += done.packages;
            tracing::info!(import_id = %import_id, sboms = total.considered, changed = total.changed, "rematch progress");
        }
        self.store
            .finish_rematch(import_id, self.clock.now())
            .await?;
        tracing::info!(import_id = %import_id, keys = keys.len(), advisories = matcher.len(), sboms = total.considered, changed = total.changed, packages = total.packages, took = ?started.elapsed(), "rematch finished");
        Ok(total)
    }

    /// Rematches every stored SBOM, every package of it, against the stored advisories,
    /// whatever changed: what an engine without an index of affected packages does on every
    /// advisory update (the baseline of the rematch benchmark). SBOMs whose report is
    /// unchanged get no new report.
    pub async fn rematch_all(&self) -> Result<RematchStats, StoreError> {
        let mut cache = AdvisoryCache::default();
        let mut after: Option<String> = None;
        let mut total = RematchStats::default();
        loop {
            let page = self.store.sboms_page(after.as_deref(), BATCH).await?;
            let Some(last) = page.last() else {
                return Ok(total);
            };
            after = Some(last.sbom_id.clone());
            let done = self.rematch_batch(&page, None, None, &mut cache).await?;
            total.considered += done.considered;
            total.changed += done.changed;
            total.packages += done.packages;
        }
    }

    async fn import_keys(&self, import_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut keys = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .store
                .import_keys(import_id, after.as_ref(), 10_000)
                .await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            keys.extend(page);
            after = Some(last);
        }
        Ok(keys)
    }

    /// Matches new SBOMs in full and records a report for each (an empty one too: the SBOM
    /// is then matched).
    async fn match_new(
        &self,
        batch: &[AffectedSbom],
        cache: &mut AdvisoryCache,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = batch.iter().map(|s| s.sbom_id.clone()).collect();
        let mut packages = by_sbom(self.store.sbom_packages(&ids, None).await?);
        let keys = keys_of(packages.values().flatten());
        let matcher = Matcher::shared(cache.advisories_for(self.store.as_ref(), &keys).await?);
        let reports: Vec<VulnerabilityReport> = batch
            .iter()
            .map(|sbom| {
                let packages = packages.remove(&sbom.sbom_id).unwrap_or_default();
                let matches = matcher.match_packages(&packages, &EcosystemOrder);
                let findings = findings_of(&sbom.digest, &matches);
                let reason = format!(
                    "succeeded: {} vulnerabilities in {} packages, against {} advisories",
                    findings.len(),
                    packages.len(),
                    matcher.len()
                );
                report_of(sbom, findings, reason)
            })
            .collect();
        self.store
            .record_vulnerability_reports(&reports, None, self.clock.now())
            .await?;
        Ok(())
    }

    /// Matches a batch again (only the packages of `scope`'s keys against its matcher, or
    /// every package against every advisory of their keys) and records a report for each
    /// SBOM whose findings change, with the rematch's step, in one transaction.
    async fn rematch_batch(
        &self,
        batch: &[AffectedSbom],
        scope: Option<(&[(String, String)], &Matcher)>,
        step: Option<&RematchStep>,
        cache: &mut AdvisoryCache,
    ) -> Result<RematchStats, StoreError> {
        let ids: Vec<String> = batch.iter().map(|s| s.sbom_id.clone()).collect();
        let hits = self
            .store
            .sbom_packages(&ids, scope.map(|(keys, _)| keys))
            .await?;
        let package_count = hits.len() as u64;
        let mut packages = by_sbom(hits);
        let full;
        let matcher = match scope {
            Some((_, matcher)) => matcher,
            None => {
                let keys = keys_of(packages.values().flatten());
                full = Matcher::shared(cache.advisories_for(self.store.as_ref(), &keys).await?);
                &full
            }
        };
        let scopes: Vec<String> = batch
            .iter()
            .map(|s| scope_of(&s.tenant_id, &s.digest))
            .collect();
        // Decide per SBOM from its live findings at the packages matched again (all of them
        // for a full rematch); only an SBOM whose report changes has all its live findings
        // read, to carry over into its new report.
        let mut fresh_of: Vec<(Vec<Finding>, Option<BTreeSet<String>>, usize)> = Vec::new();
        let mut locations: BTreeSet<String> = BTreeSet::new();
        for sbom in batch {
            let packages = packages.remove(&sbom.sbom_id).unwrap_or_default();
            let matches = matcher.match_packages(&packages, &EcosystemOrder);
            let rematched: Option<BTreeSet<String>> = scope.map(|_| {
                packages
                    .iter()
                    .map(|p| p.purl.clone().unwrap_or_else(|| p.name.clone()))
                    .collect()
            });
            if let Some(r) = &rematched {
                locations.extend(r.iter().cloned());
            }
            fresh_of.push((
                findings_of(&sbom.digest, &matches),
                rematched,
                packages.len(),
            ));
        }
        let locations: Vec<String> = locations.into_iter().collect();
        let live_at = self
            .store
            .live_findings(&scopes, scope.map(|_| locations.as_slice()))
            .await?;
        let mut live: HashMap<String, Vec<Finding>> = HashMap::new();
        for (scope_key, finding) in live_at {
            live.entry(scope_key).or_default().push(finding);
        }
        let changed: Vec<usize> = fresh_of
            .iter()
            .zip(&scopes)
            .enumerate()
            .filter(|(_, ((fresh, rematched, _), scope_key))| {
                let current = live.get(*scope_key).map_or(&[][..], Vec::as_slice);
                merged_report(current, rematched.as_ref(), fresh.clone()).is_some()
            })
            .map(|(i, _)| i)
            .collect();
        if scope.is_some() && !changed.is_empty() {
            let wanted: Vec<String> = changed.iter().map(|&i| scopes[i].clone()).collect();
            live.clear();
            for (scope_key, finding) in self.store.live_findings(&wanted, None).await? {
                live.entry(scope_key).or_default().push(finding);
            }
        }
        let mut reports = Vec::new();
        for i in changed {
            let (fresh, rematched, matched_packages) = std::mem::take(&mut fresh_of[i]);
            let current = live.remove(&scopes[i]).unwrap_or_default();
            let Some(findings) = merged_report(&current, rematched.as_ref(), fresh) else {
                continue;
            };
            let reason = format!(
                "succeeded: {} vulnerabilities; {matched_packages} packages matched again, against {} advisories",
                findings.len(),
                matcher.len()
            );
            reports.push(report_of(&batch[i], findings, reason));
        }
        let changed = reports.len() as u64;
        self.store
            .record_vulnerability_reports(&reports, step, self.clock.now())
            .await?;
        Ok(RematchStats {
            considered: batch.len() as u64,
            changed,
            packages: package_count,
        })
    }
}

/// The report of an SBOM: one run of [`SCANNER`] on its digest.
fn report_of(sbom: &AffectedSbom, findings: Vec<Finding>, reason: String) -> VulnerabilityReport {
    VulnerabilityReport {
        sbom_id: sbom.sbom_id.clone(),
        scan: NewScan {
            tenant_id: sbom.tenant_id.clone(),
            project_id: None,
            schedule_id: None,
            fire_time: None,
            trigger: Trigger::Pipeline,
            scanner: SCANNER.to_string(),
            provider: None,
            targets: vec![target_of(&sbom.digest)],
            billing: false,
            options: serde_json::json!({"sbom_id": sbom.sbom_id}).to_string(),
            scope_options: "{}".to_string(),
            on_maintenance: WindowAction::Hold,
        },
        reason,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(location: &str, id: &str, severity: Severity) -> Finding {
        Finding {
            fingerprint: fingerprint(SCANNER, &["sha256:aa", location, id]),
            target: target_of("sha256:aa"),
            rule_id: id.into(),
            severity,
            title: format!("{id} in {location}"),
            location: location.into(),
            detail: "{}".into(),
        }
    }

    #[test]
    fn a_rematch_keeps_the_findings_of_packages_it_did_not_match_again() {
        let live = vec![
            finding("pkg:npm/a@1", "CVE-1", Severity::High),
            finding("pkg:npm/b@1", "CVE-2", Severity::Low),
        ];
        let rematched: BTreeSet<String> = ["pkg:npm/b@1".to_string()].into();
        // b's advisory was corrected away: only a's finding stays.
        let merged = merged_report(&live, Some(&rematched), Vec::new()).unwrap();
        assert_eq!(merged, vec![live[0].clone()]);
        // b newly affected by another advisory too.
        let fresh = vec![
            finding("pkg:npm/b@1", "CVE-2", Severity::Low),
            finding("pkg:npm/b@1", "CVE-3", Severity::Critical),
        ];
        let merged = merged_report(&live, Some(&rematched), fresh).unwrap();
        let ids: BTreeSet<&str> = merged.iter().map(|f| f.rule_id.as_str()).collect();
        assert_eq!(ids, ["CVE-1", "CVE-2", "CVE-3"].into());
    }

    #[test]
    fn an_unchanged_match_records_nothing_and_a_severity_change_does() {
        let live = vec![
            finding("pkg:npm/a@1", "CVE-1", Severity::High),
            finding("pkg:npm/b@1", "CVE-2", Severity::Low),
        ];
        let rematched: BTreeSet<String> = ["pkg:npm/b@1".to_string()].into();
        let same = vec![finding("pkg:npm/b@1", "CVE-2", Severity::Low)];
        assert_eq!(merged_report(&live, Some(&rematched), same), None);
        // A full match that finds the same, in another order: nothing either.
        let full = vec![live[1].clone(), live[0].clone()];
        assert_eq!(merged_report(&live, None, full), None);
        // The advisory's severity was raised: same identity, a new report.
        let raised = vec![finding("pkg:npm/b@1", "CVE-2", Severity::High)];
        let merged = merged_report(&live, Some(&rematched), raised).unwrap();
        assert_eq!(merged.len(), 2);
        assert!(merged
            .iter()
            .any(|f| f.severity == Severity::High && f.rule_id == "CVE-2"));
        // A full match drops what it no longer finds.
        let merged = merged_report(&live, None, vec![live[0].clone()]).unwrap();
        assert_eq!(merged, vec![live[0].clone()]);
        // An SBOM with nothing live and nothing found: nothing to record.
        assert_eq!(merged_report(&[], None, Vec::new()), None);
    }

    #[test]
    fn findings_carry_a_stable_identity_and_the_report_fields() {
        let m = VulnMatch {
            id: "CVE-1".into(),
            aliases: vec!["GHSA-x".into()],
            purl: Some("pkg:npm/a@1".into()),
            package: "a".into(),
            installed_version: "1".into(),
            fixed_versions: vec!["2".into()],
            severity: "high".into(),
            cvss_score: Some(7.5),
            ecosystem: "npm".into(),
            matched_name: "a".into(),
            layer_diff_id: Some("sha256:11".into()),
        };
        let f = findings_of("sha256:aa", std::slice::from_ref(&m));
        assert_eq!(f[0].target, "image://sha256:aa");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].location, "pkg:npm/a@1");
        let detail: serde_json::Value = serde_json::from_str(&f[0].detail).unwrap();
        assert_eq!(detail["fixed_versions"][0], "2");
        assert_eq!(detail["layer_diff_id"], "sha256:11");
        let again = findings_of("sha256:aa", std::slice::from_ref(&m));
        assert_eq!(f[0].fingerprint, again[0].fingerprint);
        let other_image = findings_of("sha256:bb", &[m]);
        assert_ne!(f[0].fingerprint, other_image[0].fingerprint);
    }
}
