//! Which names the server answers itself, and with what: Kubernetes' DNS
//! schema for Services (the subset minipod needs), from the Service table.
//! Pure.

use std::net::Ipv4Addr;

use super::wire::Srv;
use crate::net::service_table::{Endpoint, ServiceEntry, ServiceTable};

/// The answer to a name, whatever the record type asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// One of ours: these IPv4 addresses (none: the name exists without
    /// an A record, or the type asked is not A).
    Ours(Vec<Ipv4Addr>),
    /// One of ours with SRV records (a Service's named port), no address.
    Ports(Vec<Srv>),
    /// Under the cluster domain, but no such name.
    NoSuchName,
    /// Not ours: ask the host's resolvers.
    Forward,
}

/// `name` (any case, with or without the root's dot) against the table:
///
/// - `SERVICE.NAMESPACE.svc.DOMAIN`: the Service's cluster IP, or for a
///   headless Service the addresses of its serving endpoints;
/// - `HOSTNAME.SERVICE.NAMESPACE.svc.DOMAIN`: the serving endpoint of the
///   headless Service SERVICE whose pod has that `hostname` and SERVICE
///   as its `subdomain` (a StatefulSet's pods);
/// - `HOSTNAME` is also a headless Service's endpoint without a hostname,
///   by its address with dashes (`10-88-0-5`, as CoreDNS names it);
/// - `_PORTNAME._PROTOCOL.SERVICE.NAMESPACE.svc.DOMAIN`: SRV records of a
///   named port: the Service's name and port, or for a headless Service
///   each serving endpoint's name and target port;
/// - `DOMAIN`, `svc.DOMAIN` and `NAMESPACE.svc.DOMAIN` of a namespace with
///   a Service exist, without addresses;
/// - any other name under DOMAIN does not exist; names elsewhere are
///   forwarded.
pub fn decide(table: &ServiceTable, domain: &str, name: &str) -> Decision {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let inside = if name == domain {
        ""
    } else {
        match name.strip_suffix(&domain).and_then(|n| n.strip_suffix('.')) {
            Some(inside) => inside,
            None => return Decision::Forward,
        }
    };
    let labels: Vec<&str> = match inside {
        "" => Vec::new(),
        s => s.split('.').collect(),
    };
    let ipv4 = |s: &str| s.parse::<Ipv4Addr>().ok();
    match labels.as_slice() {
        [] | ["svc"] => Decision::Ours(Vec::new()),
        [namespace, "svc"] if table.in_namespace(namespace).next().is_some() => {
            Decision::Ours(Vec::new())
        }
        [service, namespace, "svc"] => {
            let Some(s) = table.in_namespace(namespace).find(|s| s.name == *service) else {
                return Decision::NoSuchName;
            };
            let mut addresses: Vec<Ipv4Addr> = match &s.cluster_ip {
                Some(ip) => ipv4(ip).into_iter().collect(),
                None => s.serving().filter_map(|e| ipv4(&e.ip)).collect(),
            };
            addresses.dedup();
            Decision::Ours(addresses)
        }
        [hostname, service, namespace, "svc"] => {
            let addresses: Vec<Ipv4Addr> = table
                .in_namespace(namespace)
                .filter(|s| s.name == *service && s.cluster_ip.is_none())
                .flat_map(|s| s.serving())
                .filter(|e| endpoint_name(e, service) == *hostname)
                .filter_map(|e| ipv4(&e.ip))
                .collect();
            match addresses.is_empty() {
                true => Decision::NoSuchName,
                false => Decision::Ours(addresses),
            }
        }
        [port, protocol, service, namespace, "svc"]
            if port.starts_with('_') && protocol.starts_with('_') =>
        {
            let found = table
                .in_namespace(namespace)
                .find(|s| s.name == *service)
                .and_then(|s| srv_records(s, &port[1..], &protocol[1..], &domain));
            match found {
                Some(records) => Decision::Ports(records),
                None => Decision::NoSuchName,
            }
        }
        _ => Decision::NoSuchName,
    }
}

/// An endpoint's name under its headless Service: its pod's hostname when
/// the pod's subdomain is that Service, else its address with dashes.
fn endpoint_name(e: &Endpoint, service: &str) -> String {
    match (&e.hostname, &e.subdomain) {
        (Some(hostname), Some(subdomain)) if subdomain == service => hostname.clone(),
        _ => e.ip.replace(['.', ':'], "-"),
    }
}

/// The SRV records of a Service's port named `port` with `protocol`
/// (any case), or `None` when it has no such port.
fn srv_records(s: &ServiceEntry, port: &str, protocol: &str, domain: &str) -> Option<Vec<Srv>> {
    let index = s.ports.iter().position(|p| {
        p.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(port))
            && p.protocol.eq_ignore_ascii_case(protocol)
    })?;
    let fqdn = format!("{}.{}.svc.{domain}", s.name, s.namespace);
    if s.cluster_ip.is_some() {
        return Some(vec![Srv {
            priority: 0,
            weight: 100,
            port: s.ports[index].port,
            target: fqdn,
        }]);
    }
    let serving: Vec<&Endpoint> = s
        .serving()
        .filter(|e| e.target_ports.get(index).copied().flatten().is_some())
        .collect();
    let weight = (100 / serving.len().max(1)) as u16;
    Some(
        serving
            .iter()
            .filter_map(|e| {
                Some(Srv {
                    priority: 0,
                    weight,
                    port: e.target_ports.get(index).copied().flatten()?,
                    target: format!("{}.{fqdn}", endpoint_name(e, &s.name)),
                })
            })
            .collect(),
    )
}

/// A cluster domain as `MINIPOD_CLUSTER_DOMAIN` may give it: a DNS
/// subdomain (lower-case labels of letters, digits and `-`, not starting or
/// ending with `-`), at most 253 characters; a trailing dot is dropped.
pub fn check_domain(text: &str) -> Result<String, String> {
    let domain = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(format!(
            "{text:?} is not a DNS domain: give lower-case labels of letters, digits and '-' \
             joined by dots, such as cluster.local"
        ));
    }
    Ok(domain.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::service_table::{Endpoint, ServiceEntry, ServicePort, TargetPort};

    fn endpoint(ip: &str, pod: &str, hostname: Option<&str>, ready: bool) -> Endpoint {
        Endpoint {
            ip: ip.into(),
            pod: pod.into(),
            hostname: hostname.map(str::to_string),
            subdomain: hostname.map(|_| "db".to_string()),
            ready,
            target_ports: vec![Some(5432)],
        }
    }

    fn service(namespace: &str, name: &str, ip: Option<&str>, eps: Vec<Endpoint>) -> ServiceEntry {
        ServiceEntry {
            namespace: namespace.into(),
            name: name.into(),
            kind: "ClusterIP".into(),
            cluster_ip: ip.map(str::to_string),
            ports: vec![ServicePort {
                name: Some("http".into()),
                protocol: "TCP".into(),
                port: 80,
                target_port: TargetPort::Number(8080),
                node_port: None,
            }],
            selector: Default::default(),
            endpoints: eps,
            publish_not_ready: false,
            allocate_node_ports: false,
            source: None,
        }
    }

    fn table() -> ServiceTable {
        ServiceTable {
            services: vec![
                service(
                    "default",
                    "db",
                    None,
                    vec![
                        endpoint("10.88.0.7", "db-0", Some("db-0"), true),
                        endpoint("10.88.0.8", "db-1", Some("db-1"), true),
                        endpoint("10.88.0.9", "db-2", Some("db-2"), false),
                    ],
                ),
                service(
                    "default",
                    "web",
                    Some("10.89.0.10"),
                    vec![endpoint("10.88.0.5", "web-1", None, true)],
                ),
                service("shop", "web", Some("10.89.0.20"), Vec::new()),
            ],
        }
    }

    fn ips(list: &[&str]) -> Decision {
        Decision::Ours(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    #[test]
    fn a_service_answers_with_its_cluster_ip_in_its_namespace() {
        let t = table();
        let d = |n| decide(&t, "cluster.local", n);
        assert_eq!(d("web.default.svc.cluster.local"), ips(&["10.89.0.10"]));
        assert_eq!(d("WEB.Default.svc.cluster.local."), ips(&["10.89.0.10"]));
        assert_eq!(d("web.shop.svc.cluster.local"), ips(&["10.89.0.20"]));
        assert_eq!(d("web.other.svc.cluster.local"), Decision::NoSuchName);
        assert_eq!(d("x.default.svc.cluster.local"), Decision::NoSuchName);
    }

    #[test]
    fn a_headless_service_answers_with_its_serving_pods_and_their_hostnames() {
        let t = table();
        let d = |n| decide(&t, "cluster.local", n);
        assert_eq!(
            d("db.default.svc.cluster.local"),
            ips(&["10.88.0.7", "10.88.0.8"])
        );
        assert_eq!(d("db-1.db.default.svc.cluster.local"), ips(&["10.88.0.8"]));
        // Not ready: not served.
        assert_eq!(d("db-2.db.default.svc.cluster.local"), Decision::NoSuchName);
        // A hostname only under a headless Service with its subdomain.
        assert_eq!(
            d("web-1.web.default.svc.cluster.local"),
            Decision::NoSuchName
        );
        let mut not_ready = table();
        not_ready.services[0].publish_not_ready = true;
        assert_eq!(
            decide(
                &not_ready,
                "cluster.local",
                "db-2.db.default.svc.cluster.local"
            ),
            ips(&["10.88.0.9"])
        );
    }

    #[test]
    fn the_domain_and_its_namespaces_exist_and_nothing_else_under_it() {
        let t = table();
        let d = |n| decide(&t, "cluster.local", n);
        assert_eq!(d("cluster.local"), Decision::Ours(Vec::new()));
        assert_eq!(d("svc.cluster.local"), Decision::Ours(Vec::new()));
        assert_eq!(d("default.svc.cluster.local"), Decision::Ours(Vec::new()));
        assert_eq!(d("empty.svc.cluster.local"), Decision::NoSuchName);
        assert_eq!(d("pod.cluster.local"), Decision::NoSuchName);
        // The search path's tries for `web.default.svc`.
        assert_eq!(
            d("web.default.svc.default.svc.cluster.local"),
            Decision::NoSuchName
        );
        assert_eq!(d("web.default.svc.svc.cluster.local"), Decision::NoSuchName);
        assert_eq!(d("deb.debian.org"), Decision::Forward);
        assert_eq!(d("notcluster.local"), Decision::Forward);
        assert_eq!(d("web"), Decision::Forward);
        assert_eq!(
            decide(&t, "example.test", "web.default.svc.example.test"),
            ips(&["10.89.0.10"])
        );
        assert_eq!(
            decide(&t, "example.test", "web.default.svc.cluster.local"),
            Decision::Forward
        );
    }

    #[test]
    fn a_cluster_domain_must_be_a_dns_subdomain() {
        assert_eq!(check_domain("cluster.local").unwrap(), "cluster.local");
        assert_eq!(check_domain("corp.example.").unwrap(), "corp.example");
        for bad in ["", ".", "Cluster.local", "a..b", "-a.b", "a_b.local"] {
            assert!(check_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_named_port_has_srv_records_and_an_endpoint_without_hostname_its_dashed_address() {
        let mut t = table();
        t.services[0]
            .endpoints
            .push(endpoint("10.88.0.11", "db-x", None, true));
        let d = |n| decide(&t, "cluster.local", n);
        let srv = |port, target: &str, weight| Srv {
            priority: 0,
            weight,
            port,
            target: target.into(),
        };
        assert_eq!(
            d("_http._tcp.web.default.svc.cluster.local"),
            Decision::Ports(vec![srv(80, "web.default.svc.cluster.local", 100)])
        );
        assert_eq!(
            d("_http._tcp.db.default.svc.cluster.local"),
            Decision::Ports(vec![
                srv(5432, "db-0.db.default.svc.cluster.local", 33),
                srv(5432, "db-1.db.default.svc.cluster.local", 33),
                srv(5432, "10-88-0-11.db.default.svc.cluster.local", 33),
            ])
        );
        assert_eq!(
            d("_http._udp.web.default.svc.cluster.local"),
            Decision::NoSuchName
        );
        assert_eq!(
            d("_x._tcp.web.default.svc.cluster.local"),
            Decision::NoSuchName
        );
        assert_eq!(
            d("10-88-0-11.db.default.svc.cluster.local"),
            ips(&["10.88.0.11"])
        );
    }
}
