//! Outbound connectivity for every pod through one pasta process (Debian
//! package `passt`) per holder: a user-mode network stack that gives the
//! holder's uplink netns a tap device, `pasta0`, whose traffic it carries
//! out through ordinary sockets of the host, and which maps its gateway
//! address to the host's loopback. Pods route through the bridge into the
//! uplink netns, where their traffic is masqueraded onto the tap (see
//! `nftables`), the way podman's rootless netns shares one pasta or
//! slirp4netns among its containers. One pasta for all pods, instead of one
//! per pod, keeps its start-up (tens of ms) and its packet buffers (about
//! 30 MB) out of every pod's start and memory.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::netlink::Netlink;

/// The tap device pasta creates in the uplink netns.
pub const IFNAME: &str = "pasta0";

/// The address pasta forwards DNS queries from the uplink netns to the
/// host's first nameserver at (`--dns-forward`, podman's address), given
/// only when that nameserver is on the host's loopback (systemd-resolved's
/// 127.0.0.53), which the gateway's mapping to the host's 127.0.0.1 does
/// not reach: pasta then asks it from the host. Not otherwise, because
/// pasta then also answers from this address for queries sent to that
/// nameserver directly, which a resolver of a `dnsPolicy: Default` pod
/// would drop.
pub const DNS_FORWARD: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 1, 1);

/// How long pasta may take to configure the uplink netns.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The holder's pasta, forked while the holder is still in the host's netns
/// (pasta's sockets to the outside world must be the host's) and held until
/// the holder has made the uplink netns, which it then serves.
pub struct Launcher {
    child: Pid,
    go: OwnedFd,
    pasta: String,
}

impl Launcher {
    /// Forks the future pasta. It dies with us (PDEATHSIG), and waits for
    /// `start`. Call while single-threaded.
    /// `forward_dns`: serve `DNS_FORWARD`.
    pub fn fork(pasta: &str, forward_dns: bool) -> Result<Launcher> {
        let program = CString::new(pasta).context("pasta's path")?;
        let dns_forward = DNS_FORWARD.to_string();
        let forward_dns_args = match forward_dns {
            true => vec!["--dns-forward", dns_forward.as_str()],
            false => Vec::new(),
        };
        // No port forwarding in either direction: hostPorts are minipod's
        // own, and pasta's default (`-T auto`) would hand the uplink's
        // connections to its own 127.0.0.1 over to the host's loopback.
        let args: Vec<CString> = [pasta]
            .into_iter()
            .chain(forward_dns_args)
            .chain([
                "-t",
                "none",
                "-u",
                "none",
                "-T",
                "none",
                "-U",
                "none",
                "--config-net",
                "--foreground",
                "--quiet",
                "--ns-ifname",
                IFNAME,
                "--netns",
                "/proc/self/fd/3",
            ])
            .map(|a| CString::new(a).expect("no NUL"))
            .collect();
        let parent = nix::unistd::getpid();
        let (go_read, go_write) = nix::unistd::pipe().context("creating a pipe")?;
        // SAFETY: the caller is single-threaded; the child only makes
        // syscalls and execs.
        match unsafe { nix::unistd::fork() }.context("forking pasta")? {
            ForkResult::Parent { child } => Ok(Launcher {
                child,
                go: go_write,
                pasta: pasta.to_string(),
            }),
            ForkResult::Child => {
                drop(go_write);
                let alive = crate::sys::proc::die_with_parent(
                    parent.as_raw(),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok();
                // Let go of the holder's pipes at once: its parent reads
                // them to EOF.
                let _ = crate::sys::fs::stdio_to_null();
                let mut go = [0u8];
                let released = alive && nix::unistd::read(&go_read, &mut go) == Ok(1);
                if released && let Ok(netns) = std::fs::File::open(format!("/proc/{parent}/ns/net"))
                {
                    // Above 3 first, so dup2 never meets itself (and keeps
                    // close-on-exec).
                    // SAFETY: fcntl and dup2 on fds we own; fd 3 is meant
                    // to be replaced.
                    let high =
                        unsafe { libc::fcntl(netns.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
                    // SAFETY: dup2 of the fd just made onto fd 3, ours.
                    let onto_fd3 = high >= 0 && unsafe { libc::dup2(high, 3) } == 3;
                    if onto_fd3 {
                        let _ = nix::unistd::execv(&program, &args);
                    }
                }
                // SAFETY: leave the forked child without running destructors.
                unsafe { libc::_exit(127) }
            }
        }
    }

    /// The forked pasta's pid: the holder kills it before it leaves.
    pub fn pid(&self) -> Pid {
        self.child
    }

    /// Lets the forked pasta go without starting it (it exits at once),
    /// and reaps it.
    pub fn abandon(self) {
        drop(self.go);
        let _ = waitpid(self.child, None);
    }

    /// Lets pasta start on the netns we are in now, and waits until it has
    /// configured it. Returns pasta's gateway: pods reach the host's
    /// loopback at that address.
    pub fn start(self) -> Result<Ipv4Addr> {
        let mut nl = Netlink::open()?;
        nix::unistd::write(&self.go, b"g").context("starting pasta")?;
        drop(self.go);
        let started = Instant::now();
        loop {
            if let Some(index) = nl.link_index(IFNAME)? {
                let gateway = nl.list_routes()?.into_iter().find_map(|r| {
                    (r.prefix == 0 && r.oif == Some(index))
                        .then_some(r.gateway)
                        .flatten()
                });
                if let Some(gateway) = gateway {
                    return Ok(gateway);
                }
            }
            match waitpid(self.child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                status => bail!(
                    "{} exited while setting up ({status:?}); run `pasta --config-net` by hand to \
                     see why, or set MINIPOD_NO_PASTA=1 to run pods without an outbound route",
                    self.pasta
                ),
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = nix::sys::signal::kill(self.child, Signal::SIGKILL);
                let _ = waitpid(self.child, None);
                bail!(
                    "{} did not set up the uplink network within {READY_TIMEOUT:?}; set \
                     MINIPOD_NO_PASTA=1 to run pods without an outbound route",
                    self.pasta
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
