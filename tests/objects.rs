//! ConfigMaps and Secrets as the test user sees them: the local store's
//! commands (`secret|configmap create|ls|inspect|rm`, values never shown,
//! files 0600), where `run` finds a name (documents, then `--configmap`
//! files, then the store, with a warning for a name in two), and a pull
//! from a registry that needs credentials, given by an imagePullSecrets
//! Secret; its password is in no output and no file but the store's.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use common::oci::{self, Compression};
use common::registry::Registry;
use common::{TestEnv, files_holding, stderr_of, stdout_of};

const PASSWORD: &str = "pa55-w0rd-xyzzy";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_store_creates_lists_inspects_and_removes_without_showing_values() {
    let env = TestEnv::new();
    let w = env.work();
    std::fs::create_dir_all(w.join("conf/sub")).unwrap();
    std::fs::write(w.join("conf/app.conf"), "port=80\n").unwrap();
    std::fs::write(w.join("conf/sub/skipped"), "x").unwrap();
    std::fs::write(w.join("token.txt"), PASSWORD).unwrap();
    std::fs::write(w.join("db.env"), "# a comment\n\nUSER=admin\nPASSWORD\n").unwrap();
    std::fs::write(w.join("logo.bin"), [0xffu8, 0xd8, 0x00]).unwrap();
    env.give_to_user(&w);
    let p = |f: &str| w.join(f).display().to_string();

    let out = env.ok([
        "secret",
        "create",
        "db",
        "--from-literal",
        &format!("password={PASSWORD}"),
        "--from-file",
        &format!("api={}", p("token.txt")),
        "--from-file",
        &p("conf"),
    ]);
    assert_eq!(out.trim(), "secret/db created");
    // A line KEY alone takes minipod's own environment, as kubectl does.
    let o = env
        .command([
            "secret",
            "create",
            "env",
            "--type",
            "example.com/own",
            "--from-env-file",
            &p("db.env"),
        ])
        .env("PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    env.ok([
        "configmap",
        "create",
        "web",
        "--from-file",
        &p("conf"),
        "--from-file",
        &p("logo.bin"),
    ]);

    // Names, types and keys; never a value.
    let ls = env.ok(["secret", "ls"]);
    assert!(ls.starts_with("NAME"), "{ls}");
    assert!(ls.contains("db") && ls.contains("Opaque") && ls.contains("api,app.conf,password"));
    assert!(
        ls.contains("example.com/own") && ls.contains("PASSWORD,USER"),
        "{ls}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(["configmap", "ls", "--format", "json"])).unwrap();
    assert_eq!(json[0]["name"], "web");
    assert_eq!(json[0]["keys"], serde_json::json!(["app.conf", "logo.bin"]));
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(["secret", "inspect", "db", "env"])).unwrap();
    assert_eq!(inspect[0]["keys"]["password"], PASSWORD.len());
    assert_eq!(inspect[1]["keys"]["PASSWORD"], PASSWORD.len());
    assert_eq!(inspect[1]["type"], "example.com/own");
    let cm: serde_json::Value =
        serde_json::from_str(&env.ok(["configmap", "inspect", "web"])).unwrap();
    assert_eq!(cm[0]["binaryKeys"], serde_json::json!(["logo.bin"]));
    for args in [
        vec!["secret", "ls"],
        vec!["secret", "ls", "--format", "json"],
        vec!["secret", "inspect", "db", "env"],
    ] {
        let o = env.run(&args);
        assert!(!stdout_of(&o).contains(PASSWORD) && !stderr_of(&o).contains(PASSWORD));
    }

    // One file per object, only the owner may read it; the value is in no
    // other file of the data root.
    let secrets = env.root.join("secrets");
    assert_eq!(mode(&secrets), 0o700);
    assert_eq!(mode(&secrets.join("db")), 0o600);
    assert_eq!(mode(&env.root.join("configmaps/web")), 0o600);
    let mut holding = files_holding(&env.root, PASSWORD);
    holding.sort();
    assert!(holding.is_empty(), "in plain text: {holding:?}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    let mut holding = files_holding(&env.root, &b64);
    holding.sort();
    assert_eq!(
        holding,
        [
            secrets.join("db").display().to_string(),
            secrets.join("env").display().to_string()
        ]
    );

    // A name in use, a bad key, a key twice, a type's missing key: 125.
    let err = env.fails(["secret", "create", "db", "--from-literal", "a=b"]);
    assert!(
        err.contains("\"db\" already exists") && err.contains("minipod secret rm db"),
        "{err}"
    );
    let err = env.fails(["configmap", "create", "x", "--from-literal", "a b=1"]);
    assert!(err.contains("valid config key"), "{err}");
    let err = env.fails([
        "secret",
        "create",
        "x",
        "--from-literal",
        "app.conf=1",
        "--from-file",
        &p("conf"),
    ]);
    assert!(err.contains("\"app.conf\" is also given by"), "{err}");
    let err = env.fails([
        "secret",
        "create",
        "x",
        "--type",
        "kubernetes.io/dockerconfigjson",
        "--from-literal",
        &format!(".dockerconfigjson={PASSWORD}"),
    ]);
    assert!(
        err.contains("data..dockerconfigjson") && !err.contains(PASSWORD),
        "{err}"
    );
    assert!(!env.root.join("secrets/x").exists());

    // rm removes what exists and names what does not.
    let err = env.fails(["secret", "rm", "db", "nope"]);
    assert!(err.contains("no secret \"nope\""), "{err}");
    env.ok(["secret", "rm", "env"]);
    env.ok(["configmap", "rm", "web"]);
    assert_eq!(env.ok(["secret", "ls", "--format", "json"]).trim(), "[]");
    assert!(std::fs::read_dir(&secrets).unwrap().next().is_none());
}

/// A docker config Secret document for `registry`.
fn pull_secret(name: &str, registry: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/dockerconfigjson\n\
         stringData:\n  .dockerconfigjson: '{config}'\n"
    )
}

#[test]
fn image_pull_secrets_give_the_pulls_their_credentials_first_source_wins() {
    let reg = Registry::start_tls_auth("alice", PASSWORD);
    let env = TestEnv::new();
    let rootfs = oci::busybox_rootfs(&env.work().join("bb"));
    let layers = vec![oci::dir_layer(&rootfs, Compression::Gzip)];
    let ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = oci::config_with(&ids, serde_json::json!({ "Cmd": ["sh"] }));
    reg.push_image("private/bb", "1", &layers, &config);
    let image = format!("{}/private/bb:1", reg.addr);
    // The test CA where podman looks for it; no auth file anywhere.
    let home = env.work().join("home");
    let certs = home.join(".config/containers/certs.d").join(&reg.addr);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(reg.ca.as_ref().unwrap(), certs.join("ca.crt")).unwrap();
    env.give_to_user(&home);
    let run = |args: &[&str]| {
        let mut cmd = env.command(args);
        cmd.env("HOME", &home);
        common::wait_output(
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
            std::time::Duration::from_secs(60),
        )
    };
    let pod = |name: &str, secrets: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  \
             terminationGracePeriodSeconds: 1\n  imagePullSecrets: [{secrets}]\n  containers:\n  \
             - name: app\n    image: {image}\n    imagePullPolicy: Always\n    \
             command: [sh, -c, 'echo pulled-and-ran; sleep 30']\n"
        )
    };

    // A named Secret that exists nowhere: a warning naming it, and the pull
    // goes on anonymously, which this registry refuses.
    let file = env.pod_file("missing", &pod("missing", "{name: regcred}"));
    let out = run(&["run", "-d", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr_of(&out);
    assert!(
        err.contains("Secret regcred") && err.contains("not found"),
        "{err}"
    );
    assert!(err.contains("requires authentication"), "{err}");

    // In the store: `run -d` pulls in a helper, which gets the credentials
    // through a pipe.
    let store_secret = env.pod_file(
        "store-secret",
        &pull_secret("regcred", &reg.addr, "alice", PASSWORD),
    );
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let config_json = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr);
    let cfg_file = env.work().join("config.json");
    std::fs::write(&cfg_file, &config_json).unwrap();
    env.give_to_user(&cfg_file);
    env.ok([
        "secret",
        "create",
        "regcred",
        "--type",
        "kubernetes.io/dockerconfigjson",
        "--from-file",
        &format!(".dockerconfigjson={}", cfg_file.display()),
    ]);
    std::fs::remove_file(&cfg_file).unwrap();
    let file = env.pod_file("stored", &pod("stored", "{name: regcred}"));
    let out = run(&["run", "-d", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains(PASSWORD));
    // While it runs: the password is in the store's file and nowhere else.
    common::wait_until("the pod prints", std::time::Duration::from_secs(20), || {
        env.ok(["logs", "stored"]).contains("pulled-and-ran")
    });
    let secret_file = env.root.join("secrets/regcred").display().to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&config_json);
    for needle in [PASSWORD, &auth, &b64] {
        let mut holding = files_holding(&env.root, needle);
        holding.extend(files_holding(&env.runroot, needle));
        holding.retain(|f| *f != secret_file);
        assert!(holding.is_empty(), "{needle} in {holding:?}");
    }
    env.ok(["rm", "-f", "stored"]);

    // A --configmap file's Secret comes before the store's: with wrong
    // credentials there, the pull fails naming where they came from, and
    // a warning says the name is in two sources.
    let wrong = env.pod_file("wrong", &pull_secret("regcred", &reg.addr, "alice", "nope"));
    let file = env.pod_file("shadowed", &pod("shadowed", "{name: regcred}"));
    let out = run(&[
        "run",
        "--configmap",
        wrong.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr_of(&out);
    let wrong_origin = format!("{}:1", wrong.display());
    assert!(
        err.contains("refused the credentials")
            && err.contains(&format!("Secret regcred ({wrong_origin})")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Secret regcred is given in {wrong_origin} and in the store"
        )),
        "{err}"
    );

    // A document of the run's files comes before both (foreground pull).
    let text = format!(
        "{}---\n{}",
        std::fs::read_to_string(&store_secret).unwrap(),
        pod("documented", "{name: regcred}").replace("sleep 30", "true")
    );
    let file = env.pod_file("documented", &text);
    let out = run(&[
        "run",
        "--configmap",
        wrong.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("pulled-and-ran"));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "Secret regcred is given in {}:1 and in {wrong_origin}, the store",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains(PASSWORD) && !stdout_of(&out).contains(PASSWORD));

    // Anything but ConfigMaps and Secrets in a --configmap file is refused.
    let out = run(&[
        "run",
        "--configmap",
        file.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr_of(&out).contains("holds only ConfigMap and Secret documents"),
        "{}",
        stderr_of(&out)
    );
}
