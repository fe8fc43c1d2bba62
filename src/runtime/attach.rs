//! `minipod attach` and `run -it`: the caller's terminal on a container's
//! console, served by the pod's supervisor (`contract::attach`). Raw mode
//! while the container has a tty and our input reaches it (put back on
//! every way out); the detach keys (podman's `ctrl-p,ctrl-q`) end the
//! session and leave the container running; the container's exit ends it
//! with its code.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, anyhow, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::contract::attach::{Decoder, Frame, encode, parse_hello, request};
use super::state::PodPaths;
use crate::sys::tty::{RawMode, window_size};

/// podman's default `--detach-keys`.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

pub struct AttachOptions {
    /// Our input goes to the container (when it has `stdin`).
    pub stdin: bool,
    /// The bytes that detach (`parse_detach_keys`); empty: none.
    pub detach_keys: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AttachEnd {
    /// The detach keys were typed: the container runs on.
    Detached,
    /// The container exited with this code.
    Exited(i32),
    /// SIGINT, SIGTERM or SIGHUP ended the session (the container runs on).
    Signalled(Signal),
}

/// podman's `--detach-keys` format: comma-separated keys, each one
/// character or `ctrl-X` (X a letter or one of `@ [ \ ] ^ _`); "" for none.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|key| {
            let bad = || {
                anyhow!(
                    "--detach-keys {spec:?}: {key:?} is not a key; give comma-separated keys, \
                     each one character or ctrl-X (X a letter or one of @[\\]^_), as \
                     {DEFAULT_DETACH_KEYS}"
                )
            };
            match key.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_uppercase();
                    match c {
                        b'@'..=b'_' => Ok(c - b'@'),
                        _ => Err(bad()),
                    }
                }
                Some(_) => Err(bad()),
                None if key.len() == 1 => Ok(key.as_bytes()[0]),
                None => Err(bad()),
            }
        })
        .collect()
}

/// Finds the detach keys in input that comes in pieces: what is not part
/// of the sequence passes on; a prefix of it is held back until the next
/// byte decides (then sent, if the sequence broke off).
#[derive(Debug)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachMatcher {
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, matched: 0 }
    }

    /// The bytes to send on, and whether the sequence was typed (what
    /// followed it in `input` is dropped: the session ends).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b != self.keys[self.matched] {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Attaches our stdin/stdout/stderr to container `container` of pod `pod`
/// until the detach keys, the container's exit or a stop signal.
pub fn attach(
    paths: &PodPaths,
    pod: &str,
    container: &str,
    opts: &AttachOptions,
) -> Result<AttachEnd> {
    let not_running = || anyhow!("container {container} of pod {pod} is not running");
    let mut stream = UnixStream::connect(paths.control_socket()).map_err(|_| not_running())?;
    stream
        .write_all(request(container, opts.stdin).as_bytes())
        .map_err(|_| not_running())?;
    // Byte by byte: frames may follow the line at once.
    let mut line = Vec::new();
    let mut byte = [0u8];
    while line.last() != Some(&b'\n') {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            Ok(_) => return Err(not_running()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(not_running()),
        }
    }
    let (tty, relays) =
        parse_hello(&String::from_utf8_lossy(&line)).with_context(|| format!("pod {pod}"))?;
    let _mask = SignalMask::block()?;
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        signals.add(s);
    }
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("creating a signalfd")?;
    // Raw only when what we type goes to the container's terminal.
    let _raw = (tty && relays).then(RawMode::enter);
    let send_size = |stream: &mut UnixStream| -> Result<()> {
        let size = window_size(&std::io::stdin()).or_else(|| window_size(&std::io::stdout()));
        if let Some((rows, cols)) = size {
            stream.write_all(&encode(&Frame::Resize { rows, cols }))?;
        }
        Ok(())
    };
    if tty {
        send_size(&mut stream).context("attaching")?;
    }
    let mut matcher = DetachMatcher::new(opts.detach_keys.clone());
    let mut decoder = Decoder::default();
    let mut input_open = relays;
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: fd 0 is ours for the life of this call.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        let mut fds = vec![
            PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        if input_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("attached to {container}: {e}"),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if n == 0 {
                bail!("pod {pod}: its supervisor ended the session of {container} (the pod ended)");
            }
            decoder.push(&buf[..n]);
            while let Some(frame) = decoder.next_frame()? {
                match frame {
                    Frame::Stdout(b) => {
                        let _ = out.write_all(&b);
                        let _ = out.flush();
                    }
                    Frame::Stderr(b) => {
                        let _ = err.write_all(&b);
                    }
                    Frame::Exit(code) => return Ok(AttachEnd::Exited(code)),
                    _ => {}
                }
            }
        }
        if ready[1] {
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) if tty => {
                        let _ = send_size(&mut stream);
                    }
                    Ok(Signal::SIGWINCH) | Err(_) => {}
                    Ok(sig) => return Ok(AttachEnd::Signalled(sig)),
                }
            }
        }
        if input_open && ready.get(2) == Some(&true) {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => {
                    input_open = false;
                    let _ = stream.write_all(&encode(&Frame::InputEnd));
                }
                Ok(n) => {
                    let (pass, detach) = matcher.feed(&buf[..n]);
                    if !pass.is_empty() {
                        // The supervisor is gone: its end shows on the
                        // next read.
                        let _ = stream.write_all(&encode(&Frame::Input(pass)));
                    }
                    if detach {
                        return Ok(AttachEnd::Detached);
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => bail!("reading stdin: {e}"),
            }
        }
    }
}

/// The signals the session waits for on a signalfd, blocked while it lives
/// and put back as they were when dropped.
struct SignalMask(SigSet);

impl SignalMask {
    fn block() -> Result<SignalMask> {
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGWINCH,
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
        ] {
            set.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .context("blocking signals")?;
        Ok(SignalMask(old))
    }
}

impl Drop for SignalMask {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<u8> {
        parse_detach_keys(DEFAULT_DETACH_KEYS).unwrap()
    }

    #[test]
    fn detach_keys_parse_as_podman_writes_them() {
        assert_eq!(keys(), vec![0x10, 0x11]);
        assert_eq!(
            parse_detach_keys("ctrl-@,a,ctrl-_").unwrap(),
            vec![0, b'a', 0x1f]
        );
        assert_eq!(parse_detach_keys("ctrl-A").unwrap(), vec![1]);
        assert!(parse_detach_keys("").unwrap().is_empty());
        for bad in ["ctrl-", "ctrl-1", "ab", "a,,b", "ctrl-ab"] {
            let e = parse_detach_keys(bad).unwrap_err().to_string();
            assert!(e.contains("--detach-keys"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_sequence_is_found_across_reads() {
        let mut m = DetachMatcher::new(keys());
        assert_eq!(m.feed(b"ls\r\x10"), (b"ls\r".to_vec(), false));
        // Held back, then the next read completes it; what follows is dropped.
        assert_eq!(m.feed(b"\x11more"), (Vec::new(), true));
    }

    #[test]
    fn a_broken_off_prefix_is_sent_on() {
        let mut m = DetachMatcher::new(keys());
        assert_eq!(m.feed(b"\x10"), (Vec::new(), false));
        assert_eq!(m.feed(b"x"), (b"\x10x".to_vec(), false));
        // Ctrl-P Ctrl-P Ctrl-Q: the first is sent, the next two detach.
        assert_eq!(m.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(m.feed(b"\x11"), (Vec::new(), true));
    }

    #[test]
    fn no_keys_pass_everything() {
        let mut m = DetachMatcher::new(Vec::new());
        assert_eq!(m.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
