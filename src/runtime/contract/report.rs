//! The one-line reports minipod's helpers send whoever started them over a
//! pipe: `pid N` once a pause or container is set up, `ok` once a detached
//! pod runs (supervisor to `run -d`), or `error MESSAGE`. A reader gets all
//! of them at the pipe's end (EOF). `Line` is the one writer, `parse` the
//! one reader.

use std::io::Write;
use std::os::fd::RawFd;

/// One report line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Line<'a> {
    Pid(i32),
    Ok,
    /// A message, which may span lines: it is folded onto one.
    Error(&'a str),
}

impl Line<'_> {
    pub fn render(&self) -> String {
        match self {
            Line::Pid(pid) => format!("pid {pid}\n"),
            Line::Ok => "ok\n".to_string(),
            Line::Error(message) => format!("error {}\n", one_line(message)),
        }
    }

    /// Writes the line in one `write`, so concurrent writers never
    /// interleave within it.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(self.render().as_bytes())?;
        out.flush()
    }

    /// Writes the line to a descriptor this process owns but must not
    /// close (fd 3, the report or sync pipe). A reader that is gone (a
    /// `run -d` killed while its pod started) is an error (EPIPE), not a
    /// SIGPIPE: that would kill the supervisor of a pod that is whole.
    pub fn write_to_fd(&self, fd: RawFd) -> std::io::Result<()> {
        // SAFETY: the caller names a descriptor that stays open for the
        // whole call; ManuallyDrop keeps the File from closing it.
        let mut file = std::mem::ManuallyDrop::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
        });
        without_sigpipe(|| self.write_to(&mut *file))
    }
}

/// Runs `write` with SIGPIPE blocked in this thread, then discards a SIGPIPE
/// the write raised: the write sees EPIPE instead. (Ignoring SIGPIPE for
/// the process would be inherited by the containers it starts.)
fn without_sigpipe<T>(write: impl FnOnce() -> T) -> T {
    // SAFETY: plain signal-set calls on local sets; the mask is restored
    // before returning, and sigtimedwait with a zero timeout only takes a
    // SIGPIPE that is pending on this thread.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let out = write();
        if libc::sigismember(&old, libc::SIGPIPE) == 0 {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            while libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero) == libc::SIGPIPE {}
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        out
    }
}

/// What a helper reported, read at the pipe's end. A container's link
/// may send its pid and then an error (its exec failed): both are kept.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub pid: Option<i32>,
    pub ok: bool,
    pub error: Option<String>,
}

/// Collapses a message's line breaks and runs of spaces, so it fits a
/// report line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a helper's report. Nothing at all means it died before it could
/// say.
pub fn parse(text: &str) -> Report {
    let mut report = Report::default();
    for line in text.lines() {
        match line.trim().split_once(' ').unwrap_or((line.trim(), "")) {
            ("error", msg) => report.error = Some(msg.to_string()),
            ("pid", pid) => report.pid = pid.trim().parse().ok(),
            ("ok", _) => report.ok = true,
            _ => {}
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back() {
        assert_eq!(parse(&Line::Pid(42).render()).pid, Some(42));
        assert!(parse(&Line::Ok.render()).ok);
        assert_eq!(parse(""), Report::default());
        assert_eq!(parse("pid x\n").pid, None);
        let both = format!(
            "{}{}",
            Line::Pid(42).render(),
            Line::Error("mount failed:\n  EPERM").render()
        );
        let both = parse(&both);
        assert_eq!(both.pid, Some(42));
        assert_eq!(both.error.as_deref(), Some("mount failed: EPERM"));
        assert_eq!(one_line("a\nb  c\n"), "a b c");
    }
}
