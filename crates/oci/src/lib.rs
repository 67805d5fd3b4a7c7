//! Registry discovery over the OCI distribution API: catalog → tags → manifest (or index) per
//! tag → platform manifests, streamed as one [`DiscoveredImage`] per (repository, tag, platform).
//!
//! Manifests and config blobs go through the maintained `oci-client` crate; the catalog and the
//! tag lists go through reqwest with the same credentials because `oci-client` drops the `Link`
//! header that the distribution spec uses for pagination (see [`registry`]).

mod classify;
mod discover;
mod error;
mod registry;

#[cfg(feature = "testing")]
pub mod testing;

pub use discover::{Discoverer, DEFAULT_PAGE_SIZE};
pub use error::DiscoveryError;

use serde::{Deserialize, Serialize};

/// How to reach a registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Access {
    /// "https://host[:port]" or "http://host[:port]" (plain HTTP).
    pub url: String,
    /// Skip TLS verification.
    #[serde(default)]
    pub insecure: bool,
    /// PEM, trusted in addition to the system roots.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    #[serde(default)]
    pub auth: Auth,
}

/// Credentials for a registry.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Auth {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A docker `config.json`; the `auths` entry of the registry's host is used.
    DockerConfig {
        config_json: String,
    },
}

// Hand-written so that secrets never reach a log line through `{:?}`.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::DockerConfig { .. } => f
                .debug_struct("DockerConfig")
                .field("config_json", &"<redacted>")
                .finish(),
        }
    }
}

/// An image platform, as in an index entry or a config blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `Platform::new("linux", "arm", Some("v7"))`.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Whether `self`, a selected platform, selects `other`; a selection without variant
    /// selects every variant.
    pub fn selects(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.arch == other.arch
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Where the repositories come from when [`Selection::repositories`] is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Catalog {
    /// `GET /v2/_catalog`.
    Oci,
    /// The registry has no usable catalog: repositories must be listed.
    None,
}

/// What one run discovers.
#[derive(Debug, Clone)]
pub struct Selection {
    pub catalog: Catalog,
    /// Empty = the whole catalog (an error with [`Catalog::None`]).
    pub repositories: Vec<String>,
    /// Empty = every platform; a variant of `None` matches any variant.
    pub platforms: Vec<Platform>,
}

/// Decides per tag, before any manifest is fetched.
pub trait TagSelector: Send + Sync {
    /// `Err(message)`: the expression failed on this tag; it is not selected, and counted.
    fn select(&self, repository: &str, tag: &str) -> Result<bool, String>;
}

/// Selects every tag.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllTags;

impl TagSelector for AllTags {
    fn select(&self, _repository: &str, _tag: &str) -> Result<bool, String> {
        Ok(true)
    }
}

/// A layer of a discovered image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// From the config blob's `rootfs.diff_ids`.
    pub diff_id: Option<String>,
}

/// One runnable image: a (repository, tag, platform) and the manifest digest to pull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredImage {
    pub repository: String,
    pub tag: String,
    /// Digest of the (platform) image manifest: what to pull.
    pub digest: String,
    /// The index it came from, if any.
    pub index_digest: Option<String>,
    /// From the index entry, else from the config blob's os/architecture/variant.
    pub platform: Option<Platform>,
    /// Of the manifest.
    pub media_type: String,
    pub config_digest: String,
    pub layers: Vec<Layer>,
    /// Sum of the layer sizes.
    pub size: u64,
    /// The config's `created`, RFC 3339.
    pub created: Option<String>,
}

/// Counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryStats {
    pub repositories: u64,
    pub tags_listed: u64,
    pub tags_selected: u64,
    pub tag_filter_errors: u64,
    /// "repo:tag: message" of the failing tag that comes first in name order.
    pub first_tag_filter_error: Option<String>,
    pub manifests_fetched: u64,
    pub images: u64,
    pub skipped: u64,
    /// At most [`MAX_SKIPPED_EXAMPLES`], "repo:tag: helm chart" etc.
    pub skipped_examples: Vec<String>,
}

/// How many skip reasons [`DiscoveryStats::skipped_examples`] keeps.
pub const MAX_SKIPPED_EXAMPLES: usize = 5;
