//! Moving a container's output to its log file, in the foreground to the
//! terminal with the container's name in front of each line, and live to
//! the attach clients of its current incarnation (`Watchers`).
//!
//! A chatty container writes millions of lines, so the work is per read,
//! not per line: one timestamp, one lock of the log, one write to it (two
//! when it rotates) and one to the terminal for everything a read returned;
//! the terminal's is made and written on a thread of its own meanwhile.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, mpsc};
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

/// What a pump reads at a time.
const READ_BYTES: usize = 64 << 10;

/// What it reads at a time from a chatty container's grown pipe: a quarter
/// of it. Four times fewer reads, log writes and wake-ups of the container
/// (each read from a full pipe wakes its writer) and, in the foreground, of
/// the terminal's thread, for ~0.6 MB more of the supervisor's memory while
/// the container is chatty (the buffer, and the log entries made of it).
const CHATTY_READ_BYTES: usize = 256 << 10;

/// The read buffers that go round between a foreground pump and its
/// terminal writer: enough that neither waits while the other works, few
/// enough that a slow terminal holds a chatty container back (the pump
/// waits for a buffer, the container for room in its pipe) instead of
/// growing the supervisor.
const TERMINAL_BUFFERS: usize = 4;

/// Copies one output stream of a container to its log file and (in the
/// foreground) to the terminal, each line prefixed with its name. A line
/// longer than `MAX_ENTRY` goes in parts: output without newlines must not
/// grow the supervisor.
/// The pty master of a `tty` container is read the same way, as `stdout`
/// (kubelet logs a terminal's output as stdout); its read fails (EIO)
/// once the container's side is closed.
/// The terminal's copy is made and written by a thread of its own (a
/// `Relay`), at the same time as the log: one after the other, a
/// foreground `run > file` of a chatty container took 1.54x the time of a
/// detached one.
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
        let shown = terminal.then(|| {
            let mut shown = Shown::new(prefix, MAX_ENTRY);
            let mut bytes = Vec::new();
            Relay::spawn(TERMINAL_BUFFERS, move |chunk| {
                shown.show(chunk, &mut bytes);
                write_terminal(stream, &bytes);
            })
        });
        let mut buf = Vec::new();
        let mut lines = LineSplitter::new(MAX_ENTRY);
        let mut entries = Entries::default();
        let mut grown = false;
        let mut size = READ_BYTES;
        loop {
            if buf.len() < size {
                buf = match &shown {
                    Some(relay) if buf.is_empty() => relay.buffer(size),
                    _ => {
                        buf.resize(size, 0);
                        buf
                    }
                };
            }
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
                if nix::fcntl::fcntl(
                    from.from.as_fd(),
                    nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHATTY_PIPE_BYTES),
                )
                .is_ok()
                {
                    size = CHATTY_READ_BYTES;
                }
            }
            let time = crate::sys::time::rfc3339_nanos(SystemTime::now());
            entries.clear();
            let mut add = |text: &[u8], full: bool| entries.push(&time, stream, full, text);
            if read == 0 {
                lines.finish(&mut add);
            } else {
                lines.feed(&buf[..read], &mut add);
            }
            // The terminal's thread takes the read before the log is
            // written: both are written at once.
            if let Some(relay) = &shown
                && read > 0
            {
                relay.send(std::mem::take(&mut buf), read);
            }
            if !entries.is_empty() {
                write_log(&log, &entries);
            }
            if read == 0 {
                break;
            }
        }
        // The terminal shows the last line before the pump counts as done.
        if let Some(relay) = shown {
            relay.finish();
        }
        if let Ok(mut w) = done.lock() {
            w.pump_done();
        }
    })
}

fn write_terminal(stream: &str, shown: &[u8]) {
    if shown.is_empty() {
        return;
    }
    // Locked, the standard streams' line buffering writes the whole of
    // `shown` at once. A terminal whose reader went away ends the
    // supervisor (SIGPIPE), as it would end any command writing to it.
    let _ = if stream == "stderr" {
        std::io::stderr().lock().write_all(shown)
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(shown).and_then(|()| out.flush())
    };
}

/// The terminal's copy of one stream: each line with the container's name
/// in front, cut as the log cuts it (whole lines, or parts of `max` bytes)
/// so that one container's line is never split by another's.
struct Shown {
    prefix: String,
    lines: LineSplitter,
    /// The terminal shows the prefix once per line, not per part.
    line_start: bool,
}

impl Shown {
    fn new(prefix: String, max: usize) -> Shown {
        Shown {
            prefix,
            lines: LineSplitter::new(max),
            line_start: true,
        }
    }

    /// Replaces `shown` with what `chunk` of the output completes; an
    /// empty `chunk` is the end of the stream.
    fn show(&mut self, chunk: &[u8], shown: &mut Vec<u8>) {
        shown.clear();
        let (prefix, line_start) = (self.prefix.as_bytes(), &mut self.line_start);
        let mut add = |text: &[u8], full: bool| {
            if *line_start {
                shown.extend_from_slice(prefix);
            }
            shown.extend_from_slice(text);
            if full {
                shown.push(b'\n');
            }
            *line_start = full;
        };
        if chunk.is_empty() {
            self.lines.finish(&mut add);
        } else {
            self.lines.feed(chunk, &mut add);
        }
    }
}

/// Hands reads of a stream, in order, to a thread that consumes them, and
/// takes the buffers back for the next reads: a fixed number go round, so
/// nothing is allocated per read and a slow consumer holds the reader back
/// (`buffer` waits) instead of growing memory.
struct Relay {
    full: mpsc::SyncSender<(Vec<u8>, usize)>,
    empty: mpsc::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<()>,
}

impl Relay {
    /// `consume` gets each read, then an empty slice at the end. The
    /// `count` buffers are allocated as they are first used: a quiet stream
    /// keeps one.
    fn spawn(count: usize, mut consume: impl FnMut(&[u8]) + Send + 'static) -> Relay {
        let (full, reads) = mpsc::sync_channel::<(Vec<u8>, usize)>(count);
        let (back, empty) = mpsc::sync_channel(count);
        for _ in 0..count {
            let _ = back.send(Vec::new());
        }
        let thread = std::thread::spawn(move || {
            for (buf, n) in reads {
                consume(&buf[..n]);
                let _ = back.send(buf);
            }
            consume(&[]);
        });
        Relay {
            full,
            empty,
            thread,
        }
    }

    /// A buffer of `size` bytes to read into, once the consumer is done
    /// with one.
    fn buffer(&self, size: usize) -> Vec<u8> {
        // (Its thread cannot be gone before `finish`; if it were, a new
        // buffer keeps the pump going.)
        let mut buf = self.empty.recv().unwrap_or_default();
        buf.resize(size, 0);
        buf
    }

    /// The first `len` bytes of `buf` go to the consumer.
    fn send(&self, buf: Vec<u8>, len: usize) {
        let _ = self.full.send((buf, len));
    }

    /// Waits until the consumer took everything, and its end.
    fn finish(self) {
        drop(self.full);
        let _ = self.thread.join();
    }
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

    /// The terminal's copy of `input` read `step` bytes at a time.
    fn shown(input: &[u8], step: usize, max: usize) -> String {
        let mut shown = Shown::new("c | ".into(), max);
        let (mut all, mut bytes) = (Vec::new(), Vec::new());
        for chunk in input.chunks(step).chain([&b""[..]]) {
            shown.show(chunk, &mut bytes);
            all.extend_from_slice(&bytes);
        }
        String::from_utf8(all).unwrap()
    }

    #[test]
    fn the_terminal_shows_each_line_once_prefixed_whatever_the_reads() {
        for step in 1..=24 {
            assert_eq!(
                shown(b"short\n0123456789abc\n\nend", step, 8),
                "c | short\nc | 0123456789abc\nc | \nc | end\n",
                "reads of {step}"
            );
        }
        assert_eq!(shown(b"", 4, 8), "");
    }

    /// What a relay of `count` buffers of `size` bytes gives its consumer
    /// for `reads`.
    fn relayed(count: usize, size: usize, reads: &[&[u8]]) -> Vec<Vec<u8>> {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let relay = Relay::spawn(count, move |chunk| {
            sink.lock().unwrap().push(chunk.to_vec())
        });
        for read in reads {
            let mut buf = relay.buffer(size);
            assert_eq!(buf.len(), size);
            buf[..read.len()].copy_from_slice(read);
            relay.send(buf, read.len());
        }
        relay.finish();
        Arc::try_unwrap(got).unwrap().into_inner().unwrap()
    }

    #[test]
    fn a_relay_hands_every_read_over_in_order_then_the_end() {
        let reads: Vec<Vec<u8>> = (0..200u8)
            .map(|i| vec![i; usize::from(i % 7) + 1])
            .collect();
        let reads: Vec<&[u8]> = reads.iter().map(Vec::as_slice).collect();
        let mut want: Vec<Vec<u8>> = reads.iter().map(|r| r.to_vec()).collect();
        want.push(Vec::new());
        assert_eq!(relayed(2, 8, &reads), want);
        assert_eq!(relayed(4, 8, &[]), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn a_slow_consumer_holds_the_reader_back_instead_of_queueing_more() {
        let (gate, wait) = mpsc::channel::<()>();
        let relay = Relay::spawn(2, move |chunk| {
            if !chunk.is_empty() {
                let _ = wait.recv();
            }
        });
        // The consumer sits on the first read, the second waits for it:
        // no buffer is left for a third.
        relay.send(relay.buffer(4), 1);
        relay.send(relay.buffer(4), 1);
        let (took, third) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let buf = relay.buffer(4);
            took.send(()).unwrap();
            relay.send(buf, 1);
            relay
        });
        let wait_a_bit = std::time::Duration::from_millis(200);
        assert!(third.recv_timeout(wait_a_bit).is_err(), "a third buffer");
        gate.send(()).unwrap();
        assert!(
            third
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_ok()
        );
        gate.send(()).unwrap();
        gate.send(()).unwrap();
        reader.join().unwrap().finish();
    }
}
