//! The plan: plain data the runtime consumes. No Kubernetes types in here.

use std::collections::BTreeMap;
use std::time::Duration;

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    pub name: String,
    /// `metadata.namespace`, default `default`.
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.hostname`, else the pod name cut to 63 characters (as the kubelet does).
    pub hostname: String,
    /// Whether `spec.hostname` was given (a StatefulSet's controller gives
    /// it): only then does the pod answer by it under its subdomain.
    pub hostname_given: bool,
    /// `spec.subdomain`: with `hostname`, the pod's name under the headless
    /// Service of that name.
    pub subdomain: Option<String>,
    pub share_process_namespace: bool,
    /// `hostPID`: no PID namespace of the pod's own.
    pub host_pid: bool,
    /// `hostIPC`: no IPC namespace of the pod's own.
    pub host_ipc: bool,
    pub host_network: bool,
    pub restart_policy: RestartPolicy,
    /// `terminationGracePeriodSeconds`, default 30 s.
    pub termination_grace: Duration,
    /// `spec.hostAliases`: (ip, hostnames), in order, for /etc/hosts.
    pub host_aliases: Vec<(String, Vec<String>)>,
    pub dns: DnsPlan,
    /// `spec.enableServiceLinks` (default true): the Service environment
    /// variables of the pod's namespace.
    pub service_links: bool,
    pub volumes: Vec<VolumePlan>,
    pub init_containers: Vec<ContainerPlan>,
    pub containers: Vec<ContainerPlan>,
    /// Things accepted but not fully honoured, for the runtime to print
    /// (e.g. resource limits that are not enforced).
    pub warnings: Vec<String>,
    /// The workload the pod comes from (a bare Pod is its own).
    pub owner: Owner,
    /// The pod's `activeDeadlineSeconds`: it fails with `DeadlineExceeded`
    /// once it has been running this long.
    pub active_deadline: Option<Duration>,
    /// Set when the pod runs a Job: how failures count.
    pub job: Option<JobPlan>,
    /// The Pod as a controller would create it (name, labels set), as JSON,
    /// kept for `inspect`.
    pub manifest: String,
    /// `spec.imagePullSecrets`: the Secrets whose registry credentials
    /// this pod's pulls use, in order.
    pub image_pull_secrets: Vec<String>,
    /// fsGroup and its policy, sysctls.
    pub security: super::security::PodSecurityPlan,
    /// `spec.serviceAccountName` (the API server's default: `default`),
    /// for the downward API.
    pub service_account: String,
}

impl PodPlan {
    /// `run --label`: adds labels to the pod (over the YAML's of the same
    /// key), in its labels and in the manifest `inspect` shows.
    pub fn add_labels(&mut self, labels: &BTreeMap<String, String>) {
        if labels.is_empty() {
            return;
        }
        self.labels
            .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Ok(mut pod) = serde_json::from_str::<serde_json::Value>(&self.manifest)
            && pod.is_object()
        {
            let meta = &mut pod["metadata"];
            if !meta.is_object() {
                *meta = serde_json::json!({});
            }
            meta["labels"] = serde_json::json!(self.labels);
            self.manifest = pod.to_string();
        }
    }

    /// The ConfigMaps and Secrets the pod reads, by kind and name (its
    /// namespace's), for `run` to look up before anything starts:
    /// imagePullSecrets, then those of the containers' environment and of
    /// the volumes.
    pub fn referenced_objects(&self) -> Vec<(super::objects::ObjectKind, &str)> {
        let mut out: Vec<_> = self
            .image_pull_secrets
            .iter()
            .map(|name| (super::objects::ObjectKind::Secret, name.as_str()))
            .collect();
        for r in super::config::references(self.config_volumes().map(|(_, v)| v), self.envs()) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }

    /// The configMap, secret, downwardAPI and projected volumes, by name.
    pub fn config_volumes(&self) -> impl Iterator<Item = (&str, &super::config::ConfigVolume)> {
        self.volumes.iter().filter_map(|v| match &v.kind {
            VolumeKind::Config(c) => Some((v.name.as_str(), c)),
            _ => None,
        })
    }

    /// Each container's `env` and `envFrom`, init containers first.
    fn envs(&self) -> impl Iterator<Item = (&[super::config::EnvVar], &[super::config::EnvFrom])> {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .map(|c| (c.env.as_slice(), c.env_from.as_slice()))
    }

    /// Every missing ConfigMap, Secret or key the pod needs (not
    /// optional), each error naming what needs it and how to provide it.
    pub fn missing_objects(&self, objects: &super::objects::ConfigObjects) -> Vec<String> {
        let volumes: Vec<(String, &super::config::ConfigVolume)> = self
            .config_volumes()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        let containers: Vec<_> = self
            .init_containers
            .iter()
            .chain(&self.containers)
            .map(|c| (c.name.as_str(), c.env.as_slice(), c.env_from.as_slice()))
            .collect();
        super::config::check_references(&self.namespace, &volumes, &containers, objects)
    }
}

/// Where a pod comes from: `Deployment/web`, or `Pod/web` for a bare pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// What the Job controller decides for a Job's pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobPlan {
    /// `backoffLimit` (default 6). With `restartPolicy: OnFailure` the
    /// Job fails once its pod's containers restarted this many times (once
    /// at all for 0); a failed attempt of the pod (Never, or a deadline)
    /// counts too, and the Job fails at the one past the limit.
    pub backoff_limit: u32,
    /// The Job's `activeDeadlineSeconds`, counted from its start.
    pub active_deadline: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Where /etc/resolv.conf comes from.
///
/// `base` is the starting point, `dnsPolicy` as given: minipod's DNS server
/// and Kubernetes' search path (`Cluster`: ClusterFirst, the default;
/// `ClusterWithHostNet`: ClusterFirstWithHostNet), the host's resolv.conf
/// (`Host`: Default), or nothing (`Empty`: None). The runtime decides what
/// each means for the pod (ClusterFirst with hostNetwork is Default, as
/// kubelet has it). The `dnsConfig` lists are then merged the kubelet's way:
/// nameservers and searches appended to the base's (duplicates dropped),
/// options replacing same-named ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsPlan {
    pub base: DnsBase,
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// (name, value)
    pub options: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsBase {
    #[default]
    Cluster,
    ClusterWithHostNet,
    Host,
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    pub kind: VolumeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeKind {
    EmptyDir {
        /// `medium: Memory` (a tmpfs).
        memory: bool,
        size_limit_bytes: Option<u64>,
    },
    HostPath {
        path: String,
        type_check: HostPathType,
    },
    /// `configMap`, `secret`, `downwardAPI` or `projected`: files on a
    /// tmpfs of the pod, mounted read-only.
    Config(super::config::ConfigVolume),
    /// `persistentVolumeClaim`: the named volume `claim_name` under the
    /// data root (`crate::volume`), made by a PersistentVolumeClaim
    /// document, a StatefulSet's template, or on first use.
    PersistentVolumeClaim { claim_name: String, read_only: bool },
    /// `image`: the image's layers, read-only.
    Image {
        reference: String,
        pull_policy: PullPolicy,
    },
}

/// `hostPath.type`: what to check (or create) before mounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// "" (the default): no check.
    Unset,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

impl HostPathType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" => Self::Unset,
            "DirectoryOrCreate" => Self::DirectoryOrCreate,
            "Directory" => Self::Directory,
            "FileOrCreate" => Self::FileOrCreate,
            "File" => Self::File,
            "Socket" => Self::Socket,
            "CharDevice" => Self::CharDevice,
            "BlockDevice" => Self::BlockDevice,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    /// As written in the YAML; normalising (`docker.io/library/...`) is the image store's job.
    pub image: String,
    /// As written, or Kubernetes' default: Always for `:latest` or no tag, else IfNotPresent.
    pub pull_policy: PullPolicy,
    /// `command`, unexpanded; `None` when absent or empty (as the CRI treats it).
    pub command: Option<Vec<String>>,
    /// `args`, unexpanded; `None` when absent or empty.
    pub args: Option<Vec<String>>,
    /// The container's `env`, in order, values unexpanded (see
    /// `config::resolve_env`).
    pub env: Vec<super::config::EnvVar>,
    /// `envFrom`, in order.
    pub env_from: Vec<super::config::EnvFrom>,
    pub working_dir: Option<String>,
    /// Container securityContext, else the pod's.
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub run_as_non_root: bool,
    /// The pod's fsGroup, then its supplementalGroups: every process's
    /// supplementary groups.
    pub supplemental_groups: Vec<u32>,
    /// `supplementalGroupsPolicy: Merge` (the default): also the groups the
    /// image's /etc/group gives the user; `Strict`: not.
    pub merge_image_groups: bool,
    /// Capabilities, no_new_privs, read-only root, privileged.
    pub security: super::security::SecurityPlan,
    pub ports: Vec<PortPlan>,
    pub mounts: Vec<MountPlan>,
    /// An init container with `restartPolicy: Always` (a native sidecar).
    pub sidecar: bool,
    /// `startupProbe`, `livenessProbe`, `readinessProbe` (app containers
    /// and sidecars only).
    pub probes: Probes,
    /// `lifecycle.postStart`: run once the container started; it counts as
    /// running once the hook returned.
    pub post_start: Option<Hook>,
    /// `lifecycle.preStop`: run before the stop signal.
    pub pre_stop: Option<Hook>,
    /// `stdin`: a stdin held open for attach clients (else /dev/null).
    pub stdin: bool,
    /// `stdinOnce`: stdin closes when the first attach session ends.
    pub stdin_once: bool,
    /// `tty`: a pseudo-terminal as fds 0-2 and controlling terminal.
    pub tty: bool,
}

/// A lifecycle hook's handler.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Hook {
    /// `exec` or `httpGet`, as a probe runs them.
    Run(ProbeHandler),
    /// `sleep.seconds`.
    Sleep(Duration),
    /// `tcpSocket`: the API server accepts it for old manifests, and the
    /// hook fails when it runs (as kubelet's does).
    TcpSocket,
}

/// A container's probes, as kubelet runs them.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Probes {
    pub startup: Option<ProbePlan>,
    pub liveness: Option<ProbePlan>,
    pub readiness: Option<ProbePlan>,
}

/// One probe, with the API server's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbePlan {
    pub handler: ProbeHandler,
    /// `initialDelaySeconds` (default 0).
    pub initial_delay: Duration,
    /// `periodSeconds` (default 10, at least 1).
    pub period: Duration,
    /// `timeoutSeconds` (default 1, at least 1).
    pub timeout: Duration,
    /// `successThreshold` (default 1; 1 for liveness and startup probes).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3, at least 1).
    pub failure_threshold: u32,
    /// The probe's `terminationGracePeriodSeconds` (liveness and startup):
    /// the grace period when this probe's failure stops the container.
    pub termination_grace: Option<Duration>,
}

/// How a probe asks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProbeHandler {
    /// `tcpSocket`: a TCP connection to the port succeeds.
    Tcp {
        host: Option<String>,
        port: ProbePort,
    },
    /// `httpGet`: a GET whose status is 2xx or 3xx, redirects followed as
    /// kubelet follows them.
    Http {
        host: Option<String>,
        /// `scheme: HTTPS`: TLS, the certificate not checked (kubelet's).
        https: bool,
        port: ProbePort,
        /// The path with its query, starting with `/`.
        path: String,
        /// `httpHeaders`, in order.
        headers: Vec<(String, String)>,
    },
    /// `exec`: the command, in the container, exits 0.
    Exec { command: Vec<String> },
    /// `grpc`: the gRPC health service (`grpc.health.v1.Health/Check`)
    /// answers SERVING for `service` ("" for the server as a whole).
    Grpc { port: u16, service: String },
}

/// A probe's port: a number, or a name of the container's ports that no
/// port has (kubelet's probe then fails, saying so).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProbePort {
    Number(u16),
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    pub name: Option<String>,
    pub container_port: u16,
    pub host_port: Option<u16>,
    pub host_ip: Option<String>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub volume: String,
    pub mount_path: String,
    pub read_only: bool,
    pub sub_path: Option<String>,
}

/// Kubernetes' default pull policy for an image reference: Always when the tag
/// is `latest` or there is neither tag nor digest, otherwise IfNotPresent.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        use PullPolicy::*;
        for (image, want) in [
            ("busybox", Always),
            ("busybox:latest", Always),
            ("docker.io/library/busybox", Always),
            ("localhost:5000/busybox", Always),
            ("localhost:5000/busybox:latest", Always),
            ("busybox:1.36", IfNotPresent),
            ("localhost:5000/team/app:v2", IfNotPresent),
            ("busybox@sha256:abcd", IfNotPresent),
            ("busybox:latest@sha256:abcd", Always),
            ("busybox:1.36@sha256:abcd", IfNotPresent),
        ] {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn host_path_types() {
        assert_eq!(HostPathType::parse(""), Some(HostPathType::Unset));
        assert_eq!(HostPathType::parse("Socket"), Some(HostPathType::Socket));
        assert_eq!(HostPathType::parse("directory"), None);
    }
}
