//! The package index: which packages a document lists, with the facts that queries and
//! vulnerability matching key on (purl type, distro release, source package, layer).

use std::collections::HashSet;

use crate::purl;
use crate::spdx::{self, Kind, Parsed};
use crate::{Index, Os, Package};

/// purl types of operating-system package managers: their packages belong to the detected OS
/// even where the purl has no `distro` qualifier.
pub(crate) const OS_PURL_TYPES: &[&str] = &["apk", "deb", "rpm", "alpm", "opkg", "ebuild", "qpkg"];

/// trivy's `sourceInfo` for OS packages; for language packages it writes
/// "package found in: <file>", which names no source package.
const BUILT_FROM: &str = "built package from:";

pub(crate) fn build(parsed: &Parsed) -> Index {
    let os = detect_os(parsed);
    let os_ids: HashSet<&str> = parsed
        .doc
        .packages
        .iter()
        .filter(|p| parsed.kind(p) == Kind::OperatingSystem)
        .map(|p| p.spdx_id.as_str())
        .collect();
    let in_os: HashSet<&str> = parsed
        .edges()
        .filter(|(from, _)| os_ids.contains(from))
        .map(|(_, to)| to)
        .collect();
    let packages = parsed
        .doc
        .packages
        .iter()
        .filter(|p| parsed.kind(p) == Kind::Package)
        .map(|p| package(p, os.as_ref(), in_os.contains(p.spdx_id.as_str())))
        .collect();
    Index { os, packages }
}

/// The first operating-system entry with both a name and a version.
fn detect_os(parsed: &Parsed) -> Option<Os> {
    parsed
        .doc
        .packages
        .iter()
        .filter(|p| parsed.kind(p) == Kind::OperatingSystem)
        .find_map(|p| {
            let name = p.name.trim();
            let version = p.version_info.as_deref()?.trim();
            (!name.is_empty() && !version.is_empty()).then(|| Os {
                name: name.to_string(),
                version: version.to_string(),
            })
        })
}

pub(crate) fn package(p: &spdx::Package, os: Option<&Os>, in_os: bool) -> Package {
    let purl_str = p.purl();
    let purl = purl_str.and_then(purl::parse);
    let ecosystem = purl.as_ref().map(|u| u.ty.clone());
    let is_os_package = in_os
        || ecosystem
            .as_deref()
            .is_some_and(|t| OS_PURL_TYPES.contains(&t));
    let distro = purl
        .as_ref()
        .and_then(|u| {
            let d = u.qualifier("distro")?;
            Some(normalize_distro(d, u.namespace.as_deref()))
        })
        .or_else(|| {
            let os = os.filter(|_| is_os_package)?;
            Some(format!("{}-{}", os.name, os.version))
        });
    let (source_name, source_version) = p
        .source_info
        .as_deref()
        .and_then(parse_source_info)
        .or_else(|| {
            purl.as_ref()?
                .qualifier("upstream")
                .and_then(parse_upstream)
        })
        .map_or((None, None), |(n, v)| (Some(n), v));
    Package {
        spdx_id: p.spdx_id.clone(),
        name: p.name.clone(),
        version: non_empty(p.version_info.as_deref()),
        purl: purl_str.map(str::to_string),
        ecosystem,
        distro,
        source_name,
        source_version,
        layer_diff_id: non_empty(p.trivy_annotation("LayerDiffID")),
    }
}

/// trivy writes `distro=debian-12.4` for deb and rpm but only `distro=3.19.1` for apk; both
/// become `<name>-<release>` (the purl namespace is the distribution), so that one form can be
/// matched against advisories.
pub(crate) fn normalize_distro(distro: &str, namespace: Option<&str>) -> String {
    let distro = distro.trim();
    match namespace {
        Some(ns) if distro.starts_with(|c: char| c.is_ascii_digit()) && !ns.is_empty() => {
            format!("{}-{distro}", ns.to_ascii_lowercase())
        }
        _ => distro.to_string(),
    }
}

/// "built package from: openssl 3.1.4-r5" -> ("openssl", Some("3.1.4-r5")).
fn parse_source_info(info: &str) -> Option<(String, Option<String>)> {
    let info = info.trim();
    let head = info.get(..BUILT_FROM.len())?;
    if !head.eq_ignore_ascii_case(BUILT_FROM) {
        return None;
    }
    let mut words = info[BUILT_FROM.len()..].split_whitespace();
    let name = words.next()?.to_string();
    let version = words.next().map(str::to_string);
    Some((name, version))
}

/// The purl `upstream` qualifier: "openssl" or "openssl@3.1.4-r5".
pub(crate) fn parse_upstream(upstream: &str) -> Option<(String, Option<String>)> {
    let upstream = upstream.trim();
    let (name, version) = match upstream.split_once('@') {
        Some((n, v)) => (n.trim(), non_empty(Some(v))),
        None => (upstream, None),
    };
    (!name.is_empty()).then(|| (name.to_string(), version))
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_info_forms() {
        assert_eq!(
            parse_source_info("built package from: openssl 3.1.4-r5"),
            Some(("openssl".into(), Some("3.1.4-r5".into())))
        );
        assert_eq!(
            parse_source_info("built package from: zlib 1:1.2.13.dfsg-1"),
            Some(("zlib".into(), Some("1:1.2.13.dfsg-1".into())))
        );
        assert_eq!(
            parse_source_info("built package from: glibc"),
            Some(("glibc".into(), None))
        );
        assert_eq!(
            parse_source_info("package found in: app/App.deps.json"),
            None
        );
        assert_eq!(parse_source_info("built package from:   "), None);
        assert_eq!(parse_source_info(""), None);
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(
            parse_upstream("pcre2@10.42-1"),
            Some(("pcre2".into(), Some("10.42-1".into())))
        );
        assert_eq!(parse_upstream("openssl"), Some(("openssl".into(), None)));
        assert_eq!(parse_upstream("@1"), None);
    }

    #[test]
    fn distro_forms() {
        assert_eq!(normalize_distro("3.19.1", Some("alpine")), "alpine-3.19.1");
        assert_eq!(
            normalize_distro("debian-12.4", Some("debian")),
            "debian-12.4"
        );
        assert_eq!(normalize_distro("3.19.1", None), "3.19.1");
    }
}
