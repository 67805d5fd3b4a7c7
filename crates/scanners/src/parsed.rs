//! What parsing a tool's output gives: the findings of every record that could be read, and
//! each record that was dropped with why, so one bad record never loses the others.
//!
//! The rule every format follows: a record that is malformed, not valid UTF-8 (in
//! line-oriented output) or longer than [`RECORD_MAX`](crate::RECORD_MAX) is dropped with a
//! reason naming where it was (`line 3: ...`, `Results[0].Secrets[1]: ...`). Output that is
//! not a document of the format at all, or whose records are all unusable, is still an
//! error: then the tool is not speaking the format, and storing nothing while calling the scan
//! a success would hide that.

use scanplane_core::finding::Finding;

use crate::error::ParseError;

/// The findings of one tool output and the records dropped from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub findings: Vec<Finding>,
    /// One error per dropped record, in the order the records came.
    pub rejected: Vec<ParseError>,
}

impl Parsed {
    /// All or nothing: the findings when no record was dropped, else the first dropped
    /// record's error. For callers that judge whether output is entirely well-formed
    /// (tests of captured output, validation of a sample report).
    pub fn strict(self) -> Result<Vec<Finding>, ParseError> {
        match self.rejected.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(self.findings),
        }
    }

    /// Applies the shared rule: output whose every record was dropped is an error (the
    /// first reason, with how many more there were); anything else is returned as is.
    pub(crate) fn unless_all_rejected(self) -> Result<Parsed, ParseError> {
        if !self.findings.is_empty() {
            return Ok(self);
        }
        let more = self.rejected.len().saturating_sub(1);
        match self.rejected.into_iter().next() {
            None => Ok(Parsed::default()),
            Some(first) => Err(all_rejected(first, more)),
        }
    }
}

/// The error for output none of whose records was usable: the first reason, and how many
/// more there were.
fn all_rejected(first: ParseError, more: usize) -> ParseError {
    if more == 0 {
        return first;
    }
    ParseError {
        message: format!(
            "{} (and {more} more unusable record{})",
            first.message,
            if more == 1 { "" } else { "s" }
        ),
        ..first
    }
}

/// The same rule for records sent on as they were read (line-oriented output that streams):
/// it counts them and keeps the first dropped record's error.
#[derive(Debug, Default)]
pub(crate) struct Streamed {
    findings: u64,
    rejected: u64,
    first_rejected: Option<ParseError>,
}

impl Streamed {
    pub(crate) fn found(&mut self) {
        self.findings += 1;
    }

    pub(crate) fn rejected(&mut self, e: &ParseError) {
        self.rejected += 1;
        if self.first_rejected.is_none() {
            self.first_rejected = Some(e.clone());
        }
    }

    /// An error when records were dropped and not one was usable.
    pub(crate) fn unless_all_rejected(self) -> Result<(), ParseError> {
        match self.first_rejected {
            Some(first) if self.findings == 0 => Err(all_rejected(
                first,
                usize::try_from(self.rejected - 1).unwrap_or(usize::MAX),
            )),
            _ => Ok(()),
        }
    }
}

/// Why a line too long to parse is dropped.
pub(crate) fn too_long(line_no: usize, bytes: usize) -> String {
    format!(
        "line {line_no}: {bytes} bytes, longer than {}",
        crate::RECORD_MAX
    )
}

/// Records a scan dropped, counted, with the first reasons kept for its result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    pub count: u64,
    /// The first [`Rejections::KEPT`] reasons, each naming where its record was.
    pub reasons: Vec<String>,
}

impl Rejections {
    /// How many reasons are kept; the count covers the rest. A report carries fewer.
    pub const KEPT: usize = 20;

    pub fn add(&mut self, reason: impl Into<String>) {
        self.count += 1;
        if self.reasons.len() < Self::KEPT {
            self.reasons.push(reason.into());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Checks one record of line-oriented output before it is parsed: it must fit
/// [`RECORD_MAX`](crate::RECORD_MAX) and be UTF-8. `Err` is the reason to drop it.
pub(crate) fn check_line(line: &[u8], line_no: usize) -> Result<&str, String> {
    if line.len() > crate::RECORD_MAX {
        return Err(too_long(line_no, line.len()));
    }
    std::str::from_utf8(line).map_err(|e| {
        format!(
            "line {line_no}: not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )
    })
}

/// Reads each record of a document's array as a `T`, dropping the ones that do not fit with
/// where they were (`{path}[i]`) and why.
pub(crate) fn typed_records<'a, T: serde::Deserialize<'a>>(
    scanner: &str,
    path: &str,
    records: &'a [serde_json::Value],
    rejected: &mut Vec<ParseError>,
) -> Vec<T> {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match T::deserialize(v) {
            Ok(t) => Some(t),
            Err(e) => {
                rejected.push(ParseError::new(scanner, format!("{path}[{i}]: {e}")));
                None
            }
        })
        .collect()
}

/// A whole document as UTF-8 text: invalid sequences are replaced with U+FFFD rather than
/// failing the document, because a document's records cannot be told apart before it is
/// parsed and one bad byte in one finding's evidence must not lose every other finding.
pub(crate) fn document_text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanplane_core::finding::Severity;

    fn finding() -> Finding {
        Finding::new("x", "t", "r", Severity::Info, "title", "")
    }

    #[test]
    fn strict_is_all_or_nothing() {
        let ok = Parsed {
            findings: vec![finding()],
            rejected: Vec::new(),
        };
        assert_eq!(ok.strict().unwrap().len(), 1);
        let partly = Parsed {
            findings: vec![finding()],
            rejected: vec![
                ParseError::new("x", "line 2: bad"),
                ParseError::new("x", "line 3: bad"),
            ],
        };
        assert_eq!(partly.strict().unwrap_err().to_string(), "x: line 2: bad");
    }

    #[test]
    fn output_without_one_usable_record_is_an_error() {
        let none = Parsed::default().unless_all_rejected().unwrap();
        assert!(none.findings.is_empty() && none.rejected.is_empty());
        let one = Parsed {
            findings: Vec::new(),
            rejected: vec![ParseError::new("x", "line 1: bad")],
        };
        assert_eq!(
            one.unless_all_rejected().unwrap_err().to_string(),
            "x: line 1: bad"
        );
        let three = Parsed {
            findings: Vec::new(),
            rejected: (1..=3)
                .map(|i| ParseError::new("x", format!("line {i}: bad")))
                .collect(),
        };
        assert_eq!(
            three.unless_all_rejected().unwrap_err().to_string(),
            "x: line 1: bad (and 2 more unusable records)"
        );
        let partly = Parsed {
            findings: vec![finding()],
            rejected: vec![ParseError::new("x", "line 2: bad")],
        };
        assert_eq!(partly.clone().unless_all_rejected().unwrap(), partly);
    }

    #[test]
    fn streamed_records_follow_the_same_rule() {
        let bad = |i: usize| ParseError::new("x", format!("line {i}: bad"));
        let mut s = Streamed::default();
        s.rejected(&bad(1));
        s.rejected(&bad(2));
        assert_eq!(
            s.unless_all_rejected().unwrap_err().to_string(),
            "x: line 1: bad (and 1 more unusable record)"
        );
        let mut s = Streamed::default();
        s.rejected(&bad(1));
        s.found();
        assert!(s.unless_all_rejected().is_ok());
        assert!(Streamed::default().unless_all_rejected().is_ok());
    }

    #[test]
    fn rejections_count_everything_and_keep_the_first_reasons() {
        let mut r = Rejections::default();
        assert!(r.is_empty());
        for i in 0..Rejections::KEPT + 5 {
            r.add(format!("line {i}"));
        }
        assert_eq!(r.count, (Rejections::KEPT + 5) as u64);
        assert_eq!(r.reasons.len(), Rejections::KEPT);
        assert_eq!(r.reasons[0], "line 0");
    }

    #[test]
    fn lines_must_fit_and_be_utf8() {
        assert_eq!(check_line(b"{}", 1), Ok("{}"));
        assert_eq!(
            check_line(b"{\"a\":\"\xff\"}", 4),
            Err("line 4: not valid UTF-8 (at byte 6)".to_string())
        );
        let long = vec![b'x'; crate::RECORD_MAX + 1];
        assert_eq!(
            check_line(&long, 2),
            Err(format!(
                "line 2: {} bytes, longer than {}",
                crate::RECORD_MAX + 1,
                crate::RECORD_MAX
            ))
        );
    }
}
