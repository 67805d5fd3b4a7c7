//! The endpoints a registry pipeline's units call, on both backends: image lines in a
//! discovery's report become images and its final line queues one SBOM per new digest; image
//! lines from any other scan are refused line by line; registry access and SBOM upload take
//! only their own kind of scan, refuse what is not an SPDX document or is over 64 MiB, and
//! keep the first SBOM of a digest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Api, ADMIN};
use scanplane_core::scan::Trigger;
use scanplane_store::{Backend, ImageFilter, RegistryRecord, Store};
use serde_json::{json, Value};

const SPDX: &[u8] = include_bytes!("../../sbom/tests/data/trivy/alpine-image.spdx.json");

async fn registry(store: &dyn Store, tenant: &str) -> String {
    let now = chrono::Utc::now();
    let record = RegistryRecord {
        id: "reg-1".into(),
        tenant_id: tenant.into(),
        name: "local".into(),
        definition: json!({"name": "local", "url": "http://127.0.0.1:5000"}).to_string(),
        auth: Some(json!({"username": "u", "password": "p4ss"}).to_string()),
        discovery_schedule_id: None,
        scan_schedule_id: None,
        created_at: now,
        updated_at: now,
    };
    store.create_registry(&record, &[]).await.unwrap();
    record.id
}

async fn send(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = api
        .client
        .request(method, format!("{}{path}", api.url))
        .bearer_auth(token)
        .header("content-type", "application/spdx+json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn image_line(repository: &str, tag: &str, digest: &str) -> String {
    format!(
        "{}\n",
        json!({"type": "image", "repository": repository, "tag": tag, "platform": "linux/amd64",
               "digest": digest, "media_type": "application/vnd.oci.image.manifest.v1+json",
               "config_digest": "sha256:c0", "layers": [{"digest": "sha256:11", "size": 10}], "size": 10})
    )
}

async fn a_discoverys_report_records_images_and_queues_sboms(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let registry_id = registry(api.store.as_ref(), &tenant).await;
    let scan = common::running_step(
        api.store.as_ref(),
        &tenant,
        "registry-discovery",
        &["registry://127.0.0.1:5000"],
        json!({"registry_id": registry_id}),
        "rt-d",
    )
    .await;

    // The unit reads its registry, credentials included, with its report token only.
    let path = format!("/api/v1/scans/{}/registry-access", scan.id);
    let (code, unit) = send(&api, reqwest::Method::GET, &path, "rt-d", vec![]).await;
    assert_eq!(code, 200, "{unit}");
    assert_eq!(unit["registry_id"], "reg-1");
    assert_eq!(unit["auth"]["password"], "p4ss");
    let (code, _) = send(&api, reqwest::Method::GET, &path, ADMIN, vec![]).await;
    assert_eq!(code, 401, "the admin token is not a unit's token");

    let mut body = String::new();
    body.push_str(&image_line("app", "1", "sha256:aa"));
    body.push_str(&image_line("app", "2", "sha256:aa"));
    body.push_str(&image_line("web", "1", "sha256:bb"));
    body.push_str(&image_line("web", "bad", "not-a-digest"));
    body.push_str(&format!(
        "{}\n",
        json!({"type": "final", "scan_run_id": scan.id, "status": "success",
               "targets_scanned": ["registry://127.0.0.1:5000"], "stats": {"images": 3, "skipped": 0}})
    ));
    let (code, accepted) = send(
        &api,
        reqwest::Method::POST,
        &format!("/api/v1/scans/{}/report", scan.id),
        "rt-d",
        body.into_bytes(),
    )
    .await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(accepted["rejected"], 1, "{accepted}");
    assert!(
        accepted["rejections"][0]
            .as_str()
            .unwrap()
            .contains("line 4: digest"),
        "{accepted}"
    );
    assert_eq!(accepted["status"], "succeeded", "{accepted}");

    let images = api
        .store
        .list_images(
            None,
            &ImageFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(images.len(), 3);
    let discoveries = api.store.discoveries(&registry_id, 5).await.unwrap();
    assert_eq!(discoveries.len(), 1);
    assert_eq!(
        (discoveries[0].images_seen, discoveries[0].sboms_queued),
        (3, 2)
    );
    let stats: Value = serde_json::from_str(discoveries[0].stats.as_deref().unwrap()).unwrap();
    assert_eq!(stats["images"], 3);

    // The queued SBOM generations pull by digest.
    let (code, page) = send(
        &api,
        reqwest::Method::GET,
        "/api/v1/scans?limit=10",
        ADMIN,
        vec![],
    )
    .await;
    assert_eq!(code, 200, "{page}");
    let mut sboms: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["scanner"] == "sbom")
        .map(|s| s["targets"][0].as_str().unwrap().to_string())
        .collect();
    sboms.sort();
    assert_eq!(
        sboms,
        [
            "image://127.0.0.1:5000/app@sha256:aa",
            "image://127.0.0.1:5000/web@sha256:bb"
        ]
    );
    let queued = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scanner"] == "sbom")
        .unwrap();
    let queued = api
        .store
        .scan(None, queued["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.trigger, Trigger::Pipeline);
}

async fn image_lines_from_other_scans_are_refused(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let scan = common::running_scan(api.store.as_ref(), &tenant, "rt-t").await;
    let body = format!(
        "{}{}",
        image_line("app", "1", "sha256:aa"),
        common::finding_lines(2, "f")
    );
    let (code, accepted) = send(
        &api,
        reqwest::Method::POST,
        &format!("/api/v1/scans/{}/report", scan.id),
        "rt-t",
        body.into_bytes(),
    )
    .await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(
        (accepted["inserted"].as_u64(), accepted["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(accepted["rejections"][0]
        .as_str()
        .unwrap()
        .contains("only from a registry discovery"));

    for (method, path) in [
        (
            reqwest::Method::GET,
            format!("/api/v1/scans/{}/registry-access", scan.id),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/scans/{}/sbom", scan.id),
        ),
    ] {
        let (code, error) = send(&api, method, &path, "rt-t", SPDX.to_vec()).await;
        assert_eq!(code, 409, "{path}: {error}");
        assert_eq!(error["error"], "conflict", "{error}");
    }
}

async fn sbom_upload_indexes_once_and_refuses_bad_documents(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let tenant = api.state.default_tenant.id.clone();
    let registry_id = registry(api.store.as_ref(), &tenant).await;
    let scan = common::running_step(
        api.store.as_ref(),
        &tenant,
        "sbom",
        &["image://127.0.0.1:5000/app@sha256:aa"],
        json!({"registry_id": registry_id, "digest": "sha256:aa"}),
        "rt-s",
    )
    .await;
    let path = format!("/api/v1/scans/{}/sbom", scan.id);

    let resp = api
        .client
        .put(format!("{}{path}", api.url))
        .bearer_auth("rt-s")
        .header("content-type", "text/plain")
        .body(SPDX.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        415,
        "an SBOM is sent as application/spdx+json"
    );
    let (code, error) = send(
        &api,
        reqwest::Method::PUT,
        &path,
        "rt-s",
        b"{\"not\": \"spdx\"}".to_vec(),
    )
    .await;
    assert_eq!(code, 422, "{error}");
    assert!(
        error["message"].as_str().unwrap().starts_with("body: "),
        "{error}"
    );
    let too_big = vec![b' '; scanplane_sbom::MAX_DOCUMENT_BYTES + 1];
    let (code, error) = send(&api, reqwest::Method::PUT, &path, "rt-s", too_big).await;
    assert_eq!(code, 413, "{error}");
    assert!(
        api.store
            .sbom(&tenant, "sha256:aa")
            .await
            .unwrap()
            .is_none(),
        "refusals store nothing"
    );

    let (code, accepted) = send(&api, reqwest::Method::PUT, &path, "rt-s", SPDX.to_vec()).await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(accepted["stored"], true);
    assert!(accepted["packages"].as_u64().unwrap() >= 5, "{accepted}");
    assert_eq!(accepted["os"], "alpine 3.19.1", "{accepted}");
    let (code, again) = send(&api, reqwest::Method::PUT, &path, "rt-s", SPDX.to_vec()).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["stored"], false, "the first SBOM of a digest stays");
    let (info, document) = api.store.sbom(&tenant, "sha256:aa").await.unwrap().unwrap();
    assert_eq!(document, SPDX);
    assert_eq!(info.package_count, accepted["packages"].as_u64().unwrap());
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    a_discoverys_report_records_images_and_queues_sboms,
    image_lines_from_other_scans_are_refused,
    sbom_upload_indexes_once_and_refuses_bad_documents
);
