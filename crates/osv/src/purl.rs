//! purl → OSV package key (ecosystem, name), following the naming osv.dev uses per ecosystem.
//!
//! The purl is parsed here rather than with a crate: only the type, namespace, name and two
//! qualifiers are needed, and the maintained `packageurl` crate needs a newer Rust than the
//! workspace's rust-version.

/// Ubuntu LTS releases, which OSV names "Ubuntu:<release>:LTS".
const UBUNTU_LTS: &[&str] = &["14.04", "16.04", "18.04", "20.04", "22.04", "24.04"];

struct Purl {
    kind: String,
    namespace: Option<String>,
    name: String,
    qualifiers: Vec<(String, String)>,
}

impl Purl {
    fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses `pkg:type/namespace/name@version?qualifiers#subpath` per the purl spec's parsing
/// steps (split from the right: subpath, qualifiers, version; then type from the left).
fn parse_purl(purl: &str) -> Option<Purl> {
    let rest = purl.trim();
    let scheme = rest.get(..4)?;
    if !scheme.eq_ignore_ascii_case("pkg:") {
        return None;
    }
    let rest = rest.get(4..)?.trim_start_matches('/');
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    // The version is after the rightmost '@'; an '@' in a scope must be "%40", but tools also
    // write "pkg:npm/@scope/name", whose '@' follows a '/' and so is not a version separator.
    let rest = match rest.rfind('@') {
        Some(at) if at > 0 && rest.as_bytes()[at - 1] != b'/' => &rest[..at],
        _ => rest,
    };
    let (kind, path) = rest.split_once('/')?;
    let kind = kind.to_ascii_lowercase();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Option<_>>()?;
    let (name, namespace) = segments.split_last()?;
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    let namespace = (!namespace.is_empty()).then(|| namespace.join("/"));
    let mut qualifiers = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if let Some((k, v)) = pair.split_once('=') {
            qualifiers.push((k.to_ascii_lowercase(), percent_decode(v)?));
        }
    }
    Some(Purl {
        kind,
        namespace,
        name: name.clone(),
        qualifiers,
    })
}

/// PEP 503 normalisation: lowercase, and every run of `-`, `_`, `.` becomes one `-`.
pub fn normalize_pypi_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// The release part of a distro string: "alpine-3.19.1" and "3.19.1" → "3.19.1".
fn release_of(distro: &str) -> &str {
    let d = distro.trim();
    match d.rfind('-') {
        Some(i) if d[i + 1..].starts_with(|c: char| c.is_ascii_digit()) => &d[i + 1..],
        _ => d,
    }
}

/// The first `n` dot-separated numeric components: ("3.19.1", 2) → "3.19".
fn leading_components(release: &str, n: usize) -> Option<String> {
    let parts: Vec<&str> = release.split('.').take(n).collect();
    if parts.len() < n
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(parts.join("."))
}

/// The OSV package key of a purl: `(ecosystem, name)`.
///
/// OS packages (apk, deb, rpm) are keyed by their source package, since distributions publish
/// advisories per source: `source_name` when given, else the purl's `upstream` qualifier, else
/// the purl name. Their release comes from `distro` when given (e.g. "alpine-3.19.1",
/// "debian-12.4", "3.19.1"), else the purl's `distro` qualifier; an OS package whose release is
/// unknown has no key, because OS advisories are release-specific.
///
/// Returns `None` for purls that do not parse or ecosystems OSV has no name for here.
pub fn package_key(
    purl: &str,
    source_name: Option<&str>,
    distro: Option<&str>,
) -> Option<(String, String)> {
    let p = parse_purl(purl)?;
    let ns = p.namespace.as_deref().map(str::to_ascii_lowercase);
    let release = distro
        .filter(|d| !d.trim().is_empty())
        .or_else(|| p.qualifier("distro"))
        .map(release_of);
    let source = || -> String {
        source_name
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                // Debian tooling writes "upstream=openssl" or "upstream=openssl%401.2" forms.
                p.qualifier("upstream")
                    .map(|u| u.split(['@', ' ']).next().unwrap_or(u).to_owned())
                    .filter(|u| !u.is_empty())
            })
            .unwrap_or_else(|| p.name.clone())
    };
    let with_ns = |sep: &str| match &p.namespace {
        Some(ns) => format!("{ns}{sep}{}", p.name),
        None => p.name.clone(),
    };
    let (eco, name) = match p.kind.as_str() {
        "apk" => match ns.as_deref() {
            Some("alpine") | None => {
                let r = leading_components(release?, 2)?;
                (format!("Alpine:v{r}"), source())
            }
            // Wolfi and Chainguard are rolling: one ecosystem without a release.
            Some("wolfi") => ("Wolfi".to_owned(), source()),
            Some("chainguard") => ("Chainguard".to_owned(), source()),
            _ => return None,
        },
        "deb" => match ns.as_deref() {
            Some("debian") => {
                let r = leading_components(release?, 1)?;
                (format!("Debian:{r}"), source())
            }
            Some("ubuntu") => {
                let r = leading_components(release?, 2)?;
                let eco = if UBUNTU_LTS.contains(&r.as_str()) {
                    format!("Ubuntu:{r}:LTS")
                } else {
                    format!("Ubuntu:{r}")
                };
                (eco, source())
            }
            _ => return None,
        },
        "rpm" => {
            let base = match ns.as_deref() {
                // Red Hat's OSV ecosystems carry the product stream ("Red Hat:enterprise_linux:9
                // ::appstream"), which a purl does not; the bare name matches bare entries.
                Some("redhat") => return Some(("Red Hat".to_owned(), source())),
                Some("rocky") => "Rocky Linux",
                Some("almalinux") | Some("alma") => "AlmaLinux",
                _ => return None,
            };
            // Rocky and Alma publish "Rocky Linux:9" / "AlmaLinux:9"; a bare key when the
            // release is unknown still matches their bare entries.
            match release.and_then(|r| leading_components(r, 1)) {
                Some(major) => (format!("{base}:{major}"), source()),
                None => (base.to_owned(), source()),
            }
        }
        "npm" => ("npm".to_owned(), with_ns("/")),
        "pypi" => ("PyPI".to_owned(), normalize_pypi_name(&p.name)),
        "cargo" => ("crates.io".to_owned(), p.name.clone()),
        "golang" => ("Go".to_owned(), with_ns("/")),
        "maven" => ("Maven".to_owned(), with_ns(":")),
        "gem" => ("RubyGems".to_owned(), p.name.clone()),
        "nuget" => ("NuGet".to_owned(), p.name.clone()),
        "composer" => ("Packagist".to_owned(), with_ns("/")),
        "hex" => ("Hex".to_owned(), p.name.clone()),
        "pub" => ("Pub".to_owned(), p.name.clone()),
        _ => return None,
    };
    Some((eco, name))
}
