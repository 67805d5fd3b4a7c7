//! parse never panics, whatever the bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = scanplane_osv::parse(&bytes);
    }

    /// Structured near-misses reach deeper than random bytes.
    #[test]
    fn parse_never_panics_on_json_like(
        id in "[A-Z0-9-]{0,12}",
        key in prop_oneof!["introduced", "fixed", "last_affected", "limit", "x"],
        value in prop_oneof![Just("\"1.0\"".to_owned()), Just("1".to_owned()), Just("null".to_owned()), "\"[^\"\\\\]{0,8}\""],
        kind in prop_oneof!["SEMVER", "ECOSYSTEM", "GIT", ""],
        cut in 0usize..400,
    ) {
        let doc = format!(
            r#"{{"id":"{id}","modified":"m","affected":[{{"package":{{"ecosystem":"npm","name":"p"}},"ranges":[{{"type":"{kind}","events":[{{"{key}":{value}}}]}}],"ecosystem_specific":{{"severity":{value}}}}}]}}"#
        );
        let _ = scanplane_osv::parse(doc.as_bytes());
        let cut = cut.min(doc.len());
        let _ = scanplane_osv::parse(&doc.as_bytes()[..cut]);
    }

    #[test]
    fn package_key_never_panics(purl in "(pkg:)?[a-z]{0,6}/[%@a-zA-Z0-9./?&=#-]{0,40}", distro in proptest::option::of("[a-z0-9.-]{0,12}")) {
        let _ = scanplane_osv::package_key(&purl, None, distro.as_deref());
    }
}
