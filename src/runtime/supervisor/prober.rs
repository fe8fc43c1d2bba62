//! Probes, run by the supervisor in its own loop: no thread per probe, and
//! no process per tcpSocket, httpGet or grpc probe. Each probe is scheduled
//! every `periodSeconds` from its container's start plus
//! `initialDelaySeconds`; an attempt is a non-blocking connection (and, for
//! httpGet and grpc, a conversation on it: `probe_net`) polled with the
//! supervisor's other descriptors, or (exec) a `minipod __probe-exec`
//! process in the container, killed at `timeoutSeconds`. Results are
//! counted against the thresholds as kubelet counts them, and crossing one
//! is a `Verdict` for the machine.
//!
//! Like kubelet, which probes from the node, tcpSocket, httpGet and grpc
//! connect to the pod's IP from outside the pod's loopback: with a socket
//! the pause opens in the pod's netns (the supervisor cannot join it),
//! connected to the pod's address, so a server bound only to 127.0.0.1
//! fails its probe as on a cluster. A probe's `host` is connected to from
//! the supervisor's own netns, as kubelet connects from the node's.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::machine::ProbeKind;
use super::probe_net::{self, Net, Route, Step};
use super::probe_wire::Url;
use crate::net::portfwd::PodSockets;
use crate::spec::{Hook, ProbeHandler, ProbePlan, ProbePort, Probes};

/// What a probe's attempts came to, for the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub slot: usize,
    pub kind: ProbeKind,
    pub success: bool,
    /// The probe's own `terminationGracePeriodSeconds`.
    pub grace: Option<Duration>,
    /// Why the last attempt failed, when it did.
    pub message: Option<String>,
}

/// Where tcpSocket, httpGet and grpc probes connect without a `host`.
pub enum Target {
    /// The pod's address, through sockets of the pod's netns.
    Pod {
        ip: Ipv4Addr,
        sockets: Arc<PodSockets>,
    },
    /// A `hostNetwork` pod: this netns's loopback.
    Host,
}

/// How an exec probe is started: the container's config (a memfd its slot
/// keeps open) and its main process, for `minipod __probe-exec`.
pub struct ExecTarget {
    pub config_fd: std::os::fd::RawFd,
    pub pid: i32,
    /// Where the command's output goes (kubelet's event quotes it).
    pub output: std::path::PathBuf,
}

pub struct Prober {
    probes: Vec<Probe>,
    target: Option<Target>,
    /// Every failed attempt since the last `take_failures`: (slot, kind,
    /// why), for the pod's events.
    failures: Vec<(usize, ProbeKind, String)>,
    /// Attempts that succeeded with a warning (a redirect not followed),
    /// likewise.
    warnings: Vec<(usize, ProbeKind, String)>,
    /// preStop hooks under way, run with the probes' means.
    hooks: Vec<HookRun>,
    /// Hooks that ended since the last `take_hooks_done`.
    hooks_done: Vec<(usize, HookKind, Result<(), String>)>,
}

/// Which of a container's lifecycle hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    PostStart,
    PreStop,
}

/// A lifecycle hook under way for a slot's container.
struct HookRun {
    slot: usize,
    kind: HookKind,
    deadline: Instant,
    /// exec or httpGet; None for a sleep.
    io: Option<Io>,
    /// A sleep's end.
    sleep_until: Option<Instant>,
}

struct Probe {
    slot: usize,
    kind: ProbeKind,
    plan: ProbePlan,
    /// When the next attempt is due; None while the probe is off.
    next: Option<Instant>,
    successes: u32,
    failures: u32,
    /// The last readiness verdict given (readiness starts false).
    ready: bool,
    attempt: Option<Attempt>,
    /// When its container started: initial delays count from then.
    container_start: Option<Instant>,
    /// A `host` resolved once (a name resolves in the loop, blocking it:
    /// once is the cost).
    resolved: Option<Ipv4Addr>,
}

struct Attempt {
    deadline: Instant,
    io: Io,
}

enum Io {
    /// tcpSocket, httpGet, grpc.
    Net(Net),
    /// `minipod __probe-exec`, in its own process group; its output file.
    Exec {
        pid: i32,
        output: std::path::PathBuf,
    },
}

impl Prober {
    /// `slots`: each slot's probes. `target` is None when no probe needs
    /// the network.
    pub fn new(slots: &[(usize, Probes)], target: Option<Target>) -> Prober {
        let mut probes = Vec::new();
        for (slot, p) in slots {
            for (kind, plan) in [
                (ProbeKind::Startup, &p.startup),
                (ProbeKind::Liveness, &p.liveness),
                (ProbeKind::Readiness, &p.readiness),
            ] {
                if let Some(plan) = plan {
                    probes.push(Probe {
                        slot: *slot,
                        kind,
                        plan: plan.clone(),
                        next: None,
                        successes: 0,
                        failures: 0,
                        ready: false,
                        attempt: None,
                        container_start: None,
                        resolved: None,
                    });
                }
            }
        }
        Prober {
            probes,
            target,
            failures: Vec::new(),
            warnings: Vec::new(),
            hooks: Vec::new(),
            hooks_done: Vec::new(),
        }
    }

    /// Starts one of the slot's hooks; its end comes from `take_hooks_done`.
    pub fn start_hook(
        &mut self,
        slot: usize,
        kind: HookKind,
        hook: &Hook,
        exec: Option<ExecTarget>,
        now: Instant,
        deadline: Instant,
    ) {
        let mut run = HookRun {
            slot,
            kind,
            deadline,
            io: None,
            sleep_until: None,
        };
        match hook {
            Hook::Sleep(d) => run.sleep_until = Some(now + *d),
            Hook::TcpSocket => {
                self.hooks_done.push((
                    slot,
                    kind,
                    Err("tcpSocket is not supported as a lifecycle handler".into()),
                ));
                return;
            }
            Hook::Run(handler) => match begin(handler, self.target.as_ref(), exec, &mut None) {
                Ok(io) => run.io = Some(io),
                Err(e) => {
                    self.hooks_done.push((slot, kind, Err(e)));
                    return;
                }
            },
        }
        self.hooks.push(run);
    }

    /// The hooks that ended: (slot, which, how).
    pub fn take_hooks_done(&mut self) -> Vec<(usize, HookKind, Result<(), String>)> {
        std::mem::take(&mut self.hooks_done)
    }

    /// The failed attempts since the last call, as kubelet's `Unhealthy`
    /// events: (slot, kind, why).
    pub fn take_failures(&mut self) -> Vec<(usize, ProbeKind, String)> {
        std::mem::take(&mut self.failures)
    }

    /// The attempts that succeeded with a warning since the last call, as
    /// kubelet's `ProbeWarning` events: (slot, kind, what).
    pub fn take_warnings(&mut self) -> Vec<(usize, ProbeKind, String)> {
        std::mem::take(&mut self.warnings)
    }

    /// Whether any probe connects to the pod over the network (the pause
    /// must then hand out sockets of the pod's netns).
    pub fn needs_network(&self) -> bool {
        self.probes
            .iter()
            .any(|p| !matches!(p.plan.handler, ProbeHandler::Exec { .. }))
    }

    /// Where tcpSocket, httpGet and grpc probes connect, once the pod's
    /// network is up.
    pub fn set_target(&mut self, target: Target) {
        self.target = Some(target);
    }

    /// The slot's container started: its startup probe begins, or (without
    /// one) its liveness and readiness probes, each after its initial delay.
    pub fn started(&mut self, slot: usize, now: Instant) {
        let has_startup = self
            .probes
            .iter()
            .any(|p| p.slot == slot && p.kind == ProbeKind::Startup);
        for p in self.probes.iter_mut().filter(|p| p.slot == slot) {
            p.reset();
            p.container_start = Some(now);
            if p.kind == ProbeKind::Startup || !has_startup {
                p.next = Some(now + p.plan.initial_delay);
            }
        }
    }

    /// The pod ends: every probe and hook stops (an exec probe's process
    /// is killed).
    pub fn stop_all(&mut self) {
        for p in &mut self.probes {
            p.reset();
        }
        for h in self.hooks.drain(..) {
            h.cancel();
        }
    }

    /// The slot's container ended: its probes stop until it starts again.
    pub fn stopped(&mut self, slot: usize) {
        for p in self.probes.iter_mut().filter(|p| p.slot == slot) {
            p.reset();
        }
        // Its hook ends with it.
        let (ended, left): (Vec<HookRun>, Vec<HookRun>) =
            self.hooks.drain(..).partition(|h| h.slot == slot);
        self.hooks = left;
        for h in ended {
            h.cancel();
        }
    }

    /// The next moment an attempt is due or times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.probes
            .iter()
            .filter_map(|p| match &p.attempt {
                Some(a) => Some(a.deadline),
                None => p.next,
            })
            .chain(
                self.hooks
                    .iter()
                    .map(|h| h.sleep_until.map_or(h.deadline, |s| s.min(h.deadline))),
            )
            .min()
    }

    /// The descriptors of attempts under way, with what they wait for.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, nix::poll::PollFlags)> {
        self.probes
            .iter()
            .filter_map(|p| Some(&p.attempt.as_ref()?.io))
            .chain(self.hooks.iter().filter_map(|h| h.io.as_ref()))
            .filter_map(|io| match io {
                Io::Net(net) => net.poll(),
                Io::Exec { .. } => None,
            })
            .collect()
    }

    /// An exec probe's process ended: its attempt's result. Returns true
    /// when `pid` was one.
    pub fn exited(&mut self, pid: i32, code: i32, now: Instant, out: &mut Vec<Verdict>) -> bool {
        if let Some(h) = self
            .hooks
            .iter()
            .position(|h| matches!(h.io, Some(Io::Exec { pid: q, .. }) if q == pid))
        {
            let hook = self.hooks.remove(h);
            let result = exec_result(code, hook.io.as_ref());
            self.hooks_done.push((hook.slot, hook.kind, result));
            return true;
        }
        let Some(i) = self.probes.iter().position(
            |p| matches!(p.attempt, Some(Attempt { io: Io::Exec { pid: q, .. }, .. }) if q == pid),
        ) else {
            return false;
        };
        let result = exec_result(code, self.probes[i].attempt.as_ref().map(|a| &a.io));
        self.probes[i].attempt = None;
        self.finish(i, result, now, out);
        true
    }

    /// Moves every probe on: attempts whose descriptors are ready (or whose
    /// time is up) end; due probes start an attempt. `exec_target` gives an
    /// exec probe's container.
    pub fn work(
        &mut self,
        now: Instant,
        exec_target: &dyn Fn(usize, ProbeKind) -> Option<ExecTarget>,
        out: &mut Vec<Verdict>,
    ) {
        self.work_hooks(now);
        for i in 0..self.probes.len() {
            let secs = self.probes[i].plan.timeout.as_secs();
            if let Some(attempt) = &mut self.probes[i].attempt {
                let step = match progress(&mut attempt.io) {
                    Step::Pending if now >= attempt.deadline => {
                        Step::Done(Err(match &attempt.io {
                            Io::Exec { pid, .. } => {
                                // The probe's process and what it started.
                                let _ = nix::sys::signal::killpg(
                                    nix::unistd::Pid::from_raw(*pid),
                                    nix::sys::signal::Signal::SIGKILL,
                                );
                                format!("timed out after {secs}s")
                            }
                            Io::Net(net) => net.timeout_message(secs),
                        }))
                    }
                    other => other,
                };
                let result = match step {
                    Step::Pending => None,
                    Step::Done(result) => Some(result),
                    Step::Warned(why) => {
                        let p = &self.probes[i];
                        self.warnings.push((p.slot, p.kind, why));
                        Some(Ok(()))
                    }
                };
                if let Some(result) = result {
                    self.probes[i].attempt = None;
                    self.finish(i, result, now, out);
                }
            }
            let p = &mut self.probes[i];
            if p.attempt.is_none() && p.next.is_some_and(|t| now >= t) {
                p.next = Some(now + p.plan.period);
                let deadline = now + p.plan.timeout;
                match begin(
                    &p.plan.handler,
                    self.target.as_ref(),
                    exec_target(p.slot, p.kind),
                    &mut p.resolved,
                ) {
                    Ok(io) => p.attempt = Some(Attempt { deadline, io }),
                    Err(e) => self.finish(i, Err(e), now, out),
                }
            }
        }
    }

    /// Moves the hooks on: a sleep that is over, an httpGet answered, one
    /// whose time is up.
    fn work_hooks(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.hooks.len() {
            let h = &mut self.hooks[i];
            let step = match (&mut h.io, h.sleep_until) {
                (_, Some(until)) if now >= until => Step::Done(Ok(())),
                (Some(io), _) => progress(io),
                (None, _) => Step::Pending,
            };
            let result = match step {
                Step::Pending if now >= h.deadline => Some(Err("timed out".into())),
                Step::Pending => None,
                Step::Done(result) => Some(result),
                // A hook's redirect elsewhere is no failure.
                Step::Warned(_) => Some(Ok(())),
            };
            match result {
                None => i += 1,
                Some(result) => {
                    let hook = self.hooks.remove(i);
                    let (slot, kind) = (hook.slot, hook.kind);
                    hook.cancel();
                    self.hooks_done.push((slot, kind, result));
                }
            }
        }
    }

    /// Counts an attempt's result and gives the verdict a crossed
    /// threshold makes.
    fn finish(
        &mut self,
        i: usize,
        result: Result<(), String>,
        now: Instant,
        out: &mut Vec<Verdict>,
    ) {
        let p = &mut self.probes[i];
        if p.next.is_none() {
            // Stopped meanwhile.
            return;
        }
        let message = result.as_ref().err().cloned();
        if let Some(why) = &message {
            self.failures.push((p.slot, p.kind, why.clone()));
        }
        match result {
            Ok(()) => {
                p.successes += 1;
                p.failures = 0;
            }
            Err(_) => {
                p.failures += 1;
                p.successes = 0;
            }
        }
        let (slot, kind, grace) = (p.slot, p.kind, p.plan.termination_grace);
        let verdict = |success: bool| Verdict {
            slot,
            kind,
            success,
            grace,
            message: message.clone(),
        };
        match kind {
            ProbeKind::Startup if p.successes >= 1 => {
                p.next = None;
                out.push(verdict(true));
                // Liveness and readiness begin now, or once their delay
                // from the container's start has passed (kubelet's rule).
                for q in self.probes.iter_mut().filter(|q| q.slot == slot) {
                    if q.kind != ProbeKind::Startup {
                        let from_start = q.container_start.unwrap_or(now) + q.plan.initial_delay;
                        q.next = Some(from_start.max(now));
                    }
                }
            }
            ProbeKind::Startup | ProbeKind::Liveness if p.failures >= p.plan.failure_threshold => {
                // The container is stopped; its probes start over with it.
                p.next = None;
                out.push(verdict(false));
            }
            ProbeKind::Readiness if !p.ready && p.successes >= p.plan.success_threshold => {
                p.ready = true;
                out.push(verdict(true));
            }
            ProbeKind::Readiness if p.ready && p.failures >= p.plan.failure_threshold => {
                p.ready = false;
                out.push(verdict(false));
            }
            _ => {}
        }
    }
}

impl Drop for Prober {
    /// An exec probe under way dies with the pod.
    fn drop(&mut self) {
        self.stop_all();
    }
}

impl HookRun {
    /// Ends it: an exec hook's process group is killed.
    fn cancel(self) {
        if let Some(Io::Exec { pid, .. }) = self.io {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Probe {
    fn reset(&mut self) {
        if let Some(Attempt {
            io: Io::Exec { pid, .. },
            ..
        }) = self.attempt
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.attempt = None;
        self.next = None;
        self.container_start = None;
        self.successes = 0;
        self.failures = 0;
        self.ready = false;
    }
}

/// Starts an attempt.
fn begin(
    handler: &ProbeHandler,
    target: Option<&Target>,
    exec: Option<ExecTarget>,
    resolved: &mut Option<Ipv4Addr>,
) -> Result<Io, String> {
    match handler {
        ProbeHandler::Tcp { host, port } => {
            let route = route_to(host.as_deref(), target, resolved)?;
            Ok(Io::Net(probe_net::tcp(&route, port_number(port)?)?))
        }
        ProbeHandler::Http {
            host,
            https,
            port,
            path,
            headers,
        } => {
            let route = route_to(host.as_deref(), target, resolved)?;
            let url = Url {
                https: *https,
                host: host.clone().unwrap_or_else(|| route.ip().to_string()),
                port: port_number(port)?,
                path: path.clone(),
            };
            Ok(Io::Net(probe_net::http(&route, url, headers)?))
        }
        ProbeHandler::Grpc { port, service } => {
            let route = route_to(None, target, resolved)?;
            Ok(Io::Net(probe_net::grpc(&route, *port, service)?))
        }
        ProbeHandler::Exec { command } => {
            let exec = exec.ok_or("the container is not running")?;
            let mut cmd = std::process::Command::new(format!(
                "/proc/self/fd/{}",
                crate::runtime::contract::fds::FD_MINIPOD
            ));
            std::os::unix::process::CommandExt::arg0(&mut cmd, "minipod");
            // Its output, stdout and stderr together as kubelet reads it.
            let out = std::fs::File::create(&exec.output)
                .map_err(|e| format!("{}: {e}", exec.output.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            crate::sys::fs::pass_fds(
                &mut cmd,
                &[(exec.config_fd, crate::runtime::contract::fds::FD_CONFIG)],
            );
            cmd.arg("__probe-exec")
                .arg(exec.pid.to_string())
                .arg("--")
                .args(command)
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let child = cmd
                .spawn()
                .map_err(|e| format!("starting the probe's command: {e}"))?;
            // Reaped by the supervisor's loop, which hands the exit to
            // `Prober::exited`.
            let pid = child.id() as i32;
            std::mem::forget(child);
            Ok(Io::Exec {
                pid,
                output: exec.output,
            })
        }
    }
}

/// An exec probe's or hook's result: exit 0 succeeds; a failure says the
/// command's output (its end, on one line), as kubelet's event does.
fn exec_result(code: i32, io: Option<&Io>) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let output = match io {
        Some(Io::Exec { output, .. }) => last_bytes(output, 512),
        _ => Vec::new(),
    };
    let text = String::from_utf8_lossy(&output);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        Err(format!("the command exited with {code}"))
    } else {
        Err(format!("the command exited with {code}: {text}"))
    }
}

/// The last `n` bytes of a file (a chatty probe's output may be large: only
/// its end is quoted, so only its end is read).
fn last_bytes(path: &std::path::Path, n: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut out = Vec::new();
    if file.seek(SeekFrom::Start(len.saturating_sub(n))).is_ok() {
        let _ = file.take(n).read_to_end(&mut out);
    }
    out
}

fn port_number(port: &ProbePort) -> Result<u16, String> {
    match port {
        ProbePort::Number(n) => Ok(*n),
        ProbePort::Unknown(name) => Err(format!("the container has no port named {name:?}")),
    }
}

/// How to reach a probe's `host` (resolved once: a name resolves in the
/// loop, blocking it, so once is the cost), or without one the pod.
fn route_to(
    host: Option<&str>,
    target: Option<&Target>,
    resolved: &mut Option<Ipv4Addr>,
) -> Result<Route, String> {
    match (host, target) {
        (Some(host), _) => {
            if let Some(ip) = *resolved {
                return Ok(Route::Direct(ip));
            }
            let ip = (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("resolving {host}: {e}"))?
                .find_map(|a| match a {
                    SocketAddr::V4(v4) => Some(*v4.ip()),
                    SocketAddr::V6(_) => None,
                })
                .ok_or_else(|| format!("{host} has no IPv4 address"))?;
            *resolved = Some(ip);
            Ok(Route::Direct(ip))
        }
        (None, Some(Target::Pod { ip, sockets })) => Ok(Route::Pod {
            ip: *ip,
            sockets: sockets.clone(),
        }),
        (None, _) => Ok(Route::Direct(Ipv4Addr::LOCALHOST)),
    }
}

/// Moves an attempt on as far as its descriptor allows without blocking.
fn progress(io: &mut Io) -> Step {
    match io {
        Io::Exec { .. } => Step::Pending,
        Io::Net(net) => net.progress(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_end_of_a_probes_output_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe-Liveness.out");
        std::fs::write(&path, format!("{}tail", "x".repeat(10_000))).unwrap();
        assert_eq!(last_bytes(&path, 6), b"xxtail");
        assert_eq!(last_bytes(&dir.path().join("none"), 6), b"");
        std::fs::write(&path, "ab").unwrap();
        assert_eq!(last_bytes(&path, 6), b"ab");
    }

    fn plan(kind_threshold: (u32, u32)) -> ProbePlan {
        ProbePlan {
            handler: ProbeHandler::Tcp {
                host: None,
                port: ProbePort::Number(1),
            },
            initial_delay: Duration::from_secs(2),
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: kind_threshold.0,
            failure_threshold: kind_threshold.1,
            termination_grace: None,
        }
    }

    #[test]
    fn thresholds_and_startup_gating() {
        let probes = Probes {
            startup: Some(plan((1, 2))),
            liveness: Some(plan((1, 3))),
            readiness: Some(plan((2, 2))),
        };
        let mut p = Prober::new(&[(0, probes)], None);
        let t0 = Instant::now();
        p.started(0, t0);
        // Only the startup probe is scheduled, after its delay.
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(2)));
        let mut out = Vec::new();
        p.finish(0, Ok(()), t0 + Duration::from_secs(2), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].success && out[0].kind == ProbeKind::Startup);
        // Liveness and readiness begin once their own delay from the
        // container's start has passed: here at once.
        assert_eq!(p.probes[1].next, Some(t0 + Duration::from_secs(2)));
        assert_eq!(p.probes[0].next, None);
        out.clear();
        // Readiness needs two successes in a row.
        p.finish(2, Ok(()), t0, &mut out);
        assert!(out.is_empty());
        p.finish(2, Ok(()), t0, &mut out);
        assert_eq!(
            out.pop().map(|v| (v.kind, v.success)),
            Some((ProbeKind::Readiness, true))
        );
        p.finish(2, Err("x".into()), t0, &mut out);
        assert!(out.is_empty());
        p.finish(2, Err("x".into()), t0, &mut out);
        assert_eq!(
            out.pop().map(|v| (v.kind, v.success)),
            Some((ProbeKind::Readiness, false))
        );
        // Liveness fails at its third failure in a row; a success between resets.
        p.finish(1, Err("x".into()), t0, &mut out);
        p.finish(1, Ok(()), t0, &mut out);
        p.finish(1, Err("x".into()), t0, &mut out);
        p.finish(1, Err("x".into()), t0, &mut out);
        assert!(out.is_empty());
        p.finish(1, Err("down".into()), t0, &mut out);
        let v = out.pop().unwrap();
        assert_eq!((v.kind, v.success), (ProbeKind::Liveness, false));
        assert_eq!(v.message.as_deref(), Some("down"));
        // A stopped container's probes are off.
        p.stopped(0);
        assert_eq!(p.next_deadline(), None);
    }
}
