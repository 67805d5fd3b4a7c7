//! PyPI versions: PEP 440 as implemented by `packaging.version.Version` (packaging 26).
//!
//! The parser is a hand-written equivalent of packaging's `VERSION_PATTERN` (ASCII,
//! case-insensitive, possessive separators) and the order is packaging's `_cmpkey`:
//! `(epoch, release without trailing zeros, (pre_rank, pre_n, post_rank, post_n, dev_rank,
//! dev_n), local)`, where a dev-only release sorts before any pre-release and a missing local
//! segment sorts before any local segment.

use crate::num::Num;

/// A local version segment part: strings sort before numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalPart {
    Str(String),
    Int(Num),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    epoch: Num,
    release: Vec<Num>,
    pre_rank: i8,
    pre_n: Num,
    post_rank: u8,
    post_n: Num,
    dev_rank: u8,
    dev_n: Num,
    // `None < Some(_)`, as packaging's 3-tuple key sorts before its 4-tuple one.
    local: Option<Vec<LocalPart>>,
}

/// A parsed PEP 440 version, ordered by its comparison key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pep440(Key);

struct Cur<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.pos + k).copied()
    }
    fn digits(&mut self) -> Option<Num> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        (self.pos > start)
            .then(|| Num::new(std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")))
    }
    fn is_sep(b: Option<u8>) -> bool {
        matches!(b, Some(b'.' | b'_' | b'-'))
    }
    /// `[._-]?+` followed by one of `words` (tried in order, like the regex alternation).
    fn sep_word(&mut self, words: &[&'static str]) -> Option<&'static str> {
        let skip = usize::from(Self::is_sep(self.peek()));
        let rest = &self.s[self.pos + skip..];
        let word = words.iter().find(|w| rest.starts_with(w.as_bytes()))?;
        self.pos += skip + word.len();
        Some(word)
    }
    /// `[._-]?+ ([0-9]++)?+`: the possessive separator is taken even when no number follows.
    fn sep_number(&mut self) -> Num {
        if Self::is_sep(self.peek()) {
            self.pos += 1;
        }
        self.digits().unwrap_or_else(|| Num::new("0"))
    }
}

/// Python's `\s` on `str`: Unicode whitespace, plus the ASCII separators 0x1c-0x1f that
/// `str.isspace` also counts.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

impl Pep440 {
    pub(crate) fn parse(input: &str) -> Result<Pep440, &'static str> {
        let trimmed = input.trim_matches(py_space);
        if !trimmed.is_ascii() {
            return Err("PEP 440 versions are ASCII");
        }
        let lower = trimmed.to_ascii_lowercase();
        let mut c = Cur {
            s: lower.as_bytes(),
            pos: 0,
        };
        if c.peek() == Some(b'v') {
            c.pos += 1;
        }
        let first = c.digits().ok_or("expected a release number")?;
        let (epoch, mut release) = if c.peek() == Some(b'!') {
            c.pos += 1;
            (
                first,
                vec![c.digits().ok_or("expected a release after the epoch")?],
            )
        } else {
            (Num::new("0"), vec![first])
        };
        while c.peek() == Some(b'.') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            c.pos += 1;
            release.extend(c.digits());
        }

        let save = c.pos;
        let pre = match c.sep_word(&["alpha", "a", "beta", "b", "preview", "pre", "c", "rc"]) {
            Some(word) => {
                let rank = match word {
                    "alpha" | "a" => 0,
                    "beta" | "b" => 1,
                    _ => 2,
                };
                Some((rank, c.sep_number()))
            }
            None => {
                c.pos = save;
                None
            }
        };

        let post = if c.peek() == Some(b'-') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            c.pos += 1;
            c.digits()
        } else {
            let save = c.pos;
            match c.sep_word(&["post", "rev", "r"]) {
                Some(_) => Some(c.sep_number()),
                None => {
                    c.pos = save;
                    None
                }
            }
        };

        let save = c.pos;
        let dev = match c.sep_word(&["dev"]) {
            Some(_) => Some(c.sep_number()),
            None => {
                c.pos = save;
                None
            }
        };

        let local = if c.peek() == Some(b'+') {
            c.pos += 1;
            let text = std::str::from_utf8(&c.s[c.pos..]).unwrap_or("");
            let mut parts = Vec::new();
            for part in text.split(['.', '_', '-']) {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err("local version segments are [a-z0-9]+ separated by . _ -");
                }
                parts.push(if part.bytes().all(|b| b.is_ascii_digit()) {
                    LocalPart::Int(Num::new(part))
                } else {
                    LocalPart::Str(part.to_string())
                });
            }
            c.pos = c.s.len();
            Some(parts)
        } else {
            None
        };
        if c.pos != c.s.len() {
            return Err("not a PEP 440 version");
        }

        while release.last().is_some_and(Num::is_zero) {
            release.pop();
        }
        let zero = || Num::new("0");
        let (pre_rank, pre_n) = match (&pre, &post, &dev) {
            // A dev release of the final version sorts before all of its pre-releases.
            (None, None, Some(_)) => (-1, zero()),
            (None, _, _) => (3, zero()),
            (Some((rank, n)), _, _) => (*rank, n.clone()),
        };
        let (post_rank, post_n) = match post {
            Some(n) => (1, n),
            None => (0, zero()),
        };
        let (dev_rank, dev_n) = match dev {
            Some(n) => (0, n),
            None => (1, zero()),
        };
        Ok(Pep440(Key {
            epoch,
            release,
            pre_rank,
            pre_n,
            post_rank,
            post_n,
            dev_rank,
            dev_n,
            local,
        }))
    }
}
