//! What `minipod run` hands the supervisor: the pod worked out and its
//! files written. The plan travels in a sealed memfd on `fds::FD_PLAN`,
//! never in a file: it carries the containers' environments, Secret values
//! among them.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::container::ContainerConfig;
use super::pause::PauseConfig;
use crate::net::portfwd;
use crate::paths::Roots;
use crate::runtime::state::{ContainerStatus, PodState};
use crate::spec::RestartPolicy;

/// Changes whenever `SupervisorPlan` does: `minipod` and
/// `minipod-supervisor` must come from the same build.
pub const PLAN_VERSION: u32 = 11;

#[derive(Serialize, Deserialize)]
pub struct SupervisorPlan {
    pub version: u32,
    pub roots: Roots,
    pub name: String,
    /// Started by `run -d`: no terminal output; report the start on fd 3.
    pub detached: bool,
    /// One of several pods in the foreground: `run` reads the report and
    /// says a failed start itself.
    pub attached: bool,
    /// `--log-level info` or finer: say when containers exit and restart.
    pub verbose: bool,
    /// End the pod when this container exits, with its exit code.
    pub exit_code_from: Option<String>,
    /// The first restart delay (kubelet: 10 s).
    pub initial_backoff: Duration,
    pub termination_grace: Duration,
    pub restart_policy: RestartPolicy,
    /// The pod's `activeDeadlineSeconds`.
    pub active_deadline: Option<Duration>,
    /// Set for a Job's pod: its `backoffLimit` and `activeDeadlineSeconds`.
    pub job: Option<JobLimits>,
    pub hostname: String,
    pub host_aliases: Vec<(String, Vec<String>)>,
    pub host_network: bool,
    /// The pause's config but for what the supervisor fills in: its own
    /// pid, the network, hostPort serving.
    pub pause: PauseConfig,
    /// The named volumes the pod mounts, each with its lock file: the
    /// supervisor holds each lock shared for the pod's life (`volume rm`
    /// is refused meanwhile) and fails the start if one is gone.
    pub volume_locks: Vec<(String, PathBuf)>,
    /// Disk emptyDirs with a sizeLimit, checked every
    /// `supervisor::eviction::INTERVAL`.
    pub size_limits: Vec<SizeLimit>,
    pub ports: Vec<portfwd::Published>,
    pub log_max_bytes: u64,
    pub state: PodState,
    /// Init containers (and sidecars) in order, then app containers.
    pub slots: Vec<SlotPlan>,
}

/// A disk emptyDir's `sizeLimit`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SizeLimit {
    pub volume: String,
    pub dir: PathBuf,
    pub limit_bytes: u64,
}

/// What the Job controller holds a Job's pod to.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct JobLimits {
    pub backoff_limit: u32,
    /// The Job's `activeDeadlineSeconds`, from the first attempt on.
    pub active_deadline: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Role {
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    App,
}

#[derive(Serialize, Deserialize)]
pub struct SlotPlan {
    pub role: Role,
    /// What `__container` gets (on `fds::FD_CONFIG`), completed once the
    /// pause runs.
    pub config: ContainerConfig,
    pub stop_signal: i32,
    pub log: PathBuf,
    /// The container's name column on the terminal.
    pub prefix: String,
    /// Its startup, liveness and readiness probes.
    pub probes: crate::spec::Probes,
    /// Its `lifecycle.postStart` hook.
    pub post_start: Option<crate::spec::Hook>,
    /// Its `lifecycle.preStop` hook.
    pub pre_stop: Option<crate::spec::Hook>,
    /// `stdin`: the supervisor holds the container's stdin open (a pipe,
    /// or the pty with `tty`) and feeds it what attach clients type.
    pub stdin: bool,
    /// `stdinOnce`: stdin is closed when the first attach session with
    /// stdin ends, until the container is started again.
    pub stdin_once: bool,
    pub status: ContainerStatus,
}

impl SupervisorPlan {
    /// The plan in a sealed memfd, for the supervisor's `FD_PLAN`.
    pub fn to_memfd(&self) -> Result<OwnedFd> {
        let json = serde_json::to_vec(self)?;
        crate::sys::fs::sealed_memfd(c"minipod-plan", &json)
    }

    /// The plan `minipod run` passed on `FD_PLAN` (closed once read).
    pub fn read_passed() -> Result<SupervisorPlan> {
        let bytes = crate::sys::fs::take_passed_fd(super::fds::FD_PLAN)
            .context("minipod-supervisor is started by `minipod run`, not by hand")?;
        SupervisorPlan::parse(&bytes)
    }

    /// One that does not parse is most likely from another build: its
    /// version says so.
    fn parse(bytes: &[u8]) -> Result<SupervisorPlan> {
        #[derive(Deserialize)]
        struct Version {
            version: Option<u32>,
        }
        let plan = serde_json::from_slice::<SupervisorPlan>(bytes);
        let given = match &plan {
            Ok(p) => Some(p.version),
            Err(_) => serde_json::from_slice::<Version>(bytes)
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
        // Not serde's message: it may quote a value (a Secret's).
        plan.map_err(|e| {
            anyhow::anyhow!(
                "the plan is not valid (line {}, column {})",
                e.line(),
                e.column()
            )
        })
    }
}
