//! SBOM documents: the package index of a stored SPDX 2.3 JSON SBOM (as `trivy image --format
//! spdx-json` writes it) and its CycloneDX 1.5 JSON rendering. Pure: no I/O, no runtime.

mod cyclonedx;
mod cyclonedx_in;
mod error;
mod packages;
mod purl;
mod spdx;

pub use error::SbomError;

/// Larger documents are refused before parsing. trivy's SPDX for a large image is a few MB;
/// 64 MiB leaves room while bounding what one request can make the parser hold.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// One installed package the SBOM lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// The package's SPDX identifier, unique within its document.
    pub spdx_id: String,
    pub name: String,
    /// SPDX `versionInfo` as written, e.g. "1:1.2.13.dfsg-1" with a Debian epoch.
    pub version: Option<String>,
    pub purl: Option<String>,
    /// The purl type: "apk", "deb", "rpm", "npm", "pypi", "golang", "maven", "cargo", "gem", "nuget", ...
    pub ecosystem: Option<String>,
    /// The purl's `distro` qualifier as `<distribution>-<release>` (e.g. "alpine-3.19.1",
    /// "debian-12.4"; trivy writes only "3.19.1" for apk, and the purl namespace is prefixed),
    /// or, for an OS package whose purl has none, the OS found in the document.
    pub distro: Option<String>,
    /// The source package an OS package was built from (e.g. libcrypto3 from openssl), from SPDX `sourceInfo`
    /// or the purl's `upstream` qualifier, whichever trivy writes.
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    /// The layer that introduced it, where the SBOM says (trivy writes a `LayerDiffID: sha256:...` annotation).
    pub layer_diff_id: Option<String>,
}

/// The operating system trivy detected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Os {
    /// The distribution as trivy names it: "alpine", "debian", "ubuntu", "redhat", ...
    pub name: String,
    pub version: String,
}

/// What a document lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Index {
    /// The OS trivy detected, e.g. ("alpine", "3.19.1"), when the document names one.
    pub os: Option<Os>,
    /// Only real packages, in document order: not the document/root/OS/application-container entries.
    pub packages: Vec<Package>,
}

/// Parses an SPDX 2.3 JSON document (as trivy writes it) into its package index.
pub fn index(spdx_json: &[u8]) -> Result<Index, SbomError> {
    let parsed = spdx::parse(spdx_json)?;
    Ok(packages::build(&parsed))
}

/// Parses an SPDX 2.3 or a CycloneDX 1.4-1.6 JSON document (told apart by `bomFormat`) into
/// its package index: what the offline matcher takes.
pub fn index_any(json: &[u8]) -> Result<Index, SbomError> {
    if json.len() > MAX_DOCUMENT_BYTES {
        return Err(SbomError::TooLarge {
            size: json.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    if cyclonedx_in::is_cyclonedx(json) {
        cyclonedx_in::index(json)
    } else {
        index(json)
    }
}

/// Renders the SPDX document as CycloneDX 1.5 JSON: bomFormat, specVersion "1.5", a
/// serialNumber derived deterministically from the document, metadata.component for the
/// image, components with bom-ref (the SPDX ID), type (library / operating-system /
/// application), name, version, purl, hashes, licenses where SPDX has them, and properties for
/// the layer diffID and source package; dependencies from SPDX relationships (DEPENDS_ON /
/// CONTAINS and their reverse forms).
pub fn to_cyclonedx(spdx_json: &[u8]) -> Result<Vec<u8>, SbomError> {
    let parsed = spdx::parse(spdx_json)?;
    cyclonedx::render(&parsed, spdx_json)
}
