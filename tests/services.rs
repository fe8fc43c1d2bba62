//! Services, as the unprivileged user: a virtual IP forwarded to the pods a
//! selector matches (port ≠ targetPort, a named targetPort), balanced among
//! replicas, hairpin, readiness taking a pod out and back, `down FILE`
//! removing the Service and its rules, NodePort and LoadBalancer Services
//! reached from the host, and the spec's refusals.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestEnv, env_with_busybox, stderr_of, stdout_of, wait_until};

/// A Deployment of `replicas` httpd pods answering their hostname on 8080
/// (container port `http`), and a Service `web` on port 80 → `http`.
fn web(replicas: u32, readiness: bool) -> String {
    let probe = if readiness {
        "\n        readinessProbe:\n          exec: {command: [test, -f, /tmp/ready]}\n          periodSeconds: 1\n          failureThreshold: 1"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: localhost/busybox
        command: [sh, -c, 'touch /tmp/ready; mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 8080 -h /www']
        ports: [{{name: http, containerPort: 8080}}]{probe}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: http
"#
    )
}

const CLIENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
      - name: c
        image: localhost/busybox
        command: [sleep, "3600"]
"#;

fn services(env: &TestEnv) -> serde_json::Value {
    serde_json::from_str(&env.ok(["service", "ls", "--format", "json"])).unwrap()
}

fn pods_of(env: &TestEnv, app: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(["ps", "--format", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| n.starts_with(&format!("{app}-")))
        .map(str::to_string)
        .collect()
}

/// `wget` of `url` `times` times (busybox's `wget -T` crashes: `timeout`) from a container: the bodies that came
/// back (one per line), and how many failed.
fn fetch(env: &TestEnv, pod: &str, container: &str, url: &str, times: u32) -> (Vec<String>, u32) {
    let script = format!(
        "f=0; for i in $(seq {times}); do timeout 3 wget -q -O - {url} || f=$((f+1)); done; echo failed=$f"
    );
    let out = env.run(["exec", pod, container, "--", "sh", "-c", &script]);
    let text = stdout_of(&out);
    let failed = text
        .lines()
        .find_map(|l| l.strip_prefix("failed="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}{}", stderr_of(&out)));
    let bodies = text
        .lines()
        .filter(|l| !l.starts_with("failed="))
        .map(str::to_string)
        .collect();
    (bodies, failed)
}

#[test]
fn a_service_forwards_to_its_pods_balanced_and_goes_with_down() {
    let env = env_with_busybox();
    let web_file = env.pod_file("web", &web(2, false));
    let client_file = env.pod_file("client", CLIENT);
    env.ok(["run", "-d", "--wait", "ready", web_file.to_str().unwrap()]);
    env.ok([
        "run",
        "-d",
        "--wait",
        "ready",
        client_file.to_str().unwrap(),
    ]);

    let svc = services(&env);
    let web = &svc[0];
    assert_eq!(web["name"], "web", "{svc}");
    let vip = web["clusterIp"].as_str().unwrap().to_string();
    assert!(vip.starts_with("10.89."), "{vip}");
    wait_until("both replicas serve", Duration::from_secs(20), || {
        let svc = services(&env);
        svc[0]["endpoints"]
            .as_array()
            .is_some_and(|e| e.len() == 2 && e.iter().all(|e| e["ready"] == true))
    });
    let svc = services(&env);
    for e in svc[0]["endpoints"].as_array().unwrap() {
        assert_eq!(e["targetPorts"][0], 8080, "the named targetPort: {svc}");
    }
    let table = env.ok(["service", "ls"]);
    assert!(
        table.contains("default/web") && table.contains(&vip),
        "{table}"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&env.ok(["inspect", "service/web"])).unwrap();
    assert_eq!(inspected["kind"], "Service");
    assert_eq!(inspected["spec"]["clusterIP"], vip.as_str());
    assert_eq!(
        inspected["endpoints"]["subsets"][0]["addresses"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{inspected}"
    );

    // From another Deployment's pod: port 80 of the virtual IP reaches
    // 8080 of both replicas.
    let client = pods_of(&env, "client").remove(0);
    let (bodies, failed) = fetch(&env, &client, "c", &format!("http://{vip}:80/"), 24);
    assert_eq!(failed, 0, "{bodies:?}");
    let served: BTreeSet<String> = bodies.into_iter().collect();
    let replicas: BTreeSet<String> = pods_of(&env, "web").into_iter().collect();
    assert_eq!(served, replicas, "both replicas answer");

    // down FILE: the pods and the Service go, and so do its rules.
    let out = env.ok(["down", web_file.to_str().unwrap()]);
    assert!(out.contains("service default/web"), "{out}");
    assert_eq!(services(&env), serde_json::json!([]));
    let (bodies, failed) = fetch(&env, &client, "c", &format!("http://{vip}/"), 1);
    assert_eq!((bodies.len(), failed), (0, 1), "{bodies:?}");
    env.ok(["down", client_file.to_str().unwrap()]);
}

#[test]
fn a_pod_that_is_not_ready_leaves_the_endpoints_and_comes_back() {
    let env = env_with_busybox();
    let web_file = env.pod_file("web", &web(1, true));
    let client_file = env.pod_file("client", CLIENT);
    env.ok(["run", "-d", "--wait", "ready", web_file.to_str().unwrap()]);
    env.ok([
        "run",
        "-d",
        "--wait",
        "ready",
        client_file.to_str().unwrap(),
    ]);
    let vip = services(&env)[0]["clusterIp"].as_str().unwrap().to_string();
    let ready = |env: &TestEnv| services(env)[0]["endpoints"][0]["ready"] == true;
    wait_until("the pod serves", Duration::from_secs(20), || ready(&env));
    let client = pods_of(&env, "client").remove(0);
    let web = pods_of(&env, "web").remove(0);
    let url = format!("http://{vip}/");
    assert_eq!(fetch(&env, &client, "c", &url, 1), (vec![web.clone()], 0));

    env.ok(["exec", &web, "web", "--", "rm", "/tmp/ready"]);
    wait_until("the pod is not ready", Duration::from_secs(20), || {
        !ready(&env)
    });
    let (bodies, failed) = fetch(&env, &client, "c", &url, 1);
    assert_eq!((bodies.len(), failed), (0, 1), "no endpoint: {bodies:?}");
    let ls = env.ok(["service", "ls"]);
    assert!(ls.contains("<none>"), "{ls}");

    env.ok(["exec", &web, "web", "--", "touch", "/tmp/ready"]);
    wait_until("the pod is ready again", Duration::from_secs(20), || {
        ready(&env)
    });
    assert_eq!(fetch(&env, &client, "c", &url, 1), (vec![web], 0));
    env.ok(["down", web_file.to_str().unwrap()]);
    env.ok(["down", client_file.to_str().unwrap()]);
}

#[test]
fn services_minipod_cannot_honour_are_refused_with_their_paths() {
    let env = TestEnv::new();
    let file = env.pod_file(
        "bad",
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
  - port: 81
    protocol: SCTP
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: example.com
"#,
    );
    let err = env.fails(["run", "-d", file.to_str().unwrap()]);
    assert!(!err.contains("spec.type: type NodePort"), "{err}");
    assert!(
        err.contains(":9: spec.ports[0].name: Required value"),
        "{err}"
    );
    assert!(err.contains(":11: spec.ports[1].protocol: SCTP"), "{err}");
    assert!(
        err.contains("spec.type: type ExternalName is not supported"),
        "{err}"
    );
    assert!(!env.runroot.join("services.json").exists());
}

/// A pod reaching a Service that selects only itself (hairpin): with
/// br_netfilter the DNAT happens on the bridge and the frame goes back out
/// of the pod's own port (hairpin mode), masqueraded so the reply returns.
#[test]
fn hairpin_a_pod_reaches_a_service_that_selects_itself() {
    let env = env_with_busybox();
    let web_file = env.pod_file("web", &web(1, false));
    env.ok(["run", "-d", "--wait", "ready", web_file.to_str().unwrap()]);
    let vip = services(&env)[0]["clusterIp"].as_str().unwrap().to_string();
    wait_until("the pod serves", Duration::from_secs(20), || {
        services(&env)[0]["endpoints"][0]["ready"] == true
    });
    let web = pods_of(&env, "web").remove(0);
    let (bodies, failed) = fetch(&env, &web, "web", &format!("http://{vip}/"), 3);
    env.ok(["down", web_file.to_str().unwrap()]);
    assert_eq!((bodies, failed), (vec![web.clone(); 3], 0));
}

/// A free TCP port of the host (bound, read back, let go).
fn free_host_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An HTTP GET of `/` on the host's loopback: the body, or why not.
fn get_from_host(port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .ok_or(reply)
}

/// NodePort and LoadBalancer Services, reached from the host: the nodePort
/// minipod picked (balanced over both replicas), a LoadBalancer on its own
/// port, a busy nodePort and a port below the unprivileged start refused
/// before anything starts, and `down FILE` closing the host ports.
#[test]
fn node_port_and_load_balancer_services_are_reached_from_the_host() {
    let env = env_with_busybox();
    let lb_port = free_host_port();
    let yaml = web(2, false).replace(
        "  ports:\n  - port: 80\n    targetPort: http\n",
        "  type: NodePort\n  ports:\n  - port: 80\n    targetPort: http\n",
    ) + &format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: front}}\nspec:\n  type: LoadBalancer\n  allocateLoadBalancerNodePorts: false\n  selector: {{app: web}}\n  ports: [{{port: {lb_port}, targetPort: 8080}}]\n"
    );
    let file = env.pod_file("web", &yaml);
    env.ok(["run", "-d", "--wait", "ready", file.to_str().unwrap()]);
    let svc = services(&env);
    let front = &svc[0];
    let web = &svc[1];
    assert_eq!(
        (&front["name"], &web["name"]),
        (&"front".into(), &"web".into()),
        "{svc}"
    );
    let node_port = web["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    assert!((30000..=32767).contains(&node_port), "{svc}");
    assert_eq!(
        front["ports"][0]["nodePort"],
        serde_json::Value::Null,
        "{svc}"
    );
    let ls = env.ok(["service", "ls"]);
    assert!(
        ls.contains(&format!("0.0.0.0:{node_port}->80/tcp"))
            && ls.contains(&format!("0.0.0.0:{lb_port}->{lb_port}/tcp")),
        "{ls}"
    );
    wait_until("both replicas serve", Duration::from_secs(20), || {
        services(&env)[1]["endpoints"]
            .as_array()
            .is_some_and(|e| e.len() == 2 && e.iter().all(|e| e["ready"] == true))
    });
    let replicas: BTreeSet<String> = pods_of(&env, "web").into_iter().collect();
    let mut served = BTreeSet::new();
    for _ in 0..24 {
        served.insert(get_from_host(node_port).expect("the nodePort answers"));
    }
    assert_eq!(served, replicas, "both replicas answer on the nodePort");
    let body = get_from_host(lb_port).expect("the LoadBalancer's port answers");
    assert!(replicas.contains(&body), "{body}");
    let inspected: serde_json::Value =
        serde_json::from_str(&env.ok(["inspect", "service/front"])).unwrap();
    assert_eq!(
        inspected["status"]["loadBalancer"]["ingress"][0]["ip"], "127.0.0.1",
        "{inspected}"
    );

    // A nodePort another process holds, and a LoadBalancer on port 80:
    // refused, naming the port and what to do, and nothing of them stays.
    let squatter = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let busy = env.pod_file(
        "busy",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: busy}}\nspec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports: [{{port: {taken}}}]\n"
        ),
    );
    let err = env.fails(["run", "-d", busy.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "Service default/busy spec.ports[0].port: port {taken}/TCP on 0.0.0.0 is already in use"
        )),
        "{err}"
    );
    let low = env.pod_file(
        "low",
        "apiVersion: v1\nkind: Service\nmetadata: {name: low}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n",
    );
    let err = env.fails(["run", "-d", low.to_str().unwrap()]);
    assert!(err.contains("ip_unprivileged_port_start"), "{err}");
    assert_eq!(services(&env).as_array().map(Vec::len), Some(2));
    drop(squatter);

    // down FILE: the host ports close with the Services.
    env.ok(["down", file.to_str().unwrap()]);
    assert!(get_from_host(node_port).is_err());
    assert!(get_from_host(lb_port).is_err());
    std::net::TcpListener::bind(("0.0.0.0", node_port)).expect("the nodePort is free again");
}

#[test]
fn a_file_of_services_alone_registers_them_and_down_removes_them() {
    let env = TestEnv::new();
    let file = env.pod_file(
        "svc",
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: 10.89.0.53\n  selector: {app: db}\n  ports:\n  - {port: 5432, targetPort: pg}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: peers}\nspec:\n  clusterIP: None\n  selector: {app: db}\n",
    );
    let dry = env.ok(["run", "--dry-run", file.to_str().unwrap()]);
    assert!(
        dry.contains("would create Service default/db (clusterIP 10.89.0.53"),
        "{dry}"
    );
    let out = env.run(["run", "-d", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("Service db selects no pod (selector app=db)"),
        "{}",
        stderr_of(&out)
    );
    let svc = services(&env);
    assert_eq!(svc[0]["name"], "db");
    assert_eq!(svc[0]["clusterIp"], "10.89.0.53");
    assert_eq!(svc[1]["clusterIp"], serde_json::Value::Null);
    let ls = env.ok(["service", "ls"]);
    assert!(ls.contains("5432→pg/TCP") && ls.contains("None"), "{ls}");
    // Given again, a Service keeps its address; another file cannot take it.
    env.ok(["run", "-d", file.to_str().unwrap()]);
    assert_eq!(services(&env)[0]["clusterIp"], "10.89.0.53");
    let other = env.pod_file(
        "other",
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: 10.89.0.53\n  ports: [{port: 1}]\n",
    );
    let err = env.fails(["run", "-d", other.to_str().unwrap()]);
    assert!(
        err.contains("clusterIP 10.89.0.53 is already Service default/db's"),
        "{err}"
    );
    let out = env.ok(["down", file.to_str().unwrap()]);
    assert!(
        out.contains("service default/db") && out.contains("service default/peers"),
        "{out}"
    );
    assert_eq!(services(&env), serde_json::json!([]));
    assert!(
        env.holder_pid().is_none(),
        "no holder was started for Services alone"
    );
}

#[test]
fn a_pod_being_stopped_leaves_the_endpoints_at_once() {
    let env = env_with_busybox();
    // PID 1 catches SIGTERM and keeps serving: the stop waits for its grace.
    let file = env.pod_file(
        "slow",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: slow, labels: {app: slow}}
spec:
  containers:
  - name: web
    image: localhost/busybox
    command: [sh, -c, 'trap "echo term" TERM; mkdir -p /www; hostname > /www/index.html; httpd -f -p 8080 -h /www & while true; do wait; done']
---
apiVersion: v1
kind: Service
metadata: {name: slow}
spec:
  selector: {app: slow}
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    env.ok(["run", "-d", "--wait", "ready", file.to_str().unwrap()]);
    wait_until("the pod serves", Duration::from_secs(20), || {
        services(&env)[0]["endpoints"][0]["ready"] == true
    });
    let mut stop = env.command(["stop", "-t", "8", "slow"]).spawn().unwrap();
    wait_until("the stopping pod leaves", Duration::from_secs(5), || {
        services(&env)[0]["endpoints"] == serde_json::json!([])
    });
    assert!(
        stop.try_wait().unwrap().is_none(),
        "the pod still stops while it is out of the endpoints"
    );
    assert!(stop.wait().unwrap().success());
    env.ok(["down", file.to_str().unwrap()]);
}

/// Both halves together, as an application written for a cluster uses
/// them: a client reaches `web` by name (the search path, port 80 →
/// `http`), a StatefulSet's pods answer as `POD.SERVICE` under their
/// headless Service, and a pod started after the Services gets their
/// environment variables.
#[test]
fn an_application_finds_its_services_and_statefulset_pods_by_name() {
    let env = env_with_busybox();
    let web_file = env.pod_file("web", &web(1, false));
    let db_file = env.pod_file(
        "db",
        r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: localhost/busybox
        command: [sleep, "3600"]
"#,
    );
    env.ok(["run", "-d", "--wait", "ready", web_file.to_str().unwrap()]);
    env.ok(["run", "-d", "--wait", "ready", db_file.to_str().unwrap()]);
    let client_file = env.pod_file("client", CLIENT);
    env.ok([
        "run",
        "-d",
        "--wait",
        "ready",
        client_file.to_str().unwrap(),
    ]);
    let client = pods_of(&env, "client").pop().unwrap();
    let (bodies, failed) = fetch(&env, &client, "c", "http://web/", 3);
    assert_eq!(failed, 0, "{bodies:?}");
    let web_pod = pods_of(&env, "web").pop().unwrap();
    assert!(bodies.iter().all(|b| *b == web_pod), "{bodies:?}");

    let ip_of = |pod: &str| {
        common::inspect(&env, pod)["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (name, pod) in [
        // (busybox's nslookup searches only names without a dot.)
        ("db-0.db.default.svc.cluster.local", "db-0"),
        ("db-1.db.default.svc.cluster.local", "db-1"),
    ] {
        let out = env.run(["exec", &client, "c", "--", "nslookup", name]);
        let text = stdout_of(&out);
        assert!(
            text.contains(&ip_of(pod)),
            "{name}: {text}{}{}",
            stderr_of(&out),
            services(&env)
        );
    }
    // kubelet's hosts file: the pod's FQDN before its name.
    let hosts = env.ok(["exec", "db-0", "db", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!(
            "{}\tdb-0.db.default.svc.cluster.local\tdb-0\n",
            ip_of("db-0")
        )),
        "{hosts}"
    );
    // The headless name answers with both pods.
    let text = stdout_of(&env.run(["exec", &client, "c", "--", "nslookup", "db"]));
    assert!(
        text.contains(&ip_of("db-0")) && text.contains(&ip_of("db-1")),
        "{text}"
    );

    let vip = services(&env)
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap()["clusterIp"]
        .as_str()
        .unwrap()
        .to_string();
    let environment = env.ok(["exec", &client, "c", "--", "env"]);
    assert!(
        environment.contains(&format!("WEB_SERVICE_HOST={vip}\n")),
        "{environment}"
    );
    assert!(
        environment.contains("WEB_SERVICE_PORT=80\n"),
        "{environment}"
    );
    // A headless Service gives no variables.
    assert!(!environment.contains("DB_SERVICE_HOST"), "{environment}");
    for file in [&client_file, &db_file, &web_file] {
        env.ok(["down", file.to_str().unwrap()]);
    }
}
