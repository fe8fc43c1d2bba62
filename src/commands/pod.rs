//! The pod commands: `run` (foreground, `-d` and `-it`), `ps`, `logs`,
//! `exec`, `attach`, `stop`, `rm`, `inspect`, `wait`, `down`. The mechanisms they use (launch,
//! the supervisor, state, logs, the container init) live in `runtime`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};

use super::store_in_userns;
use crate::net::portfwd::{Protocol as NetProtocol, Published};
use crate::paths::Roots;
use crate::runtime::contract::container::ContainerConfig;
use crate::runtime::launch;
use crate::runtime::logs::{self, ReadOptions};
use crate::runtime::prepare;
use crate::runtime::state::{self, ContainerState, Phase, PodPaths, PodState};
use crate::spec::{Manifest, Owner, PodPlan};
use crate::sys::lock::FileLock;
use crate::userns;
use serde::Deserialize;

/// What `run` was asked to do.
pub struct RunOptions {
    /// `-d`: return once every container has started.
    pub detach: bool,
    /// Return when this container exits, with its exit code.
    pub exit_code_from: Option<String>,
    /// `always`, `missing` or `never`: overrides every imagePullPolicy.
    pub pull: Option<String>,
    /// Stop and remove the pods of the same workloads first.
    pub replace: bool,
    /// The first restart delay in seconds.
    pub restart_backoff: f64,
    /// Check and tell, create nothing.
    pub dry_run: bool,
    /// `-d --wait ready`: return once every pod is Ready.
    pub wait_ready: bool,
    /// How long `--wait` waits (`5m` by default).
    pub timeout: Option<String>,
    /// `--configmap` files: ConfigMaps and Secrets only.
    pub configmaps: Vec<String>,
    /// YAML files, or `-` for stdin.
    pub files: Vec<String>,
    /// `--name`: the one Pod's or workload's new `metadata.name`.
    pub name: Option<String>,
    /// `--publish` values, unparsed.
    pub publish: Vec<String>,
    /// `-P`: every declared hostPort gets a free port.
    pub publish_all_random: bool,
    /// `-i`: attach our input to the one container with `stdin`.
    pub interactive: bool,
    /// `-t`: attach to that container (its output only without `-i`).
    pub tty: bool,
    /// `--detach-keys`, podman's format.
    pub detach_keys: String,
    /// `--label KEY[=VALUE]` values, unparsed: added to every pod.
    pub labels: Vec<String>,
}

/// What `logs` was asked to show.
pub struct LogsOptions {
    /// One container; all of them, prefixed, when None.
    pub container: Option<String>,
    /// Keep printing new lines until the pod ends.
    pub follow: bool,
    /// Only the last N lines of each container.
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only lines since a time (RFC 3339) or a duration ago (10s, 5m, 2h).
    pub since: Option<String>,
    /// The pod's events (probe failures) instead of its containers' output.
    pub events: bool,
}

/// What `exec` runs, and how.
pub struct ExecOptions {
    pub container: String,
    pub command: Vec<String>,
    /// Keep stdin open.
    pub interactive: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

/// One input of `run`: its text, the name errors show, and the absolute
/// path recorded in its pods (none for stdin).
struct Input {
    text: String,
    source_name: String,
    path: Option<String>,
}

fn read_input(file: &str) -> Result<Input> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading YAML from stdin")?;
        return Ok(Input {
            text,
            source_name: "<stdin>".into(),
            path: None,
        });
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let path = std::fs::canonicalize(file)
        .with_context(|| format!("resolving {file}"))?
        .to_string_lossy()
        .into_owned();
    Ok(Input {
        text,
        source_name: file.to_string(),
        path: Some(path),
    })
}

/// Reads every file and checks all of them: every error of every file is
/// reported before anything is created. `name` (`run --name`) renames the
/// one Pod or workload of the input; more than one is refused.
fn read_manifest(
    files: &[String],
    name: Option<&str>,
    free_host_ports: bool,
) -> Result<(Manifest, BTreeMap<String, Option<String>>)> {
    if files.iter().filter(|f| *f == "-").count() > 1 {
        bail!("- (stdin) is given twice; give it once");
    }
    if let Some(name) = name
        && let Some(why) = crate::spec::names::dns1123_subdomain(name)
    {
        bail!("--name {name:?}: {why}");
    }
    let mut inputs = Vec::new();
    for file in files {
        inputs.push(read_input(file)?);
    }
    let renamed = match name {
        Some(name) => Some((name, renamed_input(&inputs, name)?)),
        None => None,
    };
    let mut manifest = Manifest::default();
    let mut errors = Vec::new();
    // source name ↦ absolute path, for the records of the pods.
    let mut paths = BTreeMap::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let options = crate::spec::ReadOptions {
            rename: match renamed {
                Some((name, Some(r))) if r == i => Some(name),
                _ => None,
            },
            free_host_ports,
        };
        let parsed = crate::spec::manifest_for_run(&input.text, &input.source_name, options);
        match parsed {
            Ok(m) => {
                if let Err(e) = manifest.merge(m) {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        paths.insert(input.source_name, input.path);
    }
    if errors.is_empty()
        && let Err(e) = manifest.check_runnable()
    {
        errors.push(format!("{}: {e}", files.join(", ")));
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok((manifest, paths))
}

/// `run --name`: which input holds the one Pod or workload it renames
/// (None when none does: `run` then says there is nothing to run). Refused,
/// naming them, when the inputs hold more than one.
fn renamed_input(inputs: &[Input], name: &str) -> Result<Option<usize>> {
    let found: Vec<(usize, String)> = inputs
        .iter()
        .enumerate()
        .flat_map(|(i, input)| {
            crate::spec::named_owners(&input.text)
                .into_iter()
                .map(move |(owner, _)| (i, format!("{owner} ({})", input.source_name)))
        })
        .collect();
    // Documents without a name (generateName) are not in named_owners:
    // count Pod and workload documents by their kind too.
    let documents: usize = inputs
        .iter()
        .map(|i| crate::spec::pod_and_workload_documents(&i.text))
        .sum();
    if documents > 1 || found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
        bail!(
            "--name {name}: it renames one Pod or workload, and this input holds {} ({}); run \
             each file on its own, or split the documents",
            documents.max(found.len()),
            names.join(", ")
        );
    }
    Ok(found.first().map(|(i, _)| *i).or_else(|| {
        inputs
            .iter()
            .position(|i| crate::spec::pod_and_workload_documents(&i.text) == 1)
    }))
}

fn backoff(seconds: f64) -> Result<Duration> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        bail!("--restart-backoff {seconds}: give a number of seconds ≥ 0");
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub fn run(roots: &Roots, args: RunOptions) -> Result<ExitCode> {
    let pull = match args.pull.as_deref() {
        None => None,
        Some("always") => Some(crate::spec::PullPolicy::Always),
        Some("missing") => Some(crate::spec::PullPolicy::IfNotPresent),
        Some("never") => Some(crate::spec::PullPolicy::Never),
        Some(other) => bail!("--pull {other:?}: use always, missing or never"),
    };
    let initial_backoff = backoff(args.restart_backoff)?;
    let interactive = args.interactive || args.tty;
    let detach_keys = crate::runtime::attach::parse_detach_keys(&args.detach_keys)?;
    if interactive && args.detach {
        bail!(
            "-i/-t attach the terminal to a container in the foreground, -d runs in the \
             background; drop one (`minipod attach POD CONTAINER` attaches after run -d)"
        );
    }
    if args.wait_ready && !args.detach {
        bail!("--wait ready is for run -d: in the foreground, run lasts as long as the pods");
    }
    let wait_deadline = match (&args.timeout, args.wait_ready) {
        (Some(t), true) => Some(std::time::Instant::now() + duration("--timeout", t)?),
        (Some(_), false) => bail!("--timeout goes with --wait ready"),
        (None, true) => Some(std::time::Instant::now() + Duration::from_secs(300)),
        (None, false) => None,
    };
    let overrides = crate::net::publish::Overrides {
        publish: args
            .publish
            .iter()
            .map(|p| crate::net::publish::parse(p))
            .collect::<Result<_>>()?,
        all_random: args.publish_all_random,
    };
    for p in &overrides.publish {
        crate::net::publish::check_local(p)?;
    }
    let labels = args
        .labels
        .iter()
        .map(|l| crate::spec::names::label_flag(l).map_err(|e| anyhow!(e)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    // The whole input is checked before anything is created.
    let (mut manifest, sources) =
        read_manifest(&args.files, args.name.as_deref(), args.publish_all_random)?;
    for w in &mut manifest.workloads {
        for pod in &mut w.pods {
            pod.add_labels(&labels);
        }
    }
    // Every ConfigMap and Secret the pods may read, in source order.
    let documents = std::mem::take(&mut manifest.objects);
    let wanted: Vec<_> = manifest
        .pods()
        .flat_map(PodPlan::referenced_objects)
        .collect();
    manifest.objects = super::objects::config_objects(roots, documents, &args.configmaps, &wanted)?;
    // A ConfigMap, Secret or key a pod needs and nobody gives fails the
    // run before anything is pulled or started.
    let mut missing: Vec<String> = Vec::new();
    for pod in manifest.pods() {
        for e in pod.missing_objects(&manifest.objects) {
            let e = format!("{}: {e}", pod.owner);
            if !missing.contains(&e) {
                missing.push(e);
            }
        }
    }
    if !missing.is_empty() {
        bail!("{}", missing.join("\n"));
    }
    let mut shadowed: Vec<String> = Vec::new();
    for pod in manifest.pods() {
        for (kind, name) in pod.referenced_objects() {
            if let Some(w) = manifest.objects.shadow_warning(kind, &pod.namespace, name)
                && !shadowed.contains(&w)
                && !pod.image_pull_secrets.iter().any(|s| s == name)
            {
                shadowed.push(w);
            }
        }
    }
    for w in shadowed.iter().chain(&manifest.warnings) {
        tracing::warn!("{w}");
    }
    for n in &manifest.notes {
        eprintln!("minipod: {n}");
    }
    let pods: Vec<&PodPlan> = manifest.pods().collect();
    if let Some(name) = &args.exit_code_from {
        let [pod] = pods.as_slice() else {
            bail!(
                "--exit-code-from {name}: it needs exactly one pod, and this input runs {}",
                pods.len()
            );
        };
        if !pod.containers.iter().any(|c| &c.name == name) {
            let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
            bail!(
                "--exit-code-from {name}: pod {} has no container {name:?} (containers: {})",
                pod.name,
                names.join(", ")
            );
        }
    }
    // run -it: which container, decided before anything starts.
    let attach_to = match (interactive, pods.as_slice()) {
        (false, _) => None,
        (true, [pod]) => Some(interactive_container(pod)?),
        (true, _) => bail!(
            "-i/-t attach the terminal to one container, and this input runs {} pods; give one \
             pod (or run -d, then `minipod attach POD CONTAINER`)",
            pods.len()
        ),
    };
    if !overrides.publish.is_empty() && pods.len() != 1 {
        bail!(
            "--publish: it publishes ports of one pod, and this input runs {}; give one pod \
             (or -P alone, which frees the hostPorts of every pod)",
            pods.len()
        );
    }
    // Host ports: a clash or a port below the unprivileged start fails here.
    for pod in &pods {
        launch::published(pod, &overrides)?;
    }
    // Images are resolved before anything of the pods is created (and
    // before `--replace` removes the pods they replace): a bad image name
    // or a failed pull leaves the old pods running.
    let mut to_pull = prepare::images_to_pull_for(
        &crate::image::Store::new(roots, true),
        pods.iter().copied(),
        pull,
    )?;
    for w in prepare::add_pull_secrets(&mut to_pull, pods.iter().copied(), &manifest.objects) {
        tracing::warn!("{w}");
    }
    if args.dry_run {
        super::service::dry_run(roots, &manifest);
        return dry_run(roots, &manifest, &to_pull, args.replace);
    }
    if pods.is_empty() {
        if !manifest.services.is_empty() {
            enter_if_holder(roots)?;
            super::service::register(roots, &manifest, &sources)?;
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("minipod: nothing to run");
        return Ok(ExitCode::SUCCESS);
    }
    let existing = existing_pods(roots, &manifest);
    if !args.replace
        && let Some(pod) = existing.first()
    {
        bail!("{}", pod.refusal());
    }
    let store = if args.detach || pods.len() > 1 {
        // Single-threaded until it joined the user namespace: the pulls
        // run in helper processes.
        prepare::pull_images_in_helpers(roots, &to_pull)?;
        store_in_userns(roots)?
    } else {
        // In the foreground, with progress bars (threads).
        let store = store_in_userns(roots)?;
        prepare::pull_images(
            &store,
            &to_pull,
            crate::image::registry::PullOptions {
                progress: true,
                ..Default::default()
            },
        )?;
        store
    };
    if args.replace {
        for pod in &existing {
            remove_pod(roots, &pod.name, true, true)?;
        }
    }
    super::volume::create_claimed(roots, &manifest, &sources)?;
    // Before the pods start: their supervisors keep the endpoints.
    super::service::register(roots, &manifest, &sources)?;
    state::sweep_orphaned_data(roots);
    let options = |source: &str, attached: bool| launch::RunOptions {
        exit_code_from: args.exit_code_from.clone(),
        detached: args.detach,
        attached,
        initial_backoff,
        source: sources.get(source).cloned().flatten(),
        objects: manifest.objects.clone(),
        ports: overrides.clone(),
    };
    // With one pod, `run` (or `run -it`) is its supervisor's parent.
    let single = match pods.len() {
        1 => manifest
            .workloads
            .iter()
            .find_map(|w| Some((w, w.pods.first()?.clone()))),
        _ => None,
    };
    if let Some(container) = attach_to {
        let (w, plan) = single.context("run -i/-t runs one pod")?;
        let mut opts = options(&w.source, false);
        opts.detached = true;
        let attach = crate::runtime::attach::AttachOptions {
            stdin: args.interactive,
            detach_keys,
        };
        return run_interactive(roots, &store, plan, opts, &container, attach);
    }
    if let Some((w, plan)) = single
        && !args.detach
    {
        let opts = options(&w.source, false);
        return launch::run(roots, &store, plan, opts);
    }
    if args.detach {
        let started = start_all(roots, &store, &manifest, |s| options(s, false), None);
        if let Some(e) = started.error {
            // All or nothing: what this run started goes again.
            for (name, _) in started.pods.iter().rev() {
                let _ = remove_pod(roots, name, true, true);
            }
            return Err(e);
        }
        if args.wait_ready {
            // The pods stay for a look when they do not get ready.
            for (name, _) in &started.pods {
                wait_for(roots, name, "ready", wait_deadline)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    run_attached(roots, &store, &manifest, |source| options(source, true))
}

/// What `start_all` started, and why it stopped early.
struct Started {
    /// Each pod's name, and its supervisor when it is attached.
    pods: Vec<(String, Option<std::process::Child>)>,
    error: Option<anyhow::Error>,
    /// A signal came (attached): it was passed on, and nothing more starts.
    interrupted: bool,
}

/// Starts the pods wave after wave (`Manifest::start_waves`): every pod
/// of a wave at once, the next wave once each of them reported its start.
/// Stops at the first failure, or at a signal on `signals`, which is passed
/// on to every supervisor started so far.
fn start_all(
    roots: &Roots,
    store: &crate::image::Store,
    manifest: &Manifest,
    options: impl Fn(&str) -> launch::RunOptions,
    signals: Option<&nix::sys::signalfd::SignalFd>,
) -> Started {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut started = Started {
        pods: Vec::new(),
        error: None,
        interrupted: false,
    };
    for wave in manifest.start_waves() {
        let mut starting = Vec::new();
        for (plan, workload) in wave {
            match launch::spawn(roots, store, plan.clone(), options(&workload.source)) {
                Ok(s) => starting.push(s),
                Err(e) => {
                    started.error = Some(e);
                    break;
                }
            }
        }
        while !starting.is_empty() {
            let mut fds: Vec<PollFd> = starting
                .iter()
                .map(|s| PollFd::new(s.report_fd(), PollFlags::POLLIN))
                .collect();
            if let Some(sigfd) = signals {
                fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    started.error = Some(anyhow!("waiting for pods to start: {e}"));
                    break;
                }
            }
            let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
            drop(fds);
            if let Some(sigfd) = signals
                && ready.last() == Some(&true)
                && let Ok(Some(info)) = sigfd.read_signal()
                && let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
                && signal != Signal::SIGCHLD
            {
                started.interrupted = true;
                let pids = started
                    .pods
                    .iter()
                    .filter_map(|(_, c)| c.as_ref().map(|c| c.id() as i32))
                    .chain(starting.iter().map(|s| s.pid()));
                for pid in pids {
                    crate::sys::proc::signal_pid(pid, signal);
                }
            }
            for i in (0..starting.len()).rev() {
                if ready[i] {
                    let s = starting.remove(i);
                    let name = s.name().to_string();
                    match s.finish() {
                        Ok(child) => started.pods.push((name, child)),
                        Err(e) => {
                            started.error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if started.error.is_some() || started.interrupted {
            break;
        }
    }
    started
}

/// A pod already there that a `run` would start again.
struct Existing {
    name: String,
    owner: Option<Owner>,
    running: bool,
}

impl Existing {
    /// Why `run` refuses to start it again, and what to do.
    fn refusal(&self) -> String {
        let name = &self.name;
        match (&self.owner, self.running) {
            (Some(o), true) if o.kind != "Pod" => format!(
                "{o} is already running (pod {name}); stop it with `minipod down FILE`, or use \
                 `run --replace`"
            ),
            (Some(o), false) if o.kind != "Pod" => format!(
                "{o} has a pod that exited, {name}; remove it with `minipod down FILE`, or use \
                 `run --replace`"
            ),
            (_, true) => format!(
                "pod {name:?} is already running; stop it with `minipod down {name}`, or use \
                 `run --replace`"
            ),
            (_, false) => format!(
                "pod {name:?} exists (exited); remove it with `minipod rm {name}`, or use \
                 `run --replace`"
            ),
        }
    }
}

/// The pods already there (running, or kept after `run -d`) that this
/// input would run again: those of its workloads, found by the workload
/// each pod records, and those with the name of one of its pods.
fn existing_pods(roots: &Roots, manifest: &Manifest) -> Vec<Existing> {
    let names: Vec<&str> = manifest.pods().map(|p| p.name.as_str()).collect();
    // Bare pods are found by their names; only workloads (whose pods have
    // generated names) need every pod's record read.
    let candidates = if manifest.workloads.iter().all(|w| w.owner.kind == "Pod") {
        names.iter().map(|n| n.to_string()).collect()
    } else {
        state::list_pods(roots)
    };
    let mut out = Vec::new();
    for name in candidates {
        let paths = PodPaths::new(roots, &name);
        let st = paths.read_state().ok();
        let owner = st.as_ref().and_then(|s| s.owner.clone());
        let ours = owner.as_ref().is_some_and(|o| {
            manifest
                .workloads
                .iter()
                .any(|w| &w.owner == o && st.as_ref().is_some_and(|s| s.namespace == w.namespace))
        });
        let running = paths.supervisor_alive();
        // Left by a foreground run that was killed: not a pod any more.
        let kept = running || st.as_ref().is_some_and(|s| s.detached);
        if (ours || names.contains(&name.as_str())) && kept {
            out.push(Existing {
                name,
                owner,
                running,
            });
        }
    }
    out
}

/// `run --dry-run`: what would run, from what, with which images; nothing
/// is created.
fn dry_run(
    roots: &Roots,
    manifest: &Manifest,
    to_pull: &[prepare::ToPull],
    replace: bool,
) -> Result<ExitCode> {
    for w in &manifest.workloads {
        let n = w.pods.len();
        println!(
            "{} (namespace {}, from {}): {n} pod{}",
            w.owner,
            w.namespace,
            w.source,
            if n == 1 { "" } else { "s" }
        );
        for p in &w.pods {
            let images: Vec<String> = p
                .init_containers
                .iter()
                .chain(&p.containers)
                .map(|c| format!("{}={}", c.name, c.image))
                .collect();
            println!("  pod {}: {}", p.name, images.join(" "));
            for warning in &p.warnings {
                println!("    warning: {warning}");
            }
        }
    }
    for c in &manifest.claims {
        if !crate::volume::exists(roots, &c.name) {
            println!("would create volume {} ({})", c.name, c.created_by);
        }
    }
    for p in manifest.pods() {
        for v in &p.volumes {
            if let crate::spec::VolumeKind::PersistentVolumeClaim { claim_name, .. } = &v.kind
                && !manifest.claims.iter().any(|c| &c.name == claim_name)
                && !crate::volume::exists(roots, claim_name)
            {
                println!(
                    "would create volume {claim_name} (the claim of pod {}, which no document \
                     names)",
                    p.name
                );
            }
        }
    }
    for p in to_pull {
        let why = if p.present {
            "pull policy Always"
        } else {
            "not in the store"
        };
        println!("would pull {} ({why})", p.reference);
    }
    let existing = existing_pods(roots, manifest);
    if !replace && let Some(pod) = existing.first() {
        // `run` would refuse.
        bail!("{}", pod.refusal());
    }
    for pod in &existing {
        println!("pod {} would be replaced", pod.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// Several pods in the foreground: each supervisor is a child of this
/// process, writing to the terminal; signals are passed on to all; `run`
/// ends when they all have, with the first non-zero code (in the order
/// the pods ended), else 0.
fn run_attached(
    roots: &Roots,
    store: &crate::image::Store,
    manifest: &Manifest,
    options: impl Fn(&str) -> launch::RunOptions,
) -> Result<ExitCode> {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let set = crate::sys::proc::stop_signals_and_sigchld();
    // Blocked before the first child starts: none is lost, and each is
    // read from the signalfd (children unblock them for themselves).
    set.thread_block()?;
    let sigfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
    let started = start_all(roots, store, manifest, options, Some(&sigfd));
    let mut children: Vec<std::process::Child> =
        started.pods.into_iter().filter_map(|(_, c)| c).collect();
    if started.error.is_some() {
        // What started stops again.
        for c in &children {
            crate::sys::proc::signal_pid(c.id() as i32, Signal::SIGTERM);
        }
    }
    let mut codes: Vec<i32> = Vec::new();
    loop {
        // Every wake-up looks at every child: one SIGCHLD may stand for
        // several exits, or have been read while the pods started.
        let mut running = Vec::new();
        for mut child in children {
            match child.try_wait()? {
                Some(status) => codes.push(
                    status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                ),
                None => running.push(child),
            }
        }
        children = running;
        if children.is_empty() {
            break;
        }
        let Some(info) = sigfd.read_signal()? else {
            continue;
        };
        if let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
            && signal != Signal::SIGCHLD
        {
            for c in &children {
                crate::sys::proc::signal_pid(c.id() as i32, signal);
            }
        }
    }
    if let Some(e) = started.error {
        return Err(e);
    }
    let code = codes.into_iter().find(|&c| c != 0).unwrap_or(0);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Asks a running pod's supervisor to stop it, and waits until it has.
fn stop_running(paths: &PodPaths, grace: Duration) -> Result<()> {
    let pending = ask_to_stop(paths, grace)?;
    wait_stopped(pending)
}

/// Asks a running pod's supervisor to stop it; the answer (the socket, or
/// nothing when it was signalled) is for `wait_stopped`. Several pods stop
/// at once by asking each first and waiting after.
/// A pod asked to stop: the supervisor's answer to come, and the pod's lock
/// file as it was when asked (a pod of the same name started meanwhile has
/// another, which `wait_stopped` must not wait for).
struct Asked {
    answer: Option<UnixStream>,
    lock: Option<FileLock>,
}

fn ask_to_stop(paths: &PodPaths, grace: Duration) -> Result<Asked> {
    let lock = FileLock::open_existing(&paths.lock)?;
    let answer = ask_supervisor_to_stop(paths, grace)?;
    Ok(Asked { answer, lock })
}

fn ask_supervisor_to_stop(paths: &PodPaths, grace: Duration) -> Result<Option<UnixStream>> {
    // A pod still starting has its lock (`run` holds it, then hands it to
    // the supervisor) but no control socket yet: wait for the socket, or
    // `wait_stopped` would wait out the whole life of a pod never asked to
    // stop. One shutting down has removed its socket: its lock goes soon.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if !paths.supervisor_alive() {
            return Ok(None);
        }
        match UnixStream::connect(paths.control_socket()) {
            Ok(mut stream) => {
                let ask = format!("stop {}\n", grace.as_secs_f64());
                if stream.write_all(ask.as_bytes()).is_ok() {
                    return Ok(Some(stream));
                }
                // It closed its socket as we asked (EPIPE): it is ending,
                // and the next turn sees its lock go.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                tracing::debug!("control socket: {e}");
                if let Ok(state) = paths.read_state() {
                    crate::sys::proc::signal_pid(
                        state.supervisor_pid,
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                return Ok(None);
            }
        }
    }
}

/// How a running container's processes run (environment, user, working
/// directory), from its supervisor: it is kept nowhere else, as it may
/// carry Secret values.
fn ask_for_process(
    paths: &PodPaths,
    pod: &str,
    container: &str,
) -> Result<crate::runtime::contract::container::Process> {
    let not_running = || anyhow!("container {container} of pod {pod} is not running");
    let mut stream = UnixStream::connect(paths.control_socket()).map_err(|_| not_running())?;
    // A broken pipe or a reset: the supervisor ended as we asked.
    stream
        .write_all(format!("process {container}\n").as_bytes())
        .map_err(|_| not_running())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(|_| not_running())?;
    if let Some(error) = reply.strip_prefix(b"error ") {
        bail!("pod {pod}: {}", String::from_utf8_lossy(error).trim_end());
    }
    serde_json::from_slice(&reply).map_err(|_| not_running())
}

/// Waits until a pod asked to stop has: none of its processes runs.
fn wait_stopped(asked: Asked) -> Result<()> {
    if let Some(mut stream) = asked.answer {
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
    }
    match asked.lock {
        Some(lock) => lock.wait_free(),
        None => Ok(()),
    }
}

/// Once none of a pod's processes runs: its lease (when `locked`, the
/// caller holding the pod's lock) and the host end of its veth go too, so
/// `stop`, `rm` and `down` return with the pod's network released. Joins
/// the holder's user namespace and netns when it lives.
fn release_network(roots: &Roots, name: &str, st: Option<&PodState>, locked: bool) -> Result<()> {
    let ifname = st
        .filter(|s| s.pod_ip.is_some())
        .map(|s| crate::net::pod_network::host_ifname(name, s.supervisor_pid));
    let uplink = match (&ifname, userns::holder::read_live(roots)) {
        (Some(_), Some(_)) => Some(userns::enter(roots)?.pid),
        _ => None,
    };
    crate::net::pod_network::release_leftovers(&roots.run, name, locked, ifname.as_deref(), uplink)
        .with_context(|| format!("releasing pod {name}'s network"))
}

pub fn stop(roots: &Roots, name: &str, time: Option<f64>) -> Result<ExitCode> {
    let paths = PodPaths::new(roots, name);
    if !paths.dir.is_dir() {
        bail!("no pod named {name:?}; `minipod ps -a` lists the pods");
    }
    let before = paths.read_state().ok();
    let grace = match time {
        Some(t) if t.is_finite() && t >= 0.0 => Duration::from_secs_f64(t),
        Some(t) => bail!("-t {t}: give a number of seconds ≥ 0"),
        // A pod still starting, or written by another build, has no state
        // to read its grace period from: Kubernetes' default.
        None => Duration::from_secs(paths.read_state().map_or(30, |s| s.grace_seconds)),
    };
    stop_running(&paths, grace)?;
    // A detached pod's files stay: under its lock, its lease is ours to
    // check too.
    let lock = if paths.dir.exists() {
        FileLock::try_acquire_removable(&paths.lock)?
    } else {
        None
    };
    release_network(roots, name, before.as_ref(), lock.is_some())?;
    drop(lock);
    sync_services(roots)?;
    println!("{name}");
    Ok(ExitCode::SUCCESS)
}

/// Stops (when `force`) and removes a pod. Returns false when there was no
/// such pod and `missing_ok`.
fn remove_pod(roots: &Roots, name: &str, force: bool, missing_ok: bool) -> Result<bool> {
    let paths = PodPaths::new(roots, name);
    if !paths.dir.exists() && !paths.supervisor_alive() {
        if missing_ok {
            return Ok(false);
        }
        bail!("no pod named {name:?}; `minipod ps -a` lists the pods");
    }
    if paths.supervisor_alive() {
        if !force {
            bail!("pod {name} is running; stop it first (`minipod stop {name}`) or use `rm -f`");
        }
        stop_running(&paths, Duration::ZERO)?;
    }
    let Some(lock) = FileLock::try_acquire_removable(&paths.lock)? else {
        bail!("pod {name} was started again meanwhile");
    };
    release_network(roots, name, paths.read_state().ok().as_ref(), true)?;
    if paths.dir.exists() || paths.data_dir.exists() {
        // Writable layers hold files of the user namespace's other ids.
        userns::enter(roots)?;
        paths
            .remove_all()
            .with_context(|| format!("removing pod {name}'s files"))?;
    }
    lock.release_and_remove(&paths.lock);
    sync_services(roots)?;
    Ok(true)
}

/// After a pod went: the Services it served stop sending it traffic (its
/// supervisor does it when it ends normally; not when it was killed).
fn sync_services(roots: &Roots) -> Result<()> {
    if !crate::net::service_table::ServiceTable::path(&roots.run).exists() {
        return Ok(());
    }
    enter_if_holder(roots)?;
    crate::runtime::services::sync(roots, crate::runtime::services::Change::Nothing)?;
    Ok(())
}

/// The Services' rules live in the holder's netns: joining its user
/// namespace lets a sync replace them. No holder: no rules, and none is
/// started for that.
fn enter_if_holder(roots: &Roots) -> Result<()> {
    if userns::holder::read_live(roots).is_some() {
        userns::enter(roots)?;
    }
    Ok(())
}

/// Removes each pod named; as podman does, one that cannot be removed (not
/// there, running without `-f`) is said and the others are still removed,
/// and the exit is 125 when any was not.
pub fn rm(roots: &Roots, pods: &[String], force: bool) -> Result<ExitCode> {
    if let [name] = pods {
        remove_pod(roots, name, force, false)?;
        println!("{name}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut all_removed = true;
    for name in pods {
        match remove_pod(roots, name, force, false) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("Error: {e:#}");
                all_removed = false;
            }
        }
    }
    Ok(if all_removed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_MINIPOD_ERROR)
    })
}

/// `down`: stops and removes the pods of a file (or one pod); with
/// `volumes`, also the volumes the file's claims made.
pub fn down(roots: &Roots, target: &str, volumes: bool) -> Result<ExitCode> {
    let mut claimed = Vec::new();
    let mut services_of: Option<ServicesOf> = None;
    let names = if std::path::Path::new(target).is_file() || target == "-" {
        let input = read_input(target)?;
        if volumes {
            claimed = super::volume::made_by(roots, input.path.as_deref(), &input.text);
        }
        let pods = pods_from(roots, &input);
        services_of = match &input.path {
            Some(path) => Some(ServicesOf::File(path.clone())),
            None => Some(ServicesOf::Stdin(input.text.clone())),
        };
        let has_services = match &input.path {
            Some(p) => super::service::any_from(roots, p),
            None => crate::spec::manifest_from_yaml(&input.text, "<stdin>")
                .is_ok_and(|m| !m.services.is_empty()),
        };
        if pods.is_empty() && claimed.is_empty() && !has_services {
            bail!("no pod started from {target} is there; `minipod ps -a` lists the pods");
        }
        pods
    } else {
        if volumes {
            bail!("--volumes goes with a FILE: it removes the volumes that file's claims made");
        }
        workload_pods(roots, target).unwrap_or_else(|| vec![target.to_string()])
    };
    remove_pods(roots, &names, None, |name| println!("{name}"))?;
    let removed = match services_of {
        Some(ServicesOf::File(file)) if super::service::any_from(roots, &file) => {
            enter_if_holder(roots)?;
            super::service::remove_from(roots, &file)?
        }
        Some(ServicesOf::Stdin(text)) => {
            enter_if_holder(roots)?;
            super::service::remove_named(roots, &text)?
        }
        _ => Vec::new(),
    };
    for name in removed {
        println!("service {name}");
    }
    for name in super::volume::remove(roots, &claimed)? {
        println!("volume {name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Which Services `down` removes: a file's, or those stdin names.
enum ServicesOf {
    File(String),
    Stdin(String),
}

/// `down NAME` where no pod is NAME: the pods of the workload NAME (what
/// `run --name NAME` of a Deployment, Job, … started), if there are any.
fn workload_pods(roots: &Roots, name: &str) -> Option<Vec<String>> {
    if PodPaths::new(roots, name).dir.is_dir() {
        return None;
    }
    let pods: Vec<String> = state::list_pods(roots)
        .into_iter()
        .filter(|pod| {
            PodPaths::new(roots, pod)
                .read_state()
                .is_ok_and(|st| st.owner.is_some_and(|o| o.kind != "Pod" && o.name == name))
        })
        .collect();
    (!pods.is_empty()).then_some(pods)
}

/// Stops and removes pods: every one is asked to stop before any is waited
/// for, so they stop together, each with `grace` or its own grace period.
/// (No threads: removing joins the user namespace, which needs a
/// single-threaded process.) `removed` is told each name.
pub(super) fn remove_pods(
    roots: &Roots,
    names: &[String],
    grace: Option<Duration>,
    mut removed: impl FnMut(&str),
) -> Result<()> {
    let mut pending = Vec::new();
    for name in names {
        let paths = PodPaths::new(roots, name);
        let grace = grace.unwrap_or_else(|| {
            paths.read_state().map_or(Duration::from_secs(30), |s| {
                Duration::from_secs(s.grace_seconds)
            })
        });
        pending.push(ask_to_stop(&paths, grace)?);
    }
    for asked in pending {
        wait_stopped(asked)?;
    }
    for name in names {
        if remove_pod(roots, name, true, names.len() > 1)? {
            removed(name);
        }
    }
    Ok(())
}

/// The pods a `run` of this input started, as their records say: those
/// recorded with its file, or (for stdin) with one of the workloads it
/// names.
fn pods_from(roots: &Roots, input: &Input) -> Vec<String> {
    let owners = crate::spec::named_owners(&input.text);
    state::list_pods(roots)
        .into_iter()
        .filter(|name| {
            let Ok(st) = PodPaths::new(roots, name).read_state() else {
                return false;
            };
            match (&input.path, &st.source) {
                (Some(file), Some(source)) => file == source,
                _ => st
                    .owner
                    .as_ref()
                    .is_some_and(|o| owners.iter().any(|(w, ns)| w == o && *ns == st.namespace)),
            }
        })
        .collect()
}

fn container_summary(c: &state::ContainerStatus) -> String {
    match &c.state {
        ContainerState::Running { .. } => format!("{}:Running", c.name),
        ContainerState::Waiting { reason } => format!("{}:{reason}", c.name),
        // Its pod's processes died unrecorded (`state::settle_ended`).
        ContainerState::Terminated { reason, .. } if reason == "ContainerStatusUnknown" => {
            format!("{}:Unknown", c.name)
        }
        ContainerState::Terminated { exit_code, .. } => format!("{}:Exited({exit_code})", c.name),
    }
}

/// `ps --filter label=KEY[=VALUE]`: the key and the value asked for (any
/// value when None).
fn label_filter(filter: &str) -> Result<(String, Option<String>)> {
    let Some(label) = filter.strip_prefix("label=") else {
        bail!("--filter {filter:?}: minipod filters by label only: label=KEY or label=KEY=VALUE");
    };
    Ok(match label.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (label.to_string(), None),
    })
}

/// Whether a pod's labels pass every `--filter label=…`.
fn labels_match(labels: &BTreeMap<String, String>, filters: &[(String, Option<String>)]) -> bool {
    filters.iter().all(|(k, want)| match (labels.get(k), want) {
        (Some(v), Some(want)) => v == want,
        (Some(_), None) => true,
        (None, _) => false,
    })
}

/// A pod's labels, from the manifest `run` kept (`pod.yaml`: the Pod as
/// its controller made it); none when it cannot be read.
fn pod_labels(paths: &PodPaths) -> BTreeMap<String, String> {
    std::fs::read(paths.pod_yaml())
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v["metadata"]["labels"].clone()).ok())
        .unwrap_or_default()
}

pub fn ps(roots: &Roots, all: bool, format: &str, filters: &[String]) -> Result<ExitCode> {
    let filters = filters
        .iter()
        .map(|f| label_filter(f))
        .collect::<Result<Vec<_>>>()?;
    if let Some(note) = holder_note(roots) {
        eprintln!("{note}");
    }
    let mut rows = Vec::new();
    for name in state::list_pods(roots) {
        let paths = PodPaths::new(roots, &name);
        let labels = pod_labels(&paths);
        if !labels_match(&labels, &filters) {
            continue;
        }
        let st = match paths.read_state() {
            Ok(st) => st,
            Err(e) => {
                // Still starting (no state yet) is not worth a word.
                if let Some(foreign) = e.downcast_ref::<state::ForeignState>() {
                    eprintln!("minipod: pod {name}: {foreign}");
                }
                continue;
            }
        };
        let st = state::observed(&paths, st);
        if !all && !matches!(st.phase, Phase::Running | Phase::Pending) {
            continue;
        }
        let (phase, message) = (st.phase, st.message.clone());
        rows.push((st, phase, message, labels));
    }
    match format {
        "json" => {
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|(st, phase, message, labels)| {
                    serde_json::json!({
                        "name": st.name,
                        "namespace": st.namespace,
                        "workload": st.owner,
                        "source": st.source,
                        "phase": phase,
                        "reason": st.reason,
                        "message": message,
                        "podIP": st.pod_ip,
                        "created": st.created,
                        "exitCode": st.exit_code,
                        "ready": state::is_ready(st, *phase),
                        "initContainers": st.init_containers.iter().map(container_json).collect::<Vec<_>>(),
                        "containers": st.containers.iter().map(container_json).collect::<Vec<_>>(),
                        "labels": labels,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        "table" => {
            let workload_of = |st: &state::PodState| {
                st.owner
                    .as_ref()
                    .filter(|o| o.kind != "Pod")
                    .map_or("-".to_string(), ToString::to_string)
            };
            // Wide enough for the longest name (a Deployment's pods' are
            // long), so the columns stay aligned.
            let pod_width = rows.iter().map(|r| r.0.name.len()).fold(24, usize::max);
            let workload_width = rows
                .iter()
                .map(|r| workload_of(&r.0).len())
                .fold(24, usize::max);
            println!(
                "{:<pod_width$} {:<workload_width$} {:<10} {:<6} {:<9} {:<16} {:<21} CONTAINERS",
                "POD", "WORKLOAD", "STATUS", "READY", "RESTARTS", "IP", "CREATED"
            );
            for (st, phase, message, _) in &rows {
                let restarts: u32 = st
                    .containers
                    .iter()
                    .chain(&st.init_containers)
                    .map(|c| c.restart_count)
                    .sum();
                let containers: Vec<String> = st
                    .init_containers
                    .iter()
                    .chain(&st.containers)
                    .map(container_summary)
                    .collect();
                let status = format!("{phase:?}");
                let workload = workload_of(st);
                // As kubectl counts: app containers and sidecars.
                let counted: Vec<&state::ContainerStatus> = st
                    .init_containers
                    .iter()
                    .filter(|c| c.sidecar)
                    .chain(&st.containers)
                    .collect();
                let ready = format!(
                    "{}/{}",
                    counted.iter().filter(|c| c.ready).count(),
                    counted.len()
                );
                println!(
                    "{:<pod_width$} {:<workload_width$} {:<10} {:<6} {:<9} {:<16} {:<21} {}{}",
                    st.name,
                    workload,
                    status,
                    ready,
                    restarts,
                    st.pod_ip.as_deref().unwrap_or("-"),
                    st.created.replace('T', " ").trim_end_matches('Z'),
                    containers.join(","),
                    message
                        .as_ref()
                        .map(|m| format!("  ({m})"))
                        .unwrap_or_default()
                );
            }
        }
        other => bail!("--format {other:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `ps` says so when the holder has died.
fn holder_note(roots: &Roots) -> Option<String> {
    if !roots.holder_pid().exists() || userns::holder::read_live(roots).is_some() {
        return None;
    }
    Some(
        "note: minipod's user-namespace holder died; the pods that ran with it failed \
         (HolderDied), and the next command starts a new one"
            .into(),
    )
}

fn container_json(c: &state::ContainerStatus) -> serde_json::Value {
    serde_json::json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "state": state_json(&c.state),
        "lastState": c.last_state.as_ref().map(state_json).unwrap_or(serde_json::json!({})),
        "ready": c.ready,
        "started": c.started,
        "restartCount": c.restart_count,
    })
}

fn state_json(s: &ContainerState) -> serde_json::Value {
    match s {
        ContainerState::Waiting { reason } => serde_json::json!({"waiting": {"reason": reason}}),
        ContainerState::Running { started_at } => {
            serde_json::json!({"running": {"startedAt": started_at}})
        }
        ContainerState::Terminated {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => serde_json::json!({"terminated": {
            "exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at
        }}),
    }
}

/// The pod as `kubectl get pod -o json` would show it: its spec as given,
/// and its status.
pub fn inspect(roots: &Roots, name: &str) -> Result<ExitCode> {
    if let Some(service) = name
        .strip_prefix("service/")
        .or_else(|| name.strip_prefix("svc/"))
    {
        return super::service::inspect(roots, service);
    }
    let (paths, st) = state::find_pod(roots, name)?;
    let st = state::observed(&paths, st);
    let (phase, message) = (st.phase, st.message.clone());
    let mut pod = pod_as_run(&paths, &st);
    pod["metadata"]["creationTimestamp"] = serde_json::json!(st.created);
    if !st.uid.is_empty() {
        pod["metadata"]["uid"] = serde_json::json!(st.uid);
    }
    let conditions: Vec<serde_json::Value> = state::conditions(&st, phase)
        .into_iter()
        .map(|(kind, ok)| {
            serde_json::json!({"type": kind, "status": if ok { "True" } else { "False" }})
        })
        .collect();
    pod["events"] = serde_json::to_value(&st.events)?;
    pod["status"] = serde_json::json!({
        "phase": phase,
        "conditions": conditions,
        "reason": st.reason,
        "message": message,
        "podIP": st.pod_ip,
        "podIPs": st.pod_ip.iter().map(|ip| serde_json::json!({"ip": ip})).collect::<Vec<_>>(),
        "startTime": st.started,
        "initContainerStatuses": st.init_containers.iter().map(container_json).collect::<Vec<_>>(),
        "containerStatuses": st.containers.iter().map(container_json).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&pod)?);
    Ok(ExitCode::SUCCESS)
}

/// The Pod a pod runs as, without status: the manifest it was started from
/// (after `run --name` and workload expansion), in its namespace, with the
/// hostPorts it bound (`--publish`, `-P`). `inspect` and `generate kube`
/// show it.
pub(super) fn pod_as_run(paths: &PodPaths, st: &PodState) -> serde_json::Value {
    let yaml = std::fs::read_to_string(paths.pod_yaml()).unwrap_or_default();
    let mut pod = serde_yaml_ng::Deserializer::from_str(&yaml)
        .filter_map(|d| serde_json::Value::deserialize(d).ok())
        .find(|v| v["kind"] == "Pod")
        .unwrap_or_else(|| serde_json::json!({"apiVersion": "v1", "kind": "Pod"}));
    pod["metadata"]["namespace"] = serde_json::json!(st.namespace);
    show_bound_ports(&mut pod, &st.ports);
    pod
}

/// `port POD [CONTAINERPORT[/PROTO]]`: a running pod's published ports as
/// podman's `port` prints them, `80/tcp -> 0.0.0.0:34567`; with a port,
/// only its host addresses (`0.0.0.0:34567`).
pub fn port(roots: &Roots, name: &str, filter: Option<&str>, format: &str) -> Result<ExitCode> {
    if format != "table" && format != "json" {
        bail!("--format {format:?}: use table or json");
    }
    let wanted = filter.map(port_filter).transpose()?;
    let (paths, st) = state::find_pod(roots, name)?;
    if !paths.supervisor_alive() {
        bail!("pod {name} is not running: its ports closed with it");
    }
    let shown: Vec<&Published> = st
        .ports
        .iter()
        .filter(|p| {
            wanted.is_none_or(|(port, proto)| p.container_port == port && p.protocol == proto)
        })
        .collect();
    if let (Some(f), true) = (filter, shown.is_empty()) {
        bail!("pod {name} publishes no port {f} (`minipod port {name}` lists them)");
    }
    if format == "json" {
        let list: Vec<serde_json::Value> = shown
            .iter()
            .map(|p| {
                serde_json::json!({
                    "containerPort": p.container_port,
                    "protocol": p.protocol.name(),
                    "hostIP": p.host_ip.to_string(),
                    "hostPort": p.host_port,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for p in shown {
            match filter {
                Some(_) => println!("{}", host_address(p)),
                None => println!("{}", port_line(p)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The containers' hostPorts as the pod publishes them (`run --publish`
/// and `-P` change them): each port of the spec whose container port and
/// protocol the pod publishes shows the first host address bound for it.
fn show_bound_ports(pod: &mut serde_json::Value, bound: &[Published]) {
    for list in ["initContainers", "containers"] {
        // get_mut, not indexing: `[..]` on a missing key would add a null.
        let Some(containers) = pod
            .get_mut("spec")
            .and_then(|s| s.get_mut(list))
            .and_then(serde_json::Value::as_array_mut)
        else {
            continue;
        };
        for port in containers
            .iter_mut()
            .filter_map(|c| c.get_mut("ports").and_then(serde_json::Value::as_array_mut))
            .flatten()
        {
            let protocol = port["protocol"].as_str().unwrap_or("TCP");
            let found = bound.iter().find(|b| {
                port["containerPort"].as_u64() == Some(u64::from(b.container_port))
                    && b.protocol.name() == protocol
            });
            if let Some(b) = found {
                port["hostPort"] = serde_json::json!(b.host_port);
                if !b.host_ip.is_unspecified() {
                    port["hostIP"] = serde_json::json!(b.host_ip.to_string());
                } else if let Some(map) = port.as_object_mut() {
                    map.remove("hostIP");
                }
            }
        }
    }
}

/// `80`, `80/tcp`, `53/udp` (podman: tcp when no protocol is given).
fn port_filter(text: &str) -> Result<(u16, NetProtocol)> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => NetProtocol::Tcp,
        "udp" => NetProtocol::Udp,
        _ => bail!("{text:?}: give CONTAINERPORT[/tcp|udp], e.g. 80 or 53/udp"),
    };
    match port.parse::<u16>() {
        Ok(n) if n > 0 => Ok((n, proto)),
        _ => bail!("{text:?}: give CONTAINERPORT[/tcp|udp], e.g. 80 or 53/udp"),
    }
}

/// `0.0.0.0:34567`, `[::1]:34567`.
fn host_address(p: &Published) -> String {
    std::net::SocketAddr::new(p.host_ip, p.host_port).to_string()
}

/// `80/tcp -> 0.0.0.0:34567`, as podman's `port` prints a mapping.
fn port_line(p: &Published) -> String {
    format!(
        "{}/{} -> {}",
        p.container_port,
        p.protocol.name().to_ascii_lowercase(),
        host_address(p)
    )
}

pub fn wait(roots: &Roots, name: &str, condition: &str, timeout: Option<&str>) -> Result<ExitCode> {
    if !matches!(condition, "running" | "stopped" | "ready") {
        bail!("--condition {condition:?}: use running, stopped or ready");
    }
    let deadline = timeout
        .map(|t| duration("--timeout", t))
        .transpose()?
        .map(|d| std::time::Instant::now() + d);
    if let Some(code) = wait_for(roots, name, condition, deadline)? {
        println!("{}", code.map_or("-".to_string(), |c| c.to_string()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until the pod reaches `condition`; for `stopped`, returns its
/// exit code. Fails when the pod can no longer get there, or at
/// `deadline`, with the last event that explains why (a failing probe).
fn wait_for(
    roots: &Roots,
    name: &str,
    condition: &str,
    deadline: Option<std::time::Instant>,
) -> Result<Option<Option<i32>>> {
    loop {
        let (paths, st) = state::find_pod(roots, name)?;
        let alive = paths.supervisor_alive();
        let st = state::observed(&paths, st);
        let phase = st.phase;
        let why = || {
            st.events
                .last()
                .map(|e| format!("; last: {}: {}", e.reason, e.message))
                .unwrap_or_default()
        };
        match condition {
            "stopped" if !alive => return Ok(Some(st.exit_code)),
            "running" if alive && st.phase == Phase::Running => return Ok(None),
            "ready" if alive && state::is_ready(&st, phase) => return Ok(None),
            "running" | "ready" if !alive || matches!(phase, Phase::Succeeded | Phase::Failed) => {
                bail!("pod {name} ended before it was {condition}{}", why())
            }
            _ if deadline.is_some_and(|d| std::time::Instant::now() >= d) => {
                bail!("pod {name} is not {condition} yet: timed out{}", why())
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A duration as `wait --timeout` and `run --timeout` take it: `90s`,
/// `5m`, `2h`, or seconds.
fn duration(option: &str, text: &str) -> Result<Duration> {
    let (num, unit) = text.split_at(
        text.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| anyhow!("{option} {text:?}: give a duration like 30s, 5m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("{option} {text:?}: the unit is s, m or h"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `--since`: an RFC 3339 time, or a duration ago like `90s`, `5m`, `2h`.
fn since_time(since: &str) -> Result<String> {
    if since.contains('T') {
        return Ok(since.to_string());
    }
    let t = SystemTime::now() - duration("--since", since)?;
    Ok(crate::sys::time::rfc3339_nanos(t))
}

pub fn logs(roots: &Roots, name: &str, opts: LogsOptions) -> Result<ExitCode> {
    let (paths, st) = state::find_pod(roots, name)?;
    if opts.events {
        for e in &st.events {
            if opts.container.as_ref().is_none_or(|c| *c == e.container) {
                let times = if e.count > 1 {
                    format!(" (x{})", e.count)
                } else {
                    String::new()
                };
                println!(
                    "{} {} {}: {}{times}",
                    e.time, e.container, e.reason, e.message
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let all: Vec<String> = st
        .init_containers
        .iter()
        .chain(&st.containers)
        .map(|c| c.name.clone())
        .collect();
    let chosen: Vec<String> = match opts.container.as_deref() {
        Some(c) if all.iter().any(|n| n == c) => vec![c.to_string()],
        Some(c) => bail!(
            "pod {name} has no container {c:?} (containers: {})",
            all.join(", ")
        ),
        None => all.clone(),
    };
    let width = chosen.iter().map(|c| c.len()).max().unwrap_or(0);
    let prefixed = chosen.len() > 1;
    let read = ReadOptions {
        tail: opts.tail,
        since: opts.since.as_deref().map(since_time).transpose()?,
    };
    let timestamps = opts.timestamps;
    let print = move |c: &str, l: &logs::Line| {
        let mut text = String::new();
        if prefixed {
            text.push_str(&format!("{c:<width$} | "));
        }
        if timestamps {
            text.push_str(&l.time);
            text.push(' ');
        }
        text.push_str(&l.text);
        text.push('\n');
        if l.stream == "stderr" {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    };
    let mut offsets = Vec::new();
    for c in &chosen {
        let path = paths.log(c);
        let start = logs::current_len(&path);
        for l in logs::read_lines(&path, &read)? {
            print(c, &l);
        }
        offsets.push((c.clone(), path, start));
    }
    if opts.follow {
        std::thread::scope(|s| {
            for (c, path, start) in &offsets {
                let paths = &paths;
                s.spawn(move || {
                    let done = || !paths.supervisor_alive();
                    let _ = logs::follow(path, *start, &done, &mut |l| print(c, &l));
                });
            }
        });
    }
    Ok(ExitCode::SUCCESS)
}

pub fn exec(roots: &Roots, name: &str, opts: ExecOptions) -> Result<ExitCode> {
    let container = &opts.container;
    let (paths, st) = state::find_pod(roots, name)?;
    let status = running_container(&paths, &st, name, container)?;
    let mut process = ask_for_process(&paths, name, container)?;
    process.argv = opts.command;
    userns::enter(roots)?;
    let code =
        crate::runtime::container::exec_in(status.pid, &process, opts.interactive, opts.tty)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// A container of a pod that is running now (its main process and rootfs
/// are there): `exec` and `cp` need one.
pub(super) fn running_container<'a>(
    paths: &PodPaths,
    st: &'a PodState,
    name: &str,
    container: &str,
) -> Result<&'a state::ContainerStatus> {
    let status = st
        .init_containers
        .iter()
        .chain(&st.containers)
        .find(|c| c.name == container)
        .ok_or_else(|| anyhow!("pod {name} has no container {container:?}"))?;
    if !status.state.is_running() || status.pid <= 0 || !paths.supervisor_alive() {
        bail!("container {container} of pod {name} is not running");
    }
    Ok(status)
}

/// `__probe-exec`: an exec probe's command in a running container, as
/// `exec` runs one, from its supervisor (already in the user namespace).
pub fn probe_exec(pid: i32, command: Vec<String>) -> Result<ExitCode> {
    let config: ContainerConfig = crate::runtime::contract::read_passed_config("__probe-exec")?;
    let mut process = config.process;
    process.argv = command;
    let code = crate::runtime::container::exec_in(pid, &process, false, false)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

// Interactive containers: `run -it` and `attach`.

/// `run -i/-t`: the one container of the pod with `stdin: true` (init
/// containers included), or why there is not exactly one.
fn interactive_container(pod: &PodPlan) -> Result<String> {
    let with: Vec<&str> = pod
        .init_containers
        .iter()
        .chain(&pod.containers)
        .filter(|c| c.stdin)
        .map(|c| c.name.as_str())
        .collect();
    match with.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!(
            "-i/-t attach the terminal to the pod's container with `stdin: true`, and pod {} has \
             none; give one container `stdin: true` (and `tty: true` for a terminal)",
            pod.name
        ),
        many => bail!(
            "-i/-t attach the terminal to one container, and pod {} has {} with `stdin: true` \
             ({}); keep `stdin: true` on one, or run -d and `minipod attach {} CONTAINER`",
            pod.name,
            many.len(),
            many.join(", "),
            pod.name
        ),
    }
}

/// `run -it`: starts the pod as `-d` does, attaches the terminal to
/// `container`, then: detached, prints the pod's name and leaves it
/// running (as `-d`); else waits for the pod's end as a foreground `run`
/// (signals passed on), removes it and returns its code. Other containers'
/// output goes to their logs only, as podman prints only the attached one.
fn run_interactive(
    roots: &Roots,
    store: &crate::image::Store,
    plan: PodPlan,
    opts: launch::RunOptions,
    container: &str,
    attach: crate::runtime::attach::AttachOptions,
) -> Result<ExitCode> {
    use crate::runtime::attach::AttachEnd;
    let name = plan.name.clone();
    let tty = plan
        .init_containers
        .iter()
        .chain(&plan.containers)
        .any(|c| c.name == container && c.tty);
    let mut supervisor = launch::spawn_interactive(roots, store, plan, opts)?;
    let paths = PodPaths::new(roots, &name);
    if tty && attach.stdin {
        // kubectl's words: the prompt may have come before we attached.
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let end = crate::runtime::attach::attach(&paths, &name, container, &attach);
    let exited = match end {
        Ok(AttachEnd::Detached) => {
            println!("{name}");
            return Ok(ExitCode::SUCCESS);
        }
        Ok(AttachEnd::Exited(_)) => true,
        Ok(AttachEnd::Signalled(sig)) => {
            crate::sys::proc::signal_pid(supervisor.id() as i32, sig);
            false
        }
        // It ended before we attached: its output is in its log.
        Err(e) => {
            tracing::warn!("{e:#}; `minipod logs {name} {container}` shows its output");
            false
        }
    };
    let code = wait_supervisor(&mut supervisor, |waited| {
        if exited && waited {
            eprintln!(
                "minipod: container {container} exited and pod {name} runs on; `minipod attach \
                 {name} {container}` attaches again, Ctrl-C stops the pod"
            );
        }
    })?;
    remove_pod(roots, &name, true, true)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Waits for a pod's supervisor to exit, passing SIGINT, SIGTERM and
/// SIGHUP on to it; `note(true)` is called once when it is still running
/// two seconds on. Returns its exit code.
fn wait_supervisor(child: &mut std::process::Child, mut note: impl FnMut(bool)) -> Result<i32> {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let set = crate::sys::proc::stop_signals_and_sigchld();
    set.thread_block()?;
    let sigfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
    let noted_at = std::time::Instant::now() + Duration::from_secs(2);
    let mut noted = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
        let mut fds = [nix::poll::PollFd::new(
            sigfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(500u16));
        if !noted && std::time::Instant::now() >= noted_at {
            noted = true;
            note(true);
        }
        let ready = fds[0].any().unwrap_or(false);
        if ready
            && let Some(info) = sigfd.read_signal()?
            && let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
            && signal != Signal::SIGCHLD
        {
            crate::sys::proc::signal_pid(child.id() as i32, signal);
        }
    }
}

/// `minipod attach POD CONTAINER`: the container's output live, our input
/// to its stdin (unless `stdin` is false); exits with the container's code
/// when it exits, 0 when detached.
pub fn attach(
    roots: &Roots,
    name: &str,
    container: &str,
    stdin: bool,
    detach_keys: &str,
) -> Result<ExitCode> {
    use crate::runtime::attach::AttachEnd;
    let detach_keys = crate::runtime::attach::parse_detach_keys(detach_keys)?;
    let (paths, st) = state::find_pod(roots, name)?;
    running_container(&paths, &st, name, container)?;
    let opts = crate::runtime::attach::AttachOptions { stdin, detach_keys };
    Ok(
        match crate::runtime::attach::attach(&paths, name, container, &opts)? {
            AttachEnd::Detached => ExitCode::SUCCESS,
            AttachEnd::Exited(code) => ExitCode::from(code.clamp(0, 255) as u8),
            AttachEnd::Signalled(sig) => ExitCode::from(128 + sig as u8),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_filters() {
        let f = |s: &str| label_filter(s).unwrap();
        assert_eq!(f("label=a=b"), ("a".into(), Some("b".into())));
        assert_eq!(f("label=a"), ("a".into(), None));
        assert_eq!(f("label=a="), ("a".into(), Some(String::new())));
        let e = label_filter("name=x").unwrap_err().to_string();
        assert!(e.contains("label=KEY"), "{e}");
        let labels: BTreeMap<String, String> =
            [("a".to_string(), "b".to_string()), ("c".into(), "".into())].into();
        assert!(labels_match(&labels, &[]));
        assert!(labels_match(&labels, &[f("label=a=b"), f("label=c")]));
        assert!(!labels_match(&labels, &[f("label=a=x")]));
        assert!(!labels_match(&labels, &[f("label=a"), f("label=d")]));
    }

    fn mapping(ip: &str, host_port: u16, container_port: u16, udp: bool) -> Published {
        Published {
            host_ip: ip.parse().unwrap(),
            host_port,
            container_port,
            protocol: if udp {
                NetProtocol::Udp
            } else {
                NetProtocol::Tcp
            },
        }
    }

    #[test]
    fn port_prints_as_podman() {
        assert_eq!(
            port_line(&mapping("0.0.0.0", 34567, 80, false)),
            "80/tcp -> 0.0.0.0:34567"
        );
        assert_eq!(
            port_line(&mapping("::1", 34567, 53, true)),
            "53/udp -> [::1]:34567"
        );
        assert_eq!(
            host_address(&mapping("127.0.0.1", 8080, 80, false)),
            "127.0.0.1:8080"
        );
    }

    #[test]
    fn inspect_shows_the_host_ports_as_bound() {
        let mut pod = serde_json::json!({"spec": {"containers": [
            {"name": "web", "ports": [
                {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"},
                {"containerPort": 53, "protocol": "UDP"},
                {"containerPort": 9000}
            ]}
        ]}});
        show_bound_ports(
            &mut pod,
            &[
                mapping("0.0.0.0", 34567, 80, false),
                mapping("127.0.0.1", 34568, 53, true),
            ],
        );
        let ports = &pod["spec"]["containers"][0]["ports"];
        assert_eq!(
            ports[0],
            serde_json::json!({"containerPort": 80, "hostPort": 34567})
        );
        assert_eq!(
            ports[1],
            serde_json::json!({"containerPort": 53, "protocol": "UDP", "hostPort": 34568, "hostIP": "127.0.0.1"})
        );
        assert_eq!(ports[2], serde_json::json!({"containerPort": 9000}));
        // A pod without ports or init containers gets no nulls for them.
        let mut bare = serde_json::json!({"spec": {"containers": [{"name": "c"}]}});
        show_bound_ports(&mut bare, &[mapping("0.0.0.0", 1, 2, false)]);
        assert_eq!(
            bare,
            serde_json::json!({"spec": {"containers": [{"name": "c"}]}})
        );
    }

    #[test]
    fn port_filter_defaults_to_tcp() {
        assert_eq!(port_filter("80").unwrap(), (80, NetProtocol::Tcp));
        assert_eq!(port_filter("53/UDP").unwrap(), (53, NetProtocol::Udp));
        for bad in ["", "0", "http", "80/icmp", "80/tcp/x"] {
            let err = port_filter(bad).unwrap_err().to_string();
            assert!(err.contains("CONTAINERPORT[/tcp|udp]"), "{bad}: {err}");
        }
    }
}

#[cfg(test)]
mod interactive_tests {
    use super::*;

    fn pod(containers: &str) -> PodPlan {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n{containers}"
        );
        let manifest = crate::spec::manifest_from_yaml(&yaml, "p.yaml").unwrap();
        manifest.pods().next().unwrap().clone()
    }

    #[test]
    fn run_it_attaches_the_one_container_with_stdin() {
        let p = pod("  - {name: a, image: i}\n  - {name: b, image: i, stdin: true, tty: true}\n");
        assert_eq!(interactive_container(&p).unwrap(), "b");
    }

    #[test]
    fn run_it_is_refused_without_exactly_one() {
        let none = interactive_container(&pod("  - {name: a, image: i, tty: true}\n"))
            .unwrap_err()
            .to_string();
        assert!(none.contains("pod p has none"), "{none}");
        let two = interactive_container(&pod(
            "  - {name: a, image: i, stdin: true}\n  - {name: b, image: i, stdin: true}\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(two.contains("has 2 with `stdin: true` (a, b)"), "{two}");
    }
}
