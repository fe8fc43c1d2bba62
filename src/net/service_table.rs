//! The Service table: every Service `run` registered, with its virtual IP,
//! ports and the ready pods behind it right now.
//!
//! One writer, many readers: whoever changes Services or their endpoints
//! (`run`, `down`, a supervisor whose pod changed readiness or stopped)
//! recomputes the table under `services.lock` and replaces `services.json`
//! in the run root atomically; the nftables rules are written from the same
//! table in the same step. Readers take no lock (the file is whole or
//! absent): the DNS server answers names from it, `run` gives a starting
//! pod the Service environment variables of its namespace from it, and
//! `service ls` / `inspect service/NAME` print it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The file in the run root.
pub const FILE: &str = "services.json";
/// The lock every writer of the table (and of the rules made from it) holds.
pub const LOCK: &str = "services.lock";

/// The default range virtual IPs are taken from (`MINIPOD_SERVICE_SUBNET`
/// picks another when the holder starts).
pub const DEFAULT_SERVICE_SUBNET: &str = "10.89.0.0/16";
/// The cluster domain names end in (`MINIPOD_CLUSTER_DOMAIN` picks another).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceTable {
    /// Sorted by namespace, then name.
    pub services: Vec<ServiceEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The virtual IP; `None` for a headless Service (`clusterIP: None`).
    pub cluster_ip: Option<String>,
    pub ports: Vec<ServicePort>,
    /// `spec.selector`; empty selects nothing.
    pub selector: std::collections::BTreeMap<String, String>,
    /// The pods the selector matches, ready or not (DNS and the rules use
    /// only the ready ones, unless `publish_not_ready`).
    pub endpoints: Vec<Endpoint>,
    /// `spec.publishNotReadyAddresses`.
    #[serde(default)]
    pub publish_not_ready: bool,
    /// Ports registered without a nodePort get one (NodePort, and
    /// LoadBalancer unless `allocateLoadBalancerNodePorts: false`).
    #[serde(default)]
    pub allocate_node_ports: bool,
    /// The file `run` read it from (absolute), for `down FILE`; none for stdin.
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    /// `TCP` or `UDP`.
    pub protocol: String,
    pub port: u16,
    /// A number, or the name of a container port.
    pub target_port: TargetPort,
    /// NodePort and LoadBalancer: the host port it is published on (a
    /// LoadBalancer's is also published on `port`).
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The pod's IP.
    pub ip: String,
    /// The pod's name.
    pub pod: String,
    /// `spec.hostname` (a StatefulSet's pod: its name) and `spec.subdomain`:
    /// the pod answers as `HOSTNAME.SUBDOMAIN.NAMESPACE.svc.DOMAIN` when the
    /// subdomain is this headless Service's name.
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
    pub ready: bool,
    /// Each service port's target resolved for this pod (a named
    /// targetPort through the pod's container ports), in `ports` order;
    /// `None` where the pod has no port of that name.
    pub target_ports: Vec<Option<u16>>,
}

impl ServiceTable {
    pub fn path(run_root: &Path) -> PathBuf {
        run_root.join(FILE)
    }

    /// The table as last written; empty when no Service was ever registered.
    pub fn load(run_root: &Path) -> Result<ServiceTable> {
        let path = Self::path(run_root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServiceTable::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the file whole (callers hold `LOCK`).
    pub fn store(&self, run_root: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("encoding the Service table")?;
        crate::sys::fs::atomic_write(&Self::path(run_root), &bytes)
    }

    /// The Services of one namespace.
    pub fn in_namespace<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a ServiceEntry> {
        self.services
            .iter()
            .filter(move |s| s.namespace == namespace)
    }
}

impl ServiceEntry {
    /// The endpoints DNS and the forwarding rules use.
    pub fn serving(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.ready || self.publish_not_ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ServiceTable::load(dir.path()).unwrap(),
            ServiceTable::default()
        );
        let table = ServiceTable {
            services: vec![ServiceEntry {
                namespace: "default".into(),
                name: "redis-leader".into(),
                kind: "ClusterIP".into(),
                cluster_ip: Some("10.89.0.10".into()),
                ports: vec![ServicePort {
                    name: None,
                    protocol: "TCP".into(),
                    port: 6379,
                    target_port: TargetPort::Name("redis".into()),
                    node_port: None,
                }],
                selector: [("app".to_string(), "redis".to_string())].into(),
                endpoints: vec![
                    Endpoint {
                        ip: "10.88.0.5".into(),
                        pod: "redis-0".into(),
                        hostname: None,
                        subdomain: None,
                        ready: true,
                        target_ports: vec![Some(6379)],
                    },
                    Endpoint {
                        ip: "10.88.0.6".into(),
                        pod: "redis-1".into(),
                        hostname: None,
                        subdomain: None,
                        ready: false,
                        target_ports: vec![Some(6379)],
                    },
                ],
                publish_not_ready: false,
                allocate_node_ports: false,
                source: None,
            }],
        };
        table.store(dir.path()).unwrap();
        let back = ServiceTable::load(dir.path()).unwrap();
        assert_eq!(back, table);
        let serving: Vec<_> = back.services[0].serving().map(|e| e.pod.as_str()).collect();
        assert_eq!(serving, ["redis-0"]);
        assert_eq!(back.in_namespace("other").count(), 0);
    }
}
