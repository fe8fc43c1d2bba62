//! Probes with kubelet's semantics, run by the supervisor: httpGet and
//! tcpSocket from outside the pod's loopback, exec in the container,
//! thresholds, restarts, readiness both ways, startup gating — as the
//! unprivileged user, against the real kernel.

mod common;

use std::time::{Duration, Instant};

use common::status_of as container;
use common::{TestEnv, env_with_busybox, inspect, stderr_of, wait_until};

fn condition(pod: &serde_json::Value, kind: &str) -> String {
    pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no condition {kind}: {pod}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An environment with `localhost/servers:1`: busybox and the
/// probe-servers fixture (tests/fixtures/probe_servers.rs: tonic's gRPC
/// health service, HTTP and HTTPS with rustls), a static example cargo
/// builds beside this test.
fn env_with_probe_servers() -> TestEnv {
    let env = TestEnv::new();
    let rootfs = common::oci::busybox_rootfs(&env.work().join("servers"));
    // target/<triple>/debug/deps/probes-HASH → target/<triple>/debug/examples/.
    let exe = std::env::current_exe().unwrap();
    let fixture = exe
        .parent()
        .unwrap()
        .with_file_name("examples")
        .join("probe-servers");
    assert!(
        fixture.exists(),
        "{} is missing: `cargo test` builds it; for one test file, run \
         `cargo build --example probe-servers` first",
        fixture.display()
    );
    std::fs::copy(&fixture, rootfs.join("bin/probe-servers")).unwrap();
    env.give_to_user(&rootfs);
    env.ok(["import", rootfs.to_str().unwrap(), "localhost/servers:1"]);
    env
}

/// A container's events, as `logs --events` prints them.
fn events(env: &TestEnv, pod: &str, c: &str) -> String {
    env.ok(["logs", "--events", pod, c])
}

fn run_detached(env: &TestEnv, name: &str, yaml: &str) {
    let file = env.pod_file(name, yaml);
    let out = env.run([
        "run",
        "-d",
        "--restart-backoff",
        "0.2",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn readiness_by_http_moves_both_ways_and_wait_ready_waits_for_it() {
    let env = env_with_busybox();
    // The server answers after 2 s; /www/ok decides the answer.
    run_detached(
        &env,
        "web",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/busybox
    command: [sh, -c, 'mkdir -p /www; echo ok > /www/ok; sleep 2; exec httpd -f -p 8080 -h /www']
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /ok, port: http}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let pod = inspect(&env, "web");
    assert_eq!(container(&pod, "srv")["ready"], false, "{pod}");
    assert_eq!(condition(&pod, "Ready"), "False");
    assert!(env.ok(["ps"]).contains(" 0/1 "), "{}", env.ok(["ps"]));
    let t = Instant::now();
    env.ok(["wait", "--condition", "ready", "web"]);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    let pod = inspect(&env, "web");
    assert_eq!(container(&pod, "srv")["ready"], true, "{pod}");
    assert_eq!(condition(&pod, "Ready"), "True");
    assert_eq!(condition(&pod, "ContainersReady"), "True");
    assert!(env.ok(["ps"]).contains(" 1/1 "), "{}", env.ok(["ps"]));

    // A 404 makes it not ready; the page back makes it ready again.
    env.ok(["exec", "web", "srv", "--", "rm", "/www/ok"]);
    wait_until("not ready", Duration::from_secs(10), || {
        container(&inspect(&env, "web"), "srv")["ready"] == false
    });
    // Not ready is not a restart.
    assert_eq!(container(&inspect(&env, "web"), "srv")["restartCount"], 0);
    env.ok(["exec", "web", "srv", "--", "sh", "-c", "echo ok > /www/ok"]);
    wait_until("ready again", Duration::from_secs(10), || {
        container(&inspect(&env, "web"), "srv")["ready"] == true
    });
    env.ok(["rm", "-f", "web"]);
}

#[test]
fn a_server_bound_to_the_pods_loopback_fails_its_probe_as_on_a_cluster() {
    let env = env_with_busybox();
    run_detached(
        &env,
        "local",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: local}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/busybox
    command: [sh, -c, 'mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /www']
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"#,
    );
    std::thread::sleep(Duration::from_secs(3));
    let pod = inspect(&env, "local");
    assert!(container(&pod, "srv")["state"]["running"].is_object());
    assert_eq!(container(&pod, "srv")["ready"], false, "{pod}");
    env.ok(["rm", "-f", "local"]);
}

#[test]
fn a_failed_liveness_probe_restarts_the_container_and_counts_it() {
    let env = env_with_busybox();
    // Listens on 9000 for about 2 s (busybox's nc cannot keep listening),
    // then only sleeps.
    run_detached(
        &env,
        "live",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: s, emptyDir: {}}]
  containers:
  - name: app
    image: localhost/busybox
    volumeMounts: [{name: s, mountPath: /s}]
    command: [sh, -c, 'echo started; cat /s/log 2>/dev/null; timeout 2 httpd -f -p 9000; exec sleep 31401']
    lifecycle:
      preStop:
        exec: {command: [sh, -c, 'echo prestop-before-restart >> /s/log']}
    livenessProbe:
      tcpSocket: {port: 9000}
      periodSeconds: 1
      failureThreshold: 2
      terminationGracePeriodSeconds: 1
"#,
    );
    wait_until("a restart", Duration::from_secs(20), || {
        container(&inspect(&env, "live"), "app")["restartCount"]
            .as_u64()
            .unwrap()
            >= 1
    });
    let pod = inspect(&env, "live");
    let app = container(&pod, "app");
    // The probe stopped it; `sleep` as PID 1 ignores SIGTERM, so the
    // probe's grace period of 1 s ended with SIGKILL.
    assert!(app["lastState"]["terminated"].is_object(), "{app}");
    let logs = env.ok(["logs", "live"]);
    assert!(logs.matches("started").count() >= 2, "{logs}");
    // Its preStop hook ran before the probe's kill: the next incarnation
    // reads what it wrote.
    wait_until("the hook's mark", Duration::from_secs(10), || {
        env.ok(["logs", "live"]).contains("prestop-before-restart")
    });
    env.ok(["rm", "-f", "live"]);
}

#[test]
fn exec_probes_run_in_the_container_and_time_out() {
    let env = env_with_busybox();
    run_detached(
        &env,
        "ex",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ex}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: good
    image: localhost/busybox
    env: [{name: MARK, value: here}]
    command: [sh, -c, 'touch /tmp/alive; exec sleep 31402']
    readinessProbe:
      exec: {command: [sh, -c, 'test -e /tmp/alive && test "$MARK" = here']}
      periodSeconds: 1
  - name: sad
    image: localhost/busybox
    command: [sleep, "31408"]
    readinessProbe:
      exec: {command: [sh, -c, 'echo not ready yet >&2; exit 1']}
      periodSeconds: 1
  - name: slow
    image: localhost/busybox
    command: [sleep, "31403"]
    readinessProbe:
      exec: {command: [sleep, "31404"]}
      timeoutSeconds: 1
      periodSeconds: 1
"#,
    );
    wait_until("good is ready", Duration::from_secs(15), || {
        container(&inspect(&env, "ex"), "good")["ready"] == true
    });
    std::thread::sleep(Duration::from_secs(2));
    let pod = inspect(&env, "ex");
    assert_eq!(container(&pod, "slow")["ready"], false, "{pod}");
    // The event quotes the command's output, as kubelet's does.
    let events = env.ok(["logs", "--events", "ex", "sad"]);
    assert!(
        events.contains("Readiness probe failed: the command exited with 1: not ready yet"),
        "{events}"
    );
    let events = env.ok(["logs", "--events", "ex", "slow"]);
    assert!(events.contains("timed out after 1s"), "{events}");
    assert_eq!(condition(&pod, "Ready"), "False");
    // The timed-out probe's command was killed, not left running.
    // (At most the attempt under way runs: `minipod __probe-exec … sleep
    // 31404` and its `sleep 31404`.)
    wait_until(
        "the timed-out probe is gone",
        Duration::from_secs(5),
        || {
            common::live_processes("sleep 31404")
                .iter()
                .filter(|c| c.starts_with("sleep 31404"))
                .count()
                <= 1
        },
    );
    env.ok(["rm", "-f", "ex"]);
    for marker in ["sleep 31402", "sleep 31403", "sleep 31404", "sleep 31408"] {
        let left = common::live_processes(marker);
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_startup_probe_holds_back_liveness_and_a_sidecars_holds_back_the_next_init_container() {
    let env = env_with_busybox();
    run_detached(
        &env,
        "slowstart",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: slowstart}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: shared, emptyDir: {}}]
  initContainers:
  - name: side
    image: localhost/busybox
    restartPolicy: Always
    volumeMounts: [{name: shared, mountPath: /s}]
    command: [sh, -c, 'sleep 2; touch /s/side-up; exec sleep 31405']
    startupProbe:
      exec: {command: [test, -e, /s/side-up]}
      periodSeconds: 1
      failureThreshold: 30
  - name: after
    image: localhost/busybox
    volumeMounts: [{name: shared, mountPath: /s}]
    command: [sh, -c, 'test -e /s/side-up && echo side was up']
  containers:
  - name: app
    image: localhost/busybox
    command: [sh, -c, 'sleep 3; touch /tmp/up; exec sleep 31406']
    startupProbe:
      exec: {command: [test, -e, /tmp/up]}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec: {command: [test, -e, /tmp/up]}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    wait_until("app started", Duration::from_secs(30), || {
        container(&inspect(&env, "slowstart"), "app")["started"] == true
    });
    let pod = inspect(&env, "slowstart");
    // The next init container ran once the sidecar's startup probe passed.
    assert!(
        env.ok(["logs", "slowstart", "after"])
            .contains("side was up"),
        "{pod}"
    );
    // Liveness (which fails until /tmp/up exists) never ran before the
    // startup probe passed: no restart.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        container(&inspect(&env, "slowstart"), "app")["restartCount"],
        0
    );
    env.ok(["rm", "-f", "slowstart"]);
}

#[test]
fn an_http_probe_needs_nothing_in_the_image() {
    let env = TestEnv::new();
    // An image of one static server binary: no shell, no curl, no nc.
    let rootfs = env.work().join("noshell");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("www")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    std::fs::copy(busybox, rootfs.join("bin/httpd")).unwrap();
    std::fs::write(rootfs.join("www/index.html"), "hi\n").unwrap();
    env.give_to_user(&rootfs);
    env.ok(["import", rootfs.to_str().unwrap(), "localhost/noshell:1"]);
    run_detached(
        &env,
        "bare",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: bare}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/noshell:1
    command: [/bin/httpd, -f, -p, "8080", -h, /www]
    readinessProbe:
      httpGet: {path: /index.html, port: 8080, httpHeaders: [{name: X-Probe, value: "1"}]}
      periodSeconds: 1
"#,
    );
    env.ok(["wait", "--condition", "ready", "bare"]);
    env.ok(["rm", "-f", "bare"]);
}

#[test]
fn run_wait_ready_returns_once_ready_or_fails_with_the_probes_last_word() {
    let env = env_with_busybox();
    let ready_later = r#"
apiVersion: v1
kind: Pod
metadata: {name: later}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/busybox
    command: [sh, -c, 'sleep 1; exec httpd -f -p 7000']
    readinessProbe: {tcpSocket: {port: 7000}, periodSeconds: 1}
"#;
    let file = env.pod_file("later", ready_later);
    env.ok(["run", "-d", "--wait", "ready", file.to_str().unwrap()]);
    let pod = inspect(&env, "later");
    assert_eq!(condition(&pod, "Ready"), "True", "{pod}");

    let never = ready_later
        .replace("name: later", "name: never")
        .replace("exec httpd -f -p 7000", "exec sleep 31407");
    let file = env.pod_file("never", &never);
    let t = Instant::now();
    let err = env.fails([
        "run",
        "-d",
        "--wait",
        "ready",
        "--timeout",
        "3s",
        file.to_str().unwrap(),
    ]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        err.contains("not ready yet: timed out") && err.contains("Readiness probe failed"),
        "{err}"
    );
    // The pod stays for a look.
    assert_eq!(inspect(&env, "never")["status"]["phase"], "Running");
    let events = env.ok(["logs", "--events", "never"]);
    assert!(
        events.contains("srv Unhealthy: Readiness probe failed"),
        "{events}"
    );
    let err = env.fails(["wait", "--condition", "ready", "--timeout", "1s", "never"]);
    assert!(err.contains("timed out"), "{err}");
    env.ok(["rm", "-f", "never", "later"]);
}

#[test]
fn a_pre_stop_hook_runs_before_the_stop_signal_and_its_failure_is_an_event() {
    let env = env_with_busybox();
    run_detached(
        &env,
        "hooks",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: polite
    image: localhost/busybox
    command: [sh, -c, 'trap "echo term; cat /tmp/hook; exit 0" TERM; echo up; while true; do sleep 0.1; done']
    lifecycle:
      preStop:
        exec: {command: [sh, -c, 'echo hook-ran > /tmp/hook']}
  - name: sleepy
    image: localhost/busybox
    command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
    lifecycle:
      preStop: {sleep: {seconds: 2}}
  - name: broken
    image: localhost/busybox
    command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
    lifecycle:
      preStop:
        exec: {command: [sh, -c, 'exit 3']}
"#,
    );
    env.ok(["wait", "--condition", "ready", "hooks"]);
    let t = Instant::now();
    env.ok(["stop", "hooks"]);
    let took = t.elapsed();
    // The sleep hook held its container for 2 s; nothing waited for the
    // 10 s grace period.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let logs = env.ok(["logs", "hooks", "polite"]);
    let (term, hook) = (logs.find("term"), logs.find("hook-ran"));
    assert!(term.is_some() && hook.is_some() && term < hook, "{logs}");
    let events = env.ok(["logs", "--events", "hooks"]);
    assert!(
        events.contains("broken FailedPreStopHook: PreStopHook failed: the command exited with 3"),
        "{events}"
    );
    env.ok(["rm", "hooks"]);
}

#[test]
fn a_post_start_hook_runs_before_the_container_counts_as_started() {
    let env = env_with_busybox();
    run_detached(
        &env,
        "poststart",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: poststart}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: app
    image: localhost/busybox
    command: [sh, -c, 'echo up; exec sleep 31409']
    lifecycle:
      postStart:
        exec: {command: [sh, -c, 'sleep 2; echo hooked > /tmp/hooked']}
    readinessProbe:
      exec: {command: [test, -e, /tmp/hooked]}
      periodSeconds: 1
      failureThreshold: 1
  - name: broken
    image: localhost/busybox
    command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
    lifecycle:
      postStart:
        exec: {command: [sh, -c, 'exit 4']}
"#,
    );
    // `run -d` returned once the hooks did: the file is there, and the
    // readiness probe (which only began then) never failed.
    env.ok(["wait", "--condition", "running", "poststart"]);
    let out = env.ok(["exec", "poststart", "app", "--", "cat", "/tmp/hooked"]);
    assert_eq!(out.trim(), "hooked");
    wait_until("app ready", Duration::from_secs(10), || {
        container(&inspect(&env, "poststart"), "app")["ready"] == true
    });
    let events = env.ok(["logs", "--events", "poststart"]);
    assert!(!events.contains("app Unhealthy"), "{events}");
    // The failed hook stopped its container, which Never does not restart.
    assert!(
        events.contains(
            "broken FailedPostStartHook: PostStartHook failed: the command exited with 4"
        ),
        "{events}"
    );
    wait_until("broken stopped", Duration::from_secs(10), || {
        container(&inspect(&env, "poststart"), "broken")["state"]["terminated"].is_object()
    });
    env.ok(["rm", "-f", "poststart"]);
}

#[test]
fn grpc_probes_ask_the_health_service_on_the_pods_ip() {
    let env = env_with_probe_servers();
    // One tonic health server (port 9000) asked about several services by
    // several containers; a server that never answers (9001), one whose
    // accept queue is full (9002), a port nobody listens on, and a server
    // bound to the pod's loopback only (9003), which fails as on a cluster.
    run_detached(
        &env,
        "grpc",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: grpc}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/servers:1
    command: [probe-servers, grpc, "9000"]
    readinessProbe: {grpc: {port: 9000}, periodSeconds: 1}
  - name: named
    image: localhost/servers:1
    command: [sleep, "31420"]
    readinessProbe: {grpc: {port: 9000, service: ready}, periodSeconds: 1}
  - name: down
    image: localhost/servers:1
    command: [sleep, "31421"]
    readinessProbe: {grpc: {port: 9000, service: down}, periodSeconds: 1}
  - name: unknown
    image: localhost/servers:1
    command: [sleep, "31422"]
    readinessProbe: {grpc: {port: 9000, service: nosuch}, periodSeconds: 1}
  - name: silent
    image: localhost/servers:1
    command: [probe-servers, silent, "9001"]
    readinessProbe: {grpc: {port: 9001}, periodSeconds: 1, timeoutSeconds: 1}
  - name: full
    image: localhost/servers:1
    command: [probe-servers, full, "9002"]
    readinessProbe: {grpc: {port: 9002}, periodSeconds: 1, timeoutSeconds: 1}
  - name: closed
    image: localhost/servers:1
    command: [sleep, "31423"]
    readinessProbe: {grpc: {port: 9009}, periodSeconds: 1}
  - name: local
    image: localhost/servers:1
    command: [probe-servers, grpc, "9003", 127.0.0.1]
    readinessProbe: {grpc: {port: 9003}, periodSeconds: 1}
"#,
    );
    wait_until("SERVING makes ready", Duration::from_secs(20), || {
        let pod = inspect(&env, "grpc");
        container(&pod, "srv")["ready"] == true && container(&pod, "named")["ready"] == true
    });
    wait_until("every failure said", Duration::from_secs(20), || {
        ["down", "unknown", "silent", "full", "closed", "local"]
            .iter()
            .all(|c| events(&env, "grpc", c).contains("Readiness probe failed"))
    });
    let pod = inspect(&env, "grpc");
    for c in ["down", "unknown", "silent", "full", "closed", "local"] {
        assert_eq!(container(&pod, c)["ready"], false, "{c}: {pod}");
    }
    assert_eq!(condition(&pod, "Ready"), "False");
    // kubelet's words.
    let said = |c: &str, what: &str| {
        let e = events(&env, "grpc", c);
        assert!(e.contains(what), "{c}: wanted {what:?} in {e}");
    };
    said("down", "service unhealthy (responded with \"NOT_SERVING\")");
    // (tonic's words after "desc =": "service not registered".)
    said(
        "unknown",
        "error: health rpc probe failed: rpc error: code = NotFound desc = ",
    );
    said("silent", "timeout: health rpc did not complete within 1s");
    said("full", "timeout: failed to connect service");
    said("full", "within 1s: context deadline exceeded");
    said("closed", "error: failed to connect service at");
    said("closed", "Connection refused");
    said("local", "Connection refused");
    // The server itself answers inside the pod: it runs.
    assert!(
        container(&pod, "local")["state"]["running"].is_object(),
        "{pod}"
    );
    env.ok(["rm", "-f", "grpc"]);
}

#[test]
fn https_probes_do_not_check_the_certificate() {
    let env = env_with_probe_servers();
    run_detached(
        &env,
        "tls",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: tls}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/servers:1
    command: [probe-servers, https, "8443"]
    ports: [{name: tls, containerPort: 8443}]
    readinessProbe:
      httpGet: {scheme: HTTPS, port: tls, path: /ok}
      periodSeconds: 1
  - name: plain
    image: localhost/servers:1
    command: [probe-servers, http, "8080"]
    readinessProbe:
      httpGet: {scheme: HTTP, port: 8080, path: /ok}
      periodSeconds: 1
  - name: fails
    image: localhost/servers:1
    command: [sleep, "31430"]
    readinessProbe:
      httpGet: {scheme: HTTPS, port: 8443, path: /fail}
      periodSeconds: 1
  - name: notls
    image: localhost/servers:1
    command: [sleep, "31431"]
    readinessProbe:
      httpGet: {scheme: HTTPS, port: 8080, path: /ok}
      periodSeconds: 1
  - name: silent
    image: localhost/servers:1
    command: [probe-servers, silent, "8081"]
    readinessProbe:
      httpGet: {scheme: HTTPS, port: 8081, path: /ok}
      periodSeconds: 1
      timeoutSeconds: 1
"#,
    );
    env.ok(["wait", "--condition", "running", "tls"]);
    wait_until("TLS makes ready", Duration::from_secs(20), || {
        let pod = inspect(&env, "tls");
        container(&pod, "srv")["ready"] == true && container(&pod, "plain")["ready"] == true
    });
    wait_until("every failure said", Duration::from_secs(20), || {
        ["fails", "notls", "silent"]
            .iter()
            .all(|c| events(&env, "tls", c).contains("Readiness probe failed"))
    });
    let pod = inspect(&env, "tls");
    for c in ["fails", "notls", "silent"] {
        assert_eq!(container(&pod, c)["ready"], false, "{c}: {pod}");
    }
    let e = events(&env, "tls", "fails");
    assert!(e.contains("HTTP probe failed with statuscode: 500"), "{e}");
    // A TLS handshake with a server that speaks plain HTTP fails.
    let e = events(&env, "tls", "notls");
    assert!(e.contains("Get \"https://") && e.contains("tls"), "{e}");
    let e = events(&env, "tls", "silent");
    assert!(
        e.contains("context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
        "{e}"
    );
    env.ok(["rm", "-f", "tls"]);
}

#[test]
fn redirects_are_followed_to_the_same_host_only() {
    let env = env_with_probe_servers();
    run_detached(
        &env,
        "redir",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: redir}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/servers:1
    command: [probe-servers, http, "8080"]
    readinessProbe:
      httpGet: {port: 8080, path: /ok}
      periodSeconds: 1
  - name: tofail
    image: localhost/servers:1
    command: [sleep, "31440"]
    readinessProbe:
      httpGet: {port: 8080, path: /to-fail}
      periodSeconds: 1
  - name: elsewhere
    image: localhost/servers:1
    command: [sleep, "31441"]
    readinessProbe:
      httpGet: {port: 8080, path: /elsewhere}
      periodSeconds: 1
  - name: loop
    image: localhost/servers:1
    command: [sleep, "31442"]
    readinessProbe:
      httpGet: {port: 8080, path: /loop}
      periodSeconds: 1
"#,
    );
    // A redirect to another host is not followed: success, with a warning.
    wait_until(
        "ready despite the redirect",
        Duration::from_secs(20),
        || container(&inspect(&env, "redir"), "elsewhere")["ready"] == true,
    );
    let e = events(&env, "redir", "elsewhere");
    assert!(
        e.contains(
            "ProbeWarning: Readiness probe warning: Probe terminated redirects, \
             Response body: 302 Found for /elsewhere"
        ),
        "{e}"
    );
    assert!(!e.contains("Unhealthy"), "{e}");
    wait_until("the failures said", Duration::from_secs(20), || {
        ["tofail", "loop"]
            .iter()
            .all(|c| events(&env, "redir", c).contains("Readiness probe failed"))
    });
    let pod = inspect(&env, "redir");
    assert_eq!(container(&pod, "tofail")["ready"], false, "{pod}");
    assert_eq!(container(&pod, "loop")["ready"], false, "{pod}");
    // Followed to /fail, whose 500 fails the probe.
    let e = events(&env, "redir", "tofail");
    assert!(e.contains("HTTP probe failed with statuscode: 500"), "{e}");
    let e = events(&env, "redir", "loop");
    assert!(e.contains("stopped after 10 redirects"), "{e}");
    env.ok(["rm", "-f", "redir"]);
}

#[test]
fn each_handler_times_out_at_timeout_seconds() {
    let env = env_with_probe_servers();
    // tcpSocket to a listener whose accept queue is full; httpGet to one
    // that never answers (exec's timeout has its own test above, grpc's
    // the grpc test).
    run_detached(
        &env,
        "slow",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: tcp
    image: localhost/servers:1
    command: [probe-servers, full, "7000"]
    readinessProbe: {tcpSocket: {port: 7000}, periodSeconds: 1, timeoutSeconds: 2}
  - name: http
    image: localhost/servers:1
    command: [probe-servers, silent, "7001"]
    readinessProbe: {httpGet: {port: 7001}, periodSeconds: 1, timeoutSeconds: 2}
"#,
    );
    wait_until("both time out", Duration::from_secs(20), || {
        ["tcp", "http"]
            .iter()
            .all(|c| events(&env, "slow", c).contains("Readiness probe failed"))
    });
    let e = events(&env, "slow", "tcp");
    assert!(e.contains("timed out after 2s"), "{e}");
    let e = events(&env, "slow", "http");
    assert!(
        e.contains("Get \"http://") && e.contains("context deadline exceeded"),
        "{e}"
    );
    let pod = inspect(&env, "slow");
    assert_eq!(container(&pod, "tcp")["ready"], false, "{pod}");
    assert_eq!(container(&pod, "http")["ready"], false, "{pod}");
    env.ok(["rm", "-f", "slow"]);
}

#[test]
fn thresholds_and_initial_delay_count_as_kubelet_counts_them() {
    let env = env_with_busybox();
    // `late` is ready after its initial delay, `thrice` after three
    // successes in a row; `flaky` stays ready through two failures and
    // not through three.
    run_detached(
        &env,
        "counts",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: counts}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: late
    image: localhost/busybox
    command: [sleep, "31450"]
    readinessProbe: {exec: {command: ["true"]}, initialDelaySeconds: 4, periodSeconds: 1}
  - name: thrice
    image: localhost/busybox
    command: [sleep, "31451"]
    readinessProbe: {exec: {command: ["true"]}, successThreshold: 3, periodSeconds: 1}
  - name: flaky
    image: localhost/busybox
    command: [sh, -c, 'touch /tmp/ok; exec sleep 31452']
    readinessProbe:
      exec: {command: [test, -e, /tmp/ok]}
      periodSeconds: 1
      failureThreshold: 3
"#,
    );
    let ready = |c: &str| container(&inspect(&env, "counts"), c)["ready"] == true;
    // When each became ready: all three are probed from their start, at
    // the same moments.
    let t0 = Instant::now();
    let mut at: [Option<Duration>; 3] = [None; 3];
    while at.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(20) {
        let pod = inspect(&env, "counts");
        for (i, c) in ["flaky", "thrice", "late"].iter().enumerate() {
            if at[i].is_none() && container(&pod, c)["ready"] == true {
                at[i] = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let [Some(first), Some(thrice), Some(late)] = at else {
        panic!("not all ready: {at:?}");
    };
    assert!(
        thrice >= first + Duration::from_millis(1500),
        "three successes one second apart: first {first:?}, thrice {thrice:?}"
    );
    assert!(
        late >= first + Duration::from_millis(3500),
        "a delay of 4 s: first {first:?}, late {late:?}"
    );

    env.ok(["exec", "counts", "flaky", "--", "rm", "/tmp/ok"]);
    let removed = Instant::now();
    // Three failures take at least two periods.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(ready("flaky"), "not ready after {:?}", removed.elapsed());
    wait_until("flaky is not ready", Duration::from_secs(10), || {
        !ready("flaky")
    });
    assert!(
        removed.elapsed() >= Duration::from_secs(2),
        "{:?}",
        removed.elapsed()
    );
    let e = events(&env, "counts", "flaky");
    assert!(
        e.contains("Readiness probe failed") && e.contains("(x"),
        "{e}"
    );
    env.ok(["rm", "-f", "counts"]);
}
