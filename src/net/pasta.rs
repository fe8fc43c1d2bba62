//! Outbound connectivity for pods through pasta (Debian package `passt`):
//! a user-mode network stack that gives the pod's netns a tap device whose
//! traffic it carries out through ordinary sockets of the host, and which
//! maps its gateway address to the host's loopback (so a pod reaches a
//! service listening on the host's 127.0.0.1 at the gateway's address).

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The tap device pasta creates in the pod's netns.
pub const IFNAME: &str = "pasta0";

/// Whether pasta can run for us: installed, and /dev/net/tun open to us
/// (mode 0600 on Debian unless the administrator widened it).
/// `MINIPOD_NO_PASTA=1` runs pods without it (no outbound route).
pub fn available() -> Option<String> {
    if std::env::var_os("MINIPOD_NO_PASTA").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    let pasta = std::env::split_paths(&path)
        .map(|d| d.join("pasta"))
        .find(|p| p.is_file())?;
    std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .ok()?;
    Some(pasta.display().to_string())
}

/// Starts pasta for the netns of `pause_pid`, as our child that dies with
/// us (PDEATHSIG: a killed supervisor must not leave pasta holding the pod's
/// netns and veth alive). It configures the netns while the containers set
/// themselves up; `wait_ready` tells when it is done (pasta writes
/// `pid_file` when its tap is up and the routes are in place), and no
/// container execs before that. The netns is handed over as an
/// open fd: the pause is not dumpable, and pasta drops the capability that
/// would let it open /proc/PID/ns/net itself.
pub fn start(pasta: &str, pause_pid: i32, pid_file: &Path) -> Result<Child> {
    let netns = std::fs::File::open(format!("/proc/{pause_pid}/ns/net"))
        .context("opening the pod's netns")?;
    let mut cmd = Command::new(pasta);
    // No port forwarding in either direction: hostPorts are minipod's own,
    // and pasta's default (`-T auto`) would hand the pod's connections to its
    // own 127.0.0.1 over to the host's loopback.
    cmd.args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"]);
    cmd.args([
        "--config-net",
        "--foreground",
        "--quiet",
        "--ns-ifname",
        IFNAME,
        "--netns",
        "/proc/self/fd/3",
        "--pid",
    ])
    .arg(pid_file)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    crate::sys::fs::pass_as_fd3(&mut cmd, netns.as_fd().as_raw_fd());
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().with_context(|| format!("starting {pasta}"))
}

/// Waits until the pasta `start` returned has configured the netns (it
/// writes `pid_file` then).
pub fn wait_ready(child: &mut Child, pid_file: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_file.exists() {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "pasta could not give the pod outbound connectivity ({status}); run it by hand \
                 (`pasta --config-net`) to see why, or set MINIPOD_NO_PASTA=1 to run pods without \
                 an outbound route"
            );
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "pasta did not set up the pod's network within 10 s; set MINIPOD_NO_PASTA=1 to run \
                 pods without an outbound route"
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
