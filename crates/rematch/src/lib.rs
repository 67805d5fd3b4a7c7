//! Vulnerability reports of stored SBOMs, kept current inside `serve`, never by pulling an
//! image again: every new SBOM is matched once against the stored advisories, and every
//! finished advisory import rematches **only** the SBOMs with a package of a key it changed.
//!
//! Decide, then act: [`findings_of`] (pure) turns an SBOM's matches into findings; the loop
//! reads what is due from the store and records each report in one transaction
//! (`VulnerabilityStore::record_vulnerability_report`), which also moves the SBOM's
//! `matched_at` and the rematch's cursor. A pass killed halfway resumes after the last SBOM
//! it recorded; recording a report twice changes no finding (same fingerprints), so nothing
//! is lost or doubled. Replicas may both run a pass: the worst case is one report recorded
//! twice, with the same findings.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use scanplane_core::clock::Clock;
use scanplane_core::finding::{fingerprint, Finding, Severity};
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::Trigger;
use scanplane_osv::Severity as VulnSeverity;
use scanplane_store::{AffectedSbom, NewScan, Store, StoreError, VulnerabilityReport};
use scanplane_vuln::{key_of, package_ref, EcosystemOrder, Matcher, VulnMatch};
use tokio::sync::watch;

/// The scanner name of vulnerability reports: one run per report, target `image://DIGEST`.
pub const SCANNER: &str = "vulnerabilities";
/// SBOMs matched per store read.
const BATCH: u32 = 50;
/// Advisories read per store call.
const ADVISORY_PAGE: u32 = 1000;
/// Most advisories one SBOM is matched against (a package set naming more is cut, logged).
const MAX_ADVISORIES: usize = 100_000;

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

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub new_sboms: u64,
    pub rematched: u64,
    pub imports_done: u64,
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
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.pass().await {
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
        let mut stats = PassStats::default();
        loop {
            let batch = self.store.unmatched_sboms(BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for sbom in &batch {
                self.report(sbom, None).await?;
                stats.new_sboms += 1;
            }
        }
        for (import_id, cursor) in self.store.pending_rematches(100).await? {
            let keys = self.import_keys(&import_id).await?;
            let mut after = cursor;
            let started = std::time::Instant::now();
            let mut done = 0u64;
            while !keys.is_empty() {
                let batch = self
                    .store
                    .sboms_with_keys(&keys, after.as_deref(), BATCH)
                    .await?;
                let Some(last) = batch.last() else {
                    break;
                };
                after = Some(last.sbom_id.clone());
                for sbom in &batch {
                    self.report(sbom, Some(&import_id)).await?;
                    done += 1;
                }
                tracing::info!(import_id = %import_id, sboms = done, "rematch progress");
            }
            self.store
                .finish_rematch(&import_id, self.clock.now())
                .await?;
            tracing::info!(import_id = %import_id, keys = keys.len(), sboms = done, took = ?started.elapsed(), "rematch finished");
            stats.rematched += done;
            stats.imports_done += 1;
        }
        Ok(stats)
    }

    /// Rematches every stored SBOM against the stored advisories, whatever changed: what an
    /// engine without an index of affected packages does on every advisory update (the
    /// baseline of the rematch benchmark). Returns how many SBOMs were matched.
    pub async fn rematch_all(&self) -> Result<u64, StoreError> {
        let mut after: Option<String> = None;
        let mut done = 0u64;
        loop {
            let page = self.store.sboms_page(after.as_deref(), BATCH).await?;
            let Some(last) = page.last() else {
                return Ok(done);
            };
            after = Some(last.sbom_id.clone());
            for sbom in &page {
                self.report(sbom, None).await?;
                done += 1;
            }
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

    /// Matches one SBOM against every advisory of its packages' keys and records the report.
    async fn report(
        &self,
        sbom: &AffectedSbom,
        rematch_of: Option<&str>,
    ) -> Result<(), StoreError> {
        let Some((_, document)) = self.store.sbom(&sbom.tenant_id, &sbom.digest).await? else {
            return self.skip(sbom, rematch_of, "no longer stored").await;
        };
        let index = match scanplane_sbom::index_any(&document) {
            Ok(index) => index,
            Err(e) => return self.skip(sbom, rematch_of, &e.to_string()).await,
        };
        let keys: BTreeSet<(String, String)> = index
            .packages
            .iter()
            .filter_map(package_ref)
            .map(|p| key_of(&p.ecosystem, &p.name))
            .collect();
        let keys: Vec<(String, String)> = keys.into_iter().collect();
        let mut advisories = Vec::new();
        let mut after: Option<String> = None;
        while !keys.is_empty() && advisories.len() < MAX_ADVISORIES {
            let page = self
                .store
                .advisories_for(&keys, after.as_deref(), ADVISORY_PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id.clone());
            for stored in &page {
                match scanplane_osv::parse(&stored.document) {
                    Ok(a) => advisories.push(a),
                    Err(e) => {
                        tracing::warn!(advisory = %stored.id, error = %e, "stored advisory does not parse")
                    }
                }
            }
        }
        if advisories.len() >= MAX_ADVISORIES {
            tracing::warn!(digest = %sbom.digest, "more advisories than one report takes; matched the first {MAX_ADVISORIES}");
        }
        let considered = advisories.len();
        let matches = Matcher::new(advisories).match_index(&index, &EcosystemOrder);
        let findings = findings_of(&sbom.digest, &matches);
        let report = VulnerabilityReport {
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
            reason: format!(
                "succeeded: {} vulnerabilities in {} packages, against {considered} advisories",
                findings.len(),
                index.packages.len()
            ),
            findings,
        };
        let outcome = self
            .store
            .record_vulnerability_report(&report, rematch_of, self.clock.now())
            .await?;
        tracing::debug!(digest = %sbom.digest, scan_run_id = %outcome.scan.id, new = outcome.new, fixed = outcome.fixed, "vulnerability report recorded");
        Ok(())
    }

    async fn skip(
        &self,
        sbom: &AffectedSbom,
        rematch_of: Option<&str>,
        why: &str,
    ) -> Result<(), StoreError> {
        tracing::warn!(digest = %sbom.digest, reason = why, "stored SBOM cannot be matched; skipped");
        match rematch_of {
            Some(import_id) => self.store.skip_rematch_sbom(import_id, &sbom.sbom_id).await,
            None => {
                self.store
                    .mark_unmatchable(&sbom.sbom_id, self.clock.now())
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
