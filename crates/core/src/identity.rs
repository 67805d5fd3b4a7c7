//! Finding identity across runs: the lifecycle status of a fingerprint (open, fixed,
//! reopened), its triage, and the pure diff of one run against what was already known for
//! the same tenant, scanner and targets.
//!
//! A finding's identity is its fingerprint (see [`crate::finding::fingerprint`]); this
//! module only decides what a run means for each identity, and the store applies it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Where a finding identity stands after the latest run that could have reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingStatus {
    /// Reported by the latest run that looked, and never reported as gone before.
    Open,
    /// Absent from a complete run after having been reported.
    Fixed,
    /// Reported again after it had been fixed.
    Reopened,
}

impl FindingStatus {
    pub const ALL: [FindingStatus; 3] = [
        FindingStatus::Open,
        FindingStatus::Fixed,
        FindingStatus::Reopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Fixed => "fixed",
            FindingStatus::Reopened => "reopened",
        }
    }

    /// Whether the issue is currently present: open or reopened.
    pub fn is_live(self) -> bool {
        matches!(self, FindingStatus::Open | FindingStatus::Reopened)
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of the lifecycle names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown finding status {0:?}; expected open, fixed or reopened")]
pub struct UnknownStatus(pub String);

impl FromStr for FindingStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A person's verdict on a finding identity. It is independent of [`FindingStatus`]: a
/// fixed finding keeps its triage, so that an accepted risk stays accepted if it reopens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Triage {
    /// Not triaged yet.
    #[default]
    None,
    /// Real, and knowingly accepted.
    AcceptedRisk,
    /// Not a real issue.
    FalsePositive,
}

impl Triage {
    pub const ALL: [Triage; 3] = [Triage::None, Triage::AcceptedRisk, Triage::FalsePositive];

    pub fn as_str(self) -> &'static str {
        match self {
            Triage::None => "none",
            Triage::AcceptedRisk => "accepted_risk",
            Triage::FalsePositive => "false_positive",
        }
    }
}

impl fmt::Display for Triage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A triage string that is not one of the triage names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown triage {0:?}; expected none, accepted_risk or false_positive")]
pub struct UnknownTriage(pub String);

impl FromStr for Triage {
    type Err = UnknownTriage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownTriage(s.to_string()))
    }
}

/// A finding identity already on record for the same tenant, scanner and targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub fingerprint: String,
    pub status: FindingStatus,
}

impl Known {
    pub fn new(fingerprint: impl Into<String>, status: FindingStatus) -> Self {
        Known {
            fingerprint: fingerprint.into(),
            status,
        }
    }
}

/// How the run ended. Only a complete run proves absence: a failed, timed-out or partial
/// run may simply not have reached a finding, so it never marks anything fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Complete,
    Partial,
}

/// What one run changed, by fingerprint. Every list is sorted and free of duplicates, and
/// no fingerprint appears in two lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Seen for the first time: becomes `open`.
    pub new: Vec<String>,
    /// Live before and absent from a complete run: becomes `fixed`.
    pub fixed: Vec<String>,
    /// Fixed before and seen again: becomes `reopened`.
    pub reopened: Vec<String>,
    /// Live before and seen again: keeps its status.
    pub unchanged: Vec<String>,
}

impl Diff {
    /// Whether the run changes no status (unchanged identities do not count).
    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.fixed.is_empty() && self.reopened.is_empty()
    }
}

/// The status one identity has after a run, from its status before (`None` when unknown),
/// whether the run reported it, and how the run ended. `None` means it stays unknown.
pub fn next_status(
    current: Option<FindingStatus>,
    seen: bool,
    run: RunOutcome,
) -> Option<FindingStatus> {
    match (current, seen) {
        (None, true) => Some(FindingStatus::Open),
        (None, false) => None,
        (Some(FindingStatus::Fixed), true) => Some(FindingStatus::Reopened),
        (Some(FindingStatus::Fixed), false) => Some(FindingStatus::Fixed),
        (Some(live), true) => Some(live),
        (Some(live), false) => match run {
            RunOutcome::Complete => Some(FindingStatus::Fixed),
            RunOutcome::Partial => Some(live),
        },
    }
}

/// Compares one run's fingerprints with the identities known for the same tenant, scanner
/// and targets. `seen` may contain duplicates (a scanner can report one issue twice).
/// If `known` lists a fingerprint more than once, a live status wins over `fixed`, so that
/// inconsistent input can never turn an open finding into a "reopened" one.
pub fn diff(known: &[Known], seen: &[&str], run: RunOutcome) -> Diff {
    let mut before: BTreeMap<&str, FindingStatus> = BTreeMap::new();
    for k in known {
        before
            .entry(k.fingerprint.as_str())
            .and_modify(|s| {
                if k.status.is_live() && !s.is_live() {
                    *s = k.status;
                }
            })
            .or_insert(k.status);
    }
    let seen: BTreeSet<&str> = seen.iter().copied().collect();
    let all: BTreeSet<&str> = before.keys().copied().chain(seen.iter().copied()).collect();

    let mut out = Diff::default();
    // `all` iterates in sorted order, so every list comes out sorted.
    for fp in all {
        let current = before.get(fp).copied();
        let is_seen = seen.contains(fp);
        let list = match (current, next_status(current, is_seen, run)) {
            (None, Some(_)) => &mut out.new,
            (Some(FindingStatus::Fixed), Some(FindingStatus::Reopened)) => &mut out.reopened,
            (Some(a), Some(FindingStatus::Fixed)) if a.is_live() => &mut out.fixed,
            (Some(a), Some(b)) if a.is_live() && a == b && is_seen => &mut out.unchanged,
            // Unknown and unseen, fixed and unseen, or live but unseen in a partial run:
            // nothing to record.
            _ => continue,
        };
        list.push(fp.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use FindingStatus::{Fixed, Open, Reopened};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_round_trip() {
        for s in FindingStatus::ALL {
            assert_eq!(s.as_str().parse::<FindingStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for t in Triage::ALL {
            assert_eq!(t.as_str().parse::<Triage>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(
            strings(&FindingStatus::ALL.map(|s| s.as_str())),
            strings(&["open", "fixed", "reopened"])
        );
        assert_eq!(
            strings(&Triage::ALL.map(|t| t.as_str())),
            strings(&["none", "accepted_risk", "false_positive"])
        );
        assert!("Open".parse::<FindingStatus>().is_err());
        assert!("accepted-risk".parse::<Triage>().is_err());
        let err = "closed".parse::<FindingStatus>().unwrap_err().to_string();
        assert!(err.contains("closed") && err.contains("reopened"), "{err}");
        assert_eq!(Triage::default(), Triage::None);
    }

    #[test]
    fn seen_and_unknown_is_new() {
        let d = diff(&[], &["b", "a"], RunOutcome::Complete);
        assert_eq!(d.new, strings(&["a", "b"]));
        assert!(d.fixed.is_empty() && d.reopened.is_empty() && d.unchanged.is_empty());
        assert!(!d.is_empty());
        let d = diff(&[], &["a"], RunOutcome::Partial);
        assert_eq!(
            d.new,
            strings(&["a"]),
            "a partial run still reports new findings"
        );
    }

    #[test]
    fn seen_and_live_is_unchanged() {
        let known = [Known::new("o", Open), Known::new("r", Reopened)];
        for run in [RunOutcome::Complete, RunOutcome::Partial] {
            let d = diff(&known, &["r", "o"], run);
            assert_eq!(d.unchanged, strings(&["o", "r"]));
            assert!(d.new.is_empty() && d.fixed.is_empty() && d.reopened.is_empty());
            assert!(d.is_empty());
        }
    }

    #[test]
    fn seen_and_fixed_is_reopened() {
        for run in [RunOutcome::Complete, RunOutcome::Partial] {
            let d = diff(&[Known::new("f", Fixed)], &["f"], run);
            assert_eq!(d.reopened, strings(&["f"]));
            assert!(d.new.is_empty() && d.fixed.is_empty() && d.unchanged.is_empty());
        }
    }

    #[test]
    fn unseen_live_in_complete_run_is_fixed() {
        let known = [Known::new("r", Reopened), Known::new("o", Open)];
        let d = diff(&known, &[], RunOutcome::Complete);
        assert_eq!(d.fixed, strings(&["o", "r"]));
        assert!(d.new.is_empty() && d.reopened.is_empty() && d.unchanged.is_empty());
    }

    #[test]
    fn unseen_fixed_stays_out_of_every_list() {
        for run in [RunOutcome::Complete, RunOutcome::Partial] {
            let d = diff(&[Known::new("f", Fixed)], &[], run);
            assert_eq!(d, Diff::default());
        }
    }

    #[test]
    fn partial_run_fixes_nothing() {
        let known = [
            Known::new("o", Open),
            Known::new("r", Reopened),
            Known::new("f", Fixed),
            Known::new("s", Open),
        ];
        let d = diff(&known, &["s", "n", "f"], RunOutcome::Partial);
        assert!(d.fixed.is_empty(), "{d:?}");
        assert_eq!(d.new, strings(&["n"]));
        assert_eq!(d.reopened, strings(&["f"]));
        assert_eq!(d.unchanged, strings(&["s"]));
        let complete = diff(&known, &["s", "n", "f"], RunOutcome::Complete);
        assert_eq!(complete.fixed, strings(&["o", "r"]));
    }

    #[test]
    fn duplicates_in_seen_count_once() {
        let known = [Known::new("f", Fixed), Known::new("o", Open)];
        let d = diff(
            &known,
            &["n", "f", "n", "o", "f", "o", "n"],
            RunOutcome::Complete,
        );
        assert_eq!(d.new, strings(&["n"]));
        assert_eq!(d.reopened, strings(&["f"]));
        assert_eq!(d.unchanged, strings(&["o"]));
        assert!(d.fixed.is_empty());
    }

    #[test]
    fn duplicate_known_entries_prefer_live() {
        let known = [Known::new("x", Fixed), Known::new("x", Open)];
        let d = diff(&known, &["x"], RunOutcome::Complete);
        assert_eq!(d.unchanged, strings(&["x"]));
        assert!(d.reopened.is_empty());
        let known = [Known::new("x", Open), Known::new("x", Fixed)];
        let d = diff(&known, &[], RunOutcome::Complete);
        assert_eq!(d.fixed, strings(&["x"]));
    }

    #[test]
    fn next_status_table() {
        use RunOutcome::{Complete, Partial};
        let cases = [
            (None, true, Complete, Some(Open)),
            (None, false, Complete, None),
            (None, true, Partial, Some(Open)),
            (Some(Open), true, Complete, Some(Open)),
            (Some(Reopened), true, Complete, Some(Reopened)),
            (Some(Open), false, Complete, Some(Fixed)),
            (Some(Reopened), false, Complete, Some(Fixed)),
            (Some(Open), false, Partial, Some(Open)),
            (Some(Reopened), false, Partial, Some(Reopened)),
            (Some(Fixed), true, Complete, Some(Reopened)),
            (Some(Fixed), true, Partial, Some(Reopened)),
            (Some(Fixed), false, Complete, Some(Fixed)),
            (Some(Fixed), false, Partial, Some(Fixed)),
        ];
        for (current, seen, run, want) in cases {
            assert_eq!(
                next_status(current, seen, run),
                want,
                "{current:?} seen={seen} {run:?}"
            );
        }
    }

    /// A small deterministic generator, so that the property loop is reproducible and core
    /// keeps no dependency beyond what it already has.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_inputs_keep_the_invariants() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let pool: Vec<String> = (0..12).map(|i| format!("fp{i:02}")).collect();
        for case in 0..2000 {
            let mut known = Vec::new();
            for _ in 0..rng.below(10) {
                let fp = &pool[rng.below(pool.len() as u64) as usize];
                let status = FindingStatus::ALL[rng.below(3) as usize];
                known.push(Known::new(fp.clone(), status));
            }
            let seen: Vec<&str> = (0..rng.below(14))
                .map(|_| pool[rng.below(pool.len() as u64) as usize].as_str())
                .collect();
            let run = if rng.below(2) == 0 {
                RunOutcome::Complete
            } else {
                RunOutcome::Partial
            };
            let d = diff(&known, &seen, run);
            let ctx = format!("case {case}: known={known:?} seen={seen:?} run={run:?} -> {d:?}");

            let lists = [&d.new, &d.fixed, &d.reopened, &d.unchanged];
            let mut all = BTreeSet::new();
            for list in lists {
                assert!(list.windows(2).all(|w| w[0] < w[1]), "not sorted: {ctx}");
                for fp in list {
                    assert!(all.insert(fp.as_str()), "{fp} in two lists: {ctx}");
                }
            }
            for fp in &seen {
                let hits = [&d.new, &d.reopened, &d.unchanged]
                    .iter()
                    .filter(|l| l.iter().any(|x| x == fp))
                    .count();
                assert_eq!(hits, 1, "{fp} seen but in {hits} lists: {ctx}");
                assert!(
                    !d.fixed.iter().any(|x| x == fp),
                    "{fp} seen and fixed: {ctx}"
                );
            }
            if run == RunOutcome::Partial {
                assert!(d.fixed.is_empty(), "partial run fixed something: {ctx}");
            }
            for fp in &d.fixed {
                assert!(
                    known
                        .iter()
                        .any(|k| &k.fingerprint == fp && k.status.is_live()),
                    "{fp} fixed but was not live: {ctx}"
                );
            }
            for fp in &d.new {
                assert!(
                    !known.iter().any(|k| &k.fingerprint == fp),
                    "{fp} new but known: {ctx}"
                );
            }
            // Applying the diff and diffing the same run again changes nothing more.
            let mut after: BTreeMap<&str, FindingStatus> = BTreeMap::new();
            for k in &known {
                let s = after.entry(&k.fingerprint).or_insert(k.status);
                if k.status.is_live() {
                    *s = k.status;
                }
            }
            for (list, status) in [(&d.new, Open), (&d.fixed, Fixed), (&d.reopened, Reopened)] {
                for fp in list.iter() {
                    after.insert(fp, status);
                }
            }
            let known_after: Vec<Known> = after.iter().map(|(fp, s)| Known::new(*fp, *s)).collect();
            let again = diff(&known_after, &seen, run);
            assert!(
                again.is_empty(),
                "second identical run changed statuses: {again:?}; {ctx}"
            );
        }
    }
}
