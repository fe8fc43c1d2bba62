//! `minipod cp`'s two halves, as docker's and podman's `cp` behave: the
//! source side writes a tar stream ([`send`]), the destination side reads it
//! and puts it where the destination says ([`receive`], the decision in
//! [`place`], pure). One side runs on the host as the caller, the other in a
//! child that joined the container's mount namespace
//! (`container::in_container_files`), so a container's path is resolved by
//! the kernel inside its root, and files written there belong to the
//! container's root (the child is root of the user namespace) while files
//! written on the host belong to the caller.
//!
//! The stream's entries are all under one root entry, the source's name
//! (`hosts`, `dir/…`); the receiver maps that root to the place it chose.
//! A new file or directory is written under a temporary name beside its
//! destination and renamed into place, so a failed copy leaves nothing half
//! written; only a merge into an existing directory writes in place.

use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// What a source is: a directory, or anything else (a file, a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// What is at a destination path before the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestState {
    /// Nothing; whether its parent is a directory.
    Missing {
        parent_is_dir: bool,
    },
    File,
    Dir,
}

/// One side of a copy as the command line gives it: the path, whether it
/// ends with `/` (it must be a directory), and with `/.` (a directory's
/// contents, not the directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArg {
    pub path: PathBuf,
    pub trailing_slash: bool,
    pub contents_only: bool,
}

impl PathArg {
    pub fn parse(text: &str) -> PathArg {
        let contents_only = text == "." || text.ends_with("/.");
        PathArg {
            path: PathBuf::from(text),
            trailing_slash: text.ends_with('/'),
            // A path without a name ("/") can only be copied as its contents.
            contents_only: contents_only || Path::new(text).file_name().is_none(),
        }
    }

    /// The name of the stream's root entry: the source's own name.
    fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("_")
    }
}

/// Where the source's root lands: `path`, which either is new (written
/// under a temporary name, then renamed) or an existing directory the
/// source directory's entries are merged into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub path: PathBuf,
    pub merge: bool,
}

/// docker's rules: a file onto a file replaces it, into a directory goes
/// inside it, to a new name takes it (whose directory must exist); a
/// directory to a new name becomes it, into a directory goes inside it (its
/// contents with `SRC/.`), and never onto a file.
pub fn place(
    kind: Kind,
    src: &PathArg,
    dest: &PathArg,
    state: DestState,
) -> Result<Placement, String> {
    let d = dest.path.display();
    if kind == Kind::File && src.trailing_slash {
        return Err(format!("{} is not a directory", src.path.display()));
    }
    match (kind, state) {
        (_, DestState::Missing { .. }) if dest.trailing_slash && kind == Kind::File => Err(
            format!("no such directory {d}: make it first, or drop the trailing /"),
        ),
        (
            _,
            DestState::Missing {
                parent_is_dir: false,
            },
        ) => Err(format!(
            "no such directory {}: the destination's directory must exist",
            parent_of(&dest.path).display()
        )),
        (_, DestState::Missing { .. }) => Ok(Placement {
            path: dest.path.clone(),
            merge: false,
        }),
        (Kind::File, DestState::File) if dest.trailing_slash => {
            Err(format!("{d} is not a directory"))
        }
        (Kind::File, DestState::File) => Ok(Placement {
            path: dest.path.clone(),
            merge: false,
        }),
        (Kind::File, DestState::Dir) => Ok(Placement {
            path: dest.path.join(src.name()),
            merge: false,
        }),
        (Kind::Dir, DestState::File) => Err(format!("cannot copy a directory onto the file {d}")),
        (Kind::Dir, DestState::Dir) if src.contents_only => Ok(Placement {
            path: dest.path.clone(),
            merge: true,
        }),
        (Kind::Dir, DestState::Dir) => Ok(Placement {
            path: dest.path.join(src.name()),
            merge: false,
        }),
    }
}

/// A path's directory (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What is at `path` now (following a symlink, as docker does for a
/// destination).
pub fn dest_state(path: &Path) -> DestState {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => DestState::Dir,
        Ok(_) => DestState::File,
        Err(_) => DestState::Missing {
            parent_is_dir: parent_of(path).is_dir(),
        },
    }
}

/// Checks a source path before anything starts: it must exist.
pub fn check_source(src: &PathArg) -> Result<()> {
    let follow = src.trailing_slash || src.contents_only;
    let found = if follow {
        fs::metadata(&src.path)
    } else {
        fs::symlink_metadata(&src.path)
    };
    match found {
        Ok(m) if src.trailing_slash && !m.is_dir() => {
            bail!("{} is not a directory", src.path.display())
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: no such file or directory", src.path.display())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", src.path.display())),
    }
}

/// Writes the source as a tar stream (uids, modes, mtimes; symlinks as
/// links), its root entry named after it.
pub fn send(src: &PathArg, out: impl Write) -> Result<()> {
    check_source(src)?;
    let follow = src.trailing_slash || src.contents_only;
    let path = if follow {
        fs::canonicalize(&src.path).with_context(|| format!("resolving {}", src.path.display()))?
    } else {
        src.path.clone()
    };
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let meta = fs::symlink_metadata(&path)?;
    let written = if meta.is_dir() {
        builder.append_dir_all(src.name(), &path)
    } else if meta.is_file() {
        // No more than the size the header says: a file of /proc or /sys
        // says 0 and has more, which would corrupt the stream.
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        fs::File::open(&path)
            .and_then(|f| builder.append_data(&mut header, src.name(), f.take(meta.len())))
    } else {
        builder.append_path_with_name(&path, src.name())
    };
    written.with_context(|| format!("reading {}", src.path.display()))?;
    builder.into_inner()?.flush()?;
    Ok(())
}

/// Reads a stream `send` wrote and places it at `dest` (see [`place`]).
pub fn receive(input: impl Read, src: &PathArg, dest: &PathArg) -> Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries()?;
    let Some(first) = entries.next() else {
        bail!("nothing came to copy");
    };
    let mut first = first?;
    let root = first.path()?.into_owned();
    if root.components().count() != 1 {
        bail!(
            "the copy stream starts with {}, not one name",
            root.display()
        );
    }
    let kind = if first.header().entry_type().is_dir() {
        Kind::Dir
    } else {
        Kind::File
    };
    let mut placement = place(kind, src, dest, dest_state(&dest.path)).map_err(|e| anyhow!(e))?;
    // A directory whose name is taken by a directory merges into it.
    placement.merge |= kind == Kind::Dir && placement.path.is_dir();
    if placement.merge {
        let mut dirs = Vec::new();
        for entry in entries {
            unpack_entry(&mut entry?, &root, &placement.path, &mut dirs)?;
        }
        return finish_dirs(&dirs);
    }
    // A new name: written in a private directory beside it, then renamed.
    let parent = parent_of(&placement.path);
    let staging = parent.join(format!(".minipod-cp-{}", std::process::id()));
    fs::create_dir(&staging).with_context(|| format!("writing in {}", parent.display()))?;
    let staged = staging.join("new");
    let result = (|| -> Result<()> {
        let mut dirs = Vec::new();
        unpack_at(&mut first, &staged, &mut dirs)?;
        for entry in entries {
            unpack_entry(&mut entry?, &root, &staged, &mut dirs)?;
        }
        finish_dirs(&dirs)?;
        match fs::rename(&staged, &placement.path) {
            // A file mounted on its own (a container's /etc/hosts, a
            // subPath) cannot be replaced, only written.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && kind == Kind::File => {
                fs::copy(&staged, &placement.path)
                    .map(drop)
                    .with_context(|| {
                        format!(
                            "writing {} in place (it is a mount point)",
                            placement.path.display()
                        )
                    })
            }
            done => {
                done.with_context(|| format!("putting it in place as {}", placement.path.display()))
            }
        }
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// A directory's mode and mtime, set once its entries are written (a
/// read-only directory could not take them otherwise).
struct DirAttrs {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

/// Writes one entry under `base`, its path with the stream's root taken
/// off; refuses a path that leaves `base` (`..`, or through a symlink the
/// stream made).
fn unpack_entry(
    entry: &mut tar::Entry<'_, impl Read>,
    root: &Path,
    base: &Path,
    dirs: &mut Vec<DirAttrs>,
) -> Result<()> {
    let path = entry.path()?.into_owned();
    let rel = path.strip_prefix(root).map_err(|_| {
        anyhow!(
            "{} is outside the copy's root {}",
            path.display(),
            root.display()
        )
    })?;
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!(
            "refusing {} in the copy stream: it leaves the destination",
            path.display()
        );
    }
    let target = base.join(rel);
    let parent = parent_of(&target);
    let inside = fs::canonicalize(&parent)
        .ok()
        .zip(fs::canonicalize(base).ok())
        .is_some_and(|(p, b)| p.starts_with(b));
    if !inside {
        bail!(
            "refusing {}: its directory leaves the destination",
            path.display()
        );
    }
    unpack_at(entry, &target, dirs)
}

fn unpack_at(
    entry: &mut tar::Entry<'_, impl Read>,
    target: &Path,
    dirs: &mut Vec<DirAttrs>,
) -> Result<()> {
    let header = entry.header();
    let kind = header.entry_type();
    if kind.is_dir() {
        if !target.is_dir() {
            fs::create_dir(target).with_context(|| format!("making {}", target.display()))?;
        }
        dirs.push(DirAttrs {
            path: target.to_path_buf(),
            mode: header.mode()? & 0o7777,
            mtime: header.mtime()?,
        });
        return Ok(());
    }
    if !(kind.is_file() || kind.is_symlink()) {
        bail!(
            "{}: only files, directories and symbolic links are copied",
            entry.path()?.display()
        );
    }
    entry.set_preserve_mtime(true);
    entry
        .unpack(target)
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}

/// Sets the directories' modes and mtimes, deepest first.
fn finish_dirs(dirs: &[DirAttrs]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in dirs.iter().rev() {
        // The mtime first: a mode without `r` would keep us from opening it.
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.mtime);
        fs::File::open(&d.path)
            .and_then(|f| f.set_modified(mtime))
            .with_context(|| format!("setting the mtime of {}", d.path.display()))?;
        fs::set_permissions(&d.path, fs::Permissions::from_mode(d.mode))
            .with_context(|| format!("setting the mode of {}", d.path.display()))?;
    }
    Ok(())
}

/// `cp - POD/C:DIR`: a tar stream (any tar) extracted into the existing
/// directory `dest`, as docker does.
pub fn receive_stream(input: impl Read, dest: &Path) -> Result<()> {
    if !dest.is_dir() {
        bail!(
            "no such directory {}: a tar stream is extracted into an existing directory",
            dest.display()
        );
    }
    let mut archive = tar::Archive::new(input);
    archive.set_overwrite(true);
    archive
        .unpack(dest)
        .with_context(|| format!("extracting the stream into {}", dest.display()))
}

/// Whether an error is a write to a pipe nobody reads any more: the other
/// side stopped, and its error is the one to tell.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn arg(s: &str) -> PathArg {
        PathArg::parse(s)
    }

    const MISSING: DestState = DestState::Missing {
        parent_is_dir: true,
    };

    fn at(path: &str, merge: bool) -> Result<Placement, String> {
        Ok(Placement {
            path: PathBuf::from(path),
            merge,
        })
    }

    #[test]
    fn paths_say_directory_and_contents() {
        assert_eq!(
            arg("/etc/"),
            PathArg {
                path: "/etc/".into(),
                trailing_slash: true,
                contents_only: false
            }
        );
        assert!(arg("/etc/.").contents_only && !arg("/etc/.").trailing_slash);
        assert!(arg("/").contents_only && arg(".").contents_only);
        assert_eq!(arg("/etc/hosts").name(), "hosts");
        assert_eq!(arg("dir/").name(), "dir");
    }

    #[test]
    fn files_go_where_docker_puts_them() {
        let src = arg("/etc/hosts");
        assert_eq!(
            place(Kind::File, &src, &arg("out"), MISSING),
            at("out", false)
        );
        assert_eq!(
            place(Kind::File, &src, &arg("f"), DestState::File),
            at("f", false)
        );
        assert_eq!(
            place(Kind::File, &src, &arg("d"), DestState::Dir),
            at("d/hosts", false)
        );
        assert!(
            place(Kind::File, &src, &arg("new/"), MISSING)
                .unwrap_err()
                .contains("no such directory new/")
        );
        assert!(
            place(Kind::File, &src, &arg("f/"), DestState::File)
                .unwrap_err()
                .contains("not a directory")
        );
        let no_parent = DestState::Missing {
            parent_is_dir: false,
        };
        assert!(
            place(Kind::File, &src, &arg("a/b"), no_parent)
                .unwrap_err()
                .contains("no such directory a")
        );
        assert!(place(Kind::File, &arg("/etc/hosts/"), &arg("x"), MISSING).is_err());
    }

    #[test]
    fn directories_go_where_docker_puts_them() {
        let src = arg("/data");
        assert_eq!(
            place(Kind::Dir, &src, &arg("out"), MISSING),
            at("out", false)
        );
        assert_eq!(
            place(Kind::Dir, &src, &arg("d"), DestState::Dir),
            at("d/data", false)
        );
        assert_eq!(
            place(Kind::Dir, &arg("/data/."), &arg("d"), DestState::Dir),
            at("d", true)
        );
        assert_eq!(
            place(Kind::Dir, &arg("/data/."), &arg("n"), MISSING),
            at("n", false)
        );
        assert!(
            place(Kind::Dir, &src, &arg("f"), DestState::File)
                .unwrap_err()
                .contains("cannot copy a directory onto the file f")
        );
    }

    /// send → receive through memory, on this machine's files.
    fn copy(src: &Path, dest: &Path) -> Result<()> {
        let (s, d) = (arg(src.to_str().unwrap()), arg(dest.to_str().unwrap()));
        let mut stream = Vec::new();
        send(&s, &mut stream)?;
        receive(&stream[..], &s, &d)
    }

    #[test]
    fn a_tree_round_trips_with_modes_mtimes_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/f"), "hello").unwrap();
        fs::set_permissions(src.join("sub/f"), fs::Permissions::from_mode(0o751)).unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("link")).unwrap();
        fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o555)).unwrap();
        let mtime = fs::metadata(src.join("sub/f")).unwrap().modified().unwrap();

        copy(&src, &tmp.path().join("new")).unwrap();
        let new = tmp.path().join("new");
        assert_eq!(fs::read_to_string(new.join("sub/f")).unwrap(), "hello");
        let meta = fs::metadata(new.join("sub/f")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o751);
        let secs =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(meta.modified().unwrap()), secs(mtime));
        assert_eq!(fs::read_link(new.join("link")).unwrap(), Path::new("sub/f"));
        assert_eq!(
            fs::metadata(new.join("sub")).unwrap().permissions().mode() & 0o777,
            0o555
        );
        // Into an existing directory: inside it; nothing left staged.
        copy(&src, &new).unwrap();
        assert!(new.join("src/sub/f").is_file());
        // A file onto a file, then into a directory.
        fs::write(tmp.path().join("g"), "old").unwrap();
        copy(&new.join("sub/f"), &tmp.path().join("g")).unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("g")).unwrap(), "hello");
        let leftovers: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".minipod-cp"))
            .collect();
        assert!(leftovers.is_empty());
        for d in [&src.join("sub"), &new.join("sub"), &new.join("src/sub")] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn a_stream_cannot_leave_its_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h.clone(), "r", &[][..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "r/esc", &outside).unwrap();
        let mut f = tar::Header::new_gnu();
        f.set_mode(0o644);
        f.set_size(1);
        b.append_data(&mut f, "r/esc/pwned", &b"x"[..]).unwrap();
        let stream = b.into_inner().unwrap();
        let dest = tmp.path().join("d");
        let err = receive(&stream[..], &arg("/r"), &arg(dest.to_str().unwrap())).unwrap_err();
        assert!(
            format!("{err:#}").contains("leaves the destination"),
            "{err:#}"
        );
        assert!(!outside.join("pwned").exists());
        assert!(!dest.exists(), "nothing half-written");
    }

    #[test]
    fn a_missing_source_is_named() {
        let err = send(&arg("/no/such/file"), Vec::new()).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "/no/such/file: no such file or directory"
        );
    }
}
