//! Terminals: a pseudo-terminal made a process's controlling terminal,
//! raw mode on the caller's terminal (put back when dropped), window sizes,
//! and passing a descriptor over a unix socket (a pty master from a
//! container to its supervisor, as runc's console socket).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::termios;

/// In a process that already leads its own session: `slave` becomes its
/// controlling terminal and its fds 0-2.
pub fn take_terminal(slave: &impl AsFd) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an integer (0: do not steal a terminal that
    // has a session), no memory; `slave` is a live fd.
    Errno::result(unsafe { libc::ioctl(slave.as_fd().as_raw_fd(), libc::TIOCSCTTY, 0) })
        .context("TIOCSCTTY")?;
    for fd in 0..=2 {
        crate::sys::fs::redirect_fd(slave, fd)?;
    }
    Ok(())
}

/// The window size of the terminal on `fd`: (rows, columns).
pub fn window_size(fd: &impl AsFd) -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`, a live, zeroed
    // libc::winsize (all integers, so zero is valid).
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0)
            .then_some((ws.ws_row, ws.ws_col))
    }
}

/// Sets the window size of the pty whose master (or slave) is `fd`; its
/// foreground process group gets SIGWINCH when it changes.
pub fn set_window_size(fd: &impl AsFd, (rows, cols): (u16, u16)) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize `ws`, which outlives the call.
    unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Our stdin's terminal made raw while this lives; its mode before is put
/// back when dropped (on every way out, an error included). Nothing when
/// stdin is not a terminal.
pub struct RawMode(Option<termios::Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
        }
        RawMode(saved)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin(), termios::SetArg::TCSANOW, t);
        }
    }
}

/// Sends `fd` over the unix socket `socket` (one byte with SCM_RIGHTS).
pub fn send_fd(socket: RawFd, fd: RawFd) -> std::io::Result<()> {
    let fds = [fd];
    sendmsg::<()>(
        socket,
        &[IoSlice::new(b"f")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// The descriptor `send_fd` sent on `socket`, if one is waiting (never
/// blocks: the sender is done by the time we look).
pub fn receive_fd(socket: RawFd) -> std::io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = match recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(m) => m,
        Err(Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just gave us this fd.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(None)
}
