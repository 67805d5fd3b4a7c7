//! purl → OSV package keys for every supported ecosystem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scanplane_osv::{normalize_pypi_name, package_key};

fn key(purl: &str, source: Option<&str>, distro: Option<&str>) -> Option<(String, String)> {
    package_key(purl, source, distro)
}

fn k(eco: &str, name: &str) -> Option<(String, String)> {
    Some((eco.to_owned(), name.to_owned()))
}

#[test]
fn alpine_uses_source_package_and_minor_release() {
    assert_eq!(
        key(
            "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1",
            Some("openssl"),
            None
        ),
        k("Alpine:v3.19", "openssl")
    );
    // The distro argument (as scanplane-sbom reports it) wins over the qualifier.
    assert_eq!(
        key(
            "pkg:apk/alpine/libcrypto3@3.1.4-r5?distro=3.18.0",
            Some("openssl"),
            Some("alpine-3.19.1")
        ),
        k("Alpine:v3.19", "openssl")
    );
    // No source: the binary name.
    assert_eq!(
        key(
            "pkg:apk/alpine/busybox@1.36.1-r15?distro=3.19.1",
            None,
            None
        ),
        k("Alpine:v3.19", "busybox")
    );
    // No release anywhere: no key, since Alpine advisories are per release.
    assert_eq!(key("pkg:apk/alpine/busybox@1.36.1-r15", None, None), None);
    assert_eq!(
        key("pkg:apk/wolfi/glibc@2.39-r1", None, None),
        k("Wolfi", "glibc")
    );
}

#[test]
fn debian_uses_major_release() {
    assert_eq!(
        key(
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12.4",
            Some("openssl"),
            None
        ),
        k("Debian:12", "openssl")
    );
    assert_eq!(
        key(
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64",
            Some("openssl"),
            Some("debian-12.4")
        ),
        k("Debian:12", "openssl")
    );
    // The purl spec's `upstream` qualifier is the source package when no source is given.
    assert_eq!(
        key(
            "pkg:deb/debian/libssl3@3.0.11?distro=debian-11&upstream=openssl",
            None,
            None
        ),
        k("Debian:11", "openssl")
    );
    assert_eq!(key("pkg:deb/debian/libssl3@3.0.11", None, None), None);
}

#[test]
fn ubuntu_lts_and_interim_releases() {
    for lts in ["14.04", "16.04", "18.04", "20.04", "22.04", "24.04"] {
        assert_eq!(
            key(
                &format!("pkg:deb/ubuntu/libssl3@3.0.2?distro=ubuntu-{lts}"),
                Some("openssl"),
                None
            ),
            k(&format!("Ubuntu:{lts}:LTS"), "openssl"),
            "{lts}"
        );
    }
    assert_eq!(
        key(
            "pkg:deb/ubuntu/libssl3@3.0.10?distro=ubuntu-23.10",
            Some("openssl"),
            None
        ),
        k("Ubuntu:23.10", "openssl")
    );
    assert_eq!(
        key(
            "pkg:deb/ubuntu/libssl3@3.0.2?distro=ubuntu-22.04.3",
            Some("openssl"),
            None
        ),
        k("Ubuntu:22.04:LTS", "openssl")
    );
}

#[test]
fn rpm_distributions() {
    assert_eq!(
        key(
            "pkg:rpm/redhat/openssl-libs@3.0.7-25.el9?distro=redhat-9.3",
            Some("openssl"),
            None
        ),
        k("Red Hat", "openssl")
    );
    assert_eq!(
        key(
            "pkg:rpm/rocky/openssl-libs@3.0.7-25.el9?distro=rocky-9.3",
            Some("openssl"),
            None
        ),
        k("Rocky Linux:9", "openssl")
    );
    assert_eq!(
        key(
            "pkg:rpm/almalinux/openssl-libs@3.0.7-25.el9?distro=almalinux-9.3",
            Some("openssl"),
            None
        ),
        k("AlmaLinux:9", "openssl")
    );
    assert_eq!(
        key("pkg:rpm/rocky/bash@5.1.8-6.el9", None, None),
        k("Rocky Linux", "bash")
    );
    assert_eq!(key("pkg:rpm/fedora/bash@5.2", None, None), None);
}

#[test]
fn language_ecosystems() {
    assert_eq!(
        key("pkg:npm/%40scope/name@1.2.3", None, None),
        k("npm", "@scope/name")
    );
    assert_eq!(
        key("pkg:npm/@scope/name@1.2.3", None, None),
        k("npm", "@scope/name")
    );
    assert_eq!(
        key("pkg:npm/lodash@4.17.21", None, None),
        k("npm", "lodash")
    );
    assert_eq!(
        key("pkg:pypi/Foo_Bar@1.0", None, None),
        k("PyPI", "foo-bar")
    );
    assert_eq!(
        key("pkg:pypi/zope.interface@6.0", None, None),
        k("PyPI", "zope-interface")
    );
    assert_eq!(
        key("pkg:cargo/serde@1.0.0", None, None),
        k("crates.io", "serde")
    );
    assert_eq!(
        key("pkg:golang/github.com/a/b@v1.2.3", None, None),
        k("Go", "github.com/a/b")
    );
    assert_eq!(
        key("pkg:golang/golang.org/x/net@v0.17.0#html", None, None),
        k("Go", "golang.org/x/net")
    );
    assert_eq!(
        key(
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar",
            None,
            None
        ),
        k("Maven", "org.apache.logging.log4j:log4j-core")
    );
    assert_eq!(
        key("pkg:gem/rails@7.0.0", None, None),
        k("RubyGems", "rails")
    );
    assert_eq!(
        key("pkg:nuget/Newtonsoft.Json@13.0.1", None, None),
        k("NuGet", "Newtonsoft.Json")
    );
    assert_eq!(
        key("pkg:composer/symfony/http-kernel@6.0.0", None, None),
        k("Packagist", "symfony/http-kernel")
    );
    // Language packages are not renamed to a source package.
    assert_eq!(
        key("pkg:npm/lodash@4.17.21", Some("other"), None),
        k("npm", "lodash")
    );
}

#[test]
fn malformed_purls() {
    for bad in [
        "",
        "npm/lodash",
        "pkg:",
        "pkg:npm",
        "pkg:npm/",
        "pkg:npm/%zz@1",
        "pkg:npm/%ff@1",
        "pkg:unknown/x@1",
        "http://example.com",
    ] {
        assert_eq!(key(bad, None, None), None, "{bad:?}");
    }
    // Scheme and type are case-insensitive.
    assert_eq!(key("PKG:NPM/lodash@1", None, None), k("npm", "lodash"));
}

#[test]
fn pep503() {
    assert_eq!(
        normalize_pypi_name("Foo__Bar...baz-_-Qux"),
        "foo-bar-baz-qux"
    );
    assert_eq!(normalize_pypi_name("requests"), "requests");
}
