//! Test harness: the real router served by the real server ([`scanplane_api::server`]) on a
//! loopback port over a fresh store, with a catalog of one permissive scanner (`tcp`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use scanplane_api::server::ServerConfig;
use scanplane_api::{AppState, Rejection, ScannerCatalog};
use scanplane_core::clock::SystemClock;
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{Target, TargetKind};
use scanplane_store::{Backend, Store};
use tokio::sync::{oneshot, Notify};

pub const ADMIN: &str = "api-test-admin";

/// Accepts any target and option for its one scanner, `tcp`.
pub struct OneScanner;

fn tcp() -> ScannerDef {
    ScannerDef {
        name: "tcp".into(),
        description: "test scanner".into(),
        kind: ScannerKind::Builtin,
        provider: None,
        timeout: None,
        image: None,
        accepts: vec![TargetKind::Host],
        options: vec![],
        scope_options: Some(vec![]),
    }
}

impl ScannerCatalog for OneScanner {
    fn definitions(&self) -> Vec<ScannerDef> {
        vec![tcp()]
    }
    fn definition(&self, name: &str) -> Option<ScannerDef> {
        (name == "tcp").then(tcp)
    }
    fn validate(&self, _: &str, _: &[Target], _: &serde_json::Value) -> Result<(), Rejection> {
        Ok(())
    }
    fn scope_options(&self, _: &str, options: &serde_json::Value) -> String {
        options.to_string()
    }
}

pub struct Api {
    pub url: String,
    /// The database the store runs on.
    pub db_url: String,
    pub addr: std::net::SocketAddr,
    pub store: Arc<dyn Store>,
    pub state: Arc<AppState>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn state(backend: Backend) -> Arc<AppState> {
    state_on(
        &scanplane_store::testing::fresh_url(backend)
            .await
            .unwrap_or_else(|m| panic!("{m}")),
    )
    .await
}

pub async fn state_on(url: &str) -> Arc<AppState> {
    let store: Arc<dyn Store> = Arc::new(scanplane_store::open(url).await.unwrap());
    let tenant = store.ensure_tenant("default").await.unwrap();
    Arc::new(AppState {
        store,
        catalog: Arc::new(OneScanner),
        clock: Arc::new(SystemClock),
        admin_token_hash: Some(scanplane_api::auth::hash_token(ADMIN)),
        default_tenant: tenant,
        wake_scheduler: Arc::new(Notify::new()),
        wake_dispatcher: Arc::new(Notify::new()),
        metrics: Arc::new(scanplane_metrics::Metrics::new()),
        replica: Default::default(),
        clusters: vec!["production".into()],
    })
}

impl Api {
    pub async fn start(backend: Backend, config: ServerConfig) -> Api {
        let url = scanplane_store::testing::fresh_url(backend)
            .await
            .unwrap_or_else(|m| panic!("{m}"));
        let state = state_on(&url).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let app = scanplane_api::router(state.clone());
        let task = tokio::spawn(async move {
            scanplane_api::server::serve(listener, app, config, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Api {
            db_url: url,
            url: format!("http://{addr}"),
            addr,
            store: state.store.clone(),
            state,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A scan of tenant `tenant_id` in `running`, whose report token is `token`.
pub async fn running_scan(
    store: &dyn Store,
    tenant_id: &str,
    token: &str,
) -> scanplane_core::scan::Scan {
    use scanplane_core::maintenance::WindowAction;
    use scanplane_core::scan::{ScanStatus, Trigger};
    use scanplane_store::{NewScan, ScanChange};
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant_id.into(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::OnDemand,
                scanner: "tcp".into(),
                provider: None,
                targets: vec!["127.0.0.1:1".into()],
                billing: false,
                options: "{}".into(),
                scope_options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    for st in [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ] {
        let change = ScanChange {
            report_token_hash: Some(scanplane_api::auth::hash_token(token)),
            ..Default::default()
        };
        store.transition(&scan.id, st, &change, now).await.unwrap();
    }
    store.scan(None, &scan.id).await.unwrap().unwrap()
}

/// `n` findings as NDJSON report lines, `title` prefixed.
pub fn finding_lines(n: usize, title: &str) -> String {
    const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];
    (0..n)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"type": "finding", "target": "127.0.0.1:1", "rule_id": format!("rule-{i}"),
                    "severity": SEVERITIES[i % 5], "title": format!("{title} {i}"),
                    "location": format!("tcp/{i}"), "detail": "some detail"})
            )
        })
        .collect()
}

/// The raw bytes a server answers to `request` on a fresh connection, until it closes or
/// `limit` passes.
pub async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8], limit: Duration) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    out
}

/// Status and JSON body of a raw HTTP/1.1 response.
pub fn parse_raw(resp: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// A running scan of `scanner` on `targets` with `options` (a pipeline step, as the
/// registry endpoints create them), whose report token is `token`.
pub async fn running_step(
    store: &dyn Store,
    tenant: &str,
    scanner: &str,
    targets: &[&str],
    options: serde_json::Value,
    token: &str,
) -> scanplane_core::scan::Scan {
    use scanplane_core::maintenance::WindowAction;
    use scanplane_core::scan::{ScanStatus, Trigger};
    use scanplane_store::{NewScan, ScanChange};
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant.into(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::Pipeline,
                scanner: scanner.into(),
                provider: None,
                targets: targets.iter().map(|t| t.to_string()).collect(),
                billing: false,
                options: options.to_string(),
                scope_options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    for status in [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ] {
        let change = ScanChange {
            report_token_hash: Some(scanplane_api::auth::hash_token(token)),
            ..Default::default()
        };
        store
            .transition(&scan.id, status, &change, now)
            .await
            .unwrap();
    }
    store.scan(None, &scan.id).await.unwrap().unwrap()
}

/// A token of tenant `tenant` (created with it), made with the admin token.
pub async fn tenant_token(api: &Api, tenant: &str) -> String {
    let resp = api
        .client
        .post(format!("{}/api/v1/tokens", api.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"tenant": tenant, "name": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}
