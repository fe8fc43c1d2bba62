//! minipod: a rootless pod launcher. `main` stays single-threaded until the
//! command has joined the user namespace it needs (see `userns::enter`): the
//! kernel refuses `setns(CLONE_NEWUSER)` in a multi-threaded process.

mod cli;
mod image;
mod net;
mod paths;
mod runtime;
mod spec;
mod sys;
mod userns;

use std::process::ExitCode;

/// podman's convention: 125 means minipod itself failed, not a container.
pub const EXIT_MINIPOD_ERROR: u8 = 125;

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our
    // output goes away (`minipod ps | head`) instead of panicking.
    // SAFETY: restores the default disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::from(EXIT_MINIPOD_ERROR)
        }
    }
}
