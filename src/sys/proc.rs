//! Facts about processes from /proc.

/// The kernel start time of a live process (field 22 of /proc/PID/stat), to
/// tell it from an unrelated process that reused its pid. `None` when the
/// process is gone or a zombie (exited, not yet reaped).
pub fn live_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// SIGKILL when `parent` dies (PR_SET_PDEATHSIG), then a check that it
/// did not die before that was set (we would have been reparented).
/// PDEATHSIG is cleared by a change of uid or gid: set it after one.
pub fn die_with_parent(parent: i32) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid().as_raw() != parent {
        return Err(std::io::Error::other(format!(
            "parent process {parent} exited"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_own_start_time_is_known() {
        assert!(super::live_start_time(std::process::id() as i32).is_some());
        assert!(super::live_start_time(-1).is_none());
    }
}
