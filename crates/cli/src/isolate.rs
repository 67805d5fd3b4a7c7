//! Scanner mode in a PID namespace of its own, where the kernel allows it (root or
//! CAP_SYS_ADMIN). Killing a unit's process group does not reach a scanner process that
//! left the group (`setsid`, a daemonizing tool); inside a PID namespace it dies anyway,
//! because the kernel kills every process of a namespace when its first process ends.
//!
//! `scanplane job` starts as the *outer* process: it asks for a new PID namespace and runs
//! itself again as the namespace's first process (the *inner* job, which runs the scan),
//! then waits and exits with its code. Both stay in the unit's process group, so the
//! executor's group kill ends both; the inner one also dies with the outer one
//! (parent-death signal). Where namespaces are refused, the job runs as it always did,
//! isolated by its process group only. `SCANPLANE_PID_NAMESPACE=off` turns it off.

use std::process::Command;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::Signal;

/// Set to `off` to run scanner mode without a PID namespace.
pub const PID_NAMESPACE_ENV: &str = "SCANPLANE_PID_NAMESPACE";
/// Marks the inner job (the namespace's first process).
const INNER_ENV: &str = "SCANPLANE_PID_NAMESPACE_INIT";

/// How this `scanplane job` process runs.
pub enum Role {
    /// Runs the scan itself: inside a namespace when `isolated`.
    Job { isolated: bool },
    /// Ran the inner job to its end; exit with this code.
    Done(i32),
}

/// Decides, and for the outer process carries out, the namespace step. Call it first
/// thing in scanner mode, before the async runtime starts threads.
pub fn enter() -> Role {
    if std::env::var_os(INNER_ENV).is_some() {
        // The inner job: die with the outer one. The usual race check against the
        // parent's pid cannot work here (the parent lives outside the namespace and
        // shows as pid 0), and the outer process waits for this one, so it is alive.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        return Role::Job { isolated: true };
    }
    if std::env::var(PID_NAMESPACE_ENV).is_ok_and(|v| v == "off") {
        return Role::Job { isolated: false };
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(_) => return Role::Job { isolated: false },
    };
    // Affects only the children created from now on: the next one is the namespace's
    // first process.
    if unshare(CloneFlags::CLONE_NEWPID).is_err() {
        return Role::Job { isolated: false };
    }
    // The outer process still dies with the control plane that started it.
    scanplane_job::die_with_parent();
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(INNER_ENV, "1")
        .status();
    match status {
        Ok(s) => Role::Done(exit_code(s)),
        Err(e) => {
            eprintln!("error: cannot start scanner mode in its PID namespace: {e}");
            Role::Done(2)
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}
