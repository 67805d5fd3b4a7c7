//! The `scanplane` binary. `serve` runs the API, the scheduler and the dispatcher over one
//! store; `job` is scanner mode, started by an executor to run one scan and report back.
//! Configuration errors end the process with one line naming the problem and exit code 2.

mod config;
mod isolate;
mod operator;
mod serve;
mod vuln;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "scanplane",
    version,
    about = "The control plane for continuous security scanning",
    after_help = "Logging: SCANPLANE_LOG sets what is logged, as a tracing filter (default \
        `info,sqlx=warn` for serve, `warn` for job; e.g. `SCANPLANE_LOG=debug` or \
        `SCANPLANE_LOG=info,scanplane::audit=off`). Audit lines use the target scanplane::audit."
)]
struct Cli {
    /// Log format: text for people, json (one object per line) for log collectors. What is
    /// logged is set by SCANPLANE_LOG (a tracing filter, e.g. `debug` or `info,sqlx=warn`).
    #[arg(long, env = "SCANPLANE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API, the scheduler and the dispatcher.
    Serve(Box<ServeArgs>),
    /// Scanner mode: run one scan configured by env vars and report it (started by executors).
    Job,
    /// Vulnerability matching with the built-in matcher, offline.
    #[command(subcommand)]
    Vuln(vuln::VulnCommand),
    /// Pull units of work from the NATS JetStream queue and run them (`serve --executor
    /// nats` publishes them). Stateless: flags and env only, no database.
    Worker(Box<worker::WorkerArgs>),
    /// Print the CustomResourceDefinitions of group scanplane.io as YAML (the Helm chart
    /// installs the same files), e.g. `scanplane crds | kubectl apply -f -`.
    Crds,
}

/// Which executor runs scans.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Child processes on this machine.
    Local,
    /// One Kubernetes Job per scan attempt (in-cluster config or KUBECONFIG).
    Kubernetes,
    /// A NATS JetStream work queue, run by `scanplane worker` processes (--nats-url).
    Nats,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Database: a SQLite file path or `sqlite://PATH`, or `postgres://USER:PASS@HOST/DB`.
    #[arg(
        long,
        env = "SCANPLANE_DATABASE_URL",
        default_value = "sqlite://scanplane.db"
    )]
    pub database_url: String,
    /// Address to listen on.
    #[arg(long, env = "SCANPLANE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Configuration file (YAML: `rate_limits`, `limits`, `scanners`).
    #[arg(long, env = "SCANPLANE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Admin bearer token. Without it only tenant tokens (which only an admin can create) work.
    #[arg(long, env = "SCANPLANE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where scans run.
    #[arg(long, env = "SCANPLANE_EXECUTOR", value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// Most scans running at once (default 5; MAX_CONCURRENT_SCANS is an alias).
    #[arg(long, env = "MAX_CONCURRENT_JOBS")]
    pub max_concurrent_jobs: Option<u32>,
    /// Most scans of one tenant running at once (unlimited when unset).
    #[arg(long, env = "SCANPLANE_MAX_CONCURRENT_PER_TENANT")]
    pub max_concurrent_per_tenant: Option<u32>,
    /// Default scan timeout, e.g. `30m`.
    #[arg(long, env = "SCANNER_TIMEOUT", default_value = "30m", value_parser = parse_scan_timeout)]
    pub scanner_timeout: Duration,
    /// Retries of a failed scan before it ends `failed`.
    #[arg(long, env = "SCANNER_BACKOFF_LIMIT", default_value_t = 2)]
    pub backoff_limit: u32,
    /// URL scanner processes report to (default: derived from --listen).
    #[arg(long, env = "SCANPLANE_SERVER_URL")]
    pub server_url: Option<String>,
    /// Parent directory of the local executor's per-scan working directories.
    #[arg(long, env = "SCANPLANE_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// How long ended scans and their findings are kept, unless a tenant sets its own.
    #[arg(long, env = "SCANPLANE_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub retention: Duration,
    /// Longest time a client may take to send a request head, counted from connecting or
    /// from the end of its previous response: it also closes idle keep-alive connections.
    #[arg(long, env = "SCANPLANE_HTTP_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub http_header_timeout: Duration,
    /// Longest silence while a request body (a report stream too) is received; the request
    /// is then ended with 408.
    #[arg(long, env = "SCANPLANE_HTTP_BODY_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub http_body_timeout: Duration,
    /// Most HTTP connections served at once; more clients wait until one closes. Keep it
    /// below the open-files limit (`ulimit -n`).
    #[arg(long, env = "SCANPLANE_HTTP_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,
    /// How long this replica's lease lasts (2s-1h; renewed every third of it). When a
    /// replica stops renewing it (killed, partitioned), another takes its scans over once it
    /// expires; a graceful stop releases it at once.
    #[arg(long, env = "SCANPLANE_REPLICA_LEASE", default_value = "15s", value_parser = parse_lease)]
    pub replica_lease: Duration,
    /// How long after a unit of work exits cleanly its final report may still arrive
    /// before the scan fails with "job completed without a report".
    #[arg(long, env = "SCANPLANE_REPORT_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub report_grace: Duration,
    /// Wait after a scan's first failed attempt before it is retried; doubled after each
    /// further failure (10s, 20s, 40s, ...) up to --retry-delay-max. At most 1d; 0s retries
    /// at once. Failures that would recur (missing tool, bad output) are not retried.
    #[arg(long, env = "SCANPLANE_RETRY_DELAY", default_value = "10s", value_parser = parse_retry_delay)]
    pub retry_delay: Duration,
    /// Longest wait between two attempts of a scan (at most 1d).
    #[arg(long, env = "SCANPLANE_RETRY_DELAY_MAX", default_value = "5m", value_parser = parse_retry_delay)]
    pub retry_delay_max: Duration,
    /// How long `serve` keeps answering (with `/readyz` 503) after a background loop
    /// stopped, before it exits non-zero for its supervisor to restart it.
    #[arg(long, env = "SCANPLANE_LOOP_FAILURE_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub loop_failure_grace: Duration,
    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub operator: operator::OperatorArgs,
}

/// How to reach NATS (`serve --executor nats` and `worker`).
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server(s), `nats://host:4222` (comma-separated for a cluster; `tls://` requires TLS).
    #[arg(long, env = "SCANPLANE_NATS_URL")]
    pub nats_url: Option<String>,
    /// Credentials file (user JWT and NKey seed, as `nsc` writes it).
    #[arg(long, env = "SCANPLANE_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// Token authentication.
    #[arg(long, env = "SCANPLANE_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// User of user/password authentication.
    #[arg(long, env = "SCANPLANE_NATS_USER")]
    pub nats_user: Option<String>,
    /// Password of user/password authentication.
    #[arg(long, env = "SCANPLANE_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// CA bundle (PEM) the server's certificate is verified with.
    #[arg(long, env = "SCANPLANE_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; needs --nats-tls-key.
    #[arg(long, env = "SCANPLANE_NATS_TLS_CERT")]
    pub nats_tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    #[arg(long, env = "SCANPLANE_NATS_TLS_KEY")]
    pub nats_tls_key: Option<PathBuf>,
    /// The JetStream stream of units; its attempt bucket and subjects derive from it.
    /// Control plane and workers must name the same one.
    #[arg(long, env = "SCANPLANE_NATS_STREAM", default_value = scanplane_executor_nats::DEFAULT_STREAM)]
    pub nats_stream: String,
}

impl NatsArgs {
    /// The client settings; `client_name` shows in the server's connection list.
    pub fn config(&self, client_name: &str) -> Result<scanplane_executor_nats::NatsConfig, String> {
        let url = self
            .nats_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or("--nats-url (SCANPLANE_NATS_URL) is required, e.g. nats://127.0.0.1:4222")?;
        if self.nats_tls_cert.is_some() != self.nats_tls_key.is_some() {
            return Err("--nats-tls-cert and --nats-tls-key go together".into());
        }
        if self.nats_user.is_some() != self.nats_password.is_some() {
            return Err("--nats-user and --nats-password go together".into());
        }
        let mut cfg = scanplane_executor_nats::NatsConfig::new(url);
        cfg.creds_file = self.nats_creds.clone();
        cfg.token = self.nats_token.clone().filter(|t| !t.is_empty());
        cfg.user = self.nats_user.clone();
        cfg.password = self.nats_password.clone();
        cfg.tls_ca = self.nats_tls_ca.clone();
        cfg.tls_cert = self.nats_tls_cert.clone();
        cfg.tls_key = self.nats_tls_key.clone();
        cfg.stream = self.nats_stream.clone();
        cfg.client_name = client_name.to_string();
        Ok(cfg)
    }
}

/// Env vars holding NATS secrets: never passed on to scanner processes.
pub const NATS_SECRET_ENV: [&str; 3] = [
    "SCANPLANE_NATS_TOKEN",
    "SCANPLANE_NATS_PASSWORD",
    "SCANPLANE_NATS_CREDS",
];

/// Settings of the Kubernetes executor (`--executor kubernetes`).
#[derive(Debug, clap::Args)]
pub struct KubernetesArgs {
    /// Namespace of scan Jobs, their Secrets and Events.
    #[arg(long, env = "SCANPLANE_K8S_NAMESPACE", default_value = "default")]
    pub k8s_namespace: String,
    /// Default scanner image.
    #[arg(long, env = "SCANNER_IMAGE", default_value = "scanplane:latest")]
    pub scanner_image: String,
    /// Service account of scanner pods (it needs no permissions).
    #[arg(
        long,
        env = "SCANPLANE_SCANNER_SERVICE_ACCOUNT",
        default_value = "scanplane-scanner"
    )]
    pub scanner_service_account: String,
    /// The Job's own backoffLimit (pod retries inside one attempt).
    #[arg(long, env = "SCANPLANE_JOB_BACKOFF_LIMIT", default_value_t = 0)]
    pub job_backoff_limit: i32,
    /// Seconds finished Jobs are kept (ttlSecondsAfterFinished).
    #[arg(long, env = "JOB_TTL_AFTER_FINISHED", default_value_t = 3600)]
    pub job_ttl_after_finished: i32,
    /// CPU request of scanner pods (Kubernetes quantity); empty leaves it unset.
    #[arg(long, env = "SCANNER_CPU_REQUEST", default_value = "100m")]
    pub scanner_cpu_request: String,
    /// Memory request of scanner pods (Kubernetes quantity); empty leaves it unset.
    #[arg(long, env = "SCANNER_MEMORY_REQUEST", default_value = "256Mi")]
    pub scanner_memory_request: String,
    /// CPU limit of scanner pods (Kubernetes quantity); empty leaves it unset.
    #[arg(long, env = "SCANNER_CPU_LIMIT", default_value = "1")]
    pub scanner_cpu_limit: String,
    /// Memory limit of scanner pods (Kubernetes quantity); empty leaves it unset.
    #[arg(long, env = "SCANNER_MEMORY_LIMIT", default_value = "1Gi")]
    pub scanner_memory_limit: String,
    /// Node selector of scanner pods, `key=value,key2=value2`.
    #[arg(long, env = "SCANNER_NODE_SELECTOR")]
    pub scanner_node_selector: Option<String>,
    /// Tolerations of scanner pods, a JSON array.
    #[arg(long, env = "SCANNER_TOLERATIONS")]
    pub scanner_tolerations: Option<String>,
    /// How long a pod may fail to pull its image or be unschedulable before the attempt fails.
    #[arg(long, env = "SCANNER_PENDING_GRACE", default_value = "5m", value_parser = parse_duration)]
    pub scanner_pending_grace: Duration,
    /// The app.kubernetes.io/instance label of this installation's Jobs.
    #[arg(long, env = "SCANPLANE_INSTANCE", default_value = "scanplane")]
    pub instance: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    scanplane_core::duration::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_scan_timeout(s: &str) -> Result<Duration, String> {
    scanplane_core::limits::DurationLimit::ScanTimeout
        .parse(s)
        .map_err(|e| e.to_string())
}

fn parse_lease(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    scanplane_core::replica::LeaseConfig::new(d)
        .map(|_| d)
        .map_err(|e| e.to_string())
}

fn parse_retry_delay(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d > Duration::from_secs(86_400) => Err("must be at most 1d".to_string()),
        d => Ok(d),
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than zero".to_string()),
        d => Ok(d),
    }
}

fn init_logging(format: LogFormat, default_filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCANPLANE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Every CRD, as one multi-document YAML stream on stdout.
fn print_crds() -> i32 {
    for (file, crd) in scanplane_operator::crd::all() {
        match scanplane_operator::crd::to_yaml(&crd) {
            Ok(yaml) => print!("---\n{yaml}"),
            Err(e) => {
                eprintln!("scanplane crds: {file}: {e}");
                return 1;
            }
        }
    }
    0
}

fn main() {
    let cli = Cli::parse_from(std::env::args_os());
    // Scanner mode's stderr becomes the failure reason of its scan: keep it to warnings.
    let default_filter = match cli.command {
        Command::Job | Command::Vuln(_) | Command::Crds => "warn",
        Command::Serve(_) => "info,sqlx=warn",
        Command::Worker(_) => "info",
    };
    init_logging(cli.log_format, default_filter);
    // Offline and synchronous: no runtime, no TLS.
    let cli = match cli.command {
        Command::Vuln(command) => std::process::exit(vuln::run(command)),
        Command::Crds => std::process::exit(print_crds()),
        command => Cli { command, ..cli },
    };
    // Before the runtime starts threads: scanner mode first moves into a PID namespace.
    let mut isolated = false;
    if matches!(cli.command, Command::Job) {
        match isolate::enter() {
            isolate::Role::Done(code) => std::process::exit(code),
            isolate::Role::Job { isolated: i } => isolated = i,
        }
    }
    // Both ring and aws-lc may be linked in; TLS clients need one process-wide choice.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => match serve::serve(*args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    2
                }
            },
            Command::Job => serve::job(isolated).await,
            Command::Worker(args) => match worker::run(*args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    2
                }
            },
            // Handled before the runtime starts.
            Command::Vuln(_) | Command::Crds => 2,
        }
    });
    std::process::exit(code);
}
