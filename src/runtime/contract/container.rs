//! What the supervisor hands to `minipod __container`: everything resolved,
//! so the process that sets up a container's namespaces and mounts needs no
//! YAML, no store and no image config. Passed as JSON on `fds::FD_CONFIG`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's name, for errors.
    pub name: String,
    /// The pod's supervisor: the container dies with it.
    pub supervisor_pid: i32,
    /// The pause process whose NET, IPC and UTS (and PID when `share_pid`)
    /// namespaces the container joins, by host pid. Its mount namespace is
    /// joined too and then copied (unshare), so the pod's tmpfs mounts
    /// (`shm`, memory volumes) made by the pause are visible.
    pub pause_pid: i32,
    pub share_pid: bool,
    /// `hostPID`: no PID namespace of its own; the host's /proc is bound.
    pub host_pid: bool,
    /// `hostIPC`: the host's IPC namespace; its /dev/mqueue is bound.
    pub host_ipc: bool,
    /// Image layers, bottom first (overlayfs lowerdirs are top first).
    pub layers: Vec<PathBuf>,
    /// Per-container overlayfs upper and work dirs, and the mount point.
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    /// The pod's /dev/shm: a tmpfs the pause mounted, shared by the pod.
    pub shm: PathBuf,
    /// Files written by the supervisor and bind-mounted read-only.
    pub hosts: PathBuf,
    pub hostname_file: PathBuf,
    pub resolv_conf: PathBuf,
    pub mounts: Vec<Mount>,
    pub process: Process,
    /// `tty: true`: the process gets a pty from the container's devpts as
    /// its controlling terminal and fds 0-2; the master goes to the
    /// supervisor on `fds::FD_CONSOLE`.
    #[serde(default)]
    pub tty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    /// argv[0] is looked up in the container's PATH when not absolute.
    pub argv: Vec<String>,
    /// `KEY=VALUE`, in order.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Capabilities, no_new_privs, read-only root, privileged: `exec`
    /// gives its commands the same capabilities and no_new_privs.
    pub security: crate::spec::security::SecurityPlan,
    /// Its seccomp filters (none: unconfined), installed as the last step
    /// before exec (before the user switch without no_new_privs: see
    /// `container::identity`).
    pub seccomp: crate::seccomp::Programs,
}

/// A volume mount, resolved to a source path. Sources are looked up in the
/// pause's mount namespace (which the container copies), where the pause has
/// mounted the pod's tmpfs volumes, so tmpfs contents are shared by the pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mount {
    pub destination: String,
    pub source: PathBuf,
    pub read_only: bool,
}

/// Stands for the pod's address in a container's environment (and
/// whatever `$(VAR)` expanded from it) until the supervisor leased one
/// (`status.podIP`).
pub const POD_IP: &str = "\u{1}minipod-pod-ip\u{1}";

impl Process {
    /// Puts the pod's address where `POD_IP` stands.
    pub fn fill_pod_ip(&mut self, ip: &str) {
        for s in self.env.iter_mut().chain(self.argv.iter_mut()) {
            if s.contains(POD_IP) {
                *s = s.replace(POD_IP, ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_ip_is_filled_in_env_and_argv() {
        let mut p = Process {
            argv: vec!["echo".into(), format!("http://{POD_IP}:80")],
            env: vec![format!("IP={POD_IP}"), "A=b".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            security: Default::default(),
            seccomp: Default::default(),
        };
        p.fill_pod_ip("10.88.0.4");
        assert_eq!(p.argv[1], "http://10.88.0.4:80");
        assert_eq!(p.env, ["IP=10.88.0.4", "A=b"]);
    }
}
