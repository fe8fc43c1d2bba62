//! Service documents (`kind: Service`, `apiVersion: v1`): checked as the API
//! server's `ValidateService` does, against the table of the fields minipod
//! honours, into a `ServicePlan` that `run` registers (a virtual IP, the
//! forwarding rules of the uplink netns; `net::service_table`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use super::names;
use super::support::{FieldSupport, Support};

/// One Service as `run` registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub name: String,
    pub namespace: String,
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    pub kind: String,
    pub cluster_ip: ClusterIp,
    pub ports: Vec<ServicePortPlan>,
    /// `spec.selector`; empty selects no pod (its endpoints are managed by
    /// hand in a cluster, which minipod has no API for).
    pub selector: BTreeMap<String, String>,
    pub publish_not_ready: bool,
    /// The file it was read from, as given.
    pub source: String,
    /// The line of its document.
    pub line: usize,
    /// Ports without a nodePort get one (NodePort, and LoadBalancer unless
    /// `allocateLoadBalancerNodePorts: false`).
    pub allocate_node_ports: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterIp {
    /// Not set: one is allocated from the service range.
    Allocate,
    /// `None`: a headless Service (no virtual IP, no forwarding).
    Headless,
    /// This address (which must lie in the service range).
    Fixed(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortPlan {
    pub name: Option<String>,
    /// `TCP` or `UDP`.
    pub protocol: String,
    pub port: u16,
    pub target_port: TargetPortPlan,
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPortPlan {
    Number(u16),
    /// A container port's name.
    Name(String),
}

const fn row(path: &'static str, support: Support, note: &'static str) -> FieldSupport {
    FieldSupport {
        path,
        support,
        note,
    }
}

use Support::*;

/// Why traffic-policy and address-family fields change nothing here.
const ONE_NODE: &str = "one node, IPv4 only: every endpoint is local";
/// Why load-balancer fields change nothing here.
const NO_CLOUD: &str = "no cloud load balancer here";

/// A Service document's own fields (metadata as a Pod's).
pub const SERVICE_FIELDS: &[FieldSupport] = &[
    row(
        "spec.type",
        Yes,
        "ClusterIP (default); NodePort: published on the host on each port's nodePort; \
         LoadBalancer: published on the host on each `port` (and its nodePort); ExternalName \
         is refused",
    ),
    row(
        "spec.clusterIP",
        Yes,
        "empty: allocated from the service range (10.89.0.0/16); `None`: headless; an \
         address in the range",
    ),
    row("spec.clusterIPs", Yes, "one IPv4 address, as clusterIP"),
    row(
        "spec.ports[].name",
        Yes,
        "required when there are several ports",
    ),
    row("spec.ports[].protocol", Yes, "TCP (default) or UDP"),
    row("spec.ports[].port", Yes, "the port of the virtual IP"),
    row(
        "spec.ports[].targetPort",
        Yes,
        "a number, or a container port's name; default: port",
    ),
    row(
        "spec.ports[].nodePort",
        Yes,
        "30000-32767, on the host's addresses; a free one when left out",
    ),
    row(
        "spec.ports[].appProtocol",
        Ignored,
        "a hint for implementations",
    ),
    row(
        "spec.selector",
        Yes,
        "the pods of the namespace whose labels match, from every `run`",
    ),
    row(
        "spec.publishNotReadyAddresses",
        Yes,
        "pods that are not ready get traffic too",
    ),
    row(
        "spec.sessionAffinity",
        Warned("connections are balanced at random, without affinity"),
        "",
    ),
    row(
        "spec.sessionAffinityConfig",
        Warned("connections are balanced at random, without affinity"),
        "",
    ),
    row("spec.externalTrafficPolicy", Warned(ONE_NODE), ""),
    row("spec.internalTrafficPolicy", Warned(ONE_NODE), ""),
    row("spec.ipFamilyPolicy", Warned(ONE_NODE), ""),
    row("spec.ipFamilies", OnlyValue("[\"IPv4\"]"), "IPv4 only"),
    row("spec.trafficDistribution", Warned(ONE_NODE), ""),
    row("spec.loadBalancerIP", Warned(NO_CLOUD), ""),
    row("spec.loadBalancerSourceRanges", Warned(NO_CLOUD), ""),
    row("spec.loadBalancerClass", Warned(NO_CLOUD), ""),
    row(
        "spec.allocateLoadBalancerNodePorts",
        Yes,
        "false: a LoadBalancer is published on its ports only",
    ),
    row("spec.healthCheckNodePort", Warned(NO_CLOUD), ""),
];

/// The API server's checks of a Service's spec (and minipod's refusals),
/// as (path, message); the plan when there is none.
pub fn service_plan(
    doc: &Value,
    name: &str,
    namespace: &str,
    source: &str,
    line: usize,
) -> Result<ServicePlan, Vec<(String, String)>> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut err = |path: &str, message: String| errors.push((path.to_string(), message));
    let spec = &doc["spec"];

    // A Service's name is a DNS-1035 label (checked_name checked the rest).
    if !name.is_empty()
        && names::dns1123_subdomain(name).is_none()
        && let Some(why) = names::dns1123_label(name).or_else(|| {
            (!name.starts_with(|c: char| c.is_ascii_lowercase())).then(|| {
                "a DNS-1035 label must start with a lowercase letter (a Service's name is a \
                 DNS name)"
                    .to_string()
            })
        })
    {
        err("metadata.name", names::invalid(name, &why));
    }

    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    match kind.as_str() {
        "ClusterIP" => {}
        "NodePort" | "LoadBalancer" => {}
        "ExternalName" => err(
            "spec.type",
            "type ExternalName is not supported: minipod serves no DNS aliases for outside \
             names; have the pods use the external name itself, or a ClusterIP Service with \
             a selector"
                .into(),
        ),
        other => err(
            "spec.type",
            format!(
                "Unsupported value: {other:?}: supported values: \"ClusterIP\", \"NodePort\", \
                 \"LoadBalancer\", \"ExternalName\""
            ),
        ),
    }

    // clusterIP and clusterIPs[0] must agree.
    let ips: Vec<&str> = spec["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let given = spec["clusterIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or(ips.first().copied());
    if let (Some(ip), Some(first)) = (spec["clusterIP"].as_str(), ips.first())
        && !ip.is_empty()
        && ip != *first
    {
        err(
            "spec.clusterIPs[0]",
            format!("Invalid value: {first:?}: must match `clusterIP` ({ip:?})"),
        );
    }
    if ips.len() > 1 {
        err(
            "spec.clusterIPs",
            "Invalid value: only one address: minipod's Services are IPv4 only".into(),
        );
    }
    let cluster_ip = match given {
        None => ClusterIp::Allocate,
        Some("None") => ClusterIp::Headless,
        Some(ip) => match ip.parse::<Ipv4Addr>() {
            Ok(a) => ClusterIp::Fixed(a),
            Err(_) => {
                let path = if spec["clusterIP"].as_str().is_some_and(|s| !s.is_empty()) {
                    "spec.clusterIP"
                } else {
                    "spec.clusterIPs[0]"
                };
                err(
                    path,
                    format!(
                        "Invalid value: {ip:?}: must be a valid IPv4 address in the service \
                         range, \"None\", or empty to have one allocated"
                    ),
                );
                ClusterIp::Allocate
            }
        },
    };
    if cluster_ip == ClusterIp::Headless && kind != "ClusterIP" && kind != "ExternalName" {
        err(
            "spec.clusterIP",
            format!("Invalid value: \"None\": may not be set to 'None' for {kind} services"),
        );
    }
    if let Some(ips) = spec["externalIPs"].as_array()
        && !ips.is_empty()
    {
        err(
            "spec.externalIPs",
            "not supported: minipod captures no traffic to outside addresses; reach the \
             Service at its cluster IP"
                .into(),
        );
    }
    if spec["externalName"].as_str().is_some_and(|s| !s.is_empty()) && kind != "ExternalName" {
        err(
            "spec.externalName",
            format!("Invalid value: may not be set for type {kind}"),
        );
    }

    let empty = Vec::new();
    let port_docs = spec["ports"].as_array().unwrap_or(&empty);
    if port_docs.is_empty() && cluster_ip != ClusterIp::Headless {
        err(
            "spec.ports",
            "Required value: give at least one port (port, and targetPort when the pods \
             listen on another)"
                .into(),
        );
    }
    let mut ports = Vec::new();
    let mut seen_names: Vec<&str> = Vec::new();
    let mut seen_ports: Vec<(u16, String)> = Vec::new();
    let mut seen_node_ports: Vec<(u16, String)> = Vec::new();
    for (i, p) in port_docs.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        let name = p["name"].as_str().filter(|s| !s.is_empty());
        match name {
            None if port_docs.len() > 1 => err(
                &at("name"),
                "Required value: each port needs a name when there are several".into(),
            ),
            None => {}
            Some(n) => {
                if let Some(why) = names::dns1123_label(n) {
                    err(&at("name"), names::invalid(n, &why));
                } else if seen_names.contains(&n) {
                    err(&at("name"), format!("Duplicate value: {n:?}"));
                }
                seen_names.push(n);
            }
        }
        let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
        match protocol.as_str() {
            "TCP" | "UDP" => {}
            "SCTP" => err(
                &at("protocol"),
                "SCTP is not supported: minipod forwards TCP and UDP".into(),
            ),
            other => err(
                &at("protocol"),
                format!("Unsupported value: {other:?}: supported values: \"TCP\", \"UDP\""),
            ),
        }
        let port = match p["port"].as_i64() {
            Some(n @ 1..=65535) => n as u16,
            Some(n) => {
                err(
                    &at("port"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                );
                0
            }
            None => {
                err(&at("port"), "Required value".into());
                0
            }
        };
        if port != 0 {
            if seen_ports.contains(&(port, protocol.clone())) {
                err(
                    &at("port"),
                    format!("Duplicate value: {port}/{protocol}: each port once per protocol"),
                );
            }
            seen_ports.push((port, protocol.clone()));
        }
        let target_port = match &p["targetPort"] {
            Value::Null => TargetPortPlan::Number(port),
            Value::Number(n) => match n.as_i64() {
                Some(0) => TargetPortPlan::Number(port),
                Some(t @ 1..=65535) => TargetPortPlan::Number(t as u16),
                _ => {
                    err(
                        &at("targetPort"),
                        format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                    );
                    TargetPortPlan::Number(port)
                }
            },
            Value::String(s) => {
                if let Some(why) = names::iana_svc_name(s) {
                    err(&at("targetPort"), names::invalid(s, &why));
                }
                TargetPortPlan::Name(s.clone())
            }
            other => {
                err(
                    &at("targetPort"),
                    format!("Invalid value: {other}: a port number or a port name"),
                );
                TargetPortPlan::Number(port)
            }
        };
        let node_port = match p["nodePort"].as_i64() {
            None | Some(0) => None,
            Some(_) if kind == "ClusterIP" => {
                err(
                    &at("nodePort"),
                    "Forbidden: may not be used when `type` is 'ClusterIP'".into(),
                );
                None
            }
            Some(n @ 30000..=32767) => {
                let n = n as u16;
                if seen_node_ports.contains(&(n, protocol.clone())) {
                    err(&at("nodePort"), format!("Duplicate value: {n}"));
                }
                seen_node_ports.push((n, protocol.clone()));
                Some(n)
            }
            Some(n) => {
                err(
                    &at("nodePort"),
                    format!(
                        "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                    ),
                );
                None
            }
        };
        ports.push(ServicePortPlan {
            name: name.map(str::to_string),
            protocol,
            port,
            target_port,
            node_port,
        });
    }

    let mut selector = BTreeMap::new();
    if let Some(map) = spec["selector"].as_object() {
        for (k, v) in map {
            let path = format!("spec.selector.{k}");
            if let Some(why) = names::qualified_name(k) {
                err(&path, names::invalid(k, &why));
            }
            let v = v.as_str().unwrap_or_default();
            if let Some(why) = names::label_value(v) {
                err(&path, names::invalid(v, &why));
            }
            selector.insert(k.clone(), v.to_string());
        }
    }

    let allocate_lb_node_ports = &spec["allocateLoadBalancerNodePorts"];
    match allocate_lb_node_ports {
        Value::Null | Value::Bool(_) if kind == "LoadBalancer" => {}
        Value::Null => {}
        Value::Bool(_) => err(
            "spec.allocateLoadBalancerNodePorts",
            "Forbidden: may only be used when `type` is 'LoadBalancer'".into(),
        ),
        other => err(
            "spec.allocateLoadBalancerNodePorts",
            format!("Invalid value: {other}: true or false"),
        ),
    }
    let allocate_node_ports = match kind.as_str() {
        "NodePort" => true,
        "LoadBalancer" => allocate_lb_node_ports.as_bool().unwrap_or(true),
        _ => false,
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ServicePlan {
        allocate_node_ports,
        name: name.to_string(),
        namespace: namespace.to_string(),
        kind,
        cluster_ip,
        ports,
        selector,
        publish_not_ready: spec["publishNotReadyAddresses"].as_bool().unwrap_or(false),
        source: source.to_string(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(spec: Value) -> Result<ServicePlan, Vec<(String, String)>> {
        service_plan(&json!({ "spec": spec }), "web", "default", "f.yaml", 1)
    }

    fn paths(r: Result<ServicePlan, Vec<(String, String)>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn a_plain_cluster_ip_service_gets_defaults() {
        let p = plan(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]})).unwrap();
        assert_eq!(p.kind, "ClusterIP");
        assert_eq!(p.cluster_ip, ClusterIp::Allocate);
        assert_eq!(p.ports[0].protocol, "TCP");
        assert_eq!(p.ports[0].target_port, TargetPortPlan::Number(80));
        assert_eq!(p.selector["app"], "web");
    }

    #[test]
    fn target_ports_by_number_and_name_and_headless_without_ports() {
        let p = plan(json!({"ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]}))
        .unwrap();
        assert_eq!(p.ports[0].target_port, TargetPortPlan::Name("web".into()));
        assert_eq!(p.ports[1].target_port, TargetPortPlan::Number(5353));
        let h = plan(json!({"clusterIP": "None"})).unwrap();
        assert_eq!(h.cluster_ip, ClusterIp::Headless);
        let f = plan(json!({"clusterIP": "10.89.0.20", "ports": [{"port": 1}]})).unwrap();
        assert_eq!(
            f.cluster_ip,
            ClusterIp::Fixed("10.89.0.20".parse().unwrap())
        );
    }

    #[test]
    fn the_api_servers_port_rules() {
        assert_eq!(
            paths(plan(json!({"ports": [{"port": 80}, {"port": 81}]}))),
            ["spec.ports[0].name", "spec.ports[1].name"]
        );
        assert_eq!(
            paths(plan(json!({"ports": [
                {"name": "a", "port": 80}, {"name": "a", "port": 70000}]}))),
            ["spec.ports[1].name", "spec.ports[1].port"]
        );
        assert_eq!(
            paths(plan(json!({"ports": [{"port": 80, "protocol": "SCTP"}]}))),
            ["spec.ports[0].protocol"]
        );
        assert_eq!(
            paths(plan(
                json!({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]})
            )),
            ["spec.ports[0].targetPort"]
        );
        assert_eq!(
            paths(plan(json!({"ports": [{"port": 80, "nodePort": 30080}]}))),
            ["spec.ports[0].nodePort"]
        );
        assert_eq!(paths(plan(json!({}))), ["spec.ports"]);
        assert_eq!(
            paths(plan(json!({"ports": [
                {"name": "a", "port": 80}, {"name": "b", "port": 80}]}))),
            ["spec.ports[1].port"]
        );
    }

    #[test]
    fn types_minipod_cannot_honour_are_refused_with_advice() {
        let e = plan(json!({"type": "ExternalName", "externalName": "example.com"})).unwrap_err();
        assert_eq!(e[0].0, "spec.type");
        assert!(e[0].1.contains("ExternalName is not supported"), "{e:?}");
        assert_eq!(
            paths(plan(
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})
            )),
            ["spec.ports[0].nodePort"]
        );
        assert_eq!(
            paths(plan(
                json!({"allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]})
            )),
            ["spec.allocateLoadBalancerNodePorts"]
        );
        assert_eq!(
            paths(plan(
                json!({"clusterIP": "10.1.2.x", "ports": [{"port": 1}]})
            )),
            ["spec.clusterIP"]
        );
        assert_eq!(
            paths(plan(
                json!({"externalIPs": ["1.2.3.4"], "ports": [{"port": 1}]})
            )),
            ["spec.externalIPs"]
        );
    }

    #[test]
    fn node_ports_are_allocated_for_node_port_and_load_balancer_services() {
        let p =
            plan(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]})).unwrap();
        assert!(p.allocate_node_ports);
        assert_eq!(p.ports[0].node_port, Some(30001));
        assert!(
            plan(json!({"type": "LoadBalancer", "ports": [{"port": 8080}]}))
                .unwrap()
                .allocate_node_ports
        );
        assert!(
            !plan(
                json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                "ports": [{"port": 8080}]})
            )
            .unwrap()
            .allocate_node_ports
        );
        assert!(
            !plan(json!({"ports": [{"port": 80}]}))
                .unwrap()
                .allocate_node_ports
        );
        assert_eq!(
            paths(plan(
                json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]})
            )),
            ["spec.clusterIP"]
        );
    }

    #[test]
    fn names_are_dns_1035_labels_and_selectors_labels() {
        let doc = json!({"spec": {"ports": [{"port": 1}]}});
        assert!(service_plan(&doc, "1web", "default", "f", 1).is_err());
        assert!(service_plan(&doc, "web-1", "default", "f", 1).is_ok());
        assert_eq!(
            paths(plan(
                json!({"selector": {"app": "-x"}, "ports": [{"port": 1}]})
            )),
            ["spec.selector.app"]
        );
    }
}
