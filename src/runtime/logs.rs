//! Container logs: written by the supervisor in the CRI format kubelet uses
//! (`TIME STREAM F TEXT`, one line each), bounded by rotation, and read back
//! by `minipod logs`.

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

    /// Appends one line. A line that cannot be written whole (the disk is
    /// full) is dropped, not left half-written, and counted; the next line
    /// that fits is preceded by a stderr line saying how many were lost.
    pub fn write_line(&mut self, stream: &str, text: &[u8]) -> std::io::Result<()> {
        if self.dropped > 0 {
            let note = format!(
                "minipod: {} line(s) of output dropped: {}",
                self.dropped, self.why
            );
            if let Err(e) = self.append("stderr", note.as_bytes()) {
                self.dropped += 1;
                return Err(e);
            }
            self.dropped = 0;
        }
        self.append(stream, text).inspect_err(|e| {
            if self.dropped == 0 {
                self.why = e.to_string();
            }
            self.dropped += 1;
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines lost since the last one written.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn append(&mut self, stream: &str, text: &[u8]) -> std::io::Result<()> {
        let time = crate::sys::time::rfc3339_nanos(SystemTime::now());
        let mut line = Vec::with_capacity(time.len() + stream.len() + text.len() + 5);
        line.extend_from_slice(time.as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.as_bytes());
        line.extend_from_slice(b" F ");
        line.extend_from_slice(text);
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max {
            std::fs::rename(&self.path, rotated(&self.path))?;
            self.file = File::options().create(true).append(true).open(&self.path)?;
            self.size = 0;
        }
        if let Err(e) = self.file.write_all(&line) {
            // Part of the line may be in: cut it off, so readers never see
            // half a line (or a next line glued to it).
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += line.len() as u64;
        Ok(())
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

/// What `minipod logs` asks for.
pub struct ReadOptions {
    pub tail: Option<usize>,
    /// Only lines at or after this RFC 3339 time.
    pub since: Option<String>,
}

/// The lines of a container's log (rotated part first), filtered.
pub fn read_lines(path: &Path, opts: &ReadOptions) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    for p in [rotated(path), path.to_path_buf()] {
        let Ok(file) = File::open(&p) else { continue };
        for raw in BufReader::new(file).lines() {
            let raw = raw.with_context(|| format!("reading {}", p.display()))?;
            if let Some(l) = parse_line(&raw)
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
/// noticed by the file shrinking or changing inode.
pub fn follow(
    path: &Path,
    mut offset: u64,
    done: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(Line),
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut ino = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
    let mut partial = String::new();
    loop {
        let finished = done();
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.ino() != ino || meta.len() < offset {
                ino = meta.ino();
                offset = 0;
            }
            if meta.len() > offset {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(offset))?;
                let mut reader = BufReader::new(file);
                let mut buf = String::new();
                loop {
                    buf.clear();
                    let n = reader.read_line(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    offset += n as u64;
                    partial.push_str(&buf);
                    if partial.ends_with('\n') {
                        if let Some(l) = parse_line(partial.trim_end_matches('\n')) {
                            emit(l);
                        }
                        partial.clear();
                    }
                }
                continue;
            }
        }
        if finished {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
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

    #[test]
    fn parses_text_with_spaces() {
        let l = parse_line("2024-01-01T00:00:00.000000001Z stdout F a b  c").unwrap();
        assert_eq!(l.text, "a b  c");
    }
}
