//! A container's stdin and terminal, which the supervisor owns (conmon's
//! role), and the attach sessions on them: output goes to every session as
//! it comes (`output::Watchers`), a session's input to the container's
//! stdin, its window size to the pty.
//!
//! Kubernetes' rules (kubelet, CRI): without `stdin` the container's stdin
//! is /dev/null; with it, a stdin held open here (reads block while nobody
//! is attached); `stdinOnce` closes it when the first session with stdin
//! ends (detach or its EOF), until the container starts again; `tty` gives
//! a pty, its output logged as stdout, and with `stdin` it is the input.
//! Everything here runs in the supervisor's poll loop, without blocking:
//! sessions are read non-blocking, stdin written only when poll says so.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::output::{Shared, Watchers};
use crate::runtime::contract::attach::{Decoder, Frame, hello};

/// Input waiting for the container beyond this stops reading sessions.
const PENDING_MAX: usize = 16 << 10;
/// At most this much is written per wake-up: poll's POLLOUT promises room
/// for a little, not for everything.
const WRITE_CHUNK: usize = 512;
/// What a terminal's user types to end input (VEOF): a tty has no
/// half-close, so closing stdin once (`stdinOnce`) sends it.
const EOT: u8 = 0x04;

/// What the container was given, per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Wanted {
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

struct Session {
    id: u64,
    stream: UnixStream,
    decoder: Decoder,
    /// Its input reaches the container.
    relays: bool,
}

/// One container's console across its starts.
pub struct Console {
    pub wanted: Wanted,
    /// The pty master (`tty`): resized by sessions; read by a pump.
    master: Option<File>,
    /// Where input goes: the pipe's write end, or a copy of the master.
    input: Option<File>,
    pending: Vec<u8>,
    /// `stdinOnce` ended this start's stdin: no more input is taken, and
    /// the pipe closes once `pending` is written.
    closed: bool,
    /// The console socket's supervisor end while a `tty` container starts.
    console_socket: Option<OwnedFd>,
    watchers: Shared,
    sessions: Vec<Session>,
}

/// What a container's link gets from its console.
pub struct ForChild {
    pub stdin: Stdio,
    /// `tty`: the link's end of the console socket (`fds::FD_CONSOLE`).
    pub console_socket: Option<OwnedFd>,
}

impl Console {
    pub fn new(wanted: Wanted) -> Console {
        Console {
            wanted,
            master: None,
            input: None,
            pending: Vec::new(),
            closed: false,
            console_socket: None,
            watchers: Watchers::new(0),
            sessions: Vec::new(),
        }
    }

    /// A fresh stdin (and console socket) for a start whose output
    /// `pumps` pipes carry; sessions of an earlier start are gone.
    pub fn prepare_start(&mut self, pumps: usize) -> Result<ForChild> {
        self.reset();
        // The master's pump joins later (`started`).
        self.watchers = Watchers::new(pumps + usize::from(self.wanted.tty));
        let mut out = ForChild {
            stdin: Stdio::null(),
            console_socket: None,
        };
        if self.wanted.tty {
            let (ours, theirs) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .context("creating the console socket")?;
            self.console_socket = Some(ours);
            out.console_socket = Some(theirs);
        } else if self.wanted.stdin {
            let (r, w) = std::io::pipe().context("creating the container's stdin")?;
            self.input = Some(File::from(OwnedFd::from(w)));
            out.stdin = Stdio::from(OwnedFd::from(r));
        }
        Ok(out)
    }

    pub fn watchers(&self) -> Shared {
        self.watchers.clone()
    }

    /// Once the container runs (its sync pipe reached EOF): the master of
    /// a `tty` container, for its pump. Without it, the pump it was
    /// counted for is given up.
    pub fn started(&mut self) -> Option<File> {
        let socket = self.console_socket.take()?;
        let master = crate::sys::tty::receive_fd(socket.as_raw_fd())
            .ok()
            .flatten()
            .map(File::from);
        let Some(master) = master else {
            self.watchers.lock().map(|mut w| w.pump_done()).ok();
            return None;
        };
        let reader = master.try_clone().ok();
        if reader.is_none() {
            self.watchers.lock().map(|mut w| w.pump_done()).ok();
        }
        if self.wanted.stdin {
            self.input = master.try_clone().ok();
        }
        self.master = Some(master);
        reader
    }

    /// The container exited: sessions get the code after its last output;
    /// its stdin and pty are let go.
    pub fn exited(&mut self, code: i32) {
        if let Ok(mut w) = self.watchers.lock() {
            w.exited(code);
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.master = None;
        self.input = None;
        self.console_socket = None;
        self.pending.clear();
        self.closed = false;
        // Their streams stay open through the watchers until the exit.
        self.sessions.clear();
    }

    /// A new session on `stream` (its request read); `stdin`: the client
    /// sends input. Answers the hello line.
    pub fn attach(&mut self, id: u64, stream: UnixStream, stdin: bool) -> Result<()> {
        let relays = stdin && self.wanted.stdin && !self.closed && self.input.is_some();
        (&stream).write_all(hello(self.wanted.tty, relays).as_bytes())?;
        let writer = stream.try_clone()?;
        stream.set_nonblocking(true)?;
        if let Ok(mut w) = self.watchers.lock() {
            w.add(id, writer);
        }
        self.sessions.push(Session {
            id,
            stream,
            decoder: Decoder::default(),
            relays,
        });
        Ok(())
    }

    /// What the loop polls for this console.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut fds = Vec::new();
        if self.pending.len() < PENDING_MAX {
            for s in &self.sessions {
                fds.push((s.stream.as_fd(), PollFlags::POLLIN));
            }
        }
        if let Some(input) = &self.input
            && !self.pending.is_empty()
        {
            fds.push((input.as_fd(), PollFlags::POLLOUT));
        }
        fds
    }

    /// After a wake-up: reads what sessions sent, writes what the container
    /// can take.
    pub fn serve(&mut self) {
        let mut buf = [0u8; 4096];
        let mut ended = Vec::new();
        for k in 0..self.sessions.len() {
            if self.pending.len() >= PENDING_MAX {
                break;
            }
            let mut frames = Vec::new();
            let s = &mut self.sessions[k];
            let gone = match s.stream.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    s.decoder.push(&buf[..n]);
                    loop {
                        match s.decoder.next_frame() {
                            Ok(Some(f)) => frames.push(f),
                            Ok(None) => break false,
                            Err(_) => break true,
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
                Err(_) => true,
            };
            let relays = s.relays;
            for f in frames {
                self.take(relays, f);
            }
            if gone {
                ended.push(k);
            }
        }
        for k in ended.into_iter().rev() {
            let s = self.sessions.remove(k);
            if let Ok(mut w) = self.watchers.lock() {
                w.remove(s.id);
            }
            // A detach (or a client gone) ends the first session.
            if s.relays && self.wanted.stdin_once {
                self.close_stdin();
            }
        }
        self.write_input();
    }

    fn take(&mut self, relays: bool, frame: Frame) {
        match frame {
            Frame::Input(bytes) if relays && !self.closed => self.pending.extend_from_slice(&bytes),
            Frame::InputEnd if relays && self.wanted.stdin_once => self.close_stdin(),
            Frame::Resize { rows, cols } => {
                if let Some(master) = &self.master {
                    crate::sys::tty::set_window_size(master, (rows, cols));
                }
            }
            _ => {}
        }
    }

    fn close_stdin(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.wanted.tty && self.input.is_some() {
            self.pending.push(EOT);
        }
    }

    /// Writes a chunk of pending input if the container's side has room;
    /// lets a closed stdin go once it is written.
    fn write_input(&mut self) {
        if let Some(input) = &mut self.input
            && !self.pending.is_empty()
        {
            let mut fds = [PollFd::new(input.as_fd(), PollFlags::POLLOUT)];
            let room = nix::poll::poll(&mut fds, PollTimeout::ZERO).is_ok()
                && fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLOUT));
            let broken = fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP));
            if broken {
                // Nobody reads it any more (the container closed it).
                self.pending.clear();
                self.input = None;
            } else if room {
                let n = self.pending.len().min(WRITE_CHUNK);
                match input.write(&self.pending[..n]) {
                    Ok(n) => {
                        self.pending.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.pending.clear();
                        self.input = None;
                    }
                }
            }
        }
        if self.closed && self.pending.is_empty() {
            // The pipe's last writer: the container reads EOF.
            self.input = None;
        }
    }
}
