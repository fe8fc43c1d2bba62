//! Container logs: written by the supervisor in the CRI format kubelet uses
//! (`TIME STREAM F TEXT`, one line each), bounded by rotation, and read back
//! by `minipod logs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

/// A log file is rotated (to `NAME.log.1`, replacing the previous one) when
/// it would grow past this: a chatty container costs at most twice this.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 20;

pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    /// Lines lost since the last one written (a full disk): said in the
    /// log, as a line of its own, once writing works again.
    dropped: u64,
    /// Why the first of them was lost.
    why: String,
}

impl LogWriter {
    pub fn create(path: &Path, max: u64) -> Result<LogWriter> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max,
            dropped: 0,
            why: String::new(),
        })
    }

    /// Appends one whole line of a container's output.
    pub fn write_line(&mut self, stream: &str, text: &[u8]) -> std::io::Result<()> {
        self.write_entry(stream, true, text)
    }

    /// Appends a line, or with `full` false a part of a longer one (`P`, as
    /// CRI logs mark it; readers join the parts), stamped now.
    pub fn write_entry(&mut self, stream: &str, full: bool, text: &[u8]) -> std::io::Result<()> {
        let mut one = Entries::default();
        one.push(
            &crate::sys::time::rfc3339_nanos(SystemTime::now()),
            stream,
            full,
            text,
        );
        self.write_entries(&one)
    }

    /// Appends entries in as few writes as rotation allows: one per file
    /// they land in. An entry that cannot be written whole (the disk is
    /// full) is dropped with those after it, not left half-written, and
    /// counted; the next write that works is preceded by a stderr line
    /// saying how many were lost.
    pub fn write_entries(&mut self, entries: &Entries) -> std::io::Result<()> {
        if self.dropped > 0 {
            let note = format!(
                "minipod: {} line(s) of output dropped: {}",
                self.dropped, self.why
            );
            let mut one = Entries::default();
            let time = crate::sys::time::rfc3339_nanos(SystemTime::now());
            one.push(&time, "stderr", true, note.as_bytes());
            if let Err((_, e)) = self.append(&one) {
                self.count_dropped(entries.len(), &e);
                return Err(e);
            }
            self.dropped = 0;
        }
        self.append(entries).map_err(|(lost, e)| {
            self.count_dropped(lost, &e);
            e
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines lost since the last one written.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes `entries`; on an error, says how many of them were not written.
    fn append(&mut self, entries: &Entries) -> Result<(), (usize, std::io::Error)> {
        let (bytes, ends) = (&entries.bytes, &entries.ends);
        let (mut first, mut from) = (0, 0);
        while first < ends.len() {
            // The entries that fit before the file must rotate; at least
            // one in an empty file, however long.
            let room = self.max.saturating_sub(self.size);
            let fit = ends[first..].partition_point(|&end| (end - from) as u64 <= room);
            let last = match fit {
                0 if self.size > 0 => {
                    let lost = |e| (ends.len() - first, e);
                    // Renamed over an existing file, ext4 writes the renamed
                    // file's delayed blocks out first (auto_da_alloc), in
                    // this thread: 6 % of a chatty container's supervisor
                    // (perf). So the previous rotated file goes first; a
                    // reader between the two calls sees the newest lines only.
                    let older = rotated(&self.path);
                    match std::fs::remove_file(&older) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(lost(e)),
                        _ => {}
                    }
                    std::fs::rename(&self.path, older).map_err(lost)?;
                    self.file = File::options()
                        .create(true)
                        .append(true)
                        .open(&self.path)
                        .map_err(lost)?;
                    self.size = 0;
                    continue;
                }
                0 => first + 1,
                n => first + n,
            };
            let chunk = &bytes[from..ends[last - 1]];
            if let Err(e) = self.file.write_all(chunk) {
                // Part of the chunk may be in: cut it off, so readers never
                // see half a line (or a next line glued to it).
                let _ = self.file.set_len(self.size);
                return Err((ends.len() - first, e));
            }
            self.size += chunk.len() as u64;
            (first, from) = (last, ends[last - 1]);
        }
        Ok(())
    }

    fn count_dropped(&mut self, lines: usize, why: &std::io::Error) {
        if self.dropped == 0 {
            self.why = why.to_string();
        }
        self.dropped += lines as u64;
    }
}

/// Log entries in the CRI format, `TIME STREAM F|P TEXT` a line each, built
/// in one buffer that is reused from one read of a container's output to
/// the next: no allocation per line.
#[derive(Default)]
pub struct Entries {
    bytes: Vec<u8>,
    /// Where each entry ends in `bytes`.
    ends: Vec<usize>,
}

impl Entries {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Adds a line, or with `full` false a part of a longer one.
    pub fn push(&mut self, time: &str, stream: &str, full: bool, text: &[u8]) {
        self.bytes.extend_from_slice(time.as_bytes());
        self.bytes.push(b' ');
        self.bytes.extend_from_slice(stream.as_bytes());
        self.bytes
            .extend_from_slice(if full { b" F " } else { b" P " });
        self.bytes.extend_from_slice(text);
        self.bytes.push(b'\n');
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub time: String,
    pub stream: String,
    pub text: String,
}

pub fn parse_line(raw: &str) -> Option<Line> {
    let mut parts = raw.splitn(4, ' ');
    let time = parts.next()?.to_string();
    let stream = parts.next()?.to_string();
    let _tag = parts.next()?;
    let text = parts.next().unwrap_or("").to_string();
    Some(Line { time, stream, text })
}

/// The longest line the supervisor writes as one entry: a longer one (or
/// output that never ends a line) goes in parts of this size, so a
/// container cannot grow the supervisor's memory (containerd splits at
/// 16 kB too).
pub const MAX_ENTRY: usize = 16 << 10;

/// The longest line a reader joins from parts: past it, what was joined is
/// a line of its own (a container that never ends a line must not grow a
/// `logs -f` that follows it).
const MAX_JOINED: usize = 64 * MAX_ENTRY;

/// Turns a file's entries back into lines: the parts (`P`) of a long line
/// are joined to the entry that ends it, per stream, up to `MAX_JOINED`.
/// Bytes that are not UTF-8 (a container may write anything) read as
/// U+FFFD.
#[derive(Default)]
struct Joiner {
    pending: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Joiner {
    fn push(&mut self, raw: &[u8]) -> Option<Line> {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let mut parts = raw.splitn(4, |&b| b == b' ');
        let time = parts.next()?;
        let stream = parts.next()?;
        let partial = parts.next()? == b"P";
        let text = parts.next().unwrap_or(b"");
        let pending = self.pending.entry(stream.to_vec()).or_default();
        pending.extend_from_slice(text);
        if partial && pending.len() < MAX_JOINED {
            return None;
        }
        let text = std::mem::take(pending);
        Some(Line {
            time: String::from_utf8_lossy(time).into_owned(),
            stream: String::from_utf8_lossy(stream).into_owned(),
            text: String::from_utf8_lossy(&text).into_owned(),
        })
    }
}

/// What `minipod logs` asks for.
pub struct ReadOptions {
    pub tail: Option<usize>,
    /// Only lines at or after this RFC 3339 time.
    pub since: Option<String>,
}

/// The lines of a container's log (rotated part first), filtered.
pub fn read_lines(path: &Path, opts: &ReadOptions) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    let mut joiner = Joiner::default();
    for p in [rotated(path), path.to_path_buf()] {
        let Ok(file) = File::open(&p) else { continue };
        let mut reader = BufReader::new(file);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = reader
                .read_until(b'\n', &mut raw)
                .with_context(|| format!("reading {}", p.display()))?;
            if n == 0 {
                break;
            }
            if let Some(l) = joiner.push(&raw)
                && opts
                    .since
                    .as_ref()
                    .is_none_or(|s| l.time.as_str() >= s.as_str())
            {
                lines.push(l);
            }
        }
    }
    if let Some(n) = opts.tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok(lines)
}

/// Follows a log file from `offset`: new lines are handed to `emit` until
/// `done()` says the writer is gone and nothing more arrived. Rotation is
/// noticed by the file changing inode (what the old file got after we last
/// read it is read from `NAME.log.1` first) or shrinking.
pub fn follow(
    path: &Path,
    offset: u64,
    done: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(Line),
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
    follow_from(path, offset, ino, done, emit)
}

/// `follow` from `offset` of the file whose inode was `ino`.
fn follow_from(
    path: &Path,
    mut offset: u64,
    mut ino: u64,
    done: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(Line),
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut partial = Vec::new();
    let mut joiner = Joiner::default();
    loop {
        let finished = done();
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.ino() != ino {
                if let Ok(old) = File::open(rotated(path))
                    && old.metadata().is_ok_and(|m| m.ino() == ino)
                {
                    read_from(old, offset, &mut partial, &mut joiner, emit)?;
                }
                partial.clear();
                ino = meta.ino();
                offset = 0;
            } else if meta.len() < offset {
                partial.clear();
                offset = 0;
            }
            if meta.len() > offset {
                offset += read_from(File::open(path)?, offset, &mut partial, &mut joiner, emit)?;
                continue;
            }
        }
        if finished {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads a log file from `offset` to its end, emitting its whole lines
/// (`partial` keeps a line the writer has not finished); returns how many
/// bytes it read.
fn read_from(
    mut file: File,
    offset: u64,
    partial: &mut Vec<u8>,
    joiner: &mut Joiner,
    emit: &mut dyn FnMut(Line),
) -> Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut read = 0;
    loop {
        let n = reader.read_until(b'\n', partial)?;
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
        if partial.ends_with(b"\n") {
            if let Some(l) = joiner.push(partial) {
                emit(l);
            }
            partial.clear();
        }
    }
}

/// The size of a log file now (where following starts after printing it).
pub fn current_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lost_to_a_full_disk_are_counted_and_said_once_writing_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::create(&path, 1 << 20).unwrap();
        w.write_line("stdout", b"before").unwrap();
        // /dev/full answers every write with ENOSPC.
        let real = std::mem::replace(
            &mut w.file,
            File::options().append(true).open("/dev/full").unwrap(),
        );
        for _ in 0..3 {
            assert!(w.write_line("stdout", b"lost").is_err());
        }
        assert_eq!(w.dropped(), 3);
        w.file = real;
        w.write_line("stdout", b"after").unwrap();
        assert_eq!(w.dropped(), 0);
        let texts: Vec<String> = read_lines(
            &path,
            &ReadOptions {
                tail: None,
                since: None,
            },
        )
        .unwrap()
        .into_iter()
        .map(|l| format!("{} {}", l.stream, l.text))
        .collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert_eq!(texts[0], "stdout before");
        assert!(
            texts[1].starts_with("stderr minipod: 3 line(s) of output dropped: No space left"),
            "{texts:?}"
        );
        assert_eq!(texts[2], "stdout after");
    }

    #[test]
    fn writes_parses_rotates_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::create(&path, 200).unwrap();
        for i in 0..20 {
            w.write_line(
                if i % 2 == 0 { "stdout" } else { "stderr" },
                format!("line {i}").as_bytes(),
            )
            .unwrap();
        }
        assert!(current_len(&path) <= 200);
        assert!(current_len(&rotated(&path)) <= 200, "bounded");
        let all = read_lines(
            &path,
            &ReadOptions {
                tail: None,
                since: None,
            },
        )
        .unwrap();
        assert_eq!(all.last().unwrap().text, "line 19");
        assert_eq!(all.last().unwrap().stream, "stderr");
        let tail = read_lines(
            &path,
            &ReadOptions {
                tail: Some(2),
                since: None,
            },
        )
        .unwrap();
        assert_eq!(
            tail.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["line 18", "line 19"]
        );
        let none = read_lines(
            &path,
            &ReadOptions {
                tail: None,
                since: Some("9999".into()),
            },
        )
        .unwrap();
        assert!(none.is_empty());
    }

    /// Entries written in one batch rotate exactly where written one by one
    /// they would: the files hold the same bytes either way.
    #[test]
    fn a_batch_rotates_where_single_lines_would() {
        let dir = tempfile::tempdir().unwrap();
        let (one, batch) = (dir.path().join("one.log"), dir.path().join("batch.log"));
        let mut w = LogWriter::create(&one, 200).unwrap();
        let mut entries = Entries::default();
        for i in 0..23 {
            let text = format!("line {i}{}", "x".repeat(i % 7));
            let (stream, full) = (if i % 3 == 0 { "stderr" } else { "stdout" }, i % 5 != 0);
            entries.push("T", stream, full, text.as_bytes());
            let mut single = Entries::default();
            single.push("T", stream, full, text.as_bytes());
            w.write_entries(&single).unwrap();
        }
        // One entry longer than a whole file goes alone into a fresh one.
        entries.push("T", "stdout", true, &[b'y'; 300]);
        let mut single = Entries::default();
        single.push("T", "stdout", true, &[b'y'; 300]);
        w.write_entries(&single).unwrap();
        LogWriter::create(&batch, 200)
            .unwrap()
            .write_entries(&entries)
            .unwrap();
        for (a, b) in [(&one, &batch), (&rotated(&one), &rotated(&batch))] {
            assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        }
        assert!(
            std::fs::read(&batch)
                .unwrap()
                .starts_with(b"T stdout F yyy")
        );
        assert!(current_len(&rotated(&batch)) <= 200);
    }

    /// Found by fuzz/fuzz_targets/log_reader.rs: a line that is not UTF-8
    /// (a container printing binary) made `minipod logs` fail with "stream
    /// did not contain valid UTF-8", for `-f` as well.
    #[test]
    fn a_line_that_is_not_utf8_does_not_stop_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(
            &path,
            b"2024-01-01T00:00:00Z stdout F \xff\xfe\n2024-01-01T00:00:01Z stdout F next\n",
        )
        .unwrap();
        let lines = read_lines(
            &path,
            &ReadOptions {
                tail: None,
                since: None,
            },
        )
        .unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["\u{fffd}\u{fffd}", "next"]);
        let mut followed = Vec::new();
        follow(&path, 0, &|| true, &mut |l| followed.push(l.text)).unwrap();
        assert_eq!(followed, ["\u{fffd}\u{fffd}", "next"]);
    }

    #[test]
    fn parses_text_with_spaces() {
        let l = parse_line("2024-01-01T00:00:00.000000001Z stdout F a b  c").unwrap();
        assert_eq!(l.text, "a b  c");
    }

    fn all_lines(path: &Path) -> Vec<Line> {
        let opts = ReadOptions {
            tail: None,
            since: None,
        };
        read_lines(path, &opts).unwrap()
    }

    #[test]
    fn parts_of_a_long_line_are_joined_per_stream_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::create(&path, 120).unwrap();
        w.write_entry("stdout", false, b"aaaa").unwrap();
        w.write_entry("stderr", true, b"between").unwrap();
        w.write_entry("stdout", false, b"bbbb").unwrap();
        w.write_entry("stdout", true, b"cc").unwrap();
        assert!(rotated(&path).exists(), "the line spans a rotation");
        let lines = all_lines(&path);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["between", "aaaabbbbcc"]);
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_stop_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::create(&path, 1 << 20).unwrap();
        // A multi-byte character cut in two parts, and a stray byte.
        w.write_entry("stdout", false, "é".as_bytes()[..1].as_ref())
            .unwrap();
        w.write_entry("stdout", true, "é".as_bytes()[1..].as_ref())
            .unwrap();
        w.write_line("stdout", b"\xff ok").unwrap();
        let texts: Vec<String> = all_lines(&path).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["é", "\u{fffd} ok"]);
        let mut followed = Vec::new();
        follow(&path, 0, &|| true, &mut |l| followed.push(l.text)).unwrap();
        assert_eq!(followed, texts);
    }

    #[test]
    fn following_reads_what_the_old_file_got_before_it_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::create(&path, 100).unwrap();
        w.write_line("stdout", b"first").unwrap();
        let offset = current_len(&path);
        // Written after the follower's last read, then rotated away.
        w.write_line("stdout", b"second").unwrap();
        w.write_line("stdout", b"third").unwrap();
        assert!(rotated(&path).exists());
        let mut followed = Vec::new();
        // The follower last looked at the file before the rotation.
        use std::os::unix::fs::MetadataExt;
        let old_ino = std::fs::metadata(rotated(&path)).unwrap().ino();
        follow_from(&path, offset, old_ino, &|| true, &mut |l| {
            followed.push(l.text)
        })
        .unwrap();
        assert_eq!(followed, ["second", "third"]);
    }

    #[test]
    fn a_line_that_never_ends_is_cut_where_joining_stops() {
        let mut joiner = Joiner::default();
        let part = format!("t stdout P {}\n", "x".repeat(MAX_ENTRY));
        let mut lines = Vec::new();
        for _ in 0..(2 * MAX_JOINED / MAX_ENTRY) {
            lines.extend(joiner.push(part.as_bytes()));
        }
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.text.len() == MAX_JOINED));
    }
}
