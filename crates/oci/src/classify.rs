//! What a manifest is (image, index, or something that is not a runnable image), decided by
//! media types and content; the cosign tag rule is an addition that saves a fetch.

use serde::Deserialize;

use crate::Platform;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a manifest fetch accepts: OCI and Docker v2 manifests and indexes (no schema 1).
pub(crate) const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const COSIGN_SIGNATURE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<RawPlatform>,
}

#[derive(Debug, Deserialize, Clone)]
pub(crate) struct RawPlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl RawPlatform {
    pub(crate) fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            arch: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

/// A manifest or an index, whichever it turns out to be.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawManifest {
    #[serde(default)]
    pub schema_version: Option<i64>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Kind {
    Image,
    Index,
    /// Not a runnable image, with the reason.
    Skip(String),
}

impl RawManifest {
    /// The media type, from the body, else inferred from its shape (OCI allows omitting it).
    pub(crate) fn media_type(&self) -> &str {
        match &self.media_type {
            Some(mt) => mt,
            None if self.manifests.is_some() => OCI_INDEX,
            None => OCI_MANIFEST,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        if self.schema_version == Some(1) {
            return Kind::Skip("schema 1 manifest".into());
        }
        match self.media_type() {
            OCI_INDEX | DOCKER_LIST => match &self.artifact_type {
                Some(at) => Kind::Skip(format!("OCI artifact index ({at})")),
                None => Kind::Index,
            },
            OCI_MANIFEST | DOCKER_MANIFEST => match self.image_skip_reason() {
                Some(reason) => Kind::Skip(reason),
                None => Kind::Image,
            },
            other => Kind::Skip(format!("not an image manifest ({other})")),
        }
    }

    /// Why an image manifest is not a runnable image, if it is not.
    fn image_skip_reason(&self) -> Option<String> {
        let Some(config) = &self.config else {
            return Some("manifest without config".into());
        };
        if config.media_type == HELM_CONFIG {
            return Some("helm chart".into());
        }
        for layer in &self.layers {
            match layer.media_type.as_str() {
                COSIGN_SIGNATURE => return Some("cosign signature".into()),
                IN_TOTO => return Some("in-toto attestation".into()),
                DSSE => return Some("DSSE attestation".into()),
                _ => {}
            }
        }
        if let Some(at) = &self.artifact_type {
            return Some(format!("OCI artifact ({at})"));
        }
        if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
            return Some(format!("OCI artifact (config {})", config.media_type));
        }
        None
    }
}

/// What an index entry is.
#[derive(Debug, PartialEq)]
pub(crate) enum Entry {
    /// A platform manifest to fetch; the platform if the entry has one.
    Manifest(Option<Platform>),
    /// Counted as skipped, with the reason.
    Skip(String),
    /// Not among the selected platforms: neither fetched nor counted.
    NotSelected,
}

pub(crate) fn entry(descriptor: &Descriptor, platforms: &[Platform]) -> Entry {
    let platform = descriptor.platform.as_ref().map(RawPlatform::platform);
    if let Some(p) = &platform {
        // buildkit attaches provenance/SBOM attestations as unknown/unknown entries.
        if p.os == "unknown" && p.arch == "unknown" {
            return Entry::Skip("attestation manifest (unknown/unknown)".into());
        }
    }
    match descriptor.media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => return Entry::Skip("nested index".into()),
        OCI_MANIFEST | DOCKER_MANIFEST | "" => {}
        other => return Entry::Skip(format!("index entry {other}")),
    }
    match &platform {
        Some(p) if !platforms.is_empty() && !platforms.iter().any(|s| s.selects(p)) => {
            Entry::NotSelected
        }
        _ => Entry::Manifest(platform),
    }
}

/// `sha256-<hex>.sig|.att|.sbom`: where cosign stores signatures, attestations and SBOMs.
pub(crate) fn cosign_tag(tag: &str) -> Option<&'static str> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = rest.split_once('.')?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match suffix {
        "sig" => Some("cosign signature (tag)"),
        "att" => Some("cosign attestation (tag)"),
        "sbom" => Some("cosign SBOM (tag)"),
        _ => None,
    }
}

/// The parts of a config blob that discovery reports.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub rootfs: Option<RawRootfs>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawRootfs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl RawConfig {
    pub(crate) fn platform(&self) -> Option<Platform> {
        match (&self.os, &self.architecture) {
            (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => Some(Platform {
                os: os.clone(),
                arch: arch.clone(),
                variant: self.variant.clone().filter(|v| !v.is_empty()),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> RawManifest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn images_indexes_and_artifacts() {
        let image = parse(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:a","size":1},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:b","size":2}]}"#,
        );
        assert_eq!(image.kind(), Kind::Image);
        let docker = parse(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:a","size":1},"layers":[]}"#,
        );
        assert_eq!(docker.kind(), Kind::Image);
        let index = parse(r#"{"schemaVersion":2,"manifests":[]}"#);
        assert_eq!(index.kind(), Kind::Index);
        let helm = parse(
            r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:a"},"layers":[]}"#,
        );
        assert_eq!(helm.kind(), Kind::Skip("helm chart".into()));
        let sig = parse(
            r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:a"},
            "layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:b"}]}"#,
        );
        assert_eq!(sig.kind(), Kind::Skip("cosign signature".into()));
        let artifact = parse(
            r#"{"schemaVersion":2,"artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:a"},"layers":[]}"#,
        );
        assert_eq!(
            artifact.kind(),
            Kind::Skip("OCI artifact (application/spdx+json)".into())
        );
        let wasm = parse(
            r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.wasm.config.v1+json","digest":"sha256:a"},"layers":[]}"#,
        );
        assert!(matches!(wasm.kind(), Kind::Skip(r) if r.starts_with("OCI artifact (config")));
        assert!(matches!(
            parse(r#"{"schemaVersion":1}"#).kind(),
            Kind::Skip(_)
        ));
    }

    #[test]
    fn index_entries() {
        let d: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,
            "platform":{"os":"linux","architecture":"arm","variant":"v7"}}"#,
        )
        .unwrap();
        let v7 = Platform::new("linux", "arm", Some("v7"));
        assert_eq!(entry(&d, &[]), Entry::Manifest(Some(v7.clone())));
        assert_eq!(
            entry(&d, &[Platform::new("linux", "arm", None)]),
            Entry::Manifest(Some(v7))
        );
        assert_eq!(
            entry(&d, &[Platform::new("linux", "arm", Some("v6"))]),
            Entry::NotSelected
        );
        assert_eq!(
            entry(&d, &[Platform::new("linux", "amd64", None)]),
            Entry::NotSelected
        );
        let att: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","platform":{"os":"unknown","architecture":"unknown"}}"#,
        )
        .unwrap();
        assert!(matches!(entry(&att, &[]), Entry::Skip(_)));
    }

    #[test]
    fn cosign_tags() {
        let hex = "a".repeat(64);
        assert!(cosign_tag(&format!("sha256-{hex}.sig")).is_some());
        assert!(cosign_tag(&format!("sha256-{hex}.att")).is_some());
        assert!(cosign_tag(&format!("sha256-{hex}.sbom")).is_some());
        assert!(cosign_tag(&format!("sha256-{hex}.txt")).is_none());
        assert!(cosign_tag("sha256-abc.sig").is_none());
        assert!(cosign_tag("latest").is_none());
    }
}
