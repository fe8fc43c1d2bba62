//! Annotations that change what a container may do on a cluster: AppArmor's
//! `container.apparmor.security.beta.kubernetes.io/<container>` and the old
//! seccomp ones (`seccomp.security.alpha.kubernetes.io/pod`,
//! `container.seccomp.security.alpha.kubernetes.io/<container>`). They are
//! never silently ignored.
//!
//! minipod applies no AppArmor profile and no seccomp filter yet (seccomp by
//! default is planned in issue 15), so a value that asks for no confinement
//! (`unconfined`) is what minipod does and passes silently; one that would
//! confine on a cluster (`runtime/default`, `localhost/...`) is accepted with
//! a warning naming it; one the API server refuses is refused here too, as its
//! validation does: an AppArmor annotation must name a container of the pod,
//! and each value must be a known profile form.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::SpecError;
use super::yaml::Positions;

pub const APPARMOR_CONTAINER_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
pub const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
pub const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// What one of these annotations means here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// It asks for a confinement minipod does not apply: the container runs
    /// unconfined here.
    Unconfined { key: String, value: String },
    /// The API server refuses it; the message says what was wrong and what to do.
    Invalid { key: String, message: String },
}

/// The findings for a pod's `annotations`, whose containers (app, init and
/// ephemeral, as the API server counts them) are named `containers`; in key
/// order. Annotations that ask for what minipod does yield nothing.
pub fn findings(annotations: &BTreeMap<String, String>, containers: &[&str]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, value) in annotations {
        let invalid = |message: String| Finding::Invalid {
            key: key.clone(),
            message,
        };
        let unconfined = || Finding::Unconfined {
            key: key.clone(),
            value: value.clone(),
        };
        if let Some(container) = key.strip_prefix(APPARMOR_CONTAINER_PREFIX) {
            let known = containers.contains(&container);
            if !known {
                out.push(invalid(format!(
                    "container \"{container}\" not found in the pod; an AppArmor annotation \
                     must name one of the pod's containers (the API server refuses it too)"
                )));
            }
            match apparmor_profile(value) {
                Err(message) => out.push(invalid(message)),
                Ok(true) if known => out.push(unconfined()),
                Ok(_) => {}
            }
        } else if key == SECCOMP_POD || key.starts_with(SECCOMP_CONTAINER_PREFIX) {
            // The API server does not check the container name of a seccomp
            // annotation; one naming no container confines nothing there either.
            let applies = key
                .strip_prefix(SECCOMP_CONTAINER_PREFIX)
                .is_none_or(|c| containers.contains(&c));
            match seccomp_profile(value) {
                Err(message) => out.push(invalid(message)),
                Ok(true) if applies => out.push(unconfined()),
                Ok(_) => {}
            }
        }
    }
    out
}

/// Whether an AppArmor profile (the annotation's value) would confine the
/// container, or why the API server refuses it. `""` is the runtime's
/// default, as when the annotation is absent.
fn apparmor_profile(value: &str) -> Result<bool, String> {
    match value {
        "" | "unconfined" => Ok(false),
        "runtime/default" => Ok(true),
        v if v.starts_with("localhost/") => Ok(true),
        v => Err(format!(
            "invalid AppArmor profile \"{v}\"; use runtime/default, localhost/<profile> or \
             unconfined"
        )),
    }
}

/// Whether a seccomp profile (the annotation's value) would confine the
/// container, or why the API server refuses it.
fn seccomp_profile(value: &str) -> Result<bool, String> {
    match value {
        "unconfined" => Ok(false),
        "runtime/default" | "docker/default" => Ok(true),
        v => match v.strip_prefix("localhost/") {
            Some(p) if p.starts_with('/') => Err(format!(
                "seccomp profile path \"{p}\" must be relative (to the kubelet's seccomp \
                 directory)"
            )),
            Some(p) if p.split('/').any(|part| part == "..") => Err(format!(
                "seccomp profile path \"{p}\" must not contain '..'"
            )),
            Some(_) => Ok(true),
            None => Err(format!(
                "invalid seccomp profile \"{v}\"; use runtime/default, localhost/<path> or \
                 unconfined"
            )),
        },
    }
}

/// The one warning line for a pod's annotations that would confine it on a
/// cluster, if any.
pub fn warning(pod: &str, findings: &[Finding]) -> Option<String> {
    let asked: Vec<String> = findings
        .iter()
        .filter_map(|f| match f {
            Finding::Unconfined { key, value } => Some(format!("{key}={value}")),
            Finding::Invalid { .. } => None,
        })
        .collect();
    if asked.is_empty() {
        return None;
    }
    let (annotation, ask) = if asked.len() == 1 {
        ("annotation", "asks")
    } else {
        ("annotations", "ask")
    };
    Some(format!(
        "pod {pod}: the {annotation} {} {ask} for confinement that minipod does not apply yet: \
         the containers run with no AppArmor profile and no seccomp filter here (seccomp by \
         default is planned in issue 15)",
        asked.join(", ")
    ))
}

/// Checks a pod's annotations: the warning goes to `warnings`, each refusal
/// to `errors` at the annotation's line.
pub fn check(
    pod_name: &str,
    pod: &Pod,
    pos: &Positions,
    warnings: &mut Vec<String>,
    errors: &mut Vec<SpecError>,
) {
    let Some(annotations) = &pod.metadata.annotations else {
        return;
    };
    let mut containers: Vec<&str> = Vec::new();
    if let Some(spec) = &pod.spec {
        containers.extend(spec.containers.iter().map(|c| c.name.as_str()));
        for c in spec.init_containers.iter().flatten() {
            containers.push(&c.name);
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            containers.push(&c.name);
        }
    }
    let found = findings(annotations, &containers);
    warnings.extend(warning(pod_name, &found));
    for f in found {
        if let Finding::Invalid { key, message } = f {
            let path = format!("metadata.annotations.{key}");
            errors.push(SpecError {
                line: pos.line(&path),
                column: None,
                path,
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn aa(c: &str) -> String {
        format!("{APPARMOR_CONTAINER_PREFIX}{c}")
    }

    fn sc(c: &str) -> String {
        format!("{SECCOMP_CONTAINER_PREFIX}{c}")
    }

    #[test]
    fn unconfined_is_what_minipod_does_and_passes_silently() {
        let a = map(&[
            (&aa("web"), "unconfined"),
            (&aa("init"), ""),
            (SECCOMP_POD, "unconfined"),
            (&sc("web"), "unconfined"),
            ("example.com/other", "runtime/default"),
        ]);
        assert_eq!(findings(&a, &["web", "init"]), vec![]);
        assert_eq!(warning("p", &[]), None);
    }

    #[test]
    fn confining_values_are_accepted_with_a_warning_naming_them() {
        let a = map(&[
            (&aa("web"), "runtime/default"),
            (&aa("side"), "localhost/k8s-apparmor-example-deny-write"),
            (SECCOMP_POD, "runtime/default"),
            (&sc("web"), "localhost/profiles/audit.json"),
            (&sc("side"), "docker/default"),
        ]);
        let found = findings(&a, &["web", "side"]);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(
            found
                .iter()
                .all(|f| matches!(f, Finding::Unconfined { .. }))
        );
        let w = warning("p", &found).unwrap();
        assert!(w.starts_with("pod p: the annotations "), "{w}");
        assert!(
            w.contains("container.apparmor.security.beta.kubernetes.io/web=runtime/default"),
            "{w}"
        );
        assert!(
            w.contains("seccomp.security.alpha.kubernetes.io/pod=runtime/default"),
            "{w}"
        );
        assert!(
            w.contains("run with no AppArmor profile and no seccomp filter here"),
            "{w}"
        );
        assert!(w.contains("issue 15"), "{w}");
        let one = warning("p", &found[..1]).unwrap();
        assert!(one.contains("the annotation container.apparmor"), "{one}");
        assert!(one.contains(" asks for confinement"), "{one}");
    }

    #[test]
    fn what_the_api_server_refuses_is_refused() {
        let a = map(&[
            (&aa("ghost"), "runtime/default"),
            (&aa("web"), "enforce"),
            (SECCOMP_POD, "strict"),
            (&sc("web"), "localhost//etc/x.json"),
            (&sc("side"), "localhost/../x.json"),
            (&sc("nobody"), ""),
        ]);
        let found = findings(&a, &["web", "side"]);
        let invalid = |key: &str| -> Vec<String> {
            found
                .iter()
                .filter_map(|f| match f {
                    Finding::Invalid { key: k, message } if k == key => Some(message.clone()),
                    _ => None,
                })
                .collect()
        };
        let ghost = invalid(&aa("ghost"));
        assert_eq!(ghost.len(), 1);
        assert!(
            ghost[0].contains("container \"ghost\" not found"),
            "{ghost:?}"
        );
        assert!(invalid(&aa("web"))[0].starts_with("invalid AppArmor profile \"enforce\""));
        assert!(invalid(SECCOMP_POD)[0].starts_with("invalid seccomp profile \"strict\""));
        assert!(invalid(&sc("web"))[0].contains("must be relative"));
        assert!(invalid(&sc("side"))[0].contains("'..'"));
        assert!(invalid(&sc("nobody"))[0].starts_with("invalid seccomp profile \"\""));
        // Nothing is warned of for a refused annotation.
        assert_eq!(warning("p", &found), None);
    }

    #[test]
    fn a_seccomp_annotation_for_no_container_confines_nothing() {
        let a = map(&[(&sc("gone"), "runtime/default")]);
        assert_eq!(findings(&a, &["web"]), vec![]);
    }

    #[test]
    fn init_and_ephemeral_containers_count_as_the_pods() {
        let a = map(&[(&aa("setup"), "runtime/default")]);
        assert_eq!(
            findings(&a, &["web", "setup"]),
            vec![Finding::Unconfined {
                key: aa("setup"),
                value: "runtime/default".into()
            }]
        );
    }
}
