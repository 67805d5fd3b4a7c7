//! The package index of real trivy 0.76 SPDX output (tests/data/trivy, see its README): the
//! expected packages with purl, version, ecosystem, distro, source package and layer; the OS;
//! and none of the document, root, OS or application entries listed as packages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fixture, json, ALL, ALPINE_IMAGE, ALPINE_ROOTFS, DEBIAN_ROOTFS};
use scanplane_sbom::{index, Index, Os, Package};

fn get<'a>(idx: &'a Index, name: &str) -> &'a Package {
    let found: Vec<_> = idx.packages.iter().filter(|p| p.name == name).collect();
    assert_eq!(found.len(), 1, "{name} listed {} times", found.len());
    found[0]
}

fn names(idx: &Index) -> Vec<&str> {
    let mut n: Vec<_> = idx.packages.iter().map(|p| p.name.as_str()).collect();
    n.sort_unstable();
    n
}

/// The SPDX ID of the named package in the raw document, so that expectations do not copy
/// trivy's hashes.
fn spdx_id_of(doc: &serde_json::Value, name: &str) -> String {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["name"] == name
                && p["SPDXID"]
                    .as_str()
                    .unwrap()
                    .starts_with("SPDXRef-Package-")
        })
        .unwrap_or_else(|| panic!("{name} not in the fixture"))["SPDXID"]
        .as_str()
        .unwrap()
        .to_string()
}

fn opt(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn alpine_rootfs_lists_apk_and_npm_packages() {
    let bytes = fixture(ALPINE_ROOTFS);
    let doc = json(&bytes);
    let idx = index(&bytes).unwrap();
    assert_eq!(
        idx.os,
        Some(Os {
            name: "alpine".into(),
            version: "3.19.1".into()
        })
    );
    assert_eq!(
        names(&idx),
        [
            "busybox",
            "left-pad",
            "libcrypto3",
            "libssl3",
            "musl",
            "zlib"
        ]
    );
    assert_eq!(
        *get(&idx, "libcrypto3"),
        Package {
            spdx_id: spdx_id_of(&doc, "libcrypto3"),
            name: "libcrypto3".into(),
            version: opt("3.1.4-r5"),
            purl: opt("pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1"),
            ecosystem: opt("apk"),
            // trivy writes distro=3.19.1 for apk; the index prefixes the purl namespace.
            distro: opt("alpine-3.19.1"),
            source_name: opt("openssl"),
            source_version: opt("3.1.4-r5"),
            // `trivy rootfs` has no layers.
            layer_diff_id: None,
        }
    );
    let ssl = get(&idx, "libssl3");
    assert_eq!(ssl.source_name.as_deref(), Some("openssl"));
    assert_eq!(ssl.distro.as_deref(), Some("alpine-3.19.1"));
    let musl = get(&idx, "musl");
    assert_eq!(musl.version.as_deref(), Some("1.2.4_git20230717-r4"));
    assert_eq!(musl.source_name.as_deref(), Some("musl"));
    assert_eq!(
        *get(&idx, "left-pad"),
        Package {
            spdx_id: spdx_id_of(&doc, "left-pad"),
            name: "left-pad".into(),
            version: opt("1.3.0"),
            purl: opt("pkg:npm/left-pad@1.3.0"),
            ecosystem: opt("npm"),
            distro: None,
            source_name: None,
            source_version: None,
            layer_diff_id: None,
        }
    );
}

#[test]
fn debian_rootfs_keeps_epochs_tildes_and_source_packages() {
    let bytes = fixture(DEBIAN_ROOTFS);
    let doc = json(&bytes);
    let idx = index(&bytes).unwrap();
    assert_eq!(
        idx.os,
        Some(Os {
            name: "debian".into(),
            version: "12.4".into()
        })
    );
    assert_eq!(
        names(&idx),
        [
            "libc6",
            "libgcc-s1",
            "libpcre2-8-0",
            "libssl3",
            "six",
            "tzdata",
            "zlib1g"
        ]
    );
    assert_eq!(
        *get(&idx, "libssl3"),
        Package {
            spdx_id: spdx_id_of(&doc, "libssl3"),
            name: "libssl3".into(),
            version: opt("3.0.11-1~deb12u2"),
            purl: opt("pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12.4"),
            ecosystem: opt("deb"),
            distro: opt("debian-12.4"),
            source_name: opt("openssl"),
            source_version: opt("3.0.11-1~deb12u2"),
            layer_diff_id: None,
        }
    );
    // The epoch is in versionInfo and sourceInfo; the purl carries it as a qualifier.
    let z = get(&idx, "zlib1g");
    assert_eq!(z.version.as_deref(), Some("1:1.2.13.dfsg-1"));
    assert_eq!(z.source_name.as_deref(), Some("zlib"));
    assert_eq!(z.source_version.as_deref(), Some("1:1.2.13.dfsg-1"));
    assert!(z.purl.as_deref().unwrap().contains("epoch=1"));
    // A binNMU: dpkg's "Source: pcre2 (10.42-1)" names a source version unlike the binary's.
    let pcre = get(&idx, "libpcre2-8-0");
    assert_eq!(pcre.version.as_deref(), Some("10.42-1+b1"));
    assert_eq!(pcre.source_name.as_deref(), Some("pcre2"));
    assert_eq!(pcre.source_version.as_deref(), Some("10.42-1"));
    // No Source field: the package is its own source.
    assert_eq!(get(&idx, "tzdata").source_name.as_deref(), Some("tzdata"));
    assert_eq!(get(&idx, "libc6").source_name.as_deref(), Some("glibc"));
    assert_eq!(
        get(&idx, "libgcc-s1").source_name.as_deref(),
        Some("gcc-12")
    );
    let six = get(&idx, "six");
    assert_eq!(six.ecosystem.as_deref(), Some("pypi"));
    assert_eq!(six.purl.as_deref(), Some("pkg:pypi/six@1.16.0"));
    assert_eq!(
        (six.distro.as_ref(), six.source_name.as_ref()),
        (None, None)
    );
}

/// The image's layers in order, from the OCI config blob the SBOM was made from.
fn oci_diff_ids() -> Vec<String> {
    let dir = common::data("trivy/image-alpine-oci");
    let read = |p: std::path::PathBuf| json(&std::fs::read(p).unwrap());
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        dir.join("blobs/sha256").join(hex)
    };
    let oci_index = read(dir.join("index.json"));
    let manifest = read(blob(&oci_index["manifests"][0]["digest"]));
    let config = read(blob(&manifest["config"]["digest"]));
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn alpine_image_says_which_layer_introduced_each_package() {
    let idx = index(&fixture(ALPINE_IMAGE)).unwrap();
    let layers = oci_diff_ids();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        names(&idx),
        [
            "App",
            "Newtonsoft.Json",
            "busybox",
            "left-pad",
            "libcrypto3",
            "libssl3",
            "musl",
            "zlib"
        ]
    );
    for (name, layer) in [
        ("musl", 0),
        ("busybox", 0),
        ("zlib", 0),
        ("libcrypto3", 1),
        ("libssl3", 1),
        ("left-pad", 1),
        ("Newtonsoft.Json", 1),
        ("App", 1),
    ] {
        assert_eq!(
            get(&idx, name).layer_diff_id.as_deref(),
            Some(layers[layer].as_str()),
            "{name}"
        );
    }
    let nj = get(&idx, "Newtonsoft.Json");
    assert_eq!(nj.ecosystem.as_deref(), Some("nuget"));
    assert_eq!(nj.version.as_deref(), Some("13.0.1"));
    assert_eq!(
        nj.source_name, None,
        "'package found in: <file>' is not a source package"
    );
}

#[test]
fn which_packages_come_from_openssl_3_1_4() {
    // The query the index exists for: by source package, whatever the binary package is called.
    let idx = index(&fixture(ALPINE_IMAGE)).unwrap();
    let mut hits: Vec<_> = idx
        .packages
        .iter()
        .filter(|p| p.source_name.as_deref() == Some("openssl"))
        .filter(|p| {
            p.source_version
                .as_deref()
                .is_some_and(|v| v.starts_with("3.1.4"))
        })
        .map(|p| (p.name.as_str(), p.distro.as_deref()))
        .collect();
    hits.sort_unstable();
    assert_eq!(
        hits,
        [
            ("libcrypto3", Some("alpine-3.19.1")),
            ("libssl3", Some("alpine-3.19.1"))
        ]
    );
}

#[test]
fn document_root_os_and_application_entries_are_not_packages() {
    for name in ALL {
        let bytes = fixture(name);
        let doc = json(&bytes);
        let idx = index(&bytes).unwrap();
        let real: Vec<&str> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .filter(|id| id.starts_with("SPDXRef-Package-"))
            .collect();
        let listed: Vec<&str> = idx.packages.iter().map(|p| p.spdx_id.as_str()).collect();
        assert_eq!(listed, real, "{name}: document order, real packages only");
        // The fixture does have the entries that must be left out.
        let all = doc["packages"].as_array().unwrap().len();
        assert!(all > real.len(), "{name}");
    }
}

#[test]
fn index_round_trips_through_serde() {
    let idx = index(&fixture(ALPINE_IMAGE)).unwrap();
    let text = serde_json::to_string(&idx).unwrap();
    let back: Index = serde_json::from_str(&text).unwrap();
    assert_eq!(back, idx);
}
