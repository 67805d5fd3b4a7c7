//! The CycloneDX 1.5 JSON rendering of an SPDX document: the described image as
//! `metadata.component`, every other entry as a component, relationships as dependencies.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::packages;
use crate::spdx::{self, Kind, Parsed};
use crate::{Os, SbomError};

const SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.5.schema.json";
/// Property names are trivy's own (as in `trivy --format cyclonedx`), so that tools that read
/// trivy's CycloneDX read these too.
const PROPERTY_PREFIX: &str = "aquasecurity:trivy:";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    #[serde(rename = "$schema")]
    schema: &'static str,
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    tools: Tools,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<Component>,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize)]
struct Component {
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<Supplier>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Supplier {
    name: String,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

/// SPDX license fields are SPDX license expressions, so each becomes one CycloneDX
/// `expression`, which (unlike `license.id`) accepts any of them, LicenseRef-s included.
#[derive(Serialize)]
struct License {
    expression: String,
}

#[derive(Serialize)]
struct Property {
    name: String,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    depends_on: Vec<String>,
}

pub(crate) fn render(parsed: &Parsed, raw: &[u8]) -> Result<Vec<u8>, SbomError> {
    let index = packages::build(parsed);
    let os = index.os.as_ref();
    let in_os = contained_by_os(parsed);

    let root_id = parsed.roots.iter().find_map(|id| {
        parsed
            .doc
            .packages
            .iter()
            .find(|p| p.spdx_id == *id)
            .map(|p| p.spdx_id.as_str())
    });
    let mut root = None;
    let mut components = Vec::new();
    for p in &parsed.doc.packages {
        let is_root = Some(p.spdx_id.as_str()) == root_id;
        let kind = parsed.kind(p);
        let c = component(p, kind, is_root, os, in_os.contains(p.spdx_id.as_str()));
        if is_root {
            root = Some(c);
        } else {
            components.push(c);
        }
    }

    let refs: Vec<&str> = root_id
        .into_iter()
        .chain(
            parsed
                .doc
                .packages
                .iter()
                .map(|p| p.spdx_id.as_str())
                .filter(|id| Some(*id) != root_id),
        )
        .collect();
    let dependencies = dependencies(parsed, &refs);

    let creation = parsed.doc.creation_info.as_ref();
    let bom = Bom {
        schema: SCHEMA,
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: serial_number(parsed, raw),
        version: 1,
        metadata: Metadata {
            timestamp: creation
                .and_then(|c| c.created.as_deref())
                .map(str::trim)
                .filter(|t| is_rfc3339(t))
                .map(str::to_string),
            tools: Tools {
                components: tools(creation.map(|c| c.creators.as_slice()).unwrap_or(&[])),
            },
            component: root,
        },
        components,
        dependencies,
    };
    serde_json::to_vec(&bom).map_err(SbomError::Encode)
}

fn contained_by_os(parsed: &Parsed) -> HashSet<&str> {
    let os_ids: HashSet<&str> = parsed
        .doc
        .packages
        .iter()
        .filter(|p| parsed.kind(p) == Kind::OperatingSystem)
        .map(|p| p.spdx_id.as_str())
        .collect();
    parsed
        .edges()
        .filter(|(from, _)| os_ids.contains(from))
        .map(|(_, to)| to)
        .collect()
}

fn component(
    p: &spdx::Package,
    kind: Kind,
    is_root: bool,
    os: Option<&Os>,
    in_os: bool,
) -> Component {
    let mut properties = Vec::new();
    if kind == Kind::Package {
        let indexed = packages::package(p, os, in_os);
        // Source package and layer first: they are what this rendering promises.
        let derived = [
            ("SrcName", indexed.source_name),
            ("SrcVersion", indexed.source_version),
            ("LayerDiffID", indexed.layer_diff_id),
        ];
        for (key, value) in derived {
            if let Some(value) = value {
                properties.push(property(key, value));
            }
        }
    }
    for (key, value) in p.trivy_annotations() {
        if kind == Kind::Package && key == "LayerDiffID" {
            continue;
        }
        properties.push(property(key, value.to_string()));
    }
    Component {
        bom_ref: Some(p.spdx_id.clone()),
        ty: component_type(p.primary_package_purpose.as_deref(), kind, is_root),
        supplier: supplier(p.supplier.as_deref()),
        name: p.name.clone(),
        version: present(p.version_info.as_deref()),
        description: present(p.description.as_deref()),
        hashes: p.checksums.iter().filter_map(hash).collect(),
        licenses: license(p),
        purl: p.purl().map(str::to_string),
        properties,
    }
}

fn property(key: &str, value: String) -> Property {
    Property {
        name: format!("{PROPERTY_PREFIX}{key}"),
        value,
    }
}

/// SPDX's primaryPackagePurpose mapped to the nearest CycloneDX component type; a root
/// without one is what was scanned, an application; a package without one, a library.
fn component_type(purpose: Option<&str>, kind: Kind, is_root: bool) -> &'static str {
    if kind == Kind::OperatingSystem {
        return "operating-system";
    }
    match purpose.map(str::trim) {
        Some("APPLICATION") => "application",
        Some("FRAMEWORK") => "framework",
        Some("LIBRARY") => "library",
        Some("CONTAINER") => "container",
        Some("OPERATING-SYSTEM") => "operating-system",
        Some("DEVICE") => "device",
        Some("FIRMWARE") => "firmware",
        Some("FILE") => "file",
        _ if is_root || kind != Kind::Package => "application",
        _ => "library",
    }
}

/// "Organization: Ariadne Conill <ariadne@...>" -> that name; NOASSERTION says nothing.
fn supplier(s: Option<&str>) -> Option<Supplier> {
    let s = s?.trim();
    let name = ["Organization:", "Person:", "Tool:"]
        .iter()
        .find_map(|pre| s.strip_prefix(pre))
        .unwrap_or(s)
        .trim();
    if name.is_empty() || name == "NOASSERTION" || name == "NONE" {
        return None;
    }
    Some(Supplier {
        name: name.to_string(),
    })
}

/// Only the algorithms both standards name, and only values CycloneDX's pattern accepts.
fn hash(c: &spdx::Checksum) -> Option<Hash> {
    let alg = match c.algorithm.as_deref()?.trim() {
        "MD5" => "MD5",
        "SHA1" => "SHA-1",
        "SHA256" => "SHA-256",
        "SHA384" => "SHA-384",
        "SHA512" => "SHA-512",
        "SHA3-256" => "SHA3-256",
        "SHA3-384" => "SHA3-384",
        "SHA3-512" => "SHA3-512",
        "BLAKE2b-256" => "BLAKE2b-256",
        "BLAKE2b-384" => "BLAKE2b-384",
        "BLAKE2b-512" => "BLAKE2b-512",
        "BLAKE3" => "BLAKE3",
        _ => return None,
    };
    let content = c.checksum_value.as_deref()?.trim();
    let ok = [32, 40, 64, 96, 128].contains(&content.len())
        && content.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| Hash {
        alg,
        content: content.to_string(),
    })
}

/// The declared license (what the package says), else the concluded one.
fn license(p: &spdx::Package) -> Vec<License> {
    [
        p.license_declared.as_deref(),
        p.license_concluded.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .find(|l| !l.is_empty() && *l != "NOASSERTION" && *l != "NONE")
    .map(|l| License {
        expression: l.to_string(),
    })
    .into_iter()
    .collect()
}

/// One entry per component (the root first), each with what it depends on or contains among
/// the components; edges to files or unknown IDs are dropped, since a ref must name a
/// component.
fn dependencies(parsed: &Parsed, refs: &[&str]) -> Vec<Dependency> {
    let known: HashSet<&str> = refs.iter().copied().collect();
    let mut out: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (from, to) in parsed.edges() {
        if from != to && known.contains(from) && known.contains(to) {
            out.entry(from).or_default().insert(to);
        }
    }
    refs.iter()
        .map(|r| Dependency {
            reference: (*r).to_string(),
            depends_on: out
                .remove(r)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect(),
        })
        .collect()
}

/// "Tool: trivy-0.76.0" creators, and this crate, which did the conversion.
fn tools(creators: &[String]) -> Vec<Component> {
    let mut out: Vec<Component> = creators
        .iter()
        .filter_map(|c| c.trim().strip_prefix("Tool:"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (name, version) = match t.rsplit_once('-') {
                Some((n, v)) if v.starts_with(|c: char| c.is_ascii_digit()) && !n.is_empty() => {
                    (n, Some(v.to_string()))
                }
                _ => (t, None),
            };
            tool(name, version)
        })
        .collect();
    out.push(tool(
        env!("CARGO_PKG_NAME"),
        Some(env!("CARGO_PKG_VERSION").to_string()),
    ));
    out
}

fn tool(name: &str, version: Option<String>) -> Component {
    Component {
        bom_ref: None,
        ty: "application",
        supplier: None,
        name: name.to_string(),
        version,
        description: None,
        hashes: Vec::new(),
        licenses: Vec::new(),
        purl: None,
        properties: Vec::new(),
    }
}

/// A name-based UUID of the SPDX documentNamespace, which SPDX makes unique per document, so
/// that rendering the same stored SBOM twice gives the same serial number; documents without
/// one are named by the SHA-256 of their bytes instead.
fn serial_number(parsed: &Parsed, raw: &[u8]) -> String {
    let uuid = match present(parsed.doc.document_namespace.as_deref()) {
        Some(ns) => Uuid::new_v5(&Uuid::NAMESPACE_URL, ns.as_bytes()),
        None => {
            let base = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:scanplane:sbom:sha256");
            Uuid::new_v5(&base, &Sha256::digest(raw))
        }
    };
    uuid.urn().to_string()
}

fn present(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty() && *s != "NOASSERTION")
        .map(str::to_string)
}

/// RFC 3339 date-time, which the schema's `date-time` format requires, as in
/// "2026-12-03T11:22:49Z" or "2026-12-03T11:22:49.5+01:00". Anything else is left out.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let num = |r: std::ops::Range<usize>| -> u32 {
        b.get(r)
            .map(|d| d.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0')))
            .unwrap_or(0)
    };
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return false;
    }
    let (month, day, hour, minute, second) =
        (num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len()
                && digits(i + 1..i + 3)
                && b[i + 3] == b':'
                && digits(i + 4..i + 6)
                && num(i + 1..i + 3) <= 23
                && num(i + 4..i + 6) <= 59
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        for ok in [
            "2026-12-03T11:22:49Z",
            "2026-12-03T11:22:49.123Z",
            "2026-12-03T11:22:49+01:00",
            "2026-12-03t11:22:49z",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-12-03",
            "2026-12-03 11:22:49Z",
            "2026-13-03T11:22:49Z",
            "2026-12-03T11:22:49",
            "2026-12-03T11:22:49.Z",
            "2026-12-03T11:22:49+0100",
            "2026-12-03T11:22:49Zjunk",
            "２026-12-03T11:22:49Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn hashes_are_checked() {
        let c = |alg: &str, v: &str| spdx::Checksum {
            algorithm: Some(alg.into()),
            checksum_value: Some(v.into()),
        };
        assert!(hash(&c("SHA1", &"a".repeat(40))).is_some());
        assert!(hash(&c("SHA1", "xyz")).is_none());
        assert!(hash(&c("ADLER32", &"a".repeat(40))).is_none());
    }

    #[test]
    fn tool_names_and_versions() {
        let t = tools(&[
            "Tool: trivy-0.76.0".into(),
            "Organization: aquasecurity".into(),
        ]);
        assert_eq!(t[0].name, "trivy");
        assert_eq!(t[0].version.as_deref(), Some("0.76.0"));
        assert_eq!(t.last().map(|c| c.name.as_str()), Some("scanplane-sbom"));
    }
}
