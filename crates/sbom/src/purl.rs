//! Just enough of the package-URL syntax to read the parts an index needs: type, namespace,
//! name, version and qualifiers (`distro`, `upstream`, ...).

/// The parts of a `pkg:type/namespace/name@version?qualifiers#subpath` string, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Purl {
    pub ty: String,
    pub namespace: Option<String>,
    pub name: String,
    pub version: Option<String>,
    pub qualifiers: Vec<(String, String)>,
}

impl Purl {
    /// The first value of a qualifier; keys are compared lowercased, as the spec has them.
    pub fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a purl; `None` when it has no `pkg:` scheme, type or name. Lenient where the spec
/// is strict (unencoded `@` in an npm scope, stray slashes), since SBOM writers are.
pub(crate) fn parse(s: &str) -> Option<Purl> {
    let rest = s.trim();
    let scheme = rest.get(..4)?;
    if !scheme.eq_ignore_ascii_case("pkg:") {
        return None;
    }
    // The spec allows (and ignores) slashes after the scheme: "pkg://npm/x".
    let rest = rest.get(4..)?.trim_start_matches('/');
    let rest = rest
        .split_once('#')
        .map_or(rest, |(before, _subpath)| before);
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (ty, path) = rest.split_once('/')?;
    if ty.is_empty() {
        return None;
    }
    let path = path.trim_end_matches('/');
    // The version follows the last '@' of the last path segment, so that an unencoded npm
    // scope ("@angular/core@1.0") stays in the namespace.
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    let (path, version) = match path[last_slash..].rfind('@') {
        Some(at) => {
            let at = last_slash + at;
            (&path[..at], Some(decode(&path[at + 1..])))
        }
        None => (path, None),
    };
    let (namespace, name) = match path.rfind('/') {
        Some(i) => (Some(&path[..i]), &path[i + 1..]),
        None => (None, path),
    };
    if name.is_empty() {
        return None;
    }
    let namespace = namespace
        .map(|ns| {
            ns.split('/')
                .filter(|seg| !seg.is_empty())
                .map(decode)
                .collect::<Vec<_>>()
                .join("/")
        })
        .filter(|ns| !ns.is_empty());
    let qualifiers = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_ascii_lowercase(), decode(v)))
        })
        .collect();
    Some(Purl {
        ty: ty.to_ascii_lowercase(),
        namespace,
        name: decode(name),
        version: version.filter(|v| !v.is_empty()),
        qualifiers,
    })
}

/// Percent-decodes; a '%' not followed by two hex digits is kept as it is, and bytes that do
/// not form UTF-8 become U+FFFD, so that no input makes decoding fail.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivy_apk_purl() {
        let p = parse("pkg:apk/alpine/libssl3@3.1.4-r5?arch=x86_64&distro=3.19.1").unwrap();
        assert_eq!(p.ty, "apk");
        assert_eq!(p.namespace.as_deref(), Some("alpine"));
        assert_eq!(p.name, "libssl3");
        assert_eq!(p.version.as_deref(), Some("3.1.4-r5"));
        assert_eq!(p.qualifier("distro"), Some("3.19.1"));
        assert_eq!(p.qualifier("arch"), Some("x86_64"));
    }

    #[test]
    fn encoded_version_and_qualifiers() {
        let p =
            parse("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12.4&epoch=1")
                .unwrap();
        assert_eq!(p.version.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(p.qualifier("epoch"), Some("1"));
    }

    #[test]
    fn npm_scopes_encoded_or_not() {
        for s in [
            "pkg:npm/%40angular/core@16.0.0",
            "pkg:npm/@angular/core@16.0.0",
        ] {
            let p = parse(s).unwrap();
            assert_eq!(p.namespace.as_deref(), Some("@angular"), "{s}");
            assert_eq!(p.name, "core");
            assert_eq!(p.version.as_deref(), Some("16.0.0"));
        }
    }

    #[test]
    fn golang_namespace_with_slashes_and_subpath() {
        let p = parse("pkg:golang/github.com/pkg/errors@v0.9.1#sub/dir").unwrap();
        assert_eq!(p.namespace.as_deref(), Some("github.com/pkg"));
        assert_eq!(p.name, "errors");
        assert_eq!(p.version.as_deref(), Some("v0.9.1"));
    }

    #[test]
    fn not_purls() {
        for s in [
            "",
            "pkg:",
            "pkg:npm",
            "pkg:/x",
            "pkg:npm/",
            "http://x/y",
            "pk",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn bad_escapes_are_kept() {
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%zz%41"), "%zzA");
        assert_eq!(decode("%ff"), "\u{fffd}");
    }
}
