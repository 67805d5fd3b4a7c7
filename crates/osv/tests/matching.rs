//! Matching rules of the OSV evaluation pseudo-code, on the data records and on small inline
//! records that isolate one rule each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{advisory, NaturalOrder};
use scanplane_osv::{affected_by, parse, Advisory, Match, PackageRef, Severity};

fn pkg(ecosystem: &str, name: &str, version: &str) -> PackageRef {
    PackageRef {
        ecosystem: ecosystem.into(),
        name: name.into(),
        version: version.into(),
    }
}

fn check(a: &Advisory, eco: &str, name: &str, version: &str) -> Option<Match> {
    affected_by(a, &pkg(eco, name, version), &NaturalOrder)
}

fn hit(a: &Advisory, eco: &str, name: &str, version: &str) -> bool {
    check(a, eco, name, version).is_some()
}

/// One affected npm entry "p" with the given events (JSON objects).
fn with_events(events: &str) -> Advisory {
    parse(
        format!(
            r#"{{"id":"T-1","modified":"m","aliases":["CVE-1"],"affected":[{{"package":{{"ecosystem":"npm","name":"p"}},
            "ranges":[{{"type":"SEMVER","events":[{events}]}}]}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

#[test]
fn introduced_zero_and_fixed() {
    let a = with_events(r#"{"introduced":"0"},{"fixed":"1.5.0"}"#);
    assert!(hit(&a, "npm", "p", "0.0.1"));
    assert!(hit(&a, "npm", "p", "1.4.9"));
    assert!(!hit(&a, "npm", "p", "1.5.0"), "fixed is exclusive");
    assert!(!hit(&a, "npm", "p", "2.0.0"));
    let m = check(&a, "npm", "p", "1.0.0").unwrap();
    assert_eq!(m.id, "T-1");
    assert_eq!(m.aliases, ["CVE-1"]);
    assert_eq!(m.fixed, ["1.5.0"]);
    assert_eq!(m.severity, Severity::Unknown);
    assert_eq!(m.cvss_score, None);
}

#[test]
fn introduced_is_inclusive() {
    let a = with_events(r#"{"introduced":"1.2.0"},{"fixed":"1.3.0"}"#);
    assert!(!hit(&a, "npm", "p", "1.1.9"));
    assert!(hit(&a, "npm", "p", "1.2.0"));
    assert!(hit(&a, "npm", "p", "1.2.5"));
    assert!(!hit(&a, "npm", "p", "1.3.0"));
}

#[test]
fn introduced_without_fix_affects_everything_after() {
    let a = with_events(r#"{"introduced":"2.0.0"}"#);
    assert!(!hit(&a, "npm", "p", "1.9.9"));
    assert!(hit(&a, "npm", "p", "2.0.0"));
    assert!(hit(&a, "npm", "p", "99.0.0"));
    assert!(check(&a, "npm", "p", "3.0.0").unwrap().fixed.is_empty());
}

#[test]
fn last_affected_is_inclusive() {
    let a = advisory("GHSA-EXAMPLE-last-affected.json");
    assert!(!hit(&a, "npm", "@example/left-pad", "1.1.0"));
    assert!(hit(&a, "npm", "@example/left-pad", "1.2.0"));
    assert!(hit(&a, "npm", "@example/left-pad", "1.4.7"));
    assert!(!hit(&a, "npm", "@example/left-pad", "1.4.8"));
    let m = check(&a, "npm", "@example/left-pad", "1.3.0").unwrap();
    assert!(m.fixed.is_empty(), "last_affected is not a fix");
    // CVSS v4 AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N is 9.3.
    assert_eq!(m.cvss_score, Some(9.3));
    assert_eq!(m.severity, Severity::Critical);
}

#[test]
fn limit_caps_the_range() {
    let a = with_events(r#"{"introduced":"1.0.0"},{"limit":"1.5.0"}"#);
    assert!(!hit(&a, "npm", "p", "0.9.0"));
    assert!(hit(&a, "npm", "p", "1.0.0"));
    assert!(hit(&a, "npm", "p", "1.4.9"));
    assert!(!hit(&a, "npm", "p", "1.5.0"), "limit is exclusive");
    assert!(!hit(&a, "npm", "p", "2.0.0"));
    // With several limits, being below any one of them is enough (spec's beforeLimits).
    let a = with_events(r#"{"introduced":"0"},{"limit":"1.0.0"},{"limit":"3.0.0"}"#);
    assert!(hit(&a, "npm", "p", "2.0.0"));
    assert!(!hit(&a, "npm", "p", "3.0.0"));
}

#[test]
fn events_are_sorted_before_evaluation() {
    // Events in reverse order, two introduced/fixed pairs in one range.
    let a = with_events(
        r#"{"fixed":"2.5.0"},{"introduced":"2.0.0"},{"fixed":"1.5.0"},{"introduced":"1.0.0"}"#,
    );
    assert!(!hit(&a, "npm", "p", "0.5.0"));
    assert!(hit(&a, "npm", "p", "1.2.0"));
    assert!(!hit(&a, "npm", "p", "1.7.0"));
    assert!(hit(&a, "npm", "p", "2.1.0"));
    assert!(!hit(&a, "npm", "p", "2.5.0"));
    // Every fixed event of the matching range is reported.
    assert_eq!(
        check(&a, "npm", "p", "2.1.0").unwrap().fixed,
        ["2.5.0", "1.5.0"]
    );
}

#[test]
fn multiple_ranges_and_entries() {
    let a = advisory("GHSA-c2qf-rxjj-qqgw.json");
    for (v, want, fixed) in [
        ("5.7.1", true, Some("5.7.2")),
        ("5.7.2", false, None),
        ("6.0.0", true, Some("6.3.1")),
        ("6.3.1", false, None),
        ("7.5.1", true, Some("7.5.2")),
        ("7.5.2", false, None),
        ("7.6.0", false, None),
    ] {
        let m = check(&a, "npm", "semver", v);
        assert_eq!(m.is_some(), want, "semver@{v}");
        if let Some(f) = fixed {
            assert_eq!(m.unwrap().fixed, [f], "semver@{v}");
        }
    }
    let m = check(&a, "npm", "semver", "7.0.0").unwrap();
    assert_eq!(m.aliases, ["CVE-2022-25883"]);
    // CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L is 5.3: the vector wins over "MODERATE".
    assert_eq!(m.cvss_score, Some(5.3));
    assert_eq!(m.severity, Severity::Medium);
    // Other packages are not matched.
    assert!(!hit(&a, "npm", "semver-extra", "1.0.0"));
    assert!(!hit(&a, "PyPI", "semver", "1.0.0"));
}

#[test]
fn ranges_of_one_entry_are_alternatives() {
    let a = parse(
        br#"{"id":"T-2","modified":"m","affected":[{"package":{"ecosystem":"npm","name":"p"},
        "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]},
                  {"type":"ECOSYSTEM","events":[{"introduced":"2.0.0"},{"fixed":"2.1.0"}]}]}]}"#,
    )
    .unwrap();
    assert!(hit(&a, "npm", "p", "0.5.0"));
    assert!(!hit(&a, "npm", "p", "1.5.0"));
    assert!(hit(&a, "npm", "p", "2.0.5"));
    assert_eq!(check(&a, "npm", "p", "2.0.5").unwrap().fixed, ["2.1.0"]);
}

#[test]
fn versions_list_is_exact() {
    // Real PYSEC record: two entries, each with a range and an explicit versions list.
    let a = advisory("PYSEC-2021-63.json");
    assert!(hit(&a, "PyPI", "cryptography", "3.1.1"));
    assert_eq!(
        check(&a, "PyPI", "cryptography", "3.1.1").unwrap().fixed,
        ["3.1.2"]
    );
    assert!(!hit(&a, "PyPI", "cryptography", "3.1.2"));
    assert!(hit(&a, "PyPI", "cryptography", "3.3.1"));
    assert_eq!(
        check(&a, "PyPI", "cryptography", "3.3").unwrap().fixed,
        ["3.3.2"]
    );
    assert!(!hit(&a, "PyPI", "cryptography", "3.0"));
    // PyPI names compare PEP 503-normalised.
    assert!(hit(&a, "PyPI", "Cryptography", "3.2"));

    // A versions list alone (no ranges) matches only its exact strings.
    let v = parse(
        br#"{"id":"T-3","modified":"m","affected":[{"package":{"ecosystem":"PyPI","name":"foo-bar"},
        "versions":["1.0","1.1"]}]}"#,
    )
    .unwrap();
    assert!(hit(&v, "PyPI", "foo-bar", "1.0"));
    assert!(hit(&v, "PyPI", "foo_bar", "1.1"));
    assert!(!hit(&v, "PyPI", "foo-bar", "1.0.0"));
    assert!(!hit(&v, "PyPI", "foo-bar", "1.2"));
    assert!(check(&v, "PyPI", "foo-bar", "1.0")
        .unwrap()
        .fixed
        .is_empty());
}

#[test]
fn versions_list_matches_even_outside_ranges() {
    let a = parse(
        br#"{"id":"T-4","modified":"m","affected":[{"package":{"ecosystem":"npm","name":"p"},
        "ranges":[{"type":"SEMVER","events":[{"introduced":"2.0.0"},{"fixed":"2.1.0"}]}],
        "versions":["1.0.0-beta"]}]}"#,
    )
    .unwrap();
    let m = check(&a, "npm", "p", "1.0.0-beta").unwrap();
    // The fixed versions of the entry's ranges are still the useful hint.
    assert_eq!(m.fixed, ["2.1.0"]);
}

#[test]
fn withdrawn_never_matches() {
    let a = advisory("PYSEC-2021-63-withdrawn.json");
    assert!(!hit(&a, "PyPI", "cryptography", "3.2"));
    assert!(!hit(&a, "PyPI", "cryptography", "3.1"));
}

#[test]
fn git_ranges_are_ignored() {
    let a = parse(
        br#"{"id":"T-5","modified":"m","affected":[{"package":{"ecosystem":"npm","name":"p"},
        "ranges":[{"type":"GIT","repo":"https://example.com/p","events":[{"introduced":"0"},{"fixed":"abc123"}]}]}]}"#,
    )
    .unwrap();
    assert!(!hit(&a, "npm", "p", "1.0.0"));
}

#[test]
fn alpine_release_suffix_must_match() {
    let a = advisory("ALPINE-CVE-2024-0727.json");
    assert!(hit(&a, "Alpine:v3.19", "openssl", "3.1.4-r4"));
    assert!(hit(&a, "Alpine:v3.19", "openssl", "3.1.4-r0"));
    assert!(!hit(&a, "Alpine:v3.19", "openssl", "3.1.4-r5"));
    assert!(
        !hit(&a, "Alpine:v3.19", "openssl", "3.1.4-r10"),
        "r10 > r5 numerically"
    );
    assert!(hit(&a, "Alpine:v3.18", "openssl", "3.1.4-r4"));
    assert!(!hit(&a, "Alpine:v3.20", "openssl", "3.1.4-r4"));
    assert!(
        !hit(&a, "Alpine", "openssl", "3.1.4-r4"),
        "bare package key is not a release"
    );
    let m = check(&a, "Alpine:v3.19", "openssl", "3.1.4-r4").unwrap();
    assert_eq!(m.fixed, ["3.1.4-r5"]);
    // CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H is 5.5.
    assert_eq!(m.cvss_score, Some(5.5));
    assert_eq!(m.severity, Severity::Medium);
}

#[test]
fn debian_epochs_and_releases() {
    let a = advisory("DEBIAN-CVE-2023-48795.json");
    assert!(hit(&a, "Debian:12", "openssh", "1:9.2p1-2+deb12u1"));
    assert!(!hit(&a, "Debian:12", "openssh", "1:9.2p1-2+deb12u2"));
    assert!(!hit(&a, "Debian:12", "openssh", "1:9.3p1-1"));
    // Without an epoch the version is epoch 0, far below "1:...".
    assert!(hit(&a, "Debian:12", "openssh", "9.9p1-1"));
    assert!(hit(&a, "Debian:11", "openssh", "1:8.4p1-5+deb11u2"));
    assert!(!hit(&a, "Debian:11", "openssh", "1:8.4p1-5+deb11u3"));
    assert!(!hit(&a, "Debian:10", "openssh", "1:7.9p1-10"));
    let m = check(&a, "Debian:12", "openssh", "1:9.2p1-2").unwrap();
    assert_eq!(m.fixed, ["1:9.2p1-2+deb12u2"]);
    // No vector: Debian's database_specific severity.
    assert_eq!(m.severity, Severity::Medium);
    assert_eq!(m.cvss_score, None);
}

#[test]
fn bare_os_ecosystem_matches_every_release() {
    let a = parse(
        br#"{"id":"DSA-0000-1","modified":"m","affected":[{"package":{"ecosystem":"Debian","name":"zlib"},
        "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:1.2.13.dfsg-1"}]}]}]}"#,
    )
    .unwrap();
    assert!(hit(&a, "Debian:11", "zlib", "1:1.2.11.dfsg-2+deb11u2"));
    assert!(hit(&a, "Debian:12", "zlib", "1:1.2.11.dfsg-4"));
    assert!(hit(&a, "Debian", "zlib", "1:1.2.11.dfsg-4"));
    assert!(!hit(&a, "Debian:12", "zlib", "1:1.2.13.dfsg-1"));
    // A prefix is not a release: "Debian" must not match "DebianX:1".
    assert!(!hit(&a, "DebianX:1", "zlib", "1:1.0-1"));
    assert!(!hit(&a, "Ubuntu:22.04:LTS", "zlib", "1:1.0-1"));
}

#[test]
fn ubuntu_lts_and_interim_ecosystems() {
    let a = advisory("UBUNTU-CVE-2024-0727.json");
    let m = check(&a, "Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.13").unwrap();
    assert_eq!(m.fixed, ["3.0.2-0ubuntu1.14"]);
    // No CVSS vector: the entry's ecosystem_specific severity.
    assert_eq!(m.severity, Severity::Low);
    assert!(!hit(&a, "Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.14"));
    assert!(!hit(&a, "Ubuntu:22.04", "openssl", "3.0.2-0ubuntu1.13"));
    let m = check(&a, "Ubuntu:23.10", "openssl", "3.0.10-1ubuntu2.1").unwrap();
    // This entry has no ecosystem_specific severity: the "Ubuntu" severity[] score.
    assert_eq!(m.severity, Severity::Low);
}

#[test]
fn maven_record_matches() {
    let a = advisory("GHSA-838r-hvwh-24h8.json");
    assert!(hit(&a, "Maven", "org.apache.any23:apache-any23", "2.4"));
    assert!(!hit(&a, "Maven", "org.apache.any23:apache-any23", "2.5"));
    assert!(!hit(&a, "Maven", "org.apache.any23:any23-core", "2.4"));
}

#[test]
fn uncomparable_versions_skip_the_range() {
    let a = with_events(r#"{"introduced":"0"},{"fixed":"1.0.0"}"#);
    assert!(!hit(&a, "npm", "p", "bogus"));
    // An invalid event version makes only that range undecidable; others still evaluate.
    let a = parse(
        br#"{"id":"T-6","modified":"m","affected":[{"package":{"ecosystem":"npm","name":"p"},
        "ranges":[{"type":"SEMVER","events":[{"introduced":"bogus"},{"fixed":"9"}]},
                  {"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"2.0.0"}]}]}]}"#,
    )
    .unwrap();
    assert_eq!(check(&a, "npm", "p", "1.0.0").unwrap().fixed, ["2.0.0"]);
}

#[test]
fn severity_fallbacks() {
    let doc = |advisory_extra: &str, entry_extra: &str| {
        parse(
            format!(
                r#"{{"id":"T-7","modified":"m"{advisory_extra},"affected":[{{"package":{{"ecosystem":"npm","name":"p"}},
                "versions":["1"]{entry_extra}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    };
    let sev = |a: &Advisory| check(a, "npm", "p", "1").unwrap().severity;
    assert_eq!(
        sev(&doc(r#","database_specific":{"severity":"HIGH"}"#, "")),
        Severity::High
    );
    assert_eq!(
        sev(&doc("", r#","database_specific":{"severity":"CRITICAL"}"#)),
        Severity::Critical
    );
    assert_eq!(
        sev(&doc("", r#","ecosystem_specific":{"severity":"moderate"}"#)),
        Severity::Medium
    );
    // Entry-level words win over the advisory's.
    assert_eq!(
        sev(&doc(
            r#","database_specific":{"severity":"LOW"}"#,
            r#","ecosystem_specific":{"severity":"high"}"#
        )),
        Severity::High
    );
    // An unparsable vector falls back to the words.
    assert_eq!(
        sev(&doc(
            r#","severity":[{"type":"CVSS_V3","score":"garbage"}],"database_specific":{"severity":"LOW"}"#,
            ""
        )),
        Severity::Low
    );
    // v3 is preferred over v4, and per-entry vectors count.
    let a = doc(
        r#","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]"#,
        r#","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"}]"#,
    );
    let m = check(&a, "npm", "p", "1").unwrap();
    assert_eq!(m.cvss_score, Some(3.1));
    assert_eq!(m.severity, Severity::Low);
    // A v2 vector alone.
    let a = doc(
        r#","severity":[{"type":"CVSS_V2","score":"AV:N/AC:L/Au:N/C:P/I:P/A:P"}]"#,
        "",
    );
    assert_eq!(check(&a, "npm", "p", "1").unwrap().cvss_score, Some(7.5));
    assert_eq!(
        sev(&doc(r#","database_specific":{"severity":"whatever"}"#, "")),
        Severity::Unknown
    );
}

#[test]
fn entries_without_package_are_skipped() {
    let a = parse(br#"{"id":"T-8","modified":"m","affected":[{"versions":["1"]}]}"#).unwrap();
    assert!(!hit(&a, "npm", "p", "1"));
}

/// A comparator that is not a total order must not make matching panic.
struct Inconsistent;

impl scanplane_osv::VersionOrder for Inconsistent {
    fn compare(&self, _: &str, a: &str, b: &str) -> Result<std::cmp::Ordering, String> {
        Ok(if (a.len() + b.len()) % 2 == 0 {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        })
    }
}

#[test]
fn inconsistent_orderings_do_not_panic() {
    let events: Vec<String> = (0..200)
        .map(|i| {
            if i % 2 == 0 {
                format!(r#"{{"introduced":"{i}.{}"}}"#, "1".repeat(i % 7))
            } else {
                format!(r#"{{"fixed":"{i}"}}"#)
            }
        })
        .collect();
    let a = with_events(&events.join(","));
    for v in ["1", "22", "333"] {
        let _ = affected_by(&a, &pkg("npm", "p", v), &Inconsistent);
    }
}

#[test]
fn limit_star_is_infinity() {
    let a = with_events(r#"{"introduced":"1.0.0"},{"limit":"*"}"#);
    assert!(hit(&a, "npm", "p", "1.0.0"));
    assert!(hit(&a, "npm", "p", "999.0.0"));
    assert!(!hit(&a, "npm", "p", "0.9.0"));
}

#[test]
fn osv_schema_examples() {
    // The GHSA npm example of the OSV schema document.
    let a = advisory("GHSA-r9p9-mrjm-926w.json");
    let m = check(&a, "npm", "elliptic", "6.5.3").unwrap();
    assert_eq!(m.fixed, ["6.5.4"]);
    // CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N is 6.8 (GitHub shows 6.8 moderate).
    assert_eq!(m.cvss_score, Some(6.8));
    assert_eq!(m.severity, Severity::Medium);
    assert!(!hit(&a, "npm", "elliptic", "6.5.4"));

    // The RustSec example: no vector, the ecosystem_specific severity word.
    let r = advisory("RUSTSEC-2019-0033.json");
    let m = check(&r, "crates.io", "http", "0.1.19").unwrap();
    assert_eq!(m.aliases, ["CVE-2020-25574", "CVE-2019-25008"]);
    assert_eq!(m.severity, Severity::High);
    assert_eq!(m.cvss_score, None);
    assert!(!hit(&r, "crates.io", "http", "0.1.20"));
    assert!(!hit(&r, "crates.io", "http", "0.2.0"));

    // The DSA example: a Debian release-scoped entry.
    let d = advisory("DSA-3029-1.json");
    assert!(hit(&d, "Debian:7", "nginx", "1.2.1-2.2+wheezy2"));
    assert!(!hit(&d, "Debian:7", "nginx", "1.2.1-2.2+wheezy3"));
    assert!(!hit(&d, "Debian:8", "nginx", "1.2.1-2.2+wheezy2"));
    assert_eq!(
        check(&d, "Debian:7", "nginx", "1.2.1-2.2")
            .unwrap()
            .severity,
        Severity::Unknown
    );
}
