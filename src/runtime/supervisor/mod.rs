//! A pod's supervisor (`minipod-supervisor POD DIR`, conmon's role): it
//! leases the pod's address and binds its hostPorts, starts its pause
//! process, runs its containers as the pod's rules say, and releases
//! everything at the end.
//!
//! - `machine`: what to do — every decision (order, restarts, backoff, stop
//!   order, exit code and phase), pure and unit-tested;
//! - `pod`: doing it — processes, signals, the control socket, state files;
//! - `output`: moving containers' output to their logs, the terminal and
//!   attach clients;
//! - `console`: containers' stdin and pty, and the attach sessions on them;
//! - `log`: what it tells the user on stderr.
//!
//! `minipod run` works the pod out (runtime::launch) and hands this process
//! a finished plan (`contract::plan`): in the foreground by exec'ing it,
//! with `-d` as a child in its own session. This module and what it calls
//! are all the supervisor binary links, so keep the YAML schema, the image
//! store and anything heavy out of it.

mod console;
mod eviction;
mod log;
pub mod machine;
mod output;
mod pod;
mod probe_net;
mod probe_wire;
mod prober;

use std::process::ExitCode;

use anyhow::{Context, Result};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::contract::fds::{FD_MINIPOD, FD_POD_LOCK, FD_REPORT};
use super::contract::plan::SupervisorPlan;
use super::contract::report::Line;
use crate::sys::lock::FileLock;

/// The supervisor's `main`. Errors before the pod started go back to
/// `run -d` on fd 3; in the foreground they are printed.
pub fn main() -> ExitCode {
    // SAFETY: restores the default disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Read (and closed) first: everything from FD_MINIPOD up goes next.
    let plan = SupervisorPlan::read_passed();
    // Whatever `run` inherited beyond what it passed (a test runner's
    // flock, a jobserver's pipe) would be held for the pod's life: closed.
    // The report pipe, the pod's lock and the binary are ours alone: the
    // pause and the links must not inherit them (`run -d` would wait for
    // them, the lock would outlive us).
    if let Err(e) = crate::sys::fs::close_from(FD_MINIPOD + 1)
        .and_then(|()| crate::sys::fs::close_on_exec_from(FD_REPORT))
    {
        log::error(format!("minipod-supervisor: {e:#}"));
        return ExitCode::from(crate::EXIT_MINIPOD_ERROR);
    }
    match plan.and_then(supervise) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            // Tell `run -d`, if it is still listening (no-op once reported:
            // fd 3 is /dev/null then).
            let _ = Line::Error(&format!("{e:#}")).write_to_fd(FD_REPORT);
            log::error(format!("{e:#}"));
            ExitCode::from(crate::EXIT_MINIPOD_ERROR)
        }
    }
}

/// Runs the pod to its end and returns `run`'s exit code. Runs on the main
/// thread before any other thread exists (threads inherit the signal mask).
fn supervise(plan: SupervisorPlan) -> Result<i32> {
    // One malloc arena for every thread (output pumps, hostPort relays):
    // they allocate little, and an arena each costs resident pages per pod.
    // SAFETY: mallopt before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // SAFETY: `minipod run` hands the pod's lock over as this descriptor.
    let lock = unsafe { FileLock::from_inherited(FD_POD_LOCK) };
    // From here on the pod's files are ours to remove (Pod's Drop).
    let mut pod = pod::Pod::new(plan, lock)?;
    let signals = crate::sys::proc::stop_signals_and_sigchld();
    signals.thread_block().context("blocking signals")?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("creating a signalfd")?;
    // Orphans of our children come back to us to be reaped.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    pod.start_pause()?;
    pod.supervise(&sigfd)
}
