//! Reading a CycloneDX JSON SBOM (1.4 to 1.6, as trivy, syft or this crate write it) into the
//! same package index as SPDX, so the offline matcher takes either.
//!
//! Components nest (`components[].components[]`); every library or application component
//! with a name is a package. The source package of an OS package comes from trivy's
//! `aquasecurity:trivy:SrcName`/`SrcVersion` properties, else syft's `syft:metadata:source`
//! properties, else the purl's `upstream` qualifier; the distro release from the purl's
//! `distro` qualifier, else the `operating-system` component.

use serde::Deserialize;

use crate::error::SbomError;
use crate::packages::{normalize_distro, parse_upstream, OS_PURL_TYPES};
use crate::{purl, Index, Os, Package, MAX_DOCUMENT_BYTES};

/// Deepest component nesting followed; real documents nest two or three levels.
const MAX_DEPTH: usize = 32;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    bom_format: Option<String>,
    spec_version: Option<String>,
    metadata: Option<Metadata>,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Metadata {
    component: Option<Component>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    #[serde(default)]
    properties: Vec<Property>,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Property {
    name: Option<String>,
    value: Option<String>,
}

impl Component {
    fn property(&self, names: &[&str]) -> Option<&str> {
        self.properties.iter().find_map(|p| {
            let name = p.name.as_deref()?;
            names
                .contains(&name)
                .then_some(p.value.as_deref())
                .flatten()
                .map(str::trim)
                .filter(|v| !v.is_empty())
        })
    }
}

fn walk<'a>(components: &'a [Component], depth: usize, out: &mut Vec<&'a Component>) {
    if depth > MAX_DEPTH {
        return;
    }
    for c in components {
        out.push(c);
        walk(&c.components, depth + 1, out);
    }
}

/// Whether the document says it is CycloneDX (`bomFormat`); other fields are skipped unread.
pub(crate) fn is_cyclonedx(json: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "bomFormat")]
        bom_format: Option<String>,
    }
    serde_json::from_slice::<Probe>(json)
        .ok()
        .and_then(|p| p.bom_format)
        .as_deref()
        == Some("CycloneDX")
}

/// Parses a CycloneDX JSON document into its package index.
pub(crate) fn index(json: &[u8]) -> Result<Index, SbomError> {
    if json.len() > MAX_DOCUMENT_BYTES {
        return Err(SbomError::TooLarge {
            size: json.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let doc: Document = serde_json::from_slice(json).map_err(|e| {
        if e.is_data() {
            SbomError::Malformed {
                path: "(document)".into(),
                reason: e.to_string(),
            }
        } else {
            SbomError::not_json(&e)
        }
    })?;
    if doc.bom_format.as_deref() != Some("CycloneDX") {
        return Err(SbomError::NotSpdx {
            what: "neither SPDX 2.3 (spdxVersion) nor CycloneDX (bomFormat)".into(),
        });
    }
    if let Some(v) = doc.spec_version.as_deref() {
        if !matches!(v, "1.4" | "1.5" | "1.6") {
            return Err(SbomError::NotSpdx {
                what: format!("CycloneDX specVersion {v:?} is not supported (1.4 to 1.6 are)"),
            });
        }
    }
    let mut all = Vec::new();
    if let Some(root) = doc.metadata.as_ref().and_then(|m| m.component.as_ref()) {
        walk(std::slice::from_ref(root), 0, &mut all);
    }
    walk(&doc.components, 0, &mut all);
    let os = all.iter().find_map(|c| {
        (c.ty.as_deref() == Some("operating-system"))
            .then(|| {
                Some(Os {
                    name: c.name.clone()?.to_ascii_lowercase(),
                    version: c.version.clone()?,
                })
            })
            .flatten()
    });
    let root_ref = doc
        .metadata
        .as_ref()
        .and_then(|m| m.component.as_ref())
        .and_then(|c| c.bom_ref.as_deref());
    let packages = all
        .iter()
        // Libraries are packages; an application is one only with a purl (trivy writes each
        // lock file it read as a purl-less application that holds the packages found in it).
        .filter(|c| match c.ty.as_deref() {
            Some("library") => true,
            Some("application") | None => c.purl.is_some(),
            _ => false,
        })
        .filter(|c| root_ref.is_none() || c.bom_ref.as_deref() != root_ref)
        .filter(|c| c.name.as_deref().is_some_and(|n| !n.trim().is_empty()))
        .enumerate()
        .map(|(i, c)| package(i, c, os.as_ref()))
        .collect();
    Ok(Index { os, packages })
}

fn package(i: usize, c: &Component, os: Option<&Os>) -> Package {
    let purl_str = c.purl.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let parsed = purl_str.and_then(purl::parse);
    let ecosystem = parsed.as_ref().map(|u| u.ty.clone());
    let is_os_package = ecosystem
        .as_deref()
        .is_some_and(|t| OS_PURL_TYPES.contains(&t));
    let distro = parsed
        .as_ref()
        .and_then(|u| {
            let d = u.qualifier("distro")?;
            Some(normalize_distro(d, u.namespace.as_deref()))
        })
        .or_else(|| {
            let os = os.filter(|_| is_os_package)?;
            Some(format!("{}-{}", os.name, os.version))
        });
    let trivy_source = c.property(&["aquasecurity:trivy:SrcName"]).map(|n| {
        (
            n.to_string(),
            c.property(&["aquasecurity:trivy:SrcVersion"])
                .map(str::to_string),
        )
    });
    let (source_name, source_version) = trivy_source
        .or_else(|| {
            c.property(&["syft:metadata:source", "syft:metadata:originPackage"])
                .map(|n| (n.to_string(), None))
        })
        .or_else(|| {
            parsed
                .as_ref()?
                .qualifier("upstream")
                .and_then(parse_upstream)
        })
        .map_or((None, None), |(n, v)| (Some(n), v));
    Package {
        spdx_id: c
            .bom_ref
            .clone()
            .unwrap_or_else(|| format!("component-{i}")),
        name: c.name.clone().unwrap_or_default(),
        version: c
            .version
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        purl: purl_str.map(str::to_string),
        ecosystem,
        distro,
        source_name,
        source_version,
        layer_diff_id: c
            .property(&["aquasecurity:trivy:LayerDiffID"])
            .map(str::to_string),
    }
}
