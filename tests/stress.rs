//! Issue 16, items 6 and 7: many commands at once on overlapping pods keep
//! every invariant (no deadlock, lease, state file, process, fd or mount
//! lost or doubled), and a supervisor stays flat in memory and descriptors
//! through endless restarts and a log flood, with its logs bounded.
//!
//! Short by default (about a minute in all); `scripts/stress` and
//! `scripts/soak` run the same tests for minutes through these variables:
//! - `MINIPOD_STRESS_SECONDS` (20), `MINIPOD_STRESS_WORKERS` (4),
//!   `MINIPOD_STRESS_PODS` (3), `MINIPOD_STRESS_SEED` (from the clock),
//!   `MINIPOD_STRESS_KILL=1` (supervisors are SIGKILLed too);
//! - `MINIPOD_SOAK_RESTARTS` (100), `MINIPOD_SOAK_FLOOD_SECONDS` (8).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::*;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A command that did not end within this is a deadlock.
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// What `rm -f`, `down` and `stop` may leave running for a moment: a
/// supervisor ends just after it released its lock.
const SETTLE: Duration = Duration::from_secs(2);

/// xorshift64*: the workers' choices, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---- What /proc says about a process -------------------------------------

fn status_kb(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn fd_targets(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            std::fs::read_link(e.path())
                .map(|t| format!("{}→{}", e.file_name().to_string_lossy(), t.display()))
                .unwrap_or_default()
        })
        .collect()
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn map_count(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cmdline_of(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

fn user_ns(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every live process of the holder's user namespace but the holder and
/// its pasta: supervisors, pauses, links, containers, `exec`s.
fn pod_processes(env: &TestEnv) -> Vec<i32> {
    let Some(holder) = env.holder_pid() else {
        return Vec::new();
    };
    let Some(ns) = user_ns(holder) else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|&p| p != holder && ppid(p) != Some(holder))
        .filter(|&p| alive(p) && user_ns(p).as_ref() == Some(&ns))
        .collect()
}

/// The pod whose supervisor `pid` is (its argv: `minipod-supervisor POD DIR`).
fn supervised_pod(pid: i32) -> Option<String> {
    let cmd = cmdline_of(pid);
    let mut words = cmd.split(' ');
    (words.next()? == "minipod-supervisor").then(|| words.next().map(String::from))?
}

/// The supervisor above `pid` (itself included), if any.
fn supervisor_above(mut pid: i32) -> Option<(i32, String)> {
    for _ in 0..64 {
        if let Some(pod) = supervised_pod(pid) {
            return Some((pid, pod));
        }
        pid = ppid(pid).filter(|&p| p > 1)?;
    }
    None
}

/// What each process of the pods, and `stuck`, is doing: for a deadlock's
/// report.
fn diagnose(env: &TestEnv, stuck: i32) -> String {
    let mut out = String::new();
    let mut pids = pod_processes(env);
    pids.push(stuck);
    for pid in pids {
        let read =
            |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
        let state = read("stat")
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        out.push_str(&format!(
            "  {pid} ppid {:?} {state} {} | {}\n",
            ppid(pid),
            read("wchan"),
            cmdline_of(pid)
        ));
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let t = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
            let syscall = t("syscall");
            out.push_str(&format!(
                "    task {} {} syscall {}\n",
                task.file_name().to_string_lossy(),
                t("wchan"),
                syscall
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    out.push_str(&format!("/proc/locks:\n{locks}"));
    out
}

fn ps_all(env: &TestEnv) -> Result<Vec<serde_json::Value>, String> {
    let out = env.run(["ps", "-a", "--format", "json"]);
    if !out.status.success() {
        return Err(format!("ps failed: {}", stderr_of(&out)));
    }
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .map_err(|e| format!("ps printed no JSON array ({e}): {}", stdout_of(&out)))
}

/// Pods that `ps` shows running (or starting).
fn running_pods(env: &TestEnv) -> Result<BTreeSet<String>, String> {
    Ok(ps_all(env)?
        .iter()
        .filter(|p| p["phase"] == "Running" || p["phase"] == "Pending")
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect())
}

/// The most descriptors a supervisor of `slots` containers holds: 0–2,
/// the report fd (/dev/null), the pod lock, the minipod binary, the control
/// socket, the signalfd, the pause's socket and /dev/null, then per
/// container its log file, its config memfd and two output pipes; plus a
/// start under way (output and sync pipes, both ends) and an accepted
/// control connection.
fn fd_bound(slots: usize) -> usize {
    10 + 4 * slots + 6 + 1
}

/// Checks every invariant while no command runs; returns what is wrong.
/// `first_fds` remembers each supervisor's descriptors when first seen.
fn check_invariants(env: &TestEnv, first_fds: &mut BTreeMap<i32, usize>) -> Vec<String> {
    let mut wrong = Vec::new();
    let running = match running_pods(env) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    // Every state file parses.
    let mut slots = BTreeMap::new();
    for pod in std::fs::read_dir(env.runroot.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = pod.file_name().to_string_lossy().to_string();
        match std::fs::read(pod.path().join("state.json")) {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => {
                    let n = v["containers"].as_array().map_or(0, Vec::len)
                        + v["init_containers"].as_array().map_or(0, Vec::len);
                    slots.insert(name.clone(), n);
                }
                Err(e) => wrong.push(format!("pods/{name}/state.json does not parse: {e}")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => wrong.push(format!("pods/{name}/state.json: {e}")),
        }
        for f in std::fs::read_dir(pod.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            // `.tmp-PID-N-state.json`: being written, unless PID is gone.
            let f = f.file_name().to_string_lossy().to_string();
            let writer = f
                .strip_prefix(".tmp-")
                .and_then(|r| r.split('-').next()?.parse::<i32>().ok());
            if writer.is_some_and(|pid| !alive(pid)) {
                wrong.push(format!("pods/{name}/{f}: a temporary file left behind"));
            }
        }
    }
    // Leases: one address each, only for running pods, owned by their
    // supervisor.
    let supervisors: Vec<(i32, String)> = pod_processes(env)
        .into_iter()
        .filter_map(|p| Some((p, supervised_pod(p)?)))
        .collect();
    if let Ok(text) = std::fs::read_to_string(env.runroot.join("ipam.json")) {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => {
                let mut seen = BTreeMap::new();
                for (pod, lease) in v["leases"].as_object().into_iter().flatten() {
                    let ip = lease["ip"].as_str().unwrap_or_default().to_string();
                    if let Some(other) = seen.insert(ip.clone(), pod.clone()) {
                        wrong.push(format!("address {ip} leased to both {other} and {pod}"));
                    }
                    let owner = lease["pid"].as_i64().unwrap_or(0) as i32;
                    if killing() && !alive(owner) {
                        // A killed supervisor's lease: the next allocation
                        // reclaims it (net::ipam), by design.
                    } else if !running.contains(pod) {
                        wrong.push(format!("pod {pod} holds a lease but is not running"));
                    } else if !supervisors.iter().any(|(p, n)| *p == owner && n == pod) {
                        wrong.push(format!(
                            "pod {pod}'s lease names pid {owner}, not its supervisor"
                        ));
                    }
                }
            }
            Err(e) => wrong.push(format!("ipam.json does not parse: {e}")),
        }
    }
    // Processes: each under the supervisor of a running pod, one
    // supervisor per pod.
    let mut per_pod: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (pid, pod) in &supervisors {
        per_pod.entry(pod.clone()).or_default().push(*pid);
    }
    for (pod, pids) in &per_pod {
        if pids.len() > 1 {
            wrong.push(format!(
                "pod {pod} has {} supervisors: {pids:?}",
                pids.len()
            ));
        }
    }
    for pid in pod_processes(env) {
        match supervisor_above(pid) {
            None => wrong.push(format!(
                "process {pid} ({}) belongs to no supervisor",
                cmdline_of(pid)
            )),
            Some((_, pod)) if !running.contains(&pod) => wrong.push(format!(
                "process {pid} ({}) of pod {pod}, which ps does not show running",
                cmdline_of(pid)
            )),
            Some(_) => {}
        }
    }
    // Descriptors: bounded, and not growing in a supervisor seen before.
    for (pid, pod) in &supervisors {
        let n = fd_count(*pid);
        let bound = fd_bound(slots.get(pod).copied().unwrap_or(2));
        let first = *first_fds.entry(*pid).or_insert(n);
        if n > bound || n > first + 7 {
            wrong.push(format!(
                "supervisor {pid} of {pod} holds {n} fds (first seen {first}, bound {bound}): {:?}",
                fd_targets(*pid)
            ));
        }
    }
    // Mounts: nothing of ours in the host's or the holder's mount table.
    let mut tables = vec!["/proc/self/mountinfo".to_string()];
    if let Some(h) = env.holder_pid() {
        tables.push(format!("/proc/{h}/mountinfo"));
    }
    let ours = env.dir.display().to_string();
    for t in tables {
        for line in std::fs::read_to_string(&t)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&ours))
        {
            wrong.push(format!("{t}: {line}"));
        }
    }
    wrong
}

#[derive(Default)]
struct OpStats {
    count: u64,
    refused: u64,
    max: Duration,
    total: Duration,
}

#[derive(Default)]
struct Record {
    ops: BTreeMap<&'static str, OpStats>,
    /// Refusals (exit 125) by their message, pod names and numbers left out.
    refusals: BTreeMap<String, u64>,
    violations: Vec<String>,
}

impl Record {
    fn add(&mut self, op: &'static str, took: Duration, refused: bool) {
        let s = self.ops.entry(op).or_default();
        s.count += 1;
        s.refused += u64::from(refused);
        s.total += took;
        s.max = s.max.max(took);
    }
}

/// A refusal's message with names and numbers made generic.
fn shape(stderr: &str) -> String {
    let line = stderr.lines().last().unwrap_or("").to_string();
    let mut out = String::new();
    let mut last_digit = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            out.push(c);
            last_digit = false;
        }
    }
    out.chars().take(140).collect()
}

const OPS: [&str; 9] = [
    "run -d", "down", "rm -f", "stop", "exec", "logs -f", "logs", "ps", "inspect",
];

/// One random command on one of the pods; records its figures.
/// `MINIPOD_STRESS_KILL=1`: a worker also SIGKILLs a pod's supervisor now
/// and then (a pod then dies with it: PDEATHSIG chains; `ps` says Failed).
fn killing() -> bool {
    std::env::var_os("MINIPOD_STRESS_KILL").is_some_and(|v| v == "1")
}

fn kill_supervisor(env: &TestEnv, name: &str, record: &Mutex<Record>) {
    let state = env.runroot.join("pods").join(name).join("state.json");
    let pid = std::fs::read(state)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["supervisor_pid"].as_i64())
        .map_or(0, |p| p as i32);
    let began = Instant::now();
    if pid > 0 && supervised_pod(pid).as_deref() == Some(name) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        record
            .lock()
            .unwrap()
            .add("kill -9", began.elapsed(), false);
    }
}

fn one_op(env: &TestEnv, files: &[std::path::PathBuf], rng: &mut Rng, record: &Mutex<Record>) {
    let i = rng.below(files.len() as u64) as usize;
    let name = format!("st{i}");
    let file = files[i].display().to_string();
    // run -d twice as often as the rest: the others need pods.
    let pick = rng.below(OPS.len() as u64 + 2) as usize;
    let op = OPS[pick.saturating_sub(2)];
    if killing() && rng.below(12) == 0 {
        kill_supervisor(env, &name, record);
        return;
    }
    let (file, name) = (file.as_str(), name.as_str());
    let args: Vec<String> = match op {
        "run -d" => vec!["run", "-d", "--restart-backoff", "0.05", file],
        "down" => vec!["down", name],
        "rm -f" => vec!["rm", "-f", name],
        "stop" => vec!["stop", "-t", "1", name],
        "exec" => vec!["exec", name, "main", "--", "sh", "-c", "echo hi >/dev/null"],
        "logs -f" => vec!["logs", "-f", name, "main"],
        "logs" => vec!["logs", "--tail", "5", name],
        "ps" => vec!["ps", "-a", "--format", "json"],
        _ => vec!["inspect", name],
    }
    .into_iter()
    .map(String::from)
    .collect();
    let mut cmd = env.command(&args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("running minipod");
    let mut killed_at = None;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        let limit = if op == "logs -f" && killed_at.is_none() {
            Duration::from_millis(200 + rng.below(800))
        } else {
            OP_TIMEOUT
        };
        let since = killed_at.unwrap_or(started);
        if since.elapsed() >= limit {
            if op == "logs -f" && killed_at.is_none() {
                let _ = child.kill();
                killed_at = Some(Instant::now());
                continue;
            }
            let report = diagnose(env, child.id() as i32);
            let _ = child.kill();
            let _ = child.wait();
            record.lock().unwrap().violations.push(report);
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A killed `logs -f` counts from the kill: how long it took to go.
    let took = killed_at.unwrap_or(started).elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let mut r = record.lock().unwrap();
    let Some(status) = status else {
        r.violations.push(format!(
            "minipod {args:?} did not end within {OP_TIMEOUT:?}: deadlock?"
        ));
        return;
    };
    if stderr.contains("panicked") {
        r.violations
            .push(format!("minipod {args:?} panicked: {stderr}"));
    }
    let refused = status.code() == Some(125);
    // An exec'd command dies with a pod removed meanwhile (SIGKILL).
    let fine = status.success()
        || refused
        || (op == "logs -f" && killed_at.is_some())
        || (op == "exec" && status.code() == Some(137));
    if !fine {
        r.violations
            .push(format!("minipod {args:?} ended with {status}: {stderr}"));
    }
    if refused {
        let shaped = format!("{op}: {}", shape(&stderr));
        // A state file read while a pod starts or goes may be missing
        // (said as such), never half-written.
        let missing = stderr.contains("No such file or directory");
        // A command racing a pod's end says what happened, not an errno.
        if [
            "state.json",
            "ipam.json",
            "parse",
            "EOF",
            "corrupt",
            "Broken pipe",
            "Connection reset",
        ]
        .iter()
        .any(|bad| stderr.contains(bad))
            && !missing
        {
            r.violations.push(format!("minipod {args:?}: {stderr}"));
        }
        *r.refusals.entry(shaped).or_default() += 1;
    }
    r.add(op, took, refused);
}

fn stress_pod(i: usize) -> String {
    // Even pods: a chatty main and a sleeping sidecar (two containers);
    // odd pods: a main that exits every second and is restarted.
    let main = if i.is_multiple_of(2) {
        r#"[sh, -c, "trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done"]"#
    } else {
        r#"[sh, -c, "echo up; sleep 1; exit 3"]"#
    };
    let mut yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: st{i}}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {{name: main, image: localhost/busybox, command: {main}}}\n"
    );
    if i.is_multiple_of(2) {
        yaml.push_str("  - {name: side, image: localhost/busybox, command: [sleep, \"3600\"]}\n");
    }
    yaml
}

#[test]
fn concurrent_commands_keep_every_invariant() {
    let env = Arc::new(env_with_busybox());
    let seconds = env_number("MINIPOD_STRESS_SECONDS", 20);
    let workers = env_number("MINIPOD_STRESS_WORKERS", 4);
    let pods = env_number("MINIPOD_STRESS_PODS", 3).max(1) as usize;
    let seed = env_number(
        "MINIPOD_STRESS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    )
    .max(1);
    println!("stress: {workers} workers, {pods} pods, {seconds} s, seed {seed}");
    let files: Arc<Vec<_>> = Arc::new(
        (0..pods)
            .map(|i| env.pod_file(&format!("st{i}"), &stress_pod(i)))
            .collect(),
    );
    // Start the holder before the workers and learn its mounts.
    env.ok(["ps"]);
    let record = Arc::new(Mutex::new(Record::default()));
    // Workers hold it shared for each command; the checks exclusively, so
    // they see the pods between commands.
    let gate = Arc::new(RwLock::new(()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for w in 0..workers {
        let (env, files, record, gate) = (env.clone(), files.clone(), record.clone(), gate.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(seed
                .wrapping_add(w.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .max(1));
            while Instant::now() < deadline {
                let _shared = gate.read().unwrap();
                one_op(&env, &files, &mut rng, &record);
            }
        }));
    }
    let mut first_fds = BTreeMap::new();
    let mut checks = 0;
    let every = Duration::from_secs(env_number("MINIPOD_STRESS_CHECK_SECONDS", 8));
    let mut next_check = Instant::now() + every;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() >= next_check && Instant::now() + SETTLE < deadline {
            let _all = gate.write().unwrap();
            std::thread::sleep(SETTLE);
            let wrong = check_invariants(&env, &mut first_fds);
            checks += 1;
            record.lock().unwrap().violations.extend(wrong);
            next_check = Instant::now() + every;
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    std::thread::sleep(SETTLE);
    let wrong = check_invariants(&env, &mut first_fds);
    checks += 1;
    record.lock().unwrap().violations.extend(wrong);
    // Then everything goes: nothing of the run root may remain but the
    // holder.
    let mut end = Vec::new();
    for i in 0..pods {
        let out = env.run(["rm", "-f", &format!("st{i}")]);
        if !out.status.success() && !stderr_of(&out).contains("no pod named") {
            end.push(format!("rm -f st{i} failed: {}", stderr_of(&out)));
        }
    }
    std::thread::sleep(SETTLE);
    for pid in pod_processes(&env) {
        end.push(format!(
            "after rm -f: process {pid} ({}) remains",
            cmdline_of(pid)
        ));
    }
    if let Ok(listed) = ps_all(&env)
        && !listed.is_empty()
    {
        end.push(format!("after rm -f: ps -a lists {listed:?}"));
    }
    let left = env.pod_state();
    if !left.is_empty() {
        end.push(format!("after rm -f: pod files remain: {left:?}"));
    }
    let leases = std::fs::read_to_string(env.runroot.join("ipam.json")).unwrap_or_default();
    if leases.contains("\"ip\"") {
        end.push(format!("after rm -f: leases remain: {leases}"));
    }
    let data_pods: Vec<_> = std::fs::read_dir(env.root.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    if !data_pods.is_empty() {
        end.push(format!(
            "after rm -f: data-root pod dirs remain: {data_pods:?}"
        ));
    }
    let mut r = record.lock().unwrap();
    r.violations.extend(end);
    println!(
        "{:<8} {:>6} {:>8} {:>10} {:>10}",
        "op", "count", "refused", "mean ms", "max ms"
    );
    let mut total = 0;
    for (op, s) in &r.ops {
        total += s.count;
        println!(
            "{op:<8} {:>6} {:>8} {:>10.1} {:>10.1}",
            s.count,
            s.refused,
            s.total.as_secs_f64() * 1000.0 / s.count.max(1) as f64,
            s.max.as_secs_f64() * 1000.0
        );
    }
    println!("{total} commands, {checks} invariant checks");
    println!("refusals (exit 125):");
    for (msg, n) in &r.refusals {
        println!("  {n:>5}  {msg}");
    }
    assert!(
        r.violations.is_empty(),
        "{} violations:\n{}",
        r.violations.len(),
        r.violations.join("\n")
    );
    assert!(total > 0);
}

// ---- Soak ------------------------------------------------------------------

/// A supervisor's figures at one moment: RSS, descriptors, mappings.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    restarts: u64,
    rss_kb: u64,
    fds: usize,
    maps: usize,
}

/// The smallest of a few quick samples: a start under way holds a few
/// more descriptors and pages for a moment.
fn sample(pid: i32, at: Duration, restarts: u64) -> Sample {
    let mut s = Sample {
        at,
        restarts,
        rss_kb: u64::MAX,
        fds: usize::MAX,
        maps: usize::MAX,
    };
    for _ in 0..10 {
        s.rss_kb = s.rss_kb.min(status_kb(pid, "VmRSS").unwrap_or(0));
        s.fds = s.fds.min(fd_count(pid));
        s.maps = s.maps.min(map_count(pid));
        std::thread::sleep(Duration::from_millis(25));
    }
    s
}

fn print_samples(what: &str, samples: &[Sample]) {
    println!("{what}:");
    println!(
        "  {:>8} {:>9} {:>9} {:>5} {:>6}",
        "seconds", "restarts", "RSS kB", "fds", "maps"
    );
    for s in samples {
        println!(
            "  {:>8.1} {:>9} {:>9} {:>5} {:>6}",
            s.at.as_secs_f64(),
            s.restarts,
            s.rss_kb,
            s.fds,
            s.maps
        );
    }
}

/// What a supervisor may grow by over a soak: allocator noise, not a
/// leak (a leak of one thread stack per restart was ~9 kB a restart).
const RSS_MARGIN_KB: u64 = 1024;

fn restarts(env: &TestEnv, pod: &str) -> u64 {
    std::fs::read(env.runroot.join("pods").join(pod).join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map_or(0, |v| {
            v["containers"][0]["restart_count"].as_u64().unwrap_or(0)
        })
}

#[test]
fn a_crash_looping_container_keeps_its_supervisor_flat() {
    let env = env_with_busybox();
    let wanted = env_number("MINIPOD_SOAK_RESTARTS", 100);
    let warm = (wanted / 10).max(10);
    let file = env.pod_file(
        "crash",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crash}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox, command: [\"true\"]}\n",
    );
    let began = Instant::now();
    env.ok([
        "run",
        "-d",
        "--restart-backoff",
        "0",
        file.to_str().unwrap(),
    ]);
    let pid = env.pod_state_json("crash")["supervisor_pid"]
        .as_i64()
        .unwrap() as i32;
    let limit = Duration::from_secs(30 + wanted / 2);
    let mut samples = Vec::new();
    let mut next = warm;
    let step = (wanted / 10).max(1);
    loop {
        let n = restarts(&env, "crash");
        if n >= next {
            samples.push(sample(pid, began.elapsed(), n));
            if n >= wanted {
                break;
            }
            next = (n / step + 1) * step;
        }
        assert!(began.elapsed() < limit, "only {n} restarts in {limit:?}");
        assert!(alive(pid), "the supervisor died after {n} restarts");
        std::thread::sleep(Duration::from_millis(20));
    }
    let counted = inspect(&env, "crash")["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap();
    print_samples(
        &format!(
            "crash loop: {counted} restarts (inspect) in {:.1} s",
            began.elapsed().as_secs_f64()
        ),
        &samples,
    );
    let (first, last) = (samples[0], *samples.last().unwrap());
    env.ok(["rm", "-f", "crash"]);
    assert!(counted >= wanted);
    assert!(
        last.rss_kb <= first.rss_kb + RSS_MARGIN_KB,
        "RSS grew from {} to {} kB over {} restarts",
        first.rss_kb,
        last.rss_kb,
        last.restarts - first.restarts
    );
    // One more: a restart under way through all the samples holds its
    // sync pipe (a leak would be one a restart).
    assert!(last.fds <= first.fds + 1, "fds grew: {first:?} → {last:?}");
    // A thread stack or buffer mapped per restart shows here first.
    assert!(
        last.maps <= first.maps + 8,
        "mappings grew: {first:?} → {last:?}"
    );
}

#[test]
fn a_log_flood_keeps_the_supervisor_flat_and_the_logs_bounded() {
    let env = env_with_busybox();
    let seconds = env_number("MINIPOD_SOAK_FLOOD_SECONDS", 8);
    let max: u64 = 64 << 10;
    // Lines as fast as `yes` writes them, and output that never ends a
    // line (it used to grow the supervisor without bound).
    let file = env.pod_file(
        "flood",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: flood}\nspec:\n  containers:\n  - {name: lines, image: localhost/busybox, command: [yes, flood-0123456789-abcdefghijklmnopqrstuvwxyz]}\n  - {name: blob, image: localhost/busybox, command: [cat, /dev/zero]}\n",
    );
    let mut cmd = env.command(["run", "-d", file.to_str().unwrap()]);
    cmd.env("MINIPOD_LOG_MAX_BYTES", max.to_string());
    let out = wait_output(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let began = Instant::now();
    let pid = env.pod_state_json("flood")["supervisor_pid"]
        .as_i64()
        .unwrap() as i32;
    std::thread::sleep(Duration::from_secs(1));
    let first = sample(pid, began.elapsed(), 0);
    let logs = env.root.join("pods/flood/logs");
    let mut largest: BTreeMap<String, u64> = BTreeMap::new();
    let mut rotations = 0u64;
    let mut inodes = BTreeMap::new();
    while began.elapsed() < Duration::from_secs(seconds) {
        for name in ["lines.log", "lines.log.1", "blob.log", "blob.log.1"] {
            if let Ok(m) = std::fs::metadata(logs.join(name)) {
                let l = largest.entry(name.to_string()).or_default();
                *l = (*l).max(m.len());
                use std::os::unix::fs::MetadataExt;
                if inodes.insert(name, m.ino()).is_some_and(|i| i != m.ino())
                    && !name.ends_with(".1")
                {
                    rotations += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = sample(pid, began.elapsed(), 0);
    assert!(alive(pid), "the supervisor survived the flood");
    let tail = env.ok(["logs", "--tail", "3", "flood", "lines"]);
    env.ok(["rm", "-f", "flood"]);
    print_samples(
        &format!("log flood, MINIPOD_LOG_MAX_BYTES={max}"),
        &[first, last],
    );
    println!("  largest files: {largest:?}; rotations seen (sampled): {rotations}");
    for (name, size) in &largest {
        assert!(*size <= max, "{name} reached {size} bytes, over {max}");
    }
    assert!(
        largest.contains_key("lines.log.1") && largest.contains_key("blob.log.1"),
        "both rotated: {largest:?}"
    );
    assert!(
        tail.lines().count() == 3
            && tail
                .lines()
                .all(|l| l == "flood-0123456789-abcdefghijklmnopqrstuvwxyz"),
        "the log reads back: {tail:?}"
    );
    assert!(
        last.rss_kb <= first.rss_kb + RSS_MARGIN_KB,
        "RSS grew from {} to {} kB",
        first.rss_kb,
        last.rss_kb
    );
    assert!(last.fds <= first.fds, "fds grew: {first:?} → {last:?}");
}

/// The checks' own helpers must see a pod's processes: a pod's supervisor,
/// pause, link and container all belong to it.
#[test]
fn the_process_checks_see_a_pods_processes() {
    let env = env_with_busybox();
    let file = env.pod_file("seen", &stress_pod(0).replace("st0", "seen"));
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let procs = pod_processes(&env);
    let mine: Vec<_> = procs
        .iter()
        .filter(|&&p| supervisor_above(p).is_some_and(|(_, pod)| pod == "seen"))
        .collect();
    // supervisor, pause, two links, two containers (and maybe a `sleep 0.2`)
    assert!(mine.len() >= 6, "{procs:?}: {mine:?}");
    let mut fds = BTreeMap::new();
    assert_eq!(check_invariants(&env, &mut fds), Vec::<String>::new());
    env.ok(["rm", "-f", "seen"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(pod_processes(&env).is_empty(), "{:?}", pod_processes(&env));
}

/// `rm -f` (and `stop`, `down`) of a pod still starting: `run` holds its
/// lock and no supervisor listens yet. It used to find no socket, signal
/// nobody and then wait for the lock, that is for the whole life of a pod
/// it never asked to stop.
#[test]
fn removing_a_pod_as_it_starts_does_not_wait_for_its_whole_life() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "racy",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: racy}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox, command: [sleep, \"3600\"]}\n",
    );
    for attempt in 0..12u64 {
        let mut run = env.command(["run", "-d", file.to_str().unwrap()]);
        run.stdout(Stdio::piped()).stderr(Stdio::piped());
        let run = run.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(10 + 4 * attempt));
        let mut rm = env.command(["rm", "-f", "racy"]);
        rm.stdout(Stdio::piped()).stderr(Stdio::piped());
        let began = Instant::now();
        let rm = rm.spawn().unwrap();
        let out = wait_output(rm, Duration::from_secs(20));
        let took = began.elapsed();
        let ran = wait_output(run, Duration::from_secs(20));
        println!(
            "attempt {attempt}: rm -f {:?} in {took:?} ({}), run -d {:?}",
            out.status.code(),
            stderr_of(&out).trim(),
            ran.status.code()
        );
        assert!(
            out.status.success() || stderr_of(&out).contains("no pod named"),
            "attempt {attempt}: {}",
            stderr_of(&out)
        );
        assert!(
            took < Duration::from_secs(10),
            "attempt {attempt}: rm -f took {took:?}"
        );
        // Whatever won, a second rm -f leaves nothing.
        let _ = env.run(["rm", "-f", "racy"]);
    }
    std::thread::sleep(SETTLE);
    assert_eq!(pod_processes(&env), Vec::<i32>::new());
    assert_eq!(env.pod_state(), Vec::<String>::new());
}

/// A supervisor SIGKILLed while its pod starts: the pod's processes die
/// with it. (A container still setting up once had no parent-death signal
/// and, in its own PID namespace, could not see its link die; now the link
/// is told of the supervisor's death and kills and reaps it.)
#[test]
fn killing_a_supervisor_as_its_pod_starts_leaves_no_process() {
    let env = env_with_busybox();
    let file = env.pod_file("killed", &stress_pod(0).replace("st0", "killed"));
    let mut leaked = Vec::new();
    for attempt in 0..20u64 {
        let mut run = env.command(["run", "-d", file.to_str().unwrap()]);
        run.stdout(Stdio::null()).stderr(Stdio::null());
        let run = run.spawn().unwrap();
        // Kill it at some point of its start.
        let began = Instant::now();
        let pid = loop {
            let pid = pod_processes(&env)
                .into_iter()
                .find(|&p| supervised_pod(p).as_deref() == Some("killed"));
            if let Some(pid) = pid {
                break Some(pid);
            }
            if began.elapsed() > Duration::from_secs(10) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        std::thread::sleep(Duration::from_millis(3 * attempt));
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = wait_output(run, Duration::from_secs(20));
        std::thread::sleep(SETTLE);
        for p in pod_processes(&env) {
            leaked.push(format!(
                "attempt {attempt}: {p} ppid {:?} ({})",
                ppid(p),
                cmdline_of(p)
            ));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = env.run(["rm", "-f", "killed"]);
    }
    assert!(leaked.is_empty(), "{}", leaked.join("\n"));
}
