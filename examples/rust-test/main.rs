//! Integration tests of a pod, written with `minipod::testing`: start the
//! pod of examples/rust-test/pod.yaml detached, wait until it is Ready, talk
//! to it through a published port, and have it removed when the test ends,
//! passed or panicked.
//!
//!     cargo build && cargo test --example rust-test
//!
//! minipod is the program `$MINIPOD_BIN`, else the one `cargo build` made
//! beside this example, else `minipod` on `PATH`; `$MINIPOD_ROOT` and
//! `$MINIPOD_RUNROOT` pick its roots. The image `localhost/busybox` is
//! imported from the host's busybox (package `busybox-static`) when the
//! store lacks it.

fn main() {
    eprintln!("these are tests: cargo build && cargo test --example rust-test");
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::Duration;

    use minipod::testing::{Minipod, TestPod};

    const POD: &str = "examples/rust-test/pod.yaml";

    /// How the tests run minipod: `Minipod::from_env()`, with the binary cargo
    /// built beside this example when `MINIPOD_BIN` is not set. None (the test
    /// is skipped, saying why) when there is no busybox to make the image from.
    fn minipod() -> Option<Minipod> {
        static READY: OnceLock<Option<Minipod>> = OnceLock::new();
        READY
            .get_or_init(|| {
                let mut minipod = Minipod::from_env();
                if std::env::var_os("MINIPOD_BIN").is_none() {
                    // target/<triple>/debug/examples/rust_test-HASH → debug/minipod
                    let built = std::env::current_exe()
                        .ok()
                        .and_then(|exe| Some(exe.parent()?.parent()?.join("minipod")))
                        .filter(|p| p.is_file());
                    if let Some(built) = built {
                        minipod = minipod.bin(built);
                    }
                }
                let images = minipod.ok(["images", "--format", "json"]).unwrap();
                if !images.contains("\"localhost/busybox\"") {
                    let Some(rootfs) = busybox_rootfs() else {
                        eprintln!("skipped: no busybox on this machine (install busybox-static)");
                        return None;
                    };
                    minipod
                        .ok([
                            "import".as_ref(),
                            rootfs.as_os_str(),
                            "localhost/busybox:latest".as_ref(),
                        ])
                        .unwrap();
                    let _ = std::fs::remove_dir_all(&rootfs);
                }
                Some(minipod)
            })
            .clone()
    }

    /// A root filesystem of the host's busybox and a link per applet.
    fn busybox_rootfs() -> Option<PathBuf> {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())?;
        let dir = std::env::temp_dir().join(format!("rust-test-rootfs-{}", std::process::id()));
        for d in ["bin", "etc", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::copy(&busybox, dir.join("bin/busybox")).unwrap();
        let list = std::process::Command::new(&busybox)
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
            }
        }
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
        Some(dir)
    }

    /// GET `path` over HTTP/1.0; the body.
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert_eq!(answer.split(' ').nth(1), Some("200"), "{answer}");
        answer.split_once("\r\n\r\n").unwrap().1.to_string()
    }

    /// Whether `minipod ps -a` still lists the pod.
    fn listed(minipod: &Minipod, pod: &str) -> bool {
        let json = minipod.ok(["ps", "-a", "--format", "json"]).unwrap();
        let pods: serde_json::Value = serde_json::from_str(&json).unwrap();
        pods.as_array().unwrap().iter().any(|p| p["name"] == pod)
    }

    #[test]
    fn serves_through_a_published_port() {
        let Some(minipod) = minipod() else { return };
        let pod = TestPod::run(POD)
            .minipod(minipod)
            .publish_all_random()
            .start()
            .unwrap();
        // Ready: the readiness probe passed, so the server answers now.
        let addr = pod.port(8080).unwrap();
        assert_ne!(addr.port(), 8080, "-P gives a free port");
        assert_eq!(get(addr, "/"), format!("hello from {}\n", pod.name()));
        // The pod carries the YAML's labels and the test process's.
        let labels = &pod.inspect().unwrap()["metadata"]["labels"];
        assert_eq!(labels["app"], "web");
        assert_eq!(
            labels[minipod::testing::PID_LABEL],
            std::process::id().to_string()
        );
        let out = pod.exec("web", ["cat", "/www/index.html"]).unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), get(addr, "/"));
    }

    #[test]
    fn a_panicking_test_leaves_no_pod() {
        let Some(minipod) = minipod() else { return };
        let mut name = String::new();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let pod = TestPod::run(POD)
                .minipod(minipod.clone())
                .publish_all_random()
                .start()
                .unwrap();
            name = pod.name().to_string();
            assert!(listed(&minipod, &name));
            panic!("a failed assertion, on purpose");
        }));
        assert!(outcome.is_err());
        assert!(!name.is_empty());
        assert!(!listed(&minipod, &name), "the pod went with the panic");
    }

    /// Run by `pods_of_a_killed_test_process_are_removed` in a child process:
    /// starts a pod, says its name, and waits to be killed.
    #[test]
    #[ignore = "a helper of pods_of_a_killed_test_process_are_removed"]
    fn child_starts_a_pod_and_waits() {
        let Some(minipod) = minipod() else { return };
        let pod = TestPod::run(POD)
            .minipod(minipod)
            .publish_all_random()
            .start()
            .unwrap();
        println!("POD {}", pod.name());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(600));
    }

    #[test]
    fn pods_of_a_killed_test_process_are_removed() {
        let Some(minipod) = minipod() else { return };
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "tests::child_starts_a_pod_and_waits",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let stale = loop {
            line.clear();
            let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert!(n > 0, "the child ended without starting its pod");
            if let Some(name) = line.trim().strip_prefix("POD ") {
                break name.to_string();
            }
        };
        // SIGKILL: no Drop runs, the pod stays.
        child.kill().unwrap();
        child.wait().unwrap();
        // The next start (here or in any test process) removes it.
        let _pod = TestPod::run(POD)
            .minipod(minipod.clone())
            .publish_all_random()
            .start()
            .unwrap();
        assert!(!listed(&minipod, &stale), "{stale} was removed");
    }
}
