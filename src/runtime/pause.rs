//! `minipod __pause CONFIG`: the process that holds a pod's namespaces
//! (docs/ARCHITECTURE.md), set up as its `contract::pause::PauseConfig` says.
//!
//! It unshares NET, IPC, UTS and a mount namespace (and PID with
//! `share_pid`), brings up `lo`, sets the hostname, and mounts the pod's
//! tmpfs dirs (/dev/shm, memory emptyDirs, and configMap, secret,
//! downwardAPI and projected volumes, filled) in its mount namespace, which
//! every container copies. Then it execs the pause program (pause/pause.rs,
//! a few kB, no libc), which holds the namespaces until killed and hands
//! out sockets of the pod's netns for hostPorts.
//!
//! With a shared PID namespace the unsharing process forks: the child is PID
//! 1 of the pod and reaps every orphan (`minipod-pause reap`); the parent
//! stays as a link (`minipod-pause link PID`) so that the supervisor's death
//! kills the pod (PDEATHSIG chains to PID 1).
//!
//! Protocol: on stdout, one line `pid <host pid of the namespace holder>` or
//! `error <message>`.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, fork};

use super::contract::pause::{PauseConfig, PauseNetwork, Tmpfs};
use super::contract::report::Line;

pub fn pause_main(args: PauseConfig) -> Result<()> {
    let mut out = std::io::stdout();
    match pause_program().and_then(|program| Ok((setup(&args, &program)?, program))) {
        Ok((pid1, program)) => {
            Line::Pid(pid1.unwrap_or(std::process::id() as i32)).write_to(&mut out)?;
            let _ = crate::sys::fs::stdio_to_null();
            // From here on the pause program holds the namespaces (and
            // serves sockets, and links PID 1 to the supervisor).
            let pid1 = pid1.map(|p| p.to_string());
            let mut argv = match &pid1 {
                Some(pid) => vec!["link", pid.as_str()],
                None => vec!["hold"],
            };
            if args.serve_sockets {
                argv.push("serve");
            }
            let err = exec_program(&program, &argv, &args.pod_dir).unwrap_err();
            // Too late to report: the supervisor sees us exit.
            eprintln!("minipod __pause: {err:#}");
            std::process::exit(crate::EXIT_MINIPOD_ERROR.into());
        }
        Err(e) => {
            Line::Error(&format!("{e:#}")).write_to(&mut out)?;
            std::process::exit(crate::EXIT_MINIPOD_ERROR.into());
        }
    }
}

/// ICMP datagram sockets for every group of the pod, as containerd and
/// podman allow them: a non-root user's `ping` needs no capability then.
/// (The kernel's default, `1 0`, allows nobody; only ids mapped in our
/// user namespace may be named.)
fn allow_ping_sockets() -> Result<()> {
    let map =
        std::fs::read_to_string("/proc/self/gid_map").context("reading /proc/self/gid_map")?;
    let Some((low, high)) = crate::userns::idmap::mapped_span(&map) else {
        return Ok(());
    };
    std::fs::write(
        "/proc/sys/net/ipv4/ping_group_range",
        format!("{low} {high}"),
    )
    .context("setting net.ipv4.ping_group_range in the pod's network namespace")
}

/// Sets up the namespaces. Returns the PID-1 child's host pid when the PID
/// namespace is shared (we are then its link to the supervisor), else None.
fn setup(args: &PauseConfig, program: &OwnedFd) -> Result<Option<i32>> {
    // The pause program exits on it (and, as a link, kills and reaps the
    // pod's PID 1 first).
    crate::sys::proc::told_of_parent_death(args.parent).context("the supervisor exited")?;
    // The pause runs the minipod binary and is visible to containers in a
    // shared PID namespace: keep its /proc/PID/exe out of their reach
    // (CVE-2019-5736).
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE)")?;
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS;
    if !args.host_ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if !args.host_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if args.share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    nix::sched::unshare(flags).context("creating the pod's namespaces")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / private in the pod's mount namespace")?;
    nix::unistd::sethostname(&args.hostname)
        .with_context(|| format!("setting hostname {:?}", args.hostname))?;
    // Connecting the pod to the bridge brings `lo` up too.
    if let Some(network) = &args.network {
        attach(network)?;
    } else if !args.host_network {
        let mut nl = crate::net::netlink::Netlink::open()?;
        crate::net::setup::loopback_up(&mut nl).context("bringing up lo")?;
    }
    if !args.host_network {
        allow_ping_sockets()?;
    }
    // After ping_group_range: the pod's own value wins.
    for (path, value) in &args.sysctls {
        std::fs::write(Path::new("/proc/sys").join(path), value).with_context(|| {
            format!(
                "setting sysctl {} = {value:?} in the pod's namespaces",
                path.replace('/', ".")
            )
        })?;
    }
    for Tmpfs {
        dir,
        size_bytes,
        fs_group,
    } in &args.tmpfs
    {
        let mut data = match fs_group {
            Some(group) => format!("mode=3777,gid={group}"),
            None => String::from("mode=1777"),
        };
        if let Some(size) = size_bytes {
            data.push_str(&format!(",size={size}"));
        }
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .with_context(|| format!("mounting a tmpfs on {}", dir.display()))?;
    }
    for v in &args.config_volumes {
        super::config_volumes::populate(v)?;
    }
    for v in &args.image_volumes {
        let options = v.options().map_err(|e| anyhow::anyhow!("{e}"))?;
        mount(
            Some("overlay"),
            &v.dir,
            Some("overlay"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .with_context(|| format!("mounting an image volume on {}", v.dir.display()))?;
    }
    if !args.share_pid {
        return Ok(None);
    }
    // SAFETY: this process is single-threaded (a fresh exec).
    match unsafe { fork() }.context("forking the pod's PID 1")? {
        ForkResult::Child => {
            // PID 1 of the pod: dies with the link, reaps every orphan. The
            // socket service is the link's.
            if args.serve_sockets {
                // SAFETY: closes our copy of fd 3.
                unsafe { libc::close(3) };
            }
            // Without PDEATHSIG the pod's PID 1 could outlive its link:
            // then it must not run at all.
            if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok() {
                let _ = crate::sys::fs::stdio_to_null();
                let _ = exec_program(program, &["reap"], &args.pod_dir);
            }
            // SAFETY: leave the forked child without running destructors.
            unsafe { libc::_exit(crate::EXIT_MINIPOD_ERROR.into()) }
        }
        ForkResult::Parent { child } => Ok(Some(child.as_raw())),
    }
}

/// Connects the pod's netns (ours, now) to the holder's bridge. The pause
/// does it because it can move between the two netns, both owned by the
/// user namespace; the supervisor, in the host's netns, could not come back.
fn attach(network: &PauseNetwork) -> Result<()> {
    use crate::net::{netlink::Netlink, setup};
    let uplink = network.uplink_pid;
    let own = std::fs::File::open("/proc/thread-self/ns/net").context("opening the pod's netns")?;
    let uplink_ns = std::fs::File::open(format!("/proc/{uplink}/ns/net"))
        .context("opening the holder's network namespace")?;
    let mut nl = Netlink::open_in(std::os::fd::AsFd::as_fd(&uplink_ns))?;
    setup::attach_pod(
        &mut nl,
        &setup::Attachment {
            bridge: setup::BRIDGE,
            host_ifname: &network.ifname,
            pod_netns: std::os::fd::AsFd::as_fd(&own),
            ip: network.ip,
            prefix: network.prefix,
            gateway: network.gateway,
            mtu: setup::DEFAULT_MTU,
        },
    )
    .context("connecting the pod to the bridge")
}

/// The pause program (pause/pause.rs), built by build.rs.
const PAUSE_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/minipod-pause"));

/// The pause program in a sealed memfd: what /proc/<pause>/exe shows
/// cannot be written by anything in the pod (CVE-2019-5736).
pub fn pause_program() -> Result<OwnedFd> {
    crate::sys::fs::sealed_memfd(c"minipod-pause", PAUSE_PROGRAM).context("the pause program")
}

/// Replaces this process with the pause program, with no environment.
/// `serves` (the pod's or the container's directory) ends the command line:
/// the program ignores it; `ps`, and the tests' leak checks, see whose
/// process it is.
pub fn exec_program(
    program: &OwnedFd,
    args: &[&str],
    serves: &Path,
) -> Result<std::convert::Infallible> {
    let mut argv = vec![c"minipod-pause".to_owned()];
    for a in args {
        argv.push(CString::new(*a)?);
    }
    argv.push(CString::new(serves.as_os_str().as_bytes())?);
    let env: [&CStr; 0] = [];
    nix::unistd::fexecve(program, &argv, &env).context("executing the pause program")
}
