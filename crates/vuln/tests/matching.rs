//! The matcher on real trivy SBOMs (the captured documents of crates/sbom) against OSV records
//! written around their packages (tests/data/README.md says which rule each record tests),
//! with each ecosystem's real version order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use scanplane_vuln::{EcosystemOrder, Matcher, VulnMatch};

fn sbom(name: &str) -> scanplane_sbom::Index {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sbom/tests/data/trivy")
        .join(name);
    scanplane_sbom::index_any(&std::fs::read(path).unwrap()).unwrap()
}

fn matcher() -> Matcher {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/advisories");
    let report = scanplane_osv::load_dir(&dir).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    Matcher::new(report.advisories)
}

fn found(matches: &[VulnMatch]) -> Vec<String> {
    matches
        .iter()
        .map(|m| format!("{} {}@{}", m.id, m.package, m.installed_version))
        .collect()
}

#[test]
fn alpine_image_matches_by_source_package_release_and_semver() {
    let m = matcher().match_index(&sbom("alpine-image.spdx.json"), &EcosystemOrder);
    assert_eq!(
        found(&m),
        [
            "TEST-ALPINE-openssl-r6 libcrypto3@3.1.4-r5",
            "TEST-ALPINE-openssl-r6 libssl3@3.1.4-r5",
            "TEST-GHSA-left-pad left-pad@1.3.0",
        ],
        "{m:#?}"
    );
    let ssl = &m[0];
    assert_eq!(ssl.ecosystem, "Alpine:v3.19");
    assert_eq!(ssl.matched_name, "openssl");
    assert_eq!(ssl.fixed_versions, ["3.1.4-r6"]);
    assert_eq!(ssl.aliases, ["CVE-2024-0727"]);
    assert_eq!(
        (ssl.severity.as_str(), ssl.cvss_score),
        ("medium", Some(5.5))
    );
    assert!(
        ssl.layer_diff_id.as_deref().unwrap().starts_with("sha256:"),
        "{ssl:?}"
    );
    assert!(ssl
        .purl
        .as_deref()
        .unwrap()
        .starts_with("pkg:apk/alpine/libcrypto3@"));
    let pad = &m[2];
    assert_eq!((pad.severity.as_str(), pad.cvss_score), ("high", None));
    assert!(pad.fixed_versions.is_empty(), "last_affected names no fix");
}

#[test]
fn debian_rootfs_matches_with_dpkg_order_epochs_and_source_versions() {
    let m = matcher().match_index(&sbom("debian-rootfs.spdx.json"), &EcosystemOrder);
    assert_eq!(
        found(&m),
        [
            "TEST-DEBIAN-openssl libssl3@3.0.11-1~deb12u2",
            "TEST-DEBIAN-zlib-epoch zlib1g@1:1.2.13.dfsg-1",
            "TEST-PYSEC-six six@1.16.0",
        ],
        "{m:#?}"
    );
    assert_eq!(m[0].severity, "medium", "from database_specific");
    assert_eq!(
        (m[1].severity.as_str(), m[1].cvss_score),
        ("critical", Some(9.8))
    );
}

#[test]
fn the_same_sbom_as_cyclonedx_matches_the_same() {
    for name in ["alpine-image.spdx.json", "debian-rootfs.spdx.json"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sbom/tests/data/trivy")
            .join(name);
        let spdx = std::fs::read(path).unwrap();
        let cdx = scanplane_sbom::to_cyclonedx(&spdx).unwrap();
        let a = matcher().match_index(&scanplane_sbom::index_any(&spdx).unwrap(), &EcosystemOrder);
        let b = matcher().match_index(&scanplane_sbom::index_any(&cdx).unwrap(), &EcosystemOrder);
        assert_eq!(found(&a), found(&b), "{name}");
    }
}

#[test]
fn no_advisories_no_matches() {
    let m = Matcher::new(Vec::new()).match_index(&sbom("alpine-image.spdx.json"), &EcosystemOrder);
    assert!(m.is_empty());
}
