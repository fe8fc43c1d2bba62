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

/// `generate kube POD [-f FILE]`.
pub fn kube(roots: &Roots, name: &str, filename: Option<&Path>) -> Result<ExitCode> {
    let (paths, st) = state::find_pod(roots, name)?;
    let pod = generated_pod(super::pod::pod_as_run(&paths, &st));
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
}
