//! Detached pods and the management commands, restarts, init containers
//! and sidecars, crash safety and concurrency — as the unprivileged user.

mod common;

use std::time::{Duration, Instant};

use common::{
    TestEnv, env_with_busybox, inspect, live_processes, status_of, stderr_of, stdout_of, wait_until,
};

const TICKER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  terminationGracePeriodSeconds: 5
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - name: tick
    image: localhost/busybox
    workingDir: /tmp
    env: [{name: GREETING, value: hello}]
    command: [sh, -c, 'trap "echo stopping; exit 0" TERM; i=0; while true; do i=$((i+1)); echo tick $i; echo err $i >&2; sleep 0.2; done']
  - name: other
    image: localhost/busybox
    command: [sh, -c, 'echo other-up; exec sleep 31100']
"#;

#[test]
fn detached_pod_and_every_management_command() {
    let env = env_with_busybox();
    let file = env.pod_file("ticker", TICKER);
    let started = Instant::now();
    let out = env.ok(["run", "-d", file.to_str().unwrap()]);
    assert_eq!(out.trim(), "ticker");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The supervisor shows minipod and the pod's name on its command line.
    let sup = live_processes(&supervisor_command_line(&env, "ticker"));
    assert_eq!(sup.len(), 1, "{sup:?}");
    assert!(sup[0].starts_with("minipod-supervisor ticker "), "{sup:?}");

    // ps, in both formats.
    let table = env.ok(["ps"]);
    assert!(
        table.contains("ticker") && table.contains("Running"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(["ps", "--format", "json"])).unwrap();
    assert_eq!(json[0]["name"], "ticker");
    assert_eq!(json[0]["phase"], "Running");

    env.ok(["wait", "--condition", "running", "ticker"]);
    env.ok(["wait", "--condition", "ready", "ticker"]);

    // logs: wait for some output, then each flag.
    wait_until("ticks", Duration::from_secs(10), || {
        env.ok(["logs", "ticker", "tick"]).lines().count() >= 3
    });
    let all = env.ok(["logs", "ticker"]);
    assert!(
        all.contains("tick  | tick 1") && all.contains("other | other-up"),
        "prefixed: {all}"
    );
    // --tail counts the lines of both streams, as docker's does.
    let one = env.run(["logs", "--tail", "4", "ticker", "tick"]);
    let lines: Vec<String> = stdout_of(&one).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(stderr_of(&one).lines().count(), 2, "{}", stderr_of(&one));
    assert!(lines[0].starts_with("tick "), "{lines:?}");
    assert!(
        stderr_of(&one).contains("err "),
        "stderr lines go to stderr: {}",
        stderr_of(&one)
    );
    // The last two lines hold at least one stdout line.
    let stamped = env.ok(["logs", "--timestamps", "--tail", "2", "ticker", "tick"]);
    assert!(
        stamped.starts_with("20") && stamped.contains("Z tick "),
        "{stamped}"
    );
    let since = env.ok(["logs", "--since", "1h", "ticker", "tick"]);
    assert!(since.contains("tick 1"), "{since}");
    let none = env.ok(["logs", "--since", "2999-01-01T00:00:00Z", "ticker", "tick"]);
    assert!(none.is_empty(), "{none}");

    // logs -f follows new output.
    let mut follow = env.command(["logs", "-f", "ticker", "tick"]);
    follow
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = follow.spawn().unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let before = env.ok(["logs", "ticker", "tick"]).lines().count();
    let mut seen_new = false;
    for _ in 0..200 {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            break;
        }
        let n: usize = line
            .trim()
            .strip_prefix("tick ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n > before + 2 {
            seen_new = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen_new, "logs -f printed lines written after it started");

    // exec: same user, env and working directory; exit codes; a terminal.
    let out = env.ok([
        "exec",
        "ticker",
        "tick",
        "--",
        "sh",
        "-c",
        "echo $(id -u):$(id -g) $GREETING $(pwd)",
    ]);
    assert_eq!(out.trim(), "1000:1000 hello /tmp");
    let out = env.run(["exec", "ticker", "tick", "--", "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    let out = env.run(["exec", "ticker", "tick", "--", "/bin/nosuch"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr_of(&out));
    let out = env.ok(["exec", "-t", "ticker", "tick", "--", "tty"]);
    assert!(
        out.trim().starts_with("/dev/pts/"),
        "exec -t gives a terminal: {out:?}"
    );
    let out = env.ok(["exec", "ticker", "other", "--", "cat", "/proc/1/cmdline"]);
    assert!(
        out.contains("sleep"),
        "exec joins the container's PID namespace: {out}"
    );
    let err = env.fails(["exec", "ticker", "nosuch", "--", "true"]);
    assert!(err.contains("nosuch"), "{err}");

    // rm refuses a running pod; a second run of the name is refused.
    let err = env.fails(["rm", "ticker"]);
    assert!(err.contains("running"), "{err}");
    let err = env.fails(["run", "-d", file.to_str().unwrap()]);
    assert!(err.contains("already running"), "{err}");

    // stop: SIGTERM reaches the trap; the pod stays listed until rm.
    let t = Instant::now();
    env.ok(["stop", "-t", "10", "ticker"]);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "the PID-1 sleep is killed at once: {:?}",
        t.elapsed()
    );
    assert!(live_processes("sleep 31100").is_empty());
    let logs_after = env.ok(["logs", "ticker", "tick"]);
    assert!(
        logs_after.contains("stopping"),
        "logs work after the pod exited: {logs_after}"
    );
    let pod = inspect(&env, "ticker");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["spec"]["containers"][0]["name"], "tick");
    let tick = status_of(&pod, "tick");
    assert_eq!(tick["state"]["terminated"]["exitCode"], 0, "{tick}");
    assert_eq!(tick["restartCount"], 0);
    assert!(
        tick["state"]["terminated"]["finishedAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(
        !env.ok(["ps"]).contains("ticker"),
        "ps without -a lists running pods"
    );
    assert!(env.ok(["ps", "-a"]).contains("ticker"));
    assert_eq!(
        env.ok(["wait", "ticker"]).trim(),
        "137",
        "the pod's code: `other` was killed"
    );
    let err = env.fails(["run", "-d", file.to_str().unwrap()]);
    assert!(err.contains("exists"), "{err}");

    // run --replace, then down by file.
    env.ok(["run", "-d", "--replace", file.to_str().unwrap()]);
    assert!(env.ok(["ps"]).contains("ticker"));
    // A replacement whose image cannot be had leaves the running pod alone.
    let yaml = std::fs::read_to_string(&file).unwrap();
    let broken = env.pod_file(
        "ticker-broken",
        &yaml.replace("localhost/busybox", "localhost/no-such-image"),
    );
    assert_ne!(yaml, std::fs::read_to_string(&broken).unwrap());
    let err = env.fails([
        "run",
        "-d",
        "--replace",
        "--pull",
        "never",
        broken.to_str().unwrap(),
    ]);
    assert!(err.contains("no-such-image"), "{err}");
    assert!(env.ok(["ps"]).contains("ticker"), "the old pod still runs");
    env.ok(["down", file.to_str().unwrap()]);
    assert!(
        env.ok(["ps", "-a"]).lines().count() == 1,
        "only the header is left"
    );
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
    assert!(live_processes(&supervisor_command_line(&env, "ticker")).is_empty());

    // rm -f of a running pod, named after one that is not there: that one
    // is said (125), the running one still removed, as podman does.
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let err = env.fails(["rm", "-f", "no-such-pod", "ticker"]);
    assert!(err.contains("no pod named \"no-such-pod\""), "{err}");
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
    let err = env.fails(["inspect", "ticker"]);
    assert!(err.contains("no pod named"), "{err}");
}

#[test]
fn restart_policy_counts_and_backs_off() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "crash",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  restartPolicy: OnFailure
  containers:
  - name: crasher
    image: localhost/busybox
    command: [sh, -c, 'cut -d" " -f1 /proc/uptime; exit 3']
  - name: done
    image: localhost/busybox
    command: ["true"]
"#,
    );
    env.ok([
        "run",
        "-d",
        "--restart-backoff",
        "0.1",
        file.to_str().unwrap(),
    ]);
    wait_until("4 restarts", Duration::from_secs(20), || {
        status_of(&inspect(&env, "crash"), "crasher")["restartCount"]
            .as_u64()
            .unwrap()
            >= 4
    });
    let pod = inspect(&env, "crash");
    let crasher = status_of(&pod, "crasher");
    assert_eq!(
        crasher["lastState"]["terminated"]["exitCode"], 3,
        "{crasher}"
    );
    assert_eq!(
        status_of(&pod, "done")["restartCount"],
        0,
        "exit 0 is not restarted with OnFailure"
    );
    // The gaps between starts double (0.1, 0.2, 0.4 s...).
    let starts: Vec<f64> = env
        .ok(["logs", "crash", "crasher"])
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(starts.len() >= 4, "{starts:?}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[2] > gaps[0] * 1.5, "backoff grows: {gaps:?}");
    env.ok(["rm", "-f", "crash"]);
}

#[test]
fn init_containers_run_in_order_and_a_failure_stops_the_pod() {
    let env = env_with_busybox();
    let out = env.run_pod(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  restartPolicy: Never
  initContainers:
  - name: first
    image: localhost/busybox
    command: [sh, -c, 'sleep 0.3; echo one >> /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: localhost/busybox
    command: [sh, -c, 'echo two >> /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: localhost/busybox
    command: [sh, -c, 'echo three >> /work/order; cat /work/order | tr "\n" " "']
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
"#,
        &[],
    );
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{stdout}{}", stderr_of(&out));
    assert!(stdout.contains("app    | one two three"), "{stdout}");

    let out = env.run_pod(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: badinit}
spec:
  restartPolicy: Never
  initContainers:
  - name: migrate
    image: localhost/busybox
    command: [sh, -c, 'echo migration failed >&2; exit 6']
  containers:
  - name: app
    image: localhost/busybox
    command: [sh, -c, 'echo app-ran']
"#,
        &[],
    );
    let stdout = stdout_of(&out);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(6), "{stdout}{stderr}");
    assert!(
        stderr.contains("init container migrate failed with exit code 6"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("app-ran"),
        "the app never started: {stdout}"
    );
    assert!(env.pod_state().is_empty());

    // Detached, the failure is what `run -d` reports.
    let file = env.pod_file(
        "badinit",
        &std::fs::read_to_string(env.work().join("pod.yaml")).unwrap(),
    );
    let err = env.fails(["run", "-d", file.to_str().unwrap()]);
    assert!(err.contains("init container migrate failed"), "{err}");
}

#[test]
fn a_sidecar_outlives_the_init_phase_and_stops_last() {
    let env = env_with_busybox();
    let out = env.run_pod(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: proxy
    image: localhost/busybox
    restartPolicy: Always
    command: [sh, -c, 'trap "sleep 0.3; echo proxy-stopped; exit 0" TERM; mkdir -p /www; echo from-sidecar > /www/index.html; httpd -p 8081 -h /www; echo proxy-up; while true; do sleep 0.1; done']
  - name: setup
    image: localhost/busybox
    command: [sh, -c, 'for i in $(seq 50); do wget -q -O - http://127.0.0.1:8081/ && exit 0; sleep 0.1; done; exit 1']
  containers:
  - name: app
    image: localhost/busybox
    command: [sh, -c, 'trap "echo app-stopped; exit 0" TERM; wget -q -O - http://127.0.0.1:8081/; echo app-done']
"#,
        &[],
    );
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{stdout}{}", stderr_of(&out));
    let pos = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {stdout}"))
    };
    assert!(
        stdout.contains("setup | from-sidecar"),
        "init reached the sidecar: {stdout}"
    );
    assert!(
        stdout.contains("app   | from-sidecar"),
        "the sidecar runs beside the app: {stdout}"
    );
    assert!(
        pos("app-done") < pos("proxy-stopped"),
        "the sidecar stops after the app: {stdout}"
    );
}

/// The pods' veths in the uplink netns (as root, through
/// /proc/HOLDER/net/dev).
fn uplink_veths(env: &TestEnv) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{}/net/dev", env.holder_pid().unwrap()))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim_start().split(':').next())
        .filter(|name| name.starts_with("mp"))
        .map(str::to_string)
        .collect()
}

#[test]
fn killing_the_supervisor_leaves_no_process_and_rm_returns_with_all_released() {
    let env = env_with_busybox();
    // With a PID namespace per container and with a shared one.
    for (n, share) in [(0, false), (1, true)] {
        let name = format!("victim{n}");
        let file = env.pod_file(
            &name,
            &format!(
                r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  shareProcessNamespace: {share}
  containers:
  - {{name: a, image: localhost/busybox, command: [sleep, "3120{n}"]}}
  - {{name: b, image: localhost/busybox, command: [sh, -c, 'trap "" TERM; sleep 3121{n} & wait']}}
"#
            ),
        );
        env.ok(["run", "-d", file.to_str().unwrap()]);
        let state = env.pod_state_json(&name);
        let pid = state["supervisor_pid"].as_i64().unwrap() as i32;
        assert_eq!(uplink_veths(&env).len(), 1, "the pod's veth");
        assert!(!live_processes(&format!("sleep 3121{n}")).is_empty());
        common::sigkill(pid);
        // At once: `rm -f` returns only when nothing of the pod runs.
        env.ok(["rm", "-f", &name]);
        for marker in [format!("sleep 3120{n}"), format!("sleep 3121{n}")] {
            assert!(live_processes(&marker).is_empty(), "{marker} still runs");
        }
        let pod_dir = env.runroot.join("pods").join(&name);
        assert!(
            live_processes(&pod_dir.display().to_string()).is_empty(),
            "a pause or link of {name} still runs"
        );
        let leases = std::fs::read_to_string(env.runroot.join("ipam.json")).unwrap();
        assert!(!leases.contains(&name), "{leases}");
        assert_eq!(uplink_veths(&env), Vec::<String>::new());
    }
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

#[test]
fn a_pod_whose_supervisor_died_shows_it_in_ps_and_inspect() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "victim",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: victim}\nspec:\n  containers:\n  - {name: a, image: localhost/busybox, command: [sleep, \"31200\"]}\n",
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let pid = env.pod_state_json("victim")["supervisor_pid"]
        .as_i64()
        .unwrap() as i32;
    common::sigkill(pid);
    // `wait` returns once nothing of the pod runs.
    env.ok(["wait", "--condition", "stopped", "victim"]);
    assert!(live_processes("sleep 31200").is_empty());
    let ps = env.ok(["ps", "-a"]);
    assert!(
        ps.contains("victim") && ps.contains("Failed") && ps.contains("a:Unknown"),
        "{ps}"
    );
    assert!(ps.contains("supervisor died"), "{ps}");
    let pod: serde_json::Value = serde_json::from_str(&env.ok(["inspect", "victim"])).unwrap();
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(
        status["state"]["terminated"]["reason"], "ContainerStatusUnknown",
        "{status}"
    );
    assert_eq!(status["state"]["terminated"]["exitCode"], 137, "{status}");
    env.ok(["rm", "victim"]);
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

#[test]
fn a_pod_fails_when_the_holder_dies() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "orphan",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: orphan}\nspec:\n  containers:\n  - {name: a, image: localhost/busybox, command: [sleep, \"31202\"]}\n",
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let holder = env.holder_pid().unwrap();
    common::sigkill(holder);
    env.ok(["wait", "--condition", "stopped", "orphan"]);
    assert!(live_processes("sleep 31202").is_empty());
    let pod: serde_json::Value = serde_json::from_str(&env.ok(["inspect", "orphan"])).unwrap();
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    assert_eq!(pod["status"]["reason"], "HolderDied", "{pod}");
    env.ok(["rm", "orphan"]);
}

#[test]
fn a_dead_holder_is_reported_and_recreated() {
    let env = env_with_busybox();
    let old = env.holder_pid().unwrap();
    common::sigkill(old);
    wait_until("the holder to die", Duration::from_secs(5), || {
        !std::path::Path::new(&format!("/proc/{old}")).exists()
            || std::fs::read_to_string(format!("/proc/{old}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    });
    let ps = env.run(["ps"]);
    assert!(stderr_of(&ps).contains("holder died"), "{}", stderr_of(&ps));
    let out = env.run_pod(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: again}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: localhost/busybox, command: [echo, works]}\n",
        &[],
    );
    assert!(stdout_of(&out).contains("works"), "{}", stderr_of(&out));
    assert_ne!(env.holder_pid().unwrap(), old);
}

#[test]
fn logs_are_size_bounded() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "chatty",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  restartPolicy: Never
  containers:
  - name: talk
    image: localhost/busybox
    command: [sh, -c, 'line=$(printf "%0500d" 0); i=0; while [ $i -lt 4000 ]; do echo "$i $line"; i=$((i+1)); done; echo last-line']
"#,
    );
    let mut cmd = env.command(["run", "-d", file.to_str().unwrap()]);
    cmd.env("MINIPOD_LOG_MAX_BYTES", "200000");
    let out = common::wait_output(
        {
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        },
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    env.ok(["wait", "chatty"]);
    let log = env.root.join("pods/chatty/logs/talk.log");
    let size = std::fs::metadata(&log).unwrap().len();
    let rotated = std::fs::metadata(env.root.join("pods/chatty/logs/talk.log.1"))
        .unwrap()
        .len();
    assert!(size <= 200_000 && rotated <= 200_000, "{size} {rotated}");
    let tail = env.ok(["logs", "--tail", "1", "chatty"]);
    assert_eq!(tail.trim(), "last-line");
    env.ok(["rm", "chatty"]);
}

#[test]
fn twenty_detached_pods_start_at_once() {
    let env = env_with_busybox();
    env.start_sleeper_pods_at_once("p", 20, "3130");
    let ps: serde_json::Value = serde_json::from_str(&env.ok(["ps", "--format", "json"])).unwrap();
    assert_eq!(ps.as_array().unwrap().len(), 20, "{ps}");
    let names: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    let mut args = vec!["rm".to_string(), "-f".to_string()];
    args.extend(names);
    env.ok(&args);
    assert!(live_processes("sleep 3130").is_empty());
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

#[test]
fn a_pod_name_of_the_longest_kind_works() {
    // A DNS subdomain of 253 characters, the most Kubernetes allows: the
    // pod's directory path is then longer than a unix socket path may be
    // (108 bytes), and the name with any suffix longer than a file name.
    let name = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(name.len(), 253);
    let env = env_with_busybox();
    let file = env.pod_file(
        "long",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}}\n"
        ),
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    assert!(env.ok(["ps"]).contains(&name[..20]));
    env.ok(["stop", "-t", "0", &name]);
    env.ok(["rm", &name]);
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

#[test]
fn the_pause_and_links_inherit_no_descriptor_of_minipods() {
    // The supervisor holds the report pipe, the minipod binary and log
    // files; none of it may reach the processes it starts, and of the
    // pod's lock only the pause and links get a copy.
    let env = env_with_busybox();
    let file = env.pod_file("ticker", TICKER);
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let state = env.pod_state_json("ticker");
    let supervisor = state["supervisor_pid"].as_i64().unwrap() as i32;
    let mut started: Vec<i32> = common::children_of(supervisor)
        .into_iter()
        .map(|(pid, _, _)| pid)
        .collect();
    assert!(started.len() >= 2, "the pause and a link: {started:?}");
    started.push(state["pause_pid"].as_i64().unwrap() as i32);
    let lock = env.runroot.join("pod-locks/ticker");
    for pid in started {
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        // Besides stdio, only fd 7: their copy of the pod's lock, held
        // until what they watch over is gone.
        assert!(
            fds.iter()
                .all(|fd| ["0", "1", "2", "7"].contains(&fd.as_str())),
            "pid {pid} holds fds {fds:?}"
        );
        if fds.iter().any(|fd| fd == "7") {
            assert_eq!(
                std::fs::read_link(format!("/proc/{pid}/fd/7")).unwrap(),
                lock,
                "pid {pid}'s fd 7"
            );
        }
    }
    env.ok(["rm", "-f", "ticker"]);
}

/// What `ps` shows of a pod's supervisor: `minipod-supervisor POD PLAN`.
fn supervisor_command_line(env: &TestEnv, pod: &str) -> String {
    format!(
        "minipod-supervisor {pod} {}",
        env.runroot.join("pods").join(pod).display()
    )
}

#[test]
fn top_lists_each_containers_processes_with_exec_ones() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "toppod",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: toppod}\nspec:\n  containers:\n  - {name: a, image: localhost/busybox, command: [sh, -c, 'sleep 31601 & exec sleep 31602']}\n  - name: b\n    image: localhost/busybox\n    command: [sleep, \"31603\"]\n    securityContext: {runAsUser: 1000}\n",
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let mut exec = env.command(["exec", "toppod", "b", "--", "sleep", "31604"]);
    exec.stdout(std::process::Stdio::null());
    let mut exec = exec.spawn().unwrap();
    let top = || -> Vec<serde_json::Value> {
        serde_json::from_str(&env.ok(["top", "toppod", "--format", "json"])).unwrap()
    };
    // (The `minipod exec` process names the command too: wait for top.)
    wait_until("the exec'd process", Duration::from_secs(10), || {
        top().len() == 4
    });
    let rows = top();
    let seen: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["container"].as_str().unwrap().to_string(),
                r["command"].as_str().unwrap().to_string(),
                r["pid"].as_i64().unwrap(),
            )
        })
        .collect();
    // Each container's processes with their pids in its own PID namespace;
    // the links and the pause are in none.
    assert_eq!(
        seen,
        [
            ("a".to_string(), "sleep 31602".to_string(), 1),
            ("a".to_string(), "sleep 31601".to_string(), 2),
            ("b".to_string(), "sleep 31603".to_string(), 1),
            ("b".to_string(), "sleep 31604".to_string(), 2),
        ],
        "{rows:?}"
    );
    // Named from the image's /etc/passwd (the test busybox has alice as 1000).
    assert_eq!(rows[2]["user"], "alice");
    assert_eq!(rows[1]["ppid"], 1);
    let table = env.ok(["top", "toppod"]);
    assert!(table.starts_with("CONTAINER"), "{table}");
    let _ = exec.kill();
    let _ = exec.wait();
    env.ok(["rm", "-f", "toppod"]);
    let err = env.fails(["top", "toppod"]);
    assert!(err.contains("no pod named"), "{err}");
}
