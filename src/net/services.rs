//! Decisions about Services, pure: which virtual IP a Service gets, which
//! pods are its endpoints, and what the forwarding rules must say. The
//! effects (reading pods' state, writing `services.json`, the nftables
//! batch) are `runtime::services` and `net::nftables`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::portfwd::Protocol;
use super::service_table::{Endpoint, ServiceEntry, ServiceTable, TargetPort};

/// The range nodePorts are allocated from: kube-apiserver's default
/// `--service-node-port-range`.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// What the table needs of one pod (from its `state.json`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    /// Its address on the bridge, while it has one.
    pub ip: Option<String>,
    /// Running and Ready (kubelet's condition).
    pub ready: bool,
    /// Running at all (a stopped pod is no endpoint, ready or not).
    pub running: bool,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
    /// Container ports by name: (name, protocol `TCP`/`UDP`, port).
    pub named_ports: Vec<(String, String, u16)>,
}

/// The virtual IP a registration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantIp {
    /// Keep the one it has, else a free one.
    Allocate,
    Headless,
    Fixed(Ipv4Addr),
}

/// A Service selects a pod of its namespace whose labels hold every pair of
/// its selector; an empty selector selects nothing (its endpoints would be
/// managed by hand in a cluster).
pub fn selects(service: &ServiceEntry, pod: &PodFacts) -> bool {
    !service.selector.is_empty()
        && service.namespace == pod.namespace
        && service
            .selector
            .iter()
            .all(|(k, v)| pod.labels.get(k) == Some(v))
}

/// `a.b.c.d/n` as (network, prefix).
pub fn parse_subnet(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("{s:?} is not an IPv4 subnet such as 10.89.0.0/16");
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&prefix) {
        return Err(format!("{s:?}: the prefix must be between /8 and /30"));
    }
    let mask = u32::MAX << (32 - prefix);
    Ok((Ipv4Addr::from(u32::from(ip) & mask), prefix))
}

fn in_subnet(ip: Ipv4Addr, (net, prefix): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX << (32 - prefix);
    u32::from(ip) & mask == u32::from(net)
}

/// A free address of `subnet` (neither its network nor its broadcast
/// address, nor one of `taken`), starting at a place given by `key` so a
/// Service made again after `down` tends to get its old address back.
pub fn allocate(subnet: (Ipv4Addr, u8), taken: &[Ipv4Addr], key: &str) -> Option<Ipv4Addr> {
    let size = 1u64 << (32 - subnet.1);
    let hosts = size - 2;
    let start = crate::sys::hash::fnv1a64(key) % hosts;
    (0..hosts)
        .map(|i| Ipv4Addr::from(u32::from(subnet.0) + 1 + ((start + i) % hosts) as u32))
        .find(|ip| !taken.contains(ip))
}

fn ip_of(entry: &ServiceEntry) -> Option<Ipv4Addr> {
    entry.cluster_ip.as_deref().and_then(|s| s.parse().ok())
}

/// The table with `wanted` registered (each replacing a Service of its
/// namespace and name; one that had a virtual IP keeps it unless another is
/// asked for), or why one cannot be.
///
/// NodePort and LoadBalancer Services also get their host ports here: a
/// nodePort for each port without one (the one it had, else a free one of
/// `NODE_PORTS`), each host port once on the machine and not below
/// `unprivileged_start` (`net.ipv4.ip_unprivileged_port_start`).
pub fn register(
    mut table: ServiceTable,
    wanted: Vec<(ServiceEntry, WantIp)>,
    subnet: (Ipv4Addr, u8),
    unprivileged_start: u32,
) -> Result<ServiceTable, String> {
    for (mut entry, want) in wanted {
        let old = table
            .services
            .iter()
            .position(|s| s.namespace == entry.namespace && s.name == entry.name)
            .map(|i| table.services.remove(i));
        let taken: Vec<Ipv4Addr> = table.services.iter().filter_map(ip_of).collect();
        let key = format!("{}/{}", entry.namespace, entry.name);
        let ip = match want {
            WantIp::Headless => None,
            WantIp::Fixed(ip) => {
                if !in_subnet(ip, subnet) {
                    return Err(format!(
                        "Service {key}: clusterIP {ip} is not in the service range {}/{}; leave \
                         clusterIP out to have one allocated, or set MINIPOD_SERVICE_SUBNET",
                        subnet.0, subnet.1
                    ));
                }
                if let Some(other) = table.services.iter().find(|s| ip_of(s) == Some(ip)) {
                    return Err(format!(
                        "Service {key}: clusterIP {ip} is already Service {}/{}'s; pick another \
                         or leave clusterIP out",
                        other.namespace, other.name
                    ));
                }
                Some(ip)
            }
            WantIp::Allocate => match old.as_ref().and_then(ip_of) {
                Some(ip) if in_subnet(ip, subnet) && !taken.contains(&ip) => Some(ip),
                _ => Some(allocate(subnet, &taken, &key).ok_or_else(|| {
                    format!(
                        "Service {key}: no free address left in the service range {}/{}",
                        subnet.0, subnet.1
                    )
                })?),
            },
        };
        entry.cluster_ip = ip.map(|ip| ip.to_string());
        assign_host_ports(
            &mut entry,
            old.as_ref(),
            &table.services,
            unprivileged_start,
        )?;
        entry.endpoints = old.map(|o| o.endpoints).unwrap_or_default();
        table.services.push(entry);
    }
    table
        .services
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(table)
}

/// The host ports a Service is published on, as (field, port, protocol,
/// index of its port): each port's nodePort, and a LoadBalancer's ports
/// themselves.
fn host_ports(s: &ServiceEntry) -> Vec<(String, u16, &str, usize)> {
    let mut out = Vec::new();
    for (i, p) in s.ports.iter().enumerate() {
        if s.kind == "LoadBalancer" {
            out.push((
                format!("spec.ports[{i}].port"),
                p.port,
                p.protocol.as_str(),
                i,
            ));
        }
        if let Some(n) = p.node_port {
            out.push((
                format!("spec.ports[{i}].nodePort"),
                n,
                p.protocol.as_str(),
                i,
            ));
        }
    }
    out
}

/// Gives `entry`'s ports their nodePorts and checks every host port it
/// would be published on against the machine's limit and `others`.
fn assign_host_ports(
    entry: &mut ServiceEntry,
    old: Option<&ServiceEntry>,
    others: &[ServiceEntry],
    unprivileged_start: u32,
) -> Result<(), String> {
    let key = format!("{}/{}", entry.namespace, entry.name);
    let mut taken: Vec<(u16, String, String)> = others
        .iter()
        .flat_map(|o| {
            host_ports(o)
                .into_iter()
                .map(|(_, port, proto, _)| {
                    (
                        port,
                        proto.to_string(),
                        format!("{}/{}", o.namespace, o.name),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let is_taken = |taken: &[(u16, String, String)], port: u16, proto: &str| {
        taken
            .iter()
            .find(|(p, pr, _)| *p == port && pr == proto)
            .map(|(_, _, by)| by.clone())
    };
    for i in 0..entry.ports.len() {
        let p = &entry.ports[i];
        if p.node_port.is_some() || !entry.allocate_node_ports {
            continue;
        }
        let kept = old
            .and_then(|o| {
                o.ports
                    .iter()
                    .find(|q| q.port == p.port && q.protocol == p.protocol)
            })
            .and_then(|q| q.node_port)
            .filter(|n| is_taken(&taken, *n, &p.protocol).is_none());
        let span = u64::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
        let first = crate::sys::hash::fnv1a64(&format!("{key}/{}/{}", p.port, p.protocol)) % span;
        let mine: Vec<u16> = entry.ports.iter().filter_map(|q| q.node_port).collect();
        let free = kept.or_else(|| {
            (0..span)
                .map(|k| NODE_PORTS.start() + ((first + k) % span) as u16)
                .find(|n| is_taken(&taken, *n, &p.protocol).is_none() && !mine.contains(n))
        });
        let Some(n) = free else {
            return Err(format!(
                "Service {key}: no free nodePort left in {}-{}; `minipod service ls` shows \
                 which Services hold them",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            ));
        };
        entry.ports[i].node_port = Some(n);
    }
    for (field, port, proto, _) in host_ports(entry) {
        if u32::from(port) < unprivileged_start {
            return Err(format!(
                "Service {key}: {field} {port}/{proto} would be published on the host, and \
                 {port} is below net.ipv4.ip_unprivileged_port_start ({unprivileged_start}), \
                 which a rootless user may not bind; use a port ≥ {unprivileged_start} (or \
                 type NodePort, reached on its nodePort), or lower the sysctl (sysctl \
                 net.ipv4.ip_unprivileged_port_start={port})"
            ));
        }
        if let Some(by) = is_taken(&taken, port, proto) {
            return Err(format!(
                "Service {key}: {field} {port}/{proto} is already published by Service {by}; \
                 pick another port, or `minipod down` the file of {by}"
            ));
        }
        taken.push((port, proto.to_string(), key.clone()));
    }
    Ok(())
}

/// One host port a NodePort or LoadBalancer Service is published on, and
/// where its traffic goes: the virtual IP and port, from the uplink netns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostForward {
    /// Who asks, for messages: `Service default/web spec.ports[0].nodePort`.
    pub asked_by: String,
    /// A nodePort (else a LoadBalancer's own port), for messages.
    pub node_port: bool,
    pub host_port: u16,
    pub protocol: Protocol,
    pub vip: Ipv4Addr,
    pub port: u16,
}

/// Every host port of the table's Services, in table order.
pub fn host_forwards(table: &ServiceTable) -> Vec<HostForward> {
    table
        .services
        .iter()
        .flat_map(service_host_forwards)
        .collect()
}

/// The host ports of one Service (none without a virtual IP).
pub fn service_host_forwards(s: &ServiceEntry) -> Vec<HostForward> {
    let mut out = Vec::new();
    if let Some(vip) = ip_of(s) {
        for (field, host_port, proto, i) in host_ports(s) {
            out.push(HostForward {
                node_port: field.ends_with(".nodePort"),
                asked_by: format!("Service {}/{} {field}", s.namespace, s.name),
                host_port,
                protocol: if proto == "UDP" {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
                vip,
                port: s.ports[i].port,
            });
        }
    }
    out
}

/// The table without the Services read from `source`; the names removed.
pub fn remove_source(table: &mut ServiceTable, source: &str) -> Vec<String> {
    let mut removed = Vec::new();
    table.services.retain(|s| {
        let from = s.source.as_deref() == Some(source);
        if from {
            removed.push(format!("{}/{}", s.namespace, s.name));
        }
        !from
    });
    removed
}

/// The table without the Services of `names` (namespace, name) that were
/// read from stdin (no source file): `down -`. The names removed.
pub fn remove_named(table: &mut ServiceTable, names: &[(String, String)]) -> Vec<String> {
    let mut removed = Vec::new();
    table.services.retain(|s| {
        let named = s.source.is_none()
            && names
                .iter()
                .any(|(ns, n)| *ns == s.namespace && *n == s.name);
        if named {
            removed.push(format!("{}/{}", s.namespace, s.name));
        }
        !named
    });
    removed
}

/// Each Service's endpoints recomputed from the pods (sorted by pod name).
pub fn with_endpoints(mut table: ServiceTable, pods: &[PodFacts]) -> ServiceTable {
    for s in &mut table.services {
        let mut endpoints: Vec<Endpoint> = pods
            .iter()
            .filter(|p| p.running && selects(s, p))
            .filter_map(|p| {
                Some(Endpoint {
                    ip: p.ip.clone()?,
                    pod: p.name.clone(),
                    hostname: p.hostname.clone(),
                    subdomain: p.subdomain.clone(),
                    ready: p.ready,
                    target_ports: s
                        .ports
                        .iter()
                        .map(|port| match &port.target_port {
                            TargetPort::Number(n) => Some(*n),
                            TargetPort::Name(name) => p
                                .named_ports
                                .iter()
                                .find(|(n, proto, _)| n == name && *proto == port.protocol)
                                .map(|(_, _, number)| *number),
                        })
                        .collect(),
                })
            })
            .collect();
        endpoints.sort_by(|a, b| a.pod.cmp(&b.pod));
        s.endpoints = endpoints;
    }
    table
}

/// One Service port as the rules forward it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub vip: Ipv4Addr,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub protocol: u8,
    pub port: u16,
    /// The serving endpoints' (address, target port); none: the traffic is
    /// rejected, as kube-proxy does for a Service without endpoints.
    pub targets: Vec<(Ipv4Addr, u16)>,
}

/// What the nftables table must forward: every port of every Service with a
/// virtual IP, to its serving endpoints that have the port.
pub fn forwards(table: &ServiceTable) -> Vec<Forward> {
    let mut out = Vec::new();
    for s in &table.services {
        let Some(vip) = ip_of(s) else { continue };
        for (i, port) in s.ports.iter().enumerate() {
            let targets = s
                .serving()
                .filter_map(|e| {
                    let ip: Ipv4Addr = e.ip.parse().ok()?;
                    Some((ip, (*e.target_ports.get(i)?)?))
                })
                .collect();
            out.push(Forward {
                vip,
                protocol: if port.protocol == "UDP" { 17 } else { 6 },
                port: port.port,
                targets,
            });
        }
    }
    out
}

/// What an endpoint computation depends on in one pod's record: the
/// supervisor syncs the table only when this changed.
pub fn endpoint_key(pod: &PodFacts) -> (Option<String>, bool, bool) {
    (pod.ip.clone(), pod.running, pod.ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::service_table::ServicePort;

    fn entry(name: &str, ports: Vec<ServicePort>) -> ServiceEntry {
        ServiceEntry {
            namespace: "default".into(),
            name: name.into(),
            kind: "ClusterIP".into(),
            cluster_ip: None,
            ports,
            selector: [("app".to_string(), name.to_string())].into(),
            endpoints: Vec::new(),
            publish_not_ready: false,
            allocate_node_ports: false,
            source: Some("/f.yaml".into()),
        }
    }

    fn port(port: u16, target: TargetPort) -> ServicePort {
        ServicePort {
            name: None,
            protocol: "TCP".into(),
            port,
            target_port: target,
            node_port: None,
        }
    }

    fn pod(name: &str, app: &str, ip: &str, ready: bool) -> PodFacts {
        PodFacts {
            namespace: "default".into(),
            name: name.into(),
            ip: Some(ip.into()),
            ready,
            running: true,
            labels: [("app".to_string(), app.to_string())].into(),
            named_ports: vec![("http".into(), "TCP".into(), 8080)],
            ..PodFacts::default()
        }
    }

    const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 89, 0, 0), 16);

    #[test]
    fn allocation_is_stable_free_and_inside_the_range() {
        let a = allocate(SUBNET, &[], "default/web").unwrap();
        assert_eq!(a, allocate(SUBNET, &[], "default/web").unwrap());
        assert!(in_subnet(a, SUBNET));
        let b = allocate(SUBNET, &[a], "default/web").unwrap();
        assert_ne!(a, b);
        let tiny = (Ipv4Addr::new(10, 0, 0, 0), 30);
        let all: Vec<Ipv4Addr> = ["10.0.0.1", "10.0.0.2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(allocate(tiny, &all, "x"), None);
        assert_eq!(
            allocate(tiny, &all[..1], "x"),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
    }

    fn node_port_service(name: &str, kind: &str, ports: Vec<ServicePort>) -> ServiceEntry {
        ServiceEntry {
            kind: kind.into(),
            allocate_node_ports: true,
            ..entry(name, ports)
        }
    }

    #[test]
    fn node_ports_are_kept_free_and_checked_and_forwarded_to_the_virtual_ip() {
        let web = node_port_service("web", "NodePort", vec![port(80, TargetPort::Number(8080))]);
        let t = register(
            ServiceTable::default(),
            vec![(web.clone(), WantIp::Allocate)],
            SUBNET,
            1024,
        )
        .unwrap();
        let given = t.services[0].ports[0].node_port.unwrap();
        assert!(NODE_PORTS.contains(&given));
        // Registered again (run of the same file): the same nodePort.
        let t = register(t, vec![(web.clone(), WantIp::Allocate)], SUBNET, 1024).unwrap();
        assert_eq!(t.services[0].ports[0].node_port, Some(given));
        // Another Service asking for it by number is refused, naming web.
        let mut other = node_port_service("api", "NodePort", vec![port(81, TargetPort::Number(1))]);
        other.ports[0].node_port = Some(given);
        let e = register(t.clone(), vec![(other, WantIp::Allocate)], SUBNET, 1024).unwrap_err();
        assert!(
            e.contains("already published by Service default/web"),
            "{e}"
        );
        // A LoadBalancer is published on its port and its nodePort; below
        // the unprivileged start it is refused with the sysctl to change.
        let lb = node_port_service(
            "front",
            "LoadBalancer",
            vec![port(80, TargetPort::Number(80))],
        );
        let e = register(t.clone(), vec![(lb, WantIp::Allocate)], SUBNET, 1024).unwrap_err();
        assert!(
            e.contains("spec.ports[0].port 80/TCP") && e.contains("ip_unprivileged_port_start=80"),
            "{e}"
        );
        let lb = node_port_service(
            "front",
            "LoadBalancer",
            vec![port(8080, TargetPort::Number(80))],
        );
        let t = register(t, vec![(lb, WantIp::Allocate)], SUBNET, 1024).unwrap();
        let forwards = host_forwards(&t);
        let ports: Vec<(u16, u16)> = forwards.iter().map(|f| (f.host_port, f.port)).collect();
        let front_np = t.services[0].ports[0].node_port.unwrap();
        assert_eq!(ports, [(8080, 8080), (front_np, 8080), (given, 80)]);
        assert_eq!(
            forwards[0].asked_by,
            "Service default/front spec.ports[0].port"
        );
        assert_eq!(Some(forwards[2].vip.to_string()), t.services[1].cluster_ip);
        // Without allocateLoadBalancerNodePorts: its port only; ClusterIP: none.
        let mut lb = node_port_service(
            "front",
            "LoadBalancer",
            vec![port(8080, TargetPort::Number(80))],
        );
        lb.allocate_node_ports = false;
        let t = register(t, vec![(lb, WantIp::Allocate)], SUBNET, 1024).unwrap();
        assert_eq!(host_forwards(&t).len(), 2);
        let t = register(
            t,
            vec![(
                entry("db", vec![port(5432, TargetPort::Number(5432))]),
                WantIp::Allocate,
            )],
            SUBNET,
            1024,
        )
        .unwrap();
        assert_eq!(host_forwards(&t).len(), 2);
    }

    #[test]
    fn registering_again_keeps_the_ip_and_fixed_ips_are_checked() {
        let t = register(
            ServiceTable::default(),
            vec![(entry("web", vec![]), WantIp::Allocate)],
            SUBNET,
            1024,
        )
        .unwrap();
        let ip = t.services[0].cluster_ip.clone().unwrap();
        let t = register(
            t,
            vec![(entry("web", vec![]), WantIp::Allocate)],
            SUBNET,
            1024,
        )
        .unwrap();
        assert_eq!(t.services.len(), 1);
        assert_eq!(t.services[0].cluster_ip.as_deref(), Some(ip.as_str()));
        let clash = register(
            t.clone(),
            vec![(entry("db", vec![]), WantIp::Fixed(ip.parse().unwrap()))],
            SUBNET,
            1024,
        );
        assert!(clash.unwrap_err().contains("already Service default/web"));
        let outside = register(
            t.clone(),
            vec![(
                entry("db", vec![]),
                WantIp::Fixed(Ipv4Addr::new(10, 1, 0, 1)),
            )],
            SUBNET,
            1024,
        );
        assert!(outside.unwrap_err().contains("not in the service range"));
        let t = register(
            t,
            vec![(entry("db", vec![]), WantIp::Headless)],
            SUBNET,
            1024,
        )
        .unwrap();
        assert_eq!(t.services[0].name, "db");
        assert_eq!(t.services[0].cluster_ip, None);
        let mut t = t;
        let names = [("default".to_string(), "db".to_string())];
        assert!(
            remove_named(&mut t, &names).is_empty(),
            "db came from a file"
        );
        assert_eq!(remove_source(&mut t, "/f.yaml").len(), 2);
        assert!(t.services.is_empty());
    }

    #[test]
    fn endpoints_are_the_selected_running_pods_with_ports_resolved() {
        let mut web = entry(
            "web",
            vec![
                port(80, TargetPort::Name("http".into())),
                port(81, TargetPort::Name("nope".into())),
                port(82, TargetPort::Number(9090)),
            ],
        );
        web.cluster_ip = Some("10.89.0.7".into());
        let mut stopped = pod("web-c", "web", "10.88.0.4", false);
        stopped.running = false;
        let mut elsewhere = pod("web-d", "web", "10.88.0.5", true);
        elsewhere.namespace = "other".into();
        let pods = [
            pod("web-b", "web", "10.88.0.3", false),
            pod("web-a", "web", "10.88.0.2", true),
            pod("db", "db", "10.88.0.9", true),
            stopped,
            elsewhere,
        ];
        let t = with_endpoints(
            ServiceTable {
                services: vec![web],
            },
            &pods,
        );
        let eps = &t.services[0].endpoints;
        assert_eq!(
            eps.iter().map(|e| e.pod.as_str()).collect::<Vec<_>>(),
            ["web-a", "web-b"]
        );
        assert_eq!(eps[0].target_ports, [Some(8080), None, Some(9090)]);
        // Only the ready one serves; a port no pod has rejects.
        let f = forwards(&t);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].targets, [(Ipv4Addr::new(10, 88, 0, 2), 8080)]);
        assert!(f[1].targets.is_empty());
        assert_eq!(f[2].port, 82);
        let mut t = t;
        t.services[0].publish_not_ready = true;
        assert_eq!(forwards(&t)[0].targets.len(), 2);
    }

    #[test]
    fn subnets_parse() {
        assert_eq!(parse_subnet("10.89.0.0/16"), Ok(SUBNET));
        assert_eq!(parse_subnet("10.89.3.4/16"), Ok(SUBNET));
        assert!(parse_subnet("10.89.0.0").is_err());
        assert!(parse_subnet("10.89.0.0/31").is_err());
    }
}
