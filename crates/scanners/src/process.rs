//! Running external scanner programs: locating them on `PATH`, enforcing the scan's
//! deadline, keeping the tail of stderr for error reports, and killing the whole process
//! group when the scan ends or is abandoned.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::ScanError;

/// How many stderr lines are kept for the error message of a failed run.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept, so one runaway line cannot blow up an error message.
const STDERR_LINE_MAX: usize = 500;

/// Finds `program` the way a shell would: a name containing `/` is used as a path, any
/// other name is looked up in each `PATH` directory.
pub(crate) fn find_program(scanner: &str, program: &str) -> Result<PathBuf, ScanError> {
    let not_installed = || ScanError::NotInstalled {
        scanner: scanner.to_string(),
        program: program.to_string(),
    };
    if program.is_empty() {
        return Err(not_installed());
    }
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(not_installed())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(not_installed)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A program to run for a scan.
pub(crate) struct ExternalCommand {
    pub scanner: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub work_dir: PathBuf,
    pub timeout: Duration,
}

/// Kills the child's whole process group when dropped, because `kill_on_drop` only reaches
/// the direct child and a wrapper script's children would otherwise outlive the scan.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    /// Kills whatever is left of the group and disarms the guard.
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            // The group may already be gone; that is the normal case after a clean exit.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A started program whose stdout the caller reads before calling [`Running::finish`].
pub(crate) struct Running {
    scanner: String,
    timeout: Duration,
    deadline: Instant,
    stdout: BufReader<ChildStdout>,
    stderr: JoinHandle<VecDeque<String>>,
    // Field order matters: the child is killed before the group guard runs.
    child: Child,
    group: GroupGuard,
}

impl ExternalCommand {
    pub(crate) fn spawn(self) -> Result<Running, ScanError> {
        // A missing work directory would make the spawn fail with "not found", which must
        // not be mistaken for a missing program.
        std::fs::create_dir_all(&self.work_dir).map_err(|e| {
            ScanError::io(
                &self.scanner,
                format!("creating work directory {}", self.work_dir.display()),
                e,
            )
        })?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        tracing::debug!(scanner = %self.scanner, program = %self.program.display(), args = ?self.args, "starting scanner process");
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ScanError::NotInstalled {
                    scanner: self.scanner.clone(),
                    program: self.program.display().to_string(),
                }
            } else {
                ScanError::io(
                    &self.scanner,
                    format!("starting {}", self.program.display()),
                    e,
                )
            }
        })?;
        let group = GroupGuard(child.id().and_then(|p| i32::try_from(p).ok()));
        let missing = |what: &str| {
            ScanError::io(
                &self.scanner,
                format!("capturing {what}"),
                std::io::Error::other("pipe missing"),
            )
        };
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| missing("stderr"))?;
        Ok(Running {
            scanner: self.scanner,
            timeout: self.timeout,
            deadline: Instant::now() + self.timeout,
            stdout: BufReader::new(stdout),
            stderr: tokio::spawn(tail_lines(stderr)),
            child,
            group,
        })
    }
}

async fn tail_lines(stream: impl AsyncRead + Unpin) -> VecDeque<String> {
    let mut reader = BufReader::new(stream);
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text: String = text.trim_end().chars().take(STDERR_LINE_MAX).collect();
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
        }
    }
    tail
}

impl Running {
    fn timed_out(&self) -> ScanError {
        ScanError::Timeout {
            scanner: self.scanner.clone(),
            after: self.timeout,
        }
    }

    /// Reads the next stdout line into `buf` (cleared first); returns false at end of output.
    pub(crate) async fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<bool, ScanError> {
        buf.clear();
        let read = tokio::time::timeout_at(self.deadline, self.stdout.read_until(b'\n', buf));
        match read.await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(e)) => Err(ScanError::io(&self.scanner, "reading stdout", e)),
            Ok(Ok(n)) => Ok(n > 0),
        }
    }

    /// Reads all of stdout.
    pub(crate) async fn read_all(&mut self) -> Result<Vec<u8>, ScanError> {
        let mut out = Vec::new();
        let read = tokio::time::timeout_at(self.deadline, self.stdout.read_to_end(&mut out));
        match read.await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(e)) => Err(ScanError::io(&self.scanner, "reading stdout", e)),
            Ok(Ok(_)) => Ok(out),
        }
    }

    /// Waits for the program to exit; any exit code but 0 is a failure carrying the last
    /// lines of stderr.
    pub(crate) async fn finish(mut self) -> Result<(), ScanError> {
        let status = match tokio::time::timeout_at(self.deadline, self.child.wait()).await {
            Err(_) => return Err(self.timed_out()),
            Ok(Err(e)) => return Err(ScanError::io(&self.scanner, "waiting for exit", e)),
            Ok(Ok(s)) => s,
        };
        // Background processes the program left behind are part of the scan and end with
        // it; killing them right away also closes the stderr pipe they may hold open.
        self.group.kill();
        // A process that escaped the group could still hold stderr open, so the tail is
        // read with a short grace period.
        let tail = match tokio::time::timeout(Duration::from_secs(2), &mut self.stderr).await {
            Ok(Ok(lines)) => lines.into_iter().collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        };
        if status.success() {
            if !tail.is_empty() {
                tracing::debug!(scanner = %self.scanner, stderr = %tail, "scanner stderr");
            }
            Ok(())
        } else {
            Err(ScanError::Failed {
                scanner: self.scanner.clone(),
                exit_code: status.code(),
                stderr_tail: tail,
            })
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stderr.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> ExternalCommand {
        ExternalCommand {
            scanner: "test".into(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            work_dir: std::env::temp_dir(),
            timeout,
        }
    }

    #[tokio::test]
    async fn captures_stdout_and_stderr_tail() {
        let mut r = sh(
            "echo $GREETING; for i in $(seq 1 30); do echo line$i >&2; done; exit 3",
            Duration::from_secs(10),
        )
        .spawn()
        .unwrap();
        let out = r.read_all().await.unwrap();
        assert_eq!(out, b"hello\n");
        match r.finish().await {
            Err(ScanError::Failed {
                exit_code,
                stderr_tail,
                ..
            }) => {
                assert_eq!(exit_code, Some(3));
                assert!(stderr_tail.starts_with("line11\n"), "{stderr_tail}");
                assert!(stderr_tail.ends_with("line30"), "{stderr_tail}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn times_out_and_kills_the_group() {
        let started = std::time::Instant::now();
        let mut r = sh("sleep 30 & sleep 30", Duration::from_millis(300))
            .spawn()
            .unwrap();
        let e = r.read_all().await.unwrap_err();
        assert!(matches!(e, ScanError::Timeout { .. }), "{e:?}");
        drop(r);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn missing_work_dir_is_created_not_mistaken_for_a_missing_program() {
        let base = tempfile::tempdir().unwrap();
        let mut cmd = sh("pwd", Duration::from_secs(10));
        cmd.work_dir = base.path().join("a/b");
        let mut r = cmd.spawn().unwrap();
        let out = r.read_all().await.unwrap();
        r.finish().await.unwrap();
        assert!(String::from_utf8_lossy(&out).trim_end().ends_with("/a/b"));
    }

    #[test]
    fn missing_programs_are_not_installed() {
        let e = find_program("nope", "scanplane-no-such-program").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"scanner "nope" not found on PATH (looked for program "scanplane-no-such-program")"#
        );
        assert!(find_program("sh", "sh").is_ok());
        assert!(find_program("x", "/nonexistent/bin/x").is_err());
    }
}
