//! Pods for integration tests, in the spirit of testcontainers: start a pod
//! from a Kubernetes YAML file, wait until it is Ready, reach its published
//! ports, and have it removed when the handle goes out of scope — also when
//! the test panics.
//!
//! ```no_run
//! use minipod::testing::TestPod;
//!
//! // in a #[test] function:
//! fn answers() {
//!     let pod = TestPod::run("examples/test-runner/pod.yaml")
//!         .publish_all_random()
//!         .start()
//!         .unwrap();
//!     let addr = pod.port(8080).unwrap(); // 127.0.0.1:<a free port>
//!     // … connect to `addr` and assert …
//! } // the pod is removed here (`minipod down`), passed or panicked
//! ```
//!
//! Every command runs the `minipod` program (`$MINIPOD_BIN`, else `minipod`
//! on `PATH`; [`Minipod`] picks another), never minipod's code in the test
//! process: `cargo test` runs tests on threads, and a process with threads
//! cannot enter a user namespace. Each pod gets a name of its own (the
//! file's pod name, the test process's pid and a counter), so tests on
//! threads run in parallel without meeting.
//!
//! A test process killed before its handles drop (SIGKILL, an abort) leaves
//! its pods running. Each pod is labelled with the pid and start time of
//! the test process that started it (`minipod.test/pid`,
//! `minipod.test/started`), and every [`TestPodBuilder::start`] first
//! removes the pods whose test process no longer runs.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The label naming the pid of the test process that started a pod.
pub const PID_LABEL: &str = "minipod.test/pid";
/// The label holding that process's start time (clock ticks after boot,
/// field 22 of `/proc/PID/stat`): a pid reused by another process does not
/// keep a dead test's pods alive.
pub const STARTED_LABEL: &str = "minipod.test/started";

/// What went wrong: the command, its exit status and its stderr.
#[derive(Debug, Clone)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// This module's results.
pub type Result<T> = std::result::Result<T, Error>;

/// How to run minipod: the program and the roots it is given.
#[derive(Debug, Clone)]
pub struct Minipod {
    bin: PathBuf,
    root: Option<PathBuf>,
    runroot: Option<PathBuf>,
}

impl Default for Minipod {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Minipod {
    /// `$MINIPOD_BIN`, else `minipod` on `PATH`; `$MINIPOD_ROOT` and
    /// `$MINIPOD_RUNROOT`, when set, as `--root` and `--runroot` (else
    /// minipod's defaults).
    pub fn from_env() -> Minipod {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Minipod {
            bin: var("MINIPOD_BIN").map_or_else(|| PathBuf::from("minipod"), PathBuf::from),
            root: var("MINIPOD_ROOT").map(PathBuf::from),
            runroot: var("MINIPOD_RUNROOT").map(PathBuf::from),
        }
    }

    /// Runs this program (the `minipod-supervisor` beside it goes with it).
    pub fn bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = path.into();
        self
    }

    /// `--root DIR`: images, volumes, logs.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// `--runroot DIR`: pod state.
    pub fn runroot(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runroot = Some(dir.into());
        self
    }

    /// A `minipod ARGS…` command with the roots, stdin from /dev/null.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        if let Some(runroot) = &self.runroot {
            cmd.arg("--runroot").arg(runroot);
        }
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs `minipod ARGS…` and returns its output, whatever its exit code.
    pub fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
        self.command(&args)
            .output()
            .map_err(|e| Error(format!("running {} {args:?}: {e}", self.bin.display())))
    }

    /// Runs `minipod ARGS…`, insisting on exit code 0; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
        let out = self.output(&args)?;
        if !out.status.success() {
            return Err(Error(format!(
                "minipod {} failed ({}): {}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Removes the pods (and workloads' pods) labelled with the pid of a
    /// test process that no longer runs; returns their names. `start` calls
    /// it.
    pub fn remove_stale_pods(&self) -> Result<Vec<String>> {
        let json = self.ok([
            "ps",
            "-a",
            "--format",
            "json",
            "--filter",
            &format!("label={PID_LABEL}"),
        ])?;
        let pods: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| Error(format!("reading `minipod ps --format json`: {e}")))?;
        let mut removed = Vec::new();
        for pod in pods.as_array().into_iter().flatten() {
            let labels = &pod["labels"];
            let pid = labels[PID_LABEL].as_str().and_then(|p| p.parse().ok());
            let started = labels[STARTED_LABEL].as_str().and_then(|s| s.parse().ok());
            let (Some(pid), Some(name)) = (pid, pod["name"].as_str()) else {
                continue;
            };
            if !test_process_runs(pid, started) {
                // Another test process may be removing it too: only a
                // failure that leaves it behind matters, and the next
                // start tries again.
                if self.ok(["rm", "-f", name]).is_ok() {
                    removed.push(name.to_string());
                }
            }
        }
        Ok(removed)
    }
}

/// Whether the test process `pid`, started at `started` (when known), still
/// runs.
fn test_process_runs(pid: u32, started: Option<u64>) -> bool {
    match (start_time(pid), started) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

/// A process's start time, in clock ticks after boot (`/proc/PID/stat`
/// field 22); None when it does not run (a zombie has ended).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid …: comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    // After state (field 3), starttime is field 22: the 19th from here.
    fields.nth(18)?.parse().ok()
}

/// The name of a pod this process starts: the YAML's base name, this
/// process's pid and a counter, cut to fit a pod name of 63 characters.
fn unique_name(base: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("-{}-{n}", std::process::id());
    let base: String = base
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .take(63 - suffix.len())
        .collect();
    let base = base.trim_matches('-');
    format!("{}{suffix}", if base.is_empty() { "pod" } else { base })
}

/// The settings of a pod to start; [`TestPod::run`] makes one.
#[derive(Debug, Clone)]
#[must_use = "nothing runs until start()"]
pub struct TestPodBuilder {
    file: PathBuf,
    name: Option<String>,
    args: Vec<OsString>,
    timeout: Duration,
    minipod: Minipod,
}

impl TestPodBuilder {
    /// The pod's (or workload's) name; default: the file's base name, the
    /// test process's pid and a counter. Two pods of one name cannot run at
    /// once in one run root.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `-P`: every hostPort of the YAML gets a free host port;
    /// [`TestPod::port`] tells which.
    pub fn publish_all_random(mut self) -> Self {
        self.args.push("-P".into());
        self
    }

    /// `--publish [[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/PROTO]`: publish a
    /// container port (on a free host port when HOSTPORT is left out).
    pub fn publish(mut self, spec: impl Into<String>) -> Self {
        self.args.push("--publish".into());
        self.args.push(spec.into().into());
        self
    }

    /// Any other argument of `minipod run` (`--configmap FILE`, `--pull
    /// never`, …), before the file.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().into());
        self
    }

    /// How long `start` waits for the pod to be Ready (default 2 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs minipod this way instead of [`Minipod::from_env`].
    pub fn minipod(mut self, minipod: Minipod) -> Self {
        self.minipod = minipod;
        self
    }

    /// Removes pods of dead test processes, then `minipod run -d --wait
    /// ready --name NAME --label …`: returns once every container is Ready
    /// (a container without a readiness probe: running). When the pod does
    /// not get Ready, it is removed and the error holds minipod's reason
    /// and the containers' last log lines.
    pub fn start(self) -> Result<TestPod> {
        // A failure here must not stop the test: the pods stay for the
        // next start to remove.
        if let Err(e) = self.minipod.remove_stale_pods() {
            eprintln!("minipod::testing: removing the pods of dead tests: {e}");
        }
        let name = match self.name {
            Some(n) => n,
            None => unique_name(
                self.file
                    .file_stem()
                    .map(|s| s.to_string_lossy())
                    .as_deref()
                    .filter(|s| *s != "pod")
                    .or_else(|| {
                        let parent = self.file.parent()?.file_name()?;
                        parent.to_str()
                    })
                    .unwrap_or("pod"),
            ),
        };
        let pid = std::process::id();
        let mut args: Vec<OsString> = vec![
            "run".into(),
            "-d".into(),
            "--wait".into(),
            "ready".into(),
            "--timeout".into(),
            format!("{}s", self.timeout.as_secs().max(1)).into(),
            "--name".into(),
            name.clone().into(),
            "--label".into(),
            format!("{PID_LABEL}={pid}").into(),
        ];
        if let Some(started) = start_time(pid) {
            args.push("--label".into());
            args.push(format!("{STARTED_LABEL}={started}").into());
        }
        args.extend(self.args);
        args.push(self.file.clone().into());
        let mut pod = TestPod {
            name,
            pods: Vec::new(),
            minipod: self.minipod,
        };
        // From here on, dropping `pod` removes what the run left.
        let out = pod.minipod.output(&args)?;
        if !out.status.success() {
            let logs = pod
                .minipod
                .output(["logs", "--tail", "20", &pod.name])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            return Err(Error(format!(
                "minipod run {} ({}): {}\nlast log lines:\n{logs}",
                self.file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            )));
        }
        pod.pods = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        Ok(pod)
    }
}

/// A running pod, removed (`minipod down NAME`) when dropped.
#[derive(Debug)]
pub struct TestPod {
    name: String,
    pods: Vec<String>,
    minipod: Minipod,
}

impl TestPod {
    /// Settings for a pod of this YAML file (one Pod or workload, with the
    /// ConfigMaps and Secrets it uses); [`TestPodBuilder::start`] starts it.
    pub fn run(file: impl AsRef<Path>) -> TestPodBuilder {
        TestPodBuilder {
            file: file.as_ref().to_path_buf(),
            name: None,
            args: Vec::new(),
            timeout: Duration::from_secs(120),
            minipod: Minipod::from_env(),
        }
    }

    /// The name it runs under (a workload's, whose pods are [`pods`](Self::pods)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pods `run` started (one for a Pod).
    pub fn pods(&self) -> &[String] {
        &self.pods
    }

    /// The pod the other methods talk to: the first.
    fn pod(&self) -> &str {
        self.pods.first().map_or(&self.name, String::as_str)
    }

    /// The host address of a published TCP container port (a hostPort of
    /// the YAML, `publish`, or `publish_all_random`): 127.0.0.1 when it is
    /// published on every address.
    pub fn port(&self, container_port: u16) -> Result<SocketAddr> {
        let json = self.minipod.ok(["port", "--format", "json", self.pod()])?;
        let ports: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| Error(format!("reading `minipod port --format json`: {e}")))?;
        let found = ports.as_array().into_iter().flatten().find(|p| {
            p["containerPort"].as_u64() == Some(container_port.into())
                && p["protocol"]
                    .as_str()
                    .is_none_or(|p| p.eq_ignore_ascii_case("tcp"))
        });
        let Some(p) = found else {
            return Err(Error(format!(
                "pod {} publishes no TCP port {container_port} (it publishes {json}): give \
                 it a hostPort in the YAML, or call publish(\"{container_port}\")",
                self.pod()
            )));
        };
        let port = p["hostPort"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| Error(format!("a port without hostPort: {p}")))?;
        let ip = match p["hostIP"].as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
            Some(ip) if !ip.is_unspecified() => ip,
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        Ok(SocketAddr::new(ip, port))
    }

    /// `minipod exec POD CONTAINER -- ARGV…`: the command's output, whatever
    /// its exit code.
    pub fn exec<I, S>(&self, container: &str, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            self.pod().into(),
            container.into(),
            "--".into(),
        ];
        args.extend(argv.into_iter().map(|a| a.as_ref().into()));
        self.minipod.output(args)
    }

    /// `minipod logs POD CONTAINER`: the container's output so far
    /// (stdout's lines; stderr's are in [`Minipod::output`]'s stderr).
    pub fn logs(&self, container: &str) -> Result<String> {
        self.minipod.ok(["logs", self.pod(), container])
    }

    /// `minipod inspect POD`: the Pod with its status, as `kubectl get pod
    /// -o json` shows it.
    pub fn inspect(&self) -> Result<serde_json::Value> {
        let json = self.minipod.ok(["inspect", self.pod()])?;
        serde_json::from_str(&json).map_err(|e| Error(format!("reading `minipod inspect`: {e}")))
    }

    /// How minipod is run for this pod.
    pub fn minipod(&self) -> &Minipod {
        &self.minipod
    }

    /// Removes the pod now (what dropping it does), saying whether that
    /// worked.
    pub fn remove(mut self) -> Result<()> {
        let result = self.down();
        // Already removed: Drop has nothing left to do.
        self.pods.clear();
        self.name.clear();
        result
    }

    fn down(&self) -> Result<()> {
        self.minipod.ok(["down", &self.name]).map(drop)
    }
}

impl Drop for TestPod {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        if let Err(e) = self.down() {
            // Nothing was started (a failed run), or it is gone already.
            if self.minipod.ok(["inspect", self.pod()]).is_ok() {
                eprintln!("minipod::testing: removing pod {}: {e}", self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_pod_names() {
        let a = unique_name("web");
        let b = unique_name("web");
        assert_ne!(a, b);
        let pid = std::process::id();
        assert!(a.starts_with(&format!("web-{pid}-")), "{a}");
        let long = unique_name(&"Dev_Stack.".repeat(20));
        assert!(long.len() <= 63, "{long}");
        assert!(long.starts_with("dev-stack-dev-stack-"), "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{long}"
        );
        assert!(unique_name("__").starts_with("pod-"));
    }

    #[test]
    fn a_test_process_runs_while_its_pid_has_its_start_time() {
        let me = std::process::id();
        let started = start_time(me).expect("this process runs");
        assert!(test_process_runs(me, Some(started)));
        assert!(test_process_runs(me, None));
        assert!(!test_process_runs(me, Some(started + 1)), "a reused pid");
        // pid_max is at most 2^22.
        assert!(!test_process_runs(1 << 23, None));
    }
}
