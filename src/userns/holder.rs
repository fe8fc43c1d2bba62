//! Creating, finding and joining the holder process.
//!
//! The holder is `minipod __holder`: it unshares a user namespace, waits for
//! its parent to write the uid/gid maps, then sleeps in its own session until
//! killed. Commands that work on images or pods join its user namespace with
//! `setns` while they are still single-threaded.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use super::idmap;
use crate::paths::Roots;
use crate::sys::fs::atomic_write;
use crate::sys::lock::{FileLock, Mode};
use crate::sys::ns::{Kind, Namespace};

/// What the run root remembers of the holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolderRecord {
    pub pid: i32,
    /// Kernel start time of `pid` (field 22 of /proc/PID/stat): tells a live
    /// holder from an unrelated process that reused its pid.
    pub start_time: u64,
    /// Only uid 0 ↦ caller is mapped: image owners other than root cannot be
    /// kept.
    pub single_mapping: bool,
    /// The pods' subnet on the bridge in the holder's uplink netns.
    #[serde(default = "default_subnet")]
    pub subnet: String,
    /// pasta's gateway in the uplink netns, when pods have an outbound
    /// route through it: pods reach the host's loopback at this address.
    #[serde(default)]
    pub host_gateway: Option<std::net::Ipv4Addr>,
    /// Why pods have no outbound route, when pasta could not be started.
    #[serde(default)]
    pub outbound_error: Option<String>,
}

fn default_subnet() -> String {
    crate::net::ipam::DEFAULT_SUBNET.to_string()
}

/// The protocol on the holder's stdin/stdout while it is being set up.
const UNSHARED: u8 = b'u';
const MAPPED: u8 = b'm';
const READY: u8 = b'r';

/// Finds the live holder of this run root, or starts one.
pub fn ensure(roots: &Roots) -> Result<HolderRecord> {
    // It holds sockets and state of the user's pods.
    crate::sys::fs::create_private_dir(&roots.run)?;
    check_owned(&roots.run)?;
    let _lock = FileLock::acquire(&roots.holder_lock(), Mode::Exclusive)?;
    if let Some(record) = read_live(roots) {
        return Ok(record);
    }
    let record = spawn()?;
    let json = serde_json::to_vec(&record)?;
    atomic_write(&roots.holder_pid(), &json)?;
    Ok(record)
}

/// The holder's record when its process is still the one that was started.
pub fn read_live(roots: &Roots) -> Option<HolderRecord> {
    let bytes = std::fs::read(roots.holder_pid()).ok()?;
    let record: HolderRecord = serde_json::from_slice(&bytes).ok()?;
    (crate::sys::proc::live_start_time(record.pid) == Some(record.start_time)).then_some(record)
}

/// Joins the holder's user namespace (starting the holder if needed). Must be
/// called while the process has a single thread.
pub fn enter(roots: &Roots) -> Result<HolderRecord> {
    let record = ensure(roots)?;
    let ns = Namespace::open(record.pid, Kind::User)
        .with_context(|| format!("opening {}", Kind::User.path(record.pid)))?;
    if ns.is_current()? {
        return Ok(record);
    }
    if thread_count() != Some(1) {
        bail!("internal error: joining the user namespace needs a single-threaded process");
    }
    ns.join()
        .with_context(|| format!("joining the user namespace of holder {}", record.pid))?;
    Ok(record)
}

fn spawn() -> Result<HolderRecord> {
    let ranges = idmap::caller_ranges();
    if ranges.is_none() {
        tracing::warn!(
            "no range for your user in /etc/subuid and /etc/subgid: only your own uid is mapped, \
             so image files owned by other users will belong to root in containers; \
             add one with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER`"
        );
    }
    // MINIPOD_SUBNET picks the pods' subnet when the holder starts.
    let subnet = std::env::var("MINIPOD_SUBNET").unwrap_or_else(|_| default_subnet());
    crate::net::ipam::Subnet::parse(&subnet).with_context(|| format!("MINIPOD_SUBNET={subnet}"))?;
    let mut child = Command::new("/proc/self/exe")
        .arg("__holder")
        .arg(&subnet)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the user-namespace holder")?;
    let pid = child.id() as i32;
    let mut to_child = child.stdin.take().expect("piped stdin");
    let mut from_child = child.stdout.take().expect("piped stdout");
    let result = (|| -> Result<(Option<std::net::Ipv4Addr>, Option<String>)> {
        expect_byte(&mut from_child, UNSHARED)?;
        idmap::write_maps(pid, ranges)?;
        to_child.write_all(&[MAPPED])?;
        expect_byte(&mut from_child, READY)?;
        // Then pasta's gateway, or why pasta failed, or nothing without it.
        let mut text = String::new();
        from_child.read_to_string(&mut text)?;
        let text = text.trim();
        Ok(match text.parse() {
            Ok(gateway) => (Some(gateway), None),
            Err(_) => (None, (!text.is_empty()).then(|| text.to_string())),
        })
    })();
    let (host_gateway, outbound_error) = match result {
        Ok(outbound) => outbound,
        Err(err) => {
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            let _ = child.wait();
            let detail = stderr.trim();
            return Err(if detail.is_empty() {
                err
            } else {
                err.context(detail.to_string())
            })
            .context("creating the user namespace");
        }
    };
    Ok(HolderRecord {
        pid,
        start_time: crate::sys::proc::live_start_time(pid)
            .context("the holder exited right after starting")?,
        single_mapping: ranges.is_none(),
        subnet,
        host_gateway,
        outbound_error,
    })
}

fn expect_byte(from: &mut impl Read, want: u8) -> Result<()> {
    let mut b = [0u8];
    from.read_exact(&mut b)
        .context("the holder exited while being set up")?;
    if b[0] != want {
        bail!("the holder sent an unexpected reply");
    }
    Ok(())
}

/// `minipod __holder`: the holder's own side.
pub fn holder_main(subnet: &str) -> Result<()> {
    // It lives until killed: a descriptor it inherited (the flock a test
    // runner holds while running `minipod`, a jobserver's pipe) would be
    // held as long, and it needs none but stdio.
    crate::sys::fs::close_from(3)?;
    nix::unistd::setsid().context("setsid")?;
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER).context(
        "unshare(CLONE_NEWUSER) failed: unprivileged user namespaces must be enabled \
         (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1)",
    )?;
    let mut stdout = std::io::stdout();
    stdout.write_all(&[UNSHARED])?;
    stdout.flush()?;
    expect_byte(&mut std::io::stdin(), MAPPED)?;
    if nix::unistd::getuid().as_raw() != 0 {
        bail!("uid 0 is not mapped in the new user namespace");
    }
    // pasta must be started from the host's netns, which we are leaving.
    let pasta = crate::net::pasta::available()
        .map(|p| crate::net::pasta::Launcher::fork(&p))
        .transpose()?;
    uplink_network(subnet)?;
    let turned_off = std::env::var_os("MINIPOD_NO_PASTA").is_some_and(|v| !v.is_empty());
    let outbound = pasta.map(outbound);
    stdout.write_all(&[READY])?;
    match outbound {
        Some(Ok(gateway)) => write!(stdout, "{gateway}")?,
        Some(Err(e)) => write!(stdout, "starting pasta failed: {e:#}")?,
        None if turned_off => write!(stdout, "MINIPOD_NO_PASTA was set when the holder started")?,
        None => {}
    }
    stdout.flush()?;
    // Let go of the parent's pipes and directory: whoever waits for our
    // output must not wait for us.
    crate::sys::fs::stdio_to_null()?;
    std::env::set_current_dir("/")?;
    // pasta, our child, is reaped by the kernel should it exit.
    // SAFETY: setting a disposition; no handler runs.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    loop {
        nix::unistd::pause();
    }
}

/// The uplink netns the holder owns: `lo` up and the bridge every pod's
/// veth joins, with the gateway address.
fn uplink_network(subnet: &str) -> Result<()> {
    use crate::net::{netlink::Netlink, setup};
    nix::sched::unshare(CloneFlags::CLONE_NEWNET)
        .context("creating the uplink network namespace")?;
    let subnet = crate::net::ipam::Subnet::parse(subnet)?;
    let mut nl = Netlink::open()?;
    setup::loopback_up(&mut nl)?;
    setup::ensure_bridge(
        &mut nl,
        setup::BRIDGE,
        subnet.gateway_net(),
        setup::DEFAULT_MTU,
    )?;
    Ok(())
}

/// Starts pasta on the uplink netns and masquerades the pods' traffic onto
/// its tap. Returns pasta's gateway.
fn outbound(pasta: crate::net::pasta::Launcher) -> Result<std::net::Ipv4Addr> {
    let routed = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .context("enabling forwarding in the uplink network namespace")
        .and_then(|()| crate::net::nftables::masquerade_out_of(crate::net::pasta::IFNAME));
    match routed {
        Ok(()) => pasta.start(),
        Err(e) => {
            pasta.abandon();
            Err(e)
        }
    }
}

fn thread_count() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The run root is trusted with the holder's pid and the pods' sockets:
/// it must be ours, not a symlink (the /tmp fallback may already exist,
/// made by somebody else).
fn check_owned(run: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(run)
        .with_context(|| format!("reading the run root {}", run.display()))?;
    let uid = nix::unistd::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid {
        bail!(
            "the run root {} is not a directory of yours (uid {uid}) but {}; it would hold your \
             pods' sockets and state. Set XDG_RUNTIME_DIR, or pass --runroot DIR",
            run.display(),
            if meta.is_dir() {
                format!("owned by uid {}", meta.uid())
            } else {
                "a symlink or file".to_string()
            }
        );
    }
    Ok(())
}
