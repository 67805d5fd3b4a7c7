//! Wiring of `serve` and `job`: opens the store, builds the scanner registry, the executor,
//! the scheduler and the dispatcher, serves the API, and shuts everything down on
//! SIGTERM/SIGINT. Long-running tasks are supervised here (anyhow lives only at this level).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use scanplane_api::{AppState, Rejection, ScannerCatalog};
use scanplane_core::admission::Limits;
use scanplane_core::clock::{Clock, SystemClock};
use scanplane_core::scanner::ScannerDef;
use scanplane_core::target::Target;
use scanplane_dispatch::{DispatchConfig, DispatchContext, Dispatcher};
use scanplane_executor::local::{LocalConfig, LocalExecutor};
use scanplane_executor::Executor;
use scanplane_metrics::Metrics;
use scanplane_scanners::{CustomScannerConfig, Registry, ValidationError};
use scanplane_scheduler::{Scheduler, SchedulerConfig, SchedulerContext};
use scanplane_store::Store;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::ConfigFile;
use crate::{ExecutorKind, ServeArgs};

/// The scanner registry as the API sees it.
struct RegistryCatalog(Arc<Registry>);

impl ScannerCatalog for RegistryCatalog {
    fn definitions(&self) -> Vec<ScannerDef> {
        self.0.definitions()
    }
    fn definition(&self, name: &str) -> Option<ScannerDef> {
        self.0.get(name).map(|s| s.definition().clone())
    }
    fn validate(
        &self,
        scanner: &str,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), Rejection> {
        let s = self.0.get(scanner).ok_or_else(|| Rejection {
            field: "scanner",
            message: format!("unknown scanner {scanner:?}"),
        })?;
        s.validate(targets, options).map_err(|e| {
            let field = match e {
                ValidationError::NoTargets { .. } | ValidationError::Target { .. } => "targets",
                ValidationError::Option { .. } | ValidationError::OptionsNotObject { .. } => {
                    "options"
                }
            };
            Rejection {
                field,
                message: e.to_string(),
            }
        })
    }
}

fn registry_from(config: &ConfigFile) -> anyhow::Result<Registry> {
    let custom: Vec<CustomScannerConfig> = config
        .scanners
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_yaml::from_value(v.clone())
                .map_err(|e| anyhow!("config file: scanners[{i}]: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    Registry::with_custom(custom).map_err(|e| anyhow!("config file: scanners: {e}"))
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<ConfigFile> {
    match path {
        Some(p) => Ok(ConfigFile::load(p)?),
        None => Ok(ConfigFile::default()),
    }
}

fn kubernetes_config(
    k: &crate::KubernetesArgs,
) -> anyhow::Result<scanplane_executor_k8s::KubernetesConfig> {
    let mut cfg = scanplane_executor_k8s::KubernetesConfig {
        namespace: k.k8s_namespace.clone(),
        scanner_image: k.scanner_image.clone(),
        service_account: k.scanner_service_account.clone(),
        backoff_limit: k.job_backoff_limit,
        ttl_after_finished: k.job_ttl_after_finished,
        pending_grace: k.scanner_pending_grace,
        instance: k.instance.clone(),
        ..Default::default()
    };
    // An empty value leaves that resource unset on scanner pods.
    let set = |v: &String| Some(v.clone()).filter(|v| !v.is_empty());
    cfg.resources.cpu_request = set(&k.scanner_cpu_request);
    cfg.resources.memory_request = set(&k.scanner_memory_request);
    cfg.resources.cpu_limit = set(&k.scanner_cpu_limit);
    cfg.resources.memory_limit = set(&k.scanner_memory_limit);
    if let Some(sel) = &k.scanner_node_selector {
        cfg.node_selector = scanplane_executor_k8s::parse_node_selector(sel)
            .map_err(|e| anyhow!("SCANNER_NODE_SELECTOR: {e}"))?;
    }
    if let Some(t) = &k.scanner_tolerations {
        cfg.tolerations = scanplane_executor_k8s::parse_tolerations(t)
            .map_err(|e| anyhow!("SCANNER_TOLERATIONS: {e}"))?;
    }
    cfg.validate()
        .map_err(|e| anyhow!("kubernetes executor: {e}"))?;
    Ok(cfg)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let policies = config.policies().map_err(|e| anyhow!("config file: {e}"))?;
    let registry = Arc::new(registry_from(&config)?);
    let max_jobs = match args.max_concurrent_jobs {
        Some(n) => n,
        None => match std::env::var("MAX_CONCURRENT_SCANS") {
            Ok(v) => v
                .parse()
                .map_err(|_| anyhow!("MAX_CONCURRENT_SCANS: {v:?} is not a number"))?,
            Err(_) => 5,
        },
    };
    if max_jobs == 0 {
        return Err(anyhow!("MAX_CONCURRENT_JOBS must be at least 1"));
    }

    // Bind before touching the database so that a port in use fails fast and says so.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local_addr = listener.local_addr().context("listener has no address")?;

    let store: Arc<dyn Store> = Arc::new(scanplane_store::open(&args.database_url).await?);
    let default_tenant = store
        .ensure_tenant(scanplane_core::tenant::DEFAULT_TENANT)
        .await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Arc::new(Metrics::new());
    let wake_scheduler = Arc::new(Notify::new());
    let wake_dispatcher = Arc::new(Notify::new());
    let server_url = args.server_url.clone().unwrap_or_else(|| {
        let host = if local_addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            local_addr.ip().to_string()
        };
        format!("http://{host}:{}", local_addr.port())
    });

    let (obs_tx, obs_rx) = mpsc::unbounded_channel();
    let executor: Arc<dyn Executor> = match args.executor {
        ExecutorKind::Local => {
            let work_root = args
                .work_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("scanplane-work"));
            let program = std::env::current_exe()
                .context("cannot locate the scanplane binary for scanner mode")?;
            Arc::new(LocalExecutor::new(
                LocalConfig {
                    program,
                    work_root,
                    max_output: 16 * 1024 * 1024,
                    withheld_env: vec![
                        "SCANPLANE_ADMIN_TOKEN".into(),
                        "SCANPLANE_DATABASE_URL".into(),
                    ],
                    installation: installation_id(&args.database_url),
                },
                obs_tx,
            )?)
        }
        ExecutorKind::Kubernetes => {
            let cfg = kubernetes_config(&args.kubernetes)?;
            let exec = scanplane_executor_k8s::KubernetesExecutor::from_environment(cfg, obs_tx)
                .await
                .map_err(|e| {
                    anyhow!("kubernetes executor: {e} (set KUBECONFIG or run in a cluster)")
                })?;
            let _watcher = exec.spawn_watcher();
            Arc::new(exec)
        }
    };

    let mut scanner_timeouts = std::collections::HashMap::new();
    let mut scanner_images = std::collections::HashMap::new();
    for d in registry.definitions() {
        if let Some(t) = d.timeout {
            scanner_timeouts.insert(d.name.clone(), t);
        }
        if let Some(i) = &d.image {
            scanner_images.insert(d.name.clone(), i.clone());
        }
    }
    let dispatch_config = DispatchConfig {
        limits: Limits {
            global: Some(max_jobs),
            per_tenant: args.max_concurrent_per_tenant.or(config.limits.per_tenant),
            per_scanner: config.limits.per_scanner.clone(),
        },
        policies,
        default_timeout: args.scanner_timeout,
        scanner_timeouts,
        scanner_images,
        max_attempts: args.backoff_limit.saturating_add(1),
        server_url: server_url.clone(),
        ..Default::default()
    };
    let dispatcher = Dispatcher::new(
        DispatchContext {
            store: store.clone(),
            executor: executor.clone(),
            clock: clock.clone(),
            config: dispatch_config,
            metrics: metrics.clone(),
            wake: wake_dispatcher.clone(),
        },
        obs_rx,
    );
    let providers = registry.clone();
    let scheduler = Scheduler::new(SchedulerContext {
        store: store.clone(),
        clock: clock.clone(),
        wake: wake_scheduler.clone(),
        wake_dispatcher: wake_dispatcher.clone(),
        provider_of: Arc::new(move |name: &str| {
            providers
                .get(name)
                .and_then(|s| s.definition().provider.clone())
        }),
        config: SchedulerConfig::default(),
    });

    let state = Arc::new(AppState {
        store: store.clone(),
        catalog: Arc::new(RegistryCatalog(registry.clone())),
        clock,
        admin_token_hash: args
            .admin_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(scanplane_api::auth::hash_token),
        default_tenant,
        wake_scheduler,
        wake_dispatcher,
        metrics,
    });
    if state.admin_token_hash.is_none() {
        tracing::warn!("SCANPLANE_ADMIN_TOKEN is not set: the API accepts only tenant tokens, and none can be created");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler_task = tokio::spawn(scheduler.run(stop_rx.clone()));
    let cleaner_task = tokio::spawn(scanplane_dispatch::cleaner::run(
        store.clone(),
        Arc::new(SystemClock),
        scanplane_dispatch::cleaner::CleanerConfig {
            default_retention: args.retention,
            ..Default::default()
        },
        stop_rx.clone(),
    ));
    let dispatcher_task = tokio::spawn(dispatcher.run(stop_rx));

    tracing::info!(listen = %local_addr, store = store.backend().as_str(), executor = executor.name(), max_concurrent_jobs = max_jobs, %server_url, "scanplane serving");
    let http = scanplane_api::server::ServerConfig {
        header_timeout: args.http_header_timeout,
        body_timeout: args.http_body_timeout,
        max_connections: args.http_max_connections as usize,
        ..Default::default()
    };
    scanplane_api::server::serve(
        listener,
        scanplane_api::router(state),
        http,
        shutdown_signal(),
    )
    .await
    .context("HTTP server failed")?;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = scheduler_task.await;
        let _ = dispatcher_task.await;
        let _ = cleaner_task.await;
    })
    .await;
    tracing::info!("scanplane stopped");
    Ok(())
}

/// Scanner mode; returns the process exit code.
/// Scanner mode. `isolated`: this process is the first of its own PID namespace and its
/// parent-death signal is already set (see `isolate`).
pub async fn job(isolated: bool) -> i32 {
    if !isolated {
        scanplane_job::die_with_parent();
    }
    let config = match scanplane_job::JobConfig::from_lookup(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    let file = match load_config(
        std::env::var_os("SCANPLANE_CONFIG")
            .map(std::path::PathBuf::from)
            .as_deref(),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let registry = match registry_from(&file) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    match scanplane_job::run(config, registry).await {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// A stable, secret-free name of the database this server uses: the local executor marks
/// its units with it, so another installation on the same host never touches them.
fn installation_id(database_url: &str) -> String {
    let hash = scanplane_protocol::token::hash_token(database_url);
    hash.get(..16).unwrap_or(&hash).to_string()
}
