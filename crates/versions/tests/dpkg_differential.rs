//! Differential test against the real `dpkg --compare-versions` (always present on Debian):
//! random dpkg-ish versions must compare, and be accepted or refused, exactly as dpkg does.

use std::cmp::Ordering;
use std::process::Command;

use proptest::prelude::*;
use scanplane_versions::{compare, Ecosystem};

/// dpkg's verdict: `Some(ordering)`, or `None` when dpkg refuses a version with an error.
fn dpkg(a: &str, b: &str) -> Option<Ordering> {
    let run = |op: &str| {
        Command::new("dpkg")
            // `--` ends dpkg's options, so versions starting with `-` are not read as options.
            .args(["--compare-versions", "--", a, op, b])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run dpkg ({e}): install it with `sudo apt-get install -y dpkg`")
            })
    };
    let lt = run("lt");
    match lt.status.code() {
        Some(0) => Some(Ordering::Less),
        Some(1) => {
            let eq = run("eq");
            Some(if eq.status.success() {
                Ordering::Equal
            } else {
                Ordering::Greater
            })
        }
        _ => None,
    }
}

fn dpkg_version() -> impl Strategy<Value = String> {
    let toks = [
        "0", "1", "2", "10", "01", ".", "~", "+", "-", "a", "Z", ":", "1:", "~~", "b", "00",
    ];
    prop::collection::vec(prop::sample::select(toks.to_vec()), 1..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn agrees_with_dpkg(a in dpkg_version(), b in dpkg_version()) {
        let ours = compare(Ecosystem::Debian, &a, &b).ok();
        prop_assert_eq!(ours, dpkg(&a, &b), "{:?} vs {:?}", a, b);
    }
}
