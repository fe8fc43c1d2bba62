//! `run`'s half of a pod's ConfigMaps, Secrets and downward API: the
//! pod's facts (uid, this machine as its node), each container's
//! environment and each config volume's files resolved before anything is
//! created, and the files put in the pause's config.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine as _;

use super::contract::container::POD_IP;
use super::contract::pause::{self, ConfigVolumeFiles};
use super::service_env::service_env;
use crate::net::service_table::ServiceTable;
use crate::paths::Roots;
use crate::spec::PodPlan;
use crate::spec::config::{self, PodFacts, VolumeFile};
use crate::spec::objects::ConfigObjects;

/// A pod's ConfigMap, Secret and downward API data, resolved.
pub(super) struct Resolved {
    pub uid: String,
    /// Each container's environment, by name.
    pub env: HashMap<String, Vec<(String, String)>>,
    /// Each config volume's files, by name.
    pub volumes: Vec<(String, Vec<VolumeFile>)>,
}

/// Resolves every container's environment (over the Service environment
/// variables of the pod's namespace in `services`) and every config
/// volume's files, and checks each subPath into such a volume: all problems at
/// once, before anything is created.
pub(super) fn resolve_config(
    plan: &PodPlan,
    objects: &ConfigObjects,
    facts: &PodFacts,
    services: &ServiceTable,
) -> Result<Resolved> {
    let mut errors = Vec::new();
    let mut env = HashMap::new();
    let service_env = service_env(services, &plan.namespace, plan.service_links);
    for c in plan.init_containers.iter().chain(&plan.containers) {
        match config::resolve_env_with(&service_env, &c.env, &c.env_from, &c.name, objects, facts) {
            Ok(e) => {
                env.insert(c.name.clone(), e);
            }
            Err(e) => errors.extend(e),
        }
    }
    let mut volumes = Vec::new();
    for (name, v) in plan.config_volumes() {
        match config::volume_files(name, v, objects, facts) {
            Ok(files) => volumes.push((name.to_string(), files)),
            Err(e) => errors.extend(e),
        }
    }
    for c in plan.init_containers.iter().chain(&plan.containers) {
        for m in &c.mounts {
            let (Some(sub), Some((_, files))) =
                (&m.sub_path, volumes.iter().find(|(n, _)| *n == m.volume))
            else {
                continue;
            };
            if let Some(why) = config::sub_path_problem(&m.volume, files, sub) {
                errors.push(format!("container {:?}: {why}", c.name));
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(Resolved {
        uid: facts.uid.clone(),
        env,
        volumes,
    })
}

/// A pod's `metadata.uid`: a random UUID.
pub(super) fn new_uid() -> Result<String> {
    let mut bytes = [0u8; 16];
    let mut f = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    f.read_exact(&mut bytes).context("reading /dev/urandom")?;
    Ok(super::state::uuid_v4(bytes))
}

/// What the downward API says of the pod and this machine (its node).
pub(super) fn pod_facts(roots: &Roots, plan: &PodPlan, uid: &str) -> PodFacts {
    let host_ip = if plan.host_network {
        primary_address()
    } else {
        // The address at which pods reach the host (host.containers.internal),
        // else the bridge's gateway.
        crate::userns::holder::read_live(roots)
            .and_then(|h| {
                h.host_gateway.map(|g| g.to_string()).or_else(|| {
                    crate::net::ipam::Subnet::parse(&h.subnet)
                        .ok()
                        .map(|s| s.gateway().to_string())
                })
            })
            .unwrap_or_else(primary_address)
    };
    let pod_ip = match plan.host_network {
        true => host_ip.clone(),
        // The supervisor puts the leased address in its place.
        false => POD_IP.to_string(),
    };
    let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .unwrap_or(1)
        .max(1) as u128;
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u128>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let storage = nix::sys::statvfs::statvfs(&roots.data)
        .map(|s| s.blocks() as u128 * s.fragment_size() as u128)
        .unwrap_or(0);
    PodFacts {
        name: plan.name.clone(),
        namespace: plan.namespace.clone(),
        uid: uid.to_string(),
        labels: plan.labels.clone(),
        annotations: plan.annotations.clone(),
        node_name: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        service_account: plan.service_account.clone(),
        host_ip,
        pod_ip,
        cpu_millis: cpus * 1000,
        memory_bytes: memory,
        ephemeral_storage_bytes: storage,
    }
}

/// This machine's address on its default route (no packet is sent), else
/// 127.0.0.1: a hostNetwork pod's address, as a node's InternalIP.
fn primary_address() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

/// The volumes' files as the pause takes them (`dir` of each volume's
/// name: its mount point).
pub(super) fn for_pause(
    volumes: &[(String, Vec<VolumeFile>)],
    fs_group: Option<u32>,
    dir: impl Fn(&str) -> PathBuf,
) -> Vec<ConfigVolumeFiles> {
    volumes
        .iter()
        .map(|(name, files)| ConfigVolumeFiles {
            dir: dir(name),
            fs_group,
            files: files
                .iter()
                .map(|f| pause::VolumeFile {
                    path: f.path.clone(),
                    mode: f.mode,
                    data: base64::engine::general_purpose::STANDARD.encode(&f.data),
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::contract::pause::PauseConfig;
    use super::*;

    fn pause_with(bytes: usize) -> PauseConfig {
        let files = vec![(
            "cfg".to_string(),
            vec![VolumeFile {
                path: "big".into(),
                mode: 0o644,
                data: vec![b'x'; bytes],
            }],
        )];
        PauseConfig {
            hostname: "p".into(),
            share_pid: false,
            host_network: false,
            parent: 0,
            tmpfs: Vec::new(),
            pod_dir: PathBuf::from("/run/p"),
            network: None,
            serve_sockets: false,
            host_ipc: false,
            sysctls: Vec::new(),
            image_volumes: Vec::new(),
            config_volumes: for_pause(&files, None, |n| {
                PathBuf::from(format!("/run/p/volumes/{n}"))
            }),
        }
    }

    #[test]
    fn files_reach_the_pause_in_base64() {
        let small = pause_with(3);
        assert_eq!(
            small.config_volumes[0].dir,
            PathBuf::from("/run/p/volumes/cfg")
        );
        assert_eq!(small.config_volumes[0].files[0].data, "eHh4");
    }
}
