//! Version ordering exactly as each package ecosystem defines it, for matching OSV advisories.
//!
//! Every ecosystem has its own rules (dpkg's `~`, RPM's `^`, PEP 440's dev releases, Maven's
//! qualifiers, ...), and a matcher that compares versions with the wrong rules reports the
//! wrong packages as vulnerable. Each module ports one ecosystem's reference implementation;
//! the tests check them against case files produced by those implementations.
//!
//! All parsing is bounded: inputs over [`MAX_LEN`] bytes are refused, nothing recurses on the
//! input, and no input panics. Empty (or, where the ecosystem trims, blank) versions are
//! refused everywhere, even where the ecosystem reads them as 0.
//!
//! Deliberate differences from the reference implementations, each documented in its module:
//! RPM's missing release sorts as the empty release instead of matching any release; npm
//! compares huge numeric pre-release identifiers exactly instead of as lossy JavaScript
//! numbers; Maven and PEP 440 refuse non-ASCII input; NuGet numeric parts must be plain digits.

mod apk;
mod dpkg;
mod gem;
mod maven;
mod nuget;
mod num;
mod pep440;
mod rpm;
mod semverish;

use std::cmp::Ordering;
use std::fmt;

/// Longest accepted version string, in bytes; real versions are far shorter, and the bound keeps
/// the work per comparison small for untrusted advisory and SBOM data.
pub const MAX_LEN: usize = 256;

/// A package ecosystem whose version ordering this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    /// Alpine apk (also Wolfi and Chainguard, which use apk-tools' versions).
    Alpine,
    /// Debian dpkg.
    Debian,
    /// Ubuntu (dpkg ordering, a separate OSV ecosystem).
    Ubuntu,
    /// RPM distributions: Red Hat, Rocky Linux, AlmaLinux, openSUSE, SUSE, Mageia, ...
    Rpm,
    /// npm (node-semver, strict mode).
    Npm,
    /// crates.io (SemVer as parsed by cargo's `semver` crate).
    CratesIo,
    /// PyPI (PEP 440).
    PyPI,
    /// Go modules (golang.org/x/mod/semver).
    Go,
    /// Maven (`org.apache.maven.artifact.versioning.ComparableVersion`).
    Maven,
    /// RubyGems (`Gem::Version`).
    RubyGems,
    /// NuGet (NuGet.Versioning `NuGetVersion`).
    NuGet,
}

impl Ecosystem {
    /// All ecosystems, in declaration order.
    pub const ALL: [Ecosystem; 11] = [
        Ecosystem::Alpine,
        Ecosystem::Debian,
        Ecosystem::Ubuntu,
        Ecosystem::Rpm,
        Ecosystem::Npm,
        Ecosystem::CratesIo,
        Ecosystem::PyPI,
        Ecosystem::Go,
        Ecosystem::Maven,
        Ecosystem::RubyGems,
        Ecosystem::NuGet,
    ];

    /// From an OSV `affected[].package.ecosystem` value, ignoring any `:suffix`
    /// ("Alpine:v3.19", "Debian:12", "Ubuntu:22.04:LTS", "Rocky Linux:9", ...).
    ///
    /// Names are matched exactly as the OSV schema spells them; unknown or unsupported
    /// ecosystems (Packagist, Pub, Hex, ...) give `None`.
    pub fn from_osv(name: &str) -> Option<Ecosystem> {
        let base = name.split(':').next().unwrap_or(name);
        Some(match base {
            "Alpine" | "Wolfi" | "Chainguard" => Ecosystem::Alpine,
            "Debian" => Ecosystem::Debian,
            "Ubuntu" => Ecosystem::Ubuntu,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia"
            | "openEuler" | "Photon OS" | "Azure Linux" => Ecosystem::Rpm,
            "npm" => Ecosystem::Npm,
            "crates.io" => Ecosystem::CratesIo,
            "PyPI" => Ecosystem::PyPI,
            "Go" => Ecosystem::Go,
            "Maven" => Ecosystem::Maven,
            "RubyGems" => Ecosystem::RubyGems,
            "NuGet" => Ecosystem::NuGet,
            _ => return None,
        })
    }

    /// The OSV spelling of the ecosystem (RPM distributions are all named "RPM").
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Alpine => "Alpine",
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Rpm => "RPM",
            Ecosystem::Npm => "npm",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Go => "Go",
            Ecosystem::Maven => "Maven",
            Ecosystem::RubyGems => "RubyGems",
            Ecosystem::NuGet => "NuGet",
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A version string that its ecosystem does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {ecosystem} version {input:?}: {problem}")]
pub struct VersionError {
    /// The ecosystem whose rules refused the input.
    pub ecosystem: Ecosystem,
    /// The input, cut to its first 64 characters so errors stay small for huge inputs.
    pub input: String,
    /// What is wrong with it.
    pub problem: String,
}

impl VersionError {
    fn new(ecosystem: Ecosystem, input: &str, problem: impl Into<String>) -> Self {
        let input = if input.chars().count() > 64 {
            let mut cut: String = input.chars().take(64).collect();
            cut.push('…');
            cut
        } else {
            input.to_string()
        };
        VersionError {
            ecosystem,
            input,
            problem: problem.into(),
        }
    }
}

/// A parsed version of one ecosystem.
///
/// Ordered by its ecosystem's rules. Versions of different ecosystems are never meaningfully
/// comparable; so that `Ord` stays a total order they sort by ecosystem first.
/// Equality is the ecosystem's equality (`1.0` and `1.0.0` are equal in PyPI), not string
/// equality; [`Version::as_str`] gives the original text.
///
/// Maven caveat: Maven's own `ComparableVersion` is not transitive on odd inputs
/// (`1-sp < 1-0-alpha1 < 1 < 1-sp` in Maven 3.8.7), and this crate reproduces Maven exactly.
/// Pairwise comparisons (what advisory range matching does) are Maven's; sorting a list that
/// holds such a cycle has no meaningful result (and `slice::sort` may panic on it).
#[derive(Debug, Clone)]
pub struct Version {
    ecosystem: Ecosystem,
    text: String,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Apk(apk::ApkVersion),
    Dpkg(dpkg::DpkgVersion),
    Rpm(rpm::RpmVersion),
    Semver(semverish::SemVer),
    Cargo(semver::Version),
    Pep440(pep440::Pep440),
    Maven(maven::MavenVersion),
    Gem(gem::GemVersion),
}

impl Version {
    /// The ecosystem this version was parsed for.
    pub fn ecosystem(&self) -> Ecosystem {
        self.ecosystem
    }

    /// The version exactly as given to [`parse`].
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ecosystem
            .cmp(&other.ecosystem)
            .then_with(|| match (&self.inner, &other.inner) {
                (Inner::Apk(a), Inner::Apk(b)) => a.cmp(b),
                (Inner::Dpkg(a), Inner::Dpkg(b)) => a.cmp(b),
                (Inner::Rpm(a), Inner::Rpm(b)) => a.cmp(b),
                (Inner::Semver(a), Inner::Semver(b)) => a.cmp(b),
                (Inner::Cargo(a), Inner::Cargo(b)) => cargo_precedence(a, b),
                (Inner::Pep440(a), Inner::Pep440(b)) => a.cmp(b),
                (Inner::Maven(a), Inner::Maven(b)) => a.cmp(b),
                (Inner::Gem(a), Inner::Gem(b)) => a.cmp(b),
                // Same ecosystem always means the same representation; this arm only keeps
                // the match total.
                (a, b) => a.rank().cmp(&b.rank()),
            })
    }
}

impl Inner {
    fn rank(&self) -> u8 {
        match self {
            Inner::Apk(_) => 0,
            Inner::Dpkg(_) => 1,
            Inner::Rpm(_) => 2,
            Inner::Semver(_) => 3,
            Inner::Cargo(_) => 4,
            Inner::Pep440(_) => 5,
            Inner::Maven(_) => 6,
            Inner::Gem(_) => 7,
        }
    }
}

/// SemVer precedence: `semver::Version`'s own `Ord` also orders build metadata, which SemVer
/// (and cargo's requirement matching) ignores.
fn cargo_precedence(a: &semver::Version, b: &semver::Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// Parses `s` by `ecosystem`'s rules.
pub fn parse(ecosystem: Ecosystem, s: &str) -> Result<Version, VersionError> {
    let err = |problem: &str| VersionError::new(ecosystem, s, problem);
    if s.len() > MAX_LEN {
        return Err(err(&format!(
            "longer than {MAX_LEN} bytes ({} bytes)",
            s.len()
        )));
    }
    let inner = match ecosystem {
        Ecosystem::Alpine => Inner::Apk(apk::ApkVersion::parse(s).map_err(err)?),
        Ecosystem::Debian | Ecosystem::Ubuntu => {
            Inner::Dpkg(dpkg::DpkgVersion::parse(s).map_err(err)?)
        }
        Ecosystem::Rpm => Inner::Rpm(rpm::RpmVersion::parse(s).map_err(err)?),
        Ecosystem::Npm => Inner::Semver(semverish::parse_npm(s).map_err(err)?),
        Ecosystem::Go => Inner::Semver(semverish::parse_go(s).map_err(err)?),
        Ecosystem::NuGet => Inner::Semver(nuget::parse(s).map_err(err)?),
        Ecosystem::CratesIo => {
            Inner::Cargo(semver::Version::parse(s).map_err(|e| err(&e.to_string()))?)
        }
        Ecosystem::PyPI => Inner::Pep440(pep440::Pep440::parse(s).map_err(err)?),
        Ecosystem::Maven => Inner::Maven(maven::MavenVersion::parse(s).map_err(err)?),
        Ecosystem::RubyGems => Inner::Gem(gem::GemVersion::parse(s).map_err(err)?),
    };
    Ok(Version {
        ecosystem,
        text: s.to_string(),
        inner,
    })
}

/// Compares two versions of `ecosystem` by its rules.
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(ecosystem, a)?.cmp(&parse(ecosystem, b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osv_names() {
        assert_eq!(Ecosystem::from_osv("Alpine:v3.19"), Some(Ecosystem::Alpine));
        assert_eq!(Ecosystem::from_osv("Debian:12"), Some(Ecosystem::Debian));
        assert_eq!(
            Ecosystem::from_osv("Ubuntu:22.04:LTS"),
            Some(Ecosystem::Ubuntu)
        );
        assert_eq!(Ecosystem::from_osv("Red Hat"), Some(Ecosystem::Rpm));
        assert_eq!(Ecosystem::from_osv("Rocky Linux:9"), Some(Ecosystem::Rpm));
        assert_eq!(Ecosystem::from_osv("AlmaLinux:8"), Some(Ecosystem::Rpm));
        assert_eq!(Ecosystem::from_osv("openSUSE"), Some(Ecosystem::Rpm));
        assert_eq!(Ecosystem::from_osv("SUSE"), Some(Ecosystem::Rpm));
        assert_eq!(Ecosystem::from_osv("crates.io"), Some(Ecosystem::CratesIo));
        assert_eq!(Ecosystem::from_osv("npm"), Some(Ecosystem::Npm));
        assert_eq!(Ecosystem::from_osv("PyPI"), Some(Ecosystem::PyPI));
        assert_eq!(Ecosystem::from_osv("Go"), Some(Ecosystem::Go));
        assert_eq!(Ecosystem::from_osv("Maven"), Some(Ecosystem::Maven));
        assert_eq!(Ecosystem::from_osv("RubyGems"), Some(Ecosystem::RubyGems));
        assert_eq!(Ecosystem::from_osv("NuGet"), Some(Ecosystem::NuGet));
        assert_eq!(Ecosystem::from_osv("Packagist"), None);
        assert_eq!(Ecosystem::from_osv("pypi"), None);
    }

    #[test]
    fn too_long_is_refused() {
        let long = "1".repeat(MAX_LEN + 1);
        for eco in Ecosystem::ALL {
            let e = parse(eco, &long).err();
            assert!(e.is_some_and(|e| e.problem.contains("longer than")));
        }
    }

    #[test]
    fn error_names_ecosystem_and_input() {
        let e = parse(Ecosystem::PyPI, "not a version").err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("PyPI") && text.contains("not a version"),
            "{text}"
        );
    }

    #[test]
    fn cargo_ignores_build_metadata() {
        assert_eq!(
            compare(Ecosystem::CratesIo, "1.0.0+a", "1.0.0+b").ok(),
            Some(Ordering::Equal)
        );
    }
}
