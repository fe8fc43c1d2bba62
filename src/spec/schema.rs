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
    match kind {
        "ConfigMap" if parent.is_empty() => return Some(fields_of::<core::ConfigMap>()),
        "Secret" if parent.is_empty() => return Some(fields_of::<core::Secret>()),
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
        "spec.dnsConfig" => fields_of::<core::PodDNSConfig>(),
        "spec.dnsConfig.options[]" => fields_of::<core::PodDNSConfigOption>(),
        "spec.hostAliases[]" => fields_of::<core::HostAlias>(),
        "spec.tolerations[]" => fields_of::<core::Toleration>(),
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
    }
}
