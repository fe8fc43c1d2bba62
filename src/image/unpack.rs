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

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::sys::openat2::{Confine, open_confined};

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
        skipped_devices: HashSet::new(),
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
    /// Paths of device entries skipped, so hardlinks to them are skipped too.
    skipped_devices: HashSet<Vec<u8>>,
}

const WH_PREFIX: &[u8] = b".wh.";
const WH_META_PREFIX: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &std::ffi::CStr = c"user.overlay.opaque";

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
    // Digits only: `parse` would also take a second sign, and negating
    // `--9223372036854775808` overflows.
    if !(secs.bytes().all(|c| c.is_ascii_digit()) && frac.bytes().all(|c| c.is_ascii_digit())) {
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
                self.skipped_devices.insert(rel);
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

        if !self.skipped_devices.is_empty() {
            self.skipped_devices.remove(&rel);
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
                if self.skipped_devices.contains(&target) {
                    // Another name for a device node that was skipped.
                    self.report.devices_skipped += 1;
                    return Ok(());
                }
                let (tparent, tlast) = split(&target);
                let tdir = if tparent.is_empty() {
                    self.root.clone()
                } else {
                    match open_confined(
                        self.root.as_fd(),
                        tparent,
                        OFlag::O_PATH | OFlag::O_DIRECTORY,
                        Confine::Beneath,
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
        match open_confined(self.root.as_fd(), rel, flags, Confine::Beneath) {
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
                open_confined(self.root.as_fd(), rel, flags, Confine::Beneath)
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
                open_confined(
                    self.root.as_fd(),
                    rel.as_slice(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                    Confine::Beneath,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::PathBuf;
    use tar::{EntryType, Header};

    const OPTS: UnpackOptions = UnpackOptions { chown: true };

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// A tar built in memory; raw names bypass the builder's path checks.
    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Layer {
            Layer(tar::Builder::new(Vec::new()))
        }

        fn header(kind: EntryType, name: &[u8], mode: u32, mtime: u64) -> Header {
            let mut h = Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_mtime(mtime);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            h
        }

        fn append(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
            h.set_size(data.len() as u64);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }

        fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.append(
                Self::header(EntryType::Regular, name.as_bytes(), 0o644, 1000),
                data,
            )
        }

        fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
            self.append(
                Self::header(EntryType::Directory, name.as_bytes(), mode, 1000),
                b"",
            )
        }

        fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
            let mut h = Self::header(kind, name.as_bytes(), 0o777, 1000);
            h.set_link_name_literal(target).unwrap();
            self.append(h, b"")
        }

        fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.link(EntryType::Symlink, name, target)
        }

        fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.link(EntryType::Link, name, target)
        }

        /// A PAX extended header applying `records` to the next entry.
        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let mut data = Vec::new();
            for (k, v) in records {
                let body = k.len() + v.len() + 3; // ' ', '=', '\n'
                let mut len = body + 1;
                while len != body + len.to_string().len() {
                    len = body + len.to_string().len();
                }
                data.extend_from_slice(format!("{len} {k}=").as_bytes());
                data.extend_from_slice(v);
                data.push(b'\n');
            }
            self.append(
                Self::header(EntryType::XHeader, b"PaxHeader", 0o644, 0),
                &data,
            )
        }

        fn finish(&mut self) -> Vec<u8> {
            let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
            b.into_inner().unwrap()
        }
    }

    /// `outer/dest`: anything appearing in `outer` besides `dest` escaped.
    struct Sandbox {
        _tmp: tempfile::TempDir,
        outer: PathBuf,
        dest: PathBuf,
    }

    impl Sandbox {
        fn new() -> Sandbox {
            let tmp = tempfile::tempdir().unwrap();
            let outer = tmp.path().join("outer");
            let dest = outer.join("dest");
            std::fs::create_dir_all(&dest).unwrap();
            Sandbox {
                _tmp: tmp,
                outer,
                dest,
            }
        }

        fn unpack(&self, tar: &[u8]) -> Result<UnpackReport, UnpackError> {
            unpack_layer(tar, &self.dest, &OPTS)
        }

        fn p(&self, rel: &str) -> PathBuf {
            self.dest.join(rel)
        }

        fn outer_names(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(&self.outer)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    fn lmeta(p: &Path) -> std::fs::Metadata {
        std::fs::symlink_metadata(p).unwrap()
    }

    #[test]
    fn files_dirs_links_modes_owners_times() {
        let s = Sandbox::new();
        let mut l = Layer::new();
        let mut d = Layer::header(EntryType::Directory, b"./a/", 0o750, 111_111);
        d.set_uid(1000);
        d.set_gid(1001);
        l.append(d, b"");
        let mut f = Layer::header(EntryType::Regular, b"./a/f", 0o4755, 222_222);
        f.set_uid(1002);
        f.set_gid(1003);
        l.append(f, b"hello");
        let mut g = Layer::header(EntryType::Regular, b"a/sticky", 0o1777, 1);
        g.set_uid(5);
        l.append(g, b"");
        let mut sl = Layer::header(EntryType::Symlink, b"a/l", 0o777, 333_333);
        sl.set_link_name_literal("f").unwrap();
        sl.set_uid(1004);
        l.append(sl, b"");
        l.hardlink("a/h", "./a/f");
        l.file("a/b/c/deep", b"x"); // implicit parents
        let tar = l.finish();

        let r = s.unpack(&tar).unwrap();
        assert_eq!(r.entries, 6);
        assert_eq!(std::fs::read(s.p("a/f")).unwrap(), b"hello");
        let a = lmeta(&s.p("a"));
        assert!(a.is_dir());
        assert_eq!(a.mode() & 0o7777, 0o750);
        assert_eq!(a.mtime(), 111_111, "dir mtime restored after its children");
        let f = lmeta(&s.p("a/f"));
        assert_eq!(f.mode() & 0o7777, 0o4755, "setuid survives chown");
        assert_eq!(f.mtime(), 222_222);
        assert_eq!(lmeta(&s.p("a/sticky")).mode() & 0o7777, 0o1777);
        let l = lmeta(&s.p("a/l"));
        assert!(l.file_type().is_symlink());
        assert_eq!(std::fs::read_link(s.p("a/l")).unwrap(), Path::new("f"));
        assert_eq!(l.mtime(), 333_333);
        let h = lmeta(&s.p("a/h"));
        assert_eq!(h.ino(), f.ino());
        assert_eq!(h.nlink(), 2);
        assert_eq!(std::fs::read(s.p("a/b/c/deep")).unwrap(), b"x");
        assert_eq!(lmeta(&s.p("a/b")).mode() & 0o777, 0o755);
        if is_root() {
            assert_eq!((a.uid(), a.gid()), (1000, 1001));
            assert_eq!((f.uid(), f.gid()), (1002, 1003));
            assert_eq!(l.uid(), 1004);
        }
        assert_eq!(s.outer_names(), ["dest"]);
    }

    #[test]
    fn without_chown_owner_is_ours() {
        let s = Sandbox::new();
        let mut l = Layer::new();
        let mut f = Layer::header(EntryType::Regular, b"f", 0o2755, 5);
        f.set_uid(1234);
        f.set_gid(1234);
        l.append(f, b"data");
        let tar = l.finish();
        unpack_layer(&tar[..], &s.dest, &UnpackOptions { chown: false }).unwrap();
        let m = lmeta(&s.p("f"));
        assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(m.mode() & 0o7777, 0o2755);
    }

    #[test]
    fn root_entry_updates_dest_metadata() {
        let s = Sandbox::new();
        let tar = Layer::new().dir("./", 0o711).file("x", b"").finish();
        s.unpack(&tar).unwrap();
        let m = lmeta(&s.dest);
        assert_eq!(m.mode() & 0o7777, 0o711);
        assert_eq!(m.mtime(), 1000);
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let s = Sandbox::new();
        let mut l = Layer::new();
        l.file("x", b"file")
            .dir("x", 0o755) // file -> dir
            .file("x/y", b"y")
            .file("z", b"z")
            .symlink("z", "target") // file -> symlink
            .dir("d", 0o755)
            .file("d/sub/child", b"c")
            .file("d", b"now a file") // tree -> file
            .dir("k", 0o700)
            .file("k/keep", b"k")
            .dir("k", 0o755) // dir over dir: metadata only
            .file("w", b"old")
            .file("w", b"new");
        let tar = l.finish();
        s.unpack(&tar).unwrap();
        assert_eq!(std::fs::read(s.p("x/y")).unwrap(), b"y");
        assert_eq!(std::fs::read_link(s.p("z")).unwrap(), Path::new("target"));
        assert_eq!(std::fs::read(s.p("d")).unwrap(), b"now a file");
        assert_eq!(std::fs::read(s.p("k/keep")).unwrap(), b"k");
        assert_eq!(lmeta(&s.p("k")).mode() & 0o777, 0o755);
        assert_eq!(std::fs::read(s.p("w")).unwrap(), b"new");
    }

    #[test]
    fn parents_may_cross_symlinks_inside_the_layer() {
        let s = Sandbox::new();
        let tar = Layer::new()
            .dir("usr", 0o755)
            .dir("usr/lib", 0o755)
            .symlink("lib", "usr/lib")
            .file("lib/libc.so", b"elf")
            .symlink("usr/lib64", "../usr/lib")
            .file("usr/lib64/ld.so", b"ld")
            .finish();
        s.unpack(&tar).unwrap();
        assert_eq!(std::fs::read(s.p("usr/lib/libc.so")).unwrap(), b"elf");
        assert_eq!(std::fs::read(s.p("usr/lib/ld.so")).unwrap(), b"ld");
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let s = Sandbox::new();
        let tar = Layer::new()
            .dir("a", 0o755)
            .file("a/b", b"gone")
            .dir("a/tree", 0o755)
            .file("a/tree/x", b"gone too")
            .file("a/.wh.b", b"")
            .file("a/.wh.tree", b"")
            .file("new/dir/.wh.lower", b"") // parents created
            .dir("o", 0o755)
            .file("o/kept", b"k")
            .file("o/.wh..wh..opq", b"")
            .file("p/.wh..wh..opq", b"") // dir created
            .file("a/.wh..wh.plnk", b"") // aufs bookkeeping: ignored
            .finish();
        s.unpack(&tar).unwrap();
        for wh in ["a/b", "a/tree", "new/dir/lower"] {
            let m = lmeta(&s.p(wh));
            assert!(m.file_type().is_char_device(), "{wh}");
            assert_eq!(m.rdev(), 0, "{wh}");
        }
        for opq in ["o", "p"] {
            let mut buf = [0u8; 8];
            let path =
                std::ffi::CString::new(s.p(opq).into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: valid C strings and buffer.
            let n = unsafe {
                libc::lgetxattr(
                    path.as_ptr(),
                    OPAQUE_XATTR.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            assert_eq!(n, 1, "{opq}: {}", io::Error::last_os_error());
            assert_eq!(buf[0], b'y');
        }
        assert_eq!(std::fs::read(s.p("o/kept")).unwrap(), b"k");
        let mut names: Vec<_> = std::fs::read_dir(s.p("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["b", "tree"], "no .wh. files are created");
    }

    #[test]
    fn devices_skipped_fifos_created() {
        let s = Sandbox::new();
        let mut l = Layer::new();
        let mut c = Layer::header(EntryType::Char, b"dev/null", 0o666, 1);
        c.set_device_major(1).unwrap();
        c.set_device_minor(3).unwrap();
        l.append(c, b"");
        let mut b = Layer::header(EntryType::Block, b"dev/sda", 0o660, 1);
        b.set_device_major(8).unwrap();
        l.append(b, b"");
        l.append(Layer::header(EntryType::Fifo, b"run/fifo", 0o640, 77), b"");
        l.hardlink("dev/sda-link", "dev/sda");
        let tar = l.finish();
        let r = s.unpack(&tar).unwrap();
        assert_eq!(
            r.devices_skipped, 3,
            "a link to a skipped device is skipped"
        );
        assert_eq!(r.entries, 4);
        assert!(!s.p("dev/null").exists());
        let m = lmeta(&s.p("run/fifo"));
        assert!(m.file_type().is_fifo());
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!(m.mtime(), 77);
    }

    #[test]
    fn pax_xattrs_and_times() {
        let s = Sandbox::new();
        let tar = Layer::new()
            .pax(&[
                ("SCHILY.xattr.user.test", b"v\0bin"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
                ("mtime", b"1234567890.5"),
            ])
            .file("f", b"x")
            .finish();
        let r = s.unpack(&tar).unwrap();
        assert_eq!(r.xattrs_skipped, 1, "overlay xattrs are refused");
        let m = lmeta(&s.p("f"));
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 500_000_000));
        let path = std::ffi::CString::new(s.p("f").into_os_string().into_encoded_bytes()).unwrap();
        let mut buf = [0u8; 16];
        // SAFETY: valid C strings and buffer.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                c"user.test".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert_eq!(n, 5, "{}", io::Error::last_os_error());
        assert_eq!(&buf[..5], b"v\0bin");
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(TimeSpec::new(-2, 750_000_000))
        );
        assert_eq!(parse_pax_time(b"12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(parse_pax_time(b"1.x"), None);
    }

    /// Found while writing fuzz/fuzz_targets/layer_unpack.rs (read, not
    /// fuzzed): a second minus sign was taken, and `--9223372036854775808`
    /// overflowed negating i64::MIN (a panic with overflow checks).
    #[test]
    fn pax_time_has_one_sign() {
        assert_eq!(parse_pax_time(b"--9223372036854775808"), None);
        assert_eq!(parse_pax_time(b"--5"), None);
        assert_eq!(parse_pax_time(b"+5"), None);
        assert_eq!(
            parse_pax_time(b"-9223372036854775807"),
            Some(TimeSpec::new(-i64::MAX, 0))
        );
    }

    /// Every way out must be refused, with nothing created outside `dest`.
    #[test]
    fn escapes_are_refused() {
        let probe = Sandbox::new();
        let outer = probe.outer.to_str().unwrap().to_string();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", Layer::new().file("../x", b"!").finish()),
            (
                "absolute",
                Layer::new().file(&format!("{outer}/x"), b"!").finish(),
            ),
            (
                "inner dotdot",
                Layer::new().file("a/../../x", b"!").finish(),
            ),
            (
                "symlink to /",
                Layer::new()
                    .symlink("evil", "/")
                    .file(&format!("evil/{}/x", &outer[1..]), b"!")
                    .finish(),
            ),
            (
                "symlink to outer",
                Layer::new()
                    .symlink("evil", &outer)
                    .file("evil/x", b"!")
                    .finish(),
            ),
            (
                "symlink ../..",
                Layer::new()
                    .symlink("evil", "../..")
                    .file("evil/outer/x", b"!")
                    .finish(),
            ),
            (
                "symlink .. chained",
                Layer::new()
                    .dir("d", 0o755)
                    .symlink("d/up", "..")
                    .symlink("d/upup", "up/..")
                    .dir("d/upup/x", 0o755)
                    .finish(),
            ),
            (
                "hardlink absolute",
                Layer::new().hardlink("h", "/etc/passwd").finish(),
            ),
            (
                "hardlink dotdot",
                Layer::new().hardlink("h", "../secret").finish(),
            ),
            (
                "hardlink through symlink",
                Layer::new()
                    .symlink("evil", &outer)
                    .hardlink("h", "evil/secret")
                    .finish(),
            ),
            (
                "whiteout through symlink",
                Layer::new()
                    .symlink("evil", &outer)
                    .file("evil/.wh.secret", b"")
                    .finish(),
            ),
            (
                "opaque through symlink",
                Layer::new()
                    .symlink("evil", &outer)
                    .file("evil/.wh..wh..opq", b"")
                    .finish(),
            ),
            ("whiteout dot", Layer::new().file(".wh..", b"").finish()),
            (
                "whiteout dotdot",
                Layer::new().file("a/.wh...", b"").finish(),
            ),
            ("whiteout empty", Layer::new().file(".wh.", b"").finish()),
        ];
        for (what, tar) in cases {
            let s = Sandbox::new();
            std::fs::write(s.outer.join("secret"), b"secret").unwrap();
            let err = s.unpack(&tar).expect_err(what);
            assert!(matches!(err, UnpackError::Escape { .. }), "{what}: {err:?}");
            assert!(err.to_string().contains("refused"), "{what}: {err}");
            assert_eq!(s.outer_names(), ["dest", "secret"], "{what}");
            let secret = lmeta(&s.outer.join("secret"));
            assert_eq!(secret.nlink(), 1, "{what}");
            assert!(secret.is_file(), "{what}");
            assert!(!s.dest.join("h").exists(), "{what}");
        }
        assert!(!Path::new("/x").exists());
    }

    /// A symlink at the final component is replaced, never written through.
    #[test]
    fn final_symlinks_are_not_followed() {
        let s = Sandbox::new();
        std::fs::write(s.outer.join("target"), b"keep").unwrap();
        std::fs::create_dir(s.outer.join("tdir")).unwrap();
        let t = s.outer.join("target");
        let td = s.outer.join("tdir");
        let tar = Layer::new()
            .symlink("l", t.to_str().unwrap())
            .file("l", b"replaced")
            .symlink("d", td.to_str().unwrap())
            .dir("d", 0o700)
            .symlink("h", t.to_str().unwrap())
            .hardlink("h2", "h") // links the symlink itself
            .append(Layer::header(EntryType::Fifo, b"h", 0o600, 1), b"")
            .finish();
        s.unpack(&tar).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"keep");
        assert_eq!(lmeta(&t).mode() & 0o777, 0o644);
        assert_eq!(lmeta(&td).mode() & 0o777, 0o755);
        assert_eq!(std::fs::read(s.p("l")).unwrap(), b"replaced");
        assert!(lmeta(&s.p("d")).is_dir());
        assert!(lmeta(&s.p("h2")).file_type().is_symlink());
        assert_eq!(lmeta(&t).nlink(), 1);
    }

    #[test]
    fn truncated_archives_are_corrupt() {
        let full = Layer::new()
            .file("a", &[7u8; 3000])
            .file("b", b"bbb")
            .finish();
        // "a" is blocks 0..7, "b" blocks 7..9, then the end marker.
        // Mid-data, mid-header, data missing, at an entry boundary (no end
        // marker).
        for cut in [700, 512 * 7 + 100, 512 * 8, 512 * 9] {
            let s = Sandbox::new();
            let err = s.unpack(&full[..cut]).expect_err(&cut.to_string());
            assert!(matches!(err, UnpackError::Corrupt { .. }), "{cut}: {err:?}");
        }
        let err = Sandbox::new().unpack(&full[..512 * 9]).unwrap_err();
        assert!(err.to_string().contains("end-of-archive"), "{err}");
        // Garbage header.
        let s = Sandbox::new();
        let mut bad = full.clone();
        bad[0] ^= 0xff;
        assert!(matches!(s.unpack(&bad), Err(UnpackError::Corrupt { .. })));
        // The whole thing is fine.
        Sandbox::new().unpack(&full).unwrap();
    }

    #[test]
    fn stream_is_consumed_to_eof() {
        struct Counting<'a>(&'a [u8], usize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n;
                Ok(n)
            }
        }
        let mut tar = Layer::new().file("f", b"data").finish();
        tar.extend_from_slice(&[0u8; 10240]); // record padding
        let s = Sandbox::new();
        let mut r = Counting(&tar, 0);
        unpack_layer(&mut r, &s.dest, &OPTS).unwrap();
        assert_eq!(r.1, tar.len());
        // An empty layer (end marker only).
        let empty = Layer::new().finish();
        let mut r = Counting(&empty, 0);
        let rep = unpack_layer(&mut r, &Sandbox::new().dest, &OPTS).unwrap();
        assert_eq!((rep.entries, r.1), (0, empty.len()));
    }

    #[test]
    fn unsupported_and_root_entries() {
        let s = Sandbox::new();
        let tar = Layer::new().symlink("./", "x").finish();
        let err = s.unpack(&tar).unwrap_err();
        assert!(matches!(err, UnpackError::Unsupported { .. }), "{err:?}");
        let mut l = Layer::new();
        l.append(Layer::header(EntryType::new(b'V'), b"label", 0o644, 1), b"");
        let err = Sandbox::new().unpack(&l.finish()).unwrap_err();
        assert!(matches!(err, UnpackError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("label"), "{err}");
        // Old archives mark directories as regular files with a trailing '/'.
        let s = Sandbox::new();
        s.unpack(&Layer::new().file("olddir/", b"").finish())
            .unwrap();
        assert!(lmeta(&s.p("olddir")).is_dir());
    }

    #[test]
    fn compression_detection_and_decoding() {
        use Compression::*;
        let mt = |s| Compression::from_media_type(s);
        assert_eq!(mt("application/vnd.oci.image.layer.v1.tar"), Some(None));
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some(Gzip)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Zstd)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            Some(Gzip)
        );
        assert_eq!(
            mt("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Gzip)
        );
        assert_eq!(
            mt("application/vnd.docker.image.rootfs.diff.tar"),
            Some(None)
        );
        assert_eq!(mt("application/vnd.oci.image.config.v1+json"), Option::None);

        let tar = Layer::new().file("f", b"payload").finish();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar[..100]).unwrap();
        let mut gz_bytes = gz.finish().unwrap();
        // A second gzip member: MultiGzDecoder must read it too.
        let mut gz2 = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz2.write_all(&tar[100..]).unwrap();
        gz_bytes.extend(gz2.finish().unwrap());
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        assert_eq!(Compression::sniff(&gz_bytes), Gzip);
        assert_eq!(Compression::sniff(&zst), Zstd);
        assert_eq!(Compression::sniff(&tar), None);
        for (c, bytes) in [(Gzip, gz_bytes), (Zstd, zst), (None, tar.clone())] {
            let s = Sandbox::new();
            let r = c.decompressor(&bytes[..]).unwrap();
            unpack_layer(r, &s.dest, &OPTS).unwrap();
            assert_eq!(std::fs::read(s.p("f")).unwrap(), b"payload", "{c:?}");
        }
    }
}
