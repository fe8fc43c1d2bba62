//! A pod's supervisor (`minipod-supervisor POD PLAN`, conmon's role): it
//! leases the pod's address and binds its hostPorts, starts its pause
//! process, runs its init containers in order, starts its app containers (in
//! parallel), supervises them (exits, restart policy with kubelet's backoff,
//! signals, the control socket), stops them, and releases everything.
//!
//! `minipod run` works the pod out (runtime::launch) and hands this process
//! a finished `SupervisorPlan`: in the foreground by exec'ing it, with `-d`
//! as a child in its own session. This file and what it calls are all the
//! supervisor binary links, so keep the YAML schema, the image store and
//! anything heavy out of it. `Pod` owns every resource it created and
//! releases it in `Drop`, so a failure half-way through creating the pod
//! leaves nothing behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::config::ContainerConfig;
use super::etc_files;
use super::logs::LogWriter;
use super::report::{self, Report};
use super::state::{ContainerState, ContainerStatus, Phase, PodPaths, PodState};
use crate::net::ipam::{Ipam, Subnet};
use crate::net::{portfwd, setup};
use crate::paths::Roots;
use crate::spec::RestartPolicy;
use crate::sys::fs::atomic_write;
use crate::sys::lock::FileLock;
use crate::sys::time::now_rfc3339;

/// The supervisor's inherited descriptors: where it reports the start to
/// `run -d` (detached only), the pod's lock (held for the pod's life), and
/// the `minipod` binary it starts the pause and containers from.
pub const FD_REPORT: i32 = 3;
pub const FD_POD_LOCK: i32 = 4;
pub const FD_MINIPOD: i32 = 5;

/// kubelet's crash-loop backoff: doubles from the initial delay up to this,
/// and starts over once a container ran this long.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// What `minipod run` hands the supervisor: the pod worked out, its files
/// and container configs written.
/// Changes whenever `SupervisorPlan` does: `minipod` and
/// `minipod-supervisor` must come from the same build.
pub const PLAN_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
pub struct SupervisorPlan {
    pub version: u32,
    pub roots: Roots,
    pub name: String,
    /// Started by `run -d`: no terminal output; report the start on fd 3.
    pub detached: bool,
    /// `--log-level info` or finer: say when containers exit and restart.
    pub verbose: bool,
    /// End the pod when this container exits, with its exit code.
    pub exit_code_from: Option<String>,
    /// The first restart delay (kubelet: 10 s).
    pub initial_backoff: Duration,
    pub termination_grace: Duration,
    pub restart_policy: RestartPolicy,
    pub hostname: String,
    pub host_aliases: Vec<(String, Vec<String>)>,
    pub host_network: bool,
    /// `minipod __pause …` but for the network's arguments.
    pub pause_args: Vec<String>,
    pub ports: Vec<portfwd::Published>,
    pub log_max_bytes: u64,
    pub state: PodState,
    /// Init containers (and sidecars) in order, then app containers.
    pub slots: Vec<SlotPlan>,
}

#[derive(Serialize, Deserialize)]
pub struct SlotPlan {
    pub role: Role,
    /// What `__container` gets, written to `config_path` once the pause runs.
    pub config: ContainerConfig,
    pub config_path: PathBuf,
    pub stop_signal: i32,
    pub log: PathBuf,
    /// The container's name column on the terminal.
    pub prefix: String,
    pub status: ContainerStatus,
}

/// The supervisor's `main`. Errors before the pod started go back to
/// `run -d` on fd 3; in the foreground they are printed.
pub fn main() -> ExitCode {
    // SAFETY: restores the default disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let plan = match args.get(2) {
        Some(file) => read_plan(&PathBuf::from(file)),
        None => Err(anyhow!(
            "minipod-supervisor is started by `minipod run`, not by hand"
        )),
    };
    // The report pipe, the pod's lock, the binary and whatever `run` was
    // started with are ours alone: the pause and the links must not inherit
    // them (`run -d` would wait for them, the lock would outlive us).
    if let Err(e) = crate::sys::fs::close_on_exec_from(FD_REPORT) {
        eprintln!("minipod-supervisor: {e:#}");
        return ExitCode::from(crate::EXIT_MINIPOD_ERROR);
    }
    let result = plan.and_then(supervise);
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            // Tell `run -d`, if it is still listening (no-op once reported).
            let line = report::error_line(&format!("{e:#}"));
            // SAFETY: fd 3 is the report pipe, or /dev/null (in the
            // foreground, and once the start was reported), never another
            // file.
            unsafe { libc::write(FD_REPORT, line.as_ptr().cast(), line.len()) };
            eprintln!("Error: {e:#}");
            ExitCode::from(crate::EXIT_MINIPOD_ERROR)
        }
    }
}

/// The plan `minipod run` wrote. One that does not parse is most likely
/// from another build: its version says so.
fn read_plan(file: &std::path::Path) -> Result<SupervisorPlan> {
    #[derive(Deserialize)]
    struct Version {
        version: Option<u32>,
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let plan = serde_json::from_slice::<SupervisorPlan>(&bytes);
    let given = match &plan {
        Ok(p) => Some(p.version),
        Err(_) => serde_json::from_slice::<Version>(&bytes)
            .ok()
            .and_then(|v| v.version),
    };
    if given != Some(PLAN_VERSION) {
        bail!(
            "minipod-supervisor does not come from the same build as minipod (plan version {} \
             here, {} given); install both binaries of one build side by side",
            PLAN_VERSION,
            given.map_or("none".to_string(), |v| v.to_string())
        );
    }
    plan.with_context(|| format!("{} is not a valid plan", file.display()))
}

/// The signals the supervisor handles itself; blocked in every thread and
/// read from a signalfd.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Runs the pod to its end and returns `run`'s exit code. Runs on the main
/// thread before any other thread exists (threads inherit the signal mask).
fn supervise(plan: SupervisorPlan) -> Result<i32> {
    // One malloc arena for every thread (output pumps, hostPort relays):
    // they allocate little, and an arena each costs resident pages per pod.
    // SAFETY: mallopt before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // SAFETY: `minipod run` hands the pod's lock over as this descriptor.
    let lock = unsafe { FileLock::from_inherited(FD_POD_LOCK) };
    // From here on the pod's files are ours to remove (Pod's Drop).
    let mut pod = Pod::new(plan, lock)?;
    let signals = handled_signals();
    signals.thread_block().context("blocking signals")?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("creating a signalfd")?;
    // Orphans of our children come back to us to be reaped.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    let net = pod.plan_network()?;
    pod.start_pause(net)?;
    pod.supervise(&sigfd)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Role {
    Init,
    Sidecar,
    App,
}

/// One container of the pod across its restarts.
struct Slot {
    role: Role,
    config: ContainerConfig,
    config_path: PathBuf,
    stop_signal: Signal,
    log: Arc<Mutex<LogWriter>>,
    prefix: String,
    /// The current incarnation, while it runs.
    running: Option<Running>,
    status: ContainerStatus,
    /// When a restart is due (crash-loop backoff).
    restart_at: Option<Instant>,
    backoff: Duration,
    /// We stopped it: its exit is not a failure of its own.
    stopped_by_us: bool,
}

struct Running {
    /// The `__container` link process (our child); its exit status is the
    /// container's.
    link: Child,
    /// The container's main process.
    pid: i32,
    started: Instant,
    started_at: String,
}

/// The parts of the plan the supervise loop keeps consulting.
struct Policy {
    exit_code_from: Option<String>,
    initial_backoff: Duration,
    termination_grace: Duration,
    restart_policy: RestartPolicy,
}

struct Pod {
    name: String,
    roots: Roots,
    paths: PodPaths,
    /// Held for the pod's whole life: a second `run` of the same name fails.
    lock: Option<FileLock>,
    detached: bool,
    /// `--log-level info` in the foreground: container exits and restarts
    /// are told on the terminal.
    tell_exits: bool,
    policy: Policy,
    hostname: String,
    host_aliases: Vec<(String, Vec<String>)>,
    host_network: bool,
    pause_args: Vec<String>,
    ports: Vec<portfwd::Published>,
    /// The spawned `__pause` (the link, with a shared PID namespace).
    pause: Option<Child>,
    /// The process whose namespaces containers join.
    pause_pid: i32,
    slots: Vec<Slot>,
    outputs: Vec<std::thread::JoinHandle<()>>,
    control: Option<UnixListener>,
    state: PodState,
    /// Exit codes in the order containers ended, for `run`'s own code.
    exits: Vec<(usize, i32)>,
    /// Set when the pod's start failed for good (an init container).
    failure: Option<(String, i32)>,
    /// Told the `run -d` parent that the pod is up.
    reported: bool,
    /// The pod's lease, released with the pod.
    lease: Option<Ipam>,
}

impl Pod {
    fn new(plan: SupervisorPlan, lock: FileLock) -> Result<Pod> {
        let paths = PodPaths::new(&plan.roots, &plan.name);
        let mut state = plan.state;
        state.supervisor_pid = std::process::id() as i32;
        let mut pod = Pod {
            name: plan.name,
            roots: plan.roots,
            paths: paths.clone(),
            lock: Some(lock),
            detached: plan.detached,
            tell_exits: plan.verbose && !plan.detached,
            policy: Policy {
                exit_code_from: plan.exit_code_from,
                initial_backoff: plan.initial_backoff,
                termination_grace: plan.termination_grace,
                restart_policy: plan.restart_policy,
            },
            hostname: plan.hostname,
            host_aliases: plan.host_aliases,
            host_network: plan.host_network,
            pause_args: plan.pause_args,
            ports: plan.ports,
            pause: None,
            pause_pid: 0,
            slots: Vec::new(),
            outputs: Vec::new(),
            control: None,
            state,
            exits: Vec::new(),
            failure: None,
            reported: false,
            lease: None,
        };
        for s in plan.slots {
            let log = LogWriter::create(&s.log, plan.log_max_bytes)?;
            pod.slots.push(Slot {
                role: s.role,
                config: s.config,
                config_path: s.config_path,
                stop_signal: Signal::try_from(s.stop_signal).unwrap_or(Signal::SIGTERM),
                log: Arc::new(Mutex::new(log)),
                prefix: s.prefix,
                running: None,
                status: s.status,
                restart_at: None,
                backoff: plan.initial_backoff,
                stopped_by_us: false,
            });
        }
        if let Some(dir) = paths.control_socket().parent() {
            crate::userns::holder::create_private_dir(dir)?;
        }
        let _ = std::fs::remove_file(paths.control_socket());
        let listener = UnixListener::bind(paths.control_socket())
            .context("creating the pod's control socket")?;
        listener.set_nonblocking(true)?;
        pod.control = Some(listener);
        pod.save_state();
        Ok(pod)
    }

    fn start_pause(&mut self, net: Option<PodNet>) -> Result<()> {
        let mut cmd = minipod_command();
        cmd.args(&self.pause_args)
            .arg("--parent")
            .arg(std::process::id().to_string());
        if let Some(n) = &net {
            cmd.arg("--ip")
                .arg(format!("{}/{}", n.ip, n.subnet.prefix()))
                .arg("--gateway")
                .arg(n.subnet.gateway().to_string())
                .arg("--uplink-pid")
                .arg(n.holder_pid.to_string())
                .arg("--ifname")
                // Unique per incarnation: the kernel removes a stopped pod's
                // veth a moment after its netns dies, and a pod run again at
                // once must not collide with it.
                .arg(setup::host_ifname(&format!(
                    "{}/{}",
                    self.name,
                    std::process::id()
                )));
        }
        // hostPorts: the pause hands out sockets of the pod's netns on fd 3.
        let serve = net.as_ref().is_some_and(|n| !n.listeners.is_empty());
        let mut ours = None;
        if serve {
            let (mine, theirs) = std::os::unix::net::UnixStream::pair()?;
            cmd.arg("--serve-sockets");
            let fd = theirs.as_raw_fd();
            crate::sys::fs::pass_as_fd3(&mut cmd, fd);
            ours = Some((mine, theirs));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("starting the pod's pause process")?;
        drop(cmd);
        let ours = ours.map(|(mine, theirs)| {
            drop(theirs);
            mine
        });
        let mut text = String::new();
        let mut stdout = child.stdout.take().expect("piped");
        let _ = stdout.read_to_string(&mut text);
        self.pause = Some(child);
        match report::parse(&text) {
            Report {
                error: Some(msg), ..
            } => bail!("pod {}: creating its namespaces failed: {msg}", self.name),
            Report { pid: Some(pid), .. } => {
                self.pause_pid = pid;
                self.state.pause_pid = self.pause_pid;
                if let (Some(n), Some(stream)) = (net, ours) {
                    portfwd::serve(
                        n.listeners,
                        Arc::new(portfwd::PodSockets::new(stream)),
                        n.ip,
                    );
                }
                // Each container's config names the pause: written now, once.
                for slot in &mut self.slots {
                    slot.config.pause_pid = self.pause_pid;
                    slot.config.supervisor_pid = std::process::id() as i32;
                    atomic_write(&slot.config_path, &serde_json::to_vec_pretty(&slot.config)?)?;
                }
                Ok(())
            }
            _ => bail!("pod {}: the pause process exited during setup", self.name),
        }
    }

    /// Leases the pod an address and binds its hostPorts (a busy one fails
    /// here, before anything of the pod starts). The pause connects the pod
    /// to the bridge (`start_pause`).
    fn plan_network(&mut self) -> Result<Option<PodNet>> {
        if self.host_network {
            return Ok(None);
        }
        let listeners = portfwd::bind(&self.ports)?;
        let holder = crate::userns::holder::read_live(&self.roots)
            .ok_or_else(|| anyhow!("minipod's user-namespace holder exited; run the pod again"))?;
        let subnet = Subnet::parse(&holder.subnet)?;
        let host_gateway = holder.host_gateway.map(|g| g.to_string());
        // Once per holder: say why a pod cannot reach beyond this machine.
        let noticed = self
            .roots
            .run
            .join(format!("outbound-notice-{}", holder.pid));
        if host_gateway.is_none() && !self.detached && std::fs::File::create_new(&noticed).is_ok() {
            let why = match &holder.outbound_error {
                Some(e) => e.clone(),
                None => "pasta is not installed (Debian package passt) or /dev/net/tun is not \
                         open to you (chmod 0666)"
                    .to_string(),
            };
            eprintln!(
                "note: pods have no outbound route (they reach each other, the gateway {} and \
                 hostPorts): {why}. Once that is mended, with no pod running, `kill {}` (minipod's \
                 holder): the next command starts it again, with pasta",
                subnet.gateway(),
                holder.pid
            );
        }
        let ipam = Ipam::new(&self.roots.run, subnet);
        let ip = ipam.allocate(&self.name, std::process::id() as i32)?;
        self.lease = Some(ipam);
        self.state.pod_ip = Some(ip.to_string());
        std::fs::write(
            self.paths.dir.join("etc/hosts"),
            etc_files::hosts(
                &self.hostname,
                Some(&ip.to_string()),
                host_gateway.as_deref(),
                &self.host_aliases,
            ),
        )?;
        Ok(Some(PodNet {
            ip,
            subnet,
            holder_pid: holder.pid,
            listeners,
        }))
    }

    /// Spawns one container's `__container` and its output threads.
    /// Returns the link and the read end of its sync pipe.
    fn spawn_container(&mut self, i: usize) -> Result<(Child, std::io::PipeReader)> {
        let slot = &mut self.slots[i];
        if slot.status.restart_count > 0
            || matches!(slot.status.state, ContainerState::Terminated { .. })
        {
            // A restarted container gets a fresh writable layer, as in Kubernetes.
            let dir = slot
                .config_path
                .parent()
                .expect("container dir")
                .to_path_buf();
            for d in ["upper", "work"] {
                let _ = std::fs::remove_dir_all(dir.join(d));
                std::fs::create_dir_all(dir.join(d))?;
            }
        }
        let (out_r, out_w) = std::io::pipe()?;
        let (err_r, err_w) = std::io::pipe()?;
        let (sync_r, sync_w) = std::io::pipe()?;
        let mut cmd = minipod_command();
        cmd.arg("__container").arg(&slot.config_path);
        cmd.stdin(Stdio::null()).stdout(out_w).stderr(err_w);
        crate::sys::fs::pass_as_fd3(&mut cmd, sync_w.as_raw_fd());
        let link = cmd
            .spawn()
            .with_context(|| format!("starting container {}", slot.status.name))?;
        drop(sync_w);
        drop(cmd);
        let terminal = !self.detached;
        for (stream, from) in [("stdout", out_r), ("stderr", err_r)] {
            let log = slot.log.clone();
            let pumping = pump(from, stream, slot.prefix.clone(), log, terminal);
            self.outputs.push(pumping);
        }
        Ok((link, sync_r))
    }

    /// Starts the given slots: spawns each `__container` first, then
    /// collects their set-up results, so they set themselves up in parallel.
    fn start(&mut self, which: &[usize]) -> Result<()> {
        let mut pending = Vec::new();
        for &i in which {
            match self.spawn_container(i) {
                Ok((link, sync_r)) => pending.push((i, link, sync_r)),
                Err(e) => {
                    // Those already started are in no slot yet: stop them
                    // here (their containers die with their links), or
                    // nothing would, and their output threads would keep
                    // the pod's end waiting.
                    for (_, mut link, _) in pending {
                        let _ = link.kill();
                        let _ = link.wait();
                    }
                    return Err(e);
                }
            }
        }
        let mut failures = Vec::new();
        for (i, link, mut sync_r) in pending {
            let mut text = String::new();
            let _ = sync_r.read_to_string(&mut text);
            let Report { pid, error, .. } = report::parse(&text);
            let slot = &mut self.slots[i];
            let started_at = now_rfc3339();
            slot.running = Some(Running {
                link,
                pid: pid.unwrap_or(0),
                started: Instant::now(),
                started_at: started_at.clone(),
            });
            slot.stopped_by_us = false;
            slot.status.pid = pid.unwrap_or(0);
            slot.status.state = ContainerState::Running { started_at };
            match (pid, error) {
                (_, Some(msg)) => failures.push(msg),
                (None, None) => failures.push(format!(
                    "container {}: setup failed without a message",
                    slot.status.name
                )),
                _ => {}
            }
        }
        self.save_state();
        if !failures.is_empty() {
            bail!("pod {}: {}", self.name, failures.join("; "));
        }
        Ok(())
    }

    /// Records the pod's state for `ps`, `inspect` and `wait`.
    fn save_state(&mut self) {
        let mut init = Vec::new();
        let mut app = Vec::new();
        for s in &self.slots {
            match s.role {
                Role::App => app.push(s.status.clone()),
                _ => init.push(s.status.clone()),
            }
        }
        self.state.init_containers = init;
        self.state.containers = app;
        if let Ok(json) = serde_json::to_vec_pretty(&self.state)
            && let Err(e) = atomic_write(&self.paths.state(), &json)
        {
            eprintln!(
                "minipod: warning: pod {}: saving its state: {e:#}",
                self.name
            );
        }
    }

    /// Reaps exits and handles signals, restarts and the control socket
    /// until the pod is done. Returns `run`'s exit code.
    fn supervise(&mut self, sigfd: &SignalFd) -> Result<i32> {
        let mut stop_deadline: Option<Instant> = None;
        let mut stop_grace = self.policy.termination_grace;
        self.advance()?;
        loop {
            self.reap();
            if stop_deadline.is_none() && self.should_stop() {
                stop_deadline = Some(self.begin_stop(stop_grace));
            }
            if let Some(deadline) = stop_deadline {
                self.continue_stop(deadline);
                if self.slots.iter().all(|s| s.running.is_none()) {
                    break;
                }
            } else if let Err(e) = self.advance() {
                self.fail(format!("{e:#}"), 125);
                continue;
            }
            let timeout = self.next_wakeup(stop_deadline);
            let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            let control_fd = self.control.as_ref().map(|l| l.as_fd());
            let mut all = Vec::from(fds.as_mut_slice());
            if let Some(fd) = control_fd {
                all.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut all, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("waiting for signals"),
            }
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) | Err(_) => {}
                    Ok(sig) => match stop_deadline {
                        None => {
                            if !self.detached {
                                eprintln!(
                                    "minipod: {sig}: stopping pod {} (again to kill it at once)",
                                    self.name
                                );
                            }
                            stop_deadline = Some(self.begin_stop(stop_grace));
                        }
                        Some(_) => {
                            if !self.detached {
                                eprintln!("minipod: killing pod {}", self.name);
                            }
                            stop_deadline = Some(Instant::now());
                        }
                    },
                }
            }
            if let Some(grace) = self.accept_control() {
                stop_grace = grace;
                stop_deadline = Some(match stop_deadline {
                    None => self.begin_stop(grace),
                    Some(d) => d.min(Instant::now() + grace),
                });
            }
        }
        self.reap();
        let code = self.final_code();
        self.state.exit_code = Some(code);
        self.state.finished = Some(now_rfc3339());
        if self.state.phase != Phase::Failed {
            let app_ok = self.slots.iter().filter(|s| s.role == Role::App).all(|s| {
                matches!(
                    s.status.state,
                    ContainerState::Terminated { exit_code: 0, .. }
                )
            });
            self.state.phase = if app_ok && code == 0 {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
        }
        self.save_state();
        if let Some((msg, _)) = self.failure.clone() {
            self.report(Some(&msg));
            if !self.detached {
                eprintln!("minipod: {msg}");
            }
        }
        Ok(code)
    }

    /// Moves the pod forward: next init container, app containers, due
    /// restarts.
    fn advance(&mut self) -> Result<()> {
        // Init containers run one at a time, in order; sidecars stay.
        let mut init_done = true;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            match slot.role {
                Role::App => continue,
                Role::Sidecar => {
                    if slot.running.is_none() && slot.restart_at.is_none() && !slot.ever_ran() {
                        self.start(&[i])?;
                    }
                }
                Role::Init => {
                    let succeeded = matches!(
                        slot.status.state,
                        ContainerState::Terminated { exit_code: 0, .. }
                    );
                    if succeeded {
                        continue;
                    }
                    if slot.running.is_none() && slot.restart_at.is_none() && !slot.ever_ran() {
                        self.start(&[i])?;
                    }
                    init_done = false;
                    break;
                }
            }
        }
        if init_done {
            let fresh: Vec<usize> = (0..self.slots.len())
                .filter(|&i| {
                    self.slots[i].role == Role::App
                        && !self.slots[i].ever_ran()
                        && self.slots[i].running.is_none()
                })
                .collect();
            if !fresh.is_empty() {
                self.start(&fresh)?;
                self.state.phase = Phase::Running;
                self.state.started = Some(now_rfc3339());
                self.save_state();
                self.report(None);
            }
        }
        // Restarts that are due.
        let now = Instant::now();
        let due: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].restart_at.is_some_and(|t| t <= now))
            .collect();
        for i in due {
            self.slots[i].restart_at = None;
            self.slots[i].status.restart_count += 1;
            if self.tell_exits {
                eprintln!(
                    "minipod: restarting container {}",
                    self.slots[i].status.name
                );
            }
            self.start(&[i])?;
        }
        Ok(())
    }

    /// Tells a `run -d` parent how the start went (once).
    fn report(&mut self, error: Option<&str>) {
        if !self.detached || self.reported {
            return;
        }
        self.reported = true;
        let line = match error {
            None => "ok\n".to_string(),
            Some(e) => report::error_line(e),
        };
        // SAFETY: fd 3 is the report pipe `run -d` gave us; borrowed, not closed here.
        let mut f = std::mem::ManuallyDrop::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(FD_REPORT)
        });
        let _ = f.write_all(line.as_bytes());
        // Let the parent see EOF, but keep fd 3 taken (by /dev/null): a
        // later error report writes to fd 3, which must not by then be a
        // log file or socket that reused the number.
        if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
            let _ = crate::sys::fs::redirect_fd(&null, FD_REPORT);
            // SAFETY: sets FD_CLOEXEC on the fd just made: the containers
            // started later must not get it.
            unsafe { libc::fcntl(FD_REPORT, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }

    fn fail(&mut self, message: String, code: i32) {
        if self.failure.is_none() {
            self.state.phase = Phase::Failed;
            self.state.message = Some(message.clone());
            self.failure = Some((message, code));
            self.save_state();
        }
    }

    /// Whether the pod is done running and should be stopped.
    fn should_stop(&self) -> bool {
        if self.failure.is_some() {
            return true;
        }
        if let Some(name) = &self.policy.exit_code_from
            && self
                .slots
                .iter()
                .any(|s| &s.status.name == name && s.has_exited_for_good())
        {
            return true;
        }
        let apps: Vec<&Slot> = self.slots.iter().filter(|s| s.role == Role::App).collect();
        !apps.is_empty() && apps.iter().all(|s| s.ever_ran() && s.has_exited_for_good())
    }

    /// Collects every exited child and applies the restart policy.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let (pid, code) = match status {
                WaitStatus::Exited(pid, code) => (pid, code),
                WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32),
                _ => continue,
            };
            let Some(i) = self.slots.iter().position(|s| {
                s.running
                    .as_ref()
                    .is_some_and(|r| r.link.id() as i32 == pid.as_raw())
            }) else {
                if self
                    .pause
                    .as_ref()
                    .is_some_and(|p| p.id() as i32 == pid.as_raw())
                {
                    self.fail(format!("pod {}: its pause process exited", self.name), 125);
                }
                continue;
            };
            self.container_exited(i, code);
        }
    }

    fn container_exited(&mut self, i: usize, code: i32) {
        let slot = &mut self.slots[i];
        let run = slot.running.take().expect("a running slot");
        let reason = if code == 0 { "Completed" } else { "Error" };
        slot.status.last_state = Some(slot.status.state.clone());
        slot.status.state = ContainerState::Terminated {
            exit_code: code,
            reason: reason.into(),
            started_at: run.started_at,
            finished_at: now_rfc3339(),
        };
        slot.status.pid = 0;
        let name = slot.status.name.clone();
        if self.tell_exits {
            eprintln!("minipod: container {name} exited with code {code}");
        }
        if !(slot.stopped_by_us && slot.role == Role::Sidecar) {
            self.exits.push((i, code));
        }
        let stopping = slot.stopped_by_us;
        let chosen = self.policy.exit_code_from.as_deref() == Some(name.as_str());
        let restart = !stopping
            && !chosen
            && match slot.role {
                Role::Sidecar => true,
                Role::Init | Role::App => match self.policy.restart_policy {
                    RestartPolicy::Always => slot.role == Role::App || code != 0,
                    RestartPolicy::OnFailure => code != 0,
                    RestartPolicy::Never => false,
                },
            };
        if restart {
            // kubelet's backoff: start over after a long run, else double.
            if run.started.elapsed() >= BACKOFF_RESET {
                slot.backoff = self.policy.initial_backoff;
            }
            slot.restart_at = Some(Instant::now() + slot.backoff);
            slot.status.state = ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
            };
            slot.status.last_state = Some(ContainerState::Terminated {
                exit_code: code,
                reason: reason.into(),
                started_at: match &slot.status.last_state {
                    Some(ContainerState::Running { started_at }) => started_at.clone(),
                    _ => String::new(),
                },
                finished_at: now_rfc3339(),
            });
            slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
        } else if slot.role == Role::Init && code != 0 && !stopping {
            let msg = format!(
                "init container {name} failed with exit code {code}; `minipod logs {} {name}` shows its output",
                self.name
            );
            self.fail(msg, code);
        }
        self.save_state();
    }

    /// Sends the app containers their stop signal; sidecars follow once the
    /// apps are gone (`continue_stop`). Returns the deadline after which the
    /// rest are killed.
    fn begin_stop(&mut self, grace: Duration) -> Instant {
        for s in &mut self.slots {
            // A container waiting for its restart stays as it ended.
            if s.restart_at.take().is_some()
                && let Some(last) = s.status.last_state.clone()
            {
                s.status.state = last;
            }
        }
        self.signal_role(|r| r != Role::Sidecar);
        Instant::now() + grace
    }

    fn continue_stop(&mut self, deadline: Instant) {
        if Instant::now() >= deadline {
            self.kill_all();
            return;
        }
        let apps_gone = self
            .slots
            .iter()
            .filter(|s| s.role != Role::Sidecar)
            .all(|s| s.running.is_none());
        if apps_gone {
            // Sidecars stop after the app containers, in reverse order:
            // signal the last one still running.
            if let Some(i) = (0..self.slots.len())
                .rev()
                .find(|&i| self.slots[i].role == Role::Sidecar && self.slots[i].running.is_some())
                && !self.slots[i].stopped_by_us
            {
                self.signal_slot(i);
            }
        }
    }

    fn signal_role(&mut self, which: impl Fn(Role) -> bool) {
        for i in 0..self.slots.len() {
            if which(self.slots[i].role) && self.slots[i].running.is_some() {
                self.signal_slot(i);
            }
        }
    }

    fn signal_slot(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let Some(run) = &slot.running else { return };
        slot.stopped_by_us = true;
        // PID 1 of a namespace only gets signals it handles: one that does
        // not catch the stop signal would just make us wait.
        let sig = if is_pid1(run.pid) && !catches(run.pid, slot.stop_signal) {
            Signal::SIGKILL
        } else {
            slot.stop_signal
        };
        signal_pid(run.pid, sig);
    }

    fn kill_all(&mut self) {
        for s in &mut self.slots {
            s.restart_at = None;
            if let Some(run) = &s.running {
                s.stopped_by_us = true;
                signal_pid(run.pid, Signal::SIGKILL);
                signal_pid(run.link.id() as i32, Signal::SIGKILL);
            }
        }
    }

    fn next_wakeup(&self, stop_deadline: Option<Instant>) -> PollTimeout {
        let mut next: Option<Instant> = stop_deadline;
        for s in &self.slots {
            if let Some(t) = s.restart_at {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        if stop_deadline.is_some() {
            // Sidecars are stopped one after another: look again soon.
            let soon = Instant::now() + Duration::from_millis(50);
            next = Some(next.map_or(soon, |n| n.min(soon)));
        }
        match next {
            None => PollTimeout::NONE,
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    /// Serves one control-socket request, if any: `stop SECONDS`. Returns
    /// the grace period asked for.
    fn accept_control(&mut self) -> Option<Duration> {
        let listener = self.control.as_ref()?;
        let (stream, _) = listener.accept().ok()?;
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).ok()?;
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|s| s.parse::<f64>().ok()),
        ) {
            (Some("stop"), Some(secs)) => {
                let _ = (&stream).write_all(b"ok\n");
                Some(Duration::from_secs_f64(secs.max(0.0)))
            }
            _ => {
                let _ = (&stream).write_all(b"error unknown request\n");
                None
            }
        }
    }

    /// `run`'s exit code: the chosen container's, else the first failure's.
    fn final_code(&self) -> i32 {
        if let Some(name) = &self.policy.exit_code_from
            && let Some(s) = self.slots.iter().find(|s| &s.status.name == name)
            && let ContainerState::Terminated { exit_code, .. } = s.status.state
        {
            return exit_code;
        }
        if let Some((_, code)) = &self.failure {
            return *code;
        }
        self.exits
            .iter()
            .map(|&(_, c)| c)
            .find(|&c| c != 0)
            .unwrap_or(0)
    }
}

impl Slot {
    fn ever_ran(&self) -> bool {
        !matches!(self.status.state, ContainerState::Waiting { ref reason } if reason == "ContainerCreating")
    }

    /// Exited, and no restart is coming.
    fn has_exited_for_good(&self) -> bool {
        self.running.is_none()
            && self.restart_at.is_none()
            && matches!(self.status.state, ContainerState::Terminated { .. })
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Kill whatever still runs, pause last, and wait for all of it.
        self.kill_all();
        for s in &mut self.slots {
            if let Some(run) = &mut s.running {
                let _ = run.link.wait();
            }
            s.running = None;
        }
        if self.pause_pid > 0 {
            signal_pid(self.pause_pid, Signal::SIGKILL);
        }
        if let Some(mut p) = self.pause.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        // Reap anything that was reparented to us.
        while let Ok(s) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
        self.slots.clear();
        for h in self.outputs.drain(..) {
            let _ = h.join();
        }
        if let Some(e) = self.failure.as_ref().map(|f| f.0.clone()) {
            self.report(Some(&e));
        }
        self.control = None;
        let _ = std::fs::remove_file(self.paths.control_socket());
        // The veth went with the pause's netns; the address goes now.
        if let Some(ipam) = self.lease.take()
            && let Err(e) = ipam.release(&self.name)
        {
            eprintln!(
                "minipod: warning: pod {}: releasing its address: {e:#}",
                self.name
            );
        }
        // A detached pod's state stays for `ps -a`, `logs` and `inspect`
        // until `rm`, unless it never started.
        let keep = self.detached && self.reported && self.state.exit_code.is_some();
        if keep {
            remove_runtime_dirs(&self.paths);
        } else if let Err(e) = std::fs::remove_dir_all(&self.paths.dir) {
            eprintln!("minipod: removing {}: {e}", self.paths.dir.display());
        }
        if let Some(lock) = self.lock.take() {
            if keep {
                drop(lock);
            } else {
                lock.release_and_remove(&self.paths.lock);
            }
        }
    }
}

/// The pod's network, decided before its pause starts.
struct PodNet {
    ip: std::net::Ipv4Addr,
    subnet: Subnet,
    holder_pid: i32,
    listeners: Vec<portfwd::Listener>,
}

/// What an exited pod no longer needs: containers' writable layers and the
/// pod's scratch volumes (logs, state and the YAML stay).
fn remove_runtime_dirs(paths: &PodPaths) {
    for d in ["containers", "volumes", "shm"] {
        let _ = std::fs::remove_dir_all(paths.dir.join(d));
    }
}

/// `minipod` itself, for its hidden subcommands `__pause` and
/// `__container`: the binary `minipod run` handed over (FD_MINIPOD), so it
/// is the one that ran even if the file was replaced meanwhile.
fn minipod_command() -> Command {
    let mut cmd = Command::new(format!("/proc/self/fd/{FD_MINIPOD}"));
    cmd.arg0("minipod");
    // Its own process group: Ctrl-C reaches the supervisor, which stops the
    // pod in order, not every process at once.
    cmd.process_group(0);
    cmd
}

/// Signals one process. A pid of 0 (a container whose setup failed before
/// it reported one) must not become kill(0), our whole process group.
pub fn signal_pid(pid: i32, sig: Signal) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// Whether `pid` is PID 1 of its own PID namespace (NSpid's last field).
fn is_pid1(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|ids| ids.split_whitespace().last())
        .is_some_and(|last| last == "1")
}

/// Whether `pid` has a handler for `sig` (SigCgt in /proc/PID/status).
fn catches(pid: i32, sig: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig as i32 - 1)) != 0)
}

/// Copies one output stream of a container, line by line, to its log file
/// and (in the foreground) to the terminal, prefixed with its name.
fn pump(
    from: std::io::PipeReader,
    stream: &'static str,
    prefix: String,
    log: Arc<Mutex<LogWriter>>,
    terminal: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 << 10, from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Ok(mut log) = log.lock() {
                let _ = log.write_line(stream, text);
            }
            if terminal {
                let mut out: Box<dyn Write> = if stream == "stderr" {
                    Box::new(std::io::stderr().lock())
                } else {
                    Box::new(std::io::stdout().lock())
                };
                let _ = out.write_all(prefix.as_bytes());
                let _ = out.write_all(text);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
    })
}
