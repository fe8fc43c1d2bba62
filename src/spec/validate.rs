//! Semantic checks as the API server makes them, for every field minipod
//! reads, and the translation of a valid Pod into a `PodPlan`.

use std::collections::{HashMap, HashSet};
use std::fmt;
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

    /// `Invalid value: "VALUE": why`, as the API server says it.
    pub(super) fn invalid(&mut self, path: impl Into<String>, value: &str, why: &str) {
        self.err(path, names::invalid(value, why));
    }

    /// `Invalid value: 70000: why`: a number is shown unquoted.
    pub(super) fn invalid_number(
        &mut self,
        path: impl Into<String>,
        value: impl fmt::Display,
        why: &str,
    ) {
        self.err(path, format!("Invalid value: {value}: {why}"));
    }

    /// A name or other format check of `names`: `Invalid value` when it fails.
    pub(super) fn check(&mut self, path: impl Into<String>, value: &str, why: Option<String>) {
        if let Some(why) = why {
            self.invalid(path, value, &why);
        }
    }

    /// `Required value`, then `rest`: `: what` and/or `; what to do`.
    pub(super) fn required(&mut self, path: impl Into<String>, rest: &str) {
        self.err(path, format!("Required value{rest}"));
    }

    /// `Duplicate value: "VALUE"`, then `rest`.
    fn duplicate(&mut self, path: impl Into<String>, value: &str, rest: &str) {
        self.err(path, format!("Duplicate value: {value:?}{rest}"));
    }

    /// `Unsupported value: "X": supported values: "A", "B"`, sorted as the
    /// API server lists them.
    pub(super) fn one_of(&mut self, path: String, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.err(path, unsupported(value, allowed));
        }
    }

    /// An IP address field: `Required value` when empty, else a valid IP.
    fn ip(&mut self, path: String, value: &str, what_to_do: &str) {
        if value.is_empty() {
            self.required(path, &format!("; {what_to_do}"));
        } else if !valid_ip(value) {
            self.invalid(path, value, INVALID_IP);
        }
    }

    /// A quantity that does not parse: `Invalid value: "1XB": not a valid quantity …`.
    fn quantity(&mut self, path: String, text: &str) -> Option<u64> {
        match parse_quantity(text) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.to_string();
                let why = message
                    .strip_prefix(&format!("{text:?} is "))
                    .unwrap_or(&message);
                self.invalid(path, text, why);
                None
            }
        }
    }

    /// A uid/gid: 0..=2147483647 as the API server allows.
    fn id(&mut self, path: String, v: Option<i64>) -> Option<u32> {
        let v = v?;
        if !(0..=i64::from(i32::MAX)).contains(&v) {
            self.invalid_number(path, v, "must be between 0 and 2147483647, inclusive");
            return None;
        }
        Some(v as u32)
    }
}

fn valid_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// The API server's explanation for an IP address it refuses.
const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

pub(super) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// `Unsupported value: "X": supported values: "A", "B"`.
fn unsupported(value: &str, allowed: &[&str]) -> String {
    let mut allowed = allowed.to_vec();
    allowed.sort_unstable();
    let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "Unsupported value: {value:?}: supported values: {}",
        quoted.join(", ")
    )
}

/// A protocol as Kubernetes spells it.
fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// A list of strings as the API server shows one in `Invalid value`.
fn quoted_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Validates `pod` and builds its plan; errors go to `ctx`. The plan is only
/// meaningful when `ctx.errors` stays empty.
pub fn build_pod_plan(pod: &Pod, ctx: &mut Ctx<'_>) -> PodPlan {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    if name.is_empty() {
        ctx.required("metadata.name", "; give the pod a name");
    } else {
        ctx.check("metadata.name", &name, names::dns1123_subdomain(&name));
    }
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    ctx.check(
        "metadata.namespace",
        &namespace,
        names::dns1123_label(&namespace),
    );
    let labels = meta.labels.clone().unwrap_or_default();
    for (k, v) in &labels {
        let path = format!("metadata.labels.{k}");
        ctx.check(path.clone(), k, names::qualified_name(k));
        ctx.check(path, v, names::label_value(v));
    }
    let annotations = meta.annotations.clone().unwrap_or_default();
    let mut total = 0;
    for (k, v) in &annotations {
        ctx.check(
            format!("metadata.annotations.{k}"),
            k,
            names::qualified_name(k),
        );
        total += k.len() + v.len();
    }
    if total > 256 * 1024 {
        ctx.err(
            "metadata.annotations",
            "Too long: must have at most 262144 bytes",
        );
    }

    let default_spec = PodSpec::default();
    let spec = match &pod.spec {
        Some(s) => s,
        None => {
            ctx.required("spec", "; a Pod needs a spec with containers");
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
            ctx.invalid_number(
                "spec.terminationGracePeriodSeconds",
                s,
                "must be greater than or equal to 0",
            );
            DEFAULT_TERMINATION_GRACE
        }
        Some(s) => Duration::from_secs(s as u64),
    };

    let subdomain = spec.subdomain.clone().filter(|s| !s.is_empty());
    if let Some(s) = &subdomain {
        ctx.check("spec.subdomain", s, names::dns1123_label(s));
    }
    let hostname = match &spec.hostname {
        Some(h) => {
            ctx.check("spec.hostname", h, names::dns1123_label(h));
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
        ctx.ip(
            format!("{p}.ip"),
            &a.ip,
            "give the IP address the hostnames resolve to",
        );
        let hostnames = a.hostnames.clone().unwrap_or_default();
        for (j, h) in hostnames.iter().enumerate() {
            ctx.check(
                format!("{p}.hostnames[{j}]"),
                h,
                names::dns1123_subdomain(h),
            );
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
    let pod_security = pod_security_plan(pod_sc, spec, ctx);
    host_namespaces(spec, ctx);
    let (supplemental_groups, merge_image_groups) = supplemental_groups(pod_sc, ctx);
    let pod_seccomp = seccomp_choice(
        pod_sc.and_then(|s| s.seccomp_profile.as_ref()),
        "spec.securityContext.seccompProfile",
        ctx,
    );

    let spec_volumes = spec.volumes.as_deref().unwrap_or_default();
    // Every container, for `resourceFieldRef`s naming one.
    let all_containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let volumes = volume_plans(spec_volumes, &all_containers, ctx);
    // Every name spec.volumes defines, of any type: a mount of a volume whose
    // type minipod does not support (reported once, as that) is not also a
    // mount of a volume that is not found.
    let volume_names: HashSet<&str> = spec_volumes
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    let host_network = spec.host_network.unwrap_or(false);

    if spec.containers.is_empty() {
        ctx.required("spec.containers", "; a Pod needs at least one container");
    }
    let mut seen_names: HashMap<String, String> = HashMap::new();
    let defaults = PodDefaults {
        user: pod_user,
        group: pod_group,
        non_root: pod_non_root,
        seccomp: pod_seccomp,
        supplemental_groups,
        merge_image_groups,
        host_users: spec.host_users,
        host_network,
        volume_names: &volume_names,
        containers: &all_containers,
    };
    let mut build_all = |list: &[Container], field: &str, ctx: &mut Ctx<'_>| {
        let mut host_ports: HashMap<(u16, Protocol, String), String> = HashMap::new();
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                let p = format!("spec.{field}[{i}]");
                if !c.name.is_empty() {
                    if let Some(first) = seen_names.get(&c.name) {
                        ctx.duplicate(
                            format!("{p}.name"),
                            &c.name,
                            &format!(
                                " (also {first}); container names must be unique across \
                                 containers and initContainers"
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
                            let ip = port
                                .host_ip
                                .as_deref()
                                .map(|ip| format!("{ip}:"))
                                .unwrap_or_default();
                            ctx.duplicate(
                                here,
                                &format!("{ip}{hp}/{}", protocol_name(port.protocol)),
                                &format!(
                                    " (also {first}); each host port, protocol and host IP may \
                                     be used once"
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
    for (field, list, plans) in [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
            &init_containers,
        ),
        ("containers", &spec.containers[..], &containers),
    ] {
        for (i, (c, plan)) in list.iter().zip(plans).enumerate() {
            let given: Vec<Option<bool>> = c
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.read_only)
                .collect();
            let p = format!("spec.{field}[{i}]");
            super::claims::check_image_mounts(&volumes, &plan.mounts, &given, &p, ctx);
        }
    }

    PodPlan {
        name,
        namespace,
        labels,
        annotations,
        hostname,
        hostname_given: spec.hostname.is_some(),
        subdomain,
        share_process_namespace: spec.share_process_namespace.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        host_network,
        restart_policy,
        termination_grace,
        host_aliases,
        dns,
        service_links: spec.enable_service_links.unwrap_or(true),
        volumes,
        init_containers,
        containers,
        warnings: std::mem::take(&mut ctx.warnings),
        owner: Owner {
            kind: "Pod".into(),
            name: meta.name.clone().unwrap_or_default(),
        },
        active_deadline,
        job: None,
        manifest: String::new(),
        // An empty name names nothing (the API server only warns of it).
        image_pull_secrets: spec
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect(),
        security: pod_security,
        service_account: spec
            .service_account_name
            .clone()
            .or_else(|| spec.service_account.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
    }
}

fn dns_plan(spec: &PodSpec, ctx: &mut Ctx<'_>) -> DnsPlan {
    let base = match spec.dns_policy.as_deref() {
        None | Some("ClusterFirst") => DnsBase::Cluster,
        Some("ClusterFirstWithHostNet") => DnsBase::ClusterWithHostNet,
        Some("Default") => DnsBase::Host,
        Some("None") => DnsBase::Empty,
        Some(other) => {
            ctx.one_of(
                "spec.dnsPolicy".into(),
                other,
                &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
            );
            DnsBase::Cluster
        }
    };
    let cfg = spec.dns_config.as_ref();
    let nameservers = cfg.and_then(|c| c.nameservers.clone()).unwrap_or_default();
    let searches = cfg.and_then(|c| c.searches.clone()).unwrap_or_default();
    if base == DnsBase::Empty && nameservers.is_empty() {
        ctx.required(
            "spec.dnsConfig.nameservers",
            ": must provide at least one DNS nameserver when dnsPolicy is None",
        );
    }
    if nameservers.len() > 3 {
        ctx.err(
            "spec.dnsConfig.nameservers",
            format!(
                "Invalid value: {}: must not have more than 3 nameservers",
                quoted_list(&nameservers)
            ),
        );
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if !valid_ip(ns) {
            ctx.invalid(format!("spec.dnsConfig.nameservers[{i}]"), ns, INVALID_IP);
        }
    }
    if searches.len() > 32 {
        ctx.err(
            "spec.dnsConfig.searches",
            format!(
                "Invalid value: {}: must not have more than 32 search paths",
                quoted_list(&searches)
            ),
        );
    }
    for (i, s) in searches.iter().enumerate() {
        let domain = s.strip_suffix('.').unwrap_or(s);
        if s != "." {
            ctx.check(
                format!("spec.dnsConfig.searches[{i}]"),
                s,
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
            _ => ctx.required(
                format!("spec.dnsConfig.options[{i}].name"),
                "; give the resolver option a name",
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

fn volume_plans(
    volumes: &[Volume],
    containers: &[&Container],
    ctx: &mut Ctx<'_>,
) -> Vec<VolumePlan> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            ctx.required(format!("{p}.name"), "; give the volume a name");
        } else {
            ctx.check(format!("{p}.name"), &v.name, names::dns1123_label(&v.name));
            if let Some(first) = seen.insert(&v.name, i) {
                ctx.duplicate(
                    format!("{p}.name"),
                    &v.name,
                    &format!(" (also spec.volumes[{first}].name); give each volume its own name"),
                );
            }
        }
        if let Some(config) = super::config::volume_kind(ctx, &p, v, containers) {
            if let super::config::VolumeKindConfig::Valid(c) = config {
                out.push(VolumePlan {
                    name: v.name.clone(),
                    kind: VolumeKind::Config(c),
                });
            }
            continue;
        }
        if let Some(kind) = super::claims::storage_volume(v, &p, ctx) {
            out.extend(kind.map(|kind| VolumePlan {
                name: v.name.clone(),
                kind,
            }));
            continue;
        }
        let kind = match (&v.empty_dir, &v.host_path) {
            (Some(_), Some(_)) => {
                ctx.err(
                    format!("{p}.hostPath"),
                    "Forbidden: may not specify more than 1 volume type; keep emptyDir or hostPath",
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
                let size_limit_bytes = e
                    .size_limit
                    .as_ref()
                    .and_then(|q| ctx.quantity(format!("{p}.emptyDir.sizeLimit"), &q.0));
                VolumeKind::EmptyDir {
                    memory,
                    size_limit_bytes,
                }
            }
            (None, Some(h)) => {
                if h.path.is_empty() {
                    ctx.required(format!("{p}.hostPath.path"), "; give the host path");
                } else if h.path.split('/').any(|c| c == "..") {
                    ctx.invalid(
                        format!("{p}.hostPath.path"),
                        &h.path,
                        "must not contain '..'",
                    );
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
                    ctx.required(
                        p,
                        ": must specify a volume type; minipod supports emptyDir, hostPath, configMap, \
                         secret, downwardAPI and projected",
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
    /// `spec.securityContext.seccompProfile`, when given.
    seccomp: Option<super::security::Seccomp>,
    /// fsGroup, then supplementalGroups.
    supplemental_groups: Vec<u32>,
    /// `supplementalGroupsPolicy: Merge` (the default): also the groups
    /// the image's /etc/group gives the user.
    merge_image_groups: bool,
    /// `spec.hostUsers`.
    host_users: Option<bool>,
    host_network: bool,
    volume_names: &'a HashSet<&'a str>,
    containers: &'a [&'a Container],
}

fn container_plan(
    c: &Container,
    p: &str,
    init: bool,
    pod: &PodDefaults<'_>,
    ctx: &mut Ctx<'_>,
) -> ContainerPlan {
    if c.name.is_empty() {
        ctx.required(format!("{p}.name"), "; give the container a name");
    } else {
        ctx.check(format!("{p}.name"), &c.name, names::dns1123_label(&c.name));
    }
    let image = c.image.clone().unwrap_or_default();
    if image.trim().is_empty() {
        ctx.required(
            format!("{p}.image"),
            "; name the image to run, e.g. busybox:1.36",
        );
    } else if image.trim() != image {
        ctx.invalid(
            format!("{p}.image"),
            &image,
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

    let (env, env_from) = super::config::container_env(ctx, p, c, pod.containers);

    let mut ports = Vec::new();
    let mut port_names: HashMap<&str, usize> = HashMap::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{p}.ports[{i}]");
        let in_range = |v: i32| (1..=65535).contains(&v);
        if port.container_port == 0 {
            // Absent (k8s-openapi reads it as 0): the API server's check.
            ctx.required(
                format!("{pp}.containerPort"),
                "; give the port the container listens on",
            );
        } else if !in_range(port.container_port) {
            ctx.invalid_number(
                format!("{pp}.containerPort"),
                port.container_port,
                PORT_RANGE,
            );
        }
        let host_port = match port.host_port {
            None | Some(0) => None,
            Some(h) if !in_range(h) => {
                ctx.invalid_number(format!("{pp}.hostPort"), h, PORT_RANGE);
                None
            }
            Some(h) => {
                if pod.host_network && h != port.container_port {
                    ctx.invalid_number(
                        format!("{pp}.hostPort"),
                        h,
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
            ctx.check(format!("{pp}.name"), n, names::iana_svc_name(n));
            if let Some(first) = port_names.insert(n, i) {
                ctx.duplicate(
                    format!("{pp}.name"),
                    n,
                    &format!(" (also {p}.ports[{first}].name); give each port its own name"),
                );
            }
        }
        if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty())
            && !valid_ip(ip)
        {
            ctx.invalid(format!("{pp}.hostIP"), ip, INVALID_IP);
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
            ctx.required(format!("{mp}.name"), "; name a volume of spec.volumes");
        } else if !pod.volume_names.contains(m.name.as_str()) {
            // Any volume defined in spec.volumes counts, whatever its type:
            // one of a type minipod does not support is reported as that.
            ctx.err(
                format!("{mp}.name"),
                format!(
                    "Not found: {:?}; define it in spec.volumes or fix the name",
                    m.name
                ),
            );
        }
        if m.mount_path.is_empty() {
            ctx.required(format!("{mp}.mountPath"), "; give an absolute path");
        } else if !m.mount_path.starts_with('/') {
            ctx.invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be an absolute path",
            );
        } else if let Some(first) = mount_paths.insert(&m.mount_path, i) {
            ctx.invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                &format!("must be unique (also {p}.volumeMounts[{first}].mountPath)"),
            );
        }
        let sub_path = m.sub_path.clone().filter(|s| !s.is_empty());
        if let Some(s) = &sub_path {
            if s.starts_with('/') {
                ctx.invalid(format!("{mp}.subPath"), s, "must be a relative path");
            } else if s.split('/').any(|c| c == "..") {
                ctx.invalid(format!("{mp}.subPath"), s, "must not contain '..'");
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
    let mut security = security_plan(sc, &format!("{p}.securityContext"), run_as_user, ctx);
    security.proc_unmasked =
        proc_unmasked(sc, pod.host_users, &format!("{p}.securityContext"), ctx);
    let own_seccomp = seccomp_choice(
        sc.and_then(|s| s.seccomp_profile.as_ref()),
        &format!("{p}.securityContext.seccompProfile"),
        ctx,
    );
    // A privileged container runs with no filter, as containerd runs it.
    if !security.privileged {
        security.seccomp = own_seccomp
            .or_else(|| pod.seccomp.clone())
            .unwrap_or_default();
    }

    if let Some(r) = &c.resources {
        for (field, list) in [("limits", &r.limits), ("requests", &r.requests)] {
            for (k, q) in list.iter().flatten() {
                ctx.quantity(format!("{p}.resources.{field}.{k}"), &q.0);
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

    let probes = super::probes::probes_plan(c, &ports, init, sidecar, p, ctx);
    let (post_start, pre_stop) = super::probes::hooks_plan(c, &ports, init, sidecar, p, ctx);

    let non_empty = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    ContainerPlan {
        name: c.name.clone(),
        image,
        pull_policy,
        command: non_empty(&c.command),
        args: non_empty(&c.args),
        env,
        env_from,
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        run_as_user,
        run_as_group,
        run_as_non_root,
        supplemental_groups: pod.supplemental_groups.clone(),
        merge_image_groups: pod.merge_image_groups,
        security,
        ports,
        mounts,
        sidecar,
        probes,
        post_start,
        pre_stop,
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
    }
}

/// What a container's securityContext asks of the runtime, checked as the
/// API server checks it (capability names as containerd would refuse them).
fn security_plan(
    sc: Option<&k8s_openapi::api::core::v1::SecurityContext>,
    path: &str,
    run_as_user: Option<u32>,
    ctx: &mut Ctx,
) -> super::security::SecurityPlan {
    use super::security::{SecurityPlan, capability_number, capability_set, no_new_privs};
    let Some(sc) = sc else {
        return SecurityPlan::default();
    };
    let unconfined = super::security::Seccomp::Unconfined;
    let caps = sc.capabilities.as_ref();
    let add = caps.and_then(|c| c.add.clone()).unwrap_or_default();
    let drop = caps.and_then(|c| c.drop.clone()).unwrap_or_default();
    for (field, list) in [("add", &add), ("drop", &drop)] {
        for (i, name) in list.iter().enumerate() {
            if !name.eq_ignore_ascii_case("ALL") && capability_number(name).is_none() {
                ctx.err(
                    format!("{path}.capabilities.{field}[{i}]"),
                    format!(
                        "Unsupported value: {name:?}: not a Linux capability; use a name such as \
                         NET_ADMIN or CAP_NET_ADMIN (`man 7 capabilities`), or ALL"
                    ),
                );
            }
        }
    }
    let privileged = sc.privileged.unwrap_or(false);
    let capabilities = match privileged {
        true => super::security::ALL_CAPABILITIES,
        false => capability_set(&add, &drop),
    };
    // The API server's two checks of allowPrivilegeEscalation.
    if sc.allow_privilege_escalation == Some(false) {
        if privileged {
            ctx.invalid(
                path.to_string(),
                "",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        if add.iter().any(|c| c == "CAP_SYS_ADMIN") {
            ctx.invalid(
                path.to_string(),
                "",
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
    if !add.is_empty() && run_as_user.is_some_and(|u| u != 0) {
        ctx.warnings.push(format!(
            "{path}.capabilities.add: the container runs as uid {}, and a non-root process gets \
             no effective capabilities from it (the ambient set stays empty, as on Kubernetes); \
             only its bounding set grows",
            run_as_user.unwrap_or_default()
        ));
    }
    SecurityPlan {
        capabilities,
        no_new_privs: no_new_privs(sc.allow_privilege_escalation, privileged, capabilities),
        read_only_root: sc.read_only_root_filesystem.unwrap_or(false),
        privileged,
        seccomp: match privileged {
            true => unconfined,
            false => Default::default(),
        },
        proc_unmasked: false,
    }
}

/// A `seccompProfile`, checked as the API server checks it.
fn seccomp_choice(
    profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
    path: &str,
    ctx: &mut Ctx,
) -> Option<super::security::Seccomp> {
    use super::security::Seccomp;
    let profile = profile?;
    let localhost = profile.localhost_profile.as_deref();
    let choice = match profile.type_.as_str() {
        "RuntimeDefault" => Seccomp::RuntimeDefault,
        "Unconfined" => Seccomp::Unconfined,
        "Localhost" => match localhost {
            None | Some("") => {
                ctx.required(
                    format!("{path}.localhostProfile"),
                    ": must be set when seccomp type is Localhost; name a profile file under \
                     minipod's seccomp folder (see README)",
                );
                return None;
            }
            Some(file) if file.starts_with('/') => {
                ctx.invalid(
                    format!("{path}.localhostProfile"),
                    file,
                    "must be a relative path",
                );
                return None;
            }
            Some(file) if file.split('/').any(|c| c == "..") => {
                ctx.invalid(
                    format!("{path}.localhostProfile"),
                    file,
                    "must not contain '..'",
                );
                return None;
            }
            Some(file) => Seccomp::Localhost(file.to_string()),
        },
        other => {
            ctx.one_of(
                format!("{path}.type"),
                other,
                &["Localhost", "RuntimeDefault", "Unconfined"],
            );
            return None;
        }
    };
    if profile.type_ != "Localhost" && localhost.is_some() {
        ctx.err(
            format!("{path}.localhostProfile"),
            "Invalid value: can only be set when seccomp type is Localhost",
        );
    }
    Some(choice)
}

/// fsGroup and supplementalGroups (every container's supplementary
/// groups, in that order) and whether the image's groups are merged in.
fn supplemental_groups(
    sc: Option<&k8s_openapi::api::core::v1::PodSecurityContext>,
    ctx: &mut Ctx,
) -> (Vec<u32>, bool) {
    let Some(sc) = sc else {
        return (Vec::new(), true);
    };
    let mut groups = Vec::new();
    if let Some(g) = ctx.id("spec.securityContext.fsGroup".into(), sc.fs_group) {
        groups.push(g);
    }
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        if let Some(g) = ctx.id(
            format!("spec.securityContext.supplementalGroups[{i}]"),
            Some(*g),
        ) && !groups.contains(&g)
        {
            groups.push(g);
        }
    }
    let merge = match sc.supplemental_groups_policy.as_deref() {
        None | Some("Merge") => true,
        Some("Strict") => false,
        Some(other) => {
            ctx.one_of(
                "spec.securityContext.supplementalGroupsPolicy".into(),
                other,
                &["Merge", "Strict"],
            );
            true
        }
    };
    (groups, merge)
}

/// fsGroup's volume ownership and the sysctls, checked as the API server
/// and kubelet check them.
fn pod_security_plan(
    sc: Option<&k8s_openapi::api::core::v1::PodSecurityContext>,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    ctx: &mut Ctx,
) -> super::security::PodSecurityPlan {
    use super::security::{
        FsGroupChangePolicy, PodSecurityPlan, SysctlClass, sysctl_class, sysctl_path,
    };
    let Some(sc) = sc else {
        return PodSecurityPlan::default();
    };
    let fs_group = ctx.id("spec.securityContext.fsGroup".into(), sc.fs_group);
    let fs_group_change_policy = match sc.fs_group_change_policy.as_deref() {
        None | Some("Always") => FsGroupChangePolicy::Always,
        Some("OnRootMismatch") => FsGroupChangePolicy::OnRootMismatch,
        Some(other) => {
            ctx.one_of(
                "spec.securityContext.fsGroupChangePolicy".into(),
                other,
                &["Always", "OnRootMismatch"],
            );
            FsGroupChangePolicy::Always
        }
    };
    let mut sysctls: Vec<(String, String)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, s) in sc.sysctls.iter().flatten().enumerate() {
        let path = format!("spec.securityContext.sysctls[{i}]");
        if s.name.is_empty() {
            ctx.required(format!("{path}.name"), "");
            continue;
        }
        if !valid_sysctl_name(&s.name) {
            ctx.invalid(
                format!("{path}.name"),
                &s.name,
                "must have at most 253 characters and match regex \
                 ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            );
            continue;
        }
        let key = super::security::sysctl_dotted(&s.name);
        if let Some(first) = seen.insert(key, i) {
            ctx.duplicate(
                format!("{path}.name"),
                &s.name,
                &format!(" (also spec.securityContext.sysctls[{first}])"),
            );
            continue;
        }
        match sysctl_class(&s.name) {
            SysctlClass::Safe => {}
            SysctlClass::Host => {
                ctx.err(
                    format!("{path}.name"),
                    format!(
                        "Forbidden: {:?} is not a namespaced sysctl: setting it would change \
                         the whole machine, which a pod may not; set it on the host with \
                         `sysctl -w` if you must",
                        s.name
                    ),
                );
                continue;
            }
            class => {
                let (host_ns, field) = match class {
                    SysctlClass::Net => (spec.host_network.unwrap_or(false), "hostNetwork"),
                    _ => (spec.host_ipc.unwrap_or(false), "hostIPC"),
                };
                if host_ns {
                    ctx.err(
                        format!("{path}.name"),
                        format!(
                            "Forbidden: sysctl {:?} is not allowed with {field}: true (it \
                             would change the host's namespace, as kubelet refuses)",
                            s.name
                        ),
                    );
                    continue;
                }
                ctx.warnings.push(format!(
                    "{path}: {:?} is not in Kubernetes' safe set: a cluster allows it only when \
                     kubelet runs with --allowed-unsafe-sysctls; minipod sets it in the pod's \
                     own namespace",
                    s.name
                ));
            }
        }
        sysctls.push((sysctl_path(&s.name), s.value.clone()));
    }
    PodSecurityPlan {
        fs_group,
        fs_group_change_policy,
        sysctls,
    }
}

/// The API server's sysctl name format.
fn valid_sysctl_name(name: &str) -> bool {
    let segment = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .last()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment)
}

/// hostPID, hostIPC and hostUsers, checked as the API server checks them.
fn host_namespaces(spec: &k8s_openapi::api::core::v1::PodSpec, ctx: &mut Ctx) {
    if spec.host_pid == Some(true) && spec.share_process_namespace == Some(true) {
        ctx.err(
            "spec.shareProcessNamespace",
            "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
        );
    }
    if spec.host_pid == Some(true) {
        ctx.warnings.push(
            "spec.hostPID: the containers share the host's PID namespace: a process a container \
             leaves running in the background is no longer ended with the pod by its PID \
             namespace (minipod still kills each container's process group)"
                .into(),
        );
    }
    if spec.host_users == Some(true) {
        ctx.warnings.push(
            "spec.hostUsers: true: minipod is rootless and always runs a pod in its user \
             namespace, as hostUsers: false does"
                .into(),
        );
    }
}

/// `procMount`: Default, or Unmasked, which the API server allows only
/// with `hostUsers: false`.
fn proc_unmasked(
    sc: Option<&k8s_openapi::api::core::v1::SecurityContext>,
    host_users: Option<bool>,
    path: &str,
    ctx: &mut Ctx,
) -> bool {
    match sc.and_then(|s| s.proc_mount.as_deref()) {
        None | Some("Default") => false,
        Some("Unmasked") => {
            if host_users != Some(false) {
                ctx.err(
                    format!("{path}.procMount"),
                    "Forbidden: `hostUsers` must be false to use `Unmasked`",
                );
            }
            true
        }
        Some(other) => {
            ctx.one_of(format!("{path}.procMount"), other, &["Default", "Unmasked"]);
            false
        }
    }
}
