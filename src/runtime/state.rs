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

/// The version of `state.json`. A running pod's supervisor may come from
/// an older build than the `minipod` that lists, stops or removes it, so
/// fields are only ever added, with defaults; a change an older state cannot
/// be read under bumps this, and such a pod is then named with both
/// versions (`ForeignState`) and can still be stopped and removed.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodState {
    /// `STATE_VERSION` of the build that wrote it (0: before versions).
    #[serde(default)]
    pub version: u32,
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
    /// The workload the pod comes from (`Pod/NAME` for a bare pod; absent
    /// in state written before workloads).
    #[serde(default)]
    pub owner: Option<crate::spec::Owner>,
    /// The file `run` read it from, as an absolute path (`down FILE` finds
    /// the pod by it); none for stdin.
    #[serde(default)]
    pub source: Option<String>,
    /// What happened to the pod besides its containers' output (probe
    /// failures), the last `MAX_EVENTS`.
    #[serde(default)]
    pub events: Vec<PodEvent>,
    /// `metadata.uid`: a random UUID given at creation (empty in state
    /// written before it).
    #[serde(default)]
    pub uid: String,
    /// Kubelet's one-word reason for the pod's phase (`Evicted`), when it
    /// has one.
    #[serde(default)]
    pub reason: Option<String>,
    /// The named volumes (claims) the pod mounts: `volume rm` names the
    /// pods that use one.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The hostPorts as the supervisor bound them (`run -P` picks free
    /// ports): what `minipod port` prints.
    #[serde(default)]
    pub ports: Vec<crate::net::portfwd::Published>,
    /// `metadata.labels`: which Services select the pod.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `spec.hostname` when set (a StatefulSet's pod: its name), and
    /// `spec.subdomain`: the pod's DNS name under a headless Service.
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub subdomain: Option<String>,
    /// The containers' named ports: a Service's named targetPort.
    #[serde(default)]
    pub named_ports: Vec<NamedPort>,
    /// Being stopped (`stop`, `down`, a signal): as a pod being deleted,
    /// it is no Service's endpoint any more while its containers stop.
    #[serde(default)]
    pub terminating: bool,
}

/// A container port with a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPort {
    pub name: String,
    /// `TCP` or `UDP`.
    pub protocol: String,
    pub port: u16,
}

/// A version 4 UUID from 16 random bytes, as the API server gives a pod.
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// How many events a pod keeps.
pub const MAX_EVENTS: usize = 50;

/// An event, as `kubectl get events` shows one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodEvent {
    pub time: String,
    pub container: String,
    /// `Unhealthy` (a failed probe), `ProbeWarning`, as kubelet says them.
    pub reason: String,
    pub message: String,
    /// How many times in a row it happened (`time` is the last).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl PodState {
    /// Keeps an event, forgetting the oldest past `MAX_EVENTS`; the same
    /// event again only counts.
    pub fn record(&mut self, event: PodEvent) {
        if let Some(last) = self.events.last_mut()
            && last.container == event.container
            && last.reason == event.reason
            && last.message == event.message
        {
            last.count += 1;
            last.time = event.time;
            return;
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(event);
    }
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
    /// Running and its readiness probe (if any) passing, as kubelet's
    /// `ready`.
    #[serde(default)]
    pub ready: bool,
    /// Running and its startup probe (if any) passed, as kubelet's
    /// `started`.
    #[serde(default)]
    pub started: bool,
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

/// The files of one pod: small state under the run root (often a tmpfs in
/// memory), what grows on the data root's disk. Every path of a pod comes
/// from here.
///
/// ```text
/// run root:
/// pods/NAME/            dir
///   state.json          what `ps` and `inspect` read (the supervisor's)
///   pod.yaml            the YAML as given
///   etc/                hosts, hostname, resolv.conf
///   containers/C/       probe outputs; rootfs (a mount point)
///   volumes/V/          memory emptyDirs (tmpfs the pause mounts)
///   image-volumes/V/    image volumes (read-only overlays the pause mounts)
///   shm/                the pod's /dev/shm (a tmpfs the pause mounts)
/// pod-locks/NAME        lock: held by the supervisor for the pod's life
/// ctl/HASH.sock         control socket (`minipod stop`, `exec`)
/// data root:
/// pods/NAME/            data_dir
///   logs/C.log          each container's output
///   containers/C/       upper, work (its writable layer)
///   volumes/V/          disk emptyDirs
/// ```
#[derive(Debug, Clone)]
pub struct PodPaths {
    pub dir: PathBuf,
    /// The pod's folder on the data root: what may grow large.
    pub data_dir: PathBuf,
    pub lock: PathBuf,
    control_socket: PathBuf,
}

/// The folders of a pod's directory, made when the pod is created.
const SUBDIRS: [&str; 5] = ["etc", "containers", "volumes", "image-volumes", "shm"];
/// Its folders on the data root.
const DATA_SUBDIRS: [&str; 3] = ["logs", "containers", "volumes"];
/// What an exited pod no longer needs: containers' writable layers and the
/// pod's scratch volumes (logs, state and the YAML stay), in both roots.
const RUNTIME_DIRS: [&str; 4] = ["containers", "volumes", "image-volumes", "shm"];

impl PodPaths {
    pub fn new(roots: &Roots, name: &str) -> PodPaths {
        PodPaths {
            dir: roots.pods().join(name),
            data_dir: roots.data_pods().join(name),
            // Not `<name>.lock` beside the directory: a name may have 253
            // characters, and a file name 255.
            lock: roots.pod_locks().join(name),
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
        self.data_dir.join("logs").join(format!("{container}.log"))
    }
    /// A file the pod's containers see under /etc (hosts, resolv.conf …).
    pub fn etc(&self, file: &str) -> PathBuf {
        self.dir.join("etc").join(file)
    }
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }
    /// A volume in memory: a `medium: Memory` emptyDir's tmpfs (under the
    /// run root, as is anything that must not reach a disk).
    pub fn volume(&self, name: &str) -> PathBuf {
        self.dir.join("volumes").join(name)
    }
    /// A disk emptyDir, on the data root's filesystem.
    pub fn disk_volume(&self, name: &str) -> PathBuf {
        self.data_dir.join("volumes").join(name)
    }
    /// Where the pause mounts an image volume.
    pub fn image_volume(&self, name: &str) -> PathBuf {
        self.dir.join("image-volumes").join(name)
    }
    /// The empty bottom layer of image volumes' overlays (no volume has
    /// this name: volume names are DNS labels).
    pub fn empty_layer(&self) -> PathBuf {
        self.dir.join("image-volumes").join(".empty")
    }
    pub fn container_dir(&self, container: &str) -> PathBuf {
        self.dir.join("containers").join(container)
    }
    /// The output of a container's last exec probe or hook of one kind
    /// (`what`: `Liveness`, `PostStart`, …).
    pub fn probe_output(&self, container: &str, what: &str) -> PathBuf {
        self.container_dir(container)
            .join(format!("probe-{what}.out"))
    }
    /// A container's writable layer: overlayfs's upper and work dirs.
    pub fn writable_layer(&self, container: &str) -> [PathBuf; 2] {
        let dir = self.data_dir.join("containers").join(container);
        [dir.join("upper"), dir.join("work")]
    }
    /// Where a container's overlay is mounted.
    pub fn container_rootfs(&self, container: &str) -> PathBuf {
        self.container_dir(container).join("rootfs")
    }

    /// Makes the pod's folders (its directory exists) and its folder on
    /// the data root.
    pub fn create_subdirs(&self) -> Result<()> {
        if let Some(parent) = self.data_dir.parent() {
            crate::sys::fs::create_private_dir(parent)?;
        }
        for d in SUBDIRS {
            std::fs::create_dir_all(self.dir.join(d))?;
        }
        for d in DATA_SUBDIRS {
            let dir = self.data_dir.join(d);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(())
    }

    /// Removes what an exited pod no longer needs (see RUNTIME_DIRS).
    pub fn remove_runtime_dirs(&self) {
        for d in RUNTIME_DIRS {
            let _ = std::fs::remove_dir_all(self.dir.join(d));
            let _ = std::fs::remove_dir_all(self.data_dir.join(d));
        }
    }

    /// Removes the pod's folders in both roots (inside the user namespace:
    /// writable layers hold files of its other ids).
    pub fn remove_all(&self) -> std::io::Result<()> {
        let data = match std::fs::remove_dir_all(&self.data_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => data,
        }
    }

    pub fn read_state(&self) -> Result<PodState> {
        #[derive(Deserialize)]
        struct Version {
            version: Option<u32>,
        }
        let bytes = std::fs::read(self.state())
            .with_context(|| format!("reading {}", self.state().display()))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            match serde_json::from_slice::<Version>(&bytes).map(|v| v.version.unwrap_or(0)) {
                Ok(given) if given != STATE_VERSION => anyhow::Error::new(ForeignState { given }),
                _ => anyhow::Error::new(e)
                    .context(format!("{} is not valid", self.state().display())),
            }
        })
    }

    /// Whether any process of the pod still runs: the supervisor holds the
    /// pod lock for its whole life, the pause and each link a copy until
    /// what they watch over is gone (`contract::fds::FD_POD_ALIVE`).
    pub fn supervisor_alive(&self) -> bool {
        FileLock::would_block(&self.lock, Mode::Shared)
    }
}

/// A pod whose state another build of minipod wrote, in a form this one
/// cannot read: it can still be stopped (`stop`, `down`) and removed (`rm`).
#[derive(Debug)]
pub struct ForeignState {
    pub given: u32,
}

impl std::fmt::Display for ForeignState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its state was written by another build of minipod (state version {} there, {} \
             here); `minipod stop` and `minipod rm -f` still work on it",
            self.given, STATE_VERSION
        )
    }
}

impl std::error::Error for ForeignState {}

/// Every pod directory under the run root, by name.
pub fn list_pods(roots: &Roots) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(roots.pods())
        .map(|d| {
            d.flatten()
                // The entry's type from readdir: no stat per pod.
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Removes the data root's folders of pods that have no folder in the run
/// root any more (it is often a tmpfs, emptied by a reboot): writable
/// layers and logs nothing else would remove. A pod being created holds
/// its lock, so it is left alone. Call inside the user namespace.
pub fn sweep_orphaned_data(roots: &Roots) {
    let Ok(dir) = std::fs::read_dir(roots.data_pods()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let paths = PodPaths::new(roots, &name);
        if paths.dir.exists() {
            continue;
        }
        if let Ok(Some(lock)) = FileLock::try_acquire_removable(&paths.lock) {
            if !paths.dir.exists() {
                let _ = paths.remove_all();
            }
            lock.release_and_remove(&paths.lock);
        }
    }
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

/// The pod as `ps`, `inspect` and `wait` show it: its record, corrected
/// when no process of the pod runs any more (its lock is free) although the
/// record says otherwise: the supervisor died without recording an end.
pub fn observed(paths: &PodPaths, mut state: PodState) -> PodState {
    if !paths.supervisor_alive() {
        // The last moment the pod is known to have run: its last record.
        let last = std::fs::metadata(paths.state())
            .and_then(|m| m.modified())
            .map(crate::sys::time::rfc3339)
            .unwrap_or_default();
        settle_ended(&mut state, &last);
    }
    state
}

/// Why a pod ended without its supervisor recording it.
pub const SUPERVISOR_DIED: &str = "the pod's supervisor died; `minipod rm` cleans up";

/// A pod none of whose processes runs: a phase that says it still runs
/// becomes Failed, and a container still running or waiting in the record
/// is terminated with what kubelet reports for a container it could not
/// find when its pod ended (`ContainerStatusUnknown`, 137), `last` (when
/// the record was last written) as its end.
pub fn settle_ended(state: &mut PodState, last: &str) {
    if !matches!(state.phase, Phase::Succeeded | Phase::Failed) {
        state.phase = Phase::Failed;
        state.message = Some(SUPERVISOR_DIED.to_string());
    }
    for c in state
        .init_containers
        .iter_mut()
        .chain(state.containers.iter_mut())
    {
        let started_at = match &c.state {
            ContainerState::Terminated { .. } => continue,
            ContainerState::Running { started_at } => started_at.clone(),
            ContainerState::Waiting { .. } => String::new(),
        };
        c.state = ContainerState::Terminated {
            exit_code: 137,
            reason: "ContainerStatusUnknown".to_string(),
            started_at,
            finished_at: last.to_string(),
        };
        c.ready = false;
        c.started = false;
        c.pid = 0;
    }
}

/// The pod's conditions as kubelet sets them, in its order, from the
/// recorded state and whether the pod still runs (`phase` is the
/// effective one).
pub fn conditions(state: &PodState, phase: Phase) -> Vec<(&'static str, bool)> {
    let running = phase == Phase::Running;
    let sandbox = running || (phase == Phase::Pending && state.pause_pid > 0);
    // Init containers succeeded, and sidecars started.
    let initialized = state.init_containers.iter().all(|c| {
        if c.sidecar {
            c.started
        } else {
            matches!(c.state, ContainerState::Terminated { exit_code: 0, .. })
        }
    });
    let containers_ready = running
        && state
            .containers
            .iter()
            .chain(state.init_containers.iter().filter(|c| c.sidecar))
            .all(|c| c.ready);
    vec![
        ("PodReadyToStartContainers", sandbox),
        (
            "Initialized",
            initialized || matches!(phase, Phase::Running | Phase::Succeeded),
        ),
        // readinessGates count as met: no controller sets them here.
        ("Ready", containers_ready),
        ("ContainersReady", containers_ready),
        ("PodScheduled", true),
    ]
}

/// The pod's Ready condition.
pub fn is_ready(state: &PodState, phase: Phase) -> bool {
    conditions(state, phase)
        .iter()
        .any(|&(t, ok)| t == "Ready" && ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_version_4_and_the_rfc_variant() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    /// A running pod's state with no containers.
    fn running_state() -> PodState {
        serde_json::from_value(serde_json::json!({
            "name": "p", "namespace": "default", "phase": "Running", "message": null,
            "supervisor_pid": 1, "pause_pid": 2, "pod_ip": null, "created": "x",
            "started": null, "finished": null, "exit_code": null, "detached": true,
            "grace_seconds": 30, "init_containers": [], "containers": []
        }))
        .unwrap()
    }

    fn status(name: &str, sidecar: bool, state: ContainerState, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: String::new(),
            image_id: String::new(),
            sidecar,
            state,
            last_state: None,
            restart_count: 0,
            pid: 0,
            ready,
            started: ready,
        }
    }

    #[test]
    fn a_pod_whose_processes_are_gone_shows_it() {
        let mut st = running_state();
        let running = ContainerState::Running {
            started_at: "t0".into(),
        };
        let done = ContainerState::Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            started_at: "a".into(),
            finished_at: "b".into(),
        };
        st.init_containers = vec![status("init", false, done.clone(), false)];
        st.containers = vec![
            status("web", false, running, true),
            status(
                "crash",
                false,
                ContainerState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                },
                false,
            ),
        ];
        settle_ended(&mut st, "t9");
        assert_eq!(st.phase, Phase::Failed);
        assert_eq!(st.message.as_deref(), Some(SUPERVISOR_DIED));
        assert_eq!(st.init_containers[0].state, done);
        let unknown = |started: &str| ContainerState::Terminated {
            exit_code: 137,
            reason: "ContainerStatusUnknown".into(),
            started_at: started.into(),
            finished_at: "t9".into(),
        };
        assert_eq!(st.containers[0].state, unknown("t0"));
        assert!(!st.containers[0].ready && !st.containers[0].started);
        assert_eq!(st.containers[1].state, unknown(""));
        // A recorded end stays as it was recorded.
        let mut ended = running_state();
        ended.phase = Phase::Succeeded;
        settle_ended(&mut ended, "t9");
        assert_eq!(ended.phase, Phase::Succeeded);
        assert_eq!(ended.message, None);
    }

    #[test]
    fn the_same_event_again_only_counts() {
        let mut st = running_state();
        let event = |message: &str, time: &str| PodEvent {
            time: time.into(),
            container: "c".into(),
            reason: "Unhealthy".into(),
            message: message.into(),
            count: 1,
        };
        st.record(event("a", "1"));
        st.record(event("a", "2"));
        st.record(event("b", "3"));
        assert_eq!(st.events.len(), 2);
        assert_eq!((st.events[0].count, st.events[0].time.as_str()), (2, "2"));
        for i in 0..MAX_EVENTS {
            st.record(event(&i.to_string(), "t"));
        }
        assert_eq!(st.events.len(), MAX_EVENTS);
        assert_eq!(st.events[0].message, "0");
    }

    #[test]
    fn conditions_follow_readiness() {
        let running = || ContainerState::Running {
            started_at: String::new(),
        };
        let done = ContainerState::Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            started_at: String::new(),
            finished_at: String::new(),
        };
        let mut st = running_state();
        st.init_containers = vec![
            status("init", false, done, false),
            status("side", true, running(), true),
        ];
        st.containers = vec![
            status("a", false, running(), true),
            status("b", false, running(), false),
        ];
        let get = |st: &PodState, t: &str| {
            conditions(st, Phase::Running)
                .into_iter()
                .find(|c| c.0 == t)
                .unwrap()
                .1
        };
        assert!(get(&st, "Initialized"));
        assert!(!get(&st, "Ready") && !get(&st, "ContainersReady"));
        st.containers[1].ready = true;
        assert!(is_ready(&st, Phase::Running));
        // A sidecar that is not ready keeps the pod not ready.
        st.init_containers[1].ready = false;
        assert!(!is_ready(&st, Phase::Running));
        // An ended pod is not ready.
        st.init_containers[1].ready = true;
        assert!(!is_ready(&st, Phase::Succeeded));
    }

    fn paths_in(dir: &Path) -> PodPaths {
        PodPaths {
            dir: dir.to_path_buf(),
            data_dir: dir.join("data"),
            lock: dir.join("lock"),
            control_socket: dir.join("ctl.sock"),
        }
    }

    #[test]
    fn data_folders_whose_run_root_folder_is_gone_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots::under(dir.path());
        for name in ["gone", "here"] {
            let paths = PodPaths::new(&roots, name);
            std::fs::create_dir_all(&paths.dir).unwrap();
            paths.create_subdirs().unwrap();
            std::fs::write(paths.log("c"), "x").unwrap();
        }
        std::fs::remove_dir_all(PodPaths::new(&roots, "gone").dir).unwrap();
        sweep_orphaned_data(&roots);
        assert!(!PodPaths::new(&roots, "gone").data_dir.exists());
        assert!(PodPaths::new(&roots, "here").log("c").is_file());
        assert!(!PodPaths::new(&roots, "gone").lock.exists());
    }

    #[test]
    fn a_state_from_another_build_is_named_with_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_in(dir.path());
        // Written before states had versions: still read.
        let old = serde_json::json!({
            "name": "web", "namespace": "default", "phase": "Running", "message": null,
            "supervisor_pid": 1, "pause_pid": 2, "pod_ip": null, "created": "x",
            "started": null, "finished": null, "exit_code": null, "detached": true,
            "grace_seconds": 30, "init_containers": [], "containers": []
        });
        std::fs::write(paths.state(), old.to_string()).unwrap();
        let state = paths.read_state().unwrap();
        assert_eq!((state.version, state.phase), (0, Phase::Running));
        // A later build's state this one cannot read.
        std::fs::write(paths.state(), r#"{"version": 99, "name": 7}"#).unwrap();
        let err = paths.read_state().unwrap_err();
        let foreign = err.downcast_ref::<ForeignState>().expect("ForeignState");
        assert_eq!(foreign.given, 99);
        assert!(
            err.to_string().contains("state version 99 there, 1 here"),
            "{err}"
        );
        // Our own version, broken: an ordinary error.
        std::fs::write(paths.state(), r#"{"version": 1}"#).unwrap();
        let err = paths.read_state().unwrap_err();
        assert!(err.downcast_ref::<ForeignState>().is_none());
        assert!(format!("{err:#}").contains("is not valid"), "{err:#}");
    }
}
