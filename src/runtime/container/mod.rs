//! The container init: `minipod __container CONFIG.json`, the process that
//! turns a resolved [`ContainerConfig`] into a running container process.
//!
//! # Protocol with the supervisor
//!
//! The supervisor (already inside minipod's user namespace) starts
//! `minipod __container CONFIG.json` with the container's stdio on fds 0-2
//! and the write end of a pipe, the *sync pipe*, on fd 3. Every line on the
//! sync pipe is ASCII, ends in `\n`, and is one of:
//!
//! - `pid <N>` — written by the `__container` process right after it forked
//!   the container's init; `N` is that child's pid in the supervisor's PID
//!   namespace. Always the first line when present: the child waits for the
//!   parent's go-ahead, given only after this line is written.
//! - `error <MESSAGE>` — setup failed; `MESSAGE` names the container, the
//!   step that failed and what to do, on one line. Written either by the
//!   `__container` process before it forks (then there is no `pid` line and
//!   `__container` exits 125), or by the forked child (after the `pid` line;
//!   the child then exits 125 without exec'ing anything).
//!
//! The supervisor reads fd 3 until EOF. EOF comes when every copy of the
//! write end is gone: the `__container` process closes it right after
//! writing `pid` (or exits 125 with an `error` line before the fork), and
//! the child holds fd 3 close-on-exec, so it is closed by a successful
//! `execve` or by the child's exit. Hence:
//!
//! | lines read to EOF      | meaning                                            |
//! | ---------------------- | -------------------------------------------------- |
//! | `pid N`                | the container process N is running its command     |
//! | `pid N`, `error M`     | setup failed in N; reap N (exit status 125)         |
//! | `error M`              | failed before forking; `__container` exits 125      |
//! | nothing                | `__container` crashed; look at its exit status     |
//!
//! After the fork the `__container` process stays as the container's *link*:
//! it waits for the container's main process and exits with its status
//! (128+N for signal N), so the supervisor learns the exit code by reaping
//! its own child, also when the process lives in the pod's PID namespace
//! (whose orphans would go to the pause). The link dies with the supervisor
//! and the container with the link (PDEATHSIG), so a killed supervisor
//! leaves no container behind.
//!
//! # Sequence
//!
//! Parent: read the config; open the pause's namespaces; join its user
//! namespace if not already in it, then its mount, network, IPC and UTS (and
//! PID when shared) namespaces; `unshare` a private copy of the mount
//! namespace (and a new PID namespace unless shared); fork.
//!
//! Child: private `/`, overlayfs root, `/proc`, `/sys`, `/dev`, the
//! `/etc/{hosts,hostname,resolv.conf}` files, volumes; `pivot_root`; masked
//! and read-only paths; cwd; groups, gid, uid and capabilities; only fds 0-2
//! survive exec; PATH lookup; `execve`. Every mount target inside the image is
//! resolved with `openat2(RESOLVE_IN_ROOT)` and mounted through
//! `/proc/self/fd/N`, so a symlink in the image cannot redirect a mount to
//! the host. The minipod binary is never exec'd inside the container
//! (CVE-2019-5736): the container's command replaces this process directly,
//! and until then the process is not dumpable, so nothing in the pod can
//! open its `/proc/PID/exe`.
//!
//! # Layout
//!
//! This file holds the protocol and the order of set-up (`container_main`,
//! `join_and_fork`, `link_until_exit`, `child_setup_and_exec`); the steps
//! live in `rootfs.rs` (mounts, `pivot_root`, masked paths), `identity.rs`
//! (groups, uid, gid, capabilities) and `exec.rs` (what crosses `execve`, PATH
//! lookup, `minipod exec`, and the child of `minipod cp` in a container's mount
//! namespace: `in_container_files`), with the terminal relay of `exec -t` in
//! `terminal.rs`.

mod exec;
mod identity;
mod rootfs;
mod terminal;

use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Write};

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;
use nix::unistd::ForkResult;

pub use exec::{DEFAULT_PATH, container_path, exec_candidates, exec_in, in_container_files};
pub use identity::{CapData, cap_data, cap_mask, caps_to_drop};
pub use rootfs::{MASKED_PATHS, READ_ONLY_PATHS, overlay_options};

use super::contract::container::ContainerConfig;
use super::contract::fds::FD_CONSOLE;
use super::contract::report::{self, Line};
use crate::sys::ns::{self, Namespace};
use exec::{exec, prepare_exec};
use identity::{last_capability, seccomp_last, switch_user};
use rootfs::{
    bind_into, enter_cwd, make_mounts_private, mask_paths, mount_dev, mount_overlay,
    mount_proc_sys, open_path, pivot_into, remount_read_only,
};

/// The sync pipe's fd number, fixed by the protocol.
pub const SYNC_FD: RawFd = 3;
/// `minipod __container`, its config on `FD_CONFIG`. Never returns in the
/// forked child.
pub fn container_main() -> ExitCode {
    if !sync_fd_is_pipe() {
        eprintln!(
            "Error: minipod __container is started by the pod supervisor, with a sync pipe on fd 3"
        );
        return ExitCode::from(crate::EXIT_MINIPOD_ERROR);
    }
    // Inherited by the fork below.
    if let Err(err) = make_undumpable() {
        report_error(&format!("container set-up refused: {err:#}"));
        return ExitCode::from(crate::EXIT_MINIPOD_ERROR);
    }
    let config: ContainerConfig = match crate::runtime::contract::read_passed_config("__container")
    {
        Ok(c) => c,
        Err(err) => {
            report_error(&format!("{err:#}"));
            return ExitCode::from(crate::EXIT_MINIPOD_ERROR);
        }
    };
    // As the pause program's `link`, it kills and reaps the container
    // before it goes.
    if let Err(err) = crate::sys::proc::told_of_parent_death(config.supervisor_pid) {
        report_error(&format!(
            "container {}: the supervisor exited ({err})",
            config.name
        ));
        return ExitCode::from(crate::EXIT_MINIPOD_ERROR);
    }
    match join_and_fork(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report_error(&format!("container {}: {err:#}", config.name));
            ExitCode::from(crate::EXIT_MINIPOD_ERROR)
        }
    }
}

/// CVE-2019-5736: until the container's command replaces this image, a
/// process in the pod (shared PID namespace) must not open /proc/<us>/exe,
/// which is the minipod binary. A non-dumpable process's /proc entries need
/// CAP_SYS_PTRACE, which containers do not get; exec makes the command's
/// process dumpable again. Without this, set-up must not go on.
pub(super) fn make_undumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).context(
        "making this process non-dumpable (prctl PR_SET_DUMPABLE), without which a process in \
         the pod could open the minipod binary through /proc (CVE-2019-5736)",
    )
}

fn sync_fd_is_pipe() -> bool {
    // SAFETY: fd 3 is only borrowed for the fstat below and nothing closes
    // it meanwhile; if it is not open, fstat fails with EBADF.
    let fd = unsafe { BorrowedFd::borrow_raw(SYNC_FD) };
    nix::sys::stat::fstat(fd)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO)
        .unwrap_or(false)
}

/// Writes `error MESSAGE` on one line (and to stderr if the pipe is gone).
fn report_error(message: &str) {
    if Line::Error(message).write_to_fd(SYNC_FD).is_err() {
        eprintln!("Error: {}", report::one_line(message));
    }
}

/// The parent's half: join the pod's namespaces, fork, report the child's
/// pid, release the child and exit.
fn join_and_fork(config: &ContainerConfig) -> Result<()> {
    let pause = config.pause_pid;
    let open_ns = |kind: ns::Kind| -> Result<Namespace> {
        Namespace::open(pause, kind).with_context(|| {
            format!(
                "opening {}: the pod's pause process {pause} is gone or not ours",
                kind.path(pause)
            )
        })
    };
    // Open everything before joining anything: /proc changes with the
    // mount namespace.
    let user = open_ns(ns::Kind::User)?;
    let mnt = open_ns(ns::Kind::Mount)?;
    let net = open_ns(ns::Kind::Network)?;
    let ipc = open_ns(ns::Kind::Ipc)?;
    let uts = open_ns(ns::Kind::Uts)?;
    let pid = if config.share_pid {
        Some(open_ns(ns::Kind::Pid)?)
    } else {
        None
    };

    if !user.is_current().context("reading /proc/self/ns/user")? {
        user.join().with_context(|| {
            format!("joining the user namespace of pause process {pause} (run as its owner, single-threaded)")
        })?;
    }
    for (ns, what) in [
        (&mnt, "mount"),
        (&net, "network"),
        (&ipc, "IPC"),
        (&uts, "UTS"),
    ] {
        // hostNetwork: the pause shares our (the host's) netns, which a
        // process of the user namespace may not join, and need not.
        ns.enter()
            .with_context(|| format!("joining the {what} namespace of pause process {pause}"))?;
    }
    if let Some(pid) = &pid {
        // Only moves children: the fork below lands in the pod's namespace.
        pid.join()
            .with_context(|| format!("joining the PID namespace of pause process {pause}"))?;
    }
    let mut flags = CloneFlags::CLONE_NEWNS;
    if !config.share_pid && !config.host_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    nix::sched::unshare(flags).context("creating the container's mount and PID namespaces")?;
    drop((user, mnt, net, ipc, uts, pid));

    let program = super::pause::pause_program()?;
    let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("creating a pipe")?;
    // SAFETY: this process is single-threaded (a fresh exec of minipod that
    // started no threads), so the child may allocate and run any code.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        ForkResult::Parent { child } => {
            drop(go_read);
            if let Err(e) = Line::Pid(child.as_raw()).write_to_fd(SYNC_FD) {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                return Err(anyhow!("writing to the sync pipe: {e}"));
            }
            // The go-ahead: the child may now report errors after our line.
            let mut go = File::from(go_write);
            go.write_all(b"g")
                .context("releasing the container process")?;
            drop(go);
            link_until_exit(child, &program, config)
        }
        ForkResult::Child => {
            drop(go_write);
            LINK_PID.store(
                nix::unistd::getppid().as_raw(),
                std::sync::atomic::Ordering::Relaxed,
            );
            let mut go = [0u8];
            if File::from(go_read).read_exact(&mut go).is_err() {
                // The parent failed and said so; it did not report our pid.
                // SAFETY: _exit takes no pointers and does not return; the
                // forked child skips the parent's destructors and atexit
                // handlers, which are the parent's to run.
                unsafe { libc::_exit(i32::from(crate::EXIT_MINIPOD_ERROR)) }
            }
            let err = match child_setup_and_exec(config) {
                Ok(never) => match never {},
                Err(err) => err,
            };
            report_error(&format!("container {}: {err:#}", config.name));
            // SAFETY: as above: no pointers, no return, and the parent's
            // destructors and atexit handlers are not ours to run.
            unsafe { libc::_exit(i32::from(crate::EXIT_MINIPOD_ERROR)) }
        }
    }
}

/// The link's pid, as the child saw it right after the fork.
static LINK_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

fn config_link_pid() -> i32 {
    LINK_PID.load(std::sync::atomic::Ordering::Relaxed)
}

/// The link's life after the fork: it lets go of the sync pipe and the
/// container's stdio, then becomes the pause program's `link`, which waits
/// for the container's main process and exits with its status (128+N for
/// signal N), so the supervisor reaps an exit code even when the process
/// lives in the pod's PID namespace (whose orphans go to the pause, not to
/// us). The pause program is a few kB where this binary is megabytes. When
/// the supervisor dies, the link is told (a blocked SIGTERM, kept across
/// exec), kills the container and reaps it before it exits, holding its
/// copy of the pod's lock (`FD_POD_ALIVE`) until then.
fn link_until_exit(
    child: nix::unistd::Pid,
    program: &OwnedFd,
    config: &ContainerConfig,
) -> Result<()> {
    crate::sys::fs::stdio_to_null()?;
    // Closing it lets the supervisor see EOF once the child has exec'd.
    // SAFETY: close takes an fd number only; no owned object in this
    // process holds fd 3 (sync_line wraps it in ManuallyDrop), so nothing
    // will use or close it again.
    unsafe { libc::close(SYNC_FD) };
    // SAFETY: as fd 3: the console socket (when passed) is nobody's here.
    unsafe { libc::close(FD_CONSOLE) };
    let container_dir = config.rootfs.parent().unwrap_or(&config.rootfs);
    match super::pause::exec_program(program, &["link", &child.to_string()], container_dir) {
        Ok(never) => match never {},
        Err(e) => {
            // The container would run unlinked: stop it, and say why.
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            Err(e)
        }
    }
}

/// `tty: true`: a pty from the container's own devpts (after
/// `pivot_root`, so the process's /dev/pts/N exists for it), owned by the
/// container's user as runc makes it; the slave becomes the controlling
/// terminal and fds 0-2 (this process already leads a session), the master
/// goes to the supervisor on `FD_CONSOLE`.
fn open_console(config: &ContainerConfig) -> Result<()> {
    let pty = nix::pty::openpty(None, None).context("allocating the container's terminal")?;
    let (uid, gid) = (config.process.uid, config.process.gid);
    nix::unistd::fchown(
        &pty.slave,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .context("giving the container's terminal to its user")?;
    crate::sys::tty::send_fd(FD_CONSOLE, std::os::fd::AsRawFd::as_raw_fd(&pty.master))
        .context("handing the terminal to the supervisor (fd 8)")?;
    drop(pty.master);
    crate::sys::tty::take_terminal(&pty.slave)
}

/// The child's half, in the order docs/ARCHITECTURE.md and the OCI runtimes use.
fn child_setup_and_exec(config: &ContainerConfig) -> Result<Infallible> {
    nix::unistd::setsid().context("setsid")?;
    make_mounts_private()?;

    mount_overlay(config)?;
    let root = open_path(&config.rootfs, OFlag::O_DIRECTORY)
        .with_context(|| format!("opening the container root {}", config.rootfs.display()))?;

    let privileged = config.process.security.privileged;
    mount_proc_sys(&root, privileged, config.host_pid)?;
    mount_dev(&root, config)?;
    for (source, dest) in [
        (&config.hosts, "/etc/hosts"),
        (&config.hostname_file, "/etc/hostname"),
        (&config.resolv_conf, "/etc/resolv.conf"),
    ] {
        bind_into(&root, source, dest, true).with_context(|| format!("mounting {dest}"))?;
    }
    for m in &config.mounts {
        bind_into(&root, &m.source, &m.destination, m.read_only).with_context(|| {
            format!(
                "mounting volume {} at {}",
                m.source.display(),
                m.destination
            )
        })?;
    }

    let last_cap = last_capability();
    pivot_into(&root)?;
    drop(root);
    // A privileged container sees /proc and /sys whole, as podman's does.
    if !privileged && !config.process.security.proc_unmasked {
        mask_paths()?;
    }
    if config.process.security.read_only_root {
        // Only the root's own mount: volumes, /dev, /dev/shm, /proc stay
        // as they are, as in Kubernetes.
        remount_read_only(Path::new("/")).context("making the root filesystem read-only")?;
    }
    enter_cwd(&config.process.cwd)?;
    if config.tty {
        open_console(config)?;
    }
    switch_user(&config.process, last_cap)?;
    // Die with the link (and so with the supervisor). Set after the uid
    // change, which clears it; if the link is already gone, stop here.
    crate::sys::proc::die_with_parent(config_link_pid(), nix::sys::signal::Signal::SIGKILL)
        .context("the container's link process exited during setup")?;
    prepare_exec()?;
    seccomp_last(&config.process)?;
    exec(&config.process)
}
