//! Names and Service variables from a pod, as the unprivileged user: the
//! holder's DNS server answers Service names from the Service table
//! (Services given to `run`; the table is edited by hand once, to show it
//! is read again), through Kubernetes' search path; outside names are forwarded; resolv.conf follows dnsPolicy and
//! dnsConfig; containers get kubelet's Service environment variables.

mod common;

use minipod::net::service_table::ServiceTable;

use common::{TestEnv, env_with_busybox, stderr_of, stdout_of};

fn pod_ip(env: &TestEnv, pod: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(["inspect", pod])).unwrap();
    v["status"]["podIP"]
        .as_str()
        .unwrap_or_else(|| panic!("no podIP: {v}"))
        .to_string()
}

/// A ClusterIP Service `web` at 10.89.0.10 (no pod behind it: its name
/// still answers), `api` in front of the pod labelled `app: db`, and the
/// headless `db`, registered by a `run` of a file of Services.
fn register_services(env: &TestEnv) {
    let services = env.pod_file(
        "services",
        r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: db}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.89.0.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: admin, port: 9090}
"#,
    );
    env.ok(["run", services.to_str().unwrap()]);
}

/// `nslookup NAME` in the client pod: its output. (busybox's nslookup
/// asks every search domain at once and fails when any of them is not
/// found, so its answers are read, not its exit code.)
fn lookup(env: &TestEnv, name: &str) -> String {
    let out = env.run(["exec", "client", "c", "--", "nslookup", name]);
    format!("{}{}", stdout_of(&out), stderr_of(&out))
}

/// Whether nslookup's output has `fqdn` answered with `ip`.
fn answered(out: &str, fqdn: &str, ip: &str) -> bool {
    out.contains(&format!("Name:\t{fqdn}\nAddress: {ip}\n"))
        || out.contains(&format!("Address: {ip}\n")) && out.contains(&format!("Name:\t{fqdn}\n"))
}

fn env_of(env: &TestEnv, pod: &str) -> String {
    env.ok(["exec", pod, "c", "--", "env"])
}

#[test]
fn service_names_resolve_through_the_search_path_and_outside_names_are_forwarded() {
    let env = env_with_busybox();
    // A StatefulSet-like pod: hostname db-0 under the headless Service db.
    let db = env.pod_file(
        "db",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'mkdir -p /www; echo db-0-here > /www/index.html; exec httpd -f -p 8080 -h /www']
"#,
    );
    env.ok(["run", "-d", "--wait", "ready", db.to_str().unwrap()]);
    let db_ip = pod_ip(&env, "db-0");
    register_services(&env);
    let client = env.pod_file(
        "client",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - name: c
    image: localhost/busybox
    command: [sleep, "3600"]
    env:
    - {name: WEB_URL, value: "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT_HTTP)/"}
    - {name: WEB_SERVICE_PORT_ADMIN, value: overridden}
"#,
    );
    env.ok(["run", "-d", client.to_str().unwrap()]);

    let resolv = env.ok(["exec", "client", "c", "--", "cat", "/etc/resolv.conf"]);
    let lines: Vec<&str> = resolv.lines().collect();
    assert!(
        lines[0].starts_with("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert_eq!(lines[1], "nameserver 10.88.0.1", "{resolv}");
    assert_eq!(lines[2], "options ndots:5", "{resolv}");

    // busybox's nslookup applies the search path to names without a dot.
    for name in [
        "web",
        "web.default.svc.cluster.local",
        "WEB.default.svc.cluster.local.",
    ] {
        let out = lookup(&env, name);
        assert!(
            answered(&out, "web.default.svc.cluster.local", "10.89.0.10")
                || answered(&out, "WEB.default.svc.cluster.local", "10.89.0.10"),
            "{name}: {out}"
        );
    }
    // The C library's resolver applies it to every name with fewer than
    // five dots (ndots:5).
    for name in [
        "api",
        "api.default",
        "api.default.svc",
        "api.default.svc.cluster.local",
    ] {
        // (httpd may not listen yet right after `run -d`.)
        let fetch = format!(
            "for i in $(seq 50); do wget -q -O - http://{name}:8080/ && exit 0; sleep 0.1; done; exit 1"
        );
        let out = env.run(["exec", "client", "c", "--", "sh", "-c", &fetch]);
        assert!(
            stdout_of(&out).contains("db-0-here"),
            "{name}: {}{}",
            stdout_of(&out),
            stderr_of(&out)
        );
    }
    // Headless: every serving endpoint, and a pod by its hostname.
    let out = lookup(&env, "db");
    assert!(
        answered(&out, "db.default.svc.cluster.local", &db_ip),
        "{out}"
    );
    let out = lookup(&env, "db-0.db.default.svc.cluster.local");
    assert!(
        answered(&out, "db-0.db.default.svc.cluster.local", &db_ip),
        "{out}"
    );
    let fetch = "for i in $(seq 50); do wget -q -O - http://db-0.db:8080/ && exit 0; sleep 0.1; done; exit 1";
    let out = env.run(["exec", "client", "c", "--", "sh", "-c", fetch]);
    assert!(
        stdout_of(&out).contains("db-0-here"),
        "db-0.db through the search path: {}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    let out = lookup(&env, "x.default.svc.cluster.local");
    assert!(
        out.contains("can't find x.default.svc.cluster.local: NXDOMAIN"),
        "{out}"
    );
    assert!(!out.contains("Name:"), "{out}");

    // A named port's SRV record.
    let out = env.run([
        "exec",
        "client",
        "c",
        "--",
        "nslookup",
        "-type=SRV",
        "_http._tcp.web.default.svc.cluster.local",
    ]);
    assert!(
        stdout_of(&out).contains("0 100 80 web.default.svc.cluster.local"),
        "{}{}",
        stdout_of(&out),
        stderr_of(&out)
    );

    // The table is read again when it changes.
    let mut table = ServiceTable::load(&env.runroot).unwrap();
    let web = table.services.iter_mut().find(|s| s.name == "web").unwrap();
    web.cluster_ip = Some("10.89.0.99".into());
    table.store(&env.runroot).unwrap();
    env.give_to_user(&ServiceTable::path(&env.runroot));
    let out = lookup(&env, "web.default.svc.cluster.local");
    assert!(
        answered(&out, "web.default.svc.cluster.local", "10.89.0.99"),
        "{out}"
    );

    // Service variables as kubelet sets them, when the pod started.
    let vars = env_of(&env, "client");
    for want in [
        "WEB_SERVICE_HOST=10.89.0.10\n",
        "WEB_SERVICE_PORT=80\n",
        "WEB_SERVICE_PORT_HTTP=80\n",
        "WEB_SERVICE_PORT_ADMIN=overridden\n",
        "WEB_PORT=tcp://10.89.0.10:80\n",
        "WEB_PORT_80_TCP=tcp://10.89.0.10:80\n",
        "WEB_PORT_80_TCP_PROTO=tcp\n",
        "WEB_PORT_80_TCP_PORT=80\n",
        "WEB_PORT_80_TCP_ADDR=10.89.0.10\n",
        "WEB_PORT_9090_TCP=tcp://10.89.0.10:9090\n",
        "WEB_URL=http://10.89.0.10:80/\n",
    ] {
        assert!(vars.contains(want), "{want}: {vars}");
    }
    assert!(!vars.contains("DB_SERVICE_HOST"), "headless: none: {vars}");
    assert!(!vars.contains("KUBERNETES_SERVICE"), "{vars}");

    // Outside names go to the host's resolvers (this machine may reach few).
    let host_resolves = std::process::Command::new("getent")
        .args(["hosts", "deb.debian.org"])
        .output()
        .is_ok_and(|o| o.status.success());
    if host_resolves {
        let out = lookup(&env, "deb.debian.org");
        assert!(out.contains("Name:\tdeb.debian.org\n"), "forwarded: {out}");
    } else {
        eprintln!("SKIPPED forwarding: the host itself cannot resolve deb.debian.org");
    }
}

/// A pod printing its resolv.conf and environment, run in the foreground.
fn show(env: &TestEnv, spec: &str) -> String {
    show_then(env, spec, "true")
}

/// `show`, then `then` in the container's shell.
fn show_then(env: &TestEnv, spec: &str, then: &str) -> String {
    let out = env.run_pod(
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: show}}
spec:
  restartPolicy: Never
{spec}
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'cat /etc/resolv.conf; env; {then}']
"#
        ),
        &[],
    );
    assert!(
        out.status.success(),
        "{}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
        .lines()
        .map(|l| l.strip_prefix("c | ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn resolv_conf_follows_dns_policy_and_service_links_can_be_turned_off() {
    let env = env_with_busybox();
    register_services(&env);
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_server = host
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .map(str::trim);

    let cluster = show(
        &env,
        "  dnsConfig:\n    nameservers: [192.0.2.53]\n    searches: [extra.test]\n    options: [{name: ndots, value: '2'}, {name: edns0}]\n",
    );
    assert!(
        cluster.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{cluster}"
    );
    assert!(cluster.contains(" extra.test\n"), "{cluster}");
    assert!(
        cluster.contains("nameserver 10.88.0.1\nnameserver 192.0.2.53\n"),
        "{cluster}"
    );
    assert!(cluster.contains("options ndots:2 edns0\n"), "{cluster}");
    assert!(cluster.contains("WEB_SERVICE_HOST=10.89.0.10"), "{cluster}");

    // The host's resolver answers such a pod directly (through pasta).
    let host_resolves = std::process::Command::new("getent")
        .args(["hosts", "deb.debian.org"])
        .output()
        .is_ok_and(|o| o.status.success());
    let default = show_then(
        &env,
        "  dnsPolicy: Default\n  enableServiceLinks: false\n",
        "nslookup deb.debian.org | grep -q deb.debian.org && echo host-resolver-answered",
    );
    if host_resolves {
        assert!(default.contains("host-resolver-answered"), "{default}");
    }
    assert!(!default.contains("10.88.0.1"), "{default}");
    assert!(!default.contains("svc.cluster.local"), "{default}");
    if let Some(server) = host_server {
        assert!(
            default.contains(&format!("nameserver {server}")),
            "{default}"
        );
    }
    assert!(
        !default.contains("WEB_SERVICE_HOST"),
        "links off: {default}"
    );

    let none = show(
        &env,
        "  dnsPolicy: None\n  dnsConfig: {nameservers: [192.0.2.53], searches: [only.test]}\n",
    );
    assert!(
        none.contains("search only.test\nnameserver 192.0.2.53\n"),
        "{none}"
    );
    assert!(!none.contains("10.88.0.1"), "{none}");

    let host_net = show(&env, "  hostNetwork: true\n");
    assert!(!host_net.contains("nameserver 10.88.0.1"), "{host_net}");
}

#[test]
fn the_cluster_domain_is_the_holders_and_without_pasta_outside_names_fail_fast() {
    let env = TestEnv::new();
    let bad = env
        .command(["unshare", "true"])
        .env("MINIPOD_CLUSTER_DOMAIN", "Not_A.Domain")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(125), "{}", stderr_of(&bad));
    assert!(
        stderr_of(&bad).contains("MINIPOD_CLUSTER_DOMAIN"),
        "{}",
        stderr_of(&bad)
    );
    let started = env
        .command(["unshare", "true"])
        .env("MINIPOD_CLUSTER_DOMAIN", "corp.test")
        .env("MINIPOD_NO_PASTA", "1")
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", stderr_of(&started));
    env.busybox();
    register_services(&env);
    let client = env.pod_file(
        "client",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - {name: c, image: localhost/busybox, command: [sleep, "3600"]}
"#,
    );
    env.ok(["run", "-d", client.to_str().unwrap()]);
    let resolv = env.ok(["exec", "client", "c", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.starts_with("search default.svc.corp.test svc.corp.test corp.test"),
        "{resolv}"
    );
    let out = lookup(&env, "web");
    assert!(
        answered(&out, "web.default.svc.corp.test", "10.89.0.10"),
        "{out}"
    );
    // Not ours under this domain, and there is no route out: SERVFAIL at once.
    let asked = std::time::Instant::now();
    let out = lookup(&env, "web.default.svc.cluster.local");
    assert!(
        out.contains("can't find web.default.svc.cluster.local: SERVFAIL"),
        "{out}"
    );
    assert!(asked.elapsed() < std::time::Duration::from_secs(3), "{out}");
}
