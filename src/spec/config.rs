//! ConfigMaps, Secrets and the downward API in a pod: `configMap`,
//! `secret`, `downwardAPI` and `projected` volumes, `env[].valueFrom` and
//! `envFrom`. Pure, in three stages:
//!
//! - validation into plan types, as the API server checks these fields
//!   (`volume_kind`, `container_env`, called from `validate`);
//! - what a pod reads and what of it is missing (`references`,
//!   `check_references`), before anything is pulled or created;
//! - resolution once the objects and the pod's facts are known: each
//!   container's environment in kubelet's order (`resolve_env`), each
//!   volume's files (`volume_files`), laid out as kubelet's atomic writer
//!   does (`atomic_layout`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;

use super::names;
use super::objects::{ConfigObject, ConfigObjects, ObjectKind};
use super::quantity::{parse_quantity, parse_quantity_milli};
use super::validate::Ctx;

// ------------------------------------------------------------ plan types

/// One `env[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub source: EnvSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// `value`: `$(VAR)` expanded against the variables before it.
    Value(String),
    /// `configMapKeyRef` / `secretKeyRef`.
    Key(KeyRef),
    /// `fieldRef`.
    Field(FieldRef),
    /// `resourceFieldRef`.
    Resource(ResourceRef),
}

impl EnvVar {
    /// A plain `value` entry.
    pub fn value(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            source: EnvSource::Value(value.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub kind: ObjectKind,
    pub name: String,
    pub key: String,
    pub optional: bool,
}

/// One `envFrom[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFrom {
    pub kind: ObjectKind,
    pub name: String,
    pub prefix: String,
    pub optional: bool,
}

/// A downward API `fieldRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    Name,
    Namespace,
    Uid,
    /// `metadata.labels` (volumes only): every label, `k="v"` lines.
    Labels,
    Annotations,
    Label(String),
    Annotation(String),
    NodeName,
    ServiceAccountName,
    HostIp,
    HostIps,
    PodIp,
    PodIps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    LimitsCpu,
    LimitsMemory,
    LimitsEphemeralStorage,
    RequestsCpu,
    RequestsMemory,
    RequestsEphemeralStorage,
}

const RESOURCES: [(&str, Resource); 6] = [
    ("limits.cpu", Resource::LimitsCpu),
    ("limits.memory", Resource::LimitsMemory),
    ("limits.ephemeral-storage", Resource::LimitsEphemeralStorage),
    ("requests.cpu", Resource::RequestsCpu),
    ("requests.memory", Resource::RequestsMemory),
    (
        "requests.ephemeral-storage",
        Resource::RequestsEphemeralStorage,
    ),
];

impl Resource {
    fn is_cpu(self) -> bool {
        matches!(self, Resource::LimitsCpu | Resource::RequestsCpu)
    }
    fn is_limit(self) -> bool {
        matches!(
            self,
            Resource::LimitsCpu | Resource::LimitsMemory | Resource::LimitsEphemeralStorage
        )
    }
    /// The key in `resources.limits` / `resources.requests`.
    fn key(self) -> &'static str {
        match self {
            Resource::LimitsCpu | Resource::RequestsCpu => "cpu",
            Resource::LimitsMemory | Resource::RequestsMemory => "memory",
            _ => "ephemeral-storage",
        }
    }
}

/// A `resourceFieldRef`, with the container's value already read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub resource: Resource,
    /// The container's value after the API server's defaulting (a request
    /// that is unset takes the limit): millicores for CPU, bytes else;
    /// `None` when unset.
    pub value: Option<u128>,
    /// In the same unit (1 CPU = 1000).
    pub divisor: u128,
}

/// A `configMap`, `secret`, `downwardAPI` or `projected` volume: what
/// kubelet projects into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVolume {
    /// `defaultMode` (0644 when unset).
    pub default_mode: u32,
    /// In order; a later source's file replaces an earlier one's.
    pub sources: Vec<Projection>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// A ConfigMap's or Secret's keys: `items`, or every key when empty.
    Object {
        kind: ObjectKind,
        name: String,
        items: Vec<KeyToPath>,
        optional: bool,
    },
    Downward(Vec<DownwardFile>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownwardFile {
    pub path: String,
    pub mode: Option<u32>,
    pub value: DownwardValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownwardValue {
    Field(FieldRef),
    Resource(ResourceRef),
}

/// Kubernetes' `defaultMode` when unset (`0644`).
pub const DEFAULT_MODE: u32 = 0o644;

// ------------------------------------------------------------ validation

const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Every field path `ConvertDownwardAPIFieldLabel` knows.
const KNOWN_FIELDS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// `validVolumeDownwardAPIFieldPathExpressions`.
const VOLUME_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.uid",
];
/// `validEnvDownwardAPIFieldPathExpressions`.
const ENV_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn mode(ctx: &mut Ctx<'_>, path: String, mode: Option<i32>) -> Option<u32> {
    let m = mode?;
    if !(0..=0o777).contains(&m) {
        ctx.invalid_number(path, m, FILE_MODE);
        return None;
    }
    Some(m as u32)
}

/// `ValidateLocalNonReservedPath`: relative, no `..` step, not starting
/// with `..`.
fn local_path(ctx: &mut Ctx<'_>, path: String, value: &str) {
    if value.starts_with('/') {
        ctx.invalid(path.clone(), value, "must be a relative path");
    }
    if value.split('/').any(|c| c == "..") {
        ctx.invalid(path.clone(), value, "must not contain '..'");
    }
    if value.starts_with("..") && !value.starts_with("../") {
        ctx.invalid(path, value, "must not start with '..'");
    }
}

fn key_to_paths(
    ctx: &mut Ctx<'_>,
    p: &str,
    items: Option<&Vec<core::KeyToPath>>,
) -> Vec<KeyToPath> {
    let mut out = Vec::new();
    for (i, kp) in items.into_iter().flatten().enumerate() {
        let ip = format!("{p}.items[{i}]");
        if kp.key.is_empty() {
            ctx.required(format!("{ip}.key"), "");
        }
        if kp.path.is_empty() {
            ctx.required(format!("{ip}.path"), "");
        }
        local_path(ctx, format!("{ip}.path"), &kp.path);
        let mode = mode(ctx, format!("{ip}.mode"), kp.mode);
        out.push(KeyToPath {
            key: kp.key.clone(),
            path: kp.path.clone(),
            mode,
        });
    }
    out
}

/// A `fieldRef` of a volume (`in_volume`) or of `env[].valueFrom`.
fn field_ref(
    ctx: &mut Ctx<'_>,
    p: &str,
    sel: &core::ObjectFieldSelector,
    in_volume: bool,
) -> Option<FieldRef> {
    if let Some(v) = sel
        .api_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "v1")
    {
        ctx.one_of(format!("{p}.apiVersion"), v, &["v1"]);
        return None;
    }
    let path = sel.field_path.as_str();
    let fp = format!("{p}.fieldPath");
    if path.is_empty() {
        ctx.required(fp, "");
        return None;
    }
    // fieldpath.SplitMaybeSubscriptedPath
    if let Some((base, key)) = path
        .strip_suffix("']")
        .and_then(|s| s.split_once("['"))
        .filter(|(base, _)| !base.is_empty())
    {
        return match base {
            "metadata.labels" => {
                ctx.check(fp, key, names::qualified_name(key));
                Some(FieldRef::Label(key.to_string()))
            }
            "metadata.annotations" => {
                ctx.check(fp, key, names::qualified_name(&key.to_lowercase()));
                Some(FieldRef::Annotation(key.to_string()))
            }
            _ => {
                ctx.invalid(fp, base, "does not support subscript");
                None
            }
        };
    }
    if !KNOWN_FIELDS.contains(&path) {
        ctx.invalid(
            fp,
            path,
            &format!("error converting fieldPath: field label not supported: {path}"),
        );
        return None;
    }
    let allowed = if in_volume { VOLUME_FIELDS } else { ENV_FIELDS };
    if !allowed.contains(&path) {
        ctx.one_of(fp, path, allowed);
        return None;
    }
    Some(match path {
        "metadata.name" => FieldRef::Name,
        "metadata.namespace" => FieldRef::Namespace,
        "metadata.uid" => FieldRef::Uid,
        "metadata.labels" => FieldRef::Labels,
        "metadata.annotations" => FieldRef::Annotations,
        "spec.nodeName" => FieldRef::NodeName,
        "spec.serviceAccountName" => FieldRef::ServiceAccountName,
        "status.hostIP" => FieldRef::HostIp,
        "status.hostIPs" => FieldRef::HostIps,
        "status.podIP" => FieldRef::PodIp,
        _ => FieldRef::PodIps,
    })
}

/// A `resourceFieldRef`: of the container `own` (env), or of the one it
/// names (required in a volume).
fn resource_ref(
    ctx: &mut Ctx<'_>,
    p: &str,
    sel: &core::ResourceFieldSelector,
    own: Option<&str>,
    containers: &[&core::Container],
) -> Option<ResourceRef> {
    let name = sel
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(own);
    let Some(name) = name else {
        ctx.required(format!("{p}.containerName"), "");
        return None;
    };
    if sel.resource.is_empty() {
        ctx.required(format!("{p}.resource"), "");
        return None;
    }
    let Some(&(_, resource)) = RESOURCES.iter().find(|(n, _)| *n == sel.resource) else {
        let names: Vec<&str> = RESOURCES.iter().map(|(n, _)| *n).collect();
        ctx.one_of(format!("{p}.resource"), &sel.resource, &names);
        return None;
    };
    let parse = |text: &str| -> Option<u128> {
        if resource.is_cpu() {
            parse_quantity_milli(text).ok().map(u128::from)
        } else {
            parse_quantity(text).ok().map(u128::from)
        }
    };
    let divisor = match sel.divisor.as_ref().map(|q| q.0.as_str()) {
        None | Some("") | Some("0") => {
            if resource.is_cpu() {
                1000
            } else {
                1
            }
        }
        Some(text) => {
            let d = parse(text).unwrap_or(0);
            let ok = if resource.is_cpu() {
                d == 1 || d == 1000
            } else {
                (0..=6).any(|e| d == 1000u128.pow(e)) || (1..=6).any(|e| d == 1u128 << (10 * e))
            };
            if !ok {
                let why = if resource.is_cpu() {
                    "only divisor's values 1m and 1 are supported with the cpu resource".to_string()
                } else {
                    let what = if resource.key() == "memory" {
                        "memory"
                    } else {
                        "local ephemeral storage"
                    };
                    format!(
                        "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, \
                         1Pi, 1Ei are supported with the {what} resource"
                    )
                };
                ctx.invalid(format!("{p}.divisor"), text, &why);
                return None;
            }
            d
        }
    };
    let Some(c) = containers.iter().find(|c| c.name == name) else {
        ctx.err(
            format!("{p}.containerName"),
            format!("Not found: {name:?}; name a container of this pod"),
        );
        return None;
    };
    let r = c.resources.as_ref();
    let limit = r
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(resource.key()));
    let request = r
        .and_then(|r| r.requests.as_ref())
        .and_then(|l| l.get(resource.key()));
    // The API server's defaulting: a request unset takes the limit.
    let value = if resource.is_limit() {
        limit
    } else {
        request.or(limit)
    };
    Some(ResourceRef {
        resource,
        value: value.and_then(|q| parse(&q.0)),
        divisor,
    })
}

/// The kind of a `configMap`, `secret`, `downwardAPI` or `projected`
/// volume, checked as the API server checks it; `None` for a volume of
/// another type. `containers`: every container of the pod (for
/// `resourceFieldRef`).
pub(super) fn volume_kind(
    ctx: &mut Ctx<'_>,
    p: &str,
    v: &core::Volume,
    containers: &[&core::Container],
) -> Option<VolumeKindConfig> {
    let set = [
        v.config_map.is_some(),
        v.secret.is_some(),
        v.downward_api.is_some(),
        v.projected.is_some(),
    ];
    if !set.contains(&true) {
        return None;
    }
    // Any other type set beside it (name and this one are the only keys).
    let types = serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_object().map(|o| o.len()))
        .unwrap_or(2);
    if types > 2 {
        ctx.err(
            p.to_string(),
            "Forbidden: may not specify more than 1 volume type; keep one",
        );
        return Some(VolumeKindConfig::Invalid);
    }
    let default_mode = |ctx: &mut Ctx<'_>, at: &str, m: Option<i32>| {
        mode(ctx, format!("{p}.{at}.defaultMode"), m).unwrap_or(DEFAULT_MODE)
    };
    let volume = if let Some(cm) = &v.config_map {
        let at = format!("{p}.configMap");
        if cm.name.is_empty() {
            ctx.required(format!("{at}.name"), "; name the ConfigMap to project");
        }
        ConfigVolume {
            default_mode: default_mode(ctx, "configMap", cm.default_mode),
            sources: vec![Projection::Object {
                kind: ObjectKind::ConfigMap,
                name: cm.name.clone(),
                items: key_to_paths(ctx, &at, cm.items.as_ref()),
                optional: cm.optional.unwrap_or(false),
            }],
        }
    } else if let Some(s) = &v.secret {
        let at = format!("{p}.secret");
        let name = s.secret_name.clone().unwrap_or_default();
        if name.is_empty() {
            ctx.required(format!("{at}.secretName"), "; name the Secret to project");
        }
        ConfigVolume {
            default_mode: default_mode(ctx, "secret", s.default_mode),
            sources: vec![Projection::Object {
                kind: ObjectKind::Secret,
                name,
                items: key_to_paths(ctx, &at, s.items.as_ref()),
                optional: s.optional.unwrap_or(false),
            }],
        }
    } else if let Some(d) = &v.downward_api {
        let at = format!("{p}.downwardAPI");
        ConfigVolume {
            default_mode: default_mode(ctx, "downwardAPI", d.default_mode),
            sources: vec![Projection::Downward(downward_files(
                ctx,
                &at,
                d.items.as_ref(),
                containers,
                &mut Vec::new(),
                None,
            ))],
        }
    } else {
        let pr = v.projected.as_ref().expect("one is set");
        let at = format!("{p}.projected");
        let mut sources = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for (i, s) in pr.sources.iter().flatten().enumerate() {
            let sp = format!("{at}.sources[{i}]");
            let n = [
                s.config_map.is_some(),
                s.secret.is_some(),
                s.downward_api.is_some(),
                s.service_account_token.is_some(),
                s.cluster_trust_bundle.is_some(),
                s.pod_certificate.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n > 1 {
                ctx.err(
                    sp.clone(),
                    "Forbidden: may not specify more than 1 volume type per source",
                );
                continue;
            }
            let mut object = |ctx: &mut Ctx<'_>,
                              kind: ObjectKind,
                              field: &str,
                              name: &str,
                              items: Option<&Vec<core::KeyToPath>>,
                              optional: Option<bool>| {
                let op = format!("{sp}.{field}");
                if name.is_empty() {
                    ctx.required(
                        format!("{op}.name"),
                        &format!("; name the {kind} to project"),
                    );
                }
                let items = key_to_paths(ctx, &op, items);
                for kp in items.iter().filter(|kp| !kp.path.is_empty()) {
                    if paths.contains(&kp.path) {
                        ctx.invalid(at.clone(), name, "conflicting duplicate paths");
                    } else {
                        paths.push(kp.path.clone());
                    }
                }
                Projection::Object {
                    kind,
                    name: name.to_string(),
                    items,
                    optional: optional.unwrap_or(false),
                }
            };
            if let Some(cm) = &s.config_map {
                let o = object(
                    ctx,
                    ObjectKind::ConfigMap,
                    "configMap",
                    &cm.name,
                    cm.items.as_ref(),
                    cm.optional,
                );
                sources.push(o);
            } else if let Some(sec) = &s.secret {
                let o = object(
                    ctx,
                    ObjectKind::Secret,
                    "secret",
                    &sec.name,
                    sec.items.as_ref(),
                    sec.optional,
                );
                sources.push(o);
            } else if let Some(d) = &s.downward_api {
                sources.push(Projection::Downward(downward_files(
                    ctx,
                    &format!("{sp}.downwardAPI"),
                    d.items.as_ref(),
                    containers,
                    &mut paths,
                    Some(&at),
                )));
            }
            // serviceAccountToken, clusterTrustBundle and podCertificate are
            // refused by the support table, with what to do instead.
        }
        ConfigVolume {
            default_mode: default_mode(ctx, "projected", pr.default_mode),
            sources,
        }
    };
    Some(VolumeKindConfig::Valid(volume))
}

/// What `volume_kind` found.
pub(super) enum VolumeKindConfig {
    Valid(ConfigVolume),
    /// Reported; no plan.
    Invalid,
}

fn downward_files(
    ctx: &mut Ctx<'_>,
    p: &str,
    items: Option<&Vec<core::DownwardAPIVolumeFile>>,
    containers: &[&core::Container],
    paths: &mut Vec<String>,
    projected_at: Option<&str>,
) -> Vec<DownwardFile> {
    let mut out = Vec::new();
    for (i, f) in items.into_iter().flatten().enumerate() {
        let ip = format!("{p}.items[{i}]");
        if f.path.is_empty() {
            ctx.required(format!("{ip}.path"), "");
        }
        local_path(ctx, format!("{ip}.path"), &f.path);
        if let Some(at) = projected_at
            && !f.path.is_empty()
        {
            if paths.contains(&f.path) {
                ctx.invalid(at.to_string(), &f.path, "conflicting duplicate paths");
            } else {
                paths.push(f.path.clone());
            }
        }
        let value = match (&f.field_ref, &f.resource_field_ref) {
            (Some(_), Some(_)) => {
                ctx.invalid(
                    ip.clone(),
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                );
                None
            }
            (Some(fr), None) => {
                field_ref(ctx, &format!("{ip}.fieldRef"), fr, true).map(DownwardValue::Field)
            }
            (None, Some(rr)) => {
                resource_ref(ctx, &format!("{ip}.resourceFieldRef"), rr, None, containers)
                    .map(DownwardValue::Resource)
            }
            (None, None) => {
                ctx.required(
                    ip.clone(),
                    ": one of fieldRef and resourceFieldRef is required",
                );
                None
            }
        };
        let mode = mode(ctx, format!("{ip}.mode"), f.mode);
        if let Some(value) = value {
            out.push(DownwardFile {
                path: f.path.clone(),
                mode,
                value,
            });
        }
    }
    out
}

/// `IsRelaxedEnvVarName` (on by default since Kubernetes 1.32): printable
/// ASCII but `=`.
pub fn relaxed_env_name(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("environment variable name must be non-empty".into());
    }
    (!s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')).then(|| {
        "a valid environment variable name must consist only of printable ASCII characters \
         other than '='"
            .to_string()
    })
}

/// A container's `env` and `envFrom`, checked as the API server checks
/// them.
pub(super) fn container_env(
    ctx: &mut Ctx<'_>,
    p: &str,
    c: &core::Container,
    containers: &[&core::Container],
) -> (Vec<EnvVar>, Vec<EnvFrom>) {
    let mut env = Vec::new();
    for (i, e) in c.env.iter().flatten().enumerate() {
        let ep = format!("{p}.env[{i}]");
        ctx.check(format!("{ep}.name"), &e.name, relaxed_env_name(&e.name));
        let value = e.value.clone().unwrap_or_default();
        let Some(from) = &e.value_from else {
            env.push(EnvVar::value(&e.name, &value));
            continue;
        };
        let vp = format!("{ep}.valueFrom");
        let n = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
            from.file_key_ref.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if from.file_key_ref.is_some() {
            // Refused by the support table (alpha in 1.34).
            continue;
        }
        if n == 0 {
            ctx.invalid(
                vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or \
                 `secretKeyRef`",
            );
            continue;
        }
        if !value.is_empty() {
            ctx.invalid(vp, "", "may not be specified when `value` is not empty");
            continue;
        }
        if n > 1 {
            ctx.invalid(
                vp,
                "",
                "may not have more than one field specified at a time",
            );
            continue;
        }
        let source = if let Some(fr) = &from.field_ref {
            field_ref(ctx, &format!("{vp}.fieldRef"), fr, false).map(EnvSource::Field)
        } else if let Some(rr) = &from.resource_field_ref {
            resource_ref(
                ctx,
                &format!("{vp}.resourceFieldRef"),
                rr,
                Some(&c.name),
                containers,
            )
            .map(EnvSource::Resource)
        } else if let Some(k) = &from.config_map_key_ref {
            key_ref(
                ctx,
                &format!("{vp}.configMapKeyRef"),
                ObjectKind::ConfigMap,
                &k.name,
                &k.key,
                k.optional,
            )
        } else if let Some(k) = &from.secret_key_ref {
            key_ref(
                ctx,
                &format!("{vp}.secretKeyRef"),
                ObjectKind::Secret,
                &k.name,
                &k.key,
                k.optional,
            )
        } else {
            None
        };
        if let Some(source) = source {
            env.push(EnvVar {
                name: e.name.clone(),
                source,
            });
        }
    }
    let mut env_from = Vec::new();
    for (i, f) in c.env_from.iter().flatten().enumerate() {
        let fp = format!("{p}.envFrom[{i}]");
        let prefix = f.prefix.clone().unwrap_or_default();
        if !prefix.is_empty() {
            ctx.check(format!("{fp}.prefix"), &prefix, relaxed_env_name(&prefix));
        }
        let (kind, field, name, optional) = match (&f.config_map_ref, &f.secret_ref) {
            (Some(_), Some(_)) => {
                ctx.invalid(
                    format!("{p}.envFrom"),
                    "",
                    "may not have more than one field specified at a time",
                );
                continue;
            }
            (None, None) => {
                ctx.invalid(
                    format!("{p}.envFrom"),
                    "",
                    "must specify one of: `configMapRef` or `secretRef`",
                );
                continue;
            }
            (Some(cm), None) => (ObjectKind::ConfigMap, "configMapRef", &cm.name, cm.optional),
            (None, Some(s)) => (ObjectKind::Secret, "secretRef", &s.name, s.optional),
        };
        let np = format!("{fp}.{field}.name");
        if name.is_empty() {
            ctx.required(np, &format!("; name the {kind}"));
        } else {
            ctx.check(np, name, names::dns1123_subdomain(name));
        }
        env_from.push(EnvFrom {
            kind,
            name: name.clone(),
            prefix,
            optional: optional.unwrap_or(false),
        });
    }
    (env, env_from)
}

fn key_ref(
    ctx: &mut Ctx<'_>,
    p: &str,
    kind: ObjectKind,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Option<EnvSource> {
    let before = ctx.errors.len();
    ctx.check(format!("{p}.name"), name, names::dns1123_subdomain(name));
    if key.is_empty() {
        ctx.required(format!("{p}.key"), "");
    } else {
        ctx.check(format!("{p}.key"), key, super::objects::key_problem(key));
    }
    (ctx.errors.len() == before).then(|| {
        EnvSource::Key(KeyRef {
            kind,
            name: name.to_string(),
            key: key.to_string(),
            optional: optional.unwrap_or(false),
        })
    })
}

// ------------------------------------------------------------ references

/// Every ConfigMap and Secret the containers' environment and the volumes
/// of a pod read, by kind and name, each once, in order.
pub fn references<'a>(
    volumes: impl IntoIterator<Item = &'a ConfigVolume>,
    containers: impl IntoIterator<Item = (&'a [EnvVar], &'a [EnvFrom])>,
) -> Vec<(ObjectKind, &'a str)> {
    let mut out: Vec<(ObjectKind, &str)> = Vec::new();
    let mut add = |kind, name: &'a str| {
        if !out.contains(&(kind, name)) {
            out.push((kind, name));
        }
    };
    for (env, env_from) in containers {
        for f in env_from {
            add(f.kind, f.name.as_str());
        }
        for e in env {
            if let EnvSource::Key(k) = &e.source {
                add(k.kind, k.name.as_str());
            }
        }
    }
    for v in volumes {
        for s in &v.sources {
            if let Projection::Object { kind, name, .. } = s {
                add(*kind, name.as_str());
            }
        }
    }
    out
}

/// How to provide a missing object.
fn how_to_provide(kind: ObjectKind, name: &str) -> String {
    let cmd = match kind {
        ObjectKind::ConfigMap => "configmap",
        ObjectKind::Secret => "secret",
    };
    format!(
        "create it with `minipod {cmd} create {name} --from-literal KEY=VALUE` (or \
         --from-file), add a {kind} document named {name} to the YAML, or give a file holding it \
         with `run --configmap FILE`"
    )
}

/// The object a pod in `namespace` reads, or why it cannot: `Ok(None)`
/// for a missing optional one.
fn find<'o>(
    objects: &'o ConfigObjects,
    namespace: &str,
    kind: ObjectKind,
    name: &str,
    optional: bool,
    who: &str,
) -> Result<Option<&'o ConfigObject>, String> {
    match objects.find(kind, namespace, name) {
        Some(o) => Ok(Some(o)),
        None if optional => Ok(None),
        None => Err(format!(
            "{who}: {kind} {name} is not found in the files, the --configmap files or the store \
             (namespace {namespace}); {}, or set optional: true",
            how_to_provide(kind, name)
        )),
    }
}

/// The value of `key`, or why it cannot be read: `Ok(None)` when it is
/// optional and missing. `for_env`: a ConfigMap's `binaryData` is not
/// seen, as kubelet's env reads `data` only.
fn key_value<'o>(
    object: &'o ConfigObject,
    key: &str,
    optional: bool,
    for_env: bool,
    who: &str,
) -> Result<Option<&'o [u8]>, String> {
    let value = object
        .data
        .get(key)
        .filter(|_| !(for_env && object.binary_keys.contains(key)));
    match value {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => {
            let keys: Vec<&str> = object.data.keys().map(String::as_str).collect();
            Err(format!(
                "{who}: {} {} ({}) has no key {key:?} (its keys: {}); add it, or set optional: \
                 true",
                object.kind,
                object.name,
                object.origin,
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            ))
        }
    }
}

/// Every missing object or key that is not optional, as errors naming the
/// containers or volumes that need it (one error per problem), the object
/// and how to provide it.
pub fn check_references(
    namespace: &str,
    volumes: &[(String, &ConfigVolume)],
    containers: &[(&str, &[EnvVar], &[EnvFrom])],
    objects: &ConfigObjects,
) -> Vec<String> {
    // (who, the problem): each problem once, with everyone it hits.
    let mut found: Vec<(Vec<String>, String)> = Vec::new();
    let mut add = |who: String, error: String| {
        let problem = error
            .strip_prefix(&format!("{who}: "))
            .unwrap_or(&error)
            .to_string();
        match found.iter_mut().find(|(_, p)| *p == problem) {
            Some((whos, _)) => whos.push(who),
            None => found.push((vec![who], problem)),
        }
    };
    for (container, env, env_from) in containers {
        for f in *env_from {
            let who = format!("container {container:?} envFrom {}", f.name);
            if let Err(e) = find(objects, namespace, f.kind, &f.name, f.optional, &who) {
                add(who, e);
            }
        }
        for e in *env {
            if let EnvSource::Key(k) = &e.source {
                let who = format!("container {container:?} env {}", e.name);
                let problem = find(objects, namespace, k.kind, &k.name, k.optional, &who).and_then(
                    |o| match o {
                        Some(o) => key_value(o, &k.key, k.optional, true, &who).map(|_| ()),
                        None => Ok(()),
                    },
                );
                if let Err(e) = problem {
                    add(who, e);
                }
            }
        }
    }
    for (name, v) in volumes {
        for s in &v.sources {
            let Projection::Object {
                kind,
                name: object,
                items,
                optional,
            } = s
            else {
                continue;
            };
            let who = format!("volume {name:?}");
            match find(objects, namespace, *kind, object, *optional, &who) {
                Err(e) => add(who, e),
                Ok(Some(o)) => {
                    for kp in items {
                        if let Err(e) = key_value(o, &kp.key, *optional, false, &who) {
                            add(who.clone(), e);
                        }
                    }
                }
                Ok(None) => {}
            }
        }
    }
    found
        .into_iter()
        .map(|(whos, problem)| format!("{}: {problem}", whos.join(", ")))
        .collect()
}

// ------------------------------------------------------------ resolution

/// What the downward API tells of a pod and its node, at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// This machine's hostname.
    pub node_name: String,
    pub service_account: String,
    /// The address at which the pod reaches the host.
    pub host_ip: String,
    /// The pod's address, or a placeholder the supervisor fills in once it
    /// leased one.
    pub pod_ip: String,
    /// The node's allocatable: what an unset limit means.
    pub cpu_millis: u128,
    pub memory_bytes: u128,
    pub ephemeral_storage_bytes: u128,
}

/// Go's `%q` of a string (`strconv.Quote`): printable characters as they
/// are, `"` and `\` escaped, control characters as `\n`, `\x00`, `\u0085`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            // Not printable for Go: other controls, spaces but ' ', and
            // the common format characters (soft hyphen, zero-width and
            // direction marks, BOM).
            c if c.is_control()
                || (c.is_whitespace() && c != ' ')
                || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                    | '\u{2060}'..='\u{2064}' | '\u{feff}') =>
            {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// kubelet's `FormatMap`: `key="value"` lines, keys sorted, no final
/// newline.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn field_value(f: &FieldRef, facts: &PodFacts) -> String {
    match f {
        FieldRef::Name => facts.name.clone(),
        FieldRef::Namespace => facts.namespace.clone(),
        FieldRef::Uid => facts.uid.clone(),
        FieldRef::Labels => format_map(&facts.labels),
        FieldRef::Annotations => format_map(&facts.annotations),
        FieldRef::Label(k) => facts.labels.get(k).cloned().unwrap_or_default(),
        FieldRef::Annotation(k) => facts.annotations.get(k).cloned().unwrap_or_default(),
        FieldRef::NodeName => facts.node_name.clone(),
        FieldRef::ServiceAccountName => facts.service_account.clone(),
        FieldRef::HostIp | FieldRef::HostIps => facts.host_ip.clone(),
        FieldRef::PodIp | FieldRef::PodIps => facts.pod_ip.clone(),
    }
}

/// kubelet's value of a `resourceFieldRef`: the value divided by the
/// divisor, rounded up; a limit unset or 0 is the node's allocatable
/// (`MergeContainerResourceLimits`), an unset request 0.
pub fn resource_value(r: &ResourceRef, facts: &PodFacts) -> String {
    let given = r.value.filter(|v| !(r.resource.is_limit() && *v == 0));
    let value = given.unwrap_or(match r.resource {
        Resource::LimitsCpu => facts.cpu_millis,
        Resource::LimitsMemory => facts.memory_bytes,
        Resource::LimitsEphemeralStorage => facts.ephemeral_storage_bytes,
        _ => 0,
    });
    value.div_ceil(r.divisor.max(1)).to_string()
}

/// A container's environment as kubelet builds it: every `envFrom` in
/// order (prefixed keys; a later one's key replaces an earlier one's),
/// then each `env` entry in order, a `value` expanded against the
/// variables before it (values from `valueFrom` and `envFrom` are not
/// expanded), a name given again replacing the value in place. Missing
/// optional objects and keys are skipped, others are errors.
pub fn resolve_env(
    env: &[EnvVar],
    env_from: &[EnvFrom],
    container: &str,
    objects: &ConfigObjects,
    facts: &PodFacts,
) -> Result<Vec<(String, String)>, Vec<String>> {
    resolve_env_with(&[], env, env_from, container, objects, facts)
}

/// `resolve_env` over the Service environment variables (kubelet's
/// `serviceEnv`): they come first, envFrom and env override them, and an
/// env value's `$(VAR)` may name them.
pub fn resolve_env_with(
    service_env: &[(String, String)],
    env: &[EnvVar],
    env_from: &[EnvFrom],
    container: &str,
    objects: &ConfigObjects,
    facts: &PodFacts,
) -> Result<Vec<(String, String)>, Vec<String>> {
    let mut entries: Vec<(String, String, bool)> = service_env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), false))
        .collect();
    let mut errors = Vec::new();
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    for f in env_from {
        let who = format!("container {container:?} envFrom {}", f.name);
        match find(objects, &facts.namespace, f.kind, &f.name, f.optional, &who) {
            Err(e) => errors.push(e),
            Ok(None) => {}
            Ok(Some(o)) => {
                for (k, v) in &o.data {
                    if o.binary_keys.contains(k) {
                        continue; // binaryData: kubelet reads data only
                    }
                    entries.push((format!("{}{k}", f.prefix), text(v), false));
                }
            }
        }
    }
    for e in env {
        let who = format!("container {container:?} env {}", e.name);
        let value = match &e.source {
            EnvSource::Value(v) => {
                entries.push((e.name.clone(), v.clone(), true));
                continue;
            }
            EnvSource::Field(f) => field_value(f, facts),
            EnvSource::Resource(r) => resource_value(r, facts),
            EnvSource::Key(k) => {
                match find(objects, &facts.namespace, k.kind, &k.name, k.optional, &who).and_then(
                    |o| match o {
                        Some(o) => key_value(o, &k.key, k.optional, true, &who),
                        None => Ok(None),
                    },
                ) {
                    Ok(Some(v)) => text(v),
                    Ok(None) => continue,
                    Err(err) => {
                        errors.push(err);
                        continue;
                    }
                }
            }
        };
        entries.push((e.name.clone(), value, false));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(super::process::build_env(entries))
}

/// One file of a projected volume.
#[derive(Clone, PartialEq, Eq)]
pub struct VolumeFile {
    /// Relative, no `..`.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Contents stay out of debug output (a Secret's).
impl std::fmt::Debug for VolumeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VolumeFile({}, {:o}, {} bytes)",
            self.path,
            self.mode,
            self.data.len()
        )
    }
}

/// The files of a volume, sorted by path, as kubelet's payload: a
/// source's `items`, or all its keys; a later source's path replacing an
/// earlier one's.
pub fn volume_files(
    volume: &str,
    v: &ConfigVolume,
    objects: &ConfigObjects,
    facts: &PodFacts,
) -> Result<Vec<VolumeFile>, Vec<String>> {
    let mut files: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    let mut errors = Vec::new();
    let who = format!("volume {volume:?}");
    for s in &v.sources {
        match s {
            Projection::Object {
                kind,
                name,
                items,
                optional,
            } => {
                let o = match find(objects, &facts.namespace, *kind, name, *optional, &who) {
                    Ok(Some(o)) => o,
                    Ok(None) => continue,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                if items.is_empty() {
                    for (k, data) in &o.data {
                        files.insert(k.clone(), (v.default_mode, data.clone()));
                    }
                }
                for kp in items {
                    match key_value(o, &kp.key, *optional, false, &who) {
                        Ok(Some(data)) => {
                            files.insert(
                                kp.path.clone(),
                                (kp.mode.unwrap_or(v.default_mode), data.to_vec()),
                            );
                        }
                        Ok(None) => {}
                        Err(e) => errors.push(e),
                    }
                }
            }
            Projection::Downward(items) => {
                for f in items {
                    let text = match &f.value {
                        DownwardValue::Field(r) => field_value(r, facts),
                        DownwardValue::Resource(r) => resource_value(r, facts),
                    };
                    files.insert(
                        f.path.clone(),
                        (f.mode.unwrap_or(v.default_mode), text.into_bytes()),
                    );
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(files
        .into_iter()
        .map(|(path, (mode, data))| VolumeFile { path, mode, data })
        .collect())
}

/// One step of laying a volume out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutStep<'a> {
    /// A directory with this mode (created if missing).
    Dir(String),
    File(String, &'a VolumeFile),
    /// (link, target)
    Symlink(String, String),
}

/// kubelet's atomic writer layout: the files in the directory `stamp`
/// (`..2006_01_02_15_04_05.NNN`, 0755), the symlink `..data` to it, and
/// each top-level name a symlink through `..data`. Steps in order.
pub fn atomic_layout<'a>(files: &'a [VolumeFile], stamp: &str) -> Vec<LayoutStep<'a>> {
    let mut steps = vec![LayoutStep::Dir(stamp.to_string())];
    let mut top: Vec<&str> = Vec::new();
    for f in files {
        let parts: Vec<&str> = f
            .path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let Some((_, dirs)) = parts.split_last() else {
            continue;
        };
        for i in 1..=dirs.len() {
            let d = format!("{stamp}/{}", dirs[..i].join("/"));
            if !steps.contains(&LayoutStep::Dir(d.clone())) {
                steps.push(LayoutStep::Dir(d));
            }
        }
        steps.push(LayoutStep::File(format!("{stamp}/{}", parts.join("/")), f));
        if !top.contains(&parts[0]) {
            top.push(parts[0]);
        }
    }
    steps.push(LayoutStep::Symlink("..data".into(), stamp.to_string()));
    for t in top {
        steps.push(LayoutStep::Symlink(t.to_string(), format!("..data/{t}")));
    }
    steps
}

/// The timestamped directory's name for a UTC time given as RFC 3339
/// (`2006-01-02T15:04:05Z`), as kubelet's `newTimestampDir` makes it:
/// `..2006_01_02_15_04_05.` and a random number.
pub fn stamp_dir(rfc3339: &str, random: u32) -> String {
    let t: String = rfc3339
        .chars()
        .take(19)
        .map(|c| if c.is_ascii_digit() { c } else { '_' })
        .collect();
    format!("..{t}.{random}")
}

/// The first component of a `subPath` into a projected volume must be
/// one of its files or directories (the volume is read-only: kubelet
/// cannot create it).
pub fn sub_path_problem(volume: &str, files: &[VolumeFile], sub_path: &str) -> Option<String> {
    let first = sub_path.split('/').find(|c| !c.is_empty() && *c != ".")?;
    let tops: Vec<&str> = files
        .iter()
        .filter_map(|f| f.path.split('/').find(|c| !c.is_empty() && *c != "."))
        .collect();
    if tops.contains(&first) || first == "..data" {
        return None;
    }
    let mut tops = tops;
    tops.dedup();
    Some(format!(
        "subPath {sub_path:?} is not in volume {volume:?}, which holds {}; name one of them",
        if tops.is_empty() {
            "nothing".to_string()
        } else {
            tops.join(", ")
        }
    ))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
