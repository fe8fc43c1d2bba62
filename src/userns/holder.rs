//! Creating, finding and joining the holder process.
//!
//! The holder is `minipod __holder`: it unshares a user namespace, waits for
//! its parent to write the uid/gid maps, then waits in its own session until
//! it is no longer needed. Commands that work on images or pods join its
//! user namespace with `setns` while they are still single-threaded.
//!
//! Its life: a command that found it (`ensure`) holds `holder-use.lock`
//! shared until it exits; a pod's processes hold the pod's lock. The holder
//! leaves when its run root is removed (at once), or when no pod and no
//! command has used it for `MINIPOD_HOLDER_IDLE_SECONDS` (default 300):
//! then it takes `holder.lock` (so no command is finding it) and the use
//! lock exclusively, removes `holder.pid`, kills pasta and exits, so it
//! never vanishes under a command that uses it.
//!
//! It also runs the pods' DNS server (`net::dns`, two threads started once
//! the bridge exists and pasta is forked), and publishes NodePort and
//! LoadBalancer Services on the host (`net::node_ports`, requests on
//! `holder.sock`); it stays while it publishes one. Both end with it.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
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
    /// The cluster domain its DNS server answers for (on the bridge's
    /// gateway, port 53); none from a holder of an older minipod, which
    /// has no DNS server.
    #[serde(default)]
    pub cluster_domain: Option<String>,
}

fn default_subnet() -> String {
    crate::net::ipam::DEFAULT_SUBNET.to_string()
}

/// The protocol on the holder's stdin/stdout while it is being set up.
const UNSHARED: u8 = b'u';
const MAPPED: u8 = b'm';
const READY: u8 = b'r';

/// Finds the live holder of this run root, or starts one. The process then
/// holds the holder in use until it exits (or execs: `keep_in_use`).
pub fn ensure(roots: &Roots) -> Result<HolderRecord> {
    // It holds sockets and state of the user's pods.
    crate::sys::fs::create_private_dir(&roots.run)?;
    check_owned(&roots.run)?;
    let _lock = FileLock::acquire(&roots.holder_lock(), Mode::Exclusive)?;
    let record = match read_live(roots) {
        Some(record) => record,
        None => {
            let record = spawn(roots)?;
            let json = serde_json::to_vec(&record)?;
            atomic_write(&roots.holder_pid(), &json)?;
            record
        }
    };
    // Under holder.lock: the holder cannot be leaving now.
    if IN_USE.get().is_none() {
        let _ = IN_USE.set(FileLock::acquire(&roots.holder_use_lock(), Mode::Shared)?);
    }
    Ok(record)
}

/// This process's shared hold on `holder-use.lock`, for its whole life.
static IN_USE: std::sync::OnceLock<FileLock> = std::sync::OnceLock::new();

/// Keeps this process's hold on the holder across an exec (`minipod
/// unshare`: the command it runs uses the user namespace as long as it
/// lives).
pub fn keep_in_use() -> Result<()> {
    let Some(lock) = IN_USE.get() else {
        bail!("internal error: the holder is not in use by this process");
    };
    // SAFETY: clears FD_CLOEXEC on a descriptor we own.
    if unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("keeping the holder in use");
    }
    Ok(())
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

/// Stops the holder of this run root, if one runs, and returns once it is
/// gone (its pasta with it: PDEATHSIG) and its record removed.
pub fn stop(roots: &Roots) -> Result<()> {
    let _lock = FileLock::acquire(&roots.holder_lock(), Mode::Exclusive)?;
    if let Some(record) = read_live(roots)
        && let Some(pidfd) = crate::sys::proc::pidfd_of(record.pid, record.start_time)
    {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(record.pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .with_context(|| format!("stopping the holder {}", record.pid))?;
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        while let Err(nix::errno::Errno::EINTR) =
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE)
        {}
    }
    match std::fs::remove_file(roots.holder_pid()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", roots.holder_pid().display()))
        }
        _ => Ok(()),
    }
}

fn spawn(roots: &Roots) -> Result<HolderRecord> {
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
    // MINIPOD_CLUSTER_DOMAIN picks the domain its DNS server answers for.
    let cluster_domain = crate::net::dns::cluster_domain_from_env()?;
    let mut child = Command::new("/proc/self/exe")
        .arg("__holder")
        .arg(&subnet)
        .arg(&roots.run)
        .env(crate::net::dns::DOMAIN_VAR, &cluster_domain)
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
        cluster_domain: Some(cluster_domain),
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
pub fn holder_main(subnet: &str, run: &Path) -> Result<()> {
    // It lives long: a descriptor it inherited (the flock a test runner
    // holds while running `minipod`, a jobserver's pipe) would be held as
    // long, and it needs none but stdio.
    crate::sys::fs::close_from(3)?;
    // The host's resolvers, which its DNS server forwards outside names to.
    let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let cluster_domain = crate::net::dns::cluster_domain_from_env()?;
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
    // A resolver on the host's loopback is reached through pasta.
    let forward_dns = crate::net::dns::first_is_loopback(&host_resolv_conf);
    let pasta = crate::net::pasta::available()
        .map(|p| crate::net::pasta::Launcher::fork(&p, forward_dns))
        .transpose()?;
    let pasta_pid = pasta.as_ref().map(crate::net::pasta::Launcher::pid);
    // The one thread that stays in the host's netns: it binds the host
    // ports of NodePort and LoadBalancer Services.
    let binder = crate::net::node_ports::Binder::start()?;
    uplink_network(subnet)?;
    let turned_off = std::env::var_os("MINIPOD_NO_PASTA").is_some_and(|v| !v.is_empty());
    let outbound = pasta.map(outbound);
    // Threads from here on: pasta is forked.
    let routed = matches!(outbound, Some(Ok(_)));
    crate::net::dns::start(crate::net::dns::Config {
        listen: crate::net::ipam::Subnet::parse(subnet)?.gateway(),
        domain: cluster_domain,
        run_root: run.to_path_buf(),
        upstreams: crate::net::dns::upstreams(
            &host_resolv_conf,
            forward_dns.then_some(crate::net::pasta::DNS_FORWARD.into()),
            routed,
        ),
    })?;
    let roots = Roots {
        data: PathBuf::new(),
        run: run.to_path_buf(),
    };
    let publisher = std::sync::Arc::new(crate::net::node_ports::Publisher::new(binder));
    let socket_path = roots.holder_socket();
    let _ = std::fs::remove_file(&socket_path);
    let socket = std::os::unix::net::UnixListener::bind(&socket_path)
        .with_context(|| format!("listening on {}", socket_path.display()))?;
    crate::net::node_ports::serve(socket, publisher.clone())?;
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
    serve_until_unneeded(&roots, idle_limit()?, &publisher)?;
    if let Some(pasta) = pasta_pid {
        let _ = nix::sys::signal::kill(pasta, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pasta, None);
    }
    Ok(())
}

/// How long the holder stays with no pod and no command using it.
fn idle_limit() -> Result<Duration> {
    const VAR: &str = "MINIPOD_HOLDER_IDLE_SECONDS";
    match std::env::var(VAR) {
        Err(_) => Ok(Duration::from_secs(300)),
        Ok(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| anyhow!("{VAR}={text:?}: give a number of seconds ≥ 0")),
    }
}

/// How often an idle holder looks whether it is still used: often enough
/// to leave within a quarter of its limit after the last use, at most
/// every 30 s.
fn check_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30))
}

/// Waits until the run root is removed, or until nothing has used the
/// holder for `idle` and it could leave (then `holder.pid` is gone and the
/// locks are ours until we exit).
fn serve_until_unneeded(
    roots: &Roots,
    idle: Duration,
    publisher: &crate::net::node_ports::Publisher,
) -> Result<()> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let watch =
        Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).context("inotify_init")?;
    // Our socket pins the run root's dentry while it is bound, so its
    // removal (`rm -rf`) shows as the socket's deletion first: the
    // directory's own DELETE_SELF would come only once the socket closed.
    watch
        .add_watch(
            &roots.run,
            AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_UNMOUNT
                | AddWatchFlags::IN_DELETE,
        )
        .with_context(|| format!("watching the run root {}", roots.run.display()))?;
    let socket_name = roots.holder_socket();
    let socket_name = socket_name.file_name();
    let run_root_gone =
        |watch: &Inotify| {
            watch.read_events().unwrap_or_default().iter().any(|e| {
                !e.mask.contains(AddWatchFlags::IN_DELETE) || e.name.as_deref() == socket_name
            })
        };
    let mut last_used = Instant::now();
    loop {
        let timeout = nix::poll::PollTimeout::try_from(check_interval(idle))
            .unwrap_or(nix::poll::PollTimeout::MAX);
        let mut fds = [nix::poll::PollFd::new(
            watch.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, timeout) {
            // Removed, moved away or unmounted: nobody can find us again.
            Ok(n) if n > 0 && run_root_gone(&watch) => return Ok(()),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("waiting in the holder"),
        }
        if in_use(roots) || publisher.publishing() {
            last_used = Instant::now();
        } else if last_used.elapsed() >= idle {
            match leave(roots)? {
                Some(locks) => {
                    // Held until we exit: a command finding the holder
                    // waits for holder.lock, then starts a new one.
                    std::mem::forget(locks);
                    return Ok(());
                }
                None => last_used = Instant::now(),
            }
        }
    }
}

/// Whether a pod runs (its lock is held) or a command uses the holder.
fn in_use(roots: &Roots) -> bool {
    FileLock::would_block(&roots.holder_use_lock(), Mode::Exclusive) || any_pod_running(roots)
}

fn any_pod_running(roots: &Roots) -> bool {
    let Ok(dir) = std::fs::read_dir(roots.pod_locks()) else {
        return false;
    };
    dir.flatten()
        .any(|e| FileLock::would_block(&e.path(), Mode::Shared))
}

/// Takes holder.lock and the use lock exclusively, if nobody holds them,
/// and, if no pod runs, removes our record. Returns the locks then.
fn leave(roots: &Roots) -> Result<Option<(FileLock, FileLock)>> {
    let Some(finding) = FileLock::try_acquire(&roots.holder_lock(), Mode::Exclusive)? else {
        return Ok(None);
    };
    let Some(used) = FileLock::try_acquire(&roots.holder_use_lock(), Mode::Exclusive)? else {
        return Ok(None);
    };
    if any_pod_running(roots) {
        return Ok(None);
    }
    if read_live(roots).is_some_and(|r| r.pid == std::process::id() as i32) {
        std::fs::remove_file(roots.holder_pid())
            .with_context(|| format!("removing {}", roots.holder_pid().display()))?;
        let _ = std::fs::remove_file(roots.holder_socket());
    }
    Ok(Some((finding, used)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_holder_looks_four_times_per_limit_within_bounds() {
        assert_eq!(
            check_interval(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            check_interval(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
        assert_eq!(check_interval(Duration::ZERO), Duration::from_millis(50));
    }
}
