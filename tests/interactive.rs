//! Interactive containers: `stdin`, `stdinOnce` and `tty`, `run -it` and
//! `attach`, driven through a real pseudo-terminal as a user would.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestEnv, env_with_busybox, live_processes, stderr_of, stdout_of, wait_until};

/// A minipod command whose stdin, stdout and stderr are a pty's slave,
/// which is its controlling terminal; we hold the master.
struct Terminal {
    master: File,
    seen: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

impl Terminal {
    fn spawn(env: &TestEnv, args: &[&str]) -> Terminal {
        let pty = nix::pty::openpty(
            Some(&nix::pty::Winsize {
                ws_row: 30,
                ws_col: 100,
                ws_xpixel: 0,
                ws_ypixel: 0,
            }),
            None,
        )
        .unwrap();
        let mut cmd = env.command(args);
        let slave = File::from(pty.slave);
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the slave.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("running minipod on a pty");
        drop(slave);
        drop(cmd);
        let master = File::from(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, into) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every holder of the slave is gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master,
            seen,
            child,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).to_string()
    }

    fn type_in(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Waits until the terminal shows `what` (after the first `after`
    /// bytes seen so far).
    fn expect(&self, what: &str, after: usize) {
        wait_until(
            &format!("{what:?} on the terminal"),
            Duration::from_secs(30),
            || self.text().get(after..).is_some_and(|t| t.contains(what)),
        );
    }

    /// Our window changes size: the kernel tells minipod (SIGWINCH).
    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads `ws`, which outlives the call.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(rc, 0);
    }

    fn mark(&self) -> usize {
        self.text().len()
    }

    /// Waits for the command's exit code (killing it after a minute).
    fn exit_code(&mut self) -> i32 {
        let pid = self.child.id();
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!(
            "minipod (pid {pid}) did not exit; the terminal shows:\n{}",
            self.text()
        );
    }
}

const SHELL: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: sh
    image: localhost/busybox
    command: [sh]
    stdin: true
    tty: true
  - name: side
    image: localhost/busybox
    command: [sh, -c, 'echo side-says-hi; exec sleep 31701']
"#;

#[test]
fn run_it_types_into_a_shell_detaches_and_attach_finds_it_again() {
    let env = env_with_busybox();
    let file = env.pod_file("shell", SHELL);
    let mut term = Terminal::spawn(&env, &["run", "-it", file.to_str().unwrap()]);
    term.expect("If you don't see a command prompt", 0);
    let at = term.mark();
    // The shell's terminal echoes what we type; only running it computes 42.
    term.type_in(b"X=remembered; echo hel''lo-$((6*7)); tty\r");
    term.expect("echo hel''lo", at);
    term.expect("hello-42", at);
    // Its terminal comes from the container's own devpts.
    term.expect("/dev/pts/0", at);
    // The pty has our window size, and follows it (SIGWINCH).
    let at = term.mark();
    term.type_in(b"stty size\r");
    term.expect("30 100", at);
    term.resize(40, 120);
    std::thread::sleep(Duration::from_millis(300));
    let at = term.mark();
    term.type_in(b"stty size\r");
    term.expect("40 120", at);
    // Ctrl-P Ctrl-Q: run returns as -d does, the pod runs on.
    let at = term.mark();
    term.type_in(b"\x10\x11");
    assert_eq!(term.exit_code(), 0, "{}", term.text());
    term.expect("shell", at);
    // Only the attached container's output reached the terminal.
    assert!(!term.text().contains("side-says-hi"), "{}", term.text());
    let ps = env.ok(["ps"]);
    assert!(ps.contains("shell") && ps.contains("Running"), "{ps}");

    // inspect shows the fields as given.
    let pod = common::inspect(&env, "shell");
    assert_eq!(pod["spec"]["containers"][0]["stdin"], true);
    assert_eq!(pod["spec"]["containers"][0]["tty"], true);
    assert!(pod["spec"]["containers"][1].get("stdin").is_none());
    // A tty's output is logged as stdout.
    let logs = env.ok(["logs", "shell", "sh"]);
    assert!(logs.contains("hello-42"), "{logs}");

    // attach: the same shell, with what the first session set.
    let mut again = Terminal::spawn(&env, &["attach", "shell", "sh"]);
    std::thread::sleep(Duration::from_millis(300));
    let at = again.mark();
    again.type_in(b"echo $X-again\r");
    again.expect("remembered-again", at);
    // The container's exit ends attach with its code.
    again.type_in(b"exit 3\r");
    assert_eq!(again.exit_code(), 3, "{}", again.text());

    // exec -t shares the terminal helpers: a pty of the container's own.
    let mut exec = Terminal::spawn(
        &env,
        &[
            "exec",
            "-it",
            "shell",
            "side",
            "--",
            "sh",
            "-c",
            "tty; stty size; exit 5",
        ],
    );
    exec.expect("/dev/pts/", 0);
    exec.expect("30 100", 0);
    assert_eq!(exec.exit_code(), 5, "{}", exec.text());

    // restartPolicy Never: the side container keeps the pod up; stop it.
    env.ok(["rm", "-f", "shell"]);
    assert!(live_processes("31701").is_empty());
}

#[test]
fn run_it_waits_for_the_pod_when_the_container_exits() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "once",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
  - name: sh
    image: localhost/busybox
    command: [sh]
    stdin: true
    tty: true
"#,
    );
    let mut term = Terminal::spawn(&env, &["run", "-it", file.to_str().unwrap()]);
    term.expect("If you don't see a command prompt", 0);
    term.type_in(b"exit 7\r");
    // As a foreground run: the pod's code, and nothing left behind.
    assert_eq!(term.exit_code(), 7, "{}", term.text());
    let ps = env.ok(["ps", "-a"]);
    assert!(!ps.contains("once"), "{ps}");
}

#[test]
fn stdin_once_closes_stdin_when_the_first_session_ends() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "cat",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: cat}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: cat
    image: localhost/busybox
    command: [sh, -c, 'cat; echo cat-ended; exec sleep 31702']
    stdin: true
    stdinOnce: true
    tty: true
"#,
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    // No one attached yet: cat waits (stdin stays open).
    std::thread::sleep(Duration::from_millis(500));
    assert!(!env.ok(["logs", "cat"]).contains("cat-ended"));
    let mut term = Terminal::spawn(&env, &["attach", "cat", "cat"]);
    std::thread::sleep(Duration::from_millis(300));
    let at = term.mark();
    term.type_in(b"meow-1\r");
    term.expect("meow-1", at);
    term.type_in(b"\x10\x11");
    assert_eq!(term.exit_code(), 0, "{}", term.text());
    // The first session ended: cat read EOF.
    wait_until("cat to end", Duration::from_secs(10), || {
        env.ok(["logs", "cat"]).contains("cat-ended")
    });
    // Later sessions of this start get output only.
    let mut late = Terminal::spawn(&env, &["attach", "cat", "cat"]);
    std::thread::sleep(Duration::from_millis(300));
    // Not raw (no input goes to the container): Ctrl-C ends attach only.
    late.type_in(b"\x03");
    assert_eq!(late.exit_code(), 130, "{}", late.text());
    assert!(env.ok(["ps"]).contains("Running"));
    env.ok(["rm", "-f", "cat"]);
    assert!(live_processes("31702").is_empty());
}

#[test]
fn a_restarted_container_gets_a_fresh_stdin() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "again",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: again}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: r
    image: localhost/busybox
    command: [sh, -c, 'read l; echo got-$l']
    stdin: true
    stdinOnce: true
"#,
    );
    env.ok([
        "run",
        "-d",
        "--restart-backoff",
        "0.2",
        file.to_str().unwrap(),
    ]);
    let feed = |text: &[u8]| {
        let mut cmd = env.command(["attach", "again", "r"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(text).unwrap();
        common::wait_output(child, Duration::from_secs(30))
    };
    let first = feed(b"one\n");
    assert_eq!(stdout_of(&first), "got-one\n", "{}", stderr_of(&first));
    // restartPolicy Always: it starts again, with stdin open again.
    wait_until("the restart", Duration::from_secs(20), || {
        let pod = common::inspect(&env, "again");
        let r = common::status_of(&pod, "r");
        r["state"].get("running").is_some() && r["restartCount"].as_u64() >= Some(1)
    });
    let second = feed(b"two\n");
    assert_eq!(stdout_of(&second), "got-two\n", "{}", stderr_of(&second));
    env.ok(["rm", "-f", "again"]);
}

#[test]
fn stdin_without_tty_is_a_pipe_fed_by_attach() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "reader",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  restartPolicy: Never
  containers:
  - name: r
    image: localhost/busybox
    command: [sh, -c, 'while read l; do echo got-$l; done; echo input-ended; exit 4']
    stdin: true
    stdinOnce: true
  - name: deaf
    image: localhost/busybox
    command: [sh, -c, 'cat; echo deaf-read-eof; exec sleep 31703']
"#,
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    // stdin: false (the default) is /dev/null: cat reads EOF at once.
    wait_until("deaf's EOF", Duration::from_secs(10), || {
        env.ok(["logs", "reader", "deaf"]).contains("deaf-read-eof")
    });
    let mut cmd = env.command(["attach", "reader", "r"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"x\ny\n").unwrap();
    let out = common::wait_output(child, Duration::from_secs(30));
    // Its input's EOF closed the container's stdin (stdinOnce); the
    // container's exit code is attach's.
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "got-x\ngot-y\ninput-ended\n");
    // Attaching to a container that ended is refused.
    let err = env.fails(["attach", "reader", "r"]);
    assert!(
        err.contains("container r of pod reader is not running"),
        "{err}"
    );
    let err = env.fails(["attach", "reader", "nope"]);
    assert!(err.contains("no container \"nope\""), "{err}");
    let err = env.fails(["attach", "ghost", "r"]);
    assert!(err.contains("ghost"), "{err}");
    env.ok(["rm", "-f", "reader"]);
    assert!(live_processes("31703").is_empty());
}

#[test]
fn run_i_needs_exactly_one_container_with_stdin() {
    let env = TestEnv::new();
    let two = env.pod_file(
        "two",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec:\n  containers:\n  - {name: a, image: localhost/busybox, stdin: true}\n  - {name: b, image: localhost/busybox, stdin: true}\n",
    );
    let err = env.fails(["run", "-i", two.to_str().unwrap()]);
    assert!(err.contains("has 2 with `stdin: true` (a, b)"), "{err}");
    let none = env.pod_file(
        "none",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: none}\nspec:\n  containers:\n  - {name: a, image: localhost/busybox, tty: true}\n",
    );
    let err = env.fails(["run", "-it", none.to_str().unwrap()]);
    assert!(err.contains("pod none has none"), "{err}");
    let err = env.fails(["run", "-it", "-d", none.to_str().unwrap()]);
    assert!(err.contains("-d runs in the background"), "{err}");
    // Refused before anything started (no image was even looked up).
    assert!(env.ok(["ps", "-a"]).lines().count() <= 1);
}

#[test]
fn attach_to_a_container_without_stdin_shows_its_output_live() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "ticker",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: t
    image: localhost/busybox
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick-$i; echo tock-$i >&2; sleep 0.2; done']
"#,
    );
    env.ok(["run", "-d", file.to_str().unwrap()]);
    let term = Terminal::spawn(&env, &["attach", "ticker", "t"]);
    let at = term.mark();
    // Lines printed after we attached, stdout and stderr both.
    term.expect("tick-", at);
    term.expect("tock-", at);
    let mut term = term;
    term.type_in(b"\x03");
    assert_eq!(term.exit_code(), 130, "{}", term.text());
    assert!(env.ok(["ps"]).contains("Running"));
    env.ok(["rm", "-f", "ticker"]);
}
