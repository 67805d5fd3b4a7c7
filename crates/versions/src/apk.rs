//! Alpine apk versions: a port of apk-tools' `src/version.c` as rewritten for apk-tools 2.12
//! and later (`token_first`, `token_next`, `token_cmp`, `apk_version_validate`,
//! `apk_version_compare_blob`), the comparison current Alpine releases use.
//!
//! The grammar is `digit{.digit}...{letter}{_suffix{#}}...{-r#}`. Tokens are compared pairwise:
//! numbers numerically, except that a dot-separated number with a leading zero on either side
//! compares as a string (as Gentoo does: 1.01 < 1.1); letters and suffixes by rank
//! (`_alpha` < `_beta` < `_pre` < `_rc` < none < `_cvs` < `_svn` < `_git` < `_hg` < `_p`). When the
//! token kinds differ, the version that goes on is newer unless it goes on with a pre-release
//! suffix.
//!
//! Older apk-tools (before the rewrite) read a zero after a dot differently, which made
//! `1.0_rc1` newer than `1.0`; that behaviour is not reproduced. As in the ported source, a
//! digit directly after a letter (`1.0a1`) is invalid, and digit runs have no length limit
//! (compared exactly rather than as apk's `uint64_t`).

use std::cmp::Ordering;

use crate::num::cmp_digits;

// Token kinds in apk's order: the order bounds which token may follow which, and decides
// the comparison when two versions diverge in kind.
const INITIAL_DIGIT: u8 = 0;
const DIGIT: u8 = 1;
const LETTER: u8 = 2;
const SUFFIX: u8 = 3;
const SUFFIX_NO: u8 = 4;
const REVISION_NO: u8 = 5;
const END: u8 = 6;
const INVALID: u8 = 7;

// Suffix ranks; `NONE` (a bare `_`) is the pivot between pre- and post-release suffixes.
const SUFFIX_INVALID: u8 = 0;
const SUFFIX_NONE: u8 = 5;
const SUFFIXES: [&str; 11] = [
    "", "alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p",
];

fn suffix_value(s: &[u8]) -> u8 {
    if s.is_empty() {
        return SUFFIX_NONE;
    }
    let val: u8 = match s[0] {
        b'a' => 1,
        b'b' => 2,
        b'c' => 6,
        b'g' => 8,
        b'h' => 9,
        b'p' if s.len() > 1 => 3,
        b'p' => 10,
        b'r' => 4,
        b's' => 7,
        _ => return SUFFIX_INVALID,
    };
    if SUFFIXES[usize::from(val)].as_bytes() == s {
        val
    } else {
        SUFFIX_INVALID
    }
}

/// One token: its kind, suffix rank and text (digits, a letter or a suffix name).
#[derive(Clone, Copy)]
struct Token<'a> {
    kind: u8,
    suffix: u8,
    value: &'a [u8],
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn span(&mut self, ok: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|&b| ok(b)) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn first(&mut self) -> Token<'a> {
        let value = self.span(|b| b.is_ascii_digit());
        Token {
            kind: if value.is_empty() {
                INVALID
            } else {
                INITIAL_DIGIT
            },
            suffix: SUFFIX_INVALID,
            value,
        }
    }

    fn next(&mut self, t: &mut Token<'a>) {
        let Some(&c) = self.s.get(self.pos) else {
            t.kind = END;
            return;
        };
        t.kind = match c {
            b'a'..=b'z' if t.kind <= DIGIT => {
                t.value = &self.s[self.pos..self.pos + 1];
                self.pos += 1;
                LETTER
            }
            b'.' | b'0'..=b'9' if c != b'.' || t.kind <= DIGIT => {
                if c == b'.' {
                    self.pos += 1;
                }
                t.value = self.span(|b| b.is_ascii_digit());
                match t.kind {
                    SUFFIX => SUFFIX_NO,
                    INITIAL_DIGIT | DIGIT => DIGIT,
                    _ => INVALID,
                }
            }
            b'_' if t.kind <= SUFFIX_NO => {
                self.pos += 1;
                t.value = self.span(|b| b.is_ascii_lowercase());
                t.suffix = suffix_value(t.value);
                if t.suffix == SUFFIX_INVALID {
                    INVALID
                } else {
                    SUFFIX
                }
            }
            b'-' if t.kind < REVISION_NO && self.s.get(self.pos + 1) == Some(&b'r') => {
                self.pos += 2;
                t.value = self.span(|b| b.is_ascii_digit());
                REVISION_NO
            }
            _ => INVALID,
        };
    }
}

/// `token_cmp` for two tokens of the same kind.
fn token_cmp(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        // An empty digit run (as in "1.") is followed by a non-digit, so it never counts as
        // a leading zero.
        DIGIT if a.value.first() == Some(&b'0') || b.value.first() == Some(&b'0') => {
            a.value.cmp(b.value)
        }
        INITIAL_DIGIT | DIGIT | SUFFIX_NO | REVISION_NO => {
            // apk reads these as unsigned 64-bit numbers; compared exactly here.
            cmp_digits(ascii(a.value), ascii(b.value))
        }
        LETTER => a.value.first().cmp(&b.value.first()),
        SUFFIX => a.suffix.cmp(&b.suffix),
        _ => a.value.cmp(b.value),
    }
}

fn ascii(b: &[u8]) -> &str {
    // Only ever called on runs of ASCII digits.
    std::str::from_utf8(b).unwrap_or("")
}

/// A validated apk version (the original bytes; comparison re-tokenises, as apk does).
#[derive(Debug, Clone)]
pub(crate) struct ApkVersion(Vec<u8>);

impl ApkVersion {
    pub(crate) fn parse(s: &str) -> Result<ApkVersion, &'static str> {
        if s.is_empty() {
            return Err("version string is empty");
        }
        let mut c = Cursor {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut t = c.first();
        // Every step consumes at least one byte or ends, so this is bounded by the length.
        while t.kind < END {
            c.next(&mut t);
        }
        if t.kind == END {
            Ok(ApkVersion(s.as_bytes().to_vec()))
        } else {
            Err("not a valid apk version (digit{.digit}...{letter}{_suf{#}}...{-r#})")
        }
    }
}

fn apk_compare(a: &[u8], b: &[u8]) -> Ordering {
    let mut ca = Cursor { s: a, pos: 0 };
    let mut cb = Cursor { s: b, pos: 0 };
    let (mut ta, mut tb) = (ca.first(), cb.first());
    while ta.kind == tb.kind && ta.kind < END {
        match token_cmp(&ta, &tb) {
            Ordering::Equal => {}
            o => return o,
        }
        ca.next(&mut ta);
        cb.next(&mut tb);
    }
    if ta.kind == tb.kind {
        return Ordering::Equal;
    }
    if ta.kind == SUFFIX && ta.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if tb.kind == SUFFIX && tb.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    // A later token kind means "ended sooner", which is older.
    tb.kind.cmp(&ta.kind)
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        apk_compare(&self.0, &other.0)
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ApkVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ApkVersion {}
