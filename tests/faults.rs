//! Faults: a full disk (a small tmpfs the test mounts as the data root or
//! the run root) under `load`, `import`, `pull`, `run` and a pod's logging,
//! and SIGKILL of `load`, `pull` and `run -d` at random moments. Each time
//! the error is clear (exit 125, what was being written, what to do),
//! nothing half-written is visible (`images`, `ps -a`, `system df`, no temp
//! files), and the next command works. `scripts/kill-loop` runs the kill
//! test with many more iterations (`MINIPOD_KILL_ITERATIONS`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::oci::{self, BuiltLayer, Compression, Entry, build_layer, dir};
use common::registry::Registry;
use common::{TestEnv, alive, env_with_busybox, live_processes, stderr_of, stdout_of, test_user};

/// A small tmpfs mounted over `at` (as root) and given to the test user;
/// lazily unmounted when dropped, so a failing test leaves no mount.
struct SmallFs {
    at: PathBuf,
}

impl SmallFs {
    fn mount(at: &Path, size: &str) -> SmallFs {
        if !nix::unistd::getuid().is_root() {
            panic!("mounting a small filesystem needs root (run the tests as root)");
        }
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs on {}", at.display());
        let user = test_user();
        std::os::unix::fs::chown(at, Some(user.uid), Some(user.gid)).unwrap();
        SmallFs {
            at: at.to_path_buf(),
        }
    }

    /// Fills the filesystem up to `leave` free bytes with a file only root
    /// can remove; `free` removes it.
    fn fill(&self, leave: u64) {
        let stat = nix::sys::statvfs::statvfs(&self.at).unwrap();
        let free = stat.blocks_available() * stat.fragment_size();
        let size = free.saturating_sub(leave) as usize;
        // Written (not allocated sparse): tmpfs counts the pages.
        let _ = std::fs::write(self.filler(), vec![0x5a; size]);
    }

    fn fill_all(&self) {
        self.fill(0);
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    fn filler(&self) -> PathBuf {
        self.at.join("filler")
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // As the run root, it holds the records the env's drop (after this
        // one) would stop the holder and supervisors by: stop them now.
        let mut pids: Vec<i64> = Vec::new();
        let json = |p: &Path| -> Option<serde_json::Value> {
            serde_json::from_slice(&std::fs::read(p).ok()?).ok()
        };
        for pod in std::fs::read_dir(self.at.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(v) = json(&pod.path().join("state.json")) {
                pids.extend(v["supervisor_pid"].as_i64());
            }
        }
        if let Some(v) = json(&self.at.join("holder.pid")) {
            pids.extend(v["pid"].as_i64());
        }
        for pid in pids.into_iter().filter(|&p| p > 0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Bytes that do not compress, from a seed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A one-layer image: `files` files of `each` bytes under /big.
fn big_layer(files: usize, each: usize, seed: u64) -> BuiltLayer {
    let mut entries = vec![dir("big")];
    for i in 0..files {
        entries.push(Entry::File {
            path: format!("big/f{i}"),
            data: noise(each, seed + i as u64 + 1),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    build_layer(&entries, Compression::None)
}

/// Every `.tmp-*` name under `root` (as root: everything is readable).
fn temp_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                out.push(e.path().display().to_string());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

/// `system df --format json -v`: the summary row of a kind, and its items.
fn df(env: &TestEnv) -> serde_json::Value {
    serde_json::from_str(&env.ok(["system", "df", "--format", "json", "-v"])).unwrap()
}

fn df_total(df: &serde_json::Value, kind: &str) -> u64 {
    df["Summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} row: {df}"))["Total"]
        .as_u64()
        .unwrap()
}

/// What a failed write to a full disk must say: exit 125, the thing it was
/// writing, that the disk is full and what to do.
fn assert_disk_full_error(stderr: &str, names: &str) {
    assert!(
        stderr.contains("no space left on device") || stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(stderr.contains("free space"), "says what to do: {stderr}");
    assert!(stderr.contains(names), "names {names}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Nothing of a failed image write is visible: no image, no layer, no
/// temp file, and `system df` agrees.
fn assert_no_partial_image(env: &TestEnv, images: usize) {
    assert_eq!(env.image_names().len(), images, "{:?}", env.image_names());
    assert_eq!(temp_files(&env.root), Vec::<String>::new());
    let df = df(env);
    assert_eq!(df_total(&df, "Images") as usize, images, "{df}");
    let unused = unused_items(&df);
    assert!(unused.is_empty(), "no layer outside an image: {unused:?}");
}

#[test]
fn a_full_data_root_fails_load_import_and_pull_cleanly_and_they_work_once_space_is_freed() {
    let env = TestEnv::new();
    let fs = SmallFs::mount(&env.root, "16m");
    // 4 MB unpacked: more than the 1 MB left, less than what freeing leaves.
    let layer = big_layer(4, 1 << 20, 1);
    let diff_ids = vec![layer.diff_id.clone()];
    let config = oci::config_json(&diff_ids, None, Some(&["sh"]));

    // load
    let layout_dir = env.work().join("layout");
    let layout = oci::write_layout(&layout_dir, vec![layer], Some("1"), Some(config.clone()));
    env.give_to_user(&env.work());
    let src = format!("oci:{}", layout_dir.display());
    fs.fill(1 << 20);
    let err = env.fails(["load", "--name", "localhost/big:1", &src]);
    assert_disk_full_error(&err, "localhost/big:1");
    assert_no_partial_image(&env, 0);
    fs.free();
    env.ok(["load", "--name", "localhost/big:1", &src]);
    assert_eq!(env.image_names(), vec!["localhost/big:1".to_string()]);
    env.ok(["rmi", "localhost/big:1"]);

    // import (a rootfs tar)
    let tar = env.work().join("rootfs.tar");
    std::fs::write(
        &tar,
        oci::layer_tar(&[
            dir("big"),
            Entry::File {
                path: "big/data".into(),
                data: noise(4 << 20, 7),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        ]),
    )
    .unwrap();
    env.give_to_user(&tar);
    fs.fill(1 << 20);
    let err = env.fails(["import", tar.to_str().unwrap(), "localhost/imported:1"]);
    assert_disk_full_error(&err, "rootfs.tar");
    assert_no_partial_image(&env, 0);
    fs.free();
    env.ok(["import", tar.to_str().unwrap(), "localhost/imported:1"]);
    env.ok(["rmi", "localhost/imported:1"]);

    // pull
    let reg = Registry::start();
    reg.push_image("team/big", "1", &layout.layers, &config);
    let name = format!("{}/team/big:1", reg.addr);
    fs.fill(1 << 20);
    let err = env.fails(["pull", "-q", &name]);
    assert_disk_full_error(&err, "team/big");
    assert_no_partial_image(&env, 0);
    fs.free();
    env.ok(["pull", "-q", &name]);
    assert_no_partial_image(&env, 1);
}

const WRITER_AND_LOGGER: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: full}
spec:
  containers:
  - name: writer
    image: localhost/busybox
    command: [sh, -c, "dd if=/dev/zero of=/big bs=64k count=1024 2>/dev/null; echo dd=$?; sleep 2; rm -f /big; echo freed; sleep 3600"]
  - name: logger
    image: localhost/busybox
    command: [sh, -c, "i=0; while true; do echo line $i ................................................................................; i=$((i+1)); sleep 0.01; done"]
"#;

#[test]
fn a_pod_filling_the_disk_keeps_running_drops_log_lines_and_says_so() {
    let env = TestEnv::new();
    let _fs = SmallFs::mount(&env.root, "24m");
    env.busybox();
    // The writer fills the data root (its writable layer) with a 64 MB
    // file, so the logger's lines cannot be written for 2 s, then frees it.
    // (Lines of 100 bytes every 10 ms: more than the log file's last page,
    // which tmpfs has already allocated.)
    let out = env.run_pod(WRITER_AND_LOGGER, &["-d"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    common::wait_until(
        "the writer to free its file",
        Duration::from_secs(20),
        || stdout_of(&env.run(["logs", "full", "writer"])).contains("freed"),
    );
    // The note is a stderr line, so `logs` prints it on stderr.
    let out = env.run(["logs", "full", "logger"]);
    let (logs, note) = (stdout_of(&out), stderr_of(&out));
    assert!(
        note.contains("line(s) of output dropped: No space left on device"),
        "the log says lines were lost: {note}"
    );
    // Whole lines only.
    for l in logs.lines() {
        assert!(l.starts_with("line ") && l.ends_with(".........."), "{l:?}");
    }
    let writer = env.ok(["logs", "full", "writer"]);
    assert!(!writer.contains("dd=0"), "dd met the full disk: {writer}");
    let ps = env.ok(["ps", "--format", "json"]);
    assert!(ps.contains("\"Running\""), "the pod keeps going: {ps}");
    // Lines go on after the note.
    let before = logs.lines().count();
    common::wait_until("more lines", Duration::from_secs(10), || {
        env.ok(["logs", "full", "logger"]).lines().count() > before + 5
    });
    env.ok(["rm", "-f", "full"]);
    let out = env.run_pod(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: next}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: localhost/busybox, command: [echo, next-ok]}\n",
        &[],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("next-ok"));
}

#[test]
fn a_full_run_root_fails_run_clearly_and_leaves_no_half_made_pod() {
    let env = TestEnv::new();
    // Mounted first, so the holder's record lives on it (the env's drop
    // stops that holder); the holder and the store are made while there
    // is room.
    let fs = SmallFs::mount(&env.runroot, "1m");
    env.busybox();
    fs.fill_all();
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: tiny}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox, command: [sleep, \"3600\"]}\n";
    let out = env.run_pod(yaml, &["-d"]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert_disk_full_error(&stderr, "tiny");
    assert_eq!(env.ok(["ps", "-a", "--format", "json"]).trim(), "[]");
    assert_eq!(df_total(&df(&env), "Pods"), 0, "no half-made pod");
    assert!(live_processes(&env.runroot.join("pods").display().to_string()).is_empty());
    fs.free();
    let out = env.run_pod(yaml, &["-d"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    env.ok(["rm", "-f", "tiny"]);
}

/// A reproducible random sequence (the seed is printed to replay a failure).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("MINIPOD_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("kill loop seed: MINIPOD_KILL_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Starts `args`, kills it with SIGKILL after `delay` (if it still runs),
/// reaps it; returns how long it ran.
fn kill_after(env: &TestEnv, args: &[&str], delay: Duration) -> Duration {
    let start = Instant::now();
    let mut child = env
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    start.elapsed()
}

/// How long a command takes when left alone.
fn timed(env: &TestEnv, args: &[&str]) -> Duration {
    let start = Instant::now();
    env.ok(args);
    start.elapsed()
}

/// After a kill: the next commands work and nothing partial shows. A
/// supervisor the killed `run -d` had started may still be writing its
/// first state: its pod gets a moment to show in `ps`.
fn assert_consistent(env: &TestEnv, images: &[String]) {
    let names = env.image_names();
    for n in &names {
        assert!(images.contains(n), "unexpected image {n}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let df = df(env);
        assert_eq!(df_total(&df, "Images") as usize, names.len(), "{df}");
        let ps: serde_json::Value =
            serde_json::from_str(&env.ok(["ps", "-a", "--format", "json"])).unwrap();
        let pods = ps.as_array().unwrap().len() as u64;
        // A pod without state (a run killed while making it) is not in
        // `ps`, and `df` says it is unused.
        let leftovers = df["Items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["Type"] == "Pods" && i["Unused"] == true)
            .count() as u64;
        if df_total(&df, "Pods") == pods + leftovers {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a pod only df sees is half-made: {df}\nps: {ps}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a command that ran to its end: no layer outside an image, no pod
/// without state, no temp file.
fn assert_no_leftovers(env: &TestEnv) {
    assert_eq!(temp_files(&env.root), Vec::<String>::new());
    let df = df(env);
    let unused = unused_items(&df);
    assert!(unused.is_empty(), "nothing unused: {unused:?}");
}

#[test]
fn run_d_killed_while_its_supervisor_starts_the_pod_leaves_it_running() {
    let env = env_with_busybox();
    let marker = "3599.75";
    let file = env.pod_file(
        "early",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: early}}\nspec:\n  containers:\n  - {{name: c, image: localhost/busybox, command: [sleep, \"{marker}\"]}}\n"
        ),
    );
    let mut run = env
        .command(["run", "-d", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its supervisor exists, before that reports the start:
    // the report then meets a closed pipe, which killed the supervisor
    // (SIGPIPE) and left a Failed pod.
    common::wait_until("the supervisor", Duration::from_secs(20), || {
        !live_processes("minipod-supervisor early").is_empty()
    });
    run.kill().unwrap();
    run.wait().unwrap();
    common::wait_until("the container", Duration::from_secs(20), || {
        !live_processes(marker).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let ps = env.ok(["ps", "--format", "json"]);
    assert!(ps.contains("\"Running\""), "the pod runs: {ps}");
    assert!(!live_processes("minipod-supervisor early").is_empty());
    env.ok(["rm", "-f", "early"]);
    assert!(live_processes(marker).is_empty());
}

#[test]
fn a_pod_left_without_state_shows_as_unused_in_df_and_rm_removes_it() {
    let env = TestEnv::new();
    // What a `run` killed between making the pod's folders and its
    // supervisor's first state leaves.
    for d in [
        env.runroot.join("pods/ghost/etc"),
        env.root.join("pods/ghost/logs"),
    ] {
        std::fs::create_dir_all(&d).unwrap();
    }
    std::fs::write(env.root.join("pods/ghost/logs/c.log"), "x\n").unwrap();
    env.give_to_user(&env.dir);
    assert_eq!(env.ok(["ps", "-a", "--format", "json"]).trim(), "[]");
    let usage = df(&env);
    assert_eq!(df_total(&usage, "Pods"), 1, "{usage}");
    assert_eq!(df_total(&usage, "Logs"), 1, "{usage}");
    let ghost = usage["Items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Name"] == "ghost")
        .unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(ghost["Unused"], true, "{ghost}");
    let table = env.ok(["system", "df", "-v"]);
    assert!(table.contains("ghost (unused)"), "{table}");
    env.ok(["rm", "ghost"]);
    assert_eq!(df_total(&df(&env), "Pods"), 0);
}

fn iterations() -> usize {
    std::env::var("MINIPOD_KILL_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

#[test]
fn sigkill_of_load_pull_and_run_at_random_moments_leaves_no_partial_object() {
    let mut rng = Rng::new();
    let env = env_with_busybox();
    let n = iterations();
    let mut images = vec!["localhost/busybox:latest".to_string()];

    // load: several layers, so a kill can fall between two of them.
    let layers: Vec<BuiltLayer> = (0..4).map(|i| big_layer(8, 256 << 10, 100 * i)).collect();
    let layout_dir = env.work().join("layout");
    let layout = oci::write_layout(&layout_dir, layers, Some("1"), None);
    env.give_to_user(&env.work());
    let src = format!("oci:{}", layout_dir.display());
    let config = std::fs::read(layout.blob_path(&layout.config_digest)).unwrap();
    images.push("localhost/killed:1".into());
    let full = timed(&env, &["load", "--name", "localhost/killed:1", &src]);
    env.ok(["rmi", "localhost/killed:1"]);
    for _ in 0..n {
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        kill_after(&env, &["load", "--name", "localhost/killed:1", &src], delay);
        assert_consistent(&env, &images);
        env.ok(["load", "--name", "localhost/killed:1", &src]);
        assert_consistent(&env, &images);
        assert_no_leftovers(&env);
        env.ok(["rmi", "localhost/killed:1"]);
    }

    // pull
    let reg = Registry::start();
    reg.push_image("team/killed", "1", &layout.layers, &config);
    let name = format!("{}/team/killed:1", reg.addr);
    images.push(name.clone());
    let full = timed(&env, &["pull", "-q", &name]);
    env.ok(["rmi", &name]);
    for _ in 0..n {
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        kill_after(&env, &["pull", "-q", &name], delay);
        assert_consistent(&env, &images);
        env.ok(["pull", "-q", &name]);
        assert_consistent(&env, &images);
        assert_no_leftovers(&env);
        env.ok(["rmi", &name]);
    }

    // run -d
    let marker = "3599.25";
    let file = env.pod_file(
        "killed",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: killed}}\nspec:\n  containers:\n  - {{name: c, image: localhost/busybox, command: [sleep, \"{marker}\"]}}\n"
        ),
    );
    let file = file.to_str().unwrap();
    let full = timed(&env, &["run", "-d", file]);
    env.ok(["rm", "-f", "killed"]);
    for _ in 0..n {
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        kill_after(&env, &["run", "-d", file], delay);
        assert_consistent(&env, &images);
        // Whatever the kill left, `rm -f` and a new run work.
        let _ = env.run(["rm", "-f", "killed"]);
        assert_consistent(&env, &images);
        common::wait_until(
            "the killed pod's processes to end",
            Duration::from_secs(10),
            || {
                live_processes(marker).is_empty()
                    && live_processes(&env.runroot.join("pods").display().to_string()).is_empty()
            },
        );
        env.ok(["run", "-d", file]);
        assert_no_leftovers(&env);
        env.ok(["rm", "-f", "killed"]);
    }
    // Only the holder (and its pasta) remain of the test user's processes
    // started for this env.
    if let Some(pid) = env.holder_pid() {
        assert!(alive(pid));
    }
    assert!(live_processes(marker).is_empty());
}

/// What `system df -v --format json` lists as unused (no image, no pod).
fn unused_items(df: &serde_json::Value) -> Vec<&serde_json::Value> {
    df["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["Unused"] == true)
        .collect()
}
