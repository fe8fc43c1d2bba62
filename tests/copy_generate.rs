//! `minipod cp` (files out of and into a running container, `-` tar
//! streams, its errors) and `minipod generate kube` (a pod's YAML as it
//! runs, which `run` runs again as the same pod), as the unprivileged user.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{TestEnv, env_with_busybox, free_port, inspect, stdout_of, wait_output, wait_until};

const FILES: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: files}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'mkdir -p /data/sub && echo hello > /data/sub/f && chmod 640 /data/sub/f && ln -s sub/f /data/link && touch /ready && exec sleep 3600']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
"#;

fn exec_out(env: &TestEnv, cmd: &[&str]) -> String {
    let mut args = vec!["exec", "files", "c", "--"];
    args.extend_from_slice(cmd);
    env.ok(args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `minipod ARGS` with `input` on stdin.
fn with_stdin(env: &TestEnv, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = env
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    wait_output(child, Duration::from_secs(60))
}

#[test]
fn cp_copies_out_and_in_with_docker_rules() {
    let env = env_with_busybox();
    let file = env.pod_file("files", FILES);
    env.ok(["run", "-d", s(&file)]);
    wait_until("the pod's files", Duration::from_secs(20), || {
        env.run(["exec", "files", "c", "--", "test", "-e", "/ready"])
            .status
            .success()
    });
    let out = env.work().join("out");
    std::fs::create_dir(&out).unwrap();
    env.give_to_user(&out);
    let user = common::test_user();

    // A file out, to a new name: content, mode, owner the caller.
    env.ok(["cp", "files/c:/data/sub/f", s(&out.join("f"))]);
    assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "hello\n");
    let meta = std::fs::metadata(out.join("f")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.uid(), user.uid);
    // POD:PATH (the pod's only container) into an existing directory.
    std::fs::create_dir(out.join("into")).unwrap();
    env.give_to_user(&out.join("into"));
    env.ok([
        "cp",
        "files:/data/sub/f",
        &format!("{}/", s(&out.join("into"))),
    ]);
    assert!(out.join("into/f").is_file());
    // A directory out, recursively, a symlink as a symlink.
    env.ok(["cp", "files/c:/data", s(&out.join("data"))]);
    assert_eq!(
        std::fs::read_to_string(out.join("data/sub/f")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("data/link")).unwrap(),
        Path::new("sub/f")
    );
    // Into an existing directory: inside it; `SRC/.`: its contents.
    env.ok(["cp", "files/c:/data", s(&out.join("into"))]);
    assert!(out.join("into/data/sub/f").is_file());
    env.ok(["cp", "files/c:/data/.", s(&out.join("into"))]);
    assert!(out.join("into/sub/f").is_file());
    let staged: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".minipod-cp"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");

    // A file in: owned by the container's root, its mode kept.
    let work = env.work();
    let host_file = work.join("in.txt");
    std::fs::write(&host_file, "from host\n").unwrap();
    std::fs::set_permissions(&host_file, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.give_to_user(&host_file);
    env.ok(["cp", s(&host_file), "files/c:/tmp/"]);
    assert_eq!(exec_out(&env, &["cat", "/tmp/in.txt"]), "from host\n");
    assert_eq!(
        exec_out(&env, &["stat", "-c", "%u:%g %a", "/tmp/in.txt"]).trim(),
        "0:0 755"
    );
    // A directory in, and a file into a mounted emptyDir volume.
    std::fs::create_dir_all(work.join("tree/a")).unwrap();
    std::fs::write(work.join("tree/a/b.txt"), "deep\n").unwrap();
    env.give_to_user(&work.join("tree"));
    env.ok(["cp", s(&work.join("tree")), "files/c:/tmp"]);
    assert_eq!(exec_out(&env, &["cat", "/tmp/tree/a/b.txt"]), "deep\n");
    env.ok(["cp", s(&host_file), "files/c:/scratch/x.txt"]);
    assert_eq!(exec_out(&env, &["cat", "/scratch/x.txt"]), "from host\n");

    // `-`: a tar stream out on stdout, one in from stdin.
    let tar_out = env.run(["cp", "files/c:/data/sub", "-"]);
    assert!(tar_out.status.success(), "{}", common::stderr_of(&tar_out));
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(&tar_out.stdout[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let name = name.trim_end_matches('/').to_string();
        if name == "sub/f" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            assert_eq!(text, "hello\n");
        }
        names.push(name);
    }
    assert_eq!(names, ["sub", "sub/f"]);
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(3);
    builder
        .append_data(&mut header, "streamed/y.txt", &b"yo\n"[..])
        .unwrap();
    let stream = builder.into_inner().unwrap();
    let streamed = with_stdin(&env, &["cp", "-", "files/c:/tmp"], &stream);
    assert!(
        streamed.status.success(),
        "{}",
        common::stderr_of(&streamed)
    );
    assert_eq!(exec_out(&env, &["cat", "/tmp/streamed/y.txt"]), "yo\n");

    // Errors name what is wrong, and leave nothing behind.
    let err = env.fails(["cp", "nopod/c:/x", s(&out.join("n"))]);
    assert!(err.contains("nopod"), "{err}");
    let err = env.fails(["cp", "files/zz:/x", s(&out.join("n"))]);
    assert!(err.contains("\"zz\""), "{err}");
    let err = env.fails(["cp", "files/c:/nope", s(&out.join("n"))]);
    assert!(
        err.contains("/nope: no such file or directory")
            && err.contains("container c of pod files"),
        "{err}"
    );
    assert!(!out.join("n").exists());
    let err = env.fails(["cp", "files/c:/data/sub/f", s(&out.join("missing/f"))]);
    assert!(err.contains("no such directory"), "{err}");
    let err = env.fails(["cp", "files/c:/data", s(&out.join("f"))]);
    assert!(
        err.contains("cannot copy a directory onto the file"),
        "{err}"
    );
    let err = env.fails(["cp", s(&host_file), "files/c:/nodir/x"]);
    assert!(err.contains("no such directory /nodir"), "{err}");
    let err = env.fails(["cp", s(&work.join("nothere")), "files/c:/tmp"]);
    assert!(err.contains("nothere: no such file or directory"), "{err}");
    // A file mounted on its own is written in place; this one is read-only.
    let err = env.fails(["cp", s(&host_file), "files/c:/etc/hosts"]);
    assert!(
        err.contains("/etc/hosts in place") && err.contains("Read-only"),
        "{err}"
    );
    let err = env.fails(["cp", "a", "b"]);
    assert!(err.contains("POD/CONTAINER:PATH"), "{err}");

    env.ok(["stop", "files"]);
    let err = env.fails(["cp", "files/c:/data", s(&out.join("late"))]);
    assert!(err.contains("not running"), "{err}");
    env.ok(["rm", "files"]);
}

#[test]
fn generate_kube_runs_again_as_the_same_pod() {
    let env = env_with_busybox();
    env.ok([
        "configmap",
        "create",
        "cfg",
        "--from-literal",
        "GREETING=hi",
    ]);
    let declared = free_port();
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: gen
  labels: {{app: gen}}
spec:
  terminationGracePeriodSeconds: 2
  nodeSelector: {{disk: ssd}}
  containers:
  - name: web
    image: localhost/busybox
    command: [sh, -c, 'echo $GREETING $ONE > /cache/env; exec httpd -f -p 8080 -h /cache']
    ports: [{{containerPort: 8080, hostPort: {declared}}}]
    envFrom: [{{configMapRef: {{name: cfg}}}}]
    env:
    - name: ONE
      valueFrom: {{configMapKeyRef: {{name: cfg, key: GREETING}}}}
    readinessProbe:
      exec: {{command: [test, -e, /cache/env]}}
      periodSeconds: 1
    volumeMounts: [{{name: cache, mountPath: /cache}}]
  volumes: [{{name: cache, emptyDir: {{}}}}]
"#
    );
    let file = env.pod_file("gen", &yaml);
    // -P: the declared hostPort gets a free port; --publish 8081: a port
    // the YAML does not declare, which the generated YAML must list.
    env.ok([
        "run",
        "-d",
        "--name",
        "renamed",
        "-P",
        "--publish",
        "8081",
        s(&file),
    ]);
    let first = env.ok(["generate", "kube", "renamed"]);
    let bound: u16 = env
        .ok(["port", "renamed", "8080"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let doc: serde_json::Value = serde_yaml_ng::from_str(&first).unwrap();
    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Pod");
    assert_eq!(doc["metadata"]["name"], "renamed");
    assert_eq!(doc["metadata"]["namespace"], "default");
    assert!(doc["metadata"].get("uid").is_none() && doc.get("status").is_none());
    let c = &doc["spec"]["containers"][0];
    assert_eq!(c["ports"][0]["hostPort"], bound, "{first}");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    let extra: u16 = env
        .ok(["port", "renamed", "8081"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(c["ports"][1]["containerPort"], 8081, "{first}");
    assert_eq!(c["ports"][1]["hostPort"], extra, "{first}");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["readinessProbe"]["timeoutSeconds"], 1);
    assert_eq!(c["readinessProbe"]["failureThreshold"], 3);
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "cfg");
    assert_eq!(doc["spec"]["restartPolicy"], "Always");
    assert_eq!(doc["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        doc["spec"]["nodeSelector"]["disk"], "ssd",
        "warned fields are kept"
    );
    assert!(!first.contains("hi"), "references stay references: {first}");
    let saved = env.work().join("renamed.yaml");
    env.ok(["generate", "kube", "renamed", "-f", s(&saved)]);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), first);

    // Run it again: the same pod, generating the same YAML.
    env.ok(["rm", "-f", "renamed"]);
    env.ok(["run", "-d", s(&saved)]);
    env.ok([
        "wait",
        "--condition",
        "ready",
        "--timeout",
        "30s",
        "renamed",
    ]);
    assert_eq!(env.ok(["generate", "kube", "renamed"]), first);
    assert_eq!(inspect(&env, "renamed")["spec"], doc["spec"]);
    let out = env.run(["exec", "renamed", "web", "--", "cat", "/cache/env"]);
    assert_eq!(stdout_of(&out), "hi hi\n");
    env.ok(["rm", "-f", "renamed"]);

    let err = env.fails(["generate", "kube", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn generate_kube_prints_a_deployments_pod_as_the_pod_it_became() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "dep",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: dep}\nspec:\n  selector: {matchLabels: {app: dep}}\n  template:\n    metadata: {labels: {app: dep}}\n    spec:\n      containers:\n      - {name: c, image: localhost/busybox, command: [sleep, '3600']}\n",
    );
    env.ok(["run", "-d", s(&file)]);
    let ps: serde_json::Value = serde_json::from_str(&env.ok(["ps", "--format", "json"])).unwrap();
    let pod = ps[0]["name"].as_str().unwrap().to_string();
    assert!(pod.starts_with("dep-"), "{pod}");
    let first = env.ok(["generate", "kube", &pod]);
    let doc: serde_json::Value = serde_yaml_ng::from_str(&first).unwrap();
    assert_eq!(
        (&doc["apiVersion"], &doc["kind"]),
        (&"v1".into(), &"Pod".into())
    );
    assert_eq!(doc["metadata"]["name"], pod.as_str());
    assert_eq!(doc["metadata"]["labels"]["app"], "dep");
    assert!(
        doc["metadata"]["labels"]["pod-template-hash"].is_string(),
        "{first}"
    );
    assert_eq!(doc["spec"]["containers"][0]["command"][1], "3600");
    let saved = env.pod_file("again", &first);
    env.ok(["down", s(&file)]);
    env.ok(["run", "-d", s(&saved)]);
    assert_eq!(env.ok(["generate", "kube", &pod]), first);
    env.ok(["rm", "-f", &pod]);
}
