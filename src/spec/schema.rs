//! Which k8s-openapi type sits at a (normalized) path, to suggest field names
//! for unknown fields. Types not listed here just get no suggestion.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::yaml::fields_of;

const CONTAINER_PREFIXES: [&str; 3] = [
    "spec.containers[]",
    "spec.initContainers[]",
    "spec.ephemeralContainers[]",
];

/// The fields accepted by the object at `parent` (indices written `[]`) in a
/// document of `kind`.
pub fn known_fields(kind: &str, parent: &str) -> Option<&'static [&'static str]> {
    if parent == "metadata" {
        return Some(fields_of::<ObjectMeta>());
    }
    if let Some(wk) = super::workload::WorkloadKind::parse(kind) {
        return workload_fields(wk, parent);
    }
    match kind {
        "ConfigMap" if parent.is_empty() => return Some(fields_of::<core::ConfigMap>()),
        "Secret" if parent.is_empty() => return Some(fields_of::<core::Secret>()),
        "Service" => {
            return Some(match parent {
                "" => fields_of::<core::Service>(),
                "spec" => fields_of::<core::ServiceSpec>(),
                "spec.ports[]" => fields_of::<core::ServicePort>(),
                _ => return None,
            });
        }
        "PersistentVolumeClaim" => {
            return Some(match parent {
                "" => fields_of::<core::PersistentVolumeClaim>(),
                "spec" => fields_of::<core::PersistentVolumeClaimSpec>(),
                "spec.resources" => fields_of::<core::VolumeResourceRequirements>(),
                _ => return None,
            });
        }
        "Pod" => {}
        _ => return None,
    }
    if let Some(rest) = CONTAINER_PREFIXES
        .iter()
        .find_map(|p| parent.strip_prefix(p))
    {
        return Some(match rest {
            "" => fields_of::<core::Container>(),
            ".ports[]" => fields_of::<core::ContainerPort>(),
            ".env[]" => fields_of::<core::EnvVar>(),
            ".env[].valueFrom" => fields_of::<core::EnvVarSource>(),
            ".envFrom[]" => fields_of::<core::EnvFromSource>(),
            ".volumeMounts[]" => fields_of::<core::VolumeMount>(),
            ".securityContext" => fields_of::<core::SecurityContext>(),
            ".resources" => fields_of::<core::ResourceRequirements>(),
            ".livenessProbe" | ".readinessProbe" | ".startupProbe" => fields_of::<core::Probe>(),
            ".lifecycle" => fields_of::<core::Lifecycle>(),
            _ => return None,
        });
    }
    Some(match parent {
        "" => fields_of::<core::Pod>(),
        "spec" => fields_of::<core::PodSpec>(),
        "spec.securityContext" => fields_of::<core::PodSecurityContext>(),
        "spec.volumes[]" => fields_of::<core::Volume>(),
        "spec.volumes[].emptyDir" => fields_of::<core::EmptyDirVolumeSource>(),
        "spec.volumes[].hostPath" => fields_of::<core::HostPathVolumeSource>(),
        "spec.volumes[].configMap" => fields_of::<core::ConfigMapVolumeSource>(),
        "spec.volumes[].secret" => fields_of::<core::SecretVolumeSource>(),
        "spec.volumes[].persistentVolumeClaim" => {
            fields_of::<core::PersistentVolumeClaimVolumeSource>()
        }
        "spec.volumes[].image" => fields_of::<core::ImageVolumeSource>(),
        "spec.dnsConfig" => fields_of::<core::PodDNSConfig>(),
        "spec.dnsConfig.options[]" => fields_of::<core::PodDNSConfigOption>(),
        "spec.hostAliases[]" => fields_of::<core::HostAlias>(),
        "spec.tolerations[]" => fields_of::<core::Toleration>(),
        _ => return None,
    })
}

/// A workload's fields: its pod template's are a Pod's.
fn workload_fields(
    kind: super::workload::WorkloadKind,
    parent: &str,
) -> Option<&'static [&'static str]> {
    use super::workload::WorkloadKind::*;
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch};
    let template = kind.template_path().trim_end_matches('.');
    if parent == template {
        return Some(fields_of::<core::PodTemplateSpec>());
    }
    if let Some(rest) = parent.strip_prefix(kind.template_path()) {
        return known_fields("Pod", rest);
    }
    Some(match (kind, parent) {
        (Deployment, "") => fields_of::<apps::Deployment>(),
        (Deployment, "spec") => fields_of::<apps::DeploymentSpec>(),
        (ReplicaSet, "") => fields_of::<apps::ReplicaSet>(),
        (ReplicaSet, "spec") => fields_of::<apps::ReplicaSetSpec>(),
        (StatefulSet, "") => fields_of::<apps::StatefulSet>(),
        (StatefulSet, "spec") => fields_of::<apps::StatefulSetSpec>(),
        (DaemonSet, "") => fields_of::<apps::DaemonSet>(),
        (DaemonSet, "spec") => fields_of::<apps::DaemonSetSpec>(),
        (ReplicationController, "") => fields_of::<core::ReplicationController>(),
        (ReplicationController, "spec") => fields_of::<core::ReplicationControllerSpec>(),
        (Job, "") => fields_of::<batch::Job>(),
        (Job, "spec") | (CronJob, "spec.jobTemplate.spec") => fields_of::<batch::JobSpec>(),
        (CronJob, "") => fields_of::<batch::CronJob>(),
        (CronJob, "spec") => fields_of::<batch::CronJobSpec>(),
        (CronJob, "spec.jobTemplate") => fields_of::<batch::JobTemplateSpec>(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(
            known_fields("Pod", "spec.initContainers[]")
                .unwrap()
                .contains(&"image")
        );
        assert!(
            known_fields("Pod", "spec.containers[].ports[]")
                .unwrap()
                .contains(&"hostIP")
        );
        assert!(
            known_fields("Pod", "spec")
                .unwrap()
                .contains(&"shareProcessNamespace")
        );
        assert!(known_fields("Pod", "").unwrap().contains(&"apiVersion"));
        assert!(known_fields("Secret", "").unwrap().contains(&"stringData"));
        assert!(known_fields("Pod", "spec.affinity.nodeAffinity").is_none());
        assert!(
            known_fields("Deployment", "spec.template.spec.containers[]")
                .unwrap()
                .contains(&"image")
        );
        assert!(
            known_fields("CronJob", "spec")
                .unwrap()
                .contains(&"schedule")
        );
        assert!(
            known_fields("CronJob", "spec.jobTemplate.spec")
                .unwrap()
                .contains(&"backoffLimit")
        );
    }
}
