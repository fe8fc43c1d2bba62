//! Kubernetes' defaults of a Pod, filled in as the API server's defaulting
//! (`SetDefaults_*` of core/v1) fills them, for `minipod generate kube`.
//!
//! Only defaults minipod reads back silently are written: `schedulerName`,
//! `enableServiceLinks`, `priority` and `securityContext: {}`-style empty
//! objects minipod does not need are left out, since a re-run would warn of
//! them (`support`), and a `resourceFieldRef`'s `divisor: "0"` is left out
//! since only `1`-style divisors are accepted. Pure: JSON in, JSON out.

use serde_json::{Value, json};

use super::plan::{PullPolicy, default_pull_policy};

/// The default `defaultMode` of configMap, secret, downwardAPI and
/// projected volumes (0644).
const DEFAULT_MODE: u32 = 0o644;

/// Sets `obj[key]` to `value` unless it is there already.
fn default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        map.entry(key).or_insert(value);
    }
}

/// Each element of `obj[key]` when it is an array.
fn each<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Fills in the defaults of a Pod (the whole document).
pub fn fill_pod_defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    for list in ["initContainers", "containers"] {
        for c in each(spec, list) {
            container_defaults(c);
        }
    }
    for v in each(spec, "volumes") {
        volume_defaults(v);
    }
}

fn container_defaults(c: &mut Value) {
    if let Some(image) = c.get("image").and_then(Value::as_str) {
        let policy = match default_pull_policy(image) {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        };
        default(c, "imagePullPolicy", json!(policy));
    }
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    for p in each(c, "ports") {
        default(p, "protocol", json!("TCP"));
    }
    for e in each(c, "env") {
        if let Some(f) = e.pointer_mut("/valueFrom/fieldRef") {
            default(f, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            http_get_defaults(p);
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(h) = c.pointer_mut(&format!("/lifecycle/{hook}")) {
            http_get_defaults(h);
        }
    }
}

/// `SetDefaults_HTTPGetAction`: path `/`, scheme HTTP.
fn http_get_defaults(handler: &mut Value) {
    if let Some(h) = handler.get_mut("httpGet").filter(|h| h.is_object()) {
        default(h, "path", json!("/"));
        default(h, "scheme", json!("HTTP"));
    }
}

fn volume_defaults(v: &mut Value) {
    for kind in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(source) = v.get_mut(kind).filter(|s| s.is_object()) {
            default(source, "defaultMode", json!(DEFAULT_MODE));
            downward_items_defaults(source);
            for s in each(source, "sources") {
                if let Some(d) = s.get_mut("downwardAPI") {
                    downward_items_defaults(d);
                }
            }
        }
    }
    if let Some(h) = v.get_mut("hostPath").filter(|h| h.is_object()) {
        default(h, "type", json!(""));
    }
}

/// A downwardAPI volume's `items[].fieldRef.apiVersion`: v1.
fn downward_items_defaults(source: &mut Value) {
    for item in each(source, "items") {
        if let Some(f) = item.get_mut("fieldRef") {
            default(f, "apiVersion", json!("v1"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_filled_as_the_api_server_does() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {
                "containers": [{
                    "name": "c", "image": "busybox",
                    "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "readinessProbe": {"httpGet": {"port": 80}, "periodSeconds": 2},
                    "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
                }],
                "initContainers": [{"name": "i", "image": "busybox:1.36", "imagePullPolicy": "Never"}],
                "volumes": [
                    {"name": "a", "configMap": {"name": "cm"}},
                    {"name": "b", "secret": {"secretName": "s", "defaultMode": 256}},
                    {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"name": "e", "emptyDir": {}},
                ],
            },
        });
        fill_pod_defaults(&mut pod);
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert!(spec.get("schedulerName").is_none(), "a re-run would warn");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["resources"], json!({}));
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["ports"][1]["protocol"], "UDP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        let probe = &c["readinessProbe"];
        assert_eq!(
            (
                &probe["periodSeconds"],
                &probe["timeoutSeconds"],
                &probe["successThreshold"],
                &probe["failureThreshold"]
            ),
            (&json!(2), &json!(1), &json!(1), &json!(3))
        );
        assert_eq!(
            probe["httpGet"],
            json!({"port": 80, "path": "/", "scheme": "HTTP"})
        );
        assert_eq!(
            c["lifecycle"],
            json!({"preStop": {"exec": {"command": ["true"]}}})
        );
        assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "Never");
        let volumes = &spec["volumes"];
        assert_eq!(volumes[0]["configMap"]["defaultMode"], 420);
        assert_eq!(volumes[1]["secret"]["defaultMode"], 256);
        assert_eq!(
            volumes[2]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(volumes[3], json!({"name": "e", "emptyDir": {}}));
        // Filling twice changes nothing: a generated pod generates itself.
        let once = pod.clone();
        fill_pod_defaults(&mut pod);
        assert_eq!(pod, once);
    }

    #[test]
    fn defaulted_pods_read_back_without_new_warnings_or_errors() {
        for (name, text) in [
            ("full.yaml", include_str!("testdata/full.yaml")),
            (
                "kubectl-run.yaml",
                include_str!("testdata/kubectl-run.yaml"),
            ),
        ] {
            let manifest = super::super::manifest_from_yaml(text, name).unwrap();
            for plan in manifest.pods() {
                let mut pod: Value = serde_json::from_str(&plan.manifest).unwrap();
                fill_pod_defaults(&mut pod);
                let yaml = serde_yaml_ng::to_string(&pod).unwrap();
                let again = super::super::manifest_from_yaml(&yaml, name)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}\n{yaml}"));
                let back = again.pods().next().unwrap();
                assert_eq!(back.warnings, plan.warnings, "{name}:\n{yaml}");
                assert_eq!(back.containers.len(), plan.containers.len());
            }
        }
    }
}
