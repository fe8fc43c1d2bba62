//! `openat2(2)` confined to a directory: the one way minipod opens a path
//! that an image controls (layer contents, a container's root), so that a
//! symlink in the image cannot lead minipod to a file on the host.

use std::os::fd::{BorrowedFd, OwnedFd};

use nix::NixPath;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

/// How many times a lookup the kernel asks us to retry is tried.
const TRIES: u32 = 16;

/// How a path is kept inside its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confine {
    /// `..` and absolute symlinks stop at the directory, as they would at `/`
    /// for a process chrooted there (`RESOLVE_IN_ROOT`).
    InRoot,
    /// A path (or a symlink on the way) that would leave the directory fails
    /// with `EXDEV` (`RESOLVE_BENEATH`).
    Beneath,
}

/// `openat2` of `path` in `dir`, kept inside it as `confine` says, never
/// through a magic link (/proc/PID/fd/N and the like), always
/// close-on-exec; for files that exist (no mode is passed, so no
/// `O_CREAT`). An empty `path` is `dir` itself. Retries the `EAGAIN` the
/// kernel returns when a rename races with the check that `..` stays
/// inside, and `EINTR`.
pub fn open_confined<P: ?Sized + NixPath>(
    dir: BorrowedFd<'_>,
    path: &P,
    flags: OFlag,
    confine: Confine,
) -> nix::Result<OwnedFd> {
    let confine = match confine {
        Confine::InRoot => ResolveFlag::RESOLVE_IN_ROOT,
        Confine::Beneath => ResolveFlag::RESOLVE_BENEATH,
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(confine | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut tries = 1;
    loop {
        let result = if path.is_empty() {
            nix::fcntl::openat2(dir, ".", how)
        } else {
            nix::fcntl::openat2(dir, path, how)
        };
        match result {
            Err(Errno::EAGAIN | Errno::EINTR) if tries < TRIES => tries += 1,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn in_root_stays_in_beneath_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(dir.path().join("secret"), "host").unwrap();
        std::fs::write(root.join("secret"), "image").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("/secret", root.join("abs")).unwrap();
        let root = std::fs::File::open(&root).unwrap();

        for link in ["etc/up", "abs", "/abs"] {
            let fd = open_confined(root.as_fd(), link, OFlag::O_RDONLY, Confine::InRoot).unwrap();
            let text = std::io::read_to_string(std::fs::File::from(fd)).unwrap();
            assert_eq!(text, "image", "{link}");
            assert_eq!(
                open_confined(root.as_fd(), link, OFlag::O_RDONLY, Confine::Beneath).unwrap_err(),
                Errno::EXDEV,
                "{link}"
            );
        }
        assert!(open_confined(root.as_fd(), "", OFlag::O_DIRECTORY, Confine::InRoot).is_ok());
        assert_eq!(
            open_confined(root.as_fd(), "a\0b", OFlag::O_RDONLY, Confine::InRoot).unwrap_err(),
            Errno::EINVAL
        );
    }
}
