//! `scanplane worker`: flags and env into a [`WorkerConfig`], a small HTTP listener for the
//! Kubernetes probes (`/healthz`) and Prometheus (`/metrics`), and the pull loops until
//! SIGTERM/SIGINT, after which running units get `--shutdown-grace` to end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use scanplane_executor_nats::{Kind, Worker, WorkerConfig};

use crate::NatsArgs;

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Units run at once, all kinds together.
    #[arg(long, env = "SCANPLANE_WORKER_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Most units of one kind at once, `kind=N,...` with kinds scan, discovery, sbom (e.g.
    /// `discovery=2,sbom=4`), so that one long kind cannot take every slot. A kind not
    /// listed may use all of --concurrency.
    #[arg(long, env = "SCANPLANE_WORKER_LIMITS", default_value = "", value_parser = parse_limits)]
    pub limits: KindLimits,
    /// Address of `/healthz` (200 while connected to NATS) and `/metrics`; empty for none.
    #[arg(
        long,
        env = "SCANPLANE_WORKER_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: String,
    /// Parent directory of the per-unit working directories.
    #[arg(long, env = "SCANPLANE_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// This worker's name in attempt records and logs (default: hostname plus a random
    /// suffix, new at every start).
    #[arg(long, env = "SCANPLANE_WORKER_ID")]
    pub worker_id: Option<String>,
    /// After SIGTERM, how long running units may go on before they are stopped and handed
    /// back for another worker (keep it under the pod's terminationGracePeriodSeconds).
    #[arg(long, env = "SCANPLANE_WORKER_SHUTDOWN_GRACE", default_value = "50s", value_parser = crate::parse_duration)]
    pub shutdown_grace: Duration,
}

/// Per-kind limits as parsed from `--limits`.
#[derive(Debug, Clone, Default)]
pub struct KindLimits(pub HashMap<Kind, usize>);

fn parse_limits(s: &str) -> Result<KindLimits, String> {
    let mut limits = HashMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, n) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected kind=N, e.g. discovery=2"))?;
        let kind = Kind::parse(kind.trim()).ok_or_else(|| {
            format!(
                "{:?}: unknown kind (one of {})",
                kind.trim(),
                Kind::ALL.map(Kind::as_str).join(", ")
            )
        })?;
        let n: usize = n
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| format!("{part:?}: the limit must be a number from 1 to 1024"))?;
        if limits.insert(kind, n).is_some() {
            return Err(format!("{:?} is limited twice", kind.as_str()));
        }
    }
    Ok(KindLimits(limits))
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let worker_id = match args.worker_id.clone().filter(|w| !w.trim().is_empty()) {
        Some(id) => id,
        None => crate::serve::replica_identity().id,
    };
    let nats = args
        .nats
        .config(&format!("scanplane-worker {worker_id}"))
        .map_err(|e| anyhow!(e))?;
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
    let program =
        std::env::current_exe().context("cannot locate the scanplane binary for scanner mode")?;
    let config = WorkerConfig {
        nats,
        worker_id,
        concurrency,
        limits: args.limits.0.clone(),
        program,
        work_root: args
            .work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("scanplane-worker")),
        withheld_env: crate::NATS_SECRET_ENV.map(String::from).to_vec(),
        shutdown_grace: args.shutdown_grace,
    };
    let worker = Worker::connect(config).await?;
    let health = if args.listen.trim().is_empty() {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(listen = %args.listen, "worker health and metrics listening");
        let app = router(worker.client(), worker.metrics());
        Some(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "worker health listener stopped");
            }
        }))
    };
    worker.run(crate::serve::shutdown_signal()).await;
    if let Some(h) = health {
        h.abort();
    }
    Ok(())
}

fn router(
    client: scanplane_executor_nats::async_nats::Client,
    metrics: Arc<scanplane_executor_nats::worker::WorkerMetrics>,
) -> axum::Router {
    axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let client = client.clone();
                async move {
                    // Disconnected, the worker can neither fetch nor record: let the probe
                    // restart it if that lasts (the client itself reconnects meanwhile).
                    if client.connection_state() == scanplane_executor_nats::async_nats::connection::State::Connected {
                        (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"})))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(
                                serde_json::json!({"status": "unavailable", "reason": "not connected to NATS"}),
                            ),
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_reject_with_the_reason() {
        let l = parse_limits("discovery=2, sbom=4").expect("valid");
        assert_eq!(l.0.get(&Kind::Discovery), Some(&2));
        assert_eq!(l.0.get(&Kind::Sbom), Some(&4));
        assert_eq!(l.0.get(&Kind::Scan), None);
        assert!(parse_limits("").expect("empty").0.is_empty());
        assert!(parse_limits("match=2")
            .unwrap_err()
            .contains("unknown kind"));
        assert!(parse_limits("sbom=0").unwrap_err().contains("1 to 1024"));
        assert!(parse_limits("sbom").unwrap_err().contains("kind=N"));
        assert!(parse_limits("sbom=1,sbom=2").unwrap_err().contains("twice"));
    }
}
