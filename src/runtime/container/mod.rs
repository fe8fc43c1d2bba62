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

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{ForkResult, Gid, Uid};

use super::config::{ContainerConfig, Process};
use super::report;
use crate::sys::ns::{self, Namespace};
use crate::sys::openat2::open_in_root;
use crate::userns::idmap::{id_mapped, unmapped_hint};

/// The sync pipe's fd number, fixed by the protocol.
pub const SYNC_FD: RawFd = 3;
/// Exit status when setup fails (podman's "the runtime failed").
pub const EXIT_SETUP_FAILED: u8 = 125;

/// What the container's PATH is when its environment has none (the OCI
/// runtimes' and Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The longest mount(2) data the kernel copies: one page, with the NUL.
const MOUNT_DATA_MAX: usize = 4095;

/// `minipod __container CONFIG.json`. Never returns in the forked child.
pub fn container_main(config_path: &Path) -> ExitCode {
    if !sync_fd_is_pipe() {
        eprintln!(
            "Error: minipod __container is started by the pod supervisor, with a sync pipe on fd 3"
        );
        return ExitCode::from(EXIT_SETUP_FAILED);
    }
    // CVE-2019-5736: until the container's command replaces this image, a
    // process in the pod (shared PID namespace) must not open
    // /proc/<us>/exe, which is the minipod binary. A non-dumpable process's
    // /proc entries need CAP_SYS_PTRACE, which containers do not get; exec
    // makes the container's process dumpable again.
    // SAFETY: plain prctl on ourselves; inherited by the fork below.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let config = match read_config(config_path) {
        Ok(c) => c,
        Err(err) => {
            report_error(&format!(
                "container config {}: {err:#}",
                config_path.display()
            ));
            return ExitCode::from(EXIT_SETUP_FAILED);
        }
    };
    if let Err(err) = crate::sys::proc::die_with_parent(config.supervisor_pid) {
        report_error(&format!(
            "container {}: the supervisor exited ({err})",
            config.name
        ));
        return ExitCode::from(EXIT_SETUP_FAILED);
    }
    match join_and_fork(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report_error(&format!("container {}: {err:#}", config.name));
            ExitCode::from(EXIT_SETUP_FAILED)
        }
    }
}

fn read_config(path: &Path) -> Result<ContainerConfig> {
    let bytes = std::fs::read(path).context("reading it")?;
    serde_json::from_slice(&bytes).context("parsing it")
}

fn sync_fd_is_pipe() -> bool {
    // SAFETY: fd 3 is only borrowed for fstat; it may not be open.
    let fd = unsafe { BorrowedFd::borrow_raw(SYNC_FD) };
    nix::sys::stat::fstat(fd)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO)
        .unwrap_or(false)
}

/// Writes one line to the sync pipe.
fn sync_line(line: &str) -> std::io::Result<()> {
    // SAFETY: fd 3 stays owned by the process; ManuallyDrop never closes it.
    let mut pipe = ManuallyDrop::new(unsafe { File::from_raw_fd(SYNC_FD) });
    pipe.write_all(line.as_bytes())
}

/// Writes `error MESSAGE` on one line (and to stderr if the pipe is gone).
fn report_error(message: &str) {
    if sync_line(&report::error_line(message)).is_err() {
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
    if !config.share_pid {
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
            if let Err(e) = sync_line(&format!("pid {child}\n")) {
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
                // SAFETY: plain exit of the forked child.
                unsafe { libc::_exit(i32::from(EXIT_SETUP_FAILED)) }
            }
            let err = match child_setup_and_exec(config) {
                Ok(never) => match never {},
                Err(err) => err,
            };
            report_error(&format!("container {}: {err:#}", config.name));
            // SAFETY: leave without running the parent's destructors or
            // atexit handlers.
            unsafe { libc::_exit(i32::from(EXIT_SETUP_FAILED)) }
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
/// us). The pause program is a few kB where this binary is megabytes. The
/// link dies with the supervisor (PDEATHSIG, kept across exec), and the
/// container dies with it.
fn link_until_exit(
    child: nix::unistd::Pid,
    program: &OwnedFd,
    config: &ContainerConfig,
) -> Result<()> {
    crate::sys::fs::stdio_to_null()?;
    // SAFETY: fd 3 is the sync pipe we were given; closing it lets the
    // supervisor see EOF once the child has exec'd.
    unsafe { libc::close(SYNC_FD) };
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

/// The child's half, in the order DESIGN.md and the OCI runtimes use.
fn child_setup_and_exec(config: &ContainerConfig) -> Result<Infallible> {
    nix::unistd::setsid().context("setsid")?;
    mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .context("making / private in the container's mount namespace")?;

    mount_overlay(config)?;
    let root = open_path(&config.rootfs, OFlag::O_DIRECTORY)
        .with_context(|| format!("opening the container root {}", config.rootfs.display()))?;

    mount_proc_sys(&root)?;
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
    mask_paths()?;
    enter_cwd(&config.process.cwd)?;
    switch_user(&config.process, last_cap)?;
    // Die with the link (and so with the supervisor). Set after the uid
    // change, which clears it; if the link is already gone, stop here.
    crate::sys::proc::die_with_parent(config_link_pid())
        .context("the container's link process exited during setup")?;
    prepare_exec()?;
    exec(&config.process)
}

// ---------------------------------------------------------------- mounts

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    nix::mount::mount(source, target, fstype, flags, data)
}

/// The overlayfs `-o` string for `layers` (bottom first), and the directory
/// to chdir into when the layers had to be named relative to it to fit the
/// kernel's one-page limit (podman's trick).
pub fn overlay_options(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<(String, Option<PathBuf>)> {
    if layers.is_empty() {
        bail!("the image has no layers");
    }
    let build = |lower: &[String]| {
        format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            lower.join(":"),
            escape_overlay(&upper.to_string_lossy()),
            escape_overlay(&work.to_string_lossy()),
        )
    };
    let absolute: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| escape_overlay(&l.to_string_lossy()))
        .collect();
    let options = build(&absolute);
    if options.len() <= MOUNT_DATA_MAX {
        return Ok((options, None));
    }
    let base = common_ancestor(layers)
        .ok_or_else(|| anyhow!("the image's layers share no parent directory"))?;
    let relative: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| escape_overlay(&l.strip_prefix(&base).unwrap_or(l).to_string_lossy()))
        .collect();
    let options = build(&relative);
    if options.len() > MOUNT_DATA_MAX {
        bail!(
            "the image has too many layers ({}) for one overlayfs mount: flatten it (podman build --squash)",
            layers.len()
        );
    }
    Ok((options, Some(base)))
}

/// Overlayfs splits its options at `,` and lowerdirs at `:`; both may be
/// escaped with a backslash.
fn escape_overlay(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The deepest directory every path is inside of.
fn common_ancestor(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut base = paths.first()?.parent()?.to_path_buf();
    while !paths.iter().all(|p| p.starts_with(&base)) {
        base = base.parent()?.to_path_buf();
    }
    Some(base)
}

fn mount_overlay(config: &ContainerConfig) -> Result<()> {
    for dir in [&config.upper, &config.work, &config.rootfs] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Some(missing) = config.layers.iter().find(|l| !l.is_dir()) {
        bail!(
            "the image layer {} is missing: remove the image and load or pull it again",
            missing.display()
        );
    }
    let (options, base) = overlay_options(&config.layers, &config.upper, &config.work)?;
    if let Some(base) = &base {
        nix::unistd::chdir(base)
            .with_context(|| format!("entering the layer directory {}", base.display()))?;
    }
    mount(
        Some(Path::new("overlay")),
        &config.rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(&options),
    )
    .with_context(|| {
        format!(
            "mounting the root filesystem (overlayfs at {}; needs Linux >= 5.11 and a run root on a \
             filesystem that supports user xattrs, e.g. ext4, xfs, btrfs or tmpfs >= 6.6)",
            config.rootfs.display()
        )
    })?;
    Ok(())
}

fn mount_proc_sys(root: &OwnedFd) -> Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc = resolve_in_root(root, "/proc", Kind::Dir)?;
    mount(
        Some(Path::new("proc")),
        &fd_path(&proc),
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )
    .context(
        "mounting a fresh /proc (a fully visible /proc must exist in the pause's mount namespace)",
    )?;

    let sys = resolve_in_root(root, "/sys", Kind::Dir)?;
    let fresh = mount(
        Some(Path::new("sysfs")),
        &fd_path(&sys),
        Some("sysfs"),
        nosuid_nodev_noexec | MsFlags::MS_RDONLY,
        None,
    );
    if let Err(e) = fresh {
        tracing::debug!("a fresh sysfs was refused ({e}); binding the host's /sys read-only");
        mount(
            Some(Path::new("/sys")),
            &fd_path(&sys),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .context("binding /sys")?;
        let sys = resolve_in_root(root, "/sys", Kind::Dir)?;
        remount_read_only(&fd_path(&sys)).context("making /sys read-only")?;
    }
    Ok(())
}

/// The device nodes bound from the host (they cannot be created without
/// privilege on the host).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn mount_dev(root: &OwnedFd, config: &ContainerConfig) -> Result<()> {
    let dev = resolve_in_root(root, "/dev", Kind::Dir)?;
    mount(
        Some(Path::new("tmpfs")),
        &fd_path(&dev),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .context("mounting a tmpfs at /dev")?;
    // The fd above is the directory under the tmpfs: resolve again.
    let dev = resolve_in_root(root, "/dev", Kind::Dir)?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = resolve_in_root(root, &format!("/dev/{name}"), Kind::File)?;
        mount(Some(&host), &fd_path(&target), None, MsFlags::MS_BIND, None)
            .with_context(|| format!("binding {} into the container", host.display()))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        nix::unistd::symlinkat(target, dev.as_fd(), name)
            .with_context(|| format!("creating /dev/{name}"))?;
    }

    let pts = resolve_in_root(root, "/dev/pts", Kind::Dir)?;
    let mut options = String::from("newinstance,ptmxmode=0666,mode=0620");
    if id_mapped(
        &std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default(),
        5,
    ) {
        options.push_str(",gid=5");
    }
    mount(
        Some(Path::new("devpts")),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&options),
    )
    .context("mounting devpts at /dev/pts")?;

    let shm = resolve_in_root(root, "/dev/shm", Kind::Dir)?;
    mount(
        Some(&config.shm),
        &fd_path(&shm),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .with_context(|| {
        format!(
            "binding the pod's shared memory {} at /dev/shm",
            config.shm.display()
        )
    })?;

    let mqueue = resolve_in_root(root, "/dev/mqueue", Kind::Dir)?;
    mount(
        Some(Path::new("mqueue")),
        &fd_path(&mqueue),
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
    .context("mounting mqueue at /dev/mqueue")?;
    Ok(())
}

/// Bind-mounts the host path `source` at `dest` inside the container root,
/// creating `dest` as a directory or file to match `source`.
fn bind_into(root: &OwnedFd, source: &Path, dest: &str, read_only: bool) -> Result<()> {
    let meta = std::fs::metadata(source)
        .with_context(|| format!("reading the source {}", source.display()))?;
    let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
    let target = resolve_in_root(root, dest, kind)?;
    mount(
        Some(source),
        &fd_path(&target),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .context("bind mount")?;
    if read_only {
        // The O_PATH fd is the covered file; the new mount's root needs a
        // fresh lookup.
        let target = resolve_in_root(root, dest, kind)?;
        remount_read_only(&fd_path(&target)).context("making it read-only")?;
    }
    Ok(())
}

/// Remounts the bind mount at `path` read-only, keeping the flags the
/// kernel will not let an unprivileged user clear (else EPERM).
fn remount_read_only(path: &Path) -> Result<()> {
    let st = nix::sys::statvfs::statvfs(path)?;
    let flags =
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked_flags(st.flags());
    mount(None, path, None, flags, None)?;
    Ok(())
}

fn locked_flags(st: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let mut flags = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.contains(s) {
            flags |= m;
        }
    }
    if !st.intersects(FsFlags::ST_NOATIME | FsFlags::ST_RELATIME) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    flags
}

// ------------------------------------------------- paths inside the root

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn open_path(path: &Path, extra: OFlag) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC | extra,
        Mode::empty(),
    )
}

/// Finds `dest` inside the container root, creating missing directories on
/// the way and the last component as `kind`; returns an O_PATH fd to it.
fn resolve_in_root(root: &OwnedFd, dest: &str, kind: Kind) -> Result<OwnedFd> {
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() {
        bail!("{dest}: cannot mount over the container's root directory");
    }
    for i in 0..parts.len() {
        let path = parts[..=i].join("/");
        let last = i + 1 == parts.len();
        match open_in_root(root.as_fd(), path.as_str(), OFlag::O_PATH) {
            Ok(fd) if last => {
                let is_dir = nix::sys::stat::fstat(fd.as_fd())
                    .map(|st| {
                        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
                    })
                    .with_context(|| format!("{dest}: reading it in the image"))?;
                match (kind, is_dir) {
                    (Kind::Dir, false) => {
                        bail!("{dest} is a file in the image, but a directory is mounted there")
                    }
                    (Kind::File, true) => {
                        bail!("{dest} is a directory in the image, but a file is mounted there")
                    }
                    _ => return Ok(fd),
                }
            }
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => bail!("{dest}: resolving /{path} in the image: {e}"),
        }
        let parent = open_in_root(
            root.as_fd(),
            parts[..i].join("/").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )
        .with_context(|| format!("{dest}: opening the parent of /{path} in the image"))?;
        let created = if last && kind == Kind::File {
            nix::fcntl::openat(
                parent.as_fd(),
                parts[i],
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            nix::sys::stat::mkdirat(parent.as_fd(), parts[i], Mode::from_bits_truncate(0o755))
        };
        match created {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                bail!("{dest}: /{path} in the image is a symlink that points nowhere")
            }
            Err(e) => bail!("{dest}: creating /{path} in the image: {e}"),
        }
        if last {
            return open_in_root(root.as_fd(), path.as_str(), OFlag::O_PATH)
                .with_context(|| format!("{dest}: opening it"));
        }
    }
    unreachable!("the loop returns at the last component")
}

// ------------------------------------------------------- pivot and masks

/// youki's pivot: stack the old root on the new one, cut its propagation,
/// detach it.
fn pivot_into(root: &OwnedFd) -> Result<()> {
    nix::unistd::fchdir(root.as_fd()).context("entering the container root")?;
    nix::unistd::pivot_root(".", ".").context("pivot_root into the container root")?;
    mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .context("making the old root a slave before detaching it")?;
    nix::mount::umount2("/", MntFlags::MNT_DETACH).context("detaching the old root")?;
    nix::unistd::chdir("/").context("chdir /")?;
    Ok(())
}

/// podman's default masked paths (hidden) and read-only paths.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
];
pub const READ_ONLY_PATHS: [&str; 6] = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// After `pivot_root`, so every path here is the container's own.
fn mask_paths() -> Result<()> {
    for path in MASKED_PATHS {
        let path = Path::new(path);
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let result = if meta.is_dir() {
            mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )
        } else {
            mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )
        };
        result.with_context(|| format!("masking {}", path.display()))?;
    }
    for path in READ_ONLY_PATHS {
        let path = Path::new(path);
        if !path.exists() {
            continue;
        }
        mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(anyhow::Error::from)
        .and_then(|()| remount_read_only(path))
        .with_context(|| format!("making {} read-only", path.display()))?;
    }
    Ok(())
}

fn enter_cwd(cwd: &str) -> Result<()> {
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    if !cwd.starts_with('/') {
        bail!("the working directory {cwd:?} is not absolute");
    }
    // After pivot_root: symlinks resolve inside the container.
    std::fs::create_dir_all(cwd)
        .with_context(|| format!("creating the working directory {cwd}"))?;
    nix::unistd::chdir(cwd).with_context(|| format!("entering the working directory {cwd}"))?;
    Ok(())
}

// -------------------------------------------------- user and capabilities

const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_FOWNER: u32 = 3;
const CAP_FSETID: u32 = 4;
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_CHROOT: u32 = 18;
const CAP_SETFCAP: u32 = 31;

/// podman's default capability set (containers.conf `default_capabilities`).
pub const DEFAULT_CAPS: [u32; 11] = [
    CAP_CHOWN,
    CAP_DAC_OVERRIDE,
    CAP_FOWNER,
    CAP_FSETID,
    CAP_KILL,
    CAP_NET_BIND_SERVICE,
    CAP_SETFCAP,
    CAP_SETGID,
    CAP_SETPCAP,
    CAP_SETUID,
    CAP_SYS_CHROOT,
];

pub fn cap_mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1u64 << c)
}

/// The capabilities up to `last_cap` that are not in `keep`.
pub fn caps_to_drop(last_cap: u32, keep: u64) -> Vec<u32> {
    (0..=last_cap.min(63))
        .filter(|c| keep & (1u64 << c) == 0)
        .collect()
}

/// The kernel's highest capability number (what /proc/sys/kernel/cap_last_cap says).
fn last_capability() -> u32 {
    // SAFETY: PR_CAPBSET_READ only reads.
    (0..64u32)
        .take_while(
            |c| unsafe { libc::prctl(libc::PR_CAPBSET_READ, *c as libc::c_ulong, 0, 0, 0) } >= 0,
        )
        .last()
        .unwrap_or(40)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `capset` v3 data: two 32-bit words per set.
pub fn cap_data(effective: u64, permitted: u64, inheritable: u64) -> [CapData; 2] {
    let word = |m: u64, i: u32| (m >> (32 * i)) as u32;
    [0, 1].map(|i| CapData {
        effective: word(effective, i),
        permitted: word(permitted, i),
        inheritable: word(inheritable, i),
    })
}

fn capset(data: [CapData; 2]) -> nix::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: header and two data structs of the v3 layout, both live.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    Errno::result(r).map(drop)
}

/// Groups, gid, uid, and podman's default capabilities. The inheritable set
/// is left empty (podman >= 4.0, after CVE-2022-27649): a root process gets
/// its permitted set from the bounding set on exec anyway, and a non-root
/// one must not gain capabilities through file-inheritable bits.
fn switch_user(process: &Process, last_cap: u32) -> Result<()> {
    let keep = cap_mask(&DEFAULT_CAPS);
    for cap in caps_to_drop(last_cap, keep) {
        // SAFETY: plain prctl on our own bounding set.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r < 0 && Errno::last() != Errno::EINVAL {
            return Err(Errno::last())
                .with_context(|| format!("dropping capability {cap} from the bounding set"));
        }
    }
    let gid_map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let groups: Vec<Gid> = process
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&groups) {
        // setgroups is denied in a single-mapping namespace.
        Ok(()) | Err(Errno::EPERM) => {}
        Err(e) => {
            let hint = process
                .additional_gids
                .iter()
                .find_map(|g| unmapped_hint("gid", *g, &gid_map))
                .unwrap_or_default();
            bail!(
                "setting the supplementary groups {:?}: {e}{hint}",
                process.additional_gids
            );
        }
    }
    let gid = Gid::from_raw(process.gid);
    if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
        let hint = unmapped_hint("gid", process.gid, &gid_map).unwrap_or_default();
        bail!("setting gid {}: {e}{hint}", process.gid);
    }
    capset(cap_data(keep, keep, 0)).context("capset")?;
    let uid = Uid::from_raw(process.uid);
    // From uid 0 to another uid the kernel clears the permitted and
    // effective sets itself (no SECBIT_KEEP_CAPS), as exec would.
    if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
        let hint = unmapped_hint("uid", process.uid, &uid_map).unwrap_or_default();
        bail!("setting uid {}: {e}{hint}", process.uid);
    }
    // SAFETY: plain prctl on our own ambient set.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(r).context("clearing the ambient capabilities")?;
    Ok(())
}

// ------------------------------------------------------------------ exec

/// Only fds 0-2 cross exec; minipod's signal dispositions do not either
/// (Rust ignores SIGPIPE, and ignored signals survive exec).
fn prepare_exec() -> Result<()> {
    crate::sys::fs::close_on_exec_from(SYNC_FD)?;
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition; invalid numbers give EINVAL.
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

fn exec(process: &Process) -> Result<Infallible> {
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

// ------------------------------------------------------------- minipod exec

/// `minipod exec`: runs `process` in the namespaces of the container whose
/// main process is `target` (a host pid): its mount namespace (and so its
/// root), network, IPC, UTS and PID namespaces, as its user, with its
/// capabilities, environment and working directory. Returns the command's
/// exit status (126/127 when it cannot be run, as podman's). The caller is
/// in the user namespace and single-threaded.
pub fn exec_in(target: i32, process: &Process, interactive: bool, tty: bool) -> Result<i32> {
    // SAFETY: plain prctl on ourselves (CVE-2019-5736, as in container_main).
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
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
        Some(nix::pty::openpty(None, None).context("allocating a terminal in the container")?)
    } else {
        None
    };
    // SAFETY: single-threaded (see above), so the child may run any code.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        ForkResult::Child => {
            let err = (|| -> Result<Infallible> {
                if let Some(pty) = &pty {
                    nix::unistd::setsid().context("setsid")?;
                    // SAFETY: makes the pty our controlling terminal.
                    Errno::result(unsafe {
                        libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCSCTTY, 0)
                    })
                    .context("TIOCSCTTY")?;
                    for fd in 0..=2 {
                        crate::sys::fs::redirect_fd(&pty.slave, fd)?;
                    }
                } else if !interactive {
                    let null = File::open("/dev/null").context("opening /dev/null")?;
                    crate::sys::fs::redirect_fd(&null, 0)?;
                }
                enter_cwd(&process.cwd)?;
                switch_user(process, last_cap)?;
                prepare_exec()?;
                exec(process)
            })()
            .unwrap_err();
            let msg = report::one_line(&format!("{err:#}"));
            eprintln!("Error: {msg}");
            let code = if msg.contains("not found") { 127 } else { 126 };
            // SAFETY: leave the forked child without running destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = match pty {
                Some(pty) => {
                    drop(pty.slave);
                    relay_terminal(pty.master, child)?
                }
                None => wait_child(child)?,
            };
            Ok(status)
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

/// Copies between our terminal (raw while the command runs) and the pty.
fn relay_terminal(master: OwnedFd, child: nix::unistd::Pid) -> Result<i32> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
        // The pty starts with our window size.
        // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write a winsize struct.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
    // One thread only: after joining a PID namespace no thread can be made.
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut pty = File::from(master);
    let mut out = std::io::stdout();
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    loop {
        let stdin_fd = std::io::stdin();
        let mut fds = vec![PollFd::new(pty.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => bail!("relaying the terminal: {e}"),
        }
        let pty_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open
            && fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        drop(fds);
        if pty_ready {
            match pty.read(&mut buf) {
                // EIO: the command and everything holding the terminal exited.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if stdin_ready {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = pty.write_all(&buf[..n]);
                }
            }
        }
    }
    if let Some(t) = &saved {
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, t);
    }
    wait_child(child)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn lowerdirs_are_top_first() {
        let layers = vec![PathBuf::from("/l/a/diff"), PathBuf::from("/l/b/diff")];
        let (opts, base) =
            overlay_options(&layers, Path::new("/r/up"), Path::new("/r/work")).unwrap();
        assert_eq!(
            opts,
            "lowerdir=/l/b/diff:/l/a/diff,upperdir=/r/up,workdir=/r/work,userxattr"
        );
        assert_eq!(base, None);
    }

    #[test]
    fn one_layer_is_one_lowerdir() {
        let (opts, _) = overlay_options(
            &[PathBuf::from("/l/a/diff")],
            Path::new("/u"),
            Path::new("/w"),
        )
        .unwrap();
        assert_eq!(opts, "lowerdir=/l/a/diff,upperdir=/u,workdir=/w,userxattr");
    }

    #[test]
    fn separators_in_paths_are_escaped() {
        let (opts, _) = overlay_options(
            &[PathBuf::from("/l/a:b,c")],
            Path::new("/u"),
            Path::new("/w"),
        )
        .unwrap();
        assert!(opts.starts_with("lowerdir=/l/a\\:b\\,c,upperdir="));
    }

    #[test]
    fn many_layers_go_relative_then_give_up() {
        let root = "/home/someone/.local/share/minipod/layers";
        let layers: Vec<PathBuf> = (0..50)
            .map(|i| PathBuf::from(format!("{root}/{i:064x}/diff")))
            .collect();
        let (opts, base) = overlay_options(&layers, Path::new("/u"), Path::new("/w")).unwrap();
        assert_eq!(base.as_deref(), Some(Path::new(root)));
        assert!(opts.len() <= MOUNT_DATA_MAX);
        assert!(opts.starts_with(&format!("lowerdir={:064x}/diff:", 49)));
        let too_many: Vec<PathBuf> = (0..80)
            .map(|i| PathBuf::from(format!("{root}/{i:064x}/diff")))
            .collect();
        assert!(overlay_options(&too_many, Path::new("/u"), Path::new("/w")).is_err());
        assert!(overlay_options(&[], Path::new("/u"), Path::new("/w")).is_err());
    }

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

    #[test]
    fn capability_masks() {
        let keep = cap_mask(&DEFAULT_CAPS);
        // podman's CapBnd with the default set.
        assert_eq!(keep, 0x8004_05fb);
        let drops = caps_to_drop(40, keep);
        assert_eq!(drops.len(), 41 - DEFAULT_CAPS.len());
        assert!(drops.contains(&21) && !drops.contains(&31) && drops.contains(&40));
        let data = cap_data(keep | 1 << 38, keep, 0);
        assert_eq!(data[0].effective, 0x8004_05fb);
        assert_eq!(data[1].effective, 1 << 6);
        assert_eq!(data[1].permitted, 0);
        assert_eq!(data[0].inheritable, 0);
    }

    #[test]
    fn mount_targets_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir(rootfs.join("outside")).unwrap();
        // Absolute and `..` symlinks that would leave the root on the host.
        std::os::unix::fs::symlink(&outside, rootfs.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", rootfs.join("etc/up")).unwrap();
        std::fs::write(rootfs.join("etc/file"), "").unwrap();
        let root = open_path(&rootfs, OFlag::O_DIRECTORY).unwrap();

        resolve_in_root(&root, "/abs/vol", Kind::Dir).unwrap_err(); // dangling inside the root
        resolve_in_root(&root, "/etc/up/x", Kind::File).unwrap();
        assert!(rootfs.join("outside/x").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        let fd = resolve_in_root(&root, "/a/b/c", Kind::Dir).unwrap();
        assert!(rootfs.join("a/b/c").is_dir());
        let st = nix::sys::stat::fstat(fd.as_fd()).unwrap();
        assert_eq!(
            st.st_ino,
            std::fs::metadata(rootfs.join("a/b/c")).unwrap().ino()
        );
        assert!(resolve_in_root(&root, "/etc/file", Kind::Dir).is_err());
        assert!(resolve_in_root(&root, "/etc", Kind::File).is_err());
        assert!(resolve_in_root(&root, "/", Kind::Dir).is_err());
    }
}
