//! Atomic file replacement: readers see the old file or the new one, never a
//! half-written one, even if the writer is killed.

use std::io::Write;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it
/// into place.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_mode(path, bytes, 0o666)
}

/// `atomic_write` of a file only its owner may read (mode 0600 from its
/// creation on, whatever the umask): a Secret's.
pub fn atomic_write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_mode(path, bytes, 0o600)
}

fn atomic_write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_sibling(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Whether an error comes from a full filesystem or quota (ENOSPC,
/// EDQUOT), anywhere in its chain: some layers of the code keep only the
/// message of the I/O error, hence the text too.
pub fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
            .is_some_and(|code| code == libc::ENOSPC || code == libc::EDQUOT)
            || [libc::ENOSPC, libc::EDQUOT]
                .iter()
                .any(|code| cause.to_string().contains(&format!("(os error {code})")))
    })
}

/// What to do about a full disk, said after the error (which names the
/// file or image it was writing).
pub const DISK_FULL_ADVICE: &str = "the disk is full (no space left on device): nothing \
     half-written was kept; free space on that filesystem (`minipod system df` shows what \
     minipod uses; `minipod rmi`, `minipod rm` and `minipod volume prune` free it) and try again";

/// A name in the same directory (so rename is atomic) that no other process
/// will pick: it carries our pid, and stale ones can be recognised by it.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // A name of up to 255 bytes (NAME_MAX) must leave room for the prefix.
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = &name[..cut];
    path.with_file_name(format!(".tmp-{}-{}-{}", std::process::id(), unique(), name))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// For a name made by `temp_sibling`, the pid of the process that made it.
pub fn temp_owner_pid(name: &str) -> Option<i32> {
    name.strip_prefix(".tmp-")?.split('-').next()?.parse().ok()
}

/// True when a process with this pid exists (it may belong to someone else).
pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 sends nothing; pid > 0 names one process, never a
    // group.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Makes fd `target` (0, 1, 2…) refer to what `from` refers to, leaving
/// both open (dup2).
pub fn redirect_fd(
    from: &impl std::os::fd::AsFd,
    target: std::os::fd::RawFd,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 on a valid fd; `target` is replaced, as intended.
    if unsafe { libc::dup2(from.as_fd().as_raw_fd(), target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Points fds 0-2 at /dev/null, so that nobody waiting for EOF on the
/// pipes we were started with waits for us (helpers that outlive their
/// start-up: the holder, the pause, a container's link, pasta).
pub fn stdio_to_null() -> std::io::Result<()> {
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..=2 {
        redirect_fd(&null, fd)?;
    }
    Ok(())
}

/// A directory (and its missing parents) only its owner may enter: 0700.
pub fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Makes `fd` the child's fd 3 (the sync or service channel of minipod's
/// helper processes), whatever number it has here.
pub fn pass_as_fd3(cmd: &mut std::process::Command, fd: std::os::fd::RawFd) {
    pass_fds(cmd, &[(fd, 3)]);
}

/// Gives the child each `(fd here, fd number in the child)`, whatever the
/// numbers: all are first moved above the targets, so one cannot overwrite
/// another, then put in place without close-on-exec.
pub fn pass_fds(cmd: &mut std::process::Command, fds: &[(std::os::fd::RawFd, std::os::fd::RawFd)]) {
    use std::os::unix::process::CommandExt;
    let fds: Vec<_> = fds.to_vec();
    // SAFETY: only async-signal-safe calls between fork and exec (the Vec
    // was allocated before the fork).
    unsafe {
        cmd.pre_exec(move || {
            let mut moved = [0; 8];
            for (k, &(fd, _)) in fds.iter().enumerate().take(moved.len()) {
                let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if high < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                moved[k] = high;
            }
            for (k, &(_, target)) in fds.iter().enumerate().take(moved.len()) {
                if libc::dup2(moved[k], target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A sealed memfd holding `bytes`: a file that lives only in memory and
/// that nobody, not even its creator, can change any more. What minipod
/// hands its helpers this way (plans, configs with Secret values, the pause
/// program) is never written to a disk.
pub fn sealed_memfd(name: &std::ffi::CStr, bytes: &[u8]) -> Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .with_context(|| format!("memfd_create({name:?})"))?;
    std::fs::File::from(fd.try_clone()?)
        .write_all(bytes)
        .with_context(|| format!("writing memfd {name:?}"))?;
    fcntl(
        &fd,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SEAL
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_WRITE,
        ),
    )
    .with_context(|| format!("sealing memfd {name:?}"))?;
    Ok(fd)
}

/// Reads the whole of descriptor `fd`, which this process inherited (a
/// `sealed_memfd`), and closes it. Reads by offset: the descriptor's file
/// position is shared with the copies its sender keeps.
pub fn take_passed_fd(fd: RawFd) -> Result<Vec<u8>> {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::FileExt;
    // SAFETY: F_GETFD only asks whether the number is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        anyhow::bail!("descriptor {fd} is not open: this is started by minipod, not by hand");
    }
    // SAFETY: open (checked above) and, by the protocol, ours alone.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        let n = file
            .read_at(&mut buf, bytes.len() as u64)
            .with_context(|| format!("reading descriptor {fd}"))?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Marks every descriptor from `first` up close-on-exec: what a process
/// inherited must not reach the processes it starts.
pub fn close_on_exec_from(first: RawFd) -> Result<()> {
    every_fd_from(first, libc::CLOSE_RANGE_CLOEXEC, |fd| {
        // SAFETY: only sets FD_CLOEXEC; a stale fd gives EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    })
}

/// Closes every descriptor from `first` up: a process that lives long
/// (the holder, a supervisor) must not keep what it inherited and does not
/// use, such as a flock its starter held (the lock would be held as long).
pub fn close_from(first: RawFd) -> Result<()> {
    every_fd_from(first, 0, |fd| {
        // SAFETY: the caller owns every descriptor from `first` up.
        unsafe { libc::close(fd) };
    })
}

/// `close_range(first, ~0, flags)`, or `one` on each open descriptor from
/// `first` up on kernels before 5.11.
fn every_fd_from(first: RawFd, flags: u32, one: impl Fn(RawFd)) -> Result<()> {
    // SAFETY: close_range only closes or flags our own descriptors, as the
    // callers ask.
    let r = unsafe {
        libc::close_range(
            first as libc::c_uint,
            libc::c_uint::MAX,
            flags as libc::c_int,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .context("listing /proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|fd| *fd >= first)
        .collect();
    // Collected first: the listing's own descriptor is among them.
    for fd in fds {
        one(fd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_memfd_reads_back_whole_and_cannot_change() {
        use std::os::fd::IntoRawFd;
        let bytes: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let fd = sealed_memfd(c"test", &bytes).unwrap();
        let mut file = std::fs::File::from(fd.try_clone().unwrap());
        assert!(file.write_all(b"x").is_err(), "sealed against writes");
        assert_eq!(take_passed_fd(fd.into_raw_fd()).unwrap(), bytes);
        assert!(
            take_passed_fd(9999).is_err(),
            "a descriptor that is not open"
        );
    }

    #[test]
    fn a_full_disk_is_recognised_through_contexts_and_messages() {
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let err = anyhow::Error::new(io).context("writing /x/images.json");
        assert!(is_disk_full(&err));
        let flattened = anyhow::anyhow!(
            "image a: layer b: layer entry \"f\": {}",
            std::io::Error::from_raw_os_error(libc::EDQUOT)
        );
        assert!(is_disk_full(&flattened));
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(!is_disk_full(&other));
    }

    #[test]
    fn temp_names_carry_the_pid() {
        let t = temp_sibling(Path::new("/x/images.json"));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_owner_pid(name), Some(std::process::id() as i32));
        assert!(name.ends_with("images.json"));
    }

    #[test]
    fn atomic_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
