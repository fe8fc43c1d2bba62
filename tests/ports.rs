//! Parallel-safe runs: `run --name` (one YAML run many times at once),
//! `--publish` and `-P` (free host ports), and `minipod port`, as the
//! unprivileged user.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestEnv, env_with_busybox, free_port, stderr_of, wait_until};

/// A pod serving its own hostname (its pod name) on 8080 and the word
/// `second` on 8081; 8080 declares `hostPort`.
fn web_yaml(host_port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: web
    image: localhost/busybox
    command: [sh, -c, 'mkdir -p /www /www2; hostname > /www/index.html; echo second > /www2/index.html; httpd -p 8081 -h /www2; exec httpd -f -p 8080 -h /www']
    ports: [{{containerPort: 8080, hostPort: {host_port}}}]
"#
    )
}

fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.replace("0.0.0.0", "127.0.0.1").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn serves(addr: &str, body: &str) {
    wait_until(
        &format!("{addr} to serve {body}"),
        Duration::from_secs(10),
        || http_get(addr).is_some_and(|b| b.contains(body)),
    );
}

#[test]
fn one_yaml_runs_twice_at_once_with_name_and_free_ports() {
    let env = env_with_busybox();
    let declared = free_port();
    let file = env.pod_file("web", &web_yaml(declared));
    let file = file.to_str().unwrap();
    // Both runs at once: neither takes the declared port.
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            env.command(["run", "-d", "--name", name, "-P", file])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = common::wait_output(run, Duration::from_secs(60));
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let mut addrs = Vec::new();
    for name in ["a", "b"] {
        let lines = env.ok(["port", name]);
        let line = lines.trim();
        let addr = line
            .strip_prefix("8080/tcp -> 0.0.0.0:")
            .map(|p| format!("0.0.0.0:{p}"))
            .unwrap_or_else(|| panic!("port {name}: {lines:?}"));
        assert_ne!(addr, format!("0.0.0.0:{declared}"));
        assert_eq!(env.ok(["port", name, "8080"]).trim(), addr);
        assert_eq!(env.ok(["port", name, "8080/tcp"]).trim(), addr);
        let json: serde_json::Value =
            serde_json::from_str(&env.ok(["port", name, "--format", "json"])).unwrap();
        assert_eq!(json[0]["containerPort"], 8080);
        assert_eq!(json[0]["protocol"], "TCP");
        assert_eq!(format!("0.0.0.0:{}", json[0]["hostPort"]), addr, "{json}");
        let spec = common::inspect(&env, name);
        assert_eq!(
            format!(
                "0.0.0.0:{}",
                spec["spec"]["containers"][0]["ports"][0]["hostPort"]
            ),
            addr
        );
        // Each address reaches its own pod (httpd serves its hostname).
        serves(&addr, name);
        addrs.push(addr);
    }
    assert_ne!(addrs[0], addrs[1]);
    assert!(http_get(&format!("127.0.0.1:{declared}")).is_none());
    let err = env.fails(["port", "a", "9999"]);
    assert!(err.contains("publishes no port 9999"), "{err}");
    let state = env.pod_state_json("a");
    assert_eq!(state["owner"]["name"], "a");
    // `down FILE` removes every run of the file; a name removes one.
    env.ok(["down", "a"]);
    assert!(env.run(["port", "a"]).status.code() == Some(125));
    serves(&addrs[1], "b");
    env.ok(["run", "-d", "--name", "c", "-P", file]);
    let down = env.ok(["down", file]);
    assert!(down.contains('b') && down.contains('c'), "{down}");
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

#[test]
fn publish_overrides_a_declared_host_port_and_defines_a_new_one() {
    let env = env_with_busybox();
    let declared = free_port();
    let over = free_port();
    let file = env.pod_file("web", &web_yaml(declared));
    env.ok([
        "run",
        "-d",
        "--publish",
        &format!("{over}:8080"),
        "--publish",
        "127.0.0.1::8081",
        file.to_str().unwrap(),
    ]);
    let lines = env.ok(["port", "web"]);
    assert!(
        lines.contains(&format!("8080/tcp -> 0.0.0.0:{over}\n")),
        "{lines}"
    );
    let second = env.ok(["port", "web", "8081"]);
    let second = second.trim();
    assert!(second.starts_with("127.0.0.1:"), "{lines}");
    serves(&format!("127.0.0.1:{over}"), "web");
    serves(second, "second");
    assert!(http_get(&format!("127.0.0.1:{declared}")).is_none());
    env.ok(["down", "web"]);
}

#[test]
fn name_and_publish_refusals_say_why_before_anything_starts() {
    let env = TestEnv::new();
    let two = env.pod_file(
        "two",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - {name: c, image: localhost/busybox}\n",
    );
    let err = env.fails(["run", "-d", "--name", "x", two.to_str().unwrap()]);
    assert!(
        err.contains("--name x")
            && err.contains("holds 2")
            && err.contains("Pod/one")
            && err.contains("Deployment/other"),
        "{err}"
    );
    let one = env.pod_file(
        "one",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox}\n",
    );
    let one = one.to_str().unwrap();
    let err = env.fails(["run", "--name", "Bad_Name", one]);
    assert!(err.contains("--name \"Bad_Name\""), "{err}");
    for (flag, why) in [
        ("8080:web", "CONTAINERPORT \"web\" is not a port"),
        ("8080:80/sctp", "SCTP is not supported"),
        ("192.0.2.77:8080:80", "not an address of this machine"),
    ] {
        let err = env.fails(["run", "--publish", flag, one]);
        assert!(
            err.contains(&format!("--publish {flag:?}")) && err.contains(why),
            "{err}"
        );
    }
    assert!(env.pod_state().is_empty());

    // A workload is renamed as a whole: its pods are named from NAME.
    let deploy = env.pod_file(
        "deploy",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - {name: c, image: localhost/busybox}\n",
    );
    env.busybox();
    let out = env.ok(["run", "--dry-run", "--name", "t1", deploy.to_str().unwrap()]);
    assert!(out.contains("Deployment/t1"), "{out}");
    assert_eq!(out.matches("  pod t1-").count(), 2, "{out}");
    // `down NAME` takes the workload's pods.
    let deploy = env.pod_file(
        "deploy",
        &std::fs::read_to_string(&deploy).unwrap().replace(
            "{name: c, image: localhost/busybox}",
            "{name: c, image: localhost/busybox, command: [sleep, \"31402\"]}",
        ),
    );
    let started = env.ok(["run", "-d", "--name", "t1", deploy.to_str().unwrap()]);
    assert_eq!(started.matches("t1-").count(), 2, "{started}");
    let down = env.ok(["down", "t1"]);
    assert_eq!(down.matches("t1-").count(), 2, "{down}");
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

#[test]
fn free_ports_let_replicas_declare_a_host_port() {
    let env = env_with_busybox();
    let declared = free_port();
    // web_yaml's pod as a template, indented under the Deployment's spec.
    let pod = web_yaml(declared);
    let spec = pod.split_once("spec:\n").unwrap().1;
    let template: String = spec.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
         spec:\n{template}"
    );
    let file = env.pod_file("deploy", &yaml);
    let err = env.fails(["run", "-d", file.to_str().unwrap()]);
    assert!(err.contains("run -P"), "{err}");
    let started = env.ok(["run", "-d", "-P", "--name", "d1", file.to_str().unwrap()]);
    let pods: Vec<&str> = started.lines().collect();
    assert_eq!(pods.len(), 2, "{started}");
    for pod in pods {
        let addr = env.ok(["port", pod, "8080"]);
        serves(addr.trim(), pod);
    }
    env.ok(["down", "d1"]);
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}
