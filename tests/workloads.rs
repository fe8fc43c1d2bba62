//! Workload kinds, several objects and files per `run`, `down FILE`,
//! `--dry-run`, and the warnings and refusals of issue 12 — as the
//! unprivileged user, against the real kernel.

mod common;

use std::time::Duration;

use common::{TestEnv, env_with_busybox, stderr_of, stdout_of, wait_until};

fn ps_json(env: &TestEnv) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&env.ok(["ps", "-a", "--format", "json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn names_of(pods: &[serde_json::Value]) -> Vec<String> {
    let mut names: Vec<String> = pods
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  strategy: {type: RollingUpdate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: srv
        image: localhost/busybox
        command: [sh, -c, 'echo up; exec sleep 31201']
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
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
      terminationGracePeriodSeconds: 2
      containers:
      - name: db
        image: localhost/busybox
        command: [sh, -c, 'hostname; exec sleep 31202']
"#;

#[test]
fn a_file_of_workloads_runs_replicas_with_their_names_and_down_file_removes_them() {
    let env = env_with_busybox();
    let file = env.pod_file("app", APP);
    let out = env.run(["run", "-d", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    // The Service is registered (tests/services.rs runs them), and
    // serviceName has its meaning: nothing warns of either.
    assert!(!stderr.contains("Service/web"), "{stderr}");
    assert!(!stderr.contains("spec.serviceName"), "{stderr}");
    assert!(env.ok(["service", "ls"]).contains("default/web"));
    let stdout = stdout_of(&out);
    let started: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(started.len(), 4, "{started:?}");
    // A StatefulSet's pods start in order: db-0 before db-1.
    let db0 = started.iter().position(|n| *n == "db-0").unwrap();
    let db1 = started.iter().position(|n| *n == "db-1").unwrap();
    assert!(db0 < db1, "{started:?}");

    let pods = ps_json(&env);
    let names = names_of(&pods);
    let web: Vec<&String> = names.iter().filter(|n| n.starts_with("web-")).collect();
    assert_eq!(web.len(), 2, "{names:?}");
    // NAME-<template hash>-<5 characters>, the hash shared.
    let hash = web[0].split('-').nth(1).unwrap();
    assert!(web[1].starts_with(&format!("web-{hash}-")), "{names:?}");
    assert_eq!(web[0].rsplit('-').next().unwrap().len(), 5);
    for p in &pods {
        let name = p["name"].as_str().unwrap();
        let kind = if name.starts_with("web-") {
            "Deployment"
        } else {
            "StatefulSet"
        };
        assert_eq!(p["workload"]["kind"], kind, "{p}");
        assert_eq!(p["phase"], "Running", "{p}");
    }
    // Each pod has an address of its own.
    let mut ips: Vec<&str> = pods.iter().map(|p| p["podIP"].as_str().unwrap()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "{pods:?}");
    // The table shows the workload.
    let table = env.ok(["ps"]);
    assert!(
        table.contains("Deployment/web") && table.contains("StatefulSet/db"),
        "{table}"
    );
    // The pod carries the template's labels and the controller's.
    let pod: serde_json::Value = serde_json::from_str(&env.ok(["inspect", "db-1"])).unwrap();
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["app"], "db");
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    // Its controller names it under its Service: hostname and subdomain.
    assert_eq!(pod["spec"]["hostname"], "db-1", "{pod}");
    assert_eq!(pod["spec"]["subdomain"], "db", "{pod}");
    let web_pod: serde_json::Value =
        serde_json::from_str(&env.ok(["inspect", web[0].as_str()])).unwrap();
    assert_eq!(web_pod["metadata"]["labels"]["pod-template-hash"], hash);
    // A StatefulSet pod's hostname is its name.
    wait_until("db-1's output", Duration::from_secs(10), || {
        env.ok(["logs", "db-1"]).contains("db-1")
    });

    // A second run of the same workloads is refused; --replace replaces them.
    let err = env.fails(["run", "-d", file.to_str().unwrap()]);
    assert!(
        err.contains("is already running") && err.contains("--replace"),
        "{err}"
    );
    let out = env.ok(["run", "-d", "--replace", file.to_str().unwrap()]);
    assert_eq!(out.lines().count(), 4, "{out}");
    let after = names_of(&ps_json(&env));
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(
        !after.contains(web[0]) && !after.contains(web[1]),
        "{after:?}"
    );

    // down FILE removes what the records name, even after the file changed.
    std::fs::write(&file, APP.replace("name: web", "name: web2")).unwrap();
    let out = env.ok(["down", file.to_str().unwrap()]);
    // Four pods, and the file's Service.
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.contains("service default/web"), "{out}");
    assert!(ps_json(&env).is_empty());
    // Its own markers only: another test here runs `sleep 31203` meanwhile.
    for marker in ["sleep 31201", "sleep 31202"] {
        assert!(common::live_processes(marker).is_empty(), "{marker}");
    }
}

#[test]
fn several_files_and_pods_in_the_foreground_share_the_terminal() {
    let env = env_with_busybox();
    let pod = |name: &str, code: u8| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - {{name: c, image: localhost/busybox, command: [sh, -c, 'echo hello from {name}; sleep 0.3; exit {code}']}}\n"
        )
    };
    let a = env.pod_file("a", &format!("{}---\n{}", pod("one", 0), pod("two", 3)));
    let b = env.pod_file("b", &pod("three", 0));
    let out = env.run(["run", a.to_str().unwrap(), b.to_str().unwrap()]);
    let stdout = stdout_of(&out);
    for name in ["one", "two", "three"] {
        assert!(
            stdout.contains(&format!("{name}/c | hello from {name}")),
            "{stdout}\n{}",
            stderr_of(&out)
        );
    }
    // The first non-zero code of the pods.
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    // Foreground pods are gone when run returns.
    assert!(ps_json(&env).is_empty());
}

#[test]
fn ctrl_c_stops_every_pod_of_a_foreground_run() {
    let env = env_with_busybox();
    let yaml = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 2
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec:
      containers:
      - {name: c, image: localhost/busybox, command: [sh, -c, 'trap "echo bye; exit 0" INT TERM; echo ready; while true; do sleep 0.1; done']}
"#;
    let file = env.pod_file("rs", yaml);
    let mut cmd = env.command(["run", file.to_str().unwrap()]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    wait_until("both pods run", Duration::from_secs(30), || {
        ps_json(&env)
            .iter()
            .filter(|p| p["phase"] == "Running")
            .count()
            == 2
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = common::wait_output(child, Duration::from_secs(30));
    let stdout = stdout_of(&out);
    assert_eq!(stdout.matches("| bye").count(), 2, "{stdout}");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(ps_json(&env).is_empty());
}

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: localhost/busybox, command: [sh, -c, 'echo attempt; exit 3']}
"#;

#[test]
fn a_job_retries_up_to_its_backoff_limit_and_exits_with_the_failed_code() {
    let env = env_with_busybox();
    let file = env.pod_file("job", JOB);
    let out = env.run(["run", "--restart-backoff", "0.1", file.to_str().unwrap()]);
    let stdout = stdout_of(&out);
    // backoffLimit 1: the first attempt and one retry.
    assert_eq!(stdout.matches("attempt").count(), 2, "{stdout}");
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("BackoffLimitExceeded"),
        "{}",
        stderr_of(&out)
    );

    // OnFailure: the container restarts in place until it succeeds; the Job
    // completes and run exits 0.
    let job = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: second-time}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      volumes: [{name: scratch, emptyDir: {}}]
      containers:
      - name: work
        image: localhost/busybox
        volumeMounts: [{name: scratch, mountPath: /s}]
        command: [sh, -c, 'if [ -e /s/tried ]; then echo done; exit 0; fi; touch /s/tried; exit 4']
"#;
    let file = env.pod_file("job2", job);
    let out = env.run(["run", "--restart-backoff", "0.1", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("done"));

    // activeDeadlineSeconds ends a Job that runs too long.
    let slow = JOB
        .replace("backoffLimit: 1", "activeDeadlineSeconds: 1")
        .replace("exit 3", "exec sleep 31203");
    let file = env.pod_file("slow", &slow);
    let out = env.run(["run", file.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr_of(&out).contains("DeadlineExceeded"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_detached_job_and_a_cron_job_run_once() {
    let env = env_with_busybox();
    let cron = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - {name: c, image: localhost/busybox, command: [echo, hello from cron]}
"#;
    let file = env.pod_file("cron", cron);
    let out = env.run(["run", "-d", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("the schedule is not followed"),
        "{}",
        stderr_of(&out)
    );
    let name = stdout_of(&out).trim().to_string();
    // hello-<minutes since the epoch>-<5 characters>
    let parts: Vec<&str> = name.split('-').collect();
    assert_eq!(parts.len(), 3, "{name}");
    assert!(parts[1].parse::<u64>().unwrap() > 29_000_000, "{name}");
    let code = env.ok(["wait", &name]);
    assert_eq!(code.trim(), "0");
    assert!(env.ok(["logs", &name]).contains("hello from cron"));
    let pods = ps_json(&env);
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["phase"], "Succeeded");
    assert_eq!(pods[0]["workload"]["kind"], "CronJob");
    env.ok(["down", file.to_str().unwrap()]);
    assert!(ps_json(&env).is_empty());
}

#[test]
fn replicas_zero_runs_nothing_and_a_host_port_cannot_be_shared() {
    let env = TestEnv::new();
    let zero = APP.replace("replicas: 2", "replicas: 0");
    let file = env.pod_file("zero", zero.split("---").next().unwrap());
    let out = env.run(["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("replicas is 0: nothing to run"),
        "{}",
        stderr_of(&out)
    );

    let ports = APP.replace(
        "command: [sh, -c, 'echo up; exec sleep 31201']",
        "ports: [{containerPort: 80, hostPort: 8080}]",
    );
    let file = env.pod_file("ports", &ports);
    let err = env.fails(["run", file.to_str().unwrap()]);
    assert!(
        err.contains("spec.template.spec.containers[0].ports[0].hostPort")
            && err.contains("one pod only"),
        "{err}"
    );
    // Nothing was created.
    assert!(env.holder_pid().is_none());
}

#[test]
fn old_api_versions_and_template_errors_name_their_place() {
    let env = TestEnv::new();
    let old = APP.replacen("apiVersion: apps/v1", "apiVersion: extensions/v1beta1", 1);
    let file = env.pod_file("old", &old);
    let err = env.fails(["run", file.to_str().unwrap()]);
    assert!(
        err.contains(":2: apiVersion:") && err.contains("use apiVersion: apps/v1"),
        "{err}"
    );
    let job = JOB.replace("restartPolicy: Never", "restartPolicy: Always");
    let file = env.pod_file("job", &job);
    let err = env.fails(["run", file.to_str().unwrap()]);
    assert!(
        err.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\""),
        "{err}"
    );
    let probe = APP.replace(
        "command: [sh, -c, 'echo up; exec sleep 31201']",
        "lifecycle: {stopSignal: SIGUSR1}",
    );
    let file = env.pod_file("probe", &probe);
    let err = env.fails(["run", file.to_str().unwrap()]);
    assert!(
        err.contains(
            ":16: spec.template.spec.containers[0].lifecycle.stopSignal: not supported yet"
        ),
        "{err}"
    );
    let claims = format!(
        "{}  volumeClaimTemplates: [{{metadata: {{name: data}}, spec: {{accessModes: [ReadWriteOnce]}}}}]\n",
        APP.split("---").nth(2).unwrap()
    );
    let file = env.pod_file("claims", &claims);
    let err = env.fails(["run", file.to_str().unwrap()]);
    // A template is a claim, checked as the API server checks one.
    assert!(
        err.contains(
            "spec.volumeClaimTemplates[0].spec.resources.requests.storage: Required value"
        ),
        "{err}"
    );
    assert!(env.holder_pid().is_none());
}

#[test]
fn dry_run_says_what_would_run_and_creates_nothing() {
    let env = TestEnv::new();
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  generateName: lint-
  resourceVersion: "12345"
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: 0d7f3a36-8a55-4c1e-9b5e-2f4c1d2e3f40}]
  finalizers: [example.com/cleanup]
  uid: 0d7f3a36-8a55-4c1e-9b5e-2f4c1d2e3f41
  creationTimestamp: "2024-05-01T10:00:00Z"
  annotations:
    container.apparmor.security.beta.kubernetes.io/c: runtime/default
    seccomp.security.alpha.kubernetes.io/pod: runtime/default
spec:
  nodeSelector: {disk: ssd}
  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: disk, operator: In, values: [ssd]}]}]}}}
  priorityClassName: high
  readinessGates: [{conditionType: example.com/ready}]
  serviceAccountName: builder
  enableServiceLinks: false
  imagePullSecrets: [{name: regcred}]
  hostPID: false
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    stdin: false
    tty: false
    securityContext: {privileged: false, allowPrivilegeEscalation: true, readOnlyRootFilesystem: false, capabilities: {}, procMount: Default}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      tolerations: [{operator: Exists}]
      containers: [{name: a, image: docker.io/library/busybox:1.36}]
"#;
    let file = env.pod_file("lint", yaml);
    let out = env.run(["run", "--dry-run", file.to_str().unwrap()]);
    let stdout = stdout_of(&out);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // generateName: the name is made and said.
    assert!(stderr.contains("a Pod is named lint-"), "{stderr}");
    assert!(stdout.contains("pod lint-"), "{stdout}");
    assert!(
        stdout.contains("DaemonSet/agent") && stdout.contains("pod agent-"),
        "{stdout}"
    );
    // Each warning, on the pod it concerns.
    for needle in [
        "spec.nodeSelector",
        "spec.affinity",
        "spec.priorityClassName",
        "spec.readinessGates",
        "spec.serviceAccountName",
        "metadata.resourceVersion",
        "metadata.ownerReferences",
        "metadata.finalizers",
        "container.apparmor.security.beta.kubernetes.io/c=runtime/default",
        "seccomp.security.alpha.kubernetes.io/pod=runtime/default",
        "spec.template.spec.tolerations",
    ] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
    // Honoured (the Service environment variables), so not warned of.
    assert!(!stdout.contains("spec.enableServiceLinks"), "{stdout}");
    // An imagePullSecret that exists nowhere: kubelet's warning, naming it.
    assert!(
        stderr.contains("Secret regcred") && stderr.contains("not found"),
        "{stderr}"
    );
    assert!(
        stdout.contains("would pull docker.io/library/busybox:1.36 (not in the store)"),
        "{stdout}"
    );
    // Nothing was created: no holder, no files.
    assert!(env.holder_pid().is_none());
    for dir in [&env.root, &env.runroot] {
        let entries: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert!(entries.is_empty(), "{} holds {entries:?}", dir.display());
    }
    // A manifest that would not run: 125, with the reason.
    let bad = env.pod_file(
        "bad",
        &yaml.replace("procMount: Default", "procMount: Unmasked"),
    );
    let err = env.fails(["run", "--dry-run", bad.to_str().unwrap()]);
    assert!(err.contains("securityContext.procMount"), "{err}");
    // From stdin.
    let mut cmd = env.command(["run", "--dry-run", "-"]);
    cmd.stdin(std::fs::File::open(&file).unwrap());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("DaemonSet/agent"));
}

#[test]
fn refusals_speak_kubernetes_and_say_each_problem_once() {
    let env = TestEnv::new();
    let yaml = r#"apiVersion: v1
kind: Pod
metadata: {name: Bad_Name}
spec:
  nodeSelector: [disk]
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    ports: [{containerPort: abc}]
    volumeMounts: [{name: data, mountPath: /d}]
  volumes: [{name: data, nfs: {server: nas, path: /data}}]
"#;
    let file = env.pod_file("bad", yaml);
    let err = env.fails(["run", "--dry-run", file.to_str().unwrap()]);
    // Type errors in YAML's words, without Rust's.
    assert!(err.contains(":5:"), "{err}");
    assert!(err.contains("found a list"), "{err}");
    for rust in ["struct ", "BTreeMap", "invalid type", "i32"] {
        assert!(!err.contains(rust), "{rust}: {err}");
    }
    let fixed = yaml
        .replace("nodeSelector: [disk]", "nodeSelector: {disk: ssd}")
        .replace("containerPort: abc", "containerPort: 80");
    let file = env.pod_file("bad", &fixed);
    let err = env.fails(["run", "--dry-run", file.to_str().unwrap()]);
    // The API server's shape, with the value quoted.
    assert!(
        err.contains(":3: metadata.name: Invalid value: \"Bad_Name\""),
        "{err}"
    );
    // The unsupported volume once, with what to do; never also "not found".
    assert!(
        err.contains("spec.volumes[0].nfs: not supported yet")
            && err.contains("use an emptyDir, hostPath, persistentVolumeClaim"),
        "{err}"
    );
    assert!(!err.contains("volumeMounts"), "{err}");
    assert!(env.holder_pid().is_none());
}

#[test]
fn a_pod_still_starting_neither_holds_back_the_others_nor_ctrl_c() {
    let env = env_with_busybox();
    // `slow` never gets past its init container; `quick` runs meanwhile.
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - {name: wait, image: localhost/busybox, command: [sleep, "31250"]}
  containers:
  - {name: c, image: localhost/busybox, command: [sleep, "31251"]}
---
apiVersion: v1
kind: Pod
metadata: {name: quick}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: c, image: localhost/busybox, command: [sh, -c, 'echo quick is up; exec sleep 31252']}
"#;
    let file = env.pod_file("two", yaml);
    let mut cmd = env.command(["run", file.to_str().unwrap()]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    wait_until("quick runs", Duration::from_secs(30), || {
        ps_json(&env)
            .iter()
            .any(|p| p["name"] == "quick" && p["phase"] == "Running")
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = common::wait_output(child, Duration::from_secs(30));
    assert!(
        stdout_of(&out).contains("quick/c | quick is up"),
        "{}",
        stdout_of(&out)
    );
    assert!(ps_json(&env).is_empty(), "{:?}", ps_json(&env));
    assert!(common::live_processes("sleep 3125").is_empty());
}
