//! The built-in `http` scanner: passive checks of a web application's response headers,
//! well-known sensitive files, and its TLS certificate, written in pure Rust.
//!
//! Targets are URLs. Options: `request_timeout` (per request, default `10s`),
//! `check_paths` (probe sensitive paths, default true), `check_tls` (inspect the
//! certificate of https targets, default true).
//!
//! Checks and severities (rule id → severity):
//! - headers of the target URL's response (after up to 5 redirects):
//!   `missing-strict-transport-security` (https only) → medium,
//!   `missing-content-security-policy` → low, `missing-x-content-type-options` → low
//!   (also when the value is not `nosniff`), `missing-clickjacking-protection` (neither
//!   `X-Frame-Options` nor a CSP `frame-ancestors`) → low, `missing-referrer-policy` → info;
//! - version disclosure: `version-disclosure-server` / `version-disclosure-x-powered-by`
//!   when the header carries a version number → low;
//! - sensitive paths at the origin's root, reported only when the body has the file's
//!   tell-tale content (a 200 with a generic page is not enough): `exposed-git-repository`
//!   (`/.git/HEAD` with `ref:` or a commit id, `/.git/config` with `[core]`) → high,
//!   `exposed-env-file` (`/.env` with `KEY=VALUE` lines) → high, `exposed-htpasswd` → high,
//!   `exposed-actuator-env` (`/actuator/env` with `propertySources`) → high,
//!   `exposed-server-status` (Apache mod_status) → medium, `exposed-phpinfo` → medium,
//!   `exposed-ds-store` (`/.DS_Store` with the `Bud1` magic) → low;
//! - TLS certificate of https targets (fetched with a verifier that accepts anything, so a
//!   broken certificate can be inspected rather than just failing the connection):
//!   `tls-certificate-expired` → high, `tls-certificate-not-yet-valid` → high,
//!   `tls-certificate-hostname-mismatch` → high, `tls-certificate-expiring` (within
//!   [`EXPIRY_WARNING_DAYS`] days) → medium, `tls-certificate-self-signed` → medium.
//!
//! Every finding carries its evidence (header values, the start of the matching body, the
//! certificate's subject and dates) in its detail.
//!
//! Fingerprint recipe: `fingerprint("http", [rule id, normalize_url(url)])` where url is the
//! target URL for header checks, the probed URL for paths, and the origin for TLS checks.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use scanplane_core::finding::{fingerprint, normalize_url, Finding, Severity};
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{Target, TargetKind};
use tokio::sync::mpsc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{ScanError, ValidationError};
use crate::options::Options;
use crate::registry::Component;
use crate::{check_target_kinds, emit, RunRequest, ScanOutcome, Scanner};

pub const NAME: &str = "http";
const OPTIONS: &[&str] = &["request_timeout", "check_paths", "check_tls"];
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A certificate expiring within this many days is reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Most bytes of a probed body read; every matcher needs only the start of the file.
const BODY_MAX: usize = 64 * 1024;
/// Characters of body kept as evidence.
const EVIDENCE_MAX: usize = 200;

/// One finding before it is tied to a target: what the pure check functions return.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub rule_id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: String,
}

fn issue(rule_id: &'static str, severity: Severity, title: &str, evidence: String) -> Issue {
    Issue {
        rule_id,
        severity,
        title: title.to_string(),
        evidence,
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// True when a header value carries a version number (`nginx/1.22.1`, `PHP/8.1`, `IIS 10.0`).
fn has_version(value: &str) -> bool {
    let b = value.as_bytes();
    b.windows(2).any(|w| w[0] == b'/' && w[1].is_ascii_digit())
        || b.windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
}

/// Checks a response's headers; `https` says whether the response came over TLS.
pub fn check_headers(h: &HeaderMap, https: bool) -> Vec<Issue> {
    let mut out = Vec::new();
    let csp = header(h, "content-security-policy");
    if https && header(h, "strict-transport-security").is_none() {
        out.push(issue(
            "missing-strict-transport-security",
            Severity::Medium,
            "Missing Strict-Transport-Security header",
            "The https response has no Strict-Transport-Security header, so browsers may be downgraded to plain http.".into(),
        ));
    }
    if csp.is_none() {
        out.push(issue(
            "missing-content-security-policy",
            Severity::Low,
            "Missing Content-Security-Policy header",
            "The response has no Content-Security-Policy header.".into(),
        ));
    }
    match header(h, "x-content-type-options") {
        Some(v) if v.eq_ignore_ascii_case("nosniff") => {}
        other => out.push(issue(
            "missing-x-content-type-options",
            Severity::Low,
            "Missing X-Content-Type-Options: nosniff",
            match other {
                Some(v) => format!("X-Content-Type-Options is {v:?}, not \"nosniff\"."),
                None => "The response has no X-Content-Type-Options header.".into(),
            },
        )),
    }
    let frame_ancestors = csp.is_some_and(|c| c.to_ascii_lowercase().contains("frame-ancestors"));
    if header(h, "x-frame-options").is_none() && !frame_ancestors {
        out.push(issue(
            "missing-clickjacking-protection",
            Severity::Low,
            "Missing X-Frame-Options or CSP frame-ancestors",
            "The response sets neither X-Frame-Options nor a Content-Security-Policy frame-ancestors directive, so it can be framed by any site.".into(),
        ));
    }
    if header(h, "referrer-policy").is_none() {
        out.push(issue(
            "missing-referrer-policy",
            Severity::Info,
            "Missing Referrer-Policy header",
            "The response has no Referrer-Policy header.".into(),
        ));
    }
    for (name, rule) in [
        ("server", "version-disclosure-server"),
        ("x-powered-by", "version-disclosure-x-powered-by"),
    ] {
        if let Some(v) = header(h, name).filter(|v| has_version(v)) {
            let canonical = if name == "server" {
                "Server"
            } else {
                "X-Powered-By"
            };
            out.push(issue(
                rule,
                Severity::Low,
                &format!("{canonical} header discloses a version"),
                format!("{canonical}: {v}"),
            ));
        }
    }
    out
}

/// A well-known sensitive path and how to recognize its real content.
pub struct SensitivePath {
    pub path: &'static str,
    pub rule_id: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    matches: fn(&[u8]) -> bool,
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

fn looks_like_html(body: &[u8]) -> bool {
    let t = text(&body[..body.len().min(512)])
        .trim_start()
        .to_ascii_lowercase();
    t.starts_with('<') || t.contains("<html")
}

fn git_head(body: &[u8]) -> bool {
    let t = text(body);
    let t = t.trim();
    t.starts_with("ref: refs/") || (t.len() == 40 && t.chars().all(|c| c.is_ascii_hexdigit()))
}

fn git_config(body: &[u8]) -> bool {
    !looks_like_html(body) && text(body).contains("[core]")
}

fn env_file(body: &[u8]) -> bool {
    if looks_like_html(body) {
        return false;
    }
    let t = text(body);
    let mut assignments = 0;
    for line in t.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let is_assignment = line.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit())
        });
        if !is_assignment {
            return false;
        }
        assignments += 1;
    }
    assignments > 0
}

fn server_status(body: &[u8]) -> bool {
    let t = text(body);
    t.contains("Apache Server Status") || (t.contains("Server uptime") && t.contains("requests"))
}

fn ds_store(body: &[u8]) -> bool {
    body.len() >= 8 && body[..4] == [0, 0, 0, 1] && &body[4..8] == b"Bud1"
}

fn htpasswd(body: &[u8]) -> bool {
    if looks_like_html(body) {
        return false;
    }
    let t = text(body);
    let mut lines = t
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    lines.peek().is_some()
        && lines.all(|l| {
            l.split_once(':').is_some_and(|(user, hash)| {
                !user.is_empty()
                    && (hash.starts_with("$apr1$")
                        || hash.starts_with("$2y$")
                        || hash.starts_with("$2a$")
                        || hash.starts_with("{SHA}")
                        || hash.starts_with("$6$")
                        || hash.starts_with("$5$")
                        || (hash.len() == 13 && !hash.contains(' ')))
            })
        })
}

fn phpinfo(body: &[u8]) -> bool {
    let t = text(body);
    t.contains("<title>phpinfo()</title>") || (t.contains("PHP Version") && t.contains("phpinfo"))
}

fn actuator_env(body: &[u8]) -> bool {
    let t = text(body);
    t.contains("\"propertySources\"") && t.contains("\"activeProfiles\"")
}

/// The paths probed at each origin, with their matchers.
pub const SENSITIVE_PATHS: &[SensitivePath] = &[
    SensitivePath {
        path: "/.git/HEAD",
        rule_id: "exposed-git-repository",
        severity: Severity::High,
        title: "Git repository exposed (/.git/HEAD)",
        matches: git_head,
    },
    SensitivePath {
        path: "/.git/config",
        rule_id: "exposed-git-repository",
        severity: Severity::High,
        title: "Git repository exposed (/.git/config)",
        matches: git_config,
    },
    SensitivePath {
        path: "/.env",
        rule_id: "exposed-env-file",
        severity: Severity::High,
        title: "Environment file exposed (/.env)",
        matches: env_file,
    },
    SensitivePath {
        path: "/.htpasswd",
        rule_id: "exposed-htpasswd",
        severity: Severity::High,
        title: "Password file exposed (/.htpasswd)",
        matches: htpasswd,
    },
    SensitivePath {
        path: "/actuator/env",
        rule_id: "exposed-actuator-env",
        severity: Severity::High,
        title: "Spring Boot actuator environment exposed (/actuator/env)",
        matches: actuator_env,
    },
    SensitivePath {
        path: "/server-status",
        rule_id: "exposed-server-status",
        severity: Severity::Medium,
        title: "Apache server status exposed (/server-status)",
        matches: server_status,
    },
    SensitivePath {
        path: "/phpinfo.php",
        rule_id: "exposed-phpinfo",
        severity: Severity::Medium,
        title: "phpinfo() page exposed (/phpinfo.php)",
        matches: phpinfo,
    },
    SensitivePath {
        path: "/.DS_Store",
        rule_id: "exposed-ds-store",
        severity: Severity::Low,
        title: "macOS .DS_Store file exposed (/.DS_Store)",
        matches: ds_store,
    },
];

/// Checks a probed path's body; `None` when it is not the sensitive file.
pub fn check_path(p: &SensitivePath, status: u16, body: &[u8]) -> Option<Issue> {
    if status != 200 || !(p.matches)(body) {
        return None;
    }
    let shown = &body[..body.len().min(EVIDENCE_MAX)];
    let evidence = if body.iter().take(EVIDENCE_MAX).any(|b| *b == 0) {
        format!(
            "Binary content starting with {:02x?}",
            &shown[..shown.len().min(16)]
        )
    } else {
        format!(
            "HTTP 200, body starts with: {}",
            crate::tcp::printable_banner(shown)
        )
    };
    Some(issue(p.rule_id, p.severity, p.title, evidence))
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

fn ip_from_san(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Inspects a server's certificate chain (leaf first) as seen for `host` at unix time `now`.
pub fn check_certificate(chain: &[Vec<u8>], host: &str, now: i64) -> Vec<Issue> {
    let Some(leaf_der) = chain.first() else {
        return vec![issue(
            "tls-certificate-missing",
            Severity::High,
            "Server sent no TLS certificate",
            "The TLS handshake completed without a server certificate.".into(),
        )];
    };
    let cert = match X509Certificate::from_der(leaf_der) {
        Ok((_, c)) => c,
        Err(e) => {
            return vec![issue(
                "tls-certificate-unparseable",
                Severity::Medium,
                "Server certificate cannot be parsed",
                format!("The leaf certificate is not valid X.509: {e}"),
            )]
        }
    };
    let subject = cert.subject().to_string();
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let dates = format!(
        "Subject: {subject}; issuer: {}; valid from {} to {}.",
        cert.issuer(),
        cert.validity().not_before,
        cert.validity().not_after
    );
    let mut out = Vec::new();
    if not_after < now {
        out.push(issue(
            "tls-certificate-expired",
            Severity::High,
            "TLS certificate has expired",
            format!(
                "The certificate expired {} days ago. {dates}",
                (now - not_after) / 86_400
            ),
        ));
    } else if not_after - now < EXPIRY_WARNING_DAYS * 86_400 {
        out.push(issue(
            "tls-certificate-expiring",
            Severity::Medium,
            &format!("TLS certificate expires within {EXPIRY_WARNING_DAYS} days"),
            format!(
                "The certificate expires in {} days. {dates}",
                (not_after - now) / 86_400
            ),
        ));
    }
    if not_before > now {
        out.push(issue(
            "tls-certificate-not-yet-valid",
            Severity::High,
            "TLS certificate is not yet valid",
            dates.clone(),
        ));
    }
    let host_ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
    let mut names: Vec<String> = Vec::new();
    let mut matched = false;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => {
                    names.push(d.to_string());
                    matched |= host_ip.is_none() && host_matches(d, host);
                }
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_san(b) {
                        names.push(ip.to_string());
                        matched |= host_ip == Some(ip);
                    }
                }
                _ => {}
            }
        }
    } else {
        // Without a SAN extension, clients fall back to the subject's common name.
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.to_string());
                matched |= host_matches(cn, host);
            }
        }
    }
    if !matched {
        out.push(issue(
            "tls-certificate-hostname-mismatch",
            Severity::High,
            "TLS certificate does not match the host name",
            format!(
                "The certificate is valid for [{}], not {host:?}. {dates}",
                names.join(", ")
            ),
        ));
    }
    let self_signed =
        cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok();
    if self_signed {
        out.push(issue(
            "tls-certificate-self-signed",
            Severity::Medium,
            "TLS certificate is self-signed",
            format!("The certificate is signed by its own key, so no client trusts it. {dates}"),
        ));
    }
    out
}

/// Accepts every certificate: the scanner must complete the handshake with broken
/// certificates in order to inspect them. It never sends credentials or trusts the data.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `host:port` and returns the certificate chain the server presents.
async fn fetch_certificates(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let bare = host.trim_matches(['[', ']']);
    let server_name = ServerName::try_from(bare.to_string()).map_err(|e| e.to_string())?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
            .unwrap_or_default();
        Ok::<_, String>(chain)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// The registry entry of this scanner (see [`crate::BUILTIN`]).
pub const COMPONENT: Component = Component {
    build: || Arc::new(HttpScanner::new()),
};

/// The built-in HTTP scanner.
pub struct HttpScanner {
    def: ScannerDef,
}

impl Default for HttpScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpScanner {
    pub fn new() -> Self {
        HttpScanner {
            def: ScannerDef {
                name: NAME.to_string(),
                description: "HTTP security headers, version disclosure, exposed files and TLS certificate checks (built in)".to_string(),
                kind: ScannerKind::Builtin,
                provider: None,
                timeout: None,
                image: None,
                accepts: vec![TargetKind::Url],
                options: OPTIONS.to_vec(),
            },
        }
    }
}

struct Settings {
    request_timeout: Duration,
    check_paths: bool,
    check_tls: bool,
}

fn settings(options: &serde_json::Value) -> Result<Settings, ValidationError> {
    let o = Options::parse(NAME, options, OPTIONS)?;
    Ok(Settings {
        request_timeout: o
            .duration("request_timeout", Duration::from_secs(300))?
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        check_paths: o.boolean("check_paths")?.unwrap_or(true),
        check_tls: o.boolean("check_tls")?.unwrap_or(true),
    })
}

fn finding(target: &str, url: &str, i: Issue) -> Finding {
    let location = normalize_url(url);
    let mut f = Finding::new(
        NAME,
        target,
        i.rule_id,
        i.severity,
        i.title,
        location.clone(),
    )
    .with_detail(i.evidence);
    f.fingerprint = fingerprint(NAME, &[i.rule_id, &location]);
    f
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() >= BODY_MAX {
            body.truncate(BODY_MAX);
            break;
        }
    }
    Ok(body)
}

fn client(
    timeout: Duration,
    redirects: reqwest::redirect::Policy,
) -> Result<reqwest::Client, ScanError> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .redirect(redirects)
        .timeout(timeout)
        .user_agent(concat!("scanplane-http/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ScanError::io(NAME, "building the HTTP client", std::io::Error::other(e)))
}

async fn scan_url(
    target: &str,
    s: &Settings,
    main: &reqwest::Client,
    probe: &reqwest::Client,
    tx: &mpsc::Sender<Finding>,
) -> Result<(), String> {
    let url = reqwest::Url::parse(target).map_err(|e| format!("invalid URL: {e}"))?;
    let resp = main
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let final_https = resp.url().scheme() == "https";
    for i in check_headers(resp.headers(), final_https) {
        send(tx, finding(target, target, i)).await?;
    }
    drop(resp);
    if s.check_paths {
        for p in SENSITIVE_PATHS {
            let mut probe_url = url.clone();
            probe_url.set_path(p.path);
            probe_url.set_query(None);
            probe_url.set_fragment(None);
            let Ok(resp) = probe.get(probe_url.clone()).send().await else {
                continue;
            };
            let status = resp.status().as_u16();
            if status != 200 {
                continue;
            }
            let Ok(body) = read_capped(resp).await else {
                continue;
            };
            if let Some(i) = check_path(p, status, &body) {
                send(tx, finding(target, probe_url.as_str(), i)).await?;
            }
        }
    }
    if s.check_tls && url.scheme() == "https" {
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let origin = format!("https://{}/", url.authority());
        match fetch_certificates(&host, port, s.request_timeout).await {
            Ok(chain) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .unwrap_or(0);
                for i in check_certificate(&chain, &host, now) {
                    send(tx, finding(target, &origin, i)).await?;
                }
            }
            Err(e) => {
                tracing::warn!(target = %target, error = %e, "http: cannot inspect the TLS certificate")
            }
        }
    }
    Ok(())
}

/// Sends a finding; the error string marks a closed channel so the caller can stop.
async fn send(tx: &mpsc::Sender<Finding>, f: Finding) -> Result<(), String> {
    emit(NAME, tx, f).await.map_err(|_| CANCELLED.to_string())
}

const CANCELLED: &str = "cancelled";

#[async_trait]
impl Scanner for HttpScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
    }

    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        check_target_kinds(&self.def, targets)?;
        settings(options).map(|_| ())
    }

    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        self.validate(&req.targets, &req.options)?;
        let s = settings(&req.options)?;
        let main = client(s.request_timeout, reqwest::redirect::Policy::limited(5))?;
        let probe = client(s.request_timeout, reqwest::redirect::Policy::none())?;
        let work = async {
            let mut scanned = Vec::new();
            let mut failures = Vec::new();
            for t in &req.targets {
                let Target::Url(url) = t else { continue };
                match scan_url(url, &s, &main, &probe, &findings).await {
                    Ok(()) => scanned.push(url.clone()),
                    Err(e) if e == CANCELLED => {
                        return Err(ScanError::Cancelled {
                            scanner: NAME.to_string(),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(target = %url, error = %e, "http: target not scanned");
                        failures.push(format!("{url}: {e}"));
                    }
                }
            }
            if scanned.is_empty() && !failures.is_empty() {
                return Err(ScanError::Failed {
                    scanner: NAME.to_string(),
                    exit_code: None,
                    stderr_tail: failures.join("\n"),
                });
            }
            Ok(ScanOutcome {
                targets_scanned: scanned,
            })
        };
        tokio::time::timeout(req.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ScanError::Timeout {
                    scanner: NAME.to_string(),
                    after: req.timeout,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn rules(issues: &[Issue]) -> Vec<&'static str> {
        issues.iter().map(|i| i.rule_id).collect()
    }

    #[test]
    fn header_checks() {
        let bare = check_headers(
            &headers(&[("server", "nginx/1.22.1"), ("x-powered-by", "Express")]),
            true,
        );
        assert_eq!(
            rules(&bare),
            [
                "missing-strict-transport-security",
                "missing-content-security-policy",
                "missing-x-content-type-options",
                "missing-clickjacking-protection",
                "missing-referrer-policy",
                "version-disclosure-server",
            ]
        );
        assert_eq!(bare[5].evidence, "Server: nginx/1.22.1");
        let good = check_headers(
            &headers(&[
                ("strict-transport-security", "max-age=63072000"),
                (
                    "content-security-policy",
                    "default-src 'self'; frame-ancestors 'none'",
                ),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
                ("server", "nginx"),
            ]),
            true,
        );
        assert!(good.is_empty(), "{good:?}");
        let plain = check_headers(
            &headers(&[
                ("x-content-type-options", "sniff-away"),
                ("x-frame-options", "DENY"),
            ]),
            false,
        );
        assert_eq!(
            rules(&plain),
            [
                "missing-content-security-policy",
                "missing-x-content-type-options",
                "missing-referrer-policy"
            ]
        );
        assert!(
            has_version("Microsoft-IIS/10.0")
                && has_version("PHP 8.1.2")
                && !has_version("cloudflare")
        );
    }

    #[test]
    fn path_matchers_need_real_content() {
        let find = |p: &str| SENSITIVE_PATHS.iter().find(|s| s.path == p).unwrap();
        assert!(check_path(find("/.git/HEAD"), 200, b"ref: refs/heads/main\n").is_some());
        assert!(check_path(find("/.git/HEAD"), 200, b"<html>Welcome</html>").is_none());
        assert!(check_path(find("/.git/HEAD"), 404, b"ref: refs/heads/main\n").is_none());
        assert!(check_path(
            find("/.env"),
            200,
            b"# db\nDB_PASSWORD=hunter2\nexport API_KEY=x\n"
        )
        .is_some());
        assert!(check_path(find("/.env"), 200, b"<!doctype html><p>a=b</p>").is_none());
        assert!(check_path(find("/.env"), 200, b"Not found, sorry").is_none());
        assert!(check_path(find("/.DS_Store"), 200, b"\x00\x00\x00\x01Bud1\x00\x00").is_some());
        assert!(check_path(find("/.DS_Store"), 200, b"Bud1").is_none());
        assert!(check_path(
            find("/server-status"),
            200,
            b"<h1>Apache Server Status for x</h1>"
        )
        .is_some());
        assert!(check_path(find("/.htpasswd"), 200, b"admin:$apr1$abc$def\n").is_some());
        assert!(check_path(find("/.htpasswd"), 200, b"hello: world").is_none());
    }

    fn cert(names: &[&str], from: (i32, u8, u8), to: (i32, u8, u8)) -> Vec<u8> {
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        p.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    const JAN_1_2030: i64 = 1_893_456_000;

    #[test]
    fn certificate_checks() {
        let valid_long = cert(
            &["example.com", "*.example.org"],
            (2025, 1, 1),
            (2035, 1, 1),
        );
        assert_eq!(
            rules(&check_certificate(
                std::slice::from_ref(&valid_long),
                "example.com",
                JAN_1_2030
            )),
            ["tls-certificate-self-signed"]
        );
        assert_eq!(
            rules(&check_certificate(
                std::slice::from_ref(&valid_long),
                "a.example.org",
                JAN_1_2030
            )),
            ["tls-certificate-self-signed"]
        );
        let mismatch = check_certificate(
            std::slice::from_ref(&valid_long),
            "a.b.example.org",
            JAN_1_2030,
        );
        assert_eq!(
            rules(&mismatch),
            [
                "tls-certificate-hostname-mismatch",
                "tls-certificate-self-signed"
            ]
        );
        assert!(
            mismatch[0].evidence.contains("example.com, *.example.org"),
            "{}",
            mismatch[0].evidence
        );
        let expiring = cert(&["example.com"], (2029, 1, 1), (2030, 1, 15));
        let e = check_certificate(&[expiring], "example.com", JAN_1_2030);
        assert_eq!(
            rules(&e),
            ["tls-certificate-expiring", "tls-certificate-self-signed"]
        );
        assert!(
            e[0].evidence
                .starts_with("The certificate expires in 14 days"),
            "{}",
            e[0].evidence
        );
        let expired = cert(&["example.com"], (2020, 1, 1), (2021, 1, 1));
        assert_eq!(
            rules(&check_certificate(&[expired], "example.com", JAN_1_2030))[0],
            "tls-certificate-expired"
        );
        let future = cert(&["127.0.0.1"], (2031, 1, 1), (2032, 1, 1));
        assert_eq!(
            rules(&check_certificate(&[future], "127.0.0.1", JAN_1_2030)),
            [
                "tls-certificate-not-yet-valid",
                "tls-certificate-self-signed"
            ]
        );
        assert_eq!(
            rules(&check_certificate(&[b"junk".to_vec()], "x", 0)),
            ["tls-certificate-unparseable"]
        );
        assert_eq!(
            rules(&check_certificate(&[], "x", 0)),
            ["tls-certificate-missing"]
        );
    }
}
