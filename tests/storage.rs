//! Storage: named volumes (claims, PersistentVolumeClaim documents, a
//! StatefulSet's templates, `volume` commands, `down --volumes`), image
//! volumes, writable layers on the data root, and emptyDir sizeLimit
//! eviction — as the unprivileged user.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{TestEnv, env_with_busybox, inspect, stderr_of, test_user, wait_until};

/// Each run appends a line to the volume and prints how many there are,
/// as a user other than root (the volume is 0777).
const COUNTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'echo run >> /data/runs && echo "count $(wc -l < /data/runs)"']
    volumeMounts: [{name: store, mountPath: /data}]
  volumes:
  - name: store
    persistentVolumeClaim: {claimName: counter-data}
"#;

fn volume_names(env: &TestEnv) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(["volume", "ls", "--format", "json"])).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

fn volume_json(env: &TestEnv, name: &str) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(["volume", "inspect", name])).unwrap();
    json[0].clone()
}

/// Runs a detached pod to its end and returns its logs.
fn run_to_end(env: &TestEnv, file: &Path, pod: &str) -> (String, String) {
    let out = env.run(["run", "-d", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    env.ok(["wait", "--condition", "stopped", "--timeout", "60s", pod]);
    (env.ok(["logs", pod]), stderr_of(&out))
}

#[test]
fn a_named_volume_keeps_its_data_across_down_and_run() {
    let env = env_with_busybox();
    let file = env.pod_file("counter", COUNTER);
    let plan = env.ok(["run", "--dry-run", file.to_str().unwrap()]);
    assert!(
        plan.contains("would create volume counter-data (the claim of pod counter"),
        "{plan}"
    );
    assert!(volume_names(&env).is_empty(), "a dry run makes nothing");
    let (logs, stderr) = run_to_end(&env, &file, "counter");
    assert!(logs.contains("count 1"), "{logs}");
    // No document names the claim: run made the volume and said so.
    assert!(
        stderr.contains("created volume counter-data for the claim of pod counter"),
        "{stderr}"
    );
    env.ok(["down", file.to_str().unwrap()]);
    assert_eq!(volume_names(&env), ["counter-data"]);

    let (logs, stderr) = run_to_end(&env, &file, "counter");
    assert!(logs.contains("count 2"), "the data survived down: {logs}");
    assert!(!stderr.contains("created volume"), "{stderr}");
    env.ok(["down", file.to_str().unwrap()]);
    let (logs, _) = run_to_end(&env, &file, "counter");
    assert!(logs.contains("count 3"), "{logs}");
    env.ok(["down", file.to_str().unwrap()]);

    let v = volume_json(&env, "counter-data");
    assert_eq!(v["createdBy"], "pod counter (a claim without a document)");
    let data = PathBuf::from(v["mountpoint"].as_str().unwrap());
    assert_eq!(data, env.root.join("volumes/counter-data/_data"));
    assert_eq!(
        std::fs::read_to_string(data.join("runs")).unwrap(),
        "run\nrun\nrun\n"
    );

    // Another pod may mount it read-only (the claim's readOnly).
    let reader = COUNTER
        .replace("name: counter}", "name: reader}")
        .replace(
            "'echo run >> /data/runs && echo \"count $(wc -l < /data/runs)\"'",
            "'wc -l < /data/runs; echo more >> /data/runs || echo refused'",
        )
        .replace(
            "claimName: counter-data}",
            "claimName: counter-data, readOnly: true}",
        );
    let file = env.pod_file("reader", &reader);
    let (logs, _) = run_to_end(&env, &file, "reader");
    assert!(logs.contains('3') && logs.contains("refused"), "{logs}");
    env.ok(["down", file.to_str().unwrap()]);
}

const DB: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db-data, labels: {app: db}}
spec:
  storageClassName: standard
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: db}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'echo hello > /var/lib/db/file; exec sleep 31400']
    volumeMounts: [{name: data, mountPath: /var/lib/db}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: db-data}
"#;

#[test]
fn a_claim_document_makes_the_volume_and_rm_waits_for_its_pod() {
    let env = env_with_busybox();
    let file = env.pod_file("db", DB);
    let out = env.run(["run", "-d", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // storageClassName means nothing here: a warning, not an error.
    assert!(
        stderr_of(&out).contains("spec.storageClassName"),
        "{}",
        stderr_of(&out)
    );
    let v = volume_json(&env, "db-data");
    assert_eq!(v["requestedStorage"], "5Mi");
    assert_eq!(v["createdBy"], "PersistentVolumeClaim/db-data");
    assert_eq!(v["labels"]["app"], "db");
    assert_eq!(v["usedBy"], serde_json::json!(["db"]));
    let table = env.ok(["volume", "ls"]);
    assert!(
        table.contains("db-data") && table.contains("5Mi"),
        "{table}"
    );

    // In use: refused, naming the pod.
    let err = env.fails(["volume", "rm", "db-data"]);
    assert!(err.contains("in use by pod db"), "{err}");
    assert_eq!(env.ok(["volume", "prune", "--force"]), "", "in use: kept");
    assert_eq!(volume_names(&env), ["db-data"]);

    env.ok(["down", file.to_str().unwrap()]);
    assert_eq!(volume_names(&env), ["db-data"], "down keeps volumes");
    assert_eq!(env.ok(["volume", "rm", "db-data"]).trim(), "db-data");
    assert!(volume_names(&env).is_empty());
    let err = env.fails(["volume", "rm", "db-data"]);
    assert!(err.contains("no volume named"), "{err}");
}

#[test]
fn volume_prune_and_down_volumes_remove_what_is_unused() {
    let env = env_with_busybox();
    let counter = env.pod_file("counter", COUNTER);
    run_to_end(&env, &counter, "counter");
    env.ok(["down", counter.to_str().unwrap()]);
    let db = env.pod_file("db", DB);
    env.ok(["run", "-d", db.to_str().unwrap()]);
    assert_eq!(volume_names(&env), ["counter-data", "db-data"]);

    // Not on a terminal: prune wants --force.
    let err = env.fails(["volume", "prune"]);
    assert!(err.contains("--force"), "{err}");
    // db's volume is in use: only the other goes.
    assert_eq!(
        env.ok(["volume", "prune", "--force"]).trim(),
        "counter-data"
    );
    assert_eq!(volume_names(&env), ["db-data"]);

    // down --volumes: the file's claims' volumes go with its pods.
    let out = env.ok(["down", "--volumes", db.to_str().unwrap()]);
    assert!(out.contains("volume db-data"), "{out}");
    assert!(volume_names(&env).is_empty());
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

const STATEFUL: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: localhost/busybox
        command: [sh, -c, 'hostname >> /srv/who; exec sleep 31500']
        volumeMounts: [{name: www, mountPath: /srv}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Mi}}
"#;

#[test]
fn a_statefulsets_replicas_each_get_their_own_volume() {
    let env = env_with_busybox();
    let file = env.pod_file("web", STATEFUL);
    env.ok(["run", "-d", file.to_str().unwrap()]);
    assert_eq!(volume_names(&env), ["www-web-0", "www-web-1"]);
    for i in 0..2 {
        let who = env.root.join(format!("volumes/www-web-{i}/_data/who"));
        wait_until("the replica writes", Duration::from_secs(10), || {
            std::fs::read_to_string(&who).is_ok_and(|t| !t.is_empty())
        });
        assert_eq!(std::fs::read_to_string(&who).unwrap(), format!("web-{i}\n"));
        let v = volume_json(&env, &format!("www-web-{i}"));
        assert_eq!(v["createdBy"], "StatefulSet/web (volumeClaimTemplates www)");
        assert_eq!(v["requestedStorage"], "1Mi");
    }
    // down --volumes removes every replica's volume.
    env.ok(["down", "--volumes", file.to_str().unwrap()]);
    assert!(volume_names(&env).is_empty());
}

#[test]
fn an_image_volume_shows_the_images_files_read_only() {
    let env = env_with_busybox();
    let rootfs = common::oci::busybox_rootfs(&env.work().join("tools-rootfs"));
    std::fs::create_dir_all(rootfs.join("share/tools")).unwrap();
    std::fs::write(rootfs.join("share/tools/marker"), "from-the-tools-image\n").unwrap();
    env.give_to_user(&rootfs);
    env.ok(["import", rootfs.to_str().unwrap(), "localhost/tools:1"]);
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'cat /tools/share/tools/marker /only-share/marker; touch /tools/x 2>/dev/null && echo writable || echo read-only']
    volumeMounts:
    - {name: tools, mountPath: /tools}
    - {name: tools, mountPath: /only-share, subPath: share/tools, readOnly: true}
  volumes:
  - name: tools
    image: {reference: localhost/tools:1, pullPolicy: IfNotPresent}
"#;
    let out = env.run_pod(yaml, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", stderr_of(&out));
    assert_eq!(
        stdout.matches("from-the-tools-image").count(),
        2,
        "the whole image and a subPath of it: {stdout}"
    );
    assert!(stdout.contains("read-only"), "{stdout}");

    // readOnly: false on an image volume is refused, as the API server does.
    let rw = yaml.replace("readOnly: true", "readOnly: false");
    let out = env.run_pod(&rw, &[]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr_of(&out);
    assert!(
        err.contains("spec.containers[0].volumeMounts[1].readOnly: Invalid value: false"),
        "{err}"
    );
    // Several layers: the upper one's files and whiteouts win, as in a
    // container's root.
    use common::oci::{dir, file};
    let archive = env.work().join("data.tar");
    common::oci::write_docker_archive(
        &archive,
        &[
            vec![
                dir("share"),
                file("share/a", "base-a\n"),
                file("share/gone", "x\n"),
            ],
            vec![
                dir("share"),
                file("share/b", "top-b\n"),
                file("share/.wh.gone", ""),
                file("share/a", "top-a\n"),
            ],
        ],
        "localhost/data:2",
    );
    env.give_to_user(&archive);
    env.ok(["load", &format!("docker-archive:{}", archive.display())]);
    let layered = yaml
        .replace("localhost/tools:1", "localhost/data:2")
        .replace(
            "'cat /tools/share/tools/marker /only-share/marker; touch /tools/x 2>/dev/null && echo writable || echo read-only'",
            "'cat /tools/share/a /only-share/b; ls /tools/share | tr \"\\n\" \" \"'",
        )
        .replace("subPath: share/tools", "subPath: share");
    let out = env.run_pod(&layered, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", stderr_of(&out));
    assert!(
        stdout.contains("top-a")
            && stdout.contains("top-b")
            && stdout.contains("a b ")
            && !stdout.contains("gone"),
        "the merged layers, without the whited-out file: {stdout}"
    );

    // An image that is not there, with pullPolicy Never, names the volume.
    let missing = yaml
        .replace("localhost/tools:1", "example.org/none:1")
        .replace("IfNotPresent", "Never");
    let err = stderr_of(&env.run_pod(&missing, &[]));
    assert!(err.contains("\"volume tools\""), "{err}");
}

/// Unmounts the tmpfs run root when the test ends, before `TestEnv`
/// removes it; the holder, whose pid file is on it, is killed first (the
/// env could no longer find it).
struct Unmount<'a>(&'a TestEnv);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.0.holder_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            wait_until("the holder's end", Duration::from_secs(5), || {
                !common::alive(pid)
            });
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0.runroot)
            .status();
    }
}

#[test]
fn a_container_may_write_more_than_the_run_root_holds() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: mounting a small run root needs root");
        return;
    }
    let env = TestEnv::new();
    let user = test_user();
    // The run root on an 8 MiB tmpfs; everything of the holder starts after.
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!(
            "size=8m,mode=0700,uid={},gid={}",
            user.uid, user.gid
        ))
        .arg("tmpfs")
        .arg(&env.runroot)
        .status()
        .unwrap();
    assert!(status.success());
    let _unmount = Unmount(&env);
    env.busybox();
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null && mkdir -p /scratch && dd if=/dev/zero of=/scratch/f bs=1M count=16 2>/dev/null && ls -l /big /scratch/f | wc -l && echo wrote']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
"#;
    let out = env.run_pod(yaml, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("wrote"),
        "{stdout}{}",
        stderr_of(&out)
    );
    // Nothing of the pod is left in either root.
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
    assert!(
        std::fs::read_dir(env.root.join("pods"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn an_emptydir_over_its_size_limit_evicts_the_pod() {
    let env = env_with_busybox();
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'dd if=/dev/zero of=/cache/f bs=1M count=3 2>/dev/null; echo filled; exec sleep 31600']
    volumeMounts: [{name: cache, mountPath: /cache}]
  volumes: [{name: cache, emptyDir: {sizeLimit: 1Mi}}]
"#;
    let file = env.pod_file("hog", yaml);
    env.ok(["run", "-d", file.to_str().unwrap()]);
    // Its writable layer and disk emptyDir are on the data root, its logs too.
    let data = env.root.join("pods/hog");
    assert!(data.join("volumes/cache").is_dir());
    assert!(data.join("containers/c/upper").is_dir());
    wait_until("the log", Duration::from_secs(10), || {
        std::fs::read_to_string(data.join("logs/c.log")).is_ok_and(|l| l.contains("filled"))
    });
    // Measured every 10 s: evicted within 15 s of the start.
    wait_until("the eviction", Duration::from_secs(15), || {
        env.pod_state_json("hog")["phase"] == "Failed"
    });
    let pod = inspect(&env, "hog");
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(pod["status"]["reason"], "Evicted");
    assert_eq!(
        pod["status"]["message"],
        "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\"."
    );
    let ps = env.ok(["ps", "-a"]);
    assert!(
        ps.contains("Failed") && ps.contains("exceeds the limit"),
        "{ps}"
    );
    env.ok(["wait", "--condition", "stopped", "--timeout", "10s", "hog"]);
    // An exited pod keeps its logs, not its writable layer or volumes.
    assert!(data.join("logs/c.log").is_file());
    assert!(!data.join("containers").exists() && !data.join("volumes").exists());
    env.ok(["rm", "hog"]);
    assert!(!data.exists(), "rm removes the pod's data folder");
}
