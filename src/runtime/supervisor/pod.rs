//! The supervisor's shell: it carries out what `machine` decides. It owns
//! every process and file of the pod it created (pause, links, control
//! socket, lease, state) and releases them in `Drop`, so a failure half-way
//! through creating the pod leaves nothing behind.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::console::{Console, Wanted};
use super::eviction;
use super::log;
use super::machine::{Action, Event, Failure, Machine, Policy, ProbeKind, Role};
use super::output::pump;
use super::prober::{ExecTarget, HookKind, Prober, Target, Verdict};
use crate::net::ipam::Subnet;
use crate::net::pod_network::{PodNetwork, Uplink};
use crate::net::portfwd;
use crate::paths::Roots;
use crate::runtime::contract::attach;
use crate::runtime::contract::config_memfd;
use crate::runtime::contract::container::ContainerConfig;
use crate::runtime::contract::fds::{FD_CONFIG, FD_CONSOLE, FD_MINIPOD, FD_POD_ALIVE, FD_REPORT};
use crate::runtime::contract::pause::{PauseConfig, PauseNetwork};
use crate::runtime::contract::plan::{SizeLimit, SupervisorPlan};
use crate::runtime::contract::report::{self, Line, Report};
use crate::runtime::etc_files;
use crate::runtime::logs::LogWriter;
use crate::runtime::state::{ContainerState, ContainerStatus, Phase, PodEvent, PodPaths, PodState};
use crate::spec::{Hook, Probes};
use crate::sys::fs::{atomic_write, pass_fds};
use crate::sys::lock::{FileLock, Mode};
use crate::sys::proc::{catches, is_pid1, signal_pid};
use crate::sys::time::now_rfc3339;

/// One container of the pod across its restarts.
struct Slot {
    role: Role,
    config: ContainerConfig,
    /// `config` in a sealed memfd, made once the pause runs (the config
    /// names it): each start of the container and each exec probe get it.
    config_fd: Option<OwnedFd>,
    stop_signal: Signal,
    log: Arc<Mutex<LogWriter>>,
    prefix: String,
    /// The current incarnation, while its link runs.
    running: Option<Running>,
    status: ContainerStatus,
    /// `lifecycle.postStart`, run once it started.
    post_start: Option<Hook>,
    /// `lifecycle.preStop`, run before the stop signal.
    pre_stop: Option<Hook>,
    /// This incarnation's preStop hook has begun: the stop signal follows
    /// its end.
    pre_stop_begun: bool,
    /// Its stdin, pty and attach sessions.
    console: Console,
}

impl Slot {
    /// How an exec probe or hook (`what`: `Liveness`, `PreStop`, …) runs
    /// in this slot's container, while it runs. Each has its own output
    /// file: two due at once must not write over each other's.
    fn exec_target(&self, paths: &PodPaths, what: &str) -> Option<ExecTarget> {
        let config = self.config_fd.as_ref()?;
        self.running.as_ref().map(|r| ExecTarget {
            config_fd: config.as_raw_fd(),
            pid: r.pid,
            output: paths.probe_output(&self.status.name, what),
        })
    }
}

/// A start waiting for its containers' postStart hooks.
struct PendingStart {
    results: Vec<(usize, Result<(), String>)>,
    /// Slots whose hook still runs.
    waiting: Vec<usize>,
    /// Slots whose hook failed.
    failed: Vec<usize>,
}

struct Running {
    /// The `__container` link process (our child); its exit status is the
    /// container's.
    link: Child,
    /// The container's main process.
    pid: i32,
    started_at: String,
}

pub struct Pod {
    name: String,
    roots: Roots,
    paths: PodPaths,
    /// Held for the pod's whole life: a second `run` of the same name fails.
    lock: Option<FileLock>,
    detached: bool,
    /// One of several foreground pods: `run` reads the report and says a
    /// start's failure itself.
    attached: bool,
    /// `--log-level info` in the foreground: container exits and restarts
    /// are told on the terminal.
    tell_exits: bool,
    machine: Machine,
    hostname: String,
    host_aliases: Vec<(String, Vec<String>)>,
    pause_config: PauseConfig,
    ports: Vec<portfwd::Published>,
    /// The spawned `__pause` (the link, with a shared PID namespace).
    pause: Option<Child>,
    /// The process whose namespaces containers join.
    pause_pid: i32,
    slots: Vec<Slot>,
    outputs: Vec<std::thread::JoinHandle<()>>,
    control: Option<UnixListener>,
    state: PodState,
    /// Why the pod failed, as told to the user.
    failure: Option<String>,
    /// The machine's verdict once nothing runs: `run`'s code and the phase.
    finished: Option<(i32, Phase)>,
    /// Told the `run -d` parent how the start went.
    reported: bool,
    /// The pod's address and hostPorts, released with the pod.
    network: Option<PodNetwork>,
    /// The containers' probes.
    prober: Prober,
    /// A start whose postStart hooks are running: the machine's answer
    /// waits for them.
    pending_start: Option<PendingStart>,
    /// Which slots have a readiness probe (the others are ready once
    /// running) and a startup probe (the others are started once running).
    readiness_probed: Vec<bool>,
    startup_probed: Vec<bool>,
    /// Shared locks of the named volumes the pod mounts, held for its life.
    volume_locks: Vec<FileLock>,
    /// Disk emptyDirs with a sizeLimit, and when to measure them next.
    size_limits: Vec<SizeLimit>,
    next_usage_check: Option<Instant>,
    /// A pidfd of the holder: when it dies, the pod's network (the bridge
    /// in its netns) and `minipod exec` (its user namespace) go with it.
    holder: Option<OwnedFd>,
    /// Numbers attach sessions.
    sessions: u64,
    /// What the Service table last saw of this pod (address, running,
    /// ready): it is synced again only when that changes.
    service_key: Option<(Option<String>, bool, bool)>,
}

impl Pod {
    pub fn new(plan: SupervisorPlan, lock: FileLock) -> Result<Pod> {
        let paths = PodPaths::new(&plan.roots, &plan.name);
        let mut state = plan.state;
        state.supervisor_pid = std::process::id() as i32;
        let roles: Vec<Role> = plan.slots.iter().map(|s| s.role).collect();
        let exit_code_from = plan
            .exit_code_from
            .as_ref()
            .and_then(|name| plan.slots.iter().position(|s| &s.status.name == name));
        let probes: Vec<(usize, Probes)> = plan
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.probes.clone()))
            .collect();
        let startup_probed: Vec<bool> = probes.iter().map(|(_, p)| p.startup.is_some()).collect();
        let readiness_probed: Vec<bool> =
            probes.iter().map(|(_, p)| p.readiness.is_some()).collect();
        let with_startup: Vec<usize> = (0..startup_probed.len())
            .filter(|&i| startup_probed[i])
            .collect();
        let machine = Machine::new(
            Policy {
                restart_policy: plan.restart_policy,
                initial_backoff: plan.initial_backoff,
                termination_grace: plan.termination_grace,
                exit_code_from,
                active_deadline: plan.active_deadline,
                job: plan.job,
            },
            &roles,
        )
        .with_startup_probes(&with_startup);
        let mut slots = Vec::new();
        for s in plan.slots {
            let log = LogWriter::create(&s.log, plan.log_max_bytes)?;
            let wanted = Wanted {
                stdin: s.stdin,
                stdin_once: s.stdin_once,
                tty: s.config.tty,
            };
            slots.push(Slot {
                role: s.role,
                config: s.config,
                config_fd: None,
                stop_signal: Signal::try_from(s.stop_signal).unwrap_or(Signal::SIGTERM),
                log: Arc::new(Mutex::new(log)),
                prefix: s.prefix,
                running: None,
                status: s.status,
                post_start: s.post_start,
                pre_stop: s.pre_stop,
                pre_stop_begun: false,
                console: Console::new(wanted),
            });
        }
        let mut pod = Pod {
            name: plan.name,
            roots: plan.roots,
            paths: paths.clone(),
            lock: Some(lock),
            detached: plan.detached,
            attached: plan.attached,
            tell_exits: plan.verbose && !plan.detached,
            machine,
            hostname: plan.hostname,
            host_aliases: plan.host_aliases,
            pause_config: plan.pause,
            ports: plan.ports,
            pause: None,
            pause_pid: 0,
            slots,
            outputs: Vec::new(),
            control: None,
            state,
            failure: None,
            finished: None,
            reported: false,
            network: None,
            prober: Prober::new(&probes, None),
            pending_start: None,
            readiness_probed,
            startup_probed,
            volume_locks: Vec::new(),
            next_usage_check: (!plan.size_limits.is_empty())
                .then(|| Instant::now() + eviction::INTERVAL),
            size_limits: plan.size_limits,
            holder: None,
            sessions: 0,
            service_key: None,
        };
        let holder = crate::userns::holder::read_live(&pod.roots)
            .ok_or_else(|| anyhow!("minipod's user-namespace holder exited; run the pod again"))?;
        pod.holder = crate::sys::proc::pidfd_of(holder.pid, holder.start_time);
        if pod.holder.is_none() {
            bail!("minipod's user-namespace holder exited; run the pod again");
        }
        // A volume `volume rm` removed after `run` checked it: its lock
        // file is gone.
        for (name, path) in &plan.volume_locks {
            match FileLock::acquire_existing(path, Mode::Shared)? {
                Some(lock) => pod.volume_locks.push(lock),
                None => bail!(
                    "volume {name} was removed as pod {} started; run the pod again to create \
                     it anew",
                    pod.name
                ),
            }
        }
        if let Some(dir) = paths.control_socket().parent() {
            crate::sys::fs::create_private_dir(dir)?;
        }
        let _ = std::fs::remove_file(paths.control_socket());
        let listener = UnixListener::bind(paths.control_socket())
            .context("creating the pod's control socket")?;
        listener.set_nonblocking(true)?;
        pod.control = Some(listener);
        pod.save_state();
        Ok(pod)
    }

    /// Leases the pod's address, binds its hostPorts and starts its pause
    /// process, which creates and connects the pod's namespaces.
    pub fn start_pause(&mut self) -> Result<()> {
        if !self.pause_config.host_network {
            self.network = Some(self.reserve_network()?);
        }
        let mut config = self.pause_config.clone();
        config.parent = std::process::id() as i32;
        config.network = self.network.as_ref().map(|n| PauseNetwork {
            ip: n.ip,
            prefix: n.subnet.prefix(),
            gateway: n.subnet.gateway(),
            uplink_pid: n.uplink_pid,
            ifname: n.host_ifname.clone(),
        });
        // hostPorts: the pause hands out sockets of the pod's netns on fd 3.
        // and tcpSocket/httpGet probes connect through them.
        let http_hooks = self.slots.iter().any(|s| {
            [&s.pre_stop, &s.post_start]
                .into_iter()
                .any(|h| matches!(h, Some(Hook::Run(crate::spec::ProbeHandler::Http { .. }))))
        });
        config.serve_sockets = self
            .network
            .as_ref()
            .is_some_and(|n| n.has_host_ports() || self.prober.needs_network() || http_hooks);
        let mut cmd = minipod_command();
        cmd.arg("__pause");
        let config_fd = config_memfd(&config)?;
        let mut fds = vec![
            (config_fd.as_raw_fd(), FD_CONFIG),
            (self.lock_fd()?, FD_POD_ALIVE),
        ];
        let mut ours = None;
        if config.serve_sockets {
            let (mine, theirs) = std::os::unix::net::UnixStream::pair()?;
            fds.push((theirs.as_raw_fd(), 3));
            ours = Some((mine, theirs));
        }
        pass_fds(&mut cmd, &fds);
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
                self.state.pause_pid = pid;
                if let (Some(network), Some(stream)) = (&mut self.network, ours) {
                    let sockets = network.serve_sockets(stream);
                    self.prober.set_target(Target::Pod {
                        ip: network.ip,
                        sockets,
                    });
                } else if self.network.is_none() {
                    self.prober.set_target(Target::Host);
                }
                // Each container's config names the pause: written now, once.
                let pod_ip = self.network.as_ref().map(|n| n.ip.to_string());
                for slot in &mut self.slots {
                    if let Some(ip) = &pod_ip {
                        slot.config.process.fill_pod_ip(ip);
                    }
                    slot.config.pause_pid = self.pause_pid;
                    slot.config.supervisor_pid = std::process::id() as i32;
                    slot.config_fd = Some(config_memfd(&slot.config)?);
                }
                Ok(())
            }
            _ => bail!("pod {}: the pause process exited during setup", self.name),
        }
    }

    /// Binds the pod's hostPorts and leases it an address on the holder's
    /// bridge, and writes its hosts file with that address.
    fn reserve_network(&mut self) -> Result<PodNetwork> {
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
            log::note(format!(
                "pods have no outbound route (they reach each other, the gateway {} and \
                 hostPorts): {why}. Once that is mended, with no pod running, `kill {}` (minipod's \
                 holder): the next command starts it again, with pasta",
                subnet.gateway(),
                holder.pid
            ));
        }
        let uplink = Uplink {
            pid: holder.pid,
            subnet,
        };
        let network = PodNetwork::reserve(
            &self.roots.run,
            &self.name,
            std::process::id() as i32,
            uplink,
            &self.ports,
        )?;
        self.state.pod_ip = Some(network.ip.to_string());
        self.state.ports = network.published();
        // kubelet's FQDN for a pod with a subdomain (a StatefulSet's pod).
        let domain = self.state.subdomain.as_ref().map(|sub| {
            format!(
                "{sub}.{}.svc.{}",
                self.state.namespace,
                holder
                    .cluster_domain
                    .as_deref()
                    .unwrap_or(crate::net::service_table::DEFAULT_CLUSTER_DOMAIN)
            )
        });
        std::fs::write(
            self.paths.etc("hosts"),
            etc_files::hosts(
                &self.hostname,
                domain.as_deref(),
                Some(&network.ip.to_string()),
                host_gateway.as_deref(),
                &self.host_aliases,
            ),
        )?;
        Ok(network)
    }

    /// Runs the pod to its end: feeds the machine what happens (exits,
    /// signals, `minipod stop`, due deadlines) and carries out what it
    /// decides. Returns `run`'s exit code.
    pub fn supervise(&mut self, sigfd: &SignalFd) -> Result<i32> {
        self.dispatch(Event::Begin {
            now: Instant::now(),
        })?;
        while self.finished.is_none() {
            let deadline = [
                self.machine.next_deadline(),
                self.prober.next_deadline(),
                self.next_usage_check,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(t) => PollTimeout::try_from(t.saturating_duration_since(Instant::now()))
                    .unwrap_or(PollTimeout::MAX),
            };
            let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            if let Some(control) = &self.control {
                fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
            }
            if let Some(holder) = &self.holder {
                fds.push(PollFd::new(holder.as_fd(), PollFlags::POLLIN));
            }
            // Probes' connections under way.
            for (fd, flags) in self.prober.poll_fds() {
                fds.push(PollFd::new(fd, flags));
            }
            // Attach sessions' input, and stdin when it has input waiting.
            for slot in &self.slots {
                for (fd, flags) in slot.console.poll_fds() {
                    fds.push(PollFd::new(fd, flags));
                }
            }
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("waiting for signals"),
            }
            drop(fds);
            self.handle_wakeup(sigfd)?;
        }
        let (code, phase) = self.finished.expect("finished");
        self.state.exit_code = Some(code);
        self.state.finished = Some(now_rfc3339());
        self.state.phase = phase;
        self.save_state();
        if let Some(msg) = self.failure.clone() {
            // A `run` that reads the report says it; else the terminal.
            let read = self.report(Some(&msg)) && self.attached;
            if !self.detached && !read {
                log::tell(&msg);
            }
        }
        Ok(code)
    }

    /// Tells the machine what happened since the last look: exits, signals,
    /// a `minipod stop`, a deadline passed. Each event takes the time when
    /// it is handed over: carrying out one (a start) may take a while.
    fn handle_wakeup(&mut self, sigfd: &SignalFd) -> Result<()> {
        // Signals are drained before children are reaped: a child that
        // exits after the drain leaves a SIGCHLD that wakes the next poll;
        // the other way round, its SIGCHLD could be drained unreaped.
        let mut interrupts = Vec::new();
        while let Ok(Some(info)) = sigfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(sig) => interrupts.push(sig),
            }
        }
        let exits = self.reap();
        let any_exit = !exits.is_empty();
        for exited in exits {
            self.dispatch(exited)?;
        }
        if any_exit {
            self.save_state();
        }
        for sig in interrupts {
            if !self.detached {
                if self.machine.is_stopping() {
                    log::tell(format!("killing pod {}", self.name));
                } else {
                    log::tell(format!(
                        "{sig}: stopping pod {} (again to kill it at once)",
                        self.name
                    ));
                }
            }
            let now = Instant::now();
            self.dispatch(Event::Interrupted { now })?;
        }
        if let Some(grace) = self.accept_control() {
            let now = Instant::now();
            self.dispatch(Event::StopRequested { grace, now })?;
        }
        for slot in &mut self.slots {
            slot.console.serve();
        }
        self.run_probes()?;
        self.check_usage()?;
        self.check_holder()?;
        let now = Instant::now();
        if self.machine.next_deadline().is_some_and(|t| t <= now) {
            self.dispatch(Event::Tick { now })?;
        }
        Ok(())
    }

    /// Measures the disk emptyDirs that have a sizeLimit, when it is time:
    /// one over its limit evicts the pod.
    fn check_usage(&mut self) -> Result<()> {
        let now = Instant::now();
        if self.next_usage_check.is_none_or(|t| t > now) {
            return Ok(());
        }
        self.next_usage_check = Some(now + eviction::INTERVAL);
        let over = self.size_limits.iter().find_map(|l| {
            let used = eviction::usage(&l.dir).ok()?;
            eviction::over_limit(&l.volume, used, l.limit_bytes)
        });
        if let Some(message) = over {
            // Once is enough.
            self.next_usage_check = None;
            let now = Instant::now();
            self.dispatch(Event::Lost {
                reason: "Evicted",
                message,
                now,
            })?;
        }
        Ok(())
    }

    /// Fails the pod once the holder is gone (its pidfd is readable).
    fn check_holder(&mut self) -> Result<()> {
        let gone = self.holder.as_ref().is_some_and(|fd| {
            let mut one = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            nix::poll::poll(&mut one, PollTimeout::ZERO).is_ok_and(|n| n > 0)
        });
        if gone {
            self.holder = None;
            let now = Instant::now();
            self.dispatch(Event::Lost {
                reason: "HolderDied",
                message: "minipod's user-namespace holder died, and the pod's network and \
                          `minipod exec` with it; run the pod again"
                    .to_string(),
                now,
            })?;
        }
        Ok(())
    }

    /// Moves the probes on and hands the machine their verdicts.
    fn run_probes(&mut self) -> Result<()> {
        let mut verdicts = Vec::new();
        let (slots, paths) = (&self.slots, &self.paths);
        let exec_target = |i: usize, kind: ProbeKind| slots[i].exec_target(paths, kind.name());
        self.prober
            .work(Instant::now(), &exec_target, &mut verdicts);
        self.record_probe_failures();
        self.finish_hooks();
        self.deliver_started()?;
        for event in self.probe_events(verdicts) {
            self.dispatch(event)?;
        }
        Ok(())
    }

    /// Each failed probe attempt is an `Unhealthy` event, and one that
    /// succeeded with a warning a `ProbeWarning`, as kubelet's.
    fn record_probe_failures(&mut self) {
        let failures = self.prober.take_failures();
        let warnings = self.prober.take_warnings();
        if failures.is_empty() && warnings.is_empty() {
            return;
        }
        let failures = failures.into_iter().map(|f| (f, "Unhealthy", "failed"));
        let warnings = warnings.into_iter().map(|w| (w, "ProbeWarning", "warning"));
        for ((slot, kind, why), reason, what) in failures.chain(warnings) {
            let kind = kind.name();
            self.state.record(PodEvent {
                time: now_rfc3339(),
                container: self.slots[slot].status.name.clone(),
                reason: reason.into(),
                message: format!("{kind} probe {what}: {why}"),
                count: 1,
            });
        }
        self.save_state();
    }

    /// Records what probes found (a startup probe that passed marks its
    /// container started) and says their failures; the events for the
    /// machine.
    fn probe_events(&mut self, verdicts: Vec<Verdict>) -> Vec<Event> {
        let now = Instant::now();
        let mut events = Vec::new();
        for v in verdicts {
            let name = self.slots[v.slot].status.name.clone();
            let kind = v.kind.name();
            match (v.kind, v.success) {
                (ProbeKind::Startup, true) => {
                    let status = &mut self.slots[v.slot].status;
                    status.started = true;
                    status.ready |= !self.readiness_probed[v.slot];
                    self.save_state();
                }
                (_, false) => {
                    let why = v.message.as_deref().unwrap_or("failed");
                    let what = match v.kind {
                        ProbeKind::Readiness => "not ready",
                        _ => "stopping it (restartPolicy decides whether it restarts)",
                    };
                    let line = format!(
                        "pod {}: {kind} probe of container {name} failed: {why}; {what}",
                        self.name
                    );

                    if self.detached {
                        log::note(line);
                    } else {
                        log::tell(line);
                    }
                }
                _ => {}
            }
            events.push(Event::Probe {
                slot: v.slot,
                kind: v.kind,
                success: v.success,
                grace: v.grace,
                now,
            });
        }
        events
    }

    /// Hands the machine one event and carries out what it decides,
    /// including the events that carrying it out causes (a start's result).
    /// Err only when the pod's first start failed: nothing ran.
    fn dispatch(&mut self, event: Event) -> Result<()> {
        if matches!(
            event,
            Event::Interrupted { .. } | Event::StopRequested { .. }
        ) && !self.state.terminating
        {
            self.state.terminating = true;
            self.save_state();
        }
        let mut actions = VecDeque::from(self.machine.handle(event));
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Start { slots, restart } => {
                    // None while postStart hooks run: `deliver_started`
                    // answers then.
                    if let Some(result) = self.start(&slots, restart) {
                        actions.extend(self.machine.handle(result));
                    }
                }
                Action::Stop(i) => self.stop_slot(i),
                Action::Kill(i) => {
                    if let Some(run) = &mut self.slots[i].running {
                        kill_container(run);
                    }
                }
                Action::BackOff { slot, .. } => {
                    let status = &mut self.slots[slot].status;
                    status.last_state = Some(status.state.clone());
                    status.state = ContainerState::Waiting {
                        reason: "CrashLoopBackOff".into(),
                    };
                }
                Action::CancelRestart(i) => {
                    let status = &mut self.slots[i].status;
                    if let Some(last) = status.last_state.clone() {
                        status.state = last;
                    }
                }
                Action::PodRunning => {
                    self.state.phase = Phase::Running;
                    self.state.started = Some(now_rfc3339());
                    self.save_state();
                    self.report(None);
                }
                Action::PodFailed { failure, .. } => {
                    let message = self.describe(&failure);
                    self.state.phase = Phase::Failed;
                    self.state.message = Some(message.clone());
                    if let Failure::Lost { reason, message } = &failure {
                        // As kubelet records an eviction.
                        self.state.reason = Some(reason.to_string());
                        self.state.message = Some(message.clone());
                    }
                    self.failure = Some(message);
                    self.save_state();
                }
                Action::Abort(failure) => bail!("{}", self.describe(&failure)),
                Action::Ready { slot, ready } => {
                    // Ready only while it runs (a verdict may come late).
                    let running = self.slots[slot].running.is_some();
                    self.slots[slot].status.ready = ready && running;
                    self.save_state();
                }
                Action::RetryPod { failures, until } => {
                    let wait = until.saturating_duration_since(Instant::now());
                    log::note(format!(
                        "pod {}: attempt {failures} of the Job failed; it runs again in {:.0?}",
                        self.name, wait
                    ));
                }
                Action::Exit { code, phase } => self.finished = Some((code, phase)),
            }
        }
        Ok(())
    }

    fn describe(&self, failure: &Failure) -> String {
        match failure {
            Failure::InitFailed { slot, code } => {
                let name = &self.slots[*slot].status.name;
                format!(
                    "init container {name} failed with exit code {code}; `minipod logs {} {name}` \
                     shows its output",
                    self.name
                )
            }
            Failure::Setup(message) => format!("pod {}: {message}", self.name),
            Failure::PauseExited => format!("pod {}: its pause process exited", self.name),
            Failure::Lost { reason, message } => format!("pod {}: {reason}: {message}", self.name),
            Failure::DeadlineExceeded => format!(
                "pod {}: DeadlineExceeded: it ran longer than its activeDeadlineSeconds",
                self.name
            ),
            Failure::BackoffLimitExceeded { failures, code } => format!(
                "pod {}: BackoffLimitExceeded: the Job's pod failed {failures} times, as many as \
                 its backoffLimit allows (the last exit code was {code}); `minipod logs {}` \
                 shows the output",
                self.name, self.name
            ),
        }
    }

    /// Spawns one container's `__container` and its output threads.
    /// Returns the link and the read end of its sync pipe.
    fn spawn_container(&mut self, i: usize) -> Result<(Child, std::io::PipeReader)> {
        let lock_fd = self.lock_fd()?;
        let slot = &mut self.slots[i];
        if slot.status.restart_count > 0
            || matches!(slot.status.state, ContainerState::Terminated { .. })
        {
            // A restarted container gets a fresh writable layer, as in Kubernetes.
            for d in self.paths.writable_layer(&slot.status.name) {
                let _ = std::fs::remove_dir_all(&d);
                std::fs::create_dir_all(&d)?;
            }
        }
        let (out_r, out_w) = std::io::pipe()?;
        let (err_r, err_w) = std::io::pipe()?;
        let (sync_r, sync_w) = std::io::pipe()?;
        let for_child = slot.console.prepare_start(2)?;
        let mut cmd = minipod_command();
        let config = slot
            .config_fd
            .as_ref()
            .ok_or_else(|| anyhow!("container {}: started before the pause", slot.status.name))?;
        cmd.arg("__container");
        cmd.stdin(for_child.stdin).stdout(out_w).stderr(err_w);
        let mut fds = vec![
            (sync_w.as_raw_fd(), FD_REPORT),
            (config.as_raw_fd(), FD_CONFIG),
            (lock_fd, FD_POD_ALIVE),
        ];
        if let Some(socket) = &for_child.console_socket {
            fds.push((socket.as_raw_fd(), FD_CONSOLE));
        }
        pass_fds(&mut cmd, &fds);
        let link = cmd
            .spawn()
            .with_context(|| format!("starting container {}", slot.status.name))?;
        drop(sync_w);
        drop(cmd);
        drop(for_child.console_socket);
        let terminal = !self.detached;
        // Threads of earlier incarnations that ended are joined now: an
        // unjoined thread keeps its stack mapped until the pod ends, ~9 kB
        // of RSS per restart of a crash-looping container.
        let (done, live) = std::mem::take(&mut self.outputs)
            .into_iter()
            .partition::<Vec<_>, _>(|h| h.is_finished());
        self.outputs = live;
        for h in done {
            let _ = h.join();
        }
        for (stream, from) in [("stdout", out_r), ("stderr", err_r)] {
            let log = slot.log.clone();
            let watchers = slot.console.watchers();
            let pumping = pump(from, stream, slot.prefix.clone(), log, terminal, watchers);
            self.outputs.push(pumping);
        }
        Ok((link, sync_r))
    }

    /// Starts the given slots: spawns each `__container` first, then
    /// collects their set-up results, so they set themselves up in parallel.
    /// Returns the event that tells the machine how it went.
    fn start(&mut self, which: &[usize], restart: bool) -> Option<Event> {
        let mut pending = Vec::new();
        for &i in which {
            if restart {
                self.slots[i].status.restart_count += 1;
                if self.tell_exits {
                    log::tell(format!(
                        "restarting container {}",
                        self.slots[i].status.name
                    ));
                }
            }
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
                    return Some(Event::StartFailed {
                        slots: which.to_vec(),
                        message: format!("{e:#}"),
                        now: Instant::now(),
                    });
                }
            }
        }
        let mut results = Vec::new();
        for (i, link, mut sync_r) in pending {
            let mut text = String::new();
            let _ = sync_r.read_to_string(&mut text);
            let Report { pid, error, .. } = report::parse(&text);
            let slot = &mut self.slots[i];
            let started_at = now_rfc3339();
            slot.running = Some(Running {
                link,
                pid: pid.unwrap_or(0),
                started_at: started_at.clone(),
            });
            slot.status.pid = pid.unwrap_or(0);
            slot.status.state = ContainerState::Running { started_at };
            let result = match (pid, error) {
                (_, Some(msg)) => Err(msg),
                (None, None) => Err(format!(
                    "container {}: setup failed without a message",
                    slot.status.name
                )),
                _ => Ok(()),
            };
            slot.pre_stop_begun = false;
            // A `tty` container's output comes from the pty master.
            if let Some(master) = slot.console.started() {
                let (log, watchers) = (slot.log.clone(), slot.console.watchers());
                let terminal = !self.detached;
                let pumping = pump(
                    master,
                    "stdout",
                    slot.prefix.clone(),
                    log,
                    terminal,
                    watchers,
                );
                self.outputs.push(pumping);
            }
            results.push((i, result));
        }
        // postStart hooks: the containers count as started once theirs
        // returned (`deliver_started`).
        let mut waiting = Vec::new();
        for (i, result) in &results {
            if result.is_ok()
                && let (Some(hook), Some(exec)) = (
                    &self.slots[*i].post_start,
                    self.slots[*i].exec_target(&self.paths, "PostStart"),
                )
            {
                let (hook, now) = (hook.clone(), Instant::now());
                let far = now + Duration::from_secs(365 * 24 * 3600);
                self.prober
                    .start_hook(*i, HookKind::PostStart, &hook, Some(exec), now, far);
                waiting.push(*i);
            }
        }
        self.save_state();
        if !waiting.is_empty() {
            self.pending_start = Some(PendingStart {
                results,
                waiting,
                failed: Vec::new(),
            });
            return None;
        }
        Some(self.started_event(results))
    }

    /// The answer to a `Start`: the containers that run are started (their
    /// probes begin) and ready unless a probe says when.
    fn started_event(&mut self, results: Vec<(usize, Result<(), String>)>) -> Event {
        for (i, result) in &results {
            if result.is_ok() {
                let slot = &mut self.slots[*i];
                // Started once running, unless a startup probe says when;
                // ready once started, unless a readiness probe says when.
                slot.status.started = !self.startup_probed[*i];
                slot.status.ready = !self.readiness_probed[*i] && !self.startup_probed[*i];
                self.prober.started(*i, Instant::now());
            }
        }
        self.save_state();
        Event::Started {
            slots: results,
            now: Instant::now(),
        }
    }

    /// Once every postStart hook of a start returned: the machine hears of
    /// the start (without the containers that ended meanwhile, which it
    /// heard of), and a container whose hook failed is stopped and restarted
    /// as the policy says (kubelet's FailedPostStartHook).
    fn deliver_started(&mut self) -> Result<()> {
        if !self
            .pending_start
            .as_ref()
            .is_some_and(|p| p.waiting.is_empty())
        {
            return Ok(());
        }
        let pending = self.pending_start.take().expect("checked");
        let results: Vec<(usize, Result<(), String>)> = pending
            .results
            .into_iter()
            .filter(|(i, r)| r.is_err() || self.slots[*i].running.is_some())
            .collect();
        let event = self.started_event(results);
        self.dispatch(event)?;
        for i in pending.failed {
            if self.slots[i].running.is_some() {
                self.dispatch(Event::Probe {
                    slot: i,
                    kind: ProbeKind::Liveness,
                    success: false,
                    grace: None,
                    now: Instant::now(),
                })?;
            }
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
            log::warn(format!("pod {}: saving its state: {e:#}", self.name));
        }
        self.sync_services();
    }

    /// The Service table follows the pod's address, phase and readiness.
    fn sync_services(&mut self) {
        let facts = crate::runtime::services::facts(&self.state, self.state.phase);
        let key = crate::net::services::endpoint_key(&facts);
        if self.service_key.as_ref() == Some(&key) {
            return;
        }
        self.service_key = Some(key);
        if let Err(e) =
            crate::runtime::services::sync(&self.roots, crate::runtime::services::Change::Nothing)
        {
            log::warn(format!("pod {}: updating the Services: {e:#}", self.name));
        }
    }

    /// Collects every exited child: a container's link, or the pause.
    fn reap(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return events,
                Ok(s) => s,
            };
            let (pid, code) = match status {
                WaitStatus::Exited(pid, code) => (pid, code),
                WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32),
                _ => continue,
            };
            let now = Instant::now();
            let mut verdicts = Vec::new();
            if self.prober.exited(pid.as_raw(), code, now, &mut verdicts) {
                self.record_probe_failures();
                events.extend(self.probe_events(verdicts));
                continue;
            }
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
                    events.push(Event::PauseExited { now });
                }
                continue;
            };
            self.container_exited(i, code);
            events.push(Event::Exited { slot: i, code, now });
        }
    }

    /// Records a container's end in its status (saved by the caller, once
    /// for every exit of a wake-up and what the machine made of them).
    fn container_exited(&mut self, i: usize, code: i32) {
        self.prober.stopped(i);
        // Its postStart hook ended with it.
        if let Some(p) = &mut self.pending_start {
            p.waiting.retain(|&w| w != i);
        }
        let slot = &mut self.slots[i];
        slot.status.ready = false;
        slot.status.started = false;
        slot.console.exited(code);
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
        if self.tell_exits {
            log::tell(format!(
                "container {} exited with code {code}",
                slot.status.name
            ));
        }
    }

    /// Sends a container its stop signal.
    /// Stops a container: its preStop hook first, when it has one (the
    /// stop signal follows the hook's end, `finish_hooks`), else the
    /// signal. The machine kills it at the grace period's end either way.
    fn stop_slot(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if let (Some(hook), Some(exec)) = (&slot.pre_stop, slot.exec_target(&self.paths, "PreStop"))
            && !slot.pre_stop_begun
        {
            slot.pre_stop_begun = true;
            let hook = hook.clone();
            let now = Instant::now();
            // The machine's kill ends the container, and the hook with it.
            let far = now + Duration::from_secs(24 * 3600);
            self.prober
                .start_hook(i, HookKind::PreStop, &hook, Some(exec), now, far);
            self.finish_hooks();
            return;
        }
        self.signal_slot(i);
    }

    /// Sends the stop signal of each container whose preStop hook ended;
    /// a failed hook is an event.
    fn finish_hooks(&mut self) {
        let done = self.prober.take_hooks_done();
        if done.is_empty() {
            return;
        }
        for (i, kind, result) in done {
            if let Err(why) = &result {
                let (reason, hook) = match kind {
                    HookKind::PreStop => ("FailedPreStopHook", "PreStopHook"),
                    HookKind::PostStart => ("FailedPostStartHook", "PostStartHook"),
                };
                let container = self.slots[i].status.name.clone();
                self.state.record(PodEvent {
                    time: now_rfc3339(),
                    container,
                    reason: reason.into(),
                    message: format!("{hook} failed: {why}"),
                    count: 1,
                });
            }
            match kind {
                HookKind::PreStop => self.signal_slot(i),
                HookKind::PostStart => {
                    if let Some(p) = &mut self.pending_start {
                        p.waiting.retain(|&w| w != i);
                        if result.is_err() {
                            p.failed.push(i);
                        }
                    }
                }
            }
        }
        self.save_state();
    }

    fn signal_slot(&mut self, i: usize) {
        let slot = &self.slots[i];
        let Some(run) = &slot.running else { return };
        // PID 1 of a namespace only gets signals it handles: one that does
        // not catch the stop signal would just make us wait.
        let sig = if is_pid1(run.pid) && !catches(run.pid, slot.stop_signal) {
            Signal::SIGKILL
        } else {
            slot.stop_signal
        };
        signal_pid(run.pid, sig);
    }

    /// Serves one control-socket request, if any: `stop SECONDS`,
    /// `process CONTAINER` (`minipod exec` asks how the container's
    /// processes run: its config lives only here), or `attach CONTAINER
    /// stdin|nostdin` (`contract::attach`: the connection becomes a session
    /// of the container's console). Returns the grace period a stop asked
    /// for.
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
                let _ = Line::Ok.write_to(&mut &stream);
                Some(Duration::from_secs_f64(secs.max(0.0)))
            }
            (Some("attach"), _) => {
                self.attach(stream, &line);
                None
            }
            (Some("process"), _) => {
                let name = line["process".len()..].trim();
                match self.slots.iter().find(|s| s.status.name == name) {
                    Some(slot) => {
                        let json = serde_json::to_vec(&slot.config.process).unwrap_or_default();
                        let _ = (&stream).write_all(&json);
                    }
                    None => {
                        let _ =
                            Line::Error(&format!("no container {name:?}")).write_to(&mut &stream);
                    }
                }
                None
            }
            _ => {
                let _ = Line::Error("unknown request").write_to(&mut &stream);
                None
            }
        }
    }

    /// Makes `stream` an attach session of the container `line` names, or
    /// says why not.
    fn attach(&mut self, stream: std::os::unix::net::UnixStream, line: &str) {
        let refuse = |msg: String| {
            let _ = Line::Error(&msg).write_to(&mut &stream);
        };
        let Some((name, stdin)) = attach::parse_request(line) else {
            return refuse("unknown request".into());
        };
        let Some(slot) = self.slots.iter_mut().find(|s| s.status.name == name) else {
            return refuse(format!("pod {} has no container {name:?}", self.name));
        };
        if slot.running.is_none() {
            return refuse(format!(
                "container {name} of pod {} is not running",
                self.name
            ));
        }
        self.sessions += 1;
        let _ = stream.set_read_timeout(None);
        if let Err(e) = slot.console.attach(self.sessions, stream, stdin) {
            log::warn(format!("pod {}: attaching to {name}: {e}", self.name));
        }
    }

    /// Tells `run` how the start went (once): `run -d` and a `run` of
    /// several pods wait for it; in the foreground it goes to /dev/null.
    /// Returns whether this call sent it.
    fn report(&mut self, error: Option<&str>) -> bool {
        if self.reported {
            return false;
        }
        self.reported = true;
        let line = match error {
            None => Line::Ok,
            Some(e) => Line::Error(e),
        };
        let _ = line.write_to_fd(FD_REPORT);
        // Let the parent see EOF, but keep fd 3 taken (by /dev/null): a
        // later error report writes to fd 3, which must not by then be a
        // log file or socket that reused the number.
        if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
            let _ = crate::sys::fs::redirect_fd(&null, FD_REPORT);
            // SAFETY: sets FD_CLOEXEC on the fd just made: the containers
            // started later must not get it.
            unsafe { libc::fcntl(FD_REPORT, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        if error.is_none() {
            // Started: most of what ran so far will not run again.
            crate::sys::memory::shed_startup_pages();
        }
        true
    }

    /// The pod's lock, for the pause and the links to hold a copy of.
    fn lock_fd(&self) -> Result<std::os::fd::RawFd> {
        self.lock
            .as_ref()
            .map(FileLock::as_raw_fd)
            .ok_or_else(|| anyhow!("pod {}: its lock is gone", self.name))
    }

    /// Kills every container (each link then exits with it).
    fn kill_all(&mut self) {
        for s in &mut self.slots {
            if let Some(run) = &mut s.running {
                kill_container(run);
            }
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Exec probes under way first: their pids are ours until reaped.
        self.prober.stop_all();
        // Kill whatever still runs, pause last, and wait for all of it.
        self.kill_all();
        for s in &mut self.slots {
            if let Some(run) = &mut s.running {
                let _ = run.link.wait();
            }
            s.running = None;
        }
        // The pause, or with a shared PID namespace the pod's PID 1, which
        // the pause links: it reaps it and exits, so the namespace is empty
        // when `wait` returns.
        if self.pause_pid > 0 {
            signal_pid(self.pause_pid, Signal::SIGKILL);
        }
        if let Some(mut p) = self.pause.take() {
            if self.pause_pid <= 0 {
                let _ = p.kill();
            }
            let _ = p.wait();
        }
        // Reap anything that was reparented to us. (Not waiting for more:
        // with `run` in the foreground the holder it started is our child.)
        while let Ok(s) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
        self.slots.clear();
        for h in self.outputs.drain(..) {
            let _ = h.join();
        }
        if let Some(e) = self.failure.clone() {
            self.report(Some(&e));
        }
        self.control = None;
        let _ = std::fs::remove_file(self.paths.control_socket());
        // The veth went with the pause's netns; the address goes now.
        if let Some(network) = self.network.take()
            && let Err(e) = network.release()
        {
            log::warn(format!("pod {}: releasing its address: {e:#}", self.name));
        }
        // A detached pod's state stays for `ps -a`, `logs` and `inspect`
        // until `rm`, unless it never started.
        let keep = self.detached && self.reported && self.state.exit_code.is_some();
        if keep {
            self.paths.remove_runtime_dirs();
        } else if let Err(e) = self.paths.remove_all() {
            log::warn(format!("removing {}: {e}", self.paths.dir.display()));
        }
        // Before the pod's lock: whoever waits for that (`down --volumes`)
        // may remove the volumes next.
        self.volume_locks.clear();
        if let Some(lock) = self.lock.take() {
            if keep {
                drop(lock);
            } else {
                lock.release_and_remove(&self.paths.lock);
            }
        }
        // The pod is gone (or ended): no Service sends it traffic now.
        if self.service_key.as_ref().is_some_and(|k| k.1)
            && let Err(e) = crate::runtime::services::sync(
                &self.roots,
                crate::runtime::services::Change::Nothing,
            )
        {
            log::warn(format!("pod {}: updating the Services: {e:#}", self.name));
        }
    }
}

/// SIGKILL to a container: its link reaps it, then exits with its status,
/// and so holds its copy of the pod's lock until the container is gone.
/// The link itself only while the container's pid is not known yet.
fn kill_container(run: &mut Running) {
    if run.pid > 0 {
        signal_pid(run.pid, Signal::SIGKILL);
    } else {
        let _ = run.link.kill();
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
