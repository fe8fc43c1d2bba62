//! Shared harness for the integration tests: runs the real `minipod` binary
//! as an unprivileged user (when the tests run as root) against a private
//! data root and run root, and cleans up after itself.

#![allow(dead_code)]

pub mod oci;
pub mod registry;

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The user the binary runs as: root runs it as `$MINIPOD_TEST_USER`
/// (default `minipod-test`, created by scripts/setup-host); anyone else runs
/// it as themselves.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Whether we switch to this user (we are root) or already are it.
    pub switch: bool,
}

pub fn test_user() -> &'static TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        let me = nix::unistd::getuid();
        if me.is_root() {
            let name = std::env::var("MINIPOD_TEST_USER").unwrap_or_else(|_| "minipod-test".into());
            let user = nix::unistd::User::from_name(&name)
                .expect("reading the user database")
                .unwrap_or_else(|| {
                    panic!("test user {name} does not exist: run `sudo scripts/setup-host` first")
                });
            TestUser {
                name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                home: user.dir,
                switch: true,
            }
        } else {
            let user = nix::unistd::User::from_uid(me).unwrap().unwrap();
            TestUser {
                name: user.name,
                uid: me.as_raw(),
                gid: user.gid.as_raw(),
                home: user.dir,
                switch: false,
            }
        }
    })
}

/// A TCP port on 127.0.0.1 that nothing listens on (at the moment).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test user's first subordinate uid, if it has a range.
pub fn subuid_start() -> Option<u32> {
    let user = test_user();
    std::fs::read_to_string("/etc/subuid")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut p = l.split(':');
            let owner = p.next()?;
            (owner == user.name || owner == user.uid.to_string()).then(|| p.next()?.parse().ok())?
        })
}

const BIN_DIR_PREFIX: &str = "minipod-test-bin-";

/// The binary, copied once per test process into a world-readable place:
/// the build tree may sit under directories the test user cannot enter. The
/// copy goes when the process exits (atexit), and copies of test processes
/// that died without exiting are removed by the next one.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        remove_copies_of_dead_processes();
        let dir = bin_dir(std::process::id());
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o755);
        // minipod runs each pod's supervisor from the binary beside it.
        let supervisor = dir.join("minipod-supervisor");
        std::fs::copy(env!("CARGO_BIN_EXE_minipod-supervisor"), &supervisor).unwrap();
        set_mode(&supervisor, 0o755);
        let bin = dir.join("minipod");
        std::fs::copy(env!("CARGO_BIN_EXE_minipod"), &bin).unwrap();
        set_mode(&bin, 0o755);
        extern "C" fn remove_copy() {
            let _ = std::fs::remove_dir_all(bin_dir(std::process::id()));
        }
        // SAFETY: registers a plain function to run at exit.
        unsafe { libc::atexit(remove_copy) };
        bin
    })
}

fn bin_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("{BIN_DIR_PREFIX}{pid}"))
}

fn remove_copies_of_dead_processes() {
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(BIN_DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A private world for one test: its own data root, run root and scratch
/// dir, owned by the test user. Dropping it stops the holder and deletes all.
pub struct TestEnv {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub runroot: PathBuf,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let base = tempfile::Builder::new()
            .prefix("minipod-it-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        set_mode(&base, 0o755);
        let env = TestEnv {
            root: base.join("data"),
            runroot: base.join("run"),
            dir: base,
        };
        for d in [&env.root, &env.runroot, &env.dir.join("work")] {
            std::fs::create_dir_all(d).unwrap();
        }
        env.give_to_user(&env.dir);
        env
    }

    /// Scratch space the test user can read and write.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Makes `path` (recursively) the test user's, so the binary can use it.
    pub fn give_to_user(&self, path: &Path) {
        let user = test_user();
        if !user.switch {
            return;
        }
        for entry in walk(path) {
            let _ = std::os::unix::fs::lchown(&entry, Some(user.uid), Some(user.gid));
        }
    }

    /// A `minipod` command with this env's roots, run as the test user.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let user = test_user();
        let mut cmd = Command::new(binary());
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot);
        cmd.args(args);
        cmd.current_dir(&self.dir);
        cmd.env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_DATA_HOME");
        cmd.env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
        if user.switch {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs minipod and returns its output, whatever the exit code. A run
    /// that takes over a minute is killed and fails the test.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("running minipod");
        wait_output(child, std::time::Duration::from_secs(60))
    }

    /// Runs minipod and returns its arguments (for messages) and output.
    fn run_collected<I, S>(&self, args: I) -> (Vec<std::ffi::OsString>, Output)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.run(&args);
        (args, out)
    }

    /// Runs minipod and insists on success; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (args, out) = self.run_collected(args);
        assert!(
            out.status.success(),
            "minipod {:?} failed ({}):\nstdout: {}\nstderr: {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs minipod, insists on exit code 125, returns stderr.
    pub fn fails<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (args, out) = self.run_collected(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(125),
            "minipod {args:?} should fail with 125; stderr: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "minipod panicked: {stderr}");
        stderr
    }

    /// The pid of this env's user-namespace holder, if one runs.
    pub fn holder_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.runroot.join("holder.pid")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// Runs `sh -c script` as the test user inside the holder's user
    /// namespace, in a new mount namespace (tests use it to look at layers
    /// and overlay mounts the way a container would).
    pub fn in_userns(&self, script: &str) -> Output {
        let pid = self.holder_pid().expect("a holder runs");
        let user = test_user();
        let mut cmd = Command::new("nsenter");
        cmd.args([
            "--target",
            &pid.to_string(),
            "--user",
            "--preserve-credentials",
            "unshare",
            "--mount",
            "sh",
            "-c",
            script,
        ]);
        if user.switch {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd.current_dir(&self.dir);
        cmd.output().expect("running nsenter")
    }

    /// Imports a busybox image (from the host's busybox-static) as
    /// `localhost/busybox:latest`.
    pub fn busybox(&self) {
        let rootfs = oci::busybox_rootfs(&self.work().join("busybox-rootfs"));
        self.give_to_user(&rootfs);
        self.ok([
            "import",
            rootfs.to_str().unwrap(),
            "localhost/busybox:latest",
        ]);
    }

    /// Writes a pod YAML into the scratch dir; returns its path.
    pub fn pod_file(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.work().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        self.give_to_user(&path);
        path
    }

    /// `minipod run ARGS... FILE` with a pod YAML; returns the output.
    pub fn run_pod(&self, yaml: &str, extra: &[&str]) -> Output {
        let path = self.pod_file("pod", yaml);
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(path.display().to_string());
        self.run(&args)
    }

    /// A pod's state.json.
    pub fn pod_state_json(&self, pod: &str) -> serde_json::Value {
        let path = self.runroot.join("pods").join(pod).join("state.json");
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    /// What is left of pods in the run root (state dirs, lock files).
    pub fn pod_state(&self) -> Vec<String> {
        ["pods", "pod-locks"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(self.runroot.join(d))
                    .into_iter()
                    .flatten()
            })
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    }

    /// Everything under the data root's layers dir (names only).
    pub fn layer_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("layers"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn image_names(&self) -> Vec<String> {
        let json = self.ok(["images", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["Name"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // A test that failed half-way may leave detached pods: their
        // supervisors take the containers with them (PDEATHSIG).
        let mut killed = Vec::new();
        for pod in std::fs::read_dir(self.runroot.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let state = std::fs::read(pod.path().join("state.json")).unwrap_or_default();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&state)
                && let Some(pid) = v["supervisor_pid"].as_i64()
                && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.contains(&self.runroot.display().to_string()))
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                killed.push(pid as i32);
            }
        }
        if let Some(pid) = self.holder_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed.push(pid);
        }
        // A dying supervisor still writes its state: let it finish dying
        // before its directory goes, or it writes into a removed tree.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while killed.iter().any(|&pid| alive(pid)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if std::env::var_os("MINIPOD_KEEP_TEST_DIRS").is_none() {
            remove_tree(&self.dir);
        }
    }
}

/// Every process on the machine: its pid and its /proc directory.
fn processes() -> impl Iterator<Item = (i32, PathBuf)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
}

/// A process's command line, its arguments joined by spaces.
fn cmdline(proc_dir: &Path) -> Option<String> {
    let raw = std::fs::read(proc_dir.join("cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// The (pid, comm, cmdline) of each running child of `parent`.
pub fn children_of(parent: i32) -> Vec<(i32, String, String)> {
    let mut found = Vec::new();
    for (pid, dir) in processes() {
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split at ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if ppid == Some(parent.to_string().as_str()) && alive(pid) {
            let comm = stat[open + 1..close].to_string();
            found.push((pid, comm, cmdline(&dir).unwrap_or_default()));
        }
    }
    found
}

/// Whether `pid` runs (a zombie has ended).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

/// Removes a tree that may hold files owned by the test user's subordinate
/// ids: root can do it directly; an unprivileged user goes through the
/// namespace (by then gone), so it makes everything writable first.
pub fn remove_tree(path: &Path) {
    if std::fs::remove_dir_all(path).is_ok() {
        return;
    }
    for entry in walk(path) {
        if entry.is_dir() && !entry.is_symlink() {
            let _ = std::fs::set_permissions(
                &entry,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            );
        }
    }
    let _ = std::fs::remove_dir_all(path);
}

fn walk(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if p.is_dir()
            && !p.is_symlink()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            out.extend(rd.flatten().map(|e| e.path()));
        }
        i += 1;
    }
    out
}

/// Nothing of a failed load or pull may be visible: no image, no layer, no
/// temp dir.
pub fn assert_store_empty(env: &TestEnv) {
    assert!(env.image_names().is_empty(), "no image is named");
    assert!(
        env.layer_dirs().is_empty(),
        "no layer or temp dir is left: {:?}",
        env.layer_dirs()
    );
}

/// A fresh env with `localhost/busybox` imported.
pub fn env_with_busybox() -> TestEnv {
    let env = TestEnv::new();
    env.busybox();
    env
}

/// Polls `f` every 50 ms until it holds; fails the test after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Command lines of live processes (not zombies) containing `needle`.
/// SIGKILL to a process of the test user's that must still exist.
pub fn sigkill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

pub fn live_processes(needle: &str) -> Vec<String> {
    processes()
        .filter_map(|(pid, dir)| Some((pid, cmdline(&dir)?)))
        .filter(|(pid, c)| c.contains(needle) && alive(*pid) && !c.contains("cargo"))
        .map(|(_, c)| c)
        .collect()
}

impl TestEnv {
    /// Starts `count` detached pods `PREFIX0…` of one `sleep MARKER<i>`
    /// container each, all at once, and insists that every start succeeds.
    pub fn start_sleeper_pods_at_once(&self, prefix: &str, count: usize, marker: &str) {
        let mut children = Vec::new();
        for i in 0..count {
            let file = self.pod_file(
                &format!("{prefix}{i}"),
                &format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {prefix}{i}}}\nspec:\n  containers:\n  - {{name: c, image: localhost/busybox, command: [sleep, \"{marker}{i}\"]}}\n"
                ),
            );
            let mut cmd = self.command(["run", "-d", file.to_str().unwrap()]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            children.push(cmd.spawn().unwrap());
        }
        for child in children {
            let out = wait_output(child, std::time::Duration::from_secs(120));
            assert!(out.status.success(), "{}", stderr_of(&out));
        }
    }
}

/// Waits for a child's output, killing it (and failing) after `limit`.
pub fn wait_output(child: std::process::Child, limit: std::time::Duration) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("waiting for minipod"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("minipod (pid {pid}) did not finish within {limit:?}");
        }
    }
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `minipod inspect POD`, parsed.
pub fn inspect(env: &TestEnv, pod: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(["inspect", pod])).unwrap()
}

/// One container's status (app or init) in `inspect`'s output.
pub fn status_of<'a>(pod: &'a serde_json::Value, container: &str) -> &'a serde_json::Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["status"]["initContainerStatuses"].as_array().unwrap())
        .find(|c| c["name"] == container)
        .unwrap_or_else(|| panic!("no status for {container}: {pod}"))
}

/// Every file under `dir` whose content holds `needle`.
pub fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            out.extend(files_holding(&path, needle));
        } else if ft.is_file()
            && std::fs::read(&path)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            out.push(path.display().to_string());
        }
    }
    out
}
