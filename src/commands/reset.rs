//! `minipod system reset`: everything of a data root and run root removed
//! (pods stopped, images, layers, volumes, Secrets, ConfigMaps), files of
//! subordinate ids included, which the user cannot remove from outside the
//! user namespace; the holder stopped. What a user runs instead of `rm -rf`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::paths::Roots;
use crate::userns;

/// What `system reset` asks before it removes anything.
fn confirmed(roots: &Roots) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "system reset removes every pod, image, volume, Secret and ConfigMap under {} and {}; \
             pass --force to do it without being asked",
            roots.data.display(),
            roots.run.display()
        );
    }
    eprint!(
        "WARNING! This removes every pod, image, volume, Secret and ConfigMap of minipod under\n  \
         {}\n  {}\nand stops its user-namespace holder.\nAre you sure you want to continue? [y/N] ",
        roots.data.display(),
        roots.run.display()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `minipod system reset [-f]`: stops and removes every pod, then removes
/// the data root's and run root's contents (inside the user namespace: layers
/// and volumes hold files of subordinate ids) and stops the holder.
pub fn system_reset(roots: &Roots, force: bool) -> Result<ExitCode> {
    if !force && !confirmed(roots)? {
        eprintln!("nothing removed");
        return Ok(ExitCode::SUCCESS);
    }
    let pods = crate::runtime::state::list_pods(roots);
    // At once, as `rm -f`.
    super::pod::remove_pods(roots, &pods, Some(std::time::Duration::ZERO), |_| {})?;
    if roots.data.exists() {
        userns::enter(roots)?;
        empty_dir(&roots.data)?;
    }
    userns::holder::stop(roots)?;
    if roots.run.exists() {
        empty_dir(&roots.run)?;
    }
    for dir in [&roots.data, &roots.run] {
        // A mount point (a test's tmpfs) stays, empty.
        let _ = std::fs::remove_dir(dir);
    }
    println!(
        "removed {} pod(s) and everything under {} and {}",
        pods.len(),
        roots.data.display(),
        roots.run.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Removes what `dir` holds, not `dir` itself.
fn empty_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
