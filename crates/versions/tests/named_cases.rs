//! The nasty cases the crate exists for, spelled out per ecosystem so a regression reads
//! plainly. Each one is also in (or follows from) the oracle data in tests/data: dpkg, rpm,
//! Maven's ComparableVersion and packaging were run on these exact pairs; apk's follow from
//! apk-tools' version.c and test/version.data.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use scanplane_versions::{compare, Ecosystem};

fn chain(eco: Ecosystem, steps: &[(&str, Ordering, &str)]) {
    for (a, want, b) in steps {
        assert_eq!(compare(eco, a, b), Ok(*want), "{eco}: {a} vs {b}");
        assert_eq!(compare(eco, b, a), Ok(want.reverse()), "{eco}: {b} vs {a}");
    }
}

#[test]
fn alpine() {
    chain(
        Ecosystem::Alpine,
        &[
            ("1.0_alpha", Less, "1.0_beta"),
            ("1.0_beta", Less, "1.0_pre"),
            ("1.0_pre", Less, "1.0_rc"),
            ("1.0_rc1", Less, "1.0"),
            ("1.0", Less, "1.0_cvs"),
            ("1.0_cvs", Less, "1.0_svn"),
            ("1.0_svn", Less, "1.0_git"),
            ("1.0_git", Less, "1.0_hg"),
            ("1.0_hg", Less, "1.0_p1"),
            ("1.0", Less, "1.0-r1"),
            ("1.0a", Greater, "1.0"),
            ("1.0a", Less, "1.0.1"),
            ("4.5_p1", Less, "4.5_p1-r1"),
            ("0.1.0_alpha_pre2", Less, "0.1.0_alpha"),
        ],
    );
}

#[test]
fn debian() {
    chain(
        Ecosystem::Debian,
        &[
            ("1.0~rc1", Less, "1.0"),
            ("1.0~~", Less, "1.0~"),
            ("1.0~", Less, "1.0"),
            ("1.0", Less, "1.0a"),
            ("1.0a", Less, "1.0+"),
            ("1:0.1", Greater, "2.0"),
            ("0:1.0", Equal, "1.0"),
            ("1.0", Equal, "1.0-0"),
            ("1.10", Greater, "1.9"),
            ("1.0-1~bpo11+1", Less, "1.0-1"),
        ],
    );
}

#[test]
fn rpm() {
    chain(
        Ecosystem::Rpm,
        &[
            ("1.0~rc1", Less, "1.0"),
            ("1.0", Less, "1.0^git1"),
            ("1.0^git1~pre", Less, "1.0^git1"),
            ("1.0^git1", Less, "1.0.1"),
            ("1.0a", Less, "1.0.1"),
            ("1.01", Equal, "1.1"),
            ("1:1.0-1", Greater, "2.0-1"),
            ("1.0-1.el9", Less, "1.0-10.el9"),
        ],
    );
}

#[test]
fn pypi() {
    chain(
        Ecosystem::PyPI,
        &[
            ("1.0.dev0", Less, "1.0a1"),
            ("1.0a1", Less, "1.0b1"),
            ("1.0b1", Less, "1.0rc1"),
            ("1.0RC1", Equal, "1.0rc1"),
            ("1.0c1", Equal, "1.0rc1"),
            ("1.0rc1", Less, "1.0"),
            ("1.0", Equal, "1.0.0"),
            ("v1.0", Equal, "1.0"),
            ("1.0", Less, "1.0+local"),
            ("1.0+local", Less, "1.0.post1"),
            ("1.0-post1", Equal, "1.0.post1"),
            ("1.0-1", Equal, "1.0.post1"),
            ("1!0.1", Greater, "2.0"),
            ("1.0+abc", Less, "1.0+1"),
        ],
    );
}

#[test]
fn semver_npm_crates() {
    for eco in [Ecosystem::Npm, Ecosystem::CratesIo] {
        chain(
            eco,
            &[
                ("1.0.0-alpha", Less, "1.0.0-alpha.1"),
                ("1.0.0-alpha.1", Less, "1.0.0-alpha.beta"),
                ("1.0.0-beta.2", Less, "1.0.0-beta.11"),
                ("1.0.0-rc.1", Less, "1.0.0"),
                ("1.0.0+a", Equal, "1.0.0+b"),
            ],
        );
    }
}

#[test]
fn go() {
    chain(
        Ecosystem::Go,
        &[
            ("v0.0.0-20210101000000-abcdef123456", Less, "v0.0.0"),
            ("v1.2.4-0.20210101000000-abcdef123456", Greater, "v1.2.3"),
            ("v1.2.4-0.20210101000000-abcdef123456", Less, "v1.2.4"),
            ("v2.0.0+incompatible", Equal, "v2.0.0"),
            ("v1", Equal, "v1.0.0"),
        ],
    );
    assert!(compare(Ecosystem::Go, "1.0.0", "v1.0.0").is_err());
}

#[test]
fn maven() {
    chain(
        Ecosystem::Maven,
        &[
            ("1-alpha", Less, "1-beta"),
            ("1-beta", Less, "1-milestone"),
            ("1-milestone", Less, "1-rc"),
            ("1-rc", Equal, "1-cr"),
            ("1-cr", Less, "1-snapshot"),
            ("1-snapshot", Less, "1"),
            ("1", Equal, "1-ga"),
            ("1-ga", Equal, "1-final"),
            ("1-final", Equal, "1-release"),
            ("1-release", Less, "1-sp"),
            ("1-sp", Less, "1-abc"),
            ("1-a1", Equal, "1-alpha-1"),
            ("1.0.0", Equal, "1"),
            ("1.0-SNAPSHOT", Less, "1.0"),
        ],
    );
}

#[test]
fn rubygems() {
    chain(
        Ecosystem::RubyGems,
        &[
            ("1.0.a", Less, "1.0"),
            ("1.0.a", Equal, "1.0a"),
            ("1.0.rc1", Less, "1.0"),
            ("1.0", Equal, "1"),
            ("1.0-1", Less, "1.0"),
        ],
    );
}

#[test]
fn nuget() {
    chain(
        Ecosystem::NuGet,
        &[
            ("1.0.0-BETA", Equal, "1.0.0-beta"),
            ("1.0", Equal, "1.0.0.0"),
            ("1.0.0-beta", Less, "1.0.0"),
            ("1.0.0+meta", Equal, "1.0.0"),
            ("1.0.0-alpha.2", Less, "1.0.0-alpha.10"),
        ],
    );
}
