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
use scanplane_dispatch::{DispatchConfig, DispatchContext, Dispatcher, Fence, ReplicaIdentity};
use scanplane_executor::local::{LocalConfig, LocalExecutor};
use scanplane_executor::Executor;
use scanplane_metrics::Metrics;
use scanplane_scanners::{CustomScannerConfig, Registry, ValidationError};
use scanplane_scheduler::{Scheduler, SchedulerConfig, SchedulerContext};
use scanplane_store::Store;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::ConfigFile;
use crate::{ExecutorKind, ServeArgs};

/// The scanner registry as the API sees it. With `local` (the local executor) units run on
/// this machine, so what they need installed is checked here, at submit.
struct RegistryCatalog {
    registry: Arc<Registry>,
    local: bool,
}

impl ScannerCatalog for RegistryCatalog {
    fn definitions(&self) -> Vec<ScannerDef> {
        self.registry.definitions()
    }
    fn definition(&self, name: &str) -> Option<ScannerDef> {
        self.registry.get(name).map(|s| s.definition().clone())
    }
    fn unusable(&self, scanner: &str) -> Option<String> {
        let s = self.registry.get(scanner)?;
        self.local.then(|| s.missing_here(None)).flatten()
    }
    fn validate(
        &self,
        scanner: &str,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), Rejection> {
        let s = self.registry.get(scanner).ok_or_else(|| Rejection {
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
        })?;
        match self.local.then(|| s.missing_here(Some((targets, options)))) {
            Some(Some(missing)) => Err(Rejection {
                field: "scanner",
                message: format!("scanner {scanner:?} cannot run on this server: {missing}"),
            }),
            _ => Ok(()),
        }
    }
    fn scope_options(&self, scanner: &str, options: &serde_json::Value) -> String {
        self.registry.scope_options(scanner, options)
    }
}

/// The custom scanners of the configuration file, each with the JSON definition its units
/// of work receive. With `resolve_here` (units run on this machine) every command must
/// exist now: a relative path is made absolute against this directory and a bare name
/// found on `PATH`, so a unit, which runs elsewhere, runs the same program.
fn custom_scanners(
    config: &ConfigFile,
    resolve_here: bool,
) -> anyhow::Result<Vec<(CustomScannerConfig, String)>> {
    config
        .scanners
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut c: CustomScannerConfig = serde_yaml::from_value(v.clone())
                .map_err(|e| anyhow!("config file: scanners[{i}]: {e}"))?;
            let mut json =
                serde_json::to_value(v).map_err(|e| anyhow!("config file: scanners[{i}]: {e}"))?;
            if resolve_here {
                if let Some(program) = c.command.first() {
                    let resolved = resolve_command(program).map_err(|e| {
                        anyhow!("config file: scanners[{i}] ({}): command: {e}", c.name)
                    })?;
                    let resolved = resolved.to_string_lossy().into_owned();
                    json["command"][0] = serde_json::Value::String(resolved.clone());
                    c.command[0] = resolved;
                }
            }
            Ok((c, json.to_string()))
        })
        .collect()
}

/// Where `program` is ([`scanplane_scanners::locate_program`]), or why it is nowhere.
fn resolve_command(program: &str) -> Result<std::path::PathBuf, String> {
    scanplane_scanners::locate_program(program).ok_or_else(|| {
        if program.contains('/') {
            let shown = std::path::absolute(program).unwrap_or_else(|_| program.into());
            format!("{} is not an executable file", shown.display())
        } else {
            format!("{program:?} not found on PATH")
        }
    })
}

fn registry_from(custom: &[(CustomScannerConfig, String)]) -> anyhow::Result<Registry> {
    Registry::with_custom(custom.iter().map(|(c, _)| c.clone()).collect())
        .map_err(|e| anyhow!("config file: scanners: {e}"))
}

/// Refuses limits and rate limits that name nothing this server has: a typo would
/// otherwise silently limit nothing.
fn check_names(config: &ConfigFile, registry: &Registry) -> anyhow::Result<()> {
    let defs = registry.definitions();
    let mut scanners: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    scanners.sort_unstable();
    let mut names: Vec<&String> = config.limits.per_scanner.keys().collect();
    names.sort();
    if let Some(unknown) = names.into_iter().find(|n| !scanners.contains(&n.as_str())) {
        return Err(anyhow!(
            "config file: limits.per_scanner.{unknown}: no scanner is named {unknown:?}; scanners: {}",
            scanners.join(", ")
        ));
    }
    let mut providers: Vec<&str> = defs.iter().filter_map(|d| d.provider.as_deref()).collect();
    providers.sort_unstable();
    providers.dedup();
    let mut named: Vec<&String> = config.rate_limits.keys().collect();
    named.sort();
    // `registry/HOST[:PORT]` limits a registry's discoveries and SBOM pulls together.
    let is_registry = |p: &str| {
        p.strip_prefix("registry/")
            .is_some_and(|host| !host.is_empty() && !host.contains('/'))
    };
    if let Some(unknown) = named
        .into_iter()
        .find(|p| !providers.contains(&p.as_str()) && !is_registry(p))
    {
        return Err(anyhow!(
            "config file: rate_limits.{unknown}: no scanner counts against provider {unknown:?}; providers: {} (and registry/HOST for a registry)",
            if providers.is_empty() { "none".to_string() } else { providers.join(", ") }
        ));
    }
    Ok(())
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

pub(crate) async fn shutdown_signal() {
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
    let custom = custom_scanners(&config, matches!(args.executor, ExecutorKind::Local))?;
    let registry = Arc::new(registry_from(&custom)?);
    check_names(&config, &registry)?;
    let scanner_definitions: std::collections::HashMap<String, String> =
        custom.into_iter().map(|(c, json)| (c.name, json)).collect();
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

    let replica = replica_identity();
    let lease = scanplane_core::replica::LeaseConfig::new(args.replica_lease)
        .map_err(|e| anyhow!("SCANPLANE_REPLICA_LEASE: {e}"))?;
    let (obs_tx, obs_rx) = mpsc::unbounded_channel();
    let mut watcher = None;
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
                    withheld_env: ["SCANPLANE_ADMIN_TOKEN", "SCANPLANE_DATABASE_URL"]
                        .into_iter()
                        .chain(crate::NATS_SECRET_ENV)
                        .map(String::from)
                        .collect(),
                    installation: installation_id(&args.database_url),
                    replica: replica.id.clone(),
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
            watcher = Some(("kubernetes watcher", exec.spawn_watcher()));
            Arc::new(exec)
        }
        ExecutorKind::Nats => {
            let cfg = args
                .nats
                .config(&format!("scanplane serve {}", replica.id))
                .map_err(|e| anyhow!(e))?;
            let exec = scanplane_executor_nats::NatsExecutor::connect(cfg, obs_tx, metrics.clone())
                .await
                .map_err(|e| anyhow!("nats executor: {e}"))?;
            watcher = Some(("nats watcher", exec.spawn_watcher()));
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
        scanner_definitions,
        max_attempts: args.backoff_limit.saturating_add(1),
        retry_delay: args.retry_delay,
        retry_delay_max: args.retry_delay_max.max(args.retry_delay),
        server_url: server_url.clone(),
        report_grace: args.report_grace,
        lease,
        ..Default::default()
    };
    let fence = Arc::new(Fence::default());
    let dispatcher = Dispatcher::new(
        DispatchContext {
            store: store.clone(),
            executor: executor.clone(),
            clock: clock.clone(),
            config: dispatch_config,
            metrics: metrics.clone(),
            wake: wake_dispatcher.clone(),
            replica: replica.clone(),
            fence: fence.clone(),
        },
        obs_rx,
    );
    let providers = registry.clone();
    let scopes = registry.clone();
    let scheduler = Scheduler::new(SchedulerContext {
        store: store.clone(),
        clock: clock.clone(),
        wake: wake_scheduler.clone(),
        wake_dispatcher: wake_dispatcher.clone(),
        provider_of: Arc::new(move |name: &str, targets: &[String]| {
            scanplane_protocol::registry::pipeline_provider(name, targets).or_else(|| {
                providers
                    .get(name)
                    .and_then(|s| s.definition().provider.clone())
            })
        }),
        scope_of: Arc::new(move |name: &str, options: &str| {
            let options = serde_json::from_str(options).unwrap_or(serde_json::Value::Null);
            scopes.scope_options(name, &options)
        }),
        config: SchedulerConfig::default(),
    });

    let state = Arc::new(AppState {
        store: store.clone(),
        catalog: Arc::new(RegistryCatalog {
            registry: registry.clone(),
            local: matches!(args.executor, ExecutorKind::Local),
        }),
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
        replica: Arc::new(scanplane_api::health::ReplicaHealth::new(
            replica.id.clone(),
        )),
        clusters: config.clusters.keys().cloned().collect(),
    });
    let health = state.replica.clone();
    if state.admin_token_hash.is_none() {
        tracing::warn!("SCANPLANE_ADMIN_TOKEN is not set: the API accepts only tenant tokens, and none can be created");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops: Vec<(&'static str, tokio::task::JoinHandle<()>)> = vec![
        ("scheduler", tokio::spawn(scheduler.run(stop_rx.clone()))),
        (
            "cleaner",
            tokio::spawn(scanplane_dispatch::cleaner::run(
                store.clone(),
                Arc::new(SystemClock),
                scanplane_dispatch::cleaner::CleanerConfig {
                    default_retention: args.retention,
                    ..Default::default()
                },
                stop_rx.clone(),
            )),
        ),
    ];
    // Vulnerability reports: new SBOMs matched once, imports rematching what they affect.
    loops.push((
        "vulnerability matcher",
        tokio::spawn(
            scanplane_rematch::Rematcher {
                store: store.clone(),
                clock: Arc::new(SystemClock),
                every: Duration::from_secs(2),
            }
            .run(stop_rx.clone()),
        ),
    ));
    // Advisory feeds of the configuration, checked every `advisories.every`.
    let feed_sources = config
        .advisories
        .sources()
        .map_err(|e| anyhow!("config file: {e}"))?;
    if !feed_sources.is_empty() {
        let every = config
            .advisories
            .every()
            .map_err(|e| anyhow!("config file: {e}"))?;
        tracing::info!(sources = feed_sources.len(), every = ?every, "advisory feeds configured");
        loops.push((
            "advisory feeds",
            tokio::spawn(
                scanplane_rematch::feeds::FeedSync {
                    store: store.clone(),
                    clock: Arc::new(SystemClock),
                    sources: feed_sources,
                    every,
                    client: scanplane_rematch::feeds::client()
                        .map_err(|e| anyhow!("advisory feed client: {e}"))?,
                }
                .run(stop_rx.clone()),
            ),
        ));
    }
    loops.push((
        "lease keeper",
        tokio::spawn(scanplane_dispatch::fence::run(
            scanplane_dispatch::fence::LeaseKeeper {
                fence,
                store: store.clone(),
                executor: executor.clone(),
                clock: Arc::new(SystemClock),
                lease,
                replica_id: replica.id.clone(),
            },
            stop_rx.clone(),
        )),
    ));
    if let Some(w) = watcher {
        loops.push(w);
    }
    loops.push(("dispatcher", tokio::spawn(dispatcher.run(stop_rx.clone()))));
    if args.operator.operator {
        loops.extend(
            crate::operator::start(
                &args.operator,
                state.clone(),
                crate::operator::Settings {
                    identity: replica.id.clone(),
                    api_url: server_url.to_string(),
                    defaults: config
                        .operator
                        .defaults()
                        .map_err(|e| anyhow!("config file: {e}"))?,
                    tenant_annotation: config.operator.tenant_annotation,
                    jobs_namespace: matches!(args.executor, ExecutorKind::Kubernetes)
                        .then(|| args.kubernetes.k8s_namespace.clone()),
                },
                stop_rx.clone(),
            )
            .await?,
        );
    }
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<String>();
    let supervised: Vec<tokio::task::JoinHandle<()>> = loops
        .into_iter()
        .map(|(name, handle)| {
            tokio::spawn(supervise(
                name,
                handle,
                stop_rx.clone(),
                health.clone(),
                failed_tx.clone(),
            ))
        })
        .collect();
    drop(failed_tx);

    tracing::info!(listen = %local_addr, store = store.backend().as_str(), executor = executor.name(), replica = %replica.id, max_concurrent_jobs = max_jobs, %server_url, "scanplane serving");
    let http = scanplane_api::server::ServerConfig {
        header_timeout: args.http_header_timeout,
        body_timeout: args.http_body_timeout,
        max_connections: args.http_max_connections as usize,
        ..Default::default()
    };
    let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let failure_seen = failure.clone();
    let grace = args.loop_failure_grace;
    let stop_when = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            Some(why) = failed_rx.recv() => {
                tracing::error!(%why, grace = ?grace, "a background loop stopped: /readyz answers 503 and serve exits after the grace");
                if let Ok(mut f) = failure_seen.lock() {
                    *f = Some(why);
                }
                tokio::time::sleep(grace).await;
            }
        }
    };
    scanplane_api::server::serve(listener, scanplane_api::router(state), http, stop_when)
        .await
        .context("HTTP server failed")?;
    let _ = stop_tx.send(true);
    // The dispatcher's graceful stop ends or hands over every unit this replica owns and
    // releases its lease; bounded so that a dead database cannot hold the exit.
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        for s in supervised {
            let _ = s.await;
        }
    })
    .await;
    let failed = failure.lock().ok().and_then(|f| f.clone());
    if let Some(why) = failed {
        return Err(anyhow!(
            "{why}; exiting so that a supervisor restarts scanplane"
        ));
    }
    tracing::info!("scanplane stopped");
    Ok(())
}

/// Waits for loop `name`; if it ends before shutdown was asked for, or panics, marks the
/// replica unready naming it and reports it on `failed`.
async fn supervise(
    name: &'static str,
    handle: tokio::task::JoinHandle<()>,
    stop: watch::Receiver<bool>,
    health: Arc<scanplane_api::health::ReplicaHealth>,
    failed: mpsc::UnboundedSender<String>,
) {
    let outcome = handle.await;
    if *stop.borrow() {
        return;
    }
    let why = match outcome {
        Ok(()) => format!("the {name} loop ended unexpectedly"),
        Err(e) if e.is_panic() => {
            let msg = e.into_panic();
            let text = msg
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            format!("the {name} loop panicked: {text}")
        }
        Err(e) => format!("the {name} loop was cancelled: {e}"),
    };
    tracing::error!(loop_name = name, %why, "background loop stopped");
    health.loop_stopped(name, &why);
    let _ = failed.send(why);
}

/// This process as a replica: the hostname (the pod name in Kubernetes) plus a random
/// suffix, so that a restarted process is a new replica and never mistaken for the old one.
pub(crate) fn replica_identity() -> ReplicaIdentity {
    let hostname = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "replica".to_string());
    let random =
        scanplane_protocol::token::hash_token(&scanplane_protocol::token::new_report_token());
    let suffix = random.get(..8).unwrap_or(&random);
    ReplicaIdentity {
        id: scanplane_core::replica::replica_id(&hostname, suffix),
        hostname,
    }
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
    // The unit runs the scanner definition it was given; only without one (a built-in
    // scanner, or a unit started by hand) is a configuration file read.
    let custom = match std::env::var(scanplane_protocol::env::SCANNER_DEFINITION) {
        Ok(json) if !json.is_empty() => match serde_json::from_str::<CustomScannerConfig>(&json) {
            Ok(c) => Ok(vec![(c, json)]),
            Err(e) => Err(anyhow!(
                "{}: {e}",
                scanplane_protocol::env::SCANNER_DEFINITION
            )),
        },
        _ => load_config(
            std::env::var_os("SCANPLANE_CONFIG")
                .map(std::path::PathBuf::from)
                .as_deref(),
        )
        .and_then(|f| custom_scanners(&f, false)),
    };
    let registry = match custom.and_then(|c| registry_from(&c)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn supervised(
        task: impl std::future::Future<Output = ()> + Send + 'static,
        stopping: bool,
    ) -> (Vec<(String, String)>, Option<String>) {
        let health = Arc::new(scanplane_api::health::ReplicaHealth::new("r-1"));
        let (stop_tx, stop_rx) = watch::channel(stopping);
        let (tx, mut rx) = mpsc::unbounded_channel();
        supervise(
            "dispatcher",
            tokio::spawn(task),
            stop_rx,
            health.clone(),
            tx,
        )
        .await;
        drop(stop_tx);
        (health.stopped_loops(), rx.try_recv().ok())
    }

    #[tokio::test]
    async fn a_panicking_loop_is_named_and_reported() {
        let (stopped, sent) = supervised(
            async {
                panic!("poisoned row");
            },
            false,
        )
        .await;
        assert_eq!(stopped.len(), 1);
        assert_eq!(stopped[0].0, "dispatcher");
        assert!(
            stopped[0].1.contains("panicked: poisoned row"),
            "{stopped:?}"
        );
        assert!(sent.unwrap().contains("dispatcher"));
    }

    #[tokio::test]
    async fn a_loop_ending_before_shutdown_is_a_failure_but_not_at_shutdown() {
        let (stopped, sent) = supervised(async {}, false).await;
        assert!(stopped[0].1.contains("ended unexpectedly"), "{stopped:?}");
        assert!(sent.is_some());
        let (stopped, sent) = supervised(async {}, true).await;
        assert!(stopped.is_empty());
        assert!(sent.is_none());
    }
}
