//! Parsing OSV records: the fields kept, unknown fields ignored, errors naming the JSON path,
//! and the size/count bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::advisory;
use scanplane_osv::{
    parse, Event, OsvError, RangeType, SeverityType, MAX_DETAILS_BYTES, MAX_DOCUMENT_BYTES,
    MAX_ITEMS, MAX_STRING_BYTES,
};

#[test]
fn parses_real_ghsa_maven_record() {
    let a = advisory("GHSA-838r-hvwh-24h8.json");
    assert_eq!(a.id, "GHSA-838r-hvwh-24h8");
    assert_eq!(a.modified, "2021-09-13T20:06:31Z");
    assert_eq!(a.published.as_deref(), Some("2021-09-13T20:06:31Z"));
    assert_eq!(a.aliases, ["CVE-2021-38555"]);
    assert_eq!(a.summary.as_deref(), Some("XML Injection in Any23"));
    // "description" is not an OSV field: ignored, not an error.
    assert_eq!(a.details, None);
    assert!(a.withdrawn.is_none());
    let p = a.affected[0].package.as_ref().unwrap();
    assert_eq!(
        (p.ecosystem.as_str(), p.name.as_str()),
        ("Maven", "org.apache.any23:apache-any23")
    );
    assert_eq!(a.affected[0].ranges[0].kind, RangeType::Ecosystem);
    assert_eq!(
        a.affected[0].ranges[0].events,
        [Event::Introduced("0".into()), Event::Fixed("2.5".into())]
    );
}

#[test]
fn parses_versions_lists_and_withdrawn() {
    let a = advisory("PYSEC-2021-63.json");
    assert_eq!(a.affected.len(), 2);
    assert_eq!(a.affected[1].versions, ["3.2", "3.2.1", "3.3", "3.3.1"]);
    assert!(a
        .details
        .unwrap()
        .starts_with("In the cryptography package"));
    let w = advisory("PYSEC-2021-63-withdrawn.json");
    assert_eq!(w.withdrawn.as_deref(), Some("2021-02-10T20:15:00Z"));
}

#[test]
fn parses_severity_entries_and_specific_severity_strings() {
    let a = advisory("GHSA-c2qf-rxjj-qqgw.json");
    assert_eq!(a.severity[0].kind, SeverityType::CvssV3);
    assert_eq!(
        a.severity[0].score,
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"
    );
    assert_eq!(a.database_severity.as_deref(), Some("MODERATE"));
    assert_eq!(a.affected[0].ranges[0].kind, RangeType::Semver);

    let u = advisory("UBUNTU-CVE-2024-0727.json");
    assert_eq!(u.severity[0].kind, SeverityType::Other("Ubuntu".into()));
    assert_eq!(u.severity[0].score, "low");
    assert_eq!(u.affected[0].ecosystem_severity.as_deref(), Some("low"));
    assert_eq!(u.affected[1].ecosystem_severity, None);

    let d = advisory("DEBIAN-CVE-2023-48795.json");
    assert_eq!(d.database_severity.as_deref(), Some("MEDIUM"));
    // Debian's "urgency" is not a severity field.
    assert_eq!(d.affected[0].ecosystem_severity, None);

    let g = advisory("GHSA-EXAMPLE-last-affected.json");
    assert_eq!(g.severity[0].kind, SeverityType::CvssV4);
    assert_eq!(
        g.affected[0].ranges[0].events[1],
        Event::LastAffected("1.4.7".into())
    );
}

#[test]
fn every_data_record_parses() {
    for entry in std::fs::read_dir(common::data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            parse(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn minimal_record_and_unknown_fields() {
    let a = parse(
        br#"{"id":"X-1","modified":"2024-01-01T00:00:00Z","future_field":{"a":[1,2]},
            "affected":[{"package":{"ecosystem":"npm","name":"a"},"new_thing":true,
            "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"limit":"2.0.0"}],"x":1}],
            "ecosystem_specific":{"severity":{"nested":"object"}},
            "database_specific":"free-form string"}]}"#,
    )
    .unwrap();
    assert_eq!(a.id, "X-1");
    assert_eq!(
        a.affected[0].ranges[0].events[1],
        Event::Limit("2.0.0".into())
    );
    // Free-form specific objects with non-string severities are tolerated, not errors.
    assert_eq!(a.affected[0].ecosystem_severity, None);
    assert_eq!(a.affected[0].database_severity, None);
}

#[test]
fn unknown_range_and_severity_types_are_kept() {
    let a = parse(
        br#"{"id":"X-1","modified":"m","severity":[{"type":"CVSS_V5","score":"?"}],
            "affected":[{"package":{"ecosystem":"npm","name":"a"},
            "ranges":[{"type":"FUTURE","events":[{"introduced":"0"}]}]}]}"#,
    )
    .unwrap();
    assert_eq!(a.severity[0].kind, SeverityType::Other("CVSS_V5".into()));
    assert_eq!(
        a.affected[0].ranges[0].kind,
        RangeType::Other("FUTURE".into())
    );
}

fn err_of(json: &str) -> OsvError {
    parse(json.as_bytes()).unwrap_err()
}

#[test]
fn type_errors_name_the_json_path() {
    let e = err_of(
        r#"{"id":"X","modified":"m","affected":[{"ranges":[{"type":"SEMVER","events":[{"introduced":3}]}]}]}"#,
    );
    match e {
        OsvError::Json { path, .. } => {
            assert_eq!(path, "affected[0].ranges[0].events[0].introduced")
        }
        other => panic!("{other:?}"),
    }
    let e = err_of(r#"{"id":"X","modified":"m","aliases":"CVE-1"}"#);
    assert!(
        matches!(&e, OsvError::Json { path, .. } if path == "aliases"),
        "{e:?}"
    );
    let e = err_of(r#"{"modified":"m"}"#);
    assert!(e.to_string().contains("id"), "{e}");
    let e = err_of(r#"{"id":7}"#);
    assert!(
        matches!(&e, OsvError::Json { path, .. } if path == "id"),
        "{e:?}"
    );
    assert!(matches!(err_of("not json"), OsvError::Json { .. }));
    assert!(matches!(
        err_of(r#"{"id":"X"} trailing"#),
        OsvError::Json { .. }
    ));
    assert!(matches!(err_of(r#"{"id":""}"#), OsvError::Invalid { .. }));
}

#[test]
fn events_must_have_exactly_one_kind() {
    let e = err_of(
        r#"{"id":"X","modified":"m","affected":[{"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}"#,
    );
    assert!(
        matches!(&e, OsvError::Invalid { path, .. } if path == "affected[0].ranges[0].events[0]"),
        "{e:?}"
    );
    let e = err_of(
        r#"{"id":"X","modified":"m","affected":[{"ranges":[{"type":"SEMVER","events":[{}]}]}]}"#,
    );
    assert!(matches!(e, OsvError::Invalid { .. }));
}

#[test]
fn refuses_oversized_documents() {
    let mut doc = br#"{"id":"X","modified":"m","details":""#.to_vec();
    doc.resize(MAX_DOCUMENT_BYTES + 1, b'a');
    assert!(matches!(parse(&doc), Err(OsvError::TooLarge { .. })));
}

#[test]
fn refuses_long_strings_and_truncates_details() {
    let long = "a".repeat(MAX_STRING_BYTES + 1);
    let e = err_of(&format!(
        r#"{{"id":"X","modified":"m","summary":"{long}"}}"#
    ));
    assert!(
        matches!(&e, OsvError::Invalid { path, .. } if path == "summary"),
        "{e:?}"
    );
    let e = err_of(&format!(
        r#"{{"id":"X","modified":"m","affected":[{{"versions":["1","{long}"]}}]}}"#
    ));
    assert!(
        matches!(&e, OsvError::Invalid { path, .. } if path == "affected[0].versions[1]"),
        "{e:?}"
    );
    // details is prose: kept, cut at a character boundary instead of refusing the record.
    let details = "é".repeat(MAX_STRING_BYTES);
    let a =
        parse(format!(r#"{{"id":"X","modified":"m","details":"{details}"}}"#).as_bytes()).unwrap();
    let d = a.details.unwrap();
    assert!(d.len() <= MAX_DETAILS_BYTES && d.len() > MAX_DETAILS_BYTES - 2);
    assert!(d.chars().all(|c| c == 'é'));
}

#[test]
fn refuses_too_many_items() {
    let many = |n: usize, item: &str| vec![item; n].join(",");
    let cases = [
        (
            format!(
                r#"{{"id":"X","modified":"m","affected":[{}]}}"#,
                many(MAX_ITEMS + 1, "{}")
            ),
            "affected",
        ),
        (
            format!(
                r#"{{"id":"X","modified":"m","affected":[{{"versions":[{}]}}]}}"#,
                many(MAX_ITEMS + 1, r#""1""#)
            ),
            "affected[0].versions",
        ),
        (
            format!(
                r#"{{"id":"X","modified":"m","affected":[{{"ranges":[{}]}}]}}"#,
                many(MAX_ITEMS + 1, r#"{"type":"GIT"}"#)
            ),
            "affected[0].ranges",
        ),
        (
            format!(
                r#"{{"id":"X","modified":"m","affected":[{{"ranges":[{{"type":"SEMVER","events":[{}]}}]}}]}}"#,
                many(MAX_ITEMS + 1, r#"{"fixed":"1"}"#)
            ),
            "affected[0].ranges[0].events",
        ),
        (
            format!(
                r#"{{"id":"X","modified":"m","aliases":[{}]}}"#,
                many(MAX_ITEMS + 1, r#""A""#)
            ),
            "aliases",
        ),
    ];
    for (doc, want) in cases {
        let e = err_of(&doc);
        assert!(
            matches!(&e, OsvError::Invalid { path, .. } if path == want),
            "{want}: {e:?}"
        );
    }
    // Exactly at the limit is fine.
    let doc = format!(
        r#"{{"id":"X","modified":"m","affected":[{{"versions":[{}]}}]}}"#,
        many(MAX_ITEMS, r#""1""#)
    );
    assert_eq!(
        parse(doc.as_bytes()).unwrap().affected[0].versions.len(),
        MAX_ITEMS
    );
}
