//! What the scanner-mode tests share: the real report endpoint over a real store (with a
//! layer that keeps a copy of every request body), a scan ready to report, and custom
//! scanners written as shell scripts.

#![allow(dead_code)] // Not every test binary uses every helper.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use scanplane_api::{AppState, Rejection, ScannerCatalog};
use scanplane_core::clock::SystemClock;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_core::scanner::ScannerDef;
use scanplane_core::target::Target;
use scanplane_scanners::{CustomScannerConfig, Registry};
use scanplane_store::{NewScan, ScanChange, Store};
use tokio::sync::Notify;

/// Unwraps a setup step's result, panicking with what failed.
pub fn must<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

struct NoCatalog;

impl ScannerCatalog for NoCatalog {
    fn definitions(&self) -> Vec<ScannerDef> {
        Vec::new()
    }
    fn definition(&self, _: &str) -> Option<ScannerDef> {
        None
    }
    fn validate(&self, _: &str, _: &[Target], _: &serde_json::Value) -> Result<(), Rejection> {
        Ok(())
    }
    fn scope_options(&self, _: &str, options: &serde_json::Value) -> String {
        options.to_string()
    }
}

/// Copies of the request bodies the server received, in order.
pub type Bodies = Arc<Mutex<Vec<Vec<u8>>>>;

async fn keep_body(State(bodies): State<Bodies>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = must(axum::body::to_bytes(body, usize::MAX).await, "request body");
    must(bodies.lock(), "bodies").push(bytes.to_vec());
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Serves the API on 127.0.0.1:`port` until the returned task is aborted.
pub async fn serve_on(
    store: Arc<dyn Store>,
    port: u16,
    bodies: Bodies,
) -> tokio::task::JoinHandle<()> {
    let tenant = must(store.ensure_tenant("default").await, "default tenant");
    let state = Arc::new(AppState {
        store,
        catalog: Arc::new(NoCatalog),
        clock: Arc::new(SystemClock),
        admin_token_hash: None,
        default_tenant: tenant,
        wake_scheduler: Arc::new(Notify::new()),
        wake_dispatcher: Arc::new(Notify::new()),
        metrics: Arc::new(scanplane_metrics::Metrics::new()),
        replica: Default::default(),
        clusters: vec!["production".into()],
    });
    let listener = must(
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await,
        "binding the server",
    );
    let app =
        scanplane_api::router(state).layer(axum::middleware::from_fn_with_state(bodies, keep_body));
    tokio::spawn(async move {
        must(axum::serve(listener, app).await, "serving");
    })
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = must(
        std::net::TcpListener::bind("127.0.0.1:0"),
        "binding 127.0.0.1:0",
    );
    must(l.local_addr(), "local address").port()
}

/// A scan of `scanner` over 127.0.0.1, dispatched with report token `token`; its id.
pub async fn dispatched_scan(store: &dyn Store, scanner: &str, token: &str) -> String {
    let tenant = must(store.ensure_tenant("default").await, "default tenant");
    let now = chrono::Utc::now();
    let scan = must(
        store
            .create_scan(
                NewScan {
                    tenant_id: tenant.id.clone(),
                    project_id: None,
                    schedule_id: None,
                    fire_time: None,
                    trigger: Trigger::OnDemand,
                    scanner: scanner.into(),
                    provider: None,
                    targets: vec!["127.0.0.1".into()],
                    billing: false,
                    options: "{}".into(),
                    scope_options: "{}".into(),
                    on_maintenance: WindowAction::Hold,
                },
                now,
            )
            .await,
        "creating the scan",
    );
    must(
        store
            .transition(&scan.id, ScanStatus::Admitted, &ScanChange::default(), now)
            .await,
        "admitting",
    );
    let change = ScanChange {
        report_token_hash: Some(scanplane_protocol::token::hash_token(token)),
        new_attempt: true,
        ..Default::default()
    };
    must(
        store
            .transition(&scan.id, ScanStatus::Dispatched, &change, now)
            .await,
        "dispatching",
    );
    scan.id
}

/// A registry with one custom scanner `name`, a shell script with `body`, written in `dir`.
pub fn script_scanner(dir: &std::path::Path, name: &str, body: &str) -> Registry {
    let script = dir.join(format!("{name}.sh"));
    must(
        std::fs::write(&script, format!("#!/bin/sh\n{body}")),
        "writing the script",
    );
    let mut perm = must(std::fs::metadata(&script), "script metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    must(
        std::fs::set_permissions(&script, perm),
        "making the script executable",
    );
    let custom: CustomScannerConfig = must(
        serde_yaml::from_str(&format!(
            "name: {name}\ncommand: [\"{}\"]\noutput: scanplane-json\n",
            script.display()
        )),
        "scanner config",
    );
    must(Registry::with_custom(vec![custom]), "registry")
}
