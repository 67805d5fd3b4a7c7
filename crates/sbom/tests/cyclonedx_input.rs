//! CycloneDX as input: the CycloneDX rendering of each captured trivy document indexes to the
//! same packages as the SPDX document itself (names, versions, purls, ecosystems, distro
//! releases, source packages, layers), so the offline matcher gives the same answer for
//! either format; and what is not an SBOM is refused with what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fixture, ALL};
use scanplane_sbom::{index, index_any, to_cyclonedx, Package};

/// What the matcher keys on, as one comparable string.
fn key(p: &Package) -> String {
    format!(
        "{:?}",
        (
            &p.name,
            &p.version,
            &p.purl,
            &p.ecosystem,
            &p.distro,
            &p.source_name,
            &p.layer_diff_id,
        )
    )
}

#[test]
fn the_cyclonedx_rendering_indexes_like_the_spdx_document() {
    for name in ALL {
        let spdx = fixture(name);
        let from_spdx = index(&spdx).unwrap();
        let from_cdx = index_any(&to_cyclonedx(&spdx).unwrap()).unwrap();
        let mut a: Vec<_> = from_spdx.packages.iter().map(key).collect();
        let mut b: Vec<_> = from_cdx.packages.iter().map(key).collect();
        a.sort();
        b.sort();
        assert!(!a.is_empty(), "{name}");
        assert_eq!(a, b, "{name}");
        assert_eq!(from_spdx.os, from_cdx.os, "{name}");
        // index_any on SPDX is index.
        assert_eq!(index_any(&spdx).unwrap(), from_spdx, "{name}");
    }
}

#[test]
fn syft_style_components_and_nesting_are_read() {
    let doc = br#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [
        {"type": "operating-system", "name": "debian", "version": "12.4"},
        {"type": "library", "name": "libssl3", "version": "3.0.11-1~deb12u2",
         "purl": "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
         "properties": [{"name": "syft:metadata:source", "value": "openssl"}],
         "components": [{"type": "library", "name": "inner", "version": "1", "purl": "pkg:npm/inner@1"}]}
    ]}"#;
    let idx = index_any(doc).unwrap();
    assert_eq!(idx.packages.len(), 2);
    let ssl = &idx.packages[0];
    assert_eq!(ssl.source_name.as_deref(), Some("openssl"));
    assert_eq!(ssl.distro.as_deref(), Some("debian-12"));
    assert_eq!(ssl.ecosystem.as_deref(), Some("deb"));
    assert_eq!(idx.packages[1].ecosystem.as_deref(), Some("npm"));
    assert_eq!(idx.os.as_ref().map(|o| o.version.as_str()), Some("12.4"));
}

#[test]
fn what_is_not_an_sbom_is_refused_saying_why() {
    let old = br#"{"bomFormat": "CycloneDX", "specVersion": "1.2", "components": []}"#;
    assert!(index_any(old).unwrap_err().to_string().contains("1.2"));
    let wrong = br#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": 3}"#;
    assert!(index_any(wrong)
        .unwrap_err()
        .to_string()
        .contains("malformed"));
    let neither = br#"{"hello": "world"}"#;
    assert!(index_any(neither).is_err());
    assert!(index_any(b"not json")
        .unwrap_err()
        .to_string()
        .contains("not JSON"));
}
