//! Services: what `run` registers of its files' Service documents, what
//! `down FILE` removes, `service ls` and `inspect service/NAME`. The table
//! and its rules change only through `runtime::services::sync`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::net::service_table::{ServiceEntry, ServicePort, ServiceTable, TargetPort};
use crate::net::services::WantIp;
use crate::paths::Roots;
use crate::runtime::services::{self as sync, Change};
use crate::spec::Manifest;
use crate::spec::service::{ClusterIp, ServicePlan, TargetPortPlan};

/// A Service document as the table records it (no endpoints yet).
pub fn entry_of(plan: &ServicePlan, source: Option<String>) -> (ServiceEntry, WantIp) {
    let want = match plan.cluster_ip {
        ClusterIp::Allocate => WantIp::Allocate,
        ClusterIp::Headless => WantIp::Headless,
        ClusterIp::Fixed(ip) => WantIp::Fixed(ip),
    };
    let entry = ServiceEntry {
        namespace: plan.namespace.clone(),
        name: plan.name.clone(),
        kind: plan.kind.clone(),
        cluster_ip: None,
        ports: plan
            .ports
            .iter()
            .map(|p| ServicePort {
                name: p.name.clone(),
                protocol: p.protocol.clone(),
                port: p.port,
                target_port: match &p.target_port {
                    TargetPortPlan::Number(n) => TargetPort::Number(*n),
                    TargetPortPlan::Name(n) => TargetPort::Name(n.clone()),
                },
                node_port: p.node_port,
            })
            .collect(),
        selector: plan.selector.clone(),
        endpoints: Vec::new(),
        publish_not_ready: plan.publish_not_ready,
        allocate_node_ports: plan.allocate_node_ports,
        source,
    };
    (entry, want)
}

/// `run`: registers the input's Services (before its pods start, so they
/// find the table), and warns of a selector no pod matches, neither of
/// this input nor running. `sources`: each file as given → its absolute
/// path (none for stdin). Call inside the user namespace.
pub fn register(
    roots: &Roots,
    manifest: &Manifest,
    sources: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    if manifest.services.is_empty() {
        return Ok(());
    }
    let wanted = manifest
        .services
        .iter()
        .map(|s| entry_of(s, sources.get(&s.source).cloned().flatten()))
        .collect();
    let (table, _) = sync::sync(roots, Change::Register(wanted))?;
    for s in &manifest.services {
        let (entry, _) = entry_of(s, None);
        let ours = manifest.workloads.iter().any(|w| {
            w.pods.iter().any(|p| {
                crate::net::services::selects(
                    &entry,
                    &crate::net::services::PodFacts {
                        namespace: w.namespace.clone(),
                        labels: p.labels.clone(),
                        ..Default::default()
                    },
                )
            })
        });
        let running = table
            .services
            .iter()
            .any(|t| t.namespace == s.namespace && t.name == s.name && !t.endpoints.is_empty());
        if !ours && !running {
            tracing::warn!(
                "{}:{}: Service {} selects no pod (selector {}): it has no endpoints until a \
                 pod of namespace {} with those labels runs",
                s.source,
                s.line,
                s.name,
                selector_text(&s.selector),
                s.namespace
            );
        }
    }
    Ok(())
}

fn selector_text(selector: &BTreeMap<String, String>) -> String {
    if selector.is_empty() {
        return "empty".into();
    }
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `run --dry-run`: the Services that would be made or replaced.
pub fn dry_run(roots: &Roots, manifest: &Manifest) {
    let table = ServiceTable::load(&roots.run).unwrap_or_default();
    for s in &manifest.services {
        let (entry, _) = entry_of(s, None);
        let verb = if table
            .services
            .iter()
            .any(|t| t.namespace == s.namespace && t.name == s.name)
        {
            "would replace"
        } else {
            "would create"
        };
        println!(
            "{verb} Service {}/{} ({}, ports {}, selector {})",
            s.namespace,
            s.name,
            match s.cluster_ip {
                ClusterIp::Headless => "headless".to_string(),
                ClusterIp::Fixed(ip) => format!("clusterIP {ip}"),
                ClusterIp::Allocate => s.kind.clone(),
            },
            ports_text(&entry.ports),
            selector_text(&s.selector)
        );
    }
}

/// `down FILE`: removes the file's Services and their rules; the names.
/// Call inside the user namespace.
pub fn remove_from(roots: &Roots, source: &str) -> Result<Vec<String>> {
    if !ServiceTable::path(&roots.run).exists() {
        return Ok(Vec::new());
    }
    Ok(sync::sync(roots, Change::RemoveSource(source.to_string()))?.1)
}

/// `down -`: removes the Services the input names that were read from
/// stdin. Call inside the user namespace.
pub fn remove_named(roots: &Roots, text: &str) -> Result<Vec<String>> {
    let Ok(manifest) = crate::spec::manifest_from_yaml(text, "<stdin>") else {
        return Ok(Vec::new());
    };
    let names: Vec<(String, String)> = manifest
        .services
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    if names.is_empty() || !ServiceTable::path(&roots.run).exists() {
        return Ok(Vec::new());
    }
    Ok(sync::sync(roots, Change::RemoveNamed(names))?.1)
}

/// Whether any Service was read from `source`.
pub fn any_from(roots: &Roots, source: &str) -> bool {
    ServiceTable::load(&roots.run).is_ok_and(|t| {
        t.services
            .iter()
            .any(|s| s.source.as_deref() == Some(source))
    })
}

fn ports_text(ports: &[ServicePort]) -> String {
    if ports.is_empty() {
        return "<none>".into();
    }
    ports
        .iter()
        .map(|p| {
            let target = match &p.target_port {
                TargetPort::Number(n) if *n == p.port => String::new(),
                TargetPort::Number(n) => format!("→{n}"),
                TargetPort::Name(n) => format!("→{n}"),
            };
            format!("{}{target}/{}", p.port, p.protocol)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Where a Service is published on the host, as `minipod port` says it:
/// `0.0.0.0:30080->80/tcp`.
fn host_text(s: &ServiceEntry) -> String {
    let published: Vec<String> = crate::net::services::service_host_forwards(s)
        .iter()
        .map(|f| {
            format!(
                "0.0.0.0:{}->{}/{}",
                f.host_port,
                f.port,
                f.protocol.name().to_lowercase()
            )
        })
        .collect();
    if published.is_empty() {
        "<none>".into()
    } else {
        published.join(",")
    }
}

fn endpoints_text(s: &ServiceEntry) -> String {
    let serving: Vec<String> = s
        .serving()
        .map(|e| {
            match e
                .target_ports
                .first()
                .copied()
                .flatten()
                .filter(|_| s.cluster_ip.is_some())
            {
                Some(port) => format!("{}:{port}", e.ip),
                None => e.ip.clone(),
            }
        })
        .collect();
    if serving.is_empty() {
        "<none>".into()
    } else {
        serving.join(",")
    }
}

/// `service ls`.
pub fn ls(roots: &Roots, format: &str) -> Result<ExitCode> {
    let table = ServiceTable::load(&roots.run)?;
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&table.services)?),
        "table" => {
            println!(
                "{:<30} {:<12} {:<15} {:<24} {:<24} ENDPOINTS",
                "NAMESPACE/NAME", "TYPE", "CLUSTER-IP", "PORTS", "ON THE HOST"
            );
            for s in &table.services {
                println!(
                    "{:<30} {:<12} {:<15} {:<24} {:<24} {}",
                    format!("{}/{}", s.namespace, s.name),
                    s.kind,
                    s.cluster_ip.as_deref().unwrap_or("None"),
                    ports_text(&s.ports),
                    host_text(s),
                    endpoints_text(s)
                );
            }
        }
        other => bail!("--format {other:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect service/NAME` (NAME or NAMESPACE/NAME): the Service as the API
/// server shows it, with its endpoints as an `Endpoints` object would.
pub fn inspect(roots: &Roots, name: &str) -> Result<ExitCode> {
    let table = ServiceTable::load(&roots.run)?;
    let (namespace, name) = match name.split_once('/') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, name),
    };
    let found: Vec<&ServiceEntry> = table
        .services
        .iter()
        .filter(|s| s.name == name && namespace.is_none_or(|ns| s.namespace == ns))
        .collect();
    let s = match found.as_slice() {
        [] => bail!("no Service named {name:?}; `minipod service ls` lists them"),
        [one] => *one,
        _ => bail!(
            "Services named {name:?} are in several namespaces; give NAMESPACE/{name} \
             (`minipod service ls` lists them)"
        ),
    };
    println!("{}", serde_json::to_string_pretty(&service_json(s))?);
    Ok(ExitCode::SUCCESS)
}

fn service_json(s: &ServiceEntry) -> serde_json::Value {
    use serde_json::json;
    let ports: Vec<serde_json::Value> = s
        .ports
        .iter()
        .map(|p| {
            let mut v =
                json!({"protocol": p.protocol, "port": p.port, "targetPort": p.target_port});
            if let Some(n) = &p.name {
                v["name"] = json!(n);
            }
            if let Some(n) = p.node_port {
                v["nodePort"] = json!(n);
            }
            v
        })
        .collect();
    let address = |e: &crate::net::service_table::Endpoint| {
        let mut a = json!({"ip": e.ip, "targetRef": {"kind": "Pod", "name": e.pod, "namespace": s.namespace}});
        if let Some(h) = &e.hostname {
            a["hostname"] = json!(h);
        }
        a
    };
    let ready: Vec<_> = s.serving().map(address).collect();
    let not_ready: Vec<_> = s
        .endpoints
        .iter()
        .filter(|e| !(e.ready || s.publish_not_ready))
        .map(address)
        .collect();
    // One subset per set of resolved ports, as the endpoints controller
    // groups them; here: the ports as the first endpoint resolves them.
    let subset_ports: Vec<serde_json::Value> = s
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let port = s
                .endpoints
                .first()?
                .target_ports
                .get(i)
                .copied()
                .flatten()?;
            let mut v = json!({"port": port, "protocol": p.protocol});
            if let Some(n) = &p.name {
                v["name"] = json!(n);
            }
            Some(v)
        })
        .collect();
    let mut subset = json!({"ports": subset_ports});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": s.name, "namespace": s.namespace, "annotations": {
            "minipod.io/source": s.source}},
        "spec": {
            "type": s.kind,
            "clusterIP": s.cluster_ip.as_deref().unwrap_or("None"),
            "clusterIPs": [s.cluster_ip.as_deref().unwrap_or("None")],
            "ports": ports,
            "selector": s.selector,
            "publishNotReadyAddresses": s.publish_not_ready,
        },
        "status": if s.kind == "LoadBalancer" {
            // Published on every address of the host: a script reading
            // the ingress address (as with a cloud's) reaches it here.
            json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}})
        } else {
            json!({"loadBalancer": {}})
        },
        "endpoints": {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": s.name, "namespace": s.namespace},
            "subsets": if s.endpoints.is_empty() { json!([]) } else { json!([subset]) },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::service_table::Endpoint;

    #[test]
    fn inspect_is_kubernetes_shaped_with_its_endpoints() {
        let s = ServiceEntry {
            namespace: "default".into(),
            name: "web".into(),
            kind: "ClusterIP".into(),
            cluster_ip: Some("10.89.0.5".into()),
            ports: vec![ServicePort {
                name: Some("http".into()),
                protocol: "TCP".into(),
                port: 80,
                target_port: TargetPort::Name("web".into()),
                node_port: None,
            }],
            selector: [("app".to_string(), "web".to_string())].into(),
            endpoints: vec![
                Endpoint {
                    ip: "10.88.0.2".into(),
                    pod: "web-a".into(),
                    hostname: None,
                    subdomain: None,
                    ready: true,
                    target_ports: vec![Some(8080)],
                },
                Endpoint {
                    ip: "10.88.0.3".into(),
                    pod: "web-b".into(),
                    hostname: None,
                    subdomain: None,
                    ready: false,
                    target_ports: vec![Some(8080)],
                },
            ],
            publish_not_ready: false,
            allocate_node_ports: false,
            source: None,
        };
        let v = service_json(&s);
        assert_eq!(v["spec"]["ports"][0]["targetPort"], "web");
        assert_eq!(v["spec"]["clusterIP"], "10.89.0.5");
        let subset = &v["endpoints"]["subsets"][0];
        assert_eq!(subset["addresses"][0]["ip"], "10.88.0.2");
        assert_eq!(subset["notReadyAddresses"][0]["targetRef"]["name"], "web-b");
        assert_eq!(subset["ports"][0]["port"], 8080);
        assert_eq!(endpoints_text(&s), "10.88.0.2:8080");
        assert_eq!(ports_text(&s.ports), "80→web/TCP");
    }
}
