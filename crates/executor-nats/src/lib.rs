//! The NATS executor: every scan attempt is a message on a JetStream work queue, pulled and
//! run by any number of stateless `scanplane worker`s, each unit exactly as `scanplane job`
//! runs it for the local executor (a child process with the same env contract, report
//! endpoint and token).
//!
//! Layout on the server (created or checked at start-up by both sides): a stream with
//! work-queue retention over `<subject prefix>.<kind>`, one durable pull consumer per kind
//! (`scan`, `discovery`, `sbom`, so a long step of one kind never starves another), and a
//! key-value bucket holding one record per attempt ([`state::Attempt`]), which is how the
//! control plane follows, cancels and declares lost what runs on workers.

pub mod executor;
pub mod state;
pub mod worker;

#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};

pub use async_nats;
pub use executor::NatsExecutor;
pub use state::Kind;
pub use worker::{Worker, WorkerConfig};

/// The oldest server with everything used here (work-queue consumers with distinct filter
/// subjects, key-value compare-and-set, consumer info as the client parses it).
pub const MIN_SERVER: (u64, u64) = (2, 10);

/// How to reach NATS and where the queue lives.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port` (several comma-separated); `tls://` requires TLS.
    pub url: String,
    /// A credentials file (JWT and NKey seed), as `nsc` writes.
    pub creds_file: Option<PathBuf>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// CA bundle to verify the server with.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key for mTLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The stream's name; the bucket and the subjects derive from it.
    pub stream: String,
    /// The name this connection shows in the server's monitoring.
    pub client_name: String,
}

pub const DEFAULT_STREAM: &str = "SCANPLANE_UNITS";

impl NatsConfig {
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            creds_file: None,
            token: None,
            user: None,
            password: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            stream: DEFAULT_STREAM.into(),
            client_name: "scanplane".into(),
        }
    }

    /// Subjects of the stream: `<prefix>.<kind>`.
    pub fn subject(&self, kind: Kind) -> String {
        format!("{}.{}", self.subject_prefix(), kind.as_str())
    }

    fn subject_prefix(&self) -> String {
        format!("scanplane.{}", self.stream.to_ascii_lowercase())
    }

    pub fn consumer(&self, kind: Kind) -> String {
        format!("scanplane-{}", kind.as_str())
    }

    pub fn bucket(&self) -> String {
        format!("{}_ATTEMPTS", self.stream)
    }
}

/// Failures of the NATS side.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("nats-server {version} at {url} is too old: scanplane needs {}.{} or newer (JetStream work queues and key-value compare-and-set); upgrade the server", MIN_SERVER.0, MIN_SERVER.1)]
    TooOld { url: String, version: String },
    #[error("JetStream is not enabled on the NATS server at {url} (start nats-server with -js, or enable jetstream in its config): {message}")]
    NoJetStream { url: String, message: String },
    #[error("NATS {what}: {message}")]
    Backend { what: &'static str, message: String },
}

fn backend(what: &'static str) -> impl Fn(String) -> NatsError {
    move |message| NatsError::Backend { what, message }
}

/// Parses a server's `major.minor.patch` version.
pub fn server_version(version: &str) -> Option<(u64, u64)> {
    let v = version.trim().trim_start_matches('v');
    let mut parts = v.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Connects (retrying until the server is reachable: a worker may start before NATS) and
/// checks the server's version. The client reconnects by itself afterwards, forever.
pub async fn connect(config: &NatsConfig) -> Result<async_nats::Client, NatsError> {
    let mut options = match &config.creds_file {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| {
                NatsError::Config(format!(
                    "cannot read the credentials file {}: {e}",
                    path.display()
                ))
            })?,
        None => async_nats::ConnectOptions::new(),
    };
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    match (&config.user, &config.password) {
        (Some(u), Some(p)) => options = options.user_and_password(u.clone(), p.clone()),
        (None, None) => {}
        _ => {
            return Err(NatsError::Config(
                "a NATS user needs a password and a password a user".into(),
            ))
        }
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => {
            options = options
                .add_client_certificate(c.clone(), k.clone())
                .require_tls(true)
        }
        (None, None) => {}
        _ => {
            return Err(NatsError::Config(
                "a TLS client certificate needs its key and a key its certificate".into(),
            ))
        }
    }
    let url = config.url.clone();
    let client = options
        .name(&config.client_name)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2_000))
        })
        .event_callback(move |event| {
            let url = url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(%url, "connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%url, "disconnected from NATS; reconnecting")
                    }
                    other => tracing::debug!(%url, event = %other, "NATS event"),
                }
            }
        })
        .connect(config.url.as_str())
        .await
        .map_err(|e| NatsError::Connect {
            url: config.url.clone(),
            message: e.to_string(),
        })?;
    let version = client.server_info().version;
    match server_version(&version) {
        Some(v) if v >= MIN_SERVER => Ok(client),
        _ => Err(NatsError::TooOld {
            url: config.url.clone(),
            version,
        }),
    }
}

/// The stream, its consumers and the attempts bucket, created if missing.
#[derive(Clone)]
pub struct Topology {
    pub jetstream: jetstream::Context,
    pub attempts: kv::Store,
    pub consumers: Vec<(Kind, consumer::PullConsumer)>,
}

/// Creates or checks the stream, the consumers and the bucket.
pub async fn topology(
    client: async_nats::Client,
    config: &NatsConfig,
) -> Result<Topology, NatsError> {
    let js = jetstream::new(client);
    js.query_account()
        .await
        .map_err(|e| NatsError::NoJetStream {
            url: config.url.clone(),
            message: e.to_string(),
        })?;
    let stream = js
        .get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            description: Some("scanplane units of work".into()),
            subjects: Kind::ALL.iter().map(|k| config.subject(*k)).collect(),
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            // A retried publish of one attempt within this window is stored once.
            duplicate_window: Duration::from_secs(120),
            // Longer than the longest scan timeout (7 days): nothing queued ages out first.
            max_age: Duration::from_secs(8 * 24 * 3600),
            ..Default::default()
        })
        .await
        .map_err(|e| backend("stream")(e.to_string()))?;
    let info = stream.cached_info();
    if info.config.retention != stream::RetentionPolicy::WorkQueue {
        return Err(NatsError::Config(format!(
            "stream {} exists without work-queue retention; delete it or choose another with --nats-stream",
            config.stream
        )));
    }
    let mut consumers = Vec::new();
    for kind in Kind::ALL {
        let name = config.consumer(kind);
        let c: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: config.subject(kind),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: state::ACK_WAIT,
                    // A delivery after a claim finds the attempt claimed or gone and is
                    // terminated; the others are naks of a full worker. This bounds a
                    // message no worker ever settles.
                    max_deliver: 1000,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| backend("consumer")(format!("{name}: {e}")))?;
        consumers.push((kind, c));
    }
    let bucket = config.bucket();
    let attempts = match js.get_key_value(&bucket).await {
        Ok(kv) => kv,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: bucket.clone(),
                description: "scanplane attempts: who runs each, and how it ended".into(),
                history: 1,
                storage: stream::StorageType::File,
                max_age: Duration::from_secs(8 * 24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| backend("bucket")(format!("{bucket}: {e}")))?,
    };
    Ok(Topology {
        jetstream: js,
        attempts,
        consumers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_servers_print_them() {
        assert_eq!(server_version("2.10.0"), Some((2, 10)));
        assert_eq!(server_version("v2.15.1"), Some((2, 15)));
        assert_eq!(server_version("2.11.0-beta.2"), Some((2, 11)));
        assert_eq!(server_version("garbage"), None);
        assert!(server_version("2.9.25").unwrap() < MIN_SERVER);
        assert!(server_version("3.0.0").unwrap() >= MIN_SERVER);
    }

    #[test]
    fn names_derive_from_the_stream() {
        let c = NatsConfig::new("nats://127.0.0.1:4222");
        assert_eq!(c.subject(Kind::Sbom), "scanplane.scanplane_units.sbom");
        assert_eq!(c.consumer(Kind::Discovery), "scanplane-discovery");
        assert_eq!(c.bucket(), "SCANPLANE_UNITS_ATTEMPTS");
    }
}
