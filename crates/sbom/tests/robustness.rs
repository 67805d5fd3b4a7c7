//! No input makes `index` or `to_cyclonedx` panic: random bytes, every truncation of the real
//! documents, corrupted bytes, and real documents with one node replaced by arbitrary JSON.
//! Whenever a document is accepted, its CycloneDX rendering is valid against the schema.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fixture, json, schema_errors, ALL};
use proptest::prelude::*;
use scanplane_sbom::{index, index_any, to_cyclonedx, SbomError};
use serde_json::Value;

/// Both entry points parse the same way, so they accept and refuse the same documents; an
/// accepted document renders to schema-valid CycloneDX.
fn check(doc: &[u8]) -> Result<(), TestCaseError> {
    let idx = index(doc);
    let cdx = to_cyclonedx(doc);
    prop_assert_eq!(idx.is_ok(), cdx.is_ok(), "index: {:?}", idx.as_ref().err());
    // The format-detecting reader never panics, on anything.
    let _ = index_any(doc);
    if let Ok(out) = cdx {
        let bom = json(&out);
        let errors = schema_errors(&bom);
        prop_assert!(errors.is_empty(), "{:#?}", errors);
        // What was rendered reads back as CycloneDX with the same number of packages.
        let back = index_any(&out);
        prop_assert!(back.is_ok(), "{:?}", back.as_ref().err());
        if let (Ok(a), Ok(b)) = (&idx, &back) {
            prop_assert_eq!(a.packages.len(), b.packages.len());
        }
    }
    Ok(())
}

fn any_fixture() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(ALL.to_vec()).prop_map(fixture)
}

/// Arbitrary JSON, small: the replacement values of the structural mutations.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            " ",
            "NOASSERTION",
            "SPDX-2.3",
            "SPDXRef-DOCUMENT",
            "DEPENDS_ON",
            "CONTAINS",
            "DESCRIBES",
            "OPERATING-SYSTEM",
            "pkg:",
            "pkg:apk/alpine/x@1?distro=3",
            "built package from: ",
            "LayerDiffID: ",
            "%zz",
            "2026-12-03T11:22:49Z",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "SPDXID",
                    "name",
                    "versionInfo",
                    "externalRefs",
                    "referenceType",
                    "referenceLocator",
                    "annotations",
                    "annotator",
                    "comment",
                    "checksums",
                    "algorithm",
                    "checksumValue",
                    "spdxElementId",
                    "relatedSpdxElement",
                    "relationshipType",
                    "x",
                ]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// Every node of a document, as a path of object keys and array indices.
fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Step::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(doc in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&doc)?;
    }

    #[test]
    fn random_bytes_after_a_valid_prefix(tail in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut doc = br#"{"spdxVersion":"SPDX-2.3","packages":[{"SPDXID":"SPDXRef-a","name":"#.to_vec();
        doc.extend(tail);
        check(&doc)?;
    }

    #[test]
    fn truncated(doc in any_fixture(), cut in any::<prop::sample::Index>()) {
        let end = doc.trim_ascii_end().len();
        let cut = cut.index(end);
        let e = index(&doc[..cut]).expect_err("a cut document is not JSON");
        prop_assert!(matches!(e, SbomError::NotJson { .. }), "{:?}", e);
        prop_assert!(to_cyclonedx(&doc[..cut]).is_err());
    }

    #[test]
    fn corrupted(
        doc in any_fixture(),
        hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut doc = doc;
        for (at, byte) in hits {
            let i = at.index(doc.len());
            doc[i] = byte;
        }
        check(&doc)?;
    }

    #[test]
    fn one_node_replaced(
        doc in any_fixture(),
        which in any::<prop::sample::Index>(),
        with in any_json(),
    ) {
        let mut v = json(&doc);
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        // The root and spdxVersion are left alone: replacing them only tests the version check.
        all.retain(|p| !p.is_empty() && !matches!(p.first(), Some(Step::Key(k)) if k == "spdxVersion"));
        let path = which.get(&all).clone();
        *at(&mut v, &path) = with;
        check(&serde_json::to_vec(&v).unwrap())?;
    }
}

#[test]
fn every_truncation_of_one_document() {
    // Exhaustive over the smallest fixture, where the sampled test only tries some cuts.
    let doc = fixture(common::ALPINE_ROOTFS);
    let end = doc.trim_ascii_end().len();
    for cut in 0..end {
        assert!(index(&doc[..cut]).is_err(), "cut at {cut}");
        assert!(to_cyclonedx(&doc[..cut]).is_err(), "cut at {cut}");
    }
    assert!(index(&doc[..end]).is_ok());
}
