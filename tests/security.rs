//! Security contexts against the real kernel, as the unprivileged test
//! user: the default capability set, capabilities.add/drop, no_new_privs,
//! a read-only root, privileged, ICMP sockets for every group, and the
//! refusals of what cannot be honoured.

mod common;

use std::process::Command;

use common::{TestEnv, env_with_busybox, stderr_of, stdout_of};

/// containerd's default bounding set (podman's eleven plus NET_RAW, MKNOD,
/// AUDIT_WRITE), as /proc/PID/status prints it.
const DEFAULT_SET: &str = "00000000a80425fb";

/// Runs one busybox container with `security` as its securityContext (YAML
/// flow mapping) and `script`; returns whether it succeeded, and its output.
fn run_script(env: &TestEnv, name: &str, security: &str, script: &str) -> (bool, String) {
    run_pod_with(env, name, "", security, script)
}

/// The value of a `/proc/self/status` field the script printed.
fn status_field<'a>(out: &'a str, field: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        let rest = l.split_once(" | ").map_or(l, |(_, r)| r);
        rest.strip_prefix(&format!("{field}:")).map(|v| v.trim())
    })
}

const STATUS: &str = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status";

#[test]
fn the_default_set_is_containerds_and_ambient_is_empty() {
    let env = env_with_busybox();
    let (ok, out) = run_script(&env, "caps-default", "{}", STATUS);
    assert!(ok, "{out}");
    assert_eq!(status_field(&out, "CapBnd"), Some(DEFAULT_SET), "{out}");
    assert_eq!(status_field(&out, "CapEff"), Some(DEFAULT_SET), "{out}");
    assert_eq!(status_field(&out, "CapPrm"), Some(DEFAULT_SET), "{out}");
    assert_eq!(status_field(&out, "CapInh"), Some("0000000000000000"));
    assert_eq!(status_field(&out, "CapAmb"), Some("0000000000000000"));
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("0"), "{out}");
}

#[test]
fn add_and_drop_change_the_sets_and_a_non_root_user_has_none_effective() {
    let env = env_with_busybox();
    // + NET_ADMIN (12), - KILL (5), - CAP_MKNOD (27).
    let (ok, out) = run_script(
        &env,
        "caps-add-drop",
        "{capabilities: {add: [NET_ADMIN], drop: [KILL, CAP_MKNOD]}}",
        STATUS,
    );
    assert!(ok, "{out}");
    assert_eq!(
        status_field(&out, "CapBnd"),
        Some("00000000a00435db"),
        "{out}"
    );

    // drop ALL then add one back, as containerd applies them.
    let (ok, out) = run_script(
        &env,
        "caps-drop-all",
        "{capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}",
        STATUS,
    );
    assert!(ok, "{out}");
    assert_eq!(
        status_field(&out, "CapBnd"),
        Some("0000000000000400"),
        "{out}"
    );

    // A non-root user: the bounding set keeps what was added, but nothing
    // is effective (the ambient set is empty), and the run says so.
    let (ok, out) = run_script(
        &env,
        "caps-non-root",
        "{runAsUser: 1000, capabilities: {add: [NET_ADMIN]}}",
        STATUS,
    );
    assert!(ok, "{out}");
    assert_eq!(
        status_field(&out, "CapEff"),
        Some("0000000000000000"),
        "{out}"
    );
    assert_eq!(
        status_field(&out, "CapBnd"),
        Some("00000000a80435fb"),
        "{out}"
    );
    assert!(out.contains("no effective capabilities"), "{out}");
}

#[test]
fn allow_privilege_escalation_false_sets_no_new_privs() {
    let env = env_with_busybox();
    let (ok, out) = run_script(&env, "nnp", "{allowPrivilegeEscalation: false}", STATUS);
    assert!(ok, "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("1"), "{out}");
}

#[test]
fn a_read_only_root_keeps_volumes_and_shm_writable() {
    let env = env_with_busybox();
    let (ok, out) = run_script(
        &env,
        "ro-root",
        "{readOnlyRootFilesystem: true}",
        "touch /root-file 2>/dev/null && echo root-writable || echo root-read-only; \
         touch /scratch/f && echo volume-writable; touch /dev/shm/f && echo shm-writable; \
         touch /tmp/f 2>/dev/null || echo tmp-read-only",
    );
    assert!(ok, "{out}");
    for want in [
        "root-read-only",
        "volume-writable",
        "shm-writable",
        "tmp-read-only",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let (ok, out) = run_script(
        &env,
        "rw-root",
        "{}",
        "touch /root-file && echo root-writable",
    );
    assert!(ok && out.contains("root-writable"), "{out}");
}

#[test]
fn privileged_gets_every_capability_unmasked_proc_and_the_users_devices() {
    let env = env_with_busybox();
    let (ok, out) = run_script(
        &env,
        "privileged",
        "{privileged: true}",
        &format!(
            "{STATUS}; cat /proc/sys/kernel/cap_last_cap | sed 's/^/last=/'; \
             [ -c /proc/keys ] && echo keys-masked || echo keys-visible; \
             echo 1 > /proc/sys/net/ipv4/ip_forward && echo proc-sys-writable; \
             [ -c /dev/net/tun ] && echo has-tun || echo no-tun"
        ),
    );
    assert!(ok, "{out}");
    let last: u32 = out
        .lines()
        .find_map(|l| l.split("last=").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .expect("cap_last_cap printed");
    let all = format!("{:016x}", (1u64 << (last + 1)) - 1);
    assert_eq!(status_field(&out, "CapBnd"), Some(all.as_str()), "{out}");
    assert!(out.contains("keys-visible"), "{out}");
    assert!(out.contains("proc-sys-writable"), "{out}");
    // scripts/setup-host opens /dev/net/tun to every user.
    let tun_open = std::fs::metadata("/dev/net/tun")
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006);
    if tun_open {
        assert!(out.contains("has-tun"), "{out}");
    }

    // Without privileged, /proc/sys is read-only and /proc/keys masked.
    let (ok, out) = run_script(
        &env,
        "unprivileged",
        "{}",
        "[ -c /proc/keys ] && echo keys-masked; \
         echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo proc-sys-read-only; \
         [ -e /dev/net/tun ] || echo no-tun",
    );
    assert!(ok, "{out}");
    for want in ["keys-masked", "proc-sys-read-only", "no-tun"] {
        assert!(out.contains(want), "{want}: {out}");
    }
}

#[test]
fn every_group_of_the_pod_may_open_icmp_sockets() {
    let env = env_with_busybox();
    let (ok, out) = run_script(
        &env,
        "ping-range",
        "{runAsUser: 1000, runAsGroup: 1000}",
        "cat /proc/sys/net/ipv4/ping_group_range",
    );
    assert!(ok, "{out}");
    let range: Vec<u32> = out
        .lines()
        .map(|l| l.split_once(" | ").map_or(l, |(_, r)| r))
        .find(|l| l.starts_with('0'))
        .expect("the range printed")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(range[0] == 0 && range[1] >= 1000, "{out}");

    // A ping without file capabilities, as a non-root user: an ICMP
    // datagram socket (busybox's ping only tries raw sockets).
    let rootfs = env.work().join("dgramping-rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let cc = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(rootfs.join("dgramping"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/dgramping.c"
        ))
        .status();
    if !cc.is_ok_and(|s| s.success()) {
        eprintln!("ping part skipped: no C compiler");
        return;
    }
    env.give_to_user(&rootfs);
    env.ok(["import", rootfs.to_str().unwrap(), "localhost/dgramping:1"]);
    let out = env.run_pod(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: dgramping}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - {name: c, image: localhost/dgramping:1, command: [/dgramping]}
"#,
        &[],
    );
    assert!(
        out.status.success() && stdout_of(&out).contains("pinged"),
        "{}\n{}",
        stdout_of(&out),
        stderr_of(&out)
    );
}

#[test]
fn unknown_capabilities_and_contradictions_are_refused_before_anything_starts() {
    let env = env_with_busybox();
    let (ok, out) = run_script(
        &env,
        "bad-cap",
        "{capabilities: {add: [NET_WIZARD]}}",
        "true",
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("spec.containers[0].securityContext.capabilities.add[0]")
            && out.contains("NET_WIZARD")
            && out.contains("not a Linux capability"),
        "{out}"
    );
    let (ok, out) = run_script(
        &env,
        "bad-escalation",
        "{privileged: true, allowPrivilegeEscalation: false}",
        "true",
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
        "{out}"
    );
    assert!(env.pod_state().is_empty(), "nothing created");
}

/// Imports `localhost/trysys:1`: busybox plus `/trysys`
/// (tests/data/trysys.c), which tries system calls and prints what each
/// answered. False (and says so) without a C compiler.
fn trysys_image(env: &TestEnv) -> bool {
    let rootfs = common::oci::busybox_rootfs(&env.work().join("trysys-rootfs"));
    let cc = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(rootfs.join("trysys"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/trysys.c"))
        .status();
    if !cc.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no C compiler to build tests/data/trysys.c");
        return false;
    }
    env.give_to_user(&rootfs);
    env.ok(["import", rootfs.to_str().unwrap(), "localhost/trysys:1"]);
    true
}

/// Runs `/trysys` with `calls` in a container with `security`; returns
/// what it printed (and `/proc/self/status`'s Seccomp line first).
fn try_calls(env: &TestEnv, name: &str, security: &str, calls: &str) -> String {
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/trysys:1
    securityContext: {security}
    command: [sh, -c, "grep -E '^Seccomp:' /proc/self/status; /trysys {calls}"]
"#
    );
    let out = env.run_pod(&yaml, &[]);
    let text = format!("{}\n{}", stdout_of(&out), stderr_of(&out));
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn runtime_default_seccomp_is_on_unless_unconfined() {
    let env = env_with_busybox();
    if !trysys_image(&env) {
        return;
    }
    let calls = "add_key keyctl personality unshare mount mkdir";
    let out = try_calls(&env, "seccomp-default", "{}", calls);
    assert_eq!(status_field(&out, "Seccomp"), Some("2"), "{out}");
    for want in [
        "add_key EPERM",
        "keyctl EPERM",
        // Only the personalities containerd's profile lets through.
        "personality EPERM",
        "unshare EPERM",
        "mount EPERM",
        "mkdir ok",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // allowPrivilegeEscalation: false installs it last, after no_new_privs.
    let out = try_calls(
        &env,
        "seccomp-nnp",
        "{allowPrivilegeEscalation: false}",
        calls,
    );
    assert_eq!(status_field(&out, "Seccomp"), Some("2"), "{out}");
    assert!(out.contains("keyctl EPERM"), "{out}");

    let out = try_calls(
        &env,
        "seccomp-unconfined",
        "{seccompProfile: {type: Unconfined}}",
        "add_key keyctl personality",
    );
    assert_eq!(status_field(&out, "Seccomp"), Some("0"), "{out}");
    for want in ["add_key ok", "keyctl ok", "personality ok"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // A non-root user without no_new_privs gets the filter too.
    let out = try_calls(&env, "seccomp-user", "{runAsUser: 1000}", "keyctl mkdir");
    assert_eq!(status_field(&out, "Seccomp"), Some("2"), "{out}");
    assert!(out.contains("keyctl EPERM"), "{out}");
}

#[test]
fn a_localhost_profile_is_read_from_the_seccomp_folder() {
    let env = env_with_busybox();
    if !trysys_image(&env) {
        return;
    }
    let folder = env.root.join("seccomp/team");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    env.give_to_user(&env.root.join("seccomp"));
    let out = try_calls(
        &env,
        "seccomp-localhost",
        "{seccompProfile: {type: Localhost, localhostProfile: team/no-mkdir.json}}",
        "mkdir keyctl",
    );
    assert_eq!(status_field(&out, "Seccomp"), Some("2"), "{out}");
    assert!(
        out.contains("mkdir EACCES") && out.contains("keyctl ok"),
        "{out}"
    );

    // A profile that is not there stops the run before anything starts.
    let (ok, out) = run_script(
        &env,
        "seccomp-missing",
        "{seccompProfile: {type: Localhost, localhostProfile: team/absent.json}}",
        "true",
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("team/absent.json") && out.contains("seccomp"),
        "{out}"
    );
    assert!(env.pod_state().is_empty(), "nothing created");
}

#[test]
fn escapes_from_a_default_container_are_refused() {
    let env = env_with_busybox();
    if !trysys_image(&env) {
        return;
    }
    // Two containers sharing a PID namespace: the prober tries to ptrace
    // the other's process, and to write the pause program (PID 1) and
    // every other process's executable through /proc (CVE-2019-5736).
    let out = env.run_pod(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: escapes}
spec:
  restartPolicy: Never
  shareProcessNamespace: true
  containers:
  - name: victim
    image: localhost/trysys:1
    command: [sleep, "30"]
  - name: prober
    image: localhost/trysys:1
    command:
    - sh
    - -c
    - |
      for i in $(seq 50); do v=$(pidof sleep) && break; sleep 0.1; done
      /trysys ptrace:$v mount unshare
      for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        if (echo x >> $p/exe) 2>/dev/null; then echo "wrote $p/exe"; fi
      done
      echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo proc-sys-written
      echo x > /sys/kernel/uevent_helper 2>/dev/null && echo sys-written
      [ -e /proc/kcore ] && { head -c 1 /proc/kcore >/dev/null 2>&1 && echo kcore-read; }
      ls /proc/self/fd | tr '\n' ' ' | sed 's/^/fds: /'; echo
      echo done
"#,
        &["--exit-code-from", "prober"],
    );
    let text = format!("{}\n{}", stdout_of(&out), stderr_of(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("done"), "{text}");
    for refused in ["ptrace:", "mount EPERM", "unshare EPERM"] {
        assert!(text.contains(refused), "{refused}: {text}");
    }
    assert!(
        !text.contains("ptrace:")
            || !text
                .lines()
                .any(|l| l.contains("ptrace:") && l.ends_with(" ok")),
        "{text}"
    );
    for escaped in [
        "wrote /proc/",
        "proc-sys-written",
        "sys-written",
        "kcore-read",
    ] {
        assert!(!text.contains(escaped), "{escaped}: {text}");
    }
    // CVE-2024-21626: nothing of the host leaks as a descriptor: the
    // shell's 0-2 (and 255, busybox's ash), and ls's own directory.
    let fds = text
        .lines()
        .find_map(|l| l.split("fds: ").nth(1))
        .expect("fds listed");
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert!(fds.len() <= 5, "{fds:?}");

    // ...nor can a working directory reach the host through one.
    for fd in 3..=9 {
        let out = env.run_pod(
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: cwd{fd}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - {{name: c, image: localhost/busybox, workingDir: /proc/self/fd/{fd}, command: [ls]}}\n"
            ),
            &[],
        );
        assert!(
            !out.status.success(),
            "workingDir /proc/self/fd/{fd} worked: {}",
            stdout_of(&out)
        );
        let _ = env.run(["rm", "-f", &format!("cwd{fd}")]);
    }
}

/// Runs a one-container busybox pod whose spec gets `spec_extra` (YAML
/// lines at the spec's indentation) and container `security`.
fn run_pod_with(
    env: &TestEnv,
    name: &str,
    spec_extra: &str,
    security: &str,
    script: &str,
) -> (bool, String) {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n{spec_extra}  volumes: [{{name: scratch, emptyDir: {{}}}}, {{name: mem, emptyDir: {{medium: Memory}}}}]\n  containers:\n  - name: c\n    image: localhost/busybox\n    securityContext: {security}\n    volumeMounts: [{{name: scratch, mountPath: /scratch}}, {{name: mem, mountPath: /mem}}]\n    command: [sh, -c, {script:?}]\n"
    );
    let out = env.run_pod(&yaml, &[]);
    let text = format!("{}\n{}", stdout_of(&out), stderr_of(&out));
    (out.status.success(), text)
}

#[test]
fn fs_group_and_supplemental_groups_reach_processes_and_volumes() {
    let env = env_with_busybox();
    let (ok, out) = run_pod_with(
        &env,
        "fsgroup",
        "  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}\n",
        "{}",
        "id; stat -c 'scratch %g %a' /scratch; stat -c 'mem %g %a' /mem; \
         touch /scratch/f && stat -c 'file %g' /scratch/f",
    );
    assert!(ok, "{out}");
    assert!(out.contains("gid=3000 groups=2000,4000"), "{out}");
    assert!(out.contains("scratch 2000 2777"), "{out}");
    assert!(out.contains("mem 2000 3777"), "{out}");
    // setgid: new files take the fsGroup.
    assert!(out.contains("file 2000"), "{out}");

    // Strict: not the image's /etc/group groups of the user.
    let (ok, out) = run_pod_with(
        &env,
        "strict",
        "  securityContext: {supplementalGroups: [5000], supplementalGroupsPolicy: Strict}\n",
        "{}",
        "id",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("groups=5000") || out.contains("groups=0,5000"),
        "{out}"
    );
}

#[test]
fn sysctls_are_set_in_the_pods_namespaces_and_host_wide_ones_refused() {
    let env = env_with_busybox();
    let (ok, out) = run_pod_with(
        &env,
        "sysctls",
        "  securityContext:\n    sysctls:\n    - {name: net.ipv4.tcp_syncookies, value: \"0\"}\n    - {name: net/core/somaxconn, value: \"1234\"}\n    - {name: kernel.shm_rmid_forced, value: \"1\"}\n    - {name: kernel.msgmax, value: \"9000\"}\n",
        "{}",
        "for s in net/ipv4/tcp_syncookies net/core/somaxconn kernel/shm_rmid_forced kernel/msgmax; do echo \"$s=$(cat /proc/sys/$s)\"; done",
    );
    assert!(ok, "{out}");
    for want in [
        "net/ipv4/tcp_syncookies=0",
        "net/core/somaxconn=1234",
        "kernel/shm_rmid_forced=1",
        "kernel/msgmax=9000",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // Not in the safe set: allowed here, with a warning.
    assert!(out.contains("not in Kubernetes' safe set"), "{out}");
    // The host's own value is untouched.
    let host = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    assert_ne!(host.trim(), "1234");

    let (ok, out) = run_pod_with(
        &env,
        "sysctl-host",
        "  securityContext:\n    sysctls: [{name: vm.swappiness, value: \"1\"}]\n",
        "{}",
        "true",
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("vm.swappiness") && out.contains("not a namespaced sysctl"),
        "{out}"
    );
}

#[test]
fn host_ipc_and_host_pid_share_the_hosts_namespaces() {
    let env = env_with_busybox();
    let (ok, out) = run_pod_with(
        &env,
        "hostns",
        "  hostIPC: true\n  hostPID: true\n",
        "{}",
        "echo ipc=$(readlink /proc/self/ns/ipc); echo pid=$(readlink /proc/self/ns/pid); \
         [ -e /proc/1/comm ] && echo pid1=$(cat /proc/1/comm)",
    );
    assert!(ok, "{out}");
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let host_pid = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert!(
        out.contains(&format!("ipc={}", host_ipc.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("pid={}", host_pid.display())),
        "{out}"
    );
    let init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert!(out.contains(&format!("pid1={}", init.trim())), "{out}");
    assert!(out.contains("hostPID"), "the warning: {out}");

    // By default each pod has its own.
    let (ok, out) = run_pod_with(
        &env,
        "ownns",
        "",
        "{}",
        "echo ipc=$(readlink /proc/self/ns/ipc)",
    );
    assert!(
        ok && !out.contains(&format!("ipc={}", host_ipc.display())),
        "{out}"
    );
}

#[test]
fn proc_mount_unmasked_needs_host_users_false() {
    let env = env_with_busybox();
    let (ok, out) = run_pod_with(
        &env,
        "unmasked",
        "  hostUsers: false\n",
        "{procMount: Unmasked}",
        "[ -c /proc/keys ] && echo keys-masked || echo keys-visible",
    );
    assert!(ok && out.contains("keys-visible"), "{out}");
    let (ok, out) = run_pod_with(&env, "unmasked-no", "", "{procMount: Unmasked}", "true");
    assert!(
        !ok && out.contains("`hostUsers` must be false to use `Unmasked`"),
        "{out}"
    );
    // AppArmor and SELinux fields are accepted with a warning naming them.
    let (ok, out) = run_pod_with(
        &env,
        "mac",
        "",
        "{appArmorProfile: {type: RuntimeDefault}, seLinuxOptions: {level: \"s0:c1,c2\"}}",
        "true",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("appArmorProfile") && out.contains("seLinuxOptions"),
        "{out}"
    );
}

#[test]
fn fs_group_owns_config_and_claim_volumes() {
    let env = env_with_busybox();
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {app.conf: "x=1"}
---
apiVersion: v1
kind: Pod
metadata: {name: fsgroup-volumes}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1000, fsGroup: 2000, fsGroupChangePolicy: OnRootMismatch}
  volumes:
  - {name: cfg, configMap: {name: settings, defaultMode: 0400}}
  - {name: data, persistentVolumeClaim: {claimName: fsgroup-data}}
  containers:
  - name: c
    image: localhost/busybox
    volumeMounts: [{name: cfg, mountPath: /cfg}, {name: data, mountPath: /data}]
    command: [sh, -c, "stat -L -c 'cfg %g %a' /cfg/app.conf; cat /cfg/app.conf; echo; stat -c 'data %g %a' /data; echo hi > /data/f && stat -c 'file %g' /data/f"]
"#;
    let out = env.run_pod(yaml, &[]);
    let text = format!("{}\n{}", stdout_of(&out), stderr_of(&out));
    assert!(out.status.success(), "{text}");
    // 0400 plus the group's read, as kubelet gives it; readable by uid 1000
    // through the group.
    assert!(text.contains("cfg 2000 440"), "{text}");
    assert!(text.contains("x=1"), "{text}");
    assert!(text.contains("data 2000 2777"), "{text}");
    assert!(text.contains("file 2000"), "{text}");
    let _ = env.run(["volume", "rm", "fsgroup-data"]);
}

/// A tar entry's PAX extended header record: `LEN key=value\n`, LEN
/// counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// Imports `localhost/rawping:1`: busybox plus `/rawping`
/// (tests/data/rawping.c) carrying the file capability `cap_net_raw=ep`,
/// as Debian's iputils ping does. False without a C compiler.
fn rawping_image(env: &TestEnv) -> bool {
    let rootfs = common::oci::busybox_rootfs(&env.work().join("rawping-rootfs"));
    let binary = env.work().join("rawping");
    let cc = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rawping.c"))
        .status();
    if !cc.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no C compiler to build tests/data/rawping.c");
        return false;
    }
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all(".", &rootfs).unwrap();
    // vfs_cap_data, revision 2, effective: permitted = CAP_NET_RAW (13).
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    let pax = pax_record("SCHILY.xattr.security.capability", &cap);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(pax.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    tar.append_data(&mut h, "PaxHeaders/rawping", &pax[..])
        .unwrap();
    let data = std::fs::read(&binary).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    tar.append_data(&mut h, "rawping", &data[..]).unwrap();
    let file = env.work().join("rawping.tar");
    std::fs::write(&file, tar.into_inner().unwrap()).unwrap();
    env.give_to_user(&file);
    env.ok(["import", file.to_str().unwrap(), "localhost/rawping:1"]);
    true
}

#[test]
fn a_ping_with_a_file_capability_runs_for_root_and_others() {
    let env = env_with_busybox();
    if !rawping_image(&env) {
        return;
    }
    let pod = |name: &str, security: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: localhost/rawping:1\n    securityContext: {security}\n    command: [/rawping]\n"
        )
    };
    for (name, security) in [
        ("rawping-root", "{}"),
        ("rawping-user", "{runAsUser: 1000}"),
    ] {
        let out = env.run_pod(&pod(name, security), &[]);
        assert!(
            out.status.success() && stdout_of(&out).contains("pinged"),
            "{name}: {}\n{}",
            stdout_of(&out),
            stderr_of(&out)
        );
    }
    // Without NET_RAW in the bounding set the binary cannot even be run
    // by a non-root user (Debian's ping under podman's default set).
    let out = env.run_pod(
        &pod(
            "rawping-dropped",
            "{runAsUser: 1000, capabilities: {drop: [NET_RAW]}}",
        ),
        &[],
    );
    let text = format!("{}\n{}", stdout_of(&out), stderr_of(&out));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Operation not permitted"), "{text}");
}
