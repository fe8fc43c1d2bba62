//! THE table of Pod fields minipod honours. Anything set in a Pod that is not
//! covered here is refused as "not supported yet" — never silently ignored.
//! `supported_fields_markdown()` renders the table for the README.
//!
//! A row covers its whole subtree unless other rows go deeper (then only
//! those deeper rows are accepted). Rows of `spec.containers[]` apply to
//! `spec.initContainers[]` too; `spec.initContainers[]` rows are init-only.

use serde_json::Value;

use super::yaml::Seg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Honoured.
    Yes,
    /// Accepted and ignored, harmlessly (the note says why).
    Ignored,
    /// Accepted only with this value (JSON text), which is what minipod does anyway.
    OnlyValue(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSupport {
    pub path: &'static str,
    pub support: Support,
    pub note: &'static str,
}

const fn row(path: &'static str, support: Support, note: &'static str) -> FieldSupport {
    FieldSupport {
        path,
        support,
        note,
    }
}

use Support::*;

pub const SUPPORTED_FIELDS: &[FieldSupport] = &[
    row("apiVersion", Yes, "must be `v1`"),
    row(
        "kind",
        Yes,
        "`Pod`; `ConfigMap` and `Secret` documents are read and kept",
    ),
    row("metadata.name", Yes, "required; a DNS-1123 subdomain"),
    row(
        "metadata.namespace",
        Yes,
        "default `default`; only a label for minipod",
    ),
    row("metadata.labels", Yes, ""),
    row("metadata.annotations", Yes, ""),
    row(
        "status",
        Ignored,
        "written by the system; the API server ignores it on create too",
    ),
    row(
        "spec.containers[].name",
        Yes,
        "DNS-1123 label, unique in the pod",
    ),
    row("spec.containers[].image", Yes, ""),
    row(
        "spec.containers[].imagePullPolicy",
        Yes,
        "default: `Always` for `:latest` or no tag, else `IfNotPresent`",
    ),
    row(
        "spec.containers[].command",
        Yes,
        "replaces the image Entrypoint (and drops its Cmd); `$(VAR)` expanded",
    ),
    row(
        "spec.containers[].args",
        Yes,
        "replaces the image Cmd; `$(VAR)` expanded",
    ),
    row(
        "spec.containers[].workingDir",
        Yes,
        "default: the image's WorkingDir, else `/`",
    ),
    row("spec.containers[].env[].name", Yes, ""),
    row(
        "spec.containers[].env[].value",
        Yes,
        "`$(VAR)` expanded against earlier variables",
    ),
    row("spec.containers[].ports[].name", Yes, ""),
    row("spec.containers[].ports[].containerPort", Yes, ""),
    row(
        "spec.containers[].ports[].hostPort",
        Yes,
        "published on the host (TCP and UDP), forwarded to the pod's IP",
    ),
    row(
        "spec.containers[].ports[].hostIP",
        Yes,
        "default: all addresses",
    ),
    row(
        "spec.containers[].ports[].protocol",
        Yes,
        "TCP (default), UDP or SCTP",
    ),
    row("spec.containers[].volumeMounts[].name", Yes, ""),
    row("spec.containers[].volumeMounts[].mountPath", Yes, ""),
    row("spec.containers[].volumeMounts[].readOnly", Yes, ""),
    row("spec.containers[].volumeMounts[].subPath", Yes, ""),
    row("spec.containers[].securityContext.runAsUser", Yes, ""),
    row("spec.containers[].securityContext.runAsGroup", Yes, ""),
    row("spec.containers[].securityContext.runAsNonRoot", Yes, ""),
    row(
        "spec.containers[].resources",
        Yes,
        "accepted; requests and limits are not enforced (a warning says so)",
    ),
    row(
        "spec.containers[].terminationMessagePath",
        Ignored,
        "kubectl adds it; minipod writes no termination message",
    ),
    row(
        "spec.containers[].terminationMessagePolicy",
        Ignored,
        "kubectl adds it; minipod writes no termination message",
    ),
    row(
        "spec.containers[].stdin",
        OnlyValue("false"),
        "attaching stdin is not supported yet",
    ),
    row(
        "spec.containers[].stdinOnce",
        OnlyValue("false"),
        "attaching stdin is not supported yet",
    ),
    row(
        "spec.containers[].tty",
        OnlyValue("false"),
        "a terminal is not supported yet",
    ),
    row(
        "spec.initContainers[].restartPolicy",
        Yes,
        "`Always` makes a native sidecar",
    ),
    row(
        "spec.restartPolicy",
        Yes,
        "Always (default), OnFailure or Never",
    ),
    row("spec.terminationGracePeriodSeconds", Yes, "default 30"),
    row("spec.hostname", Yes, "default: the pod name"),
    row("spec.shareProcessNamespace", Yes, ""),
    row("spec.hostNetwork", Yes, ""),
    row("spec.hostAliases[].ip", Yes, "added to /etc/hosts"),
    row("spec.hostAliases[].hostnames", Yes, ""),
    row(
        "spec.dnsPolicy",
        Yes,
        "ClusterFirst (default), ClusterFirstWithHostNet and Default use the host's resolv.conf (there is no cluster DNS); None uses dnsConfig alone",
    ),
    row("spec.dnsConfig.nameservers", Yes, ""),
    row("spec.dnsConfig.searches", Yes, ""),
    row("spec.dnsConfig.options", Yes, ""),
    row(
        "spec.securityContext.runAsUser",
        Yes,
        "default for every container",
    ),
    row(
        "spec.securityContext.runAsGroup",
        Yes,
        "default for every container",
    ),
    row(
        "spec.securityContext.runAsNonRoot",
        Yes,
        "default for every container",
    ),
    row("spec.volumes[].name", Yes, ""),
    row(
        "spec.volumes[].emptyDir.medium",
        Yes,
        "\"\" (a directory) or `Memory` (a tmpfs)",
    ),
    row("spec.volumes[].emptyDir.sizeLimit", Yes, "a quantity"),
    row("spec.volumes[].hostPath.path", Yes, ""),
    row(
        "spec.volumes[].hostPath.type",
        Yes,
        "checked before mounting",
    ),
    row(
        "spec.automountServiceAccountToken",
        OnlyValue("false"),
        "there is no service account: minipod never mounts a token, which is what `false` asks for",
    ),
];

/// The row for a normalized path (indices written `[]`).
pub fn lookup(norm: &str) -> Option<&'static FieldSupport> {
    if let Some(r) = SUPPORTED_FIELDS.iter().find(|r| r.path == norm) {
        return Some(r);
    }
    let generic = as_app_container(norm)?;
    SUPPORTED_FIELDS.iter().find(|r| r.path == generic)
}

fn as_app_container(norm: &str) -> Option<String> {
    norm.strip_prefix("spec.initContainers[]")
        .map(|rest| format!("spec.containers[]{rest}"))
}

fn has_deeper_rows(norm: &str) -> bool {
    let deeper = |p: &str| {
        SUPPORTED_FIELDS.iter().any(|r| {
            r.path.len() > p.len()
                && r.path.starts_with(p)
                && matches!(r.path.as_bytes()[p.len()], b'.' | b'[')
        })
    };
    norm.is_empty() || deeper(norm) || as_app_container(norm).is_some_and(|g| deeper(&g))
}

/// A field set in the input that minipod does not honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub path: Vec<Seg>,
    /// Only this value would be accepted (`Support::OnlyValue`).
    pub only: Option<&'static str>,
}

/// Walks a Pod (as serialized by k8s-openapi: fields that are absent are
/// omitted) and returns every set field the table does not cover, at the
/// shallowest level where it departs from the table.
pub fn unsupported_fields(pod: &Value) -> Vec<Unsupported> {
    let mut out = Vec::new();
    walk(pod, &mut Vec::new(), "", &mut out);
    out
}

fn walk(value: &Value, path: &mut Vec<Seg>, norm: &str, out: &mut Vec<Unsupported>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = if norm.is_empty() {
                    k.clone()
                } else {
                    format!("{norm}.{k}")
                };
                path.push(Seg::Key(k.clone()));
                check(v, path, &child, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            let child = format!("{norm}[]");
            for (i, v) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                check(v, path, &child, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn check(value: &Value, path: &mut Vec<Seg>, norm: &str, out: &mut Vec<Unsupported>) {
    if value.is_null() {
        return;
    }
    match lookup(norm).map(|r| r.support) {
        Some(OnlyValue(v)) => {
            if serde_json::from_str::<Value>(v).ok().as_ref() != Some(value) {
                out.push(Unsupported {
                    path: path.clone(),
                    only: Some(v),
                });
            }
        }
        Some(Yes | Ignored) if !has_deeper_rows(norm) => {}
        _ if has_deeper_rows(norm) => walk(value, path, norm, out),
        _ => out.push(Unsupported {
            path: path.clone(),
            only: None,
        }),
    }
}

/// The table as Markdown, for the README.
pub fn supported_fields_markdown() -> String {
    let mut s = String::from("| field | minipod | note |\n| --- | --- | --- |\n");
    for r in SUPPORTED_FIELDS {
        let support = match r.support {
            Yes => "supported".to_string(),
            Ignored => "accepted, ignored".to_string(),
            OnlyValue(v) => format!("only `{v}`"),
        };
        s.push_str(&format!("| `{}` | {} | {} |\n", r.path, support, r.note));
    }
    s.push_str(
        "\nAny other field that is set is refused as *not supported yet*, never silently \
         ignored; probes, `env[].valueFrom`, `envFrom` and \
         `configMap`/`secret` volumes among them, for now.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(v: &Value) -> Vec<String> {
        unsupported_fields(v)
            .into_iter()
            .map(|u| super::super::yaml::render(&u.path))
            .collect()
    }

    #[test]
    fn supported_subtrees_pass_and_others_are_reported_at_their_top() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "uid": "x"},
            "spec": {
                "containers": [{
                    "name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}},
                    "livenessProbe": {"exec": {"command": ["true"]}},
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                    "securityContext": {"runAsUser": 1, "privileged": true},
                    "stdin": false, "tty": true
                }],
                "initContainers": [{"name": "s", "image": "i", "restartPolicy": "Always", "lifecycle": {}}],
                "volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "nfs": {"server": "s", "path": "/"}}],
                "nodeSelector": {"a": "b"},
                "automountServiceAccountToken": false
            },
            "status": {"phase": "Pending"}
        });
        let mut want = vec![
            "metadata.uid",
            "spec.containers[0].livenessProbe",
            "spec.containers[0].env[1].valueFrom",
            "spec.containers[0].securityContext.privileged",
            "spec.containers[0].tty",
            "spec.initContainers[0].lifecycle",
            "spec.volumes[1].nfs",
            "spec.nodeSelector",
        ];
        let mut got = paths(&pod);
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn restart_policy_is_init_only_and_only_value_is_checked() {
        let pod = json!({"spec": {
            "containers": [{"name": "c", "restartPolicy": "Always"}],
            "automountServiceAccountToken": true
        }});
        let found = unsupported_fields(&pod);
        assert_eq!(found.len(), 2);
        let only = |p: &str| {
            found
                .iter()
                .find(|u| super::super::yaml::render(&u.path) == p)
                .map(|u| u.only)
        };
        assert_eq!(only("spec.containers[0].restartPolicy"), Some(None));
        assert_eq!(
            only("spec.automountServiceAccountToken"),
            Some(Some("false"))
        );
    }

    #[test]
    fn every_row_is_reachable_and_markdown_lists_it() {
        let md = supported_fields_markdown();
        for r in SUPPORTED_FIELDS {
            assert!(md.contains(&format!("`{}`", r.path)), "{}", r.path);
            assert!(lookup(r.path).is_some());
        }
        assert!(md.starts_with("| field |"));
    }
}

#[cfg(test)]
mod readme {
    /// The README's table of supported fields is this module's table: run
    /// `UPDATE_README=1 cargo test readme` after changing it.
    #[test]
    fn readme_lists_the_supported_fields() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let (begin, end) = (
            "<!-- supported-fields:begin -->\n",
            "<!-- supported-fields:end -->",
        );
        let start = readme.find(begin).expect("README has the begin marker") + begin.len();
        let stop = readme.find(end).expect("README has the end marker");
        let table = super::supported_fields_markdown();
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{table}{}", &readme[..start], &readme[stop..]);
            std::fs::write(path, updated).unwrap();
            return;
        }
        assert_eq!(
            readme[start..stop],
            table,
            "README's supported-field table is stale: UPDATE_README=1 cargo test readme"
        );
    }
}
