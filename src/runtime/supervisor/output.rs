//! Moving a container's output to its log file, in the foreground to the
//! terminal with the container's name in front of each line, and live to
//! the attach clients of its current incarnation (`Watchers`).
//!
//! A chatty container writes millions of lines, so the work is per read,
//! not per line: one timestamp, one lock of the log, one write to it (two
//! when it rotates) and one to the terminal for everything a read returned.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::runtime::contract::attach::{Frame, encode};
use crate::runtime::logs::{Entries, LogWriter, MAX_ENTRY};

/// The attach clients of one incarnation of a container, shared by its
/// output pumps (which send what they read as it comes) and the
/// supervisor's loop (which adds clients and records the exit). The exit
/// frame goes out once the container exited *and* every pump read its last
/// byte, so a client sees all the output before it.
#[derive(Default)]
pub struct Watchers {
    clients: Vec<(u64, UnixStream)>,
    pumps: usize,
    exit: Option<i32>,
}

pub type Shared = Arc<Mutex<Watchers>>;

impl Watchers {
    /// For an incarnation whose output `pumps` pumps carry.
    pub fn new(pumps: usize) -> Shared {
        Arc::new(Mutex::new(Watchers {
            pumps,
            ..Default::default()
        }))
    }

    /// A client that writes too slowly for a second is dropped: the
    /// container must not wait for it.
    pub fn add(&mut self, id: u64, stream: UnixStream) {
        let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(1)));
        self.clients.push((id, stream));
    }

    pub fn remove(&mut self, id: u64) {
        self.clients.retain(|(i, _)| *i != id);
    }

    fn send(&mut self, frame: &Frame) {
        let bytes = encode(frame);
        self.clients.retain_mut(|(_, s)| {
            let ok = s.write_all(&bytes).is_ok();
            if !ok {
                // Both ends learn: the client sees EOF, the loop drops its
                // session.
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            ok
        });
    }

    /// The container exited with `code`.
    pub fn exited(&mut self, code: i32) {
        self.exit = Some(code);
        self.finish();
    }

    pub fn pump_done(&mut self) {
        self.pumps = self.pumps.saturating_sub(1);
        self.finish();
    }

    fn finish(&mut self) {
        if let (0, Some(code)) = (self.pumps, self.exit) {
            self.send(&Frame::Exit(code));
            for (_, s) in self.clients.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// The pipe a container that fills its default one (64 KiB) gets: the
/// unprivileged maximum (/proc/sys/fs/pipe-max-size).
const CHATTY_PIPE_BYTES: i32 = 1 << 20;

/// What a pump reads from: the bytes go to the attach clients as they
/// come (a prompt has no newline), before the log takes them by lines.
struct Tee<R> {
    from: R,
    stream: &'static str,
    watchers: Shared,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.from.read(buf)?;
        if n > 0
            && let Ok(mut w) = self.watchers.lock()
            && !w.clients.is_empty()
        {
            let bytes = buf[..n].to_vec();
            w.send(&if self.stream == "stderr" {
                Frame::Stderr(bytes)
            } else {
                Frame::Stdout(bytes)
            });
        }
        Ok(n)
    }
}

/// Copies one output stream of a container to its log file and (in the
/// foreground) to the terminal, each line prefixed with its name. A line
/// longer than `MAX_ENTRY` goes in parts: output without newlines must not
/// grow the supervisor.
/// The pty master of a `tty` container is read the same way, as `stdout`
/// (kubelet logs a terminal's output as stdout); its read fails (EIO)
/// once the container's side is closed.
pub fn pump(
    from: impl Read + AsFd + Send + 'static,
    stream: &'static str,
    prefix: String,
    log: Arc<Mutex<LogWriter>>,
    terminal: bool,
    watchers: Shared,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let done = watchers.clone();
        let mut from = Tee {
            from,
            stream,
            watchers,
        };
        let mut buf = vec![0; 64 << 10];
        let mut lines = LineSplitter::new(MAX_ENTRY);
        let mut entries = Entries::default();
        let mut shown = Vec::new();
        // The terminal shows the prefix once per line, not per part.
        let mut line_start = true;
        let mut grown = false;
        loop {
            let read = match from.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if read == buf.len() && !grown {
                // The pipe was full: the container writes faster than the
                // log takes it. A larger pipe lets it run ahead while we
                // write, and wakes us less often. Only such containers get
                // one: a user's pipes share a size budget
                // (/proc/sys/fs/pipe-user-pages-soft). A pty refuses; fine.
                grown = true;
                let _ = nix::fcntl::fcntl(
                    from.from.as_fd(),
                    nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHATTY_PIPE_BYTES),
                );
            }
            let time = crate::sys::time::rfc3339_nanos(SystemTime::now());
            entries.clear();
            shown.clear();
            let mut add = |text: &[u8], full: bool| {
                entries.push(&time, stream, full, text);
                if terminal {
                    if line_start {
                        shown.extend_from_slice(prefix.as_bytes());
                    }
                    shown.extend_from_slice(text);
                    if full {
                        shown.push(b'\n');
                    }
                    line_start = full;
                }
            };
            if read == 0 {
                lines.finish(&mut add);
            } else {
                lines.feed(&buf[..read], &mut add);
            }
            if !entries.is_empty() {
                write_log(&log, &entries);
            }
            if !shown.is_empty() {
                // Locked, the standard streams' line buffering writes the
                // whole of `shown` at once.
                let _ = if stream == "stderr" {
                    std::io::stderr().lock().write_all(&shown)
                } else {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&shown).and_then(|()| out.flush())
                };
            }
            if read == 0 {
                break;
            }
        }
        if let Ok(mut w) = done.lock() {
            w.pump_done();
        }
    })
}

fn write_log(log: &Mutex<LogWriter>, entries: &Entries) {
    if let Ok(mut log) = log.lock()
        && let Err(e) = log.write_entries(entries)
        && log.dropped() == entries.len() as u64
    {
        // Once per spell of failures; the log says how many lines were
        // lost when it can be written again.
        super::log::warn(format_args!(
            "{}: {e}: dropping the container's output until the log can be written again \
             (free space on that filesystem)",
            log.path().display()
        ));
    }
}

/// Cuts a stream of output into lines, without their newline, and lines
/// longer than `max` into parts of `max` bytes (the rest follows). The
/// start of a line that a read did not end waits for the next read.
struct LineSplitter {
    max: usize,
    carry: Vec<u8>,
}

impl LineSplitter {
    fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max,
            carry: Vec::new(),
        }
    }

    /// Calls `emit(text, full)` for each line (`full`) or part of a line
    /// that `chunk` completes.
    fn feed(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        loop {
            let room = self.max - self.carry.len();
            let window = &chunk[..chunk.len().min(room)];
            let (end, full) = match memchr::memchr(b'\n', window) {
                Some(end) => (end, true),
                None if window.len() == room => (room, false),
                None => {
                    self.carry.extend_from_slice(window);
                    return;
                }
            };
            if self.carry.is_empty() {
                emit(&window[..end], full);
            } else {
                self.carry.extend_from_slice(&window[..end]);
                emit(&self.carry, full);
                self.carry.clear();
            }
            chunk = &chunk[end + usize::from(full)..];
        }
    }

    /// At the end of the stream: what is left is its last line.
    fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.carry.is_empty() {
            emit(&self.carry, true);
            self.carry.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry `feed` and `finish` make of `input` read `step` bytes at
    /// a time.
    fn split(input: &[u8], step: usize, max: usize) -> Vec<(String, bool)> {
        let mut got = Vec::new();
        let mut emit = |t: &[u8], full| got.push((String::from_utf8(t.to_vec()).unwrap(), full));
        let mut lines = LineSplitter::new(max);
        for chunk in input.chunks(step) {
            lines.feed(chunk, &mut emit);
        }
        lines.finish(&mut emit);
        got
    }

    fn entries(want: &[(&str, bool)]) -> Vec<(String, bool)> {
        want.iter().map(|(t, f)| (t.to_string(), *f)).collect()
    }

    #[test]
    fn lines_are_cut_at_the_limit_and_the_rest_follows_whatever_the_reads() {
        let want = entries(&[
            ("short", true),
            ("01234567", false),
            ("89abc", true),
            ("", true),
            ("end", true),
        ]);
        for step in 1..=24 {
            assert_eq!(
                split(b"short\n0123456789abc\n\nend", step, 8),
                want,
                "reads of {step}"
            );
        }
    }

    #[test]
    fn a_line_exactly_at_the_limit_is_a_part_then_an_empty_end() {
        // The newline lies past the limit: the 8 bytes are a part, and the
        // newline then ends the line as an empty last part.
        let want = entries(&[("12345678", false), ("", true), ("x", true)]);
        for step in 1..=12 {
            assert_eq!(split(b"12345678\nx\n", step, 8), want, "reads of {step}");
        }
    }

    #[test]
    fn output_ending_in_a_newline_leaves_nothing_at_the_end() {
        assert_eq!(
            split(b"a\nb\n", 64, 8),
            entries(&[("a", true), ("b", true)])
        );
        assert!(split(b"", 64, 8).is_empty());
    }
}
