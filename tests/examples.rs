//! The examples of examples/, each run as the README says (as the test
//! user, against this test's roots): hello, the test runner passing and failing,
//! the dev stack of PostgreSQL, Redis and a web app, the Kubernetes docs'
//! guestbook and WordPress with MySQL (these three skipped when no Debian
//! mirror answers to build their images), and the Rust tests of
//! examples/rust-test run through minipod::testing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The repository's examples/ folder.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A copy of examples/NAME under the env's scratch dir (the test user may
/// not enter the checkout), at work/examples/NAME, with examples/lib beside
/// it (the scripts the examples share); returns work/.
fn copy_example(env: &TestEnv, name: &str) -> PathBuf {
    let work = env.work();
    for dir in [name, "lib"] {
        let to = work.join("examples").join(dir);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(examples().join(dir)).unwrap().flatten() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    env.give_to_user(&work.join("examples"));
    work
}

#[test]
fn hello_serves_its_client() {
    let env = env_with_busybox();
    let work = copy_example(&env, "hello");
    let pod = work.join("examples/hello/pod.yaml");
    let out = env.run(["run", "--exit-code-from", "client", pod.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("client | hello from hello"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn test_runner_exits_with_the_tests_code() {
    let env = env_with_busybox();
    let work = copy_example(&env, "test-runner");
    let pod = work.join("examples/test-runner/pod.yaml");
    let out = env.run(["run", "--exit-code-from", "tests", pod.to_str().unwrap()]);
    let stdout = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr_of(&out));
    for line in [
        "ok   the service greets",
        "ok   the service is healthy",
        "ok   the sidecar ships the access log",
        "all tests passed",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    // A broken service fails the job with the tests' code, and the service
    // and sidecar are stopped all the same.
    let broken = work.join("examples/test-runner/broken-service.yaml");
    let out = env.run([
        "run",
        "--exit-code-from",
        "tests",
        "--configmap",
        broken.to_str().unwrap(),
        pod.to_str().unwrap(),
    ]);
    let stdout = stdout_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", stderr_of(&out));
    assert!(
        stdout.contains("FAIL the service greets: wanted 'hello from the service', got 'goodbye'"),
        "{stdout}"
    );
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

/// The cache of examples/dev-stack/build-image: one every user can read,
/// since root builds the image and the test user imports it.
fn image_cache() -> PathBuf {
    std::env::var_os("MINIPOD_EXAMPLES_CACHE")
        .map_or_else(|| PathBuf::from("/var/tmp/minipod-examples"), PathBuf::from)
}

/// `program` run in `work` as the test user (when we are root), on `env`'s
/// roots, with the binary under test as `MINIPOD_BIN`: how a user runs an
/// example's command.
fn as_test_user(program: impl AsRef<std::ffi::OsStr>, env: &TestEnv, work: &Path) -> Command {
    let user = test_user();
    let mut cmd = Command::new(program);
    cmd.env("MINIPOD_BIN", binary())
        .env("MINIPOD_ROOT", &env.root)
        .env("MINIPOD_RUNROOT", &env.runroot)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", &user.home)
        .current_dir(work)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if user.switch {
        use std::os::unix::process::CommandExt;
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// examples/NAME/build-image run here, by whoever runs the tests (as root,
/// mmdebstrap builds in a chroot), once: its output is cached for every
/// later run. None when the test must be skipped (said on stderr): no
/// mmdebstrap, or no Debian mirror answers.
fn example_image(name: &str) -> Option<()> {
    if Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: mmdebstrap is not installed (sudo scripts/setup-host installs it)");
        return None;
    }
    let started = Instant::now();
    let build = Command::new(examples().join(name).join("build-image"))
        .env("MINIPOD_EXAMPLES_CACHE", image_cache())
        .output()
        .unwrap();
    if build.status.code() == Some(3) {
        eprintln!("skipped: {}", stderr_of(&build).trim_end());
        return None;
    }
    assert!(build.status.success(), "{}", stderr_of(&build));
    eprintln!("{name} image: {:.1} s", started.elapsed().as_secs_f64());
    Some(())
}

/// examples/NAME/up [ARGS] run as the README says, as the test user: it
/// finds the cached image, imports or loads it, and starts the example.
fn example_up(env: &TestEnv, work: &Path, name: &str, args: &[&str]) {
    let mut up = as_test_user(work.join("examples").join(name).join("up"), env, work);
    up.args(args).env("MINIPOD_EXAMPLES_CACHE", image_cache());
    let started = Instant::now();
    let out = wait_output(up.spawn().unwrap(), Duration::from_secs(300));
    assert!(
        out.status.success(),
        "{}\n{}\nps:\n{}",
        stdout_of(&out),
        stderr_of(&out),
        stdout_of(&env.run(["ps", "-a"]))
    );
    eprintln!(
        "{name}: up and Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn dev_stack_serves_from_postgres_and_redis() {
    if example_image("dev-stack").is_none() {
        return;
    }
    let env = TestEnv::new();
    let work = copy_example(&env, "dev-stack");
    example_up(
        &env,
        &work,
        "dev-stack",
        &["-d", "--wait", "ready", "--timeout", "3m", "-P"],
    );
    let port = env.ok(["port", "dev-stack", "8000"]);
    let port: u16 = port.trim().rsplit(':').next().unwrap().parse().unwrap();
    let first = http_get(port, "/");
    let second = http_get(port, "/");
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&first).unwrap(),
        serde_json::from_str(&second).unwrap(),
    );
    assert_eq!(
        b["redis"]["visits"],
        a["redis"]["visits"].as_i64().unwrap() + 1,
        "{second}"
    );
    assert_eq!(
        b["postgres"]["rows"],
        a["postgres"]["rows"].as_i64().unwrap() + 1,
        "{second}"
    );
    assert!(
        b["postgres"]["version"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 15"),
        "{second}"
    );
    assert!(
        b["redis"]["version"].as_str().unwrap().starts_with('7'),
        "{second}"
    );
    let pod = inspect(&env, "dev-stack");
    for c in ["postgres", "redis", "web"] {
        assert_eq!(status_of(&pod, c)["ready"], true, "{c}: {pod}");
    }
    env.ok(["down", "dev-stack"]);
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
}

/// One HTTP/1.0 GET to 127.0.0.1:PORT; the body of a 200 answer.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.split(' ').nth(1), Some("200"), "{answer}");
    answer.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The running pods of `workload` (`Deployment/NAME`), by name.
fn pods_of(env: &TestEnv, workload: &str) -> Vec<String> {
    let ps: serde_json::Value = serde_json::from_str(&env.ok(["ps", "--format", "json"])).unwrap();
    let mut pods: Vec<String> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let w = &p["workload"];
            format!(
                "{}/{}",
                w["kind"].as_str().unwrap_or(""),
                w["name"].as_str().unwrap_or("")
            ) == workload
        })
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    pods.sort();
    pods
}

/// `python3 -c SCRIPT` in container `c` of `pod`: its stdout.
fn python_in(env: &TestEnv, pod: &str, c: &str, script: &str) -> String {
    env.ok(["exec", pod, c, "--", "python3", "-c", script])
}

/// A Python script that GETs (or, with `data`, POSTs) `url` until it answers
/// 200, for up to `seconds`, and prints the body; what it got last if never.
fn fetch_script(url: &str, data: Option<&str>, seconds: u32) -> String {
    format!(
        "import time, urllib.request as u\n\
         data = {data}\n\
         for _ in range({tries}):\n\
         \x20   try:\n\
         \x20       print(u.urlopen({url:?}, data=data, timeout=5).read().decode()); break\n\
         \x20   except Exception as e:\n\
         \x20       last = e; time.sleep(0.2)\n\
         else:\n\
         \x20   raise SystemExit(f'{url}: {{last}}')\n",
        data = data.map_or("None".to_string(), |d| format!("{d:?}.encode()")),
        tries = seconds * 5,
    )
}

/// The Kubernetes docs' guestbook (examples/guestbook), from its `up` to
/// `down FILE`: a message set through the frontend Service reaches the
/// leader, both followers replicate it, and reading it back goes through
/// the follower Service, every hop by a Service's name.
#[test]
fn guestbook_sets_on_the_leader_and_reads_from_the_followers() {
    if example_image("guestbook").is_none() {
        return;
    }
    let env = TestEnv::new();
    let work = copy_example(&env, "guestbook");
    example_up(&env, &work, "guestbook", &["--timeout", "3m"]);
    let frontends = pods_of(&env, "Deployment/frontend");
    let followers = pods_of(&env, "Deployment/redis-follower");
    assert_eq!(frontends.len(), 3, "{frontends:?}");
    assert_eq!(followers.len(), 2, "{followers:?}");
    assert_eq!(pods_of(&env, "Deployment/redis-leader").len(), 1);

    // From a frontend pod, as a browser behind the Service would ask.
    let page = "http://frontend/guestbook.php";
    let set = python_in(
        &env,
        &frontends[0],
        "php-redis",
        &fetch_script(
            &format!("{page}?cmd=set&key=messages&value=hello,from+minipod"),
            None,
            10,
        ),
    );
    assert_eq!(set.trim(), r#"{"message": "Updated"}"#);
    // Each follower holds it once replication caught up.
    for follower in &followers {
        let redis_cli = |args: &[&str]| {
            let mut all = vec!["exec", follower, "follower", "--", "redis-cli"];
            all.extend(args);
            env.ok(all)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while redis_cli(&["get", "messages"]).trim() != "hello,from minipod" {
            assert!(
                Instant::now() < deadline,
                "{follower} did not replicate the message:\n{}\nlogs:\n{}",
                redis_cli(&["info", "replication"]),
                stdout_of(&env.run(["logs", follower]))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let info = redis_cli(&["info", "replication"]);
        assert!(info.contains("master_host:redis-leader"), "{info}");
        assert!(info.contains("master_link_status:up"), "{info}");
    }
    // Read back through the frontend Service (any of the three) and the
    // follower Service (either follower), a few times.
    for frontend in &frontends {
        let got = python_in(
            &env,
            frontend,
            "php-redis",
            &fetch_script(&format!("{page}?cmd=get&key=messages"), None, 10),
        );
        assert_eq!(got.trim(), r#"{"data": "hello,from minipod"}"#);
    }
    let index = python_in(
        &env,
        &frontends[1],
        "php-redis",
        &fetch_script("http://frontend/", None, 10),
    );
    assert!(index.contains("<title>Guestbook</title>"), "{index}");

    // From the host, as its browser: through the NodePort Service of
    // frontend-nodeport.yaml, as the README says.
    let file = work.join("examples/guestbook/guestbook.yaml");
    let node_port_file = work.join("examples/guestbook/frontend-nodeport.yaml");
    env.ok(["run", "-d", node_port_file.to_str().unwrap()]);
    let node_port = node_port_of(&env, "frontend-nodeport");
    let set = http_get(
        node_port,
        "/guestbook.php?cmd=set&key=messages&value=hello,from+the+host",
    );
    assert_eq!(set.trim(), r#"{"message": "Updated"}"#);
    // Read from a follower, which may lag the leader a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = http_get(node_port, "/guestbook.php?cmd=get&key=messages");
        if got.trim() == r#"{"data": "hello,from the host"}"# {
            break;
        }
        assert!(Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(200));
    }

    env.ok(["down", file.to_str().unwrap()]);
    env.ok(["down", node_port_file.to_str().unwrap()]);
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
    let services: serde_json::Value =
        serde_json::from_str(&env.ok(["service", "ls", "--format", "json"])).unwrap();
    assert_eq!(services, serde_json::json!([]), "{services}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", node_port)).is_err(),
        "the nodePort {node_port} is closed"
    );

    // Why guestbook.yaml keeps upstream's `type: LoadBalancer` commented
    // out: port 80 on the host is refused rootless, saying why, and nothing
    // of the file starts.
    let upstream = std::fs::read_to_string(&file).unwrap();
    let uncommented = upstream.replacen("  # type: LoadBalancer\n", "  type: LoadBalancer\n", 1);
    assert_ne!(uncommented, upstream);
    let lb = env.pod_file("guestbook-lb", &uncommented);
    let err = env.fails(["run", "-d", lb.to_str().unwrap()]);
    assert!(
        err.contains("Service default/frontend") && err.contains("ip_unprivileged_port_start"),
        "{err}"
    );
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
    assert_eq!(
        env.ok(["service", "ls", "--format", "json"]).trim(),
        "[]",
        "nothing of the refused file stays"
    );
}

/// The nodePort of Service NAME's first port, as `service ls --format json`
/// says.
fn node_port_of(env: &TestEnv, name: &str) -> u16 {
    let services: serde_json::Value =
        serde_json::from_str(&env.ok(["service", "ls", "--format", "json"])).unwrap();
    let service = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no Service {name}: {services}"));
    let port = service["ports"][0]["nodePort"].as_u64();
    port.and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{services}"))
}

/// The Kubernetes docs' WordPress and MySQL (examples/wordpress, a small
/// blog in WordPress's place): the blog reaches the database by its
/// headless Service with the Secret's password, a post lands in the
/// database's claim and an upload in the blog's, both survive `down FILE`
/// and a second `up`, and `down --volumes FILE` removes the claims too.
#[test]
fn wordpress_keeps_posts_on_its_claims_across_down_and_up() {
    if example_image("wordpress").is_none() {
        return;
    }
    let env = TestEnv::new();
    let work = copy_example(&env, "wordpress");
    let file = work.join("examples/wordpress/wordpress.yaml");
    let file = file.to_str().unwrap();
    example_up(&env, &work, "wordpress", &["--timeout", "3m"]);
    let [mysql] = &pods_of(&env, "Deployment/wordpress-mysql")[..] else {
        panic!("{}", env.ok(["ps"]))
    };
    let [blog] = &pods_of(&env, "Deployment/wordpress")[..] else {
        panic!("{}", env.ok(["ps"]))
    };
    // The headless Service's name is the database pod's own address.
    let mysql_ip = inspect(&env, mysql)["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let resolved = python_in(
        &env,
        blog,
        "wordpress",
        "import socket; print(socket.gethostbyname('wordpress-mysql'))",
    );
    assert_eq!(resolved.trim(), mysql_ip);
    // MariaDB makes its database on the first start: wait for it.
    let install = fetch_script("http://wordpress/wp-admin/install.php", None, 60);
    let db = python_in(&env, blog, "wordpress", &install);
    assert!(db.contains("MariaDB"), "{db}");
    let post = python_in(
        &env,
        blog,
        "wordpress",
        &fetch_script(
            "http://wordpress/wp-admin/post.php",
            Some("post_title=Hello+minipod&content=kept+on+a+claim"),
            10,
        ),
    );
    let id = serde_json::from_str::<serde_json::Value>(&post).unwrap()["id"].clone();

    // Down and up again: new pods, the same volumes.
    env.ok(["down", file]);
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
    let volumes = env.ok(["volume", "ls"]);
    for claim in ["mysql-pv-claim", "wp-pv-claim"] {
        assert!(volumes.contains(claim), "{volumes}");
    }
    example_up(&env, &work, "wordpress", &["--timeout", "3m"]);
    let [blog] = &pods_of(&env, "Deployment/wordpress")[..] else {
        panic!("{}", env.ok(["ps"]))
    };
    let got = python_in(
        &env,
        blog,
        "wordpress",
        &fetch_script(&format!("http://wordpress/?p={id}"), None, 60),
    );
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["title"], "Hello minipod", "{got}");
    let upload = python_in(
        &env,
        blog,
        "wordpress",
        &fetch_script(
            &format!("http://wordpress{}", got["upload"].as_str().unwrap()),
            None,
            10,
        ),
    );
    assert_eq!(upload.trim(), "kept on a claim");
    // From the host, through the NodePort Service of wordpress-nodeport.yaml.
    let node_port_file = work.join("examples/wordpress/wordpress-nodeport.yaml");
    let node_port_file = node_port_file.to_str().unwrap();
    env.ok(["run", "-d", node_port_file]);
    let from_host = http_get(
        node_port_of(&env, "wordpress-nodeport"),
        &format!("/?p={id}"),
    );
    let from_host: serde_json::Value = serde_json::from_str(&from_host).unwrap();
    assert_eq!(from_host["title"], "Hello minipod", "{from_host}");
    env.ok(["down", node_port_file]);

    env.ok(["down", "--volumes", file]);
    assert!(env.pod_state().is_empty(), "{:?}", env.pod_state());
    let volumes = env.ok(["volume", "ls"]);
    assert!(!volumes.contains("pv-claim"), "{volumes}");
}

/// The test binary of examples/rust-test: the newest cargo built beside this
/// one (`cargo test` builds every target first), else built now.
fn rust_test_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let examples_dir = deps.parent().unwrap().parent().unwrap().join("examples");
    let newest = |dir: &Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("rust_test-") && !name.ends_with(".d")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, p)| p)
    };
    let mine = std::fs::metadata(&deps).unwrap().modified().unwrap();
    if let Some(found) = newest(&examples_dir)
        && std::fs::metadata(&found).unwrap().modified().unwrap() >= mine
    {
        return found;
    }
    // `cargo test --test examples` alone: build it (cargo releases the
    // target dir's lock while tests run).
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--example", "rust-test", "--no-run"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    newest(&examples_dir).expect("cargo built examples/rust-test")
}

#[test]
fn rust_test_example_passes_as_the_test_user() {
    let env = TestEnv::new();
    let work = copy_example(&env, "rust-test");
    let bin = work.join("rust-test-tests");
    std::fs::copy(rust_test_binary(), &bin).unwrap();
    env.give_to_user(&bin);
    let mut cmd = as_test_user(&bin, &env, &work);
    let out = wait_output(cmd.spawn().unwrap(), Duration::from_secs(240));
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{stdout}\n{}", stderr_of(&out));
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");
    assert!(!stderr_of(&out).contains("skipped"), "{}", stderr_of(&out));
    // Every test removed its pods, the killed child's included.
    let ps: serde_json::Value =
        serde_json::from_str(&env.ok(["ps", "-a", "--format", "json"])).unwrap();
    assert_eq!(ps, serde_json::json!([]), "{ps}");
}

/// What minipod::testing finds its pods by: `run --label` and `ps --filter
/// label=…`.
#[test]
fn run_labels_pods_and_ps_filters_by_them() {
    let env = env_with_busybox();
    let file = env.pod_file(
        "sleeper",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper, labels: {app: s, tier: x}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {name: c, image: localhost/busybox, command: [sleep, '600']}\n",
    );
    let file = file.to_str().unwrap();
    let stderr = env.fails(["run", "-d", "--label", "bad key=v", file]);
    assert!(
        stderr.contains("--label \"bad key=v\": the key"),
        "{stderr}"
    );
    env.ok([
        "run",
        "-d",
        "--label",
        "tier=y",
        "--label",
        "minipod.test/pid=1",
        "--label",
        "flag",
        file,
    ]);
    let names = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "-a", "--format", "json"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let ps: serde_json::Value = serde_json::from_str(&env.ok(args)).unwrap();
        ps.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&["label=tier=y", "label=minipod.test/pid"]),
        ["sleeper"]
    );
    assert_eq!(names(&["label=flag="]), ["sleeper"]);
    assert!(names(&["label=tier=x"]).is_empty(), "run's label wins");
    assert!(names(&["label=tier=y", "label=other"]).is_empty());
    let ps: serde_json::Value = serde_json::from_str(&env.ok(["ps", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["labels"]["app"], "s");
    assert_eq!(ps[0]["labels"]["minipod.test/pid"], "1");
    let pod = inspect(&env, "sleeper");
    assert_eq!(pod["metadata"]["labels"]["tier"], "y");
    let stderr = env.fails(["ps", "--filter", "name=sleeper"]);
    assert!(stderr.contains("label=KEY"), "{stderr}");
    env.ok(["rm", "-f", "sleeper"]);
}
