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
}

pub struct Api {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub store: Arc<dyn Store>,
    pub state: Arc<AppState>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn state(backend: Backend) -> Arc<AppState> {
    let store: Arc<dyn Store> = Arc::new(scanplane_store::testing::fresh_store(backend).await);
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
    })
}

impl Api {
    pub async fn start(backend: Backend, config: ServerConfig) -> Api {
        let state = state(backend).await;
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
