//! The supervisor's decisions, as a pure state machine: events come in
//! (a container started or exited, a timer fired, a stop was asked for, a
//! probe answered), actions go out (start containers, signal one, back off,
//! report, exit with a code). Nothing here touches a process, a file or the
//! clock: the shell (`supervisor::pod`) carries the actions out and passes
//! the time in with each event, so every rule is unit-tested below.
//!
//! The rules are kubelet's:
//! - init containers run one at a time, in order, each to success; native
//!   sidecars (init containers with `restartPolicy: Always`) start in their
//!   place in that order and keep running; app containers start together
//!   once every init container has succeeded;
//! - the pod's `restartPolicy` decides whether an exited app container
//!   restarts (Always: yes; OnFailure: if it failed; Never: no), and whether
//!   a failed init container is retried (Always, OnFailure) or fails the pod
//!   (Never); a sidecar always restarts;
//! - restarts wait out a crash-loop backoff that starts at the initial delay,
//!   doubles up to 5 minutes, and starts over after a container ran 10
//!   minutes;
//! - the pod ends when every app container has exited for good (or the
//!   `--exit-code-from` container has); then app and init containers get
//!   their stop signal, sidecars theirs once the others are gone, one at a
//!   time in reverse order, and whatever still runs when the grace period
//!   ends is killed;
//! - `activeDeadlineSeconds` (the pod's, or its Job's) fails the pod with
//!   `DeadlineExceeded` once it has run that long;
//! - an eviction (an emptyDir over its sizeLimit) fails the pod and kills
//!   what runs at once, as kubelet evicts with a grace period of 0;
//! - a Job's pod follows the Job controller: with `restartPolicy:
//!   OnFailure` each failed container counts toward `backoffLimit`, with
//!   `Never` each failed attempt of the pod does, and a failed attempt is
//!   run again in the same pod (Kubernetes would create a new one) after
//!   the Job's backoff (the initial delay doubling up to 6 minutes); the
//!   failure past the limit fails the pod (`BackoffLimitExceeded`).

use std::time::{Duration, Instant};

pub use crate::runtime::contract::plan::{JobLimits, Role};
use crate::runtime::state::Phase;
use crate::spec::RestartPolicy;

/// kubelet's crash-loop backoff: doubles from the initial delay up to this,
/// and starts over once a container ran `BACKOFF_RESET`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// The Job controller's backoff between failed pods doubles up to this.
pub const MAX_JOB_BACKOFF: Duration = Duration::from_secs(360);

/// `run`'s code when the pod failed for minipod's own reasons.
const MINIPOD_ERROR: i32 = crate::EXIT_MINIPOD_ERROR as i32;

/// The parts of the pod's spec the decisions depend on.
#[derive(Clone, Debug)]
pub struct Policy {
    pub restart_policy: RestartPolicy,
    /// The first restart delay (kubelet: 10 s).
    pub initial_backoff: Duration,
    /// `terminationGracePeriodSeconds`, until `minipod stop -t` says otherwise.
    pub termination_grace: Duration,
    /// The slot whose exit ends the pod and gives `run` its exit code.
    pub exit_code_from: Option<usize>,
    /// The pod's `activeDeadlineSeconds`: the pod fails once it ran this
    /// long (a Job's pod: the attempt fails, and counts as one).
    pub active_deadline: Option<Duration>,
    /// Set for a Job's pod.
    pub job: Option<JobLimits>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As kubelet's events spell it: `Liveness probe failed: …`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

#[derive(Debug)]
pub enum Event {
    /// The pod's namespaces are up: start what comes first.
    Begin { now: Instant },
    /// The slots of one `Action::Start` ran their set-up: each is running,
    /// or says why its set-up failed (its process is still to be reaped).
    Started {
        slots: Vec<(usize, Result<(), String>)>,
        now: Instant,
    },
    /// Starting these slots failed before any of them ran.
    StartFailed {
        slots: Vec<usize>,
        message: String,
        now: Instant,
    },
    Exited {
        slot: usize,
        code: i32,
        now: Instant,
    },
    /// The pause process, which holds the pod's namespaces, is gone.
    PauseExited { now: Instant },
    /// A deadline from `next_deadline` passed.
    Tick { now: Instant },
    /// SIGINT, SIGTERM or SIGHUP: stop gracefully; a second one kills.
    Interrupted { now: Instant },
    /// `minipod stop`: stop, with this grace period.
    StopRequested { grace: Duration, now: Instant },
    /// The pod cannot go on: a disk emptyDir grew past its sizeLimit
    /// (kubelet's eviction: reason `Evicted`, kubelet's message), or the
    /// holder died and took the pod's network with it (`HolderDied`). The
    /// pod is killed at once and fails.
    Lost {
        reason: &'static str,
        message: String,
        now: Instant,
    },
    /// A probe's verdict, once its thresholds are crossed.
    Probe {
        slot: usize,
        kind: ProbeKind,
        success: bool,
        /// A failed liveness or startup probe's own
        /// `terminationGracePeriodSeconds`, else the pod's is used.
        grace: Option<Duration>,
        now: Instant,
    },
}

/// Why the pod failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An init container failed and the restart policy is Never.
    InitFailed {
        slot: usize,
        code: i32,
    },
    /// Containers could not be set up; the message says why.
    Setup(String),
    PauseExited,
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// Lost (`Event::Lost`): a one-word reason (kubelet's `Evicted`) and
    /// the message.
    Lost {
        reason: &'static str,
        message: String,
    },
    /// A Job's failures went past its `backoffLimit`; `code` is the last
    /// failed container's.
    BackoffLimitExceeded {
        failures: u32,
        code: i32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start these slots together (their set-up runs in parallel), then
    /// answer with `Event::Started` or `Event::StartFailed`. `restart`: a
    /// crash-loop restart (counted in the container's `restartCount`).
    Start { slots: Vec<usize>, restart: bool },
    /// Send the slot's container its stop signal.
    Stop(usize),
    /// SIGKILL the slot's container.
    Kill(usize),
    /// The slot exited and restarts at `until` (CrashLoopBackOff).
    BackOff { slot: usize, until: Instant },
    /// The slot's restart is off (the pod stops): it stays as it ended.
    CancelRestart(usize),
    /// Every app container started: the pod runs (`run -d` may return).
    PodRunning,
    /// The pod failed; it stops now.
    PodFailed { failure: Failure, code: i32 },
    /// The pod's very first start failed: nothing ran, nothing to stop.
    Abort(Failure),
    /// A readiness probe changed the slot's Ready condition.
    Ready { slot: usize, ready: bool },
    /// A Job's attempt failed (its `failures`th failure): every container
    /// starts again, from the first init container, at `until`.
    RetryPod { failures: u32, until: Instant },
    /// Nothing of the pod runs any more: `run` exits with `code`.
    Exit { code: i32, phase: Phase },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Run {
    NeverStarted,
    /// An `Action::Start` for it is out; its answer has not come.
    Starting,
    Running {
        since: Instant,
    },
    /// Exited, with a restart due at `until`.
    BackingOff {
        until: Instant,
        code: i32,
    },
    /// Exited for good (unless something starts it again).
    Exited {
        code: i32,
    },
}

#[derive(Debug)]
struct Slot {
    role: Role,
    run: Run,
    backoff: Duration,
    /// We signalled it to stop: its exit is not a failure of its own.
    stopped_by_us: bool,
    /// Killed by the shell at the end of the grace period.
    killed: bool,
    /// Stopped by a failed liveness or startup probe: restarts as the
    /// restart policy says, although we stopped it.
    probe_failed: bool,
    /// Stopped by a probe: killed then if it still runs.
    kill_at: Option<Instant>,
    ready: bool,
    /// Has a startup probe: a sidecar holds the next init container back
    /// until the probe first succeeds.
    startup_probed: bool,
    /// Its startup probe succeeded once.
    startup_passed: bool,
}

#[derive(Debug)]
struct Stopping {
    deadline: Instant,
    /// A Job's failed attempt is ending: retry once all is stopped.
    then_retry: bool,
}

pub struct Machine {
    policy: Policy,
    slots: Vec<Slot>,
    /// The grace period of the next stop (`minipod stop -t` changes it).
    grace: Duration,
    stopping: Option<Stopping>,
    failure: Option<(Failure, i32)>,
    /// Exit codes in the order containers ended, for `run`'s own code.
    exits: Vec<i32>,
    /// A container ran at least once: a failure from now on stops the pod
    /// instead of aborting its start.
    anything_started: bool,
    reported_running: bool,
    done: bool,
    /// When the pod began, for a Job's `activeDeadlineSeconds`.
    began: Option<Instant>,
    /// When this attempt began, for the pod's `activeDeadlineSeconds`.
    attempt_began: Option<Instant>,
    /// A Job's container restarts in this attempt (OnFailure counts them).
    attempt_restarts: u32,
    /// A Job's failed attempts so far.
    failed_attempts: u32,
    /// The delay before a Job's next attempt.
    job_backoff: Duration,
    /// A Job's next attempt starts then.
    retry_at: Option<Instant>,
    /// An init container failed in this attempt of a Job's pod.
    attempt_failed: bool,
    /// Starts after the first attempt count as restarts.
    retrying: bool,
}

impl Machine {
    /// `roles`: init containers and sidecars in spec order, then the app
    /// containers; slot numbers are indexes into it.
    pub fn new(policy: Policy, roles: &[Role]) -> Machine {
        let slots = roles
            .iter()
            .map(|&role| Slot {
                role,
                run: Run::NeverStarted,
                backoff: policy.initial_backoff,
                stopped_by_us: false,
                killed: false,
                probe_failed: false,
                kill_at: None,
                ready: false,
                startup_probed: false,
                startup_passed: false,
            })
            .collect();
        let policy_backoff = policy.initial_backoff;
        Machine {
            grace: policy.termination_grace,
            policy,
            slots,
            stopping: None,
            failure: None,
            exits: Vec::new(),
            anything_started: false,
            reported_running: false,
            done: false,
            began: None,
            attempt_began: None,
            attempt_restarts: 0,
            failed_attempts: 0,
            job_backoff: policy_backoff,
            retry_at: None,
            attempt_failed: false,
            retrying: false,
        }
    }

    /// Marks the slots that have a startup probe.
    pub fn with_startup_probes(mut self, slots: &[usize]) -> Machine {
        for &i in slots {
            self.slots[i].startup_probed = true;
        }
        self
    }

    /// Whether a stop has begun (a second interrupt then kills).
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// The next moment an event is due without outside news: a restart or
    /// the end of the grace period. The shell sends `Event::Tick` then.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        if let Some(stop) = &self.stopping {
            // The pod's deadline, or a probe-stopped container's, if nearer.
            return self
                .slots
                .iter()
                .filter(|s| s.is_live() && !s.killed)
                .map(|s| s.kill_at.map_or(stop.deadline, |k| k.min(stop.deadline)))
                .min();
        }
        self.slots
            .iter()
            .filter_map(|s| match s.run {
                Run::BackingOff { until, .. } => Some(until),
                _ => None,
            })
            .chain(self.retry_at)
            .chain(
                self.slots
                    .iter()
                    .filter(|s| s.is_live() && !s.killed)
                    .filter_map(|s| s.kill_at),
            )
            .chain(self.job_deadline())
            .chain(self.pod_deadline())
            .min()
    }

    /// When the Job's `activeDeadlineSeconds` runs out, while it still can.
    fn job_deadline(&self) -> Option<Instant> {
        let d = self.policy.job?.active_deadline?;
        (self.failure.is_none() && self.stopping.is_none())
            .then(|| self.began?.checked_add(d))
            .flatten()
    }

    /// When the pod's `activeDeadlineSeconds` runs out, while this attempt
    /// runs.
    fn pod_deadline(&self) -> Option<Instant> {
        let d = self.policy.active_deadline?;
        let running = self.failure.is_none()
            && self.stopping.is_none()
            && self.retry_at.is_none()
            && !self.attempt_failed;
        running
            .then(|| self.attempt_began?.checked_add(d))
            .flatten()
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let now = match event {
            Event::Begin { now } => {
                self.began = Some(now);
                self.attempt_began = Some(now);
                now
            }
            Event::Tick { now } => now,
            Event::Started { slots, now } => {
                self.started(slots, now, &mut out);
                now
            }
            Event::StartFailed {
                slots,
                message,
                now,
            } => {
                for i in slots {
                    self.slots[i].run = Run::NeverStarted;
                }
                self.fail_start(message, &mut out);
                now
            }
            Event::Exited { slot, code, now } => {
                self.exited(slot, code, now, &mut out);
                now
            }
            Event::PauseExited { now } => {
                self.fail(Failure::PauseExited, MINIPOD_ERROR, &mut out);
                now
            }
            Event::Interrupted { now } => {
                match &mut self.stopping {
                    None => self.begin_stop(now, &mut out),
                    Some(stop) => {
                        stop.deadline = now;
                        // Asked to stop: a failed Job attempt ends the pod.
                        stop.then_retry = false;
                    }
                }
                now
            }
            Event::StopRequested { grace, now } => {
                self.grace = grace;
                match &mut self.stopping {
                    None => self.begin_stop(now, &mut out),
                    Some(stop) => {
                        stop.deadline = stop.deadline.min(now + grace);
                        stop.then_retry = false;
                    }
                }
                now
            }
            Event::Lost {
                reason,
                message,
                now,
            } => {
                // Kubelet evicts with a grace period of 0.
                self.grace = Duration::ZERO;
                if let Some(stop) = &mut self.stopping {
                    stop.deadline = now;
                    stop.then_retry = false;
                }
                let code = self.last_failed_code();
                self.fail(Failure::Lost { reason, message }, code, &mut out);
                now
            }
            Event::Probe {
                slot,
                kind,
                success,
                grace,
                now,
            } => {
                let grace = grace.unwrap_or(self.grace);
                self.probed(slot, kind, success, later(now, grace), &mut out);
                now
            }
        };
        self.step(now, &mut out);
        out
    }

    fn started(
        &mut self,
        slots: Vec<(usize, Result<(), String>)>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let mut errors = Vec::new();
        let mut apps = false;
        for (i, result) in slots {
            let slot = &mut self.slots[i];
            slot.run = Run::Running { since: now };
            slot.stopped_by_us = false;
            slot.killed = false;
            slot.probe_failed = false;
            slot.kill_at = None;
            slot.ready = false;
            apps |= slot.role == Role::App;
            if let Err(message) = result {
                errors.push(message);
            }
        }
        if !errors.is_empty() {
            self.fail_start(errors.join("; "), out);
            return;
        }
        self.anything_started = true;
        if apps && !self.reported_running && self.stopping.is_none() {
            self.reported_running = true;
            out.push(Action::PodRunning);
        }
    }

    /// A start failed: the pod fails, or, if nothing ever ran, its start
    /// is given up.
    fn fail_start(&mut self, message: String, out: &mut Vec<Action>) {
        if self.anything_started {
            self.fail(Failure::Setup(message), MINIPOD_ERROR, out);
        } else {
            self.done = true;
            out.push(Action::Abort(Failure::Setup(message)));
        }
    }

    fn exited(&mut self, i: usize, code: i32, now: Instant, out: &mut Vec<Action>) {
        let stopping = self.stopping.is_some();
        let chosen = self.policy.exit_code_from == Some(i);
        let policy = self.policy.restart_policy;
        let slot = &mut self.slots[i];
        let since = match slot.run {
            Run::Running { since } => since,
            _ => now,
        };
        slot.run = Run::Exited { code };
        if slot.ready {
            slot.ready = false;
            out.push(Action::Ready {
                slot: i,
                ready: false,
            });
        }
        let by_us = slot.stopped_by_us && !slot.probe_failed;
        if !(slot.stopped_by_us && slot.role == Role::Sidecar) {
            self.exits.push(code);
        }
        // A container a liveness or startup probe stopped failed, whatever
        // its exit code (kubelet restarts it unless the policy is Never).
        let failed = code != 0 || slot.probe_failed;
        let restart = !stopping
            && !by_us
            && !chosen
            && match slot.role {
                Role::Sidecar => true,
                Role::Init => policy != RestartPolicy::Never && failed,
                Role::App => match policy {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => failed,
                    RestartPolicy::Never => false,
                },
            };
        if let Some(job) = self.policy.job {
            if restart && policy == RestartPolicy::OnFailure {
                // The Job controller counts the restarts of the pod's
                // containers (sidecars too): a limit of N allows N - 1.
                self.attempt_restarts += 1;
                let limit = job.backoff_limit;
                if self.attempt_restarts >= limit.max(1) {
                    let failures = self.attempt_restarts;
                    let code = if code != 0 { code } else { 1 };
                    self.fail(Failure::BackoffLimitExceeded { failures, code }, code, out);
                    return;
                }
            } else if slot.role == Role::Init && code != 0 && !by_us && !stopping {
                // Never: the attempt failed; `step` counts it.
                self.attempt_failed = true;
                return;
            }
        }
        if restart {
            if now.saturating_duration_since(since) >= BACKOFF_RESET {
                slot.backoff = self.policy.initial_backoff;
            }
            let until = now + slot.backoff;
            slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
            slot.run = Run::BackingOff { until, code };
            out.push(Action::BackOff { slot: i, until });
        } else if slot.role == Role::Init && code != 0 && !by_us && !stopping {
            self.fail(Failure::InitFailed { slot: i, code }, code, out);
        }
    }

    fn probed(
        &mut self,
        i: usize,
        kind: ProbeKind,
        success: bool,
        kill_at: Instant,
        out: &mut Vec<Action>,
    ) {
        let stopping = self.stopping.is_some();
        let slot = &mut self.slots[i];
        if !matches!(slot.run, Run::Running { .. }) {
            return;
        }
        match kind {
            ProbeKind::Readiness => {
                if slot.ready != success {
                    slot.ready = success;
                    out.push(Action::Ready {
                        slot: i,
                        ready: success,
                    });
                }
            }
            ProbeKind::Startup if success => slot.startup_passed = true,
            ProbeKind::Liveness | ProbeKind::Startup => {
                if !success && !slot.stopped_by_us && !stopping {
                    slot.stopped_by_us = true;
                    slot.probe_failed = true;
                    slot.kill_at = Some(kill_at);
                    if slot.ready {
                        slot.ready = false;
                        out.push(Action::Ready {
                            slot: i,
                            ready: false,
                        });
                    }
                    out.push(Action::Stop(i));
                }
            }
        }
    }

    fn fail(&mut self, failure: Failure, code: i32, out: &mut Vec<Action>) {
        if let Some(stop) = &mut self.stopping {
            stop.then_retry = false;
        }
        if self.failure.is_none() {
            self.failure = Some((failure.clone(), code));
            out.push(Action::PodFailed { failure, code });
        }
    }

    /// Whether this attempt of a Job's pod ended failed: an init container
    /// or the pod's deadline failed it, or (Never) an app container failed.
    fn job_attempt_failed(&self) -> bool {
        self.policy.job.is_some()
            && self.failure.is_none()
            && (self.attempt_failed
                || (self.policy.restart_policy == RestartPolicy::Never
                    && self.slots.iter().any(|s| {
                        s.role == Role::App && matches!(s.run, Run::Exited { code } if code != 0)
                    })))
    }

    /// The code of the container that failed last, for a failure that has
    /// none of its own.
    fn last_failed_code(&self) -> i32 {
        self.exits
            .iter()
            .rev()
            .copied()
            .find(|&c| c != 0)
            .unwrap_or(1)
    }

    /// Whether the pod is done running and should be stopped.
    fn should_stop(&self) -> bool {
        if self.failure.is_some() || self.attempt_failed {
            return true;
        }
        if let Some(i) = self.policy.exit_code_from
            && matches!(self.slots[i].run, Run::Exited { .. })
        {
            return true;
        }
        let mut apps = self.slots.iter().filter(|s| s.role == Role::App).peekable();
        apps.peek().is_some() && apps.all(|s| matches!(s.run, Run::Exited { .. }))
    }

    fn begin_stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.retry_at = None;
        self.stopping = Some(Stopping {
            deadline: later(now, self.grace),
            then_retry: false,
        });
        for (i, s) in self.slots.iter_mut().enumerate() {
            // A container waiting for its restart stays as it ended.
            if let Run::BackingOff { code, .. } = s.run {
                s.run = Run::Exited { code };
                out.push(Action::CancelRestart(i));
            }
        }
    }

    /// Moves the pod forward after every event.
    fn step(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.done {
            return;
        }
        // A container a probe stopped that outlived its grace period.
        if self.stopping.is_none() {
            for (i, s) in self.slots.iter_mut().enumerate() {
                if s.is_live() && !s.killed && s.kill_at.is_some_and(|t| now >= t) {
                    s.killed = true;
                    out.push(Action::Kill(i));
                }
            }
        }
        if self.job_deadline().is_some_and(|d| now >= d) {
            let code = self.last_failed_code();
            self.fail(Failure::DeadlineExceeded, code, out);
        }
        if self.pod_deadline().is_some_and(|d| now >= d) {
            if self.policy.job.is_some() {
                // The Job controller counts the failed pod and tries again.
                self.attempt_failed = true;
            } else {
                let code = self.last_failed_code();
                self.fail(Failure::DeadlineExceeded, code, out);
            }
        }
        if let Some(until) = self.retry_at
            && self.stopping.is_none()
            && self.failure.is_none()
        {
            if now < until {
                return;
            }
            self.retry_at = None;
            self.retrying = true;
            self.attempt_failed = false;
            self.attempt_restarts = 0;
            self.attempt_began = Some(now);
            // A new attempt: its exits alone decide `run`'s code.
            self.exits.clear();
            for s in &mut self.slots {
                s.run = Run::NeverStarted;
                s.stopped_by_us = false;
                s.killed = false;
                s.backoff = self.policy.initial_backoff;
                // A new attempt's sidecars hold the init containers back again.
                s.startup_passed = false;
            }
        }
        if self.stopping.is_none() && self.should_stop() {
            if self.job_attempt_failed() {
                self.failed_attempts += 1;
                let limit = self.policy.job.map_or(0, |j| j.backoff_limit);
                if self.failed_attempts > limit {
                    let failures = self.failed_attempts;
                    let code = self.last_failed_code();
                    self.fail(Failure::BackoffLimitExceeded { failures, code }, code, out);
                    self.begin_stop(now, out);
                } else {
                    self.begin_stop(now, out);
                    if let Some(stop) = &mut self.stopping {
                        stop.then_retry = true;
                    }
                }
            } else {
                self.begin_stop(now, out);
            }
        }
        match &self.stopping {
            Some(stop) => {
                let deadline = stop.deadline;
                self.step_stop(now, deadline, out);
            }
            None => self.step_start(now, out),
        }
    }

    /// Stopping: app and init containers get their stop signal, then the
    /// sidecars one at a time from the last; at the deadline, all is killed.
    fn step_stop(&mut self, now: Instant, deadline: Instant, out: &mut Vec<Action>) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            let due = now >= deadline || s.kill_at.is_some_and(|k| now >= k);
            if due && s.is_live() && !s.killed {
                s.killed = true;
                s.stopped_by_us = true;
                out.push(Action::Kill(i));
            }
        }
        if now < deadline {
            for (i, s) in self.slots.iter_mut().enumerate() {
                if s.role != Role::Sidecar && s.is_running() && !s.stopped_by_us {
                    s.stopped_by_us = true;
                    out.push(Action::Stop(i));
                }
            }
            let others_gone = self
                .slots
                .iter()
                .all(|s| s.role == Role::Sidecar || !s.is_live());
            if others_gone
                && let Some(last) = self
                    .slots
                    .iter_mut()
                    .enumerate()
                    .rev()
                    .find(|(_, s)| s.role == Role::Sidecar && s.is_live())
                && !last.1.stopped_by_us
                && last.1.is_running()
            {
                last.1.stopped_by_us = true;
                out.push(Action::Stop(last.0));
            }
        }
        if self.slots.iter().all(|s| !s.is_live()) {
            if self.stopping.as_ref().is_some_and(|s| s.then_retry) {
                self.stopping = None;
                let until = now + self.job_backoff;
                self.job_backoff = (self.job_backoff * 2).min(MAX_JOB_BACKOFF);
                self.retry_at = Some(until);
                out.push(Action::RetryPod {
                    failures: self.failed_attempts,
                    until,
                });
                return;
            }
            self.done = true;
            let code = self.final_code();
            out.push(Action::Exit {
                code,
                phase: self.final_phase(code),
            });
        }
    }

    /// Running: the next init container or sidecar in order, then the app
    /// containers together, then the restarts that are due. One `Start` at a
    /// time: the next comes with the answer to this one, so a start that
    /// fails the pod is never followed by one already decided.
    fn step_start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.slots.iter().any(|s| s.run == Run::Starting) {
            return;
        }
        let mut init_done = true;
        for (i, slot) in self.slots.iter().enumerate() {
            let next = match (slot.role, slot.run) {
                (Role::App, _) => continue,
                (_, Run::NeverStarted) => true,
                // A sidecar that started once (and passed its startup
                // probe once, when it has one) is in place: go on.
                (Role::Sidecar, _) if !slot.startup_probed || slot.startup_passed => continue,
                (Role::Sidecar, _) => false,
                (Role::Init, Run::Exited { code: 0 }) => continue,
                (Role::Init, _) => false,
            };
            if next {
                self.start(vec![i], self.retrying, out);
                return;
            }
            init_done = false;
            break;
        }
        if init_done {
            let fresh: Vec<usize> = (0..self.slots.len())
                .filter(|&i| {
                    self.slots[i].role == Role::App && self.slots[i].run == Run::NeverStarted
                })
                .collect();
            if !fresh.is_empty() {
                self.start(fresh, self.retrying, out);
                return;
            }
        }
        let due = self
            .slots
            .iter()
            .position(|s| matches!(s.run, Run::BackingOff { until, .. } if until <= now));
        if let Some(i) = due {
            self.start(vec![i], true, out);
        }
    }

    fn start(&mut self, slots: Vec<usize>, restart: bool, out: &mut Vec<Action>) {
        for &i in &slots {
            self.slots[i].run = Run::Starting;
        }
        out.push(Action::Start { slots, restart });
    }

    /// `run`'s exit code: the chosen container's, else the failure's, else
    /// the first non-zero exit.
    fn final_code(&self) -> i32 {
        if let Some(i) = self.policy.exit_code_from
            && let Run::Exited { code } = self.slots[i].run
        {
            return code;
        }
        if let Some((_, code)) = &self.failure {
            return *code;
        }
        if self.policy.job.is_some() && self.apps_succeeded() {
            // A Job completes once its pod succeeds, whatever failed before.
            return 0;
        }
        self.exits.iter().copied().find(|&c| c != 0).unwrap_or(0)
    }

    fn apps_succeeded(&self) -> bool {
        self.slots
            .iter()
            .filter(|s| s.role == Role::App)
            .all(|s| s.run == Run::Exited { code: 0 })
    }

    fn final_phase(&self, code: i32) -> Phase {
        if self.failure.is_none() && self.apps_succeeded() && code == 0 {
            Phase::Succeeded
        } else {
            Phase::Failed
        }
    }
}

/// `now + d`, or far in the future when that does not fit in an Instant
/// (a grace period of i64::MAX seconds is valid YAML).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)))
}

impl Slot {
    fn is_running(&self) -> bool {
        matches!(self.run, Run::Running { .. })
    }

    /// Has a process the shell must see end (or is about to).
    fn is_live(&self) -> bool {
        matches!(self.run, Run::Running { .. } | Run::Starting)
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
