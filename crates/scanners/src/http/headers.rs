//! Checks of a response's headers: missing security headers and headers that disclose a
//! server's version.

use reqwest::header::HeaderMap;
use scanplane_core::finding::Severity;

use super::{issue, Issue};

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
}
