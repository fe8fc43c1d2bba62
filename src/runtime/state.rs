//! A pod's state as its supervisor records it (`state.json` in the pod's
//! directory, replaced atomically on every change), and how other commands
//! (`ps`, `inspect`, `wait`, `stop`, `rm`) find pods and tell whether their
//! supervisor still lives.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::paths::Roots;
use crate::sys::lock::{FileLock, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodState {
    pub name: String,
    pub namespace: String,
    pub phase: Phase,
    /// Why the pod failed, when it did.
    pub message: Option<String>,
    pub supervisor_pid: i32,
    pub pause_pid: i32,
    pub pod_ip: Option<String>,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// What `minipod run` returns (or returned) for this pod.
    pub exit_code: Option<i32>,
    /// Whether the pod runs detached (`run -d`): its state stays until `rm`.
    pub detached: bool,
    pub grace_seconds: u64,
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// Native sidecar (an init container with `restartPolicy: Always`).
    pub sidecar: bool,
    pub state: ContainerState,
    pub last_state: Option<ContainerState>,
    pub restart_count: u32,
    /// Host pid of the container's main process while it runs.
    pub pid: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    Waiting {
        reason: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

/// The files of one pod under the run root.
#[derive(Debug, Clone)]
pub struct PodPaths {
    pub dir: PathBuf,
    pub lock: PathBuf,
    control_socket: PathBuf,
}

impl PodPaths {
    pub fn new(roots: &Roots, name: &str) -> PodPaths {
        PodPaths {
            dir: roots.pods().join(name),
            // Not `<name>.lock` beside the directory: a name may have 253
            // characters, and a file name 255.
            lock: roots.run.join("pod-locks").join(name),
            // A unix socket's path must fit in 108 bytes, and a pod's name
            // may have 253: the socket is named by a hash of the name.
            control_socket: roots
                .run
                .join("ctl")
                .join(format!("{:016x}.sock", crate::sys::hash::fnv1a64(name))),
        }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn control_socket(&self) -> &Path {
        &self.control_socket
    }
    pub fn pod_yaml(&self) -> PathBuf {
        self.dir.join("pod.yaml")
    }
    pub fn log(&self, container: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{container}.log"))
    }

    pub fn read_state(&self) -> Result<PodState> {
        let bytes = std::fs::read(self.state())
            .with_context(|| format!("reading {}", self.state().display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid", self.state().display()))
    }

    /// Whether the pod's supervisor still runs: it holds the pod lock for
    /// its whole life.
    pub fn supervisor_alive(&self) -> bool {
        if !self.lock.exists() {
            return false;
        }
        matches!(FileLock::try_acquire(&self.lock, Mode::Shared), Ok(None))
    }
}

/// Every pod directory under the run root, by name.
pub fn list_pods(roots: &Roots) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(roots.pods())
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The pod named `name`, or a clear error.
pub fn find_pod(roots: &Roots, name: &str) -> Result<(PodPaths, PodState)> {
    let paths = PodPaths::new(roots, name);
    if !paths.dir.is_dir() {
        return Err(anyhow!(
            "no pod named {name:?}; `minipod ps -a` lists the pods"
        ));
    }
    let state = paths
        .read_state()
        .with_context(|| format!("pod {name} has no readable state (it may still be starting)"))?;
    Ok((paths, state))
}

/// The status `ps` shows: the recorded phase, unless the supervisor died
/// without recording an end.
pub fn effective_phase(paths: &PodPaths, state: &PodState) -> (Phase, Option<String>) {
    let ended = matches!(state.phase, Phase::Succeeded | Phase::Failed);
    if !ended && !paths.supervisor_alive() {
        return (
            Phase::Failed,
            Some("the pod's supervisor died; `minipod rm` cleans up".to_string()),
        );
    }
    (state.phase, state.message.clone())
}
