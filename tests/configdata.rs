//! ConfigMaps, Secrets and the downward API inside pods, as the test user
//! runs them: configMap, secret, downwardAPI and projected volumes (items,
//! modes through the atomic writer's symlinks, optional, subPath, binary
//! data), env valueFrom and envFrom in kubelet's order, every fieldRef,
//! the errors for what is missing (nothing started), a store Secret, and
//! a Secret's value nowhere on disk.

mod common;

use std::time::Duration;

use common::{
    TestEnv, env_with_busybox, files_holding, inspect, live_processes, stderr_of, wait_until,
};

const SECRET: &str = "s3cr3t-xyzzy-42";

/// Runs `yaml` detached, waits for container `c`'s log to end with DONE,
/// and returns its lines (the pod keeps running until `rm`).
fn run_and_read(env: &TestEnv, pod: &str, yaml: &str) -> Vec<String> {
    let out = env.run_pod(yaml, &["-d"]);
    assert!(out.status.success(), "run -d failed: {}", stderr_of(&out));
    let mut logs = String::new();
    wait_until("the container's report", Duration::from_secs(30), || {
        logs = env.ok(["logs", pod, "c"]);
        logs.contains("DONE")
    });
    logs.lines().map(str::to_string).collect()
}

/// The value after `KEY=` in lines.
fn value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn assert_nothing_left(env: &TestEnv) {
    assert!(
        env.pod_state().is_empty(),
        "pod state left: {:?}",
        env.pod_state()
    );
    // `rm -f` kills the supervisor; the pause and containers follow it
    // (PDEATHSIG) a moment later.
    // The holder names the run root too: pods/ is what pods own.
    let runroot = env.runroot.join("pods").display().to_string();
    let mut infra = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        infra = live_processes(&runroot);
        if infra.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("pause/container processes left: {infra:?}");
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data:
  app.conf: "port=8080\n"
  greeting: hello
  PORT: "8080"
binaryData:
  logo.bin: /wAB
  note.txt: aGVsbG8=
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData:
  password: s3cr3t-xyzzy-42
  user: admin
"#;

#[test]
fn volumes_project_items_modes_optional_subpath_and_the_downward_api() {
    let env = env_with_busybox();
    let yaml = format!(
        r#"{OBJECTS}
---
apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: web, tier: front}}
  annotations: {{note: "two\nlines", quote: 'say "hi"'}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    resources: {{limits: {{memory: 64Mi}}}}
    command: [sh, -c]
    args:
    - |
      cd /cfg
      echo "all=$(ls | tr '\n' ' ')"
      echo "dotdata=$(readlink ..data | cut -c1-3)"
      echo "link=$(readlink app.conf)"
      echo "conf=$(cat app.conf)"
      echo "allmode=$(stat -L -c %a /cfg/greeting)"
      echo "logo=$(od -An -tx1 /cfg/logo.bin | tr -d ' ')"
      echo "nested=$(cat /items/deep/dir/g)"
      echo "nestedmode=$(stat -L -c %a /items/deep/dir/g)"
      echo "itemsls=$(ls /items | tr '\n' ' ')"
      echo "secret=$(cat /sec/password)"
      echo "secretmode=$(stat -L -c %a /sec/password)"
      echo "optional=$(ls -A /opt-missing | grep -v '^\.\.' | wc -l)"
      echo "proj=$(cat /proj/g)+$(cat /proj/p)+$(cat /proj/name)"
      echo "projmode=$(stat -L -c %a /proj/p)"
      echo "projdefault=$(stat -L -c %a /proj/g)"
      echo "sub=$(cat /etc/app.conf)"
      echo "labels=$(cat /down/labels | tr '\n' ';')"
      echo "annotations=$(cat /down/annotations | tr '\n' ';')"
      echo "ns=$(cat /down/ns)"
      echo "uid=$(cat /down/uid)"
      echo "mem=$(cat /down/mem)"
      echo "tier=$(cat /down/tier)"
      touch /cfg/x 2>/dev/null && echo writable=yes || echo writable=no
      echo DONE
      sleep 3600
    volumeMounts:
    - {{name: all, mountPath: /cfg}}
    - {{name: items, mountPath: /items}}
    - {{name: sec, mountPath: /sec}}
    - {{name: optional, mountPath: /opt-missing}}
    - {{name: proj, mountPath: /proj}}
    - {{name: all, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: down, mountPath: /down}}
  volumes:
  - name: all
    configMap: {{name: app, defaultMode: 0440}}
  - name: items
    configMap:
      name: app
      items:
      - {{key: greeting, path: deep/dir/g, mode: 0600}}
      - {{key: absent, path: never}}
      optional: true
  - name: sec
    secret: {{secretName: db, defaultMode: 0400}}
  - name: optional
    configMap: {{name: nosuch, optional: true}}
  - name: proj
    projected:
      defaultMode: 0444
      sources:
      - configMap: {{name: app, items: [{{key: greeting, path: g}}]}}
      - secret: {{name: db, items: [{{key: password, path: p, mode: 0o400}}]}}
      - downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}
  - name: down
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}}}
      - {{path: ns, fieldRef: {{fieldPath: metadata.namespace}}}}
      - {{path: uid, fieldRef: {{fieldPath: metadata.uid}}}}
      - {{path: tier, fieldRef: {{fieldPath: "metadata.labels['tier']"}}}}
      - path: mem
        resourceFieldRef: {{containerName: c, resource: limits.memory, divisor: 1Mi}}
"#
    );
    let lines = run_and_read(&env, "vols", &yaml);
    let v = |k: &str| value(&lines, k).unwrap_or_else(|| panic!("no {k} in {lines:#?}"));
    assert_eq!(v("all"), "PORT app.conf greeting logo.bin note.txt ");
    assert_eq!(v("dotdata"), "..2", "..data points at the timestamped dir");
    assert_eq!(v("link"), "..data/app.conf");
    assert_eq!(v("conf"), "port=8080");
    assert_eq!(v("allmode"), "440", "defaultMode 0440 read as octal");
    assert_eq!(v("logo"), "ff0001", "binaryData byte-exact");
    assert_eq!(v("nested"), "hello");
    assert_eq!(v("nestedmode"), "600");
    assert_eq!(v("itemsls"), "deep ", "an optional missing key is skipped");
    assert_eq!(v("secret"), SECRET);
    assert_eq!(v("secretmode"), "400");
    assert_eq!(v("optional"), "0", "an optional missing ConfigMap: empty");
    assert_eq!(v("proj"), format!("hello+{SECRET}+vols"));
    assert_eq!(v("projmode"), "400");
    assert_eq!(v("projdefault"), "444");
    assert_eq!(
        v("sub"),
        "port=8080",
        "subPath through the volume's symlinks"
    );
    assert_eq!(v("labels"), r#"app="web";tier="front""#);
    assert_eq!(v("annotations"), r#"note="two\nlines";quote="say \"hi\"""#);
    assert_eq!(v("ns"), "default");
    assert_eq!(v("mem"), "64");
    assert_eq!(v("tier"), "front");
    assert_eq!(v("writable"), "no", "mounted read-only");
    let pod = inspect(&env, "vols");
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(v("uid"), uid, "metadata.uid is the one inspect shows");
    assert_eq!(uid.len(), 36);
    env.ok(["rm", "-f", "vols"]);
    assert_nothing_left(&env);
}

#[test]
fn env_takes_value_from_env_from_and_expands_in_kubelets_order() {
    let env = env_with_busybox();
    let yaml = format!(
        r#"{OBJECTS}
---
apiVersion: v1
kind: Pod
metadata:
  name: envs
  labels: {{app: web}}
  annotations: {{owner: team-a}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  serviceAccountName: builder
  containers:
  - name: c
    image: localhost/busybox
    resources: {{requests: {{cpu: 250m}}}}
    envFrom:
    - configMapRef: {{name: app}}
    - secretRef: {{name: db}}
      prefix: DB_
    - configMapRef: {{name: nosuch, optional: true}}
    env:
    - {{name: URL, value: "http://$(DB_user):$(PORT)/$(UNKNOWN)"}}
    - {{name: PORT, value: "9$(PORT)"}}
    - {{name: AFTER, value: "$(PORT)"}}
    - name: GREETING
      valueFrom: {{configMapKeyRef: {{name: app, key: greeting}}}}
    - name: PASS
      valueFrom: {{secretKeyRef: {{name: db, key: password}}}}
    - name: MAYBE
      valueFrom: {{secretKeyRef: {{name: db, key: nokey, optional: true}}}}
    - name: GONE
      valueFrom: {{configMapKeyRef: {{name: nosuch, key: k, optional: true}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: POD_NS
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    - name: POD_UID
      valueFrom: {{fieldRef: {{fieldPath: metadata.uid}}}}
    - name: APP
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
    - name: OWNER
      valueFrom: {{fieldRef: {{fieldPath: "metadata.annotations['owner']"}}}}
    - name: NODE
      valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
    - name: SA
      valueFrom: {{fieldRef: {{fieldPath: spec.serviceAccountName}}}}
    - name: HOST_IP
      valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}
    - name: HOST_IPS
      valueFrom: {{fieldRef: {{fieldPath: status.hostIPs}}}}
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: POD_IPS
      valueFrom: {{fieldRef: {{fieldPath: status.podIPs}}}}
    - name: CPU_M
      valueFrom: {{resourceFieldRef: {{resource: requests.cpu, divisor: 1m}}}}
    - name: CPU
      valueFrom: {{resourceFieldRef: {{resource: requests.cpu}}}}
    - name: CPU_LIMIT
      valueFrom: {{resourceFieldRef: {{resource: limits.cpu}}}}
    - name: MEM_LIMIT
      valueFrom: {{resourceFieldRef: {{containerName: c, resource: limits.memory, divisor: 1Ki}}}}
    command: [sh, -c]
    args:
    - |
      env | sort
      echo "ARG=$(POD_IP)"
      echo DONE
      sleep 3600
"#
    );
    let lines = run_and_read(&env, "envs", &yaml);
    let v = |k: &str| value(&lines, k).unwrap_or_else(|| panic!("no {k} in {lines:#?}"));
    // envFrom first; env overrides; each value sees only what came before.
    assert_eq!(v("greeting"), "hello");
    assert_eq!(v("DB_password"), SECRET);
    assert_eq!(v("URL"), "http://admin:8080/$(UNKNOWN)");
    assert_eq!(v("PORT"), "98080");
    assert_eq!(v("AFTER"), "98080");
    assert_eq!(v("GREETING"), "hello");
    assert_eq!(v("PASS"), SECRET);
    assert!(value(&lines, "MAYBE").is_none() && value(&lines, "GONE").is_none());
    assert!(
        value(&lines, "logo.bin").is_none() && value(&lines, "note.txt").is_none(),
        "binaryData is not in env, text or not"
    );
    assert_eq!(v("POD_NAME"), "envs");
    assert_eq!(v("POD_NS"), "default");
    assert_eq!(v("APP"), "web");
    assert_eq!(v("OWNER"), "team-a");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(v("NODE"), host);
    assert_eq!(v("SA"), "builder");
    let pod = inspect(&env, "envs");
    assert_eq!(v("POD_UID"), pod["metadata"]["uid"].as_str().unwrap());
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert_eq!(v("POD_IP"), ip);
    assert_eq!(v("POD_IPS"), ip);
    assert_eq!(v("ARG"), ip, "$(POD_IP) in args is the address too");
    assert!(v("HOST_IP").parse::<std::net::Ipv4Addr>().is_ok());
    // The address at which pods reach the host: host.containers.internal's.
    let holder: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.runroot.join("holder.pid")).unwrap()).unwrap();
    if let Some(gateway) = holder["host_gateway"].as_str() {
        assert_eq!(v("HOST_IP"), gateway);
    }
    assert_eq!(v("HOST_IPS"), v("HOST_IP"));
    assert_eq!(v("CPU_M"), "250");
    assert_eq!(v("CPU"), "1", "rounded up");
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(v("CPU_LIMIT").parse::<usize>().unwrap() >= cpus);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(v("MEM_LIMIT"), mem_kib.to_string(), "the node's memory");
    env.ok(["rm", "-f", "envs"]);
    assert_nothing_left(&env);
}

#[test]
fn a_missing_object_or_key_fails_the_run_before_anything_starts() {
    let env = env_with_busybox();
    let pod = |spec: &str| {
        format!(
            "{OBJECTS}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: miss}}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sleep, '60']\n{spec}"
        )
    };
    let cases = [
        (
            pod(
                "    env:\n    - name: P\n      valueFrom: {secretKeyRef: {name: creds, key: pw}}\n",
            ),
            vec![
                "Secret creds is not found",
                "container \"c\" env P",
                "minipod secret create creds",
                "--configmap FILE",
            ],
        ),
        (
            pod("    envFrom: [{configMapRef: {name: settings}}]\n"),
            vec![
                "ConfigMap settings is not found",
                "minipod configmap create settings",
            ],
        ),
        (
            pod(
                "    env:\n    - name: P\n      valueFrom: {configMapKeyRef: {name: app, key: nokey}}\n",
            ),
            vec!["ConfigMap app", "has no key \"nokey\"", "optional: true"],
        ),
        (
            pod(
                "    volumeMounts: [{name: v, mountPath: /v}]\n  volumes:\n  - name: v\n    secret:\n      secretName: db\n      items: [{key: token, path: t}]\n",
            ),
            vec!["volume \"v\"", "Secret db", "has no key \"token\""],
        ),
        (
            pod(
                "    volumeMounts: [{name: v, mountPath: /v}]\n  volumes:\n  - name: v\n    configMap: {name: absent}\n",
            ),
            vec!["volume \"v\"", "ConfigMap absent is not found"],
        ),
    ];
    for (yaml, wants) in cases {
        let out = env.run_pod(&yaml, &["-d"]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(125), "{err}");
        for want in wants {
            assert!(err.contains(want), "want {want:?} in {err}");
        }
        assert!(!err.contains(SECRET), "no value in messages: {err}");
        assert_nothing_left(&env);
    }
    // A subPath into a config volume must name something in it.
    let out = env.run_pod(
        &pod("    volumeMounts: [{name: v, mountPath: /x, subPath: nothere}]\n  volumes:\n  - name: v\n    configMap: {name: app}\n"),
        &["-d"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr_of(&out).contains("subPath \"nothere\" is not in volume \"v\""),
        "{}",
        stderr_of(&out)
    );
    assert_nothing_left(&env);
}

/// A pod reading `db` from the store, in env and a volume.
fn store_pod(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    env:
    - name: PASS
      valueFrom: {{secretKeyRef: {{name: db, key: password}}}}
    envFrom:
    - configMapRef: {{name: settings}}
    command: [sh, -c]
    args:
    - |
      echo "env=$(echo "$PASS" | rev)"
      echo "file=$(rev /s/password)"
      echo "mode=$(stat -L -c %a /s/password)"
      echo "level=$LEVEL"
      echo DONE
      sleep 3600
    volumeMounts: [{{name: s, mountPath: /s}}]
  volumes:
  - name: s
    secret: {{secretName: db}}
"#
    )
}

/// The store's Secret `db` (password SECRET) and ConfigMap `settings`
/// that `store_pod` uses.
fn store_db_secret_and_settings(env: &TestEnv) {
    env.ok([
        "secret",
        "create",
        "db",
        "--from-literal",
        &format!("password={SECRET}"),
    ]);
    env.ok([
        "configmap",
        "create",
        "settings",
        "--from-literal",
        "LEVEL=debug",
    ]);
}

#[test]
fn a_store_secret_and_configmap_reach_env_and_volumes() {
    let env = env_with_busybox();
    store_db_secret_and_settings(&env);
    let lines = run_and_read(&env, "store", &store_pod("store"));
    // Printed reversed, so that the log does not hold the value.
    let reversed: String = SECRET.chars().rev().collect();
    assert_eq!(value(&lines, "env"), Some(reversed.as_str()));
    assert_eq!(value(&lines, "file"), Some(reversed.as_str()));
    assert_eq!(value(&lines, "mode"), Some("644"), "defaultMode 0644");
    assert_eq!(value(&lines, "level"), Some("debug"));
    env.ok(["rm", "-f", "store"]);
    assert_nothing_left(&env);
}

#[test]
fn secret_values_never_on_disk() {
    let env = env_with_busybox();
    store_db_secret_and_settings(&env);
    let lines = run_and_read(&env, "disk", &store_pod("disk"));
    let reversed: String = SECRET.chars().rev().collect();
    assert_eq!(value(&lines, "file"), Some(reversed.as_str()));
    // While the pod runs: the store's own file holds the value (base64),
    // nothing else under the data root or the run root does, in clear or
    // in base64.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let mut hits = Vec::new();
    for needle in [SECRET, b64.as_str()] {
        for root in [&env.root, &env.runroot] {
            hits.extend(files_holding(root, needle));
        }
    }
    let store = env.root.join("secrets/db").display().to_string();
    hits.retain(|h| *h != store);
    assert!(hits.is_empty(), "the value is on disk in {hits:#?}");
    env.ok(["rm", "-f", "disk"]);
    assert_nothing_left(&env);
}

#[test]
fn a_host_network_pod_gets_the_hosts_address_and_its_volumes() {
    let env = env_with_busybox();
    let yaml = format!(
        r#"{OBJECTS}
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  hostNetwork: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    env:
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: HOST_IP
      valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}
    command: [sh, -c]
    args:
    - |
      echo "pod=$POD_IP"
      echo "host=$HOST_IP"
      echo "greeting=$(cat /cfg/greeting)"
      echo DONE
      sleep 3600
    volumeMounts: [{{name: cfg, mountPath: /cfg}}]
  volumes:
  - name: cfg
    configMap: {{name: app}}
"#
    );
    let lines = run_and_read(&env, "hostnet", &yaml);
    let v = |k: &str| value(&lines, k).unwrap_or_else(|| panic!("no {k} in {lines:#?}"));
    assert_eq!(v("greeting"), "hello");
    assert!(v("pod").parse::<std::net::Ipv4Addr>().is_ok(), "{lines:?}");
    assert_eq!(
        v("pod"),
        v("host"),
        "a hostNetwork pod's address is the host's"
    );
    env.ok(["rm", "-f", "hostnet"]);
    assert_nothing_left(&env);
}
