//! The local executor: every scan attempt is a child process of this same binary in scanner
//! mode (`scanplane job`), in its own process group and working directory, killed as a group
//! at its timeout or on cancel. Processes are marked with their scan id and this executor's
//! instance (work directory, installation and replica) in their environment, so that the
//! periodic sweep finds every process of this replica and only those.
//!
//! Local units do not survive their replica: a job dies with the `serve` that started it
//! (parent-death signal, PID namespace), and a replica taking the attempt over re-queues it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedSender;

use crate::{env, job_env, Executor, ExecutorError, LaunchSpec, Observation, Unit, UnitState};

/// Env var marking processes started by one local executor instance.
pub const INSTANCE_ENV: &str = "SCANPLANE_EXECUTOR_INSTANCE";

/// Lines of stderr kept for the failure reason.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept.
const STDERR_LINE_MAX: usize = 400;

/// Configuration of the local executor.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The binary to run in scanner mode (normally this very binary).
    pub program: PathBuf,
    /// Parent of the per-scan working directories.
    pub work_root: PathBuf,
    /// Bytes of stdout and stderr each kept on disk per attempt.
    pub max_output: u64,
    /// Env vars never passed to scanners (secrets of the server).
    pub withheld_env: Vec<String>,
    /// Names the installation (the database) whose scans these are. It is part of the
    /// marker every unit carries, so that two installations sharing a work directory on
    /// one host never take each other's units for orphans.
    pub installation: String,
    /// The replica running these units: also part of the marker, so that replicas sharing a
    /// host, a work directory and a database each see only their own processes.
    pub replica: String,
}

pub struct LocalExecutor {
    config: LocalConfig,
    instance: String,
    observations: UnboundedSender<Observation>,
    /// Process group ids of running attempts, by scan id.
    running: Arc<Mutex<HashMap<String, i32>>>,
}

fn kill_group(pgid: i32) -> Result<(), ExecutorError> {
    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(ExecutorError::Backend(format!(
            "cannot kill process group {pgid}: {e}"
        ))),
    }
}

/// Kills every process group holding a process of `scan_id`: the job's own group and any
/// group a scanner adapter created for its tool, found through the inherited environment.
async fn kill_scan(
    instance: String,
    scan_id: String,
    leader_group: Option<i32>,
) -> Result<(), ExecutorError> {
    if let Some(pgid) = leader_group {
        kill_group(pgid)?;
    }
    let units = tokio::task::spawn_blocking(move || scan_proc(&instance))
        .await
        .map_err(|e| ExecutorError::Backend(format!("process listing failed: {e}")))?;
    for u in units.into_iter().filter(|u| u.scan_id == scan_id) {
        if let Some(pgid) = parse_ref(&u.executor_ref) {
            kill_group(pgid)?;
        }
    }
    Ok(())
}

fn parse_ref(executor_ref: &str) -> Option<i32> {
    executor_ref
        .strip_prefix("pid:")
        .or_else(|| executor_ref.strip_prefix("pgid:"))
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 1)
}

impl LocalExecutor {
    pub fn new(
        config: LocalConfig,
        observations: UnboundedSender<Observation>,
    ) -> Result<Self, ExecutorError> {
        std::fs::create_dir_all(&config.work_root).map_err(|e| {
            ExecutorError::Backend(format!(
                "cannot create work directory {}: {e}",
                config.work_root.display()
            ))
        })?;
        let root = config
            .work_root
            .canonicalize()
            .unwrap_or_else(|_| config.work_root.clone());
        let instance = format!(
            "{}#{}#{}",
            root.display(),
            config.installation,
            config.replica
        );
        Ok(Self {
            config,
            instance,
            observations,
            running: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Per replica, so that replicas sharing a work root never share a scan's directory
    /// (a scan taken over by another replica on the same host runs beside the old one's).
    fn work_dir(&self, scan_id: &str) -> PathBuf {
        self.config
            .work_root
            .join(&self.config.replica)
            .join(scan_id)
    }

    fn forget(running: &Mutex<HashMap<String, i32>>, scan_id: &str) {
        if let Ok(mut map) = running.lock() {
            map.remove(scan_id);
        }
    }
}

/// Keeps the last lines of a stream and copies it to a file, up to a byte limit.
async fn drain_stderr(
    stderr: tokio::process::ChildStderr,
    log: PathBuf,
    max: u64,
) -> VecDeque<String> {
    let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let mut file = tokio::fs::File::create(&log).await.ok();
    let mut written = 0u64;
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(f) = file.as_mut() {
            if written < max {
                let _ = f.write_all(line.as_bytes()).await;
                let _ = f.write_all(b"\n").await;
                written += line.len() as u64 + 1;
            }
        }
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        let mut l = line;
        if l.len() > STDERR_LINE_MAX {
            let mut cut = STDERR_LINE_MAX;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
        }
        tail.push_back(l);
    }
    tail
}

#[async_trait]
impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<String, ExecutorError> {
        let fail = |message: String| ExecutorError::Launch {
            scan_id: spec.scan_id.clone(),
            message,
        };
        let dir = self.work_dir(&spec.scan_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let stdout = std::fs::File::create(dir.join("stdout.log"))
            .map_err(|e| fail(format!("cannot create stdout log: {e}")))?;
        let mut cmd = Command::new(&self.config.program);
        cmd.arg("job")
            .envs(job_env(spec))
            .env(env::REPORT_TOKEN, &spec.report_token)
            .envs(
                spec.scanner_definition
                    .as_ref()
                    .map(|d| (env::SCANNER_DEFINITION, d)),
            )
            .env(INSTANCE_ENV, &self.instance)
            .env("SCANPLANE_PARENT_PID", std::process::id().to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        for name in &self.config.withheld_env {
            cmd.env_remove(name);
        }
        let mut child = cmd.spawn().map_err(|e| {
            fail(format!(
                "cannot start {}: {e}",
                self.config.program.display()
            ))
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| fail("child exited before it had a pid".into()))?;
        let executor_ref = format!("pid:{pid}");
        if let Ok(mut map) = self.running.lock() {
            map.insert(spec.scan_id.clone(), pid);
        }
        let _ = self.observations.send(Observation {
            scan_id: spec.scan_id.clone(),
            executor_ref: executor_ref.clone(),
            state: UnitState::Running {
                detail: Some(executor_ref.clone()),
            },
        });

        let stderr = child.stderr.take();
        let observations = self.observations.clone();
        let running = self.running.clone();
        let scan_id = spec.scan_id.clone();
        let timeout = spec.timeout;
        let max_output = self.config.max_output;
        let log = dir.join("stderr.log");
        let unit_ref = executor_ref.clone();
        let instance = self.instance.clone();
        tokio::spawn(async move {
            let tail_task = stderr.map(|s| tokio::spawn(drain_stderr(s, log, max_output)));
            let waited = tokio::time::timeout(timeout, child.wait()).await;
            let state = match waited {
                Ok(Ok(status)) => {
                    // Scanner processes the job started die with it rather than linger.
                    let _ = kill_scan(instance.clone(), scan_id.clone(), Some(pid)).await;
                    let tail = match tail_task {
                        Some(t) => t.await.unwrap_or_default(),
                        None => VecDeque::new(),
                    };
                    UnitState::Exited {
                        success: status.success(),
                        exit_code: status.code(),
                        message: tail.into_iter().collect::<Vec<_>>().join("\n"),
                    }
                }
                Ok(Err(e)) => {
                    let _ = kill_scan(instance.clone(), scan_id.clone(), Some(pid)).await;
                    UnitState::Failed {
                        message: format!("waiting for the scanner process failed: {e}"),
                    }
                }
                Err(_) => {
                    let _ = kill_scan(instance.clone(), scan_id.clone(), Some(pid)).await;
                    let _ = child.wait().await;
                    UnitState::TimedOut {
                        message: format!(
                            "scanner killed after its timeout of {}",
                            scanplane_core::duration::format_duration(timeout)
                        ),
                    }
                }
            };
            LocalExecutor::forget(&running, &scan_id);
            let _ = observations.send(Observation {
                scan_id,
                executor_ref: unit_ref,
                state,
            });
        });
        Ok(executor_ref)
    }

    async fn cancel(&self, scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError> {
        let known = self
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(scan_id).copied());
        let pgid = known
            .or_else(|| parse_ref(executor_ref))
            .ok_or_else(|| ExecutorError::NotFound(executor_ref.to_string()))?;
        kill_group(pgid)
    }

    async fn list(&self) -> Result<Vec<Unit>, ExecutorError> {
        let instance = self.instance.clone();
        let groups = tokio::task::spawn_blocking(move || scan_proc(&instance))
            .await
            .map_err(|e| ExecutorError::Backend(format!("process listing failed: {e}")))?;
        Ok(jobs_and_orphans(groups, std::process::id()))
    }

    async fn cleanup(&self, scan_id: &str, executor_ref: &str) -> Result<(), ExecutorError> {
        // The directory is per scan: a late cleanup of an earlier attempt must not remove
        // the one the scan's current attempt runs in.
        let current = self
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(scan_id).copied());
        if let Some(pid) = current {
            if parse_ref(executor_ref) != Some(pid) {
                return Ok(());
            }
        }
        let dir = self.work_dir(scan_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecutorError::Backend(format!(
                "cannot remove {}: {e}",
                dir.display()
            ))),
        }
    }
}

/// Finds processes of this executor instance in `/proc`: every process whose environment
/// carries our instance marker, grouped by scan and process group.
fn scan_proc(instance: &str) -> Vec<Unit> {
    let mut units: HashMap<(String, i32), Option<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = format!("{INSTANCE_ENV}={instance}");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("environ"))
        else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        if !vars.contains(&marker.as_bytes()) {
            continue;
        }
        let scan_id = vars.iter().find_map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.strip_prefix(&format!("{}=", env::SCAN_ID)))
                .map(str::to_string)
        });
        let Some(scan_id) = scan_id else { continue };
        let attempt = vars.iter().find_map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.strip_prefix(&format!("{}=", env::ATTEMPT)))
                .and_then(|n| n.parse().ok())
        });
        let Some(pgid) = process_group_of(pid) else {
            continue;
        };
        units.insert((scan_id, pgid), attempt);
    }
    units
        .into_iter()
        .map(|((scan_id, pgid), attempt)| Unit {
            scan_id,
            executor_ref: format!("pgid:{pgid}"),
            attempt,
            active: true,
            ended: None,
        })
        .collect()
}

/// The units a listing reports, from the process groups of this instance: each job this
/// process started, named as [`Executor::launch`] named it (`pid:N`, the leader of its own
/// group), and every group whose leader lost its parent (a tool that outlived its job, as
/// `pgid:G`). Groups a live job's tools created are part of that job, not units.
fn jobs_and_orphans(groups: Vec<Unit>, me: u32) -> Vec<Unit> {
    let me = i32::try_from(me).unwrap_or(i32::MAX);
    groups
        .into_iter()
        .filter_map(|mut u| {
            let pgid = parse_ref(&u.executor_ref)?;
            match parent_of(pgid) {
                Some(parent) if parent == me => {
                    u.executor_ref = format!("pid:{pgid}");
                    Some(u)
                }
                Some(1) | None => Some(u),
                Some(_) => None,
            }
        })
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn process_group_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}
