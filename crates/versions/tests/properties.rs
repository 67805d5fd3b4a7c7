//! Property tests: `parse`/`compare` never panic on any input, and on valid inputs `compare`
//! is a total order (antisymmetric, transitive, equality consistent) for every ecosystem.

use std::cmp::Ordering;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use scanplane_versions::{compare, parse, Ecosystem, MAX_LEN};

/// Token soups that make valid, tricky versions likely for each ecosystem.
fn tokens(eco: Ecosystem) -> &'static [&'static str] {
    match eco {
        Ecosystem::Alpine => &[
            "0", "1", "2", "10", "01", ".", "a", "z", "_alpha", "_beta", "_pre", "_rc", "_p",
            "_git", "_cvs", "-r", "-r1", "3",
        ],
        Ecosystem::Debian | Ecosystem::Ubuntu => &[
            "0", "1", "2", "10", "01", ".", "~", "+", "-", "a", "Z", ":", "1:", "~~",
        ],
        Ecosystem::Rpm => &[
            "0", "1", "2", "10", "01", ".", "~", "^", "_", "-", "a", "Z", "rc", "1:", "+",
        ],
        Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go | Ecosystem::NuGet => &[
            "v", "0", "1", "2", "10", ".", "-", "+", "alpha", "Beta", "rc", "x-y", "0.", "1.",
        ],
        Ecosystem::PyPI => &[
            "0", "1", "2", "10", ".", "a", "b", "rc", "c", "post", "dev", "-", "_", "+l", "!", "r",
            "pre", "v", "+1",
        ],
        Ecosystem::Maven => &[
            "0", "1", "2", "10", ".", "-", "a", "b", "m", "rc", "cr", "sp", "ga", "final",
            "snapshot", "alpha", "x", "Z", "release",
        ],
        Ecosystem::RubyGems => &[
            "0", "1", "2", "10", ".", "-", "a", "b", "rc", "pre", "A", "z", "1.", "0.",
        ],
    }
}

fn soup(eco: Ecosystem) -> BoxedStrategy<String> {
    let free =
        prop::collection::vec(prop::sample::select(tokens(eco)), 1..8).prop_map(|v| v.concat());
    match eco {
        // Free soup rarely hits the strict SemVer grammars; build most of them by shape.
        Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go | Ecosystem::NuGet => {
            let num = prop::sample::select(vec!["0", "1", "2", "10", "3", "99999999999999999999"]);
            let parts = match eco {
                Ecosystem::Npm | Ecosystem::CratesIo => 3..4,
                Ecosystem::Go => 1..4,
                _ => 1..5,
            };
            let ident =
                prop::sample::select(vec!["alpha", "Beta", "rc", "0", "1", "11", "x-y", "-"]);
            let prefix = if eco == Ecosystem::Go { "v" } else { "" };
            (
                prop::collection::vec(num, parts),
                prop::collection::vec(ident, 0..4),
                prop::option::of(Just("+b.1")),
            )
                .prop_map(move |(nums, pre, build)| {
                    let mut s = format!("{prefix}{}", nums.join("."));
                    if !pre.is_empty() {
                        s = format!("{s}-{}", pre.join("."));
                    }
                    s + build.unwrap_or("")
                })
                .boxed()
                .prop_union(free.boxed())
                .boxed()
        }
        Ecosystem::PyPI => {
            let part = |v: Vec<&'static str>| prop::sample::select(v);
            (
                part(vec!["", "", "1!", "v", "V"]),
                prop::collection::vec(part(vec!["0", "1", "2", "10"]), 1..4),
                part(vec![
                    "", "", "a", "b1", "rc2", ".c", "-alpha", "_pre.1", "preview",
                ]),
                part(vec!["", "", ".post1", "-1", "post", "_r2", "-rev"]),
                part(vec!["", "", ".dev", "dev3", "-dev_1"]),
                part(vec!["", "", "+a", "+1.b", "+ubuntu-1", "+0.0"]),
            )
                .prop_map(|(e, rel, pre, post, dev, local)| {
                    format!("{e}{}{pre}{post}{dev}{local}", rel.join("."))
                })
                .boxed()
                .prop_union(free.boxed())
                .boxed()
        }
        _ => free.boxed(),
    }
}

fn ecosystem() -> impl Strategy<Value = Ecosystem> {
    prop::sample::select(Ecosystem::ALL.to_vec())
}

fn pool() -> impl Strategy<Value = (Ecosystem, Vec<String>)> {
    ecosystem().prop_flat_map(|eco| (Just(eco), prop::collection::vec(soup(eco), 12)))
}

fn le(o: Ordering) -> bool {
    o != Ordering::Greater
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Arbitrary Unicode (and overlong) strings: no panic, and a parsed version equals itself.
    #[test]
    fn never_panics(eco in ecosystem(), a in ".{0,300}", b in "\\PC{0,40}") {
        let _ = compare(eco, &a, &b);
        if let Ok(v) = parse(eco, &b) {
            prop_assert_eq!(v.cmp(&v), Ordering::Equal);
        }
        if a.len() > MAX_LEN {
            prop_assert!(parse(eco, &a).is_err());
        }
    }

    /// Fuzz-style: each ecosystem's token soup, cut at random byte positions, with random
    /// bytes spliced in; nothing may panic.
    #[test]
    fn fuzz_token_soup(
        eco in ecosystem(),
        s in any::<u64>(),
        junk in "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,3}",
        cut in 0usize..40,
    ) {
        let toks = tokens(eco);
        let mut x = String::new();
        let mut state = s;
        for _ in 0..(s % 9) {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x.push_str(toks[(state >> 33) as usize % toks.len()]);
        }
        let at = cut.min(x.len());
        x.insert_str(at, &junk);
        let _ = compare(eco, &x, &x);
        let _ = compare(eco, &x, "1.0");
    }

    /// On valid inputs, `compare` is a total order: every triple of the valid versions in a
    /// random pool of twelve is checked.
    #[test]
    fn total_order((eco, pool) in pool()) {
        let valid: Vec<_> = pool.iter().filter_map(|s| parse(eco, s).ok()).collect();
        for va in &valid {
            for vb in &valid {
                let (ab, ba) = (va.cmp(vb), vb.cmp(va));
                prop_assert_eq!(ab, ba.reverse(), "antisymmetry {} {:?} {:?}", eco, va, vb);
                prop_assert_eq!(va == vb, ab == Ordering::Equal);
                for vc in &valid {
                    let (bc, ac) = (vb.cmp(vc), va.cmp(vc));
                    // Maven's own ComparableVersion is not transitive (see
                    // `maven_is_not_transitive`), and this crate reproduces Maven exactly.
                    if le(ab) && le(bc) && eco != Ecosystem::Maven {
                        prop_assert!(le(ac), "transitivity {} {:?} <= {:?} <= {:?}", eco, va, vb, vc);
                    }
                    if ab == Ordering::Equal {
                        prop_assert_eq!(ac, bc, "equality {} {:?} = {:?} vs {:?}", eco, va, vb, vc);
                    }
                }
            }
        }
    }
}

/// Keeps `total_order` meaningful: at least a tenth of generated versions must be valid.
#[test]
fn generators_produce_valid_versions() {
    let mut runner = TestRunner::deterministic();
    for eco in Ecosystem::ALL {
        let strategy = soup(eco);
        let valid = (0..500)
            .filter_map(|_| strategy.new_tree(&mut runner).ok())
            .filter(|tree| parse(eco, &tree.current()).is_ok())
            .count();
        assert!(
            valid >= 50,
            "{eco}: only {valid}/500 generated versions are valid"
        );
    }
}

/// Maven itself orders these three in a cycle (checked with Maven 3.8.7's
/// `ComparableVersion 1-sp 1-0-alpha1 1 1-sp`: `1-sp < 1-0-alpha1`, `1-0-alpha1 < 1`,
/// `1 < 1-sp`); matching Maven means reproducing it.
#[test]
fn maven_is_not_transitive() {
    let c = |a, b| compare(Ecosystem::Maven, a, b).ok();
    assert_eq!(c("1-sp", "1-0-alpha1"), Some(Ordering::Less));
    assert_eq!(c("1-0-alpha1", "1"), Some(Ordering::Less));
    assert_eq!(c("1", "1-sp"), Some(Ordering::Less));
}
