//! `minipod exec -t`: the command's pseudo-terminal, made its controlling
//! terminal, and the relay between it and the caller's terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;

/// In the forked command: a new session whose controlling terminal is the
/// pty's `slave`, which also becomes fds 0-2.
pub(super) fn attach_to_terminal(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    // SAFETY: TIOCSCTTY takes an integer (0: do not steal a terminal that
    // has a session), no memory; `slave` is a live fd.
    Errno::result(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .context("TIOCSCTTY")?;
    for fd in 0..=2 {
        crate::sys::fs::redirect_fd(slave, fd)?;
    }
    Ok(())
}

/// Copies between our terminal (raw while the command runs) and the pty
/// until everything holding the pty's other end has exited.
pub(super) fn relay_terminal(master: OwnedFd) -> Result<()> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    // Put back on every way out of here, an error included.
    let _restore = RestoreMode(saved.clone());
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
        // The pty starts with our window size.
        // SAFETY: both ioctls take a pointer to a winsize, and `ws` is a
        // live, zero-initialised libc::winsize (all-integer, so zero is
        // valid) that outlives the calls.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
    // One thread only: after joining a PID namespace no thread can be made.
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut pty = File::from(master);
    let mut out = std::io::stdout();
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    loop {
        let stdin_fd = std::io::stdin();
        let mut fds = vec![PollFd::new(pty.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => bail!("relaying the terminal: {e}"),
        }
        let pty_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open
            && fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        drop(fds);
        if pty_ready {
            match pty.read(&mut buf) {
                // EIO: the command and everything holding the terminal exited.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if stdin_ready {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = pty.write_all(&buf[..n]);
                }
            }
        }
    }
    Ok(())
}

/// Our terminal's mode before the relay made it raw, set again when dropped.
struct RestoreMode(Option<nix::sys::termios::Termios>);

impl Drop for RestoreMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}
