//! Streaming, escape-proof unpacking of one OCI layer (an uncompressed tar
//! stream) into an empty directory.
//!
//! Safety is by construction: every parent directory is resolved relative to
//! an fd for the layer root with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)`, and the last component is created with the `*at`
//! calls on that parent fd, never following a symlink (`O_NOFOLLOW |
//! O_EXCL`, `AT_SYMLINK_NOFOLLOW`, `linkat` without `AT_SYMLINK_FOLLOW`).
//! Path strings are checked too (absolute paths and `..` are refused), but the
//! kernel's resolution is what keeps a crafted symlink from redirecting a write
//! outside the layer.
//!
//! OCI whiteouts become overlayfs whiteouts: `.wh.NAME` turns into a 0:0
//! character device `NAME`, `.wh..wh..opq` into the `user.overlay.opaque=y`
//! xattr (overlayfs reads the `user.` prefix when mounted with `userxattr`,
//! which is how it is mounted inside a user namespace).

// The store is the caller; until it is wired in, the binary does not use this.
#![cfg_attr(not(test), allow(dead_code))]

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares; `None` for media types
    /// that are not layers this module knows.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        // Parameters (`; foo=bar`) are not used by any registry for layers, but
        // are legal in a media type.
        let mt = mt.split(';').next().unwrap_or("").trim();
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Guesses the compression from the first bytes of a blob (for archives
    /// whose media type says nothing, e.g. `docker save` output).
    pub fn sniff(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Wraps `r` in the matching decompressor. Concatenated gzip members and
    /// zstd frames are all read.
    pub fn decompressor<'a, R: Read + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => {
                let mut d = zstd::stream::read::Decoder::new(r)?;
                // Accept layers compressed with `--long` (windows up to 2 GiB);
                // the default limit (128 MiB) would refuse them.
                d.window_log_max(31)?;
                Box::new(d)
            }
        })
    }
}

/// How to unpack.
#[derive(Clone, Copy, Debug)]
pub struct UnpackOptions {
    /// Apply the owners recorded in the layer. False when the user namespace
    /// maps a single uid: then ownership cannot be applied and is skipped.
    pub chown: bool,
}

/// What unpacking skipped, for the caller to warn about once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Character and block devices in the layer (not creatable rootless).
    pub devices_skipped: u64,
    /// Extended attributes that could not be (or must not be) set.
    pub xattrs_skipped: u64,
    /// Tar entries read, including skipped ones.
    pub entries: u64,
}

#[derive(thiserror::Error, Debug)]
pub enum UnpackError {
    /// The entry tried to write outside the layer directory.
    #[error("layer entry {entry:?} refused: {reason}")]
    Escape { entry: String, reason: String },
    /// A filesystem operation for the entry failed.
    #[error("layer entry {entry:?}: {source}")]
    Io {
        entry: String,
        #[source]
        source: io::Error,
    },
    /// The owner recorded in the layer could not be applied.
    #[error(
        "layer entry {entry:?}: cannot set owner {uid}:{gid} (is it mapped in the user namespace?): {source}"
    )]
    Chown {
        entry: String,
        uid: u64,
        gid: u64,
        #[source]
        source: io::Error,
    },
    /// The entry is well-formed tar but cannot be unpacked (unknown type,
    /// names the layer root as a non-directory, ...).
    #[error("layer entry {entry:?}: {reason}")]
    Unsupported { entry: String, reason: String },
    /// The tar stream is unreadable or truncated.
    #[error("layer tar stream is corrupt or truncated: {source}")]
    Corrupt {
        #[source]
        source: io::Error,
    },
}

fn corrupt(source: io::Error) -> UnpackError {
    UnpackError::Corrupt { source }
}

/// Unpacks the tar stream `tar_stream` into `dest`, an existing empty
/// directory. Reads the stream to its end (padding after the end-of-archive
/// marker included), so a hashing reader underneath has seen every byte.
pub fn unpack_layer<R: Read>(
    tar_stream: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let root = nix::fcntl::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io {
        entry: dest.display().to_string(),
        source: e.into(),
    })?;
    let mut u = Unpacker {
        root: Rc::new(root),
        opts: *opts,
        report: UnpackReport::default(),
        cache: None,
        dir_times: Vec::new(),
        buf: vec![0u8; COPY_BUF],
        first_xattr_failure: None,
    };

    let tracked = EofTracker {
        inner: tar_stream,
        hit_eof: false,
    };
    let mut archive = tar::Archive::new(BufReader::with_capacity(64 * 1024, tracked));
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        u.entry(&mut entry)?;
    }
    let mut rest = archive.into_inner();
    // The tar reader stops at the first zero block. If it stopped because the
    // stream ended instead, the archive was cut off at an entry boundary.
    let truncated = rest.get_ref().hit_eof;
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    if truncated {
        return Err(corrupt(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the archive ends without an end-of-archive marker",
        )));
    }
    u.finish();
    Ok(u.report)
}

const COPY_BUF: usize = 256 * 1024;

/// Remembers whether the inner reader ever reported end of stream.
struct EofTracker<R> {
    inner: R,
    hit_eof: bool,
}

impl<R: Read> Read for EofTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof = true;
        }
        Ok(n)
    }
}

/// Metadata of one entry, with PAX records applied.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Unpacker {
    root: Rc<OwnedFd>,
    opts: UnpackOptions,
    report: UnpackReport,
    /// The last parent directory resolved, keyed by its normalized path.
    /// Dropped whenever anything is removed (a removal can change what a path
    /// resolves to); creating a new name never changes an existing path.
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Directory mtimes, applied at the end (adding children changes them).
    dir_times: Vec<(Vec<u8>, TimeSpec)>,
    buf: Vec<u8>,
    first_xattr_failure: Option<String>,
}

const WH_PREFIX: &[u8] = b".wh.";
const WH_META_PREFIX: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &std::ffi::CStr = c"user.overlay.opaque";

fn resolve_how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// `openat2` beneath `dir`, retrying the EAGAIN the kernel may return when a
/// rename races with a `..`-free resolution check.
fn openat2(dir: BorrowedFd<'_>, path: &[u8], flags: OFlag) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dir, path, resolve_how(flags)) {
            Err(Errno::EAGAIN | Errno::EINTR) if tries < 16 => tries += 1,
            r => return r,
        }
    }
}

/// Normalizes a tar path: drops `.` and empty components, refuses absolute
/// paths and `..`. The empty result names the layer root.
fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut out = Vec::with_capacity(raw.len());
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path has a '..' component"),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.contains(&0) {
        return Err("path contains a NUL byte");
    }
    Ok(out)
}

/// Splits a normalized path into (parent, last component).
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// PAX time: `[-]SECONDS[.FRACTION]`.
fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    // The first nine digits of the fraction, right-padded with zeros.
    let nanos = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0i64, |n, c| n * 10 + i64::from(c - b'0'));
    let (secs, nanos) = if neg {
        if nanos == 0 {
            (-secs, 0)
        } else {
            (-secs - 1, 1_000_000_000 - nanos)
        }
    } else {
        (secs, nanos)
    };
    Some(TimeSpec::new(secs, nanos))
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `src` into `dst` in large chunks (filling the buffer before each
/// write, so decompressors that return small reads do not cause small writes).
fn copy_data(src: &mut impl Read, dst: &mut File, buf: &mut [u8]) -> Result<u64, CopyError> {
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        dst.write_all(&buf[..filled]).map_err(CopyError::Write)?;
        total += filled as u64;
        if filled < buf.len() {
            return Ok(total);
        }
    }
}

/// Removes the directory `name` in `dir` and everything below it, never
/// following symlinks.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let mut d = nix::dir::Dir::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for ent in d.iter() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    let fd = d.as_fd();
    for n in names {
        match nix::unistd::unlinkat(fd, n.as_slice(), nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => remove_tree(fd, &n)?,
            Err(e) => return Err(e),
        }
    }
    match nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        self.report.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let name = lossy(&raw);
        let escape = |reason: &str| UnpackError::Escape {
            entry: lossy(&raw),
            reason: reason.to_string(),
        };
        let unsupported = |reason: &str| UnpackError::Unsupported {
            entry: lossy(&raw),
            reason: reason.to_string(),
        };
        let io_err = |e: io::Error| UnpackError::Io {
            entry: lossy(&raw),
            source: e,
        };

        let mut kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let rel = normalize(&raw).map_err(escape)?;
        // Pre-POSIX archives mark directories as regular files with a '/'.
        if kind == tar::EntryType::Regular && raw.last() == Some(&b'/') {
            kind = tar::EntryType::Directory;
        }
        let (parent, last) = split(&rel);

        // Whiteouts, whatever the entry's type.
        if last.starts_with(WH_PREFIX) {
            if last == WH_OPAQUE {
                let dir = self.parent(parent).map_err(|e| self.resolve_err(&raw, e))?;
                return set_xattr(dir.as_fd(), OPAQUE_XATTR, b"y").map_err(io_err);
            }
            if last.starts_with(WH_META_PREFIX) {
                // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never content.
                return Ok(());
            }
            let target = &last[WH_PREFIX.len()..];
            if target.is_empty() || target == b"." || target == b".." {
                return Err(escape("whiteout names no file (or '.' or '..')"));
            }
            let dir = self.parent(parent).map_err(|e| self.resolve_err(&raw, e))?;
            self.remove(dir.as_fd(), target).map_err(io_err)?;
            nix::sys::stat::mknodat(
                dir.as_fd(),
                target,
                SFlag::S_IFCHR,
                Mode::empty(),
                nix::sys::stat::makedev(0, 0),
            )
            .map_err(|e| io_err(e.into()))?;
            return Ok(());
        }

        if rel.is_empty() && kind != tar::EntryType::Directory {
            return Err(unsupported("names the layer root but is not a directory"));
        }

        match kind {
            tar::EntryType::Char | tar::EntryType::Block => {
                self.report.devices_skipped += 1;
                return Ok(());
            }
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::GNUSparse
            | tar::EntryType::Directory
            | tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Fifo => {}
            other => {
                return Err(unsupported(&format!(
                    "unsupported tar entry type {:?}",
                    other.as_byte() as char
                )));
            }
        }

        let meta = read_meta(entry, &name)?;

        if kind == tar::EntryType::Directory {
            return self.directory(&raw, &rel, &meta);
        }

        let dir = self.parent(parent).map_err(|e| self.resolve_err(&raw, e))?;
        let dir = dir.as_fd();
        match kind {
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsupported("symlink without a target"))?
                    .into_owned();
                self.create(dir, last, || {
                    nix::unistd::symlinkat(target.as_slice(), dir, last)
                })
                .map_err(io_err)?;
                self.symlink_meta(dir, last, &raw, &meta)
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsupported("hardlink without a target"))?
                    .into_owned();
                let target = normalize(&target_raw).map_err(|r| {
                    escape(&format!("hardlink target {:?}: {r}", lossy(&target_raw)))
                })?;
                if target.is_empty() {
                    return Err(escape("hardlink to the layer root"));
                }
                if target == rel {
                    return Ok(()); // a link to itself: nothing to do
                }
                let (tparent, tlast) = split(&target);
                let tdir = if tparent.is_empty() {
                    self.root.clone()
                } else {
                    match openat2(
                        self.root.as_fd(),
                        tparent,
                        OFlag::O_PATH | OFlag::O_DIRECTORY,
                    ) {
                        Ok(fd) => Rc::new(fd),
                        Err(Errno::EXDEV) => {
                            return Err(escape(&format!(
                                "hardlink target {:?} resolves outside the layer",
                                lossy(&target_raw)
                            )));
                        }
                        Err(e) => return Err(io_err(e.into())),
                    }
                };
                // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                self.create(dir, last, || {
                    nix::unistd::linkat(
                        tdir.as_fd(),
                        tlast,
                        dir,
                        last,
                        nix::fcntl::AtFlags::empty(),
                    )
                })
                .map_err(|e| {
                    io_err(io::Error::new(
                        e.kind(),
                        format!("hardlink to {:?}: {e}", lossy(&target_raw)),
                    ))
                })
            }
            tar::EntryType::Fifo => {
                self.create(dir, last, || {
                    nix::sys::stat::mknodat(
                        dir,
                        last,
                        SFlag::S_IFIFO,
                        Mode::from_bits_truncate(0o600),
                        0,
                    )
                })
                .map_err(io_err)?;
                let fd = nix::fcntl::openat(
                    dir,
                    last,
                    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(e.into()))?;
                self.apply_meta(fd.as_fd(), &raw, &meta, true)
            }
            _ => {
                // Regular file (and contiguous / sparse, which read as regular).
                let fd = self
                    .create(dir, last, || {
                        nix::fcntl::openat(
                            dir,
                            last,
                            OFlag::O_WRONLY
                                | OFlag::O_CREAT
                                | OFlag::O_EXCL
                                | OFlag::O_NOFOLLOW
                                | OFlag::O_CLOEXEC,
                            Mode::from_bits_truncate(0o600),
                        )
                    })
                    .map_err(io_err)?;
                let mut file = File::from(fd);
                let expected = entry.size();
                let copied = match copy_data(entry, &mut file, &mut self.buf) {
                    Ok(n) => n,
                    Err(CopyError::Read(e)) => {
                        return Err(corrupt(io::Error::new(e.kind(), format!("{name}: {e}"))));
                    }
                    Err(CopyError::Write(e)) => return Err(io_err(e)),
                };
                if kind != tar::EntryType::GNUSparse && copied != expected {
                    return Err(corrupt(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name}: data ends after {copied} of {expected} bytes"),
                    )));
                }
                self.apply_meta(file.as_fd(), &raw, &meta, true)
            }
        }
    }

    /// A directory entry: created if absent (replacing a non-directory),
    /// metadata updated if present.
    fn directory(&mut self, raw: &[u8], rel: &[u8], meta: &Meta) -> Result<(), UnpackError> {
        let io_err = |e: io::Error| UnpackError::Io {
            entry: lossy(raw),
            source: e,
        };
        if rel.is_empty() {
            let root = self.root.clone();
            self.apply_meta(root.as_fd(), raw, meta, false)?;
            self.dir_times.push((Vec::new(), meta.mtime));
            return Ok(());
        }
        let (parent, last) = split(rel);
        let dir = self.parent(parent).map_err(|e| self.resolve_err(raw, e))?;
        let dir = dir.as_fd();
        match nix::sys::stat::mkdirat(dir, last, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let st =
                    nix::sys::stat::fstatat(dir, last, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map_err(|e| io_err(e.into()))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    self.remove(dir, last).map_err(io_err)?;
                    nix::sys::stat::mkdirat(dir, last, Mode::from_bits_truncate(0o700))
                        .map_err(|e| io_err(e.into()))?;
                }
            }
            Err(e) => return Err(io_err(e.into())),
        }
        let fd = nix::fcntl::openat(
            dir,
            last,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(e.into()))?;
        self.apply_meta(fd.as_fd(), raw, meta, false)?;
        self.dir_times.push((rel.to_vec(), meta.mtime));
        // Its children most likely come next.
        self.cache = Some((rel.to_vec(), Rc::new(fd)));
        Ok(())
    }

    /// Owner, then mode (chown clears setuid/setgid), xattrs, and for
    /// non-directories the times.
    fn apply_meta(
        &mut self,
        fd: BorrowedFd<'_>,
        raw: &[u8],
        meta: &Meta,
        times: bool,
    ) -> Result<(), UnpackError> {
        if self.opts.chown {
            chown_fd(fd, meta, raw)?;
        }
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(|e| {
            UnpackError::Io {
                entry: lossy(raw),
                source: e.into(),
            }
        })?;
        for (name, value) in &meta.xattrs {
            let res = if forbidden_xattr(name) {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                match std::ffi::CString::new(name.clone()) {
                    Ok(c) => set_xattr(fd, &c, value),
                    Err(_) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
                }
            };
            if let Err(e) = res {
                self.xattr_failed(raw, name, e);
            }
        }
        if times {
            nix::sys::stat::futimens(fd, &meta.mtime, &meta.mtime).map_err(|e| {
                UnpackError::Io {
                    entry: lossy(raw),
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }

    fn symlink_meta(
        &mut self,
        dir: BorrowedFd<'_>,
        last: &[u8],
        raw: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let io_err = |e: Errno| UnpackError::Io {
            entry: lossy(raw),
            source: e.into(),
        };
        if self.opts.chown {
            let (uid, gid) = ids(meta, raw)?;
            nix::unistd::fchownat(
                dir,
                last,
                Some(uid),
                Some(gid),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| UnpackError::Chown {
                entry: lossy(raw),
                uid: meta.uid,
                gid: meta.gid,
                source: e.into(),
            })?;
        }
        if !meta.xattrs.is_empty() {
            // No fd can be opened on a symlink for fsetxattr; go through the
            // parent's fd in /proc and lsetxattr (which does not follow).
            let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            path.extend_from_slice(last);
            for (name, value) in &meta.xattrs {
                let res = match (
                    std::ffi::CString::new(path.clone()),
                    std::ffi::CString::new(name.clone()),
                ) {
                    (Ok(p), Ok(n)) if !forbidden_xattr(name) => {
                        // SAFETY: valid C strings and a valid buffer.
                        let r = unsafe {
                            libc::lsetxattr(
                                p.as_ptr(),
                                n.as_ptr(),
                                value.as_ptr().cast(),
                                value.len(),
                                0,
                            )
                        };
                        if r == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::last_os_error())
                        }
                    }
                    _ => Err(io::Error::from_raw_os_error(libc::EPERM)),
                };
                if let Err(e) = res {
                    self.xattr_failed(raw, name, e);
                }
            }
        }
        nix::sys::stat::utimensat(
            dir,
            last,
            &meta.mtime,
            &meta.mtime,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io_err)
    }

    fn xattr_failed(&mut self, raw: &[u8], name: &[u8], e: io::Error) {
        self.report.xattrs_skipped += 1;
        if self.first_xattr_failure.is_none() {
            self.first_xattr_failure = Some(format!("{} on {:?}: {e}", lossy(name), lossy(raw)));
        }
    }

    /// Runs `op` (which creates `last` in `dir`); if the name exists, removes
    /// what is there and runs it again: later entries win.
    fn create<T>(
        &mut self,
        dir: BorrowedFd<'_>,
        last: &[u8],
        mut op: impl FnMut() -> Result<T, Errno>,
    ) -> io::Result<T> {
        match op() {
            Err(Errno::EEXIST) => {
                self.remove(dir, last)?;
                op().map_err(Into::into)
            }
            r => r.map_err(Into::into),
        }
    }

    /// Removes whatever is at `last` in `dir` (a whole tree for a directory);
    /// absent is fine.
    fn remove(&mut self, dir: BorrowedFd<'_>, last: &[u8]) -> io::Result<()> {
        // Whatever the cache points at may have been reached through this name.
        self.cache = None;
        match nix::unistd::unlinkat(dir, last, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => remove_tree(dir, last).map_err(Into::into),
            Err(e) => Err(e.into()),
        }
    }

    /// The directory `parent` (a normalized path, empty for the root),
    /// resolved beneath the root and created (0755) where missing.
    fn parent(&mut self, parent: &[u8]) -> Result<Rc<OwnedFd>, Errno> {
        if parent.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((path, fd)) = &self.cache
            && path.as_slice() == parent
        {
            return Ok(fd.clone());
        }
        let fd = Rc::new(self.open_dir(parent)?);
        self.cache = Some((parent.to_vec(), fd.clone()));
        Ok(fd)
    }

    fn open_dir(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        match openat2(self.root.as_fd(), rel, flags) {
            Err(Errno::ENOENT) => {
                let (parent, last) = split(rel);
                let pfd = if parent.is_empty() {
                    None
                } else {
                    Some(self.open_dir(parent)?)
                };
                let pfd = pfd.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
                match nix::sys::stat::mkdirat(pfd, last, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                openat2(self.root.as_fd(), rel, flags)
            }
            r => r,
        }
    }

    fn resolve_err(&self, raw: &[u8], e: Errno) -> UnpackError {
        match e {
            Errno::EXDEV => UnpackError::Escape {
                entry: lossy(raw),
                reason: "its parent path crosses a symlink that leads outside the layer".into(),
            },
            e => UnpackError::Io {
                entry: lossy(raw),
                source: io::Error::new(
                    io::Error::from(e).kind(),
                    format!("resolving its parent directory: {e}"),
                ),
            },
        }
    }

    /// Directory times, now that no entry will add children; the one warning
    /// about extended attributes.
    fn finish(&mut self) {
        for (rel, t) in std::mem::take(&mut self.dir_times) {
            let res = if rel.is_empty() {
                nix::sys::stat::futimens(self.root.as_fd(), &t, &t)
            } else {
                // A directory replaced or removed later is simply skipped.
                openat2(
                    self.root.as_fd(),
                    &rel,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                )
                .and_then(|fd| nix::sys::stat::futimens(fd.as_fd(), &t, &t))
            };
            if let Err(e) = res {
                tracing::debug!(path = %lossy(&rel), error = %e, "directory mtime not restored");
            }
        }
        if let Some(first) = self.first_xattr_failure.take() {
            tracing::warn!(
                skipped = self.report.xattrs_skipped,
                "some extended attributes in the layer could not be set (first: {first})"
            );
        }
    }
}

/// Extended attributes a layer must not set: overlayfs' own metadata
/// (redirects, opaque markers, metacopy) would let a layer forge the
/// structure of the merged tree.
fn forbidden_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn set_xattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid fd, C string and buffer.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ids(meta: &Meta, raw: &[u8]) -> Result<(Uid, Gid), UnpackError> {
    match (u32::try_from(meta.uid), u32::try_from(meta.gid)) {
        (Ok(u), Ok(g)) if u != u32::MAX && g != u32::MAX => {
            Ok((Uid::from_raw(u), Gid::from_raw(g)))
        }
        _ => Err(UnpackError::Chown {
            entry: lossy(raw),
            uid: meta.uid,
            gid: meta.gid,
            source: io::Error::from_raw_os_error(libc::EINVAL),
        }),
    }
}

fn chown_fd(fd: BorrowedFd<'_>, meta: &Meta, raw: &[u8]) -> Result<(), UnpackError> {
    let (uid, gid) = ids(meta, raw)?;
    nix::unistd::fchown(fd, Some(uid), Some(gid)).map_err(|e| UnpackError::Chown {
        entry: lossy(raw),
        uid: meta.uid,
        gid: meta.gid,
        source: e.into(),
    })
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, UnpackError> {
    let field = |what: &str, e: io::Error| corrupt(bad_data(format!("{name}: bad {what}: {e}")));
    let h = entry.header();
    let mode = h.mode().map_err(|e| field("mode", e))? & 0o7777;
    // The tar crate has already applied PAX uid/gid records to the header.
    let uid = h.uid().map_err(|e| field("uid", e))?;
    let gid = h.gid().map_err(|e| field("gid", e))?;
    let secs = h.mtime().map_err(|e| field("mtime", e))?;
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(corrupt)? {
        for ext in exts {
            let ext = ext.map_err(|e| field("PAX record", e))?;
            let key = ext.key_bytes();
            if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                match parse_pax_time(ext.value_bytes()) {
                    Some(t) => mtime = t,
                    None => {
                        return Err(field("PAX mtime", bad_data(lossy(ext.value_bytes()))));
                    }
                }
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}
