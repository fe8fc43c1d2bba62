//! `minipod unshare`: a command of the user's as root of minipod's user
//! namespace (podman's `unshare`), to look at or change files of
//! subordinate ids in layers and volumes.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::Result;

use crate::paths::Roots;
use crate::userns;

/// `minipod unshare [CMD...]`: runs CMD (else `$SHELL`, else /bin/sh) as
/// root of the user namespace, with `MINIPOD_ROOT` and `MINIPOD_RUNROOT`
/// naming the roots. The holder stays while it runs.
pub fn unshare(roots: &Roots, command: &[String]) -> Result<ExitCode> {
    let command = match command {
        [] => vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_string())],
        given => given.to_vec(),
    };
    // Found as execvp would, skipping PATH entries we may not search.
    let path = std::env::var("PATH").unwrap_or_default();
    let Some(program) = crate::runtime::container::exec_candidates(&command[0], &path)
        .into_iter()
        .find(|c| std::path::Path::new(c).is_file())
    else {
        eprintln!("Error: {:?}: no such command (PATH={path})", command[0]);
        return Ok(ExitCode::from(127));
    };
    userns::enter(roots)?;
    userns::holder::keep_in_use()?;
    let err = std::process::Command::new(&program)
        .arg0(&command[0])
        .args(&command[1..])
        .env("MINIPOD_ROOT", &roots.data)
        .env("MINIPOD_RUNROOT", &roots.run)
        .exec();
    // Found, but not runnable: 126, as a shell says it.
    eprintln!("Error: running {program:?}: {err}");
    Ok(ExitCode::from(126))
}
