//! CVSS base scores against FIRST's published examples, and the rating bands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scanplane_osv::{cvss_base_score, ScoreBand, Severity};

#[test]
fn v31_first_specification_examples() {
    // FIRST CVSS v3.1 Examples document (https://www.first.org/cvss/v3.1/examples).
    for (vector, want) in [
        // CVE-2013-1937 phpMyAdmin reflected XSS
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        // CVE-2013-0375 MySQL stored SQL injection
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
        // CVE-2014-3566 SSLv3 POODLE
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1),
        // CVE-2014-0160 Heartbleed
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
        // CVE-2014-6271 Shellshock
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        // CVE-2012-1516 VMware guest-to-host escape
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
        // CVE-2016-5729 Lenovo BIOS (physical)
        ("CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H", 8.2),
        // No impact
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ] {
        assert_eq!(cvss_base_score(vector), Some(want), "{vector}");
    }
}

#[test]
fn v30_v2_and_v4() {
    assert_eq!(
        cvss_base_score("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        Some(9.8)
    );
    // Temporal metrics do not change the base score.
    assert_eq!(
        cvss_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:U"),
        Some(9.8)
    );
    // CVSS v2 (no prefix, as OSV's CVSS_V2 entries are written).
    assert_eq!(cvss_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P"), Some(7.5));
    assert_eq!(cvss_base_score("AV:N/AC:M/Au:N/C:N/I:P/A:N"), Some(4.3));
    assert_eq!(cvss_base_score("AV:N/AC:L/Au:N/C:C/I:C/A:C"), Some(10.0));
    // CVSS v4.0 (FIRST calculator values).
    assert_eq!(
        cvss_base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
        Some(9.3)
    );
    assert_eq!(
        cvss_base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N"),
        Some(0.0)
    );
}

#[test]
fn malformed_vectors() {
    for bad in [
        "",
        "garbage",
        "CVSS:3.1/",
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L",
        "CVSS:9.9/AV:N",
    ] {
        assert_eq!(cvss_base_score(bad), None, "{bad:?}");
    }
}

#[test]
fn bands() {
    for (score, band) in [
        (0.0, ScoreBand::None),
        (0.1, ScoreBand::Low),
        (3.9, ScoreBand::Low),
        (4.0, ScoreBand::Medium),
        (6.9, ScoreBand::Medium),
        (7.0, ScoreBand::High),
        (8.9, ScoreBand::High),
        (9.0, ScoreBand::Critical),
        (10.0, ScoreBand::Critical),
    ] {
        assert_eq!(ScoreBand::from_score(score), band, "{score}");
    }
    assert_eq!(Severity::from(ScoreBand::None), Severity::Low);
    assert_eq!(Severity::from(ScoreBand::Critical), Severity::Critical);
    for (label, want) in [
        ("CRITICAL", Severity::Critical),
        ("HIGH", Severity::High),
        ("important", Severity::High),
        ("MODERATE", Severity::Medium),
        ("medium", Severity::Medium),
        ("Low", Severity::Low),
        ("negligible", Severity::Low),
        ("unimportant", Severity::Low),
        ("not yet assigned", Severity::Unknown),
    ] {
        assert_eq!(Severity::from_label(label), want, "{label}");
    }
    assert_eq!(Severity::High.as_str(), "high");
    assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Unknown);
}

#[test]
fn incomplete_vectors_have_no_score() {
    for partial in [
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
        "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N",
        "AV:N/AC:L/Au:N/C:P/I:P",
        "CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    ] {
        assert_eq!(cvss_base_score(partial), None, "{partial}");
    }
}
