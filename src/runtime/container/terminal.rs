//! `minipod exec -t`: the command's pseudo-terminal, made its controlling
//! terminal, and the relay between it and the caller's terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;

/// In the forked command: a new session whose controlling terminal is the
/// pty's `slave`, which also becomes fds 0-2.
pub(super) fn attach_to_terminal(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    crate::sys::tty::take_terminal(slave)
}

/// Copies between our terminal (raw while the command runs) and the pty
/// until everything holding the pty's other end has exited.
pub(super) fn relay_terminal(master: OwnedFd) -> Result<()> {
    // Put back on every way out of here, an error included.
    let _raw = crate::sys::tty::RawMode::enter();
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
