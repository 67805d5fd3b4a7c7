//! OSV advisories (<https://ossf.github.io/osv-schema/>): bounded parsing of OSV JSON, loading
//! of a directory or an osv.dev `all.zip` export, matching SBOM packages against advisories with
//! the spec's range-evaluation rules, CVSS base scores, and purl → OSV package keys.
//!
//! No network and no runtime: the loaders read files/readers synchronously; version ordering is
//! supplied by the caller through [`VersionOrder`], so this crate stays ecosystem-agnostic.

mod error;
mod load;
mod matching;
mod model;
mod purl;
mod severity;

pub use error::OsvError;
pub use load::{
    load_dir, load_zip, load_zip_with_limits, visit_dir, visit_zip, LoadReport, Rejected, ZipLimits,
};
pub use matching::{advisory_severity, affected_by, Match, PackageRef, VersionOrder};
pub use model::{
    parse, Advisory, Affected, Event, Package, Range, RangeType, SeverityEntry, SeverityType,
    MAX_DETAILS_BYTES, MAX_DOCUMENT_BYTES, MAX_ITEMS, MAX_STRING_BYTES,
};
pub use purl::{normalize_pypi_name, package_key};
pub use severity::{cvss_base_score, ScoreBand, Severity};
