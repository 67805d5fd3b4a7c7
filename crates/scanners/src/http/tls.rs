//! Checks of a server's TLS certificate: expired, not yet valid, expiring soon, for another
//! host name, self-signed. The certificate is fetched with a verifier that accepts anything,
//! so a broken certificate can be inspected rather than just failing the connection.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use scanplane_core::finding::Severity;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{issue, Issue};

/// A certificate expiring within this many days is reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

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

/// Fetches the certificate of an https URL's server and inspects it; returns the origin the
/// issues are about.
pub(super) async fn inspect(url: &Url, timeout: Duration) -> Result<(String, Vec<Issue>), String> {
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let origin = format!("https://{}/", url.authority());
    let chain = fetch_certificates(&host, port, timeout).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok((origin, check_certificate(&chain, &host, now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(issues: &[Issue]) -> Vec<&'static str> {
        issues.iter().map(|i| i.rule_id).collect()
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
