//! Facts about processes from /proc.

/// The kernel start time of a live process (field 22 of /proc/PID/stat), to
/// tell it from an unrelated process that reused its pid. `None` when the
/// process is gone or a zombie (exited, not yet reaped).
pub fn live_start_time(pid: i32) -> Option<u64> {
    let stat = read_stat(pid)?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// /proc/PID/stat in one read: it is a few hundred bytes, and
/// `read_to_string` would stat it (size 0) and read it in six growing
/// pieces. IPAM checks every lease's owner with it at each pod start.
fn read_stat(pid: i32) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let n = file.read(&mut buf).ok()?;
    if n < buf.len() {
        return String::from_utf8(buf[..n].to_vec()).ok();
    }
    let mut text = String::from_utf8(buf.to_vec()).ok()?;
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// `signal` when `parent` dies (PR_SET_PDEATHSIG), then a check that it
/// did not die before that was set (we would have been reparented).
/// PDEATHSIG is cleared by a change of uid or gid: set it after one.
pub fn die_with_parent(parent: i32, signal: nix::sys::signal::Signal) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(signal)?;
    if nix::unistd::getppid().as_raw() != parent {
        return Err(std::io::Error::other(format!(
            "parent process {parent} exited"
        )));
    }
    Ok(())
}

/// As `die_with_parent`, but the death arrives as a blocked SIGTERM, which
/// survives exec: for minipod's own processes that must kill and reap a
/// child of theirs before they go (the pause program's `link`).
pub fn told_of_parent_death(parent: i32) -> std::io::Result<()> {
    let mut term = nix::sys::signal::SigSet::empty();
    term.add(nix::sys::signal::Signal::SIGTERM);
    term.thread_block()?;
    die_with_parent(parent, nix::sys::signal::Signal::SIGTERM)
}

/// A pidfd of process `pid` if it is still the one that started at
/// `start_time` (pids are reused): readable once the process has ended.
pub fn pidfd_of(pid: i32, start_time: u64) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes integers; a new fd is ours alone.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this fd.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // Checked after opening: the pidfd now names the process for good.
    (live_start_time(pid) == Some(start_time)).then_some(fd)
}

/// Signals one process. A pid of 0 (a container whose setup failed before
/// it reported one) must not become kill(0), our whole process group.
pub fn signal_pid(pid: i32, sig: nix::sys::signal::Signal) {
    if pid > 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// A line of /proc/PID/status, without its `Field:` name.
fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// Whether `pid` is PID 1 of its own PID namespace (NSpid's last field).
pub fn is_pid1(pid: i32) -> bool {
    status_field(pid, "NSpid").is_some_and(|ids| ids.split_whitespace().last() == Some("1"))
}

/// Whether `pid` has a handler for `sig` (SigCgt in /proc/PID/status).
pub fn catches(pid: i32, sig: nix::sys::signal::Signal) -> bool {
    status_field(pid, "SigCgt")
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|mask| mask & (1 << (sig as i32 - 1)) != 0)
}

/// The signals that stop a pod (SIGINT, SIGTERM, SIGHUP) and SIGCHLD: what
/// a supervisor, and `run` waiting for several, handle themselves, blocked
/// and read from a signalfd.
pub fn stop_signals_and_sigchld() -> nix::sys::signal::SigSet {
    use nix::sys::signal::Signal;
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_own_start_time_is_known() {
        assert!(super::live_start_time(std::process::id() as i32).is_some());
        assert!(super::live_start_time(-1).is_none());
    }

    #[test]
    fn status_fields_of_our_own_process() {
        let me = std::process::id() as i32;
        // Tests run in the host's PID namespace, not as its PID 1.
        assert!(!super::is_pid1(me));
        assert!(!super::catches(me, nix::sys::signal::Signal::SIGUSR2));
    }
}
