//! The CycloneDX 1.5 rendering of real trivy output: valid against the official schema (in
//! tests/data/cyclonedx, see its README), and carrying what the SPDX document says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{fixture, json, schema_errors, ALL, ALPINE_IMAGE, DEBIAN_ROOTFS};
use scanplane_sbom::to_cyclonedx;
use serde_json::{json, Value};

fn bom(name: &str) -> Value {
    json(&to_cyclonedx(&fixture(name)).unwrap())
}

fn component<'a>(bom: &'a Value, name: &str) -> &'a Value {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name}"))
}

fn property<'a>(c: &'a Value, name: &str) -> Vec<&'a str> {
    c["properties"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["name"] == name)
                .map(|p| p["value"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn depends_on<'a>(bom: &'a Value, bom_ref: &str) -> Vec<&'a str> {
    bom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == bom_ref)
        .unwrap_or_else(|| panic!("no dependency entry for {bom_ref}"))["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

#[test]
fn every_fixture_is_valid_cyclonedx_1_5() {
    for name in ALL {
        let b = bom(name);
        let errors = schema_errors(&b);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

/// One way of breaking a valid BOM.
type Break = fn(&mut Value);

#[test]
fn the_validator_rejects_broken_boms() {
    // So that a passing validation means something: each break is one the schema forbids,
    // including a license ID checked by the referenced spdx.schema.json.
    let good = bom(ALPINE_IMAGE);
    let breaks: [(&str, Break); 6] = [
        ("no specVersion", |b| {
            b.as_object_mut().unwrap().remove("specVersion");
        }),
        ("bad serialNumber", |b| b["serialNumber"] = json!("1234")),
        ("unknown component type", |b| {
            b["components"][0]["type"] = json!("gadget")
        }),
        ("unknown license id", |b| {
            b["components"][0]["licenses"] = json!([{"license": {"id": "NOT-A-LICENSE"}}])
        }),
        ("bad timestamp", |b| {
            b["metadata"]["timestamp"] = json!("yesterday")
        }),
        ("empty bom-ref", |b| {
            b["components"][0]["bom-ref"] = json!("")
        }),
    ];
    for (what, break_it) in breaks {
        let mut b = good.clone();
        break_it(&mut b);
        assert!(!schema_errors(&b).is_empty(), "the schema accepted: {what}");
    }
}

#[test]
fn header_and_serial_number_are_deterministic() {
    let a = bom(ALPINE_IMAGE);
    assert_eq!(a["bomFormat"], "CycloneDX");
    assert_eq!(a["specVersion"], "1.5");
    assert_eq!(a["version"], 1);
    assert_eq!(
        a,
        bom(ALPINE_IMAGE),
        "the same document renders the same bytes"
    );
    let serials: HashSet<_> = ALL
        .iter()
        .map(|n| bom(n)["serialNumber"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        serials.len(),
        ALL.len(),
        "each document has its own serial number"
    );
    let doc = json(&fixture(ALPINE_IMAGE));
    assert_eq!(a["metadata"]["timestamp"], doc["creationInfo"]["created"]);
    let tools: Vec<_> = a["metadata"]["tools"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["version"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tools,
        [
            ("trivy", "0.76.0"),
            ("scanplane-sbom", env!("CARGO_PKG_VERSION"))
        ]
    );
}

#[test]
fn the_image_is_the_metadata_component() {
    let b = bom(ALPINE_IMAGE);
    let doc = json(&fixture(ALPINE_IMAGE));
    let root = &b["metadata"]["component"];
    let image = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["primaryPackagePurpose"] == "CONTAINER")
        .unwrap();
    assert_eq!(root["bom-ref"], image["SPDXID"]);
    assert_eq!(root["type"], "container");
    assert_eq!(root["name"], "image-alpine-oci");
    assert_eq!(property(root, "aquasecurity:trivy:DiffID").len(), 2);
    assert_eq!(property(root, "aquasecurity:trivy:ImageID").len(), 1);
    let refs: Vec<_> = b["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["bom-ref"])
        .collect();
    assert!(
        !refs.contains(&&root["bom-ref"]),
        "the root is not also a component"
    );
}

#[test]
fn packages_carry_purl_version_licenses_source_and_layer() {
    let b = bom(ALPINE_IMAGE);
    let c = component(&b, "libcrypto3");
    assert_eq!(c["type"], "library");
    assert_eq!(c["version"], "3.1.4-r5");
    assert_eq!(
        c["purl"],
        "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1"
    );
    assert_eq!(c["licenses"], json!([{"expression": "Apache-2.0"}]));
    assert_eq!(c["hashes"][0]["alg"], "SHA-1");
    assert_eq!(property(c, "aquasecurity:trivy:SrcName"), ["openssl"]);
    assert_eq!(property(c, "aquasecurity:trivy:SrcVersion"), ["3.1.4-r5"]);
    let layer = property(c, "aquasecurity:trivy:LayerDiffID");
    assert_eq!(layer.len(), 1);
    assert!(layer[0].starts_with("sha256:"));
    assert_eq!(property(c, "aquasecurity:trivy:PkgType"), ["alpine"]);

    let os = component(&b, "alpine");
    assert_eq!(os["type"], "operating-system");
    assert_eq!(os["version"], "3.19.1");
    // The .NET lockfile grouping is an application, as in trivy's own CycloneDX.
    assert_eq!(component(&b, "app/App.deps.json")["type"], "application");

    let d = bom(DEBIAN_ROOTFS);
    let ssl = component(&d, "libssl3");
    assert_eq!(ssl["version"], "3.0.11-1~deb12u2");
    assert_eq!(property(ssl, "aquasecurity:trivy:SrcName"), ["openssl"]);
    assert_eq!(component(&d, "debian")["type"], "operating-system");
}

#[test]
fn dependencies_follow_depends_on_and_contains() {
    let b = bom(ALPINE_IMAGE);
    let id = |name: &str| component(&b, name)["bom-ref"].as_str().unwrap().to_string();
    let (musl, crypto, ssl, os) = (id("musl"), id("libcrypto3"), id("libssl3"), id("alpine"));
    let mut expect = vec![crypto.as_str(), musl.as_str()];
    expect.sort_unstable();
    assert_eq!(depends_on(&b, &ssl), expect, "libssl3 DEPENDS_ON");
    assert!(
        depends_on(&b, &os).contains(&ssl.as_str()),
        "the OS CONTAINS"
    );
    let root = b["metadata"]["component"]["bom-ref"].as_str().unwrap();
    let mut top = vec![
        os.as_str(),
        component(&b, "app/App.deps.json")["bom-ref"]
            .as_str()
            .unwrap(),
        component(&b, "left-pad")["bom-ref"].as_str().unwrap(),
    ];
    top.sort_unstable();
    assert_eq!(depends_on(&b, root), top);
    let app = id("App");
    assert_eq!(depends_on(&b, &app), [id("Newtonsoft.Json")]);
}

#[test]
fn every_ref_names_a_component_once() {
    for name in ALL {
        let b = bom(name);
        let mut refs = vec![b["metadata"]["component"]["bom-ref"].as_str().unwrap()];
        refs.extend(
            b["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["bom-ref"].as_str().unwrap()),
        );
        let unique: HashSet<_> = refs.iter().copied().collect();
        assert_eq!(unique.len(), refs.len(), "{name}: bom-refs are unique");
        let deps = b["dependencies"].as_array().unwrap();
        assert_eq!(deps.len(), refs.len(), "{name}: one dependency entry each");
        for d in deps {
            assert!(unique.contains(d["ref"].as_str().unwrap()));
            for r in d["dependsOn"].as_array().unwrap() {
                let r = r.as_str().unwrap();
                assert!(unique.contains(r), "{name}: {r} is not a component");
                assert!(!r.starts_with("SPDXRef-File-"), "files are not components");
            }
        }
        // Every SPDX package entry is either the root or a component.
        let doc = json(&fixture(name));
        assert_eq!(
            doc["packages"].as_array().unwrap().len(),
            refs.len(),
            "{name}"
        );
    }
}
