//! Advisory file locks (flock): every shared file is changed under one, so two
//! minipod commands can run at once. The lock is released when dropped, and by
//! the kernel if the process dies.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

#[derive(Debug)]
pub struct FileLock {
    file: File,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Blocks until the lock at `path` is held.
    pub fn acquire(path: &Path, mode: Mode) -> Result<FileLock> {
        let lock = FileLock::open(path)?;
        lock.flock(mode, false)?;
        Ok(lock)
    }

    /// Returns `None` when somebody else holds it.
    pub fn try_acquire(path: &Path, mode: Mode) -> Result<Option<FileLock>> {
        let lock = FileLock::open(path)?;
        match lock.flock(mode, true) {
            Ok(()) => Ok(Some(lock)),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }

    /// Like `try_acquire`, for a lock file its holder deletes when done
    /// (`release_and_remove`): a lock taken on a file that was unlinked
    /// meanwhile is retried on the new file.
    pub fn try_acquire_removable(path: &Path) -> Result<Option<FileLock>> {
        loop {
            let Some(lock) = FileLock::try_acquire(path, Mode::Exclusive)? else {
                return Ok(None);
            };
            let held = lock.file.metadata()?.ino();
            match std::fs::metadata(path) {
                Ok(m) if m.ino() == held => return Ok(Some(lock)),
                _ => continue,
            }
        }
    }

    /// Blocks until the lock at `path` is held, if the file exists; None
    /// when it does not, or was removed while we waited (its holder deletes
    /// it). Creates nothing: for a lock whose absence means its object is
    /// gone (a named volume's).
    pub fn acquire_existing(path: &Path, mode: Mode) -> Result<Option<FileLock>> {
        let file = match OpenOptions::new().read(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let lock = FileLock { file };
        lock.flock(mode, false)
            .with_context(|| format!("locking {}", path.display()))?;
        let held = lock.file.metadata()?.ino();
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == held => Ok(Some(lock)),
            _ => Ok(None),
        }
    }

    /// Whether taking the lock at `path` in `mode` would wait for somebody
    /// (for a pod's lock, `Shared`: whether its owner holds it). Creates
    /// nothing: no file, no lock.
    pub fn would_block(path: &Path, mode: Mode) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        let lock = FileLock { file };
        matches!(
            lock.flock(mode, true),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK)
        )
    }

    /// The lock's descriptor, to hand to a child process that is to hold
    /// the lock on: a flock belongs to the open file, shared by every copy
    /// of the descriptor, so it stays held while the child keeps its copy.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// A lock held through `fd`, handed over by the parent (`as_raw_fd`).
    ///
    /// # Safety
    /// `fd` must be an open descriptor of a held lock file, owned by no one
    /// else in this process.
    pub unsafe fn from_inherited(fd: std::os::fd::RawFd) -> FileLock {
        // SAFETY: the caller vouches for `fd`.
        let file = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
        FileLock { file }
    }

    /// Deletes the lock file, then lets go of it.
    pub fn release_and_remove(self, path: &Path) {
        let _ = std::fs::remove_file(path);
        drop(self);
    }

    /// Blocks until nobody holds the lock at `path` (returns at once when
    /// the file does not exist). Creates nothing.
    pub fn wait_released(path: &Path) -> Result<()> {
        match FileLock::open_existing(path)? {
            Some(file) => file.wait_free(),
            None => Ok(()),
        }
    }

    /// The lock file at `path`, opened without taking the lock (None when
    /// there is none): to wait later for *this* file's holders, whatever
    /// replaces it at `path` meanwhile.
    pub fn open_existing(path: &Path) -> Result<Option<FileLock>> {
        match File::open(path) {
            Ok(file) => Ok(Some(FileLock { file })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
        }
    }

    /// Blocks until nobody holds this lock exclusively.
    pub fn wait_free(&self) -> Result<()> {
        self.flock(Mode::Shared, false)
            .context("waiting for a lock to be released")
    }

    fn open(path: &Path) -> Result<FileLock> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        Ok(FileLock { file })
    }

    fn flock(&self, mode: Mode, nonblocking: bool) -> std::io::Result<()> {
        let mut op = match mode {
            Mode::Shared => libc::LOCK_SH,
            Mode::Exclusive => libc::LOCK_EX,
        };
        if nonblocking {
            op |= libc::LOCK_NB;
        }
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(self.file.as_raw_fd(), op) } == 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}
