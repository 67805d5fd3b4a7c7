//! What the control plane and the workers agree on, and every decision about it that can be
//! a plain function: the unit message, the attempt record kept in the key-value bucket, what
//! a worker does with a delivery, and what an attempt record means to the dispatcher.
//!
//! The attempt record (one key per attempt, `<scan id>.<attempt>`) is the truth about an
//! attempt; a queued message is only a wake-up. Every change to a record is a
//! compare-and-set on its revision, so exactly one worker claims an attempt (a redelivered
//! message finds it claimed and is terminated), a cancel or a "lost" verdict is never
//! overwritten by a late heartbeat, and a worker whose heartbeat cannot be written stops its
//! scanner before the control plane may declare it lost.

use std::collections::BTreeMap;
use std::time::Duration;

use scanplane_executor::{env, LaunchSpec, Unit, UnitState};
use scanplane_protocol::registry::{DISCOVERY_SCANNER, SBOM_SCANNER};
use serde::{Deserialize, Serialize};

/// Version of [`UnitMessage`]; a worker refuses (terminates) any other.
pub const MESSAGE_VERSION: u32 = 1;

/// Largest unit message accepted (NATS' default payload limit is 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// How often a worker rewrites the record of each attempt it runs.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

/// A worker that could not write a heartbeat for this long stops the scanner itself: it
/// may be cut off, and the control plane will soon declare it lost.
pub const WORKER_FENCE: Duration = Duration::from_secs(15);

/// The control plane declares an attempt lost when its record has not changed for this long
/// while running. Twice [`WORKER_FENCE`]: a worker cut off has stopped its scanner by then.
pub const LOST_AFTER: Duration = Duration::from_secs(30);

/// How long the server waits for an ack (or progress) before it delivers a unit again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// How often a worker tells the server it is still working on a unit.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The kinds of unit, each with its own consumer so that one kind never blocks another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Scan,
    Discovery,
    Sbom,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Scan, Kind::Discovery, Kind::Sbom];

    pub fn of_scanner(scanner: &str) -> Kind {
        match scanner {
            DISCOVERY_SCANNER => Kind::Discovery,
            SBOM_SCANNER => Kind::Sbom,
            _ => Kind::Scan,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Scan => "scan",
            Kind::Discovery => "discovery",
            Kind::Sbom => "sbom",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The key of an attempt's record, also its message id (`Nats-Msg-Id`) and, prefixed with
/// `nats:`, its executor reference. `None` when the scan id has characters a key cannot
/// hold (scanplane's ids never do).
pub fn attempt_key(scan_id: &str, attempt: u32) -> Option<String> {
    let ok = !scan_id.is_empty()
        && scan_id.len() <= 128
        && scan_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| format!("{scan_id}.{attempt}"))
}

/// The executor reference of an attempt key.
pub fn executor_ref(key: &str) -> String {
    format!("nats:{key}")
}

/// The attempt key of an executor reference.
pub fn key_of_ref(executor_ref: &str) -> Option<&str> {
    executor_ref.strip_prefix("nats:")
}

/// Scan id and attempt of a key.
pub fn parse_key(key: &str) -> Option<(&str, u32)> {
    let (scan, attempt) = key.rsplit_once('.')?;
    let attempt = attempt.parse().ok()?;
    (attempt_key(scan, attempt)? == key).then_some((scan, attempt))
}

/// One unit of work on the queue: scanner mode's env, and what is delivered privately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitMessage {
    pub version: u32,
    /// The attempt key (see [`attempt_key`]).
    pub key: String,
    /// Scanner mode's env vars (`scanplane_protocol::env`).
    pub env: BTreeMap<String, String>,
    /// The attempt's report token. The stream is the executor's private channel, as the
    /// Job's Secret is for Kubernetes: only the control plane and workers may read it.
    pub report_token: String,
    /// A custom scanner's definition, as privately as the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_definition: Option<String>,
}

/// Why a message is not a unit a worker can run (it is terminated, never redelivered).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a unit of work: {0}")]
pub struct BadMessage(pub String);

impl UnitMessage {
    pub fn of(spec: &LaunchSpec) -> Option<UnitMessage> {
        Some(UnitMessage {
            version: MESSAGE_VERSION,
            key: attempt_key(&spec.scan_id, spec.attempt)?,
            env: spec.unit_env().to_vars().into_iter().collect(),
            report_token: spec.report_token.clone(),
            scanner_definition: spec.scanner_definition.clone(),
        })
    }

    /// Parses and checks a delivered payload: size, version, scanner mode's env, and that the
    /// key names the attempt the env describes.
    pub fn decode(payload: &[u8]) -> Result<(UnitMessage, env::UnitEnv), BadMessage> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(BadMessage(format!(
                "{} bytes, over the {MAX_MESSAGE_BYTES}-byte limit",
                payload.len()
            )));
        }
        let msg: UnitMessage = serde_json::from_slice(payload)
            .map_err(|e| BadMessage(format!("invalid JSON: {e}")))?;
        if msg.version != MESSAGE_VERSION {
            return Err(BadMessage(format!(
                "version {} (this worker reads version {MESSAGE_VERSION})",
                msg.version
            )));
        }
        let unit = env::UnitEnv::from_lookup(|k| msg.env.get(k).cloned())
            .map_err(|e| BadMessage(format!("env: {e}")))?;
        if attempt_key(&unit.scan_id, unit.attempt).as_deref() != Some(msg.key.as_str()) {
            return Err(BadMessage(format!(
                "key {:?} does not name scan {} attempt {}",
                msg.key, unit.scan_id, unit.attempt
            )));
        }
        if msg.report_token.is_empty() {
            return Err(BadMessage("no report token".into()));
        }
        if msg.env.contains_key(env::REPORT_TOKEN) || msg.env.contains_key(env::SCANNER_DEFINITION)
        {
            return Err(BadMessage(
                "the report token or the scanner definition is in the env".into(),
            ));
        }
        Ok((msg, unit))
    }

    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and maps of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How a unit ended on its worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Outcome {
    Exited {
        success: bool,
        exit_code: Option<i32>,
        message: String,
    },
    TimedOut {
        message: String,
    },
    Failed {
        message: String,
    },
}

impl Outcome {
    pub fn of(state: &UnitState) -> Option<Outcome> {
        match state {
            UnitState::Running { .. } => None,
            UnitState::Exited {
                success,
                exit_code,
                message,
            } => Some(Outcome::Exited {
                success: *success,
                exit_code: *exit_code,
                message: message.clone(),
            }),
            UnitState::TimedOut { message } => Some(Outcome::TimedOut {
                message: message.clone(),
            }),
            UnitState::Failed { message } => Some(Outcome::Failed {
                message: message.clone(),
            }),
            UnitState::Gone => Some(Outcome::Failed {
                message: "the unit vanished on its worker".into(),
            }),
            // The local runner on a worker never loses a unit itself.
            UnitState::Lost { message } => Some(Outcome::Failed {
                message: message.clone(),
            }),
        }
    }

    pub fn unit_state(&self) -> UnitState {
        match self.clone() {
            Outcome::Exited {
                success,
                exit_code,
                message,
            } => UnitState::Exited {
                success,
                exit_code,
                message,
            },
            Outcome::TimedOut { message } => UnitState::TimedOut { message },
            Outcome::Failed { message } => UnitState::Failed { message },
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Exited { success: true, .. } => "succeeded",
            Outcome::Exited { success: false, .. } => "failed",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// The record of one attempt in the key-value bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Attempt {
    /// Published, not claimed by any worker yet.
    Queued,
    /// Claimed and running on `worker`; `beat` counts its heartbeats.
    Running { worker: String, beat: u64 },
    /// Cancel requested while running: the worker stops the scanner.
    Cancelling { worker: String },
    /// Cancelled before any worker claimed it: a delivery of it is terminated.
    Cancelled,
    /// The unit ended on `worker`.
    Ended { worker: String, outcome: Outcome },
    /// The worker running it stopped heartbeating (or was stopped): the attempt is over.
    Lost { worker: String, reason: String },
}

impl Attempt {
    pub fn encode(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(value: &[u8]) -> Option<Attempt> {
        serde_json::from_slice(value).ok()
    }

    /// Whether a unit still executes (or may yet start) for this attempt.
    pub fn active(&self) -> bool {
        matches!(
            self,
            Attempt::Queued | Attempt::Running { .. } | Attempt::Cancelling { .. }
        )
    }

    /// What the dispatcher learns from this record, if anything: running (on which
    /// worker), or how it ended. Queued and cancel requests tell it nothing new.
    pub fn observed(&self) -> Option<UnitState> {
        match self {
            Attempt::Queued | Attempt::Cancelling { .. } | Attempt::Cancelled => None,
            Attempt::Running { worker, .. } => Some(UnitState::Running {
                detail: Some(format!("worker {worker}")),
            }),
            Attempt::Ended { outcome, .. } => Some(outcome.unit_state()),
            Attempt::Lost { reason, .. } => Some(UnitState::Lost {
                message: reason.clone(),
            }),
        }
    }

    /// The record as a listed unit (for takeovers and the sweep).
    pub fn unit(&self, key: &str) -> Option<Unit> {
        let (scan_id, attempt) = parse_key(key)?;
        Some(Unit {
            scan_id: scan_id.to_string(),
            executor_ref: executor_ref(key),
            attempt: Some(attempt),
            active: self.active(),
            ended: match self {
                Attempt::Ended { .. } | Attempt::Lost { .. } => self.observed(),
                Attempt::Cancelled => Some(UnitState::Gone),
                _ => None,
            },
        })
    }
}

/// What a worker does with a delivered unit, given the attempt's record (`None`: there is
/// none, the control plane cleaned it up).
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Claim it (compare-and-set from `Queued`) and run it.
    Claim,
    /// Terminate the message: the attempt is not this delivery's to run.
    Term(String),
}

pub fn on_delivery(record: Option<&Attempt>) -> Delivery {
    match record {
        Some(Attempt::Queued) => Delivery::Claim,
        None => Delivery::Term("its attempt is no longer wanted".into()),
        Some(Attempt::Running { worker, .. }) | Some(Attempt::Cancelling { worker }) => {
            Delivery::Term(format!("already claimed by worker {worker}"))
        }
        Some(Attempt::Cancelled) => Delivery::Term("cancelled before it started".into()),
        Some(Attempt::Ended { worker, .. }) => {
            Delivery::Term(format!("already ran on worker {worker}"))
        }
        Some(Attempt::Lost { worker, .. }) => {
            Delivery::Term(format!("already lost with worker {worker}"))
        }
    }
}

/// What a cancel writes over a record, if anything.
pub fn on_cancel(record: &Attempt) -> Option<Attempt> {
    match record {
        Attempt::Queued => Some(Attempt::Cancelled),
        Attempt::Running { worker, .. } => Some(Attempt::Cancelling {
            worker: worker.clone(),
        }),
        _ => None,
    }
}

/// The verdict on a running record unchanged for `silent`, if it is lost.
pub fn lost_verdict(record: &Attempt, silent: Duration) -> Option<Attempt> {
    match record {
        Attempt::Running { worker, .. } | Attempt::Cancelling { worker }
            if silent >= LOST_AFTER =>
        {
            Some(Attempt::Lost {
                worker: worker.clone(),
                reason: format!(
                    "worker lost: {worker} sent no heartbeat for {} s",
                    silent.as_secs()
                ),
            })
        }
        _ => None,
    }
}

/// What a worker running an attempt does when its record changed under it (its heartbeat's
/// compare-and-set failed, or its watch saw a change): `true` stops the scanner.
pub fn must_stop(record: Option<&Attempt>, me: &str) -> bool {
    match record {
        Some(Attempt::Running { worker, .. }) => worker != me,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanplane_core::scan::Trigger;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            scan_id: "0190a1b2-c3d4".into(),
            attempt: 2,
            tenant: "default".into(),
            schedule_id: None,
            trigger: Trigger::OnDemand,
            scanner: "tcp".into(),
            targets: vec!["127.0.0.1".into()],
            billing: false,
            options: "{}".into(),
            timeout: Duration::from_secs(60),
            server_url: "http://127.0.0.1:8080".into(),
            report_token: "tok".into(),
            image: None,
            scanner_definition: None,
        }
    }

    #[test]
    fn a_message_round_trips_and_keeps_the_token_out_of_the_env() {
        let msg = UnitMessage::of(&spec()).unwrap();
        assert_eq!(msg.key, "0190a1b2-c3d4.2");
        assert!(msg.env.values().all(|v| v != "tok"));
        let (back, unit) = UnitMessage::decode(&msg.encode()).unwrap();
        assert_eq!(back, msg);
        assert_eq!(unit.scan_id, "0190a1b2-c3d4");
        assert_eq!(unit.attempt, 2);
    }

    #[test]
    fn bad_messages_say_why() {
        let msg = UnitMessage::of(&spec()).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "invalid JSON"),
            (vec![b' '; MAX_MESSAGE_BYTES + 1], "limit"),
            (
                UnitMessage {
                    version: 9,
                    ..msg.clone()
                }
                .encode(),
                "version 9",
            ),
            (
                UnitMessage {
                    key: "other.2".into(),
                    ..msg.clone()
                }
                .encode(),
                "does not name",
            ),
            (
                UnitMessage {
                    report_token: String::new(),
                    ..msg.clone()
                }
                .encode(),
                "no report token",
            ),
            (
                {
                    let mut m = msg.clone();
                    m.env.remove(env::SCAN_ID);
                    m.encode()
                },
                "env",
            ),
            (
                {
                    let mut m = msg.clone();
                    m.env.insert(env::REPORT_TOKEN.into(), "tok".into());
                    m.encode()
                },
                "report token",
            ),
        ];
        for (payload, want) in cases {
            let err = UnitMessage::decode(&payload).unwrap_err();
            assert!(err.0.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn keys_refuse_what_a_subject_token_cannot_hold() {
        assert_eq!(attempt_key("a.b", 1), None);
        assert_eq!(attempt_key("", 1), None);
        assert_eq!(attempt_key("a*", 1), None);
        assert_eq!(parse_key("abc.3"), Some(("abc", 3)));
        assert_eq!(parse_key("abc"), None);
        assert_eq!(parse_key("a.b.3"), None);
        assert_eq!(key_of_ref(&executor_ref("abc.3")), Some("abc.3"));
    }

    #[test]
    fn only_a_queued_record_is_claimed() {
        assert_eq!(on_delivery(Some(&Attempt::Queued)), Delivery::Claim);
        let others = [
            None,
            Some(Attempt::Running {
                worker: "w1".into(),
                beat: 3,
            }),
            Some(Attempt::Cancelling {
                worker: "w1".into(),
            }),
            Some(Attempt::Cancelled),
            Some(Attempt::Ended {
                worker: "w1".into(),
                outcome: Outcome::TimedOut {
                    message: "t".into(),
                },
            }),
            Some(Attempt::Lost {
                worker: "w1".into(),
                reason: "r".into(),
            }),
        ];
        for r in &others {
            assert!(
                matches!(on_delivery(r.as_ref()), Delivery::Term(_)),
                "{r:?}"
            );
        }
    }

    #[test]
    fn a_silent_worker_is_lost_only_after_the_limit() {
        let running = Attempt::Running {
            worker: "w1".into(),
            beat: 1,
        };
        assert_eq!(
            lost_verdict(&running, LOST_AFTER - Duration::from_secs(1)),
            None
        );
        let lost = lost_verdict(&running, LOST_AFTER).unwrap();
        let Attempt::Lost { reason, .. } = &lost else {
            panic!("{lost:?}")
        };
        assert!(reason.starts_with("worker lost: w1"), "{reason}");
        assert_eq!(
            lost.observed(),
            Some(UnitState::Lost {
                message: reason.clone()
            })
        );
        assert_eq!(lost_verdict(&Attempt::Queued, LOST_AFTER * 10), None);
        assert!(
            WORKER_FENCE * 2 <= LOST_AFTER,
            "a cut-off worker stops first"
        );
    }

    #[test]
    fn a_worker_stops_when_its_record_is_no_longer_its_own() {
        let mine = Attempt::Running {
            worker: "me".into(),
            beat: 1,
        };
        assert!(!must_stop(Some(&mine), "me"));
        assert!(must_stop(Some(&mine), "other"));
        assert!(must_stop(None, "me"));
        assert!(must_stop(
            Some(&Attempt::Cancelling {
                worker: "me".into()
            }),
            "me"
        ));
    }

    #[test]
    fn records_list_as_units() {
        let u = Attempt::Ended {
            worker: "w".into(),
            outcome: Outcome::Exited {
                success: true,
                exit_code: Some(0),
                message: String::new(),
            },
        }
        .unit("s1.4")
        .unwrap();
        assert_eq!(u.scan_id, "s1");
        assert_eq!(u.attempt, Some(4));
        assert!(!u.active);
        assert!(matches!(
            u.ended,
            Some(UnitState::Exited { success: true, .. })
        ));
        assert!(Attempt::Queued.unit("s1.4").unwrap().active);
        assert_eq!(
            on_cancel(&Attempt::Queued),
            Some(Attempt::Cancelled),
            "a queued attempt never starts"
        );
    }
}
