//! Tokens as admins manage them, on both backends: the list names every token, its tenant,
//! creation and last use and never a secret; a revoked token is refused at its next
//! request; tenant tokens cannot manage tokens (403); triage records the token that set it;
//! every state-changing request and every refused credential leaves an audit line with
//! token, tenant, method, path and status, and no audit line holds a credential.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{Api, ADMIN};
use reqwest::Method;
use scanplane_store::Backend;
use serde_json::{json, Value};

/// Every log line of this test binary (both backends' tests share it).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("scanplane::audit=info")
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// The audit lines (as JSON) whose tenant is `tenant`.
fn audit_lines(tenant: &str) -> Vec<Value> {
    let bytes = log().0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "scanplane::audit" && v["fields"]["tenant"] == tenant)
        .map(|v| v["fields"].clone())
        .collect()
}

async fn call(
    api: &Api,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = api.client.request(method, format!("{}{path}", api.url));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn tokens_are_listed_revoked_and_audited(backend: Backend) {
    log();
    let api = Api::start(backend, Default::default()).await;
    let tenant = format!("acme-{}", format!("{backend:?}").to_lowercase());
    let (code, created) = call(
        &api,
        Method::POST,
        "/api/v1/tokens",
        ADMIN,
        Some(json!({"tenant": tenant, "name": "ci-bot"})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let secret = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();

    // A tenant token works for the tenant, not for token management.
    let (code, page) = call(&api, Method::GET, "/api/v1/scans", &secret, None).await;
    assert_eq!(code, 200, "{page}");
    for (method, path) in [
        (Method::GET, "/api/v1/tokens".to_string()),
        (Method::DELETE, format!("/api/v1/tokens/{id}")),
        (Method::GET, "/api/v1/tenants".to_string()),
    ] {
        let (code, body) = call(&api, method.clone(), &path, &secret, None).await;
        assert_eq!(code, 403, "{method} {path}: {body}");
    }

    // The admin sees it, with its last use, and never a secret.
    let (code, list) = call(
        &api,
        Method::GET,
        &format!("/api/v1/tokens?tenant={tenant}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(code, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["name"], "ci-bot");
    assert_eq!(items[0]["tenant"], tenant.as_str());
    assert!(items[0]["created_at"].is_string(), "{list}");
    assert!(
        items[0]["last_used_at"].is_string(),
        "used once already: {list}"
    );
    assert!(!list.to_string().contains(&secret[4..20]), "{list}");
    let (code, _) = call(
        &api,
        Method::GET,
        "/api/v1/tokens?tenant=no%20such",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(code, 422);
    let (code, tenants) = call(&api, Method::GET, "/api/v1/tenants", ADMIN, None).await;
    assert_eq!(code, 200, "{tenants}");
    assert!(
        tenants["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == tenant.as_str() && t["retention_days"].is_null()),
        "{tenants}"
    );

    // Triage records the token, not only the tenant.
    let tenant_id = api.store.ensure_tenant(&tenant).await.unwrap().id;
    let scan = common::running_scan(api.store.as_ref(), &tenant_id, "rt-1").await;
    let body = format!(
        "{}{}\n",
        common::finding_lines(1, "t"),
        json!({"type": "final", "scan_run_id": scan.id, "status": "success", "targets_scanned": ["127.0.0.1:1"]})
    );
    let resp = api
        .client
        .post(format!("{}/api/v1/scans/{}/report", api.url, scan.id))
        .bearer_auth("rt-1")
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, findings) = call(&api, Method::GET, "/api/v1/findings", &secret, None).await;
    let finding = findings["items"][0]["id"].as_str().unwrap().to_string();
    let (code, triaged) = call(
        &api,
        Method::PATCH,
        &format!("/api/v1/findings/{finding}"),
        &secret,
        Some(json!({"triage": "accepted_risk", "comment": "lab only"})),
    )
    .await;
    assert_eq!(code, 200, "{triaged}");
    assert_eq!(triaged["triaged_by"], format!("{tenant}/ci-bot").as_str());

    // Revoked: refused at once, and a second revoke is a 404.
    let (code, _) = call(
        &api,
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(code, 204);
    let (code, body) = call(&api, Method::GET, "/api/v1/scans", &secret, None).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = call(
        &api,
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("token"),
        "{body}"
    );

    // The audit log: the tenant's write and refusals, with the token's name.
    let lines = audit_lines(&tenant);
    let seen: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_string(),
                l["path"].as_str().unwrap().to_string(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        seen.contains(&("PATCH".into(), format!("/api/v1/findings/{finding}"), 200)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("GET".into(), "/api/v1/tokens".into(), 403)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("DELETE".into(), format!("/api/v1/tokens/{id}"), 403)),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|(m, _, s)| m == "GET" && *s == 200),
        "reads are not audited: {seen:?}"
    );
    assert!(lines.iter().all(|l| l["token"] == "ci-bot"), "{lines:?}");
    let all = String::from_utf8(log().0.lock().unwrap().clone()).unwrap();
    assert!(!all.contains(&secret), "no log line holds a token");
    assert!(!all.contains(ADMIN), "no log line holds the admin token");
    // The refused (revoked) request is audited without a tenant, which is unknown then.
    assert!(
        all.lines()
            .any(|l| l.contains("scanplane::audit") && l.contains("\"status\":401")),
        "{all}"
    );
    api.stop().await;
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(tokens_are_listed_revoked_and_audited);
