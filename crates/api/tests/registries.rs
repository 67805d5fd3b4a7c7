//! Registry, image and package endpoints through the real server on both backends: the
//! create/get/list/patch/delete round trip and the discovery schedule it writes; every
//! refused request names its field and changes nothing; credentials never appear in any
//! answer (every response body of this file is checked for them); tenants see only their
//! own; an on-demand discovery is a queued scan of the right scanner, target, options and
//! provider; images, SBOMs (SPDX as stored, CycloneDX rendered) and the package index
//! over data written through the store as a discovery and an SBOM unit would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Api, ADMIN};
use reqwest::Method;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_store::{Backend, NewImage, NewSbom, NewScan, SbomPackage, ScanChange};
use serde_json::{json, Value};

/// The credentials of this file's registries: no response may contain any of them.
const PASSWORD: &str = "pw-9f2c1e-never-shown";
const CONFIG_SECRET: &str = "Y2ktdXNlcjpjaS1zZWNyZXQtNzc=";

fn docker_config() -> String {
    json!({"auths": {"r.example:5000": {"auth": CONFIG_SECRET}}}).to_string()
}

/// Status, content type and body text of a request; panics if the body holds a secret.
async fn raw(
    api: &Api,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, String, String) {
    let mut req = api
        .client
        .request(method.clone(), format!("{}{path}", api.url));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap();
    for secret in [PASSWORD, CONFIG_SECRET] {
        assert!(
            !text.contains(secret),
            "{method} {path}: a credential is in the answer: {text}"
        );
    }
    (status, content_type, text)
}

async fn call(
    api: &Api,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, text) = raw(api, method, path, token, body).await;
    if status == 204 {
        assert_eq!(text, "", "{path}: a 204 has no body");
        return (status, Value::Null);
    }
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: {status} body is not JSON: {text:?}"));
    (status, body)
}

async fn get(api: &Api, path: &str, token: &str) -> (u16, Value) {
    call(api, Method::GET, path, token, None).await
}

/// A 422 whose message starts with `field: `.
fn assert_invalid(what: &str, (code, body): &(u16, Value), field: &str) {
    assert_eq!(*code, 422, "{what}: {body}");
    assert_eq!(body["error"], "invalid", "{what}: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(&format!("{field}: ")),
        "{what}: message {msg:?} should name {field:?}"
    );
}

async fn tenant_token(api: &Api, tenant: &str) -> String {
    let (code, body) = call(
        api,
        Method::POST,
        "/api/v1/tokens",
        ADMIN,
        Some(json!({"tenant": tenant, "name": "t"})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

fn registry_body(name: &str) -> Value {
    json!({
        "name": name,
        "url": "HTTPS://R.example:5000/",
        "repositories": [
            {"name": "app", "match_conditions": [
                {"name": "prod", "expression": "tag.endsWith('-prod')"},
                {"name": "recent", "expression": "semver(tag, true).isGreaterThan(semver('v1.0.0', true))"}
            ], "match_operator": "or"},
            {"name": "lib/base"}
        ],
        "platforms": [{"os": "linux", "arch": "arm64", "variant": "v8"}, {"os": "linux", "arch": "amd64"}],
        "auth": {"username": "ci", "password": PASSWORD},
        "discovery": {"every": "6h", "jitter": "5m"}
    })
}

async fn create(api: &Api, token: &str, body: Value) -> Value {
    let (code, view) = call(api, Method::POST, "/api/v1/registries", token, Some(body)).await;
    assert_eq!(code, 201, "{view}");
    view
}

async fn list_ids(api: &Api, token: &str) -> Vec<String> {
    let (code, page) = get(api, "/api/v1/registries", token).await;
    assert_eq!(code, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn round_trip(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let view = create(&api, ADMIN, registry_body("hub")).await;
    let id = view["id"].as_str().unwrap().to_string();
    assert_eq!(view["name"], "hub");
    assert_eq!(view["tenant"], "default");
    assert_eq!(view["url"], "https://r.example:5000", "normalised");
    assert_eq!(view["catalog"], "oci");
    assert_eq!(view["insecure"], false);
    assert_eq!(view["repositories"][0]["match_operator"], "or");
    assert_eq!(view["repositories"][1]["match_conditions"], json!([]));
    assert_eq!(view["platforms"][0]["variant"], "v8");
    assert_eq!(view["auth"], json!({"type": "basic", "username": "ci"}));
    assert_eq!(view["discovery"]["every"], "6h");
    assert_eq!(view["discovery"]["jitter"], "5m");
    assert!(view["discovery"]["next_fire_at"].is_string(), "{view}");
    assert_eq!(view["scan"], Value::Null);
    assert_eq!(view["last_discovery"], Value::Null);

    let (code, got) = get(&api, &format!("/api/v1/registries/{id}"), ADMIN).await;
    assert_eq!(code, 200);
    assert_eq!(got, view);
    let (code, page) = get(&api, "/api/v1/registries", ADMIN).await;
    assert_eq!(code, 200);
    assert_eq!(page["items"], json!([view]));
    assert_eq!(page["next_cursor"], Value::Null);

    // The discovery schedule is an ordinary schedule of the reserved scanner.
    let schedule_id = view["discovery"]["schedule_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, sched) = get(&api, &format!("/scans/schedule/{schedule_id}"), ADMIN).await;
    assert_eq!(code, 200, "{sched}");
    assert_eq!(sched["scanner"], "registry-discovery");
    assert_eq!(sched["targets"], json!(["registry://r.example:5000"]));
    assert_eq!(sched["options"], json!({"registry_id": id}));
    assert_eq!(sched["every"], "6h");
    assert_eq!(sched["on_maintenance"], "hold");

    // PATCH: new credentials, URL and cadence; the same schedule, re-armed.
    let (code, patched) = call(
        &api,
        Method::PATCH,
        &format!("/api/v1/registries/{id}"),
        ADMIN,
        Some(json!({
            "name": "hub2",
            "url": "http://mirror.example:8080",
            "auth": {"config_json": docker_config()},
            "discovery": {"cron_exp": "0 3 * * *", "timezone": "Europe/Berlin"},
            "ca_bundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        })),
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["name"], "hub2");
    assert_eq!(patched["url"], "http://mirror.example:8080");
    assert_eq!(patched["auth"], json!({"type": "docker_config"}));
    assert_eq!(patched["discovery"]["schedule_id"], schedule_id.as_str());
    assert_eq!(patched["discovery"]["cron_exp"], "0 3 * * *");
    assert_eq!(patched["discovery"]["timezone"], "Europe/Berlin");
    assert_eq!(patched["discovery"]["every"], Value::Null);
    assert_eq!(patched["repositories"], view["repositories"], "kept");
    assert!(patched["ca_bundle"].as_str().unwrap().contains("BEGIN"));
    assert_eq!(patched["created_at"], view["created_at"]);
    let (_, sched) = get(&api, &format!("/scans/schedule/{schedule_id}"), ADMIN).await;
    assert_eq!(sched["targets"], json!(["registry://mirror.example:8080"]));
    assert_eq!(sched["cron_exp"], "0 3 * * *");

    // Absent keeps; null removes.
    let path = format!("/api/v1/registries/{id}");
    let (code, same) = call(&api, Method::PATCH, &path, ADMIN, Some(json!({}))).await;
    assert_eq!(code, 200, "{same}");
    assert_eq!(same["auth"], json!({"type": "docker_config"}));
    assert_eq!(same["discovery"]["schedule_id"], schedule_id.as_str());
    let (code, cleared) = call(
        &api,
        Method::PATCH,
        &path,
        ADMIN,
        Some(json!({"auth": null, "discovery": null, "ca_bundle": null, "scan": null})),
    )
    .await;
    assert_eq!(code, 200, "{cleared}");
    assert_eq!(cleared["auth"], Value::Null);
    assert_eq!(cleared["discovery"], Value::Null);
    assert_eq!(cleared["ca_bundle"], Value::Null);
    let (code, _) = get(&api, &format!("/scans/schedule/{schedule_id}"), ADMIN).await;
    assert_eq!(code, 404, "the discovery schedule went with it");
    // A discovery cadence can come back.
    let (code, again) = call(
        &api,
        Method::PATCH,
        &path,
        ADMIN,
        Some(json!({"discovery": {"every": "1m"}})),
    )
    .await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["discovery"]["every"], "1m");
    let new_schedule = again["discovery"]["schedule_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A second page.
    let second = create(&api, ADMIN, registry_body("other")).await;
    let (_, page) = get(&api, "/api/v1/registries?limit=1", ADMIN).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, page2) = get(
        &api,
        &format!("/api/v1/registries?limit=1&cursor={next}"),
        ADMIN,
    )
    .await;
    assert_eq!(page2["items"][0]["id"], second["id"]);

    let (code, _) = call(&api, Method::DELETE, &path, ADMIN, None).await;
    assert_eq!(code, 204);
    let (code, body) = get(&api, &path, ADMIN).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["error"], "not_found");
    let (code, _) = call(&api, Method::DELETE, &path, ADMIN, None).await;
    assert_eq!(code, 404);
    let (code, _) = get(&api, &format!("/scans/schedule/{new_schedule}"), ADMIN).await;
    assert_eq!(code, 404);
    assert_eq!(
        list_ids(&api, ADMIN).await,
        vec![second["id"].as_str().unwrap().to_string()]
    );
    let (code, body) = get(&api, "/api/v1/registries?bogus=1", ADMIN).await;
    assert_eq!(code, 400, "{body}");
    api.stop().await;
}

async fn refusals_name_their_field_and_change_nothing(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let kept = create(&api, ADMIN, registry_body("kept")).await;
    let kept_path = format!("/api/v1/registries/{}", kept["id"].as_str().unwrap());
    let (_, schedules_before) = get(&api, "/scans/schedule", ADMIN).await;

    let with = |patch: Value| {
        let mut b = registry_body("new");
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let repos =
        |conditions: Value| json!([{"name": "a"}, {"name": "b", "match_conditions": conditions}]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "url with a path",
            with(json!({"url": "https://r.example/v2"})),
            "url",
        ),
        (
            "url with a query",
            with(json!({"url": "https://r.example?x"})),
            "url",
        ),
        (
            "url with userinfo",
            with(json!({"url": format!("https://u:{PASSWORD}@r.example")})),
            "url",
        ),
        ("not https", with(json!({"url": "ftp://r.example"})), "url"),
        (
            "a bad port",
            with(json!({"url": "https://r.example:99999"})),
            "url",
        ),
        (
            "catalog none without repositories",
            with(json!({"catalog": "none", "repositories": []})),
            "repositories",
        ),
        (
            "a CEL parse error",
            with(
                json!({"repositories": repos(json!([{"name": "c", "expression": "tag.endsWith("}]))}),
            ),
            "repositories[1].match_conditions[0].expression",
        ),
        (
            "a non-bool expression",
            with(
                json!({"repositories": repos(json!([{"name": "c", "expression": "tag.size()"}]))}),
            ),
            "repositories[1].match_conditions[0].expression",
        ),
        (
            "duplicate condition names",
            with(json!({"repositories": repos(json!([
                {"name": "c", "expression": "tag == 'a'"},
                {"name": "c", "expression": "tag == 'b'"}
            ]))})),
            "repositories[1].match_conditions[1].name",
        ),
        (
            "too many conditions",
            with(json!({"repositories": repos(Value::Array(
                (0..17).map(|i| json!({"name": format!("c{i}"), "expression": "true"})).collect()
            ))})),
            "repositories[1].match_conditions",
        ),
        (
            "a repository listed twice",
            with(json!({"repositories": [{"name": "a"}, {"name": "a"}]})),
            "repositories[1].name",
        ),
        (
            "an empty repository name",
            with(json!({"repositories": [{"name": ""}]})),
            "repositories[0].name",
        ),
        (
            "an uppercase repository name",
            with(json!({"repositories": [{"name": "App"}]})),
            "repositories[0].name",
        ),
        (
            "too many repositories",
            with(json!({"repositories": Value::Array(
                (0..1001).map(|i| json!({"name": format!("r{i}")})).collect()
            )})),
            "repositories",
        ),
        (
            "a platform without os",
            with(json!({"platforms": [{"os": "", "arch": "amd64"}]})),
            "platforms[0].os",
        ),
        (
            "a platform without arch",
            with(json!({"platforms": [{"os": "linux", "arch": " "}]})),
            "platforms[0].arch",
        ),
        (
            "too many platforms",
            with(json!({"platforms": Value::Array(
                (0..33).map(|i| json!({"os": "linux", "arch": format!("a{i}")})).collect()
            )})),
            "platforms",
        ),
        (
            "no certificate",
            with(json!({"ca_bundle": "hello"})),
            "ca_bundle",
        ),
        ("an empty name", with(json!({"name": " "})), "name"),
        (
            "a long name",
            with(json!({"name": "n".repeat(101)})),
            "name",
        ),
        (
            "every 30s",
            with(json!({"discovery": {"every": "30s"}})),
            "discovery.every",
        ),
        (
            "every nonsense",
            with(json!({"discovery": {"every": "soon"}})),
            "discovery.every",
        ),
        (
            "cron and every",
            with(json!({"discovery": {"every": "1h", "cron_exp": "0 * * * *"}})),
            "discovery.cron_exp, discovery.every",
        ),
        (
            "neither cron nor every",
            with(json!({"discovery": {"jitter": "1m"}})),
            "discovery.cron_exp, discovery.every",
        ),
        (
            "a bad cron",
            with(json!({"discovery": {"cron_exp": "61 * * * *"}})),
            "discovery.cron_exp",
        ),
        (
            "an unknown time zone",
            with(json!({"discovery": {"cron_exp": "0 * * * *", "timezone": "Mars/Olympus"}})),
            "discovery.timezone",
        ),
        (
            "a time zone with every",
            with(json!({"discovery": {"every": "1h", "timezone": "UTC"}})),
            "discovery.timezone",
        ),
        (
            "a huge jitter",
            with(json!({"discovery": {"every": "1h", "jitter": "30d"}})),
            "discovery.jitter",
        ),
        (
            "a scan schedule",
            with(json!({"scan": {"every": "1d"}})),
            "scan",
        ),
        (
            "an empty username",
            with(json!({"auth": {"username": "", "password": PASSWORD}})),
            "auth.username",
        ),
        (
            "an empty password",
            with(json!({"auth": {"username": "u", "password": ""}})),
            "auth.password",
        ),
        (
            "a config that is not a docker config",
            with(json!({"auth": {"config_json": "{\"x\": 1}"}})),
            "auth.config_json",
        ),
        (
            "an auth of neither form",
            with(json!({"auth": {"username": "u"}})),
            "request body",
        ),
        (
            "an unknown field",
            with(json!({"colour": "blue"})),
            "request body",
        ),
    ];
    for (what, body, field) in cases {
        let resp = call(&api, Method::POST, "/api/v1/registries", ADMIN, Some(body)).await;
        assert_invalid(what, &resp, field);
        if field == "scan" {
            assert!(
                resp.1["message"]
                    .as_str()
                    .unwrap()
                    .contains("scheduled image scans arrive with SBOM generation; use discovery"),
                "{}",
                resp.1
            );
        }
    }
    // A name is unique within its tenant.
    let (code, body) = call(
        &api,
        Method::POST,
        "/api/v1/registries",
        ADMIN,
        Some(registry_body("kept")),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"], "conflict");
    assert!(body["message"].as_str().unwrap().contains("name"), "{body}");

    // PATCH checks the whole definition again, and refuses without writing.
    let patches: Vec<(&str, Value, &str)> = vec![
        (
            "catalog none over no list",
            json!({"catalog": "none", "repositories": []}),
            "repositories",
        ),
        ("a path", json!({"url": "https://r.example/x"}), "url"),
        (
            "every 30s",
            json!({"name": "changed", "discovery": {"every": "30s"}}),
            "discovery.every",
        ),
        ("a scan schedule", json!({"scan": {"every": "1h"}}), "scan"),
        (
            "bad credentials",
            json!({"auth": {"username": " ", "password": "x"}}),
            "auth.username",
        ),
        ("null name", json!({"name": null, "url": "x"}), "url"),
    ];
    for (what, body, field) in patches {
        let resp = call(&api, Method::PATCH, &kept_path, ADMIN, Some(body)).await;
        assert_invalid(what, &resp, field);
    }
    let other = create(&api, ADMIN, registry_body("other")).await;
    let (code, body) = call(
        &api,
        Method::PATCH,
        &format!("/api/v1/registries/{}", other["id"].as_str().unwrap()),
        ADMIN,
        Some(json!({"name": "kept"})),
    )
    .await;
    assert_eq!(code, 409, "{body}");

    let (_, now) = get(&api, &kept_path, ADMIN).await;
    assert_eq!(now, kept, "refused edits changed nothing");
    assert_eq!(
        list_ids(&api, ADMIN).await,
        vec![
            kept["id"].as_str().unwrap().to_string(),
            other["id"].as_str().unwrap().to_string()
        ]
    );
    let (_, schedules_after) = get(&api, "/scans/schedule", ADMIN).await;
    let items = schedules_after["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "kept's and other's: {schedules_after}");
    assert!(items.contains(&schedules_before["items"][0]));
    api.stop().await;
}

async fn tenants_are_isolated(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let a = tenant_token(&api, "team-a").await;
    let b = tenant_token(&api, "team-b").await;
    let ra = create(&api, &a, registry_body("shared-name")).await;
    assert_eq!(ra["tenant"], "team-a");
    let id = ra["id"].as_str().unwrap();
    let path = format!("/api/v1/registries/{id}");
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "mine"}))),
        (Method::POST, format!("{path}/discover"), None),
        (Method::GET, format!("{path}/discoveries"), None),
        (Method::DELETE, path.clone(), None),
    ] {
        let (code, body) = call(&api, method.clone(), &p, &b, body).await;
        assert_eq!(code, 404, "{method} {p} as another tenant: {body}");
        assert_eq!(body["error"], "not_found");
    }
    assert!(list_ids(&api, &b).await.is_empty());
    // Names are unique per tenant only.
    let rb = create(&api, &b, registry_body("shared-name")).await;
    assert_eq!(list_ids(&api, &b).await, vec![rb["id"].as_str().unwrap()]);
    assert_eq!(list_ids(&api, &a).await, vec![id]);
    // The admin sees every tenant's, and may narrow to one.
    assert_eq!(list_ids(&api, ADMIN).await.len(), 2);
    let (_, page) = get(&api, "/api/v1/registries?tenant=team-b", ADMIN).await;
    assert_eq!(page["items"][0]["id"], rb["id"]);
    let (code, _) = get(&api, "/api/v1/registries?tenant=team-a", &b).await;
    assert_eq!(code, 403);
    let (code, got) = get(&api, &path, ADMIN).await;
    assert_eq!(code, 200);
    assert_eq!(got["tenant"], "team-a");
    let (code, _) = get(&api, &path, &a).await;
    assert_eq!(code, 200);
    api.stop().await;
}

async fn discover_queues_a_scan(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let mut body = registry_body("hub");
    body["catalog"] = json!("none");
    let view = create(&api, ADMIN, body).await;
    let id = view["id"].as_str().unwrap().to_string();
    let discover = format!("/api/v1/registries/{id}/discover");

    // No body at all: a full run.
    let (code, accepted) = call(&api, Method::POST, &discover, ADMIN, None).await;
    assert_eq!(code, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    let scan_id = accepted["scan_run_id"].as_str().unwrap().to_string();
    let (code, scan) = get(&api, &format!("/api/v1/scans/{scan_id}"), ADMIN).await;
    assert_eq!(code, 200, "{scan}");
    assert_eq!(scan["scanner"], "registry-discovery");
    assert_eq!(scan["trigger"], "on_demand");
    assert_eq!(scan["targets"], json!(["registry://r.example:5000"]));
    assert_eq!(scan["options"], json!({"registry_id": id}));
    let stored = api.store.scan(None, &scan_id).await.unwrap().unwrap();
    let (provider, full_scope) = provider_and_scope(&api, &scan_id).await;
    assert_eq!(provider.as_deref(), Some("registry/r.example:5000"));
    assert_eq!(stored.trigger, Trigger::OnDemand);
    assert_eq!(stored.status, ScanStatus::Queued);

    // Narrowed, sorted and deduplicated.
    let (code, accepted) = call(
        &api,
        Method::POST,
        &discover,
        ADMIN,
        Some(json!({"repositories": ["lib/base", "app", "app"]})),
    )
    .await;
    assert_eq!(code, 202, "{accepted}");
    let (_, scan) = get(
        &api,
        &format!(
            "/api/v1/scans/{}",
            accepted["scan_run_id"].as_str().unwrap()
        ),
        ADMIN,
    )
    .await;
    assert_eq!(
        scan["options"],
        json!({"registry_id": id, "repositories": ["app", "lib/base"]})
    );
    let (_, narrow_scope) = provider_and_scope(&api, scan["id"].as_str().unwrap()).await;
    assert_ne!(
        narrow_scope, full_scope,
        "a narrower run is not comparable with a full one"
    );
    let (code, _) = call(&api, Method::POST, &discover, ADMIN, Some(json!({}))).await;
    assert_eq!(code, 202);

    let resp = call(
        &api,
        Method::POST,
        &discover,
        ADMIN,
        Some(json!({"repositories": ["app", "nope"]})),
    )
    .await;
    assert_invalid("not in a catalog-less registry", &resp, "repositories[1]");
    let resp = call(
        &api,
        Method::POST,
        &discover,
        ADMIN,
        Some(json!({"repositories": [""]})),
    )
    .await;
    assert_invalid("an empty name", &resp, "repositories[0]");
    let resp = call(
        &api,
        Method::POST,
        &discover,
        ADMIN,
        Some(json!({"repos": ["app"]})),
    )
    .await;
    assert_invalid("an unknown field", &resp, "request body");
    let resp = api
        .client
        .post(format!("{}{discover}", api.url))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = api
        .client
        .post(format!("{}{discover}", api.url))
        .bearer_auth(ADMIN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415, "a body must say it is JSON");
    let (code, _) = call(
        &api,
        Method::POST,
        "/api/v1/registries/0190b7c4-0000-7000-8000-000000000000/discover",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(code, 404);

    // A registry with a catalog takes any repository name.
    let oci = create(&api, ADMIN, registry_body("oci")).await;
    let (code, _) = call(
        &api,
        Method::POST,
        &format!(
            "/api/v1/registries/{}/discover",
            oci["id"].as_str().unwrap()
        ),
        ADMIN,
        Some(json!({"repositories": ["anything/else"]})),
    )
    .await;
    assert_eq!(code, 202);
    let (_, scans) = get(&api, "/api/v1/scans?scanner=registry-discovery", ADMIN).await;
    assert_eq!(
        scans["items"].as_array().unwrap().len(),
        4,
        "refusals queued nothing"
    );
    api.stop().await;
}

/// A scan's rate-limit provider and comparable-runs key, which the scan view does not show,
/// read through a connection of the test's own.
async fn provider_and_scope(api: &Api, scan_id: &str) -> (Option<String>, Option<String>) {
    use sqlx::Connection;
    const SQL: &str = "SELECT provider, scope_key FROM scans WHERE id = $1";
    if api.db_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&api.db_url).await.unwrap();
        sqlx::query_as(SQL)
            .bind(scan_id)
            .fetch_one(&mut c)
            .await
            .unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&api.db_url).await.unwrap();
        sqlx::query_as(SQL)
            .bind(scan_id)
            .fetch_one(&mut c)
            .await
            .unwrap()
    }
}

fn image(repository: &str, tag: &str, platform: &str, digest: &str) -> NewImage {
    NewImage {
        repository: repository.into(),
        tag: tag.into(),
        platform: platform.into(),
        digest: digest.into(),
        index_digest: Some("sha256:index".into()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config_digest: format!("{digest}-config"),
        layers: json!([{"digest": "sha256:l1", "size": 10}]).to_string(),
        size: 1234,
        created: Some("2024-01-01T00:00:00Z".into()),
    }
}

/// Moves a queued scan to running at `at`, as the dispatcher would.
async fn run(
    api: &Api,
    scan_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> scanplane_core::scan::Scan {
    for st in [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ] {
        api.store
            .transition(scan_id, st, &ScanChange::default(), at)
            .await
            .unwrap();
    }
    api.store.scan(None, scan_id).await.unwrap().unwrap()
}

async fn queue_discovery(api: &Api, token: &str, registry_id: &str) -> String {
    let (code, accepted) = call(
        api,
        Method::POST,
        &format!("/api/v1/registries/{registry_id}/discover"),
        token,
        None,
    )
    .await;
    assert_eq!(code, 202, "{accepted}");
    accepted["scan_run_id"].as_str().unwrap().to_string()
}

fn sbom_scan(tenant: String) -> impl Fn(&str, &str) -> NewScan + Send + Sync {
    move |digest: &str, repository: &str| NewScan {
        tenant_id: tenant.clone(),
        project_id: None,
        schedule_id: None,
        fire_time: None,
        trigger: Trigger::Pipeline,
        scanner: "sbom".into(),
        provider: None,
        targets: vec![format!("image://r.example:5000/{repository}@{digest}")],
        billing: false,
        options: "{}".into(),
        scope_options: "{}".into(),
        on_maintenance: scanplane_core::maintenance::WindowAction::Hold,
    }
}

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sbom/tests/data/trivy/alpine-image.spdx.json"
    ))
    .unwrap()
}

fn new_sbom(digest: &str, document: &[u8]) -> NewSbom {
    let index = scanplane_sbom::index(document).unwrap();
    NewSbom {
        digest: digest.into(),
        format: "spdx-json".into(),
        generator: "trivy".into(),
        document: document.to_vec(),
        os: index.os.map(|o| format!("{} {}", o.name, o.version)),
        packages: index
            .packages
            .into_iter()
            .map(|p| SbomPackage {
                name: p.name,
                version: p.version,
                purl: p.purl,
                ecosystem: p.ecosystem,
                distro: p.distro,
                source_name: p.source_name,
                source_version: p.source_version,
                layer_diff_id: p.layer_diff_id,
                match_key: None,
            })
            .collect(),
    }
}

async fn images_sboms_and_packages(backend: Backend) {
    let api = Api::start(backend, Default::default()).await;
    let a = tenant_token(&api, "team-a").await;
    let b = tenant_token(&api, "team-b").await;
    let reg = create(&api, &a, registry_body("hub")).await;
    let reg_id = reg["id"].as_str().unwrap().to_string();
    let tenant_a = api.store.ensure_tenant("team-a").await.unwrap().id;
    let start = chrono::Utc::now() - chrono::Duration::hours(2);

    // A first discovery sees three tags; a second one only two of them.
    let first = queue_discovery(&api, &a, &reg_id).await;
    let first = run(&api, &first, start).await;
    let images = vec![
        image("app", "v1", "linux/amd64", "sha256:aaa"),
        image("app", "v1", "linux/arm64/v8", "sha256:bbb"),
        image("lib/base", "latest", "linux/amd64", "sha256:ccc"),
    ];
    api.store
        .record_images(&first, &reg_id, &images, start)
        .await
        .unwrap();
    let change = ScanChange {
        reason: "done".into(),
        ..Default::default()
    };
    let sboms = sbom_scan(tenant_a.clone());
    api.store
        .complete_discovery(
            &first,
            &reg_id,
            &[],
            Some(r#"{"repositories": 2, "tags": 2}"#),
            &change,
            &sboms,
            start + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    let later = start + chrono::Duration::hours(1);
    let second = queue_discovery(&api, &a, &reg_id).await;
    let second = run(&api, &second, later).await;
    api.store
        .record_images(&second, &reg_id, &images[..2], later)
        .await
        .unwrap();
    let (_, outcome) = api
        .store
        .complete_discovery(
            &second,
            &reg_id,
            &[],
            Some("not json"),
            &change,
            &sboms,
            later + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    assert_eq!(outcome.images_removed, 1);

    let (code, discoveries) = get(
        &api,
        &format!("/api/v1/registries/{reg_id}/discoveries?limit=10"),
        &a,
    )
    .await;
    assert_eq!(code, 200, "{discoveries}");
    let list = discoveries.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["scan_id"], second.id.as_str(), "newest first");
    assert_eq!(list[0]["stats"], "not json", "kept as text");
    assert_eq!(list[0]["images_removed"], 1);
    assert_eq!(list[1]["stats"], json!({"repositories": 2, "tags": 2}));
    assert_eq!(list[1]["images_seen"], 3);
    assert_eq!(list[1]["sboms_queued"], 3);
    assert!(list[1]["finished_at"].is_string());
    let (_, one) = get(
        &api,
        &format!("/api/v1/registries/{reg_id}/discoveries?limit=1"),
        &a,
    )
    .await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let resp = get(
        &api,
        &format!("/api/v1/registries/{reg_id}/discoveries?limit=0"),
        &a,
    )
    .await;
    assert_invalid("limit 0", &resp, "limit");
    let (_, view) = get(&api, &format!("/api/v1/registries/{reg_id}"), &a).await;
    assert_eq!(view["last_discovery"]["scan_id"], second.id.as_str());
    assert_eq!(view["last_discovery"]["images_seen"], 2);

    // Listing: live ones by default, with filters, paged by cursor.
    let (code, page) = get(&api, "/api/v1/images", &a).await;
    assert_eq!(code, 200, "{page}");
    let live = page["items"].as_array().unwrap();
    assert_eq!(live.len(), 2);
    let amd = live
        .iter()
        .find(|i| i["platform"] == "linux/amd64")
        .unwrap()
        .clone();
    assert_eq!(amd["registry_id"], reg_id.as_str());
    assert_eq!(amd["repository"], "app");
    assert_eq!(amd["tag"], "v1");
    assert_eq!(amd["digest"], "sha256:aaa");
    assert_eq!(amd["index_digest"], "sha256:index");
    assert_eq!(amd["size"], 1234);
    assert_eq!(amd["created"], "2024-01-01T00:00:00Z");
    assert_eq!(amd["layers"], json!([{"digest": "sha256:l1", "size": 10}]));
    assert_eq!(amd["removed_at"], Value::Null);
    assert_eq!(amd["sbom_id"], Value::Null);
    assert_eq!(amd["tenant"], "team-a");
    let (_, all) = get(&api, "/api/v1/images?include_removed=true", &a).await;
    let all = all["items"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    let removed = all.iter().find(|i| i["repository"] == "lib/base").unwrap();
    assert!(removed["removed_at"].is_string(), "{removed}");
    for (query, want) in [
        ("repository=app", 2),
        ("repository=lib/base&include_removed=true", 1),
        ("tag=v1", 2),
        ("digest=sha256:bbb", 1),
        ("platform=linux/arm64/v8", 1),
        (&format!("registry={reg_id}") as &str, 2),
        ("registry=0190b7c4-0000-7000-8000-000000000000", 0),
        ("repository=", 2),
    ] {
        let (code, page) = get(&api, &format!("/api/v1/images?{query}"), &a).await;
        assert_eq!(code, 200, "{query}: {page}");
        assert_eq!(page["items"].as_array().unwrap().len(), want, "{query}");
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, page) = get(
            &api,
            &format!("/api/v1/images?include_removed=true&limit=1&cursor={cursor}"),
            &a,
        )
        .await;
        for i in page["items"].as_array().unwrap() {
            seen.push(i["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "every image once: {seen:?}");
    for (query, code) in [
        ("bogus=1", 400),
        ("include_removed=maybe", 400),
        ("cursor=zzz", 400),
    ] {
        let (got, body) = get(&api, &format!("/api/v1/images?{query}"), &a).await;
        assert_eq!(got, code, "{query}: {body}");
    }
    let amd_path = format!("/api/v1/images/{}", amd["id"].as_str().unwrap());
    let (code, one) = get(&api, &amd_path, &a).await;
    assert_eq!(code, 200);
    assert_eq!(one, amd);

    // No SBOM yet: a JSON 404 saying so.
    let (code, body) = get(&api, &format!("{amd_path}/sbom"), &a).await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("no SBOM"),
        "{body}"
    );

    // An SBOM unit uploads the document of sha256:aaa (and, for paging, of sha256:bbb).
    let document = fixture();
    let gen = queue_discovery(&api, &a, &reg_id).await;
    let gen = api.store.scan(None, &gen).await.unwrap().unwrap();
    let now = chrono::Utc::now();
    assert!(api
        .store
        .store_sbom(&gen, &new_sbom("sha256:aaa", &document), now)
        .await
        .unwrap());
    assert!(api
        .store
        .store_sbom(&gen, &new_sbom("sha256:bbb", &document), now)
        .await
        .unwrap());
    let (_, one) = get(&api, &amd_path, &a).await;
    assert!(one["sbom_id"].is_string(), "{one}");

    let (code, content_type, text) =
        raw(&api, Method::GET, &format!("{amd_path}/sbom"), &a, None).await;
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/spdx+json");
    assert_eq!(
        text.as_bytes(),
        document.as_slice(),
        "the stored document as uploaded"
    );
    let (code, content_type, text) = raw(
        &api,
        Method::GET,
        &format!("{amd_path}/sbom?format=cyclonedx"),
        &a,
        None,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(content_type, "application/vnd.cyclonedx+json");
    let bom: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert!(!bom["components"].as_array().unwrap().is_empty());
    let resp = get(&api, &format!("{amd_path}/sbom?format=xml"), &a).await;
    assert_invalid("an unknown format", &resp, "format");
    let (code, _) = get(&api, &format!("{amd_path}/sbom?fmt=spdx"), &a).await;
    assert_eq!(code, 400);

    // The package index: by purl (any version), by exact purl, by name and version.
    let index = scanplane_sbom::index(&document).unwrap();
    let pkg = index
        .packages
        .iter()
        .find(|p| p.purl.as_deref().is_some_and(|u| u.contains('@')))
        .unwrap();
    let purl = pkg.purl.clone().unwrap();
    let base = purl.split('@').next().unwrap().to_string();
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (code, page) = get(&api, &format!("/api/v1/packages?purl={}", enc(&purl)), &a).await;
    assert_eq!(code, 200, "{page}");
    let hits = page["items"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{page}");
    let digests: Vec<&str> = hits.iter().map(|h| h["digest"].as_str().unwrap()).collect();
    assert!(digests.contains(&"sha256:aaa") && digests.contains(&"sha256:bbb"));
    assert_eq!(hits[0]["name"], pkg.name.as_str());
    assert_eq!(hits[0]["version"], json!(pkg.version));
    assert_eq!(hits[0]["purl"], purl.as_str());
    assert_eq!(hits[0]["ecosystem"], json!(pkg.ecosystem));
    let (_, page) = get(
        &api,
        &format!(
            "/api/v1/packages?name={}&version={}",
            enc(&pkg.name),
            enc(pkg.version.as_deref().unwrap())
        ),
        &a,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let (code, page) = get(
            &api,
            &format!(
                "/api/v1/packages?purl={}&limit=1&cursor={}",
                enc(&base),
                enc(&cursor)
            ),
            &a,
        )
        .await;
        assert_eq!(code, 200, "{page}");
        pages.push(page["items"].as_array().unwrap().len());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(pages.iter().sum::<usize>(), 2, "{pages:?}");
    assert!(pages.len() >= 2, "{pages:?}");
    let refusals: Vec<(String, u16, &str)> = vec![
        (String::new(), 422, "purl, name"),
        (format!("purl={}&name=x", enc(&purl)), 422, "purl, name"),
        ("purl=openssl".to_string(), 422, "purl"),
        (format!("purl={}&version=1", enc(&purl)), 422, "version"),
        ("name=x&cursor=zzz".to_string(), 400, "cursor"),
        (
            "name=x&cursor=0190b7c4-0000-7000-8000-000000000000".to_string(),
            400,
            "cursor",
        ),
        ("name=x&colour=blue".to_string(), 400, "query string"),
        ("name=x&limit=5000".to_string(), 422, "limit"),
    ];
    for (query, code, field) in refusals {
        let (got, body) = get(&api, &format!("/api/v1/packages?{query}"), &a).await;
        assert_eq!(got, code, "{query}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: ")),
            "{query}: {body}"
        );
    }

    // Another tenant sees none of it; the admin sees all.
    let (_, page) = get(&api, "/api/v1/images?include_removed=true", &b).await;
    assert_eq!(page["items"], json!([]));
    let (code, _) = get(&api, &amd_path, &b).await;
    assert_eq!(code, 404);
    let (code, _) = get(&api, &format!("{amd_path}/sbom"), &b).await;
    assert_eq!(code, 404);
    let (_, page) = get(&api, &format!("/api/v1/packages?purl={}", enc(&purl)), &b).await;
    assert_eq!(page["items"], json!([]));
    let (_, page) = get(&api, "/api/v1/images", ADMIN).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (_, page) = get(
        &api,
        &format!("/api/v1/packages?purl={}", enc(&purl)),
        ADMIN,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // Deleting the registry removes its images; the SBOMs of their digests stay.
    let (code, _) = call(
        &api,
        Method::DELETE,
        &format!("/api/v1/registries/{reg_id}"),
        &a,
        None,
    )
    .await;
    assert_eq!(code, 204);
    let (_, page) = get(&api, "/api/v1/images?include_removed=true", &a).await;
    assert_eq!(page["items"], json!([]));
    let (_, page) = get(&api, &format!("/api/v1/packages?purl={}", enc(&purl)), &a).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    api.stop().await;
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(
    round_trip,
    refusals_name_their_field_and_change_nothing,
    tenants_are_isolated,
    discover_queues_a_scan,
    images_sboms_and_packages
);
