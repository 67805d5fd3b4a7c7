//! Advisory imports and lookups on both backends: an OSV all.zip upload (admin only) is
//! stored record by record with what it changed, a second upload of the same zip changes
//! nothing, bad uploads are refused saying why, and an advisory shows the caller's images
//! whose stored SBOM (uploaded the way an SBOM unit does) has an affected package version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Api, ADMIN};
use scanplane_store::{Backend, NewImage, RegistryRecord};
use serde_json::{json, Value};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// An osv.dev-style all.zip of the matcher's test advisories, plus one broken record.
fn all_zip(dir: &Path) -> Vec<u8> {
    let zip = dir.join("all.zip");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, pathlib\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n  [z.write(p, p.name) for p in sorted(pathlib.Path(sys.argv[2]).glob('*.json'))]\n  z.writestr('BROKEN-1.json', '{\"id\": 3}')",
        ])
        .arg(&zip)
        .arg(data("vuln/tests/data/advisories"))
        .status()
        .expect("python3 (apt-get install -y python3) builds the zip");
    assert!(status.success());
    std::fs::read(zip).unwrap()
}

async fn upload(api: &Api, token: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = api
        .client
        .post(format!("{}/api/v1/advisories/import", api.url))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn get(api: &Api, path: &str, token: &str) -> (u16, Value) {
    let resp = api
        .client
        .get(format!("{}{path}", api.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Tenant `tenant` has image app:1 (digest sha256:aa) whose SBOM is the captured Alpine one,
/// uploaded through the SBOM endpoint.
async fn image_with_sbom(api: &Api, tenant: &str) {
    let store = api.store.as_ref();
    let now = chrono::Utc::now();
    store
        .create_registry(
            &RegistryRecord {
                id: format!("reg-{tenant}"),
                tenant_id: tenant.into(),
                name: "local".into(),
                definition: json!({"name": "local", "url": "http://127.0.0.1:5000"}).to_string(),
                auth: None,
                discovery_schedule_id: None,
                scan_schedule_id: None,
                created_at: now,
                updated_at: now,
            },
            &[],
        )
        .await
        .unwrap();
    let discovery = common::running_step(
        store,
        tenant,
        "registry-discovery",
        &["registry://127.0.0.1:5000"],
        json!({"registry_id": format!("reg-{tenant}")}),
        &format!("d-{tenant}"),
    )
    .await;
    let image = NewImage {
        repository: "app".into(),
        tag: "1".into(),
        platform: "linux/amd64".into(),
        digest: "sha256:aa".into(),
        index_digest: None,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config_digest: "sha256:cc".into(),
        layers: "[]".into(),
        size: 1,
        created: None,
    };
    store
        .record_images(&discovery, &format!("reg-{tenant}"), &[image], now)
        .await
        .unwrap();
    let token = format!("s-{tenant}");
    let sbom = common::running_step(
        store,
        tenant,
        "sbom",
        &["image://127.0.0.1:5000/app@sha256:aa"],
        json!({"registry_id": format!("reg-{tenant}"), "digest": "sha256:aa"}),
        &token,
    )
    .await;
    let resp = api
        .client
        .put(format!("{}/api/v1/scans/{}/sbom", api.url, sbom.id))
        .bearer_auth(&token)
        .header("content-type", "application/spdx+json")
        .body(std::fs::read(data("sbom/tests/data/trivy/alpine-image.spdx.json")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn imports_are_versioned_and_advisories_name_affected_images(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let zip = all_zip(dir.path());

    let (code, first) = upload(&api, ADMIN, "application/zip", zip.clone()).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(
        (first["added"].as_u64(), first["rejected"].as_u64()),
        (Some(9), Some(1)),
        "{first}"
    );
    assert!(
        first["rejections"][0]
            .as_str()
            .unwrap()
            .starts_with("BROKEN-1.json: "),
        "{first}"
    );
    assert!(first["changed_keys"].as_u64().unwrap() >= 7, "{first}");
    assert!(first["finished_at"].is_string());

    let (code, again) = upload(&api, ADMIN, "application/zip", zip.clone()).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        (
            again["added"].as_u64(),
            again["unchanged"].as_u64(),
            again["changed_keys"].as_u64()
        ),
        (Some(0), Some(9), Some(0)),
        "{again}"
    );

    let (code, list) = get(&api, "/api/v1/advisories/imports", ADMIN).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], again["id"], "newest first");

    // Refusals name the problem and store nothing.
    let (code, e) = upload(&api, ADMIN, "application/json", zip.clone()).await;
    assert_eq!(code, 415, "{e}");
    let (code, e) = upload(&api, ADMIN, "application/zip", b"not a zip".to_vec()).await;
    assert_eq!(code, 422, "{e}");
    assert!(e["message"].as_str().unwrap().starts_with("body: "), "{e}");
    let tenant = api.store.ensure_tenant("team-a").await.unwrap();
    let other = api.store.ensure_tenant("team-b").await.unwrap();
    let token_a = create_token(&api, "team-a").await;
    let token_b = create_token(&api, "team-b").await;
    let (code, e) = upload(&api, &token_a, "application/zip", zip).await;
    assert_eq!(code, 403, "only the admin imports: {e}");

    // By alias; no image stored yet.
    let (code, adv) = get(&api, "/api/v1/advisories/CVE-2024-0727", &token_a).await;
    assert_eq!(code, 200, "{adv}");
    assert_eq!(adv["id"], "TEST-ALPINE-openssl-r6");
    assert_eq!(
        (adv["severity"].as_str(), adv["cvss_score"].as_f64()),
        (Some("medium"), Some(5.5))
    );
    assert_eq!(adv["document"]["id"], "TEST-ALPINE-openssl-r6");
    assert!(adv["images"].as_array().unwrap().is_empty());

    // Team A's image has libcrypto3 and libssl3 3.1.4-r5 (origin openssl): both affected.
    image_with_sbom(&api, &tenant.id).await;
    let (code, adv) = get(&api, "/api/v1/advisories/TEST-ALPINE-openssl-r6", &token_a).await;
    assert_eq!(code, 200, "{adv}");
    let mut hits: Vec<String> = adv["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}:{} {} {}",
                i["image"]["repository"].as_str().unwrap(),
                i["image"]["tag"].as_str().unwrap(),
                i["package"].as_str().unwrap(),
                i["installed_version"].as_str().unwrap()
            )
        })
        .collect();
    hits.sort();
    assert_eq!(
        hits,
        ["app:1 libcrypto3 3.1.4-r5", "app:1 libssl3 3.1.4-r5"],
        "{adv}"
    );
    assert_eq!(adv["images"][0]["fixed_versions"][0], "3.1.4-r6");
    // Fixed exclusive: the r5 advisory affects nothing.
    let (_, r5) = get(&api, "/api/v1/advisories/TEST-ALPINE-openssl-r5", &token_a).await;
    assert!(r5["images"].as_array().unwrap().is_empty(), "{r5}");
    // Team B sees the advisory but none of team A's images.
    let (code, adv_b) = get(&api, "/api/v1/advisories/TEST-ALPINE-openssl-r6", &token_b).await;
    assert_eq!(code, 200);
    assert!(adv_b["images"].as_array().unwrap().is_empty(), "{adv_b}");
    let _ = other;
    let (code, e) = get(&api, "/api/v1/advisories/CVE-1999-0000", &token_a).await;
    assert_eq!(code, 404, "{e}");
}

async fn create_token(api: &Api, tenant: &str) -> String {
    common::tenant_token(api, tenant).await
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(imports_are_versioned_and_advisories_name_affected_images);
