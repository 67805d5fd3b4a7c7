//! Free text on its way into the store: NUL replaced (PostgreSQL cannot store it, SQLite
//! can, and both must keep the same text), scan errors and reasons bounded in size (they come
//! from scanner output), and substrings escaped for `LIKE`.

use std::borrow::Cow;

use scanplane_core::finding::{self, Finding};

/// Bytes of a scan's `error` or `reason` that are kept; the rest is replaced by a marker.
pub const MAX_STORED_TEXT: usize = 4096;

/// The escape character of every `LIKE` pattern built by [`like_contains`]; the SQL says
/// `ESCAPE '\'`.
const LIKE_ESCAPE: char = '\\';

/// `text` as stored: NUL replaced by U+FFFD, and cut at a character boundary after at most
/// [`MAX_STORED_TEXT`] bytes with a marker saying how many bytes went.
pub fn stored_text(text: &str) -> Cow<'_, str> {
    let text: Cow<'_, str> = if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    };
    if text.len() <= MAX_STORED_TEXT {
        return text;
    }
    let mut cut = MAX_STORED_TEXT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    Cow::Owned(format!("{}… [truncated {dropped} bytes]", &text[..cut]))
}

/// [`stored_text`] of an optional text.
pub fn stored_opt(text: Option<&str>) -> Option<Cow<'_, str>> {
    text.map(stored_text)
}

/// Findings as stored: NUL replaced in every text field (see [`finding::sanitize`]).
/// Borrows when there is nothing to replace; otherwise also returns how many were replaced.
pub fn stored_findings(findings: &[Finding]) -> (Cow<'_, [Finding]>, usize) {
    let has_nul = |f: &Finding| {
        [
            &f.target,
            &f.rule_id,
            &f.title,
            &f.location,
            &f.detail,
            &f.fingerprint,
        ]
        .iter()
        .any(|t| t.contains('\0'))
    };
    if !findings.iter().any(has_nul) {
        return (Cow::Borrowed(findings), 0);
    }
    let mut owned = findings.to_vec();
    let replaced = owned.iter_mut().map(finding::sanitize).sum();
    (Cow::Owned(owned), replaced)
}

/// A `LIKE` pattern matching `text` anywhere, every character of it literally: `%`, `_` and
/// the escape character itself are escaped.
pub fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_as_given() {
        assert!(matches!(stored_text("fine"), Cow::Borrowed("fine")));
        let exact = "a".repeat(MAX_STORED_TEXT);
        assert_eq!(stored_text(&exact), exact);
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary_with_a_marker() {
        let long = "a".repeat(MAX_STORED_TEXT + 1);
        assert_eq!(
            stored_text(&long),
            format!("{}… [truncated 1 bytes]", "a".repeat(MAX_STORED_TEXT))
        );
        // 'é' is two bytes: 4096 bytes of 'a' then one 'é' straddling the bound.
        let straddle = format!("{}é", "a".repeat(MAX_STORED_TEXT - 1));
        assert_eq!(
            stored_text(&straddle),
            format!("{}… [truncated 2 bytes]", "a".repeat(MAX_STORED_TEXT - 1))
        );
    }

    #[test]
    fn nul_is_replaced() {
        assert_eq!(stored_text("a\0b"), "a\u{FFFD}b");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(like_contains(""), "%%");
    }
}
