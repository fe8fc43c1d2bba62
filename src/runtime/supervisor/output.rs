//! Moving a container's output to its log file, in the foreground to the
//! terminal with the container's name in front of each line, and live to
//! the attach clients of its current incarnation (`Watchers`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use crate::runtime::contract::attach::{Frame, encode};
use crate::runtime::logs::{LogWriter, MAX_ENTRY};

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

/// Copies one output stream of a container, line by line, to its log file
/// and (in the foreground) to the terminal, prefixed with its name. A line
/// longer than `MAX_ENTRY` goes in parts: output without newlines must not
/// grow the supervisor.
/// The pty master of a `tty` container is read the same way, as `stdout`
/// (kubelet logs a terminal's output as stdout); its read fails (EIO)
/// once the container's side is closed.
pub fn pump(
    from: impl Read + Send + 'static,
    stream: &'static str,
    prefix: String,
    log: Arc<Mutex<LogWriter>>,
    terminal: bool,
    watchers: Shared,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let done = watchers.clone();
        let from = Tee {
            from,
            stream,
            watchers,
        };
        let mut reader = BufReader::with_capacity(64 << 10, from);
        let mut line = Vec::new();
        // The terminal shows the prefix once per line, not per part.
        let mut line_start = true;
        loop {
            line.clear();
            let full = match read_entry(&mut reader, &mut line, MAX_ENTRY) {
                Ok(Some(full)) => full,
                Ok(None) | Err(_) => break,
            };
            if let Ok(mut log) = log.lock()
                && let Err(e) = log.write_entry(stream, full, &line)
                && log.dropped() == 1
            {
                // Once per spell of failures; the log says how many
                // lines were lost when it can be written again.
                super::log::warn(format_args!(
                    "{}: {e}: dropping the container's output until the log can be written \
                     again (free space on that filesystem)",
                    log.path().display()
                ));
            }
            if terminal {
                let mut out: Box<dyn Write> = if stream == "stderr" {
                    Box::new(std::io::stderr().lock())
                } else {
                    Box::new(std::io::stdout().lock())
                };
                if line_start {
                    let _ = out.write_all(prefix.as_bytes());
                }
                let _ = out.write_all(&line);
                if full {
                    let _ = out.write_all(b"\n");
                }
                let _ = out.flush();
            }
            line_start = full;
        }
        if let Ok(mut w) = done.lock() {
            w.pump_done();
        }
    })
}

/// Reads up to a newline (not kept) or `max` bytes into `line`: `Some(true)`
/// for a whole line (or the last bytes before EOF), `Some(false)` for a
/// part cut at `max`, `None` at EOF.
fn read_entry(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((!line.is_empty()).then_some(true));
        }
        let room = &buf[..buf.len().min(max - line.len())];
        if let Some(end) = room.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&room[..end]);
            reader.consume(end + 1);
            return Ok(Some(true));
        }
        let n = room.len();
        line.extend_from_slice(room);
        reader.consume(n);
        if line.len() >= max {
            return Ok(Some(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_the_limit_and_the_rest_follows() {
        let input = b"short\n0123456789abc\nend";
        let mut reader = BufReader::with_capacity(4, &input[..]);
        let mut got = Vec::new();
        let mut line = Vec::new();
        while let Some(full) = read_entry(&mut reader, &mut line, 8).unwrap() {
            got.push((String::from_utf8(line.clone()).unwrap(), full));
            line.clear();
        }
        let want = [
            ("short", true),
            ("01234567", false),
            ("89abc", true),
            ("end", true),
        ];
        let want: Vec<_> = want.iter().map(|(t, f)| (t.to_string(), *f)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_line_exactly_at_the_limit_is_whole_with_its_newline() {
        let mut reader = BufReader::new(&b"12345678\nx\n"[..]);
        let mut line = Vec::new();
        // The newline lies past the limit: the 8 bytes are a part, and the
        // newline then ends the line as an empty last part.
        assert_eq!(read_entry(&mut reader, &mut line, 8).unwrap(), Some(false));
        line.clear();
        assert_eq!(read_entry(&mut reader, &mut line, 8).unwrap(), Some(true));
        assert!(line.is_empty());
    }
}
