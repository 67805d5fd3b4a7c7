//! The registry pipeline end to end, with real parts only: Debian's `docker-registry` on
//! loopback holding fixture images (umoci, skopeo), the `scanplane` binary on SQLite and
//! PostgreSQL with its local executor, and trivy generating the SBOMs.
//! Registry → discovery → images → one SBOM per digest → the package index; tags that
//! disappear are marked removed; a narrower discovery removes nothing outside its scope.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use scanplane_oci::testing::{FixtureImage, RegistryOptions, TestRegistry};
use scanplane_oci::Platform;
use scanplane_store::Backend;
use serde_json::{json, Value};

async fn images(s: &Server, query: &str) -> Vec<Value> {
    let (code, page) = s.get(&format!("/api/v1/images?{query}"), ADMIN).await;
    assert_eq!(code, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

fn tags(images: &[Value]) -> Vec<String> {
    let mut tags: Vec<String> = images
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["repository"].as_str().unwrap(),
                i["tag"].as_str().unwrap()
            )
        })
        .collect();
    tags.sort();
    tags
}

async fn discover(s: &Server, registry_id: &str, body: Value) -> Value {
    let (code, accepted) = s
        .post(
            &format!("/api/v1/registries/{registry_id}/discover"),
            ADMIN,
            body,
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["scan_run_id"].as_str().unwrap().to_string();
    let scan = s.wait_scan(&id, Duration::from_secs(60), terminal).await;
    assert_eq!(
        scan["status"],
        "succeeded",
        "{scan}\nlog:\n{}",
        s.log_text()
    );
    scan
}

/// Waits until every live image of the registry has an SBOM.
async fn wait_sboms(s: &Server, registry_id: &str, expected_images: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = images(s, &format!("registry={registry_id}")).await;
        if list.len() == expected_images && list.iter().all(|i| i["sbom_id"].is_string()) {
            return list;
        }
        if Instant::now() > deadline {
            let (_, scans) = s.get("/api/v1/scans?limit=50", ADMIN).await;
            panic!(
                "SBOMs not all generated: {list:?}\nscans: {scans}\nlog:\n{}",
                s.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A zip of the `.json` files of `dir` (plus `extra` entries), as osv.dev exports them.
fn zip_of(work: &Path, name: &str, dir: &Path, extra: &[(&str, &str)]) -> Vec<u8> {
    let zip = work.join(name);
    let mut cmd = std::process::Command::new("python3");
    cmd.args([
        "-c",
        "import sys, zipfile, pathlib\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n  [z.write(p, p.name) for p in sorted(pathlib.Path(sys.argv[2]).glob('*.json'))]\n  [z.writestr(n, c) for n, c in zip(sys.argv[3::2], sys.argv[4::2])]",
    ])
    .arg(&zip)
    .arg(dir);
    for (n, c) in extra {
        cmd.arg(n).arg(c);
    }
    assert!(cmd.status().expect("python3 builds the zip").success());
    std::fs::read(zip).unwrap()
}

async fn import_advisories(s: &Server, zip: &[u8]) -> Value {
    let resp = s
        .client
        .post(format!("{}/api/v1/advisories/import", s.url))
        .bearer_auth(ADMIN)
        .header("content-type", "application/zip")
        .body(zip.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Polls an image's vulnerability report until `done` holds for its findings.
async fn wait_report(s: &Server, image: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, page) = s
            .get(
                &format!("/api/v1/images/{image}/vulnerabilities?limit=100"),
                ADMIN,
            )
            .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if code == 200 && done(&items) {
            return items;
        }
        if Instant::now() > deadline {
            panic!("report of {image}: {code} {page}\nlog:\n{}", s.log_text());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls the imports until `id`'s rematch finished; returns its counts.
async fn wait_rematch(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = s.get("/api/v1/advisories/imports", ADMIN).await;
        if let Some(i) = list
            .as_array()
            .and_then(|l| l.iter().find(|i| i["id"] == id))
        {
            if i["rematch"]["finished_at"].is_string() {
                return i["rematch"].clone();
            }
        }
        if Instant::now() > deadline {
            panic!(
                "rematch of {id} not finished: {list}\nlog:\n{}",
                s.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pipeline_end_to_end(backend: Backend) {
    let registry = TestRegistry::start(RegistryOptions::default());
    let app = registry.build_image("app", "1", FixtureImage::alpine());
    registry.tag("app", "1", "2");
    let web = registry.build_image("web", "1.0", FixtureImage::debian());
    let arm = Platform::new("linux", "arm64", None);
    let edge = registry.build_image("edge", "1", FixtureImage::alpine().on(arm));
    registry.push_helm_chart("charts/demo", "0.1.0");
    assert_ne!(app, web);
    assert_ne!(app, edge);

    let db = fresh_db(backend).await;
    let s = Server::start(&db, &[]).await;
    let (code, created) = s
        .post(
            "/api/v1/registries",
            ADMIN,
            json!({"name": "local", "url": registry.url(), "catalog": "oci"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    // First discovery: every runnable image, the chart skipped, one SBOM per digest queued.
    let scan = discover(&s, &id, json!({})).await;
    assert_eq!(
        scan["targets"],
        json!([format!("registry://{}", registry.host())])
    );
    let list = images(&s, &format!("registry={id}")).await;
    assert_eq!(
        tags(&list),
        ["app:1", "app:2", "edge:1", "web:1.0"],
        "{list:?}"
    );
    let app1 = list
        .iter()
        .find(|i| i["tag"] == "1" && i["repository"] == "app")
        .unwrap();
    assert_eq!(app1["digest"], app);
    assert_eq!(app1["platform"], "linux/amd64");
    let (code, discoveries) = s
        .get(&format!("/api/v1/registries/{id}/discoveries"), ADMIN)
        .await;
    assert_eq!(code, 200, "{discoveries}");
    let first = &discoveries[0];
    assert_eq!(first["images_seen"], 4, "{discoveries}");
    assert_eq!(first["sboms_queued"], 3, "one per digest: {discoveries}");
    let stats = &first["stats"];
    assert_eq!(stats["skipped"], 1, "the Helm chart: {stats}");
    assert_eq!(stats["images"], 4, "{stats}");

    // The SBOM units run trivy against the registry; app:1 and app:2 share one.
    let list = wait_sboms(&s, &id, 4).await;
    let sbom_of = |repo: &str, tag: &str| {
        list.iter()
            .find(|i| i["repository"] == repo && i["tag"] == tag)
            .unwrap()["sbom_id"]
            .clone()
    };
    assert_eq!(sbom_of("app", "1"), sbom_of("app", "2"));
    assert_ne!(sbom_of("app", "1"), sbom_of("web", "1.0"));
    let image_id = app1["id"].as_str().unwrap();
    let resp = s
        .client
        .get(format!("{}/api/v1/images/{image_id}/sbom", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spdx: Value = resp.json().await.unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let names: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"musl") && names.contains(&"libcrypto3"),
        "{names:?}"
    );
    let (code, hits) = s.get("/api/v1/packages?name=libssl3", ADMIN).await;
    assert_eq!(code, 200, "{hits}");
    let mut digests: Vec<&str> = hits["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["digest"].as_str())
        .collect();
    digests.sort_unstable();
    digests.dedup();
    let mut want = vec![app.as_str(), edge.as_str(), web.as_str()];
    want.sort_unstable();
    assert_eq!(digests, want, "libssl3 is in all three images: {hits}");

    // Vulnerabilities: advisories imported after the SBOMs were stored rematch only the
    // SBOMs they affect; the reports name the affected packages of each image.
    let dir = tempfile::tempdir().unwrap();
    let advisories = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/data/advisories");
    let import = import_advisories(&s, &zip_of(dir.path(), "all.zip", &advisories, &[])).await;
    assert_eq!(import["added"], 9, "{import}");
    let app_id = app1["id"].as_str().unwrap().to_string();
    // The fixture's libcrypto3 and libssl3 are 3.1.4-r2 (origin openssl): below both fixes.
    let report = wait_report(&s, &app_id, |r| r.len() == 4).await;
    let mut found: Vec<String> = report
        .iter()
        .map(|f| {
            let purl = f["location"].as_str().unwrap();
            format!(
                "{} {}",
                f["rule_id"].as_str().unwrap(),
                purl.split('@').next().unwrap()
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "TEST-ALPINE-openssl-r5 pkg:apk/alpine/libcrypto3",
            "TEST-ALPINE-openssl-r5 pkg:apk/alpine/libssl3",
            "TEST-ALPINE-openssl-r6 pkg:apk/alpine/libcrypto3",
            "TEST-ALPINE-openssl-r6 pkg:apk/alpine/libssl3",
        ]
    );
    let report: Vec<Value> = report
        .into_iter()
        .filter(|f| f["rule_id"] == "TEST-ALPINE-openssl-r6")
        .collect();
    let detail: Value = serde_json::from_str(report[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["fixed_versions"][0], "3.1.4-r6");
    assert!(
        detail["layer_diff_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{detail}"
    );
    let web_id = list.iter().find(|i| i["repository"] == "web").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let web_report = wait_report(&s, &web_id, |r| !r.is_empty()).await;
    assert_eq!(web_report[0]["rule_id"], "TEST-DEBIAN-openssl");
    let sarif = s
        .client
        .get(format!(
            "{}/api/v1/images/{app_id}/vulnerabilities?format=sarif",
            s.url
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(sarif.status(), 200);
    let sarif: Value = sarif.json().await.unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 4);

    // A correction (the r6 record now says r2 fixed it) marks those findings fixed, and
    // the import's rematch says what it did.
    let corrected = dir.path().join("corrected");
    std::fs::create_dir(&corrected).unwrap();
    std::fs::write(
        corrected.join("TEST-ALPINE-openssl-r6.json"),
        r#"{"schema_version": "1.6.0", "id": "TEST-ALPINE-openssl-r6", "modified": "2024-06-01T00:00:00Z",
            "aliases": ["CVE-2024-0727"],
            "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r2"}]}]}]}"#,
    )
    .unwrap();
    let second = import_advisories(&s, &zip_of(dir.path(), "corrected.zip", &corrected, &[])).await;
    assert_eq!(
        (second["modified"].as_u64(), second["changed_keys"].as_u64()),
        (Some(1), Some(1)),
        "{second}"
    );
    let left = wait_report(&s, &app_id, |r| r.len() == 2).await;
    assert!(
        left.iter()
            .all(|f| f["rule_id"] == "TEST-ALPINE-openssl-r5"),
        "{left:?}"
    );
    let rematch = wait_rematch(&s, second["id"].as_str().unwrap()).await;
    assert_eq!(
        rematch["sboms_considered"], 2,
        "app and edge have openssl, web does not: {rematch}"
    );
    assert_eq!(rematch["findings_fixed"], 4, "{rematch}");
    assert_eq!(rematch["findings_new"], 0, "{rematch}");
    let (code, fixed) = s
        .get(
            "/api/v1/findings?status=fixed&scanner=vulnerabilities&limit=100",
            ADMIN,
        )
        .await;
    assert_eq!(code, 200, "{fixed}");
    assert_eq!(fixed["items"].as_array().unwrap().len(), 4, "{fixed}");

    // A narrower discovery sees only its repository: nothing else is marked removed.
    registry.delete_tag("edge", "1");
    discover(&s, &id, json!({"repositories": ["web"]})).await;
    assert_eq!(tags(&images(&s, &format!("registry={id}")).await).len(), 4);

    // A full one marks the vanished tag removed, keeps it for history, queues nothing new.
    discover(&s, &id, json!({})).await;
    assert_eq!(
        tags(&images(&s, &format!("registry={id}")).await),
        ["app:1", "app:2", "web:1.0"]
    );
    let all = images(&s, &format!("registry={id}&include_removed=true")).await;
    let gone = all.iter().find(|i| i["repository"] == "edge").unwrap();
    assert!(gone["removed_at"].is_string(), "{gone}");
    assert!(gone["sbom_id"].is_string(), "its SBOM stays: {gone}");
    let (_, discoveries) = s
        .get(&format!("/api/v1/registries/{id}/discoveries"), ADMIN)
        .await;
    let latest = &discoveries[0];
    assert_eq!(latest["images_removed"], 1, "{discoveries}");
    assert_eq!(latest["sboms_queued"], 0, "{discoveries}");
}

/// Credentials reach the units (discovery and trivy) and never an API response; a wrong
/// password fails the discovery permanently with the registry's answer as the reason.
async fn private_registry(backend: Backend) {
    let registry = TestRegistry::start(RegistryOptions {
        htpasswd: Some(("scan".into(), "s3cret-pw".into())),
        tls: false,
    });
    registry.build_image("private/app", "1", FixtureImage::alpine());
    let db = fresh_db(backend).await;
    let s = Server::start(&db, &[]).await;
    let (code, created) = s
        .post(
            "/api/v1/registries",
            ADMIN,
            json!({"name": "private", "url": registry.url(),
                   "auth": {"username": "scan", "password": "s3cret-pw"}}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert!(!created.to_string().contains("s3cret-pw"), "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    discover(&s, &id, json!({})).await;
    let list = wait_sboms(&s, &id, 1).await;
    assert_eq!(tags(&list), ["private/app:1"]);

    let (code, patched) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/registries/{id}"),
            ADMIN,
            Some(json!({"auth": {"username": "scan", "password": "badpass-123"}})),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    let (code, accepted) = s
        .post(
            &format!("/api/v1/registries/{id}/discover"),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let scan = s
        .wait_scan(
            accepted["scan_run_id"].as_str().unwrap(),
            Duration::from_secs(60),
            terminal,
        )
        .await;
    assert_eq!(scan["status"], "failed", "{scan}");
    let reason = scan.to_string();
    assert!(
        reason.contains("401"),
        "the reason names the registry's answer: {scan}"
    );
    assert!(!reason.contains("badpass-123"), "{scan}");
    // The failed run removed nothing.
    assert_eq!(images(&s, &format!("registry={id}")).await.len(), 1);
    assert!(
        !s.log_text().contains("s3cret-pw"),
        "no secret in the server log"
    );
}

/// A registry serving TLS with its own CA: trusted through `ca_bundle` by the discovery and
/// by trivy; without it, the discovery fails naming the certificate problem.
async fn registry_with_its_own_ca(backend: Backend) {
    let registry = TestRegistry::start(RegistryOptions {
        htpasswd: None,
        tls: true,
    });
    registry.build_image("app", "1", FixtureImage::alpine());
    let db = fresh_db(backend).await;
    let s = Server::start(&db, &[]).await;
    assert!(registry.url().starts_with("https://"));
    let (code, untrusted) = s
        .post(
            "/api/v1/registries",
            ADMIN,
            json!({"name": "untrusted", "url": registry.url()}),
        )
        .await;
    assert_eq!(code, 201, "{untrusted}");
    let (code, accepted) = s
        .post(
            &format!(
                "/api/v1/registries/{}/discover",
                untrusted["id"].as_str().unwrap()
            ),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let scan = s
        .wait_scan(
            accepted["scan_run_id"].as_str().unwrap(),
            Duration::from_secs(60),
            terminal,
        )
        .await;
    assert_eq!(scan["status"], "failed", "{scan}");
    assert!(
        scan["reason"].as_str().unwrap().contains(&registry.url()),
        "the reason names the registry: {scan}"
    );

    let (code, trusted) = s
        .post(
            "/api/v1/registries",
            ADMIN,
            json!({"name": "trusted", "url": registry.url(), "ca_bundle": registry.ca_pem().unwrap()}),
        )
        .await;
    assert_eq!(code, 201, "{trusted}");
    let id = trusted["id"].as_str().unwrap().to_string();
    discover(&s, &id, json!({})).await;
    let list = wait_sboms(&s, &id, 1).await;
    assert_eq!(tags(&list), ["app:1"]);
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    pipeline_end_to_end,
    private_registry,
    registry_with_its_own_ca
);
