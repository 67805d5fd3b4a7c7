//! Maven versions: a port of Maven 3.8's
//! `org.apache.maven.artifact.versioning.ComparableVersion`.
//!
//! Maven parses a version into nested lists: `.` separates items of one list, while `-` and
//! every switch between digits and letters open a new sub-list as the last item of the
//! current one. Trailing "null" items (0, "", "ga", "final", "release", empty lists) are
//! dropped, and a qualifier after `.` opens a sub-list as if it followed `-`. Qualifiers order as alpha < beta < milestone < rc = cr < snapshot < "" = ga =
//! final = release < sp < any other (lexically); `a1`, `b1`, `m1` mean alpha/beta/milestone.
//!
//! Because a sub-list is always the last item of its parent, the nesting is a chain; it is
//! stored flat (one `Vec` per level) and compared with loops, so depth costs no stack.
//! Maven accepts any string; non-ASCII input is refused here, because Java's Unicode digit
//! and case rules would have to be reproduced for no real-world version.

use std::cmp::Ordering;

use crate::num::Num;

#[derive(Debug, Clone)]
enum Item {
    Int(Num),
    /// The qualifier after aliasing ("ga" -> "", "cr" -> "rc", ...).
    Str(String),
    /// The next level in the chain (always the last item of a level).
    List(usize),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// Maven's `comparableQualifier`: the index of a known qualifier, or "7-" + the qualifier, as
/// a string that is then compared lexically.
fn comparable_qualifier(q: &str) -> String {
    match QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

/// `comparableQualifier("")`, the release position.
const RELEASE_INDEX: &str = "5";

impl Item {
    fn is_null(&self, levels: &[Vec<Item>]) -> bool {
        match self {
            Item::Int(n) => n.is_zero(),
            Item::Str(s) => comparable_qualifier(s) == RELEASE_INDEX,
            Item::List(l) => levels.get(*l).is_none_or(|v| v.is_empty()),
        }
    }
}

fn string_item(value: &str, followed_by_digit: bool) -> Item {
    let value = match (followed_by_digit, value) {
        (true, "a") => "alpha",
        (true, "b") => "beta",
        (true, "m") => "milestone",
        (_, v) => v,
    };
    let value = match value {
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        v => v,
    };
    Item::Str(value.to_string())
}

fn parse_item(is_digit: bool, buf: &str) -> Item {
    if is_digit {
        Item::Int(Num::new(buf))
    } else {
        string_item(buf, false)
    }
}

/// A parsed Maven version: `levels[0]` is the top-level list.
#[derive(Debug, Clone)]
pub(crate) struct MavenVersion {
    levels: Vec<Vec<Item>>,
}

impl MavenVersion {
    pub(crate) fn parse(s: &str) -> Result<MavenVersion, &'static str> {
        if s.is_empty() {
            return Err("version string is empty");
        }
        if !s.is_ascii() {
            return Err("non-ASCII Maven versions are not supported");
        }
        let v = s.to_ascii_lowercase();
        let bytes = v.as_bytes();
        let mut levels: Vec<Vec<Item>> = vec![Vec::new()];
        let mut cur = 0usize;
        let nest = |levels: &mut Vec<Vec<Item>>, cur: &mut usize| {
            let new = levels.len();
            levels.push(Vec::new());
            levels[*cur].push(Item::List(new));
            *cur = new;
        };
        let mut is_digit = false;
        let mut start = 0usize;
        for (i, &c) in bytes.iter().enumerate() {
            if c == b'.' || c == b'-' {
                let item = if i == start {
                    Item::Int(Num::new("0"))
                } else {
                    parse_item(is_digit, &v[start..i])
                };
                levels[cur].push(item);
                start = i + 1;
                if c == b'-' {
                    nest(&mut levels, &mut cur);
                }
            } else if c.is_ascii_digit() {
                if !is_digit && i > start {
                    // "1.0.0.X1 < 1.0.0-X2": a qualifier after `.` is read as after `-`.
                    if !levels[cur].is_empty() {
                        nest(&mut levels, &mut cur);
                    }
                    levels[cur].push(string_item(&v[start..i], true));
                    start = i;
                    nest(&mut levels, &mut cur);
                }
                is_digit = true;
            } else {
                if is_digit && i > start {
                    levels[cur].push(parse_item(true, &v[start..i]));
                    start = i;
                    nest(&mut levels, &mut cur);
                }
                is_digit = false;
            }
        }
        if bytes.len() > start {
            if !is_digit && !levels[cur].is_empty() {
                nest(&mut levels, &mut cur);
            }
            levels[cur].push(parse_item(is_digit, &v[start..]));
        }
        // Maven normalises the lists as it pops its stack: deepest first.
        for l in (0..levels.len()).rev() {
            let mut items = std::mem::take(&mut levels[l]);
            let mut i = items.len();
            while i > 0 {
                i -= 1;
                if items[i].is_null(&levels) {
                    items.remove(i);
                } else if !matches!(items[i], Item::List(_)) {
                    break;
                }
            }
            levels[l] = items;
        }
        Ok(MavenVersion { levels })
    }

    /// `ListItem.compareTo(null)` for `level`: every item against nothing, the first that
    /// differs decides (MNG-6964); the chain's next level, always last, is walked in turn.
    fn list_vs_null(&self, mut level: usize) -> Ordering {
        'levels: loop {
            for item in self.levels.get(level).map_or(&[][..], |v| &v[..]) {
                let result = match item {
                    Item::List(next) => {
                        level = *next;
                        continue 'levels;
                    }
                    scalar => self.scalar_vs_null(scalar),
                };
                if result != Ordering::Equal {
                    return result;
                }
            }
            return Ordering::Equal;
        }
    }

    fn scalar_vs_null(&self, item: &Item) -> Ordering {
        match item {
            Item::Int(n) => {
                if n.is_zero() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            Item::Str(s) => comparable_qualifier(s).as_str().cmp(RELEASE_INDEX),
            Item::List(l) => self.list_vs_null(*l),
        }
    }
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (mut la, mut lb) = (0usize, 0usize);
        // Each round compares one level of both chains; a List/List pair is always the last
        // item of both levels, so it continues with the next levels instead of recursing.
        'levels: loop {
            let a = self.levels.get(la).map_or(&[][..], |v| &v[..]);
            let b = other.levels.get(lb).map_or(&[][..], |v| &v[..]);
            for k in 0..a.len().max(b.len()) {
                let result = match (a.get(k), b.get(k)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(r)) => other.scalar_vs_null(r).reverse(),
                    (Some(l), None) => self.scalar_vs_null(l),
                    (Some(l), Some(r)) => match (l, r) {
                        (Item::Int(x), Item::Int(y)) => x.cmp(y),
                        (Item::Int(_), _) => Ordering::Greater,
                        (Item::Str(_), Item::Int(_)) => Ordering::Less,
                        (Item::Str(x), Item::Str(y)) => {
                            comparable_qualifier(x).cmp(&comparable_qualifier(y))
                        }
                        (Item::Str(_), Item::List(_)) => Ordering::Less,
                        (Item::List(_), Item::Int(_)) => Ordering::Less,
                        (Item::List(_), Item::Str(_)) => Ordering::Greater,
                        (Item::List(x), Item::List(y)) => {
                            la = *x;
                            lb = *y;
                            continue 'levels;
                        }
                    },
                };
                if result != Ordering::Equal {
                    return result;
                }
            }
            return Ordering::Equal;
        }
    }
}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MavenVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MavenVersion {}
