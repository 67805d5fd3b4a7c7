//! What a scan looks at: cloud accounts, hosts, network ranges, URLs, container images,
//! registry repositories, cluster workloads and filesystem paths, parsed from and written back
//! to one canonical string.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// A range of IP addresses: a CIDR block (`10.0.0.0/24`, `fd00::/120`) or an nmap-style IPv4
/// span (`10.0.0.1-20`, `10.0.0.250-10.0.1.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetRange {
    /// A CIDR block; `network` has its host bits cleared (`10.0.0.7/24` is `10.0.0.0/24`).
    Cidr { network: IpAddr, prefix: u8 },
    /// Every IPv4 address from `first` to `last` inclusive (`first <= last`).
    Span { first: Ipv4Addr, last: Ipv4Addr },
}

fn ip_bits(ip: IpAddr) -> u32 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl NetRange {
    /// How many addresses the range holds; `u128::MAX` stands for all 2^128 of IPv6's `::/0`.
    pub fn len(&self) -> u128 {
        match *self {
            NetRange::Cidr { network, prefix } => 1u128
                .checked_shl(ip_bits(network) - u32::from(prefix))
                .unwrap_or(u128::MAX),
            NetRange::Span { first, last } => u128::from(u32::from(last) - u32::from(first)) + 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every address of the range, lowest first (network and broadcast addresses included,
    /// as nmap scans them). Callers bound how many they take; see [`NetRange::len`].
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        let (start, v4) = match *self {
            NetRange::Cidr { network, .. } => (ip_to_u128(network), network.is_ipv4()),
            NetRange::Span { first, .. } => (u128::from(u32::from(first)), true),
        };
        let end = start.saturating_add(self.len().saturating_sub(1));
        (start..=end).map(move |n| {
            if v4 {
                // In range by construction: an IPv4 range ends at or below u32::MAX.
                IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
            } else {
                IpAddr::V6(Ipv6Addr::from(n))
            }
        })
    }

    /// Parses `ADDR/PREFIX` or `A.B.C.D-E` / `A.B.C.D-A.B.C.E`; `None` when `text` has neither
    /// shape (it may be a host or an image), an error when it has one but is invalid.
    fn parse(text: &str) -> Option<Result<Self, TargetError>> {
        let bad = |why: String| TargetError::InvalidNetwork(text.to_string(), why);
        if let Some((addr, prefix)) = text.split_once('/') {
            let ip = match parse_ip_literal(addr)? {
                Ok(ip) => ip,
                Err(why) => return Some(Err(bad(why))),
            };
            let bits = ip_bits(ip);
            let prefix = match prefix.parse::<u8>() {
                Ok(p) if u32::from(p) <= bits && !prefix.starts_with('+') => p,
                _ => {
                    return Some(Err(bad(format!(
                        "prefix length {prefix:?} must be 0-{bits}"
                    ))))
                }
            };
            let host_bits = bits - u32::from(prefix);
            let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
            let n = ip_to_u128(ip) & mask;
            let network = match ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(0))),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
            };
            return Some(Ok(NetRange::Cidr { network, prefix }));
        }
        let (first, last) = text.split_once('-')?;
        let first = match parse_ip_literal(first)? {
            Ok(IpAddr::V4(v4)) => v4,
            Ok(IpAddr::V6(_)) => {
                return Some(Err(bad(
                    "ranges are IPv4 only; write IPv6 ranges as CIDR blocks".into(),
                )))
            }
            Err(why) => return Some(Err(bad(why))),
        };
        let last = if last.chars().all(|c| c.is_ascii_digit()) && !last.is_empty() {
            match last.parse::<u8>() {
                Ok(octet) => {
                    let [a, b, c, _] = first.octets();
                    Ipv4Addr::new(a, b, c, octet)
                }
                Err(_) => return Some(Err(bad(format!("{last} is not an IPv4 octet (0-255)")))),
            }
        } else {
            match parse_ipv4_literal(last) {
                Some(Ok(v4)) => v4,
                Some(Err(why)) => return Some(Err(bad(why))),
                None => {
                    return Some(Err(bad(
                        "a range ends in a last octet (10.0.0.1-20) or an IPv4 address".into(),
                    )))
                }
            }
        };
        if last < first {
            return Some(Err(bad(format!(
                "the range ends ({last}) before it starts ({first})"
            ))));
        }
        Some(Ok(NetRange::Span { first, last }))
    }
}

impl fmt::Display for NetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetRange::Cidr { network, prefix } => write!(f, "{network}/{prefix}"),
            NetRange::Span { first, last } => {
                let (a, b) = (first.octets(), last.octets());
                if a[..3] == b[..3] {
                    write!(f, "{first}-{}", b[3])
                } else {
                    write!(f, "{first}-{last}")
                }
            }
        }
    }
}

/// Whether `text` is written like an IPv4 address: dot-separated and ending in a numeric
/// label. No top-level domain is numeric, so such a string can only mean an address.
fn ipv4_shaped(text: &str) -> bool {
    text.contains('.')
        && text
            .rsplit('.')
            .next()
            .is_some_and(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
}

/// Parses an IPv4 literal; `None` when `text` is not written like one, an error saying which
/// part is wrong when it is but is not a valid address (`999.1.1.1`, `10.0.0`, `01.2.3.4`).
fn parse_ipv4_literal(text: &str) -> Option<Result<Ipv4Addr, String>> {
    if !ipv4_shaped(text) {
        return None;
    }
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Some(Ok(ip));
    }
    let parts: Vec<&str> = text.split('.').collect();
    let why = if parts.len() != 4 {
        format!(
            "{text:?} is not an IPv4 address: it has {} parts, an address has 4",
            parts.len()
        )
    } else if let Some(p) = parts
        .iter()
        .find(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        format!("{text:?} is not an IPv4 address: {p:?} is not a number")
    } else if let Some(p) = parts.iter().find(|p| p.parse::<u8>().is_err()) {
        format!("{text:?} is not an IPv4 address: {p} is not an octet (0-255)")
    } else {
        format!("{text:?} is not an IPv4 address: octets are written without leading zeros")
    };
    Some(Err(why))
}

/// Parses an IPv4 or IPv6 literal; `None` when `text` is written like neither.
fn parse_ip_literal(text: &str) -> Option<Result<IpAddr, String>> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Ok(ip));
    }
    // Two colons and nothing but hex digits, colons and dots: written like IPv6 (unlike a
    // registry's `host:port`).
    let v6_shaped = text.matches(':').count() >= 2
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    if v6_shaped {
        return Some(Err(format!("{text:?} is not an IPv6 address")));
    }
    parse_ipv4_literal(text).map(|r| r.map(IpAddr::V4))
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
    /// A range of addresses (CIDR block or nmap-style span), for network scanners.
    Network(NetRange),
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
    Network,
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
            TargetKind::Network => "network",
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
    #[error("invalid IP address: {0}")]
    InvalidAddress(String),
    #[error("invalid network range {0:?}: {1}")]
    InvalidNetwork(String, String),
    #[error("invalid URL {0:?}: {1}")]
    InvalidUrl(String, String),
    #[error("invalid account id {0:?}: must be 1-128 characters without whitespace or commas")]
    InvalidAccount(String),
    #[error("invalid {0} target {1:?}: {2}")]
    Invalid(&'static str, String, String),
}

/// Checks a host name or IP literal. A name written like an IPv4 address must be a valid
/// one: `999.1.1.1` would otherwise be accepted and only fail when resolved at scan time.
fn check_host(host: &str) -> Result<(), TargetError> {
    if let Some(Err(why)) = parse_ipv4_literal(host) {
        return Err(TargetError::InvalidAddress(why));
    }
    if valid_host(host) {
        Ok(())
    } else {
        Err(TargetError::InvalidHost(host.to_string()))
    }
}

fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if ipv4_shaped(host) {
        return false;
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
    /// `config://PATH`, a network range `10.0.0.0/24`, `fd00::/120`, `10.0.0.1-20`, or a bare
    /// `host`, `host:port`, `host:first-last`, `[v6]:port`.
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
            if let Err(e) = check_host(host_only) {
                let why = match e {
                    TargetError::InvalidAddress(why) => why,
                    _ => "missing or invalid host".into(),
                };
                return Err(TargetError::InvalidUrl(text.to_string(), why));
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
        if let Some(range) = NetRange::parse(s) {
            return range.map(Target::Network);
        }
        // `name:123` is a host with a bad port, not an image with a numeric tag.
        let port_like = s.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '-')
        });
        match Self::parse_host(s) {
            Ok(t) => Ok(t),
            // `999.1.1.1` is a wrong address, not the image repository "999.1.1.1".
            Err(host_err @ TargetError::InvalidAddress(_)) => Err(host_err),
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
        match check_host(host) {
            Ok(()) => {}
            Err(e @ TargetError::InvalidAddress(_)) => return Err(e),
            Err(_) => return Err(TargetError::InvalidHost(s.to_string())),
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
            Target::Network(_) => TargetKind::Network,
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
            Target::Network(r) => write!(f, "{r}"),
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
            "10.0.0.0/24",
            "10.0.0.1-20",
            "10.0.0.250-10.0.1.5",
            "fd00::/64",
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
    fn network_ranges() {
        let t = Target::parse("127.0.0.0/30").unwrap();
        assert_eq!(t.kind(), TargetKind::Network);
        let Target::Network(r) = t else {
            panic!("not a network")
        };
        assert_eq!(r.len(), 4);
        let all: Vec<String> = r.addresses().map(|a| a.to_string()).collect();
        assert_eq!(all, ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]);
        // Host bits are cleared, as nmap reads the block.
        assert_eq!(
            Target::parse("10.1.2.3/24").unwrap().to_string(),
            "10.1.2.0/24"
        );
        let span = Target::parse("10.0.0.1-20").unwrap();
        assert_eq!(span.kind(), TargetKind::Network);
        let Target::Network(r) = &span else {
            panic!("not a network")
        };
        assert_eq!(r.len(), 20);
        assert_eq!(r.addresses().last().unwrap().to_string(), "10.0.0.20");
        let wide = Target::parse("10.0.0.250-10.0.1.5").unwrap();
        let Target::Network(r) = &wide else {
            panic!("not a network")
        };
        assert_eq!(r.len(), 12);
        let v6 = Target::parse("fd00::/120").unwrap();
        let Target::Network(r) = &v6 else {
            panic!("not a network")
        };
        assert_eq!(r.len(), 256);
        let Target::Network(all) = Target::parse("::/0").unwrap() else {
            panic!("not a network")
        };
        assert_eq!(all.len(), u128::MAX, "saturates instead of overflowing");
        assert_eq!(all.addresses().take(2).count(), 2);
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/x",
            "300.0.0.0/8",
            "10.0.0.20-1",
            "10.0.0.1-256",
            "10.0.0.5-10.0.0.1",
            "::1-5",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(TargetError::InvalidNetwork(..))),
                "{bad}: {:?}",
                Target::parse(bad)
            );
        }
        // Image references with a registry port or a dash are still images.
        for image in ["localhost:5000/app:v1", "my-app:1.0", "library/alpine"] {
            assert_eq!(
                Target::parse(image).unwrap().kind(),
                TargetKind::Image,
                "{image}"
            );
        }
        assert_eq!(
            Target::parse("127.0.0.1:80-90").unwrap().kind(),
            TargetKind::Host
        );
    }

    #[test]
    fn address_shaped_hosts_must_be_addresses() {
        for (bad, why) in [
            ("999.1.1.1", "999 is not an octet (0-255)"),
            ("999.1.1.1:80", "999 is not an octet (0-255)"),
            ("10.0.0", "it has 3 parts"),
            ("1.2.3.4.5", "it has 5 parts"),
            ("01.2.3.4", "leading zeros"),
            ("host.123", "it has 2 parts"),
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(matches!(e, TargetError::InvalidAddress(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let e = Target::parse("http://999.1.1.1/").unwrap_err();
        assert!(e.to_string().contains("999 is not an octet"), "{e}");
        assert!(Target::parse("1.2.3.4").is_ok());
        assert!(Target::parse("host-1.example.com").is_ok());
        assert!(Target::parse("123.example.com").is_ok());
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
