//! The pod network, as the unprivileged user: addresses from the lease
//! file, pod-to-pod traffic over the bridge, hostPort from the host (TCP and
//! UDP), busy ports, many pods at once, hostNetwork, and nothing left over.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{TestEnv, env_with_busybox, free_port, stderr_of, stdout_of, wait_until};

fn pod_ip(env: &TestEnv, pod: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(["inspect", pod])).unwrap();
    v["status"]["podIP"]
        .as_str()
        .unwrap_or_else(|| panic!("no podIP: {v}"))
        .to_string()
}

/// Links in the holder's uplink netns (`ip -o link`, through nsenter: tests
/// may use iproute2 to look; minipod itself speaks netlink).
fn uplink_links(env: &TestEnv) -> Vec<String> {
    let pid = env.holder_pid().unwrap().to_string();
    let user = common::test_user();
    let mut cmd = Command::new("nsenter");
    cmd.args([
        "--target",
        &pid,
        "--user",
        "--net",
        "--preserve-credentials",
        "ip",
        "-o",
        "link",
    ]);
    if user.switch {
        use std::os::unix::process::CommandExt;
        cmd.uid(user.uid).gid(user.gid);
    }
    let out = cmd.output().unwrap();
    stdout_of(&out)
        .lines()
        .filter_map(|l| {
            l.split(':')
                .nth(1)
                .map(|n| n.trim().split('@').next().unwrap().to_string())
        })
        .collect()
}

fn leases(env: &TestEnv) -> usize {
    let text = std::fs::read_to_string(env.runroot.join("ipam.json")).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["leases"].as_object().map(|o| o.len()))
        .unwrap_or(0)
}

/// The pods' veths in the uplink netns: every link but the holder's own
/// (lo, the bridge and pasta's tap).
fn pod_veths(env: &TestEnv) -> Vec<String> {
    uplink_links(env)
        .into_iter()
        .filter(|l| !matches!(l.as_str(), "lo" | "minipod0" | "pasta0"))
        .collect()
}

fn assert_network_clean(env: &TestEnv) {
    assert_eq!(leases(env), 0, "leases left");
    // The kernel deletes a dead netns (and with it the veth pair) from a
    // work queue, a moment after its last process exited.
    let mut links = Vec::new();
    let gone = (0..200).any(|_| {
        links = pod_veths(env);
        let clean = links.is_empty();
        if !clean {
            std::thread::sleep(Duration::from_millis(50));
        }
        clean
    });
    assert!(gone, "veths left: {links:?}");
}

#[test]
fn eth0_has_the_leased_address_and_pods_talk_over_the_bridge() {
    let env = env_with_busybox();
    let server = env.pod_file(
        "server",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: server}
spec:
  containers:
  - name: web
    image: localhost/busybox
    command: [sh, -c, 'mkdir -p /www; echo served-by-$(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www']
"#,
    );
    env.ok(["run", "-d", server.to_str().unwrap()]);
    let ip = pod_ip(&env, "server");
    assert!(ip.starts_with("10.88."), "{ip}");
    let out = env.ok([
        "exec", "server", "web", "--", "ip", "-o", "-4", "addr", "show", "eth0",
    ]);
    assert!(
        out.contains(&format!("inet {ip}/16")),
        "eth0 has the leased address: {out}"
    );
    let hosts = env.ok(["exec", "server", "web", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\tserver")), "{hosts}");

    let out = env.run_pod(
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  containers:
  - name: fetch
    image: localhost/busybox
    command: [sh, -c, 'for i in $(seq 50); do wget -q -O - http://{ip}:8080/ && exit 0; sleep 0.1; done; exit 1']
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
    assert!(
        stdout_of(&out).contains("fetch | served-by-server"),
        "{}",
        stdout_of(&out)
    );
    env.ok(["down", "server"]);
    assert_network_clean(&env);
}

#[test]
fn host_ports_reach_the_pod_over_tcp_and_udp() {
    let env = env_with_busybox();
    // A UDP echo server: busybox has none, so the test builds one.
    let udpecho = env.work().join("udpecho-rootfs/bin");
    std::fs::create_dir_all(&udpecho).unwrap();
    let cc = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(udpecho.join("udpecho"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/udpecho.c"))
        .status();
    let have_udp = cc.is_ok_and(|s| s.success());
    if have_udp {
        env.give_to_user(&env.work().join("udpecho-rootfs"));
        env.ok([
            "import",
            env.work().join("udpecho-rootfs").to_str().unwrap(),
            "localhost/udpecho:1",
        ]);
    } else {
        eprintln!("UDP part skipped: no C compiler to build the UDP echo server");
    }
    let tcp_port = free_port();
    let udp_port = free_port();
    let mut yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: ports}}
spec:
  containers:
  - name: web
    image: localhost/busybox
    command: [sh, -c, 'mkdir -p /www; echo over-hostport > /www/index.html; exec httpd -f -p 8080 -h /www']
    ports: [{{containerPort: 8080, hostPort: {tcp_port}}}]
"#
    );
    if have_udp {
        yaml.push_str(&format!(
            "  - name: echo\n    image: localhost/udpecho:1\n    command: [/bin/udpecho, \"9999\"]\n    ports: [{{containerPort: 9999, hostPort: {udp_port}, protocol: UDP, hostIP: 127.0.0.1}}]\n"
        ));
    }
    let file = env.pod_file("ports", &yaml);
    // UDP peers idle for 3 s are let go (60 s by default).
    let out = env
        .command(["run", "-d", file.to_str().unwrap()])
        .env("MINIPOD_UDP_IDLE_SECONDS", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

    let mut body = String::new();
    wait_until(
        "the TCP hostPort to answer",
        Duration::from_secs(10),
        || {
            body = http_get(tcp_port).unwrap_or_default();
            body.contains("over-hostport")
        },
    );
    if have_udp {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut got = String::new();
        wait_until("the UDP hostPort to echo", Duration::from_secs(10), || {
            sock.send_to(b"ping-over-udp", ("127.0.0.1", udp_port))
                .unwrap();
            let mut buf = [0u8; 64];
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                got = String::from_utf8_lossy(&buf[..n]).to_string();
            }
            got == "ping-over-udp"
        });
        // The peer has a relay thread in the supervisor until it has been
        // idle for MINIPOD_UDP_IDLE_SECONDS; after that a new one serves it.
        let supervisor = env.pod_state_json("ports")["supervisor_pid"]
            .as_i64()
            .unwrap();
        assert_eq!(threads_named(supervisor, "udp-peer"), 1);
        wait_until("the idle UDP peer to go", Duration::from_secs(15), || {
            threads_named(supervisor, "udp-peer") == 0
        });
        sock.send_to(b"again", ("127.0.0.1", udp_port)).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"again");
    }

    // A second pod wanting the same host port is refused before it starts.
    let clash = env.pod_file(
        "clash",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: clash}}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sleep, \"31400\"]\n    ports: [{{containerPort: 80, hostPort: {tcp_port}}}]\n"
        ),
    );
    let err = env.fails(["run", clash.to_str().unwrap()]);
    assert!(
        err.contains(&format!("hostPort {tcp_port}/TCP")) && err.contains("in use"),
        "{err}"
    );
    env.ok(["down", "ports"]);
    assert_network_clean(&env);
}

#[test]
fn a_busy_or_privileged_host_port_is_refused_clearly() {
    let env = env_with_busybox();
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: busy}}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sleep, \"31401\"]\n    ports: [{{containerPort: 80, hostPort: {port}}}]\n"
    );
    let out = env.run_pod(&yaml, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!("hostPort {port}/TCP")) && err.contains("in use"),
        "{err}"
    );
    assert!(env.pod_state().is_empty());
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if start > 80 {
        let out = env.run_pod(&yaml.replace(&port.to_string(), "80"), &[]);
        assert!(
            stderr_of(&out).contains("ip_unprivileged_port_start"),
            "{}",
            stderr_of(&out)
        );
    }
    assert_network_clean(&env);
}

#[test]
fn twenty_pods_at_once_get_distinct_addresses_and_reach_the_gateway() {
    let env = env_with_busybox();
    env.start_sleeper_pods_at_once("n", 20, "3150");
    let mut ips: Vec<String> = (0..20).map(|i| pod_ip(&env, &format!("n{i}"))).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "distinct: {ips:?}");
    assert_eq!(leases(&env), 20);
    for i in 0..20 {
        // Nothing listens on the gateway: a refused connection proves the
        // packet got there and back.
        let out = env.run([
            "exec",
            &format!("n{i}"),
            "c",
            "--",
            "sh",
            "-c",
            "nc 10.88.0.1 9 </dev/null 2>&1; true",
        ]);
        let text = stdout_of(&out);
        assert!(text.contains("refused"), "n{i} reaches the gateway: {text}");
    }
    let mut args = vec!["rm".to_string(), "-f".to_string()];
    args.extend((0..20).map(|i| format!("n{i}")));
    env.ok(&args);
    assert_network_clean(&env);
}

#[test]
fn host_network_uses_the_hosts_namespace() {
    let env = env_with_busybox();
    let port = free_port();
    let file = env.pod_file(
        "hostnet",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: hostnet}}\nspec:\n  hostNetwork: true\n  containers:\n  - name: web\n    image: localhost/busybox\n    command: [sh, -c, 'mkdir -p /www; echo on-host-net > /www/index.html; exec httpd -f -p {port} -h /www']\n"
        ),
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let mut body = String::new();
    wait_until(
        "the server on the host's network",
        Duration::from_secs(10),
        || {
            body = http_get(port).unwrap_or_default();
            body.contains("on-host-net")
        },
    );
    assert_eq!(leases(&env), 0, "no address is leased for hostNetwork");
    env.ok(["down", "hostnet"]);
}

#[test]
fn killing_the_supervisor_leaves_no_veth_and_the_lease_is_reclaimed() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "k",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: k}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox, command: [sleep, \"31600\"]}\n",
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    assert_eq!(leases(&env), 1);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.runroot.join("pods/k/state.json")).unwrap())
            .unwrap();
    let pid = state["supervisor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the veth to go", Duration::from_secs(10), || {
        pod_veths(&env).is_empty()
    });
    env.ok(["rm", "k"]);
    // The dead owner's lease is reclaimed by the next pod.
    let out = env.run_pod(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: next}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: localhost/busybox, command: [true]}\n",
        &[],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_network_clean(&env);
}

fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn outbound_through_the_holders_pasta_reaches_a_service_on_the_hosts_loopback() {
    let tun_open = std::fs::metadata("/dev/net/tun")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006)
        .unwrap_or(false);
    let pasta = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join("pasta").is_file());
    if !(tun_open && pasta) {
        eprintln!(
            "skipped: pasta is not installed or /dev/net/tun is not open to users (scripts/setup-host does both)"
        );
        return;
    }
    let env = env_with_busybox();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming().take(8) {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nfrom-the-host-loopback\n");
        }
    });
    let out = env.run_pod(
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: outbound}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'wget -q -O - http://host.containers.internal:{port}/']
"#
        ),
        &[],
    );
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{stdout}{}", stderr_of(&out));
    assert!(stdout.contains("c | from-the-host-loopback"), "{stdout}");
    // One pasta serves every pod: with two more pods up and out through it,
    // the holder still has one pasta child, and no pod has its own.
    for name in ["out1", "out2"] {
        let file = env.pod_file(
            name,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sh, -c, 'wget -q -O - http://host.containers.internal:{port}/ && exec sleep 3600']\n"
            ),
        );
        env.ok(["run", "-d", file.to_str().unwrap()]);
    }
    for name in ["out1", "out2"] {
        wait_until(
            "both pods to reach the host",
            Duration::from_secs(10),
            || env.ok(["logs", name]).contains("from-the-host-loopback"),
        );
    }
    let record = std::fs::read_to_string(env.runroot.join("holder.pid")).unwrap();
    let holder: serde_json::Value = serde_json::from_str(&record).unwrap();
    let holder_pid = env.holder_pid().unwrap();
    let pastas: Vec<_> = common::children_of(holder_pid)
        .into_iter()
        .filter(|(_, comm, _)| comm.starts_with("pasta") || comm.starts_with("passt"))
        .collect();
    assert_eq!(pastas.len(), 1, "one pasta, the holder's: {pastas:?}");
    assert!(holder["host_gateway"].is_string(), "{record}");
    let gateway = holder["host_gateway"].as_str().unwrap();
    let hosts = env.ok(["exec", "out1", "c", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{gateway}\thost.containers.internal")),
        "{hosts}"
    );
    for name in ["out1", "out2"] {
        env.ok(["down", name]);
    }
    assert_network_clean(&env);
}

/// How many threads of process `pid` are named `name`.
fn threads_named(pid: i64, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .count()
}
