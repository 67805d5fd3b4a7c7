//! Maintenance windows: periods (a fixed start or a cron, plus a duration) during which
//! matching scans are held in the queue or skipped.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::limits::{self, DurationLimit};
use crate::schedule::{Cadence, CadenceError};
use crate::Timestamp;

/// What a window does to a scan that falls inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAction {
    /// Keep the scan queued until the window ends.
    Hold,
    /// End the scan as `skipped`.
    Skip,
}

impl WindowAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowAction::Hold => "hold",
            WindowAction::Skip => "skip",
        }
    }
}

impl FromStr for WindowAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hold" => Ok(WindowAction::Hold),
            "skip" => Ok(WindowAction::Skip),
            other => Err(format!("unknown action {other:?}; expected hold or skip")),
        }
    }
}

/// Which scans a window applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Global,
    Tenant(String),
    Scanner(String),
    Provider(String),
    Target(String),
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "global" {
            return Ok(Scope::Global);
        }
        let (kind, value) = text.split_once(':').ok_or_else(|| {
            format!("unknown scope {text:?}; expected global, tenant:<name>, scanner:<name>, provider:<name> or target:<target>")
        })?;
        if value.is_empty() {
            return Err(format!("scope {text:?} names no {kind}"));
        }
        let value = value.to_string();
        match kind {
            "tenant" => Ok(Scope::Tenant(value)),
            "scanner" => Ok(Scope::Scanner(value)),
            "provider" => Ok(Scope::Provider(value)),
            "target" => Ok(Scope::Target(value)),
            _ => Err(format!(
                "unknown scope kind {kind:?}; expected global, tenant, scanner, provider or target"
            )),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => write!(f, "global"),
            Scope::Tenant(v) => write!(f, "tenant:{v}"),
            Scope::Scanner(v) => write!(f, "scanner:{v}"),
            Scope::Provider(v) => write!(f, "provider:{v}"),
            Scope::Target(v) => write!(f, "target:{v}"),
        }
    }
}

/// When a window opens.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowStart {
    At(Timestamp),
    Cron(Cadence),
}

/// A stored maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    pub id: String,
    pub tenant_id: String,
    /// Created with the admin token: a `global` window then applies to every tenant.
    pub admin: bool,
    pub name: String,
    pub start: WindowStart,
    pub duration: Duration,
    pub scope: Scope,
    pub action: WindowAction,
    pub created_at: Timestamp,
}

/// The facts about a scan that scopes are matched against.
#[derive(Debug, Clone, Copy)]
pub struct ScanFacts<'a> {
    pub tenant_id: &'a str,
    pub tenant_name: &'a str,
    pub scanner: &'a str,
    pub provider: Option<&'a str>,
    pub targets: &'a [String],
}

impl MaintenanceWindow {
    /// If the window is open at `now`, when it closes.
    pub fn open_until(&self, now: Timestamp) -> Result<Option<Timestamp>, CadenceError> {
        // Saturating arithmetic: a window longer than the representable range stays open
        // until the end of time instead of overflowing.
        match &self.start {
            WindowStart::At(start) => {
                let end = limits::add(*start, self.duration);
                Ok((*start <= now && now < end).then_some(end))
            }
            WindowStart::Cron(cadence) => {
                // Every occurrence in (now - length, now] opens a window still open now; the
                // latest one closes last. It is found by bisection over the instants, so the
                // cost is ~45 cron evaluations whatever the cadence and length. Lengths are
                // bounded at input; a longer stored one is clamped to the same bound.
                let length = self.duration.min(DurationLimit::WindowDuration.max());
                let from = limits::add_millis(limits::sub(now, length), 1);
                let Some(first) = cadence.first_at_or_after(from)? else {
                    return Ok(None);
                };
                if first > now {
                    return Ok(None);
                }
                let at = |ms: i64| Timestamp::from_timestamp_millis(ms).unwrap_or(now);
                // Invariant: the first tick at or after `lo` is at or before now.
                let (mut lo, mut hi) = (first.timestamp_millis(), now.timestamp_millis());
                while lo < hi {
                    let mid = lo + (hi - lo + 1) / 2;
                    match cadence.first_at_or_after(at(mid))? {
                        Some(t) if t <= now => lo = mid,
                        _ => hi = mid - 1,
                    }
                }
                let latest = cadence.first_at_or_after(at(lo))?.unwrap_or(first);
                Ok(Some(limits::add(latest, length)))
            }
        }
    }

    /// Whether the window's scope covers the scan.
    pub fn applies_to(&self, scan: &ScanFacts<'_>) -> bool {
        let same_tenant = self.tenant_id == scan.tenant_id;
        match &self.scope {
            Scope::Global => self.admin || same_tenant,
            Scope::Tenant(name) => (self.admin || same_tenant) && name == scan.tenant_name,
            Scope::Scanner(name) => (self.admin || same_tenant) && name == scan.scanner,
            Scope::Provider(name) => {
                (self.admin || same_tenant) && Some(name.as_str()) == scan.provider
            }
            Scope::Target(t) => (self.admin || same_tenant) && scan.targets.iter().any(|x| x == t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn utc(h: u32, m: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    fn window(start: WindowStart, scope: Scope) -> MaintenanceWindow {
        MaintenanceWindow {
            id: "w".into(),
            tenant_id: "t1".into(),
            admin: false,
            name: "nightly-freeze".into(),
            start,
            duration: Duration::from_secs(3600),
            scope,
            action: WindowAction::Hold,
            created_at: utc(0, 0),
        }
    }

    #[test]
    fn fixed_window() {
        let w = window(WindowStart::At(utc(2, 0)), Scope::Global);
        assert_eq!(w.open_until(utc(1, 59)).unwrap(), None);
        assert_eq!(w.open_until(utc(2, 0)).unwrap(), Some(utc(3, 0)));
        assert_eq!(w.open_until(utc(2, 59)).unwrap(), Some(utc(3, 0)));
        assert_eq!(w.open_until(utc(3, 0)).unwrap(), None);
    }

    #[test]
    fn cron_window() {
        let w = window(
            WindowStart::Cron(Cadence::cron("0 2 * * *", "UTC").unwrap()),
            Scope::Global,
        );
        assert_eq!(w.open_until(utc(1, 30)).unwrap(), None);
        assert_eq!(w.open_until(utc(2, 30)).unwrap(), Some(utc(3, 0)));
        assert_eq!(w.open_until(utc(3, 30)).unwrap(), None);
    }

    #[test]
    fn scopes() {
        let targets = vec!["10.0.0.1".to_string()];
        let facts = ScanFacts {
            tenant_id: "t1",
            tenant_name: "team-a",
            scanner: "nmap",
            provider: Some("aws"),
            targets: &targets,
        };
        let other_tenant = ScanFacts {
            tenant_id: "t2",
            tenant_name: "team-b",
            ..facts
        };
        let at = WindowStart::At(utc(2, 0));
        assert!(window(at.clone(), Scope::Global).applies_to(&facts));
        assert!(!window(at.clone(), Scope::Global).applies_to(&other_tenant));
        let mut admin = window(at.clone(), Scope::Global);
        admin.admin = true;
        assert!(admin.applies_to(&other_tenant));
        assert!(window(at.clone(), Scope::Scanner("nmap".into())).applies_to(&facts));
        assert!(!window(at.clone(), Scope::Scanner("tcp".into())).applies_to(&facts));
        assert!(window(at.clone(), Scope::Provider("aws".into())).applies_to(&facts));
        assert!(window(at.clone(), Scope::Target("10.0.0.1".into())).applies_to(&facts));
        assert!(window(at.clone(), Scope::Tenant("team-a".into())).applies_to(&facts));
        assert!(!window(at, Scope::Tenant("team-b".into())).applies_to(&facts));
    }

    #[test]
    fn scope_strings() {
        for s in [
            "global",
            "tenant:a",
            "scanner:nmap",
            "provider:aws",
            "target:10.0.0.1:22",
        ] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        assert!(Scope::parse("planet:mars").is_err());
        assert!(Scope::parse("tenant:").is_err());
        assert!(Scope::parse("everything").is_err());
    }
}
