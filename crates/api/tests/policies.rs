//! Scan execution policies over HTTP on a real store: the published schema, a YAML and a
//! JSON document stored as the tenant's whole set, every rejection (syntax, schema, unknown
//! cluster, media type) naming its field and changing nothing, and tenancy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{tenant_token, Api, ADMIN};
use scanplane_store::Backend;
use serde_json::{json, Value};

const EXAMPLE: &str = "\
scan_execution_policy:
- name: Run Cluster Image Scan
  description: This policy enforces container scans against a production cluster on a daily basis.
  enabled: true
  rules:
  - type: schedule
    clusters:
      production:
        namespaces:
        - production
        - staging
        kinds:
        - deployment
    cadence: 0 0 * * *
  actions:
  - scan: cluster_image_scanning
- name: Nightly
  enabled: false
  rules:
  - type: schedule
    cadence: 30 2 * * *
    timezone: Europe/Berlin
    clusters:
      production: {}
  actions:
  - scan: cluster_image_scanning
";

async fn put(api: &Api, token: &str, content_type: &str, body: &str) -> (u16, Value) {
    let resp = api
        .client
        .put(format!("{}/api/v1/policies", api.url))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap())
}

async fn list(api: &Api, token: &str) -> Value {
    let resp = api
        .client
        .get(format!("{}/api/v1/policies", api.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

async fn the_schema_is_published_without_a_token(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let resp = api
        .client
        .get(format!("{}/schemas/scan-execution-policy.json", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/schema+json"
    );
    let served: Value = resp.json().await.unwrap();
    let checked_in: Value = serde_json::from_str(scanplane_policy::SCHEMA).unwrap();
    assert_eq!(served, checked_in);
}

async fn documents_are_stored_whole_and_rejections_change_nothing(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let token = tenant_token(&api, "team-a").await;

    let (code, body) = put(&api, &token, "application/yaml", EXAMPLE).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(names(&body), ["Run Cluster Image Scan", "Nightly"]);
    let first = &body["items"][0];
    assert_eq!(first["tenant"], "team-a");
    assert_eq!(first["enabled"], true);
    assert_eq!(
        first["description"],
        "This policy enforces container scans against a production cluster on a daily basis."
    );
    assert_eq!(first["rules"][0]["cadence"], "0 0 * * *");
    assert_eq!(
        first["rules"][0]["timezone"], "UTC",
        "the default time zone is stored"
    );
    assert_eq!(
        first["rules"][0]["clusters"]["production"]["namespaces"],
        json!(["production", "staging"])
    );
    assert_eq!(
        first["actions"],
        json!([{"scan": "cluster_image_scanning"}])
    );
    assert_eq!(list(&api, &token).await["items"], body["items"]);

    // Rejections, each naming its field; the stored set stays as it was.
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "application/yaml",
            EXAMPLE.replace("cadence: 0 0 * * *", "cadence: every midnight"),
            422,
            "/scan_execution_policy/0/rules/0/cadence",
        ),
        (
            "application/yaml",
            EXAMPLE.replace("production: {}", "staging-eu: {}"),
            422,
            "/scan_execution_policy/1/rules/0/clusters/staging-eu",
        ),
        (
            "application/yaml",
            EXAMPLE.replace("enabled: false", "enabled: maybe"),
            422,
            "/scan_execution_policy/1/enabled",
        ),
        (
            "application/yaml",
            "scan_execution_policy: [".into(),
            400,
            "line",
        ),
        (
            "application/json",
            "{\"scan_execution_policy\": 3}".into(),
            422,
            "/scan_execution_policy",
        ),
        ("text/plain", EXAMPLE.into(), 415, "application/yaml"),
        (
            "application/yaml",
            EXAMPLE.replace("name: Nightly", "name: k8s:team-a/nightly"),
            422,
            "/scan_execution_policy/1/name",
        ),
    ];
    for (ct, doc, want, names_field) in cases {
        let (code, e) = put(&api, &token, ct, &doc).await;
        assert_eq!(code, want, "{ct}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains(names_field),
            "want {names_field} in {message}"
        );
        assert_eq!(
            names(&list(&api, &token).await),
            ["Run Cluster Image Scan", "Nightly"],
            "a rejected document changes nothing"
        );
    }

    // A JSON document replaces the set: the kept policy keeps its creation time.
    let created = body["items"][1]["created_at"].clone();
    let json_doc = json!({"scan_execution_policy": [{
        "name": "Nightly", "enabled": true,
        "rules": [{"type": "schedule", "cadence": "30 2 * * *", "clusters": {"production": {}}}],
        "actions": [{"scan": "cluster_image_scanning"}]
    }]});
    let (code, body) = put(&api, &token, "application/json", &json_doc.to_string()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(names(&body), ["Nightly"]);
    assert_eq!(body["items"][0]["created_at"], created);
    assert_eq!(body["items"][0]["enabled"], true);

    // Tenancy: another tenant sees none of them; the admin sees every tenant's.
    let other = tenant_token(&api, "team-b").await;
    assert!(names(&list(&api, &other).await).is_empty());
    let all = list(&api, ADMIN).await;
    assert_eq!(names(&all), ["Nightly"]);
    assert_eq!(all["items"][0]["tenant"], "team-a");

    // An empty list is a valid document: it removes every policy.
    let (code, body) = put(
        &api,
        &token,
        "application/yaml",
        "scan_execution_policy: []\n",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(names(&list(&api, &token).await).is_empty());
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    the_schema_is_published_without_a_token,
    documents_are_stored_whole_and_rejections_change_nothing
);
