//! A pod's life in the foreground: create the state dir, the pause process
//! and the containers; supervise them; stop them; remove everything.
//!
//! `Pod` owns every resource it created and releases them in `Drop`, so a
//! failure half-way through creating the pod leaves nothing behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::Serialize;

use super::config::{ContainerConfig, Mount};
use super::etc_files;
use super::prepare::{self, PreparedContainer};
use crate::image::Store;
use crate::paths::Roots;
use crate::spec::{DnsBase, PodPlan, VolumeKind};
use crate::sys::fs::atomic_write;
use crate::sys::lock::FileLock;

/// Kubernetes' /dev/shm size (as docker and containerd set it).
const SHM_SIZE: u64 = 64 << 20;

pub struct RunOptions {
    /// Return when this container exits, with its exit code.
    pub exit_code_from: Option<String>,
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

/// `minipod run POD.yaml` in the foreground. The caller has joined the user
/// namespace; this must run on the main thread before any other thread
/// exists (the signal mask is inherited by threads).
pub fn run(roots: &Roots, store: &Store, plan: PodPlan, opts: RunOptions) -> Result<ExitCode> {
    if let Some(name) = &opts.exit_code_from
        && !plan.containers.iter().any(|c| &c.name == name)
    {
        let names: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "--exit-code-from {name}: the pod has no container {name:?} (containers: {})",
            names.join(", ")
        );
    }
    if !plan.init_containers.is_empty() {
        bail!("spec.initContainers: not supported yet");
    }
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let prepared = prepare::containers(store, &plan)?;
    prepare::check_host_paths(&plan)?;

    let signals = handled_signals();
    signals.thread_block().context("blocking signals")?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("creating a signalfd")?;
    // Orphans of our children (a container's init after its link exits)
    // come back to us to be reaped.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;

    let mut pod = Pod::create(roots, &plan)?;
    pod.start_pause(&plan)?;
    pod.start_containers(&plan, prepared)?;
    pod.write_state()?;
    let code = pod.supervise(&sigfd, &plan, &opts)?;
    drop(pod);
    Ok(code)
}

struct Pod {
    name: String,
    dir: PathBuf,
    /// Held for the pod's whole life: a second `run` of the same name fails.
    lock: Option<FileLock>,
    lock_path: PathBuf,
    /// The spawned `__pause` (the link, with a shared PID namespace).
    pause: Option<Child>,
    /// The process whose namespaces containers join.
    pause_pid: i32,
    containers: Vec<Running>,
    outputs: Vec<std::thread::JoinHandle<()>>,
}

struct Running {
    name: String,
    /// The `__container` link process (our child).
    link: Child,
    /// The container's main process.
    pid: i32,
    /// Whether it is PID 1 of its own PID namespace.
    own_pid_ns: bool,
    stop_signal: Signal,
    exit_code: Option<i32>,
    finished: Option<SystemTime>,
}

#[derive(Serialize)]
struct State<'a> {
    name: &'a str,
    supervisor_pid: u32,
    pause_pid: i32,
    containers: Vec<ContainerState<'a>>,
}

#[derive(Serialize)]
struct ContainerState<'a> {
    name: &'a str,
    pid: i32,
}

impl Pod {
    fn create(roots: &Roots, plan: &PodPlan) -> Result<Pod> {
        let pods = roots.pods();
        crate::userns::holder::create_private_dir(&pods)?;
        let lock_path = pods.join(format!("{}.lock", plan.name));
        let lock = FileLock::try_acquire_removable(&lock_path)?.ok_or_else(|| {
            anyhow!(
                "pod {:?} is already running; stop it first or give this one another metadata.name",
                plan.name
            )
        })?;
        let dir = pods.join(&plan.name);
        if dir.exists() {
            // Left by a supervisor that was killed: its lock is free, so it is gone.
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing stale {}", dir.display()))?;
        }
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pod = Pod {
            name: plan.name.clone(),
            dir,
            lock: Some(lock),
            lock_path,
            pause: None,
            pause_pid: 0,
            containers: Vec::new(),
            outputs: Vec::new(),
        };
        pod.write_files(plan)?;
        Ok(pod)
    }

    fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }
    fn volume(&self, name: &str) -> PathBuf {
        self.dir.join("volumes").join(name)
    }
    fn etc(&self, file: &str) -> PathBuf {
        self.dir.join("etc").join(file)
    }
    fn container_dir(&self, name: &str) -> PathBuf {
        self.dir.join("containers").join(name)
    }
    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    fn write_files(&self, plan: &PodPlan) -> Result<()> {
        for d in ["etc", "logs", "containers", "volumes", "shm"] {
            std::fs::create_dir_all(self.dir.join(d))?;
        }
        std::fs::write(
            self.etc("hosts"),
            etc_files::hosts(&plan.hostname, None, &plan.host_aliases),
        )?;
        std::fs::write(self.etc("hostname"), format!("{}\n", plan.hostname))?;
        let dns = etc_files::Dns {
            replace_host: plan.dns.base == DnsBase::Empty,
            nameservers: plan.dns.nameservers.clone(),
            searches: plan.dns.searches.clone(),
            options: plan
                .dns
                .options
                .iter()
                .map(|(k, v)| v.as_ref().map_or(k.clone(), |v| format!("{k}:{v}")))
                .collect(),
        };
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(self.etc("resolv.conf"), etc_files::resolv_conf(&host, &dns))?;
        for v in &plan.volumes {
            if let VolumeKind::EmptyDir { .. } = v.kind {
                let dir = self.volume(&v.name);
                std::fs::create_dir_all(&dir)?;
                // Kubernetes' emptyDir is world-writable, so any user of the pod can use it.
                std::fs::set_permissions(
                    &dir,
                    std::os::unix::fs::PermissionsExt::from_mode(0o777),
                )?;
            }
        }
        Ok(())
    }

    fn start_pause(&mut self, plan: &PodPlan) -> Result<()> {
        let mut cmd = minipod_command();
        cmd.arg("__pause")
            .arg("--hostname")
            .arg(&plan.hostname)
            .arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--tmpfs")
            .arg(format!("{}={SHM_SIZE}", self.shm().display()));
        if plan.share_process_namespace {
            cmd.arg("--share-pid");
        }
        if plan.host_network {
            cmd.arg("--host-network");
        }
        for v in &plan.volumes {
            if let VolumeKind::EmptyDir {
                memory: true,
                size_limit_bytes,
            } = v.kind
            {
                let dir = self.volume(&v.name);
                let spec = match size_limit_bytes {
                    Some(size) => format!("{}={size}", dir.display()),
                    None => dir.display().to_string(),
                };
                cmd.arg("--tmpfs").arg(spec);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("starting the pod's pause process")?;
        let mut line = String::new();
        let mut stdout = child.stdout.take().expect("piped");
        let _ = stdout.read_to_string(&mut line);
        self.pause = Some(child);
        match line.trim().split_once(' ') {
            Some(("pid", pid)) => {
                self.pause_pid = pid.parse().context("the pause process sent a bad pid")?;
                Ok(())
            }
            Some(("error", msg)) => {
                bail!("pod {}: creating its namespaces failed: {msg}", self.name)
            }
            _ => bail!("pod {}: the pause process exited during setup", self.name),
        }
    }

    fn start_containers(&mut self, plan: &PodPlan, prepared: Vec<PreparedContainer>) -> Result<()> {
        let colour = nix::unistd::isatty(std::io::stdout().as_fd()).unwrap_or(false);
        let width = prepared
            .iter()
            .map(|p| p.plan.name.len())
            .max()
            .unwrap_or(0);
        // Spawn every container first, then collect their setup results:
        // the containers set themselves up in parallel.
        let mut pending = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            let config = self.container_config(plan, &p)?;
            let config_path = self.container_dir(&p.plan.name).join("config.json");
            atomic_write(&config_path, &serde_json::to_vec_pretty(&config)?)?;
            let (out_r, out_w) = std::io::pipe()?;
            let (err_r, err_w) = std::io::pipe()?;
            let (sync_r, sync_w) = std::io::pipe()?;
            let mut cmd = minipod_command();
            cmd.arg("__container").arg(&config_path);
            cmd.stdin(Stdio::null()).stdout(out_w).stderr(err_w);
            let sync_fd = sync_w.as_raw_fd();
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if sync_fd == 3 {
                        if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(sync_fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let link = cmd
                .spawn()
                .with_context(|| format!("starting container {}", p.plan.name))?;
            drop(sync_w);
            drop(cmd);
            let log = Arc::new(Mutex::new(
                std::fs::File::create(self.log_path(&p.plan.name))
                    .context("creating the log file")?,
            ));
            let prefix = prefix(&p.plan.name, width, i, colour);
            self.outputs
                .push(pump(out_r, "stdout", prefix.clone(), log.clone(), false));
            self.outputs.push(pump(err_r, "stderr", prefix, log, true));
            let stop_signal = p
                .stop_signal
                .as_deref()
                .and_then(parse_signal)
                .unwrap_or(Signal::SIGTERM);
            pending.push((p.plan.name.clone(), link, sync_r, stop_signal));
        }
        let mut failures = Vec::new();
        for (name, link, mut sync_r, stop_signal) in pending {
            let mut text = String::new();
            let _ = sync_r.read_to_string(&mut text);
            let mut pid = None;
            let mut error = None;
            for line in text.lines() {
                match line.split_once(' ') {
                    Some(("pid", p)) => pid = p.trim().parse().ok(),
                    Some(("error", msg)) => error = Some(msg.to_string()),
                    _ => {}
                }
            }
            let running = Running {
                name: name.clone(),
                link,
                pid: pid.unwrap_or(0),
                own_pid_ns: !plan.share_process_namespace,
                stop_signal,
                exit_code: None,
                finished: None,
            };
            self.containers.push(running);
            match (pid, error) {
                (_, Some(msg)) => failures.push(msg),
                (None, None) => {
                    failures.push(format!("container {name}: setup failed without a message"))
                }
                _ => {}
            }
        }
        if !failures.is_empty() {
            bail!("pod {}: {}", self.name, failures.join("; "));
        }
        Ok(())
    }

    fn container_config(&self, plan: &PodPlan, p: &PreparedContainer) -> Result<ContainerConfig> {
        let dir = self.container_dir(&p.plan.name);
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d)?;
        }
        let mut mounts = Vec::new();
        for m in &p.plan.mounts {
            let volume = plan
                .volumes
                .iter()
                .find(|v| v.name == m.volume)
                .ok_or_else(|| {
                    anyhow!(
                        "container {}: volume {} is not defined",
                        p.plan.name,
                        m.volume
                    )
                })?;
            let base = match &volume.kind {
                VolumeKind::EmptyDir { .. } => self.volume(&volume.name),
                VolumeKind::HostPath { path, .. } => PathBuf::from(path),
            };
            mounts.push(Mount {
                destination: m.mount_path.clone(),
                source: prepare::mount_source(&base, m.sub_path.as_deref())?,
                read_only: m.read_only,
            });
        }
        Ok(ContainerConfig {
            name: p.plan.name.clone(),
            supervisor_pid: std::process::id() as i32,
            pause_pid: self.pause_pid,
            share_pid: plan.share_process_namespace,
            layers: p.layers.clone(),
            upper,
            work,
            rootfs,
            shm: self.shm(),
            hosts: self.etc("hosts"),
            hostname_file: self.etc("hostname"),
            resolv_conf: self.etc("resolv.conf"),
            mounts,
            process: p.process.clone(),
        })
    }

    fn write_state(&self) -> Result<()> {
        let state = State {
            name: &self.name,
            supervisor_pid: std::process::id(),
            pause_pid: self.pause_pid,
            containers: self
                .containers
                .iter()
                .map(|c| ContainerState {
                    name: &c.name,
                    pid: c.pid,
                })
                .collect(),
        };
        atomic_write(
            &self.dir.join("state.json"),
            &serde_json::to_vec_pretty(&state)?,
        )
    }

    /// Reaps exits and handles signals until the pod is done.
    fn supervise(
        &mut self,
        sigfd: &SignalFd,
        plan: &PodPlan,
        opts: &RunOptions,
    ) -> Result<ExitCode> {
        let mut stopping: Option<Instant> = None;
        let mut order: Vec<usize> = Vec::new();
        self.reap(&mut order);
        loop {
            if self.containers.iter().all(|c| c.exit_code.is_some()) {
                break;
            }
            let chosen_done = opts.exit_code_from.as_ref().is_some_and(|n| {
                self.containers
                    .iter()
                    .any(|c| &c.name == n && c.exit_code.is_some())
            });
            if chosen_done && stopping.is_none() {
                stopping = Some(self.begin_stop(plan.termination_grace));
            }
            let timeout = match stopping {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.kill_all();
                    }
                    nix::poll::PollTimeout::try_from(left.max(Duration::from_millis(50)))
                        .unwrap_or(nix::poll::PollTimeout::MAX)
                }
                None => nix::poll::PollTimeout::NONE,
            };
            let mut fds = [nix::poll::PollFd::new(
                sigfd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e).context("waiting for signals"),
            }
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => self.reap(&mut order),
                    Ok(sig) => match stopping {
                        None => {
                            eprintln!(
                                "minipod: {sig}: stopping pod {} (again to kill it at once)",
                                self.name
                            );
                            stopping = Some(self.begin_stop(plan.termination_grace));
                        }
                        Some(_) => {
                            eprintln!("minipod: killing pod {}", self.name);
                            self.kill_all();
                        }
                    },
                    Err(_) => {}
                }
            }
            self.reap(&mut order);
        }
        let code = match &opts.exit_code_from {
            Some(name) => self
                .containers
                .iter()
                .find(|c| &c.name == name)
                .and_then(|c| c.exit_code)
                .unwrap_or(0),
            None => order
                .iter()
                .filter_map(|&i| self.containers[i].exit_code)
                .find(|&c| c != 0)
                .unwrap_or(0),
        };
        Ok(ExitCode::from(code.clamp(0, 255) as u8))
    }

    /// Collects every exited child; records the exit order of containers.
    fn reap(&mut self, order: &mut Vec<usize>) {
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
            if let Some(i) = self
                .containers
                .iter()
                .position(|c| c.link.id() as i32 == pid.as_raw() && c.exit_code.is_none())
            {
                let c = &mut self.containers[i];
                c.exit_code = Some(code);
                c.finished = Some(SystemTime::now());
                tracing::info!("container {} exited with code {code}", c.name);
                order.push(i);
            } else if self
                .pause
                .as_ref()
                .is_some_and(|p| p.id() as i32 == pid.as_raw())
            {
                tracing::warn!("pod {}: the pause process exited", self.name);
            }
        }
    }

    /// Sends each running container its stop signal; returns the deadline
    /// after which the rest are killed.
    fn begin_stop(&mut self, grace: Duration) -> Instant {
        for c in self.containers.iter().filter(|c| c.exit_code.is_none()) {
            let pid = Pid::from_raw(c.pid);
            // PID 1 of a namespace only gets signals it handles: one that
            // does not catch the stop signal would just make us wait.
            let sig = if c.own_pid_ns && !catches(c.pid, c.stop_signal) {
                Signal::SIGKILL
            } else {
                c.stop_signal
            };
            let _ = kill(pid, sig);
        }
        Instant::now() + grace
    }

    fn kill_all(&mut self) {
        for c in self.containers.iter().filter(|c| c.exit_code.is_none()) {
            let _ = kill(Pid::from_raw(c.pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(c.link.id() as i32), Signal::SIGKILL);
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Kill whatever still runs, pause last, and wait for all of it.
        self.kill_all();
        for c in &mut self.containers {
            if c.exit_code.is_none() {
                let _ = c.link.wait();
            }
        }
        if self.pause_pid > 0 {
            let _ = kill(Pid::from_raw(self.pause_pid), Signal::SIGKILL);
        }
        if let Some(mut p) = self.pause.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        // Reap anything that was reparented to us (a PID-1 child of a link).
        while let Ok(s) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
        for h in self.outputs.drain(..) {
            let _ = h.join();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("minipod: removing {}: {e}", self.dir.display());
        }
        if let Some(lock) = self.lock.take() {
            lock.release_and_remove(&self.lock_path);
        }
    }
}

/// `minipod` itself, for hidden subcommands: through /proc/self/exe so the
/// same binary runs even if the file was replaced meanwhile.
fn minipod_command() -> Command {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("minipod");
    // Its own process group: Ctrl-C reaches the supervisor, which stops the
    // pod in order, not every process at once.
    cmd.process_group(0);
    cmd
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

/// `SIGTERM`, `TERM` or `15`, as image configs write StopSignal.
fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let name = if s.starts_with("SIG") {
        s.to_string()
    } else {
        format!("SIG{s}")
    };
    name.parse().ok()
}

fn prefix(name: &str, width: usize, index: usize, colour: bool) -> String {
    const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];
    if colour {
        format!(
            "\x1b[{}m{name:<width$} |\x1b[0m ",
            COLOURS[index % COLOURS.len()]
        )
    } else {
        format!("{name:<width$} | ")
    }
}

/// Copies one output stream of a container, line by line, to the terminal
/// (prefixed) and to its log file (CRI format: time, stream, tag, text).
fn pump(
    from: std::io::PipeReader,
    stream: &'static str,
    prefix: String,
    log: Arc<Mutex<std::fs::File>>,
    to_stderr: bool,
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
            let time = crate::sys::time::rfc3339_nanos(SystemTime::now());
            if let Ok(mut f) = log.lock() {
                let _ = f.write_all(format!("{time} {stream} F ").as_bytes());
                let _ = f.write_all(text);
                let _ = f.write_all(b"\n");
            }
            let mut out: Box<dyn Write> = if to_stderr {
                Box::new(std::io::stderr().lock())
            } else {
                Box::new(std::io::stdout().lock())
            };
            let _ = out.write_all(prefix.as_bytes());
            let _ = out.write_all(text);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    })
}
