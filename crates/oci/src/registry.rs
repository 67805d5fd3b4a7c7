//! The registry's address and credentials, the `/v2/` check, and paginated listing of the
//! catalog and of tags on reqwest.
//!
//! Why listing is not done with `oci-client`: its `catalog()` and `list_tags()` take `n`/`last`
//! but return only the parsed body, dropping the `Link: <...>; rel="next"` header, and the
//! distribution spec makes that header the way to the next page (registries may return fewer
//! than `n` entries per page and may use their own `last` cursor). So listing is done here on
//! reqwest, with the same credentials: HTTP basic, or the distribution token exchange
//! (`WWW-Authenticate: Bearer realm=...,service=...` → `GET realm?service=&scope=` with basic
//! credentials → `{"token"|"access_token"}`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, AUTHORIZATION, LINK, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::error::{chain, excerpt, status_text, DiscoveryError};
use crate::{Access, Auth};

/// Credentials resolved from [`Auth`].
#[derive(Clone)]
pub(crate) enum Credentials {
    Anonymous,
    Basic(String, String),
    /// A registry token from a docker config (`registrytoken`), sent as is.
    Bearer(String),
}

/// What `/v2/` asked for.
#[derive(Debug, Clone)]
enum Scheme {
    Open,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A registry's parsed address.
pub(crate) struct Endpoint {
    /// "scheme://host[:port]", no trailing slash: the registry in error messages.
    pub label: String,
    /// "host[:port]": the registry in references and in docker configs.
    pub host: String,
    pub base: Url,
    pub plain_http: bool,
}

pub(crate) fn parse_endpoint(url: &str) -> Result<Endpoint, DiscoveryError> {
    let label = url.trim_end_matches('/').to_string();
    let parsed = Url::parse(&label)
        .map_err(|e| DiscoveryError::config(&label, format!("bad url {url:?}: {e}")))?;
    let plain_http = match parsed.scheme() {
        "http" => true,
        "https" => false,
        other => {
            return Err(DiscoveryError::config(
                &label,
                format!("bad url {url:?}: scheme {other:?}, expected http or https"),
            ))
        }
    };
    let Some(host) = parsed.host_str() else {
        return Err(DiscoveryError::config(
            &label,
            format!("bad url {url:?}: no host"),
        ));
    };
    if parsed.path() != "/" && !parsed.path().is_empty()
        || parsed.query().is_some()
        || !parsed.username().is_empty()
    {
        return Err(DiscoveryError::config(
            &label,
            format!("bad url {url:?}: expected scheme://host[:port] without path, query or user"),
        ));
    }
    let host = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    Ok(Endpoint {
        label,
        host,
        base: parsed,
        plain_http,
    })
}

/// The PEM certificates of a bundle, one PEM block each (oci-client takes them one by one).
pub(crate) fn split_pem(label: &str, pem: &str) -> Result<Vec<String>, DiscoveryError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            return Err(DiscoveryError::config(
                label,
                "ca_bundle: unterminated PEM certificate",
            ));
        };
        let end = start + len + END.len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    if blocks.is_empty() {
        return Err(DiscoveryError::config(
            label,
            "ca_bundle: no PEM certificate in it",
        ));
    }
    // Parse every block now: a bad bundle is a configuration error, not a TLS failure later.
    for block in &blocks {
        reqwest::Certificate::from_pem(block.as_bytes())
            .map_err(|e| DiscoveryError::config(label, format!("ca_bundle: {}", chain(&e))))?;
    }
    Ok(blocks)
}

#[derive(Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: HashMap<String, DockerAuthEntry>,
}

#[derive(Deserialize, Default)]
struct DockerAuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// "https://host:port/v1/" and "host:port" both name "host:port".
fn docker_config_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

pub(crate) fn resolve_credentials(
    endpoint: &Endpoint,
    auth: &Auth,
) -> Result<Credentials, DiscoveryError> {
    let label = &endpoint.label;
    match auth {
        Auth::Anonymous => Ok(Credentials::Anonymous),
        Auth::Basic { username, password } => {
            Ok(Credentials::Basic(username.clone(), password.clone()))
        }
        Auth::DockerConfig { config_json } => {
            let file: DockerConfigFile = serde_json::from_str(config_json)
                .map_err(|e| DiscoveryError::config(label, format!("docker config: {e}")))?;
            let Some(entry) = file
                .auths
                .iter()
                .find(|(key, _)| docker_config_host(key) == endpoint.host)
                .map(|(_, entry)| entry)
            else {
                return Err(DiscoveryError::config(
                    label,
                    format!("docker config: no \"auths\" entry for {}", endpoint.host),
                ));
            };
            if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| {
                        DiscoveryError::config(label, format!("docker config: auth: {e}"))
                    })?;
                let decoded = String::from_utf8(decoded).map_err(|_| {
                    DiscoveryError::config(label, "docker config: auth is not UTF-8")
                })?;
                let Some((user, pass)) = decoded.split_once(':') else {
                    return Err(DiscoveryError::config(
                        label,
                        "docker config: auth is not base64(\"user:password\")",
                    ));
                };
                return Ok(Credentials::Basic(user.to_string(), pass.to_string()));
            }
            if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
                return Ok(Credentials::Basic(user.clone(), pass.clone()));
            }
            if let Some(token) = &entry.registrytoken {
                return Ok(Credentials::Bearer(token.clone()));
            }
            if entry.identitytoken.is_some() {
                return Err(DiscoveryError::config(
                    label,
                    "docker config: identitytoken (an OAuth refresh token) is not supported",
                ));
            }
            Err(DiscoveryError::config(
                label,
                format!(
                    "docker config: the entry for {} has no credentials",
                    endpoint.host
                ),
            ))
        }
    }
}

/// `Bearer realm="...",service="..."` → (scheme, params).
fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

/// The `rel="next"` target of a `Link` header, resolved against the registry.
pub(crate) fn next_link(base: &Url, headers: &HeaderMap) -> Option<Url> {
    for value in headers.get_all(LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let target = target.trim_start_matches('<').trim_end_matches('>');
                return base.join(target).ok();
            }
        }
    }
    None
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// One page of a listing.
pub(crate) struct Page {
    pub names: Vec<String>,
    pub next: Option<Url>,
}

#[derive(Deserialize)]
struct CatalogBody {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TagsBody {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Listing client: reqwest with the registry's credentials.
pub(crate) struct Lister {
    client: reqwest::Client,
    endpoint: Endpoint,
    credentials: Credentials,
    scheme: Mutex<Option<Scheme>>,
    /// scope → bearer token.
    tokens: Mutex<HashMap<String, String>>,
}

/// What failed: a (problem, status) before it is tied to a step.
type Failure = (String, Option<u16>);

impl Lister {
    pub(crate) fn new(
        endpoint: Endpoint,
        credentials: Credentials,
        access: &Access,
        certs: &[String],
    ) -> Result<Lister, DiscoveryError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(crate::discover::USER_AGENT)
            .danger_accept_invalid_certs(access.insecure);
        let mut extra = Vec::new();
        for pem in certs {
            extra.push(reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                DiscoveryError::config(&endpoint.label, format!("ca_bundle: {}", chain(&e)))
            })?);
        }
        if !extra.is_empty() {
            builder = builder.tls_certs_merge(extra);
        }
        let client = builder.build().map_err(|e| {
            DiscoveryError::config(&endpoint.label, format!("http client: {}", chain(&e)))
        })?;
        Ok(Lister {
            client,
            endpoint,
            credentials,
            scheme: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn url(&self, path: &str) -> Result<Url, DiscoveryError> {
        self.endpoint.base.join(path).map_err(|e| {
            DiscoveryError::config(&self.endpoint.label, format!("bad path {path:?}: {e}"))
        })
    }

    /// `GET /v2/`: can the registry be reached, and do the credentials work? Errors are
    /// "connecting" (unreachable, TLS refused, not a registry) or "authenticating".
    pub(crate) async fn authenticate(&self) -> Result<(), DiscoveryError> {
        let label = self.endpoint.label.clone();
        let connecting = |problem: String, status| {
            DiscoveryError::registry(&label, "connecting", problem, status)
        };
        let authenticating = |problem: String, status| {
            DiscoveryError::registry(&label, "authenticating", problem, status)
        };
        let v2 = self.url("/v2/")?;
        let response = self
            .client
            .get(v2.clone())
            .send()
            .await
            .map_err(|e| connecting(chain(&e), None))?;
        let status = response.status();
        let scheme = if status.is_success() {
            Scheme::Open
        } else if status == StatusCode::UNAUTHORIZED {
            let header = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let (kind, params) = parse_challenge(&header);
            match (kind.as_str(), params.get("realm")) {
                ("bearer", Some(realm)) => Scheme::Bearer {
                    realm: realm.clone(),
                    service: params.get("service").cloned(),
                },
                _ => Scheme::Basic,
            }
        } else {
            return Err(connecting(
                format!("GET /v2/ answered {}", status_text(status.as_u16())),
                Some(status.as_u16()),
            ));
        };
        match (&scheme, &self.credentials) {
            (Scheme::Open, _) => {}
            (Scheme::Basic, Credentials::Anonymous) => {
                return Err(authenticating(
                    format!("{}: the registry requires credentials", status_text(401)),
                    Some(401),
                ))
            }
            (Scheme::Basic, _) => {
                let response = self
                    .authorize(self.client.get(v2), &scheme, None)
                    .await
                    .map_err(|(p, s)| authenticating(p, s))?
                    .send()
                    .await
                    .map_err(|e| connecting(chain(&e), None))?;
                let status = response.status();
                if !status.is_success() {
                    let what = if let Credentials::Basic(user, _) = &self.credentials {
                        format!(" (wrong credentials for {user:?}?)")
                    } else {
                        String::new()
                    };
                    return Err(authenticating(
                        format!("{}{what}", status_text(status.as_u16())),
                        Some(status.as_u16()),
                    ));
                }
            }
            (Scheme::Bearer { .. }, _) => {
                // A token without scope proves the credentials, as `docker login` does.
                self.token(&scheme, "")
                    .await
                    .map_err(|(p, s)| authenticating(p, s))?;
            }
        }
        if let Ok(mut guard) = self.scheme.lock() {
            *guard = Some(scheme);
        }
        Ok(())
    }

    async fn token(&self, scheme: &Scheme, scope: &str) -> Result<String, Failure> {
        if let Credentials::Bearer(token) = &self.credentials {
            return Ok(token.clone());
        }
        if let Some(token) = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned()) {
            return Ok(token);
        }
        let Scheme::Bearer { realm, service } = scheme else {
            return Err(("no token realm".into(), None));
        };
        let mut url =
            Url::parse(realm).map_err(|e| (format!("bad token realm {realm:?}: {e}"), None))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            if !scope.is_empty() {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.client.get(url);
        if let Credentials::Basic(user, pass) = &self.credentials {
            request = request.basic_auth(user, Some(pass));
        }
        let response = request
            .send()
            .await
            .map_err(|e| (format!("token request: {}", chain(&e)), None))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| (format!("token request: {}", chain(&e)), None))?;
        if !status.is_success() {
            return Err((
                format!(
                    "token request answered {}: {}",
                    status_text(status.as_u16()),
                    excerpt(&body)
                ),
                Some(status.as_u16()),
            ));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| (format!("token response is not JSON: {e}"), None))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .ok_or_else(|| ("token response has no token".to_string(), None))?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope.to_string(), token.clone());
        }
        Ok(token)
    }

    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        scheme: &Scheme,
        scope: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(match (scheme, &self.credentials) {
            (_, Credentials::Bearer(token)) => request.bearer_auth(token),
            (Scheme::Open, _) => request,
            (Scheme::Basic, Credentials::Basic(user, pass)) => request.basic_auth(user, Some(pass)),
            (Scheme::Basic, _) => request,
            (Scheme::Bearer { .. }, _) => {
                let token = self.token(scheme, scope.unwrap_or("")).await?;
                request.header(AUTHORIZATION, format!("Bearer {token}"))
            }
        })
    }

    /// GET a listing page, retrying once with a fresh token when a bearer token expired.
    async fn get_page(&self, url: Url, scope: &str) -> Result<(HeaderMap, Vec<u8>), Failure> {
        let scheme = self
            .scheme
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or(Scheme::Open);
        for attempt in 0..2 {
            let request = self
                .authorize(self.client.get(url.clone()), &scheme, Some(scope))
                .await?;
            let response = request.send().await.map_err(|e| (chain(&e), None))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| (chain(&e), None))?;
            if status == StatusCode::UNAUTHORIZED
                && attempt == 0
                && matches!(scheme, Scheme::Bearer { .. })
            {
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.remove(scope);
                }
                continue;
            }
            if !status.is_success() {
                let text = excerpt(&body);
                let problem = if text.is_empty() {
                    status_text(status.as_u16())
                } else {
                    format!("{}: {text}", status_text(status.as_u16()))
                };
                return Err((problem, Some(status.as_u16())));
            }
            return Ok((headers, body.to_vec()));
        }
        Err((status_text(401), Some(401)))
    }

    /// The first catalog page (`start` None) or the page a `Link` pointed at.
    pub(crate) async fn catalog_page(
        &self,
        start: Option<Url>,
        page_size: usize,
    ) -> Result<Page, DiscoveryError> {
        let step = "listing the catalog";
        let url = match start {
            Some(url) => url,
            None => {
                let mut url = self.url("/v2/_catalog")?;
                url.query_pairs_mut()
                    .append_pair("n", &page_size.to_string());
                url
            }
        };
        let (headers, body) = self
            .get_page(url, "registry:catalog:*")
            .await
            .map_err(|(p, s)| DiscoveryError::registry(&self.endpoint.label, step, p, s))?;
        let parsed: CatalogBody = serde_json::from_slice(&body).map_err(|e| {
            DiscoveryError::registry(&self.endpoint.label, step, format!("not JSON: {e}"), None)
        })?;
        Ok(Page {
            names: parsed.repositories.unwrap_or_default(),
            next: next_link(&self.endpoint.base, &headers),
        })
    }

    /// A tags page of `repository`; `Ok(None)` when the repository is unknown (404).
    pub(crate) async fn tags_page(
        &self,
        repository: &str,
        start: Option<Url>,
        page_size: usize,
    ) -> Result<Option<Page>, DiscoveryError> {
        let step = format!("listing tags of {repository}");
        let url = match start {
            Some(url) => url,
            None => {
                let mut url = self.url(&format!("/v2/{repository}/tags/list"))?;
                url.query_pairs_mut()
                    .append_pair("n", &page_size.to_string());
                url
            }
        };
        let scope = format!("repository:{repository}:pull");
        let (headers, body) = match self.get_page(url, &scope).await {
            Ok(page) => page,
            Err((_, Some(404))) => return Ok(None),
            Err((p, s)) => return Err(DiscoveryError::registry(&self.endpoint.label, step, p, s)),
        };
        let parsed: TagsBody = serde_json::from_slice(&body).map_err(|e| {
            DiscoveryError::registry(&self.endpoint.label, &step, format!("not JSON: {e}"), None)
        })?;
        Ok(Some(Page {
            names: parsed.tags.unwrap_or_default(),
            next: next_link(&self.endpoint.base, &headers),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parses_quoted_params() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(params["realm"], "https://auth.example/token");
        assert_eq!(params["service"], "registry.example");
        assert_eq!(params["scope"], "repository:a/b:pull");
        let (scheme, params) = parse_challenge(r#"Basic realm="basic-realm""#);
        assert_eq!(scheme, "basic");
        assert_eq!(params["realm"], "basic-realm");
    }

    #[test]
    fn link_header_next_is_resolved() {
        let base = Url::parse("http://127.0.0.1:5000").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            r#"</v2/_catalog?last=b&n=2>; rel="next""#.parse().unwrap(),
        );
        assert_eq!(
            next_link(&base, &headers).unwrap().as_str(),
            "http://127.0.0.1:5000/v2/_catalog?last=b&n=2"
        );
        assert!(next_link(&base, &HeaderMap::new()).is_none());
    }

    #[test]
    fn docker_config_entries_match_the_host() {
        let endpoint = parse_endpoint("https://127.0.0.1:5443/").unwrap();
        assert_eq!(endpoint.host, "127.0.0.1:5443");
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p:w");
        for key in [
            "127.0.0.1:5443",
            "https://127.0.0.1:5443",
            "https://127.0.0.1:5443/v1/",
        ] {
            let json = format!(
                r#"{{"auths": {{"other:1": {{"auth": "eDp5"}}, "{key}": {{"auth": "{auth}"}}}}}}"#
            );
            match resolve_credentials(&endpoint, &Auth::DockerConfig { config_json: json }).unwrap()
            {
                Credentials::Basic(u, p) => assert_eq!((u.as_str(), p.as_str()), ("u", "p:w")),
                _ => panic!("expected basic credentials for {key}"),
            }
        }
        let json =
            r#"{"auths": {"127.0.0.1:5443": {"username": "a", "password": "b"}}}"#.to_string();
        assert!(matches!(
            resolve_credentials(&endpoint, &Auth::DockerConfig { config_json: json }).unwrap(),
            Credentials::Basic(u, p) if u == "a" && p == "b"
        ));
        let json = r#"{"auths": {"elsewhere:5000": {"auth": "eDp5"}}}"#.to_string();
        let err = resolve_credentials(&endpoint, &Auth::DockerConfig { config_json: json })
            .err()
            .unwrap();
        assert!(err.is_permanent());
        assert!(
            err.to_string()
                .contains("no \"auths\" entry for 127.0.0.1:5443"),
            "{err}"
        );
    }

    #[test]
    fn bad_urls_and_pem_are_config_errors() {
        for url in ["ftp://x", "not a url", "http://h:1/path"] {
            let err = parse_endpoint(url).err().unwrap();
            assert!(matches!(err, DiscoveryError::Config { .. }), "{url}: {err}");
        }
        assert!(split_pem("r", "garbage").is_err());
    }
}
