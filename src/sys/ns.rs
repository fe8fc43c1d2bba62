//! Joining another process's namespaces: open its /proc/PID/ns files, then
//! `setns` into each.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use nix::sched::CloneFlags;

/// A kind of namespace: its file under /proc/PID/ns and its `setns` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Mount,
    Network,
    Ipc,
    Uts,
    Pid,
}

impl Kind {
    /// The file's name under /proc/PID/ns.
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Mount => "mnt",
            Kind::Network => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Pid => "pid",
        }
    }

    /// The `CLONE_NEW*` flag that names it to `setns` and `unshare`.
    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::User => CloneFlags::CLONE_NEWUSER,
            Kind::Mount => CloneFlags::CLONE_NEWNS,
            Kind::Network => CloneFlags::CLONE_NEWNET,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
        }
    }

    /// /proc/`pid`/ns/<this kind>.
    pub fn path(self, pid: i32) -> String {
        format!("/proc/{pid}/ns/{}", self.file_name())
    }
}

/// An open namespace of some process: it stays joinable while open, even if
/// that process exits (and /proc changes once we join a mount namespace).
#[derive(Debug)]
pub struct Namespace {
    file: File,
    kind: Kind,
}

impl Namespace {
    /// Opens /proc/`pid`/ns/<`kind`>.
    pub fn open(pid: i32, kind: Kind) -> std::io::Result<Namespace> {
        Ok(Namespace {
            file: File::open(kind.path(pid))?,
            kind,
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether we are in this namespace already.
    pub fn is_current(&self) -> std::io::Result<bool> {
        let ours = std::fs::metadata(format!("/proc/self/ns/{}", self.kind.file_name()))?;
        let theirs = self.file.metadata()?;
        Ok(ours.ino() == theirs.ino() && ours.dev() == theirs.dev())
    }

    /// `setns` into it. Joining a PID namespace only moves our future
    /// children; a user namespace needs a single-threaded process.
    pub fn join(&self) -> nix::Result<()> {
        nix::sched::setns(self.file.as_fd(), self.kind.flag())
    }

    /// Joins it unless we are in it already (which also covers a namespace
    /// we could not join, such as the host's network namespace from inside
    /// a user namespace). Returns whether we joined.
    pub fn enter(&self) -> nix::Result<bool> {
        if self.is_current().unwrap_or(false) {
            return Ok(false);
        }
        self.join().map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespaces_are_current() {
        let me = std::process::id() as i32;
        for kind in [Kind::User, Kind::Mount, Kind::Network, Kind::Uts] {
            let ns = Namespace::open(me, kind).unwrap();
            assert!(ns.is_current().unwrap(), "{kind:?}");
            assert_eq!(ns.enter(), Ok(false), "{kind:?}");
        }
        assert_eq!(Kind::Mount.path(7), "/proc/7/ns/mnt");
    }
}
