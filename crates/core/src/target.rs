//! What a scan looks at: cloud accounts, hosts, URLs, container images, registry repositories,
//! cluster workloads and filesystem paths, parsed from and written back to one canonical string.

use std::fmt;

/// A port or inclusive range of ports, as written after `host:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Parses `80`, `1-1024` or a comma-separated list of both (`22,80,8000-8100`).
pub fn parse_port_list(text: &str) -> Result<Vec<PortRange>, TargetError> {
    text.split(',')
        .map(|part| parse_port_range(part.trim()))
        .collect()
}

fn parse_port_range(text: &str) -> Result<PortRange, TargetError> {
    let bad = || TargetError::InvalidPorts(text.to_string());
    let parse_port = |s: &str| -> Result<u16, TargetError> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(bad()),
        }
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (first, last) = (parse_port(a)?, parse_port(b)?);
            if first > last {
                return Err(bad());
            }
            Ok(PortRange { first, last })
        }
        None => Ok(PortRange::single(parse_port(text)?)),
    }
}

/// A container image reference: `registry/repository:tag@digest`, every part but the
/// repository optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let bad = |why: &str| TargetError::InvalidImage(text.to_string(), why.to_string());
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err(bad("must be non-empty and contain no whitespace"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let (algo, hex) = d
                    .split_once(':')
                    .ok_or_else(|| bad("digest must be <algorithm>:<hex>"))?;
                if algo.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(bad("digest must be <algorithm>:<hex>"));
                }
                (r, Some(d.to_string()))
            }
            None => (text, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(rest[colon + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            let valid = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid {
                return Err(bad(
                    "tag must be 1-128 characters of letters, digits, '.', '_' and '-'",
                ));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, repo))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), repo.to_string())
            }
            _ => (None, name.to_string()),
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
            });
        if !repo_ok {
            return Err(bad("repository must be lowercase path components"));
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.registry {
            write!(f, "{r}/")?;
        }
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Which workloads of a cluster to scan (cluster image scanning); every list empty means "everything".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ClusterSelector {
    pub cluster: String,
    pub namespaces: Vec<String>,
    pub kinds: Vec<String>,
    pub resources: Vec<String>,
    pub containers: Vec<String>,
}

/// Whether a filesystem target is scanned as files (`fs://`) or as configuration (`config://`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathMode {
    Filesystem,
    Config,
}

/// One thing a scan looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A cloud account, by the provider's `account_id`.
    Account { account_id: String },
    /// A host name or IP address, optionally with a port or port range.
    Host {
        host: String,
        ports: Option<PortRange>,
    },
    /// An `http://` or `https://` URL.
    Url(String),
    /// A container image reference.
    Image(ImageRef),
    /// A registry, optionally narrowed to one repository.
    Registry {
        registry: String,
        repository: Option<String>,
    },
    /// Workloads of a cluster, whose running images are scanned.
    Cluster(ClusterSelector),
    /// A local path, scanned as files or as configuration.
    Path { mode: PathMode, path: String },
}

/// The kind of a [`Target`], as scanners declare what they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Account,
    Host,
    Url,
    Image,
    Registry,
    Cluster,
    Path,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Account => "account",
            TargetKind::Host => "host",
            TargetKind::Url => "url",
            TargetKind::Image => "image",
            TargetKind::Registry => "registry",
            TargetKind::Cluster => "cluster",
            TargetKind::Path => "path",
        }
    }
}

/// Why a target string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target is empty")]
    Empty,
    #[error("invalid port or port range {0:?}: ports are 1-65535, ranges are first-last")]
    InvalidPorts(String),
    #[error("invalid image reference {0:?}: {1}")]
    InvalidImage(String, String),
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    #[error("invalid URL {0:?}: {1}")]
    InvalidUrl(String, String),
    #[error("invalid account id {0:?}: must be 1-128 characters without whitespace or commas")]
    InvalidAccount(String),
    #[error("invalid {0} target {1:?}: {2}")]
    Invalid(&'static str, String, String),
}

fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
    })
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Target {
    /// Builds an account target, validating the id.
    pub fn account(account_id: &str) -> Result<Self, TargetError> {
        let id = account_id.trim();
        if id.is_empty()
            || id.len() > 128
            || id.contains(',')
            || id.chars().any(char::is_whitespace)
        {
            return Err(TargetError::InvalidAccount(account_id.to_string()));
        }
        Ok(Target::Account {
            account_id: id.to_string(),
        })
    }

    /// Parses a target from its canonical string form:
    /// `account://ID`, `http(s)://...`, `image://REF`, `registry://HOST[/REPO]`,
    /// `cluster://NAME?namespaces=a,b&kinds=..&resources=..&containers=..`, `fs://PATH`,
    /// `config://PATH`, or a bare `host`, `host:port`, `host:first-last`, `[v6]:port`.
    /// A bare string that is not a host but is an image reference (`alpine:3.19`) is an image.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        if let Some(id) = s.strip_prefix("account://") {
            return Self::account(id);
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let after = s.split_once("://").map(|x| x.1).unwrap_or("");
            let authority = after.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit_once('@').map_or(authority, |x| x.1);
            let host_only = if host.starts_with('[') {
                host.split(']').next().unwrap_or("").trim_start_matches('[')
            } else {
                host.split(':').next().unwrap_or("")
            };
            if !valid_host(host_only) {
                return Err(TargetError::InvalidUrl(
                    text.to_string(),
                    "missing or invalid host".into(),
                ));
            }
            return Ok(Target::Url(s.to_string()));
        }
        if let Some(r) = s.strip_prefix("image://") {
            return Ok(Target::Image(ImageRef::parse(r)?));
        }
        if let Some(r) = s.strip_prefix("registry://") {
            let (registry, repository) = match r.split_once('/') {
                Some((reg, repo)) if !repo.is_empty() => (reg, Some(repo.to_string())),
                Some((reg, _)) => (reg, None),
                None => (r, None),
            };
            if registry.is_empty() {
                return Err(TargetError::Invalid(
                    "registry",
                    text.to_string(),
                    "missing registry host".into(),
                ));
            }
            return Ok(Target::Registry {
                registry: registry.to_string(),
                repository,
            });
        }
        if let Some(r) = s.strip_prefix("cluster://") {
            let (cluster, query) = r.split_once('?').unwrap_or((r, ""));
            if cluster.is_empty() {
                return Err(TargetError::Invalid(
                    "cluster",
                    text.to_string(),
                    "missing cluster name".into(),
                ));
            }
            let mut sel = ClusterSelector {
                cluster: cluster.to_string(),
                ..Default::default()
            };
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let list = split_list(v);
                match k {
                    "namespaces" => sel.namespaces = list,
                    "kinds" => sel.kinds = list,
                    "resources" => sel.resources = list,
                    "containers" => sel.containers = list,
                    other => {
                        return Err(TargetError::Invalid(
                            "cluster",
                            text.to_string(),
                            format!("unknown selector {other:?}; expected namespaces, kinds, resources or containers"),
                        ))
                    }
                }
            }
            return Ok(Target::Cluster(sel));
        }
        for (prefix, mode) in [
            ("fs://", PathMode::Filesystem),
            ("config://", PathMode::Config),
        ] {
            if let Some(p) = s.strip_prefix(prefix) {
                if p.is_empty() {
                    return Err(TargetError::Invalid(
                        "path",
                        text.to_string(),
                        "missing path".into(),
                    ));
                }
                return Ok(Target::Path {
                    mode,
                    path: p.to_string(),
                });
            }
        }
        if s.contains("://") {
            return Err(TargetError::Invalid(
                "target",
                text.to_string(),
                "unknown scheme; expected account, http, https, image, registry, cluster, fs or config".into(),
            ));
        }
        // `name:123` is a host with a bad port, not an image with a numeric tag.
        let port_like = s.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '-')
        });
        match Self::parse_host(s) {
            Ok(t) => Ok(t),
            Err(host_err) if port_like => Err(host_err),
            Err(host_err) => ImageRef::parse(s).map(Target::Image).map_err(|_| host_err),
        }
    }

    fn parse_host(s: &str) -> Result<Self, TargetError> {
        let (host, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| TargetError::InvalidHost(s.to_string()))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(TargetError::InvalidHost(s.to_string())),
            }
        } else if s.matches(':').count() > 1 {
            (s, None) // a bare IPv6 address
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if !valid_host(host) {
            return Err(TargetError::InvalidHost(s.to_string()));
        }
        let ports = ports.map(parse_port_range).transpose()?;
        Ok(Target::Host {
            host: host.to_string(),
            ports,
        })
    }

    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Account { .. } => TargetKind::Account,
            Target::Host { .. } => TargetKind::Host,
            Target::Url(_) => TargetKind::Url,
            Target::Image(_) => TargetKind::Image,
            Target::Registry { .. } => TargetKind::Registry,
            Target::Cluster(_) => TargetKind::Cluster,
            Target::Path { .. } => TargetKind::Path,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Account { account_id } => write!(f, "account://{account_id}"),
            Target::Host { host, ports } => {
                let h = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                match ports {
                    Some(p) => write!(f, "{h}:{p}"),
                    None if host.contains(':') => write!(f, "{host}"),
                    None => write!(f, "{h}"),
                }
            }
            Target::Url(u) => write!(f, "{u}"),
            Target::Image(i) => write!(f, "image://{i}"),
            Target::Registry {
                registry,
                repository,
            } => match repository {
                Some(r) => write!(f, "registry://{registry}/{r}"),
                None => write!(f, "registry://{registry}"),
            },
            Target::Cluster(sel) => {
                write!(f, "cluster://{}", sel.cluster)?;
                let parts: Vec<String> = [
                    ("namespaces", &sel.namespaces),
                    ("kinds", &sel.kinds),
                    ("resources", &sel.resources),
                    ("containers", &sel.containers),
                ]
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k}={}", v.join(",")))
                .collect();
                if !parts.is_empty() {
                    write!(f, "?{}", parts.join("&"))?;
                }
                Ok(())
            }
            Target::Path { mode, path } => match mode {
                PathMode::Filesystem => write!(f, "fs://{path}"),
                PathMode::Config => write!(f, "config://{path}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            Target::parse("127.0.0.1:22").unwrap(),
            Target::Host {
                host: "127.0.0.1".into(),
                ports: Some(PortRange::single(22))
            }
        );
        assert_eq!(
            Target::parse("example.com:1-1024").unwrap(),
            Target::Host {
                host: "example.com".into(),
                ports: Some(PortRange {
                    first: 1,
                    last: 1024
                })
            }
        );
        assert_eq!(
            Target::parse("localhost").unwrap(),
            Target::Host {
                host: "localhost".into(),
                ports: None
            }
        );
        assert_eq!(
            Target::parse("[::1]:8080").unwrap(),
            Target::Host {
                host: "::1".into(),
                ports: Some(PortRange::single(8080))
            }
        );
        assert!(matches!(
            Target::parse("h:0"),
            Err(TargetError::InvalidPorts(_))
        ));
        assert!(matches!(
            Target::parse("h:90-80"),
            Err(TargetError::InvalidPorts(_))
        ));
        assert!(matches!(
            Target::parse("h:70000"),
            Err(TargetError::InvalidPorts(_))
        ));
    }

    #[test]
    fn bare_image_reference_is_an_image() {
        let t = Target::parse("alpine:3.19").unwrap();
        assert_eq!(t.kind(), TargetKind::Image);
        let t = Target::parse("image://localhost:5000/team/app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        match t {
            Target::Image(i) => {
                assert_eq!(i.registry.as_deref(), Some("localhost:5000"));
                assert_eq!(i.repository, "team/app");
                assert_eq!(i.tag.as_deref(), Some("v1"));
                assert!(i.digest.unwrap().starts_with("sha256:"));
            }
            other => panic!("not an image: {other:?}"),
        }
    }

    #[test]
    fn round_trips_through_display() {
        for s in [
            "account://123456789012",
            "https://example.com/path?q=1",
            "image://ghcr.io/org/app:1.0",
            "registry://localhost:5000/repo1",
            "registry://localhost:5000",
            "cluster://production?namespaces=production,staging&kinds=deployment&resources=nginx&containers=nginx",
            "cluster://production",
            "fs:///srv/app",
            "config://deploy/",
            "10.0.0.1:80-90",
            "[::1]:443",
            "host.example",
        ] {
            let t = Target::parse(s).unwrap();
            assert_eq!(Target::parse(&t.to_string()).unwrap(), t, "{s}");
        }
    }

    #[test]
    fn rejects_bad_targets() {
        assert_eq!(Target::parse("  "), Err(TargetError::Empty));
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("https://").is_err());
        assert!(Target::parse("cluster://prod?colour=red").is_err());
        assert!(Target::parse("account://a b").is_err());
        assert!(Target::account("").is_err());
        assert!(Target::parse("UPPER CASE").is_err());
    }

    #[test]
    fn port_lists() {
        assert_eq!(
            parse_port_list("22, 80,8000-8002").unwrap(),
            vec![
                PortRange::single(22),
                PortRange::single(80),
                PortRange {
                    first: 8000,
                    last: 8002
                }
            ]
        );
        assert!(parse_port_list("22,,80").is_err());
    }
}
