//! The Service environment variables kubelet gives every container
//! (`getServiceEnvVarMap`, `envvars.FromServices`): for each Service of the
//! pod's namespace with a cluster IP when the pod starts, its host and
//! ports, and the docker-link forms. Pure: the table in, variables out.
//! There is no `kubernetes` Service (no API server), so no
//! `KUBERNETES_SERVICE_*`.

use crate::net::service_table::{ServiceEntry, ServiceTable};

/// The variables for a pod of `namespace`, Services in the table's order
/// (namespace, name); none with `enableServiceLinks: false`.
pub fn service_env(table: &ServiceTable, namespace: &str, links: bool) -> Vec<(String, String)> {
    if !links {
        return Vec::new();
    }
    let mut out = Vec::new();
    for s in table.in_namespace(namespace) {
        add_service(&mut out, s);
    }
    out
}

/// kubelet's `makeEnvVariableName`: upper case, `-` as `_`.
fn var_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

fn add_service(out: &mut Vec<(String, String)>, s: &ServiceEntry) {
    // Headless (or no address): none, as `IsServiceIPSet`.
    let Some(ip) = s
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return;
    };
    let Some(first) = s.ports.first() else {
        return;
    };
    let prefix = var_name(&s.name);
    out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
    let port_var = format!("{prefix}_SERVICE_PORT");
    out.push((port_var.clone(), first.port.to_string()));
    for p in &s.ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((format!("{port_var}_{}", var_name(name)), p.port.to_string()));
        }
    }
    // Docker's link variables (`makeLinkVariables`).
    let host_port = match ip.contains(':') {
        true => format!("[{ip}]"),
        false => ip.to_string(),
    };
    for (i, p) in s.ports.iter().enumerate() {
        let protocol = match p.protocol.as_str() {
            "" => "TCP".to_string(),
            other => other.to_ascii_uppercase(),
        };
        let lower = protocol.to_ascii_lowercase();
        let url = format!("{lower}://{host_port}:{}", p.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{protocol}", p.port);
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::service_table::{ServicePort, TargetPort};

    fn port(name: Option<&str>, protocol: &str, port: u16) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            protocol: protocol.into(),
            port,
            target_port: TargetPort::Number(port),
            node_port: None,
        }
    }

    fn service(ns: &str, name: &str, ip: Option<&str>, ports: Vec<ServicePort>) -> ServiceEntry {
        ServiceEntry {
            namespace: ns.into(),
            name: name.into(),
            kind: "ClusterIP".into(),
            cluster_ip: ip.map(str::to_string),
            ports,
            selector: Default::default(),
            endpoints: Vec::new(),
            publish_not_ready: false,
            allocate_node_ports: false,
            source: None,
        }
    }

    fn table() -> ServiceTable {
        ServiceTable {
            services: vec![
                service("default", "db", None, vec![port(None, "TCP", 5432)]),
                service(
                    "default",
                    "redis-leader",
                    Some("10.89.0.10"),
                    vec![
                        port(Some("redis"), "TCP", 6379),
                        port(Some("metrics-udp"), "UDP", 9121),
                    ],
                ),
                service(
                    "other",
                    "web",
                    Some("10.89.0.11"),
                    vec![port(None, "TCP", 80)],
                ),
            ],
        }
    }

    #[test]
    fn a_service_gets_kubelets_variables_in_kubelets_order() {
        let env = service_env(&table(), "default", true);
        let want: Vec<(String, String)> = [
            ("REDIS_LEADER_SERVICE_HOST", "10.89.0.10"),
            ("REDIS_LEADER_SERVICE_PORT", "6379"),
            ("REDIS_LEADER_SERVICE_PORT_REDIS", "6379"),
            ("REDIS_LEADER_SERVICE_PORT_METRICS_UDP", "9121"),
            ("REDIS_LEADER_PORT", "tcp://10.89.0.10:6379"),
            ("REDIS_LEADER_PORT_6379_TCP", "tcp://10.89.0.10:6379"),
            ("REDIS_LEADER_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_LEADER_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_LEADER_PORT_6379_TCP_ADDR", "10.89.0.10"),
            ("REDIS_LEADER_PORT_9121_UDP", "udp://10.89.0.10:9121"),
            ("REDIS_LEADER_PORT_9121_UDP_PROTO", "udp"),
            ("REDIS_LEADER_PORT_9121_UDP_PORT", "9121"),
            ("REDIS_LEADER_PORT_9121_UDP_ADDR", "10.89.0.10"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want, "headless db gets none; other namespaces none");
    }

    #[test]
    fn service_links_off_gives_none() {
        assert!(service_env(&table(), "default", false).is_empty());
        assert!(service_env(&table(), "nowhere", true).is_empty());
        let other = service_env(&table(), "other", true);
        assert_eq!(other[0], ("WEB_SERVICE_HOST".into(), "10.89.0.11".into()));
        assert_eq!(other[1], ("WEB_SERVICE_PORT".into(), "80".into()));
        assert_eq!(other.len(), 2 + 5, "no named ports");
    }
}
