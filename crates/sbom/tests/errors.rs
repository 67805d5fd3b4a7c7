//! What is refused and what is not: errors name what is wrong, oversized documents are refused
//! before parsing, and missing optional fields never fail a document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{json, schema_errors};
use scanplane_sbom::{index, to_cyclonedx, SbomError, MAX_DOCUMENT_BYTES};
use serde_json::json;

fn both_fail(doc: &[u8]) -> SbomError {
    let a = index(doc).expect_err("index accepted it");
    let b = to_cyclonedx(doc).expect_err("to_cyclonedx accepted it");
    assert_eq!(
        a.to_string(),
        b.to_string(),
        "both entry points say the same"
    );
    a
}

fn bytes(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

/// Checks the rendering of a document that must be accepted against the schema, too.
fn valid_bom(doc: &[u8]) -> serde_json::Value {
    let b = json(&to_cyclonedx(doc).unwrap());
    let errors = schema_errors(&b);
    assert!(errors.is_empty(), "{errors:#?}");
    b
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    // Whitespace only: parsed, it would be "not JSON"; refused by size, it never is.
    let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    let e = both_fail(&big);
    assert!(
        matches!(e, SbomError::TooLarge { size, limit } if size == MAX_DOCUMENT_BYTES + 1 && limit == MAX_DOCUMENT_BYTES),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the document is {} bytes, more than the {} bytes an SBOM may have",
            MAX_DOCUMENT_BYTES + 1,
            MAX_DOCUMENT_BYTES
        )
    );
}

#[test]
fn a_document_of_exactly_the_limit_is_parsed() {
    let mut doc = bytes(json!({"spdxVersion": "SPDX-2.3"}));
    doc.resize(MAX_DOCUMENT_BYTES, b' ');
    assert_eq!(index(&doc).unwrap().packages, []);
}

#[test]
fn not_json_says_where() {
    let e = both_fail(b"{\"a\" 1}");
    assert!(
        matches!(
            e,
            SbomError::NotJson {
                line: 1,
                column: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "not JSON at line 1 column 6: expected `:`");
    let e = both_fail(b"{\n  \"spdxVersion\": \"SPDX-2.3\",\n  \"packages\": [\n");
    assert!(
        e.to_string()
            .starts_with("not JSON at line 4 column 0: EOF"),
        "{e}"
    );
    let e = both_fail(b"");
    assert!(
        e.to_string().starts_with("not JSON at line 1 column 0"),
        "{e}"
    );
    let e = both_fail(b"{} trailing");
    assert!(
        e.to_string().starts_with("not JSON at line 1 column 4"),
        "{e}"
    );
}

#[test]
fn other_spdx_versions_are_named() {
    let e = both_fail(&bytes(
        json!({"spdxVersion": "SPDX-2.2", "SPDXID": "SPDXRef-DOCUMENT"}),
    ));
    assert!(matches!(e, SbomError::NotSpdx { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        r#"not an SPDX 2.3 document: spdxVersion "SPDX-2.2" is not supported"#
    );
    let e = both_fail(&bytes(json!({"spdxVersion": 2.3})));
    assert_eq!(
        e.to_string(),
        "not an SPDX 2.3 document: spdxVersion is a number, not a string"
    );
    let long = "x".repeat(10_000);
    let e = both_fail(&bytes(json!({"spdxVersion": long})));
    assert!(e.to_string().len() < 200, "an echoed value is cut short");
}

#[test]
fn missing_spdx_version_and_other_formats_are_named() {
    let e = both_fail(&bytes(json!({"packages": []})));
    assert_eq!(
        e.to_string(),
        "not an SPDX 2.3 document: spdxVersion is missing"
    );
    let e = both_fail(&bytes(
        json!({"bomFormat": "CycloneDX", "specVersion": "1.5"}),
    ));
    assert_eq!(
        e.to_string(),
        "not an SPDX 2.3 document: spdxVersion is missing (this looks like a CycloneDX BOM)"
    );
    for (doc, kind) in [
        ("[1, {\"a\": 2}]", "an array"),
        ("\"SPDX-2.3\"", "a string"),
        ("42", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ] {
        let e = both_fail(doc.as_bytes());
        assert_eq!(
            e.to_string(),
            format!("not an SPDX 2.3 document: the document is {kind}, not a JSON object")
        );
    }
}

#[test]
fn malformed_fields_are_named_by_path() {
    let e = both_fail(&bytes(json!({
        "spdxVersion": "SPDX-2.3",
        "packages": [
            {"SPDXID": "SPDXRef-Package-a", "name": "ok"},
            {"SPDXID": "SPDXRef-Package-b", "name": 5}
        ]
    })));
    assert!(
        matches!(&e, SbomError::Malformed { path, .. } if path == "packages[1].name"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "malformed SPDX document at packages[1].name: invalid type: integer `5`, expected a string"
    );
    let e = both_fail(&bytes(json!({
        "spdxVersion": "SPDX-2.3",
        "packages": [{"name": "no id"}]
    })));
    assert_eq!(
        e.to_string(),
        "malformed SPDX document at packages[0]: missing field `SPDXID`"
    );
    let e = both_fail(&bytes(json!({
        "spdxVersion": "SPDX-2.3",
        "packages": [{"SPDXID": "  ", "name": "blank id"}]
    })));
    assert_eq!(
        e.to_string(),
        "malformed SPDX document at packages[0].SPDXID: the SPDX identifier is empty"
    );
    let e = both_fail(&bytes(json!({"spdxVersion": "SPDX-2.3", "packages": {}})));
    assert!(
        e.to_string()
            .starts_with("malformed SPDX document at packages: invalid type: map"),
        "{e}"
    );
}

#[test]
fn a_bare_document_is_an_empty_index() {
    let doc = bytes(json!({"spdxVersion": "SPDX-2.3"}));
    let idx = index(&doc).unwrap();
    assert_eq!((idx.os, idx.packages.len()), (None, 0));
    let b = valid_bom(&doc);
    assert_eq!(b["components"], json!([]));
    assert!(b["metadata"].get("component").is_none());
}

#[test]
fn packages_without_optional_fields_are_still_listed() {
    let doc = bytes(json!({
        "spdxVersion": "SPDX-2.3",
        "creationInfo": {"created": "not a date", "creators": null},
        "packages": [
            {"SPDXID": "SPDXRef-Package-bare", "name": "bare"},
            {"SPDXID": "SPDXRef-Package-nulls", "name": "nulls", "versionInfo": null,
             "externalRefs": null, "annotations": null, "checksums": null,
             "licenseDeclared": "NOASSERTION", "supplier": "NOASSERTION"},
            {"SPDXID": "SPDXRef-Package-odd", "name": "odd", "versionInfo": "",
             "externalRefs": [{"referenceType": "purl"}, {"referenceLocator": "pkg:npm/x@1"}],
             "annotations": [{}, {"comment": "LayerDiffID: sha256:00"}],
             "checksums": [{"algorithm": "SHA1"}, {"checksumValue": "zz"}],
             "sourceInfo": "built package from:"}
        ],
        "relationships": [{}, {"relationshipType": "DEPENDS_ON"}]
    }));
    let idx = index(&doc).unwrap();
    assert_eq!(idx.packages.len(), 3);
    for p in &idx.packages {
        assert_eq!(p.version, None, "{}", p.name);
        assert_eq!(p.purl, None, "{}", p.name);
        assert_eq!(p.ecosystem, None);
        assert_eq!(p.distro, None);
        assert_eq!(p.source_name, None);
        // An annotation not by trivy is free text, not a layer.
        assert_eq!(p.layer_diff_id, None);
    }
    let b = valid_bom(&doc);
    assert!(
        b["metadata"].get("timestamp").is_none(),
        "an unparseable date is left out"
    );
    assert_eq!(b["components"].as_array().unwrap().len(), 3);
}

#[test]
fn a_byte_order_mark_is_tolerated() {
    let mut doc = b"\xEF\xBB\xBF".to_vec();
    doc.extend(bytes(json!({"spdxVersion": "SPDX-2.3"})));
    assert!(index(&doc).is_ok());
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    let deep = |inner: &str| format!("{}{inner}{}", "[".repeat(100_000), "]".repeat(100_000));
    // In a field this crate does not read, serde_json skips it without recursing: accepted.
    let doc = format!("{{\"spdxVersion\": \"SPDX-2.3\", \"x\": {}}}", deep(""));
    assert_eq!(index(doc.as_bytes()).unwrap().packages, []);
    assert!(to_cyclonedx(doc.as_bytes()).is_ok());
    // Where a value is read whole, serde_json's recursion limit refuses it.
    let doc = format!("{{\"spdxVersion\": {}}}", deep(""));
    let e = both_fail(doc.as_bytes());
    assert!(e.to_string().contains("recursion limit"), "{e}");
}

/// Forms trivy does not write for these fixtures but SPDX allows: the purl `upstream`
/// qualifier for the source package, reverse relationships, `documentDescribes`, and a purl
/// without a distro qualifier inside the OS.
#[test]
fn other_spdx_forms() {
    let doc = bytes(json!({
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "documentNamespace": "https://example.test/spdx/1",
        "documentDescribes": ["SPDXRef-Image"],
        "packages": [
            {"SPDXID": "SPDXRef-Image", "name": "registry.test/app:1", "primaryPackagePurpose": "CONTAINER"},
            {"SPDXID": "SPDXRef-OS", "name": "ubuntu", "versionInfo": "22.04",
             "primaryPackagePurpose": "OPERATING-SYSTEM"},
            {"SPDXID": "SPDXRef-libssl", "name": "libssl3", "versionInfo": "3.0.2-0ubuntu1.15",
             "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
               "referenceLocator": "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.15?upstream=openssl%403.0.2-0ubuntu1.15"}]},
            {"SPDXID": "SPDXRef-dup", "name": "first"},
            {"SPDXID": "SPDXRef-dup", "name": "second"}
        ],
        "relationships": [
            {"spdxElementId": "SPDXRef-OS", "relatedSpdxElement": "SPDXRef-Image", "relationshipType": "CONTAINED_BY"},
            {"spdxElementId": "SPDXRef-libssl", "relatedSpdxElement": "SPDXRef-OS", "relationshipType": "CONTAINED_BY"},
            {"spdxElementId": "SPDXRef-dup", "relatedSpdxElement": "SPDXRef-libssl", "relationshipType": "DEPENDENCY_OF"}
        ]
    }));
    let idx = index(&doc).unwrap();
    assert_eq!(idx.os.as_ref().map(|o| o.version.as_str()), Some("22.04"));
    let names: Vec<_> = idx.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["libssl3", "first"],
        "a repeated SPDXID is listed once"
    );
    let ssl = &idx.packages[0];
    assert_eq!(ssl.source_name.as_deref(), Some("openssl"));
    assert_eq!(ssl.source_version.as_deref(), Some("3.0.2-0ubuntu1.15"));
    assert_eq!(
        ssl.distro.as_deref(),
        Some("ubuntu-22.04"),
        "from the OS it is in"
    );

    let b = valid_bom(&doc);
    assert_eq!(b["metadata"]["component"]["bom-ref"], "SPDXRef-Image");
    assert_eq!(b["metadata"]["component"]["type"], "container");
    let deps = |r: &str| {
        b["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == r)
            .unwrap()["dependsOn"]
            .clone()
    };
    assert_eq!(deps("SPDXRef-Image"), json!(["SPDXRef-OS"]));
    assert_eq!(deps("SPDXRef-OS"), json!(["SPDXRef-libssl"]));
    assert_eq!(deps("SPDXRef-libssl"), json!(["SPDXRef-dup"]));
    // The serial number is a v5 UUID of the namespace: the same namespace, the same serial.
    let again = valid_bom(&bytes(json!({
        "spdxVersion": "SPDX-2.3",
        "documentNamespace": "https://example.test/spdx/1"
    })));
    assert_eq!(again["serialNumber"], b["serialNumber"]);
    let other = valid_bom(&bytes(json!({"spdxVersion": "SPDX-2.3"})));
    assert_ne!(other["serialNumber"], b["serialNumber"]);
}
