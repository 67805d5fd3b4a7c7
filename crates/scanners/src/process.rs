//! Running external scanner programs, the same way for every adapter: locating them on
//! `PATH`; one deadline for the whole scan, each start given only the time that is left;
//! output read in bounded memory (lines up to a limit, documents up to a limit); the tail of
//! stderr kept for error reports; the whole process group killed when the scan ends or is
//! abandoned; and findings handed on with cancellation as [`ScanError::Cancelled`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use scanplane_core::finding::Finding;
use scanplane_core::target::Target;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use tokio::sync::mpsc;

use crate::error::{ParseError, ScanError};
use crate::parsed::{too_long, Parsed, Rejections, Streamed};
use crate::{emit, RunRequest, ScanOutcome};

/// How many stderr lines are kept for the error message of a failed run.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept, so one runaway line cannot blow up an error message.
const STDERR_LINE_MAX: usize = 500;
/// Most bytes of output kept as one document (a tool's whole stdout, or a report file).
pub(crate) const DOCUMENT_MAX: usize = 512 * 1024 * 1024;
/// Longest line of line-oriented output (one record per line) that is parsed; a longer one
/// is skipped without being held in memory.
pub const RECORD_MAX: usize = 4 * 1024 * 1024;

/// Finds `program` the way a shell would: a name containing `/` is a path (made absolute
/// against the current directory), any other name is looked up in each `PATH` directory.
/// `None` when that is not an executable file. `serve` resolves custom commands with it at
/// start-up, the same way scanner mode finds them when it runs them.
pub fn locate_program(program: &str) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = std::path::absolute(program).ok()?;
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

/// [`locate_program`] with the error a scan reports.
pub(crate) fn find_program(scanner: &str, program: &str) -> Result<PathBuf, ScanError> {
    locate_program(program).ok_or_else(|| ScanError::NotInstalled {
        scanner: scanner.to_string(),
        program: program.to_string(),
    })
}

/// Why `program` cannot be run here, with how to install it; `None` when it can.
pub(crate) fn missing_program(scanner: &str, program: &str, install: &str) -> Option<String> {
    find_program(scanner, program)
        .err()
        .map(|e| format!("{e}; {install}"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// An external tool run for one scan. Every start gets the time left until the scan's
/// deadline, so the deadline holds for the whole scan however many targets it has.
pub(crate) struct Tool {
    scanner: String,
    program: PathBuf,
    env: Vec<(String, String)>,
    work_dir: PathBuf,
    /// The scan's timeout, named in timeout errors.
    timeout: Duration,
    deadline: Instant,
}

/// One run of a tool for one target: the canonical target and the tool's arguments.
pub(crate) struct TargetRun {
    pub target: String,
    pub args: Vec<String>,
}

/// Parses one document of a tool's output about a target.
pub(crate) type ParseDocument = fn(&[u8], &str) -> Result<Parsed, ParseError>;
/// Parses one line of a tool's output about a target (`line_no` is 1-based).
pub(crate) type ParseLine = fn(&[u8], usize, &str) -> Result<Option<Finding>, ParseError>;

impl TargetRun {
    /// One run per target that `args` gives arguments for; a target it gives none for is
    /// not one the tool scans and is skipped.
    pub(crate) fn each(
        targets: &[Target],
        args: impl Fn(&Target) -> Option<Vec<String>>,
    ) -> Vec<TargetRun> {
        targets
            .iter()
            .filter_map(|t| {
                args(t).map(|args| TargetRun {
                    target: t.to_string(),
                    args,
                })
            })
            .collect()
    }
}

/// How a tool reports its findings.
pub(crate) enum ToolOutput {
    /// One document, parsed once the tool has exited successfully: `parse(output, target)`.
    Document(ParseDocument),
    /// One record per line, parsed while the tool runs so findings stream out:
    /// `parse_line(line, line_no, target)`; blank lines give `None`.
    Lines(ParseLine),
}

impl Tool {
    /// A tool for `req`: it runs in the request's work directory within its timeout.
    pub(crate) fn new(scanner: &str, program: PathBuf, req: &RunRequest) -> Self {
        Tool {
            scanner: scanner.to_string(),
            program,
            env: Vec::new(),
            work_dir: req.work_dir.clone(),
            timeout: req.timeout,
            deadline: Instant::now() + req.timeout,
        }
    }

    pub(crate) fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    /// Shortens the scan's timeout (a scanner's own limit); it is never lengthened.
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        if timeout < self.timeout {
            self.deadline -= self.timeout - timeout;
            self.timeout = timeout;
        }
        self
    }

    fn timed_out(&self) -> ScanError {
        ScanError::Timeout {
            scanner: self.scanner.clone(),
            after: self.timeout,
        }
    }

    /// Reads other output of the tool (a report file it wrote) within the same deadline.
    pub(crate) fn output<R: AsyncRead + Unpin>(&self, reader: R) -> Output<R> {
        Output::new(&self.scanner, reader, self.timeout, Some(self.deadline))
    }

    /// Starts the program with `args`, with the time left until the deadline.
    pub(crate) fn start(&self, args: Vec<String>) -> Result<Running, ScanError> {
        if Instant::now() >= self.deadline {
            return Err(self.timed_out());
        }
        ExternalCommand {
            scanner: self.scanner.clone(),
            program: self.program.clone(),
            args,
            env: self.env.clone(),
            work_dir: self.work_dir.clone(),
            timeout: self.timeout,
            deadline: self.deadline,
        }
        .spawn()
    }

    /// Runs the tool once per target, in order, sending every finding on. A record of the
    /// output that cannot be read is dropped and counted with its reason (named by target);
    /// a target whose run fails, or whose output has no usable record, ends the scan with
    /// that error. The outcome lists the targets scanned and what was dropped.
    pub(crate) async fn run_per_target(
        &self,
        runs: Vec<TargetRun>,
        output: ToolOutput,
        findings: &mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        let mut outcome = ScanOutcome::default();
        for run in runs {
            let mut running = self.start(run.args)?;
            let reject = |rejected: &mut Rejections, e: &ParseError| {
                rejected.add(format!("{}: {}", run.target, e.message));
            };
            match output {
                ToolOutput::Document(parse) => {
                    let document = running.stdout.read_to_end(DOCUMENT_MAX).await?;
                    running.finish().await?;
                    let parsed = parse(&document, &run.target)?;
                    for e in &parsed.rejected {
                        reject(&mut outcome.rejected, e);
                    }
                    for f in parsed.findings {
                        emit(&self.scanner, findings, f).await?;
                    }
                }
                ToolOutput::Lines(parse_line) => {
                    let mut streamed = Streamed::default();
                    let mut line_no = 0;
                    while let Some(line) = running.stdout.next_line(RECORD_MAX).await? {
                        line_no += 1;
                        let record = match line {
                            Line::Text(text) => parse_line(text, line_no, &run.target),
                            Line::TooLong { bytes, .. } => {
                                Err(ParseError::new(&self.scanner, too_long(line_no, bytes)))
                            }
                        };
                        match record {
                            Ok(Some(f)) => {
                                streamed.found();
                                emit(&self.scanner, findings, f).await?;
                            }
                            Ok(None) => {}
                            Err(e) => {
                                streamed.rejected(&e);
                                reject(&mut outcome.rejected, &e);
                            }
                        }
                    }
                    running.finish().await?;
                    streamed.unless_all_rejected()?;
                }
            }
            outcome.targets_scanned.push(run.target);
        }
        Ok(outcome)
    }
}

/// A program to run for a scan.
pub(crate) struct ExternalCommand {
    pub scanner: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub work_dir: PathBuf,
    /// The scan's timeout, named in timeout errors.
    pub timeout: Duration,
    /// When the program is stopped.
    pub deadline: Instant,
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

/// One line of output read with a length limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// The line without its newline.
    Text(&'a [u8]),
    /// The line was longer than the limit: `bytes` long, of which only the first `max`
    /// bytes (`head`) were kept.
    TooLong { bytes: usize, head: &'a [u8] },
}

/// A tool's output (its stdout, or a report file it wrote), read before the scan's deadline
/// in bounded memory.
pub(crate) struct Output<R> {
    scanner: String,
    reader: BufReader<R>,
    line: Vec<u8>,
    timeout: Duration,
    /// `None` for output read without a deadline (stderr, which ends with the process).
    deadline: Option<Instant>,
}

/// Runs `work` until `deadline`; `None` when the deadline came first.
async fn before<T>(
    deadline: Option<Instant>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, work).await.ok(),
        None => Some(work.await),
    }
}

impl<R: AsyncRead + Unpin> Output<R> {
    pub(crate) fn new(
        scanner: &str,
        reader: R,
        timeout: Duration,
        deadline: Option<Instant>,
    ) -> Self {
        Output {
            scanner: scanner.to_string(),
            reader: BufReader::new(reader),
            line: Vec::new(),
            timeout,
            deadline,
        }
    }

    fn timed_out(&self) -> ScanError {
        ScanError::Timeout {
            scanner: self.scanner.clone(),
            after: self.timeout,
        }
    }

    /// Reads the next line; `None` at the end of the output. A line longer than `max` bytes
    /// (not counting its newline) is consumed up to its newline and reported as
    /// [`Line::TooLong`]; at most `max` bytes are ever held, however the bytes arrive.
    pub(crate) async fn next_line(&mut self, max: usize) -> Result<Option<Line<'_>>, ScanError> {
        self.line.clear();
        let mut len = 0usize;
        let mut seen = false;
        loop {
            let buf = match before(self.deadline, self.reader.fill_buf()).await {
                None => return Err(self.timed_out()),
                Some(Err(e)) => return Err(ScanError::io(&self.scanner, "reading output", e)),
                Some(Ok(buf)) => buf,
            };
            if buf.is_empty() {
                if !seen {
                    return Ok(None);
                }
                break;
            }
            seen = true;
            let newline = buf.iter().position(|b| *b == b'\n');
            let piece = &buf[..newline.unwrap_or(buf.len())];
            len = len.saturating_add(piece.len());
            let room = max.saturating_sub(self.line.len());
            self.line.extend_from_slice(&piece[..piece.len().min(room)]);
            let used = newline.map_or(buf.len(), |i| i + 1);
            self.reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        Ok(Some(if len > max {
            Line::TooLong {
                bytes: len,
                head: &self.line,
            }
        } else {
            Line::Text(&self.line)
        }))
    }

    /// Reads the rest of the output, which may be at most `max` bytes.
    pub(crate) async fn read_to_end(&mut self, max: usize) -> Result<Vec<u8>, ScanError> {
        let mut out = Vec::new();
        self.read_rest_into(&mut out, max).await?;
        Ok(out)
    }

    /// Appends the rest of the output to `out`, which may then hold at most `max` bytes.
    pub(crate) async fn read_rest_into(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), ScanError> {
        let room = max.saturating_sub(out.len());
        let limit = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
        let mut limited = (&mut self.reader).take(limit);
        match before(self.deadline, limited.read_to_end(out)).await {
            None => Err(self.timed_out()),
            Some(Err(e)) => Err(ScanError::io(&self.scanner, "reading output", e)),
            Some(Ok(_)) if out.len() > max => Err(ScanError::TooLarge {
                scanner: self.scanner.clone(),
                limit: max,
            }),
            Some(Ok(_)) => Ok(()),
        }
    }
}

/// A started program whose stdout the caller reads before calling [`Running::finish`].
pub(crate) struct Running {
    pub stdout: Output<ChildStdout>,
    scanner: String,
    timeout: Duration,
    deadline: Instant,
    stderr: JoinHandle<VecDeque<String>>,
    // Field order matters: the child is killed before the group guard runs.
    child: Child,
    group: GroupGuard,
}

/// Env vars of scanner mode that a scanner's process never inherits (the protocol's
/// `SCANPLANE_REPORT_TOKEN` and `SCANPLANE_SCANNER_DEFINITION`).
const WITHHELD_ENV: [&str; 2] = ["SCANPLANE_REPORT_TOKEN", "SCANPLANE_SCANNER_DEFINITION"];

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
        cmd.args(&self.args);
        // What scanner mode keeps to itself: the tool (third-party, or a custom command)
        // needs neither the credential to report as this scan nor the definition, whose
        // env may hold credentials it already received one by one.
        for withheld in WITHHELD_ENV {
            cmd.env_remove(withheld);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
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
            stdout: Output::new(&self.scanner, stdout, self.timeout, Some(self.deadline)),
            scanner: self.scanner,
            timeout: self.timeout,
            deadline: self.deadline,
            stderr: tokio::spawn(tail_lines(stderr)),
            child,
            group,
        })
    }
}

async fn tail_lines(stream: impl AsyncRead + Unpin) -> VecDeque<String> {
    // Stderr ends with the process, so it is read without a deadline of its own.
    let mut out = Output::new("", stream, Duration::MAX, None);
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    // Only the start of each line is kept (a character is at most 4 bytes), so a runaway
    // line is cut rather than held.
    while let Ok(Some(line)) = out.next_line(STDERR_LINE_MAX * 4).await {
        let (Line::Text(bytes) | Line::TooLong { head: bytes, .. }) = line;
        let text = String::from_utf8_lossy(bytes);
        let text: String = text.trim_end().chars().take(STDERR_LINE_MAX).collect();
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
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
    use std::pin::Pin;
    use std::task::{Context, Poll};

    fn sh(script: &str, timeout: Duration) -> ExternalCommand {
        ExternalCommand {
            scanner: "test".into(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            work_dir: std::env::temp_dir(),
            timeout,
            deadline: Instant::now() + timeout,
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
        let out = r.stdout.read_to_end(DOCUMENT_MAX).await.unwrap();
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
    async fn a_runaway_stderr_line_is_cut_to_its_start() {
        let r = sh(
            "head -c 3000000 /dev/zero | tr '\\0' x >&2; echo >&2; echo last >&2; exit 1",
            Duration::from_secs(10),
        )
        .spawn()
        .unwrap();
        match r.finish().await {
            Err(ScanError::Failed { stderr_tail, .. }) => {
                assert_eq!(
                    stderr_tail,
                    format!("{}\nlast", "x".repeat(STDERR_LINE_MAX))
                );
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
        let e = r.stdout.read_to_end(DOCUMENT_MAX).await.unwrap_err();
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
        let out = r.stdout.read_to_end(DOCUMENT_MAX).await.unwrap();
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

    /// Hands out its bytes at most `chunk` at a time, as a pipe may.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self
                .chunk
                .min(buf.remaining())
                .min(self.data.len() - self.pos);
            let pos = self.pos;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// Reads every line of `data` with limit `max`, as text or as the length it had.
    async fn lines(data: &[u8], chunk: usize, max: usize) -> Vec<Result<Vec<u8>, usize>> {
        let reader = Chunked {
            data: data.to_vec(),
            pos: 0,
            chunk,
        };
        let mut out = Output::new("test", reader, Duration::from_secs(5), None);
        let mut got = Vec::new();
        while let Some(line) = out.next_line(max).await.unwrap() {
            got.push(match line {
                Line::Text(t) => Ok(t.to_vec()),
                Line::TooLong { bytes, head } => {
                    assert_eq!(head.len(), max, "only the start of a long line is kept");
                    Err(bytes)
                }
            });
        }
        got
    }

    #[tokio::test]
    async fn a_line_is_too_long_by_its_length_not_by_how_it_arrives() {
        let max = 10;
        let mut data = Vec::new();
        data.extend_from_slice(&[b'a'; 10]);
        data.push(b'\n');
        data.extend_from_slice(&[b'b'; 11]);
        data.push(b'\n');
        data.extend_from_slice(b"\nok\n");
        data.extend_from_slice(&[b'c'; 25]);
        let expected: Vec<Result<Vec<u8>, usize>> = vec![
            Ok(vec![b'a'; 10]),
            Err(11),
            Ok(Vec::new()),
            Ok(b"ok".to_vec()),
            Err(25),
        ];
        for chunk in [1, 2, 3, 7, 10, 11, 12, 64, 8192] {
            assert_eq!(
                lines(&data, chunk, max).await,
                expected,
                "chunks of {chunk}"
            );
        }
        assert_eq!(lines(b"last", 3, max).await, vec![Ok(b"last".to_vec())]);
        assert!(lines(b"", 3, max).await.is_empty());
    }

    #[tokio::test]
    async fn a_document_over_its_limit_is_refused() {
        let reader = Chunked {
            data: vec![b'x'; 100],
            pos: 0,
            chunk: 7,
        };
        let mut out = Output::new("test", reader, Duration::from_secs(5), None);
        let e = out.read_to_end(99).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "scanner \"test\" wrote more than 99 bytes of output"
        );
        let reader = Chunked {
            data: vec![b'x'; 100],
            pos: 0,
            chunk: 7,
        };
        let mut out = Output::new("test", reader, Duration::from_secs(5), None);
        assert_eq!(out.read_to_end(100).await.unwrap().len(), 100);
    }

    fn request(timeout: Duration) -> RunRequest {
        RunRequest {
            scan_id: "s".into(),
            targets: Vec::new(),
            billing: false,
            options: serde_json::Value::Null,
            work_dir: std::env::temp_dir(),
            timeout,
        }
    }

    fn never_called(_: &[u8], _: &str) -> Result<Parsed, ParseError> {
        Ok(Parsed::default())
    }

    #[tokio::test]
    async fn the_deadline_holds_for_the_whole_scan_not_each_target() {
        let tool = Tool::new(
            "test",
            PathBuf::from("/bin/sh"),
            &request(Duration::from_millis(1500)),
        );
        let runs = (0..4)
            .map(|i| TargetRun {
                target: format!("t{i}"),
                args: vec!["-c".into(), "sleep 1".into()],
            })
            .collect();
        let (tx, _rx) = mpsc::channel(1);
        let started = std::time::Instant::now();
        let e = tool
            .run_per_target(runs, ToolOutput::Document(never_called), &tx)
            .await
            .unwrap_err();
        // The second target gets only what is left of the 1.5 s, not 1.5 s of its own.
        assert!(
            matches!(e, ScanError::Timeout { after, .. } if after == Duration::from_millis(1500)),
            "{e:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_scanner_limit_only_shortens_the_scan_timeout() {
        let req = request(Duration::from_secs(60));
        let tool = Tool::new("test", PathBuf::from("/bin/sh"), &req)
            .with_timeout(Duration::from_millis(200));
        let mut r = tool.start(vec!["-c".into(), "sleep 5".into()]).unwrap();
        let e = r.stdout.read_to_end(DOCUMENT_MAX).await.unwrap_err();
        assert!(
            matches!(e, ScanError::Timeout { after, .. } if after == Duration::from_millis(200)),
            "{e:?}"
        );
        let tool = Tool::new("test", PathBuf::from("/bin/sh"), &req)
            .with_timeout(Duration::from_secs(3600));
        assert_eq!(tool.timeout, Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_closed_findings_channel_is_cancelled() {
        let tool = Tool::new(
            "test",
            PathBuf::from("/bin/sh"),
            &request(Duration::from_secs(10)),
        );
        fn one(_: &[u8], _: usize, target: &str) -> Result<Option<Finding>, ParseError> {
            Ok(Some(Finding::new(
                "test",
                target,
                "r",
                scanplane_core::finding::Severity::Info,
                "t",
                "",
            )))
        }
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let runs = vec![TargetRun {
            target: "t".into(),
            args: vec!["-c".into(), "echo a; echo b".into()],
        }];
        let e = tool
            .run_per_target(runs, ToolOutput::Lines(one), &tx)
            .await
            .unwrap_err();
        assert!(matches!(e, ScanError::Cancelled { .. }), "{e:?}");
    }

    /// A line is a finding when it is `ok`, and malformed otherwise.
    fn ok_lines(line: &[u8], line_no: usize, target: &str) -> Result<Option<Finding>, ParseError> {
        match line {
            b"" => Ok(None),
            b"ok" => Ok(Some(Finding::new(
                "test",
                target,
                format!("r{line_no}"),
                scanplane_core::finding::Severity::Info,
                "t",
                "",
            ))),
            _ => Err(ParseError::new("test", format!("line {line_no}: not ok"))),
        }
    }

    #[tokio::test]
    async fn bad_lines_are_dropped_and_counted_per_target() {
        let tool = Tool::new(
            "test",
            PathBuf::from("/bin/sh"),
            &request(Duration::from_secs(30)),
        );
        let runs = vec![TargetRun {
            target: "t1".into(),
            args: vec![
                "-c".into(),
                format!(
                    "echo ok; echo bad; head -c {} /dev/zero; echo; echo ok",
                    RECORD_MAX + 1
                ),
            ],
        }];
        let (tx, mut rx) = mpsc::channel(16);
        let outcome = tool
            .run_per_target(runs, ToolOutput::Lines(ok_lines), &tx)
            .await
            .unwrap();
        drop(tx);
        let mut rules = Vec::new();
        while let Some(f) = rx.recv().await {
            rules.push(f.rule_id);
        }
        assert_eq!(rules, ["r1", "r4"]);
        assert_eq!(outcome.targets_scanned, ["t1"]);
        assert_eq!(outcome.rejected.count, 2);
        assert_eq!(
            outcome.rejected.reasons,
            [
                "t1: line 2: not ok".to_string(),
                format!(
                    "t1: line 3: {} bytes, longer than {RECORD_MAX}",
                    RECORD_MAX + 1
                )
            ]
        );
    }

    #[tokio::test]
    async fn output_without_one_good_line_fails_the_target() {
        let tool = Tool::new(
            "test",
            PathBuf::from("/bin/sh"),
            &request(Duration::from_secs(30)),
        );
        let runs = vec![TargetRun {
            target: "t1".into(),
            args: vec!["-c".into(), "echo bad; echo; echo worse".into()],
        }];
        let (tx, _rx) = mpsc::channel(16);
        let e = tool
            .run_per_target(runs, ToolOutput::Lines(ok_lines), &tx)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "scanner \"test\" produced unreadable output: line 1: not ok (and 1 more unusable record)"
        );
    }
}
