//! Launching a pod: everything `run` does before the pod's supervisor takes
//! over. The YAML's plan, the image store and the container configs are
//! worked out here, in `minipod`; the pod's files are written and its lock
//! taken; then `minipod-supervisor` gets a finished `SupervisorPlan` and the
//! lock. In the foreground `minipod` becomes the supervisor (exec, same pid
//! and terminal); with `-d` it starts one in its own session and waits for
//! its report.
//!
//! Why two programs: the supervisor lives as long as the pod, and a process
//! running the whole of `minipod` (YAML schema, registries, layers) keeps
//! ~9 MB of its pages resident. `minipod-supervisor` links only what it runs.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::contract::container::{ContainerConfig, Mount};
use super::contract::fds::{FD_MINIPOD, FD_PLAN, FD_POD_LOCK, FD_REPORT};
use super::contract::pause::{ImageVolume, PauseConfig, Tmpfs};
use super::contract::plan::{JobLimits, PLAN_VERSION, Role, SizeLimit, SlotPlan, SupervisorPlan};
use super::contract::report::{self, Report};
use super::etc_files;
use super::logs;
use super::pod_config::{self, Resolved};
use super::prepare::{self, PreparedContainer};
use super::state::{ContainerState, ContainerStatus, Phase, PodPaths, PodState, STATE_VERSION};

use crate::image::Store;
use crate::net::{portfwd, publish};
use crate::paths::Roots;
use crate::spec::config::VolumeFile;
use crate::spec::objects::ConfigObjects;
use crate::spec::{PodPlan, Protocol, VolumeKind};
use crate::sys::fs::pass_fds;
use crate::sys::lock::FileLock;
use crate::sys::time::now_rfc3339;
use crate::volume;

/// Kubernetes' /dev/shm size (as docker and containerd set it).
const SHM_SIZE: u64 = 64 << 20;

pub struct RunOptions {
    /// Return when this container exits, with its exit code.
    pub exit_code_from: Option<String>,
    /// `run -d`: no terminal output; return once every container started.
    pub detached: bool,
    /// In the foreground, one of several pods: the supervisor runs as a
    /// child of `run` (which waits for them all), and its lines on the
    /// terminal say the pod's name.
    pub attached: bool,
    /// The first restart delay (kubelet: 10 s).
    pub initial_backoff: Duration,
    /// The file the pod comes from (absolute), recorded for `down FILE`.
    pub source: Option<String>,
    /// The ConfigMaps and Secrets the pod may read.
    pub objects: ConfigObjects,
    /// `--publish` and `-P`.
    pub ports: publish::Overrides,
}

/// How a child supervisor is started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// In its own session, without a terminal (`-d`).
    Detached,
    /// In its own process group, writing to the terminal, dying with `run`
    /// (one of several pods in the foreground).
    Attached,
    /// As `Detached`, but handed back without a word (`run -it`, which
    /// attaches to a container, then waits for the pod or detaches).
    Interactive,
}

/// Runs a pod: in the foreground to its end (this process becomes its
/// supervisor), or with `-d` until every container started. The caller has
/// joined the user namespace.
pub fn run(roots: &Roots, store: &Store, plan: PodPlan, opts: RunOptions) -> Result<ExitCode> {
    if opts.detached {
        spawn(roots, store, plan, opts)?.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (supervisor, files, plan_fd, name) = set_up(roots, store, plan, &opts)?;
    Err(exec_supervisor(&supervisor, &name, &plan_fd, files))
}

/// Starts a pod's supervisor as a child (`-d`: in its own session;
/// `attached`: in its own process group, writing to the terminal) and
/// returns at once: its report of the start is for `Starting::finish`, so
/// that several pods start together.
pub fn spawn(roots: &Roots, store: &Store, plan: PodPlan, opts: RunOptions) -> Result<Starting> {
    let how = if opts.detached {
        Handover::Detached
    } else {
        Handover::Attached
    };
    let (supervisor, files, plan_fd, name) = set_up(roots, store, plan, &opts)?;
    spawn_supervisor(&supervisor, name, &plan_fd, files, how)
}

/// `run -it`: starts the pod as `-d` does (its own session, so it runs on
/// when the terminal detaches; `opts.detached` is set) and returns its
/// supervisor once every container started.
pub fn spawn_interactive(
    roots: &Roots,
    store: &Store,
    plan: PodPlan,
    opts: RunOptions,
) -> Result<Child> {
    let (supervisor, files, plan_fd, name) = set_up(roots, store, plan, &opts)?;
    spawn_supervisor(&supervisor, name, &plan_fd, files, Handover::Interactive)?
        .finish()?
        .ok_or_else(|| anyhow!("the supervisor was not handed back"))
}

/// Works the pod out, writes its files and makes the supervisor's plan (in
/// a sealed memfd), holding the pod's lock.
fn set_up(
    roots: &Roots,
    store: &Store,
    plan: PodPlan,
    opts: &RunOptions,
) -> Result<(PathBuf, PodFiles, OwnedFd, String)> {
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let supervisor = supervisor_binary()?;
    let uid = pod_config::new_uid()?;
    let facts = pod_config::pod_facts(roots, &plan, &uid);
    // The Services as they are when the pod starts (kubelet's rule).
    let services =
        crate::net::service_table::ServiceTable::load(&roots.run).with_context(|| {
            format!(
                "pod {}: the Service table gives its containers their Service environment \
             variables; `minipod service ls` shows what it holds",
                plan.name
            )
        })?;
    let resolved = pod_config::resolve_config(&plan, &opts.objects, &facts, &services)?;
    let prepared = prepare::containers(store, &plan, &resolved.env)?;
    prepare::check_host_paths(&plan)?;
    let image_volumes = prepare::image_volumes(store, &plan)?;
    check_claims(roots, &plan)?;
    let ports = published(&plan, &opts.ports)?;

    let mut files = PodFiles::create(roots, &plan)?;
    let worked_out = WorkedOut {
        containers: prepared,
        image_volumes,
        ports,
        resolved,
    };
    let handoff = files.write(roots, &plan, worked_out, opts)?;
    let plan_fd = handoff.to_memfd()?;
    Ok((supervisor, files, plan_fd, plan.name))
}

/// What `run` worked out for a pod before writing its files.
struct WorkedOut {
    containers: Vec<PreparedContainer>,
    /// Each image volume's layers.
    image_volumes: Vec<(String, Vec<PathBuf>)>,
    ports: Vec<portfwd::Published>,
    /// Its ConfigMaps', Secrets' and the downward API's values.
    resolved: Resolved,
}

/// `spec.hostname` when it was given (a StatefulSet's controller gives
/// it): the pod's DNS name under a headless Service, as the endpoints
/// controller records it only then.
fn explicit_hostname(plan: &PodPlan) -> Option<String> {
    plan.hostname_given.then(|| plan.hostname.clone())
}

/// The containers' named ports, which a Service's targetPort may name.
fn named_ports(plan: &PodPlan) -> Vec<crate::runtime::state::NamedPort> {
    plan.init_containers
        .iter()
        .chain(&plan.containers)
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            Some(crate::runtime::state::NamedPort {
                name: p.name.clone()?,
                protocol: match p.protocol {
                    crate::spec::Protocol::Udp => "UDP",
                    crate::spec::Protocol::Sctp => "SCTP",
                    crate::spec::Protocol::Tcp => "TCP",
                }
                .to_string(),
                port: p.container_port,
            })
        })
        .collect()
}

/// The named volumes the pod's claims mount: `run` made them.
fn claims(plan: &PodPlan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .volumes
        .iter()
        .filter_map(|v| match &v.kind {
            VolumeKind::PersistentVolumeClaim { claim_name, .. } => Some(claim_name.clone()),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Each claim's volume is there (`run` made it; `volume rm` may have
/// removed it since).
fn check_claims(roots: &Roots, plan: &PodPlan) -> Result<()> {
    for name in claims(plan) {
        if !volume::exists(roots, &name) {
            bail!(
                "pod {}: volume {name} (its claim) does not exist; it was removed as the pod \
                 started, run it again",
                plan.name
            );
        }
    }
    Ok(())
}

/// The disk emptyDirs with a sizeLimit, for the supervisor to watch.
fn size_limits(paths: &PodPaths, plan: &PodPlan) -> Vec<SizeLimit> {
    plan.volumes
        .iter()
        .filter_map(|v| match v.kind {
            VolumeKind::EmptyDir {
                memory: false,
                size_limit_bytes: Some(limit_bytes),
            } => Some(SizeLimit {
                volume: v.name.clone(),
                dir: paths.disk_volume(&v.name),
                limit_bytes,
            }),
            _ => None,
        })
        .collect()
}

/// The hostPorts the pod publishes (its YAML's, as `--publish` and `-P`
/// change them), checked against what this machine lets a user bind;
/// `run` calls it for every pod before anything is created.
pub fn published(
    plan: &PodPlan,
    overrides: &publish::Overrides,
) -> Result<Vec<portfwd::Published>> {
    if plan.host_network && !overrides.is_empty() {
        bail!(
            "pod {}: --publish and -P change hostPorts, and a pod with hostNetwork: true has \
             none: its containers bind the host's ports themselves; drop the flag or \
             hostNetwork",
            plan.name
        );
    }
    portfwd::published(&publish::apply(host_ports(plan)?, overrides)?)
}

/// The hostPorts the pod's containers ask for, in the network's terms.
fn host_ports(plan: &PodPlan) -> Result<Vec<portfwd::HostPort>> {
    let mut out = Vec::new();
    for c in plan.init_containers.iter().chain(&plan.containers) {
        for p in &c.ports {
            let Some(host_port) = p.host_port else {
                continue;
            };
            let protocol = match p.protocol {
                Protocol::Tcp => portfwd::Protocol::Tcp,
                Protocol::Udp => portfwd::Protocol::Udp,
                // Validation refuses these; say so here too.
                Protocol::Sctp => bail!(
                    "container {}: hostPort {host_port}/SCTP is not supported; use TCP or UDP",
                    c.name
                ),
            };
            out.push(portfwd::HostPort {
                asked_by: format!("container {}", c.name),
                host_ip: p.host_ip.clone(),
                host_port,
                container_port: p.container_port,
                protocol,
            });
        }
    }
    Ok(out)
}

/// `minipod-supervisor`, installed beside `minipod`.
fn supervisor_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding minipod's own binary")?;
    let path = exe.with_file_name("minipod-supervisor");
    if !path.is_file() {
        bail!(
            "{} is missing: minipod runs each pod's supervisor from it; it is built with minipod \
             (`cargo build --release`), copy it beside {}",
            path.display(),
            exe.display()
        );
    }
    Ok(path)
}

/// A new pod's directory and lock: removed again if the pod never reaches
/// its supervisor.
struct PodFiles {
    paths: PodPaths,
    lock: Option<FileLock>,
}

impl PodFiles {
    fn create(roots: &Roots, plan: &PodPlan) -> Result<PodFiles> {
        let paths = PodPaths::new(roots, &plan.name);
        crate::sys::fs::create_private_dir(&roots.pods())?;
        let lock = FileLock::try_acquire_removable(&paths.lock)?.ok_or_else(|| {
            anyhow!(
                "pod {:?} is already running; stop it first (`minipod down {}`), use `run --replace`, \
                 or give this one another metadata.name",
                plan.name,
                plan.name
            )
        })?;
        if paths.dir.exists() || paths.data_dir.exists() {
            let ended_detached = paths.read_state().is_ok_and(|s| s.detached);
            if ended_detached {
                bail!(
                    "pod {:?} exists (exited); remove it with `minipod rm {}` or use `run --replace`",
                    plan.name,
                    plan.name
                );
            }
            // Left by a foreground supervisor that was killed: its lock is
            // free, so it is gone. (Or only the data root's half is left:
            // the run root, a tmpfs, went with a reboot.)
            paths
                .remove_all()
                .with_context(|| format!("removing stale {}", paths.dir.display()))?;
        }
        std::fs::create_dir(&paths.dir)
            .with_context(|| format!("creating {}", paths.dir.display()))?;
        Ok(PodFiles {
            paths,
            lock: Some(lock),
        })
    }

    /// Writes the pod's files and containers' configs, and returns the plan
    /// its supervisor follows.
    fn write(
        &mut self,
        roots: &Roots,
        plan: &PodPlan,
        worked_out: WorkedOut,
        opts: &RunOptions,
    ) -> Result<SupervisorPlan> {
        let WorkedOut {
            containers: prepared,
            image_volumes,
            ports,
            resolved,
        } = worked_out;
        self.write_files(roots, plan).with_context(|| {
            format!(
                "pod {}: writing its files under {} and {}",
                plan.name,
                self.paths.dir.display(),
                self.paths.data_dir.display()
            )
        })?;
        let colour =
            !opts.detached && nix::unistd::isatty(std::io::stdout().as_fd()).unwrap_or(false);
        // Several pods on one terminal: `pod/container`.
        let shown = |container: &str| match opts.attached {
            true => format!("{}/{container}", plan.name),
            false => container.to_string(),
        };
        let width = prepared
            .iter()
            .map(|p| shown(&p.plan.name).len())
            .max()
            .unwrap_or(0);
        let n_init = plan.init_containers.len();
        let mut slots = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            let role = match (i < n_init, p.plan.sidecar) {
                (true, true) => Role::Sidecar,
                (true, false) => Role::Init,
                (false, _) => Role::App,
            };
            let prefix = prefix(&shown(&p.plan.name), width, i, colour);
            slots.push(self.slot(roots, plan, p, role, prefix)?);
        }
        Ok(SupervisorPlan {
            version: PLAN_VERSION,
            roots: roots.clone(),
            name: plan.name.clone(),
            detached: opts.detached,
            attached: opts.attached,
            verbose: tracing::enabled!(tracing::Level::INFO),
            exit_code_from: opts.exit_code_from.clone(),
            initial_backoff: opts.initial_backoff,
            termination_grace: plan.termination_grace,
            restart_policy: plan.restart_policy,
            active_deadline: plan.active_deadline,
            job: plan.job.map(|j| JobLimits {
                backoff_limit: j.backoff_limit,
                active_deadline: j.active_deadline,
            }),
            hostname: plan.hostname.clone(),
            host_aliases: plan.host_aliases.clone(),
            host_network: plan.host_network,
            pause: self.pause_config(plan, &resolved.volumes, &image_volumes),
            volume_locks: claims(plan)
                .into_iter()
                .map(|name| {
                    let lock = volume::lock_path(roots, &name);
                    (name, lock)
                })
                .collect(),
            size_limits: size_limits(&self.paths, plan),
            ports,
            log_max_bytes: log_max_bytes(),
            state: PodState {
                version: STATE_VERSION,
                name: plan.name.clone(),
                namespace: plan.namespace.clone(),
                phase: Phase::Pending,
                message: None,
                supervisor_pid: 0,
                pause_pid: 0,
                pod_ip: None,
                created: now_rfc3339(),
                started: None,
                finished: None,
                exit_code: None,
                detached: opts.detached,
                grace_seconds: plan.termination_grace.as_secs(),
                init_containers: Vec::new(),
                containers: Vec::new(),
                owner: Some(plan.owner.clone()),
                source: opts.source.clone(),
                events: Vec::new(),
                uid: resolved.uid,
                reason: None,
                volumes: claims(plan),
                ports: Vec::new(),
                labels: plan.labels.clone(),
                hostname: explicit_hostname(plan),
                subdomain: plan.subdomain.clone(),
                named_ports: named_ports(plan),
                terminating: false,
            },
            slots,
        })
    }

    fn write_files(&self, roots: &Roots, plan: &PodPlan) -> Result<()> {
        self.paths.create_subdirs()?;
        std::fs::write(self.paths.pod_yaml(), &plan.manifest)?;
        // A pod on the bridge gets its hosts file with its address, once
        // its supervisor leased one.
        if plan.host_network {
            std::fs::write(
                self.paths.etc("hosts"),
                etc_files::hosts(&plan.hostname, None, None, None, &plan.host_aliases),
            )?;
        }
        std::fs::write(self.paths.etc("hostname"), format!("{}\n", plan.hostname))?;
        let holder = crate::userns::holder::read_live(roots);
        let cluster_domain = holder.as_ref().and_then(|h| h.cluster_domain.clone());
        let (source, warning) =
            etc_files::dns_source(plan.dns.base, plan.host_network, cluster_domain.is_some());
        if let Some(warning) = warning {
            tracing::warn!("pod {}: {warning}", plan.name);
        }
        let cluster = match (source, holder, cluster_domain) {
            (etc_files::DnsSource::Cluster, Some(holder), Some(domain)) => {
                Some(etc_files::ClusterDns {
                    server: crate::net::ipam::Subnet::parse(&holder.subnet)?
                        .gateway()
                        .to_string(),
                    namespace: plan.namespace.clone(),
                    domain,
                })
            }
            _ => None,
        };
        let dns = etc_files::Dns {
            replace_host: source == etc_files::DnsSource::Empty,
            cluster,
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
        std::fs::write(
            self.paths.etc("resolv.conf"),
            etc_files::resolv_conf(&host, &dns),
        )?;
        for (name, _) in plan.config_volumes() {
            // The mount point of the tmpfs the pause fills.
            std::fs::create_dir_all(self.paths.volume(name))?;
        }
        for v in &plan.volumes {
            let dir = match v.kind {
                // A mount point for the pause's tmpfs.
                VolumeKind::EmptyDir { memory: true, .. } => self.paths.volume(&v.name),
                VolumeKind::EmptyDir { memory: false, .. } => self.paths.disk_volume(&v.name),
                VolumeKind::Image { .. } => {
                    // Its mount point, and the empty bottom layer of its overlay.
                    std::fs::create_dir_all(self.paths.image_volume(&v.name))?;
                    std::fs::create_dir_all(self.paths.empty_layer())?;
                    continue;
                }
                VolumeKind::PersistentVolumeClaim {
                    ref claim_name,
                    read_only,
                } => {
                    if let Some(group) = plan.security.fs_group {
                        super::ownership::set_volume_ownership(
                            &volume::data_dir(roots, claim_name),
                            group,
                            read_only,
                            plan.security.fs_group_change_policy,
                        )?;
                    }
                    continue;
                }
                _ => continue,
            };
            std::fs::create_dir_all(&dir)?;
            // Kubernetes' emptyDir is world-writable, so any user of the pod can use it.
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
            if let Some(group) = plan.security.fs_group {
                super::ownership::set_volume_ownership(&dir, group, false, Default::default())?;
            }
        }
        Ok(())
    }

    /// The pause's config but for what the supervisor fills in once it
    /// runs: its pid, the network, hostPort serving.
    fn pause_config(
        &self,
        plan: &PodPlan,
        volumes: &[(String, Vec<VolumeFile>)],
        image_volumes: &[(String, Vec<PathBuf>)],
    ) -> PauseConfig {
        let mut tmpfs = vec![Tmpfs {
            dir: self.paths.shm(),
            size_bytes: Some(SHM_SIZE),
            fs_group: None,
        }];
        for v in &plan.volumes {
            if let VolumeKind::EmptyDir {
                memory: true,
                size_limit_bytes,
            } = v.kind
            {
                tmpfs.push(Tmpfs {
                    dir: self.paths.volume(&v.name),
                    size_bytes: size_limit_bytes,
                    fs_group: plan.security.fs_group,
                });
            }
        }
        PauseConfig {
            hostname: plan.hostname.clone(),
            share_pid: plan.share_process_namespace,
            host_network: plan.host_network,
            host_ipc: plan.host_ipc,
            parent: 0,
            tmpfs,
            image_volumes: image_volumes
                .iter()
                .map(|(name, layers)| ImageVolume {
                    dir: self.paths.image_volume(name),
                    layers: layers.clone(),
                    empty: self.paths.empty_layer(),
                })
                .collect(),
            pod_dir: self.paths.dir.clone(),
            network: None,
            serve_sockets: false,
            sysctls: plan.security.sysctls.clone(),
            config_volumes: pod_config::for_pause(volumes, plan.security.fs_group, |name| {
                self.paths.volume(name)
            }),
        }
    }

    fn slot(
        &self,
        roots: &Roots,
        plan: &PodPlan,
        p: PreparedContainer,
        role: Role,
        prefix: String,
    ) -> Result<SlotPlan> {
        let name = p.plan.name.clone();
        let stop_signal = p
            .stop_signal
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(nix::sys::signal::Signal::SIGTERM) as i32;
        let status = ContainerStatus {
            name: name.clone(),
            image: p.image_name.clone(),
            image_id: p.image_id.clone(),
            sidecar: role == Role::Sidecar,
            state: ContainerState::Waiting {
                reason: "ContainerCreating".into(),
            },
            last_state: None,
            restart_count: 0,
            pid: 0,
            ready: false,
            started: false,
        };
        Ok(SlotPlan {
            role,
            config: self.container_config(roots, plan, &p)?,
            stop_signal,
            log: self.paths.log(&name),
            prefix,
            probes: p.plan.probes.clone(),
            post_start: p.plan.post_start.clone(),
            pre_stop: p.plan.pre_stop.clone(),
            stdin: p.plan.stdin,
            stdin_once: p.plan.stdin_once,
            status,
        })
    }

    fn container_config(
        &self,
        roots: &Roots,
        plan: &PodPlan,
        p: &PreparedContainer,
    ) -> Result<ContainerConfig> {
        let [upper, work] = self.paths.writable_layer(&p.plan.name);
        let rootfs = self.paths.container_rootfs(&p.plan.name);
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
            // (folder, read-only whatever the mount says, subPath created)
            let (base, read_only, create) = match &volume.kind {
                VolumeKind::EmptyDir { memory: true, .. } => {
                    (self.paths.volume(&volume.name), false, true)
                }
                VolumeKind::EmptyDir { memory: false, .. } => {
                    (self.paths.disk_volume(&volume.name), false, true)
                }
                VolumeKind::HostPath { path, .. } => (PathBuf::from(path), false, true),
                VolumeKind::PersistentVolumeClaim {
                    claim_name,
                    read_only,
                } => (volume::data_dir(roots, claim_name), *read_only, true),
                VolumeKind::Image { .. } => (self.paths.image_volume(&volume.name), true, false),
                // Always read-only, as kubelet mounts them; a subPath
                // resolves inside the pause's tmpfs (through the volume's
                // own symlinks) when the container mounts it.
                VolumeKind::Config(_) => (self.paths.volume(&volume.name), true, false),
            };
            mounts.push(Mount {
                destination: m.mount_path.clone(),
                source: prepare::mount_source(&base, m.sub_path.as_deref(), create)?,
                read_only: m.read_only || read_only,
            });
        }
        Ok(ContainerConfig {
            name: p.plan.name.clone(),
            // Both filled in by the supervisor, once the pause runs.
            supervisor_pid: 0,
            pause_pid: 0,
            share_pid: plan.share_process_namespace,
            host_pid: plan.host_pid,
            host_ipc: plan.host_ipc,
            layers: p.layers.clone(),
            upper,
            work,
            rootfs,
            shm: self.paths.shm(),
            hosts: self.paths.etc("hosts"),
            hostname_file: self.paths.etc("hostname"),
            resolv_conf: self.paths.etc("resolv.conf"),
            mounts,
            process: p.process.clone(),
            tty: p.plan.tty,
        })
    }

    /// After a supervisor died during start-up without leaving the pod's
    /// state: its files are removed here, unless another `run` took the
    /// name meanwhile.
    fn take_back(&mut self) {
        if let Ok(Some(lock)) = FileLock::try_acquire_removable(&self.paths.lock) {
            self.lock = Some(lock);
        }
    }
}

impl Drop for PodFiles {
    fn drop(&mut self) {
        // Still ours: the pod never reached a supervisor.
        if let Some(lock) = self.lock.take() {
            let _ = self.paths.remove_all();
            lock.release_and_remove(&self.paths.lock);
        }
    }
}

/// The supervisor's command line and the descriptors it inherits: the
/// pod's lock, minipod's own binary (through which it starts `minipod
/// __pause` and `minipod __container`: the same binary as this one, even if
/// the file is replaced meanwhile) and the report pipe's write end.
fn supervisor_command(
    supervisor: &Path,
    name: &str,
    plan: &OwnedFd,
    files: &PodFiles,
    report: BorrowedFd<'_>,
) -> Result<(Command, std::fs::File)> {
    let minipod = std::fs::File::open("/proc/self/exe").context("opening minipod's binary")?;
    let lock_fd = files.lock.as_ref().expect("held").as_raw_fd();
    let mut cmd = Command::new(supervisor);
    // `ps` shows which pod a supervisor serves.
    cmd.arg0("minipod-supervisor")
        .arg(name)
        .arg(&files.paths.dir);
    let fds = [
        (lock_fd, FD_POD_LOCK),
        (minipod.as_raw_fd(), FD_MINIPOD),
        (report.as_raw_fd(), FD_REPORT),
        (plan.as_raw_fd(), FD_PLAN),
    ];
    pass_fds(&mut cmd, &fds);
    Ok((cmd, minipod))
}

/// Becomes the pod's supervisor (foreground, one pod); returns only the
/// error if that failed.
fn exec_supervisor(
    supervisor: &Path,
    name: &str,
    plan: &OwnedFd,
    files: PodFiles,
) -> anyhow::Error {
    // Nobody reads the supervisor's report in the foreground; fd 3 is
    // /dev/null rather than whatever this process had there.
    let null = match std::fs::File::options().write(true).open("/dev/null") {
        Ok(f) => f,
        Err(e) => return anyhow::Error::new(e).context("opening /dev/null"),
    };
    let (mut cmd, _minipod) = match supervisor_command(supervisor, name, plan, &files, null.as_fd())
    {
        Ok(c) => c,
        Err(e) => return e,
    };
    let err = cmd.exec();
    anyhow::Error::new(err).context(format!("starting {}", supervisor.display()))
}

/// A pod whose supervisor runs and has not yet reported its start.
pub struct Starting {
    name: String,
    child: Child,
    report: std::io::PipeReader,
    files: PodFiles,
    how: Handover,
}

impl Starting {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The supervisor's pid, to pass signals on while it starts.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Readable (or hung up) once the supervisor reported.
    pub fn report_fd(&self) -> BorrowedFd<'_> {
        self.report.as_fd()
    }

    /// Reads the report: `-d` prints the pod's name; an attached pod's
    /// supervisor is handed back, to be waited for.
    pub fn finish(mut self) -> Result<Option<Child>> {
        let mut text = String::new();
        let _ = self.report.read_to_string(&mut text);
        let name = &self.name;
        match report::parse(&text) {
            Report {
                error: Some(msg), ..
            } => {
                // The supervisor removed the pod, or kept it for `logs` (a
                // failed init container, with its state); one that failed
                // before writing any state (its plan) leaves the files to us.
                let _ = self.child.wait();
                if !self.files.paths.state().exists() {
                    self.files.take_back();
                }
                bail!("{msg}")
            }
            Report { ok: true, .. } if self.how != Handover::Detached => Ok(Some(self.child)),
            Report { ok: true, .. } => {
                println!("{name}");
                Ok(None)
            }
            _ => {
                let status = self.child.wait()?;
                self.files.take_back();
                bail!("the supervisor of pod {name} exited during start-up ({status})")
            }
        }
    }
}

/// Starts the pod's supervisor with the plan and the pod's lock: with `-d`
/// as a child in its own session, attached as a child in its own process
/// group that dies with `run`.
fn spawn_supervisor(
    supervisor: &Path,
    name: String,
    plan: &OwnedFd,
    mut files: PodFiles,
    how: Handover,
) -> Result<Starting> {
    let (report_r, report_w) = std::io::pipe()?;
    let (mut cmd, _minipod) =
        supervisor_command(supervisor, &name, plan, &files, report_w.as_fd())?;
    cmd.stdin(Stdio::null());
    if how != Handover::Attached {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: setsid is async-signal-safe; the supervisor gets its own session.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    } else {
        let parent = std::process::id() as i32;
        // SAFETY: setpgid, prctl, getppid and sigprocmask are
        // async-signal-safe. Its own process group: the terminal's Ctrl-C
        // reaches `run`, which passes it on once (a second one kills). It
        // stops its pod when `run` dies; and `run` blocks the signals it
        // waits for, which the supervisor must not inherit.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setpgid(0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                crate::sys::proc::die_with_parent(parent, nix::sys::signal::Signal::SIGTERM)?;
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                Ok(())
            });
        }
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", supervisor.display()))?;
    drop(report_w);
    drop(cmd);
    // The supervisor holds the lock now, and removes the pod's files when
    // it ends.
    drop(files.lock.take());
    Ok(Starting {
        name,
        child,
        report: report_r,
        files,
        how,
    })
}

fn log_max_bytes() -> u64 {
    std::env::var("MINIPOD_LOG_MAX_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(logs::DEFAULT_MAX_BYTES)
}

/// `SIGTERM`, `TERM` or `15`, as image configs write StopSignal.
fn parse_signal(s: &str) -> Option<nix::sys::signal::Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok();
    }
    let name = if s.starts_with("SIG") {
        s.to_string()
    } else {
        format!("SIG{s}")
    };
    name.parse().ok()
}

/// The name column of a container's lines on the terminal.
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
