//! A rematch killed halfway completes on restart with nothing lost or doubled: `serve` is
//! SIGKILLed while an advisory import rematches 400 stored SBOMs, started again on the same
//! database, and then every SBOM has exactly one report from the rematch, every report the
//! findings it must have, and the import's counts cover each SBOM once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use scanplane_core::finding::Severity;
use scanplane_core::identity::FindingStatus;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_store::{
    Backend, IdentityFilter, NewSbom, NewScan, SbomPackage, ScanChange, ScanFilter, Store,
};
use serde_json::Value;

const SBOMS: usize = 400;

fn fixture() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sbom/tests/data/trivy/alpine-image.spdx.json"),
    )
    .unwrap()
}

/// The fixture's packages with their advisory keys, as the SBOM upload stores them.
fn packages(document: &[u8]) -> Vec<SbomPackage> {
    scanplane_sbom::index_any(document)
        .unwrap()
        .packages
        .into_iter()
        .map(|p| SbomPackage {
            match_key: p.purl.as_deref().and_then(|purl| {
                scanplane_vuln::match_key(purl, p.source_name.as_deref(), p.distro.as_deref())
            }),
            name: p.name,
            version: p.version,
            purl: p.purl,
            ecosystem: p.ecosystem,
            distro: p.distro,
            source_name: p.source_name,
            source_version: p.source_version,
            layer_diff_id: p.layer_diff_id,
        })
        .collect()
}

async fn store_sboms(store: &dyn Store) {
    let tenant = store.ensure_tenant("default").await.unwrap();
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant.id.clone(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::Pipeline,
                scanner: "sbom".into(),
                provider: None,
                targets: vec!["image://127.0.0.1:5000/app@sha256:00".into()],
                billing: false,
                options: "{}".into(),
                scope_options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    // Not a unit anyone will run: it only owns the SBOMs stored here.
    store
        .transition(
            &scan.id,
            ScanStatus::Cancelled,
            &ScanChange {
                reason: "test".into(),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    let document = fixture();
    let packages = packages(&document);
    for i in 0..SBOMS {
        let sbom = NewSbom {
            digest: format!("sha256:{i:064x}"),
            format: "spdx-json".into(),
            generator: "trivy".into(),
            document: document.clone(),
            os: Some("alpine 3.19.1".into()),
            packages: packages.clone(),
        };
        assert!(store.store_sbom(&scan, &sbom, now).await.unwrap());
    }
}

/// The matcher's test advisories as an all.zip.
fn advisories_zip(work: &Path) -> Vec<u8> {
    let zip = work.join("all.zip");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, pathlib\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n  [z.write(p, p.name) for p in sorted(pathlib.Path(sys.argv[2]).glob('*.json'))]",
        ])
        .arg(&zip)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/data/advisories"))
        .status()
        .expect("python3 builds the zip");
    assert!(status.success());
    std::fs::read(zip).unwrap()
}

async fn rematch_of(s: &Server, import: &str) -> Value {
    let (code, list) = s.get("/api/v1/advisories/imports", ADMIN).await;
    assert_eq!(code, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == import)
        .unwrap()["rematch"]
        .clone()
}

async fn vulnerability_scans(store: &dyn Store) -> Vec<scanplane_core::scan::Scan> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_scans(
                None,
                &ScanFilter {
                    scanner: Some("vulnerabilities".into()),
                    after: after.clone(),
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        all.extend(page);
    }
    all
}

async fn killed_rematch_resumes(backend: Backend) {
    let db = fresh_db(backend).await;
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(scanplane_store::open(&db).await.unwrap());
    store_sboms(store.as_ref()).await;

    let port = free_port();
    let mut s = Server::start_on(&db, port, &[]).await;
    // Every new SBOM is matched once (no advisories yet: empty reports).
    let deadline = Instant::now() + Duration::from_secs(120);
    while !store.unmatched_sboms(1).await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "new SBOMs not matched:\n{}",
            s.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(vulnerability_scans(store.as_ref()).await.len(), SBOMS);

    let dir = tempfile::tempdir().unwrap();
    let resp = s
        .client
        .post(format!("{}/api/v1/advisories/import", s.url))
        .bearer_auth(ADMIN)
        .header("content-type", "application/zip")
        .body(advisories_zip(dir.path()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let import: Value = resp.json().await.unwrap();
    let import_id = import["id"].as_str().unwrap().to_string();

    // SIGKILL while the rematch is under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    let considered_at_kill = loop {
        let r = rematch_of(&s, &import_id).await;
        let n = r["sboms_considered"].as_u64().unwrap();
        if n >= 20 {
            s.kill9();
            assert!(
                r["finished_at"].is_null() && n < SBOMS as u64,
                "the rematch was too fast to interrupt ({r}); raise SBOMS"
            );
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "rematch did not start: {r}\n{}",
            s.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let s = Server::start_on(&db, port, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let rematch = loop {
        let r = rematch_of(&s, &import_id).await;
        if r["finished_at"].is_string() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "rematch not finished after restart: {r}\n{}",
            s.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("killed at {considered_at_kill} of {SBOMS}; after restart: {rematch}");
    assert_eq!(
        rematch["sboms_considered"], SBOMS as u64,
        "each SBOM counted once: {rematch}"
    );
    assert_eq!(rematch["sboms_rematched"], SBOMS as u64, "{rematch}");
    assert_eq!(rematch["findings_new"], 3 * SBOMS as u64, "{rematch}");
    assert_eq!(rematch["findings_fixed"], 0, "{rematch}");

    // Exactly one report per SBOM from the rematch, none lost, none doubled.
    let scans = vulnerability_scans(store.as_ref()).await;
    assert_eq!(
        scans.len(),
        2 * SBOMS,
        "an initial report and a rematch report per SBOM"
    );
    assert!(scans.iter().all(|s| s.status == ScanStatus::Succeeded));
    let mut per_target = std::collections::HashMap::<String, usize>::new();
    for scan in &scans {
        *per_target.entry(scan.targets[0].clone()).or_default() += 1;
    }
    assert_eq!(per_target.len(), SBOMS);
    assert!(per_target.values().all(|n| *n == 2), "{per_target:?}");
    let open = store
        .list_identities(
            None,
            &IdentityFilter {
                scanner: Some("vulnerabilities".into()),
                status: Some(FindingStatus::Open),
                limit: 5000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        open.len(),
        3 * SBOMS,
        "libcrypto3 and libssl3 (openssl, fixed in r6) and left-pad, per image"
    );
    assert!(open.iter().any(|i| i.finding.severity == Severity::Medium));
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(killed_rematch_resumes);
