//! Semantic checks as the API server makes them, for every field minipod
//! reads, and the translation of a valid Pod into a `PodPlan`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Volume};

use super::SpecError;
use super::names;
use super::plan::*;
use super::quantity::parse_quantity;
use super::yaml::Positions;

/// Collects errors with their lines.
pub struct Ctx<'a> {
    pub pos: &'a Positions,
    pub errors: Vec<SpecError>,
    pub warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(pos: &'a Positions) -> Self {
        Ctx {
            pos,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.errors.push(SpecError {
            line: self.pos.line(&path),
            column: None,
            path,
            message: message.into(),
        });
    }

    fn check(&mut self, path: impl Into<String>, why: Option<String>) {
        if let Some(why) = why {
            self.err(path, why);
        }
    }

    fn one_of(&mut self, path: String, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.err(
                path,
                format!(
                    "unsupported value \"{value}\"; use one of {}",
                    allowed
                        .iter()
                        .map(|a| format!("\"{a}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }

    /// A uid/gid: 0..=2147483647 as the API server allows.
    fn id(&mut self, path: String, v: Option<i64>) -> Option<u32> {
        let v = v?;
        if !(0..=i64::from(i32::MAX)).contains(&v) {
            self.err(
                path,
                format!("{v} is out of range; must be between 0 and 2147483647, inclusive"),
            );
            return None;
        }
        Some(v as u32)
    }
}

fn valid_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Validates `pod` and builds its plan; errors go to `ctx`. The plan is only
/// meaningful when `ctx.errors` stays empty.
pub fn build_pod_plan(pod: &Pod, ctx: &mut Ctx<'_>) -> PodPlan {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    if name.is_empty() {
        ctx.err("metadata.name", "required; give the pod a name");
    } else {
        ctx.check("metadata.name", names::dns1123_subdomain(&name));
    }
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    ctx.check("metadata.namespace", names::dns1123_label(&namespace));
    let labels = meta.labels.clone().unwrap_or_default();
    for (k, v) in &labels {
        let path = format!("metadata.labels.{k}");
        ctx.check(path.clone(), names::qualified_name(k));
        ctx.check(path, names::label_value(v));
    }
    let annotations = meta.annotations.clone().unwrap_or_default();
    let mut total = 0;
    for (k, v) in &annotations {
        ctx.check(
            format!("metadata.annotations.{k}"),
            names::qualified_name(k),
        );
        total += k.len() + v.len();
    }
    if total > 256 * 1024 {
        ctx.err(
            "metadata.annotations",
            "may not be more than 262144 bytes in total",
        );
    }

    let default_spec = PodSpec::default();
    let spec = match &pod.spec {
        Some(s) => s,
        None => {
            ctx.err("spec", "required; a Pod needs a spec with containers");
            &default_spec
        }
    };

    let restart_policy = match spec.restart_policy.as_deref() {
        None | Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        Some(other) => {
            ctx.one_of(
                "spec.restartPolicy".into(),
                other,
                &["Always", "OnFailure", "Never"],
            );
            RestartPolicy::Always
        }
    };

    let active_deadline = match spec.active_deadline_seconds {
        None => None,
        Some(s) if s <= 0 => {
            ctx.err(
                "spec.activeDeadlineSeconds",
                format!("Invalid value: {s}: must be greater than 0"),
            );
            None
        }
        Some(s) => Some(Duration::from_secs(s as u64)),
    };
    let termination_grace = match spec.termination_grace_period_seconds {
        None => DEFAULT_TERMINATION_GRACE,
        Some(s) if s < 0 => {
            ctx.err(
                "spec.terminationGracePeriodSeconds",
                format!("{s} is negative; must be greater than or equal to 0"),
            );
            DEFAULT_TERMINATION_GRACE
        }
        Some(s) => Duration::from_secs(s as u64),
    };

    let hostname = match &spec.hostname {
        Some(h) => {
            ctx.check("spec.hostname", names::dns1123_label(h));
            h.clone()
        }
        None => {
            // The kubelet's truncation of long pod names.
            let mut h: String = name.chars().take(63).collect();
            while h.ends_with(['-', '.']) {
                h.pop();
            }
            h
        }
    };

    let mut host_aliases = Vec::new();
    for (i, a) in spec.host_aliases.iter().flatten().enumerate() {
        let p = format!("spec.hostAliases[{i}]");
        if !valid_ip(&a.ip) {
            ctx.err(
                format!("{p}.ip"),
                format!("\"{}\" is not a valid IP address", a.ip),
            );
        }
        let hostnames = a.hostnames.clone().unwrap_or_default();
        for (j, h) in hostnames.iter().enumerate() {
            ctx.check(format!("{p}.hostnames[{j}]"), names::dns1123_subdomain(h));
        }
        host_aliases.push((a.ip.clone(), hostnames));
    }

    let dns = dns_plan(spec, ctx);

    let pod_sc = spec.security_context.as_ref();
    let pod_user = ctx.id(
        "spec.securityContext.runAsUser".into(),
        pod_sc.and_then(|s| s.run_as_user),
    );
    let pod_group = ctx.id(
        "spec.securityContext.runAsGroup".into(),
        pod_sc.and_then(|s| s.run_as_group),
    );
    let pod_non_root = pod_sc.and_then(|s| s.run_as_non_root);

    let volumes = volume_plans(spec.volumes.as_deref().unwrap_or_default(), ctx);
    let volume_names: HashSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    let host_network = spec.host_network.unwrap_or(false);

    if spec.containers.is_empty() {
        ctx.err(
            "spec.containers",
            "required; a Pod needs at least one container",
        );
    }
    let mut seen_names: HashMap<String, String> = HashMap::new();
    let defaults = PodDefaults {
        user: pod_user,
        group: pod_group,
        non_root: pod_non_root,
        host_network,
        volume_names: &volume_names,
    };
    let mut build_all = |list: &[Container], field: &str, ctx: &mut Ctx<'_>| {
        let mut host_ports: HashMap<(u16, Protocol, String), String> = HashMap::new();
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                let p = format!("spec.{field}[{i}]");
                if !c.name.is_empty() {
                    if let Some(first) = seen_names.get(&c.name) {
                        ctx.err(
                            format!("{p}.name"),
                            format!(
                                "duplicate name \"{}\" (also {first}); container names must be \
                                 unique across containers and initContainers",
                                c.name
                            ),
                        );
                    } else {
                        seen_names.insert(c.name.clone(), format!("{p}.name"));
                    }
                }
                let plan = container_plan(c, &p, field == "initContainers", &defaults, ctx);
                for (j, port) in plan.ports.iter().enumerate() {
                    if let Some(hp) = port.host_port {
                        let key = (hp, port.protocol, port.host_ip.clone().unwrap_or_default());
                        let here = format!("{p}.ports[{j}].hostPort");
                        if let Some(first) = host_ports.get(&key) {
                            ctx.err(
                                here,
                                format!(
                                    "duplicate host port {hp}/{:?} (also {first}); each host \
                                     port, protocol and host IP may be used once",
                                    port.protocol
                                ),
                            );
                        } else {
                            host_ports.insert(key, here);
                        }
                    }
                }
                plan
            })
            .collect::<Vec<_>>()
    };
    let init_containers = build_all(
        spec.init_containers.as_deref().unwrap_or_default(),
        "initContainers",
        ctx,
    );
    let containers = build_all(&spec.containers, "containers", ctx);

    PodPlan {
        name,
        namespace,
        labels,
        annotations,
        hostname,
        share_process_namespace: spec.share_process_namespace.unwrap_or(false),
        host_network,
        restart_policy,
        termination_grace,
        host_aliases,
        dns,
        volumes,
        init_containers,
        containers,
        config_maps: BTreeMap::new(),
        secrets: BTreeMap::new(),
        warnings: std::mem::take(&mut ctx.warnings),
        owner: Owner {
            kind: "Pod".into(),
            name: meta.name.clone().unwrap_or_default(),
        },
        active_deadline,
        job: None,
        manifest: String::new(),
    }
}

fn dns_plan(spec: &PodSpec, ctx: &mut Ctx<'_>) -> DnsPlan {
    let base = match spec.dns_policy.as_deref() {
        None | Some("ClusterFirst" | "ClusterFirstWithHostNet" | "Default") => DnsBase::Host,
        Some("None") => DnsBase::Empty,
        Some(other) => {
            ctx.one_of(
                "spec.dnsPolicy".into(),
                other,
                &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
            );
            DnsBase::Host
        }
    };
    let cfg = spec.dns_config.as_ref();
    let nameservers = cfg.and_then(|c| c.nameservers.clone()).unwrap_or_default();
    let searches = cfg.and_then(|c| c.searches.clone()).unwrap_or_default();
    if base == DnsBase::Empty && nameservers.is_empty() {
        ctx.err(
            "spec.dnsConfig.nameservers",
            "required when dnsPolicy is None; give at least one nameserver",
        );
    }
    if nameservers.len() > 3 {
        ctx.err(
            "spec.dnsConfig.nameservers",
            format!(
                "{} nameservers; must not have more than 3",
                nameservers.len()
            ),
        );
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if !valid_ip(ns) {
            ctx.err(
                format!("spec.dnsConfig.nameservers[{i}]"),
                format!("\"{ns}\" is not a valid IP address"),
            );
        }
    }
    if searches.len() > 32 {
        ctx.err(
            "spec.dnsConfig.searches",
            format!(
                "{} search domains; must not have more than 32",
                searches.len()
            ),
        );
    }
    for (i, s) in searches.iter().enumerate() {
        let domain = s.strip_suffix('.').unwrap_or(s);
        if s != "." {
            ctx.check(
                format!("spec.dnsConfig.searches[{i}]"),
                names::dns1123_subdomain(domain),
            );
        }
    }
    let mut options = Vec::new();
    for (i, o) in cfg
        .and_then(|c| c.options.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        match o.name.as_deref() {
            Some(n) if !n.is_empty() => options.push((n.to_string(), o.value.clone())),
            _ => ctx.err(
                format!("spec.dnsConfig.options[{i}].name"),
                "required; give the resolver option a name",
            ),
        }
    }
    DnsPlan {
        base,
        nameservers,
        searches,
        options,
    }
}

fn volume_plans(volumes: &[Volume], ctx: &mut Ctx<'_>) -> Vec<VolumePlan> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            ctx.err(format!("{p}.name"), "required; give the volume a name");
        } else {
            ctx.check(format!("{p}.name"), names::dns1123_label(&v.name));
            if let Some(first) = seen.insert(&v.name, i) {
                ctx.err(
                    format!("{p}.name"),
                    format!(
                        "duplicate volume name \"{}\" (also spec.volumes[{first}].name)",
                        v.name
                    ),
                );
            }
        }
        let kind = match (&v.empty_dir, &v.host_path) {
            (Some(_), Some(_)) => {
                ctx.err(
                    format!("{p}.hostPath"),
                    "may not specify more than 1 volume type; keep emptyDir or hostPath",
                );
                continue;
            }
            (Some(e), None) => {
                let memory = match e.medium.as_deref() {
                    None | Some("") => false,
                    Some("Memory") => true,
                    Some(other) => {
                        ctx.one_of(format!("{p}.emptyDir.medium"), other, &["", "Memory"]);
                        false
                    }
                };
                let size_limit_bytes = match &e.size_limit {
                    None => None,
                    Some(q) => match parse_quantity(&q.0) {
                        Ok(b) => Some(b),
                        Err(err) => {
                            ctx.err(format!("{p}.emptyDir.sizeLimit"), err.to_string());
                            None
                        }
                    },
                };
                VolumeKind::EmptyDir {
                    memory,
                    size_limit_bytes,
                }
            }
            (None, Some(h)) => {
                if h.path.is_empty() {
                    ctx.err(format!("{p}.hostPath.path"), "required; give the host path");
                } else if h.path.split('/').any(|c| c == "..") {
                    ctx.err(format!("{p}.hostPath.path"), "must not contain '..'");
                }
                let type_check = match HostPathType::parse(h.type_.as_deref().unwrap_or("")) {
                    Some(t) => t,
                    None => {
                        ctx.one_of(
                            format!("{p}.hostPath.type"),
                            h.type_.as_deref().unwrap_or(""),
                            &[
                                "",
                                "DirectoryOrCreate",
                                "Directory",
                                "FileOrCreate",
                                "File",
                                "Socket",
                                "CharDevice",
                                "BlockDevice",
                            ],
                        );
                        HostPathType::Unset
                    }
                };
                VolumeKind::HostPath {
                    path: h.path.clone(),
                    type_check,
                }
            }
            (None, None) => {
                // Another source (reported as not supported yet), or none at all.
                let only_name = serde_json::to_value(v)
                    .ok()
                    .and_then(|j| j.as_object().map(|o| o.len() <= 1))
                    .unwrap_or(false);
                if only_name {
                    ctx.err(
                        p,
                        "must specify a volume type; minipod supports emptyDir and hostPath",
                    );
                }
                continue;
            }
        };
        out.push(VolumePlan {
            name: v.name.clone(),
            kind,
        });
    }
    out
}

struct PodDefaults<'a> {
    user: Option<u32>,
    group: Option<u32>,
    non_root: Option<bool>,
    host_network: bool,
    volume_names: &'a HashSet<&'a str>,
}

fn container_plan(
    c: &Container,
    p: &str,
    init: bool,
    pod: &PodDefaults<'_>,
    ctx: &mut Ctx<'_>,
) -> ContainerPlan {
    if c.name.is_empty() {
        ctx.err(format!("{p}.name"), "required; give the container a name");
    } else {
        ctx.check(format!("{p}.name"), names::dns1123_label(&c.name));
    }
    let image = c.image.clone().unwrap_or_default();
    if image.trim().is_empty() {
        ctx.err(
            format!("{p}.image"),
            "required; name the image to run, e.g. busybox:1.36",
        );
    } else if image.trim() != image {
        ctx.err(
            format!("{p}.image"),
            "must not have leading or trailing whitespace",
        );
    }
    let pull_policy = match c.image_pull_policy.as_deref() {
        None => default_pull_policy(&image),
        Some("Always") => PullPolicy::Always,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        Some("Never") => PullPolicy::Never,
        Some(other) => {
            ctx.one_of(
                format!("{p}.imagePullPolicy"),
                other,
                &["Always", "IfNotPresent", "Never"],
            );
            default_pull_policy(&image)
        }
    };

    let mut env = Vec::new();
    for (i, e) in c.env.iter().flatten().enumerate() {
        ctx.check(format!("{p}.env[{i}].name"), names::env_var_name(&e.name));
        env.push((e.name.clone(), e.value.clone().unwrap_or_default()));
    }

    let mut ports = Vec::new();
    let mut port_names: HashMap<&str, usize> = HashMap::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{p}.ports[{i}]");
        let in_range = |v: i32| (1..=65535).contains(&v);
        if !in_range(port.container_port) {
            ctx.err(
                format!("{pp}.containerPort"),
                format!(
                    "{} is out of range; must be between 1 and 65535, inclusive",
                    port.container_port
                ),
            );
        }
        let host_port = match port.host_port {
            None | Some(0) => None,
            Some(h) if !in_range(h) => {
                ctx.err(
                    format!("{pp}.hostPort"),
                    format!("{h} is out of range; must be between 1 and 65535, inclusive"),
                );
                None
            }
            Some(h) => {
                if pod.host_network && h != port.container_port {
                    ctx.err(
                        format!("{pp}.hostPort"),
                        "must match containerPort when hostNetwork is true",
                    );
                }
                Some(h as u16)
            }
        };
        let protocol = match port.protocol.as_deref() {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            Some(other) => {
                ctx.one_of(format!("{pp}.protocol"), other, &["TCP", "UDP", "SCTP"]);
                Protocol::Tcp
            }
        };
        // Valid for Kubernetes, but minipod forwards only TCP and UDP: say so
        // here, before any image is pulled or anything of the pod exists.
        if protocol == Protocol::Sctp && host_port.is_some() {
            ctx.err(
                format!("{pp}.protocol"),
                "SCTP with a hostPort is not supported yet by minipod; use TCP or UDP, or drop \
                 the hostPort",
            );
        }
        if let Some(n) = port.name.as_deref().filter(|n| !n.is_empty()) {
            ctx.check(format!("{pp}.name"), names::iana_svc_name(n));
            if let Some(first) = port_names.insert(n, i) {
                ctx.err(
                    format!("{pp}.name"),
                    format!("duplicate port name \"{n}\" (also {p}.ports[{first}].name)"),
                );
            }
        }
        if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty())
            && !valid_ip(ip)
        {
            ctx.err(
                format!("{pp}.hostIP"),
                format!("\"{ip}\" is not a valid IP address"),
            );
        }
        ports.push(PortPlan {
            name: port.name.clone().filter(|n| !n.is_empty()),
            container_port: port.container_port.clamp(0, 65535) as u16,
            host_port,
            host_ip: port.host_ip.clone().filter(|ip| !ip.is_empty()),
            protocol,
        });
    }

    let mut mounts = Vec::new();
    let mut mount_paths: HashMap<&str, usize> = HashMap::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{p}.volumeMounts[{i}]");
        if m.name.is_empty() {
            ctx.err(
                format!("{mp}.name"),
                "required; name a volume of spec.volumes",
            );
        } else if !pod.volume_names.contains(m.name.as_str()) {
            ctx.err(
                format!("{mp}.name"),
                format!(
                    "volume \"{}\" not found; define it in spec.volumes or fix the name",
                    m.name
                ),
            );
        }
        if m.mount_path.is_empty() {
            ctx.err(format!("{mp}.mountPath"), "required; give an absolute path");
        } else if !m.mount_path.starts_with('/') {
            ctx.err(
                format!("{mp}.mountPath"),
                format!("\"{}\" must be an absolute path", m.mount_path),
            );
        } else if let Some(first) = mount_paths.insert(&m.mount_path, i) {
            ctx.err(
                format!("{mp}.mountPath"),
                format!(
                    "\"{}\" must be unique (also {p}.volumeMounts[{first}].mountPath)",
                    m.mount_path
                ),
            );
        }
        let sub_path = m.sub_path.clone().filter(|s| !s.is_empty());
        if let Some(s) = &sub_path {
            if s.starts_with('/') {
                ctx.err(format!("{mp}.subPath"), "must be a relative path");
            } else if s.split('/').any(|c| c == "..") {
                ctx.err(format!("{mp}.subPath"), "must not contain '..'");
            }
        }
        mounts.push(MountPlan {
            volume: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
            sub_path,
        });
    }

    let sc = c.security_context.as_ref();
    let run_as_user = ctx
        .id(
            format!("{p}.securityContext.runAsUser"),
            sc.and_then(|s| s.run_as_user),
        )
        .or(pod.user);
    let run_as_group = ctx
        .id(
            format!("{p}.securityContext.runAsGroup"),
            sc.and_then(|s| s.run_as_group),
        )
        .or(pod.group);
    let run_as_non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod.non_root)
        .unwrap_or(false);

    if let Some(r) = &c.resources {
        for (field, list) in [("limits", &r.limits), ("requests", &r.requests)] {
            for (k, q) in list.iter().flatten() {
                if let Err(e) = parse_quantity(&q.0) {
                    ctx.err(format!("{p}.resources.{field}.{k}"), e.to_string());
                }
            }
        }
        if r.limits.as_ref().is_some_and(|l| !l.is_empty())
            || r.requests.as_ref().is_some_and(|l| !l.is_empty())
        {
            ctx.warnings.push(format!(
                "{p}.resources: requests and limits are not enforced by minipod"
            ));
        }
    }

    let sidecar = match c.restart_policy.as_deref() {
        None => false,
        Some("Always") if init => true,
        Some(other) if init => {
            ctx.one_of(format!("{p}.restartPolicy"), other, &["Always"]);
            false
        }
        // On app containers it is reported as not supported yet.
        Some(_) => false,
    };

    let non_empty = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    ContainerPlan {
        name: c.name.clone(),
        image,
        pull_policy,
        command: non_empty(&c.command),
        args: non_empty(&c.args),
        env,
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        run_as_user,
        run_as_group,
        run_as_non_root,
        ports,
        mounts,
        sidecar,
    }
}
