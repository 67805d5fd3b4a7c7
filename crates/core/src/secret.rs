//! Masking of secrets in finding text. A scanner that finds a leaked secret reports where
//! it is and what kind it is; the secret itself must not be copied into the database, the
//! CSV or the SARIF that many more people read than the place it leaked from. Like trivy,
//! the value is replaced by asterisks and the name that says what it was is kept.

use std::borrow::Cow;

/// What a masked value is replaced by.
pub const MASK: &str = "*****";

/// Parts of a key name that say its value is a credential.
const SENSITIVE_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "privatekey",
    "private_key",
    "private-key",
    "credential",
    "authorization",
    "auth_key",
    "session",
    "cookie",
];

/// HTTP authentication schemes, followed by the credential.
const AUTH_SCHEMES: &[&str] = &["Bearer", "Basic", "Token", "Digest"];

/// Prefixes of password hashes (htpasswd, crypt): a hash is as good as the password to an
/// offline attacker.
const HASH_PREFIXES: &[&str] = &[
    "$apr1$", "$2y$", "$2a$", "$2b$", "$6$", "$5$", "$1$", "{SHA}",
];

/// Whether a key name (as in `KEY=value`, `key: value`, `"key": "value"`) names a secret.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SENSITIVE_KEY_PARTS.iter().any(|p| k.contains(p))
}

/// `text` with every secret it recognizes masked: values of sensitive keys, passwords in
/// URLs (`scheme://user:password@`), AWS access key ids, bearer tokens, password hashes and
/// PEM private key bodies. Borrowed when there was nothing to mask. Masking is idempotent.
pub fn mask(text: &str) -> Cow<'_, str> {
    let mut out = mask_private_keys(text);
    for pass in [mask_assignments, mask_url_passwords, mask_tokens] {
        if let Cow::Owned(s) = pass(&out) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// Masks the value of every assignment in `text`, whatever its key: for files made of
/// nothing but configuration (`.env`), where any value may be a credential.
pub fn mask_all_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match body.split_once(['=', ':']) {
            Some((key, value)) if !key.trim_start().starts_with('#') && !value.is_empty() => {
                out.push_str(&body[..key.len() + 1]);
                out.push_str(MASK);
            }
            _ => out.push_str(body),
        }
        out.push_str(end);
    }
    out
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Masks values of sensitive keys: `KEY=value`, `key: value`, `"key": "value"`.
fn mask_assignments(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c != b'=' && c != b':' {
            i += 1;
            continue;
        }
        // The key ends just before the separator, after an optional closing quote.
        let mut key_end = i;
        if key_end > 0 && matches!(bytes[key_end - 1], b'"' | b'\'') {
            key_end -= 1;
        }
        let key_start = text[..key_end]
            .char_indices()
            .rev()
            .take_while(|(_, ch)| is_key_char(*ch))
            .last()
            .map_or(key_end, |(p, _)| p);
        // `://` is a URL, not an assignment.
        if c == b':' && text[i..].starts_with("://") {
            i += 3;
            continue;
        }
        if key_start == key_end || !is_sensitive_key(&text[key_start..key_end]) {
            i += 1;
            continue;
        }
        let mut v = i + 1;
        while v < bytes.len() && bytes[v] == b' ' {
            v += 1;
        }
        let quote = (v < bytes.len() && matches!(bytes[v], b'"' | b'\'')).then(|| bytes[v]);
        if quote.is_some() {
            v += 1;
        }
        let value_end = match quote {
            Some(q) => text[v..].find(q as char).map_or(text.len(), |p| v + p),
            None => text[v..]
                .find(|ch: char| ch.is_whitespace() || matches!(ch, ',' | ';' | '&' | '}' | ']'))
                .map_or(text.len(), |p| v + p),
        };
        // `Authorization: Bearer abc`: the credential is the word after the scheme.
        let value_end = match &text[v..value_end] {
            scheme
                if quote.is_none()
                    && AUTH_SCHEMES.iter().any(|a| scheme.eq_ignore_ascii_case(a)) =>
            {
                let rest = value_end + text[value_end..].len()
                    - text[value_end..].trim_start_matches(' ').len();
                text[rest..]
                    .find(|ch: char| {
                        ch.is_whitespace() || matches!(ch, ',' | ';' | '&' | '}' | ']')
                    })
                    .map_or(text.len(), |p| rest + p)
            }
            _ => value_end,
        };
        let value = &text[v..value_end];
        if !value.is_empty() && !value.starts_with(MASK) {
            out.push_str(&text[copied..v]);
            out.push_str(MASK);
            copied = value_end;
        }
        i = value_end.max(i + 1);
    }
    finish(text, out, copied)
}

/// Masks the password of `scheme://user:password@host`.
fn mask_url_passwords(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(p) = text[from..].find("://") {
        let auth_start = from + p + 3;
        let auth_len = text[auth_start..]
            .find(|ch: char| ch.is_whitespace() || matches!(ch, '/' | '?' | '#' | '"' | '\''))
            .unwrap_or(text.len() - auth_start);
        let authority = &text[auth_start..auth_start + auth_len];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                let pw_start = auth_start + colon + 1;
                let pw_end = auth_start + at;
                if &text[pw_start..pw_end] != MASK && pw_end > pw_start {
                    out.push_str(&text[copied..pw_start]);
                    out.push_str(MASK);
                    copied = pw_end;
                }
            }
        }
        // Step over at least one character, whole, so the search always moves on.
        from = auth_start
            + if auth_len == 0 {
                text[auth_start..].chars().next().map_or(0, char::len_utf8)
            } else {
                auth_len
            };
        if from >= text.len() {
            break;
        }
    }
    finish(text, out, copied)
}

/// Masks whitespace-separated tokens that are secrets by their shape: AWS access key ids,
/// the token after `Bearer`, password hashes.
fn mask_tokens(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut after_bearer = false;
    let mut pos = 0;
    for word in text.split_inclusive(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',')) {
        let start = pos;
        pos += word.len();
        let token =
            word.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ','));
        if token.is_empty() {
            continue;
        }
        // A hash may follow `user:` in an htpasswd line.
        let whole_hash = HASH_PREFIXES.iter().any(|h| token.starts_with(h));
        let (skip, candidate) = match token.find(':') {
            Some(c)
                if !whole_hash && HASH_PREFIXES.iter().any(|h| token[c + 1..].starts_with(h)) =>
            {
                (c + 1, &token[c + 1..])
            }
            _ => (0, token),
        };
        let bearer_credential = after_bearer && !token.starts_with(MASK) && token.len() >= 8;
        let skip = if bearer_credential { 0 } else { skip };
        let secret = bearer_credential
            || is_aws_key_id(candidate)
            || HASH_PREFIXES
                .iter()
                .any(|h| candidate.starts_with(h) && candidate.len() > h.len());
        after_bearer = token == "Bearer" || token == "bearer";
        if secret {
            out.push_str(&text[copied..start + skip]);
            out.push_str(MASK);
            copied = start + token.len();
        }
    }
    finish(text, out, copied)
}

fn is_aws_key_id(t: &str) -> bool {
    t.len() == 20
        && ["AKIA", "ASIA", "AGPA", "AIDA", "AROA"]
            .iter()
            .any(|p| t.starts_with(p))
        && t.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Masks the body of every PEM private key block.
fn mask_private_keys(text: &str) -> Cow<'_, str> {
    const BEGIN: &str = "-----BEGIN ";
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(p) = text[from..].find(BEGIN) {
        let start = from + p;
        let Some(header_len) = text[start + BEGIN.len()..].find("-----") else {
            break;
        };
        let label = &text[start + BEGIN.len()..start + BEGIN.len() + header_len];
        let body_start = start + BEGIN.len() + header_len + 5;
        if !label.contains("PRIVATE KEY") {
            from = body_start;
            continue;
        }
        let body_end = text[body_start..]
            .find("-----END")
            .map_or(text.len(), |e| body_start + e);
        if text[body_start..body_end].trim() != MASK {
            out.push_str(&text[copied..body_start]);
            out.push_str(MASK);
            copied = body_end;
        }
        from = body_end.max(body_start);
        if from >= text.len() {
            break;
        }
    }
    finish(text, out, copied)
}

fn finish(text: &str, mut out: String, copied: usize) -> Cow<'_, str> {
    if copied == 0 && out.is_empty() {
        Cow::Borrowed(text)
    } else {
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_sensitive_keys_are_masked() {
        assert_eq!(
            mask("DB_PASSWORD=hunter2\nAPI_KEY=abc\nHOST=db"),
            "DB_PASSWORD=*****\nAPI_KEY=*****\nHOST=db"
        );
        assert_eq!(
            mask(r#"{"password": "s3cr3t", "user": "bob"}"#),
            r#"{"password": "*****", "user": "bob"}"#
        );
        assert_eq!(mask("client_secret: abc def"), "client_secret: ***** def");
        assert_eq!(mask("?token=xyz&page=2"), "?token=*****&page=2");
    }

    #[test]
    fn shaped_secrets_are_masked() {
        assert_eq!(mask("key AKIAIOSFODNN7EXAMPLE found"), "key ***** found");
        assert_eq!(
            mask("Authorization: Bearer eyJhbGciOi.x.y"),
            "Authorization: *****"
        );
        assert_eq!(
            mask("sent Bearer abc.def.ghi here"),
            "sent Bearer ***** here"
        );
        assert_eq!(mask("admin:$apr1$abc$def\n"), "admin:*****\n");
        assert_eq!(
            mask("url = https://bob:ghp_abc@github.com/x.git"),
            "url = https://bob:*****@github.com/x.git"
        );
        assert_eq!(
            mask("-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----"),
            "-----BEGIN RSA PRIVATE KEY-----*****-----END RSA PRIVATE KEY-----"
        );
    }

    #[test]
    fn ordinary_text_is_kept() {
        for t in [
            "HTTP 200, body starts with: <html>",
            "open port tcp/22 (ssh): SSH-2.0-OpenSSH_9.2",
            "https://example.com:8443/path?q=1",
            "CVE-2023-1234 in openssl@3.0.1: fixed in 3.0.2",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "",
        ] {
            assert!(matches!(mask(t), Cow::Borrowed(_)), "{t:?} -> {}", mask(t));
        }
    }

    #[test]
    fn masking_is_idempotent() {
        for t in [
            "DB_PASSWORD=hunter2 https://a:b@h AKIAIOSFODNN7EXAMPLE Bearer x admin:$2y$10$abc",
            "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----",
        ] {
            let once = mask(t).into_owned();
            assert_eq!(mask(&once), once);
            assert!(
                !once.contains("hunter2") && !once.contains("abc\n"),
                "{once}"
            );
        }
    }

    #[test]
    fn every_value_of_a_config_file() {
        assert_eq!(
            mask_all_values("# db\nHOST=db.internal\nexport PORT=5432\n\nEMPTY=\n"),
            "# db\nHOST=*****\nexport PORT=*****\n\nEMPTY=\n"
        );
    }

    /// Text made of the pieces the masker looks for, in any order.
    fn secretish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pieces = prop::sample::select(vec![
            "password",
            "API_KEY",
            "=",
            ":",
            " ",
            "\"",
            "'",
            "://",
            "@",
            "/",
            "Bearer ",
            "Bearer",
            "AKIAIOSFODNN7EXAMPLE",
            "$apr1$",
            "-----BEGIN PRIVATE KEY-----",
            "-----END",
            "-----",
            "\n",
            "x",
            "hunter2",
            "é",
            "\u{3000}",
            "*****",
            ",",
            "&",
            "}",
        ]);
        (prop::collection::vec(pieces, 0..40), "\\PC{0,20}")
            .prop_map(|(v, tail)| v.concat() + &tail)
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in secretish()) {
            let once = mask(&s).into_owned();
            proptest::prop_assert_eq!(mask(&once).into_owned(), once);
        }
    }
}
