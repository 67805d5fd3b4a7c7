//! The built-in `tcp` scanner: a TCP connect scan with a passive banner grab, written in
//! pure Rust so it works without any tool installed and without raw-socket privileges.
//!
//! Targets are hosts: `host` (scans the `ports` option, default [`DEFAULT_PORTS`]),
//! `host:port` or `host:first-last` (scans exactly those ports), and network ranges
//! (`10.0.0.0/28`, `fd00::/124`, `10.0.0.1-20`) of at most [`MAX_NETWORK_ADDRESSES`]
//! addresses, each address scanned on the `ports` option's ports. Options: `ports`
//! (e.g. `"22,80,8000-8100"`), `concurrency` (simultaneous connection attempts, default 256),
//! `connect_timeout` (default `2s`).
//!
//! Each open port is one `info` finding with rule `open-port`, location `tcp/<port>` and
//! title `Open port <port>/tcp`; the detail carries whatever the service sent within
//! [`BANNER_WAIT`] of connecting (nothing is sent to it). Severity is always `info`
//! because an open port is an inventory fact, not a weakness by itself.
//!
//! Fingerprint recipe: `fingerprint("tcp", [normalized host, port, "tcp"])`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use scanplane_core::finding::{fingerprint, normalize_host, Finding, Severity};
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{PortRange, Target, TargetKind};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::error::{ScanError, ValidationError};
use crate::options::Options;
use crate::registry::Component;
use crate::{
    adapter_def, check_network_size, check_target_kinds, emit, RunRequest, ScanOutcome, Scanner,
};

pub const NAME: &str = "tcp";
const OPTIONS: &[&str] = &["ports", "concurrency", "connect_timeout"];
/// The options that change what is scanned (the rest only how fast).
const SCOPE_OPTIONS: &[&str] = &["ports"];

/// Ports scanned on a bare host: the services most often exposed by mistake.
pub const DEFAULT_PORTS: &str = "21,22,23,25,53,80,81,110,111,135,139,143,389,443,445,465,587,993,995,1433,1521,2049,2375,2376,3000,3306,3389,5000,5432,5601,5672,5900,5984,6379,6443,7001,8000,8080,8081,8443,8888,9000,9090,9200,9300,10250,11211,15672,27017";
const DEFAULT_CONCURRENCY: u64 = 256;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a service to speak first after the connection is accepted.
pub const BANNER_WAIT: Duration = Duration::from_millis(1500);
/// Most bytes of banner kept.
pub const BANNER_MAX: usize = 256;
/// Most addresses of one network target (a /24): each is probed on every port, so the
/// default ports on this many addresses are already some 13,000 connection attempts.
pub const MAX_NETWORK_ADDRESSES: u128 = 256;

/// The registry entry of this scanner (see [`crate::BUILTIN`]).
pub const COMPONENT: Component = Component {
    build: || Arc::new(TcpScanner::new()),
    parser: None,
};

/// The built-in TCP connect scanner.
pub struct TcpScanner {
    def: ScannerDef,
}

impl Default for TcpScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpScanner {
    pub fn new() -> Self {
        TcpScanner {
            def: adapter_def(
                NAME,
                "TCP connect scan with banner grab (built in)",
                ScannerKind::Builtin,
                vec![TargetKind::Host, TargetKind::Network],
                OPTIONS,
                SCOPE_OPTIONS,
            ),
        }
    }
}

struct Settings {
    default_ports: Vec<PortRange>,
    concurrency: usize,
    connect_timeout: Duration,
}

fn settings(options: &serde_json::Value) -> Result<Settings, ValidationError> {
    let o = Options::parse(NAME, options, OPTIONS)?;
    let default_ports = match o.ports("ports")? {
        Some(p) => p,
        None => scanplane_core::target::parse_port_list(DEFAULT_PORTS)
            .map_err(|e| o.error("ports", e.to_string()))?,
    };
    let concurrency = o
        .integer("concurrency", 1, 4096)?
        .unwrap_or(DEFAULT_CONCURRENCY);
    let connect_timeout = o
        .duration("connect_timeout", Duration::from_secs(60))?
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    Ok(Settings {
        default_ports,
        concurrency: usize::try_from(concurrency).unwrap_or(256),
        connect_timeout,
    })
}

#[async_trait]
impl Scanner for TcpScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
    }

    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        check_target_kinds(&self.def, targets)?;
        check_network_size(&self.def, targets, MAX_NETWORK_ADDRESSES)?;
        settings(options).map(|_| ())
    }

    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        self.validate(&req.targets, &req.options)?;
        let s = settings(&req.options)?;
        match tokio::time::timeout(req.timeout, scan(&req.targets, &s, &findings)).await {
            Ok(r) => r,
            Err(_) => Err(ScanError::Timeout {
                scanner: NAME.to_string(),
                after: req.timeout,
            }),
        }
    }
}

async fn scan(
    targets: &[Target],
    s: &Settings,
    tx: &mpsc::Sender<Finding>,
) -> Result<ScanOutcome, ScanError> {
    let mut probes: Vec<(String, SocketAddr)> = Vec::new();
    let mut scanned = Vec::new();
    let mut unresolved = Vec::new();
    for t in targets {
        if let Target::Network(range) = t {
            // Bounded by validation (MAX_NETWORK_ADDRESSES); `take` keeps it so regardless.
            let limit = usize::try_from(MAX_NETWORK_ADDRESSES).unwrap_or(usize::MAX);
            for ip in range.addresses().take(limit) {
                for port in s.default_ports.iter().flat_map(PortRange::iter) {
                    probes.push((ip.to_string(), SocketAddr::new(ip, port)));
                }
            }
            scanned.push(t.to_string());
            continue;
        }
        let Target::Host { host, ports } = t else {
            continue;
        };
        let ip = match resolve(host).await {
            Ok(ip) => ip,
            Err(e) => {
                tracing::warn!(target = %t, error = %e, "tcp: cannot resolve host; skipping it");
                unresolved.push(format!("{t}: {e}"));
                continue;
            }
        };
        let ranges = match ports {
            Some(p) => std::slice::from_ref(p),
            None => s.default_ports.as_slice(),
        };
        let host = normalize_host(host);
        for port in ranges.iter().flat_map(PortRange::iter) {
            probes.push((host.clone(), SocketAddr::new(ip, port)));
        }
        scanned.push(t.to_string());
    }
    if scanned.is_empty() && !unresolved.is_empty() {
        return Err(ScanError::Failed {
            scanner: NAME.to_string(),
            exit_code: None,
            stderr_tail: format!("no target could be resolved: {}", unresolved.join("; ")),
        });
    }
    let connect_timeout = s.connect_timeout;
    let mut results = stream::iter(probes)
        .map(|(host, addr)| async move {
            probe(addr, connect_timeout)
                .await
                .map(|banner| open_port_finding(&host, addr.port(), &banner))
        })
        .buffer_unordered(s.concurrency);
    while let Some(found) = results.next().await {
        if let Some(f) = found {
            emit(NAME, tx, f).await?;
        }
    }
    Ok(ScanOutcome {
        targets_scanned: scanned,
        ..ScanOutcome::default()
    })
}

async fn resolve(host: &str) -> std::io::Result<std::net::IpAddr> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    tokio::net::lookup_host((host, 0))
        .await?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| std::io::Error::other("no addresses"))
}

/// Connects and waits briefly for a banner; `None` means the port is closed or filtered.
async fn probe(addr: SocketAddr, connect_timeout: Duration) -> Option<Vec<u8>> {
    let mut stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let mut banner = vec![0u8; BANNER_MAX];
    let mut filled = 0;
    let deadline = tokio::time::Instant::now() + BANNER_WAIT;
    // Services often send a banner in several segments; keep reading until the buffer is
    // full, the peer closes, or the wait is over.
    while filled < BANNER_MAX {
        match tokio::time::timeout_at(deadline, stream.read(&mut banner[filled..])).await {
            Ok(Ok(n)) if n > 0 => filled += n,
            _ => break,
        }
    }
    banner.truncate(filled);
    Some(banner)
}

/// Renders a banner as printable text: control characters become escapes so the detail is
/// safe to show in a terminal or web page.
pub fn printable_banner(banner: &[u8]) -> String {
    String::from_utf8_lossy(banner)
        .trim_end()
        .chars()
        .flat_map(|c| match c {
            '\r' => "\\r".chars().collect::<Vec<_>>(),
            '\n' => "\\n".chars().collect(),
            c if c.is_control() => c.escape_default().collect(),
            c => vec![c],
        })
        .collect()
}

/// Builds the finding for one open port.
pub fn open_port_finding(host: &str, port: u16, banner: &[u8]) -> Finding {
    let host = normalize_host(host);
    let port_s = port.to_string();
    let detail = if banner.is_empty() {
        "The port accepted a TCP connection; the service sent no banner.".to_string()
    } else {
        format!(
            "The port accepted a TCP connection. Banner: {}",
            printable_banner(banner)
        )
    };
    let target = Target::Host {
        host: host.clone(),
        ports: None,
    }
    .to_string();
    let mut f = Finding::new(
        NAME,
        target,
        "open-port",
        Severity::Info,
        format!("Open port {port}/tcp"),
        format!("tcp/{port}"),
    )
    .with_detail(detail);
    f.fingerprint = fingerprint(NAME, &[&host, &port_s, "tcp"]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_shape_and_fingerprint() {
        let f = open_port_finding("LocalHost.", 22, b"SSH-2.0-OpenSSH_9.2\r\n\x01");
        assert_eq!(f.target, "localhost");
        assert_eq!(f.location, "tcp/22");
        assert_eq!(f.title, "Open port 22/tcp");
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.detail
                .ends_with("Banner: SSH-2.0-OpenSSH_9.2\\r\\n\\u{1}"),
            "{}",
            f.detail
        );
        assert_eq!(
            f.fingerprint,
            fingerprint("tcp", &["localhost", "22", "tcp"])
        );
    }

    #[test]
    fn validation() {
        let s = TcpScanner::new();
        let host = [Target::parse("127.0.0.1").unwrap()];
        assert!(s.validate(&host, &serde_json::json!({"ports": "22,80-90", "concurrency": 10, "connect_timeout": "500ms"})).is_ok());
        let e = s
            .validate(&host, &serde_json::json!({"port": "22"}))
            .unwrap_err();
        assert!(e.to_string().contains("\"port\""), "{e}");
        let e = s
            .validate(&host, &serde_json::json!({"concurrency": 0}))
            .unwrap_err();
        assert!(e.to_string().contains("\"concurrency\""), "{e}");
        let url = [Target::parse("https://example.com").unwrap()];
        assert!(s.validate(&url, &serde_json::Value::Null).is_err());
        assert!(s.validate(&[], &serde_json::Value::Null).is_err());
    }
}
