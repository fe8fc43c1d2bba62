//! Storage in the YAML: PersistentVolumeClaim documents, a StatefulSet's
//! `volumeClaimTemplates`, and the `persistentVolumeClaim` and `image`
//! volume sources of a Pod. A claim is a named volume under the data root
//! (`crate::volume`); this module only decides which claims the input makes
//! and checks them as the API server does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Volume;
use serde_json::Value;

use super::names;
use super::plan::{MountPlan, PullPolicy, VolumeKind, VolumePlan, default_pull_policy};
use super::support::{FieldSupport, Support};
use super::validate::Ctx;

/// A volume the input asks for by a claim: a PersistentVolumeClaim
/// document, or a StatefulSet's template for one of its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    /// The claim's (and so the volume's) name.
    pub name: String,
    pub namespace: String,
    /// `PersistentVolumeClaim/data`, `StatefulSet/db (volumeClaimTemplates data)`.
    pub created_by: String,
    /// `spec.resources.requests.storage`, as written.
    pub requested_storage: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The file it was read from, as given.
    pub source: String,
    /// The line of its document (or of the template).
    pub line: usize,
}

const fn row(path: &'static str, support: Support, note: &'static str) -> FieldSupport {
    FieldSupport {
        path,
        support,
        note,
    }
}

use Support::*;

/// Why a claim's class and access modes change nothing here.
const ONE_MACHINE: &str = "a claim is a folder under minipod's data root, on this one machine";

/// A PersistentVolumeClaim document's own fields (metadata as a Pod's).
pub const CLAIM_FIELDS: &[FieldSupport] = &[
    row(
        "spec.resources.requests.storage",
        Yes,
        "required; recorded with the volume (`volume inspect`), not enforced: the volume is a folder",
    ),
    row("spec.resources.limits.storage", Warned(ONE_MACHINE), ""),
    row(
        "spec.accessModes",
        Warned(ONE_MACHINE),
        "required; every pod here may mount the volume",
    ),
    row("spec.storageClassName", Warned(ONE_MACHINE), ""),
    row(
        "spec.volumeMode",
        OnlyValue("\"Filesystem\""),
        "a folder, not a block device",
    ),
];

/// The access modes the API server knows.
const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// The API server's checks of a claim's spec (`ValidatePersistentVolumeClaimSpec`):
/// (path under `at`, message) for each problem.
pub fn check_claim_spec(spec: &Value, at: &str) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let modes = spec.get("accessModes").and_then(Value::as_array);
    match modes {
        None => errors.push((
            format!("{at}.accessModes"),
            "Required value: at least 1 access mode is required; e.g. accessModes: \
             [ReadWriteOnce]"
                .to_string(),
        )),
        Some(list) if list.is_empty() => errors.push((
            format!("{at}.accessModes"),
            "Required value: at least 1 access mode is required; e.g. accessModes: \
             [ReadWriteOnce]"
                .to_string(),
        )),
        Some(list) => {
            for (i, m) in list.iter().enumerate() {
                let m = m.as_str().unwrap_or_default();
                if !ACCESS_MODES.contains(&m) {
                    let mut allowed = ACCESS_MODES.to_vec();
                    allowed.sort_unstable();
                    let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
                    errors.push((
                        format!("{at}.accessModes[{i}]"),
                        format!(
                            "Unsupported value: {m:?}: supported values: {}",
                            quoted.join(", ")
                        ),
                    ));
                }
            }
            if list.iter().any(|m| m == "ReadWriteOncePod") && list.len() > 1 {
                errors.push((
                    format!("{at}.accessModes"),
                    "Forbidden: may not use ReadWriteOncePod with other access modes".to_string(),
                ));
            }
        }
    }
    match spec.pointer("/resources/requests/storage") {
        None => errors.push((
            format!("{at}.resources.requests.storage"),
            "Required value; give the size the claim asks for, e.g. storage: 1Gi".to_string(),
        )),
        Some(q) => {
            let text = q
                .as_str()
                .map_or_else(|| q.to_string(), ToString::to_string);
            match super::quantity::parse_quantity(&text).ok() {
                Some(0) => errors.push((
                    format!("{at}.resources.requests.storage"),
                    format!("Invalid value: \"{text}\": must be greater than zero"),
                )),
                Some(_) => {}
                None => errors.push((
                    format!("{at}.resources.requests.storage"),
                    format!("Invalid value: \"{text}\": not a valid quantity, e.g. 1Gi"),
                )),
            }
        }
    }
    errors
}

/// `spec.resources.requests.storage` as written.
pub fn requested_storage(spec: &Value) -> Option<String> {
    spec.pointer("/resources/requests/storage").map(|q| {
        q.as_str()
            .map_or_else(|| q.to_string(), ToString::to_string)
    })
}

/// The labels of a claim's metadata.
pub fn labels(meta: &Value) -> BTreeMap<String, String> {
    meta.get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A StatefulSet's `volumeClaimTemplates`: (template name, its JSON).
pub fn templates(doc: &Value) -> Vec<(String, Value)> {
    doc.pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let name = t
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (name, t.clone())
        })
        .collect()
}

/// The errors of a StatefulSet's templates: (path, message).
pub fn check_templates(doc: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut seen = Vec::new();
    for (i, (name, t)) in templates(doc).iter().enumerate() {
        let at = format!("spec.volumeClaimTemplates[{i}]");
        if name.is_empty() {
            errors.push((
                format!("{at}.metadata.name"),
                "Required value; give the template a name, the name volumeMounts use".into(),
            ));
        } else if let Some(why) = names::dns1123_label(name) {
            errors.push((format!("{at}.metadata.name"), names::invalid(name, &why)));
        } else if seen.contains(name) {
            errors.push((
                format!("{at}.metadata.name"),
                format!("Duplicate value: \"{name}\"; give each template its own name"),
            ));
        }
        seen.push(name.clone());
        let spec = t.get("spec").cloned().unwrap_or(Value::Null);
        errors.extend(check_claim_spec(&spec, &format!("{at}.spec")));
    }
    errors
}

/// The claim of template `template` for pod `pod`, as the StatefulSet
/// controller names it: `<template>-<pod>`.
pub fn template_claim_name(template: &str, pod: &str) -> String {
    format!("{template}-{pod}")
}

/// Gives a StatefulSet's pod (as JSON) a `persistentVolumeClaim` volume for
/// each template, named as the template, replacing a volume of that name as
/// the controller does.
pub fn add_template_volumes(pod_json: &mut Value, templates: &[(String, Value)], pod: &str) {
    if templates.is_empty() {
        return;
    }
    let spec = &mut pod_json["spec"];
    let mut volumes: Vec<Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (name, _) in templates {
        volumes.retain(|v| v.get("name").and_then(Value::as_str) != Some(name));
        volumes.push(serde_json::json!({
            "name": name,
            "persistentVolumeClaim": {"claimName": template_claim_name(name, pod)},
        }));
    }
    spec["volumes"] = Value::Array(volumes);
}

/// A `persistentVolumeClaim` or `image` volume's plan; None when the
/// volume is of another type. Errors go to `ctx`.
pub(super) fn storage_volume(v: &Volume, p: &str, ctx: &mut Ctx<'_>) -> Option<Option<VolumeKind>> {
    let others = [v.empty_dir.is_some(), v.host_path.is_some()];
    let kind = match (&v.persistent_volume_claim, &v.image) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            ctx.err(
                format!("{p}.image"),
                "Forbidden: may not specify more than 1 volume type; keep persistentVolumeClaim \
                 or image",
            );
            return Some(None);
        }
        _ if others.contains(&true) => {
            let which = if v.image.is_some() {
                "image"
            } else {
                "persistentVolumeClaim"
            };
            ctx.err(
                format!("{p}.{which}"),
                "Forbidden: may not specify more than 1 volume type; keep one",
            );
            return Some(None);
        }
        (Some(c), None) => {
            let path = format!("{p}.persistentVolumeClaim.claimName");
            if c.claim_name.is_empty() {
                ctx.required(path, "; name the claim (its volume)");
            } else {
                ctx.check(path, &c.claim_name, names::dns1123_subdomain(&c.claim_name));
            }
            VolumeKind::PersistentVolumeClaim {
                claim_name: c.claim_name.clone(),
                read_only: c.read_only.unwrap_or(false),
            }
        }
        (None, Some(i)) => {
            let reference = i.reference.clone().unwrap_or_default();
            if reference.trim().is_empty() {
                ctx.required(format!("{p}.image.reference"), "; name the image to mount");
            }
            let pull_policy = match i.pull_policy.as_deref() {
                None | Some("") => default_pull_policy(&reference),
                Some("Always") => PullPolicy::Always,
                Some("IfNotPresent") => PullPolicy::IfNotPresent,
                Some("Never") => PullPolicy::Never,
                Some(other) => {
                    ctx.one_of(
                        format!("{p}.image.pullPolicy"),
                        other,
                        &["Always", "IfNotPresent", "Never"],
                    );
                    PullPolicy::IfNotPresent
                }
            };
            VolumeKind::Image {
                reference,
                pull_policy,
            }
        }
    };
    Some(Some(kind))
}

/// The API server's rule for mounts of image volumes: always read-only.
/// `mounts` are a container's (`p` its path), `read_only_given` its
/// `readOnly` fields as written.
pub(super) fn check_image_mounts(
    volumes: &[VolumePlan],
    mounts: &[MountPlan],
    read_only_given: &[Option<bool>],
    p: &str,
    ctx: &mut Ctx<'_>,
) {
    for (i, m) in mounts.iter().enumerate() {
        let image = volumes
            .iter()
            .any(|v| v.name == m.volume && matches!(v.kind, VolumeKind::Image { .. }));
        if image && read_only_given.get(i).copied().flatten() == Some(false) {
            ctx.err(
                format!("{p}.volumeMounts[{i}].readOnly"),
                "Invalid value: false: an image volume is always mounted read-only; remove \
                 readOnly or set it to true",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_specs_are_checked_as_the_api_server_does() {
        let ok = serde_json::json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
        assert!(check_claim_spec(&ok, "spec").is_empty());
        let bad = serde_json::json!({"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "0"}}});
        let errs = check_claim_spec(&bad, "spec");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].0, "spec.accessModes[0]");
        assert!(
            errs[0]
                .1
                .starts_with("Unsupported value: \"ReadWriteSometimes\"")
        );
        assert!(errs[1].1.contains("must be greater than zero"));
        let none = check_claim_spec(&serde_json::json!({}), "spec");
        assert_eq!(none[0].0, "spec.accessModes");
        assert_eq!(none[1].0, "spec.resources.requests.storage");
    }

    #[test]
    fn templates_become_claim_volumes_named_as_kubernetes_names_them() {
        let doc = serde_json::json!({"spec": {"volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
        ]}});
        let t = templates(&doc);
        let mut pod = serde_json::json!({"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "x", "emptyDir": {}}]}});
        add_template_volumes(&mut pod, &t, "web-1");
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        assert_eq!(
            volumes[1],
            serde_json::json!({"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}})
        );
        assert!(check_templates(&doc).is_empty());
        let unnamed = serde_json::json!({"spec": {"volumeClaimTemplates": [{"spec": {}}]}});
        let errs = check_templates(&unnamed);
        assert_eq!(errs[0].0, "spec.volumeClaimTemplates[0].metadata.name");
    }

    fn errors_of(yaml: &str) -> Vec<String> {
        match crate::spec::manifest_from_yaml(yaml, "f.yaml") {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(String::from).collect(),
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n";

    #[test]
    fn a_claim_document_is_a_volume_and_warns_of_its_class() {
        let yaml = format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, labels: {{a: b}}}}\nspec:\n  storageClassName: fast\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\n{POD}    volumeMounts: [{{name: v, mountPath: /data}}]\n  volumes: [{{name: v, persistentVolumeClaim: {{claimName: data, readOnly: true}}}}]\n"
        );
        let m = crate::spec::manifest_from_yaml(&yaml, "f.yaml").unwrap();
        assert_eq!(m.claims.len(), 1);
        let c = &m.claims[0];
        assert_eq!(
            (c.name.as_str(), c.requested_storage.as_deref(), c.line),
            ("data", Some("1Gi"), 1)
        );
        assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("spec.storageClassName")),
            "{:?}",
            m.warnings
        );
        let pod = m.pods().next().unwrap();
        assert_eq!(
            pod.volumes[0].kind,
            VolumeKind::PersistentVolumeClaim {
                claim_name: "data".into(),
                read_only: true
            }
        );
    }

    #[test]
    fn claim_errors_have_paths_and_lines() {
        let yaml = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  selector: {matchLabels: {a: b}}\n  resources: {requests: {storage: lots}}\n";
        let errs = errors_of(yaml);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("f.yaml:4: spec.accessModes: Required value")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("f.yaml:5: spec.selector: not supported yet")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.resources.requests.storage: Invalid value: \"lots\"")),
            "{errs:?}"
        );
        let pvc =
            format!("{POD}  volumes: [{{name: v, persistentVolumeClaim: {{claimName: ''}}}}]\n");
        let errs = errors_of(&pvc);
        assert!(
            errs[0].contains("spec.volumes[0].persistentVolumeClaim.claimName: Required value"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_statefulsets_templates_give_each_pod_its_claim() {
        let yaml = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1.36\n        volumeMounts: [{name: data, mountPath: /data}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}\n";
        let m = crate::spec::manifest_from_yaml(yaml, "f.yaml").unwrap();
        let names: Vec<&str> = m.claims.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["data-db-0", "data-db-1"]);
        assert_eq!(
            m.claims[1].created_by,
            "StatefulSet/db (volumeClaimTemplates data)"
        );
        let claims: Vec<VolumeKind> = m.pods().map(|p| p.volumes[0].kind.clone()).collect();
        assert_eq!(
            claims[1],
            VolumeKind::PersistentVolumeClaim {
                claim_name: "data-db-1".into(),
                read_only: false
            }
        );
    }

    #[test]
    fn image_volumes_pull_as_containers_and_mount_read_only() {
        let ok = format!(
            "{POD}    volumeMounts: [{{name: v, mountPath: /m, subPath: etc}}]\n  volumes: [{{name: v, image: {{reference: 'tools:1'}}}}]\n"
        );
        let m = crate::spec::manifest_from_yaml(&ok, "f.yaml").unwrap();
        assert_eq!(
            m.pods().next().unwrap().volumes[0].kind,
            VolumeKind::Image {
                reference: "tools:1".into(),
                pull_policy: PullPolicy::IfNotPresent
            }
        );
        let rw = format!(
            "{POD}    volumeMounts: [{{name: v, mountPath: /m, readOnly: false}}]\n  volumes: [{{name: v, image: {{reference: tools, pullPolicy: Sometimes}}}}]\n"
        );
        let errs = errors_of(&rw);
        assert!(
            errs.iter().any(|e| e.starts_with(
                "f.yaml:8: spec.containers[0].volumeMounts[0].readOnly: Invalid value: false"
            )),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e
                .contains("spec.volumes[0].image.pullPolicy: Unsupported value: \"Sometimes\"")),
            "{errs:?}"
        );
    }
}
