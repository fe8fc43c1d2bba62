//! Moving a container's output to its log file and, in the foreground, to
//! the terminal with the container's name in front of each line.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

use crate::runtime::logs::LogWriter;

/// Copies one output stream of a container, line by line, to its log file
/// and (in the foreground) to the terminal, prefixed with its name.
pub fn pump(
    from: std::io::PipeReader,
    stream: &'static str,
    prefix: String,
    log: Arc<Mutex<LogWriter>>,
    terminal: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 << 10, from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Ok(mut log) = log.lock()
                && let Err(e) = log.write_line(stream, text)
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
                let _ = out.write_all(prefix.as_bytes());
                let _ = out.write_all(text);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
    })
}
