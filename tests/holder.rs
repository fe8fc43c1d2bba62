//! The holder's life (it leaves when idle or when its run root goes, never
//! under a command that uses it), `unshare`, and `system reset` — as the
//! unprivileged user.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestEnv, alive, children_of, env_with_busybox, stdout_of, wait_until};

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

const SLEEPER: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox, command: [sleep, \"31500\"]}\n";

/// Kills the holder `env.busybox()` started, so that the next command
/// starts one with the environment it is given.
fn without_holder(env: &TestEnv) {
    let pid = env.holder_pid().expect("a holder");
    common::sigkill(pid);
    wait_until("the holder to die", Duration::from_secs(5), || !alive(pid));
    std::fs::remove_file(env.runroot.join("holder.pid")).unwrap();
}

fn holder_gone(env: &TestEnv, pid: i32) -> bool {
    !alive(pid) && !env.runroot.join("holder.pid").exists()
}

#[test]
fn an_idle_holder_leaves_with_its_pasta_and_not_while_a_pod_runs() {
    let env = env_with_busybox();
    without_holder(&env);
    let file = env.pod_file("sleeper", SLEEPER);
    let out = env
        .command(["run", "-d", file.to_str().unwrap()])
        .env("MINIPOD_HOLDER_IDLE_SECONDS", "0.5")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let holder = env.holder_pid().unwrap();
    let pasta: Vec<i32> = children_of(holder).into_iter().map(|(p, _, _)| p).collect();
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(holder), "the holder left while a pod runs");
    env.ok(["rm", "-f", "sleeper"]);
    wait_until("the idle holder to leave", Duration::from_secs(5), || {
        holder_gone(&env, holder)
    });
    for p in pasta {
        assert!(!alive(p), "the holder's pasta {p} outlived it");
    }
    // The next command starts another.
    env.ok(["run", "-d", file.to_str().unwrap()]);
    assert!(env.holder_pid().is_some_and(|p| p != holder && alive(p)));
    env.ok(["rm", "-f", "sleeper"]);
}

#[test]
fn the_holder_stays_while_a_command_uses_it() {
    let env = env_with_busybox();
    without_holder(&env);
    let mut unshare = env
        .command(["unshare", "sleep", "2"])
        .env("MINIPOD_HOLDER_IDLE_SECONDS", "0.2")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("a holder", Duration::from_secs(5), || {
        env.holder_pid().is_some()
    });
    let holder = env.holder_pid().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(holder), "the holder left under a command using it");
    assert!(unshare.wait().unwrap().success());
    wait_until("the idle holder to leave", Duration::from_secs(5), || {
        holder_gone(&env, holder)
    });
}

#[test]
fn the_holder_leaves_when_its_run_root_is_removed() {
    let env = env_with_busybox();
    let holder = env.holder_pid().unwrap();
    std::fs::remove_dir_all(&env.runroot).unwrap();
    wait_until("the holder to leave", Duration::from_secs(5), || {
        !alive(holder)
    });
}

#[test]
fn unshare_runs_as_root_of_the_user_namespace() {
    let env = env_with_busybox();
    assert_eq!(env.ok(["unshare", "id", "-u"]).trim(), "0");
    let roots = env.ok(["unshare", "sh", "-c", "echo $MINIPOD_ROOT $MINIPOD_RUNROOT"]);
    assert_eq!(
        roots.trim(),
        format!("{} {}", env.root.display(), env.runroot.display())
    );
    // A file of another id of the namespace: the user cannot remove it
    // from outside (when it has a subordinate range), `unshare` can.
    let dir = env.root.join("scratch");
    env.ok([
        "unshare",
        "sh",
        "-c",
        &format!(
            "mkdir {0} && touch {0}/f && chown -R 1000:1000 {0}",
            dir.display()
        ),
    ]);
    if let Some(start) = common::subuid_start() {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(dir.join("f")).unwrap().uid(), start + 999);
    }
    env.ok(["unshare", "rm", "-r", dir.to_str().unwrap()]);
    assert!(!dir.exists());
    // As a shell: the command's code, 127 when there is no such command.
    let out = env.run(["unshare", "sh", "-c", "exit 7"]);
    assert_eq!(code(&out), 7);
    let out = env.run(["unshare", "no-such-command-here"]);
    assert_eq!(code(&out), 127);
}

#[test]
fn system_reset_removes_every_pod_image_and_volume_and_the_holder() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "keeper",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: keeper}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sh, -c, 'echo kept > /data/f; chown 1000 /data/f; exec sleep 31501']\n    volumeMounts: [{name: d, mountPath: /data}]\n  volumes:\n  - {name: d, persistentVolumeClaim: {claimName: kept}}\n",
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    env.ok(["secret", "create", "s", "--from-literal", "k=v"]);
    let holder = env.holder_pid().unwrap();
    // Not without asking: stdin is no terminal here.
    let out = env.run(["system", "reset"]);
    assert_eq!(code(&out), 125);
    assert!(env.ok(["images"]).contains("localhost/busybox"));
    assert!(env.ok(["ps"]).contains("keeper"));

    env.ok(["system", "reset", "--force"]);
    assert!(common::live_processes("sleep 31501").is_empty());
    assert!(!alive(holder), "the holder outlived the reset");
    let left = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .map(|d| d.count())
            .unwrap_or_default()
    };
    assert_eq!(left(&env.root), 0, "the data root keeps files");
    assert_eq!(left(&env.runroot), 0, "the run root keeps files");
    // And everything works again from nothing.
    assert!(!env.ok(["images"]).contains("busybox"));
    assert!(!env.ok(["volume", "ls"]).contains("kept"));
    env.busybox();
    let out = env.run_pod(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: again}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: localhost/busybox, command: [echo, works]}\n",
        &[],
    );
    assert!(stdout_of(&out).contains("works"), "{out:?}");
}
