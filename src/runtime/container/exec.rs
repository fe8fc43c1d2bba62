//! Running the container's command: what crosses `execve` (fds 0-2, default
//! signal handling), PATH lookup and podman-like errors when it fails; and
//! `minipod exec` ([`exec_in`]), which runs a command in a running
//! container's namespaces.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::unistd::ForkResult;

use super::identity::{last_capability, seccomp_last, switch_user};
use super::rootfs::enter_cwd;
use super::terminal::{attach_to_terminal, relay_terminal};
use super::{SYNC_FD, make_undumpable};
use crate::runtime::contract::container::Process;
use crate::runtime::contract::report;
use crate::sys::ns::{self, Namespace};

/// What the container's PATH is when its environment has none (the OCI
/// runtimes' and Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Only fds 0-2 cross exec; minipod's signal dispositions do not either
/// (Rust ignores SIGPIPE, and ignored signals survive exec).
pub(super) fn prepare_exec() -> Result<()> {
    crate::sys::fs::close_on_exec_from(SYNC_FD)?;
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler, so no code of ours can
            // run in signal context; a number the kernel or libc refuses
            // (reserved real-time signals) gives an error, ignored.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .context("clearing the signal mask")?;
    Ok(())
}

/// The container's PATH, from its environment.
pub fn container_path(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// Where execvp would look for `argv0`: itself when it has a `/`, else each
/// PATH entry in order (an empty entry is the working directory).
pub fn exec_candidates(argv0: &str, path: &str) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_string()];
    }
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| format!("{}/{argv0}", dir.trim_end_matches('/')))
        .collect()
}

pub(super) fn exec(process: &Process) -> Result<Infallible> {
    let Some(argv0) = process.argv.first() else {
        bail!("no command: the image has no Entrypoint or Cmd and the pod gives no command");
    };
    let cstrings = |v: &[String]| -> Result<Vec<CString>> {
        v.iter()
            .map(|s| CString::new(s.as_bytes()).map_err(|_| anyhow!("{s:?} contains a NUL byte")))
            .collect()
    };
    let argv = cstrings(&process.argv)?;
    let env = cstrings(&process.env)?;
    let path = container_path(&process.env);
    let mut denied = None;
    let mut no_interpreter = None;
    for candidate in exec_candidates(argv0, path) {
        let file = CString::new(candidate.as_bytes())?;
        let Err(e) = nix::unistd::execve(&file, &argv, &env);
        match e {
            Errno::ENOENT | Errno::ENOTDIR => {
                // The file is there, so what is missing is its #!
                // interpreter or its ELF dynamic loader.
                if no_interpreter.is_none() && Path::new(&candidate).is_file() {
                    no_interpreter = Some(candidate);
                }
            }
            Errno::EACCES => {
                denied.get_or_insert(candidate);
            }
            Errno::ENOEXEC => bail!(
                "the command {candidate:?} is not a program the kernel can run (no #! line, or built \
                 for another architecture)"
            ),
            e => bail!("executing {candidate:?}: {e}"),
        }
    }
    if let Some(c) = no_interpreter {
        bail!(
            "the command {c:?} exists, but its interpreter (#! line) or dynamic loader is missing from the image"
        );
    }
    if let Some(c) = denied {
        bail!(
            "permission denied executing {c:?} as uid {}: it is not executable, or a directory on \
             its path is not searchable",
            process.uid
        );
    }
    if argv0.contains('/') {
        bail!("the command {argv0:?} was not found in the image");
    }
    bail!("the command {argv0:?} was not found in the image (PATH={path})")
}

/// `minipod exec`: runs `process` in the namespaces of the container whose
/// main process is `target` (a host pid): its mount namespace (and so its
/// root), network, IPC, UTS and PID namespaces, as its user, with its
/// capabilities, environment and working directory. Returns the command's
/// exit status (126/127 when it cannot be run, as podman's). The caller is
/// in the user namespace and single-threaded.
pub fn exec_in(target: i32, process: &Process, interactive: bool, tty: bool) -> Result<i32> {
    make_undumpable()?;
    let last_cap = last_capability();
    let namespaces = [
        ns::Kind::Network,
        ns::Kind::Ipc,
        ns::Kind::Uts,
        ns::Kind::Pid,
        // Last: it changes our root and working directory.
        ns::Kind::Mount,
    ]
    .into_iter()
    .map(|kind| {
        Namespace::open(target, kind)
            .with_context(|| format!("opening {}: the container is gone", kind.path(target)))
    })
    .collect::<Result<Vec<_>>>()?;
    for ns in &namespaces {
        ns.enter()
            .with_context(|| format!("joining the container's {:?} namespace", ns.kind().flag()))?;
    }
    drop(namespaces);
    // From the container's own devpts, so the command's /dev/pts/N exists
    // for it.
    let pty = if tty {
        let pty =
            nix::pty::openpty(None, None).context("allocating a terminal in the container")?;
        // Before the command starts, so its first `stty size` sees ours.
        if let Some(size) = crate::sys::tty::window_size(&std::io::stdin()) {
            crate::sys::tty::set_window_size(&pty.master, size);
        }
        Some(pty)
    } else {
        None
    };
    // SAFETY: the caller is single-threaded (see above), so the child may
    // allocate and run any code.
    let forked = unsafe { nix::unistd::fork() }.map_err(|e| match e {
        // The kernel's answer to a fork into a PID namespace whose PID 1
        // has ended: the container stopped as we joined it.
        nix::errno::Errno::ENOMEM => anyhow::anyhow!(
            "fork: ENOMEM: the container stopped as the command started (its PID 1 is gone), or \
             memory ran out"
        ),
        e => anyhow::Error::new(e).context("fork"),
    })?;
    match forked {
        ForkResult::Child => {
            let err = (|| -> Result<Infallible> {
                if let Some(pty) = &pty {
                    attach_to_terminal(&pty.slave)?;
                } else if !interactive {
                    let null = File::open("/dev/null").context("opening /dev/null")?;
                    crate::sys::fs::redirect_fd(&null, 0)?;
                }
                enter_cwd(&process.cwd)?;
                switch_user(process, last_cap)?;
                prepare_exec()?;
                seccomp_last(process)?;
                exec(process)
            })()
            .unwrap_err();
            let msg = report::one_line(&format!("{err:#}"));
            eprintln!("Error: {msg}");
            let code = if msg.contains("not found") { 127 } else { 126 };
            // SAFETY: _exit takes no pointers and does not return; the
            // forked child skips the parent's destructors, which are the
            // parent's to run.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            if let Some(pty) = pty {
                drop(pty.slave);
                relay_terminal(pty.master)?;
            }
            wait_child(child)
        }
    }
}

/// The child's exit code when its side of a copy failed writing to a pipe
/// the other side stopped reading: the other side's error is the one to tell.
const BROKEN_PIPE_EXIT: i32 = 2;

/// `minipod cp`: runs `inside` in a child that joined the user namespace
/// and the mount namespace of the container whose main process is `target`
/// (so `/` is the container's root, its volumes mounted, and the child is
/// root of the user namespace), while `outside` runs in this process, on
/// the host, as the caller. Each gets the other's pipe ends closed (the
/// caller moves its ends into the closures). Returns both sides' results
/// (`outside`, `inside`); an inside error that was a write to a closed pipe
/// comes back as one (`runtime::copy::is_broken_pipe`). Call while
/// single-threaded.
pub fn in_container_files(
    roots: &crate::paths::Roots,
    target: i32,
    inside: impl FnOnce() -> Result<()>,
    outside: impl FnOnce() -> Result<()>,
) -> Result<(Result<()>, Result<()>)> {
    // A side whose reader went away gets EPIPE and says so, instead of
    // dying of SIGPIPE without a word.
    // SAFETY: SIG_IGN installs no handler; we are single-threaded.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let (status_read, status_write) = nix::unistd::pipe().context("making a pipe")?;
    // SAFETY: the caller is single-threaded (see above), so the child may
    // allocate and run any code.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        ForkResult::Child => {
            drop(outside);
            drop(status_read);
            let result = (|| -> Result<()> {
                make_undumpable()?;
                crate::userns::enter(roots)?;
                let mnt = Namespace::open(target, ns::Kind::Mount).with_context(|| {
                    format!(
                        "opening {}: the container is gone",
                        ns::Kind::Mount.path(target)
                    )
                })?;
                mnt.join()
                    .context("joining the container's mount namespace")?;
                drop(mnt);
                inside()
            })();
            let code = match result {
                Ok(()) => 0,
                Err(e) if crate::runtime::copy::is_broken_pipe(&e) => BROKEN_PIPE_EXIT,
                Err(e) => {
                    let _ = File::from(status_write).write_all(format!("{e:#}").as_bytes());
                    1
                }
            };
            // SAFETY: _exit takes no pointers and does not return; the
            // forked child skips the parent's destructors, which are the
            // parent's to run.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(inside);
            drop(status_write);
            let here = outside();
            let mut message = String::new();
            let _ = File::from(status_read).read_to_string(&mut message);
            let there = match wait_child(child)? {
                0 => Ok(()),
                BROKEN_PIPE_EXIT => Err(anyhow::Error::new(std::io::Error::from(
                    std::io::ErrorKind::BrokenPipe,
                ))),
                1 => Err(anyhow!(message)),
                code => Err(anyhow!(
                    "the copy's process in the container ended with {code}"
                )),
            };
            Ok((here, there))
        }
    }
}

fn wait_child(child: nix::unistd::Pid) -> Result<i32> {
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => bail!("waiting for the command: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn path_lookup() {
        assert_eq!(exec_candidates("/bin/sh", "/x"), vec!["/bin/sh"]);
        assert_eq!(exec_candidates("./run", "/x"), vec!["./run"]);
        assert_eq!(
            exec_candidates("sh", "/usr/bin:/bin/::/"),
            vec!["/usr/bin/sh", "/bin/sh", "./sh", "/sh"]
        );
        let env = vec!["A=1".to_string(), "PATH=/opt/bin".to_string()];
        assert_eq!(container_path(&env), "/opt/bin");
        assert_eq!(container_path(&[]), DEFAULT_PATH);
    }
}
