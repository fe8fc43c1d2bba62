//! The container's root filesystem: the overlayfs of the image's layers,
//! fresh /proc, /sys, /dev (and its devpts, shm, mqueue), bind mounts of
//! files and volumes (every target resolved inside the root with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the image cannot send a mount
//! to the host), `pivot_root`, podman's masked and read-only paths, and the
//! working directory.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::runtime::contract::container::ContainerConfig;
use crate::runtime::contract::pause::{MOUNT_DATA_MAX, escape_overlay};
use crate::sys::openat2::{Confine, open_confined};
use crate::userns::idmap::id_mapped;

/// Stops mounts in the container's new mount namespace from propagating
/// back to the pod's (and the pod's from propagating in).
pub(super) fn make_mounts_private() -> Result<()> {
    mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .context("making / private in the container's mount namespace")
}

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

/// The deepest directory every path is inside of.
fn common_ancestor(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut base = paths.first()?.parent()?.to_path_buf();
    while !paths.iter().all(|p| p.starts_with(&base)) {
        base = base.parent()?.to_path_buf();
    }
    Some(base)
}

pub(super) fn mount_overlay(config: &ContainerConfig) -> Result<()> {
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
            "mounting the root filesystem (overlayfs at {}; needs Linux >= 5.11 and a data root on a \
             filesystem that supports user xattrs, e.g. ext4, xfs, btrfs or tmpfs >= 6.6)",
            config.rootfs.display()
        )
    })?;
    Ok(())
}

/// A fresh /proc (with `host_pid`, the host's, bound: only the user
/// namespace that owns a PID namespace may mount its proc), and /sys:
/// read-only unless `privileged`.
pub(super) fn mount_proc_sys(root: &OwnedFd, privileged: bool, host_pid: bool) -> Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc = resolve_in_root(root, "/proc", Kind::Dir)?;
    if host_pid {
        mount(
            Some(Path::new("/proc")),
            &fd_path(&proc),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .context("binding the host's /proc (hostPID)")?;
    } else {
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
    }

    let sys = resolve_in_root(root, "/sys", Kind::Dir)?;
    let read_only = match privileged {
        true => MsFlags::empty(),
        false => MsFlags::MS_RDONLY,
    };
    let fresh = mount(
        Some(Path::new("sysfs")),
        &fd_path(&sys),
        Some("sysfs"),
        nosuid_nodev_noexec | read_only,
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
        if !privileged {
            let sys = resolve_in_root(root, "/sys", Kind::Dir)?;
            remount_read_only(&fd_path(&sys)).context("making /sys read-only")?;
        }
    }
    Ok(())
}

/// The device nodes bound from the host (they cannot be created without
/// privilege on the host).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// What a privileged container gets of the host's /dev, as podman's
/// rootless `--privileged`: every device node (below `dir`, one level of
/// folders deep, such as /dev/net/tun) that this user may open, besides the
/// ones every container gets and the pod's own pts and shm.
fn host_devices_to_share(dir: &Path, prefix: &str) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let rel = format!("{prefix}{name}");
        if kind.is_dir()
            && prefix.is_empty()
            && !["pts", "shm", "mqueue", "hugepages"].contains(&name.as_str())
        {
            out.extend(host_devices_to_share(&entry.path(), &format!("{rel}/")));
        } else if (kind.is_char_device() || kind.is_block_device())
            && !DEVICES.contains(&rel.as_str())
            && rel != "ptmx"
            && nix::unistd::access(&entry.path(), nix::unistd::AccessFlags::R_OK)
                .or_else(|_| nix::unistd::access(&entry.path(), nix::unistd::AccessFlags::W_OK))
                .is_ok()
        {
            out.push(rel);
        }
    }
    out.sort();
    out
}

pub(super) fn mount_dev(root: &OwnedFd, config: &ContainerConfig) -> Result<()> {
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
    if config.process.security.privileged {
        for name in host_devices_to_share(Path::new("/dev"), "") {
            let host = Path::new("/dev").join(&name);
            let target = resolve_in_root(root, &format!("/dev/{name}"), Kind::File)?;
            mount(Some(&host), &fd_path(&target), None, MsFlags::MS_BIND, None)
                .with_context(|| format!("binding {} into the container", host.display()))?;
        }
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
    if config.host_ipc {
        // Only the owner of an IPC namespace may mount its mqueue: the
        // host's, if the host has one mounted (the queues work without).
        if Path::new("/dev/mqueue").is_dir() {
            mount(
                Some(Path::new("/dev/mqueue")),
                &fd_path(&mqueue),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .context("binding the host's /dev/mqueue (hostIPC)")?;
        }
        return Ok(());
    }
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
pub(super) fn bind_into(root: &OwnedFd, source: &Path, dest: &str, read_only: bool) -> Result<()> {
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
pub(super) fn remount_read_only(path: &Path) -> Result<()> {
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

pub(super) fn open_path(path: &Path, extra: OFlag) -> nix::Result<OwnedFd> {
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
        match open_confined(root.as_fd(), path.as_str(), OFlag::O_PATH, Confine::InRoot) {
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
        let parent = open_confined(
            root.as_fd(),
            parts[..i].join("/").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Confine::InRoot,
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
            return open_confined(root.as_fd(), path.as_str(), OFlag::O_PATH, Confine::InRoot)
                .with_context(|| format!("{dest}: opening it"));
        }
    }
    unreachable!("the loop returns at the last component")
}

// ------------------------------------------------------- pivot and masks

/// youki's pivot: stack the old root on the new one, cut its propagation,
/// detach it.
pub(super) fn pivot_into(root: &OwnedFd) -> Result<()> {
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
pub(super) fn mask_paths() -> Result<()> {
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

pub(super) fn enter_cwd(cwd: &str) -> Result<()> {
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
