//! `minipod generate kube POD`: the Pod YAML of a pod as it runs (podman's
//! `kube generate`), which `minipod run` runs again as the same pod.
//!
//! The spec is `inspect`'s (`pod::pod_as_run`: the manifest after
//! `run --name` and workload expansion, with the hostPorts bound), without
//! status and what the system writes (uid, creationTimestamp: a re-run would
//! differ), with Kubernetes' defaults filled in (`spec::defaults`).
//! ConfigMap and Secret references stay references. Fields minipod only
//! warns of (scheduling, serviceAccountName, ...) are kept, as podman keeps
//! them: they are part of the pod as given, and a re-run warns of them again.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::net::portfwd::Published;
use crate::paths::Roots;
use crate::runtime::state;
use crate::spec::defaults::fill_pod_defaults;

/// Written by the system, never read back: a re-run would make them anew.
const SYSTEM_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The Pod document `generate kube` prints for a pod as it runs (pure).
pub fn generated_pod(mut pod: Value) -> Value {
    if let Some(map) = pod.as_object_mut() {
        map.remove("status");
        map.remove("events");
    }
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SYSTEM_METADATA {
            meta.remove(*key);
        }
    }
    fill_pod_defaults(&mut pod);
    pod
}

/// Adds the bound ports no port of the spec shows (a `--publish` of an
/// undeclared port, or a second host address for one) to the first
/// container's ports, where a re-run publishes them again: the containers
/// share the pod's network, so any container's hostPort is the pod's.
pub fn list_every_bound_port(pod: &mut Value, bound: &[Published]) {
    let shown = |pod: &Value, b: &Published| {
        ["initContainers", "containers"]
            .iter()
            .filter_map(|list| pod["spec"][list].as_array())
            .flatten()
            .filter_map(|c| c["ports"].as_array())
            .flatten()
            .any(|p| {
                p["containerPort"].as_u64() == Some(u64::from(b.container_port))
                    && p["hostPort"].as_u64() == Some(u64::from(b.host_port))
                    && p["protocol"].as_str().unwrap_or("TCP") == b.protocol.name()
            })
    };
    for b in bound {
        if shown(pod, b) {
            continue;
        }
        let Some(first) = pod
            .pointer_mut("/spec/containers/0")
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        let mut port = serde_json::json!({
            "containerPort": b.container_port,
            "hostPort": b.host_port,
            "protocol": b.protocol.name(),
        });
        if !b.host_ip.is_unspecified() {
            port["hostIP"] = serde_json::json!(b.host_ip.to_string());
        }
        let ports = first
            .entry("ports")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = ports.as_array_mut() {
            list.push(port);
        }
    }
}

/// `generate kube POD [-f FILE]`.
pub fn kube(roots: &Roots, name: &str, filename: Option<&Path>) -> Result<ExitCode> {
    let (paths, st) = state::find_pod(roots, name)?;
    let mut pod = super::pod::pod_as_run(&paths, &st);
    list_every_bound_port(&mut pod, &st.ports);
    let pod = generated_pod(pod);
    let yaml = serde_yaml_ng::to_string(&pod)?;
    match filename {
        Some(file) => crate::sys::fs::atomic_write(file, yaml.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?,
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_and_system_fields_go_defaults_come() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u",
                         "creationTimestamp": "t", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                     "envFrom": [{"secretRef": {"name": "s"}}]}],
                     "nodeSelector": {"disk": "ssd"}},
            "status": {"phase": "Running"},
            "events": [],
        });
        let out = generated_pod(pod);
        assert_eq!(
            out["metadata"],
            json!({"name": "p", "namespace": "default", "labels": {"app": "a"}})
        );
        assert!(out.get("status").is_none() && out.get("events").is_none());
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "s"}}]));
        assert_eq!(out["spec"]["nodeSelector"], json!({"disk": "ssd"}));
        assert_eq!(out["spec"]["restartPolicy"], "Always");
        assert_eq!(generated_pod(out.clone()), out);
    }

    #[test]
    fn ports_published_beyond_the_spec_are_listed_and_read_back() {
        use crate::net::portfwd::Protocol;
        let bound = |ip: &str, host_port, container_port| Published {
            host_ip: ip.parse().unwrap(),
            host_port,
            container_port,
            protocol: Protocol::Tcp,
        };
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "image": "busybox:1.36",
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "image": "busybox:1.36"},
            ]},
        });
        let ports = [
            bound("0.0.0.0", 8080, 80),
            bound("127.0.0.1", 9090, 80),
            bound("0.0.0.0", 9091, 81),
        ];
        list_every_bound_port(&mut pod, &ports);
        assert_eq!(
            pod["spec"]["containers"][0]["ports"],
            json!([
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 80, "hostPort": 9090, "hostIP": "127.0.0.1", "protocol": "TCP"},
                {"containerPort": 81, "hostPort": 9091, "protocol": "TCP"},
            ])
        );
        let once = pod.clone();
        list_every_bound_port(&mut pod, &ports);
        assert_eq!(pod, once);
        let yaml = serde_yaml_ng::to_string(&generated_pod(pod)).unwrap();
        let plan = crate::spec::plan_from_yaml(&yaml, "p.yaml").unwrap();
        assert_eq!(plan.containers.len(), 2);
    }
}
