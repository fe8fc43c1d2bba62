//! A container's probes (`startupProbe`, `livenessProbe`, `readinessProbe`)
//! into the plan: the API server's defaults (`SetDefaults_Probe`,
//! `SetDefaults_HTTPGetAction`) and checks (`validateProbe` and the
//! handlers' in pkg/apis/core/validation), and the kubelet's lookup of a
//! port given by name. Pure: no I/O.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names;
use super::plan::{Hook, PortPlan, ProbeHandler, ProbePlan, ProbePort, Probes};
use super::validate::{Ctx, PORT_RANGE};

/// The API server's `IsNegativeErrorMsg`.
const NEGATIVE: &str = "must be greater than or equal to 0";

/// Which of a container's three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::Liveness => "livenessProbe",
            Kind::Readiness => "readinessProbe",
            Kind::Startup => "startupProbe",
        }
    }
}

/// The probes of container `c` (at `path`, e.g. `spec.containers[0]`), with
/// the API server's defaults, or the errors it would report in `ctx`. A
/// name in a probe's `port` is looked up in the container's own `ports`
/// (the kubelet's rule); a name none of them has becomes
/// [`ProbePort::Unknown`], accepted as the API server does (the probe then
/// fails when it runs). An init container (`init`) may have probes only
/// when it is a sidecar (`restartPolicy: Always`).
pub fn probes_plan(
    c: &Container,
    ports: &[PortPlan],
    init: bool,
    sidecar: bool,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> Probes {
    let mut probes = Probes::default();
    for (kind, probe) in [
        (Kind::Liveness, &c.liveness_probe),
        (Kind::Readiness, &c.readiness_probe),
        (Kind::Startup, &c.startup_probe),
    ] {
        let Some(probe) = probe else { continue };
        let at = format!("{path}.{}", kind.field());
        if init && !sidecar {
            ctx.err(
                at,
                "Forbidden: may not be set for init containers without restartPolicy=Always",
            );
            continue;
        }
        let plan = probe_plan(probe, kind, ports, &at, ctx);
        match kind {
            Kind::Liveness => probes.liveness = plan,
            Kind::Readiness => probes.readiness = plan,
            Kind::Startup => probes.startup = plan,
        }
    }
    probes
}

/// One probe at `at`: `None` when it has no handler (an error).
fn probe_plan(
    p: &Probe,
    kind: Kind,
    ports: &[PortPlan],
    at: &str,
    ctx: &mut Ctx<'_>,
) -> Option<ProbePlan> {
    let handler = handler(p, ports, at, ctx);
    // Defaulting replaces 0 (or absence) only; what remains must not be
    // negative.
    let mut field = |name: &str, value: Option<i32>, default: i32| -> i32 {
        let v = match value {
            None | Some(0) => default,
            Some(v) => v,
        };
        if v < 0 {
            ctx.invalid_number(format!("{at}.{name}"), v, NEGATIVE);
        }
        v
    };
    let initial_delay = field("initialDelaySeconds", p.initial_delay_seconds, 0);
    let timeout = field("timeoutSeconds", p.timeout_seconds, 1);
    let period = field("periodSeconds", p.period_seconds, 10);
    let success = field("successThreshold", p.success_threshold, 1);
    let failure = field("failureThreshold", p.failure_threshold, 3);
    let grace = p.termination_grace_period_seconds;
    if let Some(s) = grace
        && s <= 0
    {
        ctx.invalid_number(
            format!("{at}.terminationGracePeriodSeconds"),
            s,
            "must be greater than 0",
        );
    }
    if kind == Kind::Readiness {
        if let Some(s) = grace {
            ctx.invalid_number(
                format!("{at}.terminationGracePeriodSeconds"),
                s,
                "must not be set for readinessProbes",
            );
        }
    } else if success != 1 {
        ctx.invalid_number(format!("{at}.successThreshold"), success, "must be 1");
    }
    let secs = |v: i32| Duration::from_secs(v.max(0) as u64);
    Some(ProbePlan {
        handler: handler?,
        initial_delay: secs(initial_delay),
        period: secs(period),
        timeout: secs(timeout),
        success_threshold: success.max(0) as u32,
        failure_threshold: failure.max(0) as u32,
        termination_grace: grace
            .filter(|s| *s > 0 && kind != Kind::Readiness)
            .map(|s| Duration::from_secs(s as u64)),
    })
}

/// Container `c`'s `lifecycle.postStart` and `lifecycle.preStop` (at
/// `path`), with the API server's checks (`validateLifecycle`): one handler
/// of exec, httpGet, tcpSocket and sleep each; not on init containers but
/// sidecars.
pub fn hooks_plan(
    c: &Container,
    ports: &[PortPlan],
    init: bool,
    sidecar: bool,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> (Option<Hook>, Option<Hook>) {
    let Some(lifecycle) = c.lifecycle.as_ref() else {
        return (None, None);
    };
    if init && !sidecar {
        ctx.err(
            format!("{path}.lifecycle"),
            "Forbidden: may not be set for init containers without restartPolicy=Always",
        );
        return (None, None);
    }
    let mut one = |h: &Option<k8s_openapi::api::core::v1::LifecycleHandler>, name: &str| {
        h.as_ref()
            .and_then(|h| hook_plan(h, ports, &format!("{path}.lifecycle.{name}"), ctx))
    };
    let post_start = one(&lifecycle.post_start, "postStart");
    let pre_stop = one(&lifecycle.pre_stop, "preStop");
    (post_start, pre_stop)
}

/// One lifecycle handler (at `at`).
fn hook_plan(
    h: &k8s_openapi::api::core::v1::LifecycleHandler,
    ports: &[PortPlan],
    at: &str,
    ctx: &mut Ctx<'_>,
) -> Option<Hook> {
    let mut one = OneHandler { at, count: 0 };
    let mut chosen = None;
    if let Some(exec) = &h.exec
        && one.take("exec", ctx)
    {
        chosen = Some(Hook::Run(exec_handler(exec, at, ctx)));
    }
    if let Some(http) = &h.http_get
        && one.take("httpGet", ctx)
    {
        chosen = Some(Hook::Run(http_get(
            http,
            ports,
            &format!("{at}.httpGet"),
            ctx,
        )));
    }
    if h.tcp_socket.is_some() && one.take("tcpSocket", ctx) {
        chosen = Some(Hook::TcpSocket);
    }
    if let Some(sleep) = &h.sleep
        && one.take("sleep", ctx)
    {
        if sleep.seconds < 0 {
            ctx.invalid_number(format!("{at}.sleep.seconds"), sleep.seconds, NEGATIVE);
        }
        chosen = Some(Hook::Sleep(
            Duration::from_secs(sleep.seconds.max(0) as u64),
        ));
    }
    one.finish(ctx);
    chosen
}

/// The API server's rule for a probe's or hook's handlers: exactly one.
struct OneHandler<'a> {
    at: &'a str,
    count: usize,
}

impl OneHandler<'_> {
    /// Whether handler `name` is the first one; a later one is an error.
    fn take(&mut self, name: &str, ctx: &mut Ctx<'_>) -> bool {
        self.count += 1;
        if self.count > 1 {
            ctx.err(
                format!("{}.{name}", self.at),
                "Forbidden: may not specify more than 1 handler type",
            );
        }
        self.count == 1
    }

    /// None at all is an error too.
    fn finish(self, ctx: &mut Ctx<'_>) {
        if self.count == 0 {
            ctx.required(self.at, ": must specify a handler type");
        }
    }
}

/// An `exec` handler: its command is required.
fn exec_handler(
    exec: &k8s_openapi::api::core::v1::ExecAction,
    at: &str,
    ctx: &mut Ctx<'_>,
) -> ProbeHandler {
    let command = exec.command.clone().unwrap_or_default();
    if command.is_empty() {
        ctx.required(
            format!("{at}.exec.command"),
            "; give the command to run in the container, e.g. [cat, /tmp/healthy]",
        );
    }
    ProbeHandler::Exec { command }
}

/// The probe's one handler (`validateHandler`: exec, httpGet, tcpSocket,
/// grpc in this order; each after the first is forbidden).
fn handler(p: &Probe, ports: &[PortPlan], at: &str, ctx: &mut Ctx<'_>) -> Option<ProbeHandler> {
    let mut one = OneHandler { at, count: 0 };
    let mut chosen = None;
    if let Some(exec) = &p.exec
        && one.take("exec", ctx)
    {
        chosen = Some(exec_handler(exec, at, ctx));
    }
    if let Some(http) = &p.http_get
        && one.take("httpGet", ctx)
    {
        chosen = Some(http_get(http, ports, &format!("{at}.httpGet"), ctx));
    }
    if let Some(tcp) = &p.tcp_socket
        && one.take("tcpSocket", ctx)
    {
        chosen = Some(ProbeHandler::Tcp {
            host: tcp.host.clone().filter(|h| !h.is_empty()),
            port: probe_port(&tcp.port, format!("{at}.tcpSocket.port"), ports, ctx),
        });
    }
    if let Some(grpc) = &p.grpc
        && one.take("grpc", ctx)
    {
        // A number only (the API's type): no named port.
        if !(1..=65535).contains(&grpc.port) {
            ctx.invalid_number(format!("{at}.grpc.port"), grpc.port, PORT_RANGE);
        }
        chosen = Some(ProbeHandler::Grpc {
            port: grpc.port.clamp(0, 65535) as u16,
            service: grpc.service.clone().unwrap_or_default(),
        });
    }
    one.finish(ctx);
    chosen
}

fn http_get(http: &HTTPGetAction, ports: &[PortPlan], at: &str, ctx: &mut Ctx<'_>) -> ProbeHandler {
    // Defaulted to "/"; the kubelet puts a path without its leading "/"
    // after the host's, and keeps the query.
    let path = match http.path.as_deref().unwrap_or_default() {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    let port = probe_port(&http.port, format!("{at}.port"), ports, ctx);
    // Defaulted to HTTP.
    let scheme = http.scheme.as_deref().filter(|s| !s.is_empty());
    if let Some(scheme) = scheme {
        ctx.one_of(format!("{at}.scheme"), scheme, &["HTTP", "HTTPS"]);
    }
    let mut headers = Vec::new();
    for h in http.http_headers.iter().flatten() {
        ctx.check(
            format!("{at}.httpHeaders"),
            &h.name,
            names::http_header_name(&h.name),
        );
        headers.push((h.name.clone(), h.value.clone()));
    }
    ProbeHandler::Http {
        host: http.host.clone().filter(|h| !h.is_empty()),
        https: scheme == Some("HTTPS"),
        port,
        path,
        headers,
    }
}

/// A probe's `port` (at `at`): a number 1..65535, or an IANA_SVC_NAME that
/// the container's `ports[].name` resolves to its `containerPort`.
fn probe_port(port: &IntOrString, at: String, ports: &[PortPlan], ctx: &mut Ctx<'_>) -> ProbePort {
    match port {
        // k8s-openapi reads an absent port as 0.
        IntOrString::Int(0) if !ctx.pos.has(&at) => {
            ctx.required(
                at,
                "; give the port to probe: a number, or the name of one of the container's ports",
            );
            ProbePort::Number(0)
        }
        IntOrString::Int(n) => {
            if !(1..=65535).contains(n) {
                ctx.invalid_number(at, n, PORT_RANGE);
            }
            ProbePort::Number((*n).clamp(0, 65535) as u16)
        }
        IntOrString::String(name) => {
            ctx.check(at, name, names::iana_svc_name(name));
            match ports.iter().find(|p| p.name.as_deref() == Some(name)) {
                Some(p) => ProbePort::Number(p.container_port),
                None => ProbePort::Unknown(name.clone()),
            }
        }
    }
}
