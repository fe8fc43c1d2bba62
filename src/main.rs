//! minipod: a rootless pod launcher. `main` stays single-threaded until the
//! command has joined the user namespace it needs (see `userns::enter`): the
//! kernel refuses `setns(CLONE_NEWUSER)` in a multi-threaded process.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our
    // output goes away (`minipod ps | head`) instead of panicking.
    // SAFETY: restores the default disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match minipod::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            if minipod::sys::fs::is_disk_full(&err) {
                eprintln!("Error: {}", minipod::sys::fs::DISK_FULL_ADVICE);
            }
            ExitCode::from(minipod::EXIT_MINIPOD_ERROR)
        }
    }
}
