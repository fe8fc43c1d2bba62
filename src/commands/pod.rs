//! The pod commands: `run` (foreground and `-d`), `ps`, `logs`, `exec`,
//! `stop`, `rm`, `inspect`, `wait`, `down`. The mechanisms they use (launch,
//! the supervisor, state, logs, the container init) live in `runtime`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};

use super::store_in_userns;
use crate::paths::Roots;
use crate::runtime::contract::container::ContainerConfig;
use crate::runtime::launch;
use crate::runtime::logs::{self, ReadOptions};
use crate::runtime::prepare;
use crate::runtime::state::{self, ContainerState, Phase, PodPaths};
use crate::spec::PodPlan;
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
    /// Stop and remove a pod of the same name first.
    pub replace: bool,
    /// The first restart delay in seconds.
    pub restart_backoff: f64,
    /// The pod YAML file, or `-` for stdin.
    pub file: String,
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

/// Reads the pod YAML (`-` is stdin) and checks all of it.
fn read_plan(file: &str) -> Result<(PodPlan, String)> {
    let (text, source_name) = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the pod YAML from stdin")?;
        (text, "<stdin>".to_string())
    } else {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        (text, file.to_string())
    };
    let plan = crate::spec::plan_from_yaml(&text, &source_name).map_err(|e| anyhow!("{e}"))?;
    Ok((plan, text))
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
    // The whole input is checked before anything is created.
    let (plan, text) = read_plan(&args.file)?;
    if !args.replace {
        refuse_existing(roots, &plan.name)?;
    }
    // Images are resolved and pulled before anything of the pod is created,
    // and before `--replace` removes the pod it replaces: a bad image name or
    // a failed pull leaves the old pod running.
    let to_pull = prepare::images_to_pull(&crate::image::Store::new(roots, true), &plan, pull)?;
    let store = if args.detach {
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
        remove_pod(roots, &plan.name, true, true)?;
    }
    launch::run(
        roots,
        &store,
        plan,
        launch::RunOptions {
            exit_code_from: args.exit_code_from,
            detached: args.detach,
            initial_backoff,
            yaml: text,
        },
    )
}

fn refuse_existing(roots: &Roots, name: &str) -> Result<()> {
    let paths = PodPaths::new(roots, name);
    if paths.supervisor_alive() {
        bail!(
            "pod {name:?} is already running; stop it with `minipod down {name}`, or use `run --replace`"
        );
    }
    if let Ok(state) = paths.read_state()
        && state.detached
    {
        bail!(
            "pod {name:?} exists (exited); remove it with `minipod rm {name}`, or use `run --replace`"
        );
    }
    Ok(())
}

/// Asks a running pod's supervisor to stop it, and waits until it has.
fn stop_running(paths: &PodPaths, grace: Duration) -> Result<()> {
    if !paths.supervisor_alive() {
        return Ok(());
    }
    match UnixStream::connect(paths.control_socket()) {
        Ok(mut stream) => {
            stream.write_all(format!("stop {}\n", grace.as_secs_f64()).as_bytes())?;
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
        }
        Err(e) => {
            // Still starting (no socket yet), or shutting down.
            tracing::debug!("control socket: {e}");
            if let Ok(state) = paths.read_state() {
                crate::sys::proc::signal_pid(
                    state.supervisor_pid,
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
    FileLock::wait_released(&paths.lock)
}

pub fn stop(roots: &Roots, name: &str, time: Option<f64>) -> Result<ExitCode> {
    let paths = PodPaths::new(roots, name);
    if !paths.dir.is_dir() {
        bail!("no pod named {name:?}; `minipod ps -a` lists the pods");
    }
    let grace = match time {
        Some(t) if t.is_finite() && t >= 0.0 => Duration::from_secs_f64(t),
        Some(t) => bail!("-t {t}: give a number of seconds ≥ 0"),
        // A pod still starting, or written by another build, has no state
        // to read its grace period from: Kubernetes' default.
        None => Duration::from_secs(paths.read_state().map_or(30, |s| s.grace_seconds)),
    };
    stop_running(&paths, grace)?;
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
    if paths.dir.exists() {
        // Writable layers hold files of the user namespace's other ids.
        userns::enter(roots)?;
        std::fs::remove_dir_all(&paths.dir)
            .with_context(|| format!("removing {}", paths.dir.display()))?;
    }
    lock.release_and_remove(&paths.lock);
    Ok(true)
}

pub fn rm(roots: &Roots, pods: &[String], force: bool) -> Result<ExitCode> {
    for name in pods {
        remove_pod(roots, name, force, false)?;
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn down(roots: &Roots, target: &str) -> Result<ExitCode> {
    let name = if std::path::Path::new(target).is_file() || target == "-" {
        read_plan(target)?.0.name
    } else {
        target.to_string()
    };
    let paths = PodPaths::new(roots, &name);
    let grace = paths
        .read_state()
        .map(|s| Duration::from_secs(s.grace_seconds))
        .unwrap_or(Duration::from_secs(30));
    stop_running(&paths, grace)?;
    remove_pod(roots, &name, true, false)?;
    println!("{name}");
    Ok(ExitCode::SUCCESS)
}

fn container_summary(c: &state::ContainerStatus) -> String {
    match &c.state {
        ContainerState::Running { .. } => format!("{}:Running", c.name),
        ContainerState::Waiting { reason } => format!("{}:{reason}", c.name),
        ContainerState::Terminated { exit_code, .. } => format!("{}:Exited({exit_code})", c.name),
    }
}

pub fn ps(roots: &Roots, all: bool, format: &str) -> Result<ExitCode> {
    if let Some(note) = holder_note(roots) {
        eprintln!("{note}");
    }
    let mut rows = Vec::new();
    for name in state::list_pods(roots) {
        let paths = PodPaths::new(roots, &name);
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
        let (phase, message) = state::effective_phase(&paths, &st);
        if !all && !matches!(phase, Phase::Running | Phase::Pending) {
            continue;
        }
        rows.push((st, phase, message));
    }
    match format {
        "json" => {
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|(st, phase, message)| {
                    serde_json::json!({
                        "name": st.name,
                        "namespace": st.namespace,
                        "phase": phase,
                        "message": message,
                        "podIP": st.pod_ip,
                        "created": st.created,
                        "exitCode": st.exit_code,
                        "initContainers": st.init_containers.iter().map(container_json).collect::<Vec<_>>(),
                        "containers": st.containers.iter().map(container_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        "table" => {
            println!(
                "{:<24} {:<10} {:<9} {:<16} {:<21} CONTAINERS",
                "POD", "STATUS", "RESTARTS", "IP", "CREATED"
            );
            for (st, phase, message) in &rows {
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
                println!(
                    "{:<24} {:<10} {:<9} {:<16} {:<21} {}{}",
                    st.name,
                    status,
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
        "note: minipod's user-namespace holder is gone; running pods keep running, \
         and the next `minipod run` starts a new one"
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
        "ready": c.state.is_running(),
        "started": c.state.is_running(),
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
    let (paths, st) = state::find_pod(roots, name)?;
    let (phase, message) = state::effective_phase(&paths, &st);
    let yaml = std::fs::read_to_string(paths.pod_yaml()).unwrap_or_default();
    let mut pod = serde_yaml_ng::Deserializer::from_str(&yaml)
        .filter_map(|d| serde_json::Value::deserialize(d).ok())
        .find(|v| v["kind"] == "Pod")
        .unwrap_or_else(|| serde_json::json!({"apiVersion": "v1", "kind": "Pod"}));
    pod["metadata"]["namespace"] = serde_json::json!(st.namespace);
    pod["metadata"]["creationTimestamp"] = serde_json::json!(st.created);
    pod["status"] = serde_json::json!({
        "phase": phase,
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

pub fn wait(roots: &Roots, name: &str, condition: &str) -> Result<ExitCode> {
    if !matches!(condition, "running" | "stopped" | "ready") {
        bail!("--condition {condition:?}: use running, stopped or ready");
    }
    loop {
        let (paths, st) = state::find_pod(roots, name)?;
        let alive = paths.supervisor_alive();
        let all_running = st.containers.iter().all(|c| c.state.is_running());
        match condition {
            "stopped" if !alive => {
                println!(
                    "{}",
                    st.exit_code.map_or("-".to_string(), |c| c.to_string())
                );
                return Ok(ExitCode::SUCCESS);
            }
            "running" if alive && st.phase == Phase::Running => return Ok(ExitCode::SUCCESS),
            "ready" if alive && st.phase == Phase::Running && all_running => {
                return Ok(ExitCode::SUCCESS);
            }
            "running" | "ready" if !alive => {
                bail!("pod {name} stopped before it was {condition}")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `--since`: an RFC 3339 time, or a duration ago like `90s`, `5m`, `2h`.
fn since_time(since: &str) -> Result<String> {
    if since.contains('T') {
        return Ok(since.to_string());
    }
    let (num, unit) = since.split_at(
        since
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: f64 = num.parse().map_err(|_| {
        anyhow!("--since {since:?}: give a time (RFC 3339) or a duration like 10s, 5m, 2h")
    })?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--since {since:?}: the unit is s, m or h"),
    };
    let t = SystemTime::now() - Duration::from_secs_f64(secs.max(0.0));
    Ok(crate::sys::time::rfc3339_nanos(t))
}

pub fn logs(roots: &Roots, name: &str, opts: LogsOptions) -> Result<ExitCode> {
    let (paths, st) = state::find_pod(roots, name)?;
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
    let status = st
        .init_containers
        .iter()
        .chain(&st.containers)
        .find(|c| &c.name == container)
        .ok_or_else(|| anyhow!("pod {name} has no container {container:?}"))?;
    if !status.state.is_running() || status.pid <= 0 || !paths.supervisor_alive() {
        bail!("container {container} of pod {name} is not running");
    }
    let config_path = paths.container_config(container);
    let config: ContainerConfig = serde_json::from_slice(
        &std::fs::read(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?,
    )?;
    let mut process = config.process;
    process.argv = opts.command;
    userns::enter(roots)?;
    let code =
        crate::runtime::container::exec_in(status.pid, &process, opts.interactive, opts.tty)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
