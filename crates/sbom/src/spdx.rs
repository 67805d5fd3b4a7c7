//! The part of the SPDX 2.3 JSON model that the index and the CycloneDX rendering read, and
//! how a document is checked and parsed.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::{SbomError, MAX_DOCUMENT_BYTES};

/// The only `spdxVersion` accepted: the JSON layout and field names below are 2.3's.
pub(crate) const SUPPORTED_VERSION: &str = "SPDX-2.3";

/// The document's own SPDX identifier when it does not say (SPDX fixes it to this anyway).
const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    #[serde(rename = "SPDXID")]
    pub spdx_id: Option<String>,
    pub document_namespace: Option<String>,
    pub creation_info: Option<CreationInfo>,
    #[serde(default, deserialize_with = "nullable")]
    pub document_describes: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub packages: Vec<Package>,
    #[serde(default, deserialize_with = "nullable")]
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreationInfo {
    pub created: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub creators: Vec<String>,
}

/// An SPDX package. `SPDXID` and `name` are the only fields SPDX 2.3 makes mandatory that
/// this crate needs; everything else may be missing without failing the document.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Package {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub version_info: Option<String>,
    pub supplier: Option<String>,
    pub source_info: Option<String>,
    pub license_concluded: Option<String>,
    pub license_declared: Option<String>,
    pub primary_package_purpose: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub checksums: Vec<Checksum>,
    #[serde(default, deserialize_with = "nullable")]
    pub external_refs: Vec<ExternalRef>,
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: Vec<Annotation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Checksum {
    pub algorithm: Option<String>,
    pub checksum_value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExternalRef {
    pub reference_type: Option<String>,
    pub reference_locator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Annotation {
    pub annotator: Option<String>,
    pub comment: Option<String>,
}

/// Incomplete relationships are skipped rather than refused: they only add edges.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Relationship {
    pub spdx_element_id: Option<String>,
    pub related_spdx_element: Option<String>,
    pub relationship_type: Option<String>,
}

/// `null` where an array is expected reads as empty: some writers emit `"annotations": null`.
fn nullable<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl Package {
    /// The package URL: the first `purl` external reference. Its category is not checked:
    /// SPDX 2.2 spelled it `PACKAGE_MANAGER`, 2.3 `PACKAGE-MANAGER`, and the type says enough.
    pub fn purl(&self) -> Option<&str> {
        self.external_refs
            .iter()
            .filter(|r| {
                r.reference_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("purl"))
            })
            .find_map(|r| r.reference_locator.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// trivy's `Key: value` annotations (`LayerDiffID: sha256:...`, `PkgType: alpine`), in
    /// document order. Other tools' annotations are free text and are not read as pairs.
    pub fn trivy_annotations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.annotations
            .iter()
            .filter(|a| {
                a.annotator
                    .as_deref()
                    .is_some_and(|who| who.to_ascii_lowercase().contains("trivy"))
            })
            .filter_map(|a| a.comment.as_deref()?.split_once(": "))
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
    }

    /// The first value of one trivy annotation key.
    pub fn trivy_annotation(&self, key: &str) -> Option<&str> {
        self.trivy_annotations()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn purpose_is(&self, purpose: &str) -> bool {
        self.primary_package_purpose
            .as_deref()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case(purpose))
    }
}

/// What an SPDX package entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// What the document describes: the image, filesystem or repository.
    Root,
    /// The operating system trivy detected (`SPDXRef-OperatingSystem-...`).
    OperatingSystem,
    /// A grouping entry without a package URL: trivy's `SPDXRef-Application-...` for a
    /// lockfile or a set of language packages, or a nested image or filesystem.
    Group,
    /// A real, installed package.
    Package,
}

/// trivy names its non-package entries `SPDXRef-<Element>-<hash>`; these are the elements that
/// group packages rather than being one (trivy's `Package` and `File` elements are not here).
const GROUP_ID_PREFIXES: &[&str] = &[
    "SPDXRef-Application-",
    "SPDXRef-ContainerImage-",
    "SPDXRef-Filesystem-",
    "SPDXRef-Repository-",
    "SPDXRef-VM-",
    "SPDXRef-Vm-",
];

/// A parsed document with the facts both renderings need worked out once.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub doc: Document,
    /// What the document DESCRIBES, in document order, each once.
    pub roots: Vec<String>,
}

impl Parsed {
    pub fn kind(&self, p: &Package) -> Kind {
        if self.roots.contains(&p.spdx_id) {
            return Kind::Root;
        }
        if p.purpose_is("OPERATING-SYSTEM") || p.spdx_id.starts_with("SPDXRef-OperatingSystem-") {
            return Kind::OperatingSystem;
        }
        // A package URL makes it a package whatever else it looks like: other writers mark
        // real binaries APPLICATION, and a purl is what vulnerability matching needs.
        if p.purl().is_none()
            && (GROUP_ID_PREFIXES
                .iter()
                .any(|pre| p.spdx_id.starts_with(pre))
                || ((p.purpose_is("APPLICATION") || p.purpose_is("CONTAINER"))
                    && p.trivy_annotation("Class").is_some()))
        {
            return Kind::Group;
        }
        Kind::Package
    }

    /// `(from, to)` edges meaning "from depends on or contains to", from DEPENDS_ON and
    /// CONTAINS and their reverse forms; other relationship types are not dependencies.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.doc.relationships.iter().filter_map(|r| {
            let a = r.spdx_element_id.as_deref()?.trim();
            let b = r.related_spdx_element.as_deref()?.trim();
            match r.relationship_type.as_deref()?.trim() {
                "DEPENDS_ON" | "CONTAINS" => Some((a, b)),
                "DEPENDENCY_OF" | "CONTAINED_BY" => Some((b, a)),
                _ => None,
            }
        })
    }
}

/// Checks the size, the JSON and the SPDX version, then parses the document.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, SbomError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(SbomError::TooLarge {
            size: bytes.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    // A UTF-8 byte order mark is not JSON, but editors and some Windows tools add one.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);

    // First pass: the whole text is checked as JSON and only spdxVersion is kept, so that a
    // CycloneDX or SPDX 2.2 upload is told so instead of failing on some field's shape.
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => SbomError::NotSpdx {
            what: strip_location(&e),
        },
        _ => SbomError::not_json(&e),
    })?;
    match probe {
        Probe::NotObject(kind) => {
            return Err(SbomError::NotSpdx {
                what: format!("the document is {kind}, not a JSON object"),
            })
        }
        Probe::Object {
            spdx_version,
            bom_format,
        } => check_version(spdx_version, bom_format)?,
    }

    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut doc: Document = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        SbomError::Malformed {
            path,
            reason: strip_location(e.inner()),
        }
    })?;
    // Relationships are matched on trimmed IDs, so the packages' own IDs are trimmed too; an
    // empty one could be neither referred to nor rendered as a CycloneDX bom-ref.
    for (i, p) in doc.packages.iter_mut().enumerate() {
        let trimmed = p.spdx_id.trim();
        if trimmed.is_empty() {
            return Err(SbomError::Malformed {
                path: format!("packages[{i}].SPDXID"),
                reason: "the SPDX identifier is empty".into(),
            });
        }
        if trimmed.len() != p.spdx_id.len() {
            p.spdx_id = trimmed.to_string();
        }
    }
    dedupe_packages(&mut doc.packages);
    let roots = roots(&doc);
    Ok(Parsed { doc, roots })
}

fn check_version(version: Option<serde_json::Value>, bom_format: bool) -> Result<(), SbomError> {
    let what = match version {
        Some(serde_json::Value::String(v)) if v.trim() == SUPPORTED_VERSION => return Ok(()),
        Some(serde_json::Value::String(v)) => {
            format!("spdxVersion {:?} is not supported", truncate(&v, 64))
        }
        Some(other) => format!("spdxVersion is {}, not a string", json_kind(&other)),
        None if bom_format => "spdxVersion is missing (this looks like a CycloneDX BOM)".into(),
        None => "spdxVersion is missing".into(),
    };
    Err(SbomError::NotSpdx { what })
}

/// A package whose SPDXID was already seen is dropped: SPDX identifiers are unique in a valid
/// document, and CycloneDX bom-refs must be.
fn dedupe_packages(packages: &mut Vec<Package>) {
    let mut seen = HashSet::new();
    packages.retain(|p| seen.insert(p.spdx_id.clone()));
}

fn roots(doc: &Document) -> Vec<String> {
    let doc_id = doc.spdx_id.as_deref().unwrap_or(DOCUMENT_ID);
    let from_relationships = doc.relationships.iter().filter_map(|r| {
        let a = r.spdx_element_id.as_deref()?.trim();
        let b = r.related_spdx_element.as_deref()?.trim();
        match r.relationship_type.as_deref()?.trim() {
            "DESCRIBES" if a == doc_id => Some(b),
            "DESCRIBED_BY" if b == doc_id => Some(a),
            _ => None,
        }
    });
    let mut out: Vec<String> = Vec::new();
    for id in doc
        .document_describes
        .iter()
        .map(|s| s.trim())
        .chain(from_relationships)
    {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    out
}

fn strip_location(e: &serde_json::Error) -> String {
    match SbomError::not_json(e) {
        SbomError::NotJson { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The first pass's view of a document: its top-level shape and version, nothing else kept.
enum Probe {
    NotObject(&'static str),
    Object {
        spdx_version: Option<serde_json::Value>,
        bom_format: bool,
    },
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProbeVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SPDX document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let mut spdx_version = None;
        let mut bom_format = false;
        // Keys are read as owned strings: a key with escapes cannot be borrowed.
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "spdxVersion" => spdx_version = Some(map.next_value::<serde_json::Value>()?),
                "bomFormat" => {
                    bom_format = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Probe::Object {
            spdx_version,
            bom_format,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Probe, A::Error> {
        // serde_json insists that a visited array is read to its end.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Probe::NotObject("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Probe, E> {
        Ok(Probe::NotObject("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Probe, E> {
        Ok(Probe::NotObject("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Probe, E> {
        Ok(Probe::NotObject("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Probe, E> {
        Ok(Probe::NotObject("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Probe, E> {
        Ok(Probe::NotObject("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe::NotObject("null"))
    }
}
