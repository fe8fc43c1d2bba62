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
        })
    }

    pub fn write_line(&mut self, stream: &str, text: &[u8]) -> std::io::Result<()> {
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
        self.file.write_all(&line)?;
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
        // Bytes, not `lines()`: a container's output need not be UTF-8, and
        // one such line must not make the whole log unreadable.
        for raw in BufReader::new(file).split(b'\n') {
            let raw = raw.with_context(|| format!("reading {}", p.display()))?;
            if let Some(l) = parse_line(&String::from_utf8_lossy(&raw))
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
    let mut partial: Vec<u8> = Vec::new();
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
                loop {
                    // Bytes, as in `read_lines`: output need not be UTF-8.
                    let n = reader.read_until(b'\n', &mut partial)?;
                    if n == 0 {
                        break;
                    }
                    offset += n as u64;
                    if partial.ends_with(b"\n") {
                        let text = String::from_utf8_lossy(&partial);
                        if let Some(l) = parse_line(text.trim_end_matches('\n')) {
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
}
